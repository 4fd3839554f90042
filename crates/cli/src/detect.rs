//! `portolan detect --pcap FILE...`: reads capture files (pcap, pcapng,
//! gzip'd or not) through `portolan-detect`, writes each alert as one JSON
//! line on standard output (or `-o FILE`), a summary table on standard
//! error, and exits 1 when a scan was detected, 0 when none was, 2 on bad
//! usage, 3 when a capture file cannot be read (the error names its offset). Flags and the terminal only: the work is in `portolan-detect`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use portolan_detect::{Allowlist, Detector, DetectorConfig, PortWatch, decode, read_capture};

use crate::args::UsageError;

const USAGE: &str = "usage: portolan detect --pcap FILE... [-o ALERTS.jsonl] [--allow CIDR,...]\n\
       [--watch WATCH.jsonl] [--watch-window SECONDS] [--no-summary]\n\
\n\
Reads capture files (pcap or pcapng, gzip'd or not) and reports port scans:\n\
Threshold Random Walk over first contacts (horizontal and strobe sweeps)\n\
and refused ports per host (vertical scans), for TCP, UDP, SCTP and ICMP.\n\
Alerts are JSON lines with their evidence on standard output (or -o FILE);\n\
a summary table goes to standard error. --allow labels authorised\n\
scanners' alerts (\"allowlisted\":true); they are never hidden. --watch\n\
writes the exploitable-port watch (probes and sources per risky port per\n\
window, default 3600 s) as JSON lines; the summary shows it too. Exit status: 1 if a scan was\n\
detected, 0 if none, 2 on bad usage, 3 when a capture cannot be read.\n";

#[derive(Debug, Default)]
struct DetectArgs {
    pcaps: Vec<PathBuf>,
    output: Option<PathBuf>,
    allow: Vec<ipnet::IpNet>,
    watch: Option<PathBuf>,
    watch_window: u64,
    summary: bool,
}

fn parse(args: &[String]) -> Result<Option<DetectArgs>, UsageError> {
    let mut a = DetectArgs {
        summary: true,
        watch_window: 3600,
        ..DetectArgs::default()
    };
    let mut rest = args.iter().peekable();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--pcap" | "-r" => {
                let before = a.pcaps.len();
                while let Some(f) = rest.next_if(|f| !f.starts_with('-')) {
                    a.pcaps.push(PathBuf::from(f));
                }
                if a.pcaps.len() == before {
                    return Err(UsageError(format!("detect: {arg} needs a capture file")));
                }
            }
            "-o" | "--output" => {
                let f = rest
                    .next()
                    .ok_or_else(|| UsageError(format!("detect: {arg} needs a file name")))?;
                a.output = Some(PathBuf::from(f));
            }
            "--no-summary" => a.summary = false,
            "--watch" => {
                let f = rest
                    .next()
                    .ok_or_else(|| UsageError("detect: --watch needs a file name".into()))?;
                a.watch = Some(PathBuf::from(f));
            }
            "--watch-window" => {
                a.watch_window = rest
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&v: &u64| v > 0)
                    .ok_or_else(|| {
                        UsageError("detect: --watch-window needs a number of seconds".into())
                    })?;
            }
            "--allow" => {
                let list = rest.next().ok_or_else(|| {
                    UsageError("detect: --allow needs addresses or networks".into())
                })?;
                for item in list.split(',').filter(|i| !i.is_empty()) {
                    let net = item
                        .parse::<ipnet::IpNet>()
                        .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| {
                            UsageError(format!(
                                "detect: --allow: {item:?} is not an address or network"
                            ))
                        })?;
                    a.allow.push(net);
                }
            }
            "--iface" | "-i" => {
                return Err(UsageError(
                    "detect: --iface (live capture) is not implemented yet; use --pcap".into(),
                ));
            }
            other => {
                return Err(UsageError(format!(
                    "detect: unknown argument {other} (see portolan detect --help)"
                )));
            }
        }
    }
    if a.pcaps.is_empty() {
        return Err(UsageError(
            "detect: give --pcap FILE...; see portolan detect --help".into(),
        ));
    }
    Ok(Some(a))
}

