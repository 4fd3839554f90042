//! nmap's consumers read Portolan's files: the XML validates against
//! nmap.dtd, python-libnmap loads the right hosts, ports and services,
//! xsltproc renders nmap.xsl, ndiff compares Portolan with Portolan and
//! with nmap itself (run on the same lab host in the same test), and the
//! grepable and normal files of `-oA` say the same.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use portolan_lab::{Host, Lab, lab_or_skip};

use crate::output_tools::{assert_dtd_valid, libnmap_hosts, run, tools_or_skip};
use crate::util::{assert_success, portolan_bin, scratch_dir};

const OPEN: [u16; 3] = [22, 80, 443];
const DROPPED: std::ops::RangeInclusive<u16> = 1000..=1004;
/// 1-100 and 443 (open, closed), 1000-1004 (dropped): 106 ports.
const PORTS: &str = "1-100,443,1000-1004";

fn furnish(host: &Host) -> portolan_lab::TcpService {
    let service = host.listen_tcp(OPEN).expect("listeners");
    host.drop_tcp(DROPPED).expect("drop rule");
    service
}

/// Runs `portolan -sT -T4 --reason -p PORTS <extra> TARGET` in the lab's
/// scanner namespace.
fn scan(lab: &Lab, target: &str, extra: &[&str]) -> String {
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sT", "-T4", "--reason", "--no-progress", "-p", PORTS])
        .args(extra)
        .arg(target)
        .output()
        .expect("run portolan in the lab");
    assert_success(&out)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn xml_is_dtd_valid_and_libnmap_and_xsltproc_read_it() {
    tools_or_skip!(xmllint, libnmap, xsltproc);
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = furnish(host);
    let v4 = host.ipv4().to_string();
    let dir = scratch_dir();
    let base = dir.join("scan");
    let stdout = scan(&lab, &v4, &["-oA", path_str(&base)]);
    assert!(stdout.contains("Portolan done"), "{stdout}");
    let xml = base.with_extension("xml");
    assert_dtd_valid(&xml);

    let hosts = libnmap_hosts(&xml, false);
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    let h = &hosts[0];
    assert_eq!(h.address, v4);
    assert_eq!(h.status, "up");
    let listed: BTreeMap<u16, (&str, &str, &str)> = h
        .ports
        .iter()
        .map(|(port, proto, state, service, reason)| {
            assert_eq!(proto, "tcp");
            (*port, (state.as_str(), service.as_str(), reason.as_str()))
        })
        .collect();
    // Open ports are listed with their services, the five dropped ports
    // (fewer than nmap's 26) are listed too, and the 98 closed ones are
    // summarised.
    assert_eq!(listed[&22], ("open", "ssh", "syn-ack"));
    assert_eq!(listed[&80], ("open", "http", "syn-ack"));
    assert_eq!(listed[&443], ("open", "https", "syn-ack"));
    for port in DROPPED {
        assert_eq!(listed[&port].0, "filtered", "port {port}");
        assert_eq!(listed[&port].2, "no-response", "port {port}");
    }
    assert_eq!(listed.len(), 3 + DROPPED.count());
    assert_eq!(h.extra.get("closed"), Some(&98), "{:?}", h.extra);

    // nmap's stylesheet renders it.
    let html = dir.join("scan.html");
    let out = run(Command::new("xsltproc")
        .arg("-o")
        .arg(&html)
        .arg("/usr/share/nmap/nmap.xsl")
        .arg(&xml));
    assert!(
        out.status.success(),
        "xsltproc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains(&v4), "the page names the host");
    for (port, service) in [(22, "ssh"), (80, "http"), (443, "https")] {
        assert!(page.contains(&format!("<td>{port}</td>")), "{port} missing");
        // nmap.xsl follows the name with a no-break space (then product).
        assert!(
            page.contains(&format!("<td>{service}\u{a0}")),
            "{service} missing"
        );
    }

    // The grepable and normal files of -oA agree.
    let gnmap = std::fs::read_to_string(base.with_extension("gnmap")).unwrap();
    let ports_line = gnmap
        .lines()
        .find(|l| l.starts_with(&format!("Host: {v4} ()\tPorts: ")))
        .unwrap_or_else(|| panic!("no Ports line:\n{gnmap}"));
    for entry in [
        "22/open/tcp//ssh///",
        "80/open/tcp//http///",
        "443/open/tcp//https///",
    ] {
        assert!(ports_line.contains(entry), "{ports_line}");
    }
    assert!(ports_line.contains("1000/filtered/tcp//"), "{ports_line}");
    assert!(
        ports_line.ends_with("\tIgnored State: closed (98)"),
        "{ports_line}"
    );
    assert!(gnmap.contains(&format!("Host: {v4} ()\tStatus: Up\n")));
    assert!(gnmap.lines().last().unwrap().starts_with("# Nmap done at "));
    let normal = std::fs::read_to_string(base.with_extension("nmap")).unwrap();
    assert!(normal.contains("Not shown: 98 closed tcp ports (conn-refused)"));
}

/// The port lines of an ndiff text report: `+22/tcp open ...` and the like.
fn ndiff_port_lines(report: &str) -> Vec<String> {
    report
        .lines()
        .filter(|l| l.starts_with(['+', '-']) && l.contains("/tcp"))
        .map(str::to_string)
        .collect()
}

fn ndiff(a: &Path, b: &Path) -> (Option<i32>, String) {
    let out = run(Command::new("ndiff").arg(a).arg(b));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.code() != Some(2),
        "ndiff failed on {} and {}:\n{}{text}",
        a.display(),
        b.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn ndiff_compares_portolan_with_portolan_and_with_nmap() {
    tools_or_skip!(ndiff, nmap, xmllint);
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = furnish(host);
    let v4 = host.ipv4().to_string();
    let dir = scratch_dir();
    let first = dir.join("first.xml");
    scan(&lab, &v4, &["-oX", path_str(&first)]);

    // A service appears between two scans: ndiff reports exactly it.
    let extra = host.listen_tcp([8080]).expect("listener");
    let second = dir.join("second.xml");
    let second_ports = format!("{PORTS},8080");
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sT", "-T4", "--no-progress", "-p", &second_ports, "-oX"])
        .arg(&second)
        .arg(&v4)
        .output()
        .unwrap();
    assert_success(&out);
    let (code, report) = ndiff(&first, &second);
    assert_eq!(code, Some(1), "the scans differ:\n{report}");
    let lines = ndiff_port_lines(&report);
    assert_eq!(lines.len(), 1, "{report}");
    assert!(
        lines[0].starts_with("+8080/tcp") && lines[0].contains("open"),
        "{report}"
    );
    drop(extra);

    // nmap scans the same host the same way: no port differs.
    let reference = dir.join("nmap.xml");
    let out = lab
        .scanner()
        .command("nmap")
        .args(["-sT", "-Pn", "-n", "-T4", "--reason", "-p", PORTS, "-oX"])
        .arg(&reference)
        .arg(&v4)
        .output()
        .expect("run nmap in the lab");
    assert!(out.status.success(), "nmap failed: {out:?}");
    assert_dtd_valid(&reference);
    let (_, report) = ndiff(&reference, &first);
    // Every port has the same state. The only differences allowed are
    // service names that nmap-services has and Portolan's smaller port
    // table lacks ("unknown").
    let mut by_port: BTreeMap<String, Vec<(char, String, String)>> = BTreeMap::new();
    for line in ndiff_port_lines(&report) {
        let mut words = line[1..].split_whitespace();
        let (port, state, service) = (words.next(), words.next(), words.next());
        by_port.entry(port.unwrap().to_string()).or_default().push((
            line.chars().next().unwrap(),
            state.unwrap_or_default().to_string(),
            service.unwrap_or_default().to_string(),
        ));
    }
    for (port, sides) in &by_port {
        let [(minus, nmap_state, _), (plus, ours, our_service)] = &sides[..] else {
            panic!("port {port} is not in both scans:\n{report}");
        };
        assert_eq!((*minus, *plus), ('-', '+'), "{report}");
        assert_eq!(nmap_state, ours, "port {port}:\n{report}");
        assert_eq!(our_service, "unknown", "port {port}:\n{report}");
    }
    // What differs is the scanner line only.
    assert!(report.contains("-Nmap "), "{report}");
    assert!(report.contains("+Nmap 0."), "{report}");
    assert!(report.contains("/portolan -sT "), "{report}");

    // `portolan report` reads nmap's own file too.
    let page = dir.join("nmap.html");
    assert_success(&crate::util::portolan(&[
        "report",
        path_str(&reference),
        "-o",
        path_str(&page),
    ]));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("Nmap 7."), "the page names nmap");
    assert!(html.contains(&format!("data-addr=\"{v4}\"")));
    for port in OPEN {
        assert!(html.contains(&format!(
            "<td>{port}/tcp</td><td class=\"st-open\">open</td>"
        )));
    }
}

#[test]
fn xml_to_standard_output_from_loopback_is_valid() {
    tools_or_skip!(xmllint);
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let open = listener.local_addr().unwrap().port();
    let spec = format!("{open},1-30");
    let out = crate::util::portolan(&["-sT", "-p", &spec, "-oX", "-", "127.0.0.1"]);
    let stdout = assert_success(&out);
    assert!(stdout.starts_with("<?xml version=\"1.0\""), "{stdout}");
    assert!(!stdout.contains("Portolan done:"), "normal output mixed in");
    let file: PathBuf = scratch_dir().join("stdout.xml");
    std::fs::write(&file, &stdout).unwrap();
    assert_dtd_valid(&file);
    assert!(stdout.contains(&format!(
        "<port protocol=\"tcp\" portid=\"{open}\"><state state=\"open\" reason=\"syn-ack\""
    )));
    assert!(stdout.contains("<extraports state=\"closed\" count=\"30\">"));
}

#[test]
fn append_output_adds_a_second_run_to_each_file() {
    let dir = scratch_dir();
    let gnmap = dir.join("runs.gnmap");
    let normal = dir.join("runs.nmap");
    for _ in 0..2 {
        let out = crate::util::portolan(&[
            "-sT",
            "-p",
            "1-5",
            "--append-output",
            "-oG",
            path_str(&gnmap),
            "-oN",
            path_str(&normal),
            "127.0.0.1",
        ]);
        assert_success(&out);
    }
    let text = std::fs::read_to_string(&gnmap).unwrap();
    assert_eq!(text.matches("# Nmap done at ").count(), 2, "{text}");
    assert_eq!(text.matches("Host: 127.0.0.1 ()\tStatus: Up").count(), 2);
    let text = std::fs::read_to_string(&normal).unwrap();
    assert_eq!(text.matches("# Nmap done at ").count(), 2, "{text}");
    assert_eq!(text.matches(" scan initiated ").count(), 2, "{text}");
    // Without the flag, the file is replaced.
    let out = crate::util::portolan(&["-sT", "-p", "1-5", "-oG", path_str(&gnmap), "127.0.0.1"]);
    assert_success(&out);
    let text = std::fs::read_to_string(&gnmap).unwrap();
    assert_eq!(text.matches("# Nmap done at ").count(), 1, "{text}");
}

#[test]
fn syn_scan_xml_over_ipv4_and_ipv6_carries_reply_ttls() {
    tools_or_skip!(xmllint, libnmap);
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = furnish(host);
    let (v4, v6) = (host.ipv4().to_string(), host.ipv6().to_string());
    let xml = scratch_dir().join("syn.xml");
    // Resolve the neighbours first (one connection each): without it, a
    // SYN scan of a fresh lab host's IPv6 address sometimes gets no answer
    // at all and reports every port filtered (half the runs here, with
    // 106 ports; a transport issue reported to the lead). This test is
    // about the XML.
    for addr in [host.socket_v4(22), host.socket_v6(22)] {
        let connected = lab
            .scanner()
            .run(move || {
                std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))
                    .is_ok()
            })
            .expect("run in the scanner namespace");
        assert!(connected, "connect to {addr}");
    }
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sS", "-T4", "--no-progress", "-p", PORTS, "-oX"])
        .arg(&xml)
        .args([&v4, &v6])
        .output()
        .expect("run portolan in the lab");
    assert_success(&out);
    assert_dtd_valid(&xml);
    let text = std::fs::read_to_string(&xml).unwrap();
    assert!(text.contains("<scaninfo type=\"syn\" protocol=\"tcp\" numservices=\"106\""));
    assert!(text.contains(&format!("<address addr=\"{v6}\" addrtype=\"ipv6\"/>")));
    // Raw probes see the answer's TTL (64 or the IPv6 hop limit 64).
    assert!(
        text.contains("portid=\"22\"><state state=\"open\" reason=\"syn-ack\" reason_ttl=\"64\"/>"),
        "{text}"
    );
    assert!(text.contains("<extrareasons reason=\"reset\" count=\"98\""));
    let hosts = libnmap_hosts(&xml, false);
    let mut addrs: Vec<&str> = hosts.iter().map(|h| h.address.as_str()).collect();
    addrs.sort();
    let mut want = [v4.as_str(), v6.as_str()];
    want.sort();
    assert_eq!(addrs, want);
    for h in &hosts {
        let open: Vec<u16> = h
            .ports
            .iter()
            .filter(|p| p.2 == "open")
            .map(|p| p.0)
            .collect();
        assert_eq!(open, OPEN, "{}", h.address);
    }
}

