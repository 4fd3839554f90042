//! The live progress display and status lines.
//!
//! The bar (indicatif, on standard error) appears only when standard error
//! is a terminal and the scan has run for [`SHOW_AFTER`], so short scans
//! and piped output stay clean; it shows ports done, open ports, the probe
//! rate, the ETA and, for raw-packet scans, packets sent and received per
//! second. A status line goes to standard error at the interval of
//! `--stats-every`, on `SIGUSR1`, and, as in nmap, when a key is pressed
//! on the terminal the scan runs in (standard input is then read a key at
//! a time, without echo, and restored when the scan ends).

use std::io::IsTerminal;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use portolan_engine::{PortState, ScanStats};

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
    /// Set by `SIGUSR1`.
    status_signal: Arc<AtomicBool>,
    keys: Option<KeyReader>,
    packets: Option<PacketRates>,
}

/// Packet counters of a raw-packet scan and the rates over the last
/// refresh interval.
#[derive(Clone, Copy, Default)]
struct PacketRates {
    sent: u64,
    received: u64,
    ignored: u64,
    at: Option<Instant>,
    base: (u64, u64),
    rates: (f64, f64),
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
        let status_signal = Arc::new(AtomicBool::new(false));
        // Without the handler SIGUSR1 would end the process, as before.
        let _ = signal_hook::flag::register(signal_hook::consts::SIGUSR1, status_signal.clone());
        Progress {
            bar,
            shown: false,
            start,
            last_refresh: start,
            stats_every,
            last_stats: start,
            status_signal,
            keys: KeyReader::new(),
            packets: None,
        }
    }

    /// Takes the packet counters of a raw-packet scan.
    pub fn packets(&mut self, sent: u64, received: u64, ignored: u64) {
        let p = self.packets.get_or_insert_with(PacketRates::default);
        p.sent = sent;
        p.received = received;
        p.ignored = ignored;
    }

    /// Whether a status line was asked for (`SIGUSR1` or a key press).
    fn status_requested(&mut self) -> bool {
        let signalled = self.status_signal.swap(false, Ordering::Relaxed);
        let key = self.keys.as_mut().is_some_and(KeyReader::pressed);
        signalled || key
    }

    /// A handle on the bar, to suspend it while writing to the terminal.
    pub fn bar(&self) -> Option<ProgressBar> {
        self.bar.clone()
    }

    /// Refreshes the display from the running phase's counters: `planned`
    /// (host, port) pairs, `in_flight` probes.
    pub fn update(&mut self, s: &ScanStats, planned: u128, in_flight: u32, now: Instant) {
        let periodic = self
            .stats_every
            .is_some_and(|every| now.duration_since(self.last_stats) >= every);
        if periodic || self.status_requested() {
            self.last_stats = now;
            let elapsed = now.duration_since(self.start);
            let done = s.ports_done as f64 / planned.max(1) as f64;
            let mut line = format!(
                "Stats: {:.1}s elapsed; {} hosts completed; {} of {} ports done ({:.2}%); \
                 {} open; {:.0} probes/s",
                elapsed.as_secs_f64(),
                s.hosts_done,
                s.ports_done,
                planned,
                100.0 * done,
                s.ports_by_state[PortState::Open.index()],
                s.probes_sent as f64 / elapsed.as_secs_f64().max(1e-9),
            );
            if done > 0.0 {
                let left = elapsed.as_secs_f64() * (1.0 - done) / done;
                line.push_str(&format!("; about {left:.0}s left"));
            }
            if let Some(p) = &self.packets {
                line.push_str(&format!(
                    "; packets: {} sent, {} received, {} ignored",
                    p.sent, p.received, p.ignored
                ));
            }
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
        let secs = now.duration_since(self.start).as_secs_f64().max(1e-9);
        bar.set_position(s.ports_done);
        let mut message = format!(
            "| {} open | {} hosts done | {:.0} probes/s | {} in flight",
            s.ports_by_state[PortState::Open.index()],
            s.hosts_done,
            s.probes_sent as f64 / secs,
            in_flight
        );
        if let Some(p) = &mut self.packets {
            if let Some(at) = p.at {
                let dt = now.duration_since(at).as_secs_f64().max(1e-9);
                p.rates = (
                    (p.sent - p.base.0) as f64 / dt,
                    (p.received - p.base.1) as f64 / dt,
                );
            }
            p.at = Some(now);
            p.base = (p.sent, p.received);
            message.push_str(&format!(
                " | {:.0} pkt/s out, {:.0} in",
                p.rates.0, p.rates.1
            ));
        }
        bar.set_message(message);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Reads key presses from the terminal on standard input: the terminal is
/// put in non-canonical mode without echo, and restored when dropped.
struct KeyReader {
    saved: libc::termios,
}

impl KeyReader {
    /// `None` unless standard input is a terminal this process may set
    /// (it is in the terminal's foreground process group).
    fn new() -> Option<KeyReader> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let fd = stdin.as_raw_fd();
        // SAFETY: plain queries on a valid descriptor.
        if unsafe { libc::tcgetpgrp(fd) != libc::getpgrp() } {
            return None;
        }
        // SAFETY: a zeroed termios is valid for tcgetattr to fill.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `saved` is a live termios.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO);
        raw.c_cc[libc::VMIN] = 0;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: `raw` is a valid termios derived from the current one.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return None;
        }
        Some(KeyReader { saved })
    }

    /// Whether a key was pressed since the last call (the keys are read
    /// and discarded).
    fn pressed(&mut self) -> bool {
        let fd = std::io::stdin().as_raw_fd();
        let mut any = false;
        let mut buf = [0u8; 64];
        loop {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd, no waiting.
            if unsafe { libc::poll(&mut pfd, 1, 0) } <= 0 {
                return any;
            }
            // SAFETY: reads at most `buf.len()` bytes into `buf`.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return any;
            }
            any = true;
        }
    }
}

impl Drop for KeyReader {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `new`.
        unsafe {
            libc::tcsetattr(std::io::stdin().as_raw_fd(), libc::TCSANOW, &self.saved);
        }
    }
}
