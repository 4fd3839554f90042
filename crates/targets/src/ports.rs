//! Port lists in nmap's `-p` syntax, per transport protocol.
//!
//! Items are separated by commas: a port (`22`), a range (`1000-2000`,
//! `-1024` = 1-1024, `60000-` = 60000-65535, `-` = 1-65535), a service name
//! from the port table with `*`/`?` wildcards (`http*`), or a bracketed
//! range keeping only ports the table names (`[1-1024]`). A prefix `T:`,
//! `U:` or `S:` sends its item and those after it to TCP, UDP or SCTP until
//! the next prefix. `P:` does the same for IP protocol numbers (0-255, for
//! the IP protocol scan; open ranges end at 255). Port 0 is included only
//! when written (`0`, `0-10`), as in nmap. Unprefixed items apply to every scanned protocol (nmap's rule):
//! [`parse_ports_for`] takes that protocol set, [`parse_ports`] assumes TCP.
//! Parsing never panics; it allocates four 8 KiB bitmaps while it runs and
//! the sorted result. Reference: `man nmap`, "PORT SPECIFICATION".

use std::fmt;

use crate::PortError;
use crate::port_table::{ports_named, service_name};

/// A transport protocol whose ports are scanned, or IP itself, whose
/// "ports" are protocol numbers (the IP protocol scan, `-sO`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    Ip,
}

impl Protocol {
    /// Every protocol, in the order nmap reports them.
    pub const ALL: [Protocol; 4] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp, Protocol::Ip];

    /// `tcp`, `udp`, `sctp` or `ip`, as nmap's output writes them.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
            Protocol::Ip => "ip",
        }
    }

    /// The highest "port": 65535, or 255 for IP protocol numbers.
    pub fn max_port(self) -> u16 {
        match self {
            Protocol::Ip => u16::from(u8::MAX),
            _ => u16::MAX,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ports to scan per protocol; each list sorted ascending without
/// duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortList {
    pub tcp: Vec<u16>,
    pub udp: Vec<u16>,
    pub sctp: Vec<u16>,
    /// IP protocol numbers (`-sO`).
    pub ip: Vec<u16>,
}

impl PortList {
    /// The ports of `proto`.
    pub fn get(&self, proto: Protocol) -> &[u16] {
        match proto {
            Protocol::Tcp => &self.tcp,
            Protocol::Udp => &self.udp,
            Protocol::Sctp => &self.sctp,
            Protocol::Ip => &self.ip,
        }
    }

    fn get_mut(&mut self, proto: Protocol) -> &mut Vec<u16> {
        match proto {
            Protocol::Tcp => &mut self.tcp,
            Protocol::Udp => &mut self.udp,
            Protocol::Sctp => &mut self.sctp,
            Protocol::Ip => &mut self.ip,
        }
    }

    /// Whether `port` is listed for `proto`.
    pub fn contains(&self, proto: Protocol, port: u16) -> bool {
        self.get(proto).binary_search(&port).is_ok()
    }

    /// Removes every port of `other` (`--exclude-ports`).
    pub fn remove(&mut self, other: &PortList) {
        for proto in Protocol::ALL {
            let unwanted = other.get(proto);
            self.get_mut(proto)
                .retain(|port| unwanted.binary_search(port).is_err());
        }
    }

    /// No port for any protocol.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ports across all protocols.
    pub fn len(&self) -> usize {
        self.tcp.len() + self.udp.len() + self.sctp.len() + self.ip.len()
    }

    /// Every (protocol, port), TCP first, ports ascending.
    pub fn iter(&self) -> impl Iterator<Item = (Protocol, u16)> + '_ {
        Protocol::ALL
            .into_iter()
            .flat_map(move |proto| self.get(proto).iter().map(move |&port| (proto, port)))
    }
}

/// Parses a `-p` specification; unprefixed items go to TCP.
pub fn parse_ports(spec: &str) -> Result<PortList, PortError> {
    parse_ports_for(spec, &[Protocol::Tcp])
}

