//! Wire formats for the raw scanner: the bytes of the probes we send and of
//! the replies we read, with no I/O.
//!
//! - [`checksum`]: the Internet checksum (RFC 1071), pseudo-header sums for
//!   TCP and UDP over IPv4 and IPv6, and incremental updates (RFC 1624).
//! - [`SynTemplate`]: a SYN probe (IPv4 or IPv6 header plus a TCP header with
//!   one MSS option, as nmap sends) built once; [`SynTemplate::stamp`] copies
//!   it and patches only the per-probe fields, finishing both checksums from
//!   precomputed partial sums.
//! - [`UdpTemplate`]: a UDP probe (IPv4 or IPv6 header plus a UDP header)
//!   built once; [`UdpTemplate::stamp`] writes the per-probe fields and the
//!   caller's payload, and finishes both checksums.
//! - [`SctpTemplate`]: an SCTP probe (IPv4 or IPv6 header plus an SCTP
//!   INIT or COOKIE ECHO) built once; [`SctpTemplate::stamp`] writes the
//!   per-probe fields, the cookie where replies reflect it, and the CRC32c
//!   ([`crc32c`]).
//! - [`parse_reply`]: the receive path. It takes untrusted bytes starting at
//!   the IP header and returns a small [`Reply`]: a TCP segment, a UDP
//!   datagram (with where its payload lies, a [`PayloadSpan`]), an SCTP
//!   packet (its verification tag and first chunk, an [`SctpChunk`]), an ICMP or
//!   ICMPv6 error with the [`Quoted`] probe it answers, or [`Reply::Other`].
//! - [`write_bare`]: a bare IP header of any protocol number with a cookie
//!   after it, for the IP protocol scan.
//! - [`write_query`] and [`parse_query_reply`]: ICMP echo and timestamp
//!   queries for host discovery, with a cookie in identifier and sequence.
//! - [`write_solicitation`] and [`parse_neighbour_reply`]: ARP and
//!   Neighbor Discovery on a directly attached segment;
//!   [`parse_neighbour_request`] and [`write_neighbour_answer`]: the same
//!   answered, for source addresses the scanner claims.
//! - Checked views ([`Ipv4Packet`], [`Ipv6Packet`], [`TcpPacket`],
//!   [`UdpPacket`], [`SctpPacket`], [`IcmpPacket`]) over borrowed bytes, for callers that
//!   need more fields.
//!
//! # The contract (every file keeps it)
//! - **Panics: none, on any input.** A view exists only after its
//!   constructor has validated the lengths, and it holds its fixed header as
//!   a `&[u8; N]`, so every accessor reads a constant offset inside an array
//!   of known size. The library code is linted against indexing, slicing,
//!   `unwrap` and `expect` (see the `deny` list below); tests check it with
//!   arbitrary bytes and with every truncation of real packets.
//! - **Allocation: none.** The crate is `no_std` without `alloc` (outside
//!   tests), so the compiler holds us to it. No I/O either.
//! - **Unsafe: none** (`forbid(unsafe_code)`).
//!
//! # Why hand-written and not `etherparse`
//! etherparse is a good general parser, but the hot path needs two narrow
//! things it does not give directly: a probe template patched in place with
//! checksums finished from precomputed sums (a copy plus a handful of
//! stores), and a reply parser that skips everything the scanner does not
//! read. Both fit in a few hundred lines we can hold to the no-panic, no-alloc
//! contract above, with no dependency to audit and a fuzz target later.
//!
//! Read first: RFC 791 (IPv4), RFC 8200 (IPv6), RFC 9293 (TCP), RFC 768
//! (UDP), RFC 9260 (SCTP), RFC 792
//! (ICMP), RFC 4443 (ICMPv6), RFC 1071 and RFC 1624 (checksums).

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::arithmetic_side_effects,
        clippy::print_stdout,
        clippy::print_stderr,
    )
)]

mod bare;
mod bytes;
pub mod checksum;
mod echo;
mod error;
pub mod icmp;
mod ipv4;
mod ipv6;
mod neighbour;
mod reply;
pub mod sctp;
mod syn;
mod tcp;
#[cfg(test)]
mod test_packets;
mod udp;

pub use bare::{BARE_PAYLOAD_LEN, write_bare};
pub use echo::{IcmpQuery, QueryReply, parse_query_reply, write_query};
pub use error::{Header, StampError, WireError};
pub use icmp::IcmpPacket;
pub use ipv4::Ipv4Packet;
pub use ipv6::Ipv6Packet;
pub use neighbour::{
    NeighbourReply, NeighbourRequest, parse_neighbour_reply, parse_neighbour_request,
    write_neighbour_answer, write_solicitation,
};
pub use reply::{PayloadSpan, Quoted, Reply, parse_reply};
pub use sctp::{SctpChunk, SctpPacket, SctpProbe, SctpTemplate, crc32c};
pub use syn::{SynOptions, SynTemplate};
pub use tcp::{TcpFlags, TcpPacket};
pub use udp::{UdpPacket, UdpTemplate};

/// IP protocol numbers (IPv4 "Protocol", IPv6 "Next Header") this crate
/// reads, from the IANA "Assigned Internet Protocol Numbers" registry.
pub mod ip_protocol {
    /// IPv6 Hop-by-Hop Options extension header (RFC 8200, section 4.3).
    pub const HOP_BY_HOP: u8 = 0;
    /// ICMP for IPv4 (RFC 792).
    pub const ICMP: u8 = 1;
    /// TCP (RFC 9293).
    pub const TCP: u8 = 6;
    /// UDP (RFC 768).
    pub const UDP: u8 = 17;
    /// SCTP (RFC 9260).
    pub const SCTP: u8 = 132;
    /// IPv6 Routing extension header (RFC 8200, section 4.4).
    pub const ROUTING: u8 = 43;
    /// IPv6 Fragment extension header (RFC 8200, section 4.5).
    pub const FRAGMENT: u8 = 44;
    /// ICMPv6 (RFC 4443).
    pub const ICMPV6: u8 = 58;
    /// IPv6 "No Next Header" (RFC 8200, section 4.7).
    pub const NO_NEXT_HEADER: u8 = 59;
    /// IPv6 Destination Options extension header (RFC 8200, section 4.6).
    pub const DESTINATION_OPTIONS: u8 = 60;
}
