//! The connect scan against lab hosts in network namespaces: exact
//! per-port outcomes over IPv4 and IPv6 (open, closed, closed by a firewall
//! reset, filtered by drop, filtered by ICMP), under the kernel's ICMP rate
//! limits, interruption, host timeouts, and output files.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use portolan_lab::{Host, Lab, lab_or_skip};

use crate::util::{JsonRun, PortLine, assert_success, read_jsonl, scratch_dir};

const OPEN: [u16; 6] = [22, 80, 443, 3306, 8080, 31337];
const DROPPED: std::ops::RangeInclusive<u16> = 1000..=1199;
const RESET: std::ops::RangeInclusive<u16> = 2000..=2049;
const PROHIBITED: std::ops::RangeInclusive<u16> = 3000..=3019;

/// Listeners and firewall rules of the standard lab host.
fn furnish(host: &Host) -> portolan_lab::TcpService {
    let service = host.listen_tcp(OPEN).expect("listeners");
    host.drop_tcp(DROPPED).expect("drop rule");
    host.reject_tcp_reset(RESET).expect("reset rule");
    host.reject_tcp_admin_prohibited(PROHIBITED)
        .expect("prohibited rule");
    service
}

/// What each port of the standard host must be, as (state, reason).
fn truth(addr: IpAddr, port: u16) -> (&'static str, &'static str) {
    if OPEN.contains(&port) {
        ("open", "syn-ack")
    } else if DROPPED.contains(&port) {
        ("filtered", "no-response")
    } else if PROHIBITED.contains(&port) {
        // The ICMP code itself, read from the socket's error queue, over
        // both IPv4 (type 3 code 13) and IPv6 (type 1 code 1).
        let _ = addr;
        ("filtered", "admin-prohibited")
    } else {
        ("closed", "conn-refused")
    }
}

/// Runs portolan in the lab's scanner namespace and reads its JSON lines.
fn scan_in_lab(lab: &Lab, args: &[&str]) -> (JsonRun, String) {
    let dir = scratch_dir();
    let json = dir.join("scan.jsonl");
    let out = lab
        .scanner()
        .command(crate::util::portolan_bin())
        .arg("-sT")
        .args(args)
        .arg("-oJ")
        .arg(&json)
        .arg("--no-progress")
        .output()
        .expect("run portolan in the lab");
    let stdout = assert_success(&out);
    (read_jsonl(&json), stdout)
}

