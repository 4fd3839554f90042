//! The storage suite: the same cases against SQLite and PostgreSQL.

use std::net::IpAddr;
use std::time::Duration;

use portolan_history::{History, Location, OpenOptions, ScanMeta, StoreError};
use portolan_model::PortState;

use crate::fixtures::*;

const TARGETS: &str = "198.18.0.0/30";

fn meta(targets: &str) -> ScanMeta {
    ScanMeta {
        targets: targets.into(),
        who: "tester".into(),
        source: "scan".into(),
    }
}

/// Records `scan` the way a running scan does: start, each host, end.
fn record(h: &mut History, scan: &portolan_model::ScanResults, targets: &str) -> i64 {
    let no = h.begin_scan(scan, &meta(targets)).unwrap();
    for host in &scan.hosts {
        h.record_host(no, &scan.scans, host).unwrap();
    }
    h.finish_scan(no, scan.end.unwrap(), false, None).unwrap();
    no
}

pub fn a_scan_reads_back_as_recorded(loc: &Location) {
    let mut h = open_history(loc);
    let s = scan(
        t(0),
        TARGETS,
        vec![
            host(
                "198.18.0.1",
                t(1),
                &[
                    P(22, PortState::Open, Some(("ssh", "9.2"))),
                    P(80, PortState::Closed, None),
                    P(113, PortState::Filtered, None),
                ],
            ),
            with_cert(
                host(
                    "198.18.0.2",
                    t(2),
                    &[P(443, PortState::Open, Some(("https", "1.0")))],
                ),
                443,
                "CN=lab",
                t(86_400 * 90),
            ),
            down("198.18.0.3", t(2)),
        ],
    );
    record(&mut h, &s, TARGETS);
    let row = h.find(&s.id.to_string()).unwrap();
    assert!(row.complete());
    assert_eq!((row.hosts, row.hosts_up), (3, 2));
    assert_eq!(row.who, "tester");
    let back = h.load(&row).unwrap();
    assert_eq!(back.hosts, s.hosts, "hosts read back exactly");
    assert_eq!(back.scans, s.scans);
    assert_eq!(back.args, s.args);
    assert_eq!(back.start, s.start);
    assert_eq!(back.end, s.end);
    assert!(!back.interrupted);
}

