//! Middleboxes told apart from the hosts they answer for.
//!
//! A host behind netfilter's `synproxy` (nftables, in the host's own
//! namespace), which answers every SYN to ports 1-1000 with a SYN cookie
//! and opens the connection to the host only once the handshake is done:
//! one real service (80) among closed ports. A SYN scan sees only the
//! proxy's SYN-ACKs (every port open), a connect scan completes every
//! handshake; Portolan connects to the open ports of a host that looks
//! like that and tells them apart: the real port stays `open`/`syn-ack`,
//! the others, completed with the proxy and then reset, read
//! `closed`/`proxy-reset`, and the host is flagged in every format.
//!
//! A transparent proxy answering one port for a whole routed range,
//! whatever host is behind each address: flagged for the scan, with the
//! TTLs that tell it.

use std::net::IpAddr;
use std::process::Output;

use portolan_lab::{Host, Lab, lab_or_skip};

use crate::output_tools::{assert_dtd_valid, xmllint};
use crate::util::{JsonRun, assert_success, portolan_bin, read_jsonl, scratch_dir};

/// The ports scanned: 80 is the real service; 22-999 are proxied; 2000,
/// outside the proxy's range, is the host's own closed port.
const PORTS: &str = "22,79-81,443,999,2000";
const PROXIED: [u16; 5] = [22, 79, 81, 443, 999];

/// Puts `host` behind a SYN proxy for ports 1-1000, with a TCP service
/// on port 80 (returned: it stops when dropped).
fn behind_syn_proxy(host: &Host) -> impl Drop {
    let service = host.listen_tcp([80]).unwrap();
    host.exec("sysctl", &["-qw", "net.ipv4.tcp_syncookies=1"], None)
        .unwrap();
    host.exec(
        "sysctl",
        &["-qw", "net.netfilter.nf_conntrack_tcp_loose=0"],
        None,
    )
    .unwrap();
    host.nft(
        "table ip portolan_synproxy {\n\
         chain pre {\n type filter hook prerouting priority raw; policy accept;\n\
         tcp dport 1-1000 tcp flags syn notrack\n }\n\
         chain inp {\n type filter hook input priority filter; policy accept;\n\
         tcp dport 1-1000 ct state invalid,untracked \
         synproxy mss 1460 wscale 7 timestamp sack-perm\n\
         ct state invalid drop\n }\n}\n",
    )
    .unwrap();
    service
}

/// Runs Portolan with `args` on the host's ports; its JSON lines, normal
/// output and XML file.
fn scan(lab: &Lab, host: &Host, name: &str, args: &[&str]) -> (JsonRun, String, String) {
    let dir = scratch_dir();
    let json = dir.join(format!("{name}.jsonl"));
    let xml = dir.join(format!("{name}.xml"));
    let out: Output = lab
        .scanner()
        .command(portolan_bin())
        .args(["--no-db", "--no-progress", "-n", "-Pn", "-p", PORTS])
        .args(args)
        .arg("-oJ")
        .arg(&json)
        .arg("-oX")
        .arg(&xml)
        .arg(host.ipv4().to_string())
        .output()
        .unwrap();
    let stdout = assert_success(&out);
    if xmllint() {
        assert_dtd_valid(&xml);
    }
    let xml = std::fs::read_to_string(&xml).unwrap();
    (read_jsonl(&json), stdout, xml)
}

fn port(run: &JsonRun, addr: IpAddr, port: u16) -> (&str, &str) {
    let p = &run.ports[&(addr, port)];
    (p.state.as_str(), p.reason.as_str())
}

