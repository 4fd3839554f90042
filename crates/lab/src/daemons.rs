//! Real daemons for version detection (`-sV`) tests and benchmarks, each
//! started inside a lab host's namespace from a configuration of its own
//! in a scratch directory, in the foreground, on its standard port:
//! OpenSSH, nginx (HTTP and HTTPS with a self-signed certificate), Redis,
//! memcached (TCP and UDP), vsftpd, dnsmasq, mosquitto, rpcbind, MariaDB,
//! PostgreSQL, Dovecot, Exim, chrony, net-snmp's snmpd and Kamailio; and
//! the Debian
//! package versions they are checked against ([`package_version`]).
//!
//! Contract: daemons listen only inside the host's namespace and die with
//! their [`Daemon`] guard; a start waits until the port answers (at most
//! [`START_WAIT`]) and fails with a [`LabError`] naming the daemon. Nothing
//! here panics. Files are written only under the directory passed in
//! (rpcbind, which wants /run, gets a private one in a mount namespace).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::namespace::run_command;
use crate::{Daemon, Host, LabError};

/// How long a daemon may take to start listening (a hang guard: a loaded
/// machine starts MariaDB slowly).
pub const START_WAIT: Duration = Duration::from_secs(60);

/// The installed version of a Debian package (`1:9.2p1-2+deb12u3`).
pub fn package_version(package: &str) -> Result<String, LabError> {
    run_command(
        Command::new("dpkg-query").args(["-W", "-f=${Version}", package]),
        None,
    )
}

/// A Debian version without its epoch, split into upstream version and
/// Debian revision: `1:9.2p1-2+deb12u3` → (`9.2p1`, `2+deb12u3`).
pub fn upstream_and_revision(version: &str) -> (String, String) {
    let no_epoch = version.split_once(':').map_or(version, |(_, v)| v);
    match no_epoch.rsplit_once('-') {
        Some((up, rev)) => (up.to_string(), rev.to_string()),
        None => (no_epoch.to_string(), String::new()),
    }
}

/// The upstream version of an installed package (`9.2p1`).
pub fn upstream_version(package: &str) -> Result<String, LabError> {
    Ok(upstream_and_revision(&package_version(package)?).0)
}

fn write(path: &Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(|e| LabError::io(format!("writing {}", path.display()), e))
}

fn create_dir(path: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(path)
        .map_err(|e| LabError::io(format!("creating {}", path.display()), e))
}

fn quiet(mut command: Command) -> Command {
    command.stdout(Stdio::null()).stderr(Stdio::null());
    command
}

/// Spawns `command` in `host` and waits for TCP `port`.
fn start(host: &Host, command: Command, port: u16) -> Result<Daemon, LabError> {
    let mut daemon = host.spawn(quiet(command))?;
    daemon.wait_for_tcp(host.socket_v4(port), START_WAIT)?;
    Ok(daemon)
}

