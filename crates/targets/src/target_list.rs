//! The scan's targets: an ordered list of address blocks, minus exclusions,
//! indexed without ever being expanded.
//!
//! [`TargetList::parse`] checks every token, resolves host names once each
//! through the given [`Resolver`], and keeps one [`HostBlock`] per token plus
//! the running start index of each, so [`TargetList::host_at`] finds the
//! block by binary search and computes the address: O(log specs), no
//! allocation. Exclusions are a membership test: CIDR blocks become merged,
//! sorted intervals (binary search), octet ranges are tested one by one.
//! Duplicated targets are kept, as nmap keeps them. Nothing here panics on
//! any input. Reference: `man nmap`, "TARGET SPECIFICATION".

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::octets::OctetRange;
use crate::target_spec::{HostBlock, ParsedToken, check_prefix, parse_token};
use crate::{Resolver, TargetError};

/// One address to scan, with the host name the user typed if any, and
/// the name reverse DNS gave it once known.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Target {
    pub addr: IpAddr,
    /// The name as typed (`scanme.example`), shared cheaply between clones.
    pub name: Option<Arc<str>>,
    /// The address's name from reverse DNS (its PTR record), already
    /// escaped to printable ASCII by portolan-dns; set by the binary
    /// before a finished host is written, `None` until then.
    pub rdns: Option<Arc<str>>,
}

impl Target {
    /// A target given as an address, with no name.
    pub fn from_addr(addr: IpAddr) -> Target {
        Target {
            addr,
            name: None,
            rdns: None,
        }
    }

    /// The name reports show for the host: the one typed, else the one
    /// from reverse DNS (nmap's rule).
    pub fn shown_name(&self) -> Option<&str> {
        self.name.as_deref().or(self.rdns.as_deref())
    }
}

/// `name (addr)` when named, as nmap's reports write it; else `addr`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} ({})", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// Choices that change how tokens are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetOptions {
    /// Take a name's first IPv6 address rather than its first IPv4 one
    /// (nmap's `-6`); either way, fall back to the other family.
    pub prefer_ipv6: bool,
}

/// One target token after resolution.
#[derive(Clone, Debug)]
struct TargetSpec {
    block: HostBlock,
    /// The typed name and the one address it resolved to; the name is
    /// attached only to that address (a `name/24` block names one host).
    name: Option<(Arc<str>, IpAddr)>,
}

/// The ordered targets of a scan and the addresses excluded from it.
#[derive(Clone, Debug, Default)]
pub struct TargetList {
    specs: Vec<TargetSpec>,
    /// `starts[i]` is the index of the first address of `specs[i]`.
    starts: Vec<u128>,
    total: u128,
    exclusions: Exclusions,
}

impl TargetList {
    /// Parses targets and exclusions, preferring IPv4 for names.
    pub fn parse<R: Resolver + ?Sized>(
        tokens: &[String],
        excludes: &[String],
        resolver: &R,
    ) -> Result<TargetList, TargetError> {
        TargetList::parse_with(tokens, excludes, resolver, TargetOptions::default())
    }

    /// Parses targets and exclusions with `options`. Each distinct name is
    /// resolved once; the first error stops parsing and is returned.
    pub fn parse_with<R: Resolver + ?Sized>(
        tokens: &[String],
        excludes: &[String],
        resolver: &R,
        options: TargetOptions,
    ) -> Result<TargetList, TargetError> {
        let mut names = NameCache::new(resolver);
        let mut list = TargetList::default();
        for token in tokens {
            let spec = match parse_token(token)? {
                ParsedToken::Block(block) => TargetSpec { block, name: None },
                ParsedToken::Name { name, prefix } => {
                    let addrs = names.resolve(token, name)?;
                    let addr = pick_address(addrs, options.prefer_ipv6).ok_or_else(|| {
                        TargetError::NoAddresses {
                            token: token.clone(),
                        }
                    })?;
                    let block = match prefix {
                        Some(prefix) => HostBlock::cidr(addr, check_prefix(token, addr, prefix)?),
                        None => HostBlock::single(addr),
                    };
                    TargetSpec {
                        block,
                        name: Some((Arc::from(name), addr)),
                    }
                }
            };
            let total = list.total.checked_add(spec.block.count()).ok_or_else(|| {
                TargetError::TooManyAddresses {
                    token: token.clone(),
                }
            })?;
            list.starts.push(list.total);
            list.specs.push(spec);
            list.total = total;
        }
        list.exclusions = Exclusions::parse(excludes, &mut names)
            .map_err(|error| TargetError::Exclusion(Box::new(error)))?;
        Ok(list)
    }

