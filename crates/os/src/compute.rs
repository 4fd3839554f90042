//! The tests nmap computes from a host's answers (SEQ, OPS, WIN, ECN,
//! T1-T7, U1, IE), as pure code over the received packets.
//!
//! Input: the probe set sent ([`ProbeSet`]), when each SEQ probe left,
//! and the answer to each probe as received (an IPv4 packet) or `None`.
//! A probe with no answer makes its test missing, never `R=N`: the
//! matcher leaves missing tests out of the possible points. Packets are
//! read through `portolan-wire`'s checked views; a malformed answer counts
//! as none. No panic on any input.
//!
//! Read first: nmap.org/book/osdetect-methods.html, "Response Tests".

use std::time::Duration;

use portolan_wire::{IcmpPacket, Ipv4Packet, TcpPacket};

use crate::fingerprint::{Fingerprint, TestValues};
use crate::probes::{self, ECN, IE, PROBE_COUNT, ProbeSet, T2, U1};

/// A host's answers to one probe set.
#[derive(Clone, Debug)]
pub struct Answers<'a> {
    /// What was sent.
    pub set: ProbeSet,
    /// When each SEQ probe left, from any fixed origin.
    pub seq_sent: [Duration; 6],
    /// The answer to each probe, by index, as an IPv4 packet.
    pub replies: [Option<&'a [u8]>; PROBE_COUNT],
}

/// The fields of a TCP answer the tests read.
struct TcpAnswer<'a> {
    ttl: u8,
    df: bool,
    ip_id: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    reserved: u8,
    urgent: u16,
    options: &'a [u8],
    payload: &'a [u8],
}

fn tcp_answer(packet: &[u8]) -> Option<TcpAnswer<'_>> {
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    if ip.protocol() != 6 {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    let segment = tcp.segment();
    Some(TcpAnswer {
        ttl: ip.ttl(),
        df: ip.dont_frag(),
        ip_id: ip.ident(),
        seq: tcp.seq_number(),
        ack: tcp.ack_number(),
        flags: tcp.flags().bits(),
        window: tcp.window_len(),
        reserved: segment.get(12).map_or(0, |b| b & 0x0F),
        urgent: tcp.urgent_at(),
        options: tcp.options(),
        payload: tcp.payload(),
    })
}

/// nmap's option string: `M5B4NNSNNT11NW7`.
pub fn options_string(options: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(&kind) = options.get(i) {
        match kind {
            0 => {
                out.push('L');
                break;
            }
            1 => {
                out.push('N');
                i += 1;
                continue;
            }
            _ => {}
        }
        let Some(&len) = options.get(i + 1) else {
            break;
        };
        let len = usize::from(len);
        let Some(body) = options.get(i + 2..i + len.max(2)) else {
            break;
        };
        if len < 2 {
            break;
        }
        match (kind, body.len()) {
            (2, 2) => out.push_str(&format!("M{:X}", u16::from_be_bytes([body[0], body[1]]))),
            (3, 1) => out.push_str(&format!("W{:X}", body[0])),
            (4, 0) => out.push('S'),
            (8, 8) => {
                out.push('T');
                out.push(if body[0..4] == [0; 4] { '0' } else { '1' });
                out.push(if body[4..8] == [0; 4] { '0' } else { '1' });
            }
            _ => {}
        }
        i += len;
    }
    out
}

/// The TSval of a timestamp option, if the options carry one.
fn tsval(options: &[u8]) -> Option<u32> {
    let mut i = 0;
    while let Some(&kind) = options.get(i) {
        match kind {
            0 => return None,
            1 => i += 1,
            _ => {
                let len = usize::from(*options.get(i + 1)?);
                if len < 2 {
                    return None;
                }
                if kind == 8 && len == 10 {
                    let b = options.get(i + 2..i + 6)?;
                    return Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                }
                i += len;
            }
        }
    }
    None
}

/// nmap's flags string, in its order `EUAPRSF`.
fn flags_string(flags: u8) -> String {
    [
        (0x40, 'E'),
        (0x20, 'U'),
        (0x10, 'A'),
        (0x08, 'P'),
        (0x04, 'R'),
        (0x02, 'S'),
        (0x01, 'F'),
    ]
    .iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, c)| *c)
    .collect()
}

