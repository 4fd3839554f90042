//! The typed errors of the history: [`StoreError`] for opening, writing
//! and reading a store, [`ImportError`] for files brought into it, and
//! [`PolicyError`] for policy files.
//!
//! Every variant names what it was given (the database's location, the
//! scan ID, the file's line and column) so that the message alone tells
//! the user what to fix.

use std::time::Duration;

/// Why a history store could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open the history database {location}: {message}")]
    Open {
        /// The path or URL (its password removed).
        location: String,
        /// What the driver said.
        message: String,
    },
    /// The file or database is not a Portolan history (another
    /// program's database, or a damaged file); it was left untouched.
    #[error(
        "{location} is not a Portolan history database or is damaged ({message}); \
         it was left untouched"
    )]
    Corrupt {
        /// The path or URL.
        location: String,
        /// What was found.
        message: String,
    },
    /// The database was written by a newer Portolan; it was left
    /// untouched.
    #[error(
        "the history database {location} has schema version {found}, newer than the \
         {known} this Portolan knows; it was left untouched (upgrade Portolan)"
    )]
    NewerSchema {
        /// The path or URL.
        location: String,
        /// The version in the database.
        found: i64,
        /// The newest version this code knows.
        known: i64,
    },
    /// Another process held the database for longer than the wait.
    #[error(
        "the history database {location} is locked by another process \
         (waited {waited:?}); try again when it is done"
    )]
    Locked {
        /// The path or URL.
        location: String,
        /// How long this process waited.
        waited: Duration,
    },
    /// A statement failed.
    #[error("history database {location}: {message}")]
    Sql {
        /// The path or URL.
        location: String,
        /// What the driver said.
        message: String,
    },
    /// No scan has this ID (or ID prefix).
    #[error("no scan {0} in the history")]
    NoSuchScan(String),
    /// An ID prefix matches more than one scan.
    #[error("scan ID prefix {prefix} matches {count} scans; give more of it")]
    AmbiguousScan {
        /// The prefix given.
        prefix: String,
        /// How many scans it matches.
        count: usize,
    },
    /// A stored value this code cannot read (written by hand, or damaged).
    #[error("history database {location}: unreadable stored value: {message}")]
    Value {
        /// The path or URL.
        location: String,
        /// What is wrong.
        message: String,
    },
}

/// Why a file could not be imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// nmap XML or Portolan JSON lines that do not read.
    #[error(transparent)]
    Results(#[from] portolan_report::ReportError),
    /// A masscan `-oL` line that does not read.
    #[error("masscan list, line {line}: {message}")]
    MasscanList {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A masscan JSON record that does not read.
    #[error("masscan JSON, record {record}: {message}")]
    MasscanJson {
        /// 1-based record number.
        record: usize,
        /// What is wrong.
        message: String,
    },
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The TOML does not read, or a value is not what the policy takes.
    #[error("line {line}, column {column}: {message}")]
    Invalid {
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What is wrong.
        message: String,
    },
}
