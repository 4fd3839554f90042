//! nmap's XML output (`-oX`), valid against nmap.dtd (xmloutputversion
//! 1.05), written as a stream.
//!
//! The prologue, `<nmaprun>` and `<scaninfo>` are written and flushed when
//! the scan starts; each `<host>` element when its host is done (and
//! flushed); `<runstats>` and the closing tag when the scan ends, also
//! after Ctrl-C. A scan killed outright therefore leaves a document that is
//! complete up to the last finished host and lacks only its tail: appending
//! `</nmaprun>` makes it well-formed (python-libnmap's `incomplete=True`
//! does exactly that), and `xmllint --recover` reads it as it is.
//!
//! Compatibility choices, each for a consumer:
//! - `scanner="nmap"`: nmap.dtd allows no other value, and DTD validation
//!   is the contract that XML consumers test against. The document still
//!   says it is Portolan's: the leading comment, `args` (the command line
//!   as typed) and `version` (Portolan's version).
//! - Hosts without evidence of being up are left out unless `-v`, as nmap
//!   does; they are counted in `<runstats><hosts down>`.
//! - Ports in crowded non-open states go into `<extraports>` with one
//!   `<extrareasons>` per reason and its port list, by the same rule as
//!   normal output; `<times>` are microseconds, `-1` when no answer came.
//! - Service names come from the port table: `method="table" conf="3"`.
//!
//! Every string from outside (host names, the command line) goes through
//! [`for_xml`]. Read first: nmap.dtd; XML 1.0 §2.2, §2.5 (comments).

use std::io::{self, Write};
use std::time::SystemTime;

use portolan_engine::{HostReport, HostStatus, PortOutcome, PortState, Reason, ServiceInfo};

use crate::escape::for_xml;
use crate::time::{ctime_utc, unix_seconds};
use crate::{
    OutputOptions, ScanInfo, ScanSummary, Sink, collapsed_states, hosts_phrase, port_ranges,
    proto_name, reasons_of, service_name,
};

/// The `xmloutputversion` this writer follows.
pub const XML_OUTPUT_VERSION: &str = "1.05";

/// Where nmap's Debian package installs its stylesheet; browsers that open
/// the file render it through this.
pub const STYLESHEET: &str = "file:///usr/share/nmap/nmap.xsl";

/// XML output to any writer.
pub struct XmlSink<W: Write> {
    out: W,
    options: OutputOptions,
    info: Option<ScanInfo>,
    /// The document's start is already written (`--resume`): `begin`
    /// writes nothing.
    continuing: bool,
}

/// One element's start tag: `<name a="v" ...` with every value escaped;
/// the caller closes it with `>` or `/>`.
fn open_tag(out: &mut impl Write, name: &str, attrs: &[(&str, &str)]) -> io::Result<()> {
    write!(out, "<{name}")?;
    for (key, value) in attrs {
        write!(out, " {key}=\"{}\"", for_xml(value))?;
    }
    Ok(())
}

/// An empty element: `<name a="v"/>`.
fn empty(out: &mut impl Write, name: &str, attrs: &[(&str, &str)]) -> io::Result<()> {
    open_tag(out, name, attrs)?;
    out.write_all(b"/>")
}

/// Text for an XML comment: escaped, and without `--`, which comments may
/// not contain.
fn comment_text(text: &str) -> String {
    let escaped = for_xml(text);
    let mut out = String::with_capacity(escaped.len());
    for c in escaped.chars() {
        if c == '-' && out.ends_with('-') {
            out.push_str("&#45;");
        } else {
            out.push(c);
        }
    }
    out
}

fn ttl(outcome_ttl: Option<u8>) -> String {
    outcome_ttl.unwrap_or(0).to_string()
}

fn micros(d: Option<std::time::Duration>) -> String {
    d.map_or_else(|| "-1".to_string(), |d| d.as_micros().to_string())
}

impl<W: Write> XmlSink<W> {
    /// A sink writing to `out`.
    pub fn new(out: W, options: OutputOptions) -> XmlSink<W> {
        XmlSink {
            out,
            options,
            info: None,
            continuing: false,
        }
    }

    /// A sink that goes on with a document an interrupted scan left, cut
    /// after its last whole `<host>` element (`--resume`): it writes the
    /// hosts and the end, not the start again.
    pub fn continuing(out: W, options: OutputOptions) -> XmlSink<W> {
        XmlSink {
            continuing: true,
            ..XmlSink::new(out, options)
        }
    }

    fn wall(&self, t: SystemTime) -> String {
        unix_seconds(t).to_string()
    }

