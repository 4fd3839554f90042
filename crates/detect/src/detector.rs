//! The detector: a sans-IO state machine driven by packet timestamps. It
//! pairs each probe with its answer (SYN → SYN+ACK or RST, UDP → ICMP port
//! unreachable, INIT → INIT-ACK or ABORT, silence past `answer_timeout`
//! is a failure), feeds first contacts with distinct hosts to TRW per
//! source (horizontal and strobe sweeps) and failed distinct ports per
//! (source, host) to the vertical test, and every failure to the group
//! tests of [`crate::group`] (distributed and decoy scans, judged at the
//! scanned host and port). Remotes that a host contacted first are never
//! counted against that host's answers. A decoy group's real source is the
//! one member that followed a positive answer up (the RST or ACK a real
//! stack sends after a SYN+ACK), else the one member whose TTL differs
//! from all the others'.
//!
//! Contract: no panic; per-source state is capped (`MAX_PORTS`,
//! `MAX_HOST_PORTS`); the hot path allocates only when a new source, host
//! pair or probe key is first seen (hash-map growth).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;

use crate::alert::{Alert, GroupEvidence, ScanKind, SourceSummary};
use crate::decode::{EventKind, FlowEvent, Proto};
use crate::group::{Finding, GroupConfig, GroupKind, Groups, Space, host_item};
use crate::traits::scanner_traits;
use crate::trw::{Trw, TrwParams, Verdict};

/// Ports kept per source for the evidence.
const MAX_PORTS: usize = 32;
/// Distinct failed ports kept per (source, host).
const MAX_HOST_PORTS: usize = 64;

/// The detector's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// TRW parameters.
    pub trw: TrwParams,
    /// Silence after a probe longer than this is a failure (ns).
    pub answer_timeout_ns: u64,
    /// Distinct failed ports on one host that make a vertical scan.
    pub vertical_ports: u32,
    /// Most distinct ports a sweep may touch and still be "horizontal".
    pub horizontal_ports: usize,
    /// Most sources tracked at once; past it the least recently seen
    /// eighth is evicted (counted in [`Detector::evictions`]).
    pub max_sources: usize,
    /// Most (initiator, responder) pairs remembered; same eviction.
    pub max_pairs: usize,
    /// The distributed and decoy tests.
    pub groups: GroupConfig,
}

/// Authorised scanners: networks whose alerts are labelled `allowlisted`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist(Vec<ipnet::IpNet>);

impl Allowlist {
    /// An allowlist of `networks`.
    pub fn new(networks: Vec<ipnet::IpNet>) -> Self {
        Self(networks)
    }

    /// Whether `addr` is on the list.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&addr))
    }
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            trw: TrwParams::default(),
            answer_timeout_ns: 3_000_000_000,
            vertical_ports: 5,
            horizontal_ports: 1,
            max_sources: 100_000,
            max_pairs: 1_000_000,
            groups: GroupConfig::default(),
        }
    }
}

type ProbeKey = (IpAddr, IpAddr, Proto, u16);

#[derive(Debug, Default)]
struct Source {
    first_ns: u64,
    last_ns: u64,
    probes: u64,
    failures: u64,
    llr: f32,
    steps: u32,
    hosts: HashSet<IpAddr>,
    failed_ports: Vec<u16>,
    host_ports: HashMap<IpAddr, Vec<u16>>,
    reported: Vec<ScanKind>,
    traits: Vec<&'static str>,
    proto: Option<Proto>,
    /// TTL (hop limit) of the first probe.
    ttl: u8,
    /// The last few (host, port) that answered a probe positively.
    accepted: [Option<(IpAddr, u16)>; 4],
    accepted_next: usize,
    /// An answer was followed up (RST or ACK after a SYN+ACK).
    followed_up: bool,
}

impl Source {
    fn note_accepted(&mut self, host: IpAddr, port: u16) {
        self.accepted[self.accepted_next % self.accepted.len()] = Some((host, port));
        self.accepted_next = self.accepted_next.wrapping_add(1);
    }
}

/// Scan detection over a stream of flow events.
#[derive(Debug)]
pub struct Detector {
    config: DetectorConfig,
    trw: Trw,
    pending: HashMap<ProbeKey, u64>,
    order: VecDeque<(u64, ProbeKey)>,
    /// Who spoke first: (initiator, responder) pairs, keyed by
    /// [`Detector::pair`], with the time last seen.
    initiated: HashMap<u64, u64, BuildHasherDefault<PairKeyHasher>>,
    /// The keys of [`Detector::pair`]'s hash, random per detector (so that
    /// no one can choose addresses whose pairs collide).
    pair_keys: RandomState,
    sources: HashMap<IpAddr, Source>,
    alerts: Vec<Alert>,
    allowlist: Allowlist,
    evictions: u64,
    groups: Groups,
    /// Groups reported, by kind, sorted members and real source.
    reported_groups: HashSet<(ScanKind, Vec<IpAddr>, Option<IpAddr>)>,
    /// Decoy groups reported before their real source was known: one is
    /// reported again when a member follows an answer up.
    unresolved: VecDeque<Finding>,
}

