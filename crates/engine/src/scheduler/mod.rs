//! The scan scheduler: decides which probe goes next, when a probe has
//! timed out, when to retry, and what each answer means for the port.
//!
//! It is sans-IO (the quinn-proto model): the caller passes `now` and the
//! answers its transport received; the scheduler hands out [`Probe`]s to
//! send, ids of probes whose resources the transport must release, and
//! [`ScanEvent`]s. It never reads a clock, sleeps or touches a socket, so
//! tests drive it in virtual time.
//!
//! Order: hosts are visited in a keyed pseudo-random order and taken in
//! groups; within a group the (host, port) pairs are visited in a second
//! keyed order, so that probes spread across hosts and ports. Memory is
//! bounded by the group size, not by the number of targets.
//!
//! Timing: one window per host and one for the scan (see
//! [`crate::timing::Window`]), per-host round-trip estimates for
//! timeouts, a rate limiter, and nmap's adaptive retry count (a port is
//! tried at most one time more than the most tries any answered port of
//! the host needed, and never more than `max_retries + 1` times; until the
//! host has answered at all, the full `max_retries + 1`), raised to what
//! the host's measured loss calls for within `max_retries_under_loss`
//! (see `loss.rs`).
//!
//! Pacing to ICMP rate limits (UDP and IP protocol scans, see
//! [`ScanPlan::pace_to_answers`]): per (host, source address) lane, since
//! targets limit errors per destination. A silence is judged against the
//! lane's later errors and, when nothing clears it, a canary (see
//! `Lane::silence_is_its_own`); the pace to one error a second starts
//! only when errors stop coming, and with several sources each lane's
//! settled pace is verified by a canary, so that a host-wide limit is
//! found and obeyed rather than losing ports.
//!
//! Allocation: per group and per host; none per probe except amortised
//! growth of reused queues and heaps.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use portolan_targets::{Permutation, Protocol, Target, TargetList};

mod deadlines;
mod loss;
mod pacing;
#[cfg(test)]
mod tests;

use deadlines::Deadlines;
use loss::{
    CONFIDENT_TRIALS, LOSS_PROBE_EVERY, LOSS_PROBES, LOSS_SAMPLE, SWEEP_HOSTS, SWEEP_INITIAL_WINDOW,
};
use pacing::{Lane, PACED_RETRIES, SUSPECT_ROUNDS, SpentCheck};
pub use pacing::{PACING_MAX, PACING_START, UNLIMITED_ERRORS};

use crate::timing::{RateLimiter, RttEstimator, Ticks, TimingConfig, Window};
use portolan_model::{
    HostReport, HostStatus, HostTimes, PortOutcome, PortResult, PortState, Reason, Reply,
    ScanStats, WallClock,
};

/// What to scan and how.
#[derive(Debug)]
pub struct ScanPlan {
    /// The targets, with their exclusions.
    pub targets: TargetList,
    /// The ports to probe on every target, for `proto`.
    pub ports: Vec<u16>,
    /// The protocol of the ports.
    pub proto: Protocol,
    /// What silence means after every try (filtered for SYN and connect
    /// scans, open|filtered for UDP and FIN scans).
    pub silent_state: PortState,
    /// Key of the pseudo-random order (`--seed`).
    pub seed: u64,
    /// Visit hosts and ports in a keyed random order (off with `-r`).
    pub randomize: bool,
    /// Hosts scanned side by side at most; `None` picks a size from the
    /// number of ports.
    pub max_hostgroup: Option<u32>,
    /// Ports probed first on every host, before the random order (nmap
    /// moves commonly open ports to the front too): an early answer gives
    /// the host's round-trip time, and with it short timeouts, sooner.
    /// Ports not in `ports` are ignored.
    pub first_ports: Vec<u16>,
    /// Timing knobs.
    pub timing: TimingConfig,
    /// Pace each host to its answers, as nmap does for UDP: a probe that
    /// goes unanswered by a host that has answered others doubles the
    /// host's delay between probes (from [`PACING_START`] up to
    /// [`PACING_MAX`]), and its silent ports keep their tries until the
    /// pace is at its most; so a host that rate-limits its answers (Linux
    /// sends an ICMP port unreachable about once a second after a burst of
    /// six) still answers every closed port. A host whose ICMP errors come
    /// faster than any such limit lets them ([`UNLIMITED_ERRORS`] within a
    /// second: loopback, a lab host without limits, a fast BSD) is not
    /// paced: its silence is silence.
    pub pace_to_answers: bool,
    /// Source addresses the transport can send from (`-S` with a list or
    /// range; 1 otherwise). Each probe names the one it goes from
    /// ([`Probe::source`]); probes to a host rotate over them, and with
    /// `pace_to_answers` each (host, source) pair is paced on its own,
    /// since targets limit their ICMP errors per destination.
    pub sources: u8,
    /// Host discovery: the "ports" are numbers of discovery probes, the
    /// first answer proves the host up (with that answer's reason) and
    /// ends its probing, and a host that answers none is down.
    pub discovery: bool,
    /// The wall-clock time of an instant, for the times of host reports:
    /// the scan's start, so that every phase's reports agree.
    pub clock: WallClock,
}

/// Identifies one probe in flight. Transports use it as their handle
/// (for example as a poll token); a stale id is recognised and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProbeId(u64);

impl ProbeId {
    /// The id as a number, e.g. for a `mio::Token`.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Back from [`ProbeId::as_u64`].
    pub fn from_u64(v: u64) -> ProbeId {
        ProbeId(v)
    }

    /// The slot part: a small dense index that transports may use to
    /// index their own tables (always below the most probes in flight).
    pub fn slot(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }

    fn new(slot: u32, generation: u32) -> ProbeId {
        ProbeId(u64::from(generation) << 32 | u64::from(slot))
    }

    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// One probe for the transport to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Its id, to report its answer with.
    pub id: ProbeId,
    /// Where it goes.
    pub addr: IpAddr,
    /// The port probed.
    pub port: u16,
    /// The protocol.
    pub proto: Protocol,
    /// 0 for the first try, 1 for the first retransmission, ...
    pub try_no: u8,
    /// Index of the source address it goes from (see
    /// [`ScanPlan::sources`]).
    pub source: u8,
}

impl InFlight {
    /// A canary: a probe to a port that already answered with an ICMP
    /// error, sent after suspect retries to see whether the host's errors
    /// still come (see `Lane::silence_is_its_own`), or at a lane's settled
    /// pace to verify it. It resolves nothing.
    fn is_canary(&self) -> bool {
        matches!(self.how, Send::Canary(_) | Send::PaceCheck(_))
    }
}

/// How a probe is sent (see [`Scheduler::dispatch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Send {
    /// The host's pace applies to the probe after it.
    Paced,
    /// It does not (a quiet retry).
    Quiet,
    /// A canary on this lane (see [`InFlight::is_canary`]).
    Canary(u8),
    /// A canary on this lane at its settled pace (see
    /// [`Lane::verified`]).
    PaceCheck(u8),
    /// A re-probe of a port that answered, to measure the path's loss
    /// (see [`Scheduler::silent_budget`]).
    LossProbe,
}

/// What the scheduler reports, in order.
#[derive(Clone, Debug)]
pub enum ScanEvent {
    /// A port was resolved.
    Port(PortResult),
    /// A host is done; its report lists all its ports.
    HostDone(Box<HostReport>),
}

/// A try waiting in a host's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Queued {
    port: u16,
    try_no: u8,
    /// A retry of a port whose try at the settled pace went unanswered: it
    /// most likely draws no rate-limited error either, so it does not wait
    /// for the host's pace (see [`ScanPlan::pace_to_answers`]).
    quiet: bool,
    /// A retry of a host whose errors may be rate limited (see
    /// [`Lane::silence_is_its_own`]): a canary follows it, so that
    /// its silence can be told from the limit's.
    canary_after: bool,
    /// Tries of the port that went unanswered at its lane's settled pace.
    settled_silent: u8,
    /// When the port's first try went, for a retry (see
    /// [`InFlight::first_sent`]).
    first_sent: Option<Instant>,
}

impl Queued {
    fn new(port: u16, try_no: u8) -> Queued {
        Queued {
            port,
            try_no,
            quiet: false,
            canary_after: false,
            settled_silent: 0,
            first_sent: None,
        }
    }
}

/// A probe in flight, in the slab.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    host: u32,
    port: u16,
    try_no: u8,
    sent_at: Instant,
    /// When the port's first try went (`None` for a retry whose first try
    /// is not known): the windows read loss by it (see [`Window`]).
    first_sent: Option<Instant>,
    /// Order of sending over the whole scan (probes sent in the same
    /// instant still have an order).
    seq: u64,
    /// How it was sent: for a port, or as one of the probes that resolve
    /// nothing (canaries, loss probes).
    how: Send,
    /// The lane (source address) it went from.
    lane: u8,
    /// See [`Queued::settled_silent`].
    settled_silent: u8,
    generation: u32,
    live: bool,
    /// It counts against the windows (see [`Scheduler::unloads`]).
    loaded: bool,
    /// The host's other probes in flight, a list through the slab (see
    /// [`HostScan::slots`]); [`NO_SLOT`] ends it.
    host_prev: u32,
    host_next: u32,
}

