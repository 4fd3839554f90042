//! nmap XML (nmap.dtd, as Portolan's `-oX` and nmap write it) into a
//! [`ScanReport`]. Elements this report does not show are skipped; a file
//! that stops early (a killed scan) yields the hosts it finished and is
//! marked incomplete.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use crate::{HostEntry, PortEntry, ReportError, ScanReport};

/// An element's attributes, unescaped (a malformed one is an error).
fn attributes(e: &BytesStart<'_>, offset: u64) -> Result<BTreeMap<String, String>, ReportError> {
    let bad = |message: String| ReportError::Xml { offset, message };
    let mut map = BTreeMap::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|e| bad(e.to_string()))?;
        let key = attr.key.as_ref().to_string();
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| bad(e.to_string()))?;
        map.insert(key, value.into_owned());
    }
    Ok(map)
}

fn take(map: &mut BTreeMap<String, String>, key: &str) -> String {
    map.remove(key).unwrap_or_default()
}

pub(crate) fn read(text: &str) -> Result<ScanReport, ReportError> {
    let mut reader = Reader::from_str(text);
    let mut report = ScanReport::default();
    let mut version = String::new();
    let mut portolan = false;
    let mut seen_root = false;
    let mut closed = false;
    let mut host: Option<HostEntry> = None;
    let mut port: Option<PortEntry> = None;
    loop {
        let offset = reader.buffer_position();
        let event = reader.read_event().map_err(|e| ReportError::Xml {
            offset: reader.error_position(),
            message: e.to_string(),
        })?;
        let (e, is_empty) = match event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(e) => {
                match e.name().as_ref() {
                    "port" => {
                        if let (Some(h), Some(p)) = (host.as_mut(), port.take()) {
                            h.ports.push(p);
                        }
                    }
                    "host" => {
                        if let Some(mut h) = host.take() {
                            h.ports.sort_by_key(|p| p.port);
                            report.hosts.push(h);
                        }
                    }
                    "nmaprun" => closed = true,
                    _ => {}
                }
                continue;
            }
            Event::Comment(c) => {
                portolan |= c.trim_start().starts_with("Portolan ");
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let name = e.name().as_ref().to_string();
        if !seen_root {
            if name != "nmaprun" {
                return Err(ReportError::NotNmapXml(name));
            }
            seen_root = true;
        }
        let mut a = attributes(&e, offset)?;
        match name.as_str() {
            "nmaprun" => {
                version = take(&mut a, "version");
                report.args = take(&mut a, "args");
                report.start = take(&mut a, "startstr");
            }
            "scaninfo" if report.scan_type.is_empty() => report.scan_type = take(&mut a, "type"),
            "host" => {
                let status = if a.get("timedout").is_some_and(|v| v == "true") {
                    "timed-out"
                } else if a.get("comment").is_some_and(|v| v.contains("interrupted")) {
                    "interrupted"
                } else {
                    ""
                };
                host = Some(HostEntry {
                    status: status.to_string(),
                    ..HostEntry::default()
                });
                if is_empty {
                    host = None;
                }
            }
            "status" => {
                if let Some(h) = host.as_mut().filter(|h| h.status.is_empty()) {
                    h.status = take(&mut a, "state");
                }
            }
            "address" => {
                let mac = a.get("addrtype").is_some_and(|t| t == "mac");
                if let Some(h) = host.as_mut().filter(|h| h.addr.is_empty() && !mac) {
                    h.addr = take(&mut a, "addr");
                }
            }
            "hostname" => {
                if let Some(h) = host.as_mut() {
                    h.names.push(take(&mut a, "name"));
                }
            }
            "extraports" => {
                if let Some(h) = host.as_mut() {
                    let count = a.get("count").and_then(|c| c.parse().ok()).unwrap_or(0);
                    *h.extra.entry(take(&mut a, "state")).or_default() += count;
                }
            }
            "port" => {
                port = Some(PortEntry {
                    port: a.get("portid").and_then(|p| p.parse().ok()).unwrap_or(0),
                    proto: take(&mut a, "protocol"),
                    state: String::new(),
                    reason: String::new(),
                    service: String::new(),
                    version: String::new(),
                });
            }
            "state" => {
                if let Some(p) = port.as_mut() {
                    p.state = take(&mut a, "state");
                    p.reason = take(&mut a, "reason");
                }
            }
            "service" => {
                if let Some(p) = port.as_mut() {
                    p.service = take(&mut a, "name");
                    let words: Vec<String> = ["product", "version", "extrainfo"]
                        .iter()
                        .map(|k| take(&mut a, k))
                        .filter(|w| !w.is_empty())
                        .collect();
                    p.version = words.join(" ");
                }
            }
            "finished" => {
                report.elapsed_s = a.get("elapsed").and_then(|e| e.parse().ok());
                report.incomplete |= a.get("exit").is_some_and(|e| e == "error");
            }
            _ => {}
        }
    }
    if !seen_root {
        return Err(ReportError::NotNmapXml(String::new()));
    }
    report.incomplete |= !closed;
    let scanner = if portolan { "Portolan" } else { "Nmap" };
    report.scanner = format!("{scanner} {version}").trim_end().to_string();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<!-- Portolan 0.1.0 scan initiated Tue Nov 24 18:45:19 2026 as: portolan -->
<nmaprun scanner="nmap" args="portolan -oX x &amp; y -&#45;reason" start="1" startstr="Tue Nov 24 18:45:19 2026" version="0.1.0" xmloutputversion="1.05">
<scaninfo type="syn" protocol="tcp" numservices="3" services="1-3"/>
<host starttime="1" endtime="2"><status state="up" reason="user-set" reason_ttl="0"/>
<address addr="198.18.0.2" addrtype="ipv4"/>
<address addr="02:00:00:00:00:01" addrtype="mac"/>
<hostnames><hostname name="lab&lt;1&gt;" type="user"/></hostnames>
<ports><extraports state="closed" count="98"><extrareasons reason="reset" count="98"/></extraports>
<port protocol="tcp" portid="80"><state state="open" reason="syn-ack" reason_ttl="64"/><service name="http" product="nginx" version="1.2" method="probed" conf="10"/></port>
<port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="64"/><service name="ssh" method="table" conf="3"/></port>
</ports>
<times srtt="1" rttvar="1" to="1"/>
</host>
"#;

    #[test]
    fn hosts_ports_and_services_are_read() {
        let text = format!(
            "{SAMPLE}<runstats><finished time=\"2\" elapsed=\"1.50\" exit=\"success\"/><hosts up=\"1\" down=\"0\" total=\"1\"/></runstats></nmaprun>\n"
        );
        let r = read(&text).unwrap();
        assert_eq!(r.scanner, "Portolan 0.1.0");
        assert_eq!(r.args, "portolan -oX x & y --reason");
        assert_eq!(r.scan_type, "syn");
        assert_eq!(r.elapsed_s, Some(1.5));
        assert!(!r.incomplete);
        let h = &r.hosts[0];
        assert_eq!(h.addr, "198.18.0.2");
        assert_eq!(h.names, ["lab<1>"]);
        assert_eq!(h.status, "up");
        assert_eq!(h.extra["closed"], 98);
        assert_eq!(h.ports[0].port, 22);
        assert_eq!(h.ports[1].service, "http");
        assert_eq!(h.ports[1].version, "nginx 1.2");
        assert_eq!(h.unlisted_state(), Some("closed"));
        assert_eq!(r.state_counts()["open"], 2);
    }

    #[test]
    fn a_cut_file_keeps_its_finished_hosts() {
        let r = read(SAMPLE).unwrap();
        assert!(r.incomplete);
        assert_eq!(r.hosts.len(), 1);
        let half = &SAMPLE[..SAMPLE.find("<port protocol=\"tcp\" portid=\"22\"").unwrap()];
        let r = read(half).unwrap();
        assert!(r.hosts.is_empty() && r.incomplete);
    }

    #[test]
    fn broken_xml_is_an_error_not_a_panic() {
        for text in [
            "<nmaprun><host></port>",
            "<nmaprun a=>",
            "<nmaprun><host a=\"&bogus;\">",
        ] {
            assert!(
                matches!(read(text), Err(ReportError::Xml { .. })),
                "{text}: {:?}",
                read(text)
            );
        }
    }
}
