//! Pacing UDP and IP protocol scans to their targets' ICMP rate limits
//! (see [`ScanPlan::pace_to_answers`]).
//!
//! Targets limit ICMP errors per destination with a token bucket (Linux:
//! a burst of six, then one a second; Solaris: two a second), so a
//! closed port's error can be cut and read as silence. Each (host, source
//! address) pair is a [`Lane`] paced on its own. A silence is first
//! judged against the errors to the probes sent just after it
//! ([`Lane::silence_is_its_own`]); a silence nothing clears is retried
//! with a canary behind it (a probe to a port that answered an error);
//! only an unanswered canary starts the pace, which doubles from
//! [`PACING_START`] to [`PACING_MAX`]. With several sources each lane's
//! settled pace is verified by a canary, so that a limit over all the
//! host's errors (Linux's `icmp_msgs_per_sec`) is found and obeyed
//! ([`HostScan::bound_host_wide`]).
//!
//! No allocation per probe: a lane keeps a bounded ring of the probes
//! that drew errors ([`ERROR_SENDS_KEPT`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[cfg(doc)]
use super::ScanPlan;
use super::{HostScan, InFlight, Probe, Queued, Scheduler, Send};

/// The first delay between probes to a host paced to its answers.
pub const PACING_START: Duration = Duration::from_millis(25);
/// The longest: a little over a second, Linux's pace for ICMP errors,
/// so that its token bucket has refilled when each probe arrives.
pub const PACING_MAX: Duration = Duration::from_millis(1050);

/// Retries a port of a paced host gets at least once the pace settled.
pub(super) const PACED_RETRIES: u8 = 2;

/// How soon after a silent probe a probe that drew an ICMP error must have
/// been sent to show the silence was the port's own (see
/// [`Lane::silence_is_its_own`]).
pub(super) const CLEAR_GAP: Duration = Duration::from_millis(10);

/// Error-drawing probes remembered per host for that: enough to cover the
/// probes of one round-trip timeout at a host's most parallel.
pub(super) const ERROR_SENDS_KEPT: usize = 64;

/// Tries a suspect port gets beyond its retry budget before its host is
/// treated as rate-limited (when canaries keep being answered too late).
pub(super) const SUSPECT_ROUNDS: u8 = 2;

/// ICMP errors (port or protocol unreachable) a host sends within one
/// second that show it does not limit them to the pace
/// [`ScanPlan::pace_to_answers`] guards against: Linux lets a burst of six
/// through, then one a second; Solaris two a second.
pub const UNLIMITED_ERRORS: u32 = 20;

/// How one source address's probes to a host are paced to the host's
/// ICMP errors (see [`ScanPlan::pace_to_answers`]).
#[derive(Debug, Default)]
pub(super) struct Lane {
    /// The pace holds the lane's next probe until then.
    pub(super) next_allowed: Option<Instant>,
    /// The lane's delay between probes.
    pub(super) send_delay: Duration,
    /// When that delay reached its most.
    pub(super) paced_at: Option<Instant>,
    /// The longest that delay was, for the report.
    pub(super) most_paced: Duration,
    /// The ICMP errors counted in the current one-second window, and when
    /// it began; once they reach [`UNLIMITED_ERRORS`], `unlimited` is set.
    pub(super) errors_in_window: u32,
    pub(super) error_window_start: Option<Instant>,
    /// The host's errors to this source are not rate limited: not paced.
    pub(super) unlimited: bool,
    /// They stopped coming (a canary went unanswered): silence may be the
    /// rate limit, so the lane is paced.
    pub(super) limited: bool,
    /// (send time, send order) of the latest probes that drew a rate
    /// limited ICMP error, oldest first, at most [`ERROR_SENDS_KEPT`].
    pub(super) error_sends: VecDeque<(Instant, u64)>,
    /// A canary is to follow the suspect retries being sent on this lane.
    pub(super) canary_wanted: bool,
    /// A canary is in flight on this lane, to this port.
    pub(super) canary_flying: bool,
    pub(super) canary_port: Option<u16>,
    /// A port that answered a rate-limited error on this lane.
    pub(super) error_port: Option<u16>,
    /// The settled pace is known to let every error through: a canary
    /// sent at that pace was answered. Until then (with several sources
    /// only), silence at the settled pace does not count against a port.
    pub(super) verified: bool,
    /// A canary is to go at the settled pace, to verify it.
    pub(super) pace_check_due: bool,
}

