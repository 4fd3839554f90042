//! `-sV` in the binary: loading the probe database and running version
//! detection on the open TCP ports of finished hosts.
//!
//! The port scan hands over each finished host's report; detection runs
//! after the scan over every open port at once (many in parallel, each
//! bounded by `--version-timeout`, with waits grown by the host's measured
//! round trip) and attaches a `ServiceInfo` per port to the report before
//! the sinks write it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use portolan_engine::{HostReport, PortService, PortState};
use portolan_service::{DetectOptions, ProbeDb};
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

/// Runs detection on every open TCP port of `reports` and records what
/// was found in each report's `services`. Setting `stop` (Ctrl-C) ends it
/// early.
pub fn enrich(
    reports: &mut [HostReport],
    db: &Arc<ProbeDb>,
    config: &VersionConfig,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    // (report, port, address, the host's smoothed round trip)
    let mut targets: Vec<(usize, u16, SocketAddr, Option<Duration>)> = Vec::new();
    for (i, report) in reports.iter().enumerate() {
        for p in &report.ports {
            if p.state == PortState::Open && p.proto == Protocol::Tcp {
                let addr = SocketAddr::new(report.target.addr, p.port);
                targets.push((i, p.port, addr, report.times.srtt));
            }
        }
    }
    if targets.is_empty() {
        return Ok(());
    }
    let options = DetectOptions {
        intensity: config.intensity,
        service_timeout: config.timeout,
        stop: Some(stop),
        ..DetectOptions::default()
    };
    let addrs: Vec<(SocketAddr, Option<Duration>)> = targets.iter().map(|t| (t.2, t.3)).collect();
    let found = portolan_service::detect::detect_all_with_rtt(Arc::clone(db), &addrs, &options)
        .context("version detection failed")?;
    for ((i, port, _, _), info) in targets.into_iter().zip(found) {
        reports[i].services.push(PortService {
            port,
            proto: Protocol::Tcp,
            info,
        });
    }
    Ok(())
}
