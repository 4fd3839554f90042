//! A hostile lab host: IPv4 TCP packets built byte by byte (RFC 791, RFC
//! 9293) and a responder that answers the SYNs reaching a lab namespace
//! with whatever packets a test makes of them (a SYN-ACK then a RST, the
//! same answer three times, answers from addresses never probed, ...).
//!
//! The responder reads with a packet socket, which sees a SYN before the
//! namespace's nftables rules drop it (so the kernel itself stays
//! silent), and sends through a raw IP socket. It stops when told or
//! after its deadline, whichever comes first.

use std::io::Read;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The Internet checksum of `chunks` laid end to end (RFC 1071).
pub fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in chunks {
        for pair in chunk.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// TCP control bits.
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// One IPv4 TCP segment without options or payload.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
}

impl Segment {
    /// The packet, checksums filled in.
    pub fn bytes(&self) -> Vec<u8> {
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&self.sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&self.dport.to_be_bytes());
        tcp[4..8].copy_from_slice(&self.seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&self.ack.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = self.flags;
        tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&self.src.octets());
        pseudo.extend_from_slice(&self.dst.octets());
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        let c = checksum(&[&pseudo, &tcp]);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        let mut ip = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
        ip.extend_from_slice(&self.src.octets());
        ip.extend_from_slice(&self.dst.octets());
        let c = checksum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip.extend_from_slice(&tcp);
        ip
    }

    /// Reads an IPv4 TCP segment (options skipped).
    pub fn parse(packet: &[u8]) -> Option<Segment> {
        if packet.len() < 20 || packet[0] >> 4 != 4 || packet[9] != 6 {
            return None;
        }
        let ihl = usize::from(packet[0] & 0x0f) * 4;
        let tcp = packet.get(ihl..ihl + 20)?;
        let word = |i: usize| u32::from_be_bytes([tcp[i], tcp[i + 1], tcp[i + 2], tcp[i + 3]]);
        Some(Segment {
            src: Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]),
            dst: Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]),
            sport: u16::from_be_bytes([tcp[0], tcp[1]]),
            dport: u16::from_be_bytes([tcp[2], tcp[3]]),
            seq: word(4),
            ack: word(8),
            flags: tcp[13],
        })
    }

    /// An answer to this segment from its destination, with `flags`,
    /// sequence number `seq`, acknowledging its sequence number + 1.
    pub fn answer(&self, flags: u8, seq: u32) -> Segment {
        Segment {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            seq,
            ack: self.seq.wrapping_add(1),
            flags,
        }
    }
}

/// An ICMP destination unreachable (type 3) of `code` from `src` to `dst`
/// quoting `quoted`'s IP header and first 8 TCP bytes (RFC 792).
pub fn icmp_unreachable(src: Ipv4Addr, dst: Ipv4Addr, code: u8, quoted: &Segment) -> Vec<u8> {
    let inner = quoted.bytes();
    let mut icmp = vec![3, code, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&inner[..28]);
    let c = checksum(&[&icmp]);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let len = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 2, 0, 0, 64, 1, 0, 0];
    ip[2..4].copy_from_slice(&len.to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

/// Sends `packets` (IPv4, from their header on) from namespace `ns`, in
/// order, through a raw socket; how many went.
pub fn send_from(ns: &str, packets: Vec<Vec<u8>>) -> usize {
    portolan_lab::in_namespace(ns, move || {
        let send = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
        )
        .expect("raw socket");
        let mut sent = 0;
        for (i, p) in packets.iter().enumerate() {
            let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
            let to: std::net::SocketAddr = (dst, 0).into();
            sent += usize::from(send.send_to(p, &to.into()).is_ok());
            // A storm, not a flood the test machine chokes on.
            if i % 64 == 63 {
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        sent
    })
    .expect("enter the namespace")
}

/// A responder running in a namespace; [`Responder::stop`] ends it and
/// returns how many SYNs it answered.
pub struct Responder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Responder {
    /// Answers, in namespace `ns`, every SYN (no other bit) that `wanted`
    /// accepts with the packets `answer` makes of it, for at most
    /// `limit`. Packets are sent in the order given, back to back.
    pub fn start(
        ns: &str,
        limit: Duration,
        wanted: impl Fn(&Segment) -> bool + Send + 'static,
        mut answer: impl FnMut(&Segment) -> Vec<Segment> + Send + 'static,
    ) -> Responder {
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, ready) = (Arc::clone(&stop), Arc::clone(&ready));
            let ns = ns.to_string();
            std::thread::spawn(move || {
                portolan_lab::in_namespace(&ns, move || {
                    let protocol = i32::from((libc::ETH_P_IP as u16).to_be());
                    let sniff = socket2::Socket::new(
                        socket2::Domain::PACKET,
                        socket2::Type::DGRAM,
                        Some(socket2::Protocol::from(protocol)),
                    )
                    .expect("packet socket");
                    sniff
                        .set_read_timeout(Some(Duration::from_millis(20)))
                        .unwrap();
                    let send = socket2::Socket::new(
                        socket2::Domain::IPV4,
                        socket2::Type::RAW,
                        Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
                    )
                    .expect("raw socket");
                    ready.store(true, Ordering::Release);
                    let deadline = Instant::now() + limit;
                    let mut answered = 0u64;
                    let mut buf = [0u8; 2048];
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let Ok(n) = (&sniff).read(&mut buf) else {
                            continue;
                        };
                        let Some(seg) = Segment::parse(&buf[..n]) else {
                            continue;
                        };
                        if seg.flags != SYN || !wanted(&seg) {
                            continue;
                        }
                        answered += 1;
                        for out in answer(&seg) {
                            let to: std::net::SocketAddr = (out.dst, 0).into();
                            let _ = send.send_to(&out.bytes(), &to.into());
                        }
                    }
                    answered
                })
                .expect("enter the namespace")
            })
        };
        let start = Instant::now();
        while !ready.load(Ordering::Acquire) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Responder {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops it; how many SYNs it answered.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().unwrap_or(0))
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
