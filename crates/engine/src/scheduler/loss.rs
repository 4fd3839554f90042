//! Retries from measured loss: how many tries a port, or a silent
//! address in a sweep, gets.
//!
//! A host that answers gets nmap's adaptive count, raised to what its own
//! answers' loss calls for ([`HostScan::retry_budget`]). In a sweep most
//! addresses never answer, so their silence says nothing about loss; the
//! answers do, and a sample of answered ports is probed once more to
//! measure it ([`Scheduler::silent_budget`]). The model is a geometric
//! one: a round trip is lost with a chance `p`, estimated with a weak
//! prior, and a port gets the fewest tries that bring the chance of
//! losing it below the target.

use std::time::Instant;

use super::{HostScan, InFlight, Probe, Queued, Scheduler, Send};
use crate::timing::TimingConfig;
use portolan_model::Reason;

/// The chance of losing any answerable port of a host to random loss
/// that the retry count aims below, while no try was seen lost: the
/// estimate is then its prior alone, already cautious.
pub(super) const LOST_PORT_CHANCE: f64 = 1e-2;
/// The same once tries were seen lost. At 1e-2, a full run of the lab's
/// tests lost one closed port of 1,300 under 30% loss each way (18 tries
/// all lost): one run in a hundred was not exact. A lossy port now gets
/// one to a few more tries; a clean scan's count, and the short UDP
/// lists' (whose extra tries would cost their target's ICMP burst), are
/// unchanged, and so are hosts whose rate-limited ICMP errors are what
/// went unanswered.
pub(super) const LOST_PORT_CHANCE_UNDER_LOSS: f64 = 1e-3;

/// Retransmissions needed so that, of a host's `scanned` ports, any that
/// would answer is lost with a chance below [`LOST_PORT_CHANCE`] (or
/// [`LOST_PORT_CHANCE_UNDER_LOSS`] once tries were seen lost), given
/// that `ports` answered ports took `tries` tries in all.
///
/// The chance that one try is lost is estimated with a weak prior of
/// [`PRIOR_LOST`] lost and answered tries, (tries - ports + p) /
/// (tries + 2p): a host with few answers yet gets a few more retries, one
/// that answered many ports at the first try gets nmap's minimum, and one
/// whose answers needed retransmissions gets what its loss calls for.
///
/// `limited`: the host's answers are ICMP errors it rate-limits, so its
/// lost tries are the limit's, which pacing answers for; the stricter
/// chance is for the path's loss.
pub(super) fn retries_for_loss(ports: u32, tries: u32, scanned: usize, limited: bool) -> u8 {
    let tries = tries.max(ports);
    let lost = (f64::from(tries - ports) + PRIOR_LOST) / (f64::from(tries) + 2.0 * PRIOR_LOST);
    let chance = if tries > ports && !limited {
        LOST_PORT_CHANCE_UNDER_LOSS
    } else {
        LOST_PORT_CHANCE
    };
    let per_port = (chance / scanned.max(1) as f64).max(1e-12);
    let needed = (per_port.ln() / lost.ln()).ceil();
    (needed - 1.0).clamp(0.0, 50.0) as u8
}

/// Pseudo-counts of one lost and one answered try that the loss estimates
/// start from (a weak prior: a tenth of a try each).
pub(super) const PRIOR_LOST: f64 = 0.1;

/// Loss probes ended before their own estimate counts (see
/// [`Scheduler::silent_budget`]).
pub(super) const LOSS_PROBE_TRIALS: u32 = 16;

/// Answers from the scan's hosts before a silent host's budget follows
/// the measured loss (see [`Scheduler::silent_budget`]).
pub(super) const OTHERS_ANSWERED: u32 = 16;
/// Retries a silent address gets at least once this machine lost answers
/// (see [`Scheduler::on_local_drops`]), whatever the estimate says: loss
/// that comes in bursts (the receive ring overflowing at a high rate)
/// hits a sweep's first tries more than the answered ports and loss
/// probes that measure it, and one try then loses live hosts (a lab /16
/// sweep lost 3,039 of 65,536 with one try each, when the ring was 2 MiB
/// and filled; with 8 MiB it no longer does, and one try found them all).
/// Measured loss raises it.
pub(super) const RETRIES_AFTER_LOCAL_DROPS: u8 = 2;

