//! The history's diffs against real daemons in a lab host's namespace:
//! nginx reconfigured between two `-sV` scans (its version no longer
//! announced on one port, its certificate rotated on another, with
//! `--expiring`), Exim's greeting changed (a banner change that version
//! detection does not turn into a version change) and Exim's greeting
//! whose date changes at every connection, which must not count; and
//! `--policy` on a scan of several hosts, each audited as it is written.
//!
//! Daemons listen only inside the lab namespace and die with their guards.
//! Without root or the daemons the tests skip loudly, and fail under CI
//! (`scripts/test` installs the packages).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use portolan_lab::{Daemon, Host, Lab, lab_or_skip, under_ci};
use serde_json::Value;

use crate::history::certificate;
use crate::util::{assert_success, portolan_bin, scratch_dir};

/// Whether every program is installed; skips loudly (fails under CI).
fn installed(test: &str, programs: &[&str]) -> bool {
    let missing: Vec<&&str> = programs.iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(!under_ci(), "CI is set but these are missing: {missing:?}");
    eprintln!("SKIPPED: {test}: {missing:?} missing (scripts/test installs them)");
    false
}

/// A `-sV` scan of `ports` on `target` from the lab's scanner, recorded
/// in `db`.
fn scan(lab: &Lab, db: &Path, target: IpAddr, ports: &str) {
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["-n", "-Pn", "-sS", "-sV", "--no-progress", "-p", ports])
        .arg("--db")
        .arg(db)
        .arg(target.to_string())
        .output()
        .expect("run portolan in the lab");
    assert_success(&out);
}

fn diff(db: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let out: Output = Command::new(portolan_bin())
        .args(["diff", "--last", "--json"])
        .args(extra)
        .arg("--db")
        .arg(db)
        .output()
        .expect("run portolan diff");
    let text = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), value)
}

fn port(d: &Value, port: u16) -> &Value {
    d["hosts"][0]["ports"]
        .as_array()
        .and_then(|ports| ports.iter().find(|p| p["port"] == port))
        .unwrap_or_else(|| panic!("no change on {port}: {d}"))
}

/// nginx on 80 (announcing its version or not) and 443 (with `cert`).
fn nginx(host: &Host, dir: &Path, tokens: bool, cert: &(PathBuf, PathBuf)) -> Daemon {
    let d = dir.display();
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "lab\n").unwrap();
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
         server {{ listen 80; root {www}; server_tokens {tokens}; }}\n\
         server {{ listen 443 ssl; root {www}; server_tokens on;\n\
         ssl_certificate {cert}; ssl_certificate_key {key}; }}\n}}\n",
        www = www.display(),
        tokens = if tokens { "on" } else { "off" },
        cert = cert.0.display(),
        key = cert.1.display(),
    );
    let path = dir.join(format!("nginx-{tokens}.conf"));
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new("/usr/sbin/nginx");
    cmd.arg("-c")
        .arg(&path)
        .arg("-e")
        .arg(dir.join("nginx-error.log"));
    let mut daemon = host.spawn(cmd).expect("start nginx");
    for port in [80, 443] {
        daemon
            .wait_for_tcp(host.socket_v4(port), Duration::from_secs(20))
            .expect("nginx listens");
    }
    daemon
}

