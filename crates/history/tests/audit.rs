//! Policies with every rule kind, broken policies (one error with line
//! and column), and the catalogue of risky exposures.

use portolan_history::PolicyError;
use portolan_history::audit::audit;
use portolan_history::policy::Policy;
use portolan_history::risky::CATALOGUE;
use portolan_model::{HostReport, PortState, Reason, ScriptOutput};
use portolan_targets::Protocol;

use crate::fixtures::*;

const POLICY: &str = r#"
[default]
tcp = [22]
udp = []
closed = [113]
forbidden_services = ["telnet"]
min_cert_days = 21

[[zone]]
name = "web"
networks = ["198.18.0.0/30"]
tcp = [80, "8000-8010"]
services = ["https"]

[[zone]]
name = "mail"
tags = ["mx"]
tcp = [25]

[tags]
mx = ["198.18.0.9"]
"#;

fn rules(report: &portolan_history::audit::AuditReport) -> Vec<(String, u16, String)> {
    report
        .violations
        .iter()
        .map(|v| (v.addr.to_string(), v.port, v.rule.clone()))
        .collect()
}

fn udp(mut h: HostReport, port: u16, state: PortState, reason: Reason) -> HostReport {
    h.ports.push(portolan_model::PortOutcome {
        port,
        proto: Protocol::Udp,
        state,
        reason,
        reason_ttl: None,
        tries: 1,
    });
    h
}

#[test]
fn every_rule_kind_is_checked_with_its_evidence() {
    let policy = Policy::parse(POLICY).unwrap();
    let web = with_cert(
        host(
            "198.18.0.1",
            t(0),
            &[
                open(22),
                open(80),
                open(8005),
                P(8443, PortState::Open, Some(("https", "1.0"))),
                P(113, PortState::Filtered, None),
                P(23, PortState::Open, Some(("telnet", "x"))),
            ],
        ),
        8443,
        "CN=web",
        t(86_400 * 5),
    );
    let mail = host(
        "198.18.0.9",
        t(0),
        &[open(25), open(80), P(113, PortState::Closed, None)],
    );
    let other = udp(
        host("198.18.0.20", t(0), &[open(22)]),
        161,
        PortState::Open,
        Reason::UdpResponse,
    );
    let report = audit(
        &scan(t(0), "198.18.0.0/24", vec![web, mail, other]),
        &policy,
    );
    assert_eq!(
        rules(&report),
        [
            ("198.18.0.1".into(), 23, "forbidden-service".into()),
            ("198.18.0.1".into(), 23, "not-allowed".into()),
            ("198.18.0.1".into(), 113, "must-be-closed".into()),
            ("198.18.0.1".into(), 8443, "certificate".into()),
            ("198.18.0.9".into(), 80, "not-allowed".into()),
            ("198.18.0.20".into(), 161, "not-allowed".into()),
        ]
    );
    let v = &report.violations[2];
    assert_eq!(v.evidence, "filtered (no-response, ttl 64)");
    assert_eq!(v.zones, ["web"]);
    assert!(
        report.violations[3]
            .message
            .contains("5 days left, 21 required")
    );
    assert_eq!(report.violations[4].zones, ["mail"]);
    assert!(
        report
            .text()
            .contains("198.18.0.1 113/tcp must-be-closed [web]")
    );
    let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
    assert_eq!(json["violations"].as_array().unwrap().len(), 6);
    // A clean scan has none.
    let clean = host(
        "198.18.0.1",
        t(0),
        &[open(22), open(80), P(113, PortState::Closed, None)],
    );
    assert!(
        audit(&scan(t(0), "x", vec![clean]), &policy)
            .violations
            .is_empty()
    );
}

