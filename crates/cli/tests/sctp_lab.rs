//! The SCTP scans (`-sY` INIT, `-sZ` COOKIE ECHO) against a lab host: a
//! user-space SCTP endpoint where the kernel has no SCTP (this project's
//! machines; see `portolan_lab::sctp`), and a host without any SCTP, which
//! answers with ICMP protocol unreachable; over IPv4 and IPv6.

use std::net::IpAddr;

use portolan_lab::{Lab, lab_or_skip};

use crate::util::{JsonRun, assert_success, portolan_bin, read_jsonl, scratch_dir};

const OPEN: [u16; 2] = [5000, 5001];
const PORTS: &str = "4998-5002";

fn scan(lab: &Lab, args: &[&str]) -> JsonRun {
    let json = scratch_dir().join("sctp.jsonl");
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(args)
        .args(["-n", "-Pn", "--no-progress", "-oJ"])
        .arg(&json)
        .output()
        .expect("run portolan");
    assert_success(&out);
    read_jsonl(&json)
}

fn check(
    run: &JsonRun,
    targets: &[IpAddr],
    want: impl Fn(IpAddr, u16) -> (&'static str, &'static str),
) {
    for &addr in targets {
        for port in 4998..=5002 {
            let got = run
                .ports
                .get(&(addr, port))
                .map(|p| (p.state.as_str(), p.reason.as_str()));
            assert_eq!(got, Some(want(addr, port)), "{addr} port {port}");
        }
    }
}

#[test]
fn init_and_cookie_echo_scans_read_the_endpoint() {
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let _endpoint = host.respond_sctp(OPEN).unwrap();
    let targets: [IpAddr; 2] = [host.ipv4().into(), host.ipv6().into()];
    let (v4, v6) = (targets[0].to_string(), targets[1].to_string());
    let init = scan(&lab, &["-sY", "-p", PORTS, &v4, &v6]);
    check(&init, &targets, |_, p| {
        if OPEN.contains(&p) {
            ("open", "init-ack")
        } else {
            ("closed", "abort")
        }
    });
    assert_eq!(init.begin.unwrap()["scan_type"], "sctpinit");
    let cookie = scan(&lab, &["-sZ", "-p", PORTS, &v4, &v6]);
    check(&cookie, &targets, |_, p| {
        if OPEN.contains(&p) {
            ("open|filtered", "no-response")
        } else {
            ("closed", "abort")
        }
    });
}

#[test]
fn a_host_without_sctp_is_filtered_with_protocol_unreachable() {
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let targets: [IpAddr; 2] = [host.ipv4().into(), host.ipv6().into()];
    let run = scan(
        &lab,
        &[
            "-sY",
            "-p",
            PORTS,
            &targets[0].to_string(),
            &targets[1].to_string(),
        ],
    );
    // IPv6 says it with a parameter problem (unrecognized Next Header).
    check(&run, &targets, |addr, _| {
        if addr.is_ipv6() {
            ("filtered", "param-problem")
        } else {
            ("filtered", "proto-unreach")
        }
    });
}
