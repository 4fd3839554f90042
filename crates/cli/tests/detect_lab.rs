//! `portolan detect` on captures the test makes itself: tcpdump in each
//! lab target's namespace records Portolan's SYN scan, nmap's `-T4` SYN
//! scan and a benign client's many HTTP connections; the detector must
//! flag every scanner (vertical, right source and protocol: Portolan -sS,
//! nmap -sS at -T3 and -T4, nmap -sU at -T5) and not the client. Plus the
//! exit codes on synthetic and broken files; live capture; split and
//! decoy scans; ping sweeps of live hosts (nmap and Portolan `-sn -PE`);
//! nmap `-T0`/`-T1`, made by stretching a fast one-probe-at-a-time
//! capture's timestamps to their pace; masscan, ZMap, Portolan `-sU` and
//! `-sY` sweeps of a routed range; and benign DNS, SSH and
//! peer-to-peer clients on a segment, a NAT gateway with four clients
//! behind it and a busy proxy, never flagged; an allowlist file; two
//! vantage points' captures merged by time; Portolan's idle scan as its
//! target and its zombie see it; ARP sweeps by Portolan and nmap on a
//! segment; decoy scans of closed ports whose real source only ARP
//! names.

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

/// A benign client in `namespace`: `connections` TCP connections to
/// `server`:80, one after another, each opened and closed.
fn http_client(namespace: &portolan_lab::Namespace, server: Ipv4Addr, connections: u32) {
    let out = namespace
        .command("bash")
        .arg("-c")
        .arg(format!(
            "for i in $(seq {connections}); do exec 3<>/dev/tcp/{server}/80 && exec 3>&-; done"
        ))
        .output()
        .unwrap();
    assert_success(&out);
}

/// Starts tcpdump in `namespace` and waits until it writes.
fn capture(namespace: &portolan_lab::Namespace, file: &Path) -> portolan_lab::Daemon {
    capture_filtered(namespace, file, "tcp or udp or icmp or icmp6 or sctp")
}

