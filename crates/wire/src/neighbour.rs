//! Neighbour discovery on a directly attached segment, for host discovery
//! (nmap's ARP and ND pings): the ARP request (IPv4) and the ICMPv6
//! Neighbor Solicitation (IPv6) as whole Ethernet frames, and the ARP reply
//! and Neighbor Advertisement that answer them. And the other way round,
//! for source addresses the scanner claims without the kernel knowing
//! them (`-S` with several addresses): a neighbour's request read, and
//! our answer written.
//!
//! Read first: RFC 826 (ARP), RFC 4861 sections 4.3, 4.4 and 7.2 (Neighbor
//! Solicitation and Advertisement), RFC 4291 section 2.7.1 (the
//! solicited-node multicast address) and RFC 2464 section 7 (its Ethernet
//! address).
//!
//! Contract: no panic on any input; no allocation. Frames are written
//! whole; answers are read from their network header on (ARP header or
//! IPv6 header), as a packet socket of type `SOCK_DGRAM` delivers them.

use core::net::{IpAddr, Ipv6Addr};

use crate::bytes::{be16, ipv4_at, ipv6_at, put_bytes, put8, put16, tail, u8_at};
use crate::checksum;
use crate::error::StampError;
use crate::ip_protocol;
use crate::ipv6;

/// Ethernet header length; EtherTypes of ARP and IPv6.
const ETHERNET: usize = 14;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// An ARP packet for Ethernet and IPv4.
const ARP_LEN: usize = 28;
/// ICMPv6 Neighbor Solicitation / Advertisement: type, code, checksum,
/// 4 bytes of flags or reserved, the 16-byte target, then options.
const ND_TYPE_SOLICIT: u8 = 135;
const ND_TYPE_ADVERT: u8 = 136;
const ND_LEN: usize = 24;
/// The source (1) and target (2) link-layer address options, 8 bytes each.
const OPTION_SOURCE_LL: u8 = 1;
const OPTION_TARGET_LL: u8 = 2;
const OPTION_LL_LEN: usize = 8;

/// An answer of a neighbour on the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourReply {
    /// The address the neighbour answers for.
    pub addr: IpAddr,
    /// Its link-layer address, when the answer carries one.
    pub mac: Option<[u8; 6]>,
    /// The address the answer is for (ours), for ARP; unspecified for ND.
    pub to: IpAddr,
}

/// A neighbour asking for an address's link-layer address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourRequest {
    /// The address asked for.
    pub target: IpAddr,
    /// Who asks (its address, to answer to).
    pub asker: IpAddr,
    /// Its link-layer address (ARP's sender; ND's source link-layer
    /// option).
    pub asker_mac: [u8; 6],
}

