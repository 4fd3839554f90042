//! Portolan JSON lines (`-oJ`, schema 1 to 3) into a [`ScanReport`].
//! Every port comes as its own line (since schema 3, with `-sV`, carrying
//! the product, version and extra information found); as in normal output, a state other
//! than open with more than 25 ports on a host is counted instead of
//! listed. Line types this reader does not know are skipped.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{HostEntry, PortEntry, RatePoint, ReportError, ScanReport};

/// A state with more ports than this on a host is counted, not listed.
const LIST_AT_MOST: usize = 25;

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

pub(crate) fn read(input: &str) -> Result<ScanReport, ReportError> {
    let mut report = ScanReport {
        incomplete: true,
        ..ScanReport::default()
    };
    let mut ports: BTreeMap<String, Vec<PortEntry>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut hosts: BTreeMap<String, HostEntry> = BTreeMap::new();
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
        let addr = text(&v, "addr");
        if !addr.is_empty() && !order.contains(&addr) {
            order.push(addr.clone());
        }
        match v["type"].as_str() {
            Some("begin") => {
                report.scanner = format!("Portolan {}", text(&v, "version"));
                report.args = v["args"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                report.start = text(&v, "start");
                report.scan_type = text(&v, "scan_type");
            }
            Some("port") => {
                let port = v["port"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| bad("a port line without a port number".into()))?;
                ports.entry(addr).or_default().push(PortEntry {
                    port,
                    proto: text(&v, "proto"),
                    state: text(&v, "state"),
                    reason: text(&v, "reason"),
                    service: text(&v, "service"),
                    version: ["product", "version", "extrainfo"]
                        .iter()
                        .map(|k| text(&v, k))
                        .filter(|w| !w.is_empty())
                        .collect::<Vec<_>>()
                        .join(" "),
                });
            }
            Some("host") => {
                let mut names = Vec::new();
                if let Some(name) = v["name"].as_str() {
                    names.push(name.to_string());
                }
                let counted = v["ports"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                            .collect()
                    })
                    .unwrap_or_default();
                hosts.insert(
                    addr.clone(),
                    HostEntry {
                        addr,
                        names,
                        status: text(&v, "status"),
                        ports: Vec::new(),
                        extra: counted,
                    },
                );
            }
            Some("rate") => report.rates.push(RatePoint {
                t_s: v["t_s"].as_f64().unwrap_or(0.0),
                probes_sent: v["probes_sent"].as_u64().unwrap_or(0),
                replies: v["replies"].as_u64().unwrap_or(0),
            }),
            Some("summary") => {
                report.elapsed_s = v["elapsed_s"].as_f64();
                report.incomplete = v["interrupted"].as_bool().unwrap_or(false);
            }
            _ => {}
        }
    }
    for addr in order {
        let mut host = hosts.remove(&addr).unwrap_or_else(|| HostEntry {
            addr: addr.clone(),
            status: "unfinished".into(),
            ..HostEntry::default()
        });
        let mut listed = ports.remove(&addr).unwrap_or_default();
        listed.sort_by_key(|p| p.port);
        // The host line's counts cover every port; list the ports of the
        // uncrowded states and open ones, count the rest.
        let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
        for p in &listed {
            *by_state.entry(p.state.clone()).or_default() += 1;
        }
        let crowded = |state: &str| state != "open" && by_state[state] > LIST_AT_MOST;
        let counted = std::mem::take(&mut host.extra);
        host.extra = by_state
            .iter()
            .filter(|(s, _)| crowded(s))
            .map(|(s, n)| (s.clone(), *n as u64))
            .collect();
        // With --open, only open ports have lines: keep the host's counts of
        // the others.
        for (state, n) in counted {
            if n > 0 && !by_state.contains_key(&state) {
                host.extra.insert(state, n);
            }
        }
        host.ports = listed.into_iter().filter(|p| !crowded(&p.state)).collect();
        report.hosts.push(host);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let r = read(&text).unwrap();
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
        let r = read(&text).unwrap();
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
        let r = read(text).unwrap();
        let p = &r.hosts[0].ports[0];
        assert_eq!(p.service, "ssh");
        assert_eq!(p.version, "OpenSSH 9.2p1 protocol 2.0");
    }

    #[test]
    fn a_line_cut_by_a_kill_is_skipped() {
        let text = "{\"type\":\"host\",\"addr\":\"::1\",\"status\":\"up\"}\n{\"type\":\"po";
        let r = read(text).unwrap();
        assert!(r.incomplete);
        assert_eq!(r.hosts.len(), 1);
        assert!(
            read(&format!("{text}\n")).is_err(),
            "a whole bad line is an error"
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let e = read("{\"type\":\"begin\"}\n[1]\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: not a JSON object");
        let e = read("{\"type\":\"port\",\"port\":70000}").unwrap_err();
        assert!(e.to_string().starts_with("line 1: a port line"), "{e}");
    }
}
