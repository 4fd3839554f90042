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
//! an /18 and the /16 once more, to show that its memory does not grow
//! with the number of targets.
//!
//! [`Sweep`] also serves the discovery scenario, whose routed /16 holds a
//! scattered few hundred live addresses only ([`Sweep::scattered`]); the
//! tools' invocations ([`Sweep::portolan`], [`Sweep::masscan`],
//! [`Sweep::zmap`]) and the comparison of what they found with the live
//! set ([`Live`], [`run`]) are shared.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use portolan_lab::{Host, Lab, Namespace, TcpService};

use crate::harness::{Heartbeat, Row, median, peer, print_table, sibling_binary};
use crate::measure::{Cost, run_measured};
use crate::parse;
use crate::txrate::TxSampler;

/// The swept port.
pub const PORT: u16 = 80;
/// Longest one sweep may take.
const LIMIT: Duration = Duration::from_secs(120);
/// How long masscan and ZMap wait for late answers after sending (their
/// `--wait` and `--cooldown-time`).
const PEER_WAIT: Duration = Duration::from_secs(2);
/// Sixteen ports with [`PORT`] among them (the issue's `-p1-16` sweep,
/// moved so that the live hosts' one open port is in it): the cost of a
/// probe when each address gets several.
pub const SIXTEEN_PORTS: &str = "65-80";

/// The rate masscan and ZMap are asked for to send as fast as they can:
/// more than one core can send.
pub const UNBOUNDED_RATE: u32 = 20_000_000;

/// The addresses that truly answer, which a tool's findings are checked
/// against.
pub enum Live {
    /// Every address of `count` from `first` on.
    Range { first: Ipv4Addr, count: u64 },
    /// Exactly these addresses.
    Only(BTreeSet<Ipv4Addr>),
}

impl Live {
    fn count(&self) -> u64 {
        match self {
            Live::Range { count, .. } => *count,
            Live::Only(set) => set.len() as u64,
        }
    }

    fn contains(&self, addr: Ipv4Addr) -> bool {
        match self {
            Live::Range { first, count } => {
                (u32::from(addr) as u64).wrapping_sub(u32::from(*first) as u64) < *count
            }
            Live::Only(set) => set.contains(&addr),
        }
    }
}

/// Where a tool's results are and how to read them.
pub struct Reading {
    /// The results file.
    pub path: PathBuf,
    /// Packets sent, from the results or fixed by the command.
    pub sent: fn(&str) -> Option<u64>,
    /// The addresses found (open, or up).
    pub found: fn(&str) -> BTreeSet<String>,
    /// The tool's fixed wait after sending.
    pub wait: Duration,
}

/// Runs `command` under `limit` and compares what it found with `live`;
/// with `sampled` (namespace, interface), the interface's peak send rate
/// is added (see [`TxSampler`]).
pub fn run(
    label: &str,
    command: Command,
    reading: Reading,
    live: &Live,
    limit: Duration,
    sampled: Option<(&str, &str)>,
) -> Row {
    let _ = std::fs::remove_file(&reading.path);
    let sampler = sampled.map(|(namespace, interface)| TxSampler::start(namespace, interface));
    let cost = run_measured(command, limit, Stdio::null());
    let peak = sampler.and_then(TxSampler::stop);
    let text = std::fs::read_to_string(&reading.path).unwrap_or_default();
    let found = (reading.found)(&text);
    let hits = found
        .iter()
        .filter(|a| a.parse().is_ok_and(|a| live.contains(a)))
        .count() as u64;
    let sent = (reading.sent)(&text);
    let mut accuracy = describe(
        hits,
        found.len() as u64 - hits,
        live.count(),
        sent,
        cost,
        reading.wait,
    );
    // Answers lost on this machine, not on the path (Portolan says).
    if let Some(dropped) = parse::portolan_kernel_drops(&text).filter(|&n| n > 0) {
        accuracy.push_str(&format!("; {dropped} dropped by the kernel"));
    }
    if let Some(peak) = peak {
        accuracy.push_str(&format!(", peak {peak:.0} pkt/s"));
    }
    Row::new(
        label.to_string(),
        cost,
        sent.map(|n| n as f64 / cost.wall.as_secs_f64().max(1e-9)),
        accuracy,
    )
}

impl Reading {
    /// Portolan's JSON lines at `path`: packets from the summary, the
    /// addresses with an open port.
    fn portolan(path: PathBuf) -> Reading {
        Reading {
            path,
            sent: parse::portolan_packets_sent,
            found: parse::portolan_open_addresses,
            wait: Duration::ZERO,
        }
    }
}

