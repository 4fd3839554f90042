//! The idle scan (`-sI zombie[:probeport]`): ports of a target probed with
//! SYNs that carry a third host's address (the zombie), read back through
//! the zombie's IPv4 Identification counter. No packet goes from our own
//! address to the target during the port scan.
//!
//! How it works (nmap's idle scan, after Salvatore Sanfilippo's idea): a
//! host whose IP ID is one global counter, incremented per packet sent, is
//! asked for it by an unsolicited SYN-ACK to a port of it (its RST carries
//! the current value). SYNs to the target, spoofed from the zombie, draw
//! SYN-ACKs from the target's open ports to the zombie, which answers each
//! with a RST (one more packet, one more ID), while closed ports send the
//! zombie RSTs (which it ignores) and filtered ones nothing. So the rise of
//! the ID between two of our probes, less one for our own probe's answer,
//! counts the open ports among those probed in between. Ports go in
//! groups; a group that shows a rise is split in halves, each tested,
//! down to single ports, and a single port counts as open only when two
//! tests agree ([`resolve_ports`]); a rise larger than the group (the
//! zombie's own traffic) shrinks the groups and repeats the test.
//!
//! Before any spoofed packet, [`IdleScan::check_zombie`] reads the
//! zombie's ID several times and classifies its sequence ([`IpIdClass`]):
//! only a global incremental counter (or its byte-swapped variant) will
//! do; then it sends a few SYN-ACKs spoofed from the first target to the
//! zombie and checks that the zombie's ID rose by them (a per-destination
//! counter, or a network that drops spoofed packets, does not).
//!
//! Timing is the engine's: each probe of the zombie waits the timeout of
//! its measured round-trip time ([`RttEstimator`], `--min/max-rtt-timeout`,
//! doubled per retransmission, `--max-retries` retransmissions but at most
//! three); the
//! spoofed SYNs follow `--max-rate` ([`RateLimiter`]) and `--scan-delay`;
//! before each reading the zombie gets one such timeout to answer the
//! target (a target much farther away than the zombie needs a larger
//! `--min-rtt-timeout`: its SYN-ACKs must reach the zombie in that time). Each zombie probe's acknowledgment number is a keyed cookie
//! (plus the probe's serial number), which the zombie's RST returns as
//! its sequence number: stray, late and forged packets are ignored and
//! counted in [`RawStats::ignored`].
//!
//! Contract: IPv4 only; needs `CAP_NET_RAW`; untrusted packets never panic
//! (`portolan-wire` validates them). The pure parts ([`IpIdClass`],
//! [`resolve_ports`]) are tested without I/O.
//!
//! Read first: nmap's "TCP Idle Scan (-sI)" chapter, RFC 6864 (IPv4 ID
//! uniqueness, and why modern stacks randomize it), RFC 9293 §3.10.7.1
//! (an unacceptable SYN-ACK draws a RST whose sequence number is its
//! acknowledgment number).

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use portolan_engine::{RateLimiter, RttEstimator, TimingConfig};
use portolan_wire::{SynTemplate, TcpFlags};

use crate::context::{Lease, RawContext};
use crate::cookie::CookieJar;
use crate::paths::{ETHERNET_HEADER, Paths, Via};
use crate::raw::{PortReservation, RawError, RawStats, reserve_ports};
use crate::{route, sys};

/// IP IDs read from the zombie to classify its sequence.
pub const CLASSIFY_SAMPLES: usize = 6;

/// The largest step between two consecutive readings of an incremental
/// counter: one packet for our probe, and some traffic of its own.
pub const MAX_STEP: u16 = 64;

/// SYN-ACKs spoofed from the first target to the zombie, to check that
/// spoofed packets reach it and move its counter.
const SPOOF_CHECK: u16 = 4;

/// The largest group of ports tested at once.
pub const MAX_GROUP: usize = 64;

/// The first group's size.
pub const FIRST_GROUP: usize = 16;

