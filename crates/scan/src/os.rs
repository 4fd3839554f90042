//! The OS detection phase (`-O`): after a group's port scans, the hosts
//! up are fingerprinted side by side, and each report gets its matches,
//! the tests missing, the observed fingerprint and a passive hint.
//!
//! The probes go to the first open TCP port, the first closed TCP port
//! and the first closed UDP port the scan found; without a closed port a
//! likely-closed one is picked, as nmap does, and the report says so.
//! With `--osscan-limit`, hosts without an open and a closed TCP port
//! are skipped.
//!
//! The probes run on the scan engine, as a scan whose "ports" are the
//! probes' indexes (`portolan_transport::probe::os`): keyed numbers,
//! windows, retries (`--max-os-tries`), `--max-rate` and `--host-timeout`
//! as for any scan. Two runs: the six SEQ SYNs, [`SEQ_SPACING`] apart per
//! host (the scheduler's per-host delay; every host side by side), then
//! the other ten probes at once. The answers' packets are kept by an
//! observer; the tests and the matching are `portolan-os`'s.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portolan_engine::{
    HostReport, HostStatus, PortState, Probe, Reply, ScanPlan, Scheduler, TimingConfig,
};
use portolan_model::{OsClass, OsDetection, OsHint, OsMatch, OsPortUsed, WallClock};
use portolan_os::probes::PROBE_COUNT;
use portolan_os::{Database, ProbeSet, passive, score};
use portolan_targets::{Protocol, Target, TargetList};
use portolan_transport::context::RawContext;
use portolan_transport::cookie::CookieJar;
use portolan_transport::probe::os::OsProbes;
use portolan_transport::raw::{self, RawError, RawOptions, RawProbes, RawStats};
use portolan_transport::{Control, Observer};

use crate::{OsConfig, ScanConfig, ScanError};

/// The closed TCP port tried when the scan found none (nmap picks one at
/// random; a fixed unlikely one keeps runs comparable).
const LIKELY_CLOSED_TCP: u16 = 31_337;
/// The closed UDP port tried when the scan found none.
const LIKELY_CLOSED_UDP: u16 = 40_125;
/// The time between a host's SEQ probes (nmap's: the ISN and timestamp
/// rates are measured over it).
pub const SEQ_SPACING: Duration = Duration::from_millis(100);

/// One host to fingerprint.
struct OsTarget {
    addr: Ipv4Addr,
    open: Option<u16>,
    closed: u16,
    closed_udp: u16,
}

/// What one host answered.
struct HostAnswers {
    /// The probes sent.
    set: ProbeSet,
    /// When each SYN left, from the phase's start.
    seq_sent: [Duration; 6],
    /// The answer to each probe, as an IPv4 packet.
    replies: [Option<Vec<u8>>; PROBE_COUNT],
}

impl HostAnswers {
    /// The answers as `portolan-os` reads them.
    fn answers(&self) -> portolan_os::Answers<'_> {
        portolan_os::Answers {
            set: self.set,
            seq_sent: self.seq_sent,
            replies: std::array::from_fn(|i| self.replies[i].as_deref()),
        }
    }
}

/// Keeps the OS probes' answers while the engine runs them, and stops
/// the run when asked.
struct OsWatch<'a> {
    hosts: Vec<HostAnswers>,
    by_addr: HashMap<Ipv4Addr, usize>,
    start: Instant,
    stop: &'a dyn Fn() -> bool,
}

impl OsWatch<'_> {
    fn host(&mut self, addr: IpAddr) -> Option<&mut HostAnswers> {
        let IpAddr::V4(addr) = addr else {
            return None;
        };
        let &h = self.by_addr.get(&addr)?;
        self.hosts.get_mut(h)
    }
}

impl Observer for OsWatch<'_> {
    fn tick(&mut self, _: &Scheduler, _: Instant) -> Control {
        if (self.stop)() {
            Control::Interrupt
        } else {
            Control::Continue
        }
    }

    fn answered(&mut self, target: IpAddr, port: u16, _: &Reply, packet: &[u8]) {
        let Some(host) = self.host(target) else {
            return;
        };
        // Our address, as the host answered it: the route's choice, which
        // the tests need (U1's returned checksum covers it).
        if let Some(&[a, b, c, d]) = packet.get(16..20) {
            host.set.source = Ipv4Addr::new(a, b, c, d);
        }
        if let Some(slot) = host.replies.get_mut(usize::from(port)) {
            // A probe is answered once: the engine stops at its first
            // answer.
            slot.get_or_insert_with(|| packet.to_vec());
        }
    }

    fn sent(&mut self, probe: &Probe, now: Instant) {
        let since = now.saturating_duration_since(self.start);
        if let Some(host) = self.host(probe.addr)
            && let Some(at) = host.seq_sent.get_mut(usize::from(probe.port))
        {
            *at = since;
        }
    }
}

