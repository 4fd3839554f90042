//! IPv4 octet ranges in nmap's syntax (`198.18.0-3,7.*`), stored compactly.
//!
//! Each octet's allowed values live in a 256-bit bitmap ([`OctetSet`]); an
//! [`OctetRange`] is four of them, and its addresses are numbered in
//! mixed radix (last octet fastest), so the `i`-th address is computed, never
//! materialised. Nothing here allocates except `Display`; nothing panics.
//! Reference: nmap's target specification guide (`man nmap`, "TARGET
//! SPECIFICATION"); the dotted-quad form is RFC 791's.

use std::fmt;
use std::net::Ipv4Addr;

/// The set of values one octet may take: a 256-bit bitmap, never empty once
/// built by the parser.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct OctetSet {
    words: [u64; 4],
}

impl OctetSet {
    /// Every value 0-255.
    pub(crate) const FULL: OctetSet = OctetSet {
        words: [u64::MAX; 4],
    };

    /// The set holding only `value`.
    #[cfg(test)]
    pub(crate) fn single(value: u8) -> OctetSet {
        let mut set = OctetSet::default();
        set.insert_range(value, value);
        set
    }

    /// Adds `start..=end` (nothing if `start > end`).
    pub(crate) fn insert_range(&mut self, start: u8, end: u8) {
        for value in start..=end {
            self.words[usize::from(value >> 6)] |= 1 << (value & 63);
        }
    }

    pub(crate) fn contains(&self, value: u8) -> bool {
        self.words[usize::from(value >> 6)] & (1 << (value & 63)) != 0
    }

    /// How many values the set holds (0..=256).
    pub(crate) fn len(&self) -> u32 {
        self.words.iter().map(|word| word.count_ones()).sum()
    }

    /// The `rank`-th smallest value, if the set holds more than `rank` values.
    pub(crate) fn nth(&self, mut rank: u32) -> Option<u8> {
        for (index, &word) in self.words.iter().enumerate() {
            let ones = word.count_ones();
            if rank < ones {
                // index < 4 and the bit position < 64, so this fits a u8.
                return Some((index as u32 * 64 + select_bit(word, rank)) as u8);
            }
            rank -= ones;
        }
        None
    }

    /// The only value, if the set holds exactly one.
    pub(crate) fn as_single(&self) -> Option<u8> {
        if self.len() == 1 { self.nth(0) } else { None }
    }

    /// Maximal runs of consecutive values, ascending.
    fn runs(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
        let mut next: u16 = 0;
        std::iter::from_fn(move || {
            while next < 256 && !self.contains(next as u8) {
                next += 1;
            }
            if next >= 256 {
                return None;
            }
            let start = next;
            while next < 256 && self.contains(next as u8) {
                next += 1;
            }
            Some((start as u8, (next - 1) as u8))
        })
    }
}

/// Position of the `rank`-th set bit of `word` (counting from 0, lowest
/// first); the caller guarantees `rank < word.count_ones()`.
fn select_bit(mut word: u64, mut rank: u32) -> u32 {
    let mut position = 0;
    let mut width = 32;
    while width > 0 {
        let low = (word & ((1u64 << width) - 1)).count_ones();
        if rank >= low {
            rank -= low;
            word >>= width;
            position += width;
        }
        width /= 2;
    }
    position
}

/// Writes the set in nmap's syntax: `*` for all values, else runs joined by
/// commas (`0-3,7`).
impl fmt::Display for OctetSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == OctetSet::FULL {
            return f.write_str("*");
        }
        for (i, (start, end)) in self.runs().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for OctetSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OctetSet({self})")
    }
}

/// Four octet sets: the addresses whose every octet is in its set.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct OctetRange {
    pub(crate) octets: [OctetSet; 4],
}

impl OctetRange {
    /// How many addresses the range holds (at most 2^32).
    pub(crate) fn count(&self) -> u64 {
        self.octets.iter().map(|set| u64::from(set.len())).product()
    }

    /// The `index`-th address, last octet varying fastest (nmap's order);
    /// `None` when `index >= count()`.
    pub(crate) fn address_at(&self, mut index: u64) -> Option<Ipv4Addr> {
        if index >= self.count() {
            return None;
        }
        let mut bytes = [0u8; 4];
        for (byte, set) in bytes.iter_mut().zip(&self.octets).rev() {
            let radix = u64::from(set.len());
            // index % radix < 256, so it fits a u32.
            *byte = set.nth((index % radix) as u32)?;
            index /= radix;
        }
        Some(Ipv4Addr::from(bytes))
    }

    pub(crate) fn contains(&self, addr: Ipv4Addr) -> bool {
        addr.octets()
            .iter()
            .zip(&self.octets)
            .all(|(&byte, set)| set.contains(byte))
    }
}

impl fmt::Display for OctetRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = &self.octets;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

impl fmt::Debug for OctetRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OctetRange({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_of(values: &[u8]) -> OctetSet {
        let mut set = OctetSet::default();
        for &value in values {
            set.insert_range(value, value);
        }
        set
    }

    #[test]
    fn nth_walks_values_in_order() {
        let values = [0, 1, 63, 64, 65, 127, 128, 200, 255];
        let set = set_of(&values);
        assert_eq!(set.len(), values.len() as u32);
        for (rank, &value) in values.iter().enumerate() {
            assert_eq!(set.nth(rank as u32), Some(value));
        }
        assert_eq!(set.nth(values.len() as u32), None);
    }

    #[test]
    fn full_set_selects_every_value() {
        for value in 0..=255u8 {
            assert_eq!(OctetSet::FULL.nth(u32::from(value)), Some(value));
        }
        assert_eq!(OctetSet::FULL.len(), 256);
    }

    #[test]
    fn display_merges_runs() {
        assert_eq!(set_of(&[0, 1, 2, 3, 7, 9, 10]).to_string(), "0-3,7,9-10");
        assert_eq!(OctetSet::FULL.to_string(), "*");
        assert_eq!(OctetSet::single(255).to_string(), "255");
    }

    #[test]
    fn address_at_is_mixed_radix_last_octet_fastest() {
        let range = OctetRange {
            octets: [
                OctetSet::single(198),
                OctetSet::single(18),
                set_of(&[0, 2]),
                set_of(&[1, 2, 3]),
            ],
        };
        assert_eq!(range.count(), 6);
        let all: Vec<_> = (0..6).map(|i| range.address_at(i).unwrap()).collect();
        let expected: Vec<Ipv4Addr> = [
            "198.18.0.1",
            "198.18.0.2",
            "198.18.0.3",
            "198.18.2.1",
            "198.18.2.2",
            "198.18.2.3",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(all, expected);
        assert_eq!(range.address_at(6), None);
        assert!(range.contains("198.18.2.3".parse().unwrap()));
        assert!(!range.contains("198.18.1.3".parse().unwrap()));
    }

    #[test]
    fn full_range_counts_two_to_the_32() {
        let range = OctetRange {
            octets: [OctetSet::FULL; 4],
        };
        assert_eq!(range.count(), 1 << 32);
        assert_eq!(
            range.address_at((1 << 32) - 1),
            Some(Ipv4Addr::new(255, 255, 255, 255))
        );
    }
}
