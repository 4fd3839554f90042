//! SCTP: the CRC32c checksum ([`crc32c`]), a checked view of a packet's
//! common header and first chunk ([`SctpPacket`]), and the probe template
//! for the INIT scan (`-sY`) and the COOKIE ECHO scan (`-sZ`)
//! ([`SctpTemplate`]), built once per source address and stamped per probe
//! with the destination, the ports, the cookie and the IPv4 ID.
//!
//! Read first: RFC 9260 sections 3 (the common header and chunk layout),
//! 3.3.2 (INIT), 3.3.3 (INIT ACK), 3.3.7 (ABORT and its T bit), 3.3.11
//! (COOKIE ECHO), 6.8 and appendix A (CRC32c, and the byte order it is
//! carried in), 8.4 and 8.5.1 (how a host answers "out of the blue"
//! packets: the verification tag of an ABORT); RFC 3309 and RFC 3720
//! appendix B.4 (CRC32c test vectors).
//!
//! The probes:
//! - **INIT**: verification tag 0 (an INIT must carry 0), one INIT chunk
//!   without parameters whose Initiate Tag and Initial TSN are both the
//!   caller's 32-bit cookie. A listening port answers INIT ACK and a closed
//!   one ABORT; both carry our Initiate Tag as their verification tag, so
//!   a reply is ours when `vtag == cookie`. The cookie must not be 0: a
//!   peer silently discards an INIT whose Initiate Tag is 0 (RFC 9260
//!   section 3.3.2).
//! - **COOKIE ECHO**: the verification tag is the cookie, and the chunk
//!   carries an 8-byte State Cookie derived from it (random-looking, and
//!   never valid for the peer). A closed port answers ABORT with the T bit
//!   set, reflecting our verification tag (the cookie); a listening port
//!   discards the bad cookie silently (RFC 9260 section 5.1.5).
//!
//! SCTP has no pseudo-header: its checksum covers only the SCTP packet, so
//! [`SctpTemplate::stamp`] copies the prebuilt bytes, writes the per-probe
//! fields, computes the CRC32c over the 24 or 32 SCTP bytes, and finishes
//! the IPv4 header checksum from a precomputed sum.
//!
//! CRC32c is written here rather than taken from the `crc32c` crate, which
//! needs `std` for its run-time CPU feature detection: this crate is
//! `no_std` without `alloc`. The table is built at compile time (1 KiB);
//! a byte at a time is plenty for probes of at most 32 SCTP bytes.
//!
//! Contract: no panic (a short buffer or a destination of the wrong family
//! is an error, and nothing is written; any bytes may be viewed); no
//! allocation.

use core::net::IpAddr;

use crate::bytes::{be16, be32, put_bytes, put8, put16, put32, u8_at};
use crate::checksum::{self, fold};
use crate::error::{Header, StampError, WireError};
use crate::ip_protocol;
use crate::{ipv4, ipv6};

/// Offsets of the common header's fields (RFC 9260, section 3.1).
pub(crate) mod field {
    /// Source port.
    pub(crate) const SRC_PORT: usize = 0;
    /// Destination port.
    pub(crate) const DST_PORT: usize = 2;
    /// Verification tag.
    pub(crate) const VTAG: usize = 4;
    /// CRC32c checksum, carried least significant byte first.
    pub(crate) const CHECKSUM: usize = 8;
    /// The first chunk's type.
    pub(crate) const CHUNK_TYPE: usize = 12;
    /// The first chunk's flags.
    pub(crate) const CHUNK_FLAGS: usize = 13;
    /// The first chunk's length (header and value, without padding).
    pub(crate) const CHUNK_LEN: usize = 14;
    /// The first chunk's value: for INIT and INIT ACK, the Initiate Tag.
    pub(crate) const CHUNK_VALUE: usize = 16;
    /// INIT: Advertised Receiver Window Credit.
    pub(crate) const INIT_A_RWND: usize = 20;
    /// INIT: Number of Outbound Streams.
    pub(crate) const INIT_OUT_STREAMS: usize = 24;
    /// INIT: Number of Inbound Streams.
    pub(crate) const INIT_IN_STREAMS: usize = 26;
    /// INIT: Initial TSN.
    pub(crate) const INIT_TSN: usize = 28;
}

