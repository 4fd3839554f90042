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
//! host has answered at all, the full `max_retries + 1`).
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
use std::time::{Duration, Instant};

use portolan_targets::{Permutation, Protocol, Target, TargetList};

use crate::timing::{RateLimiter, RttEstimator, TimingConfig, Window};
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
    /// A canary on this lane (see [`InFlight::canary`]).
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
}

impl Queued {
    fn new(port: u16, try_no: u8) -> Queued {
        Queued {
            port,
            try_no,
            quiet: false,
            canary_after: false,
            settled_silent: 0,
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
}

/// The scan state of one host.
#[derive(Debug)]
struct HostScan {
    target: Target,
    /// Ports not resolved yet, including those not sent yet.
    unresolved: u32,
    /// Probes in flight.
    outstanding: u32,
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
    results: Vec<PortOutcome>,
    timed_out: bool,
    reported: bool,
    /// Unique per host of the scan (slots are reused).
    serial: u64,
}

/// How one source address's probes to a host are paced to the host's
/// ICMP errors (see [`ScanPlan::pace_to_answers`]).
#[derive(Debug, Default)]
struct Lane {
    /// The pace holds the lane's next probe until then.
    next_allowed: Option<Instant>,
    /// The lane's delay between probes.
    send_delay: Duration,
    /// When that delay reached its most.
    paced_at: Option<Instant>,
    /// The longest that delay was, for the report.
    most_paced: Duration,
    /// The ICMP errors counted in the current one-second window, and when
    /// it began; once they reach [`UNLIMITED_ERRORS`], `unlimited` is set.
    errors_in_window: u32,
    error_window_start: Option<Instant>,
    /// The host's errors to this source are not rate limited: not paced.
    unlimited: bool,
    /// They stopped coming (a canary went unanswered): silence may be the
    /// rate limit, so the lane is paced.
    limited: bool,
    /// (send time, send order) of the latest probes that drew a rate
    /// limited ICMP error, oldest first, at most [`ERROR_SENDS_KEPT`].
    error_sends: VecDeque<(Instant, u64)>,
    /// A canary is to follow the suspect retries being sent on this lane.
    canary_wanted: bool,
    /// A canary is in flight on this lane, to this port.
    canary_flying: bool,
    canary_port: Option<u16>,
    /// A port that answered a rate-limited error on this lane.
    error_port: Option<u16>,
    /// The settled pace is known to let every error through: a canary
    /// sent at that pace was answered. Until then (with several sources
    /// only), silence at the settled pace does not count against a port.
    verified: bool,
    /// A canary is to go at the settled pace, to verify it.
    pace_check_due: bool,
}

impl Lane {
    /// At the settled pace each probe waits for the token a rate-limited
    /// ICMP error would cost; a probe answered otherwise (a UDP answer)
    /// cost none, so the next one need not wait for it. Only when no probe
    /// went out since (the wait is still that probe's). Silence is no such
    /// proof: the answer may have been cut for want of a token.
    fn refund_pace(&mut self, entry: &InFlight) {
        if self.next_allowed == Some(entry.sent_at + self.send_delay) {
            self.next_allowed = None;
        }
    }

    /// Whether the lane may send now.
    fn free(&self, now: Instant) -> bool {
        self.next_allowed.is_none_or(|t| t <= now)
    }

    /// Whether the silence of a probe was the port's own, not the host's
    /// rate limit on ICMP errors: a probe sent after it from the same
    /// source, within [`CLEAR_GAP`], drew an error.
    ///
    /// The model: a target limits its errors with a token bucket per
    /// destination (Linux: six, one more a second; Solaris: two a second).
    /// Tokens only grow with time, so if a probe was cut for want of a
    /// token, a probe sent just after it is cut too, unless a token came
    /// in between (within 10 ms, about one chance in a hundred for Linux's
    /// pace, and every silent port gets at least two such tries). A later
    /// error therefore shows the bucket was not empty: the earlier silence
    /// was a dropped probe or a silent open port. Ports whose silence
    /// nothing clears are suspects: their retries are followed by a canary
    /// (a probe to a port that answered an error before), and only when
    /// the canary too goes unanswered is the lane paced. So a short list
    /// whose closed ports all fit in the burst is never paced.
    fn silence_is_its_own(&self, entry: &InFlight) -> bool {
        self.error_sends
            .iter()
            .rev()
            .take_while(|&&(_, seq)| seq > entry.seq)
            .any(|&(at, _)| at <= entry.sent_at + CLEAR_GAP)
    }

    /// Doubles the lane's delay between probes towards `most`, the
    /// settled pace; false if it is there already.
    fn slow_down(&mut self, now: Instant, most: Duration) -> bool {
        if self.send_delay >= most {
            return false;
        }
        self.send_delay = (self.send_delay * 2).clamp(PACING_START, most);
        self.most_paced = self.most_paced.max(self.send_delay);
        if self.send_delay == most {
            self.settle(now, most);
        }
        true
    }

    /// The pace reached `most` at `now`: tries sent before do not count
    /// against their ports (the limit may have cut their answers).
    fn settle(&mut self, now: Instant, most: Duration) {
        self.pace_check_due = !self.verified;
        self.send_delay = most;
        self.most_paced = self.most_paced.max(most);
        self.paced_at = Some(now);
        // The limit's bucket may be empty now: the first probe at the
        // settled pace waits a whole interval too.
        self.next_allowed = Some(now + most);
    }

    /// Notes that the probe in `entry` drew a rate-limited ICMP error.
    fn note_error(&mut self, entry: &InFlight) {
        let at = self
            .error_sends
            .iter()
            .rposition(|&(_, seq)| seq < entry.seq)
            .map_or(0, |i| i + 1);
        self.error_sends.insert(at, (entry.sent_at, entry.seq));
        if self.error_sends.len() > ERROR_SENDS_KEPT {
            self.error_sends.pop_front();
        }
    }

    /// Counts an ICMP error to this source; enough of them within a
    /// second show the host does not rate-limit them, and end the pacing.
    fn count_error(&mut self, now: Instant) {
        let start = *self.error_window_start.get_or_insert(now);
        if now.saturating_duration_since(start) > Duration::from_secs(1) {
            self.error_window_start = Some(now);
            self.errors_in_window = 0;
        }
        self.errors_in_window += 1;
        if self.errors_in_window >= UNLIMITED_ERRORS && !self.unlimited {
            self.unlimited = true;
            self.send_delay = Duration::ZERO;
            self.paced_at = None;
            self.next_allowed = None;
        }
    }
}

impl HostScan {
    /// The host's limit over all its errors, not each source's, cut
    /// errors at the lanes' settled pace: together they go no faster than
    /// one source would (within any host-wide limit of at least one error
    /// a second), and the tries sent before now do not count.
    fn bound_host_wide(&mut self, now: Instant) {
        self.pace_factor = self.lanes.len() as u32;
        let most = self.settled_pace();
        // Staggered, so that the lanes' probes come one at a time, each a
        // share of the pace after the one before.
        let count = self.lanes.len() as u32;
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            if lane.unlimited {
                continue;
            }
            lane.verified = true;
            lane.limited = true;
            lane.settle(now, most);
            lane.next_allowed = Some(now + most * (i as u32 + 1) / count);
        }
    }

    /// The port a canary on lane `l` goes to: one that answered an error,
    /// the lane's own first, and none that another canary in flight is
    /// probing (answers are matched by target and port).
    fn canary_port(&self, l: u8) -> Option<u16> {
        let flying = |port: u16| self.lanes.iter().any(|x| x.canary_port == Some(port));
        std::iter::once(self.lanes[usize::from(l)].error_port)
            .chain(self.lanes.iter().map(|x| x.error_port))
            .chain(std::iter::once(self.error_port))
            .flatten()
            .find(|&port| !flying(port))
    }

    /// A lane whose settled pace is to be verified now, if any.
    fn pace_check_lane(&self, now: Instant) -> Option<u8> {
        self.lanes
            .iter()
            .position(|l| l.pace_check_due && !l.canary_flying && l.free(now))
            .map(|l| l as u8)
    }

    /// The settled pace of each lane.
    fn settled_pace(&self) -> Duration {
        PACING_MAX * self.pace_factor
    }

    /// The first lane free to send now, from the rotation's next.
    fn free_lane(&self, now: Instant) -> Option<u8> {
        let n = self.lanes.len();
        (0..n)
            .map(|i| (usize::from(self.next_lane) + i) % n)
            .find(|&l| self.lanes[l].free(now))
            .map(|l| l as u8)
    }

    /// When the first lane becomes free again.
    fn lanes_free_at(&self) -> Option<Instant> {
        self.lanes.iter().filter_map(|l| l.next_allowed).min()
    }

    /// Retransmissions a port of this host gets at most now: nmap's
    /// adaptive rule (one more than the most any answered port needed),
    /// raised to what the measured loss calls for, within `max_retries`.
    /// Before the host has answered at all, silence may be the path
    /// warming up (ARP or neighbour discovery dropping the first packets),
    /// so the full budget applies.
    fn retry_budget(&self, max_retries: u8, scanned: usize, others: Option<u8>) -> u8 {
        if self.answered_ports == 0 {
            // Other hosts of the scan answered: this one's silence is
            // more likely absence than a path warming up (a sweep of
            // mostly empty space); it gets what they needed, as nmap's
            // group-wide count.
            return others.map_or(max_retries, |o| o.min(max_retries));
        }
        let adaptive = self
            .max_successful_try
            .saturating_add(1)
            .max(retries_for_loss(
                self.answered_ports,
                self.answered_tries,
                scanned,
            ));
        max_retries.min(adaptive)
    }
}

/// A group of hosts whose (host, port) pairs are being handed out.
#[derive(Debug)]
struct Group {
    hosts: Vec<u32>,
    order: PairOrder,
    next: u128,
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
    timeouts: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    cancels: Vec<ProbeId>,

