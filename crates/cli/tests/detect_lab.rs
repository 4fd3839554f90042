//! `portolan detect` on captures the test makes itself: tcpdump in each
//! lab target's namespace records Portolan's SYN scan, nmap's `-T4` SYN
//! scan and a benign client's many HTTP connections; the detector must
//! flag every scanner (vertical, right source and protocol: Portolan -sS,
//! nmap -sS at -T3 and -T4, nmap -sU at -T5) and not the client. Plus the
//! exit codes on synthetic and broken files.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use portolan_lab::{Lab, lab_or_skip};

use crate::util::{assert_success, portolan_bin, scratch_dir};

fn detect(files: &[&Path]) -> (Output, Vec<serde_json::Value>) {
    let out = Command::new(portolan_bin())
        .arg("detect")
        .arg("--pcap")
        .args(files)
        .output()
        .expect("run portolan detect");
    let alerts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert is JSON"))
        .collect();
    (out, alerts)
}

/// Starts tcpdump in `namespace` and waits until it writes.
fn capture(namespace: &portolan_lab::Namespace, file: &Path) -> portolan_lab::Daemon {
    let mut cmd = Command::new("tcpdump");
    cmd.args([
        "-i",
        "any",
        "--immediate-mode",
        "-U",
        "-n",
        "-s",
        "256",
        "-w",
    ])
    .arg(file)
    .arg("tcp or udp or icmp or icmp6 or sctp")
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(file.with_extension("log")).expect("tcpdump log"));
    let daemon = namespace.spawn(cmd).expect("start tcpdump");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(file).map(|m| m.len()).unwrap_or(0) < 24 {
        assert!(Instant::now() < deadline, "tcpdump did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The file header is written at activation; give the ring a moment.
    std::thread::sleep(Duration::from_millis(300));
    daemon
}

#[test]
fn lab_scans_by_portolan_and_nmap_t3_t4_t5_udp_are_flagged_and_a_busy_client_is_not() {
    let lab = lab_or_skip!(Lab::builder().hosts(5).without_icmp_rate_limits());
    let (portolan_target, web, nmap_target) = (lab.host(0), lab.host(1), lab.host(2));
    let (udp_target, t3_target) = (lab.host(3), lab.host(4));
    let _open = portolan_target.listen_tcp([22, 80]).unwrap();
    let _web = web.listen_tcp([80]).unwrap();
    let _nmap_open = nmap_target.listen_tcp([443]).unwrap();
    let dir = scratch_dir();
    // The defenders' view: one capture in each target's namespace (the
    // scanner's raw ring bypasses its own namespace's taps).
    let pcaps: Vec<PathBuf> = (0..5).map(|i| dir.join(format!("host{i}.pcap"))).collect();
    let tcpdumps: Vec<_> = (0..5)
        .map(|i| capture(lab.host(i).namespace(), &pcaps[i]))
        .collect();

    let scan = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sS", "-Pn", "-T4", "-p", "1-200", "--no-progress"])
        .arg(portolan_target.ipv4().to_string())
        .output()
        .unwrap();
    assert_success(&scan);
    let nmap = lab
        .scanner()
        .command("nmap")
        .args(["-sS", "-Pn", "-T4", "-n", "-p", "1-200"])
        .arg(nmap_target.ipv4().to_string())
        .output()
        .unwrap();
    assert_success(&nmap);
    for (target, args) in [
        (udp_target, &["-sU", "-T5", "-p", "1-30"][..]),
        (t3_target, &["-sS", "-T3", "-p", "1-100"][..]),
    ] {
        let out = lab
            .scanner()
            .command("nmap")
            .args(["-Pn", "-n", "--max-retries", "1"])
            .args(args)
            .arg(target.ipv4().to_string())
            .output()
            .unwrap();
        assert_success(&out);
    }
    let client = lab
        .scanner()
        .command("bash")
        .arg("-c")
        .arg(format!(
            "for i in $(seq 40); do exec 3<>/dev/tcp/{}/80 && exec 3>&-; done",
            web.ipv4()
        ))
        .output()
        .unwrap();
    assert_success(&client);
    std::thread::sleep(Duration::from_millis(300));
    drop(tcpdumps);

    let files: Vec<&Path> = pcaps.iter().map(PathBuf::as_path).collect();
    let (out, alerts) = detect(&files);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flagged = |src: Ipv4Addr, target: Ipv4Addr| {
        alerts.iter().any(|a| {
            a["kind"] == "vertical"
                && a["source"] == src.to_string()
                && a["target"] == target.to_string()
                && a["proto"] == "tcp"
        })
    };
    assert!(
        flagged(portolan_target.scanner_ipv4(), portolan_target.ipv4()),
        "Portolan's SYN scan not flagged: {alerts:?}"
    );
    assert!(
        flagged(nmap_target.scanner_ipv4(), nmap_target.ipv4()),
        "nmap -T4 not flagged: {alerts:?}"
    );
    assert!(
        flagged(t3_target.scanner_ipv4(), t3_target.ipv4()),
        "nmap -T3 not flagged: {alerts:?}"
    );
    assert!(
        alerts.iter().any(|a| a["kind"] == "vertical"
            && a["proto"] == "udp"
            && a["source"] == udp_target.scanner_ipv4().to_string()),
        "nmap -sU -T5 not flagged: {alerts:?}"
    );
    assert!(
        alerts
            .iter()
            .filter(|a| a["source"] == web.scanner_ipv4().to_string())
            .count()
            == 0,
        "the benign client was flagged: {alerts:?}"
    );
    // nmap's SYN probes carry its fixed window and lone MSS option.
    assert!(
        alerts
            .iter()
            .any(|a| a["source"] == nmap_target.scanner_ipv4().to_string()
                && a["traits"].to_string().contains("nmap-syn")),
        "{alerts:?}"
    );
}

fn write_pcap(dir: &Path, name: &str, packets: &[Vec<u8>]) -> PathBuf {
    let mut out = Vec::new();
    portolan_detect::write::pcap_header(&mut out, 101);
    for (i, p) in packets.iter().enumerate() {
        portolan_detect::write::pcap_record(&mut out, 1_700_000_000_000_000 + i as u64, p);
    }
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    path
}

fn tcp4(src: [u8; 4], dst: [u8; 4], dport: u16, flags: u8) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[32] = 5 << 4;
    p[33] = flags;
    p
}

