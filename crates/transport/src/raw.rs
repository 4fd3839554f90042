//! The TCP SYN scan (`-sS`): probes built from a prebuilt template and
//! sent in batches on raw sockets; answers read from a packet socket whose
//! kernel filter passes only TCP and ICMP; every answer checked against
//! the probe's keyed cookie before it counts.
//!
//! States (nmap's): SYN-ACK = open (`syn-ack`, and the kernel, which has no
//! socket for the half-open connection, answers it with a RST); RST =
//! closed (`reset`); an ICMP unreachable quoting the probe (IPv4 type 3
//! codes 0, 1, 2, 3, 9, 10, 13; any ICMPv6 type 1) = filtered with the code
//! as reason; silence after the scheduler's tries = filtered
//! (`no-response`). Each answer's TTL is kept as `reason_ttl`.
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
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Instant, SystemTime};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use portolan_engine::{PortState, Probe, ProbeId, Reason, Reply, ScanEvent, Scheduler};
use portolan_wire::{
    IcmpQuery, Quoted, Reply as Packet, SctpChunk, SctpTemplate, SynTemplate, UdpTemplate,
    ip_protocol, parse_neighbour_reply, parse_query_reply, parse_reply, write_bare, write_query,
    write_solicitation,
};

use crate::cookie::CookieJar;
use crate::paths::{ETHERNET_HEADER, Path, Paths, Via};
use crate::ring::RxRing;
use crate::sender::{Batch, Outlet, SendThread};
use crate::{Control, Observer, route, sys};

/// Probes handed out per turn of the loop at most.
const SEND_BUDGET: usize = 1024;
/// Packets read per turn at most, so sending is not starved.
const RECV_BUDGET: usize = 4096;
/// Link-layer addresses kept at most for hosts not yet reported.
const MAX_MACS: usize = 1 << 16;
/// The port the IP protocol scan's TCP and SCTP probes go to (any port
/// draws an answer: a RST or an ABORT when closed).
const PROTOCOL_SCAN_PORT: u16 = 80;
/// The port of its UDP probe: one no service is known on, so the answer
/// is the host's port unreachable.
const PROTOCOL_SCAN_UDP_PORT: u16 = 40_125;

pub use portolan_wire::{SctpProbe, TcpFlags};

/// The raw TCP scans: one engine, one template each, and nmap's reading
/// of the answers (RFC 9293 §3.10.7: a closed port answers anything but a
/// RST with a RST; an open one silently drops segments without SYN, RST or
/// ACK; any port answers a lone ACK with a RST).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TcpScan {
    /// `-sS`: SYN-ACK = open, RST = closed, silence = filtered.
    #[default]
    Syn,
    /// `-sA`: RST = unfiltered, silence = filtered (maps firewalls).
    Ack,
    /// `-sW`: an ACK scan that reads the RST's window: non-zero = open,
    /// zero = closed (on the few systems that differ; Linux says zero).
    Window,
    /// `-sF`: FIN; RST = closed, silence = open|filtered.
    Fin,
    /// `-sN`: no flags; as FIN.
    Null,
    /// `-sX`: FIN, PSH and URG; as FIN.
    Xmas,
    /// `-sM`: FIN and ACK; as FIN (BSD stacks drop it on open ports; most
    /// others answer RST everywhere).
    Maimon,
}

impl TcpScan {
    /// The probe's control bits.
    pub fn flags(self) -> TcpFlags {
        let bits = match self {
            TcpScan::Syn => TcpFlags::SYN.bits(),
            TcpScan::Ack | TcpScan::Window => TcpFlags::ACK.bits(),
            TcpScan::Fin => TcpFlags::FIN.bits(),
            TcpScan::Null => 0,
            TcpScan::Xmas => TcpFlags::FIN.bits() | TcpFlags::PSH.bits() | TcpFlags::URG.bits(),
            TcpScan::Maimon => TcpFlags::FIN.bits() | TcpFlags::ACK.bits(),
        };
        TcpFlags::from_bits(bits)
    }

    /// nmap's name of the scan (XML `scaninfo type`).
    pub fn name(self) -> &'static str {
        match self {
            TcpScan::Syn => "syn",
            TcpScan::Ack => "ack",
            TcpScan::Window => "window",
            TcpScan::Fin => "fin",
            TcpScan::Null => "null",
            TcpScan::Xmas => "xmas",
            TcpScan::Maimon => "maimon",
        }
    }

    /// The state of a port that never answered.
    pub fn silent_state(self) -> PortState {
        match self {
            TcpScan::Syn | TcpScan::Ack | TcpScan::Window => PortState::Filtered,
            TcpScan::Fin | TcpScan::Null | TcpScan::Xmas | TcpScan::Maimon => {
                PortState::OpenFiltered
            }
        }
    }

    /// What a valid TCP answer with `flags` and `window` says.
    fn read(self, flags: TcpFlags, window: u16) -> Option<(PortState, Reason)> {
        if self == TcpScan::Syn && flags.is_syn_ack() {
            return Some((PortState::Open, Reason::SynAck));
        }
        if !flags.is_rst() {
            return None;
        }
        let state = match self {
            TcpScan::Ack => PortState::Unfiltered,
            TcpScan::Window if window > 0 => PortState::Open,
            _ => PortState::Closed,
        };
        Some((state, Reason::Reset))
    }
}

/// A host discovery probe of the raw engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingProbe {
    /// `-PE`: ICMP or ICMPv6 echo request; the echo reply proves the host.
    Echo,
    /// `-PP`: ICMP timestamp request (IPv4 only; skipped for IPv6).
    Timestamp,
    /// `-PS<port>`: a SYN; a SYN-ACK or a RST proves the host.
    Syn(u16),
    /// `-PA<port>`: a lone ACK; the RST it draws proves the host.
    Ack(u16),
    /// `-PM`: ICMP address mask request (IPv4 only; skipped for IPv6).
    AddressMask,
    /// `-PU<port>`: a UDP datagram (with the port's payload); any UDP
    /// answer, or the host's own port unreachable, proves it.
    Udp(u16),
    /// `-PY<port>`: an SCTP INIT; an INIT ACK or ABORT proves the host.
    Sctp(u16),
    /// `-PR`: an ARP request (IPv4) or Neighbor Solicitation (IPv6), for
    /// hosts on a directly attached segment, where it replaces the other
    /// probes (a host answers it even when its firewall drops all IP).
    Neighbour,
}

