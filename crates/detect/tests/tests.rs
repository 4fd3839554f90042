//! Integration tests of portolan-detect: capture files written by the
//! tests (pcap, pcapng, gzip, truncated, random bytes) read end to end.
//! The binary counts the allocations of threads that ask it to
//! ([`counting::allocations_during`]), so that a test can show a reader
//! allocates nothing per packet.

mod capture;
mod counting;
mod pcap_writer;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;
