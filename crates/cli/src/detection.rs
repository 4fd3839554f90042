//! `-sV` in the binary: loading the probe database and running version
//! detection on the open TCP ports, and the open and open|filtered UDP
//! ports, of finished hosts.
//!
//! The port scan hands over each finished host's report; detection runs
//! after the scan over every such port at once (many in parallel, each
//! bounded by `--version-timeout`, with waits grown by the host's measured
//! round trip) and attaches a `ServiceInfo` per port to the report before
//! the sinks write it. A UDP port the scan left open|filtered that answers
//! a probe becomes open, reason `udp-response`, as in nmap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use portolan_engine::{HostReport, PortService, PortState, Reason};
use portolan_service::db::Transport;
use portolan_service::{DetectOptions, DetectTarget, ProbeDb};
use portolan_targets::Protocol;

use crate::args::VersionConfig;

/// At most this many bad lines of a `--versiondb` file are listed.
const SHOWN_PARSE_ERRORS: usize = 10;

/// Loads Portolan's database, or the `--versiondb` file; bad lines of a
/// user's file are reported on standard error and skipped.
pub fn load_db(config: &VersionConfig) -> anyhow::Result<Arc<ProbeDb>> {
    let parsed = match &config.db {
        None => portolan_service::builtin(),
        Some(path) => portolan_service::load(path)
            .with_context(|| format!("--versiondb: cannot read {}", path.display()))?,
    };
    let name = config
        .db
        .as_ref()
        .map_or("the built-in probe database".to_string(), |p| {
            p.display().to_string()
        });
    for e in parsed.errors.iter().take(SHOWN_PARSE_ERRORS) {
        eprintln!(
            "portolan: warning: {}: {}",
            portolan_output::escape::for_terminal(&name),
            portolan_output::escape::for_terminal(&e.to_string())
        );
    }
    if parsed.errors.len() > SHOWN_PARSE_ERRORS {
        eprintln!(
            "portolan: warning: {}: {} more bad lines skipped",
            portolan_output::escape::for_terminal(&name),
            parsed.errors.len() - SHOWN_PARSE_ERRORS
        );
    }
    if parsed.db.probes.is_empty() {
        anyhow::bail!("{name}: no probes loaded");
    }
    Ok(Arc::new(parsed.db))
}

/// Runs detection on every open TCP port and every open or open|filtered
/// UDP port of `reports` and records what was found in each report's
/// `services`; returns how many UDP ports an answer proved open (they
/// were open|filtered). Setting `stop` (Ctrl-C) ends it early.
pub fn enrich(
    reports: &mut [HostReport],
    db: &Arc<ProbeDb>,
    config: &VersionConfig,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    // (report, protocol, port, target)
    let mut targets: Vec<(usize, Protocol, u16, DetectTarget)> = Vec::new();
    for (i, report) in reports.iter().enumerate() {
        for p in &report.ports {
            let transport = match (p.proto, p.state) {
                (Protocol::Tcp, PortState::Open) => Transport::Tcp,
                (Protocol::Udp, PortState::Open | PortState::OpenFiltered) => Transport::Udp,
                _ => continue,
            };
            let target = DetectTarget {
                addr: SocketAddr::new(report.target.addr, p.port),
                transport,
                rtt: report.times.srtt,
            };
            targets.push((i, p.proto, p.port, target));
        }
    }
    if targets.is_empty() {
        return Ok(0);
    }
    let options = DetectOptions {
        intensity: config.intensity,
        service_timeout: config.timeout,
        stop: Some(stop),
        ..DetectOptions::default()
    };
    let list: Vec<DetectTarget> = targets.iter().map(|t| t.3).collect();
    let found = portolan_service::detect_targets(Arc::clone(db), &list, &options)
        .context("version detection failed")?;
    let mut proved_open = 0;
    for ((i, proto, port, _), detected) in targets.into_iter().zip(found) {
        let report = &mut reports[i];
        if proto == Protocol::Udp
            && detected.answered
            && let Some(outcome) = report
                .ports
                .iter_mut()
                .find(|p| p.proto == proto && p.port == port)
            && outcome.state == PortState::OpenFiltered
        {
            outcome.state = PortState::Open;
            outcome.reason = Reason::UdpResponse;
            outcome.reason_ttl = None;
            proved_open += 1;
        }
        // A UDP port nothing answered keeps its state and gets no service
        // line of its own beyond the table's name, as nmap prints it.
        report.services.push(PortService {
            port,
            proto,
            info: detected.info,
        });
    }
    Ok(proved_open)
}