/// The real service and the proxied ports told apart, the host flagged in
/// the JSON, normal and XML outputs.
fn assert_told_apart(run: &JsonRun, stdout: &str, xml: &str, addr: IpAddr, technique: &str) {
    assert_eq!(port(run, addr, 80), ("open", "syn-ack"), "{technique}: 80");
    for p in PROXIED {
        assert_eq!(
            port(run, addr, p),
            ("closed", "proxy-reset"),
            "{technique}: port {p}, proxied"
        );
    }
    // Outside the proxied range, the host's own answer.
    assert!(
        matches!(port(run, addr, 2000), ("closed", "reset" | "conn-refused")),
        "{technique}: 2000 {:?}",
        port(run, addr, 2000)
    );
    let host = &run.hosts[0];
    let flag = &host["middlebox"];
    assert_eq!(flag["kind"], "syn-proxy", "{technique}: {host}");
    assert_eq!(flag["services"], serde_json::json!([80]), "{host}");
    assert_eq!(
        (flag["reset"].as_u64(), flag["checked"].as_u64()),
        (Some(5), Some(6)),
        "{host}"
    );
    assert!(
        stdout.contains("Middlebox: a SYN proxy answers for this host: 5 of 6 open ports"),
        "{technique}: {stdout}"
    );
    assert!(
        xml.contains("<hostscript><script id=\"portolan-middlebox\" output=\"syn-proxy: 5 of 6"),
        "{technique}: {xml}"
    );
    assert!(
        xml.contains(r#"<state state="closed" reason="proxy-reset""#),
        "{xml}"
    );
}

#[test]
fn syn_and_connect_scans_tell_the_real_service_behind_a_syn_proxy_and_flag_it() {
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = behind_syn_proxy(host);
    let addr: IpAddr = host.ipv4().into();
    for technique in ["-sS", "-sT"] {
        let (run, stdout, xml) = scan(&lab, host, &format!("synproxy{technique}"), &[technique]);
        assert_told_apart(&run, &stdout, &xml, addr, technique);
    }
}

#[test]
fn version_detection_probes_only_the_service_behind_a_syn_proxy() {
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = behind_syn_proxy(host);
    let addr: IpAddr = host.ipv4().into();
    let (run, stdout, xml) = scan(
        &lab,
        host,
        "synproxy-sv",
        &["-sS", "-sV", "--version-intensity", "0"],
    );
    assert_told_apart(&run, &stdout, &xml, addr, "-sS -sV");
    let services = run.hosts[0]["services"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let probed: Vec<u64> = services
        .iter()
        .map(|s| s["port"].as_u64().unwrap())
        .collect();
    assert_eq!(
        probed,
        vec![80],
        "no service invented on proxied ports: {services:?}"
    );
}

#[test]
fn without_the_check_a_syn_scan_sees_only_the_proxy() {
    // What nmap reports, and what the check is for: every proxied port
    // open, nothing flagged.
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = behind_syn_proxy(host);
    let addr: IpAddr = host.ipv4().into();
    let (run, stdout, _) = scan(
        &lab,
        host,
        "synproxy-unchecked",
        &["-sS", "--no-proxy-check"],
    );
    for p in PROXIED.into_iter().chain([80]) {
        assert_eq!(port(&run, addr, p), ("open", "syn-ack"), "port {p}");
    }
    assert!(run.hosts[0].get("middlebox").is_none(), "{}", run.hosts[0]);
    assert!(!stdout.contains("Middlebox"), "{stdout}");
}

/// Two routed ranges behind one lab host, every address of them its own
/// (a local route): the hosts "differ", each address answering with its
/// own TTL (51-58, 71-78), set by nftables. In the first range a
/// transparent proxy answers port 80: its SYN-ACKs keep the router's TTL
/// (64) for every address. In the second, port 80 is each host's own.
#[test]
fn a_transparent_proxy_answering_one_port_across_a_range_is_flagged() {
    let lab = lab_or_skip!();
    let router = lab.host(0);
    let (proxied, direct) = ("198.19.77.0/29", "198.19.78.0/29");
    lab.route_range_to(router, proxied).unwrap();
    lab.route_range_to(router, direct).unwrap();
    let _web = router.listen_tcp([80]).unwrap();
    let mut rules = format!(
        "table ip portolan_ttl {{\n chain out {{\n  \
         type filter hook output priority mangle; policy accept;\n  \
         ip saddr {proxied} tcp sport 80 accept\n"
    );
    for i in 0..8u8 {
        rules.push_str(&format!(
            "  ip saddr 198.19.77.{i} ip ttl set {}\n  ip saddr 198.19.78.{i} ip ttl set {}\n",
            51 + i,
            71 + i
        ));
    }
    rules.push_str(" }\n}\n");
    router.nft(&rules).unwrap();

    let dir = scratch_dir();
    let (json, xml) = (dir.join("tproxy.jsonl"), dir.join("tproxy.xml"));
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args([
            "--no-db",
            "--no-progress",
            "-n",
            "-Pn",
            "-sS",
            "-p",
            "22,80",
        ])
        .arg("-oJ")
        .arg(&json)
        .arg("-oX")
        .arg(&xml)
        .args([proxied, direct])
        .output()
        .unwrap();
    let stdout = assert_success(&out);
    let run = read_jsonl(&json);
    assert_eq!(run.hosts.len(), 16);
    // Every port answered as the path made it answer: the flag says why.
    assert!(
        run.ports
            .iter()
            .all(|((_, p), got)| got.state == if *p == 80 { "open" } else { "closed" })
    );
    let summary = run.summary.as_ref().unwrap();
    let found = summary["middleboxes"].as_array().expect("middleboxes");
    assert_eq!(found.len(), 1, "{summary}");
    let f = &found[0];
    assert_eq!(
        (
            &f["kind"],
            &f["port"],
            &f["ttl"],
            &f["addresses"],
            &f["differing"]
        ),
        (
            &"transparent-proxy".into(),
            &80.into(),
            &64.into(),
            &8.into(),
            &8.into()
        ),
        "{f}"
    );
    for addr in f["sample"].as_array().unwrap() {
        assert!(addr.as_str().unwrap().starts_with("198.19.77."), "{f}");
    }
    assert!(
        stdout.contains("Middlebox: a transparent proxy answers 80/tcp for 8 addresses: "),
        "{stdout}"
    );
    if xmllint() {
        assert_dtd_valid(&xml);
    }
    let xml = std::fs::read_to_string(&xml).unwrap();
    assert!(
        xml.contains(
            "<postscript><script id=\"portolan-middlebox\" output=\"transparent-proxy: 8 addresses"
        ),
        "{xml}"
    );
}