pub fn runs_extend_while_facts_stay_and_split_when_they_change(loc: &Location) {
    let mut h = open_history(loc);
    let a = "198.18.0.1";
    let facts = [
        [P(22, PortState::Open, Some(("ssh", "9.2"))), open(80)],
        [P(22, PortState::Open, Some(("ssh", "9.2"))), open(80)],
        [
            P(22, PortState::Open, Some(("ssh", "9.3"))),
            P(80, PortState::Closed, None),
        ],
    ];
    let mut ids = Vec::new();
    for (i, ports) in facts.iter().enumerate() {
        let at = t(1000 * i as u64);
        let s = scan(at, TARGETS, vec![host(a, at, ports)]);
        record(&mut h, &s, TARGETS);
        ids.push(s.id);
    }
    let history = h.host(a.parse::<IpAddr>().unwrap()).unwrap();
    assert_eq!(history.statuses.len(), 3);
    let runs: Vec<_> = history
        .runs
        .iter()
        .map(|r| {
            (
                r.port,
                r.state,
                r.service.as_ref().and_then(|s| s.version.clone()),
                r.scans,
                r.first_scan,
                r.last_scan,
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            (22, PortState::Open, Some("9.2".into()), 2, ids[0], ids[1]),
            (22, PortState::Open, Some("9.3".into()), 1, ids[2], ids[2]),
            (80, PortState::Open, None, 2, ids[0], ids[1]),
            (80, PortState::Closed, None, 1, ids[2], ids[2]),
        ]
    );
    // Every scan still reads back as it was.
    let first = h.find(&ids[0].to_string()).unwrap();
    let back = h.load(&first).unwrap();
    assert_eq!(back.hosts[0].ports.len(), 2);
    assert_eq!(
        back.hosts[0].services[0].info.version.as_deref(),
        Some("9.2")
    );
    let last = h.find(&ids[2].to_string()).unwrap();
    assert_eq!(
        h.times_seen(
            &last,
            a.parse().unwrap(),
            portolan_targets::Protocol::Tcp,
            80
        )
        .unwrap(),
        1
    );
    let second = h.find(&ids[1].to_string()).unwrap();
    assert_eq!(
        h.times_seen(
            &second,
            a.parse().unwrap(),
            portolan_targets::Protocol::Tcp,
            80
        )
        .unwrap(),
        2
    );
}

pub fn a_scan_cut_short_keeps_its_hosts_and_stays_unfinished(loc: &Location) {
    let done = scan(t(0), TARGETS, vec![host("198.18.0.1", t(0), &[open(22)])]);
    let cut = scan(
        t(100),
        TARGETS,
        vec![
            host("198.18.0.1", t(100), &[open(22)]),
            host("198.18.0.2", t(101), &[open(80)]),
        ],
    );
    {
        let mut h = open_history(loc);
        record(&mut h, &done, TARGETS);
        let no = h.begin_scan(&cut, &meta(TARGETS)).unwrap();
        h.record_host(no, &cut.scans, &cut.hosts[0]).unwrap();
        // The process dies here: no second host, no end.
    }
    let mut h = open_history(loc);
    let row = h.find(&cut.id.to_string()).unwrap();
    assert_eq!(row.end, None);
    assert!(!row.complete());
    assert_eq!(row.hosts, 1);
    let back = h.load(&row).unwrap();
    assert!(back.interrupted);
    assert_eq!(back.hosts, cut.hosts[..1]);
    // --last pairs complete scans only.
    let err = h.last_two(Some(TARGETS)).unwrap_err();
    assert!(matches!(err, StoreError::NoSuchScan(_)), "{err}");
    let listed = h.scans(10).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, cut.id, "newest first");
}

pub fn last_two_pairs_complete_scans_of_the_same_targets(loc: &Location) {
    let mut h = open_history(loc);
    let a = scan(t(0), TARGETS, vec![host("198.18.0.1", t(0), &[open(22)])]);
    let other = scan(
        t(50),
        "198.18.9.9",
        vec![host("198.18.9.9", t(50), &[open(22)])],
    );
    let b = scan(
        t(100),
        TARGETS,
        vec![host("198.18.0.1", t(100), &[open(22)])],
    );
    record(&mut h, &a, TARGETS);
    record(&mut h, &other, "198.18.9.9");
    record(&mut h, &b, TARGETS);
    let (x, y) = h.last_two(None).unwrap();
    assert_eq!((x.id, y.id), (a.id, b.id));
    let prev = h.previous(&y).unwrap().unwrap();
    assert_eq!(prev.id, a.id);
    assert!(h.previous(&x).unwrap().is_none());
}

