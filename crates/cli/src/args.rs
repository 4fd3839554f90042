//! From the flags as typed to a resolved scan configuration (ripgrep's
//! low-args/high-args split: [`crate::flags`] knows spelling, this module
//! knows meaning).
//!
//! Every error is a [`UsageError`] naming the offending flag or value;
//! the binary prints it on one line and exits with status 2.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use portolan_engine::{TimingConfig, TimingTemplate};
use portolan_scan::{IdleZombie, ReverseDns, ScanConfig, Technique};
use portolan_targets::{PortList, Protocol};
use portolan_transport::raw::{Decoy, PingProbe, SctpProbe, TcpScan};

use crate::flags::{FlagId, Given, ParsedArgs};

/// A command line that parses but does not make sense.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// What the user asked for, beyond the scan itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Scan ports.
    Scan,
    /// `-sL`: list the targets and send nothing.
    List,
    /// `-h`
    Help,
    /// `-V`
    Version,
    /// `--man`
    Man,
}

/// The default probe port of an idle scan's zombie (nmap's).
pub const ZOMBIE_PORT: u16 = 80;

/// Parses the value of `-sI`.
fn parse_zombie(value: &str) -> Result<IdleZombie, String> {
    const EXPECTED: &str = "expected a zombie host, optionally with a probe port from 1 to 65535 (-sI 198.18.0.3[:80])";
    if value.parse::<std::net::Ipv6Addr>().is_ok()
        || value.starts_with('[')
        || value.matches(':').count() > 1
    {
        return Err("the idle scan works over IPv4 only: give an IPv4 zombie".into());
    }
    let (host, port) = match value.split_once(':') {
        Some((host, port)) => {
            let port: u16 = port.parse().map_err(|_| EXPECTED.to_string())?;
            if port == 0 {
                return Err(EXPECTED.into());
            }
            (host, port)
        }
        None => (value, ZOMBIE_PORT),
    };
    if host.is_empty() || host.starts_with('-') || host.contains(['/', ',', ' ']) {
        return Err(EXPECTED.into());
    }
    Ok(IdleZombie {
        host: host.to_string(),
        port,
    })
}

/// An output file request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    /// `None` for standard output (`-`).
    pub path: Option<PathBuf>,
}

/// The resolved configuration of one run.
#[derive(Clone, Debug)]
pub struct Config {
    /// What to do.
    pub mode: Mode,
    /// The scan itself.
    pub scan: ScanConfig,
    /// `-oN`.
    pub normal_out: Option<OutputFile>,
    /// `-oJ`.
    pub json_out: Option<OutputFile>,
    /// `-oX` (or `-oA`).
    pub xml_out: Option<OutputFile>,
    /// `-oG` (or `-oA`).
    pub grep_out: Option<OutputFile>,
    /// `--append-output`.
    pub append: bool,
    /// `--resume`: the XML file is an interrupted scan's, cut after its
    /// last whole host; its hosts and end are appended, not a new start.
    pub xml_continue: bool,
    /// `--resume`: the JSON-lines file keeps the finished hosts' lines of
    /// an interrupted scan; it goes on without a new `begin` line.
    pub json_continue: bool,
    /// `--open`.
    pub open_only: bool,
    /// `--reason`.
    pub reason: bool,
    /// `-v` level.
    pub verbosity: u8,
    /// `--stats-every`.
    pub stats_every: Option<Duration>,
    /// `--no-progress`.
    pub no_progress: bool,
    /// `--db`: where to record the scan (`None`: the default history).
    pub db: Option<String>,
    /// `--no-db`.
    pub no_db: bool,
    /// `--db-wait`.
    pub db_wait: Option<Duration>,
    /// `--on-change`.
    pub on_change: Option<String>,
    /// `--policy`.
    pub policy: Option<PathBuf>,
}

/// `--dns-servers 198.18.0.2,fd00::2,198.18.0.3:5353`: addresses, each
/// with an optional port (53 by default).
fn dns_servers(g: &Given) -> Result<Vec<std::net::SocketAddr>, UsageError> {
    let expected = "DNS server addresses separated by commas (198.18.0.2,fd00::2)";
    let servers = value(g)
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<std::net::IpAddr>()
                .map(|ip| std::net::SocketAddr::new(ip, 53))
                .or_else(|_| s.parse::<std::net::SocketAddr>())
                .map_err(|_| bad_value(g, expected))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err(bad_value(g, expected));
    }
    Ok(servers)
}

