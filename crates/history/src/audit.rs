//! A scan checked against a policy ([`audit`]): every violation with the
//! evidence that shows it (the port's state and reason, the service, the
//! certificate, the scan).
//!
//! Rules, per host (see [`crate::policy`] for how they are joined):
//! - `not-allowed`: an open port that neither the allowed ports of its
//!   protocol nor the allowed services admit (protocols with no allowed
//!   list are not checked);
//! - `must-be-closed`: a port that must answer closed but was dropped,
//!   filtered or open;
//! - `forbidden-service`: an open port whose service (version detection's
//!   name, else the port table's) is forbidden;
//! - `certificate`: a certificate with fewer days left than required at
//!   the scan's start;
//! - `risky`: an entry of the built-in catalogue ([`crate::risky`]).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::SystemTime;

use portolan_model::{HostReport, HostStatus, PortOutcome, PortState, ScanResults};
use portolan_output::escape::for_terminal;
use serde::Serialize;

use crate::policy::{HostRules, Policy, PortRange};
use crate::risky::{self, CATALOGUE};

/// One violation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The host.
    pub addr: IpAddr,
    /// The protocol.
    pub proto: String,
    /// The port.
    pub port: u16,
    /// The rule ("not-allowed", "must-be-closed", "forbidden-service",
    /// "certificate", "risky").
    pub rule: String,
    /// What is wrong.
    pub message: String,
    /// What the scan saw.
    pub evidence: String,
    /// The zones the host is in.
    pub zones: Vec<String>,
    /// For catalogue entries: where to read more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// The outcome of an audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// The scan audited.
    pub scan: String,
    /// When it started (RFC 3339).
    pub start: String,
    /// Hosts up that were checked.
    pub hosts: usize,
    /// The violations, by host and port.
    pub violations: Vec<Violation>,
}

fn in_ranges(ranges: &[PortRange], port: u16) -> bool {
    ranges.iter().any(|r| r.contains(port))
}

fn service_name(h: &HostReport, p: &PortOutcome) -> String {
    match h.service(p.proto, p.port) {
        Some(s) => s.name.clone(),
        None => portolan_targets::service_name(p.proto, p.port)
            .unwrap_or("unknown")
            .to_string(),
    }
}

fn evidence(h: &HostReport, p: &PortOutcome) -> String {
    let mut e = format!("{} ({}", p.state.as_str(), p.reason.as_str());
    if let Some(ttl) = p.reason_ttl {
        let _ = write!(e, ", ttl {ttl}");
    }
    e.push(')');
    if let Some(s) = h.service(p.proto, p.port) {
        let _ = write!(e, "; {}", s.full_name());
        let line = s.version_line();
        if !line.is_empty() {
            let _ = write!(e, " {line}");
        }
    }
    e
}

/// Words in a port's script output, banner, or service fields.
fn proof_text(h: &HostReport, p: &PortOutcome) -> String {
    let mut text = String::new();
    for s in &h.extra.scripts {
        if s.port == Some((p.proto, p.port)) {
            let _ = writeln!(text, "{} {}", s.id, s.output);
        }
    }
    if let Some(s) = h.service(p.proto, p.port) {
        text.push_str(&String::from_utf8_lossy(&s.banner));
        for f in [&s.product, &s.extrainfo].into_iter().flatten() {
            text.push(' ');
            text.push_str(f);
        }
    }
    text
}

