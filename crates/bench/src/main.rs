//! `portolan-bench`: Portolan against its peers on the same lab targets in
//! the same run, printed as ratios.
//!
//! Usage: `portolan-bench [connect|syn|sweep|discovery|sparse|udp|sv|svwide|history|os|detect] [--runs N] [--only LABEL-PREFIX]` (run as root;
//! `scripts/bench` builds everything and runs it). Each scenario builds a
//! lab host in a network namespace, scans all its TCP ports with every tool
//! that is installed, and prints wall time, CPU time and peak memory, the
//! ratios to Portolan, packets sent per wall-clock second where the count
//! is known, and how each tool's port states compare with the truth the lab
//! was built with. Packets go only to the lab's namespaces.
//!
//! - `connect`: Portolan `-sT`, nmap `-sT`, RustScan.
//! - `syn`: Portolan `-sS`, nmap `-sS`, masscan at 100k and 1M packets/s;
//!   over a clean link, with 10% random loss each way, and with the
//!   answers through a 20 Mbit/s bottleneck.
//! - `sweep`: one port over a routed /16 of live addresses (the lab host
//!   answers for all of them): Portolan, masscan and ZMap at full speed,
//!   with addresses found, packets per second and per CPU-second, and
//!   Portolan's memory over ranges from a /20 to a /16.
//! - `discovery`: which hosts are up: `portolan -sn` and `nmap -sn` on a
//!   bridged segment (ARP) and on a routed /16 where a few hundred
//!   scattered addresses exist, then a `-Pn` sweep of port 80 over that
//!   /16 by Portolan, masscan and ZMap at an equal and at maximal rates
//!   (see [`discovery`]).
//! - `sparse`: the routed /16 of `discovery` alone, at maximal rates:
//!   Portolan's `-sn`, its one-port and 16-port sweeps (`--open`),
//!   masscan's and ZMap's (and ZMap's ICMP module), with the peak send
//!   rate of each (the scanner interface's transmit counter, sampled
//!   every 50 ms), and Portolan's `--offline` engine over 2^24 lab
//!   addresses (probes per second and peak memory).
//! - `udp`: `portolan -sU` and `nmap -sU` on a host behind Linux's
//!   default ICMP rate limit, on the top 100 UDP ports and a fixed list,
//!   exact and with `--defeat-icmp-ratelimit` (see [`udp`]).
//! - `sv`: version detection (`-sS -sU -sV`) of a lab host running real
//!   daemons: Portolan with its own database and with nmap's, and nmap,
//!   with wall time, the ratio to nmap's, and per port whether service,
//!   product and version are right against the packages installed (see
//!   [`versions`]).
//! - `svwide`: `portolan -sS -sV -p 22,80` over mostly silent ranges of
//!   4,096, 16,384 and 65,536 lab addresses: wall time and peak memory, which
//!   should stay flat as hosts stream out (see [`sweep`]).
//! - `history`: 1,000 synthetic scans of a /24 written into the history
//!   on SQLite and PostgreSQL, then `history host`, `diff --last` and
//!   `audit --risky` timed, the size per sighting, and `portolan diff`
//!   against ndiff on the same two XML files (see [`history`]; no
//!   network).
//! - `detect`: `portolan detect --pcap` on a generated capture of 10
//!   million packets with planted scans of every kind: packets per
//!   second, peak memory and bytes per tracked source, probes to
//!   decision, and which planted scans Zeek's published thresholds would
//!   catch (see [`detect`]; no network).
//! - `os`: OS detection (`-O`) of every lab stack: Portolan with its own
//!   database and with nmap's, and nmap, with wall time, the ratio to
//!   nmap's, the top match and whether its family is right (see [`os`]).
//!
//! Each tool runs `--runs` times (default 3); the run with the median wall
//! time is shown.

mod detect;
mod discovery;
mod harness;
mod history;
mod measure;
mod os;
mod parse;
mod sweep;
mod txrate;
mod udp;
mod versions;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use harness::{Bench, Scan, Tool, peer, print_table, sibling_binary};

/// Longest a single scanner run may take.
const TOOL_LIMIT: Duration = Duration::from_secs(600);
/// Longest a masscan run may take: a full run at 100k packets/s takes a
/// few seconds, but it may hang at exit (see [`harness`] on the heartbeat).
const MASSCAN_LIMIT: Duration = Duration::from_secs(60);
/// The packets masscan sends for `-p0-65535` on one address without
/// `--retries`: one SYN per port.
const MASSCAN_PROBES: u64 = 65536;

