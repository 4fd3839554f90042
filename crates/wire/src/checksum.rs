//! The Internet checksum: full computation (RFC 1071), pseudo-header sums for
//! TCP and UDP (RFC 9293 section 3.1 for IPv4, RFC 8200 section 8.1 for
//! IPv6), and incremental update (RFC 1624, equation 3).
//!
//! Two kinds of value appear here, both `u16`:
//! - a **sum**: the folded one's complement sum of 16-bit big-endian words,
//!   not complemented ([`sum`], [`pseudo_header_v4`], [`pseudo_header_v6`]);
//!   sums combine with [`add`];
//! - a **checksum**: the complement of a sum, the value carried in a header
//!   ([`checksum`], [`update`], [`update32`]).
//!
//! A TCP checksum is `!add(pseudo_header_v4(..), sum(segment))` with the
//! segment's checksum field zeroed. A receiver verifies by summing with the
//! field in place and getting `0xffff`. (UDP sends a computed `0x0000` as
//! `0xffff`; that mapping is the caller's, RFC 768.)
//!
//! Contract: no panic on any input, no allocation. Sums are accumulated in a
//! `u64` with end-around carry, so any slice length is safe.

use core::net::{Ipv4Addr, Ipv6Addr};

/// Folds a 32-bit accumulator of 16-bit words into a one's complement sum.
#[inline(always)]
#[must_use]
pub fn fold(sum: u32) -> u16 {
    // Two rounds suffice: the first leaves at most 0x1fffe, the second at
    // most 0xffff.
    let s = (sum & 0xffff).wrapping_add(sum >> 16);
    let s = (s & 0xffff).wrapping_add(s >> 16);
    s as u16
}

/// Folds a 64-bit accumulator (of 16- or 32-bit words) into a sum.
#[inline(always)]
fn fold64(sum: u64) -> u16 {
    let s = (sum & 0xffff_ffff).wrapping_add(sum >> 32);
    let s = (s & 0xffff_ffff).wrapping_add(s >> 32);
    fold(s as u32)
}

/// One's complement addition of two sums.
#[inline(always)]
#[must_use]
pub fn add(a: u16, b: u16) -> u16 {
    fold(u32::from(a).wrapping_add(u32::from(b)))
}

/// The one's complement sum of `data` as big-endian 16-bit words, an odd
/// final byte padded with a zero byte (RFC 1071, section 4.1).
///
/// Summing 32-bit words and folding gives the same result (RFC 1071,
/// section 2 (B)), with half the additions.
#[must_use]
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut add64 = |w: u64| {
        let (s, carry) = acc.overflowing_add(w);
        // End-around carry: 2^64 is 1 modulo 0xffff. Cannot overflow, since
        // a carry leaves `s` below `u64::MAX`.
        acc = s.wrapping_add(u64::from(carry));
    };
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        if let Ok(w) = <[u8; 4]>::try_from(w) {
            add64(u64::from(u32::from_be_bytes(w)));
        }
    }
    let rest = words.remainder();
    let mut halves = rest.chunks_exact(2);
    for h in &mut halves {
        if let Ok(h) = <[u8; 2]>::try_from(h) {
            add64(u64::from(u16::from_be_bytes(h)));
        }
    }
    if let [last] = halves.remainder() {
        add64(u64::from(u16::from_be_bytes([*last, 0])));
    }
    fold64(acc)
}

/// The Internet checksum of `data`: the complement of [`sum`]. Over a
/// header whose checksum field is in place, a valid header gives 0.
#[inline]
#[must_use]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// The sum of the IPv4 pseudo-header: source, destination, zero, protocol
/// and the TCP or UDP length (header plus data) (RFC 9293, section 3.1).
#[must_use]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let acc = u64::from(src.to_bits())
        .wrapping_add(u64::from(dst.to_bits()))
        .wrapping_add(u64::from(protocol))
        .wrapping_add(u64::from(length));
    fold64(acc)
}

/// The sum of the IPv6 pseudo-header: source, destination, the 32-bit
/// upper-layer length and the next header value (RFC 8200, section 8.1).
#[must_use]
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, length: u32) -> u16 {
    let mut acc: u64 = u64::from(next_header).wrapping_add(u64::from(length));
    for addr in [src, dst] {
        for w in addr.segments() {
            // At most 19 words of 16 bits: no overflow.
            acc = acc.wrapping_add(u64::from(w));
        }
    }
    fold64(acc)
}

