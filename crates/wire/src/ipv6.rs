//! A checked view of an IPv6 header and its payload, and a walk over the
//! extension headers to the upper-layer header.
//!
//! Read first: RFC 8200, sections 3 (the fixed header), 4 (extension
//! headers: hop-by-hop, routing, fragment, destination options) and 8.1
//! (the pseudo-header).
//!
//! Contract: [`Ipv6Packet::new_checked`] and [`Ipv6Packet::new_truncated`]
//! validate the lengths; after either returns `Ok`, no accessor panics, and
//! [`Ipv6Packet::upper_layer`] checks each extension header's length before
//! reading past it. No allocation.

use core::net::Ipv6Addr;

use crate::bytes::{be16, be32, ipv6_at, tail, u8_at};
use crate::error::{Header, WireError};
use crate::ip_protocol;

/// Offsets of the fixed header's fields (RFC 8200, section 3).
pub(crate) mod field {
    /// Version (4 bits), traffic class (8 bits), flow label (20 bits).
    pub(crate) const VER_TC_FLOW: usize = 0;
    /// Length of everything after the fixed header, in bytes.
    pub(crate) const PAYLOAD_LEN: usize = 4;
    /// The type of the header after the fixed header.
    pub(crate) const NEXT_HEADER: usize = 6;
    /// Hop limit.
    pub(crate) const HOP_LIMIT: usize = 7;
    /// Source address.
    pub(crate) const SRC_ADDR: usize = 8;
    /// Destination address.
    pub(crate) const DST_ADDR: usize = 24;
}

/// The length of the IPv6 fixed header.
pub const HEADER_LEN: usize = 40;

/// Writes an IPv6 header (hop limit 64) at the start of `out`, over zeroed
/// bytes; does nothing past the end of `out`.
pub(crate) fn write_header(
    out: &mut [u8],
    (src, dst): (&Ipv6Addr, &Ipv6Addr),
    next_header: u8,
    payload_len: u16,
) {
    use crate::bytes::{put_bytes, put8, put16};
    put8(out, field::VER_TC_FLOW, 0x60);
    put16(out, field::PAYLOAD_LEN, payload_len);
    put8(out, field::NEXT_HEADER, next_header);
    put8(out, field::HOP_LIMIT, 64);
    put_bytes(out, field::SRC_ADDR, src.octets());
    put_bytes(out, field::DST_ADDR, dst.octets());
}

/// The length of a Fragment header, and the unit of the other extension
/// headers' lengths (RFC 8200, section 4).
const EXTENSION_UNIT: usize = 8;

/// A validated IPv6 fixed header over borrowed bytes, with its payload
/// (extension headers included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Packet<'a> {
    fixed: &'a [u8; HEADER_LEN],
    payload: &'a [u8],
}

