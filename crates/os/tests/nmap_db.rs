//! Every entry of nmap's installed database parses, and Portolan's own
//! database parses. Without nmap installed the test fails under CI=true
//! (scripts/test installs it) and says so otherwise.

use portolan_os::{Database, NMAP_DB, OWN_DB};

fn nmap_db_text() -> Option<String> {
    match std::fs::read(NMAP_DB) {
        Ok(bytes) => Some(bytes.into_iter().map(char::from).collect()),
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{NMAP_DB} is missing under CI=true: {e}"
            );
            eprintln!("skipping: {NMAP_DB}: {e}");
            None
        }
    }
}

#[test]
fn every_entry_of_nmaps_database_parses() {
    let Some(text) = nmap_db_text() else { return };
    let db = Database::load(NMAP_DB.as_ref()).expect("nmap's database parses");
    let entries = text
        .lines()
        .filter(|l| l.starts_with("Fingerprint "))
        .count();
    assert!(entries > 5000, "{entries} entries");
    assert_eq!(db.fingerprints.len(), entries);
    // Every entry has a class, and its tests are the known ones.
    assert!(db.fingerprints.iter().all(|f| !f.classes.is_empty()));
    assert!(db.match_points.points(0, "TS") == 100);
    assert!(
        db.fingerprints
            .iter()
            .any(|f| f.classes.iter().any(|c| c.family == "Linux"))
    );
}

#[test]
fn portolans_own_database_parses() {
    let db = Database::parse(OWN_DB).expect("the own database parses");
    assert!(db.match_points.points(0, "TI") > 0);
}
