//! Reverse DNS for the scan's hosts, as nmap does it: hosts that answered
//! a probe by default, every host with `-R`, none with `-n`; the system's
//! servers (`/etc/resolv.conf`) unless `--dns-servers` names others.
//!
//! Lookups run beside the scan on portolan-dns's thread, started as each
//! host finishes. A finished host that waits for its name is held here
//! until its answer comes or [`HOST_WAIT`] has passed, then written
//! (without a name if none came); hosts that need no lookup are written at
//! once, so a slow or dead server delays only the hosts it is asked about,
//! each by [`HOST_WAIT`] at most, and the scan's end by as much at most.
//! Ctrl-C writes every held host at once.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use portolan_dns::{Outcome, ResolverConfig, ReverseResolver};
use portolan_engine::{HostReport, HostStatus, Reason};

use crate::enrich::Enricher;
use crate::{ReverseDns, ScanConfig, ScanError};

/// How long a finished host waits for its name at most (the resolver's
/// three tries of 700 ms fit in it).
pub const HOST_WAIT: Duration = Duration::from_millis(2500);

/// Finished hosts waiting for their names, and the resolver asked.
pub struct Names {
    resolver: ReverseResolver,
    every_host: bool,
    /// Held hosts by address, oldest first.
    held: HashMap<IpAddr, VecDeque<(HostReport, Instant)>>,
    /// When each held host's wait ends, in the order they were held.
    deadlines: VecDeque<(Instant, IpAddr)>,
}

impl Names {
    /// The resolver the configuration asks for; `None` with `-n`.
    pub fn start(config: &ScanConfig) -> Result<Option<Names>, ScanError> {
        if config.reverse_dns == ReverseDns::Never {
            return Ok(None);
        }
        let servers = config
            .dns_servers
            .clone()
            .unwrap_or_else(portolan_dns::system::system_nameservers);
        let resolver =
            ReverseResolver::start(ResolverConfig::new(servers)).map_err(ScanError::ReverseDns)?;
        Ok(Some(Names {
            resolver,
            every_host: config.reverse_dns == ReverseDns::Always,
            held: HashMap::new(),
            deadlines: VecDeque::new(),
        }))
    }

    /// Whether `report`'s host gets a lookup: with `-R` every host, else
    /// those found up by an answer (discovery's, or a TCP answer from the
    /// host itself). Never this machine's loopback addresses: a DNS
    /// server knows nothing of them (their names are in /etc/hosts), and
    /// a scan of loopback sends nothing off the machine.
    fn wanted(&self, report: &HostReport) -> bool {
        if report.target.addr.is_loopback() {
            return false;
        }
        self.every_host
            || matches!(report.status, HostStatus::Up(r) if r.proves_host_up())
            || (matches!(report.status, HostStatus::Up(_))
                && report.ports.iter().any(|p| {
                    matches!(
                        p.reason,
                        Reason::SynAck | Reason::Reset | Reason::ConnRefused | Reason::ConnReset
                    )
                }))
    }

    /// The oldest held host of `addr`, named when `outcome` found a name.
    fn answered(&mut self, addr: IpAddr, outcome: Outcome) -> Option<HostReport> {
        let queue = self.held.get_mut(&addr)?;
        let (mut report, _) = queue.pop_front()?;
        if queue.is_empty() {
            self.held.remove(&addr);
        }
        if let Outcome::Found(name) = outcome {
            report.target.rdns = Some(name.to_arc());
        }
        Some(report)
    }
}

impl Enricher for Names {
    /// A host is done: returns it when it needs no name, else holds it and
    /// starts its lookup.
    fn submit(&mut self, report: HostReport, now: Instant) -> Option<HostReport> {
        if !self.wanted(&report) {
            return Some(report);
        }
        let addr = report.target.addr;
        let until = now + HOST_WAIT;
        self.resolver.lookup(addr, Some(until));
        self.held
            .entry(addr)
            .or_default()
            .push_back((report, until));
        self.deadlines.push_back((until, addr));
        None
    }

    /// Held hosts that got their answer, or whose wait ended, by `now`.
    fn ready(&mut self, now: Instant, out: &mut Vec<HostReport>) {
        while let Some(resolved) = self.resolver.try_result() {
            out.extend(self.answered(resolved.addr, resolved.outcome));
        }
        while let Some(&(until, addr)) = self.deadlines.front() {
            if until > now {
                break;
            }
            self.deadlines.pop_front();
            // Skip deadlines of hosts an answer has released already.
            if let Some(queue) = self.held.get_mut(&addr)
                && queue.front().is_some_and(|(_, u)| *u <= now)
                && let Some((report, _)) = queue.pop_front()
            {
                out.push(report);
                if queue.is_empty() {
                    self.held.remove(&addr);
                }
            }
        }
    }

    fn pending(&self) -> usize {
        self.held.values().map(VecDeque::len).sum()
    }

    /// The scan is over: waits, when `wait`, for the held hosts' answers
    /// until their waits end, then returns every held host.
    fn finish(&mut self, wait: bool) -> Vec<HostReport> {
        let mut out = Vec::new();
        if wait {
            let last = self.deadlines.back().map(|&(until, _)| until);
            if let Some(last) = last {
                while !self.held.is_empty() {
                    let Some(resolved) = self.resolver.result_before(last) else {
                        break;
                    };
                    out.extend(self.answered(resolved.addr, resolved.outcome));
                }
            }
        }
        self.deadlines.clear();
        out.extend(
            self.held
                .drain()
                .flat_map(|(_, q)| q.into_iter().map(|(r, _)| r)),
        );
        out
    }
}
