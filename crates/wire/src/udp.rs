//! UDP: a checked view of a datagram ([`UdpPacket`]) and the probe template
//! ([`UdpTemplate`]), built once per source address and stamped per probe
//! with the destination, the ports, the IPv4 ID and a payload.
//!
//! Read first: RFC 768 (the header; a computed checksum of zero is sent as
//! all ones, since zero means "no checksum" over IPv4), RFC 8200 section
//! 8.1 (the IPv6 pseudo-header; over IPv6 the checksum is mandatory), RFC
//! 1071 and RFC 1624 (why a checksum can be finished from a precomputed
//! partial sum), RFC 6864 (the IPv4 Identification of an atomic datagram is
//! free to use).
//!
//! The probe is an IPv4 header (IHL 5, DF clear, TTL 64 unless told) or an
//! IPv6 header (hop limit 64, no extension headers), an 8-byte UDP header
//! and the caller's payload. The template holds the headers with the
//! per-probe fields zeroed and the one's complement sums of what is fixed:
//! the IPv4 header, and the pseudo-header's source and protocol.
//! [`UdpTemplate::stamp`] copies the headers, writes the per-probe fields,
//! copies the payload, and finishes both checksums from those sums plus one
//! pass over the payload (which the UDP checksum covers, so it cannot be
//! precomputed).
//!
//! Contract: no panic (a short buffer, a payload too long for one datagram
//! or a destination of the wrong family is an error, and nothing is
//! written); no allocation.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::bytes::{be16, put_bytes, put8, put16, put32};
use crate::checksum::{self, fold};
use crate::error::{Header, StampError, WireError};
use crate::ip_protocol;
use crate::{ipv4, ipv6};

/// Offsets of the header's fields (RFC 768).
pub(crate) mod field {
    /// Source port.
    pub(crate) const SRC_PORT: usize = 0;
    /// Destination port.
    pub(crate) const DST_PORT: usize = 2;
    /// Length of header and data, in bytes.
    pub(crate) const LENGTH: usize = 4;
    /// Checksum.
    pub(crate) const CHECKSUM: usize = 6;
}

/// The length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A validated UDP header over borrowed bytes, with its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpPacket<'a> {
    fixed: &'a [u8; HEADER_LEN],
    datagram: &'a [u8],
    payload: &'a [u8],
}

impl<'a> UdpPacket<'a> {
    /// Validates a datagram (header and data, as bounded by the IP layer):
    /// a Length field of at least 8 and within `datagram`. Bytes past the
    /// Length are not part of the payload.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if `datagram` ends before the 8-byte header
    /// or the Length, [`WireError::BadLength`] for a Length below 8.
    pub fn new_checked(datagram: &'a [u8]) -> Result<Self, WireError> {
        let Some(fixed) = datagram.first_chunk::<HEADER_LEN>() else {
            return Err(WireError::Truncated {
                header: Header::Udp,
                needed: HEADER_LEN,
                available: datagram.len(),
            });
        };
        let length = usize::from(be16(fixed, field::LENGTH));
        if length < HEADER_LEN {
            return Err(WireError::BadLength {
                header: Header::Udp,
                value: length,
            });
        }
        let (Some(datagram), Some(payload)) =
            (datagram.get(..length), datagram.get(HEADER_LEN..length))
        else {
            return Err(WireError::Truncated {
                header: Header::Udp,
                needed: length,
                available: datagram.len(),
            });
        };
        Ok(Self {
            fixed,
            datagram,
            payload,
        })
    }

    /// The source port.
    #[must_use]
    pub fn src_port(&self) -> u16 {
        be16(self.fixed, field::SRC_PORT)
    }

    /// The destination port.
    #[must_use]
    pub fn dst_port(&self) -> u16 {
        be16(self.fixed, field::DST_PORT)
    }

    /// The Length field: header plus payload, in bytes.
    #[must_use]
    pub fn length(&self) -> u16 {
        be16(self.fixed, field::LENGTH)
    }

    /// The checksum as sent (0 over IPv4: none computed).
    #[must_use]
    pub fn checksum(&self) -> u16 {
        be16(self.fixed, field::CHECKSUM)
    }