impl PingProbe {
    /// The scan whose probe and reading of answers a TCP ping shares.
    fn tcp(self) -> Option<(TcpScan, u16)> {
        match self {
            PingProbe::Syn(port) => Some((TcpScan::Syn, port)),
            PingProbe::Ack(port) => Some((TcpScan::Ack, port)),
            _ => None,
        }
    }
}

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
    /// Keep the privileges after the sockets are open, for a later run
    /// (the port scan after host discovery); by default they are dropped.
    pub keep_privileges: bool,
    /// Source address (`-S`); by default the routing table's choice.
    pub source: Option<IpAddr>,
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
    sys::open_packet_receiver().map_err(not_permitted)?;
    Ok(())
}

fn socket_error(what: &'static str) -> impl Fn(io::Error) -> RawError {
    move |source| RawError::Socket { what, source }
}

/// Source ports per scan: a try uses `base + try % TRY_PORTS`, so that a
/// retransmission is a new connection request to the target. With one
/// port for every try, a target that still holds the half-open
/// connection of an earlier try (its RST lost) takes the retry for a
/// duplicate SYN and answers at most one per `tcp_invalid_ratelimit`
/// (500 ms on Linux): an open port could then go unanswered for good.
/// nmap varies its source port per try for the same reason.
const TRY_PORTS: u16 = 8;

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
    /// Whether a datagram from `src` to `dst` port answers our probes:
    /// to one of our ports, and not from one (our own probes, seen
    /// arriving when the target is on loopback).
    fn answers(&self, (src, dst): (u16, u16)) -> bool {
        !self.contains(src) && self.contains(dst)
    }

    /// The source port of a probe's try.
    pub(crate) fn port_for(&self, try_no: u8) -> u16 {
        self.base + u16::from(try_no) % self.count
    }

    /// Whether `port` is one of ours.
    fn contains(&self, port: u16) -> bool {
        port.wrapping_sub(self.base) < self.count
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

/// Where a probe in flight went, by slot.
#[derive(Clone, Copy)]
struct Flight {
    id: ProbeId,
    dst: IpAddr,
    port: u16,
}

/// The table of probes in flight: by (target, port) for answers, by slot
/// for cancellations.
#[derive(Default)]
struct FlightTable {
    by_target: HashMap<(IpAddr, u16), ProbeId>,
    by_slot: Vec<Option<Flight>>,
}

impl FlightTable {
    fn insert(&mut self, f: Flight) {
        let slot = f.id.slot();
        if self.by_slot.len() <= slot {
            self.by_slot.resize(slot + 1, None);
        }
        if let Some(old) = self.by_slot[slot].replace(f) {
            self.by_target.remove(&(old.dst, old.port));
        }
        self.by_target.insert((f.dst, f.port), f.id);
    }

    fn remove_slot(&mut self, id: ProbeId) {
        if let Some(slot) = self.by_slot.get_mut(id.slot())
            && slot.is_some_and(|f| f.id == id)
        {
            let f = slot.take().expect("checked above");
            if self.by_target.get(&(f.dst, f.port)) == Some(&id) {
                self.by_target.remove(&(f.dst, f.port));
            }
        }
    }

    fn contains(&self, dst: IpAddr, port: u16) -> bool {
        self.by_target.contains_key(&(dst, port))
    }

    fn take(&mut self, dst: IpAddr, port: u16) -> Option<ProbeId> {
        let id = self.by_target.remove(&(dst, port))?;
        if let Some(slot) = self.by_slot.get_mut(id.slot()) {
            *slot = None;
        }
        Some(id)
    }
}

/// The sockets of the scan, opened before privileges are dropped: the
/// frame socket and the raw IP socket of each family, by [`Outlet`]; one
/// that cannot be opened is reported when a probe first needs it (a
/// machine without IPv6 can still scan IPv4).
fn open_senders() -> Result<[Result<socket2::Socket, io::Error>; 3], RawError> {
    let sockets = [
        sys::open_frame_sender(),
        sys::open_raw_sender(false),
        sys::open_raw_sender(true),
    ];
    for socket in &sockets {
        if let Err(e) = socket
            && matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES))
        {
            return Err(RawError::NotPermitted(io::Error::from_raw_os_error(
                e.raw_os_error().unwrap_or(libc::EPERM),
            )));
        }
    }
    Ok(sockets)
}