/// Parses nmap's time specifications: a number with an optional unit
/// (`ms`, `s`, `m`, `h`); a bare number is seconds.
pub fn parse_time(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    let secs = n * scale;
    (secs.is_finite() && (0.0..1e9).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

fn value(g: &Given) -> &str {
    g.value.as_deref().unwrap_or("")
}

fn bad_value(g: &Given, expected: &str) -> UsageError {
    usage(format!(
        "invalid value \"{}\" for {}: expected {expected}",
        value(g),
        g.spelled
    ))
}

/// `-S`'s addresses: a comma-separated list of addresses and ranges. A
/// range ends in a whole address or in the last part alone (an IPv4
/// address's last byte, `198.18.0.100-107`; an IPv6 address's last group,
/// `fd00:18::100-1ff`). At most [`portolan_scan::MAX_SOURCES`] in all.
fn parse_sources(text: &str) -> Result<Vec<IpAddr>, String> {
    let limit = portolan_scan::MAX_SOURCES;
    let mut sources = Vec::new();
    for item in text.split(',').map(str::trim) {
        let (first, last) = match item.split_once('-') {
            None => {
                let addr: IpAddr = item
                    .parse()
                    .map_err(|_| format!("not an address: {item}"))?;
                (addr, addr)
            }
            Some((first, end)) => {
                let first: IpAddr = first
                    .parse()
                    .map_err(|_| format!("not an address: {first}"))?;
                let last = match (end.parse::<IpAddr>(), first) {
                    (Ok(last), _) => last,
                    (Err(_), IpAddr::V4(a)) => {
                        let byte: u8 = end.parse().map_err(|_| format!("bad range end: {end}"))?;
                        let [o1, o2, o3, _] = a.octets();
                        IpAddr::from([o1, o2, o3, byte])
                    }
                    (Err(_), IpAddr::V6(a)) => {
                        let group = u16::from_str_radix(end, 16)
                            .map_err(|_| format!("bad range end: {end}"))?;
                        let mut groups = a.segments();
                        groups[7] = group;
                        IpAddr::from(groups)
                    }
                };
                (first, last)
            }
        };
        let (from, to) = match (first, last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b))),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b)),
            _ => return Err(format!("{item} mixes IP versions")),
        };
        if to < from {
            return Err(format!("{item} ends before it starts"));
        }
        if to - from >= (limit - sources.len().min(limit)) as u128 {
            return Err(format!("more than {limit} addresses"));
        }
        for n in from..=to {
            sources.push(match first {
                IpAddr::V4(_) => IpAddr::from(std::net::Ipv4Addr::from(n as u32)),
                IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::from(n)),
            });
        }
    }
    Ok(sources)
}

fn number<T: std::str::FromStr>(g: &Given, expected: &str) -> Result<T, UsageError> {
    value(g).trim().parse().map_err(|_| bad_value(g, expected))
}

fn time(g: &Given) -> Result<Duration, UsageError> {
    parse_time(value(g)).ok_or_else(|| bad_value(g, "a time such as 500ms, 2s, 5m or 1h"))
}

fn rate(g: &Given) -> Result<f64, UsageError> {
    let r: f64 = number(g, "a positive number of probes per second")?;
    if r.is_finite() && r > 0.0 {
        Ok(r)
    } else {
        Err(bad_value(g, "a positive number of probes per second"))
    }
}

fn level(g: &Given, letter: char) -> Result<u8, UsageError> {
    match g.value.as_deref() {
        None => Ok(1),
        Some(v) if v.chars().all(|c| c == letter) => Ok(1 + v.len().min(9) as u8),
        Some(v) => v
            .parse::<u8>()
            .map_err(|_| bad_value(g, "a level such as 2, or repeated letters")),
    }
}

fn output_file(g: &Given) -> Result<OutputFile, UsageError> {
    match value(g) {
        "" => Err(bad_value(g, "a file name, or - for standard output")),
        "-" => Ok(OutputFile { path: None }),
        p => Ok(OutputFile {
            path: Some(PathBuf::from(p)),
        }),
    }
}

