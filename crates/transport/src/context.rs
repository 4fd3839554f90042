//! Raw sockets opened once, into a context the caller holds.
//!
//! Opening a raw or packet socket needs `CAP_NET_RAW`; using one does
//! not. A [`RawContext`] opens the sending sockets (a packet socket for
//! whole frames, raw IPv4 and IPv6 sockets) and a first receiving packet
//! socket with its ring, so that a program can give its privileges up
//! before it scans, and then run any number of raw scans, one after
//! another (each borrows the receiver and duplicates of the senders) or
//! side by side (a scan that finds every receiver lent opens another,
//! which takes the privileges still held).
//!
//! Contract: a receiver goes back to the context when its scan ends,
//! cleared of the packets that waited in it when it is lent again, with
//! the new scan's kernel filter and interface; nothing here blocks.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::raw::RawError;
use crate::ring::{Arrival, RxRing};
use crate::sys;

/// Reads of 4,096 packets at most to clear a lent receiver (the ring
/// holds fewer than that many blocks' worth of stale answers).
const STALE_READS: usize = 16;

/// The sockets of raw scans, opened once.
pub struct RawContext {
    /// The frame sender, the raw IPv4 sender and the raw IPv6 sender, as
    /// opened (a machine without IPv6 has no IPv6 sender).
    senders: [Option<socket2::Socket>; 3],
    /// Why a sender could not be opened (its `errno`).
    unavailable: [Option<i32>; 3],
    /// Receivers not lent out.
    receivers: Mutex<Vec<Receiver>>,
}

fn not_permitted(what: &'static str) -> impl Fn(io::Error) -> RawError {
    move |e: io::Error| match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => RawError::NotPermitted(e),
        _ => RawError::Socket { what, source: e },
    }
}

impl std::fmt::Debug for RawContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawContext")
            .field("senders", &self.senders)
            .field("unavailable", &self.unavailable)
            .finish_non_exhaustive()
    }
}

impl RawContext {
    /// Opens the senders and one receiver: enough for scans that run one
    /// after another.
    ///
    /// # Errors
    /// [`RawError::NotPermitted`] without `CAP_NET_RAW`, or the socket
    /// that failed.
    pub fn open() -> Result<Arc<RawContext>, RawError> {
        RawContext::open_with_receivers(1)
    }

    /// Opens the senders and `receivers` receivers (at least one): one
    /// per raw run that may be in progress at the same time once the
    /// privileges are gone (an idle scan holds one for its whole length,
    /// beside its discovery's; scans side by side hold one each).
    ///
    /// # Errors
    /// As [`RawContext::open`].
    pub fn open_with_receivers(receivers: usize) -> Result<Arc<RawContext>, RawError> {
        let opened = [
            sys::open_frame_sender(),
            sys::open_raw_sender(false),
            sys::open_raw_sender(true),
        ];
        let mut senders: [Option<socket2::Socket>; 3] = [None, None, None];
        let mut unavailable = [None; 3];
        for (i, socket) in opened.into_iter().enumerate() {
            match socket {
                Ok(s) => senders[i] = Some(s),
                Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
                    return Err(RawError::NotPermitted(e));
                }
                Err(e) => unavailable[i] = Some(e.raw_os_error().unwrap_or(libc::EINVAL)),
            }
        }
        let pool = (0..receivers.max(1))
            .map(|_| Receiver::open())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(RawContext {
            senders,
            unavailable,
            receivers: Mutex::new(pool),
        }))
    }

    /// Duplicates of the senders, for one scan's sending thread; a sender
    /// that could not be opened is its error.
    pub(crate) fn senders(&self) -> [Result<socket2::Socket, io::Error>; 3] {
        let mut out = [
            Err(io::Error::from_raw_os_error(libc::EINVAL)),
            Err(io::Error::from_raw_os_error(libc::EINVAL)),
            Err(io::Error::from_raw_os_error(libc::EINVAL)),
        ];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = match (&self.senders[i], self.unavailable[i]) {
                (Some(socket), _) => socket.try_clone(),
                (None, errno) => Err(io::Error::from_raw_os_error(errno.unwrap_or(libc::EINVAL))),
            };
        }
        out
    }

    /// A receiver for one scan: its kernel filter passing `answers` (see
    /// [`sys::open_packet_receiver`]), bound to interface `oif` (every
    /// interface for `None`), with no packet left from an earlier scan.
    /// It goes back to the context when dropped.
    pub(crate) fn receiver(
        self: &Arc<Self>,
        answers: &[u8],
        oif: Option<u32>,
    ) -> Result<Lease, RawError> {
        let lent = self
            .receivers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let mut receiver = match lent {
            Some(r) => r,
            None => Receiver::open()?,
        };
        sys::attach_reply_filter(&receiver.socket, answers)
            .map_err(not_permitted("filtering the packet socket"))?;
        // Binding waits for the kernel's network readers to quiesce (an
        // RCU grace period, tens of milliseconds): only when it changes.
        let ifindex = oif.unwrap_or(0);
        if receiver.bound != ifindex {
            sys::bind_packet_socket(receiver.fd(), ifindex).map_err(|source| RawError::Socket {
                what: "binding the packet socket",
                source,
            })?;
            receiver.bound = ifindex;
        }
        // What an earlier scan left (late answers) is not this scan's. A
        // bounded number of reads: on a busy link packets never stop.
        for _ in 0..STALE_READS {
            let read = receiver
                .drain(4096, |_, _, _| {})
                .map_err(|source| RawError::Socket {
                    what: "reading the packet socket",
                    source,
                })?;
            if read == 0 {
                break;
            }
        }
        Ok(Lease {
            context: Arc::clone(self),
            receiver: Some(receiver),
        })
    }
}