/// Runs a SYN scan to completion (or interruption), handing every event
/// of the scheduler to `sink`.
pub fn run(
    scheduler: &mut Scheduler,
    options: &RawOptions,
    observer: &mut dyn Observer,
    sink: &mut dyn FnMut(ScanEvent),
) -> Result<RawStats, RawError> {
    let socket = sys::open_packet_receiver().map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => RawError::NotPermitted(e),
        _ => RawError::Socket {
            what: "opening the packet socket",
            source: e,
        },
    })?;
    // Without a ring (a kernel that refuses one), each packet is read with
    // its own system call.
    let ring = RxRing::new(socket.as_raw_fd()).ok();
    let mut receiver = Receiver {
        buf: if ring.is_some() {
            Vec::new()
        } else {
            vec![0; 65_536]
        },
        socket,
        ring,
    };
    let oif = match &options.device {
        Some(name) => {
            let index = route::interface_index(name).map_err(|source| RawError::Interface {
                name: name.clone(),
                source,
            })?;
            sys::bind_packet_socket(receiver.socket.as_raw_fd(), index)
                .map_err(socket_error("binding the packet socket"))?;
            Some(index)
        }
        None => None,
    };
    let reservation = reserve_ports(options.source_port, options.key.0 ^ options.key.1)?;
    let jar = CookieJar::new(options.key.0, options.key.1);
    let opened = open_senders()?;
    let frames = opened[0].is_ok() && !options.send_ip;
    let mut paths = Paths::new(oif, options.source, frames);
    let scanflags = match options.probes {
        RawProbes::Tcp { flags, .. } => flags,
        _ => None,
    };
    let mut templates = Templates::new(reservation.base, scanflags);
    let pings = options.probes.pings();
    // Payloads are written here, then copied into the probe.
    let mut payload = vec![0u8; portolan_payloads::MAX_PAYLOAD_LEN];
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
    let mut poll = Poll::new().map_err(socket_error("creating the poller"))?;
    let fd = receiver.socket.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&fd), Token(0), Interest::READABLE)
        .map_err(socket_error("polling the packet socket"))?;
    let mut events = Events::with_capacity(4);
    // Everything privileged is open: give the privileges up, before the
    // sending thread starts (it inherits this thread's capabilities).
    if !options.keep_privileges {
        sys::drop_capabilities().map_err(socket_error("dropping capabilities"))?;
    }
    let mut sender =
        SendThread::spawn(sockets).map_err(socket_error("starting the sending thread"))?;
    let mut flights = FlightTable::default();
    let mut stats = RawStats::default();
    let mut fatal: Option<RawError> = None;

    loop {
        let now = Instant::now();
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
                our_ports: &reservation,
                probes: &options.probes,
                macs: &mut macs,
                stats: &mut stats,
                now,
            },
        )?;
        while let Some(id) = scheduler.poll_cancel(now) {
            flights.remove_slot(id);
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
            // Our probe, among the decoys' copies in the order given.
            let me = [Decoy::Me];
            let sources = if options.decoys.is_empty() {
                &me[..]
            } else {
                &options.decoys[..]
            };
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
                    (PingProbe::Syn(port) | PingProbe::Ack(port), _) => {
                        let scan = ping.tcp().map_or(TcpScan::Syn, |(scan, _)| scan);
                        let template = templates.tcp(path.source, scan);
                        let tcp = TcpProbe {
                            dst_port: port,
                            id: Some(probe.id),
                        };
                        stage(probe, path.via, template, &reservation, &jar, batch, tcp)
                    }
                    (PingProbe::Udp(port), _) => {
                        let template = templates.udp(path.source);
                        let probe_of = (path.via, Some(probe.id), port);
                        stage_udp(
                            probe,
                            probe_of,
                            template,
                            &reservation,
                            &jar,
                            &mut payload,
                            batch,
                        )
                    }
                    (PingProbe::Sctp(port), _) => {
                        let template = templates.sctp(path.source, SctpProbe::Init);
                        let probe_of = (path.via, Some(probe.id), port);
                        stage_sctp(probe, probe_of, template, &reservation, &jar, batch)
                    }
                    _ => stage_query(probe, ping, path, Some(probe.id), &jar, batch),
                };
                staged?;
                if batch.packets.is_full() {
                    sender.submit(outlet);
                }
            }
            for decoy in sources.iter().filter(|_| pings.is_empty()) {
                let (source, id) = match *decoy {
                    Decoy::Me => (path.source, Some(probe.id)),
                    Decoy::Addr(a) if a.is_ipv4() == probe.addr.is_ipv4() => (a, None),
                    Decoy::Addr(_) => continue,
                };
                let batch = sender.filling(outlet, &mut |b| {
                    account(b, scheduler, &mut flights, &mut stats, &mut fatal, now)
                });
                let probe_of = (path.via, id, probe.port);
                match options.probes {
                    RawProbes::IpProtocols => {
                        let protocol = u8::try_from(probe.port).unwrap_or(u8::MAX);
                        match ProtocolProbe::of(protocol, probe.addr.is_ipv6()) {
                            ProtocolProbe::Echo => {
                                let from = Path { source, ..path };
                                stage_query(probe, PingProbe::Echo, from, id, &jar, batch)?;
                            }
                            ProtocolProbe::Tcp => {
                                let template = templates.tcp(source, TcpScan::Ack);
                                let tcp = TcpProbe {
                                    dst_port: PROTOCOL_SCAN_PORT,
                                    id,
                                };
                                stage(probe, path.via, template, &reservation, &jar, batch, tcp)?;
                            }
                            ProtocolProbe::Udp => {
                                let template = templates.udp(source);
                                let probe_of = (path.via, id, PROTOCOL_SCAN_UDP_PORT);
                                stage_udp(
                                    probe,
                                    probe_of,
                                    template,
                                    &reservation,
                                    &jar,
                                    &mut payload,
                                    batch,
                                )?;
                            }
                            ProtocolProbe::Sctp => {
                                let template = templates.sctp(source, SctpProbe::Init);
                                let probe_of = (path.via, id, PROTOCOL_SCAN_PORT);
                                stage_sctp(probe, probe_of, template, &reservation, &jar, batch)?;
                            }
                            ProtocolProbe::Bare => {
                                stage_bare(probe, probe_of, source, &jar, batch)?;
                            }
                        }
                    }
                    RawProbes::Sctp(kind) => {
                        let template = templates.sctp(source, kind);
                        stage_sctp(probe, probe_of, template, &reservation, &jar, batch)?;
                    }
                    RawProbes::Udp => {
                        let template = templates.udp(source);
                        stage_udp(
                            probe,
                            probe_of,
                            template,
                            &reservation,
                            &jar,
                            &mut payload,
                            batch,
                        )?;
                    }
                    RawProbes::Tcp { scan, .. } => {
                        let template = templates.tcp(source, scan);
                        let tcp = TcpProbe {
                            dst_port: probe.port,
                            id,
                        };
                        stage(probe, path.via, template, &reservation, &jar, batch, tcp)?;
                    }
                    // Discovery sends no decoys' copies (filtered above).
                    RawProbes::Discovery(_) => {}
                }
                if batch.packets.is_full() {
                    sender.submit(outlet);
                }
            }
            flights.insert(Flight {
                id: probe.id,
                dst: probe.addr,
                port: probe.port,
            });
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
            return Ok(stats);
        }
        let wait = crate::turn_wait(scheduler, now, handed == SEND_BUDGET);
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
    for &id in batch.ids.get(batch.sent..).unwrap_or(&[]).iter().flatten() {
        flights.remove_slot(id);
        scheduler.on_not_sent(id, now);
    }
    batch.ids.clear();
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

/// The per-packet part of a TCP probe: its destination port and the probe
/// it belongs to (`None` for a decoy's copy).
#[derive(Clone, Copy)]
struct TcpProbe {
    dst_port: u16,
    id: Option<ProbeId>,
}

