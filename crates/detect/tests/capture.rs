//! Capture files end to end: every format reads the same packets and the
//! same alerts; bad files give an error with the offset or are counted;
//! random bytes never panic.

use std::io::Write;
use std::path::{Path, PathBuf};

use portolan_detect::{
    CaptureError, Detector, DetectorConfig, ScanKind, decode, read_capture, read_captures_merged,
    read_stream,
};
use proptest::prelude::*;

use crate::counting::allocations_during;
use crate::pcap_writer::{pcap, pcapng, pcapng_as, sweep_and_client};

fn temp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portolan-detect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn detect(path: &Path) -> (u64, Vec<portolan_detect::Alert>) {
    let mut d = Detector::new(DetectorConfig::default());
    let mut last = 0;
    let stats = read_capture(path, |p| {
        last = p.ts_ns;
        if let Some(e) = decode(p.linktype, p.ts_ns, p.data) {
            d.observe(&e);
        }
    })
    .unwrap();
    d.finish(last);
    (stats.packets, d.drain_alerts())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn pcap_pcapng_and_gzip_give_the_same_alerts() {
    let packets = sweep_and_client();
    let files = [
        temp("a.pcap", &pcap(&packets)),
        temp("a.pcapng", &pcapng(&packets)),
        temp("a.pcap.gz", &gzip(&pcap(&packets))),
        temp("a.pcapng.gz", &gzip(&pcapng(&packets))),
    ];
    for f in &files {
        let (count, alerts) = detect(f);
        assert_eq!(count, packets.len() as u64, "{f:?}");
        assert_eq!(alerts.len(), 1, "{f:?}: {alerts:?}");
        assert_eq!(alerts[0].kind, ScanKind::Horizontal);
        assert_eq!(alerts[0].source.to_string(), "198.18.0.1");
        assert_eq!(alerts[0].ports, vec![445]);
    }
}

#[test]
fn files_are_merged_by_time_across_batches_and_a_bad_one_is_named() {
    let packets = sweep_and_client();
    // Split the capture in two files, alternate packets in each, one of
    // them gzip'd pcapng; repeat it past a batch's 4,096 packets.
    let mut many = Vec::new();
    for round in 0..300u64 {
        for (ts, bytes) in &packets {
            many.push((ts + round * 1_000_000_000, bytes.clone()));
        }
    }
    let (odd, even): (Vec<_>, Vec<_>) = many
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, _)| i % 2 == 1);
    let strip = |v: Vec<(usize, (u64, Vec<u8>))>| v.into_iter().map(|(_, p)| p).collect::<Vec<_>>();
    let files = [
        temp("odd.pcap", &pcap(&strip(odd))),
        temp("even.pcapng.gz", &gzip(&pcapng(&strip(even)))),
    ];
    let mut seen = Vec::new();
    let stats = read_captures_merged(&files, |p| seen.push((p.ts_ns, p.data.to_vec()))).unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(stats[0].packets + stats[1].packets, many.len() as u64);
    let want: Vec<(u64, Vec<u8>)> = many.iter().map(|(t, b)| (t * 1000, b.clone())).collect();
    assert_eq!(seen.len(), want.len());
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "in time order");
    assert!(seen == want, "the same packets, merged");
    let junk = temp("junk.txt", b"not a capture at all, only words");
    let err = read_captures_merged(&[files[0].clone(), junk], |_| {}).unwrap_err();
    assert!(err.to_string().contains("junk.txt"), "{err}");
}

#[test]
fn pcapng_blocks_with_options_or_big_endian_give_the_same_packets_as_pcap() {
    let packets = sweep_and_client();
    let read = |bytes: &[u8]| {
        let mut seen = Vec::new();
        let stats = read_stream(Path::new("t"), bytes, |p| {
            seen.push((p.ts_ns, p.linktype, p.data.to_vec()))
        })
        .unwrap();
        assert_eq!(stats.packets, packets.len() as u64);
        seen
    };
    let want = read(&pcap(&packets));
    for (big, comments) in [(false, true), (true, false), (true, true)] {
        assert_eq!(
            read(&pcapng_as(&packets, big, comments)),
            want,
            "big-endian {big}, comments {comments}"
        );
    }
}