/// Retransmissions of a probe of the zombie at most, whatever
/// `--max-retries` allows: a zombie that misses four in a row is not
/// worth waiting for (host discovery caps its retries the same way).
const ZOMBIE_RETRIES: u8 = 3;

/// Tests of a single port at most, to settle whether it is open.
const SINGLE_TESTS: u8 = 4;

/// How a host's IP IDs follow each other (nmap's classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IpIdClass {
    /// One counter, incremented per packet: usable.
    Incremental,
    /// One counter written in the wrong byte order (increments of 256):
    /// usable, read byte-swapped.
    BrokenLittleEndian,
    /// Always zero (Linux for some packets, many stacks with DF set).
    Zero,
    /// The same non-zero value every time.
    Constant,
    /// Rising by random steps (a per-destination or time-based counter).
    RandomPositive,
    /// Random values.
    Random,
}

impl IpIdClass {
    /// Classifies successive readings of a host's IP ID, oldest first.
    pub fn classify(ids: &[u16]) -> IpIdClass {
        if ids.len() < 2 {
            return IpIdClass::Random;
        }
        if ids.iter().all(|&id| id == 0) {
            return IpIdClass::Zero;
        }
        let steps = |ids: &mut dyn Iterator<Item = u16>| -> Vec<u16> {
            let v: Vec<u16> = ids.collect();
            v.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect()
        };
        let plain = steps(&mut ids.iter().copied());
        if plain.iter().all(|&d| d == 0) {
            return IpIdClass::Constant;
        }
        if plain.iter().all(|&d| (1..=MAX_STEP).contains(&d)) {
            return IpIdClass::Incremental;
        }
        let swapped = steps(&mut ids.iter().map(|id| id.swap_bytes()));
        if swapped.iter().all(|&d| (1..=MAX_STEP).contains(&d)) {
            return IpIdClass::BrokenLittleEndian;
        }
        if plain.iter().all(|&d| d != 0 && d < 0x8000) {
            return IpIdClass::RandomPositive;
        }
        IpIdClass::Random
    }

    /// Whether an idle scan can read port states through this counter.
    pub fn usable(self) -> bool {
        matches!(self, IpIdClass::Incremental | IpIdClass::BrokenLittleEndian)
    }

    /// nmap's name of the class.
    pub fn name(self) -> &'static str {
        match self {
            IpIdClass::Incremental => "Incremental",
            IpIdClass::BrokenLittleEndian => "Broken little-endian incremental",
            IpIdClass::Zero => "All zeros",
            IpIdClass::Constant => "Constant",
            IpIdClass::RandomPositive => "Random positive increments",
            IpIdClass::Random => "Randomized",
        }
    }

    /// The counter's value behind an ID as read.
    fn counter(self, id: u16) -> u16 {
        match self {
            IpIdClass::BrokenLittleEndian => id.swap_bytes(),
            _ => id,
        }
    }
}

/// One port's verdict from [`resolve_ports`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The port.
    pub port: u16,
    /// Whether the zombie's counter showed the target's SYN-ACK.
    pub open: bool,
    /// How many times SYNs went to this port.
    pub tries: u8,
}

