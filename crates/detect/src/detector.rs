//! The detector: a sans-IO state machine driven by packet timestamps. It
//! pairs each probe with its answer (SYN → SYN+ACK or RST, UDP → ICMP port
//! unreachable, INIT → INIT-ACK or ABORT, echo request → echo reply,
//! silence past `answer_timeout` is a failure), feeds first contacts with
//! distinct hosts to TRW per source (horizontal and strobe sweeps),
//! counts echo requests to distinct hosts per source (ping sweeps, which
//! TRW cannot see when the hosts answer: many within a window, or more at
//! any pace, as nmap `-T0` sends them), counts failed distinct ports
//! per (source, host) for the vertical test, and files every failure with
//! the group tests of [`crate::group`] (distributed and decoy scans,
//! judged at the scanned host and port). Remotes that a host contacted
//! first are never counted against that host's answers. A decoy group's
//! real source is the one member that followed a positive answer up (the
//! RST or ACK a real stack sends after a SYN+ACK), else the one member
//! whose TTL differs from all the others', else, on a segment, the one
//! member that ARP ties to the link-layer address all the copies came
//! from.
//!
//! ARP requests are probes like any other (a request is an attempt on
//! the address asked for, its reply the answer): a sweep of a sparse
//! segment's addresses fails TRW as a sweep of one port does, and is
//! reported over protocol `arp`. A host asking for a peer that spoke to
//! it first is answering, as with IP. (A router resolving the addresses
//! an outside scanner sweeps does sweep the segment, and is reported as
//! the source there; the outside scanner is seen on the router's other
//! side.)
//!
//! Idle scans, at the zombie: unsolicited SYN+ACKs (no SYN went the other
//! way) from one source to one port of a host, each answered by a RST
//! that carries the host's IP ID. [`DetectorConfig::zombie_probes`] of
//! them, retransmissions counted once, from a source that sent the host
//! no RST of its own, name the source as an idle scanner reading a
//! zombie. The scanned host's answers to the spoofed probes reach the
//! zombie too, but as SYN+ACKs from its open ports among RSTs from its
//! closed ones; backscatter of a SYN flood spoofing the host's address
//! goes to ports at random.
//!
//! Memory: what is kept per (source, host) lives in the fixed-size
//! [`PairTable`] (who spoke first, TRW's first contacts, refused ports);
//! a source's own state is a fixed 80 bytes (`Source`: counters, the
//! walk, the first [`SOURCE_PORTS`] failed ports as evidence, bit sets
//! for kinds and traits, its link-layer address), in a table reserved
//! once for [`DetectorConfig::max_sources`] sources. ARP's bindings of
//! link-layer addresses ([`MAX_ARP_BINDINGS`]) and the sources sending
//! unsolicited SYN+ACKs or RSTs ([`MAX_ZOMBIE_PAIRS`]) have budgets of
//! their own. Past the budgets the least recently seen are evicted and
//! counted.
//!
//! Probes awaiting their answer are capped too
//! ([`DetectorConfig::max_pending`]): past it the oldest is judged silent
//! at once.
//!
//! Contract: no panic; the hot path allocates only when the pending-probe
//! map, the ARP bindings or the unsolicited SYN+ACK and RST followers
//! grow (each up to its budget) or an alert is made.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;

use crate::alert::{Alert, GroupEvidence, ScanKind, SourceSummary, ZombieEvidence};
use crate::decode::{EventKind, FlowEvent, Proto};
use crate::error::AllowlistError;
use crate::group::{Finding, GroupConfig, GroupKind, Groups, Space, host_item};
use crate::pairs::{PairKey, PairTable};
use crate::traits::{TraitSet, scanner_traits};
use crate::trw::{Trw, TrwParams, Verdict};

/// Failed ports kept per source for the evidence (and to tell a sweep of
/// one port from a strobe).
pub const SOURCE_PORTS: usize = 8;

/// The detector's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// TRW parameters.
    pub trw: TrwParams,
    /// Silence after a probe longer than this is a failure (ns).
    pub answer_timeout_ns: u64,
    /// Distinct failed ports on one host that make a vertical scan
    /// (exact up to [`crate::pairs::KEPT_PORTS`] + 1; above, repeats of
    /// the ports past the kept ones count again).
    pub vertical_ports: u32,
    /// Most distinct ports a sweep may touch and still be "horizontal".
    pub horizontal_ports: usize,
    /// Distinct hosts sent echo requests within [`Self::ping_sweep_ns`]
    /// that make a ping sweep, whether they answer or not (Snort 3's
    /// `icmp_hi_sweep` counts 10).
    pub ping_sweep_hosts: u16,
    /// The ping sweep's window (ns; Snort 3's `icmp_window` is 600 s).
    pub ping_sweep_ns: u64,
    /// Distinct hosts sent echo requests, at any pace, that make a slow
    /// ping sweep: nmap `-T0 -sn` pings one host every 5 minutes, which
    /// no window of [`Self::ping_sweep_ns`] catches when the hosts
    /// answer (TRW sees only successes). Each host counts once (the pair
    /// table's first contact), so a monitor pinging the same few hosts
    /// for days never gets there.
    pub slow_ping_sweep_hosts: u16,
    /// Most sources tracked at once (their table is reserved up front);
    /// past it the least recently seen eighth is evicted (counted in
    /// [`Detector::evictions`]).
    pub max_sources: usize,
    /// When the source budget evicts, a source with failures counts as
    /// seen this much later than it was (ns): a slow scanner, quiet for
    /// minutes between probes, outlives the one-off clients that came
    /// after it (nmap `-T0` reaches 5 refused ports in 20 minutes).
    pub suspect_hold_ns: u64,
    /// Most (initiator, responder) pairs remembered (the table is
    /// allocated up front, 16 bytes a pair); a full bucket pushes its
    /// least recently touched pair out (counted).
    pub max_pairs: usize,
    /// Most probes awaiting their answer at once; past it the oldest is
    /// judged silent at once (a failure, counted in
    /// [`Detector::evictions`]): a scanner at line rate puts millions of
    /// probes in flight within one answer timeout.
    pub max_pending: usize,
    /// The distributed and decoy tests.
    pub groups: GroupConfig,
    /// Unsolicited SYN+ACKs to one port of one host, answered by its
    /// RSTs, that make an idle scan's zombie probing (nmap reads the
    /// zombie's IP ID about four times to test it, then once per round).
    pub zombie_probes: u16,
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

    /// Reads a published list: one address or network (CIDR) per line;
    /// `#` starts a comment; blank lines are skipped. The first line that
    /// is neither is an error naming it.
    pub fn parse(text: &str) -> Result<Self, AllowlistError> {
        let mut networks = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let item = raw.split('#').next().unwrap_or("").trim();
            if item.is_empty() {
                continue;
            }
            let net = item
                .parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| AllowlistError {
                    line: i + 1,
                    text: item.to_string(),
                })?;
            networks.push(net);
        }
        Ok(Self(networks))
    }

    /// Adds `other`'s networks.
    pub fn extend(&mut self, other: Allowlist) {
        self.0.extend(other.0);
    }
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            trw: TrwParams::default(),
            answer_timeout_ns: 3_000_000_000,
            vertical_ports: 5,
            horizontal_ports: 1,
            ping_sweep_hosts: 10,
            ping_sweep_ns: 600_000_000_000,
            slow_ping_sweep_hosts: 20,
            max_sources: 100_000,
            suspect_hold_ns: 3_600_000_000_000,
            max_pairs: 1_000_000,
            max_pending: 1_000_000,
            groups: GroupConfig::default(),
            zombie_probes: 5,
        }
    }
}

