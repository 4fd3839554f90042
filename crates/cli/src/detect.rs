//! `portolan detect --pcap FILE...` and `portolan detect --iface IFACE`:
//! reads capture files (pcap, pcapng, gzip'd or not; several at once,
//! merged by time) or live traffic on
//! one interface (the scanner's receive ring, with a kernel filter)
//! through `portolan-detect`, writes each alert as one JSON line on
//! standard output (or `-o FILE`) as soon as it is decided, a summary
//! table on standard error, and exits 1 when a scan was detected, 0 when
//! none was, 2 on bad usage, 3 when a capture file or the interface
//! cannot be read (the error names the offset or the interface). Live
//! capture runs until SIGINT or SIGTERM (then the same exit codes; a
//! second signal ends the process at once) or `--duration SECONDS`.
//! Flags and the terminal only: the work is in `portolan-detect`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use portolan_detect::{
    Allowlist, Detector, DetectorConfig, PortWatch, decode, decode_network, read_captures_merged,
};
use portolan_transport::capture::Capture;

use crate::args::UsageError;

const USAGE: &str = "usage: portolan detect (--pcap FILE... | --iface IFACE [--duration SECONDS])\n\
       [-o ALERTS.jsonl] [--allow CIDR,...] [--allowlist-file FILE]\n\
       [--watch WATCH.jsonl]\n\
       [--watch-window SECONDS] [--no-summary]\n\
\n\
Reads capture files (pcap or pcapng, gzip'd or not; several are merged by\n\
time), or live traffic on one\n\
interface (-i/--iface; needs CAP_NET_RAW; runs until SIGINT or SIGTERM, or\n\
for --duration seconds), and reports port scans: Threshold Random Walk\n\
over first contacts (horizontal and strobe sweeps) and refused ports per\n\
host (vertical scans), scans split over several sources (distributed) and\n\
copied from spoofed ones (decoy, naming the real source when the evidence\n\
does), for TCP, UDP, SCTP and ICMP. Alerts are JSON lines\n\
with their evidence on standard output (or -o FILE), written as they are\n\
decided; a summary table goes to standard error. --allow labels authorised\n\
scanners' alerts (\"allowlisted\":true); they are never hidden.\n\
--allowlist-file reads a published list of them: one address or network\n\
per line, # comments. --watch\n\
writes the exploitable-port watch (probes and sources per risky port per\n\
window, default 3600 s) as JSON lines; the summary shows it too. Exit status: 1 if a scan was\n\
detected, 0 if none, 2 on bad usage, 3 when a capture or the interface\n\
cannot be read.\n";

/// IP protocols a live capture passes besides ICMP and ICMPv6: TCP, UDP,
/// SCTP (what the decoder reads).
const WATCHED_PROTOCOLS: [u8; 3] = [6, 17, 132];
/// The longest a live capture waits for packets before it moves the
/// detector's clock (silence is a failure after the answer timeout) and
/// looks at signals and the deadline.
const LIVE_TURN: Duration = Duration::from_millis(100);
/// Packets read from the ring per turn at most.
const LIVE_BUDGET: usize = 65_536;

/// Where the packets come from.
#[derive(Debug)]
enum Input {
    Files(Vec<PathBuf>),
    Live {
        interface: String,
        duration: Option<Duration>,
    },
}

#[derive(Debug)]
struct DetectArgs {
    input: Input,
    output: Option<PathBuf>,
    allow: Allowlist,
    watch: Option<PathBuf>,
    watch_window: u64,
    summary: bool,
}