/// The check for an error budget the target spent before the scan.
///
/// A host's silence counts against its ports only if the host sends rate
/// limited errors at all: behind a firewall that drops, silence is
/// silence. But a target whose errors to us were all spent just before
/// the scan (another scan from this address a moment ago) sends none at
/// first, and its closed ports would read `open|filtered`. So when a host
/// that answered some probe but drew no ICMP error has silent ports left
/// at the end of their tries, they wait; once the host's round is over,
/// and [`PACING_MAX`] after the last of them fell silent (its bucket has
/// a token again, whatever it held before), they are all tried once more
/// together. An error proves the limit: the lane is paced, and the ports
/// whose check went unanswered are tried again at that pace (see
/// `Scheduler::on_timeout`). Silence settles them. The cost, for a host
/// that drops rather than errs: one more try per silent port, a second
/// later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SpentCheck {
    /// No silent port needed it yet.
    Idle,
    /// Silent ports wait; the check goes once the host's round is over,
    /// not before this.
    Waiting(Instant),
    /// The check's probes are queued or in flight: the host's only ones.
    Flying,
    /// An error proved the limit.
    Done,
}

impl Lane {
    /// At the settled pace each probe waits for the token a rate-limited
    /// ICMP error would cost; a probe answered otherwise (a UDP answer)
    /// cost none, so the next one need not wait for it. Only when no probe
    /// went out since (the wait is still that probe's). Silence is no such
    /// proof: the answer may have been cut for want of a token.
    pub(super) fn refund_pace(&mut self, entry: &InFlight) {
        if self.next_allowed == Some(entry.sent_at + self.send_delay) {
            self.next_allowed = None;
        }
    }

