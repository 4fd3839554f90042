//! `--resume FILE` (nmap's flag): the configuration that continues an
//! interrupted or killed scan from its normal, grepable or XML output.
//!
//! The file gives the command line and the hosts whose records are whole
//! (`portolan_report::resume`); the scan runs again with that command
//! line, those hosts excluded, and its outputs appended to (an XML file
//! is first cut after its last whole `<host>`, and its hosts and end are
//! then written without a new start, so it stays one document).

use std::fs::OpenOptions;
use std::path::Path;

use anyhow::Context;
use portolan_report::resume::{ResumeFormat, read_resume};

use crate::args::{self, Config, UsageError};
use crate::flags;

/// `argv` is `portolan --resume FILE`: the command line to record and the
/// configuration of the rest of the scan.
pub fn config(argv: &[String]) -> anyhow::Result<(Vec<String>, Config)> {
    let [program, _, path] = argv else {
        return Err(UsageError(
            "--resume takes one file and no other option: portolan --resume FILE".to_string(),
        )
        .into());
    };
    let bytes = std::fs::read(path).with_context(|| format!("--resume: cannot read {path}"))?;
    let text = String::from_utf8_lossy(&bytes);
    let resume = read_resume(&text).map_err(|e| UsageError(format!("--resume {path}: {e}")))?;
    let mut resumed = vec![program.clone()];
    resumed.extend(
        resume
            .args
            .iter()
            .filter(|a| a.as_str() != "--append-output")
            .cloned(),
    );
    resumed.push("--append-output".to_string());
    let parsed = flags::parse(resumed.iter().skip(1).cloned())
        .map_err(|e| UsageError(format!("--resume {path}: its command line: {e}")))?;
    let read_list =
        |path: &str| portolan_targets::read_target_file(path).map_err(|e| e.to_string());
    let mut config = args::resolve(&parsed, &read_list)?;
    config
        .scan
        .excludes
        .extend(resume.finished.iter().map(ToString::to_string));
    // The XML file, the one resumed from or another of the same scan
    // (-oA), goes on after its last whole host.
    if let Some(xml) = config.xml_out.as_ref().and_then(|f| f.path.clone()) {
        let same = resume.format == ResumeFormat::Xml && same_file(Path::new(path), &xml);
        let cut = if same {
            resume.xml_resume_at
        } else {
            std::fs::read(&xml).ok().and_then(|bytes| {
                read_resume(&String::from_utf8_lossy(&bytes))
                    .ok()
                    .and_then(|r| r.xml_resume_at)
            })
        };
        if let Some(at) = cut {
            OpenOptions::new()
                .write(true)
                .open(&xml)
                .and_then(|f| f.set_len(at as u64))
                .with_context(|| format!("--resume: cannot cut {}", xml.display()))?;
            config.xml_continue = true;
        }
    }
    Ok((resumed, config))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