fn host_violations(h: &HostReport, rules: &HostRules, start: SystemTime, out: &mut Vec<Violation>) {
    let mut push = |p: &PortOutcome, rule: &str, message: String, reference: Option<&str>| {
        out.push(Violation {
            addr: h.target.addr,
            proto: p.proto.as_str().into(),
            port: p.port,
            rule: rule.into(),
            message,
            evidence: evidence(h, p),
            zones: rules.zones.clone(),
            reference: reference.map(String::from),
        });
    };
    for p in &h.ports {
        let name = service_name(h, p);
        let open = p.state == PortState::Open;
        let allowed = match p.proto {
            portolan_targets::Protocol::Tcp => rules.tcp.as_deref(),
            portolan_targets::Protocol::Udp => rules.udp.as_deref(),
            portolan_targets::Protocol::Sctp => rules.sctp.as_deref(),
            portolan_targets::Protocol::Ip => None,
        };
        if open
            && let Some(allowed) = allowed
            && !in_ranges(allowed, p.port)
            && !rules.services.contains(&name)
        {
            push(
                p,
                "not-allowed",
                format!("{name} is open but the policy does not allow it"),
                None,
            );
        }
        if p.proto == portolan_targets::Protocol::Tcp
            && in_ranges(&rules.closed, p.port)
            && p.state != PortState::Closed
        {
            let how = match p.state {
                PortState::Filtered | PortState::OpenFiltered | PortState::ClosedFiltered => {
                    "is dropped or filtered"
                }
                _ => "is open",
            };
            push(
                p,
                "must-be-closed",
                format!("must answer closed (RST) but {how}"),
                None,
            );
        }
        if open && rules.forbidden_services.contains(&name) {
            push(
                p,
                "forbidden-service",
                format!("{name} is forbidden by the policy"),
                None,
            );
        }
        if let (Some(days), Some(tls)) = (
            rules.min_cert_days,
            h.service(p.proto, p.port).and_then(|s| s.tls.as_ref()),
        ) && let Some(not_after) = tls.not_after
        {
            let left = not_after
                .duration_since(start)
                .map_or(-1, |d| (d.as_secs() / 86_400) as i64);
            if left < i64::from(days) {
                push(
                    p,
                    "certificate",
                    format!(
                        "certificate {} expires {} ({left} days left, {days} required)",
                        tls.subject,
                        portolan_model::time::rfc3339(not_after)
                    ),
                    None,
                );
            }
        }
        if rules.risky {
            for risk in CATALOGUE
                .iter()
                .filter(|r| r.proto == p.proto && r.port == p.port)
            {
                if !risky::applies(risk, p.state, p.reason) {
                    continue;
                }
                let mut message = format!("{}: {}", risk.id, risk.reason);
                if let Some((condition, proofs)) = risk.condition {
                    let text = proof_text(h, p);
                    if proofs.iter().any(|w| text.contains(w)) {
                        let _ =
                            write!(message, " ({condition}: confirmed by the service's answer)");
                    } else {
                        let _ = write!(message, " ({condition}: not verified by this scan)");
                    }
                }
                push(p, "risky", message, Some(risk.reference));
            }
        }
    }
}

/// Checks one host against `policy` (nothing for a host not up), as a
/// scan finishes it; `start` is the scan's start, from which certificates'
/// days left are counted. The violations are in the order [`audit`] gives.
pub fn audit_host(h: &HostReport, policy: &Policy, start: SystemTime) -> Vec<Violation> {
    let mut violations = Vec::new();
    if matches!(h.status, HostStatus::Up(_)) {
        let rules = policy.rules_for(h.target.addr);
        host_violations(h, &rules, start, &mut violations);
        sort(&mut violations);
    }
    violations
}

fn sort(violations: &mut [Violation]) {
    violations.sort_by(|a, b| {
        (a.addr, &a.proto, a.port, &a.rule).cmp(&(b.addr, &b.proto, b.port, &b.rule))
    });
}

/// Checks every host up in `scan` against `policy`.
pub fn audit(scan: &ScanResults, policy: &Policy) -> AuditReport {
    let mut violations = Vec::new();
    let mut hosts = 0;
    for h in &scan.hosts {
        if !matches!(h.status, HostStatus::Up(_)) {
            continue;
        }
        hosts += 1;
        violations.extend(audit_host(h, policy, scan.start));
    }
    sort(&mut violations);
    AuditReport {
        scan: scan.id.to_string(),
        start: portolan_model::time::rfc3339(scan.start),
        hosts,
        violations,
    }
}

impl Violation {
    /// The violation as text: one line, then its evidence and reference
    /// indented, escaped for the terminal.
    pub fn text(&self) -> String {
        let zones = if self.zones.is_empty() {
            String::new()
        } else {
            format!(" [{}]", self.zones.join(", "))
        };
        let mut s = format!(
            "{} {}/{} {}{}: {}\n    evidence: {}\n",
            self.addr,
            self.port,
            self.proto,
            self.rule,
            for_terminal(&zones),
            for_terminal(&self.message),
            for_terminal(&self.evidence)
        );
        if let Some(r) = &self.reference {
            let _ = writeln!(s, "    reference: {}", for_terminal(r));
        }
        s
    }
}

impl AuditReport {
    /// The report as text, one violation per line.
    pub fn text(&self) -> String {
        let mut s = format!(
            "Audit of scan {} ({}): {} hosts up, {} violations\n",
            self.scan,
            self.start,
            self.hosts,
            self.violations.len()
        );
        for v in &self.violations {
            s.push_str(&v.text());
        }
        s
    }

    /// The report as one JSON object.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
