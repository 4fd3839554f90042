//! nmap's grepable output (`-oG`): one line per host and fact, fields
//! separated by tabs, so `grep`, `cut` and `awk` can pick results apart.
//!
//! ```text
//! # Portolan 0.1.0 scan initiated Tue Nov 24 18:45:19 2026 as: portolan -oG - 198.18.0.2
//! Host: 198.18.0.2 ()<TAB>Status: Up
//! Host: 198.18.0.2 ()<TAB>Ports: 22/open/tcp//ssh///, 80/open/tcp//http///<TAB>Ignored State: closed (998)
//! # Nmap done at Tue Nov 24 18:45:21 2026 -- 1 IP address (1 host up) scanned in 1.52 seconds
//! ```
//!
//! (`<TAB>` stands for a tab.) Each port is `port/state/protocol/owner/service/rpc/version/`; a `/` or
//! `,` inside a field would break the line, so it becomes `|`. At most one
//! state is summarised as "Ignored State" (the largest crowded one); every
//! other port is listed. The closing line keeps nmap's `# Nmap done at`
//! prefix (see [`crate::done_trailer`]). Host names are escaped as on a terminal,
//! which also removes tabs and line breaks.

use std::io::{self, Write};

use portolan_engine::{HostReport, HostStatus, PortState};
use portolan_targets::Protocol;

use crate::escape::for_terminal;
use crate::{
    OutputOptions, ScanInfo, ScanSummary, Sink, collapsed_states, proto_name, service_name,
};

/// Grepable output to any writer.
pub struct GrepableSink<W: Write> {
    out: W,
    options: OutputOptions,
}

/// A field of a port entry: no separators inside.
fn field(text: &str) -> String {
    text.replace(['/', ','], "|")
}

impl<W: Write> GrepableSink<W> {
    /// A sink writing to `out`.
    pub fn new(out: W, options: OutputOptions) -> GrepableSink<W> {
        GrepableSink { out, options }
    }

    fn write_host(&mut self, report: &HostReport) -> io::Result<()> {
        // nmap writes the reverse-DNS name here; the name typed otherwise.
        let name = report
            .target
            .rdns
            .as_deref()
            .or(report.target.name.as_deref())
            .map(for_terminal)
            .unwrap_or_default();
        let host = format!("Host: {} ({name})", report.target.addr);
        let status = match report.status {
            HostStatus::Up(_) | HostStatus::Interrupted => "Up",
            HostStatus::Down if self.options.verbosity > 0 => "Down",
            HostStatus::Down => return Ok(()),
            HostStatus::TimedOut => "Timeout",
        };
        let counts = report.state_counts();
        if crate::hidden_with_open_only(report, &self.options) {
            return Ok(());
        }
        writeln!(self.out, "{host}\tStatus: {status}")?;
        if status != "Up" || report.ports.is_empty() {
            return Ok(());
        }
        let ignored: Option<PortState> = collapsed_states(report, &self.options)
            .into_iter()
            .max_by_key(|s| counts[s.index()]);
        let listed: Vec<String> = report
            .ports
            .iter()
            .filter(|p| Some(p.state) != ignored)
            .map(|p| {
                // With -sV: the probed name (`ssl|http`) and the version
                // text, terminal-escaped like every banner.
                let found = report.service(p.proto, p.port);
                let name = found.map_or_else(
                    || service_name(p.proto, p.port).to_string(),
                    |f| for_terminal(&f.full_name()).into_owned(),
                );
                let version = found.map_or_else(String::new, |f| {
                    for_terminal(&f.version_line()).into_owned()
                });
                if p.proto == Protocol::Ip {
                    // nmap's form for the IP protocol scan:
                    // `number/state/name/`, no name for unassigned ones.
                    let name = portolan_targets::service_name(p.proto, p.port).unwrap_or("");
                    return format!("{}/{}/{}/", p.port, field(p.state.as_str()), field(name));
                }
                format!(
                    "{}/{}/{}//{}//{}/",
                    p.port,
                    field(p.state.as_str()),
                    proto_name(p.proto),
                    field(&name),
                    field(&version)
                )
            })
            .collect();
        let mut line = host;
        if !listed.is_empty() {
            let protocols = report.ports.iter().all(|p| p.proto == Protocol::Ip);
            line.push_str(if protocols {
                "\tProtocols: "
            } else {
                "\tPorts: "
            });
            line.push_str(&listed.join(", "));
        }
        if let Some(state) = ignored {
            line.push_str(&format!(
                "\tIgnored State: {} ({})",
                state.as_str(),
                counts[state.index()]
            ));
        }
        if !report.extra.os.is_empty() {
            // nmap's field: the matches' names joined by " | ".
            let names: Vec<String> = report
                .extra
                .os
                .iter()
                .map(|m| field(&for_terminal(&m.name)))
                .collect();
            line.push_str(&format!("\tOS: {}", names.join(" | ")));
        }
        writeln!(self.out, "{line}")
    }
}

impl<W: Write> Sink for GrepableSink<W> {
    fn begin(&mut self, info: &ScanInfo) -> io::Result<()> {
        writeln!(self.out, "{}", crate::initiated_comment(info))?;
        self.out.flush()
    }

    fn host(&mut self, report: &HostReport) -> io::Result<()> {
        self.write_host(report)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn end(&mut self, summary: &ScanSummary) -> io::Result<()> {
        if summary.interrupted {
            writeln!(
                self.out,
                "# Scan interrupted: the results above are partial"
            )?;
        }
        writeln!(self.out, "{}", crate::done_trailer(summary))?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probed_services_fill_the_service_and_version_fields() {
        let mut sink = GrepableSink::new(Vec::new(), OutputOptions::default());
        sink.write_host(&crate::fixtures::probed_host()).unwrap();
        let text = String::from_utf8(sink.out).unwrap();
        assert!(
            text.contains(
                "Ports: 22/open/tcp//ssh//OpenSSH 9.2p1 Debian 2+deb12u3 (protocol 2.0)/, \
                 443/open/tcp//ssl|http//evil<&>\\x1b[2J\\u{9b} 1.22.1/, \
                 8080/open/tcp//http-alt///"
            ),
            "{text}"
        );
    }

    #[test]
    fn separators_never_enter_a_field() {
        assert_eq!(field("a/b,c"), "a|b|c");
        assert_eq!(field("ssh"), "ssh");
    }
}
