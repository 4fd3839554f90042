//! The OS detection phase (`-O`): after a group's port scans, the hosts
//! up are fingerprinted side by side, and each report gets its matches,
//! the tests missing, the observed fingerprint and a passive hint.
//!
//! The probes go to the first open TCP port, the first closed TCP port
//! and the first closed UDP port the scan found; without a closed port a
//! likely-closed one is picked, as nmap does, and the report says so.
//! With `--osscan-limit`, hosts without an open and a closed TCP port
//! are skipped. Pure choices here; the sending is
//! `portolan_transport::os`, the tests and the matching `portolan-os`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use portolan_engine::{HostReport, HostStatus, PortState};
use portolan_model::{OsClass, OsDetection, OsHint, OsMatch, OsPortUsed};
use portolan_os::{Database, passive, score};
use portolan_targets::Protocol;
use portolan_transport::context::RawContext;
use portolan_transport::os::{OsOptions, OsTarget};
use portolan_transport::raw::RawStats;

use crate::{OsConfig, ScanConfig, ScanError};

/// The closed TCP port tried when the scan found none (nmap picks one at
/// random; a fixed unlikely one keeps runs comparable).
const LIKELY_CLOSED_TCP: u16 = 31_337;
/// The closed UDP port tried when the scan found none.
const LIKELY_CLOSED_UDP: u16 = 40_125;
/// Hosts fingerprinted side by side at most.
const OS_BATCH: usize = 256;
/// How long to wait for the last answers of a try.
const ANSWER_WAIT: Duration = Duration::from_millis(800);

/// Passive hints from the port scan: each host's first SYN-ACK (else its
/// first RST), read as p0f reads them. One map lookup per TCP answer; the
/// packet is read only for a host's first answer, and for its first
/// SYN-ACK after RSTs.
#[derive(Debug, Default)]
pub(crate) struct PassiveHints {
    by_host: HashMap<IpAddr, passive::Evidence>,
}

impl PassiveHints {
    /// Files the answer `packet` from `target`.
    pub(crate) fn answered(&mut self, target: IpAddr, syn_ack: bool, packet: &[u8]) {
        match self.by_host.get(&target) {
            Some(e) if e.syn_ack || !syn_ack => {}
            _ => {
                if let Some(e) = passive::Evidence::read(packet) {
                    self.by_host.insert(target, e);
                }
            }
        }
    }

    /// Puts `report`'s hint, if any, into its report.
    pub(crate) fn attach(&mut self, report: &mut HostReport) {
        if let Some(e) = self.by_host.remove(&report.target.addr) {
            let h = passive::hint(e);
            report.extra.os_detection.get_or_insert_default().hint = Some(OsHint {
                family: h.family.map(str::to_string),
                evidence: h.evidence.summary(),
            });
        }
    }
}

/// Loads Portolan's database, or the `--osdb` file.
pub(crate) fn load_db(config: &OsConfig) -> Result<Database, ScanError> {
    match &config.db {
        Some(path) => Database::load(path).map_err(ScanError::OsDb),
        None => Database::parse(portolan_os::OWN_DB).map_err(ScanError::OsDb),
    }
}

fn first(report: &HostReport, proto: Protocol, state: PortState) -> Option<u16> {
    report
        .ports
        .iter()
        .find(|p| p.proto == proto && p.state == state)
        .map(|p| p.port)
}