/// Waits until UDP `port` of `host` answers `request` (a bounded poll: a
/// UDP daemon has no listening socket to connect to).
pub fn wait_for_udp(host: &Host, port: u16, request: &'static [u8]) -> Result<(), LabError> {
    let addr = host.socket_v4(port);
    let started = Instant::now();
    while started.elapsed() < START_WAIT {
        let answered = host.run(move || -> bool {
            let Ok(socket) = std::net::UdpSocket::bind("0.0.0.0:0") else {
                return false;
            };
            let _ = socket.set_read_timeout(Some(Duration::from_millis(300)));
            let mut buf = [0u8; 2048];
            socket.send_to(request, addr).is_ok() && socket.recv(&mut buf).is_ok()
        })?;
        if answered {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(LabError::Timeout(format!("nothing answers on UDP {addr}")))
}

/// A self-signed certificate and key for `lab.test` (RSA 2048), made by
/// `openssl`.
pub fn certificate(dir: &Path) -> Result<(PathBuf, PathBuf), LabError> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    run_command(
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
        None,
    )?;
    Ok((cert, key))
}

/// OpenSSH on 22 with a fresh ed25519 host key.
pub fn sshd(host: &Host, dir: &Path) -> Result<Daemon, LabError> {
    let key = dir.join("ssh_host_ed25519_key");
    run_command(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(&key),
        None,
    )?;
    // sshd wants its privilege-separation directory.
    create_dir(Path::new("/run/sshd"))?;
    let mut cmd = Command::new("/usr/sbin/sshd");
    cmd.args(["-D", "-e", "-f", "/dev/null", "-p", "22"])
        .arg("-h")
        .arg(&key)
        .args(["-o", "PidFile=none", "-o", "UsePAM=no"]);
    start(host, cmd, 22)
}

/// nginx with HTTP on 80 and 8081, HTTPS (a self-signed certificate for
/// `lab.test`) on 443 and 8444.
pub fn nginx(host: &Host, dir: &Path) -> Result<Daemon, LabError> {
    let (cert, key) = certificate(dir)?;
    let www = dir.join("www");
    create_dir(&www)?;
    write(&www.join("index.html"), "lab\n")?;
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
    write(&path, &conf)?;
    let mut cmd = Command::new("/usr/sbin/nginx");
    cmd.arg("-c")
        .arg(&path)
        .arg("-e")
        .arg(dir.join("nginx-error.log"));
    let mut daemon = start(host, cmd, 80)?;
    daemon.wait_for_tcp(host.socket_v4(443), START_WAIT)?;
    Ok(daemon)
}

/// Redis on 6379, without persistence or protected mode.
pub fn redis(host: &Host, dir: &Path) -> Result<Daemon, LabError> {
    let mut cmd = Command::new("/usr/bin/redis-server");
    cmd.args(["--port", "6379", "--bind", "0.0.0.0"])
        .args(["--protected-mode", "no", "--save", "", "--appendonly", "no"])
        .args(["--daemonize", "no", "--dir"])
        .arg(dir);
    start(host, cmd, 6379)
}

/// memcached on TCP `port`, and on UDP `port` too when `udp`.
pub fn memcached(host: &Host, port: u16, udp: bool) -> Result<Daemon, LabError> {
    let port_text = port.to_string();
    let udp_port = if udp { port_text.as_str() } else { "0" };
    let mut cmd = Command::new("/usr/bin/memcached");
    cmd.args([
        "-u", "root", "-l", "0.0.0.0", "-p", &port_text, "-U", udp_port,
    ]);
    start(host, cmd, port)
}

/// vsftpd on 21 with anonymous access to an empty directory.
pub fn vsftpd(host: &Host, dir: &Path) -> Result<Daemon, LabError> {
    let empty = dir.join("empty");
    create_dir(&empty)?;
    let conf = dir.join("vsftpd.conf");
    write(
        &conf,
        &format!(
            "listen=YES\nlisten_ipv6=NO\nlisten_port=21\nbackground=NO\n\
             anonymous_enable=YES\nno_anon_password=YES\nlocal_enable=NO\n\
             seccomp_sandbox=NO\nsecure_chroot_dir={0}\nanon_root={0}\n",
            empty.display()
        ),
    )?;
    let mut cmd = Command::new("/usr/sbin/vsftpd");
    cmd.arg(&conf);
    start(host, cmd, 21)
}

/// dnsmasq on 53 (UDP and TCP), serving nothing but its version.
pub fn dnsmasq(host: &Host, dir: &Path) -> Result<Daemon, LabError> {
    let mut cmd = Command::new("/usr/sbin/dnsmasq");
    cmd.args(["-k", "--conf-file=/dev/null", "--port=53", "--no-resolv"])
        .args(["--no-hosts", "--user=root", "--group=root"])
        .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()));
    start(host, cmd, 53)
}

/// mosquitto on 1883, anonymous, without persistence.
pub fn mosquitto(host: &Host, dir: &Path) -> Result<Daemon, LabError> {
    let conf = dir.join("mosquitto.conf");
    write(
        &conf,
        "listener 1883 0.0.0.0\nallow_anonymous true\npersistence false\nuser root\n",
    )?;
    let mut cmd = Command::new("/usr/sbin/mosquitto");
    cmd.arg("-c").arg(&conf);
    start(host, cmd, 1883)
}

/// rpcbind on 111 (TCP and UDP). It keeps a lock and a socket under /run,
/// shared by the whole machine: it gets a private /run in a mount
/// namespace of its own. `-i` takes registrations from the host's own
/// address, which is not loopback; the network namespace keeps everyone
/// else out.
pub fn rpcbind(host: &Host) -> Result<Daemon, LabError> {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs tmpfs /run && mkdir -p /run/rpcbind && exec /usr/sbin/rpcbind -f -w -i",
        );
    start(host, cmd, 111)
}

