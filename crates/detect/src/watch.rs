//! The exploitable-port watch: per time window, the probes and distinct
//! sources aimed at ports of the risky catalogue (amplifiers and
//! often-attacked services): the "temperature" of attackers' interest at
//! the edge. Sans-IO, driven by packet timestamps; memory is one row per
//! (window, port) seen, with distinct sources capped per row.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use serde::Serialize;

use crate::decode::{EventKind, FlowEvent, Proto};

/// Distinct sources counted exactly per row; past this the count saturates.
const MAX_SOURCES: usize = 4096;

/// The risky catalogue: protocol, port, service.
pub const RISKY: &[(Proto, u16, &str)] = &[
    (Proto::Udp, 19, "chargen"),
    (Proto::Udp, 53, "dns"),
    (Proto::Udp, 123, "ntp"),
    (Proto::Udp, 161, "snmp"),
    (Proto::Udp, 389, "cldap"),
    (Proto::Udp, 1900, "ssdp"),
    (Proto::Udp, 11211, "memcached"),
    (Proto::Tcp, 23, "telnet"),
    (Proto::Tcp, 445, "microsoft-ds"),
    (Proto::Tcp, 2323, "telnet-alt"),
    (Proto::Tcp, 3389, "ms-wbt-server"),
    (Proto::Tcp, 5555, "adb"),
    (Proto::Tcp, 6379, "redis"),
    (Proto::Tcp, 9200, "elasticsearch"),
    (Proto::Tcp, 11211, "memcached"),
    (Proto::Tcp, 27017, "mongodb"),
];

/// One row of the watch table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchRow {
    /// Start of the window, seconds since the epoch.
    pub window_start: u64,
    /// Protocol.
    pub proto: Proto,
    /// Destination port.
    pub port: u16,
    /// The catalogue's name for it.
    pub service: &'static str,
    /// Connection attempts seen.
    pub probes: u64,
    /// Distinct sources (saturates at 4096).
    pub sources: u32,
}

/// Counts probes to risky ports per window.
#[derive(Debug)]
pub struct PortWatch {
    window_ns: u64,
    rows: BTreeMap<(u64, Proto, u16), (u64, HashSet<IpAddr>)>,
}

impl PortWatch {
    /// A watch with windows of `window_secs` seconds (at least 1).
    pub fn new(window_secs: u64) -> Self {
        Self {
            window_ns: window_secs.max(1).saturating_mul(1_000_000_000),
            rows: BTreeMap::new(),
        }
    }

    /// Counts `e` if it is an attempt on a catalogue port.
    pub fn observe(&mut self, e: &FlowEvent) {
        if e.kind != EventKind::Attempt
            || !RISKY
                .iter()
                .any(|&(p, port, _)| p == e.proto && port == e.dport)
        {
            return;
        }
        let window = e.ts_ns / self.window_ns * (self.window_ns / 1_000_000_000);
        let row = self.rows.entry((window, e.proto, e.dport)).or_default();
        row.0 += 1;
        if row.1.len() < MAX_SOURCES {
            row.1.insert(e.src);
        }
    }

    /// The table, by window then protocol and port.
    pub fn rows(&self) -> Vec<WatchRow> {
        self.rows
            .iter()
            .map(
                |(&(window_start, proto, port), (probes, sources))| WatchRow {
                    window_start,
                    proto,
                    port,
                    service: RISKY
                        .iter()
                        .find(|&&(p, q, _)| p == proto && q == port)
                        .map_or("", |r| r.2),
                    probes: *probes,
                    sources: sources.len() as u32,
                },
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::decode::Traits;

    fn attempt(ts_s: u64, src: u8, proto: Proto, dport: u16) -> FlowEvent {
        FlowEvent {
            ts_ns: ts_s * 1_000_000_000,
            src: IpAddr::V4(Ipv4Addr::new(198, 18, 0, src)),
            dst: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1)),
            proto,
            sport: 40000,
            dport,
            kind: EventKind::Attempt,
            traits: Traits::default(),
            mac: None,
        }
    }

    #[test]
    fn risky_ports_are_counted_per_window_and_others_ignored() {
        let mut w = PortWatch::new(3600);
        w.observe(&attempt(10, 1, Proto::Udp, 1900));
        w.observe(&attempt(20, 2, Proto::Udp, 1900));
        w.observe(&attempt(30, 2, Proto::Udp, 1900));
        w.observe(&attempt(3700, 3, Proto::Udp, 1900));
        w.observe(&attempt(40, 1, Proto::Tcp, 445));
        w.observe(&attempt(50, 1, Proto::Tcp, 8080));
        w.observe(&attempt(60, 1, Proto::Tcp, 1900));
        let rows = w.rows();
        let brief: Vec<_> = rows
            .iter()
            .map(|r| (r.window_start, r.proto, r.port, r.probes, r.sources))
            .collect();
        assert_eq!(
            brief,
            vec![
                (0, Proto::Tcp, 445, 1, 1),
                (0, Proto::Udp, 1900, 3, 2),
                (3600, Proto::Udp, 1900, 1, 1)
            ]
        );
        assert_eq!(rows[1].service, "ssdp");
    }
}
