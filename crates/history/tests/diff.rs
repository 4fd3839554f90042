//! Diffs of synthetic scans: every kind of change, the confirmation rule
//! for weak evidence (from files, and from a history where a second scan
//! confirms), certificates, and the renderings.

use std::net::IpAddr;

use portolan_history::diff::{Change, DiffOptions, ScanDiff, diff};
use portolan_history::{History, ScanMeta, render};
use portolan_model::{CountedPorts, PortState, Reason, ScanResults};

use crate::fixtures::*;

const TARGETS: &str = "198.18.0.0/30";

fn files(a: &ScanResults, b: &ScanResults) -> ScanDiff {
    diff(a, b, &DiffOptions::default(), &mut |_, _, _| false)
}

fn changes(d: &ScanDiff) -> Vec<(u16, Change)> {
    d.hosts
        .iter()
        .flat_map(|h| h.ports.iter().map(|p| (p.port, p.change)))
        .collect()
}

#[test]
fn equal_scans_do_not_differ() {
    let h = vec![host(
        "198.18.0.1",
        t(0),
        &[open(22), P(80, PortState::Closed, None)],
    )];
    let d = files(&scan(t(0), TARGETS, h.clone()), &scan(t(100), TARGETS, h));
    assert!(!d.differs());
    assert!(render::text(&d).contains("No differences."));
    assert!(render::json(&d).contains("\"differs\":false"));
}

#[test]
fn every_kind_of_port_change_is_named() {
    let a = scan(
        t(0),
        TARGETS,
        vec![host(
            "198.18.0.1",
            t(0),
            &[
                open(22),
                P(80, PortState::Closed, None),
                open(443),
                P(8080, PortState::Open, Some(("http", "1.0"))),
                P(113, PortState::Closed, None),
            ],
        )],
    );
    let b = scan(
        t(100),
        TARGETS,
        vec![host(
            "198.18.0.1",
            t(100),
            &[
                P(22, PortState::Closed, None),
                open(80),
                P(443, PortState::Filtered, None),
                P(8080, PortState::Open, Some(("http", "1.1"))),
                P(113, PortState::Filtered, None),
            ],
        )],
    );
    let d = files(&a, &b);
    assert!(d.differs());
    assert_eq!(
        changes(&d),
        [
            (22, Change::Closed),
            (80, Change::Opened),
            (113, Change::Filtered),
            (443, Change::Filtered),
            (8080, Change::Service),
        ]
    );
    let text = render::text(&d);
    assert!(
        text.contains("-8080/tcp open     http    lab 1.0"),
        "{text}"
    );
    assert!(
        text.contains("+8080/tcp open     http    lab 1.1"),
        "{text}"
    );
}

#[test]
fn hosts_coming_up_and_going_down_are_reported() {
    let a = scan(
        t(0),
        TARGETS,
        vec![
            host("198.18.0.1", t(0), &[open(22)]),
            down("198.18.0.2", t(0)),
        ],
    );
    let b = scan(
        t(100),
        TARGETS,
        vec![
            down("198.18.0.1", t(100)),
            host("198.18.0.2", t(100), &[open(80)]),
        ],
    );
    let d = files(&a, &b);
    let statuses: Vec<_> = d
        .hosts
        .iter()
        .map(|h| (h.addr, h.a_status.clone(), h.b_status.clone()))
        .collect();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        statuses,
        [
            (ip("198.18.0.1"), Some("up".into()), Some("down".into())),
            (ip("198.18.0.2"), Some("down".into()), Some("up".into())),
        ]
    );
    assert_eq!(changes(&d), [(80, Change::Opened)]);
    let xml = render::xml(&d);
    assert!(
        xml.contains("<a><status state=\"up\"/></a><b><status state=\"down\"/></b>"),
        "{xml}"
    );
}

#[test]
fn open_filtered_seen_once_waits_for_confirmation() {
    let a = scan(
        t(0),
        TARGETS,
        vec![host("198.18.0.1", t(0), &[P(53, PortState::Closed, None)])],
    );
    let b = scan(
        t(100),
        TARGETS,
        vec![host(
            "198.18.0.1",
            t(100),
            &[P(53, PortState::OpenFiltered, None)],
        )],
    );
    let d = files(&a, &b);
    assert!(!d.differs(), "weak evidence does not count");
    assert_eq!(d.unconfirmed.len(), 1);
    assert!(
        d.unconfirmed[0]
            .1
            .weak
            .as_deref()
            .unwrap()
            .contains("open|filtered")
    );
    assert!(render::text(&d).contains("Unconfirmed"));
    let forced = diff(
        &a,
        &b,
        &DiffOptions {
            report_unconfirmed: true,
            ..DiffOptions::default()
        },
        &mut |_, _, _| false,
    );
    assert!(forced.differs());
}