/// Parses a `-p` specification; unprefixed items go to each protocol in
/// `unprefixed` (the scanned protocols, e.g. `[Tcp, Udp]` for `-sS -sU`).
/// A name known to the table but not for these protocols adds nothing; a
/// name unknown for every protocol is an error.
pub fn parse_ports_for(spec: &str, unprefixed: &[Protocol]) -> Result<PortList, PortError> {
    if spec.trim().is_empty() {
        return Err(PortError::Empty);
    }
    let mut sets = PortSets::new();
    let mut scope: Option<Protocol> = None;
    for item in spec.split(',').map(str::trim) {
        let mut body = item;
        if let Some((prefix, rest)) = item.split_once(':') {
            scope = Some(match prefix {
                "T" | "t" => Protocol::Tcp,
                "U" | "u" => Protocol::Udp,
                "S" | "s" => Protocol::Sctp,
                "P" | "p" => Protocol::Ip,
                _ if prefix.len() == 1 && prefix.bytes().all(|b| b.is_ascii_alphabetic()) => {
                    return Err(PortError::UnsupportedPrefix {
                        token: item.to_owned(),
                        prefix: prefix.to_owned(),
                    });
                }
                _ => return Err(malformed(item)),
            });
            body = rest.trim();
        }
        if body.is_empty() {
            return Err(PortError::EmptyItem {
                spec: spec.to_owned(),
            });
        }
        let protos = match &scope {
            Some(proto) => std::slice::from_ref(proto),
            None => unprefixed,
        };
        if let Some(inner) = body.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or_else(|| malformed(item))?;
            let (start, end) = parse_range(item, inner.trim())?;
            for &proto in protos {
                let (start, end) = fit(proto, item, start, end)?;
                for port in start..=end {
                    if service_name(proto, port).is_some() {
                        sets.insert(proto, port);
                    }
                }
            }
        } else if body.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            let (start, end) = parse_range(item, body)?;
            for &proto in protos {
                let (start, end) = fit(proto, item, start, end)?;
                sets.insert_range(proto, start, end);
            }
        } else {
            add_service_ports(&mut sets, item, body, protos)?;
        }
    }
    Ok(sets.into_list())
}

fn add_service_ports(
    sets: &mut PortSets,
    item: &str,
    pattern: &str,
    protos: &[Protocol],
) -> Result<(), PortError> {
    let plausible = pattern.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b'/' | b'*' | b'?')
    });
    if !plausible {
        return Err(malformed(item));
    }
    if Protocol::ALL
        .iter()
        .all(|&proto| ports_named(proto, pattern).is_empty())
    {
        return Err(PortError::UnknownService {
            token: item.to_owned(),
        });
    }
    for &proto in protos {
        for port in ports_named(proto, pattern) {
            sets.insert(proto, port);
        }
    }
    Ok(())
}

/// A range parsed as ports, fitted to `proto`: IP protocol numbers end at
/// 255, so an open range (`-`, `100-`) stops there and a number above it
/// is out of range.
fn fit(proto: Protocol, item: &str, start: u16, end: u16) -> Result<(u16, u16), PortError> {
    let max = proto.max_port();
    let end = if end == u16::MAX { max } else { end };
    if start > max || end > max {
        return Err(PortError::ProtocolOutOfRange {
            token: item.to_owned(),
        });
    }
    Ok((start, end))
}

fn malformed(item: &str) -> PortError {
    PortError::Malformed {
        token: item.to_owned(),
    }
}

/// `n`, `n-m`, `-m` (from 1), `n-` (to 65535) or `-` (1-65535).
fn parse_range(item: &str, text: &str) -> Result<(u16, u16), PortError> {
    let (start, end) = match text.split_once('-') {
        None => {
            let port = parse_port(item, text)?;
            (port, port)
        }
        Some((start, end)) => {
            let start = if start.is_empty() {
                1
            } else {
                parse_port(item, start)?
            };
            let end = if end.is_empty() {
                u16::MAX
            } else {
                parse_port(item, end)?
            };
            (start, end)
        }
    };
    if start > end {
        return Err(PortError::ReversedRange {
            token: item.to_owned(),
        });
    }
    Ok((start, end))
}

fn parse_port(item: &str, text: &str) -> Result<u16, PortError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(item));
    }
    text.parse().map_err(|_| PortError::OutOfRange {
        token: item.to_owned(),
    })
}

/// One 65536-bit set per protocol.
struct PortSets {
    words: [Vec<u64>; 4],
}

impl PortSets {
    fn new() -> PortSets {
        PortSets {
            words: std::array::from_fn(|_| vec![0; 1024]),
        }
    }

    fn insert(&mut self, proto: Protocol, port: u16) {
        self.words[proto as usize][usize::from(port >> 6)] |= 1 << (port & 63);
    }

    fn insert_range(&mut self, proto: Protocol, start: u16, end: u16) {
        for port in start..=end {
            self.insert(proto, port);
        }
    }

