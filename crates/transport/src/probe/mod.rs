//! Probe modules: each scan technique as pure code, in ZMap's shape.
//!
//! A module knows one kind of probe and nothing of sockets, threads or
//! timing: which IP protocols its answers come in (for the kernel
//! filter), its prebuilt templates (one per source address, built on
//! first use), how it stamps a probe for a target from a template (the
//! keyed cookie in a field the answer must echo), how it tells a valid
//! answer to one of its probes from a stray or forged packet by that
//! cookie, what the answer proves (state and reason), and what silence
//! means. The raw transport (`raw.rs`) pumps packets: it asks the module
//! to stamp each probe into its send batch and hands it every packet
//! read.
//!
//! - [`tcp`]: SYN, ACK, window, FIN, NULL, Xmas, Maimon and `--scanflags`
//!   probes.
//! - [`udp`]: UDP probes with each port's payload.
//! - [`sctp`]: SCTP INIT and COOKIE ECHO probes.
//! - [`ip_protocol`]: the IP protocol scan, one probe per protocol number
//!   (through the modules above where the protocol has its own).
//! - [`discovery`]: host discovery's pings (ICMP echo, timestamp and
//!   address mask; TCP, UDP and SCTP through the modules above). ARP and
//!   Neighbor Discovery are link-layer frames, which the raw engine
//!   writes.
//! - [`os`]: nmap's sixteen OS detection probes (`-O`), whose answers'
//!   packets the OS phase keeps.
//! - [`zombie`]: the idle scan's reading of a zombie's IP ID.
//!
//! Contract: no I/O, no panic on any packet (answers are parsed by
//! `portolan-wire`, whose parsers promise the same), no allocation per
//! probe or per answer beyond a template built once per source address.
//! Modules are tested on packets built byte by byte from the RFC layouts
//! (`fixtures`), for every outcome: open, closed, filtered, a forged
//! cookie, a truncated packet, our own probe seen on loopback. The parsed
//! answers (`portolan_wire::Reply`) keep what OS fingerprinting will
//! read: TTL, IP ID, DF, window, the TCP options in order, and what an
//! ICMP error quotes.
//!
//! Read first: the ZMap paper (Durumeric et al., USENIX Security 2013),
//! section 3 on probe modules and stateless validation.

use std::net::IpAddr;

use portolan_engine::{PortState, Reason, Reply};
use portolan_wire::StampError;

use crate::cookie::CookieJar;

pub mod discovery;
pub mod ip_protocol;
pub mod os;
pub mod sctp;
pub mod tcp;
pub mod udp;
pub mod zombie;

#[cfg(test)]
mod fixtures;

/// Source ports per scan: a try uses `base + try % TRY_PORTS`, so that a
/// retransmission is a new connection request to the target. With one
/// port for every try, a target that still holds the half-open
/// connection of an earlier try (its RST lost) takes the retry for a
/// duplicate SYN and answers at most one per `tcp_invalid_ratelimit`
/// (500 ms on Linux): an open port could then go unanswered for good.
/// nmap varies its source port per try for the same reason.
pub const TRY_PORTS: u16 = 8;

/// The source ports a run's probes leave from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourcePorts {
    /// The first.
    pub base: u16,
    /// How many, from `base` on.
    pub count: u16,
}

impl SourcePorts {
    /// [`TRY_PORTS`] ports from `base`.
    pub fn from_base(base: u16) -> SourcePorts {
        SourcePorts {
            base,
            count: TRY_PORTS,
        }
    }

    /// The source port of a probe's try.
    pub fn port_for(self, try_no: u8) -> u16 {
        self.base
            .wrapping_add(u16::from(try_no) % self.count.max(1))
    }

    /// Whether `port` is one of ours.
    pub fn contains(self, port: u16) -> bool {
        port.wrapping_sub(self.base) < self.count
    }

    /// Whether a packet from `src` to `dst` port may answer our probes:
    /// to one of our ports, and not from one (our own probes, seen
    /// arriving when the target is on loopback).
    pub fn answers(self, (src, dst): (u16, u16)) -> bool {
        !self.contains(src) && self.contains(dst)
    }

