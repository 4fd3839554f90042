//! Why a scan could not be set up or run. Each variant's message is the
//! context ("-sS", "the connect scan failed"); the system's own words are
//! its [`std::error::Error::source`], so a caller that prints the chain
//! ("-sS: raw sockets are not permitted ...") says each thing once.

use std::io;
use std::path::PathBuf;

use portolan_service::DetectError;
use portolan_targets::TargetError;
use portolan_transport::connect::ConnectError;
use portolan_transport::idle::IdleError;
use portolan_transport::raw::RawError;

/// Why a scan failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// A target or exclusion could not be read.
    #[error(transparent)]
    Targets(#[from] TargetError),
    /// The settings do not make sense together (a usage error).
    #[error("{0}")]
    Settings(String),
    /// The settings ask for what this machine or process cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// A technique needs raw sockets this process may not open.
    #[error("{flag}")]
    Privileges {
        /// The flag of the technique (`-sS`, `-sU`, `-D`, ...).
        flag: &'static str,
        /// Why not.
        #[source]
        source: RawError,
    },
    /// The `--versiondb` file could not be read.
    #[error("--versiondb: cannot read {}", path.display())]
    ProbeFile {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The probe database has no probe.
    #[error("{name}: no probes loaded")]
    NoProbes {
        /// The database.
        name: String,
        /// Its bad lines, as [`crate::Scan::warnings`] would have listed
        /// them.
        warnings: Vec<String>,
    },
    /// The idle scan's zombie could not be used.
    #[error("-sI")]
    Zombie(#[source] IdleError),
    /// The idle scan failed while it ran.
    #[error("the idle scan failed")]
    Idle(#[source] IdleError),
    /// The connect scan failed while it ran.
    #[error("the connect scan failed")]
    Connect(#[source] ConnectError),
    /// A raw-packet scan (or discovery) failed while it ran.
    #[error("the {what} scan failed")]
    Raw {
        /// "SYN", "UDP", "host discovery", ...
        what: String,
        /// Why.
        #[source]
        source: RawError,
    },
    /// Reverse DNS could not start.
    #[error("cannot start reverse DNS (-n turns it off)")]
    ReverseDns(#[source] io::Error),
    /// The `--osdb` file could not be read or parsed.
    #[error("--osdb")]
    OsDb(#[source] portolan_os::DbError),
    /// OS detection could not send or read its probes.
    #[error("OS detection failed")]
    Os(#[source] portolan_transport::raw::RawError),
    /// Version detection failed.
    #[error("version detection failed")]
    Detection(#[source] DetectError),
}

impl ScanError {
    /// Whether the error is the caller's input (nmap's and Portolan's exit
    /// status 2), not the system's.
    pub fn is_usage(&self) -> bool {
        matches!(self, ScanError::Targets(_) | ScanError::Settings(_))
    }
}
