//! `portolan-bench`: Portolan against its peers on the same lab targets in
//! the same run, printed as ratios.
//!
//! Usage: `portolan-bench connect [--runs N]` (run as root; `scripts/bench`
//! builds everything and runs it). Each scenario builds a lab host in a
//! network namespace, scans it with every tool that is installed, and
//! prints wall time, CPU time and peak memory, the ratios to Portolan, and
//! how each tool's port states compare with the truth the lab was built
//! with. Packets go only to the lab's namespaces.

mod measure;
mod parse;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use measure::{Cost, run_measured};
use parse::States;
use portolan_lab::Lab;

/// Ports with a listener on the benchmark host.
const OPEN_PORTS: [u16; 20] = [
    21, 22, 23, 25, 53, 80, 110, 143, 443, 993, 995, 3306, 5432, 5900, 6379, 8080, 8443, 9200,
    11211, 27017,
];
/// Ports whose SYNs the benchmark host drops.
const DROPPED: std::ops::RangeInclusive<u16> = 40000..=42999;
/// Longest a single tool run may take.
const TOOL_LIMIT: Duration = Duration::from_secs(600);

fn truth(port: u16) -> &'static str {
    if OPEN_PORTS.contains(&port) {
        "open"
    } else if DROPPED.contains(&port) {
        "filtered"
    } else {
        "closed"
    }
}

/// How a tool's states compare with the truth.
fn accuracy(states: &States, open_only: bool) -> String {
    let mut wrong: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for port in 1..=65535u16 {
        let want = truth(port);
        let got = states.get(&port).map_or("missing", String::as_str);
        let counts = if open_only {
            (want == "open") != (got == "open")
        } else {
            want != got
        };
        if counts {
            *wrong
                .entry((
                    want,
                    if open_only && got == "missing" {
                        "not-open"
                    } else {
                        got
                    },
                ))
                .or_default() += 1;
        }
    }
    if wrong.is_empty() {
        if open_only {
            "exact (open ports only)".to_string()
        } else {
            "exact".to_string()
        }
    } else {
        let parts: Vec<String> = wrong
            .iter()
            .map(|((want, got), n)| format!("{n} {want}->{got}"))
            .collect();
        parts.join(", ")
    }
}

struct Row {
    tool: String,
    cost: Cost,
    accuracy: String,
}

fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    exe.with_file_name(name)
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let home_cargo = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin"));
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(home_cargo)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn median_row(mut rows: Vec<Row>) -> Row {
    rows.sort_by_key(|r| r.cost.wall);
    let mid = rows.len() / 2;
    rows.swap_remove(mid)
}

fn connect_bench(runs: usize) -> Result<(), String> {
    let lab = Lab::builder()
        .hosts(1)
        .build()
        .map_err(|e| format!("cannot build the lab (run as root): {e}"))?;
    let host = lab.host(0);
    let _listeners = host
        .listen_tcp(OPEN_PORTS)
        .map_err(|e| format!("listeners: {e}"))?;
    host.drop_tcp(DROPPED)
        .map_err(|e| format!("firewall: {e}"))?;
    let target = host.ipv4().to_string();
    let dir = std::env::temp_dir().join(format!("portolan-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;

    println!(
        "Connect scan of all 65535 TCP ports of a lab host ({target}): {} open, {} dropped, the rest closed; median of {runs} run(s)",
        OPEN_PORTS.len(),
        DROPPED.clone().count()
    );
    let portolan = sibling_binary("portolan");
    let mut results: Vec<Row> = Vec::new();

    let mut variants: Vec<(String, Vec<String>)> = vec![
        ("portolan -sT".into(), vec!["-sT".into()]),
        ("portolan -sT -T4".into(), vec!["-sT".into(), "-T4".into()]),
    ];
    for (label, extra) in variants.drain(..) {
        let rows = (0..runs)
            .map(|i| {
                let out = dir.join(format!("portolan-{i}.jsonl"));
                let mut cmd = lab.scanner().command(&portolan);
                cmd.args(&extra)
                    .args(["-p-", "-n", "--no-progress", "-oJ"])
                    .arg(&out)
                    .arg(&target);
                let cost = run_measured(cmd, TOOL_LIMIT, Stdio::null());
                let text = std::fs::read_to_string(&out).unwrap_or_default();
                Row {
                    tool: label.clone(),
                    cost,
                    accuracy: accuracy(&parse::portolan_jsonl(&text), false),
                }
            })
            .collect();
        results.push(median_row(rows));
    }

    if let Some(nmap) = find_in_path("nmap") {
        let rows = (0..runs)
            .map(|i| {
                let out = dir.join(format!("nmap-{i}.xml"));
                let mut cmd = lab.scanner().command(&nmap);
                cmd.args(["-sT", "-p-", "-T4", "-n", "-Pn", "-oX"])
                    .arg(&out)
                    .arg(&target);
                let cost = run_measured(cmd, TOOL_LIMIT, Stdio::null());
                let text = std::fs::read_to_string(&out).unwrap_or_default();
                Row {
                    tool: "nmap -sT -T4".into(),
                    cost,
                    accuracy: accuracy(&parse::nmap_xml(&text), false),
                }
            })
            .collect();
        results.push(median_row(rows));
    } else {
        println!("nmap not installed: skipped (apt-get install nmap)");
    }

    if let Some(rustscan) = find_in_path("rustscan") {
        let rows = (0..runs)
            .map(|i| {
                let out = dir.join(format!("rustscan-{i}.txt"));
                let file = std::fs::File::create(&out).expect("output file");
                let mut cmd = lab.scanner().command(&rustscan);
                cmd.args(["-a", &target, "-r", "1-65535", "-g", "--ulimit", "20000"]);
                let cost = run_measured(cmd, TOOL_LIMIT, Stdio::from(file));
                let text = std::fs::read_to_string(&out).unwrap_or_default();
                Row {
                    tool: "rustscan".into(),
                    cost,
                    accuracy: accuracy(&parse::rustscan_greppable(&text), true),
                }
            })
            .collect();
        results.push(median_row(rows));
    } else {
        println!("rustscan not installed: skipped (cargo install rustscan)");
    }

    print_table(&results);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn print_table(rows: &[Row]) {
    let Some(base) = rows.first() else {
        return;
    };
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "{:<18} {:>9} {:>9} {:>9} {:>10} {:>10}  accuracy",
        "tool", "wall s", "cpu s", "rss MiB", "wall/ours", "cpu/ours"
    );
    for r in rows {
        println!(
            "{:<18} {:>9.2} {:>9.2} {:>9.1} {:>10.2} {:>10.2}  {}{}",
            r.tool,
            secs(r.cost.wall),
            secs(r.cost.cpu),
            r.cost.max_rss_kib as f64 / 1024.0,
            secs(r.cost.wall) / secs(base.cost.wall).max(1e-9),
            secs(r.cost.cpu) / secs(base.cost.cpu).max(1e-9),
            r.accuracy,
            match r.cost.status {
                Some(0) => String::new(),
                Some(c) => format!(" (exit {c})"),
                None => " (killed)".to_string(),
            }
        );
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut runs = 3;
    let mut scenario = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => match it.next().and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => runs = n,
                _ => {
                    eprintln!("portolan-bench: --runs needs a positive number");
                    return ExitCode::from(2);
                }
            },
            "connect" => scenario = Some(a.clone()),
            other => {
                eprintln!("portolan-bench: unknown argument {other:?} (scenarios: connect)");
                return ExitCode::from(2);
            }
        }
    }
    let result = match scenario.as_deref().unwrap_or("connect") {
        "connect" => connect_bench(runs),
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
