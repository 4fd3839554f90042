//! Two scans compared ([`diff`]): hosts that came up or went down, ports
//! opened, closed or filtered, services and versions changed, banners
//! changed (by their stable form, [`crate::banner`]: what changes at every
//! connection does not count), certificates changed, and certificates
//! expiring soon.
//!
//! The confirmation rule: weak evidence is not reported as a change until
//! a second scan agrees. A port is weak in the later scan when
//! - it is `open|filtered` and was not (silence that may be a filter, or a
//!   lost datagram, seen once), or
//! - it was `open` and is now `filtered` with `no-response` after at most
//!   one probe (one silent probe proves little; nmap's files do not say
//!   how many were sent, so they count as one).
//!
//! Such a change is listed apart, as unconfirmed, and does not make the
//! scans differ, unless `confirmed` says that the same facts were also
//! seen by the scan before (from a history: the run of facts has at least
//! two sightings), or [`DiffOptions::report_unconfirmed`] is set.
//!
//! Beside ports, as ndiff does: OS matches and scripts' output (host and
//! port scripts) that changed make the scans differ; the ports a report
//! only counts by state (nmap's `<extraports>`: states of more than 25
//! ports, or the counts of another scanner's file) are carried on each
//! side and shown when they changed, but do not by themselves make the
//! scans differ: they move with the listed ports, whose weak changes wait
//! for confirmation.
//!
//! Ports a file does not list take the host's only counted state
//! (`<extraports>`), as ndiff reads them; a port neither scan knows the
//! state of is left out unless one side saw it open.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use portolan_model::{HostReport, HostStatus, PortState, Reason, ScanResults, ServiceInfo};
use portolan_targets::Protocol;
use serde::Serialize;

/// Choices for a diff.
#[derive(Clone, Copy, Debug)]
pub struct DiffOptions {
    /// Report certificates that expire within this many days of the later
    /// scan (informational: they do not make the scans differ).
    pub expiring_days: u32,
    /// Count weak changes as changes without confirmation.
    pub report_unconfirmed: bool,
}

impl Default for DiffOptions {
    fn default() -> DiffOptions {
        DiffOptions {
            expiring_days: 30,
            report_unconfirmed: false,
        }
    }
}

/// One side's scan, as the diff names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScanSide {
    /// The scan's ID.
    pub id: String,
    /// "portolan", "nmap", "masscan".
    pub scanner: String,
    /// The scanner's version.
    pub version: String,
    /// The command line.
    pub args: String,
    /// When it started (RFC 3339).
    pub start: String,
    /// When it started.
    #[serde(skip)]
    pub start_time: SystemTime,
}

/// A certificate's facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertSide {
    /// Subject.
    pub subject: String,
    /// Issuer.
    pub issuer: String,
    /// End of validity (RFC 3339), if known.
    pub not_after: Option<String>,
    /// Subject alternative names.
    pub san: Vec<String>,
}

/// One side of a port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortSide {
    /// The state (nmap's name).
    pub state: String,
    /// The evidence.
    pub reason: String,
    /// The service name ("ssl/http"), when version detection ran.
    pub service: Option<String>,
    /// Product, version and extra information, as one line.
    pub version: Option<String>,
    /// Product alone.
    pub product: Option<String>,
    /// CPE names.
    pub cpe: Vec<String>,
    /// The certificate, when TLS was seen.
    pub cert: Option<CertSide>,
    /// The banner as received, when it is text (binary banners are not
    /// compared and not shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banner: Option<String>,
    /// Its stable form, as compared.
    #[serde(skip)]
    pub stable_banner: Option<crate::banner::Stable>,
    /// The version alone (nmap's `version` attribute).
    #[serde(skip)]
    pub version_only: Option<String>,
    /// The extra information alone (nmap's `extrainfo`).
    #[serde(skip)]
    pub extrainfo: Option<String>,
    /// Whether the scan listed the port (`false`: its state is the host's
    /// only counted state, nmap's `<extraports>`).
    #[serde(skip)]
    pub listed: bool,
}

