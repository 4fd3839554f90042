//! What only a SQLite file can suffer: being something else entirely.

use portolan_history::{History, Location, OpenOptions, StoreError};

use crate::fixtures::scratch;

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let path = scratch().join("history.sqlite");
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let err = History::open(&Location::Sqlite(path.clone()), OpenOptions::default())
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "not a byte changed");
}

#[test]
fn the_default_history_lives_under_the_data_directory() {
    assert_eq!(
        Location::default_sqlite(Some("/data"), Some("/home/a")),
        Some(Location::Sqlite("/data/portolan/history.sqlite".into()))
    );
    assert_eq!(
        Location::default_sqlite(None, Some("/home/a")),
        Some(Location::Sqlite(
            "/home/a/.local/share/portolan/history.sqlite".into()
        ))
    );
    assert_eq!(
        Location::default_sqlite(Some("relative"), Some("/home/a")),
        Some(Location::Sqlite(
            "/home/a/.local/share/portolan/history.sqlite".into()
        ))
    );
    assert_eq!(Location::default_sqlite(None, None), None);
    assert_eq!(
        Location::parse("postgresql:///h?host=/run"),
        Location::Postgres("postgresql:///h?host=/run".into())
    );
}

#[test]
fn hosts_without_evidence_are_not_recorded() {
    use crate::fixtures::{P, host, t};
    use portolan_model::{HostStatus, PortState, Reason};
    // Found up by an answer, or with an answered port: kept.
    let pinged = host("198.18.0.2", t(1), &[]);
    assert!(portolan_history::holds_evidence(&pinged));
    let mut pn = host("198.18.0.3", t(1), &[P(80, PortState::Closed, None)]);
    pn.status = HostStatus::Up(Reason::UserSet);
    assert!(portolan_history::holds_evidence(&pn));
    // -Pn and every probe unanswered, or down: nothing to keep (a sweep
    // of empty space writes nothing per empty address).
    let mut silent = host("198.18.0.4", t(1), &[P(80, PortState::Filtered, None)]);
    silent.status = HostStatus::Up(Reason::UserSet);
    assert!(!portolan_history::holds_evidence(&silent));
    let mut down = host("198.18.0.5", t(1), &[]);
    down.status = HostStatus::Down;
    assert!(!portolan_history::holds_evidence(&down));
}
