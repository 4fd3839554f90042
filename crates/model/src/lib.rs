//! Portolan's one result model: what a scan found about each port and
//! host, why, and what the run was.
//!
//! The engine produces these values, the scan library streams them as
//! events, and every sink (text, XML, grepable, JSON lines, reports)
//! reads them. Plain data: nothing here does I/O, and nothing allocates
//! beyond the vectors and strings the values own. Strings that came from
//! the network (banners, certificates, names) are stored as received;
//! sinks escape them for their format.
//!
//! - [`result`]: port states, reasons, port outcomes, host reports,
//!   counters.
//! - [`service`]: what version detection found on a port.
//! - [`scan`]: the run's information and ID, rate samples, summary, and
//!   the whole scan as one record ([`ScanResults`], with serde).
//! - [`time`]: wall-clock times in nmap's layouts and RFC 3339.
//! - [`forms`]: how serde writes times, durations, addresses and names.
//!
//! The serde form ([`ScanResults`] and everything in it) is versioned by
//! [`SCHEMA_VERSION`]: times are RFC 3339 text in UTC, durations whole
//! microseconds, states and reasons nmap's names.

#![deny(missing_docs)]

pub mod forms;
pub mod result;
pub mod scan;
pub mod service;
pub mod time;

pub use result::{
    CountedPorts, HostExtras, HostReport, HostStatus, HostTimes, Middlebox, MiddleboxKind, OsClass,
    OsDetection, OsHint, OsMatch, OsPortUsed, PortOutcome, PortResult, PortState, RangeMiddlebox,
    Reason, Reply, ScanStats, ScriptOutput,
};
pub use scan::{
    MinRateMissed, MinRateShortfall, PacketStats, RateSample, SCHEMA_VERSION, ScanId, ScanInfo,
    ScanResults, ScanSummary, ScanType, WallClock,
};
pub use service::{PortService, ServiceInfo, ServiceMethod, TlsInfo};

/// A link-layer address as nmap writes it: `02:5C:12:00:00:02`.
pub fn mac_text(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02X}:{b:02X}:{c:02X}:{d:02X}:{e:02X}:{f:02X}")
}

