//! Portolan JSON lines (`-oJ`, schema 1 to 3) into the result model's
//! [`ScanResults`], with the `rate` samples beside it. Every port comes
//! as its own line (since schema 3, with `-sV`, carrying the service
//! found); a host line's counts of states that have no port lines (with
//! `--open`) are kept as counted ports. Line types and fields this reader
//! does not know are skipped; a line cut short by a killed scan (the last
//! one, without its newline) is skipped and the scan marked interrupted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use portolan_model::time::parse_rfc3339;
use portolan_model::{
    CountedPorts, HostReport, HostStatus, HostTimes, PortOutcome, PortService, PortState, Reason,
    ScanResults, ScanType, ServiceInfo, ServiceMethod,
};
use portolan_targets::{Protocol, Target};
use serde_json::Value;

use crate::{RatePoint, ReportError};

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

fn optional(v: &Value, key: &str) -> Option<String> {
    v[key].as_str().filter(|s| !s.is_empty()).map(String::from)
}

fn micros(v: &Value, key: &str) -> Option<Duration> {
    v[key].as_u64().map(Duration::from_micros)
}

fn protocol(v: &Value) -> Protocol {
    let name = v["proto"].as_str().unwrap_or("tcp");
    Protocol::ALL
        .into_iter()
        .find(|p| p.as_str() == name)
        .unwrap_or(Protocol::Tcp)
}

