//! What a running scan tells its caller: [`Event`]s, in order, handed to
//! an [`EventSink`] on the scan's thread.
//!
//! The order is fixed: [`Event::Started`] once; then, per phase (host
//! discovery, then each technique, per group of hosts),
//! [`Event::PhaseStarted`], any number of [`Event::Port`],
//! [`Event::HostUp`], [`Event::Host`] and [`Event::Progress`], and
//! [`Event::PhaseFinished`]; hosts still being enriched when the last
//! phase ends come after it; [`Event::Finished`] last. A host's
//! [`Event::Host`] is its final form (every technique's ports, services,
//! name) and comes exactly once, as soon as the host is done, not at the
//! end of the scan.

use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use portolan_engine::{HostReport, PortResult, Reason, ScanStats};
use portolan_model::{PacketStats, ScanInfo, ScanSummary};

use crate::Technique;

/// One thing that happened in a scan.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The scan starts: what it will do.
    Started(&'a ScanInfo),
    /// A phase starts over a group of hosts.
    PhaseStarted(&'a PhaseStart),
    /// Host discovery found a host up; its ports are scanned next.
    HostUp(&'a HostUp),
    /// A port's state is settled (streamed, in no particular order; with
    /// version detection a UDP port may still turn open in its host's
    /// final report).
    Port(&'a PortResult),
    /// A host is done, in its final form.
    Host(&'a HostReport),
    /// The running phase's counters, at least every 50 ms while it runs.
    Progress(&'a Progress),
    /// The phase started last is over.
    PhaseFinished,
    /// The scan is over (also after a stop).
    Finished(&'a ScanSummary),
}

/// A phase of the scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhaseStart {
    /// The technique; `None` for host discovery.
    pub technique: Option<Technique>,
    /// How many (host, port) pairs (or discovery probes) it plans.
    pub planned: u128,
}

/// A host found up by discovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostUp {
    /// The host.
    pub addr: IpAddr,
    /// The answer that proved it up.
    pub reason: Reason,
    /// The answer's TTL, when seen.
    pub reason_ttl: Option<u8>,
}

/// The running phase's counters.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// The phase's counters so far.
    pub stats: ScanStats,
    /// The (host, port) pairs it plans.
    pub planned: u128,
    /// Probes waiting for an answer.
    pub in_flight: u32,
    /// Packet counters of a raw-packet phase.
    pub packets: Option<PacketStats>,
    /// When the counters were read.
    pub at: Instant,
}

/// Where a scan's events go. Called on the scan's thread; a sink that
/// wants the scan to stop (a write failed, a user cancelled) stops the
/// [`crate::StopToken`] it was run with.
pub trait EventSink {
    /// One event.
    fn event(&mut self, event: Event<'_>);
}

impl<F: FnMut(Event<'_>)> EventSink for F {
    fn event(&mut self, event: Event<'_>) {
        self(event)
    }
}

/// A sink that keeps every host, port and the summary: the simplest way
/// to run a scan from code and look at the results afterwards.
#[derive(Debug, Default)]
pub struct Collected {
    /// The scan's information, from [`Event::Started`].
    pub info: Option<ScanInfo>,
    /// Finished hosts, in the order they were reported.
    pub hosts: Vec<HostReport>,
    /// Every streamed port.
    pub ports: Vec<PortResult>,
    /// Hosts discovery found up, in order.
    pub up: Vec<HostUp>,
    /// The summary, from [`Event::Finished`].
    pub summary: Option<ScanSummary>,
    /// When each host was reported, in the order of [`Collected::hosts`].
    pub host_times: Vec<SystemTime>,
}

impl EventSink for Collected {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Started(info) => self.info = Some(info.clone()),
            Event::HostUp(up) => self.up.push(*up),
            Event::Port(port) => self.ports.push(port.clone()),
            Event::Host(host) => {
                self.hosts.push(host.clone());
                self.host_times.push(SystemTime::now());
            }
            Event::Finished(summary) => self.summary = Some(summary.clone()),
            Event::PhaseStarted(_) | Event::Progress(_) | Event::PhaseFinished => {}
        }
    }
}

impl Collected {
    /// The finished report of `addr`, if one came.
    pub fn host(&self, addr: IpAddr) -> Option<&HostReport> {
        self.hosts.iter().find(|h| h.target.addr == addr)
    }
}