pub fn ids_resolve_by_prefix(loc: &Location) {
    let mut h = open_history(loc);
    let a = scan(t(0), TARGETS, vec![]);
    let b = scan(t(1), TARGETS, vec![]);
    record(&mut h, &a, TARGETS);
    record(&mut h, &b, TARGETS);
    let id = b.id.to_string();
    assert_eq!(h.find(&id.to_uppercase()).unwrap().id, b.id);
    // Both v7 IDs made a moment apart share their first characters.
    let shared: String = id
        .chars()
        .zip(a.id.to_string().chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect();
    if shared.len() >= 4 {
        assert!(matches!(
            h.find(&shared),
            Err(StoreError::AmbiguousScan { count: 2, .. })
        ));
    }
    assert!(matches!(h.find("zzzz"), Err(StoreError::NoSuchScan(_))));
    assert!(matches!(
        h.find("0000000-0000"),
        Err(StoreError::NoSuchScan(_))
    ));
}

pub fn an_import_is_stored_once(loc: &Location) {
    let mut h = open_history(loc);
    let s = scan(t(0), TARGETS, vec![host("198.18.0.1", t(0), &[open(22)])]);
    let m = ScanMeta {
        source: "import scan.xml".into(),
        ..meta(TARGETS)
    };
    assert!(h.import(&s, &m).unwrap().is_some());
    let mut again = s.clone();
    again.id = portolan_model::ScanId::new();
    assert_eq!(
        h.import(&again, &m).unwrap(),
        None,
        "same scanner, args, start"
    );
    assert_eq!(h.scans(10).unwrap().len(), 1);
    let row = h.find(&s.id.to_string()).unwrap();
    assert_eq!(h.load(&row).unwrap().hosts, s.hosts);
}

pub fn a_newer_schema_is_refused_and_left_untouched(loc: &Location) {
    drop(open_history(loc));
    let mut db = raw(loc);
    db.batch("UPDATE portolan_schema SET version = 99").unwrap();
    drop(db);
    match History::open(loc, OpenOptions::default()) {
        Err(StoreError::NewerSchema {
            found: 99,
            known: 1,
            ..
        }) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer schema was opened"),
    }
    let mut db = raw(loc);
    let rows = db
        .query("SELECT version FROM portolan_schema", &[])
        .unwrap();
    assert_eq!(rows[0].int(0), 99, "left untouched");
}

pub fn a_foreign_database_is_refused_and_left_untouched(loc: &Location) {
    let mut db = raw(loc);
    db.batch("CREATE TABLE accounts (name TEXT); INSERT INTO accounts VALUES ('kept')")
        .unwrap();
    drop(db);
    let err = History::open(loc, OpenOptions::default())
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("left untouched"), "{err}");
    let mut db = raw(loc);
    assert!(!db.has_table("scans").unwrap());
    assert_eq!(
        db.query("SELECT name FROM accounts", &[]).unwrap()[0].text(0),
        "kept"
    );
    // A schema table with no version is damage too.
    db.batch("CREATE TABLE portolan_schema (version BIGINT)")
        .unwrap();
    drop(db);
    let err = History::open(loc, OpenOptions::default())
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

pub fn a_locked_database_is_waited_on_then_reported(loc: &Location) {
    let mut h = History::open(
        loc,
        OpenOptions {
            wait: Duration::from_millis(300),
        },
    )
    .unwrap();
    let mut holder = raw(loc);
    holder.begin().unwrap();
    if matches!(loc, Location::Postgres(_)) {
        holder
            .batch("LOCK TABLE scans IN ACCESS EXCLUSIVE MODE")
            .unwrap();
    }
    let s = scan(t(0), TARGETS, vec![]);
    let started = std::time::Instant::now();
    let err = h.begin_scan(&s, &meta(TARGETS)).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(250), "it waited");
    assert!(
        err.to_string().contains("locked by another process"),
        "{err}"
    );
    holder.rollback().unwrap();
    drop(holder);
    h.begin_scan(&s, &meta(TARGETS)).expect("free again");
}

pub fn reopening_keeps_the_schema_and_the_scans(loc: &Location) {
    let s = scan(t(0), TARGETS, vec![host("198.18.0.1", t(0), &[open(22)])]);
    record(&mut open_history(loc), &s, TARGETS);
    let mut h = open_history(loc);
    assert_eq!(h.scans(10).unwrap().len(), 1);
    assert!(h.sightings().unwrap() >= 1);
    assert!(h.size_bytes().unwrap().unwrap() > 0);
}

pub fn a_host_with_many_ports_reads_back_whole(loc: &Location) {
    let mut h = open_history(loc);
    let ports: Vec<P> = (1..=700)
        .map(|p| {
            P(
                p,
                if p % 3 == 0 {
                    PortState::Open
                } else {
                    PortState::Closed
                },
                None,
            )
        })
        .collect();
    let a = scan(t(0), TARGETS, vec![host("198.18.0.1", t(0), &ports)]);
    let b = scan(t(100), TARGETS, vec![host("198.18.0.1", t(100), &ports)]);
    record(&mut h, &a, TARGETS);
    record(&mut h, &b, TARGETS);
    for s in [&a, &b] {
        let row = h.find(&s.id.to_string()).unwrap();
        assert_eq!(h.load(&row).unwrap().hosts, s.hosts);
    }
    let history = h.host("198.18.0.1".parse().unwrap()).unwrap();
    assert_eq!(history.runs.len(), 700, "one run per port");
    assert!(
        history
            .runs
            .iter()
            .all(|r| r.scans == 2 && r.last_seen > r.first_seen)
    );
    assert_eq!(h.sightings().unwrap(), 1400);
}

