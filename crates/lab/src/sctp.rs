//! SCTP targets in a lab namespace: kernel SCTP listeners
//! ([`Namespace::listen_sctp`]) where the kernel offers SCTP, and a
//! user-space SCTP endpoint on raw sockets ([`Namespace::respond_sctp`])
//! that answers INIT and COOKIE ECHO as a kernel would, for kernels that do
//! not.
//!
//! Whether the kernel offers SCTP is a property of the machine, not of the
//! test: [`kernel_sctp_support`] probes it once per process. The machines
//! this project runs on today do not: their kernel (6.18, without module
//! support: no `/proc/modules`, no `/lib/modules`, no `modprobe`) has no
//! SCTP in `/proc/net/protocols`, and `socket(AF_INET, SOCK_STREAM,
//! IPPROTO_SCTP)` fails with `EPROTONOSUPPORT` (errno 93), for `AF_INET6`
//! too. Raw sockets of protocol 132 work, so the responder does.
//!
//! The responder follows RFC 9260: an INIT to an open port gets an INIT
//! ACK carrying a State Cookie, to a closed port an ABORT (T bit clear)
//! whose verification tag is the INIT's Initiate Tag (section 8.4, item
//! 3; 5.1); a COOKIE ECHO to a closed port gets an ABORT with the T bit set
//! reflecting the packet's verification tag (8.4, item 8; 8.5.1), and to an
//! open port nothing, since no cookie we did not issue is valid (5.1.5).
//! Packets with a bad CRC32c are dropped, as a kernel would (6.8). With a
//! raw SCTP socket open, the kernel no longer answers SCTP with ICMP
//! protocol unreachable in that namespace.
//!
//! Contract: no panics on any received bytes; the raw sockets live in the
//! namespace's service thread and close when the guard drops. Read first:
//! RFC 9260 sections 3, 5.1 and 8.4; raw(7), ipv6(7) on raw sockets.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use portolan_wire::sctp::chunk;
use portolan_wire::{Ipv4Packet, SctpPacket, crc32c, ip_protocol};
use socket2::{Domain, Protocol, Socket, Type};

use crate::LabError;
use crate::namespace::Namespace;
use crate::service::{ServiceControl, Sockets, TcpService};

/// The SCTP protocol number as socket calls take it.
const IPPROTO_SCTP: i32 = ip_protocol::SCTP as i32;

/// Whether this kernel offers SCTP sockets; `Err` says why not, with the
/// error of `socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP)`. Probed once per
/// process (the kernel is the same in every namespace).
pub fn kernel_sctp_support() -> Result<(), String> {
    static SUPPORT: OnceLock<Result<(), String>> = OnceLock::new();
    SUPPORT
        .get_or_init(|| {
            Socket::new(
                Domain::IPV4,
                Type::STREAM,
                Some(Protocol::from(IPPROTO_SCTP)),
            )
            .map(drop)
            .map_err(|e| {
                format!(
                    "socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP) failed: {e}: the kernel \
                         was built without SCTP (CONFIG_IP_SCTP) or its sctp module is not \
                         loaded"
                )
            })
        })
        .clone()
}

/// Running kernel SCTP listeners (one-to-one style sockets) on some ports
/// of a namespace, IPv4 and IPv6: every association is accepted and closed
/// at once. Dropping it closes them.
#[derive(Debug)]
#[must_use = "the listeners stop when this guard is dropped"]
pub struct SctpService {
    listeners: TcpService,
}

impl SctpService {
    /// The bound addresses: `0.0.0.0:PORT` and `[::]:PORT` for every port.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.listeners.local_addrs()
    }

    /// How many associations have been accepted so far.
    pub fn accepted(&self) -> u64 {
        self.listeners.accepted()
    }

    /// Stops the listeners now (same as dropping the guard).
    pub fn stop(self) {}
}

/// A running user-space SCTP endpoint in a namespace (see the module
/// documentation). Dropping it closes its raw sockets.
#[derive(Debug)]
#[must_use = "the responder stops when this guard is dropped"]
pub struct SctpResponder {
    control: Arc<ServiceControl>,
    answered: Arc<AtomicU64>,
}

impl SctpResponder {
    /// How many packets it has answered so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Stops the responder now (same as dropping the guard).
    pub fn stop(self) {}
}

impl Drop for SctpResponder {
    fn drop(&mut self) {
        self.control.stop();
    }
}

