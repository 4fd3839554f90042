//! The run of a checked scan: host discovery in groups, each group's port
//! scans one technique after another on the transports, the hosts of a
//! group merged across techniques, and every finished host sent through
//! the enrichers to the caller's sink.
//!
//! Everything here runs on the caller's thread; the transports' loops
//! call back on every turn (at least every 50 ms), which is when progress
//! is reported, enriched hosts are passed on and the stop token is read.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use portolan_engine::{
    HostReport, HostStatus, HostTimes, PortOutcome, PortResult, PortState, Reason, ScanEvent,
    ScanPlan, ScanStats, Scheduler,
};
use portolan_model::{PacketStats, ScanId, ScanInfo, ScanSummary, WallClock};
use portolan_targets::{Permutation, Protocol, Target, TargetList};
use portolan_transport::connect::{self, ConnectOptions};
use portolan_transport::idle::{IdleOptions, IdleScan};
use portolan_transport::offline;
use portolan_transport::raw::{
    self, PingProbe, RawOptions, RawProbes, RawStats, TcpFlags, TcpScan,
};
use portolan_transport::{Control, Observer};

use crate::enrich::{Chain, Enricher, Services};
use crate::event::{Event, EventSink, HostUp, PhaseStart, Progress};
use crate::names::Names;
use crate::{Phase, RawContext, Scan, ScanConfig, ScanError, StopToken, Technique, VERSION};

/// How many of the most common ports each host is probed on first.
const FIRST_PORTS: usize = 10;

/// Targets per group when host discovery runs, or several techniques
/// share the hosts, unless `--max-hostgroup` says otherwise.
const HOST_GROUP: u128 = 65_536;

/// Retransmissions of a host discovery probe at most.
const DISCOVERY_RETRIES: u8 = 2;

