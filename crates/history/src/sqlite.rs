//! The SQLite backend (rusqlite, SQLite compiled in): one file, written in
//! WAL mode so that readers never wait for the scan that writes. A
//! database another process holds is waited on for [`SqliteBackend::open`]'s
//! `wait`, then reported as [`StoreError::Locked`]; a file that is not a
//! SQLite database is reported as [`StoreError::Corrupt`] and never
//! written.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::StoreError;
use crate::sql::{Backend, Dialect, Row, Value};

/// A history in a SQLite file.
pub struct SqliteBackend {
    conn: Connection,
    location: String,
    wait: Duration,
}

impl SqliteBackend {
    /// Opens (or creates) the database at `path`, waiting up to `wait`
    /// for a lock another process holds.
    pub fn open(path: &Path, wait: Duration) -> Result<SqliteBackend, StoreError> {
        let location = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                location: location.clone(),
                message: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| StoreError::Open {
            location: location.clone(),
            message: e.to_string(),
        })?;
        let mut backend = SqliteBackend {
            conn,
            location,
            wait,
        };
        backend
            .conn
            .busy_timeout(wait)
            .map_err(|e| backend.error(e))?;
        // The batched statements come in a few sizes each.
        backend.conn.set_prepared_statement_cache_capacity(64);
        // Reading the header proves the file is SQLite before anything
        // is written to it.
        backend.query("SELECT count(*) FROM sqlite_master", &[])?;
        backend.batch("PRAGMA foreign_keys = ON")?;
        Ok(backend)
    }

    fn error(&self, e: rusqlite::Error) -> StoreError {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked {
                location: self.location.clone(),
                waited: self.wait,
            },
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
                location: self.location.clone(),
                message: e.to_string(),
            },
            _ => StoreError::Sql {
                location: self.location.clone(),
                message: e.to_string(),
            },
        }
    }
}

/// `$1` → `?1`: the statements are written for PostgreSQL.
fn placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

fn bind(params: &[Value]) -> Vec<rusqlite::types::Value> {
    params
        .iter()
        .map(|v| match v {
            Value::Null => rusqlite::types::Value::Null,
            Value::Int(i) => rusqlite::types::Value::Integer(*i),
            Value::Text(t) => rusqlite::types::Value::Text(t.clone()),
        })
        .collect()
}

impl Backend for SqliteBackend {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn location(&self) -> &str {
        &self.location
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.conn.execute_batch(sql).map_err(|e| self.error(e))
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let sql = placeholders(sql);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.error(e))?;
        let n = stmt
            .execute(rusqlite::params_from_iter(bind(params)))
            .map_err(|e| self.error(e))?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let sql = placeholders(sql);
        let result = (|| {
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let columns = stmt.column_count();
            let mut rows = stmt.query(rusqlite::params_from_iter(bind(params)))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let mut values = Vec::with_capacity(columns);
                for i in 0..columns {
                    values.push(match row.get_ref(i)? {
                        ValueRef::Null => Value::Null,
                        ValueRef::Integer(v) => Value::Int(v),
                        ValueRef::Real(v) => Value::Int(v as i64),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            Value::Text(String::from_utf8_lossy(t).into_owned())
                        }
                    });
                }
                out.push(Row(values));
            }
            Ok(out)
        })();
        result.map_err(|e| self.error(e))
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        // IMMEDIATE takes the write lock now, so that a busy database is
        // waited on here rather than failing part way.
        self.batch("BEGIN IMMEDIATE")
    }

    fn checked(&mut self) -> Result<(), StoreError> {
        self.query("PRAGMA journal_mode = WAL", &[])?;
        // 32 MiB of page cache: the sightings' index is written at random.
        self.batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768")
    }

    fn has_table(&mut self, name: &str) -> Result<bool, StoreError> {
        let rows = self.query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1",
            &[name.into()],
        )?;
        Ok(!rows.is_empty())
    }

    fn is_empty(&mut self) -> Result<bool, StoreError> {
        let rows = self.query("SELECT count(*) FROM sqlite_master", &[])?;
        Ok(rows.first().is_none_or(|r| r.int(0) == 0))
    }
}
