//! [`SynTemplate`]: the SYN probe, built once and stamped per target.
//!
//! Read first: RFC 791 section 3.1 and RFC 8200 section 3 (the IP headers),
//! RFC 9293 section 3.1 (the TCP header and its pseudo-header), RFC 1071 and
//! RFC 1624 (why a checksum can be finished from a precomputed partial sum),
//! RFC 6864 (the IPv4 Identification of an atomic datagram is free to use).
//!
//! The probe looks like nmap's SYN scan probe: IPv4 (IHL 5, DF clear, TTL
//! 64) or IPv6 (hop limit 64, no extension headers), then a 24-byte TCP
//! header with only SYN set, window 1024, and one option, MSS 1460. The
//! template holds those bytes with the per-probe fields zeroed, and the one's
//! complement sums of everything fixed: the IPv4 header, and the TCP header
//! plus the pseudo-header's source, protocol and length. [`SynTemplate::stamp`]
//! copies the bytes, writes the destination, ports, sequence number and IPv4
//! ID, and finishes each checksum by adding those few words to the
//! precomputed sum: a copy, about eight stores and a dozen additions, never
//! a pass over the packet.
//!
//! Contract: no panic (a short buffer or a destination of the wrong family
//! is an error, and nothing is written); no allocation.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::bytes::{put_bytes, put8, put16, put32};
use crate::checksum::{self, fold};
use crate::error::StampError;
use crate::ip_protocol;
use crate::tcp::{self, TcpFlags};
use crate::{ipv4, ipv6};

/// What a [`SynTemplate`] puts in every probe besides the per-probe fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SynOptions {
    /// IPv4 TTL or IPv6 hop limit. Default 64.
    pub ttl: u8,
    /// The TCP window. Default 1024, as nmap's SYN probes.
    pub window: u16,
    /// The MSS option's value, or `None` for a 20-byte TCP header without
    /// options. Default `Some(1460)`, as nmap's SYN probes.
    pub mss: Option<u16>,
    /// The control bits. Default SYN; the other scans (ACK, FIN, NULL,
    /// Xmas, Maimon, window) use the same template with their own bits.
    /// When ACK is among them, the acknowledgment number carries the
    /// sequence number too, since an RST answering such a segment takes
    /// its sequence number from it (RFC 9293 §3.10.7.1).
    pub flags: TcpFlags,
}

impl Default for SynOptions {
    fn default() -> Self {
        Self {
            ttl: 64,
            window: 1024,
            mss: Some(1460),
            flags: TcpFlags::SYN,
        }
    }
}

/// The longest probe: an IPv6 header and a TCP header with the MSS option.
const MAX_LEN: usize = ipv6::HEADER_LEN + TCP_LEN_WITH_MSS;
const TCP_LEN_WITH_MSS: usize = tcp::HEADER_LEN + 4;

/// The bytes of a probe that [`SynTemplate::stamp`] patches all lie in
/// the IP header and the first 20 bytes of TCP, so a probe of either
/// length can be patched through one array of this size per family.
const PATCHED_V4: usize = ipv4::HEADER_LEN + tcp::HEADER_LEN;
const PATCHED_V6: usize = ipv6::HEADER_LEN + tcp::HEADER_LEN;

/// A SYN probe prebuilt for one source address and IP version, stamped
/// into a buffer once per (destination, port) with [`SynTemplate::stamp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynTemplate {
    bytes: [u8; MAX_LEN],
    len: usize,
    src: IpAddr,
    src_port: u16,
    options: SynOptions,
    /// Sum of the IPv4 header with ID, destination and checksum zeroed.
    ip_sum: u16,
    /// Sum of the pseudo-header without its destination, and of the TCP
    /// header with ports, sequence number and checksum zeroed.
    tcp_sum: u16,
}

impl SynTemplate {
    /// The longest packet any template stamps (IPv6 with the MSS option),
    /// for sizing buffers.
    pub const MAX_LEN: usize = MAX_LEN;

