//! Timing: templates (`-T0`..`-T5`), round-trip estimation, congestion
//! windows and the packet-rate limiter.
//!
//! Read first: RFC 6298 (computing TCP's retransmission timer) and nmap's
//! "Timing and Performance" chapter; the windows follow the shape of
//! nmap's ultra_scan (slow start, congestion avoidance, decrease on
//! evidence of loss) but back off only when the network shows loss.
//! Everything here is plain arithmetic on values passed in: no clock is
//! read, nothing allocates, nothing panics.

use std::time::{Duration, Instant};

/// nmap's timing templates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimingTemplate {
    /// `-T0`: one probe at a time, five minutes apart.
    Paranoid,
    /// `-T1`: one probe at a time, 15 s apart.
    Sneaky,
    /// `-T2`: one probe at a time, 0.4 s apart.
    Polite,
    /// `-T3`: the default.
    Normal,
    /// `-T4`: for fast, reliable networks.
    Aggressive,
    /// `-T5`: gives up accuracy for speed.
    Insane,
}

impl TimingTemplate {
    /// Parses `0`..`5` or a template name, as nmap's `-T` does.
    pub fn parse(s: &str) -> Option<TimingTemplate> {
        Some(match s.to_ascii_lowercase().as_str() {
            "0" | "paranoid" => TimingTemplate::Paranoid,
            "1" | "sneaky" => TimingTemplate::Sneaky,
            "2" | "polite" => TimingTemplate::Polite,
            "3" | "normal" => TimingTemplate::Normal,
            "4" | "aggressive" => TimingTemplate::Aggressive,
            "5" | "insane" => TimingTemplate::Insane,
            _ => return None,
        })
    }
}

/// Every timing knob of a scan. Start from [`TimingConfig::from_template`]
/// and override single fields from flags.
#[derive(Clone, Debug, PartialEq)]
pub struct TimingConfig {
    /// Probe timeout before any round trip was measured.
    pub initial_rtt_timeout: Duration,
    /// Lower bound of the probe timeout of a port's last try.
    pub min_rtt_timeout: Duration,
    /// Lower bound of the probe timeout of tries that another try will
    /// follow (a tenth of the template's minimum, or the user's
    /// `--min-rtt-timeout`): a short wait there costs a retransmission at
    /// worst, never a port.
    pub early_rtt_timeout: Duration,
    /// Upper bound of the probe timeout.
    pub max_rtt_timeout: Duration,
    /// Retransmissions allowed per port at most (nmap's `--max-retries`),
    /// save those the measured loss calls for (see
    /// [`TimingConfig::max_retries_under_loss`]).
    pub max_retries: u8,
    /// Retransmissions the measured loss may call for per port at most.
    /// A template's count is nmap's, which trusts the network to be as
    /// clean as the template assumes: `-T4` stops at 6, and under 10%
    /// loss each way (19% of round trips lost) 7 tries all fail for about
    /// one closed port in 100,000, so a scan of all ports read one or two
    /// `filtered` in most runs. Under measured loss a template's scan
    /// retries up to nmap's default of 10; a user's `--max-retries` holds
    /// for both ([`TimingConfig::with_max_retries`]).
    pub max_retries_under_loss: u8,
    /// In a sweep, the chance a silent address's tries may leave of
    /// missing it if it is live (`--sweep-confidence` is one minus this):
    /// its tries bring the chance that every one of them is lost below
    /// it, at the loss the scan measured (see the scheduler's
    /// `silent_budget`). 1e-3 by default: five tries under 10% loss each
    /// way, one on a clean link.
    pub sweep_miss: f64,
    /// Minimum spacing between probes to one host.
    pub scan_delay: Duration,
    /// Probes in flight at least, whatever the windows say.
    pub min_parallelism: u32,
    /// Probes in flight at most (also bounded by the transport, e.g. by
    /// the open-file limit for connect scans).
    pub max_parallelism: u32,
    /// Probes in flight at most in a sweep (a scan of at least 256
    /// hosts): there most probes go to addresses that never answer and
    /// each holds its place for a whole timeout, so the window's ceiling
    /// bounds the rate: 65,536 in flight over nmap's 100 ms floor is
    /// 655,000 probes a second (16,384 held a sparse /16 near 160,000).
    /// Hosts are made only as their first probe goes (see the
    /// scheduler's `Member`), so the ceiling costs memory only when used:
    /// an `--offline` one-port sweep of 2^24 addresses peaks at 47 MiB.
    /// `--max-parallelism` sets both.
    pub sweep_parallelism: u32,
    /// Probes per second at least (overrides the windows).
    pub min_rate: Option<f64>,
    /// Probes per second at most.
    pub max_rate: Option<f64>,
    /// Give up on a host after this long.
    pub host_timeout: Option<Duration>,
    /// Probes in flight per host when a host starts.
    pub initial_window: u32,
    /// Whether congestion avoidance grows the window twice as fast
    /// (nmap does at `-T4` and above).
    pub aggressive_growth: bool,
}