/// A receiving packet socket and its ring (without a ring, when the
/// kernel offers none, each packet is read with its own system call).
pub(crate) struct Receiver {
    socket: socket2::Socket,
    ring: Option<RxRing>,
    buf: Vec<u8>,
    /// The interface it is bound to; 0 for every interface (as opened).
    bound: u32,
}

impl Receiver {
    /// Opens a packet socket on every interface with the reply filter of
    /// no probe module (ARP, ICMP, ICMPv6), and its ring when the kernel
    /// offers one.
    pub(crate) fn open() -> Result<Receiver, RawError> {
        let socket =
            sys::open_packet_receiver(&[]).map_err(not_permitted("opening the packet socket"))?;
        let ring = RxRing::new(socket.as_raw_fd()).ok();
        Ok(Receiver {
            buf: if ring.is_some() {
                Vec::new()
            } else {
                vec![0; 65_536]
            },
            socket,
            ring,
            bound: 0,
        })
    }

    /// Packets the kernel dropped on the socket since the last call, for
    /// want of room (0 if its counters cannot be read: they only inform).
    pub(crate) fn take_drops(&self) -> u64 {
        crate::ring::take_drops(self.fd()).map_or(0, u64::from)
    }

    /// The socket, to filter.
    pub(crate) fn socket(&self) -> &socket2::Socket {
        &self.socket
    }

    /// The socket, to poll.
    pub(crate) fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Hands up to `budget` waiting packets to `each`, with their packet
    /// type and link-layer source and, from the ring, the kernel's receive
    /// time (since the Unix epoch); how many.
    pub(crate) fn drain(
        &mut self,
        budget: usize,
        mut each: impl FnMut(&[u8], Arrival, Option<Duration>),
    ) -> io::Result<usize> {
        if let Some(ring) = &mut self.ring {
            return Ok(ring.drain(budget, |packet, arrival, stamp| {
                each(packet, arrival, Some(stamp))
            }));
        }
        let fd = self.socket.as_raw_fd();
        for n in 0..budget {
            let Some((len, arrival)) = sys::recv_packet(fd, &mut self.buf)? else {
                return Ok(n);
            };
            each(&self.buf[..len], arrival, None);
        }
        Ok(budget)
    }
}

/// A receiver lent to one scan.
pub(crate) struct Lease {
    context: Arc<RawContext>,
    receiver: Option<Receiver>,
}

impl std::ops::Deref for Lease {
    type Target = Receiver;

    fn deref(&self) -> &Receiver {
        self.receiver
            .as_ref()
            .expect("a lease holds its receiver until dropped")
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Receiver {
        self.receiver
            .as_mut()
            .expect("a lease holds its receiver until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(receiver) = self.receiver.take() {
            self.context
                .receivers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(receiver);
        }
    }
}
