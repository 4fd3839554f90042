//! Portolan's network lab: isolated network namespaces for integration tests
//! and benchmarks, so a real scanner can scan real TCP/IP stacks without any
//! packet leaving the machine.
//!
//! A [`Lab`] is one test's private network: a scanner namespace
//! ([`Lab::scanner`]) linked by veth pairs to target [`Host`]s (each its own
//! namespace, point to point, or several on a bridged [`Segment`]). On any
//! namespace you can run commands ([`Namespace::command`], via
//! `ip netns exec`) and closures ([`in_namespace`], via `setns(2)` on a
//! fresh thread), start TCP listeners and UDP echo responders that live in
//! the test process ([`Namespace::listen_tcp`], [`Namespace::listen_udp`]),
//! answer SCTP ([`Namespace::listen_sctp`] with the kernel's SCTP where it
//! exists, [`Namespace::respond_sctp`] from user space everywhere),
//! stand in as an idle-scan zombie ([`Namespace::respond_zombie`]),
//! run daemons ([`Namespace::spawn`]), add nftables rules (drop, reset,
//! ICMP admin-prohibited, random loss), set sysctls and shape traffic,
//! and make a host's kernel answer as one of the lab's stacks
//! ([`STACKS`], [`Namespace::apply_stack`]) or answer from user space as
//! another stack ([`PERSONAS`], [`Namespace::respond_as`]) for OS
//! detection.
//!
//! # Contract
//! - **Containment.** Lab addresses come only from `198.18.0.0/15` and
//!   `fd00::/8`; the scanner namespace has connected routes only (no default
//!   route), so packets can reach lab hosts and nothing else.
//! - **Isolation.** Namespace names are `pl<pid>x<n><role>`, unique across
//!   threads and processes, so tests run in parallel; interface names live
//!   inside namespaces and are short (`ph0`, `eth0`, `br0`).
//! - **Cleanup.** Dropping a [`Lab`] (also during a panic) stops its
//!   listeners, kills processes left in its namespaces and deletes them.
//!   Namespaces leaked by killed processes are swept on the next
//!   [`LabBuilder::build`] ([`sweep_stale_namespaces`]).
//! - **Requirements.** Root, iproute2 (`ip`, `tc`) and nftables. Tests get a
//!   lab through [`lab_or_skip!`] / [`require_lab`], which skip loudly, or
//!   panic under `CI`, when those are missing. Kernel SCTP is optional
//!   ([`require_kernel_sctp`]): its tests skip loudly without it, and fail
//!   only where `PORTOLAN_EXPECT_SCTP` says the kernel has it.
//! - Errors are [`LabError`]s naming the command and its stderr. The only
//!   `unsafe` is in the private `sys` module. Only the gate prints.
//!
//! Read first: ip-netns(8), veth(4), nft(8), tc-tbf(8).
//!
//! ```no_run
//! # fn main() -> Result<(), portolan_lab::LabError> {
//! use std::net::TcpStream;
//! use std::time::Duration;
//!
//! let lab = portolan_lab::Lab::builder().hosts(1).build()?;
//! let host = lab.host(0);
//! let _open = host.listen_tcp([22, 80])?;
//! host.drop_tcp(443)?;
//! let addr = host.socket_v6(80);
//! let connected = lab.scanner().run(|| {
//!     TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
//! })?;
//! assert!(connected);
//! # Ok(()) }
//! ```

pub mod daemons;
mod error;
mod firewall;
mod gate;
mod lab;
mod namespace;
mod persona;
mod postgres;
mod sctp;
mod service;
mod stacks;
mod sweep;
mod sys;
mod zombie;

pub use error::LabError;
pub use firewall::{PortRange, Rejection, TABLE};
pub use gate::{
    expect_kernel_sctp, lab_support, require_kernel_sctp, require_lab, require_root_lab, under_ci,
};
pub use lab::{Host, Lab, LabBuilder, MAX_SEGMENT_HOSTS, Segment, Subnet};
pub use namespace::{Namespace, Tbf, in_namespace};
pub use persona::{IdPolicy, IsnPolicy, Opt, PERSONAS, Persona, PersonaResponder};
pub use postgres::{PostgresCluster, postgres_bin_dir};
pub use sctp::{SctpResponder, SctpService, kernel_sctp_support};
pub use service::{
    DAEMON_GRACE, Daemon, HANDLER_IO_TIMEOUT, LISTEN_BACKLOG, SilentUdp, TcpHandler, TcpService,
    UdpEcho,
};
pub use stacks::{STACKS, StackProfile};
pub use sweep::{NAMESPACE_PREFIX, NETNS_RUN_DIR, sweep_stale_namespaces};
pub use zombie::{BUSY_BURST, BUSY_EVERY, ZombieIpId, ZombieResponder};
