//! The result model: what a scan found about each port and host, and why.
//!
//! Every state carries the evidence that proved it ([`Reason`]), as nmap's
//! `--reason` does. The strings returned by `as_str` are nmap's, so that
//! output written from these values reads the same to nmap's consumers.
//! Nothing here allocates except [`HostReport::ports`].

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use portolan_targets::{Protocol, Target};
use serde::{Deserialize, Serialize};

use crate::forms;

/// The state of one port, with nmap's six values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortState {
    /// Something accepted the connection or answered the probe.
    Open,
    /// The host answered that nothing listens there.
    Closed,
    /// Something stopped the probe or its answer (silence, ICMP unreachable).
    Filtered,
    /// Reachable, but open or closed is not known (ACK scan).
    Unfiltered,
    /// Silence that may be an open port or a filter (UDP, FIN, NULL, Xmas).
    OpenFiltered,
    /// Closed or filtered (idle scan; UDP with --defeat-icmp-ratelimit).
    ClosedFiltered,
}

impl PortState {
    /// All states, in the order reports list them.
    pub const ALL: [PortState; 6] = [
        PortState::Open,
        PortState::Closed,
        PortState::Filtered,
        PortState::Unfiltered,
        PortState::OpenFiltered,
        PortState::ClosedFiltered,
    ];

    /// nmap's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
            PortState::Unfiltered => "unfiltered",
            PortState::OpenFiltered => "open|filtered",
            PortState::ClosedFiltered => "closed|filtered",
        }
    }

    /// Index into per-state counters (`[u64; 6]`).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The state nmap calls `name`.
    pub fn from_nmap(name: &str) -> Option<PortState> {
        PortState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

forms::by_nmap_name!(PortState, "a port state");
forms::by_nmap_name!(Reason, "a reason");

/// The evidence behind a state: nmap's reason names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Reason {
    /// The TCP handshake completed or a SYN-ACK came back.
    SynAck,
    /// A TCP RST came back to a raw probe.
    Reset,
    /// `connect()` was refused (the kernel saw a RST).
    ConnRefused,
    /// The connect scan's handshake completed, then the far end reset
    /// the connection before the scanner read it (`ECONNRESET`): the port
    /// answered, but maybe only a middlebox did. Portolan's name; nmap
    /// has none.
    ConnReset,
    /// On a host found behind a SYN proxy: the handshake, completed by
    /// connecting, was then reset by the far end, so only the proxy
    /// answered and nothing listens behind it (see [`Middlebox`]).
    /// Portolan's name; nmap has none.
    ProxyReset,
    /// Nothing came back after every try.
    NoResponse,
    /// ICMP host unreachable (IPv4 type 3 code 1, IPv6 type 1 code 3).
    HostUnreach,
    /// ICMP network unreachable (IPv4 type 3 code 0, IPv6 type 1 code 0).
    NetUnreach,
    /// ICMP protocol unreachable (IPv4 type 3 code 2).
    ProtoUnreach,
    /// ICMPv6 parameter problem, unrecognized Next Header (type 4 code
    /// 1): IPv6's protocol unreachable.
    ParamProblem,
    /// ICMP port unreachable (IPv4 type 3 code 3, IPv6 type 1 code 4).
    PortUnreach,
    /// ICMP communication administratively prohibited (IPv4 type 3 code 13,
    /// IPv6 type 1 code 1).
    AdminProhibited,
    /// ICMP network administratively prohibited (IPv4 type 3 code 9).
    NetProhibited,
    /// ICMP host administratively prohibited (IPv4 type 3 code 10).
    HostProhibited,
    /// ICMPv6 no route to destination (type 1 code 0).
    NoRoute,
    /// ICMPv6 beyond scope of source address (type 1 code 2).
    BeyondScope,
    /// ICMPv6 source address failed ingress/egress policy (type 1 code 5).
    FailedPolicy,
    /// ICMPv6 reject route to destination (type 1 code 6).
    RejectRoute,
    /// ICMP time exceeded in transit (IPv4 type 11, IPv6 type 3).
    TimeExceeded,
    /// The user said so (`-Pn` treats hosts as up).
    UserSet,
    /// An ICMP or ICMPv6 echo reply (host discovery).
    EchoReply,
    /// An ICMP timestamp reply (host discovery).
    TimestampReply,
    /// An ICMP address mask reply (host discovery).
    MaskReply,
    /// A UDP datagram came back from the port.
    UdpResponse,
    /// An SCTP INIT ACK came back (the INIT scan).
    InitAck,
    /// An SCTP ABORT came back.
    Abort,
    /// An ARP reply (host discovery on the segment).
    ArpResponse,
    /// An ICMPv6 Neighbor Advertisement (host discovery on the segment).
    NdResponse,
    /// A packet of the probed protocol came back (the IP protocol scan:
    /// a TCP RST, an SCTP INIT ACK or ABORT).
    ProtoResponse,
    /// The idle scan's zombie sent packets for the probes (its IP ID rose):
    /// the target answered the spoofed SYN with a SYN-ACK.
    IpidChange,
    /// The idle scan's zombie sent nothing for the probes (its IP ID did
    /// not rise): the target answered with a RST, or not at all.
    NoIpidChange,
    /// The host is this machine (nmap's reason for scanning itself).
    LocalhostResponse,
    /// A reason this model does not know, read from another scanner's
    /// file (nmap's `unknown-response` too).
    UnknownResponse,
}

