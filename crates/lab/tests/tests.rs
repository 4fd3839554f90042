//! The lab's own integration tests: they need root, `ip` and `nft`, and skip
//! loudly (or fail under `CI`) without them. Every network operation has a
//! timeout, and nothing is ever sent outside the lab's namespaces.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

use portolan_lab::{Lab, Rejection, Tbf, lab_or_skip};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects from the scanner namespace and returns the outcome.
fn connect_from_scanner(lab: &Lab, addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    lab.scanner()
        .run(|| TcpStream::connect_timeout(&addr, timeout).map(drop))
        .expect("enter scanner namespace")
}

fn netns_names() -> HashSet<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

mod reachability {
    use super::*;

    #[test]
    fn open_closed_dropped_and_prohibited_ports_behave_like_linux() {
        let lab = lab_or_skip!();
        let host = lab.host(0);
        let _open = host.listen_tcp([8080]).unwrap();
        host.drop_tcp(8081).unwrap();
        host.reject_tcp_admin_prohibited(8082).unwrap();
        // 8083: nothing listens, no rule.

        for (v4, addr) in [(true, host.socket_v4(0)), (false, host.socket_v6(0))] {
            let at = |port| SocketAddr::new(addr.ip(), port);
            connect_from_scanner(&lab, at(8080), CONNECT_TIMEOUT).expect("open port connects");

            let closed = connect_from_scanner(&lab, at(8083), CONNECT_TIMEOUT).unwrap_err();
            assert_eq!(
                closed.kind(),
                io::ErrorKind::ConnectionRefused,
                "{addr}: {closed}"
            );

            let started = Instant::now();
            let dropped =
                connect_from_scanner(&lab, at(8081), Duration::from_millis(300)).unwrap_err();
            assert_eq!(dropped.kind(), io::ErrorKind::TimedOut, "{addr}: {dropped}");
            assert!(started.elapsed() < Duration::from_secs(2));

            // ICMP type 3 code 13 is a hard error for IPv4 (EHOSTUNREACH);
            // ICMPv6 type 1 code 1 maps to EACCES.
            let prohibited = connect_from_scanner(&lab, at(8082), CONNECT_TIMEOUT).unwrap_err();
            let expected = if v4 { libc::EHOSTUNREACH } else { libc::EACCES };
            assert_eq!(
                prohibited.raw_os_error(),
                Some(expected),
                "{addr}: {prohibited}"
            );
        }
    }

    #[test]
    fn firewall_resets_and_other_icmp_codes_map_to_errnos() {
        let lab = lab_or_skip!();
        let host = lab.host(0);
        let _open = host.listen_tcp([9000, 9001, 9002]).unwrap();
        host.reject_tcp_reset(9000).unwrap();
        host.reject_tcp_with(9001, Rejection::HostUnreachable)
            .unwrap();
        host.reject_tcp_with(9002, Rejection::PortUnreachable)
            .unwrap();
        let cases = [
            (9000, libc::ECONNREFUSED, libc::ECONNREFUSED),
            (9001, libc::EHOSTUNREACH, libc::EHOSTUNREACH),
            (9002, libc::ECONNREFUSED, libc::ECONNREFUSED),
        ];
        for (port, v4_errno, v6_errno) in cases {
            let e4 = connect_from_scanner(&lab, host.socket_v4(port), CONNECT_TIMEOUT).unwrap_err();
            assert_eq!(e4.raw_os_error(), Some(v4_errno), "v4 port {port}: {e4}");
            let e6 = connect_from_scanner(&lab, host.socket_v6(port), CONNECT_TIMEOUT).unwrap_err();
            assert_eq!(e6.raw_os_error(), Some(v6_errno), "v6 port {port}: {e6}");
        }
    }

