//! `--resume FILE` (nmap's flag): the configuration that continues an
//! interrupted or killed scan from its normal, grepable, XML or JSON-lines
//! output.
//!
//! The file gives the command line and the hosts whose records are whole
//! (`portolan_report::resume`); the scan runs again with that command
//! line, the hosts finished in every one of its normal, XML, grepable and
//! JSON-lines files excluded, and its outputs appended to, each first cut
//! after the last of those hosts (an XML file then gets its hosts and end
//! without a new start, so it stays one document; a JSON-lines file keeps
//! the lines of those hosts only, and goes on without a new `begin`).

use std::fs::OpenOptions;
use std::path::Path;

use anyhow::Context;
use portolan_report::resume::{ResumeFormat, keep_json_lines, read_resume};

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
    // The scan's files do not end at the same host when the kill came
    // between two of their writes (normal, XML, grepable, JSON lines, in
    // that order):
    // the hosts finished in every one of them count, and each file is cut
    // after the last of those, so no host is lost nor written twice. An
    // XML file then goes on without a new start.
    let outputs: Vec<std::path::PathBuf> = [
        &config.normal_out,
        &config.xml_out,
        &config.grep_out,
        &config.json_out,
    ]
    .into_iter()
    .filter_map(|file| file.as_ref()?.path.clone())
    .collect();
    let mut siblings = Vec::new();
    for file in outputs {
        let read = if same_file(Path::new(path), &file) {
            Some(resume.clone())
        } else {
            std::fs::read(&file)
                .ok()
                .and_then(|bytes| read_resume(&String::from_utf8_lossy(&bytes)).ok())
        };
        if let Some(read) = read {
            siblings.push((file, read));
        }
    }
    let kept = siblings
        .iter()
        .map(|(_, r)| r.finished.len())
        .fold(resume.finished.len(), usize::min);
    for (file, read) in &siblings {
        let cut = || -> std::io::Result<()> {
            if read.format == ResumeFormat::JsonLines {
                let text = String::from_utf8_lossy(&std::fs::read(file)?).into_owned();
                std::fs::write(file, keep_json_lines(&text, &resume.finished[..kept]))
            } else {
                OpenOptions::new()
                    .write(true)
                    .open(file)?
                    .set_len(read.cut_after(kept) as u64)
            }
        };
        cut().with_context(|| format!("--resume: cannot cut {}", file.display()))?;
        match read.format {
            ResumeFormat::Xml => config.xml_continue = true,
            ResumeFormat::JsonLines => config.json_continue = true,
            _ => {}
        }
    }
    config
        .scan
        .excludes
        .extend(resume.finished[..kept].iter().map(ToString::to_string));
    Ok((resumed, config))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