    /// Renders one `<host>` element into `out` (nothing for a host that is
    /// not reported).
    fn render_host(&self, out: &mut Vec<u8>, report: &HostReport) -> io::Result<()> {
        let (state, reason) = match report.status {
            HostStatus::Up(reason) => ("up", reason),
            HostStatus::Interrupted | HostStatus::TimedOut => ("up", Reason::UserSet),
            HostStatus::Down => ("down", Reason::NoResponse),
        };
        if state == "down" && self.options.verbosity == 0 {
            return Ok(());
        }
        if crate::hidden_with_open_only(report, &self.options) {
            return Ok(());
        }
        let start = self.wall(report.started);
        let end = self.wall(report.finished);
        let mut attrs = vec![("starttime", start.as_str()), ("endtime", end.as_str())];
        match report.status {
            HostStatus::TimedOut => attrs.push(("timedout", "true")),
            HostStatus::Interrupted => attrs.push(("comment", "scan interrupted: partial")),
            _ => {}
        }
        open_tag(out, "host", &attrs)?;
        out.write_all(b">")?;
        let ttl = report.reason_ttl.unwrap_or(0).to_string();
        empty(
            out,
            "status",
            &[
                ("state", state),
                ("reason", reason.as_str()),
                ("reason_ttl", ttl.as_str()),
            ],
        )?;
        out.write_all(b"\n")?;
        let addr = report.target.addr.to_string();
        let addrtype = if report.target.addr.is_ipv4() {
            "ipv4"
        } else {
            "ipv6"
        };
        empty(out, "address", &[("addr", &addr), ("addrtype", addrtype)])?;
        if let Some(mac) = report.mac {
            out.write_all(b"\n")?;
            let text = crate::mac_text(mac);
            match crate::vendor::vendor(mac) {
                Some(vendor) => empty(
                    out,
                    "address",
                    &[("addr", &text), ("addrtype", "mac"), ("vendor", vendor)],
                )?,
                None => empty(out, "address", &[("addr", &text), ("addrtype", "mac")])?,
            }
        }
        out.write_all(b"\n<hostnames>\n")?;
        if let Some(name) = &report.target.name {
            empty(out, "hostname", &[("name", name), ("type", "user")])?;
            out.write_all(b"\n")?;
        }
        if let Some(name) = &report.target.rdns {
            empty(out, "hostname", &[("name", name), ("type", "PTR")])?;
            out.write_all(b"\n")?;
        }
        out.write_all(b"</hostnames>\n")?;
        let has_ports = !report.ports.is_empty() || !report.extra.counted.is_empty();
        if report.status != HostStatus::TimedOut && has_ports {
            write_ports(out, report, &collapsed_states(report, &self.options))?;
        }
        write_os(out, report)?;
        write_middlebox(out, report)?;
        let timeout = report.times.timeout.as_micros().to_string();
        empty(
            out,
            "times",
            &[
                ("srtt", &micros(report.times.srtt)),
                ("rttvar", &micros(report.times.rttvar)),
                ("to", &timeout),
            ],
        )?;
        out.write_all(b"\n</host>\n")
    }
}

/// One `<script id="portolan-middlebox">` element: its output sentence,
/// its figures as keyed `elem`s, and a list as a keyed `table`.
fn write_middlebox_script(
    out: &mut impl Write,
    kind: portolan_model::MiddleboxKind,
    evidence: &str,
    figures: &[(&str, String)],
    list: (&str, Vec<String>),
) -> io::Result<()> {
    let output = format!("{}: {evidence}", kind.as_str());
    open_tag(
        out,
        "script",
        &[("id", "portolan-middlebox"), ("output", &output)],
    )?;
    out.write_all(b">")?;
    let kind = [("kind", kind.as_str().to_string())];
    for (key, value) in kind.iter().chain(figures) {
        write!(out, "<elem key=\"{key}\">{}</elem>", for_xml(value))?;
    }
    write!(out, "<table key=\"{}\">", list.0)?;
    for item in &list.1 {
        write!(out, "<elem>{}</elem>", for_xml(item))?;
    }
    out.write_all(b"</table></script>")
}

/// A middlebox found answering for the host, as a host script's output
/// (`<hostscript>`, the place nmap.dtd gives findings about a host).
fn write_middlebox(out: &mut impl Write, report: &HostReport) -> io::Result<()> {
    let Some(m) = &report.extra.middlebox else {
        return Ok(());
    };
    out.write_all(b"<hostscript>")?;
    write_middlebox_script(
        out,
        m.kind,
        &m.evidence,
        &[
            ("reset", m.reset.to_string()),
            ("checked", m.checked.to_string()),
        ],
        ("services", m.services.iter().map(u16::to_string).collect()),
    )?;
    out.write_all(b"</hostscript>\n")
}

