//! Packet → flow event: the link layer (Ethernet with VLAN tags, Linux
//! cooked, raw IP) is stripped here, the IP and transport headers are read
//! through `portolan-wire`'s checked views, and one small `Copy` value
//! comes out. Nothing is allocated; a packet this cannot read returns
//! `None` (the caller counts it). Never a panic.
//!
//! Specs: RFC 791, RFC 8200, RFC 9293 (TCP flags), RFC 792 and RFC 4443
//! (unreachables quote the offending header), RFC 9260 (SCTP chunks).

use std::net::IpAddr;

use portolan_wire::icmp::{v4, v6};
use portolan_wire::sctp::chunk;
use portolan_wire::{
    IcmpPacket, Ipv4Packet, Ipv6Packet, SctpPacket, TcpFlags, TcpPacket, UdpPacket,
};

/// LINKTYPE numbers this decoder reads (tcpdump.org/linktypes.html).
pub mod linktype {
    /// BSD loopback (a host-order address family word).
    pub const NULL: u32 = 0;
    /// Ethernet II.
    pub const ETHERNET: u32 = 1;
    /// Raw IP, version from the first nibble.
    pub const RAW: u32 = 101;
    /// Linux cooked capture v1.
    pub const LINUX_SLL: u32 = 113;
    /// Raw IPv4.
    pub const IPV4: u32 = 228;
    /// Raw IPv6.
    pub const IPV6: u32 = 229;
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: u32 = 276;
}

/// The transport protocol of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP or ICMPv6 (ports are 0).
    Icmp,
    /// SCTP.
    Sctp,
}

/// What a packet means for the detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A connection attempt: TCP SYN without ACK, SCTP INIT, a UDP
    /// datagram or an ICMP echo request (a probe of `dst`:`dport`).
    Attempt,
    /// A positive answer: TCP SYN+ACK, SCTP INIT-ACK, ICMP echo reply, a
    /// UDP datagram (an attempt too: the detector tells which by order).
    Accept,
    /// A negative answer from `src` to `dst` about `src`:`sport`: TCP RST,
    /// SCTP ABORT.
    Reject,
    /// An ICMP unreachable from `src` (a router or the target) about a
    /// probe that `dst` sent to `quoted_dst`:`dport` (`sport` is the probe's
    /// source port).
    Unreachable {
        /// The probe's destination address.
        quoted_dst: IpAddr,
    },
    /// Anything else (data, ACKs, FINs): it shows a conversation.
    Other,
}

/// Scanner traits read from a probe's fixed fields (evidence only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Traits {
    /// IPv4 identification (0 for IPv6).
    pub ip_id: u16,
    /// TTL or hop limit.
    pub ttl: u8,
    /// TCP window.
    pub window: u16,
    /// TCP options length in bytes.
    pub tcp_options_len: u8,
    /// TCP sequence number.
    pub seq: u32,
}

/// One decoded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowEvent {
    /// Capture time, nanoseconds.
    pub ts_ns: u64,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Transport protocol (for unreachables: the quoted probe's).
    pub proto: Proto,
    /// Source port (0 for ICMP).
    pub sport: u16,
    /// Destination port (0 for ICMP).
    pub dport: u16,
    /// What it means.
    pub kind: EventKind,
    /// Fixed fields for scanner fingerprints.
    pub traits: Traits,
}

/// Decodes one captured packet of link type `linktype`.
pub fn decode(linktype: u32, ts_ns: u64, data: &[u8]) -> Option<FlowEvent> {
    let ip = strip_link(linktype, data)?;
    match ip.first()? >> 4 {
        4 => {
            let p = Ipv4Packet::new_truncated(ip).ok()?;
            if p.frag_offset() != 0 {
                return None;
            }
            let traits = Traits {
                ip_id: p.ident(),
                ttl: p.ttl(),
                ..Traits::default()
            };
            transport(
                ts_ns,
                p.src_addr().into(),
                p.dst_addr().into(),
                p.protocol(),
                p.payload(),
                traits,
                false,
            )
        }
        6 => {
            let p = Ipv6Packet::new_truncated(ip).ok()?;
            let (next, payload) = p.upper_layer().ok()??;
            let traits = Traits {
                ttl: p.hop_limit(),
                ..Traits::default()
            };
            transport(
                ts_ns,
                p.src_addr().into(),
                p.dst_addr().into(),
                next,
                payload,
                traits,
                true,
            )
        }
        _ => None,
    }
}

