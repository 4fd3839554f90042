//! The SYN scan (`-sS`) against lab hosts: exact per-port outcomes with
//! nmap's reasons and the answers' TTLs over IPv4 and IPv6, forged answers
//! ignored, and the privilege checks and fallback.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use portolan_lab::{Lab, lab_or_skip};

use crate::util::{JsonRun, assert_success, portolan_bin, read_jsonl, scratch_dir};

const OPEN: [u16; 5] = [22, 80, 443, 8080, 31337];
const DROPPED: std::ops::RangeInclusive<u16> = 1000..=1199;
const RESET: std::ops::RangeInclusive<u16> = 2000..=2049;
const PROHIBITED: std::ops::RangeInclusive<u16> = 3000..=3019;

fn truth(port: u16) -> (&'static str, &'static str) {
    if OPEN.contains(&port) {
        ("open", "syn-ack")
    } else if DROPPED.contains(&port) {
        ("filtered", "no-response")
    } else if PROHIBITED.contains(&port) {
        ("filtered", "admin-prohibited")
    } else {
        ("closed", "reset")
    }
}

fn syn_scan(lab: &Lab, args: &[&str]) -> JsonRun {
    let json = scratch_dir().join("syn.jsonl");
    let out = lab
        .scanner()
        .command(portolan_bin())
        .arg("-sS")
        .args(args)
        .arg("-oJ")
        .arg(&json)
        .arg("--no-progress")
        .output()
        .expect("run portolan");
    assert_success(&out);
    read_jsonl(&json)
}

#[test]
fn syn_exact_outcomes_over_ipv4_and_ipv6() {
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let _service = host.listen_tcp(OPEN).unwrap();
    host.drop_tcp(DROPPED).unwrap();
    host.reject_tcp_reset(RESET).unwrap();
    host.reject_tcp_admin_prohibited(PROHIBITED).unwrap();
    let (v4, v6): (IpAddr, IpAddr) = (host.ipv4().into(), host.ipv6().into());
    let run = syn_scan(
        &lab,
        &[
            "-T4",
            "-p",
            "1-3100,8080,31337",
            &v4.to_string(),
            &v6.to_string(),
        ],
    );
    let mut wrong = Vec::new();
    for addr in [v4, v6] {
        for port in (1..=3100).chain([8080, 31337]) {
            let want = truth(port);
            match run.ports.get(&(addr, port)) {
                Some(p) if (p.state.as_str(), p.reason.as_str()) == want => {}
                got => wrong.push(format!("{addr} {port}: want {want:?}, got {got:?}")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}\nsummary: {}",
        wrong.len(),
        wrong[..wrong.len().min(20)].join("\n"),
        run.summary
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_default()
    );
    assert_eq!(run.ports.len(), 2 * 3102);
    let begin = run.begin.unwrap();
    assert_eq!(begin["scan_type"], "syn");
    let summary = run.summary.unwrap();
    assert!(summary["packets"]["sent"].as_u64().unwrap() >= 2 * 3102);
}

#[test]
fn syn_reports_answer_ttls() {
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = host.listen_tcp([22]).unwrap();
    host.sysctl("net.ipv4.ip_default_ttl", "77").unwrap();
    let json = scratch_dir().join("ttl.jsonl");
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sS", "-p", "22,23", "--reason", "--no-progress", "-oJ"])
        .arg(&json)
        .arg(host.ipv4().to_string())
        .output()
        .unwrap();
    let stdout = assert_success(&out);
    let text = std::fs::read_to_string(&json).unwrap();
    let port22 = text
        .lines()
        .find(|l| l.contains("\"port\":22,"))
        .expect("port 22 line");
    assert!(port22.contains("\"reason_ttl\":77"), "{port22}");
    assert!(stdout.contains("syn-ack ttl 77"), "{stdout}");
}

#[test]
fn syn_scan_of_loopback() {
    let lab = lab_or_skip!();
    // Loopback of the scanner namespace itself.
    let listener = lab
        .scanner()
        .run(|| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 8081)).unwrap())
        .unwrap();
    let run = syn_scan(&lab, &["-p", "8081,8082", "127.0.0.1"]);
    let lo: IpAddr = Ipv4Addr::LOCALHOST.into();
    assert_eq!(run.ports[&(lo, 8081)].state, "open");
    assert_eq!(run.ports[&(lo, 8082)].state, "closed");
    assert_eq!(run.ports[&(lo, 8082)].reason, "reset");
    drop(listener);
}

