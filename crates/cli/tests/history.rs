//! The scan history through the binary, on loopback: scans recorded and
//! read back, ports opened and closed between two scans and the diffs of
//! them (text, JSON, ndiff's XML beside ndiff's own, exit codes 0/1/2),
//! `--on-change`, a scan killed with SIGKILL, and nmap's own XML imported
//! and compared with Portolan's scan of the same host.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{assert_success, portolan_bin, scratch_dir};

/// `portolan ARGS --db DB`.
fn with_db(db: &Path, args: &[&str]) -> Output {
    Command::new(portolan_bin())
        .args(args)
        .arg("--db")
        .arg(db)
        .output()
        .expect("run portolan")
}

/// A connect scan of `ports` on 127.0.0.1, recorded in `db`, with `extra`
/// flags.
fn scan(db: &Path, ports: &[u16], extra: &[&str]) -> Output {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let mut args = vec!["-n", "-sT", "-Pn", "--no-progress", "-p"];
    let list = list.join(",");
    args.push(&list);
    args.extend_from_slice(extra);
    args.push("127.0.0.1");
    with_db(db, &args)
}

fn scans(db: &Path) -> Vec<Value> {
    let out = with_db(db, &["history", "--json"]);
    assert_success(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A port with nothing listening (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn listen(port: u16) -> TcpListener {
    TcpListener::bind(("127.0.0.1", port)).expect("listen again on the port")
}

struct TwoScans {
    dir: PathBuf,
    db: PathBuf,
    p: u16,
    q: u16,
    ids: [String; 2],
}

/// Scan 1: p open, q closed. Scan 2: p closed, q open. Both also to XML.
fn two_scans() -> TwoScans {
    let dir = scratch_dir();
    let db = dir.join("history.sqlite");
    let first = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = first.local_addr().unwrap().port();
    let q = closed_port();
    let a_xml = dir.join("a.xml");
    assert_success(&scan(&db, &[p, q], &["-oX", a_xml.to_str().unwrap()]));
    drop(first);
    let second = listen(q);
    let b_xml = dir.join("b.xml");
    assert_success(&scan(&db, &[p, q], &["-oX", b_xml.to_str().unwrap()]));
    drop(second);
    let listed = scans(&db);
    assert_eq!(listed.len(), 2);
    let id = |i: usize| listed[i]["id"].as_str().unwrap().to_string();
    TwoScans {
        dir,
        db,
        p,
        q,
        ids: [id(1), id(0)],
    }
}

#[test]
fn a_scan_is_recorded_and_reads_back_whole() {
    let dir = scratch_dir();
    let db = dir.join("h.sqlite");
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = open.local_addr().unwrap().port();
    let q = closed_port();
    assert_success(&scan(&db, &[p, q], &[]));
    let listed = scans(&db);
    assert_eq!(listed.len(), 1);
    let s = &listed[0];
    assert_eq!(s["complete"], true);
    assert_eq!(
        (s["hosts"].as_u64(), s["hosts_up"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(s["targets"], "127.0.0.1");
    let id = s["id"].as_str().unwrap();

    let shown = assert_success(&with_db(&db, &["history", "show", id, "-oJ"]));
    let ports: Vec<Value> = shown
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "port")
        .collect();
    let state_of = |port: u16| {
        ports
            .iter()
            .find(|x| x["port"] == port)
            .map(|x| x["state"].as_str().unwrap().to_string())
    };
    assert_eq!(state_of(p).as_deref(), Some("open"), "{shown}");
    assert_eq!(state_of(q).as_deref(), Some("closed"), "{shown}");
    let normal = assert_success(&with_db(&db, &["history", "show", id]));
    assert!(normal.contains(&format!("{p}/tcp")), "{normal}");

    let host = assert_success(&with_db(&db, &["history", "host", "127.0.0.1", "--json"]));
    let host: Value = serde_json::from_str(host.trim()).unwrap();
    assert_eq!(host["statuses"].as_array().unwrap().len(), 1);
    assert_eq!(host["ports"].as_array().unwrap().len(), 2);

    // Unknown IDs and bad arguments: one line, non-zero.
    let out = with_db(&db, &["history", "show", "ffffffff-ffff"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no scan"));
    let out = with_db(&db, &["history", "host", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn diff_reports_ports_opened_and_closed_with_ndiff_exit_codes() {
    let t = two_scans();
    let [a, b] = &t.ids;
    let out = with_db(&t.db, &["diff", a, b]);
    assert_eq!(out.status.code(), Some(1), "different");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("-{}/tcp", t.p)), "{text}");
    assert!(text.contains(&format!("+{}/tcp", t.q)), "{text}");

    let last = with_db(&t.db, &["diff", "--last", "--json"]);
    assert_eq!(last.status.code(), Some(1));
    let d: Value = serde_json::from_slice(&last.stdout).unwrap();
    assert_eq!(d["differs"], true);
    assert_eq!(d["a"]["id"], a.as_str());
    let ports = d["hosts"][0]["ports"].as_array().unwrap();
    let change = |port: u16| {
        ports
            .iter()
            .find(|x| x["port"] == port)
            .map(|x| x["change"].as_str().unwrap().to_string())
    };
    assert_eq!(change(t.p).as_deref(), Some("closed"));
    assert_eq!(change(t.q).as_deref(), Some("opened"));

    let same = with_db(&t.db, &["diff", a, a]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    assert!(String::from_utf8_lossy(&same.stdout).contains("No differences."));

    // --help says how weak evidence is confirmed.
    let help = assert_success(&with_db(&t.db, &["diff", "--help"]));
    assert!(help.contains("Confirmation: weak evidence"), "{help}");
    assert!(help.contains("open|filtered"), "{help}");

    let missing = with_db(&t.db, &["diff", a, "0000ffff"]);
    assert_eq!(missing.status.code(), Some(2));
    let usage = with_db(&t.db, &["diff", a]);
    assert_eq!(usage.status.code(), Some(2));
}

/// The (portid, a state, b state) of each `<portdiff>` in an ndiff XML.
fn portdiffs(xml: &str) -> Vec<(String, String, String)> {
    let attr = |s: &str, name: &str| -> Option<String> {
        let start = s.find(&format!("{name}=\""))? + name.len() + 2;
        Some(s[start..].split('"').next()?.to_string())
    };
    let mut out = Vec::new();
    for part in xml.split("<portdiff>").skip(1) {
        let part = part.split("</portdiff>").next().unwrap_or("");
        let side = |tag: &str| {
            part.split(&format!("<{tag}>"))
                .nth(1)
                .and_then(|s| attr(s, "state"))
                .unwrap_or_default()
        };
        out.push((
            attr(part, "portid").unwrap_or_default(),
            side("a"),
            side("b"),
        ));
    }
    out.sort();
    out
}

#[test]
fn the_xml_diff_says_what_ndiff_says() {
    if Command::new("ndiff").arg("--help").output().is_err() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true and ndiff is missing");
        }
        eprintln!("SKIPPED: ndiff is not installed");
        return;
    }
    let t = two_scans();
    let (a, b) = (t.dir.join("a.xml"), t.dir.join("b.xml"));
    let ours = with_db(
        &t.db,
        &["diff", "--xml", a.to_str().unwrap(), b.to_str().unwrap()],
    );
    assert_eq!(ours.status.code(), Some(1));
    let theirs = Command::new("ndiff")
        .arg("--xml")
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(theirs.status.code(), Some(1));
    let (ours, theirs) = (
        String::from_utf8_lossy(&ours.stdout).into_owned(),
        String::from_utf8_lossy(&theirs.stdout).into_owned(),
    );
    assert!(ours.contains("<nmapdiff version=\"1\">"), "{ours}");
    let want = portdiffs(&theirs);
    assert_eq!(want.len(), 2, "{theirs}");
    assert_eq!(portdiffs(&ours), want, "ours:\n{ours}\nndiff:\n{theirs}");
    let lint = Command::new("xmllint")
        .arg("--noout")
        .arg("-")
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(ours.as_bytes())?;
            c.wait()
        });
    if let Ok(status) = lint {
        assert!(status.success(), "not well-formed:\n{ours}");
    }
}

/// An nmap XML file of `hosts` (each `<host>`'s inside), as nmap writes
/// them.
fn nmap_xml(start: u64, hosts: &[&str]) -> String {
    let mut x = format!(
        "<?xml version=\"1.0\"?>\n<nmaprun scanner=\"nmap\" args=\"nmap -sS -sV -sC -O 198.18.0.2-3\" \
         start=\"{start}\" startstr=\"x\" version=\"7.93\" xmloutputversion=\"1.05\">\n\
         <scaninfo type=\"syn\" protocol=\"tcp\" numservices=\"1000\" services=\"1-1000,8080\"/>\n"
    );
    for h in hosts {
        x.push_str(&format!(
            "<host starttime=\"{start}\" endtime=\"{start}\"><status state=\"up\" reason=\"echo-reply\" reason_ttl=\"64\"/>\n{h}</host>\n"
        ));
    }
    x.push_str(&format!(
        "<runstats><finished time=\"{}\" timestr=\"x\" elapsed=\"9\" exit=\"success\"/>\
         <hosts up=\"{}\" down=\"0\" total=\"{}\"/></runstats></nmaprun>\n",
        start + 9,
        hosts.len(),
        hosts.len()
    ));
    x
}

/// A diff XML canonically, as ndiff's consumers read it: elements with
/// their attributes and children, order aside; what Portolan adds beyond
/// ndiff (a state's reason, a service's CPEs) and the scans' `nmaprun`
/// (ndiff writes its times in local time) left out.
fn canonical_diff_xml(xml: &str) -> String {
    let script = r#"
import sys, xml.etree.ElementTree as ET
def canon(e):
    if e.tag in ("cpe", "nmaprun"):
        return None
    attrs = sorted((k, v) for k, v in e.attrib.items() if k != "reason")
    kids = sorted(filter(None, (canon(c) for c in e)))
    if e.tag in ("a", "b") and not kids:
        return None
    return "%s%s[%s]" % (e.tag, attrs, ",".join(kids))
root = ET.fromstring(sys.stdin.read())
assert root.tag == "nmapdiff" and root.get("version") == "1", root.tag
print(canon(root))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(xml.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "not ndiff's XML:\n{xml}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_xml_diff_carries_scripts_os_and_extraports_as_ndiff_does() {
    if Command::new("ndiff").arg("--help").output().is_err() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true and ndiff is missing"
        );
        eprintln!("SKIPPED: ndiff is not installed");
        return;
    }
    let dir = scratch_dir();
    let addr = "<address addr=\"198.18.0.2\" addrtype=\"ipv4\"/>\n<hostnames></hostnames>\n";
    let port = |id: u16, state: &str, reason: &str, service: &str, scripts: &str| {
        format!(
            "<port protocol=\"tcp\" portid=\"{id}\"><state state=\"{state}\" reason=\"{reason}\" reason_ttl=\"64\"/>{service}{scripts}</port>\n"
        )
    };
    let ssh = "<service name=\"ssh\" product=\"OpenSSH\" version=\"9.2p1 Debian 2\" extrainfo=\"protocol 2.0\" method=\"probed\" conf=\"10\"/>";
    let web = "<service name=\"http\" product=\"nginx\" version=\"1.22.1\" method=\"probed\" conf=\"10\"/>";
    let https = "<service name=\"https\" method=\"table\" conf=\"3\"/>";
    let proxy = "<service name=\"http-proxy\" method=\"table\" conf=\"3\"/>";
    let key = "<script id=\"ssh-hostkey\" output=\"256 aa:bb (ED25519)\"/>";
    let a_host = format!(
        "{addr}<ports><extraports state=\"filtered\" count=\"997\"><extrareasons reason=\"no-response\" count=\"997\"/></extraports>\n{}{}{}</ports>\n\
         <os><osmatch name=\"Linux 5.0 - 5.14\" accuracy=\"100\" line=\"1\"/></os>\n\
         <hostscript><script id=\"clock-skew\" output=\"0s\"/></hostscript>\n",
        port(22, "open", "syn-ack", ssh, key),
        port(
            80,
            "open",
            "syn-ack",
            web,
            "<script id=\"http-title\" output=\"Old &amp; tired\"/>"
        ),
        port(443, "open", "syn-ack", https, ""),
    );
    let b_host = format!(
        "{addr}<ports><extraports state=\"filtered\" count=\"996\"><extrareasons reason=\"no-response\" count=\"996\"/></extraports>\n{}{}{}{}</ports>\n\
         <os><osmatch name=\"Linux 4.15 - 5.8\" accuracy=\"96\" line=\"2\"/></os>\n\
         <hostscript><script id=\"clock-skew\" output=\"1s\"/></hostscript>\n",
        port(22, "open", "syn-ack", ssh, key),
        port(
            80,
            "open",
            "syn-ack",
            web,
            "<script id=\"http-title\" output=\"New &lt;b&gt;\"/>"
        ),
        port(443, "closed", "reset", https, ""),
        port(8080, "closed", "reset", proxy, ""),
    );
    let new_host = format!(
        "<address addr=\"198.18.0.3\" addrtype=\"ipv4\"/>\n<hostnames></hostnames>\n\
         <ports><extraports state=\"filtered\" count=\"999\"><extrareasons reason=\"no-response\" count=\"999\"/></extraports>\n{}</ports>\n\
         <os><osmatch name=\"FreeBSD 13.0\" accuracy=\"98\" line=\"3\"/></os>\n",
        port(22, "open", "syn-ack", ssh, ""),
    );
    let (a, b) = (dir.join("a.xml"), dir.join("b.xml"));
    std::fs::write(&a, nmap_xml(1_795_000_000, &[&a_host])).unwrap();
    std::fs::write(&b, nmap_xml(1_795_086_400, &[&b_host, &new_host])).unwrap();

    let theirs = Command::new("ndiff")
        .arg("--xml")
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(theirs.status.code(), Some(1));
    let db = dir.join("h.sqlite");
    let (a_path, b_path) = (a.to_str().unwrap(), b.to_str().unwrap());
    let ours = with_db(&db, &["diff", "--xml", a_path, b_path]);
    assert_eq!(
        ours.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let (ours, theirs) = (
        String::from_utf8_lossy(&ours.stdout).into_owned(),
        String::from_utf8_lossy(&theirs.stdout).into_owned(),
    );
    for x in [&ours, &theirs] {
        assert!(
            x.contains("<a><nmaprun") && x.contains("<b><nmaprun"),
            "{x}"
        );
    }
    assert_eq!(
        canonical_diff_xml(&ours),
        canonical_diff_xml(&theirs),
        "ours:\n{ours}\nndiff:\n{theirs}"
    );
    // The text and JSON say the same.
    let text = with_db(&db, &["diff", a_path, b_path]);
    let text = String::from_utf8_lossy(&text.stdout);
    for want in [
        "-Not shown: 997 filtered ports",
        "+Not shown: 996 filtered ports",
        "-|_ http-title: Old & tired",
        "+|_ http-title: New <b>",
        "-  Linux 5.0 - 5.14",
        "+  Linux 4.15 - 5.8",
        "Host script results:",
        "+|_ clock-skew: 1s",
        "+  FreeBSD 13.0",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
}

#[test]
fn on_change_runs_the_command_with_the_diff_on_its_input() {
    let dir = scratch_dir();
    let db = dir.join("h.sqlite");
    let changes = dir.join("changes.json");
    let hook = format!("cat >> {}", changes.display());
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = open.local_addr().unwrap().port();
    let q = closed_port();
    // The first scan has nothing to compare with; the second is the same.
    assert_success(&scan(&db, &[p, q], &["--on-change", &hook]));
    assert_success(&scan(&db, &[p, q], &["--on-change", &hook]));
    assert!(!changes.exists(), "no change, no command");
    drop(open);
    assert_success(&scan(&db, &[p, q], &["--on-change", &hook]));
    let text = std::fs::read_to_string(&changes).expect("the command ran");
    let d: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(d["differs"], true);
    assert_eq!(d["hosts"][0]["ports"][0]["port"], p);
    assert_eq!(d["hosts"][0]["ports"][0]["change"], "closed");
    // --on-change needs a history.
    let out = Command::new(portolan_bin())
        .args([
            "-n",
            "-sT",
            "-p",
            "1",
            "--no-db",
            "--on-change",
            "true",
            "127.0.0.1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_scan_killed_with_sigkill_keeps_its_finished_hosts_and_stays_unfinished() {
    let dir = scratch_dir();
    let db = dir.join("h.sqlite");
    let hosts = [
        "127.0.0.1",
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.4",
        "127.0.0.5",
        "127.0.0.6",
    ];
    let mut child = Command::new(portolan_bin())
        .args([
            "-n",
            "-sT",
            "-Pn",
            "-p",
            "1-200",
            "--max-rate",
            "200",
            "--max-hostgroup",
            "1",
        ])
        .arg("--db")
        .arg(&db)
        .args(hosts)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = if db.exists() { scans(&db) } else { Vec::new() };
        if listed
            .first()
            .is_some_and(|s| s["hosts"].as_u64() >= Some(1))
        {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no host was recorded");
        }
        assert!(child.try_wait().unwrap().is_none(), "the scan ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let listed = scans(&db);
    assert_eq!(listed.len(), 1);
    let s = &listed[0];
    assert_eq!(s["end"], Value::Null, "marked unfinished");
    assert_eq!(s["complete"], false);
    let recorded = s["hosts"].as_u64().unwrap();
    assert!(
        (1..hosts.len() as u64).contains(&recorded),
        "{recorded} hosts"
    );
    let listing = assert_success(&with_db(&db, &["history"]));
    assert!(listing.contains("unfinished"), "{listing}");
    // Every recorded host is whole: all 200 ports.
    let shown = assert_success(&with_db(
        &db,
        &["history", "show", s["id"].as_str().unwrap(), "-oJ"],
    ));
    let lines: Vec<Value> = shown
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect();
    let host_lines: Vec<&Value> = lines.iter().filter(|v| v["type"] == "host").collect();
    assert_eq!(host_lines.len() as u64, recorded);
    for h in &host_lines {
        let ports = lines
            .iter()
            .filter(|v| v["type"] == "port" && v["addr"] == h["addr"])
            .count();
        assert_eq!(ports, 200, "{h}");
    }
    // The history still takes scans, and --last ignores the cut one.
    assert_success(&scan(&db, &[1], &[]));
    let out = with_db(&db, &["diff", "--last"]);
    assert_eq!(out.status.code(), Some(2), "one complete scan only");
}

#[test]
fn nmap_xml_imports_and_shows_no_state_difference_with_portolan() {
    if Command::new("nmap").arg("--version").output().is_err() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true and nmap is missing");
        }
        eprintln!("SKIPPED: nmap is not installed");
        return;
    }
    let dir = scratch_dir();
    let db = dir.join("h.sqlite");
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = open.local_addr().unwrap().port();
    let q = closed_port();
    let ports = format!("{p},{q}");
    let xml = dir.join("nmap.xml");
    let out = Command::new("nmap")
        .args(["-n", "-sT", "-Pn", "-p", &ports, "-oX"])
        .arg(&xml)
        .arg("127.0.0.1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let imported = assert_success(&with_db(&db, &["history", "import", xml.to_str().unwrap()]));
    assert!(imported.contains("imported nmap scan"), "{imported}");
    let again = assert_success(&with_db(&db, &["history", "import", xml.to_str().unwrap()]));
    assert!(again.contains("already in the history"), "{again}");
    assert_success(&scan(&db, &[p, q], &[]));
    let listed = scans(&db);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["scanner"], "nmap");
    assert_eq!(listed[1]["targets"], "127.0.0.1");
    let d = with_db(
        &db,
        &[
            "diff",
            listed[1]["id"].as_str().unwrap(),
            listed[0]["id"].as_str().unwrap(),
        ],
    );
    assert_eq!(
        d.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&d.stdout)
    );
    // And diff --last pairs them: same targets.
    assert_eq!(with_db(&db, &["diff", "--last"]).status.code(), Some(0));
    drop(open);
}

#[test]
fn audit_reports_violations_with_evidence_and_exits_one() {
    let dir = scratch_dir();
    let db = dir.join("h.sqlite");
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = open.local_addr().unwrap().port();
    let q = closed_port();
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, format!("[default]\ntcp = [22]\nclosed = [{q}]\n")).unwrap();
    let allowing = dir.join("allowing.toml");
    std::fs::write(
        &allowing,
        format!("[default]\ntcp = [{p}]\nclosed = [{q}]\n"),
    )
    .unwrap();

    // As the scan ends.
    let out = scan(&db, &[p, q], &["--policy", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("127.0.0.1 {p}/tcp not-allowed")),
        "{text}"
    );
    assert!(text.contains("evidence: open (syn-ack"), "{text}");
    let out = scan(&db, &[p, q], &["--policy", allowing.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Afterwards, on the latest scan of the history.
    let out = with_db(
        &db,
        &["audit", "--policy", policy.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["violations"][0]["port"], p);
    assert_eq!(report["violations"][0]["rule"], "not-allowed");
    let out = with_db(&db, &["audit", "--policy", allowing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    drop(open);
}

#[test]
fn a_broken_policy_is_one_error_with_line_and_column() {
    let dir = scratch_dir();
    let db = dir.join("h.sqlite");
    let policy = dir.join("bad.toml");
    std::fs::write(&policy, "[default]\ntcp = [70000]\n").unwrap();
    for args in [
        vec!["audit", "--policy", policy.to_str().unwrap(), "--risky"],
        vec![
            "-n",
            "-sT",
            "-p",
            "1",
            "--policy",
            policy.to_str().unwrap(),
            "127.0.0.1",
        ],
    ] {
        let out = with_db(&db, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("line 2, column 7"), "{stderr}");
        assert!(out.stdout.is_empty(), "nothing scanned");
    }
}

#[test]
fn risky_exposures_in_a_masscan_file_are_named_with_references() {
    let dir = scratch_dir();
    let list = dir.join("masscan.txt");
    std::fs::write(
        &list,
        "#masscan\nopen tcp 23 198.18.0.5 1764000000\nopen udp 1900 198.18.0.5 1764000001\nopen tcp 22 198.18.0.5 1764000002\n# end\n",
    )
    .unwrap();
    let out = with_db(
        &dir.join("h.sqlite"),
        &["audit", "--risky", list.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("198.18.0.5 23/tcp risky: telnet"), "{text}");
    assert!(text.contains("reference: US-CERT TA14-017A"), "{text}");
    assert!(!text.contains("22/tcp"), "{text}");
}

/// A server on 127.0.0.1 that greets with the banner it holds, until
/// dropped.
struct BannerServer {
    port: u16,
    banner: std::sync::Arc<std::sync::Mutex<&'static str>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BannerServer {
    fn start(banner: &'static str) -> BannerServer {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let banner = std::sync::Arc::new(std::sync::Mutex::new(banner));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (b, s) = (banner.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let text = *b.lock().unwrap();
                        let _ = conn.write_all(text.as_bytes());
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        BannerServer {
            port,
            banner,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for BannerServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_service_version_changed_between_scans_is_reported() {
    let dir = scratch_dir();
    let db = dir.join("h.sqlite");
    let server = BannerServer::start("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
    assert_success(&scan(&db, &[server.port], &["-sV"]));
    *server.banner.lock().unwrap() = "SSH-2.0-OpenSSH_9.3p1 Debian-1\r\n";
    assert_success(&scan(&db, &[server.port], &["-sV"]));
    let out = with_db(&db, &["diff", "--last", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &d["hosts"][0]["ports"][0];
    assert_eq!(p["change"], "service");
    assert_eq!(p["a"]["service"], "ssh");
    assert!(p["a"]["version"].as_str().unwrap().contains("9.2p1"), "{p}");
    assert!(p["b"]["version"].as_str().unwrap().contains("9.3p1"), "{p}");
    // The port's history shows both runs.
    let host = assert_success(&with_db(&db, &["history", "host", "127.0.0.1"]));
    assert!(
        host.contains("OpenSSH 9.2p1") && host.contains("OpenSSH 9.3p1"),
        "{host}"
    );
    // The same version again is no change.
    assert_success(&scan(&db, &[server.port], &["-sV"]));
    assert_eq!(with_db(&db, &["diff", "--last"]).status.code(), Some(0));
    drop(server);
}

#[test]
fn on_change_reports_a_new_greeting_but_not_its_clock() {
    let dir = scratch_dir();
    let db = dir.join("h.sqlite");
    let changes = dir.join("changes.json");
    let hook = format!("cat >> {}", changes.display());
    let server =
        BannerServer::start("220 Lab FTP ready at Fri, 04 Dec 2026 22:01:39 +0000 (pid 4242)\r\n");
    assert_success(&scan(&db, &[server.port], &["-sV", "--on-change", &hook]));
    *server.banner.lock().unwrap() =
        "220 Lab FTP ready at Sat, 05 Dec 2026 03:10:00 +0000 (pid 5151)\r\n";
    assert_success(&scan(&db, &[server.port], &["-sV", "--on-change", &hook]));
    assert!(
        !changes.exists(),
        "a greeting's clock and pid are no change"
    );
    assert_eq!(with_db(&db, &["diff", "--last"]).status.code(), Some(0));
    *server.banner.lock().unwrap() = "220 Lab FTP ready; anonymous login allowed\r\n";
    assert_success(&scan(&db, &[server.port], &["-sV", "--on-change", &hook]));
    drop(server);
    let text = std::fs::read_to_string(&changes).expect("the command ran");
    let d: Value = serde_json::from_str(text.trim()).unwrap();
    let p = &d["hosts"][0]["ports"][0];
    assert_eq!(p["change"], "banner", "{p}");
    assert!(
        p["b"]["banner"]
            .as_str()
            .unwrap()
            .contains("anonymous login"),
        "{p}"
    );
    let out = with_db(&db, &["diff", "--last"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with('+') && l.contains("banner") && l.contains("anonymous")),
        "{text}"
    );
}

/// `openssl s_server` on 127.0.0.1 with a certificate, until dropped.
struct TlsServer(std::process::Child);

/// A self-signed certificate and key for `name`, valid `days`, made by
/// `openssl`; `None` when openssl is missing.
pub(crate) fn certificate(dir: &Path, name: &str, days: u32) -> Option<(PathBuf, PathBuf)> {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj"])
        .arg(format!("/CN={name}"))
        .args(["-days", &days.to_string(), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .ok()?;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    Some((cert, key))
}

impl TlsServer {
    fn start(dir: &Path, port: u16, name: &str, days: u32) -> Option<TlsServer> {
        let (cert, key) = certificate(dir, name, days)?;
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = TlsServer(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "openssl s_server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_rotated_certificate_is_reported_and_one_expiring_is_audited() {
    let dir = scratch_dir();
    let db = dir.join("h.sqlite");
    let port = closed_port();
    let Some(old) = TlsServer::start(&dir, port, "old.lab", 10) else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true and openssl is missing");
        }
        eprintln!("SKIPPED: openssl is not installed");
        return;
    };
    assert_success(&scan(&db, &[port], &["-sV"]));
    drop(old);
    let new = TlsServer::start(&dir, port, "new.lab", 400).unwrap();
    assert_success(&scan(&db, &[port], &["-sV"]));
    drop(new);
    let out = with_db(&db, &["diff", "--last", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &d["hosts"][0]["ports"][0];
    assert_eq!(p["change"], "certificate", "{p}");
    assert_eq!(p["a"]["cert"]["subject"], "CN=old.lab");
    assert_eq!(p["b"]["cert"]["subject"], "CN=new.lab");
    assert_eq!(
        d["expiring"].as_array().unwrap().len(),
        0,
        "the new one has 400 days"
    );
    // The old scan, audited for 30 days left, fails on its certificate.
    let listed = scans(&db);
    let old_id = listed[1]["id"].as_str().unwrap();
    let policy = dir.join("certs.toml");
    std::fs::write(&policy, "[default]\nmin_cert_days = 30\n").unwrap();
    let out = with_db(
        &db,
        &["audit", "--policy", policy.to_str().unwrap(), old_id],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("certificate CN=old.lab expires"), "{text}");
    let out = with_db(&db, &["audit", "--policy", policy.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn json_lines_and_a_killed_scans_xml_import() {
    let dir = scratch_dir();
    let db = dir.join("h.sqlite");
    let jsonl = dir.join("scan.jsonl");
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = open.local_addr().unwrap().port();
    let out = Command::new(portolan_bin())
        .args(["-n", "-sT", "-Pn", "--no-db", "-p", &p.to_string(), "-oJ"])
        .arg(&jsonl)
        .arg("127.0.0.1")
        .output()
        .unwrap();
    assert_success(&out);
    let imported = assert_success(&with_db(
        &db,
        &["history", "import", jsonl.to_str().unwrap()],
    ));
    assert!(imported.contains("imported portolan scan"), "{imported}");
    let listed = scans(&db);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["complete"], true);
    assert_eq!(listed[0]["hosts_up"], 1);
    // An XML file cut after its first host: imported, and unfinished.
    let xml = dir.join("cut.xml");
    let full = dir.join("full.xml");
    let out = Command::new(portolan_bin())
        .args(["-n", "-sT", "-Pn", "--no-db", "-p", &p.to_string(), "-oX"])
        .arg(&full)
        .args(["127.0.0.1", "127.0.0.2"])
        .output()
        .unwrap();
    assert_success(&out);
    let text = std::fs::read_to_string(&full).unwrap();
    let cut = &text[..text.find("</host>").unwrap() + "</host>\n".len()];
    std::fs::write(&xml, cut).unwrap();
    assert_success(&with_db(&db, &["history", "import", xml.to_str().unwrap()]));
    let listed = scans(&db);
    assert_eq!(listed.len(), 2);
    let cut_scan = listed
        .iter()
        .find(|s| s["hosts"] == 1 && s["complete"] == false);
    assert!(cut_scan.is_some(), "{listed:?}");
    // Garbage is one error, status 1.
    let junk = dir.join("junk.txt");
    std::fs::write(&junk, "hello\n").unwrap();
    let out = with_db(&db, &["history", "import", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    drop(open);
}

/// A throw-away PostgreSQL cluster on `port` (`None`: skipped loudly, or
/// a failure under CI).
fn postgres_cluster(port: u16) -> Option<portolan_lab::PostgresCluster> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let cluster = if root {
        portolan_lab::PostgresCluster::start(&scratch_dir().join("pg"), port)
            .map_err(|e| e.to_string())
    } else {
        Err("not root".to_string())
    };
    match cluster {
        Ok(c) => Some(c),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true and PostgreSQL cannot start: {e}");
            }
            eprintln!("SKIPPED: PostgreSQL cannot start here: {e}");
            None
        }
    }
}

#[test]
fn scans_recorded_in_postgresql_diff_as_in_sqlite() {
    let Some(cluster) = postgres_cluster(54_333) else {
        return;
    };
    let url = cluster.create_database("history").unwrap();
    let db = PathBuf::from(&url);
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = open.local_addr().unwrap().port();
    let q = closed_port();
    assert_success(&scan(&db, &[p, q], &[]));
    drop(open);
    let second = listen(q);
    assert_success(&scan(&db, &[p, q], &[]));
    drop(second);
    let listed = scans(&db);
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|s| s["complete"] == true));
    let out = with_db(&db, &["diff", "--last", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["hosts"][0]["ports"].as_array().unwrap().len(), 2);
    let host = assert_success(&with_db(&db, &["history", "host", "127.0.0.1", "--json"]));
    let host: Value = serde_json::from_str(host.trim()).unwrap();
    assert_eq!(
        host["ports"].as_array().unwrap().len(),
        4,
        "two runs per port"
    );
}

#[test]
fn ports_opened_closed_and_dropped_on_a_lab_host_show_in_the_diff() {
    use portolan_lab::{Lab, lab_or_skip};
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let db = scratch_dir().join("h.sqlite");
    let target = host.ipv4().to_string();
    let syn_scan = || {
        let out = lab
            .scanner()
            .command(portolan_bin())
            .args(["-n", "-Pn", "-sS", "--no-progress", "-p", "22,80,443,8443"])
            .arg("--db")
            .arg(&db)
            .arg(&target)
            .output()
            .expect("run portolan in the lab");
        assert_success(&out);
    };
    let ssh = host.listen_tcp([22]).expect("listen");
    let web = host.listen_tcp([80]).expect("listen");
    syn_scan();
    drop(web);
    let tls = host.listen_tcp([443]).expect("listen");
    host.drop_tcp(8443).expect("drop rule");
    syn_scan();
    let out = with_db(&db, &["diff", "--last", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    let changes: Vec<(u64, String)> = d["hosts"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_u64().unwrap(),
                p["change"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (80, "closed".to_string()),
            (443, "opened".to_string()),
            (8443, "filtered".to_string())
        ]
    );
    assert_eq!(d["hosts"][0]["ports"][2]["b"]["reason"], "no-response");
    let history = assert_success(&with_db(&db, &["history", "host", &target, "--json"]));
    let history: Value = serde_json::from_str(history.trim()).unwrap();
    let runs = history["ports"].as_array().unwrap();
    let port22: Vec<&Value> = runs.iter().filter(|r| r["port"] == 22).collect();
    assert_eq!(port22.len(), 1, "22 stayed open: one run");
    assert_eq!(port22[0]["scans"], 2);
    drop((ssh, tls));
}

#[test]
fn a_postgres_password_stays_out_of_every_output_file() {
    let Some(cluster) = postgres_cluster(54_334) else {
        return;
    };
    let url = cluster.create_database("secrets").unwrap();
    let dir = scratch_dir();
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = open.local_addr().unwrap().port().to_string();
    // The password in the query, then in the user part of `--db=URL`.
    let (query, rest) = url.split_once('?').unwrap();
    let forms = [
        vec!["--db".to_string(), format!("{url}&password=s3cretpw")],
        vec![format!(
            "--db={}postgres:s3cretpw@{}?{rest}",
            &query[..query.find("///").unwrap() + 2],
            &query[query.find("///").unwrap() + 2..]
        )],
    ];
    for (i, db) in forms.iter().enumerate() {
        let base = dir.join(format!("scan{i}"));
        let out = Command::new(portolan_bin())
            .args(["-n", "-sT", "-Pn", "--no-progress", "-p", &p, "-oA"])
            .arg(&base)
            .arg("-oJ")
            .arg(base.with_extension("jsonl"))
            .args(db)
            .arg("127.0.0.1")
            .output()
            .unwrap();
        assert_success(&out);
        assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cret"));
        for ext in ["xml", "nmap", "gnmap", "jsonl"] {
            let file = base.with_extension(ext);
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(!text.contains("s3cret"), "{}: {text}", file.display());
            assert!(text.contains("secrets"), "the URL is still there: {text}");
        }
    }
    drop(open);
    let listed = scans(&PathBuf::from(&url));
    assert_eq!(listed.len(), 2);
    for s in &listed {
        let args = s["args"].as_str().unwrap();
        assert!(
            !args.contains("s3cret") && args.contains("secrets"),
            "{args}"
        );
    }
}
