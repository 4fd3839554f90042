//! [`parse_reply`]: what the scanner needs from a received packet, read from
//! untrusted bytes that start at the IP header.
//!
//! Read first: RFC 791 and RFC 8200 (the IP headers; IPv6 extension headers
//! in section 4), RFC 9293 section 3.1 (TCP), RFC 768 (UDP), RFC 9260
//! section 3 (SCTP), RFC 792 and
//! RFC 4443 section 3
//! (the errors and what they quote), RFC 1812 section 4.3.2.3 (routers may
//! quote more than 8 bytes).
//!
//! The outer packet is read strictly: every length field must fit in the
//! bytes. The packet an ICMP error quotes is read laxly, as etherparse's
//! `LaxSlicedPacket` does: the quote is usually cut short, so only its IP
//! header (and, for IPv6, any extension headers) and the first 4 bytes of
//! its transport header (the ports) are required; its length fields are
//! ignored. Checksums are not verified (the kernel has; for SCTP, which a
//! kernel without SCTP support does not check, [`SctpPacket::verify_checksum`]
//! does it on demand: the reply's verification tag, checked against the
//! probe's cookie, already rejects what is not ours).
//!
//! Contract: no panic on any input; no allocation. A truncated or
//! impossible header is a [`WireError`]; a well-formed packet the scanner
//! does not read (an echo reply, another protocol, a later fragment) is
//! [`Reply::Other`]. A UDP reply's payload is not copied: [`Reply::Udp`]
//! says where it lies in the parsed bytes ([`PayloadSpan`]), so `Reply`
//! stays a small `Copy` value without a lifetime.

use core::net::IpAddr;

use crate::bytes::{be16, be32};
use crate::error::{Header, WireError};
use crate::icmp::{self, IcmpPacket};
use crate::ip_protocol;
use crate::ipv4::Ipv4Packet;
use crate::ipv6::{self, Ipv6Packet};
use crate::sctp::{SctpChunk, SctpPacket};
use crate::tcp::{TcpFlags, TcpPacket};
use crate::udp::UdpPacket;

/// What a received packet says to the scanner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reply {
    /// A TCP segment (a SYN-ACK, an RST, or anything else).
    Tcp {
        /// The sender: the scanned host.
        src: IpAddr,
        /// The receiver: our address.
        dst: IpAddr,
        /// IPv4 TTL or IPv6 hop limit as received.
        ttl: u8,
        /// The sender's port: the scanned port.
        src_port: u16,
        /// Our port.
        dst_port: u16,
        /// The sequence number.
        seq: u32,
        /// The acknowledgment number (our probe's sequence number plus one,
        /// for a SYN-ACK or an RST answering a SYN).
        ack: u32,
        /// The control bits.
        flags: TcpFlags,
        /// The window.
        window: u16,
        /// The IPv4 identification; `None` over IPv6 (which has one only
        /// in a fragment header).
        ip_id: Option<u16>,
        /// The IPv4 don't-fragment bit; `None` over IPv6.
        dont_fragment: Option<bool>,
        /// Where the TCP options lie in the parsed bytes, in the order the
        /// sender wrote them (MSS, window scale, SACK permitted,
        /// timestamps: what OS fingerprinting reads).
        options: PayloadSpan,
    },
    /// A UDP datagram: for a UDP scan, the service's answer.
    Udp {
        /// The sender: the scanned host.
        src: IpAddr,
        /// The receiver: our address.
        dst: IpAddr,
        /// IPv4 TTL or IPv6 hop limit as received.
        ttl: u8,
        /// The sender's port: the scanned port.
        src_port: u16,
        /// Our port.
        dst_port: u16,
        /// Where the payload (up to the UDP Length) lies in the bytes given
        /// to [`parse_reply`]; [`PayloadSpan::of`] or [`Reply::udp_payload`]
        /// borrows it from them.
        payload: PayloadSpan,
    },
    /// An SCTP packet, read up to its first chunk: for an INIT scan an
    /// INIT ACK (open) or an ABORT (closed), for a COOKIE ECHO scan an
    /// ABORT (closed). Later chunks are not read.
    Sctp {
        /// The sender: the scanned host.
        src: IpAddr,
        /// The receiver: our address.
        dst: IpAddr,
        /// IPv4 TTL or IPv6 hop limit as received.
        ttl: u8,
        /// The sender's port: the scanned port.
        src_port: u16,
        /// Our port.
        dst_port: u16,
        /// The verification tag. Answering our probes it is our cookie: the
        /// INIT's Initiate Tag echoed by an INIT ACK or an ABORT (T bit
        /// clear), or the COOKIE ECHO's own tag reflected by an ABORT (T
        /// bit set).
        vtag: u32,
        /// The first chunk.
        chunk: SctpChunk,
    },
    /// An ICMP Destination Unreachable or Time Exceeded (types 3 and 11),
    /// or an ICMPv6 Destination Unreachable or Time Exceeded (types 1 and
    /// 3) or Parameter Problem with code 1 (unrecognized Next Header: the
    /// protocol is not spoken, as ICMP protocol unreachable), with the
    /// packet it quotes.
    IcmpError {
        /// The sender of the error: a router, a firewall or the target.
        from: IpAddr,
        /// IPv4 TTL or IPv6 hop limit of the error as received.
        ttl: u8,
        /// True for ICMPv6.
        v6: bool,
        /// The ICMP or ICMPv6 type ([`icmp::v4`], [`icmp::v6`]).
        icmp_type: u8,
        /// The code.
        code: u8,
        /// The start of the packet that caused the error.
        quoted: Quoted,
    },
    /// A well-formed packet of another kind: another protocol, another ICMP
    /// type, or a fragment other than the first.
    Other,
}

