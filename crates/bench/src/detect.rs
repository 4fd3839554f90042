//! `portolan-bench detect`: `portolan detect --pcap` on a generated capture
//! of at least 10 million packets: packets per second on one core, peak
//! memory and bytes per tracked source, probes to decision per scan kind,
//! and whether every planted scanner was found with its kind and no
//! benign source was flagged.
//!
//! The capture is one block of traffic replicated with shifted addresses
//! and times (Ethernet frames, each from its sender's own card): 58 benign
//! clients making 20 HTTPS connections each (one in twenty refused), and
//! one scan of each kind: a vertical SYN scan of 1,000 ports, a sweep of
//! port 23 over 256 hosts, a strobe of three ports over 100 hosts, a
//! vertical scan of 16 ports split over four sources (four each: no
//! source alone crosses a threshold), a decoy scan of 100 ports from a
//! real source and three spoofed copies, a slow scan (nmap `-T0`'s pace:
//! one probe every five minutes), an idle scanner reading its zombie's IP
//! ID twelve times (SYN+ACKs answered by RSTs), and an ARP sweep of 100
//! addresses of which two answer. Sources come from 198.18.0.0/15, the
//! scanned hosts from 198.19.255.0/24. Nothing is sent on any network.
//!
//! No peer runs: Zeek, Snort and Suricata are not packaged for this
//! machine. Instead, each planted scan is set against the thresholds Zeek's
//! `policy/misc/scan.zeek` publishes (25 failed hosts on one port, or 15
//! failed ports on one host, within 5 minutes): whether Zeek would fire
//! is printed beside Portolan's verdict.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use portolan_detect::write::{pcap_header, pcap_record};

use crate::harness::{mix, sibling_binary};
use crate::measure::{Cost, run_measured};

/// Packets the capture holds at least.
const PACKETS: u64 = 10_000_000;
/// A block's length: the slow scan's ten probes five minutes apart fit.
const BLOCK_SPAN_US: u64 = 3_600_000_000;
/// Sources per block.
const SOURCES_PER_BLOCK: u32 = 72;
/// The first block's time (2026-12-01).
const T0_US: u64 = 1_796_083_200_000_000;
/// Longest one detector run may take.
const RUN_LIMIT: Duration = Duration::from_secs(600);

const SYN: u8 = 0x02;
const SYN_ACK: u8 = 0x12;
const RST: u8 = 0x04;
const RST_ACK: u8 = 0x14;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;

/// The planted kinds, in the order of the table.
const KINDS: [Planted; 9] = [
    Planted::Vertical,
    Planted::Horizontal,
    Planted::Strobe,
    Planted::Distributed,
    Planted::Decoy,
    Planted::Slow,
    Planted::Idle,
    Planted::ArpSweep,
    Planted::Benign,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Planted {
    Vertical,
    Horizontal,
    Strobe,
    Distributed,
    Decoy,
    Slow,
    Idle,
    ArpSweep,
    Benign,
}

/// The first benign source of a block.
const FIRST_BENIGN: u32 = 14;

impl Planted {
    fn label(self) -> &'static str {
        match self {
            Planted::Vertical => "vertical (1,000 ports)",
            Planted::Horizontal => "sweep (port 23, 256 hosts)",
            Planted::Strobe => "strobe (3 ports, 100 hosts)",
            Planted::Distributed => "split (16 ports, 4 sources)",
            Planted::Decoy => "decoy (100 ports, 3 decoys)",
            Planted::Slow => "slow (1 probe / 5 min)",
            Planted::Idle => "idle (12 zombie readings)",
            Planted::ArpSweep => "ARP sweep (100 addresses)",
            Planted::Benign => "benign clients (58)",
        }
    }

    /// The alert kind that finds it.
    fn kind(self) -> &'static str {
        match self {
            Planted::Vertical | Planted::Slow => "vertical",
            Planted::Horizontal => "horizontal",
            Planted::Strobe => "strobe",
            Planted::Distributed => "distributed",
            Planted::Decoy => "decoy",
            Planted::Idle => "idle",
            Planted::ArpSweep => "horizontal",
            Planted::Benign => "-",
        }
    }

    /// Whether Zeek's scan.zeek would fire (25 failed hosts on one port or
    /// 15 failed ports on one host, per source, within 5 minutes), from
    /// the block's parameters.
    fn zeek(self) -> &'static str {
        match self {
            Planted::Vertical => "yes (997 failed ports in 0.1 s)",
            Planted::Horizontal => "yes (256 failed hosts in 0.3 s)",
            Planted::Strobe => "yes (100 failed hosts per port)",
            Planted::Distributed => "no (4 ports per source)",
            Planted::Decoy => "yes, on all 4 sources (cannot tell the real one)",
            Planted::Slow => "no (1 port per 5 min)",
            Planted::Idle => "no (no connection attempt: SYN+ACKs to the zombie)",
            Planted::ArpSweep => "no (reads no ARP)",
            Planted::Benign => "no",
        }
    }
}

