//! What every scenario shares: the lab host with its known truth, running
//! one tool `runs` times and keeping the median run, and the result table.
//!
//! The benchmark host has [`OPEN_PORTS`] listening, drops SYNs to
//! [`DROPPED`] and lets the kernel refuse the rest, so every port's true
//! state is known ([`truth`]). A [`Tool`] says how to run a scanner and how
//! to read what it wrote; [`Bench::measure`] runs it under
//! [`run_measured`], reads its states, and keeps the run with the median
//! wall time.
//!
//! masscan's receive thread waits in `poll(2)` for the next packet before
//! it checks whether the scan is over, so on the lab's silent link it
//! outlives its `--wait` by 10-30 s, until some stray packet arrives. For
//! tools marked [`Tool::heartbeat`] the host sends the scanner one small
//! UDP datagram every [`HEARTBEAT`] (as any live network would), so they
//! exit on time.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use portolan_lab::{Host, Lab, TcpService, in_namespace};

use crate::measure::{Cost, run_measured};
use crate::parse::States;

/// Ports with a listener on the benchmark host.
pub const OPEN_PORTS: [u16; 20] = [
    21, 22, 23, 25, 53, 80, 110, 143, 443, 993, 995, 3306, 5432, 5900, 6379, 8080, 8443, 9200,
    11211, 27017,
];
/// Ports whose SYNs the benchmark host drops.
pub const DROPPED: std::ops::RangeInclusive<u16> = 40000..=42999;
/// Interval of the host's datagrams to the scanner for [`Tool::heartbeat`].
pub const HEARTBEAT: Duration = Duration::from_millis(20);

/// The true state of `port` on the benchmark host.
fn truth(port: u16) -> &'static str {
    if OPEN_PORTS.contains(&port) {
        "open"
    } else if DROPPED.contains(&port) {
        "filtered"
    } else {
        "closed"
    }
}

/// How a tool's states for ports 1-65535 compare with the truth: "exact",
/// or counts of `want->got` mismatches. With `open_only` (tools that report
/// open ports only) only open versus not open counts.
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
            let got = if open_only && got == "missing" {
                "not-open"
            } else {
                got
            };
            *wrong.entry((want, got)).or_default() += 1;
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

/// What a tool's output says: port states and, when known, how many
/// packets it sent.
pub struct Scan {
    /// Port states read from the output.
    pub states: States,
    /// Packets sent, if the tool reports it (or it is fixed by the command).
    pub sent: Option<u64>,
}

/// How to run one tool and read its results.
pub struct Tool<'a> {
    /// The row's label.
    pub label: String,
    /// The command for one run, given the path its results go to.
    pub command: Box<dyn Fn(&Path) -> Command + 'a>,
    /// The results are the tool's standard output, rather than a file the
    /// command names.
    pub stdout_is_output: bool,
    /// Reads the results.
    pub read: fn(&str) -> Scan,
    /// The tool reports open ports only.
    pub open_only: bool,
    /// Longest a single run may take.
    pub limit: Duration,
    /// The tool needs traffic on the link to notice that it is done (see
    /// the module docs).
    pub heartbeat: bool,
}

