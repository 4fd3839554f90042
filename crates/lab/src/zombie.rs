//! An idle-scan zombie in a lab namespace ([`Namespace::respond_zombie`]):
//! a host whose IPv4 Identification is one global counter, incremented per
//! packet it sends, as old stacks had it.
//!
//! Linux gives each destination its own hashed, randomly stepping counter
//! (RFC 6864 and CVE-2019-10638 made that the norm), so no kernel setting
//! turns a namespace into a zombie. The zombie is built in user space
//! instead: an nftables rule silences the kernel's TCP for the zombie's
//! address (incoming TCP is dropped in the input hook), and a responder
//! reads TCP segments from a packet socket (which sees them before
//! netfilter) and answers as a closed port would (RFC 9293 §3.10.7.1): a
//! segment with ACK (a SYN-ACK, an ACK) gets a RST whose sequence number is
//! the segment's acknowledgment number; a lone SYN gets a RST-ACK; a RST
//! gets nothing. Its answers leave on a raw IPv4 socket with the
//! responder's own IP header, whose ID comes from [`ZombieIpId`].
//!
//! Contract: IPv4 only; no panics on any received bytes; the sockets live
//! in the namespace's service thread and close when the guard drops (the
//! nftables table stays until the namespace goes). Read first: nmap's
//! "TCP Idle Scan" chapter; packet(7); raw(7) on `IPPROTO_RAW`.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use portolan_wire::checksum;
use portolan_wire::{Ipv4Packet, TcpFlags, TcpPacket, ip_protocol};
use socket2::{Domain, Protocol, Socket, Type};

use crate::LabError;
use crate::namespace::Namespace;
use crate::service::{ServiceControl, Sockets};

/// How a zombie numbers its packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZombieIpId {
    /// One counter, +1 per packet sent: a usable zombie.
    Incremental,
    /// A random ID per packet: an unusable one.
    Random,
    /// Incremental, but the host also talks to others: every `BUSY_EVERY`
    /// its counter jumps by a few packets.
    Busy,
}

/// How often a busy zombie sends traffic of its own.
pub const BUSY_EVERY: Duration = Duration::from_millis(400);

/// How many packets each burst of a busy zombie's own traffic counts.
pub const BUSY_BURST: u16 = 4;

/// A running zombie (see the module documentation). Dropping it stops the
/// responder.
#[derive(Debug)]
#[must_use = "the zombie stops when this guard is dropped"]
pub struct ZombieResponder {
    control: Arc<ServiceControl>,
    answered: Arc<AtomicU64>,
    bursts: Arc<AtomicU64>,
}

impl ZombieResponder {
    /// How many RSTs it has sent so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// How many bursts of its own traffic a busy zombie has had so far.
    pub fn bursts(&self) -> u64 {
        self.bursts.load(Ordering::Relaxed)
    }

    /// Stops the responder now (same as dropping the guard).
    pub fn stop(self) {}
}

impl Drop for ZombieResponder {
    fn drop(&mut self) {
        self.control.stop();
    }
}

/// The responder's sockets and counter, owned by the service thread.
pub(crate) struct Zombie {
    /// Receives IPv4 packets (`ETH_P_IP`: incoming only).
    packets: UdpSocket,
    /// Sends our answers (`IPPROTO_RAW`).
    raw: UdpSocket,
    addr: Ipv4Addr,
    mode: ZombieIpId,
    state: RefCell<State>,
    bursts: Arc<AtomicU64>,
}

struct State {
    next_id: u16,
    rng: u64,
    next_burst: Instant,
}