/// Resolves parsed flags into a [`Config`]. Reads `-iL` and
/// `--excludefile` files through `read_list`.
pub fn resolve(
    parsed: &ParsedArgs,
    read_list: &dyn Fn(&str) -> Result<Vec<String>, String>,
) -> Result<Config, UsageError> {
    let mut mode = Mode::Scan;
    let mut targets = parsed.positional.clone();
    let mut excludes = Vec::new();
    let mut template = TimingTemplate::Normal;
    let mut overrides: Vec<&Given> = Vec::new();
    let mut port_spec: Option<&Given> = None;
    let mut exclude_ports: Option<&Given> = None;
    let mut top: Option<usize> = None;
    let mut cfg = Config {
        mode: Mode::Scan,
        scan: ScanConfig::new(Vec::<String>::new()),
        normal_out: None,
        json_out: None,
        xml_out: None,
        grep_out: None,
        append: false,
        xml_continue: false,
        json_continue: false,
        open_only: false,
        reason: false,
        verbosity: 0,
        stats_every: None,
        no_progress: false,
        db: None,
        no_db: false,
        db_wait: None,
        on_change: None,
        policy: None,
    };

    for g in &parsed.flags {
        match g.id {
            FlagId::Help => mode = Mode::Help,
            FlagId::Version => {
                if mode != Mode::Help {
                    mode = Mode::Version
                }
            }
            FlagId::Man => mode = Mode::Man,
            FlagId::InputList => {
                let list = read_list(value(g)).map_err(|e| usage(format!("-iL: {e}")))?;
                targets.extend(list);
            }
            FlagId::Exclude => excludes.extend(portolan_targets::split_exclude_list(value(g))),
            FlagId::ExcludeFile => {
                let list = read_list(value(g)).map_err(|e| usage(format!("--excludefile: {e}")))?;
                excludes.extend(list);
            }
            FlagId::Scope => {
                let scope = portolan_targets::Scope::read(value(g))
                    .map_err(|e| usage(format!("--scope: {e}")))?;
                cfg.scan.scope = Some(scope);
            }
            FlagId::NoResolve => cfg.scan.reverse_dns = ReverseDns::Never,
            FlagId::ResolveAll => cfg.scan.reverse_dns = ReverseDns::Always,
            FlagId::DnsServers => cfg.scan.dns_servers = Some(dns_servers(g)?),
            FlagId::SystemDns => {}
            FlagId::Ipv6 => cfg.scan.prefer_ipv6 = true,
            FlagId::Ping => {
                let v = value(g);
                match v.split_at(v.len().min(1)) {
                    ("n" | "N", "") => cfg.scan.skip_discovery = true,
                    ("E", "") => cfg.scan.pings.push(PingProbe::Echo),
                    ("P", "") => cfg.scan.pings.push(PingProbe::Timestamp),
                    ("R", "") => cfg.scan.pings.push(PingProbe::Neighbour),
                    ("M", "") => cfg.scan.pings.push(PingProbe::AddressMask),
                    (kind @ ("S" | "A" | "U" | "Y"), list) => {
                        // nmap's defaults: 80, and 40125 for UDP.
                        let ports = if list.is_empty() {
                            vec![if kind == "U" { 40125 } else { 80 }]
                        } else {
                            portolan_targets::parse_ports(list)
                                .map_err(|e| usage(format!("-P{v}: {e}")))?
                                .tcp
                        };
                        let make = match kind {
                            "S" => PingProbe::Syn,
                            "A" => PingProbe::Ack,
                            "U" => PingProbe::Udp,
                            _ => PingProbe::Sctp,
                        };
                        cfg.scan.pings.extend(ports.into_iter().map(make));
                    }
                    _ => {
                        return Err(usage(format!(
                            "-P{v}: this discovery probe is not available yet; \
                             use -PE, -PP, -PM, -PS/-PA/-PU/-PY[ports], -PR or -Pn"
                        )));
                    }
                }
            }
            FlagId::Scan => {
                for letter in value(g).chars() {
                    match letter {
                        'T' | 'S' | 'A' | 'W' | 'F' | 'N' | 'X' | 'M' => {
                            let kind = match letter {
                                'T' => Technique::Connect,
                                'S' => Technique::Tcp(TcpScan::Syn),
                                'A' => Technique::Tcp(TcpScan::Ack),
                                'W' => Technique::Tcp(TcpScan::Window),
                                'F' => Technique::Tcp(TcpScan::Fin),
                                'N' => Technique::Tcp(TcpScan::Null),
                                'X' => Technique::Tcp(TcpScan::Xmas),
                                _ => Technique::Tcp(TcpScan::Maimon),
                            };
                            if let Some(other) = cfg.scan.technique.filter(|k| *k != kind) {
                                return Err(usage(format!(
                                    "only one TCP scan type at a time: {} or {}",
                                    other.flag(),
                                    kind.flag()
                                )));
                            }
                            cfg.scan.technique = Some(kind);
                        }
                        'L' => mode = Mode::List,
                        'V' => cfg.scan.version.enabled = true,
                        'n' => cfg.scan.ping_only = true,
                        'U' => cfg.scan.udp = true,
                        'Y' | 'Z' => {
                            let probe = if letter == 'Y' {
                                SctpProbe::Init
                            } else {
                                SctpProbe::CookieEcho
                            };
                            if cfg.scan.sctp.is_some_and(|p| p != probe) {
                                return Err(usage("only one SCTP scan type at a time: -sY or -sZ"));
                            }
                            cfg.scan.sctp = Some(probe);
                        }
                        'O' => cfg.scan.ip_protocols = true,
                        'I' => {
                            return Err(usage(
                                "-sI takes the zombie as the next argument: \
                                 -sI <zombie>[:<probeport>] (as nmap)",
                            ));
                        }
                        'C' | 'R' => {
                            return Err(usage(format!(
                                "-s{letter}: this scan type is not available yet; \
                                 use -sS, -sT, -sA, -sW, -sF, -sN, -sX, -sM, -sU, -sY, -sZ, -sO or -sL"
                            )));
                        }
                        other => {
                            return Err(usage(format!(
                                "invalid scan type \"-s{other}\" in \"{}{}\"",
                                g.spelled,
                                value(g)
                            )));
                        }
                    }
                }
            }
            FlagId::IdleScan => {
                if let Some(other) = cfg.scan.technique.filter(|k| *k != Technique::Idle) {
                    return Err(usage(format!(
                        "only one TCP scan type at a time: {} or -sI",
                        other.flag()
                    )));
                }
                cfg.scan.idle = Some(
                    parse_zombie(value(g))
                        .map_err(|e| usage(format!("-sI \"{}\": {e}", value(g))))?,
                );
                cfg.scan.technique = Some(Technique::Idle);
            }
            FlagId::VersionIntensity => {
                let n: u8 = number(g, "a number from 0 to 9")?;
                if n > 9 {
                    return Err(bad_value(g, "a number from 0 to 9"));
                }
                cfg.scan.version.intensity = n;
            }
            FlagId::VersionLight => cfg.scan.version.intensity = 2,
            FlagId::VersionAll => cfg.scan.version.intensity = 9,
            FlagId::VersionTimeout => {
                cfg.scan.version.timeout = time(g)?;
                if cfg.scan.version.timeout.is_zero() {
                    return Err(bad_value(g, "a time such as 500ms, 2s, 5m or 1h"));
                }
            }
            FlagId::VersionDb => cfg.scan.version.db = Some(PathBuf::from(value(g))),
            FlagId::OsDetect => cfg.scan.os.enabled = true,
            FlagId::OsScanLimit => cfg.scan.os.limit = true,
            FlagId::OsScanGuess => cfg.scan.os.guess = true,
            FlagId::MaxOsTries => {
                let n: u8 = number(g, "a number from 1 to 50")?;
                if !(1..=50).contains(&n) {
                    return Err(bad_value(g, "a number from 1 to 50"));
                }
                cfg.scan.os.tries = n;
            }
            FlagId::OsDb => cfg.scan.os.db = Some(PathBuf::from(value(g))),
            FlagId::Ports => port_spec = Some(g),
            FlagId::ExcludePorts => exclude_ports = Some(g),
            FlagId::Fast => top = Some(100),
            FlagId::TopPorts => {
                let n: usize = number(g, "a number of ports from 1 to 65535")?;
                if !(1..=65535).contains(&n) {
                    return Err(bad_value(g, "a number of ports from 1 to 65535"));
                }
                top = Some(n);
            }
            FlagId::NoRandomize => cfg.scan.randomize = false,
            FlagId::Seed => cfg.scan.seed = Some(number(g, "a whole number")?),
            FlagId::Timing => {
                template = TimingTemplate::parse(value(g)).ok_or_else(|| {
                    bad_value(g, "0-5 or paranoid|sneaky|polite|normal|aggressive|insane")
                })?
            }
            FlagId::OutNormal => cfg.normal_out = Some(output_file(g)?),
            FlagId::OutJson => cfg.json_out = Some(output_file(g)?),
            FlagId::OutXml => cfg.xml_out = Some(output_file(g)?),
            FlagId::OutGrep => cfg.grep_out = Some(output_file(g)?),
            FlagId::OutAll => {
                let base = match output_file(g)?.path {
                    Some(base) => base,
                    None => {
                        return Err(bad_value(
                            g,
                            "a base name for the .nmap, .xml and .gnmap files (not -)",
                        ));
                    }
                };
                let with = |ext: &str| {
                    let mut name = base.clone().into_os_string();
                    name.push(ext);
                    Some(OutputFile {
                        path: Some(PathBuf::from(name)),
                    })
                };
                cfg.normal_out = with(".nmap");
                cfg.xml_out = with(".xml");
                cfg.grep_out = with(".gnmap");
            }
            FlagId::AppendOutput => cfg.append = true,
            FlagId::Resume => {
                return Err(usage(
                    "--resume takes no other option: portolan --resume FILE".to_string(),
                ));
            }
            FlagId::Open => cfg.open_only = true,
            FlagId::Reason => cfg.reason = true,
            FlagId::Verbose => cfg.verbosity = cfg.verbosity.saturating_add(level(g, 'v')?),
            FlagId::Debug => {
                level(g, 'd')?;
            }
            FlagId::StatsEvery => cfg.stats_every = Some(time(g)?),
            FlagId::NoProgress => cfg.no_progress = true,
            FlagId::Db => cfg.db = Some(value(g).to_string()),
            FlagId::NoDb => cfg.no_db = true,
            FlagId::DbWait => cfg.db_wait = Some(time(g)?),
            FlagId::OnChange => cfg.on_change = Some(value(g).to_string()),
            FlagId::Policy => cfg.policy = Some(PathBuf::from(value(g))),
            FlagId::Source => {
                cfg.scan.sources = parse_sources(value(g)).map_err(|problem| {
                    bad_value(
                        g,
                        &format!(
                            "IPv4 or IPv6 addresses, in a comma-separated list or ranges such \
                             as 198.18.0.100-107 ({problem})"
                        ),
                    )
                })?
            }
            FlagId::Interface => cfg.scan.interface = Some(value(g).to_string()),
            FlagId::SendIp => cfg.scan.send_ip = true,
            FlagId::Offline => cfg.scan.offline = true,
            FlagId::DefeatIcmpRatelimit => cfg.scan.defeat_icmp_ratelimit = true,
            FlagId::ScanFlags => {
                cfg.scan.scanflags = Some(parse_scanflags(value(g)).ok_or_else(|| {
                    bad_value(
                        g,
                        "TCP flag names run together (SYNFIN, URGPSHFIN) or 0-255",
                    )
                })?);
            }
            FlagId::DisableArpPing => cfg.scan.disable_arp_ping = true,
            FlagId::NoProxyCheck => cfg.scan.proxy_check = false,
            FlagId::Decoys => {
                cfg.scan.decoys = parse_decoys(value(g)).map_err(|e| bad_value(g, &e))?
            }
            FlagId::SourcePort => {
                let port: u16 = number(g, "a port number from 1 to 65535")?;
                if port == 0 {
                    return Err(bad_value(g, "a port number from 1 to 65535"));
                }
                cfg.scan.source_port = Some(port);
            }
            FlagId::MinRate
            | FlagId::MaxRate
            | FlagId::MaxRetries
            | FlagId::SweepConfidence
            | FlagId::HostTimeout
            | FlagId::MinRttTimeout
            | FlagId::MaxRttTimeout
            | FlagId::InitialRttTimeout
            | FlagId::MinParallelism
            | FlagId::MaxParallelism
            | FlagId::ScanDelay
            | FlagId::MaxScanDelay
            | FlagId::MinHostgroup
            | FlagId::MaxHostgroup => overrides.push(g),
        }
    }

    if cfg.scan.idle.is_some() {
        if cfg.scan.prefer_ipv6 {
            return Err(usage(
                "-sI: the idle scan works over IPv4 only; it does not go with -6",
            ));
        }
        if !cfg.scan.decoys.is_empty() {
            return Err(usage(
                "-D: decoys do not go with the idle scan (-sI), whose probes all come from the zombie",
            ));
        }
    }

    // Timing: the template first, then single knobs, whatever the order.
    let mut t = TimingConfig::from_template(template);
    let mut max_scan_delay: Option<Duration> = None;
    for g in overrides {
        match g.id {
            FlagId::MinRate => t.min_rate = Some(rate(g)?),
            FlagId::MaxRate => t.max_rate = Some(rate(g)?),
            FlagId::MaxRetries => {
                t = t.with_max_retries(number(g, "a number from 0 to 50")?);
            }
            FlagId::SweepConfidence => {
                const EXPECTED: &str = "a chance between 0 and 1, such as 0.999";
                let c: f64 = number(g, EXPECTED)?;
                // Within 1e-12 of 1 the tries it calls for pass the cap
                // anyway (the loss model's floor).
                if !(c > 0.0 && c <= 1.0 - 1e-12) {
                    return Err(bad_value(g, EXPECTED));
                }
                t.sweep_miss = 1.0 - c;
            }
            FlagId::HostTimeout => {
                let d = time(g)?;
                t.host_timeout = (!d.is_zero()).then_some(d);
            }
            FlagId::MinRttTimeout => {
                // The user's floor holds for every try.
                t.min_rtt_timeout = time(g)?;
                t.early_rtt_timeout = t.min_rtt_timeout;
            }
            FlagId::MaxRttTimeout => t.max_rtt_timeout = time(g)?,
            FlagId::InitialRttTimeout => t.initial_rtt_timeout = time(g)?,
            FlagId::MinParallelism => t.min_parallelism = number(g, "a positive number")?,
            FlagId::MaxParallelism => {
                t.max_parallelism = number(g, "a positive number")?;
                if t.max_parallelism == 0 {
                    return Err(bad_value(g, "a positive number"));
                }
                t.sweep_parallelism = t.max_parallelism;
            }
            FlagId::ScanDelay => t.scan_delay = time(g)?,
            FlagId::MaxScanDelay => max_scan_delay = Some(time(g)?),
            FlagId::MinHostgroup => {
                let _: u32 = number(g, "a positive number")?;
            }
            FlagId::MaxHostgroup => {
                let n: u32 = number(g, "a positive number")?;
                if n == 0 {
                    return Err(bad_value(g, "a positive number"));
                }
                cfg.scan.max_hostgroup = Some(n);
            }
            _ => {}
        }
    }
    if t.max_retries > 50 {
        return Err(usage(format!(
            "--max-retries {}: at most 50 retransmissions",
            t.max_retries
        )));
    }
    if let Some(cap) = max_scan_delay {
        t.scan_delay = t.scan_delay.min(cap);
    }
    cfg.scan.timing = t.normalized();

    if cfg.scan.scanflags.is_some() && cfg.scan.technique == Some(Technique::Connect) {
        return Err(usage(
            "--scanflags: custom flags need a raw TCP scan (-sS, -sA, -sF, ...), not -sT",
        ));
    }

    // Ports.
    // TCP unless -sU is the only scan type asked for; ports without a
    // T:/U: prefix go to every protocol scanned.
    let tcp = cfg.scan.scans_tcp();
    let mut protocols = Vec::new();
    if tcp {
        protocols.push(Protocol::Tcp);
    }
    if cfg.scan.udp {
        protocols.push(Protocol::Udp);
    }
    if cfg.scan.sctp.is_some() {
        protocols.push(Protocol::Sctp);
    }
    if cfg.scan.ip_protocols {
        protocols.push(Protocol::Ip);
    }
    let mut ports = match (port_spec, top) {
        (Some(g), _) => portolan_targets::parse_ports_for(value(g), &protocols)
            .map_err(|e| usage(format!("{}: {e}", g.spelled)))?,
        (None, n) => {
            let n = n.unwrap_or(1000);
            let top = |p: Protocol| {
                if protocols.contains(&p) {
                    portolan_targets::top_ports(p, n)
                } else {
                    Vec::new()
                }
            };
            PortList {
                tcp: top(Protocol::Tcp),
                udp: top(Protocol::Udp),
                sctp: top(Protocol::Sctp),
                // -sO scans every protocol number by default, as nmap.
                ip: top(Protocol::Ip),
            }
        }
    };
    if let Some(g) = exclude_ports {
        let ex = portolan_targets::parse_ports(value(g))
            .map_err(|e| usage(format!("{}: {e}", g.spelled)))?;
        ports.remove(&ex);
    }
    cfg.scan.tcp_ports = ports.tcp;
    cfg.scan.udp_ports = ports.udp;
    cfg.scan.sctp_ports = ports.sctp;
    cfg.scan.ip_protocol_numbers = ports.ip;

    let to_stdout = [&cfg.normal_out, &cfg.json_out, &cfg.xml_out, &cfg.grep_out]
        .iter()
        .filter(|o| o.as_ref().is_some_and(|f| f.path.is_none()))
        .count();
    if to_stdout > 1 {
        return Err(usage(
            "only one output format can go to standard output (-); give the others a file",
        ));
    }

    cfg.mode = mode;
    if cfg.no_db && cfg.db.is_some() {
        return Err(usage("--db and --no-db: choose one"));
    }
    if cfg.no_db && cfg.on_change.is_some() {
        return Err(usage(
            "--on-change compares with the previous scan in the history: not with --no-db",
        ));
    }
    cfg.scan.targets = targets;
    cfg.scan.excludes = excludes;
    if cfg.mode == Mode::Scan || cfg.mode == Mode::List {
        if cfg.scan.targets.is_empty() {
            return Err(usage(
                "no targets were specified: give addresses, networks or names, or -iL FILE",
            ));
        }
        let which = if tcp && cfg.scan.tcp_ports.is_empty() {
            Some("TCP")
        } else if cfg.scan.udp && cfg.scan.udp_ports.is_empty() {
            Some("UDP")
        } else if cfg.scan.sctp.is_some() && cfg.scan.sctp_ports.is_empty() {
            Some("SCTP")
        } else if cfg.scan.ip_protocols && cfg.scan.ip_protocol_numbers.is_empty() {
            Some("IP protocol")
        } else {
            None
        };
        if let Some(which) = which.filter(|_| cfg.mode == Mode::Scan && !cfg.scan.ping_only) {
            return Err(usage(format!(
                "no {which} ports to scan: the port list is empty (check -p and --exclude-ports)"
            )));
        }
    }
    Ok(cfg)
}