/// Runs `portolan detect` with the arguments after `detect`.
pub fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let Some(args) = parse(args)? else {
        print!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(io::stdout().lock())),
    };
    let mut detector =
        Detector::new(DetectorConfig::default()).with_allowlist(Allowlist::new(args.allow.clone()));
    let mut watch = PortWatch::new(args.watch_window);
    let (mut packets, mut undecoded, mut last_ts, mut alerts) = (0u64, 0u64, 0u64, 0u64);
    let mut write_err = None;
    let mut emit = |d: &mut Detector, out: &mut dyn Write| {
        for alert in d.drain_alerts() {
            alerts += 1;
            let line = serde_json::to_string(&alert).expect("alerts serialise");
            if let Err(e) = writeln!(out, "{line}") {
                write_err.get_or_insert(e);
            }
        }
    };
    for path in &args.pcaps {
        let read = read_capture(path, |p| {
            packets += 1;
            last_ts = last_ts.max(p.ts_ns);
            match decode(p.linktype, p.ts_ns, p.data) {
                Some(e) => {
                    detector.observe(&e);
                    watch.observe(&e);
                }
                None => undecoded += 1,
            }
        });
        let stats = match read {
            Ok(stats) => stats,
            Err(e) => {
                // Not "detected" (1) nor usage (2): the input is bad.
                let _ = out.flush();
                eprintln!("portolan: error: {e}");
                return Ok(ExitCode::from(3));
            }
        };
        emit(&mut detector, &mut out);
        if stats.truncated {
            eprintln!(
                "portolan: warning: {} ends in the middle of a record (read up to there)",
                path.display()
            );
        }
    }
    detector.finish(last_ts);
    emit(&mut detector, &mut out);
    if let Some(e) = write_err {
        return Err(e).context("cannot write alerts");
    }
    out.flush().context("cannot write alerts")?;
    let watch_rows = watch.rows();
    if let Some(path) = &args.watch {
        let mut w = BufWriter::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        );
        for row in &watch_rows {
            let line = serde_json::to_string(row).expect("watch rows serialise");
            writeln!(w, "{line}").with_context(|| format!("cannot write {}", path.display()))?;
        }
        w.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.summary {
        let mut err = io::stderr().lock();
        writeln!(
            err,
            "{packets} packets read ({undecoded} not IP/TCP/UDP/ICMP/SCTP), {alerts} alerts, {} trackers evicted by the memory budget",
            detector.evictions()
        )?;
        let rows: Vec<_> = detector
            .summary()
            .into_iter()
            .filter(|r| !r.kinds.is_empty())
            .collect();
        if !rows.is_empty() {
            writeln!(
                err,
                "{:<40} {:>8} {:>8} {:>8}  KINDS",
                "SOURCE", "PROBES", "FAILED", "HOSTS"
            )?;
            for r in rows {
                let kinds: Vec<String> = r
                    .kinds
                    .iter()
                    .map(|k| format!("{k:?}").to_lowercase())
                    .collect();
                writeln!(
                    err,
                    "{:<40} {:>8} {:>8} {:>8}  {}",
                    r.source.to_string(),
                    r.probes,
                    r.failures,
                    r.targets,
                    kinds.join(",")
                )?;
            }
        }
    }
    if args.summary && !watch_rows.is_empty() {
        let mut err = io::stderr().lock();
        writeln!(
            err,
            "\nRISKY PORTS {:>12} {:>10} {:>8} {:>8}",
            "WINDOW", "PORT", "PROBES", "SOURCES"
        )?;
        for r in &watch_rows {
            let port = format!("{}/{}", r.port, format!("{:?}", r.proto).to_lowercase());
            writeln!(
                err,
                "{:<11} {:>12} {:>10} {:>8} {:>8}",
                r.service, r.window_start, port, r.probes, r.sources
            )?;
        }
    }
    Ok(if alerts > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<DetectArgs>, String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        parse(&args).map_err(|e| e.to_string())
    }

    #[test]
    fn arguments() {
        let a = p(&["--pcap", "a.pcap", "b.pcapng.gz", "-o", "x.jsonl"])
            .unwrap()
            .unwrap();
        assert_eq!(a.pcaps.len(), 2);
        assert_eq!(a.output, Some("x.jsonl".into()));
        assert!(p(&["--help"]).unwrap().is_none());
        assert!(p(&[]).is_err());
        assert!(p(&["--pcap"]).is_err());
        assert!(p(&["--bogus"]).is_err());
        let a = p(&["--allow", "198.18.0.0/15,fd00::1", "--pcap", "a"])
            .unwrap()
            .unwrap();
        assert_eq!(a.allow.len(), 2);
        assert!(p(&["--allow", "scanner.example", "--pcap", "a"]).is_err());
    }
}
