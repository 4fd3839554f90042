//! What a scan is asked to do: [`ScanConfig`] holds the scan's settings
//! and nothing else (no terminal, no output files), so a binary, a test,
//! a web UI or a worker can build one; [`Technique`] names each scan
//! technique with what it needs and what its silence means.
//!
//! A configuration is checked once, when [`crate::Scan::new`] turns it
//! into a runnable scan; every problem is a [`crate::ScanError`] naming
//! the offending value.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use portolan_engine::{PortState, TimingConfig, TimingTemplate};
use portolan_targets::Scope;
use portolan_transport::raw::{Decoy, PingProbe, SctpProbe, TcpScan};

/// A scan technique: how ports are probed and how answers are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Technique {
    /// `-sT`: `connect()`, no privilege needed.
    Connect,
    /// `-sS`, `-sA`, `-sW`, `-sF`, `-sN`, `-sX`, `-sM`: raw TCP probes.
    Tcp(TcpScan),
    /// `-sU`: raw UDP probes with each port's payload.
    Udp,
    /// `-sY`, `-sZ`: raw SCTP probes.
    Sctp(SctpProbe),
    /// `-sO`: the IP protocol scan, a raw packet per protocol number.
    IpProtocol,
    /// `-sI`: SYNs spoofed from a zombie ([`ScanConfig::idle`]).
    Idle,
}

impl Technique {
    /// The nmap flag that asks for this technique.
    pub fn flag(self) -> &'static str {
        match self {
            Technique::Connect => "-sT",
            Technique::Tcp(TcpScan::Syn) => "-sS",
            Technique::Tcp(TcpScan::Ack) => "-sA",
            Technique::Tcp(TcpScan::Window) => "-sW",
            Technique::Tcp(TcpScan::Fin) => "-sF",
            Technique::Tcp(TcpScan::Null) => "-sN",
            Technique::Tcp(TcpScan::Xmas) => "-sX",
            Technique::Tcp(TcpScan::Maimon) => "-sM",
            Technique::Udp => "-sU",
            Technique::Sctp(SctpProbe::Init) => "-sY",
            Technique::Sctp(_) => "-sZ",
            Technique::IpProtocol => "-sO",
            Technique::Idle => "-sI",
        }
    }

    /// nmap's name of the technique (XML `scaninfo type`).
    pub fn nmap_name(self) -> &'static str {
        match self {
            Technique::Tcp(scan) => scan.name(),
            Technique::Connect => "connect",
            Technique::Udp => "udp",
            Technique::Sctp(SctpProbe::Init) => "sctpinit",
            Technique::Sctp(_) => "sctpcookieecho",
            Technique::IpProtocol => "ipproto",
            Technique::Idle => "idle",
        }
    }

    /// Whether it needs raw sockets (root or `CAP_NET_RAW`).
    pub fn needs_raw_sockets(self) -> bool {
        self != Technique::Connect
    }

    /// The state of a port that never answered. `defeat_icmp_ratelimit`:
    /// UDP and IP protocol scans do not wait for rate-limited ICMP errors,
    /// so their silence may be a closed port too (nmap's reading).
    pub fn silent_state(self, defeat_icmp_ratelimit: bool) -> PortState {
        match self {
            Technique::Tcp(scan) => scan.silent_state(),
            Technique::Connect => PortState::Filtered,
            Technique::Udp | Technique::IpProtocol if defeat_icmp_ratelimit => {
                PortState::ClosedFiltered
            }
            Technique::Udp => PortState::OpenFiltered,
            Technique::Sctp(SctpProbe::Init) => PortState::Filtered,
            Technique::Sctp(_) | Technique::IpProtocol => PortState::OpenFiltered,
            Technique::Idle => PortState::ClosedFiltered,
        }
    }

    /// Whether hosts are paced to the rate their answers come at: UDP's
    /// answers (ICMP port unreachables above all) and the IP protocol
    /// scan's protocol unreachables are rate-limited by most systems.
    pub fn paces_to_answers(self, defeat_icmp_ratelimit: bool) -> bool {
        matches!(self, Technique::Udp | Technique::IpProtocol) && !defeat_icmp_ratelimit
    }
}

/// `-sI <zombie>[:<probeport>]`: the zombie as typed (an IPv4 address or
/// a name) and the port our probes of it go to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdleZombie {
    /// The zombie host.
    pub host: String,
    /// Its probe port (nmap's default: 80).
    pub port: u16,
}

/// Service and version detection (`-sV` and its knobs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionConfig {
    /// `-sV`.
    pub enabled: bool,
    /// `--version-intensity`, `--version-light` (2), `--version-all` (9).
    pub intensity: u8,
    /// `--version-timeout`: the most time spent on one port.
    pub timeout: Duration,
    /// `--versiondb`: a probe file to use instead of Portolan's own.
    pub db: Option<PathBuf>,
}