type ProbeKey = (IpAddr, IpAddr, Proto, u16);

/// Scan kinds as a bit set (a source's kinds reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct KindSet(u8);

const KINDS: [ScanKind; 6] = [
    ScanKind::Vertical,
    ScanKind::Horizontal,
    ScanKind::Strobe,
    ScanKind::Distributed,
    ScanKind::Decoy,
    ScanKind::Idle,
];

impl KindSet {
    fn bit(kind: ScanKind) -> u8 {
        let i = KINDS.iter().position(|&k| k == kind).unwrap_or(0);
        1 << i
    }

    fn contains(self, kind: ScanKind) -> bool {
        self.0 & Self::bit(kind) != 0
    }

    /// Adds `kind`; false if it was there.
    fn insert(&mut self, kind: ScanKind) -> bool {
        let had = self.contains(kind);
        self.0 |= Self::bit(kind);
        !had
    }

    fn kinds(self) -> Vec<ScanKind> {
        KINDS.into_iter().filter(|&k| self.contains(k)).collect()
    }
}

/// What one source did: fixed-size (80 bytes); what it did to each host
/// is in the pair table.
#[derive(Debug, Default, Clone, Copy)]
struct Source {
    first_ns: u64,
    last_ns: u64,
    probes: u64,
    failures: u32,
    llr: f32,
    steps: u32,
    /// Distinct hosts whose first contact was resolved.
    hosts: u32,
    /// The ping sweep's window: its start (s) and the distinct hosts sent
    /// echo requests in it.
    echo_since_s: u32,
    echo_hosts: u16,
    /// Distinct hosts sent echo requests, ever (the slow ping sweep).
    echo_hosts_ever: u16,
    /// The first distinct failed ports (`n_ports` of them, saturating).
    failed_ports: [u16; SOURCE_PORTS],
    n_ports: u8,
    reported: KindSet,
    traits: TraitSet,
    proto: Option<Proto>,
    /// TTL (hop limit) of the first probe.
    ttl: u8,
    /// A later IP probe had another TTL: nmap draws one per probe for all
    /// its decoy copies, so a member's first TTL tells nothing about the
    /// others' (see [`odd_one_out`]).
    ttl_varies: bool,
    /// An answer was followed up (RST or ACK after a SYN+ACK).
    followed_up: bool,
    /// The link-layer source of its first probe (zeros when the capture
    /// has none).
    mac: [u8; 6],
}

impl Source {
    fn failed_ports(&self) -> &[u16] {
        &self.failed_ports[..usize::from(self.n_ports).min(SOURCE_PORTS)]
    }

    /// Files a failed port (distinct ports counted; the first kept).
    fn fail_port(&mut self, port: u16) {
        if self.failed_ports().contains(&port) {
            return;
        }
        if usize::from(self.n_ports) >= SOURCE_PORTS {
            // Past the kept ones: counted as many (a strobe), not listed.
            self.n_ports = self.n_ports.saturating_add(1).max(SOURCE_PORTS as u8 + 1);
            return;
        }
        self.failed_ports[usize::from(self.n_ports)] = port;
        self.n_ports += 1;
    }
}

/// Group reports remembered (to report each group once), at most; past
/// it the memory is cleared and a group may be reported again.
const MAX_REPORTED_GROUPS: usize = 65_536;

/// Link-layer addresses whose ARP sender address is remembered, at most
/// (the least recently seen eighth is evicted past it, counted).
pub const MAX_ARP_BINDINGS: usize = 65_536;

/// (sender, host) pairs of unsolicited SYN+ACKs or RSTs followed, at most
/// (the least recently seen eighth is evicted past it, counted).
pub const MAX_ZOMBIE_PAIRS: usize = 4_096;

/// What ARP says a link-layer address is.
#[derive(Debug, Clone, Copy)]
struct ArpBinding {
    /// The one IPv4 address it sent ARP for; `None` once it has sent
    /// for two (a router answering for others, a host with several
    /// addresses): then it names no one.
    owner: Option<IpAddr>,
    last_ns: u64,
}

/// Steps between a zombie's IP IDs kept as evidence.
const IP_ID_STEPS: usize = 8;

/// Unsolicited SYN+ACKs and RSTs from one sender to one host: an idle
/// scanner's readings of a zombie, or a scanned host's answers to spoofed
/// probes, or backscatter.
#[derive(Debug, Clone, Copy, Default)]
struct ZombieProbes {
    first_ns: u64,
    last_ns: u64,
    /// The port of the host the first SYN+ACK went to; only SYN+ACKs to
    /// it count.
    port: u16,
    /// Distinct SYN+ACKs to `port` (a retransmission repeats the
    /// previous sequence number).
    synacks: u16,
    last_seq: u32,
    /// RSTs the sender sent the host: a scanned host's, not a prober's.
    rsts_sent: u16,
    /// The host's RSTs answering the sender.
    answered: u16,
    last_ip_id: Option<u16>,
    ip_id_steps: [u16; IP_ID_STEPS],
    reported: bool,
    /// The link-layer source of the first SYN+ACK (zeros when unknown).
    mac: [u8; 6],
}

/// Scan detection over a stream of flow events.
#[derive(Debug)]
pub struct Detector {
    config: DetectorConfig,
    trw: Trw,
    pending: HashMap<ProbeKey, u64>,
    order: VecDeque<(u64, ProbeKey)>,
    /// What each initiator did to each responder, in fixed memory.
    pairs: PairTable,
    sources: HashMap<IpAddr, Source>,
    alerts: Vec<Alert>,
    allowlist: Allowlist,
    evictions: u64,
    groups: Groups,
    /// Groups reported: a keyed hash of kind, sorted members and real
    /// source (a repeat is skipped).
    reported_groups: HashSet<u64>,
    reported_keys: std::collections::hash_map::RandomState,
    /// Decoy groups reported before their real source was known: one is
    /// reported again when a member follows an answer up, or ARP names
    /// one.
    unresolved: VecDeque<Finding>,
    /// ARP's bindings: link-layer address → the address it sends for.
    arp: HashMap<[u8; 6], ArpBinding>,
    /// Unsolicited SYN+ACKs and RSTs, per (sender, host).
    zombie_probes: HashMap<(IpAddr, IpAddr), ZombieProbes>,
}

