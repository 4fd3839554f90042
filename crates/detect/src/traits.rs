//! Scanner traits: fixed fields that known tools put in their probes.
//! Evidence only: an alert is never raised on a trait alone, and tools
//! change (ZMap's IP-ID 54321 is random since v4.1.0).

use crate::decode::{EventKind, FlowEvent, Proto};

/// The traits a probe shows (static strings, no allocation).
pub fn scanner_traits(e: &FlowEvent) -> impl Iterator<Item = &'static str> {
    let t = e.traits;
    let syn = e.proto == Proto::Tcp && e.kind == EventKind::Attempt;
    [
        (
            syn && t.window == 1024 && t.tcp_options_len == 4,
            "nmap-syn: window 1024, MSS option only",
        ),
        (
            syn && t.window == 1024 && t.tcp_options_len == 0,
            "masscan-syn: window 1024, no options",
        ),
        (
            syn && t.window == 65535 && t.tcp_options_len == 0 && t.ip_id == 54321,
            "zmap-syn: IP-ID 54321, window 65535",
        ),
    ]
    .into_iter()
    .filter_map(|(hit, name)| hit.then_some(name))
}
