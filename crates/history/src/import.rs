//! Files brought into a history so that it starts before Portolan did:
//! nmap XML (nmap's own scans too) and Portolan JSON lines, read by
//! `portolan-report` into the result model, and masscan's `-oL` list and
//! `-oJ` JSON, read here.
//!
//! masscan files hold only what answered: every listed port becomes an
//! open (or closed) port with masscan's reason, each address a host that
//! was up; `banner` lines become the port's service name and banner.
//! Nothing here panics on any input; errors name the line or record.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portolan_model::{
    HostReport, HostStatus, PortOutcome, PortService, PortState, Reason, ScanResults, ScanType,
    ServiceInfo, ServiceMethod,
};
use portolan_targets::{Protocol, Target};

use crate::ImportError;
use crate::store::proto_named;

/// Reads a results file of any kind this module knows.
pub fn read_any(text: &str) -> Result<ScanResults, ImportError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with("#masscan") || trimmed.starts_with("open ") {
        return read_masscan_list(text);
    }
    if trimmed.starts_with('[') || (trimmed.starts_with('{') && looks_like_masscan(trimmed)) {
        return read_masscan_json(text);
    }
    Ok(portolan_report::read_results(text)?.results)
}

fn looks_like_masscan(text: &str) -> bool {
    let first = text.lines().next().unwrap_or("");
    first.contains("\"ip\"") && !first.contains("\"type\"")
}

/// One port masscan listed.
struct Found {
    addr: IpAddr,
    proto: Protocol,
    port: u16,
    state: PortState,
    reason: Reason,
    ttl: Option<u8>,
    at: u64,
}