/// The initial TTL guess: the next of 32, 64, 128 and 255 at or above.
pub fn initial_ttl_guess(ttl: u8) -> u8 {
    match ttl {
        0..=32 => 32,
        33..=64 => 64,
        65..=128 => 128,
        _ => 255,
    }
}

fn yn(b: bool) -> String {
    if b { "Y" } else { "N" }.to_string()
}

/// CRC-32 (IEEE 802.3) of a RST's data, for RD. Bit by bit: it runs once
/// per RST that carries data, a few per host, so a table is not worth it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Greatest common divisor.
fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The smaller of the two wrapping distances between `a` and `b`.
fn mod_diff(a: u32, b: u32) -> u32 {
    a.wrapping_sub(b).min(b.wrapping_sub(a))
}

/// nmap's IP ID sequence classes (TI, CI, II); `None` when none fits.
pub fn ip_id_class(ids: &[u16], random_allowed: bool) -> Option<String> {
    if ids.iter().all(|&id| id == 0) {
        return Some("Z".into());
    }
    let diffs: Vec<u16> = ids.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    if random_allowed && diffs.iter().any(|&d| d >= 20_000) {
        return Some("RD".into());
    }
    if ids.iter().all(|&id| id == ids[0]) {
        return Some(format!("{:X}", ids[0]));
    }
    if diffs.iter().any(|&d| d > 1000 && d % 256 != 0) {
        return Some("RI".into());
    }
    if diffs.iter().all(|&d| d % 256 == 0 && d <= 5120) {
        return Some("BI".into());
    }
    if diffs.iter().all(|&d| d < 10) {
        return Some("I".into());
    }
    None
}

/// T or TG, from the answer's TTL and the distance U1 gave.
fn ttl_values(values: &mut TestValues, ttl: u8, hops: Option<u8>) {
    match hops {
        Some(h) => values.push(("T", format!("{:X}", u16::from(ttl) + u16::from(h)))),
        None => values.push(("TG", format!("{:X}", initial_ttl_guess(ttl)))),
    }
}

/// S: the answer's sequence number against the probe's acknowledgment.
fn s_value(seq: u32, probe_ack: u32) -> &'static str {
    if seq == 0 {
        "Z"
    } else if seq == probe_ack {
        "A"
    } else if seq == probe_ack.wrapping_add(1) {
        "A+"
    } else {
        "O"
    }
}

/// A: the answer's acknowledgment against the probe's sequence number.
fn a_value(ack: u32, probe_seq: u32) -> &'static str {
    if ack == 0 {
        "Z"
    } else if ack == probe_seq {
        "S"
    } else if ack == probe_seq.wrapping_add(1) {
        "S+"
    } else {
        "O"
    }
}

fn quirks(t: &TcpAnswer<'_>) -> String {
    let mut q = String::new();
    if t.reserved != 0 {
        q.push('R');
    }
    if t.urgent != 0 && t.flags & 0x20 == 0 {
        q.push('U');
    }
    q
}

fn rd(t: &TcpAnswer<'_>) -> String {
    if t.flags & 0x04 != 0 && !t.payload.is_empty() {
        format!("{:X}", crc32(t.payload))
    } else {
        "0".into()
    }
}

