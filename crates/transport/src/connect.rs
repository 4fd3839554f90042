//! The TCP connect scan (`-sT`): one non-blocking `connect()` per probe,
//! thousands in flight on one epoll instance (through mio).
//!
//! How an attempt maps to a state:
//! - the handshake completes: open (`syn-ack`);
//! - `ECONNREFUSED` (a RST came back): closed (`conn-refused`);
//! - `ECONNRESET` or `EPIPE` (the handshake completed, then the far end
//!   reset the connection before its outcome was read, as a SYN proxy in
//!   front of a closed port does, or a server that accepts and aborts):
//!   open (`conn-reset`), never dropped nor taken for silence;
//! - an ICMP or ICMPv6 error: filtered, with the reason its type and code
//!   give (`admin-prohibited`, `host-unreach`, `net-unreach`, `no-route`,
//!   ...), read from the socket's error queue (see [`crate::sys`]);
//! - otherwise by errno (Linux's `icmp_err_convert`): `EHOSTUNREACH`
//!   filtered (`host-unreach`), `ENETUNREACH` filtered (`net-unreach`, also
//!   when no route exists), `EACCES`/`EPERM` filtered (`admin-prohibited`,
//!   or a local firewall);
//! - no answer before the scheduler's timeout: the scheduler retries or
//!   reports filtered (`no-response`).
//!
//! Sockets get `SO_LINGER` 0, so closing one sends a RST instead of a FIN
//! and leaves no TIME_WAIT behind; the ephemeral ports stay available.
//! A connection from a port to itself (possible on loopback when the
//! target port lies in the ephemeral range) proves nothing and is tried
//! again.
//!
//! Contract: no panics on any errno; per-probe work is one socket and a
//! slot in a reused table.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use portolan_engine::{PortState, Probe, ProbeId, Reason, Reply, Scheduler};
use socket2::{Domain, Socket, Type};

use crate::{Control, Observer};

/// Probes sent per turn of the loop at most, so answers are read often.
const SEND_BATCH: usize = 512;

/// Readiness events read per `epoll_wait`.
const EVENTS_PER_POLL: usize = 1024;

/// File descriptors kept free for everything else the process does.
const RESERVED_FDS: u64 = 64;

/// Options of the connect transport.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// Bind every socket to this source address (`-S`).
    pub source: Option<IpAddr>,
    /// Send through this interface only (`-e`, `SO_BINDTODEVICE`).
    pub device: Option<String>,
}

