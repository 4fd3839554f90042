//! Synthetic scans for the tests: hosts in 198.18.0.0/24 with the ports
//! and services a test names, at the times it names.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portolan_history::sql::Backend;
use portolan_history::{History, Location, OpenOptions};
use portolan_model::{
    HostReport, HostStatus, PortOutcome, PortService, PortState, Reason, ScanId, ScanResults,
    ScanType, ServiceInfo, ServiceMethod, TlsInfo,
};
use portolan_targets::{Protocol, Target};

/// A fresh scratch directory.
pub fn scratch() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "portolan-history-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_000_000 + secs)
}

/// One port of a fixture: number, state, and an optional (service,
/// version) pair.
#[derive(Clone, Copy)]
pub struct P(
    pub u16,
    pub PortState,
    pub Option<(&'static str, &'static str)>,
);

pub fn open(port: u16) -> P {
    P(port, PortState::Open, None)
}

pub fn host(addr: &str, at: SystemTime, ports: &[P]) -> HostReport {
    let mut h = HostReport {
        target: Target::from_addr(addr.parse().unwrap()),
        status: HostStatus::Up(Reason::EchoReply),
        reason_ttl: Some(64),
        mac: None,
        ports: Vec::new(),
        times: Default::default(),
        started: at,
        finished: at + Duration::from_millis(5),
        services: Vec::new(),
        extra: Default::default(),
    };
    for P(port, state, service) in ports {
        h.ports.push(PortOutcome {
            port: *port,
            proto: Protocol::Tcp,
            state: *state,
            reason: match state {
                PortState::Open => Reason::SynAck,
                PortState::Closed => Reason::Reset,
                _ => Reason::NoResponse,
            },
            reason_ttl: Some(64),
            tries: if *state == PortState::Filtered { 2 } else { 1 },
        });
        if let Some((name, version)) = service {
            h.services.push(PortService {
                port: *port,
                proto: Protocol::Tcp,
                info: ServiceInfo {
                    name: name.to_string(),
                    product: Some("lab".into()),
                    version: Some(version.to_string()),
                    method: ServiceMethod::Probed,
                    conf: 10,
                    ..ServiceInfo::default()
                },
            });
        }
    }
    h
}

pub fn down(addr: &str, at: SystemTime) -> HostReport {
    let mut h = host(addr, at, &[]);
    h.status = HostStatus::Down;
    h.reason_ttl = None;
    h
}

pub fn with_cert(mut h: HostReport, port: u16, subject: &str, not_after: SystemTime) -> HostReport {
    let s = h
        .services
        .iter_mut()
        .find(|s| s.port == port)
        .expect("a service on the port");
    s.info.ssl = true;
    s.info.tls = Some(TlsInfo {
        protocol: "TLSv1.3".into(),
        subject: subject.into(),
        issuer: "CN=Lab CA".into(),
        not_after: Some(not_after),
        ..TlsInfo::default()
    });
    h
}

pub fn scan(at: SystemTime, targets: &str, hosts: Vec<HostReport>) -> ScanResults {
    ScanResults {
        schema: portolan_model::SCHEMA_VERSION,
        id: ScanId::new(),
        scanner: "portolan".into(),
        version: "0.1.0".into(),
        args: format!("portolan -p 22,80,113,443 {targets}"),
        start: at,
        end: Some(at + Duration::from_secs(3)),
        scans: vec![ScanType {
            name: "syn".into(),
            proto: Protocol::Tcp,
            ports: vec![22, 80, 113, 443],
        }],
        hosts,
        stats: None,
        interrupted: false,
    }
}

pub fn open_history(loc: &Location) -> History {
    History::open(loc, OpenOptions::default()).expect("open the history")
}

/// A raw connection to the database, to tamper with it as another
/// program would.
pub fn raw(loc: &Location) -> Box<dyn Backend> {
    match loc {
        Location::Sqlite(path) => Box::new(
            portolan_history::sqlite::SqliteBackend::open(path, Duration::from_secs(5)).unwrap(),
        ),
        Location::Postgres(url) => Box::new(
            portolan_history::postgres::PostgresBackend::open(url, Duration::from_secs(5)).unwrap(),
        ),
    }
}

/// A fresh SQLite history.
pub fn sqlite() -> Location {
    Location::Sqlite(scratch().join("history.sqlite"))
}