/// The new checksum after one 16-bit word covered by `checksum` changes
/// from `old` to `new`: `HC' = ~(~HC + ~m + m')` (RFC 1624, equation 3).
///
/// Equals a full recomputation unless every word now covered is zero, where
/// one's complement arithmetic cannot tell `0x0000` from `0xffff` (no TCP,
/// UDP or IP header is ever all zeros).
#[inline]
#[must_use]
pub fn update(checksum: u16, old: u16, new: u16) -> u16 {
    let s = u32::from(!checksum)
        .wrapping_add(u32::from(!old))
        .wrapping_add(u32::from(new));
    !fold(s)
}

/// [`update`] for a 32-bit field (a sequence number, an IPv4 address) that
/// starts at an even offset of the checksummed data.
#[inline]
#[must_use]
pub fn update32(checksum: u16, old: u32, new: u32) -> u16 {
    let s = u32::from(!checksum)
        .wrapping_add(u32::from(!(old >> 16) as u16))
        .wrapping_add(u32::from(!(old as u16)))
        .wrapping_add(new >> 16)
        .wrapping_add(new & 0xffff);
    !fold(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A plain reference: 16-bit words into a u64, then fold, the way
    /// RFC 1071's sample C code does it.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for pair in data.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map_or(0, u64::from);
            acc += hi | lo;
        }
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn test_rfc1071_example() {
        // RFC 1071, section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn test_known_ipv4_header() {
        // The IPv4 header of the SYN-ACK fixture carries a valid checksum.
        let header = &crate::test_packets::SYN_ACK_V4[..20];
        assert_eq!(checksum(header), 0);
    }

    #[test]
    fn test_odd_and_empty() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn test_pseudo_headers_match_bytes() {
        let s4 = Ipv4Addr::new(198, 18, 0, 1);
        let d4 = Ipv4Addr::new(198, 18, 0, 2);
        let mut p4 = Vec::new();
        p4.extend_from_slice(&s4.octets());
        p4.extend_from_slice(&d4.octets());
        p4.extend_from_slice(&[0, 6, 0, 24]);
        assert_eq!(pseudo_header_v4(s4, d4, 6, 24), sum(&p4));

        let s6: Ipv6Addr = "fd00::1".parse().unwrap();
        let d6: Ipv6Addr = "fd00:ffff::2".parse().unwrap();
        let mut p6 = Vec::new();
        p6.extend_from_slice(&s6.octets());
        p6.extend_from_slice(&d6.octets());
        p6.extend_from_slice(&70000u32.to_be_bytes());
        p6.extend_from_slice(&[0, 0, 0, 6]);
        assert_eq!(pseudo_header_v6(&s6, &d6, 6, 70000), sum(&p6));
    }

    fn all_zero(data: &[u8]) -> bool {
        data.iter().all(|&b| b == 0)
    }

    proptest! {
        #[test]
        fn sum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            prop_assert_eq!(sum(&data), reference_sum(&data));
        }

        #[test]
        fn update_matches_recomputation(
            mut data in proptest::collection::vec(any::<u8>(), 2..200),
            at in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            let at = at.index(data.len() / 2) * 2;
            let before = checksum(&data);
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let incremental = update(before, old, new);
            if all_zero(&data) {
                prop_assert!(incremental == 0 || incremental == 0xffff);
            } else {
                prop_assert_eq!(incremental, checksum(&data));
            }
        }

        #[test]
        fn update32_matches_recomputation(
            mut data in proptest::collection::vec(any::<u8>(), 4..200),
            at in any::<prop::sample::Index>(),
            new in any::<u32>(),
        ) {
            let at = at.index((data.len() - 2) / 2) * 2;
            let before = checksum(&data);
            let old = u32::from_be_bytes(data[at..at + 4].try_into().unwrap());
            data[at..at + 4].copy_from_slice(&new.to_be_bytes());
            let incremental = update32(before, old, new);
            if all_zero(&data) {
                prop_assert!(incremental == 0 || incremental == 0xffff);
            } else {
                prop_assert_eq!(incremental, checksum(&data));
            }
        }

        #[test]
        fn sums_combine(
            a in proptest::collection::vec(any::<u8>(), 0..100),
            b in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            // Concatenation at an even boundary adds the sums.
            let mut a = a;
            if a.len() % 2 == 1 {
                a.push(0);
            }
            let mut ab = a.clone();
            ab.extend_from_slice(&b);
            let combined = add(sum(&a), sum(&b));
            if all_zero(&ab) {
                prop_assert_eq!(combined, 0);
            }
            prop_assert_eq!(combined, sum(&ab));
        }
    }
}
