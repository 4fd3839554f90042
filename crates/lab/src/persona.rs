//! A user-space responder that answers as a chosen TCP/IP stack (a
//! "persona"), for OS detection's tests with a known truth beyond what
//! sysctls reach: option order, ISN generator, IP ID policy, the answers
//! to nmap's odd-flag probes, ICMP echo codes and DF, how much of a UDP
//! datagram a port unreachable quotes.
//!
//! As the zombie responder ([`crate::zombie`]), an nftables rule silences
//! the kernel for the address (incoming TCP, UDP and ICMP are dropped in
//! the input hook) and a packet socket, which sees packets before
//! netfilter, hands each to [`Responder::answer`]; answers leave on a raw
//! IPv4 socket with the responder's own headers. The personas are
//! Portolan's own designs from the stacks' documented habits (initial
//! TTL, option layout, IP ID and ISN policy), not replays of any
//! database's fingerprints.
//!
//! Contract: IPv4 only; no panics on any received bytes; the sockets live
//! in the namespace's service thread and close when the guard drops.
//! Read first: RFC 9293 §3.10.7 (segment arrives), RFC 792, RFC 7323.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use portolan_wire::checksum;
use portolan_wire::{IcmpPacket, Ipv4Packet, TcpPacket, ip_protocol};
use socket2::{Domain, Protocol, Socket, Type};

use crate::LabError;
use crate::namespace::Namespace;
use crate::service::{ServiceControl, Sockets};

/// One element of a SYN-ACK's option layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    /// Maximum segment size.
    Mss,
    /// A no-operation byte.
    Nop,
    /// Window scale (when the SYN offered it).
    WindowScale,
    /// SACK permitted (when offered).
    SackPermitted,
    /// Timestamps (when offered and the persona has a clock).
    Timestamps,
}

/// How a persona numbers its IP packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdPolicy {
    /// One global counter, +1 per packet.
    Incremental,
    /// Always zero.
    Zero,
    /// Random per packet.
    Random,
}

/// How a persona picks its initial sequence numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsnPolicy {
    /// Random (RFC 6528's effect).
    Random,
    /// +`step` per connection (old BSD stacks: 64,000).
    Stepped(u32),
}

/// A stack to answer as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persona {
    /// Its name, as its entry in Portolan's database says it.
    pub name: &'static str,
    /// The family it imitates (the truth OS detection should find).
    pub family: &'static str,
    /// Initial TTL.
    pub ttl: u8,
    /// DF on its TCP answers.
    pub df: bool,
    /// The SYN-ACK's window.
    pub window: u16,
    /// MSS it announces.
    pub mss: u16,
    /// Window scale it announces.
    pub wscale: u8,
    /// The SYN-ACK's option layout.
    pub layout: &'static [Opt],
    /// Timestamp clock in Hz; `None` for a stack without timestamps.
    pub ts_hz: Option<u32>,
    /// IP ID policy.
    pub ids: IdPolicy,
    /// ISN policy.
    pub isn: IsnPolicy,
    /// Whether a segment without flags to an open port gets a RST-ACK.
    pub answers_null: bool,
    /// Whether SYN+FIN+URG+PSH to an open port gets a SYN-ACK.
    pub answers_syn_fin: bool,
    /// Whether an ECN SYN (ECE+CWR) gets ECE in its SYN-ACK.
    pub ecn: bool,
    /// Whether echo replies copy the request's code (else 0).
    pub echo_code: bool,
    /// Whether echo replies have DF set (else clear).
    pub echo_df: bool,
    /// Bytes of the offending datagram a port unreachable quotes after
    /// its IP header (`None`: all of it).
    pub quote: Option<usize>,
}

