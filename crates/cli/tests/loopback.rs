//! Scans of 127.0.0.1 and ::1 with listeners this test opens: no root
//! needed, so these run everywhere.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener};

use crate::util::{assert_success, read_jsonl, scratch_dir};

/// A port on `addr` that nothing listens on (bound, then released).
fn closed_port(addr: IpAddr) -> u16 {
    TcpListener::bind((addr, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn loopback_open_and_closed_ports_ipv4_and_ipv6() {
    let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let open4 = v4.local_addr().unwrap().port();
    let v6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).ok();
    let open6 = v6.as_ref().map(|l| l.local_addr().unwrap().port());
    let closed4 = closed_port(Ipv4Addr::LOCALHOST.into());
    let dir = scratch_dir();
    let json = dir.join("lo.jsonl");
    let mut ports = vec![open4, closed4];
    ports.extend(open6);
    let spec = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut args = vec![
        "-sT",
        "-p",
        &spec,
        "-oJ",
        json.to_str().unwrap(),
        "127.0.0.1",
    ];
    if v6.is_some() {
        args.push("::1");
    }
    let out = crate::util::portolan(&args);
    let stdout = assert_success(&out);
    let run = read_jsonl(&json);
    let lo4: IpAddr = Ipv4Addr::LOCALHOST.into();
    assert_eq!(run.ports[&(lo4, open4)].state, "open");
    assert_eq!(run.ports[&(lo4, open4)].reason, "syn-ack");
    assert_eq!(run.ports[&(lo4, closed4)].state, "closed");
    assert_eq!(run.ports[&(lo4, closed4)].reason, "conn-refused");
    if let Some(p) = open6 {
        assert_eq!(run.ports[&(Ipv6Addr::LOCALHOST.into(), p)].state, "open");
    }
    assert!(stdout.contains(&format!("{open4}/tcp ")), "{stdout}");
    let begin = run.begin.expect("begin line");
    assert_eq!(begin["schema"], 3);
    assert_eq!(begin["scan_type"], "connect");
    drop(v4);
}

#[test]
fn seed_reproduces_the_probe_order() {
    // The order is visible through the JSON port lines of an all-closed
    // scan, which arrive as ports resolve.
    let order = |seed: &str| {
        let dir = scratch_dir();
        let json = dir.join("o.jsonl");
        let out = crate::util::portolan(&[
            "-sT",
            "-p",
            "40000-40199",
            "--seed",
            seed,
            "--max-parallelism",
            "1",
            "-oJ",
            json.to_str().unwrap(),
            "127.0.0.1",
        ]);
        assert_success(&out);
        let text = std::fs::read_to_string(json).unwrap();
        text.lines()
            .filter(|l| l.contains("\"type\":\"port\""))
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
    };
    let a = order("42");
    assert_eq!(a.len(), 200);
    assert_eq!(a, order("42"));
    assert_ne!(a, order("43"));
}

#[test]
fn broken_pipe_is_not_an_error() {
    use std::io::Read;
    let mut child = std::process::Command::new(crate::util::portolan_bin())
        .args([
            "-n",
            "-sT",
            "-p",
            "1-200",
            "127.0.0.1",
            "127.0.0.2",
            "127.0.0.3",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_min_rate_that_a_small_scan_cannot_reach_is_reported_with_why() {
    // Three ports at a million probes a second: the scan is over long
    // before, with nothing left to send; the summary says so rather than
    // letting the user believe the rate held.
    let open = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = open.local_addr().unwrap().port();
    let closed = closed_port(Ipv4Addr::LOCALHOST.into());
    let json = scratch_dir().join("min-rate.jsonl");
    let spec = format!(
        "{port},{closed},{}",
        closed_port(Ipv4Addr::LOCALHOST.into())
    );
    let out = crate::util::portolan(&[
        "-sT",
        "--min-rate",
        "1000000",
        "-p",
        &spec,
        "-oJ",
        json.to_str().unwrap(),
        "127.0.0.1",
    ]);
    let stdout = assert_success(&out);
    assert!(
        stdout.contains("--min-rate 1000000 was not reached")
            && stdout.contains("nothing more to send"),
        "{stdout}"
    );
    let run = read_jsonl(&json);
    let missed = &run.summary.expect("summary line")["min_rate_missed"];
    assert_eq!(missed["asked"], 1_000_000.0);
    assert_eq!(missed["reason"], "nothing-to-send");
    // Without --min-rate, nothing is said.
    let plain = crate::util::portolan(&["-sT", "-p", &spec, "127.0.0.1"]);
    assert!(!assert_success(&plain).contains("--min-rate"));
    drop(open);
}
