//! The history itself ([`History`]): opening a store at a [`Location`],
//! writing scans into it (one transaction per host, see
//! [`History::record_host`]) and reading them back whole
//! ([`History::load`]). Written once against [`Backend`], so SQLite and
//! PostgreSQL behave the same.
//!
//! How facts are kept: each (address, protocol, port) has runs of
//! identical facts in `observations` (state; service, product, version,
//! CPE and certificate as version detection saw them). A scan that sees
//! the same facts as the latest run extends it (`last_seen`); different
//! facts start a new run. `sightings` links every scan to the runs it saw
//! with its own evidence, so any scan reads back exactly as it was
//! recorded (banners aside: a run keeps its first scan's, and banners are
//! compared by their stable form, see [`crate::banner`]), and a port's
//! history is its runs in order.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portolan_model::{
    HostReport, HostStatus, PortOutcome, PortService, PortState, Reason, ScanId, ScanResults,
    ScanStats, ScanType, ServiceInfo,
};
use portolan_targets::Protocol;

use crate::StoreError;
use crate::postgres::PostgresBackend;
use crate::schema;
use crate::sql::{Backend, Row, Value};
use crate::sqlite::SqliteBackend;

/// Where a history lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://` or `postgresql://` URL).
    Postgres(String),
}

impl Location {
    /// `--db`'s value: a PostgreSQL URL, or a SQLite file's path.
    pub fn parse(text: &str) -> Location {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Location::Postgres(text.to_string())
        } else {
            Location::Sqlite(PathBuf::from(text))
        }
    }

    /// The default history: `history.sqlite` in Portolan's directory
    /// under the user's data directory (`$XDG_DATA_HOME`, else
    /// `~/.local/share`), given those variables' values.
    pub fn default_sqlite(xdg_data_home: Option<&str>, home: Option<&str>) -> Option<Location> {
        let base = match (xdg_data_home.filter(|d| d.starts_with('/')), home) {
            (Some(data), _) => PathBuf::from(data),
            (None, Some(home)) if !home.is_empty() => Path::new(home).join(".local/share"),
            _ => return None,
        };
        Some(Location::Sqlite(
            base.join("portolan").join("history.sqlite"),
        ))
    }
}

/// How to open a store.
#[derive(Clone, Copy, Debug)]
pub struct OpenOptions {
    /// How long to wait for a lock another process holds.
    pub wait: Duration,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            wait: Duration::from_secs(10),
        }
    }
}

/// What a stored scan's row says, without its hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanRow {
    /// The store's number for it.
    pub no: i64,
    /// Its ID.
    pub id: ScanId,
    /// "portolan", "nmap", "masscan".
    pub scanner: String,
    /// The scanner's version.
    pub version: String,
    /// The command line.
    pub args: String,
    /// The targets as given (what `--last` compares).
    pub targets: String,
    /// Who ran it.
    pub who: String,
    /// "scan", or "import FILE".
    pub source: String,
    /// When it started.
    pub start: SystemTime,
    /// When it ended; `None` while it runs, or when it was killed.
    pub end: Option<SystemTime>,
    /// Whether it was interrupted.
    pub interrupted: bool,
    /// Hosts recorded.
    pub hosts: u64,
    /// Of which up.
    pub hosts_up: u64,
}

impl ScanRow {
    /// Whether the scan ran to its end.
    pub fn complete(&self) -> bool {
        self.end.is_some() && !self.interrupted
    }
}

/// What a scan is, beyond its record: for [`History::begin_scan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanMeta {
    /// The targets as given, to find earlier scans of the same ones.
    pub targets: String,
    /// Who ran it.
    pub who: String,
    /// "scan", or "import FILE".
    pub source: String,
}

/// One run of identical facts on a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRun {
    /// The protocol.
    pub proto: Protocol,
    /// The port.
    pub port: u16,
    /// The state.
    pub state: PortState,
    /// What version detection found, if it ran.
    pub service: Option<ServiceInfo>,
    /// First scan time that saw it.
    pub first_seen: SystemTime,
    /// Last scan time that saw it.
    pub last_seen: SystemTime,
    /// The scan that first saw it.
    pub first_scan: ScanId,
    /// The scan that last saw it.
    pub last_scan: ScanId,
    /// How many scans saw it.
    pub scans: u64,
}

