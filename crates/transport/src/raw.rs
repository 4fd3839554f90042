//! The raw-packet engine: probes stamped by the probe modules
//! ([`crate::probe`]: TCP, UDP, SCTP, IP protocol and discovery) from
//! prebuilt templates and sent in batches on raw or packet sockets from
//! their own thread; answers read from a packet socket's receive ring and
//! handed to the module that reads them, every one checked against the
//! probe's keyed cookie before it counts.
//!
//! What each technique's answers prove is the modules' business; this
//! file pumps packets: routes and paths, decoys' copies, the flights in
//! progress, counters, and the one link-layer probe (ARP and Neighbor
//! Discovery on a directly attached segment, which needs the segment's
//! addresses and keeps the MAC addresses that answer).
//!
//! Contract: needs `CAP_NET_RAW` ([`check_privileges`] says so in one
//! line); per probe, one template copy and a few stores, no allocation
//! beyond the reused tables; untrusted packets never panic
//! (`portolan-wire` validates them), and packets that fail validation are
//! counted in [`RawStats::ignored`].
//!
//! Read first: RFC 9293 §3.10.7 (what a closed port answers to a SYN),
//! nmap's "TCP SYN (Stealth) Scan" chapter, and the ZMap paper's §3 on
//! stateless validation.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use portolan_engine::{PortState, Probe, ProbeId, Reason, Reply, ScanEvent, Scheduler};
use portolan_wire::{parse_neighbour_reply, parse_reply, write_solicitation};

use crate::claims::Claims;
use crate::context::{RawContext, Receiver};
use crate::cookie::CookieJar;
use crate::paths::{ETHERNET_HEADER, Paths, Via};
use crate::probe::discovery::DiscoveryProbes;
use crate::probe::ip_protocol::IpProtocolProbes;
use crate::probe::os::OsProbes;
use crate::probe::sctp::SctpProbes;
use crate::probe::tcp::TcpProbes;
use crate::probe::udp::UdpProbes;
use crate::probe::{Judged, Keys, ProbeModule, Shot, SourcePorts, TRY_PORTS};
use crate::sender::{Batch, Outlet, SendThread};
use crate::{Control, Observer, route, sys};

/// Probes handed out per turn of the loop at most.
const SEND_BUDGET: usize = 1024;
/// Packets read per turn at most, so sending is not starved.
const RECV_BUDGET: usize = 4096;
/// Link-layer addresses kept at most for hosts not yet reported.
const MAX_MACS: usize = 1 << 16;

pub use portolan_wire::{SctpProbe, TcpFlags};

pub use crate::probe::tcp::TcpScan;

pub use crate::probe::discovery::PingProbe;

/// A source of probes with `-D`: a decoy address, or this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoy {
    /// Where our own probe goes among the decoys' (`ME`).
    Me,
    /// A decoy: a copy of every probe is sent from this address (its
    /// answers go to it, not to us).
    Addr(IpAddr),
}

/// What a raw run sends, and how it reads the answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawProbes {
    /// A TCP scan: `scan`'s probes, or with `--scanflags` probes with
    /// `flags` instead, whose answers `scan` still reads.
    Tcp {
        /// The scan, and how answers are read.
        scan: TcpScan,
        /// `--scanflags`: the probes' control bits instead of `scan`'s.
        flags: Option<TcpFlags>,
    },
    /// `-sU`: each probe carries the payload that makes its port's service
    /// answer ([`portolan_payloads`]), empty for other ports. Any UDP
    /// answer = open (`udp-response`), ICMP port unreachable = closed,
    /// other ICMP unreachables = filtered, silence = open|filtered.
    Udp,
    /// An SCTP scan: INIT (`-sY`: INIT ACK = open, ABORT = closed, silence
    /// = filtered) or COOKIE ECHO (`-sZ`: ABORT = closed, silence =
    /// open|filtered); ICMP unreachables = filtered.
    Sctp(SctpProbe),
    /// `-sO`: the scheduler's "ports" are IP protocol numbers; each gets
    /// its own probe where stacks answer one (an ICMP or ICMPv6 echo
    /// request, a TCP ACK, a UDP datagram to a closed port, an SCTP INIT)
    /// and a bare header with the cookie otherwise. Any answer in the
    /// protocol = open (a port unreachable answering the UDP probe too),
    /// the host's protocol unreachable = closed, other ICMP unreachables =
    /// filtered, silence = open|filtered.
    IpProtocols,
    /// Host discovery: the scheduler's "ports" are indexes into this list
    /// (a discovery plan).
    Discovery(Vec<PingProbe>),
    /// OS detection (`-O`): the scheduler's "ports" are the indexes of
    /// nmap's sixteen probes, each host's from its own keyed probe set.
    /// Every answer is shown to the observer with its packet
    /// ([`Observer::answered`]), and every probe as it leaves
    /// ([`Observer::sent`]).
    Os(OsProbes),
}

impl Default for RawProbes {
    fn default() -> Self {
        RawProbes::Tcp {
            scan: TcpScan::Syn,
            flags: None,
        }
    }
}

impl RawProbes {
    /// The discovery probes; empty for a port scan.
    fn pings(&self) -> &[PingProbe] {
        match self {
            RawProbes::Discovery(pings) => pings,
            _ => &[],
        }
    }
}

