//! JSON lines (`-oJ`): one JSON object per line, each with a `"type"`.
//!
//! Schema version 3, in order of appearance:
//! - `{"type":"begin","schema":3,"scan_id","version","args","start","scan_type","proto","ports"}`
//!   (`scan_id`: the scan's UUID, version 7)
//! - `{"type":"port","addr","proto","port","state","reason","reason_ttl"?,"service","tries"}`,
//!   streamed as each port is resolved (with `--open`, open ports only),
//!   `service` being the port table's name. With `-sV` the port lines of
//!   a host are written instead when the host is done, just before its
//!   `host` line, in their final state (a UDP port that answered a
//!   version probe is `open`, reason `udp-response`); `service` is then
//!   the name detection found, followed by the service fields below
//!   (`product`, `version`, ..., `method`, `conf`, `tunnel`, `tls`,
//!   `banner`) for each port detection ran on;
//! - `{"type":"rate","t_s","probes_sent","replies","ports_done"}` about once
//!   a second: the scan's cumulative counters `t_s` seconds after its start
//!   (rates are the differences between two lines);
//! - `{"type":"host","addr","name"?,"rdns"?,"status","reason"?,"reason_ttl"?,"mac"?,"srtt_us"?,"rttvar_us"?,"timeout_us","paced_us"?,"ports":{state: count},"services"?}`
//!   when a host is done, except with `--open` when it has no port to
//!   show (`name`: the name typed, else the reverse-DNS
//!   name; `rdns`: the reverse-DNS name, when one was found; `paced_us`:
//!   the longest delay between probes the host's ICMP rate limit forced,
//!   when it slowed its scan); with `-sV`,
//!   `services` lists
//!   `{"port","proto","name","product"?,"version"?,"extrainfo"?,"hostname"?,"ostype"?,"devicetype"?,"cpe"?,"method","conf","tunnel"?,"tls"?,"banner"?}`
//!   per probed port, `tls` being
//!   `{"protocol","alpn"?,"subject","issuer","san","not_before"?,"not_after"?,"key_type"}`
//!   and `banner` the first bytes received, printable ASCII as is and
//!   every other byte as `\xNN`; with `-O`, `os` lists the matches best
//!   first (`{"name","accuracy","cpe"?,"line","classes"?}`) and
//!   `os_detection` says how it went
//!   (`{"active","ports_used"?,"perfect","missing"?,"fingerprint"?,"hint"?,"warnings"?}`;
//!   without `-O`, a raw TCP scan's host line has `os_detection` with
//!   `active` false and only the passive `hint`, `{"family"?,"evidence"}`);
//!   `middlebox`, when one was found answering for the host:
//!   `{"kind":"syn-proxy","services":[port...],"reset","checked","evidence"}`
//!   (its `reset` ports read `closed`, reason `proxy-reset`);
//! - `{"type":"summary","schema":3,"hosts":{"scanned","up"},"ports":{state: count},"elapsed_s","probes_sent","retransmissions","replies","late_replies","probes_per_s","interrupted","packets"?,"hosts_paced"?,"hosts_paced_globally"?,"middleboxes"?,"min_rate_missed"?}`
//!   last (`hosts_paced`: hosts whose ICMP rate limit slowed their scan;
//!   `hosts_paced_globally`: of those, scanned from several source
//!   addresses, the hosts whose limit over all their errors, not the limit
//!   per source, was the bound; `middleboxes`, when some were told from
//!   the whole range:
//!   `[{"kind":"transparent-proxy","proto","port","ttl","addresses","differing","sample":[addr...],"evidence"}]`;
//!   `min_rate_missed`, when `--min-rate` was asked and not reached:
//!   `{"asked","reached","reason":"nothing-to-send"|"sending-bound"}`;
//!   `packets`:
//!   `{"sent","received","ignored","dropped","sent_per_s"}`, `dropped`
//!   counting the answers the kernel dropped for want of room in the
//!   receive ring).
//!
//! Version 2 added the `rate` lines; version 3 holds the port lines of a
//! `-sV` run until detection and gives them the service fields (the
//! host line's `services` stays, with the same fields); port lines also
//! wait for their host when the SYN proxy check may amend them (open TCP
//! ports of a SYN or connect scan without `--no-proxy-check`; the others
//! stream). Readers should
//! skip line types and fields they do not know. serde_json escapes every string, so untrusted text cannot
//! break a line.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::net::IpAddr;