impl Namespace {
    /// Starts kernel SCTP listeners on `ports` (on `0.0.0.0` and `[::]`,
    /// IPv6-only) that accept and immediately close every association.
    ///
    /// # Errors
    /// [`LabError::SctpUnavailable`] when the kernel offers no SCTP (see
    /// [`kernel_sctp_support`]); [`LabError::Bind`] for other socket errors.
    pub fn listen_sctp(
        &self,
        ports: impl IntoIterator<Item = u16>,
    ) -> Result<SctpService, LabError> {
        match self.listen_stream(ports, Protocol::from(IPPROTO_SCTP), drop) {
            Ok(listeners) => Ok(SctpService { listeners }),
            Err(LabError::Bind {
                namespace, source, ..
            }) if matches!(
                source.raw_os_error(),
                Some(libc::EPROTONOSUPPORT | libc::ESOCKTNOSUPPORT | libc::EAFNOSUPPORT)
            ) =>
            {
                Err(LabError::SctpUnavailable { namespace, source })
            }
            Err(e) => Err(e),
        }
    }

    /// Starts a user-space SCTP endpoint on raw sockets (IPv4 and IPv6)
    /// that answers as listening on `open_ports` and as closed on every
    /// other port. Works whether or not the kernel offers SCTP; where it
    /// does, the kernel answers too, so use [`Namespace::listen_sctp`]
    /// there.
    ///
    /// # Errors
    /// [`LabError::Io`] if the raw sockets cannot be created (not root).
    pub fn respond_sctp(
        &self,
        open_ports: impl IntoIterator<Item = u16>,
    ) -> Result<SctpResponder, LabError> {
        let open: Vec<u16> = open_ports.into_iter().collect();
        let sockets = self
            .run(|| -> io::Result<Vec<(UdpSocket, bool)>> {
                [(Domain::IPV4, false), (Domain::IPV6, true)]
                    .into_iter()
                    .map(|(domain, v6)| {
                        let socket =
                            Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_SCTP)))?;
                        socket.set_nonblocking(true)?;
                        // std's recv_from and send_to are recvfrom(2) and
                        // sendto(2), which raw sockets serve as well.
                        Ok((UdpSocket::from(socket), v6))
                    })
                    .collect()
            })?
            .map_err(|e| {
                LabError::io(format!("opening raw SCTP sockets in `{}`", self.name()), e)
            })?;
        let is_open = Box::new(move |port| open.contains(&port));
        let (control, answered) = self.start(Sockets::SctpRaw(sockets, is_open))?;
        Ok(SctpResponder { control, answered })
    }
}

