//! Each payload sent to the real daemon that serves its protocol, as
//! packaged by Debian: dnsmasq (DNS), chrony (NTP), snmpd (SNMP v1 and
//! v2c), rpcbind (SunRPC portmapper), memcached with UDP on, libcoap's
//! coap-server (CoAP), strongSwan's charon (IKEv2, IKEv1, NAT-T),
//! tftpd-hpa (TFTP) and Kamailio (SIP). The test checks that the daemon answers and that the
//! answer carries the cookie back ([`portolan_payloads::echoed_cookie`]).
//!
//! Each daemon runs in a network namespace of its own whose only interface
//! is loopback (the scanner namespace of a `portolan-lab` lab without
//! hosts, torn down when the test ends, also on failure), on its standard
//! port: even a daemon that binds the wildcard address listens on loopback
//! alone (tftpd, which needs another address to exist, runs in a lab host
//! bound to 127.0.0.1). The probes go from a socket in the same namespace
//! to 127.0.0.1 (and ::1 for DNS). Nothing leaves the namespace.
//!
//! Requirements: root and the lab's tools (else `SKIPPED`, a failure under
//! `CI`), and the daemon's binary: a missing daemon prints a `SKIPPED:`
//! line, and fails the test when `CI` is set. `scripts/test` installs them.
//! No assertion on time: the exchange retries for a bounded while because
//! a daemon needs a moment to bind.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use portolan_lab::{Daemon, Lab, Namespace, require_lab, under_ci};
use portolan_payloads::{echo, echoed_cookie, payload_for, snmp};

/// Cookies tried against each daemon: a plain one, one with every high bit
/// set (negative as an SNMP request-id), and one with zero low bits.
const COOKIES: [u32; 3] = [0x1234_5678, 0xfedc_ba98, 0x8000_0000];
/// Sends per exchange before giving up, each waiting this long for the
/// answer.
const TRIES: u32 = 50;
const WAIT: Duration = Duration::from_millis(200);

/// Whether `program` is installed; otherwise a `SKIPPED` line, or a panic
/// under `CI`.
fn daemon_available(program: &str, package: &str, test: &str) -> bool {
    let found = if program.starts_with('/') {
        Path::new(program).exists()
    } else {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|dir| Path::new(dir).join(program).exists())
    };
    if !found {
        let reason = format!(
            "`{program}` is not installed (Debian package `{package}`; scripts/test installs it)"
        );
        assert!(!under_ci(), "{test}: {reason}");
        eprintln!("SKIPPED: {test}: {reason}");
    }
    found
}

/// A scratch directory for a daemon's configuration and logs, removed on
/// drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("portolan-payloads-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a scratch directory");
        Self(dir)
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, contents).expect("a scratch file");
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The daemon's log, for failure messages.
    fn log(&self) -> String {
        fs::read_to_string(self.path("log")).unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Where a daemon runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A namespace whose only interface is loopback.
    Loopback,
    /// A lab host's namespace, which has a lab address (198.18.0.0/15,
    /// fd00::/8) besides loopback, for daemons that resolve their own
    /// listening address with `AI_ADDRCONFIG` (which ignores loopback
    /// addresses) but still bind it to loopback alone.
    LabHost,
}

/// A daemon running in a lab's namespace ([`Place`]). Fields drop in
/// order: the daemon is killed, its scratch directory removed, then the
/// lab torn down.
struct Running {
    daemon: Daemon,
    scratch: Scratch,
    lab: Lab,
    /// Whether the daemon runs in the lab's host rather than its scanner
    /// namespace.
    on_host: bool,
}