/// Options of a raw run.
#[derive(Clone, Debug, Default)]
pub struct RawOptions {
    /// What is sent.
    pub probes: RawProbes,
    /// `-D`: the decoys, with [`Decoy::Me`] where our own probe goes;
    /// empty for no decoys. Decoys of the other IP version are skipped.
    pub decoys: Vec<Decoy>,
    /// Source addresses (`-S`): none for the routing table's choice; one
    /// for every probe; several to spread probes over (each probe goes
    /// from the one its [`Probe::source`] names). Those not configured on
    /// this machine are claimed on `device` (see `claims.rs`): the run
    /// answers ARP and Neighbor Solicitations for them while it lasts.
    pub sources: Vec<IpAddr>,
    /// Source port (`-g`); by default a random free one.
    pub source_port: Option<u16>,
    /// Send and listen on this interface only (`-e`).
    pub device: Option<String>,
    /// Send every probe through the kernel's IP path, never as a frame
    /// (`--send-ip`).
    pub send_ip: bool,
    /// Cookie key; random per scan in the binary, fixed in tests.
    pub key: (u64, u64),
}

/// Why the SYN scan could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RawError {
    /// Raw sockets are not permitted to this process.
    #[error(
        "raw sockets are not permitted ({0}): run as root, or give the binary the \
         capabilities with `setcap cap_net_raw,cap_net_admin+eip portolan`; or use -sT"
    )]
    NotPermitted(#[source] io::Error),
    /// A socket could not be opened or used.
    #[error("{what}: {source}")]
    Socket {
        /// What was being done.
        what: &'static str,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The interface named with `-e` does not exist.
    #[error("interface {name}: {source}")]
    Interface {
        /// The name given.
        name: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// A source address (`-S`) cannot be claimed: it is not on the
    /// interface's segment, or claiming needs what the run lacks.
    #[error("source address {addr}: {problem}")]
    Source {
        /// The address.
        addr: IpAddr,
        /// Why not.
        problem: String,
    },
    /// Another host answers for a source address (`-S`): Portolan never
    /// claims an address in use.
    #[error(
        "source address {addr} is in use by another host on the segment{}",
        .mac.map(|m| format!(" ({})", portolan_model::mac_text(m))).unwrap_or_default()
    )]
    SourceInUse {
        /// The address.
        addr: IpAddr,
        /// The other host's link-layer address, when it said.
        mac: Option<[u8; 6]>,
    },
    /// No route or source address for a target.
    #[error("no route to {addr}: {source}")]
    Route {
        /// The target.
        addr: IpAddr,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

/// Packet counters of a SYN scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawStats {
    /// Packets sent.
    pub sent: u64,
    /// Packets read from the packet socket (after the kernel filter).
    pub received: u64,
    /// Answers accepted for a probe in flight.
    pub matched: u64,
    /// Packets that were not an answer to a probe of ours: a stray or
    /// spoofed packet, a failed cookie, or an answer that came too late.
    pub ignored: u64,
    /// Packets the kernel dropped before they could be read (the receive
    /// ring was full): answers lost on this machine, not on the path.
    pub dropped: u64,
}

/// Whether this process may open raw and packet sockets.
pub fn check_privileges() -> Result<(), RawError> {
    let not_permitted = |e: io::Error| match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => RawError::NotPermitted(e),
        _ => RawError::Socket {
            what: "opening a raw socket",
            source: e,
        },
    };
    sys::open_raw_sender(false).map_err(not_permitted)?;
    sys::open_packet_receiver(&[]).map_err(not_permitted)?;
    Ok(())
}

fn socket_error(what: &'static str) -> impl Fn(io::Error) -> RawError {
    move |source| RawError::Socket { what, source }
}

/// Keeps the source ports reserved: bound TCP sockets that the kernel
/// will not give out as ephemeral ports, while matching no incoming
/// segment (they neither listen nor connect), so the kernel still answers
/// our SYN-ACKs with RSTs.
pub(crate) struct PortReservation {
    pub(crate) base: u16,
    count: u16,
    _sockets: Vec<socket2::Socket>,
}

impl PortReservation {
    /// The reserved ports.
    pub(crate) fn ports(&self) -> SourcePorts {
        SourcePorts {
            base: self.base,
            count: self.count,
        }
    }

    /// The source port of a probe's try.
    pub(crate) fn port_for(&self, try_no: u8) -> u16 {
        self.ports().port_for(try_no)
    }
}