/// No slot: the end of a host's list of probes in flight.
const NO_SLOT: u32 = u32::MAX;

/// The scan state of one host.
#[derive(Debug)]
struct HostScan {
    target: Target,
    /// Ports not resolved yet, including those not sent yet.
    unresolved: u32,
    /// Probes in flight.
    outstanding: u32,
    /// The first of them in the slab ([`NO_SLOT`] if none), the rest
    /// linked from it: a host's end and its early probes' recheck visit
    /// its own probes, not the whole slab (a dense ping sweep spent four
    /// fifths of its time walking the slab at each host's first answer).
    slots: u32,
    /// Of those, the ones that count against the windows (see
    /// [`Scheduler::unloads`]).
    window_load: u32,
    /// (port, try) ready to send: retries, and first tries deferred while
    /// the host's window was full.
    queue: VecDeque<Queued>,
    in_ready: bool,
    rtt: RttEstimator,
    window: Window,
    max_successful_try: u8,
    /// Ports answered, and the tries they took in all: their ratio
    /// estimates how often one try is answered (the geometric MLE).
    answered_ports: u32,
    answered_tries: u32,
    /// First tries answered, and first tries that went unanswered: see
    /// [`HostScan::spreads_retries`].
    first_answered: u32,
    first_silent: u32,
    started: Option<Instant>,
    /// The host's `--scan-delay` holds its next probe until then.
    next_allowed: Option<Instant>,
    /// The pacing of the host's ICMP errors, one lane per source address
    /// (Linux and Solaris limit errors per destination, our address).
    lanes: Vec<Lane>,
    /// The lane the next probe tries first (probes rotate over sources).
    next_lane: u8,
    /// The settled pace of every lane is [`PACING_MAX`] times this: more
    /// than 1 when the host's limit over all its errors (Linux's
    /// `icmp_msgs_per_sec`), not each source's, bounds the scan.
    pace_factor: u32,
    /// A port that answered with a rate-limited error: the canaries' port.
    error_port: Option<u16>,
    /// Retries queued with `canary_after` and not sent yet.
    suspects_queued: u32,
    /// Loss probes to this host due and not sent yet (it is kept until
    /// they are).
    loss_pending: u8,
    /// First tries the order has yet to hand out for this host.
    fresh_left: u32,
    /// Retries that wait for the host's round to end, to go together with
    /// one canary behind them (see [`Scheduler::release_held`]).
    held: Vec<Queued>,
    /// The check for an error budget spent before the scan (see
    /// [`SpentCheck`]), and the silent ports that wait for it: (port,
    /// tries so far).
    spent_check: SpentCheck,
    unsure: Vec<(u16, u8)>,
    results: Vec<PortOutcome>,
    timed_out: bool,
    reported: bool,
    /// Unique per host of the scan (slots are reused).
    serial: u64,
    /// (group number, index among its members) of the group that made
    /// it, so that its member is found without a search and marked gone
    /// when it is freed: slots are reused within a group, so a slot
    /// number alone does not tell members apart.
    member: Option<(u64, u32)>,
}

/// A group of hosts whose (host, port) pairs are being handed out.
#[derive(Debug)]
struct Group {
    /// The group's number in the scan (see [`HostScan::member`]).
    id: u64,
    hosts: Vec<Member>,
    order: PairOrder,
    next: u128,
    /// With first ports (see [`ScanPlan::first_ports`]): the members
    /// made so far, in order, each with its first ports handed out before
    /// any pair of the order.
    first_made: usize,
}

/// A host of a group.
///
/// A host's scan state (several hundred bytes) is made when the order
/// hands out its first pair, not when its group is built: in a one-port
/// sweep, a group's hosts then hold state only while their probe is in
/// flight, which is what lets a sweep's window hold tens of thousands of
/// probes in bounded memory. Hosts with ports to probe first (see
/// [`ScanPlan::first_ports`]) are made with the group, their first ports
/// queued at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Member {
    /// Not made yet: its index in the target list.
    Waiting(u128),
    /// Its slot in the scheduler's hosts.
    Host(u32),
    /// Made and freed: the slot may hold another host now (a host is
    /// freed only once the order has handed out all its pairs).
    Gone,
}

/// The order a group's (host, port) pairs are handed out in.
#[derive(Debug)]
enum PairOrder {
    /// One keyed permutation of all pairs, each host's ports spread over
    /// the whole group's (probes spread over hosts and ports).
    Spread(Permutation),
    /// Hosts in a keyed order, each host's ports together in a keyed
    /// order: for scans paced to ICMP errors, whose judgement of a silent
    /// port reads the errors to the probes sent just after it to the same
    /// host (see `Lane::silence_is_its_own`).
    ByHost {
        hosts: Permutation,
        ports: Permutation,
    },
}

impl Group {
    /// How many pairs the group hands out.
    fn len(&self) -> u128 {
        match &self.order {
            PairOrder::Spread(order) => order.len(),
            PairOrder::ByHost { hosts, ports } => hosts.len() * ports.len(),
        }
    }

    /// The `i`-th pair: (index into `hosts`, index into the ports).
    fn pair(&self, i: u128) -> (usize, usize) {
        match &self.order {
            PairOrder::Spread(order) => {
                let n = self.hosts.len() as u128;
                let j = order.apply(i);
                ((j % n) as usize, (j / n) as usize)
            }
            PairOrder::ByHost { hosts, ports } => {
                let per_host = ports.len().max(1);
                (
                    hosts.apply(i / per_host) as usize,
                    ports.apply(i % per_host) as usize,
                )
            }
        }
    }
}

/// The scheduler. See the module documentation.
#[derive(Debug)]
pub struct Scheduler {
    targets: TargetList,
    ports: Vec<u16>,
    proto: Protocol,
    silent_state: PortState,
    discovery: bool,
    pace_to_answers: bool,
    /// Lanes (source addresses) per host.
    lanes: u8,
    /// Wall-clock times of instants, for host reports.
    clock: WallClock,
    seed: u64,
    randomize: bool,
    timing: TimingConfig,
    group_size: u32,
    /// Indexes into `ports` of the ports probed first on every host.
    first: Vec<usize>,
    /// `is_first[i]`: port index `i` is in `first` (skipped by the order).
    is_first: Vec<bool>,

    host_order: Permutation,
    host_cursor: u128,
    groups_built: u64,
    group: Option<Group>,
    more_now: bool,

    hosts: Vec<Option<HostScan>>,
    free_hosts: Vec<u32>,
    active_hosts: u32,
    ready: VecDeque<u32>,
    delayed: BinaryHeap<Reverse<(Instant, u32)>>,
    queued: usize,
    /// `--host-timeout` deadlines: (deadline, host, serial), in deadline
    /// order (every host gets the same limit from its first probe on), so
    /// a queue; entries of finished hosts are dropped as they reach the
    /// front and by [`Scheduler::compact_deadlines`], so that it holds
    /// about the hosts in the scan, not every host ever scanned.
    host_deadlines: VecDeque<(Instant, u32, u64)>,
    hosts_created: u64,

    slab: Vec<InFlight>,
    free_slots: Vec<u32>,
    in_flight: u32,
    max_in_flight: u32,
    timeouts: Deadlines<Instant, (u32, u32)>,
    /// Probes in flight that count against the windows.
    window_load: u32,
    /// When a probe stops counting against the windows though it is
    /// still answered: (when, slot, generation).
    ///
    /// A try that waits the full `--min-rtt-timeout` for a late answer
    /// (a port's last, see [`Scheduler::send`]) on a host whose answers
    /// come within a fraction of that holds no place in the windows past
    /// the early timeout its round trips justify: the windows bound the
    /// probes the network and the target are handling, and this one is
    /// lost or very late. Without this, a host under 10% random loss
    /// each way with 3,000 filtered ports filled its window of 4,096 with
    /// tries waiting out 100 ms, and the scan of its 65,535 ports took
    /// 2.4 times its clean time in virtual time (1.5 times with it).
    ///
    /// In a sweep the same holds for every try to an address that has not
    /// answered, once the sweep's answers give a round trip: past what
    /// those answers take (srtt + 4·rttvar, at least
    /// `early_rtt_timeout`), it is lost or to no one. Without this each
    /// silent address held its window place for the full 100 ms, and the
    /// window, not the sending threads, bounded a sparse sweep's rate
    /// (4,096 places: 41,000 probes a second, doubling per 100 ms; the
    /// lab's sparse /16 peaked at 341,000 a second, now 447,000).
    unloads: Deadlines<Instant, (u32, u32)>,
    /// Probes given up on, for the transport to release.
    cancels: Vec<Probe>,

