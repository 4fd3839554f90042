//! The probe databases: Portolan's own loads without a bad line and
//! identifies the answers its protocols' servers give; nmap's file, when
//! installed (always under CI), parses and every pattern compiles.

use portolan_service::db::Transport;
use portolan_service::{ProbeDb, builtin};

fn db() -> ProbeDb {
    let parsed = builtin();
    assert_eq!(parsed.errors, vec![], "the built-in database has bad lines");
    parsed.db
}

/// A probe's name, an answer to it, and the service, product and version
/// it must give.
type Case = (
    &'static str,
    &'static [u8],
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

const ANSWERS: &[Case] = &[
    (
        "NULL",
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
        "ssh",
        Some("OpenSSH"),
        Some("9.2p1 Debian 2+deb12u3"),
    ),
    (
        "NULL",
        b"SSH-2.0-dropbear_2022.83\r\n",
        "ssh",
        Some("Dropbear sshd"),
        Some("2022.83"),
    ),
    ("NULL", b"220 (vsFTPd 3.0.3)\r\n", "ftp", Some("vsftpd"), Some("3.0.3")),
    (
        "NULL",
        b"500 OOPS: vsftpd: both local and anonymous access disabled!\r\n",
        "ftp",
        Some("vsftpd"),
        None,
    ),
    (
        "NULL",
        b"220 mail.lab ESMTP Postfix (Debian/GNU)\r\n",
        "smtp",
        Some("Postfix smtpd"),
        None,
    ),
    (
        "NULL",
        b"220 mx.lab ESMTP Exim 4.96 Tue, 24 Nov 2026 18:00:00 +0000\r\n",
        "smtp",
        Some("Exim smtpd"),
        Some("4.96"),
    ),
    ("NULL", b"+OK Dovecot (Debian) ready.\r\n", "pop3", Some("Dovecot pop3d"), None),
    (
        "NULL",
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n",
        "imap",
        Some("Dovecot imapd"),
        None,
    ),
    (
        "NULL",
        b"\x5b\0\0\0\x0a5.5.5-10.11.6-MariaDB-0+deb12u1\0\x03\0\0\0",
        "mysql",
        Some("MariaDB"),
        Some("10.11.6"),
    ),
    (
        "NULL",
        b"\x4a\0\0\0\x0a8.0.36\0\x0b\0\0\0",
        "mysql",
        Some("MySQL"),
        Some("8.0.36"),
    ),
    ("NULL", b"RFB 003.008\n", "vnc", Some("VNC"), None),
    ("NULL", b"\xff\xfd\x18\xff\xfd\x20", "telnet", None, None),
    (
        "GetRequest",
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: x\r\n\r\n",
        "http",
        Some("nginx"),
        Some("1.22.1"),
    ),
    (
        "GetRequest",
        b"HTTP/1.1 200 OK\r\nDate: x\r\nServer: Apache/2.4.62 (Debian)\r\n\r\n",
        "http",
        Some("Apache httpd"),
        Some("2.4.62"),
    ),
    (
        "GetRequest",
        b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nServer: lighttpd/1.4.69\r\n\r\n",
        "http",
        Some("lighttpd"),
        Some("1.4.69"),
    ),
    (
        "GetRequest",
        b"HTTP/1.1 308 Permanent Redirect\r\nConnection: close\r\nLocation: https://x/\r\nServer: Caddy\r\n\r\n",
        "http",
        Some("Caddy httpd"),
        None,
    ),
    (
        "GetRequest",
        b"HTTP/1.1 200 OK\r\nServer: Microsoft-IIS/10.0\r\n\r\n",
        "http",
        Some("Microsoft IIS httpd"),
        Some("10.0"),
    ),
    (
        "GetRequest",
        b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        "http",
        None,
        None,
    ),
    (
        "GetRequest",
        b"HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\n\r\n<html>\r\n<center>The plain HTTP request was sent to HTTPS port</center>\r\n",
        "ssl/http",
        Some("nginx"),
        None,
    ),
    ("TLSHello", b"\x16\x03\x03\x00\x5d\x02\x00\x00\x59\x03\x03", "ssl", None, None),
    ("TLSHello", b"\x15\x03\x01\x00\x02\x02\x28", "ssl", None, None),
    (
        "RedisInfo",
        b"$2000\r\n# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n",
        "redis",
        Some("Redis key-value store"),
        Some("7.0.15"),
    ),
    (
        "RedisInfo",
        b"-NOAUTH Authentication required.\r\n",
        "redis",
        Some("Redis key-value store"),
        None,
    ),
    ("MemcachedVersion", b"VERSION 1.6.18\r\n", "memcached", Some("Memcached"), Some("1.6.18")),
    (
        "PgStartup",
        b"R\0\0\0\x0c\0\0\0\x0aSCRAM-SHA-256\0\0",
        "postgresql",
        Some("PostgreSQL DB"),
        None,
    ),
    (
        "PgStartup",
        b"E\0\0\0\x60SFATAL\0VFATAL\0C28000\0Mno pg_hba.conf entry\0\0",
        "postgresql",
        Some("PostgreSQL DB"),
        None,
    ),
    // PostgreSQL 15.18's answer to protocol 0.0, then the shapes the
    // release notes give other versions (translated messages too).
    (
        "PgBadVersion",
        b"E\0\0\0\x83SFATAL\0VFATAL\0C0A000\0Munsupported frontend protocol 0.0: server supports 3.0 to 3.0\0Fpostmaster.c\0L2222\0RProcessStartupPacket\0\0",
        "postgresql",
        Some("PostgreSQL DB"),
        Some("14 - 16"),
    ),
    (
        "PgBadVersion",
        b"E\0\0\0\x88SFATAL\0VFATAL\0C0A000\0Munsupported frontend protocol 0.0: server supports 3.0 to 3.0\0Fbackend_startup.c\0L811\0RProcessStartupPacket\0\0",
        "postgresql",
        Some("PostgreSQL DB"),
        Some("17"),
    ),
    (
        "PgBadVersion",
        b"E\0\0\0\x88SFATAL\0VFATAL\0C0A000\0Munsupported frontend protocol 0.0: server supports 3.0 to 3.2\0Fbackend_startup.c\0L830\0RProcessStartupPacket\0\0",
        "postgresql",
        Some("PostgreSQL DB"),
        Some("18 or later"),
    ),
    (
        "PgBadVersion",
        b"E\0\0\0\x90SFATAL\0VFATAL\0C0A000\0Mnicht unterst\xc3\xbctztes Frontend-Protokoll 0.0: Server unterst\xc3\xbctzt 2.0 bis 3.0\0Fpostmaster.c\0L2100\0RProcessStartupPacket\0\0",
        "postgresql",
        Some("PostgreSQL DB"),
        Some("9.6 - 13"),
    ),
    (
        "PgBadVersion",
        b"E\0\0\0\x80SFATAL\0C0A000\0Munsupported frontend protocol 0.0: server supports 1.0 to 3.0\0Fpostmaster.c\0L1695\0RProcessStartupPacket\0\0",
        "postgresql",
        Some("PostgreSQL DB"),
        Some("9.5 or earlier"),
    ),
    (
        "DNSVersionTCP",
        b"\0\x3bPT\x85\x80\0\x01\0\x01\0\0\0\0\x07version\x04bind\0\0\x10\0\x03\xc0\x0c\0\x10\0\x03\0\0\0\0\0\x0d\x0cdnsmasq-2.89",
        "domain",
        Some("dnsmasq"),
        Some("2.89"),
    ),
    (
        "RPCNull",
        b"\x80\0\0\x20PLRP\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x02\0\0\0\x02\0\0\0\x04",
        "rpcbind",
        None,
        Some("2-4"),
    ),
    (
        "RPCNull",
        b"\x80\0\0\x18PLRP\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01",
        "rpc",
        None,
        None,
    ),
    (
        "MongoBuildInfo",
        b"\x90\0\0\0\x01\0\0\0PLMG\xdd\x07\0\0\0\0\0\0\0\x7b\0\0\0\x02version\0\x06\0\0\x007.0.4\0",
        "mongodb",
        Some("MongoDB"),
        Some("7.0.4"),
    ),
    ("MQTTConnect", b"\x20\x02\0\0", "mqtt", None, None),
    (
        "MQTTConnect",
        b"\x20\x02\0\0\x90\x03\0\x01\0\x31\x2d\0\x13$SYS/broker/versionmosquitto version 2.0.11",
        "mqtt",
        Some("Mosquitto"),
        Some("2.0.11"),
    ),
    (
        "SIPOptionsTCP",
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP portolan.invalid\r\nServer: Asterisk PBX 20.5.0~dfsg-1\r\n\r\n",
        "sip",
        Some("Asterisk"),
        Some("20.5.0~dfsg-1"),
    ),
    (
        "SIPOptionsTCP",
        b"SIP/2.0 404 Not Found\r\nUser-Agent: FreeSWITCH-mod_sofia/1.10.11-release\r\n\r\n",
        "sip",
        Some("FreeSWITCH"),
        Some("1.10.11-release"),
    ),
    (
        "AMQPHeader",
        b"\x01\0\0\0\0\x01\xf0\0\x0a\0\x0a\0\x09\0\0\x01\xd0\x07productS\0\0\0\x08RabbitMQ\x07versionS\0\0\0\x063.12.1",
        "amqp",
        Some("RabbitMQ"),
        Some("3.12.1"),
    ),
    ("LDAPBind", b"\x30\x0c\x02\x01\x01\x61\x07\x0a\x01\0\x04\0\x04\0", "ldap", Some("LDAP server"), None),
    (
        "SMBNegotiate",
        b"\0\0\0\xf8\xfeSMB@\0\0\0\0\0\0\0",
        "microsoft-ds",
        None,
        None,
    ),
    (
        "RDPNegotiate",
        b"\x03\0\0\x13\x0e\xd0\0\0\x12\x34\0\x02\x1f\x08\0\x02\0\0\0",
        "ms-wbt-server",
        Some("RDP server"),
        None,
    ),
    ("NULL", b"RFB 003.003\n", "vnc", Some("VNC"), None),
    ("NULL", b"\xff\xfb\x01\xff\xfb\x03\xff\xfd\x1f", "telnet", None, None),
    (
        "MongoBuildInfo",
        b"\x20\0\0\0\x02\0\0\0PLMG\x01\0\0\0\0\0\0\0",
        "mongodb",
        Some("MongoDB"),
        None,
    ),
    ("AMQPHeader", b"AMQP\0\0\x09\x01", "amqp", None, None),
    (
        "LDAPBind",
        b"\x30\x84\0\0\0\x10\x02\x01\x01\x61\x84\0\0\0\x07\x0a\x01\0\x04\0\x04\0",
        "ldap",
        Some("LDAP server"),
        None,
    ),
    (
        "SMBNegotiate",
        b"\0\0\0\x55\xffSMBr\0\0\0\0\x98\x53\xc8",
        "microsoft-ds",
        None,
        None,
    ),
    (
        "RDPNegotiate",
        b"\x03\0\0\x0b\x06\xd0\0\0\x12\x34\0",
        "ms-wbt-server",
        Some("RDP server"),
        None,
    ),
    (
        "SIPOptionsTCP",
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP portolan.invalid\r\nServer: kamailio (5.6.3 (x86_64/linux))\r\n\r\n",
        "sip",
        Some("Kamailio SIP proxy"),
        Some("5.6.3"),
    ),
];

/// Answers to the UDP probes, as [`ANSWERS`].
const UDP_ANSWERS: &[Case] = &[
    (
        "DNSVersionUDP",
        b"PT\x85\x80\0\x01\0\x01\0\0\0\0\x07version\x04bind\0\0\x10\0\x03\xc0\x0c\0\x10\0\x03\0\0\0\0\0\x0d\x0cdnsmasq-2.89",
        "domain",
        Some("dnsmasq"),
        Some("2.89"),
    ),
    ("DNSVersionUDP", b"PT\x81\x85\0\x01\0\0\0\0\0\0", "domain", None, None),
    (
        "RPCNullUDP",
        b"PLRU\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x02\0\0\0\x02\0\0\0\x04",
        "rpcbind",
        None,
        Some("2-4"),
    ),
    // net-snmp 5.9.3's answers (v2c with its versionTag, v1, v3 report).
    (
        "SNMPv2cGet",
        b"0\x81\x90\x02\x01\x01\x04\x06public\xa2\x81\x82\x02\x04PLSN\x02\x01\x00\x02\x01\x000t0E\x06\x08+\x06\x01\x02\x01\x01\x01\x00\x049Linux vm 6.18.44-fc-v657 #1 SMP PREEMPT_DYNAMIC @0 x86_640\x16\x06\x08+\x06\x01\x02\x01\x01\x02\x00\x06\n+\x06\x01\x04\x01\xbf\x08\x03\x02\n0\x13\x06\n+\x06\x01\x04\x01\x8fed\x02\x00\x04\x055.9.3",
        "snmp",
        Some("net-snmp"),
        Some("5.9.3"),
    ),
    (
        "SNMPv2cGet",
        b"0\x2e\x02\x01\x01\x04\x06public\xa2\x21\x02\x04PLSN\x02\x01\x00\x02\x01\x000\x130\x11\x06\x08+\x06\x01\x02\x01\x01\x01\x00\x04\x05cisco",
        "snmp",
        None,
        None,
    ),
    (
        "SNMPv1Get",
        b"0z\x02\x01\x00\x04\x06public\xa2m\x02\x04PLSN\x02\x01\x00\x02\x01\x000_0E\x06\x08+\x06\x01\x02\x01\x01\x01\x00\x049Linux vm 6.18.44-fc-v657 #1 SMP PREEMPT_DYNAMIC @0 x86_640\x16\x06\x08+\x06\x01\x02\x01\x01\x02\x00\x06\n+\x06\x01\x04\x01\xbf\x08\x03\x02\n",
        "snmp",
        Some("net-snmp"),
        None,
    ),
    (
        "SNMPv3Discover",
        b"0o\x02\x01\x030\x0f\x02\x02PL\x02\x03\x00\xff\xe3\x04\x01\x00\x02\x01\x03\x04!0\x1f\x04\x11\x80\x00\x1f\x88\x80\xb7\x1e\x13Q\xf2\xfe\x05k\x00\x00\x00\x00\x02\x01\x01\x02\x01\x02\x04\x00\x04\x00\x04\x0006\x04\x11\x80\x00\x1f\x88\x80\xb7\x1e\x13Q\xf2\xfe\x05k\x00\x00\x00\x00\x04\x00\xa8\x1f\x02\x04PLS3\x02\x01\x00\x02\x01\x000\x110\x0f\x06\n+\x06\x01\x06\x03\x0f\x01\x01\x04\x00A\x01\x01",
        "snmp",
        Some("net-snmp"),
        None,
    ),
    // chrony 4.3 serving its own clock at stratum 10, and another server.
    (
        "NTPClient",
        b"$\n\n\xe6\x00\x00\x00\x00\x00\x00\x00\x00\x7f\x7f\x01\x01\xee\xb0}s\x1e\x14P*PORTOLAN\xee\xb0}t\x96%\x8e\xb7\xee\xb0}t\x96)\xf98",
        "ntp",
        Some("chrony"),
        None,
    ),
    (
        "NTPClient",
        b"\x24\x02\x03\xe8\0\0\0\0\0\0\0\0\xc0\x00\x02\x01\xee\xb0}s\x1e\x14P*PORTOLAN\xee\xb0}t\x96%\x8e\xb7\xee\xb0}t\x96)\xf98",
        "ntp",
        None,
        None,
    ),
    (
        "NTPReadVar",
        b"\x16\x82\0\x01\x06\x15\0\0\0\0\0\x40version=\"ntpd 4.2.8p15@1.3728-o Wed Sep 23 11:46:38 UTC 2020 (1)\", processor=\"x86_64\"",
        "ntp",
        Some("ntpd"),
        Some("4.2.8p15"),
    ),
    (
        "MemcachedVersionUDP",
        b"PL\0\0\0\x01\0\0VERSION 1.6.18\r\n",
        "memcached",
        Some("Memcached"),
        Some("1.6.18"),
    ),
    (
        "SIPOptions",
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP portolan.invalid;rport=5060\r\nServer: kamailio (5.6.3 (x86_64/linux))\r\nContent-Length: 0\r\n\r\n",
        "sip",
        Some("Kamailio SIP proxy"),
        Some("5.6.3"),
    ),
];

#[test]
fn builtin_database_identifies_each_protocol() {
    let db = db();
    let cases = ANSWERS
        .iter()
        .map(|c| (Transport::Tcp, c))
        .chain(UDP_ANSWERS.iter().map(|c| (Transport::Udp, c)));
    for (transport, &(probe, answer, service, product, version)) in cases {
        let index = db
            .find(transport, probe)
            .unwrap_or_else(|| panic!("no probe {probe}"));
        let found = db
            .identify(index, answer, None)
            .unwrap_or_else(|| panic!("{probe}: nothing matched {answer:?}"));
        let what = format!("{probe} {answer:?} (rule on line {})", found.rule.line);
        assert_eq!(found.rule.service, service, "{what}");
        assert_eq!(found.fields.product.as_deref(), product, "{what}");
        assert_eq!(found.fields.version.as_deref(), version, "{what}");
    }
}

#[test]
fn builtin_database_leaves_noise_unmatched() {
    let db = db();
    for probe in &db.probes {
        let index = db.find(probe.transport, &probe.name).unwrap();
        for noise in [&b"\0"[..], b"hello", b"\xff", b"HTTP/2"] {
            assert!(
                db.identify(index, noise, None).is_none(),
                "{} matched {noise:?}",
                probe.name
            );
        }
    }
}

/// Every probe, match and softmatch line of nmap's own database parses and
/// compiles (nmap must be installed under CI: `scripts/test` installs it).
#[test]
fn nmap_database_compiles() {
    let path = std::path::Path::new("/usr/share/nmap/nmap-service-probes");
    if !path.exists() {
        assert!(
            !portolan_lab_free_under_ci(),
            "CI is set but {} is missing",
            path.display()
        );
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED: nmap_database_compiles: nmap is not installed\n",
        );
        return;
    }
    let text = std::fs::read(path).unwrap();
    let parsed = portolan_service::parse(&text);
    assert_eq!(parsed.errors, vec![], "nmap's database has lines we refuse");
    let expected = text
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"match ") || l.starts_with(b"softmatch "))
        .count();
    assert_eq!(parsed.db.rule_count(), expected);
    let probes = text
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"Probe "))
        .count();
    assert_eq!(parsed.db.probes.len(), probes);
    assert!(parsed.db.exclude.tcp.contains(9100));
    // Every rule runs over a hostile answer within the match limits.
    let hostile: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 256) as u8).collect();
    for index in 0..parsed.db.probes.len() {
        let _ = parsed.db.identify(index, &hostile, None);
    }
}

/// Whether the `CI` variable asks for strictness (as portolan-lab reads it).
fn portolan_lab_free_under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}
