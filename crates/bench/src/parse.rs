//! Reads each tool's output into port states, to compare with the truth.
//!
//! nmap's XML lists ports shown individually as `<port>` elements and the
//! collapsed ones in `<extrareasons ... ports="a-b,c">` (nmap 7.80 and
//! later). RustScan and masscan report open ports only. Plain string
//! scanning is enough for these machine-written files; malformed input
//! yields fewer ports, which shows up as a mismatch.

use std::collections::{BTreeMap, BTreeSet};

/// Port number to state name ("open", "closed", "filtered", ...).
pub type States = BTreeMap<u16, String>;

/// What version detection said of one port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// The service name, `ssl/` first when tunnelled in TLS.
    pub service: String,
    /// The product, if named.
    pub product: Option<String>,
    /// The version, if named.
    pub version: Option<String>,
}

/// The services on Portolan's JSON-lines port lines (`-sV`), by protocol
/// and port.
pub fn portolan_services(text: &str) -> BTreeMap<(String, u16), Found> {
    let mut found = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(proto), Some(port), Some(name)) = (
            v["proto"].as_str(),
            v["port"].as_u64(),
            v["service"].as_str(),
        ) else {
            continue;
        };
        if v["type"] != "port" || v["method"].is_null() {
            continue;
        }
        let service = match v["tunnel"].as_str() {
            Some(t) => format!("{t}/{name}"),
            None => name.to_string(),
        };
        let text = |key: &str| v[key].as_str().map(str::to_string);
        found.insert(
            (proto.to_string(), port as u16),
            Found {
                service,
                product: text("product"),
                version: text("version"),
            },
        );
    }
    found
}

/// The `<service>` of each port of nmap's XML, by protocol and port.
pub fn nmap_services(text: &str) -> BTreeMap<(String, u16), Found> {
    let mut found = BTreeMap::new();
    for element in text.split("<port ").skip(1) {
        let element = element.split("</port>").next().unwrap_or("");
        let head = format!(" {element}");
        let (Some(proto), Some(Ok(port))) = (
            attr(&head, "protocol"),
            attr(&head, "portid").map(str::parse::<u16>),
        ) else {
            continue;
        };
        let Some(at) = element.find("<service ") else {
            continue;
        };
        let service = &element[at..];
        let service = &service[..service.find('>').unwrap_or(service.len())];
        let text = |key: &str| attr(service, key).map(unescape_xml);
        let Some(name) = text("name") else {
            continue;
        };
        found.insert(
            (proto.to_string(), port),
            Found {
                service: match text("tunnel") {
                    Some(t) => format!("{t}/{name}"),
                    None => name,
                },
                product: text("product"),
                version: text("version"),
            },
        );
    }
    found
}

/// XML's five predefined entities decoded (nmap writes no others).
fn unescape_xml(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Portolan's JSON lines.
pub fn portolan_jsonl(text: &str) -> States {
    let mut states = States::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["type"] == "port"
            && let (Some(port), Some(state)) = (v["port"].as_u64(), v["state"].as_str())
        {
            states.insert(port as u16, state.to_string());
        }
    }
    states
}

/// The packets Portolan's summary line says it sent (`"packets":{"sent"}`),
/// present for raw-socket scans only.
pub fn portolan_packets_sent(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|v| v["type"] == "summary")
        .and_then(|v| v["packets"]["sent"].as_u64())
}

/// The answers the kernel dropped before Portolan read them (its receive
/// ring was full), from the JSON summary's `packets`.
pub fn portolan_kernel_drops(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|v| v["type"] == "summary")
        .and_then(|v| v["packets"]["dropped"].as_u64())
}

fn attr<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = element.find(&key)? + key.len();
    let len = element[start..].find('"')?;
    Some(&element[start..start + len])
}

fn expand_ranges(list: &str, mut f: impl FnMut(u16)) {
    for item in list.split(',').filter(|s| !s.is_empty()) {
        let (a, b) = item.split_once('-').unwrap_or((item, item));
        if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
            for p in a..=b {
                f(p);
            }
        }
    }
}

