//! The one storage trait ([`Backend`]): what the history needs of a SQL
//! database, implemented once for SQLite ([`crate::sqlite`]) and once for
//! PostgreSQL ([`crate::postgres`]). Everything above it (schema,
//! recording, queries) is written once against this trait.
//!
//! Statements are written with PostgreSQL's `$1` placeholders, numbered in
//! order; the SQLite backend reads them as `?1`. Values are only 64-bit
//! integers, text and NULL ([`Value`]), which both databases store the
//! same way.

use crate::StoreError;

/// Which SQL the database speaks, for the few statements that differ
/// (identity columns, locking).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A value bound to a statement or read from a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// NULL.
    Null,
    /// A 64-bit integer.
    Int(i64),
    /// Text.
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// One row of a result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `i` as an integer (0 for NULL or text).
    pub fn int(&self, i: usize) -> i64 {
        match self.0.get(i) {
            Some(Value::Int(v)) => *v,
            _ => 0,
        }
    }

    /// Column `i` as an integer, `None` for NULL.
    pub fn opt_int(&self, i: usize) -> Option<i64> {
        match self.0.get(i) {
            Some(Value::Int(v)) => Some(*v),
            _ => None,
        }
    }

    /// Column `i` as text ("" for NULL).
    pub fn text(&self, i: usize) -> &str {
        self.opt_text(i).unwrap_or("")
    }

    /// Column `i` as text, `None` for NULL.
    pub fn opt_text(&self, i: usize) -> Option<&str> {
        match self.0.get(i) {
            Some(Value::Text(v)) => Some(v),
            _ => None,
        }
    }
}

/// A SQL database the history can live in.
pub trait Backend: Send {
    /// Its dialect.
    fn dialect(&self) -> Dialect;
    /// Where it is, for messages (a path, or a URL without its password).
    fn location(&self) -> &str;
    /// Runs statements with no parameters and no result (DDL, `BEGIN`).
    fn batch(&mut self, sql: &str) -> Result<(), StoreError>;
    /// Runs one statement; the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;
    /// Runs one query; its rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError>;
    /// Starts a write transaction (waiting for other writers).
    fn begin(&mut self) -> Result<(), StoreError>;
    /// Commits it.
    fn commit(&mut self) -> Result<(), StoreError> {
        self.batch("COMMIT")
    }
    /// Rolls it back.
    fn rollback(&mut self) -> Result<(), StoreError> {
        self.batch("ROLLBACK")
    }
    /// The schema was found to be Portolan's (or created): settings that
    /// write to the database may now be made.
    fn checked(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Whether a table of this name exists.
    fn has_table(&mut self, name: &str) -> Result<bool, StoreError>;
    /// Whether the database holds any table at all.
    fn is_empty(&mut self) -> Result<bool, StoreError>;
}
