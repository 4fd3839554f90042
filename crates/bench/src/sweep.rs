//! The sweep scenario: one port (80) over a routed /16 in which every
//! address is live, so the figure that matters is the packet rate the
//! engine sustains, per wall-clock second and per CPU-second, with every
//! address still found.
//!
//! The lab host is the gateway of the lab's whole `198.18.0.0/15` and
//! answers for every address in it (`Lab::route_range_to`), listening on
//! port 80; the swept /16 is the half of the /15 that does not hold the
//! scanner's link. Portolan, masscan and ZMap each run once per `--runs`
//! at full speed (masscan and ZMap are told a rate far above what one core
//! sends, so they send as fast as they can). Portolan also sweeps a /20,
//! an /18, the /16 once more and the whole /15 (the lab's largest range;
//! its link /24 holds two live addresses only), to show that its memory
//! does not grow with the number of targets.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use portolan_lab::{Host, Lab, TcpService};

use crate::harness::{Row, peer, print_table, sibling_binary};
use crate::measure::{Cost, run_measured};

/// The swept port.
const PORT: u16 = 80;
/// Longest one sweep may take.
const LIMIT: Duration = Duration::from_secs(120);
/// How long masscan and ZMap wait for late answers after sending (their
/// `--wait` and `--cooldown-time`).
const PEER_WAIT: Duration = Duration::from_secs(2);
/// The rate masscan and ZMap are asked for: more than one core can send.
const UNBOUNDED_RATE: &str = "20000000";

/// Where a tool's results are and how to read them.
struct Reading {
    path: std::path::PathBuf,
    /// Addresses swept.
    addresses: u64,
    /// Packets sent, from the results or fixed by the command.
    sent: fn(&str) -> Option<u64>,
    /// The addresses found open.
    found: fn(&str) -> BTreeSet<String>,
    /// The tool's fixed wait after sending.
    wait: Duration,
}

struct Sweep {
    lab: Lab,
    _listener: TcpService,
    /// The swept /16, e.g. `198.19.0.0`.
    network: [u8; 2],
    dir: std::path::PathBuf,
}

impl Sweep {
    fn new() -> Result<Sweep, String> {
        let lab = Lab::builder()
            .hosts(1)
            .build()
            .map_err(|e| format!("cannot build the lab (run as root): {e}"))?;
        let host = lab.host(0);
        let listener = host
            .listen_tcp([PORT])
            .map_err(|e| format!("listener: {e}"))?;
        lab.route_range_to(host, "198.18.0.0/15")
            .map_err(|e| format!("routed range: {e}"))?;
        // The half of the /15 without the scanner's link.
        let link = host.ipv4().octets()[1];
        let network = [198, if link == 18 { 19 } else { 18 }];
        let dir = std::env::temp_dir().join(format!("portolan-sweep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Sweep {
            lab,
            _listener: listener,
            network,
            dir,
        })
    }

    fn host(&self) -> &Host {
        self.lab.host(0)
    }

    /// The swept range with prefix length `len` (15 or longer).
    fn range(&self, len: u8) -> String {
        let second = if len < 16 { 18 } else { self.network[1] };
        format!("{}.{second}.0.0/{len}", self.network[0])
    }

    /// Runs `command` and reads what it found.
    fn run(&self, label: &str, command: Command, reading: Reading) -> Row {
        let _ = std::fs::remove_file(&reading.path);
        let cost = run_measured(command, LIMIT, Stdio::null());
        let text = std::fs::read_to_string(&reading.path).unwrap_or_default();
        let found = (reading.found)(&text).len() as u64;
        let sent = (reading.sent)(&text);
        Row::new(
            label.to_string(),
            cost,
            sent.map(|n| n as f64 / cost.wall.as_secs_f64().max(1e-9)),
            describe(found, reading.addresses, sent, cost, reading.wait),
        )
    }

    /// The median (by wall time) of `runs` runs of `one`.
    fn median(&self, runs: usize, one: impl Fn() -> Row) -> Row {
        let mut rows: Vec<Row> = (0..runs).map(|_| one()).collect();
        rows.sort_by_key(|r| r.wall());
        rows.swap_remove(rows.len() / 2)
    }

    fn portolan(&self, len: u8) -> Row {
        let out = self.dir.join("portolan.jsonl");
        let mut cmd = self.lab.scanner().command(sibling_binary("portolan"));
        cmd.args(["-sS", "-Pn", "-n", "--no-progress", "-p", &PORT.to_string()])
            .arg("-oJ")
            .arg(&out)
            .arg(self.range(len));
        let reading = Reading {
            path: out,
            addresses: 1 << (32 - len),
            sent: crate::parse::portolan_packets_sent,
            found: portolan_open_addresses,
            wait: Duration::ZERO,
        };
        self.run(&format!("portolan -sS /{len}"), cmd, reading)
    }