use portolan_engine::{
    HostReport, HostStatus, PortOutcome, PortResult, PortService, PortState, ServiceInfo, TlsInfo,
};
use portolan_targets::Protocol;
use serde::Serialize;

use crate::time::rfc3339;
use crate::{OutputOptions, RateSample, ScanInfo, ScanSummary, Sink, proto_name, service_name};

/// The schema version written in `begin` and `summary` lines.
pub const SCHEMA_VERSION: u32 = 3;

#[derive(Serialize)]
struct Begin<'a> {
    r#type: &'static str,
    schema: u32,
    scan_id: String,
    version: &'a str,
    args: &'a [String],
    start: String,
    scan_type: &'a str,
    proto: &'a str,
    ports: usize,
}

#[derive(Serialize)]
struct Port<'a> {
    r#type: &'static str,
    addr: String,
    proto: &'a str,
    port: u16,
    state: &'a str,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_ttl: Option<u8>,
    service: &'a str,
    tries: u8,
    /// With `-sV`: what detection found (`service` is then its name).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    detail: Option<ServiceDetail<'a>>,
}

#[derive(Serialize)]
struct Host<'a> {
    r#type: &'static str,
    addr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rdns: Option<&'a str>,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_ttl: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    srtt_us: Option<u128>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rttvar_us: Option<u128>,
    timeout_us: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    paced_us: Option<u128>,
    ports: BTreeMap<&'a str, u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    services: Vec<Service<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    os: &'a [portolan_model::OsMatch],
    #[serde(skip_serializing_if = "Option::is_none")]
    os_detection: Option<&'a portolan_model::OsDetection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    middlebox: Option<&'a portolan_model::Middlebox>,
}

#[derive(Serialize)]
struct Service<'a> {
    port: u16,
    proto: &'a str,
    name: &'a str,
    #[serde(flatten)]
    detail: ServiceDetail<'a>,
}

/// A service's fields beside its name (in `services` and on port lines).
#[derive(Serialize)]
struct ServiceDetail<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    product: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extrainfo: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ostype: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    devicetype: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    cpe: &'a [String],
    method: &'a str,
    conf: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    tunnel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<Tls<'a>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    banner: String,
}

#[derive(Serialize)]
struct Tls<'a> {
    protocol: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    alpn: Option<&'a str>,
    subject: &'a str,
    issuer: &'a str,
    san: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_after: Option<String>,
    key_type: &'a str,
}

