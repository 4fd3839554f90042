//! Firewall mapping: the same ports behind a stateless packet filter and
//! behind a stateful firewall (nftables conntrack) give the results that
//! tell the two apart, as the ACK, FIN, NULL and Xmas scans are meant to:
//! a stateless filter that blocks only connection attempts lets ACK and
//! FIN probes through (everything "unfiltered" to -sA, closed ports seen
//! by -sF), a stateful one drops every probe that belongs to no
//! connection (everything "filtered" to -sA, "open|filtered" to -sF).

use std::net::IpAddr;

use portolan_lab::{Lab, lab_or_skip};

use crate::util::{JsonRun, assert_success, portolan_bin, read_jsonl, scratch_dir};

/// Listeners the firewalls let connections reach.
const ALLOWED: [u16; 2] = [22, 80];
/// A listener both firewalls block connections to.
const BLOCKED_SERVICE: u16 = 443;
const PORTS: &str = "20-30,80,443,8000-8010";

fn ports() -> impl Iterator<Item = u16> {
    (20..=30).chain([80, 443]).chain(8000..=8010)
}

/// Neighbour discovery passes both firewalls, or IPv6 would not work.
const ND: &str = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept";

/// Blocks new connections (a lone SYN) except to the allowed ports, and
/// lets everything else through: the stateless filter of old routers.
fn stateless() -> String {
    format!(
        "table inet stateless {{\n\
           chain input {{\n\
             type filter hook input priority filter; policy accept;\n\
             {ND}\n\
             tcp flags & (syn | ack) == syn tcp dport != {{ 22, 80 }} drop\n\
           }}\n\
         }}\n"
    )
}

/// Accepts what belongs to a connection and new connections (SYN) to the
/// allowed ports, and drops everything else.
fn stateful() -> String {
    format!(
        "table inet stateful {{\n\
           chain input {{\n\
             type filter hook input priority filter; policy drop;\n\
             ct state established,related accept\n\
             {ND}\n\
             ct state new tcp flags & (syn | ack | fin | rst) == syn tcp dport {{ 22, 80 }} accept\n\
           }}\n\
         }}\n"
    )
}

fn scan(lab: &Lab, flag: &str) -> (JsonRun, [IpAddr; 2]) {
    let host = lab.host(0);
    let targets = host.addrs();
    let json = scratch_dir().join("firewall.jsonl");
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args([
            flag,
            "-n",
            "-Pn",
            "-T4",
            "--no-progress",
            "-p",
            PORTS,
            "-oJ",
        ])
        .arg(&json)
        .args(targets.map(|a| a.to_string()))
        .output()
        .unwrap();
    assert_success(&out);
    (read_jsonl(&json), targets)
}

/// Scans both address families of a host behind `firewall` with each
/// flag, and checks every port's state against `want(flag, port)`.
fn check(firewall: &str, want: impl Fn(&str, u16) -> &'static str) {
    let lab = lab_or_skip!(Lab::builder().hosts(1));
    let host = lab.host(0);
    let mut listening = ALLOWED.to_vec();
    listening.push(BLOCKED_SERVICE);
    let _service = host.listen_tcp(listening).unwrap();
    host.nft(firewall).unwrap();
    let mut wrong = Vec::new();
    for flag in ["-sS", "-sA", "-sF", "-sN", "-sX"] {
        let (run, targets) = scan(&lab, flag);
        for addr in targets {
            for port in ports() {
                let expected = want(flag, port);
                match run.ports.get(&(addr, port)) {
                    Some(p) if p.state == expected => {}
                    got => wrong.push(format!(
                        "{flag} {addr} {port}: want {expected}, got {got:?}"
                    )),
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn a_stateless_filter_lets_ack_and_fin_probes_through() {
    check(&stateless(), |flag, port| match (flag, port) {
        ("-sS", 22 | 80) => "open",
        ("-sS", _) => "filtered",
        ("-sA", _) => "unfiltered",
        // FIN, NULL and Xmas see past the filter: listeners keep silent,
        // closed ports reset.
        (_, 22 | 80 | BLOCKED_SERVICE) => "open|filtered",
        _ => "closed",
    });
}

#[test]
fn a_stateful_firewall_drops_every_probe_outside_a_connection() {
    check(&stateful(), |flag, port| match (flag, port) {
        ("-sS", 22 | 80) => "open",
        ("-sS" | "-sA", _) => "filtered",
        _ => "open|filtered",
    });
}