/// A host over time: its status in each scan and its ports' runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostHistory {
    /// The address.
    pub addr: IpAddr,
    /// Each scan that reported it: ID, start, status ("up", "down", ...).
    pub statuses: Vec<(ScanId, SystemTime, String)>,
    /// Each port's runs, by protocol and port, oldest first.
    pub runs: Vec<PortRun>,
}

/// Microseconds since the epoch.
pub(crate) fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub(crate) fn from_micros(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

pub(crate) fn proto_named(name: &str) -> Option<Protocol> {
    Protocol::ALL.into_iter().find(|p| p.as_str() == name)
}

fn status_name(status: HostStatus) -> &'static str {
    match status {
        HostStatus::Up(_) => "up",
        HostStatus::Down => "down",
        HostStatus::TimedOut => "timed-out",
        HostStatus::Interrupted => "interrupted",
    }
}

/// A port's facts as one run keeps them.
struct Facts {
    state: PortState,
    detail: Option<String>,
}

/// Whether two services (as stored) are the same facts. Banners are
/// compared by their stable form ([`crate::banner::stable`]): a TLS
/// handshake's randoms, a greeting's date or a counter do not start a new
/// run, a greeting that says something else does. A run keeps the banner
/// of its first scan.
fn same_service(a: Option<&str>, b: Option<&str>) -> bool {
    let read = |d: &str| {
        serde_json::from_str::<ServiceInfo>(d).ok().map(|mut s| {
            let banner = crate::banner::stable(&s.banner);
            s.banner.clear();
            (s, banner)
        })
    };
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a == b
                || match (read(a), read(b)) {
                    (Some((x, bx)), Some((y, by))) => x == y && !bx.changed(&by),
                    _ => false,
                }
        }
        _ => false,
    }
}

/// The latest run of a port, as read before a host is recorded.
struct Latest {
    id: i64,
    state: String,
    detail: Option<String>,
    first_seen: i64,
    last_seen: i64,
}

/// Rows per batched statement, at most.
const BATCH: usize = 256;

/// `items` in chunks of at most [`BATCH`], each padded (by repeating its
/// last item) to a power of two, so that a database preparing statements
/// sees few distinct ones; the statements ignore the repeats.
fn padded_chunks<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    items
        .chunks(BATCH)
        .map(|chunk| {
            let mut chunk = chunk.to_vec();
            let last = chunk[chunk.len() - 1].clone();
            chunk.resize(chunk.len().next_power_of_two(), last);
            chunk
        })
        .collect()
}

