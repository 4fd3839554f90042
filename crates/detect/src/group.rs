//! Scans by several sources, judged at the scanned side (as Snort's
//! `port_scan` tracks distributed and decoy scans at the scanned host):
//! every failed probe is filed in two *spaces*, the ports of its host and
//! the hosts of its port, under its source.
//!
//! - **Distributed** (Gates, "Coordinated Scan Detection", NDSS 2009):
//!   sources whose failed probes into one space together cover much of it
//!   with little overlap between them, each free to stay under every
//!   per-source threshold. For the hosts of a port, the covered hosts must
//!   also fill at least half of the address range they span (Gates'
//!   contiguous target space: a peer-to-peer client's failures are
//!   scattered, a split sweep's are not).
//! - **Decoy** (nmap's and Portolan's `-D`): sources whose failed probes
//!   into one space are nearly the same set, begun within seconds of each
//!   other: one real scanner and spoofed copies of its probes. Which one
//!   is real is for the caller to read from the rest of the evidence (the
//!   source that followed an answer up, the one TTL that differs).
//!
//! Contract: sans-IO (time is the packets'), no panic. A space keeps at
//! most [`MAX_SHARES`] sources with [`MAX_ITEMS`] items each (kept
//! sorted, so comparing two is one merge); spaces are capped by
//! [`GroupConfig::max_spaces`], the least recently touched eighth evicted
//! and counted; a full space makes room by dropping its least recently
//! active source. A space is judged only when one of its sources grows.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::decode::Proto;

/// Sources kept per space.
pub const MAX_SHARES: usize = 32;
/// Items (ports or hosts) kept per source in a space.
pub const MAX_ITEMS: usize = 64;

/// Thresholds of the group tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupConfig {
    /// Failed probes into a space a source needs to count in a group.
    pub min_share: usize,
    /// Distinct items a distributed group must cover together.
    pub distributed_items: usize,
    /// Most overlap a distributed group may have: 1 − covered / probed.
    pub max_overlap: f32,
    /// Least share of their span the hosts of a distributed sweep fill.
    pub min_coverage: f32,
    /// A member's share is at least the largest share over this: a group
    /// is sources of like weight (a decoy group forming, the real source's
    /// failures read at once and its copies' only after the answer
    /// timeout, is one large share and small ones, not a split scan).
    pub max_imbalance: usize,
    /// Failed probes each member of a decoy group needs.
    pub decoy_items: usize,
    /// Least share of a member's items that the largest member has too
    /// (|a ∩ b| / min(|a|, |b|)): copies of one scan.
    pub decoy_similarity: f32,
    /// Most time between the first failures of decoy group members (ns).
    pub decoy_sync_ns: u64,
    /// Sources silent in a space for longer than this leave its groups (ns).
    pub window_ns: u64,
    /// A distributed group's members were active within this of the time
    /// the group's newest member began (ns): a split scan's parts run
    /// side by side, and an earlier split scan of the same ports is not
    /// part of a later one.
    pub cohesion_ns: u64,
    /// Most spaces tracked at once.
    pub max_spaces: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            min_share: 2,
            distributed_items: 10,
            max_overlap: 0.2,
            min_coverage: 0.5,
            max_imbalance: 4,
            decoy_items: 4,
            decoy_similarity: 0.7,
            decoy_sync_ns: 60_000_000_000,
            window_ns: 3_600_000_000_000,
            cohesion_ns: 600_000_000_000,
            max_spaces: 65_536,
        }
    }
}

/// Where a group's probes fell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Space {
    /// The ports of one host (a vertical scan split or copied).
    Ports {
        /// The scanned host.
        host: IpAddr,
        /// The probes' protocol.
        proto: Proto,
    },
    /// The hosts probed on one port (a sweep split or copied).
    Hosts {
        /// The probes' protocol.
        proto: Proto,
        /// The port swept.
        port: u16,
    },
}

/// What kind of group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupKind {
    /// Several sources, one space, little overlap.
    Distributed,
    /// Several sources, one space, the same probes.
    Decoy,
}

/// One source of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The source.
    pub source: IpAddr,
    /// Its distinct failed probes into the space (up to [`MAX_ITEMS`]).
    pub items: u32,
    /// Its first failure in the space (ns).
    pub first_ns: u64,
}

