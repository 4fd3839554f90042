//! The typed errors of this crate: [`DbError`] for a database file that
//! cannot be read or parsed.
//!
//! Every parse error carries the line number (from 1) and the offending
//! text, so the message alone says what to fix.

use std::io;
use std::path::PathBuf;

/// Why a database file was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The file could not be read.
    #[error("cannot read OS database {path}: {io}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        io: io::Error,
    },
    /// A line that is no part of the format.
    #[error("line {line}: {what}: \"{text}\"")]
    Syntax {
        /// The line number, from 1.
        line: usize,
        /// What is wrong.
        what: &'static str,
        /// The offending text.
        text: String,
    },
    /// A test line before any `Fingerprint` or `MatchPoints` line.
    #[error("line {line}: test line outside a fingerprint: \"{text}\"")]
    Orphan {
        /// The line number, from 1.
        line: usize,
        /// The line.
        text: String,
    },
    /// The same test twice in one fingerprint.
    #[error("line {line}: test {test} given twice in one fingerprint")]
    Duplicate {
        /// The line number, from 1.
        line: usize,
        /// The test's name.
        test: String,
    },
    /// A file with fingerprints but no `MatchPoints` section.
    #[error("the OS database has no MatchPoints section")]
    NoMatchPoints,
}
