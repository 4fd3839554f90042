//! Scans as a library: a [`ScanConfig`] in, typed [`Event`]s out.
//!
//! ```text
//! ScanConfig ──Scan::new──▶ Scan ──run(sink, stop)──▶ Started, PhaseStarted,
//!   (checked once:            (host discovery in groups,   HostUp, Port, Host,
//!    targets, technique,       each group's techniques,    Progress, ...,
//!    privileges, probe db)     enrichers per host)         Finished
//! ```
//!
//! [`Scan::new`] checks everything that can be checked before a packet is
//! sent and returns a typed [`ScanError`] naming what is wrong.
//! [`Scan::run`] blocks its thread while it scans (call it from
//! `spawn_blocking` in async code) and hands every [`Event`] to the
//! caller's [`EventSink`] on that thread; a [`StopToken`] (Ctrl-C, a
//! cancel button) ends it early with the finished hosts reported. The
//! library never prints, never installs signal handlers, and never gives
//! up the process's capabilities: [`Scan::new`] opens the raw sockets a
//! scan needs into a [`RawContext`] (or takes one the caller shares with
//! [`Scan::with_raw_context`]), after which the caller may drop its
//! privileges (the binary does); several scans run in one process, one
//! after another or side by side.
//!
//! Version detection runs on a tokio runtime the caller owns
//! ([`Scan::with_runtime`]); without one, the scan starts a small runtime
//! of its own for it.

#![deny(missing_docs)]

mod config;
mod enrich;
mod error;
mod event;
pub mod middlebox;
mod names;
mod os;
mod run;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use portolan_service::ProbeDb;
use portolan_targets::{Protocol, SystemResolver, TargetList};
use portolan_transport::raw::{self, PingProbe, TcpScan};

pub use portolan_transport::context::RawContext;

pub use config::{
    IdleZombie, MAX_SOURCES, OsConfig, ReverseDns, ScanConfig, Technique, VersionConfig,
};
pub use enrich::{Chain, Enricher, MAX_PENDING};
pub use error::ScanError;
pub use event::{Collected, Event, EventSink, HostUp, PhaseStart, Progress};
pub use portolan_model as model;

/// Portolan's version, as results record it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Ends a running scan from anywhere: another thread, a signal handler, a
/// sink. Clones share one flag.
#[derive(Clone, Debug, Default)]
pub struct StopToken(Arc<AtomicBool>);

impl StopToken {
    /// A token not yet stopped.
    pub fn new() -> StopToken {
        StopToken::default()
    }

    /// Asks the scan to stop: it stops sending, reports what it found
    /// (unfinished hosts as interrupted) and ends with
    /// [`model::ScanSummary::interrupted`] set.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The flag itself, for signal handlers (`signal_hook::flag`).
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}

/// One port scan of a run: a technique over a protocol's ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phase {
    /// The technique.
    pub technique: Technique,
    /// The protocol its ports belong to.
    pub proto: Protocol,
    /// The ports (protocol numbers for `-sO`), sorted.
    pub ports: Vec<u16>,
}

/// A checked scan, ready to run.
pub struct Scan {
    config: ScanConfig,
    targets: TargetList,
    technique: Technique,
    discovery_technique: Technique,
    pings: Option<Vec<PingProbe>>,
    phases: Vec<Phase>,
    probe_db: Option<Arc<ProbeDb>>,
    os_db: Option<Arc<portolan_os::Database>>,
    warnings: Vec<String>,
    runtime: Option<tokio::runtime::Handle>,
    raw: Option<Arc<RawContext>>,
}

/// At most this many bad lines of a `--versiondb` file are listed in the
/// warnings.
const SHOWN_PARSE_ERRORS: usize = 10;

/// The targets `config` names, as a scan takes them: parsed, the
/// exclusions taken out, a wide scan without the special-purpose ranges no
/// target names (ZMap's blocklist), and checked against the scope; with
/// the warnings to show. Sends nothing (names are resolved). `-sL` lists
/// these.
pub fn scan_targets(config: &ScanConfig) -> Result<(TargetList, Vec<String>), ScanError> {
    let options = portolan_targets::TargetOptions {
        prefer_ipv6: config.prefer_ipv6,
    };
    let mut targets =
        TargetList::parse_with(&config.targets, &config.excludes, &SystemResolver, options)?;
    let mut warnings = Vec::new();
    let skipped = targets.exclude_special_purpose();
    if !skipped.is_empty() {
        let list: Vec<String> = skipped.iter().map(ToString::to_string).collect();
        warnings.push(format!(
            "wide scan: skipping special-purpose ranges no target names: {} \
             (name one as a target to scan it)",
            list.join(", ")
        ));
    }
    if let Some(scope) = &config.scope {
        targets.check_scope(scope)?;
    }
    Ok((targets, warnings))
}

