//! The `portolan` binary: flags in, a scan run, results out.
//!
//! This is the only crate that talks to the terminal. It resolves the
//! command line ([`flags`], [`args`]) into a scan configuration, runs the
//! scan through the scan library (`portolan-scan`), and feeds its events
//! to the sinks the user asked for and to the progress display
//! ([`terminal`]). Exit status: 0 on success (also when standard output
//! closes early), 1 on a runtime failure, 2 on bad usage, 130 when
//! interrupted.

mod args;
mod audit;
mod detect;
mod diff;
mod flags;
mod history;
mod outputs;
mod progress;
mod report;
mod resume;
mod terminal;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use anyhow::Context;
use portolan_output::OutputOptions;
use portolan_scan::{Scan, ScanError, StopToken};

use crate::args::{Config, Mode, UsageError};

const VERSION: &str = env!("CARGO_PKG_VERSION");

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
            let usage = err.downcast_ref::<UsageError>().is_some()
                || err
                    .downcast_ref::<ScanError>()
                    .is_some_and(ScanError::is_usage);
            if usage {
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
    match argv.get(1).map(String::as_str) {
        Some("report") => return report::run(&argv[2..], VERSION),
        Some("history") => return history::run(&argv[2..]),
        Some("diff") => return Ok(diff::run(&argv[2..])),
        Some("audit") => return Ok(audit::run(&argv[2..])),
        Some("detect") => return detect::run(&argv[2..]),
        _ => {}
    }
    let (argv, config) = if argv.get(1).map(String::as_str) == Some("--resume") {
        resume::config(&argv)?
    } else {
        let parsed =
            flags::parse(argv.iter().skip(1).cloned()).map_err(|e| UsageError(e.to_string()))?;
        let read_list =
            |path: &str| portolan_targets::read_target_file(path).map_err(|e| e.to_string());
        let config = args::resolve(&parsed, &read_list)?;
        (argv, config)
    };
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
        Mode::Scan => scan(config, argv),
    }
}

/// `-sL`: one line per target, nothing sent: the targets a scan would
/// take (the scope checked, a wide range without its special-purpose
/// ranges).
fn list_targets(config: &Config) -> anyhow::Result<ExitCode> {
    let (targets, warnings) = portolan_scan::scan_targets(&config.scan)?;
    for warning in &warnings {
        eprintln!(
            "portolan: warning: {}",
            portolan_output::escape::for_terminal(warning)
        );
    }
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

/// A scan: the library checks the configuration, the outputs open, and
/// the scan's events go to them and to the terminal until it ends or is
/// interrupted (SIGINT, SIGTERM; a second signal ends the process).
fn scan(mut config: Config, argv: Vec<String>) -> anyhow::Result<ExitCode> {
    // The command line goes into every output file and the history: a
    // `--db postgres://user:password@...` password stays out of them.
    config.scan.command_line = argv
        .iter()
        .map(|a| portolan_history::postgres::redact_passwords(a))
        .collect();
    let warn = |warnings: &[String]| {
        for warning in warnings {
            eprintln!(
                "portolan: warning: {}",
                portolan_output::escape::for_terminal(warning)
            );
        }
    };
    let scan = Scan::new(config.scan.clone()).inspect_err(|e| {
        if let ScanError::NoProbes { warnings, .. } = e {
            warn(warnings);
        }
    })?;
    warn(scan.warnings());
    let options = OutputOptions {
        open_only: config.open_only,
        reason: config.reason,
        verbosity: config.verbosity,
    };
    let policy = match &config.policy {
        Some(path) => Some(audit::read_policy(path)?),
        None => None,
    };
    let outputs = outputs::Outputs::new(&config, options)?;
    let recorder = history::recorder(&config)?;
    // Everything privileged is open (the scan's raw sockets, the output
    // files): the capabilities go before anything is sent, whatever the
    // technique (a connect scan of a binary given file capabilities holds
    // them too, and needs none).
    portolan_transport::sys::drop_capabilities().context("cannot drop capabilities")?;

    let stop = StopToken::new();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.flag())
            .context("cannot install the signal handler")?;
        signal_hook::flag::register(sig, stop.flag())
            .context("cannot install the signal handler")?;
    }
    // -sV runs on this runtime.
    let runtime = if config.scan.version.enabled {
        Some(portolan_service::runtime().context("cannot start the version detection runtime")?)
    } else {
        None
    };
    let scan = match &runtime {
        Some(rt) => scan.with_runtime(rt.handle().clone()),
        None => scan,
    };
    let mut terminal = terminal::Terminal::new(&config, &outputs, stop.clone(), recorder);
    if let Some(policy) = policy {
        let stdout_taken = [
            &config.normal_out,
            &config.xml_out,
            &config.grep_out,
            &config.json_out,
        ]
        .iter()
        .any(|f| f.as_ref().is_some_and(|f| f.path.is_none()));
        terminal.audit(audit::LiveAudit::new(policy, stdout_taken));
    }
    let summary = scan.run(&mut terminal, &stop)?;
    if let Some(e) = outputs.take_error() {
        return Err(anyhow::Error::new(e).context("writing results failed"));
    }
    let recorder = terminal.take_recorder();
    let live_audit = terminal.take_audit();
    terminal.finished()?;
    if let Some(mut recorder) = recorder {
        if let Some(e) = recorder.take_error() {
            return Err(anyhow::Error::new(e).context("recording the scan in the history failed"));
        }
        if !summary.interrupted
            && let Some(command) = &config.on_change
        {
            history::on_change(&mut recorder, command)?;
        }
    }
    if let Some(live_audit) = live_audit
        && live_audit.finish()?
        && !summary.interrupted
    {
        return Ok(ExitCode::from(1));
    }
    Ok(if summary.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}