    /// Builds the template for probes from `src` with nmap's defaults
    /// ([`SynOptions::default`]); the IP version follows `src`. `src_port`
    /// is the scan's source port base, kept for [`SynTemplate::src_port`];
    /// each [`SynTemplate::stamp`] writes its own source port.
    #[must_use]
    pub fn new(src: IpAddr, src_port: u16) -> Self {
        Self::with_options(src, src_port, SynOptions::default())
    }

    /// [`SynTemplate::new`] with other TTL, window or MSS.
    #[must_use]
    pub fn with_options(src: IpAddr, src_port: u16, options: SynOptions) -> Self {
        let mut bytes = [0u8; MAX_LEN];
        let ip_len = match src {
            IpAddr::V4(_) => ipv4::HEADER_LEN,
            IpAddr::V6(_) => ipv6::HEADER_LEN,
        };
        let tcp_len = match options.mss {
            Some(_) => TCP_LEN_WITH_MSS,
            None => tcp::HEADER_LEN,
        };
        let len = ip_len.saturating_add(tcp_len);
        // Both at most 64: the casts below cannot truncate.
        let tcp_len16 = tcp_len as u16;

        let ip_sum = match src {
            IpAddr::V4(s) => {
                use ipv4::field as f;
                put8(&mut bytes, f::VER_IHL, 0x45);
                put16(&mut bytes, f::TOTAL_LEN, len as u16);
                put8(&mut bytes, f::TTL, options.ttl);
                put8(&mut bytes, f::PROTOCOL, ip_protocol::TCP);
                put_bytes(&mut bytes, f::SRC_ADDR, s.octets());
                checksum::sum(bytes.get(..ipv4::HEADER_LEN).unwrap_or(&[]))
            }
            IpAddr::V6(s) => {
                use ipv6::field as f;
                put8(&mut bytes, f::VER_TC_FLOW, 0x60);
                put16(&mut bytes, f::PAYLOAD_LEN, tcp_len16);
                put8(&mut bytes, f::NEXT_HEADER, ip_protocol::TCP);
                put8(&mut bytes, f::HOP_LIMIT, options.ttl);
                put_bytes(&mut bytes, f::SRC_ADDR, s.octets());
                0
            }
        };

        {
            use tcp::field as f;
            let t = bytes.get_mut(ip_len..).unwrap_or(&mut []);
            put8(t, f::DATA_OFFSET, ((tcp_len / 4) as u8) << 4);
            put8(t, f::FLAGS, options.flags.bits());
            put16(t, f::WINDOW, options.window);
            if let Some(mss) = options.mss {
                put8(t, f::OPTIONS, tcp::option::MSS);
                put8(t, f::OPTIONS + 1, tcp::option::MSS_LEN);
                put16(t, f::OPTIONS + 2, mss);
            }
        }
        let tcp_bytes = bytes.get(ip_len..len).unwrap_or(&[]);
        let pseudo = match src {
            IpAddr::V4(s) => {
                checksum::pseudo_header_v4(s, Ipv4Addr::UNSPECIFIED, ip_protocol::TCP, tcp_len16)
            }
            IpAddr::V6(s) => checksum::pseudo_header_v6(
                &s,
                &Ipv6Addr::UNSPECIFIED,
                ip_protocol::TCP,
                u32::from(tcp_len16),
            ),
        };
        let tcp_sum = checksum::add(pseudo, checksum::sum(tcp_bytes));
        Self {
            bytes,
            len,
            src,
            src_port,
            options,
            ip_sum,
            tcp_sum,
        }
    }

    /// The length of every packet this template stamps: 44 bytes for IPv4,
    /// 64 for IPv6 (4 fewer without the MSS option).
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

    /// The options the template was built with.
    #[must_use]
    pub fn options(&self) -> SynOptions {
        self.options
    }

