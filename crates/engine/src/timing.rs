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
    /// bounds the rate (4,096 in flight over 100 ms is 41,000 probes a
    /// second). `--max-parallelism` sets both.
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
            sweep_parallelism: 1 << 14,
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
/// retransmission are evidence of loss, judged over periods of a probe
/// timeout (at least [`Window::PERIOD_ANSWERS`] answers; retries go out
/// together after a timeout and come back together, so a moving average
/// over answers swings past any margin under plain random loss). A
/// period whose share of lost tries is above the baseline by more than
/// chance explains (three standard deviations of that many coin flips, at
/// least [`Window::MARGIN`]) starts a trial: the window halves, and keeps
/// halving each period while the loss stays, until our send rate has
/// really dropped (when the machine, not the window, bounds the rate,
/// halving changes nothing yet). Then the answers tell:
///
/// - if they fell with the sends and the share of lost tries stayed, the
///   loss is the path's at any rate (a lossy link): that share becomes
///   the baseline, the window is given back as it was before the trial,
///   and the scan keeps its speed;
/// - if they held up while the sends fell, or the share of lost tries
///   fell with the rate, we were sending past what the path or the
///   target carries (a bottleneck, a target that limits its resets): the
///   window stays down, and keeps following the loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    cwnd: f64,
    ssthresh: f64,
    floor: f64,
    ceiling: f64,
    loss_level: f64,
    /// The share of lost tries known to be the path's, at any rate.
    baseline: f64,
    period: Period,
    trial: Option<Trial>,
}

/// What one period saw.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Period {
    start: Option<Instant>,
    sent: u32,
    answers: u32,
    lost: u32,
}

/// A backing-off in progress: the window before it, and the rates of the
/// period that started it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Trial {
    window: (f64, f64),
    send_rate: f64,
    answer_rate: f64,
    level: f64,
}

