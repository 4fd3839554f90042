//! ICMP queries for host discovery: the echo request (`-PE`, ICMP and
//! ICMPv6), the timestamp request (`-PP`) and the address mask request
//! (`-PM`, RFC 950; both IPv4 only) that go out, and their replies
//! ([`parse_query_reply`]).
//! The identifier and sequence number, which a reply echoes, carry a
//! 32-bit cookie between them.
//!
//! Read first: RFC 792 (echo, timestamp), RFC 4443 section 4 (ICMPv6
//! echo) and RFC 8200 section 8.1 (the ICMPv6 checksum's pseudo-header).
//!
//! Contract: no panic on any input; no allocation; a reply is recognised
//! only with its type, its length and (for a plain IPv6 header) no
//! extension headers.

use core::net::IpAddr;

use crate::bytes::{be32, ipv4_at, ipv6_at, put8, put16, tail, u8_at};
use crate::checksum;
use crate::error::StampError;
use crate::ip_protocol;
use crate::{ipv4, ipv6};

/// ICMP timestamp request and reply (RFC 792).
const TIMESTAMP_REQUEST: u8 = 13;
const TIMESTAMP_REPLY: u8 = 14;
/// ICMP address mask request and reply (RFC 950), with a 4-byte mask.
const MASK_REQUEST: u8 = 17;
const MASK_REPLY: u8 = 18;
const MASK: usize = 4;
/// The ICMP header: type, code, checksum, identifier, sequence number.
const ICMP_HEADER: usize = 8;
/// The three 32-bit timestamps after a timestamp message's header.
const TIMESTAMPS: usize = 12;

/// Which ICMP query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IcmpQuery {
    /// Echo request / reply (ICMP type 8/0, ICMPv6 type 128/129).
    Echo,
    /// Timestamp request / reply (ICMP type 13/14; no ICMPv6 form).
    Timestamp,
    /// Address mask request / reply (ICMP type 17/18; no ICMPv6 form).
    AddressMask,
}

/// An ICMP query's reply, as read by [`parse_query_reply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryReply {
    /// The host that answered.
    pub src: IpAddr,
    /// Our address.
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit as received.
    pub ttl: u8,
    /// Which query it answers.
    pub query: IcmpQuery,
    /// The identifier and sequence number, echoed from the request.
    pub cookie: u32,
}

/// Writes an ICMP query from `src` to `dst` into `buf`, starting at the IP
/// header, with `cookie` as its identifier and sequence number, and
/// returns its length.
///
/// # Errors
/// [`StampError::BufferTooSmall`] for a short buffer;
/// [`StampError::FamilyMismatch`] if `src` and `dst` differ in IP version
/// or a timestamp or address mask request is asked for over IPv6. Nothing
/// is written then.
pub fn write_query(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    query: IcmpQuery,
    cookie: u32,
    ip_id: u16,
) -> Result<usize, StampError> {
    let body = match query {
        IcmpQuery::Echo => ICMP_HEADER,
        IcmpQuery::Timestamp => ICMP_HEADER.saturating_add(TIMESTAMPS),
        IcmpQuery::AddressMask => ICMP_HEADER.saturating_add(MASK),
    };
    let (ip_len, v6) = match (src, dst, query) {
        (IpAddr::V4(_), IpAddr::V4(_), _) => (ipv4::HEADER_LEN, false),
        (IpAddr::V6(_), IpAddr::V6(_), IcmpQuery::Echo) => (ipv6::HEADER_LEN, true),
        _ => {
            return Err(StampError::FamilyMismatch {
                template_v6: src.is_ipv6(),
            });
        }
    };
    let len = ip_len.saturating_add(body);
    let available = buf.len();
    let Some(out) = buf.get_mut(..len) else {
        return Err(StampError::BufferTooSmall {
            needed: len,
            available,
        });
    };
    out.fill(0);
    // Both at most 60: the casts cannot truncate.
    let body16 = body as u16;
    let (icmp_type, pseudo) = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            ipv4::write_header(out, (s, d), ip_protocol::ICMP, len as u16, ip_id);
            let t = match query {
                IcmpQuery::Echo => crate::icmp::v4::ECHO_REQUEST,
                IcmpQuery::Timestamp => TIMESTAMP_REQUEST,
                IcmpQuery::AddressMask => MASK_REQUEST,
            };
            (t, 0)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            ipv6::write_header(out, (&s, &d), ip_protocol::ICMPV6, body16);
            let pseudo = checksum::pseudo_header_v6(&s, &d, ip_protocol::ICMPV6, u32::from(body16));
            (crate::icmp::v6::ECHO_REQUEST, pseudo)
        }
        // Checked above.
        _ => return Err(StampError::FamilyMismatch { template_v6: v6 }),
    };
    let icmp = out.get_mut(ip_len..).unwrap_or(&mut []);
    put8(icmp, 0, icmp_type);
    put16(icmp, 4, (cookie >> 16) as u16);
    put16(icmp, 6, cookie as u16);
    let sum = checksum::add(pseudo, checksum::sum(icmp));
    put16(icmp, 2, !sum);
    Ok(len)
}

