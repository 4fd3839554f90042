//! The OS detection scenario (issue 14's benchmark): `-O` on every lab
//! stack, Portolan with its own database and with nmap's, and nmap, in the
//! same run.
//!
//! One lab host per stack ([`portolan_lab::STACKS`]: the Linux kernel
//! configured by per-namespace sysctls) and per user-space persona
//! ([`portolan_lab::PERSONAS`]: Windows-like, FreeBSD-like, embedded),
//! each with TCP port 22 open and 23 closed. Each tool fingerprints all of them in one command
//! (`-sS -O -p 22,23 -n -Pn`), and then the default stack alone; the run
//! with the median wall time is shown. Per host: the top match, its
//! accuracy, and whether its family is right (Linux for every stack, the
//! persona's family for a persona; Portolan's own database must also
//! name the stack or persona).
//! Packets go only to the lab's namespaces.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use portolan_lab::{Lab, PERSONAS, STACKS};

use crate::harness::{peer, sibling_binary};
use crate::measure::{Cost, run_measured};

/// Longest a single run may take.
const LIMIT: Duration = Duration::from_secs(300);
/// nmap's own database, as Debian installs it.
const NMAP_DB: &str = "/usr/share/nmap/nmap-os-db";

/// One host's top match.
#[derive(Clone, Debug, Default)]
struct Top {
    name: String,
    accuracy: u64,
    family: String,
}

/// Reads Portolan's JSON lines: each host's top match, by address.
fn portolan_tops(text: &str) -> Vec<(String, Top)> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "host")
        .map(|v| {
            let m = &v["os"][0];
            (
                v["addr"].as_str().unwrap_or("").to_string(),
                Top {
                    name: m["name"].as_str().unwrap_or("").to_string(),
                    accuracy: m["accuracy"].as_u64().unwrap_or(0),
                    family: m["classes"][0]["family"].as_str().unwrap_or("").to_string(),
                },
            )
        })
        .collect()
}

/// The value of attribute `name` in the first element of `text` that has
/// it (nmap's XML: one attribute per name per element, values escaped).
fn attribute(text: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = text.find(&key)? + key.len();
    let end = text[start..].find('"')? + start;
    Some(text[start..end].replace("&amp;", "&"))
}

/// Reads nmap's XML: each host's first `osmatch` and its first `osclass`.
fn nmap_tops(text: &str) -> Vec<(String, Top)> {
    text.split("<host ")
        .skip(1)
        .map(|host| {
            let addr = attribute(host, "addr").unwrap_or_default();
            let top = match host.find("<osmatch ") {
                Some(at) => {
                    let m = &host[at..];
                    Top {
                        name: attribute(m, "name").unwrap_or_default(),
                        accuracy: attribute(m, "accuracy")
                            .and_then(|a| a.parse().ok())
                            .unwrap_or(0),
                        family: attribute(m, "osfamily").unwrap_or_default(),
                    }
                }
                None => Top::default(),
            };
            (addr, top)
        })
        .collect()
}

struct Contender {
    label: String,
    nmap: bool,
    args: Vec<String>,
    binary: std::path::PathBuf,
}