#[test]
fn detect_exit_codes_say_detected_clean_usage_and_bad_input() {
    let dir = scratch_dir();
    // Ten SYNs to ten hosts, never answered: a sweep of port 23.
    let sweep: Vec<_> = (1..=10)
        .map(|h| tcp4([198, 18, 0, 1], [198, 18, 1, h], 23, 0x02))
        .collect();
    let scanned = write_pcap(&dir, "sweep.pcap", &sweep);
    let (out, alerts) = detect(&[&scanned]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "horizontal");
    assert_eq!(alerts[0]["source"], "198.18.0.1");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("198.18.0.1"),
        "summary names the source"
    );

    // The sweep of telnet shows in the exploitable-port watch.
    let watch = dir.join("watch.jsonl");
    let out = Command::new(portolan_bin())
        .args(["detect", "--watch"])
        .arg(&watch)
        .arg("--pcap")
        .arg(&scanned)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&watch)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (
            rows[0]["port"].as_u64(),
            rows[0]["probes"].as_u64(),
            rows[0]["sources"].as_u64()
        ),
        (Some(23), Some(10), Some(1))
    );
    assert_eq!(rows[0]["service"], "telnet");

    // An authorised scanner is labelled, still reported, still exit 1.
    let out = Command::new(portolan_bin())
        .args(["detect", "--allow", "198.18.0.0/24", "--pcap"])
        .arg(&scanned)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let alert: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(alert["allowlisted"], true);
    assert_eq!(alerts[0]["allowlisted"], false);

    let quiet = write_pcap(&dir, "quiet.pcap", &sweep[..2]);
    let (out, alerts) = detect(&[&quiet]);
    assert_eq!(out.status.code(), Some(0));
    assert!(alerts.is_empty());

    let junk = dir.join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file, only text").unwrap();
    let (out, _) = detect(&[&junk]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk.pcap"));

    let usage = Command::new(portolan_bin())
        .args(["detect", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn lab_sweep_of_one_port_across_a_segment_is_horizontal_with_its_source() {
    let lab = lab_or_skip!(Lab::builder().segment(6).without_icmp_rate_limits());
    let hosts = lab.segment(0).hosts();
    let dir = scratch_dir();
    let pcaps: Vec<PathBuf> = (0..hosts.len())
        .map(|i| dir.join(format!("seg{i}.pcap")))
        .collect();
    let tcpdumps: Vec<_> = hosts
        .iter()
        .zip(&pcaps)
        .map(|(h, f)| capture(h.namespace(), f))
        .collect();
    let targets: Vec<String> = hosts.iter().map(|h| h.ipv4().to_string()).collect();
    let sweep = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sS", "-Pn", "-T4", "-p", "23", "--no-progress"])
        .args(&targets)
        .output()
        .unwrap();
    assert_success(&sweep);
    std::thread::sleep(Duration::from_millis(300));
    drop(tcpdumps);
    let files: Vec<&Path> = pcaps.iter().map(PathBuf::as_path).collect();
    let (out, alerts) = detect(&files);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let source = hosts[0].scanner_ipv4().to_string();
    assert!(
        alerts.iter().any(|a| a["kind"] == "horizontal"
            && a["source"] == source
            && a["ports"] == serde_json::json!([23])),
        "{alerts:?}"
    );
    assert!(alerts.iter().all(|a| a["kind"] != "vertical"), "{alerts:?}");
}