impl Scan {
    /// Checks `config`: reads the targets (resolving names), leaves the
    /// special-purpose ranges out of a wide scan, refuses targets outside
    /// `--scope` ([`portolan_targets::TargetError::OutOfScope`]), chooses the
    /// technique (SYN with raw sockets, connect without, unless one was
    /// asked for), checks the privileges the techniques need, and loads
    /// the probe database for version detection. Sends nothing.
    pub fn new(mut config: ScanConfig) -> Result<Scan, ScanError> {
        if config.offline {
            offline_settings(&mut config)?;
        }
        let (targets, mut warnings) = scan_targets(&config)?;
        // The idle scan holds a receiver for its whole length, beside the
        // one its discovery borrows.
        let receivers = 1 + usize::from(config.technique == Some(Technique::Idle));
        // The raw sockets, opened at most once: where the technique is
        // chosen by privileges, opening them is the test.
        let mut raw: Option<Arc<RawContext>> = None;
        let try_raw = |raw: &mut Option<Arc<RawContext>>| {
            if raw.is_none() {
                *raw = RawContext::open_with_receivers(receivers).ok();
            }
            raw.is_some()
        };
        let technique = match choose_technique(&config)? {
            Some(technique) => technique,
            None if config.offline => Technique::Tcp(TcpScan::Syn),
            None if try_raw(&mut raw) => Technique::Tcp(TcpScan::Syn),
            None => Technique::Connect,
        };
        // Discovery sends raw probes whenever it may, whatever the port
        // scan technique (as nmap: `-sT` as root still pings with raw
        // packets).
        let discovery_technique = match technique {
            Technique::Connect if !config.skip_discovery && try_raw(&mut raw) => {
                Technique::Tcp(TcpScan::Syn)
            }
            Technique::Idle => Technique::Tcp(TcpScan::Syn),
            other => other,
        };
        let pings = discovery_probes(&config, discovery_technique)?;
        let phases = phases(&config, technique);
        let techniques: Vec<Technique> = std::iter::once(technique)
            .chain(phases.iter().map(|p| p.technique))
            .collect();
        config
            .check_sources(&techniques)
            .map_err(ScanError::Settings)?;
        let probe_db = if config.version.enabled {
            Some(load_db(&config.version, &mut warnings)?)
        } else {
            None
        };
        let os_db = if config.os.enabled {
            Some(Arc::new(os::load_db(&config.os)?))
        } else {
            None
        };
        // The raw sockets, once: what the technique asked for, a phase or
        // discovery sends raw (the first of them names the error); -O
        // always does.
        let raw_flag = config
            .technique
            .into_iter()
            .chain(phases.iter().map(|p| p.technique))
            .chain(pings.is_some().then_some(discovery_technique))
            .find(|t| t.needs_raw_sockets())
            .map(Technique::flag)
            .or(config.os.enabled.then_some("-O"));
        let raw = match (raw, raw_flag) {
            // Offline: no socket at all.
            _ if config.offline => None,
            (Some(opened), Some(_)) => Some(opened),
            (_, Some(flag)) => Some(
                RawContext::open_with_receivers(receivers)
                    .map_err(|source| ScanError::Privileges { flag, source })?,
            ),
            (_, None) => None,
        };
        Ok(Scan {
            config,
            targets,
            technique,
            discovery_technique,
            pings,
            phases,
            probe_db,
            os_db,
            warnings,
            runtime: None,
            raw,
        })
    }

    /// Runs raw scans on `context`'s sockets (shared with other scans)
    /// instead of those [`Scan::new`] opened.
    pub fn with_raw_context(mut self, context: Arc<RawContext>) -> Scan {
        if self.raw.is_some() {
            self.raw = Some(context);
        }
        self
    }

    /// The raw sockets the scan uses, when it sends raw packets: once
    /// [`Scan::new`] has returned, the caller may give its privileges up.
    pub fn raw_context(&self) -> Option<&Arc<RawContext>> {
        self.raw.as_ref()
    }

    /// Runs version detection on `runtime` (one the caller owns) instead
    /// of a runtime of the scan's own.
    pub fn with_runtime(mut self, runtime: tokio::runtime::Handle) -> Scan {
        self.runtime = Some(runtime);
        self
    }

