//! `portolan history`: the scans kept in the history, one scan whole, one
//! host over time, and files imported into it; and the binary's side of
//! recording a scan (which history, who ran it).
//!
//! The history is `--db PATH` (SQLite) or `--db postgres://...`, else the
//! default SQLite file under the user's data directory.

use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use portolan_history::{History, Location, OpenOptions, Recorder, ScanMeta, ScanRow};
use portolan_model::time::rfc3339;
use portolan_output::OutputOptions;
use portolan_output::escape::for_terminal;

use crate::args::{Config, UsageError};

const USAGE: &str = r#"usage: portolan history [list] [-n COUNT] [--json] [--db PATH|URL]
       portolan history show ID [-oN|-oX|-oJ] [--db PATH|URL]
       portolan history host ADDRESS [--json] [--db PATH|URL]
       portolan history import FILE... [--targets SPEC] [--db PATH|URL]

Every scan is recorded in the history unless --no-db is given: by default
$XDG_DATA_HOME/portolan/history.sqlite (else ~/.local/share/portolan/),
or the SQLite file or PostgreSQL URL given with --db.

  list      the latest scans, newest first (20 unless -n): ID, start, end
            ("unfinished" for a scan killed part way), hosts up, targets
  show ID   one scan as it was recorded, in normal text (-oN, the default),
            nmap XML (-oX) or JSON lines (-oJ); an ID prefix of 4 or more
            characters is enough
  host ADDR a host's status in each scan and each of its ports over time:
            every run of the same state and service, first and last seen
  import    nmap XML (nmap's own too), Portolan JSON lines, masscan -oL or
            -oJ files; a file already imported is skipped; --targets files
            them under these targets (default: the command line's)

Options: --db PATH|URL, --db-wait TIME (default 10s) for a database another
process holds.
"#;

/// The history options every subcommand takes.
#[derive(Debug, Default)]
pub struct DbArgs {
    /// `--db`.
    pub db: Option<String>,
    /// `--db-wait`.
    pub wait: Option<Duration>,
}

impl DbArgs {
    /// Takes `--db`/`--db-wait` at `arg`, with its value from `rest`;
    /// whether it was one of them.
    pub fn take<'a>(
        &mut self,
        arg: &'a str,
        rest: &mut impl Iterator<Item = &'a String>,
        command: &str,
    ) -> Result<bool, UsageError> {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg, None),
        };
        if !matches!(name, "--db" | "-db" | "--db-wait" | "-db-wait") {
            return Ok(false);
        }
        let value = match inline {
            Some(v) => v,
            None => rest
                .next()
                .cloned()
                .ok_or_else(|| UsageError(format!("{command}: {name} needs a value")))?,
        };
        if name.ends_with("db") {
            self.db = Some(value);
        } else {
            self.wait = Some(crate::args::parse_time(&value).ok_or_else(|| {
                UsageError(format!(
                    "{command}: --db-wait {value}: want a time such as 5s"
                ))
            })?);
        }
        Ok(true)
    }
}

/// The history at `db`, or the default one.
pub fn location(db: Option<&str>) -> anyhow::Result<Location> {
    match db {
        Some(db) => Ok(Location::parse(db)),
        None => {
            let data = std::env::var("XDG_DATA_HOME").ok();
            let home = std::env::var("HOME").ok();
            Location::default_sqlite(data.as_deref(), home.as_deref()).ok_or_else(|| {
                anyhow::anyhow!(
                    "no default history: neither XDG_DATA_HOME nor HOME is set (give --db)"
                )
            })
        }
    }
}

/// Opens the history `args` name.
pub fn open(args: &DbArgs) -> anyhow::Result<History> {
    let location = location(args.db.as_deref())?;
    let options = OpenOptions {
        wait: args.wait.unwrap_or(OpenOptions::default().wait),
    };
    Ok(History::open(&location, options)?)
}

