//! Portolan's port table: a service name and a commonness rank per port and
//! protocol, for `-F`, `--top-ports`, the default port set and the SERVICE
//! column.
//!
//! The data is the project's own `data/port-table.tsv` (not nmap's
//! nmap-services); its header and `data/make-port-table.py` describe how it
//! was built: hand-ranked lists of commonly open ports, then Debian netbase's
//! IANA entries. It is compiled in with `include_str!` and parsed once, on
//! first use, behind a `OnceLock` (about 1500 rows, a few dozen kilobytes). Ports
//! the table does not rank come after it, ascending, so [`top_ports`] always
//! returns `n` distinct ports for `n` up to 65535. Port 0 is never a top
//! port. IP protocol numbers (`Protocol::Ip`) are named from IANA's
//! registry ([`crate::ip_protocol_name`]) and all 256 are "top", 0 first. Nothing here panics; a malformed row would be skipped (a unit test
//! proves there is none).

use std::sync::OnceLock;

use crate::Protocol;

const PORT_TABLE_TSV: &str = include_str!("../data/port-table.tsv");

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PortEntry {
    port: u16,
    /// `None` for ports ranked without a name (`-` in the file).
    name: Option<&'static str>,
    rank: u32,
}

/// The parsed table, per protocol (indexed by `Protocol as usize`).
#[derive(Debug, Default)]
struct PortTable {
    /// Rows sorted by port, for name lookups.
    by_port: [Vec<PortEntry>; 4],
    /// Ports from most to least common.
    by_rank: [Vec<u16>; 4],
    /// Rows that could not be parsed (always 0 for the shipped file).
    skipped_rows: usize,
}

fn table() -> &'static PortTable {
    static TABLE: OnceLock<PortTable> = OnceLock::new();
    TABLE.get_or_init(|| parse_table(PORT_TABLE_TSV))
}

fn parse_table(text: &'static str) -> PortTable {
    let mut table = PortTable::default();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        match parse_row(line) {
            Some((proto, entry)) => table.by_port[proto as usize].push(entry),
            None => table.skipped_rows += 1,
        }
    }
    // IP protocol numbers, ranked by number.
    table.by_port[Protocol::Ip as usize] = crate::ip_protocols::ip_protocol_names()
        .map(|(number, name)| PortEntry {
            port: u16::from(number),
            name: Some(name),
            rank: u32::from(number),
        })
        .collect();
    for (rows, ranked) in table.by_port.iter_mut().zip(&mut table.by_rank) {
        rows.sort_by_key(|entry| (entry.rank, entry.port));
        // A port listed twice keeps its best rank.
        let mut seen = vec![false; 1 << 16];
        rows.retain(|entry| !std::mem::replace(&mut seen[usize::from(entry.port)], true));
        *ranked = rows.iter().map(|entry| entry.port).collect();
        rows.sort_by_key(|entry| entry.port);
    }
    table
}

fn parse_row(line: &'static str) -> Option<(Protocol, PortEntry)> {
    let mut fields = line.split('\t');
    let name = fields.next()?;
    let (port, proto) = fields.next()?.split_once('/')?;
    let rank = fields.next()?.parse().ok()?;
    let proto = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        _ => return None,
    };
    let name = match name {
        "" => return None,
        "-" => None,
        name => Some(name),
    };
    let port = port.parse().ok()?;
    Some((proto, PortEntry { port, name, rank }))
}

/// The service name the table gives `port`, if any (`ssh` for 22/tcp).
pub fn service_name(proto: Protocol, port: u16) -> Option<&'static str> {
    let rows = &table().by_port[proto as usize];
    let index = rows.binary_search_by_key(&port, |entry| entry.port).ok()?;
    rows[index].name
}

/// The `n` most common ports for `proto`, sorted ascending; `n` is capped at
/// 65535 (ports 1-65535).
pub fn top_ports(proto: Protocol, n: usize) -> Vec<u16> {
    if proto == Protocol::Ip {
        return (0..=proto.max_port()).take(n).collect();
    }
    let n = n.min(usize::from(u16::MAX));
    let ranked = &table().by_rank[proto as usize];
    let mut ports: Vec<u16> = ranked.iter().copied().filter(|&p| p != 0).take(n).collect();
    if ports.len() < n {
        let mut taken = vec![false; 1 << 16];
        for &port in &ports {
            taken[usize::from(port)] = true;
        }
        let missing = n - ports.len();
        ports.extend(
            (1..=u16::MAX)
                .filter(|&p| !taken[usize::from(p)])
                .take(missing),
        );
    }
    ports.sort_unstable();
    ports
}

