//! The version detection scenario (issue 6's benchmark): what answers on
//! each port of a lab host running real daemons, and how fast each tool
//! tells it.
//!
//! One lab host runs the daemons of the service lab tests
//! ([`portolan_lab::daemons`]): OpenSSH, Exim, vsftpd, dnsmasq, nginx
//! (HTTP on 80 and 8081, HTTPS on 443 and 8444), Dovecot (POP3, IMAP),
//! rpcbind, mosquitto, MariaDB, PostgreSQL, Redis and memcached over TCP;
//! dnsmasq, rpcbind, chrony, snmpd, Kamailio and memcached over UDP.
//! Three tools scan those ports (`-sS -sU -sV`): Portolan with its own
//! database, Portolan with nmap's database (`--versiondb`), and nmap.
//! Each runs under `timeout -k` ([`run_measured`]) `--runs` times; the run with the
//! median wall time is shown, with its ratio to nmap's.
//!
//! The truth is each port's service (nmap's names), product and version,
//! the version from the installed Debian package ([`truth`]). A tool's
//! product is right when it names the truth's (either contains the other,
//! ignoring case); its version when it contains the package's upstream
//! version, or is a range holding it (`14 - 16`, `9.6.0 or later` for
//! PostgreSQL 15, which tells no more before authentication). Where the
//! truth has no product (rpcbind), the product is not counted. Packets go
//! only to the lab's namespaces.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use portolan_lab::daemons::{self, upstream_and_revision, upstream_version};
use portolan_lab::{Daemon, Lab};

use crate::harness::{peer, sibling_binary};
use crate::measure::{Cost, run_measured};
use crate::parse::{self, Found};

/// Longest a single run may take.
const LIMIT: Duration = Duration::from_secs(600);
/// nmap's own database, as Debian installs it.
const NMAP_DB: &str = "/usr/share/nmap/nmap-service-probes";
/// The TCP ports with a daemon.
const TCP_PORTS: &str = "21,22,25,53,80,110,111,143,443,1883,3306,5432,6379,8081,8444,11211";
/// The UDP ports with a daemon.
const UDP_PORTS: &str = "53,111,123,161,5060,11211";

/// What one port truly runs.
struct Truth {
    proto: &'static str,
    port: u16,
    /// nmap's service name, `ssl/` first for TLS.
    service: &'static str,
    product: Option<&'static str>,
    version: Option<String>,
}

/// The truth of every port, from the installed packages.
fn truth() -> Result<Vec<Truth>, String> {
    let up = |package: &str| {
        upstream_version(package)
            .map(Some)
            .map_err(|e| format!("{package}: {e}"))
    };
    let ssh = daemons::package_version("openssh-server").map_err(|e| e.to_string())?;
    let (ssh_up, ssh_rev) = upstream_and_revision(&ssh);
    let nginx = up("nginx-common")?;
    let memcached = up("memcached")?;
    let dnsmasq = up("dnsmasq-base")?;
    let rpc = Some("2-4".to_string());
    let pg_major = daemons::postgresql_major().map_err(|e| e.to_string())?;
    // Debian's repack suffix is no part of what the daemon says.
    let snmp = up("snmpd")?.map(|v| v.split("+dfsg").next().unwrap_or(&v).to_string());
    let t = |proto, port, service, product, version| Truth {
        proto,
        port,
        service,
        product,
        version,
    };
    Ok(vec![
        t("tcp", 21, "ftp", Some("vsftpd"), up("vsftpd")?),
        t(
            "tcp",
            22,
            "ssh",
            Some("OpenSSH"),
            Some(format!("{ssh_up} Debian {ssh_rev}")),
        ),
        t("tcp", 25, "smtp", Some("Exim"), up("exim4-daemon-light")?),
        t("tcp", 53, "domain", Some("dnsmasq"), dnsmasq.clone()),
        t("tcp", 80, "http", Some("nginx"), nginx.clone()),
        t("tcp", 110, "pop3", Some("Dovecot"), up("dovecot-core")?),
        t("tcp", 111, "rpcbind", None, rpc.clone()),
        t("tcp", 143, "imap", Some("Dovecot"), up("dovecot-core")?),
        t("tcp", 443, "ssl/http", Some("nginx"), nginx.clone()),
        t("tcp", 1883, "mqtt", Some("Mosquitto"), up("mosquitto")?),
        t("tcp", 3306, "mysql", Some("MariaDB"), up("mariadb-server")?),
        t(
            "tcp",
            5432,
            "postgresql",
            Some("PostgreSQL"),
            Some(pg_major.to_string()),
        ),
        t("tcp", 6379, "redis", Some("Redis"), up("redis-server")?),
        t("tcp", 8081, "http", Some("nginx"), nginx.clone()),
        t("tcp", 8444, "ssl/http", Some("nginx"), nginx),
        t(
            "tcp",
            11211,
            "memcached",
            Some("memcached"),
            memcached.clone(),
        ),
        t("udp", 53, "domain", Some("dnsmasq"), dnsmasq),
        t("udp", 111, "rpcbind", None, rpc),
        t("udp", 123, "ntp", Some("chrony"), up("chrony")?),
        t("udp", 161, "snmp", Some("net-snmp"), snmp),
        t("udp", 5060, "sip", Some("Kamailio"), up("kamailio")?),
        t("udp", 11211, "memcached", Some("memcached"), memcached),
    ])
}

