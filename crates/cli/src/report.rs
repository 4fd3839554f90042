//! `portolan report FILE [-o OUT]`: one self-contained HTML page from a
//! scan's XML (`-oX`, or nmap's) or JSON lines (`-oJ`); `-` reads standard
//! input, and without `-o` the page goes to standard output.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::args::UsageError;

const USAGE: &str = "usage: portolan report FILE.xml|FILE.jsonl [-o REPORT.html]\n\
\n\
Writes one HTML page (no network fetches) from a scan's XML (-oX, also\n\
nmap's) or JSON lines (-oJ): state counts, a timeline of send and reply\n\
rates (JSON lines only), a host x port matrix, and each host's ports.\n\
FILE may be - for standard input; without -o the page goes to standard\n\
output.\n";

#[derive(Debug)]
struct ReportArgs {
    input: String,
    output: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Option<ReportArgs>, UsageError> {
    let mut input = None;
    let mut output = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "-o" | "--output" => {
                let value = rest
                    .next()
                    .ok_or_else(|| UsageError(format!("report: {arg} needs a file name")))?;
                output = Some(PathBuf::from(value));
            }
            a if a.starts_with("--output=") => output = Some(PathBuf::from(&a[9..])),
            a if a.starts_with('-') && a != "-" => {
                return Err(UsageError(format!(
                    "report: unknown option {a} (see portolan report --help)"
                )));
            }
            a if input.is_none() => input = Some(a.to_string()),
            a => {
                return Err(UsageError(format!(
                    "report: one input file only (got {a} too)"
                )));
            }
        }
    }
    let input = input.ok_or_else(|| {
        UsageError(
            "report: give a scan file (XML or JSON lines); see portolan report --help".into(),
        )
    })?;
    Ok(Some(ReportArgs { input, output }))
}

/// Runs `portolan report` with the arguments after `report`.
pub fn run(args: &[String], version: &str) -> anyhow::Result<ExitCode> {
    let Some(args) = parse(args)? else {
        print!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    };
    let mut text = String::new();
    if args.input == "-" {
        io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
    } else {
        text = std::fs::read_to_string(&args.input)
            .with_context(|| format!("cannot read {}", args.input))?;
    }
    let report = portolan_report::read(&text)
        .with_context(|| format!("{} is not a scan's XML or JSON lines", args.input))?;
    let page = portolan_report::html::render(&report, &format!("Portolan {version}"));
    match &args.output {
        Some(path) => std::fs::write(path, page)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut out = io::stdout().lock();
            out.write_all(page.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<ReportArgs>, String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        parse(&args).map_err(|e| e.to_string())
    }

    #[test]
    fn arguments() {
        let a = p(&["scan.xml", "-o", "r.html"]).unwrap().unwrap();
        assert_eq!(
            (a.input.as_str(), a.output),
            ("scan.xml", Some("r.html".into()))
        );
        let a = p(&["--output=r.html", "-"]).unwrap().unwrap();
        assert_eq!(a.input, "-");
        assert!(p(&["--help"]).unwrap().is_none());
        assert!(p(&[]).unwrap_err().contains("give a scan file"));
        assert!(p(&["a", "b"]).unwrap_err().contains("one input file"));
        assert!(p(&["a", "-o"]).unwrap_err().contains("-o needs"));
        assert!(p(&["-x", "a"]).unwrap_err().contains("unknown option -x"));
    }
}
