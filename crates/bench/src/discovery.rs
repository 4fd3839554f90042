//! The discovery scenario (issue 4's benchmark): which hosts are up, and
//! how fast and at what cost each tool finds them, in three parts.
//!
//! 1. **A bridged segment** of [`SEGMENT_HOSTS`] lab hosts, every
//!    [`SILENT_EVERY`]-th of which drops all IP traffic (but Neighbor
//!    Discovery; ARP is not `inet` traffic, so it still answers ARP):
//!    `portolan -sn -n` and `nmap -sn -n` over the segment's /24, where
//!    both ask by ARP. The truth is the segment's hosts plus the scanner's
//!    own address.
//! 2. **A routed /16** behind a lab gateway, of which only [`LIVE`]
//!    addresses drawn pseudo-randomly from [`SEED`] exist (the gateway holds
//!    each on its loopback; for the rest it answers rate-limited ICMP host
//!    unreachables, as a router would): `portolan -sn -n` against
//!    `nmap -sn -n`, at `-T4` and at `--min-rate 50000`, all sending
//!    nmap's default probes (ICMP echo and timestamp, SYN to 443, ACK to
//!    80).
//! 3. **A sweep of that /16** on port 80 without discovery (`-Pn`; the
//!    gateway listens on port 80 of every address it holds): Portolan,
//!    masscan and ZMap at an equal rate ([`EQUAL_RATE`] packets/s) and at
//!    their maximal rates.
//!
//! Each row gives the live hosts found out of the truth (and any false
//! ones), wall time, CPU time, peak memory, ratios to the first row, and
//! packets per second where the count is known (Portolan's summary;
//! masscan's and ZMap's one SYN per address). Packets go only to the lab's
//! namespaces. Every discovery run is stopped after [`LIMIT`]: nmap at its
//! default timing and at `-T4` need longer for the /16, so their rows give
//! the wall time as a lower bound (`>`), no CPU time (it dies with the
//! stopped process) and the hosts found until then, and are not repeated.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use portolan_lab::{Lab, Namespace};

use crate::harness::{Row, median, peer, print_table, sibling_binary};
use crate::parse;
use crate::sweep::{self, Live, Reading, SIXTEEN_PORTS, Scratch, Sweep, UNBOUNDED_RATE};

/// Hosts on the bridged segment.
pub const SEGMENT_HOSTS: usize = 30;
/// Every this many segment hosts, one drops all IP traffic.
pub const SILENT_EVERY: usize = 10;
/// Live addresses in the routed /16.
pub const LIVE: usize = 300;
/// The seed that scatters them.
pub const SEED: u64 = 0x706f_7274_6f6c_616e;
/// The rate every sweeper gets in the equal-rate comparison.
pub const EQUAL_RATE: u32 = 100_000;
/// Longest one discovery run may take (nmap at its default timing is the
/// slowest).
const LIMIT: Duration = Duration::from_secs(300);

/// A tool that lists the hosts up.
struct Pinger {
    name: &'static str,
    binary: PathBuf,
    /// Flags every run gets.
    base: &'static [&'static str],
    /// The flag naming the results file.
    output: &'static str,
    sent: fn(&str) -> Option<u64>,
    found: fn(&str) -> BTreeSet<String>,
}

impl Pinger {
    fn portolan() -> Pinger {
        Pinger {
            name: "portolan",
            binary: sibling_binary("portolan"),
            base: &["-sn", "-n", "--no-progress", "--no-db"],
            output: "-oJ",
            sent: parse::portolan_packets_sent,
            found: parse::portolan_up_hosts,
        }
    }

    fn nmap(binary: PathBuf) -> Pinger {
        Pinger {
            name: "nmap",
            binary,
            base: &["-sn", "-n"],
            output: "-oX",
            sent: |_| None,
            found: parse::nmap_up_hosts,
        }
    }