/// A script whose output changed (`a` or `b` absent: it ran on one side
/// only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScriptDiff {
    /// The script's name.
    pub id: String,
    /// Its output in the earlier scan.
    pub a: Option<String>,
    /// Its output in the later scan.
    pub b: Option<String>,
}

/// Ports counted by state instead of listed (nmap's `<extraports>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Counted {
    /// The state (nmap's name).
    pub state: String,
    /// How many ports.
    pub count: u64,
}

/// Something on both sides.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sides<T> {
    /// The earlier scan's.
    pub a: T,
    /// The later scan's.
    pub b: T,
}

impl<T: PartialEq> Sides<T> {
    /// Whether the sides differ.
    pub fn changed(&self) -> bool {
        self.a != self.b
    }
}

/// What changed on a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Change {
    /// Now open.
    Opened,
    /// Now closed.
    Closed,
    /// Now filtered.
    Filtered,
    /// Another change of state.
    State,
    /// Same state, another service, product or version.
    Service,
    /// Same service, another certificate.
    Certificate,
    /// Same service and certificate, a banner that says something else.
    Banner,
    /// Only scripts' output changed.
    Script,
}

/// One port's difference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortDiff {
    /// The protocol.
    pub proto: String,
    /// The port.
    pub port: u16,
    /// What changed.
    pub change: Change,
    /// The earlier side, if known.
    pub a: Option<PortSide>,
    /// The later side, if known.
    pub b: Option<PortSide>,
    /// For unconfirmed changes: why the evidence is weak.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weak: Option<String>,
    /// Scripts of the port whose output changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<ScriptDiff>,
}

/// One host's differences.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostDiff {
    /// The address.
    pub addr: IpAddr,
    /// Names the scans gave it.
    pub names: Vec<String>,
    /// Status in the earlier scan ("up", "down", ...); `None` when absent.
    pub a_status: Option<String>,
    /// Status in the later scan; `None` when absent.
    pub b_status: Option<String>,
    /// Changed ports (all ports of a host present on one side only).
    pub ports: Vec<PortDiff>,
    /// Ports counted by state on each side (nmap's `<extraports>`).
    pub extraports: Sides<Vec<Counted>>,
    /// OS matches on each side, best first, when they changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<Sides<Vec<String>>>,
    /// Host scripts whose output changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<ScriptDiff>,
}

impl HostDiff {
    /// Whether the host's status changed.
    pub fn status_changed(&self) -> bool {
        self.a_status != self.b_status
    }
}

/// Scripts' outputs of two sides compared by name (as ndiff merges them).
pub fn script_diffs(a: &[(&str, &str)], b: &[(&str, &str)]) -> Vec<ScriptDiff> {
    let mut ids: Vec<&str> = a.iter().chain(b).map(|(id, _)| *id).collect();
    ids.sort();
    ids.dedup();
    ids.into_iter()
        .filter_map(|id| {
            let find = |side: &[(&str, &str)]| {
                side.iter()
                    .find(|(i, _)| *i == id)
                    .map(|(_, o)| o.to_string())
            };
            let (x, y) = (find(a), find(b));
            (x != y).then(|| ScriptDiff {
                id: id.to_string(),
                a: x,
                b: y,
            })
        })
        .collect()
}

fn scripts_of(h: Option<&HostReport>, port: Option<(Protocol, u16)>) -> Vec<(&str, &str)> {
    h.map(|h| {
        h.extra
            .scripts
            .iter()
            .filter(|s| s.port == port)
            .map(|s| (s.id.as_str(), s.output.as_str()))
            .collect()
    })
    .unwrap_or_default()
}

