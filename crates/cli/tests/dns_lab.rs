//! Reverse DNS in the lab (issue 4, "Names"): dnsmasq started in a lab
//! host's namespace serves PTR records for lab addresses, and the scanner
//! asks it with `--dns-servers`; names appear in normal, XML and JSON
//! output. A server whose queries are dropped leaves a scan that still
//! finishes, with addresses only. `-n` sends no query (an nftables counter
//! on the DNS host counts them); `-R` names hosts that never answered.
//!
//! Every run names a lab DNS server (or passes `-n`): no query leaves the
//! lab. dnsmasq reads no configuration file, no /etc/hosts and no
//! resolv.conf, has no upstream, and listens on the lab host's addresses
//! only.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use portolan_lab::{Daemon, Host, Lab, lab_or_skip, under_ci};

use crate::util::{assert_success, portolan_bin, read_jsonl, scratch_dir};

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// The names dnsmasq gives to the lab hosts.
fn name_of(index: usize) -> String {
    format!("target-{index}.lab.example")
}

/// Whether dnsmasq is installed; skips loudly, or fails under CI.
pub(crate) fn dnsmasq_or_skip(test: &str) -> bool {
    if Path::new(DNSMASQ).exists() {
        return true;
    }
    assert!(
        !under_ci(),
        "{DNSMASQ} is required under CI (scripts/test installs dnsmasq)"
    );
    eprintln!("SKIPPED: {test}: {DNSMASQ} is not installed");
    false
}

/// dnsmasq on `server`'s addresses with a PTR (and A/AAAA) record for
/// each host of `named`; ready when it accepts TCP on port 53.
pub(crate) fn start_dnsmasq(server: &Host, named: &[(usize, &Host)]) -> Daemon {
    let dir = scratch_dir();
    let mut cmd = Command::new(DNSMASQ);
    cmd.arg("--keep-in-foreground")
        .arg("--conf-file=/dev/null")
        .arg("--no-resolv")
        .arg("--no-hosts")
        .arg("--bind-interfaces")
        .arg(format!("--listen-address={}", server.ipv4()))
        .arg(format!("--listen-address={}", server.ipv6()))
        .arg("--port=53")
        .arg("--user=root")
        .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (index, host) in named {
        cmd.arg(format!(
            "--host-record={},{},{}",
            name_of(*index),
            host.ipv4(),
            host.ipv6()
        ));
    }
    let mut daemon = server.namespace().spawn(cmd).expect("start dnsmasq");
    daemon
        .wait_for_tcp(
            SocketAddr::new(IpAddr::V4(server.ipv4()), 53),
            Duration::from_secs(20),
        )
        .expect("dnsmasq ready");
    daemon
}

/// Counts the UDP packets to port 53 that reach `host`.
fn count_dns_queries(host: &Host) {
    host.namespace()
        .nft(
            "add table inet dnscount\n\
             add chain inet dnscount input { type filter hook input priority -1; policy accept; }\n\
             add rule inet dnscount input udp dport 53 counter\n",
        )
        .expect("counter rule");
}