/// Events waiting for the caller past which decisions wait (see
/// [`Scheduler::unpark`]).
pub(super) const UNPARK_EVENTS: usize = 4096;

/// Round trips observed before the tries of silent hosts are decided as
/// they time out: until then (and while the order has first tries to
/// hand out, or a loss probe is out), their decision waits, so that a
/// sweep's first silent addresses do not get the budget of a loss nobody
/// measured yet. (A sweep's order is done within a timeout or two once
/// its silent tries leave the window early; the loss probes then still
/// are out, and an estimate made before they end counted the answers
/// that came at once, not the lost tries still waiting: one seed of the
/// virtual lossy sweep missed six live hosts of 327.)
pub(super) const CONFIDENT_TRIALS: u32 = 1000;
/// Targets from which a scan is a sweep, whose answered ports get loss
/// probes (smaller scans' hosts answer for themselves).
pub(super) const SWEEP_HOSTS: u128 = 256;
/// A sweep's first window (within its ceiling): 4,096 probes to as many
/// hosts cost each target one packet and our path 240 KB (2 ms of a
/// gigabit link), and find the first live hosts, whose answers measure
/// the path, at once rather than after seconds of doubling from nmap's
/// ten. A silent probe's outcome comes only at its timeout, so the
/// window doubles about once a timeout (100 ms) from here: at 1,024 a
/// sparse /16 was over (0.66 s) before the window reached its ceiling;
/// at 4,096 it takes 0.51 s.
pub(super) const SWEEP_INITIAL_WINDOW: u32 = 4096;
/// The first answered ports of a sweep each get a loss probe (their
/// sample decides the first silent addresses' tries)...
pub(super) const LOSS_PROBE_EVERY: u32 = 256;
/// ... then one answered port in this many...
pub(super) const LOSS_SAMPLE: u32 = 4;
/// ... up to this many in a scan (a loss estimate needs a few hundred
/// round trips, not more).
pub(super) const LOSS_PROBES: u32 = 1024;
/// The try number a port's loss probes stop at while decisions wait for
/// the estimate (see [`Scheduler::chain_loss_probe`]): up to eight
/// round trips per answered port.
pub(super) const LOSS_CHAIN: u8 = 8;

/// Retransmissions of a port whose host has not answered, while the
/// scan's loss is not known: nmap's (see [`HostScan::retry_budget`]).
pub(super) const NO_ANSWER_RETRIES: u8 = 1;

impl HostScan {
    /// Retransmissions a port of this host gets at most now: nmap's
    /// adaptive rule (one more than the most any answered port needed)
    /// within `timing.max_retries`, raised to what the measured loss calls
    /// for within `timing.max_retries_under_loss`. A host that has not
    /// answered at all gets what the scan's measured loss calls for once
    /// it is known ([`Scheduler::silent_budget`]), and until then nmap's
    /// count for a host with no answer: one retransmission (nmap's
    /// `allowedTryno` is at least 1). It had the whole `max_retries`
    /// before (eleven tries at the default timing), for fear of a path
    /// warming up; but the kernel queues the probes while it resolves a
    /// neighbour (see `Paths`), and a sweep of mostly empty space, or of
    /// a range where the port is rare, sent each dead address eleven
    /// probes until sixteen hosts had answered: 2.8 probes per address
    /// over a million with one live in 16,384.
    pub(super) fn retry_budget(
        &self,
        timing: &TimingConfig,
        scanned: usize,
        others: Option<u8>,
    ) -> u8 {
        let max_retries = timing.max_retries;
        if self.answered_ports == 0 {
            return others.unwrap_or(NO_ANSWER_RETRIES).min(max_retries);
        }
        let adaptive = self.max_successful_try.saturating_add(1).min(max_retries);
        let for_loss = retries_for_loss(
            self.answered_ports,
            self.answered_tries,
            scanned,
            self.error_port.is_some(),
        );
        adaptive.max(for_loss.min(timing.max_retries_under_loss))
    }