    window: Window,
    global_rtt: RttEstimator,
    /// The clock the windows read first tries' sending times by.
    ticks: Ticks,
    /// Ports answered over all hosts.
    global_answered: u32,
    /// Round trips observed (tries of answered ports, loss probes) and
    /// those lost, for the loss estimate of [`Scheduler::silent_budget`].
    loss_trials: u32,
    loss_failures: u32,
    /// The loss probes' own round trips and losses: a sample no answer's
    /// timing biases (see [`Scheduler::silent_budget`]).
    loss_probe_trials: u32,
    loss_probe_failures: u32,
    /// Loss probes sent, and those due (host, port, try).
    loss_probes: u32,
    loss_due: VecDeque<(u32, u16, u8)>,
    /// Many targets (at least [`SWEEP_HOSTS`]): answered ports get loss
    /// probes (see [`Scheduler::silent_budget`]).
    sweep: bool,
    /// Silent tries whose retry waits for the loss estimate: (host, its
    /// serial, port, try). The serial tells a stale entry from one of
    /// another host in the same slot: a host ended early (discovery's
    /// first answer, its host timeout) leaves its entries behind, and its
    /// slot is reused.
    parked: VecDeque<(u32, u64, u16, u8)>,
    rate: RateLimiter,
    stats: ScanStats,
    events: VecDeque<ScanEvent>,
    interrupted: bool,
    /// Probes sent so far, in order (see [`InFlight::seq`]).
    send_seq: u64,
    /// Answers this machine dropped (see [`Scheduler::on_local_drops`]).
    local_drops: u64,
    /// (host, lane) whose canary is to go next (their suspect retries are
    /// sent).
    canaries_due: VecDeque<(u32, u8)>,
    /// When to look again at a host's probes sent before its first round
    /// trip was measured: (when, host, serial, measured at).
    rechecks: BinaryHeap<Reverse<(Instant, u32, u64, Instant)>>,
}

/// (host, port) pairs handed out per group, which sets the group size.
const PAIRS_PER_GROUP: u32 = 1 << 16;
/// Largest host group.
const MAX_GROUP: u32 = 16_384;
/// Deferred first tries kept at most before the order pauses.
const MAX_QUEUED: usize = 1 << 16;
/// Host indexes examined per call while skipping excluded hosts.
const SKIP_BUDGET: u32 = 1 << 16;