    /// What the checks found worth saying that did not stop the scan (bad
    /// lines of a `--versiondb` file, skipped).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The targets, as read.
    pub fn targets(&self) -> &TargetList {
        &self.targets
    }

    /// The technique of the TCP scan (or of the only scan).
    pub fn technique(&self) -> Technique {
        self.technique
    }

    /// The port scans of the run, in the order they run for each group of
    /// hosts; empty with `-sn`.
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// Runs the scan to its end, or until `stop`, handing every event to
    /// `sink`; returns the summary also sent as [`Event::Finished`].
    pub fn run(
        self,
        sink: &mut dyn EventSink,
        stop: &StopToken,
    ) -> Result<model::ScanSummary, ScanError> {
        run::run(self, sink, stop)
    }
}

/// What `--offline` implies and refuses: no discovery before a port scan
/// and no reverse DNS (nothing answers); a raw technique only, and no
/// version detection (no port is open).
fn offline_settings(config: &mut ScanConfig) -> Result<(), ScanError> {
    if let Some(t) = config
        .technique
        .filter(|t| !t.needs_raw_sockets() || *t == Technique::Idle)
    {
        return Err(ScanError::Settings(format!(
            "--offline runs a raw-packet scan's engine, not {}",
            t.flag()
        )));
    }
    if config.version.enabled {
        return Err(ScanError::Settings(
            "--offline: no port answers, so -sV has nothing to detect".into(),
        ));
    }
    if !config.ping_only {
        config.skip_discovery = true;
    }
    config.reverse_dns = ReverseDns::Never;
    Ok(())
}

/// The technique to run as asked (decoys and custom flags ask for SYN);
/// `None` to choose by privileges: SYN when raw sockets open, connect
/// otherwise (nmap's default).
fn choose_technique(config: &ScanConfig) -> Result<Option<Technique>, ScanError> {
    let privileged = |flag: &'static str| {
        if config.offline {
            return Ok(());
        }
        raw::check_privileges().map_err(|source| ScanError::Privileges { flag, source })
    };
    if !config.decoys.is_empty() && config.technique == Some(Technique::Connect) {
        return Err(ScanError::Unsupported(
            "-D: decoys need a raw-packet scan (-sS, -sA, ...), not -sT".into(),
        ));
    }
    if config.scanflags.is_some() && config.technique.is_none() {
        // Custom flags are read as a SYN scan's answers by default.
        privileged("--scanflags")?;
        return Ok(Some(Technique::Tcp(TcpScan::Syn)));
    }
    match config.technique {
        // A raw technique's privileges are proved by opening its sockets
        // (`RawContext::open`, under its flag): no socket is opened twice.
        Some(technique) => Ok(Some(technique)),
        None if !config.decoys.is_empty() => {
            privileged("-D")?;
            Ok(Some(Technique::Tcp(TcpScan::Syn)))
        }
        None => Ok(None),
    }
}

/// The port scans: TCP unless another protocol's scan is the only one
/// asked for, then UDP, SCTP and IP protocols as asked; none with `-sn`.
fn phases(config: &ScanConfig, technique: Technique) -> Vec<Phase> {
    let mut phases = Vec::new();
    if config.ping_only {
        return phases;
    }
    let mut add = |technique: Technique, proto: Protocol, ports: &[u16]| {
        phases.push(Phase {
            technique,
            proto,
            ports: ports.to_vec(),
        });
    };
    if config.scans_tcp() {
        add(technique, Protocol::Tcp, &config.tcp_ports);
    }
    if config.udp {
        add(Technique::Udp, Protocol::Udp, &config.udp_ports);
    }
    if let Some(probe) = config.sctp {
        add(Technique::Sctp(probe), Protocol::Sctp, &config.sctp_ports);
    }
    if config.ip_protocols {
        add(
            Technique::IpProtocol,
            Protocol::Ip,
            &config.ip_protocol_numbers,
        );
    }
    phases
}