/// Chunk types this crate writes or reads (RFC 9260, section 3.2).
pub mod chunk {
    /// INIT: opens an association.
    pub const INIT: u8 = 1;
    /// INIT ACK: the answer of a listening port.
    pub const INIT_ACK: u8 = 2;
    /// ABORT: the answer of a closed port (or an aborted association).
    pub const ABORT: u8 = 6;
    /// SHUTDOWN ACK.
    pub const SHUTDOWN_ACK: u8 = 8;
    /// COOKIE ECHO: the third message of the handshake.
    pub const COOKIE_ECHO: u8 = 10;
    /// The ABORT flag "T": the verification tag is the one the packet
    /// answered carried (reflected), not the receiver's own.
    pub const FLAG_T: u8 = 0x01;
}

/// The length of the common header.
pub const HEADER_LEN: usize = 12;
/// The length of a chunk header (type, flags, length).
const CHUNK_HEADER_LEN: usize = 4;
/// The length of an INIT or INIT ACK chunk without parameters.
const INIT_CHUNK_LEN: usize = 20;
/// The length of the State Cookie a COOKIE ECHO probe carries.
const ECHO_COOKIE_LEN: usize = 8;

/// The CRC32c (Castagnoli) lookup table, one entry per byte value, for the
/// reflected polynomial 0x82F63B78.
#[allow(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: an index out of bounds fails the build"
)]
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The CRC32c of `data` (RFC 9260 appendix A; CRC-32/ISCSI): initial value
/// all ones, reflected, final complement. `crc32c(b"123456789")` is
/// `0xE306_9283`. An SCTP packet carries it in its checksum field least
/// significant byte first, computed with that field zeroed.
#[must_use]
pub fn crc32c(data: &[u8]) -> u32 {
    !crc32c_update(u32::MAX, data)
}

/// The CRC32c register after feeding `data` to it, before the final
/// complement: chains, so a packet can be fed in pieces.
fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        let index = usize::from((crc as u8) ^ b);
        crc = CRC32C_TABLE.get(index).copied().unwrap_or(0) ^ (crc >> 8);
    }
    crc
}

/// The value of the checksum field of `packet` (an SCTP packet, common
/// header first), as its bytes should read: the CRC32c with the field
/// taken as zero, least significant byte first.
fn checksum_bytes(packet: &[u8]) -> [u8; 4] {
    let (head, rest) = packet.split_at(field::CHECKSUM.min(packet.len()));
    let tail = rest.get(4..).unwrap_or(&[]);
    let crc = crc32c_update(crc32c_update(u32::MAX, head), &[0; 4]);
    (!crc32c_update(crc, tail)).to_le_bytes()
}

/// A validated SCTP common header and first chunk header over borrowed
/// bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SctpPacket<'a> {
    fixed: &'a [u8; HEADER_LEN + CHUNK_HEADER_LEN],
    packet: &'a [u8],
    first_chunk: &'a [u8],
}

impl<'a> SctpPacket<'a> {
    /// Validates an SCTP packet (as bounded by the IP layer): the common
    /// header and a first chunk whose Length is at least 4 and within
    /// `packet`. Later chunks are not read.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if `packet` ends before the 16 bytes of
    /// common and chunk header or before the first chunk's Length,
    /// [`WireError::BadLength`] for a chunk Length below 4.
    pub fn new_checked(packet: &'a [u8]) -> Result<Self, WireError> {
        const FIXED: usize = HEADER_LEN + CHUNK_HEADER_LEN;
        let Some(fixed) = packet.first_chunk::<FIXED>() else {
            return Err(WireError::Truncated {
                header: Header::Sctp,
                needed: FIXED,
                available: packet.len(),
            });
        };
        let chunk_len = usize::from(be16(fixed, field::CHUNK_LEN));
        if chunk_len < CHUNK_HEADER_LEN {
            return Err(WireError::BadLength {
                header: Header::Sctp,
                value: chunk_len,
            });
        }
        let end = HEADER_LEN.saturating_add(chunk_len);
        let Some(first_chunk) = packet.get(HEADER_LEN..end) else {
            return Err(WireError::Truncated {
                header: Header::Sctp,
                needed: end,
                available: packet.len(),
            });
        };
        Ok(Self {
            fixed,
            packet,
            first_chunk,
        })
    }