    fn into_list(self) -> PortList {
        let [tcp, udp, sctp, ip] = self.words.map(|words| {
            let mut ports = Vec::new();
            for (index, &word) in words.iter().enumerate() {
                let mut rest = word;
                while rest != 0 {
                    // index < 1024 and the bit < 64: the port fits a u16.
                    ports.push((index * 64 + rest.trailing_zeros() as usize) as u16);
                    rest &= rest - 1;
                }
            }
            ports
        });
        PortList { tcp, udp, sctp, ip }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Protocol::{Sctp, Tcp, Udp};

    fn tcp(spec: &str) -> Vec<u16> {
        let list = parse_ports(spec).unwrap();
        assert!(list.udp.is_empty() && list.sctp.is_empty());
        list.tcp
    }

    fn error(spec: &str) -> String {
        parse_ports(spec).unwrap_err().to_string()
    }

    #[test]
    fn single_ports_and_lists() {
        assert_eq!(tcp("22"), [22]);
        assert_eq!(tcp("443,22,80,22"), [22, 80, 443]);
        assert_eq!(tcp(" 22 , 80 "), [22, 80]);
    }

    #[test]
    fn ranges() {
        assert_eq!(tcp("1000-2000").len(), 1001);
        assert_eq!(tcp("-").len(), 65535);
        assert_eq!(tcp("-")[0], 1);
        assert_eq!(tcp("-1024"), (1..=1024).collect::<Vec<_>>());
        assert_eq!(tcp("60000-"), (60000..=65535).collect::<Vec<_>>());
        assert_eq!(tcp("0-65535").len(), 65536);
        assert_eq!(tcp("0"), [0]);
        assert_eq!(tcp("5-5"), [5]);
    }

    #[test]
    fn protocol_prefixes_apply_until_the_next() {
        let list = parse_ports("U:53,111,T:21-25,80").unwrap();
        assert_eq!(list.udp, [53, 111]);
        assert_eq!(list.tcp, [21, 22, 23, 24, 25, 80]);
        let list = parse_ports("22,S:2905,u:161").unwrap();
        assert_eq!(
            (list.tcp, list.sctp, list.udp),
            (vec![22], vec![2905], vec![161])
        );
    }

    #[test]
    fn ip_protocol_numbers_stop_at_255() {
        let list = parse_ports_for("1,6,17,P:132", &[Protocol::Ip]).unwrap();
        assert_eq!(list.ip, [1, 6, 17, 132]);
        assert!(list.tcp.is_empty());
        let all = parse_ports_for("-", &[Protocol::Ip]).unwrap();
        assert_eq!(all.ip, (1..=255).collect::<Vec<_>>());
        assert_eq!(
            parse_ports_for("0-", &[Protocol::Ip]).unwrap().ip.len(),
            256
        );
        let err = parse_ports_for("1-300", &[Protocol::Ip])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("IP protocol number") && err.contains("1-300"),
            "{err}"
        );
        // A TCP list beside it keeps its range.
        let both = parse_ports_for("T:1-1024,P:1-255", &[Protocol::Tcp]).unwrap();
        assert_eq!((both.tcp.len(), both.ip.len()), (1024, 255));
        assert_eq!(crate::service_name(Protocol::Ip, 1), Some("icmp"));
        assert_eq!(crate::top_ports(Protocol::Ip, 1000).len(), 256);
    }

    #[test]
    fn unprefixed_ports_go_to_every_scanned_protocol() {
        let list = parse_ports_for("22,U:53", &[Tcp, Udp]).unwrap();
        assert_eq!(list.tcp, [22]);
        assert_eq!(list.udp, [22, 53]);
        assert_eq!(list.len(), 3);
        let list = parse_ports_for("161", &[Udp]).unwrap();
        assert_eq!((list.tcp.len(), list.udp.as_slice()), (0, &[161][..]));
    }

    #[test]
    fn service_names() {
        assert_eq!(tcp("http,ssh"), [22, 80]);
        assert!(tcp("http*").contains(&8080));
        let list = parse_ports_for("domain", &[Tcp, Udp]).unwrap();
        assert_eq!((list.tcp, list.udp), (vec![53], vec![53]));
        assert_eq!(parse_ports("U:snmp").unwrap().udp, [161]);
        // Known, but only for UDP: adds nothing to a TCP-only scan.
        assert!(parse_ports("ntp").unwrap().is_empty());
    }

