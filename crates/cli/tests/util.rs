//! Helpers shared by the integration tests: running the binary, reading
//! its JSON lines, and the expected outcome of each lab port.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

/// The binary under test.
pub fn portolan_bin() -> &'static str {
    env!("CARGO_BIN_EXE_portolan")
}

/// `portolan ARGS` on this machine's network namespace, with `-n` added to
/// scans that name no DNS server of their own: no test may send a DNS
/// query to the machine's resolvers.
pub fn portolan(args: &[&str]) -> Output {
    let own_dns = args
        .iter()
        .any(|a| matches!(*a, "-n" | "--dns-servers") || a.starts_with("--dns-servers="));
    let scan = args.first() != Some(&"report");
    Command::new(portolan_bin())
        .env("XDG_DATA_HOME", test_data_home())
        .args((scan && !own_dns).then_some("-n"))
        .args(args)
        .output()
        .expect("run portolan")
}

/// The arguments that make `setpriv` run the binary as `nobody`, with no
/// capability at all: `setpriv AS_NOBODY... portolan ARGS`.
pub const AS_NOBODY: [&str; 4] = [
    "--reuid=nobody",
    "--regid=nogroup",
    "--clear-groups",
    "--inh-caps=-all",
];

/// `command` (`setpriv`, maybe inside a namespace) set up to run the
/// binary as `nobody`, who has no home to keep a history in (`--no-db`);
/// add its arguments.
pub fn as_nobody(mut command: Command) -> Command {
    command.args(AS_NOBODY).arg(portolan_bin()).arg("--no-db");
    command
}

/// Where the binary keeps its default history during the tests (also
/// set for every binary cargo runs by `.cargo/config.toml`): never the
/// real home, and made fresh once per test process.
pub fn test_data_home() -> PathBuf {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| fresh_dir("portolan-test-data")).clone()
}

/// A fresh scratch directory for one test.
pub fn scratch_dir() -> PathBuf {
    fresh_dir("portolan-test")
}

/// A directory under the system's temporary one that did not exist
/// before. Process ids are reused over a long test run, so a name made
/// from the id alone can find an earlier process's files (a history with
/// two scans more than the test made): `create_dir` refuses a name
/// already taken, and the next one is tried.
fn fresh_dir(prefix: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    for _ in 0..100_000 {
        let dir = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("create {}: {e}", dir.display()),
        }
    }
    panic!("no fresh {prefix} directory in 100,000 names");
}

/// One `"type":"port"` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortLine {
    pub state: String,
    pub reason: String,
    pub tries: u64,
}

/// Everything a JSON-lines file says.
#[derive(Debug, Default)]
pub struct JsonRun {
    pub ports: BTreeMap<(IpAddr, u16), PortLine>,
    pub hosts: Vec<Value>,
    pub summary: Option<Value>,
    pub begin: Option<Value>,
    pub rates: Vec<Value>,
}

/// Reads a JSON-lines file; every line must parse, no port may repeat.
pub fn read_jsonl(path: &Path) -> JsonRun {
    let text = std::fs::read_to_string(path).expect("read JSON lines");
    let mut run = JsonRun::default();
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {} is not JSON ({e}): {line}", i + 1));
        match v["type"].as_str() {
            Some("port") => {
                let addr: IpAddr = v["addr"].as_str().unwrap().parse().unwrap();
                let port = v["port"].as_u64().unwrap() as u16;
                let p = PortLine {
                    state: v["state"].as_str().unwrap().to_string(),
                    reason: v["reason"].as_str().unwrap().to_string(),
                    tries: v["tries"].as_u64().unwrap(),
                };
                assert!(
                    ["tcp", "udp", "sctp", "ip"].contains(&v["proto"].as_str().unwrap_or("")),
                    "{line}"
                );
                assert!(v["service"].is_string());
                let dup = run.ports.insert((addr, port), p);
                assert!(dup.is_none(), "{addr} port {port} reported twice");
            }
            Some("host") => run.hosts.push(v),
            Some("summary") => run.summary = Some(v),
            Some("begin") => run.begin = Some(v),
            Some("rate") => run.rates.push(v),
            other => panic!("unknown line type {other:?}: {line}"),
        }
    }
    run
}

/// Asserts that a run's status is success and returns its stdout.
pub fn assert_success(out: &Output) -> String {
    assert!(
        out.status.success(),
        "portolan failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The peak resident memory, in KiB, of the largest child process this
/// test process has waited for (`getrusage(RUSAGE_CHILDREN)`): nextest
/// runs each test in a process of its own, so it is the largest of that
/// test's commands.
pub fn children_peak_rss_kib() -> u64 {
    // SAFETY: an all-zero rusage is valid, and getrusage writes only into
    // the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    u64::try_from(usage.ru_maxrss).unwrap_or(0)
}
