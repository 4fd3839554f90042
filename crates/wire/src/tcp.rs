//! A checked view of a TCP header, and [`TcpFlags`].
//!
//! Read first: RFC 9293, section 3.1 (the header layout and the checksum's
//! pseudo-header) and 3.2 (options; MSS is kind 2, length 4). ECE and CWR
//! are from RFC 3168.
//!
//! Contract: [`TcpPacket::new_checked`] validates the data offset against
//! the bytes; after it returns `Ok`, no accessor panics, and the option walk
//! in [`TcpPacket::mss`] checks every length it reads. No allocation.

use core::fmt;
use core::net::IpAddr;
use core::ops::{BitAnd, BitOr, BitOrAssign};

use crate::bytes::{be16, be32, tail, u8_at};
use crate::checksum;
use crate::error::{Header, WireError};
use crate::ip_protocol;

/// Offsets of the fixed header's fields (RFC 9293, section 3.1).
pub(crate) mod field {
    /// Source port.
    pub(crate) const SRC_PORT: usize = 0;
    /// Destination port.
    pub(crate) const DST_PORT: usize = 2;
    /// Sequence number.
    pub(crate) const SEQ: usize = 4;
    /// Acknowledgment number.
    pub(crate) const ACK: usize = 8;
    /// Data offset (high nibble, in 32-bit words) and reserved bits.
    pub(crate) const DATA_OFFSET: usize = 12;
    /// Control bits (CWR ECE URG ACK PSH RST SYN FIN).
    pub(crate) const FLAGS: usize = 13;
    /// Window.
    pub(crate) const WINDOW: usize = 14;
    /// Checksum.
    pub(crate) const CHECKSUM: usize = 16;
    /// Urgent pointer.
    pub(crate) const URGENT: usize = 18;
    /// The first option.
    pub(crate) const OPTIONS: usize = 20;
}

/// The length of a TCP header without options.
pub const HEADER_LEN: usize = 20;

/// Option kinds (RFC 9293, section 3.2).
pub(crate) mod option {
    /// End of option list.
    pub(crate) const END: u8 = 0;
    /// No-operation (padding).
    pub(crate) const NOP: u8 = 1;
    /// Maximum segment size, 4 bytes long.
    pub(crate) const MSS: u8 = 2;
    /// The length of the MSS option.
    pub(crate) const MSS_LEN: u8 = 4;
}

/// The TCP control bits, as a set.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: Self = Self(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: Self = Self(0x02);
    /// Reset the connection.
    pub const RST: Self = Self(0x04);
    /// Push function.
    pub const PSH: Self = Self(0x08);
    /// The acknowledgment field is significant.
    pub const ACK: Self = Self(0x10);
    /// The urgent pointer field is significant.
    pub const URG: Self = Self(0x20);
    /// ECN-Echo (RFC 3168).
    pub const ECE: Self = Self(0x40);
    /// Congestion Window Reduced (RFC 3168).
    pub const CWR: Self = Self(0x80);

    const NAMES: [(Self, &'static str); 8] = [
        (Self::FIN, "FIN"),
        (Self::SYN, "SYN"),
        (Self::RST, "RST"),
        (Self::PSH, "PSH"),
        (Self::ACK, "ACK"),
        (Self::URG, "URG"),
        (Self::ECE, "ECE"),
        (Self::CWR, "CWR"),
    ];

    /// The empty set.
    #[must_use]
    pub const fn empty() -> Self {
        Self(0)
    }

    /// The set whose bits are `bits`, as in the header's flags byte.
    #[must_use]
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits)
    }

    /// The flags byte.
    #[must_use]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set.
    #[must_use]
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// SYN and ACK set and RST clear: the answer of an open port.
    #[must_use]
    pub const fn is_syn_ack(self) -> bool {
        self.contains(Self(Self::SYN.0 | Self::ACK.0)) && !self.is_rst()
    }

    /// RST set: the answer of a closed port (whatever else is set).
    #[must_use]
    pub const fn is_rst(self) -> bool {
        self.contains(Self::RST)
    }
}

impl BitOr for TcpFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for TcpFlags {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

/// `SYN|ACK`, or `-` for no flags.
impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpFlags({self})")
    }
}