pub(crate) fn run(
    scan: Scan,
    sink: &mut dyn EventSink,
    stop: &StopToken,
) -> Result<ScanSummary, ScanError> {
    let Scan {
        config,
        targets,
        technique,
        discovery_technique,
        pings,
        phases,
        probe_db,
        os_db,
        runtime,
        raw,
        ..
    } = scan;
    // Enrichers, in the order a host goes through them.
    let mut own_runtime = None;
    let mut stages: Vec<Box<dyn Enricher>> = Vec::new();
    // The SYN proxy check comes first: version detection then probes
    // only ports with a service behind them.
    let proxy_check = config.proxy_check
        && !config.offline
        && !config.ping_only
        && !config.tcp_ports.is_empty()
        && matches!(technique, Technique::Connect | Technique::Tcp(TcpScan::Syn));
    let runtime = if probe_db.is_some() || proxy_check {
        Some(match runtime {
            Some(handle) => handle,
            None => {
                // Matching is CPU work: one worker per core.
                let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .enable_all()
                    .build()
                    .map_err(|e| ScanError::Detection(portolan_service::DetectError::Runtime(e)))?;
                let handle = rt.handle().clone();
                own_runtime = Some(rt);
                handle
            }
        })
    } else {
        None
    };
    if let (true, Some(handle)) = (proxy_check, &runtime) {
        let binding = crate::middlebox::Binding {
            device: config.interface.clone(),
            source: match config.sources[..] {
                [one] => Some(one),
                _ => None,
            },
        };
        stages.push(Box::new(crate::middlebox::ProxyCheck::new(
            handle.clone(),
            binding,
            stop.flag(),
        )));
    }
    if let (Some(db), Some(handle)) = (probe_db, runtime) {
        stages.push(Box::new(Services::new(
            db,
            &config.version,
            handle,
            stop.flag(),
        )?));
    }
    if let Some(names) = Names::start(&config)? {
        stages.push(Box::new(names));
    }

    // -sI: the zombie is checked before anything else is sent, so an
    // unusable one costs one error.
    let mut packets = None;
    let mut notes = Vec::new();
    let idle = if technique == Technique::Idle && !config.ping_only {
        let context = raw.as_ref().ok_or_else(|| {
            ScanError::Unsupported("-sI: the idle scan has no raw sockets".into())
        })?;
        let (scan, note, sent) = open_idle(&config, &targets, context)?;
        notes.push(note);
        add_packets(&mut packets, Some(sent));
        Some(RefCell::new(scan))
    } else {
        None
    };

    let clock = WallClock::now();
    let (start, start_wall) = (clock.instant, clock.wall);
    let first = phases.first().cloned().unwrap_or(Phase {
        technique,
        proto: Protocol::Tcp,
        ports: Vec::new(),
    });
    let info = ScanInfo {
        id: ScanId::new(),
        version: VERSION.to_string(),
        args: config.command_line.clone(),
        start: start_wall,
        started_at: start,
        scan_type: first.technique.nmap_name(),
        scanflags: match first.technique {
            Technique::Tcp(_) => config.scanflags.map(nmap_flag_names),
            _ => None,
        },
        proto: first.proto,
        port_count: first.ports.len(),
        ports: first.ports,
        more_scans: phases
            .iter()
            .skip(1)
            .map(|p| (p.technique.nmap_name(), p.proto, p.ports.clone()))
            .collect(),
        notes,
        version_detection: config.version.enabled,
        open_ports_amended: proxy_check,
    };
    sink.event(Event::Started(&info));

    let runner = Runner {
        config: &config,
        discovery_technique,
        stop,
        emitter: RefCell::new(Emitter {
            sink,
            chain: Chain::new(stages),
            delta: [0; 6],
            stop: stop.clone(),
            ranges: Default::default(),
        }),
        raw,
        idle,
        hints: RefCell::default(),
    };

    let phase_count = phases.len();
    // Targets go in groups, as nmap's host groups: with discovery, each
    // group's port scan starts as soon as its discovery is done; with
    // several techniques, a group's hosts wait for the others' ports. A
    // wide scan never holds more than a group. The groups are taken in
    // the scan's keyed order, so none is one network's block.
    let group_size = config
        .max_hostgroup
        .map_or(HOST_GROUP, |n| u128::from(n.max(1)));
    let grouped = (pings.is_some() || phase_count > 1) && targets.host_count() > group_size;
    let group_count = if grouped {
        targets.host_count().div_ceil(group_size) as usize
    } else {
        1
    };
    let order = config.randomize.then(|| {
        Permutation::new(
            targets.host_count(),
            config.seed.unwrap_or_else(random_seed),
        )
    });
    let mut stats = ScanStats::default();
    for g in 0..group_count {
        if stop.is_stopped() {
            break;
        }
        let group = if !grouped {
            targets.clone()
        } else {
            let start = g as u128 * group_size;
            let end = (start + group_size).min(targets.host_count());
            let members: Vec<Target> = (start..end)
                .filter_map(|i| {
                    let index = order.as_ref().map_or(i, |o| o.apply(i));
                    targets.host_at(index)
                })
                .filter(|t| !targets.is_excluded(t.addr))
                .collect();
            TargetList::from_targets(&members)
        };
        let (group_targets, found) = match &pings {
            None => (group, None),
            Some(pings) => {
                let (found, sent) = runner.discover(group, pings.clone(), clock)?;
                add_packets(&mut packets, sent);
                (TargetList::from_targets(&found.up), Some(found))
            }
        };
        let mut group_stats = found.as_ref().map(|f| f.stats).unwrap_or_default();
        // With several techniques, a group's hosts are held until each
        // has run, then merged into one report per host.
        // -O holds them too: OS detection runs on the group's hosts side
        // by side once their ports are known.
        let held = (phase_count > 1 || os_db.is_some()).then(|| RefCell::new(Vec::new()));
        for (n, phase) in phases.iter().enumerate() {
            if stop.is_stopped() {
                break;
            }
            let plan = ScanPlan {
                targets: group_targets.clone(),
                ports: phase.ports.clone(),
                proto: phase.proto,
                silent_state: phase.technique.silent_state(config.defeat_icmp_ratelimit),
                seed: config.seed.unwrap_or_else(random_seed),
                randomize: config.randomize,
                max_hostgroup: config.max_hostgroup,
                // The most commonly open ports first, as nmap does: an
                // early answer gives the round-trip time, and short
                // timeouts, sooner.
                first_ports: if config.randomize {
                    portolan_targets::top_ports(phase.proto, FIRST_PORTS)
                } else {
                    Vec::new()
                },
                timing: config.timing.clone(),
                discovery: false,
                pace_to_answers: phase
                    .technique
                    .paces_to_answers(config.defeat_icmp_ratelimit),
                sources: config.source_lanes(phase.technique),
                clock,
            };
            let (phase_stats, sent) =
                runner.run(phase.technique, plan, found.as_ref(), held.as_ref())?;
            add_packets(&mut packets, sent);
            group_stats = if n == 0 && found.is_none() {
                phase_stats
            } else {
                add_stats(group_stats, &phase_stats, found.is_some() || n > 0)
            };
        }
        if let Some(held) = held {
            let mut reports = merge_reports(held.into_inner());
            if let (Some(db), Some(context)) = (&os_db, &runner.raw)
                && !stop.is_stopped()
            {
                let sent =
                    crate::os::run(&config, db, context, &mut reports, &|| stop.is_stopped())?;
                add_packets(&mut packets, Some(sent));
            }
            let mut emitter = runner.emitter.borrow_mut();
            for report in reports {
                emitter.host(report);
            }
        }
        stats = if g == 0 {
            group_stats
        } else {
            let mut total = add_stats(stats, &group_stats, true);
            total.hosts_done += group_stats.hosts_done;
            total.hosts_up += group_stats.hosts_up;
            total
        };
    }
    let Runner { emitter, .. } = runner;
    let mut emitter = emitter.into_inner();
    emitter.finish(!stop.is_stopped());
    // What enrichers changed (UDP ports an answer proved open) moves in
    // the summary's counts too.
    for (count, delta) in stats.ports_by_state.iter_mut().zip(emitter.delta) {
        *count = count.saturating_add_signed(delta);
    }
    let elapsed = start.elapsed();
    let interrupted = stop.is_stopped();
    let min_rate_missed = if interrupted {
        None
    } else {
        portolan_model::MinRateMissed::judge(
            config.timing.min_rate,
            stats.probes_sent,
            elapsed,
            stats.min_rate_starved,
        )
    };
    let summary = ScanSummary {
        stats,
        elapsed,
        end: SystemTime::now(),
        interrupted,
        packets,
        middleboxes: emitter.ranges.findings(),
        min_rate_missed,
    };
    emitter.sink.event(Event::Finished(&summary));
    if let Some(rt) = own_runtime {
        rt.shutdown_background();
    }
    Ok(summary)
}

