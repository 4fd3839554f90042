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
mod outputs;
mod progress;
mod report;

use std::io::{self, BufWriter, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use anyhow::Context;
use portolan_engine::{PortState, ScanEvent, ScanPlan, Scheduler};
use portolan_output::{OutputOptions, ScanInfo, ScanSummary};
use portolan_targets::{Protocol, SystemResolver, TargetList};
use portolan_transport::Control;
use portolan_transport::connect::{self, ConnectOptions};
use portolan_transport::raw::{self, SynOptions, TcpScan};

use crate::args::{Config, Mode, ScanKind, UsageError};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How many of the most common ports each host is probed on first.
const FIRST_PORTS: usize = 10;

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
    match config.scan {
        Some(kind @ ScanKind::Raw(_)) => {
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
    // With -sV, finished hosts wait for version detection before output.
    let mut held: Vec<Box<portolan_engine::HostReport>> = Vec::new();

    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal ends the process at once.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&interrupted))
            .context("cannot install the signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&interrupted))
            .context("cannot install the signal handler")?;
    }

    let start_wall = SystemTime::now();
    let start = Instant::now();
    let info = ScanInfo {
        version: VERSION,
        args: argv,
        start: start_wall,
        started_at: start,
        scan_type: match technique {
            ScanKind::Raw(scan) => scan.name(),
            ScanKind::Connect => "connect",
        },
        proto: Protocol::Tcp,
        port_count: config.tcp_ports.len(),
        ports: config.tcp_ports.clone(),
    };
    outputs.begin(&info)?;

    let plan = ScanPlan {
        targets,
        ports: config.tcp_ports.clone(),
        proto: Protocol::Tcp,
        silent_state: match technique {
            ScanKind::Raw(scan) => scan.silent_state(),
            ScanKind::Connect => PortState::Filtered,
        },
        seed: config.seed.unwrap_or_else(random_seed),
        randomize: config.randomize,
        max_hostgroup: config.max_hostgroup,
        // The most commonly open ports first, as nmap does: an early answer
        // gives the round-trip time, and short timeouts, sooner.
        first_ports: if config.randomize {
            portolan_targets::top_ports(Protocol::Tcp, FIRST_PORTS)
        } else {
            Vec::new()
        },
        timing: config.timing.clone(),
    };
    let mut scheduler = Scheduler::new(plan, start);
    let show_bar = !config.no_progress && io::stderr().is_terminal();
    let mut progress = progress::Progress::new(
        scheduler.planned_ports(),
        start,
        show_bar,
        config.stats_every,
    );

    let bar = progress.bar();
    let mut observer = ScanObserver {
        progress: &mut progress,
        outputs: &outputs,
        interrupted: &interrupted,
    };
    let mut sink_event = |event: ScanEvent| {
        if let (Some(_), ScanEvent::HostDone(h)) = (&version_db, &event) {
            held.push(h.clone());
            return;
        }
        let write = || outputs.event(&event);
        // Keep the progress bar from tearing text written to the terminal.
        match (&bar, &event) {
            (Some(bar), ScanEvent::HostDone(_)) => bar.suspend(write),
            _ => write(),
        }
    };
    let mut packets = None;
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
        ScanKind::Raw(tcp_scan) => {
            let seed = random_seed();
            let syn_options = SynOptions {
                scan: tcp_scan,
                source: config.source,
                source_port: config.source_port,
                device: config.interface.clone(),
                send_ip: config.send_ip,
                decoys: config.decoys.clone(),
                key: (seed, seed.rotate_left(29) ^ random_seed()),
            };
            let stats = raw::run(&mut scheduler, &syn_options, &mut observer, &mut sink_event)
                .with_context(|| format!("the {} scan failed", tcp_scan.name().to_uppercase()))?;
            packets = Some(portolan_output::PacketStats {
                sent: stats.sent,
                received: stats.received,
                ignored: stats.ignored,
            });
        }
    }
    progress.finish();
    if let Some(db) = &version_db {
        detection::enrich(&mut held, db, &config.version, Arc::clone(&interrupted))?;
        for report in held {
            outputs.event(&ScanEvent::HostDone(report));
        }
    }
    if let Some(e) = outputs.take_error() {
        return Err(anyhow::Error::new(e).context("writing results failed"));
    }
    let was_interrupted = interrupted.load(Ordering::Relaxed);
    let summary = ScanSummary {
        stats: *scheduler.stats(),
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
