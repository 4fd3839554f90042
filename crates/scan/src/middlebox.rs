//! SYN proxies told apart from the hosts behind them, as an enricher.
//!
//! A SYN proxy (netfilter's `synproxy`, SYN cookies on a load balancer or
//! a DDoS scrubber) answers a SYN with a SYN-ACK of its own and opens the
//! connection to the host only once the client completes the handshake;
//! when the host refuses it, the proxy resets the client. A SYN scan then
//! reads every port the proxy covers as open, and a connect scan as open
//! too when the reset comes after it looked.
//!
//! A host that looks like that ([`suspect`]: many open ports, or
//! connections reset right after they completed) gets a sample of its
//! open ports connected to, each held open briefly for the far end's
//! reset. When the sample shows resets ([`is_proxied`]), every open port
//! is connected to: those that keep the connection have a service behind
//! them and stay open; those reset after the handshake become `closed`,
//! reason `proxy-reset`, and the host carries a [`Middlebox`] with the
//! evidence. A lone reset on an otherwise real host is a server that
//! accepts and aborts: that port reads `conn-reset` and nothing is
//! flagged. Version detection comes after this stage, so it never probes
//! ports only the proxy answered.
//!
//! Completing handshakes is what a SYN scan otherwise avoids: only
//! suspect hosts are connected to, and `--no-proxy-check` turns it off.
//!
//! A transparent proxy on the path (an ISP's on port 80) answers one
//! port for every address of a range, whatever host is behind it: its
//! SYN-ACKs all come with its own TTL, while the hosts' own answers
//! (resets of closed ports, discovery replies) come with theirs, which
//! differ from it and from one another. That shows only across hosts:
//! [`RangeProxies`] tallies every finished host and names such ports at
//! the end of the scan (a host is written before the range is known, so
//! the finding is the scan's, not the host's).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use portolan_engine::{HostReport, PortState, Reason};
use portolan_model::{Middlebox, MiddleboxKind, PortOutcome, RangeMiddlebox};
use portolan_targets::Protocol;
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;

use crate::enrich::{TaskWork, Tasks};

/// Open TCP ports a host needs at least to be suspect by their number...
const SUSPECT_OPEN: usize = 4;
/// ... when they are also at least half of its scanned TCP ports.
const SUSPECT_SHARE: f64 = 0.5;
/// Open ports of a suspect host connected to first.
const SAMPLE: usize = 4;
/// Resets in the sample that make a host proxied (one is a server that
/// accepts and aborts).
const PROXIED_RESETS: usize = 2;
/// Connections open at once over all hosts (each holds a descriptor).
const CONNECTIONS: usize = 256;
/// How long a completed connection is held for the far end's reset, at
/// least and at most; between, four of the host's round trips.
const HOLD_MIN: Duration = Duration::from_millis(200);
const HOLD_MAX: Duration = Duration::from_secs(2);
/// How long a connection may take to complete, at most.
const CONNECT_MAX: Duration = Duration::from_secs(3);

/// Where the check's connections leave from (`-e`, a single `-S`).
#[derive(Clone, Debug, Default)]
pub struct Binding {
    /// The interface to bind to.
    pub device: Option<String>,
    /// The source address to bind to.
    pub source: Option<IpAddr>,
}

/// What connecting to an open port showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirmed {
    /// The connection completed and stayed up (or the far end sent data,
    /// or closed it in order): a service answered.
    Service,
    /// The connection completed, then the far end reset it.
    Reset,
    /// The connection was refused.
    Refused,
    /// Nothing could be told (no answer, a local error).
    Unknown,
}

/// Whether `report` looks like a host behind a SYN proxy: enough open TCP
/// ports that are most of those scanned, or at least two connections
/// reset right after they completed.
pub fn suspect(report: &HostReport) -> bool {
    let tcp = || report.ports.iter().filter(|p| p.proto == Protocol::Tcp);
    let open = tcp().filter(|p| p.state == PortState::Open).count();
    let resets = tcp().filter(|p| p.reason == Reason::ConnReset).count();
    let scanned = tcp().count();
    resets >= PROXIED_RESETS
        || (open >= SUSPECT_OPEN && open as f64 >= SUSPECT_SHARE * scanned as f64)
}