/// nmap's XML (`-oX`).
pub fn nmap_xml(text: &str) -> States {
    let mut states = States::new();
    let mut rest = text;
    while let Some(i) = rest.find("<port ") {
        rest = &rest[i..];
        let end = rest.find("</port>").unwrap_or(rest.len());
        let element = &rest[..end];
        if let (Some(port), Some(state_at)) = (attr(element, "portid"), element.find("<state "))
            && let (Ok(port), Some(state)) = (port.parse(), attr(&element[state_at..], "state"))
        {
            states.insert(port, state.to_string());
        }
        rest = &rest[end.min(rest.len())..];
        if rest.is_empty() {
            break;
        }
        rest = &rest[1..];
    }
    let mut rest = text;
    while let Some(i) = rest.find("<extraports ") {
        rest = &rest[i..];
        let end = rest.find("</extraports>").unwrap_or(rest.len());
        let block = &rest[..end];
        let state = attr(block, "state").unwrap_or("").to_string();
        let mut inner = block;
        while let Some(j) = inner.find("<extrareasons ") {
            inner = &inner[j + 1..];
            if let Some(list) = attr(inner, "ports") {
                expand_ranges(list, |p| {
                    states.insert(p, state.clone());
                });
            }
        }
        rest = &rest[end.min(rest.len())..];
        if rest.is_empty() {
            break;
        }
        rest = &rest[1..];
    }
    states
}

/// RustScan's greppable output (`-g`): `ADDR -> [p1,p2,...]`.
pub fn rustscan_greppable(text: &str) -> States {
    let mut states = States::new();
    for line in text.lines() {
        if let Some((_, list)) = line.split_once("-> [") {
            expand_ranges(list.trim_end_matches(']'), |p| {
                states.insert(p, "open".to_string());
            });
        }
    }
    states
}

/// masscan's list output (`-oL`): `open tcp PORT ADDR TIMESTAMP` lines
/// between `#` comment lines.
pub fn masscan_list(text: &str) -> States {
    let mut states = States::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        if let (Some(state @ "open"), Some("tcp"), Some(port)) =
            (fields.next(), fields.next(), fields.next())
            && let Ok(port) = port.parse()
        {
            states.insert(port, state.to_string());
        }
    }
    states
}

/// The addresses with an open port in Portolan's JSON lines.
pub fn portolan_open_addresses(text: &str) -> BTreeSet<String> {
    jsonl_addresses(text, "port", "state", "open")
}

/// The addresses Portolan's JSON lines say are up (`host` lines).
pub fn portolan_up_hosts(text: &str) -> BTreeSet<String> {
    jsonl_addresses(text, "host", "status", "up")
}

/// The `addr` of each JSON line of `type` whose `key` is `value`.
fn jsonl_addresses(text: &str, kind: &str, key: &str, value: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == kind && v[key] == value)
        .filter_map(|v| v["addr"].as_str().map(String::from))
        .collect()
}

/// The IPv4 addresses nmap's XML says are up: `<host>` elements (not
/// `<hosthint>`, which nmap 7.90 and later write as a host is found) with
/// `<status state="up"`.
pub fn nmap_up_hosts(text: &str) -> BTreeSet<String> {
    let mut up = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("<host") {
        rest = &rest[i + "<host".len()..];
        if !rest.starts_with([' ', '>']) {
            continue;
        }
        let element = &rest[..rest.find("</host>").unwrap_or(rest.len())];
        let state = element
            .find("<status ")
            .and_then(|at| attr(&element[at..], "state"));
        let mut addresses = element.match_indices("<address ");
        let ipv4 = addresses.find_map(|(at, _)| {
            let address = &element[at..];
            (attr(address, "addrtype") == Some("ipv4"))
                .then(|| attr(address, "addr"))
                .flatten()
        });
        if let (Some("up"), Some(addr)) = (state, ipv4) {
            up.insert(addr.to_string());
        }
    }
    up
}

/// masscan's `-oL` addresses with an open port: `open tcp PORT ADDR
/// TIMESTAMP`.
pub fn masscan_open_addresses(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[0] == "open").then(|| f[3].to_string())
        })
        .collect()
}

