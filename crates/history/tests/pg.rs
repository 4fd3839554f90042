//! A throw-away PostgreSQL cluster for the tests: Debian's `postgresql`
//! binaries, `initdb` under the test's temporary directory, listening only
//! on a Unix socket there, run as the `postgres` user (the server refuses
//! root) — never the machine's service. One cluster per test binary,
//! stopped and removed when the binary exits; each test gets a database
//! of its own. Without root or the binaries the tests say so and pass,
//! except under `CI=true`, where they fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use portolan_history::Location;

const PORT: u16 = 54_329;

struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn as_postgres(bin: &Path, tool: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(tool))
        .args(args)
        .output()
        .map_err(|e| format!("runuser: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

extern "C" fn stop_cluster() {
    if let Some(Ok(c)) = CLUSTER.get() {
        let data = c.dir.join("data");
        let _ = as_postgres(
            &c.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap_or(""),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&c.dir);
    }
}

fn start() -> Result<Cluster, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root: cannot run the server as the postgres user".into());
    }
    let bin = bin_dir().ok_or("no /usr/lib/postgresql/*/bin (Debian's postgresql package)")?;
    let dir = std::env::temp_dir().join(format!("portolan-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let chown = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(&dir)
        .status()
        .map_err(|e| e.to_string())?;
    if !chown.success() {
        return Err("cannot chown the cluster directory to postgres".into());
    }
    let data = dir.join("data");
    let data_s = data.to_str().ok_or("temporary path not UTF-8")?;
    let dir_s = dir.to_str().ok_or("temporary path not UTF-8")?;
    as_postgres(
        &bin,
        "initdb",
        &[
            "-D",
            data_s,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
    )?;
    let options =
        format!("-k {dir_s} -c listen_addresses='' -p {PORT} -c fsync=off -c full_page_writes=off");
    let log = dir.join("server.log");
    let started = as_postgres(
        &bin,
        "pg_ctl",
        &[
            "-D",
            data_s,
            "-l",
            log.to_str().unwrap_or(""),
            "-o",
            &options,
            "-w",
            "-t",
            "60",
            "start",
        ],
    );
    // SAFETY: stop_cluster is an extern "C" fn with no arguments.
    unsafe { libc::atexit(stop_cluster) };
    started.map_err(|e| format!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default()))?;
    Ok(Cluster { dir, bin })
}

fn url(dir: &Path, db: &str) -> String {
    format!(
        "postgresql:///{db}?user=postgres&host={}&port={PORT}",
        dir.display()
    )
}

/// A fresh, empty database on the test cluster; `None` (said loudly)
/// when PostgreSQL cannot run here and this is not CI.
pub fn database() -> Option<Location> {
    let cluster = CLUSTER.get_or_init(start);
    let cluster = match cluster {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true and PostgreSQL cannot start: {e}");
            }
            eprintln!("SKIPPED: PostgreSQL cannot start here: {e}");
            return None;
        }
    };
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!("t{}", N.fetch_add(1, Ordering::Relaxed));
    let mut admin = postgres::Client::connect(&url(&cluster.dir, "postgres"), postgres::NoTls)
        .expect("connect to the test cluster");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create a test database");
    Some(Location::Postgres(url(&cluster.dir, &name)))
}
