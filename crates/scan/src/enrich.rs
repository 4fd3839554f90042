//! Enrichers: what is learned about a host after its ports are scanned
//! (version detection, reverse DNS; later OS detection and scripts), one
//! trait for all, run per host as hosts finish.
//!
//! A finished host is handed to each enricher in turn ([`Chain`]); an
//! enricher returns it at once when it has nothing to add, or holds it
//! while its work runs beside the scan and hands it back from
//! [`Enricher::ready`], which the scan calls on every turn of its loop.
//! So hosts stream out, each as soon as its own enrichment is done, and
//! memory holds only the hosts being enriched: when more than
//! [`MAX_PENDING`] are, the scan waits for some before it goes on.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portolan_engine::{HostReport, PortService, PortState, Reason};
use portolan_service::db::Transport;
use portolan_service::{DetectOptions, DetectTarget, Detector, ProbeDb};
use portolan_targets::Protocol;

use crate::{ScanError, VersionConfig};

/// Hosts held by the enrichers at most before the scan waits for them.
pub const MAX_PENDING: usize = 1024;

/// How long the scan waits at a time for held hosts when it must.
const DRAIN_WAIT: Duration = Duration::from_millis(50);

/// Something that adds to a finished host's report.
pub trait Enricher: Send {
    /// A host is done: returns it when there is nothing to add (or the
    /// addition was immediate), else holds it.
    fn submit(&mut self, report: HostReport, now: Instant) -> Option<HostReport>;
    /// Appends to `out` the held hosts whose enrichment is done by `now`.
    fn ready(&mut self, now: Instant, out: &mut Vec<HostReport>);
    /// How many hosts it holds.
    fn pending(&self) -> usize;
    /// Waits up to `wait` for one held host to be done, and appends it
    /// (and any other done by then) to `out`. By default only polls.
    fn ready_within(&mut self, wait: Duration, out: &mut Vec<HostReport>) {
        let _ = wait;
        self.ready(Instant::now(), out);
    }
    /// The scan is over: waits, when `wait`, for the held hosts (bounded
    /// by the enricher's own limits), then returns every held host.
    fn finish(&mut self, wait: bool) -> Vec<HostReport>;
}

/// The enrichers of a scan, in order: a host goes through each in turn.
#[derive(Default)]
pub struct Chain {
    stages: Vec<Box<dyn Enricher>>,
}

impl Chain {
    /// A chain of `stages`, applied in order.
    pub fn new(stages: Vec<Box<dyn Enricher>>) -> Chain {
        Chain { stages }
    }

    /// Hosts held anywhere in the chain.
    pub fn pending(&self) -> usize {
        self.stages.iter().map(|s| s.pending()).sum()
    }

    /// Passes `report` on from stage `from`; appends it to `out` if no
    /// later stage holds it.
    fn pass(&mut self, from: usize, report: HostReport, now: Instant, out: &mut Vec<HostReport>) {
        let mut report = report;
        for stage in &mut self.stages[from..] {
            match stage.submit(report, now) {
                Some(r) => report = r,
                None => return,
            }
        }
        out.push(report);
    }

    /// A host is done: appends it to `out` when no stage holds it.
    pub fn submit(&mut self, report: HostReport, now: Instant, out: &mut Vec<HostReport>) {
        self.pass(0, report, now, out);
    }

    /// Appends to `out` the hosts the chain is done with by `now`.
    pub fn ready(&mut self, now: Instant, out: &mut Vec<HostReport>) {
        for i in 0..self.stages.len() {
            let mut done = Vec::new();
            self.stages[i].ready(now, &mut done);
            for report in done {
                self.pass(i + 1, report, now, out);
            }
        }
    }

