//! The PostgreSQL backend (the `postgres` crate, tokio-postgres under a
//! blocking client), for teams sharing one history: `--db
//! postgres://user@host/db` or `postgresql:///db?host=/run/postgresql`.
//! Statements are prepared once per connection and kept. A lock another
//! session holds is waited on for `wait` (`lock_timeout`), then reported
//! as [`StoreError::Locked`].

use std::collections::HashMap;
use std::error::Error as _;
use std::time::Duration;

use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Statement};

use crate::StoreError;
use crate::sql::{Backend, Dialect, Row, Value};

/// A history in a PostgreSQL database.
pub struct PostgresBackend {
    client: Client,
    location: String,
    wait: Duration,
    statements: HashMap<String, Statement>,
}

/// `text` with the password of any PostgreSQL URL in it removed (a
/// command line holding `--db postgres://user:secret@host/db`, or
/// `--db=postgresql:///db?password=secret`), for what is stored or shown.
pub fn redact_passwords(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            match word
                .find("postgres://")
                .or_else(|| word.find("postgresql://"))
            {
                Some(i) => format!("{}{}", &word[..i], redact(&word[i..])),
                None => word.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The URL without its password (in the user part or the query), for
/// messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) =
        before_query.split_at(before_query.find('/').unwrap_or(before_query.len()));
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => format!("{}@{host}", user.split(':').next().unwrap_or("")),
        None => authority.to_string(),
    };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(query) = query {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.to_ascii_lowercase().starts_with("password="))
            .collect();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
    }
    out
}

impl PostgresBackend {
    /// Connects to `url`, waiting up to `wait` for locks. A URL without a
    /// password takes `$PGPASSWORD`'s, as libpq does (output files keep
    /// command lines without passwords, so a resumed scan needs it).
    pub fn open(url: &str, wait: Duration) -> Result<PostgresBackend, StoreError> {
        let location = redact(url);
        let open_error = |message: String| StoreError::Open {
            location: location.clone(),
            message,
        };
        let mut config: postgres::Config = url.parse().map_err(|e| open_error(message(&e)))?;
        if config.get_password().is_none()
            && let Some(password) = std::env::var_os("PGPASSWORD")
        {
            config.password(password.as_encoded_bytes());
        }
        let client = config.connect(NoTls).map_err(|e| open_error(message(&e)))?;
        let mut backend = PostgresBackend {
            client,
            location,
            wait,
            statements: HashMap::new(),
        };
        let ms = wait.as_millis().max(1);
        backend.batch(&format!(
            "SET lock_timeout = {ms}; SET client_min_messages = warning"
        ))?;
        Ok(backend)
    }

    fn error(&self, e: postgres::Error) -> StoreError {
        let code = e.code().map(|c| c.code().to_string());
        match code.as_deref() {
            // lock_not_available, serialization failures under lock waits
            Some("55P03") => StoreError::Locked {
                location: self.location.clone(),
                waited: self.wait,
            },
            _ => StoreError::Sql {
                location: self.location.clone(),
                message: message(&e),
            },
        }
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(|e| self.error(e))?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

/// The driver's message with the server's detail.
fn message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match e.source() {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Text(t) => t.as_str().to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2 | Type::INT4 | Type::INT8 | Type::TEXT | Type::VARCHAR | Type::NAME
        )
    }

    to_sql_checked!();
}

fn read(row: &postgres::Row) -> Result<Row, postgres::Error> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let value = match *column.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i)?.into(),
            Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map(i64::from).into(),
            Type::INT2 => row.try_get::<_, Option<i16>>(i)?.map(i64::from).into(),
            Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map(i64::from).into(),
            _ => row.try_get::<_, Option<String>>(i)?.into(),
        };
        values.push(value);
    }
    Ok(Row(values))
}

impl Backend for PostgresBackend {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn location(&self) -> &str {
        &self.location
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.client.batch_execute(sql).map_err(|e| self.error(e))
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let stmt = self.statement(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        self.client.execute(&stmt, &refs).map_err(|e| self.error(e))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let stmt = self.statement(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let rows = self.client.query(&stmt, &refs).map_err(|e| self.error(e))?;
        rows.iter()
            .map(read)
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(e))
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        self.batch("BEGIN")
    }

    fn has_table(&mut self, name: &str) -> Result<bool, StoreError> {
        let rows = self.query(
            "SELECT 1 FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = $1",
            &[name.into()],
        )?;
        Ok(!rows.is_empty())
    }

    fn is_empty(&mut self) -> Result<bool, StoreError> {
        let rows = self.query(
            "SELECT count(*) FROM information_schema.tables \
             WHERE table_schema = current_schema()",
            &[],
        )?;
        Ok(rows.first().is_none_or(|r| r.int(0) == 0))
    }
}

#[cfg(test)]
mod tests {
    use super::{redact, redact_passwords};

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("postgres://scan:secret@db.lab/history"),
            "postgres://scan@db.lab/history"
        );
        assert_eq!(redact("postgres:///history"), "postgres:///history");
        assert_eq!(
            redact_passwords("portolan --db postgresql://a:b@h/db -p 22 x"),
            "portolan --db postgresql://a@h/db -p 22 x"
        );
        assert_eq!(
            redact_passwords("--db=postgres://a:b@h:5432/db"),
            "--db=postgres://a@h:5432/db"
        );
        assert_eq!(
            redact("postgresql:///db?user=a&password=s3cret&host=/run/pg"),
            "postgresql:///db?user=a&host=/run/pg"
        );
        assert_eq!(
            redact("postgresql://u:p@[fd00::1]:5432/db?password=x"),
            "postgresql://u@[fd00::1]:5432/db"
        );
    }
}
