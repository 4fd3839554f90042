//! nmap's IPv4 probe set for OS detection, as bytes: six SYNs to an open
//! port (SEQ, OPS, WIN, T1), two ICMP echo requests (IE), the ECN SYN,
//! T2-T4 to the open port, T5-T7 to a closed port, and U1 to a closed
//! UDP port. Each probe leaves from its own source port (`base + index`),
//! so an answer tells by its destination port which probe it answers.
//!
//! [`ProbeSet::write`] writes a whole IPv4 packet (header checksum
//! included) into a caller's buffer; [`ProbeSet::which`] tells which probe
//! a received packet answers, or `None`. No allocation, no panic: writes
//! into a buffer too short fail with `None`.
//!
//! Read first: nmap.org/book/osdetect-methods.html, "Probes Sent".

use std::net::Ipv4Addr;

use portolan_wire::checksum;

/// How many probes a set sends.
pub const PROBE_COUNT: usize = 16;

/// The first SEQ probe's index; SEQ probes are 0 to 5.
pub const SEQ: usize = 0;
/// The two ICMP echo requests.
pub const IE: usize = 6;
/// The ECN probe.
pub const ECN: usize = 8;
/// T2; T2 to T7 are 9 to 14.
pub const T2: usize = 9;
/// The UDP probe.
pub const U1: usize = 15;

/// The SEQ probes' windows.
const SEQ_WINDOWS: [u16; 6] = [1, 63, 4, 4, 16, 512];

/// The SEQ probes' options, nmap's six layouts (timestamps carry TSval
/// 0xFFFFFFFF and TSecr 0).
const SEQ_OPTIONS: [&[u8]; 6] = [
    &[
        3, 3, 10, 1, 2, 4, 0x05, 0xB4, 8, 10, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 4, 2,
    ],
    &[
        2, 4, 0x05, 0x78, 3, 3, 0, 4, 2, 8, 10, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0,
    ],
    &[
        8, 10, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 1, 1, 3, 3, 5, 1, 2, 4, 0x02, 0x80,
    ],
    &[4, 2, 8, 10, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 3, 3, 10, 0],
    &[
        2, 4, 0x02, 0x18, 4, 2, 8, 10, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 3, 3, 10, 0,
    ],
    &[
        2, 4, 0x01, 0x09, 4, 2, 8, 10, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0,
    ],
];

/// The ECN probe's options.
const ECN_OPTIONS: &[u8] = &[3, 3, 10, 1, 2, 4, 0x05, 0xB4, 4, 2, 1, 1];

/// T2-T6's options (T7 has a window scale of 15).
const T_OPTIONS: &[u8] = &[
    3, 3, 10, 1, 2, 4, 0x01, 0x09, 8, 10, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 4, 2,
];
const T7_OPTIONS: &[u8] = &[
    3, 3, 15, 1, 2, 4, 0x01, 0x09, 8, 10, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 4, 2,
];

/// TCP flag bits.
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const URG: u8 = 0x20;
const ECE: u8 = 0x40;
const CWR: u8 = 0x80;

/// T2-T7: flags, window, DF, to the open port.
const T_PROBES: [(u8, u16, bool, bool); 6] = [
    (0, 128, true, true),
    (SYN | FIN | URG | PSH, 256, false, true),
    (ACK, 1024, true, true),
    (SYN, 31337, false, false),
    (ACK, 32768, true, false),
    (FIN | PSH | URG, 65535, false, false),
];

/// The U1 probe's IP ID and its payload byte and length (nmap's).
pub const U1_IP_ID: u16 = 0x1042;
/// The byte U1's payload repeats.
pub const U1_BYTE: u8 = b'C';
/// U1's payload length; the whole packet is 328 bytes.
pub const U1_PAYLOAD: usize = 300;
/// The TTL every probe leaves with (U1's quoted TTL gives the distance).
pub const PROBE_TTL: u8 = 64;
/// The ICMP codes of the two echo requests.
pub const IE_CODES: [u8; 2] = [9, 0];