/// Passes events to the caller's sink, and finished hosts through the
/// enrichers first.
struct Emitter<'s> {
    sink: &'s mut dyn EventSink,
    chain: Chain,
    /// Per state, the ports enrichers moved into it (negative: out of it).
    delta: [i64; 6],
    /// Ends a wait for held hosts.
    stop: StopToken,
    /// Every host that went out, tallied to tell a transparent proxy.
    ranges: crate::middlebox::RangeProxies,
}

impl Emitter<'_> {
    /// A host is done: to the enrichers, and out when they are done.
    fn host(&mut self, report: HostReport) {
        self.count(&report, -1);
        let mut out = Vec::new();
        self.chain.submit(report, Instant::now(), &mut out);
        let stop = self.stop.clone();
        self.chain.keep_bounded(&mut out, &|| stop.is_stopped());
        self.emit(out);
    }

    /// Hosts the enrichers are done with by `now`.
    fn poll(&mut self, now: Instant) {
        let mut out = Vec::new();
        self.chain.ready(now, &mut out);
        self.emit(out);
    }

    /// The scan is over: every held host, waited for when `wait`.
    fn finish(&mut self, wait: bool) {
        let out = self.chain.finish(wait);
        self.emit(out);
    }

    fn emit(&mut self, reports: Vec<HostReport>) {
        for report in reports {
            self.count(&report, 1);
            self.ranges.observe(&report);
            self.sink.event(Event::Host(&report));
        }
    }

    fn count(&mut self, report: &HostReport, sign: i64) {
        for (d, c) in self.delta.iter_mut().zip(report.state_counts()) {
            *d += sign * c as i64;
        }
    }
}

/// What host discovery found.
struct Discovered {
    /// The hosts up, in the order they were found.
    up: Vec<Target>,
    /// Each up host's evidence and timing, for its port scan report.
    evidence: HashMap<IpAddr, (HostStatus, Option<u8>, HostTimes)>,
    /// The discovery's counters.
    stats: ScanStats,
}

/// Runs schedulers on the chosen transport and passes their events on.
struct Runner<'a, 's> {
    config: &'a ScanConfig,
    /// Raw when permitted, else connect.
    discovery_technique: Technique,
    stop: &'a StopToken,
    emitter: RefCell<Emitter<'s>>,
    /// The raw sockets, when the scan sends raw packets.
    raw: Option<Arc<RawContext>>,
    /// `-sI`: the idle scan, its zombie checked.
    idle: Option<RefCell<IdleScan>>,
    /// Passive OS hints from the TCP answers, until their host is done.
    hints: RefCell<crate::os::PassiveHints>,
}