impl Zombie {
    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.packets.as_raw_fd()
    }

    /// How long the service thread may sleep before [`Zombie::tick`].
    pub(crate) fn wait(&self) -> Option<Duration> {
        (self.mode == ZombieIpId::Busy).then(|| {
            self.state
                .borrow()
                .next_burst
                .saturating_duration_since(Instant::now())
        })
    }

    /// A busy zombie's own traffic: its counter jumps when a burst is due.
    pub(crate) fn tick(&self) {
        if self.mode != ZombieIpId::Busy {
            return;
        }
        let mut state = self.state.borrow_mut();
        let now = Instant::now();
        if now >= state.next_burst {
            state.next_id = state.next_id.wrapping_add(BUSY_BURST);
            state.next_burst = now + BUSY_EVERY;
            self.bursts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Answers every waiting packet, until the socket would block.
    pub(crate) fn drain(&self, buffer: &mut [u8], answered: &AtomicU64) -> io::Result<()> {
        loop {
            match self.packets.recv(buffer) {
                Ok(len) => {
                    let received = buffer.get(..len).unwrap_or(&[]);
                    let Some((dst, reply)) = self.answer(received) else {
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

    /// The next IP ID, by the zombie's mode.
    fn next_id(&self) -> u16 {
        let mut state = self.state.borrow_mut();
        match self.mode {
            ZombieIpId::Incremental | ZombieIpId::Busy => {
                let id = state.next_id;
                state.next_id = id.wrapping_add(1);
                id
            }
            ZombieIpId::Random => {
                // xorshift64*.
                let mut x = state.rng;
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                state.rng = x;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 48) as u16
            }
        }
    }

    /// The answer to one received IPv4 packet, and where it goes.
    fn answer(&self, packet: &[u8]) -> Option<(Ipv4Addr, Vec<u8>)> {
        let ip = Ipv4Packet::new_checked(packet).ok()?;
        if ip.dst_addr() != self.addr || ip.protocol() != ip_protocol::TCP {
            return None;
        }
        let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
        let flags = tcp.flags();
        if flags.contains(TcpFlags::RST) {
            return None;
        }
        let (seq, ack, out_flags) = if flags.contains(TcpFlags::ACK) {
            (tcp.ack_number(), 0, TcpFlags::RST)
        } else if flags.contains(TcpFlags::SYN) {
            (
                0,
                tcp.seq_number().wrapping_add(1),
                TcpFlags::RST | TcpFlags::ACK,
            )
        } else {
            return None;
        };
        let peer = ip.src_addr();
        let mut out = vec![0u8; 40];
        out[0] = 0x45;
        out[2..4].copy_from_slice(&40u16.to_be_bytes());
        out[4..6].copy_from_slice(&self.next_id().to_be_bytes());
        out[8] = 64;
        out[9] = ip_protocol::TCP;
        out[12..16].copy_from_slice(&self.addr.octets());
        out[16..20].copy_from_slice(&peer.octets());
        let ip_sum = checksum::checksum(&out[..20]);
        out[10..12].copy_from_slice(&ip_sum.to_be_bytes());
        out[20..22].copy_from_slice(&tcp.dst_port().to_be_bytes());
        out[22..24].copy_from_slice(&tcp.src_port().to_be_bytes());
        out[24..28].copy_from_slice(&seq.to_be_bytes());
        out[28..32].copy_from_slice(&ack.to_be_bytes());
        out[32] = 5 << 4;
        out[33] = out_flags.bits();
        let pseudo = checksum::pseudo_header_v4(self.addr, peer, ip_protocol::TCP, 20);
        let tcp_sum = !checksum::add(pseudo, checksum::sum(&out[20..]));
        out[36..38].copy_from_slice(&tcp_sum.to_be_bytes());
        Some((peer, out))
    }
}

impl Namespace {
    /// Makes `addr` (an address of this namespace) an idle-scan zombie
    /// numbering its packets by `mode`: the kernel's TCP goes silent for
    /// it and a user-space responder answers instead (see the module
    /// documentation).
    ///
    /// # Errors
    /// [`LabError::Command`] if the nftables rule fails; [`LabError::Io`]
    /// if the sockets cannot be created (not root).
    pub fn respond_zombie(
        &self,
        addr: Ipv4Addr,
        mode: ZombieIpId,
    ) -> Result<ZombieResponder, LabError> {
        self.nft(&format!(
            "add table inet portolan_zombie\n\
             add chain inet portolan_zombie input {{ type filter hook input priority -10; policy accept; }}\n\
             add rule inet portolan_zombie input ip daddr {addr} meta l4proto tcp drop\n"
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
                // std's recv and send_to are recv(2) and sendto(2), which
                // packet and raw sockets serve as well.
                Ok((UdpSocket::from(packets), UdpSocket::from(raw)))
            })?
            .map_err(|e| {
                LabError::io(
                    format!("opening the zombie's sockets in `{}`", self.name()),
                    e,
                )
            })?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        let zombie = Zombie {
            packets,
            raw,
            addr,
            mode,
            state: RefCell::new(State {
                // Not near the wrap: the kernel writes an ID of its own
                // into a raw packet whose ID is 0.
                next_id: 1_000,
                rng: seed,
                next_burst: Instant::now() + BUSY_EVERY,
            }),
            bursts: Arc::new(AtomicU64::new(0)),
        };
        let bursts = Arc::clone(&zombie.bursts);
        let (control, answered) = self.start(Sockets::Zombie(Box::new(zombie)))?;
        Ok(ZombieResponder {
            control,
            answered,
            bursts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zombie(mode: ZombieIpId) -> Zombie {
        let unbound = || UdpSocket::bind("127.0.0.1:0").unwrap();
        Zombie {
            packets: unbound(),
            raw: unbound(),
            addr: Ipv4Addr::new(198, 18, 0, 3),
            mode,
            state: RefCell::new(State {
                next_id: 65_535,
                rng: 7,
                next_burst: Instant::now(),
            }),
            bursts: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A SYN-ACK (or other flags) from 198.18.0.1:40000 to the zombie's
    /// port 80, acknowledging `ack`.
    fn segment(flags: TcpFlags, ack: u32) -> Vec<u8> {
        let src = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
        let t = portolan_wire::SynTemplate::with_options(
            src,
            40000,
            portolan_wire::SynOptions {
                flags,
                mss: None,
                ..Default::default()
            },
        );
        let mut buf = [0u8; 64];
        let n = t
            .stamp(
                &mut buf,
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, 3)),
                40000,
                80,
                ack,
                1,
            )
            .unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn answers_as_a_closed_port_with_a_global_counter() {
        let z = zombie(ZombieIpId::Incremental);
        let (to, rst) = z
            .answer(&segment(TcpFlags::SYN | TcpFlags::ACK, 0xabcd))
            .unwrap();
        assert_eq!(to, Ipv4Addr::new(198, 18, 0, 1));
        let reply = portolan_wire::parse_reply(&rst).unwrap();
        let portolan_wire::Reply::Tcp {
            src_port,
            dst_port,
            seq,
            flags,
            ..
        } = reply
        else {
            panic!("{reply:?}")
        };
        assert_eq!((src_port, dst_port, seq), (80, 40000, 0xabcd));
        assert!(flags.is_rst());
        let ip = Ipv4Packet::new_checked(&rst).unwrap();
        assert!(ip.verify_checksum());
        assert!(
            TcpPacket::new_checked(ip.payload())
                .unwrap()
                .verify_checksum(IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()))
        );
        assert_eq!(ip.ident(), 65_535);
        // The next answer (to anyone) takes the next ID, across the wrap.
        let (_, rst) = z.answer(&segment(TcpFlags::ACK, 1)).unwrap();
        assert_eq!(Ipv4Packet::new_checked(&rst).unwrap().ident(), 0);
        // A SYN gets a RST-ACK; a RST nothing.
        let (_, rst) = z.answer(&segment(TcpFlags::SYN, 9)).unwrap();
        assert!(matches!(
            portolan_wire::parse_reply(&rst).unwrap(),
            portolan_wire::Reply::Tcp { ack: 10, .. }
        ));
        assert!(z.answer(&segment(TcpFlags::RST, 9)).is_none());
        // Garbage never panics.
        let good = segment(TcpFlags::ACK, 1);
        for len in 0..good.len() {
            let _ = z.answer(&good[..len]);
        }
    }

    #[test]
    fn random_and_busy_counters() {
        let z = zombie(ZombieIpId::Random);
        let ids: Vec<u16> = (0..6).map(|_| z.next_id()).collect();
        assert!(
            ids.windows(2).any(|w| w[1].wrapping_sub(w[0]) > 64),
            "{ids:?}"
        );
        let z = zombie(ZombieIpId::Busy);
        let first = z.next_id();
        z.tick();
        assert_eq!(z.next_id(), first.wrapping_add(1 + BUSY_BURST));
        assert_eq!(z.bursts.load(Ordering::Relaxed), 1);
        assert!(z.wait().is_some());
        assert!(zombie(ZombieIpId::Incremental).wait().is_none());
    }
}