    /// A list of exactly `targets`, in that order, with their names (the
    /// hosts that host discovery found up, say).
    pub fn from_targets(targets: &[Target]) -> TargetList {
        let mut list = TargetList::default();
        for t in targets {
            list.starts.push(list.total);
            list.specs.push(TargetSpec {
                block: HostBlock::single(t.addr),
                name: t.name.clone().map(|n| (n, t.addr)),
            });
            list.total += 1;
        }
        list
    }

    /// Addresses across all specs, before exclusion.
    pub fn host_count(&self) -> u128 {
        self.total
    }

    /// True when no target was given.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// How many target tokens were given.
    pub fn spec_count(&self) -> usize {
        self.specs.len()
    }

    /// The `index`-th address across specs in the order given; `None` when
    /// it is excluded or `index >= host_count()`. O(log specs), and it
    /// allocates nothing (a name is an `Arc` clone).
    pub fn host_at(&self, index: u128) -> Option<Target> {
        if index >= self.total {
            return None;
        }
        let spec_index = self
            .starts
            .partition_point(|&start| start <= index)
            .checked_sub(1)?;
        let spec = self.specs.get(spec_index)?;
        let addr = spec.block.address_at(index - self.starts[spec_index])?;
        if self.is_excluded(addr) {
            return None;
        }
        Some(spec.target(addr))
    }

    /// Whether an exclusion covers `addr`.
    pub fn is_excluded(&self, addr: IpAddr) -> bool {
        self.exclusions.contains(addr)
    }

    /// Each token's block, in the order given.
    pub(crate) fn blocks(&self) -> impl Iterator<Item = &HostBlock> {
        self.specs.iter().map(|spec| &spec.block)
    }

    /// Each token as messages name it (the host name, or the block in
    /// nmap's syntax), with its block.
    pub(crate) fn tokens_and_blocks(&self) -> impl Iterator<Item = (String, &HostBlock)> {
        self.specs.iter().map(|spec| {
            let token = match &spec.name {
                Some((name, _)) => name.to_string(),
                None => spec.block.to_string(),
            };
            (token, &spec.block)
        })
    }

    pub(crate) fn exclusions(&self) -> &Exclusions {
        &self.exclusions
    }

    pub(crate) fn exclusions_mut(&mut self) -> &mut Exclusions {
        &mut self.exclusions
    }

    /// Every address not excluded, lazily, in the order given (for `-sL`).
    pub fn iter(&self) -> impl Iterator<Item = Target> + '_ {
        self.specs.iter().flat_map(move |spec| {
            (0..spec.block.count()).filter_map(move |index| {
                let addr = spec.block.address_at(index)?;
                (!self.is_excluded(addr)).then(|| spec.target(addr))
            })
        })
    }
}

impl TargetSpec {
    fn target(&self, addr: IpAddr) -> Target {
        let name = match &self.name {
            Some((name, named)) if *named == addr => Some(Arc::clone(name)),
            _ => None,
        };
        Target {
            addr,
            name,
            rdns: None,
        }
    }
}

fn pick_address(addrs: &[IpAddr], prefer_ipv6: bool) -> Option<IpAddr> {
    addrs
        .iter()
        .find(|addr| addr.is_ipv6() == prefer_ipv6)
        .or_else(|| addrs.first())
        .copied()
}

/// Resolves each distinct name once per parse.
struct NameCache<'r, R: ?Sized> {
    resolver: &'r R,
    entries: Vec<(Box<str>, Vec<IpAddr>)>,
}

impl<'r, R: Resolver + ?Sized> NameCache<'r, R> {
    fn new(resolver: &'r R) -> Self {
        NameCache {
            resolver,
            entries: Vec::new(),
        }
    }

    fn resolve(&mut self, token: &str, name: &str) -> Result<&[IpAddr], TargetError> {
        let position = match self.entries.iter().position(|(known, _)| **known == *name) {
            Some(position) => position,
            None => {
                let addrs = self
                    .resolver
                    .resolve(name)
                    .map_err(|io| TargetError::Resolve {
                        token: token.to_owned(),
                        io,
                    })?;
                self.entries.push((name.into(), addrs));
                self.entries.len() - 1
            }
        };
        Ok(&self.entries[position].1)
    }
}