/// Finds the open ports among `ports`, given `test`, which sends one SYN
/// to each port of a group (spoofed from the zombie) and returns the rise
/// of the zombie's counter that followed (its own probe's answer already
/// taken off): the number of open ports in the group, plus any traffic of
/// the zombie's own. Groups start at [`FIRST_GROUP`] ports, grow while
/// tests are clean, up to [`MAX_GROUP`], and halve when a test shows more
/// rise than the group has ports (a busy zombie); a group with a rise is
/// split in halves, each tested again, down to single ports, where two
/// agreeing tests decide. Traffic of the zombie's own can only add to a
/// rise, so it costs tests, never an open port; a lost packet can hide
/// one, as in nmap. `stop` is asked between groups: once it says so, the
/// verdicts of the groups settled so far come back, in the order of
/// `ports` (a prefix of it).
///
/// # Errors
/// The first error of `test`.
pub fn resolve_ports<E>(
    ports: &[u16],
    test: &mut dyn FnMut(&[u16]) -> Result<u32, E>,
    stop: &dyn Fn() -> bool,
) -> Result<Vec<Verdict>, E> {
    let mut verdicts: Vec<Verdict> = ports
        .iter()
        .map(|&port| Verdict {
            port,
            open: false,
            tries: 0,
        })
        .collect();
    let mut size = FIRST_GROUP;
    let mut at = 0;
    // Consecutive tests of one group that showed too much rise.
    let mut noisy = 0u8;
    while at < verdicts.len() {
        if stop() {
            verdicts.truncate(at);
            break;
        }
        let end = (at + size).min(verdicts.len());
        let rise = group_test(&mut verdicts[at..end], test)?;
        if rise as usize > end - at && noisy < SINGLE_TESTS && end - at > 1 {
            // More than one answer per port: the zombie talked to someone
            // else meanwhile. Smaller groups, and again.
            noisy += 1;
            size = (size / 2).max(1);
            continue;
        }
        noisy = 0;
        if rise > 0 {
            bisect(&mut verdicts[at..end], rise, test)?;
        } else {
            size = (size + size / 2).min(MAX_GROUP);
        }
        at = end;
    }
    Ok(verdicts)
}

/// Tests one group: its ports' SYNs, then the rise.
fn group_test<E>(
    group: &mut [Verdict],
    test: &mut dyn FnMut(&[u16]) -> Result<u32, E>,
) -> Result<u32, E> {
    let ports: Vec<u16> = group.iter().map(|v| v.port).collect();
    for v in group.iter_mut() {
        v.tries = v.tries.saturating_add(1);
    }
    test(&ports)
}

/// Settles a group whose test showed `rise`.
fn bisect<E>(
    group: &mut [Verdict],
    rise: u32,
    test: &mut dyn FnMut(&[u16]) -> Result<u32, E>,
) -> Result<(), E> {
    if rise == 0 {
        return Ok(());
    }
    if let [single] = group {
        // One test said 1 (or more: noise). Open when two tests say
        // exactly 1, closed|filtered when two say 0.
        let (mut ones, mut zeros) = (u8::from(rise == 1), 0u8);
        for _ in 1..SINGLE_TESTS {
            if ones >= 2 || zeros >= 2 {
                break;
            }
            match group_test(std::slice::from_mut(single), test)? {
                0 => zeros += 1,
                1 => ones += 1,
                _ => {}
            }
        }
        single.open = ones >= 2 || (ones == 1 && zeros == 0);
        return Ok(());
    }
    let half = group.len() / 2;
    let (left, right) = group.split_at_mut(half);
    for part in [left, right] {
        let rise = group_test(part, test)?;
        bisect(part, rise, test)?;
    }
    Ok(())
}

/// Options of an idle scan.
#[derive(Clone, Debug)]
pub struct IdleOptions {
    /// The zombie.
    pub zombie: Ipv4Addr,
    /// The zombie's port our SYN-ACKs go to (nmap's default: 80).
    pub probe_port: u16,
    /// Source address of our probes to the zombie (`-S`).
    pub source: Option<IpAddr>,
    /// Source port of our probes to the zombie (`-g`).
    pub source_port: Option<u16>,
    /// Send on this interface only (`-e`).
    pub device: Option<String>,
    /// Every packet through the kernel's IP path (`--send-ip`).
    pub send_ip: bool,
    /// The run's timing.
    pub timing: TimingConfig,
    /// Cookie key.
    pub key: (u64, u64),
}

