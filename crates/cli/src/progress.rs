//! The live progress display and `--stats-every` status lines.
//!
//! The bar (indicatif, on standard error) appears only when standard error
//! is a terminal and the scan has run for [`SHOW_AFTER`], so short scans
//! and piped output stay clean. Status lines go to standard error at the
//! interval the user set, terminal or not.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use portolan_engine::{PortState, Scheduler};

/// Scans shorter than this never show a bar.
const SHOW_AFTER: Duration = Duration::from_secs(2);
/// How often the bar is refreshed.
const REFRESH: Duration = Duration::from_millis(100);

/// Progress state of one scan.
pub struct Progress {
    bar: Option<ProgressBar>,
    shown: bool,
    start: Instant,
    last_refresh: Instant,
    stats_every: Option<Duration>,
    last_stats: Instant,
}

impl Progress {
    /// A display for a scan of `planned` (host, port) pairs.
    pub fn new(
        planned: u128,
        start: Instant,
        bar: bool,
        stats_every: Option<Duration>,
    ) -> Progress {
        let bar = bar.then(|| {
            let len = u64::try_from(planned).unwrap_or(u64::MAX);
            let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {percent}% {human_pos}/{human_len} ports, \
                     ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        Progress {
            bar,
            shown: false,
            start,
            last_refresh: start,
            stats_every,
            last_stats: start,
        }
    }

    /// A handle on the bar, to suspend it while writing to the terminal.
    pub fn bar(&self) -> Option<ProgressBar> {
        self.bar.clone()
    }

    /// Refreshes the display from the scheduler's counters.
    pub fn update(&mut self, scheduler: &Scheduler, now: Instant) {
        if let Some(every) = self.stats_every
            && now.duration_since(self.last_stats) >= every
        {
            self.last_stats = now;
            let s = scheduler.stats();
            let elapsed = now.duration_since(self.start);
            let planned = scheduler.planned_ports().max(1) as f64;
            let line = format!(
                "Stats: {:.1}s elapsed; {} hosts completed; {} of {} ports done ({:.2}%); \
                 {} open; {:.0} probes/s",
                elapsed.as_secs_f64(),
                s.hosts_done,
                s.ports_done,
                scheduler.planned_ports(),
                100.0 * s.ports_done as f64 / planned,
                s.ports_by_state[PortState::Open.index()],
                s.probes_sent as f64 / elapsed.as_secs_f64().max(1e-9),
            );
            match &self.bar {
                Some(bar) if self.shown => bar.println(line),
                _ => eprintln!("{line}"),
            }
        }
        let Some(bar) = &self.bar else {
            return;
        };
        if now.duration_since(self.last_refresh) < REFRESH {
            return;
        }
        self.last_refresh = now;
        if !self.shown && now.duration_since(self.start) >= SHOW_AFTER {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
        let s = scheduler.stats();
        let secs = now.duration_since(self.start).as_secs_f64().max(1e-9);
        bar.set_position(s.ports_done);
        bar.set_message(format!(
            "| {} open | {:.0} probes/s | {} in flight",
            s.ports_by_state[PortState::Open.index()],
            s.probes_sent as f64 / secs,
            scheduler.in_flight()
        ));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