impl<'a> Ipv6Packet<'a> {
    /// Validates a whole packet: version 6 and a payload length within
    /// `bytes`. Bytes past the payload length (link-layer padding) are not
    /// part of the payload. A jumbogram (payload length 0, RFC 2675) reads
    /// as an empty payload.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if `bytes` ends before the fixed header or
    /// the payload, [`WireError::BadVersion`] if the version is not 6.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, WireError> {
        let (fixed, rest) = Self::split_header(bytes)?;
        let payload_len = usize::from(be16(fixed, field::PAYLOAD_LEN));
        let Some(payload) = rest.get(..payload_len) else {
            return Err(WireError::Truncated {
                header: Header::Ipv6,
                needed: HEADER_LEN.saturating_add(payload_len),
                available: bytes.len(),
            });
        };
        Ok(Self { fixed, payload })
    }

    /// Validates only the fixed header, as quoted in an ICMPv6 error; the
    /// payload is whatever follows it, whatever the payload length says.
    ///
    /// # Errors
    /// As [`Ipv6Packet::new_checked`], but never about the payload length.
    pub fn new_truncated(bytes: &'a [u8]) -> Result<Self, WireError> {
        let (fixed, payload) = Self::split_header(bytes)?;
        Ok(Self { fixed, payload })
    }

    fn split_header(bytes: &'a [u8]) -> Result<(&'a [u8; HEADER_LEN], &'a [u8]), WireError> {
        let Some((fixed, rest)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(WireError::Truncated {
                header: Header::Ipv6,
                needed: HEADER_LEN,
                available: bytes.len(),
            });
        };
        let version = u8_at(fixed, field::VER_TC_FLOW) >> 4;
        if version != 6 {
            return Err(WireError::BadVersion { version });
        }
        Ok((fixed, rest))
    }

    /// The version field: always 6.
    #[must_use]
    pub fn version(&self) -> u8 {
        u8_at(self.fixed, field::VER_TC_FLOW) >> 4
    }

    /// The traffic class (DSCP and ECN).
    #[must_use]
    pub fn traffic_class(&self) -> u8 {
        (be16(self.fixed, field::VER_TC_FLOW) >> 4) as u8
    }

    /// The 20-bit flow label.
    #[must_use]
    pub fn flow_label(&self) -> u32 {
        be32(self.fixed, field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// The Payload Length field as sent.
    #[must_use]
    pub fn payload_len(&self) -> u16 {
        be16(self.fixed, field::PAYLOAD_LEN)
    }

    /// The Next Header field: the first extension or upper-layer header.
    #[must_use]
    pub fn next_header(&self) -> u8 {
        u8_at(self.fixed, field::NEXT_HEADER)
    }

    /// The hop limit as received.
    #[must_use]
    pub fn hop_limit(&self) -> u8 {
        u8_at(self.fixed, field::HOP_LIMIT)
    }

    /// The source address.
    #[must_use]
    pub fn src_addr(&self) -> Ipv6Addr {
        ipv6_at(self.fixed, field::SRC_ADDR)
    }

    /// The destination address.
    #[must_use]
    pub fn dst_addr(&self) -> Ipv6Addr {
        ipv6_at(self.fixed, field::DST_ADDR)
    }

    /// Everything after the fixed header: up to the payload length for
    /// [`Ipv6Packet::new_checked`], to the end for
    /// [`Ipv6Packet::new_truncated`].
    #[must_use]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Skips hop-by-hop, routing, destination options and fragment headers
    /// and returns the upper-layer protocol with its bytes, or `None` for a
    /// fragment other than the first (which holds no upper-layer header).
    /// Any other value (TCP, ICMPv6, ESP, "no next header") ends the walk.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if an extension header runs past the
    /// payload.
    pub fn upper_layer(&self) -> Result<Option<(u8, &'a [u8])>, WireError> {
        skip_extension_headers(self.next_header(), self.payload)
    }
}

/// The walk behind [`Ipv6Packet::upper_layer`]. Each step consumes at least
/// 8 bytes, so it ends after at most `bytes.len() / 8` steps.
fn skip_extension_headers(
    mut next_header: u8,
    mut bytes: &[u8],
) -> Result<Option<(u8, &[u8])>, WireError> {
    loop {
        let len = match next_header {
            ip_protocol::HOP_BY_HOP | ip_protocol::ROUTING | ip_protocol::DESTINATION_OPTIONS => {
                // Hdr Ext Len: 8-byte units, not counting the first 8.
                let units = usize::from(u8_at(bytes, 1));
                units.saturating_add(1).saturating_mul(EXTENSION_UNIT)
            }
            ip_protocol::FRAGMENT => EXTENSION_UNIT,
            _ => return Ok(Some((next_header, bytes))),
        };
        if bytes.len() < len {
            return Err(WireError::Truncated {
                header: Header::Ipv6Extension,
                needed: len,
                available: bytes.len(),
            });
        }
        // Fragment Offset (13 bits), reserved (2 bits), M flag.
        if next_header == ip_protocol::FRAGMENT && be16(bytes, 2) & 0xfff8 != 0 {
            return Ok(None);
        }
        next_header = u8_at(bytes, 0);
        bytes = tail(bytes, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_packets::{SYN_ACK_V6, SYN_ACK_V6_EXTENSIONS};

    #[test]
    fn test_deconstruct() {
        let p = Ipv6Packet::new_checked(&SYN_ACK_V6).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 24);
        assert_eq!(p.next_header(), ip_protocol::TCP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "fd00::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "fd00::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &SYN_ACK_V6[40..]);
        assert_eq!(
            p.upper_layer(),
            Ok(Some((ip_protocol::TCP, &SYN_ACK_V6[40..])))
        );
    }

    #[test]
    fn test_extension_headers() {
        // Hop-by-hop (8 bytes), destination options (16), fragment (8,
        // offset 0, M set), then TCP.
        let p = Ipv6Packet::new_checked(&SYN_ACK_V6_EXTENSIONS).unwrap();
        assert_eq!(p.next_header(), ip_protocol::HOP_BY_HOP);
        assert_eq!(
            p.upper_layer(),
            Ok(Some((ip_protocol::TCP, &SYN_ACK_V6_EXTENSIONS[72..])))
        );
        // The same fragment header with offset 8: a later fragment.
        let mut later = SYN_ACK_V6_EXTENSIONS;
        later[66..68].copy_from_slice(&0x0009u16.to_be_bytes());
        let p = Ipv6Packet::new_checked(&later).unwrap();
        assert_eq!(p.upper_layer(), Ok(None));
    }

    #[test]
    fn test_truncated() {
        for len in 0..SYN_ACK_V6.len() {
            let err = Ipv6Packet::new_checked(&SYN_ACK_V6[..len]).unwrap_err();
            let needed = if len < 40 { 40 } else { 64 };
            assert_eq!(
                err,
                WireError::Truncated {
                    header: Header::Ipv6,
                    needed,
                    available: len
                }
            );
        }
        let p = Ipv6Packet::new_truncated(&SYN_ACK_V6[..48]).unwrap();
        assert_eq!(p.payload(), &SYN_ACK_V6[40..48]);
        // An extension header cut short.
        let p = Ipv6Packet::new_truncated(&SYN_ACK_V6_EXTENSIONS[..60]).unwrap();
        assert_eq!(
            p.upper_layer(),
            Err(WireError::Truncated {
                header: Header::Ipv6Extension,
                needed: 16,
                available: 12
            })
        );
    }

    #[test]
    fn test_impossible_len() {
        // A payload length past the end of the bytes.
        let mut bytes = SYN_ACK_V6;
        bytes[4..6].copy_from_slice(&0xffffu16.to_be_bytes());
        assert_eq!(
            Ipv6Packet::new_checked(&bytes),
            Err(WireError::Truncated {
                header: Header::Ipv6,
                needed: 40 + 0xffff,
                available: 64
            })
        );
        // A hop-by-hop header claiming 2048 bytes.
        let mut bytes = SYN_ACK_V6_EXTENSIONS;
        bytes[41] = 0xff;
        let p = Ipv6Packet::new_checked(&bytes).unwrap();
        assert_eq!(
            p.upper_layer(),
            Err(WireError::Truncated {
                header: Header::Ipv6Extension,
                needed: 2048,
                available: 56
            })
        );
    }

    #[test]
    fn test_bad_version() {
        let mut bytes = SYN_ACK_V6;
        bytes[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&bytes),
            Err(WireError::BadVersion { version: 4 })
        );
    }
}