/// Excluded addresses as a membership test.
#[derive(Clone, Debug, Default)]
pub(crate) struct Exclusions {
    /// Sorted, merged, inclusive intervals.
    pub(crate) ipv4: Vec<(u32, u32)>,
    pub(crate) ipv6: Vec<(u128, u128)>,
    octet_ranges: Vec<OctetRange>,
}

impl Exclusions {
    /// Same syntax as targets; a name excludes every address it resolves
    /// to (both families), or the block of `prefix` bits around each.
    fn parse<R: Resolver + ?Sized>(
        tokens: &[String],
        names: &mut NameCache<'_, R>,
    ) -> Result<Exclusions, TargetError> {
        let mut exclusions = Exclusions::default();
        for token in tokens {
            match parse_token(token)? {
                ParsedToken::Block(block) => exclusions.add(block),
                ParsedToken::Name { name, prefix } => {
                    let addrs = names.resolve(token, name)?;
                    if addrs.is_empty() {
                        return Err(TargetError::NoAddresses {
                            token: token.clone(),
                        });
                    }
                    for &addr in addrs {
                        exclusions.add(match prefix {
                            Some(prefix) => {
                                HostBlock::cidr(addr, check_prefix(token, addr, prefix)?)
                            }
                            None => HostBlock::single(addr),
                        });
                    }
                }
            }
        }
        exclusions.ipv4 = merge_intervals(exclusions.ipv4);
        exclusions.ipv6 = merge_intervals(exclusions.ipv6);
        Ok(exclusions)
    }

    pub(crate) fn add(&mut self, block: HostBlock) {
        match block {
            HostBlock::Ipv4Cidr { base, prefix } => {
                let span = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
                self.ipv4.push((base, base | span));
            }
            HostBlock::Ipv6Cidr { base, prefix } => {
                let span = u128::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
                self.ipv6.push((base, base | span));
            }
            HostBlock::Ipv4Octets(range) => self.octet_ranges.push(range),
        }
    }

    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(v4) => {
                in_intervals(&self.ipv4, v4.to_bits())
                    || self.octet_ranges.iter().any(|range| range.contains(v4))
            }
            IpAddr::V6(v6) => in_intervals(&self.ipv6, v6.to_bits()),
        }
    }
}

pub(crate) fn merge_intervals<T: Copy + Ord + Into<u128>>(
    mut intervals: Vec<(T, T)>,
) -> Vec<(T, T)> {
    intervals.sort_unstable();
    let mut merged: Vec<(T, T)> = Vec::with_capacity(intervals.len());
    for (start, end) in intervals {
        match merged.last_mut() {
            // Overlapping or adjacent (end + 1 == start; u128 holds end + 1).
            Some(last) if start.into() <= last.1.into().saturating_add(1) => {
                last.1 = last.1.max(end);
            }
            _ => merged.push((start, end)),
        }
    }
    merged
}

