//! A checked view of an IPv4 header and its payload.
//!
//! Read first: RFC 791, section 3.1 (the header layout), and RFC 6864 (why
//! the Identification field of an atomic datagram carries no meaning, so a
//! scanner may fill it freely).
//!
//! Contract: [`Ipv4Packet::new_checked`] and [`Ipv4Packet::new_truncated`]
//! validate the lengths; after either returns `Ok`, no accessor panics.
//! No allocation.

use core::net::Ipv4Addr;

use crate::bytes::{be16, ipv4_at, u8_at};
use crate::checksum;
use crate::error::{Header, WireError};

/// Offsets of the fixed header's fields (RFC 791, section 3.1).
pub(crate) mod field {
    /// Version (high nibble) and IHL, the header length in 32-bit words.
    pub(crate) const VER_IHL: usize = 0;
    /// DSCP and ECN (formerly Type of Service).
    pub(crate) const DSCP_ECN: usize = 1;
    /// Total length of the datagram, header included, in bytes.
    pub(crate) const TOTAL_LEN: usize = 2;
    /// Identification.
    pub(crate) const IDENT: usize = 4;
    /// Flags (reserved, DF, MF) and the fragment offset in 8-byte units.
    pub(crate) const FLAGS_FRAG: usize = 6;
    /// Time to live.
    pub(crate) const TTL: usize = 8;
    /// Protocol of the payload.
    pub(crate) const PROTOCOL: usize = 9;
    /// Header checksum.
    pub(crate) const CHECKSUM: usize = 10;
    /// Source address.
    pub(crate) const SRC_ADDR: usize = 12;
    /// Destination address.
    pub(crate) const DST_ADDR: usize = 16;
}

/// The length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;

/// Writes an IPv4 header without options (TTL 64, its checksum filled) at
/// the start of `out`, over zeroed bytes; does nothing if `out` is shorter
/// than a header.
pub(crate) fn write_header(
    out: &mut [u8],
    (src, dst): (Ipv4Addr, Ipv4Addr),
    protocol: u8,
    total_len: u16,
    ident: u16,
) {
    use crate::bytes::{put_bytes, put8, put16};
    put8(out, field::VER_IHL, 0x45);
    put16(out, field::TOTAL_LEN, total_len);
    put16(out, field::IDENT, ident);
    put8(out, field::TTL, 64);
    put8(out, field::PROTOCOL, protocol);
    put_bytes(out, field::SRC_ADDR, src.octets());
    put_bytes(out, field::DST_ADDR, dst.octets());
    let sum = checksum::checksum(out.get(..HEADER_LEN).unwrap_or(&[]));
    put16(out, field::CHECKSUM, sum);
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A validated IPv4 header over borrowed bytes, with its options and
/// payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Packet<'a> {
    fixed: &'a [u8; HEADER_LEN],
    header: &'a [u8],
    payload: &'a [u8],
}

