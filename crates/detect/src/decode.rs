//! Packet → flow event: the link layer (Ethernet with VLAN tags, Linux
//! cooked, raw IP) is stripped here (its source address kept, when it has
//! one), the IP and transport headers are read through `portolan-wire`'s
//! checked views, and one small `Copy` value comes out. ARP requests and
//! replies (through `portolan-wire`'s neighbour parsers) are events too: a
//! request is an attempt on the address it asks for, a reply its answer,
//! so an ARP sweep of a segment is read as any other sweep. Nothing is allocated; a packet this cannot read returns
//! `None` (the caller counts it). Never a panic.
//!
//! Specs: RFC 826 (ARP), RFC 791, RFC 8200, RFC 9293 (TCP flags), RFC 792 and RFC 4443
//! (unreachables quote the offending header), RFC 9260 (SCTP chunks).

use std::net::IpAddr;

use portolan_wire::icmp::{v4, v6};
use portolan_wire::sctp::chunk;
use portolan_wire::{
    IcmpPacket, Ipv4Packet, Ipv6Packet, SctpPacket, TcpFlags, TcpPacket, UdpPacket,
    parse_neighbour_reply, parse_neighbour_request,
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
    /// ARP (IPv4 over Ethernet; ports are 0).
    Arp,
}

/// What a packet means for the detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A connection attempt: TCP SYN without ACK, SCTP INIT, a UDP
    /// datagram, an ICMP echo request or an ARP request (a probe of
    /// `dst`:`dport`).
    Attempt,
    /// A positive answer: TCP SYN+ACK, SCTP INIT-ACK, ICMP echo reply, an
    /// ARP reply, a UDP datagram (an attempt too: the detector tells which
    /// by order).
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
    /// The frame's source link-layer address, when the capture has one
    /// (Ethernet, Linux cooked); for ARP, the sender's hardware address.
    pub mac: Option<[u8; 6]>,
}

/// Decodes one captured packet of link type `linktype`.
pub fn decode(linktype: u32, ts_ns: u64, data: &[u8]) -> Option<FlowEvent> {
    let frame = strip_link(linktype, data)?;
    match frame.ethertype {
        Some(ETHERTYPE_ARP) => arp(ts_ns, frame.payload, frame.mac),
        None | Some(ETHERTYPE_IPV4 | ETHERTYPE_IPV6) => ip(ts_ns, frame.payload, frame.mac),
        Some(_) => None,
    }
}

/// Decodes a packet as a Linux packet socket of type `SOCK_DGRAM` hands
/// it over (live capture): from its network header on, with the
/// link-layer source the socket reported. ARP is told from IP by its
/// first byte (ARP's hardware type starts with a zero byte; an IP header
/// starts with its version, 4 or 6).
pub fn decode_network(ts_ns: u64, packet: &[u8], mac: Option<[u8; 6]>) -> Option<FlowEvent> {
    match packet.first()? >> 4 {
        4 | 6 => ip(ts_ns, packet, mac),
        _ => arp(ts_ns, packet, mac),
    }
}

/// An IPv4 or IPv6 packet, from its header on.
fn ip(ts_ns: u64, ip: &[u8], mac: Option<[u8; 6]>) -> Option<FlowEvent> {
    let event = match ip.first()? >> 4 {
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
    }?;
    Some(FlowEvent { mac, ..event })
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_ARP: u16 = 0x0806;

/// A frame with its link layer read.
struct Frame<'a> {
    /// The EtherType, when the link layer names one (raw IP names none).
    ethertype: Option<u16>,
    /// The source link-layer address, when it is an Ethernet one.
    mac: Option<[u8; 6]>,
    /// What follows the link-layer header.
    payload: &'a [u8],
}

/// Reads the link-layer header of a frame.
fn strip_link(linktype: u32, data: &[u8]) -> Option<Frame<'_>> {
    let be16 = |at: usize| Some(u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]));
    // Linux cooked headers carry the sender's address and its length.
    let cooked_mac = |len_at: usize, addr_at: usize| {
        let len = be16(len_at)?;
        let addr = data.get(addr_at..addr_at + 6)?;
        (len == 6).then(|| addr.try_into().ok()).flatten()
    };
    let frame = |ethertype, mac, at: usize| {
        Some(Frame {
            ethertype,
            mac,
            payload: data.get(at..)?,
        })
    };
    match linktype {
        linktype::RAW | linktype::IPV4 | linktype::IPV6 => frame(None, None, 0),
        linktype::NULL => frame(None, None, 4),
        linktype::ETHERNET => {
            let mac = data.get(6..12).and_then(|m| m.try_into().ok());
            let mut at = 12;
            loop {
                match be16(at)? {
                    0x8100 | 0x88a8 => at += 4,
                    ethertype => return frame(Some(ethertype), mac, at + 2),
                }
            }
        }
        // pkttype, hatype, address length (at 4), address (8 bytes),
        // protocol (at 14).
        linktype::LINUX_SLL => frame(be16(14), cooked_mac(4, 6), 16),
        // protocol (at 0), reserved, ifindex, hatype, pkttype, address
        // length (one byte, at 11), address (at 12).
        linktype::LINUX_SLL2 => {
            let len = *data.get(11)?;
            let mac = if len == 6 {
                data.get(12..18).and_then(|m| m.try_into().ok())
            } else {
                None
            };
            frame(be16(0), mac, 20)
        }
        _ => None,
    }
}