/// One address a line (ZMap's default output).
pub fn address_lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// The MAC address in `ip link show IFACE` output (`link/ether MAC ...`).
pub fn link_mac(text: &str) -> Option<&str> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == "link/ether")?;
    words.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmap_ports_and_extrareasons() {
        let xml = r#"<ports><extraports state="closed" count="4">
<extrareasons reason="conn-refused" count="4" proto="tcp" ports="1-3,5"/>
</extraports>
<port protocol="tcp" portid="4"><state state="open" reason="syn-ack" reason_ttl="0"/></port>
</ports>"#;
        let s = nmap_xml(xml);
        assert_eq!(s.len(), 5);
        assert_eq!(s[&4], "open");
        assert_eq!(s[&5], "closed");
    }

    #[test]
    fn rustscan_lines() {
        let s = rustscan_greppable("198.18.0.2 -> [22,80]\n");
        assert_eq!(s.keys().copied().collect::<Vec<_>>(), vec![22, 80]);
    }

    #[test]
    fn masscan_list_open_ports() {
        let text = "#masscan\n\
open tcp 22 198.18.0.2 1700000000\n\
open tcp 0 198.18.0.2 1700000000\n\
open tcp 8080 198.18.0.2 1700000001\n\
open udp 53 198.18.0.2 1700000001\n\
closed tcp 23 198.18.0.2 1700000001\n\
garbage\n\
# end\n";
        let s = masscan_list(text);
        assert_eq!(s.keys().copied().collect::<Vec<_>>(), vec![0, 22, 8080]);
        assert!(s.values().all(|v| v == "open"));
    }

    #[test]
    fn portolan_summary_packets() {
        let text = r#"{"type":"port","port":22,"state":"open"}
{"type":"summary","packets":{"sent":131072,"received":65536}}
"#;
        assert_eq!(portolan_packets_sent(text), Some(131072));
        assert_eq!(portolan_packets_sent(r#"{"type":"summary"}"#), None);
    }

    #[test]
    fn mac_from_ip_link() {
        let text = "2: eth0@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000\n    link/ether 5a:1c:0e:9b:22:f1 brd ff:ff:ff:ff:ff:ff link-netns x\n";
        assert_eq!(link_mac(text), Some("5a:1c:0e:9b:22:f1"));
        assert_eq!(
            link_mac("1: lo: <LOOPBACK>\n    link/loopback 00:00:00:00:00:00"),
            None
        );
    }

    #[test]
    fn nmap_hosts_up_skip_hints_and_down_hosts() {
        let xml = r#"<hosthint><status state="up" reason="arp-response"/>
<address addr="198.18.5.9" addrtype="ipv4"/></hosthint>
<host><status state="up" reason="arp-response" reason_ttl="0"/>
<address addr="198.18.5.2" addrtype="ipv4"/>
<address addr="02:5C:12:05:00:02" addrtype="mac"/>
<hostnames>
</hostnames>
<times srtt="1" rttvar="5000" to="100000"/>
</host>
<host starttime="1"><status state="down" reason="no-response"/>
<address addr="198.18.5.3" addrtype="ipv4"/></host>
<host><status state="up" reason="localhost-response"/>
<address addr="198.18.5.1" addrtype="ipv4"/></host>"#;
        let up: Vec<String> = nmap_up_hosts(xml).into_iter().collect();
        assert_eq!(up, ["198.18.5.1", "198.18.5.2"]);
    }

    #[test]
    fn portolan_hosts_up_and_open_addresses() {
        let text = r#"{"type":"host","addr":"198.19.0.7","status":"up","reason":"echo-reply"}
{"type":"host","addr":"198.19.0.8","status":"down"}
{"type":"port","addr":"198.19.0.9","port":80,"state":"open"}
{"type":"port","addr":"198.19.0.10","port":80,"state":"filtered"}
"#;
        assert_eq!(
            portolan_up_hosts(text).into_iter().collect::<Vec<_>>(),
            ["198.19.0.7"]
        );
        assert_eq!(
            portolan_open_addresses(text)
                .into_iter()
                .collect::<Vec<_>>(),
            ["198.19.0.9"]
        );
    }

    #[test]
    fn masscan_and_zmap_addresses() {
        let masscan = "#masscan\nopen tcp 80 198.19.3.4 1700000000\n# end\n";
        assert_eq!(masscan_open_addresses(masscan).len(), 1);
        assert_eq!(address_lines("198.19.3.4\n\n198.19.3.5\n").len(), 2);
    }
}