/// `host` with a banner on its port 21 service.
fn with_banner(mut h: portolan_model::HostReport, banner: &str) -> portolan_model::HostReport {
    h.services[0].info.banner = banner.as_bytes().to_vec();
    h
}

pub fn a_banner_change_splits_a_run_and_a_volatile_banner_does_not(loc: &Location) {
    let mut h = open_history(loc);
    let a = "198.18.0.1";
    let ftp = [P(21, PortState::Open, Some(("ftp", "1.0")))];
    let banners = [
        "220 lab FTP ready at Fri, 04 Dec 2026 22:01:39 +0000 (pid 4242)\r\n",
        "220 lab FTP ready at Sat, 05 Dec 2026 03:10:00 +0000 (pid 5151)\r\n",
        "220 lab FTP ready; anonymous login allowed\r\n",
    ];
    let mut scans = Vec::new();
    for (i, banner) in banners.iter().enumerate() {
        let at = t(1000 * i as u64);
        let s = scan(at, TARGETS, vec![with_banner(host(a, at, &ftp), banner)]);
        record(&mut h, &s, TARGETS);
        scans.push(s);
    }
    let history = h.host(a.parse::<IpAddr>().unwrap()).unwrap();
    let runs: Vec<u64> = history.runs.iter().map(|r| r.scans).collect();
    assert_eq!(
        runs,
        [2, 1],
        "the date and pid do not split the run; the new words do"
    );
    let rows: Vec<_> = scans
        .iter()
        .map(|s| h.find(&s.id.to_string()).unwrap())
        .collect();
    let loaded: Vec<_> = rows.iter().map(|r| h.load(r).unwrap()).collect();
    let options = portolan_history::diff::DiffOptions::default();
    let d = |x: usize, y: usize| {
        portolan_history::diff::diff(&loaded[x], &loaded[y], &options, &mut |_, _, _| false)
    };
    assert!(!d(0, 1).differs(), "a volatile banner is no change");
    let changed = d(1, 2);
    assert!(changed.differs());
    assert_eq!(
        changed.hosts[0].ports[0].change,
        portolan_history::diff::Change::Banner
    );
    assert!(
        changed.hosts[0].ports[0]
            .b
            .as_ref()
            .unwrap()
            .banner
            .as_deref()
            == Some(banners[2]),
        "the later banner is shown as received"
    );
}

macro_rules! storage_suite {
    ($name:ident, $fresh:expr) => {
        mod $name {
            use super::*;

            fn fresh() -> Option<Location> {
                $fresh
            }

            storage_suite!(@cases
                a_scan_reads_back_as_recorded,
                runs_extend_while_facts_stay_and_split_when_they_change,
                a_scan_cut_short_keeps_its_hosts_and_stays_unfinished,
                last_two_pairs_complete_scans_of_the_same_targets,
                ids_resolve_by_prefix,
                an_import_is_stored_once,
                a_newer_schema_is_refused_and_left_untouched,
                a_foreign_database_is_refused_and_left_untouched,
                a_locked_database_is_waited_on_then_reported,
                reopening_keeps_the_schema_and_the_scans,
                a_host_with_many_ports_reads_back_whole,
                a_banner_change_splits_a_run_and_a_volatile_banner_does_not,
            );
        }
    };
    (@cases $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                if let Some(loc) = fresh() {
                    super::$case(&loc);
                }
            }
        )+
    };
}

storage_suite!(sqlite, Some(sqlite()));
storage_suite!(postgres, crate::pg::database());
