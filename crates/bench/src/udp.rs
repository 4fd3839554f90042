//! The UDP scenario (issues 5 and 13's benchmark): `portolan -sU`
//! against `nmap -sU` on lab hosts that keep Linux's default ICMP rate
//! limit (a burst of six port unreachables, then about one a second, per
//! destination address), case by case:
//!
//! 1. **Two short lists** (issue 13's): 10 ports (3 answering, 2 dropped,
//!    5 closed) and 14 ports (6 answering, 2 silent open, 3 dropped,
//!    3 closed). Their closed ports fit in the burst: the floor is a
//!    round-trip timeout for the silent ports' retries.
//! 2. **Top 100**: Portolan's 100 most common UDP ports, given to both
//!    tools as the same explicit list (the tools' own top-100 lists
//!    differ). Of them, the [`ANSWERING`] ones have a UDP responder, every
//!    [`DROPPED_EVERY`]-th is dropped by nftables, the rest are closed.
//! 3. **A fixed list on [`HOSTS`] hosts** at once, each behind its own
//!    limit: a scan paced per host takes about as long as for one.
//! 4. **The 10-port list over a /24 segment** of [`SEGMENT_HOSTS`] lab
//!    hosts: the wall time stays close to one host's.
//! 5. **Top 1000** (Portolan's list) with [`SOURCES`] source addresses
//!    against nmap's default timing.
//!
//! Portolan runs at `-T4`, from one source address and from [`SOURCES`]
//! (`-S` with a range on the lab segment, claimed by Portolan with ARP and
//! ND answers: each source has its own share of the target's limit); nmap
//! at its default timing and at `-T4` (whose fewer retries give up on
//! closed ports); on the top 100 both again with `--defeat-icmp-ratelimit`
//! (nmap's option too: silence reads closed|filtered instead of waiting
//! out the limit). Rows give wall time, CPU time, peak memory, ratios to
//! the first row and how each port's state compares with the truth
//! (answering = open, silent or dropped = open|filtered, closed =
//! closed). The limit bounds any exact scan from one source: past the
//! burst, one closed port per second. Packets go only to the lab's
//! namespaces.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use portolan_lab::{Lab, UdpEcho};

use crate::harness::{Row, median, peer, print_table, sibling_binary};
use crate::measure::run_measured;
use crate::parse::{self, States};

/// Ports with a UDP responder (it answers any datagram with one).
pub const ANSWERING: [u16; 6] = [53, 123, 161, 500, 1900, 11211];
/// Top-100 ports whose datagrams the host drops: every 20th of the list.
pub const DROPPED_EVERY: usize = 20;
/// The fixed list: answering, dropped and closed ports.
pub const FIXED_OPEN: [u16; 4] = [53, 123, 161, 11211];
/// Dropped ports of the fixed list.
pub const FIXED_DROPPED: std::ops::RangeInclusive<u16> = 2000..=2009;
/// Closed ports of the fixed list.
pub const FIXED_CLOSED: std::ops::RangeInclusive<u16> = 3000..=3029;
/// Longest one run may take.
const LIMIT: Duration = Duration::from_secs(600);
/// Longest one run of the top 1000 may take (nmap's default timing needs
/// about a second per closed port).
const LONG_LIMIT: Duration = Duration::from_secs(1500);
/// Source addresses of the runs with several.
pub const SOURCES: u8 = 8;
/// Hosts of the /24 segment case.
pub const SEGMENT_HOSTS: usize = 250;
/// Issue 13's first short list: answering, dropped, closed.
pub const SHORT_A: ([u16; 3], [u16; 2], [u16; 5]) =
    ([53, 123, 161], [2000, 2001], [3000, 3001, 3002, 3003, 3004]);
/// Its second: answering, silent open, dropped, closed.
pub const SHORT_B: ([u16; 6], [u16; 2], [u16; 3], [u16; 3]) = (
    [53, 123, 161, 500, 1900, 11211],
    [67, 137],
    [2000, 2001, 2002],
    [3000, 3001, 3002],
);
/// The pause before each run: the host's ICMP bucket (six errors, one more
/// a second) refills, so no run starts behind the one before.
const REST: Duration = Duration::from_secs(7);

/// Hosts of the third case.
pub const HOSTS: usize = 4;

/// Where a case's targets are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hosts {
    /// The first n point-to-point hosts.
    Own(usize),
    /// Every host of the /24 segment.
    Segment,
}

/// A port list and its truth (the same on every host scanned).
struct Case {
    name: String,
    ports: Vec<u16>,
    truth: BTreeMap<u16, &'static str>,
    /// Ports bound by a socket that never answers (open, silent).
    silent: Vec<u16>,
    hosts: Hosts,
    limit: Duration,
}

