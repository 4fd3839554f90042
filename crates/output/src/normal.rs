//! nmap-like "normal" output, for the terminal and `-oN`.
//!
//! Per host, written when the host is done: the report line, the host's
//! status and latency, a "Not shown" line for crowded non-open states
//! (nmap collapses a state with more than 25 ports), then a table of the
//! remaining ports. A closing line counts hosts and time, and a statistics
//! line gives ports per state and the probe rate. Files (`-oN`) are framed
//! as nmap frames them: a `# ... scan initiated` comment first, and the
//! `# Nmap done at` trailer in place of the closing line.

use std::io::{self, Write};

use portolan_engine::{HostReport, HostStatus, PortOutcome, PortState};
use portolan_targets::Protocol;

use crate::escape::for_terminal;
use crate::time::minute_utc;
use crate::{OutputOptions, ScanInfo, ScanSummary, Sink, proto_name, service_name};

/// Normal output to any writer.
pub struct NormalSink<W: Write> {
    out: W,
    options: OutputOptions,
    file: bool,
}

impl<W: Write> NormalSink<W> {
    /// A sink for the terminal.
    pub fn new(out: W, options: OutputOptions) -> NormalSink<W> {
        NormalSink {
            out,
            options,
            file: false,
        }
    }

    /// A sink for `-oN`: as on the terminal, but framed as nmap frames its
    /// files, by a `# ... scan initiated ... as: ...` comment and a
    /// `# Nmap done at ...` trailer.
    pub fn file(out: W, options: OutputOptions) -> NormalSink<W> {
        NormalSink {
            out,
            options,
            file: true,
        }
    }

