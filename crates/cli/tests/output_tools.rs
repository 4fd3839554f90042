//! The external consumers that the output tests run (xmllint, xsltproc,
//! ndiff, nmap, python-libnmap, Chromium), behind a gate like the lab's: a
//! missing tool skips the test with a `SKIPPED` line on stderr, or fails
//! it under `CI` (scripts/test installs them all).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Whether `program args...` runs and succeeds here. Under CI a failure
/// panics; otherwise it prints `SKIPPED: <test>: ...` and returns false.
#[track_caller]
pub fn require_tool(what: &str, program: &str, args: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    let location = std::panic::Location::caller();
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed>");
    if portolan_lab::under_ci() {
        panic!("{what} required (CI is set) but unavailable at {location} ({test})");
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED: {test} at {location}: {what} unavailable (scripts/test installs it)"
    );
    false
}

/// Returns from the enclosing test unless every named tool is available;
/// see [`require_tool`].
macro_rules! tools_or_skip {
    ($($tool:ident),+ $(,)?) => {
        $(
            if !crate::output_tools::$tool() {
                return;
            }
        )+
    };
}
pub(crate) use tools_or_skip;

#[track_caller]
pub fn xmllint() -> bool {
    require_tool("xmllint (libxml2-utils)", "xmllint", &["--version"])
}

#[track_caller]
pub fn xsltproc() -> bool {
    require_tool("xsltproc", "xsltproc", &["--version"])
}

#[track_caller]
pub fn ndiff() -> bool {
    require_tool("ndiff", "ndiff", &["--help"])
}

#[track_caller]
pub fn nmap() -> bool {
    require_tool("nmap", "nmap", &["--version"])
}

#[track_caller]
pub fn libnmap() -> bool {
    require_tool(
        "python-libnmap",
        "python3",
        &["-c", "import libnmap.parser"],
    )
}

#[track_caller]
pub fn chromium() -> bool {
    require_tool("chromium", "chromium", &["--version"])
}

/// Runs a command and returns its output (panics if it cannot start).
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// `xmllint --noout --dtdvalid nmap.dtd FILE`: panics with xmllint's
/// complaint unless the file is valid.
pub fn assert_dtd_valid(file: &Path) {
    let out = run(Command::new("xmllint")
        .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd"])
        .arg(file));
    assert!(
        out.status.success(),
        "{} is not valid against nmap.dtd:\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One host as python-libnmap sees it.
#[derive(Debug, serde::Deserialize)]
pub struct LibnmapHost {
    pub address: String,
    pub status: String,
    /// (port, protocol, state, service, reason) of each listed port.
    pub ports: Vec<(u16, String, String, String, String)>,
    /// The last `<extraports>` count by state (libnmap keeps only one).
    pub extra: std::collections::BTreeMap<String, u64>,
}

/// Parses an XML file with python-libnmap (`incomplete` for a file cut
/// short: the parser closes `<nmaprun>` itself).
pub fn libnmap_hosts(file: &Path, incomplete: bool) -> Vec<LibnmapHost> {
    const SCRIPT: &str = r#"
import json, sys
from libnmap.parser import NmapParser
report = NmapParser.parse(open(sys.argv[1]).read(), incomplete=sys.argv[2] == "1")
hosts = []
for h in report.hosts:
    extra = {}
    e = h.extraports_state  # libnmap keeps the last <extraports> only
    if e:
        extra[e["state"]["state"]] = int(e["count"]["count"])
    hosts.append({
        "address": h.address,
        "status": h.status,
        "ports": [[s.port, s.protocol, s.state, s.service, s.reason] for s in h.services],
        "extra": extra,
    })
print(json.dumps(hosts))
"#;
    let out = run(Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(file)
        .arg(if incomplete { "1" } else { "0" }));
    assert!(
        out.status.success(),
        "python-libnmap cannot read {}:\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}
