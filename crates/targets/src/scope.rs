//! Where a scan may send: the operator's scope (`--scope FILE`) and the
//! special-purpose ranges a wide scan leaves out unless they are named.
//!
//! A [`Scope`] is a set of networks read from a file in the `-iL` syntax
//! (addresses, CIDR blocks, octet ranges of at most 65,536 addresses; `#`
//! comments), kept as merged, sorted intervals. [`TargetList::check_scope`]
//! refuses a list with any address outside it that no exclusion removes,
//! naming the target token and the first such address.
//!
//! A list of more than [`WIDE_SCAN`] addresses (a prefix shorter than /16,
//! or a long `-iL` file) is a wide scan: [`TargetList::exclude_special_purpose`]
//! adds to its exclusions every range of IANA's IPv4 and IPv6
//! Special-Purpose Address Registries (RFC 6890 and its updates) and the
//! multicast and reserved blocks, as ZMap's default blocklist does, except
//! the ranges a target token lies within: the operator who types
//! `198.18.0.0/15` or `10.0.0.0/8` means it.
//!
//! Nothing here panics or does I/O; checking a list is O(tokens × log
//! networks), octet ranges aside (each of their addresses is tested, up to
//! 2^24 of them, beyond which their bounding interval is).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::octets::OctetRange;
use crate::target_list::{Exclusions, in_intervals, merge_intervals};
use crate::target_spec::{HostBlock, ParsedToken, parse_token};
use crate::{TargetError, TargetList, target_file_tokens};

/// A scan of more addresses than this is wide: special-purpose ranges are
/// excluded unless named.
pub const WIDE_SCAN: u128 = 65_536;

/// Octet ranges with more addresses than this are checked against the
/// scope by their bounding interval, not address by address.
const OCTETS_CHECKED_ONE_BY_ONE: u64 = 1 << 24;

/// The networks a scan may reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// Sorted, merged, inclusive intervals.
    ipv4: Vec<(u32, u32)>,
    ipv6: Vec<(u128, u128)>,
    /// Where it was read from, for messages.
    origin: String,
}

impl Scope {
    /// Reads a scope file's contents; `origin` names it in errors and in
    /// [`TargetError::OutOfScope`]. Host names are refused (a scope is
    /// addresses, not what a resolver says today).
    pub fn parse(contents: &[u8], origin: &str) -> Result<Scope, TargetError> {
        let tokens = target_file_tokens(contents, origin)?;
        let mut scope = Scope {
            origin: origin.to_owned(),
            ..Scope::default()
        };
        for token in &tokens {
            let bad = || TargetError::ScopeEntry {
                path: origin.to_owned(),
                token: token.clone(),
            };
            match parse_token(token)? {
                ParsedToken::Name { .. } => return Err(bad()),
                ParsedToken::Block(HostBlock::Ipv4Octets(range)) => {
                    if range.count() > WIDE_SCAN as u64 {
                        return Err(bad());
                    }
                    for index in 0..range.count() {
                        if let Some(addr) = range.address_at(index) {
                            scope.ipv4.push((addr.to_bits(), addr.to_bits()));
                        }
                    }
                }
                ParsedToken::Block(block) => match interval(&block) {
                    Span::V4(lo, hi) => scope.ipv4.push((lo, hi)),
                    Span::V6(lo, hi) => scope.ipv6.push((lo, hi)),
                },
            }
        }
        scope.ipv4 = merge_intervals(scope.ipv4);
        scope.ipv6 = merge_intervals(scope.ipv6);
        Ok(scope)
    }

    /// Reads a scope file.
    pub fn read(path: &str) -> Result<Scope, TargetError> {
        let contents = std::fs::read(path).map_err(|io| TargetError::ReadFile {
            path: path.to_owned(),
            io,
        })?;
        Scope::parse(&contents, path)
    }

    /// Whether `addr` is in scope.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(v4) => in_intervals(&self.ipv4, v4.to_bits()),
            IpAddr::V6(v6) => in_intervals(&self.ipv6, v6.to_bits()),
        }
    }

    /// The file it was read from.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// A range of IANA's special-purpose registries (or the multicast and
/// reserved blocks) left out of wide scans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialRange {
    /// Its first address.
    pub base: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// What it is, as the registry names it.
    pub name: &'static str,
}

impl fmt::Display for SpecialRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} ({})", self.base, self.prefix, self.name)
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8, name: &'static str) -> SpecialRange {
    SpecialRange {
        base: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        prefix,
        name,
    }
}

const fn v6(segments: [u16; 8], prefix: u8, name: &'static str) -> SpecialRange {
    let [a, b, c, d, e, f, g, h] = segments;
    SpecialRange {
        base: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
        prefix,
        name,
    }
}

