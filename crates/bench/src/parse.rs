//! Reads each tool's output into port states, to compare with the truth.
//!
//! nmap's XML lists ports shown individually as `<port>` elements and the
//! collapsed ones in `<extrareasons ... ports="a-b,c">` (nmap 7.80 and
//! later). RustScan reports open ports only. Plain string scanning is
//! enough for these machine-written files; malformed input yields fewer
//! ports, which shows up as a mismatch.

use std::collections::BTreeMap;

/// Port number to state name ("open", "closed", "filtered", ...).
pub type States = BTreeMap<u16, String>;

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
}