/// Why an idle scan could not run or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdleError {
    /// Sockets, routes, privileges.
    #[error(transparent)]
    Raw(#[from] RawError),
    /// The zombie never answered our SYN-ACKs.
    #[error(
        "the zombie {zombie} does not answer on port {port} (no RST to our SYN-ACKs); \
         try another zombie or another port (-sI zombie:port)"
    )]
    ZombieSilent {
        /// The zombie.
        zombie: Ipv4Addr,
        /// Its probe port.
        port: u16,
    },
    /// The zombie's IP ID sequence cannot count packets.
    #[error(
        "the zombie {zombie} cannot be used: its IP ID sequence class is {}; \
         an idle scan needs an incremental one (try another zombie)",
        class.name()
    )]
    Unusable {
        /// The zombie.
        zombie: Ipv4Addr,
        /// Its class.
        class: IpIdClass,
    },
    /// The zombie's counter did not move for packets sent to it from
    /// another address.
    #[error(
        "the zombie {zombie} cannot be used: its IP ID rose by {rise}, not {expected}, for \
         {expected} SYN-ACKs spoofed from {from} (a per-destination counter, or spoofed \
         packets are dropped on the way)"
    )]
    SpoofIgnored {
        /// The zombie.
        zombie: Ipv4Addr,
        /// The spoofed source.
        from: Ipv4Addr,
        /// The rise seen.
        rise: u16,
        /// The rise expected.
        expected: u16,
    },
    /// The zombie stopped answering during the scan.
    #[error("the zombie {zombie} stopped answering during the scan")]
    ZombieLost {
        /// The zombie.
        zombie: Ipv4Addr,
    },
}

/// What the zombie check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZombieReport {
    /// The zombie's IP ID sequence class.
    pub class: IpIdClass,
    /// The IDs read, oldest first.
    pub ids: Vec<u16>,
    /// The round-trip time to the zombie.
    pub srtt: Option<Duration>,
}

/// An idle scan through one zombie: sockets, paths, timing and counters.
pub struct IdleScan {
    options: IdleOptions,
    receiver: Lease,
    poll: Poll,
    events: Events,
    frame_sender: Option<socket2::Socket>,
    ip_sender: socket2::Socket,
    paths: Paths,
    reservation: PortReservation,
    jar: CookieJar,
    /// Our SYN-ACK to the zombie.
    probe: Option<SynTemplate>,
    /// The SYNs spoofed from the zombie.
    spoofed: SynTemplate,
    batch: sys::SendBatch,
    rtt: RttEstimator,
    limiter: RateLimiter,
    class: IpIdClass,
    /// The counter's last reading.
    last: Option<u16>,
    serial: u32,
    stats: RawStats,
}