/// Portolan with `flags` (e.g. `-sS -T4`) on all ports, JSON lines output.
fn portolan<'a>(bench: &'a Bench, flags: &[&str]) -> Tool<'a> {
    let binary = sibling_binary("portolan");
    let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    Tool {
        label: format!("portolan {}", flags.join(" ")),
        command: Box::new(move |out: &Path| {
            let mut cmd = bench.lab().scanner().command(&binary);
            cmd.args(&flags)
                .args(["-p-", "-n", "-Pn", "--no-progress", "--no-db", "-oJ"])
                .arg(out)
                .arg(bench.target());
            cmd
        }),
        stdout_is_output: false,
        read: |text| Scan {
            states: parse::portolan_jsonl(text),
            sent: parse::portolan_packets_sent(text),
        },
        open_only: false,
        limit: TOOL_LIMIT,
        heartbeat: false,
    }
}

/// nmap with `flags` on all ports, no ping, XML output.
fn nmap<'a>(bench: &'a Bench, binary: &Path, flags: &[&str]) -> Tool<'a> {
    let binary = binary.to_path_buf();
    let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    Tool {
        label: format!("nmap {}", flags.join(" ")),
        command: Box::new(move |out: &Path| {
            let mut cmd = bench.lab().scanner().command(&binary);
            cmd.args(&flags)
                .args(["-p-", "-n", "-Pn", "-oX"])
                .arg(out)
                .arg(bench.target());
            cmd
        }),
        stdout_is_output: false,
        read: |text| Scan {
            states: parse::nmap_xml(text),
            sent: None,
        },
        open_only: false,
        limit: TOOL_LIMIT,
        heartbeat: false,
    }
}

/// RustScan on all ports, greppable output on standard output.
fn rustscan<'a>(bench: &'a Bench, binary: &Path) -> Tool<'a> {
    let binary = binary.to_path_buf();
    Tool {
        label: "rustscan".into(),
        command: Box::new(move |_: &Path| {
            let mut cmd = bench.lab().scanner().command(&binary);
            cmd.args(["-a", &bench.target(), "-r", "1-65535", "-g"])
                .args(["--ulimit", "20000"]);
            cmd
        }),
        stdout_is_output: true,
        read: |text| Scan {
            states: parse::rustscan_greppable(text),
            sent: None,
        },
        open_only: true,
        limit: TOOL_LIMIT,
        heartbeat: false,
    }
}

fn connect_bench(runs: usize) -> Result<(), String> {
    let bench = Bench::new(runs)?;
    println!("{}", bench.describe("Connect scan"));
    let mut tools = vec![
        portolan(&bench, &["-sT"]),
        portolan(&bench, &["-sT", "-T4"]),
    ];
    if let Some(binary) = peer("nmap", "apt-get install nmap") {
        tools.push(nmap(&bench, &binary, &["-sT", "-T4"]));
    }
    if let Some(binary) = peer("rustscan", "cargo install rustscan") {
        tools.push(rustscan(&bench, &binary));
    }
    let rows: Vec<_> = tools
        .iter()
        .filter(|t| harness::wanted(&t.label))
        .map(|t| bench.measure(t))
        .collect();
    print_table(&rows);
    Ok(())
}

/// The MAC address of `interface` in `namespace`.
pub(crate) fn mac_of(
    namespace: &portolan_lab::Namespace,
    interface: &str,
) -> Result<String, String> {
    let text = namespace
        .ip(&["link", "show", interface])
        .map_err(|e| format!("MAC address of {interface}: {e}"))?;
    parse::link_mac(&text)
        .map(str::to_string)
        .ok_or_else(|| format!("no MAC address in `ip link show {interface}`: {text}"))
}

/// masscan at `rate` packets/s on all ports. masscan sends from its own
/// user-space stack, so it is given the scanner's interface, address and
/// MAC, and the target's MAC as the next hop (the link is point to point).
/// It reports open ports only, and runs with the host's heartbeat.
fn masscan<'a>(bench: &'a Bench, binary: &Path, rate: u32, macs: &(String, String)) -> Tool<'a> {
    let binary = binary.to_path_buf();
    let (adapter_mac, router_mac) = macs.clone();
    Tool {
        label: format!("masscan --rate {rate}"),
        command: Box::new(move |out: &Path| {
            let host = bench.host();
            let mut cmd = bench.lab().scanner().command(&binary);
            cmd.args(["-p0-65535", "--rate", &rate.to_string()])
                .args(["-e", host.scanner_interface()])
                .args(["--adapter-ip", &host.scanner_ipv4().to_string()])
                .args(["--adapter-mac", &adapter_mac])
                .args(["--router-mac", &router_mac])
                .args(["--wait", "2", "-oL"])
                .arg(out)
                .arg(bench.target());
            cmd
        }),
        stdout_is_output: false,
        read: |text| Scan {
            states: parse::masscan_list(text),
            sent: Some(MASSCAN_PROBES),
        },
        open_only: true,
        limit: MASSCAN_LIMIT,
        heartbeat: true,
    }
}