/// The lab's personas.
pub const PERSONAS: [Persona; 3] = [
    Persona {
        name: "windows",
        family: "Windows",
        ttl: 128,
        df: true,
        window: 0xFFFF,
        mss: 1460,
        wscale: 8,
        layout: &[
            Opt::Mss,
            Opt::Nop,
            Opt::WindowScale,
            Opt::Nop,
            Opt::Nop,
            Opt::SackPermitted,
        ],
        ts_hz: None,
        ids: IdPolicy::Incremental,
        isn: IsnPolicy::Random,
        answers_null: true,
        answers_syn_fin: false,
        ecn: false,
        echo_code: false,
        echo_df: false,
        quote: None,
    },
    Persona {
        name: "bsd",
        family: "FreeBSD",
        ttl: 64,
        df: true,
        window: 0xFFFF,
        mss: 1460,
        wscale: 6,
        layout: &[
            Opt::Mss,
            Opt::Nop,
            Opt::WindowScale,
            Opt::SackPermitted,
            Opt::Timestamps,
        ],
        ts_hz: Some(1000),
        ids: IdPolicy::Random,
        isn: IsnPolicy::Random,
        answers_null: false,
        answers_syn_fin: false,
        ecn: true,
        echo_code: true,
        echo_df: false,
        quote: None,
    },
    Persona {
        name: "embedded",
        family: "embedded",
        ttl: 255,
        df: false,
        window: 0x1000,
        mss: 536,
        wscale: 0,
        layout: &[Opt::Mss],
        ts_hz: None,
        ids: IdPolicy::Incremental,
        isn: IsnPolicy::Stepped(64_000),
        answers_null: true,
        answers_syn_fin: true,
        ecn: false,
        echo_code: false,
        echo_df: false,
        quote: Some(8),
    },
];

/// A running persona (see the module documentation). Dropping it stops
/// the responder.
#[derive(Debug)]
#[must_use = "the responder stops when this guard is dropped"]
pub struct PersonaResponder {
    control: Arc<ServiceControl>,
    answered: Arc<AtomicU64>,
}

impl PersonaResponder {
    /// How many answers it has sent so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

impl Drop for PersonaResponder {
    fn drop(&mut self) {
        self.control.stop();
    }
}

/// The responder: its sockets, persona and counters.
pub(crate) struct Responder {
    packets: UdpSocket,
    raw: UdpSocket,
    core: Core,
}

/// What answers, without sockets (tested on bytes).
pub(crate) struct Core {
    addr: Ipv4Addr,
    persona: Persona,
    open: Vec<u16>,
    start: Instant,
    state: RefCell<State>,
}

struct State {
    next_id: u16,
    next_isn: u32,
    rng: u64,
    ts_offset: u32,
}

impl State {
    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The options a SYN offered: window scale, SACK, and its TSval.
fn offered(options: &[u8]) -> (bool, bool, Option<u32>) {
    let (mut ws, mut sack, mut ts) = (false, false, None);
    let mut i = 0;
    while let Some(&kind) = options.get(i) {
        match kind {
            0 => break,
            1 => i += 1,
            _ => {
                let Some(&len) = options.get(i + 1) else {
                    break;
                };
                if len < 2 {
                    break;
                }
                match kind {
                    3 => ws = true,
                    4 => sack = true,
                    8 => {
                        ts = options
                            .get(i + 2..i + 6)
                            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    }
                    _ => {}
                }
                i += usize::from(len);
            }
        }
    }
    (ws, sack, ts)
}

impl Core {
    pub(crate) fn new(addr: Ipv4Addr, persona: Persona, open: Vec<u16>, seed: u64) -> Core {
        Core {
            addr,
            persona,
            open,
            start: Instant::now(),
            state: RefCell::new(State {
                next_id: 1_000,
                next_isn: (seed >> 16) as u32,
                rng: seed | 1,
                ts_offset: (seed >> 32) as u32 & 0x00FF_FFFF,
            }),
        }
    }

