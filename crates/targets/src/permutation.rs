//! A keyed pseudo-random bijection of `[0, len)` onto itself, for visiting
//! hosts and (host, port) pairs in a scattered order without storing it.
//!
//! Format-preserving encryption (Black and Rogaway, "Ciphers with Arbitrary
//! Finite Domains", CT-RSA 2002): a 4-round Feistel network over the
//! smallest bit width `w >= 2` with `2^w >= len`, split into halves of
//! `w/2` and `w - w/2` bits (unbalanced when `w` is odd), each round XORing
//! one half with SipHash-1-3 of the other under a round key derived from the
//! seed. Values that land at or above `len` are encrypted again
//! ("cycle-walking"); since `2^w < 2 * len`, that takes fewer than two extra
//! rounds on average. `len` may be anything up to `u128::MAX`. [`apply`]
//! neither allocates nor panics; an index `>= len` comes back unchanged.
//! ZMap's cyclic-group walk is the design this replaces: it needs a prime
//! per domain size, this needs only the bit width.
//!
//! [`apply`]: Permutation::apply

use siphasher::sip::SipHasher13;

const ROUNDS: usize = 4;

/// A bijection of `[0, len)`: keyed pseudo-random, or the identity (`-r`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permutation {
    len: u128,
    cipher: Option<FeistelCipher>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct FeistelCipher {
    /// Width of the high half; `left_bits + right_bits` is the domain width.
    left_bits: u32,
    right_bits: u32,
    round_keys: [(u64, u64); ROUNDS],
}

impl Permutation {
    /// A keyed permutation of `[0, len)`; the same `(len, seed)` always
    /// gives the same order. Cheap: no allocation, a few multiplications.
    pub fn new(len: u128, seed: u64) -> Permutation {
        if len <= 1 {
            return Permutation::identity(len);
        }
        let width = (u128::BITS - (len - 1).leading_zeros()).max(2);
        let left_bits = width / 2;
        let mut state = seed;
        let round_keys = std::array::from_fn(|_| (splitmix64(&mut state), splitmix64(&mut state)));
        Permutation {
            len,
            cipher: Some(FeistelCipher {
                left_bits,
                right_bits: width - left_bits,
                round_keys,
            }),
        }
    }

    /// The identity on `[0, len)`, for scans in the order given.
    pub fn identity(len: u128) -> Permutation {
        Permutation { len, cipher: None }
    }

    /// The size of the domain.
    pub fn len(&self) -> u128 {
        self.len
    }

    /// True when the domain is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The position `index` maps to; `index >= len` is returned unchanged.
    pub fn apply(&self, index: u128) -> u128 {
        let Some(cipher) = &self.cipher else {
            return index;
        };
        if index >= self.len {
            return index;
        }
        let mut value = cipher.encrypt(index);
        while value >= self.len {
            value = cipher.encrypt(value);
        }
        value
    }

    /// The inverse of [`apply`](Permutation::apply): `inverse(apply(i)) == i`.
    /// Useful to find where a resumed scan stood.
    pub fn inverse(&self, value: u128) -> u128 {
        let Some(cipher) = &self.cipher else {
            return value;
        };
        if value >= self.len {
            return value;
        }
        let mut index = cipher.decrypt(value);
        while index >= self.len {
            index = cipher.decrypt(index);
        }
        index
    }
}

impl FeistelCipher {
    fn round(&self, round: usize, half: u64, out_bits: u32) -> u64 {
        let (k0, k1) = self.round_keys[round];
        let hash = SipHasher13::new_with_keys(k0, k1).hash(&half.to_le_bytes());
        hash & mask(out_bits)
    }

    /// Even rounds update the left half from the right, odd rounds the right
    /// from the left; each step is invertible on its own.
    fn encrypt(&self, value: u128) -> u128 {
        let (mut left, mut right) = self.split(value);
        for round in 0..ROUNDS {
            if round % 2 == 0 {
                left ^= self.round(round, right, self.left_bits);
            } else {
                right ^= self.round(round, left, self.right_bits);
            }
        }
        self.join(left, right)
    }

    fn decrypt(&self, value: u128) -> u128 {
        let (mut left, mut right) = self.split(value);
        for round in (0..ROUNDS).rev() {
            if round % 2 == 0 {
                left ^= self.round(round, right, self.left_bits);
            } else {
                right ^= self.round(round, left, self.right_bits);
            }
        }
        self.join(left, right)
    }