    /// What a packet from port `src` to port `dst` is before its content
    /// is read: our own probe, or not for us; `None` for a packet to read.
    pub fn triage(self, (src, dst): (u16, u16)) -> Option<Judged> {
        if self.contains(src) {
            Some(Judged::OwnProbe)
        } else if !self.contains(dst) {
            Some(Judged::Unrelated)
        } else {
            None
        }
    }
}

/// The IP protocols the answers of a module probing with several come
/// in: ICMP and ICMPv6 (echo replies, errors), TCP, UDP and SCTP.
pub const EVERY_ANSWER: [u8; 5] = [
    portolan_wire::ip_protocol::ICMP,
    portolan_wire::ip_protocol::ICMPV6,
    portolan_wire::ip_protocol::TCP,
    portolan_wire::ip_protocol::UDP,
    portolan_wire::ip_protocol::SCTP,
];

/// What a module needs of the run to stamp and to validate: the cookie
/// key and our source ports.
#[derive(Clone, Copy, Debug)]
pub struct Keys<'a> {
    /// The run's keyed cookies.
    pub jar: &'a CookieJar,
    /// Our source ports.
    pub ports: SourcePorts,
}

/// One probe to stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shot {
    /// Our address (or a decoy's) as the probe's source.
    pub source: IpAddr,
    /// The target.
    pub target: IpAddr,
    /// The target's port.
    pub port: u16,
    /// Which try this is (0 for the first), for the source port and the
    /// IP ID.
    pub try_no: u8,
}

impl Shot {
    /// The IP ID of the probe: from the cookie, different per try (the
    /// kernel's own IDs would tell our probes apart from nothing).
    pub fn ip_id(&self, cookie: u32) -> u16 {
        (cookie >> 16) as u16 ^ u16::from(self.try_no)
    }
}

/// A valid answer to one of our probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The probed host.
    pub target: IpAddr,
    /// The probed port.
    pub port: u16,
    /// What it proves.
    pub reply: Reply,
}

/// What a module makes of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judged {
    /// A valid answer to one of our probes.
    Answer(Answer),
    /// Not for this module: another protocol, or a packet that does not
    /// concern our probes at all (not counted as received).
    Unrelated,
    /// One of our own probes, seen arriving when the target is on
    /// loopback (not counted).
    OwnProbe,
    /// A packet addressed to our probes that fails validation: a forged
    /// or stale cookie, an answer that proves nothing (counted and
    /// ignored).
    Invalid,
}

/// Writes probes and reads their answers, for one technique.
pub trait ProbeModule {
    /// The IP protocol numbers its answers arrive in (ICMP errors are
    /// always read too).
    fn answer_protocols(&self) -> &'static [u8];
    /// The state of a port that never answered.
    fn silent_state(&self) -> PortState;
    /// Writes the IP packet of `shot` into `buffer`; its length.
    fn stamp(
        &mut self,
        shot: Shot,
        keys: &Keys<'_>,
        buffer: &mut [u8],
    ) -> Result<usize, StampError>;
    /// Reads `packet` (starting at its IP header).
    fn judge(&self, packet: &[u8], keys: &Keys<'_>) -> Judged;
}

/// What an ICMP or ICMPv6 destination unreachable quoting one of our
/// probes says of its port; `None` for other errors (a time exceeded says
/// nothing about the port).
pub fn unreachable_reason(v6: bool, icmp_type: u8, code: u8) -> Option<Reason> {
    let reason = if v6 {
        Reason::from_icmpv6(icmp_type, code)
    } else {
        Reason::from_icmpv4(icmp_type, code)
    };
    reason.filter(|r| *r != Reason::TimeExceeded)
}

/// An answer proving `state` with `reason`, seen with `ttl`.
fn answer(target: IpAddr, port: u16, state: PortState, reason: Reason, ttl: u8) -> Judged {
    Judged::Answer(Answer {
        target,
        port,
        reply: Reply {
            state,
            reason,
            ttl: Some(ttl),
        },
    })
}