/// Middleboxes told from the whole range, as post-scan scripts' output
/// (`<postscript>`, where nmap.dtd puts findings about the scan).
fn write_range_middleboxes(
    out: &mut impl Write,
    found: &[portolan_model::RangeMiddlebox],
) -> io::Result<()> {
    if found.is_empty() {
        return Ok(());
    }
    out.write_all(b"<postscript>")?;
    for m in found {
        write_middlebox_script(
            out,
            m.kind,
            &m.evidence,
            &[
                ("protocol", crate::proto_name(m.proto).to_string()),
                ("port", m.port.to_string()),
                ("ttl", m.ttl.to_string()),
                ("addresses", m.addresses.to_string()),
                ("differing", m.differing.to_string()),
            ],
            ("sample", m.sample.iter().map(ToString::to_string).collect()),
        )?;
    }
    out.write_all(b"</postscript>\n")
}

/// `-O`'s findings: nmap's `<os>` element (`portused`, `osmatch` with
/// its `osclass` and `cpe`, `osfingerprint`), when OS detection ran.
fn write_os(out: &mut impl Write, report: &HostReport) -> io::Result<()> {
    // Without -O there is at most a passive hint, which nmap's element
    // has no place for (JSON lines and normal output show it).
    let Some(d) = report.extra.os_detection.as_ref().filter(|d| d.active) else {
        return Ok(());
    };
    out.write_all(b"<os>")?;
    for p in &d.ports_used {
        let port = p.port.to_string();
        empty(
            out,
            "portused",
            &[
                ("state", p.state.as_str()),
                ("proto", proto_name(p.proto)),
                ("portid", &port),
            ],
        )?;
        out.write_all(b"\n")?;
    }
    for m in &report.extra.os {
        let (accuracy, line) = (m.accuracy.to_string(), m.line.to_string());
        open_tag(
            out,
            "osmatch",
            &[("name", &m.name), ("accuracy", &accuracy), ("line", &line)],
        )?;
        out.write_all(b">\n")?;
        for c in &m.classes {
            let accuracy = c.accuracy.to_string();
            let mut attrs = vec![
                ("type", c.device_type.as_str()),
                ("vendor", c.vendor.as_str()),
                ("osfamily", c.family.as_str()),
            ];
            if let Some(generation) = &c.generation {
                attrs.push(("osgen", generation));
            }
            attrs.push(("accuracy", &accuracy));
            open_tag(out, "osclass", &attrs)?;
            out.write_all(b">")?;
            for cpe in &c.cpe {
                write!(out, "<cpe>{}</cpe>", for_xml(cpe))?;
            }
            out.write_all(b"</osclass>\n")?;
        }
        out.write_all(b"</osmatch>\n")?;
    }
    if !d.fingerprint.is_empty() {
        empty(out, "osfingerprint", &[("fingerprint", &d.fingerprint)])?;
        out.write_all(b"\n")?;
    }
    out.write_all(b"</os>\n")
}

fn write_ports(
    out: &mut impl Write,
    report: &HostReport,
    collapsed: &[PortState],
) -> io::Result<()> {
    let mut counts = report.state_counts();
    // Ports another scanner's file only counted (a record read from
    // nmap's XML) are counted again.
    let mut collapsed = collapsed.to_vec();
    for c in &report.extra.counted {
        counts[c.state.index()] += c.count;
        if !collapsed.contains(&c.state) {
            collapsed.push(c.state);
        }
    }
    out.write_all(b"<ports>")?;
    for state in &collapsed {
        let count = counts[state.index()].to_string();
        open_tag(
            out,
            "extraports",
            &[("state", state.as_str()), ("count", &count)],
        )?;
        out.write_all(b">\n")?;
        let proto = report.ports.first().map_or("tcp", |p| proto_name(p.proto));
        for (reason, ports) in reasons_of(&report.ports, *state) {
            empty(
                out,
                "extrareasons",
                &[
                    ("reason", reason.as_str()),
                    ("count", &ports.len().to_string()),
                    ("proto", proto),
                    ("ports", &port_ranges(&ports)),
                ],
            )?;
            out.write_all(b"\n")?;
        }
        out.write_all(b"</extraports>\n")?;
    }
    let shown = report
        .ports
        .iter()
        .filter(|p| !collapsed.contains(&p.state));
    for p in shown {
        write_port(out, p, report.service(p.proto, p.port))?;
    }
    out.write_all(b"</ports>\n")
}