/// IANA's IPv4 and IPv6 Special-Purpose Address Registries, the IPv4
/// multicast block and the IPv4 reserved block (as ZMap's blocklist).
pub const SPECIAL_PURPOSE: &[SpecialRange] = &[
    v4(0, 0, 0, 0, 8, "this network, RFC 791"),
    v4(10, 0, 0, 0, 8, "private use, RFC 1918"),
    v4(100, 64, 0, 0, 10, "shared address space, RFC 6598"),
    v4(127, 0, 0, 0, 8, "loopback, RFC 1122"),
    v4(169, 254, 0, 0, 16, "link local, RFC 3927"),
    v4(172, 16, 0, 0, 12, "private use, RFC 1918"),
    v4(192, 0, 0, 0, 24, "IETF protocol assignments, RFC 6890"),
    v4(192, 0, 2, 0, 24, "documentation (TEST-NET-1), RFC 5737"),
    v4(192, 31, 196, 0, 24, "AS112-v4, RFC 7535"),
    v4(192, 52, 193, 0, 24, "AMT, RFC 7450"),
    v4(
        192,
        88,
        99,
        0,
        24,
        "deprecated 6to4 relay anycast, RFC 7526",
    ),
    v4(192, 168, 0, 0, 16, "private use, RFC 1918"),
    v4(
        192,
        175,
        48,
        0,
        24,
        "direct delegation AS112 service, RFC 7534",
    ),
    v4(198, 18, 0, 0, 15, "benchmarking, RFC 2544"),
    v4(198, 51, 100, 0, 24, "documentation (TEST-NET-2), RFC 5737"),
    v4(203, 0, 113, 0, 24, "documentation (TEST-NET-3), RFC 5737"),
    v4(224, 0, 0, 0, 4, "multicast, RFC 5771"),
    v4(240, 0, 0, 0, 4, "reserved, RFC 1112"),
    v6(
        [0, 0, 0, 0, 0, 0, 0, 0],
        128,
        "unspecified address, RFC 4291",
    ),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback address, RFC 4291"),
    v6(
        [0, 0, 0, 0, 0, 0xffff, 0, 0],
        96,
        "IPv4-mapped address, RFC 4291",
    ),
    v6(
        [0x64, 0xff9b, 0, 0, 0, 0, 0, 0],
        96,
        "IPv4-IPv6 translation, RFC 6052",
    ),
    v6(
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "IPv4-IPv6 translation, RFC 8215",
    ),
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only, RFC 6666"),
    v6(
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "IETF protocol assignments, RFC 2928",
    ),
    v6(
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        "documentation, RFC 3849",
    ),
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "6to4, RFC 3056"),
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "documentation, RFC 9637"),
    v6(
        [0x5f00, 0, 0, 0, 0, 0, 0, 0],
        16,
        "segment routing SIDs, RFC 9602",
    ),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique local, RFC 4193"),
    v6(
        [0xfe80, 0, 0, 0, 0, 0, 0, 0],
        10,
        "link-local unicast, RFC 4291",
    ),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast, RFC 4291"),
];

/// A block's addresses as one inclusive interval (an octet range's
/// bounding interval).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Span {
    V4(u32, u32),
    V6(u128, u128),
}

fn interval(block: &HostBlock) -> Span {
    match *block {
        HostBlock::Ipv4Cidr { base, prefix } => Span::V4(
            base,
            base | u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0),
        ),
        HostBlock::Ipv6Cidr { base, prefix } => Span::V6(
            base,
            base | u128::MAX.checked_shr(u32::from(prefix)).unwrap_or(0),
        ),
        HostBlock::Ipv4Octets(range) => {
            let first = range.address_at(0).map_or(0, Ipv4Addr::to_bits);
            let last = range
                .address_at(range.count().saturating_sub(1))
                .map_or(first, Ipv4Addr::to_bits);
            Span::V4(first, last)
        }
    }
}

fn special_span(range: &SpecialRange) -> Span {
    interval(&HostBlock::cidr(range.base, range.prefix))
}

/// The first value of `[lo, hi]` that no interval of `allowed` (sorted,
/// merged) holds.
fn first_outside<T: Copy + Ord + Into<u128> + TryFrom<u128>>(
    lo: T,
    hi: T,
    allowed: &[(T, T)],
) -> Option<T> {
    let mut next: u128 = lo.into();
    let hi: u128 = hi.into();
    let start = allowed.partition_point(|&(_, end)| end.into() < next);
    for &(a, b) in &allowed[start..] {
        if a.into() > next {
            break;
        }
        next = b.into().checked_add(1)?;
        if next > hi {
            return None;
        }
    }
    (next <= hi).then(|| T::try_from(next).ok()).flatten()
}