/// Ports (or hosts) a group alert lists at most.
const GROUP_PORTS: usize = 32;

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
            pairs: PairTable::new(config.max_pairs),
            // Reserved once: a table that doubles holds its old and new
            // storage at once, and peak memory would count both.
            sources: HashMap::with_capacity(config.max_sources.min(1 << 24)),
            alerts: Vec::new(),
            allowlist: Allowlist::default(),
            evictions: 0,
            groups: Groups::new(config.groups),
            reported_groups: HashSet::new(),
            reported_keys: std::collections::hash_map::RandomState::new(),
            unresolved: VecDeque::new(),
            arp: HashMap::new(),
            zombie_probes: HashMap::new(),
        }
    }

    /// Labels alerts from `allowlist`'s sources.
    pub fn with_allowlist(mut self, allowlist: Allowlist) -> Self {
        self.allowlist = allowlist;
        self
    }

    /// Feeds one event; alerts it causes are queued for [`Self::drain_alerts`].
    pub fn observe(&mut self, e: &FlowEvent) {
        self.expire(e.ts_ns);
        if e.proto == Proto::Arp {
            self.arp_binding(e);
        }
        match e.kind {
            EventKind::Attempt => {
                // A datagram answering a probe is an answer, not a probe.
                let reverse = (e.dst, e.src, e.proto, e.sport);
                if e.proto == Proto::Udp && self.pending.contains_key(&reverse) {
                    self.resolve(reverse, true, e.ts_ns);
                    return;
                }
                // The other side spoke first: a reply path. (A host
                // talking to itself over loopback has no other side.) An
                // ARP request answers a peer that spoke first over IP or
                // ARP; ARP never makes IP a reply path.
                let spoke_first = self.pairs.contains(self.pairs.key(e.dst, e.src))
                    || (e.proto == Proto::Arp
                        && self.pairs.contains(self.pairs.arp_key(e.dst, e.src)));
                if e.src != e.dst && spoke_first {
                    return;
                }
                self.pairs
                    .touch(pair_key(&self.pairs, e.src, e.dst, e.proto));
                let key = (e.src, e.dst, e.proto, e.dport);
                let src = self.source(e.src);
                if src.probes == 0 {
                    src.first_ns = e.ts_ns;
                }
                // The first IP probe's TTL (ARP has none), and the first
                // frame's link-layer source.
                if e.proto != Proto::Arp {
                    if src.ttl == 0 {
                        src.ttl = e.traits.ttl;
                    } else if src.ttl != e.traits.ttl {
                        src.ttl_varies = true;
                    }
                }
                if src.mac == [0; 6] {
                    src.mac = e.mac.unwrap_or_default();
                }
                src.last_ns = e.ts_ns;
                src.probes += 1;
                // The first IP probe's protocol: the ARP request that
                // finds a host is not how it is scanned.
                if src.proto.is_none() && e.proto != Proto::Arp {
                    src.proto = Some(e.proto);
                }
                src.traits.add(scanner_traits(e));
                if let std::collections::hash_map::Entry::Vacant(v) = self.pending.entry(key) {
                    v.insert(e.ts_ns);
                    self.order.push_back((e.ts_ns, key));
                    if self.pending.len() > self.config.max_pending {
                        self.judge_oldest_silent(e.ts_ns);
                    }
                    // Answered probes leave their place in the time order
                    // behind: drop those places when they outnumber the
                    // pending probes (amortised over as many probes).
                    if self.order.len() > 2 * self.config.max_pending.max(self.pending.len()) {
                        let pending = &self.pending;
                        self.order.retain(|(ts, k)| pending.get(k) == Some(ts));
                    }
                }
            }
            EventKind::Accept => {
                // The prober's stack saw this answer: a follow-up of it
                // proves the prober's address is its own.
                let pair = self.pairs.key(e.dst, e.src);
                match self.pairs.get(pair) {
                    Some(mut p) if !p.answered && e.proto != Proto::Arp => {
                        p.answered = true;
                        self.pairs.put(pair, p);
                    }
                    Some(_) => {}
                    None if e.proto == Proto::Tcp => self.unsolicited(e),
                    None => {}
                }
                let key = (e.dst, e.src, e.proto, e.sport);
                self.resolve(key, true, e.ts_ns);
            }
            EventKind::Reject => {
                self.follow_up(e);
                if e.proto == Proto::Tcp && !self.pairs.contains(self.pairs.key(e.dst, e.src)) {
                    self.unsolicited(e);
                }
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

    /// A prober's RST or ACK to a host that answered it positively: its
    /// stack saw the answer, so its address is its own.
    fn follow_up(&mut self, e: &FlowEvent) {
        let answered = self
            .pairs
            .get(self.pairs.key(e.src, e.dst))
            .is_some_and(|p| p.answered);
        let Some(prober) = self.sources.get_mut(&e.src) else {
            return;
        };
        if prober.followed_up || !answered {
            return;
        }
        prober.followed_up = true;
        self.reconsider_decoys(e.src, e.ts_ns);
    }

    /// New evidence on `member`: the decoy groups it belongs to that had
    /// no real source are judged again (and reported if one is named).
    fn reconsider_decoys(&mut self, member: IpAddr, now_ns: u64) {
        let (named, rest): (Vec<Finding>, Vec<Finding>) = self
            .unresolved
            .drain(..)
            .partition(|f| f.members.iter().any(|m| m.source == member));
        self.unresolved = rest.into();
        for finding in named {
            self.group_alert(finding, now_ns);
        }
    }

    /// The member of a group that ARP names: every member's first probe
    /// came from one link-layer address, and ARP ties that address to
    /// exactly one address, a member's.
    fn arp_names(&self, facts: &[Option<&Source>], f: &Finding) -> Option<IpAddr> {
        let mut macs = facts.iter().map(|s| s.map(|s| s.mac));
        let mac = macs.next()??;
        if mac == [0; 6] || !macs.all(|m| m == Some(mac)) {
            return None;
        }
        let owner = self.arp.get(&mac)?.owner?;
        f.members.iter().any(|m| m.source == owner).then_some(owner)
    }

    /// Readings of `host` claimed by `claimed` but sent from a card that
    /// ARP ties to another address which reads `host` itself: nmap tests
    /// its zombie with SYN+ACKs spoofed from the target's address, and the
    /// real reader is reported already. (Behind a router every frame
    /// carries the router's card, and the router reads nothing.)
    fn spoofed_reading(&self, claimed: IpAddr, host: IpAddr, mac: [u8; 6]) -> bool {
        if mac == [0; 6] {
            return false;
        }
        let Some(owner) = self.arp.get(&mac).and_then(|b| b.owner) else {
            return false;
        };
        owner != claimed
            && self
                .zombie_probes
                .get(&(owner, host))
                .is_some_and(|z| z.synacks > 0)
    }

    /// The source's state, made (within the budget) if it is new.
    fn source(&mut self, ip: IpAddr) -> &mut Source {
        if !self.sources.contains_key(&ip) && self.sources.len() >= self.config.max_sources {
            let hold = self.config.suspect_hold_ns;
            self.evictions += evict_oldest(&mut self.sources, |s| {
                if s.failures > 0 {
                    s.last_ns.saturating_add(hold)
                } else {
                    s.last_ns
                }
            });
        }
        self.sources.entry(ip).or_default()
    }

    /// Learns which address an ARP packet's sender claims; a binding that
    /// is new may name the real source of a decoy group.
    fn arp_binding(&mut self, e: &FlowEvent) {
        let Some(mac) = e.mac else {
            return;
        };
        if let Some(b) = self.arp.get_mut(&mac) {
            b.last_ns = e.ts_ns;
            if b.owner.is_some_and(|o| o != e.src) {
                b.owner = None;
            }
            return;
        }
        if self.arp.len() >= MAX_ARP_BINDINGS {
            self.evictions += evict_oldest(&mut self.arp, |b| b.last_ns);
        }
        self.arp.insert(
            mac,
            ArpBinding {
                owner: Some(e.src),
                last_ns: e.ts_ns,
            },
        );
        self.reconsider_decoys(e.src, e.ts_ns);
    }

    /// A SYN+ACK or RST from a sender the host never contacted: an idle
    /// scanner reading a zombie's IP ID, the zombie's answer to it, a
    /// scanned host answering probes spoofed with the zombie's address,
    /// or backscatter.
    fn unsolicited(&mut self, e: &FlowEvent) {
        let rst = e.kind != EventKind::Accept;
        // The host's RST answering a prober's SYN+ACK: its IP ID.
        if rst && let Some(z) = self.zombie_probes.get_mut(&(e.dst, e.src)) {
            if z.answered < u16::MAX {
                if let Some(last) = z.last_ip_id {
                    let i = usize::from(z.answered) - 1;
                    if let Some(step) = z.ip_id_steps.get_mut(i) {
                        *step = e.traits.ip_id.wrapping_sub(last);
                    }
                }
                z.answered += 1;
            }
            z.last_ip_id = Some(e.traits.ip_id);
            return;
        }
        if !self.zombie_probes.contains_key(&(e.src, e.dst))
            && self.zombie_probes.len() >= MAX_ZOMBIE_PAIRS
        {
            self.evictions += evict_oldest(&mut self.zombie_probes, |z| z.last_ns);
        }
        let z = self.zombie_probes.entry((e.src, e.dst)).or_default();
        if z.first_ns == 0 {
            z.first_ns = e.ts_ns;
        }
        z.last_ns = e.ts_ns;
        if rst {
            z.rsts_sent = z.rsts_sent.saturating_add(1);
            return;
        }
        if z.synacks == 0 {
            z.port = e.dport;
            z.mac = e.mac.unwrap_or_default();
        } else if e.dport != z.port || e.traits.seq == z.last_seq {
            return;
        }
        z.synacks = z.synacks.saturating_add(1);
        z.last_seq = e.traits.seq;
        if z.reported || z.rsts_sent > 0 || z.synacks < self.config.zombie_probes {
            return;
        }
        z.reported = true;
        let z = *z;
        if self.spoofed_reading(e.src, e.dst, z.mac) {
            return;
        }
        let steps = usize::from(z.answered.saturating_sub(1)).min(IP_ID_STEPS);
        let evidence = ZombieEvidence {
            probes: u32::from(z.synacks),
            answered: u32::from(z.answered),
            ip_id_steps: z.ip_id_steps[..steps].to_vec(),
        };
        let allowlisted = self.allowlist.contains(e.src);
        let source = self.source(e.src);
        if source.first_ns == 0 {
            source.first_ns = z.first_ns;
        }
        source.last_ns = e.ts_ns;
        source.reported.insert(ScanKind::Idle);
        let traits = source.traits.names().collect();
        self.alerts.push(Alert {
            kind: ScanKind::Idle,
            source: e.src,
            proto: Proto::Tcp,
            first_seen: z.first_ns as f64 / 1e9,
            decided_at: e.ts_ns as f64 / 1e9,
            probes: u64::from(z.synacks),
            failures: 0,
            decision_step: u32::from(z.synacks),
            targets: 1,
            target: Some(e.dst),
            ports: vec![z.port],
            trw_llr: 0.0,
            // The share of the readings the zombie answered.
            confidence: (f32::from(z.answered) / f32::from(z.synacks)).min(1.0),
            traits,
            allowlisted,
            decided_by: "zombie-probe",
            group: None,
            zombie: Some(evidence),
        });
    }

    /// Trackers evicted by the memory budget so far (sources, pairs and
    /// group spaces).
    pub fn evictions(&self) -> u64 {
        self.evictions + self.pairs.evictions() + self.groups.evictions()
    }

    /// Whether alerts wait in the queue.
    pub fn has_alerts(&self) -> bool {
        !self.alerts.is_empty()
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
                failures: u64::from(s.failures),
                targets: s.hosts,
                kinds: s.reported.kinds(),
            })
            .collect();
        rows.sort_by_key(|r| r.source);
        rows
    }

    /// The pending budget is full: the oldest probe still awaiting its
    /// answer is judged silent now.
    fn judge_oldest_silent(&mut self, now_ns: u64) {
        while let Some((ts, key)) = self.order.pop_front() {
            if self.pending.get(&key) == Some(&ts) {
                self.evictions += 1;
                self.resolve(key, false, now_ns);
                return;
            }
        }
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
        // What this source did to this host: first contact, refused ports.
        let pair_key = pair_key(&self.pairs, src_ip, dst, proto);
        let mut pair = self.pairs.touch(pair_key);
        let first_contact = !pair.counted;
        pair.counted = true;
        let mut vertical = None;
        if !success
            && !matches!(proto, Proto::Icmp | Proto::Arp)
            && pair.refuse(port)
            && u32::from(pair.refused) == self.config.vertical_ports
        {
            let mut ports = pair.kept_ports().to_vec();
            if !ports.contains(&port) {
                ports.push(port);
            }
            vertical = Some(ports);
        }
        self.pairs.put(pair_key, pair);
        let mut decided: Vec<(ScanKind, &'static str)> = Vec::new();
        // TRW over first contacts with distinct hosts.
        if first_contact {
            src.hosts = src.hosts.saturating_add(1);
            let (llr, verdict) = self.trw.step(src.llr, success);
            src.llr = llr;
            src.steps += 1;
            // ARP has no ports: its failures are no failed port, and an
            // ARP sweep is horizontal whatever ports the source tried.
            let arp = proto == Proto::Arp;
            if !success && !arp {
                src.fail_port(port);
            }
            let sweep_kind = if arp || usize::from(src.n_ports) <= self.config.horizontal_ports {
                ScanKind::Horizontal
            } else {
                ScanKind::Strobe
            };
            if verdict == Verdict::Scanner {
                decided.push((sweep_kind, "trw"));
            }
            // Ping sweeps: echo requests to distinct hosts, answered or
            // not, within the window.
            if proto == Proto::Icmp {
                let now_s = (now_ns / 1_000_000_000) as u32;
                let window_s = (self.config.ping_sweep_ns / 1_000_000_000) as u32;
                if src.echo_hosts == 0 || now_s.saturating_sub(src.echo_since_s) > window_s {
                    src.echo_since_s = now_s;
                    src.echo_hosts = 0;
                }
                src.echo_hosts = src.echo_hosts.saturating_add(1);
                src.echo_hosts_ever = src.echo_hosts_ever.saturating_add(1);
                if src.echo_hosts == self.config.ping_sweep_hosts {
                    decided.push((ScanKind::Horizontal, "echo-sweep"));
                } else if src.echo_hosts_ever == self.config.slow_ping_sweep_hosts {
                    decided.push((ScanKind::Horizontal, "slow-echo-sweep"));
                }
            }
        } else if !success && proto != Proto::Arp {
            src.fail_port(port);
        }
        if vertical.is_some() {
            decided.push((ScanKind::Vertical, "vertical"));
        }
        for (kind, by) in decided {
            if !src.reported.insert(kind) {
                continue;
            }
            let (target, ports) = match (kind, &vertical) {
                (ScanKind::Vertical, Some(ports)) => (Some(dst), ports.clone()),
                _ if proto == Proto::Arp => (None, Vec::new()),
                _ => (None, src.failed_ports().to_vec()),
            };
            let confidence = match by {
                "vertical" => 1.0,
                // The share of the source's first contacts that were echo
                // requests in the window.
                "echo-sweep" => f32::from(src.echo_hosts) / src.hosts.max(1) as f32,
                "slow-echo-sweep" => f32::from(src.echo_hosts_ever) / src.hosts.max(1) as f32,
                _ => (1.0 - self.config.trw.p_f) as f32,
            };
            self.alerts.push(Alert {
                kind,
                source: src_ip,
                // The source's first protocol (an ARP sweep's is ARP).
                proto: match proto {
                    Proto::Arp => proto,
                    _ => src.proto.unwrap_or(proto),
                },
                first_seen: src.first_ns as f64 / 1e9,
                decided_at: now_ns as f64 / 1e9,
                probes: src.probes,
                failures: u64::from(src.failures),
                decision_step: if target.is_some() {
                    self.config.vertical_ports
                } else {
                    src.steps
                },
                targets: src.hosts,
                target,
                ports,
                trw_llr: if target.is_some() { 0.0 } else { src.llr },
                confidence: confidence.min(1.0),
                traits: src.traits.names().collect(),
                allowlisted: self.allowlist.contains(src_ip),
                decided_by: by,
                group: None,
                zombie: None,
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
                s.reported.contains(ScanKind::Horizontal) || s.reported.contains(ScanKind::Strobe)
            })
        };
        let mut findings: Vec<Finding> = Vec::new();
        if !matches!(proto, Proto::Icmp | Proto::Arp) {
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
        // Each member kept one TTL throughout, or the odd one out is chance.
        let ttls_steady = facts.iter().all(|s| s.is_some_and(|s| !s.ttl_varies));
        let followed_up: Vec<IpAddr> = f
            .members
            .iter()
            .zip(&facts)
            .filter(|(_, s)| s.is_some_and(|s| s.followed_up))
            .map(|(m, _)| m.source)
            .collect();
        let (real_source, real_by) = match kind {
            ScanKind::Decoy if followed_up.len() == 1 => (Some(followed_up[0]), Some("follow-up")),
            ScanKind::Decoy => match ttls_steady.then(|| odd_one_out(&ttls)).flatten() {
                Some(i) => (Some(f.members[i].source), Some("ttl")),
                None => match self.arp_names(&facts, &f) {
                    Some(real) => (Some(real), Some("arp")),
                    None => (None, None),
                },
            },
            _ => (None, None),
        };
        let mut key: Vec<IpAddr> = f.members.iter().map(|m| m.source).collect();
        key.sort_unstable();
        let reported = self.reported_keys.hash_one((kind, &key, real_source));
        if self.reported_groups.len() >= MAX_REPORTED_GROUPS {
            self.reported_groups.clear();
        }
        if !self.reported_groups.insert(reported) {
            return;
        }
        let source = real_source.unwrap_or(f.members[0].source);
        let (target, ports, targets, proto) = match f.space {
            Space::Ports { host, proto } => (
                Some(host),
                f.covered
                    .iter()
                    .take(GROUP_PORTS)
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
            .map(|s| s.traits.names().collect())
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
            decided_by: match kind {
                ScanKind::Decoy => "decoy",
                _ => "distributed",
            },
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
            zombie: None,
        });
        // The summary lists the kinds per source: every member of a split
        // scan, and a decoy scan's named (or first) source.
        let labelled: &[IpAddr] = match kind {
            ScanKind::Distributed => &key,
            _ => std::slice::from_ref(&source),
        };
        for member in labelled {
            if let Some(s) = self.sources.get_mut(member) {
                s.reported.insert(kind);
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

/// Where `pairs` keeps what `initiator` did to `responder` over `proto`:
/// ARP apart from IP.
fn pair_key(pairs: &PairTable, initiator: IpAddr, responder: IpAddr, proto: Proto) -> PairKey {
    match proto {
        Proto::Arp => pairs.arp_key(initiator, responder),
        _ => pairs.key(initiator, responder),
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
            mac: None,
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
    fn a_published_allowlist_takes_addresses_networks_and_comments_and_names_a_bad_line() {
        let list = Allowlist::parse(
            "# scanners we run\n198.18.0.0/30  # the audit box\n\n  fd00::7\n198.19.1.1\n",
        )
        .unwrap();
        assert!(list.contains(ip(2)));
        assert!(!list.contains(ip(9)));
        assert!(list.contains("fd00::7".parse().unwrap()));
        assert!(list.contains("198.19.1.1".parse().unwrap()));
        let err = Allowlist::parse("198.18.0.1\nscanner.example # no names\n").unwrap_err();
        assert_eq!((err.line, err.text.as_str()), (2, "scanner.example"));
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
    fn slow_scans_outlive_a_flood_of_one_off_clients_under_the_budgets() {
        let config = DetectorConfig {
            max_sources: 64,
            max_pairs: 256,
            ..DetectorConfig::default()
        };
        let mut d = Detector::new(config);
        // At nmap -T0's pace: a vertical scan of one host, and a sweep of
        // port 23 (a new host each time), both refused.
        let (scanner, sweeper, target) = (ip(1), ip(2), ip(200));
        let mut client = 0u32;
        for (i, port) in [21u16, 22, 23, 25, 80, 110].into_iter().enumerate() {
            let t = i as u64 * 300 * SEC;
            d.observe(&syn(t, scanner, target, port));
            d.observe(&rst(t + SEC / 100, target, scanner, port));
            let host = ip(100 + i as u8);
            d.observe(&syn(t + SEC / 50, sweeper, host, 23));
            d.observe(&rst(t + SEC / 40, host, sweeper, 23));
            // Between probes, 500 clients each make one answered
            // connection to the target's web port, and go.
            for _ in 0..500 {
                client += 1;
                let c = IpAddr::V4(Ipv4Addr::from(0xc613_0000 + client));
                let at = t + SEC + u64::from(client) * 1000;
                d.observe(&syn(at, c, target, 443));
                d.observe(&synack(at + 1, target, c, 443));
            }
        }
        d.finish(1800 * SEC);
        assert!(d.evictions() > 2000, "{}", d.evictions());
        let mut alerts = d.drain_alerts();
        alerts.sort_by_key(|a| a.source);
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert_eq!(
            (alerts[0].kind, alerts[0].source),
            (ScanKind::Vertical, scanner)
        );
        assert_eq!(alerts[0].ports, vec![21, 22, 23, 25, 80]);
        assert_eq!(alerts[0].probes, 5, "the source was kept throughout");
        assert_eq!(
            (alerts[1].kind, alerts[1].source),
            (ScanKind::Horizontal, sweeper)
        );
        assert_eq!(alerts[1].decision_step, 4);
    }

    #[test]
    fn the_pending_budget_judges_the_oldest_probes_silent_and_counts_them() {
        let config = DetectorConfig {
            max_pending: 16,
            ..DetectorConfig::default()
        };
        let mut d = Detector::new(config);
        let scanner = ip(1);
        // 100 SYNs within a millisecond, none answered yet.
        for h in 0..100u32 {
            let host = IpAddr::V4(Ipv4Addr::from(0xc613_0000 + h));
            d.observe(&syn(u64::from(h) * 10_000, scanner, host, 23));
        }
        assert!(d.pending.len() <= 16, "{}", d.pending.len());
        assert_eq!(d.evictions(), 84);
        // Answered probes do not pile up in the time order either.
        let client = ip(2);
        for h in 0..200u32 {
            let host = IpAddr::V4(Ipv4Addr::from(0xc614_0000 + h));
            let t = SEC + u64::from(h) * 10_000;
            d.observe(&syn(t, client, host, 443));
            d.observe(&synack(t + 1, host, client, 443));
        }
        assert!(d.order.len() <= 32, "{}", d.order.len());
        let alerts = d.drain_alerts();
        assert_eq!(
            alerts.len(),
            1,
            "decided before the answer timeout: {alerts:?}"
        );
        assert_eq!(
            (alerts[0].kind, alerts[0].decision_step),
            (ScanKind::Horizontal, 4)
        );
    }

    #[test]
    fn the_pair_budget_evicts_and_counts_and_who_spoke_first_still_holds() {
        let config = DetectorConfig {
            max_pairs: 16,
            ..DetectorConfig::default()
        };
        let mut d = Detector::new(config);
        assert_eq!(d.pairs.capacity(), 16);
        for i in 0..100u32 {
            let client = IpAddr::V4(Ipv4Addr::from(0xc612_1000 + i));
            d.observe(&syn(u64::from(i), client, ip(1), 443));
        }
        assert_eq!(
            d.evictions(),
            100 - 16,
            "every bucket full, the rest pushed out"
        );
        // A server answering its latest clients' connections is not
        // probing them: each bucket keeps its four most recent pairs, so
        // the last four clients are all still known.
        let server = ip(1);
        for i in 96..100u32 {
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
    fn a_source_is_a_fixed_80_bytes_whatever_it_touches() {
        assert!(
            std::mem::size_of::<Source>() <= 80,
            "{}",
            std::mem::size_of::<Source>()
        );
        let mut d = Detector::new(DetectorConfig::default());
        let scanner = ip(1);
        for h in 0..2000u32 {
            let host = IpAddr::V4(Ipv4Addr::from(0xc613_0000 + h));
            d.observe(&syn(
                u64::from(h) * 1000,
                scanner,
                host,
                1 + (h % 700) as u16,
            ));
        }
        d.finish(10 * SEC);
        let s = d.sources[&scanner];
        assert_eq!(s.hosts, 2000);
        assert_eq!(s.failed_ports().len(), SOURCE_PORTS);
    }

    fn echo(ts: u64, src: IpAddr, dst: IpAddr) -> FlowEvent {
        ev(ts, src, dst, Proto::Icmp, 0, 0, EventKind::Attempt)
    }

    fn echo_reply(ts: u64, from: IpAddr, to: IpAddr) -> FlowEvent {
        ev(ts, from, to, Proto::Icmp, 0, 0, EventKind::Accept)
    }

    #[test]
    fn a_ping_sweep_of_live_hosts_is_horizontal_at_its_tenth_host() {
        let mut d = Detector::new(DetectorConfig::default());
        let scanner = ip(1);
        for h in 0..30u8 {
            let t = u64::from(h) * SEC / 100;
            d.observe(&echo(t, scanner, ip(100 + h)));
            d.observe(&echo_reply(t + 1000, ip(100 + h), scanner));
        }
        let alerts = d.drain_alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!(
            (a.kind, a.proto, a.source),
            (ScanKind::Horizontal, Proto::Icmp, scanner)
        );
        assert_eq!(a.decided_by, "echo-sweep");
        assert_eq!((a.decision_step, a.targets, a.failures), (10, 10, 0));
        assert_eq!(a.confidence, 1.0);
    }

    #[test]
    fn a_few_pings_or_a_monitor_pinging_its_hosts_for_hours_are_no_sweep() {
        let mut d = Detector::new(DetectorConfig::default());
        let (admin, monitor, slow) = (ip(1), ip(2), ip(3));
        // Pings to nine hosts at once; a monitor pinging the same nine
        // hosts every minute for five hours; 19 hosts, one every 5
        // minutes (below the slow sweep's 20).
        for h in 0..9u8 {
            d.observe(&echo(u64::from(h), admin, ip(100 + h)));
            d.observe(&echo_reply(u64::from(h) + 1000, ip(100 + h), admin));
        }
        for round in 0..300u64 {
            for h in 0..9u8 {
                let t = round * 60 * SEC + u64::from(h) * SEC;
                d.observe(&echo(t, monitor, ip(150 + h)));
                d.observe(&echo_reply(t + 1000, ip(150 + h), monitor));
            }
        }
        for h in 0..19u8 {
            let t = u64::from(h) * 300 * SEC;
            d.observe(&echo(t, slow, ip(180 + h)));
            d.observe(&echo_reply(t + 1000, ip(180 + h), slow));
        }
        d.finish(20_000 * SEC);
        assert!(d.drain_alerts().is_empty());
    }

    #[test]
    fn a_ping_sweep_of_live_hosts_at_nmap_t0_pace_is_flagged_at_its_20th_host() {
        // One echo request every 5 minutes, every host answering: no
        // 600 s window holds ten, and TRW sees only successes.
        let mut d = Detector::new(DetectorConfig::default());
        let scanner = ip(1);
        for h in 0..30u8 {
            let t = u64::from(h) * 300 * SEC;
            d.observe(&echo(t, scanner, ip(100 + h)));
            d.observe(&echo_reply(t + SEC / 100, ip(100 + h), scanner));
        }
        d.finish(10_000 * SEC);
        let alerts = d.drain_alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!((a.kind, a.source), (ScanKind::Horizontal, scanner));
        assert_eq!(a.decided_by, "slow-echo-sweep");
        // Decided at the 20th host's answer, 95 minutes after the first.
        assert_eq!(a.targets, 20);
        let took = a.decided_at - a.first_seen;
        assert!((took - 19.0 * 300.0).abs() < 1.0, "{took} s");
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
    fn a_decoy_scan_whose_ttl_changes_per_probe_is_not_named_by_ttl() {
        // nmap draws a TTL per probe for all its copies: the first probe
        // seen from one source (its first copy lost, or the capture began
        // between copies) is another probe than the others', and its TTL
        // differs by chance.
        let mut d = Detector::new(DetectorConfig::default());
        let target = ip(200);
        let sources = [ip(10), ip(11), ip(12)];
        let mut t = 0;
        for (i, port) in [21u16, 22, 23, 25, 110, 139, 443, 445, 3389, 8080]
            .into_iter()
            .enumerate()
        {
            let ttl = 40 + i as u8;
            for (j, &source) in sources.iter().enumerate() {
                if i == 0 && j == 2 {
                    continue;
                }
                t += 1000;
                d.observe(&with_ttl(syn(t, source, target, port), ttl));
                d.observe(&rst(t + 1, target, source, port));
            }
        }
        let alerts = decoy_alerts(&mut d);
        assert!(!alerts.is_empty());
        assert!(
            alerts
                .iter()
                .all(|a| a.group.as_ref().unwrap().real_by != Some("ttl")),
            "{alerts:?}"
        );
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

    fn with_seq(mut e: FlowEvent, seq: u32) -> FlowEvent {
        e.traits.seq = seq;
        e
    }

    fn with_ip_id(mut e: FlowEvent, id: u16) -> FlowEvent {
        e.traits.ip_id = id;
        e
    }

    fn with_mac(mut e: FlowEvent, last: u8) -> FlowEvent {
        e.mac = Some([2, 0, 0, 0, 0, last]);
        e
    }

    /// What the zombie's capture shows of an idle scan: the scanner's
    /// SYN+ACKs to port 443, each answered by a RST whose IP ID rises by
    /// two (one for the answer itself, one for the zombie's RST to the
    /// target's SYN+ACK in between, for an open port), and the target's
    /// own packets: a SYN+ACK from each open port and a RST from each
    /// closed one, all to the port the spoofed probes came from.
    fn idle_scan_at_the_zombie(d: &mut Detector, scanner: IpAddr, zombie: IpAddr, target: IpAddr) {
        let mut ip_id = 1000u16;
        for round in 0..8u32 {
            let t = u64::from(round) * SEC;
            d.observe(&with_seq(
                ev(
                    t,
                    scanner,
                    zombie,
                    Proto::Tcp,
                    40000 + round as u16,
                    443,
                    EventKind::Accept,
                ),
                0x5eed_0000 + round,
            ));
            d.observe(&with_ip_id(
                ev(
                    t + 1000,
                    zombie,
                    scanner,
                    Proto::Tcp,
                    443,
                    40000 + round as u16,
                    EventKind::Reject,
                ),
                ip_id,
            ));
            ip_id += 2;
            let open = round % 3 == 0;
            let kind = if open {
                EventKind::Accept
            } else {
                EventKind::Reject
            };
            d.observe(&with_seq(
                ev(
                    t + 2000,
                    target,
                    zombie,
                    Proto::Tcp,
                    20 + round as u16,
                    61000,
                    kind,
                ),
                round,
            ));
        }
    }

    #[test]
    fn an_idle_scan_s_readings_of_the_zombie_name_the_real_scanner_there() {
        let mut d = Detector::new(DetectorConfig::default());
        let (scanner, zombie, target) = (ip(1), ip(50), ip(200));
        idle_scan_at_the_zombie(&mut d, scanner, zombie, target);
        d.finish(20 * SEC);
        let alerts = d.drain_alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!(a.kind, ScanKind::Idle);
        assert_eq!(a.source, scanner);
        assert_eq!(a.target, Some(zombie));
        assert_eq!(a.ports, vec![443]);
        assert_eq!(a.decided_by, "zombie-probe");
        assert_eq!(a.decision_step, 5);
        let z = a.zombie.as_ref().unwrap();
        assert_eq!((z.probes, z.answered), (5, 4), "{z:?}");
        assert_eq!(z.ip_id_steps, vec![2, 2, 2]);
        let kinds: Vec<_> = d
            .summary()
            .into_iter()
            .filter(|r| !r.kinds.is_empty())
            .map(|r| (r.source, r.kinds))
            .collect();
        assert_eq!(kinds, vec![(scanner, vec![ScanKind::Idle])]);
    }

    /// Five SYN+ACKs from `from`'s address, out of the card `mac`, to
    /// port 443 of `zombie`, each answered.
    fn readings(d: &mut Detector, from: IpAddr, zombie: IpAddr, mac: u8, t0: u64) {
        for n in 0..5u16 {
            let t = t0 + u64::from(n) * SEC / 10;
            let probe = ev(
                t,
                from,
                zombie,
                Proto::Tcp,
                40000 + n,
                443,
                EventKind::Accept,
            );
            d.observe(&with_mac(with_seq(probe, u32::from(n) + 7), mac));
            d.observe(&rst(t + 1000, zombie, from, 443));
        }
    }

    #[test]
    fn readings_spoofed_from_the_target_out_of_the_reader_s_card_name_only_the_reader() {
        let (scanner, zombie, target, router) = (ip(1), ip(50), ip(200), ip(254));
        let mut d = Detector::new(DetectorConfig::default());
        // The zombie resolves the scanner and the target to answer them.
        d.observe(&with_mac(
            ev(0, zombie, scanner, Proto::Arp, 0, 0, EventKind::Attempt),
            5,
        ));
        d.observe(&with_mac(
            ev(1000, scanner, zombie, Proto::Arp, 0, 0, EventKind::Accept),
            1,
        ));
        d.observe(&with_mac(
            ev(2000, target, zombie, Proto::Arp, 0, 0, EventKind::Accept),
            3,
        ));
        readings(&mut d, scanner, zombie, 1, SEC);
        // nmap's test of the zombie: readings claimed by the target, sent
        // from the scanner's card.
        readings(&mut d, target, zombie, 1, 2 * SEC);
        let alerts = d.drain_alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(
            (alerts[0].kind, alerts[0].source),
            (ScanKind::Idle, scanner)
        );
        // Behind a router every frame comes from its card, and the router
        // reads nothing: the scanner is named.
        let mut d = Detector::new(DetectorConfig::default());
        d.observe(&with_mac(
            ev(1000, router, zombie, Proto::Arp, 0, 0, EventKind::Accept),
            9,
        ));
        readings(&mut d, scanner, zombie, 9, SEC);
        let alerts = d.drain_alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].source, scanner);
    }

    #[test]
    fn backscatter_retransmitted_syn_acks_and_a_client_s_answers_are_no_zombie_probing() {
        let mut d = Detector::new(DetectorConfig::default());
        let (victim, us, server, client) = (ip(7), ip(50), ip(8), ip(9));
        // Backscatter: a flooded server answers SYNs spoofed with our
        // address, to random ports, each SYN+ACK sent five times.
        for n in 0..40u32 {
            for again in 0..5u64 {
                d.observe(&with_seq(
                    ev(
                        u64::from(n) * SEC + again * SEC / 8,
                        victim,
                        us,
                        Proto::Tcp,
                        80,
                        1024 + (n * 7919 % 60000) as u16,
                        EventKind::Accept,
                    ),
                    n * 1_000_003,
                ));
            }
        }
        // One SYN+ACK retransmitted many times to one port.
        for again in 0..10u64 {
            d.observe(&with_seq(
                ev(
                    100 * SEC + again * SEC,
                    server,
                    us,
                    Proto::Tcp,
                    443,
                    5555,
                    EventKind::Accept,
                ),
                42,
            ));
        }
        // Our own connections: their answers are solicited.
        for n in 0..10u16 {
            let t = 200 * SEC + u64::from(n) * SEC;
            d.observe(&ev(
                t,
                us,
                client,
                Proto::Tcp,
                50000 + n,
                22,
                EventKind::Attempt,
            ));
            d.observe(&ev(
                t + 1,
                client,
                us,
                Proto::Tcp,
                22,
                50000 + n,
                EventKind::Accept,
            ));
        }
        d.finish(300 * SEC);
        let alerts = d.drain_alerts();
        assert!(alerts.is_empty(), "{alerts:?}");
    }

    /// ARP requests from `asker` for each of `hosts`, answered by those
    /// in `live`.
    fn arp_requests(d: &mut Detector, asker: IpAddr, hosts: &[IpAddr], live: &[IpAddr], t0: u64) {
        for (i, &host) in hosts.iter().enumerate() {
            let t = t0 + i as u64 * SEC / 100;
            d.observe(&with_mac(
                ev(t, asker, host, Proto::Arp, 0, 0, EventKind::Attempt),
                1,
            ));
            if live.contains(&host) {
                d.observe(&with_mac(
                    ev(t + 1000, host, asker, Proto::Arp, 0, 0, EventKind::Accept),
                    2,
                ));
            }
        }
    }

    #[test]
    fn an_arp_sweep_of_a_sparse_segment_is_horizontal_over_arp() {
        let mut d = Detector::new(DetectorConfig::default());
        let hosts: Vec<IpAddr> = (100..160).map(ip).collect();
        arp_requests(&mut d, ip(1), &hosts, &[ip(150), ip(155)], 0);
        d.finish(10 * SEC);
        let alerts = d.drain_alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!(
            (a.kind, a.proto, a.source),
            (ScanKind::Horizontal, Proto::Arp, ip(1))
        );
        // The two answers (half a second in) are counted before the
        // silences (at the 3 s timeout): one more failure makes up for each.
        assert!(a.decision_step <= 8 && a.failures <= 6, "{a:?}");
    }

    #[test]
    fn a_host_resolving_its_gateway_and_the_peers_that_called_it_is_no_arp_sweep() {
        let mut d = Detector::new(DetectorConfig::default());
        let (host, gateway) = (ip(2), ip(254));
        // Its gateway, again and again, answered.
        for n in 0..20u64 {
            arp_requests(&mut d, host, &[gateway], &[gateway], n * 60 * SEC);
        }
        // Peers on the segment that connected to it first; it resolves
        // each to answer, and none of them answers ARP (they left).
        for n in 0..20u8 {
            let (peer, t) = (ip(100 + n), 2000 * SEC + u64::from(n) * SEC);
            d.observe(&ev(
                t,
                peer,
                host,
                Proto::Tcp,
                40000,
                22,
                EventKind::Attempt,
            ));
            d.observe(&with_mac(
                ev(t + 1, host, peer, Proto::Arp, 0, 0, EventKind::Attempt),
                1,
            ));
        }
        d.finish(3000 * SEC);
        let alerts = d.drain_alerts();
        assert!(alerts.iter().all(|a| a.source != host), "{alerts:?}");
    }

    #[test]
    fn a_scan_that_first_resolves_its_target_is_reported_over_its_own_protocol() {
        let mut d = Detector::new(DetectorConfig::default());
        let (scanner, target) = (ip(1), ip(2));
        arp_requests(&mut d, scanner, &[target], &[target], 0);
        for port in 1..=6 {
            d.observe(&syn(SEC + u64::from(port), scanner, target, port));
            d.observe(&rst(SEC + u64::from(port) + 1, target, scanner, port));
        }
        let alerts = d.drain_alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(
            (alerts[0].kind, alerts[0].proto),
            (ScanKind::Vertical, Proto::Tcp)
        );
    }

    #[test]
    fn a_decoy_scan_on_a_segment_names_the_member_arp_ties_to_the_sending_card() {
        let mut d = Detector::new(DetectorConfig::default());
        let (real, target) = (ip(10), ip(200));
        // The scanner resolves the target, and the target resolves the
        // real source to answer it (the decoys' addresses answer no one).
        arp_requests(&mut d, real, &[target], &[target], 0);
        // Every copy leaves the scanner's card; equal TTLs; every port
        // refused, so no SYN+ACK to follow up.
        let sources = [ip(11), real, ip(12), ip(13)];
        let mut t = SEC;
        for port in [21u16, 22, 23, 25, 110, 139, 443, 445, 3389] {
            for &source in &sources {
                t += 1000;
                d.observe(&with_mac(with_ttl(syn(t, source, target, port), 64), 1));
                d.observe(&with_mac(rst(t + 1, target, source, port), 2));
            }
        }
        let alerts = decoy_alerts(&mut d);
        let named = alerts
            .iter()
            .find(|a| a.group.as_ref().unwrap().real_source.is_some())
            .unwrap_or_else(|| panic!("{alerts:?}"));
        let group = named.group.as_ref().unwrap();
        assert_eq!(
            (group.real_source, group.real_by),
            (Some(real), Some("arp"))
        );
        assert_eq!(named.source, real);
        assert!(group.followed_up.is_empty());
        // A card that claims two addresses (a router answering for
        // others) names no one.
        let mut d = Detector::new(DetectorConfig::default());
        arp_requests(&mut d, real, &[target], &[target], 0);
        arp_requests(&mut d, ip(11), &[target], &[target], SEC / 2);
        for port in [21u16, 22, 23, 25, 110, 139, 443, 445, 3389] {
            for &source in &sources {
                t += 1000;
                d.observe(&with_mac(with_ttl(syn(t, source, target, port), 64), 1));
                d.observe(&with_mac(rst(t + 1, target, source, port), 2));
            }
        }
        let alerts = decoy_alerts(&mut d);
        assert!(!alerts.is_empty());
        assert!(
            alerts
                .iter()
                .all(|a| a.group.as_ref().unwrap().real_source.is_none()),
            "{alerts:?}"
        );
    }
}
