//! Version detection (`-sV`) against real daemons started inside a lab
//! host's namespace: OpenSSH, nginx (HTTP on 80 and 8081, HTTPS with a
//! self-signed certificate on 443 and 8444), Redis and memcached, vsftpd,
//! dnsmasq, mosquitto, rpcbind, MariaDB, PostgreSQL, Dovecot and Exim over
//! TCP, and dnsmasq, rpcbind, chrony, snmpd and memcached over UDP (`-sU
//! -sV`), each identified with the product and version of the installed
//! Debian package; and against hostile services (a flood, a drip, a mute peer,
//! terminal escapes with invalid UTF-8, broken TLS) that must cost
//! bounded time and memory and leave the output escaped.
//!
//! Daemons listen only inside the lab namespace and are killed when their
//! guards drop (also on failure). Without root or the daemons the tests
//! skip loudly, and fail under CI (`scripts/test` installs the packages).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use portolan_lab::{Daemon, Host, Lab, lab_or_skip, under_ci};
use serde_json::Value;

#[path = "util.rs"]
#[allow(dead_code)]
mod util;

use util::{assert_success, portolan_bin, scratch_dir};

/// How long a hostile service keeps misbehaving at most.
const HOSTILE_BOUND: Duration = Duration::from_secs(20);

/// How long a daemon may take to start listening (a hang guard: a loaded
/// CI machine starts MariaDB slowly).
const START_WAIT: Duration = Duration::from_secs(60);

/// The daemons' programs, with the Debian packages that carry them.
const PROGRAMS: [(&str, &str); 5] = [
    ("/usr/sbin/sshd", "openssh-server"),
    ("/usr/sbin/nginx", "nginx"),
    ("/usr/bin/redis-server", "redis-server"),
    ("/usr/bin/memcached", "memcached"),
    ("/usr/bin/openssl", "openssl"),
];

/// Whether every program is installed; skips loudly (fails under CI) if
/// not.
fn installed(test: &str, programs: &[(&str, &str)]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !under_ci(),
        "CI is set but these packages are missing: {missing:?}"
    );
    eprintln!("SKIPPED: {test}: install {missing:?} (scripts/test does)");
    false
}

/// The installed version of a Debian package (`1:9.2p1-2+deb12u3`).
fn package_version(package: &str) -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()
        .expect("dpkg-query");
    assert!(out.status.success(), "{package} is not installed");
    String::from_utf8(out.stdout).unwrap()
}

/// A Debian version without its epoch, split into upstream version and
/// Debian revision: `1:9.2p1-2+deb12u3` → (`9.2p1`, `2+deb12u3`).
fn upstream_and_revision(version: &str) -> (String, String) {
    let no_epoch = version.split_once(':').map_or(version, |(_, v)| v);
    match no_epoch.rsplit_once('-') {
        Some((up, rev)) => (up.to_string(), rev.to_string()),
        None => (no_epoch.to_string(), String::new()),
    }
}

fn run_ok(command: &mut Command) {
    let out = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed certificate and key for `lab.test`.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    run_ok(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=lab.test",
                "-addext",
                "subjectAltName=DNS:lab.test",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    (cert, key)
}

fn start(host: &Host, command: Command, port: u16) -> Daemon {
    let mut daemon = host.spawn(command).expect("spawn daemon");
    daemon
        .wait_for_tcp(host.socket_v4(port), START_WAIT)
        .expect("daemon listening");
    daemon
}

fn sshd(host: &Host, dir: &Path) -> Daemon {
    let key = dir.join("ssh_host_ed25519_key");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(&key),
    );
    // sshd wants its privilege-separation directory.
    std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
    let mut cmd = Command::new("/usr/sbin/sshd");
    cmd.args(["-D", "-e", "-f", "/dev/null", "-p", "22"])
        .arg("-h")
        .arg(&key)
        .args(["-o", "PidFile=none", "-o", "UsePAM=no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    start(host, cmd, 22)
}

fn nginx(host: &Host, dir: &Path) -> Daemon {
    let (cert, key) = certificate(dir);
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "lab\n").unwrap();
    let d = dir.display();
    let conf = format!(
        "daemon off;\n\
         worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
           access_log off;\n\
           client_body_temp_path {d}/body;\n\
           proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n\
           uwsgi_temp_path {d}/uwsgi;\n\
           scgi_temp_path {d}/scgi;\n\
           server {{ listen 80; listen 8081; root {www}; }}\n\
           server {{ listen 443 ssl; listen 8444 ssl; root {www};\n\
                    ssl_certificate {cert}; ssl_certificate_key {key}; }}\n\
         }}\n",
        www = www.display(),
        cert = cert.display(),
        key = key.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new("/usr/sbin/nginx");
    cmd.arg("-c")
        .arg(&path)
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut daemon = start(host, cmd, 80);
    daemon
        .wait_for_tcp(host.socket_v4(443), START_WAIT)
        .expect("nginx on 443");
    daemon
}

