//! `portolan diff A B`: two scans compared, from the history (scan IDs,
//! or `--last`) or from files (nmap XML, Portolan JSON lines, masscan);
//! text, JSON or ndiff's XML. Exit status as ndiff's: 0 when the scans
//! are the same, 1 when they differ, 2 on an error.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;
use portolan_history::diff::{DiffOptions, ScanDiff, diff};
use portolan_history::{History, ScanRow};
use portolan_model::ScanResults;

use crate::args::UsageError;
use crate::history::DbArgs;

const USAGE: &str = r#"usage: portolan diff A B [--json|--xml] [--expiring DAYS] [--unconfirmed] [--db PATH|URL]
       portolan diff --last [TARGETS] [options]

Compares scan A (earlier) with scan B (later). Each is a scan ID (or a prefix
of 4 characters or more) from the history, or a file: nmap XML (nmap's own
too), Portolan JSON lines, masscan -oL or -oJ. --last compares the two latest
complete scans of the same targets (of TARGETS, as typed, when given).

Reported: hosts up and down, ports opened, closed or filtered, services and
versions changed, certificates changed, banners changed, scripts' output (host
and port scripts) and OS matches changed; certificates of B expiring within
--expiring DAYS (30) are listed, with their days left, but do not make the
scans differ. Ports only counted by state (nmap's "Not shown", <extraports>)
are shown when their counts changed but do not by themselves make the scans
differ: they move with the ports listed.

Banners: a service's first bytes count as changed only when what is stable in
them changed. Binary banners (TLS handshakes, database greetings with salts)
are not compared; TLS services are compared by certificate. In text banners
these are masked before comparing: values of the HTTP headers Date, Expires,
Last-Modified, Set-Cookie, ETag, Age, Content-Length and request IDs; weekday
and month names, day numbers beside a month, times and dates; numbers of 4
digits or more; hex runs of 8 or more; words of 12 letters and digits or more
with a digit, and any word of 20 or more. So "220 FooFTP 1.2" against
"220 FooFTP 1.3" is a change, a greeting's clock or a session token is not.

Confirmation: weak evidence is not reported as a change until a second scan
agrees. A port that turned open|filtered (silence: a filter, or one lost
datagram), or that was open and is now filtered after one silent probe (nmap's
files do not say how many, so they count as one), is listed as unconfirmed and
does not count; it counts once the scan before B in the history saw the same
(scan IDs only), or with --unconfirmed.

Output: text (the default, after ndiff's), --json (one object), --xml (ndiff's
<nmapdiff> XML: nmaprun, hostdiff, extraports, portdiff, os, script and
hostscript, with a and b around what changed). Exit status: 0 same, 1
different, 2 error.
"#;

#[derive(Debug, Default)]
struct DiffArgs {
    scans: Vec<String>,
    last: bool,
    format: Format,
    options: DiffOptions,
    db: DbArgs,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Format {
    #[default]
    Text,
    Json,
    Xml,
}

fn parse(args: &[String]) -> Result<Option<DiffArgs>, UsageError> {
    let mut d = DiffArgs::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if d.db.take(arg, &mut rest, "diff")? {
            continue;
        }
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--json" => d.format = Format::Json,
            "--xml" => d.format = Format::Xml,
            "--last" => d.last = true,
            "--unconfirmed" => d.options.report_unconfirmed = true,
            "--expiring" => {
                let v = rest
                    .next()
                    .ok_or_else(|| UsageError("diff: --expiring needs a number of days".into()))?;
                d.options.expiring_days = v
                    .parse()
                    .map_err(|_| UsageError(format!("diff: --expiring {v}: want days")))?;
            }
            a if a.starts_with('-') && a != "-" => {
                return Err(UsageError(format!(
                    "diff: unknown option {a} (see portolan diff --help)"
                )));
            }
            a => d.scans.push(a.to_string()),
        }
    }
    match (d.last, d.scans.len()) {
        (true, 0 | 1) | (false, 2) => Ok(Some(d)),
        (true, _) => Err(UsageError("diff: --last takes at most the targets".into())),
        (false, _) => Err(UsageError(
            "diff: give two scans (IDs or files), or --last; see portolan diff --help".into(),
        )),
    }
}