/// Whether a reported product names the truth's.
fn product_right(want: &str, got: Option<&str>) -> bool {
    let want = want.to_lowercase();
    got.map(str::to_lowercase)
        .is_some_and(|g| !g.is_empty() && (g.contains(&want) || want.contains(&g)))
}

/// Whether a reported version tells the truth's: it contains it, or it is
/// a range of major versions (`14 - 16`, `9.6.0 or later`) holding it.
fn version_right(want: &str, got: Option<&str>) -> bool {
    let Some(got) = got else {
        return false;
    };
    if got.contains(want) {
        return true;
    }
    let major = |v: &str| -> Option<u32> { v.trim().split('.').next()?.parse().ok() };
    let Some(truth) = major(want) else {
        return false;
    };
    if let Some(low) = got.strip_suffix(" or later") {
        major(low).is_some_and(|l| truth >= l)
    } else if let Some(high) = got.strip_suffix(" or earlier") {
        major(high).is_some_and(|h| truth <= h)
    } else if let Some((low, high)) = got.split_once(" - ") {
        matches!((major(low), major(high)), (Some(l), Some(h)) if (l..=h).contains(&truth))
    } else {
        false
    }
}

/// One tool: its label, how to run it (given its output file), and how to
/// read what it found.
struct Contender<'a> {
    label: String,
    command: Box<dyn Fn(&Path) -> std::process::Command + 'a>,
    read: fn(&str) -> BTreeMap<(String, u16), Found>,
}

/// A tool's median run.
struct Outcome {
    label: String,
    cost: Cost,
    found: BTreeMap<(String, u16), Found>,
}

fn measure(contender: &Contender<'_>, runs: usize, dir: &Path, n: &mut usize) -> Outcome {
    let mut outcomes = Vec::new();
    for _ in 0..runs {
        *n += 1;
        let out = dir.join(format!("sv-{n}.out"));
        let cost = run_measured((contender.command)(&out), LIMIT, Stdio::null());
        let found = (contender.read)(&std::fs::read_to_string(&out).unwrap_or_default());
        let stopped = cost.timed_out();
        outcomes.push(Outcome {
            label: contender.label.clone(),
            cost,
            found,
        });
        if stopped {
            break;
        }
    }
    outcomes.sort_by_key(|o| o.cost.wall);
    let middle = outcomes.len() / 2;
    outcomes.swap_remove(middle)
}

/// The daemons, alive while this is.
struct Daemons(Vec<Daemon>);