/// Fingerprints the hosts of `reports` that are up; returns the packet
/// counters.
pub(crate) fn run(
    config: &ScanConfig,
    db: &Arc<Database>,
    context: &Arc<RawContext>,
    reports: &mut [HostReport],
    stop: &dyn Fn() -> bool,
) -> Result<RawStats, ScanError> {
    let mut chosen = Vec::new();
    let mut targets = Vec::new();
    for (n, report) in reports.iter_mut().enumerate() {
        if !matches!(report.status, HostStatus::Up(_)) {
            continue;
        }
        let IpAddr::V4(addr) = report.target.addr else {
            let hint = report.extra.os_detection.take().and_then(|d| d.hint);
            report.extra.os_detection = Some(OsDetection {
                active: true,
                warnings: vec!["OS detection is IPv4 only".into()],
                hint,
                ..OsDetection::default()
            });
            continue;
        };
        let open = first(report, Protocol::Tcp, PortState::Open);
        let closed = first(report, Protocol::Tcp, PortState::Closed);
        let closed_udp = first(report, Protocol::Udp, PortState::Closed);
        let mut warnings = Vec::new();
        if open.is_none() || closed.is_none() {
            warnings.push(
                "OSScan results may be unreliable because we could not find at least 1 open and 1 closed port"
                    .to_string(),
            );
            if config.os.limit {
                let hint = report.extra.os_detection.take().and_then(|d| d.hint);
                report.extra.os_detection = Some(OsDetection {
                    active: true,
                    warnings: vec!["skipped by --osscan-limit: no open and closed TCP port".into()],
                    hint,
                    ..OsDetection::default()
                });
                continue;
            }
        }
        let mut ports_used = Vec::new();
        if let Some(port) = open {
            ports_used.push(OsPortUsed {
                state: PortState::Open,
                proto: Protocol::Tcp,
                port,
            });
        }
        if let Some(port) = closed {
            ports_used.push(OsPortUsed {
                state: PortState::Closed,
                proto: Protocol::Tcp,
                port,
            });
        }
        if let Some(port) = closed_udp {
            ports_used.push(OsPortUsed {
                state: PortState::Closed,
                proto: Protocol::Udp,
                port,
            });
        }
        // The port scan's passive hint, when it had one, is kept.
        let hint = report.extra.os_detection.take().and_then(|d| d.hint);
        report.extra.os_detection = Some(OsDetection {
            active: true,
            ports_used,
            warnings,
            hint,
            ..OsDetection::default()
        });
        chosen.push(n);
        targets.push(OsTarget {
            addr,
            open,
            closed: closed.unwrap_or(LIKELY_CLOSED_TCP),
            closed_udp: closed_udp.unwrap_or(LIKELY_CLOSED_UDP),
        });
    }
    if targets.is_empty() {
        return Ok(RawStats::default());
    }
    let options = OsOptions {
        device: config.interface.clone(),
        // `-S` with one address: that one. With several (claimed only
        // while a port scan runs), the routing table's own.
        source: match config.sources[..] {
            [IpAddr::V4(a)] => Some(a),
            _ => None,
        },
        tries: config.os.tries.max(1),
        timeout: ANSWER_WAIT.max(config.timing.initial_rtt_timeout),
        key: config.seed.unwrap_or_else(crate::run::random_seed),
        max_rate: config.timing.max_rate,
    };
    // Side by side in batches: a batch's answers (up to 15 per host)
    // must fit the receive ring while the schedule waits.
    let mut answers = Vec::with_capacity(targets.len());
    let mut stats = RawStats::default();
    for batch in targets.chunks(OS_BATCH) {
        if stop() {
            break;
        }
        let (found, sent) =
            portolan_transport::os::run(context, &options, batch, stop).map_err(ScanError::Os)?;
        answers.extend(found);
        stats.sent += sent.sent;
        stats.received += sent.received;
        stats.matched += sent.matched;
        stats.ignored += sent.ignored;
    }
    let threshold = if config.os.guess {
        0.0
    } else {
        score::GUESS_THRESHOLD
    };
    for (n, host) in chosen.into_iter().zip(&answers) {
        let observed = portolan_os::compute_fingerprint(&host.answers());
        let c = portolan_os::classify(db, &observed, threshold, config.os.guess);
        let report = &mut reports[n];
        report.extra.os = c
            .matches
            .iter()
            .map(|s| {
                let r = &db.fingerprints[s.reference];
                OsMatch {
                    name: r.name.clone(),
                    accuracy: s.percent(),
                    cpe: r.cpe.clone(),
                    line: r.line as u32,
                    classes: r
                        .classes
                        .iter()
                        .map(|class| OsClass {
                            vendor: class.vendor.clone(),
                            family: class.family.clone(),
                            generation: class.generation.clone(),
                            device_type: class.device_type.clone(),
                            accuracy: s.percent(),
                            cpe: r.cpe.clone(),
                        })
                        .collect(),
                }
            })
            .collect();
        // The hint from the OS probes: the first SYN-ACK, else a RST from
        // the closed port.
        let hint = [0usize, 12, 13, 14]
            .iter()
            .filter_map(|&i| host.replies[i].as_deref())
            .find_map(passive::Evidence::read)
            .map(|e| {
                let h = passive::hint(e);
                OsHint {
                    family: h.family.map(str::to_string),
                    evidence: h.evidence.summary(),
                }
            });
        if let Some(d) = report.extra.os_detection.as_mut() {
            // The likely-closed UDP port, once its port unreachable proved
            // it closed (nmap lists the UDP port it used too).
            let udp_used = d.ports_used.iter().any(|p| p.proto == Protocol::Udp);
            if !udp_used && host.replies[portolan_os::probes::U1].is_some() {
                d.ports_used.push(OsPortUsed {
                    state: PortState::Closed,
                    proto: Protocol::Udp,
                    port: host.set.closed_udp,
                });
            }
            d.perfect = c.perfect;
            d.missing = c.missing.iter().map(|s| s.to_string()).collect();
            d.fingerprint = observed.to_string();
            // The OS probes' SYN-ACK answers a SYN with every option, so
            // it tells more than the port scan's (MSS only).
            d.hint = hint.or(d.hint.take());
        }
    }
    Ok(stats)
}