impl Runner<'_, '_> {
    /// Host discovery over `targets` with `pings`. With `-sn` every host is
    /// reported as it is found; otherwise only the down ones are (the up
    /// ones are reported after their port scan).
    fn discover(
        &self,
        targets: TargetList,
        pings: Vec<PingProbe>,
        clock: WallClock,
    ) -> Result<(Discovered, Option<RawStats>), ScanError> {
        let config = self.config;
        let connect = self.discovery_technique == Technique::Connect;
        let ports: Vec<u16> = if connect {
            pings
                .iter()
                .filter_map(|p| match p {
                    PingProbe::Syn(port) => Some(*port),
                    _ => None,
                })
                .collect()
        } else {
            (0..pings.len() as u16).collect()
        };
        let plan = ScanPlan {
            targets,
            ports,
            proto: Protocol::Tcp,
            silent_state: PortState::Filtered,
            seed: config.seed.unwrap_or_else(random_seed),
            randomize: config.randomize,
            max_hostgroup: config.max_hostgroup,
            first_ports: Vec::new(),
            pace_to_answers: false,
            sources: config.source_lanes(self.discovery_technique),
            // A host is up if any of several probes is answered: two
            // retransmissions of each are plenty (nmap's discovery
            // retransmits little too), and absent hosts end sooner.
            timing: config
                .timing
                .clone()
                .with_max_retries(config.timing.max_retries.min(DISCOVERY_RETRIES)),
            discovery: true,
            clock,
        };
        let found = RefCell::new(Discovered {
            up: Vec::new(),
            evidence: HashMap::new(),
            stats: ScanStats::default(),
        });
        let ping_only = config.ping_only;
        let mut on_host = |report: &mut HostReport| -> bool {
            // Discovery's "ports" are its probes: not for the reports.
            report.ports.clear();
            if let HostStatus::Up(reason) = report.status {
                let mut found = found.borrow_mut();
                found.up.push(report.target.clone());
                found.evidence.insert(
                    report.target.addr,
                    (report.status, report.reason_ttl, report.times),
                );
                self.emitter.borrow_mut().sink.event(Event::HostUp(&HostUp {
                    addr: report.target.addr,
                    reason,
                    reason_ttl: report.reason_ttl,
                }));
                ping_only
            } else {
                true
            }
        };
        let pings = if connect { Vec::new() } else { pings };
        let (stats, sent) = self.run_with(self.discovery_technique, plan, pings, &mut on_host)?;
        let mut found = found.into_inner();
        // Discovery's probes are not ports.
        found.stats = ScanStats {
            ports_done: 0,
            ports_by_state: Default::default(),
            ..stats
        };
        Ok((found, sent))
    }

    /// Runs a port scan plan with `technique`; host reports get the
    /// discovery's evidence, and go to `held` when other techniques still
    /// have to scan them.
    fn run(
        &self,
        technique: Technique,
        plan: ScanPlan,
        found: Option<&Discovered>,
        held: Option<&RefCell<Vec<HostReport>>>,
    ) -> Result<(ScanStats, Option<RawStats>), ScanError> {
        let mut on_host = |report: &mut HostReport| -> bool {
            self.hints.borrow_mut().attach(report);
            if let Some((status, ttl, times)) =
                found.and_then(|f| f.evidence.get(&report.target.addr))
                && report.status == HostStatus::Up(Reason::UserSet)
            {
                report.status = *status;
                report.reason_ttl = *ttl;
                if report.times.srtt.is_none() {
                    report.times = *times;
                }
            }
            if let Some(held) = held {
                held.borrow_mut().push(report.clone());
                return false;
            }
            true
        };
        if technique == Technique::Idle {
            return self.run_idle(plan, &mut on_host);
        }
        self.run_with(technique, plan, Vec::new(), &mut on_host)
    }