/// [`capture`] with `filter` (tcpdump's syntax).
fn capture_filtered(
    namespace: &portolan_lab::Namespace,
    file: &Path,
    filter: &str,
) -> portolan_lab::Daemon {
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
    .arg(filter)
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
    http_client(lab.scanner(), web.ipv4(), 40);
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

/// Reads the JSON lines written so far to `file`.
fn alerts_in(file: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Starts `portolan detect --iface IFACE` in `namespace` (bounded by
/// `--duration`), writing alerts to `alerts` and its summary to `log`,
/// and waits until it says it is capturing.
fn live_detector(
    namespace: &portolan_lab::Namespace,
    interface: &str,
    alerts: &Path,
    log: &Path,
) -> portolan_lab::Daemon {
    let mut cmd = Command::new(portolan_bin());
    cmd.args(["detect", "--iface", interface, "--duration", "120", "-o"])
        .arg(alerts)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).expect("detector log"));
    let mut daemon = namespace.spawn(cmd).expect("start portolan detect");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains("capturing on")
    {
        if let Ok(Some(status)) = daemon.try_wait() {
            panic!(
                "portolan detect exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "portolan detect did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon
}

/// Sends SIGINT to the detector and waits (bounded) for its exit code.
fn interrupt(mut daemon: portolan_lab::Daemon, log: &Path) -> Option<i32> {
    let pid = libc::pid_t::try_from(daemon.id()).expect("pid");
    // SAFETY: kill(2) with a plain pid and signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = daemon.try_wait().expect("wait for portolan detect") {
            return status.code();
        }
        assert!(
            Instant::now() < deadline,
            "portolan detect ignored SIGINT: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn live_capture_flags_a_portolan_syn_scan_over_ipv4_and_ipv6_as_it_happens_and_not_a_busy_client() {
    let lab = lab_or_skip!(Lab::builder().segment(2).without_icmp_rate_limits());
    let segment = lab.segment(0);
    let (target, client) = (segment.host(0), segment.host(1));
    let _open = target.listen_tcp([22, 80]).unwrap();
    let dir = scratch_dir();
    let (alerts, log) = (dir.join("live.jsonl"), dir.join("live.log"));
    let detector = live_detector(target.namespace(), target.interface(), &alerts, &log);

    // A benign neighbour: 40 HTTP connections, all answered.
    http_client(client.namespace(), target.ipv4(), 40);
    let scan = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sS", "-Pn", "-T4", "-p", "1-200", "--no-progress"])
        .arg(target.ipv4().to_string())
        .arg(target.ipv6().to_string())
        .output()
        .unwrap();
    assert_success(&scan);

    // The alerts are written while the detector still runs, for IPv4
    // and IPv6 alike.
    let scanner = segment.scanner_ipv4().to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    let flagged = |a: &serde_json::Value, source: String, target: String| {
        a["kind"] == "vertical"
            && a["source"] == source
            && a["target"] == target
            && a["proto"] == "tcp"
    };
    let both = |all: &[serde_json::Value]| {
        all.iter()
            .any(|a| flagged(a, scanner.clone(), target.ipv4().to_string()))
            && all.iter().any(|a| {
                flagged(
                    a,
                    segment.scanner_ipv6().to_string(),
                    target.ipv6().to_string(),
                )
            })
    };
    while !both(&alerts_in(&alerts)) {
        assert!(
            Instant::now() < deadline,
            "no live alert for the scan: {:?} {}",
            alerts_in(&alerts),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let code = interrupt(detector, &log);
    let summary = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, Some(1), "detected, even when interrupted: {summary}");
    let all = alerts_in(&alerts);
    assert!(
        all.iter().all(|a| a["source"] != client.ipv4().to_string()),
        "the busy client was flagged: {all:?}"
    );
    assert!(
        summary.contains(&scanner),
        "summary names the scanner: {summary}"
    );
    assert!(summary.contains("dropped by the kernel"), "{summary}");
}

#[test]
fn live_capture_of_quiet_traffic_exits_clean_and_an_unknown_interface_is_unreadable() {
    let lab = lab_or_skip!(Lab::builder().hosts(1));
    let host = lab.host(0);
    let _web = host.listen_tcp([80]).unwrap();
    let dir = scratch_dir();
    let alerts = dir.join("quiet.jsonl");
    // Bounded by --duration alone; a few answered connections meanwhile.
    let mut cmd = host.command(portolan_bin());
    cmd.args([
        "detect",
        "--iface",
        host.interface(),
        "--duration",
        "2",
        "-o",
    ])
    .arg(&alerts);
    let started = Instant::now();
    let run = std::thread::spawn(move || cmd.output().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    http_client(lab.scanner(), host.ipv4(), 5);
    let out = run.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "--duration bounds it"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(alerts_in(&alerts).is_empty());
    // Five connections: SYN, SYN+ACK, ACK, FIN... both ways were seen.
    let read: u64 = stderr
        .lines()
        .find(|l| l.contains("packets read"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(read >= 10, "both directions captured: {stderr}");

    let out = host
        .command(portolan_bin())
        .args(["detect", "--iface", "no-such-if0", "--duration", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-if0"));
}

#[test]
fn live_capture_on_loopback_sees_each_probe_once() {
    let lab = lab_or_skip!(Lab::builder().hosts(1));
    let host = lab.host(0);
    let dir = scratch_dir();
    let (alerts, log) = (dir.join("lo.jsonl"), dir.join("lo.log"));
    let detector = live_detector(host.namespace(), "lo", &alerts, &log);
    let scan = host
        .command(portolan_bin())
        .args(["-sT", "-Pn", "-p", "1-20", "--no-progress", "127.0.0.1"])
        .output()
        .unwrap();
    assert_success(&scan);
    let deadline = Instant::now() + Duration::from_secs(15);
    while alerts_in(&alerts).is_empty() {
        assert!(Instant::now() < deadline, "no alert on lo");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(interrupt(detector, &log), Some(1));
    let summary = std::fs::read_to_string(&log).unwrap();
    // Loopback shows every packet leaving and arriving: one is kept, so
    // the 20 probes count 20 (plus nothing: the scan is the only traffic).
    let row = summary
        .lines()
        .find(|l| l.starts_with("127.0.0.1"))
        .unwrap_or_else(|| panic!("{summary}"));
    let probes: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(probes.get(1), Some(&"20"), "{summary}");
}

/// Waits (bounded) until an alert in `file` passes `want`; returns it.
fn wait_for_alert(
    file: &Path,
    log: &Path,
    what: &str,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(a) = alerts_in(file).into_iter().find(&want) {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} alert: {:?}\n{}",
            alerts_in(file),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The addresses of an alert's group, sorted.
fn group_of(alert: &serde_json::Value) -> Vec<String> {
    let mut sources: Vec<String> = alert["group"]["sources"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    sources.sort();
    sources
}

#[test]
fn live_capture_names_the_sources_of_a_split_scan_and_the_real_source_behind_decoys() {
    let lab = lab_or_skip!(Lab::builder().hosts(3).without_icmp_rate_limits());
    let (split, nmap_decoys, portolan_decoys) = (lab.host(0), lab.host(1), lab.host(2));
    let _open: Vec<_> = [split, nmap_decoys, portolan_decoys]
        .iter()
        .map(|h| h.listen_tcp([22, 80]).unwrap())
        .collect();
    let dir = scratch_dir();
    let files = |name: &str| {
        (
            dir.join(format!("{name}.jsonl")),
            dir.join(format!("{name}.log")),
        )
    };
    let detectors: Vec<_> = [
        (split, "split"),
        (nmap_decoys, "nmap"),
        (portolan_decoys, "portolan"),
    ]
    .iter()
    .map(|(h, name)| {
        let (alerts, log) = files(name);
        live_detector(h.namespace(), h.interface(), &alerts, &log)
    })
    .collect();

    // Portolan's -S: four source addresses, the host's probes rotated
    // over them: a vertical scan split four ways.
    let subnet = split.subnet();
    let sources: Vec<String> = (100..104).map(|h| subnet.ipv4(h).to_string()).collect();
    let scan = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sS", "-Pn", "-T4", "--no-progress", "-p", "1-200", "-e"])
        .arg(split.scanner_interface())
        .arg("-S")
        .arg(format!("{}-103", subnet.ipv4(100)))
        .arg(split.ipv4().to_string())
        .output()
        .unwrap();
    assert_success(&scan);

    // Decoys: nmap's -D and Portolan's -D, two unused addresses of each
    // link's subnet beside the scanner's own.
    let decoys = |h: &portolan_lab::Host| [h.subnet().ipv4(77), h.subnet().ipv4(78)];
    let [a, b] = decoys(nmap_decoys);
    let nmap = lab
        .scanner()
        .command("nmap")
        .args([
            "-sS",
            "-Pn",
            "-n",
            "-T4",
            "--max-retries",
            "1",
            "-p",
            "1-100",
            "-D",
        ])
        .arg(format!("{a},ME,{b}"))
        .arg(nmap_decoys.ipv4().to_string())
        .output()
        .unwrap();
    assert_success(&nmap);
    let [c, d] = decoys(portolan_decoys);
    let portolan = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sS", "-Pn", "-T4", "--no-progress", "-p", "1-100", "-D"])
        .arg(format!("{c},ME,{d}"))
        .arg(portolan_decoys.ipv4().to_string())
        .output()
        .unwrap();
    assert_success(&portolan);

    let (alerts, log) = files("split");
    let distributed = wait_for_alert(&alerts, &log, "distributed", |a| {
        a["kind"] == "distributed" && group_of(a) == sources
    });
    assert_eq!(distributed["target"], split.ipv4().to_string());
    assert!(
        distributed["group"]["overlap"].as_f64().unwrap() <= 0.2,
        "{distributed}"
    );
    assert!(
        alerts_in(&alerts).iter().all(|a| a["kind"] != "decoy"),
        "a split scan is no decoy scan: {:?}",
        alerts_in(&alerts)
    );
    for (host, name, [d1, d2]) in [
        (nmap_decoys, "nmap", [a, b]),
        (portolan_decoys, "portolan", [c, d]),
    ] {
        let (alerts, log) = files(name);
        let real = host.scanner_ipv4().to_string();
        let mut want = vec![real.clone(), d1.to_string(), d2.to_string()];
        want.sort();
        // The group may be reported as it forms (two members first) and
        // again once its real source is known.
        let decoy = wait_for_alert(&alerts, &log, &format!("{name} decoy"), |a| {
            a["kind"] == "decoy" && a["group"]["real_source"] == real && group_of(a) == want
        });
        assert_eq!(decoy["source"], real, "{name}: {decoy}");
        assert_eq!(decoy["group"]["real_by"], "follow-up", "{name}: {decoy}");
        assert!(
            alerts_in(&alerts)
                .iter()
                .all(|a| a["kind"] != "distributed"),
            "{name}: copies are no distributed scan: {:?}",
            alerts_in(&alerts)
        );
    }
    for (detector, name) in detectors.into_iter().zip(["split", "nmap", "portolan"]) {
        let (_, log) = files(name);
        assert_eq!(interrupt(detector, &log), Some(1), "{name}");
    }
}

#[test]
fn live_capture_on_a_segment_names_a_decoy_scan_s_real_source_by_arp_and_sees_an_arp_sweep() {
    let lab = lab_or_skip!(Lab::builder().segment(2).without_icmp_rate_limits());
    let segment = lab.segment(0);
    let target = segment.host(0);
    let dir = scratch_dir();
    let (alerts, log) = (dir.join("live.jsonl"), dir.join("live.log"));
    let detector = live_detector(target.namespace(), target.interface(), &alerts, &log);
    let real = segment.scanner_ipv4().to_string();
    // Copies of a scan of closed ports: no SYN+ACK to follow up, one TTL.
    let (a, b) = (segment.subnet().ipv4(77), segment.subnet().ipv4(78));
    let decoys = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sS", "-Pn", "-T4", "--no-progress", "-p", "20-40", "-D"])
        .arg(format!("{a},ME,{b}"))
        .arg(target.ipv4().to_string())
        .output()
        .unwrap();
    assert_success(&decoys);
    let mut want = vec![real.clone(), a.to_string(), b.to_string()];
    want.sort();
    let decoy = wait_for_alert(&alerts, &log, "decoy", |x| {
        x["kind"] == "decoy" && group_of(x) == want
    });
    assert_eq!(decoy["source"], real, "{decoy}");
    assert_eq!(decoy["group"]["real_by"], "arp", "{decoy}");
    // An ARP sweep of the segment's /24.
    let sweep = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sn", "-n", "--no-progress"])
        .arg(format!("{}/24", segment.subnet().ipv4(0)))
        .output()
        .unwrap();
    assert_success(&sweep);
    let arp = wait_for_alert(&alerts, &log, "ARP sweep", |x| x["proto"] == "arp");
    assert_eq!(
        (&arp["source"], &arp["kind"]),
        (&real.clone().into(), &"horizontal".into()),
        "{arp}"
    );
    assert_eq!(interrupt(detector, &log), Some(1));
}

#[test]
fn lab_sweep_split_over_four_sources_is_one_distributed_alert_with_all_four() {
    let lab = lab_or_skip!(Lab::builder().segment(12).without_icmp_rate_limits());
    let segment = lab.segment(0);
    let hosts = segment.hosts();
    let dir = scratch_dir();
    let pcaps: Vec<PathBuf> = (0..hosts.len())
        .map(|i| dir.join(format!("split{i}.pcap")))
        .collect();
    let tcpdumps: Vec<_> = hosts
        .iter()
        .zip(&pcaps)
        .map(|(h, f)| capture(h.namespace(), f))
        .collect();
    let subnet = segment.subnet();
    let sources: Vec<String> = (100..104).map(|h| subnet.ipv4(h).to_string()).collect();
    // -S rotates one host's probes over its sources, so a one-port sweep
    // leaves from the first: the split is four sweeps, one per source,
    // each of a quarter of the segment.
    for (source, quarter) in sources.iter().zip(hosts.chunks(3)) {
        let targets: Vec<String> = quarter.iter().map(|h| h.ipv4().to_string()).collect();
        let sweep = lab
            .scanner()
            .command(portolan_bin())
            .args(["-sS", "-Pn", "-T4", "-p", "23", "--no-progress", "-e"])
            .arg(segment.scanner_interface())
            .args(["-S", source])
            .args(&targets)
            .output()
            .unwrap();
        assert_success(&sweep);
    }
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
    let split = alerts
        .iter()
        .filter(|a| a["kind"] == "distributed" && a["ports"] == serde_json::json!([23]))
        .max_by_key(|a| group_of(a).len())
        .unwrap_or_else(|| panic!("no distributed sweep: {alerts:?}"));
    assert_eq!(group_of(split), sources, "{split}");
    assert!(split["targets"].as_u64().unwrap() >= 10, "{split}");
    assert!(
        split["group"]["coverage"].as_f64().unwrap() >= 0.5,
        "{split}"
    );
    // Three failed hosts each: every source stays under TRW's threshold,
    // so the group is the only alert that sees them.
    assert!(
        alerts.iter().all(|a| a["kind"] == "distributed"),
        "{alerts:?}"
    );
    // The summary lists each of them as part of a distributed scan.
    let summary = String::from_utf8_lossy(&out.stderr);
    for source in &sources {
        assert!(
            summary
                .lines()
                .any(|l| l.starts_with(source.as_str()) && l.ends_with("distributed")),
            "{source} not in the summary:\n{summary}"
        );
    }
}

/// Starts tcpdump in every host of `hosts`, files named `prefix`N.pcap.
fn capture_each(
    hosts: &[portolan_lab::Host],
    dir: &Path,
    prefix: &str,
) -> (Vec<PathBuf>, Vec<portolan_lab::Daemon>) {
    let pcaps: Vec<PathBuf> = (0..hosts.len())
        .map(|i| dir.join(format!("{prefix}{i}.pcap")))
        .collect();
    let daemons = hosts
        .iter()
        .zip(&pcaps)
        .map(|(h, f)| capture(h.namespace(), f))
        .collect();
    (pcaps, daemons)
}

/// Stops the captures and runs the detector on them.
fn detect_captures(
    pcaps: &[PathBuf],
    tcpdumps: Vec<portolan_lab::Daemon>,
) -> (Output, Vec<serde_json::Value>) {
    std::thread::sleep(Duration::from_millis(300));
    drop(tcpdumps);
    let files: Vec<&Path> = pcaps.iter().map(PathBuf::as_path).collect();
    detect(&files)
}

#[test]
fn lab_ping_sweeps_of_live_hosts_by_nmap_and_portolan_are_horizontal_over_icmp() {
    let lab = lab_or_skip!(Lab::builder().segment(12).without_icmp_rate_limits());
    let segment = lab.segment(0);
    let hosts = segment.hosts();
    let targets: Vec<String> = hosts.iter().map(|h| h.ipv4().to_string()).collect();
    let dir = scratch_dir();
    // Echo requests only (no ARP discovery, which the detector does not
    // read), every host alive and answering.
    let sweeps: [(&str, Vec<&str>); 2] = [
        ("nmap", vec!["-sn", "-PE", "--disable-arp-ping", "-n"]),
        (
            portolan_bin(),
            vec!["-sn", "-PE", "--disable-arp-ping", "--no-progress"],
        ),
    ];
    for (i, (tool, args)) in sweeps.iter().enumerate() {
        let (pcaps, tcpdumps) = capture_each(hosts, &dir, &format!("ping{i}-"));
        let out = lab
            .scanner()
            .command(tool)
            .args(args)
            .args(&targets)
            .output()
            .unwrap();
        assert_success(&out);
        let (out, alerts) = detect_captures(&pcaps, tcpdumps);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sweep: Vec<&serde_json::Value> = alerts
            .iter()
            .filter(|a| a["source"] == segment.scanner_ipv4().to_string())
            .collect();
        assert_eq!(sweep.len(), 1, "{tool}: {alerts:?}");
        let a = sweep[0];
        assert_eq!(a["kind"], "horizontal", "{tool}: {a}");
        assert_eq!(a["proto"], "icmp", "{tool}: {a}");
        assert_eq!(a["decided_by"], "echo-sweep", "{tool}: {a}");
        assert_eq!(a["failures"], 0, "{tool}: every host answered: {a}");
        assert_eq!(a["targets"], 10, "{tool}: decided at the tenth host: {a}");
        assert!(alerts.len() == 1, "{tool}: {alerts:?}");
    }
}

#[test]
fn lab_ping_sweep_of_live_hosts_rewritten_to_nmap_t0_pace_is_a_slow_echo_sweep() {
    // Every host alive and answering, one echo request every 5 minutes
    // (a fast capture rewritten): no 600 s window holds ten, and TRW
    // sees only successes; the slow sweep counts distinct hosts at any
    // pace and decides at the 20th.
    let lab = lab_or_skip!(Lab::builder().segment(22).without_icmp_rate_limits());
    let segment = lab.segment(0);
    let targets: Vec<String> = segment
        .hosts()
        .iter()
        .map(|h| h.ipv4().to_string())
        .collect();
    let dir = scratch_dir();
    let fast = dir.join("ping-fast.pcap");
    let tcpdump = capture(lab.scanner(), &fast);
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sn", "-PE", "--disable-arp-ping", "--no-progress", "-n"])
        .args(["--max-parallelism", "1", "--max-retries", "0"])
        .args(&targets)
        .output()
        .unwrap();
    assert_success(&out);
    std::thread::sleep(Duration::from_millis(300));
    drop(tcpdump);
    let scanner = std::net::IpAddr::V4(segment.scanner_ipv4());
    let slow = stretch(&fast, &dir.join("ping-t0.pcap"), scanner, 300 * 1_000_000);
    let (out, alerts) = detect(&[&slow]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a["source"], scanner.to_string(), "{a}");
    assert_eq!(a["kind"], "horizontal", "{a}");
    assert_eq!(a["proto"], "icmp", "{a}");
    assert_eq!(a["decided_by"], "slow-echo-sweep", "{a}");
    assert_eq!(a["targets"], 20, "{a}");
    let took = a["decided_at"].as_f64().unwrap() - a["first_seen"].as_f64().unwrap();
    assert!(
        (took - 19.0 * 300.0).abs() < 5.0,
        "decided {took} s after the first: {a}"
    );
}

/// Rewrites `input`'s timestamps as if `scanner`'s probes had left
/// `gap_us` apart (nmap `-T0`: 5 minutes, `-T1`: 15 s): every packet keeps
/// its offset from the latest probe before it. Returns the new file.
fn stretch(input: &Path, output: &Path, scanner: std::net::IpAddr, gap_us: u64) -> PathBuf {
    use portolan_detect::write::{pcap_header, pcap_record};
    let mut records: Vec<(u32, u64, Vec<u8>)> = Vec::new();
    portolan_detect::read_capture(input, |p| {
        records.push((p.linktype, p.ts_ns / 1000, p.data.to_vec()));
    })
    .expect("read the fast capture");
    let link = records
        .first()
        .map_or(portolan_detect::decode::linktype::RAW, |r| r.0);
    let mut buf = Vec::new();
    pcap_header(&mut buf, link);
    let (mut slot, mut probe_ts, mut first) = (None::<u64>, 0u64, None::<u64>);
    for (linktype, ts, data) in &records {
        let probe = portolan_detect::decode(*linktype, *ts * 1000, data)
            .is_some_and(|e| e.src == scanner && e.kind == portolan_detect::EventKind::Attempt);
        if probe {
            slot = Some(slot.map_or(0, |k| k + 1));
            probe_ts = *ts;
        }
        let start = *first.get_or_insert(*ts);
        let at = match slot {
            Some(k) => start + k * gap_us + ts.saturating_sub(probe_ts),
            None => *ts,
        };
        pcap_record(&mut buf, at, data);
    }
    std::fs::write(output, buf).expect("write the stretched capture");
    output.to_path_buf()
}

#[test]
fn lab_nmap_t0_and_t1_paces_rewritten_from_a_fast_capture_are_still_vertical_with_their_decision_time()
 {
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let target = lab.host(0);
    let _open = target.listen_tcp([29]).unwrap();
    let dir = scratch_dir();
    let fast = dir.join("fast.pcap");
    let tcpdump = capture(target.namespace(), &fast);
    // One probe at a time, as -T0 and -T1 send them, only faster, in
    // order (-r): ports 20-28 closed, 29 open.
    let scan = lab
        .scanner()
        .command("nmap")
        .args(["-sS", "-Pn", "-n", "-r", "-T4", "--max-parallelism", "1"])
        .args(["--max-retries", "0", "-p", "20-29"])
        .arg(target.ipv4().to_string())
        .output()
        .unwrap();
    assert_success(&scan);
    std::thread::sleep(Duration::from_millis(300));
    drop(tcpdump);
    let scanner = std::net::IpAddr::V4(target.scanner_ipv4());
    for (pace, gap_s) in [("T0", 300u64), ("T1", 15)] {
        let slow = stretch(
            &fast,
            &dir.join(format!("{pace}.pcap")),
            scanner,
            gap_s * 1_000_000,
        );
        let (out, alerts) = detect(&[&slow]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{pace}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let a = alerts
            .iter()
            .find(|a| a["kind"] == "vertical" && a["source"] == scanner.to_string())
            .unwrap_or_else(|| panic!("{pace} not flagged: {alerts:?}"));
        assert_eq!(a["target"], target.ipv4().to_string());
        // The fifth refused port: four gaps after the first probe.
        let took = a["decided_at"].as_f64().unwrap() - a["first_seen"].as_f64().unwrap();
        let want = 4.0 * gap_s as f64;
        assert!(
            took >= want && took < want + 2.0,
            "{pace}: decided {took:.1} s after the first probe, {want} s expected: {a}"
        );
        assert_eq!(a["probes"], 5, "{pace}: {a}");
    }
}

/// A DNS query with id `id` for `version.bind` (TXT, class CHAOS: the one
/// name the lab's dnsmasq answers), as printf escapes. The id's first
/// byte is never 0: bash's `read` skips NUL bytes and would wait on.
fn dns_query(id: u16) -> String {
    let id = id | 0x4100;
    let mut bytes = vec![(id >> 8) as u8, id as u8, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["version", "bind"] {
        bytes.push(label.len() as u8);
        bytes.extend_from_slice(label.as_bytes());
    }
    bytes.extend_from_slice(&[0, 0, 16, 0, 3]);
    bytes.iter().map(|b| format!("\\x{b:02x}")).collect()
}

/// UDP datagrams from `from`:53 in `pcap`.
fn dns_answers(pcap: &Path, from: Ipv4Addr) -> usize {
    let mut n = 0;
    portolan_detect::read_capture(pcap, |p| {
        if let Some(e) = portolan_detect::decode(p.linktype, p.ts_ns, p.data)
            && e.src == std::net::IpAddr::V4(from)
            && e.proto == portolan_detect::Proto::Udp
            && e.sport == 53
        {
            n += 1;
        }
    })
    .expect("read the resolver's capture");
    n
}

#[test]
fn lab_benign_dns_ssh_and_peer_to_peer_clients_are_not_flagged() {
    let lab = lab_or_skip!(Lab::builder().segment(12).without_icmp_rate_limits());
    let segment = lab.segment(0);
    let hosts = segment.hosts();
    let dir = scratch_dir();
    let (resolver, ssh_server, dns_client, ssh_client, peer) =
        (&hosts[0], &hosts[1], &hosts[2], &hosts[3], &hosts[4]);
    let _dnsmasq = portolan_lab::daemons::dnsmasq(resolver, &dir).unwrap();
    let _sshd = portolan_lab::daemons::sshd(ssh_server, &dir).unwrap();
    // The peers: most hosts take connections on 6881; two do not.
    let listeners: Vec<_> = hosts[5..]
        .iter()
        .enumerate()
        .filter(|(i, _)| *i % 4 != 1)
        .map(|(_, h)| h.listen_tcp([6881]).unwrap())
        .collect();
    let (pcaps, tcpdumps) = capture_each(hosts, &dir, "benign");
    // 200 DNS queries to the one resolver, each from a new socket.
    let queries: String = (0..200u16)
        .map(|i| {
            format!(
                "exec 3<>/dev/udp/{}/53; printf '{}' >&3; read -t 2 -N 1 _ <&3; exec 3<&-\n",
                resolver.ipv4(),
                dns_query(i)
            )
        })
        .collect();
    let out = dns_client
        .command("bash")
        .arg("-c")
        .arg(&queries)
        .output()
        .unwrap();
    assert_success(&out);
    // Ten SSH logins refused (no key): full TCP sessions with banners.
    for _ in 0..10 {
        let _ = ssh_client
            .command("timeout")
            .args(["-k", "2", "10", "ssh", "-o", "BatchMode=yes"])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .arg(format!("nobody@{}", ssh_server.ipv4()))
            .arg("true")
            .output()
            .unwrap();
    }
    // A peer-to-peer client: every other host's 6881, most answer.
    let contacts: String = hosts[5..]
        .iter()
        .map(|h| {
            format!(
                "(exec 3<>/dev/tcp/{}/6881 && exec 3>&-) 2>/dev/null; ",
                h.ipv4()
            )
        })
        .collect();
    let out = peer
        .command("bash")
        .arg("-c")
        .arg(format!("for round in 1 2 3; do {contacts} done; true"))
        .output()
        .unwrap();
    assert_success(&out);
    drop(listeners);
    let (out, alerts) = detect_captures(&pcaps, tcpdumps);
    assert_eq!(
        out.status.code(),
        Some(0),
        "benign traffic flagged: {alerts:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The traffic was there: the resolver answered every query.
    assert_eq!(dns_answers(&pcaps[0], resolver.ipv4()), 200);
}

/// The MAC address of `interface` in `namespace`.
fn mac_of(namespace: &portolan_lab::Namespace, interface: &str) -> String {
    let text = namespace.ip(&["-o", "link", "show", interface]).unwrap();
    text.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC address: {text}"))
        .to_string()
}

#[test]
fn lab_masscan_zmap_udp_and_sctp_sweeps_of_a_routed_range_are_horizontal_with_their_protocol() {
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let gateway = lab.host(0);
    // A /26 of the half of the lab's /15 without the scanner's link,
    // routed to the host, which takes every address in it as its own:
    // 64 live machines with nothing listening (RST, port and protocol
    // unreachables).
    let link = gateway.ipv4().octets()[1];
    let range = format!("198.{}.77.0/26", if link == 18 { 19 } else { 18 });
    lab.route_range_to(gateway, &range).unwrap();
    let dir = scratch_dir();
    let scanner_ip = gateway.scanner_ipv4().to_string();
    let scanner_mac = mac_of(lab.scanner(), gateway.scanner_interface());
    let gateway_mac = mac_of(gateway.namespace(), gateway.interface());
    let blocklist = dir.join("empty-blocklist");
    std::fs::write(&blocklist, "").unwrap();
    let blocklist = blocklist.to_str().unwrap().to_string();
    // masscan and ZMap send from their own stacks (given the link's
    // addresses); they may wait for late answers, so a timeout ends them.
    let sweeps: Vec<(&str, &str, Vec<String>)> = vec![
        (
            "masscan",
            "tcp",
            [
                "timeout", "-k", "2", "20", "masscan", "-p", "80", "--rate", "2000", "-e",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([
                gateway.scanner_interface().to_string(),
                "--adapter-ip".into(),
                scanner_ip.clone(),
                "--adapter-mac".into(),
                scanner_mac.clone(),
                "--router-mac".into(),
                gateway_mac.clone(),
                "--wait".into(),
                "1".into(),
                range.clone(),
            ])
            .collect(),
        ),
        (
            "zmap",
            "tcp",
            [
                "timeout", "-k", "2", "20", "zmap", "-p", "80", "-r", "2000", "-i",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([
                gateway.scanner_interface().to_string(),
                "-S".into(),
                scanner_ip.clone(),
                "-G".into(),
                gateway_mac.clone(),
                "-b".into(),
                blocklist.clone(),
                "-c".into(),
                "1".into(),
                "-q".into(),
                "--disable-syslog".into(),
                "-o".into(),
                "/dev/null".into(),
                range.clone(),
            ])
            .collect(),
        ),
        (
            "portolan -sU",
            "udp",
            [portolan_bin(), "-sU", "-Pn", "-p", "161", "--no-progress"]
                .iter()
                .map(|s| s.to_string())
                .chain([range.clone()])
                .collect(),
        ),
        (
            "portolan -sY",
            "sctp",
            [portolan_bin(), "-sY", "-Pn", "-p", "38412", "--no-progress"]
                .iter()
                .map(|s| s.to_string())
                .chain([range.clone()])
                .collect(),
        ),
    ];
    for (i, (tool, proto, argv)) in sweeps.iter().enumerate() {
        let (pcaps, tcpdumps) =
            capture_each(std::slice::from_ref(gateway), &dir, &format!("sweep{i}-"));
        let out = lab
            .scanner()
            .command(&argv[0])
            .args(&argv[1..])
            .output()
            .unwrap();
        // masscan and ZMap may be ended by the timeout (124) once sent.
        assert!(
            matches!(out.status.code(), Some(0 | 124)),
            "{tool}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let (out, alerts) = detect_captures(&pcaps, tcpdumps);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let a = alerts
            .iter()
            .find(|a| a["source"] == scanner_ip)
            .unwrap_or_else(|| panic!("{tool} not flagged: {alerts:?}"));
        assert_eq!(a["kind"], "horizontal", "{tool}: {a}");
        assert_eq!(a["proto"], *proto, "{tool}: {a}");
        assert_eq!(a["decided_by"], "trw", "{tool}: {a}");
        assert!(a["decision_step"].as_u64() <= Some(5), "{tool}: {a}");
        if *tool == "masscan" {
            assert!(
                a["traits"].to_string().contains("masscan-syn"),
                "{tool}: {a}"
            );
        }
        assert!(
            alerts.iter().all(|a| a["source"] == scanner_ip),
            "{tool}: {alerts:?}"
        );
    }
}

#[test]
fn an_allowlist_file_labels_its_scanners_and_a_bad_line_is_a_usage_error_naming_it() {
    let dir = scratch_dir();
    let sweep: Vec<_> = (1..=10)
        .map(|h| tcp4([198, 18, 0, 1], [198, 18, 1, h], 23, 0x02))
        .collect();
    let scanned = write_pcap(&dir, "sweep.pcap", &sweep);
    let run = |list: &str| {
        let file = dir.join("allow.txt");
        std::fs::write(&file, list).unwrap();
        Command::new(portolan_bin())
            .args(["detect", "--allowlist-file"])
            .arg(&file)
            .arg("--pcap")
            .arg(&scanned)
            .output()
            .unwrap()
    };
    let out = run("# our audit scanners\n\n198.18.0.0/29   # audit\nfd00::5\n");
    assert_eq!(out.status.code(), Some(1), "labelled, still reported");
    let alert: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(alert["allowlisted"], true);
    let out = run("198.18.0.9\n");
    let alert: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(alert["allowlisted"], false, "not on the list");
    let out = run("198.18.0.0/29\nscanner\u{1b}[31m.example\n");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains('\u{1b}'), "escaped: {err}");
    let missing = Command::new(portolan_bin())
        .args(["detect", "--allowlist-file"])
        .arg(dir.join("absent.txt"))
        .arg("--pcap")
        .arg(&scanned)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("absent.txt"));
}

#[test]
fn lab_a_nat_gateway_with_many_clients_behind_it_and_a_busy_proxy_are_not_flagged() {
    let lab = lab_or_skip!(
        Lab::builder()
            .hosts(4)
            .segment(6)
            .without_icmp_rate_limits()
    );
    let segment = lab.segment(0);
    let servers = &segment.hosts()[..4];
    let proxy = &segment.hosts()[4];
    // The scanner's namespace is the NAT gateway: the four point-to-point
    // hosts are its clients, masqueraded behind its segment address.
    lab.scanner().sysctl("net.ipv4.ip_forward", "1").unwrap();
    lab.scanner()
        .nft(&format!(
            "table ip nat {{\n  chain post {{\n    type nat hook postrouting priority 100; policy accept;\n    oifname \"{}\" masquerade\n  }}\n}}\n",
            segment.scanner_interface()
        ))
        .unwrap();
    let network = format!("{}/24", segment.subnet().ipv4(0));
    for client in lab.hosts() {
        client
            .ip(&[
                "route",
                "add",
                &network,
                "via",
                &client.scanner_ipv4().to_string(),
            ])
            .unwrap();
    }
    // Web servers on 80 (and, on two of them, 443); 8080 is closed.
    let _web: Vec<_> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if i < 2 {
                s.listen_tcp([80, 443]).unwrap()
            } else {
                s.listen_tcp([80]).unwrap()
            }
        })
        .collect();
    let dir = scratch_dir();
    let (pcaps, tcpdumps) = capture_each(servers, &dir, "nat");
    // Each client: 15 page loads over the four servers, a stale bookmark
    // to 8080 now and then, and 443 where it is served.
    let page_loads = |client: usize| -> String {
        (0..15)
            .map(|n| {
                let server = servers[(client + n) % servers.len()].ipv4();
                let port = match n % 5 {
                    4 => 8080,
                    2 if (client + n) % servers.len() < 2 => 443,
                    _ => 80,
                };
                format!("(exec 3<>/dev/tcp/{server}/{port} && exec 3>&-) 2>/dev/null; ")
            })
            .collect()
    };
    for (i, client) in lab.hosts().iter().enumerate() {
        let out = client
            .command("bash")
            .arg("-c")
            .arg(format!("{} true", page_loads(i)))
            .output()
            .unwrap();
        assert_success(&out);
    }
    // A busy proxy: 60 upstream connections over the servers' 80 and 443,
    // a few refused.
    let upstream: String = (0..60)
        .map(|n| {
            let server = servers[n % servers.len()].ipv4();
            let port = if n % 2 == 0 { 80 } else { 443 };
            format!("(exec 3<>/dev/tcp/{server}/{port} && exec 3>&-) 2>/dev/null; ")
        })
        .collect();
    let out = proxy
        .command("bash")
        .arg("-c")
        .arg(format!("{upstream} true"))
        .output()
        .unwrap();
    assert_success(&out);
    let (out, alerts) = detect_captures(&pcaps, tcpdumps);
    assert_eq!(
        out.status.code(),
        Some(0),
        "NAT gateway or proxy flagged: {alerts:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The servers saw the clients only as the gateway's address.
    let nat = std::net::IpAddr::V4(segment.scanner_ipv4());
    let mut from_nat = 0;
    for pcap in &pcaps {
        portolan_detect::read_capture(pcap, |p| {
            if let Some(e) = portolan_detect::decode(p.linktype, p.ts_ns, p.data)
                && e.src == nat
                && e.kind == portolan_detect::EventKind::Attempt
            {
                from_nat += 1;
            }
        })
        .unwrap();
    }
    assert_eq!(
        from_nat,
        4 * 15,
        "every client connection came through the NAT"
    );
}

/// A pcap of raw IPv4 `packets` at their times (µs since the epoch).
fn write_timed_pcap(dir: &Path, name: &str, packets: &[(u64, Vec<u8>)]) -> PathBuf {
    let mut out = Vec::new();
    portolan_detect::write::pcap_header(&mut out, 101);
    for (ts_us, p) in packets {
        portolan_detect::write::pcap_record(&mut out, *ts_us, p);
    }
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn captures_from_two_vantage_points_are_merged_by_time_so_answers_meet_their_probes() {
    let dir = scratch_dir();
    let t0 = 1_700_000_000_000_000u64;
    let (client, scanner) = ([198, 18, 0, 2], [198, 18, 0, 1]);
    // The client's side holds its SYNs to ten servers, a second apart; the
    // servers' side holds their SYN+ACKs, a millisecond after each. Read
    // one file after the other, every SYN would be silence past the
    // answer timeout before its answer was read.
    let mut client_side = Vec::new();
    let mut server_side = Vec::new();
    for h in 1..=10u8 {
        let t = t0 + u64::from(h) * 1_000_000;
        let server = [198, 18, 2, h];
        client_side.push((t, tcp4(client, server, 443, 0x02)));
        let mut answer = tcp4(server, client, 40000, 0x12);
        answer[20..22].copy_from_slice(&443u16.to_be_bytes());
        server_side.push((t + 1_000, answer));
        // A scanner's SYNs to the same servers' port 23, refused: seen
        // only on the servers' side, with their RSTs.
        server_side.push((t + 2_000, tcp4(scanner, server, 23, 0x02)));
        let mut refused = tcp4(server, scanner, 40000, 0x14);
        refused[20..22].copy_from_slice(&23u16.to_be_bytes());
        server_side.push((t + 2_100, refused));
    }
    let a = write_timed_pcap(&dir, "client-side.pcap", &client_side);
    let b = write_timed_pcap(&dir, "server-side.pcap", &server_side);
    let (out, alerts) = detect(&[&a, &b]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(alerts.len(), 1, "only the scanner: {alerts:?}");
    assert_eq!(alerts[0]["source"], "198.18.0.1");
    assert_eq!(alerts[0]["kind"], "horizontal");
}

#[test]
fn lab_idle_scan_is_vertical_from_the_zombie_at_the_target_and_idle_from_the_scanner_at_the_zombie()
{
    let lab = lab_or_skip!(Lab::builder().segment(2).without_icmp_rate_limits());
    let segment = lab.segment(0);
    let (zombie, target) = (segment.host(0), segment.host(1));
    let _responder = zombie
        .respond_zombie(zombie.ipv4(), portolan_lab::ZombieIpId::Incremental)
        .unwrap();
    let _open = target.listen_tcp([22, 80]).unwrap();
    let dir = scratch_dir();
    let scanner = segment.scanner_ipv4().to_string();
    for (name, program, args) in [
        ("portolan", portolan_bin(), vec!["-n", "--no-progress"]),
        ("nmap", "nmap", vec!["-n", "--max-retries", "1"]),
    ] {
        let (at_target, at_zombie) = (
            dir.join(format!("{name}-target.pcap")),
            dir.join(format!("{name}-zombie.pcap")),
        );
        // ARP too: the zombie resolves the scanner after its first
        // reading, which must not make the next ones look solicited.
        let tcpdumps = vec![
            capture_filtered(target.namespace(), &at_target, "arp or tcp"),
            capture_filtered(zombie.namespace(), &at_zombie, "arp or tcp"),
        ];
        let out = lab
            .scanner()
            .command(program)
            .args(&args)
            .args(["-Pn", "-p", "20-40", "-sI"])
            .arg(format!("{}:443", zombie.ipv4()))
            .arg(target.ipv4().to_string())
            .output()
            .unwrap();
        assert_success(&out);
        std::thread::sleep(Duration::from_millis(300));
        drop(tcpdumps);
        idle_scan_seen_from_both_ends(name, &at_target, &at_zombie, &scanner, zombie, target);
    }
}

/// The detector's reading of an idle scan's captures at its target and
/// at its zombie.
fn idle_scan_seen_from_both_ends(
    name: &str,
    at_target: &Path,
    at_zombie: &Path,
    scanner: &str,
    zombie: &portolan_lab::Host,
    target: &portolan_lab::Host,
) {
    // The target only ever sees the zombie's address: its refused ports
    // make a vertical scan from there.
    let (out, alerts) = detect(&[at_target]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = alerts
        .iter()
        .find(|a| a["kind"] == "vertical")
        .unwrap_or_else(|| panic!("{name}: {alerts:?}"));
    assert_eq!(a["source"], zombie.ipv4().to_string(), "{name}: {a}");
    assert_eq!(a["target"], target.ipv4().to_string(), "{name}: {a}");
    assert!(
        alerts.iter().all(|a| a["source"] != scanner),
        "{name}: the scanner sent the target nothing of its own: {alerts:?}"
    );

    // The zombie sees the real scanner read its IP ID: SYN+ACKs to port
    // 443, each answered by a RST whose ID has moved by the zombie's own
    // packets since. The target's answers to the spoofed probes reach it
    // too, and name no one.
    let (out, alerts) = detect(&[at_zombie]);
    assert_eq!(out.status.code(), Some(1), "{name}: {alerts:?}");
    let idle: Vec<_> = alerts.iter().filter(|a| a["kind"] == "idle").collect();
    assert_eq!(idle.len(), 1, "{name}: {alerts:?}");
    let a = idle[0];
    assert_eq!(a["source"], scanner, "{name}: {a}");
    assert_eq!(a["target"], zombie.ipv4().to_string(), "{name}: {a}");
    assert_eq!(a["ports"], serde_json::json!([443]), "{name}: {a}");
    assert_eq!(a["decided_by"], "zombie-probe", "{name}: {a}");
    let steps = a["zombie"]["ip_id_steps"].as_array().unwrap();
    assert!(!steps.is_empty(), "{name}: {a}");
    assert!(
        steps
            .iter()
            .all(|s| (1..1000).contains(&s.as_u64().unwrap())),
        "{name}: an incremental zombie's IDs step forward: {a}"
    );
    assert!(
        alerts
            .iter()
            .all(|a| a["source"] != target.ipv4().to_string()),
        "{name}: {alerts:?}"
    );
}

#[test]
fn lab_arp_sweeps_by_portolan_and_nmap_are_horizontal_over_arp_and_neighbours_talking_are_not() {
    let lab = lab_or_skip!(Lab::builder().segment(3).without_icmp_rate_limits());
    let segment = lab.segment(0);
    let (watcher, client, server) = (segment.host(0), segment.host(1), segment.host(2));
    let _web = server.listen_tcp([80]).unwrap();
    let dir = scratch_dir();
    let range = format!("{}/24", segment.subnet().ipv4(0));
    let scanner = segment.scanner_ipv4().to_string();
    for (name, program, args) in [
        (
            "portolan",
            portolan_bin(),
            vec!["-sn", "-n", "--no-progress"],
        ),
        ("nmap", "nmap", vec!["-sn", "-n"]),
    ] {
        let pcap = dir.join(format!("arp-{name}.pcap"));
        let tcpdump = capture_filtered(watcher.namespace(), &pcap, "arp or tcp");
        // Neighbours talking: each resolves the other, and is answered.
        http_client(client.namespace(), server.ipv4(), 5);
        let out = lab
            .scanner()
            .command(program)
            .args(&args)
            .arg(&range)
            .output()
            .unwrap();
        assert_success(&out);
        let (out, alerts) = detect_captures(&[pcap], vec![tcpdump]);
        assert_eq!(out.status.code(), Some(1), "{name}: {alerts:?}");
        assert_eq!(alerts.len(), 1, "{name}: only the scanner: {alerts:?}");
        let a = &alerts[0];
        assert_eq!(a["source"], scanner, "{name}: {a}");
        assert_eq!(
            (&a["kind"], &a["proto"]),
            (&"horizontal".into(), &"arp".into()),
            "{name}: {a}"
        );
        assert!(a["failures"].as_u64().unwrap() <= 6, "{name}: {a}");
    }
}

#[test]
fn lab_decoy_scans_of_closed_ports_on_a_segment_name_their_real_source_by_arp() {
    let lab = lab_or_skip!(Lab::builder().segment(1).without_icmp_rate_limits());
    let segment = lab.segment(0);
    let target = segment.host(0);
    let dir = scratch_dir();
    let (a, b) = (segment.subnet().ipv4(77), segment.subnet().ipv4(78));
    let real = segment.scanner_ipv4().to_string();
    let mut want = vec![real.clone(), a.to_string(), b.to_string()];
    want.sort();
    for (name, program, args) in [
        (
            "portolan",
            portolan_bin(),
            vec!["-sS", "-Pn", "-T4", "--no-progress"],
        ),
        (
            "nmap",
            "nmap",
            vec!["-sS", "-Pn", "-n", "-T4", "--max-retries", "1"],
        ),
    ] {
        let pcap = dir.join(format!("decoy-{name}.pcap"));
        let tcpdump = capture_filtered(target.namespace(), &pcap, "arp or tcp");
        // Nothing listens on 20-40: every probe is refused, so no copy
        // is answered with a SYN+ACK to follow up.
        let out = lab
            .scanner()
            .command(program)
            .args(&args)
            .args(["-p", "20-40", "-D"])
            .arg(format!("{a},ME,{b}"))
            .arg(target.ipv4().to_string())
            .output()
            .unwrap();
        assert_success(&out);
        let (out, alerts) = detect_captures(&[pcap], vec![tcpdump]);
        assert_eq!(out.status.code(), Some(1), "{name}: {alerts:?}");
        // The decoys' probes fail at the answer timeout, the real one's
        // at its RSTs: the group is reported as it grows.
        let named = alerts
            .iter()
            .find(|x| x["kind"] == "decoy" && group_of(x) == want)
            .unwrap_or_else(|| panic!("{name}: no decoy alert of all three: {alerts:?}"));
        assert_eq!(named["source"], real, "{name}: {named}");
        assert_eq!(named["group"]["real_by"], "arp", "{name}: {named}");
        assert!(
            alerts
                .iter()
                .all(|x| x["group"]["real_source"].is_null() || x["group"]["real_source"] == real),
            "{name}: {alerts:?}"
        );
    }
}
