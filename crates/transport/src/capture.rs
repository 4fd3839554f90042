//! Live capture for readers that are not a scan (`portolan detect
//! --iface`): a packet socket bound to one interface, with the scanner's
//! receive ring (`TPACKET_V3`, [`crate::ring`]) and a kernel filter that
//! lets through only ARP and the IPv4 and IPv6 packets of the protocols
//! asked for (ICMP and ICMPv6 always), in both directions, cut to their
//! headers ([`crate::sys::attach_capture_filter`]).
//!
//! Contract: opening needs `CAP_NET_RAW` (nothing after it, so a caller
//! may drop its capabilities once a capture is open); [`Capture::wait`]
//! blocks at most the time given; [`Capture::drain`] never blocks and
//! reads at most its budget (rounded up to a ring block). Each packet
//! is handed over once: on a loopback interface, which shows every packet
//! twice (leaving, then arriving), only the arrival is kept. A packet
//! that arrived in the instant between the socket's opening and its
//! binding to the interface is discarded rather than risk one from
//! another interface.

use std::io;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::context::Receiver;
use crate::route::{Link, Netlink, interface_index};
use crate::sys;

/// Reads of 4,096 packets at most to clear what came in before the
/// socket was bound and filtered.
const STALE_READS: usize = 16;

/// Why a capture could not be opened or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// Packet sockets are not permitted to this process.
    #[error(
        "capturing is not permitted ({0}): run as root, or give the binary the capability \
         with `setcap cap_net_raw+eip portolan`"
    )]
    NotPermitted(#[source] io::Error),
    /// The interface does not exist (or its type cannot be read).
    #[error("interface {name}: {source}")]
    Interface {
        /// The name given.
        name: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The socket failed.
    #[error("{what} on {interface}: {source}")]
    Socket {
        /// What was being done.
        what: &'static str,
        /// The interface.
        interface: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

/// Which way a captured packet crossed the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received by this machine (or seen passing, in promiscuous mode).
    In,
    /// Sent by this machine.
    Out,
}

/// A live capture on one interface.
pub struct Capture {
    receiver: Receiver,
    poll: Poll,
    events: Events,
    interface: String,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("interface", &self.interface)
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// Opens a capture of the IPv4 and IPv6 packets of IP protocols
    /// `protocols` (plus ICMP and ICMPv6) that cross interface
    /// `interface`, in both directions.
    ///
    /// # Errors
    /// [`CaptureError::NotPermitted`] without `CAP_NET_RAW`,
    /// [`CaptureError::Interface`] for an unknown interface, or the
    /// socket step that failed.
    pub fn open(interface: &str, protocols: &[u8]) -> Result<Capture, CaptureError> {
        let name = || interface.to_owned();
        let no_interface = |source| CaptureError::Interface {
            name: name(),
            source,
        };
        let ifindex = interface_index(interface).map_err(no_interface)?;
        let loopback = matches!(
            Netlink::open()
                .and_then(|mut n| n.link(ifindex))
                .map_err(no_interface)?,
            Link::Loopback
        );
        let failed = |what: &'static str| {
            move |source: io::Error| CaptureError::Socket {
                what,
                interface: name(),
                source,
            }
        };
        let mut receiver = Receiver::open().map_err(|e| match e {
            crate::raw::RawError::NotPermitted(e) => CaptureError::NotPermitted(e),
            other => CaptureError::Socket {
                what: "opening the packet socket",
                interface: name(),
                source: io::Error::other(other.to_string()),
            },
        })?;
        sys::attach_capture_filter(receiver.socket(), protocols, !loopback)
            .map_err(failed("filtering the packet socket"))?;
        sys::bind_packet_socket(receiver.fd(), ifindex)
            .map_err(failed("binding the packet socket"))?;
        for _ in 0..STALE_READS {
            let read = receiver
                .drain(4096, |_, _, _| {})
                .map_err(failed("reading the packet socket"))?;
            if read == 0 {
                break;
            }
        }
        let poll = Poll::new().map_err(failed("creating the poller"))?;
        poll.registry()
            .register(&mut SourceFd(&receiver.fd()), Token(0), Interest::READABLE)
            .map_err(failed("polling the packet socket"))?;
        Ok(Capture {
            receiver,
            poll,
            events: Events::with_capacity(4),
            interface: name(),
        })
    }

    /// The interface captured.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Waits until packets may be waiting, or `timeout` has passed (a
    /// signal ends the wait early too).
    ///
    /// # Errors
    /// The poller's failure.
    pub fn wait(&mut self, timeout: Duration) -> Result<(), CaptureError> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(source) => Err(CaptureError::Socket {
                what: "polling the packet socket",
                interface: self.interface.clone(),
                source,
            }),
        }
    }

    /// Hands the waiting packets, about `budget` at most, to `each`: the
    /// packet from its network header on (IP or ARP, cut to
    /// [`sys::CAPTURE_SNAP`] bytes), its direction, its link-layer source
    /// (when it is an Ethernet address), and the kernel's receive time
    /// since the Unix epoch
    /// (`None` when the kernel offered no ring and packets are read one
    /// by one). Returns how many were handed over; never blocks.
    ///
    /// # Errors
    /// The socket's failure.
    pub fn drain(
        &mut self,
        budget: usize,
        mut each: impl FnMut(&[u8], Direction, Option<[u8; 6]>, Option<Duration>),
    ) -> Result<usize, CaptureError> {
        self.receiver
            .drain(budget, |packet, arrival, stamp| {
                let direction = if arrival.kind == libc::PACKET_OUTGOING {
                    Direction::Out
                } else {
                    Direction::In
                };
                each(packet, direction, arrival.mac, stamp)
            })
            .map_err(|source| CaptureError::Socket {
                what: "reading the packet socket",
                interface: self.interface.clone(),
                source,
            })
    }

    /// Packets the kernel dropped since the last call for want of room in
    /// the ring (0 if its counters cannot be read).
    pub fn take_drops(&self) -> u64 {
        self.receiver.take_drops()
    }
}