    /// Writes one probe to `dst` into `buf[..self.len()]`, starting at the IP
    /// header, and returns its length. `ip_id` fills the IPv4
    /// Identification field and is ignored for IPv6; `seq` is the TCP
    /// sequence number (a scan cookie, usually).
    ///
    /// # Errors
    /// [`StampError::BufferTooSmall`] if `buf` is shorter than
    /// [`SynTemplate::len`], [`StampError::FamilyMismatch`] if `dst` is not
    /// of the template's IP version. Nothing is written then.
    #[inline]
    pub fn stamp(
        &self,
        buf: &mut [u8],
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
        seq: u32,
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
            (IpAddr::V4(_), IpAddr::V4(d)) => {
                out.copy_from_slice(template);
                if let Some(head) = out.first_chunk_mut::<PATCHED_V4>() {
                    self.patch_v4(head, d, src_port, dst_port, seq, ip_id);
                }
            }
            (IpAddr::V6(_), IpAddr::V6(d)) => {
                out.copy_from_slice(template);
                if let Some(head) = out.first_chunk_mut::<PATCHED_V6>() {
                    self.patch_v6(head, &d, src_port, dst_port, seq);
                }
            }
            (IpAddr::V4(_), IpAddr::V6(_)) => {
                return Err(StampError::FamilyMismatch { template_v6: false });
            }
            (IpAddr::V6(_), IpAddr::V4(_)) => {
                return Err(StampError::FamilyMismatch { template_v6: true });
            }
        }
        Ok(len)
    }

    #[inline(always)]
    fn patch_v4(
        &self,
        head: &mut [u8; PATCHED_V4],
        dst: Ipv4Addr,
        src_port: u16,
        dst_port: u16,
        seq: u32,
        ip_id: u16,
    ) {
        let d = dst.to_bits();
        let dst_words = (d >> 16).wrapping_add(d & 0xffff);
        {
            use ipv4::field as f;
            put16(head, f::IDENT, ip_id);
            put32(head, f::DST_ADDR, d);
            let s = u32::from(self.ip_sum)
                .wrapping_add(u32::from(ip_id))
                .wrapping_add(dst_words);
            put16(head, f::CHECKSUM, !fold(s));
        }
        patch_tcp(
            head,
            ipv4::HEADER_LEN,
            u32::from(self.tcp_sum).wrapping_add(dst_words),
            (src_port, dst_port),
            seq,
            self.ack_for(seq),
        );
    }

    #[inline(always)]
    fn patch_v6(
        &self,
        head: &mut [u8; PATCHED_V6],
        dst: &Ipv6Addr,
        src_port: u16,
        dst_port: u16,
        seq: u32,
    ) {
        put_bytes(head, ipv6::field::DST_ADDR, dst.octets());
        let mut s = u32::from(self.tcp_sum);
        for w in dst.segments() {
            s = s.wrapping_add(u32::from(w));
        }
        patch_tcp(
            head,
            ipv6::HEADER_LEN,
            s,
            (src_port, dst_port),
            seq,
            self.ack_for(seq),
        );
    }

    /// The acknowledgment number of a probe with sequence number `seq`:
    /// the same number when the probe carries ACK, else zero.
    #[inline(always)]
    fn ack_for(&self, seq: u32) -> u32 {
        if self.options.flags.contains(TcpFlags::ACK) {
            seq
        } else {
            0
        }
    }
}