/// The ports a host's report counts instead of listing, as `-oX` writes
/// them: states of more than 25 ports, and another scanner's counts.
fn extraports(h: Option<&HostReport>) -> Vec<Counted> {
    let Some(h) = h else { return Vec::new() };
    let mut counts = h.state_counts();
    let mut states =
        portolan_output::collapsed_states(h, &portolan_output::OutputOptions::default());
    for c in &h.extra.counted {
        counts[c.state.index()] += c.count;
        if !states.contains(&c.state) {
            states.push(c.state);
        }
    }
    states
        .into_iter()
        .map(|s| Counted {
            state: s.as_str().into(),
            count: counts[s.index()],
        })
        .collect()
}

fn os_names(h: Option<&HostReport>) -> Vec<String> {
    h.map(|h| h.extra.os.iter().map(|m| m.name.clone()).collect())
        .unwrap_or_default()
}

/// A certificate that expires soon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expiring {
    /// The host.
    pub addr: IpAddr,
    /// The protocol.
    pub proto: String,
    /// The port.
    pub port: u16,
    /// The subject.
    pub subject: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// Whole days left at the later scan's start (negative: expired).
    pub days_left: i64,
}

/// Two scans compared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScanDiff {
    /// The earlier scan.
    pub a: ScanSide,
    /// The later scan.
    pub b: ScanSide,
    /// Hosts with differences.
    pub hosts: Vec<HostDiff>,
    /// Weak changes held back until a second scan confirms them.
    pub unconfirmed: Vec<(IpAddr, PortDiff)>,
    /// Certificates of the later scan that expire within the window.
    pub expiring: Vec<Expiring>,
    /// The window, in days.
    pub expiring_days: u32,
}

impl ScanDiff {
    /// Whether the scans differ (unconfirmed changes and expiring
    /// certificates aside).
    pub fn differs(&self) -> bool {
        !self.hosts.is_empty()
    }
}

fn side(scan: &ScanResults) -> ScanSide {
    ScanSide {
        id: scan.id.to_string(),
        scanner: scan.scanner.clone(),
        version: scan.version.clone(),
        args: scan.args.clone(),
        start: portolan_model::time::rfc3339(scan.start),
        start_time: scan.start,
    }
}

fn status(h: &HostReport) -> &'static str {
    match h.status {
        HostStatus::Up(_) => "up",
        HostStatus::Down => "down",
        HostStatus::TimedOut => "timed-out",
        HostStatus::Interrupted => "interrupted",
    }
}

fn cert(s: &ServiceInfo) -> Option<CertSide> {
    s.tls.as_ref().map(|t| CertSide {
        subject: t.subject.clone(),
        issuer: t.issuer.clone(),
        not_after: t.not_after.map(portolan_model::time::rfc3339),
        san: t.san.clone(),
    })
}

/// A text banner as received (see [`crate::banner`]), for people.
fn banner_text(s: &ServiceInfo) -> Option<String> {
    match crate::banner::stable(&s.banner) {
        crate::banner::Stable::Text(_) => Some(String::from_utf8_lossy(&s.banner).into_owned()),
        _ => None,
    }
}

/// What a host says of a port: listed, or its only counted state.
struct Known {
    state: PortState,
    reason: Reason,
    tries: u8,
    side: PortSide,
}

