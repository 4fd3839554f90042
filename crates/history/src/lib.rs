//! Portolan's scan history: every scan kept as observations, any two
//! compared, exposure checked against a written policy.
//!
//! - [`store`]: the [`History`] (open, record, read back, query), over one
//!   storage trait ([`sql::Backend`]) with two implementations:
//!   [`sqlite`] (the default, one file under the user's data directory)
//!   and [`postgres`] (for teams); [`schema`] is the one versioned schema
//!   both use.
//! - [`record`]: a scan recorded as it runs, one transaction per host.
//! - [`import`]: nmap XML, Portolan JSON lines, masscan `-oL` and JSON.
//! - [`diff`]: two scans compared, with the confirmation rule for weak
//!   evidence; [`render`] writes a diff as text, JSON or ndiff's XML;
//!   [`banner`] says what of a banner is compared.
//! - [`policy`] and [`audit`]: what may be exposed where, the built-in
//!   catalogue of risky exposures ([`risky`]), and the violations found.
//!
//! Contract: no printing and no panics on any input (files, databases
//! written by others); every error names what it was given.

#![deny(missing_docs)]

pub mod audit;
pub mod banner;
pub mod diff;
mod error;
pub mod import;
pub mod policy;
pub mod postgres;
pub mod record;
pub mod render;
pub mod risky;
pub mod schema;
pub mod sql;
pub mod sqlite;
pub mod store;

pub use error::{ImportError, PolicyError, StoreError};
pub use record::{Recorder, holds_evidence};
pub use store::{History, HostHistory, Location, OpenOptions, PortRun, ScanMeta, ScanRow};