impl Running {
    /// Starts the command `command` makes (given the scratch directory) in
    /// a new lab's namespace at `place`, its output in the scratch log;
    /// `None` after a `SKIPPED` line when the daemon or the lab is
    /// unavailable (a panic under `CI`).
    #[track_caller]
    fn start(
        place: Place,
        test: &str,
        program: &str,
        package: &str,
        command: impl FnOnce(&Scratch) -> Command,
    ) -> Option<Self> {
        if !daemon_available(program, package, test) {
            return None;
        }
        let on_host = place == Place::LabHost;
        // Without hosts a lab is its scanner namespace alone, with `lo` as
        // its only interface.
        let lab = require_lab(Lab::builder().hosts(usize::from(on_host)))?;
        let name = Path::new(program).file_name().and_then(|n| n.to_str());
        let scratch = Scratch::new(name.unwrap_or("daemon"));
        let mut command = command(&scratch);
        let log = fs::File::create(scratch.path("log")).expect("a log file");
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log);
        let namespace = if on_host {
            lab.host(0).namespace()
        } else {
            lab.scanner()
        };
        let daemon = namespace.spawn(command).expect("the daemon starts");
        Some(Self {
            daemon,
            scratch,
            lab,
            on_host,
        })
    }

    /// The daemon's namespace.
    fn namespace(&self) -> &Namespace {
        if self.on_host {
            self.lab.host(0).namespace()
        } else {
            self.lab.scanner()
        }
    }

    /// Sends `payload` to `to` from a socket in the daemon's namespace until
    /// an answer comes from `to` (the daemon may still be binding), and
    /// returns it.
    fn exchange(&mut self, to: SocketAddr, payload: &[u8]) -> Vec<u8> {
        let (answer, from) = self.exchange_any(to, payload);
        assert_eq!(from, to, "an answer from elsewhere");
        answer
    }

    /// [`Running::exchange`], accepting the answer from any port (TFTP's),
    /// and returning where it came from.
    fn exchange_any(&mut self, to: SocketAddr, payload: &[u8]) -> (Vec<u8>, SocketAddr) {
        for _ in 0..TRIES {
            if let Ok(Some(status)) = self.daemon.try_wait() {
                panic!(
                    "`{}` exited ({status}):\n{}",
                    self.daemon.command_line(),
                    self.scratch.log()
                );
            }
            let answer = self
                .namespace()
                .run(|| {
                    let local: IpAddr = if to.is_ipv4() {
                        Ipv4Addr::LOCALHOST.into()
                    } else {
                        Ipv6Addr::LOCALHOST.into()
                    };
                    let socket = UdpSocket::bind((local, 0)).expect("a UDP socket");
                    socket.set_read_timeout(Some(WAIT)).expect("a timeout");
                    socket.send_to(payload, to).ok()?;
                    let mut buf = vec![0u8; 65536];
                    let (n, from) = socket.recv_from(&mut buf).ok()?;
                    buf.truncate(n);
                    Some((buf, from))
                })
                .expect("entering the namespace");
            if let Some(answer) = answer {
                return answer;
            }
        }
        panic!(
            "no answer from `{}` on {to} after {TRIES} tries:\n{}",
            self.daemon.command_line(),
            self.scratch.log()
        );
    }

    /// Sends the payload of `port` with each cookie and checks that the
    /// answer echoes the cookie's bits, and only the right cookie's.
    fn check_echoes(&mut self, ip: IpAddr, port: u16) {
        for cookie in COOKIES {
            let mut buf = [0u8; portolan_payloads::MAX_PAYLOAD_LEN];
            let n = payload_for(port, cookie, &mut buf).expect("a payload");
            let answer = self.exchange(SocketAddr::new(ip, port), &buf[..n]);
            let echoed = echo(port, &answer)
                .unwrap_or_else(|| panic!("not an answer to {cookie:#x}: {answer:02x?}"));
            assert_eq!(
                echoed_cookie(port, &answer),
                Some(cookie & echoed.mask),
                "{answer:02x?}"
            );
            assert!(echoed.matches(cookie));
            assert!(!echoed.matches(cookie ^ 1), "the low bit is checked");
            assert!(echoed.mask >= 0xffff, "at least 16 bits checked");
        }
    }
}

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

#[test]
fn dnsmasq_answers_version_bind() {
    let Some(mut dns) = Running::start(
        Place::Loopback,
        "dnsmasq_answers_version_bind",
        "dnsmasq",
        "dnsmasq",
        |_| {
            let mut command = Command::new("dnsmasq");
            command.args([
                "--keep-in-foreground",
                "--port=53",
                "--listen-address=127.0.0.1,::1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--user=root",
            ]);
            command
        },
    ) else {
        return;
    };
    dns.check_echoes(V4, 53);
    dns.check_echoes(V6, 53);
    // dnsmasq answers `version.bind` with its version in a TXT record.
    let mut buf = [0u8; 512];
    let n = payload_for(53, 1, &mut buf).unwrap();
    let answer = dns.exchange(SocketAddr::new(V4, 53), &buf[..n]);
    assert!(answer.windows(7).any(|w| w == b"dnsmasq"), "{answer:02x?}");
}

#[test]
fn chrony_answers_ntp_client_request() {
    let Some(mut ntp) = Running::start(
        Place::Loopback,
        "chrony_answers_ntp_client_request",
        "chronyd",
        "chrony",
        |scratch| {
            let config = scratch.file(
                "chrony.conf",
                &format!(
                    "port 123\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 10\n\
                 cmdport 0\nbindcmdaddress /\npidfile {}\ndriftfile {}\n",
                    scratch.path("pid").display(),
                    scratch.path("drift").display()
                ),
            );
            let mut command = Command::new("chronyd");
            // Foreground, never touch the clock, keep root, this configuration.
            command.args(["-d", "-x", "-u", "root", "-f"]).arg(&config);
            command
        },
    ) else {
        return;
    };
    ntp.check_echoes(V4, 123);
}

