//! `portolan-bench history`: writing and querying the scan history at
//! scale, on SQLite and on PostgreSQL (a throw-away cluster from
//! `portolan-lab`), against ndiff on the same two scans.
//!
//! 1,000 synthetic scans of a /24 (251 hosts up, five down; per host ssh,
//! http, https with a certificate rotated every 60 scans, ident closed,
//! RDP filtered, and 8080 open in about 3% of scans; a quarter of the
//! hosts move to a new OpenSSH halfway) are imported through the library,
//! one transaction per scan. Then the binary answers `history host`,
//! `diff --last` and `audit --risky` (each the median of `runs`, process
//! start included), and the database's size per sighting (one port seen
//! by one scan) is reported. The peer: `ndiff` and `portolan diff` on the
//! two latest scans written as nmap XML. Nothing is sent on any network.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portolan_history::{History, Location, OpenOptions, ScanMeta};
use portolan_model::{
    HostReport, HostStatus, PortOutcome, PortService, PortState, Reason, ScanId, ScanResults,
    ScanType, ServiceInfo, ServiceMethod, TlsInfo,
};
use portolan_targets::{Protocol, Target};

use crate::harness::{mix, peer, sibling_binary};

const SCANS: usize = 1000;
const TARGETS: &str = "198.18.0.0/24";
const DAY: u64 = 86_400;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_790_000_000 + secs)
}

fn service(name: &str, product: &str, version: &str) -> ServiceInfo {
    ServiceInfo {
        name: name.into(),
        product: Some(product.into()),
        version: Some(version.into()),
        method: ServiceMethod::Probed,
        conf: 10,
        ..ServiceInfo::default()
    }
}

fn outcome(port: u16, state: PortState, reason: Reason) -> PortOutcome {
    PortOutcome {
        port,
        proto: Protocol::Tcp,
        state,
        reason,
        reason_ttl: Some(64),
        tries: if state == PortState::Filtered { 2 } else { 1 },
    }
}

/// Scan number `n` of the series.
fn synthetic_scan(n: usize) -> ScanResults {
    let start = at(n as u64 * DAY);
    let mut hosts = Vec::with_capacity(256);
    for i in 0..=255u8 {
        let addr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, i));
        let mut h = HostReport {
            target: Target::from_addr(addr),
            status: HostStatus::Up(Reason::EchoReply),
            reason_ttl: Some(64),
            mac: None,
            ports: Vec::new(),
            times: Default::default(),
            started: start + Duration::from_millis(u64::from(i) * 10),
            finished: start + Duration::from_millis(u64::from(i) * 10 + 5),
            services: Vec::new(),
            extra: Default::default(),
        };
        if i % 50 == 7 {
            h.status = HostStatus::Down;
            h.reason_ttl = None;
            hosts.push(h);
            continue;
        }
        let churn = mix((n as u64) << 8 | u64::from(i)) % 100 < 3;
        h.ports = vec![
            outcome(22, PortState::Open, Reason::SynAck),
            outcome(80, PortState::Open, Reason::SynAck),
            outcome(113, PortState::Closed, Reason::Reset),
            outcome(443, PortState::Open, Reason::SynAck),
            outcome(3389, PortState::Filtered, Reason::NoResponse),
            if churn {
                outcome(8080, PortState::Open, Reason::SynAck)
            } else {
                outcome(8080, PortState::Closed, Reason::Reset)
            },
        ];
        let ssh = if i % 4 == 0 && n >= SCANS / 2 {
            "9.3p1"
        } else {
            "9.2p1"
        };
        let rotation = (n / 60) as u64;
        let mut https = service("http", "nginx", "1.22.1");
        https.ssl = true;
        https.tls = Some(TlsInfo {
            protocol: "TLSv1.3".into(),
            subject: format!("CN=host{i}.lab"),
            issuer: "CN=Lab CA".into(),
            san: vec![format!("host{i}.lab")],
            not_before: Some(at(rotation * 60 * DAY)),
            not_after: Some(at(rotation * 60 * DAY + 90 * DAY)),
            key_type: "EC P-256".into(),
            ..TlsInfo::default()
        });
        h.services = vec![
            PortService {
                port: 22,
                proto: Protocol::Tcp,
                info: service("ssh", "OpenSSH", ssh),
            },
            PortService {
                port: 80,
                proto: Protocol::Tcp,
                info: service("http", "nginx", "1.22.1"),
            },
            PortService {
                port: 443,
                proto: Protocol::Tcp,
                info: https,
            },
        ];
        hosts.push(h);
    }
    ScanResults {
        schema: portolan_model::SCHEMA_VERSION,
        id: ScanId::new(),
        scanner: "portolan".into(),
        version: "0.1.0".into(),
        args: format!("portolan -sS -sV -p 22,80,113,443,3389,8080 {TARGETS}"),
        start,
        end: Some(start + Duration::from_secs(30)),
        scans: vec![ScanType {
            name: "syn".into(),
            proto: Protocol::Tcp,
            ports: vec![22, 80, 113, 443, 3389, 8080],
        }],
        hosts,
        stats: None,
        interrupted: false,
    }
}