/// Ports of `proto` whose service name matches `pattern`, ascending;
/// `*` matches any run of characters and `?` any one (nmap's `-p http*`).
/// Matching ignores ASCII case.
pub fn ports_named(proto: Protocol, pattern: &str) -> Vec<u16> {
    table().by_port[proto as usize]
        .iter()
        .filter(|entry| entry.name.is_some_and(|name| glob_matches(pattern, name)))
        .map(|entry| entry.port)
        .collect()
}

/// Iterative glob match with backtracking to the last `*`: O(len²) worst
/// case, no allocation, no recursion.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_parses_cleanly() {
        let table = table();
        assert_eq!(table.skipped_rows, 0);
        // The default scan (top 1000 TCP) and common UDP sweeps come wholly
        // from the table, never from the ascending run-time padding.
        assert!(table.by_rank[Protocol::Tcp as usize].len() >= 1000);
        assert!(table.by_rank[Protocol::Udp as usize].len() >= 300);
        assert!(!table.by_rank[Protocol::Sctp as usize].is_empty());
        // Ranks in the file are unique per protocol: nothing was dropped.
        let rows = PORT_TABLE_TSV
            .lines()
            .filter(|line| line.contains("/tcp\t"))
            .count();
        assert_eq!(rows, table.by_rank[Protocol::Tcp as usize].len());
    }

    #[test]
    fn well_known_names() {
        assert_eq!(service_name(Protocol::Tcp, 22), Some("ssh"));
        assert_eq!(service_name(Protocol::Tcp, 80), Some("http"));
        assert_eq!(service_name(Protocol::Tcp, 443), Some("https"));
        assert_eq!(service_name(Protocol::Tcp, 3389), Some("ms-wbt-server"));
        assert_eq!(service_name(Protocol::Tcp, 6379), Some("redis"));
        assert_eq!(service_name(Protocol::Udp, 53), Some("domain"));
        assert_eq!(service_name(Protocol::Udp, 161), Some("snmp"));
        assert_eq!(service_name(Protocol::Sctp, 3868), Some("diameter"));
        assert_eq!(service_name(Protocol::Tcp, 49152), None);
        assert_eq!(service_name(Protocol::Tcp, 0), None);
        assert_eq!(service_name(Protocol::Udp, 22), None);
    }

    #[test]
    fn top_ports_are_distinct_sorted_and_sized() {
        // IP protocol numbers: all 256 at most, 0 first.
        assert_eq!(
            top_ports(Protocol::Ip, 70000),
            (0..=255).collect::<Vec<_>>()
        );
        for proto in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
            for n in [0, 1, 10, 100, 1000, 5000, 65535, 70000] {
                let ports = top_ports(proto, n);
                assert_eq!(ports.len(), n.min(65535), "{proto} {n}");
                assert!(ports.windows(2).all(|w| w[0] < w[1]), "{proto} {n}");
                assert!(!ports.contains(&0));
            }
        }
    }

    #[test]
    fn most_common_ports_rank_first() {
        let top10 = top_ports(Protocol::Tcp, 10);
        for port in [80, 443, 22] {
            assert!(top10.contains(&port), "{port} not in {top10:?}");
        }
        let top100 = top_ports(Protocol::Tcp, 100);
        for port in [21, 25, 3389, 445, 3306, 8080, 5900] {
            assert!(top100.contains(&port), "{port}");
        }
        let udp10 = top_ports(Protocol::Udp, 10);
        for port in [53, 123, 161] {
            assert!(udp10.contains(&port), "{port}");
        }
        let top1000 = top_ports(Protocol::Tcp, 1000);
        for port in [
            6379, 27017, 9200, 11211, 5432, 1433, 2049, 5060, 1883, 5672, 9100,
            // ICS, orchestration, monitoring, Windows RPC, VMware.
            502, 102, 20000, 44818, 2375, 2376, 6443, 10250, 2379, 2380, 10050, 10051, 5666, 5985,
            5986, 49152, 49157, 902, 903, 5480, 9443,
        ] {
            assert!(top1000.contains(&port), "{port}");
        }
        let udp300 = top_ports(Protocol::Udp, 300);
        for port in [47808, 500, 4500, 1900, 5353, 51820, 5683, 3702] {
            assert!(udp300.contains(&port), "{port}/udp");
        }
    }

    #[test]
    fn names_match_globs() {
        assert_eq!(ports_named(Protocol::Tcp, "ssh"), [22]);
        assert_eq!(ports_named(Protocol::Tcp, "SSH"), [22]);
        let http = ports_named(Protocol::Tcp, "http*");
        assert!(http.contains(&80) && http.contains(&8080) && http.contains(&443));
        let one_more = ports_named(Protocol::Tcp, "http?");
        assert!(one_more.contains(&443) && !one_more.contains(&80));
        assert!(ports_named(Protocol::Tcp, "no-such-service").is_empty());
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a*b*c", "axxbyyc"));
        assert!(!glob_matches("a*b*c", "axxbyy"));
        assert!(glob_matches("**x", "yx"));
    }
}
