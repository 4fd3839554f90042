//! nmap XML (nmap.dtd, as Portolan's `-oX` and nmap write it) into the
//! result model's [`ScanResults`]: hosts with their status and reason,
//! addresses and names, listed ports with state, reason, TTL and service
//! (with CPEs and TLS tunnels), ports only counted (`<extraports>`),
//! times, OS matches and scripts' output; the run's scanner, version,
//! command line, scan types and end. Elements the model has no room for
//! are skipped; a host whose address does not parse is skipped; a file
//! that stops early (a killed scan) yields the hosts it finished and is
//! marked interrupted.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portolan_model::{
    CountedPorts, HostReport, HostStatus, HostTimes, OsMatch, PortOutcome, PortService, PortState,
    Reason, ScanResults, ScanType, ScriptOutput, ServiceInfo, ServiceMethod,
};
use portolan_targets::{Protocol, Target};
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use crate::ReportError;

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

fn number<T: std::str::FromStr>(map: &BTreeMap<String, String>, key: &str) -> Option<T> {
    map.get(key).and_then(|v| v.parse().ok())
}

/// The last second of year 9999: a time past it is no scan's (and would
/// overflow `SystemTime` arithmetic or an RFC 3339 year).
const LAST_SECOND: u64 = 253_402_300_799;

