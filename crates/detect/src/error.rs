//! Errors of the capture readers (each names the file and, where the
//! parser stopped, the byte offset into the (decompressed) stream) and of
//! the allowlist reader (the line and its text).

use std::path::PathBuf;

/// Reading a capture file failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The capture file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file starts with neither a pcap nor a pcapng header.
    #[error("{path}: not a pcap or pcapng file (gzip'd or not)")]
    NotACapture {
        /// The capture file.
        path: PathBuf,
    },
    /// The parser met bytes it cannot read.
    #[error("{path}: malformed capture at byte {offset}: {reason}")]
    Malformed {
        /// The capture file.
        path: PathBuf,
        /// Offset into the decompressed stream of the block that failed.
        offset: u64,
        /// What the parser said.
        reason: String,
    },
}

/// A line of an allowlist is neither an address nor a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("line {line}: {text:?} is not an address or network")]
pub struct AllowlistError {
    /// The line number, from 1.
    pub line: usize,
    /// The line's text, comment and blanks removed.
    pub text: String,
}