impl TargetList {
    /// Whether the list is a wide scan (more than [`WIDE_SCAN`]
    /// addresses).
    pub fn is_wide(&self) -> bool {
        self.host_count() > WIDE_SCAN
    }

    /// For a wide list, excludes every [`SPECIAL_PURPOSE`] range that a
    /// target reaches into and no target token lies within. Returns the
    /// ranges excluded; nothing for a list that is not wide.
    pub fn exclude_special_purpose(&mut self) -> Vec<SpecialRange> {
        if !self.is_wide() {
            return Vec::new();
        }
        let spans: Vec<Span> = self.blocks().map(interval).collect();
        let mut excluded = Vec::new();
        for range in SPECIAL_PURPOSE {
            let special = special_span(range);
            let (mut reached, mut named) = (false, false);
            for span in &spans {
                match (*span, special) {
                    (Span::V4(lo, hi), Span::V4(a, b)) => {
                        reached |= lo <= b && a <= hi;
                        named |= a <= lo && hi <= b;
                    }
                    (Span::V6(lo, hi), Span::V6(a, b)) => {
                        reached |= lo <= b && a <= hi;
                        named |= a <= lo && hi <= b;
                    }
                    _ => {}
                }
            }
            if reached && !named {
                excluded.push(*range);
            }
        }
        let exclusions = self.exclusions_mut();
        for range in &excluded {
            exclusions.add(HostBlock::cidr(range.base, range.prefix));
        }
        exclusions.merge();
        excluded
    }

    /// Checks every address the list would scan against `scope`: the
    /// first one outside it, and not excluded, refuses the list.
    ///
    /// # Errors
    /// [`TargetError::OutOfScope`] naming the token and the address.
    pub fn check_scope(&self, scope: &Scope) -> Result<(), TargetError> {
        let exclusions = self.exclusions();
        let ipv4 = merge_intervals([&scope.ipv4[..], &exclusions.ipv4].concat());
        let ipv6 = merge_intervals([&scope.ipv6[..], &exclusions.ipv6].concat());
        let allowed = |addr: IpAddr| scope.contains(addr) || exclusions.contains(addr);
        for (token, block) in self.tokens_and_blocks() {
            let outside = match block {
                HostBlock::Ipv4Octets(range) if range.count() <= OCTETS_CHECKED_ONE_BY_ONE => {
                    first_octet_outside(range, &allowed)
                }
                _ => match interval(block) {
                    Span::V4(lo, hi) => {
                        first_outside(lo, hi, &ipv4).map(|a| IpAddr::V4(Ipv4Addr::from_bits(a)))
                    }
                    Span::V6(lo, hi) => {
                        first_outside(lo, hi, &ipv6).map(|a| IpAddr::V6(Ipv6Addr::from_bits(a)))
                    }
                },
            };
            if let Some(addr) = outside {
                return Err(TargetError::OutOfScope {
                    token,
                    addr,
                    scope: scope.origin.clone(),
                });
            }
        }
        Ok(())
    }
}

fn first_octet_outside(range: &OctetRange, allowed: &impl Fn(IpAddr) -> bool) -> Option<IpAddr> {
    (0..range.count())
        .filter_map(|index| range.address_at(index))
        .map(IpAddr::V4)
        .find(|&addr| !allowed(addr))
}