    window: Window,
    global_rtt: RttEstimator,
    /// Ports answered over all hosts.
    global_answered: u32,
    /// Round trips observed (tries of answered ports, loss probes) and
    /// those lost, for the loss estimate of [`Scheduler::silent_budget`].
    loss_trials: u32,
    loss_failures: u32,
    /// Loss probes sent, and those due (host, port, try).
    loss_probes: u32,
    loss_due: VecDeque<(u32, u16, u8)>,
    /// Many targets (at least [`SWEEP_HOSTS`]): answered ports get loss
    /// probes (see [`Scheduler::silent_budget`]).
    sweep: bool,
    /// Silent tries whose retry waits for the loss estimate: (host, port,
    /// try).
    parked: VecDeque<(u32, u16, u8)>,
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

/// The chance of losing any answerable port of a host to random loss
/// that the retry count aims below.
const LOST_PORT_CHANCE: f64 = 1e-2;

/// Retransmissions needed so that, of a host's `scanned` ports, any that
/// would answer is lost with a chance below [`LOST_PORT_CHANCE`], given
/// that `ports` answered ports took `tries` tries in all.
///
/// The chance that one try is lost is estimated with a weak prior of
/// [`PRIOR_LOST`] lost and answered tries, (tries - ports + p) /
/// (tries + 2p): a host with few answers yet gets a few more retries, one
/// that answered many ports at the first try gets nmap's minimum, and one
/// whose answers needed retransmissions gets what its loss calls for.
fn retries_for_loss(ports: u32, tries: u32, scanned: usize) -> u8 {
    let tries = tries.max(ports);
    let lost = (f64::from(tries - ports) + PRIOR_LOST) / (f64::from(tries) + 2.0 * PRIOR_LOST);
    let per_port = (LOST_PORT_CHANCE / scanned.max(1) as f64).max(1e-12);
    let needed = (per_port.ln() / lost.ln()).ceil();
    (needed - 1.0).clamp(0.0, 50.0) as u8
}

/// Pseudo-counts of one lost and one answered try that the loss estimates
/// start from (a weak prior: a tenth of a try each).
const PRIOR_LOST: f64 = 0.1;

/// The first delay between probes to a host paced to its answers.
pub const PACING_START: Duration = Duration::from_millis(25);
/// The longest: a little over a second, Linux's pace for ICMP errors,
/// so that its token bucket has refilled when each probe arrives.
pub const PACING_MAX: Duration = Duration::from_millis(1050);

/// Answers from the scan's hosts before a silent host's budget follows
/// the measured loss (see [`Scheduler::silent_budget`]).
const OTHERS_ANSWERED: u32 = 16;
/// The chance a silent address's tries may leave of missing it if it is
/// live: its tries are enough to bring a live host's every try being lost
/// below this.
const SILENT_MISS: f64 = 1e-3;
/// Retries a silent address gets at least once this machine lost answers
/// (see [`Scheduler::on_local_drops`]), whatever the estimate says: loss
/// that comes in bursts (the receive ring overflowing at a high rate)
/// hits a sweep's first tries more than the answered ports and loss
/// probes that measure it, and one try then loses live hosts (a lab /16
/// sweep lost 3,039 of 65,536 with one try each, when the ring was 2 MiB
/// and filled; with 8 MiB it no longer does, and one try found them all).
/// Measured loss raises it.
const RETRIES_AFTER_LOCAL_DROPS: u8 = 2;

/// Round trips observed before the tries of silent hosts are decided as
/// they time out: until then (and while the order has first tries to
/// hand out), their decision waits, so that a sweep's first silent
/// addresses do not get the budget of a loss nobody measured yet.
const CONFIDENT_TRIALS: u32 = 1000;
/// Targets from which a scan is a sweep, whose answered ports get loss
/// probes (smaller scans' hosts answer for themselves).
const SWEEP_HOSTS: u128 = 256;
/// One answered port in this many gets a loss probe...
const LOSS_SAMPLE: u32 = 4;
/// ... up to this many in a scan (a loss estimate needs a few hundred
/// round trips, not more).
const LOSS_PROBES: u32 = 1024;

/// Retries a port of a paced host gets at least once the pace settled.
const PACED_RETRIES: u8 = 2;

/// How soon after a silent probe a probe that drew an ICMP error must have
/// been sent to show the silence was the port's own (see
/// [`HostScan::silence_is_its_own`]).
const CLEAR_GAP: Duration = Duration::from_millis(10);

/// Error-drawing probes remembered per host for that: enough to cover the
/// probes of one round-trip timeout at a host's most parallel.
const ERROR_SENDS_KEPT: usize = 64;

/// Tries a suspect port gets beyond its retry budget before its host is
/// treated as rate-limited (when canaries keep being answered too late).
const SUSPECT_ROUNDS: u8 = 2;

/// ICMP errors (port or protocol unreachable) a host sends within one
/// second that show it does not limit them to the pace
/// [`ScanPlan::pace_to_answers`] guards against: Linux lets a burst of six
/// through, then one a second; Solaris two a second.
pub const UNLIMITED_ERRORS: u32 = 20;

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
        Scheduler {
            window: Window::new(timing.initial_window, timing.min_parallelism, ceiling),
            rate: RateLimiter::new(now, timing.min_rate, timing.max_rate),
            max_in_flight: ceiling,
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
            timeouts: BinaryHeap::new(),
            cancels: Vec::new(),
            global_rtt: RttEstimator::default(),
            global_answered: 0,
            loss_trials: 0,
            loss_failures: 0,
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
                let id = ProbeId::new(slot as u32, self.slab[slot].generation);
                self.release(slot as u32);
                self.cancels.push(id);
            }
        }
        for h in 0..self.hosts.len() as u32 {
            if let Some(host) = self.hosts[h as usize].as_mut() {
                host.queue.clear();
                host.outstanding = 0;
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
        if let Some(Reverse((d, _, _))) = self.timeouts.peek() {
            consider(*d);
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
    /// closed). Call until it returns `None`.
    pub fn poll_cancel(&mut self, now: Instant) -> Option<ProbeId> {
        if let Some(id) = self.cancels.pop() {
            return Some(id);
        }
        self.expire_hosts(now);
        self.recheck_early_probes(now);
        if let Some(id) = self.cancels.pop() {
            return Some(id);
        }
        while let Some(&Reverse((deadline, slot, generation))) = self.timeouts.peek() {
            if deadline > now {
                break;
            }
            self.timeouts.pop();
            let entry = self.slab[slot as usize];
            if !entry.live || entry.generation != generation {
                continue;
            }
            self.on_timeout(slot, now);
            return Some(ProbeId::new(slot, generation));
        }
        None
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
        if !forced && self.in_flight >= self.window.allowed() {
            return None;
        }
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
                let next = host.queue.remove(i).expect("found");
                if host.queue.is_empty() {
                    host.in_ready = false;
                } else {
                    self.ready.push_back(h);
                }
                self.queued -= 1;
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
            let next = host.queue.pop_front().expect("queue is not empty");
            if host.queue.is_empty() {
                host.in_ready = false;
            } else {
                self.ready.push_back(h);
            }
            self.queued -= 1;
            return Some(self.dispatch_queued(h, next, now, true));
        }
        // Then the next first tries in the order.
        while self.queued < MAX_QUEUED {
            let Some((h, port)) = self.next_fresh_pair() else {
                if !self.parked.is_empty() {
                    // No first try to hand out now (the order is done, or
                    // its groups are full): the waiting decisions are due.
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
        self.global_rtt.sample(rtt);
        let limited_error = matches!(
            reply.reason,
            Reason::PortUnreach | Reason::ProtoUnreach | Reason::ParamProblem
        );
        if entry.how == Send::LossProbe {
            self.loss_trials = self.loss_trials.saturating_add(1);
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
        let global_timeout = self.global_rtt.timeout(&self.timing, initial);
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
            let early =
                host.rtt
                    .timeout_with_floor(&self.timing, self.timing.min_rtt_timeout, initial);
            self.rechecks
                .push(Reverse((now + early, entry.host, host.serial, now)));
        }
        let host_timeout = host.rtt.timeout(&self.timing, global_timeout);
        // An answer to a retransmission shows an earlier try was lost.
        let lost = entry.try_no > 0;
        let a = host.window.on_answer(lost, now, host_timeout, aggressive);
        let b = self.window.on_answer(lost, now, global_timeout, aggressive);
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
            && self.global_answered % LOSS_SAMPLE == 1
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
        host.queue.push_front(Queued::new(entry.port, entry.try_no));
        self.queued += 1;
        self.mark_ready(entry.host);
        let _ = now;
    }

    /// The retries a host that has not answered yet gets once enough
    /// other hosts have: what the measured loss calls for.
    ///
    /// The model (issue 18): in a sweep most addresses never answer, so
    /// their silence says nothing about loss; the answers do. Each round
    /// trip to a port that answered is a trial: the tries an answered port
    /// needed beyond its first were lost, and one answered port in
    /// [`LOSS_SAMPLE`] is probed once more (a loss probe, resolving
    /// nothing), whose silence is a loss. With `p` the estimated chance
    /// that a round trip is lost ((lost + 0.1) / (trials + 0.2)), a silent
    /// address gets the fewest tries `k` with `p^k` below [`SILENT_MISS`]:
    /// with 10% lost each way (`p` near 0.19), five; on a clean link,
    /// one; never fewer than [`RETRIES_AFTER_LOCAL_DROPS`] retries once
    /// this machine dropped answers. Until
    /// [`OTHERS_ANSWERED`] ports answered, a silent host keeps the full
    /// budget (its silence may be the path warming up).
    fn silent_budget(&self) -> Option<u8> {
        (self.global_answered >= OTHERS_ANSWERED).then(|| {
            let lost = (f64::from(self.loss_failures) + PRIOR_LOST)
                / (f64::from(self.loss_trials) + 2.0 * PRIOR_LOST);
            let tries = (SILENT_MISS.ln() / lost.ln()).ceil().clamp(1.0, 51.0);
            let floor = if self.local_drops > 0 {
                RETRIES_AFTER_LOCAL_DROPS
            } else {
                0
            };
            ((tries - 1.0) as u8).max(floor)
        })
    }

    /// Reports answers this machine lost before they could be read (the
    /// kernel's receive ring was full: `PACKET_STATISTICS`). Such loss
    /// comes in bursts the loss estimate does not see, so from now on a
    /// silent address gets at least [`RETRIES_AFTER_LOCAL_DROPS`]
    /// retries. The transport reads the counter often enough (every
    /// few tens of milliseconds) that a drop is known before the probe
    /// whose answer it was times out.
    pub fn on_local_drops(&mut self, dropped: u64) {
        self.local_drops = self.local_drops.saturating_add(dropped);
    }

    /// Whether the order has handed out its last first try.
    fn fresh_done(&self) -> bool {
        self.host_cursor >= self.host_order.len()
            && self.group.as_ref().is_none_or(|g| g.next >= g.len())
    }

    /// Decides the tries that waited for the loss estimate (see
    /// [`CONFIDENT_TRIALS`]): each gets a retry if its host's budget
    /// allows one now, or is resolved as silent.
    fn unpark(&mut self, now: Instant) {
        let others = self.silent_budget();
        let max_retries = self.timing.max_retries;
        let scanned = self.ports.len();
        while let Some((h, port, try_no)) = self.parked.pop_front() {
            let Some(host) = self.hosts[h as usize].as_mut() else {
                continue;
            };
            if host.reported || host.timed_out {
                continue;
            }
            if try_no < host.retry_budget(max_retries, scanned, others) {
                host.queue.push_back(Queued::new(port, try_no + 1));
                self.queued += 1;
                self.mark_ready(h);
            } else {
                let state = self.silent_state;
                self.resolve(h, port, state, Reason::NoResponse, None, try_no + 1, now);
                self.mark_ready_if_queued(h);
            }
        }
    }

    /// A loss probe due, sent past the windows.
    fn poll_loss_probe(&mut self, now: Instant) -> Option<Probe> {
        while let Some((h, port, try_no)) = self.loss_due.pop_front() {
            let Some(host) = self.hosts[h as usize].as_mut() else {
                continue;
            };
            host.loss_pending = host.loss_pending.saturating_sub(1);
            if self.interrupted {
                self.free_host_if_done(h);
                continue;
            }
            self.loss_probes += 1;
            return Some(self.send(h, Queued::new(port, try_no), now, Send::LossProbe));
        }
        None
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

    /// Sends a try taken off host `h`'s queue. After the last retry
    /// queued with `canary_after`, the canaries of the lanes they went on
    /// are due.
    fn dispatch_queued(&mut self, h: u32, next: Queued, now: Instant, paced: bool) -> Probe {
        let how = if paced { Send::Paced } else { Send::Quiet };
        let probe = self.send(h, next, now, how);
        if next.canary_after {
            let host = self.hosts[h as usize].as_mut().expect("live host");
            host.lanes[usize::from(probe.source)].canary_wanted = true;
            host.suspects_queued -= 1;
            if host.suspects_queued == 0 {
                for (l, lane) in host.lanes.iter_mut().enumerate() {
                    if std::mem::take(&mut lane.canary_wanted) && !lane.canary_flying {
                        self.canaries_due.push_back((h, l as u8));
                    }
                }
            }
        }
        probe
    }

    /// A canary due, sent past the windows (one per lane at a time).
    fn poll_canary(&mut self, now: Instant) -> Option<Probe> {
        while let Some((h, l)) = self.canaries_due.pop_front() {
            let Some(host) = self.hosts[h as usize].as_mut() else {
                continue;
            };
            let Some(port) = host.canary_port(l) else {
                continue;
            };
            let timed_out = host.timed_out;
            let lane = &mut host.lanes[usize::from(l)];
            if lane.canary_flying || timed_out || lane.limited || lane.unlimited {
                continue;
            }
            lane.canary_flying = true;
            lane.canary_port = Some(port);
            return Some(self.send(h, Queued::new(port, 0), now, Send::Canary(l)));
        }
        None
    }

    /// Sends host `h`'s held retries once its round is over (every first
    /// try handed out and nothing of it in flight or queued): all of them
    /// together, with one canary behind them, so that a short list spends
    /// one error of the target's burst on canaries per round, however the
    /// windows spread its probes.
    fn release_held(&mut self, h: u32) {
        let Some(host) = self.hosts[h as usize].as_mut() else {
            return;
        };
        if host.held.is_empty()
            || host.fresh_left > 0
            || host.outstanding > 0
            || !host.queue.is_empty()
            || host.timed_out
        {
            return;
        }
        let held = std::mem::take(&mut host.held);
        self.queued += held.len();
        host.suspects_queued += held.len() as u32;
        host.queue.extend(held);
        self.mark_ready(h);
    }

    /// A canary ended (answered, timed out or not sent).
    fn after_canary(&mut self, h: u32) {
        self.release_held(h);
        self.mark_ready_if_queued(h);
        self.free_host_if_done(h);
    }

    fn canary_gone(&mut self, h: u32, lane: u8) {
        if let Some(host) = self.hosts[h as usize].as_mut() {
            let lane = &mut host.lanes[usize::from(lane)];
            lane.canary_flying = false;
            lane.canary_port = None;
        }
        self.after_canary(h);
    }

    fn live_entry(&self, id: ProbeId) -> Option<InFlight> {
        let entry = *self.slab.get(id.slot())?;
        (entry.live && entry.generation == id.generation()).then_some(entry)
    }

    /// Frees a slot and the counters of the probe in it.
    fn release(&mut self, slot: u32) {
        let entry = &mut self.slab[slot as usize];
        entry.live = false;
        entry.generation = entry.generation.wrapping_add(1);
        let host = entry.host;
        self.free_slots.push(slot);
        self.in_flight -= 1;
        if let Some(h) = self.hosts[host as usize].as_mut() {
            h.outstanding = h.outstanding.saturating_sub(1);
        }
    }

    fn on_timeout(&mut self, slot: u32, now: Instant) {
        let others = self.silent_budget();
        let loss_unknown = self.loss_trials < CONFIDENT_TRIALS && !self.fresh_done();
        let entry = self.slab[slot as usize];
        self.release(slot);
        let max_retries = self.timing.max_retries;
        let scanned = self.ports.len();
        let aggressive = self.timing.aggressive_growth;
        if entry.how == Send::LossProbe {
            self.loss_trials = self.loss_trials.saturating_add(1);
            self.loss_failures = self.loss_failures.saturating_add(1);
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
            let budget = host.retry_budget(max_retries, scanned, others);
            if entry.try_no < budget.saturating_add(SUSPECT_ROUNDS) && !host.timed_out {
                host.held.push(Queued {
                    port: entry.port,
                    try_no: entry.try_no + 1,
                    quiet: false,
                    canary_after: true,
                    settled_silent: entry.settled_silent,
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
        // know the path's loss: its decision waits (see `park`).
        if !pacing && !canary_after && host.answered_ports == 0 && !host.timed_out && loss_unknown {
            self.parked
                .push_back((entry.host, entry.port, entry.try_no));
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
            entry.try_no < host.retry_budget(max_retries, scanned, others)
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
            let budget = host.retry_budget(self.timing.max_retries, self.ports.len(), others);
            let floor = self.timing.min_rtt_timeout;
            let last_wait = host
                .rtt
                .timeout_with_floor(&self.timing, floor, floor)
                .max(floor);
            for slot in 0..self.slab.len() {
                let e = self.slab[slot];
                if !e.live || e.host != h || e.is_canary() || e.sent_at >= measured {
                    continue;
                }
                if e.try_no >= budget {
                    self.timeouts
                        .push(Reverse((measured + last_wait, slot as u32, e.generation)));
                } else {
                    self.on_timeout(slot as u32, now);
                    self.cancels.push(ProbeId::new(slot as u32, e.generation));
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
        self.queued -= dropped;
        for slot in 0..self.slab.len() {
            let e = self.slab[slot];
            if e.live && e.host == h {
                self.release(slot as u32);
                self.cancels.push(ProbeId::new(slot as u32, e.generation));
            }
        }
        self.report_host(h, status, now);
        // Queued and in-flight ports are given up with the host; the
        // ports the order has yet to hand out are skipped as they come
        // up, and the host is freed after the last of them.
        let left = self.pairs_left_for(h);
        self.hosts[h as usize]
            .as_mut()
            .expect("live host")
            .unresolved = left;
        self.free_host_if_done(h);
    }

    /// How many first tries the current group has yet to hand out for
    /// host `h`.
    fn pairs_left_for(&self, h: u32) -> u32 {
        let Some(group) = &self.group else {
            return 0;
        };
        let Some(local) = group.hosts.iter().position(|&x| x == h) else {
            return 0;
        };
        let mut left = 0;
        for i in group.next..group.len() {
            let (host, index) = group.pair(i);
            if host == local && !self.is_first[index] {
                left += 1;
            }
        }
        left
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
        if !forced && host.outstanding >= host.window.allowed() {
            return Some(None);
        }
        match host.free_lane(now) {
            Some(_) => None,
            None => Some(host.lanes_free_at()),
        }
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
            ..
        } = q;
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
        // Tries that another try will follow start from what the round
        // trips justify; the last try waits at least the full
        // --min-rtt-timeout, so a slow answer is not lost for good.
        let others = self.silent_budget();
        let host = self.hosts[h as usize].as_mut().expect("live host");
        // A canary waits as long as a last try: its silence slows the
        // host down to one probe a second, so a late answer (a loaded
        // machine, a slow path) must not pass for one.
        let last_try = canary
            || try_no >= host.retry_budget(self.timing.max_retries, self.ports.len(), others);
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
        let timeout = if last_try {
            cap
        } else {
            base.saturating_mul(1 << try_no.min(10)).min(cap)
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
                    seq: 0,
                    how: Send::Paced,
                    lane: 0,
                    settled_silent: 0,
                    generation: 0,
                    live: false,
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
            seq: self.send_seq,
            how,
            lane,
            settled_silent,
            generation: entry.generation,
            live: true,
        };
        let id = ProbeId::new(slot, entry.generation);
        self.timeouts
            .push(Reverse((now + timeout, slot, entry.generation)));
        self.in_flight += 1;
        self.stats.probes_sent += 1;
        if try_no > 0 && how != Send::LossProbe {
            self.stats.retransmissions += 1;
        }
        self.rate.on_sent();
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
                if group.next < group.len() {
                    let (local, index) = group.pair(group.next);
                    group.next += 1;
                    let h = group.hosts[local];
                    if self.is_first[index] {
                        // Queued when the host was created.
                        continue;
                    }
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
            if self.group.is_some() && !self.first.is_empty() {
                // The new hosts' first ports are queued: serve them before
                // the random order.
                self.more_now = true;
                return None;
            }
        }
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
            if let Some(target) = self.targets.host_at(index) {
                let h = self.new_host(target);
                let host = self.hosts[h as usize].as_mut().expect("new host");
                for &i in &self.first {
                    host.queue.push_back(Queued::new(self.ports[i], 0));
                }
                self.queued += self.first.len();
                self.mark_ready(h);
                members.push(h);
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
            hosts: members,
            order,
            next: 0,
        });
    }

    fn new_host(&mut self, target: Target) -> u32 {
        let t = &self.timing;
        let host = HostScan {
            target,
            unresolved: self.ports.len() as u32,
            outstanding: 0,
            queue: VecDeque::new(),
            in_ready: false,
            rtt: RttEstimator::default(),
            window: Window::new(t.initial_window, t.min_parallelism, t.max_parallelism),
            max_successful_try: 0,
            answered_ports: 0,
            answered_tries: 0,
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
            results: Vec::new(),
            timed_out: false,
            reported: false,
            serial: self.hosts_created,
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
            self.hosts[h as usize] = None;
            self.free_hosts.push(h);
            self.active_hosts -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::TimingTemplate;
    use portolan_targets::SystemResolver;
    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::time::Duration;

    fn plan(
        targets: &[&str],
        excludes: &[&str],
        ports: Vec<u16>,
        timing: TimingConfig,
    ) -> ScanPlan {
        let t: Vec<String> = targets.iter().map(|s| s.to_string()).collect();
        let x: Vec<String> = excludes.iter().map(|s| s.to_string()).collect();
        ScanPlan {
            targets: TargetList::parse(&t, &x, &SystemResolver).unwrap(),
            ports,
            proto: Protocol::Tcp,
            silent_state: PortState::Filtered,
            seed: 7,
            randomize: true,
            max_hostgroup: None,
            first_ports: Vec::new(),
            timing,
            discovery: false,
            pace_to_answers: false,
            sources: 1,
            clock: WallClock::now(),
        }
    }

    fn fast() -> TimingConfig {
        TimingConfig::from_template(TimingTemplate::Aggressive)
    }

    /// What a simulated run produced.
    struct Run {
        ports: BTreeMap<(IpAddr, u16), PortOutcome>,
        hosts: Vec<HostReport>,
        probes: Vec<(Instant, Probe)>,
        stats: ScanStats,
        elapsed: Duration,
    }

    /// Runs a scan in virtual time against a simulated network that
    /// answers a probe with `Some((reply, delay))` or drops it.
    fn simulate(
        plan: ScanPlan,
        mut network: impl FnMut(&Probe) -> Option<(Reply, Duration)>,
        interrupt_at: Option<Instant>,
    ) -> Run {
        simulate_full(plan, |p, _| network(p), interrupt_at)
    }

    fn simulate_with_clock(
        plan: ScanPlan,
        network: impl FnMut(&Probe, Instant) -> Option<(Reply, Duration)>,
    ) -> Run {
        simulate_full(plan, network, None)
    }

    fn simulate_full(
        plan: ScanPlan,
        network: impl FnMut(&Probe, Instant) -> Option<(Reply, Duration)>,
        interrupt_at: Option<Instant>,
    ) -> Run {
        let t0 = Instant::now();
        simulate_scheduler(Scheduler::new(plan, t0), t0, network, interrupt_at)
    }

    /// Runs `s`, made at `t0`, against `network` in virtual time.
    fn simulate_scheduler(
        mut s: Scheduler,
        t0: Instant,
        mut network: impl FnMut(&Probe, Instant) -> Option<(Reply, Duration)>,
        mut interrupt_at: Option<Instant>,
    ) -> Run {
        let mut now = t0;
        let mut pending: BinaryHeap<Reverse<(Instant, u64, PortState, Reason)>> = BinaryHeap::new();
        let mut flying: HashMap<(IpAddr, u16), ProbeId> = HashMap::new();
        let mut flying_ids: HashMap<u64, (IpAddr, u16)> = HashMap::new();
        let mut run = Run {
            ports: BTreeMap::new(),
            hosts: Vec::new(),
            probes: Vec::new(),
            stats: ScanStats::default(),
            elapsed: Duration::ZERO,
        };
        for _ in 0..10_000_000 {
            if interrupt_at.is_some_and(|t| now >= t) {
                s.interrupt(now);
                interrupt_at = None;
            }
            while let Some(id) = s.poll_cancel(now) {
                if let Some(key) = flying_ids.remove(&id.as_u64()) {
                    flying.remove(&key);
                }
            }
            while let Some(p) = s.poll_probe(now) {
                run.probes.push((now, p));
                // Transports match answers by target and port: two probes
                // in flight to the same port could not be told apart.
                let before = flying.insert((p.addr, p.port), p.id);
                assert!(before.is_none(), "two probes in flight to one port: {p:?}");
                flying_ids.insert(p.id.as_u64(), (p.addr, p.port));
                if let Some((reply, delay)) = network(&p, now) {
                    pending.push(Reverse((
                        now + delay,
                        p.id.as_u64(),
                        reply.state,
                        reply.reason,
                    )));
                }
            }
            while let Some(e) = s.poll_event() {
                match e {
                    ScanEvent::Port(r) => {
                        let dup = run.ports.insert((r.addr, r.outcome.port), r.outcome);
                        assert!(dup.is_none(), "port reported twice: {r:?}");
                    }
                    ScanEvent::HostDone(h) => run.hosts.push(*h),
                }
            }
            if s.is_finished() {
                run.stats = *s.stats();
                run.elapsed = now - t0;
                return run;
            }
            let next_reply = pending.peek().map(|Reverse((t, ..))| *t);
            let next = [next_reply, s.next_wakeup(now), interrupt_at]
                .into_iter()
                .flatten()
                .min()
                .expect("the scheduler stalled with nothing to wait for");
            now = now.max(next);
            while let Some(Reverse((t, id, state, reason))) = pending.peek().copied() {
                if t > now {
                    break;
                }
                pending.pop();
                if let Some(key) = flying_ids.remove(&id) {
                    flying.remove(&key);
                }
                s.on_reply(
                    ProbeId::from_u64(id),
                    Reply {
                        state,
                        reason,
                        ttl: None,
                    },
                    now,
                );
            }
        }
        panic!("simulation did not finish");
    }

    /// A reply proving `state` with `reason`, arriving after `delay`.
    fn reply_in(state: PortState, reason: Reason, delay: Duration) -> (Reply, Duration) {
        (
            Reply {
                state,
                reason,
                ttl: None,
            },
            delay,
        )
    }

    fn answer(state: PortState, reason: Reason) -> Option<(Reply, Duration)> {
        Some((
            Reply {
                state,
                reason,
                ttl: None,
            },
            Duration::from_micros(200),
        ))
    }

    #[test]
    fn every_pair_is_resolved_once_with_its_evidence() {
        let run = simulate(
            plan(&["198.18.0.1-4"], &[], (1..=300).collect(), fast()),
            |p| {
                if p.port % 50 == 0 {
                    answer(PortState::Open, Reason::SynAck)
                } else if p.port > 280 {
                    None
                } else {
                    answer(PortState::Closed, Reason::ConnRefused)
                }
            },
            None,
        );
        assert_eq!(run.ports.len(), 4 * 300);
        assert_eq!(run.hosts.len(), 4);
        for ((_, port), o) in &run.ports {
            let expected = if port % 50 == 0 {
                (PortState::Open, Reason::SynAck, 1)
            } else if *port > 280 {
                // Tried once more than the most any answered port needed.
                (PortState::Filtered, Reason::NoResponse, 2)
            } else {
                (PortState::Closed, Reason::ConnRefused, 1)
            };
            assert_eq!((o.state, o.reason, o.tries), expected, "port {port}");
        }
        for h in &run.hosts {
            assert_eq!(h.ports.len(), 300);
            assert!(h.ports.windows(2).all(|w| w[0].port < w[1].port));
            assert_eq!(h.status, HostStatus::Up(Reason::UserSet));
            assert!(h.times.srtt.is_some());
        }
        assert_eq!(run.stats.ports_by_state[PortState::Open.index()], 4 * 6);
        assert_eq!(run.stats.retransmissions, 4 * 19);
        assert_eq!(run.stats.window_decreases, 0);
    }

    #[test]
    fn lost_first_tries_are_recovered_and_slow_the_window() {
        // Every port's first try is lost once for ports divisible by 7.
        let mut seen: HashSet<(IpAddr, u16)> = HashSet::new();
        let run = simulate(
            plan(&["198.18.0.1"], &[], (1..=1000).collect(), fast()),
            |p| {
                if p.port % 7 == 0 && seen.insert((p.addr, p.port)) {
                    None
                } else {
                    answer(PortState::Closed, Reason::ConnRefused)
                }
            },
            None,
        );
        assert!(run.ports.values().all(|o| o.state == PortState::Closed));
        assert!(
            run.ports
                .iter()
                .all(|((_, p), o)| o.tries == if p % 7 == 0 { 2 } else { 1 })
        );
        assert!(run.stats.window_decreases >= 1);
    }

    #[test]
    fn early_tries_wait_briefly_and_the_last_try_waits_the_minimum() {
        // Round trips of 200 us, except port 7, whose answers take 50 ms.
        let run = simulate(
            plan(&["198.18.0.1"], &[], (1..=1000).collect(), fast()),
            |p| match p.port {
                7 => Some(reply_in(
                    PortState::Open,
                    Reason::SynAck,
                    Duration::from_millis(50),
                )),
                500..=599 => None,
                _ => answer(PortState::Closed, Reason::Reset),
            },
            None,
        );
        let slow = run.ports[&("198.18.0.1".parse().unwrap(), 7)];
        assert_eq!(slow.state, PortState::Open, "the slow answer is not lost");
        // A dropped port: its retry follows its first try after the short
        // floor, and the last try is given the full minimum.
        let sends: Vec<Instant> = run
            .probes
            .iter()
            .filter(|(_, p)| p.port == 550)
            .map(|(t, _)| *t)
            .collect();
        assert!(sends.len() >= 2);
        let first_gap = sends[1] - sends[0];
        assert!(
            first_gap >= Duration::from_millis(10) && first_gap < Duration::from_millis(100),
            "{first_gap:?}"
        );
        let done = run.elapsed;
        assert!(done >= *sends.last().unwrap() - sends[0] + Duration::from_millis(100));
    }

    #[test]
    fn retries_follow_the_measured_loss() {
        // One port scanned, 1e-2: nothing known, one try in two may be
        // lost, so 7 tries.
        assert_eq!(retries_for_loss(0, 0, 1), 6);
        // Ten ports answered at the first try: a little cautious.
        assert_eq!(retries_for_loss(10, 10, 1), 0);
        assert_eq!(retries_for_loss(10, 10, 1000), 2);
        // Three of a thousand answered at once (a firewalled host).
        assert_eq!(retries_for_loss(3, 3, 1000), 3);
        // A thousand at the first try, of a thousand: nmap's two tries.
        assert_eq!(retries_for_loss(1000, 1000, 1000), 1);
        // One try in ten lost, 1000 ports: 1e-5 per port, 6 tries.
        assert_eq!(retries_for_loss(900, 1000, 1000), 5);
        // Half lost, 1000 ports: 17 tries.
        assert_eq!(retries_for_loss(500, 1000, 1000), 16);
    }

    #[test]
    fn random_loss_loses_no_port() {
        // 30% loss each way: about half of all tries go unanswered.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut t = fast();
        t.max_retries = 20;
        let run = simulate(
            plan(&["198.18.0.1"], &[], (1..=3000).collect(), t),
            |p| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x % 100 < 51 {
                    None
                } else if p.port % 100 == 0 {
                    answer(PortState::Open, Reason::SynAck)
                } else {
                    answer(PortState::Closed, Reason::Reset)
                }
            },
            None,
        );
        let filtered: Vec<_> = run
            .ports
            .values()
            .filter(|o| o.state == PortState::Filtered)
            .collect();
        assert!(
            filtered.is_empty(),
            "ports lost to random loss: {filtered:?}"
        );
        assert_eq!(run.stats.ports_by_state[PortState::Open.index()], 30);
    }

    #[test]
    fn host_timeout_with_queued_work_does_not_crash() {
        // Regression: a timed-out host freed while still listed as ready.
        let mut t = fast();
        t.host_timeout = Some(Duration::from_secs(1));
        t.max_parallelism = 100;
        let silent: IpAddr = "198.18.0.1".parse().unwrap();
        let run = simulate(
            plan(&["198.18.0.1", "198.18.0.2"], &[], (1..=2000).collect(), t),
            |p| {
                (p.addr != silent)
                    .then(|| reply_in(PortState::Closed, Reason::Reset, Duration::from_millis(1)))
            },
            None,
        );
        assert_eq!(run.hosts.len(), 2);
        let live = run.hosts.iter().find(|h| h.target.addr != silent).unwrap();
        let dead = run.hosts.iter().find(|h| h.target.addr == silent).unwrap();
        assert_eq!(dead.status, HostStatus::TimedOut);
        assert_eq!(live.status, HostStatus::Up(Reason::UserSet));
        assert_eq!(live.ports.len(), 2000);
    }

    #[test]
    fn a_path_that_warms_up_loses_no_port() {
        // Neighbour discovery drops every packet of the first 1.5 s: ports
        // probed then must not be given up after two tries.
        let mut first_sent: Option<Instant> = None;
        let run = simulate_with_clock(
            plan(&["198.18.0.1"], &[], (1..=2000).collect(), fast()),
            |p, now| {
                let t0 = *first_sent.get_or_insert(now);
                if now.duration_since(t0) < Duration::from_millis(1500) {
                    None
                } else if p.port == 22 {
                    answer(PortState::Open, Reason::SynAck)
                } else {
                    answer(PortState::Closed, Reason::Reset)
                }
            },
        );
        assert_eq!(run.ports.len(), 2000);
        let filtered: Vec<_> = run
            .ports
            .iter()
            .filter(|(_, o)| o.state == PortState::Filtered)
            .collect();
        assert!(filtered.is_empty(), "{} ports lost", filtered.len());
        assert_eq!(
            run.ports[&("198.18.0.1".parse().unwrap(), 22)].state,
            PortState::Open
        );
    }

    #[test]
    fn order_is_keyed_spread_and_reproducible() {
        let order = |seed| {
            let mut p = plan(&["198.18.0.0/30"], &[], (1..=64).collect(), fast());
            p.seed = seed;
            let run = simulate(p, |_| answer(PortState::Closed, Reason::ConnRefused), None);
            run.probes
                .iter()
                .map(|(_, p)| (p.addr, p.port))
                .collect::<Vec<_>>()
        };
        let a = order(1);
        assert_eq!(a.len(), 4 * 64);
        assert_eq!(a, order(1));
        assert_ne!(a, order(2));
        let distinct: HashSet<_> = a.iter().collect();
        assert_eq!(distinct.len(), a.len());
        // Spread: the first 16 probes do not all go to one host.
        let hosts: HashSet<_> = a[..16].iter().map(|(h, _)| h).collect();
        assert!(hosts.len() > 1);
        // Not sequential ports.
        assert!(a.windows(2).any(|w| w[1].1 != w[0].1 + 1));
    }

    #[test]
    fn first_ports_go_first_on_every_host_and_only_once() {
        let mut p = plan(
            &["198.18.0.1", "198.18.0.2"],
            &[],
            (1..=500).collect(),
            fast(),
        );
        p.first_ports = vec![443, 80, 9999, 80];
        let run = simulate(p, |_| answer(PortState::Closed, Reason::Reset), None);
        assert_eq!(run.ports.len(), 1000);
        for host in ["198.18.0.1", "198.18.0.2"] {
            let addr: IpAddr = host.parse().unwrap();
            let order: Vec<u16> = run
                .probes
                .iter()
                .filter(|(_, p)| p.addr == addr)
                .map(|(_, p)| p.port)
                .collect();
            assert_eq!(order.len(), 500, "each port once");
            assert_eq!(&order[..2], &[443, 80]);
        }
    }

    #[test]
    fn no_randomize_scans_in_order() {
        let mut p = plan(&["198.18.0.1"], &[], (1..=20).collect(), fast());
        p.randomize = false;
        let run = simulate(p, |_| answer(PortState::Closed, Reason::ConnRefused), None);
        let ports: Vec<u16> = run.probes.iter().map(|(_, p)| p.port).collect();
        assert_eq!(ports, (1..=20).collect::<Vec<_>>());
    }

    #[test]
    fn excluded_hosts_are_never_probed() {
        let run = simulate(
            plan(
                &["198.18.0.0/28"],
                &["198.18.0.0/30", "198.18.0.9"],
                vec![80],
                fast(),
            ),
            |_| answer(PortState::Open, Reason::SynAck),
            None,
        );
        let hosts: HashSet<IpAddr> = run.probes.iter().map(|(_, p)| p.addr).collect();
        assert_eq!(hosts.len(), 16 - 5);
        assert!(!hosts.contains(&"198.18.0.9".parse::<IpAddr>().unwrap()));
    }

    #[test]
    fn silent_host_is_given_up_after_host_timeout() {
        let mut t = fast();
        t.host_timeout = Some(Duration::from_millis(500));
        let run = simulate(
            plan(&["198.18.0.1", "198.18.0.2"], &[], (1..=20000).collect(), t),
            |p| {
                if p.addr == "198.18.0.1".parse::<IpAddr>().unwrap() {
                    None
                } else {
                    answer(PortState::Closed, Reason::ConnRefused)
                }
            },
            None,
        );
        let by_addr: HashMap<IpAddr, &HostReport> =
            run.hosts.iter().map(|h| (h.target.addr, h)).collect();
        let dead = by_addr[&"198.18.0.1".parse::<IpAddr>().unwrap()];
        assert_eq!(dead.status, HostStatus::TimedOut);
        assert!(dead.ports.is_empty());
        let live = by_addr[&"198.18.0.2".parse::<IpAddr>().unwrap()];
        assert_eq!(live.ports.len(), 20000);
        assert!(run.elapsed < Duration::from_secs(60));
    }

    #[test]
    fn silent_host_speeds_up_instead_of_one_window_per_timeout() {
        // 3000 dropped ports, two tries each: with a fixed window of 10 per
        // 100 ms timeout this would take 60 s of virtual time.
        let run = simulate(
            plan(&["198.18.0.1"], &[], (40000..=42999).collect(), fast()),
            |_| None,
            None,
        );
        assert_eq!(run.stats.ports_by_state[PortState::Filtered.index()], 3000);
        assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
    }

    #[test]
    fn interrupt_reports_partial_hosts_and_finishes() {
        let t0_plus = Instant::now() + Duration::from_millis(150);
        let run = simulate(
            plan(&["198.18.0.1"], &[], (1..=2000).collect(), fast()),
            |p| {
                (p.port % 3 == 0)
                    .then(|| reply_in(PortState::Open, Reason::SynAck, Duration::from_millis(1)))
            },
            Some(t0_plus),
        );
        assert_eq!(run.hosts.len(), 1);
        assert_eq!(run.hosts[0].status, HostStatus::Interrupted);
        assert!(run.hosts[0].ports.len() < 2000);
    }

    #[test]
    fn max_rate_paces_probes() {
        let mut t = fast();
        t.max_rate = Some(1000.0);
        let run = simulate(
            plan(&["198.18.0.1"], &[], (1..=500).collect(), t),
            |_| answer(PortState::Closed, Reason::ConnRefused),
            None,
        );
        let first = run.probes[0].0;
        for (i, (at, _)) in run.probes.iter().enumerate() {
            let budget = (at.duration_since(first).as_secs_f64() * 1000.0) as usize + 5;
            assert!(i < budget + 1, "probe {i} sent too early");
        }
        assert!(run.elapsed >= Duration::from_millis(490));
    }

    #[test]
    fn scan_delay_spaces_probes_to_a_host() {
        let mut t = TimingConfig::from_template(TimingTemplate::Polite);
        t.initial_rtt_timeout = Duration::from_millis(100);
        let run = simulate(
            plan(&["198.18.0.1"], &[], (1..=10).collect(), t),
            |_| answer(PortState::Closed, Reason::ConnRefused),
            None,
        );
        for w in run.probes.windows(2) {
            assert!(w[1].0 - w[0].0 >= Duration::from_millis(400));
        }
        assert_eq!(run.ports.len(), 10);
    }

    #[test]
    fn discovery_ends_a_host_at_its_first_answer_and_calls_the_silent_down() {
        let mut p = plan(&["198.18.0.0/28"], &[], vec![0, 1, 2, 3], fast());
        p.discovery = true;
        p.silent_state = PortState::Filtered;
        // Even hosts answer probe 2 only; odd hosts never answer.
        let run = simulate(
            p,
            |probe| {
                let IpAddr::V4(a) = probe.addr else {
                    unreachable!()
                };
                (a.octets()[3] % 2 == 0 && probe.port == 2)
                    .then(|| reply_in(PortState::Open, Reason::SynAck, Duration::from_millis(1)))
            },
            None,
        );
        assert_eq!(run.hosts.len(), 16);
        for h in &run.hosts {
            let IpAddr::V4(a) = h.target.addr else {
                unreachable!()
            };
            if a.octets()[3] % 2 == 0 {
                assert_eq!(h.status, HostStatus::Up(Reason::SynAck), "{a}");
                assert!(
                    h.ports
                        .iter()
                        .any(|o| o.port == 2 && o.reason == Reason::SynAck)
                );
            } else {
                assert_eq!(h.status, HostStatus::Down, "{a}");
            }
        }
        assert_eq!(run.stats.hosts_up, 8);
        // An up host gets no probe once its answer is in.
        let mut answered: HashMap<IpAddr, Instant> = HashMap::new();
        for (at, probe) in &run.probes {
            if probe.port == 2 && !answered.contains_key(&probe.addr) {
                answered.insert(probe.addr, *at + Duration::from_millis(1));
            }
        }
        for (at, probe) in &run.probes {
            let IpAddr::V4(a) = probe.addr else {
                unreachable!()
            };
            if a.octets()[3] % 2 == 0 {
                assert!(*at <= answered[&probe.addr], "{probe:?} after the answer");
            }
        }
    }

    #[test]
    fn paced_hosts_get_every_answer_of_a_rate_limiting_target() {
        // A Linux-like target: closed ports answer from a token bucket of
        // six, refilled one a second; ports 1-5 are silent (open|filtered).
        let mut p = plan(&["198.18.0.2"], &[], (1..=30).collect(), fast());
        p.silent_state = PortState::OpenFiltered;
        p.pace_to_answers = true;
        let mut tokens = 6.0f64;
        let mut last: Option<Instant> = None;
        let run = simulate_full(
            p,
            |probe, now| {
                if let Some(t) = last {
                    tokens = (tokens + (now - t).as_secs_f64()).min(6.0);
                }
                last = Some(now);
                if probe.port <= 5 || tokens < 1.0 {
                    return None;
                }
                tokens -= 1.0;
                Some(reply_in(
                    PortState::Closed,
                    Reason::PortUnreach,
                    Duration::from_millis(1),
                ))
            },
            None,
        );
        for (&(_, port), outcome) in &run.ports {
            let want = if port <= 5 {
                PortState::OpenFiltered
            } else {
                PortState::Closed
            };
            assert_eq!(outcome.state, want, "port {port}");
        }
        assert_eq!(run.ports.len(), 30);
        assert!(run.stats.pacing_increases > 0);
        // Bounded by the limit: about a second per closed port past the
        // burst, not a timeout per try of every port.
        assert!(run.elapsed < Duration::from_secs(90), "{:?}", run.elapsed);
    }

    /// A Linux-like ICMP limit per host: a bucket of six, one a second.
    struct Buckets(BTreeMap<IpAddr, (f64, Instant)>);

    impl Buckets {
        fn take(&mut self, host: IpAddr, now: Instant) -> bool {
            let (tokens, last) = self.0.entry(host).or_insert((6.0, now));
            *tokens = (*tokens + (now - *last).as_secs_f64()).min(6.0);
            *last = now;
            if *tokens < 1.0 {
                return false;
            }
            *tokens -= 1.0;
            true
        }
    }

    fn rate_limited_run(targets: &[&str]) -> Run {
        let mut p = plan(targets, &[], (1..=30).collect(), fast());
        p.silent_state = PortState::OpenFiltered;
        p.pace_to_answers = true;
        let mut buckets = Buckets(BTreeMap::new());
        simulate_full(
            p,
            |probe, now| {
                (probe.port > 5 && buckets.take(probe.addr, now)).then_some(reply_in(
                    PortState::Closed,
                    Reason::PortUnreach,
                    Duration::from_millis(1),
                ))
            },
            None,
        )
    }

    #[test]
    fn silence_at_the_settled_pace_costs_no_pace_interval() {
        // 25 closed ports behind the limit and 25 silent ones: the silent
        // ports' tries at the settled pace cost their timeouts, not a
        // second each (no ICMP error spent a token of the limit).
        let mut p = plan(&["198.18.0.2"], &[], (1..=50).collect(), fast());
        p.silent_state = PortState::OpenFiltered;
        p.pace_to_answers = true;
        let mut buckets = Buckets(BTreeMap::new());
        let run = simulate_full(
            p,
            |probe, now| {
                (probe.port > 25 && buckets.take(probe.addr, now)).then_some(reply_in(
                    PortState::Closed,
                    Reason::PortUnreach,
                    Duration::from_millis(1),
                ))
            },
            None,
        );
        for (&(_, port), outcome) in &run.ports {
            let want = if port <= 25 {
                PortState::OpenFiltered
            } else {
                PortState::Closed
            };
            assert_eq!(outcome.state, want, "port {port}");
        }
        // The limit's floor is about 19 s (25 errors, 6 at once), plus a
        // pace interval for each silent port's first try at the settled
        // pace; its two retries do not wait (three tries each at the pace
        // would take 80 s more).
        assert!(run.elapsed < Duration::from_secs(55), "{:?}", run.elapsed);
    }

    /// A short UDP list against a Linux-like limit (a burst of six, one a
    /// second): `answering` ports answer, `silent` ones never do (dropped,
    /// or open without an answer), the rest are closed.
    fn short_list_run(ports: &[u16], answering: &[u16], silent: &[u16], seed: u64) -> Run {
        let mut p = plan(&["198.18.0.2"], &[], ports.to_vec(), fast());
        p.seed = seed;
        p.silent_state = PortState::OpenFiltered;
        p.pace_to_answers = true;
        let mut buckets = Buckets(BTreeMap::new());
        let run = simulate_full(
            p,
            |probe, now| {
                if answering.contains(&probe.port) {
                    return answer(PortState::Open, Reason::UdpResponse);
                }
                (!silent.contains(&probe.port) && buckets.take(probe.addr, now)).then_some(
                    reply_in(
                        PortState::Closed,
                        Reason::PortUnreach,
                        Duration::from_millis(1),
                    ),
                )
            },
            None,
        );
        for &port in ports {
            let want = if answering.contains(&port) {
                PortState::Open
            } else if silent.contains(&port) {
                PortState::OpenFiltered
            } else {
                PortState::Closed
            };
            let got = run.ports[&("198.18.0.2".parse().unwrap(), port)];
            assert_eq!(got.state, want, "port {port}");
        }
        assert_eq!(run.ports.len(), ports.len());
        run
    }

    #[test]
    fn closed_ports_within_the_burst_are_not_paced() {
        // Issue 13's short lists: every closed port fits in the target's
        // burst of ICMP errors, so the silent ports' silence is their own
        // (a probe sent just after each drew an error, or the canary
        // after their retries did). No pacing: the scan takes a few
        // round-trip timeouts, not seconds.
        for seed in 0..20 {
            let ports = [53, 123, 161, 2000, 2001, 3000, 3001, 3002, 3003, 3004];
            let run = short_list_run(&ports, &[53, 123, 161], &[2000, 2001], seed);
            assert_eq!(run.stats.pacing_increases, 0, "seed {seed}");
            // Two round-trip timeouts (the retry's is the full minimum).
            assert!(
                run.elapsed < Duration::from_millis(300),
                "{:?}",
                run.elapsed
            );
        }
        let ports = [
            53, 67, 123, 137, 161, 500, 1900, 2000, 2001, 2002, 3000, 3001, 3002, 11211,
        ];
        let run = short_list_run(
            &ports,
            &[53, 123, 161, 500, 1900, 11211],
            &[67, 137, 2000, 2001, 2002],
            7,
        );
        assert_eq!(run.stats.pacing_increases, 0);
        assert!(
            run.elapsed < Duration::from_millis(300),
            "{:?}",
            run.elapsed
        );
    }

    #[test]
    fn a_short_list_under_random_loss_loses_no_port_to_the_limit() {
        // 5% of probes and answers lost on top of the limit: a lost canary
        // or a lost error may cost pacing, but a port comes out wrong only
        // if the path lost every one of its tries (the retry budget's
        // risk, as for any scan), never because the limit cut an answer.
        let ports: Vec<u16> = (3000..3005).chain([53, 123, 161, 2000, 2001]).collect();
        for seed in 0..30u64 {
            let mut path_lost: BTreeMap<u16, u32> = BTreeMap::new();
            let mut p = plan(&["198.18.0.2"], &[], ports.clone(), fast());
            p.seed = seed;
            p.silent_state = PortState::OpenFiltered;
            p.pace_to_answers = true;
            let mut buckets = Buckets(BTreeMap::new());
            let mut dice = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut lost = move || {
                dice ^= dice << 13;
                dice ^= dice >> 7;
                dice ^= dice << 17;
                dice % 20 == 0
            };
            let run = simulate_full(
                p,
                |probe, now| {
                    if lost() {
                        *path_lost.entry(probe.port).or_default() += 1;
                        return None;
                    }
                    let reply = if [53, 123, 161].contains(&probe.port) {
                        (PortState::Open, Reason::UdpResponse)
                    } else if probe.port < 3000 || !buckets.take(probe.addr, now) {
                        return None;
                    } else {
                        (PortState::Closed, Reason::PortUnreach)
                    };
                    if lost() {
                        *path_lost.entry(probe.port).or_default() += 1;
                        return None;
                    }
                    Some((
                        Reply {
                            state: reply.0,
                            reason: reply.1,
                            ttl: None,
                        },
                        Duration::from_millis(1),
                    ))
                },
                None,
            );
            for (&(_, port), outcome) in &run.ports {
                let want = match port {
                    53 | 123 | 161 => PortState::Open,
                    2000 | 2001 => PortState::OpenFiltered,
                    _ => PortState::Closed,
                };
                let all_lost = path_lost.get(&port) == Some(&u32::from(outcome.tries));
                assert!(
                    outcome.state == want || all_lost,
                    "seed {seed} port {port}: {outcome:?}, {:?} tries lost on the path",
                    path_lost.get(&port)
                );
            }
        }
    }

    #[test]
    fn a_short_list_on_a_whole_segment_takes_as_long_as_on_one_host() {
        // Issue 13's 10-port list on 250 hosts, each with its own limit:
        // each host's probes go out together (so that the errors to the
        // probes just after a silent one clear it), no host is paced, and
        // the scan takes about one host's time.
        let ports = [53, 123, 161, 2000, 2001, 3000, 3001, 3002, 3003, 3004];
        let mut p = plan(&["198.18.0.2-251"], &[], ports.to_vec(), fast());
        p.silent_state = PortState::OpenFiltered;
        p.pace_to_answers = true;
        let mut buckets = Buckets(BTreeMap::new());
        let run = simulate_full(
            p,
            |probe, now| {
                // Round trips of 8 ms, as on the lab's bridged segment of
                // 250 namespaces.
                if [53, 123, 161].contains(&probe.port) {
                    return Some(reply_in(
                        PortState::Open,
                        Reason::UdpResponse,
                        Duration::from_millis(8),
                    ));
                }
                (probe.port >= 3000 && buckets.take(probe.addr, now)).then_some(reply_in(
                    PortState::Closed,
                    Reason::PortUnreach,
                    Duration::from_millis(8),
                ))
            },
            None,
        );
        assert_eq!(run.ports.len(), 2500);
        for (&(addr, port), outcome) in &run.ports {
            let want = match port {
                53 | 123 | 161 => PortState::Open,
                2000 | 2001 => PortState::OpenFiltered,
                _ => PortState::Closed,
            };
            assert_eq!(outcome.state, want, "{addr} port {port}");
        }
        assert_eq!(run.stats.hosts_paced, 0);
        assert!(
            run.elapsed < Duration::from_millis(300),
            "{:?}",
            run.elapsed
        );
    }

    #[test]
    fn closed_ports_past_the_burst_are_paced_and_all_found() {
        // Twelve closed ports, six more than the burst, and two silent:
        // the canary after the suspects' retries goes unanswered, so the
        // host is paced, and every closed port is still found.
        let ports: Vec<u16> = (3000..3012).chain([2000, 2001]).collect();
        for seed in 0..10 {
            let run = short_list_run(&ports, &[], &[2000, 2001], seed);
            assert!(run.stats.pacing_increases > 0, "seed {seed}");
        }
    }

    /// A token bucket: `burst` tokens, `rate` more a second.
    struct Bucket {
        tokens: f64,
        burst: f64,
        rate: f64,
        last: Option<Instant>,
    }

    impl Bucket {
        fn new(burst: f64, rate: f64) -> Bucket {
            Bucket {
                tokens: burst,
                burst,
                rate,
                last: None,
            }
        }

        fn has(&mut self, now: Instant) -> bool {
            if let Some(last) = self.last {
                self.tokens =
                    (self.tokens + (now - last).as_secs_f64() * self.rate).min(self.burst);
            }
            self.last = Some(now);
            self.tokens >= 1.0
        }
    }

    /// 100 ports of one Linux-like host, 90 closed and 10 silent, from
    /// `sources` source addresses: each source has its own bucket (six,
    /// one a second), and `global` limits the host's errors over all.
    fn many_sources_run(sources: u8, global: Option<(f64, f64)>, seed: u64) -> Run {
        let mut p = plan(&["198.18.0.2"], &[], (1..=100).collect(), fast());
        p.seed = seed;
        p.silent_state = PortState::OpenFiltered;
        p.pace_to_answers = true;
        p.sources = sources;
        let mut per_source: Vec<Bucket> = (0..sources).map(|_| Bucket::new(6.0, 1.0)).collect();
        let mut all = global.map(|(burst, rate)| Bucket::new(burst, rate));
        let silent = |port: u16| port.is_multiple_of(10);
        let run = simulate_full(
            p,
            |probe, now| {
                assert!(probe.source < sources, "{probe:?}");
                if silent(probe.port) {
                    return None;
                }
                let mine = &mut per_source[usize::from(probe.source)];
                if !mine.has(now) || all.as_mut().is_some_and(|b| !b.has(now)) {
                    return None;
                }
                mine.tokens -= 1.0;
                if let Some(b) = all.as_mut() {
                    b.tokens -= 1.0;
                }
                Some(reply_in(
                    PortState::Closed,
                    Reason::PortUnreach,
                    Duration::from_millis(1),
                ))
            },
            None,
        );
        for (&(_, port), outcome) in &run.ports {
            let want = if silent(port) {
                PortState::OpenFiltered
            } else {
                PortState::Closed
            };
            assert_eq!(outcome.state, want, "{sources} sources, port {port}");
        }
        assert_eq!(run.ports.len(), 100);
        run
    }

    #[test]
    fn more_sources_more_icmp_budget() {
        // Each (host, source) pair is paced to its own limit: eight
        // sources take at most a quarter of one source's time, exact.
        let one = many_sources_run(1, None, 3);
        let eight = many_sources_run(8, None, 3);
        assert!(
            eight.elapsed * 4 <= one.elapsed,
            "one source {:?}, eight {:?}",
            one.elapsed,
            eight.elapsed
        );
        let used: HashSet<u8> = eight.probes.iter().map(|(_, p)| p.source).collect();
        assert_eq!(used.len(), 8, "probes spread over every source");
        assert_eq!(eight.stats.hosts_paced_globally, 0);
    }

    #[test]
    fn a_host_wide_limit_below_the_sources_total_is_found_and_kept_exact() {
        // Eight sources could draw eight errors a second, but the host
        // sends at most two a second over all (a lowered
        // icmp_msgs_per_sec): every state stays exact, and the summary
        // says the host-wide limit was the bound.
        for seed in 0..4 {
            let run = many_sources_run(8, Some((4.0, 2.0)), seed);
            assert_eq!(run.stats.hosts_paced_globally, 1, "seed {seed}");
        }
    }

    #[test]
    fn a_host_that_sends_no_icmp_errors_is_not_paced() {
        // A firewall that drops every UDP port but two open services: no
        // error to rate-limit, so the silence of 198 ports is silence.
        let mut p = plan(&["198.18.0.2"], &[], (1..=200).collect(), fast());
        p.silent_state = PortState::OpenFiltered;
        p.pace_to_answers = true;
        let run = simulate_full(
            p,
            |probe, _| {
                [53, 123].contains(&probe.port).then_some(reply_in(
                    PortState::Open,
                    Reason::UdpResponse,
                    Duration::from_millis(1),
                ))
            },
            None,
        );
        assert_eq!(run.ports.len(), 200);
        assert_eq!(run.stats.pacing_increases, 0);
        assert!(run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
    }

    #[test]
    fn rate_limited_hosts_are_paced_side_by_side() {
        // Four hosts, each with its own limit, take about as long as one:
        // the time is bounded by the slowest host, not the sum.
        let one = rate_limited_run(&["198.18.0.2"]);
        let four = rate_limited_run(&["198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5"]);
        assert_eq!(four.ports.len(), 4 * 30);
        for (&(addr, port), outcome) in &four.ports {
            let want = if port <= 5 {
                PortState::OpenFiltered
            } else {
                PortState::Closed
            };
            assert_eq!(outcome.state, want, "{addr} port {port}");
        }
        assert_eq!(four.stats.hosts_paced, 4);
        assert!(
            four.elapsed.as_secs_f64() < one.elapsed.as_secs_f64() * 1.5,
            "one host {:?}, four hosts {:?}",
            one.elapsed,
            four.elapsed
        );
    }

    #[test]
    fn a_host_whose_errors_are_not_rate_limited_is_not_paced() {
        // Loopback or a lab host without limits: every closed port answers
        // at once, a few ports are silent. Their silence must not slow
        // the scan down to the pace of a rate limit.
        let mut p = plan(&["198.18.0.2"], &[], (0..=255).collect(), fast());
        p.silent_state = PortState::OpenFiltered;
        p.pace_to_answers = true;
        let silent = [2u16, 103, 136, 255];
        let run = simulate_full(
            p,
            |probe, _| {
                (!silent.contains(&probe.port)).then_some(reply_in(
                    PortState::Closed,
                    Reason::ProtoUnreach,
                    Duration::from_millis(1),
                ))
            },
            None,
        );
        for (&(_, port), outcome) in &run.ports {
            let want = if silent.contains(&port) {
                PortState::OpenFiltered
            } else {
                PortState::Closed
            };
            assert_eq!(outcome.state, want, "port {port}");
        }
        assert_eq!(run.ports.len(), 256);
        assert_eq!(run.stats.pacing_increases, 0);
        // Virtual time: a few timeouts, not seconds of pacing per port.
        assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
    }

    #[test]
    fn a_sweep_of_mostly_empty_space_does_not_retry_the_dead_to_the_full() {
        // One port over a /22: every 16th address answers, the rest is
        // silent. Silent addresses get about what the live ones needed.
        let p = plan(&["198.18.0.0/22"], &[], vec![80], fast());
        let run = simulate(
            p,
            |probe| {
                let IpAddr::V4(a) = probe.addr else {
                    unreachable!()
                };
                (a.octets()[3] % 16 == 0)
                    .then(|| reply_in(PortState::Open, Reason::SynAck, Duration::from_millis(1)))
            },
            None,
        );
        assert_eq!(run.ports.len(), 1024);
        let open = run
            .ports
            .values()
            .filter(|o| o.state == PortState::Open)
            .count();
        assert_eq!(open, 64, "no live address is lost");
        let silent = 1024 - 64;
        let max_retries = fast().max_retries as usize;
        assert!(
            run.probes.len() < 64 + silent * 4,
            "{} probes for {silent} silent addresses (max_retries {max_retries})",
            run.probes.len()
        );
    }

    /// A one-port sweep of `targets` where every 200th address answers,
    /// each probe and each answer lost with `loss` percent, on a machine
    /// that reported dropped answers before it began when `drops`: (live
    /// hosts found, live hosts in all, probes per address).
    fn sweep_run(targets: &str, loss: u64, seed: u64, drops: bool) -> (usize, usize, f64) {
        let mut p = plan(&[targets], &[], vec![80], fast());
        p.seed = seed;
        let live = |a: IpAddr| {
            let IpAddr::V4(a) = a else { unreachable!() };
            u32::from(a) % 200 == 7
        };
        let mut dice = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut lost = move || {
            dice ^= dice << 13;
            dice ^= dice >> 7;
            dice ^= dice << 17;
            dice % 100 < loss
        };
        let t0 = Instant::now();
        let mut s = Scheduler::new(p, t0);
        if drops {
            s.on_local_drops(1);
        }
        let run = simulate_scheduler(
            s,
            t0,
            |probe, _| {
                (live(probe.addr) && !lost() && !lost())
                    .then(|| reply_in(PortState::Open, Reason::SynAck, Duration::from_millis(1)))
            },
            None,
        );
        let all = run.ports.keys().filter(|(a, _)| live(*a)).count();
        let found = run
            .ports
            .iter()
            .filter(|((a, _), o)| live(*a) && o.state == PortState::Open)
            .count();
        let per_address = run.probes.len() as f64 / run.ports.len() as f64;
        (found, all, per_address)
    }

    #[test]
    fn a_clean_sweep_gives_silent_addresses_one_try() {
        // Issue 18: silent addresses get the tries the measured loss calls
        // for: on a clean link one, at most 1.1 probes per address (the
        // loss probes and the parked decisions' share).
        let (found, all, per_address) = sweep_run("198.18.0.0/16", 0, 5, false);
        assert_eq!(found, all, "every live host found");
        assert!(per_address <= 1.1, "{per_address} probes per address");
    }

    #[test]
    fn answers_dropped_on_this_machine_give_silent_addresses_two_retries() {
        // The ring overflowed: burst loss the estimate does not see. The
        // silent addresses get three tries, as before there was an
        // estimate.
        let (found, all, per_address) = sweep_run("198.18.0.0/16", 0, 5, true);
        assert_eq!(found, all, "every live host found");
        assert!(
            (2.9..=3.1).contains(&per_address),
            "{per_address} probes per address"
        );
    }

    #[test]
    fn a_lossy_sweep_retries_as_the_loss_calls_for_and_finds_every_host() {
        // 10% of probes and of answers lost: the loss shows in the answers
        // to retries and to re-probes of answered hosts, and silent
        // addresses get the tries it calls for.
        for seed in 1..4 {
            let (found, all, per_address) = sweep_run("198.18.0.0/16", 10, seed, false);
            assert_eq!(found, all, "seed {seed}: {found} of {all} live hosts found");
            assert!(
                per_address < 7.0,
                "seed {seed}: {per_address} probes per address"
            );
        }
    }

    #[test]
    fn host_timeout_deadlines_do_not_grow_with_the_targets() {
        // nmap's -T5 sets a host timeout; every host's deadline is queued
        // at its first probe. Finished hosts' deadlines must not pile up
        // for the whole scan (a /8 sweep held 16.7M of them).
        let mut timing = fast();
        timing.host_timeout = Some(Duration::from_secs(900));
        timing.max_retries = 0;
        let t0 = Instant::now();
        let mut s = Scheduler::new(plan(&["fd00:18::/110"], &[], vec![80], timing), t0);
        let mut now = t0;
        let mut most = 0;
        for _ in 0..10_000_000 {
            while s.poll_cancel(now).is_some() {}
            while s.poll_probe(now).is_some() {}
            while s.poll_event().is_some() {}
            most = most.max(s.host_deadlines.len());
            if s.is_finished() {
                break;
            }
            now = s.next_wakeup(now).expect("a wakeup").max(now);
        }
        assert!(s.is_finished());
        assert_eq!(s.stats().hosts_done, 262_144);
        assert!(
            most <= 2 * (MAX_GROUP as usize * 4) + 1024,
            "{most} deadlines held"
        );
    }

    #[test]
    fn many_hosts_one_port_keeps_groups_bounded() {
        let run = simulate(
            plan(&["198.18.0.0/16"], &[], vec![443], fast()),
            |p| {
                let o = match p.addr {
                    IpAddr::V4(a) => a.octets()[3],
                    IpAddr::V6(_) => 0,
                };
                (o % 16 == 0)
                    .then(|| reply_in(PortState::Open, Reason::SynAck, Duration::from_micros(100)))
            },
            None,
        );
        assert_eq!(run.hosts.len(), 65536);
        assert_eq!(
            run.stats.ports_by_state[PortState::Open.index()],
            65536 / 16
        );
    }
}
