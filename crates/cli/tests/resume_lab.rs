//! `--resume FILE`: a multi-host scan killed with SIGKILL in the middle,
//! then resumed from its normal, grepable, XML or JSON-lines output,
//! repeats no finished host and loses none: the union of its two parts is
//! exactly an uninterrupted scan's, the XML file is one document and the
//! JSON-lines file one run, each port and host once.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portolan_lab::{Lab, lab_or_skip};

use crate::util::{JsonRun, assert_success, portolan_bin, read_jsonl, scratch_dir};

/// The scan: hosts one at a time, each slowed by a scan delay so a kill
/// lands between hosts and in the middle of one.
fn scan_args(base: &Path, targets: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--no-db",
        "--no-progress",
        "-n",
        "-Pn",
        "-sS",
        "-p",
        "20-29,80",
        "--max-hostgroup",
        "1",
        "--scan-delay",
        "25ms",
        "--reason",
        "-oA",
    ]
    .map(String::from)
    .to_vec();
    args.push(base.display().to_string());
    args.push("-oJ".to_string());
    args.push(base.with_extension("jsonl").display().to_string());
    args.extend(targets.iter().cloned());
    args
}

/// Each host's `Ports:` line of a grepable file, which must not repeat.
fn grepable_ports(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut hosts = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("Host: ") else {
            continue;
        };
        let Some((host, ports)) = rest.split_once("\tPorts: ") else {
            continue;
        };
        let addr = host.split_whitespace().next().unwrap().to_string();
        let dup = hosts.insert(addr.clone(), ports.to_string());
        assert!(
            dup.is_none(),
            "{addr} reported twice in {}:\n{text}",
            path.display()
        );
    }
    hosts
}

/// Hosts whose record is complete in `file` (of the given extension).
fn finished_in(file: &Path) -> usize {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    match file.extension().and_then(|e| e.to_str()) {
        Some("xml") => text.matches("</host>").count(),
        Some("gnmap") => text.lines().filter(|l| l.contains("\tPorts: ")).count(),
        Some("jsonl") => text
            .lines()
            .filter(|l| l.starts_with("{\"type\":\"host\"") && l.ends_with('}'))
            .count(),
        _ => text.matches("scan report for").count().saturating_sub(1),
    }
}

fn run_in(lab: &Lab, args: &[String]) -> std::process::Output {
    lab.scanner()
        .command(portolan_bin())
        .args(args)
        .output()
        .expect("run portolan")
}

#[test]
fn a_killed_scan_resumed_from_each_output_equals_an_uninterrupted_one() {
    let lab = lab_or_skip!(Lab::builder().segment(6).without_icmp_rate_limits());
    let hosts = lab.segment(0).hosts();
    let mut services = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        // A different open port on each host, 80 on every other one.
        let mut open = vec![20 + i as u16];
        if i % 2 == 0 {
            open.push(80);
        }
        services.push(host.listen_tcp(open).unwrap());
        host.drop_tcp(25..=26).unwrap();
    }
    let targets: Vec<String> = hosts.iter().map(|h| h.ipv4().to_string()).collect();

    let dir = scratch_dir();
    let whole = dir.join("whole");
    assert_success(&run_in(&lab, &scan_args(&whole, &targets)));
    let truth = grepable_ports(&whole.with_extension("gnmap"));
    assert_eq!(truth.len(), hosts.len());
    let json_truth = read_jsonl(&whole.with_extension("jsonl"));

    for ext in ["gnmap", "xml", "nmap", "jsonl"] {
        let base = dir.join(format!("cut-{ext}"));
        let file = base.with_extension(ext);
        let mut child = lab
            .scanner()
            .command(portolan_bin())
            .args(scan_args(&base, &targets))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Killed once two hosts are in the file, with more to come.
        let deadline = Instant::now() + Duration::from_secs(30);
        while finished_in(&file) < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let before = grepable_ports(&base.with_extension("gnmap"));
        assert!(
            (2..hosts.len()).contains(&before.len()),
            "{ext}: killed after {} hosts",
            before.len()
        );

        let out = run_in(&lab, &["--resume".to_string(), file.display().to_string()]);
        assert_success(&out);
        // Nothing repeated (grepable_ports refuses a host twice), nothing
        // lost, every host as the uninterrupted scan found it.
        let after = grepable_ports(&base.with_extension("gnmap"));
        assert_eq!(after, truth, "{ext}: resumed scan differs");
        let normal = std::fs::read_to_string(base.with_extension("nmap")).unwrap();
        for addr in truth.keys() {
            assert_eq!(
                normal.matches(&format!("scan report for {addr}\n")).count(),
                1,
                "{ext}: {addr} in the normal output:\n{normal}"
            );
        }
        assert_xml_document(&base.with_extension("xml"), truth.len());
        // One JSON run: one begin and one summary, every port and host
        // once (read_jsonl refuses a port twice), as the whole scan's.
        let json = base.with_extension("jsonl");
        let text = std::fs::read_to_string(&json).unwrap();
        assert_eq!(
            text.matches("\"type\":\"begin\"").count(),
            1,
            "{ext}: {text}"
        );
        assert_eq!(
            text.matches("\"type\":\"summary\"").count(),
            1,
            "{ext}: {text}"
        );
        let run = read_jsonl(&json);
        assert_eq!(run.hosts.len(), truth.len(), "{ext}: {text}");
        let states = |run: &JsonRun| -> BTreeMap<(IpAddr, u16), String> {
            run.ports
                .iter()
                .map(|(k, p)| (*k, format!("{} {}", p.state, p.reason)))
                .collect()
        };
        assert_eq!(states(&run), states(&json_truth), "{ext}: JSON ports");
        // A finished scan is not resumed again.
        let again = run_in(&lab, &["--resume".to_string(), file.display().to_string()]);
        assert_eq!(
            again.status.code(),
            Some(2),
            "{ext}: resumed a finished scan"
        );
    }
    drop(services);
}