impl IdleScan {
    /// Opens the scan on `context`'s sockets.
    ///
    /// # Errors
    /// [`IdleError::Raw`] when a socket cannot be used.
    pub fn open(options: IdleOptions, context: &Arc<RawContext>) -> Result<IdleScan, IdleError> {
        let oif = match &options.device {
            Some(name) => {
                Some(
                    route::interface_index(name).map_err(|source| RawError::Interface {
                        name: name.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let receiver = context.receiver(&[portolan_wire::ip_protocol::TCP], oif)?;
        let [frame_sender, ip_sender, _] = context.senders();
        let ip_sender = ip_sender.map_err(|source| RawError::Socket {
            what: "opening a raw socket",
            source,
        })?;
        let frame_sender = if options.send_ip {
            None
        } else {
            frame_sender.ok()
        };
        let reservation = reserve_ports(options.source_port, options.key.0 ^ options.key.1)?;
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
        let paths = Paths::new(oif, options.source, frame_sender.is_some());
        let spoofed = SynTemplate::new(IpAddr::V4(options.zombie), reservation.base);
        Ok(IdleScan {
            jar: CookieJar::new(options.key.0, options.key.1),
            limiter: RateLimiter::new(Instant::now(), None, options.timing.max_rate),
            options,
            receiver,
            poll,
            events: Events::with_capacity(4),
            frame_sender,
            ip_sender,
            paths,
            reservation,
            probe: None,
            spoofed,
            batch: sys::SendBatch::new(),
            rtt: RttEstimator::default(),
            class: IpIdClass::Incremental,
            last: None,
            serial: 0,
            stats: RawStats::default(),
        })
    }

    /// Packet counters so far.
    pub fn stats(&self) -> RawStats {
        self.stats
    }

    /// The round-trip time to the zombie, once measured.
    pub fn zombie_srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    /// The zombie's round-trip variation, once measured.
    pub fn zombie_rttvar(&self) -> Option<Duration> {
        self.rtt.rttvar()
    }

    /// The timeout of a probe of the zombie (and the time the zombie gets
    /// to answer the target before a reading).
    pub fn timeout(&self) -> Duration {
        let t = &self.options.timing;
        self.rtt.timeout(t, t.initial_rtt_timeout)
    }

    /// Reads the zombie's ID several times, classifies the sequence, and
    /// checks that SYN-ACKs spoofed from `first_target` move its counter.
    /// Sends nothing to the target itself.
    ///
    /// # Errors
    /// [`IdleError::ZombieSilent`], [`IdleError::Unusable`],
    /// [`IdleError::SpoofIgnored`], or a socket error.
    pub fn check_zombie(&mut self, first_target: Ipv4Addr) -> Result<ZombieReport, IdleError> {
        let zombie = self.options.zombie;
        let silent = IdleError::ZombieSilent {
            zombie,
            port: self.options.probe_port,
        };
        let mut ids = Vec::with_capacity(CLASSIFY_SAMPLES);
        for _ in 0..CLASSIFY_SAMPLES {
            match self.read_id()? {
                Some(id) => ids.push(id),
                None if ids.is_empty() => return Err(silent),
                None => {}
            }
        }
        let class = IpIdClass::classify(&ids);
        if !class.usable() {
            return Err(IdleError::Unusable { zombie, class });
        }
        self.class = class;
        let before = self.fresh()?;
        let template = SynTemplate::with_options(
            IpAddr::V4(first_target),
            self.reservation.base,
            portolan_wire::SynOptions {
                flags: TcpFlags::SYN | TcpFlags::ACK,
                mss: None,
                ..portolan_wire::SynOptions::default()
            },
        );
        for n in 0..SPOOF_CHECK {
            let sport = self.reservation.port_for(n as u8);
            let seq = self.jar.cookie(
                IpAddr::V4(first_target),
                IpAddr::V4(zombie),
                sport,
                self.options.probe_port,
            );
            self.send(
                &template,
                IpAddr::V4(zombie),
                sport,
                self.options.probe_port,
                seq,
            )?;
        }
        self.settle();
        let after = self.fresh()?;
        let rise = after.wrapping_sub(before).wrapping_sub(1);
        // One spoofed packet may be lost; the zombie's own traffic only adds.
        if rise < SPOOF_CHECK - 1 {
            return Err(IdleError::SpoofIgnored {
                zombie,
                from: first_target,
                rise,
                expected: SPOOF_CHECK,
            });
        }
        Ok(ZombieReport {
            class,
            ids,
            srtt: self.rtt.srtt(),
        })
    }

    /// Scans `ports` of `target` through the zombie; `stop` is asked
    /// between tests, and a stopped scan returns `None`.
    ///
    /// # Errors
    /// [`IdleError::ZombieLost`], or a socket error.
    pub fn scan_host(
        &mut self,
        target: Ipv4Addr,
        ports: &[u16],
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<Verdict>, IdleError> {
        let mut test = |group: &[u16]| -> Result<u32, IdleError> {
            let before = self.latest()?;
            for &port in group {
                self.pace();
                let sport = self.reservation.port_for(0);
                let seq = self.jar.cookie(
                    IpAddr::V4(self.options.zombie),
                    IpAddr::V4(target),
                    sport,
                    port,
                );
                let template = self.spoofed.clone();
                self.send(&template, IpAddr::V4(target), sport, port, seq)?;
            }
            self.settle();
            let after = self.fresh()?;
            Ok(u32::from(after.wrapping_sub(before).wrapping_sub(1)))
        };
        resolve_ports(ports, &mut test, stop)
    }

    /// The counter's latest reading: the last one taken (whose own RST is
    /// already counted), or a fresh one.
    fn latest(&mut self) -> Result<u16, IdleError> {
        match self.last {
            Some(id) => Ok(id),
            None => self.fresh(),
        }
    }

    /// A fresh reading, kept as the latest.
    fn fresh(&mut self) -> Result<u16, IdleError> {
        self.last = None;
        let id = self.read_id()?.ok_or(IdleError::ZombieLost {
            zombie: self.options.zombie,
        })?;
        self.last = Some(id);
        Ok(id)
    }

    /// Gives the target's answers time to reach the zombie, and the
    /// zombie's RSTs time to leave, before the next reading.
    fn settle(&self) {
        std::thread::sleep(self.timeout());
    }

    /// Waits as `--max-rate` and `--scan-delay` ask before a spoofed SYN.
    fn pace(&mut self) {
        let now = Instant::now();
        if let Some(at) = self.limiter.next_allowed(now) {
            std::thread::sleep(at.saturating_duration_since(now));
        }
        if !self.options.timing.scan_delay.is_zero() {
            std::thread::sleep(self.options.timing.scan_delay);
        }
        self.limiter.on_sent(Instant::now());
    }

    /// One reading of the zombie's counter, with retransmissions; `None`
    /// when every try went unanswered.
    fn read_id(&mut self) -> Result<Option<u16>, IdleError> {
        let zombie = IpAddr::V4(self.options.zombie);
        let port = self.options.probe_port;
        let mut timeout = self.timeout();
        for try_no in 0..=self.options.timing.max_retries.min(ZOMBIE_RETRIES) {
            self.serial = self.serial.wrapping_add(1);
            let sport = self.reservation.port_for(try_no);
            let ours = self.our_source()?;
            let seq = self
                .jar
                .cookie(ours, zombie, sport, port)
                .wrapping_add(self.serial);
            let template = match &self.probe {
                Some(t) => t.clone(),
                None => {
                    let t = crate::probe::zombie::probe_template(
                        self.our_source()?,
                        self.reservation.base,
                    );
                    self.probe = Some(t.clone());
                    t
                }
            };
            let sent_at = Instant::now();
            self.send(&template, zombie, sport, port, seq)?;
            if let Some(id) = self.await_rst(sport, seq, sent_at + timeout)? {
                self.rtt.sample(sent_at.elapsed());
                return Ok(Some(self.class.counter(id)));
            }
            timeout = (timeout * 2).min(self.options.timing.max_rtt_timeout);
        }
        Ok(None)
    }

    /// Our address towards the zombie.
    fn our_source(&mut self) -> Result<IpAddr, IdleError> {
        let zombie = IpAddr::V4(self.options.zombie);
        let path = self
            .paths
            .resolve(zombie, Instant::now())
            .map_err(|source| RawError::Route {
                addr: zombie,
                source,
            })?;
        Ok(path.source)
    }

    /// Reads packets until the zombie's RST to our probe from `sport`
    /// with sequence number `seq` comes (its IP ID), or `deadline`.
    fn await_rst(
        &mut self,
        sport: u16,
        seq: u32,
        deadline: Instant,
    ) -> Result<Option<u16>, IdleError> {
        let zombie = IpAddr::V4(self.options.zombie);
        let probe_port = self.options.probe_port;
        loop {
            let mut found = None;
            let stats = &mut self.stats;
            self.receiver
                .drain(usize::MAX, |bytes, _, _| {
                    stats.received += 1;
                    let id = crate::probe::zombie::rst_ip_id(bytes, zombie, probe_port, sport, seq);
                    match id {
                        Some(id) if found.is_none() => {
                            stats.matched += 1;
                            found = Some(id);
                        }
                        _ => stats.ignored += 1,
                    }
                })
                .map_err(|source| RawError::Socket {
                    what: "reading the packet socket",
                    source,
                })?;
            if found.is_some() {
                return Ok(found);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).min(crate::MAX_IDLE);
            match self.poll.poll(&mut self.events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(RawError::Socket {
                        what: "polling the packet socket",
                        source,
                    }
                    .into());
                }
            }
        }
    }

    /// Sends one packet stamped from `template` to `dst`, as a frame or
    /// through the kernel's IP path.
    fn send(
        &mut self,
        template: &SynTemplate,
        dst: IpAddr,
        sport: u16,
        dport: u16,
        seq: u32,
    ) -> Result<(), IdleError> {
        let path = self
            .paths
            .resolve(dst, Instant::now())
            .map_err(|source| RawError::Route { addr: dst, source })?;
        let via = if self.frame_sender.is_some() {
            path.via
        } else {
            Via::Ip
        };
        let ip_id = (self.serial as u16) ^ dport;
        let Some(buffer) = self.batch.next_buffer() else {
            return Ok(());
        };
        let at = match via {
            Via::Frame { header, .. } => {
                buffer[..ETHERNET_HEADER].copy_from_slice(&header);
                ETHERNET_HEADER
            }
            Via::Ip => 0,
        };
        let len = template
            .stamp(&mut buffer[at..], dst, sport, dport, seq, ip_id)
            .map_err(|e| RawError::Socket {
                what: "building a probe",
                source: io::Error::other(e.to_string()),
            })?;
        let fd = match via {
            Via::Frame { ifindex, .. } => {
                self.batch.commit_frame(at + len, ifindex);
                self.frame_sender.as_ref().map_or(-1, |s| s.as_raw_fd())
            }
            Via::Ip => {
                self.batch.commit(len, dst);
                self.ip_sender.as_raw_fd()
            }
        };
        let (sent, error) = self.batch.flush(fd);
        self.stats.sent += sent as u64;
        match error {
            None => Ok(()),
            Some(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)) => Ok(()),
            Some(source) => Err(RawError::Socket {
                what: "sending probes",
                source,
            }
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_id_sequences() {
        use IpIdClass::*;
        assert_eq!(IpIdClass::classify(&[5, 6, 7, 8, 9, 10]), Incremental);
        // Wrapping and some traffic of its own.
        assert_eq!(
            IpIdClass::classify(&[65534, 65535, 3, 4, 9, 10]),
            Incremental
        );
        let swapped: Vec<u16> = [254u16, 255, 256, 257, 258, 259]
            .iter()
            .map(|v| v.swap_bytes())
            .collect();
        assert_eq!(IpIdClass::classify(&swapped), BrokenLittleEndian);
        assert_eq!(IpIdClass::classify(&[0; 6]), Zero);
        assert_eq!(IpIdClass::classify(&[77; 6]), Constant);
        assert_eq!(
            IpIdClass::classify(&[100, 1200, 1900, 5000, 9000, 9100]),
            RandomPositive
        );
        assert_eq!(
            IpIdClass::classify(&[51_234, 3_019, 40_411, 12_007, 63_330, 8_101]),
            Random
        );
        assert_eq!(IpIdClass::classify(&[7]), Random);
        assert!(Incremental.usable() && BrokenLittleEndian.usable());
        assert!(
            ![Zero, Constant, RandomPositive, Random]
                .iter()
                .any(|c| c.usable())
        );
        assert_eq!(BrokenLittleEndian.counter(0x0201), 0x0102);
    }

    /// A simulated zombie: the rise is the number of open ports probed,
    /// plus `noise(test number)`.
    fn simulate(
        ports: &[u16],
        open: &[u16],
        noise: &dyn Fn(u32) -> u32,
    ) -> (Vec<Verdict>, u32, u64) {
        let mut tests = 0u32;
        let mut syns = 0u64;
        let verdicts = resolve_ports::<()>(
            ports,
            &mut |group| {
                tests += 1;
                syns += group.len() as u64;
                let hits = group.iter().filter(|p| open.contains(p)).count() as u32;
                Ok(hits + noise(tests))
            },
            &|| false,
        )
        .unwrap();
        (verdicts, tests, syns)
    }

    fn open_of(v: &[Verdict]) -> Vec<u16> {
        v.iter().filter(|v| v.open).map(|v| v.port).collect()
    }

    #[test]
    fn quiet_zombie_finds_exactly_the_open_ports() {
        let ports: Vec<u16> = (1..=1000).collect();
        let open = [22, 23, 80, 443, 999, 1000];
        let (v, tests, _) = simulate(&ports, &open, &|_| 0);
        assert_eq!(open_of(&v), open);
        assert_eq!(v.len(), 1000);
        // Groups grow to 64: far fewer tests than ports.
        assert!(tests < 200, "{tests} tests");
        assert!(v.iter().all(|v| v.tries >= 1));
        // No open port: each group tested once.
        let (v, tests, syns) = simulate(&ports, &[], &|_| 0);
        assert!(open_of(&v).is_empty());
        assert_eq!(syns, 1000);
        assert!(tests <= 30, "{tests}");
    }

    #[test]
    fn all_open_and_single_ports() {
        let ports: Vec<u16> = (1..=40).collect();
        let (v, _, _) = simulate(&ports, &ports, &|_| 0);
        assert_eq!(open_of(&v), ports);
        let (v, tests, _) = simulate(&[80], &[80], &|_| 0);
        assert_eq!(open_of(&v), [80]);
        assert_eq!((tests, v[0].tries), (2, 2));
        let (v, tests, _) = simulate(&[81], &[], &|_| 0);
        assert_eq!((open_of(&v).len(), tests), (0, 1));
        assert!(simulate(&[], &[], &|_| 0).0.is_empty());
    }

    #[test]
    fn busy_zombie_costs_tests_not_ports() {
        let ports: Vec<u16> = (1..=500).collect();
        let open = [7, 100, 101, 333];
        // One extra packet of the zombie's own every third test, and a
        // burst of 100 now and then.
        let noise = |n: u32| {
            if n.is_multiple_of(17) {
                100
            } else {
                u32::from(n.is_multiple_of(3))
            }
        };
        let (v, _, _) = simulate(&ports, &open, &noise);
        assert_eq!(open_of(&v), open);
    }

    #[test]
    fn errors_stop_the_search() {
        let mut n = 0;
        let r = resolve_ports(
            &[1, 2, 3],
            &mut |_| {
                n += 1;
                if n == 2 { Err("gone") } else { Ok(1) }
            },
            &|| false,
        );
        assert_eq!(r, Err("gone"));
    }

    #[test]
    fn a_stop_returns_the_groups_settled_so_far() {
        let ports: Vec<u16> = (1..=100).collect();
        let tests = std::cell::Cell::new(0u32);
        let v = resolve_ports::<()>(
            &ports,
            &mut |group| {
                tests.set(tests.get() + 1);
                Ok(u32::from(group.contains(&3)))
            },
            &|| tests.get() >= 4,
        )
        .unwrap();
        // A prefix of the ports, each settled: 3 found open on the way.
        assert!(!v.is_empty() && v.len() < ports.len(), "{}", v.len());
        assert!(v.iter().zip(&ports).all(|(v, p)| v.port == *p));
        assert_eq!(
            v.iter()
                .filter(|v| v.open)
                .map(|v| v.port)
                .collect::<Vec<_>>(),
            [3]
        );
    }
}