impl<'a> Ipv4Packet<'a> {
    /// Validates a whole datagram: version 4, an IHL of at least 5 words, a
    /// total length at least the header's and within `bytes`. Bytes past
    /// the total length (link-layer padding) are not part of the payload.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if `bytes` ends before the header or the
    /// total length, [`WireError::BadVersion`] if the version is not 4,
    /// [`WireError::BadLength`] for an IHL below 5 or a total length below
    /// the header length.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, WireError> {
        let (fixed, header, rest) = Self::split_header(bytes)?;
        let total = usize::from(be16(fixed, field::TOTAL_LEN));
        let Some(payload_len) = total.checked_sub(header.len()) else {
            return Err(WireError::BadLength {
                header: Header::Ipv4,
                value: total,
            });
        };
        let Some(payload) = rest.get(..payload_len) else {
            return Err(WireError::Truncated {
                header: Header::Ipv4,
                needed: total,
                available: bytes.len(),
            });
        };
        Ok(Self {
            fixed,
            header,
            payload,
        })
    }

    /// Validates only the header, as quoted in an ICMP error: version 4 and
    /// an IHL of at least 5 words within `bytes`. The total length is not
    /// checked (quotes are cut short, and some stacks rewrite the field);
    /// the payload is whatever follows the header.
    ///
    /// # Errors
    /// As [`Ipv4Packet::new_checked`], but never about the total length.
    pub fn new_truncated(bytes: &'a [u8]) -> Result<Self, WireError> {
        let (fixed, header, payload) = Self::split_header(bytes)?;
        Ok(Self {
            fixed,
            header,
            payload,
        })
    }

    #[allow(clippy::type_complexity)]
    fn split_header(
        bytes: &'a [u8],
    ) -> Result<(&'a [u8; HEADER_LEN], &'a [u8], &'a [u8]), WireError> {
        let Some(fixed) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(WireError::Truncated {
                header: Header::Ipv4,
                needed: HEADER_LEN,
                available: bytes.len(),
            });
        };
        let version = u8_at(fixed, field::VER_IHL) >> 4;
        if version != 4 {
            return Err(WireError::BadVersion { version });
        }
        let header_len = usize::from(u8_at(fixed, field::VER_IHL) & 0x0f) << 2;
        if header_len < HEADER_LEN {
            return Err(WireError::BadLength {
                header: Header::Ipv4,
                value: header_len,
            });
        }
        let Some((header, rest)) = bytes.split_at_checked(header_len) else {
            return Err(WireError::Truncated {
                header: Header::Ipv4,
                needed: header_len,
                available: bytes.len(),
            });
        };
        Ok((fixed, header, rest))
    }

    /// The version field: always 4.
    #[must_use]
    pub fn version(&self) -> u8 {
        u8_at(self.fixed, field::VER_IHL) >> 4
    }

    /// The header length in bytes, options included (20 to 60).
    #[must_use]
    pub fn header_len(&self) -> usize {
        self.header.len()
    }

    /// The DSCP and ECN byte (formerly Type of Service).
    #[must_use]
    pub fn dscp_ecn(&self) -> u8 {
        u8_at(self.fixed, field::DSCP_ECN)
    }

    /// The Total Length field as sent. For a view made by
    /// [`Ipv4Packet::new_truncated`] it may exceed the bytes present.
    #[must_use]
    pub fn total_len(&self) -> u16 {
        be16(self.fixed, field::TOTAL_LEN)
    }

    /// The Identification field.
    #[must_use]
    pub fn ident(&self) -> u16 {
        be16(self.fixed, field::IDENT)
    }

    /// The Don't Fragment flag.
    #[must_use]
    pub fn dont_frag(&self) -> bool {
        be16(self.fixed, field::FLAGS_FRAG) & FLAG_DF != 0
    }

    /// The More Fragments flag.
    #[must_use]
    pub fn more_frags(&self) -> bool {
        be16(self.fixed, field::FLAGS_FRAG) & FLAG_MF != 0
    }

    /// The fragment offset in bytes (the field counts 8-byte units).
    #[must_use]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.fixed, field::FLAGS_FRAG) & FRAG_OFFSET_MASK) << 3
    }

    /// The Time To Live as received.
    #[must_use]
    pub fn ttl(&self) -> u8 {
        u8_at(self.fixed, field::TTL)
    }

    /// The protocol of the payload ([`crate::ip_protocol`]).
    #[must_use]
    pub fn protocol(&self) -> u8 {
        u8_at(self.fixed, field::PROTOCOL)
    }

    /// The header checksum as sent.
    #[must_use]
    pub fn checksum(&self) -> u16 {
        be16(self.fixed, field::CHECKSUM)
    }

    /// The source address.
    #[must_use]
    pub fn src_addr(&self) -> Ipv4Addr {
        ipv4_at(self.fixed, field::SRC_ADDR)
    }

    /// The destination address.
    #[must_use]
    pub fn dst_addr(&self) -> Ipv4Addr {
        ipv4_at(self.fixed, field::DST_ADDR)
    }

    /// The whole header, options included.
    #[must_use]
    pub fn header(&self) -> &'a [u8] {
        self.header
    }

    /// The options: the header past its first 20 bytes.
    #[must_use]
    pub fn options(&self) -> &'a [u8] {
        crate::bytes::tail(self.header, HEADER_LEN)
    }

    /// The payload: up to the total length for [`Ipv4Packet::new_checked`],
    /// everything after the header for [`Ipv4Packet::new_truncated`].
    #[must_use]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Whether the header checksum is valid.
    #[must_use]
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.header) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_packets::{ICMP_ADMIN_PROHIBITED_V4, SYN_ACK_V4};

    #[test]
    fn test_deconstruct() {
        let p = Ipv4Packet::new_checked(&SYN_ACK_V4).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.total_len(), 44);
        assert_eq!(p.ident(), 0);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), crate::ip_protocol::TCP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 18, 0, 1));
        assert!(p.verify_checksum());
        assert_eq!(p.options(), &[] as &[u8]);
        assert_eq!(p.payload(), &SYN_ACK_V4[20..]);
    }

    #[test]
    fn test_padding_is_not_payload() {
        let mut padded = SYN_ACK_V4.to_vec();
        padded.extend_from_slice(&[0; 16]);
        let p = Ipv4Packet::new_checked(&padded).unwrap();
        assert_eq!(p.payload(), &SYN_ACK_V4[20..]);
    }

    #[test]
    fn test_options() {
        // IHL 6: one word of options (NOP NOP NOP EOL).
        let mut bytes = SYN_ACK_V4[..20].to_vec();
        bytes[0] = 0x46;
        bytes[2..4].copy_from_slice(&28u16.to_be_bytes());
        bytes.extend_from_slice(&[1, 1, 1, 0, 0xaa, 0xbb, 0xcc, 0xdd]);
        let p = Ipv4Packet::new_checked(&bytes).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn test_truncated() {
        for len in 0..SYN_ACK_V4.len() {
            let err = Ipv4Packet::new_checked(&SYN_ACK_V4[..len]).unwrap_err();
            let needed = if len < 20 { 20 } else { 44 };
            assert_eq!(
                err,
                WireError::Truncated {
                    header: Header::Ipv4,
                    needed,
                    available: len
                }
            );
        }
        // The lax constructor needs only the header.
        let p = Ipv4Packet::new_truncated(&SYN_ACK_V4[..28]).unwrap();
        assert_eq!(p.total_len(), 44);
        assert_eq!(p.payload(), &SYN_ACK_V4[20..28]);
        assert!(Ipv4Packet::new_truncated(&SYN_ACK_V4[..19]).is_err());
    }

    #[test]
    fn test_impossible_len() {
        let mut bytes = SYN_ACK_V4;
        bytes[0] = 0x44; // IHL 4: 16 bytes
        assert_eq!(
            Ipv4Packet::new_checked(&bytes),
            Err(WireError::BadLength {
                header: Header::Ipv4,
                value: 16
            })
        );
        let mut bytes = SYN_ACK_V4;
        bytes[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&bytes),
            Err(WireError::BadLength {
                header: Header::Ipv4,
                value: 19
            })
        );
        // IHL 15 (60 bytes) on a 44-byte packet.
        let mut bytes = SYN_ACK_V4;
        bytes[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes),
            Err(WireError::Truncated {
                header: Header::Ipv4,
                needed: 60,
                available: 44
            })
        );
    }

    #[test]
    fn test_bad_version() {
        let mut bytes = SYN_ACK_V4;
        bytes[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes),
            Err(WireError::BadVersion { version: 6 })
        );
    }

    #[test]
    fn test_fragment_fields() {
        let p = Ipv4Packet::new_checked(&ICMP_ADMIN_PROHIBITED_V4).unwrap();
        assert_eq!(p.protocol(), crate::ip_protocol::ICMP);
        let mut bytes = SYN_ACK_V4;
        bytes[6..8].copy_from_slice(&0x2003u16.to_be_bytes());
        let p = Ipv4Packet::new_checked(&bytes).unwrap();
        assert!(p.more_frags());
        assert!(!p.dont_frag());
        assert_eq!(p.frag_offset(), 24);
    }
}
