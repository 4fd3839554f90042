//! Integration tests of portolan-detect: capture files written by the
//! tests (pcap, pcapng, gzip, truncated, random bytes) read end to end.

mod capture;
mod pcap_writer;