/// Who runs this: the login name (the one behind sudo, if any), else
/// the user ID.
pub fn who() -> String {
    for var in ["SUDO_USER", "USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var)
            && !v.is_empty()
        {
            return v;
        }
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    format!("uid {}", unsafe { libc::getuid() })
}

/// The recorder for a scan with `config`: `None` with `--no-db`. A history
/// given with `--db` that cannot be opened is an error; the default one
/// only a warning (the scan runs unrecorded).
pub fn recorder(config: &Config) -> anyhow::Result<Option<Recorder>> {
    if config.no_db {
        return Ok(None);
    }
    let args = DbArgs {
        db: config.db.clone(),
        wait: config.db_wait,
    };
    let meta = ScanMeta {
        targets: config.scan.targets.join(" "),
        who: who(),
        source: "scan".into(),
    };
    match open(&args) {
        Ok(history) => Ok(Some(Recorder::new(history, meta))),
        Err(e) if config.db.is_none() && config.on_change.is_none() => {
            eprintln!(
                "portolan: warning: this scan is not recorded in the history: {}",
                for_terminal(&format!("{e:#}"))
            );
            Ok(None)
        }
        Err(e) => Err(e.context("cannot open the history (--no-db scans without one)")),
    }
}

/// `--on-change COMMAND`: when the scan just recorded differs from the
/// previous complete scan of the same targets, runs `sh -c COMMAND` with
/// the diff as JSON on its standard input. Its failure is a warning.
pub fn on_change(recorder: &mut Recorder, command: &str) -> anyhow::Result<()> {
    let Some(row) = recorder.scan()? else {
        return Ok(());
    };
    let history = recorder.history();
    let Some(previous) = history.previous(&row)? else {
        return Ok(());
    };
    let (a, b) = (history.load(&previous)?, history.load(&row)?);
    let options = portolan_history::diff::DiffOptions::default();
    let d = crate::diff::compare_stored(history, &a, &row, &b, &options);
    if !d.differs() {
        return Ok(());
    }
    let json = portolan_history::render::json(&d) + "\n";
    let mut child = std::process::Command::new("sh")
        .args(["-c", command])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("--on-change: cannot run {command:?}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is its own business.
        let _ = stdin.write_all(json.as_bytes());
    }
    let status = child
        .wait()
        .context("--on-change: waiting for the command")?;
    if !status.success() {
        eprintln!(
            "portolan: warning: --on-change command {} exited with {status}",
            for_terminal(command)
        );
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Command {
    List {
        count: usize,
        json: bool,
    },
    Show {
        id: String,
        format: char,
    },
    Host {
        addr: IpAddr,
        json: bool,
    },
    Import {
        files: Vec<String>,
        targets: Option<String>,
    },
}

fn parse(args: &[String]) -> Result<Option<(Command, DbArgs)>, UsageError> {
    let mut db = DbArgs::default();
    let mut words: Vec<String> = Vec::new();
    let mut count = 20usize;
    let mut json = false;
    let mut format = 'N';
    let mut targets = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if db.take(arg, &mut rest, "history")? {
            continue;
        }
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--json" => json = true,
            "-oN" | "-oX" | "-oJ" => format = arg.chars().nth(2).unwrap_or('N'),
            "-n" => {
                let v = rest
                    .next()
                    .ok_or_else(|| UsageError("history: -n needs a count".into()))?;
                count = v
                    .parse()
                    .map_err(|_| UsageError(format!("history: -n {v}: want a count")))?;
            }
            "--targets" => {
                targets = Some(
                    rest.next()
                        .ok_or_else(|| UsageError("history: --targets needs a value".into()))?
                        .clone(),
                )
            }
            a if a.starts_with('-') && a != "-" => {
                return Err(UsageError(format!(
                    "history: unknown option {a} (see portolan history --help)"
                )));
            }
            a => words.push(a.to_string()),
        }
    }
    let mut words = words.into_iter();
    let command = match words.next().as_deref() {
        None | Some("list") => Command::List { count, json },
        Some("show") => Command::Show {
            id: words
                .next()
                .ok_or_else(|| UsageError("history show: give a scan ID".into()))?,
            format,
        },
        Some("host") => {
            let text = words
                .next()
                .ok_or_else(|| UsageError("history host: give an address".into()))?;
            let addr = text
                .parse()
                .map_err(|_| UsageError(format!("history host: {text} is not an IP address")))?;
            Command::Host { addr, json }
        }
        Some("import") => {
            let files: Vec<String> = words.by_ref().collect();
            if files.is_empty() {
                return Err(UsageError("history import: give one or more files".into()));
            }
            Command::Import { files, targets }
        }
        Some(other) => {
            return Err(UsageError(format!(
                "history: unknown command {other:?} (list, show, host, import)"
            )));
        }
    };
    if let Some(extra) = words.next() {
        return Err(UsageError(format!(
            "history: unexpected argument {extra:?}"
        )));
    }
    Ok(Some((command, db)))
}

/// Runs `portolan history` with the arguments after `history`.
pub fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let Some((command, db)) = parse(args)? else {
        print!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    };
    let mut history = open(&db)?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match command {
        Command::List { count, json } => list(&mut history, &mut out, count, json)?,
        Command::Show { id, format } => {
            let row = history.find(&id)?;
            let scan = history.load(&row)?;
            show(&scan, &mut out, format)?;
        }
        Command::Host { addr, json } => host(&mut history, &mut out, addr, json)?,
        Command::Import { files, targets } => {
            import(&mut history, &mut out, &files, targets.as_deref())?
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn end_text(row: &ScanRow) -> String {
    match (row.end, row.interrupted) {
        (None, _) => "unfinished".into(),
        (Some(end), false) => rfc3339(end),
        (Some(end), true) => format!("{} (interrupted)", rfc3339(end)),
    }
}

fn list(h: &mut History, out: &mut impl Write, count: usize, json: bool) -> anyhow::Result<()> {
    let rows = h.scans(count)?;
    if json {
        for r in &rows {
            let v = serde_json::json!({
                "id": r.id.to_string(),
                "scanner": r.scanner,
                "version": r.version,
                "args": r.args,
                "targets": r.targets,
                "who": r.who,
                "source": r.source,
                "start": rfc3339(r.start),
                "end": r.end.map(rfc3339),
                "complete": r.complete(),
                "hosts": r.hosts,
                "hosts_up": r.hosts_up,
            });
            writeln!(out, "{v}")?;
        }
        return Ok(());
    }
    if rows.is_empty() {
        writeln!(out, "No scans in the history {}.", h.location())?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<36}  {:<20}  {:<20}  {:>9}  {:<8}  TARGETS",
        "ID", "START", "END", "UP/HOSTS", "BY"
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:<36}  {:<20}  {:<20}  {:>9}  {:<8}  {}",
            r.id,
            rfc3339(r.start),
            end_text(r),
            format!("{}/{}", r.hosts_up, r.hosts),
            for_terminal(&r.who),
            for_terminal(&r.targets),
        )?;
    }
    Ok(())
}

