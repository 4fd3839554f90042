//! `portolan report`: reads a scan's results and renders one HTML page
//! that people look at.
//!
//! - [`read`] takes nmap XML (Portolan's `-oX` or nmap's own, also a file
//!   cut short by a killed scan) or Portolan JSON lines (`-oJ`), told
//!   apart by their first character, into a [`ScanReport`].
//! - [`html::render`] writes the page: the scan, state counts, a timeline
//!   of send and reply rates (from JSON lines' `rate` samples), a host ×
//!   port matrix and each host's ports with services.
//!
//! Contract: no panics on any input (errors are [`ReportError`]s naming
//! the line or byte offset); the page fetches nothing (inline CSS and SVG,
//! a Content-Security-Policy that forbids every load) and escapes every
//! string that came from the file.

#![deny(missing_docs)]

pub mod html;
mod jsonl;
mod xml;

use std::collections::BTreeMap;

/// Why a file could not be read as scan results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The file is empty.
    #[error("the file is empty")]
    Empty,
    /// Neither XML nor JSON lines.
    #[error("not nmap XML nor Portolan JSON lines (the file starts with {0:?})")]
    UnknownFormat(char),
    /// Malformed XML.
    #[error("XML error at byte {offset}: {message}")]
    Xml {
        /// Where the parser stopped.
        offset: u64,
        /// What it found.
        message: String,
    },
    /// XML whose root is not `<nmaprun>`.
    #[error("XML, but not an nmap scan (root element <{0}>)")]
    NotNmapXml(String),
    /// A line that is not a JSON object.
    #[error("line {line}: {message}")]
    Json {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// One port as the file lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortEntry {
    /// Port number.
    pub port: u16,
    /// "tcp", "udp", "sctp".
    pub proto: String,
    /// "open", "closed", "filtered", ...
    pub state: String,
    /// The evidence ("syn-ack", "no-response", ...).
    pub reason: String,
    /// Service name, if any.
    pub service: String,
    /// Product and version, if detected.
    pub version: String,
}

/// One host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostEntry {
    /// The address.
    pub addr: String,
    /// Host names.
    pub names: Vec<String>,
    /// "up", "down", "interrupted", "timed-out".
    pub status: String,
    /// Ports listed one by one, sorted.
    pub ports: Vec<PortEntry>,
    /// Ports only counted, by state (`<extraports>`).
    pub extra: BTreeMap<String, u64>,
}

impl HostEntry {
    /// Ports per state, listed and counted together.
    pub fn state_counts(&self) -> BTreeMap<String, u64> {
        let mut counts = self.extra.clone();
        for p in &self.ports {
            *counts.entry(p.state.clone()).or_default() += 1;
        }
        counts
    }

    /// The state of a port not listed: the only counted state, if there is
    /// just one.
    pub fn unlisted_state(&self) -> Option<&str> {
        match self.extra.keys().collect::<Vec<_>>()[..] {
            [only] => Some(only),
            _ => None,
        }
    }
}

/// The scan's cumulative counters at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatePoint {
    /// Seconds since the start.
    pub t_s: f64,
    /// Probes sent so far.
    pub probes_sent: u64,
    /// Replies so far.
    pub replies: u64,
}

/// Everything a report shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScanReport {
    /// "Portolan 0.1.0", "Nmap 7.93".
    pub scanner: String,
    /// The command line.
    pub args: String,
    /// When it started, as the file says it.
    pub start: String,
    /// Scan type ("syn", "connect", ...).
    pub scan_type: String,
    /// Seconds from start to end, when the file has its end.
    pub elapsed_s: Option<f64>,
    /// The file ends early or says it was interrupted.
    pub incomplete: bool,
    /// Hosts, in file order.
    pub hosts: Vec<HostEntry>,
    /// Counter samples, oldest first (JSON lines only).
    pub rates: Vec<RatePoint>,
}

impl ScanReport {
    /// Ports per state over all hosts.
    pub fn state_counts(&self) -> BTreeMap<String, u64> {
        let mut total = BTreeMap::new();
        for h in &self.hosts {
            for (state, n) in h.state_counts() {
                *total.entry(state).or_default() += n;
            }
        }
        total
    }

    /// Ports open on at least one host, sorted, with their protocol.
    pub fn open_ports(&self) -> Vec<(String, u16)> {
        let mut ports: Vec<(String, u16)> = self
            .hosts
            .iter()
            .flat_map(|h| h.ports.iter())
            .filter(|p| p.state == "open")
            .map(|p| (p.proto.clone(), p.port))
            .collect();
        ports.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        ports.dedup();
        ports
    }
}

/// Reads scan results: nmap XML or Portolan JSON lines.
pub fn read(text: &str) -> Result<ScanReport, ReportError> {
    match text.trim_start().chars().next() {
        None => Err(ReportError::Empty),
        Some('<') => xml::read(text),
        Some('{') => jsonl::read(text),
        Some(c) => Err(ReportError::UnknownFormat(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_apart() {
        assert!(matches!(read(""), Err(ReportError::Empty)));
        assert!(matches!(read(" \n"), Err(ReportError::Empty)));
        assert!(matches!(
            read("# Nmap"),
            Err(ReportError::UnknownFormat('#'))
        ));
        assert!(matches!(read("<html/>"), Err(ReportError::NotNmapXml(_))));
        assert!(matches!(
            read("{]\n"),
            Err(ReportError::Json { line: 1, .. })
        ));
    }

    /// Every prefix of real files (a scan killed at any byte) reads without
    /// a panic, as a report or an error.
    #[test]
    fn every_prefix_of_a_real_file_is_handled() {
        for text in [
            include_str!("../../output/tests/golden/scan.xml"),
            include_str!("../../output/tests/golden/scan.jsonl"),
        ] {
            let whole = read(text).expect("the whole file reads");
            assert_eq!(whole.hosts.len(), 3);
            assert!(!whole.incomplete);
            for end in (0..text.len()).filter(|i| text.is_char_boundary(*i)) {
                if let Ok(r) = read(&text[..end]) {
                    assert!(r.hosts.len() <= 3);
                }
            }
        }
    }
}