/// While alive, the host sends the scanner a one-byte UDP datagram (to the
/// discard port, which the scanner's kernel refuses) every [`HEARTBEAT`].
pub struct Heartbeat {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Starts the datagrams from `host` to the scanner.
    pub fn start(host: &Host) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let namespace = host.name().to_string();
        let to = SocketAddr::from((host.scanner_ipv4(), 9));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let _ = in_namespace(&namespace, move || {
                let Ok(socket) = UdpSocket::bind(("0.0.0.0", 0)) else {
                    return;
                };
                while !stopped.load(Ordering::Relaxed) {
                    let _ = socket.send_to(b"x", to);
                    std::thread::sleep(HEARTBEAT);
                }
            });
        });
        Heartbeat {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The label prefix `--only` keeps (the rows of other tools are not run),
/// for a quick A/B of one tool between builds.
static ONLY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Keeps only the tools whose label starts with `prefix` (`--only`).
pub fn keep_only(prefix: String) {
    let _ = ONLY.set(prefix);
}

/// Whether the tool labelled `label` is run (see [`keep_only`]).
pub fn wanted(label: &str) -> bool {
    ONLY.get().is_none_or(|p| label.starts_with(p.as_str()))
}

/// One table row: a tool's median run.
pub struct Row {
    tool: String,
    cost: Cost,
    /// Packets sent per wall-clock second, when the count is known.
    pps: Option<f64>,
    accuracy: String,
}

impl Row {
    /// A row measured outside [`Bench::measure`].
    pub fn new(tool: String, cost: Cost, pps: Option<f64>, accuracy: String) -> Row {
        Row {
            tool,
            cost,
            pps,
            accuracy,
        }
    }
}

/// The lab host every scenario scans, and a scratch directory for results.
pub struct Bench {
    lab: Lab,
    _listeners: TcpService,
    dir: PathBuf,
    runs: usize,
    files: Cell<usize>,
}

impl Bench {
    /// Builds the lab host (needs root) for `runs` runs per tool.
    pub fn new(runs: usize) -> Result<Self, String> {
        let lab = Lab::builder()
            .hosts(1)
            .build()
            .map_err(|e| format!("cannot build the lab (run as root): {e}"))?;
        let host = lab.host(0);
        let listeners = host
            .listen_tcp(OPEN_PORTS)
            .map_err(|e| format!("listeners: {e}"))?;
        host.drop_tcp(DROPPED)
            .map_err(|e| format!("firewall: {e}"))?;
        let dir = std::env::temp_dir().join(format!("portolan-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Bench {
            lab,
            _listeners: listeners,
            dir,
            runs,
            files: Cell::new(0),
        })
    }

    /// The lab (its scanner namespace runs the tools).
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// The benchmark host.
    pub fn host(&self) -> &Host {
        self.lab.host(0)
    }

    /// The benchmark host's IPv4 address, as a command-line argument.
    pub fn target(&self) -> String {
        self.host().ipv4().to_string()
    }

    /// The one-line description of the host for a scenario's heading.
    pub fn describe(&self, scan: &str) -> String {
        format!(
            "{scan} of all 65535 TCP ports of a lab host ({}): {} open, {} dropped, the rest closed; median of {} run(s)",
            self.target(),
            OPEN_PORTS.len(),
            DROPPED.clone().count(),
            self.runs
        )
    }

    /// Runs `tool` the configured number of times and returns the row of
    /// the run with the median wall time.
    pub fn measure(&self, tool: &Tool) -> Row {
        median(self.runs, || self.measure_once(tool))
    }

    fn measure_once(&self, tool: &Tool) -> Row {
        let n = self.files.get();
        self.files.set(n + 1);
        let out = self.dir.join(format!("run-{n}.out"));
        let stdout = if tool.stdout_is_output {
            match File::create(&out) {
                Ok(f) => Stdio::from(f),
                Err(e) => {
                    return Row {
                        tool: tool.label.clone(),
                        cost: Cost::default(),
                        pps: None,
                        accuracy: format!("cannot create {}: {e}", out.display()),
                    };
                }
            }
        } else {
            Stdio::null()
        };
        let heartbeat = tool.heartbeat.then(|| Heartbeat::start(self.host()));
        let cost = run_measured((tool.command)(&out), tool.limit, stdout);
        drop(heartbeat);
        let scan = (tool.read)(&std::fs::read_to_string(&out).unwrap_or_default());
        Row {
            tool: tool.label.clone(),
            cost,
            pps: scan
                .sent
                .map(|sent| sent as f64 / cost.wall.as_secs_f64().max(1e-9)),
            accuracy: accuracy(&scan.states, tool.open_only),
        }
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The row of the run with the median wall time among `runs` runs of
/// `one`. A run stopped at its time limit ends the series (the next ones
/// would be stopped too) and is the row.
pub fn median(runs: usize, mut one: impl FnMut() -> Row) -> Row {
    let mut rows = Vec::with_capacity(runs);
    for _ in 0..runs {
        let row = one();
        if row.cost.timed_out() {
            return row;
        }
        rows.push(row);
    }
    rows.sort_by_key(|r| r.cost.wall);
    rows.swap_remove(rows.len() / 2)
}

/// A small deterministic mix (SplitMix64's finaliser).
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A binary next to this one (`target/release/portolan`).
pub fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    exe.with_file_name(name)
}

/// `name` in `PATH` or `~/.cargo/bin`; if missing, prints a skip line
/// with `install` as the hint.
pub fn peer(name: &str, install: &str) -> Option<PathBuf> {
    let home_cargo = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin"));
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(home_cargo)
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        println!("{name} not installed: skipped ({install})");
    }
    found
}

/// Prints the rows, with ratios to the first row (Portolan's default).
pub fn print_table(rows: &[Row]) {
    let Some(base) = rows.first() else {
        return;
    };
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}  accuracy",
        "tool", "wall s", "cpu s", "rss MiB", "wall/ours", "cpu/ours", "pkt/s"
    );
    for r in rows {
        // A run stopped at its limit took longer than its wall time says,
        // and its CPU time is lost with the killed process.
        let (more, cpu, cpu_ratio) = if r.cost.timed_out() {
            (">", "-".to_string(), "-".to_string())
        } else {
            (
                "",
                format!("{:.2}", secs(r.cost.cpu)),
                format!("{:.2}", secs(r.cost.cpu) / secs(base.cost.cpu).max(1e-9)),
            )
        };
        println!(
            "{:<34} {:>8} {:>8} {:>8.1} {:>9} {:>9} {:>9}  {}{}",
            r.tool,
            format!("{more}{:.2}", secs(r.cost.wall)),
            cpu,
            r.cost.max_rss_kib as f64 / 1024.0,
            format!(
                "{more}{:.2}",
                secs(r.cost.wall) / secs(base.cost.wall).max(1e-9)
            ),
            cpu_ratio,
            r.pps.map_or("-".to_string(), |p| format!("{p:.0}")),
            r.accuracy,
            match r.cost.status {
                Some(0) => String::new(),
                _ if r.cost.timed_out() => " (stopped at the time limit)".to_string(),
                Some(c) => format!(" (exit {c})"),
                None => " (killed)".to_string(),
            }
        );
    }
}