impl Case {
    fn list(&self) -> String {
        let items: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        items.join(",")
    }

    /// "exact", or counts of `want->got` mismatches over the listed ports
    /// of every host.
    fn accuracy(&self, hosts: &[States]) -> String {
        let mut wrong: BTreeMap<(&str, &str), u32> = BTreeMap::new();
        for states in hosts {
            for (port, want) in &self.truth {
                let got = states.get(port).map_or("missing", String::as_str);
                if got != *want {
                    *wrong.entry((want, got)).or_default() += 1;
                }
            }
        }
        if wrong.is_empty() {
            return "exact".into();
        }
        let parts: Vec<String> = wrong
            .iter()
            .map(|((want, got), n)| format!("{n} {want}->{got}"))
            .collect();
        parts.join(", ")
    }
}

fn top_case() -> Case {
    let ports = portolan_targets::top_ports(portolan_targets::Protocol::Udp, 100);
    let mut truth = BTreeMap::new();
    for (i, &port) in ports.iter().enumerate() {
        let state = if ANSWERING.contains(&port) {
            "open"
        } else if i % DROPPED_EVERY == DROPPED_EVERY - 1 {
            "open|filtered"
        } else {
            "closed"
        };
        truth.insert(port, state);
    }
    Case {
        name: "Portolan's top 100 UDP ports".into(),
        ports,
        truth,
        silent: Vec::new(),
        hosts: Hosts::Own(1),
        limit: LIMIT,
    }
}

/// Portolan's top 1000: the [`ANSWERING`] ones answer, the rest closed.
fn top_1000_case() -> Case {
    let ports = portolan_targets::top_ports(portolan_targets::Protocol::Udp, 1000);
    let truth = ports
        .iter()
        .map(|&port| {
            let state = if ANSWERING.contains(&port) {
                "open"
            } else {
                "closed"
            };
            (port, state)
        })
        .collect();
    Case {
        name: "Portolan's top 1000 UDP ports".into(),
        ports,
        truth,
        silent: Vec::new(),
        hosts: Hosts::Own(1),
        limit: LONG_LIMIT,
    }
}

/// A short list of issue 13.
fn short_case(name: &str, open: &[u16], silent: &[u16], dropped: &[u16], closed: &[u16]) -> Case {
    let mut truth = BTreeMap::new();
    for &port in open {
        truth.insert(port, "open");
    }
    for &port in silent.iter().chain(dropped) {
        truth.insert(port, "open|filtered");
    }
    for &port in closed {
        truth.insert(port, "closed");
    }
    Case {
        name: name.into(),
        ports: truth.keys().copied().collect(),
        truth,
        silent: silent.to_vec(),
        hosts: Hosts::Own(1),
        limit: LIMIT,
    }
}

fn short_a() -> Case {
    let (open, dropped, closed) = SHORT_A;
    short_case("issue 13's 10-port list", &open, &[], &dropped, &closed)
}

fn short_b() -> Case {
    let (open, silent, dropped, closed) = SHORT_B;
    short_case("issue 13's 14-port list", &open, &silent, &dropped, &closed)
}

fn fixed_case() -> Case {
    let mut truth = BTreeMap::new();
    for port in FIXED_OPEN {
        truth.insert(port, "open");
    }
    for port in FIXED_DROPPED {
        truth.insert(port, "open|filtered");
    }
    for port in FIXED_CLOSED {
        truth.insert(port, "closed");
    }
    Case {
        name: "a fixed list".into(),
        ports: truth.keys().copied().collect(),
        truth,
        silent: Vec::new(),
        hosts: Hosts::Own(1),
        limit: LIMIT,
    }
}