/// Writes the ports and sequence number of the TCP header at `at`, and its
/// checksum from `partial`: the template's sum plus the destination's words.
/// At most 14 words of 16 bits are added, far from overflowing a `u32`.
#[inline(always)]
fn patch_tcp(
    head: &mut [u8],
    at: usize,
    partial: u32,
    (src_port, dst_port): (u16, u16),
    seq: u32,
    ack: u32,
) {
    use tcp::field as f;
    put16(head, at.wrapping_add(f::SRC_PORT), src_port);
    put16(head, at.wrapping_add(f::DST_PORT), dst_port);
    put32(head, at.wrapping_add(f::SEQ), seq);
    put32(head, at.wrapping_add(f::ACK), ack);
    let s = partial
        .wrapping_add(u32::from(src_port))
        .wrapping_add(u32::from(dst_port))
        .wrapping_add(seq >> 16)
        .wrapping_add(seq & 0xffff)
        .wrapping_add(ack >> 16)
        .wrapping_add(ack & 0xffff);
    put16(head, at.wrapping_add(f::CHECKSUM), !fold(s));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_packets::{SYN_V4, SYN_V6, addr_pair, checksum_from_scratch, v4, v6};
    use crate::{Ipv4Packet, Ipv6Packet, Reply, TcpPacket, parse_reply};
    use proptest::prelude::*;

    #[test]
    fn test_construct() {
        let t = SynTemplate::new(v4("198.18.0.1"), 40000);
        assert_eq!(t.len(), 44);
        let mut buf = [0u8; 64];
        let n = t
            .stamp(&mut buf, v4("198.18.0.2"), 40000, 443, 0x1234_5678, 0xbeef)
            .unwrap();
        assert_eq!(&buf[..n], &SYN_V4[..]);
        assert_eq!(t.src_port(), 40000);
        assert_eq!(t.options(), SynOptions::default());
        assert_eq!(&buf[n..], &[0u8; 20], "bytes past the probe untouched");

        let t = SynTemplate::new(v6("fd00::1"), 40000);
        assert_eq!(t.len(), 64);
        assert_eq!(t.src(), v6("fd00::1"));
        let n = t
            .stamp(&mut buf, v6("fd00::2"), 40000, 443, 0x1234_5678, 0xbeef)
            .unwrap();
        assert_eq!(&buf[..n], &SYN_V6[..]);
    }

    #[test]
    fn test_stamp_twice_overwrites() {
        // A reused buffer holding another probe is fully rewritten.
        let t = SynTemplate::new(v4("198.18.0.1"), 40000);
        let mut buf = [0xffu8; 44];
        t.stamp(&mut buf, v4("198.19.0.9"), 1, 2, 3, 4).unwrap();
        t.stamp(&mut buf, v4("198.18.0.2"), 40000, 443, 0x1234_5678, 0xbeef)
            .unwrap();
        assert_eq!(buf, SYN_V4);
    }

    #[test]
    fn test_truncated() {
        let t = SynTemplate::new(v4("198.18.0.1"), 40000);
        for size in 0..t.len() {
            let mut buf = vec![0xaau8; size];
            assert_eq!(
                t.stamp(&mut buf, v4("198.18.0.2"), 1, 2, 3, 4),
                Err(StampError::BufferTooSmall {
                    needed: 44,
                    available: size
                })
            );
            assert!(t.stamp(&mut buf, v4("198.18.0.2"), 1, 2, 3, 4).is_err());
            assert!(buf.iter().all(|&b| b == 0xaa), "nothing written");
        }
    }

    #[test]
    fn test_family_mismatch() {
        let mut buf = [0u8; 64];
        let t4 = SynTemplate::new(v4("198.18.0.1"), 40000);
        let t6 = SynTemplate::new(v6("fd00::1"), 40000);
        assert_eq!(
            t4.stamp(&mut buf, v6("fd00::2"), 1, 2, 3, 4),
            Err(StampError::FamilyMismatch { template_v6: false })
        );
        assert_eq!(
            t6.stamp(&mut buf, v4("198.18.0.2"), 1, 2, 3, 4),
            Err(StampError::FamilyMismatch { template_v6: true })
        );
        assert!(t4.stamp(&mut buf, v6("fd00::2"), 1, 2, 3, 4).is_err());
        assert!(t6.stamp(&mut buf, v4("198.18.0.2"), 1, 2, 3, 4).is_err());
        assert_eq!(buf, [0u8; 64]);
    }

    #[test]
    fn test_options() {
        let opts = SynOptions {
            ttl: 37,
            window: 65535,
            mss: None,
            flags: TcpFlags::SYN,
        };
        let t = SynTemplate::with_options(v4("198.18.0.1"), 40000, opts);
        assert_eq!(t.len(), 40);
        let mut buf = [0u8; 40];
        t.stamp(&mut buf, v4("198.18.0.2"), 5, 6, 7, 8).unwrap();
        let ip = Ipv4Packet::new_checked(&buf).unwrap();
        assert_eq!(ip.ttl(), 37);
        assert!(!ip.dont_frag());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(tcp.header_len(), 20);
        assert_eq!(tcp.window_len(), 65535);
        assert_eq!(tcp.mss(), None);
        assert!(tcp.verify_checksum(v4("198.18.0.1"), v4("198.18.0.2")));
        assert!(ip.verify_checksum());

        let t = SynTemplate::with_options(v6("fd00::1"), 40000, opts);
        assert_eq!(t.len(), 60);
    }

    fn options() -> impl Strategy<Value = SynOptions> {
        (any::<u8>(), any::<u16>(), any::<Option<u16>>(), any::<u8>()).prop_map(
            |(ttl, window, mss, flags)| SynOptions {
                ttl,
                window,
                mss,
                flags: TcpFlags::from_bits(flags),
            },
        )
    }

    proptest! {
        #[test]
        fn stamped_checksums_verify_and_parse_back(
            (src, dst) in addr_pair(),
            opts in options(),
            src_port in any::<u16>(),
            dst_port in any::<u16>(),
            seq in any::<u32>(),
            ip_id in any::<u16>(),
        ) {
            let t = SynTemplate::with_options(src, src_port, opts);
            let mut buf = [0u8; SynTemplate::MAX_LEN];
            let n = t.stamp(&mut buf, dst, src_port, dst_port, seq, ip_id).unwrap();
            prop_assert_eq!(n, t.len());
            let packet = &buf[..n];

            // Checksums, recomputed over the whole packet from scratch.
            let (seg, ttl) = if src.is_ipv4() {
                let ip = Ipv4Packet::new_checked(packet).unwrap();
                prop_assert_eq!(checksum::checksum(&packet[..20]), 0);
                let mut zeroed = packet[..20].to_vec();
                zeroed[10..12].fill(0);
                prop_assert_eq!(ip.checksum(), checksum::checksum(&zeroed));
                prop_assert_eq!(ip.ident(), ip_id);
                prop_assert_eq!(usize::from(ip.total_len()), n);
                (&packet[20..], ip.ttl())
            } else {
                let ip = Ipv6Packet::new_checked(packet).unwrap();
                prop_assert_eq!(usize::from(ip.payload_len()), n - 40);
                (&packet[40..], ip.hop_limit())
            };
            let tcp = TcpPacket::new_checked(seg).unwrap();
            prop_assert_eq!(
                tcp.checksum(),
                checksum_from_scratch(src, dst, ip_protocol::TCP, seg, 16)
            );
            prop_assert!(tcp.verify_checksum(src, dst));
            prop_assert_eq!(tcp.mss(), opts.mss);

            // And the parser reads back what was stamped.
            let reply = parse_reply(packet).unwrap();
            let Reply::Tcp { ip_id: read_id, dont_fragment, options, .. } = reply else {
                panic!("{reply:?}");
            };
            prop_assert_eq!(reply, Reply::Tcp {
                src,
                dst,
                ttl,
                src_port,
                dst_port,
                seq,
                ack: if opts.flags.contains(TcpFlags::ACK) { seq } else { 0 },
                flags: opts.flags,
                window: opts.window,
                ip_id: read_id,
                dont_fragment,
                options,
            });
            prop_assert_eq!(read_id.is_some(), src.is_ipv4());
            prop_assert_eq!(options.len, if opts.mss.is_some() { 4 } else { 0 });
            prop_assert_eq!(ttl, opts.ttl);
        }
    }
}
