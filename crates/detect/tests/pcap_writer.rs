//! A tiny pcap / pcapng writer and packet builder for the tests.

use std::net::Ipv4Addr;

/// IPv4 + TCP, raw IP, checksums left zero (the detector does not check).
pub fn tcp4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[32] = 5 << 4;
    p[33] = flags;
    p[34..36].copy_from_slice(&1024u16.to_be_bytes());
    p
}

/// A legacy pcap file (microseconds, LINKTYPE_RAW) of `(ts_us, packet)`.
pub fn pcap(packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    portolan_detect::write::pcap_header(&mut out, 101);
    for (ts, p) in packets {
        portolan_detect::write::pcap_record(&mut out, *ts, p);
    }
    out
}

/// A pcapng file (one section, one LINKTYPE_RAW interface, microseconds).
pub fn pcapng(packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
    pcapng_as(packets, false, false)
}

/// A pcapng file as [`pcapng`], its section big-endian if `big_endian`,
/// and each packet block carrying an `opt_comment` if `comments`.
pub fn pcapng_as(packets: &[(u64, Vec<u8>)], big_endian: bool, comments: bool) -> Vec<u8> {
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    let block = |out: &mut Vec<u8>, kind: u32, body: &[u8]| {
        let len = (12 + body.len()).div_ceil(4) * 4;
        out.extend_from_slice(&u32b(kind));
        out.extend_from_slice(&u32b(len as u32));
        out.extend_from_slice(body);
        out.resize(out.len() + (len - 12 - body.len()), 0);
        out.extend_from_slice(&u32b(len as u32));
    };
    let mut shb = Vec::new();
    shb.extend_from_slice(&u32b(0x1a2b_3c4d));
    shb.extend_from_slice(&u16b(1));
    shb.extend_from_slice(&u16b(0));
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0a0d_0d0a, &shb);
    let mut idb = Vec::new();
    idb.extend_from_slice(&u16b(101));
    idb.extend_from_slice(&u16b(0));
    idb.extend_from_slice(&u32b(65535));
    block(&mut out, 1, &idb);
    for (ts, p) in packets {
        let mut epb = Vec::new();
        epb.extend_from_slice(&u32b(0));
        epb.extend_from_slice(&u32b((ts >> 32) as u32));
        epb.extend_from_slice(&u32b(*ts as u32));
        epb.extend_from_slice(&u32b(p.len() as u32));
        epb.extend_from_slice(&u32b(p.len() as u32));
        epb.extend_from_slice(p);
        epb.resize(epb.len().div_ceil(4) * 4, 0);
        if comments {
            // opt_comment "seen", then opt_endofopt.
            epb.extend_from_slice(&u16b(1));
            epb.extend_from_slice(&u16b(4));
            epb.extend_from_slice(b"seen");
            epb.extend_from_slice(&[0; 4]);
        }
        block(&mut out, 6, &epb);
    }
    out
}

/// A horizontal sweep of port 445 from 198.18.0.1 over 198.18.1.0/24 with
/// RSTs, and a client's answered connections from 198.18.0.2.
pub fn sweep_and_client() -> Vec<(u64, Vec<u8>)> {
    let scanner = Ipv4Addr::new(198, 18, 0, 1);
    let client = Ipv4Addr::new(198, 18, 0, 2);
    let server = Ipv4Addr::new(198, 18, 2, 1);
    let mut v = Vec::new();
    for h in 1..=20u8 {
        let target = Ipv4Addr::new(198, 18, 1, h);
        let t = 1_700_000_000_000_000 + u64::from(h) * 1000;
        v.push((t, tcp4(scanner, target, 40000, 445, 0x02)));
        v.push((t + 10, tcp4(target, scanner, 445, 40000, 0x14)));
        v.push((
            t + 20,
            tcp4(client, server, 50000 + u16::from(h), 443, 0x02),
        ));
        v.push((
            t + 30,
            tcp4(server, client, 443, 50000 + u16::from(h), 0x12),
        ));
    }
    v
}
