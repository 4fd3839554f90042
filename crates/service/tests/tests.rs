//! portolan-service's integration tests, one binary: the databases, and
//! the probe engine against servers on 127.0.0.1 (well-behaved and
//! hostile).

mod database;
mod engine;