impl TimingConfig {
    /// The values of an nmap timing template.
    pub fn from_template(t: TimingTemplate) -> TimingConfig {
        let ms = Duration::from_millis;
        let base = TimingConfig {
            initial_rtt_timeout: ms(1000),
            min_rtt_timeout: ms(100),
            early_rtt_timeout: ms(10),
            max_rtt_timeout: ms(10_000),
            max_retries: 10,
            max_retries_under_loss: 10,
            sweep_miss: 1e-3,
            scan_delay: Duration::ZERO,
            min_parallelism: 1,
            max_parallelism: 4096,
            sweep_parallelism: 1 << 16,
            min_rate: None,
            max_rate: None,
            host_timeout: None,
            initial_window: 10,
            aggressive_growth: false,
        };
        match t {
            TimingTemplate::Paranoid => TimingConfig {
                initial_rtt_timeout: Duration::from_secs(300),
                scan_delay: Duration::from_secs(300),
                max_parallelism: 1,
                sweep_parallelism: 1,
                initial_window: 1,
                ..base
            },
            TimingTemplate::Sneaky => TimingConfig {
                initial_rtt_timeout: Duration::from_secs(15),
                scan_delay: Duration::from_secs(15),
                max_parallelism: 1,
                sweep_parallelism: 1,
                initial_window: 1,
                ..base
            },
            TimingTemplate::Polite => TimingConfig {
                scan_delay: ms(400),
                max_parallelism: 1,
                sweep_parallelism: 1,
                initial_window: 1,
                ..base
            },
            TimingTemplate::Normal => base,
            TimingTemplate::Aggressive => TimingConfig {
                initial_rtt_timeout: ms(500),
                max_rtt_timeout: ms(1250),
                max_retries: 6,
                aggressive_growth: true,
                ..base
            },
            TimingTemplate::Insane => TimingConfig {
                initial_rtt_timeout: ms(250),
                min_rtt_timeout: ms(50),
                early_rtt_timeout: ms(5),
                max_rtt_timeout: ms(300),
                max_retries: 2,
                host_timeout: Some(Duration::from_secs(15 * 60)),
                aggressive_growth: true,
                ..base
            },
        }
    }

    /// This timing with `n` retransmissions per port at most, whatever
    /// the loss (a user's `--max-retries`, or a phase's own count).
    pub fn with_max_retries(self, n: u8) -> TimingConfig {
        TimingConfig {
            max_retries: n,
            max_retries_under_loss: n,
            ..self
        }
    }

    /// Clamps the fields into a consistent whole (min <= max, windows >= 1).
    pub fn normalized(mut self) -> TimingConfig {
        self.max_retries_under_loss = self.max_retries_under_loss.max(self.max_retries);
        self.max_parallelism = self.max_parallelism.max(1);
        self.sweep_parallelism = self.sweep_parallelism.max(1);
        self.min_parallelism = self.min_parallelism.clamp(1, self.max_parallelism);
        self.initial_window = self
            .initial_window
            .clamp(self.min_parallelism, self.max_parallelism);
        if self.min_rtt_timeout > self.max_rtt_timeout {
            self.max_rtt_timeout = self.min_rtt_timeout;
        }
        self.early_rtt_timeout = self.early_rtt_timeout.min(self.min_rtt_timeout);
        self.initial_rtt_timeout = self
            .initial_rtt_timeout
            .clamp(self.min_rtt_timeout, self.max_rtt_timeout);
        if let (Some(lo), Some(hi)) = (self.min_rate, self.max_rate)
            && lo > hi
        {
            self.min_rate = Some(hi);
        }
        self
    }
}