/// One host's probe set: addresses, ports and the numbers its probes
/// carry (the answers' S and A tests compare with them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeSet {
    /// Our address.
    pub source: Ipv4Addr,
    /// The host.
    pub target: Ipv4Addr,
    /// An open TCP port of the host.
    pub open: u16,
    /// A closed TCP port.
    pub closed: u16,
    /// A closed UDP port.
    pub closed_udp: u16,
    /// The first of our [`PROBE_COUNT`] source ports.
    pub base_port: u16,
    /// Per-host secret numbers: TCP sequence numbers are `seq + index`,
    /// acknowledgment numbers `ack + index`, IP IDs `ip_id + index`, the
    /// echo requests' identifier `icmp_id` (and `+ 1`).
    pub seq: u32,
    /// See `seq`.
    pub ack: u32,
    /// See `seq`.
    pub ip_id: u16,
    /// See `seq`.
    pub icmp_id: u16,
}

impl ProbeSet {
    /// The sequence number of TCP probe `index`.
    pub fn tcp_seq(&self, index: usize) -> u32 {
        self.seq.wrapping_add(index as u32)
    }

    /// The acknowledgment number of TCP probe `index`.
    pub fn tcp_ack(&self, index: usize) -> u32 {
        self.ack.wrapping_add(index as u32)
    }

    /// The source port of probe `index`.
    pub fn source_port(&self, index: usize) -> u16 {
        self.base_port.wrapping_add(index as u16)
    }

