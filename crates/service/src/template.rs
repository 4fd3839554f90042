//! Version templates: the `p/ v/ i/ h/ o/ d/ cpe:/` fields of a match
//! line, filled from the pattern's capture groups.
//!
//! Substitutions (nmap's, see "Version detection" in the nmap book):
//! - `$1`..`$9`: the group's bytes;
//! - `$P(n)`: the group's printable bytes only (drops NULs of UTF-16);
//! - `$SUBST(n,"from","to")`: the group with every `from` replaced;
//! - `$I(n,">")` / `$I(n,"<")`: the group (at most 8 bytes) read as a
//!   big- or little-endian unsigned integer, in decimal.
//!
//! Contract: filling never panics; a malformed `$` form is copied as
//! written; a group that did not take part is empty. Results are text
//! from the network, held lossily as UTF-8 and possibly containing control
//! characters: escape before printing. Each field is cut at
//! [`MAX_FIELD`] bytes.

use crate::pattern::Groups;

/// Longest filled field kept, in bytes.
pub const MAX_FIELD: usize = 256;

/// The version fields of a match line: as written in the file (with `$1`
/// forms and CPE names without `cpe:/`), or filled from one match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionFields {
    /// `p/../`: the product.
    pub product: Option<String>,
    /// `v/../`: the version.
    pub version: Option<String>,
    /// `i/../`: extra information.
    pub info: Option<String>,
    /// `h/../`: the host name the service gave.
    pub hostname: Option<String>,
    /// `o/../`: the operating system.
    pub ostype: Option<String>,
    /// `d/../`: the device type.
    pub devicetype: Option<String>,
    /// `cpe:/../`: CPE names (with the `cpe:/` prefix once filled).
    pub cpe: Vec<String>,
}

impl VersionFields {
    /// Fills every field of this template from `groups`. Fields that
    /// come out empty are left out.
    pub fn fill(&self, groups: &Groups<'_>) -> VersionFields {
        let one = |t: &Option<String>| {
            t.as_deref()
                .map(|t| expand(t, groups))
                .filter(|s| !s.is_empty())
        };
        VersionFields {
            product: one(&self.product),
            version: one(&self.version),
            info: one(&self.info),
            hostname: one(&self.hostname),
            ostype: one(&self.ostype),
            devicetype: one(&self.devicetype),
            cpe: self
                .cpe
                .iter()
                .map(|c| format!("cpe:/{}", expand(c, groups)))
                .collect(),
        }
    }
}

/// Expands one template string.
pub fn expand(template: &str, groups: &Groups<'_>) -> String {
    let mut out: Vec<u8> = Vec::new();
    let bytes = template.as_bytes();
    let mut i = 0;
    while i < bytes.len() && out.len() < MAX_FIELD {
        if bytes[i] == b'$'
            && let Some((text, used)) = substitution(&bytes[i..], groups)
        {
            out.extend_from_slice(&text);
            i += used;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out.truncate(MAX_FIELD);
    String::from_utf8_lossy(&out).into_owned()
}

/// A `$` form at the start of `s`: its text and how many bytes it took.
fn substitution(s: &[u8], groups: &Groups<'_>) -> Option<(Vec<u8>, usize)> {
    let group = |d: u8| groups.get(usize::from(d - b'0')).unwrap_or_default();
    match s.get(1)? {
        d @ b'1'..=b'9' => Some((group(*d).to_vec(), 2)),
        _ => {
            let close = s.iter().position(|&b| b == b')')?;
            let (name, args) = split_call(&s[1..close])?;
            let d = *args.first()?.as_bytes().first()?;
            if args[0].len() != 1 || !d.is_ascii_digit() || d == b'0' {
                return None;
            }
            let value = group(d);
            let text = match (name, args.len()) {
                ("P", 1) => value
                    .iter()
                    .copied()
                    .filter(|b| b.is_ascii_graphic() || *b == b' ')
                    .collect(),
                ("SUBST", 3) => {
                    let from = unquote(args[1])?;
                    let to = unquote(args[2])?;
                    replace_all(value, from.as_bytes(), to.as_bytes())
                }
                ("I", 2) => {
                    let order = unquote(args[1])?;
                    integer(value, order)?.to_string().into_bytes()
                }
                _ => return None,
            };
            Some((text, close + 1))
        }
    }
}

/// `NAME(a,b,c` → ("NAME", [a, b, c]); quoted commas are not split.
fn split_call(s: &[u8]) -> Option<(&str, Vec<&str>)> {
    let s = std::str::from_utf8(s).ok()?;
    let (name, args) = s.split_once('(')?;
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in args.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&args[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&args[start..]);
    Some((name, parts))
}

fn unquote(s: &str) -> Option<&str> {
    s.strip_prefix('"')?.strip_suffix('"')
}

fn replace_all(value: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return value.to_vec();
    }
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(value[i]);
            i += 1;
        }
    }
    out
}

fn integer(value: &[u8], order: &str) -> Option<u64> {
    if value.len() > 8 {
        return None;
    }
    let fold = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
    match order {
        ">" => Some(value.iter().fold(0, fold)),
        "<" => Some(value.iter().rev().fold(0, fold)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::Pattern;

    fn fill(pattern: &[u8], subject: &[u8], template: &str) -> String {
        let p = Pattern::compile(pattern, false, true).unwrap();
        let g = p.captures(subject).unwrap();
        expand(template, &g)
    }

    #[test]
    fn substitutions() {
        assert_eq!(fill(b"^(a)(b)", b"ab", "$2-$1 $3 $$"), "b-a  $$");
        assert_eq!(fill(b"^(.+)$", b"a\0b\0c", "$P(1)"), "abc");
        assert_eq!(fill(b"^(.+)$", b"1_2_3", "$SUBST(1,\"_\",\".\")"), "1.2.3");
        assert_eq!(fill(b"^(.+)$", b"a,b", "$SUBST(1,\",\",\" \")"), "a b");
        assert_eq!(fill(b"^(..)", b"\x01\x02", "$I(1,\">\")"), "258");
        assert_eq!(fill(b"^(..)", b"\x01\x02", "$I(1,\"<\")"), "513");
    }

    #[test]
    fn malformed_forms_are_literal() {
        for t in [
            "$P(",
            "$P(x)",
            "$Q(1)",
            "$I(1,\"?\")",
            "$SUBST(1,\"a\")",
            "$",
            "$P(0)",
        ] {
            assert_eq!(fill(b"^(a)", b"a", t), t);
        }
    }

    #[test]
    fn fields_are_bounded_and_empty_ones_dropped() {
        let p = Pattern::compile(b"^(.+)$", false, true).unwrap();
        let long = vec![b'x'; 10_000];
        let g = p.captures(&long).unwrap();
        let t = VersionFields {
            product: Some("$1$1".into()),
            version: Some("$2".into()),
            cpe: vec!["a:x:y:$2".into()],
            ..VersionFields::default()
        };
        let f = t.fill(&g);
        assert_eq!(f.product.unwrap().len(), MAX_FIELD);
        assert_eq!(f.version, None);
        assert_eq!(f.cpe, vec!["cpe:/a:x:y:"]);
    }
}