/// Where a payload lies in the bytes a [`Reply`] was parsed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PayloadSpan {
    /// Its first byte's offset from the start of the packet (the IP
    /// header).
    pub offset: usize,
    /// Its length in bytes.
    pub len: usize,
}

impl PayloadSpan {
    /// The payload, borrowed from `packet`, the bytes the reply was parsed
    /// from; empty if they are too short (other bytes than those parsed).
    #[must_use]
    pub fn of(self, packet: &[u8]) -> &[u8] {
        packet
            .get(self.offset..)
            .and_then(|rest| rest.get(..self.len))
            .unwrap_or(&[])
    }
}

impl Reply {
    /// For [`Reply::Udp`], the payload borrowed from `packet`, the bytes
    /// the reply was parsed from; `None` for the other kinds.
    #[must_use]
    pub fn udp_payload<'a>(&self, packet: &'a [u8]) -> Option<&'a [u8]> {
        match self {
            Reply::Udp { payload, .. } => Some(payload.of(packet)),
            _ => None,
        }
    }
}

/// The start of the packet an ICMP error quotes: for us, one of our probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quoted {
    /// Its source: our address.
    pub src: IpAddr,
    /// Its destination: the scanned host.
    pub dst: IpAddr,
    /// Its protocol (after any IPv6 extension headers).
    pub protocol: u8,
    /// The first 2 bytes of its transport header: the source port for TCP,
    /// UDP and SCTP.
    pub src_port: u16,
    /// The next 2 bytes: the destination port for TCP, UDP and SCTP.
    pub dst_port: u16,
    /// The TCP sequence number, if the protocol is TCP and 8 bytes of its
    /// header are quoted.
    pub seq: Option<u32>,
    /// The SCTP verification tag, if the protocol is SCTP and 8 bytes of
    /// its common header are quoted: our cookie for a COOKIE ECHO probe,
    /// 0 for an INIT (whose cookie lies in the chunk, past the 8 bytes a
    /// quote must hold; see [`Quoted::sctp_initiate_tag`]).
    pub vtag: Option<u32>,
    /// The quoted SCTP INIT chunk's Initiate Tag (our cookie), if the
    /// protocol is SCTP, the first chunk is an INIT and its tag is quoted
    /// (20 bytes of SCTP: routers that quote only 8 leave it out).
    pub sctp_initiate_tag: Option<u32>,
    /// The identifier and sequence number (our cookie) of a quoted ICMP or
    /// ICMPv6 echo request, if that is what is quoted, 8 bytes of it.
    pub echo_cookie: Option<u32>,
}

impl Quoted {
    /// The cookie an SCTP probe carried, as far as the quote shows it: an
    /// INIT's Initiate Tag, else the verification tag (a COOKIE ECHO's).
    /// `None` for other protocols or a quote too short to hold it.
    #[must_use]
    pub fn sctp_cookie(&self) -> Option<u32> {
        self.sctp_initiate_tag.or(self.vtag.filter(|&tag| tag != 0))
    }
}

/// Reads a received packet starting at its IP header (version 4 or 6, from
/// the first nibble). Bytes past the IP length (link-layer padding) are
/// ignored.
///
/// # Errors
/// [`WireError::Truncated`] or [`WireError::BadLength`] when a header the
/// parser needs is cut short or declares an impossible length,
/// [`WireError::BadVersion`] when the version is neither 4 nor 6 or an ICMP
/// error quotes a packet of the other version.
pub fn parse_reply(packet: &[u8]) -> Result<Reply, WireError> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => parse_ipv4(packet),
        Some(6) => parse_ipv6(packet),
        Some(version) => Err(WireError::BadVersion { version }),
        None => Err(WireError::Truncated {
            header: Header::Ip,
            needed: 1,
            available: 0,
        }),
    }
}

fn parse_ipv4(packet: &[u8]) -> Result<Reply, WireError> {
    let ip = Ipv4Packet::new_checked(packet)?;
    if ip.frag_offset() != 0 {
        return Ok(Reply::Other);
    }
    let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
    match ip.protocol() {
        ip_protocol::TCP => {
            let from_ip = IpFields {
                ttl: ip.ttl(),
                ip_id: Some(ip.ident()),
                dont_fragment: Some(ip.dont_frag()),
                at: ip.header_len(),
            };
            parse_tcp(src, dst, from_ip, ip.payload())
        }
        ip_protocol::UDP => parse_udp(src, dst, ip.ttl(), ip.header_len(), ip.payload()),
        ip_protocol::SCTP => parse_sctp(src, dst, ip.ttl(), ip.payload()),
        ip_protocol::ICMP => {
            let msg = IcmpPacket::new_checked(ip.payload())?;
            match msg.msg_type() {
                icmp::v4::DEST_UNREACHABLE | icmp::v4::TIME_EXCEEDED => {
                    let quote = Ipv4Packet::new_truncated(msg.payload())?;
                    if quote.frag_offset() != 0 {
                        return Ok(Reply::Other);
                    }
                    let quoted = quoted_transport(
                        IpAddr::V4(quote.src_addr()),
                        IpAddr::V4(quote.dst_addr()),
                        quote.protocol(),
                        quote.payload(),
                    )?;
                    Ok(icmp_error(src, ip.ttl(), false, &msg, quoted))
                }
                _ => Ok(Reply::Other),
            }
        }
        _ => Ok(Reply::Other),
    }
}