/// Smoothed round-trip time and its variation, per RFC 6298 §2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
}

impl RttEstimator {
    /// Folds in one measured round trip.
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// The smoothed round-trip time, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The round-trip variation, once measured.
    pub fn rttvar(&self) -> Option<Duration> {
        self.srtt.map(|_| self.rttvar)
    }

    /// The retransmission timeout: srtt + 4·rttvar within the configured
    /// bounds, or `initial` before any sample.
    pub fn timeout(&self, cfg: &TimingConfig, initial: Duration) -> Duration {
        self.timeout_with_floor(cfg, cfg.min_rtt_timeout, initial)
    }

    /// [`RttEstimator::timeout`] with another lower bound.
    pub fn timeout_with_floor(
        &self,
        cfg: &TimingConfig,
        floor: Duration,
        initial: Duration,
    ) -> Duration {
        match self.srtt {
            None => initial,
            Some(srtt) => {
                (srtt + self.rttvar * 4).clamp(floor.min(cfg.max_rtt_timeout), cfg.max_rtt_timeout)
            }
        }
    }
}

/// A congestion window: how many probes may be in flight.
///
/// Grows by one per answer in slow start and by one (two when aggressive)
/// per window in congestion avoidance. Loss is read from first tries, by
/// when they were sent: an answered port whose answer came to a retry had
/// its first try lost. Ports are counted in the bucket of their first
/// try's sending time (buckets one `interval` wide), and a bucket is read
/// once its ports' retries had time to answer (two intervals after its
/// end): its loss level is the share of its answered ports that needed a
/// retry. Ports that never answer (filtered ones) do not count.
///
/// - The window halves when a bucket's level is above the baseline, the
///   level that does not depend on the sending rate, by more than
///   `Window::MARGIN` (0.05) and four standard deviations of a bucket's noise
///   at the baseline (a binomial share of its ports).
/// - The first bucket of tries sent after a decrease judges it: if the
///   level did not fall by more than the two buckets' noise, the loss is
///   not caused by our rate (a lossy link, not a congested one): the
///   level becomes the baseline, and the decrease is undone (the window
///   and threshold go back to where they were, as TCP undoes its
///   response to a spurious loss signal). Under random loss of any
///   amount the scan keeps its speed; under congestion, loss rises with
///   the rate and the window follows.
///
/// Why by sending time: the share of answers, in the order they come,
/// that needed a retry drifts up as a scan goes on, for retries (of lost
/// and of filtered ports) take more and more of the sending from first
/// tries. A host under 10% random loss each way read a level that rose
/// from 0.06 to 0.6; every rise of the margin halved the window until the
/// next timeout undid it, and the host was scanned at half its clean rate
/// (0.8 s against 0.3 s in the lab). A port's first try has one fate at
/// any point of the scan.
///
/// Without the undo, a sweep under 10% random loss each way lost most of
/// its speed: its few answers halved the window a few times before the
/// level settled, and growing back past the threshold, one probe per
/// window's worth of answers or timeouts, took seconds (16 s instead of
/// 1.7 s for a /16 with 300 live hosts, in virtual time).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    cwnd: f64,
    ssthresh: f64,
    floor: f64,
    ceiling: f64,
    /// Buckets of first tries by sending time, oldest first from `oldest`
    /// (a ring).
    buckets: [Bucket; Window::BUCKETS],
    oldest: u8,
    /// Ports of buckets read that were too few to decide on, carried into
    /// the next: (answered, needed a retry).
    carried: (u32, u32),
    /// The last level read.
    loss_level: f32,
    /// The loss level that does not come from our rate.
    baseline: f32,
    /// A decrease not judged yet.
    judging: Option<Decrease>,
}

