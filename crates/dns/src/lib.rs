//! Portolan's reverse DNS: one job, PTR lookups for many addresses at
//! once, with a bounded number of queries in flight, over UDP.
//!
//! - [`name`]: the name to ask for (`2.0.18.198.in-addr.arpa.`,
//!   `...ip6.arpa.`, RFC 1035 §3.5 and RFC 3596 §2.5) and [`HostName`], a
//!   name from the network made safe to print.
//! - [`message`]: a PTR query's bytes and the checked reading of an answer
//!   (ID, question, truncation, response code, the PTR itself, CNAME
//!   chains of RFC 2317 classless delegation).
//! - [`resolver`]: [`ReverseResolver`], a thread that sends the queries
//!   (at most [`ResolverConfig::max_in_flight`] at once) to each
//!   configured server in turn, with a timeout per try, and hands back one
//!   [`Resolved`] per address asked for.
//! - [`system`]: the servers of `/etc/resolv.conf`.
//!
//! # Choices
//! - **Message format: hickory-proto** (the Hickory DNS project's wire
//!   layer, maintained with its resolver and server). Its decoder bounds
//!   every name it reads: labels of at most 63 bytes, names of at most 255,
//!   and compression pointers that must point backwards, so a loop of
//!   pointers is an error, not a hang. simple-dns 0.13 was smaller, but its
//!   name parser follows a pointer that points at itself for ever (a label
//!   count guards loops, and a bare pointer adds no label); `domain` brings
//!   more than a PTR query needs.
//! - **No hickory-resolver, no async runtime.** The resolver must never
//!   stall a scan, and must send no query but PTR queries to the servers
//!   given. A small `mio` loop on one thread does exactly that: it owns the
//!   queue, the in-flight table keyed by random query IDs, and the
//!   timeouts; a dead server costs each name `attempts x timeout` at most
//!   and never more than `max_in_flight` sockets' worth of state. No TCP
//!   fallback: a truncated answer gives up that name.
//!
//! # Contract
//! Nothing here panics on input from the network; malformed, spoofed
//! (wrong ID, wrong source, wrong question) and hostile answers are
//! ignored or end that one lookup. Names are never trusted: [`HostName`]
//! holds only printable ASCII, with everything else written as `\DDD`.
//! No `unsafe`. The library prints nothing.
//!
//! Read first: RFC 1035 §4 (messages), RFC 3596 §2.5 (ip6.arpa), RFC 2317
//! (classless in-addr.arpa delegation).

#![deny(missing_docs)]

pub mod message;
pub mod name;
pub mod resolver;
pub mod system;

pub use message::{Answer, AnswerError};
pub use name::{HostName, reverse_name};
pub use resolver::{Failure, Outcome, Resolved, ResolverConfig, ReverseResolver};