/// The probe templates of a run, built on first use, by source address
/// and kind of probe, all for the reserved base source port.
struct Templates {
    source_port: u16,
    /// `--scanflags`: the bits of the scan's probes (not of TCP pings,
    /// which a run with custom flags does not send).
    scanflags: Option<TcpFlags>,
    tcp: HashMap<(IpAddr, TcpScan), SynTemplate>,
    udp: HashMap<IpAddr, UdpTemplate>,
    sctp: HashMap<(IpAddr, SctpProbe), SctpTemplate>,
}

impl Templates {
    fn new(source_port: u16, scanflags: Option<TcpFlags>) -> Templates {
        Templates {
            source_port,
            scanflags,
            tcp: HashMap::new(),
            udp: HashMap::new(),
            sctp: HashMap::new(),
        }
    }

    /// The template of `scan`'s probes from `source` (nmap's shapes: a SYN
    /// with the MSS option, the others without options).
    fn tcp(&mut self, source: IpAddr, scan: TcpScan) -> &SynTemplate {
        let port = self.source_port;
        let flags = self.scanflags.unwrap_or(scan.flags());
        self.tcp.entry((source, scan)).or_insert_with(|| {
            let shape = portolan_wire::SynOptions {
                flags,
                mss: (flags == TcpFlags::SYN).then_some(1460),
                ..portolan_wire::SynOptions::default()
            };
            SynTemplate::with_options(source, port, shape)
        })
    }

    fn udp(&mut self, source: IpAddr) -> &UdpTemplate {
        let port = self.source_port;
        self.udp
            .entry(source)
            .or_insert_with(|| UdpTemplate::new(source, port))
    }

    fn sctp(&mut self, source: IpAddr, kind: SctpProbe) -> &SctpTemplate {
        let port = self.source_port;
        self.sctp
            .entry((source, kind))
            .or_insert_with(|| SctpTemplate::new(source, port, kind))
    }
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
/// batch, for probe `id`.
fn commit(batch: &mut Batch, via: Via, len: usize, dst: IpAddr, id: Option<ProbeId>) {
    match via {
        Via::Frame { ifindex, .. } => batch.packets.commit_frame(len, ifindex),
        Via::Ip => batch.packets.commit(len, dst),
    }
    batch.ids.push(id);
}

/// Builds an ICMP query of host discovery into a batch, its cookie in the
/// identifier and sequence number (keyed by the probe's index).
fn stage_query(
    probe: Probe,
    ping: PingProbe,
    path: Path,
    id: Option<ProbeId>,
    jar: &CookieJar,
    batch: &mut Batch,
) -> Result<(), RawError> {
    let query = match ping {
        PingProbe::Timestamp | PingProbe::AddressMask if probe.addr.is_ipv6() => {
            // No ICMPv6 form: nothing to send, as if it went unanswered.
            return Ok(());
        }
        PingProbe::Timestamp => IcmpQuery::Timestamp,
        PingProbe::AddressMask => IcmpQuery::AddressMask,
        _ => IcmpQuery::Echo,
    };
    let cookie = jar.cookie(path.source, probe.addr, 0, probe.port);
    let Some(buffer) = batch.packets.next_buffer() else {
        return Ok(());
    };
    let offset = frame_header(buffer, path.via);
    let len = write_query(
        &mut buffer[offset..],
        path.source,
        probe.addr,
        query,
        cookie,
        (cookie >> 16) as u16 ^ u16::from(probe.try_no),
    )
    .map_err(build_error)?;
    commit(batch, path.via, offset + len, probe.addr, id);
    Ok(())
}

/// What the IP protocol scan sends for one protocol number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProtocolProbe {
    /// An ICMP echo request (protocol 1 over IPv4, 58 over IPv6).
    Echo,
    /// A TCP ACK, which any stack answers with a RST.
    Tcp,
    /// A UDP datagram to a closed port: a port unreachable proves UDP.
    Udp,
    /// An SCTP INIT, answered by an INIT ACK or an ABORT.
    Sctp,
    /// A bare header, for the protocols without such a probe.
    Bare,
}

impl ProtocolProbe {
    fn of(protocol: u8, v6: bool) -> ProtocolProbe {
        match protocol {
            ip_protocol::TCP => ProtocolProbe::Tcp,
            ip_protocol::UDP => ProtocolProbe::Udp,
            ip_protocol::SCTP => ProtocolProbe::Sctp,
            p if p == echo_protocol(v6) => ProtocolProbe::Echo,
            _ => ProtocolProbe::Bare,
        }
    }
}

/// ICMP's protocol number in this IP version: 1, or 58 (ICMPv6).
fn echo_protocol(v6: bool) -> u8 {
    if v6 {
        ip_protocol::ICMPV6
    } else {
        ip_protocol::ICMP
    }
}