/// Whether a sample's outcomes show a proxy: at least
/// `PROXIED_RESETS` (2) resets, and at least as many as services.
pub fn is_proxied(sample: &[Confirmed]) -> bool {
    let resets = sample.iter().filter(|&&c| c == Confirmed::Reset).count();
    let services = sample.iter().filter(|&&c| c == Confirmed::Service).count();
    resets >= PROXIED_RESETS && resets >= services
}

/// Up to `n` of `ports`, spread evenly over them (first and last
/// included).
fn spread(ports: &[u16], n: usize) -> Vec<u16> {
    if ports.len() <= n {
        return ports.to_vec();
    }
    (0..n)
        .map(|i| ports[i * (ports.len() - 1) / (n - 1).max(1)])
        .collect()
}

/// How long to hold a connection for a reset, from the host's round trip.
fn hold_time(report: &HostReport) -> Duration {
    report
        .times
        .srtt
        .map_or(HOLD_MIN, |rtt| (rtt * 4).clamp(HOLD_MIN, HOLD_MAX))
}

/// Connects to `addr` and holds the connection for `hold`.
async fn confirm(addr: SocketAddr, binding: &Binding, hold: Duration) -> Confirmed {
    match tokio::time::timeout(CONNECT_MAX, connect(addr, binding)).await {
        Ok(Ok(mut stream)) => {
            let mut buf = [0u8; 64];
            match tokio::time::timeout(hold, stream.read(&mut buf)).await {
                // Data, an orderly close, or nothing while held: the
                // host behind accepted the connection.
                Ok(Ok(_)) | Err(_) => Confirmed::Service,
                Ok(Err(e)) => classify(&e),
            }
        }
        Ok(Err(e)) => classify(&e),
        Err(_) => Confirmed::Unknown,
    }
}

fn classify(e: &io::Error) -> Confirmed {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => Confirmed::Reset,
        io::ErrorKind::ConnectionRefused => Confirmed::Refused,
        _ => Confirmed::Unknown,
    }
}

async fn connect(addr: SocketAddr, binding: &Binding) -> io::Result<tokio::net::TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // Closing sends a reset: the host keeps no half-closed connection.
    socket.set_zero_linger()?;
    if let Some(device) = &binding.device {
        socket.bind_device(Some(device.as_bytes()))?;
    }
    if let Some(source) = binding.source.filter(|s| s.is_ipv4() == addr.is_ipv4()) {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    socket.connect(addr).await
}

/// Connects to each of `ports` of `host`, at most [`CONNECTIONS`] at once
/// over the whole scan.
async fn confirm_all(
    host: IpAddr,
    ports: &[u16],
    hold: Duration,
    shared: &Shared,
) -> Vec<Confirmed> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, &port) in ports.iter().enumerate() {
        let binding = Arc::clone(&shared.binding);
        let permits = Arc::clone(&shared.permits);
        let stop = Arc::clone(&shared.stop);
        tasks.spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return (i, Confirmed::Unknown);
            };
            // Stopped: the ports not connected to yet stay as scanned.
            if stop.load(Ordering::Relaxed) {
                return (i, Confirmed::Unknown);
            }
            let addr = SocketAddr::new(host, port);
            (i, confirm(addr, &binding, hold).await)
        });
    }
    let mut out = vec![Confirmed::Unknown; ports.len()];
    while let Some(done) = tasks.join_next().await {
        if let Ok((i, c)) = done {
            out[i] = c;
        }
    }
    out
}