impl Default for VersionConfig {
    fn default() -> Self {
        VersionConfig {
            enabled: false,
            intensity: 7,
            timeout: Duration::from_secs(30),
            db: None,
        }
    }
}

/// OS detection (`-O` and its knobs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsConfig {
    /// `-O`.
    pub enabled: bool,
    /// `--osscan-limit`: only hosts with an open and a closed TCP port.
    pub limit: bool,
    /// `--osscan-guess`: list guesses beside perfect matches.
    pub guess: bool,
    /// `--max-os-tries`: tries per probe.
    pub tries: u8,
    /// `--osdb`: a database file (nmap's layout) instead of Portolan's own.
    pub db: Option<PathBuf>,
}

impl Default for OsConfig {
    fn default() -> Self {
        OsConfig {
            enabled: false,
            limit: false,
            guess: false,
            tries: 2,
            db: None,
        }
    }
}

/// Which hosts get reverse DNS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReverseDns {
    /// `-n`: none, and no DNS query is sent.
    Never,
    /// The default: hosts that answered a probe.
    Answered,
    /// `-R`: every host.
    Always,
}

/// Everything a scan is asked to do. Fields are public; [`ScanConfig::new`]
/// gives nmap's defaults and the `with_*` methods change one thing each.
#[derive(Clone, Debug)]
pub struct ScanConfig {
    /// Target specs in nmap's syntax (addresses, CIDR blocks, octet
    /// ranges, names).
    pub targets: Vec<String>,
    /// Exclusion specs (`--exclude`, `--excludefile`).
    pub excludes: Vec<String>,
    /// `--scope`: the networks the scan may reach; any target address
    /// outside them (and not excluded) refuses the scan before anything
    /// is sent. `None`: no scope.
    pub scope: Option<Scope>,
    /// `-6`: names resolve to IPv6 addresses.
    pub prefer_ipv6: bool,
    /// The TCP technique asked for; `None` picks SYN when raw sockets are
    /// permitted and connect otherwise, as nmap does.
    pub technique: Option<Technique>,
    /// TCP ports to scan, sorted.
    pub tcp_ports: Vec<u16>,
    /// `-sU`: scan UDP ports too (or only, without a TCP technique).
    pub udp: bool,
    /// The UDP ports of `-sU`.
    pub udp_ports: Vec<u16>,
    /// `-sY` or `-sZ`: an SCTP scan too (or only).
    pub sctp: Option<SctpProbe>,
    /// The SCTP ports.
    pub sctp_ports: Vec<u16>,
    /// `-sO`: an IP protocol scan too (or only).
    pub ip_protocols: bool,
    /// The IP protocol numbers of `-sO`.
    pub ip_protocol_numbers: Vec<u16>,
    /// The key of the scan's order; random when `None`.
    pub seed: Option<u64>,
    /// Visit hosts and ports in a keyed pseudo-random order (`-r` turns it
    /// off).
    pub randomize: bool,
    /// Timing knobs.
    pub timing: TimingConfig,
    /// `--max-hostgroup`.
    pub max_hostgroup: Option<u32>,
    /// `-S`: the source addresses. None: the routing table's choice. One:
    /// every probe's. Several (a list or range, as masscan's
    /// `--source-ip`; raw scans only, one IP version, at most
    /// [`MAX_SOURCES`]): each host's probes rotate over them and each
    /// (host, source) pair is paced to the host's ICMP rate limit on its
    /// own, since targets limit errors per destination. Addresses not
    /// configured on this machine must be on the segment of the interface
    /// given with `-e`; the scan answers ARP and Neighbor Discovery for
    /// them while it runs, after checking no other host holds them.
    pub sources: Vec<IpAddr>,
    /// `--offline` (masscan's): run the whole engine of a raw scan
    /// (targets, order, scheduler, probes stamped) without opening a
    /// socket or sending anything, in virtual time, to measure the engine
    /// alone. Implies no discovery before a port scan (`-Pn`) and no
    /// reverse DNS; every port reads as unanswered.
    pub offline: bool,
    /// `-e`: the interface.
    pub interface: Option<String>,
    /// `-g`: the source port.
    pub source_port: Option<u16>,
    /// `--send-ip`: never send frames, always the kernel's IP path.
    pub send_ip: bool,
    /// `--scanflags`: the control bits of the TCP scan's probes.
    pub scanflags: Option<u8>,
    /// `--defeat-icmp-ratelimit`: UDP and IP protocol scans do not pace
    /// to ICMP rate limits; silent ports are closed|filtered.
    pub defeat_icmp_ratelimit: bool,
    /// `-D`: decoys, with `Me` placed; empty without decoys.
    pub decoys: Vec<Decoy>,
    /// `-sI`: the zombie of the idle scan.
    pub idle: Option<IdleZombie>,
    /// `-Pn`: no host discovery; every target is scanned as up.
    pub skip_discovery: bool,
    /// The discovery probes asked for (`-PE -PS443 ...`); empty for the
    /// default set.
    pub pings: Vec<PingProbe>,
    /// `-sn`: host discovery only, no port scan.
    pub ping_only: bool,
    /// `--disable-arp-ping`.
    pub disable_arp_ping: bool,
    /// `-sV` and its knobs.
    pub version: VersionConfig,
    /// `-O` and its knobs.
    pub os: OsConfig,
    /// Hosts of a SYN or connect scan that look like a SYN proxy answers
    /// for them get their open ports connected to, to tell the real
    /// services apart (see [`crate::middlebox`]); `--no-proxy-check`
    /// turns it off.
    pub proxy_check: bool,
    /// Which hosts get reverse DNS (`-n`, `-R`).
    pub reverse_dns: ReverseDns,
    /// `--dns-servers`; the system's servers when `None`.
    pub dns_servers: Option<Vec<SocketAddr>>,
    /// The command line or request that started the scan, as recorded in
    /// its results (nmap's `args`).
    pub command_line: Vec<String>,
}