    fn masscan(&self, binary: &Path, macs: &(String, String)) -> Row {
        let out = self.dir.join("masscan.txt");
        let host = self.host();
        let mut cmd = self.lab.scanner().command(binary);
        cmd.args(["-p", &PORT.to_string(), "--rate", UNBOUNDED_RATE])
            .args(["-e", host.scanner_interface()])
            .args(["--adapter-ip", &host.scanner_ipv4().to_string()])
            .args(["--adapter-mac", &macs.0])
            .args(["--router-mac", &macs.1])
            .args(["--wait", &PEER_WAIT.as_secs().to_string(), "-oL"])
            .arg(&out)
            .arg(self.range(16));
        let reading = Reading {
            path: out,
            addresses: 1 << 16,
            sent: |_| Some(1 << 16),
            found: masscan_open_addresses,
            wait: PEER_WAIT,
        };
        self.run("masscan (max rate)", cmd, reading)
    }

    fn zmap(&self, binary: &Path, macs: &(String, String)) -> Row {
        let out = self.dir.join("zmap.txt");
        // ZMap's default blocklist excludes 198.18.0.0/15, the lab's
        // range: give it an empty one.
        let blocklist = self.dir.join("empty-blocklist");
        let _ = std::fs::write(&blocklist, "");
        let host = self.host();
        let mut cmd = self.lab.scanner().command(binary);
        cmd.args(["-p", &PORT.to_string(), "-r", UNBOUNDED_RATE])
            .args(["-i", host.scanner_interface()])
            .args(["-S", &host.scanner_ipv4().to_string()])
            .args(["-G", &macs.1])
            .arg("-b")
            .arg(&blocklist)
            .args(["-c", &PEER_WAIT.as_secs().to_string()])
            .args(["-q", "--disable-syslog", "-o"])
            .arg(&out)
            .arg(self.range(16));
        let reading = Reading {
            path: out,
            addresses: 1 << 16,
            sent: |_| Some(1 << 16),
            found: |text| {
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect()
            },
            wait: PEER_WAIT,
        };
        self.run("zmap (max rate)", cmd, reading)
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// "found N/M, K pkt per CPU-second", and for tools that wait a fixed
/// time after sending, the rate over the time before that wait.
fn describe(found: u64, addresses: u64, sent: Option<u64>, cost: Cost, wait: Duration) -> String {
    let per = |secs: f64| {
        sent.map_or("-".to_string(), |n| {
            format!("{:.0}", n as f64 / secs.max(1e-9))
        })
    };
    let mut text = format!(
        "found {found}/{addresses}, {} pkt/cpu-s",
        per(cost.cpu.as_secs_f64())
    );
    if !wait.is_zero() {
        let sending = cost.wall.saturating_sub(wait).as_secs_f64();
        text.push_str(&format!(
            ", {} pkt/s before its {}s wait",
            per(sending),
            wait.as_secs()
        ));
    }
    text
}

fn portolan_open_addresses(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "port" && v["state"] == "open")
        .filter_map(|v| v["addr"].as_str().map(String::from))
        .collect()
}

/// masscan's `-oL`: `open tcp PORT ADDR TIMESTAMP`.
fn masscan_open_addresses(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[0] == "open").then(|| f[3].to_string())
        })
        .collect()
}

/// Runs the sweep scenario.
pub fn sweep_bench(runs: usize) -> Result<(), String> {
    let sweep = Sweep::new()?;
    println!(
        "Sweep of port {PORT} over {} (65536 live addresses behind a lab gateway); median of {runs} run(s)",
        sweep.range(16)
    );
    let host = sweep.host();
    let macs = (
        crate::mac_of(sweep.lab.scanner(), host.scanner_interface())?,
        crate::mac_of(host.namespace(), host.interface())?,
    );
    let mut rows = vec![sweep.median(runs, || sweep.portolan(16))];
    if let Some(binary) = peer("masscan", "apt-get install masscan") {
        rows.push(sweep.median(runs, || sweep.masscan(&binary, &macs)));
    }
    if let Some(binary) = peer("zmap", "apt-get install zmap") {
        rows.push(sweep.median(runs, || sweep.zmap(&binary, &macs)));
    }
    print_table(&rows);
    println!("pkt/s: packets sent / wall time; pkt/cpu-s: packets sent / CPU time (user + system)");
    println!();
    println!("Portolan's memory against the number of targets (one run each)");
    let rows: Vec<Row> = [20u8, 18, 16]
        .iter()
        .map(|&len| sweep.portolan(len))
        .collect();
    print_table(&rows);
    Ok(())
}