/// Checks one host: a sample first, every open port when the sample shows
/// a proxy; amends `report` with what was seen.
async fn check(mut report: HostReport, shared: Shared) -> HostReport {
    let host = report.target.addr;
    let hold = hold_time(&report);
    let open: Vec<u16> = report
        .ports
        .iter()
        .filter(|p| p.proto == Protocol::Tcp && p.state == PortState::Open)
        .map(|p| p.port)
        .collect();
    let sample = spread(&open, SAMPLE);
    let first = confirm_all(host, &sample, hold, &shared).await;
    if !is_proxied(&first) {
        // A real host: a port reset after its handshake is a server that
        // accepts and aborts; the others stand.
        for (&port, &c) in sample.iter().zip(&first) {
            if c == Confirmed::Reset {
                amend(&mut report, port, Reason::ConnReset, PortState::Open);
            }
        }
        return report;
    }
    let rest: Vec<u16> = open
        .iter()
        .copied()
        .filter(|p| !sample.contains(p))
        .collect();
    let more = confirm_all(host, &rest, hold, &shared).await;
    let seen: Vec<(u16, Confirmed)> = sample
        .into_iter()
        .zip(first)
        .chain(rest.into_iter().zip(more))
        .collect();
    record(&mut report, &seen);
    report
}

/// Records a proxied host's confirmed ports and its flag.
fn record(report: &mut HostReport, seen: &[(u16, Confirmed)]) {
    let mut syn_ack_ttls = TtlSet::default();
    report
        .ports
        .iter()
        .filter(|p| p.proto == Protocol::Tcp && p.reason == Reason::SynAck)
        .filter_map(|p| p.reason_ttl)
        .for_each(|t| syn_ack_ttls.insert(t));
    let mut services = Vec::new();
    let mut reset = 0u32;
    for &(port, c) in seen {
        match c {
            Confirmed::Service => {
                services.push(port);
                amend(report, port, Reason::SynAck, PortState::Open);
            }
            Confirmed::Reset => {
                reset += 1;
                amend(report, port, Reason::ProxyReset, PortState::Closed);
            }
            Confirmed::Refused => amend(report, port, Reason::ConnRefused, PortState::Closed),
            Confirmed::Unknown => {}
        }
    }
    services.sort_unstable();
    let checked = seen.iter().filter(|s| s.1 != Confirmed::Unknown).count() as u32;
    let listed: Vec<String> = services.iter().take(10).map(u16::to_string).collect();
    let more = if services.len() > 10 { ", ..." } else { "" };
    let ttl = match (syn_ack_ttls.len(), syn_ack_ttls.iter().next()) {
        (1, Some(t)) => format!("; every SYN-ACK came with TTL {t}"),
        _ => String::new(),
    };
    let evidence = format!(
        "{reset} of {checked} open ports completed the handshake and were then reset by the far \
         end; {} kept the connection{}{ttl}",
        services.len(),
        if services.is_empty() {
            String::new()
        } else {
            format!(" ({}{more})", listed.join(", "))
        },
    );
    report.extra.middlebox = Some(Middlebox {
        kind: MiddleboxKind::SynProxy,
        services,
        reset,
        checked,
        evidence,
    });
}

/// Sets a TCP port's state and reason as a connection showed them.
fn amend(report: &mut HostReport, port: u16, reason: Reason, state: PortState) {
    if let Some(p) = report
        .ports
        .iter_mut()
        .find(|p: &&mut PortOutcome| p.proto == Protocol::Tcp && p.port == port)
    {
        if p.reason != reason {
            // The TTL was the SYN-ACK's; a connection's answer has none.
            p.reason_ttl = None;
        }
        p.state = state;
        p.reason = reason;
    }
}

/// The check as an enricher: suspect hosts are held while their ports are
/// connected to on the caller's tokio runtime.
pub struct ProxyCheck {
    tasks: Tasks,
    shared: Shared,
}

/// What every host's check shares.
#[derive(Clone)]
struct Shared {
    binding: Arc<Binding>,
    /// Connections open at once, over all hosts.
    permits: Arc<Semaphore>,
    /// The scan's stop token: no connection starts once it is set.
    stop: Arc<AtomicBool>,
}