fn parse_ipv6(packet: &[u8]) -> Result<Reply, WireError> {
    let ip = Ipv6Packet::new_checked(packet)?;
    let Some((protocol, payload)) = ip.upper_layer()? else {
        return Ok(Reply::Other);
    };
    let (src, dst) = (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()));
    match protocol {
        ip_protocol::TCP => {
            // `payload` is a tail of the IP payload, after any extension
            // headers.
            let at =
                ipv6::HEADER_LEN.saturating_add(ip.payload().len().saturating_sub(payload.len()));
            let from_ip = IpFields {
                ttl: ip.hop_limit(),
                ip_id: None,
                dont_fragment: None,
                at,
            };
            parse_tcp(src, dst, from_ip, payload)
        }
        ip_protocol::UDP => {
            // `payload` is a tail of the IP payload, after any extension
            // headers.
            let at =
                ipv6::HEADER_LEN.saturating_add(ip.payload().len().saturating_sub(payload.len()));
            parse_udp(src, dst, ip.hop_limit(), at, payload)
        }
        ip_protocol::SCTP => parse_sctp(src, dst, ip.hop_limit(), payload),
        ip_protocol::ICMPV6 => {
            let msg = IcmpPacket::new_checked(payload)?;
            match msg.msg_type() {
                icmp::v6::DEST_UNREACHABLE | icmp::v6::TIME_EXCEEDED => {
                    icmpv6_error(src, ip.hop_limit(), &msg)
                }
                icmp::v6::PARAMETER_PROBLEM
                    if msg.code() == icmp::v6::parameter_problem::UNRECOGNIZED_NEXT_HEADER =>
                {
                    icmpv6_error(src, ip.hop_limit(), &msg)
                }
                _ => Ok(Reply::Other),
            }
        }
        _ => Ok(Reply::Other),
    }
}

/// An ICMPv6 error from `from` with the packet it quotes.
fn icmpv6_error(from: IpAddr, ttl: u8, msg: &IcmpPacket<'_>) -> Result<Reply, WireError> {
    let quote = Ipv6Packet::new_truncated(msg.payload())?;
    let Some((protocol, transport)) = quote.upper_layer()? else {
        return Ok(Reply::Other);
    };
    let quoted = quoted_transport(
        IpAddr::V6(quote.src_addr()),
        IpAddr::V6(quote.dst_addr()),
        protocol,
        transport,
    )?;
    Ok(icmp_error(from, ttl, true, msg, quoted))
}

/// What a TCP reply keeps of its IP header, and where the segment starts.
struct IpFields {
    ttl: u8,
    ip_id: Option<u16>,
    dont_fragment: Option<bool>,
    /// The segment's offset from the start of the packet.
    at: usize,
}

fn parse_tcp(src: IpAddr, dst: IpAddr, ip: IpFields, segment: &[u8]) -> Result<Reply, WireError> {
    let tcp = TcpPacket::new_checked(segment)?;
    Ok(Reply::Tcp {
        src,
        dst,
        ttl: ip.ttl,
        src_port: tcp.src_port(),
        dst_port: tcp.dst_port(),
        seq: tcp.seq_number(),
        ack: tcp.ack_number(),
        flags: tcp.flags(),
        window: tcp.window_len(),
        ip_id: ip.ip_id,
        dont_fragment: ip.dont_fragment,
        options: PayloadSpan {
            offset: ip.at.saturating_add(crate::tcp::HEADER_LEN),
            len: tcp.options().len(),
        },
    })
}

/// A UDP datagram that starts `at` bytes into the packet.
fn parse_udp(
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    at: usize,
    datagram: &[u8],
) -> Result<Reply, WireError> {
    let udp = UdpPacket::new_checked(datagram)?;
    Ok(Reply::Udp {
        src,
        dst,
        ttl,
        src_port: udp.src_port(),
        dst_port: udp.dst_port(),
        payload: PayloadSpan {
            offset: at.saturating_add(crate::udp::HEADER_LEN),
            len: udp.payload().len(),
        },
    })
}

fn parse_sctp(src: IpAddr, dst: IpAddr, ttl: u8, packet: &[u8]) -> Result<Reply, WireError> {
    let sctp = SctpPacket::new_checked(packet)?;
    Ok(Reply::Sctp {
        src,
        dst,
        ttl,
        src_port: sctp.src_port(),
        dst_port: sctp.dst_port(),
        vtag: sctp.verification_tag(),
        chunk: SctpChunk::of(&sctp)?,
    })
}