    /// The source port.
    #[must_use]
    pub fn src_port(&self) -> u16 {
        be16(self.fixed, field::SRC_PORT)
    }

    /// The destination port.
    #[must_use]
    pub fn dst_port(&self) -> u16 {
        be16(self.fixed, field::DST_PORT)
    }

    /// The verification tag.
    #[must_use]
    pub fn verification_tag(&self) -> u32 {
        be32(self.fixed, field::VTAG)
    }

    /// The checksum field as a CRC32c value (its bytes read least
    /// significant first).
    #[must_use]
    pub fn checksum(&self) -> u32 {
        u32::from_le_bytes(self.fixed_bytes::<4>(field::CHECKSUM))
    }

    /// Whether the checksum field holds the CRC32c of the whole packet.
    #[must_use]
    pub fn verify_checksum(&self) -> bool {
        checksum_bytes(self.packet) == self.fixed_bytes::<4>(field::CHECKSUM)
    }

    /// The first chunk's type ([`chunk`]).
    #[must_use]
    pub fn chunk_type(&self) -> u8 {
        u8_at(self.fixed, field::CHUNK_TYPE)
    }

    /// The first chunk's flags.
    #[must_use]
    pub fn chunk_flags(&self) -> u8 {
        u8_at(self.fixed, field::CHUNK_FLAGS)
    }

    /// The first chunk, header and value, up to its Length (no padding).
    #[must_use]
    pub fn first_chunk(&self) -> &'a [u8] {
        self.first_chunk
    }

    /// The first chunk's value, after its 4-byte header.
    #[must_use]
    pub fn chunk_value(&self) -> &'a [u8] {
        self.first_chunk.get(CHUNK_HEADER_LEN..).unwrap_or(&[])
    }

    fn fixed_bytes<const N: usize>(&self, at: usize) -> [u8; N] {
        self.fixed
            .get(at..)
            .and_then(<[u8]>::first_chunk::<N>)
            .copied()
            .unwrap_or([0; N])
    }
}

/// What the first chunk of an SCTP reply is, for the scanner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SctpChunk {
    /// INIT ACK: the port is open (INIT scan).
    InitAck {
        /// The peer's own Initiate Tag (its verification tag for what we
        /// would send next). Ours, the cookie, is the packet's `vtag`.
        initiate_tag: u32,
    },
    /// ABORT: the port is closed.
    Abort {
        /// The T bit: the packet's `vtag` is reflected from the packet it
        /// answers (set when answering our COOKIE ECHO), not the tag we
        /// announced in an INIT (clear when answering our INIT).
        reflected: bool,
    },
    /// SHUTDOWN ACK.
    ShutdownAck,
    /// Any other chunk type.
    Other {
        /// The chunk type.
        chunk_type: u8,
    },
}

impl SctpChunk {
    /// Reads the first chunk of a validated packet.
    ///
    /// # Errors
    /// [`WireError::BadLength`] for an INIT ACK chunk shorter than its 20
    /// fixed bytes.
    pub fn of(packet: &SctpPacket<'_>) -> Result<Self, WireError> {
        Ok(match packet.chunk_type() {
            chunk::INIT_ACK => {
                let len = packet.first_chunk().len();
                if len < INIT_CHUNK_LEN {
                    return Err(WireError::BadLength {
                        header: Header::Sctp,
                        value: len,
                    });
                }
                SctpChunk::InitAck {
                    initiate_tag: be32(packet.chunk_value(), 0),
                }
            }
            chunk::ABORT => SctpChunk::Abort {
                reflected: packet.chunk_flags() & chunk::FLAG_T != 0,
            },
            chunk::SHUTDOWN_ACK => SctpChunk::ShutdownAck,
            chunk_type => SctpChunk::Other { chunk_type },
        })
    }
}

