//! The offline transport (`--offline`, as masscan's): a raw scan's whole
//! engine (targets, permutation, scheduler, probe modules stamping every
//! probe into a buffer) with no socket at all, so that the engine's own
//! cost can be measured, and nothing can be sent even by a bug.
//!
//! Nothing answers, so every probe times out. Waiting for timeouts in real
//! time would measure the timeouts, not the engine: time here is virtual
//! (as in the scheduler's tests), jumping to the scheduler's next wakeup
//! whenever it has nothing to send. The scan takes the CPU time its
//! engine needs and no more; probes per second of wall time are the
//! engine's rate.
//!
//! Contract: no socket, no system call per probe; a fixed stamping buffer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use portolan_engine::{ScanEvent, Scheduler};

use crate::cookie::CookieJar;
use crate::probe::{Keys, SourcePorts};
use crate::raw::{Modules, RawError, RawOptions, RawProbes, RawStats, stamp_offline};
use crate::{Control, Observer};

/// Probes stamped between two looks at the observer.
const TURN: usize = 4096;

/// Runs a raw scan offline to its end (or interruption), handing every
/// event of the scheduler to `sink`. `RawStats::sent` counts the probes
/// stamped; nothing is received.
pub fn run(
    scheduler: &mut Scheduler,
    options: &RawOptions,
    observer: &mut dyn Observer,
    sink: &mut dyn FnMut(ScanEvent),
) -> Result<RawStats, RawError> {
    let jar = CookieJar::new(options.key.0, options.key.1);
    let keys = Keys {
        jar: &jar,
        ports: SourcePorts::from_base(options.source_port.unwrap_or(40_000)),
    };
    let scanflags = match options.probes {
        RawProbes::Tcp { flags, .. } => flags,
        _ => None,
    };
    let mut modules = Modules::new(&options.probes, scanflags);
    let source_of = |v4: bool| {
        options
            .sources
            .iter()
            .copied()
            .find(|s| s.is_ipv4() == v4)
            .unwrap_or(if v4 {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            })
    };
    let (v4_source, v6_source) = (source_of(true), source_of(false));
    let mut buffer = [0u8; 2048];
    let mut stats = RawStats::default();
    let mut now = Instant::now();
    loop {
        observer.packets(&stats);
        if observer.tick(scheduler, now) == Control::Interrupt {
            scheduler.interrupt(now);
        }
        let mut cancelled = 0;
        while cancelled < crate::CANCEL_BUDGET && scheduler.poll_cancel(now).is_some() {
            cancelled += 1;
        }
        let mut handed = 0;
        while handed < TURN {
            let Some(probe) = scheduler.poll_probe(now) else {
                break;
            };
            handed += 1;
            let source = if probe.addr.is_ipv4() {
                v4_source
            } else {
                v6_source
            };
            stamp_offline(
                &mut modules,
                &options.probes,
                probe,
                source,
                &keys,
                &mut buffer,
            )?;
            stats.sent += 1;
        }
        while let Some(event) = scheduler.poll_event() {
            sink(event);
        }
        if scheduler.is_finished() {
            return Ok(stats);
        }
        if handed == 0 && cancelled < crate::CANCEL_BUDGET {
            // Nothing to send before the next timeout or pacing slot:
            // jump there.
            now = scheduler
                .next_wakeup(now)
                .map_or(now + Duration::from_millis(1), |t| t.max(now));
        }
    }
}