    /// The payload, up to the Length.
    #[must_use]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Whether the checksum is valid for a datagram from `src` to `dst`. A
    /// zero checksum over IPv4 means none was computed and passes; over
    /// IPv6 it fails (RFC 8200, section 8.1). `false` if the addresses are
    /// of different families.
    #[must_use]
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let length = self.length();
        let pseudo = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                if self.checksum() == 0 {
                    return true;
                }
                checksum::pseudo_header_v4(s, d, ip_protocol::UDP, length)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                checksum::pseudo_header_v6(&s, &d, ip_protocol::UDP, u32::from(length))
            }
            _ => return false,
        };
        checksum::add(pseudo, checksum::sum(self.datagram)) == 0xffff
    }
}

/// The longest headers a template writes: IPv6 and UDP.
const MAX_HEADERS: usize = ipv6::HEADER_LEN + HEADER_LEN;

/// The IPv4 Total Length and the UDP Length are 16-bit fields.
const MAX_IP_LEN: usize = u16::MAX as usize;

/// A UDP probe prebuilt for one source address and IP version, stamped
/// into a buffer once per (destination, port, payload) with
/// [`UdpTemplate::stamp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpTemplate {
    headers: [u8; MAX_HEADERS],
    headers_len: usize,
    src: IpAddr,
    src_port: u16,
    ttl: u8,
    /// Sum of the IPv4 header with total length, ID, destination and
    /// checksum zeroed.
    ip_sum: u16,
    /// Sum of the pseudo-header's source address and protocol.
    udp_sum: u16,
}

impl UdpTemplate {
    /// The IP and UDP headers of an IPv6 probe, the longer family: a probe
    /// is at most this plus its payload, for sizing buffers.
    pub const MAX_HEADERS_LEN: usize = MAX_HEADERS;

    /// Builds the template for probes from `src` with TTL (hop limit) 64;
    /// the IP version follows `src`. `src_port` is the scan's source port
    /// base, kept for [`UdpTemplate::src_port`]; each
    /// [`UdpTemplate::stamp`] writes its own source port.
    #[must_use]
    pub fn new(src: IpAddr, src_port: u16) -> Self {
        Self::with_ttl(src, src_port, 64)
    }

    /// [`UdpTemplate::new`] with another IPv4 TTL or IPv6 hop limit.
    #[must_use]
    pub fn with_ttl(src: IpAddr, src_port: u16, ttl: u8) -> Self {
        let mut headers = [0u8; MAX_HEADERS];
        let (ip_len, ip_sum, pseudo) = match src {
            IpAddr::V4(s) => {
                use ipv4::field as f;
                put8(&mut headers, f::VER_IHL, 0x45);
                put8(&mut headers, f::TTL, ttl);
                put8(&mut headers, f::PROTOCOL, ip_protocol::UDP);
                put_bytes(&mut headers, f::SRC_ADDR, s.octets());
                let ip_sum = checksum::sum(headers.get(..ipv4::HEADER_LEN).unwrap_or(&[]));
                let pseudo =
                    checksum::pseudo_header_v4(s, Ipv4Addr::UNSPECIFIED, ip_protocol::UDP, 0);
                (ipv4::HEADER_LEN, ip_sum, pseudo)
            }
            IpAddr::V6(s) => {
                use ipv6::field as f;
                put8(&mut headers, f::VER_TC_FLOW, 0x60);
                put8(&mut headers, f::NEXT_HEADER, ip_protocol::UDP);
                put8(&mut headers, f::HOP_LIMIT, ttl);
                put_bytes(&mut headers, f::SRC_ADDR, s.octets());
                let pseudo =
                    checksum::pseudo_header_v6(&s, &Ipv6Addr::UNSPECIFIED, ip_protocol::UDP, 0);
                (ipv6::HEADER_LEN, 0, pseudo)
            }
        };
        Self {
            headers,
            headers_len: ip_len.saturating_add(HEADER_LEN),
            src,
            src_port,
            ttl,
            ip_sum,
            udp_sum: pseudo,
        }
    }

    /// The length of the IP and UDP headers of every probe: 28 bytes for
    /// IPv4, 48 for IPv6. A probe is this plus its payload.
    #[must_use]
    pub fn headers_len(&self) -> usize {
        self.headers_len
    }

    /// The longest payload one datagram of this family carries: 65507
    /// bytes over IPv4 (the Total Length is 16 bits), 65527 over IPv6 (the
    /// UDP Length is; no jumbograms).
    #[must_use]
    pub fn max_payload_len(&self) -> usize {
        let ip_len = match self.src {
            IpAddr::V4(_) => self.headers_len,
            IpAddr::V6(_) => HEADER_LEN,
        };
        MAX_IP_LEN.saturating_sub(ip_len)
    }

    /// The source address the template was built for.
    #[must_use]
    pub fn src(&self) -> IpAddr {
        self.src
    }