/// Reads a link-layer address written as `02:5C:12:00:00:02` (either
/// case, `:` or `-` between the bytes).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split([':', '-']);
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 || !part.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use portolan_targets::{Protocol, Target};

    use super::*;

    fn host() -> HostReport {
        let t = UNIX_EPOCH + Duration::new(1_795_534_980, 123_456_000);
        HostReport {
            target: Target {
                addr: "fd00::2".parse().unwrap(),
                name: Some("lab\u{1b}[2J".into()),
                rdns: Some("h.lab".into()),
            },
            status: HostStatus::Up(Reason::EchoReply),
            reason_ttl: Some(64),
            mac: Some([0x02, 0x5c, 0x12, 0, 0, 2]),
            ports: vec![PortOutcome {
                port: 443,
                proto: Protocol::Tcp,
                state: PortState::OpenFiltered,
                reason: Reason::MaskReply,
                reason_ttl: None,
                tries: 2,
            }],
            times: HostTimes {
                srtt: Some(Duration::from_micros(42)),
                rttvar: None,
                timeout: Duration::from_millis(100),
                paced: Some(Duration::from_millis(1050)),
            },
            started: t,
            finished: t + Duration::from_micros(1),
            services: vec![PortService {
                port: 443,
                proto: Protocol::Tcp,
                info: ServiceInfo {
                    name: "http".into(),
                    product: Some("nginx".into()),
                    ssl: true,
                    method: ServiceMethod::Probed,
                    conf: 10,
                    tls: Some(TlsInfo {
                        not_after: Some(t),
                        ..TlsInfo::default()
                    }),
                    banner: vec![0, 0xff, b'\n'],
                    ..ServiceInfo::default()
                },
            }],
            extra: HostExtras {
                os: vec![OsMatch {
                    name: "Linux 6.1".into(),
                    accuracy: 96,
                    cpe: vec!["cpe:/o:linux:linux_kernel:6.1".into()],
                    ..OsMatch::default()
                }],
                notes: vec!["a note".into()],
                ..HostExtras::default()
            },
        }
    }

    #[test]
    fn a_host_report_reads_back_what_serde_writes() {
        let report = host();
        let json = serde_json::to_string(&report).unwrap();
        for part in [
            r#""state":"open|filtered""#,
            r#""reason":"addressmask-reply""#,
            r#""status":{"state":"up","reason":"echo-reply"}"#,
            r#""mac":"02:5C:12:00:00:02""#,
            r#""started":"2026-11-24T15:43:00.123456Z""#,
            r#""paced_us":1050000"#,
            r#""banner":"00ff0a""#,
            r#""method":"probed""#,
            r#""proto":"tcp""#,
        ] {
            assert!(json.contains(part), "{part} not in {json}");
        }
        let back: HostReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn names_and_forms_refuse_what_they_do_not_know() {
        for state in PortState::ALL {
            assert_eq!(PortState::from_nmap(state.as_str()), Some(state));
        }
        for reason in Reason::ALL {
            assert_eq!(Reason::from_nmap(reason.as_str()), Some(reason));
        }
        assert_eq!(
            Reason::from_nmap_or_unknown("script-set"),
            Reason::UnknownResponse
        );
        let json = serde_json::to_string(&host()).unwrap();
        for (from, to) in [
            (r#""open|filtered""#, r#""opened""#),
            (r#""02:5C:12:00:00:02""#, r#""02:5C:12:00:00""#),
            (r#""2026-11-24T15:43:00.123456Z""#, r#""yesterday""#),
            (r#""00ff0a""#, r#""+fff""#),
        ] {
            let bad = json.replacen(from, to, 1);
            assert!(serde_json::from_str::<HostReport>(&bad).is_err(), "{to}");
        }
        assert_eq!(
            parse_mac("02-5c-12-00-00-02"),
            Some([2, 0x5c, 0x12, 0, 0, 2])
        );
        for bad in [
            "",
            "02:5C:12:00:00",
            "02:5C:12:00:00:02:03",
            "2:5C:12:00:00:02",
            "+2:5C:12:00:00:02",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn scan_ids_are_ordered_and_read_back() {
        let a = ScanId::new();
        let b = ScanId::new();
        assert!(a < b, "version 7 IDs sort by time");
        assert_eq!(a.to_string().parse::<ScanId>().unwrap(), a);
        assert!("not-an-id".parse::<ScanId>().is_err());
    }

    #[test]
    fn a_record_gives_the_sinks_their_info_and_summary() {
        let start = UNIX_EPOCH + Duration::from_secs(1_795_534_980);
        let results = ScanResults {
            schema: SCHEMA_VERSION,
            id: ScanId::new(),
            scanner: "nmap".into(),
            version: "7.93".into(),
            args: "nmap -sS -p 1-3 198.18.0.2".into(),
            start,
            end: Some(start + Duration::from_secs(2)),
            scans: vec![ScanType {
                name: "syn".into(),
                proto: Protocol::Tcp,
                ports: vec![1, 2, 3],
            }],
            hosts: vec![host()],
            stats: None,
            interrupted: false,
        };
        let info = results.info();
        assert_eq!(info.scan_type, "syn");
        assert_eq!(info.ports, [1, 2, 3]);
        assert_eq!(info.args[0], "nmap");
        assert!(info.version_detection);
        let summary = results.summary();
        assert_eq!(summary.elapsed, Duration::from_secs(2));
        assert_eq!(summary.stats.hosts_up, 1);
        assert_eq!(
            summary.stats.ports_by_state[PortState::OpenFiltered.index()],
            1
        );
        let json = serde_json::to_string(&results).unwrap();
        assert_eq!(serde_json::from_str::<ScanResults>(&json).unwrap(), results);
    }
}
