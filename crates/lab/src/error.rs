//! The lab's error type: every failure names what was attempted (the full
//! command line, the namespace, the address) and, for external commands,
//! their exit status and stderr, so a failing test explains itself.
//!
//! Contract: no panics; values are plain data and `Send + Sync`.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a lab operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// An external command (`ip`, `nft`, `tc`) ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line, program and arguments joined by spaces.
        command: String,
        /// Its exit status as printed by the standard library.
        status: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// An external command could not be started at all (missing binary, ...).
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line, program and arguments joined by spaces.
        command: String,
        /// The error from `fork`/`exec`.
        #[source]
        source: io::Error,
    },
    /// Opening or entering a namespace failed.
    #[error("could not enter network namespace `{namespace}`: {source}")]
    EnterNamespace {
        /// The namespace's name.
        namespace: String,
        /// The error from `open` or `setns`.
        #[source]
        source: io::Error,
    },
    /// A listener could not be created or bound inside a namespace.
    #[error("could not listen on {addr} in namespace `{namespace}`: {source}")]
    Bind {
        /// The namespace's name.
        namespace: String,
        /// The address that could not be bound.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing a file under `/proc/sys` failed.
    #[error("sysctl `{key}` ({path}) in namespace `{namespace}`: {source}", path = .path.display())]
    Sysctl {
        /// The namespace's name.
        namespace: String,
        /// The dotted key, e.g. `net.ipv4.icmp_ratelimit`.
        key: String,
        /// The file it maps to.
        path: PathBuf,
        /// The file error.
        #[source]
        source: io::Error,
    },
    /// The kernel offers no SCTP: `socket(AF_INET, SOCK_STREAM,
    /// IPPROTO_SCTP)` failed (`EPROTONOSUPPORT` when the kernel was built
    /// without `CONFIG_IP_SCTP` or its `sctp` module is not loaded).
    /// [`Namespace::respond_sctp`](crate::Namespace::respond_sctp) answers
    /// SCTP from user space instead.
    #[error(
        "the kernel offers no SCTP (socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP) in namespace \
         `{namespace}`: {source}); use the user-space responder instead"
    )]
    SctpUnavailable {
        /// The namespace the socket was asked for.
        namespace: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// A value the caller passed is outside what the lab supports.
    #[error("invalid lab request: {0}")]
    Invalid(String),
    /// A wait (for a daemon's port, for a process) ran out of time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Any other I/O failure, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What the lab was doing.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl LabError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        LabError::Io {
            context: context.into(),
            source,
        }
    }
}