fn write_port(
    out: &mut impl Write,
    p: &PortOutcome,
    service: Option<&ServiceInfo>,
) -> io::Result<()> {
    open_tag(
        out,
        "port",
        &[
            ("protocol", proto_name(p.proto)),
            ("portid", &p.port.to_string()),
        ],
    )?;
    out.write_all(b">")?;
    empty(
        out,
        "state",
        &[
            ("state", p.state.as_str()),
            ("reason", p.reason.as_str()),
            ("reason_ttl", &ttl(p.reason_ttl)),
        ],
    )?;
    match service {
        Some(found) => write_service(out, found)?,
        None => empty(
            out,
            "service",
            &[
                ("name", service_name(p.proto, p.port)),
                ("method", "table"),
                ("conf", "3"),
            ],
        )?,
    }
    out.write_all(b"</port>\n")
}

/// `-sV`'s findings: nmap's `<service>` attributes and `<cpe>` children
/// (every value from the network, escaped).
fn write_service(out: &mut impl Write, s: &ServiceInfo) -> io::Result<()> {
    let conf = s.conf.to_string();
    let mut attrs: Vec<(&str, &str)> = vec![("name", &s.name)];
    let optional = [
        ("product", &s.product),
        ("version", &s.version),
        ("extrainfo", &s.extrainfo),
        ("hostname", &s.hostname),
        ("ostype", &s.ostype),
        ("devicetype", &s.devicetype),
    ];
    attrs.extend(
        optional
            .iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v))),
    );
    if s.ssl {
        attrs.push(("tunnel", "ssl"));
    }
    attrs.extend([("method", s.method.as_str()), ("conf", conf.as_str())]);
    if s.cpe.is_empty() {
        return empty(out, "service", &attrs);
    }
    open_tag(out, "service", &attrs)?;
    out.write_all(b">")?;
    for cpe in &s.cpe {
        write!(out, "<cpe>{}</cpe>", for_xml(cpe))?;
    }
    out.write_all(b"</service>")
}

impl<W: Write> Sink for XmlSink<W> {
    fn begin(&mut self, info: &ScanInfo) -> io::Result<()> {
        if self.continuing {
            self.info = Some(info.clone());
            return Ok(());
        }
        let args = info.args.join(" ");
        let started = ctime_utc(info.start);
        let out = &mut self.out;
        writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
        writeln!(out, "<!DOCTYPE nmaprun>")?;
        writeln!(
            out,
            "<?xml-stylesheet href=\"{STYLESHEET}\" type=\"text/xsl\"?>"
        )?;
        writeln!(
            out,
            "<!-- {} -->",
            comment_text(&format!(
                "Portolan {} scan initiated {started} as: {args}",
                info.version
            ))
        )?;
        open_tag(
            out,
            "nmaprun",
            &[
                ("scanner", "nmap"),
                ("args", &args),
                ("start", &unix_seconds(info.start).to_string()),
                ("startstr", &started),
                ("version", &info.version),
                ("xmloutputversion", XML_OUTPUT_VERSION),
            ],
        )?;
        out.write_all(b">\n")?;
        let scans = std::iter::once((info.scan_type, info.proto, &info.ports, &info.scanflags))
            .chain(
                info.more_scans
                    .iter()
                    .map(|(t, p, ports)| (*t, *p, ports, &None)),
            );
        // nmap writes no scaninfo for its idle scan, whose type nmap.dtd
        // does not list.
        for (scan_type, proto, ports, flags) in scans.filter(|(t, ..)| *t != "idle") {
            let numservices = ports.len().to_string();
            let services = port_ranges(ports);
            let mut attrs = vec![("type", scan_type)];
            if let Some(flags) = flags {
                attrs.push(("scanflags", flags.as_str()));
            }
            attrs.extend([
                ("protocol", proto_name(proto)),
                ("numservices", numservices.as_str()),
                ("services", services.as_str()),
            ]);
            empty(out, "scaninfo", &attrs)?;
            out.write_all(b"\n")?;
        }
        empty(
            out,
            "verbose",
            &[("level", &self.options.verbosity.to_string())],
        )?;
        out.write_all(b"\n")?;
        empty(out, "debugging", &[("level", "0")])?;
        out.write_all(b"\n")?;
        self.info = Some(info.clone());
        self.out.flush()
    }