/// Which probe an [`SctpTemplate`] stamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SctpProbe {
    /// An INIT chunk (`-sY`): INIT ACK = open, ABORT = closed.
    Init,
    /// A COOKIE ECHO chunk (`-sZ`): ABORT = closed, silence =
    /// open|filtered.
    CookieEcho,
}

impl SctpProbe {
    /// The SCTP bytes of this probe: common header and chunk.
    const fn sctp_len(self) -> usize {
        match self {
            SctpProbe::Init => HEADER_LEN + INIT_CHUNK_LEN,
            SctpProbe::CookieEcho => HEADER_LEN + CHUNK_HEADER_LEN + ECHO_COOKIE_LEN,
        }
    }
}

/// What an INIT probe announces (RFC 9260, section 3.3.2): a receive
/// window and stream counts a real endpoint might send.
const INIT_A_RWND: u32 = 65_535;
const INIT_OUT_STREAMS: u16 = 10;
const INIT_IN_STREAMS: u16 = 2_048;

/// The longest probe: IPv6 and an INIT.
const MAX_LEN: usize = ipv6::HEADER_LEN + HEADER_LEN + INIT_CHUNK_LEN;

/// An SCTP probe prebuilt for one source address, IP version and kind,
/// stamped into a buffer once per (destination, port, cookie) with
/// [`SctpTemplate::stamp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SctpTemplate {
    bytes: [u8; MAX_LEN],
    len: usize,
    ip_len: usize,
    src: IpAddr,
    src_port: u16,
    ttl: u8,
    probe: SctpProbe,
    /// Sum of the IPv4 header with ID, destination and checksum zeroed.
    ip_sum: u16,
}

impl SctpTemplate {
    /// The longest packet any template stamps (IPv6 with an INIT), for
    /// sizing buffers.
    pub const MAX_LEN: usize = MAX_LEN;

    /// Builds the template for `probe`s from `src` with TTL (hop limit)
    /// 64; the IP version follows `src`. `src_port` is the scan's source
    /// port base, kept for [`SctpTemplate::src_port`]; each
    /// [`SctpTemplate::stamp`] writes its own source port.
    #[must_use]
    pub fn new(src: IpAddr, src_port: u16, probe: SctpProbe) -> Self {
        Self::with_ttl(src, src_port, probe, 64)
    }

    /// [`SctpTemplate::new`] with another IPv4 TTL or IPv6 hop limit.
    #[must_use]
    pub fn with_ttl(src: IpAddr, src_port: u16, probe: SctpProbe, ttl: u8) -> Self {
        let mut bytes = [0u8; MAX_LEN];
        let sctp_len = probe.sctp_len();
        // At most 72 bytes: the casts below cannot truncate.
        let (ip_len, ip_sum) = match src {
            IpAddr::V4(s) => {
                use ipv4::field as f;
                let len = ipv4::HEADER_LEN.saturating_add(sctp_len);
                put8(&mut bytes, f::VER_IHL, 0x45);
                put16(&mut bytes, f::TOTAL_LEN, len as u16);
                put8(&mut bytes, f::TTL, ttl);
                put8(&mut bytes, f::PROTOCOL, ip_protocol::SCTP);
                put_bytes(&mut bytes, f::SRC_ADDR, s.octets());
                let sum = checksum::sum(bytes.get(..ipv4::HEADER_LEN).unwrap_or(&[]));
                (ipv4::HEADER_LEN, sum)
            }
            IpAddr::V6(s) => {
                use ipv6::field as f;
                put8(&mut bytes, f::VER_TC_FLOW, 0x60);
                put16(&mut bytes, f::PAYLOAD_LEN, sctp_len as u16);
                put8(&mut bytes, f::NEXT_HEADER, ip_protocol::SCTP);
                put8(&mut bytes, f::HOP_LIMIT, ttl);
                put_bytes(&mut bytes, f::SRC_ADDR, s.octets());
                (ipv6::HEADER_LEN, 0)
            }
        };
        {
            use field as f;
            let sctp = crate::bytes::tail_mut(&mut bytes, ip_len);
            let chunk_len = sctp_len.saturating_sub(HEADER_LEN) as u16;
            put16(sctp, f::CHUNK_LEN, chunk_len);
            match probe {
                SctpProbe::Init => {
                    put8(sctp, f::CHUNK_TYPE, chunk::INIT);
                    put32(sctp, f::INIT_A_RWND, INIT_A_RWND);
                    put16(sctp, f::INIT_OUT_STREAMS, INIT_OUT_STREAMS);
                    put16(sctp, f::INIT_IN_STREAMS, INIT_IN_STREAMS);
                }
                SctpProbe::CookieEcho => put8(sctp, f::CHUNK_TYPE, chunk::COOKIE_ECHO),
            }
        }
        Self {
            bytes,
            len: ip_len.saturating_add(sctp_len),
            ip_len,
            src,
            src_port,
            ttl,
            probe,
            ip_sum,
        }
    }

