//! Scanner traits: fixed fields that known tools put in their probes.
//! Evidence only: an alert is never raised on a trait alone, and tools
//! change (ZMap's IP-ID 54321 is random since v4.1.0). A source keeps the
//! traits it showed as a bit set ([`TraitSet`]), one byte.

use crate::decode::{EventKind, FlowEvent, Proto};

/// The traits known, by bit.
const NAMES: [&str; 3] = [
    "nmap-syn: window 1024, MSS option only",
    "masscan-syn: window 1024, no options",
    "zmap-syn: IP-ID 54321, window 65535",
];

/// A set of traits, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraitSet(u8);

impl TraitSet {
    /// Adds `other`'s traits.
    pub fn add(&mut self, other: TraitSet) {
        self.0 |= other.0;
    }

    /// The traits' names, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        NAMES
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, name)| name)
    }
}

/// The traits a probe shows (no allocation).
pub fn scanner_traits(e: &FlowEvent) -> TraitSet {
    let t = e.traits;
    let syn = e.proto == Proto::Tcp && e.kind == EventKind::Attempt;
    let hits = [
        syn && t.window == 1024 && t.tcp_options_len == 4,
        syn && t.window == 1024 && t.tcp_options_len == 0,
        syn && t.window == 65535 && t.tcp_options_len == 0 && t.ip_id == 54321,
    ];
    TraitSet(
        hits.into_iter()
            .enumerate()
            .fold(0, |bits, (i, hit)| bits | (u8::from(hit) << i)),
    )
}