/// Decoy groups awaiting their real source, at most.
const MAX_UNRESOLVED: usize = 64;

impl Detector {
    /// A detector with `config`.
    pub fn new(config: DetectorConfig) -> Self {
        Self {
            config,
            trw: Trw::new(config.trw),
            pending: HashMap::new(),
            order: VecDeque::new(),
            initiated: HashMap::default(),
            pair_keys: RandomState::new(),
            sources: HashMap::new(),
            alerts: Vec::new(),
            allowlist: Allowlist::default(),
            evictions: 0,
            groups: Groups::new(config.groups),
            reported_groups: HashSet::new(),
            unresolved: VecDeque::new(),
        }
    }

    /// The key of the pair (`a` spoke to `b`): a keyed 64-bit hash, so an
    /// entry of the pair table is 16 bytes instead of two addresses (with
    /// a million pairs, about 100 MiB less at peak); two pairs share a
    /// key with odds of about n²/2⁶⁵.
    fn pair(&self, a: IpAddr, b: IpAddr) -> u64 {
        let mut h = self.pair_keys.build_hasher();
        a.hash(&mut h);
        b.hash(&mut h);
        h.finish()
    }

    /// Labels alerts from `allowlist`'s sources.
    pub fn with_allowlist(mut self, allowlist: Allowlist) -> Self {
        self.allowlist = allowlist;
        self
    }

    /// Feeds one event; alerts it causes are queued for [`Self::drain_alerts`].
    pub fn observe(&mut self, e: &FlowEvent) {
        self.expire(e.ts_ns);
        match e.kind {
            EventKind::Attempt => {
                // A datagram answering a probe is an answer, not a probe.
                let reverse = (e.dst, e.src, e.proto, e.sport);
                if e.proto == Proto::Udp && self.pending.contains_key(&reverse) {
                    self.resolve(reverse, true, e.ts_ns);
                    return;
                }
                if e.proto == Proto::Icmp {
                    // Echo requests: one probe per host.
                }
                // The other side spoke first: a reply path. (A host
                // talking to itself over loopback has no other side.)
                if e.src != e.dst && self.initiated.contains_key(&self.pair(e.dst, e.src)) {
                    return;
                }
                self.initiated.insert(self.pair(e.src, e.dst), e.ts_ns);
                if self.initiated.len() > self.config.max_pairs {
                    self.evictions += evict_oldest(&mut self.initiated, |t| *t);
                }
                if !self.sources.contains_key(&e.src)
                    && self.sources.len() >= self.config.max_sources
                {
                    self.evictions += evict_oldest(&mut self.sources, |s| s.last_ns);
                }
                let key = (e.src, e.dst, e.proto, e.dport);
                let src = self.sources.entry(e.src).or_default();
                if src.probes == 0 {
                    src.first_ns = e.ts_ns;
                    src.ttl = e.traits.ttl;
                }
                src.last_ns = e.ts_ns;
                src.probes += 1;
                if src.proto.is_none() {
                    src.proto = Some(e.proto);
                }
                for t in scanner_traits(e) {
                    if !src.traits.contains(&t) {
                        src.traits.push(t);
                    }
                }
                if let std::collections::hash_map::Entry::Vacant(v) = self.pending.entry(key) {
                    v.insert(e.ts_ns);
                    self.order.push_back((e.ts_ns, key));
                }
            }
            EventKind::Accept => {
                if let Some(prober) = self.sources.get_mut(&e.dst) {
                    prober.note_accepted(e.src, e.sport);
                }
                let key = (e.dst, e.src, e.proto, e.sport);
                self.resolve(key, true, e.ts_ns);
            }
            EventKind::Reject => {
                self.follow_up(e);
                let key = (e.dst, e.src, e.proto, e.sport);
                self.resolve(key, false, e.ts_ns);
            }
            EventKind::Unreachable { quoted_dst } => {
                let key = (e.dst, quoted_dst, e.proto, e.dport);
                self.resolve(key, false, e.ts_ns);
            }
            EventKind::Other => self.follow_up(e),
        }
    }