/// MariaDB on 3306, a fresh data directory, without grant tables.
pub fn mariadb(host: &Host, dir: &Path) -> Result<Daemon, LabError> {
    let data = dir.join("mariadb");
    run_command(
        Command::new("/usr/bin/mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display())),
        None,
    )?;
    let mut cmd = Command::new("/usr/sbin/mariadbd");
    cmd.args(["--no-defaults", "--user=root", "--port=3306"])
        .args(["--bind-address=0.0.0.0", "--skip-grant-tables"])
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", dir.join("mariadb.sock").display()))
        .arg(format!("--pid-file={}", dir.join("mariadb.pid").display()));
    start(host, cmd, 3306)
}

/// The newest installed PostgreSQL's binaries (Debian's layout:
/// `/usr/lib/postgresql/<major>/bin`).
pub fn postgresql_bin() -> Result<PathBuf, LabError> {
    let root = Path::new("/usr/lib/postgresql");
    let entries = std::fs::read_dir(root)
        .map_err(|e| LabError::io(format!("reading {}", root.display()), e))?;
    let mut versions: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .ok_or_else(|| LabError::Invalid(format!("no postgres binary under {}", root.display())))
}

/// The major version of [`postgresql_bin`]'s server (`15`).
pub fn postgresql_major() -> Result<u32, LabError> {
    let bin = postgresql_bin()?;
    bin.parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| LabError::Invalid(format!("no major version in {}", bin.display())))
}

/// PostgreSQL on 5432 (a fresh cluster, `trust` authentication), run as
/// the `postgres` user.
pub fn postgresql(host: &Host, dir: &Path) -> Result<Daemon, LabError> {
    let bin = postgresql_bin()?;
    let data = dir.join("pg");
    create_dir(&data)?;
    run_command(
        Command::new("chown").arg("-R").arg("postgres:").arg(dir),
        None,
    )?;
    run_command(
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["-A", "trust", "-D"])
            .arg(&data),
        None,
    )?;
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"])
        .arg(bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-p", "5432", "-c", "listen_addresses=*", "-k"])
        .arg(&data);
    start(host, cmd, 5432)
}

/// Dovecot with IMAP on 143 and POP3 on 110, without TLS.
pub fn dovecot(host: &Host, dir: &Path) -> Result<Daemon, LabError> {
    let d = dir.join("dovecot");
    create_dir(&d.join("home"))?;
    let dd = d.display();
    let conf = format!(
        "protocols = imap pop3\nlisten = *\nssl = no\n\
         base_dir = {dd}/run\nstate_dir = {dd}/state\nlog_path = {dd}/dovecot.log\n\
         auth_mechanisms = plain\n\
         passdb {{\n  driver = static\n  args = password=portolan\n}}\n\
         userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={dd}/home\n}}\n"
    );
    let path = dir.join("dovecot.conf");
    write(&path, &conf)?;
    let mut cmd = Command::new("/usr/sbin/dovecot");
    cmd.arg("-F").arg("-c").arg(&path);
    let mut daemon = start(host, cmd, 143)?;
    daemon.wait_for_tcp(host.socket_v4(110), START_WAIT)?;
    Ok(daemon)
}

/// Exim as a foreground SMTP daemon on 25 (primary host name `lab.test`),
/// without DNS or ident lookups, TLS or relaying.
pub fn exim(host: &Host, dir: &Path) -> Result<Daemon, LabError> {
    let d = dir.join("exim");
    create_dir(&d)?;
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
    write(&path, &conf)?;
    let mut cmd = Command::new("/usr/sbin/exim4");
    cmd.arg("-bdf").arg("-C").arg(&path);
    start(host, cmd, 25)
}

/// An NTP v4 client request (RFC 5905), 48 bytes.
const NTP_REQUEST: &[u8] = b"\xe3\0\x0a\xec\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\
    \0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0portolan";

/// chronyd on UDP 123 serving its own clock at stratum 10 to anyone,
/// never touching the system clock.
pub fn chronyd(host: &Host, dir: &Path) -> Result<Daemon, LabError> {
    let d = dir.join("chrony");
    create_dir(&d)?;
    let conf = d.join("chrony.conf");
    write(
        &conf,
        &format!(
            "port 123\nallow all\nlocal stratum 10\ncmdport 0\nbindcmdaddress /\n\
             pidfile {0}/chronyd.pid\ndriftfile {0}/drift\n",
            d.display()
        ),
    )?;
    let mut cmd = Command::new("/usr/sbin/chronyd");
    cmd.args(["-d", "-x", "-u", "root", "-f"]).arg(&conf);
    let daemon = host.spawn(quiet(cmd))?;
    wait_for_udp(host, 123, NTP_REQUEST)?;
    Ok(daemon)
}

/// An SNMPv1 GetRequest for sysDescr.0 with community "public" (RFC 1157).
const SNMP_GET: &[u8] = b"0)\x02\x01\x00\x04\x06public\xa0\x1c\x02\x04PLWT\x02\x01\x00\x02\x01\x00\
    0\x0e0\x0c\x06\x08+\x06\x01\x02\x01\x01\x01\x00\x05\x00";

