//! Golden files for every format, on one fixed scan: two IPv4 hosts (one
//! with a crowd of closed ports and a hostile host name), one IPv6 host
//! with filtered ports of two reasons, and one host that timed out. Times
//! are fixed, so the output is byte-for-byte stable.
//!
//! To accept a deliberate change: `UPDATE_GOLDEN=1 cargo nextest run -p
//! portolan-output --test golden`, then review the diff of `tests/golden/`.

use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

use portolan_engine::{
    HostReport, HostStatus, HostTimes, PortOutcome, PortResult, PortState, Reason, ScanStats,
};
use portolan_output::grepable::GrepableSink;
use portolan_output::jsonl::JsonLinesSink;
use portolan_output::normal::NormalSink;
use portolan_output::xml::XmlSink;
use portolan_output::{OutputOptions, RateSample, ScanInfo, ScanSummary, Sink};
use portolan_targets::{Protocol, Target};

fn outcome(port: u16, state: PortState, reason: Reason, ttl: Option<u8>) -> PortOutcome {
    PortOutcome {
        port,
        proto: Protocol::Tcp,
        state,
        reason,
        reason_ttl: ttl,
        tries: if reason == Reason::NoResponse { 2 } else { 1 },
    }
}

struct Scan {
    info: ScanInfo,
    hosts: Vec<HostReport>,
    summary: ScanSummary,
}

fn scan() -> Scan {
    let t0 = Instant::now();
    let start = UNIX_EPOCH + Duration::from_secs(1_795_545_919);
    let at = |ms: u64| start + Duration::from_millis(ms);
    let ports: Vec<u16> = (1..=40).chain([80, 443, 8080]).collect();
    let times = |srtt: Option<u64>| HostTimes {
        paced: None,
        srtt: srtt.map(Duration::from_micros),
        rttvar: srtt.map(|s| Duration::from_micros(s / 2)),
        timeout: Duration::from_millis(100),
    };
    let host = |addr: &str, name: Option<&str>, status, ports, srtt, s: u64, e: u64| HostReport {
        target: Target {
            addr: addr.parse().unwrap(),
            name: name.map(std::sync::Arc::from),
            rdns: None,
        },
        status,
        reason_ttl: None,
        mac: None,
        ports,
        times: times(srtt),
        started: at(s),
        finished: at(e),
        services: Vec::new(),
        extra: Default::default(),
    };
    // Host 1: 22 and 80 open, the rest closed (collapsed).
    let h1: Vec<PortOutcome> = ports
        .iter()
        .map(|&p| match p {
            22 | 80 => outcome(p, PortState::Open, Reason::SynAck, Some(64)),
            _ => outcome(p, PortState::Closed, Reason::Reset, Some(64)),
        })
        .collect();
    // Host 2 (IPv6): 443 open, a few closed, filtered by drop and by ICMP.
    let h2: Vec<PortOutcome> = ports
        .iter()
        .map(|&p| match p {
            443 => outcome(p, PortState::Open, Reason::SynAck, Some(64)),
            1..=3 => outcome(p, PortState::Closed, Reason::Reset, Some(64)),
            4..=10 => outcome(p, PortState::Filtered, Reason::AdminProhibited, Some(64)),
            _ => outcome(p, PortState::Filtered, Reason::NoResponse, None),
        })
        .collect();
    let hosts = vec![
        host(
            "198.18.0.2",
            Some("lab<&>\"'\x1b[2J\u{7}"),
            HostStatus::Up(Reason::UserSet),
            h1,
            Some(210),
            0,
            1200,
        ),
        host(
            "fd00::2",
            None,
            HostStatus::Up(Reason::UserSet),
            h2,
            Some(350),
            0,
            2400,
        ),
        host(
            "198.18.0.3",
            None,
            HostStatus::TimedOut,
            Vec::new(),
            None,
            100,
            3000,
        ),
    ];
    let mut stats = ScanStats {
        hosts_done: 3,
        hosts_up: 2,
        probes_sent: 120,
        retransmissions: 34,
        replies: 50,
        ..ScanStats::default()
    };
    for h in &hosts {
        for p in &h.ports {
            stats.ports_by_state[p.state.index()] += 1;
            stats.ports_done += 1;
        }
    }
    Scan {
        info: ScanInfo {
            id: "01900000-0000-7000-8000-000000000000".parse().unwrap(),
            version: "0.1.0".into(),
            args: ["portolan", "-sS", "-p", "1-40,80,443,8080", "--reason"]
                .map(String::from)
                .to_vec(),
            start,
            started_at: t0,
            scan_type: "syn",
            scanflags: None,
            proto: Protocol::Tcp,
            port_count: ports.len(),
            ports,
            more_scans: Vec::new(),
            notes: Vec::new(),
            version_detection: false,
            open_ports_amended: false,
        },
        hosts,
        summary: ScanSummary {
            stats,
            elapsed: Duration::from_millis(3010),
            end: start + Duration::from_millis(3010),
            interrupted: false,
            packets: None,
            middleboxes: Vec::new(),
            min_rate_missed: None,
        },
    }
}

