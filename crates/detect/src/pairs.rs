//! The pair table: what one address did to another, in fixed memory.
//!
//! One entry per (initiator, responder) pair holds what TRW and the
//! vertical test need, so that no source keeps a set that grows with its
//! targets (Jung et al. key TRW's state by [remote, local] the same way):
//! that the initiator spoke first (the responder's later packets to it
//! are answers, not probes), that its first contact was already counted
//! by TRW (first contacts are deduplicated per pair), that the responder
//! answered positively (a follow-up proves the initiator's address is its
//! own), and the distinct ports of the responder that refused it: a count
//! and the first [`KEPT_PORTS`] exactly (the vertical test decides at the
//! fifth, so with the default threshold no repeat is ever counted twice;
//! a threshold above `KEPT_PORTS + 1` counts ports past the kept ones
//! without deduplication).
//!
//! The table is set-associative, like a CPU cache: `2^k` buckets of
//! [`WAYS`] entries, 64 bytes a bucket, most recently touched first. A new
//! pair enters its bucket at the front and pushes out (counted) the least
//! recently touched pair that holds no refused port, or the least recently
//! touched of all when each holds some: a slow scan's refused ports
//! outlive the one-off contacts that share its bucket. The memory is allocated once, zeroed by the
//! allocator and touched as it fills; nothing is allocated per packet. A
//! pair is known by a keyed 64-bit hash ([`RandomState`]: no one can
//! choose addresses whose pairs collide): the low bits choose the bucket,
//! the high 48 bits are kept as its tag. Two pairs are confused with odds
//! of about one in 2^46 per lookup.
//!
//! Contract: no panic, no allocation after [`PairTable::new`], no unsafe.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;

/// Entries per bucket (a bucket is one 64-byte cache line).
pub const WAYS: usize = 4;
/// Refused ports kept exactly per pair.
pub const KEPT_PORTS: usize = 4;

/// The tag's low 16 bits: flags and the refused-port count.
const OCCUPIED: u64 = 1 << 15;
const COUNTED: u64 = 1 << 14;
const ANSWERED: u64 = 1 << 13;
const COUNT: u64 = 0xff;
const META: u64 = 0xffff;

/// Mixed into [`PairTable::arp_key`]'s hash (ARP's EtherType).
const ARP_PAIR: u16 = 0x0806;

/// A pair's hash: the bucket and the tag come from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairKey(u64);

/// One pair's state (a copy; write it back with [`PairTable::put`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pair {
    /// TRW has counted this pair's first contact.
    pub counted: bool,
    /// The responder answered the initiator positively.
    pub answered: bool,
    /// Distinct refused ports (saturating at 255).
    pub refused: u8,
    /// The first [`KEPT_PORTS`] refused ports (`refused` of them are set).
    pub ports: [u16; KEPT_PORTS],
}

impl Pair {
    /// The refused ports kept.
    pub fn kept_ports(&self) -> &[u16] {
        &self.ports[..usize::from(self.refused).min(KEPT_PORTS)]
    }

    /// Files a refused `port`; true when it is new (a repeat of a kept
    /// port is not).
    pub fn refuse(&mut self, port: u16) -> bool {
        if self.kept_ports().contains(&port) {
            return false;
        }
        if let Some(slot) = self.ports.get_mut(usize::from(self.refused)) {
            *slot = port;
        }
        self.refused = self.refused.saturating_add(1);
        true
    }
}

/// The pair table.
#[derive(Debug)]
pub struct PairTable {
    /// `WAYS` entries a bucket, two words each: the tag, the kept ports.
    buckets: Vec<[u64; 2 * WAYS]>,
    mask: u64,
    keys: RandomState,
    evictions: u64,
}

impl PairTable {
    /// A table of at least `capacity` entries (rounded up to a power of
    /// two buckets).
    pub fn new(capacity: usize) -> Self {
        let buckets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        Self {
            // An array of zeros: the allocator hands zeroed pages out
            // lazily, so only the buckets used are resident.
            buckets: vec![[0; 2 * WAYS]; buckets],
            mask: buckets as u64 - 1,
            keys: RandomState::new(),
            evictions: 0,
        }
    }

    /// Entries the table holds at most.
    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// Pairs pushed out of the table so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// The key of the pair (`initiator` spoke to `responder`).
    pub fn key(&self, initiator: IpAddr, responder: IpAddr) -> PairKey {
        let mut h = self.keys.build_hasher();
        initiator.hash(&mut h);
        responder.hash(&mut h);
        PairKey(h.finish())
    }

    /// The key of what `initiator` did to `responder` over ARP, apart from
    /// what it did over IP: a host resolving a peer that wrote to it is
    /// answering, and must not make the peer's next packets look like
    /// answers in turn.
    pub fn arp_key(&self, initiator: IpAddr, responder: IpAddr) -> PairKey {
        let mut h = self.keys.build_hasher();
        initiator.hash(&mut h);
        responder.hash(&mut h);
        ARP_PAIR.hash(&mut h);
        PairKey(h.finish())
    }

    fn tag(key: PairKey) -> u64 {
        (key.0 & !META) | OCCUPIED
    }

    fn slot(&self, key: PairKey) -> (usize, Option<usize>) {
        let b = (key.0 & self.mask) as usize;
        let tag = Self::tag(key);
        let bucket = &self.buckets[b];
        let way = (0..WAYS).find(|&w| bucket[2 * w] & !META == tag & !META && bucket[2 * w] != 0);
        (b, way)
    }

    /// The pair's state, if the table holds it (the order is untouched).
    pub fn get(&self, key: PairKey) -> Option<Pair> {
        let (b, way) = self.slot(key);
        way.map(|w| decode(self.buckets[b][2 * w], self.buckets[b][2 * w + 1]))
    }