/// The answered ports whose first try was sent within `start..end`, in
/// [`Ticks`] (a window is part of every host's scan state, and a sweep
/// holds tens of thousands: counts saturate at 65,535).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Bucket {
    start: u32,
    /// 0 for a bucket not in use.
    end: u32,
    answered: u16,
    lost: u16,
}

impl Bucket {
    fn in_use(&self) -> bool {
        self.end > 0
    }
}

/// A scan's clock in the unit of its windows' bucket times, 100 us from
/// the scan's start (a bucket is at least 20 ms wide; a `u32` holds 4.9
/// days).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticks {
    start: Instant,
}

impl Ticks {
    const TICK: Duration = Duration::from_micros(100);

    /// A clock starting at `start`.
    pub fn new(start: Instant) -> Ticks {
        Ticks { start }
    }

    /// `t` in ticks since the start (0 before it).
    pub fn at(&self, t: Instant) -> u32 {
        Self::span(t.saturating_duration_since(self.start))
    }

    /// `d` in ticks, saturating.
    pub fn span(d: Duration) -> u32 {
        u32::try_from(d.as_micros() / Self::TICK.as_micros()).unwrap_or(u32::MAX)
    }
}

/// A decrease of the window, until the loss level after it judges it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Decrease {
    /// The level that caused it, and the ports it was read from.
    level: f32,
    ports: u32,
    /// The window and threshold before it.
    cwnd: f32,
    ssthresh: f32,
    /// When it was made: only first tries sent after judge it.
    at: u32,
}

impl Decrease {
    /// Standard deviations of the noise of two buckets' difference a fall
    /// of the level needs to show the decrease helped.
    const HELPED_DEVIATIONS: f32 = 3.0;

    /// Whether the level fell from the decrease's to `level`, read from
    /// `ports` ports, by more than the two readings' noise (binomial
    /// shares). Under congestion a decrease lowers the loss, if only a
    /// little while the rate is still far above what the path carries;
    /// under random loss the level stays where it was.
    fn lowered_to(&self, level: f32, ports: u32) -> bool {
        let (n1, n2) = (self.ports as f32, ports as f32);
        let pooled = (self.level * n1 + level * n2) / (n1 + n2);
        let noise = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
        self.level - level > Self::HELPED_DEVIATIONS * noise
    }
}

impl Window {
    /// A bucket's loss level must pass the baseline by this much at least
    /// to decrease.
    const MARGIN: f32 = 0.05;
    /// Standard deviations of a bucket's noise a decrease needs as well.
    const NOISE_DEVIATIONS: f32 = 4.0;
    /// Answered ports a reading needs (fewer are carried into the next
    /// bucket).
    const READING_PORTS: u32 = 16;
    /// Buckets kept: the one filling, and those whose retries may still
    /// answer (read two intervals after their end).
    const BUCKETS: usize = 4;

    /// A window starting at `initial`, never below `floor` nor above
    /// `ceiling`; slow start runs until the first decrease.
    pub fn new(initial: u32, floor: u32, ceiling: u32) -> Window {
        let ceiling = f64::from(ceiling.max(1));
        let floor = f64::from(floor.max(1)).min(ceiling);
        Window {
            cwnd: f64::from(initial).clamp(floor, ceiling),
            ssthresh: ceiling,
            floor,
            ceiling,
            buckets: [Bucket::default(); Window::BUCKETS],
            oldest: 0,
            carried: (0, 0),
            loss_level: 0.0,
            baseline: 0.0,
            judging: None,
        }
    }

    /// Probes that may be in flight now.
    pub fn allowed(&self) -> u32 {
        self.cwnd as u32
    }

    /// The share of the last reading's answered ports whose first try was
    /// lost.
    pub fn loss_level(&self) -> f64 {
        f64::from(self.loss_level)
    }