    fn next_id(&self) -> u16 {
        let mut s = self.state.borrow_mut();
        match self.persona.ids {
            IdPolicy::Incremental => {
                let id = s.next_id;
                s.next_id = id.wrapping_add(1);
                id
            }
            IdPolicy::Zero => 0,
            // Never 0: the kernel writes an ID of its own into a raw
            // packet whose ID is 0.
            IdPolicy::Random => ((s.random() >> 48) as u16).max(1),
        }
    }

    fn next_isn(&self) -> u32 {
        let mut s = self.state.borrow_mut();
        match self.persona.isn {
            IsnPolicy::Random => (s.random() >> 32) as u32,
            IsnPolicy::Stepped(step) => {
                let isn = s.next_isn;
                s.next_isn = isn.wrapping_add(step);
                isn
            }
        }
    }

    /// An IPv4 packet from us to `peer`.
    fn ip(&self, peer: Ipv4Addr, protocol: u8, df: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 20];
        out[0] = 0x45;
        out[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        out[4..6].copy_from_slice(&self.next_id().to_be_bytes());
        out[6] = if df { 0x40 } else { 0 };
        out[8] = self.persona.ttl;
        out[9] = protocol;
        out[12..16].copy_from_slice(&self.addr.octets());
        out[16..20].copy_from_slice(&peer.octets());
        let sum = checksum::checksum(&out);
        out[10..12].copy_from_slice(&sum.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &self,
        peer: Ipv4Addr,
        ports: (u16, u16),
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        options: &[u8],
    ) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&ports.0.to_be_bytes());
        t[2..4].copy_from_slice(&ports.1.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[12] = (((20 + options.len()) / 4) as u8) << 4;
        t[13] = flags;
        t[14..16].copy_from_slice(&window.to_be_bytes());
        t.extend_from_slice(options);
        let pseudo = checksum::pseudo_header_v4(self.addr, peer, ip_protocol::TCP, t.len() as u16);
        let sum = !checksum::add(pseudo, checksum::sum(&t));
        t[16..18].copy_from_slice(&sum.to_be_bytes());
        self.ip(peer, ip_protocol::TCP, self.persona.df, &t)
    }

    /// The SYN-ACK's options for a SYN that offered `offer`.
    fn syn_ack_options(&self, offer: (bool, bool, Option<u32>)) -> Vec<u8> {
        let p = &self.persona;
        let mut o = Vec::new();
        for opt in p.layout {
            match opt {
                Opt::Mss => o.extend_from_slice(&[2, 4, (p.mss >> 8) as u8, p.mss as u8]),
                Opt::Nop => o.push(1),
                Opt::WindowScale if offer.0 => o.extend_from_slice(&[3, 3, p.wscale]),
                Opt::SackPermitted if offer.1 => o.extend_from_slice(&[4, 2]),
                Opt::Timestamps => {
                    if let (Some(hz), Some(echo)) = (p.ts_hz, offer.2) {
                        let ticks = (self.start.elapsed().as_secs_f64() * f64::from(hz)) as u32;
                        let tsval = ticks.wrapping_add(self.state.borrow().ts_offset).max(1);
                        o.extend_from_slice(&[8, 10]);
                        o.extend_from_slice(&tsval.to_be_bytes());
                        o.extend_from_slice(&echo.to_be_bytes());
                    }
                }
                _ => {}
            }
        }
        while o.len() % 4 != 0 {
            o.push(0);
        }
        o
    }

