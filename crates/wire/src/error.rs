//! The typed errors of this crate: [`WireError`] when received bytes are not
//! a packet we can read, [`StampError`] when a probe cannot be written.
//!
//! Both are small `Copy` values carrying the offending numbers, cheap to
//! return on the hot path. Contract: no panic, no allocation. The header
//! layouts they refer to are in RFC 791, RFC 8200, RFC 9293, RFC 792 and
//! RFC 4443.

use core::fmt;

/// Which header a [`WireError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Header {
    /// The first byte of a packet, before its version is known.
    Ip,
    /// An IPv4 header (RFC 791), outer or quoted in an ICMP error.
    Ipv4,
    /// An IPv6 fixed header (RFC 8200), outer or quoted.
    Ipv6,
    /// An IPv6 extension header (hop-by-hop, routing, fragment,
    /// destination options).
    Ipv6Extension,
    /// A TCP header (RFC 9293).
    Tcp,
    /// A UDP header (RFC 768).
    Udp,
    /// An SCTP common header and first chunk header (RFC 9260).
    Sctp,
    /// An ICMP or ICMPv6 header (RFC 792, RFC 4443).
    Icmp,
    /// The transport header quoted in an ICMP error (its first 4 bytes, the
    /// ports, are required).
    QuotedTransport,
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Header::Ip => "IP",
            Header::Ipv4 => "IPv4",
            Header::Ipv6 => "IPv6",
            Header::Ipv6Extension => "IPv6 extension",
            Header::Tcp => "TCP",
            Header::Udp => "UDP",
            Header::Sctp => "SCTP",
            Header::Icmp => "ICMP",
            Header::QuotedTransport => "quoted transport",
        })
    }
}

/// Why received bytes could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireError {
    /// The bytes end before the header (or the length it declares) does.
    Truncated {
        /// The header being read.
        header: Header,
        /// Bytes the header needs, counted from its own start.
        needed: usize,
        /// Bytes there were.
        available: usize,
    },
    /// A length field holds an impossible value: an IPv4 IHL or a TCP data
    /// offset below 5 words, or an IPv4 total length shorter than its
    /// header. `value` is in bytes.
    BadLength {
        /// The header holding the field.
        header: Header,
        /// The length it declares, in bytes.
        value: usize,
    },
    /// The IP version nibble is not 4 or 6, or an ICMP error quotes a packet
    /// of the other IP version.
    BadVersion {
        /// The nibble found.
        version: u8,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WireError::Truncated {
                header,
                needed,
                available,
            } => write!(
                f,
                "truncated {header} header: needs {needed} bytes, \
                 {available} available"
            ),
            WireError::BadLength { header, value } => {
                write!(f, "impossible {header} length {value}")
            }
            WireError::BadVersion { version } => {
                write!(f, "unexpected IP version {version}")
            }
        }
    }
}

impl core::error::Error for WireError {}

/// Why [`SynTemplate::stamp`](crate::SynTemplate::stamp),
/// [`UdpTemplate::stamp`](crate::UdpTemplate::stamp) or
/// [`SctpTemplate::stamp`](crate::SctpTemplate::stamp) wrote nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StampError {
    /// The output buffer is shorter than the packet.
    BufferTooSmall {
        /// The packet length: [`SynTemplate::len`](crate::SynTemplate::len),
        /// or a UDP probe's headers plus its payload.
        needed: usize,
        /// The buffer length.
        available: usize,
    },
    /// The destination is not of the template's IP version.
    FamilyMismatch {
        /// True if the template is IPv6.
        template_v6: bool,
    },
    /// A UDP payload longer than one datagram carries
    /// ([`UdpTemplate::max_payload_len`](crate::UdpTemplate::max_payload_len)).
    PayloadTooLong {
        /// The payload's length.
        len: usize,
        /// The longest payload the template's family allows.
        max: usize,
    },
}

impl fmt::Display for StampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StampError::BufferTooSmall { needed, available } => {
                write!(f, "probe needs {needed} bytes, buffer has {available}")
            }
            StampError::FamilyMismatch { template_v6 } => {
                let (t, d) = if template_v6 {
                    ("IPv6", "IPv4")
                } else {
                    ("IPv4", "IPv6")
                };
                write!(f, "{t} probe template given an {d} destination")
            }
            StampError::PayloadTooLong { len, max } => {
                write!(f, "UDP payload of {len} bytes, at most {max} fit")
            }
        }
    }
}

impl core::error::Error for StampError {}