/// Runs `portolan diff`; errors are reported here, with status 2.
pub fn run(args: &[String]) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            if e.chain()
                .filter_map(|e| e.downcast_ref::<io::Error>())
                .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("portolan: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// One side: a scan, and its row when it came from the history.
struct Side {
    row: Option<ScanRow>,
    scan: ScanResults,
}

fn side(text: &str, history: &mut Option<History>, db: &DbArgs) -> anyhow::Result<Side> {
    let path = std::path::Path::new(text);
    if path.is_file() {
        let content =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {text}"))?;
        let scan = portolan_history::import::read_any(&content)
            .with_context(|| format!("{text}: not a scan file Portolan reads"))?;
        return Ok(Side { row: None, scan });
    }
    let h = match history {
        Some(h) => h,
        None => history.insert(crate::history::open(db)?),
    };
    let row = h
        .find(text)
        .with_context(|| format!("{text} is neither a file nor a scan of the history"))?;
    let scan = h.load(&row)?;
    Ok(Side {
        row: Some(row),
        scan,
    })
}

/// Compares two scans of a history, with its confirmations.
pub fn compare_stored(
    history: &mut History,
    a: &ScanResults,
    b_row: &ScanRow,
    b: &ScanResults,
    options: &DiffOptions,
) -> ScanDiff {
    let mut confirmed = |addr, proto, port| {
        history
            .times_seen(b_row, addr, proto, port)
            .is_ok_and(|n| n >= 2)
    };
    diff(a, b, options, &mut confirmed)
}

fn run_inner(args: &[String]) -> anyhow::Result<ExitCode> {
    let Some(args) = parse(args)? else {
        print!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    };
    let mut history = None;
    let (a, b) = if args.last {
        let h = history.insert(crate::history::open(&args.db)?);
        let (ra, rb) = h.last_two(args.scans.first().map(String::as_str))?;
        let (a, b) = (h.load(&ra)?, h.load(&rb)?);
        (
            Side {
                row: Some(ra),
                scan: a,
            },
            Side {
                row: Some(rb),
                scan: b,
            },
        )
    } else {
        (
            side(&args.scans[0], &mut history, &args.db)?,
            side(&args.scans[1], &mut history, &args.db)?,
        )
    };
    let d = match (&b.row, history.as_mut()) {
        (Some(row), Some(h)) => compare_stored(h, &a.scan, row, &b.scan, &args.options),
        _ => diff(&a.scan, &b.scan, &args.options, &mut |_, _, _| false),
    };
    let text = match args.format {
        Format::Text => portolan_history::render::text(&d),
        Format::Json => portolan_history::render::json(&d) + "\n",
        Format::Xml => portolan_history::render::xml(&d),
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::from(u8::from(d.differs())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<DiffArgs>, String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        parse(&args).map_err(|e| e.to_string())
    }

    #[test]
    fn arguments() {
        let d = p(&["a.xml", "b.xml", "--json", "--expiring", "7"])
            .unwrap()
            .unwrap();
        assert_eq!((d.format, d.options.expiring_days), (Format::Json, 7));
        assert!(p(&["--last"]).unwrap().unwrap().last);
        assert!(p(&["--last", "198.18.0.0/24"]).unwrap().is_some());
        assert!(p(&["a"]).unwrap_err().contains("give two scans"));
        assert!(p(&["--last", "a", "b"]).unwrap_err().contains("at most"));
        assert!(
            p(&["a", "b", "--expiring", "x"])
                .unwrap_err()
                .contains("want days")
        );
        assert!(p(&["--help"]).unwrap().is_none());
    }
}
