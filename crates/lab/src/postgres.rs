//! A throw-away PostgreSQL server for tests and benchmarks: Debian's
//! `postgresql` binaries (`/usr/lib/postgresql/*/bin`), a cluster made by
//! `initdb` under a directory the caller names, listening only on a Unix
//! socket in that directory (no TCP at all), run as the `postgres` user
//! (the server refuses root) — never the machine's service.
//! [`PostgresCluster::stop`] (also on drop) stops it and removes the
//! directory.
//!
//! Requirements: root (to run the server as `postgres` through
//! `runuser`), and the `postgresql` package.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::LabError;

/// A running cluster.
#[derive(Debug)]
pub struct PostgresCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

/// The newest `/usr/lib/postgresql/*/bin` with `initdb` and `pg_ctl`.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn run(command: &mut Command) -> Result<(), LabError> {
    let line = format!("{command:?}");
    let out = command.output().map_err(|source| LabError::Spawn {
        command: line.clone(),
        source,
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            command: line,
            status: out.status.to_string(),
            stderr: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

impl PostgresCluster {
    fn as_postgres(&self, tool: &str) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
        c
    }

    /// Makes and starts a cluster in `dir` (created, and owned by
    /// `postgres`), on a Unix socket there with this port number.
    pub fn start(dir: &Path, port: u16) -> Result<PostgresCluster, LabError> {
        let bin = postgres_bin_dir().ok_or_else(|| LabError::Spawn {
            command: "/usr/lib/postgresql/*/bin/initdb".into(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "Debian's postgresql package is not installed",
            ),
        })?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|source| LabError::Spawn {
            command: format!("mkdir {}", dir.display()),
            source,
        })?;
        run(Command::new("chown").arg("postgres:postgres").arg(dir))?;
        let cluster = PostgresCluster {
            dir: dir.to_path_buf(),
            bin,
            port,
        };
        let data = dir.join("data");
        run(cluster.as_postgres("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]))?;
        let options = format!(
            "-k {} -c listen_addresses='' -p {port} -c fsync=off -c full_page_writes=off",
            dir.display()
        );
        let started = run(cluster
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-o", &options, "-w", "-t", "60", "start"]));
        if let Err(e) = started {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            cluster.stop();
            return Err(match e {
                LabError::Command {
                    command,
                    status,
                    stderr,
                } => LabError::Command {
                    command,
                    status,
                    stderr: format!("{stderr}\n{log}"),
                },
                other => other,
            });
        }
        Ok(cluster)
    }

    /// The URL of database `name` on the cluster.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgresql:///{name}?user=postgres&host={}&port={}",
            self.dir.display(),
            self.port
        )
    }

    /// Creates database `name`; its URL.
    pub fn create_database(&self, name: &str) -> Result<String, LabError> {
        run(self.as_postgres("createdb").arg("-h").arg(&self.dir).args([
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            name,
        ]))?;
        Ok(self.url(name))
    }

    /// Stops the server (immediately) and removes its directory; again
    /// does nothing.
    pub fn stop(&self) {
        let data = self.dir.join("data");
        if data.exists() {
            let _ = run(self.as_postgres("pg_ctl").arg("-D").arg(&data).args([
                "-m",
                "immediate",
                "-w",
                "stop",
            ]));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