impl ProxyCheck {
    /// A check whose connections leave as `binding` says, on `runtime`;
    /// `stop` (the scan's stop token) ends it early.
    pub fn new(
        runtime: tokio::runtime::Handle,
        binding: Binding,
        stop: Arc<AtomicBool>,
    ) -> ProxyCheck {
        ProxyCheck {
            tasks: Tasks::new(runtime),
            shared: Shared {
                binding: Arc::new(binding),
                permits: Arc::new(Semaphore::new(CONNECTIONS)),
                stop,
            },
        }
    }
}

// Each check ends by itself: every connection is bounded by CONNECT_MAX
// and HOLD_MAX, and none starts once stopped.
impl TaskWork for ProxyCheck {
    fn work(
        &mut self,
        report: HostReport,
    ) -> Result<impl std::future::Future<Output = HostReport> + Send + 'static, HostReport> {
        if !suspect(&report) {
            return Err(report);
        }
        Ok(check(report, self.shared.clone()))
    }

    fn tasks(&mut self) -> &mut Tasks {
        &mut self.tasks
    }

    fn held(&self) -> usize {
        self.tasks.pending()
    }
}

/// Hosts a port must answer with one TTL on before it can be a
/// transparent proxy's...
const PROXIED_ADDRESSES: u32 = 4;
/// ... of which at least this many, and at least half, have own answers
/// with other TTLs...
const PROXIED_DIFFERING: u32 = 3;
/// ... that take at least this many values (the hosts behind differ; one
/// TTL for all is rather a firewall answering for them).
const DISTINCT_OWN_TTLS: u32 = 2;
/// Addresses kept as a sample per (port, TTL).
const SAMPLE_ADDRESSES: usize = 4;

/// A set of TTLs, one bit each.
#[derive(Clone, Copy, Default)]
struct TtlSet([u64; 4]);

impl TtlSet {
    fn insert(&mut self, ttl: u8) {
        self.0[usize::from(ttl / 64)] |= 1 << (ttl % 64);
    }

    fn contains(&self, ttl: u8) -> bool {
        self.0[usize::from(ttl / 64)] & (1 << (ttl % 64)) != 0
    }

    fn union(&mut self, other: &TtlSet) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
    }

    fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=255u8).filter(|&t| self.contains(t))
    }
}

/// What the scan's hosts showed of one port answered with one TTL.
#[derive(Default)]
struct PortTally {
    addresses: u32,
    differing: u32,
    /// The TTLs of the differing hosts' own answers.
    own_ttls: TtlSet,
    sample: Vec<IpAddr>,
}

/// Tallies every finished host of a scan to tell a transparent proxy
/// (see the module's documentation). Memory grows with the distinct
/// (open port, TTL) pairs, not with the hosts.
#[derive(Default)]
pub struct RangeProxies {
    tallies: std::collections::HashMap<(u16, u8), PortTally>,
}

impl RangeProxies {
    /// Takes a finished host into account.
    pub fn observe(&mut self, report: &HostReport) {
        let tcp = || report.ports.iter().filter(|p| p.proto == Protocol::Tcp);
        // The host's own answers: resets of closed ports and the answer
        // that proved it up.
        let mut own = TtlSet::default();
        tcp()
            .filter(|p| p.reason == Reason::Reset)
            .filter_map(|p| p.reason_ttl)
            .chain(report.reason_ttl)
            .for_each(|t| own.insert(t));
        for p in tcp().filter(|p| p.reason == Reason::SynAck) {
            let Some(ttl) = p.reason_ttl else {
                continue;
            };
            let tally = self.tallies.entry((p.port, ttl)).or_default();
            tally.addresses += 1;
            if !own.is_empty() && !own.contains(ttl) {
                tally.differing += 1;
                tally.own_ttls.union(&own);
                if tally.sample.len() < SAMPLE_ADDRESSES {
                    tally.sample.push(report.target.addr);
                }
            }
        }
    }