    /// The length of every packet this template stamps: IPv4 52 bytes for
    /// INIT and 44 for COOKIE ECHO, IPv6 20 more.
    #[must_use]
    #[expect(clippy::len_without_is_empty, reason = "a probe is never empty")]
    pub fn len(&self) -> usize {
        self.len
    }

    /// The source address the template was built for.
    #[must_use]
    pub fn src(&self) -> IpAddr {
        self.src
    }

    /// The source port base the template was built for.
    #[must_use]
    pub fn src_port(&self) -> u16 {
        self.src_port
    }

    /// The IPv4 TTL or IPv6 hop limit of every probe.
    #[must_use]
    pub fn ttl(&self) -> u8 {
        self.ttl
    }

    /// The kind of probe.
    #[must_use]
    pub fn probe(&self) -> SctpProbe {
        self.probe
    }

    /// Writes one probe to `dst` into `buf[..self.len()]`, starting at the
    /// IP header, and returns its length. `cookie` goes where a reply
    /// reflects it as its verification tag: the INIT's Initiate Tag (and
    /// Initial TSN), or the COOKIE ECHO's own verification tag (and its
    /// State Cookie, scrambled). `ip_id` fills the IPv4 Identification
    /// field and is ignored for IPv6.
    ///
    /// # Errors
    /// [`StampError::BufferTooSmall`] if `buf` is shorter than
    /// [`SctpTemplate::len`], [`StampError::FamilyMismatch`] if `dst` is
    /// not of the template's IP version. Nothing is written then.
    pub fn stamp(
        &self,
        buf: &mut [u8],
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
        cookie: u32,
        ip_id: u16,
    ) -> Result<usize, StampError> {
        let len = self.len;
        let available = buf.len();
        let (Some(out), Some(template)) = (buf.get_mut(..len), self.bytes.get(..len)) else {
            return Err(StampError::BufferTooSmall {
                needed: len,
                available,
            });
        };
        match (self.src, dst) {
            (IpAddr::V4(_), IpAddr::V6(_)) => {
                return Err(StampError::FamilyMismatch { template_v6: false });
            }
            (IpAddr::V6(_), IpAddr::V4(_)) => {
                return Err(StampError::FamilyMismatch { template_v6: true });
            }
            _ => {}
        }
        out.copy_from_slice(template);
        match dst {
            IpAddr::V4(d) => {
                use ipv4::field as f;
                let d = d.to_bits();
                put16(out, f::IDENT, ip_id);
                put32(out, f::DST_ADDR, d);
                let s = u32::from(self.ip_sum)
                    .wrapping_add(u32::from(ip_id))
                    .wrapping_add(d >> 16)
                    .wrapping_add(d & 0xffff);
                put16(out, f::CHECKSUM, !fold(s));
            }
            IpAddr::V6(d) => put_bytes(out, ipv6::field::DST_ADDR, d.octets()),
        }
        let sctp = crate::bytes::tail_mut(out, self.ip_len);
        {
            use field as f;
            put16(sctp, f::SRC_PORT, src_port);
            put16(sctp, f::DST_PORT, dst_port);
            match self.probe {
                SctpProbe::Init => {
                    put32(sctp, f::CHUNK_VALUE, cookie);
                    put32(sctp, f::INIT_TSN, cookie);
                }
                SctpProbe::CookieEcho => {
                    put32(sctp, f::VTAG, cookie);
                    put_bytes(sctp, f::CHUNK_VALUE, echo_cookie(cookie));
                }
            }
            let crc = checksum_bytes(sctp);
            put_bytes(sctp, f::CHECKSUM, crc);
        }
        Ok(len)
    }
}