/// The ports and, for TCP, the sequence number, for SCTP the verification
/// tag and an INIT's Initiate Tag, of a quoted transport header, of which
/// at least 4 bytes must be present.
fn quoted_transport(
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    transport: &[u8],
) -> Result<Quoted, WireError> {
    const PORTS_LEN: usize = 4;
    const TCP_SEQ_END: usize = 8;
    if transport.len() < PORTS_LEN {
        return Err(WireError::Truncated {
            header: Header::QuotedTransport,
            needed: PORTS_LEN,
            available: transport.len(),
        });
    }
    const SCTP_INITIATE_TAG_END: usize = 20;
    let seq = (protocol == ip_protocol::TCP && transport.len() >= TCP_SEQ_END)
        .then(|| be32(transport, 4));
    let sctp = protocol == ip_protocol::SCTP;
    let vtag = (sctp && transport.len() >= TCP_SEQ_END).then(|| be32(transport, 4));
    let echo = match protocol {
        ip_protocol::ICMP => crate::icmp::v4::ECHO_REQUEST,
        ip_protocol::ICMPV6 => crate::icmp::v6::ECHO_REQUEST,
        _ => 0,
    };
    let echo_cookie =
        (echo != 0 && transport.len() >= TCP_SEQ_END && crate::bytes::u8_at(transport, 0) == echo)
            .then(|| be32(transport, 4));
    let sctp_initiate_tag = (sctp
        && transport.len() >= SCTP_INITIATE_TAG_END
        && crate::bytes::u8_at(transport, 12) == crate::sctp::chunk::INIT)
        .then(|| be32(transport, 16));
    Ok(Quoted {
        src,
        dst,
        protocol,
        src_port: be16(transport, 0),
        dst_port: be16(transport, 2),
        seq,
        vtag,
        sctp_initiate_tag,
        echo_cookie,
    })
}