/// `scripts/bench os`.
pub fn os_bench(runs: usize) -> Result<(), String> {
    let lab = Lab::builder()
        .hosts(STACKS.len() + PERSONAS.len())
        .without_icmp_rate_limits()
        .build()
        .map_err(|e| format!("cannot build the lab (run as root): {e}"))?;
    let mut services = Vec::new();
    let mut responders = Vec::new();
    let mut addrs = Vec::new();
    // Per host: its name, the family that is true, and the suffix of its
    // own entry in Portolan's database.
    let mut truth: Vec<(&str, &str, String)> = Vec::new();
    for (host, stack) in lab.hosts().iter().zip(&STACKS) {
        host.apply_stack(stack).map_err(|e| e.to_string())?;
        services.push(host.listen_tcp([22]).map_err(|e| e.to_string())?);
        addrs.push(host.ipv4().to_string());
        truth.push((stack.name, "Linux", format!("(lab stack: {})", stack.name)));
    }
    for (host, persona) in lab.hosts().iter().skip(STACKS.len()).zip(PERSONAS) {
        responders.push(
            host.respond_as(host.ipv4(), persona, &[22])
                .map_err(|e| e.to_string())?,
        );
        addrs.push(host.ipv4().to_string());
        truth.push((
            persona.name,
            persona.family,
            format!("(lab persona: {})", persona.name),
        ));
    }
    let dir = std::env::temp_dir().join(format!("portolan-bench-os-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut contenders = vec![Contender {
        label: "portolan -O".into(),
        nmap: false,
        args: Vec::new(),
        binary: sibling_binary("portolan"),
    }];
    if Path::new(NMAP_DB).exists() {
        contenders.push(Contender {
            label: "portolan -O --osdb nmap's".into(),
            nmap: false,
            args: vec!["--osdb".into(), NMAP_DB.into()],
            binary: sibling_binary("portolan"),
        });
    }
    if let Some(nmap) = peer("nmap", "apt-get install nmap") {
        contenders.push(Contender {
            label: "nmap -O".into(),
            nmap: true,
            args: Vec::new(),
            binary: nmap,
        });
    }
    println!(
        "OS detection (-sS -O -p 22,23) of {} lab stacks (Linux {} kernel, per-namespace sysctls) and {} user-space personas, all in one run, then the default stack alone; median of {runs} run(s); the machine's 2 cores are shared with other work",
        STACKS.len(),
        kernel_release(),
        PERSONAS.len(),
    );
    let mut n = 0;
    for (scope, targets) in [
        ("all stacks", addrs.clone()),
        ("one host", vec![addrs[0].clone()]),
    ] {
        println!("\n{scope}:");
        println!(
            "{:<28} {:>8} {:>8} {:>14} {:>14}",
            "tool", "wall s", "vs nmap", "family right", "own entry"
        );
        let mut rows = Vec::new();
        for c in &contenders {
            let mut outcomes: Vec<(Cost, Vec<(String, Top)>)> = Vec::new();
            for _ in 0..runs {
                n += 1;
                let out = dir.join(format!("os-{n}.out"));
                let mut cmd = lab.scanner().command(&c.binary);
                cmd.args(["-sS", "-O", "-p", "22,23", "-n", "-Pn"]);
                if c.nmap {
                    cmd.arg("-oX");
                } else {
                    cmd.args(["--no-progress", "-oJ"]);
                }
                cmd.arg(&out).args(&c.args).args(&targets);
                let cost = run_measured(cmd, LIMIT, Stdio::null());
                let text = std::fs::read_to_string(&out).unwrap_or_default();
                let tops = if c.nmap {
                    nmap_tops(&text)
                } else {
                    portolan_tops(&text)
                };
                let stopped = cost.timed_out();
                outcomes.push((cost, tops));
                if stopped {
                    break;
                }
            }
            outcomes.sort_by_key(|o| o.0.wall);
            let middle = outcomes.len() / 2;
            rows.push((c, outcomes.swap_remove(middle)));
        }
        let nmap_wall = rows
            .iter()
            .find(|(c, _)| c.nmap)
            .map(|(_, (cost, _))| cost.wall.as_secs_f64());
        for (c, (cost, tops)) in &rows {
            let wall = cost.wall.as_secs_f64();
            let truth_of = |addr: &str| addrs.iter().position(|a| a == addr).map(|i| &truth[i]);
            let family = tops
                .iter()
                .filter(|(addr, t)| truth_of(addr).is_some_and(|w| t.family == w.1))
                .count();
            let stack = tops
                .iter()
                .filter(|(addr, t)| truth_of(addr).is_some_and(|w| t.name.ends_with(&w.2)))
                .count();
            let ratio =
                nmap_wall.map_or("-".to_string(), |n| format!("{:.2}x", n / wall.max(1e-6)));
            println!(
                "{:<28} {:>8.2} {:>8} {:>14} {:>14}",
                c.label,
                wall,
                ratio,
                format!("{family}/{}", targets.len()),
                format!("{stack}/{}", targets.len()),
            );
        }
        for (c, (_, tops)) in &rows {
            for (addr, t) in tops {
                let stack = addrs
                    .iter()
                    .position(|a| a == addr)
                    .map_or("?", |i| truth[i].0);
                println!(
                    "  {:<26} {:<15} {:<14} {:>3}% {}",
                    c.label,
                    addr,
                    stack,
                    t.accuracy,
                    if t.name.is_empty() {
                        "(no match)"
                    } else {
                        &t.name
                    }
                );
            }
        }
    }
    println!("\nvs nmap: nmap's wall time over the tool's (higher is faster)");
    drop(services);
    drop(responders);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}