impl Reason {
    /// Whether an answer with this reason proves its sender up in host
    /// discovery: anything from the host itself (nmap's reading); errors a
    /// router may send for it (host or network unreachable, prohibited,
    /// time exceeded) do not.
    pub fn proves_host_up(self) -> bool {
        matches!(
            self,
            Reason::SynAck
                | Reason::Reset
                | Reason::ConnRefused
                | Reason::ConnReset
                | Reason::ProxyReset
                | Reason::PortUnreach
                | Reason::ProtoUnreach
                | Reason::ParamProblem
                | Reason::EchoReply
                | Reason::TimestampReply
                | Reason::MaskReply
                | Reason::ArpResponse
                | Reason::NdResponse
                | Reason::UdpResponse
                | Reason::InitAck
                | Reason::Abort
                | Reason::ProtoResponse
                | Reason::LocalhostResponse
        )
    }

    /// Whether the evidence is an ICMP or ICMPv6 error message (which
    /// hosts rate-limit).
    pub fn is_icmp_error(self) -> bool {
        matches!(
            self,
            Reason::HostUnreach
                | Reason::NetUnreach
                | Reason::ProtoUnreach
                | Reason::ParamProblem
                | Reason::PortUnreach
                | Reason::AdminProhibited
                | Reason::NetProhibited
                | Reason::HostProhibited
                | Reason::NoRoute
                | Reason::BeyondScope
                | Reason::FailedPolicy
                | Reason::RejectRoute
                | Reason::TimeExceeded
        )
    }

    /// The reason an ICMP (IPv4) error of `icmp_type` and `code` gives for
    /// a probe it quotes, if it is one that proves filtering.
    pub fn from_icmpv4(icmp_type: u8, code: u8) -> Option<Reason> {
        Some(match (icmp_type, code) {
            (3, 0) => Reason::NetUnreach,
            (3, 1) => Reason::HostUnreach,
            (3, 2) => Reason::ProtoUnreach,
            (3, 3) => Reason::PortUnreach,
            (3, 9) => Reason::NetProhibited,
            (3, 10) => Reason::HostProhibited,
            (3, 13) => Reason::AdminProhibited,
            (11, _) => Reason::TimeExceeded,
            _ => return None,
        })
    }

    /// The reason an ICMPv6 error of `icmp_type` and `code` gives for a
    /// probe it quotes, if it is one that proves filtering.
    pub fn from_icmpv6(icmp_type: u8, code: u8) -> Option<Reason> {
        Some(match (icmp_type, code) {
            (1, 0) => Reason::NoRoute,
            (1, 1) => Reason::AdminProhibited,
            (1, 2) => Reason::BeyondScope,
            (1, 3) => Reason::HostUnreach,
            (1, 4) => Reason::PortUnreach,
            (1, 5) => Reason::FailedPolicy,
            (1, 6) => Reason::RejectRoute,
            // Parameter problem, unrecognised next header: IPv6's protocol
            // unreachable.
            (4, 1) => Reason::ParamProblem,
            (3, _) => Reason::TimeExceeded,
            _ => return None,
        })
    }

