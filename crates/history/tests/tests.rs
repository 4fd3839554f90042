//! portolan-history's integration tests: one binary, with the storage
//! suite run against a real SQLite file and a real PostgreSQL server the
//! test starts itself (see `pg`).

mod audit;
mod diff;
mod fixtures;
mod pg;
mod sqlite_only;
mod suite;