#[test]
fn a_daemon_reconfigured_and_a_rotated_certificate_show_in_the_lab_diff() {
    if !installed(
        "history_lab nginx",
        &["/usr/sbin/nginx", "/usr/bin/openssl"],
    ) {
        return;
    }
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let dir = scratch_dir();
    let db = dir.join("h.sqlite");
    let target = IpAddr::V4(host.ipv4());
    let old = certificate(&dir, "old.lab", 10).expect("openssl");
    let new = certificate(&dir, "new.lab", 400).expect("openssl");

    let first = nginx(host, &dir, true, &old);
    scan(&lab, &db, target, "80,443");
    drop(first);
    let second = nginx(host, &dir, false, &new);
    scan(&lab, &db, target, "80,443");
    drop(second);

    let (code, d) = diff(&db, &[]);
    assert_eq!(code, Some(1), "{d}");
    // 80: the same nginx, its version no longer announced.
    let http = port(&d, 80);
    assert_eq!(http["change"], "service", "{http}");
    assert_eq!(http["a"]["product"], "nginx", "{http}");
    let (va, vb) = (
        http["a"]["version"].as_str().unwrap_or(""),
        http["b"]["version"].as_str().unwrap_or(""),
    );
    assert!(
        va.starts_with("nginx ") && va.chars().any(|c| c.is_ascii_digit()),
        "{http}"
    );
    assert!(!vb.chars().any(|c| c.is_ascii_digit()), "{http}");
    // 443: the same service, another certificate.
    let https = port(&d, 443);
    assert_eq!(https["change"], "certificate", "{https}");
    assert_eq!(https["a"]["cert"]["subject"], "CN=old.lab");
    assert_eq!(https["b"]["cert"]["subject"], "CN=new.lab");
    assert_eq!(d["expiring"].as_array().unwrap().len(), 0, "{d}");
    // With a window of 500 days the new certificate is listed, with its
    // days left, and still does not make the scans differ by itself.
    let (_, wide) = diff(&db, &["--expiring", "500"]);
    let expiring = wide["expiring"].as_array().unwrap();
    assert_eq!(expiring.len(), 1, "{wide}");
    assert_eq!(expiring[0]["subject"], "CN=new.lab");
    let left = expiring[0]["days_left"].as_i64().unwrap();
    assert!((398..=400).contains(&left), "{left}");
    let text = Command::new(portolan_bin())
        .args(["diff", "--last", "--expiring", "500", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("CN=new.lab expires"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with('-') && l.contains("cert") && l.contains("CN=old.lab")),
        "{text}"
    );
}

/// Exim on 25 greeting "220 lab.test ESMTP Exim VERSION {words}DATE"
/// (its default greeting carries the date and time).
fn exim(host: &Host, dir: &Path, words: &str) -> Daemon {
    let d = dir.join(format!("exim{}", words.len()));
    std::fs::create_dir_all(&d).unwrap();
    let conf = format!(
        "keep_environment =\nprimary_hostname = lab.test\nspool_directory = {d}/spool\n\
         log_file_path = {d}/%slog\npid_file_path = {d}/exim.pid\ndaemon_smtp_ports = 25\n\
         local_interfaces = 0.0.0.0\nexim_user = root\nexim_group = root\nhost_lookup =\n\
         rfc1413_hosts =\ntls_advertise_hosts =\nacl_smtp_rcpt = refuse\n\
         smtp_banner = $smtp_active_hostname ESMTP Exim $version_number {words}$tod_full\n\
         begin acl\nrefuse:\n  deny\n",
        d = d.display()
    );
    let path = d.join("exim.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new("/usr/sbin/exim4");
    cmd.arg("-bdf").arg("-C").arg(&path);
    let mut daemon = host.spawn(cmd).expect("start exim");
    daemon
        .wait_for_tcp(host.socket_v4(25), Duration::from_secs(20))
        .expect("exim listens");
    daemon
}

#[test]
fn a_changed_greeting_counts_and_a_dated_one_does_not() {
    if !installed("history_lab banners", &["/usr/sbin/exim4"]) {
        return;
    }
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let dir = scratch_dir();
    let db = dir.join("h.sqlite");
    let target = IpAddr::V4(host.ipv4());
    // "220 lab.test ESMTP Exim 4.96 Fri, 04 Dec 2026 22:01:39 +0000": the
    // date and time differ at every connection.
    let mail = exim(host, &dir, "");
    scan(&lab, &db, target, "25");
    std::thread::sleep(Duration::from_millis(1100));
    scan(&lab, &db, target, "25");
    let (code, d) = diff(&db, &[]);
    assert_eq!(code, Some(0), "the date in the greeting is no change: {d}");
    drop(mail);
    // The same Exim, the same version, a greeting that says more.
    let _mail = exim(host, &dir, "lab relay, no UCE ");
    std::thread::sleep(Duration::from_millis(1100));
    scan(&lab, &db, target, "25");
    let (code, d) = diff(&db, &[]);
    assert_eq!(code, Some(1), "{d}");
    let changes = d["hosts"][0]["ports"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{d}");
    let smtp = &changes[0];
    assert_eq!(
        (smtp["port"].as_u64(), smtp["change"].as_str()),
        (Some(25), Some("banner")),
        "{smtp}"
    );
    assert_eq!(smtp["a"]["version"], smtp["b"]["version"], "{smtp}");
    assert!(
        smtp["a"]["version"].as_str().unwrap().contains("Exim"),
        "{smtp}"
    );
    assert!(
        !smtp["a"]["banner"].as_str().unwrap().contains("lab relay")
            && smtp["b"]["banner"].as_str().unwrap().contains("lab relay"),
        "{smtp}"
    );
    // The port's history: one run for the two dated greetings, one for
    // the new one.
    let out = Command::new(portolan_bin())
        .args(["history", "host", &target.to_string(), "--json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let h: Value = serde_json::from_str(assert_success(&out).trim()).unwrap();
    let scans: Vec<u64> = h["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["port"] == 25)
        .map(|r| r["scans"].as_u64().unwrap())
        .collect();
    assert_eq!(scans, [2, 1], "{h}");
}

#[test]
fn policy_violations_follow_each_host_as_the_scan_writes_it() {
    let lab = lab_or_skip!(Lab::builder().hosts(3).without_icmp_rate_limits());
    let dir = scratch_dir();
    let db = dir.join("h.sqlite");
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, "[default]\ntcp = [22]\n").unwrap();
    let (h0, h1, h2) = (lab.host(0), lab.host(1), lab.host(2));
    let _l0 = h0.listen_tcp([22, 80]).expect("listen");
    let _l1 = h1.listen_tcp([22]).expect("listen");
    let _l2 = h2.listen_tcp([80]).expect("listen");
    let targets: Vec<String> = [h0, h1, h2].iter().map(|h| h.ipv4().to_string()).collect();
    let run = |extra: &[&str]| {
        lab.scanner()
            .command(portolan_bin())
            .args([
                "-n",
                "-Pn",
                "-sS",
                "--no-progress",
                "-p",
                "22,80",
                "--policy",
            ])
            .arg(&policy)
            .arg("--db")
            .arg(&db)
            .args(extra)
            .args(&targets)
            .output()
            .expect("run portolan in the lab")
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1), "violations: exit 1");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let report_of = |i: usize| {
        lines[..i]
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("Portolan scan report for "))
            .unwrap_or_else(|| panic!("no report before line {i}: {text}"))
    };
    let violations: Vec<(usize, &str)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("/tcp not-allowed"))
        .map(|(i, l)| (i, l.split(' ').next().unwrap()))
        .collect();
    let mut flagged: Vec<&str> = violations.iter().map(|(_, a)| *a).collect();
    flagged.sort();
    let mut expected = vec![targets[0].as_str(), targets[2].as_str()];
    expected.sort();
    assert_eq!(flagged, expected, "{text}");
    for (i, addr) in &violations {
        assert_eq!(
            report_of(*i),
            *addr,
            "a violation follows its host's report: {text}"
        );
        assert!(lines[*i].starts_with(&format!("{addr} 80/tcp")), "{text}");
    }
    // Printed as hosts were written: the first violation comes before the
    // last host's report, and the summary after everything.
    let last_report = lines
        .iter()
        .rposition(|l| l.starts_with("Portolan scan report for "))
        .unwrap();
    assert!(violations[0].0 < last_report, "{text}");
    let summary = lines.last().unwrap();
    assert!(
        summary.starts_with("Audit of scan ") && summary.ends_with(": 3 hosts up, 2 violations"),
        "{text}"
    );
    // With XML on standard output the violations go to standard error,
    // and the XML stays whole.
    let out = run(&["-oX", "-"]);
    assert_eq!(out.status.code(), Some(1));
    let xml = String::from_utf8_lossy(&out.stdout);
    assert!(xml.trim_end().ends_with("</nmaprun>"), "{xml}");
    assert!(!xml.contains("not-allowed"), "{xml}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("/tcp not-allowed").count(), 2, "{err}");
    // A policy that allows 80 too: exit 0, a summary without violations.
    std::fs::write(&policy, "[default]\ntcp = [22, 80]\n").unwrap();
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": 3 hosts up, 0 violations"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
