//! A checked view of an ICMP or ICMPv6 message header, and the message types
//! and codes the scanner reads.
//!
//! Read first: RFC 792 (ICMP: Destination Unreachable, Time Exceeded) and
//! RFC 4443, sections 2.1 and 3 (ICMPv6 errors). Both start with the same
//! 8 bytes: type, code, checksum, and 4 bytes whose meaning depends on the
//! type (unused, an MTU, a pointer). An error message then quotes the packet
//! that caused it: the IP header and at least 8 bytes of its payload for
//! ICMP, as much as fits in 1280 bytes for ICMPv6. RFC 1812, section
//! 4.3.2.3, and RFC 4884 (extensions after the quote) are worth a look.
//!
//! Contract: [`IcmpPacket::new_checked`] validates the length; after it
//! returns `Ok`, no accessor panics. No allocation.

use crate::bytes::{be16, be32, u8_at};
use crate::error::{Header, WireError};

/// ICMP (IPv4) message types and codes (RFC 792).
pub mod v4 {
    /// Echo Reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination Unreachable; codes in [`mod@unreachable`].
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Echo Request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time Exceeded (code 0: TTL exceeded in transit).
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter Problem.
    pub const PARAMETER_PROBLEM: u8 = 12;

    /// Destination Unreachable codes (RFC 792, RFC 1122, RFC 1812).
    pub mod unreachable {
        /// Network unreachable.
        pub const NET: u8 = 0;
        /// Host unreachable.
        pub const HOST: u8 = 1;
        /// Protocol unreachable.
        pub const PROTOCOL: u8 = 2;
        /// Port unreachable.
        pub const PORT: u8 = 3;
        /// Fragmentation needed and DF set.
        pub const FRAG_NEEDED: u8 = 4;
        /// Communication with the destination network administratively
        /// prohibited.
        pub const NET_PROHIBITED: u8 = 9;
        /// Communication with the destination host administratively
        /// prohibited.
        pub const HOST_PROHIBITED: u8 = 10;
        /// Communication administratively prohibited (a filter, RFC 1812).
        pub const ADMIN_PROHIBITED: u8 = 13;
    }
}

/// ICMPv6 message types and codes (RFC 4443).
pub mod v6 {
    /// Destination Unreachable; codes in [`mod@unreachable`].
    pub const DEST_UNREACHABLE: u8 = 1;
    /// Packet Too Big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time Exceeded (code 0: hop limit exceeded in transit).
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter Problem; codes in [`mod@parameter_problem`].
    pub const PARAMETER_PROBLEM: u8 = 4;
    /// Echo Request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo Reply.
    pub const ECHO_REPLY: u8 = 129;

    /// Destination Unreachable codes (RFC 4443, section 3.1).
    pub mod unreachable {
        /// No route to destination.
        pub const NO_ROUTE: u8 = 0;
        /// Communication with destination administratively prohibited.
        pub const ADMIN_PROHIBITED: u8 = 1;
        /// Beyond scope of source address.
        pub const BEYOND_SCOPE: u8 = 2;
        /// Address unreachable.
        pub const ADDRESS: u8 = 3;
        /// Port unreachable.
        pub const PORT: u8 = 4;
        /// Source address failed ingress/egress policy.
        pub const POLICY_FAILED: u8 = 5;
        /// Reject route to destination.
        pub const REJECT_ROUTE: u8 = 6;
    }

    /// Parameter Problem codes (RFC 4443, section 3.4).
    pub mod parameter_problem {
        /// Erroneous header field encountered.
        pub const ERRONEOUS_FIELD: u8 = 0;
        /// Unrecognized Next Header type encountered: the host does not
        /// speak the quoted packet's protocol (IPv6's counterpart of
        /// ICMP protocol unreachable, what Linux sends for SCTP without
        /// SCTP support).
        pub const UNRECOGNIZED_NEXT_HEADER: u8 = 1;
        /// Unrecognized IPv6 option encountered.
        pub const UNRECOGNIZED_OPTION: u8 = 2;
    }
}

/// Offsets of the header's fields (RFC 792, RFC 4443 section 2.1).
mod field {
    /// Message type.
    pub(super) const TYPE: usize = 0;
    /// Code.
    pub(super) const CODE: usize = 1;
    /// Checksum.
    pub(super) const CHECKSUM: usize = 2;
    /// Type-specific: unused, MTU, pointer, or echo identifier and sequence.
    pub(super) const REST: usize = 4;
}

/// The length of the ICMP and ICMPv6 header.
pub const HEADER_LEN: usize = 8;

/// A validated ICMP or ICMPv6 header over borrowed bytes, with the message
/// body (for an error, the quoted packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpPacket<'a> {
    fixed: &'a [u8; HEADER_LEN],
    payload: &'a [u8],
}

impl<'a> IcmpPacket<'a> {
    /// Validates a message of at least the 8-byte header.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if `bytes` is shorter than 8 bytes.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, WireError> {
        let Some((fixed, payload)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(WireError::Truncated {
                header: Header::Icmp,
                needed: HEADER_LEN,
                available: bytes.len(),
            });
        };
        Ok(Self { fixed, payload })
    }

    /// The message type ([`v4`] or [`v6`]).
    #[must_use]
    pub fn msg_type(&self) -> u8 {
        u8_at(self.fixed, field::TYPE)
    }

    /// The code.
    #[must_use]
    pub fn code(&self) -> u8 {
        u8_at(self.fixed, field::CODE)
    }

    /// The checksum as sent.
    #[must_use]
    pub fn checksum(&self) -> u16 {
        be16(self.fixed, field::CHECKSUM)
    }

    /// The type-specific second word (an MTU for "fragmentation needed" and
    /// Packet Too Big, a pointer for Parameter Problem).
    #[must_use]
    pub fn rest_of_header(&self) -> u32 {
        be32(self.fixed, field::REST)
    }

    /// The body after the 8-byte header: for an error, the quoted packet.
    #[must_use]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_packets::{ICMP_ADMIN_PROHIBITED_V4, ICMP_ADMIN_PROHIBITED_V6};

    #[test]
    fn test_deconstruct() {
        let i = IcmpPacket::new_checked(&ICMP_ADMIN_PROHIBITED_V4[20..]).unwrap();
        assert_eq!(i.msg_type(), v4::DEST_UNREACHABLE);
        assert_eq!(i.code(), v4::unreachable::ADMIN_PROHIBITED);
        assert_eq!(i.rest_of_header(), 0);
        assert_eq!(i.payload(), &ICMP_ADMIN_PROHIBITED_V4[28..]);
        assert_eq!(
            crate::checksum::checksum(&ICMP_ADMIN_PROHIBITED_V4[20..]),
            0
        );
        assert_ne!(i.checksum(), 0);

        let i = IcmpPacket::new_checked(&ICMP_ADMIN_PROHIBITED_V6[40..]).unwrap();
        assert_eq!(i.msg_type(), v6::DEST_UNREACHABLE);
        assert_eq!(i.code(), v6::unreachable::ADMIN_PROHIBITED);
    }

    #[test]
    fn test_truncated() {
        let bytes = &ICMP_ADMIN_PROHIBITED_V4[20..];
        for len in 0..HEADER_LEN {
            assert_eq!(
                IcmpPacket::new_checked(&bytes[..len]),
                Err(WireError::Truncated {
                    header: Header::Icmp,
                    needed: 8,
                    available: len
                })
            );
        }
        let i = IcmpPacket::new_checked(&bytes[..8]).unwrap();
        assert_eq!(i.payload(), &[] as &[u8]);
    }
}
