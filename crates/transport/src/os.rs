//! The OS detection run (`-O`): nmap's probe set to many hosts side by
//! side on the raw context's sockets, each host's answers collected by
//! probe.
//!
//! The probes, what an answer belongs to and when each probe leaves are
//! `portolan-os`'s pure code ([`ProbeSet`], [`Schedule`]: the six SYNs to
//! every host in six rounds 100 ms apart, then the other ten probes,
//! unanswered ones again up to `tries` times); this file only pumps
//! them, reading answers whenever the schedule waits. Bounded in time: at
//! most `tries` × (500 ms + timeout), plus `--max-rate`'s pacing.
//!
//! `--max-rate` holds: a probe waits its turn ([`RateLimiter`]).
//!
//! Sends through the kernel's raw IPv4 socket (header included), so the
//! kernel routes; our kernel answers the SYN-ACKs with RSTs, as nmap's
//! does. IPv4 only, as nmap's first-generation method.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use portolan_engine::RateLimiter;
use portolan_os::ProbeSet;
use portolan_os::probes::PROBE_COUNT;
use portolan_os::schedule::{Schedule, Step};

use crate::context::RawContext;
use crate::raw::{RawError, RawStats};
use crate::{route, sys};

/// One host to fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OsTarget {
    /// The host.
    pub addr: Ipv4Addr,
    /// An open TCP port; without one, the probes to an open port are not
    /// sent (SEQ, OPS, WIN, T1, ECN, T2-T4 go missing).
    pub open: Option<u16>,
    /// A closed TCP port (a likely one when the scan found none).
    pub closed: u16,
    /// A closed UDP port (a likely one when the scan found none).
    pub closed_udp: u16,
}

/// How to run.
#[derive(Clone, Debug)]
pub struct OsOptions {
    /// Send and read on this interface (`-e`).
    pub device: Option<String>,
    /// Our address (`-S`), else the kernel's choice per host.
    pub source: Option<Ipv4Addr>,
    /// Tries per probe, at least one (`--max-os-tries`).
    pub tries: u8,
    /// How long to wait for answers after the last probe of a try.
    pub timeout: Duration,
    /// A secret for the numbers the probes carry.
    pub key: u64,
    /// `--max-rate`: packets per second at most.
    pub max_rate: Option<f64>,
}

/// What one host answered.
#[derive(Clone, Debug)]
pub struct HostAnswers {
    /// The probes sent.
    pub set: ProbeSet,
    /// When each SYN of the round that answered left, from the run's start.
    pub seq_sent: [Duration; 6],
    /// The answer to each probe, as an IPv4 packet.
    pub replies: [Option<Vec<u8>>; PROBE_COUNT],
    /// Probes sent, retransmissions included.
    pub sent: u32,
}

impl HostAnswers {
    /// The answers as `portolan-os` reads them.
    pub fn answers(&self) -> portolan_os::Answers<'_> {
        portolan_os::Answers {
            set: self.set,
            seq_sent: self.seq_sent,
            replies: std::array::from_fn(|i| self.replies[i].as_deref()),
        }
    }
}

/// A small keyed generator for the probes' numbers (not a cookie: the
/// answers are told apart by ports and addresses).
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

struct Pump {
    limiter: RateLimiter,
    sender: socket2::Socket,
    batch: sys::SendBatch,
    receiver: crate::context::Lease,
    poll: Poll,
    events: Events,
    stats: RawStats,
}

impl Pump {
    fn send(&mut self, set: &ProbeSet, index: usize) -> Result<(), RawError> {
        // --max-rate: what is batched leaves, and the next probe waits
        // its turn (the ring keeps the answers meanwhile).
        let now = Instant::now();
        if let Some(at) = self.limiter.next_allowed(now) {
            self.flush()?;
            std::thread::sleep(at.saturating_duration_since(now));
        }
        self.limiter.on_sent();
        let Some(buffer) = self.batch.next_buffer() else {
            return Ok(());
        };
        let Some(len) = set.write(index, &mut buffer[..]) else {
            return Ok(());
        };
        self.batch.commit(len, IpAddr::V4(set.target));
        if self.batch.is_full() {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), RawError> {
        let (sent, error) = self.batch.flush(self.sender.as_raw_fd());
        self.stats.sent += sent as u64;
        match error {
            None => Ok(()),
            Some(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)) => Ok(()),
            Some(source) => Err(RawError::Socket {
                what: "sending OS probes",
                source,
            }),
        }
    }

