//! The `portolan` binary: flags in, a scan run, results out.
//!
//! This is the only crate that talks to the terminal. It resolves the
//! command line ([`flags`], [`args`]), builds the targets and the scan
//! plan, runs the transport, and feeds the engine's events to the sinks
//! the user asked for. Exit status: 0 on success (also when standard
//! output closes early), 1 on a runtime failure, 2 on bad usage, 130 when
//! interrupted.

mod args;
mod detection;
mod flags;
mod names;
mod outputs;
mod progress;
mod report;

use std::io::{self, BufWriter, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use anyhow::Context;
use portolan_engine::{
    HostReport, HostStatus, PortOutcome, PortResult, PortState, Reason, ScanEvent, ScanPlan,
    ScanStats, Scheduler, TimingConfig,
};
use portolan_output::{OutputOptions, ScanInfo, ScanSummary};
use portolan_targets::{Protocol, SystemResolver, TargetList};
use portolan_transport::Control;
use portolan_transport::connect::{self, ConnectOptions};
use portolan_transport::idle::{IdleOptions, IdleScan};
use portolan_transport::raw::{self, PingProbe, RawOptions, RawProbes, SctpProbe, TcpScan};

use crate::args::{Config, Mode, ScanKind, UsageError};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How many of the most common ports each host is probed on first.
const FIRST_PORTS: usize = 10;

/// Targets per group when host discovery runs (see `scan`), unless
/// `--max-hostgroup` says otherwise.
const DISCOVERY_GROUP: u128 = 65_536;

/// Retransmissions of a host discovery probe at most.
const DISCOVERY_RETRIES: u8 = 2;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            if err
                .chain()
                .filter_map(|e| e.downcast_ref::<io::Error>())
                .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("portolan: error: {err:#}");
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if argv.get(1).is_some_and(|a| a == "report") {
        return report::run(&argv[2..], VERSION);
    }
    let parsed =
        flags::parse(argv.iter().skip(1).cloned()).map_err(|e| UsageError(e.to_string()))?;
    let read_list =
        |path: &str| portolan_targets::read_target_file(path).map_err(|e| e.to_string());
    let config = args::resolve(&parsed, &read_list)?;
    match config.mode {
        Mode::Help => {
            print!("{}", flags::help_text(VERSION));
            Ok(ExitCode::SUCCESS)
        }
        Mode::Version => {
            println!("Portolan version {VERSION}");
            Ok(ExitCode::SUCCESS)
        }
        Mode::Man => {
            print!("{}", flags::man_page(VERSION));
            Ok(ExitCode::SUCCESS)
        }
        Mode::List => list_targets(&config),
        Mode::Scan => scan(&config, argv),
    }
}

fn build_targets(config: &Config) -> Result<TargetList, UsageError> {
    let options = portolan_targets::TargetOptions {
        prefer_ipv6: config.prefer_ipv6,
    };
    TargetList::parse_with(&config.targets, &config.excludes, &SystemResolver, options)
        .map_err(|e| UsageError(e.to_string()))
}