/// The link between scanner and host in a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// As built.
    Clean,
    /// 10% of packets dropped at random in each direction, on the host.
    Lossy,
    /// The host's answers leave through a 20 Mbit/s token bucket with a
    /// short queue (the probes' direction cannot be shaped on the scanner's
    /// side: raw frames bypass its queueing discipline, as masscan's do).
    Bottleneck,
}

impl Link {
    fn describe(self) -> &'static str {
        match self {
            Link::Clean => "clean link",
            Link::Lossy => "10% random loss each way",
            Link::Bottleneck => "answers through a 20 Mbit/s bottleneck",
        }
    }

    fn apply(self, host: &portolan_lab::Host) -> Result<(), String> {
        let applied = match self {
            Link::Clean => host.random_loss(0),
            Link::Lossy => host.random_loss(10),
            Link::Bottleneck => host.random_loss(0).and_then(|()| {
                host.tbf(
                    host.interface(),
                    &portolan_lab::Tbf {
                        rate_bits_per_sec: 20_000_000,
                        burst_bytes: 16_000,
                        latency: Duration::from_millis(20),
                    },
                )
            }),
        };
        applied.map_err(|e| format!("link setting ({}): {e}", self.describe()))
    }

    fn clear(self, host: &portolan_lab::Host) {
        if self == Link::Bottleneck {
            let _ = host.clear_qdisc(host.interface());
        }
        let _ = host.random_loss(0);
    }
}

fn syn_bench(runs: usize) -> Result<(), String> {
    let bench = Bench::new(runs)?;
    for link in [Link::Clean, Link::Lossy, Link::Bottleneck] {
        link.apply(bench.host())?;
        println!("{} — {}", bench.describe("SYN scan"), link.describe());
        let result = syn_tools(&bench);
        link.clear(bench.host());
        result?;
        println!();
    }
    println!(
        "pkt/s: packets sent / wall time (Portolan's summary count; masscan's fixed {MASSCAN_PROBES} SYNs)"
    );
    println!(
        "masscan: the host sends the scanner a datagram every {} ms, else masscan hangs at exit on the silent link",
        harness::HEARTBEAT.as_millis()
    );
    Ok(())
}

fn syn_tools(bench: &Bench) -> Result<(), String> {
    let mut tools = vec![portolan(bench, &["-sS"]), portolan(bench, &["-sS", "-T4"])];
    if let Some(binary) = peer("nmap", "apt-get install nmap") {
        tools.push(nmap(bench, &binary, &["-sS", "-T4"]));
        tools.push(nmap(bench, &binary, &["-sS", "--min-rate", "50000"]));
    }
    if let Some(binary) = peer("masscan", "apt-get install masscan") {
        let host = bench.host();
        let macs = (
            mac_of(bench.lab().scanner(), host.scanner_interface())?,
            mac_of(host.namespace(), host.interface())?,
        );
        for rate in [100_000, 1_000_000] {
            tools.push(masscan(bench, &binary, rate, &macs));
        }
    }
    let rows: Vec<_> = tools
        .iter()
        .filter(|t| harness::wanted(&t.label))
        .map(|t| bench.measure(t))
        .collect();
    print_table(&rows);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut runs = 3;
    let mut short = false;
    let mut scenario = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            // Skips the cases that take many minutes (udp's top 1000).
            "--short" => short = true,
            // Runs only the tools whose label starts with this (`syn` and
            // `connect`), e.g. `--only portolan` for an A/B of two builds.
            "--only" => match it.next() {
                Some(prefix) => harness::keep_only(prefix.clone()),
                None => {
                    eprintln!("portolan-bench: --only needs a label prefix");
                    return ExitCode::from(2);
                }
            },
            "--runs" => match it.next().and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => runs = n,
                _ => {
                    eprintln!("portolan-bench: --runs needs a positive number");
                    return ExitCode::from(2);
                }
            },
            "connect" | "syn" | "sweep" | "discovery" | "sparse" | "udp" | "sv" | "svwide"
            | "history" | "os" | "detect" => scenario = Some(a.clone()),
            other => {
                eprintln!(
                    "portolan-bench: unknown argument {other:?} (scenarios: connect, syn, sweep, discovery, sparse, udp, sv, svwide, history, os, detect)"
                );
                return ExitCode::from(2);
            }
        }
    }
    let result = match scenario.as_deref().unwrap_or("connect") {
        "connect" => connect_bench(runs),
        "syn" => syn_bench(runs),
        "sweep" => sweep::sweep_bench(runs),
        "discovery" => discovery::discovery_bench(runs),
        "sparse" => discovery::sparse_bench(runs),
        "udp" => udp::udp_bench(runs, short),
        "sv" => versions::versions_bench(runs),
        "svwide" => sweep::sv_memory_bench(runs),
        "history" => history::history_bench(runs),
        "os" => os::os_bench(runs),
        "detect" => detect::detect_bench(runs),
        _ => unreachable!("scenarios are checked above"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portolan-bench: {e}");
            ExitCode::from(1)
        }
    }
}