    /// Runs `plan` as an idle scan, host after host, through the zombie
    /// checked at the start.
    fn run_idle(
        &self,
        plan: ScanPlan,
        on_host: &mut dyn FnMut(&mut HostReport) -> bool,
    ) -> Result<(ScanStats, Option<RawStats>), ScanError> {
        let Some(cell) = &self.idle else {
            return Err(ScanError::Unsupported(
                "-sI: the idle scan was not set up".into(),
            ));
        };
        let mut scan = cell.borrow_mut();
        let before = scan.stats();
        // Ports in the scan's keyed order (unless -r), as the other scans.
        let ports: Vec<u16> = if plan.randomize {
            let order = Permutation::new(plan.ports.len() as u128, plan.seed);
            (0..plan.ports.len() as u128)
                .map(|i| plan.ports[order.apply(i) as usize])
                .collect()
        } else {
            plan.ports.clone()
        };
        let planned = plan.targets.host_count() * ports.len() as u128;
        let mut stats = ScanStats::default();
        let stop = || self.stop.is_stopped();
        for target in plan.targets.iter() {
            if stop() {
                break;
            }
            let IpAddr::V4(addr) = target.addr else {
                return Err(ScanError::Unsupported(format!(
                    "-sI: the idle scan works over IPv4 only, and {} is IPv6",
                    target.addr
                )));
            };
            let started = SystemTime::now();
            let verdicts = scan
                .scan_host(addr, &ports, &stop)
                .map_err(ScanError::Idle)?;
            // Stopped part way: the ports settled so far are reported, and
            // the host as interrupted.
            let complete = verdicts.len() == ports.len();
            let mut ports: Vec<PortOutcome> = verdicts
                .iter()
                .map(|v| PortOutcome {
                    port: v.port,
                    proto: Protocol::Tcp,
                    state: if v.open {
                        PortState::Open
                    } else {
                        plan.silent_state
                    },
                    reason: if v.open {
                        Reason::IpidChange
                    } else {
                        Reason::NoIpidChange
                    },
                    reason_ttl: None,
                    tries: v.tries,
                })
                .collect();
            ports.sort_by_key(|p| p.port);
            let mut emitter = self.emitter.borrow_mut();
            for outcome in &ports {
                stats.ports_done += 1;
                stats.ports_by_state[outcome.state.index()] += 1;
                emitter.sink.event(Event::Port(&PortResult {
                    addr: target.addr,
                    outcome: *outcome,
                }));
            }
            stats.hosts_done += 1;
            stats.hosts_up += u64::from(complete);
            let mut report = HostReport {
                target,
                status: if complete {
                    HostStatus::Up(Reason::UserSet)
                } else {
                    HostStatus::Interrupted
                },
                reason_ttl: None,
                mac: None,
                ports,
                times: HostTimes {
                    srtt: None,
                    rttvar: None,
                    timeout: scan.timeout(),
                    paced: None,
                },
                started,
                finished: SystemTime::now(),
                services: Vec::new(),
                extra: Default::default(),
            };
            if on_host(&mut report) {
                emitter.host(report);
            }
            let now = Instant::now();
            emitter.sink.event(Event::Progress(&Progress {
                stats,
                planned,
                in_flight: 0,
                packets: None,
                at: now,
            }));
            emitter.poll(now);
        }
        let now = scan.stats();
        let sent = RawStats {
            sent: now.sent - before.sent,
            received: now.received - before.received,
            matched: now.matched - before.matched,
            ignored: now.ignored - before.ignored,
            dropped: now.dropped - before.dropped,
        };
        stats.probes_sent = sent.sent;
        stats.replies = sent.matched;
        Ok((stats, Some(sent)))
    }