fn start_daemons(lab: &Lab, dir: &Path) -> Result<Daemons, String> {
    let host = lab.host(0);
    let named = |name: &str, d: Result<Daemon, portolan_lab::LabError>| {
        d.map_err(|e| format!("{name} did not start: {e}"))
    };
    let sub = |name: &str| -> Result<PathBuf, String> {
        let p = dir.join(name);
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(p)
    };
    Ok(Daemons(vec![
        named("sshd", daemons::sshd(host, &sub("ssh")?))?,
        named("exim", daemons::exim(host, &sub("exim")?))?,
        named("vsftpd", daemons::vsftpd(host, &sub("ftp")?))?,
        named("dnsmasq", daemons::dnsmasq(host, &sub("dns")?))?,
        named("nginx", daemons::nginx(host, &sub("nginx")?))?,
        named("dovecot", daemons::dovecot(host, &sub("dovecot")?))?,
        named("rpcbind", daemons::rpcbind(host))?,
        named("mosquitto", daemons::mosquitto(host, &sub("mqtt")?))?,
        named("mariadb", daemons::mariadb(host, &sub("mariadb")?))?,
        named("postgresql", daemons::postgresql(host, &sub("pg")?))?,
        named("redis", daemons::redis(host, &sub("redis")?))?,
        named("memcached", daemons::memcached(host, 11211, true))?,
        named("chronyd", daemons::chronyd(host, &sub("chrony")?))?,
        named("snmpd", daemons::snmpd(host, &sub("snmp")?))?,
        named("kamailio", daemons::kamailio(host, &sub("sip")?))?,
    ]))
}