/// Writes a whole scan through one of the output formats.
pub fn show(
    scan: &portolan_model::ScanResults,
    out: &mut impl Write,
    format: char,
) -> anyhow::Result<()> {
    use portolan_output::Sink;
    let options = OutputOptions::default();
    let mut sink: Box<dyn Sink + '_> = match format {
        'X' => Box::new(portolan_output::xml::XmlSink::new(&mut *out, options)),
        'J' => Box::new(portolan_output::jsonl::JsonLinesSink::new(
            &mut *out, options,
        )),
        _ => Box::new(portolan_output::normal::NormalSink::file(
            &mut *out, options,
        )),
    };
    sink.begin(&scan.info())?;
    for h in &scan.hosts {
        // JSON lines carry each port on a line of its own.
        if format == 'J' {
            for outcome in &h.ports {
                sink.port(&portolan_model::PortResult {
                    addr: h.target.addr,
                    outcome: *outcome,
                })?;
            }
        }
        sink.host(h)?;
    }
    sink.end(&scan.summary())?;
    Ok(())
}

fn host(h: &mut History, out: &mut impl Write, addr: IpAddr, json: bool) -> anyhow::Result<()> {
    let history = h.host(addr)?;
    if json {
        let runs: Vec<serde_json::Value> = history
            .runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "proto": r.proto.as_str(),
                    "port": r.port,
                    "state": r.state.as_str(),
                    "service": r.service,
                    "first_seen": rfc3339(r.first_seen),
                    "last_seen": rfc3339(r.last_seen),
                    "first_scan": r.first_scan.to_string(),
                    "last_scan": r.last_scan.to_string(),
                    "scans": r.scans,
                })
            })
            .collect();
        let statuses: Vec<serde_json::Value> = history
            .statuses
            .iter()
            .map(|(id, at, status)| {
                serde_json::json!({"scan": id.to_string(), "start": rfc3339(*at), "status": status})
            })
            .collect();
        let v = serde_json::json!({"addr": addr.to_string(), "statuses": statuses, "ports": runs});
        writeln!(out, "{v}")?;
        return Ok(());
    }
    if history.statuses.is_empty() {
        writeln!(out, "{addr} is in no scan of the history {}.", h.location())?;
        return Ok(());
    }
    writeln!(
        out,
        "{addr}: in {} scans, from {} to {}",
        history.statuses.len(),
        rfc3339(history.statuses[0].1),
        rfc3339(history.statuses[history.statuses.len() - 1].1)
    )?;
    let mut last: Option<&str> = None;
    for (id, at, status) in &history.statuses {
        if last != Some(status.as_str()) {
            writeln!(out, "  host {status} from {} (scan {id})", rfc3339(*at))?;
            last = Some(status);
        }
    }
    writeln!(
        out,
        "{:<10} {:<14} {:<22} {:<20} {:<20} {:>5}",
        "PORT", "STATE", "SERVICE/VERSION", "FIRST SEEN", "LAST SEEN", "SCANS"
    )?;
    let mut previous: Option<(portolan_targets::Protocol, u16)> = None;
    for r in &history.runs {
        let spec = format!("{}/{}", r.port, r.proto.as_str());
        let service = r
            .service
            .as_ref()
            .map(|s| {
                let line = s.version_line();
                if line.is_empty() {
                    s.full_name()
                } else {
                    format!("{} {line}", s.full_name())
                }
            })
            .unwrap_or_default();
        let same_port = previous == Some((r.proto, r.port));
        writeln!(
            out,
            "{:<10} {:<14} {:<22} {:<20} {:<20} {:>5}",
            if same_port {
                "  then".to_string()
            } else {
                spec
            },
            r.state.as_str(),
            for_terminal(&service),
            rfc3339(r.first_seen),
            rfc3339(r.last_seen),
            r.scans
        )?;
        previous = Some((r.proto, r.port));
    }
    Ok(())
}