impl Exclusions {
    fn merge(&mut self) {
        self.ipv4 = merge_intervals(std::mem::take(&mut self.ipv4));
        self.ipv6 = merge_intervals(std::mem::take(&mut self.ipv6));
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn no_names(_: &str) -> io::Result<Vec<IpAddr>> {
        Err(io::Error::other("no names here"))
    }

    fn list(tokens: &[&str], excludes: &[&str]) -> TargetList {
        let strings = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        TargetList::parse(&strings(tokens), &strings(excludes), &no_names).unwrap()
    }

    fn scope(text: &str) -> Scope {
        Scope::parse(text.as_bytes(), "scope.txt").unwrap()
    }

    fn refused(list: &TargetList, scope: &Scope) -> (String, String) {
        match list.check_scope(scope) {
            Err(TargetError::OutOfScope { token, addr, .. }) => (token, addr.to_string()),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn targets_inside_the_scope_pass() {
        let s = scope("# lab\n198.18.0.0/24\n198.18.1.0/24 fd00::/64\n198.18.2.1-3\n");
        let l = list(
            &["198.18.0.0/23", "198.18.0.7", "fd00::5", "198.18.2.2-3"],
            &[],
        );
        assert!(l.check_scope(&s).is_ok());
    }

    #[test]
    fn the_first_address_outside_the_scope_is_named_with_its_token() {
        let s = scope("198.18.0.0/24\n198.18.2.0/24\n");
        let l = list(&["198.18.0.9", "198.18.0.0/22"], &[]);
        assert_eq!(
            refused(&l, &s),
            ("198.18.0.0/22".into(), "198.18.1.0".into())
        );
        let l = list(&["198.18.0.1-2,200"], &[]);
        assert!(l.check_scope(&s).is_ok());
        let l = list(&["198.18.1-2.5"], &[]);
        assert_eq!(
            refused(&l, &s),
            ("198.18.1-2.5".into(), "198.18.1.5".into())
        );
        let l = list(&["fd00::1"], &[]);
        assert_eq!(refused(&l, &s), ("fd00::1".into(), "fd00::1".into()));
        let err = list(&["198.18.3.3"], &[])
            .check_scope(&s)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("198.18.3.3") && err.contains("scope.txt"),
            "{err}"
        );
    }

    #[test]
    fn excluded_addresses_need_no_scope() {
        let s = scope("198.18.0.0/25\n");
        let l = list(&["198.18.0.0/24"], &["198.18.0.128/25"]);
        assert!(l.check_scope(&s).is_ok());
        let l = list(&["198.18.0.0/24"], &["198.18.0.129-255"]);
        assert!(l.check_scope(&s).is_err());
    }

    #[test]
    fn the_ends_of_the_address_space_are_checked() {
        let s = scope("0.0.0.0/1\n");
        let l = list(&["0.0.0.0/0"], &[]);
        assert_eq!(refused(&l, &s).1, "128.0.0.0");
        assert!(
            list(&["0.0.0.0/0"], &[])
                .check_scope(&scope("0.0.0.0/0"))
                .is_ok()
        );
        let l = list(&["ffff::/16"], &[]);
        assert!(l.check_scope(&scope("ff00::/8")).is_ok());
        assert!(l.check_scope(&scope("ffff::/17")).is_err());
    }

    #[test]
    fn scope_files_refuse_names_and_huge_octet_ranges_naming_them() {
        for text in ["lab.example\n", "198.18-19.*.*\n"] {
            let err = Scope::parse(text.as_bytes(), "scope.txt").unwrap_err();
            assert!(matches!(err, TargetError::ScopeEntry { .. }), "{err}");
            assert!(err.to_string().contains(text.trim()), "{err}");
        }
        let err = Scope::parse(b"198.18.0.0/33\n", "scope.txt").unwrap_err();
        assert!(err.to_string().contains("scope.txt:1"), "{err}");
    }

    #[test]
    fn narrow_scans_keep_special_purpose_ranges() {
        let mut l = list(&["10.1.0.0/16"], &[]);
        assert!(l.exclude_special_purpose().is_empty());
        assert!(l.host_at(5).is_some());
    }

    #[test]
    fn wide_scans_skip_special_purpose_ranges_unless_named() {
        let mut l = list(&["0.0.0.0/0", "198.18.0.0/15"], &[]);
        let excluded = l.exclude_special_purpose();
        let names: Vec<String> = excluded
            .iter()
            .map(|r| format!("{}/{}", r.base, r.prefix))
            .collect();
        assert!(names.contains(&"10.0.0.0/8".to_string()), "{names:?}");
        assert!(names.contains(&"127.0.0.0/8".to_string()), "{names:?}");
        assert!(names.contains(&"224.0.0.0/4".to_string()), "{names:?}");
        // Named explicitly: the lab's own range stays.
        assert!(!names.contains(&"198.18.0.0/15".to_string()), "{names:?}");
        for addr in [
            "10.1.2.3",
            "127.0.0.1",
            "192.168.1.1",
            "239.1.1.1",
            "255.255.255.255",
        ] {
            assert!(l.is_excluded(addr.parse().unwrap()), "{addr}");
        }
        for addr in ["198.18.0.1", "198.19.255.255", "8.8.8.8", "11.0.0.0"] {
            assert!(!l.is_excluded(addr.parse().unwrap()), "{addr}");
        }
        // A wide scan of a range inside one special range keeps all of it.
        let mut l = list(&["10.0.0.0/8"], &[]);
        assert!(l.exclude_special_purpose().is_empty());
        let mut l = list(&["fd00::/64"], &[]);
        assert!(l.exclude_special_purpose().is_empty());
        // fc00::/6 holds the unique local, link-local and multicast ranges.
        let mut l = list(&["fc00::/6"], &[]);
        let excluded = l.exclude_special_purpose();
        assert_eq!(excluded.len(), 3, "{excluded:?}");
        assert!(l.is_excluded("fd00::1".parse().unwrap()));
    }
}