    #[test]
    fn scanner_has_no_route_out_of_the_lab() {
        let lab = lab_or_skip!(Lab::builder().hosts(2).segment(1));
        let scanner = lab.scanner();
        assert_eq!(
            scanner
                .ip(&["-4", "route", "show", "default"])
                .unwrap()
                .trim(),
            ""
        );
        assert_eq!(
            scanner
                .ip(&["-6", "route", "show", "default"])
                .unwrap()
                .trim(),
            ""
        );
        for family in ["-4", "-6"] {
            let table = scanner
                .ip(&[family, "route", "show", "table", "all"])
                .unwrap();
            for route in table.lines() {
                let dst = route
                    .split_whitespace()
                    .find(|w| *w != "local" && *w != "broadcast" && *w != "multicast")
                    .unwrap_or("");
                let inside = dst.starts_with("198.18.")
                    || dst.starts_with("198.19.")
                    || dst.starts_with("fd00:")
                    || dst.starts_with("fe80:")
                    || dst.starts_with("ff00:")
                    || dst.starts_with("127.")
                    || dst == "::1";
                assert!(inside, "route leaves the lab: {route}");
            }
        }
    }

    #[test]
    fn random_loss_of_100_percent_silences_and_0_restores() {
        let lab = lab_or_skip!();
        let host = lab.host(0);
        let _open = host.listen_tcp([7000]).unwrap();
        host.random_loss(100).unwrap();
        let lost = connect_from_scanner(&lab, host.socket_v4(7000), Duration::from_millis(300));
        assert_eq!(lost.unwrap_err().kind(), io::ErrorKind::TimedOut);
        host.random_loss(0).unwrap();
        connect_from_scanner(&lab, host.socket_v6(7000), CONNECT_TIMEOUT).unwrap();
        host.clear_firewall().unwrap();
        assert!(!host.nft_ruleset().unwrap().contains("portolan"));
    }
}

mod services {
    use super::*;

    #[test]
    fn listeners_keep_accepting_under_a_burst() {
        let lab = lab_or_skip!();
        let host = lab.host(0);
        let service = host.listen_tcp([6000]).unwrap();
        let addr = host.socket_v4(6000);
        const BURST: u64 = 300;
        lab.scanner()
            .run(|| {
                for _ in 0..BURST {
                    TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).expect("connect");
                }
            })
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while service.accepted() < BURST && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(service.accepted(), BURST);
        service.stop();
        let after = connect_from_scanner(&lab, addr, CONNECT_TIMEOUT).unwrap_err();
        assert_eq!(after.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn handlers_can_send_banners() {
        let lab = lab_or_skip!();
        let host = lab.host(0);
        let _ssh = host
            .listen_tcp_with([2222], |mut stream| {
                let _ = stream.write_all(b"SSH-2.0-lab\r\n");
            })
            .unwrap();
        let addr = host.socket_v6(2222);
        let banner = lab
            .scanner()
            .run(|| {
                let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
                stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
                let mut banner = String::new();
                stream.read_to_string(&mut banner)?;
                io::Result::Ok(banner)
            })
            .unwrap()
            .unwrap();
        assert_eq!(banner, "SSH-2.0-lab\r\n");
    }

    #[test]
    fn udp_echo_answers_both_families() {
        let lab = lab_or_skip!();
        let host = lab.host(0);
        let echo = host.listen_udp([5353]).unwrap();
        for target in [host.socket_v4(5353), host.socket_v6(5353)] {
            let reply = lab
                .scanner()
                .run(|| {
                    let bind: SocketAddr = if target.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    }
                    .parse()
                    .unwrap();
                    let socket = UdpSocket::bind(bind)?;
                    socket.set_read_timeout(Some(CONNECT_TIMEOUT))?;
                    socket.send_to(b"ping", target)?;
                    let mut buf = [0u8; 16];
                    let (len, from) = socket.recv_from(&mut buf)?;
                    io::Result::Ok((buf[..len].to_vec(), from))
                })
                .unwrap()
                .unwrap();
            assert_eq!(reply, (b"ping".to_vec(), target));
        }
        assert_eq!(echo.echoed(), 2);
    }

