//! A hostile network against the SYN scan: a lab host that answers every
//! probe several times and out of order, and a storm during the scan of
//! RSTs, answers from addresses never probed, ICMP errors quoting probes
//! never sent, and answers to a previous scan's probes. Every stray packet
//! is counted as ignored and the results are exactly the truth.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portolan_lab::{Lab, lab_or_skip};

use crate::forge::{ACK, RST, Responder, SYN, Segment, icmp_unreachable, send_from};
use crate::util::{JsonRun, assert_success, portolan_bin, read_jsonl, scratch_dir};

const OPEN: [u16; 2] = [80, 443];
const DROPPED: RangeInclusive<u16> = 1000..=1099;
/// Ports the responder answers: SYN-ACK here...
const STAGED_OPEN: RangeInclusive<u16> = 5000..=5099;
/// ...and RST here.
const STAGED_CLOSED: RangeInclusive<u16> = 5100..=5199;
/// The scans' source port (`-g`), so the storm aims at it.
const SPORT: u16 = 45678;

fn syn_scan(lab: &Lab, args: &[&str]) -> JsonRun {
    let json = scratch_dir().join("hostile.jsonl");
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["--no-db", "--no-progress", "-n", "-Pn", "-sS", "-g"])
        .arg(SPORT.to_string())
        .args(args)
        .arg("-oJ")
        .arg(&json)
        .output()
        .expect("run portolan");
    assert_success(&out);
    read_jsonl(&json)
}

/// The staged answer to `syn`.
fn staged_answer(syn: &Segment) -> Segment {
    if STAGED_OPEN.contains(&syn.dport) {
        syn.answer(SYN | ACK, 0x7000_0000 ^ syn.seq)
    } else {
        syn.answer(RST | ACK, 0)
    }
}

/// Every stray packet of the storm, from the target and from lab
/// addresses never probed.
fn storm(target: Ipv4Addr, scanner: Ipv4Addr, stale: &[Segment]) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    // Answers to the first scan's probes (its key is not this scan's).
    for syn in stale {
        packets.push(syn.answer(SYN | ACK, 0x1357_9bdf).bytes());
        packets.push(syn.answer(RST | ACK, 0).bytes());
    }
    let [a, b, c, _] = target.octets();
    let never_probed = [
        Ipv4Addr::new(a, b, c, 77),
        Ipv4Addr::new(a, b, c, 200),
        Ipv4Addr::new(198, 19, 250, 9),
    ];
    let mut noise = 0x9e37_79b9u32;
    let mut next = || {
        noise ^= noise << 13;
        noise ^= noise >> 17;
        noise ^= noise << 5;
        noise
    };
    let ports: Vec<u16> = OPEN
        .into_iter()
        .chain(DROPPED)
        .chain(STAGED_OPEN)
        .chain(STAGED_CLOSED)
        .collect();
    for &port in &ports {
        for src in std::iter::once(target).chain(never_probed) {
            // An RST storm and SYN-ACKs with guessed numbers.
            for flags in [RST, RST | ACK, SYN | ACK] {
                let seg = Segment {
                    src,
                    dst: scanner,
                    sport: port,
                    dport: SPORT,
                    seq: next(),
                    ack: next(),
                    flags,
                };
                packets.push(seg.bytes());
            }
            // An ICMP error quoting a probe never sent (a guessed
            // sequence number), from the target or a router.
            let forged_probe = Segment {
                src: scanner,
                dst: target,
                sport: SPORT,
                dport: port,
                seq: next(),
                ack: 0,
                flags: SYN,
            };
            for code in [3, 13] {
                packets.push(icmp_unreachable(src, scanner, code, &forged_probe));
            }
        }
    }
    packets
}

fn assert_truth(run: &JsonRun, addr: IpAddr) {
    let mut wrong = Vec::new();
    let ports = OPEN
        .into_iter()
        .chain(DROPPED)
        .chain(STAGED_OPEN)
        .chain(STAGED_CLOSED);
    for port in ports {
        let want = if OPEN.contains(&port) || STAGED_OPEN.contains(&port) {
            ("open", "syn-ack")
        } else if STAGED_CLOSED.contains(&port) {
            ("closed", "reset")
        } else {
            ("filtered", "no-response")
        };
        match run.ports.get(&(addr, port)) {
            Some(p) if (p.state.as_str(), p.reason.as_str()) == want => {}
            got => wrong.push(format!("{port}: want {want:?}, got {got:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    assert_eq!(
        run.ports.len(),
        2 + 100 + 200,
        "ports reported that were not scanned"
    );
}

#[test]
fn hostile_answers_are_counted_and_ignored_and_results_stay_exact() {
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let _service = host.listen_tcp(OPEN).unwrap();
    host.drop_tcp(DROPPED).unwrap();
    host.drop_tcp(*STAGED_OPEN.start()..=*STAGED_CLOSED.end())
        .unwrap();
    let (target, scanner) = (host.ipv4(), host.scanner_ipv4());
    let addr: IpAddr = target.into();
    let ns = host.name().to_string();

    // A first scan, whose probes the host records.
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let recorder = {
        let recorded = Arc::clone(&recorded);
        Responder::start(
            &ns,
            Duration::from_secs(30),
            |syn| DROPPED.contains(&syn.dport),
            move |syn| {
                recorded.lock().unwrap().push(*syn);
                Vec::new()
            },
        )
    };
    let first = syn_scan(
        &lab,
        &["-p", "1000-1099", "--max-retries", "1", &target.to_string()],
    );
    recorder.stop();
    assert!(
        DROPPED
            .clone()
            .all(|p| first.ports[&(addr, p)].state == "filtered")
    );
    let stale = recorded.lock().unwrap().clone();
    assert!(
        stale.len() >= DROPPED.count(),
        "{} probes recorded",
        stale.len()
    );

    // The staged ports: each SYN's answer held back until the next SYN
    // comes (out of order), then sent three times over, after the next
    // one's first copy.
    let staged = {
        let mut held: Option<Segment> = None;
        Responder::start(
            &ns,
            Duration::from_secs(60),
            |syn| (*STAGED_OPEN.start()..=*STAGED_CLOSED.end()).contains(&syn.dport),
            move |syn| {
                let mut out = vec![staged_answer(syn)];
                if let Some(previous) = held.replace(*syn) {
                    out.extend([staged_answer(&previous); 3]);
                }
                out
            },
        )
    };

    // The storm, over and over while the second scan runs.
    let stop = Arc::new(AtomicBool::new(false));
    let storm_packets = storm(target, scanner, &stale);
    let storm_len = storm_packets.len();
    let stormer = {
        let (stop, ns) = (Arc::clone(&stop), ns.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                sent += send_from(&ns, storm_packets.clone());
            }
            sent
        })
    };
    let ports = "80,443,1000-1099,5000-5199";
    let run = syn_scan(
        &lab,
        &["-p", ports, "--max-retries", "3", &target.to_string()],
    );
    stop.store(true, Ordering::Relaxed);
    let stormed = stormer.join().unwrap();
    let answered = staged.stop();
    assert!(stormed >= storm_len, "the storm sent {stormed} packets");
    assert!(answered >= 200, "the staged ports saw {answered} SYNs");

    assert_truth(&run, addr);
    let summary = run.summary.expect("a summary line");
    let ignored = summary["packets"]["ignored"].as_u64().unwrap();
    eprintln!("storm: {stormed} packets sent; the scan ignored {ignored}: {summary}");
    // Each staged port's extra copies, at least, and the storm's packets
    // that reached the scan while it listened.
    assert!(ignored >= 3 * 200, "only {ignored} ignored: {summary}");
}