    /// The answer to one received IPv4 packet, and where it goes.
    pub(crate) fn answer(&self, packet: &[u8]) -> Option<(Ipv4Addr, Vec<u8>)> {
        let ip = Ipv4Packet::new_checked(packet).ok()?;
        if ip.dst_addr() != self.addr {
            return None;
        }
        let peer = ip.src_addr();
        match ip.protocol() {
            ip_protocol::TCP => self.answer_tcp(peer, ip.payload()).map(|p| (peer, p)),
            ip_protocol::ICMP => {
                let icmp = IcmpPacket::new_checked(ip.payload()).ok()?;
                if icmp.msg_type() != 8 {
                    return None;
                }
                let mut reply = ip.payload().to_vec();
                reply[0] = 0;
                if !self.persona.echo_code {
                    reply[1] = 0;
                }
                reply[2] = 0;
                reply[3] = 0;
                let sum = checksum::checksum(&reply);
                reply[2..4].copy_from_slice(&sum.to_be_bytes());
                Some((
                    peer,
                    self.ip(peer, ip_protocol::ICMP, self.persona.echo_df, &reply),
                ))
            }
            ip_protocol::UDP => {
                // Every UDP port is closed: a port unreachable quoting the
                // datagram (all of it, or its header and 8 bytes).
                let quoted = match self.persona.quote {
                    Some(n) => packet.get(..ip.header_len() + n).unwrap_or(packet),
                    None => packet.get(..usize::from(ip.total_len())).unwrap_or(packet),
                };
                let mut icmp = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
                icmp.extend_from_slice(quoted);
                let sum = checksum::checksum(&icmp);
                icmp[2..4].copy_from_slice(&sum.to_be_bytes());
                Some((peer, self.ip(peer, ip_protocol::ICMP, false, &icmp)))
            }
            _ => None,
        }
    }

    fn answer_tcp(&self, peer: Ipv4Addr, segment: &[u8]) -> Option<Vec<u8>> {
        const FIN: u8 = 0x01;
        const SYN: u8 = 0x02;
        const RST: u8 = 0x04;
        const ACK: u8 = 0x10;
        const ECE: u8 = 0x40;
        const CWR: u8 = 0x80;
        let tcp = TcpPacket::new_checked(segment).ok()?;
        let flags = tcp.flags().bits();
        let ports = (tcp.dst_port(), tcp.src_port());
        let (seq, ack) = (tcp.seq_number(), tcp.ack_number());
        let p = &self.persona;
        if flags & RST != 0 {
            return None;
        }
        let open = self.open.contains(&tcp.dst_port());
        // What a closed port (or a stray ACK) gets: RFC 9293's RST.
        let reset = |with_ack: bool| {
            if flags & ACK != 0 && !with_ack {
                self.tcp(peer, ports, ack, 0, RST, 0, &[])
            } else {
                let len = u32::from(flags & (SYN | FIN) != 0);
                self.tcp(peer, ports, 0, seq.wrapping_add(len), RST | ACK, 0, &[])
            }
        };
        if !open {
            return Some(reset(false));
        }
        if flags & ACK != 0 && flags & SYN == 0 {
            return Some(reset(false));
        }
        if flags & SYN != 0 {
            if flags & FIN != 0 && !p.answers_syn_fin {
                return None;
            }
            let mut out = ACK | SYN;
            if p.ecn && flags & (ECE | CWR) == ECE | CWR {
                out |= ECE;
            }
            let options = self.syn_ack_options(offered(tcp.options()));
            let isn = self.next_isn();
            return Some(self.tcp(
                peer,
                ports,
                isn,
                seq.wrapping_add(1),
                out,
                p.window,
                &options,
            ));
        }
        if flags == 0 && p.answers_null {
            return Some(self.tcp(peer, ports, 0, seq, RST | ACK, 0, &[]));
        }
        None
    }
}

impl Responder {
    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.packets.as_raw_fd()
    }