    /// Whether this host's retries wait twice as long as the try before
    /// (see `Scheduler::send`). They do while most first tries went
    /// unanswered (or too few are known): a target that rate-limits its
    /// answers (resets, ICMP errors) answers a burst and then a few a
    /// second, and only tries spread over time reach it. A host that
    /// answered most first tries does not limit at the scan's rate, so
    /// its silences are the path's loss (or a firewall's drops), which
    /// a retry after one timeout meets as well as one after eight; the
    /// doubling cost a lossy scan of all ports with 3,000 filtered ones
    /// most of its time (each filtered port's ten retries took 0.85 s).
    /// Scans paced to ICMP errors always spread (their pacing reads the
    /// limit).
    pub(super) fn spreads_retries(&self, pace_to_answers: bool) -> bool {
        pace_to_answers
            || self.first_answered < RANDOM_LOSS_EVIDENCE
            || self.first_answered < self.first_silent
    }
}

/// First tries a host must have answered before its retries stop being
/// spread (see [`HostScan::spreads_retries`]).
pub(super) const RANDOM_LOSS_EVIDENCE: u32 = 32;

impl Scheduler {
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
    /// address gets the fewest tries `k` with `p^k` below
    /// [`TimingConfig::sweep_miss`] (1e-3 unless `--sweep-confidence`):
    /// with 10% lost each way (`p` near 0.19), five; on a clean link,
    /// one; never fewer than [`RETRIES_AFTER_LOCAL_DROPS`] retries once
    /// this machine dropped answers. Until [`OTHERS_ANSWERED`] ports
    /// answered, a silent host gets nmap's count for a host with no
    /// answer ([`NO_ANSWER_RETRIES`]): a handful of hosts says little
    /// about the path.
    ///
    /// The answered ports' count is biased low while a sweep runs: a port
    /// answered at its first try counts at once, one whose first try was
    /// lost only once a retry answers, and a silent address's retry waits
    /// for this very budget. The loss probes' own sample has no such
    /// bias once none is out (their silences come at the timeout, their
    /// answers at once: decisions wait for them, see
    /// [`Scheduler::loss_probes_settled`]); the estimate is the larger of
    /// the two once [`LOSS_PROBE_TRIALS`] loss probes ended.
    pub(super) fn silent_budget(&self) -> Option<u8> {
        (self.global_answered >= OTHERS_ANSWERED).then(|| {
            let estimate = |failures: u32, trials: u32| {
                (f64::from(failures) + PRIOR_LOST) / (f64::from(trials) + 2.0 * PRIOR_LOST)
            };
            let mut lost = estimate(self.loss_failures, self.loss_trials);
            if self.loss_probe_trials >= LOSS_PROBE_TRIALS {
                lost = lost.max(estimate(self.loss_probe_failures, self.loss_probe_trials));
            }
            let miss = self.timing.sweep_miss.clamp(1e-12, 1.0 - 1e-12);
            let tries = (miss.ln() / lost.ln()).ceil().clamp(1.0, 51.0);
            let floor = if self.local_drops > 0 {
                RETRIES_AFTER_LOCAL_DROPS
            } else {
                0
            };
            ((tries - 1.0) as u8).max(floor)
        })
    }

    /// Whether no loss probe is due or awaiting its answer: the loss
    /// probes' sample is then whole. (Nothing in flight at all settles
    /// it too: a loss probe ended without an outcome, its host expired,
    /// must not hold the decisions for good.)
    pub(super) fn loss_probes_settled(&self) -> bool {
        self.loss_due.is_empty()
            && (self.loss_probes == self.loss_probe_trials || self.in_flight == 0)
    }

    /// Reports answers this machine lost before they could be read (the
    /// kernel's receive ring was full: `PACKET_STATISTICS`). Such loss
    /// comes in bursts the loss estimate does not see, so from now on a
    /// silent address gets at least `RETRIES_AFTER_LOCAL_DROPS`
    /// retries. The transport reads the counter often enough (every
    /// few tens of milliseconds) that a drop is known before the probe
    /// whose answer it was times out.
    pub fn on_local_drops(&mut self, dropped: u64) {
        self.local_drops = self.local_drops.saturating_add(dropped);
    }

    /// Whether the order has handed out its last first try.
    pub(super) fn fresh_done(&self) -> bool {
        self.host_cursor >= self.host_order.len()
            && self.group.as_ref().is_none_or(|g| g.next >= g.len())
    }