    /// nmap's name for the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SynAck => "syn-ack",
            Reason::Reset => "reset",
            Reason::ConnRefused => "conn-refused",
            Reason::ConnReset => "conn-reset",
            Reason::ProxyReset => "proxy-reset",
            Reason::NoResponse => "no-response",
            Reason::HostUnreach => "host-unreach",
            Reason::NetUnreach => "net-unreach",
            Reason::ProtoUnreach => "proto-unreach",
            Reason::ParamProblem => "param-problem",
            Reason::PortUnreach => "port-unreach",
            Reason::AdminProhibited => "admin-prohibited",
            Reason::NetProhibited => "net-prohibited",
            Reason::HostProhibited => "host-prohibited",
            Reason::NoRoute => "no-route",
            Reason::BeyondScope => "beyond-scope",
            Reason::FailedPolicy => "failed-policy",
            Reason::RejectRoute => "reject-route",
            Reason::TimeExceeded => "time-exceeded",
            Reason::UserSet => "user-set",
            Reason::EchoReply => "echo-reply",
            Reason::TimestampReply => "timestamp-reply",
            Reason::MaskReply => "addressmask-reply",
            Reason::UdpResponse => "udp-response",
            Reason::InitAck => "init-ack",
            Reason::Abort => "abort",
            Reason::ArpResponse => "arp-response",
            Reason::NdResponse => "nd-response",
            Reason::ProtoResponse => "proto-response",
            Reason::IpidChange => "ipid-change",
            Reason::NoIpidChange => "no-ipid-change",
            Reason::LocalhostResponse => "localhost-response",
            Reason::UnknownResponse => "unknown-response",
        }
    }

    /// Every reason.
    pub const ALL: [Reason; 33] = [
        Reason::SynAck,
        Reason::Reset,
        Reason::ConnRefused,
        Reason::ConnReset,
        Reason::ProxyReset,
        Reason::NoResponse,
        Reason::HostUnreach,
        Reason::NetUnreach,
        Reason::ProtoUnreach,
        Reason::ParamProblem,
        Reason::PortUnreach,
        Reason::AdminProhibited,
        Reason::NetProhibited,
        Reason::HostProhibited,
        Reason::NoRoute,
        Reason::BeyondScope,
        Reason::FailedPolicy,
        Reason::RejectRoute,
        Reason::TimeExceeded,
        Reason::UserSet,
        Reason::EchoReply,
        Reason::TimestampReply,
        Reason::MaskReply,
        Reason::UdpResponse,
        Reason::InitAck,
        Reason::Abort,
        Reason::ArpResponse,
        Reason::NdResponse,
        Reason::ProtoResponse,
        Reason::IpidChange,
        Reason::NoIpidChange,
        Reason::LocalhostResponse,
        Reason::UnknownResponse,
    ];

    /// The reason nmap calls `name`.
    pub fn from_nmap(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The reason nmap calls `name`, or [`Reason::UnknownResponse`] for a
    /// name this model does not know (another scanner's file).
    pub fn from_nmap_or_unknown(name: &str) -> Reason {
        Reason::from_nmap(name).unwrap_or(Reason::UnknownResponse)
    }
}

/// What a transport learned from one probe's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The state the answer proves.
    pub state: PortState,
    /// The evidence.
    pub reason: Reason,
    /// The IP TTL or hop limit of the answer, when the transport saw it.
    pub ttl: Option<u8>,
}

/// One port's final outcome, as stored in a [`HostReport`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortOutcome {
    /// The port number.
    pub port: u16,
    /// The protocol scanned.
    pub proto: Protocol,
    /// The state found.
    pub state: PortState,
    /// The evidence for it.
    pub reason: Reason,
    /// TTL of the answer, if one came and the transport saw it.
    pub reason_ttl: Option<u8>,
    /// How many probes were sent for this port.
    pub tries: u8,
}

/// One port's final outcome, with the host it belongs to: streamed as soon
/// as the port is resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortResult {
    /// The scanned host.
    pub addr: IpAddr,
    /// The outcome.
    pub outcome: PortOutcome,
}

/// Whether a host was found up, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "reason")]
pub enum HostStatus {
    /// Up, with the evidence.
    Up(Reason),
    /// Down: no probe answered.
    Down,
    /// Given up after `--host-timeout`; its port results are discarded, as
    /// nmap does.
    TimedOut,
    /// The scan was interrupted before this host finished; the ports listed
    /// are those resolved so far.
    Interrupted,
}