/// Why the connect scan could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The poll instance failed.
    #[error("polling sockets failed: {0}")]
    Poll(#[source] io::Error),
    /// A socket call failed in a way no port state explains.
    #[error("connecting to {addr} failed: {source}")]
    Socket {
        /// The address probed.
        addr: SocketAddr,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

/// What one attempt led to, as seen by the socket layer.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Answer(Reply),
    /// A local resource ran out: try again later with fewer in flight.
    Retry,
    /// Still in progress.
    Pending,
}

fn reply(state: PortState, reason: Reason) -> Attempt {
    Attempt::Answer(Reply {
        state,
        reason,
        ttl: None,
    })
}

/// Maps a `connect()` or `SO_ERROR` errno to what it says about the port.
fn classify(err: &io::Error) -> Option<Attempt> {
    let code = err.raw_os_error()?;
    Some(match code {
        libc::EINPROGRESS | libc::EALREADY | libc::EINTR => Attempt::Pending,
        libc::ECONNREFUSED => reply(PortState::Closed, Reason::ConnRefused),
        libc::ECONNRESET | libc::EPIPE => reply(PortState::Open, Reason::ConnReset),
        libc::EHOSTUNREACH | libc::EHOSTDOWN => reply(PortState::Filtered, Reason::HostUnreach),
        libc::ENETUNREACH | libc::ENETDOWN => reply(PortState::Filtered, Reason::NetUnreach),
        libc::EACCES | libc::EPERM => reply(PortState::Filtered, Reason::AdminProhibited),
        libc::ETIMEDOUT => reply(PortState::Filtered, Reason::NoResponse),
        libc::EMFILE
        | libc::ENFILE
        | libc::ENOBUFS
        | libc::ENOMEM
        | libc::EADDRNOTAVAIL
        | libc::EAGAIN
        | libc::EADDRINUSE => Attempt::Retry,
        _ => return None,
    })
}

/// The open connections, indexed by the probe's slot.
struct Conn {
    id: ProbeId,
    target: SocketAddr,
    stream: TcpStream,
}

/// Runs a connect scan to completion (or interruption), handing every
/// event of the scheduler to `sink`.
pub fn run(
    scheduler: &mut Scheduler,
    options: &ConnectOptions,
    observer: &mut dyn Observer,
    sink: &mut dyn FnMut(portolan_engine::ScanEvent),
) -> Result<(), ConnectError> {
    let fd_limit = crate::sys::raise_open_file_limit();
    let fd_budget = fd_limit.saturating_sub(RESERVED_FDS).max(1);
    let cap = u32::try_from(fd_budget).unwrap_or(u32::MAX);
    if scheduler.max_in_flight() > cap {
        scheduler.set_max_in_flight(cap);
    }
    let mut poll = Poll::new().map_err(ConnectError::Poll)?;
    let mut events = Events::with_capacity(EVENTS_PER_POLL);
    let mut conns: Vec<Option<Conn>> = Vec::new();

    loop {
        let now = Instant::now();
        if observer.tick(scheduler, now) == Control::Interrupt {
            scheduler.interrupt(now);
        }
        while let Some(cancelled) = scheduler.poll_cancel(now) {
            release(&mut conns, cancelled.id);
        }
        let mut sent = 0;
        while sent < SEND_BATCH {
            let Some(probe) = scheduler.poll_probe(now) else {
                break;
            };
            sent += 1;
            start(&poll, &mut conns, scheduler, probe, options, now)?;
        }
        while let Some(event) = scheduler.poll_event() {
            sink(event);
        }
        if scheduler.is_finished() {
            return Ok(());
        }
        let wait = crate::turn_wait(scheduler, now, sent == SEND_BATCH);
        // Read every answer that is ready before the next turn expires
        // anything: an answer waiting in the kernel is not a timeout.
        let mut wait = Some(wait);
        loop {
            match poll.poll(&mut events, wait) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => break,
                Err(e) => return Err(ConnectError::Poll(e)),
            }
            let now = Instant::now();
            let mut count = 0;
            for event in events.iter() {
                count += 1;
                let id = ProbeId::from_u64(event.token().0 as u64);
                let Some(conn) = conns.get_mut(id.slot()).and_then(Option::take) else {
                    continue;
                };
                if conn.id != id {
                    // A stale event for a slot reused since: put it back.
                    conns[id.slot()] = Some(conn);
                    continue;
                }
                match finish(&conn.stream, conn.target) {
                    Attempt::Answer(r) => {
                        scheduler.on_reply(id, r, now);
                    }
                    Attempt::Retry => scheduler.on_not_sent(id, now),
                    Attempt::Pending => conns[id.slot()] = Some(conn),
                }
            }
            if count < EVENTS_PER_POLL {
                break;
            }
            wait = Some(Duration::ZERO);
        }
    }
}

/// Closes the socket of a probe the scheduler gave up or cancelled.
fn release(conns: &mut [Option<Conn>], id: ProbeId) {
    if let Some(slot) = conns.get_mut(id.slot())
        && slot.as_ref().is_some_and(|c| c.id == id)
    {
        *slot = None;
    }
}

/// Starts one attempt; reports at once what is known at once.
fn start(
    poll: &Poll,
    conns: &mut Vec<Option<Conn>>,
    scheduler: &mut Scheduler,
    probe: Probe,
    options: &ConnectOptions,
    now: Instant,
) -> Result<(), ConnectError> {
    let addr = SocketAddr::new(probe.addr, probe.port);
    let socket = match open_socket(addr, options) {
        Ok(s) => s,
        Err(e) => {
            return match classify(&e) {
                Some(Attempt::Retry) => {
                    scheduler.on_not_sent(probe.id, now);
                    Ok(())
                }
                _ => Err(ConnectError::Socket { addr, source: e }),
            };
        }
    };
    let attempt = match socket.connect(&addr.into()) {
        Ok(()) => self_connect_check(&socket, addr),
        Err(e) => match classify(&e) {
            Some(Attempt::Answer(r)) if r.state == PortState::Filtered => {
                icmp_answer(socket.as_raw_fd()).unwrap_or(Attempt::Answer(r))
            }
            Some(a) => a,
            None => return Err(ConnectError::Socket { addr, source: e }),
        },
    };
    match attempt {
        Attempt::Answer(r) => {
            scheduler.on_reply(probe.id, r, now);
        }
        Attempt::Retry => scheduler.on_not_sent(probe.id, now),
        Attempt::Pending => {
            let mut stream = TcpStream::from_std(socket.into());
            let token = Token(probe.id.as_u64() as usize);
            if let Err(e) = poll
                .registry()
                .register(&mut stream, token, Interest::WRITABLE)
            {
                return match classify(&e) {
                    Some(Attempt::Retry) => {
                        scheduler.on_not_sent(probe.id, now);
                        Ok(())
                    }
                    _ => Err(ConnectError::Poll(e)),
                };
            }
            let slot = probe.id.slot();
            if conns.len() <= slot {
                conns.resize_with(slot + 1, || None);
            }
            conns[slot] = Some(Conn {
                id: probe.id,
                target: addr,
                stream,
            });
        }
    }
    Ok(())
}