/// Reads an ARP request (from the ARP header on) or a Neighbor
/// Solicitation (from the IPv6 header on) that names its asker; `None`
/// for anything else, including duplicate address detection (an asker
/// without an address, which no answer is for).
#[must_use]
pub fn parse_neighbour_request(packet: &[u8]) -> Option<NeighbourRequest> {
    if packet.len() >= ARP_LEN
        && be16(packet, 0) == 1
        && be16(packet, 2) == 0x0800
        && u8_at(packet, 4) == 6
        && u8_at(packet, 5) == 4
    {
        if be16(packet, 6) != 1 {
            return None;
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(packet.get(8..14)?);
        let asker = ipv4_at(packet, 14);
        if asker.is_unspecified() {
            return None;
        }
        return Some(NeighbourRequest {
            target: IpAddr::V4(ipv4_at(packet, 24)),
            asker: IpAddr::V4(asker),
            asker_mac: mac,
        });
    }
    if packet.len() < ipv6::HEADER_LEN
        || u8_at(packet, 0) >> 4 != 6
        || u8_at(packet, ipv6::field::NEXT_HEADER) != ip_protocol::ICMPV6
        || u8_at(packet, ipv6::field::HOP_LIMIT) != 255
    {
        return None;
    }
    let asker = ipv6_at(packet, ipv6::field::SRC_ADDR);
    let nd = tail(packet, ipv6::HEADER_LEN);
    if asker.is_unspecified()
        || nd.len() < ND_LEN
        || u8_at(nd, 0) != ND_TYPE_SOLICIT
        || u8_at(nd, 1) != 0
    {
        return None;
    }
    let asker_mac = link_layer_option(tail(nd, ND_LEN), OPTION_SOURCE_LL)?;
    Some(NeighbourRequest {
        target: IpAddr::V6(ipv6_at(nd, 8)),
        asker: IpAddr::V6(asker),
        asker_mac,
    })
}

/// The link-layer address in the first option of `kind` among a Neighbor
/// Discovery message's `options` (RFC 4861 section 4.6.1).
fn link_layer_option(mut options: &[u8], kind: u8) -> Option<[u8; 6]> {
    while options.len() >= 2 {
        let len = usize::from(u8_at(options, 1)).saturating_mul(8);
        if len == 0 || len > options.len() {
            break;
        }
        if u8_at(options, 0) == kind && len >= OPTION_LL_LEN {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(options.get(2..8)?);
            return Some(mac);
        }
        options = tail(options, len);
    }
    None
}

/// Writes an ARP packet for Ethernet and IPv4 (`op` 1 asks, 2 answers).
fn write_arp(
    arp: &mut [u8],
    op: u16,
    (sender_mac, sender): ([u8; 6], core::net::Ipv4Addr),
    (target_mac, target): ([u8; 6], core::net::Ipv4Addr),
) {
    put16(arp, 0, 1); // Ethernet
    put16(arp, 2, 0x0800); // IPv4
    put8(arp, 4, 6);
    put8(arp, 5, 4);
    put16(arp, 6, op);
    put_bytes(arp, 8, sender_mac);
    put_bytes(arp, 14, sender.octets());
    put_bytes(arp, 18, target_mac);
    put_bytes(arp, 24, target.octets());
}

/// Writes an IPv6 packet from `src` to `dst` holding a Neighbor Discovery
/// message of `kind` with `flags`, about `target`, with one link-layer
/// address option of `option` carrying `mac`, its checksum set.
fn write_nd(
    packet: &mut [u8],
    (src, dst): (Ipv6Addr, Ipv6Addr),
    (kind, flags): (u8, u8),
    target: Ipv6Addr,
    (option, mac): (u8, [u8; 6]),
) {
    use ipv6::field as f;
    let body = (ND_LEN + OPTION_LL_LEN) as u16;
    put8(packet, f::VER_TC_FLOW, 0x60);
    put16(packet, f::PAYLOAD_LEN, body);
    put8(packet, f::NEXT_HEADER, ip_protocol::ICMPV6);
    put8(packet, f::HOP_LIMIT, 255);
    put_bytes(packet, f::SRC_ADDR, src.octets());
    put_bytes(packet, f::DST_ADDR, dst.octets());
    let nd = packet.get_mut(ipv6::HEADER_LEN..).unwrap_or(&mut []);
    put8(nd, 0, kind);
    put8(nd, 4, flags);
    put_bytes(nd, 8, target.octets());
    put8(nd, ND_LEN, option);
    put8(nd, ND_LEN.saturating_add(1), 1);
    put_bytes(nd, ND_LEN.saturating_add(2), mac);
    let pseudo = checksum::pseudo_header_v6(&src, &dst, ip_protocol::ICMPV6, u32::from(body));
    let sum = checksum::add(pseudo, checksum::sum(nd));
    put16(nd, 2, !sum);
}

/// Writes the whole Ethernet frame answering `request` for its target
/// with our `mac`: an ARP reply, or a solicited Neighbor Advertisement
/// (with the override flag and our link-layer address) sent to the asker,
/// and returns its length.
///
/// # Errors
/// [`StampError::BufferTooSmall`] for a short buffer,
/// [`StampError::FamilyMismatch`] for a request mixing IP versions.
/// Nothing is written then.
pub fn write_neighbour_answer(
    buf: &mut [u8],
    mac: [u8; 6],
    request: &NeighbourRequest,
) -> Result<usize, StampError> {
    let len = match (request.target, request.asker) {
        (IpAddr::V4(_), IpAddr::V4(_)) => ETHERNET.saturating_add(ARP_LEN),
        (IpAddr::V6(_), IpAddr::V6(_)) => ETHERNET
            .saturating_add(ipv6::HEADER_LEN)
            .saturating_add(ND_LEN)
            .saturating_add(OPTION_LL_LEN),
        _ => {
            return Err(StampError::FamilyMismatch {
                template_v6: request.target.is_ipv6(),
            });
        }
    };
    let available = buf.len();
    let Some(out) = buf.get_mut(..len) else {
        return Err(StampError::BufferTooSmall {
            needed: len,
            available,
        });
    };
    out.fill(0);
    match (request.target, request.asker) {
        (IpAddr::V4(ours), IpAddr::V4(asker)) => {
            ethernet(out, request.asker_mac, mac, ETHERTYPE_ARP);
            let arp = out.get_mut(ETHERNET..).unwrap_or(&mut []);
            write_arp(arp, 2, (mac, ours), (request.asker_mac, asker));
        }
        (IpAddr::V6(ours), IpAddr::V6(asker)) => {
            ethernet(out, request.asker_mac, mac, ETHERTYPE_IPV6);
            let packet = out.get_mut(ETHERNET..).unwrap_or(&mut []);
            // Solicited, override.
            let advert = (ND_TYPE_ADVERT, 0x60);
            write_nd(packet, (ours, asker), advert, ours, (OPTION_TARGET_LL, mac));
        }
        _ => {}
    }
    Ok(len)
}

fn ethernet(out: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    put_bytes(out, 0, dst);
    put_bytes(out, 6, src);
    put16(out, 12, ethertype);
}

/// Writes a whole Ethernet frame asking who has `target` (ARP for IPv4,
/// a Neighbor Solicitation for IPv6), from our `mac` and `ip`, and returns
/// its length.
///
/// # Errors
/// [`StampError::BufferTooSmall`] for a short buffer,
/// [`StampError::FamilyMismatch`] when `ip` and `target` differ in IP
/// version. Nothing is written then.
pub fn write_solicitation(
    buf: &mut [u8],
    mac: [u8; 6],
    ip: IpAddr,
    target: IpAddr,
) -> Result<usize, StampError> {
    let len = match (ip, target) {
        (IpAddr::V4(_), IpAddr::V4(_)) => ETHERNET.saturating_add(ARP_LEN),
        (IpAddr::V6(_), IpAddr::V6(_)) => ETHERNET
            .saturating_add(ipv6::HEADER_LEN)
            .saturating_add(ND_LEN)
            .saturating_add(OPTION_LL_LEN),
        _ => {
            return Err(StampError::FamilyMismatch {
                template_v6: ip.is_ipv6(),
            });
        }
    };
    let available = buf.len();
    let Some(out) = buf.get_mut(..len) else {
        return Err(StampError::BufferTooSmall {
            needed: len,
            available,
        });
    };
    out.fill(0);
    match (ip, target) {
        (IpAddr::V4(ip), IpAddr::V4(target)) => {
            ethernet(out, [0xff; 6], mac, ETHERTYPE_ARP);
            let arp = out.get_mut(ETHERNET..).unwrap_or(&mut []);
            write_arp(arp, 1, (mac, ip), ([0; 6], target));
        }
        (IpAddr::V6(ip), IpAddr::V6(target)) => {
            let t = target.octets();
            let group = Ipv6Addr::new(
                0xff02,
                0,
                0,
                0,
                0,
                1,
                0xff00 | u16::from(t[13]),
                u16::from_be_bytes([t[14], t[15]]),
            );
            ethernet(
                out,
                [0x33, 0x33, 0xff, t[13], t[14], t[15]],
                mac,
                ETHERTYPE_IPV6,
            );
            let packet = out.get_mut(ETHERNET..).unwrap_or(&mut []);
            let solicit = (ND_TYPE_SOLICIT, 0);
            write_nd(
                packet,
                (ip, group),
                solicit,
                target,
                (OPTION_SOURCE_LL, mac),
            );
        }
        _ => {}
    }
    Ok(len)
}

/// Reads an ARP reply (from the ARP header on) or a Neighbor
/// Advertisement (from the IPv6 header on); `None` for anything else.
#[must_use]
pub fn parse_neighbour_reply(packet: &[u8]) -> Option<NeighbourReply> {
    if packet.len() >= ARP_LEN
        && be16(packet, 0) == 1
        && be16(packet, 2) == 0x0800
        && u8_at(packet, 4) == 6
        && u8_at(packet, 5) == 4
        && be16(packet, 6) == 2
    {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(packet.get(8..14)?);
        return Some(NeighbourReply {
            addr: IpAddr::V4(ipv4_at(packet, 14)),
            mac: Some(mac),
            to: IpAddr::V4(ipv4_at(packet, 24)),
        });
    }
    if packet.len() < ipv6::HEADER_LEN
        || u8_at(packet, 0) >> 4 != 6
        || u8_at(packet, ipv6::field::NEXT_HEADER) != ip_protocol::ICMPV6
        // A genuine advertisement comes from the link itself.
        || u8_at(packet, ipv6::field::HOP_LIMIT) != 255
    {
        return None;
    }
    let nd = tail(packet, ipv6::HEADER_LEN);
    if nd.len() < ND_LEN || u8_at(nd, 0) != ND_TYPE_ADVERT || u8_at(nd, 1) != 0 {
        return None;
    }
    let target = ipv6_at(nd, 8);
    Some(NeighbourReply {
        addr: IpAddr::V6(target),
        mac: link_layer_option(tail(nd, ND_LEN), OPTION_TARGET_LL),
        to: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_packets::{v4, v6};
    use proptest::prelude::*;

    const MAC: [u8; 6] = [2, 0x5c, 0x12, 0, 0, 1];
    const THEIRS: [u8; 6] = [2, 0x5c, 0x12, 0, 0, 2];

    #[test]
    fn arp_request_and_reply() {
        let mut buf = [0u8; 128];
        let n = write_solicitation(&mut buf, MAC, v4("198.18.0.1"), v4("198.18.0.2")).unwrap();
        assert_eq!(n, 42);
        assert_eq!(&buf[..6], &[0xff; 6]);
        assert_eq!(&buf[12..14], &[0x08, 0x06]);
        // Our own request is not a reply.
        assert_eq!(parse_neighbour_reply(&buf[14..n]), None);
        // The reply: operation 2, sender and target swapped.
        let mut reply = buf[14..n].to_vec();
        reply[7] = 2;
        reply[8..14].copy_from_slice(&THEIRS);
        reply[14..18].copy_from_slice(&[198, 18, 0, 2]);
        reply[18..24].copy_from_slice(&MAC);
        reply[24..28].copy_from_slice(&[198, 18, 0, 1]);
        assert_eq!(
            parse_neighbour_reply(&reply),
            Some(NeighbourReply {
                addr: v4("198.18.0.2"),
                mac: Some(THEIRS),
                to: v4("198.18.0.1"),
            })
        );
    }

    #[test]
    fn neighbor_solicitation_is_valid_and_the_advertisement_is_read() {
        let mut buf = [0u8; 128];
        let n = write_solicitation(&mut buf, MAC, v6("fd00::1"), v6("fd00::abcd:1234")).unwrap();
        assert_eq!(&buf[..6], &[0x33, 0x33, 0xff, 0xcd, 0x12, 0x34]);
        let packet = &buf[14..n];
        let group: Ipv6Addr = "ff02::1:ffcd:1234".parse().unwrap();
        assert_eq!(&packet[24..40], &group.octets());
        let IpAddr::V6(src) = v6("fd00::1") else {
            unreachable!()
        };
        let pseudo = checksum::pseudo_header_v6(&src, &group, 58, (n - 54) as u32);
        assert_eq!(checksum::add(pseudo, checksum::sum(&packet[40..])), 0xffff);
        // An advertisement for the target with its link-layer address.
        let mut advert = packet.to_vec();
        advert[40] = ND_TYPE_ADVERT;
        advert[64] = OPTION_TARGET_LL;
        advert[66..72].copy_from_slice(&THEIRS);
        assert_eq!(
            parse_neighbour_reply(&advert),
            Some(NeighbourReply {
                addr: v6("fd00::abcd:1234"),
                mac: Some(THEIRS),
                to: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            })
        );
        // Not from the link: ignored.
        advert[7] = 64;
        assert_eq!(parse_neighbour_reply(&advert), None);
    }

    #[test]
    fn mixed_families_and_short_buffers_are_errors() {
        let mut buf = [0u8; 128];
        assert!(write_solicitation(&mut buf, MAC, v4("198.18.0.1"), v6("fd00::2")).is_err());
        assert!(
            write_solicitation(&mut buf[..41], MAC, v4("198.18.0.1"), v4("198.18.0.2")).is_err()
        );
        assert_eq!(buf, [0u8; 128]);
    }

    #[test]
    fn a_request_is_read_and_answered_for_both_families() {
        let mut buf = [0u8; 128];
        // Their ARP request for our claimed address; our reply to them.
        let n = write_solicitation(&mut buf, THEIRS, v4("198.18.0.2"), v4("198.18.0.100")).unwrap();
        let request = parse_neighbour_request(&buf[14..n]).unwrap();
        assert_eq!(
            request,
            NeighbourRequest {
                target: v4("198.18.0.100"),
                asker: v4("198.18.0.2"),
                asker_mac: THEIRS,
            }
        );
        let mut answer = [0u8; 128];
        let m = write_neighbour_answer(&mut answer, MAC, &request).unwrap();
        assert_eq!(&answer[..6], &THEIRS, "unicast to the asker");
        assert_eq!(
            parse_neighbour_reply(&answer[14..m]),
            Some(NeighbourReply {
                addr: v4("198.18.0.100"),
                mac: Some(MAC),
                to: v4("198.18.0.2"),
            })
        );
        // The same in IPv6: a solicitation, our advertisement with a
        // valid checksum.
        let n = write_solicitation(&mut buf, THEIRS, v6("fd00::2"), v6("fd00::100")).unwrap();
        let request = parse_neighbour_request(&buf[14..n]).unwrap();
        assert_eq!(request.target, v6("fd00::100"));
        assert_eq!(request.asker, v6("fd00::2"));
        let m = write_neighbour_answer(&mut answer, MAC, &request).unwrap();
        let packet = &answer[14..m];
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (v6("fd00::100"), v6("fd00::2")) else {
            unreachable!()
        };
        let pseudo = checksum::pseudo_header_v6(&src, &dst, 58, (m - 54) as u32);
        assert_eq!(checksum::add(pseudo, checksum::sum(&packet[40..])), 0xffff);
        assert_eq!(
            parse_neighbour_reply(packet),
            Some(NeighbourReply {
                addr: v6("fd00::100"),
                mac: Some(MAC),
                to: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            })
        );
        // Replies are not requests; duplicate address detection (no
        // asker) is not answered.
        assert_eq!(parse_neighbour_request(packet), None);
        let n = write_solicitation(&mut buf, THEIRS, v4("0.0.0.0"), v4("198.18.0.100")).unwrap();
        assert_eq!(parse_neighbour_request(&buf[14..n]), None);
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse_neighbour_reply(&bytes);
            let _ = parse_neighbour_request(&bytes);
        }
    }
}
