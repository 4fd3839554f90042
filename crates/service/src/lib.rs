//! Service and version detection (`-sV`): one job, telling what answers on
//! an open port, with nmap's method and database format.
//!
//! - [`db`]: the nmap-service-probes format, parsed into a [`ProbeDb`]
//!   (bad lines reported with their number and skipped);
//! - [`pattern`]: PCRE2 patterns over bytes, with nmap's resource limits;
//! - [`template`]: version fields (`$1`, `$P()`, `$SUBST()`, `$I()`);
//! - [`detect`]: the probe engine (banners, probes by rarity, soft
//!   matches, fallbacks, `tcpwrapped`, TLS), many ports in parallel;
//! - [`tls`]: the rustls client and certificate facts;
//! - [`rpc`]: ONC RPC ports named from the portmapper's list.
//!
//! Portolan ships its own database ([`BUILTIN`], written by the project
//! from public protocol documents); [`load`] reads any file in the same
//! format, nmap's own included. Library code never prints; banners are
//! untrusted bytes that callers escape for their output.

#![deny(missing_docs)]

pub mod db;
pub mod detect;
pub mod pattern;
pub mod rpc;
pub mod template;
pub mod tls;

use std::path::Path;

pub use db::{ParseError, Parsed, ProbeDb, parse};
pub use detect::{
    DetectError, DetectOptions, DetectTarget, Detected, Detector, detect_all, detect_targets,
    runtime,
};

/// Portolan's own probe database, in the nmap-service-probes format.
pub const BUILTIN: &[u8] = include_bytes!("../data/portolan-service-probes");

/// Parses the built-in database.
pub fn builtin() -> Parsed {
    parse(BUILTIN)
}

/// Reads and parses a database file (`--versiondb`).
pub fn load(path: &Path) -> std::io::Result<Parsed> {
    Ok(parse(&std::fs::read(path)?))
}