    /// A prober's RST or ACK to a port that answered it positively: its
    /// stack saw the answer, so its address is its own.
    fn follow_up(&mut self, e: &FlowEvent) {
        let Some(prober) = self.sources.get_mut(&e.src) else {
            return;
        };
        if prober.followed_up || !prober.accepted.contains(&Some((e.dst, e.dport))) {
            return;
        }
        prober.followed_up = true;
        // Decoy groups it belongs to now have their real source.
        let (named, rest): (Vec<Finding>, Vec<Finding>) = self
            .unresolved
            .drain(..)
            .partition(|f| f.members.iter().any(|m| m.source == e.src));
        self.unresolved = rest.into();
        for finding in named {
            self.group_alert(finding, e.ts_ns);
        }
    }

    /// Trackers evicted by the memory budget so far (sources, pairs and
    /// group spaces).
    pub fn evictions(&self) -> u64 {
        self.evictions + self.groups.evictions()
    }

    /// Takes the alerts decided so far.
    pub fn drain_alerts(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.alerts)
    }

    /// Moves the clock to `now_ns` without a packet: probes unanswered
    /// for longer than the answer timeout are failures from now on. Live
    /// capture calls it between packets, so silence is read as it falls.
    pub fn advance(&mut self, now_ns: u64) {
        self.expire(now_ns);
    }

    /// Ends the input: every unanswered probe is a failure.
    pub fn finish(&mut self, now_ns: u64) {
        self.expire(now_ns.saturating_add(self.config.answer_timeout_ns + 1));
    }

    /// Per-source totals, sorted by source.
    pub fn summary(&self) -> Vec<SourceSummary> {
        let mut rows: Vec<_> = self
            .sources
            .iter()
            .map(|(ip, s)| SourceSummary {
                source: *ip,
                probes: s.probes,
                failures: s.failures,
                targets: s.hosts.len() as u32,
                kinds: s.reported.clone(),
            })
            .collect();
        rows.sort_by_key(|r| r.source);
        rows
    }

    fn expire(&mut self, now_ns: u64) {
        while let Some(&(ts, key)) = self.order.front() {
            if ts.saturating_add(self.config.answer_timeout_ns) >= now_ns {
                break;
            }
            self.order.pop_front();
            if self.pending.get(&key) == Some(&ts) {
                self.resolve(key, false, ts.saturating_add(self.config.answer_timeout_ns));
            }
        }
    }

    fn resolve(&mut self, key: ProbeKey, success: bool, now_ns: u64) {
        if self.pending.remove(&key).is_none() {
            return;
        }
        let (src_ip, dst, proto, port) = key;
        let Some(src) = self.sources.get_mut(&src_ip) else {
            return;
        };
        if !success {
            src.failures += 1;
        }
        let mut decided = Vec::new();
        // TRW over first contacts with distinct hosts.
        if src.hosts.insert(dst) {
            let (llr, verdict) = self.trw.step(src.llr, success);
            src.llr = llr;
            src.steps += 1;
            if !success && src.failed_ports.len() < MAX_PORTS && !src.failed_ports.contains(&port) {
                src.failed_ports.push(port);
            }
            if verdict == Verdict::Scanner {
                let kind = if src.failed_ports.len() <= self.config.horizontal_ports {
                    ScanKind::Horizontal
                } else {
                    ScanKind::Strobe
                };
                decided.push((kind, None));
            }
        } else if !success
            && src.failed_ports.len() < MAX_PORTS
            && !src.failed_ports.contains(&port)
        {
            src.failed_ports.push(port);
        }
        // Vertical: distinct failed ports on one host.
        if !success && proto != Proto::Icmp {
            let ports = src.host_ports.entry(dst).or_default();
            if ports.len() < MAX_HOST_PORTS && !ports.contains(&port) {
                ports.push(port);
                if ports.len() as u32 == self.config.vertical_ports {
                    decided.push((ScanKind::Vertical, Some(dst)));
                }
            }
        }
        for (kind, target) in decided {
            if src.reported.contains(&kind) {
                continue;
            }
            src.reported.push(kind);
            let ports = match target {
                Some(t) => src.host_ports.get(&t).cloned().unwrap_or_default(),
                None => src.failed_ports.clone(),
            };
            let confidence = match kind {
                ScanKind::Vertical => 1.0,
                _ => (1.0 - self.config.trw.p_f) as f32,
            };
            self.alerts.push(Alert {
                kind,
                source: src_ip,
                proto: src.proto.unwrap_or(proto),
                first_seen: src.first_ns as f64 / 1e9,
                decided_at: now_ns as f64 / 1e9,
                probes: src.probes,
                failures: src.failures,
                decision_step: if target.is_some() {
                    self.config.vertical_ports
                } else {
                    src.steps
                },
                targets: src.hosts.len() as u32,
                target,
                ports,
                trw_llr: if target.is_some() { 0.0 } else { src.llr },
                confidence,
                traits: src.traits.clone(),
                allowlisted: self.allowlist.contains(src_ip),
                group: None,
            });
        }
        if !success {
            self.group_failure(src_ip, dst, proto, port, now_ns);
        }
    }

    /// Files a failure with the group tests, and reports what they find.
    fn group_failure(&mut self, src: IpAddr, dst: IpAddr, proto: Proto, port: u16, now_ns: u64) {
        let sources = &self.sources;
        let sweeper = |ip: IpAddr| {
            sources.get(&ip).is_some_and(|s| {
                s.reported
                    .iter()
                    .any(|k| matches!(k, ScanKind::Horizontal | ScanKind::Strobe))
            })
        };
        let mut findings: Vec<Finding> = Vec::new();
        if proto != Proto::Icmp {
            let space = Space::Ports { host: dst, proto };
            findings.extend(
                self.groups
                    .failure(src, space, port.into(), now_ns, sweeper),
            );
        }
        let space = Space::Hosts { proto, port };
        findings.extend(
            self.groups
                .failure(src, space, host_item(dst), now_ns, sweeper),
        );
        for finding in findings {
            self.group_alert(finding, now_ns);
        }
    }

    /// Turns a group the group tests found into an alert, once per group.
    fn group_alert(&mut self, f: Finding, now_ns: u64) {
        let kind = match f.kind {
            GroupKind::Distributed => ScanKind::Distributed,
            GroupKind::Decoy => ScanKind::Decoy,
        };
        let facts: Vec<Option<&Source>> = f
            .members
            .iter()
            .map(|m| self.sources.get(&m.source))
            .collect();
        let ttls: Vec<u8> = facts.iter().map(|s| s.map_or(0, |s| s.ttl)).collect();
        let followed_up: Vec<IpAddr> = f
            .members
            .iter()
            .zip(&facts)
            .filter(|(_, s)| s.is_some_and(|s| s.followed_up))
            .map(|(m, _)| m.source)
            .collect();
        let (real_source, real_by) = match kind {
            ScanKind::Decoy if followed_up.len() == 1 => (Some(followed_up[0]), Some("follow-up")),
            ScanKind::Decoy => match odd_one_out(&ttls) {
                Some(i) => (Some(f.members[i].source), Some("ttl")),
                None => (None, None),
            },
            _ => (None, None),
        };
        let mut key: Vec<IpAddr> = f.members.iter().map(|m| m.source).collect();
        key.sort_unstable();
        if !self
            .reported_groups
            .insert((kind, key.clone(), real_source))
        {
            return;
        }
        let source = real_source.unwrap_or(f.members[0].source);
        let (target, ports, targets, proto) = match f.space {
            Space::Ports { host, proto } => (
                Some(host),
                f.covered
                    .iter()
                    .take(MAX_PORTS)
                    .map(|&p| p as u16)
                    .collect(),
                1,
                proto,
            ),
            Space::Hosts { proto, port } => (None, vec![port], f.covered.len() as u32, proto),
        };
        let shares: Vec<u32> = f.members.iter().map(|m| m.items).collect();
        let members: Vec<IpAddr> = f.members.iter().map(|m| m.source).collect();
        let total: u64 = shares.iter().map(|&n| u64::from(n)).sum();
        let traits = self
            .sources
            .get(&source)
            .map(|s| s.traits.clone())
            .unwrap_or_default();
        self.alerts.push(Alert {
            kind,
            source,
            proto,
            first_seen: f.members.iter().map(|m| m.first_ns).min().unwrap_or(now_ns) as f64 / 1e9,
            decided_at: now_ns as f64 / 1e9,
            probes: total,
            failures: total,
            decision_step: f.members.len() as u32,
            targets,
            target,
            ports,
            trw_llr: 0.0,
            confidence: match kind {
                ScanKind::Decoy => f.similarity,
                _ => 1.0 - f.overlap,
            },
            traits,
            allowlisted: self.allowlist.contains(source),
            group: Some(GroupEvidence {
                sources: members,
                shares,
                ttls,
                followed_up,
                real_source,
                real_by,
                covered: f.covered.len() as u32,
                overlap: f.overlap,
                coverage: f.coverage,
            }),
        });
        // The summary lists the kinds per source: every member of a split
        // scan, and a decoy scan's named (or first) source.
        let labelled: &[IpAddr] = match kind {
            ScanKind::Distributed => &key,
            _ => std::slice::from_ref(&source),
        };
        for member in labelled {
            if let Some(s) = self.sources.get_mut(member)
                && !s.reported.contains(&kind)
            {
                s.reported.push(kind);
            }
        }
        if kind == ScanKind::Decoy && real_source.is_none() {
            // The group grew: the smaller one it replaces need not be
            // named again.
            self.unresolved.retain(|u| u.space != f.space);
            if self.unresolved.len() >= MAX_UNRESOLVED {
                self.unresolved.pop_front();
            }
            self.unresolved.push_back(f);
        }
    }
}