/// An ARP request or reply (IPv4 over Ethernet) as an event: a request
/// from its sender to the address it asks for, a reply from the address
/// answered for to the one who asked. Gratuitous ARP (an address asking
/// for itself) and duplicate address probes (no sender address) probe no
/// one.
fn arp(ts_ns: u64, packet: &[u8], frame_mac: Option<[u8; 6]>) -> Option<FlowEvent> {
    let (src, dst, kind, mac) = if let Some(request) = parse_neighbour_request(packet) {
        (
            request.asker,
            request.target,
            EventKind::Attempt,
            Some(request.asker_mac),
        )
    } else {
        let reply = parse_neighbour_reply(packet)?;
        (reply.addr, reply.to, EventKind::Accept, reply.mac)
    };
    if src == dst || !src.is_ipv4() || src.is_unspecified() {
        return None;
    }
    Some(FlowEvent {
        ts_ns,
        src,
        dst,
        proto: Proto::Arp,
        sport: 0,
        dport: 0,
        kind,
        traits: Traits::default(),
        mac: mac.or(frame_mac),
    })
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
        mac: None,
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use portolan_wire::{NeighbourRequest, write_neighbour_answer, write_solicitation};

    use super::*;

    const ASKER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const OWNER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, last))
    }

    fn request(asker: IpAddr, target: IpAddr) -> Vec<u8> {
        let mut frame = vec![0; 64];
        let n = write_solicitation(&mut frame, ASKER_MAC, asker, target).unwrap();
        frame.truncate(n);
        frame
    }

    /// The same frame as Linux cooked v1 and v2 captures show it: the
    /// sender's address and the protocol in the cooked header.
    fn cooked(frame: &[u8], v2: bool) -> Vec<u8> {
        let (mac, ethertype, payload) = (&frame[6..12], &frame[12..14], &frame[14..]);
        let mut out = if v2 {
            let mut h = vec![0; 20];
            h[0..2].copy_from_slice(ethertype);
            h[8..10].copy_from_slice(&1u16.to_be_bytes());
            h[11] = 6;
            h[12..18].copy_from_slice(mac);
            h
        } else {
            let mut h = vec![0; 16];
            h[2..4].copy_from_slice(&1u16.to_be_bytes());
            h[4..6].copy_from_slice(&6u16.to_be_bytes());
            h[6..12].copy_from_slice(mac);
            h[14..16].copy_from_slice(ethertype);
            h
        };
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn an_arp_request_and_its_reply_are_an_attempt_and_its_answer_on_every_link_type() {
        let ask = request(v4(1), v4(9));
        let mut answer = vec![0; 64];
        let asked = NeighbourRequest {
            target: v4(9),
            asker: v4(1),
            asker_mac: ASKER_MAC,
        };
        let n = write_neighbour_answer(&mut answer, OWNER_MAC, &asked).unwrap();
        answer.truncate(n);
        for (link, ask, answer) in [
            (linktype::ETHERNET, ask.clone(), answer.clone()),
            (
                linktype::LINUX_SLL,
                cooked(&ask, false),
                cooked(&answer, false),
            ),
            (
                linktype::LINUX_SLL2,
                cooked(&ask, true),
                cooked(&answer, true),
            ),
        ] {
            let e = decode(link, 7, &ask).expect("the request");
            assert_eq!((e.src, e.dst, e.proto), (v4(1), v4(9), Proto::Arp));
            assert_eq!((e.kind, e.mac), (EventKind::Attempt, Some(ASKER_MAC)));
            let e = decode(link, 8, &answer).expect("the reply");
            assert_eq!((e.src, e.dst, e.kind), (v4(9), v4(1), EventKind::Accept));
            assert_eq!(e.mac, Some(OWNER_MAC));
        }
    }

    #[test]
    fn gratuitous_arp_probes_no_one() {
        assert_eq!(decode(linktype::ETHERNET, 0, &request(v4(1), v4(1))), None);
    }

    #[test]
    fn an_ip_packet_s_frame_source_is_kept_and_raw_ip_has_none() {
        // IPv4 + TCP SYN, 198.18.0.1 → 198.18.0.2:22 (checksums unread).
        let mut ip = vec![0u8; 40];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
        ip[16..20].copy_from_slice(&[198, 18, 0, 2]);
        ip[20..22].copy_from_slice(&40000u16.to_be_bytes());
        ip[22..24].copy_from_slice(&22u16.to_be_bytes());
        ip[32] = 5 << 4;
        ip[33] = 0x02;
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&ASKER_MAC);
        frame.extend_from_slice(&0x0800u16.to_be_bytes());
        frame.extend_from_slice(&ip);
        for (link, bytes) in [
            (linktype::ETHERNET, frame.clone()),
            (linktype::LINUX_SLL, cooked(&frame, false)),
            (linktype::LINUX_SLL2, cooked(&frame, true)),
        ] {
            let e = decode(link, 0, &bytes).expect("a SYN");
            assert_eq!((e.kind, e.mac), (EventKind::Attempt, Some(ASKER_MAC)));
        }
        let e = decode(linktype::RAW, 0, &ip).expect("a SYN");
        assert_eq!(e.mac, None);
    }
}
