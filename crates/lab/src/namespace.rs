//! One named network namespace owned by a lab: running commands and closures
//! inside it, sysctls, traffic shaping, and its teardown.
//!
//! Contract: a [`Namespace`] exists from creation until it is dropped; `Drop`
//! stops the listeners started in it, kills every process still inside it
//! and deletes the name (never panics, errors ignored). Closures given to
//! [`in_namespace`] run on a fresh thread that has called `setns(2)`, so the
//! caller's threads never change namespace. Read first: ip-netns(8),
//! tc-tbf(8), and Documentation/networking/ip-sysctl.rst for sysctl keys.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, Weak};
use std::thread;
use std::time::Duration;

use crate::LabError;
use crate::service::ServiceControl;
use crate::sweep::{delete_namespace, netns_path};
use crate::sys;

/// A named network namespace created (and deleted on drop) by a [`Lab`](crate::Lab).
#[derive(Debug)]
pub struct Namespace {
    name: String,
    path: PathBuf,
    /// Listeners started here, stopped before the namespace is deleted.
    services: Mutex<Vec<Weak<ServiceControl>>>,
}

/// A token-bucket bottleneck (`tc qdisc ... tbf`) for benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tbf {
    /// Sustained rate in bits per second.
    pub rate_bits_per_sec: u64,
    /// Bucket size in bytes; must hold at least one MTU-sized packet.
    pub burst_bytes: u32,
    /// Longest time a packet may wait in the queue before being dropped.
    pub latency: Duration,
}

impl Tbf {
    fn tc_args(&self) -> Vec<String> {
        vec![
            "tbf".into(),
            "rate".into(),
            format!("{}bit", self.rate_bits_per_sec),
            "burst".into(),
            self.burst_bytes.to_string(),
            "latency".into(),
            format!("{}us", self.latency.as_micros()),
        ]
    }
}

impl Namespace {
    /// Creates the namespace `name` with `lo` up. On error nothing is left.
    pub(crate) fn create(name: String) -> Result<Self, LabError> {
        run_command(Command::new("ip").args(["netns", "add", &name]), None)?;
        let namespace = Namespace {
            path: netns_path(&name),
            name,
            services: Mutex::new(Vec::new()),
        };
        // On failure `namespace` drops here and deletes the name.
        namespace.ip_batch("link set lo up\n")?;
        Ok(namespace)
    }

    /// The namespace's name, as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind mount that keeps the namespace alive (`/var/run/netns/NAME`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A command that runs `program` inside this namespace through
    /// `ip netns exec`, which also remounts `/sys` so that tools reading
    /// `/sys/class/net` see this namespace's interfaces. Add arguments and
    /// stdio as usual.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec"]).arg(&self.name).arg(program);
        command
    }

    /// Runs `f` on a new thread that has entered this namespace and returns
    /// its result; sockets `f` creates belong to this namespace. A panic in
    /// `f` is resumed on the caller's thread.
    pub fn run<T, F>(&self, f: F) -> Result<T, LabError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        in_namespace(&self.name, f)
    }

    /// Runs `ip -n NAME ARGS...` and returns its standard output.
    pub fn ip(&self, args: &[&str]) -> Result<String, LabError> {
        run_command(
            Command::new("ip").arg("-n").arg(&self.name).args(args),
            None,
        )
    }

    /// Runs several `ip` commands, one per line, in this namespace with a
    /// single process (`ip -n NAME -batch -`).
    pub(crate) fn ip_batch(&self, script: &str) -> Result<String, LabError> {
        run_command(
            Command::new("ip")
                .arg("-n")
                .arg(&self.name)
                .args(["-batch", "-"]),
            Some(script),
        )
    }

    /// Runs `program ARGS...` inside the namespace (via `ip netns exec`),
    /// feeding it `stdin`, and returns its standard output; a non-zero exit
    /// is an error carrying its stderr.
    pub fn exec(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, LabError> {
        run_command(self.command(program).args(args), stdin)
    }

    /// Sets the sysctl `key` (dotted, e.g. `net.ipv4.icmp_ratelimit`) to
    /// `value` in this namespace. Only `net.*` keys are per namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), LabError> {
        let path = sysctl_path(key)?;
        let value = format!("{value}\n");
        self.run(|| std::fs::write(&path, value))?
            .map_err(|source| self.sysctl_error(key, &path, source))
    }

    /// Reads the sysctl `key` in this namespace, trimmed.
    pub fn sysctl_value(&self, key: &str) -> Result<String, LabError> {
        let path = sysctl_path(key)?;
        let value = self
            .run(|| std::fs::read_to_string(&path))?
            .map_err(|source| self.sysctl_error(key, &path, source))?;
        Ok(value.trim().to_owned())
    }

    fn sysctl_error(&self, key: &str, path: &Path, source: std::io::Error) -> LabError {
        LabError::Sysctl {
            namespace: self.name.clone(),
            key: key.to_owned(),
            path: path.to_owned(),
            source,
        }
    }

    /// Lifts the kernel's ICMP error rate limits in this namespace, for both
    /// families: the per-destination limit (`net.ipv4.icmp_ratelimit`,
    /// `net.ipv6.icmp.ratelimit`, by default one error per second after a
    /// burst of 6) and the global token bucket shared by ICMP and ICMPv6
    /// (`net.ipv4.icmp_msgs_per_sec`/`icmp_msgs_burst`, 1000/s and 50).
    pub fn disable_icmp_rate_limits(&self) -> Result<(), LabError> {
        self.sysctl("net.ipv4.icmp_ratelimit", "0")?;
        self.sysctl("net.ipv6.icmp.ratelimit", "0")?;
        self.sysctl("net.ipv4.icmp_msgs_per_sec", "1000000000")?;
        self.sysctl("net.ipv4.icmp_msgs_burst", "1000000000")
    }

    /// Installs (or replaces) a token-bucket bottleneck as the root qdisc of
    /// `interface`, shaping what this namespace sends through it.
    pub fn tbf(&self, interface: &str, tbf: &Tbf) -> Result<(), LabError> {
        let mut args = vec!["qdisc", "replace", "dev", interface, "root"];
        let tbf_args = tbf.tc_args();
        args.extend(tbf_args.iter().map(String::as_str));
        self.exec("tc", &args, None).map(drop)
    }

    /// Removes the root qdisc of `interface` (back to the default).
    pub fn clear_qdisc(&self, interface: &str) -> Result<(), LabError> {
        self.exec("tc", &["qdisc", "del", "dev", interface, "root"], None)
            .map(drop)
    }

    pub(crate) fn register_service(&self, control: Weak<ServiceControl>) {
        let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        services.retain(|s| s.strong_count() > 0);
        services.push(control);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let services = std::mem::take(self.services.get_mut().unwrap_or_else(|e| e.into_inner()));
        for control in services.iter().filter_map(Weak::upgrade) {
            control.stop();
        }
        // Best effort: a leftover name is collected by the sweeper once this
        // process has exited.
        let _ = delete_namespace(&self.name);
    }
}