    fn write_host(&mut self, report: &HostReport) -> io::Result<()> {
        let addr = report.target.addr;
        let counts = report.state_counts();
        if crate::hidden_with_open_only(report, &self.options) {
            return Ok(());
        }
        let out = &mut self.out;
        if report.status == HostStatus::TimedOut {
            writeln!(out, "Skipping host {addr} due to host timeout")?;
            return Ok(());
        }
        if report.status == HostStatus::Down {
            // As nmap: down hosts are listed only when asked to be verbose.
            if self.options.verbosity > 0 {
                writeln!(out, "Portolan scan report for {addr} [host down]")?;
            }
            return Ok(());
        }
        match report.target.shown_name() {
            Some(name) => writeln!(
                out,
                "Portolan scan report for {} ({addr})",
                for_terminal(name)
            )?,
            None => writeln!(out, "Portolan scan report for {addr}")?,
        }
        // As nmap: the PTR name too when it is not the name typed.
        if let (Some(typed), Some(rdns)) = (&report.target.name, &report.target.rdns)
            && !typed.eq_ignore_ascii_case(rdns)
        {
            writeln!(out, "rDNS record for {addr}: {}", for_terminal(rdns))?;
        }
        let mut deferred_mac = None;
        let latency = report
            .times
            .srtt
            .map(|d| format!(" ({:.6}s latency)", d.as_secs_f64()))
            .unwrap_or_default();
        match report.status {
            HostStatus::Up(reason) if self.options.reason => {
                let ttl = report
                    .reason_ttl
                    .map(|t| format!(" ttl {t}"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "Host is up, received {}{ttl}{latency}.",
                    reason.as_str()
                )?
            }
            HostStatus::Interrupted => writeln!(
                out,
                "Host scan interrupted: {} ports resolved{latency}.",
                report.ports.len()
            )?,
            _ => writeln!(out, "Host is up{latency}.")?,
        }

        if let Some(mac) = report.mac {
            // After the ports, as nmap; nothing to look the vendor up in.
            deferred_mac = Some(match crate::vendor::vendor(mac) {
                Some(vendor) => format!("{} ({})", crate::mac_text(mac), for_terminal(vendor)),
                None => crate::mac_text(mac),
            });
        }
        let collapsed = crate::collapsed_states(report, &self.options);
        if !collapsed.is_empty() {
            let parts: Vec<String> = collapsed
                .iter()
                .map(|s| {
                    let n = counts[s.index()];
                    let reason = crate::reasons_of(&report.ports, *s)
                        .first()
                        .map(|(r, _)| format!(" ({})", r.as_str()))
                        .unwrap_or_default();
                    let what = match report.ports.first().map(|p| p.proto) {
                        // nmap's words for the IP protocol scan.
                        Some(Protocol::Ip) => "n/a protocols".to_string(),
                        Some(proto) => format!("{} ports", proto_name(proto)),
                        None => "tcp ports".to_string(),
                    };
                    format!("{n} {} {what}{reason}", s.as_str())
                })
                .collect();
            writeln!(out, "Not shown: {}", parts.join(", "))?;
        }
        let shown: Vec<&PortOutcome> = report
            .ports
            .iter()
            .filter(|p| !collapsed.contains(&p.state))
            .collect();
        if shown.is_empty() {
            if !report.ports.is_empty() {
                writeln!(
                    out,
                    "All {} scanned ports on {addr} are in ignored states.",
                    report.ports.len()
                )?;
            }
        } else {
            write_table(out, &shown, self.options.reason, report)?;
        }
        if let Some(mac) = deferred_mac {
            writeln!(out, "MAC Address: {mac}")?;
        }
        for line in os_lines(report) {
            writeln!(out, "{}", for_terminal(&line))?;
        }
        if let Some(m) = &report.extra.middlebox {
            writeln!(
                out,
                "Middlebox: {} answers for this host: {}",
                m.kind.description(),
                for_terminal(&m.evidence)
            )?;
        }
        if let Some(delay) = report.times.paced {
            writeln!(
                out,
                "ICMP rate limit: this host rate-limits its error messages; probes to it were \
                 paced down to one per {:.2}s to read every port's answer \
                 (--defeat-icmp-ratelimit does not wait for them)",
                delay.as_secs_f64()
            )?;
        }
        writeln!(out)
    }
}

/// `-O`'s lines, as nmap writes them (`Device type:`, `Running:`, `OS
/// CPE:`, `OS details:`, or `Aggressive OS guesses:` and `No exact OS
/// matches` when no match is perfect), then Portolan's own: the tests
/// missing and the passive hint with its evidence.
pub fn os_lines(report: &HostReport) -> Vec<String> {
    let Some(d) = &report.extra.os_detection else {
        return Vec::new();
    };
    let mut lines: Vec<String> = d.warnings.iter().map(|w| format!("Warning: {w}")).collect();
    let matches = &report.extra.os;
    if !d.active {
        // Only the port scan's passive hint (below).
    } else if matches.is_empty() {
        lines.push("No OS matches for host".into());
    } else {
        // Classes in the order of their best match: "vendor family gen".
        let mut types: Vec<&str> = Vec::new();
        let mut running: Vec<(String, u8)> = Vec::new();
        let mut cpes: Vec<&str> = Vec::new();
        for m in matches {
            for c in &m.classes {
                if !types.contains(&c.device_type.as_str()) {
                    types.push(&c.device_type);
                }
                let family = if c.vendor == c.family {
                    c.family.clone()
                } else {
                    format!("{} {}", c.vendor, c.family)
                };
                let name = match &c.generation {
                    Some(g) => format!("{family} {g}"),
                    None => family,
                };
                if !running.iter().any(|(n, _)| *n == name) {
                    running.push((name, c.accuracy));
                }
                for cpe in &c.cpe {
                    if !cpes.contains(&cpe.as_str()) {
                        cpes.push(cpe);
                    }
                }
            }
        }
        lines.push(format!("Device type: {}", types.join("|")));
        if d.perfect {
            let names: Vec<&str> = running.iter().map(|(n, _)| n.as_str()).collect();
            lines.push(format!("Running: {}", names.join(", ")));
        } else {
            let names: Vec<String> = running.iter().map(|(n, a)| format!("{n} ({a}%)")).collect();
            lines.push(format!("Running (JUST GUESSING): {}", names.join(", ")));
        }
        if !cpes.is_empty() {
            lines.push(format!("OS CPE: {}", cpes.join(" ")));
        }
        if d.perfect {
            let names: Vec<&str> = matches.iter().map(|m| m.name.as_str()).collect();
            lines.push(format!("OS details: {}", names.join(", ")));
        } else {
            let names: Vec<String> = matches
                .iter()
                .map(|m| format!("{} ({}%)", m.name, m.accuracy))
                .collect();
            lines.push(format!("Aggressive OS guesses: {}", names.join(", ")));
            lines.push("No exact OS matches for host (test conditions non-ideal).".into());
        }
    }
    if !d.missing.is_empty() {
        lines.push(format!(
            "OS tests missing (no answer, left out of the score): {}",
            d.missing.join(" ")
        ));
    }
    if let Some(h) = &d.hint {
        lines.push(format!(
            "OS hint (passive, not a match): {} from {}",
            h.family.as_deref().unwrap_or("unknown"),
            h.evidence
        ));
    }
    lines
}

fn write_table(
    out: &mut impl Write,
    ports: &[&PortOutcome],
    reason: bool,
    report: &HostReport,
) -> io::Result<()> {
    // With -sV, the probed service name and nmap's VERSION column (text
    // from the network: escaped).
    let version = !report.services.is_empty();
    let rows: Vec<[String; 5]> = ports
        .iter()
        .map(|p| {
            let why = match p.reason_ttl {
                Some(ttl) => format!("{} ttl {ttl}", p.reason.as_str()),
                None => p.reason.as_str().to_string(),
            };
            let found = report.service(p.proto, p.port);
            [
                match p.proto {
                    // An IP protocol number stands alone.
                    Protocol::Ip => p.port.to_string(),
                    proto => format!("{}/{}", p.port, proto_name(proto)),
                },
                p.state.as_str().to_string(),
                found.map_or_else(
                    || service_name(p.proto, p.port).to_string(),
                    |f| for_terminal(&f.full_name()).into_owned(),
                ),
                why,
                found.map_or_else(String::new, |f| {
                    for_terminal(&f.version_line()).into_owned()
                }),
            ]
        })
        .collect();
    let first = if ports.iter().all(|p| p.proto == Protocol::Ip) {
        "PROTOCOL"
    } else {
        "PORT"
    };
    let mut widths = [first.len(), 5, 7, 6, 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let columns: Vec<usize> = [0, 1, 2]
        .into_iter()
        .chain(reason.then_some(3))
        .chain(version.then_some(4))
        .collect();
    let header = [first, "STATE", "SERVICE", "REASON", "VERSION"];
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (n, &i) in columns.iter().enumerate() {
            if n + 1 == columns.len() {
                s.push_str(cells[i]);
            } else {
                s.push_str(&format!("{:<w$} ", cells[i], w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(header))?;
    for row in &rows {
        writeln!(
            out,
            "{}",
            line([&row[0], &row[1], &row[2], &row[3], &row[4]])
        )?;
    }
    Ok(())
}

impl<W: Write> Sink for NormalSink<W> {
    fn begin(&mut self, info: &ScanInfo) -> io::Result<()> {
        if self.file {
            writeln!(self.out, "{}", crate::initiated_comment(info))?;
        } else {
            writeln!(
                self.out,
                "Starting Portolan {} at {}",
                info.version,
                minute_utc(info.start)
            )?;
        }
        for note in &info.notes {
            writeln!(self.out, "{}", crate::escape::for_terminal(note))?;
        }
        self.out.flush()
    }

    fn host(&mut self, report: &HostReport) -> io::Result<()> {
        self.write_host(report)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn end(&mut self, summary: &ScanSummary) -> io::Result<()> {
        let s = &summary.stats;
        if summary.interrupted {
            writeln!(self.out, "Scan interrupted: the results above are partial.")?;
        }
        if !self.file {
            writeln!(
                self.out,
                "Portolan done: {} scanned in {:.2} seconds",
                crate::hosts_phrase(s.hosts_done, s.hosts_up),
                summary.elapsed.as_secs_f64()
            )?;
        }
        let states: Vec<String> = PortState::ALL
            .iter()
            .filter(|st| s.ports_by_state[st.index()] > 0)
            .map(|st| format!("{} {}", s.ports_by_state[st.index()], st.as_str()))
            .collect();
        writeln!(
            self.out,
            "Ports: {}; {} probes ({} retransmitted), {:.0} probes/s",
            if states.is_empty() {
                "none".to_string()
            } else {
                states.join(", ")
            },
            s.probes_sent,
            s.retransmissions,
            summary.probe_rate()
        )?;
        if let Some(p) = summary.packets {
            writeln!(
                self.out,
                "Packets: {} sent, {} received, {} ignored (not an answer to a probe in flight)",
                p.sent, p.received, p.ignored
            )?;
            if p.dropped > 0 {
                writeln!(
                    self.out,
                    "The kernel dropped {} packets before Portolan read them (its receive \
                     ring was full): their probes were retried as if lost",
                    p.dropped
                )?;
            }
        }
        for m in &summary.middleboxes {
            writeln!(
                self.out,
                "Middlebox: {} answers {}/{} for {} addresses: {}",
                m.kind.description(),
                m.port,
                proto_name(m.proto),
                m.addresses,
                crate::escape::for_terminal(&m.evidence)
            )?;
        }
        if s.hosts_paced > 0 {
            writeln!(
                self.out,
                "ICMP rate limits slowed the scan of {} (see \"ICMP rate limit\" in each report)",
                match s.hosts_paced {
                    1 => "1 host".to_string(),
                    n => format!("{n} hosts"),
                }
            )?;
        }
        if s.hosts_paced_globally > 0 {
            writeln!(
                self.out,
                "Of those, {} limited ICMP errors over all source addresses, not per source: \
                 more source addresses (-S) did not speed them up",
                match s.hosts_paced_globally {
                    1 => "1 host".to_string(),
                    n => format!("{n} hosts"),
                }
            )?;
        }
        if let Some(m) = summary.min_rate_missed {
            writeln!(
                self.out,
                "--min-rate {:.0} was not reached ({:.0} probes/s over the scan): {}",
                m.asked,
                m.reached,
                m.reason.description()
            )?;
        }
        if self.file {
            writeln!(self.out, "{}", crate::done_trailer(summary))?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{outcome, up_host as report};
    use portolan_engine::Reason;
    use portolan_targets::Protocol;

    fn render(report: &HostReport, options: OutputOptions) -> String {
        let mut sink = NormalSink::new(Vec::new(), options);
        sink.host(report).unwrap();
        String::from_utf8(sink.out).unwrap()
    }

    #[test]
    fn crowded_states_collapse_and_open_ports_list() {
        let mut ports = vec![
            outcome(22, PortState::Open, Reason::SynAck),
            outcome(80, PortState::Open, Reason::SynAck),
        ];
        ports.extend((1000..1030).map(|p| outcome(p, PortState::Closed, Reason::ConnRefused)));
        ports.push(outcome(5000, PortState::Filtered, Reason::NoResponse));
        let text = render(&report(ports), OutputOptions::default());
        let expected = format!(
            "Portolan scan report for lab\\x1b[2J (198.18.0.2)\n\
             Host is up (0.000042s latency).\n\
             Not shown: 30 closed tcp ports (conn-refused)\n\
             PORT     STATE    SERVICE\n\
             22/tcp   open     ssh\n\
             80/tcp   open     http\n\
             5000/tcp filtered {}\n\n",
            service_name(Protocol::Tcp, 5000)
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn version_column_shows_escaped_service_fields() {
        let r = crate::fixtures::probed_host();
        let text = render(&r, OutputOptions::default());
        let table: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(
            table,
            vec![
                "PORT     STATE SERVICE  VERSION",
                "22/tcp   open  ssh      OpenSSH 9.2p1 Debian 2+deb12u3 (protocol 2.0)",
                "443/tcp  open  ssl/http evil<&>\\x1b[2J\\u{9b} 1.22.1",
                "8080/tcp open  http-alt",
                "",
            ]
        );
    }

    #[test]
    fn reason_column_and_open_only() {
        let ports = vec![
            outcome(22, PortState::Open, Reason::SynAck),
            outcome(23, PortState::Closed, Reason::ConnRefused),
        ];
        let text = render(
            &report(ports.clone()),
            OutputOptions {
                reason: true,
                ..OutputOptions::default()
            },
        );
        assert!(text.contains("Host is up, received user-set (0.000042s latency)."));
        assert!(text.contains("PORT   STATE  SERVICE REASON\n"), "{text}");
        assert!(
            text.contains("23/tcp closed telnet  conn-refused\n"),
            "{text}"
        );
        let text = render(
            &report(ports),
            OutputOptions {
                open_only: true,
                ..OutputOptions::default()
            },
        );
        assert!(text.contains("Not shown: 1 closed tcp ports (conn-refused)"));
        assert!(!text.contains("23/tcp"));
        let none = render(
            &report(vec![outcome(23, PortState::Closed, Reason::ConnRefused)]),
            OutputOptions {
                open_only: true,
                ..OutputOptions::default()
            },
        );
        assert_eq!(none, "");
    }
    #[test]
    fn packets_the_kernel_dropped_are_told_only_when_there_were_some() {
        let end = |dropped: u64| {
            let summary = ScanSummary {
                stats: Default::default(),
                elapsed: std::time::Duration::from_secs(1),
                end: std::time::SystemTime::UNIX_EPOCH,
                interrupted: false,
                packets: Some(crate::PacketStats {
                    sent: 10,
                    received: 9,
                    ignored: 0,
                    dropped,
                }),
                middleboxes: Vec::new(),
                min_rate_missed: None,
            };
            let mut sink = NormalSink::new(Vec::new(), OutputOptions::default());
            sink.end(&summary).unwrap();
            String::from_utf8(sink.out).unwrap()
        };
        let quiet = end(0);
        assert!(quiet.contains("Packets: 10 sent, 9 received"), "{quiet}");
        assert!(!quiet.contains("dropped"), "{quiet}");
        let lost = end(3);
        assert!(
            lost.contains("The kernel dropped 3 packets before Portolan read them"),
            "{lost}"
        );
    }
}