fn assert_exact(run: &JsonRun, addrs: &[IpAddr], ports: &[u16]) {
    let mut wrong = Vec::new();
    for &addr in addrs {
        for &port in ports {
            let want = truth(addr, port);
            match run.ports.get(&(addr, port)) {
                Some(PortLine { state, reason, .. })
                    if (state.as_str(), reason.as_str()) == want => {}
                got => wrong.push(format!("{addr} {port}: want {want:?}, got {got:?}")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong of {}:\n{}",
        wrong.len(),
        addrs.len() * ports.len(),
        wrong[..wrong.len().min(20)].join("\n")
    );
    assert_eq!(
        run.ports.len(),
        addrs.len() * ports.len(),
        "extra ports reported"
    );
}

#[test]
fn exact_outcomes_over_ipv4_and_ipv6() {
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let _service = furnish(host);
    let v4 = host.ipv4().to_string();
    let v6 = host.ipv6().to_string();
    let (run, stdout) = scan_in_lab(
        &lab,
        &[
            "-sT",
            "-T4",
            "-p",
            "1-3100,8080,31337",
            "--reason",
            &v4,
            &v6,
        ],
    );
    let ports: Vec<u16> = (1..=3100).chain([8080, 31337]).collect();
    assert_exact(&run, &[host.ipv4().into(), host.ipv6().into()], &ports);
    // Silent ports are tried at least twice and at most -T4's 6
    // retransmissions plus one (the count in between follows the loss
    // the host showed; see the engine's retries_for_loss).
    for ((_, port), p) in &run.ports {
        if DROPPED.contains(port) {
            assert!((2..=7).contains(&p.tries), "port {port}: {} tries", p.tries);
        }
    }
    let summary = run.summary.expect("summary line");
    assert_eq!(summary["hosts"]["scanned"], 2);
    let open_scanned = OPEN.iter().filter(|p| ports.contains(p)).count() as u64;
    assert_eq!(summary["ports"]["open"], 2 * open_scanned);
    assert_eq!(summary["interrupted"], false);
    assert_eq!(run.hosts.len(), 2);
    // The terminal output lists the open ports with their reasons.
    assert!(
        stdout.contains(&format!("Portolan scan report for {v4}\n")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("22/tcp ") && l.contains(" open ") && l.ends_with(" syn-ack")),
        "{stdout}"
    );
    assert!(
        stdout.contains("closed tcp ports (conn-refused)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("filtered tcp ports (no-response)"),
        "{stdout}"
    );
}

#[test]
fn icmp_rate_limited_host_still_yields_filtered() {
    // The kernel's default ICMP limits: a burst, then about one per second.
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = host.listen_tcp([22]).unwrap();
    host.reject_tcp_admin_prohibited(5000..=5199).unwrap();
    let v4 = host.ipv4().to_string();
    let (run, _) = scan_in_lab(&lab, &["-T4", "-p", "22,5000-5199", &v4]);
    let addr: IpAddr = host.ipv4().into();
    assert_eq!(run.ports[&(addr, 22)].state, "open");
    let mut by_reason = BTreeMap::new();
    for port in 5000..=5199u16 {
        let p = &run.ports[&(addr, port)];
        assert_eq!(p.state, "filtered", "port {port}");
        *by_reason.entry(p.reason.clone()).or_insert(0) += 1;
    }
    assert!(
        by_reason
            .keys()
            .all(|r| r == "admin-prohibited" || r == "no-response")
    );
    assert!(
        by_reason.get("admin-prohibited").copied().unwrap_or(0) >= 1,
        "{by_reason:?}"
    );
}

#[test]
fn several_hosts_open_only_and_normal_file() {
    let lab = lab_or_skip!(Lab::builder().hosts(3));
    let services: Vec<_> = lab
        .hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| h.listen_tcp([100 + i as u16, 7000]).unwrap())
        .collect();
    let dir = scratch_dir();
    let normal = dir.join("scan.nmap");
    let targets = dir.join("targets.txt");
    let list: Vec<String> = lab.hosts().iter().map(|h| h.ipv4().to_string()).collect();
    std::fs::write(&targets, format!("# lab hosts\n{}\n", list.join("\n"))).unwrap();
    let (run, stdout) = scan_in_lab(
        &lab,
        &[
            "-p",
            "1-1024,7000",
            "--open",
            "-iL",
            targets.to_str().unwrap(),
            "--exclude",
            &list[2],
            "-oN",
            normal.to_str().unwrap(),
        ],
    );
    drop(services);
    // --open keeps open ports only, the excluded host is not scanned.
    let got: Vec<(String, u16)> = run.ports.keys().map(|(a, p)| (a.to_string(), *p)).collect();
    assert_eq!(
        got,
        vec![
            (list[0].clone(), 100),
            (list[0].clone(), 7000),
            (list[1].clone(), 101),
            (list[1].clone(), 7000)
        ]
    );
    let file = std::fs::read_to_string(&normal).unwrap();
    // -oN writes what the terminal shows, framed as nmap frames its files:
    // a "# ... scan initiated" comment and a "# Nmap done at" trailer.
    let body = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with(['#', 'S']) && !l.starts_with("Portolan done:"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        body(&file),
        body(&stdout),
        "-oN writes what the terminal shows"
    );
    assert!(file.starts_with("# Portolan "), "{file}");
    assert!(file.contains("101/tcp  open  "), "{file}");
    // The excluded host is named only in the command line.
    assert!(!body(&file).join("\n").contains(&list[2]), "{file}");
    assert!(
        file.lines()
            .last()
            .is_some_and(|l| l.starts_with("# Nmap done at ")
                && l.contains(" -- 2 IP addresses (2 hosts up)")),
        "{file}"
    );
    assert!(stdout.contains("Portolan done: 2 IP addresses (2 hosts up)"));
}

#[test]
fn interrupt_writes_what_was_found() {
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = host.listen_tcp([22]).unwrap();
    host.drop_tcp(1..=21).unwrap();
    host.drop_tcp(23..=65535).unwrap();
    let dir = scratch_dir();
    let json = dir.join("scan.jsonl");
    let mut child = lab
        .scanner()
        .command(crate::util::portolan_bin())
        // In order (-r), so that port 22 answers among the first probes.
        .args([
            "-p-",
            "-r",
            "--max-parallelism",
            "50",
            "--no-progress",
            "-oJ",
        ])
        .arg(&json)
        .arg(host.ipv4().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the scan is under way, then interrupt it.
    let deadline = Instant::now() + Duration::from_secs(20);
    // (A port line, not just any: rate lines come once a second.)
    while !std::fs::read_to_string(&json).is_ok_and(|t| t.contains("\"type\":\"port\"")) {
        assert!(Instant::now() < deadline, "the scan never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id() as i32;
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let waited = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if waited.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("portolan did not stop after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    let run = read_jsonl(&json);
    let summary = run.summary.expect("a summary line after the interrupt");
    assert_eq!(summary["interrupted"], true);
    assert_eq!(run.hosts.len(), 1);
    assert_eq!(run.hosts[0]["status"], "interrupted");
    let addr: IpAddr = host.ipv4().into();
    assert_eq!(run.ports[&(addr, 22)].state, "open");
}

#[test]
fn host_timeout_gives_up_on_a_silent_host() {
    let lab = lab_or_skip!(Lab::builder().hosts(2));
    let silent = lab.host(0);
    silent.drop_tcp(1..=65535).unwrap();
    let live = lab.host(1);
    let _service = live.listen_tcp([22]).unwrap();
    let started = Instant::now();
    let (run, stdout) = scan_in_lab(
        &lab,
        &[
            "-p",
            "1-2000",
            "--host-timeout",
            "1s",
            "--max-parallelism",
            "20",
            &silent.ipv4().to_string(),
            &live.ipv4().to_string(),
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "bounded by the host timeout, not by 2000 silent ports"
    );
    assert!(
        stdout.contains(&format!(
            "Skipping host {} due to host timeout",
            silent.ipv4()
        )),
        "{stdout}"
    );
    let statuses: Vec<&str> = run
        .hosts
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.contains(&"timed-out") && statuses.contains(&"up"),
        "{statuses:?}"
    );
    let live_addr: IpAddr = live.ipv4().into();
    assert_eq!(run.ports[&(live_addr, 22)].state, "open");
    assert_eq!(
        run.ports.keys().filter(|(a, _)| *a == live_addr).count(),
        2000
    );
}

#[test]
fn scanner_namespace_has_no_route_out() {
    let lab = lab_or_skip!();
    // A probe to an address outside the lab fails locally (no route):
    // filtered with net-unreach, and nothing leaves the namespace.
    let (run, _) = scan_in_lab(&lab, &["-Pn", "-p", "80", "198.19.255.254"]);
    let p = &run.ports[&("198.19.255.254".parse().unwrap(), 80)];
    assert_eq!(
        (p.state.as_str(), p.reason.as_str()),
        ("filtered", "net-unreach")
    );
}

/// Ports whose handshake a hostile host completes and then resets at once
/// (a SYN-ACK and a RST back to back, as a SYN proxy in front of a closed
/// port or a server that accepts and aborts).
const COMPLETED_THEN_RESET: std::ops::RangeInclusive<u16> = 4000..=4399;

#[test]
fn connections_reset_after_completing_are_open_conn_reset_never_lost() {
    let lab = lab_or_skip!();
    let host = lab.host(0);
    // The kernel of the host stays out of it: the SYNs (and the scanner's
    // ACKs) are dropped after the responder has seen them.
    host.drop_tcp(COMPLETED_THEN_RESET).unwrap();
    let responder = crate::forge::Responder::start(
        host.name(),
        Duration::from_secs(60),
        |syn| COMPLETED_THEN_RESET.contains(&syn.dport),
        |syn| {
            use crate::forge::{ACK, RST, SYN};
            let isn = 0x5050_0000 ^ u32::from(syn.sport);
            vec![
                syn.answer(SYN | ACK, isn),
                syn.answer(RST | ACK, isn.wrapping_add(1)),
            ]
        },
    );
    let ports = format!(
        "{}-{}",
        COMPLETED_THEN_RESET.start(),
        COMPLETED_THEN_RESET.end()
    );
    let v4 = host.ipv4().to_string();
    let addr: IpAddr = host.ipv4().into();
    let mut reset_seen = 0;
    // One at a time, and all of them in flight at once. The connect scan's
    // own reading: the SYN proxy check (which would connect again, see
    // middlebox_lab.rs) is off.
    for parallelism in [["--max-parallelism", "1"], ["--min-parallelism", "400"]] {
        let (run, _) = scan_in_lab(
            &lab,
            &[
                "-Pn",
                "--no-proxy-check",
                "-p",
                &ports,
                parallelism[0],
                parallelism[1],
                &v4,
            ],
        );
        assert_eq!(
            run.ports.len(),
            COMPLETED_THEN_RESET.count(),
            "{parallelism:?}: ports lost"
        );
        for port in COMPLETED_THEN_RESET {
            let line = &run.ports[&(addr, port)];
            // Read before the RST came: the handshake alone (syn-ack).
            assert!(
                line.state == "open" && ["conn-reset", "syn-ack"].contains(&line.reason.as_str()),
                "{parallelism:?} port {port}: {line:?}"
            );
            reset_seen += usize::from(line.reason == "conn-reset");
        }
    }
    assert!(responder.stop() >= 2 * COMPLETED_THEN_RESET.count() as u64);
    // The RST follows the SYN-ACK at once: most outcomes are read after it.
    assert!(
        reset_seen > COMPLETED_THEN_RESET.count(),
        "only {reset_seen} of {} read as conn-reset",
        2 * COMPLETED_THEN_RESET.count()
    );
}
