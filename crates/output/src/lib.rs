//! Sinks for scan results: each output format implements [`Sink`], so a
//! new format never touches an engine.
//!
//! - [`normal`]: nmap-like text, for the terminal and `-oN`.
//! - [`xml`]: nmap's XML (`-oX`), valid against nmap.dtd, streamed.
//! - [`grepable`]: nmap's grepable lines (`-oG`).
//! - [`jsonl`]: JSON lines (`-oJ`), one object per line with a `"type"`.
//!
//! Sinks write to any `io::Write` and never print by themselves; text that
//! came from outside (host names, later banners) is escaped for the format
//! it lands in (see [`escape`]).

#![deny(missing_docs)]

pub mod escape;
pub mod grepable;
pub mod jsonl;
pub mod normal;
pub use portolan_model::time;
pub mod vendor;
pub mod xml;

use std::io;

use portolan_engine::{HostReport, PortOutcome, PortResult, PortState, Reason};
pub use portolan_model::{PacketStats, RateSample, ScanInfo, ScanSummary};
use portolan_targets::Protocol;

pub use portolan_model::mac_text;

/// Choices that shape every format alike.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutputOptions {
    /// `--open`: show only open (and open|filtered...) ports.
    pub open_only: bool,
    /// `--reason`: show the evidence of each state.
    pub reason: bool,
    /// `-v` level.
    pub verbosity: u8,
}

/// An output format.
pub trait Sink {
    /// The scan starts.
    fn begin(&mut self, info: &ScanInfo) -> io::Result<()>;
    /// A port was resolved (streamed, in no particular order). Formats
    /// that report per host ignore it.
    fn port(&mut self, result: &PortResult) -> io::Result<()> {
        let _ = result;
        Ok(())
    }
    /// A host is done. Neither this nor [`Sink::port`] flushes: a sweep
    /// finishes hosts by the hundred thousand a second, and a flush is a
    /// system call. The caller calls [`Sink::flush`] as often as it wants
    /// the output current; [`Sink::begin`] and [`Sink::end`] flush.
    fn host(&mut self, report: &HostReport) -> io::Result<()>;
    /// Writes what is buffered through.
    fn flush(&mut self) -> io::Result<()>;
    /// The scan's counters, sampled about once a second. Formats without
    /// a timeline ignore it.
    fn rate(&mut self, sample: &RateSample) -> io::Result<()> {
        let _ = sample;
        Ok(())
    }
    /// The scan is over.
    fn end(&mut self, summary: &ScanSummary) -> io::Result<()>;
}

