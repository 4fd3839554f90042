//! Targets and ports in nmap's syntax, expanded lazily, visited in a keyed
//! pseudo-random order.
//!
//! - [`TargetList`]: target tokens (`198.18.0.0/24`, `198.18.0-3.1-254`,
//!   `fd00::/64`, `scanme.example/30`) minus exclusions, indexed by
//!   arithmetic so a /8 or a /64 is never expanded; [`read_target_file`] and
//!   [`split_exclude_list`] feed it from `-iL`, `--excludefile` and
//!   `--exclude`.
//! - [`PortList`] from `-p` ([`parse_ports`]), and the project's own port
//!   table ([`service_name`], [`top_ports`]) for `-F`, `--top-ports` and the
//!   default port set.
//! - [`Scope`] (`--scope`) and the special-purpose ranges wide scans leave
//!   out ([`TargetList::exclude_special_purpose`]).
//! - [`Permutation`]: a keyed bijection of `[0, len)` for scan order.
//!
//! The contract throughout: no panic on any input, typed errors that name the
//! offending token, and no I/O except host-name resolution through an
//! injectable [`Resolver`] and reading target files. Reference: `man nmap`,
//! "TARGET SPECIFICATION" and "PORT SPECIFICATION".

mod error;
mod ip_protocols;
mod octets;
mod permutation;
mod port_table;
mod ports;
mod resolver;
mod scope;
mod target_file;
mod target_list;
mod target_spec;

pub use error::{PortError, TargetError};
pub use ip_protocols::ip_protocol_name;
pub use permutation::Permutation;
pub use port_table::{ports_named, service_name, top_ports};
pub use ports::{PortList, Protocol, parse_ports, parse_ports_for};
pub use resolver::{Resolver, SystemResolver};
pub use scope::{SPECIAL_PURPOSE, Scope, SpecialRange, WIDE_SCAN};
pub use target_file::{read_target_file, split_exclude_list, target_file_tokens};
pub use target_list::{Target, TargetList, TargetOptions};

/// How many ports `-F` scans per protocol.
pub const FAST_PORT_COUNT: usize = 100;
/// How many ports a scan without `-p` covers per protocol.
pub const DEFAULT_PORT_COUNT: usize = 1000;