    /// While more than [`MAX_PENDING`] hosts are held, waits for some;
    /// appends those done to `out`. `stopped` ends the wait.
    pub fn keep_bounded(&mut self, out: &mut Vec<HostReport>, stopped: &dyn Fn() -> bool) {
        while self.pending() > MAX_PENDING && !stopped() {
            let Some(i) = self.stages.iter().position(|s| s.pending() > 0) else {
                return;
            };
            let mut done = Vec::new();
            self.stages[i].ready_within(DRAIN_WAIT, &mut done);
            let now = Instant::now();
            for report in done {
                self.pass(i + 1, report, now, out);
            }
            self.ready(now, out);
        }
    }

    /// The scan is over: every held host, each stage waited for (when
    /// `wait`) in order.
    pub fn finish(&mut self, wait: bool) -> Vec<HostReport> {
        let mut out = Vec::new();
        for i in 0..self.stages.len() {
            let done = self.stages[i].finish(wait);
            let now = Instant::now();
            for report in done {
                self.pass(i + 1, report, now, &mut out);
            }
        }
        out
    }
}

/// Version detection (`-sV`) as an enricher: each finished host's open
/// TCP ports and open or open|filtered UDP ports are probed on the
/// caller's tokio runtime while the scan goes on. A UDP port the scan left
/// open|filtered that answers a probe becomes open, reason
/// `udp-response`, as in nmap.
pub struct Services {
    detector: Detector,
    tasks: Tasks,
}

/// Hosts held while work on them runs on a tokio runtime: what the
/// enrichers that work beside the scan share. Each task hands its host
/// back through a channel when done.
pub(crate) struct Tasks {
    runtime: tokio::runtime::Handle,
    done_tx: mpsc::Sender<HostReport>,
    done_rx: mpsc::Receiver<HostReport>,
    pending: usize,
}

impl Tasks {
    pub(crate) fn new(runtime: tokio::runtime::Handle) -> Tasks {
        let (done_tx, done_rx) = mpsc::channel();
        Tasks {
            runtime,
            done_tx,
            done_rx,
            pending: 0,
        }
    }

    /// Holds a host until `work` hands it back.
    pub(crate) fn spawn(
        &mut self,
        work: impl std::future::Future<Output = HostReport> + Send + 'static,
    ) {
        let done = self.done_tx.clone();
        self.runtime.spawn(async move {
            let _ = done.send(work.await);
        });
        self.pending += 1;
    }

    /// See [`Enricher::ready`].
    pub(crate) fn ready(&mut self, out: &mut Vec<HostReport>) {
        while let Ok(report) = self.done_rx.try_recv() {
            self.pending -= 1;
            out.push(report);
        }
    }

    /// See [`Enricher::pending`].
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// See [`Enricher::ready_within`].
    pub(crate) fn ready_within(&mut self, wait: Duration, out: &mut Vec<HostReport>) {
        if let Ok(report) = self.done_rx.recv_timeout(wait) {
            self.pending -= 1;
            out.push(report);
        }
        self.ready(out);
    }

    /// Waits for every held host. The tasks must end by themselves
    /// (bounded by their own timeouts, or the stop token); one that dies
    /// drops its sender: with ours dropped too, the channel then closes
    /// instead of waiting forever.
    pub(crate) fn finish(&mut self) -> Vec<HostReport> {
        drop(std::mem::replace(&mut self.done_tx, mpsc::channel().0));
        let mut out = Vec::new();
        while self.pending > 0 {
            match self.done_rx.recv() {
                Ok(report) => {
                    self.pending -= 1;
                    out.push(report);
                }
                Err(_) => break,
            }
        }
        out
    }
}

impl Services {
    /// Detection with `db` as `config` says, on `runtime`; `stop` (the
    /// scan's stop token) ends it early.
    pub fn new(
        db: Arc<ProbeDb>,
        config: &VersionConfig,
        runtime: tokio::runtime::Handle,
        stop: Arc<AtomicBool>,
    ) -> Result<Services, ScanError> {
        let options = DetectOptions {
            intensity: config.intensity,
            service_timeout: config.timeout,
            stop: Some(stop),
            ..DetectOptions::default()
        };
        let detector = Detector::new(db, options).map_err(ScanError::Detection)?;
        Ok(Services {
            detector,
            tasks: Tasks::new(runtime),
        })
    }
}

