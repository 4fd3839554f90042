//! The built-in catalogue of risky exposures (`portolan audit --risky`):
//! services that should rarely face a network, each with a one-line
//! reason and a reference (an RFC, a CVE, a CERT alert or the vendor's
//! security guide).
//!
//! What a port scan can prove is exposure: the port answers. Where the
//! risk also depends on the service's configuration (anonymous FTP, a
//! Redis or MongoDB without authentication, a resolver open to anyone,
//! SNMP's "public" community, NTP's monlist), the finding says whether
//! the evidence at hand (script output, the service's banner) settled it
//! or it remains to be checked.

use portolan_model::{PortState, Reason};
use portolan_targets::Protocol;

/// What makes an entry apply to a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The port answers open.
    Open,
    /// The port is dropped (filtered, no response) rather than closed.
    Dropped,
}

/// One risky exposure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Risk {
    /// A short name ("telnet").
    pub id: &'static str,
    /// The protocol.
    pub proto: Protocol,
    /// The port.
    pub port: u16,
    /// What makes it apply.
    pub trigger: Trigger,
    /// Why it matters, in one line.
    pub reason: &'static str,
    /// Where to read more.
    pub reference: &'static str,
    /// What the scan cannot settle by itself, if anything ("anonymous
    /// login"), with words in script output or banners that settle it.
    pub condition: Option<(&'static str, &'static [&'static str])>,
}

const fn open(
    id: &'static str,
    proto: Protocol,
    port: u16,
    reason: &'static str,
    reference: &'static str,
) -> Risk {
    Risk {
        id,
        proto,
        port,
        trigger: Trigger::Open,
        reason,
        reference,
        condition: None,
    }
}

const fn with(mut r: Risk, condition: &'static str, proof: &'static [&'static str]) -> Risk {
    r.condition = Some((condition, proof));
    r
}

use Protocol::{Tcp, Udp};

/// The catalogue.
pub const CATALOGUE: &[Risk] = &[
    open(
        "telnet",
        Tcp,
        23,
        "Telnet sends logins and sessions in clear text",
        "RFC 854; CWE-319",
    ),
    with(
        open(
            "ftp",
            Tcp,
            21,
            "FTP sends credentials in clear text; anonymous login exposes files",
            "RFC 959; RFC 1635 (anonymous FTP); CWE-319",
        ),
        "anonymous login",
        &[
            "Anonymous FTP login allowed",
            "230 Login successful",
            "230 Anonymous",
        ],
    ),
    open(
        "smb",
        Tcp,
        445,
        "SMB exposed: wormable remote code execution has struck it (EternalBlue)",
        "CVE-2017-0144 (MS17-010)",
    ),
    open(
        "netbios-ssn",
        Tcp,
        139,
        "NetBIOS session service: SMB over NetBIOS, same exposure as 445",
        "CVE-2017-0144 (MS17-010)",
    ),
    open(
        "rdp",
        Tcp,
        3389,
        "Remote Desktop faces password guessing and pre-authentication flaws (BlueKeep)",
        "CVE-2019-0708",
    ),
    open(
        "vnc",
        Tcp,
        5900,
        "VNC often runs with weak or no authentication and no encryption",
        "RFC 6143 §7.2",
    ),
    open(
        "ssdp",
        Udp,
        1900,
        "SSDP answers spoofed queries with larger replies: a DDoS reflector",
        "US-CERT TA14-017A",
    ),
    open(
        "memcached",
        Udp,
        11211,
        "memcached over UDP amplifies spoofed requests up to 50,000 times",
        "CVE-2018-1000115",
    ),
    with(
        open(
            "ntp",
            Udp,
            123,
            "NTP's monlist answers a spoofed query with up to 600 addresses: a DDoS amplifier",
            "CVE-2013-5211",
        ),
        "monlist enabled",
        &["monlist", "ntp-monlist"],
    ),
    with(
        open(
            "dns",
            Udp,
            53,
            "A resolver that answers anyone is a DNS amplification reflector",
            "RFC 5358",
        ),
        "recursion for anyone",
        &[
            "recursion: enabled",
            "Recursion appears to be enabled",
            "dns-recursion",
        ],
    ),
    with(
        open(
            "snmp",
            Udp,
            161,
            "SNMP with the community \"public\" discloses configuration, sometimes write access",
            "CVE-1999-0517",
        ),
        "community public",
        &["public"],
    ),
    open(
        "mdns",
        Udp,
        5353,
        "mDNS answering off-link queries leaks host details and reflects traffic",
        "RFC 6762 §11",
    ),
    with(
        open(
            "redis",
            Tcp,
            6379,
            "Redis without authentication lets anyone read, write and run commands",
            "Redis security guide (protected mode, requirepass)",
        ),
        "no authentication",
        &["redis_version", "Redis key-value store"],
    ),
    with(
        open(
            "mongodb",
            Tcp,
            27017,
            "MongoDB without access control exposes every database",
            "MongoDB Security Checklist (enable access control)",
        ),
        "no authentication",
        &["databases", "totalSize"],
    ),
    open(
        "elasticsearch",
        Tcp,
        9200,
        "Elasticsearch's HTTP API without security exposes and alters every index",
        "CVE-2015-1427; Elastic security setup guide",
    ),
    open(
        "docker",
        Tcp,
        2375,
        "The Docker API without TLS gives root on the host to anyone who reaches it",
        "Docker docs: protect the daemon socket (TLS on 2376)",
    ),
    Risk {
        id: "ident-dropped",
        proto: Tcp,
        port: 113,
        trigger: Trigger::Dropped,
        reason: "ident dropped instead of closed: IRC and mail servers wait for its timeout before serving",
        reference: "RFC 1413",
        condition: None,
    },
];

/// Whether `risk` applies to a port in `state` with `reason`.
pub fn applies(risk: &Risk, state: PortState, reason: Reason) -> bool {
    match risk.trigger {
        Trigger::Open => state == PortState::Open,
        Trigger::Dropped => state == PortState::Filtered && reason == Reason::NoResponse,
    }
}
