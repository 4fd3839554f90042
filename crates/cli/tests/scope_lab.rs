//! `--scope`: a scan that reaches outside the operator's networks is
//! refused before one packet leaves, and a scan inside them sends nothing
//! elsewhere. The packets are counted where they would go: at the lab
//! host that routes a range for the scanner (nftables counters in its
//! prerouting hook), split into inside and outside the scope.

use std::path::Path;
use std::process::Output;

use portolan_lab::{Host, Lab, lab_or_skip};

use crate::util::{assert_success, portolan_bin, read_jsonl, scratch_dir};

/// Counts the scanner's IPv4 packets arriving at `router`: to `inside`,
/// and to anything else.
fn count_at_router(router: &Host, scanner: &str, inside: &str) {
    router
        .nft(&format!(
            "table ip portolan_scope {{\n\
             counter inside {{}}\n counter outside {{}}\n\
             chain pre {{\n type filter hook prerouting priority -300;\n\
             ip saddr {scanner} ip daddr {inside} counter name inside\n\
             ip saddr {scanner} ip daddr != {inside} counter name outside\n }}\n}}\n"
        ))
        .unwrap();
}

fn packets(router: &Host, counter: &str) -> u64 {
    let listing = router
        .exec(
            "nft",
            &["list", "counter", "ip", "portolan_scope", counter],
            None,
        )
        .unwrap();
    listing
        .split("packets ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in: {listing}"))
}

fn scan(lab: &Lab, args: &[&str], scope: &Path, json: &Path) -> Output {
    lab.scanner()
        .command(portolan_bin())
        .args(["--no-db", "--no-progress", "-n", "--scope"])
        .arg(scope)
        .args(args)
        .arg("-oJ")
        .arg(json)
        .output()
        .expect("run portolan")
}

#[test]
fn targets_outside_the_scope_are_refused_before_a_packet_leaves() {
    let lab = lab_or_skip!();
    let router = lab.host(0);
    let _service = router.listen_tcp([80]).unwrap();
    lab.route_range_to(router, "198.18.0.0/15").unwrap();
    // Two /28s of a routed /24 away from the link's own.
    let third = if router.ipv4().octets()[2] == 77 {
        78
    } else {
        77
    };
    let inside = format!("198.19.{third}.0/28");
    let outside = format!("198.19.{third}.16/28");
    let dir = scratch_dir();
    let scope = dir.join("scope.txt");
    std::fs::write(&scope, format!("# the operator's networks\n{inside}\n")).unwrap();
    count_at_router(router, &router.scanner_ipv4().to_string(), &inside);
    let json = dir.join("scan.jsonl");

    // One target outside: refused, with one error naming it, for every
    // technique; nothing reaches the router, inside or out.
    for technique in ["-sS", "-sT", "-sU"] {
        let out = scan(
            &lab,
            &[technique, "-p", "80,81", &inside, &outside],
            &scope,
            &json,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{technique}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{technique}: {stderr}");
        assert!(
            stderr.contains(&format!("\"{outside}\" is outside the scope"))
                && stderr.contains("scope.txt"),
            "{technique}: {stderr}"
        );
    }
    // Host discovery too (it would ping before a port scan).
    let out = scan(&lab, &["-sn", &outside], &scope, &json);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(packets(router, "inside"), 0);
    assert_eq!(packets(router, "outside"), 0);

    // A scan of the scope, with the part of a wider target outside it
    // excluded: it runs, every in-scope port is answered, and not one
    // packet goes anywhere else.
    let wider = format!("198.19.{third}.0/27");
    let out = scan(
        &lab,
        &["-sS", "-Pn", "-p", "80,81", &wider, "--exclude", &outside],
        &scope,
        &json,
    );
    assert_success(&out);
    let run = read_jsonl(&json);
    assert_eq!(run.ports.len(), 16 * 2);
    for ((addr, port), line) in &run.ports {
        let want = if *port == 80 { "open" } else { "closed" };
        assert_eq!(line.state, want, "{addr} port {port}");
    }
    assert!(packets(router, "inside") >= 32);
    assert_eq!(packets(router, "outside"), 0);
}
