//! What a run is and how it went: the information known when a scan
//! starts ([`ScanInfo`], with its [`ScanId`]), its counters sampled while
//! it runs ([`RateSample`]), and what is known when it ends
//! ([`ScanSummary`], [`PacketStats`]); and the whole of it as one record
//! ([`ScanResults`]), the form that is stored, exchanged and read back
//! from Portolan's and nmap's files.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

use portolan_targets::Protocol;
use serde::{Deserialize, Serialize};

use crate::{HostReport, ScanStats, forms};

/// The version of the record form ([`ScanResults`] and everything in it):
/// raised whenever a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// A scan's identity: a UUID of version 7 (RFC 9562), so IDs sort by the
/// time they were made and never collide across machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScanId(uuid::Uuid);

impl ScanId {
    /// A new ID, from the clock and random bits.
    pub fn new() -> ScanId {
        ScanId(uuid::Uuid::now_v7())
    }

    /// The ID as 16 bytes, for storage.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl Default for ScanId {
    fn default() -> Self {
        ScanId::new()
    }
}

impl fmt::Display for ScanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for ScanId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<ScanId, uuid::Error> {
        s.parse().map(ScanId)
    }
}

/// A monotonic instant paired with the wall-clock time it stands for, to
/// turn the engine's instants into times people read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallClock {
    /// The instant.
    pub instant: Instant,
    /// The wall-clock time at that instant.
    pub wall: SystemTime,
}

impl WallClock {
    /// The clocks now.
    pub fn now() -> WallClock {
        WallClock {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// The wall-clock time of `at` (the pair's time for an earlier
    /// instant).
    pub fn at(&self, at: Instant) -> SystemTime {
        self.wall + at.saturating_duration_since(self.instant)
    }
}

/// nmap's scan type names (`<scaninfo type>`), which nmap.dtd lists.
pub const SCAN_TYPES: [&str; 14] = [
    "syn",
    "ack",
    "bounce",
    "connect",
    "null",
    "xmas",
    "window",
    "maimon",
    "fin",
    "udp",
    "sctpinit",
    "sctpcookieecho",
    "ipproto",
    "idle",
];

/// nmap's scan type called `name`, as the static name sinks take.
pub fn scan_type(name: &str) -> Option<&'static str> {
    SCAN_TYPES.into_iter().find(|t| *t == name)
}

/// What is known when the scan starts.
#[derive(Clone, Debug)]
pub struct ScanInfo {
    /// The scan's identity.
    pub id: ScanId,
    /// The scanner's version.
    pub version: String,
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
    /// Whether a stage after the port scan may change the results of open
    /// TCP ports (the SYN proxy check): they take their final form only
    /// when their host is done.
    pub open_ports_amended: bool,
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
    /// Middleboxes told from the whole range (a transparent proxy).
    pub middleboxes: Vec<crate::RangeMiddlebox>,
    /// `--min-rate` was asked and not reached, and why.
    pub min_rate_missed: Option<MinRateMissed>,
}

/// `--min-rate` not reached: the rate asked, the rate over the scan, and
/// why.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MinRateMissed {
    /// Probes per second asked.
    pub asked: f64,
    /// Probes per second over the whole scan.
    pub reached: f64,
    /// Why.
    pub reason: MinRateShortfall,
}

/// Why `--min-rate` was not reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MinRateShortfall {
    /// The scan had nothing more to send while behind: every probe left
    /// was waiting for its answer or its timeout (a scan too small for the
    /// rate, or its last retries).
    NothingToSend,
    /// There was work, and this machine did not send it fast enough.
    SendingBound,
}

impl MinRateShortfall {
    /// Says it in a sentence.
    pub fn description(self) -> &'static str {
        match self {
            MinRateShortfall::NothingToSend => {
                "the scan had nothing more to send at times (every probe left was waiting for its answer or its timeout)"
            }
            MinRateShortfall::SendingBound => "this machine did not send faster",
        }
    }
}

impl MinRateMissed {
    /// The shortfall of a scan that asked for `asked` probes a second and
    /// sent `sent` in `elapsed`, `starved` times with nothing to send;
    /// `None` when it reached at least 95% of the rate.
    pub fn judge(asked: Option<f64>, sent: u64, elapsed: Duration, starved: u64) -> Option<Self> {
        let asked = asked.filter(|r| r.is_finite() && *r > 0.0)?;
        let secs = elapsed.as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        let reached = sent as f64 / secs;
        (reached < asked * 0.95).then_some(MinRateMissed {
            asked,
            reached,
            reason: if starved > 0 {
                MinRateShortfall::NothingToSend
            } else {
                MinRateShortfall::SendingBound
            },
        })
    }
}

/// Packet counters of a raw-packet scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketStats {
    /// Packets sent.
    pub sent: u64,
    /// Packets received through the capture filter.
    pub received: u64,
    /// Packets that were no valid answer to a probe in flight (strays,
    /// spoofs, failed cookies, late answers).
    pub ignored: u64,
    /// Packets the kernel dropped before the scanner could read them (its
    /// receive ring was full): answers lost on the scanning machine.
    #[serde(default)]
    pub dropped: u64,
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

/// One scan type of a run, as a record keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanType {
    /// nmap's name ("syn", "udp", ...).
    pub name: String,
    /// The protocol its ports belong to.
    pub proto: Protocol,
    /// The ports (protocol numbers for "ipproto"), sorted.
    pub ports: Vec<u16>,
}