/// `-sL`: one line per target, nothing sent.
fn list_targets(config: &Config) -> anyhow::Result<ExitCode> {
    let targets = build_targets(config)?;
    let start = Instant::now();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    writeln!(
        out,
        "Starting Portolan {VERSION} at {}",
        portolan_output::time::minute_utc(SystemTime::now())
    )?;
    let mut count: u64 = 0;
    for t in targets.iter() {
        count += 1;
        match &t.name {
            Some(name) => writeln!(
                out,
                "Portolan scan report for {} ({})",
                portolan_output::escape::for_terminal(name),
                t.addr
            )?,
            None => writeln!(out, "Portolan scan report for {}", t.addr)?,
        }
    }
    writeln!(
        out,
        "Portolan done: {count} IP address{} (0 hosts up) scanned in {:.2} seconds",
        if count == 1 { "" } else { "es" },
        start.elapsed().as_secs_f64()
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn random_seed() -> u64 {
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

/// The technique to run: as asked, or SYN when raw sockets are permitted
/// and connect otherwise (nmap's default).
fn choose_technique(config: &Config) -> anyhow::Result<ScanKind> {
    if !config.decoys.is_empty() && config.scan == Some(ScanKind::Connect) {
        anyhow::bail!("-D: decoys need a raw-packet scan (-sS, -sA, ...), not -sT");
    }
    if config.scanflags.is_some() && config.scan.is_none() {
        // Custom flags are read as a SYN scan's answers by default.
        raw::check_privileges().context("--scanflags")?;
        return Ok(ScanKind::Raw(TcpScan::Syn));
    }
    match config.scan {
        Some(
            kind @ (ScanKind::Raw(_)
            | ScanKind::Udp
            | ScanKind::Sctp(_)
            | ScanKind::IpProtocol
            | ScanKind::Idle),
        ) => {
            raw::check_privileges().context(kind.flag())?;
            Ok(kind)
        }
        Some(ScanKind::Connect) => Ok(ScanKind::Connect),
        None if !config.decoys.is_empty() => {
            raw::check_privileges().context("-D")?;
            Ok(ScanKind::Raw(TcpScan::Syn))
        }
        None => Ok(if raw::check_privileges().is_ok() {
            ScanKind::Raw(TcpScan::Syn)
        } else {
            ScanKind::Connect
        }),
    }
}

fn scan(config: &Config, argv: Vec<String>) -> anyhow::Result<ExitCode> {
    let targets = build_targets(config)?;
    let technique = choose_technique(config)?;
    // Discovery sends raw probes whenever it may, whatever the port scan
    // technique (as nmap: `-sT` as root still pings with raw packets).
    let discovery_technique = match technique {
        ScanKind::Connect if raw::check_privileges().is_ok() => ScanKind::Raw(TcpScan::Syn),
        ScanKind::Idle => ScanKind::Raw(TcpScan::Syn),
        other => other,
    };
    let pings = discovery_probes(config, discovery_technique)?;
    let options = OutputOptions {
        open_only: config.open_only,
        reason: config.reason,
        verbosity: config.verbosity,
    };
    let outputs = outputs::Outputs::new(config, options)?;

    // -sV: the probe database loads before anything is sent.
    let version_db = if config.version.enabled {
        Some(detection::load_db(&config.version)?)
    } else {
        None
    };
    // The port scans: TCP unless -sU is the only scan type, UDP with -sU.
    let mut phases: Vec<(ScanKind, Protocol, Vec<u16>)> = Vec::new();
    if !config.ping_only {
        if config.scans_tcp() {
            phases.push((technique, Protocol::Tcp, config.tcp_ports.clone()));
        }
        if config.udp {
            raw::check_privileges().context("-sU")?;
            phases.push((ScanKind::Udp, Protocol::Udp, config.udp_ports.clone()));
        }
        if let Some(probe) = config.sctp {
            let kind = ScanKind::Sctp(probe);
            raw::check_privileges().context(kind.flag())?;
            phases.push((kind, Protocol::Sctp, config.sctp_ports.clone()));
        }
        if config.ip_protocols {
            raw::check_privileges().context("-sO")?;
            phases.push((
                ScanKind::IpProtocol,
                Protocol::Ip,
                config.ip_protocol_numbers.clone(),
            ));
        }
    }
    // With -sV, or TCP and UDP, finished hosts are held until the end
    // (detection, or their other protocol's ports, still to come).
    let held: std::cell::RefCell<Vec<HostReport>> = Default::default();
    let hold = version_db.is_some() || phases.len() > 1;

    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal ends the process at once.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&interrupted))
            .context("cannot install the signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&interrupted))
            .context("cannot install the signal handler")?;
    }

    // -sI: the zombie is checked before anything else is sent or written,
    // so an unusable one costs one error line.
    let mut packets = None;
    let mut notes = Vec::new();
    let idle = if technique == ScanKind::Idle && !config.ping_only {
        let keep = pings.is_some() || config.udp || config.sctp.is_some();
        let (scan, note, sent) = open_idle(config, &targets, keep)?;
        notes.push(note);
        add_packets(&mut packets, Some(sent));
        Some(std::cell::RefCell::new(scan))
    } else {
        None
    };

    let start_wall = SystemTime::now();
    let start = Instant::now();
    let (first_kind, first_proto, first_ports) =
        phases
            .first()
            .cloned()
            .unwrap_or((technique, Protocol::Tcp, Vec::new()));
    let info = ScanInfo {
        version: VERSION,
        args: argv,
        start: start_wall,
        started_at: start,
        scan_type: scan_type(first_kind),
        scanflags: match first_kind {
            ScanKind::Raw(_) => config.scanflags.map(nmap_flag_names),
            _ => None,
        },
        proto: first_proto,
        port_count: first_ports.len(),
        ports: first_ports,
        more_scans: phases
            .iter()
            .skip(1)
            .map(|(kind, proto, ports)| (scan_type(*kind), *proto, ports.clone()))
            .collect(),
        notes,
        version_detection: version_db.is_some(),
    };
    outputs.begin(&info)?;
    let engine = Engine {
        config,
        technique,
        discovery_technique,
        outputs: &outputs,
        interrupted: &interrupted,
        start,
        held: hold.then_some(&held),
        more_groups: std::cell::Cell::new(false),
        idle,
    };

    let phase_count = phases.len();
    // With discovery, targets go in groups, as nmap's host groups: each
    // group's port scan starts as soon as its discovery is done, and a
    // wide sweep never holds more than a group. The groups are taken in
    // the scan's keyed order, so none is one network's block.
    let group_size = config
        .max_hostgroup
        .map_or(DISCOVERY_GROUP, |n| u128::from(n.max(1)));
    let grouped = pings.is_some() && targets.host_count() > group_size;
    let group_count = if grouped {
        targets.host_count().div_ceil(group_size) as usize
    } else {
        1
    };
    let order = config.randomize.then(|| {
        portolan_targets::Permutation::new(
            targets.host_count(),
            config.seed.unwrap_or_else(random_seed),
        )
    });
    let mut stats = ScanStats::default();
    for g in 0..group_count {
        if interrupted.load(Ordering::Relaxed) {
            break;
        }
        let group = if !grouped {
            targets.clone()
        } else {
            let start = g as u128 * group_size;
            let end = (start + group_size).min(targets.host_count());
            let members: Vec<portolan_targets::Target> = (start..end)
                .filter_map(|i| {
                    let index = order.as_ref().map_or(i, |o| o.apply(i));
                    targets.host_at(index)
                })
                .filter(|t| !targets.is_excluded(t.addr))
                .collect();
            TargetList::from_targets(&members)
        };
        engine.more_groups.set(g + 1 < group_count);
        let (group_targets, found) = match &pings {
            None => (group, None),
            Some(pings) => {
                let (found, sent) = engine.discover(group, pings.clone())?;
                add_packets(&mut packets, sent);
                (TargetList::from_targets(&found.up), Some(found))
            }
        };
        let mut group_stats = found.as_ref().map(|f| f.stats).unwrap_or_default();
        for (n, (kind, proto, ports)) in phases.iter().cloned().enumerate() {
            if interrupted.load(Ordering::Relaxed) {
                break;
            }
            let plan = ScanPlan {
                targets: group_targets.clone(),
                ports,
                proto,
                silent_state: match kind {
                    ScanKind::Raw(scan) => scan.silent_state(),
                    ScanKind::Connect => PortState::Filtered,
                    // Not waiting for rate-limited port unreachables,
                    // silence may be a closed port too (nmap's reading).
                    ScanKind::Udp | ScanKind::IpProtocol if config.defeat_icmp_ratelimit => {
                        PortState::ClosedFiltered
                    }
                    ScanKind::Udp => PortState::OpenFiltered,
                    ScanKind::Sctp(SctpProbe::Init) => PortState::Filtered,
                    ScanKind::Sctp(_) | ScanKind::IpProtocol => PortState::OpenFiltered,
                    ScanKind::Idle => PortState::ClosedFiltered,
                },
                seed: config.seed.unwrap_or_else(random_seed),
                randomize: config.randomize,
                max_hostgroup: config.max_hostgroup,
                // The most commonly open ports first, as nmap does: an
                // early answer gives the round-trip time, and short
                // timeouts, sooner.
                first_ports: if config.randomize {
                    portolan_targets::top_ports(proto, FIRST_PORTS)
                } else {
                    Vec::new()
                },
                timing: config.timing.clone(),
                discovery: false,
                // UDP answers (ICMP port unreachables above all) are rate
                // limited by most systems.
                // Protocol unreachables likewise.
                pace_to_answers: matches!(kind, ScanKind::Udp | ScanKind::IpProtocol)
                    && !config.defeat_icmp_ratelimit,
            };
            let more_raw = n + 1 < phase_count;
            let (phase_stats, sent) = engine.run(kind, plan, found.as_ref(), more_raw)?;
            add_packets(&mut packets, sent);
            group_stats = if n == 0 && found.is_none() {
                phase_stats
            } else {
                add_stats(group_stats, &phase_stats, found.is_some() || n > 0)
            };
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
    if hold && phase_count > 1 {
        let merged = merge_reports(held.take());
        held.replace(merged);
    }
    if version_db.is_none() {
        for report in held.take() {
            outputs.event(&ScanEvent::HostDone(Box::new(report)));
        }
    }
    if let Some(db) = &version_db {
        let mut held = held.into_inner();
        let proved_open =
            detection::enrich(&mut held, db, &config.version, Arc::clone(&interrupted))?;
        // UDP ports an answer proved open move in the summary's counts too.
        let (open, open_filtered) = (PortState::Open.index(), PortState::OpenFiltered.index());
        stats.ports_by_state[open_filtered] -= proved_open.min(stats.ports_by_state[open_filtered]);
        stats.ports_by_state[open] += proved_open;
        for report in held {
            outputs.event(&ScanEvent::HostDone(Box::new(report)));
        }
    }
    outputs.finish_names(!interrupted.load(Ordering::Relaxed));
    if let Some(e) = outputs.take_error() {
        return Err(anyhow::Error::new(e).context("writing results failed"));
    }
    let was_interrupted = interrupted.load(Ordering::Relaxed);
    let summary = ScanSummary {
        stats,
        elapsed: start.elapsed(),
        end: SystemTime::now(),
        interrupted: was_interrupted,
        packets,
    };
    outputs.end(&summary)?;
    Ok(if was_interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
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

/// nmap's name of a scan technique.
fn scan_type(kind: ScanKind) -> &'static str {
    match kind {
        ScanKind::Raw(scan) => scan.name(),
        ScanKind::Connect => "connect",
        ScanKind::Udp => "udp",
        ScanKind::Sctp(SctpProbe::Init) => "sctpinit",
        ScanKind::Sctp(_) => "sctpcookieecho",
        ScanKind::IpProtocol => "ipproto",
        ScanKind::Idle => "idle",
    }
}

/// Opens the idle scan's sockets and checks its zombie (`-sI`): the scan,
/// the line nmap prints about the zombie, and the packets the check took.
fn open_idle(
    config: &Config,
    targets: &TargetList,
    keep_privileges: bool,
) -> anyhow::Result<(IdleScan, String, raw::RawStats)> {
    let Some(zombie) = &config.idle else {
        anyhow::bail!("-sI: no zombie given");
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
                    std::net::IpAddr::V4(v4) => Some(v4),
                    std::net::IpAddr::V6(_) => None,
                })
                .ok_or_else(|| {
                    UsageError(format!(
                        "-sI: cannot resolve the zombie \"{}\" to an IPv4 address",
                        zombie.host
                    ))
                })?
        }
    };
    let first = match targets.iter().next().map(|t| t.addr) {
        Some(std::net::IpAddr::V4(first)) => first,
        Some(other) => {
            return Err(UsageError(format!(
                "-sI: the idle scan works over IPv4 only, and {other} is IPv6"
            ))
            .into());
        }
        None => anyhow::bail!("-sI: no targets to scan"),
    };
    let seed = random_seed();
    let options = IdleOptions {
        zombie: addr,
        probe_port: zombie.port,
        source: config.source,
        source_port: config.source_port,
        device: config.interface.clone(),
        send_ip: config.send_ip,
        timing: config.timing.clone(),
        key: (seed, seed.rotate_left(29) ^ random_seed()),
        keep_privileges,
    };
    let mut scan = IdleScan::open(options).context("-sI")?;
    let report = scan.check_zombie(first).context("-sI");
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
    total
}

/// One report per host from the reports of several phases (TCP, then
/// UDP): the first report of each host, with every phase's ports.
fn merge_reports(reports: Vec<HostReport>) -> Vec<HostReport> {
    let mut merged: Vec<HostReport> = Vec::new();
    let mut index: std::collections::HashMap<std::net::IpAddr, usize> = Default::default();
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

fn add_packets(total: &mut Option<portolan_output::PacketStats>, more: Option<raw::RawStats>) {
    if let Some(more) = more {
        let t = total.get_or_insert_with(Default::default);
        t.sent += more.sent;
        t.received += more.received;
        t.ignored += more.ignored;
    }
}

/// The host discovery probes of this run, or `None` with `-Pn`: those
/// asked for, else nmap's defaults (`-PR` on a directly attached segment
/// and `-PE -PS443 -PA80 -PP` elsewhere with raw sockets, connects to
/// ports 80 and 443 without).
fn discovery_probes(
    config: &Config,
    technique: ScanKind,
) -> anyhow::Result<Option<Vec<PingProbe>>> {
    if config.skip_discovery {
        return Ok(None);
    }
    if !config.pings.is_empty() {
        if technique == ScanKind::Connect
            && let Some(p) = config
                .pings
                .iter()
                .find(|p| !matches!(p, PingProbe::Syn(_)))
        {
            anyhow::bail!(
                "{p:?} discovery probes need raw sockets (root or CAP_NET_RAW); \
                 without them only -PS (as connects) works"
            );
        }
        return Ok(Some(config.pings.clone()));
    }
    Ok(Some(match technique {
        ScanKind::Raw(_)
        | ScanKind::Udp
        | ScanKind::Sctp(_)
        | ScanKind::IpProtocol
        | ScanKind::Idle => {
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
        }
        ScanKind::Connect => vec![PingProbe::Syn(80), PingProbe::Syn(443)],
    }))
}

/// What host discovery found.
struct Discovered {
    /// The hosts up, in the order they were found.
    up: Vec<portolan_targets::Target>,
    /// Each up host's evidence and timing, for its port scan report.
    evidence: std::collections::HashMap<
        std::net::IpAddr,
        (HostStatus, Option<u8>, portolan_engine::HostTimes),
    >,
    /// The discovery's counters.
    stats: ScanStats,
}

/// Runs schedulers on the chosen transport, with the progress display and
/// the outputs.
struct Engine<'a> {
    config: &'a Config,
    technique: ScanKind,
    /// Raw when permitted, else connect.
    discovery_technique: ScanKind,
    outputs: &'a outputs::Outputs,
    interrupted: &'a AtomicBool,
    start: Instant,
    /// With `-sV`: where port-scanned hosts wait for version detection.
    held: Option<&'a std::cell::RefCell<Vec<HostReport>>>,
    /// Whether more target groups follow this one (raw runs then keep
    /// their privileges for the next).
    more_groups: std::cell::Cell<bool>,
    /// `-sI`: the idle scan, its zombie checked.
    idle: Option<std::cell::RefCell<IdleScan>>,
}

impl Engine<'_> {
    /// Host discovery over `targets` with `pings`. With `-sn` every host is
    /// reported as it is found; otherwise only the down ones are (the up
    /// ones are reported after their port scan).
    fn discover(
        &self,
        targets: TargetList,
        pings: Vec<PingProbe>,
    ) -> anyhow::Result<(Discovered, Option<raw::RawStats>)> {
        let connect = self.discovery_technique == ScanKind::Connect;
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
            seed: self.config.seed.unwrap_or_else(random_seed),
            randomize: self.config.randomize,
            max_hostgroup: self.config.max_hostgroup,
            first_ports: Vec::new(),
            pace_to_answers: false,
            timing: TimingConfig {
                // A host is up if any of several probes is answered: two
                // retransmissions of each are plenty (nmap's discovery
                // retransmits little too), and absent hosts end sooner.
                max_retries: self.config.timing.max_retries.min(DISCOVERY_RETRIES),
                ..self.config.timing.clone()
            },
            discovery: true,
        };
        let found = std::cell::RefCell::new(Discovered {
            up: Vec::new(),
            evidence: Default::default(),
            stats: ScanStats::default(),
        });
        let ping_only = self.config.ping_only;
        let mut on_host = |report: &mut HostReport| -> bool {
            // Discovery's "ports" are its probes: not for the reports.
            report.ports.clear();
            if let HostStatus::Up(_) = report.status {
                let mut found = found.borrow_mut();
                found.up.push(report.target.clone());
                found.evidence.insert(
                    report.target.addr,
                    (report.status, report.reason_ttl, report.times),
                );
                ping_only
            } else {
                true
            }
        };
        let pings = if connect { Vec::new() } else { pings };
        // Raw discovery keeps its privileges for a raw port scan after it.
        let keep = self.more_groups.get()
            || !self.config.ping_only
                && (self.config.udp
                    || self.config.sctp.is_some()
                    || self.config.ip_protocols
                    || matches!(self.technique, ScanKind::Raw(_)));
        let (stats, sent) =
            self.run_with(self.discovery_technique, plan, pings, keep, &mut on_host)?;
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
    /// discovery's evidence. `keep_privileges` when another raw scan
    /// follows.
    fn run(
        &self,
        technique: ScanKind,
        plan: ScanPlan,
        found: Option<&Discovered>,
        keep_privileges: bool,
    ) -> anyhow::Result<(ScanStats, Option<raw::RawStats>)> {
        let mut on_host = |report: &mut HostReport| -> bool {
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
            if let Some(held) = self.held {
                held.borrow_mut().push(report.clone());
                return false;
            }
            true
        };
        if technique == ScanKind::Idle {
            return self.run_idle(plan, &mut on_host);
        }
        let keep = keep_privileges || self.more_groups.get();
        self.run_with(technique, plan, Vec::new(), keep, &mut on_host)
    }

    /// Runs `plan` as an idle scan, host after host, through the zombie
    /// checked at the start.
    fn run_idle(
        &self,
        plan: ScanPlan,
        on_host: &mut dyn FnMut(&mut HostReport) -> bool,
    ) -> anyhow::Result<(ScanStats, Option<raw::RawStats>)> {
        let Some(cell) = &self.idle else {
            anyhow::bail!("-sI: the idle scan was not set up");
        };
        let mut scan = cell.borrow_mut();
        let before = scan.stats();
        // Ports in the scan's keyed order (unless -r), as the other scans.
        let ports: Vec<u16> = if plan.randomize {
            let order = portolan_targets::Permutation::new(plan.ports.len() as u128, plan.seed);
            (0..plan.ports.len() as u128)
                .map(|i| plan.ports[order.apply(i) as usize])
                .collect()
        } else {
            plan.ports.clone()
        };
        let mut stats = ScanStats::default();
        let stop = || self.interrupted.load(Ordering::Relaxed) || self.outputs.failed();
        for target in plan.targets.iter() {
            if stop() {
                break;
            }
            let std::net::IpAddr::V4(addr) = target.addr else {
                anyhow::bail!(
                    "-sI: the idle scan works over IPv4 only, and {} is IPv6",
                    target.addr
                );
            };
            let started = Instant::now();
            let verdicts = scan
                .scan_host(addr, &ports, &stop)
                .context("the idle scan failed")?;
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
            for outcome in &ports {
                stats.ports_done += 1;
                stats.ports_by_state[outcome.state.index()] += 1;
                self.outputs.event(&ScanEvent::Port(PortResult {
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
                times: portolan_engine::HostTimes {
                    srtt: None,
                    rttvar: None,
                    timeout: scan.timeout(),
                    paced: None,
                },
                started,
                finished: Instant::now(),
                services: Vec::new(),
            };
            if on_host(&mut report) {
                self.outputs.event(&ScanEvent::HostDone(Box::new(report)));
            }
            self.outputs.tick(&stats, Instant::now());
        }
        let now = scan.stats();
        let sent = raw::RawStats {
            sent: now.sent - before.sent,
            received: now.received - before.received,
            matched: now.matched - before.matched,
            ignored: now.ignored - before.ignored,
        };
        stats.probes_sent = sent.sent;
        stats.replies = sent.matched;
        Ok((stats, Some(sent)))
    }

    /// Runs `plan` to its end; `on_host` may amend each host report and
    /// says whether to write it out.
    fn run_with(
        &self,
        technique: ScanKind,
        plan: ScanPlan,
        pings: Vec<PingProbe>,
        keep_privileges: bool,
        on_host: &mut dyn FnMut(&mut HostReport) -> bool,
    ) -> anyhow::Result<(ScanStats, Option<raw::RawStats>)> {
        let config = self.config;
        let discovery = plan.discovery;
        let mut scheduler = Scheduler::new(plan, Instant::now());
        let show_bar = !config.no_progress && io::stderr().is_terminal();
        let mut progress = progress::Progress::new(
            scheduler.planned_ports(),
            self.start,
            show_bar,
            config.stats_every,
        );
        let bar = progress.bar();
        let outputs = self.outputs;
        let mut observer = ScanObserver {
            progress: &mut progress,
            outputs,
            interrupted: self.interrupted,
        };
        let mut sink_event = |event: ScanEvent| {
            let event = match event {
                // Discovery's probes are not ports.
                ScanEvent::Port(_) if discovery => return,
                ScanEvent::HostDone(mut report) => {
                    if !on_host(&mut report) {
                        return;
                    }
                    ScanEvent::HostDone(report)
                }
                other => other,
            };
            let write = || outputs.event(&event);
            // Keep the progress bar from tearing text written to the terminal.
            match (&bar, &event) {
                (Some(bar), ScanEvent::HostDone(_)) => bar.suspend(write),
                _ => write(),
            }
        };
        let mut sent = None;
        match technique {
            ScanKind::Connect => {
                let connect_options = ConnectOptions {
                    source: config.source,
                    device: config.interface.clone(),
                };
                connect::run(
                    &mut scheduler,
                    &connect_options,
                    &mut observer,
                    &mut sink_event,
                )
                .context("the connect scan failed")?;
            }
            ScanKind::Idle => anyhow::bail!("-sI: the idle scan runs on its own engine"),
            ScanKind::Raw(_) | ScanKind::Udp | ScanKind::Sctp(_) | ScanKind::IpProtocol => {
                let seed = random_seed();
                let what = if !pings.is_empty() {
                    "host discovery".to_string()
                } else {
                    scan_type(technique).to_uppercase()
                };
                let probes = match technique {
                    _ if !pings.is_empty() => RawProbes::Discovery(pings),
                    ScanKind::Raw(scan) => RawProbes::Tcp {
                        scan,
                        flags: config.scanflags.map(raw::TcpFlags::from_bits),
                    },
                    ScanKind::Sctp(probe) => RawProbes::Sctp(probe),
                    ScanKind::Udp => RawProbes::Udp,
                    ScanKind::IpProtocol => RawProbes::IpProtocols,
                    ScanKind::Connect | ScanKind::Idle => {
                        anyhow::bail!("{}: not a raw-packet scan", technique.flag())
                    }
                };
                let raw_options = RawOptions {
                    probes,
                    source: config.source,
                    source_port: config.source_port,
                    device: config.interface.clone(),
                    send_ip: config.send_ip,
                    decoys: config.decoys.clone(),
                    // Discovery keeps them for the port scan that follows.
                    keep_privileges,
                    key: (seed, seed.rotate_left(29) ^ random_seed()),
                };
                let stats = raw::run(&mut scheduler, &raw_options, &mut observer, &mut sink_event)
                    .with_context(|| format!("the {what} scan failed"))?;
                sent = Some(stats);
            }
        }
        progress.finish();
        Ok((*scheduler.stats(), sent))
    }
}

/// What the transports report to while they scan: the progress display,
/// and whether to stop (Ctrl-C, or results that could not be written).
struct ScanObserver<'a> {
    progress: &'a mut progress::Progress,
    outputs: &'a outputs::Outputs,
    interrupted: &'a AtomicBool,
}

impl portolan_transport::Observer for ScanObserver<'_> {
    fn tick(&mut self, scheduler: &Scheduler, now: Instant) -> Control {
        self.progress.update(scheduler, now);
        self.outputs.tick(scheduler.stats(), now);
        let named = self.outputs.names_ready(now);
        if !named.is_empty() {
            let write = || self.outputs.hosts(&named);
            match self.progress.bar() {
                Some(bar) => bar.suspend(write),
                None => write(),
            }
        }
        if self.interrupted.load(Ordering::Relaxed) || self.outputs.failed() {
            Control::Interrupt
        } else {
            Control::Continue
        }
    }

    fn packets(&mut self, stats: &raw::RawStats) {
        self.progress
            .packets(stats.sent, stats.received, stats.ignored);
    }
}