fn icmp_error(from: IpAddr, ttl: u8, v6: bool, msg: &IcmpPacket<'_>, quoted: Quoted) -> Reply {
    Reply::IcmpError {
        from,
        ttl,
        v6,
        icmp_type: msg.msg_type(),
        code: msg.code(),
        quoted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_packets::*;
    use proptest::prelude::*;

    const ALL: [&[u8]; 23] = [
        &SCTP_INIT_V4,
        &SCTP_COOKIE_ECHO_V6,
        &SCTP_INIT_ACK_V4,
        &SCTP_ABORT_V4,
        &SCTP_ABORT_V6,
        &SCTP_PROTOCOL_UNREACHABLE_V4,
        &SCTP_ADMIN_PROHIBITED_V6,
        &UDP_PROBE_V4,
        &UDP_PROBE_V6,
        &UDP_REPLY_V4,
        &UDP_REPLY_V6,
        &PORT_UNREACHABLE_V4,
        &PORT_UNREACHABLE_V6,
        &SYN_V4,
        &SYN_V6,
        &SYN_ACK_V4,
        &RST_V4,
        &ICMP_ADMIN_PROHIBITED_V4,
        &TIME_EXCEEDED_V4,
        &SYN_ACK_V6,
        &RST_V6,
        &ICMP_ADMIN_PROHIBITED_V6,
        &SYN_ACK_V6_EXTENSIONS,
    ];

    /// The IP ID and DF bit of an IPv4 fixture (both zero and set), or
    /// none over IPv6; the TCP header's offset in the packet.
    fn ip_of(src: IpAddr, tcp_at: usize) -> (Option<u16>, Option<bool>, usize) {
        match src {
            IpAddr::V4(_) => (Some(0), Some(true), tcp_at),
            IpAddr::V6(_) => (None, None, tcp_at),
        }
    }

    /// The fixtures' SYN-ACK, its TCP header `tcp_at` bytes in, with an
    /// MSS option.
    fn syn_ack(src: IpAddr, dst: IpAddr, tcp_at: usize) -> Reply {
        let (ip_id, dont_fragment, at) = ip_of(src, tcp_at);
        Reply::Tcp {
            src,
            dst,
            ttl: 64,
            src_port: 22,
            dst_port: 40000,
            seq: 0x8f3a_2c11,
            ack: 0x1234_5679,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: 64240,
            ip_id,
            dont_fragment,
            options: PayloadSpan {
                offset: at + 20,
                len: 4,
            },
        }
    }

    fn rst(src: IpAddr, dst: IpAddr, tcp_at: usize) -> Reply {
        let (ip_id, dont_fragment, at) = ip_of(src, tcp_at);
        Reply::Tcp {
            src,
            dst,
            ttl: 64,
            src_port: 81,
            dst_port: 40000,
            seq: 0,
            ack: 0x1234_5679,
            flags: TcpFlags::RST | TcpFlags::ACK,
            window: 0,
            ip_id,
            dont_fragment,
            options: PayloadSpan {
                offset: at + 20,
                len: 0,
            },
        }
    }

    fn our_syn(src: IpAddr, dst: IpAddr) -> Quoted {
        Quoted {
            src,
            dst,
            protocol: ip_protocol::TCP,
            src_port: 40000,
            dst_port: 443,
            seq: Some(0x1234_5678),
            vtag: None,
            sctp_initiate_tag: None,
            echo_cookie: None,
        }
    }

    #[test]
    fn test_deconstruct() {
        let (us, them) = (v4("198.18.0.1"), v4("198.18.0.2"));
        assert_eq!(parse_reply(&SYN_ACK_V4), Ok(syn_ack(them, us, 20)));
        assert_eq!(parse_reply(&RST_V4), Ok(rst(them, us, 20)));
        // The options, in the order sent: the SYN-ACK's MSS.
        let Ok(Reply::Tcp { options, .. }) = parse_reply(&SYN_ACK_V4) else {
            panic!("a TCP reply");
        };
        assert_eq!(options.of(&SYN_ACK_V4)[..2], [2, 4]);
        assert_eq!(
            parse_reply(&ICMP_ADMIN_PROHIBITED_V4),
            Ok(Reply::IcmpError {
                from: v4("198.18.0.254"),
                ttl: 63,
                v6: false,
                icmp_type: icmp::v4::DEST_UNREACHABLE,
                code: icmp::v4::unreachable::ADMIN_PROHIBITED,
                quoted: our_syn(us, them),
            })
        );
        assert_eq!(
            parse_reply(&TIME_EXCEEDED_V4),
            Ok(Reply::IcmpError {
                from: v4("198.18.7.1"),
                ttl: 254,
                v6: false,
                icmp_type: icmp::v4::TIME_EXCEEDED,
                code: 0,
                quoted: our_syn(us, them),
            })
        );

        let (us, them) = (v6("fd00::1"), v6("fd00::2"));
        assert_eq!(parse_reply(&SYN_ACK_V6), Ok(syn_ack(them, us, 40)));
        assert_eq!(
            parse_reply(&SYN_ACK_V6_EXTENSIONS),
            Ok(syn_ack(them, us, 72))
        );
        assert_eq!(parse_reply(&RST_V6), Ok(rst(them, us, 40)));
        let Ok(Reply::Tcp { options, .. }) = parse_reply(&SYN_ACK_V6_EXTENSIONS) else {
            panic!("a TCP reply");
        };
        assert_eq!(options.of(&SYN_ACK_V6_EXTENSIONS)[..2], [2, 4]);
        assert_eq!(
            parse_reply(&ICMP_ADMIN_PROHIBITED_V6),
            Ok(Reply::IcmpError {
                from: v6("fd00::fe"),
                ttl: 63,
                v6: true,
                icmp_type: icmp::v6::DEST_UNREACHABLE,
                code: icmp::v6::unreachable::ADMIN_PROHIBITED,
                quoted: our_syn(us, them),
            })
        );
    }

    /// `outer` (an IPv4 ICMP error) with its quote cut to `quote_len`
    /// bytes and the total length fixed up.
    fn shorten_v4_quote(outer: &[u8], quote_len: usize) -> Vec<u8> {
        let mut p = outer[..28 + quote_len].to_vec();
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p
    }

    /// The same for an IPv6 ICMPv6 error.
    fn shorten_v6_quote(outer: &[u8], quote_len: usize) -> Vec<u8> {
        let mut p = outer[..48 + quote_len].to_vec();
        let payload = (8 + quote_len) as u16;
        p[4..6].copy_from_slice(&payload.to_be_bytes());
        p
    }

    #[test]
    fn test_lax_quote() {
        // 4 bytes of TCP: ports but no sequence number.
        let p = shorten_v4_quote(&ICMP_ADMIN_PROHIBITED_V4, 24);
        let Ok(Reply::IcmpError { quoted, .. }) = parse_reply(&p) else {
            panic!("{:?}", parse_reply(&p));
        };
        assert_eq!(quoted.seq, None);
        assert_eq!((quoted.src_port, quoted.dst_port), (40000, 443));
        // Fewer than 4: an error naming the quoted transport header.
        for len in 0..24 {
            let p = shorten_v4_quote(&ICMP_ADMIN_PROHIBITED_V4, len);
            let err = parse_reply(&p).unwrap_err();
            let expected = if len < 20 {
                WireError::Truncated {
                    header: Header::Ipv4,
                    needed: 20,
                    available: len,
                }
            } else {
                WireError::Truncated {
                    header: Header::QuotedTransport,
                    needed: 4,
                    available: len - 20,
                }
            };
            assert_eq!(err, expected, "quote of {len} bytes");
        }
        // IPv6: 40 + 8 is enough for the sequence number, 40 + 4 for ports.
        let p = shorten_v6_quote(&ICMP_ADMIN_PROHIBITED_V6, 48);
        let Ok(Reply::IcmpError { quoted, .. }) = parse_reply(&p) else {
            panic!();
        };
        assert_eq!(quoted.seq, Some(0x1234_5678));
        let p = shorten_v6_quote(&ICMP_ADMIN_PROHIBITED_V6, 44);
        let Ok(Reply::IcmpError { quoted, .. }) = parse_reply(&p) else {
            panic!();
        };
        assert_eq!(quoted.seq, None);
        let p = shorten_v6_quote(&ICMP_ADMIN_PROHIBITED_V6, 43);
        assert!(parse_reply(&p).is_err());
    }

    #[test]
    fn test_quote_length_fields_ignored() {
        // A quoted total length of 0 (some stacks rewrite it) is accepted.
        let mut p = ICMP_ADMIN_PROHIBITED_V4;
        p[28 + 2..28 + 4].fill(0);
        assert!(matches!(parse_reply(&p), Ok(Reply::IcmpError { .. })));
    }

    #[test]
    fn test_truncated() {
        for packet in ALL {
            for len in 0..packet.len() {
                assert!(
                    parse_reply(&packet[..len]).is_err(),
                    "a {len}-byte prefix of a {}-byte packet parsed",
                    packet.len()
                );
            }
            // Link-layer padding changes nothing.
            let mut padded = packet.to_vec();
            padded.extend_from_slice(&[0; 18]);
            assert_eq!(parse_reply(&padded), parse_reply(packet));
        }
        assert_eq!(
            parse_reply(&[]),
            Err(WireError::Truncated {
                header: Header::Ip,
                needed: 1,
                available: 0
            })
        );
    }

    #[test]
    fn test_impossible_len() {
        // TCP data offset 3.
        let mut p = SYN_ACK_V4;
        p[32] = 0x30;
        assert_eq!(
            parse_reply(&p),
            Err(WireError::BadLength {
                header: Header::Tcp,
                value: 12
            })
        );
        // A quoted IHL of 2.
        let mut p = ICMP_ADMIN_PROHIBITED_V4;
        p[28] = 0x42;
        assert_eq!(
            parse_reply(&p),
            Err(WireError::BadLength {
                header: Header::Ipv4,
                value: 8
            })
        );
        // A quoted IHL of 15 in a 28-byte quote.
        p[28] = 0x4f;
        assert_eq!(
            parse_reply(&p),
            Err(WireError::Truncated {
                header: Header::Ipv4,
                needed: 60,
                available: 28
            })
        );
        // An outer total length shorter than the header.
        let mut p = RST_V4;
        p[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(
            parse_reply(&p),
            Err(WireError::BadLength {
                header: Header::Ipv4,
                value: 10
            })
        );
    }

    #[test]
    fn test_bad_versions() {
        let mut p = SYN_ACK_V4;
        p[0] = 0x55;
        assert_eq!(parse_reply(&p), Err(WireError::BadVersion { version: 5 }));
        // An ICMPv4 error quoting an "IPv6" packet.
        let mut p = ICMP_ADMIN_PROHIBITED_V4;
        p[28] = 0x65;
        assert_eq!(parse_reply(&p), Err(WireError::BadVersion { version: 6 }));
        let mut p = ICMP_ADMIN_PROHIBITED_V6;
        p[48] = 0x45;
        assert_eq!(parse_reply(&p), Err(WireError::BadVersion { version: 4 }));
    }

    #[test]
    fn test_other() {
        // An echo reply.
        let mut p = ICMP_ADMIN_PROHIBITED_V4;
        p[20] = icmp::v4::ECHO_REPLY;
        assert_eq!(parse_reply(&p), Ok(Reply::Other));
        let mut p = ICMP_ADMIN_PROHIBITED_V6;
        p[40] = icmp::v6::ECHO_REPLY;
        assert_eq!(parse_reply(&p), Ok(Reply::Other));
        // Another protocol (UDP-Lite).
        let mut p = RST_V4;
        p[9] = 136;
        assert_eq!(parse_reply(&p), Ok(Reply::Other));
        let mut p = SYN_ACK_V6;
        p[6] = ip_protocol::NO_NEXT_HEADER;
        assert_eq!(parse_reply(&p), Ok(Reply::Other));
        // A later IPv4 fragment: its payload is not a TCP header.
        let mut p = SYN_ACK_V4;
        p[6..8].copy_from_slice(&0x0001u16.to_be_bytes());
        assert_eq!(parse_reply(&p), Ok(Reply::Other));
        // A later IPv6 fragment.
        let mut p = SYN_ACK_V6_EXTENSIONS;
        p[66..68].copy_from_slice(&0x0008u16.to_be_bytes());
        assert_eq!(parse_reply(&p), Ok(Reply::Other));
        // A quote of a later fragment.
        let mut p = ICMP_ADMIN_PROHIBITED_V4;
        p[28 + 6..28 + 8].copy_from_slice(&0x0001u16.to_be_bytes());
        assert_eq!(parse_reply(&p), Ok(Reply::Other));
    }

    #[test]
    fn test_quoted_udp() {
        // A port unreachable quoting a UDP probe: ports, no sequence number.
        let mut p = ICMP_ADMIN_PROHIBITED_V4;
        p[21] = icmp::v4::unreachable::PORT;
        p[28 + 9] = ip_protocol::UDP;
        let Ok(Reply::IcmpError { code, quoted, .. }) = parse_reply(&p) else {
            panic!();
        };
        assert_eq!(code, 3);
        assert_eq!(quoted.protocol, ip_protocol::UDP);
        assert_eq!(quoted.seq, None);
        assert_eq!(quoted.dst_port, 443);
    }

    #[test]
    fn test_icmpv6_quote_with_extension_headers() {
        // An ICMPv6 error quoting SYN_ACK_V6_EXTENSIONS: the walk skips the
        // quoted extension headers too.
        let mut p = ICMP_ADMIN_PROHIBITED_V6[..48].to_vec();
        p.extend_from_slice(&SYN_ACK_V6_EXTENSIONS);
        let payload = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&payload.to_be_bytes());
        let Ok(Reply::IcmpError { quoted, .. }) = parse_reply(&p) else {
            panic!("{:?}", parse_reply(&p));
        };
        assert_eq!(quoted.protocol, ip_protocol::TCP);
        assert_eq!((quoted.src_port, quoted.dst_port), (22, 40000));
        assert_eq!(quoted.seq, Some(0x8f3a_2c11));
        // Cut inside the quoted destination options header.
        let cut = shorten_v6_quote(&p, 40 + 8 + 4);
        assert_eq!(
            parse_reply(&cut),
            Err(WireError::Truncated {
                header: Header::Ipv6Extension,
                needed: 16,
                available: 4
            })
        );
    }

    #[test]
    fn test_udp_reply() {
        let dns_answer = |src, dst, offset| Reply::Udp {
            src,
            dst,
            ttl: 64,
            src_port: 53,
            dst_port: 40000,
            payload: PayloadSpan { offset, len: 17 },
        };
        let (us, them) = (v4("198.18.0.1"), v4("198.18.0.2"));
        let r = parse_reply(&UDP_REPLY_V4).unwrap();
        assert_eq!(r, dns_answer(them, us, 28));
        assert_eq!(r.udp_payload(&UDP_REPLY_V4), Some(&UDP_REPLY_V4[28..]));
        assert_eq!(r.udp_payload(&UDP_REPLY_V4[..30]), Some(&[][..]));
        let (us, them) = (v6("fd00::1"), v6("fd00::2"));
        let r = parse_reply(&UDP_REPLY_V6).unwrap();
        assert_eq!(r, dns_answer(them, us, 48));
        assert_eq!(r.udp_payload(&UDP_REPLY_V6), Some(&UDP_REPLY_V6[48..]));
        assert_eq!(parse_reply(&RST_V6).unwrap().udp_payload(&RST_V6), None);

        // Behind IPv6 extension headers: the span counts them.
        let mut p = SYN_ACK_V6_EXTENSIONS[..72].to_vec();
        p[64] = ip_protocol::UDP;
        p.extend_from_slice(&UDP_REPLY_V6[40..]);
        let payload = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&payload.to_be_bytes());
        let r = parse_reply(&p).unwrap();
        assert_eq!(r, dns_answer(them, us, 80));
        assert_eq!(r.udp_payload(&p), Some(&UDP_REPLY_V6[48..]));

        // A UDP Length shorter than the IP payload bounds the payload;
        // below 8 or past the IP payload, it is an error.
        let mut p = UDP_REPLY_V4;
        p[24..26].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(
            parse_reply(&p).unwrap().udp_payload(&p),
            Some(&[0x12, 0x34][..])
        );
        p[24..26].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(
            parse_reply(&p),
            Err(WireError::BadLength {
                header: Header::Udp,
                value: 4
            })
        );
        p[24..26].copy_from_slice(&26u16.to_be_bytes());
        assert_eq!(
            parse_reply(&p),
            Err(WireError::Truncated {
                header: Header::Udp,
                needed: 26,
                available: 25
            })
        );
    }

    #[test]
    fn test_port_unreachable_quotes_udp() {
        let our_probe = |src, dst| Quoted {
            src,
            dst,
            protocol: ip_protocol::UDP,
            src_port: 40000,
            dst_port: 53,
            seq: None,
            vtag: None,
            sctp_initiate_tag: None,
            echo_cookie: None,
        };
        let (us, them) = (v4("198.18.0.1"), v4("198.18.0.2"));
        assert_eq!(
            parse_reply(&PORT_UNREACHABLE_V4),
            Ok(Reply::IcmpError {
                from: them,
                ttl: 64,
                v6: false,
                icmp_type: icmp::v4::DEST_UNREACHABLE,
                code: icmp::v4::unreachable::PORT,
                quoted: our_probe(us, them),
            })
        );
        let (us, them) = (v6("fd00::1"), v6("fd00::2"));
        assert_eq!(
            parse_reply(&PORT_UNREACHABLE_V6),
            Ok(Reply::IcmpError {
                from: them,
                ttl: 64,
                v6: true,
                icmp_type: icmp::v6::DEST_UNREACHABLE,
                code: icmp::v6::unreachable::PORT,
                quoted: our_probe(us, them),
            })
        );
        // The quote needs only the ports: 4 bytes of UDP header.
        let p = shorten_v4_quote(&PORT_UNREACHABLE_V4, 24);
        assert!(matches!(
            parse_reply(&p),
            Ok(Reply::IcmpError { quoted, .. }) if quoted == our_probe(v4("198.18.0.1"), v4("198.18.0.2"))
        ));
        let p = shorten_v6_quote(&PORT_UNREACHABLE_V6, 44);
        assert!(matches!(
            parse_reply(&p),
            Ok(Reply::IcmpError { quoted, .. }) if quoted == our_probe(us, them)
        ));
    }

    #[test]
    fn test_sctp_replies() {
        let reply = |src, dst, src_port, chunk| Reply::Sctp {
            src,
            dst,
            ttl: 64,
            src_port,
            dst_port: 40000,
            vtag: 0x1234_5678,
            chunk,
        };
        let (us, them) = (v4("198.18.0.1"), v4("198.18.0.2"));
        let init_ack = SctpChunk::InitAck {
            initiate_tag: 0xcafe_f00d,
        };
        assert_eq!(
            parse_reply(&SCTP_INIT_ACK_V4),
            Ok(reply(them, us, 80, init_ack))
        );
        let abort = SctpChunk::Abort { reflected: false };
        assert_eq!(parse_reply(&SCTP_ABORT_V4), Ok(reply(them, us, 81, abort)));
        let (us, them) = (v6("fd00::1"), v6("fd00::2"));
        let abort = SctpChunk::Abort { reflected: true };
        assert_eq!(parse_reply(&SCTP_ABORT_V6), Ok(reply(them, us, 80, abort)));
        // SHUTDOWN ACK, and another chunk type.
        let mut p = SCTP_ABORT_V6;
        p[52] = crate::sctp::chunk::SHUTDOWN_ACK;
        assert!(matches!(
            parse_reply(&p),
            Ok(Reply::Sctp {
                chunk: SctpChunk::ShutdownAck,
                ..
            })
        ));
        p[52] = 14;
        assert!(matches!(
            parse_reply(&p),
            Ok(Reply::Sctp {
                chunk: SctpChunk::Other { chunk_type: 14 },
                ..
            })
        ));
        // A chunk length past the packet, or below 4.
        let mut p = SCTP_ABORT_V4;
        p[34..36].copy_from_slice(&5u16.to_be_bytes());
        assert_eq!(
            parse_reply(&p),
            Err(WireError::Truncated {
                header: Header::Sctp,
                needed: 17,
                available: 16
            })
        );
        p[34..36].copy_from_slice(&2u16.to_be_bytes());
        assert_eq!(
            parse_reply(&p),
            Err(WireError::BadLength {
                header: Header::Sctp,
                value: 2
            })
        );
    }

    #[test]
    fn test_icmp_quoting_sctp() {
        let probe = |src, dst, vtag, sctp_initiate_tag| Quoted {
            src,
            dst,
            protocol: ip_protocol::SCTP,
            src_port: 40000,
            dst_port: 80,
            seq: None,
            vtag: Some(vtag),
            sctp_initiate_tag,
            echo_cookie: None,
        };
        let (us, them) = (v4("198.18.0.1"), v4("198.18.0.2"));
        let init = probe(us, them, 0, Some(0x1234_5678));
        assert_eq!(
            parse_reply(&SCTP_PROTOCOL_UNREACHABLE_V4),
            Ok(Reply::IcmpError {
                from: them,
                ttl: 64,
                v6: false,
                icmp_type: icmp::v4::DEST_UNREACHABLE,
                code: icmp::v4::unreachable::PROTOCOL,
                quoted: init,
            })
        );
        assert_eq!(init.sctp_cookie(), Some(0x1234_5678));
        let (us, them) = (v6("fd00::1"), v6("fd00::2"));
        let echo = probe(us, them, 0x1234_5678, None);
        assert_eq!(
            parse_reply(&SCTP_ADMIN_PROHIBITED_V6),
            Ok(Reply::IcmpError {
                from: v6("fd00::fe"),
                ttl: 63,
                v6: true,
                icmp_type: icmp::v6::DEST_UNREACHABLE,
                code: icmp::v6::unreachable::ADMIN_PROHIBITED,
                quoted: echo,
            })
        );
        assert_eq!(echo.sctp_cookie(), Some(0x1234_5678));
        // Quotes cut short: 8 bytes of SCTP hold the tag, 20 an INIT's
        // Initiate Tag, 4 only the ports.
        let cut = |len: usize| {
            let p = shorten_v4_quote(&SCTP_PROTOCOL_UNREACHABLE_V4, 20 + len);
            match parse_reply(&p) {
                Ok(Reply::IcmpError { quoted, .. }) => quoted,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            (cut(20).vtag, cut(20).sctp_cookie()),
            (Some(0), Some(0x1234_5678))
        );
        assert_eq!((cut(19).vtag, cut(19).sctp_initiate_tag), (Some(0), None));
        assert_eq!(cut(19).sctp_cookie(), None);
        assert_eq!((cut(7).vtag, cut(4).dst_port), (None, 80));
        // A Parameter Problem, unrecognized Next Header (checksum not
        // verified): the host does not speak SCTP. Other codes are Other.
        let mut p = SCTP_ADMIN_PROHIBITED_V6;
        p[40..42].copy_from_slice(&[4, 1]);
        assert!(matches!(
            parse_reply(&p),
            Ok(Reply::IcmpError { icmp_type: 4, code: 1, quoted, .. }) if quoted == echo
        ));
        p[41] = 0;
        assert_eq!(parse_reply(&p), Ok(Reply::Other));
        let p = shorten_v6_quote(&SCTP_ADMIN_PROHIBITED_V6, 48);
        assert!(matches!(
            parse_reply(&p),
            Ok(Reply::IcmpError { quoted, .. }) if quoted.sctp_cookie() == Some(0x1234_5678)
        ));
    }

    /// A fixture with some bytes overwritten and the result cut short.
    fn mutated() -> impl Strategy<Value = Vec<u8>> {
        (
            0..ALL.len(),
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(which, edits, cut)| {
                let mut p = ALL[which].to_vec();
                for (at, value) in edits {
                    let i = at.index(p.len());
                    p[i] = value;
                }
                let len = cut.index(p.len() + 1);
                p.truncate(len);
                p
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn never_panics_on_arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..160),
        ) {
            let _ = parse_reply(&bytes);
        }

        #[test]
        fn never_panics_on_ip_shaped_bytes(
            version in prop_oneof![Just(0x45u8), Just(0x60u8), any::<u8>()],
            mut bytes in proptest::collection::vec(any::<u8>(), 0..160),
        ) {
            if let Some(b) = bytes.first_mut() {
                *b = version;
            }
            let _ = parse_reply(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_packets(p in mutated()) {
            let _ = parse_reply(&p);
        }

        #[test]
        fn udp_spans_stay_inside_the_packet(
            v6 in any::<bool>(),
            mut bytes in proptest::collection::vec(any::<u8>(), 0..120),
        ) {
            // A valid IP header carrying UDP, then hostile bytes: any
            // span parse_reply returns lies within the packet.
            let header: Vec<u8> = if v6 {
                let mut h = UDP_REPLY_V6[..40].to_vec();
                h[4..6].copy_from_slice(&(bytes.len() as u16).to_be_bytes());
                h
            } else {
                let mut h = UDP_REPLY_V4[..20].to_vec();
                h[2..4].copy_from_slice(&((20 + bytes.len()) as u16).to_be_bytes());
                h
            };
            let mut p = header;
            p.append(&mut bytes);
            if let Ok(Reply::Udp { payload, .. }) = parse_reply(&p) {
                prop_assert!(payload.offset + payload.len <= p.len());
                prop_assert_eq!(payload.of(&p).len(), payload.len);
            }
        }
    }
}
