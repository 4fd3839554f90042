//! Answers built byte by byte from the RFC layouts (RFC 791, RFC 8200,
//! RFC 9293, RFC 768, RFC 792, RFC 4443, RFC 9260), for the probe
//! modules' tests. Checksums are left zero: the parsers do not verify
//! them (the kernel has), and the modules never read them.

use std::net::IpAddr;

use portolan_engine::{PortState, Reason};

use super::{Judged, Keys, SourcePorts};
use crate::cookie::CookieJar;

/// The keys of a run whose source ports start at `base`.
pub fn keys(jar: &CookieJar, base: u16) -> Keys<'_> {
    Keys {
        jar,
        ports: SourcePorts::from_base(base),
    }
}

/// What an answer proves: its state and reason; `None` for no answer.
pub fn proves(judged: Judged) -> Option<(PortState, Reason)> {
    match judged {
        Judged::Answer(a) => Some((a.reply.state, a.reply.reason)),
        _ => None,
    }
}

/// Our address and a target's, in each family.
pub const V4_US: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 1));
pub const V4_TARGET: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 2));
pub const V6_US: IpAddr = IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0, 1));
pub const V6_TARGET: IpAddr = IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0, 2));

/// TCP control bits.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// An IP packet from `src` to `dst` of `protocol` carrying `payload`: an
/// IPv4 header of 20 bytes (DF set) or an IPv6 header of 40.
pub fn ip(src: IpAddr, dst: IpAddr, protocol: u8, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + payload.len()) as u16;
            p.extend_from_slice(&[0x45, 0]);
            p.extend_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&[0x12, 0x34, 0x40, 0, ttl, protocol, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&[0x60, 0, 0, 0]);
            p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            p.extend_from_slice(&[protocol, ttl]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
        }
        _ => panic!("addresses of two families"),
    }
    p.extend_from_slice(payload);
    p
}

/// Where the transport header of an IP packet from [`ip`] starts.
pub fn transport_offset(packet: &[u8]) -> usize {
    if packet[0] >> 4 == 4 { 20 } else { 40 }
}

/// A TCP header without options.
pub fn tcp(src_port: u16, dst_port: u16, seq: u32, ack: u32, flags: u8, window: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&src_port.to_be_bytes());
    t.extend_from_slice(&dst_port.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags]);
    t.extend_from_slice(&window.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t
}

/// A UDP datagram.
pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&src_port.to_be_bytes());
    u.extend_from_slice(&dst_port.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// An SCTP packet with one chunk of `kind` and `flags` carrying `body`.
pub fn sctp(src_port: u16, dst_port: u16, vtag: u32, kind: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&src_port.to_be_bytes());
    s.extend_from_slice(&dst_port.to_be_bytes());
    s.extend_from_slice(&vtag.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 0]);
    s.extend_from_slice(&[kind, flags]);
    s.extend_from_slice(&((4 + body.len()) as u16).to_be_bytes());
    s.extend_from_slice(body);
    while s.len() % 4 != 0 {
        s.push(0);
    }
    s
}

/// An SCTP INIT ACK's body (initiate tag, window, streams, initial TSN).
pub fn init_ack_body() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0x0bad_cafe_u32.to_be_bytes());
    b.extend_from_slice(&65_535u32.to_be_bytes());
    b.extend_from_slice(&[0, 10, 0, 10]);
    b.extend_from_slice(&1u32.to_be_bytes());
    b
}

/// Communication administratively prohibited in `us`'s family: ICMP type
/// 3 code 13, or ICMPv6 type 1 code 1.
pub fn prohibited(us: IpAddr) -> (u8, u8) {
    if us.is_ipv4() { (3, 13) } else { (1, 1) }
}

/// Port unreachable in `us`'s family: ICMP 3/3 or ICMPv6 1/4.
pub fn port_unreachable(us: IpAddr) -> (u8, u8) {
    if us.is_ipv4() { (3, 3) } else { (1, 4) }
}

/// Time exceeded in `us`'s family: ICMP 11/0 or ICMPv6 3/0.
pub fn time_exceeded(us: IpAddr) -> (u8, u8) {
    if us.is_ipv4() { (11, 0) } else { (3, 0) }
}

/// An ICMP (or ICMPv6) error of `(type, code)` from `from` to `us`
/// quoting `quoted` (our probe as sent).
pub fn icmp_unreachable(
    from: IpAddr,
    us: IpAddr,
    (kind, code): (u8, u8),
    quoted: &[u8],
) -> Vec<u8> {
    let mut m = vec![kind, code, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(quoted);
    let protocol = if us.is_ipv4() { 1 } else { 58 };
    ip(from, us, protocol, 61, &m)
}