#[test]
fn snmpd_answers_get_request_v1_and_v2c() {
    let Some(mut agent) = Running::start(
        Place::Loopback,
        "snmpd_answers_get_request_v1_and_v2c",
        "snmpd",
        "snmpd",
        |scratch| {
            let config = scratch.file(
                "snmpd.conf",
                "agentaddress udp:127.0.0.1:161\nrocommunity public 127.0.0.1\n",
            );
            let mut command = Command::new("snmpd");
            // Foreground, only this configuration, log to the scratch log.
            command
                .args(["-f", "-C", "-c"])
                .arg(&config)
                .arg("-Lf")
                .arg(scratch.path("log"))
                .arg("-p")
                .arg(scratch.path("pid"))
                .env("SNMP_PERSISTENT_DIR", scratch.path("persistent"))
                .env("MIBS", "");
            command
        },
    ) else {
        return;
    };
    agent.check_echoes(V4, 161);
    // Version 2c too, and the answer holds sysDescr (the kernel's name).
    for cookie in COOKIES {
        let mut buf = [0u8; 256];
        let n = snmp::get_request(snmp::Version::V2c, cookie, &mut buf).unwrap();
        let answer = agent.exchange(SocketAddr::new(V4, 161), &buf[..n]);
        assert_eq!(echoed_cookie(161, &answer), Some(cookie), "{answer:02x?}");
        assert!(answer.windows(5).any(|w| w == b"Linux"), "{answer:02x?}");
    }
}

#[test]
fn rpcbind_answers_null_call() {
    let Some(mut portmapper) = Running::start(
        Place::Loopback,
        "rpcbind_answers_null_call",
        "rpcbind",
        "rpcbind",
        |_| {
            // rpcbind keeps a lock and a socket under /run, shared by the whole
            // machine: give it a private /run in a mount namespace of its own.
            let mut command = Command::new("unshare");
            command.args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                "mount -t tmpfs tmpfs /run && mkdir -p /run/rpcbind && exec rpcbind -f",
            ]);
            command
        },
    ) else {
        return;
    };
    portmapper.check_echoes(V4, 111);
}

#[test]
fn memcached_answers_version_over_udp() {
    let Some(mut cache) = Running::start(
        Place::Loopback,
        "memcached_answers_version_over_udp",
        "memcached",
        "memcached",
        |_| {
            let mut command = Command::new("memcached");
            // UDP on 11211, TCP off, loopback only.
            command.args(["-U", "11211", "-p", "0", "-l", "127.0.0.1", "-u", "root"]);
            command
        },
    ) else {
        return;
    };
    cache.check_echoes(V4, 11211);
    let mut buf = [0u8; 64];
    let n = payload_for(11211, 1, &mut buf).unwrap();
    let answer = cache.exchange(SocketAddr::new(V4, 11211), &buf[..n]);
    assert!(answer[8..].starts_with(b"VERSION "), "{answer:02x?}");
}

#[test]
fn coap_server_answers_get_well_known_core() {
    let Some(mut server) = Running::start(
        Place::Loopback,
        "coap_server_answers_get_well_known_core",
        "coap-server-notls",
        "libcoap3-bin",
        |_| {
            let mut command = Command::new("coap-server-notls");
            command.args(["-A", "127.0.0.1", "-p", "5683"]);
            command
        },
    ) else {
        return;
    };
    server.check_echoes(V4, 5683);
    // A piggybacked 2.05 Content with the token: all 32 bits, and the
    // link format listing of RFC 6690.
    let mut buf = [0u8; 64];
    let n = payload_for(5683, 0x0bad_cafe, &mut buf).unwrap();
    let answer = server.exchange(SocketAddr::new(V4, 5683), &buf[..n]);
    assert_eq!(answer[1], 0x45, "2.05 Content: {answer:02x?}");
    assert_eq!(echo(5683, &answer).map(|e| e.mask), Some(u32::MAX));
    assert!(answer.windows(2).any(|w| w == b"</"), "{answer:02x?}");
}