/// A group found in a space.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Distributed or decoy.
    pub kind: GroupKind,
    /// Where.
    pub space: Space,
    /// The members, largest share first.
    pub members: Vec<Member>,
    /// The distinct items covered, sorted (ports, or hosts as integers).
    pub covered: Vec<u128>,
    /// 1 − covered / the members' items summed.
    pub overlap: f32,
    /// Covered items over the range they span.
    pub coverage: f32,
    /// Decoys: the least containment of a member in the largest.
    pub similarity: f32,
}

#[derive(Debug)]
struct Share {
    source: IpAddr,
    first_ns: u64,
    last_ns: u64,
    items: Vec<u128>,
}

#[derive(Debug, Default)]
struct Tracker {
    last_ns: u64,
    shares: Vec<Share>,
    /// The members of the last group reported, per kind (distributed,
    /// decoy), as a key: a group is reported again only when its members
    /// change.
    reported: [u64; 2],
}

/// The group tests over every space.
#[derive(Debug)]
pub struct Groups {
    config: GroupConfig,
    spaces: HashMap<Space, Tracker>,
    evictions: u64,
}

/// A host address as an integer, for ranges of hosts.
pub fn host_item(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl Groups {
    /// Group tests with `config`.
    pub fn new(config: GroupConfig) -> Self {
        Self {
            config,
            spaces: HashMap::new(),
            evictions: 0,
        }
    }

    /// Spaces evicted by the budget so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Files a failed probe from `source` into `space` (`item`: the port,
    /// or [`host_item`] of the host) at `now_ns`; a group it completes or
    /// grows comes back. `sweeper` says which sources are known sweepers
    /// (flagged horizontal or strobe): their failures on one host belong
    /// to their sweep, so they join no distributed group of its ports.
    pub fn failure(
        &mut self,
        source: IpAddr,
        space: Space,
        item: u128,
        now_ns: u64,
        sweeper: impl Fn(IpAddr) -> bool,
    ) -> Option<Finding> {
        if !self.spaces.contains_key(&space) && self.spaces.len() >= self.config.max_spaces {
            self.evictions += crate::detector::evict_oldest(&mut self.spaces, |t| t.last_ns);
        }
        let tracker = self.spaces.entry(space).or_default();
        tracker.last_ns = tracker.last_ns.max(now_ns);
        let fresh = Share {
            source,
            first_ns: now_ns,
            last_ns: now_ns,
            items: Vec::new(),
        };
        let at = match tracker.shares.iter().position(|s| s.source == source) {
            Some(at) => at,
            None if tracker.shares.len() < MAX_SHARES => {
                tracker.shares.push(fresh);
                tracker.shares.len() - 1
            }
            None => {
                // Full: the least recently active source makes room.
                let (oldest, _) = tracker
                    .shares
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| s.last_ns)?;
                tracker.shares[oldest] = fresh;
                oldest
            }
        };
        let share = &mut tracker.shares[at];
        share.last_ns = share.last_ns.max(now_ns);
        match share.items.binary_search(&item) {
            Ok(_) => return None,
            Err(_) if share.items.len() >= MAX_ITEMS => return None,
            Err(slot) => share.items.insert(slot, item),
        }
        if share.items.len() < self.config.min_share {
            return None;
        }
        judge(&self.config, space, tracker, at, now_ns, &sweeper)
    }
}