/// A whole scan as one record: what is stored, exchanged and read back,
/// from a Portolan scan as it runs or from a file (Portolan's or nmap's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanResults {
    /// [`SCHEMA_VERSION`] when written.
    pub schema: u32,
    /// The scan's identity (a new one for a file that had none).
    pub id: ScanId,
    /// "portolan" or "nmap".
    pub scanner: String,
    /// The scanner's version.
    pub version: String,
    /// The command line, as one line.
    pub args: String,
    /// When it started.
    #[serde(with = "forms::rfc3339")]
    pub start: SystemTime,
    /// When it ended; `None` for a scan cut short.
    #[serde(with = "forms::rfc3339_opt")]
    pub end: Option<SystemTime>,
    /// Its scan types, in order.
    pub scans: Vec<ScanType>,
    /// Its hosts, in the order they were reported.
    pub hosts: Vec<HostReport>,
    /// Its counters, when the scanner kept them.
    pub stats: Option<ScanStats>,
    /// Whether it was interrupted or cut short.
    pub interrupted: bool,
}

impl ScanResults {
    /// A record of `scanner`'s scan with nothing in it yet, to be filled
    /// from a file (a new ID, the epoch as start).
    pub fn empty(scanner: &str) -> ScanResults {
        ScanResults {
            schema: SCHEMA_VERSION,
            id: ScanId::new(),
            scanner: scanner.to_string(),
            version: String::new(),
            args: String::new(),
            start: std::time::UNIX_EPOCH,
            end: None,
            scans: Vec::new(),
            hosts: Vec::new(),
            stats: None,
            interrupted: false,
        }
    }

    /// The record of a Portolan scan that starts with `info`.
    pub fn begin(info: &ScanInfo) -> ScanResults {
        let mut scans = vec![ScanType {
            name: info.scan_type.to_string(),
            proto: info.proto,
            ports: info.ports.clone(),
        }];
        scans.extend(info.more_scans.iter().map(|(name, proto, ports)| ScanType {
            name: name.to_string(),
            proto: *proto,
            ports: ports.clone(),
        }));
        ScanResults {
            schema: SCHEMA_VERSION,
            id: info.id,
            scanner: "portolan".into(),
            version: info.version.clone(),
            args: info.args.join(" "),
            start: info.start,
            end: None,
            scans,
            hosts: Vec::new(),
            stats: None,
            interrupted: false,
        }
    }

    /// The scan ended with `summary`.
    pub fn end(&mut self, summary: &ScanSummary) {
        self.end = Some(summary.end);
        self.stats = Some(summary.stats);
        self.interrupted = summary.interrupted;
    }

    /// The scan's information as the sinks take it, to write the record
    /// in any of Portolan's formats. Scan types nmap.dtd does not list
    /// are left out; the first one is "connect" when there is none.
    pub fn info(&self) -> ScanInfo {
        let mut types = self
            .scans
            .iter()
            .filter_map(|s| Some((scan_type(&s.name)?, s.proto, s.ports.clone())));
        let (first, proto, ports) = types
            .next()
            .unwrap_or(("connect", Protocol::Tcp, Vec::new()));
        ScanInfo {
            id: self.id,
            version: self.version.clone(),
            args: self.args.split_whitespace().map(String::from).collect(),
            start: self.start,
            started_at: Instant::now(),
            scan_type: first,
            scanflags: None,
            proto,
            port_count: ports.len(),
            ports,
            more_scans: types.collect(),
            notes: Vec::new(),
            version_detection: self.hosts.iter().any(|h| !h.services.is_empty()),
            open_ports_amended: false,
        }
    }

    /// Its summary as the sinks take it.
    pub fn summary(&self) -> ScanSummary {
        let end = self.end.unwrap_or(self.start);
        let mut stats = self.stats.unwrap_or_default();
        if self.stats.is_none() {
            stats.hosts_done = self.hosts.len() as u64;
            stats.hosts_up = self
                .hosts
                .iter()
                .filter(|h| matches!(h.status, crate::HostStatus::Up(_)))
                .count() as u64;
            for h in &self.hosts {
                stats.ports_done += h.ports.len() as u64;
                for (total, n) in stats.ports_by_state.iter_mut().zip(h.state_counts()) {
                    *total += n;
                }
            }
        }
        ScanSummary {
            stats,
            elapsed: end.duration_since(self.start).unwrap_or_default(),
            end,
            interrupted: self.interrupted,
            packets: None,
            middleboxes: Vec::new(),
            min_rate_missed: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_min_rate_shortfall_is_judged_with_its_reason() {
        let second = Duration::from_secs(1);
        assert_eq!(MinRateMissed::judge(None, 10, second, 0), None);
        assert_eq!(MinRateMissed::judge(Some(1000.0), 990, second, 5), None);
        let starved = MinRateMissed::judge(Some(1000.0), 10, second, 5).unwrap();
        assert_eq!(
            (starved.reached, starved.reason),
            (10.0, MinRateShortfall::NothingToSend)
        );
        let bound = MinRateMissed::judge(Some(1000.0), 500, second, 0).unwrap();
        assert_eq!(bound.reason, MinRateShortfall::SendingBound);
        assert_eq!(
            MinRateMissed::judge(Some(1000.0), 0, Duration::ZERO, 0),
            None
        );
    }
}