/// Each host's part of a tool's output: the text about `addr` alone.
fn host_part(text: &str, addr: &str, nmap: bool) -> String {
    if nmap {
        let needle = format!("<address addr=\"{addr}\"");
        // The `<host>` element alone: the `<hosthint>`s nmap writes
        // between hosts name addresses too, without their ports.
        text.split("<host ")
            .skip(1)
            .map(|block| block.split("</host>").next().unwrap_or(""))
            .find(|block| block.contains(&needle))
            .unwrap_or("")
            .to_string()
    } else {
        let needle = format!("\"addr\":\"{addr}\"");
        text.lines()
            .filter(|line| line.contains(&needle))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One tool's run: its command line (without output and target) and how
/// its results are read.
struct Runner {
    label: String,
    binary: PathBuf,
    args: Vec<String>,
    nmap: bool,
    /// From [`SOURCES`] addresses of the target's segment.
    sources: bool,
}

impl Runner {
    fn run(&self, lab: &Lab, case: &Case, targets: &[String], out: &Path) -> Row {
        std::thread::sleep(REST);
        let mut cmd = lab.scanner().command(&self.binary);
        cmd.args(&self.args).args(["-p", &case.list(), "-n", "-Pn"]);
        if self.sources {
            let host = lab.host(0);
            let first = host.subnet().ipv4(100);
            cmd.args(["-e", host.scanner_interface(), "-S"])
                .arg(format!("{first}-{}", 100 + SOURCES - 1));
        }
        if self.nmap {
            cmd.arg("-oX");
        } else {
            cmd.args(["--no-progress", "--no-db", "-oJ"]);
        }
        cmd.arg(out).args(targets);
        let cost = run_measured(cmd, case.limit, Stdio::null());
        let text = std::fs::read_to_string(out).unwrap_or_default();
        let hosts: Vec<States> = targets
            .iter()
            .map(|addr| {
                let part = host_part(&text, addr, self.nmap);
                if self.nmap {
                    parse::nmap_xml(&part)
                } else {
                    parse::portolan_jsonl(&part)
                }
            })
            .collect();
        Row::new(self.label.clone(), cost, None, case.accuracy(&hosts))
    }
}

/// The runners of a case: Portolan from one source and (single-host
/// cases) from [`SOURCES`], nmap at default timing and `-T4`; with
/// `defeat`, both with `--defeat-icmp-ratelimit` too.
fn runners(nmap: Option<&PathBuf>, several_sources: bool, defeat: bool) -> Vec<Runner> {
    let portolan = |label: &str, extra: &[&str], sources: bool| Runner {
        label: label.into(),
        binary: sibling_binary("portolan"),
        args: ["-sU", "-T4"]
            .iter()
            .chain(extra)
            .map(|a| a.to_string())
            .collect(),
        nmap: false,
        sources,
    };
    let nmap_runner = |binary: &PathBuf, extra: &[&str]| {
        let args: Vec<String> = std::iter::once("-sU")
            .chain(extra.iter().copied())
            .map(str::to_string)
            .collect();
        Runner {
            label: format!("nmap {}", args.join(" ")),
            binary: binary.clone(),
            args,
            nmap: true,
            sources: false,
        }
    };
    let mut all = vec![portolan("portolan -sU -T4", &[], false)];
    if several_sources {
        all.push(portolan(
            &format!("portolan -sU -T4 -S <{SOURCES} addresses>"),
            &[],
            true,
        ));
    }
    if let Some(binary) = nmap {
        all.push(nmap_runner(binary, &[]));
        all.push(nmap_runner(binary, &["-T4"]));
    }
    if defeat {
        all.push(portolan(
            "portolan -sU -T4 --defeat-icmp-ratelimit",
            &["--defeat-icmp-ratelimit"],
            false,
        ));
        if let Some(binary) = nmap {
            all.push(nmap_runner(binary, &["-T4", "--defeat-icmp-ratelimit"]));
        }
    }
    all
}

/// Runs the UDP scenario with `runs` runs per tool.
pub fn udp_bench(runs: usize, short: bool) -> Result<(), String> {
    let lab = Lab::builder()
        .hosts(HOSTS)
        .segment(SEGMENT_HOSTS)
        .build()
        .map_err(|e| format!("cannot build the lab (run as root): {e}"))?;
    let dir = std::env::temp_dir().join(format!("portolan-bench-udp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let nmap = peer("nmap", "apt-get install nmap");
    let mut file = 0;
    let many = Case {
        name: format!("a fixed list on {HOSTS} hosts"),
        hosts: Hosts::Own(HOSTS),
        ..fixed_case()
    };
    let segment = Case {
        name: format!("issue 13's 10-port list on a /24 segment of {SEGMENT_HOSTS} hosts"),
        hosts: Hosts::Segment,
        ..short_a()
    };
    let top_1000 = top_1000_case();
    let cases: Vec<(Case, Vec<Runner>)> = vec![
        (short_a(), runners(nmap.as_ref(), true, false)),
        (short_b(), runners(nmap.as_ref(), true, false)),
        (top_case(), runners(nmap.as_ref(), true, true)),
        (many, runners(nmap.as_ref(), false, false)),
        (segment, runners(nmap.as_ref(), false, false)),
        (top_1000, {
            // Portolan from several sources against nmap's default timing.
            let mut r = runners(nmap.as_ref(), true, false);
            r.retain(|r| r.sources || r.args == ["-sU"]);
            r
        }),
    ];
    for (case, runners) in cases
        .iter()
        .filter(|(c, _)| !short || c.limit != LONG_LIMIT)
    {
        let hosts: &[portolan_lab::Host] = match case.hosts {
            Hosts::Own(n) => &lab.hosts()[..n],
            Hosts::Segment => lab.segment(0).hosts(),
        };
        let targets: Vec<String> = hosts.iter().map(|h| h.ipv4().to_string()).collect();
        let open: Vec<u16> = case
            .truth
            .iter()
            .filter(|(_, s)| **s == "open")
            .map(|(p, _)| *p)
            .collect();
        let mut _responders: Vec<UdpEcho> = Vec::new();
        let mut _silent = Vec::new();
        for host in hosts {
            _responders.push(
                host.listen_udp(open.iter().copied())
                    .map_err(|e| format!("UDP responders: {e}"))?,
            );
            if !case.silent.is_empty() {
                _silent.push(
                    host.listen_udp_silent(case.silent.iter().copied())
                        .map_err(|e| format!("silent UDP ports: {e}"))?,
                );
            }
        }
        let dropped: Vec<u16> = case
            .truth
            .iter()
            .filter(|(p, s)| **s == "open|filtered" && !case.silent.contains(p))
            .map(|(p, _)| *p)
            .collect();
        for host in hosts {
            host.clear_firewall()
                .map_err(|e| format!("firewall: {e}"))?;
            for &port in &dropped {
                host.drop_udp(port).map_err(|e| format!("firewall: {e}"))?;
            }
        }
        let count = |s: &str| case.truth.values().filter(|v| **v == s).count();
        println!(
            "UDP scan of {} ({} ports) on {} with Linux's default ICMP rate limit: \
             {} answering, {} silent open, {} dropped, {} closed; median of {} run(s)",
            case.name,
            case.ports.len(),
            match hosts {
                [one] => format!("a lab host ({})", one.ipv4()),
                many => format!("{} lab hosts", many.len()),
            },
            count("open"),
            case.silent.len(),
            count("open|filtered") - case.silent.len(),
            count("closed"),
            if case.limit == LONG_LIMIT { 1 } else { runs },
        );
        // The top 1000 once: nmap's run alone takes many minutes.
        let runs = if case.limit == LONG_LIMIT { 1 } else { runs };
        let rows: Vec<Row> = runners
            .iter()
            .map(|runner| {
                median(runs, || {
                    file += 1;
                    runner.run(&lab, case, &targets, &dir.join(format!("udp-{file}.out")))
                })
            })
            .collect();
        print_table(&rows);
        println!();
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "With --defeat-icmp-ratelimit both tools stop waiting for the limit: closed ports past \
         the burst read closed|filtered (counted above as closed->closed|filtered). With -S, \
         Portolan spreads its probes over {SOURCES} source addresses it claims on the lab \
         segment; the target limits each on its own."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_host_is_read_from_its_own_part() {
        let xml = "<nmaprun args=\"nmap 198.18.0.2 198.18.0.6\">\n\
            <hosthint><address addr=\"198.18.0.2\" addrtype=\"ipv4\"/></hosthint>\n\
            <host starttime=\"1\"><status state=\"up\"/>\n\
            <address addr=\"198.18.0.2\" addrtype=\"ipv4\"/>\n\
            <ports><port protocol=\"udp\" portid=\"53\"><state state=\"open\"/></port>\n\
            </ports></host>\n\
            <hosthint><address addr=\"198.18.0.6\" addrtype=\"ipv4\"/></hosthint>\n\
            <host starttime=\"1\"><status state=\"up\"/>\n\
            <address addr=\"198.18.0.6\" addrtype=\"ipv4\"/>\n\
            <ports><port protocol=\"udp\" portid=\"53\"><state state=\"closed\"/></port>\n\
            </ports></host></nmaprun>\n";
        let a = parse::nmap_xml(&host_part(xml, "198.18.0.2", true));
        let b = parse::nmap_xml(&host_part(xml, "198.18.0.6", true));
        assert_eq!(a.get(&53).map(String::as_str), Some("open"));
        assert_eq!(b.get(&53).map(String::as_str), Some("closed"));
        let jsonl = "{\"type\":\"port\",\"addr\":\"198.18.0.2\",\"proto\":\"udp\",\"port\":53,\"state\":\"open\"}\n\
            {\"type\":\"port\",\"addr\":\"198.18.0.6\",\"proto\":\"udp\",\"port\":53,\"state\":\"closed\"}\n";
        let a = parse::portolan_jsonl(&host_part(jsonl, "198.18.0.2", false));
        assert_eq!(a.get(&53).map(String::as_str), Some("open"));
        assert_eq!(a.len(), 1);
    }
}