pub(crate) fn in_intervals<T: Copy + Ord>(intervals: &[(T, T)], value: T) -> bool {
    let after = intervals.partition_point(|&(start, _)| start <= value);
    after > 0 && intervals[after - 1].1 >= value
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn a_list_from_targets_keeps_order_and_names() {
        let targets = vec![
            Target {
                addr: "198.18.0.9".parse().unwrap(),
                name: Some(Arc::from("nine.lab")),
                rdns: None,
            },
            Target::from_addr("fd00::1".parse().unwrap()),
        ];
        let list = TargetList::from_targets(&targets);
        assert_eq!(list.host_count(), 2);
        assert_eq!(list.iter().collect::<Vec<_>>(), targets);
    }

    fn fake(name: &str) -> io::Result<Vec<IpAddr>> {
        let addrs: &[&str] = match name {
            "dual.test" => &["fd00::10", "198.18.7.7"],
            "v6only.test" => &["fd00::20"],
            "web.test" => &["198.18.9.9"],
            "empty.test" => &[],
            _ => return Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
        };
        Ok(addrs.iter().map(|a| a.parse().unwrap()).collect())
    }

    fn strings(tokens: &[&str]) -> Vec<String> {
        tokens.iter().map(|t| t.to_string()).collect()
    }

    fn list(tokens: &[&str], excludes: &[&str]) -> TargetList {
        TargetList::parse(&strings(tokens), &strings(excludes), &fake).unwrap()
    }

    fn addrs(list: &TargetList) -> Vec<String> {
        list.iter().map(|t| t.addr.to_string()).collect()
    }

    #[test]
    fn specs_concatenate_in_order() {
        let list = list(&["198.18.0.0/31", "fd00::1", "198.18.1.1-2"], &[]);
        assert_eq!(list.host_count(), 5);
        assert_eq!(list.spec_count(), 3);
        assert_eq!(
            addrs(&list),
            [
                "198.18.0.0",
                "198.18.0.1",
                "fd00::1",
                "198.18.1.1",
                "198.18.1.2"
            ]
        );
        assert_eq!(list.host_at(2).unwrap().addr.to_string(), "fd00::1");
        assert_eq!(list.host_at(5), None);
        assert_eq!(list.host_at(u128::MAX), None);
    }

    #[test]
    fn names_resolve_prefer_ipv4_by_default() {
        let list = list(&["dual.test", "v6only.test"], &[]);
        let hosts: Vec<Target> = list.iter().collect();
        assert_eq!(hosts[0].addr.to_string(), "198.18.7.7");
        assert_eq!(hosts[0].name.as_deref(), Some("dual.test"));
        assert_eq!(hosts[0].to_string(), "dual.test (198.18.7.7)");
        assert_eq!(hosts[1].addr.to_string(), "fd00::20");
    }

    #[test]
    fn names_prefer_ipv6_when_asked() {
        let options = TargetOptions { prefer_ipv6: true };
        let list = TargetList::parse_with(&strings(&["dual.test"]), &[], &fake, options).unwrap();
        assert_eq!(list.host_at(0).unwrap().addr.to_string(), "fd00::10");
    }

    #[test]
    fn name_with_prefix_is_a_block_around_its_address() {
        let list = list(&["web.test/30"], &[]);
        let hosts: Vec<Target> = list.iter().collect();
        assert_eq!(hosts.len(), 4);
        assert_eq!(hosts[0].addr.to_string(), "198.18.9.8");
        assert_eq!(hosts[0].name, None);
        assert_eq!(hosts[1].name.as_deref(), Some("web.test"));
        let v6 = list_result(&["v6only.test/126"]).unwrap();
        assert_eq!(v6.host_count(), 4);
        let err = list_result(&["web.test/40"]).unwrap_err().to_string();
        assert!(
            err.contains("\"web.test/40\"") && err.contains("/40"),
            "{err}"
        );
    }

    fn list_result(tokens: &[&str]) -> Result<TargetList, TargetError> {
        TargetList::parse(&strings(tokens), &[], &fake)
    }

    #[test]
    fn resolution_errors_name_the_token() {
        let err = list_result(&["nowhere.test"]).unwrap_err().to_string();
        assert!(err.contains("\"nowhere.test\""), "{err}");
        let err = list_result(&["empty.test"]).unwrap_err().to_string();
        assert!(err.contains("\"empty.test\": no addresses"), "{err}");
        let err = list_result(&["198.18.0.1", "198.18.0.256"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"198.18.0.256\""), "{err}");
    }

    #[test]
    fn each_name_is_resolved_once() {
        let calls = std::cell::Cell::new(0);
        let counting = |name: &str| {
            calls.set(calls.get() + 1);
            fake(name)
        };
        let tokens = strings(&["web.test", "web.test/31"]);
        TargetList::parse(&tokens, &strings(&["web.test"]), &counting).unwrap();
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn exclusions_by_address_cidr_octets_and_name() {
        let list = list(
            &["198.18.0.0/28", "198.18.9.8/30"],
            &[
                "198.18.0.0/30",
                "198.18.0.5",
                "198.18.0.10-11,13",
                "web.test",
            ],
        );
        assert_eq!(
            addrs(&list),
            [
                "198.18.0.4",
                "198.18.0.6",
                "198.18.0.7",
                "198.18.0.8",
                "198.18.0.9",
                "198.18.0.12",
                "198.18.0.14",
                "198.18.0.15",
                "198.18.9.8",
                "198.18.9.10",
                "198.18.9.11"
            ]
        );
        assert_eq!(list.host_count(), 20);
        assert_eq!(list.host_at(0), None);
        assert_eq!(list.host_at(4).unwrap().addr.to_string(), "198.18.0.4");
        assert!(list.is_excluded("198.18.9.9".parse().unwrap()));
        assert!(!list.is_excluded("fd00::1".parse().unwrap()));
    }

    #[test]
    fn name_exclusion_covers_both_families() {
        let list = list(&["fd00::10", "198.18.7.7", "198.18.7.8"], &["dual.test"]);
        assert_eq!(addrs(&list), ["198.18.7.8"]);
    }

    #[test]
    fn exclusion_errors_say_so() {
        let err = TargetList::parse(&strings(&["198.18.0.1"]), &strings(&["1.2.3"]), &fake)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("in exclusions: invalid target \"1.2.3\""),
            "{err}"
        );
    }

    #[test]
    fn ipv6_exclusions_merge() {
        let list = list(
            &["fd00::/120"],
            &["fd00::/121", "fd00::80/122", "fd00::c0/123"],
        );
        let left: Vec<String> = addrs(&list);
        assert_eq!(left.len(), 32);
        assert_eq!(left[0], "fd00::e0");
        assert!(list.is_excluded("fd00::bf".parse().unwrap()));
    }

    #[test]
    fn slash_8_is_indexed_not_materialised() {
        let list = list(&["10.0.0.0/8"], &["10.128.0.0/9"]);
        assert_eq!(list.host_count(), 1 << 24);
        assert_eq!(list.host_at((1 << 24) - 1), None);
        assert_eq!(
            list.host_at(0x12_3456).unwrap().addr.to_string(),
            "10.18.52.86"
        );
        assert_eq!(list.iter().take(3).count(), 3);
    }

    #[test]
    fn slash_64_is_indexed_not_materialised() {
        let list = list(&["fd00::/64", "198.18.0.1"], &[]);
        assert_eq!(list.host_count(), (1 << 64) + 1);
        let host = list.host_at(1 << 63).unwrap();
        assert_eq!(host.addr.to_string(), "fd00::8000:0:0:0");
        assert_eq!(
            list.host_at(1 << 64).unwrap().addr.to_string(),
            "198.18.0.1"
        );
    }

    #[test]
    fn whole_ipv6_space_in_halves_overflows_the_counter() {
        let err = list_result(&["::/1", "8000::/1"]).unwrap_err().to_string();
        assert!(err.contains("\"8000::/1\""), "{err}");
        assert_eq!(list(&["::/1", "8000::/2"], &[]).host_count(), 3 << 126);
    }

    #[test]
    fn empty_list() {
        let list = list(&[], &[]);
        assert!(list.is_empty());
        assert_eq!(list.host_at(0), None);
        assert_eq!(list.iter().count(), 0);
    }

    #[test]
    fn localhost_through_the_system_resolver() {
        let list =
            TargetList::parse(&strings(&["localhost"]), &[], &crate::SystemResolver).unwrap();
        let host = list.host_at(0).unwrap();
        assert!(host.addr.is_loopback());
        assert_eq!(host.name.as_deref(), Some("localhost"));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn parsing_never_panics(
                tokens in proptest::collection::vec("\\PC{0,20}", 0..4),
                excludes in proptest::collection::vec("[0-9a-f.:/*,-]{0,20}", 0..4),
            ) {
                let tokens: Vec<String> = tokens;
                let excludes: Vec<String> = excludes;
                if let Ok(list) = TargetList::parse(&tokens, &excludes, &fake) {
                    let count = list.host_count();
                    for index in [0, count / 2, count.saturating_sub(1), count] {
                        let _ = list.host_at(index);
                    }
                    let _ = list.iter().take(10).count();
                }
            }

            #[test]
            fn host_at_agrees_with_iter(
                excludes in proptest::collection::vec("198\\.18\\.[0-1]\\.[0-9]{1,2}(/3[0-2])?", 0..6),
            ) {
                let tokens = strings(&["198.18.0.0/26", "198.18.0-3,9.1-3", "web.test/29"]);
                let list = TargetList::parse(&tokens, &excludes, &fake).unwrap();
                let by_index: Vec<Target> = (0..list.host_count()).filter_map(|i| list.host_at(i)).collect();
                let by_iter: Vec<Target> = list.iter().collect();
                prop_assert_eq!(by_index, by_iter);
            }
        }
    }
}