/// Parses `--scanflags` as nmap does: TCP flag names run together in any
/// order and case (`SYNFIN`, `urgpshfin`), `ALL` or `NONE`, or the flags
/// byte as a number (`9`, `0x29`). `None` for anything else.
fn parse_scanflags(text: &str) -> Option<u8> {
    const NAMES: [(&str, u8); 10] = [
        ("FIN", 0x01),
        ("SYN", 0x02),
        ("RST", 0x04),
        ("PSH", 0x08),
        ("ACK", 0x10),
        ("URG", 0x20),
        ("ECE", 0x40),
        ("CWR", 0x80),
        ("ALL", 0xff),
        ("NONE", 0x00),
    ];
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return u8::from_str_radix(hex, 16).ok();
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let upper = text.to_ascii_uppercase();
    let mut rest = upper.as_str();
    let mut bits = 0;
    while !rest.is_empty() {
        let (name, flag) = NAMES.iter().find(|(name, _)| rest.starts_with(name))?;
        bits |= flag;
        rest = &rest[name.len()..];
    }
    (!upper.is_empty()).then_some(bits)
}

/// Parses `-D`: addresses, `ME` (where our own probe goes; a random place
/// if absent, as in nmap) and `RND` or `RND:<n>` (random routable IPv4
/// addresses).
fn parse_decoys(list: &str) -> Result<Vec<Decoy>, String> {
    const MAX_DECOYS: usize = 128;
    const EXPECTED: &str = "a list of addresses, ME and RND[:count] (at most 128 decoys)";
    let mut decoys = Vec::new();
    let mut random = RandomAddresses::new();
    for item in list.split(',') {
        let item = item.trim();
        if item.eq_ignore_ascii_case("ME") {
            if decoys.contains(&Decoy::Me) {
                return Err(EXPECTED.into());
            }
            decoys.push(Decoy::Me);
        } else if let Some(count) = item.strip_prefix("RND").map(|rest| {
            rest.strip_prefix(':')
                .unwrap_or(if rest.is_empty() { "1" } else { "x" })
        }) {
            let count: usize = count.parse().map_err(|_| EXPECTED.to_string())?;
            if count > MAX_DECOYS {
                return Err(EXPECTED.into());
            }
            decoys.extend((0..count).map(|_| Decoy::Addr(random.next())));
        } else {
            decoys.push(Decoy::Addr(item.parse().map_err(|_| EXPECTED.to_string())?));
        }
        if decoys.len() > MAX_DECOYS + 1 {
            return Err(EXPECTED.into());
        }
    }
    if !decoys.contains(&Decoy::Me) {
        let at = (random.next_u64() % (decoys.len() as u64 + 1)) as usize;
        decoys.insert(at, Decoy::Me);
    }
    Ok(decoys)
}