fn known(h: &HostReport, proto: Protocol, port: u16) -> Option<Known> {
    if let Some(p) = h.ports.iter().find(|p| p.proto == proto && p.port == port) {
        let s = h.service(proto, port);
        let line = s.map(|s| s.version_line()).filter(|l| !l.is_empty());
        return Some(Known {
            state: p.state,
            reason: p.reason,
            tries: p.tries,
            side: PortSide {
                state: p.state.as_str().into(),
                reason: p.reason.as_str().into(),
                service: s.map(|s| s.full_name()),
                version: line,
                product: s.and_then(|s| s.product.clone()),
                cpe: s.map(|s| s.cpe.clone()).unwrap_or_default(),
                cert: s.and_then(cert),
                banner: s.and_then(banner_text),
                stable_banner: s.map(|s| crate::banner::stable(&s.banner)),
                version_only: s.and_then(|s| s.version.clone()),
                extrainfo: s.and_then(|s| s.extrainfo.clone()),
                listed: true,
            },
        });
    }
    match h.extra.counted.as_slice() {
        [only] if matches!(h.status, HostStatus::Up(_)) => Some(Known {
            state: only.state,
            reason: Reason::UnknownResponse,
            tries: 0,
            side: PortSide {
                state: only.state.as_str().into(),
                reason: Reason::UnknownResponse.as_str().into(),
                service: None,
                version: None,
                product: None,
                cpe: Vec::new(),
                cert: None,
                banner: None,
                stable_banner: None,
                version_only: None,
                extrainfo: None,
                listed: false,
            },
        }),
        _ => None,
    }
}

fn change_to(state: PortState) -> Change {
    match state {
        PortState::Open => Change::Opened,
        PortState::Closed => Change::Closed,
        PortState::Filtered => Change::Filtered,
        _ => Change::State,
    }
}

/// Why the later side's evidence is weak, if it is.
fn weakness(a: &Known, b: &Known) -> Option<String> {
    if b.state == PortState::OpenFiltered && a.state != PortState::OpenFiltered {
        return Some("open|filtered seen once: silence may be a filter or a lost probe".into());
    }
    if a.state == PortState::Open
        && b.state == PortState::Filtered
        && b.reason == Reason::NoResponse
        && b.tries <= 1
    {
        return Some("lost to one silent probe".into());
    }
    None
}

fn port_diff(
    a: Option<&Known>,
    b: Option<&Known>,
    proto: Protocol,
    port: u16,
    scripts: Vec<ScriptDiff>,
) -> Option<PortDiff> {
    let change = match (a, b) {
        (None, None) => return None,
        (None, Some(b)) => {
            if !matches!(b.state, PortState::Open | PortState::OpenFiltered) {
                return None;
            }
            change_to(b.state)
        }
        (Some(a), None) => {
            if !matches!(a.state, PortState::Open | PortState::OpenFiltered) {
                return None;
            }
            Change::State
        }
        (Some(a), Some(b)) if a.state != b.state => change_to(b.state),
        (Some(a), Some(b)) => {
            let (sa, sb) = (&a.side, &b.side);
            // Without version detection on one side, services are not
            // comparable.
            let comparable = sa.service.is_some() && sb.service.is_some();
            if comparable
                && (&sa.service, &sa.version, &sa.cpe) != (&sb.service, &sb.version, &sb.cpe)
            {
                Change::Service
            } else if comparable && sa.cert != sb.cert {
                Change::Certificate
            } else if comparable
                && let (Some(x), Some(y)) = (&sa.stable_banner, &sb.stable_banner)
                && x.changed(y)
            {
                Change::Banner
            } else if !scripts.is_empty() {
                Change::Script
            } else {
                return None;
            }
        }
    };
    Some(PortDiff {
        proto: proto.as_str().into(),
        port,
        change,
        a: a.map(|k| k.side.clone()),
        b: b.map(|k| k.side.clone()),
        weak: None,
        scripts,
    })
}

fn up(h: Option<&HostReport>) -> Option<&HostReport> {
    h.filter(|h| matches!(h.status, HostStatus::Up(_)))
}

fn days_left(not_after: SystemTime, at: SystemTime) -> i64 {
    match not_after.duration_since(at) {
        Ok(d) => (d.as_secs() / 86_400) as i64,
        Err(e) => -(e.duration().as_secs().div_ceil(86_400) as i64),
    }
}