/// The index of the one TTL that differs when all the others agree (three
/// members at least, so that "the others" are a majority).
fn odd_one_out(ttls: &[u8]) -> Option<usize> {
    if ttls.len() < 3 {
        return None;
    }
    let odd: Vec<usize> = (0..ttls.len())
        .filter(|&i| ttls.iter().filter(|&&t| t == ttls[i]).count() == 1)
        .collect();
    let rest_agree = |i: usize| {
        let mut others = ttls
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, t)| t);
        let first = others.next();
        others.all(|t| Some(t) == first)
    };
    match odd.as_slice() {
        [i] if rest_agree(*i) => Some(*i),
        _ => None,
    }
}

/// The pair table's hasher: its keys are already keyed hashes
/// ([`Detector::pair`]), so hashing them again would only cost time on
/// every probe. Hand-written for that reason; it takes the one `u64` it is
/// given.
#[derive(Debug, Default)]
pub(crate) struct PairKeyHasher(u64);

impl Hasher for PairKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Evicts the least recently seen eighth (at least one) of `map`: a batch,
/// so the O(n) selection is paid once per n/8 insertions.
pub(crate) fn evict_oldest<K: Copy + Eq + std::hash::Hash, V, S: BuildHasher>(
    map: &mut HashMap<K, V, S>,
    seen: impl Fn(&V) -> u64,
) -> u64 {
    let mut ages: Vec<u64> = map.values().map(&seen).collect();
    let n = (ages.len() / 8).max(1);
    if ages.is_empty() {
        return 0;
    }
    let (_, cut, _) = ages.select_nth_unstable(n - 1);
    let cut = *cut;
    let before = map.len();
    let mut left = n;
    map.retain(|_, v| {
        if left > 0 && seen(v) <= cut {
            left -= 1;
            false
        } else {
            true
        }
    });
    (before - map.len()) as u64
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::decode::Traits;

    const SEC: u64 = 1_000_000_000;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, last))
    }

    fn ev(
        ts: u64,
        src: IpAddr,
        dst: IpAddr,
        proto: Proto,
        sport: u16,
        dport: u16,
        kind: EventKind,
    ) -> FlowEvent {
        FlowEvent {
            ts_ns: ts,
            src,
            dst,
            proto,
            sport,
            dport,
            kind,
            traits: Traits::default(),
        }
    }

    fn syn(ts: u64, src: IpAddr, dst: IpAddr, dport: u16) -> FlowEvent {
        ev(ts, src, dst, Proto::Tcp, 40000, dport, EventKind::Attempt)
    }

    fn rst(ts: u64, from: IpAddr, to: IpAddr, port: u16) -> FlowEvent {
        ev(ts, from, to, Proto::Tcp, port, 40000, EventKind::Reject)
    }

    fn synack(ts: u64, from: IpAddr, to: IpAddr, port: u16) -> FlowEvent {
        ev(ts, from, to, Proto::Tcp, port, 40000, EventKind::Accept)
    }

    #[test]
    fn sweep_of_one_port_is_horizontal_after_four_failed_hosts() {
        let mut d = Detector::new(DetectorConfig::default());
        let scanner = ip(1);
        for h in 0..10u8 {
            let t = u64::from(h) * SEC / 10;
            d.observe(&syn(t, scanner, ip(100 + h), 445));
            d.observe(&rst(t + 1000, ip(100 + h), scanner, 445));
        }
        let alerts = d.drain_alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].kind, ScanKind::Horizontal);
        assert_eq!(alerts[0].source, scanner);
        assert_eq!(alerts[0].decision_step, 4);
    }

    #[test]
    fn allowlisted_scanner_is_labelled_not_hidden() {
        let net: ipnet::IpNet = "198.18.0.0/30".parse().unwrap();
        let mut d =
            Detector::new(DetectorConfig::default()).with_allowlist(Allowlist::new(vec![net]));
        for (scanner, base) in [(ip(1), 100u8), (ip(9), 150)] {
            for h in 0..5u8 {
                d.observe(&syn(u64::from(h), scanner, ip(base + h), 22));
            }
        }
        d.finish(10 * SEC);
        let mut alerts = d.drain_alerts();
        alerts.sort_by_key(|a| a.source);
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert_eq!((alerts[0].source, alerts[0].allowlisted), (ip(1), true));
        assert_eq!((alerts[1].source, alerts[1].allowlisted), (ip(9), false));
    }

    #[test]
    fn memory_budget_evicts_least_recently_seen_sources_and_counts_them() {
        let config = DetectorConfig {
            max_sources: 16,
            ..DetectorConfig::default()
        };
        let mut d = Detector::new(config);
        // 100 one-probe sources, then a scanner: it is still detected.
        for i in 0..100u32 {
            let src = IpAddr::V4(Ipv4Addr::from(0xc612_1000 + i));
            d.observe(&syn(u64::from(i), src, ip(1), 443));
            d.observe(&synack(u64::from(i) + 1, ip(1), src, 443));
        }
        assert!(d.sources.len() <= 16);
        assert!(d.evictions() >= 84, "{}", d.evictions());
        let scanner = ip(7);
        for h in 0..6u8 {
            d.observe(&syn(1000 + u64::from(h), scanner, ip(100 + h), 23));
            d.observe(&rst(1001 + u64::from(h), ip(100 + h), scanner, 23));
        }
        let alerts = d.drain_alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].source, scanner);
    }

    #[test]
    fn the_pair_budget_evicts_and_counts_and_who_spoke_first_still_holds() {
        let config = DetectorConfig {
            max_pairs: 16,
            ..DetectorConfig::default()
        };
        let mut d = Detector::new(config);
        for i in 0..100u32 {
            let client = IpAddr::V4(Ipv4Addr::from(0xc612_1000 + i));
            d.observe(&syn(u64::from(i), client, ip(1), 443));
        }
        assert!(d.initiated.len() <= 17, "{}", d.initiated.len());
        assert!(d.evictions() >= 80, "{}", d.evictions());
        // A server answering its latest clients' connections is not
        // probing them.
        let server = ip(1);
        for i in 95..100u32 {
            let client = IpAddr::V4(Ipv4Addr::from(0xc612_1000 + i));
            d.observe(&ev(
                200,
                server,
                client,
                Proto::Udp,
                53,
                40000,
                EventKind::Attempt,
            ));
        }
        d.finish(10 * SEC);
        assert!(
            d.drain_alerts().iter().all(|a| a.source != server),
            "the server was flagged"
        );
    }

    #[test]
    fn nmap_t0_pace_one_probe_every_five_minutes_is_still_flagged() {
        let mut d = Detector::new(DetectorConfig::default());
        let (scanner, target) = (ip(1), ip(200));
        // A closed port answers RST; silence on the filtered ones.
        for (i, port) in [21u16, 22, 23, 25, 80, 110].into_iter().enumerate() {
            let t = i as u64 * 300 * SEC;
            d.observe(&syn(t, scanner, target, port));
            if port % 2 == 1 {
                d.observe(&rst(t + SEC / 100, target, scanner, port));
            }
        }
        d.finish(1800 * SEC);
        let alerts = d.drain_alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].kind, ScanKind::Vertical);
        // Decided at the fifth failed port, 20 minutes in (plus the timeout).
        assert!(
            alerts[0].decided_at >= 1200.0 && alerts[0].decided_at <= 1204.0,
            "{}",
            alerts[0].decided_at
        );
    }

    #[test]
    fn silence_is_decided_when_the_clock_moves_without_packets() {
        let mut d = Detector::new(DetectorConfig::default());
        let scanner = ip(1);
        for h in 0..4u8 {
            d.observe(&syn(u64::from(h) * SEC / 10, scanner, ip(100 + h), 80));
        }
        d.advance(2 * SEC);
        assert!(d.drain_alerts().is_empty(), "not yet past the timeout");
        d.advance(4 * SEC);
        let alerts = d.drain_alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].source, scanner);
    }

    #[test]
    fn silence_counts_as_failure_after_the_answer_timeout() {
        let mut d = Detector::new(DetectorConfig::default());
        let scanner = ip(1);
        for h in 0..4u8 {
            d.observe(&syn(u64::from(h) * SEC, scanner, ip(100 + h), 80));
        }
        assert!(
            d.drain_alerts().is_empty(),
            "nothing decided before the timeout"
        );
        d.finish(4 * SEC);
        let alerts = d.drain_alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].kind, ScanKind::Horizontal);
    }

    #[test]
    fn a_few_ports_across_hosts_is_strobe() {
        let mut d = Detector::new(DetectorConfig::default());
        let scanner = ip(1);
        for h in 0..6u8 {
            let port = [22, 80, 443][usize::from(h % 3)];
            d.observe(&syn(u64::from(h) * SEC / 10, scanner, ip(100 + h), port));
            d.observe(&rst(
                u64::from(h) * SEC / 10 + 1,
                ip(100 + h),
                scanner,
                port,
            ));
        }
        let alerts = d.drain_alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].kind, ScanKind::Strobe);
    }

    #[test]
    fn many_refused_ports_of_one_host_is_vertical() {
        let mut d = Detector::new(DetectorConfig::default());
        let scanner = ip(1);
        let target = ip(200);
        for p in 1..=20u16 {
            d.observe(&syn(u64::from(p) * 1000, scanner, target, p));
            d.observe(&rst(u64::from(p) * 1000 + 1, target, scanner, p));
        }
        let alerts = d.drain_alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].kind, ScanKind::Vertical);
        assert_eq!(alerts[0].target, Some(target));
        assert_eq!(alerts[0].ports, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn client_with_many_successful_connections_is_not_flagged() {
        let mut d = Detector::new(DetectorConfig::default());
        let client = ip(2);
        for h in 0..200u8 {
            let t = u64::from(h) * SEC;
            d.observe(&syn(t, client, ip(h), 443));
            d.observe(&synack(t + 1000, ip(h), client, 443));
        }
        // A few refused among many answered: the walk stays low.
        for h in 0..3u8 {
            d.observe(&syn(
                300 * SEC,
                client,
                IpAddr::V4(Ipv4Addr::new(198, 19, 0, h)),
                443,
            ));
        }
        d.finish(400 * SEC);
        assert!(d.drain_alerts().is_empty());
    }

    #[test]
    fn repeated_contacts_with_one_dead_host_count_once_for_trw() {
        let mut d = Detector::new(DetectorConfig::default());
        let client = ip(3);
        for i in 0..50u64 {
            d.observe(&syn(i * 10 * SEC, client, ip(250), 443));
        }
        d.finish(600 * SEC);
        assert!(d.drain_alerts().is_empty(), "one host, one port: no scan");
    }

    #[test]
    fn answers_to_a_remote_that_spoke_first_are_not_probes() {
        let mut d = Detector::new(DetectorConfig::default());
        let server = ip(10);
        // Clients connect to the server; the server's SYN+ACKs are answers.
        for h in 0..20u8 {
            d.observe(&syn(u64::from(h), ip(100 + h), server, 80));
            d.observe(&synack(u64::from(h) + 1, server, ip(100 + h), 80));
            // The server sends DNS-like UDP back to each client first contacted by them.
            d.observe(&ev(
                u64::from(h) + 2,
                server,
                ip(100 + h),
                Proto::Udp,
                80,
                40000,
                EventKind::Attempt,
            ));
        }
        d.finish(100 * SEC);
        assert!(d.drain_alerts().is_empty());
    }

    fn with_ttl(mut e: FlowEvent, ttl: u8) -> FlowEvent {
        e.traits.ttl = ttl;
        e
    }

    /// A decoy scan of `target`: each port probed from every source in
    /// turn, closed ports refused, port 80 open, and only `real` (if
    /// any) resetting the SYN+ACK it got.
    fn decoy_scan(d: &mut Detector, sources: &[(IpAddr, u8)], real: Option<IpAddr>) {
        let target = ip(200);
        let mut t = 0;
        for port in [21u16, 22, 23, 25, 80, 110, 139, 443, 445, 3389] {
            for &(source, ttl) in sources {
                t += 1000;
                d.observe(&with_ttl(syn(t, source, target, port), ttl));
                if port == 80 {
                    d.observe(&synack(t + 1, target, source, port));
                    if Some(source) == real {
                        d.observe(&ev(
                            t + 2,
                            source,
                            target,
                            Proto::Tcp,
                            40000,
                            80,
                            EventKind::Reject,
                        ));
                    }
                } else {
                    d.observe(&rst(t + 1, target, source, port));
                }
            }
        }
    }

    fn decoy_alerts(d: &mut Detector) -> Vec<Alert> {
        d.drain_alerts()
            .into_iter()
            .filter(|a| a.kind == ScanKind::Decoy)
            .collect()
    }

    #[test]
    fn a_decoy_scan_names_the_source_that_followed_its_answer_up() {
        let mut d = Detector::new(DetectorConfig::default());
        let (real, decoys) = (ip(10), [ip(11), ip(12), ip(13)]);
        let sources = [
            (decoys[0], 64),
            (real, 64),
            (decoys[1], 64),
            (decoys[2], 64),
        ];
        decoy_scan(&mut d, &sources, Some(real));
        let all = d.drain_alerts();
        assert!(
            all.iter().all(|a| a.kind != ScanKind::Distributed),
            "copies are not a distributed scan: {all:?}"
        );
        let alerts: Vec<Alert> = all
            .into_iter()
            .filter(|a| a.kind == ScanKind::Decoy)
            .collect();
        let named = alerts
            .iter()
            .find(|a| a.group.as_ref().is_some_and(|g| g.real_source.is_some()))
            .unwrap_or_else(|| panic!("no decoy alert named the real source: {alerts:?}"));
        let group = named.group.as_ref().unwrap();
        assert_eq!(named.source, real);
        assert_eq!(group.real_source, Some(real));
        assert_eq!(group.real_by, Some("follow-up"));
        assert_eq!(group.sources.len(), 4, "{group:?}");
        assert_eq!(group.followed_up, vec![real]);
        assert!(group.overlap > 0.7, "{group:?}");
        assert_eq!(named.target, Some(ip(200)));
    }

    #[test]
    fn a_decoy_scan_without_follow_up_names_the_one_source_whose_ttl_differs() {
        let mut d = Detector::new(DetectorConfig::default());
        let sources = [(ip(11), 64), (ip(12), 64), (ip(10), 51), (ip(13), 64)];
        decoy_scan(&mut d, &sources, None);
        let alerts = decoy_alerts(&mut d);
        let last = alerts.last().expect("a decoy alert");
        let group = last.group.as_ref().unwrap();
        assert_eq!(group.sources.len(), 4, "{alerts:?}");
        assert_eq!(
            (group.real_source, group.real_by),
            (Some(ip(10)), Some("ttl"))
        );
        assert_eq!(last.source, ip(10));
    }

    #[test]
    fn a_decoy_scan_with_no_telling_evidence_names_no_real_source() {
        let mut d = Detector::new(DetectorConfig::default());
        let sources = [(ip(11), 64), (ip(12), 64), (ip(13), 64)];
        decoy_scan(&mut d, &sources, None);
        let alerts = decoy_alerts(&mut d);
        assert!(!alerts.is_empty());
        assert!(
            alerts
                .iter()
                .all(|a| a.group.as_ref().unwrap().real_source.is_none()),
            "{alerts:?}"
        );
    }

    #[test]
    fn a_vertical_scan_split_over_four_sources_below_the_threshold_is_distributed() {
        let mut d = Detector::new(DetectorConfig::default());
        let target = ip(200);
        // Ports 1-16, four per source: none reaches the vertical threshold.
        for port in 1..=16u16 {
            let source = ip(10 + (port % 4) as u8);
            let t = u64::from(port) * SEC;
            d.observe(&syn(t, source, target, port));
            d.observe(&rst(t + 1000, target, source, port));
        }
        d.finish(30 * SEC);
        let alerts = d.drain_alerts();
        assert!(
            alerts.iter().all(|a| a.kind != ScanKind::Vertical),
            "{alerts:?}"
        );
        let group: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.kind == ScanKind::Distributed)
            .collect();
        assert_eq!(group.len(), 1, "{alerts:?}");
        let evidence = group[0].group.as_ref().unwrap();
        let mut sources = evidence.sources.clone();
        sources.sort();
        assert_eq!(sources, vec![ip(10), ip(11), ip(12), ip(13)]);
        assert_eq!(evidence.overlap, 0.0);
        assert_eq!(group[0].target, Some(target));
        assert_eq!(evidence.real_source, None);
    }

    #[test]
    fn clients_of_one_server_are_no_group() {
        let mut d = Detector::new(DetectorConfig::default());
        let server = ip(200);
        // Ten clients each connect to the web server, some refused on a
        // second port: answered mostly, a port or two refused each.
        for c in 0..10u8 {
            for (i, port) in [80u16, 443, 8080].into_iter().enumerate() {
                let t = u64::from(c) * SEC + i as u64 * 1000;
                d.observe(&syn(t, ip(c), server, port));
                if port == 8080 {
                    d.observe(&rst(t + 1, server, ip(c), port));
                } else {
                    d.observe(&synack(t + 1, server, ip(c), port));
                }
            }
        }
        d.finish(60 * SEC);
        assert!(d.drain_alerts().is_empty());
    }

    #[test]
    fn a_host_scanning_itself_over_loopback_is_flagged() {
        let mut d = Detector::new(DetectorConfig::default());
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for p in 1..=8u16 {
            d.observe(&syn(u64::from(p) * 1000, local, local, p));
            d.observe(&rst(u64::from(p) * 1000 + 1, local, local, p));
        }
        let alerts = d.drain_alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].kind, ScanKind::Vertical);
        assert_eq!(alerts[0].source, local);
    }

    #[test]
    fn udp_scan_read_from_port_unreachables() {
        let mut d = Detector::new(DetectorConfig::default());
        let scanner = ip(1);
        let target = ip(200);
        for p in 1..=10u16 {
            let t = u64::from(p) * 1000;
            d.observe(&ev(
                t,
                scanner,
                target,
                Proto::Udp,
                50000,
                p,
                EventKind::Attempt,
            ));
            d.observe(&ev(
                t + 1,
                target,
                scanner,
                Proto::Udp,
                50000,
                p,
                EventKind::Unreachable { quoted_dst: target },
            ));
        }
        let alerts = d.drain_alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].kind, ScanKind::Vertical);
        assert_eq!(alerts[0].proto, Proto::Udp);
    }
}
