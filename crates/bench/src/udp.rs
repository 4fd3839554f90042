//! The UDP scenario (issue 5's benchmark): `portolan -sU` against
//! `nmap -sU` on one lab host that keeps Linux's default ICMP rate limit
//! (a burst of six port unreachables, then about one a second), on two
//! port lists:
//!
//! 1. **Top 100**: Portolan's 100 most common UDP ports, given to both tools
//!    as the same explicit list (the tools' own top-100 lists differ). Of
//!    them, the [`ANSWERING`] ones have a UDP responder, every
//!    [`DROPPED_EVERY`]-th is dropped by nftables, the rest are closed.
//! 2. **A fixed list**: [`FIXED_OPEN`] answering, [`FIXED_DROPPED`] dropped,
//!    [`FIXED_CLOSED`] closed.
//! 3. **The fixed list on [`HOSTS`] hosts** at once, each behind its own
//!    limit: a scan paced per host takes about as long as for one.
//!
//! Each list is scanned by Portolan at `-T4`, by nmap at its default
//! timing and at `-T4` (whose fewer retries give up on closed ports), and
//! by both again with
//! `--defeat-icmp-ratelimit` (nmap's option too: silence reads
//! closed|filtered instead of waiting out the limit). Rows give wall time,
//! CPU time, peak memory, ratios to the first row and how each port's
//! state compares with the truth (answering = open, dropped =
//! open|filtered, closed = closed). The limit bounds any exact scan: past
//! the burst, one closed port per second. Packets go only to the lab's
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
/// The pause before each run: the host's ICMP bucket (six errors, one more
/// a second) refills, so no run starts behind the one before.
const REST: Duration = Duration::from_secs(7);

/// Hosts of the third case.
pub const HOSTS: usize = 4;

/// A port list and its truth (the same on every host scanned).
struct Case {
    name: String,
    ports: Vec<u16>,
    truth: BTreeMap<u16, &'static str>,
    hosts: usize,
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
        hosts: 1,
    }
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
        hosts: 1,
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
}

impl Runner {
    fn run(&self, lab: &Lab, case: &Case, targets: &[String], out: &Path) -> Row {
        std::thread::sleep(REST);
        let mut cmd = lab.scanner().command(&self.binary);
        cmd.args(&self.args).args(["-p", &case.list(), "-n", "-Pn"]);
        if self.nmap {
            cmd.arg("-oX");
        } else {
            cmd.args(["--no-progress", "--no-db", "-oJ"]);
        }
        cmd.arg(out).args(targets);
        let cost = run_measured(cmd, LIMIT, Stdio::null());
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

/// Runs the UDP scenario with `runs` runs per tool.
pub fn udp_bench(runs: usize) -> Result<(), String> {
    let lab = Lab::builder()
        .hosts(HOSTS)
        .build()
        .map_err(|e| format!("cannot build the lab (run as root): {e}"))?;
    let dir = std::env::temp_dir().join(format!("portolan-bench-udp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut runners = vec![Runner {
        label: "portolan -sU -T4".into(),
        binary: sibling_binary("portolan"),
        args: vec!["-sU".into(), "-T4".into()],
        nmap: false,
    }];
    let nmap = peer("nmap", "apt-get install nmap");
    if let Some(binary) = &nmap {
        for timing in [None, Some("-T4")] {
            let mut args = vec!["-sU".to_string()];
            args.extend(timing.map(str::to_string));
            runners.push(Runner {
                label: format!("nmap {}", args.join(" ")),
                binary: binary.clone(),
                args,
                nmap: true,
            });
        }
    }
    runners.push(Runner {
        label: "portolan -sU -T4 --defeat-icmp-ratelimit".into(),
        binary: sibling_binary("portolan"),
        args: vec!["-sU".into(), "-T4".into(), "--defeat-icmp-ratelimit".into()],
        nmap: false,
    });
    if let Some(binary) = &nmap {
        runners.push(Runner {
            label: "nmap -sU -T4 --defeat-icmp-ratelimit".into(),
            binary: binary.clone(),
            args: vec!["-sU".into(), "-T4".into(), "--defeat-icmp-ratelimit".into()],
            nmap: true,
        });
    }
    let mut file = 0;
    let many = Case {
        name: format!("a fixed list on {HOSTS} hosts"),
        hosts: HOSTS,
        ..fixed_case()
    };
    for case in [top_case(), fixed_case(), many] {
        let hosts = &lab.hosts()[..case.hosts];
        let targets: Vec<String> = hosts.iter().map(|h| h.ipv4().to_string()).collect();
        let open: Vec<u16> = case
            .truth
            .iter()
            .filter(|(_, s)| **s == "open")
            .map(|(p, _)| *p)
            .collect();
        let mut _responders: Vec<UdpEcho> = Vec::new();
        for host in hosts {
            _responders.push(
                host.listen_udp(open.iter().copied())
                    .map_err(|e| format!("UDP responders: {e}"))?,
            );
        }
        let dropped: Vec<u16> = case
            .truth
            .iter()
            .filter(|(_, s)| **s == "open|filtered")
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
            "UDP scan of {} ({} ports) on {} ({}) with Linux's default ICMP rate limit: \
             {} answering, {} dropped, {} closed; median of {runs} run(s)",
            case.name,
            case.ports.len(),
            if case.hosts == 1 {
                "a lab host"
            } else {
                "lab hosts"
            },
            targets.join(", "),
            count("open"),
            count("open|filtered"),
            count("closed"),
        );
        let rows: Vec<Row> = runners
            .iter()
            .map(|runner| {
                median(runs, || {
                    file += 1;
                    runner.run(&lab, &case, &targets, &dir.join(format!("udp-{file}.out")))
                })
            })
            .collect();
        print_table(&rows);
        println!();
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "With --defeat-icmp-ratelimit both tools stop waiting for the limit: closed ports past \
         the burst read closed|filtered (counted above as closed->closed|filtered)."
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