    /// Runs `plan` to its end; `on_host` may amend each host report and
    /// says whether to pass it on.
    fn run_with(
        &self,
        technique: Technique,
        plan: ScanPlan,
        pings: Vec<PingProbe>,
        on_host: &mut dyn FnMut(&mut HostReport) -> bool,
    ) -> Result<(ScanStats, Option<RawStats>), ScanError> {
        let config = self.config;
        let discovery = plan.discovery;
        let mut scheduler = Scheduler::new(plan, Instant::now());
        self.emitter
            .borrow_mut()
            .sink
            .event(Event::PhaseStarted(&PhaseStart {
                technique: (!discovery).then_some(technique),
                planned: scheduler.planned_ports(),
            }));
        let mut observer = Watch {
            emitter: &self.emitter,
            stop: self.stop,
            packets: None,
            hints: (!discovery).then_some(&self.hints),
        };
        let mut sink_event = |event: ScanEvent| match event {
            // Discovery's probes are not ports.
            ScanEvent::Port(_) if discovery => {}
            ScanEvent::Port(port) => self.emitter.borrow_mut().sink.event(Event::Port(&port)),
            ScanEvent::HostDone(mut report) => {
                if on_host(&mut report) {
                    self.emitter.borrow_mut().host(*report);
                }
            }
        };
        let mut sent = None;
        match technique {
            Technique::Connect => {
                let connect_options = ConnectOptions {
                    source: config.sources.first().copied(),
                    device: config.interface.clone(),
                };
                connect::run(
                    &mut scheduler,
                    &connect_options,
                    &mut observer,
                    &mut sink_event,
                )
                .map_err(ScanError::Connect)?;
            }
            Technique::Idle => {
                return Err(ScanError::Unsupported(
                    "-sI: the idle scan runs on its own engine".into(),
                ));
            }
            Technique::Tcp(_) | Technique::Udp | Technique::Sctp(_) | Technique::IpProtocol => {
                let seed = random_seed();
                let what = if !pings.is_empty() {
                    "host discovery".to_string()
                } else {
                    technique.nmap_name().to_uppercase()
                };
                let probes = match technique {
                    _ if !pings.is_empty() => RawProbes::Discovery(pings),
                    Technique::Tcp(scan) => RawProbes::Tcp {
                        scan,
                        flags: config.scanflags.map(TcpFlags::from_bits),
                    },
                    Technique::Sctp(probe) => RawProbes::Sctp(probe),
                    Technique::Udp => RawProbes::Udp,
                    _ => RawProbes::IpProtocols,
                };
                let raw_options = RawOptions {
                    probes,
                    sources: config.sources.clone(),
                    source_port: config.source_port,
                    device: config.interface.clone(),
                    send_ip: config.send_ip,
                    decoys: config.decoys.clone(),
                    key: (seed, seed.rotate_left(29) ^ random_seed()),
                };
                if config.offline {
                    let stats =
                        offline::run(&mut scheduler, &raw_options, &mut observer, &mut sink_event)
                            .map_err(|source| ScanError::Raw { what, source })?;
                    sent = Some(stats);
                    self.emitter.borrow_mut().sink.event(Event::PhaseFinished);
                    return Ok((*scheduler.stats(), sent));
                }
                let Some(context) = &self.raw else {
                    return Err(ScanError::Unsupported(format!(
                        "{}: the scan has no raw sockets",
                        technique.flag()
                    )));
                };
                let stats = raw::run(
                    &mut scheduler,
                    &raw_options,
                    context,
                    &mut observer,
                    &mut sink_event,
                )
                .map_err(|source| ScanError::Raw { what, source })?;
                sent = Some(stats);
            }
        }
        self.emitter.borrow_mut().sink.event(Event::PhaseFinished);
        Ok((*scheduler.stats(), sent))
    }
}

/// What the transports report to while they scan: progress to the sink,
/// enriched hosts passed on, and whether to stop.
struct Watch<'r, 's> {
    emitter: &'r RefCell<Emitter<'s>>,
    stop: &'r StopToken,
    packets: Option<PacketStats>,
    /// Where the port scan's TCP answers go for passive OS hints.
    hints: Option<&'r RefCell<crate::os::PassiveHints>>,
}

impl Observer for Watch<'_, '_> {
    fn tick(&mut self, scheduler: &Scheduler, now: Instant) -> Control {
        let mut emitter = self.emitter.borrow_mut();
        emitter.sink.event(Event::Progress(&Progress {
            stats: *scheduler.stats(),
            planned: scheduler.planned_ports(),
            in_flight: scheduler.in_flight(),
            packets: self.packets,
            at: now,
        }));
        emitter.poll(now);
        if self.stop.is_stopped() {
            Control::Interrupt
        } else {
            Control::Continue
        }
    }

    fn packets(&mut self, stats: &RawStats) {
        self.packets = Some(PacketStats {
            sent: stats.sent,
            received: stats.received,
            ignored: stats.ignored,
            dropped: stats.dropped,
        });
    }

    fn answered(
        &mut self,
        target: IpAddr,
        _port: u16,
        reply: &portolan_engine::Reply,
        packet: &[u8],
    ) {
        if let Some(hints) = self.hints
            && matches!(reply.reason, Reason::SynAck | Reason::Reset)
        {
            hints
                .borrow_mut()
                .answered(target, reply.reason == Reason::SynAck, packet);
        }
    }
}

