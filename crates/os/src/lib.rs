//! OS fingerprinting: nmap's IPv4 method as pure code, and passive hints.
//!
//! - [`probes`]: the probe set (six SYNs, two echo requests, ECN, T2-T7,
//!   U1) written as bytes, and which probe an answer belongs to.
//! - [`compute`]: the tests (SEQ, OPS, WIN, ECN, T1-T7, U1, IE) computed
//!   from the answers; unanswered probes make missing tests.
//! - [`fingerprint`]: an observed fingerprint, written and read in nmap's
//!   layout.
//! - [`db`] and [`expr`]: the nmap-os-db format (MatchPoints, Fingerprint,
//!   Class, CPE, test lines with ranges, bounds and alternatives).
//! - [`score`]: matching as nmap scores it, missing tests left out.
//! - [`passive`]: p0f-style hints from answers a port scan already has.
//! - [`error`]: why a database was refused, with the line.
//!
//! Portolan's own database (`data/portolan-os-db`, written from the lab's
//! measurements) is compiled in as [`OWN_DB`].
//!
//! Contract: no I/O but [`db::Database::load`]; no panic on any packet
//! or file; no unsafe code.
//!
//! Read first: nmap.org/book/osdetect-methods.html and
//! nmap.org/book/osdetect-fingerprint-format.html.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod compute;
pub mod db;
pub mod error;
pub mod expr;
pub mod fingerprint;
pub mod passive;
pub mod probes;
pub mod score;

pub use compute::{Answers, fingerprint as compute_fingerprint};
pub use db::{Database, OsClass, Reference};
pub use error::DbError;
pub use fingerprint::Fingerprint;
pub use probes::{PROBE_COUNT, ProbeSet};
pub use score::{Classification, Score, classify};

/// Portolan's own database: written by the project from what its lab
/// measures, not a copy of nmap's.
pub const OWN_DB: &str = include_str!("../data/portolan-os-db");

/// Where nmap installs its database.
pub const NMAP_DB: &str = "/usr/share/nmap/nmap-os-db";