    fn host(&mut self, report: &HostReport) -> io::Result<()> {
        // One write per host, so a killed scan leaves whole hosts only.
        let mut element = Vec::with_capacity(4096);
        self.render_host(&mut element, report)?;
        self.out.write_all(&element)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn end(&mut self, summary: &ScanSummary) -> io::Result<()> {
        let s = &summary.stats;
        let done = ctime_utc(summary.end);
        let elapsed = format!("{:.2}", summary.elapsed.as_secs_f64());
        let phrase = format!(
            "Portolan done at {done}; {} scanned in {elapsed} seconds",
            hosts_phrase(s.hosts_done, s.hosts_up)
        );
        let time = unix_seconds(summary.end).to_string();
        let mut attrs = vec![
            ("time", time.as_str()),
            ("timestr", done.as_str()),
            ("summary", phrase.as_str()),
            ("elapsed", elapsed.as_str()),
        ];
        if summary.interrupted {
            attrs.push(("exit", "error"));
            attrs.push((
                "errormsg",
                "interrupted by the user; the results are partial",
            ));
        } else {
            attrs.push(("exit", "success"));
        }
        let out = &mut self.out;
        write_range_middleboxes(out, &summary.middleboxes)?;
        out.write_all(b"<runstats>")?;
        empty(out, "finished", &attrs)?;
        empty(
            out,
            "hosts",
            &[
                ("up", &s.hosts_up.to_string()),
                ("down", &s.hosts_done.saturating_sub(s.hosts_up).to_string()),
                ("total", &s.hosts_done.to_string()),
            ],
        )?;
        out.write_all(b"\n</runstats>\n</nmaprun>\n")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{host, outcome};

    fn report(status: HostStatus, states: &[(u16, PortState, Reason)]) -> HostReport {
        let ports = states.iter().map(|&(p, s, r)| outcome(p, s, r)).collect();
        let mut report = host(status, ports);
        report.times.srtt = None;
        report.times.rttvar = None;
        report.times.timeout = std::time::Duration::from_secs(1);
        report
    }

    fn render(report: &HostReport, options: OutputOptions) -> String {
        let mut out = Vec::new();
        XmlSink::new(Vec::new(), options)
            .render_host(&mut out, report)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn probed_services_carry_nmaps_attributes_escaped() {
        let text = render(&crate::fixtures::probed_host(), OutputOptions::default());
        assert!(
            text.contains(
                "<service name=\"ssh\" product=\"OpenSSH\" version=\"9.2p1 Debian 2+deb12u3\" \
                 extrainfo=\"protocol 2.0\" method=\"probed\" conf=\"10\"/>"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "<service name=\"http\" product=\"evil&lt;&amp;&gt;\\x1b[2J\\u{9b}\" \
                 version=\"1.22.1\" tunnel=\"ssl\" method=\"probed\" conf=\"10\">\
                 <cpe>cpe:/a:f5:nginx:1.22.1</cpe></service>"
            ),
            "{text}"
        );
        assert!(text.contains("<service name=\"http-alt\" method=\"table\" conf=\"3\"/>"));
    }

    #[test]
    fn open_only_counts_the_rest_and_hides_hosts_without_open_ports() {
        let open_only = OutputOptions {
            open_only: true,
            ..OutputOptions::default()
        };
        let ports = [
            (22, PortState::Open, Reason::SynAck),
            (23, PortState::Closed, Reason::Reset),
            (24, PortState::Filtered, Reason::NoResponse),
        ];
        let text = render(&report(HostStatus::Up(Reason::UserSet), &ports), open_only);
        assert!(text.contains("<extraports state=\"closed\" count=\"1\">"));
        assert!(text.contains("<extraports state=\"filtered\" count=\"1\">"));
        assert!(text.contains("portid=\"22\""));
        assert!(!text.contains("portid=\"23\""));
        let closed = render(
            &report(HostStatus::Up(Reason::UserSet), &ports[1..]),
            open_only,
        );
        assert_eq!(closed, "");
    }

    #[test]
    fn host_statuses() {
        let ports = [(22, PortState::Open, Reason::SynAck)];
        let text = render(
            &report(HostStatus::Interrupted, &ports),
            OutputOptions::default(),
        );
        assert!(text.contains("comment=\"scan interrupted: partial\""));
        assert!(text.contains("<times srtt=\"-1\" rttvar=\"-1\" to=\"1000000\"/>"));
        let down = report(HostStatus::Down, &[]);
        assert_eq!(render(&down, OutputOptions::default()), "");
        let verbose = OutputOptions {
            verbosity: 1,
            ..OutputOptions::default()
        };
        assert!(render(&down, verbose).contains("<status state=\"down\" reason=\"no-response\""));
    }

    #[test]
    fn comments_never_hold_a_double_dash() {
        assert_eq!(
            comment_text("as: x --reason -->"),
            "as: x -&#45;reason -&#45;&gt;"
        );
        assert_eq!(comment_text("a---b"), "a-&#45;-b");
    }
}