impl<'a> Service<'a> {
    fn new(s: &'a PortService) -> Service<'a> {
        Service {
            port: s.port,
            proto: proto_name(s.proto),
            name: &s.info.name,
            detail: ServiceDetail::new(&s.info),
        }
    }
}

impl<'a> ServiceDetail<'a> {
    fn new(i: &'a ServiceInfo) -> ServiceDetail<'a> {
        ServiceDetail {
            product: i.product.as_deref(),
            version: i.version.as_deref(),
            extrainfo: i.extrainfo.as_deref(),
            hostname: i.hostname.as_deref(),
            ostype: i.ostype.as_deref(),
            devicetype: i.devicetype.as_deref(),
            cpe: &i.cpe,
            method: i.method.as_str(),
            conf: i.conf,
            tunnel: i.ssl.then_some("ssl"),
            tls: i.tls.as_ref().map(Tls::new),
            banner: escape_bytes(&i.banner),
        }
    }
}

impl<'a> Tls<'a> {
    fn new(t: &'a TlsInfo) -> Tls<'a> {
        Tls {
            protocol: &t.protocol,
            alpn: t.alpn.as_deref(),
            subject: &t.subject,
            issuer: &t.issuer,
            san: &t.san,
            not_before: t.not_before.map(rfc3339),
            not_after: t.not_after.map(rfc3339),
            key_type: &t.key_type,
        }
    }
}

/// Raw bytes as text: printable ASCII as is (`\` doubled), every other
/// byte as `\xNN`.
fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b' '..=b'~' => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

#[derive(Serialize)]
struct Rate {
    r#type: &'static str,
    t_s: f64,
    probes_sent: u64,
    replies: u64,
    ports_done: u64,
}

#[derive(Serialize)]
struct Hosts {
    scanned: u64,
    up: u64,
}

#[derive(Serialize)]
struct Summary<'a> {
    r#type: &'static str,
    schema: u32,
    end: String,
    hosts: Hosts,
    ports: BTreeMap<&'a str, u64>,
    elapsed_s: f64,
    probes_sent: u64,
    retransmissions: u64,
    replies: u64,
    late_replies: u64,
    probes_per_s: f64,
    interrupted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    packets: Option<Packets>,
    #[serde(skip_serializing_if = "is_zero")]
    hosts_paced: u64,
    #[serde(skip_serializing_if = "is_zero")]
    hosts_paced_globally: u64,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    middleboxes: &'a [portolan_model::RangeMiddlebox],
    #[serde(skip_serializing_if = "Option::is_none")]
    min_rate_missed: Option<portolan_model::MinRateMissed>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize)]
struct Packets {
    sent: u64,
    received: u64,
    ignored: u64,
    dropped: u64,
    sent_per_s: f64,
}

/// JSON-lines output to any writer.
pub struct JsonLinesSink<W: Write> {
    out: W,
    options: OutputOptions,
    /// `-sV`: port lines wait for their host's report.
    hold_ports: bool,
    /// The SYN proxy check may amend open TCP ports: their lines wait for
    /// their host's report ([`ScanInfo::open_ports_amended`]).
    hold_open: bool,
    /// The open TCP ports whose lines wait, by host.
    held_open: HashMap<IpAddr, Vec<u16>>,
    /// The file holds an interrupted scan's `begin` line (`--resume`):
    /// `begin` writes nothing.
    continuing: bool,
}

impl<W: Write> JsonLinesSink<W> {
    /// A sink writing to `out`.
    pub fn new(out: W, options: OutputOptions) -> JsonLinesSink<W> {
        JsonLinesSink {
            out,
            options,
            hold_ports: false,
            hold_open: false,
            held_open: HashMap::new(),
            continuing: false,
        }
    }

    /// A sink that goes on with the lines an interrupted scan left
    /// (`--resume`, after `portolan_report::resume::keep_json_lines`): it
    /// writes no `begin` line again.
    pub fn continuing(out: W, options: OutputOptions) -> JsonLinesSink<W> {
        JsonLinesSink {
            continuing: true,
            ..JsonLinesSink::new(out, options)
        }
    }

    fn line(&mut self, value: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")
    }

    /// One port line; `service` is what detection found there, if it ran.
    fn port_line(
        &mut self,
        addr: std::net::IpAddr,
        o: &PortOutcome,
        service: Option<&ServiceInfo>,
    ) -> io::Result<()> {
        if self.options.open_only && !crate::shown_with_open_only(o.state) {
            return Ok(());
        }
        self.line(&Port {
            r#type: "port",
            addr: addr.to_string(),
            proto: proto_name(o.proto),
            port: o.port,
            state: o.state.as_str(),
            reason: o.reason.as_str(),
            reason_ttl: o.reason_ttl,
            service: service.map_or_else(|| service_name(o.proto, o.port), |s| s.name.as_str()),
            tries: o.tries,
            detail: service.map(ServiceDetail::new),
        })
    }
}

fn state_counts(counts: &[u64; 6]) -> BTreeMap<&'static str, u64> {
    PortState::ALL
        .iter()
        .filter(|s| counts[s.index()] > 0)
        .map(|s| (s.as_str(), counts[s.index()]))
        .collect()
}

impl<W: Write> Sink for JsonLinesSink<W> {
    fn begin(&mut self, info: &ScanInfo) -> io::Result<()> {
        self.hold_ports = info.version_detection;
        self.hold_open = info.open_ports_amended;
        if self.continuing {
            return Ok(());
        }
        self.line(&Begin {
            r#type: "begin",
            schema: SCHEMA_VERSION,
            scan_id: info.id.to_string(),
            version: &info.version,
            args: &info.args,
            start: rfc3339(info.start),
            scan_type: info.scan_type,
            proto: proto_name(info.proto),
            ports: info.port_count,
        })
    }

