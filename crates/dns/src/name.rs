//! The name a PTR query asks for, and names from answers made safe.
//!
//! [`reverse_name`] writes an address as its reverse-mapping name: the
//! four octets of an IPv4 address in reverse under `in-addr.arpa.`
//! (RFC 1035 §3.5), the 32 nibbles of an IPv6 address in reverse under
//! `ip6.arpa.` (RFC 3596 §2.5). [`HostName`] is a name from the network,
//! checked and escaped once so that no consumer can be surprised by it:
//! printable ASCII only (letters, digits, `-`, `_` and the dots between
//! labels kept; any other byte, control bytes and dots inside a label
//! included, written as `\DDD`, the escape of RFC 1035 §5.1). Nothing here
//! panics.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// `d.c.b.a.in-addr.arpa.` or the 32-nibble `ip6.arpa.` name of `addr`.
pub fn reverse_name(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(73);
            for byte in v6.octets().iter().rev() {
                for nibble in [byte & 0xf, byte >> 4] {
                    out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
                    out.push('.');
                }
            }
            out.push_str("ip6.arpa.");
            out
        }
    }
}

/// A host name from a PTR record, safe to print: printable ASCII, labels
/// joined by dots, no trailing dot, every unusual byte written as `\DDD`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostName(Arc<str>);

/// Why a name from the network is not a [`HostName`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The root name (no label): nothing to show.
    #[error("the name is empty (the root)")]
    Empty,
    /// A label longer than 63 bytes.
    #[error("a label of {0} bytes (at most 63)")]
    LabelTooLong(usize),
    /// A name longer than 255 bytes on the wire.
    #[error("a name of {0} bytes (at most 255)")]
    NameTooLong(usize),
    /// An empty label inside the name.
    #[error("an empty label inside the name")]
    EmptyLabel,
}

impl HostName {
    /// Checks and escapes a name given as its labels' raw bytes.
    pub fn from_labels<'a, I>(labels: I) -> Result<HostName, NameError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut out = String::new();
        let mut wire_len = 1usize;
        let mut count = 0usize;
        for label in labels {
            if label.is_empty() {
                return Err(NameError::EmptyLabel);
            }
            if label.len() > 63 {
                return Err(NameError::LabelTooLong(label.len()));
            }
            wire_len += 1 + label.len();
            if wire_len > 255 {
                return Err(NameError::NameTooLong(wire_len));
            }
            if count > 0 {
                out.push('.');
            }
            count += 1;
            for &b in label {
                if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("\\{b:03}"));
                }
            }
        }
        if count == 0 {
            return Err(NameError::Empty);
        }
        Ok(HostName(out.into()))
    }

    /// Checks and escapes a name written with dots (`host.example`; a
    /// trailing dot is allowed). A backslash is taken as a byte, not an
    /// escape.
    pub fn parse_dotted(text: &str) -> Result<HostName, NameError> {
        let text = text.strip_suffix('.').unwrap_or(text);
        if text.is_empty() {
            return Err(NameError::Empty);
        }
        HostName::from_labels(text.split('.').map(str::as_bytes))
    }

    /// The escaped name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The escaped name, shared.
    pub fn to_arc(&self) -> Arc<str> {
        Arc::clone(&self.0)
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ipv4_reverse_names() {
        assert_eq!(
            reverse_name("198.18.0.2".parse().unwrap()),
            "2.0.18.198.in-addr.arpa."
        );
        assert_eq!(
            reverse_name("0.0.0.0".parse().unwrap()),
            "0.0.0.0.in-addr.arpa."
        );
    }

    #[test]
    fn ipv6_reverse_names() {
        // RFC 3596 §2.5's example address.
        assert_eq!(
            reverse_name("4321:0:1:2:3:4:567:89ab".parse().unwrap()),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa."
        );
        assert_eq!(
            reverse_name("fd00::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."
        );
    }

    #[test]
    fn reverse_names_match_hickory() {
        for a in ["198.18.3.250", "255.255.255.255", "fd00:1::ff", "::", "::1"] {
            let addr: IpAddr = a.parse().unwrap();
            let theirs = hickory_proto::rr::Name::from(addr).to_ascii();
            assert_eq!(reverse_name(addr), theirs, "{a}");
        }
    }

    #[test]
    fn ordinary_names_pass() {
        let n = HostName::parse_dotted("web-1.lab_zone.example.").unwrap();
        assert_eq!(n.as_str(), "web-1.lab_zone.example");
        assert_eq!(n.to_string(), "web-1.lab_zone.example");
    }

    #[test]
    fn hostile_bytes_are_escaped() {
        let labels: [&[u8]; 3] = [b"a\x1b[2Jb", b"x.y", b"\xff\0 \\\""];
        let n = HostName::from_labels(labels).unwrap();
        assert_eq!(
            n.as_str(),
            "a\\027\\0912Jb.x\\046y.\\255\\000\\032\\092\\034"
        );
        assert!(n.as_str().bytes().all(|b| (0x21..0x7f).contains(&b)));
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert_eq!(HostName::parse_dotted("."), Err(NameError::Empty));
        assert_eq!(HostName::parse_dotted(""), Err(NameError::Empty));
        assert_eq!(HostName::parse_dotted("a..b"), Err(NameError::EmptyLabel));
        let long = "x".repeat(64);
        assert_eq!(
            HostName::parse_dotted(&long),
            Err(NameError::LabelTooLong(64))
        );
        let many = vec!["abcdefghi"; 26].join(".");
        assert!(matches!(
            HostName::parse_dotted(&many),
            Err(NameError::NameTooLong(_))
        ));
    }

    proptest! {
        #[test]
        fn any_labels_give_printable_text_or_an_error(
            labels in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..70), 0..8)
        ) {
            if let Ok(n) = HostName::from_labels(labels.iter().map(Vec::as_slice)) {
                prop_assert!(n.as_str().bytes().all(|b| (0x21..0x7f).contains(&b)));
            }
        }
    }
}