fn import(
    h: &mut History,
    out: &mut impl Write,
    files: &[String],
    targets: Option<&str>,
) -> anyhow::Result<()> {
    for file in files {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?;
        let scan = portolan_history::import::read_any(&text)
            .with_context(|| format!("{file}: not a scan file Portolan reads"))?;
        let meta = ScanMeta {
            targets: targets
                .map(String::from)
                .unwrap_or_else(|| portolan_history::import::targets_of(&scan)),
            who: who(),
            source: format!("import {file}"),
        };
        match h
            .import(&scan, &meta)
            .with_context(|| format!("cannot import {file}"))?
        {
            Some(_) => writeln!(
                out,
                "{file}: imported {} scan {} ({} hosts)",
                scan.scanner,
                scan.id,
                scan.hosts.len()
            )?,
            None => writeln!(out, "{file}: already in the history, skipped")?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<Command>, String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        parse(&args)
            .map(|o| o.map(|(c, _)| c))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn arguments() {
        assert_eq!(
            p(&[]).unwrap().unwrap(),
            Command::List {
                count: 20,
                json: false
            }
        );
        assert_eq!(
            p(&["show", "0190", "-oX", "--db", "h.sqlite"])
                .unwrap()
                .unwrap(),
            Command::Show {
                id: "0190".into(),
                format: 'X'
            }
        );
        assert!(p(&["host", "nowhere"]).unwrap_err().contains("not an IP"));
        assert!(p(&["import"]).unwrap_err().contains("one or more"));
        assert!(p(&["frobnicate"]).unwrap_err().contains("unknown command"));
        assert!(p(&["--db"]).unwrap_err().contains("needs a value"));
        assert!(p(&["--help"]).unwrap().is_none());
    }
}