    fn port(&mut self, result: &PortResult) -> io::Result<()> {
        if self.hold_ports {
            return Ok(());
        }
        let o = &result.outcome;
        if self.hold_open && o.proto == Protocol::Tcp && o.state == PortState::Open {
            self.held_open.entry(result.addr).or_default().push(o.port);
            return Ok(());
        }
        self.port_line(result.addr, o, None)
    }

    fn host(&mut self, report: &HostReport) -> io::Result<()> {
        if crate::hidden_with_open_only(report, &self.options) {
            // `--open` and nothing of the host to show: no line, as in
            // the other formats (a sweep's silent millions would be
            // gigabytes of them; the summary counts them).
            self.held_open.remove(&report.target.addr);
            return Ok(());
        }
        if self.hold_ports {
            for o in &report.ports {
                let service = report.service(o.proto, o.port);
                self.port_line(report.target.addr, o, service)?;
            }
        } else if let Some(mut held) = self.held_open.remove(&report.target.addr) {
            // Sorted once: a host may hold thousands of open ports.
            held.sort_unstable();
            for o in &report.ports {
                if o.proto == Protocol::Tcp && held.binary_search(&o.port).is_ok() {
                    self.port_line(report.target.addr, o, None)?;
                }
            }
        }
        let (status, reason) = match report.status {
            HostStatus::Up(r) => ("up", Some(r.as_str())),
            HostStatus::Down => ("down", None),
            HostStatus::TimedOut => ("timed-out", None),
            HostStatus::Interrupted => ("interrupted", None),
        };
        self.line(&Host {
            r#type: "host",
            addr: report.target.addr.to_string(),
            name: report.target.shown_name(),
            rdns: report.target.rdns.as_deref(),
            status,
            reason,
            reason_ttl: report.reason_ttl,
            mac: report.mac.map(crate::mac_text),
            srtt_us: report.times.srtt.map(|d| d.as_micros()),
            rttvar_us: report.times.rttvar.map(|d| d.as_micros()),
            timeout_us: report.times.timeout.as_micros(),
            paced_us: report.times.paced.map(|d| d.as_micros()),
            ports: state_counts(&report.state_counts()),
            services: report.services.iter().map(Service::new).collect(),
            os: &report.extra.os,
            os_detection: report.extra.os_detection.as_ref(),
            middlebox: report.extra.middlebox.as_ref(),
        })?;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn rate(&mut self, sample: &RateSample) -> io::Result<()> {
        self.line(&Rate {
            r#type: "rate",
            // Milliseconds are plenty, and keep the lines short.
            t_s: (sample.elapsed.as_millis() as f64) / 1000.0,
            probes_sent: sample.probes_sent,
            replies: sample.replies,
            ports_done: sample.ports_done,
        })?;
        self.out.flush()
    }

    fn end(&mut self, summary: &ScanSummary) -> io::Result<()> {
        let s = &summary.stats;
        self.line(&Summary {
            r#type: "summary",
            schema: SCHEMA_VERSION,
            end: rfc3339(summary.end),
            hosts: Hosts {
                scanned: s.hosts_done,
                up: s.hosts_up,
            },
            ports: state_counts(&s.ports_by_state),
            elapsed_s: summary.elapsed.as_secs_f64(),
            probes_sent: s.probes_sent,
            retransmissions: s.retransmissions,
            replies: s.replies,
            late_replies: s.late_replies,
            probes_per_s: summary.probe_rate(),
            interrupted: summary.interrupted,
            hosts_paced: s.hosts_paced,
            hosts_paced_globally: s.hosts_paced_globally,
            middleboxes: &summary.middleboxes,
            min_rate_missed: summary.min_rate_missed,
            packets: summary.packets.map(|p| Packets {
                sent: p.sent,
                received: p.received,
                ignored: p.ignored,
                dropped: p.dropped,
                sent_per_s: p.sent as f64 / summary.elapsed.as_secs_f64().max(1e-9),
            }),
        })?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_engine::{PortOutcome, Reason};
    use portolan_targets::Protocol;

    #[test]
    fn port_lines_carry_the_required_fields() {
        let mut sink = JsonLinesSink::new(Vec::new(), OutputOptions::default());
        sink.port(&PortResult {
            addr: "fd00::2".parse().unwrap(),
            outcome: PortOutcome {
                port: 22,
                proto: Protocol::Tcp,
                state: PortState::Open,
                reason: Reason::SynAck,
                reason_ttl: None,
                tries: 1,
            },
        })
        .unwrap();
        let text = String::from_utf8(sink.out).unwrap();
        assert_eq!(
            text,
            "{\"type\":\"port\",\"addr\":\"fd00::2\",\"proto\":\"tcp\",\"port\":22,\
             \"state\":\"open\",\"reason\":\"syn-ack\",\"service\":\"ssh\",\"tries\":1}\n"
        );
    }

    #[test]
    fn open_tcp_ports_wait_for_their_host_when_the_proxy_check_may_amend_them() {
        use crate::fixtures::{outcome, up_host};
        let mut sink = JsonLinesSink::new(Vec::new(), OutputOptions::default());
        sink.hold_open = true;
        let addr: IpAddr = "198.18.0.2".parse().unwrap();
        let streamed = |sink: &JsonLinesSink<Vec<u8>>| {
            String::from_utf8(sink.out.clone())
                .unwrap()
                .lines()
                .filter(|l| l.contains("\"type\":\"port\""))
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    (
                        v["port"].as_u64().unwrap(),
                        v["reason"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        };
        for o in [
            outcome(22, PortState::Open, Reason::SynAck),
            outcome(23, PortState::Closed, Reason::Reset),
            outcome(80, PortState::Open, Reason::SynAck),
        ] {
            sink.port(&PortResult { addr, outcome: o }).unwrap();
        }
        assert_eq!(streamed(&sink), vec![(23, "reset".to_string())]);
        // The check found 22 proxied, 80 real: each line once, as amended.
        sink.host(&up_host(vec![
            outcome(22, PortState::Closed, Reason::ProxyReset),
            outcome(23, PortState::Closed, Reason::Reset),
            outcome(80, PortState::Open, Reason::SynAck),
        ]))
        .unwrap();
        assert_eq!(
            streamed(&sink),
            vec![
                (23, "reset".to_string()),
                (22, "proxy-reset".to_string()),
                (80, "syn-ack".to_string())
            ]
        );
    }

    #[test]
    fn services_carry_version_tls_and_escaped_banners() {
        use portolan_engine::{ServiceInfo, ServiceMethod};
        let service = PortService {
            port: 443,
            proto: Protocol::Tcp,
            info: ServiceInfo {
                name: "http".into(),
                product: Some("nginx".into()),
                version: Some("1.22.1".into()),
                cpe: vec!["cpe:/a:f5:nginx:1.22.1".into()],
                method: ServiceMethod::Probed,
                conf: 10,
                ssl: true,
                tls: Some(TlsInfo {
                    protocol: "TLSv1.3".into(),
                    subject: "CN=lab\u{1b}".into(),
                    issuer: "CN=lab".into(),
                    san: vec!["DNS:lab".into()],
                    not_before: Some(std::time::UNIX_EPOCH),
                    key_type: "RSA 2048".into(),
                    ..TlsInfo::default()
                }),
                banner: b"HTTP/1.1 200\r\n\x1b\xff\\".to_vec(),
                ..ServiceInfo::default()
            },
        };
        let text = serde_json::to_string(&Service::new(&service)).unwrap();
        assert_eq!(
            text,
            "{\"port\":443,\"proto\":\"tcp\",\"name\":\"http\",\"product\":\"nginx\",\
             \"version\":\"1.22.1\",\"cpe\":[\"cpe:/a:f5:nginx:1.22.1\"],\"method\":\"probed\",\
             \"conf\":10,\"tunnel\":\"ssl\",\"tls\":{\"protocol\":\"TLSv1.3\",\
             \"subject\":\"CN=lab\\u001b\",\"issuer\":\"CN=lab\",\"san\":[\"DNS:lab\"],\
             \"not_before\":\"1970-01-01T00:00:00Z\",\"key_type\":\"RSA 2048\"},\
             \"banner\":\"HTTP/1.1 200\\\\x0d\\\\x0a\\\\x1b\\\\xff\\\\\\\\\"}"
        );
    }
}