/// `scripts/bench sv`.
pub fn versions_bench(runs: usize) -> Result<(), String> {
    let lab = Lab::builder()
        .hosts(1)
        .build()
        .map_err(|e| format!("cannot build the lab (run as root): {e}"))?;
    let dir = std::env::temp_dir().join(format!("portolan-bench-sv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = run(&lab, &dir, runs);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(lab: &Lab, dir: &Path, runs: usize) -> Result<(), String> {
    let truth = truth()?;
    let daemons = start_daemons(lab, dir)?;
    let target = lab.host(0).ipv4().to_string();
    let ports = format!("T:{TCP_PORTS},U:{UDP_PORTS}");
    let portolan = sibling_binary("portolan");
    let mut contenders = Vec::new();
    for db in [None, Some(NMAP_DB)] {
        if db.is_some_and(|p| !Path::new(p).exists()) {
            println!("{NMAP_DB} missing: the --versiondb row is skipped (apt-get install nmap)");
            continue;
        }
        let (binary, target, ports) = (portolan.clone(), target.clone(), ports.clone());
        let scanner = lab.scanner();
        contenders.push(Contender {
            label: match db {
                None => "portolan -sV".to_string(),
                Some(_) => "portolan -sV --versiondb nmap's".to_string(),
            },
            command: Box::new(move |out: &Path| {
                let mut cmd = scanner.command(&binary);
                cmd.args(["-sS", "-sU", "-sV", "-n", "-Pn", "--no-progress", "--no-db"])
                    .args(["-p", &ports, "-oJ"])
                    .arg(out);
                if let Some(db) = db {
                    cmd.args(["--versiondb", db]);
                }
                cmd.arg(&target);
                cmd
            }),
            read: parse::portolan_services,
        });
    }
    if let Some(nmap) = peer("nmap", "apt-get install nmap") {
        let (target, ports) = (target.clone(), ports.clone());
        let scanner = lab.scanner();
        contenders.push(Contender {
            label: "nmap -sV".to_string(),
            command: Box::new(move |out: &Path| {
                let mut cmd = scanner.command(&nmap);
                cmd.args(["-sS", "-sU", "-sV", "-n", "-Pn", "-p", &ports, "-oX"])
                    .arg(out)
                    .arg(&target);
                cmd
            }),
            read: parse::nmap_services,
        });
    }
    println!(
        "Version detection (-sS -sU -sV) of a lab host ({target}) running {} daemons on {} TCP and {} UDP ports; median of {runs} run(s); the machine's 2 cores are shared with other work",
        daemons.0.len(),
        TCP_PORTS.split(',').count(),
        UDP_PORTS.split(',').count(),
    );
    let mut n = 0;
    let outcomes: Vec<Outcome> = contenders
        .iter()
        .map(|c| measure(c, runs, dir, &mut n))
        .collect();
    print_summary(&outcomes, &truth);
    println!();
    print_ports(&outcomes, &truth);
    drop(daemons);
    Ok(())
}

/// Right counts of one tool: (services, products, products counted,
/// versions).
fn score(outcome: &Outcome, truth: &[Truth]) -> (usize, usize, usize, usize) {
    let (mut s, mut p, mut pn, mut v) = (0, 0, 0, 0);
    for t in truth {
        let got = outcome.found.get(&(t.proto.to_string(), t.port));
        let marks = marks(t, got);
        s += usize::from(marks.0);
        if let Some(right) = marks.1 {
            pn += 1;
            p += usize::from(right);
        }
        v += usize::from(marks.2);
    }
    (s, p, pn, v)
}

/// Whether service, product (`None`: not counted) and version are right.
fn marks(t: &Truth, got: Option<&Found>) -> (bool, Option<bool>, bool) {
    let Some(got) = got else {
        return (false, t.product.map(|_| false), false);
    };
    let service = got.service == t.service;
    let product = t.product.map(|p| product_right(p, got.product.as_deref()));
    let version = t
        .version
        .as_deref()
        .is_some_and(|v| version_right(v, got.version.as_deref()));
    (service, product, version)
}

fn print_summary(outcomes: &[Outcome], truth: &[Truth]) {
    let nmap_wall = outcomes
        .iter()
        .find(|o| o.label.starts_with("nmap"))
        .map(|o| o.cost.wall.as_secs_f64());
    println!(
        "{:<32} {:>8} {:>8} {:>8} {:>10}  {:>8} {:>8} {:>8}",
        "tool", "wall s", "cpu s", "rss MiB", "wall/nmap", "service", "product", "version"
    );
    for o in outcomes {
        let (s, p, pn, v) = score(o, truth);
        let more = if o.cost.timed_out() { ">" } else { "" };
        let wall = o.cost.wall.as_secs_f64();
        println!(
            "{:<32} {:>8} {:>8.2} {:>8.1} {:>10}  {:>8} {:>8} {:>8}{}",
            o.label,
            format!("{more}{wall:.2}"),
            o.cost.cpu.as_secs_f64(),
            o.cost.max_rss_kib as f64 / 1024.0,
            nmap_wall.map_or("-".to_string(), |n| format!("{:.2}", wall / n.max(1e-9))),
            format!("{s}/{}", truth.len()),
            format!("{p}/{pn}"),
            format!("{v}/{}", truth.len()),
            match o.cost.status {
                Some(0) => String::new(),
                _ if o.cost.timed_out() => " (stopped at the time limit)".to_string(),
                Some(c) => format!(" (exit {c})"),
                None => " (killed)".to_string(),
            }
        );
    }
}

/// Per port: the truth, then each tool's finding and S/P/V marks (upper
/// case right, `-` wrong, `.` not counted).
fn print_ports(outcomes: &[Outcome], truth: &[Truth]) {
    println!(
        "per port: truth | each tool's service/product/version marks (S P V: right, -: wrong, .: not counted) and what it said"
    );
    for t in truth {
        println!(
            "{:>5}/{} {} {} {}",
            t.port,
            t.proto,
            t.service,
            t.product.unwrap_or("-"),
            t.version.as_deref().unwrap_or("-")
        );
        for o in outcomes {
            let got = o.found.get(&(t.proto.to_string(), t.port));
            let (s, p, v) = marks(t, got);
            let said = got.map_or("(nothing)".to_string(), |g| {
                [
                    Some(g.service.as_str()),
                    g.product.as_deref(),
                    g.version.as_deref(),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
            });
            println!(
                "          {}{}{} {:<32} {}",
                if s { 'S' } else { '-' },
                match p {
                    Some(true) => 'P',
                    Some(false) => '-',
                    None => '.',
                },
                if v { 'V' } else { '-' },
                o.label,
                said
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_right_when_they_tell_the_package_version() {
        assert!(version_right(
            "10.11.14",
            Some("5.5.5-10.11.14-MariaDB-0+deb12u1")
        ));
        assert!(version_right("15", Some("14 - 16")));
        assert!(version_right("15", Some("9.6.0 or later")));
        assert!(!version_right("15", Some("9.5 or earlier")));
        assert!(!version_right("15", Some("17")));
        assert!(!version_right("1.22.1", None));
        assert!(product_right("Exim", Some("Exim smtpd")));
        assert!(product_right("memcached", Some("Memcached")));
        assert!(!product_right("MariaDB", Some("MySQL")));
        assert!(!product_right("nginx", Some("")));
    }
}