/// Judges one space after the share at `seed` grew: copies of the seed's
/// probes (a decoy group), else a cover of the space that the seed
/// starts (a distributed group: Gates' greedy set cover, the most
/// recently active sources first, each joining only with mostly new
/// items). A group is reported when its members differ from the last
/// one reported of its kind.
fn judge(
    config: &GroupConfig,
    space: Space,
    tracker: &mut Tracker,
    seed: usize,
    now_ns: u64,
    sweeper: &dyn Fn(IpAddr) -> bool,
) -> Option<Finding> {
    let first = &tracker.shares[seed];
    let mut others: Vec<&Share> = tracker
        .shares
        .iter()
        .enumerate()
        .filter(|&(i, s)| {
            i != seed
                && s.items.len() >= config.min_share
                && now_ns.saturating_sub(s.last_ns) <= config.window_ns
        })
        .map(|(_, s)| s)
        .collect();
    if others.is_empty() {
        return None;
    }
    others.sort_by_key(|s| std::cmp::Reverse(s.last_ns));
    // Decoys: the same probes as the seed's, begun together.
    if first.items.len() >= config.decoy_items {
        let mut similarity = 1.0f32;
        let mut copies = vec![first];
        for s in &others {
            let c = containment(&s.items, &first.items);
            if s.items.len() >= config.decoy_items
                && c >= config.decoy_similarity
                && s.first_ns.abs_diff(first.first_ns) <= config.decoy_sync_ns
            {
                similarity = similarity.min(c);
                copies.push(s);
            }
        }
        if copies.len() >= 2 {
            let members = members_key(&copies);
            if tracker.reported[1] == members {
                return None;
            }
            let found = finding(GroupKind::Decoy, space, &copies, similarity);
            tracker.reported[1] = members;
            return Some(found);
        }
    }
    // Distributed: a cover with little overlap, of sources of like weight
    // (for the ports of a host, none of them a known sweeper).
    let ports = matches!(space, Space::Ports { .. });
    if ports && sweeper(first.source) {
        return None;
    }
    let mut group = vec![first];
    let mut union = first.items.clone();
    for s in &others {
        if s.last_ns.saturating_add(config.cohesion_ns) < first.first_ns
            || (ports && sweeper(s.source))
        {
            continue;
        }
        let new = s
            .items
            .iter()
            .filter(|i| union.binary_search(i).is_err())
            .count();
        if (new as f32) < (1.0 - config.max_overlap) * s.items.len() as f32 {
            continue;
        }
        group.push(s);
        union.extend_from_slice(&s.items);
        union.sort_unstable();
        union.dedup();
    }
    let heaviest = group.iter().map(|s| s.items.len()).max().unwrap_or(0);
    group.retain(|s| s.items.len() * config.max_imbalance.max(1) >= heaviest);
    if group.len() < 2 {
        return None;
    }
    let found = finding(GroupKind::Distributed, space, &group, 0.0);
    let wide = matches!(space, Space::Ports { .. }) || found.coverage >= config.min_coverage;
    if found.covered.len() < config.distributed_items || found.overlap > config.max_overlap || !wide
    {
        return None;
    }
    let members = members_key(&group);
    if tracker.reported[0] == members {
        return None;
    }
    tracker.reported[0] = members;
    Some(found)
}

/// A key for a set of members (their sorted addresses, hashed).
fn members_key(shares: &[&Share]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut sources: Vec<IpAddr> = shares.iter().map(|s| s.source).collect();
    sources.sort_unstable();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sources.hash(&mut h);
    h.finish()
}

fn finding(kind: GroupKind, space: Space, shares: &[&Share], similarity: f32) -> Finding {
    let mut covered: Vec<u128> = shares
        .iter()
        .flat_map(|s| s.items.iter().copied())
        .collect();
    let probed = covered.len();
    covered.sort_unstable();
    covered.dedup();
    let overlap = 1.0 - covered.len() as f32 / probed.max(1) as f32;
    let span = match (covered.first(), covered.last()) {
        (Some(lo), Some(hi)) => hi.saturating_sub(*lo).saturating_add(1),
        _ => 1,
    };
    let coverage = (covered.len() as f64 / span as f64) as f32;
    let mut members: Vec<Member> = shares
        .iter()
        .map(|s| Member {
            source: s.source,
            items: s.items.len() as u32,
            first_ns: s.first_ns,
        })
        .collect();
    members.sort_by(|a, b| b.items.cmp(&a.items).then(a.source.cmp(&b.source)));
    Finding {
        kind,
        space,
        members,
        covered,
        overlap,
        coverage,
        similarity,
    }
}