/// Runs `f` on a new thread that has entered the named network namespace
/// (`setns(2)` on `/var/run/netns/NAME`) and returns its result. The calling
/// thread stays where it is. A panic in `f` is resumed on the caller.
pub fn in_namespace<T, F>(namespace: &str, f: F) -> Result<T, LabError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let enter_error = |source| LabError::EnterNamespace {
        namespace: namespace.to_owned(),
        source,
    };
    let netns = File::open(netns_path(namespace)).map_err(enter_error)?;
    thread::scope(|scope| {
        let worker = thread::Builder::new()
            .name(format!("lab-{namespace}"))
            .spawn_scoped(scope, move || {
                sys::enter(&netns)?;
                drop(netns);
                Ok(f())
            })
            .map_err(|e| LabError::io("spawning a namespace thread", e))?;
        match worker.join() {
            Ok(result) => result.map_err(enter_error),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Maps `net.ipv4.icmp_ratelimit` to `/proc/sys/net/ipv4/icmp_ratelimit`,
/// refusing keys that could escape `/proc/sys`.
fn sysctl_path(key: &str) -> Result<PathBuf, LabError> {
    let valid = !key.is_empty()
        && key.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if !valid {
        return Err(LabError::Invalid(format!("sysctl key `{key}`")));
    }
    Ok(Path::new("/proc/sys").join(key.replace('.', "/")))
}

/// Runs `command` to completion with `stdin` (or none), returning stdout;
/// a non-zero exit becomes [`LabError::Command`] with stderr.
pub(crate) fn run_command(command: &mut Command, stdin: Option<&str>) -> Result<String, LabError> {
    let line = describe(command);
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| LabError::Spawn {
        command: line.clone(),
        source,
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error (EPIPE) means the program exited early; its status
        // and stderr below say why.
        let _ = pipe.write_all(input.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|e| LabError::io(format!("waiting for `{line}`"), e))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(LabError::Command {
            command: line,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// `program arg1 arg2 ...` for error messages.
pub(crate) fn describe(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys_map_to_proc_sys() {
        assert_eq!(
            sysctl_path("net.ipv6.icmp.ratelimit").unwrap(),
            Path::new("/proc/sys/net/ipv6/icmp/ratelimit")
        );
        for bad in ["", "net..x", "net/../../etc", ".net", "net.ipv4.a b"] {
            assert!(sysctl_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tbf_renders_tc_units() {
        let tbf = Tbf {
            rate_bits_per_sec: 10_000_000,
            burst_bytes: 32_000,
            latency: Duration::from_millis(50),
        };
        assert_eq!(
            tbf.tc_args().join(" "),
            "tbf rate 10000000bit burst 32000 latency 50000us"
        );
    }

    #[test]
    fn failing_commands_carry_stderr() {
        let err = run_command(
            Command::new("sh").args(["-c", "echo nope >&2; exit 3"]),
            None,
        )
        .unwrap_err();
        match err {
            LabError::Command {
                command, stderr, ..
            } => {
                assert_eq!(command, "sh -c echo nope >&2; exit 3");
                assert_eq!(stderr, "nope");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
