//! Host discovery (`-sn`, `-PE -PP -PS -PA`, the default probes, `-Pn`)
//! against lab hosts that answer only some probes, on a bridged segment,
//! over IPv6, and on a routed range where only a scattered few addresses
//! exist.

use std::collections::BTreeMap;
use std::net::IpAddr;

use portolan_lab::{Host, Lab, lab_or_skip};
use serde_json::Value;

use crate::util::{JsonRun, as_nobody, assert_success, portolan_bin, read_jsonl, scratch_dir};

fn run(lab: &Lab, args: &[&str]) -> JsonRun {
    let json = scratch_dir().join("discovery.jsonl");
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(args)
        .args(["-n", "--no-progress", "-v", "-oJ"])
        .arg(&json)
        .output()
        .expect("run portolan");
    assert_success(&out);
    read_jsonl(&json)
}

/// Each host's (status, reason) by address.
fn statuses(run: &JsonRun) -> BTreeMap<IpAddr, (String, String)> {
    run.hosts
        .iter()
        .map(|h: &Value| {
            (
                h["addr"].as_str().unwrap().parse().unwrap(),
                (
                    h["status"].as_str().unwrap().to_string(),
                    h["reason"].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

/// Drops ICMP echo and timestamp requests (both families); ICMP errors and
/// Neighbor Discovery still pass.
fn drop_icmp(host: &Host) {
    host.nft(
        "table inet no_pings {\n chain input {\n type filter hook input priority -5;\n \
         icmp type { echo-request, timestamp-request } drop\n \
         icmpv6 type echo-request drop\n }\n}\n",
    )
    .unwrap();
}

fn drop_everything_but_neighbours(host: &Host) {
    host.nft(
        "table inet silent {\n chain input {\n type filter hook input priority -5;\n \
         icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n drop\n }\n}\n",
    )
    .unwrap();
}

/// A segment of three hosts: one ordinary, one that drops ICMP echo and
/// timestamp requests, one whose firewall drops all IP (but Neighbor
/// Discovery, without which IPv6 could not work at all).
fn segment_lab() -> Option<Lab> {
    let lab = portolan_lab::require_lab(Lab::builder().segment(3))?;
    let hosts = lab.segment(0).hosts();
    drop_icmp(&hosts[1]);
    drop_everything_but_neighbours(&hosts[2]);
    Some(lab)
}

#[test]
fn on_a_segment_arp_finds_exactly_the_attached_hosts_firewalled_or_not() {
    let Some(lab) = segment_lab() else { return };
    let hosts = lab.segment(0).hosts();
    let subnet = hosts[0].subnet();
    let run = run(&lab, &["-sn", &format!("{}/29", subnet.ipv4(0))]);
    let got = statuses(&run);
    let up: Vec<IpAddr> = got
        .iter()
        .filter(|(_, s)| s.0 == "up")
        .map(|(a, _)| *a)
        .collect();
    // .1 is the scanner itself; .2-.4 the hosts; .0 and .5-.7 nothing.
    let mut want: Vec<IpAddr> = vec![subnet.ipv4(1).into()];
    want.extend(hosts.iter().map(|h| IpAddr::from(h.ipv4())));
    assert_eq!(up, want, "{got:?}");
    for (i, h) in hosts.iter().enumerate() {
        let line = run
            .hosts
            .iter()
            .find(|l| l["addr"] == h.ipv4().to_string())
            .unwrap();
        assert_eq!(line["reason"], "arp-response", "{line}");
        let mac = subnet.mac(2 + i as u8).to_uppercase();
        assert_eq!(line["mac"], mac, "{line}");
    }
    assert_eq!(got.len(), 8);
}

#[test]
fn on_a_segment_nd_finds_the_ipv6_hosts() {
    let Some(lab) = segment_lab() else { return };
    let hosts = lab.segment(0).hosts();
    let subnet = hosts[0].subnet();
    // The three hosts and two unused addresses.
    let mut targets: Vec<String> = hosts.iter().map(|h| h.ipv6().to_string()).collect();
    targets.push(subnet.ipv6(9).to_string());
    targets.push(subnet.ipv6(10).to_string());
    let mut args = vec!["-sn"];
    args.extend(targets.iter().map(String::as_str));
    let got = statuses(&run(&lab, &args));
    for h in hosts {
        assert_eq!(
            got[&IpAddr::from(h.ipv6())],
            ("up".into(), "nd-response".into()),
            "{got:?}"
        );
    }
    assert_eq!(got[&IpAddr::from(subnet.ipv6(9))].0, "down");
    assert_eq!(got[&IpAddr::from(subnet.ipv6(10))].0, "down");
}

#[test]
fn without_arp_the_ip_probes_find_hosts_by_whatever_they_answer() {
    // The ordinary host by any probe, the one dropping ICMP by the ACK to
    // port 80 (which draws a RST), and the one dropping all IP not at all.
    let Some(lab) = segment_lab() else { return };
    let hosts = lab.segment(0).hosts();
    let subnet = hosts[0].subnet();
    let got = statuses(&run(
        &lab,
        &[
            "-sn",
            "--disable-arp-ping",
            &format!("{}/29", subnet.ipv4(0)),
        ],
    ));
    let at = |h: &Host| got.get(&IpAddr::from(h.ipv4())).cloned();
    assert_eq!(at(&hosts[0]).unwrap().0, "up", "{got:?}");
    assert_eq!(
        at(&hosts[1]),
        Some(("up".into(), "reset".into())),
        "{got:?}"
    );
    assert_eq!(at(&hosts[2]).unwrap().0, "down", "{got:?}");
    let up = got.values().filter(|s| s.0 == "up").count();
    assert_eq!(up, 3, "the scanner and two hosts: {got:?}");
}

#[test]
fn each_probe_type_finds_what_it_can() {
    let lab = lab_or_skip!(Lab::builder().hosts(1));
    let host = lab.host(0);
    let _service = host.listen_tcp([443]).unwrap();
    drop_icmp(host);
    let target = host.ipv4().to_string();
    let status = |args: &[&str]| {
        let mut all = vec!["-sn"];
        all.extend_from_slice(args);
        all.push(&target);
        let got = statuses(&run(&lab, &all));
        got[&IpAddr::from(host.ipv4())].clone()
    };
    assert_eq!(status(&["-PE"]).0, "down");
    assert_eq!(status(&["-PP"]).0, "down");
    assert_eq!(status(&["-PS443"]), ("up".into(), "syn-ack".into()));
    assert_eq!(status(&["-PS81"]), ("up".into(), "reset".into()));
    assert_eq!(status(&["-PA80"]), ("up".into(), "reset".into()));
    assert_eq!(status(&["-PE", "-PA22"]), ("up".into(), "reset".into()));
}

#[test]
fn echo_and_timestamp_answers_give_their_reasons_over_ipv4_and_ipv6() {
    let lab = lab_or_skip!(Lab::builder().hosts(1));
    let host = lab.host(0);
    let v4: IpAddr = host.ipv4().into();
    let v6: IpAddr = host.ipv6().into();
    host.sysctl("net.ipv4.ip_default_ttl", "61").unwrap();
    let echo = run(&lab, &["-sn", "-PE", &v4.to_string(), &v6.to_string()]);
    let got = statuses(&echo);
    assert_eq!(got[&v4], ("up".into(), "echo-reply".into()));
    assert_eq!(got[&v6], ("up".into(), "echo-reply".into()));
    // The answer's TTL is the evidence's too.
    let v4_line = echo
        .hosts
        .iter()
        .find(|h| h["addr"] == v4.to_string())
        .unwrap();
    assert_eq!(v4_line["reason_ttl"], 61, "{v4_line}");
    let got = statuses(&run(&lab, &["-sn", "-PP", &v4.to_string()]));
    assert_eq!(got[&v4], ("up".into(), "timestamp-reply".into()));
}

#[test]
fn only_hosts_found_up_are_port_scanned_unless_pn() {
    let lab = lab_or_skip!(Lab::builder().hosts(2));
    let (up, silent) = (lab.host(0), lab.host(1));
    let _service = up.listen_tcp([22]).unwrap();
    drop_everything_but_neighbours(silent);
    let targets = [up.ipv4().to_string(), silent.ipv4().to_string()];
    // Without ARP, which would find the silent host on its link.
    let scanned = run(
        &lab,
        &[
            "--disable-arp-ping",
            "-p",
            "22,23",
            &targets[0],
            &targets[1],
        ],
    );
    let got = statuses(&scanned);
    assert_eq!(got[&IpAddr::from(up.ipv4())].0, "up");
    assert_eq!(got[&IpAddr::from(silent.ipv4())].0, "down");
    let up_addr: IpAddr = up.ipv4().into();
    assert_eq!(scanned.ports[&(up_addr, 22)].state, "open");
    assert_eq!(scanned.ports[&(up_addr, 23)].state, "closed");
    assert_eq!(scanned.ports.len(), 2, "the down host is not port scanned");
    let forced = run(&lab, &["-Pn", "-p", "22,23", &targets[0], &targets[1]]);
    assert_eq!(forced.ports.len(), 4);
    let silent_addr: IpAddr = silent.ipv4().into();
    assert_eq!(forced.ports[&(silent_addr, 22)].state, "filtered");
}

#[test]
fn a_routed_range_with_a_scattered_few_hosts_yields_exactly_those() {
    let lab = lab_or_skip!(Lab::builder().hosts(1));
    let gateway = lab.host(0);
    // 198.19.200.0/24 behind the gateway, where only these addresses exist.
    let live = [
        "198.19.200.3",
        "198.19.200.77",
        "198.19.200.128",
        "198.19.200.254",
    ];
    lab.scanner()
        .ip(&[
            "route",
            "add",
            "198.19.200.0/24",
            "via",
            &gateway.ipv4().to_string(),
        ])
        .unwrap();
    for addr in live {
        gateway
            .ip(&["address", "add", &format!("{addr}/32"), "dev", "lo"])
            .unwrap();
    }
    let got = statuses(&run(&lab, &["-sn", "198.19.200.0/24"]));
    let up: Vec<String> = got
        .iter()
        .filter(|(_, s)| s.0 == "up")
        .map(|(a, _)| a.to_string())
        .collect();
    assert_eq!(up, live);
    assert_eq!(got.len(), 256, "every address is reported");
}

#[test]
fn without_privileges_discovery_connects_to_80_and_443() {
    // Unprivileged (nobody, no capabilities): the connects to ports 80 and
    // 443 find a host that listens on one, or refuses them.
    let lab = lab_or_skip!(Lab::builder().hosts(2));
    let (listening, refusing) = (lab.host(0), lab.host(1));
    let _service = listening.listen_tcp([443]).unwrap();
    // Only 443 answers there, so its reason is the handshake.
    listening.drop_tcp(80).unwrap();
    let json = scratch_dir().join("unprivileged.jsonl");
    let out = as_nobody(lab.scanner().command("setpriv"))
        .args(["-sn", "-n", "--no-progress", "-oJ", "-"])
        .args([listening.ipv4().to_string(), refusing.ipv4().to_string()])
        .output()
        .unwrap();
    // Nobody may not write the test's scratch directory: JSON lines on
    // standard output.
    std::fs::write(&json, assert_success(&out)).unwrap();
    let got = statuses(&read_jsonl(&json));
    assert_eq!(
        got[&IpAddr::from(listening.ipv4())],
        ("up".into(), "syn-ack".into())
    );
    assert_eq!(
        got[&IpAddr::from(refusing.ipv4())],
        ("up".into(), "conn-refused".into())
    );
    // Asking for a raw probe without privileges is one clear error.
    let out = as_nobody(lab.scanner().command("setpriv"))
        .args(["-sn", "-PE", "-n", "--no-progress"])
        .arg(listening.ipv4().to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("need raw sockets"), "{stderr}");
}

#[test]
fn a_wide_range_is_discovered_and_port_scanned_group_by_group() {
    // 8192 addresses (two discovery groups of --max-hostgroup) behind a gateway, seven live
    // ones spread over both halves, each with port 22 open. The /19 is one that does not
    // hold the lab's own link (its subnet is drawn from the lab's /15: the scanner and the
    // gateway would be two more live addresses).
    let lab = lab_or_skip!(Lab::builder().hosts(1));
    let gateway = lab.host(0);
    let _ssh = gateway.listen_tcp([22]).unwrap();
    let link = gateway.ipv4().octets();
    let third = if link[1] == 19 && (32..64).contains(&link[2]) {
        64
    } else {
        32
    };
    let range = format!("198.19.{third}.0/19");
    lab.scanner()
        .ip(&["route", "add", &range, "via", &gateway.ipv4().to_string()])
        .unwrap();
    // (offset of the third octet in the /19, fourth octet)
    let live: Vec<String> = [
        (0, 1),
        (1, 200),
        (8, 7),
        (15, 255),
        (16, 0),
        (23, 55),
        (31, 254),
    ]
    .iter()
    .map(|(o, d)| format!("198.19.{}.{d}", third + o))
    .collect();
    for addr in &live {
        gateway
            .ip(&["address", "add", &format!("{addr}/32"), "dev", "lo"])
            .unwrap();
    }
    let scanned = run(
        &lab,
        &["-T5", "--max-hostgroup", "4096", "-p", "22", &range],
    );
    let got = statuses(&scanned);
    let mut up: Vec<String> = got
        .iter()
        .filter(|(_, s)| s.0 == "up")
        .map(|(a, _)| a.to_string())
        .collect();
    up.sort();
    let mut want = live.clone();
    want.sort();
    assert_eq!(up, want);
    assert_eq!(got.len(), 8192, "every address is reported (with -v)");
    for addr in &live {
        let line = &scanned.ports[&(addr.parse().unwrap(), 22)];
        assert_eq!(line.state, "open", "{addr}");
    }
    assert_eq!(scanned.ports.len(), live.len());
    let summary = scanned.summary.unwrap();
    assert_eq!(summary["hosts"]["scanned"], 8192);
    assert_eq!(summary["hosts"]["up"], live.len());
}

#[test]
fn udp_and_sctp_pings_find_hosts_that_drop_icmp_and_tcp() {
    let lab = lab_or_skip!(Lab::builder().hosts(2).without_icmp_rate_limits());
    let (plain, sctp) = (lab.host(0), lab.host(1));
    for host in [plain, sctp] {
        drop_icmp(host);
        host.drop_tcp(1..=65535).unwrap();
    }
    let _dns = plain.listen_udp([53]).unwrap();
    let _endpoint = sctp.respond_sctp([80]).unwrap();
    let status = |args: &[&str], host: &Host| {
        let mut all = vec!["-sn", "--disable-arp-ping"];
        all.extend_from_slice(args);
        let target = host.ipv4().to_string();
        all.push(&target);
        statuses(&run(&lab, &all))[&IpAddr::from(host.ipv4())].clone()
    };
    // Only the ICMP and TCP probes: both hosts look down.
    assert_eq!(status(&["-PE", "-PS80", "-PA80"], plain).0, "down");
    // A UDP answer, or the host's own port unreachable.
    assert_eq!(
        status(&["-PU53"], plain),
        ("up".into(), "udp-response".into())
    );
    assert_eq!(
        status(&["-PU"], plain),
        ("up".into(), "port-unreach".into())
    );
    // An SCTP INIT: INIT ACK from the endpoint's open port, ABORT from a
    // closed one; a host without SCTP says protocol unreachable itself.
    assert_eq!(status(&["-PY80"], sctp), ("up".into(), "init-ack".into()));
    assert_eq!(status(&["-PY81"], sctp), ("up".into(), "abort".into()));
    assert_eq!(
        status(&["-PY"], plain),
        ("up".into(), "proto-unreach".into())
    );
    // Linux does not answer address mask requests.
    assert_eq!(status(&["-PM"], plain).0, "down");
}