/// Random IPv4 addresses outside private, reserved, multicast and
/// benchmarking ranges, for `-D RND`.
struct RandomAddresses(u64);

impl RandomAddresses {
    fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        RandomAddresses(h.finish() | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn next(&mut self) -> std::net::IpAddr {
        loop {
            let a = std::net::Ipv4Addr::from(self.next_u64() as u32);
            let [o1, o2, ..] = a.octets();
            let reserved = a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_documentation()
                || o1 == 0
                || o1 >= 240
                || (o1 == 100 && (64..128).contains(&o2))
                || (o1 == 198 && (o2 & 0xfe) == 18);
            if !reserved {
                return a.into();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_scan::VersionConfig;

    #[test]
    fn decoys_place_me_and_reject_bad_items() {
        let d = parse_decoys("198.18.0.7,ME,fd00::7").unwrap();
        assert_eq!(
            d,
            vec![
                Decoy::Addr("198.18.0.7".parse().unwrap()),
                Decoy::Me,
                Decoy::Addr("fd00::7".parse().unwrap()),
            ]
        );
        // Without ME, our probe takes some place among three.
        let d = parse_decoys("198.18.0.7,198.18.0.8").unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d.iter().filter(|x| **x == Decoy::Me).count(), 1);
        let d = parse_decoys("RND:5,ME").unwrap();
        assert_eq!(d.len(), 6);
        for x in &d[..5] {
            let Decoy::Addr(std::net::IpAddr::V4(a)) = x else {
                panic!("{x:?}")
            };
            assert!(!a.is_private() && !a.is_loopback() && a.octets()[0] != 0);
        }
        assert_eq!(parse_decoys("RND").unwrap().len(), 2);
        for bad in ["ME,ME", "RND:x", "RNDx", "nonsense", "", "RND:1000"] {
            assert!(parse_decoys(bad).is_err(), "{bad}");
        }
    }
    #[test]
    fn source_lists_and_ranges() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(parse_sources("198.18.0.9").unwrap(), vec![ip("198.18.0.9")]);
        let range = parse_sources("198.18.0.100-107").unwrap();
        assert_eq!(range.len(), 8);
        assert_eq!(range[7], ip("198.18.0.107"));
        assert_eq!(
            parse_sources("198.18.0.254-198.18.1.1").unwrap().len(),
            4,
            "a range across a byte boundary"
        );
        let v6 = parse_sources("fd00:18::100-1ff").unwrap_err();
        assert!(v6.contains("more than 64"), "{v6}");
        let v6 = parse_sources("fd00:18::100-107, fd00:18::200").unwrap();
        assert_eq!(v6.len(), 9);
        assert_eq!(v6[8], ip("fd00:18::200"));
        for bad in [
            "198.18.0.107-100",
            "198.18.0.1-fd00::1",
            "198.18.0.1-300",
            "198.18.0.0-198.18.1.0",
            "nonsense",
            "",
        ] {
            assert!(parse_sources(bad).is_err(), "{bad}");
        }
    }

    use crate::flags::parse;

    fn cfg(args: &[&str]) -> Result<Config, String> {
        let parsed = parse(args.iter().copied()).map_err(|e| e.to_string())?;
        resolve(&parsed, &|p| Err(format!("cannot read {p}"))).map_err(|e| e.to_string())
    }

    #[test]
    fn reverse_dns_flags() {
        let c = cfg(&["198.18.0.1"]).unwrap();
        assert_eq!(c.scan.reverse_dns, ReverseDns::Answered);
        assert_eq!(c.scan.dns_servers, None);
        assert_eq!(
            cfg(&["-n", "x"]).unwrap().scan.reverse_dns,
            ReverseDns::Never
        );
        assert_eq!(
            cfg(&["-R", "x"]).unwrap().scan.reverse_dns,
            ReverseDns::Always
        );
        assert_eq!(
            cfg(&["-nR", "x"]).unwrap().scan.reverse_dns,
            ReverseDns::Always
        );
        let c = cfg(&[
            "--system-dns",
            "-dns-servers",
            "198.18.0.2, fd00::2,198.18.0.3:5353",
            "x",
        ])
        .unwrap();
        let want: Vec<std::net::SocketAddr> = ["198.18.0.2:53", "[fd00::2]:53", "198.18.0.3:5353"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(c.scan.dns_servers, Some(want));
        for bad in ["", ",", "dns.example", "198.18.0.256"] {
            let err = cfg(&["--dns-servers", bad, "x"]).unwrap_err();
            assert!(err.contains("--dns-servers"), "{err}");
        }
    }

    #[test]
    fn times_parse_like_nmap() {
        assert_eq!(parse_time("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_time("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_time("1.5m"), Some(Duration::from_secs(90)));
        assert_eq!(parse_time("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_time("5x"), None);
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("-1"), None);
    }

    #[test]
    fn sweep_confidence_is_a_chance_below_one() {
        let c = cfg(&["198.18.0.1"]).unwrap();
        assert_eq!(c.scan.timing.sweep_miss, 1e-3);
        let c = cfg(&["--sweep-confidence", "0.99", "-T4", "198.18.0.1"]).unwrap();
        assert!((c.scan.timing.sweep_miss - 0.01).abs() < 1e-9);
        for bad in ["1", "0", "-0.5", "1.5", "x", "NaN", ""] {
            let err = cfg(&["--sweep-confidence", bad, "198.18.0.1"])
                .unwrap_err()
                .to_string();
            assert!(err.contains("--sweep-confidence"), "{bad}: {err}");
        }
    }

    #[test]
    fn template_then_overrides_in_any_order() {
        let c = cfg(&["--max-retries", "3", "-T4", "198.18.0.1"]).unwrap();
        assert_eq!(c.scan.timing.max_retries, 3);
        // The user's cap holds under loss too.
        assert_eq!(c.scan.timing.max_retries_under_loss, 3);
        assert_eq!(c.scan.timing.max_rtt_timeout, Duration::from_millis(1250));
        // -T4's own cap yields to measured loss, up to nmap's default.
        let c = cfg(&["-T4", "198.18.0.1"]).unwrap();
        assert_eq!(c.scan.timing.max_retries, 6);
        assert_eq!(c.scan.timing.max_retries_under_loss, 10);
        let c = cfg(&["-T5", "--min-rate", "1000", "--host-timeout", "0", "x"]).unwrap();
        assert_eq!(c.scan.timing.min_rate, Some(1000.0));
        assert_eq!(c.scan.timing.host_timeout, None);
    }

    #[test]
    fn ports_default_to_top_thousand() {
        let c = cfg(&["198.18.0.1"]).unwrap();
        assert_eq!(c.scan.tcp_ports.len(), 1000);
        let c = cfg(&["-F", "198.18.0.1"]).unwrap();
        assert_eq!(c.scan.tcp_ports.len(), 100);
        let c = cfg(&["-p-", "--exclude-ports", "1-1000", "198.18.0.1"]).unwrap();
        assert_eq!(c.scan.tcp_ports.len(), 65535 - 1000);
    }

    #[test]
    fn version_detection_flags() {
        let c = cfg(&["198.18.0.1"]).unwrap();
        assert_eq!(c.scan.version, VersionConfig::default());
        let c = cfg(&["-sV", "--version-light", "--version-timeout", "5s", "x"]).unwrap();
        assert!(c.scan.version.enabled);
        assert_eq!(c.scan.version.intensity, 2);
        assert_eq!(c.scan.version.timeout, Duration::from_secs(5));
        let c = cfg(&["-sTV", "-version-all", "--versiondb", "db.txt", "x"]).unwrap();
        assert!(c.scan.version.enabled);
        assert_eq!(c.scan.version.intensity, 9);
        assert_eq!(c.scan.version.db, Some(PathBuf::from("db.txt")));
        assert!(
            cfg(&["--version-intensity", "10", "x"])
                .unwrap_err()
                .contains("\"10\"")
        );
    }

    #[test]
    fn output_flags_choose_files() {
        let c = cfg(&["-oX", "-", "-oG", "g.txt", "x"]).unwrap();
        assert_eq!(c.xml_out, Some(OutputFile { path: None }));
        assert_eq!(c.grep_out.unwrap().path.unwrap(), PathBuf::from("g.txt"));
        let c = cfg(&["-oA", "dir/scan", "x"]).unwrap();
        assert_eq!(
            c.normal_out.unwrap().path.unwrap(),
            PathBuf::from("dir/scan.nmap")
        );
        assert_eq!(
            c.xml_out.unwrap().path.unwrap(),
            PathBuf::from("dir/scan.xml")
        );
        assert_eq!(
            c.grep_out.unwrap().path.unwrap(),
            PathBuf::from("dir/scan.gnmap")
        );
        assert!(cfg(&["-oA", "-", "x"]).unwrap_err().contains("-oA"));
        assert!(
            cfg(&["-oX", "-", "-oJ", "-", "x"])
                .unwrap_err()
                .contains("only one output format")
        );
    }

    #[test]
    fn bad_input_is_named() {
        assert_eq!(
            cfg(&["-T9", "x"]).unwrap_err(),
            "invalid value \"9\" for -T: expected 0-5 or paranoid|sneaky|polite|normal|aggressive|insane"
        );
        assert!(
            cfg(&["--min-rate", "fast", "x"])
                .unwrap_err()
                .contains("\"fast\"")
        );
        assert!(cfg(&["-p", "70000", "x"]).unwrap_err().contains("70000"));
        assert!(cfg(&[]).unwrap_err().contains("no targets"));
        assert!(cfg(&["-sQ", "x"]).unwrap_err().contains("-sQ"));
        assert!(cfg(&["-sIz", "x"]).unwrap_err().contains("next argument"));
        assert!(cfg(&["-iL", "nope.txt"]).unwrap_err().contains("nope.txt"));
        assert!(
            cfg(&["-p", "U:53", "x"])
                .unwrap_err()
                .contains("no TCP ports")
        );
    }

    #[test]
    fn scanflags_take_names_or_numbers() {
        assert_eq!(parse_scanflags("SYNFIN"), Some(0x03));
        assert_eq!(parse_scanflags("urgpshfin"), Some(0x29));
        assert_eq!(parse_scanflags("URGACKPSHRSTSYNFIN"), Some(0x3f));
        assert_eq!(parse_scanflags("ECECWR"), Some(0xc0));
        assert_eq!(parse_scanflags("ALL"), Some(0xff));
        assert_eq!(parse_scanflags("NONE"), Some(0));
        assert_eq!(parse_scanflags("9"), Some(9));
        assert_eq!(parse_scanflags("0x29"), Some(0x29));
        for bad in ["", "SYNX", "256", "0x100", "0x", "-1", "SY"] {
            assert_eq!(parse_scanflags(bad), None, "{bad}");
        }
        let c = cfg(&["--scanflags", "PSHFIN", "-sF", "x"]).unwrap();
        assert_eq!(c.scan.scanflags, Some(0x09));
        let err = cfg(&["--scanflags", "SYNBOGUS", "x"]).unwrap_err();
        assert!(err.contains("--scanflags"), "{err}");
    }

    #[test]
    fn idle_scan_flags() {
        let c = cfg(&["-sI", "198.18.0.3", "-Pn", "x"]).unwrap();
        assert_eq!(c.scan.technique, Some(Technique::Idle));
        assert_eq!(
            c.scan.idle,
            Some(IdleZombie {
                host: "198.18.0.3".into(),
                port: 80
            })
        );
        let c = cfg(&["-sI", "zombie.lab:22", "x"]).unwrap();
        assert_eq!(c.scan.idle.unwrap().port, 22);
        // With -sU, as nmap allows.
        let c = cfg(&["-sU", "-sI", "198.18.0.3", "x"]).unwrap();
        assert!(c.scan.udp && c.scan.technique == Some(Technique::Idle));
        for (args, says) in [
            (&["-sI", "198.18.0.3:0", "x"][..], "probe port"),
            (&["-sI", "198.18.0.3:http", "x"][..], "probe port"),
            (&["-sI", "198.18.0.3:70000", "x"][..], "probe port"),
            (&["-sI", ":80", "x"][..], "zombie host"),
            (&["-sI", "fd00::3", "x"][..], "IPv4 only"),
            (&["-sI", "[fd00::3]:80", "x"][..], "IPv4 only"),
            (&["-sI", "198.18.0.3", "-6", "x"][..], "-6"),
            (&["-sS", "-sI", "198.18.0.3", "x"][..], "-sS or -sI"),
            (&["-sI", "198.18.0.3", "-sT", "x"][..], "-sI or -sT"),
            (
                &["-sI", "198.18.0.3", "-D", "198.18.0.9", "x"][..],
                "decoys",
            ),
        ] {
            let e = cfg(args).unwrap_err();
            assert!(e.contains(says), "{args:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