/// |a ∩ b| / min(|a|, |b|) of two sorted sets.
fn containment(a: &[u128], b: &[u128]) -> f32 {
    let (mut i, mut j, mut both) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both += 1;
                i += 1;
                j += 1;
            }
        }
    }
    match a.len().min(b.len()) {
        0 => 0.0,
        smaller => both as f32 / smaller as f32,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, last))
    }

    fn ports_of(host: IpAddr) -> Space {
        Space::Ports {
            host,
            proto: Proto::Tcp,
        }
    }

    #[test]
    fn a_vertical_scan_split_over_four_sources_is_one_distributed_group() {
        let mut g = Groups::new(GroupConfig::default());
        let target = ip(200);
        let mut found = Vec::new();
        // Ports 1-16 rotated over four sources: four each, none of them
        // past a per-source vertical threshold of five.
        for port in 1..=16u16 {
            let source = ip(10 + (port % 4) as u8);
            found.extend(g.failure(
                source,
                ports_of(target),
                port.into(),
                u64::from(port) * SEC,
                |_| false,
            ));
        }
        let last = found.last().expect("a distributed group");
        assert!(found.iter().all(|f| f.kind == GroupKind::Distributed));
        assert_eq!(last.members.len(), 4, "{last:?}");
        assert!(last.covered.len() >= 10, "{last:?}");
        assert_eq!(last.overlap, 0.0);
        assert_eq!(last.coverage, 1.0);
    }

    #[test]
    fn a_sweep_split_over_sources_is_distributed_but_scattered_failures_are_not() {
        let mut g = Groups::new(GroupConfig::default());
        let space = Space::Hosts {
            proto: Proto::Tcp,
            port: 23,
        };
        let mut found = None;
        for h in 0..24u8 {
            let host = IpAddr::V4(Ipv4Addr::new(198, 19, 0, h));
            found =
                found.or(
                    g.failure(ip(10 + h % 3), space, host_item(host), u64::from(h), |_| {
                        false
                    }),
                );
        }
        let found = found.expect("a distributed sweep");
        assert_eq!(found.kind, GroupKind::Distributed);
        assert_eq!(found.members.len(), 3);

        // Peer-to-peer clients failing on one port across the Internet:
        // many hosts, little overlap, but scattered over a huge range.
        let mut g = Groups::new(GroupConfig::default());
        let space = Space::Hosts {
            proto: Proto::Udp,
            port: 6881,
        };
        for i in 0..60u32 {
            let host = IpAddr::V4(Ipv4Addr::from(0x0b00_0000u32.wrapping_add(i * 0x0101_0101)));
            let client = ip(10 + (i % 3) as u8);
            assert_eq!(
                g.failure(client, space, host_item(host), u64::from(i), |_| false),
                None
            );
        }
    }

    #[test]
    fn copies_of_one_scan_from_several_sources_are_a_decoy_group() {
        let mut g = Groups::new(GroupConfig::default());
        let target = ip(200);
        let mut found = Vec::new();
        for port in [21u16, 22, 23, 25, 80, 110, 139, 443] {
            for source in [ip(10), ip(11), ip(12)] {
                found.extend(g.failure(
                    source,
                    ports_of(target),
                    port.into(),
                    u64::from(port),
                    |_| false,
                ));
            }
        }
        assert!(
            found.iter().all(|f| f.kind == GroupKind::Decoy),
            "{found:?}"
        );
        let last = found.last().expect("a decoy group");
        assert_eq!(last.members.len(), 3);
        assert!(last.similarity >= 0.99, "{last:?}");
    }

    #[test]
    fn a_decoy_group_forming_late_is_never_a_distributed_one() {
        // The real source's failures are read from RSTs at once; its
        // copies' only from silence, seconds later, in the same order.
        let mut g = Groups::new(GroupConfig::default());
        let target = ip(200);
        let (real, copies) = (ip(10), [ip(77), ip(78)]);
        for port in 1..=100u16 {
            assert_eq!(
                g.failure(real, ports_of(target), port.into(), u64::from(port), |_| {
                    false
                }),
                None
            );
        }
        let mut found = Vec::new();
        for port in 1..=100u16 {
            for copy in copies {
                let t = 3 * SEC + u64::from(port);
                found.extend(g.failure(copy, ports_of(target), port.into(), t, |_| false));
            }
        }
        assert!(!found.is_empty());
        assert!(
            found.iter().all(|f| f.kind == GroupKind::Decoy),
            "{found:?}"
        );
        assert_eq!(found.last().unwrap().members.len(), 3);
    }

    #[test]
    fn a_second_split_scan_of_the_same_ports_is_its_own_group() {
        // Two split scans of ports 1-16 of one host, 40 minutes apart
        // (the first one's sources still in the window): the second is
        // found with its own four sources, not mixed with the first's.
        let mut g = Groups::new(GroupConfig::default());
        let target = ip(200);
        let mut found = Vec::new();
        for (round, start) in [(0u8, 0u64), (1, 2400 * SEC)] {
            for port in 1..=16u16 {
                let source = ip(10 + round * 10 + (port % 4) as u8);
                let t = start + u64::from(port) * SEC;
                found.extend(g.failure(source, ports_of(target), port.into(), t, |_| false));
            }
        }
        let groups: Vec<Vec<IpAddr>> = found
            .iter()
            .map(|f| {
                let mut m: Vec<IpAddr> = f.members.iter().map(|m| m.source).collect();
                m.sort();
                m
            })
            .collect();
        assert_eq!(
            groups,
            vec![
                vec![ip(10), ip(11), ip(12), ip(13)],
                vec![ip(20), ip(21), ip(22), ip(23)]
            ]
        );
    }

    #[test]
    fn a_sweeper_passing_through_a_host_joins_no_split_of_its_ports() {
        let mut g = Groups::new(GroupConfig::default());
        let (target, sweeper) = (ip(200), ip(2));
        let is_sweeper = |s: IpAddr| s == sweeper;
        let mut found = Vec::new();
        for port in [22u16, 80, 445] {
            found.extend(g.failure(sweeper, ports_of(target), port.into(), 0, is_sweeper));
        }
        for port in 1..=16u16 {
            let source = ip(10 + (port % 4) as u8);
            let t = u64::from(port) * SEC;
            found.extend(g.failure(source, ports_of(target), port.into(), t, is_sweeper));
        }
        let last = found.last().expect("the split");
        assert!(last.members.iter().all(|m| m.source != sweeper), "{last:?}");
        assert_eq!(last.members.len(), 4);
    }

    #[test]
    fn a_full_space_makes_room_for_a_new_source() {
        let mut g = Groups::new(GroupConfig::default());
        let target = ip(200);
        // 32 one-port sources fill the space an hour before the scan.
        for k in 0..MAX_SHARES as u8 {
            g.failure(ip(100 + k), ports_of(target), 443, u64::from(k), |_| false);
        }
        let mut found = Vec::new();
        for port in 1..=16u16 {
            let t = 7200 * SEC + u64::from(port);
            found.extend(g.failure(
                ip(10 + (port % 4) as u8),
                ports_of(target),
                port.into(),
                t,
                |_| false,
            ));
        }
        assert_eq!(found.last().map(|f| f.members.len()), Some(4), "{found:?}");
    }

    #[test]
    fn two_clients_failing_on_the_same_few_ports_are_no_group() {
        let mut g = Groups::new(GroupConfig::default());
        let server = ip(200);
        for (i, port) in [443u16, 8443].into_iter().enumerate() {
            for client in [ip(10), ip(11)] {
                let t = i as u64 * SEC;
                assert_eq!(
                    g.failure(client, ports_of(server), port.into(), t, |_| false),
                    None
                );
            }
        }
    }

    #[test]
    fn sources_that_scan_the_same_host_hours_apart_are_not_decoys() {
        let mut g = Groups::new(GroupConfig::default());
        let target = ip(200);
        for (source, start) in [(ip(10), 0), (ip(11), 7200 * SEC)] {
            for port in 1..=8u16 {
                let found = g.failure(
                    source,
                    ports_of(target),
                    port.into(),
                    start + u64::from(port),
                    |_| false,
                );
                assert_eq!(found, None);
            }
        }
    }

    #[test]
    fn the_space_budget_evicts_and_counts() {
        let config = GroupConfig {
            max_spaces: 8,
            ..GroupConfig::default()
        };
        let mut g = Groups::new(config);
        for h in 0..100u8 {
            g.failure(ip(1), ports_of(ip(h)), 80, u64::from(h), |_| false);
        }
        assert!(g.spaces.len() <= 8);
        assert!(g.evictions() >= 92, "{}", g.evictions());
    }
}