/// Builds a bare probe of the IP protocol scan into a batch: the protocol
/// number in the IP header, the cookie after it.
fn stage_bare(
    probe: Probe,
    (via, id, protocol): (Via, Option<ProbeId>, u16),
    source: IpAddr,
    jar: &CookieJar,
    batch: &mut Batch,
) -> Result<(), RawError> {
    let cookie = jar.cookie(source, probe.addr, 0, protocol);
    let Some(buffer) = batch.packets.next_buffer() else {
        return Ok(());
    };
    let offset = frame_header(buffer, via);
    let len = write_bare(
        &mut buffer[offset..],
        source,
        probe.addr,
        u8::try_from(protocol).unwrap_or(u8::MAX),
        cookie,
        (cookie >> 16) as u16 ^ u16::from(probe.try_no),
    )
    .map_err(build_error)?;
    commit(batch, via, offset + len, probe.addr, id);
    Ok(())
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
    batch.ids.push(Some(probe.id));
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

/// What an ICMP or ICMPv6 destination unreachable quoting one of our
/// probes says of its port; `None` for other errors (a time exceeded says
/// nothing about the port).
fn unreachable_reason(v6: bool, icmp_type: u8, code: u8) -> Option<Reason> {
    let reason = if v6 {
        Reason::from_icmpv6(icmp_type, code)
    } else {
        Reason::from_icmpv4(icmp_type, code)
    };
    reason.filter(|r| *r != Reason::TimeExceeded)
}

/// How an SCTP scan of `kind` reads a packet from `target` to `ours`
/// with verification tag `vtag` and first chunk `chunk`: an INIT's INIT
/// ACK = open, its ABORT = closed; a COOKIE ECHO's ABORT (T bit set) =
/// closed. `None` for anything else, or without our cookie as the tag.
fn sctp_reading(
    jar: &CookieJar,
    (target, target_port): (IpAddr, u16),
    (ours, our_port): (IpAddr, u16),
    vtag: u32,
    chunk: SctpChunk,
    kind: SctpProbe,
) -> Option<(PortState, Reason)> {
    let read = match (kind, chunk) {
        (SctpProbe::Init, SctpChunk::InitAck { .. }) => (PortState::Open, Reason::InitAck),
        (SctpProbe::Init, SctpChunk::Abort { reflected: false })
        | (SctpProbe::CookieEcho, SctpChunk::Abort { reflected: true }) => {
            (PortState::Closed, Reason::Abort)
        }
        _ => return None,
    };
    (vtag == sctp_cookie(jar, ours, target, our_port, target_port)).then_some(read)
}

/// The cookie of an SCTP probe: never 0, which an INIT's Initiate Tag
/// may not be (RFC 9260 section 3.3.2).
fn sctp_cookie(jar: &CookieJar, ours: IpAddr, target: IpAddr, sport: u16, dport: u16) -> u32 {
    jar.cookie(ours, target, sport, dport).max(1)
}

/// Builds one SCTP probe into a batch.
fn stage_sctp(
    probe: Probe,
    (via, id, dst_port): (Via, Option<ProbeId>, u16),
    template: &SctpTemplate,
    ports: &PortReservation,
    jar: &CookieJar,
    batch: &mut Batch,
) -> Result<(), RawError> {
    let src = template.src();
    let port = ports.port_for(probe.try_no);
    let cookie = sctp_cookie(jar, src, probe.addr, port, dst_port);
    let Some(buffer) = batch.packets.next_buffer() else {
        return Ok(());
    };
    let offset = frame_header(buffer, via);
    let ip_id = (cookie >> 16) as u16 ^ u16::from(probe.try_no);
    let len = template
        .stamp(
            &mut buffer[offset..],
            probe.addr,
            port,
            dst_port,
            cookie,
            ip_id,
        )
        .map_err(build_error)?;
    commit(batch, via, offset + len, probe.addr, id);
    Ok(())
}

/// Builds one UDP probe into a batch: the payload for its port (see
/// `portolan_payloads`; none for other ports) with the cookie where the
/// protocol echoes it, written into `scratch` and copied behind the
/// headers.
fn stage_udp(
    probe: Probe,
    (via, id, dst_port): (Via, Option<ProbeId>, u16),
    template: &UdpTemplate,
    ports: &PortReservation,
    jar: &CookieJar,
    scratch: &mut [u8],
    batch: &mut Batch,
) -> Result<(), RawError> {
    let src = template.src();
    let port = ports.port_for(probe.try_no);
    let cookie = jar.cookie(src, probe.addr, port, dst_port);
    let len = portolan_payloads::payload_for(dst_port, cookie, scratch).unwrap_or(0);
    let Some(buffer) = batch.packets.next_buffer() else {
        return Ok(());
    };
    let offset = frame_header(buffer, via);
    let stamped = template
        .stamp(
            &mut buffer[offset..],
            probe.addr,
            port,
            dst_port,
            (cookie >> 16) as u16 ^ u16::from(probe.try_no),
            &scratch[..len],
        )
        .map_err(build_error)?;
    commit(batch, via, offset + stamped, probe.addr, id);
    Ok(())
}

/// Builds one TCP probe into a batch: the Ethernet header first for a
/// frame, then the packet from the template.
fn stage(
    probe: Probe,
    via: Via,
    template: &SynTemplate,
    ports: &PortReservation,
    jar: &CookieJar,
    batch: &mut Batch,
    tcp: TcpProbe,
) -> Result<(), RawError> {
    let src = template.src();
    let port = ports.port_for(probe.try_no);
    let seq = jar.cookie(src, probe.addr, port, tcp.dst_port);
    let Some(buffer) = batch.packets.next_buffer() else {
        return Ok(());
    };
    let offset = frame_header(buffer, via);
    let len = template
        .stamp(
            &mut buffer[offset..],
            probe.addr,
            port,
            tcp.dst_port,
            seq,
            (seq >> 16) as u16 ^ u16::from(probe.try_no),
        )
        .map_err(build_error)?;
    commit(batch, via, offset + len, probe.addr, tcp.id);
    Ok(())
}

/// Where answers are read from: the receive ring, or (when the kernel
/// offers none) the packet socket itself, a `recvfrom` per packet.
struct Receiver {
    socket: socket2::Socket,
    ring: Option<RxRing>,
    buf: Vec<u8>,
}

/// What the reading of answers needs to judge and report them.
struct Judge<'a> {
    scheduler: &'a mut Scheduler,
    flights: &'a mut FlightTable,
    jar: &'a CookieJar,
    our_ports: &'a PortReservation,
    probes: &'a RawProbes,
    /// The link-layer addresses neighbours answered with, by address,
    /// until their host is reported.
    macs: &'a mut HashMap<IpAddr, [u8; 6]>,
    stats: &'a mut RawStats,
    now: Instant,
}

/// Reads waiting packets and reports the valid answers.
fn receive(receiver: &mut Receiver, judge: &mut Judge) -> Result<(), RawError> {
    if let Some(ring) = &mut receiver.ring {
        // The kernel's receive time, on the monotonic clock: the time a
        // packet waited in the ring does not count as round-trip time.
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let now = judge.now;
        ring.drain(RECV_BUDGET, |packet, kind, stamp| {
            judge.now = wall
                .checked_sub(stamp)
                .and_then(|waited| now.checked_sub(waited))
                .unwrap_or(now);
            judge.packet(packet, kind);
        });
        judge.now = now;
        return Ok(());
    }
    let fd = receiver.socket.as_raw_fd();
    for _ in 0..RECV_BUDGET {
        let Some((len, kind)) = sys::recv_packet(fd, &mut receiver.buf)
            .map_err(socket_error("reading the packet socket"))?
        else {
            return Ok(());
        };
        judge.packet(&receiver.buf[..len], kind);
    }
    Ok(())
}

