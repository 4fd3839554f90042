//! One target token in nmap's syntax, parsed without any I/O.
//!
//! A token is an IPv4 address, CIDR block or octet range (`198.18.0-3.*`), an
//! IPv6 address or CIDR block (optionally in brackets: `[fd00::]/120`), or a
//! host name with an optional prefix (`localhost/30`). Names are returned
//! unresolved ([`ParsedToken::Name`]); `TargetList` resolves them.
//! Address blocks ([`HostBlock`]) are counted and indexed arithmetically, so
//! a /8 or a /64 costs a few words. Parsing never panics and never allocates
//! except for error messages. Reference: `man nmap`, "TARGET SPECIFICATION";
//! RFC 4632 (CIDR), RFC 4291 §2.2-2.3 (IPv6 text form and prefixes).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::TargetError;
use crate::octets::{OctetRange, OctetSet};

/// A block of addresses that can be counted and indexed without expanding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum HostBlock {
    /// `base/prefix` with the host bits of `base` cleared; prefix 0..=32.
    Ipv4Cidr { base: u32, prefix: u8 },
    /// `base/prefix` with the host bits of `base` cleared; prefix 1..=128.
    Ipv6Cidr { base: u128, prefix: u8 },
    /// nmap's per-octet ranges.
    Ipv4Octets(OctetRange),
}

impl HostBlock {
    /// The block of the one address `addr`.
    pub(crate) fn single(addr: IpAddr) -> HostBlock {
        match addr {
            IpAddr::V4(v4) => HostBlock::Ipv4Cidr {
                base: v4.to_bits(),
                prefix: 32,
            },
            IpAddr::V6(v6) => HostBlock::Ipv6Cidr {
                base: v6.to_bits(),
                prefix: 128,
            },
        }
    }

    /// The CIDR block of `prefix` bits around `addr`; the caller has checked
    /// the prefix against the family (0..=32, 1..=128).
    pub(crate) fn cidr(addr: IpAddr, prefix: u8) -> HostBlock {
        match addr {
            IpAddr::V4(v4) => HostBlock::Ipv4Cidr {
                base: v4.to_bits() & ipv4_mask(prefix),
                prefix,
            },
            IpAddr::V6(v6) => HostBlock::Ipv6Cidr {
                base: v6.to_bits() & ipv6_mask(prefix),
                prefix,
            },
        }
    }

    /// How many addresses the block holds (network and broadcast included,
    /// as nmap scans them too).
    pub(crate) fn count(&self) -> u128 {
        match *self {
            HostBlock::Ipv4Cidr { prefix, .. } => 1u128 << (32 - u32::from(prefix.min(32))),
            HostBlock::Ipv6Cidr { prefix, .. } => 1u128 << (128 - u32::from(prefix.clamp(1, 128))),
            HostBlock::Ipv4Octets(range) => u128::from(range.count()),
        }
    }

    /// The `index`-th address in ascending order; `None` if out of range.
    pub(crate) fn address_at(&self, index: u128) -> Option<IpAddr> {
        if index >= self.count() {
            return None;
        }
        Some(match *self {
            // index < 2^(32 - prefix), so it fits and the sum cannot carry.
            HostBlock::Ipv4Cidr { base, .. } => {
                IpAddr::V4(Ipv4Addr::from_bits(base | index as u32))
            }
            HostBlock::Ipv6Cidr { base, .. } => IpAddr::V6(Ipv6Addr::from_bits(base | index)),
            HostBlock::Ipv4Octets(range) => IpAddr::V4(range.address_at(index as u64)?),
        })
    }

    /// Membership test (exclusions use merged intervals instead).
    #[cfg(test)]
    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
        match (*self, addr) {
            (HostBlock::Ipv4Cidr { base, prefix }, IpAddr::V4(v4)) => {
                v4.to_bits() & ipv4_mask(prefix) == base
            }
            (HostBlock::Ipv6Cidr { base, prefix }, IpAddr::V6(v6)) => {
                v6.to_bits() & ipv6_mask(prefix) == base
            }
            (HostBlock::Ipv4Octets(range), IpAddr::V4(v4)) => range.contains(v4),
            _ => false,
        }
    }
}

