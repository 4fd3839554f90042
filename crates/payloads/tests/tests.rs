//! Each payload sent to the real daemon that serves its protocol, as
//! packaged by Debian: dnsmasq (DNS), chrony (NTP), snmpd (SNMP v1 and
//! v2c), rpcbind (SunRPC portmapper) and memcached with UDP on. The test
//! checks that the daemon answers and that the answer carries the cookie
//! back ([`portolan_payloads::echoed_cookie`]).
//!
//! Each daemon runs in a lab host's own network namespace (the lab of
//! `portolan-lab`, torn down when the test ends, also on failure), bound
//! to that namespace's loopback on its standard port; the probes go from a
//! socket in the same namespace to 127.0.0.1 (and ::1 for DNS). Nothing
//! leaves the namespace.
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

use portolan_lab::{Daemon, Lab, require_lab, under_ci};
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
    let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|dir| Path::new(dir).join(program).exists());
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

/// A daemon running in its own lab host. Fields drop in order: the daemon
/// is killed, its scratch directory removed, then the lab torn down.
struct Running {
    daemon: Daemon,
    scratch: Scratch,
    lab: Lab,
}

impl Running {
    /// Starts the command `command` makes (given the scratch directory) in
    /// a new lab host, its output in the scratch log; `None` after a
    /// `SKIPPED` line when the daemon or the lab is unavailable (a panic
    /// under `CI`).
    #[track_caller]
    fn start(
        test: &str,
        program: &str,
        package: &str,
        command: impl FnOnce(&Scratch) -> Command,
    ) -> Option<Self> {
        if !daemon_available(program, package, test) {
            return None;
        }
        let lab = require_lab(Lab::builder().hosts(1))?;
        let scratch = Scratch::new(program);
        let mut command = command(&scratch);
        let log = fs::File::create(scratch.path("log")).expect("a log file");
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log);
        let daemon = lab.host(0).spawn(command).expect("the daemon starts");
        Some(Self {
            daemon,
            scratch,
            lab,
        })
    }

    /// Sends `payload` to `to` from a socket in the host's namespace until
    /// an answer comes (the daemon may still be binding), and returns it.
    fn exchange(&mut self, to: SocketAddr, payload: &[u8]) -> Vec<u8> {
        for _ in 0..TRIES {
            if let Ok(Some(status)) = self.daemon.try_wait() {
                panic!(
                    "`{}` exited ({status}):\n{}",
                    self.daemon.command_line(),
                    self.scratch.log()
                );
            }
            let answer = self
                .lab
                .host(0)
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
                    assert_eq!(from, to, "an answer from elsewhere");
                    buf.truncate(n);
                    Some(buf)
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
    let Some(mut dns) =
        Running::start("dnsmasq_answers_version_bind", "dnsmasq", "dnsmasq", |_| {
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
        })
    else {
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
    let Some(mut portmapper) =
        Running::start("rpcbind_answers_null_call", "rpcbind", "rpcbind", |_| {
            // rpcbind keeps a lock and a socket under /run, shared by the whole
            // machine: give it a private /run in a mount namespace of its own.
            // In the host's network namespace it binds only that namespace's
            // loopback (its one interface up).
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
        })
    else {
        return;
    };
    portmapper.check_echoes(V4, 111);
}

#[test]
fn memcached_answers_version_over_udp() {
    let Some(mut cache) = Running::start(
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