/// nmap's short name of a protocol ("tcp", "udp", "sctp").
pub fn proto_name(proto: Protocol) -> &'static str {
    match proto {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
        Protocol::Ip => "ip",
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

/// Whether `--open` leaves nothing of this host to show: no port that may
/// be open (a timed-out host is still reported).
pub fn hidden_with_open_only(report: &HostReport, options: &OutputOptions) -> bool {
    let counts = report.state_counts();
    options.open_only
        && report.status != portolan_engine::HostStatus::TimedOut
        && !PortState::ALL
            .iter()
            .any(|s| shown_with_open_only(*s) && counts[s.index()] > 0)
}

/// A state with more ports than this is summarised, as nmap does.
const COLLAPSE_ABOVE: u64 = 25;

/// The states a host's report summarises instead of listing port by port:
/// with `--open`, every state that cannot be open; otherwise every state
/// but open with more than 25 ports (nmap's rule).
pub fn collapsed_states(report: &HostReport, options: &OutputOptions) -> Vec<PortState> {
    let counts = report.state_counts();
    PortState::ALL
        .iter()
        .copied()
        .filter(|s| {
            if options.open_only {
                !shown_with_open_only(*s) && counts[s.index()] > 0
            } else {
                *s != PortState::Open && counts[s.index()] > COLLAPSE_ABOVE
            }
        })
        .collect()
}

/// The reasons among the ports in `state`, most frequent first, with their
/// ports (sorted as in the report).
pub fn reasons_of(ports: &[PortOutcome], state: PortState) -> Vec<(Reason, Vec<u16>)> {
    let mut tally: Vec<(Reason, Vec<u16>)> = Vec::new();
    for p in ports.iter().filter(|p| p.state == state) {
        match tally.iter_mut().find(|(r, _)| *r == p.reason) {
            Some((_, list)) => list.push(p.port),
            None => tally.push((p.reason, vec![p.port])),
        }
    }
    // Stable: equal counts keep the order of first appearance.
    tally.sort_by_key(|(_, list)| std::cmp::Reverse(list.len()));
    tally
}

/// Sorted ports written as nmap writes them: runs merged into ranges,
/// joined by commas (`1-30,80,443`).
pub fn port_ranges(ports: &[u16]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < ports.len() {
        let start = ports[i];
        let mut end = start;
        while i + 1 < ports.len() && ports[i + 1] == end.wrapping_add(1) && end != u16::MAX {
            i += 1;
            end = ports[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

/// `# Portolan 0.1.0 scan initiated <ctime> as: <args>`: the first line of
/// the normal and grepable files, as nmap starts its own.
pub fn initiated_comment(info: &ScanInfo) -> String {
    format!(
        "# Portolan {} scan initiated {} as: {}",
        info.version,
        time::ctime_utc(info.start),
        escape::for_terminal(&info.args.join(" "))
    )
}

/// `# Nmap done at <ctime> -- 1 IP address (1 host up) scanned in 0.06
/// seconds`: the last line of the normal and grepable files. It keeps
/// nmap's prefix on purpose: scripts (and `nmap --resume`) look for it to
/// tell a finished file from a cut one.
pub fn done_trailer(summary: &ScanSummary) -> String {
    format!(
        "# Nmap done at {} -- {} scanned in {:.2} seconds",
        time::ctime_utc(summary.end),
        hosts_phrase(summary.stats.hosts_done, summary.stats.hosts_up),
        summary.elapsed.as_secs_f64()
    )
}

/// "1 IP address (1 host up)", "3 IP addresses (2 hosts up)".
pub fn hosts_phrase(done: u64, up: u64) -> String {
    format!(
        "{done} IP address{} ({up} host{} up)",
        if done == 1 { "" } else { "es" },
        if up == 1 { "" } else { "s" }
    )
}

/// Port and host values for the sinks' unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::time::{Duration, SystemTime};

    use portolan_engine::{
        HostReport, HostStatus, HostTimes, PortOutcome, PortService, PortState, Reason,
        ServiceInfo, ServiceMethod,
    };
    use portolan_targets::{Protocol, Target};

    /// A TCP port's outcome after one try.
    pub fn outcome(port: u16, state: PortState, reason: Reason) -> PortOutcome {
        PortOutcome {
            port,
            proto: Protocol::Tcp,
            state,
            reason,
            reason_ttl: None,
            tries: 1,
        }
    }

    /// Host 198.18.0.2, named with a terminal escape, 42 µs away.
    pub fn host(status: HostStatus, ports: Vec<PortOutcome>) -> HostReport {
        let now = SystemTime::now();
        HostReport {
            target: Target {
                addr: "198.18.0.2".parse().unwrap(),
                name: Some("lab\x1b[2J".into()),
                rdns: None,
            },
            status,
            reason_ttl: None,
            mac: None,
            ports,
            times: HostTimes {
                paced: None,
                srtt: Some(Duration::from_micros(42)),
                rttvar: Some(Duration::from_micros(10)),
                timeout: Duration::from_millis(100),
            },
            started: now,
            finished: now,
            services: Vec::new(),
            extra: Default::default(),
        }
    }

    /// [`host`], up.
    pub fn up_host(ports: Vec<PortOutcome>) -> HostReport {
        host(HostStatus::Up(Reason::UserSet), ports)
    }

    /// [`up_host`] after `-sV`: OpenSSH on 22, nginx inside TLS on 443
    /// (with a product holding a terminal escape and XML metacharacters,
    /// and a CPE), and 8080 open but not probed.
    pub fn probed_host() -> HostReport {
        let mut report = up_host(vec![
            outcome(22, PortState::Open, Reason::SynAck),
            outcome(443, PortState::Open, Reason::SynAck),
            outcome(8080, PortState::Open, Reason::SynAck),
        ]);
        let probed = |port, info: ServiceInfo| PortService {
            port,
            proto: Protocol::Tcp,
            info: ServiceInfo {
                method: ServiceMethod::Probed,
                conf: 10,
                ..info
            },
        };
        report.services = vec![
            probed(
                22,
                ServiceInfo {
                    name: "ssh".into(),
                    product: Some("OpenSSH".into()),
                    version: Some("9.2p1 Debian 2+deb12u3".into()),
                    extrainfo: Some("protocol 2.0".into()),
                    ..ServiceInfo::default()
                },
            ),
            probed(
                443,
                ServiceInfo {
                    name: "http".into(),
                    product: Some("evil<&>\x1b[2J\u{9b}".into()),
                    version: Some("1.22.1".into()),
                    cpe: vec!["cpe:/a:f5:nginx:1.22.1".into()],
                    ssl: true,
                    ..ServiceInfo::default()
                },
            ),
        ];
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_merge_into_ranges() {
        assert_eq!(port_ranges(&[]), "");
        assert_eq!(port_ranges(&[80]), "80");
        assert_eq!(port_ranges(&[1, 2, 3, 5, 7, 8, 65535]), "1-3,5,7-8,65535");
        assert_eq!(port_ranges(&[65534, 65535]), "65534-65535");
    }

    /// A writer whose bytes the test keeps.
    #[derive(Clone, Default)]
    struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

    impl io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.take()).unwrap()
        }
    }

    /// What each format writes for `report`: normal, XML, grepable, JSON.
    fn every_format(report: &HostReport) -> [String; 4] {
        let options = OutputOptions::default();
        let bufs: [Shared; 4] = Default::default();
        let mut sinks: [Box<dyn Sink>; 4] = [
            Box::new(normal::NormalSink::new(bufs[0].clone(), options)),
            Box::new(xml::XmlSink::new(bufs[1].clone(), options)),
            Box::new(grepable::GrepableSink::new(bufs[2].clone(), options)),
            Box::new(jsonl::JsonLinesSink::new(bufs[3].clone(), options)),
        ];
        for sink in &mut sinks {
            sink.host(report).unwrap();
        }
        bufs.map(|b| b.text())
    }

    /// Every format with a reverse-DNS name, alone and beside a typed one.
    #[test]
    fn reverse_dns_names_reach_every_format() {
        use crate::fixtures::{outcome, up_host};
        let mut report = up_host(vec![outcome(22, PortState::Open, Reason::SynAck)]);
        report.target.name = None;
        report.target.rdns = Some("web.lab\\027.example".into());
        let [normal, xml, grep, json] = every_format(&report);
        assert!(
            normal.starts_with("Portolan scan report for web.lab\\\\027.example (198.18.0.2)\n"),
            "{normal}"
        );
        assert!(!normal.contains("rDNS record"));
        assert!(
            xml.contains(
                "<hostnames>\n<hostname name=\"web.lab\\027.example\" type=\"PTR\"/>\n</hostnames>"
            ),
            "{xml}"
        );
        assert!(
            grep.starts_with("Host: 198.18.0.2 (web.lab\\\\027.example)"),
            "{grep}"
        );
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(json["name"], "web.lab\\027.example");
        assert_eq!(json["rdns"], "web.lab\\027.example");

        // A typed name stays the report's name; nmap adds the PTR below.
        report.target.name = Some("typed.example".into());
        let [normal, xml, grep, json] = every_format(&report);
        assert!(
            normal.starts_with(
                "Portolan scan report for typed.example (198.18.0.2)\n\
                 rDNS record for 198.18.0.2: web.lab\\\\027.example\n"
            ),
            "{normal}"
        );
        assert!(xml.contains(
            "<hostname name=\"typed.example\" type=\"user\"/>\n<hostname name=\"web.lab\\027.example\" type=\"PTR\"/>"
        ));
        assert!(
            grep.starts_with("Host: 198.18.0.2 (web.lab\\\\027.example)"),
            "{grep}"
        );
        assert!(
            json.contains("\"name\":\"typed.example\",\"rdns\":"),
            "{json}"
        );
    }

    #[test]
    fn host_counts_read_as_english() {
        assert_eq!(hosts_phrase(1, 1), "1 IP address (1 host up)");
        assert_eq!(hosts_phrase(3, 0), "3 IP addresses (0 hosts up)");
    }
}