    #[test]
    fn daemons_run_inside_the_namespace_and_die_on_drop() {
        let lab = lab_or_skip!();
        let host = lab.host(0);
        let mut sleeper = Command::new("sleep");
        sleeper.arg("30");
        let daemon = host.spawn(sleeper).unwrap();
        let pid = daemon.id();
        let ns_inode = std::fs::metadata(host.path()).unwrap().ino();
        let proc_ns = format!("/proc/{pid}/ns/net");
        let deadline = Instant::now() + Duration::from_secs(2);
        // The pre-exec hook runs before exec: once the command is `sleep`,
        // the namespace is final.
        while std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap_or_default()
            .trim()
            != "sleep"
        {
            assert!(Instant::now() < deadline, "sleep did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(std::fs::metadata(&proc_ns).unwrap().ino(), ns_inode);
        daemon.stop();
        // Reaped by the guard, so the pid is gone (or reused by someone else).
        let gone = std::fs::metadata(&proc_ns).map_or(true, |m| m.ino() != ns_inode);
        assert!(gone);
    }

    #[test]
    fn wait_for_tcp_sees_a_late_listener() {
        let lab = lab_or_skip!();
        let host = lab.host(0);
        let mut sleeper = Command::new("sleep");
        sleeper.arg("30");
        let mut daemon = host.spawn(sleeper).unwrap();
        let _late = host.listen_tcp([4444]).unwrap();
        daemon
            .wait_for_tcp(host.socket_v4(4444), Duration::from_secs(2))
            .unwrap();
        let err = daemon
            .wait_for_tcp(host.socket_v4(4445), Duration::from_millis(100))
            .unwrap_err();
        assert!(matches!(err, portolan_lab::LabError::Timeout(_)), "{err}");
    }

    #[test]
    fn command_in_runs_via_ip_netns_exec_with_its_own_sys() {
        let lab = lab_or_skip!();
        let out = lab
            .command_in(lab.scanner(), "ls")
            .arg("/sys/class/net")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let listing = String::from_utf8_lossy(&out.stdout);
        let mut interfaces: Vec<_> = listing.split_whitespace().collect();
        interfaces.sort_unstable();
        assert_eq!(interfaces, ["lo", lab.host(0).scanner_interface()]);
    }

    #[test]
    fn sysctls_and_qdiscs_are_per_namespace() {
        let lab = lab_or_skip!();
        let host = lab.host(0);
        host.disable_icmp_rate_limits().unwrap();
        assert_eq!(host.sysctl_value("net.ipv4.icmp_ratelimit").unwrap(), "0");
        assert_eq!(host.sysctl_value("net.ipv6.icmp.ratelimit").unwrap(), "0");
        assert_eq!(
            lab.scanner()
                .sysctl_value("net.ipv4.icmp_ratelimit")
                .unwrap(),
            "1000"
        );

        let tbf = Tbf {
            rate_bits_per_sec: 10_000_000,
            burst_bytes: 32_000,
            latency: Duration::from_millis(50),
        };
        host.tbf(host.interface(), &tbf).unwrap();
        let qdisc = host
            .exec("tc", &["qdisc", "show", "dev", "eth0"], None)
            .unwrap();
        assert!(qdisc.contains("tbf") && qdisc.contains("10Mbit"), "{qdisc}");
        host.clear_qdisc(host.interface()).unwrap();
        let closed = connect_from_scanner(&lab, host.socket_v4(1), CONNECT_TIMEOUT).unwrap_err();
        assert_eq!(closed.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn in_namespace_propagates_panics() {
        let lab = lab_or_skip!();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lab.scanner().run(|| panic!("inside")).unwrap();
        }));
        assert!(result.is_err());
    }
}

mod topology {
    use super::*;

    #[test]
    fn segment_hosts_share_one_subnet_and_answer() {
        let lab = lab_or_skip!(Lab::builder().segment(3).without_icmp_rate_limits());
        let segment = lab.segment(0);
        let mut guards = Vec::new();
        for host in segment.hosts() {
            assert_eq!(host.subnet(), segment.subnet());
            assert_eq!(host.scanner_interface(), segment.scanner_interface());
            guards.push(host.listen_tcp([80]).unwrap());
        }
        for host in segment.hosts() {
            connect_from_scanner(&lab, host.socket_v4(80), CONNECT_TIMEOUT).unwrap();
            connect_from_scanner(&lab, host.socket_v6(80), CONNECT_TIMEOUT).unwrap();
        }
        let neighbours = lab
            .scanner()
            .ip(&["neigh", "show", "dev", segment.scanner_interface()])
            .unwrap();
        for host in segment.hosts() {
            assert!(
                neighbours.contains(&format!("{} lladdr", host.ipv4())),
                "{neighbours}"
            );
        }
    }