#[test]
fn an_open_port_lost_to_one_silent_probe_waits_for_confirmation() {
    let a = scan(
        t(0),
        TARGETS,
        vec![host("198.18.0.1", t(0), &[open(22), open(80)])],
    );
    let mut lost = host(
        "198.18.0.1",
        t(100),
        &[
            P(22, PortState::Filtered, None),
            P(80, PortState::Filtered, None),
        ],
    );
    lost.ports[0].tries = 1; // one silent probe
    lost.ports[1].tries = 2; // silent twice: evidence enough
    let d = files(&a, &scan(t(100), TARGETS, vec![lost]));
    assert_eq!(changes(&d), [(80, Change::Filtered)]);
    assert_eq!(d.unconfirmed.len(), 1);
    assert_eq!(d.unconfirmed[0].1.port, 22);
    assert!(
        d.unconfirmed[0]
            .1
            .weak
            .as_deref()
            .unwrap()
            .contains("one silent probe")
    );
}

#[test]
fn a_second_scan_in_the_history_confirms_weak_evidence() {
    let mut h: History = open_history(&sqlite());
    let meta = ScanMeta {
        targets: TARGETS.into(),
        ..ScanMeta::default()
    };
    let a = scan(
        t(0),
        TARGETS,
        vec![host("198.18.0.1", t(0), &[P(53, PortState::Closed, None)])],
    );
    let weak = |at| {
        scan(
            t(at),
            TARGETS,
            vec![host(
                "198.18.0.1",
                t(at),
                &[P(53, PortState::OpenFiltered, None)],
            )],
        )
    };
    let (b, c) = (weak(100), weak(200));
    for s in [&a, &b, &c] {
        h.import(s, &meta).unwrap();
    }
    let rows: Vec<_> = [&a, &b, &c]
        .iter()
        .map(|s| h.find(&s.id.to_string()).unwrap())
        .collect();
    let stored = |h: &mut History, x: usize, y: usize| {
        let (sx, sy) = (h.load(&rows[x]).unwrap(), h.load(&rows[y]).unwrap());
        let row = rows[y].clone();
        diff(
            &sx,
            &sy,
            &DiffOptions::default(),
            &mut |addr, proto, port| h.times_seen(&row, addr, proto, port).unwrap() >= 2,
        )
    };
    let once = stored(&mut h, 0, 1);
    assert!(!once.differs(), "seen once");
    let twice = stored(&mut h, 0, 2);
    assert!(twice.differs(), "the scan before agreed");
    assert_eq!(changes(&twice), [(53, Change::State)]);
}

#[test]
fn unlisted_ports_take_the_only_counted_state() {
    // nmap lists open ports and counts the closed ones.
    let mut a_host = host("198.18.0.1", t(0), &[open(22), open(80)]);
    let mut b_host = host("198.18.0.1", t(100), &[open(22)]);
    for h in [&mut a_host, &mut b_host] {
        h.extra.counted = vec![CountedPorts {
            state: PortState::Closed,
            count: 998,
        }];
    }
    let d = files(
        &scan(t(0), TARGETS, vec![a_host]),
        &scan(t(100), TARGETS, vec![b_host]),
    );
    assert_eq!(changes(&d), [(80, Change::Closed)]);
    let p = &d.hosts[0].ports[0];
    assert_eq!(
        p.b.as_ref().unwrap().reason,
        Reason::UnknownResponse.as_str()
    );
}

#[test]
fn certificates_changed_and_expiring_are_reported() {
    let svc = [P(443, PortState::Open, Some(("https", "1.0")))];
    let a = scan(
        t(0),
        TARGETS,
        vec![with_cert(
            host("198.18.0.1", t(0), &svc),
            443,
            "CN=old",
            t(86_400 * 400),
        )],
    );
    let b = scan(
        t(0),
        TARGETS,
        vec![with_cert(
            host("198.18.0.1", t(0), &svc),
            443,
            "CN=new\u{1b}[2J",
            t(86_400 * 10),
        )],
    );
    let d = files(&a, &b);
    assert_eq!(changes(&d), [(443, Change::Certificate)]);
    assert_eq!(d.expiring.len(), 1);
    assert_eq!(d.expiring[0].days_left, 10);
    let text = render::text(&d);
    assert!(
        text.contains("Certificates expiring within 30 days"),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "escaped for the terminal: {text:?}"
    );
    let json = render::json(&d);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["hosts"][0]["ports"][0]["b"]["cert"]["subject"],
        "CN=new\u{1b}[2J"
    );
    // Expiring certificates alone do not make scans differ.
    let same = files(&b, &b);
    assert!(!same.differs());
    assert_eq!(same.expiring.len(), 1);
}

fn bannered(at: u64, port: u16, banner: &[u8]) -> ScanResults {
    let mut h = host(
        "198.18.0.1",
        t(at),
        &[P(port, PortState::Open, Some(("smtp", "1.0")))],
    );
    h.services[0].info.banner = banner.to_vec();
    scan(t(at), TARGETS, vec![h])
}

