//! The value expressions of nmap-os-db test lines, and how an observed
//! value matches them.
//!
//! A reference value is alternatives separated by `|`; each is a hex
//! range `lo-hi`, a bound `>x` or `<x` (hex), or a literal (compared as
//! text: `Y`, `S+`, `M5B4NNSW7`, or empty). An observed value is one
//! literal. Numbers are hexadecimal, as the format writes them, up to 64
//! bits. Nothing here panics or allocates beyond the parsed alternatives.
//!
//! Read first: nmap.org/book/osdetect-fingerprint-format.html.

/// One alternative of a reference value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Alternative {
    /// A literal, compared as text (and as a number when both sides are
    /// hex, so `0A` equals `A`).
    Literal(String),
    /// A closed hex range.
    Range(u64, u64),
    /// Above a hex value.
    Greater(u64),
    /// Below a hex value.
    Less(u64),
}

/// A reference value: any of its alternatives matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr(pub Vec<Alternative>);

/// Reads a hex number of the format (`FA`, `104`); `None` for anything
/// else, empty text included.
pub fn hex(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 16 {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

impl Expr {
    /// Parses a reference value; `Err` names the alternative that is
    /// neither a literal nor a well-formed range or bound.
    pub fn parse(text: &str) -> Result<Expr, String> {
        let mut alternatives = Vec::new();
        for alt in text.split('|') {
            let parsed = if let Some(rest) = alt.strip_prefix('>') {
                Alternative::Greater(hex(rest).ok_or_else(|| alt.to_string())?)
            } else if let Some(rest) = alt.strip_prefix('<') {
                Alternative::Less(hex(rest).ok_or_else(|| alt.to_string())?)
            } else if let Some((lo, hi)) = alt.split_once('-') {
                match (hex(lo), hex(hi)) {
                    (Some(lo), Some(hi)) if lo <= hi => Alternative::Range(lo, hi),
                    _ => return Err(alt.to_string()),
                }
            } else if alt.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+') {
                Alternative::Literal(alt.to_string())
            } else {
                return Err(alt.to_string());
            };
            alternatives.push(parsed);
        }
        Ok(Expr(alternatives))
    }

    /// Whether the observed value `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        let number = hex(value);
        self.0.iter().any(|alt| match alt {
            Alternative::Literal(l) => {
                l == value || matches!((number, hex(l)), (Some(a), Some(b)) if a == b && is_plain_hex(l) && is_plain_hex(value))
            }
            Alternative::Range(lo, hi) => number.is_some_and(|n| (*lo..=*hi).contains(&n)),
            Alternative::Greater(x) => number.is_some_and(|n| n > *x),
            Alternative::Less(x) => number.is_some_and(|n| n < *x),
        })
    }
}

/// Whether `text` is only hex digits (a number, not a code like `S+`).
fn is_plain_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit())
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, alt) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            match alt {
                Alternative::Literal(l) => f.write_str(l)?,
                Alternative::Range(lo, hi) => write!(f, "{lo:X}-{hi:X}")?,
                Alternative::Greater(x) => write!(f, ">{x:X}")?,
                Alternative::Less(x) => write!(f, "<{x:X}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_bounds_and_alternatives_match_as_nmap_reads_them() {
        let e = Expr::parse("FA-104").unwrap();
        assert!(e.matches("FF") && e.matches("FA") && e.matches("104"));
        assert!(!e.matches("40") && !e.matches("105") && !e.matches("Y"));
        let e = Expr::parse("51E80C|A3D018|>FFFF0000").unwrap();
        assert!(e.matches("A3D018") && e.matches("FFFFFFFF"));
        assert!(!e.matches("1"));
        let e = Expr::parse("<5").unwrap();
        assert!(e.matches("4") && !e.matches("5"));
        let e = Expr::parse("S+|O").unwrap();
        assert!(e.matches("S+") && e.matches("O") && !e.matches("S"));
        // The empty value (`Q=`) matches only the empty value.
        let e = Expr::parse("").unwrap();
        assert!(e.matches("") && !e.matches("R"));
        // Numbers compare as numbers: a leading zero changes nothing.
        assert!(Expr::parse("A").unwrap().matches("0A"));
    }

    #[test]
    fn malformed_alternatives_are_named() {
        assert_eq!(Expr::parse("5-3"), Err("5-3".into()));
        assert_eq!(Expr::parse("1|>G"), Err(">G".into()));
        assert_eq!(Expr::parse("a b"), Err("a b".into()));
        assert_eq!(Expr::parse("1-"), Err("1-".into()));
    }

    #[test]
    fn display_gives_the_text_back() {
        for text in ["FA-104", "S+|O", ">0", "M5B4NNSW7", ""] {
            assert_eq!(Expr::parse(text).unwrap().to_string(), text);
        }
    }
}