/// nmap's syntax: the address alone for one address, else `base/prefix`
/// or the octet ranges.
impl std::fmt::Display for HostBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            HostBlock::Ipv4Cidr { base, prefix: 32 } => write!(f, "{}", Ipv4Addr::from_bits(base)),
            HostBlock::Ipv4Cidr { base, prefix } => {
                write!(f, "{}/{prefix}", Ipv4Addr::from_bits(base))
            }
            HostBlock::Ipv6Cidr { base, prefix: 128 } => write!(f, "{}", Ipv6Addr::from_bits(base)),
            HostBlock::Ipv6Cidr { base, prefix } => {
                write!(f, "{}/{prefix}", Ipv6Addr::from_bits(base))
            }
            HostBlock::Ipv4Octets(range) => write!(f, "{range}"),
        }
    }
}

fn ipv4_mask(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn ipv6_mask(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

/// A token after syntax checking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ParsedToken<'a> {
    /// Literal addresses.
    Block(HostBlock),
    /// A host name to resolve, with the prefix text after `/` if any (its
    /// valid range depends on the family the name resolves to).
    Name { name: &'a str, prefix: Option<u8> },
}

/// Parses one target token (no I/O).
pub(crate) fn parse_token(token: &str) -> Result<ParsedToken<'_>, TargetError> {
    if token.is_empty() {
        return Err(TargetError::Empty);
    }
    let (host, prefix) = match token.rsplit_once('/') {
        Some((host, prefix)) => (host, Some(prefix)),
        None => (token, None),
    };
    if host.is_empty() {
        return Err(TargetError::MalformedName {
            token: token.to_owned(),
        });
    }
    let prefix = prefix.map(|text| parse_prefix(token, text)).transpose()?;

    if host.starts_with('[') || host.contains(':') {
        let inner = match host.strip_prefix('[') {
            Some(rest) => rest
                .strip_suffix(']')
                .ok_or_else(|| malformed_ipv6(token))?,
            None => host,
        };
        if inner.contains('%') {
            return Err(TargetError::Ipv6Zone {
                token: token.to_owned(),
            });
        }
        let addr: Ipv6Addr = inner.parse().map_err(|_| malformed_ipv6(token))?;
        let prefix = match prefix {
            Some(prefix) => check_prefix(token, IpAddr::V6(addr), prefix)?,
            None => 128,
        };
        return Ok(ParsedToken::Block(HostBlock::cidr(
            IpAddr::V6(addr),
            prefix,
        )));
    }

    if host.bytes().all(is_octet_syntax) {
        let range = parse_octet_range(token, host)?;
        let block = match prefix {
            None => match single_address(&range) {
                Some(addr) => HostBlock::single(IpAddr::V4(addr)),
                None => HostBlock::Ipv4Octets(range),
            },
            Some(prefix) => {
                let addr =
                    single_address(&range).ok_or_else(|| TargetError::PrefixOnOctetRange {
                        token: token.to_owned(),
                    })?;
                let prefix = check_prefix(token, IpAddr::V4(addr), prefix)?;
                HostBlock::cidr(IpAddr::V4(addr), prefix)
            }
        };
        return Ok(ParsedToken::Block(block));
    }

    if is_host_name(host) {
        return Ok(ParsedToken::Name { name: host, prefix });
    }
    Err(TargetError::MalformedName {
        token: token.to_owned(),
    })
}

/// Checks a prefix length against the family of `addr`.
pub(crate) fn check_prefix(token: &str, addr: IpAddr, prefix: u8) -> Result<u8, TargetError> {
    match addr {
        IpAddr::V4(_) if prefix <= 32 => Ok(prefix),
        IpAddr::V4(_) => Err(TargetError::Ipv4PrefixOutOfRange {
            token: token.to_owned(),
            prefix: prefix.to_string(),
        }),
        IpAddr::V6(_) if (1..=128).contains(&prefix) => Ok(prefix),
        IpAddr::V6(_) => Err(TargetError::Ipv6PrefixOutOfRange {
            token: token.to_owned(),
            prefix: prefix.to_string(),
        }),
    }
}

/// Parses the digits after `/`. Values above 255 cannot be valid for any
/// family, so they are reported as out of range for the token's family now.
fn parse_prefix(token: &str, text: &str) -> Result<u8, TargetError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TargetError::MalformedPrefix {
            token: token.to_owned(),
            prefix: text.to_owned(),
        });
    }
    text.parse::<u8>().map_err(|_| {
        let token = token.to_owned();
        let prefix = text.to_owned();
        if token.contains(':') {
            TargetError::Ipv6PrefixOutOfRange { token, prefix }
        } else {
            TargetError::Ipv4PrefixOutOfRange { token, prefix }
        }
    })
}