    /// Decides the tries that waited for the loss estimate (see
    /// [`CONFIDENT_TRIALS`]): each gets a retry if its host's budget
    /// allows one now, or is resolved as silent. While the caller has
    /// more than [`UNPARK_EVENTS`] events to take, the rest wait for the
    /// next call (the scheduler asks to be called again at once): tens
    /// of thousands of silent ports resolved in one call held their
    /// events together, 24 MB of a ping sweep's peak.
    pub(super) fn unpark(&mut self, now: Instant) {
        let others = self.silent_budget();
        let scanned = self.ports.len();
        loop {
            if self.events.len() >= UNPARK_EVENTS {
                self.more_now = true;
                return;
            }
            let Some((h, serial, port, try_no)) = self.parked.pop_front() else {
                return;
            };
            let Some(host) = self.hosts[h as usize].as_mut() else {
                continue;
            };
            if host.serial != serial || host.reported || host.timed_out {
                continue;
            }
            if try_no < host.retry_budget(&self.timing, scanned, others) {
                host.queue.push_back(Queued::new(port, try_no + 1));
                self.queued += 1;
                self.mark_ready(h);
            } else {
                if !self.wait_for_spent_check(h, port, try_no + 1, now) {
                    let state = self.silent_state;
                    self.resolve(h, port, state, Reason::NoResponse, None, try_no + 1, now);
                }
                self.mark_ready_if_queued(h);
            }
        }
    }

    /// Probes the port of the loss probe that just ended once more while
    /// decisions wait for the estimate: fewer than [`CONFIDENT_TRIALS`]
    /// round trips seen, and silent tries parked. Where live hosts are
    /// rare, one round trip per answered port and one loss probe came too
    /// slowly: a million addresses with one live in 4,096 decided their
    /// first quarter million with fewer than a hundred trials (two tries
    /// each); a port probed up to [`LOSS_CHAIN`] times gives sixteen
    /// answered hosts the round trips to decide one try. The probes go
    /// one after another (one probe in flight per port), each a round
    /// trip to a host that answered.
    pub(super) fn chain_loss_probe(&mut self, ended: &InFlight) {
        if self.loss_trials >= CONFIDENT_TRIALS
            || self.parked.is_empty()
            || ended.try_no >= LOSS_CHAIN
            || self.loss_probes + self.loss_due.len() as u32 >= LOSS_PROBES
            || self.interrupted
        {
            return;
        }
        let Some(host) = self.hosts[ended.host as usize].as_mut() else {
            return;
        };
        if host.timed_out || host.loss_pending == u8::MAX {
            return;
        }
        host.loss_pending += 1;
        self.loss_due
            .push_back((ended.host, ended.port, ended.try_no + 1));
    }

    /// A loss probe due, sent past the windows.
    pub(super) fn poll_loss_probe(&mut self, now: Instant) -> Option<Probe> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_measured_loss() {
        // One port scanned, 1e-2: nothing known, one try in two may be
        // lost, so 7 tries.
        assert_eq!(retries_for_loss(0, 0, 1, false), 6);
        // Ten ports answered at the first try: a little cautious.
        assert_eq!(retries_for_loss(10, 10, 1, false), 0);
        assert_eq!(retries_for_loss(10, 10, 1000, false), 2);
        // Three of a thousand answered at once (a firewalled host).
        assert_eq!(retries_for_loss(3, 3, 1000, false), 3);
        // A thousand at the first try, of a thousand: nmap's two tries.
        assert_eq!(retries_for_loss(1000, 1000, 1000, false), 1);
        // One try in ten lost, 1000 ports, 1e-3: 1e-6 per port, 7 tries.
        assert_eq!(retries_for_loss(900, 1000, 1000, false), 6);
        // The same from a host whose rate-limited errors went unanswered:
        // the limit's doing, paced for, at 1e-2: 6 tries.
        assert_eq!(retries_for_loss(900, 1000, 1000, true), 5);
        // Half lost, 1000 ports: 20 tries.
        assert_eq!(retries_for_loss(500, 1000, 1000, false), 19);
    }
}