/// Answers every packet waiting on a raw SCTP socket, until it would block.
pub(crate) fn drain_raw(
    socket: &UdpSocket,
    v6: bool,
    is_open: &dyn Fn(u16) -> bool,
    buffer: &mut [u8],
    answered: &AtomicU64,
) -> io::Result<()> {
    loop {
        match socket.recv_from(buffer) {
            Ok((len, peer)) => {
                let received = buffer.get(..len).unwrap_or(&[]);
                // IPv4 raw sockets deliver the IP header, IPv6 ones do not.
                let sctp = if v6 {
                    Some(received)
                } else {
                    Ipv4Packet::new_checked(received)
                        .ok()
                        .map(|ip| ip.payload())
                };
                if let Some(reply) = sctp.and_then(|p| answer(p, is_open)) {
                    answered.fetch_add(1, Ordering::Relaxed);
                    let _ = socket.send_to(&reply, SocketAddr::new(peer.ip(), 0));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The endpoint's answer to one received SCTP packet, if any (see the
/// module documentation for the rules).
pub(crate) fn answer(packet: &[u8], is_open: &dyn Fn(u16) -> bool) -> Option<Vec<u8>> {
    let sctp = SctpPacket::new_checked(packet).ok()?;
    if !sctp.verify_checksum() {
        return None;
    }
    let open = is_open(sctp.dst_port());
    let (vtag, chunk) = match sctp.chunk_type() {
        chunk::INIT => {
            let value = sctp.chunk_value();
            let tag = u32::from_be_bytes(value.get(..4)?.try_into().ok()?);
            // An INIT must carry tag 0 and a nonzero Initiate Tag.
            if sctp.verification_tag() != 0 || tag == 0 || value.len() < 16 {
                return None;
            }
            if open {
                (tag, init_ack(tag))
            } else {
                (tag, vec![chunk::ABORT, 0, 0, 4])
            }
        }
        chunk::COOKIE_ECHO if !open => (
            sctp.verification_tag(),
            vec![chunk::ABORT, chunk::FLAG_T, 0, 4],
        ),
        _ => return None,
    };
    let mut reply = Vec::with_capacity(12 + chunk.len());
    reply.extend_from_slice(&sctp.dst_port().to_be_bytes());
    reply.extend_from_slice(&sctp.src_port().to_be_bytes());
    reply.extend_from_slice(&vtag.to_be_bytes());
    reply.extend_from_slice(&[0; 4]);
    reply.extend_from_slice(&chunk);
    let crc = crc32c(&reply);
    reply[8..12].copy_from_slice(&crc.to_le_bytes());
    Some(reply)
}

/// An INIT ACK chunk answering an INIT whose Initiate Tag is `peer_tag`:
/// our own tag, window and streams, and an 8-byte State Cookie parameter.
fn init_ack(peer_tag: u32) -> Vec<u8> {
    const STATE_COOKIE: u16 = 7;
    let own_tag = peer_tag.rotate_left(16) ^ 0x5eed_cafe | 1;
    let mut chunk = vec![chunk::INIT_ACK, 0];
    chunk.extend_from_slice(&32u16.to_be_bytes());
    chunk.extend_from_slice(&own_tag.to_be_bytes());
    chunk.extend_from_slice(&106_496u32.to_be_bytes());
    chunk.extend_from_slice(&10u16.to_be_bytes());
    chunk.extend_from_slice(&10u16.to_be_bytes());
    chunk.extend_from_slice(&own_tag.to_be_bytes());
    chunk.extend_from_slice(&STATE_COOKIE.to_be_bytes());
    chunk.extend_from_slice(&12u16.to_be_bytes());
    chunk.extend_from_slice(&peer_tag.to_le_bytes());
    chunk.extend_from_slice(&own_tag.to_le_bytes());
    chunk
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_wire::{Reply, SctpChunk, SctpProbe, SctpTemplate, parse_reply};
    use std::net::{IpAddr, Ipv4Addr};

    /// Stamps a probe and returns its SCTP bytes.
    fn probe(kind: SctpProbe, port: u16, cookie: u32) -> Vec<u8> {
        let src = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
        let dst = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
        let t = SctpTemplate::new(src, 40000, kind);
        let mut buf = [0u8; SctpTemplate::MAX_LEN];
        let n = t.stamp(&mut buf, dst, 40000, port, cookie, 1).unwrap();
        buf[20..n].to_vec()
    }

    /// Parses an answer as the scanner would, behind an IPv4 header.
    fn as_reply(sctp: &[u8]) -> Reply {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 132, 0, 0];
        p.extend_from_slice(&[198, 18, 0, 2, 198, 18, 0, 1]);
        p.extend_from_slice(sctp);
        let len = p.len() as u16;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        parse_reply(&p).unwrap()
    }

    #[test]
    fn test_answers() {
        let open = |port| port == 80;
        let ack = answer(&probe(SctpProbe::Init, 80, 0xabcd), &open).unwrap();
        assert!(SctpPacket::new_checked(&ack).unwrap().verify_checksum());
        let Reply::Sctp {
            src_port,
            dst_port,
            vtag,
            chunk,
            ..
        } = as_reply(&ack)
        else {
            panic!()
        };
        assert_eq!((src_port, dst_port, vtag), (80, 40000, 0xabcd));
        assert!(matches!(chunk, SctpChunk::InitAck { initiate_tag } if initiate_tag != 0));

        let abort = answer(&probe(SctpProbe::Init, 81, 0xabcd), &open).unwrap();
        assert!(matches!(
            as_reply(&abort),
            Reply::Sctp {
                vtag: 0xabcd,
                chunk: SctpChunk::Abort { reflected: false },
                ..
            }
        ));
        let abort = answer(&probe(SctpProbe::CookieEcho, 81, 0xabcd), &open).unwrap();
        assert!(matches!(
            as_reply(&abort),
            Reply::Sctp {
                vtag: 0xabcd,
                chunk: SctpChunk::Abort { reflected: true },
                ..
            }
        ));
        // An open port ignores a cookie it never issued.
        assert_eq!(
            answer(&probe(SctpProbe::CookieEcho, 80, 0xabcd), &open),
            None
        );
        // No answer to a bad checksum, an Initiate Tag of 0, or an answer.
        let mut bad = probe(SctpProbe::Init, 81, 0xabcd);
        bad[8] ^= 1;
        assert_eq!(answer(&bad, &open), None);
        assert_eq!(answer(&probe(SctpProbe::Init, 81, 0), &open), None);
        assert_eq!(answer(&ack, &open), None);
        // Garbage never panics.
        for len in 0..ack.len() {
            let _ = answer(&ack[..len], &open);
        }
    }
}