/// Hosts and ports gathered from a masscan file.
#[derive(Default)]
struct Gathered {
    hosts: BTreeMap<IpAddr, HostReport>,
    first: Option<u64>,
    last: Option<u64>,
    ports: BTreeMap<Protocol, Vec<u16>>,
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl Gathered {
    fn host(&mut self, addr: IpAddr, secs: u64, reason: Reason) -> &mut HostReport {
        self.first = Some(self.first.map_or(secs, |f| f.min(secs)));
        self.last = Some(self.last.map_or(secs, |l| l.max(secs)));
        self.hosts.entry(addr).or_insert_with(|| HostReport {
            target: Target::from_addr(addr),
            status: HostStatus::Up(reason),
            reason_ttl: None,
            mac: None,
            ports: Vec::new(),
            times: Default::default(),
            started: at(secs),
            finished: at(secs),
            services: Vec::new(),
            extra: Default::default(),
        })
    }

    fn port(&mut self, f: Found) {
        let host = self.host(f.addr, f.at, f.reason);
        host.finished = host.finished.max(at(f.at));
        if let Some(p) = host
            .ports
            .iter_mut()
            .find(|p| p.proto == f.proto && p.port == f.port)
        {
            p.state = f.state;
            p.reason = f.reason;
        } else {
            host.ports.push(PortOutcome {
                port: f.port,
                proto: f.proto,
                state: f.state,
                reason: f.reason,
                reason_ttl: f.ttl,
                tries: 0,
            });
        }
        self.ports.entry(f.proto).or_default().push(f.port);
    }

    fn banner(
        &mut self,
        addr: IpAddr,
        proto: Protocol,
        port: u16,
        secs: u64,
        name: &str,
        text: &str,
    ) {
        let host = self.host(addr, secs, Reason::SynAck);
        match host
            .services
            .iter_mut()
            .find(|s| s.proto == proto && s.port == port)
        {
            Some(s) => {
                s.info.banner.extend_from_slice(b"\n");
                s.info.banner.extend_from_slice(text.as_bytes());
            }
            None => host.services.push(PortService {
                port,
                proto,
                info: ServiceInfo {
                    name: name.to_string(),
                    method: ServiceMethod::Probed,
                    conf: 10,
                    banner: text.as_bytes().to_vec(),
                    ..ServiceInfo::default()
                },
            }),
        }
    }

    fn finish(self, args: &str) -> ScanResults {
        let mut results = ScanResults::empty("masscan");
        results.args = args.to_string();
        results.start = at(self.first.unwrap_or(0));
        results.end = Some(at(self.last.unwrap_or(0)));
        results.scans = self
            .ports
            .into_iter()
            .map(|(proto, mut ports)| {
                ports.sort_unstable();
                ports.dedup();
                ScanType {
                    name: if proto == Protocol::Udp { "udp" } else { "syn" }.into(),
                    proto,
                    ports,
                }
            })
            .collect();
        results.hosts = self
            .hosts
            .into_values()
            .map(|mut h| {
                h.ports.sort_by_key(|p| (p.proto, p.port));
                h.services.sort_by_key(|s| (s.proto, s.port));
                h
            })
            .collect();
        results
    }
}

fn masscan_state(text: &str) -> Option<(PortState, Reason)> {
    match text {
        "open" => Some((PortState::Open, Reason::SynAck)),
        "closed" => Some((PortState::Closed, Reason::Reset)),
        _ => None,
    }
}

/// Reads masscan's `-oL` list: `open tcp 80 198.18.0.1 1764000000`,
/// `banner tcp 80 198.18.0.1 1764000000 http Server: nginx`, `#` comments.
pub fn read_masscan_list(text: &str) -> Result<ScanResults, ImportError> {
    let mut g = Gathered::default();
    for (i, line) in text.lines().enumerate() {
        let bad = |message: &str| ImportError::MasscanList {
            line: i + 1,
            message: message.to_string(),
        };
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.splitn(7, ' ');
        let kind = words.next().unwrap_or("");
        let proto = words
            .next()
            .and_then(proto_named)
            .ok_or_else(|| bad("expected tcp, udp or sctp after the state"))?;
        let port: u16 = words
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| bad("expected a port number 0-65535"))?;
        let addr: IpAddr = words
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| bad("expected an IP address"))?;
        let secs: u64 = words
            .next()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad("expected a Unix time"))?;
        if kind == "banner" {
            let name = words.next().unwrap_or("unknown");
            let rest = words.next().unwrap_or("");
            g.banner(addr, proto, port, secs, name, rest);
            continue;
        }
        let (state, reason) =
            masscan_state(kind).ok_or_else(|| bad(&format!("unknown state {kind:?}")))?;
        g.port(Found {
            addr,
            proto,
            port,
            state,
            reason,
            ttl: None,
            at: secs,
        });
    }
    Ok(g.finish("masscan -oL"))
}

/// Reads masscan's `-oJ` JSON: an array (or a stream) of records
/// `{"ip": ..., "timestamp": ..., "ports": [{"port", "proto", "status",
/// "reason", "ttl"}]}`, with the trailing commas masscan writes.
pub fn read_masscan_json(text: &str) -> Result<ScanResults, ImportError> {
    let mut g = Gathered::default();
    let mut pos = 0;
    let mut record = 0;
    let bytes = text.as_bytes();
    loop {
        while pos < bytes.len()
            && matches!(
                bytes[pos],
                b' ' | b'\t' | b'\r' | b'\n' | b'[' | b']' | b','
            )
        {
            pos += 1;
        }
        if pos >= bytes.len() {
            break;
        }
        record += 1;
        let bad = |message: String| ImportError::MasscanJson { record, message };
        let mut stream =
            serde_json::Deserializer::from_str(&text[pos..]).into_iter::<serde_json::Value>();
        let value = match stream.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(bad(e.to_string())),
            None => break,
        };
        pos += stream.byte_offset();
        let addr: IpAddr = value["ip"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| bad("no \"ip\" address".into()))?;
        let secs = match &value["timestamp"] {
            serde_json::Value::String(s) => s.parse().ok(),
            v => v.as_u64(),
        }
        .ok_or_else(|| bad("no \"timestamp\"".into()))?;
        let ports = value["ports"]
            .as_array()
            .ok_or_else(|| bad("no \"ports\" list".into()))?;
        for p in ports {
            let proto = p["proto"]
                .as_str()
                .and_then(proto_named)
                .ok_or_else(|| bad("a port without tcp, udp or sctp".into()))?;
            let port = p["port"]
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| bad("a port number out of 0-65535".into()))?;
            if let Some(service) = p.get("service") {
                let name = service["name"].as_str().unwrap_or("unknown");
                let banner = service["banner"].as_str().unwrap_or("");
                g.banner(addr, proto, port, secs, name, banner);
                continue;
            }
            let status = p["status"].as_str().unwrap_or("open");
            let (state, mut reason) =
                masscan_state(status).ok_or_else(|| bad(format!("unknown status {status:?}")))?;
            if let Some(r) = p["reason"].as_str().and_then(Reason::from_nmap) {
                reason = r;
            }
            g.port(Found {
                addr,
                proto,
                port,
                state,
                reason,
                ttl: p["ttl"].as_u64().and_then(|t| u8::try_from(t).ok()),
                at: secs,
            });
        }
    }
    Ok(g.finish("masscan -oJ"))
}