    fn grow(&mut self, aggressive: bool) {
        if self.cwnd < self.ssthresh {
            self.cwnd += 1.0;
        } else {
            let step = if aggressive { 2.0 } else { 1.0 };
            self.cwnd += step / self.cwnd;
        }
        self.cwnd = self.cwnd.min(self.ceiling);
    }

    /// An answer arrived at `now`; `lost` says an earlier try of the same
    /// port went unanswered, and `first_sent` is when its first try went
    /// (`None` when not known: the port is not counted). `interval` is a
    /// bucket's width: about how long a retry takes to follow a lost try
    /// (see `Scheduler::on_reply`). Times are in [`Ticks`]. Returns
    /// whether the window decreased.
    pub fn on_answer(
        &mut self,
        lost: bool,
        first_sent: Option<u32>,
        now: u32,
        interval: u32,
        aggressive: bool,
    ) -> bool {
        if !lost {
            self.grow(aggressive);
        }
        if let Some(sent) = first_sent {
            self.count(sent, lost, interval);
        }
        let mut decreased = false;
        while let Some((answered, lost)) = self.read_due(now, interval) {
            decreased |= self.decide(answered, lost, now);
        }
        decreased
    }

    /// Counts a port whose first try went at `sent` in its bucket, opening
    /// buckets as time goes (a port older than every bucket is not
    /// counted: its retries took longer than its bucket was kept).
    fn count(&mut self, sent: u32, lost: bool, width: u32) {
        let newest = (usize::from(self.oldest) + Self::BUCKETS - 1) % Self::BUCKETS;
        let last = self.buckets[newest];
        if !last.in_use() || sent >= last.end {
            // The oldest slot is reused; it was read when due (see
            // `read_due`), or its ports are carried into the next reading
            // if time jumped.
            let slot = usize::from(self.oldest);
            let start = if last.in_use() && sent < last.end.saturating_add(width) {
                last.end
            } else {
                sent
            };
            let b = self.buckets[slot];
            if b.in_use() {
                self.carried.0 += u32::from(b.answered);
                self.carried.1 += u32::from(b.lost);
            }
            self.buckets[slot] = Bucket {
                start,
                end: start.saturating_add(width.max(1)).max(1),
                answered: 0,
                lost: 0,
            };
            self.oldest = ((slot + 1) % Self::BUCKETS) as u8;
        }
        if let Some(b) = self
            .buckets
            .iter_mut()
            .find(|b| b.in_use() && sent >= b.start && sent < b.end)
        {
            b.answered = b.answered.saturating_add(1);
            b.lost = b.lost.saturating_add(u16::from(lost));
        }
    }

    /// The oldest bucket whose retries had time to answer, taken out with
    /// what was carried: (answered ports, ports that needed a retry), or
    /// `None` while it has too few ports, or none is due.
    fn read_due(&mut self, now: u32, width: u32) -> Option<(u32, u32)> {
        loop {
            let slot = (0..Self::BUCKETS)
                .map(|i| (usize::from(self.oldest) + i) % Self::BUCKETS)
                .find(|&i| self.buckets[i].in_use())?;
            let b = self.buckets[slot];
            if now < b.end.saturating_add(width.saturating_mul(2)) {
                return None;
            }
            self.buckets[slot] = Bucket::default();
            if let Some(judging) = self.judging.as_mut()
                && b.start < judging.at
            {
                // Tries sent before the decrease cannot judge it; they
                // show the level it answered better than the reading
                // that made it, if that caught the loss as it began.
                if u32::from(b.answered) >= Self::READING_PORTS {
                    let level = f32::from(b.lost) / f32::from(b.answered);
                    if level > judging.level {
                        judging.level = level;
                        judging.ports = u32::from(b.answered);
                    }
                }
                self.carried = (0, 0);
                continue;
            }
            let answered = self.carried.0 + u32::from(b.answered);
            let lost = self.carried.1 + u32::from(b.lost);
            if answered < Self::READING_PORTS {
                self.carried = (answered, lost);
                continue;
            }
            self.carried = (0, 0);
            return Some((answered, lost));
        }
    }

