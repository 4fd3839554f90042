//! Transports: what carries the engine's probes to the network and brings
//! the answers back.
//!
//! - [`capture`]: live capture on one interface for readers that are not
//!   a scan (the detector), on the same ring and filters as the raw
//!   engine's answers.
//! - [`connect`]: the TCP connect scan (`-sT`), non-blocking `connect()`
//!   calls multiplexed on one epoll instance; needs no privilege.
//! - [`context`]: the raw sockets, opened once into a [`context::RawContext`]
//!   the caller holds, so that it can give its privileges up before it
//!   scans; raw scans borrow them.
//! - [`idle`]: the idle scan (`-sI`), spoofed SYNs read back through a
//!   zombie's IP ID, on the raw engine's paths and sockets.
//! - [`offline`]: a raw scan's whole engine with no socket (`--offline`),
//!   in virtual time, to measure the engine alone.
//! - [`probe`]: the probe modules, pure code per technique (TCP, UDP,
//!   SCTP, discovery, OS detection): templates, stamping, validation by cookie, what an answer
//!   proves and what silence means.
//! - [`raw`]: the raw-packet engine on packet sockets, pumping the
//!   modules' probes and answers, with [`route`] (the kernel's routes,
//!   neighbours and links over rtnetlink), a path cache per destination,
//!   a sending thread, and the answering of ARP and Neighbor Discovery
//!   for source addresses it claims (`-S` with several addresses).
//! - [`sys`]: the operating-system specifics (sockets, filters, resource
//!   limits, capabilities, sending batches) and [`ring`] (the packet
//!   socket's receive ring): the only places with `unsafe`.
//!
//! A transport drives a [`portolan_engine::Scheduler`]: it asks for probes,
//! sends them, reports answers and releases what the scheduler cancels.
//! It never decides timing or retries; the scheduler does.

#![deny(missing_docs)]

pub mod capture;
mod claims;
pub mod connect;
pub mod context;
pub mod cookie;
pub mod idle;
pub mod offline;
mod paths;
pub mod probe;
pub mod raw;
pub mod ring;
pub mod route;
mod sender;
pub mod sys;

use std::time::{Duration, Instant};

use portolan_engine::Scheduler;

/// The longest a transport loop waits without calling its observer.
pub const MAX_IDLE: Duration = Duration::from_millis(50);

/// How long a transport loop may wait for answers before its next turn:
/// not at all if it stopped sending only because its per-turn budget ran
/// out, else until the scheduler's next deadline, at most [`MAX_IDLE`].
/// Timeouts handled per turn at most, before the turn sends and hands
/// on the events they made. In a sweep, thousands of silent probes fall
/// due together (in `--offline`'s virtual time, a whole window at once),
/// and each finishes its host: handled all at once, their reports would
/// pile up before the first is written (about half a kilobyte each).
pub(crate) const CANCEL_BUDGET: usize = 4096;

fn turn_wait(scheduler: &Scheduler, now: Instant, budget_spent: bool) -> Duration {
    if budget_spent {
        return Duration::ZERO;
    }
    scheduler
        .next_wakeup(now)
        .map_or(MAX_IDLE, |t| t.saturating_duration_since(now))
        .min(MAX_IDLE)
}

/// What the caller's per-iteration hook wants the transport to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Keep scanning.
    Continue,
    /// Stop: interrupt the scan, release everything, report what was found.
    Interrupt,
}

/// Called by a transport on every turn of its loop (at least every
/// [`MAX_IDLE`]), for progress displays and interruption.
pub trait Observer {
    /// Sees the scheduler between turns.
    fn tick(&mut self, scheduler: &Scheduler, now: Instant) -> Control;

    /// Sees the packet counters of a raw-packet scan, before each
    /// [`Observer::tick`].
    fn packets(&mut self, _stats: &raw::RawStats) {}

    /// Sees each valid answer of a raw TCP scan or of OS detection with
    /// its port (the OS probe's index) and its packet (from the IP header
    /// on), for passive OS hints and fingerprints; the default ignores it.
    fn answered(
        &mut self,
        _target: std::net::IpAddr,
        _port: u16,
        _reply: &portolan_engine::Reply,
        _packet: &[u8],
    ) {
    }

    /// Sees each OS detection probe as it leaves (the SEQ tests read the
    /// times between the SYNs); the default ignores it.
    fn sent(&mut self, _probe: &portolan_engine::Probe, _now: Instant) {}
}

impl<F: FnMut(&Scheduler, Instant) -> Control> Observer for F {
    fn tick(&mut self, scheduler: &Scheduler, now: Instant) -> Control {
        self(scheduler, now)
    }
}