    #[test]
    fn brackets_keep_named_ports() {
        let named = tcp("[1-1024]");
        assert!(named.contains(&22) && named.contains(&443));
        assert!(!named.contains(&2) && named.len() < 1024);
        assert!(tcp("[-]").contains(&3389));
    }

    #[test]
    fn errors_name_the_token() {
        assert_eq!(
            error("70000"),
            "invalid port \"70000\": out of range 0-65535"
        );
        assert_eq!(
            error("99999999999999999999"),
            "invalid port \"99999999999999999999\": out of range 0-65535"
        );
        assert_eq!(
            error("5-3"),
            "invalid port range \"5-3\": start is after end"
        );
        assert_eq!(error(""), "empty port specification");
        assert_eq!(error("  "), "empty port specification");
        assert!(error("22,,80").contains("empty item"));
        assert!(error("22,").contains("empty item"));
        assert!(error("U:").contains("empty item"));
        assert!(error("1-2-3").contains("\"1-2-3\""));
        assert!(error("no-such-service").contains("\"no-such-service\": unknown service"));
        assert!(error("Q:6").contains("\"Q:\" is not supported"));
        assert!(error("22;80").contains("\"22;80\""));
        assert!(error("[1-10").contains("\"[1-10\""));
        assert!(error("TCP:80").contains("\"TCP:80\""));
        assert!(error("U:1-70000").contains("\"U:1-70000\": out of range"));
    }

    #[test]
    fn remove_and_counts() {
        let mut list = parse_ports_for("1-10,U:53,S:1", &[Tcp]).unwrap();
        let exclude = parse_ports("2-4,U:53").unwrap();
        list.remove(&exclude);
        assert_eq!(list.tcp, [1, 5, 6, 7, 8, 9, 10]);
        assert!(list.udp.is_empty());
        assert_eq!(list.len(), 8);
        assert!(list.contains(Sctp, 1) && !list.contains(Tcp, 3));
        assert_eq!(list.iter().last(), Some((Sctp, 1)));
        assert!(!list.is_empty());
        assert!(PortList::default().is_empty());
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        fn ports() -> impl Strategy<Value = Vec<u16>> {
            proptest::collection::btree_set(any::<u16>(), 0..40)
                .prop_map(|set| set.into_iter().collect())
        }

        /// Writes ports as nmap would accept them, merging runs into ranges.
        fn format_ports(ports: &[u16]) -> Vec<String> {
            let mut items = Vec::new();
            let mut index = 0;
            while index < ports.len() {
                let start = ports[index];
                let mut end = start;
                while index + 1 < ports.len() && ports[index + 1] == end.wrapping_add(1) {
                    index += 1;
                    end = ports[index];
                }
                items.push(if start == end {
                    start.to_string()
                } else {
                    format!("{start}-{end}")
                });
                index += 1;
            }
            items
        }

        proptest! {
            #[test]
            fn never_panics(spec in "\\PC{0,40}") {
                let _ = parse_ports_for(&spec, &Protocol::ALL);
            }

            #[test]
            fn never_panics_on_port_like_text(spec in "[0-9TUSP:,\\[\\]*-]{0,30}") {
                let _ = parse_ports_for(&spec, &Protocol::ALL);
            }

            #[test]
            fn port_lists_round_trip(tcp in ports(), udp in ports(), sctp in ports()) {
                let mut items = Vec::new();
                for (prefix, list) in [("T:", &tcp), ("U:", &udp), ("S:", &sctp)] {
                    for (i, item) in format_ports(list).into_iter().enumerate() {
                        items.push(if i == 0 { format!("{prefix}{item}") } else { item });
                    }
                }
                prop_assume!(!items.is_empty());
                let parsed = parse_ports(&items.join(",")).unwrap();
                prop_assert_eq!(parsed, PortList { tcp, udp, sctp, ip: Vec::new() });
            }

            #[test]
            fn ranges_round_trip(start: u16, end: u16) {
                let spec = format!("{start}-{end}");
                match parse_ports(&spec) {
                    Ok(list) => {
                        prop_assert!(start <= end);
                        prop_assert_eq!(list.tcp.len(), usize::from(end - start) + 1);
                        prop_assert_eq!(list.tcp.first().copied(), Some(start));
                        prop_assert_eq!(list.tcp.last().copied(), Some(end));
                    }
                    Err(error) => {
                        prop_assert!(start > end);
                        prop_assert_eq!(error, PortError::ReversedRange { token: spec });
                    }
                }
            }
        }
    }
}