#[test]
fn reading_a_capture_allocates_nothing_per_packet() {
    let mut many = Vec::new();
    for round in 0..500u64 {
        for (ts, bytes) in sweep_and_client() {
            many.push((ts + round * 1_000_000, bytes));
        }
    }
    let few = &many[..80];
    for (name, file) in [
        ("pcap", pcap as fn(&[(u64, Vec<u8>)]) -> Vec<u8>),
        ("pcapng", pcapng),
        ("pcapng with options", |p: &[(u64, Vec<u8>)]| {
            pcapng_as(p, false, true)
        }),
        ("big-endian pcapng", |p: &[(u64, Vec<u8>)]| {
            pcapng_as(p, true, true)
        }),
    ] {
        let (small, large) = (file(few), file(&many));
        let mut n = 0u64;
        let few_allocs = allocations_during(|| {
            read_stream(Path::new("few"), &small[..], |_| n += 1).unwrap();
        });
        let many_allocs = allocations_during(|| {
            read_stream(Path::new("many"), &large[..], |_| n += 1).unwrap();
        });
        assert_eq!(n, (few.len() + many.len()) as u64);
        assert_eq!(
            few_allocs,
            many_allocs,
            "{name}: {} packets, {few_allocs} allocations; {} packets, {many_allocs}",
            few.len(),
            many.len()
        );
    }
}

#[test]
fn truncated_last_record_is_reported_not_fatal() {
    let bytes = pcap(&sweep_and_client());
    let cut = &bytes[..bytes.len() - 7];
    let mut n = 0;
    let stats = read_stream(Path::new("cut.pcap"), cut, |_| n += 1).unwrap();
    assert!(stats.truncated);
    assert_eq!(n, sweep_and_client().len() - 1);
}

#[test]
fn a_file_that_is_not_a_capture_is_an_error_naming_it() {
    let err = read_stream(
        Path::new("notes.txt"),
        &b"hello, this is not a capture file at all"[..],
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, CaptureError::NotACapture { .. }), "{err}");
    assert!(err.to_string().contains("notes.txt"));
}

#[test]
fn corrupt_pcapng_block_is_an_error_with_its_offset() {
    let mut bytes = pcapng(&sweep_and_client());
    // The third block's length field (after SHB 28 bytes and IDB 20 bytes).
    bytes[48 + 4..48 + 8].copy_from_slice(&7u32.to_le_bytes());
    let err = read_stream(Path::new("bad.pcapng"), &bytes[..], |_| {}).unwrap_err();
    match err {
        CaptureError::Malformed { offset, .. } => assert_eq!(offset, 48),
        other => panic!("{other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = read_stream(Path::new("r"), &bytes[..], |p| { let _ = decode(p.linktype, p.ts_ns, p.data); });
    }

    #[test]
    fn mutated_captures_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..16), cut in any::<usize>()) {
        let mut bytes = pcapng(&sweep_and_client());
        for (at, v) in flips { let n = bytes.len(); bytes[at % n] ^= v; }
        let n = bytes.len();
        bytes.truncate(cut % (n + 1));
        let _ = read_stream(Path::new("m"), &bytes[..], |p| { let _ = decode(p.linktype, p.ts_ns, p.data); });
        let mut legacy = pcap(&sweep_and_client());
        let m = legacy.len();
        legacy.truncate(cut % (m + 1));
        let _ = read_stream(Path::new("l"), &legacy[..], |p| { let _ = decode(p.linktype, p.ts_ns, p.data); });
    }

    #[test]
    fn random_packets_never_panic_the_decoder(linktype in prop_oneof![Just(0u32), Just(1), Just(101), Just(113), Just(228), Just(229), Just(276)], bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = decode(linktype, 0, &bytes);
    }

    /// ARP bodies of any bytes and length, behind an Ethernet header and
    /// both Linux cooked ones that name ARP.
    #[test]
    fn random_arp_bodies_never_panic_the_decoder(body in proptest::collection::vec(any::<u8>(), 0..64), op in 0u8..4) {
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, op];
        arp.extend_from_slice(&body);
        let mut ethernet = vec![0u8; 12];
        ethernet.extend_from_slice(&[8, 6]);
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[8, 6]);
        let mut sll2 = vec![8u8, 6];
        sll2.resize(20, 6);
        for (linktype, mut frame) in [(1u32, ethernet), (113, sll), (276, sll2)] {
            frame.extend_from_slice(&arp);
            for cut in [frame.len(), frame.len() / 2, 15] {
                let _ = decode(linktype, 0, &frame[..cut.min(frame.len())]);
            }
        }
    }
}