impl Judge<'_> {
    /// Judges one packet read from the packet socket.
    fn packet(&mut self, bytes: &[u8], kind: u8) {
        if kind == sys::PACKET_OUTGOING {
            return;
        }
        match *self.probes {
            RawProbes::Discovery(_) => return self.ping_answer(bytes),
            RawProbes::IpProtocols => return self.ip_protocol_answer(bytes),
            _ => {}
        }
        let Ok(packet) = parse_reply(bytes) else {
            self.stats.received += 1;
            self.stats.ignored += 1;
            return;
        };
        match *self.probes {
            RawProbes::Udp => self.udp_answer(packet, bytes),
            RawProbes::Sctp(kind) => self.sctp_answer(packet, kind),
            RawProbes::Tcp { scan, flags } => {
                self.tcp_answer(packet, scan, flags.unwrap_or(scan.flags()));
            }
            RawProbes::Discovery(_) | RawProbes::IpProtocols => {}
        }
    }

    /// Judges a packet in a TCP scan whose probes carry `sent`.
    fn tcp_answer(&mut self, packet: Packet, scan: TcpScan, sent: TcpFlags) {
        if is_own_probe(&packet, self.our_ports, sent) {
            // Our own SYN, seen arriving when the target is on loopback.
            return;
        }
        self.stats.received += 1;
        let Some((target, port, reply)) = classify(packet, self.jar, scan, sent) else {
            self.stats.ignored += 1;
            return;
        };
        self.report(target, port, reply);
    }

    /// Judges a packet in a UDP scan: a datagram from a scanned port to one
    /// of ours, or an ICMP error quoting one of our probes.
    fn udp_answer(&mut self, packet: Packet, bytes: &[u8]) {
        match packet {
            Packet::Udp {
                src,
                dst,
                ttl,
                src_port,
                dst_port,
                payload,
            } => {
                // Our own probes, seen arriving on loopback, and datagrams
                // that are not for us.
                if !self.our_ports.answers((src_port, dst_port)) {
                    return;
                }
                self.stats.received += 1;
                match self.udp_reply((src, src_port), (dst, dst_port), ttl, payload.of(bytes)) {
                    Some(reply) => self.report(src, src_port, reply),
                    None => self.stats.ignored += 1,
                }
            }
            Packet::IcmpError {
                ttl,
                v6,
                icmp_type,
                code,
                quoted,
                ..
            } if quoted.protocol == portolan_wire::ip_protocol::UDP
                && self.our_ports.contains(quoted.src_port) =>
            {
                self.stats.received += 1;
                let reason = unreachable_reason(v6, icmp_type, code);
                let Some(reason) = reason else {
                    self.stats.ignored += 1;
                    return;
                };
                let state = if reason == Reason::PortUnreach {
                    PortState::Closed
                } else {
                    PortState::Filtered
                };
                let reply = Reply {
                    state,
                    reason,
                    ttl: Some(ttl),
                };
                self.report(quoted.dst, quoted.dst_port, reply);
            }
            _ => {}
        }
    }

    /// Judges a packet in an IP protocol scan: an answer in a probed
    /// protocol (an echo reply, a TCP RST, a UDP datagram, an SCTP INIT
    /// ACK or ABORT) proves it open, and so does the host's port
    /// unreachable for the UDP probe; the host's protocol unreachable
    /// proves it closed; other unreachables, or any from a router, prove
    /// it filtered. Each must carry the probe's cookie.
    fn ip_protocol_answer(&mut self, bytes: &[u8]) {
        if let Some(answer) = parse_query_reply(bytes) {
            if answer.query != IcmpQuery::Echo {
                return;
            }
            self.stats.received += 1;
            let protocol = u16::from(echo_protocol(answer.src.is_ipv6()));
            if answer.cookie != self.jar.cookie(answer.dst, answer.src, 0, protocol) {
                self.stats.ignored += 1;
                return;
            }
            let reply = Reply {
                state: PortState::Open,
                reason: Reason::EchoReply,
                ttl: Some(answer.ttl),
            };
            return self.report(answer.src, protocol, reply);
        }
        let Ok(packet) = parse_reply(bytes) else {
            self.stats.received += 1;
            self.stats.ignored += 1;
            return;
        };
        let answer = match packet {
            Packet::Tcp { src_port, .. } => {
                if is_own_probe(&packet, self.our_ports, TcpScan::Ack.flags()) {
                    return;
                }
                self.stats.received += 1;
                classify(packet, self.jar, TcpScan::Ack, TcpScan::Ack.flags())
                    .filter(|_| src_port == PROTOCOL_SCAN_PORT)
                    .map(|(target, _, reply)| {
                        let reply = Reply {
                            state: PortState::Open,
                            reason: Reason::ProtoResponse,
                            ..reply
                        };
                        (target, ip_protocol::TCP, reply)
                    })
            }
            Packet::Udp {
                src,
                dst,
                ttl,
                src_port,
                dst_port,
                payload,
            } => {
                if !self.our_ports.answers((src_port, dst_port)) {
                    return;
                }
                self.stats.received += 1;
                self.udp_reply((src, src_port), (dst, dst_port), ttl, payload.of(bytes))
                    .map(|reply| (src, ip_protocol::UDP, reply))
            }
            Packet::Sctp {
                src,
                dst,
                ttl,
                src_port,
                dst_port,
                vtag,
                chunk,
            } => {
                if !self.our_ports.answers((src_port, dst_port)) {
                    return;
                }
                self.stats.received += 1;
                // An INIT's answer, either way, is SCTP spoken.
                let reply = Reply {
                    state: PortState::Open,
                    reason: Reason::ProtoResponse,
                    ttl: Some(ttl),
                };
                sctp_reading(
                    self.jar,
                    (src, src_port),
                    (dst, dst_port),
                    vtag,
                    chunk,
                    SctpProbe::Init,
                )
                .map(|_| (src, ip_protocol::SCTP, reply))
            }
            Packet::IcmpError {
                from,
                ttl,
                v6,
                icmp_type,
                code,
                quoted,
            } => {
                self.stats.received += 1;
                let reason = unreachable_reason(v6, icmp_type, code);
                let protocol = self.quoted_protocol_probe(&quoted);
                protocol.zip(reason).map(|(protocol, reason)| {
                    let from_target = from == quoted.dst;
                    let state = match reason {
                        Reason::ProtoUnreach | Reason::ParamProblem if from_target => {
                            PortState::Closed
                        }
                        Reason::PortUnreach if from_target && protocol == ip_protocol::UDP => {
                            PortState::Open
                        }
                        _ => PortState::Filtered,
                    };
                    let reply = Reply {
                        state,
                        reason,
                        ttl: Some(ttl),
                    };
                    (quoted.dst, protocol, reply)
                })
            }
            _ => return,
        };
        match answer {
            Some((target, protocol, reply)) => self.report(target, u16::from(protocol), reply),
            None => self.stats.ignored += 1,
        }
    }

    /// The protocol number of the IP protocol scan's probe an ICMP error
    /// quotes, if the quote shows that probe's cookie.
    fn quoted_protocol_probe(&self, quoted: &Quoted) -> Option<u8> {
        let jar = self.jar;
        let (ours, target) = (quoted.src, quoted.dst);
        let (sport, dport) = (quoted.src_port, quoted.dst_port);
        let protocol = quoted.protocol;
        let valid = match ProtocolProbe::of(protocol, target.is_ipv6()) {
            ProtocolProbe::Tcp => {
                self.our_ports.contains(sport)
                    && quoted.seq == Some(jar.cookie(ours, target, sport, dport))
            }
            ProtocolProbe::Udp => self.our_ports.contains(sport),
            ProtocolProbe::Sctp => {
                self.our_ports.contains(sport)
                    && quoted.sctp_cookie() == Some(sctp_cookie(jar, ours, target, sport, dport))
            }
            ProtocolProbe::Echo => {
                quoted.echo_cookie == Some(jar.cookie(ours, target, 0, u16::from(protocol)))
            }
            ProtocolProbe::Bare => {
                let carried = (u32::from(sport) << 16) | u32::from(dport);
                carried == jar.cookie(ours, target, 0, u16::from(protocol))
            }
        };
        valid.then_some(protocol)
    }

    /// The reading of a UDP datagram from `target` to `ours`: open
    /// (`udp-response`), if it carries our cookie where its protocol
    /// echoes it (see [`Judge::echoes_cookie`]).
    fn udp_reply(
        &self,
        target: (IpAddr, u16),
        ours: (IpAddr, u16),
        ttl: u8,
        payload: &[u8],
    ) -> Option<Reply> {
        self.echoes_cookie(target, ours, payload).then_some(Reply {
            state: PortState::Open,
            reason: Reason::UdpResponse,
            ttl: Some(ttl),
        })
    }

    /// Whether a UDP answer from `target` to `ours` carries our cookie
    /// where its protocol echoes it; a datagram of a protocol that echoes
    /// nothing (or that we cannot read) proves the port open as it is.
    fn echoes_cookie(&self, target: (IpAddr, u16), ours: (IpAddr, u16), answer: &[u8]) -> bool {
        let cookie = self.jar.cookie(ours.0, target.0, ours.1, target.1);
        portolan_payloads::echo(target.1, answer).is_none_or(|e| e.matches(cookie))
    }

    /// Judges a UDP or SCTP ping's answer, or an ICMP error from the host
    /// itself quoting a ping (its port or protocol unreachable proves it
    /// up; errors from routers on the way count as silence).
    fn other_ping_answer(&mut self, packet: Packet, bytes: &[u8]) {
        let (target, port, reply) = match packet {
            Packet::Udp {
                src,
                dst,
                ttl,
                src_port,
                dst_port,
                payload,
            } if self.our_ports.answers((src_port, dst_port)) => {
                let Some(reply) =
                    self.udp_reply((src, src_port), (dst, dst_port), ttl, payload.of(bytes))
                else {
                    return;
                };
                (src, PingProbe::Udp(src_port), reply)
            }
            Packet::Sctp {
                src,
                dst,
                ttl,
                src_port,
                dst_port,
                vtag,
                chunk,
            } if self.our_ports.contains(dst_port) => {
                // An INIT ACK or an ABORT: the host is up either way.
                let Some((_, reason)) = sctp_reading(
                    self.jar,
                    (src, src_port),
                    (dst, dst_port),
                    vtag,
                    chunk,
                    SctpProbe::Init,
                ) else {
                    return;
                };
                let reply = Reply {
                    state: PortState::Open,
                    reason,
                    ttl: Some(ttl),
                };
                (src, PingProbe::Sctp(src_port), reply)
            }
            Packet::IcmpError {
                from,
                ttl,
                v6,
                icmp_type,
                code,
                quoted,
            } if from == quoted.dst && self.our_ports.contains(quoted.src_port) => {
                let Some(reason) = unreachable_reason(v6, icmp_type, code) else {
                    return;
                };
                let ping = match quoted.protocol {
                    portolan_wire::ip_protocol::UDP => PingProbe::Udp(quoted.dst_port),
                    portolan_wire::ip_protocol::SCTP => PingProbe::Sctp(quoted.dst_port),
                    _ => return,
                };
                let reply = Reply {
                    state: PortState::Open,
                    reason,
                    ttl: Some(ttl),
                };
                (quoted.dst, ping, reply)
            }
            _ => return,
        };
        self.stats.received += 1;
        match self.probes.pings().iter().position(|p| *p == port) {
            Some(index) => self.report(target, index as u16, reply),
            None => self.stats.ignored += 1,
        }
    }

    /// Judges a packet in an SCTP scan: an INIT ACK or ABORT carrying our
    /// cookie as its verification tag, or an ICMP error quoting a probe
    /// with our cookie.
    fn sctp_answer(&mut self, packet: Packet, kind: SctpProbe) {
        match packet {
            Packet::Sctp {
                src,
                dst,
                ttl,
                src_port,
                dst_port,
                vtag,
                chunk,
            } => {
                if !self.our_ports.answers((src_port, dst_port)) {
                    return;
                }
                self.stats.received += 1;
                let read = sctp_reading(
                    self.jar,
                    (src, src_port),
                    (dst, dst_port),
                    vtag,
                    chunk,
                    kind,
                );
                match read {
                    Some((state, reason)) => self.report(
                        src,
                        src_port,
                        Reply {
                            state,
                            reason,
                            ttl: Some(ttl),
                        },
                    ),
                    None => self.stats.ignored += 1,
                }
            }
            Packet::IcmpError {
                ttl,
                v6,
                icmp_type,
                code,
                quoted,
                ..
            } if quoted.protocol == portolan_wire::ip_protocol::SCTP
                && self.our_ports.contains(quoted.src_port) =>
            {
                self.stats.received += 1;
                let cookie = sctp_cookie(
                    self.jar,
                    quoted.src,
                    quoted.dst,
                    quoted.src_port,
                    quoted.dst_port,
                );
                let reason = unreachable_reason(v6, icmp_type, code);
                match reason {
                    Some(reason) if quoted.sctp_cookie() == Some(cookie) => {
                        let reply = Reply {
                            state: PortState::Filtered,
                            reason,
                            ttl: Some(ttl),
                        };
                        self.report(quoted.dst, quoted.dst_port, reply);
                    }
                    _ => self.stats.ignored += 1,
                }
            }
            _ => {}
        }
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
        if let Some(answer) = parse_query_reply(bytes) {
            self.stats.received += 1;
            let (want, reason) = match answer.query {
                IcmpQuery::Echo => (PingProbe::Echo, Reason::EchoReply),
                IcmpQuery::Timestamp => (PingProbe::Timestamp, Reason::TimestampReply),
                IcmpQuery::AddressMask => (PingProbe::AddressMask, Reason::MaskReply),
            };
            let index = self.probes.pings().iter().position(|p| *p == want);
            let valid = index
                .filter(|&i| answer.cookie == self.jar.cookie(answer.dst, answer.src, 0, i as u16));
            let Some(index) = valid else {
                self.stats.ignored += 1;
                return;
            };
            let reply = Reply {
                state: PortState::Open,
                reason,
                ttl: Some(answer.ttl),
            };
            return self.report(answer.src, index as u16, reply);
        }
        let packet = match parse_reply(bytes) {
            Ok(packet @ Packet::Tcp { .. }) => packet,
            Ok(other) => return self.other_ping_answer(other, bytes),
            Err(_) => return,
        };
        let Packet::Tcp { src_port, .. } = packet else {
            return;
        };
        if is_own_probe(&packet, self.our_ports, TcpScan::Syn.flags())
            || is_own_probe(&packet, self.our_ports, TcpScan::Ack.flags())
        {
            return;
        }
        self.stats.received += 1;
        for (index, ping) in self.probes.pings().iter().enumerate() {
            let Some((scan, port)) = ping.tcp() else {
                continue;
            };
            if port != src_port {
                continue;
            }
            if let Some((target, _, reply)) = classify(packet, self.jar, scan, scan.flags()) {
                let reply = Reply {
                    state: PortState::Open,
                    ..reply
                };
                return self.report(target, index as u16, reply);
            }
        }
        self.stats.ignored += 1;
    }
}