/// One packet of the block, before it is written.
#[derive(Clone, Copy)]
struct Pkt {
    ts_us: u64,
    src: u32,
    dst: u32,
    sport: u16,
    dport: u16,
    /// TCP flags, or [`ARP_REQUEST`] / [`ARP_REPLY`].
    flags: u8,
    /// The IPv4 identification (TCP only).
    ip_id: u16,
}

impl Pkt {
    /// A packet with IP ID 0.
    fn new(ts_us: u64, src: u32, dst: u32, sport: u16, dport: u16, flags: u8) -> Pkt {
        Pkt {
            ts_us,
            src,
            dst,
            sport,
            dport,
            flags,
            ip_id: 0,
        }
    }
}

/// [`Pkt::flags`] values for ARP (no TCP packet has all of SYN, RST and
/// FIN set).
const ARP_REQUEST: u8 = 0xff;
const ARP_REPLY: u8 = 0xfe;

/// A frame's length: Ethernet and IPv4 + TCP (ARP's 28 bytes fit).
const FRAME: usize = 54;

/// The card of the host with address `ip`.
fn mac_of(ip: u32) -> [u8; 6] {
    let [a, b, c, d] = ip.to_be_bytes();
    [2, 0, a, b, c, d]
}

/// Writes `p` as an Ethernet frame into `out`; returns its length.
fn frame(p: &Pkt, out: &mut [u8; FRAME]) -> usize {
    *out = [0; FRAME];
    let arp = matches!(p.flags, ARP_REQUEST | ARP_REPLY);
    let dst_mac = if p.flags == ARP_REQUEST {
        [0xff; 6]
    } else {
        mac_of(p.dst)
    };
    out[0..6].copy_from_slice(&dst_mac);
    out[6..12].copy_from_slice(&mac_of(p.src));
    if arp {
        out[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        let body = &mut out[14..];
        body[0..8].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        if p.flags == ARP_REPLY {
            body[7] = 2;
            body[18..24].copy_from_slice(&mac_of(p.dst));
        }
        body[8..14].copy_from_slice(&mac_of(p.src));
        body[14..18].copy_from_slice(&p.src.to_be_bytes());
        body[24..28].copy_from_slice(&p.dst.to_be_bytes());
        return 14 + 28;
    }
    out[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let body = &mut out[14..];
    body[0] = 0x45;
    body[2..4].copy_from_slice(&40u16.to_be_bytes());
    body[4..6].copy_from_slice(&p.ip_id.to_be_bytes());
    body[8] = 64;
    body[9] = 6;
    body[12..16].copy_from_slice(&p.src.to_be_bytes());
    body[16..20].copy_from_slice(&p.dst.to_be_bytes());
    body[20..22].copy_from_slice(&p.sport.to_be_bytes());
    body[22..24].copy_from_slice(&p.dport.to_be_bytes());
    // The sequence number: distinct per probe (the zombie test counts a
    // repeated one as a retransmission).
    body[24..28].copy_from_slice(&(p.ts_us as u32).to_be_bytes());
    body[32] = 5 << 4;
    body[33] = p.flags;
    body[34..36].copy_from_slice(&1024u16.to_be_bytes());
    FRAME
}

/// A scanned host.
fn local(i: u32) -> u32 {
    u32::from(Ipv4Addr::new(198, 19, 255, 0)) + (i & 0xff)
}

/// Source `k` of block `b`.
fn source(block: u32, k: u32) -> u32 {
    u32::from(Ipv4Addr::new(198, 18, 0, 0)) + block * SOURCES_PER_BLOCK + k
}

/// What source `k` of a block is.
fn planted(k: u32) -> Planted {
    match k {
        0 => Planted::Vertical,
        1 => Planted::Horizontal,
        2 => Planted::Strobe,
        3..=6 => Planted::Distributed,
        7..=10 => Planted::Decoy,
        11 => Planted::Slow,
        12 => Planted::Idle,
        13 => Planted::ArpSweep,
        _ => Planted::Benign,
    }
}

/// A probe from `src` to `dst`:`dport` at `t`, and the answer: open ports
/// answer SYN+ACK (and the scanner, if `follow`, resets it), closed ones
/// RST+ACK, silent ones nothing.
#[allow(clippy::too_many_arguments)]
fn probe(
    out: &mut Vec<Pkt>,
    t: u64,
    src: u32,
    dst: u32,
    dport: u16,
    answer: Option<bool>,
    follow: bool,
) {
    let sport = 40_000 + (src & 0x3ff) as u16;
    let pkt = Pkt::new;
    out.push(pkt(t, src, dst, sport, dport, SYN));
    match answer {
        Some(true) => {
            out.push(pkt(t + 50, dst, src, dport, sport, SYN_ACK));
            if follow {
                out.push(pkt(t + 80, src, dst, sport, dport, RST));
            }
        }
        Some(false) => out.push(pkt(t + 50, dst, src, dport, sport, RST_ACK)),
        None => {}
    }
}

/// One block's packets, sorted by time.
fn block(b: u32, out: &mut Vec<Pkt>) {
    out.clear();
    let t0 = T0_US + u64::from(b) * BLOCK_SPAN_US;
    let s = |k| source(b, k);
    // Vertical: ports 1-1000 of host 0, 22/80/443 open, 100 µs apart.
    for port in 1..=1000u16 {
        let open = matches!(port, 22 | 80 | 443);
        probe(
            out,
            t0 + u64::from(port) * 100,
            s(0),
            local(0),
            port,
            Some(open),
            true,
        );
    }
    // Sweep of port 23: even hosts refuse, odd ones are silent.
    for h in 0..256u32 {
        let answer = (h % 2 == 0).then_some(false);
        probe(
            out,
            t0 + u64::from(h) * 1000,
            s(1),
            local(h),
            23,
            answer,
            true,
        );
    }
    // Strobe: 22, 80, 445 over hosts 0-99; one host in ten has ssh.
    for h in 0..100u32 {
        for (i, port) in [22u16, 80, 445].into_iter().enumerate() {
            let open = port == 22 && h % 10 == 0;
            let t = t0 + u64::from(h) * 3000 + i as u64 * 1000;
            probe(out, t, s(2), local(h), port, Some(open), true);
        }
    }
    // Split: ports 1-16 of host 5 over sources 3-6, four each.
    for port in 1..=16u16 {
        let src = s(3 + u32::from(port % 4));
        probe(
            out,
            t0 + u64::from(port) * 10_000,
            src,
            local(5),
            port,
            Some(false),
            true,
        );
    }
    // Decoy: ports 1-100 of host 7 from source 7 (real) and 8-10 (copies);
    // port 80 open; only the real one resets its SYN+ACK.
    for port in 1..=100u16 {
        for k in 7..=10u32 {
            let t = t0 + u64::from(port) * 1000 + u64::from(k - 7) * 10;
            probe(out, t, s(k), local(7), port, Some(port == 80), k == 7);
        }
    }
    // Slow: ten ports of host 9, one every five minutes.
    for (i, port) in [21u16, 22, 23, 25, 80, 110, 139, 443, 445, 3389]
        .into_iter()
        .enumerate()
    {
        let open = matches!(port, 22 | 80);
        let t = t0 + i as u64 * 300_000_000;
        probe(out, t, s(11), local(9), port, Some(open), true);
    }
    let pkt = |ts_us, src, dst, sport, dport, flags, ip_id| Pkt {
        ip_id,
        ..Pkt::new(ts_us, src, dst, sport, dport, flags)
    };
    // Idle: twelve readings of host 20's IP ID, through port 443, 1 ms
    // apart; each RST's ID two past the last (the zombie answered the
    // target in between).
    for n in 0..12u16 {
        let t = t0 + 20_000 + u64::from(n) * 1000;
        let sport = 50_000 + n;
        out.push(pkt(t, s(12), local(20), sport, 443, SYN_ACK, 0));
        out.push(pkt(t + 60, local(20), s(12), 443, sport, RST, 1000 + 2 * n));
    }
    // ARP sweep of hosts 150-249, 200 µs apart; 200 and 210 answer.
    for h in 150..250u32 {
        let t = t0 + 30_000 + u64::from(h - 150) * 200;
        out.push(pkt(t, s(13), local(h), 0, 0, ARP_REQUEST, 0));
        if h == 200 || h == 210 {
            out.push(pkt(t + 40, local(h), s(13), 0, 0, ARP_REPLY, 0));
        }
    }
    // Benign: 58 clients, 20 connections each to 16 servers' port 443
    // (one in twenty refused), over the first 10 s.
    for c in FIRST_BENIGN..SOURCES_PER_BLOCK {
        let client = s(c);
        for n in 0..20u64 {
            let r = mix(u64::from(b) << 32 | u64::from(c) << 8 | n);
            let server = local(100 + (r % 16) as u32);
            let t = t0 + (r >> 8) % 10_000_000;
            let sport = 50_000 + n as u16;
            let pkt =
                |dt, src, dst, sport, dport, flags| Pkt::new(t + dt, src, dst, sport, dport, flags);
            out.push(pkt(0, client, server, sport, 443, SYN));
            if n == 7 {
                out.push(pkt(200, server, client, 443, sport, RST_ACK));
                continue;
            }
            out.push(pkt(200, server, client, 443, sport, SYN_ACK));
            out.push(pkt(400, client, server, sport, 443, ACK));
            out.push(pkt(600, client, server, sport, 443, PSH_ACK));
        }
    }
    out.sort_by_key(|p| p.ts_us);
}

/// Writes `blocks` blocks to `path`; returns the packets written.
fn write_capture(path: &Path, blocks: u32) -> std::io::Result<u64> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut buf = Vec::with_capacity(64);
    pcap_header(&mut buf, 1);
    w.write_all(&buf)?;
    let (mut pkts, mut bytes, mut written) = (Vec::new(), [0u8; FRAME], 0u64);
    for b in 0..blocks {
        block(b, &mut pkts);
        for p in &pkts {
            let len = frame(p, &mut bytes);
            buf.clear();
            pcap_record(&mut buf, p.ts_us, &bytes[..len]);
            w.write_all(&buf)?;
        }
        written += pkts.len() as u64;
    }
    w.flush()?;
    Ok(written)
}

/// Runs the detector on `capture`, alerts to `alerts`.
fn run_detector(capture: &Path, alerts: &Path) -> Cost {
    let mut cmd = Command::new(sibling_binary("portolan"));
    cmd.args(["detect", "--no-summary", "-o"])
        .arg(alerts)
        .arg("--pcap")
        .arg(capture);
    run_measured(cmd, RUN_LIMIT, Stdio::null())
}

/// What the alerts say about each planted kind: blocks found with the
/// right kind and source, and the probes seen at each decision.
struct Verdicts {
    found: [u32; KINDS.len()],
    probes: [Vec<u64>; KINDS.len()],
    failures: [Vec<u64>; KINDS.len()],
    flagged_benign: u32,
    /// Split scans found whose group also took in another scanner's
    /// failures on the same host (the strobe's, at the same time).
    split_with_extra: u32,
}

fn verdicts(alerts: &str, blocks: u32) -> Verdicts {
    let mut v = Verdicts {
        found: [0; KINDS.len()],
        probes: Default::default(),
        failures: Default::default(),
        flagged_benign: 0,
        split_with_extra: 0,
    };
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let locate = |addr: &serde_json::Value| -> Option<(u32, u32)> {
        let a: Ipv4Addr = addr.as_str()?.parse().ok()?;
        let n = u32::from(a).checked_sub(base)?;
        Some((n / SOURCES_PER_BLOCK, n % SOURCES_PER_BLOCK))
    };
    // Per block and kind: found already (count each once).
    let mut seen = vec![[false; KINDS.len()]; blocks as usize];
    for line in alerts.lines() {
        let Ok(a) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some((b, k)) = locate(&a["source"]) else {
            continue;
        };
        let Some(slot) = seen.get_mut(b as usize) else {
            continue;
        };
        let kind = planted(k);
        if kind == Planted::Benign {
            v.flagged_benign += 1;
            continue;
        }
        let i = KINDS.iter().position(|&p| p == kind).unwrap_or(0);
        let group: Vec<u32> = a["group"]["sources"]
            .as_array()
            .map(|s| s.iter().filter_map(&locate).map(|(_, k)| k).collect())
            .unwrap_or_default();
        let right = a["kind"] == kind.kind()
            && match kind {
                // The whole group, and the real source named.
                Planted::Distributed => (3..=6).all(|k| group.contains(&k)),
                Planted::Decoy => a["group"]["real_source"] == a["source"] && k == 7,
                Planted::ArpSweep => a["proto"] == "arp",
                _ => true,
            };
        if right && !slot[i] {
            slot[i] = true;
            if kind == Planted::Distributed && group.len() > 4 {
                v.split_with_extra += 1;
            }
            v.found[i] += 1;
            v.probes[i].push(a["probes"].as_u64().unwrap_or(0));
            v.failures[i].push(a["failures"].as_u64().unwrap_or(0));
        }
    }
    v
}

fn median(values: &mut [u64]) -> Option<u64> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

/// The scenario.
pub fn detect_bench(runs: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("portolan-bench-detect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = bench_in(&dir, runs);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn bench_in(dir: &Path, runs: usize) -> Result<(), String> {
    let mut one = Vec::new();
    block(0, &mut one);
    let per_block = one.len() as u64;
    let blocks = PACKETS.div_ceil(per_block) as u32;
    let (small, full) = (dir.join("small.pcap"), dir.join("full.pcap"));
    let small_blocks = 16;
    let small_packets = write_capture(&small, small_blocks).map_err(|e| e.to_string())?;
    let packets = write_capture(&full, blocks).map_err(|e| e.to_string())?;
    let size = std::fs::metadata(&full).map(|m| m.len()).unwrap_or(0);
    println!(
        "portolan detect --pcap on a generated capture: {packets} packets ({:.0} MB), {blocks} blocks of {per_block}, {} sources",
        size as f64 / 1e6,
        u64::from(blocks) * u64::from(SOURCES_PER_BLOCK)
    );
    // Warm the page cache, then the median of `runs`.
    let alerts = dir.join("alerts.jsonl");
    let _ = run_detector(&full, &alerts);
    let mut costs: Vec<Cost> = (0..runs).map(|_| run_detector(&full, &alerts)).collect();
    costs.sort_by_key(|c| c.wall);
    let cost = costs[costs.len() / 2];
    if cost.status != Some(1) {
        return Err(format!(
            "portolan detect exited {:?} (1 expected: scans planted)",
            cost.status
        ));
    }
    let small_alerts = dir.join("small.jsonl");
    let mut small_costs: Vec<Cost> = (0..runs)
        .map(|_| run_detector(&small, &small_alerts))
        .collect();
    small_costs.sort_by_key(|c| c.max_rss_kib);
    let small_cost = small_costs[small_costs.len() / 2];

    let sources = u64::from(blocks) * u64::from(SOURCES_PER_BLOCK);
    let small_sources = u64::from(small_blocks) * u64::from(SOURCES_PER_BLOCK);
    let per_source = (cost.max_rss_kib.saturating_sub(small_cost.max_rss_kib) * 1024) as f64
        / (sources - small_sources) as f64;
    println!(
        "\n{:<28} {:>10} {:>10} {:>14} {:>12}",
        "RUN", "WALL", "CPU", "PACKETS/S", "PEAK RSS"
    );
    for (label, c, n) in [
        ("full capture", cost, packets),
        ("16 blocks (baseline)", small_cost, small_packets),
    ] {
        println!(
            "{:<28} {:>9.2}s {:>9.2}s {:>14.0} {:>9} MiB",
            label,
            c.wall.as_secs_f64(),
            c.cpu.as_secs_f64(),
            n as f64 / c.wall.as_secs_f64().max(1e-9),
            c.max_rss_kib / 1024
        );
    }
    println!(
        "memory per tracked source: {per_source:.0} bytes ((peak − baseline peak) / (sources − baseline sources); goal 200)"
    );
    println!(
        "peak over sources, fixed tables included: {:.0} bytes (the pair table and the source table are allocated once, at their budgets)",
        (cost.max_rss_kib * 1024) as f64 / sources as f64
    );

    let text = std::fs::read_to_string(&alerts).map_err(|e| e.to_string())?;
    let mut v = verdicts(&text, blocks);
    println!(
        "\n{:<30} {:>12} {:>16} {:>8}  {:<12} ZEEK SCAN.ZEEK WOULD FIRE",
        "PLANTED (PER BLOCK)", "FOUND", "PROBES TO DECIDE", "FAILED", "KIND"
    );
    for (i, kind) in KINDS.iter().enumerate() {
        if *kind == Planted::Benign {
            println!(
                "{:<30} {:>12} {:>16} {:>8}  {:<12} {}",
                kind.label(),
                format!("{} flagged", v.flagged_benign),
                "-",
                "-",
                "-",
                kind.zeek()
            );
            continue;
        }
        let probes = median(&mut v.probes[i]).map_or("-".into(), |p| p.to_string());
        let failed = median(&mut v.failures[i]).map_or("-".into(), |p| p.to_string());
        println!(
            "{:<30} {:>12} {:>16} {:>8}  {:<12} {}",
            kind.label(),
            format!("{}/{blocks}", v.found[i]),
            probes,
            failed,
            kind.kind(),
            kind.zeek()
        );
    }
    println!(
        "\nPROBES TO DECIDE: the alert's probe count (median over blocks); split and decoy: the group's failed probes into the scanned host. FAILED: the failures counted at the decision (a silence counts at the 3 s answer timeout, so a fast sweep has sent more by then)."
    );
    println!(
        "split scans whose group also took in the strobe's failures on the same host at the same time: {}/{}",
        v.split_with_extra, v.found[3]
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_detect::{Detector, DetectorConfig, decode, read_capture};

    #[test]
    fn every_planted_scan_of_a_few_blocks_is_found_and_no_client_flagged() {
        let dir =
            std::env::temp_dir().join(format!("portolan-bench-detect-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("blocks.pcap");
        let blocks = 3;
        write_capture(&path, blocks).unwrap();
        let mut d = Detector::new(DetectorConfig::default());
        let mut last = 0;
        read_capture(&path, |p| {
            last = p.ts_ns;
            if let Some(e) = decode(p.linktype, p.ts_ns, p.data) {
                d.observe(&e);
            }
        })
        .unwrap();
        d.finish(last);
        let text: String = d
            .drain_alerts()
            .iter()
            .map(|a| serde_json::to_string(a).unwrap() + "\n")
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        let v = verdicts(&text, blocks);
        for (i, kind) in KINDS.iter().enumerate() {
            if *kind != Planted::Benign {
                assert_eq!(v.found[i], blocks, "{kind:?}:\n{text}");
            }
        }
        assert_eq!(v.flagged_benign, 0, "{text}");
    }
}
