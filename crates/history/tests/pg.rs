//! The PostgreSQL server of the storage suite: one throw-away cluster per
//! test binary (`portolan_lab::PostgresCluster`: Debian's binaries, under
//! the temporary directory, a Unix socket only, run as `postgres`),
//! stopped and removed when the binary exits; each test gets a database of
//! its own. Without root or the binaries the tests say so and pass,
//! except under `CI=true`, where they fail.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use portolan_history::Location;
use portolan_lab::PostgresCluster;

static CLUSTER: OnceLock<Result<PostgresCluster, String>> = OnceLock::new();

extern "C" fn stop_cluster() {
    if let Some(Ok(c)) = CLUSTER.get() {
        c.stop();
    }
}

fn start() -> Result<PostgresCluster, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root: cannot run the server as the postgres user".into());
    }
    let dir = std::env::temp_dir().join(format!("portolan-pg-{}", std::process::id()));
    let cluster = PostgresCluster::start(&dir, 54_329).map_err(|e| e.to_string())?;
    // SAFETY: stop_cluster is an extern "C" fn taking nothing.
    unsafe { libc::atexit(stop_cluster) };
    Ok(cluster)
}

/// A fresh, empty database on the test cluster; `None` (said loudly)
/// when PostgreSQL cannot run here and this is not CI.
pub fn database() -> Option<Location> {
    let cluster = match CLUSTER.get_or_init(start) {
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
    let url = cluster
        .create_database(&name)
        .expect("create a test database");
    Some(Location::Postgres(url))
}