    /// Acts on a reading of `answered` ports, `lost` of which needed a
    /// retry. Returns whether the window decreased.
    fn decide(&mut self, answered: u32, lost: u32, now: u32) -> bool {
        let level = lost as f32 / answered as f32;
        self.loss_level = level;
        if let Some(decrease) = self.judging.take() {
            if !decrease.lowered_to(level, answered) {
                // Backing off did not lower the loss: it does not come
                // from our rate. Undo it.
                self.baseline = level;
                self.cwnd = self.cwnd.max(f64::from(decrease.cwnd));
                self.ssthresh = self.ssthresh.max(f64::from(decrease.ssthresh));
            }
            return false;
        }
        if level <= self.baseline + self.margin(answered) {
            return false;
        }
        self.judging = Some(Decrease {
            level,
            ports: answered,
            cwnd: self.cwnd as f32,
            ssthresh: self.ssthresh as f32,
            at: now,
        });
        self.ssthresh = (self.cwnd / 2.0).max(self.floor).max(2.0);
        self.cwnd = (self.cwnd / 2.0).max(self.floor);
        true
    }

    /// How far above the baseline a reading of `ports` ports must be to
    /// decrease (see [`Window`]).
    fn margin(&self, ports: u32) -> f32 {
        let b = self.baseline;
        let noise = (b * (1.0 - b) / ports as f32).sqrt();
        (Self::NOISE_DEVIATIONS * noise).max(Self::MARGIN)
    }

    /// A probe timed out. Silence alone is no sign of congestion (a
    /// firewall that drops is silent at any rate, and a host that answers
    /// nothing has no load to protect), so the window grows as it does for
    /// an answer; loss shows up as answers to retransmissions. Without
    /// this, a silent host would be probed one window per timeout for the
    /// whole scan.
    pub fn on_silence(&mut self, aggressive: bool) {
        self.grow(aggressive);
    }
}

/// Paces sending between `--min-rate` and `--max-rate`.
#[derive(Clone, Copy, Debug)]
pub struct RateLimiter {
    start: Instant,
    min_rate: Option<f64>,
    max_rate: Option<f64>,
    sent: u64,
}

impl RateLimiter {
    /// Largest burst allowed after an idle period, in seconds of rate.
    const BURST_SECONDS: f64 = 0.005;

    /// A limiter whose clock starts at `start`.
    pub fn new(start: Instant, min_rate: Option<f64>, max_rate: Option<f64>) -> RateLimiter {
        let positive = |r: Option<f64>| r.filter(|r| r.is_finite() && *r > 0.0);
        RateLimiter {
            start,
            min_rate: positive(min_rate),
            max_rate: positive(max_rate),
            sent: 0,
        }
    }

    /// When the next probe may go, or `None` if it may go now.
    pub fn next_allowed(&self, now: Instant) -> Option<Instant> {
        let rate = self.max_rate?;
        let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
        let budget = elapsed * rate + (rate * Self::BURST_SECONDS).max(1.0);
        if (self.sent as f64) < budget {
            None
        } else {
            let due = (self.sent as f64 + 1.0 - (rate * Self::BURST_SECONDS).max(1.0)) / rate;
            Some(self.start + Duration::from_secs_f64(due.max(0.0)))
        }
    }

    /// Whether sending is behind `--min-rate`, so that a probe should go
    /// even though the windows are full.
    pub fn behind_min_rate(&self, now: Instant) -> bool {
        match self.min_rate {
            None => false,
            Some(rate) => {
                let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
                (self.sent as f64) < elapsed * rate
            }
        }
    }

    /// When sending falls behind `--min-rate` next, if a minimum is set.
    pub fn min_rate_due(&self) -> Option<Instant> {
        let rate = self.min_rate?;
        Some(self.start + Duration::from_secs_f64((self.sent as f64 + 1.0) / rate))
    }