#[test]
fn broken_policies_say_where() {
    let mut wrong = Vec::new();
    for (text, line, column, words) in [
        ("[default]\ntcp = [22,\n", 2, 11, "unclosed array"),
        ("[default]\ntcp = [70000]\n", 2, 7, "0-65535"),
        ("[default]\ntcp = [\"90-80\"]\n", 2, 7, "backwards"),
        ("[default]\ntcp = [\"ssh\"]\n", 2, 7, "not a port"),
        ("[default]\ntpc = [22]\n", 2, 1, "unknown field"),
        (
            "[[zone]]\nnetworks = [\"198.18.0.0/33\"]\n",
            2,
            12,
            "not an address",
        ),
        (
            "[[zone]]\nname = \"a\"\ntags = [\"nope\"]\n",
            3,
            9,
            "does not define",
        ),
        ("[default]\nmin_cert_days = -1\n", 2, 17, ""),
        ("[default]\nrisky = \"yes\"\n", 2, 9, ""),
    ] {
        match Policy::parse(text) {
            Err(PolicyError::Invalid {
                line: l,
                column: c,
                message,
            }) => {
                if (l, c) != (line, column) || !message.contains(words) {
                    wrong.push(format!("{text:?}: {l}:{c} {message}"));
                }
            }
            Ok(p) => panic!("{text:?} was accepted: {p:?}"),
            Err(e) => panic!("{text:?}: {e}"),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_catalogue_names_a_reason_and_a_reference_for_each_entry() {
    let wanted = [
        (Protocol::Tcp, 23),
        (Protocol::Tcp, 21),
        (Protocol::Tcp, 445),
        (Protocol::Tcp, 139),
        (Protocol::Tcp, 3389),
        (Protocol::Tcp, 5900),
        (Protocol::Udp, 1900),
        (Protocol::Udp, 11211),
        (Protocol::Udp, 123),
        (Protocol::Udp, 53),
        (Protocol::Udp, 161),
        (Protocol::Udp, 5353),
        (Protocol::Tcp, 6379),
        (Protocol::Tcp, 27017),
        (Protocol::Tcp, 9200),
        (Protocol::Tcp, 2375),
        (Protocol::Tcp, 113),
    ];
    for (proto, port) in wanted {
        let r = CATALOGUE
            .iter()
            .find(|r| r.proto == proto && r.port == port)
            .unwrap_or_else(|| panic!("{port}/{proto} missing"));
        assert!(!r.reason.is_empty() && !r.reason.contains('\n'));
        assert!(!r.reference.is_empty());
    }
}

#[test]
fn risky_exposures_are_found_and_conditions_say_what_was_proved() {
    let mut h = host(
        "198.18.0.1",
        t(0),
        &[
            open(23),
            open(21),
            open(6379),
            P(113, PortState::Filtered, None),
            open(22),
        ],
    );
    h.extra.scripts.push(ScriptOutput {
        id: "ftp-anon".into(),
        port: Some((Protocol::Tcp, 21)),
        output: "Anonymous FTP login allowed (FTP code 230)".into(),
    });
    let h = udp(h, 1900, PortState::Open, Reason::UdpResponse);
    let h = udp(h, 11211, PortState::OpenFiltered, Reason::NoResponse);
    let report = audit(&scan(t(0), "x", vec![h]), &Policy::risky_only());
    let found: Vec<(u16, &str)> = report
        .violations
        .iter()
        .map(|v| (v.port, v.message.split(':').next().unwrap()))
        .collect();
    assert_eq!(
        found,
        [
            (21, "ftp"),
            (23, "telnet"),
            (113, "ident-dropped"),
            (6379, "redis"),
            (1900, "ssdp")
        ]
    );
    let ftp = &report.violations[0];
    assert!(
        ftp.message.contains("anonymous login: confirmed"),
        "{}",
        ftp.message
    );
    assert!(report.violations[3].message.contains("not verified"));
    assert_eq!(
        report.violations[4].reference.as_deref(),
        Some("US-CERT TA14-017A")
    );
    // A closed ident is what the catalogue wants.
    let fine = host("198.18.0.1", t(0), &[P(113, PortState::Closed, None)]);
    assert!(
        audit(&scan(t(0), "x", vec![fine]), &Policy::risky_only())
            .violations
            .is_empty()
    );
}
