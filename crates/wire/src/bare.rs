//! Bare IP probes for the IP protocol scan (`-sO`): an IPv4 or IPv6 header
//! naming a protocol number, followed by 8 bytes that carry a cookie. A
//! host that does not speak the protocol answers with an ICMP protocol
//! unreachable (IPv4 type 3 code 2) or an ICMPv6 parameter problem
//! (type 4 code 1, unrecognized Next Header); both quote the probe, and
//! the quote's first 4 bytes after the IP header (what [`crate::Quoted`]
//! reads as the two "ports") are the cookie. The last 2 of the 8 bytes
//! make an Internet checksum come out right, because a firewall's reject
//! (Linux netfilter's `reject`) answers a protocol it does not know only
//! when the packet verifies as netfilter checks it: over IPv4 the payload
//! alone (its `nf_ip_checksum`), over IPv6 the payload with the
//! pseudo-header (`nf_ip6_checksum`).
//!
//! Read first: RFC 791 section 3.1 (Protocol), RFC 8200 section 3 (Next
//! Header) and section 4 (a host that does not recognize a Next Header
//! sends a parameter problem, code 1), RFC 1812 section 4.3.2.3 (how much
//! of the original packet an ICMP error quotes: at least 8 bytes).
//!
//! Contract: no panic on any input; no allocation.

use core::net::IpAddr;

use crate::bytes::{put_bytes, put16};
use crate::checksum;
use crate::error::StampError;
use crate::{ipv4, ipv6};

/// The bytes after the IP header: the cookie, 2 zero bytes and the
/// checksum (an ICMP error quotes at least 8).
pub const BARE_PAYLOAD_LEN: usize = 8;
/// Where the checksum lies in them.
const CHECKSUM_AT: usize = 6;

/// Writes a bare probe of IP protocol `protocol` from `src` to `dst` into
/// `buf`, starting at the IP header, with `cookie` in the first 4 bytes
/// after it, and returns its length.
///
/// # Errors
/// [`StampError::BufferTooSmall`] for a short buffer;
/// [`StampError::FamilyMismatch`] if `src` and `dst` differ in IP version.
/// Nothing is written then.
pub fn write_bare(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    cookie: u32,
    ip_id: u16,
) -> Result<usize, StampError> {
    let ip_len = match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => ipv4::HEADER_LEN,
        (IpAddr::V6(_), IpAddr::V6(_)) => ipv6::HEADER_LEN,
        _ => {
            return Err(StampError::FamilyMismatch {
                template_v6: src.is_ipv6(),
            });
        }
    };
    let len = ip_len.saturating_add(BARE_PAYLOAD_LEN);
    let available = buf.len();
    let Some(out) = buf.get_mut(..len) else {
        return Err(StampError::BufferTooSmall {
            needed: len,
            available,
        });
    };
    out.fill(0);
    // The pseudo-header's sum, IPv6 only (the payload's length is a
    // constant 8: the casts cannot truncate).
    let pseudo = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            // At most 48: the cast cannot truncate.
            ipv4::write_header(out, (s, d), protocol, len as u16, ip_id);
            0
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            ipv6::write_header(out, (&s, &d), protocol, BARE_PAYLOAD_LEN as u16);
            checksum::pseudo_header_v6(&s, &d, protocol, BARE_PAYLOAD_LEN as u32)
        }
        // Checked above.
        _ => return Err(StampError::FamilyMismatch { template_v6: false }),
    };
    let body = out.get_mut(ip_len..).unwrap_or(&mut []);
    put_bytes(body, 0, cookie.to_be_bytes());
    let sum = checksum::add(pseudo, checksum::sum(body));
    put16(body, CHECKSUM_AT, !sum);
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ipv4Packet, Ipv6Packet, Reply, parse_reply};
    use core::net::{Ipv4Addr, Ipv6Addr};

    const V4: (IpAddr, IpAddr) = (
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
    );

    #[test]
    fn ipv4_probe_names_the_protocol_and_carries_the_cookie() {
        let mut buf = [0u8; 64];
        let len = write_bare(&mut buf, V4.0, V4.1, 200, 0xdead_beef, 7).unwrap();
        assert_eq!(len, 28);
        let ip = Ipv4Packet::new_checked(&buf[..len]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.protocol(), ip.ident(), ip.ttl()), (200, 7, 64));
        assert_eq!(ip.payload()[..6], [0xde, 0xad, 0xbe, 0xef, 0, 0]);
        // The payload sums to all ones.
        assert_eq!(checksum::sum(ip.payload()), 0xffff);
    }

    #[test]
    fn ipv6_probe_names_the_protocol_and_carries_the_cookie() {
        let (s, d) = (
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
        );
        let mut buf = [0u8; 64];
        let len = write_bare(&mut buf, s, d, 253, 0x0102_0304, 0).unwrap();
        assert_eq!(len, 48);
        let ip = Ipv6Packet::new_checked(&buf[..len]).unwrap();
        assert_eq!((ip.next_header(), ip.payload_len()), (253, 8));
        assert_eq!(ip.payload()[..6], [1, 2, 3, 4, 0, 0]);
        let (IpAddr::V6(s6), IpAddr::V6(d6)) = (s, d) else {
            unreachable!()
        };
        let pseudo = checksum::pseudo_header_v6(&s6, &d6, 253, 8);
        assert_eq!(checksum::add(pseudo, checksum::sum(ip.payload())), 0xffff);
    }

    #[test]
    fn a_protocol_unreachable_quoting_it_gives_the_cookie_back() {
        let mut probe = [0u8; 28];
        write_bare(&mut probe, V4.0, V4.1, 200, 0xdead_beef, 7).unwrap();
        // The host's ICMP protocol unreachable, quoting the whole probe.
        let mut answer = [0u8; 20 + 8 + 28];
        answer[0] = 0x45;
        let total = answer.len() as u16;
        answer[2..4].copy_from_slice(&total.to_be_bytes());
        answer[8] = 64;
        answer[9] = 1;
        answer[12..16].copy_from_slice(&[198, 18, 0, 2]);
        answer[16..20].copy_from_slice(&[198, 18, 0, 1]);
        let sum = checksum::checksum(&answer[..20]);
        answer[10..12].copy_from_slice(&sum.to_be_bytes());
        answer[20] = 3;
        answer[21] = 2;
        answer[28..].copy_from_slice(&probe);
        let sum = checksum::checksum(&answer[20..]);
        answer[22..24].copy_from_slice(&sum.to_be_bytes());
        let Ok(Reply::IcmpError { quoted, code, .. }) = parse_reply(&answer) else {
            panic!("not read as an ICMP error");
        };
        assert_eq!(code, 2);
        assert_eq!(quoted.protocol, 200);
        assert_eq!((quoted.src_port, quoted.dst_port), (0xdead, 0xbeef));
    }

    #[test]
    fn short_buffers_and_mixed_families_are_refused() {
        let mut buf = [0u8; 27];
        assert!(matches!(
            write_bare(&mut buf, V4.0, V4.1, 1, 0, 0),
            Err(StampError::BufferTooSmall { needed: 28, .. })
        ));
        let mut buf = [0u8; 64];
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert!(write_bare(&mut buf, V4.0, v6, 1, 0, 0).is_err());
    }
}