/// A validated TCP header over borrowed bytes, with its options and
/// payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpPacket<'a> {
    fixed: &'a [u8; HEADER_LEN],
    segment: &'a [u8],
    header_len: usize,
}

impl<'a> TcpPacket<'a> {
    /// Validates a segment (header and data, as bounded by the IP layer):
    /// a data offset of at least 5 words within `segment`.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if `segment` ends before the 20-byte header
    /// or the data offset, [`WireError::BadLength`] for a data offset below
    /// 5 words.
    pub fn new_checked(segment: &'a [u8]) -> Result<Self, WireError> {
        let Some(fixed) = segment.first_chunk::<HEADER_LEN>() else {
            return Err(WireError::Truncated {
                header: Header::Tcp,
                needed: HEADER_LEN,
                available: segment.len(),
            });
        };
        let header_len = usize::from(u8_at(fixed, field::DATA_OFFSET) >> 4) << 2;
        if header_len < HEADER_LEN {
            return Err(WireError::BadLength {
                header: Header::Tcp,
                value: header_len,
            });
        }
        if segment.len() < header_len {
            return Err(WireError::Truncated {
                header: Header::Tcp,
                needed: header_len,
                available: segment.len(),
            });
        }
        Ok(Self {
            fixed,
            segment,
            header_len,
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

    /// The sequence number.
    #[must_use]
    pub fn seq_number(&self) -> u32 {
        be32(self.fixed, field::SEQ)
    }

    /// The acknowledgment number.
    #[must_use]
    pub fn ack_number(&self) -> u32 {
        be32(self.fixed, field::ACK)
    }

    /// The header length in bytes, options included (20 to 60).
    #[must_use]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The control bits.
    #[must_use]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(u8_at(self.fixed, field::FLAGS))
    }

    /// The window.
    #[must_use]
    pub fn window_len(&self) -> u16 {
        be16(self.fixed, field::WINDOW)
    }

    /// The checksum as sent.
    #[must_use]
    pub fn checksum(&self) -> u16 {
        be16(self.fixed, field::CHECKSUM)
    }

    /// The urgent pointer.
    #[must_use]
    pub fn urgent_at(&self) -> u16 {
        be16(self.fixed, field::URGENT)
    }

    /// The options, between the fixed header and the data offset.
    #[must_use]
    pub fn options(&self) -> &'a [u8] {
        let header = self.segment.get(..self.header_len).unwrap_or(&[]);
        tail(header, field::OPTIONS)
    }

    /// The data after the header.
    #[must_use]
    pub fn payload(&self) -> &'a [u8] {
        tail(self.segment, self.header_len)
    }