/// The XML file is one well-formed document with each host once.
fn assert_xml_document(xml: &PathBuf, hosts: usize) {
    let text = std::fs::read_to_string(xml).unwrap();
    assert_eq!(text.matches("<nmaprun ").count(), 1, "{text}");
    assert_eq!(text.matches("</nmaprun>").count(), 1, "{text}");
    assert_eq!(text.matches("</host>").count(), hosts, "{text}");
    let lint = Command::new("xmllint")
        .args(["--noout"])
        .arg(xml)
        .output()
        .expect("xmllint (libxml2-utils)");
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stderr)
    );
}

/// The `n`-th occurrence (0-based) of `needle` in `text`, as a byte offset.
fn nth(text: &str, needle: &str, n: usize) -> usize {
    text.match_indices(needle)
        .nth(n)
        .unwrap_or_else(|| panic!("no {needle:?} #{n} in:\n{text}"))
        .0
}

#[test]
fn outputs_cut_at_different_hosts_resume_without_a_host_twice_or_lost() {
    // A kill between two writes leaves the normal file a host ahead of
    // the XML one, and that one ahead of the grepable one. An offline
    // scan (nothing sent) stands in for the interrupted one.
    let dir = scratch_dir();
    let base = dir.join("offline");
    let scan = [
        "--no-db",
        "--no-progress",
        "--offline",
        "-sS",
        "-p",
        "80,81",
        "-r",
        "--max-hostgroup",
        "1",
        "-oA",
    ];
    let out = Command::new(portolan_bin())
        .args(scan)
        .arg(&base)
        .arg("-oJ")
        .arg(base.with_extension("jsonl"))
        .arg("198.18.0.1-4")
        .output()
        .unwrap();
    assert_success(&out);
    let cut = |ext: &str, at: &dyn Fn(&str) -> usize| {
        let file = base.with_extension(ext);
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, &text[..at(&text)]).unwrap();
    };
    // Normal: three hosts; XML: two; grepable: one.
    cut("nmap", &|t| nth(t, "Portolan scan report for", 3));
    cut("xml", &|t| nth(t, "</host>\n", 1) + "</host>\n".len());
    cut("gnmap", &|t| nth(t, "Host: 198.18.0.2", 0));
    // JSON lines: two hosts, and the port lines of a third written before
    // the kill came (a buffer flushed in the middle of a host), which
    // must not stay.
    cut("jsonl", &|t| {
        nth(t, r#"{"type":"host","addr":"198.18.0.3""#, 0)
    });
    assert!(
        std::fs::read_to_string(base.with_extension("jsonl"))
            .unwrap()
            .contains(r#"{"type":"port","addr":"198.18.0.3""#)
    );
    let out = Command::new(portolan_bin())
        .arg("--resume")
        .arg(base.with_extension("gnmap"))
        .output()
        .unwrap();
    assert_success(&out);
    let normal = std::fs::read_to_string(base.with_extension("nmap")).unwrap();
    let grepable = std::fs::read_to_string(base.with_extension("gnmap")).unwrap();
    for host in 1..=4 {
        let addr = format!("198.18.0.{host}");
        assert_eq!(
            normal.matches(&format!("scan report for {addr}\n")).count(),
            1,
            "{addr}:\n{normal}"
        );
        assert_eq!(
            grepable
                .matches(&format!("Host: {addr} ()\tPorts:"))
                .count(),
            1,
            "{addr}:\n{grepable}"
        );
    }
    assert_xml_document(&base.with_extension("xml"), 4);
    // One JSON run: each port and host once (read_jsonl refuses a port
    // twice), one begin line, one summary.
    let json = base.with_extension("jsonl");
    let run = read_jsonl(&json);
    assert_eq!((run.hosts.len(), run.ports.len()), (4, 8));
    let text = std::fs::read_to_string(&json).unwrap();
    assert_eq!(text.matches(r#""type":"begin""#).count(), 1, "{text}");
    assert_eq!(text.matches(r#""type":"summary""#).count(), 1, "{text}");
}