    /// Whether the table holds the pair.
    pub fn contains(&self, key: PairKey) -> bool {
        self.slot(key).1.is_some()
    }

    /// The pair's state, inserting a fresh one if absent, and marks it
    /// the most recently touched of its bucket (pushing the least
    /// recently touched out when the bucket is full).
    pub fn touch(&mut self, key: PairKey) -> Pair {
        let (b, way) = self.slot(key);
        let bucket = &mut self.buckets[b];
        match way {
            Some(w) => {
                bucket[..2 * (w + 1)].rotate_right(2);
            }
            None => {
                // The victim: the oldest entry without refused ports (an
                // empty one has none), else the oldest.
                let victim = (0..WAYS)
                    .rev()
                    .find(|&w| bucket[2 * w] & COUNT == 0)
                    .unwrap_or(WAYS - 1);
                if bucket[2 * victim] != 0 {
                    self.evictions += 1;
                }
                bucket[..2 * (victim + 1)].rotate_right(2);
                bucket[0] = Self::tag(key);
                bucket[1] = 0;
            }
        }
        decode(bucket[0], bucket[1])
    }

    /// Writes `pair` back, if the table still holds its key.
    pub fn put(&mut self, key: PairKey, pair: Pair) {
        let (b, way) = self.slot(key);
        if let Some(w) = way {
            let (tag, ports) = encode(Self::tag(key), pair);
            self.buckets[b][2 * w] = tag;
            self.buckets[b][2 * w + 1] = ports;
        }
    }
}

fn decode(tag: u64, ports: u64) -> Pair {
    let p = ports.to_le_bytes();
    Pair {
        counted: tag & COUNTED != 0,
        answered: tag & ANSWERED != 0,
        refused: (tag & COUNT) as u8,
        ports: [
            u16::from_le_bytes([p[0], p[1]]),
            u16::from_le_bytes([p[2], p[3]]),
            u16::from_le_bytes([p[4], p[5]]),
            u16::from_le_bytes([p[6], p[7]]),
        ],
    }
}

fn encode(tag: u64, pair: Pair) -> (u64, u64) {
    let mut tag = tag | u64::from(pair.refused);
    if pair.counted {
        tag |= COUNTED;
    }
    if pair.answered {
        tag |= ANSWERED;
    }
    let [a, b, c, d] = pair.ports.map(u16::to_le_bytes);
    let ports = u64::from_le_bytes([a[0], a[1], b[0], b[1], c[0], c[1], d[0], d[1]]);
    (tag, ports)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0xc612_0000 + n))
    }

    #[test]
    fn a_pair_keeps_its_flags_and_ports_and_its_direction() {
        let mut t = PairTable::new(64);
        let (a, b) = (ip(1), ip(2));
        let k = t.key(a, b);
        assert!(!t.contains(k));
        let mut p = t.touch(k);
        assert_eq!(p, Pair::default());
        p.counted = true;
        p.answered = true;
        for port in [22, 80, 22, 443, 8080, 9000, 80] {
            p.refuse(port);
        }
        t.put(k, p);
        let got = t.get(k).unwrap();
        assert!(got.counted && got.answered);
        assert_eq!(got.refused, 5);
        assert_eq!(got.kept_ports(), &[22, 80, 443, 8080]);
        assert!(!t.contains(t.key(b, a)), "a pair has a direction");
    }

    #[test]
    fn a_full_bucket_pushes_its_least_recently_touched_pair_out_and_counts_it() {
        // One bucket: every pair shares it.
        let mut t = PairTable::new(WAYS);
        assert_eq!(t.capacity(), WAYS);
        let keys: Vec<PairKey> = (0..6).map(|i| t.key(ip(i), ip(100))).collect();
        for &k in &keys[..WAYS] {
            t.touch(k);
        }
        // Touch the first again: the second is now the oldest.
        t.touch(keys[0]);
        t.touch(keys[4]);
        assert!(t.contains(keys[0]));
        assert!(!t.contains(keys[1]), "the least recently touched went");
        assert_eq!(t.evictions(), 1);
        t.touch(keys[5]);
        assert!(!t.contains(keys[2]));
        assert_eq!(t.evictions(), 2);
        assert!(keys[3..].iter().all(|&k| t.contains(k)));
    }

    #[test]
    fn a_pair_with_refused_ports_outlives_newer_pairs_without() {
        let mut t = PairTable::new(WAYS);
        let keys: Vec<PairKey> = (0..20).map(|i| t.key(ip(i), ip(100))).collect();
        // The oldest pair is a slow scan's: refused twice.
        let mut scan = t.touch(keys[0]);
        scan.refuse(22);
        scan.refuse(23);
        t.put(keys[0], scan);
        for &k in &keys[1..] {
            t.touch(k);
        }
        assert_eq!(t.get(keys[0]).map(|p| p.refused), Some(2), "kept");
        assert_eq!(t.evictions(), 19 - (WAYS as u64 - 1));
        assert!(keys[17..].iter().all(|&k| t.contains(k)));
        // Each pair refused: the oldest goes after all.
        for &k in &keys[17..] {
            let mut p = t.touch(k);
            p.refuse(80);
            t.put(k, p);
        }
        t.touch(t.key(ip(50), ip(100)));
        assert!(!t.contains(keys[0]));
    }

    #[test]
    fn a_million_pairs_take_sixteen_mebibytes() {
        let t = PairTable::new(1_000_000);
        assert_eq!(t.capacity(), 1 << 20);
        assert_eq!(
            std::mem::size_of::<[u64; 2 * WAYS]>() * t.buckets.len(),
            16 << 20
        );
    }
}