fn redis(host: &Host, dir: &Path) -> Daemon {
    let mut cmd = Command::new("/usr/bin/redis-server");
    cmd.args([
        "--port",
        "6379",
        "--bind",
        "0.0.0.0",
        "--protected-mode",
        "no",
    ])
    .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
    .arg("--dir")
    .arg(dir)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    start(host, cmd, 6379)
}

fn memcached(host: &Host) -> Daemon {
    let mut cmd = Command::new("/usr/bin/memcached");
    cmd.args(["-u", "root", "-l", "0.0.0.0", "-p", "11211", "-U", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    start(host, cmd, 11211)
}

/// `portolan -sT -sV` in the lab's scanner namespace, and the JSON-lines
/// file it will write.
fn scan_command(lab: &Lab, target: IpAddr, ports: &str, extra: &[&str]) -> (Command, PathBuf) {
    let json = scratch_dir().join("scan.jsonl");
    let mut cmd = lab.scanner().command(portolan_bin());
    cmd.args(["-sT", "-sV", "-Pn", "--no-progress", "-p", ports])
        .args(extra)
        .arg("-oJ")
        .arg(&json)
        .arg("-oN")
        .arg("-")
        .arg(target.to_string());
    (cmd, json)
}

/// The `services` of every host line of a JSON-lines file.
fn read_services(json: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(json).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "host")
        .flat_map(|v| v["services"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Runs `portolan -sT -sV` in the lab's scanner namespace.
fn scan(lab: &Lab, target: IpAddr, ports: &str, extra: &[&str]) -> (Output, Vec<Value>) {
    let (mut cmd, json) = scan_command(lab, target, ports, extra);
    let out = cmd.output().expect("run portolan in the lab");
    (out, read_services(&json))
}

/// Runs `cmd` to its end, sampling its peak resident memory (`VmHWM`, in
/// KiB) from /proc while it runs (`ip netns exec` becomes the scanner).
fn run_measuring_peak(mut cmd: Command) -> (Output, u64) {
    use std::io::Read;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run portolan in the lab");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        let hwm = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
        peak = peak.max(hwm.unwrap_or(0));
        if let Some(status) = child.try_wait().expect("wait for portolan") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    (output, peak)
}

fn service(services: &[Value], port: u16) -> &Value {
    services
        .iter()
        .find(|s| s["port"] == port)
        .unwrap_or_else(|| panic!("no service for port {port} in {services:#?}"))
}

#[test]
fn real_daemons_are_identified_with_their_package_versions() {
    if !installed(
        "real_daemons_are_identified_with_their_package_versions",
        &PROGRAMS,
    ) {
        return;
    }
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let dir = scratch_dir();
    let _sshd = sshd(host, &dir);
    let _nginx = nginx(host, &dir);
    let _redis = redis(host, &dir);
    let _memcached = memcached(host);

    let (out, services) = scan(
        &lab,
        host.ipv4().into(),
        "22,80,443,6379,8081,8444,11211",
        &[],
    );
    let text = assert_success(&out);

    let v = Versions::installed();
    v.assert_identified(&services);
    let (ssh_up, ssh_rev, nginx_version) = (&v.ssh_upstream, &v.ssh_revision, &v.nginx);

    // The normal output's VERSION column, as nmap prints it.
    let line = |port: &str| table_line(&text, port);
    assert!(line("22/tcp").contains(&format!(
        "open ssh OpenSSH {ssh_up} Debian {ssh_rev} (protocol 2.0)"
    )));
    assert!(line("443/tcp").contains(&format!("open ssl/http nginx {nginx_version}")));
    assert!(line("8081/tcp").contains(&format!("open http nginx {nginx_version}")));

    // Over IPv6 too (sshd listens on both families).
    let (out, services6) = scan(&lab, host.ipv6().into(), "22", &[]);
    assert_success(&out);
    assert_eq!(
        service(&services6, 22)["version"],
        format!("{ssh_up} Debian {ssh_rev}")
    );

    // nmap's own database through --versiondb (installed under CI): every
    // pattern compiles and runs, and the same daemons come out the same.
    let nmap_db = "/usr/share/nmap/nmap-service-probes";
    if !Path::new(nmap_db).exists() {
        assert!(!under_ci(), "CI is set but {nmap_db} is missing");
        eprintln!("SKIPPED: the --versiondb half: nmap is not installed");
        return;
    }
    let (out, services) = scan(
        &lab,
        host.ipv4().into(),
        "22,80,443,6379,8081,8444,11211",
        &["--versiondb", nmap_db],
    );
    assert_success(&out);
    v.assert_identified(&services);
}

/// The versions of the installed daemons, from their Debian packages.
struct Versions {
    ssh_upstream: String,
    ssh_revision: String,
    nginx: String,
    redis: String,
    memcached: String,
}

impl Versions {
    fn installed() -> Versions {
        let (ssh_upstream, ssh_revision) =
            upstream_and_revision(&package_version("openssh-server"));
        Versions {
            ssh_upstream,
            ssh_revision,
            nginx: upstream_and_revision(&package_version("nginx-common")).0,
            redis: upstream_and_revision(&package_version("redis-server")).0,
            memcached: upstream_and_revision(&package_version("memcached")).0,
        }
    }

    /// Every daemon of the lab host has its service, product and version
    /// (as nmap names them), probed; HTTPS with its certificate.
    fn assert_identified(&self, services: &[Value]) {
        let expect = |port: u16, name: &str, product: &str, version: &str| {
            let s = service(services, port);
            assert_eq!(s["name"], name, "port {port}: {s}");
            assert_eq!(s["product"], product, "port {port}: {s}");
            assert_eq!(s["version"], version, "port {port}: {s}");
            assert_eq!(s["method"], "probed", "port {port}: {s}");
            s
        };
        let ssh_version = format!("{} Debian {}", self.ssh_upstream, self.ssh_revision);
        let ssh = expect(22, "ssh", "OpenSSH", &ssh_version);
        assert_eq!(ssh["extrainfo"], "protocol 2.0");
        for port in [80, 8081] {
            let s = expect(port, "http", "nginx", &self.nginx);
            assert!(s.get("tunnel").is_none(), "{s}");
        }
        for port in [443, 8444] {
            let s = expect(port, "http", "nginx", &self.nginx);
            assert_eq!(s["tunnel"], "ssl", "{s}");
            let tls = &s["tls"];
            assert_eq!(tls["subject"], "CN=lab.test", "{s}");
            assert_eq!(tls["issuer"], "CN=lab.test", "{s}");
            assert_eq!(tls["san"], serde_json::json!(["DNS:lab.test"]), "{s}");
            assert_eq!(tls["key_type"], "RSA 2048", "{s}");
            assert!(tls["protocol"].as_str().unwrap().starts_with("TLSv1."));
            assert!(tls["not_after"].is_string());
        }
        expect(6379, "redis", "Redis key-value store", &self.redis);
        expect(11211, "memcached", "Memcached", &self.memcached);
    }
}

/// `--versiondb`: an unreadable file or one without probes stops the run
/// before anything is sent; bad lines are named with their numbers (at
/// most ten, then a count) and skipped. Scans only a closed port of
/// 127.0.0.1.
#[test]
fn versiondb_errors_are_reported_with_line_numbers() {
    let dir = scratch_dir();
    let run = |db: &Path| {
        util::portolan(&[
            "-sT",
            "-sV",
            "-Pn",
            "--no-progress",
            "--versiondb",
            db.to_str().unwrap(),
            "-p",
            "1",
            "127.0.0.1",
        ])
    };
    let out = run(&dir.join("missing"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    let empty = dir.join("empty");
    std::fs::write(&empty, "# nothing\nmatch x m/y/\n").unwrap();
    let out = run(&empty);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2: \"match\" before any Probe line"),
        "{stderr}"
    );
    assert!(stderr.contains("no probes loaded"), "{stderr}");

    let bad = dir.join("bad");
    let mut text = String::from("Probe TCP NULL q||\n");
    for _ in 0..12 {
        text.push_str("match x m/(/\n");
    }
    text.push_str("match ok m/^ok/ p/\x1b[2J/\n");
    std::fs::write(&bad, text).unwrap();
    let out = run(&bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("line 2: pattern:"), "{stderr}");
    assert!(stderr.contains("line 11: pattern:"), "{stderr}");
    assert!(!stderr.contains("line 12:"), "{stderr}");
    assert!(stderr.contains("2 more bad lines skipped"), "{stderr}");
}

/// The second set of daemons, with the Debian packages that carry them.
const MORE_PROGRAMS: [(&str, &str); 9] = [
    ("/usr/sbin/vsftpd", "vsftpd"),
    ("/usr/sbin/dnsmasq", "dnsmasq"),
    ("/usr/sbin/mosquitto", "mosquitto"),
    ("/usr/sbin/rpcbind", "rpcbind"),
    ("/usr/sbin/mariadbd", "mariadb-server"),
    ("/usr/lib/postgresql", "postgresql"),
    ("/usr/lib/dovecot/imap-login", "dovecot-imapd"),
    ("/usr/lib/dovecot/pop3-login", "dovecot-pop3d"),
    ("/usr/sbin/exim4", "exim4-daemon-light"),
];

fn vsftpd(host: &Host, dir: &Path) -> Daemon {
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let conf = dir.join("vsftpd.conf");
    std::fs::write(
        &conf,
        format!(
            "listen=YES\nlisten_ipv6=NO\nlisten_port=21\nbackground=NO\n\
             anonymous_enable=YES\nno_anon_password=YES\nlocal_enable=NO\n\
             seccomp_sandbox=NO\nsecure_chroot_dir={0}\nanon_root={0}\n",
            empty.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("/usr/sbin/vsftpd");
    cmd.arg(&conf).stdout(Stdio::null()).stderr(Stdio::null());
    start(host, cmd, 21)
}

fn dnsmasq(host: &Host, dir: &Path) -> Daemon {
    let mut cmd = Command::new("/usr/sbin/dnsmasq");
    cmd.args(["-k", "--conf-file=/dev/null", "--port=53", "--no-resolv"])
        .args(["--no-hosts", "--user=root", "--group=root"])
        .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    start(host, cmd, 53)
}

fn mosquitto(host: &Host, dir: &Path) -> Daemon {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        "listener 1883 0.0.0.0\nallow_anonymous true\npersistence false\nuser root\n",
    )
    .unwrap();
    let mut cmd = Command::new("/usr/sbin/mosquitto");
    cmd.arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    start(host, cmd, 1883)
}

fn rpcbind(host: &Host) -> Daemon {
    // rpcbind keeps a lock and a socket under /run, shared by the whole
    // machine: it gets a private /run in a mount namespace of its own (so
    // tests running at once do not share one). -i: registrations from the
    // lab host's own address (below), which is not loopback; the network
    // namespace keeps everyone else out.
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs tmpfs /run && mkdir -p /run/rpcbind && \
             exec /usr/sbin/rpcbind -f -w -i",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    start(host, cmd, 111)
}

/// Exim as a foreground SMTP daemon on port 25 with a configuration of
/// its own (no DNS or ident lookups, no TLS, no relaying).
fn exim(host: &Host, dir: &Path) -> Daemon {
    let d = dir.join("exim");
    std::fs::create_dir_all(&d).unwrap();
    let conf = format!(
        "keep_environment =\n\
         primary_hostname = lab.test\n\
         spool_directory = {d}/spool\n\
         log_file_path = {d}/%slog\n\
         pid_file_path = {d}/exim.pid\n\
         daemon_smtp_ports = 25\n\
         local_interfaces = 0.0.0.0\n\
         exim_user = root\n\
         exim_group = root\n\
         host_lookup =\n\
         rfc1413_hosts =\n\
         tls_advertise_hosts =\n\
         acl_smtp_rcpt = refuse\n\
         begin acl\n\
         refuse:\n  deny\n",
        d = d.display()
    );
    let path = d.join("exim.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new("/usr/sbin/exim4");
    cmd.arg("-bdf")
        .arg("-C")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    start(host, cmd, 25)
}

/// A fake NFS server on TCP 2049 (it answers every RPC call with
/// PROG_UNAVAIL), registered with the host's rpcbind as program 100003
/// versions 3 and 4: version detection must name it from rpcbind's list.
fn fake_nfs(host: &Host) -> portolan_lab::TcpService {
    use std::io::{Read, Write};
    let service = host
        .listen_tcp_with([2049], |mut s| {
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let mut call = [0u8; 44];
                if s.read_exact(&mut call).is_err() || call[0] & 0x80 == 0 {
                    return;
                }
                let mut reply = vec![0x80, 0, 0, 24];
                reply.extend_from_slice(&call[4..8]);
                for word in [1u32, 0, 0, 0, 1] {
                    reply.extend_from_slice(&word.to_be_bytes());
                }
                let _ = s.write_all(&reply);
            });
        })
        .expect("fake NFS listener");
    let rpcbind = host.socket_v4(111);
    for version in [3u32, 4] {
        // PMAPPROC_SET (RFC 1833): program, version, protocol, port.
        let mut call = vec![0x80, 0, 0, 56];
        for word in [
            7 + version,
            0,
            2,
            100_000,
            2,
            1,
            0,
            0,
            0,
            0,
            100_003,
            version,
            6,
            2049,
        ] {
            call.extend_from_slice(&word.to_be_bytes());
        }
        let set = host
            .run(move || -> std::io::Result<Vec<u8>> {
                let mut s = std::net::TcpStream::connect_timeout(&rpcbind, START_WAIT)?;
                s.set_read_timeout(Some(START_WAIT))?;
                s.write_all(&call)?;
                let mut reply = [0u8; 32];
                s.read_exact(&mut reply)?;
                Ok(reply.to_vec())
            })
            .expect("enter the lab host")
            .expect("rpcbind answers SET");
        // An accepted reply whose result is TRUE.
        assert_eq!(&set[28..32], &[0, 0, 0, 1], "rpcbind refused SET: {set:?}");
    }
    service
}

fn mariadb(host: &Host, dir: &Path) -> Daemon {
    let data = dir.join("mariadb");
    run_ok(
        Command::new("/usr/bin/mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display())),
    );
    let mut cmd = Command::new("/usr/sbin/mariadbd");
    cmd.args(["--no-defaults", "--user=root", "--port=3306"])
        .args(["--bind-address=0.0.0.0", "--skip-grant-tables"])
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", dir.join("mariadb.sock").display()))
        .arg(format!("--pid-file={}", dir.join("mariadb.pid").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    start(host, cmd, 3306)
}

/// Dovecot with IMAP on 143 and POP3 on 110, without TLS.
fn dovecot(host: &Host, dir: &Path) -> Daemon {
    let d = dir.join("dovecot");
    std::fs::create_dir_all(d.join("home")).unwrap();
    let d = d.display();
    let conf = format!(
        "protocols = imap pop3\nlisten = *\nssl = no\n\
         base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\n\
         auth_mechanisms = plain\n\
         passdb {{\n  driver = static\n  args = password=portolan\n}}\n\
         userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/home\n}}\n"
    );
    let path = dir.join("dovecot.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new("/usr/sbin/dovecot");
    cmd.arg("-F")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut daemon = start(host, cmd, 143);
    daemon
        .wait_for_tcp(host.socket_v4(110), START_WAIT)
        .expect("dovecot on 110");
    daemon
}

/// The newest installed PostgreSQL's binaries.
fn postgresql_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("postgresql installed")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().expect("a postgres binary")
}

/// The major version of the newest installed PostgreSQL (its binaries'
/// directory, as Debian lays them out: /usr/lib/postgresql/15/bin), which
/// its package confirms (postgresql-15, 15.x-...).
fn postgresql_major() -> u32 {
    let bin = postgresql_bin();
    let major: u32 = bin
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .expect("a major version directory");
    let (upstream, _) = upstream_and_revision(&package_version(&format!("postgresql-{major}")));
    assert!(
        upstream.starts_with(&format!("{major}.")),
        "postgresql-{major} is {upstream}"
    );
    major
}

/// Whether `major` lies in a version range as the database writes them:
/// `14 - 16`, `17`, `18 or later`, `9.5 or earlier` (majors before 10
/// count as 9).
fn major_in_range(major: u32, range: &str) -> bool {
    let first = |v: &str| -> u32 {
        v.split('.')
            .next()
            .and_then(|m| m.trim().parse().ok())
            .expect("a version number")
    };
    if let Some(low) = range.strip_suffix(" or later") {
        major >= first(low)
    } else if let Some(high) = range.strip_suffix(" or earlier") {
        major <= first(high)
    } else if let Some((low, high)) = range.split_once(" - ") {
        (first(low)..=first(high)).contains(&major)
    } else {
        major == first(range)
    }
}

fn postgresql(host: &Host, dir: &Path) -> Daemon {
    let bin = postgresql_bin();
    let data = dir.join("pg");
    std::fs::create_dir_all(&data).unwrap();
    run_ok(Command::new("chown").arg("-R").arg("postgres:").arg(dir));
    run_ok(
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["-A", "trust", "-D"])
            .arg(&data),
    );
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"])
        .arg(bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-p", "5432", "-c", "listen_addresses=*", "-k"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    start(host, cmd, 5432)
}

#[test]
fn more_daemons_are_identified() {
    if !installed("more_daemons_are_identified", &MORE_PROGRAMS) {
        return;
    }
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let dir = scratch_dir();
    let _vsftpd = vsftpd(host, &dir);
    let _dnsmasq = dnsmasq(host, &dir);
    let _mosquitto = mosquitto(host, &dir);
    let _rpcbind = rpcbind(host);
    let _nfs = fake_nfs(host);
    let _mariadb = mariadb(host, &dir);
    let _postgresql = postgresql(host, &dir);
    let _dovecot = dovecot(host, &dir);
    let _exim = exim(host, &dir);

    let (out, services) = scan(
        &lab,
        host.ipv4().into(),
        "21,25,53,110,111,143,1883,2049,3306,5432",
        &[],
    );
    assert_success(&out);
    let expect = |port: u16, name: &str, product: Option<&str>, version: Option<String>| {
        let s = service(&services, port);
        assert_eq!(s["name"], name, "port {port}: {s}");
        assert_eq!(s["product"].as_str(), product, "port {port}: {s}");
        assert_eq!(
            s["version"].as_str(),
            version.as_deref(),
            "port {port}: {s}"
        );
        assert_eq!(s["method"], "probed", "port {port}: {s}");
    };
    let upstream = |package: &str| Some(upstream_and_revision(&package_version(package)).0);
    expect(21, "ftp", Some("vsftpd"), upstream("vsftpd"));
    expect(53, "domain", Some("dnsmasq"), upstream("dnsmasq-base"));
    // rpcbind serves portmapper versions 2 to 4.
    expect(111, "rpcbind", None, Some("2-4".into()));
    expect(2049, "nfs", None, Some("3-4".into()));
    assert_eq!(service(&services, 2049)["extrainfo"], "RPC #100003");
    expect(1883, "mqtt", Some("Mosquitto"), upstream("mosquitto"));
    expect(3306, "mysql", Some("MariaDB"), upstream("mariadb-server"));
    // PostgreSQL names no version before authentication: detection dates
    // it to a range of major versions, which holds the installed one.
    let pg = service(&services, 5432);
    assert_eq!(pg["name"], "postgresql", "{pg}");
    assert_eq!(pg["product"], "PostgreSQL DB", "{pg}");
    let major = postgresql_major();
    let range = pg["version"].as_str().expect("a PostgreSQL version range");
    assert!(
        major_in_range(major, range),
        "PostgreSQL {major} is not in {range:?}"
    );
    // Exim tells its version in its greeting.
    expect(
        25,
        "smtp",
        Some("Exim smtpd"),
        upstream("exim4-daemon-light"),
    );
    assert_eq!(service(&services, 25)["hostname"], "lab.test");
    expect(110, "pop3", Some("Dovecot pop3d"), None);
    expect(143, "imap", Some("Dovecot imapd"), None);
}

/// The UDP daemons, with the Debian packages that carry them.
const UDP_PROGRAMS: [(&str, &str); 5] = [
    ("/usr/sbin/dnsmasq", "dnsmasq"),
    ("/usr/sbin/rpcbind", "rpcbind"),
    ("/usr/sbin/chronyd", "chrony"),
    ("/usr/sbin/snmpd", "snmpd"),
    ("/usr/bin/memcached", "memcached"),
];

/// Waits until `port` answers `request` over UDP (a bounded poll: UDP
/// daemons have no listening socket to connect to).
fn wait_for_udp(host: &Host, port: u16, request: &'static [u8]) {
    let addr = host.socket_v4(port);
    let started = Instant::now();
    while started.elapsed() < START_WAIT {
        let answered = host
            .run(move || -> bool {
                let Ok(socket) = std::net::UdpSocket::bind("0.0.0.0:0") else {
                    return false;
                };
                let _ = socket.set_read_timeout(Some(Duration::from_millis(300)));
                let mut buf = [0u8; 2048];
                socket.send_to(request, addr).is_ok() && socket.recv(&mut buf).is_ok()
            })
            .expect("enter the lab host");
        if answered {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing answers on UDP {addr}");
}

/// chronyd serving its own clock at stratum 10 to anyone, never touching
/// the system clock.
fn chronyd(host: &Host, dir: &Path) -> Daemon {
    let d = dir.join("chrony");
    std::fs::create_dir_all(&d).unwrap();
    let conf = d.join("chrony.conf");
    std::fs::write(
        &conf,
        format!(
            "port 123\nallow all\nlocal stratum 10\ncmdport 0\nbindcmdaddress /\n\
             pidfile {0}/chronyd.pid\ndriftfile {0}/drift\n",
            d.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("/usr/sbin/chronyd");
    cmd.args(["-d", "-x", "-u", "root", "-f"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let daemon = host.spawn(cmd).expect("spawn chronyd");
    // An NTP v4 client request (RFC 5905).
    const NTP: &[u8] = b"\xe3\0\x0a\xec\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\
        \0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0portolan";
    wait_for_udp(host, 123, NTP);
    daemon
}

/// snmpd answering community "public" on UDP 161 with the whole MIB.
fn snmpd(host: &Host, dir: &Path) -> Daemon {
    let d = dir.join("snmpd");
    std::fs::create_dir_all(&d).unwrap();
    let conf = d.join("snmpd.conf");
    std::fs::write(&conf, "agentaddress udp:161\nrocommunity public\n").unwrap();
    let mut cmd = Command::new("/usr/sbin/snmpd");
    cmd.args(["-f", "-C", "-c"])
        .arg(&conf)
        .arg("-Lf")
        .arg(d.join("log"))
        .arg("-p")
        .arg(d.join("pid"))
        .env("SNMP_PERSISTENT_DIR", d.join("persistent"))
        .env("MIBS", "")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let daemon = host.spawn(cmd).expect("spawn snmpd");
    // SNMPv1 GetRequest for sysDescr.0, community "public" (RFC 1157).
    const GET: &[u8] = b"0)\x02\x01\x00\x04\x06public\xa0\x1c\x02\x04PLWT\x02\x01\x00\x02\x01\x00\
        0\x0e0\x0c\x06\x08+\x06\x01\x02\x01\x01\x01\x00\x05\x00";
    wait_for_udp(host, 161, GET);
    daemon
}

/// memcached with UDP (and TCP) on `port`.
fn memcached_udp(host: &Host, port: u16) -> Daemon {
    let port_text = port.to_string();
    let mut cmd = Command::new("/usr/bin/memcached");
    cmd.args([
        "-u", "root", "-l", "0.0.0.0", "-p", &port_text, "-U", &port_text,
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    start(host, cmd, port)
}

/// Every `"type":"port"` line of a JSON-lines file.
fn read_port_lines(json: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(json).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "port")
        .collect()
}

/// `-sU -sV` (issue 6): UDP probes name dnsmasq, rpcbind, chrony, snmpd
/// and memcached with their packages' versions where the daemon tells
/// one. memcached on 11311, a port the scan has no payload for, is
/// open|filtered after the scan: its answer to a version probe makes it
/// open (reason udp-response), on the port line of the JSON output too.
#[test]
fn udp_daemons_are_identified() {
    if !installed("udp_daemons_are_identified", &UDP_PROGRAMS) {
        return;
    }
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let dir = scratch_dir();
    let _dnsmasq = dnsmasq(host, &dir);
    let _rpcbind = rpcbind(host);
    let _chronyd = chronyd(host, &dir);
    let _snmpd = snmpd(host, &dir);
    let _memcached = memcached_udp(host, 11211);
    let _memcached_other = memcached_udp(host, 11311);

    let json = dir.join("udp.jsonl");
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sU", "-sV", "-Pn", "--no-progress", "-p"])
        .arg("53,111,123,161,11211,11311")
        .arg("-oJ")
        .arg(&json)
        .arg("-oN")
        .arg("-")
        .arg(host.ipv4().to_string())
        .output()
        .expect("run portolan in the lab");
    let text = assert_success(&out);
    let services = read_services(&json);
    let ports = read_port_lines(&json);

    let upstream = |package: &str| upstream_and_revision(&package_version(package)).0;
    // Debian's repacks carry "+dfsg" in their upstream version; the
    // daemon does not.
    let unrepacked = |version: String| match version.split_once("+dfsg") {
        Some((v, _)) => v.to_string(),
        None => version,
    };
    let expect = |port: u16, name: &str, product: Option<&str>, version: Option<String>| {
        let s = services
            .iter()
            .find(|s| s["port"] == port && s["proto"] == "udp")
            .unwrap_or_else(|| panic!("no UDP service for {port} in {services:#?}"));
        assert_eq!(s["name"], name, "port {port}: {s}");
        assert_eq!(s["product"].as_str(), product, "port {port}: {s}");
        assert_eq!(
            s["version"].as_str(),
            version.as_deref(),
            "port {port}: {s}"
        );
        assert_eq!(s["method"], "probed", "port {port}: {s}");
        // The port line carries the same service, in the final state.
        let line = ports
            .iter()
            .find(|p| p["port"] == port && p["proto"] == "udp")
            .unwrap_or_else(|| panic!("no port line for {port}/udp"));
        assert_eq!(line["state"], "open", "{line}");
        assert_eq!(line["service"], name, "{line}");
        assert_eq!(line["product"].as_str(), product, "{line}");
        assert_eq!(line["version"].as_str(), version.as_deref(), "{line}");
    };
    expect(
        53,
        "domain",
        Some("dnsmasq"),
        Some(upstream("dnsmasq-base")),
    );
    expect(111, "rpcbind", None, Some("2-4".into()));
    // chrony tells no version over NTP.
    expect(123, "ntp", Some("chrony"), None);
    expect(
        161,
        "snmp",
        Some("net-snmp"),
        Some(unrepacked(upstream("snmpd"))),
    );
    let memcached = Some(upstream("memcached"));
    expect(11211, "memcached", Some("Memcached"), memcached.clone());
    expect(11311, "memcached", Some("Memcached"), memcached);
    let other = ports
        .iter()
        .find(|p| p["port"] == 11311)
        .expect("11311 port line");
    assert_eq!(other["reason"], "udp-response", "{other}");
    // The normal output's table says the same.
    let line = table_line(&text, "11311/udp");
    assert!(
        line.starts_with("11311/udp open memcached Memcached"),
        "{line}"
    );
    // The summary counts the port as open.
    let summary: Value = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "summary")
        .expect("summary line");
    assert_eq!(summary["ports"]["open"], 6, "{summary}");

    // Without -sV the scan alone cannot tell 11311 open.
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sU", "-Pn", "--no-progress", "-p", "11311"])
        .arg(host.ipv4().to_string())
        .output()
        .expect("run portolan in the lab");
    let text = assert_success(&out);
    assert!(
        table_line(&text, "11311/udp").starts_with("11311/udp open|filtered"),
        "{text}"
    );
}

/// Hostile services next to a well-behaved one: each ends within the
/// version timeout, the scanner's memory stays small although one peer
/// floods, and banners full of terminal escapes and invalid UTF-8 come
/// out escaped.
#[test]
fn hostile_services_cost_bounded_time_and_memory_and_are_escaped() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::thread;

    let lab = lab_or_skip!();
    let host = lab.host(0);
    // Each connection gets its own thread, which ends by its own bound.
    let serve = |port: u16, behave: fn(TcpStream)| {
        host.listen_tcp_with([port], move |s| {
            thread::spawn(move || behave(s));
        })
        .expect("listener")
    };
    let _flood = serve(7001, |mut s| {
        let chunk = vec![b'A'; 64 * 1024];
        let started = Instant::now();
        while started.elapsed() < HOSTILE_BOUND && s.write_all(&chunk).is_ok() {}
    });
    let _drip = serve(7002, |mut s| {
        let started = Instant::now();
        while started.elapsed() < HOSTILE_BOUND && s.write_all(b"\x1b").is_ok() {
            thread::sleep(Duration::from_millis(200));
        }
    });
    let _mute = serve(7003, |s| {
        thread::sleep(HOSTILE_BOUND);
        drop(s);
    });
    let _escapes = serve(7004, |mut s| {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.9 Debian-\x1b[2J\x1b]0;owned\x07\xff\xfe\r\n");
        thread::sleep(Duration::from_secs(5));
    });
    let _broken_tls = serve(7005, |mut s| {
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"\x16\x03\x01\x00\x05\x02\xde\xad\x1b[31m\xff");
        thread::sleep(Duration::from_secs(2));
    });
    let _ssh = serve(7006, |mut s| {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
        thread::sleep(Duration::from_secs(5));
    });

    let xml = scratch_dir().join("hostile.xml");
    let xml_arg = xml.to_str().unwrap();
    let started = Instant::now();
    let (cmd, json) = scan_command(
        &lab,
        host.ipv4().into(),
        "7001-7006",
        &["--version-timeout", "5s", "-oX", xml_arg],
    );
    let (out, peak_kib) = run_measuring_peak(cmd);
    eprintln!("scanner peak memory: {peak_kib} KiB");
    let services = read_services(&json);
    let elapsed = started.elapsed();
    let text = assert_success(&out);
    // Hang guard only (six ports in parallel, 5 s each, plus the scan).
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    // The scanner's peak memory: one that kept the flood would hold far
    // more (and a peak of 0 means the sampling saw nothing).
    assert!(
        (1..64 * 1024).contains(&peak_kib),
        "peak memory {peak_kib} KiB"
    );

    assert!(!out.stdout.contains(&0x1b), "raw escape in:\n{text}");
    assert_xml_valid(&xml);
    assert!(std::str::from_utf8(&out.stdout).is_ok());
    let line = |port: &str| table_line(&text, port);
    assert!(
        line("7004/tcp").contains("OpenSSH 9.9 Debian \\x1b[2J\\x1b]0;owned\\x07"),
        "{text}"
    );
    assert!(line("7006/tcp").contains("open ssh OpenSSH 9.6"), "{text}");
    assert_eq!(service(&services, 7005)["name"], "ssl");
    assert_eq!(service(&services, 7006)["version"], "9.6");
    let flood = service(&services, 7001);
    assert!(flood["banner"].as_str().unwrap().starts_with("AAAA"));
    let drip = service(&services, 7002);
    assert!(drip["banner"].as_str().unwrap().starts_with("\\x1b"));
    for port in 7001..=7006u16 {
        let s = service(&services, port);
        assert!(s["banner"].as_str().unwrap_or("").len() <= 4 * 256, "{s}");
    }
}

/// The file is valid against nmap.dtd (xmllint, which `scripts/test`
/// installs; without it the check is skipped loudly, and fails under CI).
fn assert_xml_valid(file: &Path) {
    let out = match Command::new("xmllint")
        .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd"])
        .arg(file)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            assert!(!under_ci(), "CI is set but xmllint cannot run: {e}");
            eprintln!("SKIPPED: the nmap.dtd check: xmllint cannot run: {e}");
            return;
        }
    };
    assert!(
        out.status.success(),
        "{} is not valid against nmap.dtd:\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read(file).unwrap();
    assert!(!text.contains(&0x1b), "raw escape in the XML");
}

/// The normal output's table line of `port` ("22/tcp"), with its columns
/// joined by single spaces.
fn table_line(text: &str, port: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with(port))
        .unwrap_or_else(|| panic!("no {port} line in:\n{text}"));
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Not a timed test: `cargo nextest run -p portolan --test service_lab
/// --run-ignored only compare_with_nmap --no-capture` prints the wall time
/// and the findings of `portolan -sV` (own database and nmap's) and of
/// `nmap -sV` against every daemon above, for the benchmark note.
#[test]
#[ignore = "a comparison to read, run by hand"]
fn compare_with_nmap() {
    if !installed("compare_with_nmap", &PROGRAMS) || !installed("compare_with_nmap", &MORE_PROGRAMS)
    {
        return;
    }
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let dir = scratch_dir();
    let _daemons = [
        sshd(host, &dir),
        nginx(host, &dir),
        redis(host, &dir),
        memcached(host),
        vsftpd(host, &dir),
        dnsmasq(host, &dir),
        mosquitto(host, &dir),
        rpcbind(host),
        mariadb(host, &dir),
        postgresql(host, &dir),
        dovecot(host, &dir),
    ];
    let ports = "21,22,53,80,110,111,143,443,1883,3306,5432,6379,8081,8444,11211";
    let target = host.ipv4().to_string();
    let timed = |label: &str, command: &mut Command| {
        let started = Instant::now();
        let out = command.output().expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!(
            "== {label}: {:.2} s\n{text}",
            started.elapsed().as_secs_f64()
        );
    };
    timed(
        "portolan -sV",
        lab.scanner().command(portolan_bin()).args([
            "-sT",
            "-sV",
            "-Pn",
            "--no-progress",
            "-p",
            ports,
            &target,
        ]),
    );
    timed(
        "portolan -sV --versiondb nmap-service-probes",
        lab.scanner().command(portolan_bin()).args([
            "-sT",
            "-sV",
            "-Pn",
            "--no-progress",
            "--versiondb",
            "/usr/share/nmap/nmap-service-probes",
            "-p",
            ports,
            &target,
        ]),
    );
    timed(
        "nmap -sV",
        lab.scanner()
            .command("nmap")
            .args(["-sT", "-sV", "-Pn", "-n", "-p", ports, &target]),
    );
}