    /// Answers every waiting packet, until the socket would block.
    pub(crate) fn drain(&self, buffer: &mut [u8], answered: &AtomicU64) -> io::Result<()> {
        loop {
            match self.packets.recv(buffer) {
                Ok(len) => {
                    let received = buffer.get(..len).unwrap_or(&[]);
                    let Some((dst, reply)) = self.core.answer(received) else {
                        continue;
                    };
                    if self
                        .raw
                        .send_to(&reply, SocketAddr::new(IpAddr::V4(dst), 0))
                        .is_ok()
                    {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Namespace {
    /// Makes `addr` (an address of this namespace) answer as `persona`,
    /// with TCP `open` ports open and every other port closed: the
    /// kernel goes silent for it and a user-space responder answers
    /// instead (see the module documentation).
    ///
    /// # Errors
    /// [`LabError::Command`] if the nftables rule fails; [`LabError::Io`]
    /// if the sockets cannot be created (not root).
    pub fn respond_as(
        &self,
        addr: Ipv4Addr,
        persona: Persona,
        open: &[u16],
    ) -> Result<PersonaResponder, LabError> {
        self.nft(&format!(
            "add table inet portolan_persona\n\
             add chain inet portolan_persona input {{ type filter hook input priority -10; policy accept; }}\n\
             add rule inet portolan_persona input ip daddr {addr} meta l4proto {{ tcp, udp, icmp }} drop\n"
        ))?;
        let (packets, raw) = self
            .run(|| -> io::Result<(UdpSocket, UdpSocket)> {
                let protocol = i32::from((libc::ETH_P_IP as u16).to_be());
                let packets =
                    Socket::new(Domain::PACKET, Type::DGRAM, Some(Protocol::from(protocol)))?;
                packets.set_nonblocking(true)?;
                let raw = Socket::new(
                    Domain::IPV4,
                    Type::RAW,
                    Some(Protocol::from(libc::IPPROTO_RAW)),
                )?;
                Ok((UdpSocket::from(packets), UdpSocket::from(raw)))
            })?
            .map_err(|e| {
                LabError::io(
                    format!("opening the persona's sockets in `{}`", self.name()),
                    e,
                )
            })?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let responder = Responder {
            packets,
            raw,
            core: Core::new(addr, persona, open.to_vec(), seed),
        };
        let (control, answered) = self.start(Sockets::Persona(Box::new(responder)))?;
        Ok(PersonaResponder { control, answered })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(flags: u8, dport: u16, options: &[u8]) -> Vec<u8> {
        let core = Core::new(Ipv4Addr::new(198, 18, 0, 1), PERSONAS[0], vec![], 1);
        // A segment from 198.18.0.1 to 198.18.0.2, built by the same code.
        let mut p = core.tcp(
            Ipv4Addr::new(198, 18, 0, 2),
            (40_000, dport),
            7,
            0,
            flags,
            1024,
            options,
        );
        // The IP ID policy is the persona's: irrelevant here.
        p[4] = 0;
        p
    }

    #[test]
    fn each_persona_answers_as_designed() {
        let addr = Ipv4Addr::new(198, 18, 0, 2);
        let offer = [
            3, 3, 10, 1, 2, 4, 5, 0xB4, 8, 10, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 4, 2,
        ];
        for persona in PERSONAS {
            let core = Core::new(addr, persona, vec![22], 99);
            let (to, reply) = core.answer(&probe(0x02, 22, &offer)).unwrap();
            assert_eq!(to, Ipv4Addr::new(198, 18, 0, 1));
            let ip = Ipv4Packet::new_checked(&reply).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(ip.ttl(), persona.ttl);
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(tcp.verify_checksum(IpAddr::V4(addr), "198.18.0.1".parse().unwrap()));
            assert_eq!(
                (tcp.flags().bits(), tcp.ack_number(), tcp.window_len()),
                (0x12, 8, persona.window)
            );
            assert_eq!(tcp.mss(), Some(persona.mss), "{}", persona.name);
            // A closed port: RST-ACK.
            let (_, reply) = core.answer(&probe(0x02, 23, &offer)).unwrap();
            let ip = Ipv4Packet::new_checked(&reply).unwrap();
            assert_eq!(
                TcpPacket::new_checked(ip.payload()).unwrap().flags().bits(),
                0x14
            );
            // Null to the open port, as designed.
            assert_eq!(
                core.answer(&probe(0, 22, &[])).is_some(),
                persona.answers_null
            );
            // Garbage never panics.
            let good = probe(0x02, 22, &offer);
            for len in 0..good.len() {
                let _ = core.answer(&good[..len]);
            }
        }
    }
}