/// An IPv4 SYN-ACK from `src:sport` to `dst:dport` acknowledging `ack`.
fn forged_syn_ack(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, ack: u32) -> Vec<u8> {
    use crate::forge::{ACK, SYN, Segment};
    Segment {
        src,
        dst,
        sport,
        dport,
        seq: 0x1234_5678,
        ack,
        flags: SYN | ACK,
    }
    .bytes()
}

#[test]
fn forged_answers_are_ignored() {
    let lab = lab_or_skip!();
    let host = lab.host(0);
    host.drop_tcp(1..=65535).unwrap();
    let (target, scanner) = (host.ipv4(), host.scanner_ipv4());
    let stop = Arc::new(AtomicBool::new(false));
    let forger = {
        let stop = Arc::clone(&stop);
        let ns = host.name().to_string();
        std::thread::spawn(move || {
            portolan_lab::in_namespace(&ns, move || {
                let s = socket2::Socket::new(
                    socket2::Domain::IPV4,
                    socket2::Type::RAW,
                    Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
                )
                .unwrap();
                let dst: std::net::SocketAddr = (scanner, 0).into();
                let mut sent = 0u32;
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    for port in [1000u16, 1001, 1002] {
                        let p = forged_syn_ack(
                            target,
                            scanner,
                            port,
                            45678,
                            sent.wrapping_mul(2654435761),
                        );
                        let _ = s.send_to(&p, &dst.into());
                        sent += 1;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                sent
            })
            .unwrap()
        })
    };
    let run = syn_scan(
        &lab,
        &["-T4", "-g", "45678", "-p", "1000-1002", &target.to_string()],
    );
    stop.store(true, Ordering::Relaxed);
    let forged = forger.join().unwrap();
    assert!(forged > 0);
    let addr: IpAddr = target.into();
    for port in 1000..=1002 {
        assert_eq!(run.ports[&(addr, port)].state, "filtered", "port {port}");
    }
    let ignored = run.summary.unwrap()["packets"]["ignored"].as_u64().unwrap();
    assert!(ignored >= 1, "forged SYN-ACKs must be counted as ignored");
}

#[test]
fn syn_needs_privileges_and_connect_is_the_fallback() {
    let _lab = lab_or_skip!();
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let as_nobody = |args: &[&str]| {
        crate::util::as_nobody(Command::new("setpriv"))
            .args(args)
            .output()
            .expect("setpriv")
    };
    let out = as_nobody(&["-sS", "-p", &port, "127.0.0.1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("raw sockets are not permitted"), "{stderr}");
    assert!(
        stderr.contains("setcap cap_net_raw,cap_net_admin+eip"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let out = as_nobody(&["-p", &port, "-oJ", "-", "127.0.0.1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("\"scan_type\":\"connect\""), "{text}");
    assert!(text.contains("\"state\":\"open\""), "{text}");
}

/// Scans a host that loses `percent`% of packets in each direction and
/// checks every port's state.
fn exact_under_loss(percent: u8, extra: &[&str]) {
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let _service = host.listen_tcp(OPEN).unwrap();
    host.drop_tcp(DROPPED).unwrap();
    host.random_loss(percent).unwrap();
    let v4 = host.ipv4().to_string();
    let mut args = vec!["-p", "1-1300,8080,31337"];
    args.extend_from_slice(extra);
    args.push(&v4);
    let run = syn_scan(&lab, &args);
    assert_standard_states(&run, host.ipv4().into(), &format!("{percent}% loss"));
}

#[test]
fn syn_exact_under_ten_percent_loss() {
    exact_under_loss(10, &[]);
}

#[test]
fn syn_exact_under_thirty_percent_loss() {
    // About half of all tries are lost (0.7 x 0.7 answered): the retry
    // count follows the measured loss, up to --max-retries.
    exact_under_loss(30, &["--max-retries", "20"]);
}

#[test]
fn syn_scan_drops_its_capabilities_once_sockets_are_open() {
    let lab = lab_or_skip!();
    let host = lab.host(0);
    host.drop_tcp(1..=65535).unwrap();
    let mut child = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sS", "-p", "1-200", "--no-progress", "-oN", "/dev/null"])
        .arg(host.ipv4().to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The silent host keeps the scan running for seconds; read its
    // capabilities meanwhile.
    let status_path = format!("/proc/{}/status", child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut cap_eff = String::new();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        let status = std::fs::read_to_string(&status_path).unwrap_or_default();
        cap_eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .unwrap_or("")
            .trim()
            .to_string();
        if cap_eff == "0000000000000000" {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(cap_eff, "0000000000000000", "capabilities still held");
}

/// Checks every port of the standard ranges (1-1300 plus the open ports).
fn assert_standard_states(run: &JsonRun, addr: IpAddr, what: &str) {
    let mut wrong = Vec::new();
    for port in (1..=1300).chain([8080, 31337]) {
        let (state, _) = truth(port);
        match run.ports.get(&(addr, port)) {
            Some(p) if p.state == state => {}
            got => wrong.push(format!("{port}: want {state}, got {got:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{what}: {} wrong: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
}

#[test]
fn syn_exact_behind_a_bottleneck() {
    // 2 Mbit/s with a small queue: bursts of answers are dropped, and the
    // loss grows with the sending rate, as on a congested link.
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = host.listen_tcp(OPEN).unwrap();
    host.drop_tcp(DROPPED).unwrap();
    host.tbf(
        host.interface(),
        &portolan_lab::Tbf {
            rate_bits_per_sec: 2_000_000,
            burst_bytes: 4_000,
            latency: Duration::from_millis(5),
        },
    )
    .unwrap();
    let v4 = host.ipv4().to_string();
    let run = syn_scan(&lab, &["-p", "1-1300,8080,31337", &v4]);
    assert_standard_states(&run, host.ipv4().into(), "bottleneck");
    // The bottleneck did drop answers (else this test proves nothing).
    let stats = host
        .exec(
            "tc",
            &["-s", "qdisc", "show", "dev", host.interface()],
            None,
        )
        .unwrap();
    let dropped: u64 = stats
        .split("dropped ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(dropped > 0, "no packet dropped at the bottleneck: {stats}");
}

#[test]
fn syn_exact_when_the_target_rate_limits_its_resets() {
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = host.listen_tcp(OPEN).unwrap();
    host.drop_tcp(DROPPED).unwrap();
    // At most 2000 RSTs a second (burst 50) leave the target; the rest
    // are dropped, as some stacks and firewalls do.
    host.nft(&format!(
        "add chain inet {t} rstlimit {{ type filter hook output priority 0; policy accept; }}\n\
         add rule inet {t} rstlimit tcp flags rst limit rate 2000/second burst 50 packets accept\n\
         add rule inet {t} rstlimit tcp flags rst counter drop\n",
        t = portolan_lab::TABLE
    ))
    .unwrap();
    let v4 = host.ipv4().to_string();
    let run = syn_scan(&lab, &["-p", "1-1300,8080,31337", &v4]);
    assert_standard_states(&run, host.ipv4().into(), "rate-limited resets");
    let rules = host.nft_ruleset().unwrap();
    let limited: u64 = rules
        .split("counter packets ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(limited > 0, "no RST was held back: {rules}");
}

/// Counts the scanner namespace's outgoing SYNs (without ACK) in netfilter's
/// output hook, which the kernel's IP path passes and frames do not.
fn count_outgoing_syns(lab: &Lab) {
    lab.scanner()
        .nft(
            "table inet portolan_count {\n\
             counter syns {}\n\
             chain out {\n type filter hook output priority 0;\n\
             tcp flags & (syn | ack) == syn counter name syns\n }\n}\n",
        )
        .unwrap();
}

fn outgoing_syns(lab: &Lab) -> u64 {
    let listing = lab
        .scanner()
        .exec(
            "nft",
            &["list", "counter", "inet", "portolan_count", "syns"],
            None,
        )
        .unwrap();
    let count = listing
        .split("packets ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    count.unwrap_or_else(|| panic!("no packet count in: {listing}"))
}

#[test]
fn syn_probes_leave_as_frames_unless_told_to_send_ip() {
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = host.listen_tcp(OPEN).unwrap();
    count_outgoing_syns(&lab);
    let target = host.ipv4().to_string();
    let v6 = host.ipv6().to_string();
    let ports = "1-999,8080,31337";
    let framed = syn_scan(&lab, &["-p", ports, &target, &v6]);
    let through_ip = outgoing_syns(&lab);
    // Frames skip netfilter: at most the first probes of each family,
    // sent through the IP path while the kernel resolved the next hop.
    assert!(
        through_ip < 100,
        "{through_ip} of 2002 probes took the IP path: {:?}",
        framed.summary
    );
    let ip = syn_scan(&lab, &["--send-ip", "-p", ports, &target, &v6]);
    assert!(outgoing_syns(&lab) - through_ip >= 2 * 1001);
    for run in [&framed, &ip] {
        assert_eq!(run.ports.len(), 2 * 1001);
        for ((_, port), line) in &run.ports {
            let want = if OPEN.contains(port) {
                "open"
            } else {
                "closed"
            };
            assert_eq!(line.state, want, "port {port}");
        }
    }
}

#[test]
fn syn_through_a_gateway_to_a_routed_range() {
    // The lab's ranges behind the lab host as a gateway: frames carry the
    // gateway's link-layer address, and every address answers.
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = host.listen_tcp([80]).unwrap();
    // The prefixes hold the link's own subnet, which must stay on the link.
    lab.route_range_to(host, "198.18.0.0/15").unwrap();
    lab.route_range_to(host, "fd00::/8").unwrap();
    count_outgoing_syns(&lab);
    // A /28 away from the link's own /24.
    let third = if host.ipv4().octets()[2] == 77 {
        78
    } else {
        77
    };
    let v4 = format!("198.19.{third}.0/28");
    let run = syn_scan(&lab, &["-Pn", "-p", "80,81", &v4, "fd00:99::100/124"]);
    assert_eq!(run.ports.len(), 2 * 16 * 2);
    for ((addr, port), line) in &run.ports {
        let want = if *port == 80 { "open" } else { "closed" };
        assert_eq!(line.state, want, "{addr} port {port}");
    }
    assert!(outgoing_syns(&lab) < 20);
}

#[test]
fn syn_on_a_named_interface() {
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = host.listen_tcp([22]).unwrap();
    let run = syn_scan(
        &lab,
        &[
            "-e",
            host.scanner_interface(),
            "-p",
            "22,23",
            &host.ipv4().to_string(),
        ],
    );
    assert_eq!(run.ports[&(host.ipv4().into(), 22)].state, "open");
    assert_eq!(run.ports[&(host.ipv4().into(), 23)].state, "closed");
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sS", "-e", "nosuch0", "-p", "22", "--no-progress"])
        .arg(host.ipv4().to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interface nosuch0"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn syn_status_line_on_sigusr1_with_packet_counters() {
    // A scan slowed by --max-rate; SIGUSR1 asks for a status line, which
    // carries the packet counters; SIGINT then ends the scan early.
    let lab = lab_or_skip!();
    let host = lab.host(0);
    host.drop_tcp(1..=3000).unwrap();
    let child = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sS", "-p", "1-3000", "--max-rate", "300", "--no-progress"])
        .arg(host.ipv4().to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `ip netns exec` runs the scanner in its own process (no fork), so
    // the child's pid is the scanner's.
    let pid = child.id() as libc::pid_t;
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: signals to our own child.
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(pid, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let status = stderr
        .lines()
        .find(|l| l.starts_with("Stats: "))
        .unwrap_or_else(|| panic!("no status line in: {stderr}"));
    assert!(status.contains("of 3000 ports done"), "{status}");
    let sent: u64 = status
        .split("packets: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet counters in: {status}"));
    assert!(sent > 0, "{status}");
}

#[test]
fn decoys_send_a_copy_of_every_probe_from_each_decoy() {
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = host.listen_tcp([22]).unwrap();
    // Two unused addresses of the link's own subnet as decoys.
    let [a, b, c, _] = host.ipv4().octets();
    let decoys = [
        Ipv4Addr::new(a, b, c, 77).to_string(),
        Ipv4Addr::new(a, b, c, 78).to_string(),
    ];
    let mut counters = String::from("table inet decoy_count {\n");
    for i in 0..decoys.len() {
        counters.push_str(&format!("counter from{i} {{}}\n"));
    }
    counters.push_str("chain input {\n type filter hook input priority -10;\n");
    for (i, d) in decoys.iter().enumerate() {
        counters.push_str(&format!(
            "ip saddr {d} tcp flags & (syn | ack) == syn counter name from{i}\n"
        ));
    }
    counters.push_str(" }\n}\n");
    host.nft(&counters).unwrap();
    let list = format!("{},ME,{}", decoys[0], decoys[1]);
    let run = syn_scan(
        &lab,
        &["-D", &list, "-p", "20-29", &host.ipv4().to_string()],
    );
    let target: IpAddr = host.ipv4().into();
    for port in 20..=29 {
        let want = if port == 22 { "open" } else { "closed" };
        assert_eq!(run.ports[&(target, port)].state, want, "port {port}");
    }
    for (i, decoy) in decoys.iter().enumerate() {
        let listing = host
            .exec(
                "nft",
                &[
                    "list",
                    "counter",
                    "inet",
                    "decoy_count",
                    &format!("from{i}"),
                ],
                None,
            )
            .unwrap();
        let seen: u64 = listing
            .split("packets ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {listing}"));
        assert!(seen >= 10, "decoy {decoy}: {seen} SYNs seen");
    }
}

#[test]
fn a_host_that_drops_every_probe_gets_nmaps_two_tries_per_port() {
    // A host that never answers gets nmap's one retransmission per port
    // (nmap's allowedTryno is at least 1), not all of -T4's six; the
    // kernel queues the first probes while it resolves the neighbour, so
    // none is lost to the path warming up. --max-retries 0 holds.
    let lab = lab_or_skip!(Lab::builder().hosts(1));
    let host = lab.host(0);
    host.drop_tcp(1..=200).unwrap();
    let addr = host.ipv4().to_string();
    for (retries, tries) in [(None, 2), (Some("0"), 1)] {
        let mut args = vec!["-Pn", "-n", "-T4", "-p", "1-200", &addr];
        if let Some(n) = retries {
            args.extend(["--max-retries", n]);
        }
        let run = syn_scan(&lab, &args);
        let filtered = run
            .ports
            .values()
            .filter(|p| p.state == "filtered" && p.reason == "no-response")
            .count();
        assert_eq!(filtered, 200, "every port filtered (no-response)");
        let probes = run.summary.as_ref().expect("a summary line")["probes_sent"]
            .as_u64()
            .unwrap();
        assert_eq!(probes, 200 * tries, "probes sent with {retries:?} retries");
    }
}
