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
