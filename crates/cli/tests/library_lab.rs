//! The scan library (`portolan-scan`) driven from code, as a UI, a worker
//! or a history store will drive it: two raw scans side by side and a
//! third after them in one process, inside a multi-threaded tokio runtime
//! (their results equal the binary's on the same lab host); a scan
//! stopped through its token, whose finished hosts are complete; and
//! version detection over several hosts, whose first host comes out
//! before the last one's port scan is done; and OS detection, whose
//! hosts come out fingerprinted.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use portolan_engine::{HostStatus, PortState, Reason, TimingTemplate};
use portolan_lab::{Lab, in_namespace, lab_or_skip};
use portolan_scan::{Collected, Event, EventSink, Scan, ScanConfig, StopToken, Technique};
use portolan_targets::Protocol;
use portolan_transport::raw::TcpScan;

use crate::util::{assert_success, portolan_bin, read_jsonl, scratch_dir};

const OPEN: [u16; 3] = [22, 80, 443];
const DROPPED: std::ops::RangeInclusive<u16> = 1000..=1019;
const PROHIBITED: std::ops::RangeInclusive<u16> = 3000..=3009;

fn truth(port: u16) -> (PortState, Reason) {
    if OPEN.contains(&port) {
        (PortState::Open, Reason::SynAck)
    } else if DROPPED.contains(&port) {
        (PortState::Filtered, Reason::NoResponse)
    } else if PROHIBITED.contains(&port) {
        (PortState::Filtered, Reason::AdminProhibited)
    } else {
        (PortState::Closed, Reason::Reset)
    }
}

/// A SYN scan of `ports` on `targets`, without discovery or DNS, at -T4.
fn syn_config(targets: &[String], ports: impl IntoIterator<Item = u16>) -> ScanConfig {
    ScanConfig::new(targets.iter().cloned())
        .with_technique(Technique::Tcp(TcpScan::Syn))
        .with_tcp_ports(ports)
        .with_timing(TimingTemplate::Aggressive)
        .without_discovery()
        .without_reverse_dns()
}

/// Every (address, port) → (state, reason) of a finished scan.
fn outcomes(collected: &Collected) -> BTreeMap<(IpAddr, u16), (PortState, Reason)> {
    collected
        .hosts
        .iter()
        .flat_map(|h| {
            h.ports
                .iter()
                .map(move |p| ((h.target.addr, p.port), (p.state, p.reason)))
        })
        .collect()
}

/// Events in the order they came, by kind.
#[derive(Default)]
struct Recorder {
    collected: Collected,
    kinds: Vec<&'static str>,
}

impl EventSink for Recorder {
    fn event(&mut self, event: Event<'_>) {
        self.kinds.push(match &event {
            Event::Started(_) => "started",
            Event::PhaseStarted(_) => "phase",
            Event::HostUp(_) => "up",
            Event::Port(_) => "port",
            Event::Host(_) => "host",
            Event::Progress(_) => "progress",
            Event::PhaseFinished => "phase-done",
            Event::Finished(_) => "finished",
            _ => "other",
        });
        self.collected.event(event);
    }
}

fn run_recorded(config: ScanConfig) -> Recorder {
    let scan = Scan::new(config).expect("a valid scan");
    let mut recorder = Recorder::default();
    scan.run(&mut recorder, &StopToken::new())
        .expect("the scan runs");
    recorder
}