/// Reads an ICMP echo or timestamp reply (from its IP header on), or
/// returns `None` for anything else.
#[must_use]
pub fn parse_query_reply(packet: &[u8]) -> Option<QueryReply> {
    let version = u8_at(packet, 0) >> 4;
    let (src, dst, ttl, icmp, v6) = match version {
        4 => {
            let ihl = usize::from(u8_at(packet, 0) & 0x0f).saturating_mul(4);
            if ihl < ipv4::HEADER_LEN
                || packet.len() < ihl
                || u8_at(packet, ipv4::field::PROTOCOL) != ip_protocol::ICMP
            {
                return None;
            }
            (
                IpAddr::V4(ipv4_at(packet, ipv4::field::SRC_ADDR)),
                IpAddr::V4(ipv4_at(packet, ipv4::field::DST_ADDR)),
                u8_at(packet, ipv4::field::TTL),
                tail(packet, ihl),
                false,
            )
        }
        6 => {
            if packet.len() < ipv6::HEADER_LEN
                || u8_at(packet, ipv6::field::NEXT_HEADER) != ip_protocol::ICMPV6
            {
                return None;
            }
            (
                IpAddr::V6(ipv6_at(packet, ipv6::field::SRC_ADDR)),
                IpAddr::V6(ipv6_at(packet, ipv6::field::DST_ADDR)),
                u8_at(packet, ipv6::field::HOP_LIMIT),
                tail(packet, ipv6::HEADER_LEN),
                true,
            )
        }
        _ => return None,
    };
    if icmp.len() < ICMP_HEADER {
        return None;
    }
    let query = match (v6, u8_at(icmp, 0)) {
        (false, crate::icmp::v4::ECHO_REPLY) | (true, crate::icmp::v6::ECHO_REPLY) => {
            IcmpQuery::Echo
        }
        (false, TIMESTAMP_REPLY) if icmp.len() >= ICMP_HEADER.saturating_add(TIMESTAMPS) => {
            IcmpQuery::Timestamp
        }
        (false, MASK_REPLY) if icmp.len() >= ICMP_HEADER.saturating_add(MASK) => {
            IcmpQuery::AddressMask
        }
        _ => return None,
    };
    let cookie = be32(icmp, 4);
    Some(QueryReply {
        src,
        dst,
        ttl,
        query,
        cookie,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_packets::{v4, v6};
    use proptest::prelude::*;

    /// The reply a host would send: the request with addresses swapped and
    /// the type changed.
    fn reply_to(request: &[u8], v6: bool) -> Vec<u8> {
        let mut r = request.to_vec();
        if v6 {
            let (s, d) = (r[8..24].to_vec(), r[24..40].to_vec());
            r[8..24].copy_from_slice(&d);
            r[24..40].copy_from_slice(&s);
            r[40] = crate::icmp::v6::ECHO_REPLY;
        } else {
            let (s, d) = (r[12..16].to_vec(), r[16..20].to_vec());
            r[12..16].copy_from_slice(&d);
            r[16..20].copy_from_slice(&s);
            r[20] = match r[20] {
                8 => 0,
                MASK_REQUEST => MASK_REPLY,
                _ => TIMESTAMP_REPLY,
            };
        }
        r
    }

    #[test]
    fn queries_have_valid_checksums_and_replies_give_the_cookie_back() {
        let mut buf = [0u8; 64];
        for (src, dst, query) in [
            (v4("198.18.0.1"), v4("198.18.0.2"), IcmpQuery::Echo),
            (v4("198.18.0.1"), v4("198.18.0.2"), IcmpQuery::Timestamp),
            (v4("198.18.0.1"), v4("198.18.0.2"), IcmpQuery::AddressMask),
            (v6("fd00::1"), v6("fd00::2"), IcmpQuery::Echo),
        ] {
            let n = write_query(&mut buf, src, dst, query, 0xdead_beef, 7).unwrap();
            let packet = &buf[..n];
            if src.is_ipv4() {
                assert_eq!(checksum::checksum(&packet[..20]), 0);
                assert_eq!(checksum::checksum(&packet[20..]), 0);
            } else {
                let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) else {
                    unreachable!()
                };
                let pseudo = checksum::pseudo_header_v6(&s, &d, 58, (n - 40) as u32);
                assert_eq!(checksum::add(pseudo, checksum::sum(&packet[40..])), 0xffff);
            }
            // Our own request is not a reply.
            assert_eq!(parse_query_reply(packet), None);
            let reply = parse_query_reply(&reply_to(packet, src.is_ipv6())).unwrap();
            assert_eq!(
                reply,
                QueryReply {
                    src: dst,
                    dst: src,
                    ttl: 64,
                    query,
                    cookie: 0xdead_beef
                }
            );
        }
    }

    #[test]
    fn no_timestamp_over_ipv6_and_short_buffers_are_errors() {
        let mut buf = [0u8; 64];
        assert!(
            write_query(
                &mut buf,
                v6("fd00::1"),
                v6("fd00::2"),
                IcmpQuery::Timestamp,
                1,
                1
            )
            .is_err()
        );
        assert!(
            write_query(
                &mut buf,
                v4("198.18.0.1"),
                v6("fd00::2"),
                IcmpQuery::Echo,
                1,
                1
            )
            .is_err()
        );
        assert!(
            write_query(
                &mut buf[..20],
                v4("198.18.0.1"),
                v4("198.18.0.2"),
                IcmpQuery::Echo,
                1,
                1
            )
            .is_err()
        );
        assert_eq!(buf, [0u8; 64]);
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse_query_reply(&bytes);
        }

        #[test]
        fn every_truncation_of_a_reply_parses_without_panic(cut in 0usize..48) {
            let mut buf = [0u8; 64];
            let n = write_query(&mut buf, v4("198.18.0.1"), v4("198.18.0.2"), IcmpQuery::Timestamp, 5, 5).unwrap();
            let reply = reply_to(&buf[..n], false);
            let _ = parse_query_reply(&reply[..cut.min(reply.len())]);
        }
    }
}