    /// Counts one probe sent at `now`.
    ///
    /// Time spent not sending (the windows full, nothing to send) earns
    /// no credit beyond the burst: without this, a sweep whose window
    /// held sending back for 70 ms then let 7,000 probes out at once at
    /// `--max-rate 100000` (500,000 a second over 10 ms).
    pub fn on_sent(&mut self, now: Instant) {
        if let Some(rate) = self.max_rate {
            let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
            let floor = elapsed * rate;
            if (self.sent as f64) < floor {
                self.sent = floor as u64;
            }
        }
        self.sent += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_first_sample_sets_variation_to_half() {
        let mut e = RttEstimator::default();
        e.sample(Duration::from_millis(100));
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(e.rttvar(), Some(Duration::from_millis(50)));
        let cfg = TimingConfig::from_template(TimingTemplate::Normal);
        assert_eq!(
            e.timeout(&cfg, cfg.initial_rtt_timeout),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn rtt_timeout_is_clamped_to_minimum() {
        let mut e = RttEstimator::default();
        for _ in 0..20 {
            e.sample(Duration::from_micros(30));
        }
        let cfg = TimingConfig::from_template(TimingTemplate::Aggressive);
        assert_eq!(
            e.timeout(&cfg, cfg.initial_rtt_timeout),
            cfg.min_rtt_timeout
        );
    }

    /// Feeds `w` one answer every `step` from `from` to `to` after `t0`,
    /// with buckets 20 ms wide; `lost(w, t)` says whether the answer's
    /// port needed a retry (its first try then went 15 ms before it, else
    /// 1 ms, never before `t0`). Returns the decreases.
    fn feed(
        w: &mut Window,
        t0: Instant,
        (from, to, step): (Duration, Duration, Duration),
        mut lost: impl FnMut(&Window, Duration) -> bool,
    ) -> usize {
        let interval = Duration::from_millis(20);
        let mut decreases = 0;
        let mut t = from;
        while t < to {
            let now = t0 + t;
            // Nothing went before `t0`: no retry's answer comes before
            // 15 ms.
            let l = lost(w, t) && t >= ms(15);
            let before = if l { 15 } else { 1 };
            let sent = now.checked_sub(ms(before)).unwrap_or(t0).max(t0);
            let clock = Ticks::new(t0);
            decreases += usize::from(w.on_answer(
                l,
                Some(clock.at(sent)),
                clock.at(now),
                Ticks::span(interval),
                false,
            ));
            t += step;
        }
        decreases
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn window_follows_loss_that_rises_with_it() {
        // A path that carries 150 probes in flight: past that, first tries
        // are lost. The window halves, the loss falls, and the decrease is
        // kept; it grows back slowly and halves again.
        let t0 = Instant::now();
        let mut w = Window::new(10, 1, 4096);
        let step = Duration::from_micros(100);
        let decreases = feed(&mut w, t0, (ms(20), ms(2000), step), |w, _| {
            w.allowed() > 150
        });
        assert!(decreases >= 1, "{decreases} decreases");
        assert!(w.allowed() <= 300, "window {}", w.allowed());
    }

    #[test]
    fn window_halves_on_loss_and_keeps_the_decrease_that_helped() {
        let t0 = Instant::now();
        let mut w = Window::new(10, 1, 1000);
        // Clean: one more probe per answer (slow start).
        assert_eq!(feed(&mut w, t0, (ms(20), ms(220), ms(1)), |_, _| false), 0);
        assert_eq!(w.allowed(), 210);
        // Every port needs a retry for 30 ms; the bucket is read once its
        // retries had time to answer, and the window halves once.
        let lossy = |_: &Window, t: Duration| t < ms(250);
        assert_eq!(feed(&mut w, t0, (ms(220), ms(400), ms(1)), lossy), 1);
        assert!((100..=120).contains(&w.allowed()), "window {}", w.allowed());
        // The loss is gone after the decrease: it helped, and is kept.
        assert_eq!(feed(&mut w, t0, (ms(400), ms(700), ms(1)), |_, _| false), 0);
        assert!(w.allowed() < 210, "window {}", w.allowed());
        assert!(w.loss_level() < 0.01);
    }

    #[test]
    fn random_loss_does_not_collapse_the_window() {
        // Half of all ports needed a retransmission, whatever the rate.
        let t0 = Instant::now();
        let mut w = Window::new(10, 1, 4096);
        let mut i = 0u64;
        let decreases = feed(
            &mut w,
            t0,
            (ms(0), ms(2000), Duration::from_micros(100)),
            |_, _| {
                i += 1;
                i.is_multiple_of(2)
            },
        );
        assert!(decreases <= 1, "{decreases} decreases");
        assert_eq!(w.allowed(), 4096);
    }

    #[test]
    fn answers_to_retries_in_bursts_are_no_congestion() {
        // One port in ten needed a retry, and their answers come together
        // (retries go out in batches): 10 answers in a row every 10 ms.
        let t0 = Instant::now();
        let mut w = Window::new(4096, 1, 4096);
        let step = Duration::from_micros(100);
        let decreases = feed(&mut w, t0, (ms(0), ms(3000), step), |_, t| {
            t.as_micros() % 10_000 < 1_000
        });
        assert!(decreases <= 1, "{decreases} decreases");
        assert_eq!(w.allowed(), 4096);
    }

    #[test]
    fn congestion_after_random_loss_still_decreases() {
        let t0 = Instant::now();
        let mut w = Window::new(10, 1, 4096);
        let step = Duration::from_micros(100);
        let mut i = 0u64;
        feed(&mut w, t0, (ms(20), ms(2020), step), |_, _| {
            i += 1;
            i.is_multiple_of(10)
        });
        let before = w.allowed();
        assert_eq!(before, 4096);
        // Now the path carries 1,000 probes in flight: of a window of
        // `w`, a share 1 - 1000/w of first tries are lost. Well above the
        // 10% baseline, and it falls as the window does.
        let mut owed = 0.0;
        let decreases = feed(&mut w, t0, (ms(2020), ms(3020), step), |w, _| {
            owed += (1.0 - 1000.0 / f64::from(w.allowed())).max(0.0);
            let lost = owed >= 1.0;
            owed -= f64::from(u8::from(lost));
            lost
        });
        assert!(decreases >= 2, "{decreases} decreases");
        assert!(w.allowed() < 2048, "window {}", w.allowed());
    }

    #[test]
    fn rate_limiter_paces_to_max_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(t0, None, Some(1000.0));
        let mut sent_at_start = 0;
        while r.next_allowed(t0).is_none() {
            r.on_sent(t0);
            sent_at_start += 1;
        }
        assert_eq!(sent_at_start, 5, "5 ms of burst at 1000/s");
        let due = r.next_allowed(t0).unwrap();
        assert_eq!(due - t0, Duration::from_millis(1));
        assert!(r.next_allowed(due).is_none());
    }

    #[test]
    fn max_rate_gives_no_credit_for_time_spent_not_sending() {
        // 100,000 a second, 5 ms of burst; 70 ms without a send (a full
        // window): then 500 may go at once, not 7,500.
        let t0 = Instant::now();
        let mut r = RateLimiter::new(t0, None, Some(100_000.0));
        r.on_sent(t0);
        let later = t0 + Duration::from_millis(70);
        let mut at_once = 0;
        while r.next_allowed(later).is_none() && at_once < 100_000 {
            r.on_sent(later);
            at_once += 1;
        }
        assert!((499..=501).contains(&at_once), "{at_once} at once");
    }

    #[test]
    fn min_rate_reports_falling_behind() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(t0, Some(100.0), None);
        assert!(!r.behind_min_rate(t0));
        assert!(r.behind_min_rate(t0 + Duration::from_millis(20)));
        r.on_sent(t0);
        r.on_sent(t0);
        assert!(!r.behind_min_rate(t0 + Duration::from_millis(20)));
        assert_eq!(r.min_rate_due(), Some(t0 + Duration::from_millis(30)));
    }

    #[test]
    fn templates_parse_by_number_and_name() {
        assert_eq!(TimingTemplate::parse("4"), Some(TimingTemplate::Aggressive));
        assert_eq!(
            TimingTemplate::parse("Insane"),
            Some(TimingTemplate::Insane)
        );
        assert_eq!(TimingTemplate::parse("6"), None);
    }
}