/// Round-trip timing of one host, for reports (`<times srtt rttvar to>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostTimes {
    /// Smoothed round-trip time, if any answer came.
    #[serde(with = "forms::micros_opt", rename = "srtt_us")]
    pub srtt: Option<Duration>,
    /// Round-trip variation.
    #[serde(with = "forms::micros_opt", rename = "rttvar_us")]
    pub rttvar: Option<Duration>,
    /// The probe timeout in force when the host finished.
    #[serde(with = "forms::micros", rename = "timeout_us")]
    pub timeout: Duration,
    /// The longest delay between probes the host's rate limit on its
    /// answers forced (ICMP errors, see `ScanPlan::pace_to_answers`);
    /// `None` when it did not slow the scan of this host.
    #[serde(with = "forms::micros_opt", rename = "paced_us")]
    pub paced: Option<Duration>,
}

/// Everything known about one host when it is done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    /// The host, with the name the user typed, if any.
    pub target: Target,
    /// Up, down, timed out or interrupted.
    pub status: HostStatus,
    /// The TTL (or hop limit) of the answer that proved the host up, when
    /// host discovery saw one.
    pub reason_ttl: Option<u8>,
    /// The host's link-layer address, when it answered on the segment.
    #[serde(with = "forms::mac_opt")]
    pub mac: Option<[u8; 6]>,
    /// Per-port outcomes, sorted by protocol and port.
    pub ports: Vec<PortOutcome>,
    /// Timing figures.
    pub times: HostTimes,
    /// When the first probe to this host was sent.
    #[serde(with = "forms::rfc3339")]
    pub started: SystemTime,
    /// When the host was done.
    #[serde(with = "forms::rfc3339")]
    pub finished: SystemTime,
    /// What version detection (`-sV`) found on its ports; empty without it.
    pub services: Vec<crate::PortService>,
    /// What later stages found (OS matches, scripts' output, notes), and
    /// ports a file only counted.
    #[serde(default)]
    pub extra: HostExtras,
}

/// What is known of a host beyond its ports and services.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostExtras {
    /// Operating system matches, best first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os: Vec<OsMatch>,
    /// How OS detection went: ports used, tests missing, the observed
    /// fingerprint, the passive hint; `None` when it did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_detection: Option<OsDetection>,
    /// Scripts' output, host scripts and port scripts alike.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<ScriptOutput>,
    /// Remarks for people (a middlebox suspected, a rate limit met).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// A middlebox found answering for the host, with its evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middlebox: Option<Middlebox>,
    /// Ports another scanner's file only counted by state (nmap's
    /// `<extraports>`), not listed one by one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counted: Vec<CountedPorts>,
}

/// A middlebox that answers for a host instead of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Middlebox {
    /// What it is.
    pub kind: MiddleboxKind,
    /// Open ports whose handshake, completed by connecting, stayed up:
    /// a service is behind them.
    pub services: Vec<u16>,
    /// Open ports whose completed handshake the far end then reset: only
    /// the middlebox answered them.
    pub reset: u32,
    /// Open ports connected to, to tell them apart.
    pub checked: u32,
    /// What was seen, in a sentence (escape before showing).
    pub evidence: String,
}

/// The kinds of middlebox Portolan tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MiddleboxKind {
    /// A SYN proxy, SYN cookies or a load balancer: it answers SYN-ACK
    /// for ports and completes handshakes the host behind it refuses.
    SynProxy,
    /// A transparent proxy on the path: it answers one port for many
    /// addresses, whatever host is behind them.
    TransparentProxy,
}

impl MiddleboxKind {
    /// Its name in every output format.
    pub fn as_str(self) -> &'static str {
        match self {
            MiddleboxKind::SynProxy => "syn-proxy",
            MiddleboxKind::TransparentProxy => "transparent-proxy",
        }
    }

    /// Its name in words.
    pub fn description(self) -> &'static str {
        match self {
            MiddleboxKind::SynProxy => "a SYN proxy",
            MiddleboxKind::TransparentProxy => "a transparent proxy",
        }
    }
}

/// A middlebox found answering one port for many addresses of a scan:
/// told from the whole range, not from one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeMiddlebox {
    /// What it is.
    pub kind: MiddleboxKind,
    /// The protocol of the port it answers...
    pub proto: Protocol,
    /// ... and the port.
    pub port: u16,
    /// The TTL its answers came with, the same for every address.
    pub ttl: u8,
    /// Addresses whose port answered with that TTL.
    pub addresses: u32,
    /// Of those, the addresses whose own answers (resets of closed ports,
    /// discovery replies) came with another TTL.
    pub differing: u32,
    /// A few of those addresses.
    pub sample: Vec<IpAddr>,
    /// What was seen, in a sentence.
    pub evidence: String,
}

