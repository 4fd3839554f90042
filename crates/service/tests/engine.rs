//! The probe engine against servers this test runs on 127.0.0.1: a
//! banner, a silent HTTP server, a server that closes at once, TLS (with
//! `openssl s_server`), and hostile servers (megabytes, a drip, never a
//! close, broken TLS). Times are checked only as generous hang guards.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use portolan_engine::{ServiceInfo, ServiceMethod};
use portolan_service::{DetectOptions, builtin, detect_all};

/// How long any test server lives at most.
const SERVER_LIFE: Duration = Duration::from_secs(60);

/// A server on 127.0.0.1 that runs `handler` on a thread per connection
/// and stops accepting when dropped (handlers end by their own bounds).
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handler = Arc::new(handler);
        thread::spawn(move || {
            let born = Instant::now();
            while !flag.load(Ordering::Relaxed) && born.elapsed() < SERVER_LIFE {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let h = Arc::clone(&handler);
                        thread::spawn(move || h(stream));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Server { addr, stop }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn options(timeout: Duration) -> DetectOptions {
    DetectOptions {
        service_timeout: timeout,
        ..DetectOptions::default()
    }
}

fn detect(addrs: &[SocketAddr], timeout: Duration) -> Vec<ServiceInfo> {
    let db = Arc::new(builtin().db);
    detect_all(db, addrs, &options(timeout)).unwrap()
}

/// Reads what the client sends until `end` appears or 10 s pass (longer
/// than the NULL probe waits, as real servers do).
fn read_request(stream: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(end.len()).any(|w| w == end) && got.len() < 65536 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

#[test]
fn banner_silent_http_and_tcpwrapped_in_parallel() {
    let ssh = Server::start(|mut s| {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
        let _ = read_request(&mut s, b"\n");
    });
    let http = Server::start(|mut s| {
        let req = read_request(&mut s, b"\r\n\r\n");
        if req.starts_with(b"GET / HTTP/1.0\r\n") {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n\r\nhello");
        }
    });
    let wrapped = Server::start(drop);
    let found = detect(
        &[ssh.addr, http.addr, wrapped.addr],
        Duration::from_secs(20),
    );
    assert_eq!(found[0].name, "ssh");
    assert_eq!(found[0].product.as_deref(), Some("OpenSSH"));
    assert_eq!(found[0].version.as_deref(), Some("9.2p1 Debian 2+deb12u3"));
    assert_eq!(found[0].extrainfo.as_deref(), Some("protocol 2.0"));
    assert_eq!(found[0].method, ServiceMethod::Probed);
    assert_eq!(found[0].conf, 10);
    assert!(found[0].banner.starts_with(b"SSH-2.0-"));
    assert_eq!(found[1].name, "http");
    assert_eq!(found[1].version_line(), "nginx 1.22.1");
    assert_eq!(found[1].cpe, vec!["cpe:/a:f5:nginx:1.22.1".to_string()]);
    assert_eq!(found[2].name, "tcpwrapped");
}

#[test]
fn soft_match_narrows_to_the_service_probe() {
    // Redis-like: answers GET with its argument error, INFO with a version.
    let redis = Server::start(|mut s| {
        for _ in 0..4 {
            let req = read_request(&mut s, b"\r\n");
            if req.is_empty() {
                return;
            }
            let answer: &[u8] = if req.starts_with(b"GET") {
                b"-ERR wrong number of arguments for 'get' command\r\n"
            } else if req.starts_with(b"*2\r\n$4\r\nINFO") {
                b"$30\r\n# Server\r\nredis_version:7.0.15\r\n"
            } else {
                b"-ERR unknown command\r\n"
            };
            if s.write_all(answer).is_err() {
                return;
            }
        }
    });
    let found = detect(&[redis.addr], Duration::from_secs(30));
    assert_eq!(found[0].name, "redis");
    assert_eq!(found[0].version.as_deref(), Some("7.0.15"));
}

/// A soft match stays when more bytes then break its anchored pattern
/// (memcached's `ERROR` lines, followed here by junk; only the HTTP probe
/// gets an answer).
#[test]
fn a_soft_match_survives_later_bytes() {
    let server = Server::start(|mut s| {
        if !read_request(&mut s, b"\n").starts_with(b"GET ") {
            return;
        }
        let _ = s.write_all(b"ERROR\r\n");
        thread::sleep(Duration::from_millis(300));
        let _ = s.write_all(b"junk");
        thread::sleep(Duration::from_secs(6));
    });
    let found = detect(&[server.addr], Duration::from_secs(30));
    assert_eq!(found[0].name, "memcached");
    assert_eq!(found[0].product, None);
}

/// A server that floods, one that drips a byte every 100 ms, and one that
/// accepts and never speaks or closes: each ends within the service
/// timeout, the flood is read no further than the reply buffer, and the
/// others are not held up.
#[test]
fn hostile_servers_cost_bounded_time_and_memory() {
    let flooded = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&flooded);
    let flood = Server::start(move |mut s| {
        let chunk = vec![b'A'; 64 * 1024];
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            match s.write(&chunk) {
                Ok(n) => {
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(_) => return,
            }
        }
    });
    let drip = Server::start(|mut s| {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if s.write_all(b"\x1b").is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let mute = Server::start(|s| {
        thread::sleep(Duration::from_secs(30));
        drop(s);
    });
    let ssh = Server::start(|mut s| {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
        let _ = read_request(&mut s, b"\n");
    });
    let started = Instant::now();
    let found = detect(
        &[flood.addr, drip.addr, mute.addr, ssh.addr],
        Duration::from_secs(4),
    );
    // Hang guard only: four ports of a 4 s budget in parallel.
    assert!(started.elapsed() < Duration::from_secs(25));
    assert_eq!(found[3].name, "ssh");
    assert_eq!(found[3].version.as_deref(), Some("9.6"));
    for info in &found[..3] {
        assert!(info.banner.len() <= portolan_service::detect::BANNER_BYTES);
    }
    assert!(found[0].banner.starts_with(b"AAAA"));
    assert!(found[1].banner.starts_with(b"\x1b"));
    // The flood was read no further than a reply buffer per probe plus the
    // kernel's socket buffers: far less than it offered in 30 s.
    thread::sleep(Duration::from_millis(500));
    let sent = flooded.load(Ordering::Relaxed);
    assert!(sent < 64 * 1024 * 1024, "the scanner read {sent} bytes");
}

/// Ctrl-C: the stop flag ends detection early; unfinished ports get the
/// port table's name.
#[test]
fn the_stop_flag_ends_detection_early() {
    let mute = Server::start(|s| {
        thread::sleep(Duration::from_secs(20));
        drop(s);
    });
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        flag.store(true, Ordering::Relaxed);
    });
    let started = Instant::now();
    let found = detect_all(
        Arc::new(builtin().db),
        &[mute.addr],
        &DetectOptions {
            stop: Some(stop),
            ..options(Duration::from_secs(60))
        },
    )
    .unwrap();
    // Hang guard only: far below the 60 s service timeout.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(found[0].method, ServiceMethod::Table);
}

/// A peer that answers like TLS and then sends garbage: the port is named
/// `ssl` without a handshake, within the timeout.
#[test]
fn broken_tls_is_named_ssl() {
    let broken = Server::start(|mut s| {
        let _ = read_request(&mut s, b"\n");
        let _ = s.write_all(b"\x16\x03\x01\x00\x05\x02garbage\xff\xfe\x1b[2J");
        thread::sleep(Duration::from_secs(2));
    });
    let found = detect(&[broken.addr], Duration::from_secs(15));
    assert_eq!(found[0].name, "ssl");
    assert!(found[0].tls.is_none());
}

/// An `openssl s_server` killed when dropped.
struct OpensslServer(Child);

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tls_handshake_records_the_certificate_and_probes_inside() {
    if Command::new("openssl").arg("version").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "CI is set but openssl is missing"
        );
        eprintln!("SKIPPED: openssl is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("portolan-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=lab.test",
            "-addext",
            "subjectAltName=DNS:lab.test,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = OpensslServer(
        Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server did not start");
        thread::sleep(Duration::from_millis(50));
    }
    let found = detect(&[addr], Duration::from_secs(20));
    drop(server);
    let info = &found[0];
    assert!(info.ssl, "{info:?}");
    assert_eq!(info.full_name(), "ssl/http");
    let tls = info.tls.as_ref().unwrap();
    assert_eq!(tls.subject, "CN=lab.test");
    assert_eq!(tls.issuer, "CN=lab.test");
    assert_eq!(tls.san, vec!["DNS:lab.test", "IP:127.0.0.1"]);
    assert_eq!(tls.key_type, "RSA 2048");
    assert!(tls.protocol.starts_with("TLSv1."));
    assert!(tls.not_before.unwrap() < tls.not_after.unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A UDP server on 127.0.0.1 that answers each datagram with what
/// `answer` returns for it (nothing for `None`), for [`SERVER_LIFE`] at
/// most.
fn udp_server(answer: fn(&[u8]) -> Option<Vec<u8>>) -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    thread::spawn(move || {
        let born = Instant::now();
        let mut buf = [0u8; 2048];
        while born.elapsed() < SERVER_LIFE {
            if let Ok((n, from)) = socket.recv_from(&mut buf)
                && let Some(reply) = answer(&buf[..n])
            {
                let _ = socket.send_to(&reply, from);
            }
        }
    });
    addr
}

/// UDP ports (issue 6): a memcached-like server is named from its answer
/// to the memcached probe among all the probes sent at once; a server
/// that answers noise is answered but unnamed; a closed port (ICMP port
/// unreachable) and a silent one are not answered.
#[test]
fn udp_ports_are_probed_at_once_and_answers_prove_them_open() {
    use portolan_service::db::Transport;
    use portolan_service::{DetectTarget, detect_targets};
    let memcached = udp_server(|d| {
        let header = d.get(..8)?;
        (&d[8..] == b"version\r\n").then(|| [header, b"VERSION 1.6.18\r\n"].concat())
    });
    let noise = udp_server(|_| Some(b"hello".to_vec()));
    let silent = udp_server(|_| None);
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let targets: Vec<DetectTarget> = [memcached, noise, silent, closed]
        .iter()
        .map(|&addr| DetectTarget {
            addr,
            transport: Transport::Udp,
            rtt: None,
        })
        .collect();
    let started = Instant::now();
    let found = detect_targets(
        Arc::new(builtin().db),
        &targets,
        &options(Duration::from_secs(20)),
    )
    .unwrap();
    // Hang guard only (the probes of a port go at once: the silent port
    // costs one probe's wait of 5 s, where one after the other would
    // take over 40).
    assert!(started.elapsed() < Duration::from_secs(40));
    assert!(found[0].answered);
    assert_eq!(found[0].info.name, "memcached");
    assert_eq!(found[0].info.version.as_deref(), Some("1.6.18"));
    assert_eq!(found[0].info.method, ServiceMethod::Probed);
    assert!(found[1].answered);
    assert_eq!(found[1].info.method, ServiceMethod::Table);
    assert_eq!(found[1].info.banner, b"hello");
    assert!(!found[2].answered);
    assert!(!found[3].answered);
    assert!(found[3].info.banner.is_empty());
}