/// Compares scan `a` (earlier) with `b` (later). `confirmed(addr, proto,
/// port)` says whether `b`'s facts on a port were also seen by the scan
/// before it (always `false` for files).
pub fn diff(
    a: &ScanResults,
    b: &ScanResults,
    options: &DiffOptions,
    confirmed: &mut dyn FnMut(IpAddr, Protocol, u16) -> bool,
) -> ScanDiff {
    let by_addr = |s: &ScanResults| -> BTreeMap<IpAddr, HostReport> {
        s.hosts.iter().map(|h| (h.target.addr, h.clone())).collect()
    };
    let (ha, hb) = (by_addr(a), by_addr(b));
    let mut addrs: Vec<IpAddr> = ha.keys().chain(hb.keys()).copied().collect();
    addrs.sort();
    addrs.dedup();
    let mut hosts = Vec::new();
    let mut unconfirmed = Vec::new();
    for addr in addrs {
        let (x, y) = (ha.get(&addr), hb.get(&addr));
        let (ux, uy) = (up(x), up(y));
        let mut specs: Vec<(Protocol, u16)> = ux
            .iter()
            .chain(uy.iter())
            .flat_map(|h| h.ports.iter().map(|p| (p.proto, p.port)))
            .collect();
        specs.sort();
        specs.dedup();
        let mut ports = Vec::new();
        // A host that went down lost its ports: its status says it all.
        if y.is_some() && uy.is_none() {
            specs.clear();
        }
        for (proto, port) in specs {
            let ka = ux.and_then(|h| known(h, proto, port));
            let kb = uy.and_then(|h| known(h, proto, port));
            let spec = Some((proto, port));
            let scripts = script_diffs(&scripts_of(ux, spec), &scripts_of(uy, spec));
            let Some(mut d) = port_diff(ka.as_ref(), kb.as_ref(), proto, port, scripts) else {
                continue;
            };
            if let (Some(ka), Some(kb)) = (&ka, &kb)
                && let Some(why) = weakness(ka, kb)
                && !options.report_unconfirmed
                && !confirmed(addr, proto, port)
            {
                d.weak = Some(why);
                unconfirmed.push((addr, d));
                continue;
            }
            ports.push(d);
        }
        let a_status = x.map(|h| status(h).to_string());
        let b_status = y.map(|h| status(h).to_string());
        let went_down = y.is_some() && uy.is_none();
        let os = Sides {
            a: os_names(ux),
            b: os_names(uy),
        };
        let os = (os.changed() && !went_down).then_some(os);
        let scripts = if went_down {
            Vec::new()
        } else {
            script_diffs(&scripts_of(ux, None), &scripts_of(uy, None))
        };
        if a_status == b_status && ports.is_empty() && os.is_none() && scripts.is_empty() {
            continue;
        }
        // A host down on both sides, or absent on one and down on the
        // other, is no news.
        if ux.is_none() && uy.is_none() {
            continue;
        }
        let mut names: Vec<String> = x
            .iter()
            .chain(y.iter())
            .flat_map(|h| h.target.name.iter().chain(h.target.rdns.iter()))
            .map(|n| n.to_string())
            .collect();
        names.sort();
        names.dedup();
        hosts.push(HostDiff {
            addr,
            names,
            a_status,
            b_status,
            ports,
            extraports: Sides {
                a: extraports(ux),
                b: extraports(uy),
            },
            os,
            scripts,
        });
    }
    let mut expiring = Vec::new();
    let window = Duration::from_secs(u64::from(options.expiring_days) * 86_400);
    for h in &b.hosts {
        for s in &h.services {
            let Some(tls) = &s.info.tls else { continue };
            let Some(not_after) = tls.not_after else {
                continue;
            };
            if not_after <= b.start + window {
                expiring.push(Expiring {
                    addr: h.target.addr,
                    proto: s.proto.as_str().into(),
                    port: s.port,
                    subject: tls.subject.clone(),
                    not_after: portolan_model::time::rfc3339(not_after),
                    days_left: days_left(not_after, b.start),
                });
            }
        }
    }
    ScanDiff {
        a: side(a),
        b: side(b),
        hosts,
        unconfirmed,
        expiring,
        expiring_days: options.expiring_days,
    }
}