/// The host discovery probes of this run, or `None` with `-Pn`: those
/// asked for, else nmap's defaults (`-PR` on a directly attached segment
/// and `-PE -PS443 -PA80 -PP` elsewhere with raw sockets, connects to
/// ports 80 and 443 without).
fn discovery_probes(
    config: &ScanConfig,
    technique: Technique,
) -> Result<Option<Vec<PingProbe>>, ScanError> {
    if config.skip_discovery {
        return Ok(None);
    }
    if !config.pings.is_empty() {
        if technique == Technique::Connect
            && let Some(p) = config
                .pings
                .iter()
                .find(|p| !matches!(p, PingProbe::Syn(_)))
        {
            return Err(ScanError::Unsupported(format!(
                "{p:?} discovery probes need raw sockets (root or CAP_NET_RAW); \
                 without them only -PS (as connects) works"
            )));
        }
        return Ok(Some(config.pings.clone()));
    }
    Ok(Some(if technique.needs_raw_sockets() {
        let mut probes = vec![
            PingProbe::Echo,
            PingProbe::Syn(443),
            PingProbe::Ack(80),
            PingProbe::Timestamp,
        ];
        // On a directly attached segment, ARP or ND replaces them all.
        if !config.disable_arp_ping && !config.send_ip {
            probes.insert(0, PingProbe::Neighbour);
        }
        probes
    } else {
        vec![PingProbe::Syn(80), PingProbe::Syn(443)]
    }))
}

/// Loads Portolan's database, or the `--versiondb` file; bad lines of a
/// user's file are listed in `warnings` and skipped.
fn load_db(config: &VersionConfig, warnings: &mut Vec<String>) -> Result<Arc<ProbeDb>, ScanError> {
    let parsed = match &config.db {
        None => portolan_service::builtin(),
        Some(path) => portolan_service::load(path).map_err(|source| ScanError::ProbeFile {
            path: path.clone(),
            source,
        })?,
    };
    let name = config
        .db
        .as_ref()
        .map_or("the built-in probe database".to_string(), |p| {
            p.display().to_string()
        });
    for e in parsed.errors.iter().take(SHOWN_PARSE_ERRORS) {
        warnings.push(format!("{name}: {e}"));
    }
    if parsed.errors.len() > SHOWN_PARSE_ERRORS {
        warnings.push(format!(
            "{name}: {} more bad lines skipped",
            parsed.errors.len() - SHOWN_PARSE_ERRORS
        ));
    }
    if parsed.db.probes.is_empty() {
        return Err(ScanError::NoProbes {
            name,
            warnings: std::mem::take(warnings),
        });
    }
    Ok(Arc::new(parsed.db))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_transport::raw::Decoy;

    #[test]
    fn a_bad_target_is_a_usage_error_naming_it() {
        let Err(e) = Scan::new(ScanConfig::new(["198.18.0.0/33"])) else {
            panic!("a /33 was accepted");
        };
        assert!(e.is_usage(), "{e:?}");
        assert!(e.to_string().contains("198.18.0.0/33"), "{e}");
    }

    #[test]
    fn decoys_with_a_connect_scan_are_refused_before_anything_is_sent() {
        let mut config = ScanConfig::new(["127.0.0.1"]).with_technique(Technique::Connect);
        config.decoys = vec![Decoy::Me, Decoy::Addr("198.18.0.9".parse().unwrap())];
        let Err(e) = Scan::new(config) else {
            panic!("decoys with -sT were accepted");
        };
        assert!(matches!(e, ScanError::Unsupported(_)), "{e:?}");
        assert!(!e.is_usage());
    }

    #[test]
    fn a_connect_scan_needs_no_privilege_and_plans_its_phases() {
        let config = ScanConfig::new(["127.0.0.1"])
            .with_technique(Technique::Connect)
            .with_tcp_ports([22, 80])
            .without_discovery()
            .without_reverse_dns();
        let scan = Scan::new(config).unwrap();
        assert_eq!(scan.technique(), Technique::Connect);
        assert_eq!(
            scan.phases(),
            [Phase {
                technique: Technique::Connect,
                proto: Protocol::Tcp,
                ports: vec![22, 80],
            }]
        );
        assert_eq!(scan.targets().host_count(), 1);
        assert!(scan.warnings().is_empty());
    }

    #[test]
    fn an_empty_probe_file_is_refused_with_its_bad_lines() {
        let path = std::env::temp_dir().join(format!("portolan-scan-db-{}", std::process::id()));
        std::fs::write(&path, "match x m/y/\n").unwrap();
        let mut config = ScanConfig::new(["127.0.0.1"]).with_technique(Technique::Connect);
        config.version.enabled = true;
        config.version.db = Some(path.clone());
        let result = Scan::new(config);
        std::fs::remove_file(&path).unwrap();
        let Err(ScanError::NoProbes { warnings, .. }) = result else {
            panic!("an empty database was accepted");
        };
        assert!(
            warnings.iter().any(|w| w.contains("line 1")),
            "{warnings:?}"
        );
    }
}