/// snmpd on UDP 161 answering community "public" with the whole MIB.
pub fn snmpd(host: &Host, dir: &Path) -> Result<Daemon, LabError> {
    let d = dir.join("snmpd");
    create_dir(&d)?;
    let conf = d.join("snmpd.conf");
    write(&conf, "agentaddress udp:161\nrocommunity public\n")?;
    let mut cmd = Command::new("/usr/sbin/snmpd");
    cmd.args(["-f", "-C", "-c"])
        .arg(&conf)
        .arg("-Lf")
        .arg(d.join("log"))
        .arg("-p")
        .arg(d.join("pid"))
        .env("SNMP_PERSISTENT_DIR", d.join("persistent"))
        .env("MIBS", "");
    let daemon = host.spawn(quiet(cmd))?;
    wait_for_udp(host, 161, SNMP_GET)?;
    Ok(daemon)
}

/// A SIP OPTIONS request (RFC 3261 section 11); `rport` (RFC 3581) has
/// the answer sent back to the source address and port.
const SIP_OPTIONS: &[u8] = b"OPTIONS sip:lab.test SIP/2.0\r\n\
    Via: SIP/2.0/UDP lab.test;branch=z9hG4bKlabwait;rport\r\n\
    From: <sip:lab@lab.test>;tag=lab\r\nTo: <sip:lab@lab.test>\r\n\
    Call-ID: lab-wait@lab.test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\
    Content-Length: 0\r\n\r\n";

/// Kamailio on UDP 5060 with the smallest routing script: 200 to OPTIONS,
/// 501 otherwise (stateless replies, which name the server).
pub fn kamailio(host: &Host, dir: &Path) -> Result<Daemon, LabError> {
    let d = dir.join("kamailio");
    create_dir(&d)?;
    let conf = d.join("kamailio.cfg");
    write(
        &conf,
        "#!KAMAILIO\nlisten=udp:0.0.0.0:5060\nchildren=1\n\
         mpath=\"/usr/lib/x86_64-linux-gnu/kamailio/modules/\"\n\
         loadmodule \"sl.so\"\nloadmodule \"textops.so\"\n\
         request_route {\n  if (is_method(\"OPTIONS\")) {\n    \
         sl_send_reply(\"200\", \"OK\");\n    exit;\n  }\n  \
         sl_send_reply(\"501\", \"Not Implemented\");\n}\n",
    )?;
    let mut cmd = Command::new("/usr/sbin/kamailio");
    // Foreground with its children, runtime files in its directory.
    cmd.args(["-DD", "-E", "-u", "root", "-f"])
        .arg(&conf)
        .arg("-P")
        .arg(d.join("pid"))
        .arg("-Y")
        .arg(&d);
    let daemon = host.spawn(quiet(cmd))?;
    wait_for_udp(host, 5060, SIP_OPTIONS)?;
    Ok(daemon)
}

/// Registers `program` `version` on TCP `port` with the host's rpcbind
/// (PMAPPROC_SET, RFC 1833); fails unless rpcbind says TRUE.
pub fn rpc_register(host: &Host, program: u32, version: u32, port: u16) -> Result<(), LabError> {
    let rpcbind = host.socket_v4(111);
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
        program,
        version,
        6,
        u32::from(port),
    ] {
        call.extend_from_slice(&word.to_be_bytes());
    }
    let reply = host
        .run(move || -> std::io::Result<[u8; 32]> {
            let mut s = std::net::TcpStream::connect_timeout(&rpcbind, START_WAIT)?;
            s.set_read_timeout(Some(START_WAIT))?;
            s.write_all(&call)?;
            let mut reply = [0u8; 32];
            s.read_exact(&mut reply)?;
            Ok(reply)
        })?
        .map_err(|e| LabError::io(format!("PMAPPROC_SET to rpcbind at {rpcbind}"), e))?;
    // An accepted reply whose result is TRUE.
    if reply[28..32] == [0, 0, 0, 1] {
        Ok(())
    } else {
        Err(LabError::Invalid(format!(
            "rpcbind refused SET of program {program} version {version}: {reply:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_versions_split_into_upstream_and_revision() {
        assert_eq!(
            upstream_and_revision("1:9.2p1-2+deb12u3"),
            ("9.2p1".into(), "2+deb12u3".into())
        );
        assert_eq!(
            upstream_and_revision("5.9.3+dfsg-2+deb12u1"),
            ("5.9.3+dfsg".into(), "2+deb12u1".into())
        );
        assert_eq!(upstream_and_revision("15"), ("15".into(), String::new()));
    }

    #[test]
    fn udp_requests_have_their_protocol_lengths() {
        assert_eq!(NTP_REQUEST.len(), 48);
        assert_eq!(SNMP_GET.len(), 2 + usize::from(SNMP_GET[1]));
    }
}