/// What the OS phase's runs share.
struct OsRun<'a> {
    config: &'a ScanConfig,
    context: &'a Arc<RawContext>,
    probes: OsProbes,
    key: u64,
}

impl OsRun<'_> {
    /// Runs probes `ports` (indexes) to `targets` on the engine, `spacing`
    /// at least between a host's probes.
    fn probes(
        &self,
        targets: &[Target],
        ports: std::ops::Range<u16>,
        spacing: Duration,
        watch: &mut OsWatch<'_>,
    ) -> Result<RawStats, RawError> {
        let (config, key) = (self.config, self.key);
        if targets.is_empty() {
            return Ok(RawStats::default());
        }
        let timing = TimingConfig {
            scan_delay: config.timing.scan_delay.max(spacing),
            ..config.timing.clone()
        }
        .with_max_retries(config.os.tries.max(1) - 1);
        let plan = ScanPlan {
            targets: TargetList::from_targets(targets),
            ports: ports.collect(),
            proto: Protocol::Tcp,
            silent_state: PortState::Filtered,
            seed: key,
            // Each probe to every host in turn: the SYNs of all hosts go in
            // rounds.
            randomize: false,
            max_hostgroup: None,
            first_ports: Vec::new(),
            timing,
            pace_to_answers: false,
            sources: 1,
            discovery: false,
            clock: WallClock::now(),
        };
        let mut scheduler = Scheduler::new(plan, Instant::now());
        let options = RawOptions {
            probes: RawProbes::Os(self.probes.clone()),
            decoys: Vec::new(),
            // One source per host (the probe set's): `-S`'s first.
            sources: config
                .sources
                .iter()
                .copied()
                .filter(IpAddr::is_ipv4)
                .take(1)
                .collect(),
            source_port: None,
            device: config.interface.clone(),
            send_ip: config.send_ip,
            key: (key, key.rotate_left(29)),
        };
        raw::run(&mut scheduler, &options, self.context, watch, &mut |_| {})
    }
}

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
    let key = config.seed.unwrap_or_else(crate::run::random_seed);
    let jar = CookieJar::new(key, key.rotate_left(29));
    let sets: Vec<ProbeSet> = targets
        .iter()
        .map(|t| OsProbes::keyed_set(&jar, t.addr, t.open.unwrap_or(0), t.closed, t.closed_udp))
        .collect();
    let probes = OsProbes::new(
        sets.clone(),
        targets.iter().map(|t| t.open.is_some()).collect(),
    );
    let mut watch = OsWatch {
        by_addr: targets
            .iter()
            .enumerate()
            .map(|(n, t)| (t.addr, n))
            .collect(),
        hosts: sets
            .into_iter()
            .map(|set| HostAnswers {
                set,
                seq_sent: [Duration::ZERO; 6],
                replies: Default::default(),
            })
            .collect(),
        start: Instant::now(),
        stop,
    };
    let with_open: Vec<Target> = targets
        .iter()
        .filter(|t| t.open.is_some())
        .map(|t| Target::from_addr(t.addr.into()))
        .collect();
    let every: Vec<Target> = targets
        .iter()
        .map(|t| Target::from_addr(t.addr.into()))
        .collect();
    let seq = portolan_os::probes::SEQ as u16;
    let ie = portolan_os::probes::IE as u16;
    let run = OsRun {
        config,
        context,
        probes,
        key,
    };
    let mut stats = run
        .probes(&with_open, seq..ie, SEQ_SPACING, &mut watch)
        .map_err(ScanError::Os)?;
    if !stop() {
        let rest = run
            .probes(&every, ie..PROBE_COUNT as u16, Duration::ZERO, &mut watch)
            .map_err(ScanError::Os)?;
        stats.sent += rest.sent;
        stats.received += rest.received;
        stats.matched += rest.matched;
        stats.ignored += rest.ignored;
        stats.dropped += rest.dropped;
    }
    let answers = watch.hosts;
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
            let now = std::time::SystemTime::now();
            let scan = portolan_os::fingerprint::ScanLine {
                version: concat!("portolan-", env!("CARGO_PKG_VERSION")).to_string(),
                month_day: portolan_model::time::month_day_utc(now),
                open: (host.set.open != 0).then_some(host.set.open),
                closed: host.set.closed,
                closed_udp: host.set.closed_udp,
                private: host.set.target.is_private(),
                distance: portolan_os::compute::distance(&host.answers()),
                good: d.warnings.is_empty() && c.missing.is_empty(),
                unix_time: portolan_model::time::unix_seconds(now),
                platform: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
            };
            d.fingerprint = format!("{scan}\n{observed}");
            // The OS probes' SYN-ACK answers a SYN with every option, so
            // it tells more than the port scan's (MSS only).
            d.hint = hint.or(d.hint.take());
        }
    }
    Ok(stats)
}