/// Returns the IP packet inside a link-layer frame.
fn strip_link(linktype: u32, data: &[u8]) -> Option<&[u8]> {
    match linktype {
        linktype::RAW | linktype::IPV4 | linktype::IPV6 => Some(data),
        linktype::NULL => data.get(4..),
        linktype::ETHERNET => {
            let mut at = 12;
            loop {
                let ethertype = u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]);
                match ethertype {
                    0x8100 | 0x88a8 => at += 4,
                    0x0800 | 0x86dd => return data.get(at + 2..),
                    _ => return None,
                }
            }
        }
        linktype::LINUX_SLL => data.get(16..),
        linktype::LINUX_SLL2 => data.get(20..),
        _ => None,
    }
}

fn transport(
    ts_ns: u64,
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    payload: &[u8],
    mut traits: Traits,
    v6: bool,
) -> Option<FlowEvent> {
    let event = |proto, sport, dport, kind, traits| FlowEvent {
        ts_ns,
        src,
        dst,
        proto,
        sport,
        dport,
        kind,
        traits,
    };
    match protocol {
        6 => {
            let t = TcpPacket::new_checked(payload).ok()?;
            let f = t.flags();
            traits.window = t.window_len();
            traits.tcp_options_len = t.options().len().min(255) as u8;
            traits.seq = t.seq_number();
            let kind = if f.contains(TcpFlags::RST) {
                EventKind::Reject
            } else if f.contains(TcpFlags::SYN) && f.contains(TcpFlags::ACK) {
                EventKind::Accept
            } else if f.contains(TcpFlags::SYN) {
                EventKind::Attempt
            } else {
                EventKind::Other
            };
            Some(event(Proto::Tcp, t.src_port(), t.dst_port(), kind, traits))
        }
        17 => {
            let u = UdpPacket::new_checked(payload).ok()?;
            Some(event(
                Proto::Udp,
                u.src_port(),
                u.dst_port(),
                EventKind::Attempt,
                traits,
            ))
        }
        132 => {
            let s = SctpPacket::new_checked(payload).ok()?;
            let kind = match s.chunk_type() {
                chunk::INIT => EventKind::Attempt,
                chunk::INIT_ACK => EventKind::Accept,
                chunk::ABORT => EventKind::Reject,
                _ => EventKind::Other,
            };
            Some(event(Proto::Sctp, s.src_port(), s.dst_port(), kind, traits))
        }
        1 | 58 => {
            let i = IcmpPacket::new_checked(payload).ok()?;
            let (echo_req, echo_rep, unreach) = if v6 {
                (v6::ECHO_REQUEST, v6::ECHO_REPLY, v6::DEST_UNREACHABLE)
            } else {
                (v4::ECHO_REQUEST, v4::ECHO_REPLY, v4::DEST_UNREACHABLE)
            };
            let t = i.msg_type();
            if t == echo_req {
                Some(event(Proto::Icmp, 0, 0, EventKind::Attempt, traits))
            } else if t == echo_rep {
                Some(event(Proto::Icmp, 0, 0, EventKind::Accept, traits))
            } else if t == unreach {
                quoted(i.payload(), v6).map(|(qdst, proto, sport, dport)| {
                    event(
                        proto,
                        sport,
                        dport,
                        EventKind::Unreachable { quoted_dst: qdst },
                        traits,
                    )
                })
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Reads the probe an unreachable quotes: its destination, protocol, ports.
fn quoted(bytes: &[u8], v6: bool) -> Option<(IpAddr, Proto, u16, u16)> {
    let (dst, protocol, rest): (IpAddr, u8, &[u8]) = if v6 {
        let q = Ipv6Packet::new_truncated(bytes).ok()?;
        let (next, rest) = q.upper_layer().ok()??;
        (q.dst_addr().into(), next, rest)
    } else {
        let q = Ipv4Packet::new_truncated(bytes).ok()?;
        (q.dst_addr().into(), q.protocol(), q.payload())
    };
    let proto = match protocol {
        6 => Proto::Tcp,
        17 => Proto::Udp,
        132 => Proto::Sctp,
        _ => return None,
    };
    let sport = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
    let dport = u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]);
    Some((dst, proto, sport, dport))
}