/// The count so far of [`count_dns_queries`].
fn dns_queries(host: &Host) -> u64 {
    let text = host
        .namespace()
        .exec("nft", &["list", "table", "inet", "dnscount"], None)
        .expect("read the counter");
    let at = text.find("packets ").expect("a counter");
    text[at + 8..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a packet count")
}

/// Runs portolan in the scanner namespace; a generous guard kills a hung
/// run (and fails the test).
fn scan(lab: &Lab, args: &[&str]) -> Output {
    let mut child = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sT", "--no-progress", "--max-retries", "1"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run portolan");
    let guard = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > guard {
            let _ = child.kill();
            panic!("portolan hung (120 s guard)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn names_from_dnsmasq_in_every_format() {
    if !dnsmasq_or_skip("names_from_dnsmasq_in_every_format") {
        return;
    }
    let lab = lab_or_skip!(Lab::builder().hosts(2));
    let (server, target) = (lab.host(0), lab.host(1));
    let _open = target.listen_tcp([22]).expect("listener");
    let _dns = start_dnsmasq(server, &[(0, server), (1, target)]);
    let dir = scratch_dir();
    let (xml, json) = (dir.join("scan.xml"), dir.join("scan.jsonl"));
    let servers = format!("{},{}", server.ipv4(), server.ipv6());
    let out = scan(
        &lab,
        &[
            "--dns-servers",
            &servers,
            "-p",
            "22,80",
            "-oX",
            xml.to_str().unwrap(),
            "-oJ",
            json.to_str().unwrap(),
            &target.ipv4().to_string(),
            &target.ipv6().to_string(),
            &server.ipv4().to_string(),
        ],
    );
    let stdout = assert_success(&out);
    for (index, addr) in [
        (1, IpAddr::V4(target.ipv4())),
        (1, IpAddr::V6(target.ipv6())),
        (0, IpAddr::V4(server.ipv4())),
    ] {
        let line = format!("Portolan scan report for {} ({addr})", name_of(index));
        assert!(stdout.contains(&line), "no {line:?} in:\n{stdout}");
    }
    let xml = std::fs::read_to_string(&xml).expect("XML");
    assert_eq!(
        xml.matches(&format!("<hostname name=\"{}\" type=\"PTR\"/>", name_of(1)))
            .count(),
        2,
        "{xml}"
    );
    let run = read_jsonl(&json);
    assert_eq!(run.hosts.len(), 3);
    for host in &run.hosts {
        let addr: IpAddr = host["addr"].as_str().unwrap().parse().unwrap();
        let want = if addr == IpAddr::V4(server.ipv4()) {
            name_of(0)
        } else {
            name_of(1)
        };
        assert_eq!(host["name"], want.as_str(), "{host}");
        assert_eq!(host["rdns"], want.as_str(), "{host}");
    }
}

#[test]
fn a_dead_dns_server_does_not_stall_the_scan() {
    let lab = lab_or_skip!(Lab::builder().hosts(2));
    let (server, target) = (lab.host(0), lab.host(1));
    server.drop_udp(53).expect("drop DNS");
    count_dns_queries(server);
    let _open = target.listen_tcp([22]).expect("listener");
    let dir = scratch_dir();
    let json = dir.join("scan.jsonl");
    let out = scan(
        &lab,
        &[
            "--dns-servers",
            &server.ipv4().to_string(),
            "-p",
            "22,23",
            "-oJ",
            json.to_str().unwrap(),
            &target.ipv4().to_string(),
            &target.ipv6().to_string(),
        ],
    );
    let stdout = assert_success(&out);
    assert!(
        stdout.contains(&format!("Portolan scan report for {}\n", target.ipv4())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("Portolan scan report for {}\n", target.ipv6())),
        "{stdout}"
    );
    let run = read_jsonl(&json);
    assert_eq!(run.hosts.len(), 2);
    assert!(
        run.hosts
            .iter()
            .all(|h| h.get("name").is_none() && h.get("rdns").is_none())
    );
    assert!(run.summary.is_some());
    // The queries were sent, and dropped.
    assert!(dns_queries(server) >= 2);
}

#[test]
fn no_dns_query_with_n() {
    if !dnsmasq_or_skip("no_dns_query_with_n") {
        return;
    }
    let lab = lab_or_skip!(Lab::builder().hosts(2));
    let (server, target) = (lab.host(0), lab.host(1));
    let _dns = start_dnsmasq(server, &[(1, target)]);
    count_dns_queries(server);
    let addr = target.ipv4().to_string();
    let dns = server.ipv4().to_string();
    let out = scan(&lab, &["-n", "--dns-servers", &dns, "-p", "22", &addr]);
    let stdout = assert_success(&out);
    assert!(
        stdout.contains(&format!("Portolan scan report for {addr}\n")),
        "{stdout}"
    );
    assert_eq!(dns_queries(server), 0);
    // The counter counts: the same scan without -n asks once.
    let out = scan(&lab, &["--dns-servers", &dns, "-p", "22", &addr]);
    let stdout = assert_success(&out);
    assert!(stdout.contains(&name_of(1)), "{stdout}");
    assert!(dns_queries(server) >= 1);
}

#[test]
fn resolve_all_names_hosts_that_never_answered() {
    if !dnsmasq_or_skip("resolve_all_names_hosts_that_never_answered") {
        return;
    }
    let lab = lab_or_skip!(Lab::builder().hosts(2));
    let (server, target) = (lab.host(0), lab.host(1));
    target.drop_tcp(1..=1024).expect("drop rule");
    let _dns = start_dnsmasq(server, &[(1, target)]);
    count_dns_queries(server);
    // The IPv6 server address this time.
    let dns = server.ipv6().to_string();
    let addr = target.ipv4().to_string();
    let dir = scratch_dir();
    let json = dir.join("scan.jsonl");
    let args = |extra: &'static [&'static str]| {
        // -Pn: no discovery, which would find the host up by ARP.
        let mut a = vec![
            "-Pn",
            "--dns-servers",
            &dns,
            "-p",
            "80,443",
            "--max-retries",
            "0",
        ];
        a.extend_from_slice(extra);
        a
    };
    // By default a host without any answer gets no lookup.
    let mut plain = args(&["-oJ"]);
    plain.extend([json.to_str().unwrap(), addr.as_str()]);
    assert_success(&scan(&lab, &plain));
    let run = read_jsonl(&json);
    assert!(run.hosts[0].get("rdns").is_none(), "{:?}", run.hosts);
    assert_eq!(dns_queries(server), 0);
    // -R asks anyway.
    let mut all = args(&["-R", "-oJ"]);
    all.extend([json.to_str().unwrap(), addr.as_str()]);
    let stdout = assert_success(&scan(&lab, &all));
    assert!(
        stdout.contains(&format!("Portolan scan report for {} ({addr})", name_of(1))),
        "{stdout}"
    );
    let run = read_jsonl(&json);
    assert_eq!(run.hosts[0]["rdns"], name_of(1).as_str());
}

#[test]
fn discovered_hosts_get_names_and_loopback_asks_nothing() {
    if !dnsmasq_or_skip("discovered_hosts_get_names_and_loopback_asks_nothing") {
        return;
    }
    let lab = lab_or_skip!(Lab::builder().hosts(2));
    let (server, target) = (lab.host(0), lab.host(1));
    let _dns = start_dnsmasq(server, &[(1, target)]);
    count_dns_queries(server);
    let dns = server.ipv4().to_string();
    // This machine's loopback is never looked up.
    let out = scan(&lab, &["--dns-servers", &dns, "-p", "1", "127.0.0.1"]);
    assert_success(&out);
    assert_eq!(dns_queries(server), 0);
    // A host found up by discovery alone (-sn: no port) gets its name.
    let out = scan(
        &lab,
        &["--dns-servers", &dns, "-sn", &target.ipv4().to_string()],
    );
    let stdout = assert_success(&out);
    assert!(stdout.contains(&name_of(1)), "{stdout}");
}