#[test]
fn two_scans_side_by_side_and_one_after_equal_the_binary() {
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let _service = host.listen_tcp(OPEN).unwrap();
    host.drop_tcp(DROPPED).unwrap();
    host.reject_tcp_admin_prohibited(PROHIBITED).unwrap();
    let lab_targets = vec![host.ipv4().to_string(), host.ipv6().to_string()];
    let lab_ports: Vec<u16> = (1..=100)
        .chain([443])
        .chain(DROPPED)
        .chain(PROHIBITED)
        .collect();

    let (loopback, lab_run, again, open_port) = in_namespace(lab.scanner().name(), || {
        // A listener on the namespace's own loopback.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let open_port = listener.local_addr().unwrap().port();
        let loopback_ports: Vec<u16> = (1..=50).chain([open_port]).collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (loopback, lab_run, again) = runtime.block_on(async {
            let a = tokio::task::spawn_blocking({
                let config = syn_config(&["127.0.0.1".into()], loopback_ports.clone());
                move || run_recorded(config)
            });
            let b = tokio::task::spawn_blocking({
                let config = syn_config(&lab_targets, lab_ports.clone());
                move || run_recorded(config)
            });
            let (a, b) = (a.await.unwrap(), b.await.unwrap());
            // A third scan after them: the privileges are still there.
            let config = syn_config(&["127.0.0.1".into()], loopback_ports);
            let c = tokio::task::spawn_blocking(move || run_recorded(config))
                .await
                .unwrap();
            (a, b, c)
        });
        drop(listener);
        (loopback, lab_run, again, open_port)
    })
    .unwrap();

    // Loopback: the listener's port open, the rest closed, both times.
    for run in [&loopback, &again] {
        let got = outcomes(&run.collected);
        assert_eq!(got.len(), 51, "{got:?}");
        for ((_, port), (state, reason)) in &got {
            let want = if *port == open_port {
                (PortState::Open, Reason::SynAck)
            } else {
                (PortState::Closed, Reason::Reset)
            };
            assert_eq!((*state, *reason), want, "127.0.0.1:{port}");
        }
    }

    // The lab host: exact over IPv4 and IPv6.
    let got = outcomes(&lab_run.collected);
    let mut wrong = Vec::new();
    for addr in [IpAddr::from(host.ipv4()), IpAddr::from(host.ipv6())] {
        for &port in &lab_ports {
            let want = truth(port);
            if got.get(&(addr, port)) != Some(&want) {
                wrong.push(format!(
                    "{addr} {port}: want {want:?}, got {:?}",
                    got.get(&(addr, port))
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // The events: started first, finished last, each host once with its
    // ports streamed before it, the summary's counts equal to the hosts'.
    let kinds = &lab_run.kinds;
    assert_eq!(kinds.first(), Some(&"started"));
    assert_eq!(kinds.last(), Some(&"finished"));
    assert_eq!(kinds.iter().filter(|k| **k == "host").count(), 2);
    assert_eq!(lab_run.collected.ports.len(), 2 * lab_ports.len());
    let summary = lab_run.collected.summary.as_ref().unwrap();
    assert!(!summary.interrupted);
    assert_eq!(summary.stats.hosts_up, 2);
    let open = lab_ports.iter().filter(|p| OPEN.contains(p)).count() as u64;
    assert_eq!(
        summary.stats.ports_by_state[PortState::Open.index()],
        2 * open
    );
    let info = lab_run.collected.info.as_ref().unwrap();
    assert_eq!(info.scan_type, "syn");
    assert_eq!(info.port_count, lab_ports.len());

    // The binary on the same targets finds the same.
    let json = scratch_dir().join("cli.jsonl");
    let ports_arg = "1-100,443,1000-1019,3000-3009";
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sS", "-Pn", "-n", "-T4", "--no-progress", "-p", ports_arg])
        .args(&lab_targets)
        .arg("-oJ")
        .arg(&json)
        .output()
        .expect("run portolan");
    assert_success(&out);
    let cli = read_jsonl(&json);
    let from_cli: BTreeMap<(IpAddr, u16), (String, String)> = cli
        .ports
        .iter()
        .map(|(k, p)| (*k, (p.state.clone(), p.reason.clone())))
        .collect();
    let from_library: BTreeMap<(IpAddr, u16), (String, String)> = got
        .iter()
        .map(|(k, (s, r))| (*k, (s.as_str().to_string(), r.as_str().to_string())))
        .collect();
    assert_eq!(from_library, from_cli);
}

/// Stops the scan's token at the first finished host.
struct StopAtFirstHost {
    collected: Collected,
    stop: StopToken,
}

impl EventSink for StopAtFirstHost {
    fn event(&mut self, event: Event<'_>) {
        if matches!(event, Event::Host(_)) {
            self.stop.stop();
        }
        self.collected.event(event);
    }
}

#[test]
fn a_scan_stopped_through_its_token_reports_finished_hosts_complete() {
    let lab = lab_or_skip!(Lab::builder().hosts(3).without_icmp_rate_limits());
    let fast = lab.host(0);
    let _service = fast.listen_tcp([22]).unwrap();
    // The other two drop everything: each of their ports waits for its
    // retries, so they are still running when the first host is done.
    for slow in &lab.hosts()[1..] {
        slow.drop_tcp(1..=65535).unwrap();
    }
    let targets: Vec<String> = lab.hosts().iter().map(|h| h.ipv4().to_string()).collect();
    let mut config = syn_config(&targets, 1..=200);
    config.timing.min_rtt_timeout = Duration::from_millis(500);
    config.timing.initial_rtt_timeout = Duration::from_millis(500);
    let stop = StopToken::new();
    let mut sink = StopAtFirstHost {
        collected: Collected::default(),
        stop: stop.clone(),
    };
    let summary = in_namespace(lab.scanner().name(), || {
        Scan::new(config).unwrap().run(&mut sink, &stop).unwrap()
    })
    .unwrap();
    assert!(summary.interrupted);
    let hosts = &sink.collected.hosts;
    let first = &hosts[0];
    assert_eq!(first.target.addr, IpAddr::from(fast.ipv4()));
    assert!(
        matches!(first.status, HostStatus::Up(_)),
        "{:?}",
        first.status
    );
    assert_eq!(first.ports.len(), 200);
    for p in &first.ports {
        let want = if p.port == 22 {
            PortState::Open
        } else {
            PortState::Closed
        };
        assert_eq!(p.state, want, "port {}", p.port);
    }
    // Every other host came once, as interrupted, with no port wrong.
    let mut seen: Vec<IpAddr> = hosts.iter().map(|h| h.target.addr).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), hosts.len(), "a host came twice");
    for h in &hosts[1..] {
        assert_eq!(h.status, HostStatus::Interrupted, "{}", h.target.addr);
        assert!(h.ports.len() < 200, "{} finished", h.target.addr);
        assert!(
            h.ports
                .iter()
                .all(|p| p.state == PortState::Filtered && p.reason == Reason::NoResponse),
            "{}",
            h.target.addr
        );
    }
    assert!(sink.collected.summary.is_some());
}

#[test]
fn version_detection_streams_each_host_when_it_is_done() {
    let lab = lab_or_skip!(Lab::builder().hosts(2).without_icmp_rate_limits());
    let banner = |mut stream: std::net::TcpStream| {
        let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
    };
    let _quick = lab.host(0).listen_tcp_with([22], banner).unwrap();
    let _slow = lab.host(1).listen_tcp_with([22], banner).unwrap();
    // The second host's dropped ports keep its port scan going after the
    // first host's is done.
    lab.host(1).drop_tcp(1000..=1099).unwrap();
    let targets: Vec<String> = lab.hosts().iter().map(|h| h.ipv4().to_string()).collect();
    let mut config =
        syn_config(&targets, [22].into_iter().chain(1000..=1099)).with_version_detection();
    config.timing.min_rtt_timeout = Duration::from_millis(500);
    config.timing.initial_rtt_timeout = Duration::from_millis(500);
    let collected = in_namespace(lab.scanner().name(), || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let scan = Scan::new(config)
            .unwrap()
            .with_runtime(runtime.handle().clone());
        let mut collected = Collected::default();
        scan.run(&mut collected, &StopToken::new()).unwrap();
        collected
    })
    .unwrap();
    assert_eq!(collected.hosts.len(), 2);
    for h in &collected.hosts {
        let service = h.service(Protocol::Tcp, 22).expect("port 22 probed");
        assert_eq!(service.name, "ssh", "{}", h.target.addr);
        assert_eq!(
            service.product.as_deref(),
            Some("OpenSSH"),
            "{}",
            h.target.addr
        );
    }
    let (first, last) = (&collected.hosts[0], &collected.hosts[1]);
    assert_eq!(first.target.addr, IpAddr::from(lab.host(0).ipv4()));
    assert!(
        collected.host_times[0] < last.finished,
        "the first host came out only after the last host's port scan ended"
    );
    assert!(
        last.ports
            .iter()
            .filter(|p| p.state == PortState::Filtered)
            .count()
            == 100
    );
}

#[test]
fn scans_run_on_raw_sockets_opened_before_the_privileges_were_dropped() {
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let _service = host.listen_tcp(OPEN).unwrap();
    host.drop_tcp(DROPPED).unwrap();
    let targets = vec![host.ipv4().to_string()];
    let ports: Vec<u16> = (1..=100).chain(DROPPED).collect();
    in_namespace(lab.scanner().name(), || {
        // The raw sockets are opened here, with the privileges.
        let first = Scan::new(syn_config(&targets, ports.clone())).unwrap();
        let second = Scan::new(syn_config(&targets, ports.clone())).unwrap();
        let shared = Arc::clone(first.raw_context().expect("a SYN scan has raw sockets"));
        let second = second.with_raw_context(shared);
        std::thread::scope(|s| {
            s.spawn(|| {
                // Capabilities are per thread on Linux: this thread, and the
                // scans' sending threads it starts, hold none from here on.
                portolan_transport::sys::drop_capabilities().unwrap();
                let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
                let cap_eff = status
                    .lines()
                    .find_map(|l| l.strip_prefix("CapEff:"))
                    .map(str::trim);
                assert_eq!(cap_eff, Some("0000000000000000"));
                // A new raw scan cannot open its sockets any more...
                match Scan::new(syn_config(&targets, [22])) {
                    Err(e @ portolan_scan::ScanError::Privileges { .. }) => {
                        assert!(e.to_string().starts_with("-sS"), "{e}");
                    }
                    Err(other) => panic!("not a privilege error: {other:?}"),
                    Ok(_) => panic!("opened raw sockets without privileges"),
                }
                // ...and the two opened before run, one after the other,
                // the second on the first one's sockets.
                for scan in [first, second] {
                    let mut collected = Collected::default();
                    scan.run(&mut collected, &StopToken::new()).unwrap();
                    let got = outcomes(&collected);
                    assert_eq!(got.len(), ports.len());
                    for ((_, port), outcome) in got {
                        assert_eq!(outcome, truth(port), "port {port}");
                    }
                }
            });
        });
    })
    .unwrap();
}

/// OS detection through the library (`ScanConfig::with_os_detection`):
/// two lab hosts fingerprinted side by side after their port scan; each
/// host report carries its matches, the missing tests and the hint, and
/// the hosts come out only once the OS phase is done.
#[test]
fn os_detection_through_the_library_fills_each_host_report() {
    let lab = lab_or_skip!(Lab::builder().hosts(2).without_icmp_rate_limits());
    let mut services = Vec::new();
    let mut targets = Vec::new();
    for host in lab.hosts() {
        services.push(host.listen_tcp([22]).unwrap());
        targets.push(host.ipv4().to_string());
    }
    let recorder = in_namespace(lab.scanner().name(), || {
        run_recorded(syn_config(&targets, [22, 23]).with_os_detection())
    })
    .unwrap();
    assert_eq!(recorder.collected.hosts.len(), 2);
    for report in &recorder.collected.hosts {
        let top = report.extra.os.first().expect("a match");
        assert_eq!(top.classes[0].family, "Linux", "{top:?}");
        assert!(top.name.starts_with("Linux 6.X (lab stack: "), "{top:?}");
        let d = report.extra.os_detection.as_ref().expect("detection ran");
        assert!(d.active && d.missing.iter().any(|t| t == "T2"), "{d:?}");
        assert_eq!(
            d.hint.as_ref().and_then(|h| h.family.as_deref()),
            Some("Linux")
        );
        assert_eq!(d.ports_used.len(), 3, "{d:?}");
    }
    // Both hosts' port scans end before either host comes out.
    let first_host = recorder.kinds.iter().position(|k| *k == "host").unwrap();
    let last_phase_done = recorder
        .kinds
        .iter()
        .rposition(|k| *k == "phase-done")
        .unwrap();
    assert!(last_phase_done < first_host, "{:?}", recorder.kinds);
}
