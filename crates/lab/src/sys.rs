//! The lab's operating-system calls: entering a network namespace, polling
//! file descriptors, signalling process groups, reading the effective uid.
//!
//! Contract: this is the only module of the crate with `unsafe`; every block
//! carries a `// SAFETY:` line. Nothing here allocates except `poll_readable`'s
//! result vector. Read first: setns(2), poll(2), kill(2), and the
//! async-signal-safety list in signal-safety(7) for [`enter_in_child`].

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

/// Moves the calling thread into the network namespace `netns` refers to.
///
/// Only this thread changes namespace; sockets it creates afterwards belong
/// to the new namespace for their whole life.
pub(crate) fn enter(netns: &File) -> io::Result<()> {
    // SAFETY: setns only reads the descriptor, which `netns` keeps open for
    // the duration of the call; it has no memory-safety preconditions.
    let rc = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes `command`'s child enter the namespace behind `netns_fd` between
/// fork and exec, and puts it in a process group of its own.
///
/// The caller must keep the descriptor open until `spawn` has returned and
/// must not spawn `command` again after closing it.
pub(crate) fn enter_in_child(command: &mut Command, netns_fd: RawFd) {
    command.process_group(0);
    // SAFETY: the hook runs in the forked child before exec, where only
    // async-signal-safe functions may be called: it makes one raw syscall
    // (setns) and reads errno; it allocates nothing and takes no locks.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(netns_fd, libc::CLONE_NEWNET) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
}

/// Waits until at least one of `fds` is readable (or has an error or hang-up
/// pending) and says which ones are; `None` waits forever. Retries `EINTR`.
pub(crate) fn poll_readable(fds: &[RawFd], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let timeout_ms = timeout.map_or(-1, |t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX));
    loop {
        // SAFETY: `pollfds` is a live, exclusively borrowed array whose length
        // is passed alongside it; the kernel writes only `revents` fields.
        let rc = unsafe {
            libc::poll(
                pollfds.as_mut_ptr(),
                pollfds.len() as libc::nfds_t,
                timeout_ms,
            )
        };
        if rc >= 0 {
            return Ok(pollfds.iter().map(|p| p.revents != 0).collect());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Sends `signal` to every process of the process group `pgid`.
pub(crate) fn kill_group(pgid: u32, signal: libc::c_int) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: kill has no memory-safety preconditions; a negative pid names
    // a process group, and pgid > 0 so this never means "every process".
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends `signal` to the single process `pid`.
pub(crate) fn kill_process(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::ErrorKind::InvalidInput)?;
    if pid <= 0 {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: kill has no memory-safety preconditions; pid > 0 names exactly
    // one process.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The effective user id of this process.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}
