//! The raw TCP scans besides SYN (`-sA -sW -sF -sN -sX -sM`) against a lab
//! host with open, closed, dropped and ICMP-rejected ports: nmap's states
//! and reasons as a Linux target yields them, over IPv4 and IPv6.

use std::net::IpAddr;

use portolan_lab::{Lab, lab_or_skip};

use crate::util::{JsonRun, assert_success, portolan_bin, read_jsonl, scratch_dir};

const OPEN: [u16; 3] = [22, 80, 443];
const DROPPED: std::ops::RangeInclusive<u16> = 1000..=1049;
const PROHIBITED: std::ops::RangeInclusive<u16> = 2000..=2009;
const PORTS: &str = "1-120,443,1000-1049,2000-2009";

/// Where a port stands on the lab host.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Open,
    Closed,
    Dropped,
    Prohibited,
}

fn kind(port: u16) -> Kind {
    if OPEN.contains(&port) {
        Kind::Open
    } else if DROPPED.contains(&port) {
        Kind::Dropped
    } else if PROHIBITED.contains(&port) {
        Kind::Prohibited
    } else {
        Kind::Closed
    }
}

fn scan(lab: &Lab, flags: &[&str]) -> (JsonRun, [IpAddr; 2]) {
    let host = lab.host(0);
    let targets: [IpAddr; 2] = [host.ipv4().into(), host.ipv6().into()];
    let json = scratch_dir().join("flags.jsonl");
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(flags)
        .args(["-T4", "--no-progress", "-p", PORTS, "-oJ"])
        .arg(&json)
        .args(targets.map(|a| a.to_string()))
        .output()
        .unwrap();
    assert_success(&out);
    (read_jsonl(&json), targets)
}

/// Checks every port of both targets against `want`.
fn check(flags: &[&str], want: impl Fn(Kind) -> (&'static str, &'static str)) {
    let flag = flags.join(" ");
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let _service = host.listen_tcp(OPEN).unwrap();
    host.drop_tcp(DROPPED).unwrap();
    host.reject_tcp_admin_prohibited(PROHIBITED).unwrap();
    let (run, targets) = scan(&lab, flags);
    let mut wrong = Vec::new();
    let mut count = 0;
    for addr in targets {
        for port in (1..=120).chain([443]).chain(DROPPED).chain(PROHIBITED) {
            count += 1;
            let expected = want(kind(port));
            match run.ports.get(&(addr, port)) {
                Some(p) if (p.state.as_str(), p.reason.as_str()) == expected => {}
                got => wrong.push(format!("{addr} {port}: want {expected:?}, got {got:?}")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{flag}: {} of {count} wrong:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(20)].join("\n")
    );
    assert_eq!(run.ports.len(), count, "{flag}: ports reported");
}

#[test]
fn ack_scan_maps_the_firewall() {
    check(&["-sA"], |k| match k {
        Kind::Open | Kind::Closed => ("unfiltered", "reset"),
        Kind::Dropped => ("filtered", "no-response"),
        Kind::Prohibited => ("filtered", "admin-prohibited"),
    });
}

#[test]
fn window_scan_reads_linux_zero_windows_as_closed() {
    check(&["-sW"], |k| match k {
        Kind::Open | Kind::Closed => ("closed", "reset"),
        Kind::Dropped => ("filtered", "no-response"),
        Kind::Prohibited => ("filtered", "admin-prohibited"),
    });
}

fn fin_like(k: Kind) -> (&'static str, &'static str) {
    match k {
        // Linux drops a segment without SYN, RST or ACK to a listener.
        Kind::Open | Kind::Dropped => ("open|filtered", "no-response"),
        Kind::Closed => ("closed", "reset"),
        Kind::Prohibited => ("filtered", "admin-prohibited"),
    }
}

#[test]
fn fin_scan() {
    check(&["-sF"], fin_like);
}

#[test]
fn null_scan() {
    check(&["-sN"], fin_like);
}

#[test]
fn xmas_scan() {
    check(&["-sX"], fin_like);
}

#[test]
fn maimon_scan_on_linux_finds_every_reachable_port_closed() {
    // FIN/ACK is answered with a RST by open ports too, except on BSD.
    check(&["-sM"], |k| match k {
        Kind::Open | Kind::Closed => ("closed", "reset"),
        Kind::Dropped => ("open|filtered", "no-response"),
        Kind::Prohibited => ("filtered", "admin-prohibited"),
    });
}

#[test]
fn scanflags_send_custom_bits_read_as_the_scan_type_says() {
    // SYN probes read as an ACK scan: a listener's SYN-ACK is no RST, so
    // open ports stay silent (filtered) while closed ones reset
    // (unfiltered); plain ACK probes would draw a RST from both.
    check(&["--scanflags", "SYN", "-sA"], |k| match k {
        Kind::Open | Kind::Dropped => ("filtered", "no-response"),
        Kind::Closed => ("unfiltered", "reset"),
        Kind::Prohibited => ("filtered", "admin-prohibited"),
    });
}

#[test]
fn scanflags_by_number_default_to_reading_as_syn() {
    // 0x29 is URG, PSH and FIN (an Xmas probe) read as a SYN scan: no
    // SYN-ACK ever comes, closed ports reset.
    check(&["--scanflags", "0x29"], |k| match k {
        Kind::Open | Kind::Dropped => ("filtered", "no-response"),
        Kind::Closed => ("closed", "reset"),
        Kind::Prohibited => ("filtered", "admin-prohibited"),
    });
}

#[test]
fn scanflags_are_named_in_the_xml_as_nmap_names_them() {
    crate::output_tools::tools_or_skip!(xmllint);
    let lab = lab_or_skip!(Lab::builder().hosts(1));
    let xml = scratch_dir().join("scanflags.xml");
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sA", "--scanflags", "0x29", "-n", "-Pn", "--no-progress"])
        .args(["-p", "80", "-oX"])
        .arg(&xml)
        .arg(lab.host(0).ipv4().to_string())
        .output()
        .unwrap();
    assert_success(&out);
    let text = std::fs::read_to_string(&xml).unwrap();
    assert!(
        text.contains("<scaninfo type=\"ack\" scanflags=\"FINPSHURG\" protocol=\"tcp\""),
        "{text}"
    );
    crate::output_tools::assert_dtd_valid(&xml);
}