    /// The source port base the template was built for.
    #[must_use]
    pub fn src_port(&self) -> u16 {
        self.src_port
    }

    /// The IPv4 TTL or IPv6 hop limit of every probe.
    #[must_use]
    pub fn ttl(&self) -> u8 {
        self.ttl
    }

    /// Writes one probe to `dst` carrying `payload` into
    /// `buf[..self.headers_len() + payload.len()]`, starting at the IP
    /// header, and returns its length. `ip_id` fills the IPv4
    /// Identification field and is ignored for IPv6.
    ///
    /// # Errors
    /// [`StampError::PayloadTooLong`] if `payload` is longer than
    /// [`UdpTemplate::max_payload_len`], [`StampError::BufferTooSmall`] if
    /// `buf` cannot hold the probe, [`StampError::FamilyMismatch`] if `dst`
    /// is not of the template's IP version. Nothing is written then.
    pub fn stamp(
        &self,
        buf: &mut [u8],
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
        ip_id: u16,
        payload: &[u8],
    ) -> Result<usize, StampError> {
        let max = self.max_payload_len();
        if payload.len() > max {
            return Err(StampError::PayloadTooLong {
                len: payload.len(),
                max,
            });
        }
        // Both below 2^16 after the check above.
        let len = self.headers_len.saturating_add(payload.len());
        let udp_len = HEADER_LEN.saturating_add(payload.len()) as u16;
        let available = buf.len();
        let (Some(out), Some(template)) =
            (buf.get_mut(..len), self.headers.get(..self.headers_len))
        else {
            return Err(StampError::BufferTooSmall {
                needed: len,
                available,
            });
        };
        let Some((head, body)) = out.split_at_mut_checked(self.headers_len) else {
            return Err(StampError::BufferTooSmall {
                needed: len,
                available,
            });
        };
        let udp_at = match (self.src, dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => ipv4::HEADER_LEN,
            (IpAddr::V6(_), IpAddr::V6(_)) => ipv6::HEADER_LEN,
            (IpAddr::V4(_), IpAddr::V6(_)) => {
                return Err(StampError::FamilyMismatch { template_v6: false });
            }
            (IpAddr::V6(_), IpAddr::V4(_)) => {
                return Err(StampError::FamilyMismatch { template_v6: true });
            }
        };
        head.copy_from_slice(template);
        body.copy_from_slice(payload);

        // The pseudo-header's destination and length, the UDP header's
        // ports and length, and the payload.
        let mut udp_sum = u32::from(self.udp_sum)
            .wrapping_add(u32::from(udp_len))
            .wrapping_add(u32::from(udp_len))
            .wrapping_add(u32::from(src_port))
            .wrapping_add(u32::from(dst_port))
            .wrapping_add(u32::from(checksum::sum(payload)));
        match dst {
            IpAddr::V4(d) => {
                use ipv4::field as f;
                let d = d.to_bits();
                let dst_words = (d >> 16).wrapping_add(d & 0xffff);
                put16(head, f::TOTAL_LEN, len as u16);
                put16(head, f::IDENT, ip_id);
                put32(head, f::DST_ADDR, d);
                let s = u32::from(self.ip_sum)
                    .wrapping_add(len as u32)
                    .wrapping_add(u32::from(ip_id))
                    .wrapping_add(dst_words);
                put16(head, f::CHECKSUM, !fold(s));
                udp_sum = udp_sum.wrapping_add(dst_words);
            }
            IpAddr::V6(d) => {
                use ipv6::field as f;
                put16(head, f::PAYLOAD_LEN, udp_len);
                put_bytes(head, f::DST_ADDR, d.octets());
                for w in d.segments() {
                    udp_sum = udp_sum.wrapping_add(u32::from(w));
                }
            }
        }
        let udp = crate::bytes::tail_mut(head, udp_at);
        put16(udp, field::SRC_PORT, src_port);
        put16(udp, field::DST_PORT, dst_port);
        put16(udp, field::LENGTH, udp_len);
        put16(udp, field::CHECKSUM, udp_checksum(fold(udp_sum)));
        Ok(len)
    }
}