/// Source addresses a scan spreads its probes over at most (`-S`).
pub const MAX_SOURCES: usize = 64;

impl ScanConfig {
    /// A scan of `targets` with nmap's defaults: discovery on, the
    /// technique chosen by privileges, no ports until some are set,
    /// reverse DNS for hosts that answer.
    pub fn new<S: Into<String>>(targets: impl IntoIterator<Item = S>) -> ScanConfig {
        ScanConfig {
            targets: targets.into_iter().map(Into::into).collect(),
            excludes: Vec::new(),
            scope: None,
            prefer_ipv6: false,
            technique: None,
            tcp_ports: Vec::new(),
            udp: false,
            udp_ports: Vec::new(),
            sctp: None,
            sctp_ports: Vec::new(),
            ip_protocols: false,
            ip_protocol_numbers: Vec::new(),
            seed: None,
            randomize: true,
            timing: TimingConfig::from_template(TimingTemplate::Normal),
            max_hostgroup: None,
            sources: Vec::new(),
            offline: false,
            interface: None,
            source_port: None,
            send_ip: false,
            scanflags: None,
            defeat_icmp_ratelimit: false,
            decoys: Vec::new(),
            idle: None,
            skip_discovery: false,
            pings: Vec::new(),
            ping_only: false,
            disable_arp_ping: false,
            version: VersionConfig::default(),
            os: OsConfig::default(),
            proxy_check: true,
            reverse_dns: ReverseDns::Answered,
            dns_servers: None,
            command_line: Vec::new(),
        }
    }

    /// Source addresses for each probe's choice (see
    /// [`ScanConfig::sources`]).
    pub fn with_sources(mut self, sources: impl IntoIterator<Item = IpAddr>) -> ScanConfig {
        self.sources = sources.into_iter().collect();
        self
    }

    /// How many source addresses `technique`'s probes rotate over: all of
    /// them for raw techniques, one for the others.
    pub fn source_lanes(&self, technique: Technique) -> u8 {
        if technique.needs_raw_sockets() {
            self.sources.len().clamp(1, MAX_SOURCES) as u8
        } else {
            1
        }
    }

    /// Checks the source addresses (`-S`): one IP version, at most
    /// [`MAX_SOURCES`], and several only for raw techniques.
    pub(crate) fn check_sources(&self, techniques: &[Technique]) -> Result<(), String> {
        let Some(first) = self.sources.first() else {
            return Ok(());
        };
        if let Some(other) = self.sources.iter().find(|s| s.is_ipv4() != first.is_ipv4()) {
            return Err(format!(
                "-S: the source addresses mix IP versions ({first} and {other}); give one version"
            ));
        }
        if self.sources.len() > MAX_SOURCES {
            return Err(format!(
                "-S: {} source addresses, at most {MAX_SOURCES}",
                self.sources.len()
            ));
        }
        let mut unique = self.sources.clone();
        unique.sort_unstable();
        unique.dedup();
        if unique.len() != self.sources.len() {
            return Err("-S: a source address is given twice".into());
        }
        if self.sources.len() > 1
            && let Some(t) = techniques
                .iter()
                .find(|t| !t.needs_raw_sockets() || **t == Technique::Idle)
        {
            return Err(format!(
                "-S with several addresses needs a raw-packet scan, not {}",
                t.flag()
            ));
        }
        Ok(())
    }

    /// The TCP technique.
    pub fn with_technique(mut self, technique: Technique) -> ScanConfig {
        self.technique = Some(technique);
        self
    }

    /// The TCP ports (sorted here).
    pub fn with_tcp_ports(mut self, ports: impl IntoIterator<Item = u16>) -> ScanConfig {
        self.tcp_ports = sorted(ports);
        self
    }

