//! OS detection (`-O`) against the real Linux kernel of a lab host: with
//! nmap's database (`--osdb`), the host is classified as Linux; with its
//! T2-T7 and U1 probes firewalled, it still is, and the report lists the
//! missing tests; a malformed `--osdb` file fails with its line.

use portolan_lab::{Lab, lab_or_skip};

use std::process::Command;

use crate::output_tools::{assert_dtd_valid, libnmap, ndiff, run, xmllint, xsltproc};
use crate::util::{JsonRun, assert_success, portolan, portolan_bin, read_jsonl, scratch_dir};

const NMAP_DB: &str = "/usr/share/nmap/nmap-os-db";

fn nmap_db_or_skip() -> bool {
    if std::path::Path::new(NMAP_DB).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{NMAP_DB} is missing under CI=true"
    );
    eprintln!("skipping: {NMAP_DB} is missing");
    false
}

fn os_scan(lab: &Lab, name: &str, args: &[&str]) -> JsonRun {
    let json = scratch_dir().join(name);
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sS", "-O", "-n", "--no-progress", "-oJ"])
        .arg(&json)
        .args(args)
        .output()
        .expect("run portolan");
    assert_success(&out);
    read_jsonl(&json)
}

fn families(host: &serde_json::Value) -> Vec<String> {
    host["os"]
        .as_array()
        .map(|matches| {
            matches
                .iter()
                .flat_map(|m| m["classes"].as_array().cloned().unwrap_or_default())
                .map(|c| c["family"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_lab_linux_kernel_is_classified_as_linux_with_nmaps_database() {
    if !nmap_db_or_skip() {
        return;
    }
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let _service = host.listen_tcp([22]).unwrap();
    let addr = host.ipv4().to_string();
    let dir = scratch_dir();
    let (xml, normal, grep) = (
        dir.join("os.xml"),
        dir.join("os.nmap"),
        dir.join("os.gnmap"),
    );
    let found = os_scan(
        &lab,
        "os-linux.jsonl",
        &[
            "-p",
            "22,23",
            "--osdb",
            NMAP_DB,
            "-oX",
            xml.to_str().unwrap(),
            "-oN",
            normal.to_str().unwrap(),
            "-oG",
            grep.to_str().unwrap(),
            &addr,
        ],
    );
    let h = &found.hosts[0];
    // Normal and grepable output say it as nmap does.
    let text = std::fs::read_to_string(&normal).unwrap();
    assert!(text.contains("Running") && text.contains("Linux"), "{text}");
    assert!(text.contains("OS CPE: cpe:/o:linux:linux_kernel"), "{text}");
    assert!(
        text.contains("OS details: ") || text.contains("Aggressive OS guesses: "),
        "{text}"
    );
    assert!(
        text.contains("OS hint (passive, not a match): Linux from syn-ack ttl=64"),
        "{text}"
    );
    let grepable = std::fs::read_to_string(&grep).unwrap();
    assert!(grepable.contains("\tOS: Linux"), "{grepable}");
    // The XML validates against nmap.dtd, and python-libnmap reads the
    // matches and their classes.
    if xmllint() {
        assert_dtd_valid(&xml);
    }
    let top = h["os"][0]["name"].as_str().unwrap().to_string();
    // ndiff reads the matches: a changed top match is a difference.
    if ndiff() {
        let changed = dir.join("os-changed.xml");
        let text = std::fs::read_to_string(&xml).unwrap();
        let renamed = text.replacen(&format!("name=\"{top}\""), "name=\"Renamed OS\"", 1);
        std::fs::write(&changed, renamed).unwrap();
        let out = run(Command::new("ndiff").arg(&xml).arg(&changed));
        let diff = String::from_utf8_lossy(&out.stdout);
        assert!(
            diff.contains("OS details:") && diff.contains("+  Renamed OS"),
            "{diff}"
        );
        assert!(diff.contains(&format!("-  {top}")), "{diff}");
    }
    // nmap.xsl shows it.
    if xsltproc() {
        let out = run(Command::new("xsltproc")
            .arg("/usr/share/nmap/nmap.xsl")
            .arg(&xml));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&top));
    }
    if libnmap() {
        const SCRIPT: &str = r#"
import sys
from libnmap.parser import NmapParser
h = NmapParser.parse_fromfile(sys.argv[1]).hosts[0]
m = h.os_match_probabilities()[0]
print(m.name, m.accuracy, m.osclasses[0].osfamily, len(h.os.fingerprints))
"#;
        let out = run(Command::new("python3").args(["-c", SCRIPT]).arg(&xml));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains(" Linux 1"), "{said}");
        assert!(
            said.starts_with(h["os"][0]["name"].as_str().unwrap()),
            "{said}"
        );
    }
    let top = &h["os"][0];
    assert!(top["accuracy"].as_u64().unwrap() >= 85, "{h}");
    let families = families(h);
    assert!(!families.is_empty(), "{h}");
    assert_eq!(families[0], "Linux", "{h}");
    let d = &h["os_detection"];
    let fp = d["fingerprint"].as_str().unwrap();
    assert!(
        fp.starts_with("SCAN(V=portolan-") && fp.contains("\nSEQ("),
        "{d}"
    );
    // The kernel quotes U1 intact: its returned checksum is ours (a
    // mismatch here means the tests read the probe with a wrong source).
    assert!(fp.contains("RUCK=G%RUD=G"), "{d}");
    // The real kernel answers every probe but T2 and T3 (a null and a
    // SYN-FIN-URG-PSH segment to the open port, which Linux drops).
    let missing: Vec<&str> = d["missing"]
        .as_array()
        .map(|m| m.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    assert!(
        !missing.contains(&"SEQ") && !missing.contains(&"U1") && !missing.contains(&"IE"),
        "{d}"
    );
    assert_eq!(d["hint"]["family"], "Linux", "{d}");
}

#[test]
fn firewalled_t2_t7_and_u1_still_give_linux_with_the_missing_tests_listed() {
    if !nmap_db_or_skip() {
        return;
    }
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let _service = host.listen_tcp([22]).unwrap();
    // Closed ports and UDP dropped: T5-T7 and U1 go unanswered; T2-T4
    // (odd flags to the open port) too.
    host.drop_tcp(23..=23).unwrap();
    host.drop_tcp(31337..=31337).unwrap();
    host.drop_udp(1..=65535).unwrap();
    let addr = host.ipv4().to_string();
    let run = os_scan(
        &lab,
        "os-firewalled.jsonl",
        &[
            "-p",
            "22,23",
            "--max-os-tries",
            "1",
            "--osdb",
            NMAP_DB,
            &addr,
        ],
    );
    let h = &run.hosts[0];
    let d = &h["os_detection"];
    let missing: Vec<&str> = d["missing"]
        .as_array()
        .map(|m| m.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    for t in ["T5", "T6", "T7", "U1"] {
        assert!(missing.contains(&t), "{t} not missing: {d}");
    }
    assert_eq!(
        families(h).first().map(String::as_str),
        Some("Linux"),
        "{h}"
    );
    assert!(
        d["warnings"].as_array().is_some_and(|w| !w.is_empty()),
        "{d}"
    );
}

#[test]
fn a_malformed_osdb_file_fails_with_its_line() {
    let path = scratch_dir().join("bad-os-db");
    std::fs::write(&path, "MatchPoints\nFingerprint X\nT1(R=Y%DF=5-3)\n").unwrap();
    let out = portolan(&[
        "-O",
        "--osdb",
        path.to_str().unwrap(),
        "-p",
        "1",
        "127.0.0.1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
}

/// Scans every lab stack side by side in one run (`-O` with Portolan's
/// own database): each is classified as its own entry, family Linux.
#[test]
fn every_lab_stack_is_classified_as_itself_with_portolans_database() {
    let lab = lab_or_skip!(
        Lab::builder()
            .hosts(portolan_lab::STACKS.len())
            .without_icmp_rate_limits()
    );
    let mut services = Vec::new();
    let mut addrs = Vec::new();
    for (host, stack) in lab.hosts().iter().zip(&portolan_lab::STACKS) {
        host.apply_stack(stack).unwrap();
        services.push(host.listen_tcp([22]).unwrap());
        addrs.push(host.ipv4().to_string());
    }
    let mut args = vec!["-p", "22,23"];
    args.extend(addrs.iter().map(String::as_str));
    let found = os_scan(&lab, "os-stacks.jsonl", &args);
    assert_eq!(found.hosts.len(), addrs.len());
    let mut wrong = Vec::new();
    for (addr, stack) in addrs.iter().zip(&portolan_lab::STACKS) {
        let h = found
            .hosts
            .iter()
            .find(|h| h["addr"] == addr.as_str())
            .expect("every host reported");
        let fp = h["os_detection"]["fingerprint"].as_str().unwrap_or("");
        eprintln!("stack {}:\n{fp}\n", stack.name);
        let top = h["os"][0]["name"].as_str().unwrap_or("none");
        let want = format!("(lab stack: {})", stack.name);
        if !top.ends_with(&want) || families(h).first().map(String::as_str) != Some("Linux") {
            wrong.push(format!("{}: top match {top:?}", stack.name));
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
}

/// Scans every user-space persona side by side (`-O` with Portolan's own
/// database): each is classified to its family, as itself.
#[test]
fn every_persona_is_classified_to_its_family_with_portolans_database() {
    let lab = lab_or_skip!(
        Lab::builder()
            .hosts(portolan_lab::PERSONAS.len())
            .without_icmp_rate_limits()
    );
    let mut responders = Vec::new();
    let mut addrs = Vec::new();
    for (host, persona) in lab.hosts().iter().zip(portolan_lab::PERSONAS) {
        responders.push(host.respond_as(host.ipv4(), persona, &[22]).unwrap());
        addrs.push(host.ipv4().to_string());
    }
    let mut args = vec!["-p", "22,23"];
    args.extend(addrs.iter().map(String::as_str));
    let found = os_scan(&lab, "os-personas.jsonl", &args);
    let mut wrong = Vec::new();
    for (addr, persona) in addrs.iter().zip(portolan_lab::PERSONAS) {
        let h = found
            .hosts
            .iter()
            .find(|h| h["addr"] == addr.as_str())
            .expect("every host reported");
        let fp = h["os_detection"]["fingerprint"].as_str().unwrap_or("");
        eprintln!("persona {}:\n{fp}\n", persona.name);
        let top = h["os"][0]["name"].as_str().unwrap_or("none");
        let want = format!("(lab persona: {})", persona.name);
        if !top.ends_with(&want) || families(h).first().map(String::as_str) != Some(persona.family)
        {
            wrong.push(format!(
                "{}: top match {top:?}, families {:?}",
                persona.name,
                families(h)
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
}

/// `--osscan-limit` skips a host without an open and a closed TCP port
/// (and says so); without it the host is fingerprinted anyway, with
/// nmap's warning.
#[test]
fn osscan_limit_skips_hosts_without_an_open_and_a_closed_port() {
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let _service = host.listen_tcp([22]).unwrap();
    let addr = host.ipv4().to_string();
    // Only the open port is scanned: no closed port is known.
    let limited = os_scan(
        &lab,
        "os-limit.jsonl",
        &["-p", "22", "--osscan-limit", &addr],
    );
    let h = &limited.hosts[0];
    assert!(h["os"].is_null(), "{h}");
    let warning = h["os_detection"]["warnings"][0].as_str().unwrap_or("");
    assert!(warning.contains("--osscan-limit"), "{h}");
    let unlimited = os_scan(&lab, "os-nolimit.jsonl", &["-p", "22", &addr]);
    let h = &unlimited.hosts[0];
    assert_eq!(
        families(h).first().map(String::as_str),
        Some("Linux"),
        "{h}"
    );
    let warning = h["os_detection"]["warnings"][0].as_str().unwrap_or("");
    assert!(
        warning.contains("could not find at least 1 open and 1 closed port"),
        "{h}"
    );
}

/// Without `-O`, a SYN scan still gives each host a passive hint from the
/// SYN-ACKs it received, with its evidence, in JSON lines and normal
/// output, and never as a match (no `os` matches, no XML `<os>`).
#[test]
fn a_syn_scan_without_o_gives_a_passive_hint_never_a_match() {
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let _service = host.listen_tcp([22]).unwrap();
    let addr = host.ipv4().to_string();
    let dir = scratch_dir();
    let (json, normal, xml) = (dir.join("p.jsonl"), dir.join("p.nmap"), dir.join("p.xml"));
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sS", "-n", "--no-progress", "-p", "22,23", "-oJ"])
        .arg(&json)
        .arg("-oN")
        .arg(&normal)
        .arg("-oX")
        .arg(&xml)
        .arg(&addr)
        .output()
        .expect("run portolan");
    assert_success(&out);
    let h = &read_jsonl(&json).hosts[0];
    assert!(h["os"].is_null(), "{h}");
    let d = &h["os_detection"];
    assert_eq!(d["active"], false, "{d}");
    assert_eq!(d["hint"]["family"], "Linux", "{d}");
    assert!(
        d["hint"]["evidence"]
            .as_str()
            .unwrap()
            .starts_with("syn-ack ttl=64 (initial 64) win=FAF0 mss=5B4"),
        "{d}"
    );
    let text = std::fs::read_to_string(&normal).unwrap();
    assert!(
        text.contains("OS hint (passive, not a match): Linux"),
        "{text}"
    );
    assert!(
        !text.contains("OS details") && !text.contains("Running"),
        "{text}"
    );
    let xml = std::fs::read_to_string(&xml).unwrap();
    assert!(!xml.contains("<os>"), "{xml}");
}
