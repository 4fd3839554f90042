//! The typed errors of this crate: [`TargetError`] for target and exclusion
//! specifications and files, [`PortError`] for `-p` port specifications.
//!
//! Every variant carries the offending input (the token as the user typed it,
//! and the path and line number for files), so the message alone tells the
//! user what to fix. I/O causes are part of the message and are not also
//! exposed as `source()`, so a `{:#}` chain does not print them twice.

use std::io;

/// Why a target, exclusion or target file was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// An empty token (`""`).
    #[error("empty target specification")]
    Empty,
    /// An IPv4 octet above 255 (`198.18.0.300`).
    #[error("invalid target \"{token}\": octet {octet} out of range 0-255")]
    OctetOutOfRange { token: String, octet: String },
    /// An octet range whose start is after its end (`198.18.5-3.1`).
    #[error("invalid target \"{token}\": octet range {range} runs backwards")]
    ReversedOctetRange { token: String, range: String },
    /// An octet that is neither a number, a range nor `*` (`198.18.0.1--2`).
    #[error("invalid target \"{token}\": malformed octet \"{octet}\"")]
    MalformedOctet { token: String, octet: String },
    /// Address syntax without exactly four octets (`198.18.1`).
    #[error("invalid target \"{token}\": expected 4 dot-separated octets, found {found}")]
    OctetCount { token: String, found: usize },
    /// A CIDR prefix after octet ranges (`198.18.0-3.0/24`).
    #[error("invalid target \"{token}\": a CIDR prefix cannot follow octet ranges")]
    PrefixOnOctetRange { token: String },
    /// A prefix length that is not a number (`198.18.0.0/x`).
    #[error("invalid target \"{token}\": prefix length \"{prefix}\" is not a number")]
    MalformedPrefix { token: String, prefix: String },
    /// An IPv4 prefix length above 32.
    #[error("invalid target \"{token}\": prefix length /{prefix} out of range /0-/32 for IPv4")]
    Ipv4PrefixOutOfRange { token: String, prefix: String },
    /// An IPv6 prefix length of 0 or above 128. `/0` is refused because its
    /// 2^128 addresses do not fit the 128-bit host counter.
    #[error(
        "invalid target \"{token}\": prefix length /{prefix} out of range /1-/128 for IPv6 \
         (/0 would be 2^128 addresses, one more than a 128-bit counter holds)"
    )]
    Ipv6PrefixOutOfRange { token: String, prefix: String },
    /// Text with `:` or brackets that is not an IPv6 address.
    #[error("invalid target \"{token}\": malformed IPv6 address")]
    MalformedIpv6 { token: String },
    /// An IPv6 address with a zone index (`fe80::1%eth0`).
    #[error("invalid target \"{token}\": IPv6 zone indexes (%) are not supported")]
    Ipv6Zone { token: String },
    /// Neither an address, a range nor a plausible host name.
    #[error("invalid target \"{token}\": not an address, range or host name")]
    MalformedName { token: String },
    /// The resolver failed for a host name.
    #[error("cannot resolve \"{token}\": {io}")]
    Resolve { token: String, io: io::Error },
    /// The resolver answered with no address.
    #[error("cannot resolve \"{token}\": no addresses")]
    NoAddresses { token: String },
    /// The targets add up to more than `u128::MAX` addresses.
    #[error("too many targets: adding \"{token}\" exceeds 2^128 - 1 addresses")]
    TooManyAddresses { token: String },
    /// An error in an exclusion (`--exclude`, `--excludefile`).
    #[error("in exclusions: {0}")]
    Exclusion(Box<TargetError>),
    /// A target reaches an address outside the scope (`--scope`).
    #[error("target \"{token}\" is outside the scope: {addr} is not in {scope}; nothing was sent")]
    OutOfScope {
        token: String,
        addr: std::net::IpAddr,
        scope: String,
    },
    /// A scope file entry that is no address or network (a host name, or
    /// an octet range of more than 65,536 addresses).
    #[error(
        "{path}: scope entry \"{token}\" must be an address, a CIDR block or a small octet range"
    )]
    ScopeEntry { path: String, token: String },
    /// A target file could not be read.
    #[error("cannot read target file \"{path}\": {io}")]
    ReadFile { path: String, io: io::Error },
    /// A line of a target file is not UTF-8.
    #[error("{path}:{line}: not valid UTF-8")]
    NotUtf8 { path: String, line: usize },
    /// A token of a target file is invalid; `error` names the token.
    #[error("{path}:{line}: {error}")]
    InFile {
        path: String,
        line: usize,
        error: Box<TargetError>,
    },
}

/// Why a port specification (`-p`, `--exclude-ports`) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// An empty or all-blank specification.
    #[error("empty port specification")]
    Empty,
    /// An empty item between commas, or a prefix with nothing after it.
    #[error("invalid port specification \"{spec}\": empty item")]
    EmptyItem { spec: String },
    /// A port number above 65535.
    #[error("invalid port \"{token}\": out of range 0-65535")]
    OutOfRange { token: String },
    /// An IP protocol number above 255 (`-sO`).
    #[error("invalid IP protocol number \"{token}\": out of range 0-255")]
    ProtocolOutOfRange { token: String },
    /// A range whose start is after its end (`5-3`).
    #[error("invalid port range \"{token}\": start is after end")]
    ReversedRange { token: String },
    /// Neither a number, a range nor a service name.
    #[error("invalid port \"{token}\": not a number, range or service name")]
    Malformed { token: String },
    /// A service name the port table does not know.
    #[error("invalid port \"{token}\": unknown service name")]
    UnknownService { token: String },
    /// A protocol prefix other than `T:`, `U:` or `S:` (nmap's `P:`).
    #[error(
        "invalid port \"{token}\": protocol prefix \"{prefix}:\" is not supported (use T:, U: or S:)"
    )]
    UnsupportedPrefix { token: String, prefix: String },
}
