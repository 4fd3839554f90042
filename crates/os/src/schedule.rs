//! When each OS probe leaves, for many hosts side by side: a sans-IO
//! schedule driven by `now`, tested in virtual time.
//!
//! A try sends the six SYNs in six rounds [`SEQ_SPACING`] apart (every
//! host of the round in each), then the other ten probes of every host,
//! then waits for the last answers. The next try resends what is still
//! unanswered: the SYNs only as a whole new round of six (their rates are
//! measured over the spacing), the others one by one. A host without an
//! open port gets only the probes to closed ports. The run ends when
//! every probe is answered or after `tries` tries: at most `tries` ×
//! (5 × spacing + wait), plus what the caller's rate limit adds.
//!
//! The caller sends each [`Step::Send`], reads answers until each
//! [`Step::Wait`]'s instant and reports them with
//! [`Schedule::on_answer`]; a resent SYN round means the caller forgets
//! that host's earlier SYN answers (they belong to the old spacing).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::probes::{IE, PROBE_COUNT};

/// The spacing of the six SYNs (nmap's).
pub const SEQ_SPACING: Duration = Duration::from_millis(100);

/// What to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send probe `probe` of host `host` now.
    Send {
        /// The host's index.
        host: usize,
        /// The probe's index (0 to 15).
        probe: usize,
    },
    /// Read answers until then.
    Wait(Instant),
    /// Every probe is answered or every try spent.
    Done,
}

/// Whether probe `probe` goes to the open port.
pub fn needs_open(probe: usize) -> bool {
    probe < 6 || matches!(probe, 8..=11)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// SYN round `n` is queued or being sent.
    Seq(usize),
    /// The other probes are queued or being sent.
    Rest,
    /// Waiting for the try's last answers.
    Settle(Instant),
    Done,
}

/// The schedule of one run.
#[derive(Debug)]
pub struct Schedule {
    open: Vec<bool>,
    answered: Vec<[bool; PROBE_COUNT]>,
    tries: u8,
    try_no: u8,
    wait: Duration,
    stage: Stage,
    round_start: Instant,
    seq_hosts: Vec<usize>,
    queue: VecDeque<(usize, usize)>,
    queued: bool,
}

impl Schedule {
    /// A run over hosts that have (`true`) or lack an open port, with
    /// `tries` tries (at least one) and `wait` for the last answers of
    /// each try, starting at `now`.
    pub fn new(open: Vec<bool>, tries: u8, wait: Duration, now: Instant) -> Schedule {
        let hosts = open.len();
        let mut s = Schedule {
            open,
            answered: vec![[false; PROBE_COUNT]; hosts],
            tries: tries.max(1),
            try_no: 0,
            wait,
            stage: Stage::Seq(0),
            round_start: now,
            seq_hosts: Vec::new(),
            queue: VecDeque::new(),
            queued: false,
        };
        s.start_try(now);
        s
    }

    /// Probe `probe` of host `host` was answered.
    pub fn on_answer(&mut self, host: usize, probe: usize) {
        if let Some(a) = self.answered.get_mut(host).and_then(|a| a.get_mut(probe)) {
            *a = true;
        }
    }

    fn wanted(&self, host: usize, probe: usize) -> bool {
        (self.open[host] || !needs_open(probe)) && !self.answered[host][probe]
    }

    fn start_try(&mut self, now: Instant) {
        self.seq_hosts = (0..self.open.len())
            .filter(|&h| self.open[h] && (0..6).any(|p| !self.answered[h][p]))
            .collect();
        for &h in &self.seq_hosts {
            self.answered[h][..6].iter_mut().for_each(|a| *a = false);
        }
        self.round_start = now;
        self.stage = if self.seq_hosts.is_empty() {
            Stage::Rest
        } else {
            Stage::Seq(0)
        };
        self.queued = false;
    }