#[test]
fn a_banner_that_says_something_else_is_a_change() {
    let a = bannered(0, 25, b"220 mx ESMTP Postfix (Debian/GNU)\r\n");
    let b = bannered(100, 25, b"220 mx ESMTP Postfix (Ubuntu)\r\n");
    let d = files(&a, &b);
    assert_eq!(changes(&d), [(25, Change::Banner)]);
    let text = render::text(&d);
    assert!(
        text.lines()
            .any(|l| l.starts_with('+') && l.contains("banner")),
        "{text}"
    );
    assert!(
        text.contains("(Ubuntu)") && text.contains("(Debian/GNU)"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&render::json(&d)).unwrap();
    assert_eq!(json["hosts"][0]["ports"][0]["change"], "banner");
    assert_eq!(
        json["hosts"][0]["ports"][0]["b"]["banner"],
        "220 mx ESMTP Postfix (Ubuntu)\r\n"
    );
    let xml = render::xml(&d);
    assert!(
        xml.contains("<script id=\"banner\" output=\"220 mx ESMTP Postfix (Ubuntu)&#13;&#10;\"/>"),
        "{xml}"
    );
}

#[test]
fn volatile_banners_are_no_change() {
    // Dates, times, counters, nonces: different at every connection.
    let a = bannered(
        0,
        25,
        b"220 mx ESMTP Exim 4.96 Fri, 04 Dec 2026 22:01:39 +0000 id 1a2b3c4d5e6f\r\n",
    );
    let b = bannered(
        100,
        25,
        b"220 mx ESMTP Exim 4.96 Sat, 05 Dec 2026 07:00:12 +0100 id 9f8e7d6c5b4a\r\n",
    );
    assert!(!files(&a, &b).differs());
    // A TLS handshake's bytes (randoms in them) are binary: not compared.
    let a = bannered(
        0,
        443,
        &[
            0x16, 0x03, 0x03, 0x00, 0x5a, 0x02, 0x00, 0x00, 0x56, 0x11, 0x22,
        ],
    );
    let b = bannered(
        100,
        443,
        &[
            0x16, 0x03, 0x03, 0x00, 0x5a, 0x02, 0x00, 0x00, 0x56, 0x98, 0x07,
        ],
    );
    assert!(!files(&a, &b).differs());
}

#[test]
fn os_and_script_changes_differ_and_counted_ports_alone_do_not() {
    use portolan_model::{OsMatch, ScriptOutput};
    let with = |at: u64, os: &str, title: &str, closed: u64| {
        let mut h = host("198.18.0.1", t(at), &[open(80)]);
        h.extra.os = vec![OsMatch {
            name: os.into(),
            accuracy: 100,
            cpe: Vec::new(),
            line: 0,
            classes: Vec::new(),
        }];
        h.extra.scripts = vec![ScriptOutput {
            id: "http-title".into(),
            port: Some((portolan_targets::Protocol::Tcp, 80)),
            output: title.into(),
        }];
        h.extra.counted = vec![CountedPorts {
            state: PortState::Closed,
            count: closed,
        }];
        scan(t(at), TARGETS, vec![h])
    };
    let base = with(0, "Linux 6.1", "Lab", 999);
    // Only the counted ports moved: shown nowhere, no difference.
    assert!(!files(&base, &with(100, "Linux 6.1", "Lab", 998)).differs());
    let d = files(&base, &with(100, "Linux 6.8", "Lab (new)", 998));
    assert!(d.differs());
    let h = &d.hosts[0];
    let os = h.os.as_ref().expect("the OS change");
    assert_eq!(
        (os.a.as_slice(), os.b.as_slice()),
        (
            &["Linux 6.1".to_string()][..],
            &["Linux 6.8".to_string()][..]
        )
    );
    assert_eq!(changes(&d), [(80, Change::Script)]);
    assert_eq!(h.ports[0].scripts[0].b.as_deref(), Some("Lab (new)"));
    assert!(h.extraports.changed());
    let xml = render::xml(&d);
    assert!(
        xml.contains("<a><extraports state=\"closed\" count=\"999\"/></a>"),
        "{xml}"
    );
    assert!(
        xml.contains(
            "<os><a><osmatch name=\"Linux 6.1\"/></a><b><osmatch name=\"Linux 6.8\"/></b></os>"
        ),
        "{xml}"
    );
}

#[test]
fn xml_escapes_what_came_from_the_network() {
    let a = scan(
        t(0),
        TARGETS,
        vec![host(
            "198.18.0.1",
            t(0),
            &[P(80, PortState::Open, Some(("http", "1")))],
        )],
    );
    let b = scan(
        t(1),
        TARGETS,
        vec![host(
            "198.18.0.1",
            t(1),
            &[P(80, PortState::Open, Some(("http", "<\"&>")))],
        )],
    );
    let xml = render::xml(&files(&a, &b));
    assert!(xml.contains("&lt;&quot;&amp;&gt;"), "{xml}");
    assert!(!xml.contains("<\"&>"));
}