/// Binds TCP and UDP sockets to `port` on every address: UDP answers to
/// our probes then land in a socket (never read) instead of drawing the
/// kernel's port unreachables.
fn bind_reserved(port: u16) -> io::Result<Vec<socket2::Socket>> {
    let mut held = Vec::new();
    for (addr, kind) in [
        (
            SocketAddr::from(([0, 0, 0, 0], port)),
            socket2::Type::STREAM,
        ),
        (SocketAddr::from(([0u16; 8], port)), socket2::Type::STREAM),
        (SocketAddr::from(([0, 0, 0, 0], port)), socket2::Type::DGRAM),
        (SocketAddr::from(([0u16; 8], port)), socket2::Type::DGRAM),
    ] {
        let domain = socket2::Domain::for_address(addr);
        let s = socket2::Socket::new(domain, kind, None)?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        match s.bind(&addr.into()) {
            Ok(()) => held.push(s),
            // No IPv6 on this machine: the IPv4 reservation is enough.
            Err(e) if addr.is_ipv6() && e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(held)
}

/// Reserves the user's port (`-g`, one port for every try), or
/// [`TRY_PORTS`] consecutive free ports picked from the seed.
pub(crate) fn reserve_ports(wanted: Option<u16>, seed: u64) -> Result<PortReservation, RawError> {
    if let Some(port) = wanted {
        // A port in use still works for raw probes; it is just not kept
        // from the kernel.
        return Ok(PortReservation {
            base: port,
            count: 1,
            _sockets: bind_reserved(port).unwrap_or_default(),
        });
    }
    let mut x = seed | 1;
    'pick: for _ in 0..64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let base = 40_000 + (x % 20_000) as u16;
        let mut sockets = Vec::new();
        for port in base..base + TRY_PORTS {
            match bind_reserved(port) {
                Ok(s) => sockets.extend(s),
                Err(_) => continue 'pick,
            }
        }
        return Ok(PortReservation {
            base,
            count: TRY_PORTS,
            _sockets: sockets,
        });
    }
    Err(RawError::Socket {
        what: "reserving source ports",
        source: io::Error::from(io::ErrorKind::AddrInUse),
    })
}

/// The probes in flight by (target, port), to match answers with.
///
/// No two probes of a scan are in flight to one port of one target (the
/// scheduler's contract), so the pair names one probe. A cancelled or
/// unsent probe is removed by its pair too, if the entry is still its
/// own (a retry to the port may have taken its place): one hash lookup,
/// where a second table by slot cost a random access more per probe
/// (with SipHash, the two tables were about 7% of a sparse sweep's CPU).
///
/// Hashed with foldhash, seeded at random per table: a random seed keeps
/// answers an outsider crafts from choosing their buckets.
#[derive(Default)]
struct FlightTable {
    by_target: HashMap<(IpAddr, u16), ProbeId, foldhash::fast::RandomState>,
}

impl FlightTable {
    fn insert(&mut self, probe: &Probe) {
        self.by_target.insert((probe.addr, probe.port), probe.id);
    }

    /// Removes `probe`'s entry if it is still its own.
    fn remove(&mut self, probe: &Probe) {
        if let Entry::Occupied(entry) = self.by_target.entry((probe.addr, probe.port))
            && *entry.get() == probe.id
        {
            entry.remove();
        }
    }

    fn contains(&self, dst: IpAddr, port: u16) -> bool {
        self.by_target.contains_key(&(dst, port))
    }

    fn take(&mut self, dst: IpAddr, port: u16) -> Option<ProbeId> {
        self.by_target.remove(&(dst, port))
    }
}

/// How often the kernel's count of dropped answers is read: well within
/// the shortest probe timeout (`--min-rtt-timeout`, 100 ms at `-T4`), at
/// one system call per reading.
const DROPS_READ_EVERY: Duration = Duration::from_millis(20);

/// Runs a raw scan to completion (or interruption) on `context`'s
/// sockets, handing every event of the scheduler to `sink`.
pub fn run(
    scheduler: &mut Scheduler,
    options: &RawOptions,
    context: &Arc<RawContext>,
    observer: &mut dyn Observer,
    sink: &mut dyn FnMut(ScanEvent),
) -> Result<RawStats, RawError> {
    let oif = match &options.device {
        Some(name) => Some(
            route::interface_index(name).map_err(|source| RawError::Interface {
                name: name.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let answers = Modules::answer_protocols(&options.probes);
    let mut receiver = context.receiver(&answers, oif)?;
    // A receiver lent before counted its drops for its earlier scan.
    receiver.take_drops();
    let reservation = reserve_ports(options.source_port, options.key.0 ^ options.key.1)?;
    let jar = CookieJar::new(options.key.0, options.key.1);
    let opened = context.senders();
    let frames = opened[0].is_ok() && !options.send_ip;
    let mut paths = Paths::new(oif, options.sources.first().copied(), frames);
    let scanflags = match options.probes {
        RawProbes::Tcp { flags, .. } => flags,
        _ => None,
    };
    let mut modules = Modules::new(&options.probes, scanflags);
    let keys = Keys {
        jar: &jar,
        ports: reservation.ports(),
    };
    let pings = options.probes.pings();
    let neighbour_pings = pings.contains(&PingProbe::Neighbour);
    let mut macs = HashMap::new();
    let mut unavailable: [Option<io::Error>; 3] = [None, None, None];
    let mut sockets: [Option<socket2::Socket>; 3] = [None, None, None];
    for (i, socket) in opened.into_iter().enumerate() {
        match socket {
            Ok(s) => sockets[i] = Some(s),
            Err(e) => unavailable[i] = Some(e),
        }
    }
    let claims = claim_sources(
        options,
        oif,
        frames,
        &mut paths,
        sockets[Outlet::Frame as usize].as_ref(),
        &mut receiver,
    )?;
    let mut neighbour_answers = NeighbourAnswers::default();
    let mut poll = Poll::new().map_err(socket_error("creating the poller"))?;
    let fd = receiver.fd();
    poll.registry()
        .register(&mut SourceFd(&fd), Token(0), Interest::READABLE)
        .map_err(socket_error("polling the packet socket"))?;
    let mut events = Events::with_capacity(4);
    let mut sender = SendThread::spawn(sockets, crate::sender::sender_count())
        .map_err(socket_error("starting the sending threads"))?;
    let mut flights = FlightTable::default();
    let mut stats = RawStats::default();
    let mut fatal: Option<RawError> = None;
    let mut drops_read = Instant::now();

    loop {
        let now = Instant::now();
        // Answers the kernel dropped (the ring was full): the scheduler
        // learns of them before the probes they answered time out.
        if now.saturating_duration_since(drops_read) >= DROPS_READ_EVERY {
            drops_read = now;
            let dropped = receiver.take_drops();
            if dropped > 0 {
                stats.dropped += dropped;
                scheduler.on_local_drops(dropped);
            }
        }
        observer.packets(&stats);
        if observer.tick(scheduler, now) == Control::Interrupt {
            scheduler.interrupt(now);
        }
        receive(
            &mut receiver,
            &mut Judge {
                scheduler,
                flights: &mut flights,
                jar: &jar,
                ports: reservation.ports(),
                modules: &modules,
                probes: &options.probes,
                macs: &mut macs,
                stats: &mut stats,
                claims: claims.as_ref(),
                neighbour_answers: &mut neighbour_answers,
                now,
                observer: &mut *observer,
            },
        )?;
        if let Some(claims) = &claims {
            // Answers to neighbours asking for our claimed sources.
            for (frame, len) in neighbour_answers.drain() {
                let batch = sender.filling(Outlet::Frame, &mut |b| {
                    account(b, scheduler, &mut flights, &mut stats, &mut fatal, now)
                });
                if let Some(buffer) = batch.packets.next_buffer() {
                    buffer[..len].copy_from_slice(&frame[..len]);
                    batch.packets.commit_frame(len, claims.ifindex());
                    batch.probes.push(None);
                }
                if batch.packets.is_full() {
                    sender.submit(Outlet::Frame);
                }
            }
        }
        let mut cancelled = 0;
        while cancelled < crate::CANCEL_BUDGET {
            let Some(probe) = scheduler.poll_cancel(now) else {
                break;
            };
            flights.remove(&probe);
            cancelled += 1;
        }
        sender.collect(false, &mut |b| {
            account(b, scheduler, &mut flights, &mut stats, &mut fatal, now)
        });
        let mut handed = 0;
        while handed < SEND_BUDGET && fatal.is_none() {
            let Some(probe) = scheduler.poll_probe(now) else {
                break;
            };
            handed += 1;
            let path = match paths.resolve(probe.addr, now) {
                Ok(path) => path,
                Err(source) => {
                    // No route: the probe cannot leave, as a connect()
                    // would fail with ENETUNREACH.
                    let reason = match source.raw_os_error() {
                        Some(libc::EHOSTUNREACH) => Reason::HostUnreach,
                        _ => Reason::NetUnreach,
                    };
                    let reply = Reply {
                        state: PortState::Filtered,
                        reason,
                        ttl: None,
                    };
                    scheduler.on_reply(probe.id, reply, now);
                    continue;
                }
            };
            let outlet = match path.via {
                Via::Frame { .. } => Outlet::Frame,
                Via::Ip if probe.addr.is_ipv4() => Outlet::Ip4,
                Via::Ip => Outlet::Ip6,
            };
            if let Some(source) = unavailable[outlet as usize].take() {
                return Err(RawError::Socket {
                    what: "opening a raw socket",
                    source,
                });
            }
            // The probe's own source, when several are given.
            let own_source = options
                .sources
                .get(usize::from(probe.source))
                .copied()
                .filter(|s| s.is_ipv4() == probe.addr.is_ipv4())
                .unwrap_or(path.source);
            // Our probe, among the decoys' copies in the order given.
            let me = [Decoy::Me];
            let sources = if options.decoys.is_empty() {
                &me[..]
            } else {
                &options.decoys[..]
            };
            // In the table before a packet of it can go (and come back
            // unsent: see `account`).
            flights.insert(&probe);
            if let Some(&ping) = pings.get(usize::from(probe.port)) {
                // On a directly attached segment the neighbour solicitation
                // is the one probe, as nmap's ARP ping; elsewhere it has no
                // meaning.
                let segment = if frames && neighbour_pings {
                    paths.on_segment(probe.addr).ok().flatten()
                } else {
                    None
                };
                let applies = match ping {
                    PingProbe::Neighbour => segment.is_some(),
                    _ => segment.is_none(),
                };
                if !applies {
                    flights.remove(&probe);
                    scheduler.on_skipped(probe.id, now);
                    continue;
                }
                let outlet = if ping == PingProbe::Neighbour {
                    Outlet::Frame
                } else {
                    outlet
                };
                let batch = sender.filling(outlet, &mut |b| {
                    account(b, scheduler, &mut flights, &mut stats, &mut fatal, now)
                });
                let staged = match (ping, segment) {
                    (PingProbe::Neighbour, Some(segment)) => {
                        stage_solicitation(probe, segment, batch)
                    }
                    _ => {
                        let shot = shot(probe, own_source, probe.port);
                        let module = &mut modules.discovery;
                        stage(module, shot, &keys, path.via, Some(probe), batch)
                    }
                };
                staged?;
                if batch.packets.is_full() {
                    sender.submit(outlet);
                }
            }
            for decoy in sources.iter().filter(|_| pings.is_empty()) {
                // Our copy carries the probe, a decoy's none.
                let (source, ours) = match *decoy {
                    Decoy::Me => (own_source, Some(probe)),
                    Decoy::Addr(a) if a.is_ipv4() == probe.addr.is_ipv4() => (a, None),
                    Decoy::Addr(_) => continue,
                };
                let batch = sender.filling(outlet, &mut |b| {
                    account(b, scheduler, &mut flights, &mut stats, &mut fatal, now)
                });
                match options.probes {
                    RawProbes::IpProtocols => {
                        let shot = shot(probe, source, probe.port);
                        stage(&mut modules.ip_protocol, shot, &keys, path.via, ours, batch)?;
                    }
                    RawProbes::Sctp(kind) => {
                        let shot = shot(probe, source, probe.port);
                        stage(modules.sctp(kind), shot, &keys, path.via, ours, batch)?;
                    }
                    RawProbes::Udp => {
                        let shot = shot(probe, source, probe.port);
                        stage(&mut modules.udp, shot, &keys, path.via, ours, batch)?;
                    }
                    RawProbes::Tcp { scan, .. } => {
                        let shot = shot(probe, source, probe.port);
                        stage(modules.tcp(scan), shot, &keys, path.via, ours, batch)?;
                    }
                    RawProbes::Os(_) => {
                        let shot = shot(probe, source, probe.port);
                        stage(&mut modules.os, shot, &keys, path.via, ours, batch)?;
                        observer.sent(&probe, now);
                    }
                    // Discovery sends no decoys' copies (filtered above).
                    RawProbes::Discovery(_) => {}
                }
                if batch.packets.is_full() {
                    sender.submit(outlet);
                }
            }
        }
        sender.submit_all();
        if let Some(e) = fatal.take() {
            return Err(e);
        }
        while let Some(mut event) = scheduler.poll_event() {
            if let ScanEvent::HostDone(report) = &mut event {
                report.mac = macs.remove(&report.target.addr);
            }
            sink(event);
        }
        if scheduler.is_finished() {
            sender.collect(true, &mut |b| {
                account(b, scheduler, &mut flights, &mut stats, &mut fatal, now)
            });
            stats.dropped += receiver.take_drops();
            return Ok(stats);
        }
        let wait = crate::turn_wait(
            scheduler,
            now,
            handed == SEND_BUDGET || cancelled == crate::CANCEL_BUDGET,
        );
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(RawError::Socket {
                    what: "polling the packet socket",
                    source: e,
                });
            }
        }
    }
}

/// Answers to neighbours' requests for claimed sources, written while
/// reading and sent after it; a fixed set of buffers (a request that finds
/// them full is asked again by its neighbour).
#[derive(Default)]
struct NeighbourAnswers {
    frames: Vec<([u8; NEIGHBOUR_FRAME], usize)>,
    used: usize,
}

/// Longest neighbour answer: Ethernet, IPv6 and an advertisement with one
/// option.
const NEIGHBOUR_FRAME: usize = 96;
/// Answers held per reading at most.
const NEIGHBOUR_ANSWERS: usize = 32;

impl NeighbourAnswers {
    /// Writes the answer to `packet` if it asks for a claimed address;
    /// whether it did.
    fn answer(&mut self, claims: &Claims, packet: &[u8]) -> bool {
        if self.frames.is_empty() {
            self.frames = vec![([0; NEIGHBOUR_FRAME], 0); NEIGHBOUR_ANSWERS];
        }
        let Some((frame, len)) = self.frames.get_mut(self.used) else {
            return false;
        };
        match claims.answer(packet, frame) {
            Some(n) => {
                *len = n;
                self.used += 1;
                true
            }
            None => false,
        }
    }

    /// The answers written since the last call.
    fn drain(&mut self) -> impl Iterator<Item = ([u8; NEIGHBOUR_FRAME], usize)> + '_ {
        let used = std::mem::take(&mut self.used);
        self.frames[..used].iter().copied()
    }
}

/// How long the segment is given to say that a claimed source address is
/// someone else's (RFC 5227 waits longer between its probes; a host that
/// holds an address answers a request for it within milliseconds).
const CLAIM_WAIT: Duration = Duration::from_millis(300);
/// Requests per claimed address in that time.
const CLAIM_ASKS: u32 = 2;

/// The source addresses (`-S`) this run claims on the segment: those not
/// configured on this machine. They must be on the segment of the
/// interface given with `-e`, sent as frames, and not in use by another
/// host, which is asked for first.
fn claim_sources(
    options: &RawOptions,
    oif: Option<u32>,
    frames: bool,
    paths: &mut Paths,
    frame_socket: Option<&socket2::Socket>,
    receiver: &mut crate::context::Lease,
) -> Result<Option<Claims>, RawError> {
    let locals = sys::local_addresses();
    let unconfigured: Vec<IpAddr> = options
        .sources
        .iter()
        .copied()
        .filter(|a| !locals.contains(a))
        .collect();
    let Some(&first) = unconfigured.first() else {
        return Ok(None);
    };
    let problem = |addr: IpAddr, problem: &str| RawError::Source {
        addr,
        problem: problem.to_string(),
    };
    let Some(oif) = oif else {
        return Err(problem(
            first,
            "not configured on this machine: name the interface to claim it on with -e",
        ));
    };
    let socket = match frame_socket {
        Some(socket) if frames => socket,
        _ => {
            return Err(problem(
                first,
                "not configured on this machine, and claiming it needs frames on a packet                  socket (not --send-ip)",
            ));
        }
    };
    // Each must be on the interface's segment; ask who holds it from the
    // interface's own address.
    // (The routing table unbound to the interface decides: looked up on
    // `-e`'s interface, any address seems on its link.)
    let mut netlink = route::Netlink::open().map_err(socket_error("opening rtnetlink"))?;
    let mut asks = Vec::new();
    let mut mac = None;
    for &addr in &unconfigured {
        let on_link = netlink
            .route(addr, None)
            .is_ok_and(|r| r.ifindex == oif && r.gateway.is_none() && !r.local);
        match paths.on_segment(addr) {
            Ok(Some((ifindex, own, asker))) if on_link && ifindex == oif => {
                mac = Some(own);
                asks.push((addr, asker));
            }
            _ => {
                return Err(problem(
                    addr,
                    "not on the subnet of the interface given with -e",
                ));
            }
        }
    }
    let Some(claims) = mac.and_then(|mac| Claims::new(unconfigured, mac, oif)) else {
        return Ok(None);
    };
    let mut batch = sys::SendBatch::new();
    let deadline = Instant::now() + CLAIM_WAIT;
    for ask in 0..CLAIM_ASKS {
        for &(addr, asker) in &asks {
            if batch.is_full() {
                let _ = batch.flush(socket.as_raw_fd());
            }
            if let Some(buffer) = batch.next_buffer() {
                let len = claims.ask(buffer, asker, addr).map_err(build_error)?;
                batch.commit_frame(len, oif);
            }
        }
        let (_, error) = batch.flush(socket.as_raw_fd());
        if let Some(source) = error {
            return Err(RawError::Socket {
                what: "asking for the claimed source addresses",
                source,
            });
        }
        let until = if ask + 1 == CLAIM_ASKS {
            deadline
        } else {
            Instant::now() + CLAIM_WAIT / CLAIM_ASKS
        };
        while Instant::now() < until {
            let mut taken = None;
            receiver
                .drain(RECV_BUDGET, |packet, arrival, _| {
                    if arrival.kind != sys::PACKET_OUTGOING && taken.is_none() {
                        taken = claims.conflict(packet);
                    }
                })
                .map_err(socket_error("reading the packet socket"))?;
            if let Some((addr, mac)) = taken {
                return Err(RawError::SourceInUse { addr, mac });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(Some(claims))
}

/// Takes a batch back from the sending thread: counts what went, and
/// hands the probes that could not go back to the scheduler as not sent
/// (a full socket buffer is back-pressure, not a failure).
fn account(
    batch: &mut Batch,
    scheduler: &mut Scheduler,
    flights: &mut FlightTable,
    stats: &mut RawStats,
    fatal: &mut Option<RawError>,
    now: Instant,
) {
    stats.sent += batch.sent as u64;
    for probe in batch
        .probes
        .get(batch.sent..)
        .unwrap_or(&[])
        .iter()
        .flatten()
    {
        flights.remove(probe);
        scheduler.on_not_sent(probe.id, now);
    }
    batch.probes.clear();
    match batch.error.take() {
        None => {}
        Some(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOBUFS | libc::EAGAIN | libc::ENOMEM)
            ) => {}
        Some(e) => {
            fatal.get_or_insert(RawError::Socket {
                what: "sending probes",
                source: e,
            });
        }
    }
}

/// The probe modules of a run (see [`crate::probe`]): TCP ones by the
/// scan whose reading applies (the run's own, with `--scanflags`, first),
/// UDP, and SCTP ones by kind.
pub(crate) struct Modules {
    tcp: Vec<TcpProbes>,
    udp: UdpProbes,
    sctp: Vec<SctpProbes>,
    ip_protocol: IpProtocolProbes,
    discovery: DiscoveryProbes,
    os: OsProbes,
}

impl Modules {
    /// The modules `probes` needs, `scanflags` applying to a TCP scan's.
    pub(crate) fn new(probes: &RawProbes, scanflags: Option<TcpFlags>) -> Modules {
        let mut tcp = Vec::new();
        if let RawProbes::Tcp { scan, .. } = *probes {
            tcp.push(TcpProbes::new(scan, scanflags));
        }
        for scan in [TcpScan::Syn, TcpScan::Ack] {
            if !tcp.iter().any(|m: &TcpProbes| m.scan() == scan) {
                tcp.push(TcpProbes::new(scan, None));
            }
        }
        Modules {
            tcp,
            udp: UdpProbes::default(),
            sctp: vec![
                SctpProbes::new(SctpProbe::Init),
                SctpProbes::new(SctpProbe::CookieEcho),
            ],
            ip_protocol: IpProtocolProbes::default(),
            discovery: DiscoveryProbes::new(probes.pings().to_vec()),
            os: match probes {
                RawProbes::Os(os) => os.clone(),
                _ => OsProbes::new(Vec::new(), Vec::new()),
            },
        }
    }

    /// The IP protocols the answers to `probes` come in (for the kernel
    /// filter; ICMP and ICMPv6 always pass).
    fn answer_protocols(probes: &RawProbes) -> Vec<u8> {
        match probes {
            RawProbes::Tcp { scan, flags } => TcpProbes::new(*scan, *flags).answer_protocols(),
            RawProbes::Udp => UdpProbes::default().answer_protocols(),
            RawProbes::Sctp(kind) => SctpProbes::new(*kind).answer_protocols(),
            RawProbes::IpProtocols => IpProtocolProbes::default().answer_protocols(),
            RawProbes::Discovery(pings) => DiscoveryProbes::new(pings.clone()).answer_protocols(),
            RawProbes::Os(os) => os.answer_protocols(),
        }
        .to_vec()
    }

    /// The module of `scan`'s probes.
    fn tcp(&mut self, scan: TcpScan) -> &mut TcpProbes {
        let i = match self.tcp.iter().position(|m| m.scan() == scan) {
            Some(i) => i,
            None => {
                self.tcp.push(TcpProbes::new(scan, None));
                self.tcp.len() - 1
            }
        };
        &mut self.tcp[i]
    }

    /// The module reading `scan`'s answers, if the run sends such probes.
    fn tcp_reading(&self, scan: TcpScan) -> Option<&TcpProbes> {
        self.tcp.iter().find(|m| m.scan() == scan)
    }

    /// The module of SCTP probes of `kind`.
    fn sctp(&mut self, kind: SctpProbe) -> &mut SctpProbes {
        let i = usize::from(kind != SctpProbe::Init);
        &mut self.sctp[i]
    }

    /// The module reading the answers to SCTP probes of `kind`.
    fn sctp_reading(&self, kind: SctpProbe) -> &SctpProbes {
        &self.sctp[usize::from(kind != SctpProbe::Init)]
    }
}

/// Stamps `probe` from `source` into `buffer` with the module of
/// `probes`, as the run would before sending it (for the offline
/// transport, which measures the engine without sending).
pub(crate) fn stamp_offline(
    modules: &mut Modules,
    probes: &RawProbes,
    probe: Probe,
    source: IpAddr,
    keys: &Keys<'_>,
    buffer: &mut [u8],
) -> Result<(), RawError> {
    let shot = shot(probe, source, probe.port);
    let stamped = match *probes {
        RawProbes::IpProtocols => modules.ip_protocol.stamp(shot, keys, buffer),
        RawProbes::Sctp(kind) => modules.sctp(kind).stamp(shot, keys, buffer),
        RawProbes::Udp => modules.udp.stamp(shot, keys, buffer),
        RawProbes::Tcp { scan, .. } => modules.tcp(scan).stamp(shot, keys, buffer),
        RawProbes::Discovery(ref pings) => match pings.get(usize::from(probe.port)) {
            Some(PingProbe::Neighbour) | None => Ok(0),
            Some(_) => modules.discovery.stamp(shot, keys, buffer),
        },
        RawProbes::Os(_) => modules.os.stamp(shot, keys, buffer),
    };
    stamped.map(drop).map_err(build_error)
}

/// The shot of `probe` from `source` to the target's `port`.
fn shot(probe: Probe, source: IpAddr, port: u16) -> Shot {
    Shot {
        source,
        target: probe.addr,
        port,
        try_no: probe.try_no,
    }
}

/// Builds one probe into a batch with `module`: the Ethernet header first
/// for a frame, then the IP packet.
fn stage(
    module: &mut impl ProbeModule,
    shot: Shot,
    keys: &Keys<'_>,
    via: Via,
    probe: Option<Probe>,
    batch: &mut Batch,
) -> Result<(), RawError> {
    let Some(buffer) = batch.packets.next_buffer() else {
        return Ok(());
    };
    let offset = frame_header(buffer, via);
    let len = module
        .stamp(shot, keys, &mut buffer[offset..])
        .map_err(build_error)?;
    // Nothing to send (a ping without a form in this IP version): as if
    // it went unanswered.
    if len > 0 {
        commit(batch, via, offset + len, shot.target, probe);
    }
    Ok(())
}

/// Writes the Ethernet header of a frame into the start of `buffer`, and
/// returns where the IP packet starts.
fn frame_header(buffer: &mut [u8], via: Via) -> usize {
    match via {
        Via::Frame { header, .. } => {
            buffer[..ETHERNET_HEADER].copy_from_slice(&header);
            ETHERNET_HEADER
        }
        Via::Ip => 0,
    }
}

/// Commits a packet of `len` bytes (from the start of the buffer) to the
/// batch, for `probe` (`None` for a decoy's copy).
fn commit(batch: &mut Batch, via: Via, len: usize, dst: IpAddr, probe: Option<Probe>) {
    match via {
        Via::Frame { ifindex, .. } => batch.packets.commit_frame(len, ifindex),
        Via::Ip => batch.packets.commit(len, dst),
    }
    batch.probes.push(probe);
}

/// Builds a neighbour solicitation (ARP request or ICMPv6 Neighbor
/// Solicitation) into a batch, as a whole frame on the segment's interface.
fn stage_solicitation(
    probe: Probe,
    (ifindex, mac, source): (u32, [u8; 6], IpAddr),
    batch: &mut Batch,
) -> Result<(), RawError> {
    let Some(buffer) = batch.packets.next_buffer() else {
        return Ok(());
    };
    let len = write_solicitation(buffer, mac, source, probe.addr).map_err(build_error)?;
    batch.packets.commit_frame(len, ifindex);
    batch.probes.push(Some(probe));
    Ok(())
}

/// A probe that could not be written (a template or buffer of the wrong
/// shape: a bug, reported rather than panicking).
fn build_error(e: portolan_wire::StampError) -> RawError {
    RawError::Socket {
        what: "building a probe",
        source: io::Error::new(io::ErrorKind::InvalidInput, e.to_string()),
    }
}

/// What the reading of answers needs to judge and report them.
struct Judge<'a> {
    scheduler: &'a mut Scheduler,
    flights: &'a mut FlightTable,
    jar: &'a CookieJar,
    /// Our source ports.
    ports: SourcePorts,
    /// The run's probe modules, which read the answers.
    modules: &'a Modules,
    probes: &'a RawProbes,
    /// The link-layer addresses neighbours answered with, by address,
    /// until their host is reported.
    macs: &'a mut HashMap<IpAddr, [u8; 6]>,
    stats: &'a mut RawStats,
    /// Source addresses claimed on the segment, whose neighbours' requests
    /// are answered (into `neighbour_answers`, sent after the reading).
    claims: Option<&'a Claims>,
    neighbour_answers: &'a mut NeighbourAnswers,
    now: Instant,
    /// Sees the TCP answers with their packets (passive OS hints).
    observer: &'a mut dyn Observer,
}

/// Reads waiting packets and reports the valid answers.
fn receive(receiver: &mut Receiver, judge: &mut Judge) -> Result<(), RawError> {
    // The kernel's receive time, on the monotonic clock: the time a packet
    // waited in the ring does not count as round-trip time.
    let wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let now = judge.now;
    receiver
        .drain(RECV_BUDGET, |packet, arrival, stamp| {
            judge.now = stamp
                .and_then(|stamp| wall.checked_sub(stamp))
                .and_then(|waited| now.checked_sub(waited))
                .unwrap_or(now);
            judge.packet(packet, arrival.kind);
        })
        .map_err(socket_error("reading the packet socket"))?;
    judge.now = now;
    Ok(())
}

impl Judge<'_> {
    /// The cookie key and our ports, for the modules.
    fn keys(&self) -> Keys<'_> {
        Keys {
            jar: self.jar,
            ports: self.ports,
        }
    }

    /// Counts and hands on what a module made of a packet: an answer is
    /// reported, an invalid packet (and, with `strays_count`, one that
    /// does not concern our probes) counted as received and ignored, our
    /// own probes not counted.
    fn judged(&mut self, judged: Judged, strays_count: bool) {
        match judged {
            Judged::Answer(answer) => {
                self.stats.received += 1;
                self.report(answer.target, answer.port, answer.reply);
            }
            Judged::Invalid => {
                self.stats.received += 1;
                self.stats.ignored += 1;
            }
            Judged::Unrelated if strays_count => {
                self.stats.received += 1;
                self.stats.ignored += 1;
            }
            Judged::Unrelated | Judged::OwnProbe => {}
        }
    }

    /// Judges one packet read from the packet socket.
    fn packet(&mut self, bytes: &[u8], kind: u8) {
        if kind == sys::PACKET_OUTGOING {
            return;
        }
        if let Some(claims) = self.claims
            && self.neighbour_answers.answer(claims, bytes)
        {
            return;
        }
        match *self.probes {
            RawProbes::Discovery(_) => return self.ping_answer(bytes),
            RawProbes::Os(_) => {
                let judged = self.modules.os.judge(bytes, &self.keys());
                if let Judged::Answer(a) = &judged {
                    self.observer.answered(a.target, a.port, &a.reply, bytes);
                }
                return self.judged(judged, false);
            }
            RawProbes::IpProtocols => {
                let judged = self.modules.ip_protocol.judge(bytes, &self.keys());
                return self.judged(judged, false);
            }
            _ => {}
        }
        let Ok(packet) = parse_reply(bytes) else {
            self.stats.received += 1;
            self.stats.ignored += 1;
            return;
        };
        let keys = self.keys();
        let judged = match *self.probes {
            RawProbes::Udp => self.modules.udp.judge_parsed(packet, bytes, &keys),
            RawProbes::Sctp(kind) => self.modules.sctp_reading(kind).judge_parsed(packet, &keys),
            RawProbes::Tcp { scan, .. } => match self.modules.tcp_reading(scan) {
                // A TCP scan counts every packet but its own probes.
                Some(module) => {
                    let judged = module.judge_parsed(packet, &keys);
                    if let Judged::Answer(a) = &judged {
                        self.observer.answered(a.target, a.port, &a.reply, bytes);
                    }
                    return self.judged(judged, true);
                }
                None => Judged::Unrelated,
            },
            RawProbes::Discovery(_) | RawProbes::IpProtocols | RawProbes::Os(_) => {
                Judged::Unrelated
            }
        };
        self.judged(judged, false);
    }

    /// Hands an answer to the probe in flight to (`target`, `port`).
    fn report(&mut self, target: IpAddr, port: u16, reply: Reply) {
        match self.flights.take(target, port) {
            Some(id) if self.scheduler.on_reply(id, reply, self.now) => self.stats.matched += 1,
            _ => self.stats.ignored += 1,
        }
    }

    /// Judges a packet in host discovery: an ICMP query's reply or a TCP
    /// ping's answer, matched to the probe by its index.
    fn ping_answer(&mut self, bytes: &[u8]) {
        if let Some(answer) = parse_neighbour_reply(bytes) {
            // No cookie to check: an answer counts only while a
            // solicitation to that address is in flight.
            let Some(index) = self
                .probes
                .pings()
                .iter()
                .position(|p| *p == PingProbe::Neighbour)
            else {
                return;
            };
            self.stats.received += 1;
            let reason = if answer.addr.is_ipv4() {
                Reason::ArpResponse
            } else {
                Reason::NdResponse
            };
            let reply = Reply {
                state: PortState::Open,
                reason,
                ttl: None,
            };
            if let Some(mac) = answer.mac
                && self.flights.contains(answer.addr, index as u16)
                && self.macs.len() < MAX_MACS
            {
                self.macs.insert(answer.addr, mac);
            }
            return self.report(answer.addr, index as u16, reply);
        }
        let judged = self.modules.discovery.judge(bytes, &self.keys());
        self.judged(judged, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_try_has_its_own_source_port() {
        let ports = PortReservation {
            base: 40_000,
            count: TRY_PORTS,
            _sockets: Vec::new(),
        };
        let used: Vec<u16> = (0..TRY_PORTS as u8).map(|t| ports.port_for(t)).collect();
        assert_eq!(used, (40_000..40_000 + TRY_PORTS).collect::<Vec<_>>());
        assert_eq!(ports.port_for(TRY_PORTS as u8), 40_000);
        assert!(
            ports.ports().contains(40_007)
                && !ports.ports().contains(40_008)
                && !ports.ports().contains(39_999)
        );
        let fixed = PortReservation {
            base: 53,
            count: 1,
            _sockets: Vec::new(),
        };
        assert_eq!(fixed.port_for(5), 53);
    }
}