/// The UDP checksum field for a datagram whose one's complement sum (field
/// zeroed) is `sum`: its complement, except that a computed 0 is sent as
/// `0xffff`, since 0 would mean "no checksum" (RFC 768).
fn udp_checksum(sum: u16) -> u16 {
    match !sum {
        0 => 0xffff,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_packets::*;
    use crate::{Ipv4Packet, Ipv6Packet, Reply, parse_reply};
    use proptest::prelude::*;

    #[test]
    fn test_deconstruct() {
        let u = UdpPacket::new_checked(&UDP_PROBE_V4[20..]).unwrap();
        assert_eq!(u.src_port(), 40000);
        assert_eq!(u.dst_port(), 53);
        assert_eq!(usize::from(u.length()), UDP_PROBE_V4.len() - 20);
        assert_eq!(u.payload(), &UDP_PROBE_V4[28..]);
        assert!(u.verify_checksum(v4("198.18.0.1"), v4("198.18.0.2")));
        assert!(!u.verify_checksum(v4("198.18.0.1"), v4("198.18.0.3")));
        assert!(!u.verify_checksum(v4("198.18.0.1"), v6("fd00::2")));
    }

    #[test]
    fn test_stamp_matches_fixture() {
        let t = UdpTemplate::new(v4("198.18.0.1"), 40000);
        let mut buf = [0u8; 128];
        let n = t
            .stamp(
                &mut buf,
                v4("198.18.0.2"),
                40000,
                53,
                0xbeef,
                &UDP_PROBE_V4[28..],
            )
            .unwrap();
        assert_eq!(&buf[..n], &UDP_PROBE_V4[..]);
        let t = UdpTemplate::new(v6("fd00::1"), 40000);
        let n = t
            .stamp(&mut buf, v6("fd00::2"), 40000, 53, 0, &UDP_PROBE_V6[48..])
            .unwrap();
        assert_eq!(&buf[..n], &UDP_PROBE_V6[..]);
    }

    #[test]
    fn test_truncated_and_bad_length() {
        let d = &UDP_PROBE_V4[20..];
        for len in 0..d.len() {
            let needed = if len < 8 { 8 } else { d.len() };
            assert_eq!(
                UdpPacket::new_checked(&d[..len]),
                Err(WireError::Truncated {
                    header: Header::Udp,
                    needed,
                    available: len
                })
            );
        }
        let mut d = d.to_vec();
        d[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            UdpPacket::new_checked(&d),
            Err(WireError::BadLength {
                header: Header::Udp,
                value: 7
            })
        );
        // A Length shorter than the bytes: the rest is not payload.
        d[4..6].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(UdpPacket::new_checked(&d).unwrap().payload().len(), 2);
    }

    #[test]
    fn test_zero_checksum() {
        // Over IPv4 a zero checksum means none; over IPv6 it is invalid.
        let mut d = UDP_PROBE_V4[20..].to_vec();
        d[6..8].fill(0);
        let u = UdpPacket::new_checked(&d).unwrap();
        assert!(u.verify_checksum(v4("198.18.0.1"), v4("198.18.0.2")));
        let mut d = UDP_PROBE_V6[40..].to_vec();
        d[6..8].fill(0);
        let u = UdpPacket::new_checked(&d).unwrap();
        assert!(!u.verify_checksum(v6("fd00::1"), v6("fd00::2")));
        // A computed zero goes out as all ones.
        assert_eq!(udp_checksum(0xffff), 0xffff);
        assert_eq!(udp_checksum(0x1234), !0x1234);
    }

    #[test]
    fn test_sent_checksum_never_zero() {
        // Choose the last two payload bytes so that the datagram sums to
        // 0xffff with the checksum field zeroed: the computed checksum is
        // 0, which must be sent as 0xffff.
        let (src, dst) = (v4("198.18.0.1"), v4("198.18.0.2"));
        let t = UdpTemplate::new(src, 1);
        let mut payload = [0x12, 0x34, 0, 0];
        let mut buf = [0u8; 64];
        let n = t.stamp(&mut buf, dst, 1000, 2000, 7, &payload).unwrap();
        let field = u16::from_be_bytes([buf[26], buf[27]]);
        // Adding the checksum we got as data makes the sum all ones.
        payload[2..4].copy_from_slice(&field.to_be_bytes());
        let n2 = t.stamp(&mut buf, dst, 1000, 2000, 7, &payload).unwrap();
        assert_eq!(n, n2);
        assert_eq!(&buf[26..28], &[0xff, 0xff]);
        let u = UdpPacket::new_checked(&buf[20..n]).unwrap();
        assert!(u.verify_checksum(src, dst));
    }

    #[test]
    fn test_errors_write_nothing() {
        let mut buf = [0u8; 64];
        let t4 = UdpTemplate::new(v4("198.18.0.1"), 40000);
        let t6 = UdpTemplate::new(v6("fd00::1"), 40000);
        assert_eq!(
            t4.stamp(&mut buf, v6("fd00::2"), 1, 2, 3, b"x"),
            Err(StampError::FamilyMismatch { template_v6: false })
        );
        assert_eq!(
            t6.stamp(&mut buf, v4("198.18.0.2"), 1, 2, 3, b"x"),
            Err(StampError::FamilyMismatch { template_v6: true })
        );
        assert_eq!(
            t4.stamp(&mut buf, v4("198.18.0.2"), 1, 2, 3, &[0; 37]),
            Err(StampError::BufferTooSmall {
                needed: 65,
                available: 64
            })
        );
        assert_eq!(
            t6.stamp(&mut buf, v6("fd00::2"), 1, 2, 3, &[0; 17]),
            Err(StampError::BufferTooSmall {
                needed: 65,
                available: 64
            })
        );
        assert_eq!(buf, [0u8; 64]);
        // The largest payloads fit, one more byte does not.
        let big = vec![0xa5; 65528];
        let mut out = vec![0u8; 70000];
        assert_eq!(t4.max_payload_len(), 65507);
        assert_eq!(t6.max_payload_len(), 65527);
        assert_eq!(
            t4.stamp(&mut out, v4("198.18.0.2"), 1, 2, 3, &big[..65507]),
            Ok(65535)
        );
        assert_eq!(
            t6.stamp(&mut out, v6("fd00::2"), 1, 2, 3, &big[..65527]),
            Ok(65575)
        );
        assert!(parse_reply(&out[..65575]).is_ok());
        assert_eq!(
            t4.stamp(&mut out, v4("198.18.0.2"), 1, 2, 3, &big[..65508]),
            Err(StampError::PayloadTooLong {
                len: 65508,
                max: 65507
            })
        );
        assert_eq!(
            t6.stamp(&mut out, v6("fd00::2"), 1, 2, 3, &big),
            Err(StampError::PayloadTooLong {
                len: 65528,
                max: 65527
            })
        );
    }

    proptest! {
        #[test]
        fn stamped_checksums_verify_and_parse_back(
            (src, dst) in addr_pair(),
            ttl in any::<u8>(),
            src_port in any::<u16>(),
            dst_port in any::<u16>(),
            ip_id in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let t = UdpTemplate::with_ttl(src, src_port, ttl);
            let mut buf = [0u8; UdpTemplate::MAX_HEADERS_LEN + 300];
            let n = t.stamp(&mut buf, dst, src_port, dst_port, ip_id, &payload).unwrap();
            prop_assert_eq!(n, t.headers_len() + payload.len());
            let packet = &buf[..n];

            let (datagram, got_ttl) = if src.is_ipv4() {
                let ip = Ipv4Packet::new_checked(packet).unwrap();
                prop_assert_eq!(checksum::checksum(&packet[..20]), 0);
                prop_assert!(ip.verify_checksum());
                prop_assert_eq!(ip.ident(), ip_id);
                prop_assert!(!ip.dont_frag());
                prop_assert_eq!(ip.protocol(), ip_protocol::UDP);
                prop_assert_eq!(usize::from(ip.total_len()), n);
                (&packet[20..], ip.ttl())
            } else {
                let ip = Ipv6Packet::new_checked(packet).unwrap();
                prop_assert_eq!(ip.next_header(), ip_protocol::UDP);
                prop_assert_eq!(usize::from(ip.payload_len()), n - 40);
                (&packet[40..], ip.hop_limit())
            };
            prop_assert_eq!(got_ttl, ttl);
            let udp = UdpPacket::new_checked(datagram).unwrap();
            prop_assert_ne!(udp.checksum(), 0);
            let computed = checksum_from_scratch(src, dst, ip_protocol::UDP, datagram, 6);
            prop_assert_eq!(udp.checksum(), if computed == 0 { 0xffff } else { computed });
            prop_assert!(udp.verify_checksum(src, dst));
            prop_assert_eq!(udp.payload(), &payload[..]);

            let reply = parse_reply(packet).unwrap();
            let Reply::Udp { src: s, dst: d, ttl: t2, src_port: sp, dst_port: dp, payload: span } = reply else {
                panic!("{reply:?}");
            };
            prop_assert_eq!((s, d, t2, sp, dp), (src, dst, ttl, src_port, dst_port));
            prop_assert_eq!(span.of(packet), &payload[..]);
            prop_assert_eq!(reply.udp_payload(packet), Some(&payload[..]));
        }
    }
}