fn malformed_ipv6(token: &str) -> TargetError {
    TargetError::MalformedIpv6 {
        token: token.to_owned(),
    }
}

fn is_octet_syntax(byte: u8) -> bool {
    byte.is_ascii_digit() || matches!(byte, b'.' | b',' | b'-' | b'*')
}

/// Host names as resolvers accept them: letters, digits, `-`, `_`, `.`, at
/// most 253 bytes (RFC 1123 §2.1, plus `_` seen in practice).
fn is_host_name(host: &str) -> bool {
    host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn single_address(range: &OctetRange) -> Option<Ipv4Addr> {
    let [a, b, c, d] = &range.octets;
    Some(Ipv4Addr::new(
        a.as_single()?,
        b.as_single()?,
        c.as_single()?,
        d.as_single()?,
    ))
}

/// Parses `a.b.c.d` where each part is a comma list of `n`, `n-m`, `-m`,
/// `n-`, `-` or `*`.
pub(crate) fn parse_octet_range(token: &str, host: &str) -> Result<OctetRange, TargetError> {
    let found = host.split('.').count();
    if found != 4 {
        return Err(TargetError::OctetCount {
            token: token.to_owned(),
            found,
        });
    }
    let mut octets = [OctetSet::default(); 4];
    for (set, part) in octets.iter_mut().zip(host.split('.')) {
        *set = parse_octet_part(token, part)?;
    }
    Ok(OctetRange { octets })
}

fn parse_octet_part(token: &str, part: &str) -> Result<OctetSet, TargetError> {
    let mut set = OctetSet::default();
    for item in part.split(',') {
        let malformed = || TargetError::MalformedOctet {
            token: token.to_owned(),
            octet: part.to_owned(),
        };
        let (start, end) = match item {
            "" => return Err(malformed()),
            "*" | "-" => (0, 255),
            _ => match item.split_once('-') {
                None => {
                    let value = parse_octet(token, item).ok_or_else(malformed)??;
                    (value, value)
                }
                Some((start, end)) => {
                    let start = match start {
                        "" => 0,
                        _ => parse_octet(token, start).ok_or_else(malformed)??,
                    };
                    let end = match end {
                        "" => 255,
                        _ => parse_octet(token, end).ok_or_else(malformed)??,
                    };
                    if start > end {
                        return Err(TargetError::ReversedOctetRange {
                            token: token.to_owned(),
                            range: item.to_owned(),
                        });
                    }
                    (start, end)
                }
            },
        };
        set.insert_range(start, end);
    }
    Ok(set)
}

/// `None` if `text` is not all digits; `Some(Err)` if it is above 255.
fn parse_octet(token: &str, text: &str) -> Option<Result<u8, TargetError>> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        text.parse::<u8>()
            .map_err(|_| TargetError::OctetOutOfRange {
                token: token.to_owned(),
                octet: text.to_owned(),
            }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(token: &str) -> HostBlock {
        match parse_token(token) {
            Ok(ParsedToken::Block(block)) => block,
            other => panic!("{token}: {other:?}"),
        }
    }

    fn addresses(token: &str) -> Vec<String> {
        let block = block(token);
        (0..block.count())
            .map(|i| block.address_at(i).unwrap().to_string())
            .collect()
    }

    fn error(token: &str) -> String {
        let message = parse_token(token).unwrap_err().to_string();
        assert!(
            message.contains(&format!("\"{token}\"")) || token.is_empty(),
            "{message} does not name {token}"
        );
        message
    }

    #[test]
    fn single_ipv4_address() {
        assert_eq!(addresses("198.18.0.1"), ["198.18.0.1"]);
        assert_eq!(
            block("198.18.0.1"),
            HostBlock::Ipv4Cidr {
                base: 0xc612_0001,
                prefix: 32
            }
        );
    }

    #[test]
    fn ipv4_cidr_includes_network_and_broadcast() {
        let all = addresses("198.18.0.0/30");
        assert_eq!(
            all,
            ["198.18.0.0", "198.18.0.1", "198.18.0.2", "198.18.0.3"]
        );
        assert_eq!(block("198.18.0.0/24").count(), 256);
        assert_eq!(block("0.0.0.0/0").count(), 1 << 32);
    }

    #[test]
    fn ipv4_cidr_clears_host_bits() {
        assert_eq!(addresses("198.18.0.5/30")[0], "198.18.0.4");
        assert_eq!(addresses("198.18.0.5/32"), ["198.18.0.5"]);
    }

    #[test]
    fn ipv6_forms() {
        assert_eq!(addresses("fd00::1"), ["fd00::1"]);
        assert_eq!(addresses("[fd00::1]"), ["fd00::1"]);
        assert_eq!(
            addresses("fd00::/126"),
            ["fd00::", "fd00::1", "fd00::2", "fd00::3"]
        );
        assert_eq!(addresses("[fd00::7]/127"), ["fd00::6", "fd00::7"]);
        assert_eq!(block("::/1").count(), 1 << 127);
        assert_eq!(block("fd00::/64").count(), 1 << 64);
    }

    #[test]
    fn octet_range_forms() {
        assert_eq!(
            addresses("198.18.0-1.1-2"),
            ["198.18.0.1", "198.18.0.2", "198.18.1.1", "198.18.1.2"]
        );
        assert_eq!(block("198.18.*.1").count(), 256);
        assert_eq!(
            addresses("198.18.0,2,4-6.1"),
            [
                "198.18.0.1",
                "198.18.2.1",
                "198.18.4.1",
                "198.18.5.1",
                "198.18.6.1"
            ]
        );
        assert_eq!(addresses("198.18.-3.1").len(), 4);
        assert_eq!(addresses("198.18.-3.1")[3], "198.18.3.1");
        assert_eq!(addresses("198.18.250-.1").len(), 6);
        assert_eq!(addresses("198.18.250-.1")[5], "198.18.255.1");
        assert_eq!(block("198.18.0.-").count(), 256);
        assert_eq!(block("*.*.*.*").count(), 1 << 32);
    }

    #[test]
    fn names_are_left_for_the_resolver() {
        assert_eq!(
            parse_token("localhost").unwrap(),
            ParsedToken::Name {
                name: "localhost",
                prefix: None
            }
        );
        assert_eq!(
            parse_token("scan-me.example_1.org/30").unwrap(),
            ParsedToken::Name {
                name: "scan-me.example_1.org",
                prefix: Some(30)
            }
        );
    }

    #[test]
    fn errors_name_the_token() {
        assert!(error("198.18.0.300").contains("octet 300 out of range"));
        assert!(error("198.18.5-3.1").contains("octet range 5-3 runs backwards"));
        assert!(error("198.18.1").contains("expected 4"));
        assert!(error("198.18.1.2.3").contains("found 5"));
        assert!(error("198.18.0.1,,2").contains("malformed octet \"1,,2\""));
        assert!(error("198.18.0.1-2-3").contains("malformed octet"));
        assert!(error("198.18.0-3.0/24").contains("cannot follow octet ranges"));
        assert!(error("198.18.0.0/33").contains("/33 out of range /0-/32"));
        assert!(error("198.18.0.0/999").contains("/999 out of range"));
        assert!(error("198.18.0.0/x").contains("not a number"));
        assert!(error("198.18.0.0/").contains("not a number"));
        assert!(error("fd00::/0").contains("2^128"));
        assert!(error("fd00::/129").contains("/129 out of range /1-/128"));
        assert!(error("fd00::/300").contains("/300 out of range /1-/128"));
        assert!(error("fd00:::1").contains("malformed IPv6"));
        assert!(error("[fd00::1").contains("malformed IPv6"));
        assert!(error("fe80::1%eth0").contains("zone"));
        assert!(error("bad host!").contains("not an address"));
        assert!(error("/24").contains("not an address"));
        assert_eq!(error(""), "empty target specification");
        assert!(error("198.18.0.99999999999999999999").contains("octet 99999999999999999999"));
    }

    #[test]
    fn contains_matches_the_block() {
        let cidr = block("198.18.0.0/24");
        assert!(cidr.contains("198.18.0.255".parse().unwrap()));
        assert!(!cidr.contains("198.18.1.0".parse().unwrap()));
        assert!(!cidr.contains("fd00::1".parse().unwrap()));
        let v6 = block("fd00::/64");
        assert!(v6.contains("fd00::ffff:1".parse().unwrap()));
        assert!(!v6.contains("fd00:0:0:1::".parse().unwrap()));
        let all = block("0.0.0.0/0");
        assert!(all.contains("255.255.255.255".parse().unwrap()));
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        fn octet_set() -> impl Strategy<Value = OctetSet> {
            prop_oneof![
                Just(OctetSet::FULL),
                proptest::collection::vec((any::<u8>(), 0u8..8), 1..5).prop_map(|runs| {
                    let mut set = OctetSet::default();
                    for (start, extra) in runs {
                        set.insert_range(start, start.saturating_add(extra));
                    }
                    set
                }),
            ]
        }

        proptest! {
            #[test]
            fn never_panics(token in "\\PC{0,40}") {
                let _ = parse_token(&token);
            }

            #[test]
            fn never_panics_on_address_like_text(token in "[0-9.,*/:\\[\\]-]{0,30}") {
                let _ = parse_token(&token);
            }

            #[test]
            fn octet_ranges_round_trip(octets in proptest::array::uniform4(octet_set())) {
                let range = OctetRange { octets };
                let text = range.to_string();
                let block = match parse_token(&text) {
                    Ok(ParsedToken::Block(block)) => block,
                    other => return Err(TestCaseError::fail(format!("{text}: {other:?}"))),
                };
                prop_assert_eq!(block.count(), u128::from(range.count()));
                for index in [0, range.count() / 2, range.count() - 1] {
                    let expected = range.address_at(index).map(IpAddr::V4);
                    prop_assert_eq!(block.address_at(u128::from(index)), expected);
                }
            }

            #[test]
            fn cidr_round_trips(base: u32, prefix in 0u8..=32, index: u32) {
                let text = format!("{}/{prefix}", Ipv4Addr::from_bits(base));
                let block = match parse_token(&text) {
                    Ok(ParsedToken::Block(block)) => block,
                    other => return Err(TestCaseError::fail(format!("{text}: {other:?}"))),
                };
                let index = u128::from(index) % block.count();
                let addr = block.address_at(index).unwrap();
                prop_assert!(block.contains(addr));
                prop_assert!(block.contains(IpAddr::V4(Ipv4Addr::from_bits(base))));
            }

            #[test]
            fn ipv6_cidr_round_trips(base: u128, prefix in 1u8..=128, index: u128) {
                let text = format!("{}/{prefix}", Ipv6Addr::from_bits(base));
                let block = match parse_token(&text) {
                    Ok(ParsedToken::Block(block)) => block,
                    other => return Err(TestCaseError::fail(format!("{text}: {other:?}"))),
                };
                let addr = block.address_at(index % block.count()).unwrap();
                prop_assert!(block.contains(addr));
                prop_assert!(block.contains(IpAddr::V6(Ipv6Addr::from_bits(base))));
            }
        }
    }
}