impl Window {
    /// Weight of one answer in the reported loss level's moving average.
    const LEVEL_WEIGHT: f64 = 1.0 / 32.0;
    /// How far above the baseline a period's loss must be, at least.
    const MARGIN: f64 = 0.05;
    /// Answers a period needs before it is judged.
    pub const PERIOD_ANSWERS: u32 = 32;
    /// A trial's send rate must fall below this share of where it started
    /// before the answers are read.
    const RATE_DROPPED: f64 = 0.75;
    /// A loss share that falls below this share of where a trial started
    /// came from our rate.
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
            loss_level: 0.0,
            baseline: 0.0,
            period: Period::default(),
            trial: None,
        }
    }

    /// Probes that may be in flight now.
    pub fn allowed(&self) -> u32 {
        self.cwnd as u32
    }

    /// Whether a trial showed the losses seen to be the path's, at any
    /// rate.
    pub fn loss_is_random(&self) -> bool {
        self.baseline > 0.0
    }

    /// The share of recent answers that needed a retransmission.
    pub fn loss_level(&self) -> f64 {
        self.loss_level
    }

    /// How far above `baseline` a share of `n` coin flips may land by
    /// chance.
    fn noise_margin(baseline: f64, n: u32) -> f64 {
        let variance = baseline * (1.0 - baseline) / f64::from(n.max(1));
        (3.0 * variance.sqrt()).max(Self::MARGIN)
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

    fn halve(&mut self) {
        self.ssthresh = (self.cwnd / 2.0).max(self.floor).max(2.0);
        self.cwnd = (self.cwnd / 2.0).max(self.floor);
    }

    /// A probe left (the trials compare send rates).
    pub fn on_sent(&mut self) {
        self.period.sent = self.period.sent.saturating_add(1);
    }

    /// An answer arrived; `lost` says an earlier try of the same probe
    /// went unanswered. `interval` is the probe timeout, the shortest
    /// period. Returns whether the window decreased.
    pub fn on_answer(
        &mut self,
        lost: bool,
        now: Instant,
        interval: Duration,
        aggressive: bool,
    ) -> bool {
        let sample = if lost { 1.0 } else { 0.0 };
        self.loss_level += (sample - self.loss_level) * Self::LEVEL_WEIGHT;
        self.period.answers = self.period.answers.saturating_add(1);
        self.period.lost += u32::from(lost);
        if !lost || (self.trial.is_none() && self.loss_is_random()) {
            self.grow(aggressive);
        }
        let start = *self.period.start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed < interval || self.period.answers < Self::PERIOD_ANSWERS {
            return false;
        }
        let p = std::mem::take(&mut self.period);
        self.period.start = Some(now);
        let secs = elapsed.as_secs_f64().max(1e-6);
        let level = f64::from(p.lost) / f64::from(p.answers);
        let send_rate = f64::from(p.sent) / secs;
        let answer_rate = f64::from(p.answers) / secs;
        let above = level > self.baseline + Self::noise_margin(self.baseline, p.answers);
        let now_rates = Trial {
            window: (self.cwnd, self.ssthresh),
            send_rate,
            answer_rate,
            level,
        };
        let Some(trial) = self.trial.take() else {
            if above {
                self.trial = Some(now_rates);
                self.halve();
            }
            return above;
        };
        if send_rate > trial.send_rate * Self::RATE_DROPPED {
            // The window does not bind the rate yet: back off further
            // while the loss stays.
            if above {
                self.trial = Some(trial);
                self.halve();
            }
            return above;
        }
        // Answers that fell with the sends would now come at this rate,
        // and as many of them would need a retransmission.
        let if_random = trial.answer_rate * send_rate / trial.send_rate;
        let fell_with_sends = answer_rate < (trial.answer_rate + if_random) / 2.0;
        let loss_held = level > trial.level * Self::HELPED;
        if fell_with_sends && loss_held {
            // They did: the loss is the path's, whatever we send.
            self.baseline = self.baseline.max(level);
            self.cwnd = self.cwnd.max(trial.window.0).min(self.ceiling);
            self.ssthresh = self.ssthresh.max(trial.window.1);
            return false;
        }
        // They held up: we sent past what the path or the target
        // carries. The window stays down, and follows the loss.
        if above {
            self.trial = Some(now_rates);
            self.halve();
        }
        above
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

    /// Counts one probe sent.
    pub fn on_sent(&mut self) {
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

    /// A link for the window's tests, in steps of a millisecond: the
    /// scanner sends what the window allows (in-flight probes are held
    /// `hold` on average) up to `cpu` probes a second; `lost` of the
    /// tries are lost at random, and the target answers at most `limit`
    /// a second (what it cuts is retried, and its answer needs a
    /// retransmission). Returns the decreases.
    struct Link {
        cpu: f64,
        hold: Duration,
        lost: f64,
        limit: f64,
    }

    impl Link {
        fn drive(&self, w: &mut Window, from: Instant, millis: u64) -> usize {
            let timeout = Duration::from_millis(100);
            let mut decreases = 0;
            let mut carry = (0.0, 0.0);
            let mut pending = 0u64;
            for ms in 0..millis {
                let now = from + Duration::from_millis(ms);
                let rate = self
                    .cpu
                    .min(f64::from(w.allowed()) / self.hold.as_secs_f64());
                let sends = rate / 1000.0 + carry.0;
                carry.0 = sends.fract();
                for _ in 0..sends as u64 {
                    w.on_sent();
                }
                let reaching = (sends.trunc() * (1.0 - self.lost)).min(self.limit / 1000.0);
                let answers = reaching + carry.1;
                carry.1 = answers.fract();
                let n = answers as u64;
                // The share of answers that needed a retransmission: what
                // the loss and the limit cut. Retries go out together
                // after a timeout, so those answers come back in a clump
                // every 10 ms.
                let cut = 1.0 - reaching / sends.trunc().max(1.0);
                let retried = (n as f64 * cut).round() as u64;
                for _ in retried..n {
                    decreases += usize::from(w.on_answer(false, now, timeout, false));
                }
                pending += retried;
                if ms % 10 == 9 {
                    for _ in 0..std::mem::take(&mut pending) {
                        decreases += usize::from(w.on_answer(true, now, timeout, false));
                    }
                }
            }
            decreases
        }
    }

    #[test]
    fn random_loss_is_told_from_a_limit_and_the_window_given_back() {
        // 19% of tries lost (10% each way), the machine sending 150,000
        // a second: backing off lowers the answers as much as the sends,
        // so the loss is the path's and the window comes back.
        let t0 = Instant::now();
        let link = Link {
            cpu: 150_000.0,
            hold: Duration::from_millis(5),
            lost: 0.19,
            limit: f64::INFINITY,
        };
        let mut w = Window::new(4096, 1, 4096);
        let decreases = link.drive(&mut w, t0, 3000);
        assert!(w.loss_is_random());
        assert!(decreases <= 4, "{decreases} decreases");
        assert!(w.allowed() >= 2048, "window {}", w.allowed());
    }

    #[test]
    fn a_target_that_limits_its_answers_keeps_the_window_down() {
        // A target that resets at most 2,000 ports a second: backing off
        // does not lower the answers, so the window follows the loss down.
        let t0 = Instant::now();
        let link = Link {
            cpu: 150_000.0,
            hold: Duration::from_millis(5),
            lost: 0.0,
            limit: 2_000.0,
        };
        let mut w = Window::new(4096, 1, 4096);
        let decreases = link.drive(&mut w, t0, 3000);
        assert!(!w.loss_is_random());
        assert!(decreases >= 5, "{decreases} decreases");
        assert!(w.allowed() <= 64, "window {}", w.allowed());
    }

    #[test]
    fn a_limit_behind_random_loss_still_brings_the_window_down() {
        let t0 = Instant::now();
        let mut w = Window::new(4096, 1, 4096);
        let lossy = Link {
            cpu: 150_000.0,
            hold: Duration::from_millis(5),
            lost: 0.19,
            limit: f64::INFINITY,
        };
        lossy.drive(&mut w, t0, 2000);
        assert!(w.loss_is_random());
        let before = w.allowed();
        let limited = Link {
            limit: 2_000.0,
            ..lossy
        };
        let decreases = limited.drive(&mut w, t0 + Duration::from_secs(2), 3000);
        assert!(decreases >= 3, "{decreases} decreases");
        assert!(
            w.allowed() < before / 8,
            "window {} from {before}",
            w.allowed()
        );
    }

    #[test]
    fn rate_limiter_paces_to_max_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(t0, None, Some(1000.0));
        let mut sent_at_start = 0;
        while r.next_allowed(t0).is_none() {
            r.on_sent();
            sent_at_start += 1;
        }
        assert_eq!(sent_at_start, 5, "5 ms of burst at 1000/s");
        let due = r.next_allowed(t0).unwrap();
        assert_eq!(due - t0, Duration::from_millis(1));
        assert!(r.next_allowed(due).is_none());
    }

    #[test]
    fn min_rate_reports_falling_behind() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(t0, Some(100.0), None);
        assert!(!r.behind_min_rate(t0));
        assert!(r.behind_min_rate(t0 + Duration::from_millis(20)));
        r.on_sent();
        r.on_sent();
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