/// Whether a packet is one of our probes (our ports, the probe's bits),
/// seen arriving when the target is on loopback.
fn is_own_probe(packet: &Packet, our_ports: &PortReservation, sent: TcpFlags) -> bool {
    matches!(
        *packet,
        Packet::Tcp { src_port, flags, .. }
            if our_ports.contains(src_port) && flags == sent
    )
}

/// What a packet proves, if it is a valid answer to one of our probes:
/// the target, its port, and the answer. An answer with ACK acknowledges
/// the probe's sequence number (the cookie) plus one for a SYN or a FIN;
/// a RST without ACK answers a probe that carried ACK and takes its
/// sequence number from the probe's acknowledgment number, the cookie too.
/// `sent` are the probe's control bits, `scan` says how answers read.
fn classify(
    packet: Packet,
    jar: &CookieJar,
    scan: TcpScan,
    sent: TcpFlags,
) -> Option<(IpAddr, u16, Reply)> {
    match packet {
        Packet::Tcp {
            src,
            dst,
            ttl,
            src_port,
            dst_port,
            seq,
            ack,
            flags,
            window,
        } => {
            let cookie = jar.cookie(dst, src, dst_port, src_port);
            let valid = if flags.contains(TcpFlags::ACK) {
                let consumed = u32::from(sent.contains(TcpFlags::SYN))
                    + u32::from(sent.contains(TcpFlags::FIN));
                ack == cookie.wrapping_add(consumed)
            } else {
                sent.contains(TcpFlags::ACK) && seq == cookie
            };
            if !valid {
                return None;
            }
            let (state, reason) = scan.read(flags, window)?;
            Some((
                src,
                src_port,
                Reply {
                    state,
                    reason,
                    ttl: Some(ttl),
                },
            ))
        }
        Packet::IcmpError {
            ttl,
            v6,
            icmp_type,
            code,
            quoted,
            ..
        } => {
            if quoted.protocol != 6 {
                return None;
            }
            let expected = jar.cookie(quoted.src, quoted.dst, quoted.src_port, quoted.dst_port);
            if quoted.seq != Some(expected) {
                return None;
            }
            let reason = if v6 {
                Reason::from_icmpv6(icmp_type, code)
            } else if icmp_type == 3 && matches!(code, 0 | 1 | 2 | 3 | 9 | 10 | 13) {
                Reason::from_icmpv4(icmp_type, code)
            } else {
                None
            }?;
            if icmp_type == 11 || (v6 && icmp_type == 3) {
                return None;
            }
            Some((
                quoted.dst,
                quoted.dst_port,
                Reply {
                    state: PortState::Filtered,
                    reason,
                    ttl: Some(ttl),
                },
            ))
        }
        _ => None,
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
        assert!(ports.contains(40_007) && !ports.contains(40_008) && !ports.contains(39_999));
        let fixed = PortReservation {
            base: 53,
            count: 1,
            _sockets: Vec::new(),
        };
        assert_eq!(fixed.port_for(5), 53);
    }
}
