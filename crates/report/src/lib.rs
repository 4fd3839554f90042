//! `portolan report`: reads a scan's results and renders one HTML page
//! that people look at.
//!
//! - [`read_results`] takes nmap XML (Portolan's `-oX` or nmap's own, also
//!   a file cut short by a killed scan) or Portolan JSON lines (`-oJ`),
//!   told apart by their first character, into the result model
//!   ([`portolan_model::ScanResults`]), the same model a scan produces and
//!   a history stores; [`read`] makes of it the [`ScanReport`] a page
//!   shows.
//! - [`resume::read_resume`] reads an interrupted scan's normal,
//!   grepable or XML output for `--resume`: its command line and the
//!   hosts it finished.
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
pub mod resume;
mod xml;

use std::collections::BTreeMap;

use portolan_model::{HostStatus, PortState, ScanResults};

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

/// A results file as read: the scan, and what only the file had.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultsFile {
    /// The scan in the result model.
    pub results: ScanResults,
    /// Counter samples, oldest first (JSON lines only).
    pub rates: Vec<RatePoint>,
    /// The elapsed seconds the file states, if it does.
    pub elapsed_s: Option<f64>,
}

/// Reads scan results, nmap XML or Portolan JSON lines, into the model.
pub fn read_results(text: &str) -> Result<ResultsFile, ReportError> {
    let mut rates = Vec::new();
    let mut elapsed_s = None;
    let results = match text.trim_start().chars().next() {
        None => return Err(ReportError::Empty),
        Some('<') => xml::read(text, &mut elapsed_s)?,
        Some('{') => jsonl::read(text, &mut rates, &mut elapsed_s)?,
        Some(c) => return Err(ReportError::UnknownFormat(c)),
    };
    Ok(ResultsFile {
        results,
        rates,
        elapsed_s,
    })
}

/// Reads scan results for a page: nmap XML or Portolan JSON lines.
pub fn read(text: &str) -> Result<ScanReport, ReportError> {
    read_results(text).map(|file| ScanReport::from_file(&file))
}

/// A state with more ports than this on a host is counted on the page,
/// not listed (as in normal output).
const LIST_AT_MOST: usize = 25;

impl ScanReport {
    /// What a page shows of `file`.
    pub fn from_file(file: &ResultsFile) -> ScanReport {
        let r = &file.results;
        let scanner = if r.scanner == "portolan" {
            "Portolan"
        } else {
            "Nmap"
        };
        ScanReport {
            scanner: format!("{scanner} {}", r.version).trim_end().to_string(),
            args: r.args.clone(),
            start: if r.start == std::time::UNIX_EPOCH {
                String::new()
            } else {
                portolan_model::time::ctime_utc(r.start)
            },
            scan_type: r.scans.first().map(|s| s.name.clone()).unwrap_or_default(),
            elapsed_s: file.elapsed_s,
            incomplete: r.interrupted,
            hosts: r.hosts.iter().map(HostEntry::from_report).collect(),
            rates: file.rates.clone(),
        }
    }
}

impl HostEntry {
    /// What a page shows of a host: its listed ports, those of states
    /// crowded on it (other than open) counted instead.
    fn from_report(h: &portolan_model::HostReport) -> HostEntry {
        let counts = h.state_counts();
        let crowded =
            |s: PortState| s != PortState::Open && counts[s.index()] as usize > LIST_AT_MOST;
        let mut extra: BTreeMap<String, u64> = BTreeMap::new();
        for c in &h.extra.counted {
            *extra.entry(c.state.as_str().to_string()).or_default() += c.count;
        }
        for s in PortState::ALL.into_iter().filter(|s| crowded(*s)) {
            *extra.entry(s.as_str().to_string()).or_default() += counts[s.index()];
        }
        let ports = h
            .ports
            .iter()
            .filter(|p| !crowded(p.state))
            .map(|p| {
                let service = h.service(p.proto, p.port);
                PortEntry {
                    port: p.port,
                    proto: p.proto.as_str().to_string(),
                    state: p.state.as_str().to_string(),
                    reason: p.reason.as_str().to_string(),
                    service: service.map(|s| s.name.clone()).unwrap_or_default(),
                    version: service
                        .map(|s| {
                            [&s.product, &s.version, &s.extrainfo]
                                .into_iter()
                                .flatten()
                                .map(String::as_str)
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default(),
                }
            })
            .collect();
        HostEntry {
            addr: h.target.addr.to_string(),
            names: h
                .target
                .name
                .iter()
                .chain(&h.target.rdns)
                .map(|n| n.to_string())
                .collect(),
            status: match h.status {
                HostStatus::Up(_) => "up",
                HostStatus::Down => "down",
                HostStatus::TimedOut => "timed-out",
                HostStatus::Interrupted => "interrupted",
            }
            .to_string(),
            ports,
            extra,
        }
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
