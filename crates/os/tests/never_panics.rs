//! Bad input never hurts: random answers, random database text and random
//! fingerprints give values or errors, never a panic.

use portolan_os::probes::PROBE_COUNT;
use portolan_os::{Answers, Database, Fingerprint, ProbeSet, classify, compute_fingerprint};
use proptest::prelude::*;

fn set() -> ProbeSet {
    ProbeSet {
        source: "198.18.0.1".parse().unwrap(),
        target: "198.18.0.2".parse().unwrap(),
        open: 22,
        closed: 1,
        closed_udp: 40_125,
        base_port: 50_000,
        seq: 1,
        ack: 2,
        ip_id: 3,
        icmp_id: 4,
    }
}

/// An IPv4 header from the target to us, then `rest`: enough to get past
/// the first checks and into the tests' reading.
fn from_target(protocol: u8, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1,
    ];
    let len = (20 + rest.len()) as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p.extend_from_slice(rest);
    p
}

proptest! {
    #[test]
    fn random_answers_never_panic(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), PROBE_COUNT),
        protocols in proptest::collection::vec(prop_oneof![Just(1u8), Just(6u8), Just(17u8), any::<u8>()], PROBE_COUNT),
    ) {
        let packets: Vec<Vec<u8>> = bodies.iter().zip(&protocols).map(|(b, p)| from_target(*p, b)).collect();
        let answers = Answers {
            set: set(),
            seq_sent: std::array::from_fn(|i| std::time::Duration::from_millis(100 * i as u64)),
            replies: std::array::from_fn(|i| Some(packets[i].as_slice())),
        };
        let fp = compute_fingerprint(&answers);
        let text = fp.to_string();
        prop_assert_eq!(Fingerprint::parse(&text).to_string(), text);
        for p in &packets {
            let _ = set().which(p);
            let _ = portolan_os::passive::Evidence::read(p);
        }
    }

    #[test]
    fn random_database_text_never_panics(lines in proptest::collection::vec("[A-Za-z0-9()=%|<>+ -]{0,40}", 0..20)) {
        let text = format!("MatchPoints\nT1(R=100)\nFingerprint X\nClass a | b | c | d\n{}", lines.join("\n"));
        if let Ok(db) = Database::parse(&text) {
            let fp = Fingerprint::parse(&lines.join("\n"));
            let _ = classify(&db, &fp, 0.0, true);
        }
    }
}