    #[test]
    fn dropping_a_lab_removes_its_namespaces_and_processes() {
        let Some(lab) = portolan_lab::require_lab(Lab::builder().hosts(2).segment(2)) else {
            return;
        };
        let names = lab.namespace_names();
        assert_eq!(names.len(), 1 + 2 + 2 + 1);
        let present = netns_names();
        assert!(
            names.iter().all(|n| present.contains(n)),
            "{names:?} vs {present:?}"
        );

        let _listener = lab.host(0).listen_tcp([80]).unwrap();
        // A stray process (not a Daemon) is killed when its namespace goes.
        let mut stray = lab
            .command_in(lab.host(1), "sleep")
            .arg("30")
            .spawn()
            .unwrap();
        drop(lab);

        let present = netns_names();
        assert!(
            names.iter().all(|n| !present.contains(n)),
            "{names:?} left in {present:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        while stray.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "stray process survived");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn dropping_during_a_panic_cleans_up() {
        let Some(lab) = portolan_lab::require_root_lab() else {
            return;
        };
        let names = lab.namespace_names();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _lab = lab;
            panic!("test failure");
        }));
        assert!(result.is_err());
        let present = netns_names();
        assert!(names.iter().all(|n| !present.contains(n)));
    }

    #[test]
    fn parallel_labs_do_not_collide() {
        if portolan_lab::require_lab(Lab::builder()).is_none() {
            return;
        }
        let workers: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    let lab = Lab::builder().hosts(2).build().unwrap();
                    let host = lab.host(1);
                    let _open = host.listen_tcp([443]).unwrap();
                    connect_from_scanner(&lab, host.socket_v4(443), CONNECT_TIMEOUT).unwrap();
                    connect_from_scanner(&lab, host.socket_v6(443), CONNECT_TIMEOUT).unwrap();
                    // Same port, other host of the same lab: closed, not open.
                    let other =
                        connect_from_scanner(&lab, lab.host(0).socket_v4(443), CONNECT_TIMEOUT);
                    assert_eq!(other.unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
                    let subnets: HashSet<_> = lab.hosts().iter().map(|h| h.subnet()).collect();
                    assert_eq!(subnets.len(), 2);
                    lab.namespace_names()
                })
            })
            .collect();
        let mut all = HashSet::new();
        for worker in workers {
            for name in worker.join().unwrap() {
                assert!(all.insert(name.clone()), "duplicate namespace {name}");
            }
        }
        assert_eq!(all.len(), 4 * 3);
    }

    #[test]
    fn sweeper_removes_namespaces_of_dead_processes() {
        if portolan_lab::require_lab(Lab::builder()).is_none() {
            return;
        }
        let mut child = Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        let stale = format!("pl{dead_pid}x0s");
        let status = Command::new("ip")
            .args(["netns", "add", &stale])
            .status()
            .unwrap();
        assert!(status.success());
        let removed = portolan_lab::sweep_stale_namespaces().unwrap();
        // Another test's build may have swept it first.
        assert!(removed.contains(&stale) || !netns_names().contains(&stale));
        assert!(!netns_names().contains(&stale));
    }
}

/// SCTP targets: the kernel's listeners where the kernel offers SCTP, the
/// user-space responder everywhere, and the kernel's own answer to SCTP
/// where it has none. Probes are the wire crate's stamped INIT and COOKIE
/// ECHO, sent from raw sockets in the scanner namespace; answers are read
/// from a packet socket there and parsed with `parse_reply`.
mod sctp {
    use super::*;
    use std::net::IpAddr;