/// A scratch directory for results, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    /// `portolan-<what>-<pid>` in the temporary directory.
    pub fn new(what: &str) -> Result<Scratch, String> {
        let dir = std::env::temp_dir().join(format!("portolan-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A lab host as the gateway of a routed /16, listening on [`PORT`].
pub struct Sweep {
    lab: Lab,
    _listener: TcpService,
    /// The swept /16, e.g. `198.19.0.0`.
    network: [u8; 2],
    /// Who answers in the /16.
    live: Live,
    /// The scanner's and the gateway's MAC addresses, for masscan and ZMap.
    macs: (String, String),
    dir: Scratch,
}

impl Sweep {
    fn build() -> Result<(Lab, TcpService, [u8; 2]), String> {
        let lab = Lab::builder()
            .hosts(1)
            .build()
            .map_err(|e| format!("cannot build the lab (run as root): {e}"))?;
        let host = lab.host(0);
        let listener = host
            .listen_tcp([PORT])
            .map_err(|e| format!("listener: {e}"))?;
        // The half of the /15 without the scanner's link.
        let link = host.ipv4().octets()[1];
        let network = [198, if link == 18 { 19 } else { 18 }];
        Ok((lab, listener, network))
    }

    fn with(lab: Lab, listener: TcpService, network: [u8; 2], live: Live) -> Result<Sweep, String> {
        let host = lab.host(0);
        let macs = (
            crate::mac_of(lab.scanner(), host.scanner_interface())?,
            crate::mac_of(host.namespace(), host.interface())?,
        );
        Ok(Sweep {
            lab,
            _listener: listener,
            network,
            live,
            macs,
            dir: Scratch::new("sweep")?,
        })
    }

    /// Every address of the lab's /15 is live (the host takes them all).
    pub fn every_address() -> Result<Sweep, String> {
        let (lab, listener, network) = Sweep::build()?;
        lab.route_range_to(lab.host(0), "198.18.0.0/15")
            .map_err(|e| format!("routed range: {e}"))?;
        let live = Live::Range {
            first: Ipv4Addr::new(network[0], network[1], 0, 0),
            count: 1 << 16,
        };
        Sweep::with(lab, listener, network, live)
    }

    /// Only `count` addresses of the /16, drawn pseudo-randomly from
    /// `seed`, are live: the host holds each on its loopback; the rest of
    /// the /16 is routed to it and does not exist (the host, which does not
    /// forward, answers with rate-limited ICMP host unreachables, as a
    /// router would).
    pub fn scattered(count: usize, seed: u64) -> Result<Sweep, String> {
        let (lab, listener, network) = Sweep::build()?;
        let host = lab.host(0);
        let live = scattered_addresses(network, count, seed);
        let range = format!("{}.{}.0.0/16", network[0], network[1]);
        lab.scanner()
            .ip(&["route", "add", &range, "via", &host.ipv4().to_string()])
            .map_err(|e| format!("route to {range}: {e}"))?;
        let script: String = live
            .iter()
            .map(|a| format!("address add {a}/32 dev lo\n"))
            .collect();
        host.exec("ip", &["-batch", "-"], Some(&script))
            .map_err(|e| format!("live addresses: {e}"))?;
        Sweep::with(lab, listener, network, Live::Only(live))
    }

    /// The gateway.
    pub fn host(&self) -> &Host {
        self.lab.host(0)
    }

    /// The scanner's namespace and interface, whose send rate
    /// [`TxSampler`] samples.
    fn sampled(&self) -> Option<(&str, &str)> {
        let (scanner, interface) = self.scanner();
        Some((scanner.name(), interface))
    }

    /// The scanner's namespace and its interface towards the gateway.
    pub fn scanner(&self) -> (&Namespace, &str) {
        (self.lab.scanner(), self.host().scanner_interface())
    }

    /// Who answers in the /16.
    pub fn live(&self) -> &Live {
        &self.live
    }

    /// The scratch directory's `name`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The swept range with prefix length `len` (16 or longer).
    pub fn range(&self, len: u8) -> String {
        format!("{}.{}.0.0/{len}", self.network[0], self.network[1])
    }

    /// What a sweep of [`Sweep::range`]`(len)` should find.
    fn live_in(&self, len: u8) -> Live {
        let first = Ipv4Addr::new(self.network[0], self.network[1], 0, 0);
        let count = 1u64 << (32 - len);
        match &self.live {
            Live::Range { first, .. } => Live::Range {
                first: *first,
                count,
            },
            Live::Only(set) => {
                let range = Live::Range { first, count };
                Live::Only(set.iter().copied().filter(|a| range.contains(*a)).collect())
            }
        }
    }

    /// Portolan's version detection (`-sS -sV -p 22,80`, without
    /// discovery) over the range of prefix length `len`: its memory is
    /// what matters, hosts being written as each finishes.
    pub fn portolan_versions(&self, len: u8) -> Row {
        let out = self.file("portolan-sv.jsonl");
        let mut cmd = self.lab.scanner().command(sibling_binary("portolan"));
        cmd.args([
            "-sS",
            "-sV",
            "-Pn",
            "-n",
            "-T4",
            "--no-progress",
            "--no-db",
            "-p",
            "22,80",
        ])
        .arg("-oJ")
        .arg(&out)
        .arg(self.range(len));
        let reading = Reading::portolan(out);
        run(
            &format!("portolan -sS -sV -p 22,80 /{len}"),
            cmd,
            reading,
            &self.live_in(len),
            Duration::from_secs(600),
            None,
        )
    }

    /// Portolan's SYN sweep of port [`PORT`] over the range of prefix
    /// length `len`, without discovery, with `flags` added (e.g. a rate).
    pub fn portolan(&self, len: u8, flags: &[&str]) -> Row {
        self.portolan_ports(len, &PORT.to_string(), flags)
    }

    /// Portolan's SYN sweep of `ports` (which include [`PORT`], the one
    /// that is open) over the range of prefix length `len`.
    pub fn portolan_ports(&self, len: u8, ports: &str, flags: &[&str]) -> Row {
        let out = self.file("portolan.jsonl");
        let mut cmd = self.lab.scanner().command(sibling_binary("portolan"));
        cmd.args(["-sS", "-Pn", "-n", "--no-progress", "--no-db", "-p", ports])
            .args(flags)
            .arg("-oJ")
            .arg(&out)
            .arg(self.range(len));
        let reading = Reading::portolan(out);
        let mut label = format!("portolan -sS /{len}");
        if ports != PORT.to_string() {
            label.push_str(&format!(" -p{ports}"));
        }
        for flag in flags {
            label.push(' ');
            label.push_str(flag);
        }
        run(
            &label,
            cmd,
            reading,
            &self.live_in(len),
            LIMIT,
            self.sampled(),
        )
    }

    /// Portolan's whole engine with no socket (`--offline`) on a one-port
    /// sweep of `fd00:18::/104`, 16,777,216 lab addresses (a /8's worth),
    /// one try each: probes per second and peak memory. In the scanner's
    /// namespace, which has no route out, though nothing is sent.
    pub fn portolan_offline(&self) -> Row {
        let out = self.file("portolan-offline.txt");
        let mut cmd = self.lab.scanner().command(sibling_binary("portolan"));
        cmd.args([
            "--offline",
            "-sS",
            "-Pn",
            "-n",
            "--max-retries",
            "0",
            "--no-progress",
            "--no-db",
            // Normal output with open ports only: the summary alone (a
            // JSON line per host would be gigabytes, and its writing the
            // figure).
            "--open",
            "-p",
            &PORT.to_string(),
            "-oN",
        ])
        .arg(&out)
        .arg("fd00:18::/104");
        let reading = Reading {
            path: out,
            sent: |text| {
                let line = text.lines().find(|l| l.starts_with("Packets: "))?;
                line.split_whitespace().nth(1)?.parse().ok()
            },
            found: |_| BTreeSet::new(),
            wait: Duration::ZERO,
        };
        run(
            "portolan --offline fd00:18::/104 (2^24)",
            cmd,
            reading,
            &Live::Only(BTreeSet::new()),
            LIMIT,
            // Nothing is sent.
            None,
        )
    }

    /// masscan's and ZMap's one-port sweeps of the /16 at their maximal
    /// rates (those installed), each the median of `runs`.
    pub fn peers_one_port(&self, runs: usize) -> Vec<Row> {
        let mut rows = Vec::new();
        if let Some(binary) = peer("masscan", "apt-get install masscan") {
            rows.push(median(runs, || self.masscan(&binary, UNBOUNDED_RATE)));
        }
        if let Some(binary) = peer("zmap", "apt-get install zmap") {
            rows.push(median(runs, || self.zmap(&binary, UNBOUNDED_RATE)));
        }
        rows
    }

    /// masscan's sweep of the /16 at `rate` packets/s ([`UNBOUNDED_RATE`]:
    /// as fast as it can). masscan sends from its own user-space stack, so
    /// it is given the scanner's interface, address and MAC and the
    /// gateway's MAC as the next hop; it runs with the host's heartbeat
    /// (see [`crate::harness`]).
    pub fn masscan(&self, binary: &Path, rate: u32) -> Row {
        self.masscan_ports(binary, rate, None)
    }

    /// masscan's sweep of [`SIXTEEN_PORTS`] (`sixteen`) or of [`PORT`].
    pub fn masscan_ports(&self, binary: &Path, rate: u32, sixteen: Option<&str>) -> Row {
        let out = self.file("masscan.txt");
        let host = self.host();
        let ports = sixteen.map_or(PORT.to_string(), str::to_owned);
        let mut cmd = self.lab.scanner().command(binary);
        cmd.args(["-p", &ports, "--rate", &rate.to_string()])
            .args(["-e", host.scanner_interface()])
            .args(["--adapter-ip", &host.scanner_ipv4().to_string()])
            .args(["--adapter-mac", &self.macs.0])
            .args(["--router-mac", &self.macs.1])
            .args(["--wait", &PEER_WAIT.as_secs().to_string(), "-oL"])
            .arg(&out)
            .arg(self.range(16));
        // One SYN per address and port.
        let sent: fn(&str) -> Option<u64> = match sixteen {
            Some(_) => |_| Some(16 << 16),
            None => |_| Some(1 << 16),
        };
        let reading = Reading {
            path: out,
            sent,
            found: parse::masscan_open_addresses,
            wait: PEER_WAIT,
        };
        let mut label = peer_label("masscan --rate", rate);
        if let Some(ports) = sixteen {
            label.push_str(&format!(" -p{ports}"));
        }
        let _heartbeat = Heartbeat::start(host);
        run(&label, cmd, reading, &self.live, LIMIT, self.sampled())
    }

    /// ZMap's sweep of the /16 at `rate` packets/s ([`UNBOUNDED_RATE`]: as
    /// fast as it can).
    pub fn zmap(&self, binary: &Path, rate: u32) -> Row {
        self.zmap_module(binary, rate, None)
    }

    /// ZMap's sweep with its ICMP echo module (`-M icmp_echoscan`): its
    /// host discovery, against `portolan -sn`.
    pub fn zmap_icmp(&self, binary: &Path, rate: u32) -> Row {
        self.zmap_module(binary, rate, Some("icmp_echoscan"))
    }

    fn zmap_module(&self, binary: &Path, rate: u32, module: Option<&str>) -> Row {
        let out = self.file("zmap.txt");
        // ZMap's default blocklist excludes 198.18.0.0/15, the lab's
        // range: give it an empty one.
        let blocklist = self.file("empty-blocklist");
        let _ = std::fs::write(&blocklist, "");
        let host = self.host();
        let mut cmd = self.lab.scanner().command(binary);
        match module {
            Some(module) => cmd.args(["-M", module]),
            None => cmd.args(["-p", &PORT.to_string()]),
        };
        cmd.args(["-r", &rate.to_string()])
            .args(["-i", host.scanner_interface()])
            .args(["-S", &host.scanner_ipv4().to_string()])
            .args(["-G", &self.macs.1])
            .arg("-b")
            .arg(&blocklist)
            .args(["-c", &PEER_WAIT.as_secs().to_string()])
            .args(["-q", "--disable-syslog", "-o"])
            .arg(&out)
            .arg(self.range(16));
        let reading = Reading {
            path: out,
            sent: |_| Some(1 << 16),
            found: parse::address_lines,
            wait: PEER_WAIT,
        };
        let label = match module {
            Some(module) => format!("{} -M {module}", peer_label("zmap -r", rate)),
            None => peer_label("zmap -r", rate),
        };
        run(&label, cmd, reading, &self.live, LIMIT, self.sampled())
    }
}

/// `"{flag} {rate}"`, or "(max rate)" for [`UNBOUNDED_RATE`].
fn peer_label(flag: &str, rate: u32) -> String {
    let tool = flag.split(' ').next().unwrap_or(flag);
    if rate == UNBOUNDED_RATE {
        format!("{tool} (max rate)")
    } else {
        format!("{flag} {rate}")
    }
}

/// `count` distinct addresses of the /16 `network` (never its first or
/// last), drawn with SplitMix64 from `seed`.
fn scattered_addresses(network: [u8; 2], count: usize, seed: u64) -> BTreeSet<Ipv4Addr> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut live = BTreeSet::new();
    while live.len() < count.min(65534) {
        let low = (next() & 0xffff) as u16;
        if low != 0 && low != 0xffff {
            let [c, d] = low.to_be_bytes();
            live.insert(Ipv4Addr::new(network[0], network[1], c, d));
        }
    }
    live
}

/// "found N/M" (and "K false" when some found addresses are not live),
/// packets per CPU-second, and for tools that wait a fixed time after
/// sending, the rate over the time before that wait.
fn describe(
    hits: u64,
    false_hits: u64,
    live: u64,
    sent: Option<u64>,
    cost: Cost,
    wait: Duration,
) -> String {
    let per = |secs: f64| {
        sent.map_or("-".to_string(), |n| {
            format!("{:.0}", n as f64 / secs.max(1e-9))
        })
    };
    let mut text = format!("found {hits}/{live}");
    if false_hits > 0 {
        text.push_str(&format!(" + {false_hits} false"));
    }
    if sent.is_some() {
        text.push_str(&format!(", {} pkt/cpu-s", per(cost.cpu.as_secs_f64())));
    }
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

/// Runs the wide version-detection scenario: `-sV -p 22,80` over ranges
/// of 4,096, 16,384 and 65,536 addresses of which a scattered few exist, for
/// Portolan's wall time and peak memory (which should not grow with the
/// number of hosts).
pub fn sv_memory_bench(runs: usize) -> Result<(), String> {
    let sweep = Sweep::scattered(300, 7)?;
    println!(
        "Version detection over mostly silent ranges of {} (300 scattered live addresses in the /16, port 80 open on each); median of {runs} run(s)",
        sweep.range(16)
    );
    let rows: Vec<Row> = [20u8, 18, 16]
        .iter()
        .map(|&len| median(runs, || sweep.portolan_versions(len)))
        .collect();
    print_table(&rows);
    Ok(())
}

/// Runs the sweep scenario.
pub fn sweep_bench(runs: usize) -> Result<(), String> {
    let sweep = Sweep::every_address()?;
    println!(
        "Sweep of port {PORT} over {} (65536 live addresses behind a lab gateway); median of {runs} run(s)",
        sweep.range(16)
    );
    let mut rows = vec![median(runs, || sweep.portolan(16, &[]))];
    rows.extend(sweep.peers_one_port(runs));
    print_table(&rows);
    println!("pkt/s: packets sent / wall time; pkt/cpu-s: packets sent / CPU time (user + system)");
    println!();
    println!("Portolan's memory against the number of targets (one run each)");
    let rows: Vec<Row> = [20u8, 18, 16]
        .iter()
        .map(|&len| sweep.portolan(len, &[]))
        .collect();
    print_table(&rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scattered_addresses_are_distinct_inside_and_reproducible() {
        let a = scattered_addresses([198, 19], 300, 4);
        assert_eq!(a.len(), 300);
        assert_eq!(a, scattered_addresses([198, 19], 300, 4));
        assert_ne!(a, scattered_addresses([198, 19], 300, 5));
        for addr in &a {
            let o = addr.octets();
            assert_eq!((o[0], o[1]), (198, 19));
            assert!(o[2..] != [0, 0] && o[2..] != [255, 255], "{addr}");
        }
    }

    #[test]
    fn live_ranges_and_sets() {
        let range = Live::Range {
            first: Ipv4Addr::new(198, 19, 0, 0),
            count: 1 << 16,
        };
        assert!(range.contains(Ipv4Addr::new(198, 19, 255, 255)));
        assert!(!range.contains(Ipv4Addr::new(198, 18, 255, 255)));
        assert!(!range.contains(Ipv4Addr::new(198, 20, 0, 0)));
        let only = Live::Only([Ipv4Addr::new(198, 19, 1, 2)].into());
        assert_eq!(only.count(), 1);
        assert!(only.contains(Ipv4Addr::new(198, 19, 1, 2)));
        assert!(!only.contains(Ipv4Addr::new(198, 19, 1, 3)));
    }

    #[test]
    fn labels_name_the_rate() {
        assert_eq!(peer_label("zmap -r", 100_000), "zmap -r 100000");
        assert_eq!(
            peer_label("masscan --rate", UNBOUNDED_RATE),
            "masscan (max rate)"
        );
    }
}