    /// A UDP scan of `ports` too.
    pub fn with_udp_ports(mut self, ports: impl IntoIterator<Item = u16>) -> ScanConfig {
        self.udp = true;
        self.udp_ports = sorted(ports);
        self
    }

    /// No host discovery (`-Pn`).
    pub fn without_discovery(mut self) -> ScanConfig {
        self.skip_discovery = true;
        self
    }

    /// No reverse DNS (`-n`).
    pub fn without_reverse_dns(mut self) -> ScanConfig {
        self.reverse_dns = ReverseDns::Never;
        self
    }

    /// Version detection (`-sV`) with Portolan's own probe database.
    pub fn with_version_detection(mut self) -> ScanConfig {
        self.version.enabled = true;
        self
    }

    /// OS detection (`-O`) with Portolan's own database.
    pub fn with_os_detection(mut self) -> ScanConfig {
        self.os.enabled = true;
        self
    }

    /// A timing template (`-T0` .. `-T5`).
    pub fn with_timing(mut self, template: TimingTemplate) -> ScanConfig {
        self.timing = TimingConfig::from_template(template);
        self
    }

    /// A fixed key for the scan's order and cookies' seed.
    pub fn with_seed(mut self, seed: u64) -> ScanConfig {
        self.seed = Some(seed);
        self
    }

    /// Whether TCP ports are scanned: unless another protocol's scan
    /// (`-sU`, `-sY`, `-sO`) is the only scan type asked for, as in nmap.
    pub fn scans_tcp(&self) -> bool {
        !(self.udp || self.sctp.is_some() || self.ip_protocols) || self.technique.is_some()
    }
}

fn sorted(ports: impl IntoIterator<Item = u16>) -> Vec<u16> {
    let mut ports: Vec<u16> = ports.into_iter().collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn techniques_say_what_nmap_says() {
        let all = [
            (Technique::Connect, "-sT", "connect", PortState::Filtered),
            (
                Technique::Tcp(TcpScan::Syn),
                "-sS",
                "syn",
                PortState::Filtered,
            ),
            (
                Technique::Tcp(TcpScan::Ack),
                "-sA",
                "ack",
                PortState::Filtered,
            ),
            (
                Technique::Tcp(TcpScan::Window),
                "-sW",
                "window",
                PortState::Filtered,
            ),
            (
                Technique::Tcp(TcpScan::Fin),
                "-sF",
                "fin",
                PortState::OpenFiltered,
            ),
            (
                Technique::Tcp(TcpScan::Null),
                "-sN",
                "null",
                PortState::OpenFiltered,
            ),
            (
                Technique::Tcp(TcpScan::Xmas),
                "-sX",
                "xmas",
                PortState::OpenFiltered,
            ),
            (
                Technique::Tcp(TcpScan::Maimon),
                "-sM",
                "maimon",
                PortState::OpenFiltered,
            ),
            (Technique::Udp, "-sU", "udp", PortState::OpenFiltered),
            (
                Technique::Sctp(SctpProbe::Init),
                "-sY",
                "sctpinit",
                PortState::Filtered,
            ),
            (
                Technique::Sctp(SctpProbe::CookieEcho),
                "-sZ",
                "sctpcookieecho",
                PortState::OpenFiltered,
            ),
            (
                Technique::IpProtocol,
                "-sO",
                "ipproto",
                PortState::OpenFiltered,
            ),
            (Technique::Idle, "-sI", "idle", PortState::ClosedFiltered),
        ];
        for (technique, flag, name, silent) in all {
            assert_eq!(technique.flag(), flag);
            assert_eq!(technique.nmap_name(), name);
            assert!(
                portolan_model::scan::scan_type(name).is_some(),
                "{name} in nmap.dtd"
            );
            assert_eq!(technique.silent_state(false), silent, "{flag}");
            assert_eq!(
                technique.needs_raw_sockets(),
                technique != Technique::Connect
            );
        }
        assert_eq!(Technique::Udp.silent_state(true), PortState::ClosedFiltered);
        assert!(Technique::Udp.paces_to_answers(false));
        assert!(!Technique::Udp.paces_to_answers(true));
        assert!(!Technique::Tcp(TcpScan::Syn).paces_to_answers(false));
    }

    #[test]
    fn tcp_is_scanned_unless_another_protocol_is_the_only_one_asked() {
        let base = ScanConfig::new(["198.18.0.2"]);
        assert!(base.scans_tcp());
        let udp_only = base.clone().with_udp_ports([53, 161, 53]);
        assert!(!udp_only.scans_tcp());
        assert_eq!(udp_only.udp_ports, [53, 161]);
        assert!(udp_only.with_technique(Technique::Connect).scans_tcp());
    }
}
