//! The send rate a tool reaches while it sends: the scanner interface's
//! transmitted-packet counter, sampled every [`PERIOD`] from inside the
//! scanner's namespace while the tool runs. The peak over those periods
//! is the figure the issue asks for ("peak packets per second"); a tool's
//! average over its wall time hides how fast it really sends when it
//! waits seconds at its end (masscan and ZMap do, by design).
//!
//! The sampling thread enters the namespace with `setns(2)` (through
//! [`portolan_lab::in_namespace`]) and reads `/proc/thread-self/net/dev`,
//! which shows the thread's own namespace; `/sys/class/net` would show the
//! namespace `/sys` was mounted in.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the counter is read.
pub const PERIOD: Duration = Duration::from_millis(50);

/// A running sampler; [`TxSampler::stop`] gives the peak rate.
pub struct TxSampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Option<f64>>>,
}

impl TxSampler {
    /// Starts sampling `interface`'s transmitted packets in `namespace`.
    pub fn start(namespace: &str, interface: &str) -> TxSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (namespace, interface) = (namespace.to_owned(), interface.to_owned());
        let thread = std::thread::spawn(move || {
            portolan_lab::in_namespace(&namespace, || sample(&interface, &flag))
                .ok()
                .flatten()
        });
        TxSampler {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling: the highest rate over one period, in packets per
    /// second (`None` if the counter could not be read).
    pub fn stop(mut self) -> Option<f64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take()?.join().ok().flatten()
    }
}

impl Drop for TxSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Samples until `stop`, bounded to an hour in any case.
fn sample(interface: &str, stop: &AtomicBool) -> Option<f64> {
    let started = Instant::now();
    let mut last = (Instant::now(), tx_packets(interface)?);
    let mut peak: f64 = 0.0;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(3600) {
        std::thread::sleep(PERIOD);
        let now = (Instant::now(), tx_packets(interface)?);
        let secs = now.0.duration_since(last.0).as_secs_f64();
        if secs > 0.0 {
            peak = peak.max(now.1.saturating_sub(last.1) as f64 / secs);
        }
        last = now;
    }
    Some(peak)
}

/// The interface's transmitted packets, from the thread's namespace.
fn tx_packets(interface: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev").ok()?;
    parse_tx_packets(&text, interface)
}

/// The transmitted-packet field of `interface`'s line of `/proc/net/dev`
/// (after the name: eight receive fields, then bytes and packets sent).
fn parse_tx_packets(text: &str, interface: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, fields) = line.split_once(':')?;
        (name.trim() == interface).then(|| fields.split_whitespace().nth(9)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_packets_sent_of_the_named_interface() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
             lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n\
             pl1x0: 5000 70 0 0 0 0 0 0 3538944 65536 0 0 0 0 0 0\n";
        assert_eq!(parse_tx_packets(text, "pl1x0"), Some(65536));
        assert_eq!(parse_tx_packets(text, "lo"), Some(2));
        assert_eq!(parse_tx_packets(text, "pl1x"), None);
    }
}