    /// Writes probe `index` (0 to 15) into `buffer`: its length, or `None`
    /// when the buffer is too short or the index out of range.
    pub fn write(&self, index: usize, buffer: &mut [u8]) -> Option<usize> {
        match index {
            0..=5 => self.write_tcp(
                index,
                SYN,
                SEQ_WINDOWS[index],
                false,
                self.open,
                SEQ_OPTIONS[index],
                buffer,
            ),
            6 | 7 => self.write_echo(index - IE, buffer),
            ECN => {
                let len = self.write_tcp(
                    index,
                    SYN | ECE | CWR,
                    3,
                    false,
                    self.open,
                    ECN_OPTIONS,
                    buffer,
                )?;
                // A reserved bit set, and an urgent pointer without URG.
                let tcp = buffer.get_mut(20..40)?;
                tcp[12] |= 0x08;
                tcp[18..20].copy_from_slice(&0xF7F5u16.to_be_bytes());
                finish_tcp(self.source, self.target, buffer.get_mut(..len)?);
                Some(len)
            }
            9..=14 => {
                let (flags, window, df, open) = T_PROBES[index - T2];
                let port = if open { self.open } else { self.closed };
                let options = if index == 14 { T7_OPTIONS } else { T_OPTIONS };
                self.write_tcp(index, flags, window, df, port, options, buffer)
            }
            U1 => self.write_udp(buffer),
            _ => None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write_tcp(
        &self,
        index: usize,
        flags: u8,
        window: u16,
        df: bool,
        port: u16,
        options: &[u8],
        buffer: &mut [u8],
    ) -> Option<usize> {
        let tcp_len = 20 + options.len();
        let len = 20 + tcp_len;
        let packet = buffer.get_mut(..len)?;
        packet.fill(0);
        self.ip_header(packet, len, 6, df, 0, self.ip_id.wrapping_add(index as u16));
        let tcp = &mut packet[20..];
        tcp[0..2].copy_from_slice(&self.source_port(index).to_be_bytes());
        tcp[2..4].copy_from_slice(&port.to_be_bytes());
        tcp[4..8].copy_from_slice(&self.tcp_seq(index).to_be_bytes());
        let ack = if flags & ACK != 0 || index >= T2 || index == ECN {
            self.tcp_ack(index)
        } else {
            0
        };
        tcp[8..12].copy_from_slice(&ack.to_be_bytes());
        tcp[12] = ((tcp_len / 4) as u8) << 4;
        tcp[13] = flags;
        tcp[14..16].copy_from_slice(&window.to_be_bytes());
        tcp[20..].copy_from_slice(options);
        finish_tcp(self.source, self.target, packet);
        Some(len)
    }

    fn write_echo(&self, which: usize, buffer: &mut [u8]) -> Option<usize> {
        let data = if which == 0 { 120 } else { 150 };
        let len = 20 + 8 + data;
        let packet = buffer.get_mut(..len)?;
        packet.fill(0);
        let tos = if which == 0 { 0 } else { 4 };
        self.ip_header(
            packet,
            len,
            1,
            which == 0,
            tos,
            self.ip_id.wrapping_add((IE + which) as u16),
        );
        let icmp = &mut packet[20..];
        icmp[0] = 8;
        icmp[1] = IE_CODES[which];
        icmp[4..6].copy_from_slice(&self.icmp_id.wrapping_add(which as u16).to_be_bytes());
        icmp[6..8].copy_from_slice(&(295 + which as u16).to_be_bytes());
        let sum = checksum::checksum(icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        Some(len)
    }

    fn write_udp(&self, buffer: &mut [u8]) -> Option<usize> {
        let len = 20 + 8 + U1_PAYLOAD;
        let packet = buffer.get_mut(..len)?;
        packet.fill(0);
        self.ip_header(packet, len, 17, false, 0, U1_IP_ID);
        let udp = &mut packet[20..];
        udp[0..2].copy_from_slice(&self.source_port(U1).to_be_bytes());
        udp[2..4].copy_from_slice(&self.closed_udp.to_be_bytes());
        udp[4..6].copy_from_slice(&((8 + U1_PAYLOAD) as u16).to_be_bytes());
        udp[8..].fill(U1_BYTE);
        let sum = self.udp_checksum();
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        Some(len)
    }

    /// The checksum U1 carries (RUCK compares the quoted one with it).
    pub fn udp_checksum(&self) -> u16 {
        let len = (8 + U1_PAYLOAD) as u16;
        let mut header = [0u8; 8];
        header[0..2].copy_from_slice(&self.source_port(U1).to_be_bytes());
        header[2..4].copy_from_slice(&self.closed_udp.to_be_bytes());
        header[4..6].copy_from_slice(&len.to_be_bytes());
        let payload = [U1_BYTE; U1_PAYLOAD];
        let mut sum = u32::from(checksum::pseudo_header_v4(
            self.source,
            self.target,
            17,
            len,
        ));
        sum += u32::from(checksum::sum(&header));
        sum += u32::from(checksum::sum(&payload));
        let c = !checksum::fold(sum);
        if c == 0 { 0xFFFF } else { c }
    }

    fn ip_header(&self, packet: &mut [u8], len: usize, protocol: u8, df: bool, tos: u8, id: u16) {
        packet[0] = 0x45;
        packet[1] = tos;
        packet[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        packet[4..6].copy_from_slice(&id.to_be_bytes());
        packet[6] = if df { 0x40 } else { 0 };
        packet[8] = PROBE_TTL;
        packet[9] = protocol;
        packet[12..16].copy_from_slice(&self.source.octets());
        packet[16..20].copy_from_slice(&self.target.octets());
        let sum = checksum::checksum(&packet[..20]);
        packet[10..12].copy_from_slice(&sum.to_be_bytes());
    }

    /// Which probe `packet` (an IPv4 packet from the host) answers: a TCP
    /// segment to one of our TCP probes' ports from the port it probed, an
    /// echo reply with our identifier, or an ICMP error quoting U1.
    pub fn which(&self, packet: &[u8]) -> Option<usize> {
        let ip = portolan_wire::Ipv4Packet::new_checked(packet).ok()?;
        if ip.src_addr() != self.target || ip.dst_addr() != self.source {
            return None;
        }
        match ip.protocol() {
            6 => {
                let tcp = portolan_wire::TcpPacket::new_checked(ip.payload()).ok()?;
                let index = usize::from(tcp.dst_port().wrapping_sub(self.base_port));
                let expected = match index {
                    0..=5 | ECN => self.open,
                    9..=11 => self.open,
                    12..=14 => self.closed,
                    _ => return None,
                };
                (tcp.src_port() == expected).then_some(index)
            }
            1 => {
                let icmp = portolan_wire::IcmpPacket::new_checked(ip.payload()).ok()?;
                match icmp.msg_type() {
                    0 => {
                        let id = (icmp.rest_of_header() >> 16) as u16;
                        let which = usize::from(id.wrapping_sub(self.icmp_id));
                        (which < 2).then_some(IE + which)
                    }
                    3 => {
                        let quoted =
                            portolan_wire::Ipv4Packet::new_truncated(icmp.payload()).ok()?;
                        let udp = quoted.payload();
                        let ports = udp.get(0..4)?;
                        let ours = quoted.protocol() == 17
                            && quoted.dst_addr() == self.target
                            && u16::from_be_bytes([ports[0], ports[1]]) == self.source_port(U1)
                            && u16::from_be_bytes([ports[2], ports[3]]) == self.closed_udp;
                        ours.then_some(U1)
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// Fills in the TCP checksum of an IPv4 packet with a 20-byte header.
fn finish_tcp(source: Ipv4Addr, target: Ipv4Addr, packet: &mut [u8]) {
    let Some(tcp) = packet.get_mut(20..) else {
        return;
    };
    tcp[16] = 0;
    tcp[17] = 0;
    let mut sum = u32::from(checksum::pseudo_header_v4(
        source,
        target,
        6,
        tcp.len() as u16,
    ));
    sum += u32::from(checksum::sum(tcp));
    let c = !checksum::fold(sum);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn lab_set() -> ProbeSet {
        ProbeSet {
            source: Ipv4Addr::new(198, 18, 0, 1),
            target: Ipv4Addr::new(198, 18, 0, 2),
            open: 22,
            closed: 1,
            closed_udp: 40_125,
            base_port: 50_000,
            seq: 0x1000_0000,
            ack: 0x2000_0000,
            ip_id: 0x3000,
            icmp_id: 0x4000,
        }
    }

    #[test]
    fn every_probe_is_a_valid_packet_with_nmaps_fields() {
        let set = lab_set();
        let mut buf = [0u8; 1500];
        for i in 0..PROBE_COUNT {
            let len = set.write(i, &mut buf).unwrap();
            let ip = portolan_wire::Ipv4Packet::new_checked(&buf[..len]).unwrap();
            assert!(ip.verify_checksum(), "probe {i}");
            assert_eq!(ip.ttl(), PROBE_TTL);
            match i {
                0..=5 | 8..=14 => {
                    let tcp = portolan_wire::TcpPacket::new_checked(ip.payload()).unwrap();
                    assert!(
                        tcp.verify_checksum(ip.src_addr().into(), ip.dst_addr().into()),
                        "probe {i}"
                    );
                    assert_eq!(tcp.src_port(), 50_000 + i as u16);
                }
                _ => {}
            }
        }
        // SEQ 1: window 1, WS 10, NOP, MSS 1460, TS, SACK.
        let len = set.write(0, &mut buf).unwrap();
        assert_eq!(len, 60);
        assert_eq!(&buf[34..36], &[0, 1]);
        // U1: 328 bytes, IP ID 0x1042, 300 'C'.
        let len = set.write(U1, &mut buf).unwrap();
        assert_eq!((len, &buf[4..6]), (328, &[0x10, 0x42][..]));
        assert!(buf[28..328].iter().all(|b| *b == b'C'));
        let udp = portolan_wire::UdpPacket::new_checked(&buf[20..328]).unwrap();
        assert!(udp.verify_checksum(set.source.into(), set.target.into()));
        assert_eq!(udp.checksum(), set.udp_checksum());
        // IE: DF on the first only, codes 9 and 0, TOS 0 and 4.
        set.write(IE, &mut buf).unwrap();
        assert_eq!((buf[6] & 0x40, buf[21], buf[1]), (0x40, 9, 0));
        set.write(IE + 1, &mut buf).unwrap();
        assert_eq!((buf[6] & 0x40, buf[21], buf[1]), (0, 0, 4));
        // ECN: SYN ECE CWR, urgent pointer F7F5 without URG.
        set.write(ECN, &mut buf).unwrap();
        assert_eq!((buf[33], &buf[38..40]), (0xC2, &[0xF7, 0xF5][..]));
        assert!(set.write(0, &mut [0u8; 30]).is_none());
        assert!(set.write(16, &mut buf).is_none());
    }
}