/// Computes every test the answers allow.
pub fn fingerprint(a: &Answers<'_>) -> Fingerprint {
    let mut fp = Fingerprint::default();
    let set = &a.set;
    let tcp = |i: usize| a.replies[i].and_then(tcp_answer);
    let hops = a.replies[U1].and_then(u1_hops);

    // SEQ, OPS, WIN from the SYN-ACKs to the six SYNs.
    let seq: Vec<(usize, TcpAnswer<'_>)> = (0..6)
        .filter_map(|i| tcp(i).map(|t| (i, t)))
        .filter(|(_, t)| t.flags & 0x12 == 0x12)
        .collect();
    if !seq.is_empty() {
        let mut values: TestValues = Vec::new();
        let secs = |i: usize, j: usize| {
            a.seq_sent[j]
                .saturating_sub(a.seq_sent[i])
                .as_secs_f64()
                .max(1e-3)
        };
        let diffs: Vec<u32> = seq
            .windows(2)
            .map(|w| mod_diff(w[1].1.seq, w[0].1.seq))
            .collect();
        let rates: Vec<f64> = seq
            .windows(2)
            .zip(&diffs)
            .map(|(w, d)| f64::from(*d) / secs(w[0].0, w[1].0))
            .collect();
        let g = diffs.iter().fold(0, |g, d| gcd(g, *d));
        if seq.len() >= 4 {
            let avg = rates.iter().sum::<f64>() / rates.len() as f64;
            let div = if g > 9 { f64::from(g) } else { 1.0 };
            let var = rates.iter().map(|r| ((r - avg) / div).powi(2)).sum::<f64>()
                / (seq.len() as f64 - 2.0);
            let sd = var.sqrt();
            let sp = if sd <= 1.0 {
                0
            } else {
                (sd.log2() * 8.0 + 0.5) as u32
            };
            values.push(("SP", format!("{sp:X}")));
        }
        if !diffs.is_empty() {
            values.push(("GCD", format!("{g:X}")));
            let avg = rates.iter().sum::<f64>() / rates.len() as f64;
            let isr = if avg < 1.0 {
                0
            } else {
                (avg.log2() * 8.0 + 0.5) as u32
            };
            values.push(("ISR", format!("{isr:X}")));
        }
        let tcp_ids: Vec<u16> = seq.iter().map(|(_, t)| t.ip_id).collect();
        let ti = (seq.len() >= 3)
            .then(|| ip_id_class(&tcp_ids, true))
            .flatten();
        if let Some(ti) = &ti {
            values.push(("TI", ti.clone()));
        }
        let closed_ids: Vec<u16> = (12..=14).filter_map(|i| tcp(i).map(|t| t.ip_id)).collect();
        if closed_ids.len() >= 2
            && let Some(ci) = ip_id_class(&closed_ids, true)
        {
            values.push(("CI", ci));
        }
        let ie_ids: Vec<u16> = (IE..IE + 2)
            .filter_map(|i| {
                a.replies[i]
                    .and_then(|p| Ipv4Packet::new_checked(p).ok())
                    .map(|ip| ip.ident())
            })
            .collect();
        let ii = (ie_ids.len() == 2)
            .then(|| ip_id_class(&ie_ids, false))
            .flatten();
        if let Some(ii) = &ii {
            values.push(("II", ii.clone()));
        }
        let incremental = |c: &Option<String>| matches!(c.as_deref(), Some("RI" | "BI" | "I"));
        if incremental(&ti) && incremental(&ii) && ti == ii {
            let (first, last) = (&seq[0], &seq[seq.len() - 1]);
            let span = (last.0 - first.0).max(1) as f64;
            let avg = f64::from(last.1.ip_id.wrapping_sub(first.1.ip_id)) / span;
            let ahead = f64::from(ie_ids[0].wrapping_sub(last.1.ip_id));
            values.push(("SS", if ahead < 3.0 * avg { "S" } else { "O" }.into()));
        }
        let stamps: Vec<Option<u32>> = seq.iter().map(|(_, t)| tsval(t.options)).collect();
        let ts = if stamps.iter().any(Option::is_none) {
            Some("U".to_string())
        } else if stamps.contains(&Some(0)) {
            Some("0".to_string())
        } else if seq.len() >= 2 {
            let hz: Vec<f64> = seq
                .windows(2)
                .zip(stamps.windows(2))
                .map(|(w, s)| {
                    // The smaller wrapping distance, as nmap's MOD_DIFF.
                    let d = mod_diff(s[1].unwrap_or(0), s[0].unwrap_or(0));
                    f64::from(d) / secs(w[0].0, w[1].0)
                })
                .collect();
            let avg = hz.iter().sum::<f64>() / hz.len() as f64;
            Some(if avg <= 5.66 {
                "1".into()
            } else if (70.0..=150.0).contains(&avg) {
                "7".into()
            } else if avg > 150.0 && avg <= 350.0 {
                "8".into()
            } else {
                format!("{:X}", (avg.log2() + 0.5) as u32)
            })
        } else {
            None
        };
        if let Some(ts) = ts {
            values.push(("TS", ts));
        }
        fp.tests[0] = Some(values);
        const O: [&str; 6] = ["O1", "O2", "O3", "O4", "O5", "O6"];
        const W: [&str; 6] = ["W1", "W2", "W3", "W4", "W5", "W6"];
        fp.tests[1] = Some(
            seq.iter()
                .map(|(i, t)| (O[*i], options_string(t.options)))
                .collect(),
        );
        fp.tests[2] = Some(
            seq.iter()
                .map(|(i, t)| (W[*i], format!("{:X}", t.window)))
                .collect(),
        );
    }

    // T1: the answer to the first SYN.
    if let Some(t) = tcp(0) {
        let mut v: TestValues = vec![("R", "Y".into()), ("DF", yn(t.df))];
        ttl_values(&mut v, t.ttl, hops);
        v.push(("S", s_value(t.seq, set.tcp_ack(0)).into()));
        v.push(("A", a_value(t.ack, set.tcp_seq(0)).into()));
        v.push(("F", flags_string(t.flags)));
        v.push(("RD", rd(&t)));
        v.push(("Q", quirks(&t)));
        fp.tests[4] = Some(v);
    }

    // ECN.
    if let Some(t) = tcp(ECN) {
        let mut v: TestValues = vec![("R", "Y".into()), ("DF", yn(t.df))];
        ttl_values(&mut v, t.ttl, hops);
        v.push(("W", format!("{:X}", t.window)));
        v.push(("O", options_string(t.options)));
        let cc = match (t.flags & 0x40 != 0, t.flags & 0x80 != 0) {
            (true, true) => "S",
            (true, false) => "Y",
            (false, true) => "O",
            (false, false) => "N",
        };
        v.push(("CC", cc.into()));
        v.push(("Q", quirks(&t)));
        fp.tests[3] = Some(v);
    }

    // T2-T7.
    for k in 0..6 {
        let index = T2 + k;
        let Some(t) = tcp(index) else { continue };
        let mut v: TestValues = vec![("R", "Y".into()), ("DF", yn(t.df))];
        ttl_values(&mut v, t.ttl, hops);
        v.push(("W", format!("{:X}", t.window)));
        v.push(("S", s_value(t.seq, set.tcp_ack(index)).into()));
        v.push(("A", a_value(t.ack, set.tcp_seq(index)).into()));
        v.push(("F", flags_string(t.flags)));
        v.push(("O", options_string(t.options)));
        v.push(("RD", rd(&t)));
        v.push(("Q", quirks(&t)));
        fp.tests[5 + k] = Some(v);
    }

    // U1.
    if let Some(v) = a.replies[U1].and_then(|p| u1_values(set, p, hops)) {
        fp.tests[11] = Some(v);
    }

    // IE: both echo replies.
    if let (Some(p1), Some(p2)) = (a.replies[IE], a.replies[IE + 1])
        && let (Ok(ip1), Ok(ip2)) = (Ipv4Packet::new_checked(p1), Ipv4Packet::new_checked(p2))
        && let (Ok(i1), Ok(i2)) = (
            IcmpPacket::new_checked(ip1.payload()),
            IcmpPacket::new_checked(ip2.payload()),
        )
    {
        let dfi = match (ip1.dont_frag(), ip2.dont_frag()) {
            (false, false) => "N",
            (true, false) => "S",
            (true, true) => "Y",
            (false, true) => "O",
        };
        let mut v: TestValues = vec![("R", "Y".into()), ("DFI", dfi.into())];
        ttl_values(&mut v, ip1.ttl(), hops);
        let cd = match (i1.code(), i2.code()) {
            (0, 0) => "Z".to_string(),
            (c1, c2) if [c1, c2] == probes::IE_CODES => "S".into(),
            (c1, c2) if c1 == c2 => format!("{c1:X}"),
            _ => "O".into(),
        };
        v.push(("CD", cd));
        fp.tests[12] = Some(v);
    }
    fp
}

/// The host's distance in hops (1 for a neighbour), from U1's quote;
/// `None` without U1's answer.
pub fn distance(a: &Answers<'_>) -> Option<u8> {
    a.replies[U1].and_then(u1_hops).map(|h| h.saturating_add(1))
}

/// The distance U1's quote gives: the TTL we sent less the TTL the host
/// received.
fn u1_hops(packet: &[u8]) -> Option<u8> {
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    let icmp = IcmpPacket::new_checked(ip.payload()).ok()?;
    let quoted = Ipv4Packet::new_truncated(icmp.payload()).ok()?;
    probes::PROBE_TTL.checked_sub(quoted.ttl())
}

fn u1_values(set: &ProbeSet, packet: &[u8], hops: Option<u8>) -> Option<TestValues> {
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    let icmp = IcmpPacket::new_checked(ip.payload()).ok()?;
    if icmp.msg_type() != 3 {
        return None;
    }
    let quoted = Ipv4Packet::new_truncated(icmp.payload()).ok()?;
    let mut v: TestValues = vec![("R", "Y".into()), ("DF", yn(ip.dont_frag()))];
    ttl_values(&mut v, ip.ttl(), hops);
    v.push(("IPL", format!("{:X}", ip.total_len())));
    v.push(("UN", format!("{:X}", icmp.rest_of_header())));
    let sent_len = (28 + probes::U1_PAYLOAD) as u16;
    v.push((
        "RIPL",
        if quoted.total_len() == sent_len {
            "G".into()
        } else {
            format!("{:X}", quoted.total_len())
        },
    ));
    v.push((
        "RID",
        if quoted.ident() == probes::U1_IP_ID {
            "G".into()
        } else {
            format!("{:X}", quoted.ident())
        },
    ));
    let ripck = if quoted.checksum() == 0 {
        "Z"
    } else if quoted.verify_checksum() {
        "G"
    } else {
        "I"
    };
    v.push(("RIPCK", ripck.into()));
    let udp = quoted.payload();
    let ruck = udp.get(6..8).map(|b| u16::from_be_bytes([b[0], b[1]]));
    v.push((
        "RUCK",
        match ruck {
            Some(c) if c == set.udp_checksum() => "G".into(),
            Some(c) => format!("{c:X}"),
            None => "G".into(),
        },
    ));
    let data = udp.get(8..).unwrap_or(&[]);
    v.push((
        "RUD",
        if data.iter().all(|b| *b == probes::U1_BYTE) {
            "G"
        } else {
            "I"
        }
        .into(),
    ));
    Some(v)
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Answers built byte by byte from the RFC layouts, as a Linux 6 host
    //! in the lab sends them.
    use super::*;
    use portolan_wire::checksum;
    use std::net::Ipv4Addr;

    pub(crate) fn set() -> ProbeSet {
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

    pub(crate) fn ipv4(
        set: &ProbeSet,
        protocol: u8,
        ttl: u8,
        id: u16,
        df: bool,
        body: &[u8],
    ) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((20 + body.len()) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        p[6] = if df { 0x40 } else { 0 };
        p[8] = ttl;
        p[9] = protocol;
        p[12..16].copy_from_slice(&set.target.octets());
        p[16..20].copy_from_slice(&set.source.octets());
        let sum = checksum::checksum(&p);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(body);
        p
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn tcp(
        set: &ProbeSet,
        index: usize,
        from: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        options: &[u8],
        id: u16,
    ) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&from.to_be_bytes());
        t[2..4].copy_from_slice(&set.source_port(index).to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[12] = (((20 + options.len()) / 4) as u8) << 4;
        t[13] = flags;
        t[14..16].copy_from_slice(&window.to_be_bytes());
        t.extend_from_slice(options);
        ipv4(set, 6, 64, id, true, &t)
    }

    /// Linux's SYN-ACK options to SEQ probe `i`, with TSval `ts`.
    pub(crate) fn linux_options(i: usize, ts: u32) -> Vec<u8> {
        let mut o = match i {
            0 | 4 => vec![2, 4, 0x05, 0xB4, 4, 2, 8, 10],
            1 => vec![2, 4, 0x05, 0x78, 4, 2, 8, 10],
            2 => vec![2, 4, 0x02, 0x80, 1, 1, 8, 10],
            3 => vec![2, 4, 0x05, 0xB4, 4, 2, 8, 10],
            _ => vec![2, 4, 0x01, 0x09, 4, 2, 8, 10],
        };
        o.extend_from_slice(&ts.to_be_bytes());
        o.extend_from_slice(&0xFFFF_FFFFu32.to_be_bytes());
        if i != 5 {
            o.extend_from_slice(&[1, 3, 3, 7]);
        }
        o
    }

    /// A whole Linux host's answers: SEQ with random ISNs 100 ms apart and
    /// a 1000 Hz clock, T5-T7 RSTs, no T2-T4, IE and U1.
    pub(crate) fn linux_replies(set: &ProbeSet) -> Vec<Option<Vec<u8>>> {
        let mut r: Vec<Option<Vec<u8>>> = vec![None; PROBE_COUNT];
        let isns = [
            0x5A3C_1F02u32,
            0x1B77_0A31,
            0xC4D2_9E1F,
            0x7E01_5523,
            0x0913_F8AC,
            0xA8B0_3C67,
        ];
        for i in 0..6 {
            r[i] = Some(tcp(
                set,
                i,
                22,
                isns[i],
                set.tcp_seq(i) + 1,
                0x12,
                0xFE88,
                &linux_options(i, 1_000_000 + 100 * i as u32),
                0,
            ));
        }
        r[ECN] = Some(tcp(
            set,
            ECN,
            22,
            0x4444_0001,
            set.tcp_seq(ECN) + 1,
            0x52,
            0xFAF0,
            &[2, 4, 5, 0xB4, 1, 1, 4, 2, 1, 3, 3, 7],
            0,
        ));
        for k in 3..6 {
            let index = T2 + k;
            let ack = if index == 12 {
                set.tcp_seq(index) + 1
            } else {
                set.tcp_seq(index)
            };
            let (seq, flags) = if index == 13 {
                (set.tcp_ack(index), 0x04)
            } else {
                (0, 0x14)
            };
            r[index] = Some(tcp(set, index, 1, seq, ack, flags, 0, &[], 0));
        }
        // Echo replies: DF clear, codes echoed, Linux's IP IDs.
        for w in 0..2 {
            let mut icmp = vec![0u8; 8 + if w == 0 { 120 } else { 150 }];
            icmp[1] = probes::IE_CODES[w];
            icmp[4..6].copy_from_slice(&set.icmp_id.wrapping_add(w as u16).to_be_bytes());
            r[IE + w] = Some(ipv4(set, 1, 64, 0x9000 + 0x1111 * w as u16, false, &icmp));
        }
        // Port unreachable quoting the whole of U1.
        let mut u1 = vec![0u8; 400];
        let len = set.write(U1, &mut u1).unwrap();
        let mut icmp = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&u1[..len]);
        r[U1] = Some(ipv4(set, 1, 64, 0x7777, false, &icmp));
        r
    }

    pub(crate) fn answers<'a>(set: ProbeSet, replies: &'a [Option<Vec<u8>>]) -> Answers<'a> {
        let mut out = Answers {
            set,
            seq_sent: std::array::from_fn(|i| Duration::from_millis(100 * i as u64)),
            replies: [None; PROBE_COUNT],
        };
        for (slot, r) in out.replies.iter_mut().zip(replies) {
            *slot = r.as_deref();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn option_strings_are_nmaps() {
        assert_eq!(options_string(&linux_options(0, 5)), "M5B4ST11NW7");
        assert_eq!(
            options_string(&[2, 4, 5, 0xB4, 1, 1, 4, 2, 1, 3, 3, 7]),
            "M5B4NNSNW7"
        );
        assert_eq!(
            options_string(&[8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            "T00L"
        );
        // Truncated and zero-length options stop the reading, no panic.
        assert_eq!(options_string(&[2, 4, 5]), "");
        assert_eq!(options_string(&[3, 0, 1]), "");
        assert_eq!(options_string(&[]), "");
    }

    #[test]
    fn ip_id_classes_follow_nmaps_rules() {
        assert_eq!(ip_id_class(&[0, 0, 0], true).as_deref(), Some("Z"));
        assert_eq!(ip_id_class(&[5, 30_000, 7], true).as_deref(), Some("RD"));
        assert_eq!(ip_id_class(&[7, 7, 7], true).as_deref(), Some("7"));
        assert_eq!(ip_id_class(&[100, 1300, 2600], true).as_deref(), Some("RI"));
        assert_eq!(
            ip_id_class(&[0x100, 0x200, 0x300], true).as_deref(),
            Some("BI")
        );
        assert_eq!(ip_id_class(&[10, 11, 13], true).as_deref(), Some("I"));
        assert_eq!(ip_id_class(&[10, 40, 90], true), None);
        // II never reads RD.
        assert_eq!(ip_id_class(&[0x9000, 0xA111], false).as_deref(), Some("RI"));
    }

    #[test]
    fn a_linux_hosts_answers_give_linuxs_tests() {
        let set = set();
        let replies = linux_replies(&set);
        let fp = fingerprint(&answers(set, &replies));
        let get = |t, a| fp.get(t, a).map(str::to_string);
        assert_eq!(get(0, "TI").as_deref(), Some("Z"));
        assert_eq!(get(0, "CI").as_deref(), Some("Z"));
        assert_eq!(get(0, "II").as_deref(), Some("RI"));
        assert_eq!(get(0, "TS").as_deref(), Some("A"), "{fp}");
        assert_eq!(get(0, "SS"), None);
        assert_eq!(get(1, "O1").as_deref(), Some("M5B4ST11NW7"));
        assert_eq!(get(1, "O6").as_deref(), Some("M109ST11"));
        assert_eq!(get(2, "W1").as_deref(), Some("FE88"));
        assert_eq!(get(3, "CC").as_deref(), Some("Y"));
        // Distance 1 (nothing between): T is the TTL itself.
        assert_eq!(get(4, "T").as_deref(), Some("40"));
        assert_eq!(get(4, "F").as_deref(), Some("AS"));
        assert_eq!(
            (get(4, "S").as_deref(), get(4, "A").as_deref()),
            (Some("O"), Some("S+"))
        );
        assert_eq!(get(10, "F").as_deref(), Some("AR"));
        // T5 (a SYN to the closed port): RST-ACK acknowledging it.
        assert_eq!(get(8, "A").as_deref(), Some("S+"));
        assert_eq!(get(11, "IPL").as_deref(), Some("164"));
        for attr in ["RIPL", "RID", "RIPCK", "RUCK", "RUD"] {
            assert_eq!(get(11, attr).as_deref(), Some("G"), "{attr}");
        }
        assert_eq!(
            (get(12, "DFI").as_deref(), get(12, "CD").as_deref()),
            (Some("N"), Some("S"))
        );
        assert_eq!(fp.missing(), ["T2", "T3", "T4"]);
    }

    #[test]
    fn silent_probes_make_missing_tests_and_garbage_counts_as_silence() {
        let set = set();
        let mut replies = linux_replies(&set);
        replies[U1] = None;
        replies[IE] = Some(vec![0x45, 0, 0]);
        for r in replies.iter_mut().skip(T2) {
            if r.is_some() {
                *r = Some(vec![0xFF; 3]);
            }
        }
        let fp = fingerprint(&answers(set, &replies));
        assert!(fp.missing().contains(&"U1") && fp.missing().contains(&"IE"));
        // Without U1 the distance is unknown: TG instead of T.
        assert_eq!(fp.get(4, "TG"), Some("40"));
        assert_eq!(fp.get(4, "T"), None);
        let none = fingerprint(&answers(set, &[]));
        assert_eq!(none.missing().len(), 13);
    }

    #[test]
    fn crc32_is_ieee() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
