//! The idle scan (`-sI zombie[:port]`) on a bridged lab segment: the
//! scanner, a zombie (a user-space responder with a global incremental IP
//! ID, `Namespace::respond_zombie`) and a target with open, closed and
//! dropped ports. The target's firewall counts every packet from the
//! scanner's own address: with `-Pn` there must be none.

use std::net::IpAddr;
use std::process::Output;

use portolan_lab::{Host, Lab, ZombieIpId, ZombieResponder};

use crate::util::{assert_success, portolan_bin, read_jsonl, scratch_dir};

/// The target's open ports; 25 and 53 are dropped, the rest closed.
const OPEN: [u16; 3] = [22, 80, 8080];
const DROPPED: [u16; 2] = [25, 53];
const PORTS: &str = "20-90,443,8080";

fn scanned_ports() -> Vec<u16> {
    let mut ports: Vec<u16> = (20..=90).collect();
    ports.extend([443, 8080]);
    ports
}

/// A segment of two hosts: the zombie (`.2`, answering as `mode`) and the
/// target (`.3`), whose firewall counts packets from the scanner and TCP
/// SYNs from anyone.
fn idle_lab(mode: ZombieIpId) -> Option<(Lab, ZombieResponder)> {
    let lab = portolan_lab::require_lab(Lab::builder().segment(2))?;
    let segment = lab.segment(0);
    let (zombie, target) = (segment.host(0), segment.host(1));
    let responder = zombie.respond_zombie(zombie.ipv4(), mode).unwrap();
    target
        .nft(&format!(
            "table inet watch {{\n chain input {{\n type filter hook input priority -20;\n \
         ip saddr {} counter name from_scanner\n \
         tcp flags & (syn | ack) == syn counter name syns\n }}\n \
         counter from_scanner {{}}\n counter syns {{}}\n}}\n",
            segment.scanner_ipv4()
        ))
        .unwrap();
    Some((lab, responder))
}