/// The median wall time of `runs` runs of `command`, and its last exit
/// code.
fn timed(runs: usize, mut command: impl FnMut() -> Command) -> (Duration, Option<i32>) {
    let mut times = Vec::with_capacity(runs);
    let mut code = None;
    for _ in 0..runs {
        let started = Instant::now();
        let status = command()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok();
        times.push(started.elapsed());
        code = status.and_then(|s| s.code());
    }
    times.sort();
    (times[times.len() / 2], code)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

struct Figures {
    backend: &'static str,
    import: Duration,
    bytes: Option<u64>,
    sightings: u64,
    host: Duration,
    diff: (Duration, Option<i32>),
    audit: (Duration, Option<i32>),
}

fn measure(
    backend: &'static str,
    location: &Location,
    db_arg: &str,
    runs: usize,
) -> Result<Figures, String> {
    let mut history = History::open(location, OpenOptions::default()).map_err(|e| e.to_string())?;
    let meta = ScanMeta {
        targets: TARGETS.into(),
        who: "bench".into(),
        source: "bench".into(),
    };
    let started = Instant::now();
    for n in 0..SCANS {
        let scan = synthetic_scan(n);
        history.import(&scan, &meta).map_err(|e| e.to_string())?;
        if (n + 1) % 100 == 0 {
            eprintln!(
                "  {backend}: {} scans imported, {:.1?}",
                n + 1,
                started.elapsed()
            );
        }
    }
    let import = started.elapsed();
    let bytes = history.size_bytes().map_err(|e| e.to_string())?;
    let sightings = history.sightings().map_err(|e| e.to_string())?;
    drop(history);
    let binary = sibling_binary("portolan");
    let run = |args: &'static [&'static str]| {
        let binary = binary.clone();
        let db = db_arg.to_string();
        move || {
            let mut c = Command::new(&binary);
            c.args(args).args(["--db", &db]);
            c
        }
    };
    let host = timed(runs, run(&["history", "host", "198.18.0.12"])).0;
    let diff = timed(runs, run(&["diff", "--last"]));
    let audit = timed(runs, run(&["audit", "--risky"]));
    Ok(Figures {
        backend,
        import,
        bytes,
        sightings,
        host,
        diff,
        audit,
    })
}

/// ndiff against `portolan diff` on the two latest scans as nmap XML.
fn versus_ndiff(dir: &Path, db: &str, runs: usize) -> Result<(), String> {
    let binary = sibling_binary("portolan");
    let listed = Command::new(&binary)
        .args(["history", "--json", "-n", "2", "--db", db])
        .output()
        .map_err(|e| e.to_string())?;
    let ids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["id"].as_str().map(String::from))
        .collect();
    if ids.len() != 2 {
        return Err("the history lacks two scans".into());
    }
    let files = [dir.join("b.xml"), dir.join("a.xml")];
    for (id, file) in ids.iter().zip(&files) {
        let out = Command::new(&binary)
            .args(["history", "show", id, "-oX", "--db", db])
            .output()
            .map_err(|e| e.to_string())?;
        std::fs::write(file, &out.stdout).map_err(|e| e.to_string())?;
    }
    let (a, b) = (files[1].clone(), files[0].clone());
    let ours = timed(runs, || {
        let mut c = Command::new(&binary);
        c.arg("diff").arg(&a).arg(&b);
        c
    });
    println!(
        "\n## The two latest scans as nmap XML ({} hosts each)\n",
        256
    );
    println!("| tool | median wall time | exit |\n|---|---|---|");
    println!(
        "| portolan diff a.xml b.xml | {} | {:?} |",
        ms(ours.0),
        ours.1
    );
    match peer("ndiff", "apt-get install ndiff") {
        Some(ndiff) => {
            let theirs = timed(runs, || {
                let mut c = Command::new(&ndiff);
                c.arg(&a).arg(&b);
                c
            });
            println!("| ndiff a.xml b.xml | {} | {:?} |", ms(theirs.0), theirs.1);
            println!(
                "\nndiff / portolan: {:.1}x",
                theirs.0.as_secs_f64() / ours.0.as_secs_f64().max(1e-9)
            );
        }
        None => println!("| ndiff | not installed | |"),
    }
    Ok(())
}

/// The scenario.
pub fn history_bench(runs: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("portolan-bench-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    let sqlite = dir.join("history.sqlite");
    eprintln!("SQLite: importing {SCANS} scans of {TARGETS}");
    rows.push(measure(
        "SQLite",
        &Location::Sqlite(sqlite.clone()),
        sqlite.to_str().unwrap_or(""),
        runs,
    )?);
    let cluster = portolan_lab::PostgresCluster::start(&dir.join("pg"), 54_331);
    match &cluster {
        Ok(cluster) => {
            let url = cluster
                .create_database("bench")
                .map_err(|e| e.to_string())?;
            eprintln!("PostgreSQL: importing {SCANS} scans of {TARGETS}");
            rows.push(measure(
                "PostgreSQL",
                &Location::Postgres(url.clone()),
                &url,
                runs,
            )?);
        }
        Err(e) => eprintln!("PostgreSQL skipped: {e}"),
    }
    println!(
        "## {SCANS} scans of {TARGETS}, 6 ports per host up (median of {runs} runs per query)\n"
    );
    println!(
        "| backend | import (all) | per scan | size | sightings | bytes/sighting | history host | diff --last | audit --risky |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for f in &rows {
        let size = f
            .bytes
            .map_or("?".into(), |b| format!("{:.1} MiB", b as f64 / 1_048_576.0));
        let per = f.bytes.map_or("?".into(), |b| {
            format!("{:.0}", b as f64 / f.sightings.max(1) as f64)
        });
        println!(
            "| {} | {:.1} s | {} | {} | {} | {} | {} | {} (exit {:?}) | {} (exit {:?}) |",
            f.backend,
            f.import.as_secs_f64(),
            ms(f.import / SCANS as u32),
            size,
            f.sightings,
            per,
            ms(f.host),
            ms(f.diff.0),
            f.diff.1,
            ms(f.audit.0),
            f.audit.1
        );
    }
    versus_ndiff(&dir, sqlite.to_str().unwrap_or(""), runs)?;
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
