//! Diffs (filled below).