    /// Runs from `scanner` (whose send rate is sampled on `interface`)
    /// against `target` with `flags` added, and compares the hosts found
    /// up with `live`.
    fn ping(
        &self,
        (scanner, interface): (&Namespace, &str),
        dir: &Scratch,
        target: &str,
        flags: &[&str],
        live: &Live,
    ) -> Row {
        let out = dir.join(&format!("{}.out", self.name));
        let mut cmd = scanner.command(&self.binary);
        cmd.args(self.base)
            .args(flags)
            .arg(self.output)
            .arg(&out)
            .arg(target);
        let reading = Reading {
            path: out,
            sent: self.sent,
            found: self.found,
            wait: Duration::ZERO,
        };
        let mut label = format!("{} -sn", self.name);
        for flag in flags {
            label.push(' ');
            label.push_str(flag);
        }
        sweep::run(
            &label,
            cmd,
            reading,
            live,
            LIMIT,
            Some((scanner.name(), interface)),
        )
    }
}

/// Portolan, then nmap (if installed) with each of `nmap_flags`.
fn pingers(nmap_flags: &[&'static [&'static str]]) -> Vec<(Pinger, &'static [&'static str])> {
    let mut pingers = vec![(Pinger::portolan(), &[][..])];
    if let Some(binary) = peer("nmap", "apt-get install nmap") {
        for flags in nmap_flags {
            pingers.push((Pinger::nmap(binary.clone()), *flags));
        }
    }
    pingers
}

/// Drops every IP packet but Neighbor Discovery (ARP still passes).
fn silence(host: &Namespace) -> Result<(), String> {
    host.nft(
        "table inet silent {\n chain input {\n type filter hook input priority -5;\n \
         icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n drop\n }\n}\n",
    )
    .map_err(|e| format!("firewall of {}: {e}", host.name()))
}

fn segment_part(runs: usize) -> Result<(), String> {
    let lab = Lab::builder()
        .segment(SEGMENT_HOSTS)
        .build()
        .map_err(|e| format!("cannot build the lab (run as root): {e}"))?;
    let segment = lab.segment(0);
    let silent: Vec<_> = segment
        .hosts()
        .iter()
        .skip(SILENT_EVERY - 1)
        .step_by(SILENT_EVERY)
        .collect();
    for host in &silent {
        silence(host)?;
    }
    let mut up: BTreeSet<Ipv4Addr> = segment.hosts().iter().map(|h| h.ipv4()).collect();
    up.insert(segment.scanner_ipv4());
    let live = Live::Only(up);
    let target = format!("{}/24", segment.subnet().ipv4(0));
    let dir = Scratch::new("discovery")?;
    println!(
        "Discovery on a bridged segment, {target}: {SEGMENT_HOSTS} hosts ({} dropping all IP) and the scanner; median of {runs} run(s)",
        silent.len()
    );
    let rows: Vec<Row> = pingers(&[&[]])
        .iter()
        .map(|(pinger, flags)| {
            median(runs, || {
                pinger.ping(
                    (lab.scanner(), segment.scanner_interface()),
                    &dir,
                    &target,
                    flags,
                    &live,
                )
            })
        })
        .collect();
    print_table(&rows);
    Ok(())
}

fn routed_parts(runs: usize) -> Result<(), String> {
    let sweep = Sweep::scattered(LIVE, SEED)?;
    let target = sweep.range(16);
    let dir = Scratch::new("discovery")?;
    println!(
        "Discovery on a routed {target} behind a lab gateway, {LIVE} live addresses scattered in it; median of {runs} run(s)"
    );
    let rows: Vec<Row> = pingers(&[&[], &["-T4"], &["--min-rate", "50000"]])
        .iter()
        .map(|(pinger, flags)| {
            median(runs, || {
                pinger.ping(sweep.scanner(), &dir, &target, flags, sweep.live())
            })
        })
        .collect();
    print_table(&rows);
    println!();
    let masscan = peer("masscan", "apt-get install masscan");
    let zmap = peer("zmap", "apt-get install zmap");
    let equal = EQUAL_RATE.to_string();
    for (heading, rate, flags) in [
        (
            format!("{EQUAL_RATE} packets/s"),
            EQUAL_RATE,
            &["--max-rate", &equal][..],
        ),
        ("maximal rates".to_string(), UNBOUNDED_RATE, &[][..]),
    ] {
        println!(
            "Sweep of port {} over {target} without discovery ({LIVE} live addresses), {heading}; median of {runs} run(s)",
            sweep::PORT
        );
        let mut rows = vec![median(runs, || sweep.portolan(16, flags))];
        if let Some(binary) = &masscan {
            rows.push(median(runs, || sweep.masscan(binary, rate)));
        }
        if let Some(binary) = &zmap {
            rows.push(median(runs, || sweep.zmap(binary, rate)));
        }
        print_table(&rows);
        println!();
    }
    Ok(())
}