/// The ports of `report` version detection probes.
fn detection_targets(report: &HostReport) -> Vec<(Protocol, DetectTarget)> {
    report
        .ports
        .iter()
        .filter_map(|p| {
            let transport = match (p.proto, p.state) {
                (Protocol::Tcp, PortState::Open) => Transport::Tcp,
                (Protocol::Udp, PortState::Open | PortState::OpenFiltered) => Transport::Udp,
                _ => return None,
            };
            Some((
                p.proto,
                DetectTarget {
                    addr: std::net::SocketAddr::new(report.target.addr, p.port),
                    transport,
                    rtt: report.times.srtt,
                },
            ))
        })
        .collect()
}

/// Records what detection found in `report`.
fn apply(
    report: &mut HostReport,
    targets: &[(Protocol, DetectTarget)],
    found: Vec<portolan_service::Detected>,
) {
    for (&(proto, target), detected) in targets.iter().zip(found) {
        let port = target.addr.port();
        if proto == Protocol::Udp
            && detected.answered
            && let Some(outcome) = report
                .ports
                .iter_mut()
                .find(|p| p.proto == proto && p.port == port)
            && outcome.state == PortState::OpenFiltered
        {
            outcome.state = PortState::Open;
            outcome.reason = Reason::UdpResponse;
            outcome.reason_ttl = None;
        }
        // A UDP port nothing answered keeps its state and gets no service
        // line of its own beyond the table's name, as nmap prints it.
        report.services.push(PortService {
            port,
            proto,
            info: detected.info,
        });
    }
}

// Detection ends by itself: each port is bounded by the version timeout,
// and the stop token aborts every port within a poll.
impl TaskWork for Services {
    fn work(
        &mut self,
        mut report: HostReport,
    ) -> Result<impl std::future::Future<Output = HostReport> + Send + 'static, HostReport> {
        let targets = detection_targets(&report);
        if targets.is_empty() {
            return Err(report);
        }
        let detector = self.detector.clone();
        Ok(async move {
            let list: Vec<DetectTarget> = targets.iter().map(|t| t.1).collect();
            let found = detector.detect(&list).await;
            apply(&mut report, &targets, found);
            report
        })
    }

    fn tasks(&mut self) -> &mut Tasks {
        &mut self.tasks
    }

    fn held(&self) -> usize {
        self.tasks.pending()
    }
}

/// An enricher whose work on a host is one task on a tokio runtime, held
/// in [`Tasks`]; the work must end by itself (bounded by its own
/// timeouts, or the scan's stop token).
pub(crate) trait TaskWork: Send {
    /// The work for `report`, or `report` back when there is none.
    // The report moves by value either way; boxing it to return it would
    // cost an allocation per host for nothing.
    #[allow(clippy::result_large_err)]
    fn work(
        &mut self,
        report: HostReport,
    ) -> Result<impl std::future::Future<Output = HostReport> + Send + 'static, HostReport>;
    /// Where its tasks are held.
    fn tasks(&mut self) -> &mut Tasks;
    /// How many hosts its tasks hold.
    fn held(&self) -> usize;
}

impl<T: TaskWork> Enricher for T {
    fn submit(&mut self, report: HostReport, _now: Instant) -> Option<HostReport> {
        match self.work(report) {
            Ok(work) => {
                self.tasks().spawn(work);
                None
            }
            Err(report) => Some(report),
        }
    }

    fn ready(&mut self, _now: Instant, out: &mut Vec<HostReport>) {
        self.tasks().ready(out);
    }

    fn pending(&self) -> usize {
        self.held()
    }

    fn ready_within(&mut self, wait: Duration, out: &mut Vec<HostReport>) {
        self.tasks().ready_within(wait, out);
    }

