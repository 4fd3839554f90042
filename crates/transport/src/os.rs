//! The OS detection run (`-O`): nmap's probe set to many hosts side by
//! side on the raw context's sockets, each host's answers collected by
//! probe.
//!
//! The probes and what an answer belongs to are `portolan-os`'s pure code
//! ([`ProbeSet`]); this file only pumps them. The six SYNs go to every
//! host in six rounds 100 ms apart (the ISN and timestamp rates are
//! measured over that spacing), then the other ten probes at once; the
//! receiver is drained between sends. A probe still unanswered after the
//! timeout is sent again, up to `tries` times in all (the SYNs only as a
//! whole new round of six, to keep their spacing). Bounded in time: at
//! most `tries` × (500 ms + timeout).
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
use portolan_os::probes::{IE, PROBE_COUNT};

use crate::context::RawContext;
use crate::raw::{RawError, RawStats};
use crate::{route, sys};

/// The spacing of the six SYNs.
const SEQ_SPACING: Duration = Duration::from_millis(100);

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
    ) -> Result<(), RawError> {
        loop {
            let stats = &mut self.stats;
            self.receiver
                .drain(usize::MAX, |packet, _, _| {
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
    for try_no in 0..options.tries.max(1) {
        if stop() {
            break;
        }
        // The SYNs: a new round of six for hosts that answered fewer
        // than all of them (the first try always).
        let seq_round: Vec<usize> = (0..hosts.len())
            .filter(|&h| targets[h].open.is_some())
            .filter(|&h| try_no == 0 || hosts[h].replies[..6].iter().any(Option::is_none))
            .collect();
        if try_no > 0 {
            for &h in &seq_round {
                hosts[h].replies[..6].iter_mut().for_each(|r| *r = None);
            }
        }
        if !seq_round.is_empty() {
            for i in 0..6 {
                let at = Instant::now();
                for &h in &seq_round {
                    hosts[h].seq_sent[i] = at - start;
                    hosts[h].sent += 1;
                    let set = hosts[h].set;
                    pump.send(&set, i)?;
                }
                pump.flush()?;
                let next = at + SEQ_SPACING;
                pump.read_until(if i < 5 { next } else { at }, &mut hosts, &by_addr)?;
                if stop() {
                    return Ok((hosts, pump.stats));
                }
            }
        }
        // The other ten, to those that have not answered them.
        for h in 0..hosts.len() {
            let set = hosts[h].set;
            for i in IE..PROBE_COUNT {
                let needs_open = matches!(i, 8..=11);
                if hosts[h].replies[i].is_some() || (needs_open && targets[h].open.is_none()) {
                    continue;
                }
                hosts[h].sent += 1;
                pump.send(&set, i)?;
            }
        }
        pump.flush()?;
        pump.read_until(Instant::now() + options.timeout, &mut hosts, &by_addr)?;
        let complete = hosts.iter().enumerate().all(|(h, a)| {
            a.replies.iter().enumerate().all(|(i, r)| {
                r.is_some() || (targets[h].open.is_none() && (i < 6 || matches!(i, 8..=11)))
            })
        });
        if complete {
            break;
        }
    }
    Ok((hosts, pump.stats))
}
