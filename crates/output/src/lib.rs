//! Sinks for scan results: each output format implements [`Sink`], so a
//! new format never touches an engine.
//!
//! - [`normal`]: nmap-like text, for the terminal and `-oN`.
//! - [`jsonl`]: JSON lines (`-oJ`), one object per line with a `"type"`.
//!
//! Sinks write to any `io::Write` and never print by themselves; text that
//! came from outside (host names, later banners) is escaped for the format
//! it lands in (see [`escape`]).

#![deny(missing_docs)]

pub mod escape;
pub mod jsonl;
pub mod normal;
pub mod time;

use std::io;
use std::time::{Duration, SystemTime};

use portolan_engine::{HostReport, PortResult, ScanStats};
use portolan_targets::Protocol;

/// What is known when the scan starts.
#[derive(Clone, Debug)]
pub struct ScanInfo {
    /// Portolan's version.
    pub version: &'static str,
    /// The command line, as typed.
    pub args: Vec<String>,
    /// Wall-clock start.
    pub start: SystemTime,
    /// nmap's name of the scan type ("connect", "syn", ...).
    pub scan_type: &'static str,
    /// The protocol scanned.
    pub proto: Protocol,
    /// How many ports each host gets.
    pub port_count: usize,
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

/// Choices that shape every format alike.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutputOptions {
    /// `--open`: show only open (and open|filtered...) ports.
    pub open_only: bool,
    /// `--reason`: show the evidence of each state.
    pub reason: bool,
}

/// An output format.
pub trait Sink {
    /// The scan starts.
    fn begin(&mut self, info: &ScanInfo) -> io::Result<()>;
    /// A port was resolved (streamed, in no particular order).
    fn port(&mut self, result: &PortResult) -> io::Result<()>;
    /// A host is done.
    fn host(&mut self, report: &HostReport) -> io::Result<()>;
    /// The scan is over.
    fn end(&mut self, summary: &ScanSummary) -> io::Result<()>;
}

/// nmap's short name of a protocol ("tcp", "udp", "sctp").
pub fn proto_name(proto: Protocol) -> &'static str {
    match proto {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// The service name the port table suggests, or "unknown".
pub fn service_name(proto: Protocol, port: u16) -> &'static str {
    portolan_targets::service_name(proto, port).unwrap_or("unknown")
}

/// Whether `--open` keeps a port in this state (nmap keeps the states
/// that may be open).
pub fn shown_with_open_only(state: portolan_engine::PortState) -> bool {
    use portolan_engine::PortState::*;
    matches!(state, Open | OpenFiltered)
}