    /// The ports a transparent proxy answers, by port.
    pub fn findings(&self) -> Vec<RangeMiddlebox> {
        let mut found: Vec<RangeMiddlebox> = self
            .tallies
            .iter()
            .filter(|(_, t)| {
                t.addresses >= PROXIED_ADDRESSES
                    && t.differing >= PROXIED_DIFFERING
                    && 2 * t.differing >= t.addresses
                    && t.own_ttls.len() >= DISTINCT_OWN_TTLS
            })
            .map(|(&(port, ttl), t)| {
                let own: Vec<String> = t.own_ttls.iter().map(|x| x.to_string()).collect();
                RangeMiddlebox {
                    kind: MiddleboxKind::TransparentProxy,
                    proto: Protocol::Tcp,
                    port,
                    ttl,
                    addresses: t.addresses,
                    differing: t.differing,
                    sample: t.sample.clone(),
                    evidence: format!(
                        "{} addresses answered SYN-ACK on port {port} with TTL {ttl}; {} of \
                         them answer otherwise with TTLs {} (the hosts behind differ, the \
                         answers on port {port} do not)",
                        t.addresses,
                        t.differing,
                        own.join(", ")
                    ),
                }
            })
            .collect();
        found.sort_by_key(|f| f.port);
        found
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use portolan_engine::{HostStatus, HostTimes};
    use portolan_targets::Target;

    use super::*;

    fn host(ports: &[(u16, PortState, Reason)]) -> HostReport {
        HostReport {
            target: Target::from_addr(IpAddr::from([198, 18, 0, 2])),
            status: HostStatus::Up(Reason::UserSet),
            reason_ttl: None,
            mac: None,
            ports: ports
                .iter()
                .map(|&(port, state, reason)| PortOutcome {
                    port,
                    proto: Protocol::Tcp,
                    state,
                    reason,
                    reason_ttl: Some(64),
                    tries: 1,
                })
                .collect(),
            times: HostTimes::default(),
            started: SystemTime::UNIX_EPOCH,
            finished: SystemTime::UNIX_EPOCH,
            services: Vec::new(),
            extra: Default::default(),
        }
    }

    const OPEN: (PortState, Reason) = (PortState::Open, Reason::SynAck);
    const CLOSED: (PortState, Reason) = (PortState::Closed, Reason::Reset);

    fn ports(open: u16, closed: u16) -> Vec<(u16, PortState, Reason)> {
        (1..=open)
            .map(|p| (p, OPEN.0, OPEN.1))
            .chain((1..=closed).map(|p| (1000 + p, CLOSED.0, CLOSED.1)))
            .collect()
    }

    #[test]
    fn hosts_with_most_ports_open_or_connections_reset_are_suspect() {
        // Six of seven open: the lab's SYN proxy.
        assert!(suspect(&host(&ports(6, 1))));
        // A server with a few services among a thousand ports is not.
        assert!(!suspect(&host(&ports(10, 990))));
        // Three open of three is too few to tell.
        assert!(!suspect(&host(&ports(3, 0))));
        // Two connections reset right after completing are.
        let mut resets = ports(1, 50);
        resets.push((80, PortState::Open, Reason::ConnReset));
        assert!(!suspect(&host(&resets)));
        resets.push((81, PortState::Open, Reason::ConnReset));
        assert!(suspect(&host(&resets)));
    }

    #[test]
    fn a_sample_shows_a_proxy_with_two_resets_not_one() {
        use Confirmed::*;
        assert!(is_proxied(&[Reset, Reset, Service, Reset]));
        assert!(is_proxied(&[Reset, Reset]));
        assert!(!is_proxied(&[Reset, Service, Service, Service]));
        assert!(!is_proxied(&[Reset, Reset, Service, Service, Service]));
        assert!(!is_proxied(&[Unknown, Unknown, Unknown, Unknown]));
    }

    #[test]
    fn samples_spread_over_the_ports() {
        let ports: Vec<u16> = (1..=100).collect();
        assert_eq!(spread(&ports, 4), vec![1, 34, 67, 100]);
        assert_eq!(spread(&ports[..3], 4), vec![1, 2, 3]);
    }

    /// A host whose port 80 answered with `ttl80` and port 22 reset with
    /// `own`.
    fn range_host(last: u8, ttl80: u8, own: u8) -> HostReport {
        let mut report = host(&[
            (80, PortState::Open, Reason::SynAck),
            (22, PortState::Closed, Reason::Reset),
        ]);
        report.target = Target::from_addr(IpAddr::from([198, 19, 77, last]));
        report.ports[0].reason_ttl = Some(ttl80);
        report.ports[1].reason_ttl = Some(own);
        report
    }

    #[test]
    fn one_ttl_on_a_port_for_hosts_that_otherwise_differ_is_a_transparent_proxy() {
        let mut proxied = RangeProxies::default();
        for i in 1..=6 {
            proxied.observe(&range_host(i, 64, 50 + i));
        }
        let found = proxied.findings();
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0];
        assert_eq!(
            (f.kind, f.port, f.ttl),
            (MiddleboxKind::TransparentProxy, 80, 64)
        );
        assert_eq!((f.addresses, f.differing, f.sample.len()), (6, 6, 4));
        assert!(
            f.evidence.contains("TTLs 51, 52, 53, 54, 55, 56"),
            "{}",
            f.evidence
        );
        // Hosts that answer everything with their own TTL: no proxy.
        let mut direct = RangeProxies::default();
        for i in 1..=6 {
            direct.observe(&range_host(i, 50 + i, 50 + i));
        }
        assert!(direct.findings().is_empty());
        // A firewall that resets for every host (one TTL) in front of
        // real servers of one kind: nothing says the port is a proxy's.
        let mut firewalled = RangeProxies::default();
        for i in 1..=6 {
            firewalled.observe(&range_host(i, 64, 250));
        }
        assert!(firewalled.findings().is_empty());
        // A proxy for part of the range only is still one.
        for i in 7..=12 {
            proxied.observe(&range_host(i, 40 + i, 40 + i));
        }
        assert_eq!(proxied.findings().len(), 1);
        // Too few addresses.
        let mut few = RangeProxies::default();
        for i in 1..=3 {
            few.observe(&range_host(i, 64, 50 + i));
        }
        assert!(few.findings().is_empty());
    }