    /// Reads answers until `until`, filing each with its host.
    fn read_until(
        &mut self,
        until: Instant,
        hosts: &mut [HostAnswers],
        by_addr: &HashMap<Ipv4Addr, usize>,
        schedule: &mut Schedule,
    ) -> Result<(), RawError> {
        loop {
            let stats = &mut self.stats;
            self.receiver
                .drain(usize::MAX, |packet, kind, _| {
                    // Our own probes, seen leaving (and on loopback).
                    if kind == sys::PACKET_OUTGOING {
                        return;
                    }
                    stats.received += 1;
                    let Some(src) = packet.get(12..16) else {
                        return;
                    };
                    let src = Ipv4Addr::new(src[0], src[1], src[2], src[3]);
                    let Some(&h) = by_addr.get(&src) else {
                        stats.ignored += 1;
                        return;
                    };
                    let host = &mut hosts[h];
                    match host.set.which(packet) {
                        Some(i) if host.replies[i].is_none() => {
                            stats.matched += 1;
                            host.replies[i] = Some(packet.to_vec());
                            schedule.on_answer(h, i);
                        }
                        _ => stats.ignored += 1,
                    }
                })
                .map_err(|source| RawError::Socket {
                    what: "reading the packet socket",
                    source,
                })?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            let wait = (until - now).min(crate::MAX_IDLE);
            match self.poll.poll(&mut self.events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(RawError::Socket {
                        what: "polling the packet socket",
                        source,
                    });
                }
            }
        }
    }
}

/// Fingerprints `targets` side by side; `stop` is asked between rounds,
/// and a stopped run returns what it has.
///
/// # Errors
/// A socket that cannot be used, or no route to a host.
pub fn run(
    context: &Arc<RawContext>,
    options: &OsOptions,
    targets: &[OsTarget],
    stop: &dyn Fn() -> bool,
) -> Result<(Vec<HostAnswers>, RawStats), RawError> {
    let oif = match &options.device {
        Some(name) => Some(
            route::interface_index(name).map_err(|source| RawError::Interface {
                name: name.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let receiver = context.receiver(
        &[
            portolan_wire::ip_protocol::ICMP,
            portolan_wire::ip_protocol::TCP,
        ],
        oif,
    )?;
    let [_, ip_sender, _] = context.senders();
    let sender = ip_sender.map_err(|source| RawError::Socket {
        what: "opening a raw socket",
        source,
    })?;
    let poll = Poll::new().map_err(|source| RawError::Socket {
        what: "creating the poller",
        source,
    })?;
    let fd = receiver.fd();
    poll.registry()
        .register(&mut SourceFd(&fd), Token(0), Interest::READABLE)
        .map_err(|source| RawError::Socket {
            what: "polling the packet socket",
            source,
        })?;
    let mut pump = Pump {
        limiter: RateLimiter::new(Instant::now(), None, options.max_rate),
        sender,
        batch: sys::SendBatch::new(),
        receiver,
        poll,
        events: Events::with_capacity(4),
        stats: RawStats::default(),
    };

    let mut hosts = Vec::with_capacity(targets.len());
    let mut by_addr = HashMap::new();
    for (n, t) in targets.iter().enumerate() {
        let source = match options.source {
            Some(s) => s,
            None => match sys::source_for(IpAddr::V4(t.addr)) {
                Ok(IpAddr::V4(s)) => s,
                Ok(IpAddr::V6(_)) | Err(_) => {
                    return Err(RawError::Route {
                        addr: IpAddr::V4(t.addr),
                        source: io::Error::from(io::ErrorKind::AddrNotAvailable),
                    });
                }
            },
        };
        let r = mix(options.key ^ (u64::from(u32::from(t.addr)) << 16) ^ n as u64);
        let set = ProbeSet {
            source,
            target: t.addr,
            open: t.open.unwrap_or(0),
            closed: t.closed,
            closed_udp: t.closed_udp,
            // 16 ports per host from 20,000 up, by the host's place.
            base_port: 20_000 + ((n as u64 + (options.key & 0xFF)) % 2_500) as u16 * 16,
            seq: r as u32,
            ack: (r >> 32) as u32,
            ip_id: (r >> 8) as u16,
            icmp_id: (r >> 24) as u16,
        };
        by_addr.insert(t.addr, n);
        hosts.push(HostAnswers {
            set,
            seq_sent: [Duration::ZERO; 6],
            replies: Default::default(),
            sent: 0,
        });
    }
    let start = Instant::now();
    let mut schedule = Schedule::new(
        targets.iter().map(|t| t.open.is_some()).collect(),
        options.tries,
        options.timeout,
        start,
    );
    loop {
        if stop() {
            break;
        }
        match schedule.poll(Instant::now()) {
            Step::Send { host, probe } => {
                let h = &mut hosts[host];
                if probe < 6 {
                    // A new round of SYNs: the old answers belong to the
                    // old spacing.
                    h.replies[probe] = None;
                    h.seq_sent[probe] = Instant::now() - start;
                }
                h.sent += 1;
                let set = h.set;
                pump.send(&set, probe)?;
            }
            Step::Wait(until) => {
                pump.flush()?;
                pump.read_until(until, &mut hosts, &by_addr, &mut schedule)?;
            }
            Step::Done => break,
        }
    }
    Ok((hosts, pump.stats))
}