/// `($first, ...), (...)`: `rows` groups of `width` placeholders numbered
/// from `first`; one group is written `($3, $4)`, a list of single
/// values `($3, $4, $5)`.
fn placeholders(first: usize, rows: usize, width: usize) -> String {
    let mut n = first;
    let mut groups = Vec::with_capacity(rows);
    for _ in 0..rows {
        let group: Vec<String> = (0..width)
            .map(|_| {
                n += 1;
                format!("${}", n - 1)
            })
            .collect();
        groups.push(group.join(", "));
    }
    if width == 1 {
        format!("({})", groups.join(", "))
    } else {
        groups
            .iter()
            .map(|g| format!("({g})"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A history store.
pub struct History {
    db: Box<dyn Backend>,
}

impl History {
    /// Opens the history at `location`, creating or migrating its schema;
    /// a database that is not Portolan's, or is newer, is refused
    /// untouched.
    pub fn open(location: &Location, options: OpenOptions) -> Result<History, StoreError> {
        let db: Box<dyn Backend> = match location {
            Location::Sqlite(path) => Box::new(SqliteBackend::open(path, options.wait)?),
            Location::Postgres(url) => Box::new(PostgresBackend::open(url, options.wait)?),
        };
        History::with_backend(db)
    }

    /// A history over an open backend.
    pub fn with_backend(mut db: Box<dyn Backend>) -> Result<History, StoreError> {
        schema::prepare(db.as_mut())?;
        Ok(History { db })
    }

    /// Where it is, for messages.
    pub fn location(&self) -> &str {
        self.db.location()
    }

    fn value_error(&self, message: String) -> StoreError {
        StoreError::Value {
            location: self.db.location().to_string(),
            message,
        }
    }

    /// Runs `f` in one transaction: all of it is written, or nothing.
    pub(crate) fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut History) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.db.begin()?;
        match f(self) {
            Ok(v) => {
                self.db.commit()?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.db.rollback();
                Err(e)
            }
        }
    }

    /// Records that `scan` started (its header: ID, command line, start,
    /// scan types; its hosts are ignored). The scan stays unfinished
    /// until [`History::finish_scan`]. Returns its number in the store.
    pub fn begin_scan(&mut self, scan: &ScanResults, meta: &ScanMeta) -> Result<i64, StoreError> {
        let types = serde_json::to_string(&scan.scans).unwrap_or_default();
        self.transaction(|h| {
            let rows = h.db.query(
                "INSERT INTO scans (id, scanner, version, args, targets, who, source, \
                 start_us, scan_types) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING no",
                &[
                    scan.id.to_string().into(),
                    scan.scanner.as_str().into(),
                    scan.version.as_str().into(),
                    scan.args.as_str().into(),
                    meta.targets.as_str().into(),
                    meta.who.as_str().into(),
                    meta.source.as_str().into(),
                    micros(scan.start).into(),
                    types.into(),
                ],
            )?;
            Ok(rows.first().map_or(0, |r| r.int(0)))
        })
    }

    /// Records that the scan numbered `no` ended.
    pub fn finish_scan(
        &mut self,
        no: i64,
        end: SystemTime,
        interrupted: bool,
        stats: Option<&ScanStats>,
    ) -> Result<(), StoreError> {
        let stats = stats.map(|s| serde_json::to_string(s).unwrap_or_default());
        self.transaction(|h| {
            h.db.execute(
                "UPDATE scans SET end_us = $1, interrupted = $2, stats = $3 WHERE no = $4",
                &[
                    micros(end).into(),
                    i64::from(interrupted).into(),
                    stats.into(),
                    no.into(),
                ],
            )?;
            Ok(())
        })
    }

    /// Records one finished host of the scan numbered `no`, in one
    /// transaction: a scan killed at any moment leaves each host either
    /// whole or absent. `scans` are the scan's types (the ports it
    /// covered): a port the history knew on this host, covered but not
    /// listed, takes the host's only counted state (nmap's
    /// `<extraports>`), when there is one.
    pub fn record_host(
        &mut self,
        no: i64,
        scans: &[ScanType],
        host: &HostReport,
    ) -> Result<(), StoreError> {
        self.transaction(|h| h.write_host(no, scans, host))
    }

    pub(crate) fn write_host(
        &mut self,
        no: i64,
        scans: &[ScanType],
        host: &HostReport,
    ) -> Result<(), StoreError> {
        let addr = host.target.addr.to_string();
        let mut bare = host.clone();
        bare.ports.clear();
        bare.services.clear();
        let report = serde_json::to_string(&bare).unwrap_or_default();
        self.db.execute(
            "INSERT INTO hosts (scan_no, addr, status, report) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (scan_no, addr) DO UPDATE SET status = excluded.status, \
             report = excluded.report",
            &[
                no.into(),
                addr.as_str().into(),
                status_name(host.status).into(),
                report.into(),
            ],
        )?;
        let seen = micros(if host.finished > UNIX_EPOCH {
            host.finished
        } else {
            self.scan_start(no)?
        });
        let mut latest: HashMap<(String, i64), Latest> = HashMap::new();
        for row in self.db.query(
            "SELECT id, proto, port, state, detail, first_seen_us, last_seen_us \
             FROM observations WHERE addr = $1 ORDER BY last_seen_us, id",
            &[addr.as_str().into()],
        )? {
            latest.insert(
                (row.text(1).to_string(), row.int(2)),
                Latest {
                    id: row.int(0),
                    state: row.text(3).to_string(),
                    detail: row.opt_text(4).map(String::from),
                    first_seen: row.int(5),
                    last_seen: row.int(6),
                },
            );
        }
        let mut listed: Vec<(PortOutcome, Facts)> = host
            .ports
            .iter()
            .map(|p| {
                let detail = host
                    .service(p.proto, p.port)
                    .map(|s| serde_json::to_string(s).unwrap_or_default());
                (
                    *p,
                    Facts {
                        state: p.state,
                        detail,
                    },
                )
            })
            .collect();
        // Ports known before, covered by this scan, not listed: in the
        // host's only counted state.
        if let ([counted], HostStatus::Up(_)) = (host.extra.counted.as_slice(), host.status) {
            for (proto, port) in latest.keys() {
                let Some(proto) = proto_named(proto) else {
                    continue;
                };
                let Ok(port) = u16::try_from(*port) else {
                    continue;
                };
                let covered = scans
                    .iter()
                    .any(|s| s.proto == proto && s.ports.binary_search(&port).is_ok());
                let is_listed = host
                    .ports
                    .iter()
                    .any(|p| p.proto == proto && p.port == port);
                if covered && !is_listed {
                    listed.push((
                        PortOutcome {
                            port,
                            proto,
                            state: counted.state,
                            reason: Reason::UnknownResponse,
                            reason_ttl: None,
                            tries: 0,
                        },
                        Facts {
                            state: counted.state,
                            detail: None,
                        },
                    ));
                }
            }
        }
        // Runs extended and sightings are written a batch at a time: a
        // host is a handful of statements, not a few per port.
        let mut extended: Vec<i64> = Vec::new();
        let mut sightings: Vec<[Value; 5]> = Vec::with_capacity(listed.len());
        for (outcome, facts) in listed {
            let key = (outcome.proto.as_str().to_string(), i64::from(outcome.port));
            let same = latest.get(&key).filter(|l| {
                l.state == facts.state.as_str()
                    && same_service(l.detail.as_deref(), facts.detail.as_deref())
            });
            let obs = match same {
                Some(l) => {
                    if seen > l.last_seen {
                        extended.push(l.id);
                    } else if seen < l.first_seen {
                        self.db.execute(
                            "UPDATE observations SET first_seen_us = $1, first_scan = $2 \
                             WHERE id = $3",
                            &[seen.into(), no.into(), l.id.into()],
                        )?;
                    }
                    l.id
                }
                None => self.insert_observation(no, &addr, &outcome, &facts, seen)?,
            };
            sightings.push([
                no.into(),
                obs.into(),
                outcome.reason.as_str().into(),
                outcome.reason_ttl.map(i64::from).into(),
                i64::from(outcome.tries).into(),
            ]);
        }
        for chunk in padded_chunks(&extended) {
            let list = placeholders(3, chunk.len(), 1);
            let mut params: Vec<Value> = vec![seen.into(), no.into()];
            params.extend(chunk.iter().map(|id| Value::Int(*id)));
            self.db.execute(
                &format!(
                    "UPDATE observations SET last_seen_us = $1, last_scan = $2 WHERE id IN {list}"
                ),
                &params,
            )?;
        }
        for chunk in padded_chunks(&sightings) {
            let rows = placeholders(1, chunk.len(), 5);
            let params: Vec<Value> = chunk.iter().flat_map(|r| r.iter().cloned()).collect();
            self.db.execute(
                &format!(
                    "INSERT INTO sightings (scan_no, obs_id, reason, reason_ttl, tries) \
                     VALUES {rows} ON CONFLICT (scan_no, obs_id) DO NOTHING"
                ),
                &params,
            )?;
        }
        Ok(())
    }

    fn insert_observation(
        &mut self,
        no: i64,
        addr: &str,
        outcome: &PortOutcome,
        facts: &Facts,
        seen: i64,
    ) -> Result<i64, StoreError> {
        let service: Option<ServiceInfo> = facts
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok());
        let s = service.as_ref();
        let tls = s.and_then(|s| s.tls.as_ref());
        let cpe = s.map(|s| s.cpe.join(" ")).filter(|c| !c.is_empty());
        let rows = self.db.query(
            "INSERT INTO observations (addr, proto, port, state, service, product, version, \
             cpe, tls_subject, tls_not_after_us, detail, first_seen_us, last_seen_us, \
             first_scan, last_scan) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             RETURNING id",
            &[
                addr.into(),
                outcome.proto.as_str().into(),
                i64::from(outcome.port).into(),
                facts.state.as_str().into(),
                s.map(|s| s.full_name()).into(),
                s.and_then(|s| s.product.clone()).into(),
                s.and_then(|s| s.version.clone()).into(),
                cpe.into(),
                tls.map(|t| t.subject.clone()).into(),
                tls.and_then(|t| t.not_after).map(micros).into(),
                facts.detail.clone().into(),
                seen.into(),
                seen.into(),
                no.into(),
                no.into(),
            ],
        )?;
        Ok(rows.first().map_or(0, |r| r.int(0)))
    }

    fn scan_start(&mut self, no: i64) -> Result<SystemTime, StoreError> {
        let rows = self
            .db
            .query("SELECT start_us FROM scans WHERE no = $1", &[no.into()])?;
        Ok(from_micros(rows.first().map_or(0, |r| r.int(0))))
    }

    const SCAN_COLUMNS: &'static str = "s.no, s.id, s.scanner, s.version, s.args, s.targets, \
        s.who, s.source, s.start_us, s.end_us, s.interrupted, \
        (SELECT count(*) FROM hosts h WHERE h.scan_no = s.no), \
        (SELECT count(*) FROM hosts h WHERE h.scan_no = s.no AND h.status = 'up')";

    fn scan_row(&self, row: &Row) -> Result<ScanRow, StoreError> {
        Ok(ScanRow {
            no: row.int(0),
            id: row
                .text(1)
                .parse()
                .map_err(|_| self.value_error(format!("scan ID {:?}", row.text(1))))?,
            scanner: row.text(2).to_string(),
            version: row.text(3).to_string(),
            args: row.text(4).to_string(),
            targets: row.text(5).to_string(),
            who: row.text(6).to_string(),
            source: row.text(7).to_string(),
            start: from_micros(row.int(8)),
            end: row.opt_int(9).map(from_micros),
            interrupted: row.int(10) != 0,
            hosts: row.int(11) as u64,
            hosts_up: row.int(12) as u64,
        })
    }

    /// The latest `limit` scans, newest first.
    pub fn scans(&mut self, limit: usize) -> Result<Vec<ScanRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM scans s ORDER BY s.start_us DESC, s.no DESC LIMIT $1",
            Self::SCAN_COLUMNS
        );
        let rows = self
            .db
            .query(&sql, &[(limit.min(i64::MAX as usize) as i64).into()])?;
        rows.iter().map(|r| self.scan_row(r)).collect()
    }

    /// The latest complete scan, if any.
    pub fn latest_complete(&mut self) -> Result<Option<ScanRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM scans s WHERE s.end_us IS NOT NULL AND s.interrupted = 0 \
             ORDER BY s.start_us DESC, s.no DESC LIMIT 1",
            Self::SCAN_COLUMNS
        );
        let rows = self.db.query(&sql, &[])?;
        rows.first().map(|r| self.scan_row(r)).transpose()
    }

    /// The scan the store numbers `no`.
    pub fn scan_numbered(&mut self, no: i64) -> Result<Option<ScanRow>, StoreError> {
        let sql = format!("SELECT {} FROM scans s WHERE s.no = $1", Self::SCAN_COLUMNS);
        let rows = self.db.query(&sql, &[no.into()])?;
        rows.first().map(|r| self.scan_row(r)).transpose()
    }

    /// The scan whose ID is `id` or starts with it (at least 4
    /// characters).
    pub fn find(&mut self, id: &str) -> Result<ScanRow, StoreError> {
        let id = id.trim().to_ascii_lowercase();
        if id.len() < 4 || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(StoreError::NoSuchScan(id));
        }
        // The prefix holds only hex digits and hyphens: no LIKE wildcard.
        let sql = format!(
            "SELECT {} FROM scans s WHERE s.id LIKE $1 ORDER BY s.id LIMIT 2",
            Self::SCAN_COLUMNS
        );
        let rows = self.db.query(&sql, &[format!("{id}%").into()])?;
        match rows.as_slice() {
            [one] => self.scan_row(one),
            [] => Err(StoreError::NoSuchScan(id)),
            many => Err(StoreError::AmbiguousScan {
                prefix: id,
                count: many.len(),
            }),
        }
    }

    /// The complete scan of the same targets as `scan` just before it.
    pub fn previous(&mut self, scan: &ScanRow) -> Result<Option<ScanRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM scans s WHERE s.targets = $1 AND s.no <> $2 \
             AND (s.start_us < $3 OR (s.start_us = $3 AND s.no < $2)) \
             AND s.end_us IS NOT NULL AND s.interrupted = 0 \
             ORDER BY s.start_us DESC, s.no DESC LIMIT 1",
            Self::SCAN_COLUMNS
        );
        let rows = self.db.query(
            &sql,
            &[
                scan.targets.as_str().into(),
                scan.no.into(),
                micros(scan.start).into(),
            ],
        )?;
        rows.first().map(|r| self.scan_row(r)).transpose()
    }

    /// The two latest complete scans of the same targets (of `targets`
    /// when given, else of the latest complete scan's), older first.
    pub fn last_two(&mut self, targets: Option<&str>) -> Result<(ScanRow, ScanRow), StoreError> {
        let latest = match targets {
            Some(t) => {
                let sql = format!(
                    "SELECT {} FROM scans s WHERE s.end_us IS NOT NULL AND s.interrupted = 0 \
                     AND s.targets = $1 ORDER BY s.start_us DESC, s.no DESC LIMIT 1",
                    Self::SCAN_COLUMNS
                );
                let rows = self.db.query(&sql, &[t.into()])?;
                rows.first().map(|r| self.scan_row(r)).transpose()?
            }
            None => self.latest_complete()?,
        };
        let Some(latest) = latest else {
            return Err(StoreError::NoSuchScan(match targets {
                Some(t) => format!("of {t}"),
                None => "(--last)".to_string(),
            }));
        };
        let Some(before) = self.previous(&latest)? else {
            return Err(StoreError::NoSuchScan(format!(
                "before {} of the same targets {:?}",
                latest.id, latest.targets
            )));
        };
        Ok((before, latest))
    }

    /// The scan `row` read back whole, as it was recorded.
    pub fn load(&mut self, row: &ScanRow) -> Result<ScanResults, StoreError> {
        let header = self.db.query(
            "SELECT scan_types, stats FROM scans WHERE no = $1",
            &[row.no.into()],
        )?;
        let header = header.first().cloned().unwrap_or_default();
        let scans: Vec<ScanType> = serde_json::from_str(header.text(0))
            .map_err(|e| self.value_error(format!("scan types of {}: {e}", row.id)))?;
        let stats: Option<ScanStats> = match header.opt_text(1) {
            Some(s) => Some(
                serde_json::from_str(s)
                    .map_err(|e| self.value_error(format!("counters of {}: {e}", row.id)))?,
            ),
            None => None,
        };
        let mut hosts = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for r in self.db.query(
            "SELECT addr, report FROM hosts WHERE scan_no = $1",
            &[row.no.into()],
        )? {
            let host: HostReport = serde_json::from_str(r.text(1))
                .map_err(|e| self.value_error(format!("host {}: {e}", r.text(0))))?;
            index.insert(r.text(0).to_string(), hosts.len());
            hosts.push(host);
        }
        for r in self.db.query(
            "SELECT o.addr, o.proto, o.port, o.state, o.detail, s.reason, s.reason_ttl, \
             s.tries FROM sightings s JOIN observations o ON o.id = s.obs_id \
             WHERE s.scan_no = $1",
            &[row.no.into()],
        )? {
            let Some(&i) = index.get(r.text(0)) else {
                continue;
            };
            let (Some(proto), Ok(port), Some(state)) = (
                proto_named(r.text(1)),
                u16::try_from(r.int(2)),
                PortState::from_nmap(r.text(3)),
            ) else {
                return Err(self.value_error(format!(
                    "port {}/{} {:?} of {}",
                    r.int(2),
                    r.text(1),
                    r.text(3),
                    r.text(0)
                )));
            };
            let host = &mut hosts[i];
            host.ports.push(PortOutcome {
                port,
                proto,
                state,
                reason: Reason::from_nmap_or_unknown(r.text(5)),
                reason_ttl: r.opt_int(6).and_then(|t| u8::try_from(t).ok()),
                tries: u8::try_from(r.int(7)).unwrap_or(u8::MAX),
            });
            if let Some(detail) = r.opt_text(4) {
                let info: ServiceInfo = serde_json::from_str(detail)
                    .map_err(|e| self.value_error(format!("service of {port}: {e}")))?;
                host.services.push(PortService { port, proto, info });
            }
        }
        for host in &mut hosts {
            host.ports.sort_by_key(|p| (p.proto, p.port));
            host.services.sort_by_key(|s| (s.proto, s.port));
        }
        hosts.sort_by_key(|h| h.target.addr);
        Ok(ScanResults {
            schema: portolan_model::SCHEMA_VERSION,
            id: row.id,
            scanner: row.scanner.clone(),
            version: row.version.clone(),
            args: row.args.clone(),
            start: row.start,
            end: row.end,
            scans,
            hosts,
            stats,
            interrupted: row.interrupted || row.end.is_none(),
        })
    }

    /// A host's statuses and its ports' runs over every stored scan.
    pub fn host(&mut self, addr: IpAddr) -> Result<HostHistory, StoreError> {
        let text = addr.to_string();
        let mut statuses = Vec::new();
        for r in self.db.query(
            "SELECT s.id, s.start_us, h.status FROM hosts h JOIN scans s ON s.no = h.scan_no \
             WHERE h.addr = $1 ORDER BY s.start_us, s.no",
            &[text.as_str().into()],
        )? {
            let id = r
                .text(0)
                .parse()
                .map_err(|_| self.value_error(format!("scan ID {:?}", r.text(0))))?;
            statuses.push((id, from_micros(r.int(1)), r.text(2).to_string()));
        }
        let mut runs = Vec::new();
        for r in self.db.query(
            "SELECT o.proto, o.port, o.state, o.detail, o.first_seen_us, o.last_seen_us, \
             f.id, l.id, (SELECT count(*) FROM sightings g WHERE g.obs_id = o.id) \
             FROM observations o JOIN scans f ON f.no = o.first_scan \
             JOIN scans l ON l.no = o.last_scan \
             WHERE o.addr = $1 ORDER BY o.proto, o.port, o.first_seen_us, o.id",
            &[text.as_str().into()],
        )? {
            let (Some(proto), Ok(port), Some(state)) = (
                proto_named(r.text(0)),
                u16::try_from(r.int(1)),
                PortState::from_nmap(r.text(2)),
            ) else {
                return Err(self.value_error(format!("port {}/{}", r.int(1), r.text(0))));
            };
            let id = |i: usize| {
                r.text(i)
                    .parse::<ScanId>()
                    .map_err(|_| self.value_error(format!("scan ID {:?}", r.text(i))))
            };
            runs.push(PortRun {
                proto,
                port,
                state,
                service: r.opt_text(3).and_then(|d| serde_json::from_str(d).ok()),
                first_seen: from_micros(r.int(4)),
                last_seen: from_micros(r.int(5)),
                first_scan: id(6)?,
                last_scan: id(7)?,
                scans: r.int(8) as u64,
            });
        }
        runs.sort_by_key(|r| (r.proto, r.port, r.first_seen));
        Ok(HostHistory {
            addr,
            statuses,
            runs,
        })
    }

    /// How many scans up to `scan` (by start time) saw the same facts as
    /// `scan` saw on this port: 0 when it did not see the port, 1 when
    /// its facts were new.
    pub fn times_seen(
        &mut self,
        scan: &ScanRow,
        addr: IpAddr,
        proto: Protocol,
        port: u16,
    ) -> Result<u64, StoreError> {
        let rows = self.db.query(
            "SELECT count(*) FROM sightings g JOIN scans c ON c.no = g.scan_no \
             WHERE c.start_us <= $1 AND g.obs_id IN (SELECT s.obs_id FROM sightings s \
             JOIN observations o ON o.id = s.obs_id WHERE s.scan_no = $2 AND o.addr = $3 \
             AND o.proto = $4 AND o.port = $5)",
            &[
                micros(scan.start).into(),
                scan.no.into(),
                addr.to_string().into(),
                proto.as_str().into(),
                i64::from(port).into(),
            ],
        )?;
        Ok(rows.first().map_or(0, |r| r.int(0) as u64))
    }

    /// A scan already stored with this ID, or with the same scanner,
    /// command line and start (a file imported twice).
    pub fn already_stored(&mut self, scan: &ScanResults) -> Result<Option<ScanId>, StoreError> {
        let rows = self.db.query(
            "SELECT id FROM scans WHERE id = $1 OR (scanner = $2 AND args = $3 AND start_us = $4) \
             LIMIT 1",
            &[
                scan.id.to_string().into(),
                scan.scanner.as_str().into(),
                scan.args.as_str().into(),
                micros(scan.start).into(),
            ],
        )?;
        Ok(rows.first().and_then(|r| r.text(0).parse().ok()))
    }

    /// Stores a whole scan read from a file, in one transaction; `None`
    /// when it was already stored.
    pub fn import(
        &mut self,
        scan: &ScanResults,
        meta: &ScanMeta,
    ) -> Result<Option<i64>, StoreError> {
        if self.already_stored(scan)?.is_some() {
            return Ok(None);
        }
        let types = serde_json::to_string(&scan.scans).unwrap_or_default();
        let stats = scan
            .stats
            .map(|s| serde_json::to_string(&s).unwrap_or_default());
        self.transaction(|h| {
            let rows = h.db.query(
                "INSERT INTO scans (id, scanner, version, args, targets, who, source, \
                 start_us, end_us, interrupted, scan_types, stats) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING no",
                &[
                    scan.id.to_string().into(),
                    scan.scanner.as_str().into(),
                    scan.version.as_str().into(),
                    scan.args.as_str().into(),
                    meta.targets.as_str().into(),
                    meta.who.as_str().into(),
                    meta.source.as_str().into(),
                    micros(scan.start).into(),
                    scan.end.map(micros).into(),
                    i64::from(scan.interrupted).into(),
                    types.into(),
                    stats.into(),
                ],
            )?;
            let no = rows.first().map_or(0, |r| r.int(0));
            for host in &scan.hosts {
                h.write_host(no, &scan.scans, host)?;
            }
            Ok(Some(no))
        })
    }

    /// The database's size in bytes, when the backend can tell.
    pub fn size_bytes(&mut self) -> Result<Option<u64>, StoreError> {
        let sql = match self.db.dialect() {
            crate::sql::Dialect::Sqlite => {
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
            }
            crate::sql::Dialect::Postgres => "SELECT pg_database_size(current_database())",
        };
        let rows = self.db.query(sql, &[])?;
        Ok(rows.first().and_then(|r| r.opt_int(0)).map(|n| n as u64))
    }

    /// How many sightings (a port seen by a scan) the history holds.
    pub fn sightings(&mut self) -> Result<u64, StoreError> {
        let rows = self.db.query("SELECT count(*) FROM sightings", &[])?;
        Ok(rows.first().map_or(0, |r| r.int(0) as u64))
    }
}