#[test]
fn strongswan_answers_ike_sa_init() {
    let Some(mut responder) = Running::start(
        Place::Loopback,
        "strongswan_answers_ike_sa_init",
        "/usr/lib/ipsec/charon",
        "strongswan-charon",
        |scratch| {
            let config = scratch.file(
                "strongswan.conf",
                "charon {\n  port = 500\n  port_nat_t = 4500\n  install_routes = no\n  \
                 filelog {\n    stderr { default = 1 }\n  }\n}\n",
            );
            // charon keeps its pid file and control socket under /run:
            // give it a private one, as for rpcbind.
            let mut command = Command::new("unshare");
            command
                .args([
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    "mount -t tmpfs tmpfs /run && exec /usr/lib/ipsec/charon",
                ])
                .env("STRONGSWAN_CONF", config);
            command
        },
    ) else {
        return;
    };
    // IKEv2 on 500 and, behind the non-ESP marker, on 4500: with no
    // connection configured, charon refuses the proposal under our SPI.
    responder.check_echoes(V4, 500);
    responder.check_echoes(V4, 4500);
    // IKEv1 Main Mode too.
    for cookie in COOKIES {
        let mut buf = [0u8; 256];
        let n = portolan_payloads::ike::v1_main_mode(cookie, &mut buf).unwrap();
        let answer = responder.exchange(SocketAddr::new(V4, 500), &buf[..n]);
        assert_eq!(echoed_cookie(500, &answer), Some(cookie), "{answer:02x?}");
    }
}

#[test]
fn tftpd_answers_read_request_from_a_new_port() {
    let Some(mut server) = Running::start(
        Place::LabHost,
        "tftpd_answers_read_request_from_a_new_port",
        "in.tftpd",
        "tftpd-hpa",
        |scratch| {
            let root = scratch.path("root");
            fs::create_dir_all(&root).expect("the TFTP root");
            let mut command = Command::new("in.tftpd");
            // Foreground, on loopback, serving `root`, as root.
            command
                .args([
                    "--foreground",
                    "--address",
                    "127.0.0.1:69",
                    "--user",
                    "root",
                    "--secure",
                ])
                .arg(&root);
            command
        },
    ) else {
        return;
    };
    let to = SocketAddr::new(V4, 69);
    let mut buf = [0u8; 64];
    let n = payload_for(69, 1, &mut buf).unwrap();
    // No such file: an ERROR, from the server's new port.
    let (answer, from) = server.exchange_any(to, &buf[..n]);
    assert_eq!(from.ip(), to.ip());
    assert_ne!(
        from.port(),
        69,
        "RFC 1350: the answer comes from a new port"
    );
    assert_eq!(&answer[..2], &[0, 5], "ERROR: {answer:02x?}");
    assert_eq!(
        echo(69, &answer).map(|e| e.mask),
        Some(0),
        "no cookie in TFTP"
    );
    // The file present: DATA block 1.
    fs::write(server.scratch.path("root").join("portolan"), b"hello").unwrap();
    let (answer, _) = server.exchange_any(to, &buf[..n]);
    assert_eq!(answer, b"\x00\x03\x00\x01hello");
    assert!(echo(69, &answer).is_some());
}

#[test]
fn kamailio_answers_options() {
    let Some(mut proxy) = Running::start(
        Place::Loopback,
        "kamailio_answers_options",
        "kamailio",
        "kamailio",
        |scratch| {
            // The smallest routing script: 200 to OPTIONS, 501 otherwise,
            // both stateless replies that copy Via, From, To, Call-ID and
            // CSeq (RFC 3261, section 8.2.6.2).
            let config = scratch.file(
                "kamailio.cfg",
                "#!KAMAILIO\nlisten=udp:127.0.0.1:5060\nchildren=1\n\
                 mpath=\"/usr/lib/x86_64-linux-gnu/kamailio/modules/\"\n\
                 loadmodule \"sl.so\"\nloadmodule \"textops.so\"\n\
                 request_route {\n  if (is_method(\"OPTIONS\")) {\n    \
                 sl_send_reply(\"200\", \"OK\");\n    exit;\n  }\n  \
                 sl_send_reply(\"501\", \"Not Implemented\");\n}\n",
            );
            let mut command = Command::new("kamailio");
            // Foreground with its children, log to stderr, runtime files in
            // the scratch directory.
            command
                .args(["-DD", "-E", "-u", "root", "-f"])
                .arg(&config)
                .arg("-P")
                .arg(scratch.path("pid"))
                .arg("-Y")
                .arg(scratch.path(""));
            command
        },
    ) else {
        return;
    };
    proxy.check_echoes(V4, 5060);
    let mut buf = [0u8; 512];
    let n = payload_for(5060, 0x00c0_ffee, &mut buf).unwrap();
    let answer = proxy.exchange(SocketAddr::new(V4, 5060), &buf[..n]);
    assert!(
        answer.starts_with(b"SIP/2.0 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}