/// nmap's (and Portolan's) options that take a separate value.
const VALUE_FLAGS: &[&str] = &[
    "-p",
    "-oN",
    "-oX",
    "-oG",
    "-oA",
    "-oJ",
    "-oS",
    "-iL",
    "-iR",
    "-e",
    "-S",
    "-g",
    "-D",
    "-sI",
    "--exclude",
    "--excludefile",
    "--top-ports",
    "--min-rate",
    "--max-rate",
    "--max-retries",
    "--host-timeout",
    "--scan-delay",
    "--max-scan-delay",
    "--min-rtt-timeout",
    "--max-rtt-timeout",
    "--initial-rtt-timeout",
    "--min-hostgroup",
    "--max-hostgroup",
    "--min-parallelism",
    "--max-parallelism",
    "--dns-servers",
    "--source-port",
    "--stats-every",
    "--version-intensity",
    "--script",
    "--script-args",
    "--datadir",
    "--scanflags",
    "--db",
    "--db-wait",
    "--on-change",
    "--policy",
    "--exclude-ports",
    "--seed",
    "--ttl",
    "--data-length",
    "--mtu",
    "--version-db",
    "--versiondb",
    "--version-timeout",
];

/// The targets a command line names: its words that are neither options
/// nor their values, in order, joined by spaces ("" when none is found).
pub fn targets_of_args(args: &str) -> String {
    let words: Vec<&str> = args.split_whitespace().skip(1).collect();
    let mut targets = Vec::new();
    let mut skip = false;
    for w in words {
        if skip {
            skip = false;
            continue;
        }
        if w == "--" {
            continue;
        }
        if w.starts_with('-') {
            skip = VALUE_FLAGS.contains(&w)
                || VALUE_FLAGS.iter().any(|f| w == f.replacen("--", "-", 1));
            continue;
        }
        targets.push(w);
    }
    targets.join(" ")
}