    /// The whole segment, header and data.
    #[must_use]
    pub fn segment(&self) -> &'a [u8] {
        self.segment
    }

    /// The value of the MSS option, if present and well formed.
    #[must_use]
    pub fn mss(&self) -> Option<u16> {
        let mut opts = self.options();
        loop {
            match u8_at(opts, 0) {
                _ if opts.is_empty() => return None,
                option::END => return None,
                option::NOP => opts = tail(opts, 1),
                kind => {
                    let len = u8_at(opts, 1);
                    if len < 2 || usize::from(len) > opts.len() {
                        return None;
                    }
                    if kind == option::MSS && len == option::MSS_LEN {
                        return Some(be16(opts, 2));
                    }
                    opts = tail(opts, usize::from(len));
                }
            }
        }
    }

    /// Whether the checksum is valid for this segment sent from `src` to
    /// `dst`. False if the addresses are of different families, or if the
    /// segment is too long for its IP version's length field.
    #[must_use]
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let pseudo = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let Ok(len) = u16::try_from(self.segment.len()) else {
                    return false;
                };
                checksum::pseudo_header_v4(s, d, ip_protocol::TCP, len)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let Ok(len) = u32::try_from(self.segment.len()) else {
                    return false;
                };
                checksum::pseudo_header_v6(&s, &d, ip_protocol::TCP, len)
            }
            _ => return false,
        };
        checksum::add(pseudo, checksum::sum(self.segment)) == 0xffff
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_packets::{RST_V4, SYN_ACK_V4};

    fn syn_ack_segment() -> &'static [u8] {
        &SYN_ACK_V4[20..]
    }

    #[test]
    fn test_deconstruct() {
        let t = TcpPacket::new_checked(syn_ack_segment()).unwrap();
        assert_eq!(t.src_port(), 22);
        assert_eq!(t.dst_port(), 40000);
        assert_eq!(t.seq_number(), 0x8f3a_2c11);
        assert_eq!(t.ack_number(), 0x1234_5679);
        assert_eq!(t.header_len(), 24);
        assert_eq!(t.flags(), TcpFlags::SYN | TcpFlags::ACK);
        assert!(t.flags().is_syn_ack());
        assert!(!t.flags().is_rst());
        assert_eq!(t.window_len(), 64240);
        assert_eq!(t.urgent_at(), 0);
        assert_eq!(t.options(), &[2, 4, 0x05, 0xb4]);
        assert_eq!(t.mss(), Some(1460));
        assert_eq!(t.payload(), &[] as &[u8]);
        let src = IpAddr::from([198, 18, 0, 2]);
        let dst = IpAddr::from([198, 18, 0, 1]);
        assert!(t.verify_checksum(src, dst));
        assert!(!t.verify_checksum(IpAddr::from([198, 18, 0, 3]), dst));
        assert!(!t.verify_checksum(src, IpAddr::from([0u16; 8])));

        let r = TcpPacket::new_checked(&RST_V4[20..]).unwrap();
        assert_eq!(r.flags(), TcpFlags::RST | TcpFlags::ACK);
        assert!(r.flags().is_rst());
        assert!(!r.flags().is_syn_ack());
        assert_eq!(r.mss(), None);
    }

    #[test]
    fn test_truncated() {
        let seg = syn_ack_segment();
        for len in 0..seg.len() {
            let needed = if len < 20 { 20 } else { 24 };
            assert_eq!(
                TcpPacket::new_checked(&seg[..len]),
                Err(WireError::Truncated {
                    header: Header::Tcp,
                    needed,
                    available: len
                })
            );
        }
    }

    #[test]
    fn test_impossible_len() {
        let mut seg = syn_ack_segment().to_vec();
        seg[12] = 0x40; // 16 bytes
        assert_eq!(
            TcpPacket::new_checked(&seg),
            Err(WireError::BadLength {
                header: Header::Tcp,
                value: 16
            })
        );
        seg[12] = 0xf0; // 60 bytes in a 24-byte segment
        assert_eq!(
            TcpPacket::new_checked(&seg),
            Err(WireError::Truncated {
                header: Header::Tcp,
                needed: 60,
                available: 24
            })
        );
    }

    #[test]
    fn test_options_walk() {
        let mut seg = syn_ack_segment()[..20].to_vec();
        seg[12] = 0x80; // 32 bytes: 12 of options
        // NOP, NOP, SACK-permitted, MSS 1400, EOL, padding.
        seg.extend_from_slice(&[1, 1, 4, 2, 2, 4, 0x05, 0x78, 0, 0, 0, 0]);
        assert_eq!(TcpPacket::new_checked(&seg).unwrap().mss(), Some(1400));
        // A zero-length option ends the walk instead of looping.
        seg[22] = 8;
        seg[23] = 0;
        assert_eq!(TcpPacket::new_checked(&seg).unwrap().mss(), None);
        // An option running past the header.
        seg[23] = 40;
        assert_eq!(TcpPacket::new_checked(&seg).unwrap().mss(), None);
    }

    #[test]
    fn test_flags_display() {
        assert_eq!((TcpFlags::SYN | TcpFlags::ACK).to_string(), "SYN|ACK");
        assert_eq!(TcpFlags::empty().to_string(), "-");
        assert_eq!(format!("{:?}", TcpFlags::RST), "TcpFlags(RST)");
        let all = TcpFlags::from_bits(0xff);
        assert_eq!(all.to_string(), "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR");
        assert!(!all.is_syn_ack());
        assert!(all.intersects(TcpFlags::URG));
        assert_eq!((all & TcpFlags::ECE).bits(), 0x40);
    }
}