    /// Halves are at most 64 bits wide, so the casts keep every bit.
    fn split(&self, value: u128) -> (u64, u64) {
        let right = (value & u128::from(mask(self.right_bits))) as u64;
        let left = (value >> self.right_bits) as u64 & mask(self.left_bits);
        (left, right)
    }

    fn join(&self, left: u64, right: u64) -> u128 {
        (u128::from(left) << self.right_bits) | u128::from(right)
    }
}

fn mask(bits: u32) -> u64 {
    u64::MAX.checked_shr(64 - bits).unwrap_or(0)
}

/// SplitMix64 (Steele, Lea, Flood, OOPSLA 2014): expands the seed into
/// independent-looking round keys.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn order(permutation: &Permutation) -> Vec<u128> {
        (0..permutation.len())
            .map(|i| permutation.apply(i))
            .collect()
    }

    fn is_bijection(permutation: &Permutation) -> bool {
        let len = permutation.len() as usize;
        let mut seen = vec![false; len];
        for index in 0..permutation.len() {
            let value = permutation.apply(index);
            if value >= permutation.len() || std::mem::replace(&mut seen[value as usize], true) {
                return false;
            }
        }
        seen.into_iter().all(|hit| hit)
    }

    #[test]
    fn tiny_domains() {
        for len in 0..=3 {
            assert!(is_bijection(&Permutation::new(len, 7)), "{len}");
        }
        assert_eq!(Permutation::new(1, 7).apply(0), 0);
        assert_eq!(Permutation::new(0, 7).apply(5), 5);
        assert!(Permutation::new(0, 7).is_empty());
    }

    #[test]
    fn identity_is_the_identity() {
        let identity = Permutation::identity(10);
        assert_eq!(order(&identity), (0..10).collect::<Vec<_>>());
        assert_eq!(identity.len(), 10);
    }

    #[test]
    fn out_of_range_indexes_come_back_unchanged() {
        let permutation = Permutation::new(10, 1);
        assert_eq!(permutation.apply(10), 10);
        assert_eq!(permutation.apply(u128::MAX), u128::MAX);
        assert_eq!(permutation.inverse(u128::MAX), u128::MAX);
    }

    #[test]
    fn scatters_a_large_domain() {
        let permutation = Permutation::new(1 << 24, 42);
        let first: Vec<u128> = (0..8).map(|i| permutation.apply(i)).collect();
        assert!(
            first.windows(2).any(|w| w[0].abs_diff(w[1]) > 1 << 16),
            "{first:?}"
        );
    }

    #[test]
    fn full_u128_domain() {
        let permutation = Permutation::new(u128::MAX, 3);
        for index in [0, 1, u128::MAX / 2, u128::MAX - 1] {
            let value = permutation.apply(index);
            assert!(value < u128::MAX);
            assert_eq!(permutation.inverse(value), index);
        }
    }

    proptest! {
        #[test]
        fn is_a_bijection(len in 0u128..2000, seed: u64) {
            prop_assert!(is_bijection(&Permutation::new(len, seed)));
        }

        #[test]
        fn same_seed_same_order(len in 0u128..500, seed: u64) {
            prop_assert_eq!(order(&Permutation::new(len, seed)), order(&Permutation::new(len, seed)));
        }

        #[test]
        fn different_seeds_different_orders(len in 64u128..500, seed: u64, other: u64) {
            prop_assume!(seed != other);
            prop_assert_ne!(order(&Permutation::new(len, seed)), order(&Permutation::new(len, other)));
        }

        #[test]
        fn stays_in_range_for_huge_domains(index: u128, seed: u64) {
            let len = (1u128 << 100) + 7;
            let permutation = Permutation::new(len, seed);
            let index = index % len;
            let value = permutation.apply(index);
            prop_assert!(value < len);
            prop_assert_eq!(permutation.inverse(value), index);
        }

        #[test]
        fn inverse_undoes_apply(len in 1u128..u128::MAX, index: u128, seed: u64) {
            let permutation = Permutation::new(len, seed);
            let index = index % len;
            prop_assert_eq!(permutation.inverse(permutation.apply(index)), index);
        }
    }
}