/// Packets counted by the target's counter `name`.
fn counted(target: &Host, name: &str) -> u64 {
    let text = target
        .exec("nft", &["list", "counter", "inet", "watch", name], None)
        .unwrap();
    let at = text.find("packets ").expect("a packets field") + "packets ".len();
    text[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn run(lab: &Lab, args: &[&str]) -> Output {
    lab.scanner()
        .command(portolan_bin())
        .args(["-n", "--no-progress"])
        .args(args)
        .output()
        .expect("run portolan")
}

/// Scans the target through the zombie and checks every port's state and
/// reason, the outputs, and that the target heard nothing from us.
fn scan_exactly(mode: ZombieIpId) {
    let Some((lab, responder)) = idle_lab(mode) else {
        return;
    };
    let segment = lab.segment(0);
    let (zombie, target) = (segment.host(0), segment.host(1));
    let _open = target.listen_tcp(OPEN).unwrap();
    for port in DROPPED {
        target.drop_tcp(port).unwrap();
    }
    let bursts_before = responder.bursts();
    let dir = scratch_dir();
    let (json, xml, normal) = (
        dir.join("idle.jsonl"),
        dir.join("idle.xml"),
        dir.join("idle.nmap"),
    );
    let zombie_arg = format!("{}:443", zombie.ipv4());
    let out = run(
        &lab,
        &[
            "-sI",
            &zombie_arg,
            "-Pn",
            "-p",
            PORTS,
            "--reason",
            "-oJ",
            json.to_str().unwrap(),
            "-oX",
            xml.to_str().unwrap(),
            "-oN",
            normal.to_str().unwrap(),
            &target.ipv4().to_string(),
        ],
    );
    assert_success(&out);
    // -oN has the zombie's line right under its first, as nmap's.
    let stdout = std::fs::read_to_string(&normal).unwrap();
    let second = stdout.lines().nth(1).unwrap_or_default();
    assert_eq!(
        second,
        format!(
            "Idle scan using zombie {z} ({z}:443); Class: Incremental",
            z = zombie.ipv4()
        ),
        "{stdout}"
    );
    let run = read_jsonl(&json);
    let addr = IpAddr::from(target.ipv4());
    for port in scanned_ports() {
        let line = &run.ports[&(addr, port)];
        if OPEN.contains(&port) {
            assert_eq!(
                (line.state.as_str(), line.reason.as_str()),
                ("open", "ipid-change"),
                "port {port}"
            );
        } else {
            assert_eq!(
                (line.state.as_str(), line.reason.as_str()),
                ("closed|filtered", "no-ipid-change"),
                "port {port}"
            );
        }
    }
    assert_eq!(run.ports.len(), scanned_ports().len());
    assert_eq!(run.begin.as_ref().unwrap()["scan_type"], "idle");
    let summary = run.summary.unwrap();
    assert!(summary["packets"]["sent"].as_u64().unwrap() > scanned_ports().len() as u64);
    if crate::output_tools::xmllint() {
        crate::output_tools::assert_dtd_valid(&xml);
    }
    let xml = std::fs::read_to_string(&xml).unwrap();
    // As nmap's: no scaninfo (nmap.dtd has no "idle" scan type).
    assert!(!xml.contains("<scaninfo"), "{xml}");
    assert!(xml.contains(r#"reason="ipid-change""#), "{xml}");
    assert!(stdout.contains("8080/tcp open"), "{stdout}");
    // The point of an idle scan: every SYN the target saw came from the
    // zombie's address, none from ours.
    assert_eq!(counted(target, "from_scanner"), 0);
    assert!(counted(target, "syns") >= scanned_ports().len() as u64);
    // The zombie answered the target's SYN-ACKs and our probes; a busy
    // one also talked to others while we read its counter.
    assert!(responder.answered() > OPEN.len() as u64);
    if mode == ZombieIpId::Busy {
        assert!(responder.bursts() > bursts_before, "no traffic of its own");
    }
}

#[test]
fn an_idle_scan_finds_exactly_the_open_ports_and_sends_the_target_nothing_of_ours() {
    scan_exactly(ZombieIpId::Incremental);
}

#[test]
fn a_busy_zombie_still_gives_exact_results() {
    scan_exactly(ZombieIpId::Busy);
}

/// An unusable zombie: one error line, exit 1, and no SYN to the target.
fn refused(lab: &Lab, zombie: &Host, says: &str) {
    let target = lab.segment(0).host(1);
    let out = run(
        lab,
        &[
            "-sI",
            &zombie.ipv4().to_string(),
            "-Pn",
            "-p",
            "22,80",
            &target.ipv4().to_string(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot be used"), "{stderr}");
    assert!(stderr.contains(says), "{stderr}");
    assert_eq!(counted(target, "syns"), 0);
    assert_eq!(counted(target, "from_scanner"), 0);
}

#[test]
fn a_zombie_with_random_ip_ids_is_refused_before_any_spoofed_packet() {
    let Some((lab, _responder)) = idle_lab(ZombieIpId::Random) else {
        return;
    };
    refused(
        &lab,
        lab.segment(0).host(0),
        "IP ID sequence class is Random",
    );
}

#[test]
fn a_linux_host_is_no_zombie() {
    // Linux answers an unsolicited SYN-ACK with a RST whose IP ID is 0.
    let Some(lab) = portolan_lab::require_lab(Lab::builder().segment(2)) else {
        return;
    };
    let target = lab.segment(0).host(1);
    target
        .nft(&format!(
            "table inet watch {{\n chain input {{\n type filter hook input priority -20;\n \
             ip saddr {} counter name from_scanner\n \
             tcp flags & (syn | ack) == syn counter name syns\n }}\n \
             counter from_scanner {{}}\n counter syns {{}}\n}}\n",
            lab.segment(0).scanner_ipv4()
        ))
        .unwrap();
    refused(&lab, lab.segment(0).host(0), "");
}

#[test]
fn without_pn_the_target_is_found_by_arp_then_scanned_through_the_zombie() {
    let Some((lab, _responder)) = idle_lab(ZombieIpId::Incremental) else {
        return;
    };
    let segment = lab.segment(0);
    let (zombie, target) = (segment.host(0), segment.host(1));
    let _open = target.listen_tcp([22]).unwrap();
    let json = scratch_dir().join("idle.jsonl");
    let out = run(
        &lab,
        &[
            "-sI",
            &zombie.ipv4().to_string(),
            "-p",
            "20-25",
            "-oJ",
            json.to_str().unwrap(),
            &target.ipv4().to_string(),
        ],
    );
    assert_success(&out);
    let run = read_jsonl(&json);
    assert_eq!(run.hosts[0]["reason"], "arp-response", "{:?}", run.hosts);
    let open: Vec<u16> = run
        .ports
        .iter()
        .filter(|(_, l)| l.state == "open")
        .map(|((_, port), _)| *port)
        .collect();
    assert_eq!(open, [22]);
    assert_eq!(run.ports.len(), 6);
    // On a segment, discovery asks by ARP: still no IP packet of ours.
    assert_eq!(counted(target, "from_scanner"), 0);
}

#[test]
fn a_silent_zombie_is_named_in_one_line() {
    let Some((lab, _responder)) = idle_lab(ZombieIpId::Incremental) else {
        return;
    };
    let segment = lab.segment(0);
    // Nobody has .9.
    let nobody = segment.subnet().ipv4(9).to_string();
    let out = run(
        &lab,
        &[
            "-sI",
            &nobody,
            "-Pn",
            "--max-retries",
            "1",
            "--initial-rtt-timeout",
            "100ms",
            "-p",
            "22",
            &segment.host(1).ipv4().to_string(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("does not answer on port 80"), "{stderr}");
    assert_eq!(counted(segment.host(1), "syns"), 0);
}

#[test]
fn spoofed_packets_dropped_on_the_way_make_the_zombie_unusable() {
    let Some((lab, _responder)) = idle_lab(ZombieIpId::Incremental) else {
        return;
    };
    let segment = lab.segment(0);
    let (zombie, target) = (segment.host(0), segment.host(1));
    // The switch drops what comes from the scanner's port with another
    // source address than the scanner's (ingress filtering).
    segment
        .switch()
        .nft(&format!(
            "table bridge ingress {{\n chain forward {{\n type filter hook forward priority 0;\n \
             iifname \"uplink\" ip saddr != {} drop\n }}\n}}\n",
            segment.scanner_ipv4()
        ))
        .unwrap();
    refused(&lab, zombie, "spoofed");
    let _ = target;
}

#[test]
fn ipv6_is_refused_in_one_line() {
    for args in [
        &["-sI", "198.18.0.2", "fd00::3"][..],
        &["-sI", "198.18.0.2", "-6", "fd00::3"][..],
        &["-sI", "fd00::2", "198.18.0.3"][..],
    ] {
        let out = crate::util::portolan(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("IPv4 only"), "{stderr}");
    }
}

/// nmap as the reference subject: it reads the lab's zombie as Portolan
/// does (same class line) and finds the same open ports, and Portolan's
/// normal output lists the same ports with the same states.
#[test]
fn nmap_reads_the_lab_zombie_the_same_way() {
    crate::output_tools::tools_or_skip!(nmap);
    let Some((lab, _responder)) = idle_lab(ZombieIpId::Incremental) else {
        return;
    };
    let segment = lab.segment(0);
    let (zombie, target) = (segment.host(0), segment.host(1));
    let _open = target.listen_tcp([22, 80, 443, 999]).unwrap();
    target.drop_tcp(25).unwrap();
    let args = [
        "-sI".to_string(),
        zombie.ipv4().to_string(),
        "-Pn".into(),
        "-n".into(),
        "-p".into(),
        "1-1000".into(),
        target.ipv4().to_string(),
    ];
    let ours = assert_success(&run(
        &lab,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let theirs = lab
        .scanner()
        .command("nmap")
        .args(&args)
        .output()
        .expect("run nmap");
    let theirs = assert_success(&theirs);
    // The lines both print alike: the zombie's, the summary of the
    // closed|filtered ports, and the open ports (but 999's name, which
    // comes from each tool's own table).
    let alike = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| {
                if l.starts_with("Idle scan using zombie") || l.starts_with("Not shown:") {
                    Some(l.to_string())
                } else if l.contains("/tcp ") {
                    Some(l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
                } else {
                    None
                }
            })
            .collect()
    };
    assert_eq!(
        alike(&ours),
        alike(&theirs),
        "Portolan:\n{ours}\nnmap:\n{theirs}"
    );
    assert!(ours.contains(&format!(
        "Idle scan using zombie {z} ({z}:80); Class: Incremental",
        z = zombie.ipv4()
    )));
    assert!(
        theirs.contains("Not shown: 996 closed|filtered tcp ports (no-ipid-change)"),
        "{theirs}"
    );
    assert!(
        ours.contains("Not shown: 996 closed|filtered tcp ports (no-ipid-change)"),
        "{ours}"
    );
}

/// Ctrl-C part way through a host: the ports settled so far are written,
/// each right, and the host is reported as interrupted (exit 130).
#[test]
fn an_interrupted_idle_scan_writes_the_ports_it_settled() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let Some((lab, _zombie)) = idle_lab(ZombieIpId::Incremental) else {
        return;
    };
    let segment = lab.segment(0);
    let (zombie, target) = (segment.host(0), segment.host(1));
    let _open = target.listen_tcp(OPEN).unwrap();
    let dir = scratch_dir();
    let (json, normal) = (dir.join("cut.jsonl"), dir.join("cut.nmap"));
    // In order, slowed down: 20000 ports would take minutes.
    let mut child = lab
        .scanner()
        .command(portolan_bin())
        .args(["-n", "--no-progress", "-Pn", "-r", "--max-rate", "500"])
        .args(["-sI", &zombie.ipv4().to_string(), "-p", "1-20000", "-oJ"])
        .arg(&json)
        .arg("-oN")
        .arg(&normal)
        .arg(target.ipv4().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The zombie is checked and the port scan under way; then let it
    // settle some groups.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&normal).is_ok_and(|t| t.contains("Idle scan using zombie")) {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("the idle scan never started");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let waited = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if waited.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("portolan did not stop after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    let run = read_jsonl(&json);
    assert_eq!(run.hosts.len(), 1);
    assert_eq!(run.hosts[0]["status"], "interrupted");
    let addr: IpAddr = target.ipv4().into();
    let settled: Vec<u16> = run.ports.keys().map(|&(_, port)| port).collect();
    assert!(
        !settled.is_empty() && settled.len() < 20000,
        "{} ports settled",
        settled.len()
    );
    // In order: the settled ports are the first ones, each right.
    assert_eq!(settled, (1..=settled.len() as u16).collect::<Vec<_>>());
    for port in settled {
        let want = if OPEN.contains(&port) {
            "open"
        } else {
            "closed|filtered"
        };
        assert_eq!(run.ports[&(addr, port)].state, want, "port {port}");
    }
}