/// A port line's or a host line's `services` entry's service fields.
fn service(v: &Value, name_key: &str) -> ServiceInfo {
    ServiceInfo {
        name: text(v, name_key),
        product: optional(v, "product"),
        version: optional(v, "version"),
        extrainfo: optional(v, "extrainfo"),
        hostname: optional(v, "hostname"),
        ostype: optional(v, "ostype"),
        devicetype: optional(v, "devicetype"),
        cpe: v["cpe"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        method: v["method"]
            .as_str()
            .and_then(ServiceMethod::from_nmap)
            .unwrap_or_default(),
        conf: v["conf"]
            .as_u64()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(3),
        ssl: v["tunnel"].as_str() == Some("ssl"),
        tls: None,
        banner: Vec::new(),
    }
}

/// What a host collects before its host line.
#[derive(Default)]
struct Pending {
    ports: Vec<PortOutcome>,
    services: Vec<PortService>,
}

/// Reads JSON lines; `rates` and `elapsed` get the `rate` samples and the
/// summary's elapsed seconds.
pub(crate) fn read(
    input: &str,
    rates: &mut Vec<RatePoint>,
    elapsed: &mut Option<f64>,
) -> Result<ScanResults, ReportError> {
    let mut results = ScanResults {
        // Until a summary line says otherwise.
        interrupted: true,
        ..ScanResults::empty("portolan")
    };
    let mut pending: HashMap<IpAddr, Pending> = HashMap::new();
    // Addresses in the order they first appear, for hosts never finished.
    let mut order: Vec<IpAddr> = Vec::new();
    // A scan killed while writing leaves its last line cut short: skip it.
    let cut = (!input.ends_with('\n')).then(|| input.lines().count());
    for (i, line) in input.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| ReportError::Json {
            line: i + 1,
            message,
        };
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if cut == Some(i + 1) => break,
            Err(e) => return Err(bad(e.to_string())),
        };
        if !v.is_object() {
            return Err(bad("not a JSON object".into()));
        }
        let addr: Option<IpAddr> = v["addr"].as_str().and_then(|a| a.parse().ok());
        if let Some(addr) = addr
            && !pending.contains_key(&addr)
            && !results.hosts.iter().any(|h| h.target.addr == addr)
        {
            order.push(addr);
            pending.insert(addr, Pending::default());
        }
        match v["type"].as_str() {
            Some("begin") => {
                results.version = text(&v, "version");
                if let Some(id) = v["scan_id"].as_str().and_then(|s| s.parse().ok()) {
                    results.id = id;
                }
                results.args = v["args"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                results.start = v["start"]
                    .as_str()
                    .and_then(parse_rfc3339)
                    .unwrap_or(UNIX_EPOCH);
                results.scans.push(ScanType {
                    name: text(&v, "scan_type"),
                    proto: protocol(&v),
                    ports: Vec::new(),
                });
            }
            Some("port") => {
                let port = v["port"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| bad("a port line without a port number".into()))?;
                let (Some(addr), Some(state)) =
                    (addr, v["state"].as_str().and_then(PortState::from_nmap))
                else {
                    continue;
                };
                let proto = protocol(&v);
                let host = pending.entry(addr).or_default();
                host.ports.push(PortOutcome {
                    port,
                    proto,
                    state,
                    reason: Reason::from_nmap_or_unknown(v["reason"].as_str().unwrap_or("")),
                    reason_ttl: v["reason_ttl"].as_u64().and_then(|t| u8::try_from(t).ok()),
                    tries: v["tries"]
                        .as_u64()
                        .and_then(|t| u8::try_from(t).ok())
                        .unwrap_or(0),
                });
                host.services.push(PortService {
                    port,
                    proto,
                    info: service(&v, "service"),
                });
            }
            Some("host") => {
                let Some(addr) = addr else {
                    continue;
                };
                let Pending {
                    mut ports,
                    mut services,
                } = pending.remove(&addr).unwrap_or_default();
                ports.sort_by_key(|p| (p.proto, p.port));
                // The host line's `services` (a -sV run) say it best.
                if let Some(list) = v["services"].as_array() {
                    for s in list {
                        let (Some(port), proto) = (
                            s["port"].as_u64().and_then(|p| u16::try_from(p).ok()),
                            protocol(s),
                        ) else {
                            continue;
                        };
                        services.retain(|x| (x.proto, x.port) != (proto, port));
                        services.push(PortService {
                            port,
                            proto,
                            info: service(s, "name"),
                        });
                    }
                }
                let mut listed = [0u64; 6];
                for p in &ports {
                    listed[p.state.index()] += 1;
                }
                // With --open, only open ports have lines: keep the host's
                // counts of the others.
                let counted = v["ports"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, n)| Some((PortState::from_nmap(k)?, n.as_u64()?)))
                            .filter(|(s, n)| *n > listed[s.index()])
                            .map(|(state, n)| CountedPorts {
                                state,
                                count: n - listed[state.index()],
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let reason = Reason::from_nmap_or_unknown(v["reason"].as_str().unwrap_or(""));
                let status = match v["status"].as_str() {
                    Some("up") => HostStatus::Up(reason),
                    Some("timed-out") => HostStatus::TimedOut,
                    Some("interrupted") => HostStatus::Interrupted,
                    _ => HostStatus::Down,
                };
                let mut target = Target::from_addr(addr);
                target.rdns = optional(&v, "rdns").map(Into::into);
                if let Some(name) = optional(&v, "name")
                    && target.rdns.as_deref() != Some(name.as_str())
                {
                    target.name = Some(name.into());
                }
                let mut report = HostReport {
                    target,
                    status,
                    reason_ttl: v["reason_ttl"].as_u64().and_then(|t| u8::try_from(t).ok()),
                    mac: v["mac"].as_str().and_then(portolan_model::parse_mac),
                    ports,
                    times: HostTimes {
                        srtt: micros(&v, "srtt_us"),
                        rttvar: micros(&v, "rttvar_us"),
                        timeout: micros(&v, "timeout_us").unwrap_or_default(),
                        paced: micros(&v, "paced_us"),
                    },
                    started: results.start,
                    finished: results.start,
                    services,
                    extra: Default::default(),
                };
                report.extra.counted = counted;
                results.hosts.push(report);
            }
            Some("rate") => rates.push(RatePoint {
                t_s: v["t_s"].as_f64().unwrap_or(0.0),
                probes_sent: v["probes_sent"].as_u64().unwrap_or(0),
                replies: v["replies"].as_u64().unwrap_or(0),
            }),
            Some("summary") => {
                *elapsed = v["elapsed_s"].as_f64();
                results.interrupted = v["interrupted"].as_bool().unwrap_or(false);
                results.end = v["end"].as_str().and_then(parse_rfc3339);
            }
            _ => {}
        }
    }
    // Hosts with port lines but no host line (the scan was cut short).
    for &addr in &order {
        if let Some(Pending {
            mut ports,
            services,
        }) = pending.remove(&addr)
        {
            ports.sort_by_key(|p| (p.proto, p.port));
            results.hosts.push(HostReport {
                target: Target::from_addr(addr),
                status: HostStatus::Interrupted,
                reason_ttl: None,
                mac: None,
                ports,
                times: HostTimes::default(),
                started: results.start,
                finished: results.start,
                services,
                extra: Default::default(),
            });
        }
    }
    // Hosts in the order they first appeared.
    let rank: HashMap<IpAddr, usize> = order.iter().enumerate().map(|(i, a)| (*a, i)).collect();
    results
        .hosts
        .sort_by_key(|h| rank.get(&h.target.addr).copied().unwrap_or(usize::MAX));
    Ok(results)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_rates_and_hosts_are_read() {
        let mut text = String::from(
            "{\"type\":\"begin\",\"schema\":2,\"version\":\"0.1.0\",\"args\":[\"portolan\",\"-oJ\",\"-\"],\"start\":\"2026-11-24T18:45:19Z\",\"scan_type\":\"connect\",\"proto\":\"tcp\",\"ports\":32}\n",
        );
        for port in 1..=30 {
            text.push_str(&format!("{{\"type\":\"port\",\"addr\":\"::1\",\"proto\":\"tcp\",\"port\":{port},\"state\":\"closed\",\"reason\":\"conn-refused\",\"service\":\"x\",\"tries\":1}}\n"));
        }
        text.push_str("{\"type\":\"port\",\"addr\":\"::1\",\"proto\":\"tcp\",\"port\":80,\"state\":\"open\",\"reason\":\"syn-ack\",\"service\":\"http\",\"tries\":1}\n");
        text.push_str(
            "{\"type\":\"rate\",\"t_s\":1.0,\"probes_sent\":20,\"replies\":18,\"ports_done\":18}\n",
        );
        text.push_str("{\"type\":\"future\",\"x\":1}\n");
        text.push_str("{\"type\":\"host\",\"addr\":\"::1\",\"status\":\"up\",\"timeout_us\":1,\"ports\":{\"closed\":30,\"open\":1,\"filtered\":1}}\n");
        let r = crate::read(&text).unwrap();
        assert_eq!(r.scanner, "Portolan 0.1.0");
        assert_eq!(r.args, "portolan -oJ -");
        assert!(r.incomplete, "no summary line");
        assert_eq!(r.rates.len(), 1);
        let h = &r.hosts[0];
        assert_eq!(h.addr, "::1");
        assert_eq!(h.ports.len(), 1);
        assert_eq!(h.ports[0].service, "http");
        assert_eq!(h.extra["closed"], 30);
        assert_eq!(h.extra["filtered"], 1, "counted by the host line only");
        let text =
            format!("{text}{{\"type\":\"summary\",\"elapsed_s\":2.5,\"interrupted\":false}}\n");
        let r = crate::read(&text).unwrap();
        assert!(!r.incomplete);
        assert_eq!(r.elapsed_s, Some(2.5));
    }

    /// Schema 3 (issue 6): a -sV run's port lines carry the service.
    #[test]
    fn port_lines_of_a_version_scan_give_the_version_column() {
        let text = "{\"type\":\"port\",\"addr\":\"::1\",\"proto\":\"tcp\",\"port\":22,\
            \"state\":\"open\",\"reason\":\"syn-ack\",\"service\":\"ssh\",\"tries\":1,\
            \"product\":\"OpenSSH\",\"version\":\"9.2p1\",\"extrainfo\":\"protocol 2.0\",\
            \"method\":\"probed\",\"conf\":10}\n\
            {\"type\":\"host\",\"addr\":\"::1\",\"status\":\"up\",\"timeout_us\":1,\"ports\":{\"open\":1}}\n";
        let r = crate::read(text).unwrap();
        let p = &r.hosts[0].ports[0];
        assert_eq!(p.service, "ssh");
        assert_eq!(p.version, "OpenSSH 9.2p1 protocol 2.0");
    }

    #[test]
    fn a_line_cut_by_a_kill_is_skipped() {
        let text = "{\"type\":\"host\",\"addr\":\"::1\",\"status\":\"up\"}\n{\"type\":\"po";
        let r = crate::read(text).unwrap();
        assert!(r.incomplete);
        assert_eq!(r.hosts.len(), 1);
        assert!(
            crate::read(&format!("{text}\n")).is_err(),
            "a whole bad line is an error"
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let e = crate::read("{\"type\":\"begin\"}\n[1]\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: not a JSON object");
        let e = crate::read("{\"type\":\"port\",\"port\":70000}").unwrap_err();
        assert!(e.to_string().starts_with("line 1: a port line"), "{e}");
    }
}
