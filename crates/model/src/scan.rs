//! What a run is and how it went: the information known when a scan
//! starts ([`ScanInfo`]), its counters sampled while it runs
//! ([`RateSample`]), and what is known when it ends ([`ScanSummary`],
//! [`PacketStats`]). Plain values; sinks and the scan library share them.

use std::time::{Duration, Instant, SystemTime};

use portolan_targets::Protocol;

use crate::ScanStats;

/// What is known when the scan starts.
#[derive(Clone, Debug)]
pub struct ScanInfo {
    /// Portolan's version.
    pub version: &'static str,
    /// The command line, as typed.
    pub args: Vec<String>,
    /// Wall-clock start.
    pub start: SystemTime,
    /// The monotonic clock at `start`, to place host times on the wall
    /// clock.
    pub started_at: Instant,
    /// nmap's name of the scan type ("connect", "syn", ...).
    pub scan_type: &'static str,
    /// `--scanflags`: the first scan's custom control bits, as nmap names
    /// them (`FINSYN`); `None` without.
    pub scanflags: Option<String>,
    /// The protocol scanned.
    pub proto: Protocol,
    /// How many ports each host gets.
    pub port_count: usize,
    /// The ports each host gets, sorted.
    pub ports: Vec<u16>,
    /// Further scans of the same run (`-sU` beside a TCP scan): nmap's
    /// name, protocol and ports of each.
    pub more_scans: Vec<(&'static str, Protocol, Vec<u16>)>,
    /// Lines the normal output prints after its first line, as nmap does
    /// for what it learned before the scan (the idle scan's zombie).
    pub notes: Vec<String>,
    /// Whether version detection (`-sV`) runs after the port scan: port
    /// results then take their final form only when their host is done.
    pub version_detection: bool,
}

impl ScanInfo {
    /// The wall-clock time of a monotonic instant taken during the scan.
    pub fn wall_time(&self, at: Instant) -> SystemTime {
        self.start + at.saturating_duration_since(self.started_at)
    }
}

/// What is known when the scan ends.
#[derive(Clone, Debug)]
pub struct ScanSummary {
    /// The engine's counters.
    pub stats: ScanStats,
    /// Time from start to end.
    pub elapsed: Duration,
    /// Wall-clock end.
    pub end: SystemTime,
    /// Whether the user interrupted the scan.
    pub interrupted: bool,
    /// Packet counters, for raw-packet scans.
    pub packets: Option<PacketStats>,
}

/// Packet counters of a raw-packet scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketStats {
    /// Packets sent.
    pub sent: u64,
    /// Packets received through the capture filter.
    pub received: u64,
    /// Packets that were no valid answer to a probe in flight (strays,
    /// spoofs, failed cookies, late answers).
    pub ignored: u64,
}

impl ScanSummary {
    /// Probes per second over the whole scan.
    pub fn probe_rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.stats.probes_sent as f64 / secs
        } else {
            0.0
        }
    }
}

/// The scan's cumulative counters at one moment, for timelines of the
/// send and reply rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateSample {
    /// Time since the scan started.
    pub elapsed: Duration,
    /// Probes sent so far, retransmissions included.
    pub probes_sent: u64,
    /// Answers accepted so far.
    pub replies: u64,
    /// Ports resolved so far.
    pub ports_done: u64,
}

impl RateSample {
    /// A sample of `stats` taken `elapsed` after the start.
    pub fn new(stats: &ScanStats, elapsed: Duration) -> RateSample {
        RateSample {
            elapsed,
            probes_sent: stats.probes_sent,
            replies: stats.replies,
            ports_done: stats.ports_done,
        }
    }
}