fn parse(args: &[String]) -> Result<Option<DetectArgs>, UsageError> {
    let (mut pcaps, mut interface, mut duration) = (Vec::new(), None, None);
    let mut output = None;
    let mut allow = Allowlist::default();
    let mut watch = None;
    let (mut watch_window, mut summary) = (3600, true);
    let mut rest = args.iter().peekable();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--pcap" | "-r" => {
                let before = pcaps.len();
                while let Some(f) = rest.next_if(|f| !f.starts_with('-')) {
                    pcaps.push(PathBuf::from(f));
                }
                if pcaps.len() == before {
                    return Err(UsageError(format!("detect: {arg} needs a capture file")));
                }
            }
            "--iface" | "-i" => {
                let name = rest
                    .next()
                    .filter(|n| !n.is_empty() && !n.starts_with('-'))
                    .ok_or_else(|| UsageError(format!("detect: {arg} needs an interface")))?;
                interface = Some(name.clone());
            }
            "--duration" => {
                let secs = rest
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|v| v.is_finite() && *v > 0.0 && *v < 1e9)
                    .ok_or_else(|| {
                        UsageError("detect: --duration needs a number of seconds".into())
                    })?;
                duration = Some(Duration::from_secs_f64(secs));
            }
            "-o" | "--output" => {
                let f = rest
                    .next()
                    .ok_or_else(|| UsageError(format!("detect: {arg} needs a file name")))?;
                output = Some(PathBuf::from(f));
            }
            "--no-summary" => summary = false,
            "--watch" => {
                let f = rest
                    .next()
                    .ok_or_else(|| UsageError("detect: --watch needs a file name".into()))?;
                watch = Some(PathBuf::from(f));
            }
            "--watch-window" => {
                watch_window = rest
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
                    allow.extend(Allowlist::new(vec![net]));
                }
            }
            "--allowlist-file" => {
                let path = rest.next().ok_or_else(|| {
                    UsageError("detect: --allowlist-file needs a file name".into())
                })?;
                // The file's text reaches the terminal only escaped.
                let usage = |what: String| {
                    UsageError(portolan_output::escape::for_terminal(&what).into_owned())
                };
                let text = std::fs::read_to_string(path).map_err(|e| {
                    usage(format!("detect: --allowlist-file: cannot read {path}: {e}"))
                })?;
                let list = Allowlist::parse(&text)
                    .map_err(|e| usage(format!("detect: --allowlist-file: {path}: {e}")))?;
                allow.extend(list);
            }
            other => {
                return Err(UsageError(format!(
                    "detect: unknown argument {other} (see portolan detect --help)"
                )));
            }
        }
    }
    let input = match (pcaps.is_empty(), interface) {
        (false, Some(_)) => {
            return Err(UsageError(
                "detect: give --pcap FILE... or --iface IFACE, not both".into(),
            ));
        }
        (false, None) if duration.is_some() => {
            return Err(UsageError(
                "detect: --duration is for live capture (--iface)".into(),
            ));
        }
        (false, None) => Input::Files(pcaps),
        (true, Some(interface)) => Input::Live {
            interface,
            duration,
        },
        (true, None) => {
            return Err(UsageError(
                "detect: give --pcap FILE... or --iface IFACE; see portolan detect --help".into(),
            ));
        }
    };
    Ok(Some(DetectArgs {
        input,
        output,
        allow,
        watch,
        watch_window,
        summary,
    }))
}

/// The detector and its counters, fed packets from either input.
struct Session {
    detector: Detector,
    watch: PortWatch,
    packets: u64,
    undecoded: u64,
    last_ts: u64,
    alerts: u64,
    write_err: Option<io::Error>,
}

impl Session {
    /// A captured frame of link type `link`.
    fn packet(&mut self, link: u32, ts_ns: u64, data: &[u8]) {
        self.event(ts_ns, decode(link, ts_ns, data));
    }

    /// A live packet, from its network header on, and its link-layer
    /// source.
    fn network_packet(&mut self, ts_ns: u64, data: &[u8], mac: Option<[u8; 6]>) {
        self.event(ts_ns, decode_network(ts_ns, data, mac));
    }

    fn event(&mut self, ts_ns: u64, event: Option<portolan_detect::FlowEvent>) {
        self.packets += 1;
        self.last_ts = self.last_ts.max(ts_ns);
        match event {
            Some(e) => {
                self.detector.observe(&e);
                self.watch.observe(&e);
            }
            None => self.undecoded += 1,
        }
    }

    /// Writes the alerts decided so far, one JSON line each.
    fn emit(&mut self, out: &mut dyn Write) {
        for alert in self.detector.drain_alerts() {
            self.alerts += 1;
            let line = serde_json::to_string(&alert).expect("alerts serialise");
            if let Err(e) = writeln!(out, "{line}") {
                self.write_err.get_or_insert(e);
            }
        }
    }
}

/// What ended the reading of the input, when not its end.
enum Stopped {
    /// A capture or the interface cannot be read: exit 3.
    Unreadable,
}

/// Reads the capture files, several at once merged by time (a probe in
/// one file meets its answer in another before the answer timeout).
fn read_files(
    paths: &[PathBuf],
    session: &mut Session,
    out: &mut dyn Write,
) -> Result<(), Stopped> {
    let read = read_captures_merged(paths, |p| {
        session.packet(p.linktype, p.ts_ns, p.data);
        // Written as decided: a long capture's alerts are not held.
        if session.detector.has_alerts() {
            session.emit(out);
        }
    });
    let stats = match read {
        Ok(stats) => stats,
        Err(e) => {
            // Not "detected" (1) nor usage (2): the input is bad.
            session.emit(out);
            let _ = out.flush();
            eprintln!(
                "portolan: error: {}",
                portolan_output::escape::for_terminal(&e.to_string())
            );
            return Err(Stopped::Unreadable);
        }
    };
    session.emit(out);
    for (path, stats) in paths.iter().zip(stats) {
        if stats.truncated {
            eprintln!(
                "portolan: warning: {} ends in the middle of a record (read up to there)",
                portolan_output::escape::for_terminal(&path.display().to_string())
            );
        }
    }
    Ok(())
}