impl Scheduler {
    /// A scheduler for `plan`, starting at `now`.
    pub fn new(plan: ScanPlan, now: Instant) -> Scheduler {
        let timing = plan.timing.normalized();
        let host_count = plan.targets.host_count();
        let nports = plan.ports.len().max(1) as u32;
        let auto = (PAIRS_PER_GROUP / nports).clamp(1, MAX_GROUP);
        let group_size = plan.max_hostgroup.unwrap_or(auto).max(1);
        let mut is_first = vec![false; plan.ports.len()];
        let first: Vec<usize> = plan
            .first_ports
            .iter()
            .filter_map(|p| plan.ports.iter().position(|q| q == p))
            .filter(|&i| !std::mem::replace(&mut is_first[i], true))
            .collect();
        let host_order = if plan.randomize {
            Permutation::new(host_count, plan.seed)
        } else {
            Permutation::identity(host_count)
        };
        // A sweep's silent probes each hold a place for a timeout: its
        // ceiling is its own (see `TimingConfig::sweep_parallelism`).
        let sweep = host_count >= SWEEP_HOSTS;
        let ceiling = if sweep {
            timing.sweep_parallelism
        } else {
            timing.max_parallelism
        };
        // Its probes go to different hosts, so a first burst loads no
        // target, only our own path.
        let initial = if sweep {
            timing.initial_window.max(SWEEP_INITIAL_WINDOW)
        } else {
            timing.initial_window
        };
        Scheduler {
            window: Window::new(initial, timing.min_parallelism, ceiling),
            rate: RateLimiter::new(now, timing.min_rate, timing.max_rate),
            // Tries that no longer count against the windows are still
            // in flight (see `unloads`): room for them. A sweep's stay
            // within its ceiling, as each holds a host's scan state (about
            // 600 bytes): 65,536 silent tries of 100 ms are 655,000
            // probes a second.
            max_in_flight: if sweep {
                ceiling
            } else {
                ceiling.saturating_mul(4)
            },
            targets: plan.targets,
            ports: plan.ports,
            proto: plan.proto,
            silent_state: plan.silent_state,
            discovery: plan.discovery,
            pace_to_answers: plan.pace_to_answers,
            lanes: plan.sources.max(1),
            clock: plan.clock,
            seed: plan.seed,
            randomize: plan.randomize,
            timing,
            group_size,
            first,
            is_first,
            host_order,
            host_cursor: 0,
            groups_built: 0,
            group: None,
            more_now: false,
            hosts: Vec::new(),
            free_hosts: Vec::new(),
            active_hosts: 0,
            ready: VecDeque::new(),
            delayed: BinaryHeap::new(),
            queued: 0,
            host_deadlines: VecDeque::new(),
            hosts_created: 0,
            slab: Vec::new(),
            free_slots: Vec::new(),
            in_flight: 0,
            timeouts: Deadlines::new(),
            window_load: 0,
            unloads: Deadlines::new(),
            cancels: Vec::new(),
            global_rtt: RttEstimator::default(),
            ticks: Ticks::new(now),
            global_answered: 0,
            loss_trials: 0,
            loss_failures: 0,
            loss_probe_trials: 0,
            loss_probe_failures: 0,
            loss_probes: 0,
            loss_due: VecDeque::new(),
            parked: VecDeque::new(),
            sweep,
            stats: ScanStats::default(),
            events: VecDeque::new(),
            interrupted: false,
            send_seq: 0,
            local_drops: 0,
            canaries_due: VecDeque::new(),
            rechecks: BinaryHeap::new(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &ScanStats {
        &self.stats
    }

    /// Probes in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// (host, port) pairs the scan plans at most (exclusions may make it
    /// fewer), for progress displays.
    pub fn planned_ports(&self) -> u128 {
        self.targets
            .host_count()
            .saturating_mul(self.ports.len() as u128)
    }

    /// Lowers (or raises) the most probes in flight, e.g. to what the
    /// open-file limit allows.
    pub fn set_max_in_flight(&mut self, max: u32) {
        self.max_in_flight = max.max(1);
    }

    /// The most probes in flight allowed now.
    pub fn max_in_flight(&self) -> u32 {
        self.max_in_flight
    }

    /// Whether the scan is over: every host done, or interrupted and every
    /// probe released.
    pub fn is_finished(&self) -> bool {
        let released = self.cancels.is_empty() && self.in_flight == 0;
        if self.interrupted {
            return released;
        }
        released
            && self.active_hosts == 0
            && self.group.is_none()
            && self.host_cursor >= self.host_order.len()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ScanEvent> {
        self.events.pop_front()
    }

    /// Stops the scan: no new probes; every probe in flight is cancelled
    /// (see [`Scheduler::poll_cancel`]) and every unfinished host is
    /// reported as interrupted with the ports resolved so far.
    pub fn interrupt(&mut self, now: Instant) {
        if self.interrupted {
            return;
        }
        self.interrupted = true;
        for slot in 0..self.slab.len() {
            if self.slab[slot].live {
                let probe = self.probe_in(slot as u32);
                self.release(slot as u32);
                self.cancels.push(probe);
            }
        }
        for h in 0..self.hosts.len() as u32 {
            if let Some(host) = self.hosts[h as usize].as_mut() {
                host.queue.clear();
                host.outstanding = 0;
                host.window_load = 0;
                if !host.reported {
                    self.report_host(h, HostStatus::Interrupted, now);
                }
            }
        }
        self.group = None;
        self.ready.clear();
        self.parked.clear();
        for (h, _, _) in std::mem::take(&mut self.loss_due) {
            if let Some(host) = self.hosts[h as usize].as_mut() {
                host.loss_pending = 0;
            }
            self.free_host_if_done(h);
        }
    }

    /// The earliest time at which calling the scheduler again can make
    /// progress: a timeout, a host deadline, a scan delay or rate slot.
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        if self.more_now || (!self.parked.is_empty() && self.in_flight == 0) {
            return Some(now);
        }
        let mut t: Option<Instant> = None;
        let mut consider = |x: Instant| t = Some(t.map_or(x, |t| t.min(x)));
        if let Some((d, _)) = self.timeouts.peek() {
            consider(d);
        }
        if let Some((d, _)) = self.unloads.peek() {
            consider(d);
        }
        if let Some((d, _, _)) = self.host_deadlines.front() {
            consider(*d);
        }
        if let Some(Reverse((d, ..))) = self.rechecks.peek() {
            consider(*d);
        }
        if let Some(Reverse((d, _))) = self.delayed.peek() {
            consider(*d);
        }
        if !self.interrupted {
            if let Some(d) = self.rate.min_rate_due() {
                consider(d);
            }
            if let Some(d) = self.rate.next_allowed(now) {
                consider(d);
            }
        }
        t
    }

    /// Handles timeouts and host deadlines due at `now`, and returns one
    /// probe whose transport resources must be released (its socket
    /// closed, its entry in a table of probes by target removed), as
    /// [`Scheduler::poll_probe`] gave it. Call until it returns `None`.
    pub fn poll_cancel(&mut self, now: Instant) -> Option<Probe> {
        if let Some(probe) = self.cancels.pop() {
            return Some(probe);
        }
        self.expire_hosts(now);
        self.recheck_early_probes(now);
        while let Some((due, (slot, generation))) = self.unloads.peek() {
            if due > now {
                break;
            }
            self.unloads.pop();
            let entry = self.slab[slot as usize];
            if entry.live && entry.generation == generation {
                self.unload(slot);
            }
        }
        if let Some(probe) = self.cancels.pop() {
            return Some(probe);
        }
        while let Some((deadline, (slot, generation))) = self.timeouts.peek() {
            if deadline > now {
                break;
            }
            self.timeouts.pop();
            let entry = self.slab[slot as usize];
            if !entry.live || entry.generation != generation {
                continue;
            }
            let probe = self.probe_in(slot);
            self.on_timeout(slot, now);
            return Some(probe);
        }
        None
    }

    /// The probe in live `slot`, as [`Scheduler::poll_probe`] gave it.
    fn probe_in(&self, slot: u32) -> Probe {
        let e = self.slab[slot as usize];
        let host = self.hosts[e.host as usize]
            .as_ref()
            .expect("a host is kept while it has probes in flight");
        Probe {
            id: ProbeId::new(slot, e.generation),
            addr: host.target.addr,
            port: e.port,
            proto: self.proto,
            try_no: e.try_no,
            source: e.lane,
        }
    }

    /// The next probe to send, if the windows, the rate and the order
    /// allow one now.
    pub fn poll_probe(&mut self, now: Instant) -> Option<Probe> {
        self.more_now = false;
        if self.interrupted || self.in_flight >= self.max_in_flight {
            return None;
        }
        if self.rate.next_allowed(now).is_some() {
            return None;
        }
        if let Some(probe) = self.poll_canary(now) {
            return Some(probe);
        }
        if let Some(probe) = self.poll_loss_probe(now) {
            return Some(probe);
        }
        if !self.parked.is_empty() && self.loss_trials >= CONFIDENT_TRIALS {
            self.unpark(now);
        }
        let forced = self.rate.behind_min_rate(now);
        if !forced && self.window_load >= self.window.allowed() {
            return None;
        }
        let probe = self.poll_fresh_or_queued(now, forced);
        if probe.is_none() && forced && !self.interrupted {
            self.stats.min_rate_starved += 1;
        }
        probe
    }

    /// The next retry, deferred first try or first try the order hands
    /// out, if one may go now (`forced`: past the windows, behind
    /// `--min-rate`).
    fn poll_fresh_or_queued(&mut self, now: Instant, forced: bool) -> Option<Probe> {
        while let Some(&Reverse((due, h))) = self.delayed.peek() {
            if due > now {
                break;
            }
            self.delayed.pop();
            if let Some(host) = self.hosts[h as usize].as_mut() {
                host.in_ready = false;
            }
            self.mark_ready(h);
        }
        // Retries and deferred first tries come first.
        for _ in 0..self.ready.len() {
            let Some(h) = self.ready.pop_front() else {
                break;
            };
            // A host freed since it was queued (timed out) leaves a stale
            // entry behind.
            if self.hosts[h as usize].is_none() {
                continue;
            }
            let blocked = self.host_blocked(h, now, forced);
            let host = self.hosts[h as usize].as_mut().expect("ready host is live");
            if host.queue.is_empty() || host.timed_out {
                host.in_ready = false;
                continue;
            }
            // A lane's settled pace to verify comes first, at that pace.
            if let Some(l) = host.pace_check_lane(now)
                && let Some(port) = host.canary_port(l)
            {
                let lane = &mut host.lanes[usize::from(l)];
                lane.pace_check_due = false;
                lane.canary_flying = true;
                lane.canary_port = Some(port);
                self.ready.push_back(h);
                return Some(self.send(h, Queued::new(port, 0), now, Send::PaceCheck(l)));
            }
            // Held by its pace alone: a quiet retry may go (not by a user's
            // --scan-delay, nor by a full window).
            let paced_only = matches!(blocked, Some(Some(_))) && self.timing.scan_delay.is_zero();
            if paced_only && let Some(i) = host.queue.iter().position(|q| q.quiet) {
                let next = self.take_queued(h, i);
                return Some(self.dispatch_queued(h, next, now, false));
            }
            if let Some(until) = blocked {
                // Stays marked while it waits in the delay heap.
                host.in_ready = until.is_some();
                if let Some(until) = until {
                    self.delayed.push(Reverse((until, h)));
                }
                continue;
            }
            let next = self.take_queued(h, 0);
            return Some(self.dispatch_queued(h, next, now, true));
        }
        // Then the next first tries in the order.
        while self.queued < MAX_QUEUED {
            let Some((h, port)) = self.next_fresh_pair() else {
                if !self.parked.is_empty() && self.loss_probes_settled() {
                    // No first try to hand out now (the order is done, or
                    // its groups are full), and no loss probe is still
                    // out: the waiting decisions are due.
                    self.unpark(now);
                    self.more_now = true;
                }
                return None;
            };
            match self.host_blocked(h, now, forced) {
                None => return Some(self.dispatch(h, port, 0, now, true)),
                Some(until) => {
                    let host = self.hosts[h as usize].as_mut().expect("live host");
                    host.queue.push_back(Queued::new(port, 0));
                    self.queued += 1;
                    if let Some(until) = until
                        && !host.in_ready
                    {
                        host.in_ready = true;
                        self.delayed.push(Reverse((until, h)));
                    }
                }
            }
        }
        None
    }

    /// Reports the answer to a probe. Returns false (and counts a late
    /// reply) if the probe is no longer in flight.
    pub fn on_reply(&mut self, id: ProbeId, reply: Reply, now: Instant) -> bool {
        let Some(entry) = self.live_entry(id) else {
            self.stats.late_replies += 1;
            return false;
        };
        self.release(id.slot() as u32);
        self.stats.replies += 1;
        let rtt = now.saturating_duration_since(entry.sent_at);
        let first_round_trip = self.global_rtt.srtt().is_none();
        self.global_rtt.sample(rtt);
        if first_round_trip && self.sweep {
            self.retime_unmeasured(now);
        }
        let limited_error = matches!(
            reply.reason,
            Reason::PortUnreach | Reason::ProtoUnreach | Reason::ParamProblem
        );
        if entry.how == Send::LossProbe {
            self.loss_trials = self.loss_trials.saturating_add(1);
            self.loss_probe_trials = self.loss_probe_trials.saturating_add(1);
            self.chain_loss_probe(&entry);
            self.free_host_if_done(entry.host);
            return true;
        }
        if entry.is_canary() {
            let host = self.hosts[entry.host as usize]
                .as_mut()
                .expect("canary's host is live");
            host.rtt.sample(rtt);
            let lane = &mut host.lanes[usize::from(entry.lane)];
            lane.canary_flying = false;
            lane.canary_port = None;
            if limited_error {
                lane.note_error(&entry);
                lane.count_error(now);
                lane.verified |= entry.how == Send::PaceCheck(entry.lane);
            }
            self.after_canary(entry.host);
            return true;
        }
        let aggressive = self.timing.aggressive_growth;
        let initial = self.timing.initial_rtt_timeout;
        let host = self.hosts[entry.host as usize]
            .as_mut()
            .expect("probe's host is live");
        let first_sample = host.rtt.srtt().is_none();
        host.rtt.sample(rtt);
        if first_sample && host.outstanding > 0 {
            // The probes sent before now waited for the initial timeout;
            // the measured round trip says much sooner.
            // At least the full minimum: answers generated by the target's
            // kernel (ICMP errors) come later under load than the first
            // one did, and one cut short passes for silence.
            let recheck_after =
                host.rtt
                    .timeout_with_floor(&self.timing, self.timing.min_rtt_timeout, initial);
            self.rechecks
                .push(Reverse((now + recheck_after, entry.host, host.serial, now)));
        }
        // An answer to a retransmission shows an earlier try was lost.
        let lost = entry.try_no > 0;
        if !lost {
            host.first_answered = host.first_answered.saturating_add(1);
        }
        // Loss is read in buckets of first tries by sending time (see
        // `Window`), two of the early timeouts that space retries wide
        // (srtt + 4·rttvar, at least `early_rtt_timeout`): a lost try's
        // retry and its answer come within about that.
        let early = self.timing.early_rtt_timeout;
        let width = |rtt: &RttEstimator| {
            Ticks::span(rtt.timeout_with_floor(&self.timing, early, initial) * 2)
        };
        let (host_width, global_width) = (width(&host.rtt), width(&self.global_rtt));
        let first_sent = entry.first_sent.map(|t| self.ticks.at(t));
        let at = self.ticks.at(now);
        let a = host
            .window
            .on_answer(lost, first_sent, at, host_width, aggressive);
        let b = self
            .window
            .on_answer(lost, first_sent, at, global_width, aggressive);
        if a || b {
            self.stats.window_decreases += 1;
        }
        host.max_successful_try = host.max_successful_try.max(entry.try_no);
        self.global_answered = self.global_answered.saturating_add(1);
        self.loss_trials = self.loss_trials.saturating_add(u32::from(entry.try_no) + 1);
        self.loss_failures = self.loss_failures.saturating_add(u32::from(entry.try_no));
        // A sample of the answered ports is probed once more, to measure
        // the loss (not where errors are rate limited: a probe would cost
        // the host a token).
        if self.sweep
            && !self.pace_to_answers
            && (self.global_answered <= LOSS_PROBE_EVERY || self.global_answered % LOSS_SAMPLE == 1)
            && self.loss_probes + (self.loss_due.len() as u32) < LOSS_PROBES
            && host.loss_pending < u8::MAX
        {
            host.loss_pending += 1;
            self.loss_due
                .push_back((entry.host, entry.port, entry.try_no.saturating_add(1)));
        }
        host.answered_ports = host.answered_ports.saturating_add(1);
        host.answered_tries = host
            .answered_tries
            .saturating_add(u32::from(entry.try_no) + 1);
        if self.pace_to_answers && limited_error {
            host.error_port = Some(entry.port);
            let lane = &mut host.lanes[usize::from(entry.lane)];
            lane.error_port = Some(entry.port);
            lane.note_error(&entry);
            lane.count_error(now);
            // An error to a retry of a port whose try at the settled pace
            // went unanswered: with several sources, each within its own
            // limit, the host's limit over all its errors cut it. Its
            // lanes together then go no faster than one source would
            // (within any host-wide limit of at least one error a second),
            // and the tries sent before do not count.
            let lanes = host.lanes.len() as u32;
            if entry.how == Send::Quiet && lanes > 1 && host.pace_factor < lanes {
                host.bound_host_wide(now);
                self.stats.pacing_increases += 1;
            }
        }
        let lane = &mut host.lanes[usize::from(entry.lane)];
        if self.pace_to_answers
            && !reply.reason.is_icmp_error()
            && lane.paced_at.is_some_and(|t| entry.sent_at >= t)
        {
            lane.refund_pace(&entry);
        }
        if limited_error {
            self.spent_check_answered(entry.host, &entry, now);
        }
        self.resolve(
            entry.host,
            entry.port,
            reply.state,
            reply.reason,
            reply.ttl,
            entry.try_no + 1,
            now,
        );
        if self.discovery
            && reply.reason.proves_host_up()
            && self.hosts[entry.host as usize]
                .as_ref()
                .is_some_and(|h| !h.reported)
        {
            self.end_host(entry.host, HostStatus::Up(reply.reason), now);
        }
        self.mark_ready_if_queued(entry.host);
        true
    }

    /// Reports that a probe does not apply to its host and was not sent
    /// (in discovery, a neighbour solicitation to a host off the segment,
    /// say): it is resolved at once as unanswered, with no effect on
    /// timing.
    pub fn on_skipped(&mut self, id: ProbeId, now: Instant) {
        let Some(entry) = self.unsend(id) else {
            return;
        };
        if entry.how == Send::LossProbe {
            self.free_host_if_done(entry.host);
            return;
        }
        if entry.is_canary() {
            self.canary_gone(entry.host, entry.lane);
            return;
        }
        self.resolve(
            entry.host,
            entry.port,
            self.silent_state,
            Reason::NoResponse,
            None,
            entry.try_no,
            now,
        );
        self.mark_ready_if_queued(entry.host);
    }

    /// Reports that the transport could not send a probe for lack of a
    /// local resource (file descriptors, ephemeral ports, buffers): the
    /// same try is queued again and the most probes in flight is lowered
    /// to what was in flight.
    pub fn on_not_sent(&mut self, id: ProbeId, now: Instant) {
        let Some(entry) = self.unsend(id) else {
            return;
        };
        self.max_in_flight = self.in_flight.max(1).min(self.max_in_flight);
        if entry.how == Send::LossProbe {
            self.free_host_if_done(entry.host);
            return;
        }
        if entry.is_canary() {
            self.canary_gone(entry.host, entry.lane);
            return;
        }
        let host = self.hosts[entry.host as usize].as_mut().expect("live host");
        host.queue.push_front(Queued {
            first_sent: entry.first_sent,
            ..Queued::new(entry.port, entry.try_no)
        });
        self.queued += 1;
        self.mark_ready(entry.host);
        let _ = now;
    }

    /// Takes a probe that did not go out back off the books: its slot is
    /// freed and it no longer counts as sent.
    fn unsend(&mut self, id: ProbeId) -> Option<InFlight> {
        let entry = self.live_entry(id)?;
        self.release(id.slot() as u32);
        self.stats.probes_sent -= 1;
        if entry.try_no > 0 {
            self.stats.retransmissions -= 1;
        }
        Some(entry)
    }

    fn live_entry(&self, id: ProbeId) -> Option<InFlight> {
        let entry = *self.slab.get(id.slot())?;
        (entry.live && entry.generation == id.generation()).then_some(entry)
    }

    /// Frees a slot and the counters of the probe in it.
    fn release(&mut self, slot: u32) {
        self.unload(slot);
        let entry = &mut self.slab[slot as usize];
        entry.live = false;
        entry.generation = entry.generation.wrapping_add(1);
        let (host, prev, next) = (entry.host, entry.host_prev, entry.host_next);
        self.free_slots.push(slot);
        self.in_flight -= 1;
        // Out of its host's list.
        if next != NO_SLOT {
            self.slab[next as usize].host_prev = prev;
        }
        if prev != NO_SLOT {
            self.slab[prev as usize].host_next = next;
        }
        if let Some(h) = self.hosts[host as usize].as_mut() {
            h.outstanding = h.outstanding.saturating_sub(1);
            if prev == NO_SLOT {
                debug_assert_eq!(h.slots, slot, "a host's first probe in flight");
                h.slots = next;
            }
        }
    }

    /// The probe in `slot` stops counting against the windows.
    fn unload(&mut self, slot: u32) {
        let entry = &mut self.slab[slot as usize];
        if !std::mem::replace(&mut entry.loaded, false) {
            return;
        }
        self.window_load -= 1;
        if let Some(h) = self.hosts[entry.host as usize].as_mut() {
            h.window_load = h.window_load.saturating_sub(1);
        }
    }

    fn on_timeout(&mut self, slot: u32, now: Instant) {
        let others = self.silent_budget();
        // The estimate is known once enough round trips were seen, or
        // once the order is done and no loss probe is out (their sample
        // whole; see `Scheduler::silent_budget`).
        let loss_unknown = self.loss_trials < CONFIDENT_TRIALS
            && !(self.fresh_done() && self.loss_probes_settled());
        let entry = self.slab[slot as usize];
        self.release(slot);
        let max_retries = self.timing.max_retries;
        let scanned = self.ports.len();
        let aggressive = self.timing.aggressive_growth;
        if entry.how == Send::LossProbe {
            self.loss_trials = self.loss_trials.saturating_add(1);
            self.loss_failures = self.loss_failures.saturating_add(1);
            self.loss_probe_trials = self.loss_probe_trials.saturating_add(1);
            self.loss_probe_failures = self.loss_probe_failures.saturating_add(1);
            self.chain_loss_probe(&entry);
            self.free_host_if_done(entry.host);
            return;
        }
        let host = self.hosts[entry.host as usize].as_mut().expect("live host");
        let most = host.settled_pace();
        if entry.is_canary() {
            // The host's errors to this source stopped coming: its silence
            // may be its rate limit from now on.
            let lane = &mut host.lanes[usize::from(entry.lane)];
            lane.canary_flying = false;
            lane.canary_port = None;
            if entry.how == Send::PaceCheck(entry.lane) {
                // Unanswered at the settled pace of its source: the host's
                // limit over all its errors is the bound.
                host.bound_host_wide(now);
                self.stats.pacing_increases += 1;
            } else if self.pace_to_answers && !lane.unlimited && !lane.limited {
                lane.limited = true;
                if lane.slow_down(now, most) {
                    self.stats.pacing_increases += 1;
                }
            }
            self.after_canary(entry.host);
            return;
        }
        self.window.on_silence(aggressive);
        host.window.on_silence(aggressive);
        if entry.try_no == 0 {
            host.first_silent = host.first_silent.saturating_add(1);
        }
        // Paced to its answers: silence from a host that does answer may be
        // its rate limit. Only a host that sends rate-limited errors at all
        // (port or protocol unreachables) can have them cut: behind a
        // firewall that drops, silence is silence. And only once its
        // errors stopped coming (see `silence_is_its_own`): until then a
        // silence no later error clears is retried with a canary behind.
        let lane = &host.lanes[usize::from(entry.lane)];
        // (Errors to any source: a host-wide limit may cut every error to
        // a source that has not had one yet.)
        let limit_possible = self.pace_to_answers && host.error_port.is_some() && !lane.unlimited;
        let canary_after = limit_possible && !lane.limited;
        if canary_after && !lane.silence_is_its_own(&entry) {
            let budget = host.retry_budget(&self.timing, scanned, others);
            if entry.try_no < budget.saturating_add(SUSPECT_ROUNDS) && !host.timed_out {
                host.held.push(Queued {
                    port: entry.port,
                    try_no: entry.try_no + 1,
                    quiet: false,
                    canary_after: true,
                    settled_silent: entry.settled_silent,
                    first_sent: entry.first_sent,
                });
                self.mark_ready_if_queued(entry.host);
                return;
            }
            // Canaries answered, but never in time: pace the lane.
            host.lanes[usize::from(entry.lane)].limited = true;
        }
        // Slow down, and until the pace reaches its most, keep trying (the
        // ports are not given up while the pace is off).
        let lane = &mut host.lanes[usize::from(entry.lane)];
        let pacing = limit_possible && lane.limited;
        if pacing && lane.slow_down(now, most) {
            self.stats.pacing_increases += 1;
        }
        // A try sent before the pace settled does not count against the
        // port: the answer may have been cut by the rate limit.
        // Its port starts counting its tries again as a first retry, at
        // the settled pace.
        let unsettled =
            pacing && (!lane.verified || lane.paced_at.is_none_or(|t| entry.sent_at < t));
        let mut settled_silent = entry.settled_silent;
        // A host silent so far, while the scan has too few round trips to
        // know the path's loss: its decision waits (see `park`), unless
        // no retry is allowed anyway.
        if !pacing
            && !canary_after
            && host.answered_ports == 0
            && !host.timed_out
            && loss_unknown
            && entry.try_no < max_retries
        {
            self.parked
                .push_back((entry.host, host.serial, entry.port, entry.try_no));
            return;
        }
        let retry = if unsettled {
            settled_silent = 0;
            true
        } else if pacing {
            // At the settled pace the limit lets every answer through: the
            // retries the host needed before are the limit's doing, not the
            // path's. A lost answer is then the limit's jitter or the
            // path's loss: two retries after the first try at that pace.
            settled_silent = settled_silent.saturating_add(1);
            settled_silent <= PACED_RETRIES.min(max_retries)
        } else {
            entry.try_no < host.retry_budget(&self.timing, scanned, others)
        };
        let next_try = if unsettled { 1 } else { entry.try_no + 1 };
        if retry && !host.timed_out {
            // Not past the pace once a host-wide limit showed that a
            // retry of a silent port draws an error after all.
            let quiet = pacing && !unsettled && host.pace_factor == 1;
            let retry = Queued {
                port: entry.port,
                try_no: next_try,
                quiet,
                canary_after,
                settled_silent,
                first_sent: entry.first_sent,
            };
            if canary_after {
                host.held.push(retry);
                self.mark_ready_if_queued(entry.host);
                return;
            }
            host.queue.push_back(retry);
            self.queued += 1;
            if quiet && host.in_ready {
                // The host may wait in the delay heap for its pace, which
                // a quiet retry does not wait for.
                self.ready.push_back(entry.host);
            }
            self.mark_ready(entry.host);
        } else {
            if !self.wait_for_spent_check(entry.host, entry.port, entry.try_no + 1, now) {
                let state = self.silent_state;
                self.resolve(
                    entry.host,
                    entry.port,
                    state,
                    Reason::NoResponse,
                    None,
                    entry.try_no + 1,
                    now,
                );
            }
            self.mark_ready_if_queued(entry.host);
        }
    }

    /// Probes sent to a host before its first round trip was measured
    /// wait for the initial timeout (a second at nmap's default timing).
    /// Once an answer measured it, the earlier probes are given what it
    /// calls for: a try that has a retry left times out now (its retry
    /// waits as long as any other); a last try waits the full minimum
    /// from the measurement. Once per host, and only for hosts with
    /// probes in flight then.
    fn recheck_early_probes(&mut self, now: Instant) {
        while let Some(&Reverse((due, h, serial, measured))) = self.rechecks.peek() {
            if due > now {
                break;
            }
            self.rechecks.pop();
            let Some(host) = self.hosts[h as usize].as_ref() else {
                continue;
            };
            if host.serial != serial || host.timed_out || host.outstanding == 0 {
                continue;
            }
            let others = self.silent_budget();
            let budget = host.retry_budget(&self.timing, self.ports.len(), others);
            let floor = self.timing.min_rtt_timeout;
            let last_wait = host
                .rtt
                .timeout_with_floor(&self.timing, floor, floor)
                .max(floor);
            let mut slot = host.slots;
            while slot != NO_SLOT {
                let e = self.slab[slot as usize];
                // Read before the probe's timeout unlinks it.
                let next = e.host_next;
                if e.is_canary() || e.sent_at >= measured {
                    slot = next;
                    continue;
                }
                if e.try_no >= budget {
                    self.timeouts
                        .push(measured + last_wait, (slot, e.generation));
                } else {
                    let probe = self.probe_in(slot);
                    self.on_timeout(slot, now);
                    self.cancels.push(probe);
                    // A timeout may end the host (its host timeout): its
                    // other probes are then cancelled already.
                    if self.hosts[h as usize]
                        .as_ref()
                        .is_none_or(|host| host.serial != serial || host.timed_out)
                    {
                        break;
                    }
                }
                slot = next;
            }
        }
    }

    /// A sweep's first round trip was just measured: the probes in flight
    /// to hosts that have not answered were given the initial timeout (a
    /// second at nmap's default timing), for want of any measure. They
    /// are given what the measure calls for instead, at least the full
    /// minimum from when they left, as if sent now. Without this, a sparse
    /// range's first window holds its places for a whole second, and the
    /// window, which grows as probes end, opens a second at a time. They
    /// also leave the window where a try sent now would (see `unloads`).
    /// Once, over the probes in flight.
    fn retime_unmeasured(&mut self, now: Instant) {
        let initial = self.timing.initial_rtt_timeout;
        let wait =
            self.global_rtt
                .timeout_with_floor(&self.timing, self.timing.min_rtt_timeout, initial);
        let unload = self.global_rtt.timeout_with_floor(
            &self.timing,
            self.timing.early_rtt_timeout,
            initial,
        );
        for slot in 0..self.slab.len() {
            let e = self.slab[slot];
            if !e.live || e.is_canary() || e.how == Send::LossProbe {
                continue;
            }
            let unmeasured = self.hosts[e.host as usize]
                .as_ref()
                .is_some_and(|h| h.rtt.srtt().is_none());
            if unmeasured {
                let deadline = (e.sent_at + wait).max(now);
                self.timeouts.push(deadline, (slot as u32, e.generation));
                if unload < wait {
                    let due = (e.sent_at + unload).max(now);
                    self.unloads.push(due, (slot as u32, e.generation));
                }
            }
        }
    }

    /// Gives up on hosts past `--host-timeout`.
    fn expire_hosts(&mut self, now: Instant) {
        while let Some(&(deadline, h, serial)) = self.host_deadlines.front() {
            let live = self.hosts[h as usize]
                .as_ref()
                .is_some_and(|host| host.serial == serial && !host.reported && !host.timed_out);
            if live && deadline > now {
                break;
            }
            self.host_deadlines.pop_front();
            if live {
                self.end_host(h, HostStatus::TimedOut, now);
            }
        }
    }

    /// Drops the deadlines of finished hosts once they outnumber the
    /// hosts in the scan (a long-lived host at the front keeps the queue
    /// from emptying by itself); amortised constant time per host.
    fn compact_deadlines(&mut self) {
        if self.host_deadlines.len() <= 2 * self.active_hosts as usize + 1024 {
            return;
        }
        let hosts = &self.hosts;
        self.host_deadlines.retain(|&(_, h, serial)| {
            hosts[h as usize]
                .as_ref()
                .is_some_and(|host| host.serial == serial && !host.reported && !host.timed_out)
        });
    }

    /// Ends a host before all its ports are resolved (its host timeout, or
    /// the first answer in discovery): reports it with `status`, cancels
    /// what it has in flight and drops what it has queued.
    fn end_host(&mut self, h: u32, status: HostStatus, now: Instant) {
        let host = self.hosts[h as usize].as_mut().expect("live host");
        host.timed_out = true;
        let dropped = host.queue.len();
        host.queue.clear();
        host.suspects_queued = 0;
        host.unsure.clear();
        self.queued -= dropped;
        let mut slot = host.slots;
        while slot != NO_SLOT {
            let next = self.slab[slot as usize].host_next;
            let probe = self.probe_in(slot);
            self.release(slot);
            self.cancels.push(probe);
            slot = next;
        }
        self.report_host(h, status, now);
        // Queued and in-flight ports are given up with the host; the
        // ports the order has yet to hand out are skipped as they come
        // up, and the host is freed after the last of them.
        // (Counted per host as the order hands its pairs out: a walk over
        // the group's pairs left, a keyed permutation step each, took a
        // quarter of a ping sweep's CPU, and would grow with the live
        // hosts times the group.)
        let host = self.hosts[h as usize].as_mut().expect("live host");
        host.unresolved = host.fresh_left;
        self.free_host_if_done(h);
    }

    /// Whether host `h` may not get a probe now: `None` if it may;
    /// `Some(Some(t))` if its scan delay holds it until `t`;
    /// `Some(None)` if its window is full.
    fn host_blocked(&self, h: u32, now: Instant, forced: bool) -> Option<Option<Instant>> {
        let host = self.hosts[h as usize].as_ref().expect("live host");
        if let Some(t) = host.next_allowed
            && t > now
        {
            return Some(Some(t));
        }
        if !forced && host.window_load >= host.window.allowed() {
            return Some(None);
        }
        match host.free_lane(now) {
            Some(_) => None,
            None => Some(host.lanes_free_at()),
        }
    }

    /// Takes the try at `i` off ready host `h`'s queue; the host stays
    /// in the ready queue while it has more.
    fn take_queued(&mut self, h: u32, i: usize) -> Queued {
        let host = self.hosts[h as usize].as_mut().expect("ready host is live");
        let next = host.queue.remove(i).expect("a queued try");
        if host.queue.is_empty() {
            host.in_ready = false;
        } else {
            self.ready.push_back(h);
        }
        self.queued -= 1;
        next
    }

    fn mark_ready(&mut self, h: u32) {
        if let Some(host) = self.hosts[h as usize].as_mut()
            && !host.in_ready
            && !host.queue.is_empty()
        {
            host.in_ready = true;
            self.ready.push_back(h);
        }
    }

    fn mark_ready_if_queued(&mut self, h: u32) {
        if self.hosts[h as usize].is_some() {
            self.release_held(h);
            self.start_spent_check(h);
            self.mark_ready(h);
        }
    }

    /// Sends `port`'s try `try_no` to host `h`; `paced`: the host's pace
    /// applies to the probe after it.
    fn dispatch(&mut self, h: u32, port: u16, try_no: u8, now: Instant, paced: bool) -> Probe {
        let how = if paced { Send::Paced } else { Send::Quiet };
        self.send(h, Queued::new(port, try_no), now, how)
    }

    /// Sends the try `q` to host `h`, `how`.
    fn send(&mut self, h: u32, q: Queued, now: Instant, how: Send) -> Probe {
        let Queued {
            port,
            try_no,
            settled_silent,
            first_sent,
            ..
        } = q;
        let first_sent = if try_no == 0 { Some(now) } else { first_sent };
        let paced = how == Send::Paced;
        let canary = matches!(how, Send::Canary(_) | Send::PaceCheck(_));
        let scan_delay = self.timing.scan_delay;
        let host_timeout = self.timing.host_timeout;
        let initial = self
            .global_rtt
            .timeout(&self.timing, self.timing.initial_rtt_timeout);
        let host = self.hosts[h as usize].as_mut().expect("live host");
        if host.started.is_none() {
            host.started = Some(now);
            if let Some(limit) = host_timeout {
                self.host_deadlines.push_back((now + limit, h, host.serial));
                self.compact_deadlines();
            }
        }
        let host = self.hosts[h as usize].as_mut().expect("live host");
        host.outstanding += 1;
        host.window_load += 1;
        // The lane: the canary's own; else the first free one in the
        // rotation (a quiet retry takes the rotation's next, free or not).
        let lane = match how {
            Send::Canary(l) | Send::PaceCheck(l) => l,
            _ => {
                let l = host.free_lane(now).unwrap_or(host.next_lane);
                host.next_lane = (l + 1) % host.lanes.len() as u8;
                l
            }
        };
        if !scan_delay.is_zero() && !canary {
            host.next_allowed = Some(now + scan_delay);
        }
        let pace = &mut host.lanes[usize::from(lane)];
        let paced = paced || matches!(how, Send::PaceCheck(_));
        if paced && !pace.send_delay.is_zero() {
            pace.next_allowed = Some(now + pace.send_delay);
        }
        // Each retransmission waits twice as long as the try before it
        // (as TCP backs off), which spreads a port's tries over time: a
        // target that rate-limits its answers then answers one of them.
        // Not on a host that answers most first tries (see
        // `HostScan::spreads_retries`): its silences are the path's
        // random loss, and spread tries only make the scan's tail.
        // Tries that another try will follow start from what the round
        // trips justify; the last try waits at least the full
        // --min-rtt-timeout, so a slow answer is not lost for good.
        let others = self.silent_budget();
        let host = self.hosts[h as usize].as_mut().expect("live host");
        // A canary waits as long as a last try: its silence slows the
        // host down to one probe a second, so a late answer (a loaded
        // machine, a slow path) must not pass for one.
        let last_try =
            canary || try_no >= host.retry_budget(&self.timing, self.ports.len(), others);
        // Scans paced to ICMP errors wait the full minimum from the first
        // try: a target's kernel sends its errors later than its first
        // answers came when many probes arrive at once, and an error that
        // comes after its probe gave up reads as silence, which costs the
        // host a canary and perhaps its pace.
        let floor = if self.pace_to_answers {
            self.timing.min_rtt_timeout
        } else {
            self.timing.early_rtt_timeout
        };
        let base = host.rtt.timeout_with_floor(&self.timing, floor, initial);
        // The doubling stops at the full minimum (or the round-trip based
        // timeout, when that is longer), so a silent port never costs
        // more per try than nmap's timing would.
        let cap = base.max(self.timing.min_rtt_timeout);
        let spread = host.spreads_retries(self.pace_to_answers);
        let timeout = if last_try {
            cap
        } else if spread {
            base.saturating_mul(1 << try_no.min(10)).min(cap)
        } else {
            base
        };
        // A last try's full wait holds no window place past `base` on a
        // host that answers most first tries (see `Scheduler::unloads`).
        // In a sweep, a try to an address that never answered holds one
        // only as long as the sweep's answers take to come.
        let unload_after = if self.sweep && host.rtt.srtt().is_none() && !canary {
            let global = &self.global_rtt;
            global
                .srtt()
                .map(|_| {
                    global.timeout_with_floor(&self.timing, self.timing.early_rtt_timeout, initial)
                })
                .filter(|&u| u < timeout)
        } else {
            (last_try && !spread && !canary && timeout > base).then_some(base)
        };
        let addr = host.target.addr;
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.slab.push(InFlight {
                    host: h,
                    port,
                    try_no,
                    sent_at: now,
                    first_sent: None,
                    seq: 0,
                    how: Send::Paced,
                    lane: 0,
                    settled_silent: 0,
                    generation: 0,
                    live: false,
                    loaded: false,
                    host_prev: NO_SLOT,
                    host_next: NO_SLOT,
                });
                (self.slab.len() - 1) as u32
            }
        };
        let entry = &mut self.slab[slot as usize];
        self.send_seq += 1;
        *entry = InFlight {
            host: h,
            port,
            try_no,
            sent_at: now,
            first_sent,
            seq: self.send_seq,
            how,
            lane,
            settled_silent,
            generation: entry.generation,
            live: true,
            loaded: true,
            host_prev: NO_SLOT,
            host_next: host.slots,
        };
        let generation = entry.generation;
        let id = ProbeId::new(slot, generation);
        let next = std::mem::replace(&mut host.slots, slot);
        if next != NO_SLOT {
            self.slab[next as usize].host_prev = slot;
        }
        self.timeouts.push(now + timeout, (slot, generation));
        if let Some(early) = unload_after {
            self.unloads.push(now + early, (slot, generation));
        }
        self.in_flight += 1;
        self.window_load += 1;
        self.stats.probes_sent += 1;
        if try_no > 0 && how != Send::LossProbe {
            self.stats.retransmissions += 1;
        }
        self.rate.on_sent(now);
        Probe {
            id,
            addr,
            port,
            proto: self.proto,
            try_no,
            source: lane,
        }
    }

    /// The next (host, port) pair in the order, building host groups as
    /// needed.
    fn next_fresh_pair(&mut self) -> Option<(u32, u16)> {
        loop {
            if let Some(group) = self.group.as_mut() {
                if !self.first.is_empty() && group.first_made < group.hosts.len() {
                    // Host by host, its first ports: the first goes now,
                    // the others wait in its queue.
                    let local = group.first_made;
                    group.first_made += 1;
                    let Some(h) = self.member_host(local) else {
                        continue;
                    };
                    let host = self.hosts[h as usize].as_mut().expect("member is live");
                    for &i in &self.first[1..] {
                        host.queue.push_back(Queued::new(self.ports[i], 0));
                    }
                    self.queued += self.first.len() - 1;
                    self.mark_ready(h);
                    return Some((h, self.ports[self.first[0]]));
                }
                if group.next < group.len() {
                    let (local, index) = group.pair(group.next);
                    group.next += 1;
                    if self.is_first[index] {
                        // Handed out when the host was made.
                        continue;
                    }
                    let Some(h) = self.member_host(local) else {
                        continue;
                    };
                    let port = self.ports[index];
                    let host = self.hosts[h as usize].as_mut().expect("group host is live");
                    host.fresh_left = host.fresh_left.saturating_sub(1);
                    if host.timed_out {
                        host.unresolved -= 1;
                        self.free_host_if_done(h);
                        continue;
                    }
                    return Some((h, port));
                }
                self.group = None;
            }
            if self.host_cursor >= self.host_order.len() || self.ports.is_empty() {
                self.host_cursor = self.host_order.len();
                return None;
            }
            if self.active_hosts >= self.group_size.saturating_mul(4) {
                return None;
            }
            self.build_group();
            if self.group.is_none() && self.host_cursor < self.host_order.len() {
                // Skipped a long run of excluded hosts: come back soon.
                self.more_now = true;
                return None;
            }
        }
    }

    /// The slot of the current group's `local`-th member, made now if it
    /// is still waiting (see [`Member`]).
    fn member_host(&mut self, local: usize) -> Option<u32> {
        let group = self.group.as_ref().expect("a current group");
        let id = group.id;
        let index = match group.hosts[local] {
            Member::Host(h) => return Some(h),
            Member::Gone => return None,
            Member::Waiting(index) => index,
        };
        let target = self.targets.host_at(index)?;
        let h = self.new_host(target);
        if let Some(host) = self.hosts[h as usize].as_mut() {
            host.member = Some((id, local as u32));
        }
        if let Some(group) = self.group.as_mut() {
            group.hosts[local] = Member::Host(h);
        }
        Some(h)
    }

    fn build_group(&mut self) {
        let mut members = Vec::new();
        let mut examined = 0;
        let total = self.host_order.len();
        while self.host_cursor < total
            && (members.len() as u32) < self.group_size
            && examined < SKIP_BUDGET
        {
            let index = self.host_order.apply(self.host_cursor);
            self.host_cursor += 1;
            examined += 1;
            // Made when its first probe comes (see `Member`).
            if self.targets.host_at(index).is_some() {
                members.push(Member::Waiting(index));
            }
        }
        if members.is_empty() {
            return;
        }
        let pairs = members.len() as u128 * self.ports.len() as u128;
        let key = self.seed ^ self.groups_built.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.groups_built += 1;
        let keyed = |len: u128, key: u64| {
            if self.randomize {
                Permutation::new(len, key)
            } else {
                Permutation::identity(len)
            }
        };
        let order = if self.pace_to_answers {
            PairOrder::ByHost {
                hosts: keyed(members.len() as u128, key),
                ports: keyed(self.ports.len() as u128, key.rotate_left(17)),
            }
        } else {
            PairOrder::Spread(keyed(pairs, key))
        };
        self.group = Some(Group {
            id: self.groups_built - 1,
            hosts: members,
            order,
            next: 0,
            first_made: 0,
        });
    }

    fn new_host(&mut self, target: Target) -> u32 {
        let t = &self.timing;
        let host = HostScan {
            target,
            unresolved: self.ports.len() as u32,
            outstanding: 0,
            slots: NO_SLOT,
            window_load: 0,
            queue: VecDeque::new(),
            in_ready: false,
            rtt: RttEstimator::default(),
            window: Window::new(t.initial_window, t.min_parallelism, t.max_parallelism),
            max_successful_try: 0,
            answered_ports: 0,
            answered_tries: 0,
            first_answered: 0,
            first_silent: 0,
            started: None,
            next_allowed: None,
            lanes: (0..self.lanes)
                .map(|_| Lane {
                    // One source: its pace is its own limit's.
                    verified: self.lanes == 1,
                    ..Lane::default()
                })
                .collect(),
            next_lane: 0,
            pace_factor: 1,
            error_port: None,
            suspects_queued: 0,
            loss_pending: 0,
            fresh_left: (self.ports.len() - self.first.len()) as u32,
            held: Vec::new(),
            spent_check: SpentCheck::Idle,
            unsure: Vec::new(),
            results: Vec::new(),
            timed_out: false,
            reported: false,
            serial: self.hosts_created,
            member: None,
        };
        self.hosts_created += 1;
        self.active_hosts += 1;
        match self.free_hosts.pop() {
            Some(h) => {
                self.hosts[h as usize] = Some(host);
                h
            }
            None => {
                self.hosts.push(Some(host));
                (self.hosts.len() - 1) as u32
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn resolve(
        &mut self,
        h: u32,
        port: u16,
        state: PortState,
        reason: Reason,
        ttl: Option<u8>,
        tries: u8,
        now: Instant,
    ) {
        let proto = self.proto;
        let host = self.hosts[h as usize].as_mut().expect("live host");
        if host.reported {
            return;
        }
        let outcome = PortOutcome {
            port,
            proto,
            state,
            reason,
            reason_ttl: ttl,
            tries,
        };
        host.results.push(outcome);
        host.unresolved -= 1;
        let addr = host.target.addr;
        let done = host.unresolved == 0;
        self.stats.ports_done += 1;
        self.stats.ports_by_state[state.index()] += 1;
        self.events
            .push_back(ScanEvent::Port(PortResult { addr, outcome }));
        if done {
            // In discovery the host is up if its last probe was answered
            // (an earlier answer would have ended it already).
            let host = self.hosts[h as usize].as_ref().expect("live host");
            let answer = host
                .results
                .iter()
                .find(|p| p.reason.proves_host_up())
                .map(|p| p.reason);
            let status = if self.discovery {
                answer.map_or(HostStatus::Down, HostStatus::Up)
            } else {
                HostStatus::Up(Reason::UserSet)
            };
            self.report_host(h, status, now);
            self.free_host_if_done(h);
        }
    }

    fn report_host(&mut self, h: u32, status: HostStatus, now: Instant) {
        let fallback_timeout = self
            .global_rtt
            .timeout(&self.timing, self.timing.initial_rtt_timeout);
        let host = self.hosts[h as usize].as_mut().expect("live host");
        host.reported = true;
        let pace_factor = host.pace_factor;
        let mut ports = std::mem::take(&mut host.results);
        if status == HostStatus::TimedOut {
            ports.clear();
        }
        ports.sort_unstable_by_key(|p| p.port);
        let reason_ttl = if self.discovery {
            ports
                .iter()
                .find(|p| p.reason.proves_host_up())
                .and_then(|p| p.reason_ttl)
        } else {
            None
        };
        let report = HostReport {
            target: host.target.clone(),
            status,
            reason_ttl,
            mac: None,
            ports,
            times: HostTimes {
                srtt: host.rtt.srtt(),
                rttvar: host.rtt.rttvar(),
                timeout: host.rtt.timeout(&self.timing, fallback_timeout),
                paced: host
                    .lanes
                    .iter()
                    .map(|l| l.most_paced)
                    .max()
                    .filter(|d| !d.is_zero()),
            },
            started: self.clock.at(host.started.unwrap_or(now)),
            finished: self.clock.at(now),
            services: Vec::new(),
            extra: Default::default(),
        };
        self.stats.hosts_done += 1;
        self.stats.hosts_paced += u64::from(report.times.paced.is_some());
        self.stats.hosts_paced_globally += u64::from(pace_factor > 1);
        if matches!(status, HostStatus::Up(_)) {
            self.stats.hosts_up += 1;
        }
        self.events.push_back(ScanEvent::HostDone(Box::new(report)));
    }

    fn free_host_if_done(&mut self, h: u32) {
        let Some(host) = self.hosts[h as usize].as_ref() else {
            return;
        };
        if host.reported && host.unresolved == 0 && host.outstanding == 0 && host.loss_pending == 0
        {
            if let Some((id, local)) = host.member
                && let Some(group) = self.group.as_mut()
                && group.id == id
            {
                group.hosts[local as usize] = Member::Gone;
            }
            self.hosts[h as usize] = None;
            self.free_hosts.push(h);
            self.active_hosts -= 1;
        }
    }
}