fn unix_time(map: &BTreeMap<String, String>, key: &str) -> Option<SystemTime> {
    number::<u64>(map, key)
        .filter(|&s| s <= LAST_SECOND)
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

fn optional(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn protocol(name: &str) -> Option<Protocol> {
    Protocol::ALL.into_iter().find(|p| p.as_str() == name)
}

/// nmap's `services` list (`1-3,80,443`) as ports; at most 65,536.
fn service_list(list: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    for part in list.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(lo), Ok(hi)) = (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
            ports.extend(lo..=hi.max(lo));
        }
        if ports.len() > 65_536 {
            break;
        }
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// A host being read: its report, and whether an address was found.
struct HostDraft {
    report: HostReport,
    addr: Option<IpAddr>,
    status_known: bool,
}

/// A port being read, with its service when one was listed.
struct PortDraft {
    outcome: Option<PortOutcome>,
    service: Option<ServiceInfo>,
}

/// Reads nmap XML; `elapsed` gets the run's elapsed seconds when the file
/// has them.
pub(crate) fn read(text: &str, elapsed: &mut Option<f64>) -> Result<ScanResults, ReportError> {
    let mut reader = Reader::from_str(text);
    let mut results = ScanResults::empty("nmap");
    let mut seen_root = false;
    let mut closed = false;
    let mut host: Option<HostDraft> = None;
    let mut port: Option<PortDraft> = None;
    // Text of the element being read, for <cpe>.
    let mut in_cpe = false;
    loop {
        let offset = reader.buffer_position();
        let event = reader.read_event().map_err(|e| ReportError::Xml {
            offset: reader.error_position(),
            message: e.to_string(),
        })?;
        let (e, is_empty) = match event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::Text(t) if in_cpe => {
                let cpe = t.xml_content(XmlVersion::Implicit1_0).trim().to_string();
                if let Some(service) = port.as_mut().and_then(|p| p.service.as_mut()) {
                    service.cpe.push(cpe);
                } else if let Some(os) = host.as_mut().and_then(|h| h.report.extra.os.last_mut()) {
                    os.cpe.push(cpe);
                }
                continue;
            }
            Event::End(e) => {
                match e.name().as_ref() {
                    "cpe" => in_cpe = false,
                    "port" => {
                        if let (Some(h), Some(p)) = (host.as_mut(), port.take())
                            && let Some(outcome) = p.outcome
                        {
                            if let Some(info) = p.service {
                                h.report.services.push(PortService {
                                    port: outcome.port,
                                    proto: outcome.proto,
                                    info,
                                });
                            }
                            h.report.ports.push(outcome);
                        }
                    }
                    "host" => {
                        if let Some(h) = host.take()
                            && let Some(addr) = h.addr
                        {
                            let mut report = h.report;
                            report.target.addr = addr;
                            report.ports.sort_by_key(|p| (p.proto, p.port));
                            results.hosts.push(report);
                        }
                    }
                    "nmaprun" => closed = true,
                    _ => {}
                }
                continue;
            }
            Event::Comment(c) => {
                if c.trim_start().starts_with("Portolan ") {
                    results.scanner = "portolan".into();
                }
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
                results.version = take(&mut a, "version");
                results.args = take(&mut a, "args");
                results.start = unix_time(&a, "start").unwrap_or(UNIX_EPOCH);
            }
            "scaninfo" => {
                if let Some(proto) = protocol(&take(&mut a, "protocol")) {
                    results.scans.push(ScanType {
                        name: take(&mut a, "type"),
                        proto,
                        ports: service_list(a.get("services").map_or("", String::as_str)),
                    });
                }
            }
            "host" if !is_empty => {
                let started = unix_time(&a, "starttime").unwrap_or(results.start);
                let status = if a.get("timedout").is_some_and(|v| v == "true") {
                    Some(HostStatus::TimedOut)
                } else if a.get("comment").is_some_and(|v| v.contains("interrupted")) {
                    Some(HostStatus::Interrupted)
                } else {
                    None
                };
                host = Some(HostDraft {
                    report: HostReport {
                        target: Target::from_addr(IpAddr::from([0, 0, 0, 0])),
                        status: status.unwrap_or(HostStatus::Down),
                        reason_ttl: None,
                        mac: None,
                        ports: Vec::new(),
                        times: HostTimes::default(),
                        started,
                        finished: unix_time(&a, "endtime").unwrap_or(started),
                        services: Vec::new(),
                        extra: Default::default(),
                    },
                    addr: None,
                    status_known: status.is_some(),
                });
            }
            "status" => {
                if let Some(h) = host.as_mut().filter(|h| !h.status_known) {
                    let reason = Reason::from_nmap_or_unknown(&take(&mut a, "reason"));
                    h.report.status = match a.get("state").map(String::as_str) {
                        Some("up") => HostStatus::Up(reason),
                        _ => HostStatus::Down,
                    };
                    h.report.reason_ttl = number(&a, "reason_ttl").filter(|t| *t != 0);
                    h.status_known = true;
                }
            }
            "address" => {
                if let Some(h) = host.as_mut() {
                    let addr = take(&mut a, "addr");
                    match a.get("addrtype").map(String::as_str) {
                        Some("mac") => h.report.mac = portolan_model::parse_mac(&addr),
                        _ if h.addr.is_none() => h.addr = addr.parse().ok(),
                        _ => {}
                    }
                }
            }
            "hostname" => {
                if let Some(h) = host.as_mut() {
                    let name: std::sync::Arc<str> = take(&mut a, "name").into();
                    match a.get("type").map(String::as_str) {
                        Some("user") => h.report.target.name = Some(name),
                        _ => h.report.target.rdns = Some(name),
                    }
                }
            }
            "extraports" => {
                if let (Some(h), Some(state)) =
                    (host.as_mut(), PortState::from_nmap(&take(&mut a, "state")))
                {
                    h.report.extra.counted.push(CountedPorts {
                        state,
                        count: number(&a, "count").unwrap_or(0),
                    });
                }
            }
            "port" => {
                let outcome = protocol(&take(&mut a, "protocol"))
                    .zip(number::<u16>(&a, "portid"))
                    .map(|(proto, port)| PortOutcome {
                        port,
                        proto,
                        state: PortState::Filtered,
                        reason: Reason::UnknownResponse,
                        reason_ttl: None,
                        tries: 0,
                    });
                port = Some(PortDraft {
                    outcome,
                    service: None,
                });
            }
            "state" => {
                if let Some(outcome) = port.as_mut().and_then(|p| p.outcome.as_mut()) {
                    match PortState::from_nmap(&take(&mut a, "state")) {
                        Some(state) => outcome.state = state,
                        // A state the model does not know: the port is
                        // skipped.
                        None => port = None,
                    }
                    if let Some(outcome) = port.as_mut().and_then(|p| p.outcome.as_mut()) {
                        outcome.reason = Reason::from_nmap_or_unknown(&take(&mut a, "reason"));
                        outcome.reason_ttl = number(&a, "reason_ttl").filter(|t| *t != 0);
                    }
                }
            }
            "service" => {
                if let Some(p) = port.as_mut() {
                    p.service = Some(ServiceInfo {
                        name: take(&mut a, "name"),
                        product: optional(take(&mut a, "product")),
                        version: optional(take(&mut a, "version")),
                        extrainfo: optional(take(&mut a, "extrainfo")),
                        hostname: optional(take(&mut a, "hostname")),
                        ostype: optional(take(&mut a, "ostype")),
                        devicetype: optional(take(&mut a, "devicetype")),
                        cpe: Vec::new(),
                        method: ServiceMethod::from_nmap(&take(&mut a, "method"))
                            .unwrap_or_default(),
                        conf: number(&a, "conf").unwrap_or(0),
                        ssl: a.get("tunnel").is_some_and(|t| t == "ssl"),
                        tls: None,
                        banner: Vec::new(),
                    });
                }
            }
            "cpe" if !is_empty => in_cpe = true,
            "osmatch" => {
                if let Some(h) = host.as_mut() {
                    h.report.extra.os.push(OsMatch {
                        name: take(&mut a, "name"),
                        accuracy: number(&a, "accuracy").unwrap_or(0),
                        line: number(&a, "line").unwrap_or(0),
                        ..OsMatch::default()
                    });
                }
            }
            "script" => {
                if let Some(h) = host.as_mut() {
                    let on = port
                        .as_ref()
                        .and_then(|p| p.outcome.as_ref())
                        .map(|o| (o.proto, o.port));
                    h.report.extra.scripts.push(ScriptOutput {
                        id: take(&mut a, "id"),
                        port: on,
                        output: take(&mut a, "output"),
                    });
                }
            }
            "times" => {
                if let Some(h) = host.as_mut() {
                    let micros = |k: &str| number::<u64>(&a, k).map(Duration::from_micros);
                    h.report.times = HostTimes {
                        srtt: micros("srtt"),
                        rttvar: micros("rttvar"),
                        timeout: micros("to").unwrap_or_default(),
                        paced: None,
                    };
                }
            }
            "finished" => {
                results.end = unix_time(&a, "time");
                *elapsed = number(&a, "elapsed");
                results.interrupted |= a.get("exit").is_some_and(|e| e == "error");
            }
            _ => {}
        }
    }
    if !seen_root {
        return Err(ReportError::NotNmapXml(String::new()));
    }
    results.interrupted |= !closed;
    Ok(results)
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

    /// Found by the `nmap_xml` fuzz target: a host's `endtime` of 76
    /// digits (still a u64 once cut by the fuzzer) overflowed `SystemTime`.
    #[test]
    fn times_past_year_9999_are_ignored_not_a_panic() {
        for endtime in ["18446744073709551615", "253402300800", "99999999999999"] {
            let text = SAMPLE.replace("endtime=\"2\"", &format!("endtime=\"{endtime}\""));
            let text = text.replace(" start=\"1\"", &format!(" start=\"{endtime}\""));
            let r = crate::read_results(&text).unwrap();
            assert_eq!(r.results.hosts.len(), 1, "{endtime}");
        }
        let text = SAMPLE.replace("endtime=\"2\"", "endtime=\"253402300799\"");
        assert!(crate::read_results(&text).is_ok());
    }

    #[test]
    fn hosts_ports_and_services_are_read() {
        let text = format!(
            "{SAMPLE}<runstats><finished time=\"2\" elapsed=\"1.50\" exit=\"success\"/><hosts up=\"1\" down=\"0\" total=\"1\"/></runstats></nmaprun>\n"
        );
        let r = crate::read(&text).unwrap();
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
        let r = crate::read(SAMPLE).unwrap();
        assert!(r.incomplete);
        assert_eq!(r.hosts.len(), 1);
        let half = &SAMPLE[..SAMPLE.find("<port protocol=\"tcp\" portid=\"22\"").unwrap()];
        let r = crate::read(half).unwrap();
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
                matches!(crate::read(text), Err(ReportError::Xml { .. })),
                "{text}: {:?}",
                crate::read(text)
            );
        }
    }
}