fn open_socket(addr: SocketAddr, options: &ConnectOptions) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_linger(Some(Duration::ZERO))?;
    crate::sys::enable_icmp_errors(socket.as_raw_fd(), addr.is_ipv6())?;
    if let Some(device) = &options.device {
        socket.bind_device(Some(device.as_bytes()))?;
    }
    if let Some(source) = options.source {
        socket.bind(&SocketAddr::new(source, 0).into())?;
    }
    Ok(socket)
}

/// The answer an ICMP error queued on the socket gives, if one is there.
fn icmp_answer(fd: std::os::fd::RawFd) -> Option<Attempt> {
    let e = crate::sys::take_icmp_error(fd)?;
    let reason = match e.family {
        crate::sys::IcmpFamily::V4 => Reason::from_icmpv4(e.icmp_type, e.code),
        crate::sys::IcmpFamily::V6 => Reason::from_icmpv6(e.icmp_type, e.code),
    }?;
    Some(reply(PortState::Filtered, reason))
}

/// Reads the outcome of a connect that the poller reported ready.
///
/// Costs one `getsockopt` for the common answers (connected, refused);
/// the error queue is read only when the errno says an ICMP error ended
/// the attempt, and the local address only for loopback targets, where a
/// connection to itself is possible.
fn finish(stream: &TcpStream, target: SocketAddr) -> Attempt {
    match stream.take_error() {
        Ok(None) => {
            if target.ip().is_loopback() && stream.local_addr().is_ok_and(|local| local == target) {
                Attempt::Retry
            } else {
                reply(PortState::Open, Reason::SynAck)
            }
        }
        Ok(Some(e)) | Err(e) => match classify(&e) {
            Some(Attempt::Answer(r)) if r.state == PortState::Filtered => {
                icmp_answer(stream.as_raw_fd()).unwrap_or(Attempt::Answer(r))
            }
            Some(a) => a,
            None => reply(PortState::Filtered, Reason::NoResponse),
        },
    }
}

/// A connect that completed at once: open, unless it connected to itself.
fn self_connect_check(socket: &Socket, addr: SocketAddr) -> Attempt {
    let local = socket.local_addr().ok().and_then(|a| a.as_socket());
    if local == Some(addr) {
        Attempt::Retry
    } else {
        reply(PortState::Open, Reason::SynAck)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn errnos_map_to_states_and_reasons() {
        let answer = |c| match classify(&errno(c)) {
            Some(Attempt::Answer(r)) => Some((r.state, r.reason)),
            _ => None,
        };
        assert_eq!(
            answer(libc::ECONNREFUSED),
            Some((PortState::Closed, Reason::ConnRefused))
        );
        // Completed, then reset: the port answered.
        assert_eq!(
            answer(libc::ECONNRESET),
            Some((PortState::Open, Reason::ConnReset))
        );
        assert_eq!(
            answer(libc::EPIPE),
            Some((PortState::Open, Reason::ConnReset))
        );
        assert_eq!(
            answer(libc::EHOSTUNREACH),
            Some((PortState::Filtered, Reason::HostUnreach))
        );
        assert_eq!(
            answer(libc::ENETUNREACH),
            Some((PortState::Filtered, Reason::NetUnreach))
        );
        assert_eq!(
            answer(libc::EACCES),
            Some((PortState::Filtered, Reason::AdminProhibited))
        );
        assert_eq!(classify(&errno(libc::EMFILE)), Some(Attempt::Retry));
        assert_eq!(classify(&errno(libc::EINPROGRESS)), Some(Attempt::Pending));
        assert_eq!(classify(&errno(libc::EBADF)), None);
    }
}