    #[test]
    fn a_proxied_hosts_reset_ports_become_closed_proxy_reset_and_it_is_flagged() {
        let mut report = host(&ports(4, 1));
        let seen = [
            (1, Confirmed::Reset),
            (2, Confirmed::Service),
            (3, Confirmed::Reset),
            (4, Confirmed::Reset),
        ];
        record(&mut report, &seen);
        let state = |port: u16| {
            let p = report.ports.iter().find(|p| p.port == port).unwrap();
            (p.state, p.reason, p.reason_ttl)
        };
        assert_eq!(state(1), (PortState::Closed, Reason::ProxyReset, None));
        assert_eq!(state(2), (PortState::Open, Reason::SynAck, Some(64)));
        assert_eq!(state(1001), (PortState::Closed, Reason::Reset, Some(64)));
        let flag = report.extra.middlebox.as_ref().unwrap();
        assert_eq!(flag.kind, MiddleboxKind::SynProxy);
        assert_eq!((flag.reset, flag.checked), (3, 4));
        assert_eq!(flag.services, vec![2]);
        assert!(
            flag.evidence.starts_with(
                "3 of 4 open ports completed the handshake and were then reset by the far end; \
                 1 kept the connection (2); every SYN-ACK came with TTL 64"
            ),
            "{}",
            flag.evidence
        );
    }
}
