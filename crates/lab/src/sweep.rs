//! Namespace names and the sweeper that removes namespaces leaked by dead
//! test processes.
//!
//! Every namespace the lab creates is named `pl<pid>x<lab>` followed by a
//! role (`s` scanner, `h<i>` host, `w<k>` switch, `g<k>h<j>` segment host,
//! `p` probe), where `<pid>` is the creating process and `<lab>` a
//! per-process counter. Names are therefore unique across threads and
//! processes, and a namespace whose `<pid>` no longer exists is garbage.
//!
//! Contract: the sweeper only touches names matching that pattern whose pid
//! is not alive; a reused pid makes it keep a stale namespace (safe side).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::LabError;
use crate::namespace::run_command;
use crate::sys;

/// The prefix of every namespace name the lab creates.
pub const NAMESPACE_PREFIX: &str = "pl";

/// Where `ip netns` keeps its named namespaces (iproute2's `NETNS_RUN_DIR`).
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh `pl<pid>x<counter>` stem, unique in this process and, through the
/// pid, among live processes.
pub(crate) fn next_stem() -> String {
    let counter = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{NAMESPACE_PREFIX}{}x{counter}", std::process::id())
}

/// The pid encoded in a lab namespace name, or `None` if `name` was not made
/// by the lab.
pub(crate) fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAMESPACE_PREFIX)?;
    let (pid, rest) = rest.split_once('x')?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let role = &rest[digits..];
    if digits == 0 || role.is_empty() || !role.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    pid.parse().ok()
}

/// The path of the named namespace's bind mount.
pub(crate) fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Processes (other than this one) whose network namespace is the one bound
/// at `netns`; what `ip netns pids` prints.
pub(crate) fn pids_in(netns: &Path) -> Vec<u32> {
    let Ok(target) = fs::metadata(netns) else {
        return Vec::new();
    };
    let own = std::process::id();
    let Ok(proc_dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc_dir
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
        })
        .collect()
}

/// Kills every process left in the namespace and deletes its name. Errors are
/// returned but the caller usually ignores them (drop paths).
pub(crate) fn delete_namespace(name: &str) -> Result<(), LabError> {
    for pid in pids_in(&netns_path(name)) {
        // The process may exit on its own meanwhile; ESRCH is fine.
        let _ = sys::kill_process(pid, libc::SIGKILL);
    }
    run_command(Command::new("ip").args(["netns", "delete", name]), None).map(drop)
}

/// Deletes lab namespaces whose creating process is gone (an aborted or
/// killed test run), killing anything still running inside them first.
/// Returns the names it removed. Best effort: races with other sweepers are
/// ignored.
pub fn sweep_stale_namespaces() -> Result<Vec<String>, LabError> {
    let entries = match fs::read_dir(NETNS_RUN_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io(format!("listing {NETNS_RUN_DIR}"), e)),
    };
    let own = std::process::id();
    let mut removed = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if pid == own || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if delete_namespace(&name).is_ok() {
            removed.push(name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_reads_lab_names() {
        assert_eq!(owner_pid("pl1234x0s"), Some(1234));
        assert_eq!(owner_pid("pl7x12h3"), Some(7));
        assert_eq!(owner_pid("pl7x12g0h4"), Some(7));
    }

    #[test]
    fn owner_pid_rejects_foreign_names() {
        for name in [
            "", "pl", "plx0s", "pl12x", "pl12xs", "pl12x3", "blue", "pl1a2x0s", "pl1x0-s",
        ] {
            assert_eq!(owner_pid(name), None, "{name}");
        }
    }

    #[test]
    fn stems_are_unique_and_parse() {
        let a = next_stem();
        let b = next_stem();
        assert_ne!(a, b);
        assert_eq!(owner_pid(&format!("{a}s")), Some(std::process::id()));
    }
}