    /// Whether the lane may send now.
    pub(super) fn free(&self, now: Instant) -> bool {
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
    pub(super) fn silence_is_its_own(&self, entry: &InFlight) -> bool {
        self.error_sends
            .iter()
            .rev()
            .take_while(|&&(_, seq)| seq > entry.seq)
            .any(|&(at, _)| at <= entry.sent_at + CLEAR_GAP)
    }

    /// Doubles the lane's delay between probes towards `most`, the
    /// settled pace; false if it is there already.
    pub(super) fn slow_down(&mut self, now: Instant, most: Duration) -> bool {
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
    pub(super) fn settle(&mut self, now: Instant, most: Duration) {
        self.pace_check_due = !self.verified;
        self.send_delay = most;
        self.most_paced = self.most_paced.max(most);
        self.paced_at = Some(now);
        // The limit's bucket may be empty now: the first probe at the
        // settled pace waits a whole interval too.
        self.next_allowed = Some(now + most);
    }

    /// Notes that the probe in `entry` drew a rate-limited ICMP error.
    pub(super) fn note_error(&mut self, entry: &InFlight) {
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
    pub(super) fn count_error(&mut self, now: Instant) {
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
    pub(super) fn bound_host_wide(&mut self, now: Instant) {
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
    pub(super) fn canary_port(&self, l: u8) -> Option<u16> {
        let flying = |port: u16| self.lanes.iter().any(|x| x.canary_port == Some(port));
        std::iter::once(self.lanes[usize::from(l)].error_port)
            .chain(self.lanes.iter().map(|x| x.error_port))
            .chain(std::iter::once(self.error_port))
            .flatten()
            .find(|&port| !flying(port))
    }

    /// A lane whose settled pace is to be verified now, if any.
    pub(super) fn pace_check_lane(&self, now: Instant) -> Option<u8> {
        self.lanes
            .iter()
            .position(|l| l.pace_check_due && !l.canary_flying && l.free(now))
            .map(|l| l as u8)
    }

    /// The settled pace of each lane.
    pub(super) fn settled_pace(&self) -> Duration {
        PACING_MAX * self.pace_factor
    }

    /// The first lane free to send now, from the rotation's next.
    pub(super) fn free_lane(&self, now: Instant) -> Option<u8> {
        let n = self.lanes.len();
        (0..n)
            .map(|i| (usize::from(self.next_lane) + i) % n)
            .find(|&l| self.lanes[l].free(now))
            .map(|l| l as u8)
    }

    /// When the first lane becomes free again.
    pub(super) fn lanes_free_at(&self) -> Option<Instant> {
        self.lanes.iter().filter_map(|l| l.next_allowed).min()
    }
}

impl Scheduler {
    /// Sends a try taken off host `h`'s queue. After the last retry
    /// queued with `canary_after`, the canaries of the lanes they went on
    /// are due.
    pub(super) fn dispatch_queued(
        &mut self,
        h: u32,
        next: Queued,
        now: Instant,
        paced: bool,
    ) -> Probe {
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
    pub(super) fn poll_canary(&mut self, now: Instant) -> Option<Probe> {
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
    pub(super) fn release_held(&mut self, h: u32) {
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
    pub(super) fn after_canary(&mut self, h: u32) {
        self.release_held(h);
        self.mark_ready_if_queued(h);
        self.free_host_if_done(h);
    }

    pub(super) fn canary_gone(&mut self, h: u32, lane: u8) {
        if let Some(host) = self.hosts[h as usize].as_mut() {
            let lane = &mut host.lanes[usize::from(lane)];
            lane.canary_flying = false;
            lane.canary_port = None;
        }
        self.after_canary(h);
    }

    /// Whether silent `port` of host `h`, at the end of its tries (`tries`
    /// sent), waits for the host's [`SpentCheck`] instead of being
    /// resolved now.
    pub(super) fn wait_for_spent_check(
        &mut self,
        h: u32,
        port: u16,
        tries: u8,
        now: Instant,
    ) -> bool {
        let pace = self.pace_to_answers;
        let host = self.hosts[h as usize].as_mut().expect("live host");
        if !pace || host.timed_out || host.error_port.is_some() || host.answered_ports == 0 {
            return false;
        }
        match host.spent_check {
            SpentCheck::Flying | SpentCheck::Done => false,
            SpentCheck::Idle | SpentCheck::Waiting(_) => {
                host.unsure.push((port, tries));
                host.spent_check = SpentCheck::Waiting(now + PACING_MAX);
                true
            }
        }
    }

    /// Sends host `h`'s [`SpentCheck`] once its round is over (every
    /// first try handed out, nothing in flight, queued or held), not
    /// before its time.
    pub(super) fn start_spent_check(&mut self, h: u32) {
        let Some(host) = self.hosts[h as usize].as_mut() else {
            return;
        };
        let SpentCheck::Waiting(not_before) = host.spent_check else {
            return;
        };
        if host.fresh_left > 0
            || host.outstanding > 0
            || !host.queue.is_empty()
            || !host.held.is_empty()
            || host.timed_out
        {
            return;
        }
        host.spent_check = SpentCheck::Flying;
        host.next_allowed = Some(host.next_allowed.map_or(not_before, |t| t.max(not_before)));
        let unsure = std::mem::take(&mut host.unsure);
        self.queued += unsure.len();
        host.queue.extend(
            unsure
                .into_iter()
                .map(|(port, tries)| Queued::new(port, tries)),
        );
        self.mark_ready(h);
    }

    /// A probe of host `h` drew a rate-limited error during its
    /// [`SpentCheck`]: the limit is proven, and the lane is paced from
    /// now on.
    pub(super) fn spent_check_answered(&mut self, h: u32, entry: &InFlight, now: Instant) {
        let host = self.hosts[h as usize].as_mut().expect("live host");
        if host.spent_check != SpentCheck::Flying {
            return;
        }
        host.spent_check = SpentCheck::Done;
        let most = host.settled_pace();
        let lane = &mut host.lanes[usize::from(entry.lane)];
        lane.limited = true;
        lane.settle(now, most);
        self.stats.pacing_increases += 1;
    }
}