    /// The next step at `now`.
    pub fn poll(&mut self, now: Instant) -> Step {
        loop {
            if let Some((host, probe)) = self.queue.pop_front() {
                return Step::Send { host, probe };
            }
            match self.stage {
                Stage::Seq(n) => {
                    let due = self.round_start + SEQ_SPACING * n as u32;
                    if !self.queued {
                        if now < due {
                            return Step::Wait(due);
                        }
                        self.queue.extend(self.seq_hosts.iter().map(|&h| (h, n)));
                        self.queued = true;
                        continue;
                    }
                    self.queued = false;
                    self.stage = if n < 5 {
                        Stage::Seq(n + 1)
                    } else {
                        Stage::Rest
                    };
                }
                Stage::Rest => {
                    if !self.queued {
                        let sends: Vec<(usize, usize)> = (0..self.open.len())
                            .flat_map(|h| (IE..PROBE_COUNT).map(move |p| (h, p)))
                            .filter(|&(h, p)| self.wanted(h, p))
                            .collect();
                        self.queue.extend(sends);
                        self.queued = true;
                        continue;
                    }
                    self.queued = false;
                    self.stage = Stage::Settle(now + self.wait);
                }
                Stage::Settle(until) => {
                    let complete =
                        (0..self.open.len()).all(|h| (0..PROBE_COUNT).all(|p| !self.wanted(h, p)));
                    if complete || self.try_no + 1 >= self.tries {
                        if now < until && !complete {
                            return Step::Wait(until);
                        }
                        self.stage = Stage::Done;
                        continue;
                    }
                    if now < until {
                        return Step::Wait(until);
                    }
                    self.try_no += 1;
                    self.start_try(now);
                }
                Stage::Done => return Step::Done,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a schedule in virtual time; `answers(host, probe, try)` says
    /// whether a probe is answered (at once). Returns each send with its
    /// time since the start, and the end time.
    fn simulate(
        open: Vec<bool>,
        tries: u8,
        answers: &dyn Fn(usize, usize) -> bool,
    ) -> (Vec<(Duration, usize, usize)>, Duration) {
        let start = Instant::now();
        let mut now = start;
        let mut s = Schedule::new(open, tries, Duration::from_millis(800), now);
        let mut sent = Vec::new();
        for _ in 0..10_000 {
            match s.poll(now) {
                Step::Send { host, probe } => {
                    sent.push((now - start, host, probe));
                    if answers(host, probe) {
                        s.on_answer(host, probe);
                    }
                }
                Step::Wait(t) => {
                    assert!(t > now, "a wait must move time on");
                    now = t;
                }
                Step::Done => return (sent, now - start),
            }
        }
        panic!("the schedule never ended");
    }

    #[test]
    fn six_syns_leave_100_ms_apart_to_every_host_side_by_side() {
        let (sent, end) = simulate(vec![true, true, true], 2, &|_, _| true);
        for round in 0..6 {
            let at: Vec<Duration> = sent.iter().filter(|s| s.2 == round).map(|s| s.0).collect();
            assert_eq!(at, vec![SEQ_SPACING * round as u32; 3], "round {round}");
        }
        // Everything answered: one try, 16 probes a host, and no wait
        // once the last answer is in.
        assert_eq!(sent.len(), 48);
        assert_eq!(end, SEQ_SPACING * 5);
    }

    #[test]
    fn unanswered_probes_are_resent_up_to_the_tries_and_answered_ones_are_not() {
        // T2 and T3 (9, 10) never answer, nor does one SYN the first time.
        let first_seq = std::cell::Cell::new(true);
        let answers = |_h: usize, p: usize| {
            if p == 3 && first_seq.replace(false) {
                return false;
            }
            !matches!(p, 9 | 10)
        };
        let (sent, _) = simulate(vec![true], 3, &answers);
        let count = |p: usize| sent.iter().filter(|s| s.2 == p).count();
        assert_eq!((count(9), count(10)), (3, 3));
        // The SYNs went again as a whole round, once.
        assert_eq!((0..6).map(count).collect::<Vec<_>>(), [2; 6]);
        assert_eq!((count(6), count(11), count(15)), (1, 1, 1));
    }

    #[test]
    fn a_host_without_an_open_port_gets_only_the_closed_port_probes() {
        let (sent, _) = simulate(vec![false, true], 1, &|_, _| true);
        let first: Vec<usize> = sent.iter().filter(|s| s.1 == 0).map(|s| s.2).collect();
        assert_eq!(first, [6, 7, 12, 13, 14, 15]);
        assert_eq!(sent.iter().filter(|s| s.1 == 1).count(), 16);
    }

    #[test]
    fn a_silent_host_ends_within_the_bound() {
        let (sent, end) = simulate(vec![true], 4, &|_, _| false);
        assert_eq!(sent.len(), 4 * 16);
        assert!(
            end <= (SEQ_SPACING * 5 + Duration::from_millis(800)) * 4,
            "{end:?}"
        );
        let (sent, _) = simulate(Vec::new(), 2, &|_, _| false);
        assert!(sent.is_empty());
    }
}