/// The sparse /16 alone, for quick turns on the sweep engine: Portolan's
/// `-sn` and its one-port sweep, masscan's and ZMap's, at maximal rates
/// (`portolan-bench sparse`; `discovery` runs it with nmap and the
/// segment too).
pub fn sparse_bench(runs: usize) -> Result<(), String> {
    let sweep = Sweep::scattered(LIVE, SEED)?;
    let target = sweep.range(16);
    let dir = Scratch::new("sparse")?;
    println!(
        "Sparse {target} behind a lab gateway, {LIVE} live addresses scattered in it, maximal rates; median of {runs} run(s)"
    );
    let mut rows = vec![median(runs, || {
        Pinger::portolan().ping(sweep.scanner(), &dir, &target, &[], sweep.live())
    })];
    // `--open`: open ports only, as masscan and ZMap write (without it,
    // Portolan writes a line for each of the million filtered ports of
    // the 16-port sweep, and that writing is most of its CPU time).
    rows.push(median(runs, || sweep.portolan(16, &["--open"])));
    let equal = EQUAL_RATE.to_string();
    rows.push(median(runs, || {
        sweep.portolan(16, &["--open", "--max-rate", &equal])
    }));
    rows.push(median(runs, || {
        sweep.portolan_ports(16, SIXTEEN_PORTS, &["--open"])
    }));
    if let Some(binary) = peer("masscan", "apt-get install masscan") {
        rows.push(median(runs, || sweep.masscan(&binary, UNBOUNDED_RATE)));
        rows.push(median(runs, || {
            sweep.masscan_ports(&binary, UNBOUNDED_RATE, Some(SIXTEEN_PORTS))
        }));
    }
    if let Some(binary) = peer("zmap", "apt-get install zmap") {
        rows.push(median(runs, || sweep.zmap(&binary, UNBOUNDED_RATE)));
        rows.push(median(runs, || sweep.zmap_icmp(&binary, UNBOUNDED_RATE)));
    }
    print_table(&rows);
    println!("pkt/s: packets sent / wall time; pkt/cpu-s: packets sent / CPU time (user + system)");
    println!();
    lossy_part(&sweep, runs)?;
    println!();
    println!("The engine alone (--offline, nothing sent): probes per second and peak memory");
    print_table(&[median(runs, || sweep.portolan_offline())]);
    Ok(())
}

/// The sparse /16's one-port sweep with 10% of packets lost each way at
/// the gateway (issue 18's goal 3): Portolan at its default confidence and
/// at two lower ones (`--sweep-confidence`), masscan's and ZMap's one
/// probe per address. Found against probes per address.
fn lossy_part(sweep: &Sweep, runs: usize) -> Result<(), String> {
    sweep
        .host()
        .random_loss(10)
        .map_err(|e| format!("loss rule: {e}"))?;
    println!(
        "The same one-port sweep with 10% random loss each way at the gateway; median of {runs} run(s)"
    );
    let mut rows = vec![median(runs, || sweep.portolan(16, &["--open"]))];
    for confidence in ["0.99", "0.95"] {
        rows.push(median(runs, || {
            sweep.portolan(16, &["--open", "--sweep-confidence", confidence])
        }));
    }
    rows.extend(sweep.peers_one_port(runs));
    print_table(&rows);
    println!("(a live address is missed by k tries with a chance near 0.19^k: 5 tries by default)");
    sweep
        .host()
        .random_loss(0)
        .map_err(|e| format!("loss rule: {e}"))
}

/// Runs the discovery scenario.
pub fn discovery_bench(runs: usize) -> Result<(), String> {
    segment_part(runs)?;
    println!();
    routed_parts(runs)?;
    println!("found: live hosts found / live hosts (+ addresses reported that do not exist)");
    println!("pkt/s: packets sent / wall time; pkt/cpu-s: packets sent / CPU time (user + system)");
    Ok(())
}
