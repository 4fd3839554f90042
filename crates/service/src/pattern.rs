//! Version-detection patterns, compiled with PCRE2 over bytes.
//!
//! nmap-service-probes patterns are Perl regexes applied to raw bytes: they
//! use look-around, atomic groups, possessive quantifiers and
//! back-references, which only a backtracking engine runs, so this is PCRE2
//! (JIT when available, UTF off: one byte is one character). Read
//! pcre2pattern(3) and pcre2api(3), "The match context", first.
//!
//! Contract:
//! - Backtracking is bounded as in nmap: every pattern is prefixed with
//!   `(*LIMIT_MATCH=..)(*LIMIT_DEPTH=..)(*LIMIT_HEAP=..)` (PCRE2 honours
//!   these start-of-pattern settings, and they can only lower the
//!   library's limits), so a hostile banner costs bounded time; hitting a
//!   limit counts as no match. JIT code honours the match limit and runs
//!   on its own bounded stack (overflowing it is no match either); the
//!   depth and heap limits bind the interpreter, used where JIT is not.
//! - A pattern that matches the empty string is refused, as nmap does.
//! - Pattern bytes outside ASCII are written as `\x{..}` so that any byte
//!   string is a valid pattern text. No panics, no unsafe code.

use pcre2::bytes::{Regex, RegexBuilder};

/// nmap's backtracking limit per match attempt.
pub const MATCH_LIMIT: u32 = 50_000;
/// nmap's nesting depth limit.
pub const DEPTH_LIMIT: u32 = 1_000;
/// nmap's heap limit, in KiB (10 MiB).
pub const HEAP_LIMIT_KIB: u32 = 10 * 1024;

/// Why a pattern cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternError {
    /// PCRE2 refused it.
    #[error("\"{pattern}\" does not compile: {message}")]
    Compile {
        /// The pattern as written in the file.
        pattern: String,
        /// PCRE2's message.
        message: String,
    },
    /// It matches the empty string, so it would match anything.
    #[error("\"{0}\" matches the empty string")]
    MatchesEmpty(String),
}

/// A compiled pattern.
#[derive(Debug)]
pub struct Pattern {
    regex: Regex,
}

/// The capture groups of one match: group `i` is `groups[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Groups<'s> {
    groups: Vec<Option<&'s [u8]>>,
}

impl<'s> Groups<'s> {
    /// Group `i` (0 is the whole match), if it took part in the match.
    pub fn get(&self, i: usize) -> Option<&'s [u8]> {
        self.groups.get(i).copied().flatten()
    }
}

impl Pattern {
    /// Compiles `pattern` (bytes as written between the delimiters) with
    /// the `i` (caseless) and `s` (dot matches newline) flags.
    pub fn compile(pattern: &[u8], caseless: bool, dotall: bool) -> Result<Pattern, PatternError> {
        let text = pattern_text(pattern);
        let limited = format!(
            "(*LIMIT_MATCH={MATCH_LIMIT})(*LIMIT_DEPTH={DEPTH_LIMIT})(*LIMIT_HEAP={HEAP_LIMIT_KIB}){text}"
        );
        let regex = RegexBuilder::new()
            .caseless(caseless)
            .dotall(dotall)
            .jit_if_available(true)
            .build(&limited)
            .map_err(|e| PatternError::Compile {
                pattern: String::from_utf8_lossy(pattern).into_owned(),
                message: e.to_string(),
            })?;
        if regex.is_match(b"").unwrap_or(false) {
            return Err(PatternError::MatchesEmpty(
                String::from_utf8_lossy(pattern).into_owned(),
            ));
        }
        Ok(Pattern { regex })
    }

    /// The groups of the first match in `subject`, if any. A match that
    /// hits a resource limit is no match.
    pub fn captures<'s>(&self, subject: &'s [u8]) -> Option<Groups<'s>> {
        let caps = self.regex.captures(subject).ok()??;
        let groups = (0..caps.len())
            .map(|i| caps.get(i).map(|m| m.as_bytes()))
            .collect();
        Some(Groups { groups })
    }
}

/// The pattern as PCRE2 text: ASCII as is, other bytes as `\x{..}`. A
/// backslash before such a byte escaped it as a literal; the `\x{..}` form
/// is literal already, so that backslash is dropped.
fn pattern_text(pattern: &[u8]) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut escaped = false;
    for &b in pattern {
        if b.is_ascii() {
            out.push(b as char);
            escaped = b == b'\\' && !escaped;
        } else {
            if escaped {
                out.pop();
            }
            out.push_str(&format!("\\x{{{b:02x}}}"));
            escaped = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_features_run_over_bytes() {
        let p = Pattern::compile(b"^(?>a+)(?!b)\\x00(\\w)\\1$", false, false).unwrap();
        let g = p.captures(b"aaa\0zz").unwrap();
        assert_eq!(g.get(1), Some(&b"z"[..]));
        assert!(p.captures(b"aaab\0zz").is_none());
        let p = Pattern::compile(b"^x.y", false, true).unwrap();
        assert!(p.captures(b"x\ny").is_some());
        let p = Pattern::compile(b"^HELLO", true, false).unwrap();
        assert!(p.captures(b"hello").is_some());
        // `$` also matches before a final newline, as in Perl.
        let p = Pattern::compile(b"^ok$", false, false).unwrap();
        assert!(p.captures(b"ok\n").is_some());
    }

    #[test]
    fn high_bytes_are_literal() {
        let p = Pattern::compile(b"^\xff\\\xfe", false, false).unwrap();
        assert!(p.captures(b"\xff\xfe").is_some());
        assert!(p.captures(b"\xff\\\xfe").is_none());
    }

    #[test]
    fn catastrophic_backtracking_is_cut_short() {
        let p = Pattern::compile(b"^(a+)+$", false, false).unwrap();
        let mut subject = vec![b'a'; 40];
        subject.push(b'b');
        assert!(p.captures(&subject).is_none());
    }

    #[test]
    fn bad_and_empty_patterns_are_refused() {
        assert!(matches!(
            Pattern::compile(b"a(", false, false),
            Err(PatternError::Compile { .. })
        ));
        assert!(matches!(
            Pattern::compile(b"a*", false, false),
            Err(PatternError::MatchesEmpty(_))
        ));
    }
}
