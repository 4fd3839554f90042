//! Runs one peer tool and measures it: wall time, CPU time (user + system,
//! children included) and peak resident memory, from `wait4(2)`.
//!
//! Peak memory is read by GNU time (`/usr/bin/time`, the Debian package
//! `time`), which `scripts/bench` installs.
//!
//! Every tool runs under `timeout -k`, so a tool that hangs at exit (as
//! masscan may on a silent link) cannot hang the bench.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What one run cost.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    /// Wall-clock time.
    pub wall: Duration,
    /// User plus system CPU time.
    pub cpu: Duration,
    /// Peak resident set size, in KiB.
    pub max_rss_kib: u64,
    /// Exit status code (`None` if killed by a signal).
    pub status: Option<i32>,
}

/// `timeout`'s exit codes when it stopped the tool: 124 after TERM, 137
/// after the KILL that `-k` sends when TERM was not enough.
const TIMED_OUT: [i32; 2] = [124, 137];

impl Cost {
    /// The run was stopped at its time limit.
    pub fn timed_out(&self) -> bool {
        self.status.is_some_and(|c| TIMED_OUT.contains(&c))
    }
}

/// Runs `command` (already set up, e.g. inside a namespace) under
/// `timeout -k 5 LIMIT`, with its standard output sent to `stdout_to`.
pub fn run_measured(command: Command, limit: Duration, stdout_to: Stdio) -> Cost {
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
    // Peak memory comes from GNU time, which forks the tool from its own
    // small process: a process's peak RSS carries over from the process it
    // was forked from, so measured from here it would include this
    // benchmark's own memory.
    static RUN: AtomicUsize = AtomicUsize::new(0);
    let rss_file = std::env::temp_dir().join(format!(
        "portolan-bench-rss-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let gnu_time = Path::new("/usr/bin/time");
    let mut wrapped = Command::new("timeout");
    wrapped.args(["-k", "5", &format!("{}", limit.as_secs().max(1))]);
    if gnu_time.is_file() {
        wrapped
            .arg(gnu_time)
            .args(["-f", "%M", "-o"])
            .arg(&rss_file);
    }
    wrapped
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout_to)
        .stderr(Stdio::null());
    let start = Instant::now();
    let child = match wrapped.spawn() {
        Ok(c) => c,
        Err(_) => return Cost::default(),
    };
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it and `status` for
    // our own child, which `child` never waits for afterwards.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: see above; the pointers are to live locals.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    std::mem::forget(child);
    if rc != pid {
        return Cost {
            wall,
            ..Cost::default()
        };
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let measured_rss = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()));
    let _ = std::fs::remove_file(&rss_file);
    Cost {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kib: measured_rss.unwrap_or(usage.ru_maxrss as u64),
        status: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_exit_codes_mean_stopped_at_the_limit() {
        let cost = |status| Cost {
            status,
            ..Cost::default()
        };
        assert!(cost(Some(124)).timed_out());
        assert!(cost(Some(137)).timed_out());
        assert!(!cost(Some(0)).timed_out());
        assert!(!cost(Some(1)).timed_out());
        assert!(!cost(None).timed_out());
    }
}