#[test]
fn golden_xml_with_a_hostile_host_name_is_dtd_valid() {
    // The golden scan of crates/output names a host with markup, quotes
    // and control characters: escaped, the file still validates.
    tools_or_skip!(xmllint, libnmap);
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../output/tests/golden/scan.xml");
    assert_dtd_valid(&golden);
    let hosts = libnmap_hosts(&golden, false);
    assert_eq!(hosts.len(), 3);
    let text = std::fs::read_to_string(&golden).unwrap();
    assert!(text.contains("name=\"lab&lt;&amp;&gt;&quot;&apos;\\x1b[2J\\x07\""));
}

/// nmap's own XML of a lab scan read into the result model and written
/// back by Portolan's XML sink: the file validates against nmap.dtd and
/// ndiff finds no difference from nmap's (same scanner line, hosts and
/// port states, ports nmap only counted counted again).
#[test]
fn nmap_xml_through_the_model_and_back_is_the_same_scan() {
    use portolan_output::Sink;

    tools_or_skip!(ndiff, nmap, xmllint);
    let lab = lab_or_skip!(Lab::builder().hosts(2));
    let _services: Vec<_> = lab.hosts().iter().map(furnish).collect();
    lab.host(1).reject_tcp_admin_prohibited(50..=54).unwrap();
    let dir = scratch_dir();
    let reference = dir.join("nmap.xml");
    let out = lab
        .scanner()
        .command("nmap")
        .args(["-sS", "-Pn", "-n", "-T4", "--reason", "-p", PORTS, "-oX"])
        .arg(&reference)
        .args(lab.hosts().iter().map(|h| h.ipv4().to_string()))
        .output()
        .expect("run nmap in the lab");
    assert!(out.status.success(), "nmap failed: {out:?}");

    let text = std::fs::read_to_string(&reference).unwrap();
    let file = portolan_report::read_results(&text).expect("nmap's XML reads");
    let results = &file.results;
    assert_eq!(results.scanner, "nmap");
    assert_eq!(results.hosts.len(), 2);
    assert!(!results.interrupted);
    assert_eq!(results.scans[0].name, "syn");
    for h in &results.hosts {
        let open: Vec<u16> = h
            .ports
            .iter()
            .filter(|p| p.state == portolan_engine::PortState::Open)
            .map(|p| p.port)
            .collect();
        assert_eq!(open, OPEN, "{}", h.target.addr);
        let counted: u64 = h.extra.counted.iter().map(|c| c.count).sum();
        assert_eq!(
            h.ports.len() as u64 + counted,
            106,
            "{}: every port listed or counted",
            h.target.addr
        );
    }
    let prohibited = results.hosts[1]
        .ports
        .iter()
        .filter(|p| p.reason == portolan_engine::Reason::AdminProhibited)
        .count();
    assert_eq!(prohibited, 5);

    let ours = dir.join("ours.xml");
    let mut sink = portolan_output::xml::XmlSink::new(
        std::fs::File::create(&ours).unwrap(),
        portolan_output::OutputOptions {
            reason: true,
            ..Default::default()
        },
    );
    sink.begin(&results.info()).unwrap();
    for h in &results.hosts {
        sink.host(h).unwrap();
    }
    sink.end(&results.summary()).unwrap();
    drop(sink);
    assert_dtd_valid(&ours);
    let (code, report) = ndiff(&reference, &ours);
    assert!(ndiff_port_lines(&report).is_empty(), "{report}");
    assert_eq!(code, Some(0), "ndiff sees a difference:\n{report}");
}