fn run(mut sink: impl Sink, scan: &Scan) {
    sink.begin(&scan.info).unwrap();
    sink.rate(&RateSample {
        elapsed: Duration::from_millis(1000),
        probes_sent: 60,
        replies: 25,
        ports_done: 40,
    })
    .unwrap();
    for h in &scan.hosts {
        for p in &h.ports {
            sink.port(&PortResult {
                addr: h.target.addr,
                outcome: *p,
            })
            .unwrap();
        }
        sink.host(h).unwrap();
    }
    sink.end(&scan.summary).unwrap();
}

fn check(name: &str, actual: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let actual = String::from_utf8(actual.to_vec()).expect("output is UTF-8");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert!(
        actual == expected,
        "{name} differs from {}:\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

fn options() -> OutputOptions {
    OutputOptions {
        reason: true,
        ..OutputOptions::default()
    }
}

#[test]
fn every_format_matches_its_golden_file() {
    let scan = scan();
    let (mut xml, mut gnmap, mut normal, mut jsonl) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    run(XmlSink::new(&mut xml, options()), &scan);
    run(GrepableSink::new(&mut gnmap, options()), &scan);
    run(NormalSink::file(&mut normal, options()), &scan);
    run(JsonLinesSink::new(&mut jsonl, options()), &scan);
    check("scan.xml", &xml);
    check("scan.gnmap", &gnmap);
    check("scan.nmap", &normal);
    check("scan.jsonl", &jsonl);
}

/// `-sV` (issue 6): the same scan with detection's findings on host 1
/// (SSH and HTTPS on 22 and 80) and a UDP port an answer proved open.
/// The JSON-lines port lines come with their host, carrying the service.
#[test]
fn version_detection_jsonl_matches_its_golden_file() {
    use portolan_engine::{PortService, ServiceInfo, ServiceMethod};
    let mut scan = scan();
    scan.info.version_detection = true;
    scan.info.args = [
        "portolan",
        "-sS",
        "-sU",
        "-sV",
        "-p",
        "T:1-40,80,443,8080,U:53",
    ]
    .map(String::from)
    .to_vec();
    let h1 = &mut scan.hosts[0];
    h1.ports.push(PortOutcome {
        port: 53,
        proto: Protocol::Udp,
        state: PortState::Open,
        reason: Reason::UdpResponse,
        reason_ttl: None,
        tries: 1,
    });
    let service =
        |port, proto, name: &str, product: &str, version: &str, banner: &[u8]| PortService {
            port,
            proto,
            info: ServiceInfo {
                name: name.into(),
                product: Some(product.into()),
                version: Some(version.into()),
                method: ServiceMethod::Probed,
                conf: 10,
                banner: banner.to_vec(),
                ..ServiceInfo::default()
            },
        };
    h1.services = vec![
        service(
            22,
            Protocol::Tcp,
            "ssh",
            "OpenSSH",
            "9.2p1 Debian 2+deb12u7",
            b"SSH-2.0-OpenSSH_9.2p1\r\n",
        ),
        service(
            80,
            Protocol::Tcp,
            "http",
            "nginx",
            "1.22.1",
            b"HTTP/1.1 200 OK\r\n",
        ),
        service(
            53,
            Protocol::Udp,
            "domain",
            "dnsmasq",
            "2.89",
            b"PT\x85\x80",
        ),
    ];
    let mut jsonl = Vec::new();
    run(JsonLinesSink::new(&mut jsonl, options()), &scan);
    check("scan-sv.jsonl", &jsonl);
}