/// A random key, from the standard library's per-process random state
/// and the clock.
pub(crate) fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// TCP control bits named as nmap's XML writes `--scanflags`: `FINSYN`.
fn nmap_flag_names(bits: u8) -> String {
    const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
    NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// Opens the idle scan's sockets and checks its zombie (`-sI`): the scan,
/// the line nmap prints about the zombie, and the packets the check took.
fn open_idle(
    config: &ScanConfig,
    targets: &TargetList,
    context: &Arc<RawContext>,
) -> Result<(IdleScan, String, RawStats), ScanError> {
    let Some(zombie) = &config.idle else {
        return Err(ScanError::Settings("-sI: no zombie given".into()));
    };
    let addr = match zombie.host.parse::<std::net::Ipv4Addr>() {
        Ok(addr) => addr,
        Err(_) => {
            use std::net::ToSocketAddrs;
            (zombie.host.as_str(), zombie.port)
                .to_socket_addrs()
                .ok()
                .into_iter()
                .flatten()
                .find_map(|a| match a.ip() {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                })
                .ok_or_else(|| {
                    ScanError::Settings(format!(
                        "-sI: cannot resolve the zombie \"{}\" to an IPv4 address",
                        zombie.host
                    ))
                })?
        }
    };
    let first = match targets.iter().next().map(|t| t.addr) {
        Some(IpAddr::V4(first)) => first,
        Some(other) => {
            return Err(ScanError::Settings(format!(
                "-sI: the idle scan works over IPv4 only, and {other} is IPv6"
            )));
        }
        None => return Err(ScanError::Unsupported("-sI: no targets to scan".into())),
    };
    let seed = random_seed();
    let options = IdleOptions {
        zombie: addr,
        probe_port: zombie.port,
        source: config.sources.first().copied(),
        source_port: config.source_port,
        device: config.interface.clone(),
        send_ip: config.send_ip,
        timing: config.timing.clone(),
        key: (seed, seed.rotate_left(29) ^ random_seed()),
    };
    let mut scan = IdleScan::open(options, context).map_err(ScanError::Zombie)?;
    let report = scan.check_zombie(first).map_err(ScanError::Zombie);
    let sent = scan.stats();
    let report = report?;
    let note = format!(
        "Idle scan using zombie {} ({addr}:{}); Class: {}",
        zombie.host,
        zombie.port,
        report.class.name()
    );
    Ok((scan, note, sent))
}

/// The counters of one more scan phase added to `total`; the hosts are
/// counted once (by discovery, or by the first phase).
fn add_stats(mut total: ScanStats, phase: &ScanStats, hosts_counted: bool) -> ScanStats {
    if !hosts_counted {
        total.hosts_done = phase.hosts_done;
        total.hosts_up = phase.hosts_up;
    }
    total.ports_done += phase.ports_done;
    for (t, p) in total.ports_by_state.iter_mut().zip(phase.ports_by_state) {
        *t += p;
    }
    total.probes_sent += phase.probes_sent;
    total.retransmissions += phase.retransmissions;
    total.replies += phase.replies;
    total.late_replies += phase.late_replies;
    total.hosts_paced += phase.hosts_paced;
    total.hosts_paced_globally += phase.hosts_paced_globally;
    total
}

/// One report per host from the reports of several phases (TCP, then
/// UDP): the first report of each host, with every phase's ports.
fn merge_reports(reports: Vec<HostReport>) -> Vec<HostReport> {
    let mut merged: Vec<HostReport> = Vec::new();
    let mut index: HashMap<IpAddr, usize> = HashMap::new();
    for report in reports {
        match index.get(&report.target.addr) {
            Some(&i) => {
                let into = &mut merged[i];
                into.ports.extend(report.ports);
                into.finished = into.finished.max(report.finished);
                into.times.paced = into.times.paced.max(report.times.paced);
            }
            None => {
                index.insert(report.target.addr, merged.len());
                merged.push(report);
            }
        }
    }
    for report in &mut merged {
        report.ports.sort_by_key(|p| (p.proto as u8, p.port));
    }
    merged
}

fn add_packets(total: &mut Option<PacketStats>, more: Option<RawStats>) {
    if let Some(more) = more {
        let t = total.get_or_insert_with(Default::default);
        t.sent += more.sent;
        t.received += more.received;
        t.ignored += more.ignored;
        t.dropped += more.dropped;
    }
}