    use portolan_lab::{Host, LabError, kernel_sctp_support, require_kernel_sctp};
    use portolan_wire::{Reply, SctpChunk, SctpProbe, SctpTemplate, parse_reply};
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};

    const IPPROTO_SCTP: i32 = 132;
    /// How long to wait for the last answer: a bound, not an assertion.
    const ANSWER_WAIT: Duration = Duration::from_secs(5);

    /// One probe: kind, destination port, cookie.
    type Probe = (SctpProbe, u16, u32);

    /// Stamps `probes` to `dst` from the scanner, sends them, and collects
    /// the packets `dst` sends back (parsed, with their bytes) until `done`
    /// holds or [`ANSWER_WAIT`] passes.
    fn exchange(
        lab: &Lab,
        host: &Host,
        dst: IpAddr,
        probes: &[Probe],
        done: impl Fn(&[(Reply, Vec<u8>)]) -> bool + Sync,
    ) -> Vec<(Reply, Vec<u8>)> {
        let src = if dst.is_ipv4() {
            IpAddr::V4(host.scanner_ipv4())
        } else {
            IpAddr::V6(host.scanner_ipv6())
        };
        lab.scanner()
            .run(|| {
                let eth_p_all = i32::from((libc::ETH_P_ALL as u16).to_be());
                let recv = Socket::new(Domain::PACKET, Type::DGRAM, Some(eth_p_all.into()))?;
                recv.set_read_timeout(Some(Duration::from_millis(100)))?;
                // IPv4: whole packets (IPPROTO_RAW implies IP_HDRINCL);
                // IPv6: the SCTP bytes, the kernel writes the header.
                let (send, skip) = if dst.is_ipv4() {
                    let raw = Protocol::from(libc::IPPROTO_RAW);
                    (Socket::new(Domain::IPV4, Type::RAW, Some(raw))?, 0)
                } else {
                    let sctp = Protocol::from(IPPROTO_SCTP);
                    (Socket::new(Domain::IPV6, Type::RAW, Some(sctp))?, 40)
                };
                let to = SockAddr::from(SocketAddr::new(dst, 0));
                let mut buf = [0u8; SctpTemplate::MAX_LEN];
                for (i, &(kind, port, cookie)) in probes.iter().enumerate() {
                    let t = SctpTemplate::new(src, 40000, kind);
                    let n = t
                        .stamp(&mut buf, dst, 40000, port, cookie, i as u16)
                        .unwrap();
                    send.send_to(&buf[skip..n], &to)?;
                }
                let mut got = Vec::new();
                let deadline = Instant::now() + ANSWER_WAIT;
                let mut packet = vec![0u8; 65536];
                while !done(&got) && Instant::now() < deadline {
                    let n = match (&recv).read(&mut packet) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e),
                    };
                    let bytes = packet[..n].to_vec();
                    let from = match parse_reply(&bytes) {
                        Ok(Reply::Sctp { src, .. }) => src,
                        Ok(Reply::IcmpError { from, .. }) => from,
                        Ok(_) if bytes.len() >= 40 && bytes[0] >> 4 == 6 => {
                            IpAddr::from(<[u8; 16]>::try_from(&bytes[8..24]).unwrap())
                        }
                        _ => continue,
                    };
                    if from == dst {
                        got.push((parse_reply(&bytes).unwrap(), bytes));
                    }
                }
                Ok::<_, io::Error>(got)
            })
            .expect("enter scanner namespace")
            .expect("raw SCTP exchange in the scanner namespace")
    }

    /// Whether the kernel offers SCTP, after a `SKIPPED` line saying why
    /// that makes the calling test moot (the kernel answers SCTP itself).
    fn kernel_answers_sctp(why: &str) -> bool {
        let offered = kernel_sctp_support().is_ok();
        if offered {
            let thread = std::thread::current();
            let test = thread.name().unwrap_or("<unnamed>");
            let _ = writeln!(
                io::stderr().lock(),
                "SKIPPED: {test}: the kernel offers SCTP, {why}"
            );
        }
        offered
    }

    fn sctp_answers(got: &[(Reply, Vec<u8>)]) -> Vec<(u16, u32, SctpChunk)> {
        got.iter()
            .filter_map(|(r, _)| match *r {
                Reply::Sctp {
                    src_port,
                    vtag,
                    chunk,
                    ..
                } => Some((src_port, vtag, chunk)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn user_space_responder_answers_init_and_cookie_echo() {
        let lab = lab_or_skip!();
        // Where the kernel answers too, its listeners are tested instead.
        if kernel_answers_sctp("which would answer beside the responder") {
            return;
        }
        let host = lab.host(0);
        let responder = host.respond_sctp([80]).unwrap();
        for dst in host.addrs() {
            // Probes to 81 come last: once both ABORTs are in, the open
            // port's silence to COOKIE ECHO is established by order (its
            // answer would have come before them), not by a timeout.
            let probes = [
                (SctpProbe::Init, 80, 0x1111_1111),
                (SctpProbe::CookieEcho, 80, 0x2222_2222),
                (SctpProbe::Init, 81, 0x3333_3333),
                (SctpProbe::CookieEcho, 81, 0x4444_4444),
            ];
            let got = exchange(&lab, host, dst, &probes, |g| sctp_answers(g).len() >= 3);
            let answers = sctp_answers(&got);
            assert_eq!(answers.len(), 3, "{dst}: {got:?}");
            assert!(
                answers.iter().any(|a| matches!(
                    a,
                    (80, 0x1111_1111, SctpChunk::InitAck { initiate_tag }) if *initiate_tag != 0
                )),
                "{dst}: {answers:?}"
            );
            assert!(answers.contains(&(81, 0x3333_3333, SctpChunk::Abort { reflected: false })));
            assert!(answers.contains(&(81, 0x4444_4444, SctpChunk::Abort { reflected: true })));
        }
        assert_eq!(responder.answered(), 6);
    }

    #[test]
    fn host_without_sctp_answers_init_with_protocol_unreachable() {
        let lab = lab_or_skip!();
        if kernel_answers_sctp("which answers INIT with ABORT") {
            return;
        }
        let host = lab.host(0);
        let cookie = 0x5151_5151;
        let probes = [(SctpProbe::Init, 80, cookie)];
        // IPv4: protocol unreachable; IPv6: Parameter Problem, unrecognized
        // Next Header. Both quote our INIT with its cookie.
        for (dst, want) in [
            (IpAddr::V4(host.ipv4()), (3, 2)),
            (IpAddr::V6(host.ipv6()), (4, 1)),
        ] {
            let got = exchange(&lab, host, dst, &probes, |g| !g.is_empty());
            match got.first() {
                Some((
                    Reply::IcmpError {
                        icmp_type,
                        code,
                        quoted,
                        ..
                    },
                    _,
                )) => {
                    assert_eq!((*icmp_type, *code), want, "{dst}");
                    assert_eq!((quoted.protocol, quoted.dst_port), (132, 80));
                    assert_eq!(quoted.sctp_cookie(), Some(cookie));
                }
                other => panic!("{dst}: {other:?}"),
            }
        }
    }

    #[test]
    fn listen_sctp_fails_clearly_without_kernel_sctp() {
        let lab = lab_or_skip!();
        let host = lab.host(0);
        match (host.listen_sctp([9899]), kernel_sctp_support()) {
            (Ok(_), Ok(())) => {}
            (Err(LabError::SctpUnavailable { source, .. }), Err(_)) => {
                assert_eq!(source.raw_os_error(), Some(libc::EPROTONOSUPPORT));
            }
            (result, support) => panic!("{result:?} with kernel support {support:?}"),
        }
    }

    /// A kernel SCTP client in the scanner namespace.
    fn associate(lab: &Lab, addr: SocketAddr) -> io::Result<()> {
        lab.scanner()
            .run(|| {
                let socket = Socket::new(
                    Domain::for_address(addr),
                    Type::STREAM,
                    Some(Protocol::from(IPPROTO_SCTP)),
                )?;
                socket.connect_timeout(&addr.into(), CONNECT_TIMEOUT)
            })
            .expect("enter scanner namespace")
    }

    #[test]
    fn kernel_sctp_listener_accepts_and_closed_port_aborts() {
        if !require_kernel_sctp() {
            return;
        }
        let lab = lab_or_skip!();
        let host = lab.host(0);
        let listeners = host.listen_sctp([9899]).unwrap();
        for addr in [host.socket_v4(9899), host.socket_v6(9899)] {
            associate(&lab, addr).expect("an association with the kernel listener");
            let closed = SocketAddr::new(addr.ip(), 9898);
            // The kernel answers the INIT with an ABORT: refused.
            let err = associate(&lab, closed).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{closed}");
        }
        let deadline = Instant::now() + ANSWER_WAIT;
        while listeners.accepted() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(listeners.accepted(), 2);
    }
}