/// One operating system match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsMatch {
    /// The fingerprint's name ("Linux 5.0 - 5.14").
    pub name: String,
    /// Accuracy in percent.
    pub accuracy: u8,
    /// CPE names of the match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpe: Vec<String>,
    /// The line of the reference fingerprint in its database (nmap's
    /// `line`); 0 when unknown.
    #[serde(default)]
    pub line: u32,
    /// The classes of the reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<OsClass>,
}

/// One class of an OS match (nmap's `osclass`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsClass {
    /// Who makes it ("Linux", "Microsoft").
    pub vendor: String,
    /// The family ("Linux", "Windows").
    pub family: String,
    /// The generation ("5.X"), when the reference gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<String>,
    /// The kind of device ("general purpose").
    pub device_type: String,
    /// Accuracy in percent.
    pub accuracy: u8,
    /// CPE names of the class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpe: Vec<String>,
}

/// How OS detection went for one host, or only the passive hint of a
/// scan without `-O`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsDetection {
    /// Whether active detection (`-O`) ran; without it only the passive
    /// hint is known.
    #[serde(default)]
    pub active: bool,
    /// The ports the probes went to (nmap's `portused`): TCP open, TCP
    /// closed, UDP closed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports_used: Vec<OsPortUsed>,
    /// Whether the best match matched every point possible.
    pub perfect: bool,
    /// The tests whose probes went unanswered, left out of the score.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// The observed fingerprint, in nmap's layout.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
    /// A first guess from the answers the port scan received (a hint,
    /// never a match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<OsHint>,
    /// Warnings ("no open port found", "no closed port found").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A port OS detection used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsPortUsed {
    /// Its state.
    pub state: PortState,
    /// Its protocol.
    pub proto: Protocol,
    /// Its number.
    pub port: u16,
}

/// A passive guess and its evidence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsHint {
    /// The family guessed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// What it rests on (`syn-ack ttl=64 (initial 64) win=FAF0 …`).
    pub evidence: String,
}

/// What one script said.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptOutput {
    /// The script's name.
    pub id: String,
    /// The port it ran against, or `None` for a host script.
    pub port: Option<(Protocol, u16)>,
    /// Its output, as it came (escape before showing).
    pub output: String,
}

/// Ports only counted, all in one state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountedPorts {
    /// Their state.
    pub state: PortState,
    /// How many.
    pub count: u64,
}

impl HostReport {
    /// How many ports are in each state, indexed by [`PortState::index`].
    pub fn state_counts(&self) -> [u64; 6] {
        let mut counts = [0u64; 6];
        for p in &self.ports {
            counts[p.state.index()] += 1;
        }
        counts
    }

    /// The service version detection found on `port`, if it ran there.
    pub fn service(&self, proto: Protocol, port: u16) -> Option<&crate::ServiceInfo> {
        self.services
            .iter()
            .find(|s| s.proto == proto && s.port == port)
            .map(|s| &s.info)
    }
}

/// Counters for the whole scan, for progress displays and the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanStats {
    /// Hosts whose scan has finished (any status).
    pub hosts_done: u64,
    /// Hosts found up.
    pub hosts_up: u64,
    /// Probes handed to the transport, retransmissions included.
    pub probes_sent: u64,
    /// Probes that were retransmissions.
    pub retransmissions: u64,
    /// Answers accepted.
    pub replies: u64,
    /// Answers that arrived for a probe already resolved or cancelled.
    pub late_replies: u64,
    /// Ports resolved so far.
    pub ports_done: u64,
    /// Ports resolved per state, indexed by [`PortState::index`].
    pub ports_by_state: [u64; 6],
    /// Times the congestion windows were reduced after evidence of loss.
    pub window_decreases: u64,
    /// Times a host's delay between probes grew because its answers came
    /// only after retransmissions (rate limiting, see `pace_to_answers`).
    pub pacing_increases: u64,
    /// Hosts whose rate limit on ICMP errors slowed their scan (see
    /// [`HostTimes::paced`]).
    pub hosts_paced: u64,
    /// Of those, hosts scanned from several source addresses whose limit
    /// over all their errors (Linux's `icmp_msgs_per_sec`), not the limit
    /// per source, bounded the scan.
    #[serde(default)]
    pub hosts_paced_globally: u64,
    /// Times sending was behind `--min-rate` with nothing to send (every
    /// probe left waited for its answer or its timeout).
    #[serde(default)]
    pub min_rate_starved: u64,
}