/// The targets to file a scan under: its command line's, else its hosts'
/// addresses.
pub fn targets_of(scan: &ScanResults) -> String {
    let from_args = targets_of_args(&scan.args);
    if !from_args.is_empty() && scan.scanner != "masscan" {
        return from_args;
    }
    let addrs: Vec<String> = scan
        .hosts
        .iter()
        .map(|h| h.target.addr.to_string())
        .collect();
    addrs.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masscan_list_reads_ports_and_banners() {
        let text = "#masscan\nopen tcp 80 198.18.0.2 1764000000\nopen tcp 22 198.18.0.2 1764000001\n\
                    banner tcp 80 198.18.0.2 1764000002 http HTTP/1.0 200 OK\nopen udp 53 198.18.0.3 1764000003\n# end\n";
        let r = read_any(text).unwrap();
        assert_eq!(r.scanner, "masscan");
        assert_eq!(r.hosts.len(), 2);
        let h = &r.hosts[0];
        assert_eq!(h.ports.iter().map(|p| p.port).collect::<Vec<_>>(), [22, 80]);
        assert_eq!(h.service(Protocol::Tcp, 80).unwrap().name, "http");
        assert_eq!(r.hosts[1].ports[0].proto, Protocol::Udp);
        assert_eq!(r.start, at(1_764_000_000));
        for (bad, line) in [
            ("open tcp 80 198.18.0.999 1\n", 1),
            ("#masscan\nopen xyz 80 198.18.0.2 1\n", 2),
            ("open tcp 70000 198.18.0.2 1\n", 1),
            ("open tcp 80 198.18.0.2\n", 1),
            ("weird tcp 80 198.18.0.2 1\n", 1),
        ] {
            match read_masscan_list(bad) {
                Err(ImportError::MasscanList { line: l, .. }) => assert_eq!(l, line, "{bad}"),
                other => panic!("{bad}: {:?}", other.map(|r| r.hosts.len())),
            }
        }
    }

    #[test]
    fn masscan_json_reads_the_trailing_commas_masscan_writes() {
        let text = "[\n{   \"ip\": \"198.18.0.2\",   \"timestamp\": \"1764000000\", \"ports\": [ {\"port\": 443, \"proto\": \"tcp\", \"status\": \"open\", \"reason\": \"syn-ack\", \"ttl\": 64} ] }\n,\n\
                    {   \"ip\": \"198.18.0.2\",   \"timestamp\": \"1764000001\", \"ports\": [ {\"port\": 22, \"proto\": \"tcp\", \"status\": \"open\", \"reason\": \"syn-ack\", \"ttl\": 64} ] }\n,\n]\n";
        let r = read_any(text).unwrap();
        assert_eq!(r.hosts.len(), 1);
        assert_eq!(r.hosts[0].ports.len(), 2);
        assert_eq!(r.hosts[0].ports[1].reason_ttl, Some(64));
        assert!(matches!(
            read_masscan_json("[{\"ip\": \"x\"}]"),
            Err(ImportError::MasscanJson { record: 1, .. })
        ));
        assert!(matches!(
            read_masscan_json(
                "[{\"ip\": \"198.18.0.2\", \"timestamp\": 1, \"ports\": []},\n{\"ip\""
            ),
            Err(ImportError::MasscanJson { record: 2, .. })
        ));
    }

    /// A file cut at any byte reads, or fails with an error: no panic.
    #[test]
    fn every_prefix_of_a_masscan_file_is_handled() {
        let list = "#masscan\nopen tcp 80 198.18.0.2 1764000000\nbanner tcp 80 198.18.0.2 1764000002 http HTTP/1.0 200 OK\n# end\n";
        let json = "[\n{   \"ip\": \"198.18.0.2\",   \"timestamp\": \"1764000000\", \"ports\": [ {\"port\": 443, \"proto\": \"tcp\", \"status\": \"open\", \"reason\": \"syn-ack\", \"ttl\": 64} ] }\n,\n]\n";
        for text in [list, json] {
            for end in (0..=text.len()).filter(|i| text.is_char_boundary(*i)) {
                let _ = read_any(&text[..end]);
            }
        }
    }

    #[test]
    fn targets_come_from_the_command_line() {
        assert_eq!(
            targets_of_args("nmap -sS -p 1-3 -oX out.xml 198.18.0.2 198.18.1.0/24"),
            "198.18.0.2 198.18.1.0/24"
        );
        assert_eq!(
            targets_of_args("portolan -n -p22 --db x.sqlite fd00::2"),
            "fd00::2"
        );
        assert_eq!(targets_of_args("nmap -iL list.txt"), "");
    }
}