    fn finish(&mut self, _wait: bool) -> Vec<HostReport> {
        self.tasks().finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::net::IpAddr;
    use std::time::SystemTime;

    use portolan_engine::{HostStatus, HostTimes};
    use portolan_targets::Target;

    use super::*;

    fn host(n: u32) -> HostReport {
        HostReport {
            target: Target::from_addr(IpAddr::from(n.to_be_bytes())),
            status: HostStatus::Down,
            reason_ttl: None,
            mac: None,
            ports: Vec::new(),
            times: HostTimes::default(),
            started: SystemTime::UNIX_EPOCH,
            finished: SystemTime::UNIX_EPOCH,
            services: Vec::new(),
            extra: Default::default(),
        }
    }

    /// Holds every host with an even address and gives one back per wait;
    /// marks what it saw in the hosts' notes.
    #[derive(Default)]
    struct Slow {
        held: VecDeque<HostReport>,
        most_held: usize,
    }

    impl Enricher for Slow {
        fn submit(&mut self, mut report: HostReport, _now: Instant) -> Option<HostReport> {
            report.extra.notes.push("slow".into());
            let IpAddr::V4(a) = report.target.addr else {
                return Some(report);
            };
            if u32::from(a) % 2 == 1 {
                return Some(report);
            }
            self.held.push_back(report);
            self.most_held = self.most_held.max(self.held.len());
            None
        }

        fn ready(&mut self, _now: Instant, _out: &mut Vec<HostReport>) {}

        fn pending(&self) -> usize {
            self.held.len()
        }

        fn ready_within(&mut self, _wait: Duration, out: &mut Vec<HostReport>) {
            out.extend(self.held.pop_front());
        }

        fn finish(&mut self, _wait: bool) -> Vec<HostReport> {
            self.held.drain(..).collect()
        }
    }

    /// Appends "last" to every host's notes, holding none.
    struct Last;

    impl Enricher for Last {
        fn submit(&mut self, mut report: HostReport, _now: Instant) -> Option<HostReport> {
            report.extra.notes.push("last".into());
            Some(report)
        }

        fn ready(&mut self, _now: Instant, _out: &mut Vec<HostReport>) {}

        fn pending(&self) -> usize {
            0
        }

        fn finish(&mut self, _wait: bool) -> Vec<HostReport> {
            Vec::new()
        }
    }

    #[test]
    fn every_host_goes_through_every_stage_once_and_the_chain_stays_bounded() {
        let mut chain = Chain::new(vec![Box::new(Slow::default()), Box::new(Last)]);
        let mut out = Vec::new();
        let total = 3 * MAX_PENDING as u32;
        for n in 0..total {
            chain.submit(host(n), Instant::now(), &mut out);
            chain.keep_bounded(&mut out, &|| false);
            assert!(chain.pending() <= MAX_PENDING, "{} held", chain.pending());
        }
        out.extend(chain.finish(true));
        assert_eq!(out.len(), total as usize);
        let mut seen: Vec<IpAddr> = out.iter().map(|h| h.target.addr).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), total as usize, "a host came out twice");
        for h in &out {
            assert_eq!(h.extra.notes, ["slow", "last"], "{}", h.target.addr);
        }
        // Hosts the slow stage had nothing to do for came out at once.
        assert_eq!(out[0].target.addr, IpAddr::from(1u32.to_be_bytes()));
    }

    #[test]
    fn a_stop_ends_the_wait_for_held_hosts() {
        let mut chain = Chain::new(vec![Box::new(Slow::default())]);
        let mut out = Vec::new();
        for n in 0..=(2 * MAX_PENDING as u32 + 2) {
            chain.submit(host(n), Instant::now(), &mut out);
        }
        let held = chain.pending();
        assert!(held > MAX_PENDING);
        chain.keep_bounded(&mut out, &|| true);
        assert_eq!(chain.pending(), held, "stopped: nothing waited for");
        assert_eq!(chain.finish(false).len(), held);
    }
}
