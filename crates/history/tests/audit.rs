//! Audits (filled below).