/// The State Cookie of a COOKIE ECHO probe: 8 bytes that look random and
/// differ per probe, from the cookie through two rounds of a 32-bit mixer
/// (the finaliser of MurmurHash3). No peer can have issued it.
fn echo_cookie(cookie: u32) -> [u8; ECHO_COOKIE_LEN] {
    fn mix(mut x: u32) -> u32 {
        x ^= x >> 16;
        x = x.wrapping_mul(0x85eb_ca6b);
        x ^= x >> 13;
        x = x.wrapping_mul(0xc2b2_ae35);
        x ^ (x >> 16)
    }
    let a = mix(cookie ^ 0x5ca1_ab1e);
    let b = mix(a);
    let mut out = [0u8; ECHO_COOKIE_LEN];
    put32(&mut out, 0, a);
    put32(&mut out, 4, b);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_packets::*;
    use crate::{Ipv4Packet, Ipv6Packet, Reply, parse_reply};
    use proptest::prelude::*;

    #[test]
    fn test_crc32c_vectors() {
        // The standard check value of CRC-32C (CRC-32/ISCSI).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // RFC 3720 appendix B.4, the vectors RFC 3309 points to; the RFC
        // lists the bytes as carried, least significant first.
        let le = |bytes: [u8; 4]| u32::from_le_bytes(bytes);
        assert_eq!(crc32c(&[0u8; 32]), le([0xaa, 0x36, 0x91, 0x8a]));
        assert_eq!(crc32c(&[0xffu8; 32]), le([0x43, 0xab, 0xa8, 0x62]));
        let up: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&up), le([0x4e, 0x79, 0xdd, 0x46]));
        let down: Vec<u8> = (0..32).rev().collect();
        assert_eq!(crc32c(&down), le([0x5c, 0xdb, 0x3f, 0x11]));
        // An iSCSI read command PDU (the same appendix).
        let mut pdu = [0u8; 48];
        pdu[0] = 0x01;
        pdu[1] = 0xc0;
        pdu[16..20].copy_from_slice(&[0x14, 0, 0, 0]);
        pdu[20..24].copy_from_slice(&[0, 0, 0x04, 0]);
        pdu[24..28].copy_from_slice(&[0, 0, 0, 0x14]);
        pdu[28..32].copy_from_slice(&[0, 0, 0, 0x18]);
        pdu[32] = 0x28;
        pdu[40] = 0x02;
        assert_eq!(crc32c(&pdu), le([0x56, 0x3a, 0x96, 0xd9]));
    }

    #[test]
    fn test_checksum_bytes_zeroes_the_field() {
        let mut p = SCTP_INIT_V4[20..].to_vec();
        let carried = [p[8], p[9], p[10], p[11]];
        p[8..12].fill(0);
        assert_eq!(crc32c(&p).to_le_bytes(), carried);
        p[8..12].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(checksum_bytes(&p), carried);
        // Shorter than a header: no panic.
        for len in 0..12 {
            let _ = checksum_bytes(&p[..len]);
        }
    }

    #[test]
    fn test_deconstruct() {
        let s = SctpPacket::new_checked(&SCTP_INIT_V4[20..]).unwrap();
        assert_eq!((s.src_port(), s.dst_port()), (40000, 80));
        assert_eq!(s.verification_tag(), 0);
        assert_eq!(s.chunk_type(), chunk::INIT);
        assert_eq!(s.first_chunk().len(), 20);
        assert_eq!(be32(s.chunk_value(), 0), 0x1234_5678);
        assert!(s.verify_checksum());
        let mut p = SCTP_INIT_V4[20..].to_vec();
        p[31] ^= 1;
        assert!(!SctpPacket::new_checked(&p).unwrap().verify_checksum());

        let s = SctpPacket::new_checked(&SCTP_ABORT_V6[40..]).unwrap();
        assert_eq!(s.chunk_type(), chunk::ABORT);
        assert_eq!(SctpChunk::of(&s), Ok(SctpChunk::Abort { reflected: true }));
        assert!(s.verify_checksum());
        let s = SctpPacket::new_checked(&SCTP_INIT_ACK_V4[20..]).unwrap();
        assert!(s.verify_checksum());
        assert_eq!(
            SctpChunk::of(&s),
            Ok(SctpChunk::InitAck {
                initiate_tag: 0xcafe_f00d
            })
        );
    }

    #[test]
    fn test_stamp_matches_fixture() {
        let t = SctpTemplate::new(v4("198.18.0.1"), 40000, SctpProbe::Init);
        let mut buf = [0u8; SctpTemplate::MAX_LEN];
        let n = t
            .stamp(&mut buf, v4("198.18.0.2"), 40000, 80, 0x1234_5678, 0xbeef)
            .unwrap();
        assert_eq!(&buf[..n], &SCTP_INIT_V4[..]);
        let t = SctpTemplate::new(v6("fd00::1"), 40000, SctpProbe::CookieEcho);
        let n = t
            .stamp(&mut buf, v6("fd00::2"), 40000, 80, 0x1234_5678, 0)
            .unwrap();
        assert_eq!(&buf[..n], &SCTP_COOKIE_ECHO_V6[..]);
    }

    #[test]
    fn test_truncated_and_bad_length() {
        let p = &SCTP_INIT_V4[20..];
        for len in 0..p.len() {
            let needed = if len < 16 { 16 } else { p.len() };
            assert_eq!(
                SctpPacket::new_checked(&p[..len]),
                Err(WireError::Truncated {
                    header: Header::Sctp,
                    needed,
                    available: len
                })
            );
        }
        let mut p = p.to_vec();
        p[14..16].copy_from_slice(&3u16.to_be_bytes());
        assert_eq!(
            SctpPacket::new_checked(&p),
            Err(WireError::BadLength {
                header: Header::Sctp,
                value: 3
            })
        );
        // An INIT ACK too short for its fixed fields.
        p[12] = chunk::INIT_ACK;
        p[14..16].copy_from_slice(&8u16.to_be_bytes());
        let s = SctpPacket::new_checked(&p).unwrap();
        assert_eq!(
            SctpChunk::of(&s),
            Err(WireError::BadLength {
                header: Header::Sctp,
                value: 8
            })
        );
    }

    #[test]
    fn test_errors_write_nothing() {
        let mut buf = [0u8; 64];
        let t4 = SctpTemplate::new(v4("198.18.0.1"), 1, SctpProbe::Init);
        let t6 = SctpTemplate::new(v6("fd00::1"), 1, SctpProbe::CookieEcho);
        assert_eq!((t4.len(), t6.len()), (52, 64));
        assert_eq!(
            SctpTemplate::new(v4("198.18.0.1"), 1, SctpProbe::CookieEcho).len(),
            44
        );
        assert_eq!(
            t4.stamp(&mut buf, v6("fd00::2"), 1, 2, 3, 4),
            Err(StampError::FamilyMismatch { template_v6: false })
        );
        assert_eq!(
            t6.stamp(&mut buf, v4("198.18.0.2"), 1, 2, 3, 4),
            Err(StampError::FamilyMismatch { template_v6: true })
        );
        assert_eq!(
            t4.stamp(&mut buf[..51], v4("198.18.0.2"), 1, 2, 3, 4),
            Err(StampError::BufferTooSmall {
                needed: 52,
                available: 51
            })
        );
        assert_eq!(buf, [0u8; 64]);
    }

    #[test]
    fn test_echo_cookies_differ() {
        assert_ne!(echo_cookie(1), echo_cookie(2));
        assert_ne!(echo_cookie(0), [0; 8]);
    }

    proptest! {
        #[test]
        fn stamped_probes_verify_and_parse_back(
            (src, dst) in addr_pair(),
            ttl in any::<u8>(),
            echo in any::<bool>(),
            src_port in any::<u16>(),
            dst_port in any::<u16>(),
            cookie in any::<u32>(),
            ip_id in any::<u16>(),
        ) {
            let probe = if echo { SctpProbe::CookieEcho } else { SctpProbe::Init };
            let t = SctpTemplate::with_ttl(src, src_port, probe, ttl);
            let mut buf = [0u8; SctpTemplate::MAX_LEN];
            let n = t.stamp(&mut buf, dst, src_port, dst_port, cookie, ip_id).unwrap();
            prop_assert_eq!(n, t.len());
            let packet = &buf[..n];
            let (sctp, got_ttl) = if src.is_ipv4() {
                let ip = Ipv4Packet::new_checked(packet).unwrap();
                prop_assert!(ip.verify_checksum());
                prop_assert_eq!(ip.ident(), ip_id);
                prop_assert_eq!(ip.protocol(), ip_protocol::SCTP);
                prop_assert_eq!(usize::from(ip.total_len()), n);
                (&packet[20..], ip.ttl())
            } else {
                let ip = Ipv6Packet::new_checked(packet).unwrap();
                prop_assert_eq!(ip.next_header(), ip_protocol::SCTP);
                prop_assert_eq!(usize::from(ip.payload_len()), n - 40);
                (&packet[40..], ip.hop_limit())
            };
            prop_assert_eq!(got_ttl, ttl);
            let s = SctpPacket::new_checked(sctp).unwrap();
            prop_assert!(s.verify_checksum());
            // The CRC from scratch, with the field zeroed.
            let mut zeroed = sctp.to_vec();
            zeroed[8..12].fill(0);
            prop_assert_eq!(s.checksum(), crc32c(&zeroed));
            prop_assert_eq!(s.first_chunk().len(), sctp.len() - 12);
            if echo {
                prop_assert_eq!(s.chunk_type(), chunk::COOKIE_ECHO);
                prop_assert_eq!(s.verification_tag(), cookie);
                prop_assert_eq!(s.chunk_value(), &echo_cookie(cookie)[..]);
            } else {
                prop_assert_eq!(s.chunk_type(), chunk::INIT);
                prop_assert_eq!(s.verification_tag(), 0);
                prop_assert_eq!(be32(s.chunk_value(), 0), cookie);
                prop_assert_eq!(be32(s.chunk_value(), 12), cookie);
            }
            let reply = parse_reply(packet).unwrap();
            let Reply::Sctp { src: s2, dst: d2, ttl: t2, src_port: sp, dst_port: dp, vtag, chunk } = reply else {
                panic!("{reply:?}");
            };
            prop_assert_eq!((s2, d2, t2, sp, dp), (src, dst, ttl, src_port, dst_port));
            prop_assert_eq!(vtag, if echo { cookie } else { 0 });
            let kind = if echo { chunk::COOKIE_ECHO } else { chunk::INIT };
            prop_assert_eq!(chunk, SctpChunk::Other { chunk_type: kind });
        }

        #[test]
        fn views_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(s) = SctpPacket::new_checked(&bytes) {
                let _ = (s.verify_checksum(), s.checksum(), s.chunk_value(), SctpChunk::of(&s));
                prop_assert!(s.first_chunk().len() + 12 <= bytes.len());
            }
        }
    }
}
