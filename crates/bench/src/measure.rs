//! Runs one peer tool and measures it: wall time, CPU time (user + system,
//! children included) and peak resident memory, from `wait4(2)`.
//!
//! Every tool runs under `timeout -k`, so a tool that hangs at exit (as
//! masscan may on a silent link) cannot hang the bench.

use std::process::{Command, Stdio};
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

/// Runs `command` (already set up, e.g. inside a namespace) under
/// `timeout -k 5 LIMIT`, with its standard output sent to `stdout_to`.
pub fn run_measured(command: Command, limit: Duration, stdout_to: Stdio) -> Cost {
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
    let mut wrapped = Command::new("timeout");
    wrapped
        .args(["-k", "5", &format!("{}", limit.as_secs().max(1))])
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
    Cost {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss as u64,
        status: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
    }
}
