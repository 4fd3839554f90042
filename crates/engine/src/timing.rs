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
    /// Retransmissions allowed per port at most (nmap's `--max-retries`).
    pub max_retries: u8,
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

    /// Clamps the fields into a consistent whole (min <= max, windows >= 1).
    pub fn normalized(mut self) -> TimingConfig {
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
/// per window in congestion avoidance. Answers that needed a
/// retransmission are evidence of loss; the window halves on it at most
/// once per probe timeout, and only while backing off helps:
///
/// - it keeps a moving average of the share of answers that needed a
///   retransmission (the loss level) and a baseline of the level that
///   does not depend on the sending rate;
/// - it decreases only when the level is above the baseline;
/// - if a decrease did not bring the level down by the next chance to
///   decrease, the loss is not caused by our rate (a lossy link, not a
///   congested one): the level becomes the baseline, and the decrease
///   that did not help is undone (the window and threshold go back to
///   where they were before it, as TCP undoes its response to a
///   spurious loss signal). Under random loss of any
///   amount the scan keeps its speed; under congestion, loss rises with
///   the rate and the window follows.
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
    last_decrease: Option<Instant>,
    loss_level: f64,
    baseline: f64,
    level_at_decrease: Option<f64>,
    /// The window and threshold before the last decrease, not judged yet.
    before_decreases: Option<(f64, f64)>,
}

impl Window {
    /// Weight of one answer in the loss level's moving average.
    const LEVEL_WEIGHT: f64 = 1.0 / 32.0;
    /// How far above the baseline the loss level must be to decrease.
    const MARGIN: f64 = 0.05;
    /// How much a decrease must lower the loss level to count as helping.
    const HELPED: f64 = 0.8;

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
            last_decrease: None,
            loss_level: 0.0,
            baseline: 0.0,
            level_at_decrease: None,
            before_decreases: None,
        }
    }

    /// Probes that may be in flight now.
    pub fn allowed(&self) -> u32 {
        self.cwnd as u32
    }

    /// The share of recent answers that needed a retransmission.
    pub fn loss_level(&self) -> f64 {
        self.loss_level
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

    /// An answer arrived; `lost` says an earlier try of the same probe
    /// went unanswered. `interval` is the probe timeout. Returns whether
    /// the window decreased.
    pub fn on_answer(
        &mut self,
        lost: bool,
        now: Instant,
        interval: Duration,
        aggressive: bool,
    ) -> bool {
        let sample = if lost { 1.0 } else { 0.0 };
        self.loss_level += (sample - self.loss_level) * Self::LEVEL_WEIGHT;
        if !lost {
            self.grow(aggressive);
            return false;
        }
        if self
            .last_decrease
            .is_some_and(|last| now.saturating_duration_since(last) < interval)
        {
            return false;
        }
        if self.loss_level <= self.baseline + Self::MARGIN {
            self.grow(aggressive);
            return false;
        }
        if let Some(before) = self.level_at_decrease.take()
            && self.loss_level > before * Self::HELPED
        {
            // Backing off did not lower the loss: it does not come from
            // our rate. Undo it.
            self.baseline = self.loss_level;
            if let Some((cwnd, ssthresh)) = self.before_decreases.take() {
                self.cwnd = self.cwnd.max(cwnd);
                self.ssthresh = self.ssthresh.max(ssthresh);
            }
            self.grow(aggressive);
            return false;
        }
        // Helped, or the first: the window before this decrease is the
        // one to go back to if the next does not help.
        self.before_decreases = Some((self.cwnd, self.ssthresh));
        self.ssthresh = (self.cwnd / 2.0).max(self.floor).max(2.0);
        self.cwnd = (self.cwnd / 2.0).max(self.floor);
        self.last_decrease = Some(now);
        self.level_at_decrease = Some(self.loss_level);
        true
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

    #[test]
    fn window_halves_once_per_timeout_while_it_helps() {
        let t0 = Instant::now();
        let timeout = Duration::from_millis(100);
        let mut w = Window::new(10, 1, 1000);
        for _ in 0..90 {
            w.on_answer(false, t0, timeout, false);
        }
        assert_eq!(w.allowed(), 100);
        // A burst of losses: one decrease per timeout.
        let mut decreases = 0;
        for i in 0..10 {
            decreases +=
                usize::from(w.on_answer(true, t0 + Duration::from_millis(i), timeout, false));
        }
        assert_eq!((decreases, w.allowed()), (1, 50));
        // The losses stop (the decrease helped): the window grows again.
        for _ in 0..200 {
            w.on_answer(false, t0 + Duration::from_millis(50), timeout, false);
        }
        assert!(w.allowed() > 50);
        assert!(w.loss_level() < 0.01);
    }

    #[test]
    fn random_loss_does_not_collapse_the_window() {
        // Half of all answers needed a retransmission, whatever the rate.
        let t0 = Instant::now();
        let timeout = Duration::from_millis(100);
        let mut w = Window::new(10, 1, 4096);
        let mut decreases = 0;
        for i in 0..20_000u64 {
            let now = t0 + Duration::from_micros(i * 100);
            decreases += usize::from(w.on_answer(i % 2 == 0, now, timeout, false));
        }
        assert!(decreases <= 3, "{decreases} decreases");
        assert!(w.allowed() >= 100, "window {}", w.allowed());
    }

    #[test]
    fn congestion_after_random_loss_still_decreases() {
        let t0 = Instant::now();
        let timeout = Duration::from_millis(100);
        let mut w = Window::new(10, 1, 4096);
        for i in 0..20_000u64 {
            let now = t0 + Duration::from_micros(i * 100);
            w.on_answer(i % 10 == 0, now, timeout, false);
        }
        let before = w.allowed();
        // Now every answer shows loss: well above the 10% baseline.
        let later = t0 + Duration::from_secs(10);
        let mut decreased = false;
        for i in 0..200u64 {
            decreased |= w.on_answer(true, later + Duration::from_micros(i), timeout, false);
        }
        assert!(decreased);
        assert!(w.allowed() < before);
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