fn epoch_ns(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Reads live traffic on `interface` until a signal or `duration`;
/// returns the packets the kernel dropped.
fn read_live(
    interface: &str,
    duration: Option<Duration>,
    session: &mut Session,
    out: &mut dyn Write,
) -> anyhow::Result<Result<u64, Stopped>> {
    let mut capture = match Capture::open(interface, &WATCHED_PROTOCOLS) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "portolan: error: {}",
                portolan_output::escape::for_terminal(&e.to_string())
            );
            return Ok(Err(Stopped::Unreadable));
        }
    };
    // The socket is open: nothing more needs a privilege.
    portolan_transport::sys::drop_capabilities().context("cannot drop capabilities")?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
            .context("cannot install the signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install the signal handler")?;
    }
    eprintln!(
        "portolan: capturing on {}",
        portolan_output::escape::for_terminal(capture.interface())
    );
    let deadline = duration.map(|d| Instant::now() + d);
    let mut dropped = 0;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let wait = match deadline {
            Some(d) if now >= d => break,
            Some(d) => (d - now).min(LIVE_TURN),
            None => LIVE_TURN,
        };
        capture.wait(wait)?;
        capture.drain(LIVE_BUDGET, |packet, _, mac, stamp| {
            let ts = stamp.map_or_else(
                || epoch_ns(SystemTime::now()),
                |s| u64::try_from(s.as_nanos()).unwrap_or(u64::MAX),
            );
            session.network_packet(ts, packet, mac);
        })?;
        dropped += capture.take_drops();
        session.detector.advance(epoch_ns(SystemTime::now()));
        session.emit(out);
        if let Err(e) = out.flush() {
            session.write_err.get_or_insert(e);
        }
        if session.write_err.is_some() {
            break;
        }
    }
    session.last_ts = session.last_ts.max(epoch_ns(SystemTime::now()));
    Ok(Ok(dropped))
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
    let mut session = Session {
        detector: Detector::new(DetectorConfig::default()).with_allowlist(args.allow.clone()),
        watch: PortWatch::new(args.watch_window),
        packets: 0,
        undecoded: 0,
        last_ts: 0,
        alerts: 0,
        write_err: None,
    };
    let read = match &args.input {
        Input::Files(paths) => read_files(paths, &mut session, &mut out).map(|()| None),
        Input::Live {
            interface,
            duration,
        } => read_live(interface, *duration, &mut session, &mut out)?.map(Some),
    };
    let dropped = match read {
        Ok(dropped) => dropped,
        Err(Stopped::Unreadable) => return Ok(ExitCode::from(3)),
    };
    session.detector.finish(session.last_ts);
    session.emit(&mut out);
    if let Some(e) = session.write_err.take() {
        return Err(e).context("cannot write alerts");
    }
    out.flush().context("cannot write alerts")?;
    let Session {
        detector,
        watch,
        packets,
        undecoded,
        alerts,
        ..
    } = session;
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
        let dropped = dropped.map_or(String::new(), |n: u64| {
            format!(", {n} dropped by the kernel")
        });
        writeln!(
            err,
            "{packets} packets read ({undecoded} not IP/TCP/UDP/ICMP/SCTP or ARP){dropped}, {alerts} alerts, {} trackers evicted by the memory budget",
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
        assert!(matches!(&a.input, Input::Files(f) if f.len() == 2));
        assert_eq!(a.output, Some("x.jsonl".into()));
        assert!(p(&["--help"]).unwrap().is_none());
        assert!(p(&[]).is_err());
        assert!(p(&["--pcap"]).is_err());
        assert!(p(&["--bogus"]).is_err());
        let a = p(&["--allow", "198.18.0.0/15,fd00::1", "--pcap", "a"])
            .unwrap()
            .unwrap();
        assert!(a.allow.contains("fd00::1".parse().unwrap()));
        assert!(a.allow.contains("198.19.0.1".parse().unwrap()));
        assert!(p(&["--allow", "scanner.example", "--pcap", "a"]).is_err());
    }

    #[test]
    fn live_arguments_take_one_interface_and_an_optional_duration() {
        let a = p(&["--iface", "eth0", "--duration", "2.5"])
            .unwrap()
            .unwrap();
        match a.input {
            Input::Live {
                interface,
                duration,
            } => {
                assert_eq!(interface, "eth0");
                assert_eq!(duration, Some(Duration::from_millis(2500)));
            }
            other => panic!("{other:?}"),
        }
        let a = p(&["-i", "lo"]).unwrap().unwrap();
        assert!(matches!(a.input, Input::Live { duration: None, .. }));
        assert!(p(&["--iface"]).is_err());
        assert!(p(&["--iface", "--duration", "1"]).is_err());
        assert!(p(&["--iface", "lo", "--pcap", "a"]).is_err(), "one input");
        assert!(p(&["--pcap", "a", "--duration", "1"]).is_err());
        for bad in ["0", "-1", "soon", "NaN", "inf"] {
            assert!(p(&["-i", "lo", "--duration", bad]).is_err(), "{bad}");
        }
    }
}
