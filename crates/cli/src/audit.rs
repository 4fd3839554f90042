//! `portolan audit`: a scan checked against an exposure policy (`--policy
//! FILE`) and/or the built-in catalogue of risky exposures (`--risky`);
//! and the policy check during a scan (`portolan ... --policy FILE`,
//! [`LiveAudit`]): each host checked as it is written, its violations
//! printed after it, a summary at the end. Exit status: 0 no violation, 1
//! violations, 2 error.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use portolan_history::audit::{audit, audit_host};
use portolan_history::policy::Policy;
use portolan_model::{HostReport, ScanInfo, ScanResults};

use crate::args::UsageError;
use crate::history::DbArgs;

const USAGE: &str = r#"usage: portolan audit [--policy FILE.toml] [--risky] [--json] [SCAN] [--db PATH|URL]

Checks a scan against a written exposure policy and/or the built-in catalogue
of risky exposures, and reports each violation with its evidence. SCAN is a
scan ID (or prefix) of the history, or a file (nmap XML, JSON lines, masscan);
by default the latest complete scan of the history. Exit status: 0 no
violation, 1 violations, 2 error (a policy error names its line and column).

Policy (TOML):
  [default]                        # every host
  tcp = [22, "8000-8010"]          # TCP ports that may be open
  udp = [53]                       # UDP ports that may be open
  services = ["ssh"]               # services that may be open on any port
  closed = [113]                   # ports that must answer closed, not be dropped
  forbidden_services = ["telnet"]  # services that must never be open
  min_cert_days = 21               # days a certificate must have left
  risky = true                     # also apply the catalogue (as --risky)
  [[zone]]                         # more for some hosts (allowances add up)
  name = "web"
  networks = ["198.18.0.0/28"]     # and/or hosts = [...], tags = [...]
  tcp = [80, 443]
  [tags]
  mx = ["198.18.0.25"]

--risky: telnet, FTP (anonymous), SMB 445/139, RDP, VNC, SSDP 1900/udp,
memcached 11211/udp, NTP monlist 123/udp, open resolvers 53/udp, SNMP public
161/udp, mDNS 5353/udp, Redis, MongoDB, Elasticsearch, Docker API without TLS,
and 113 dropped instead of closed; each with its reason and a reference.
"#;

#[derive(Debug, Default)]
struct AuditArgs {
    policy: Option<PathBuf>,
    risky: bool,
    json: bool,
    scan: Option<String>,
    db: DbArgs,
}

fn parse(args: &[String]) -> Result<Option<AuditArgs>, UsageError> {
    let mut a = AuditArgs::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if a.db.take(arg, &mut rest, "audit")? {
            continue;
        }
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--risky" => a.risky = true,
            "--json" => a.json = true,
            "--policy" => {
                a.policy =
                    Some(PathBuf::from(rest.next().ok_or_else(|| {
                        UsageError("audit: --policy needs a file".into())
                    })?))
            }
            s if s.starts_with("--policy=") => a.policy = Some(PathBuf::from(&s[9..])),
            s if s.starts_with('-') => {
                return Err(UsageError(format!(
                    "audit: unknown option {s} (see portolan audit --help)"
                )));
            }
            s if a.scan.is_none() => a.scan = Some(s.to_string()),
            s => return Err(UsageError(format!("audit: one scan only (got {s} too)"))),
        }
    }
    if a.policy.is_none() && !a.risky {
        return Err(UsageError(
            "audit: give --policy FILE, --risky, or both; see portolan audit --help".into(),
        ));
    }
    Ok(Some(a))
}

/// Reads a policy file; its errors are usage errors naming the file,
/// line and column.
pub fn read_policy(path: &Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy {}", path.display()))?;
    Policy::parse(&text).map_err(|e| UsageError(format!("policy {}: {e}", path.display())).into())
}

/// Runs `portolan audit`; errors are reported here, with status 2.
pub fn run(args: &[String]) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("portolan: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(args: &[String]) -> anyhow::Result<ExitCode> {
    let Some(args) = parse(args)? else {
        print!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    };
    let mut policy = match &args.policy {
        Some(path) => read_policy(path)?,
        None => Policy::default(),
    };
    if args.risky {
        policy.default.risky = Some(true);
    }
    let scan = load(args.scan.as_deref(), &args.db)?;
    let report = audit(&scan, &policy);
    let text = if args.json {
        report.json() + "\n"
    } else {
        report.text()
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::from(u8::from(!report.violations.is_empty())))
}

fn load(scan: Option<&str>, db: &DbArgs) -> anyhow::Result<ScanResults> {
    if let Some(text) = scan
        && Path::new(text).is_file()
    {
        let content =
            std::fs::read_to_string(text).with_context(|| format!("cannot read {text}"))?;
        return portolan_history::import::read_any(&content)
            .with_context(|| format!("{text}: not a scan file Portolan reads"));
    }
    let mut history = crate::history::open(db)?;
    let row = match scan {
        Some(id) => history
            .find(id)
            .with_context(|| format!("{id} is neither a file nor a scan of the history"))?,
        None => history
            .latest_complete()?
            .ok_or_else(|| anyhow::anyhow!("no complete scan in the history to audit"))?,
    };
    Ok(history.load(&row)?)
}

/// `--policy` during a scan: each host audited as the scan writes it, its
/// violations printed right after it (on standard output, or standard
/// error when a format took standard output with `-`), and a summary
/// when the scan ends.
pub struct LiveAudit {
    policy: Policy,
    to_stderr: bool,
    scan: String,
    start: std::time::SystemTime,
    hosts: usize,
    violations: usize,
    error: Option<io::Error>,
}

impl LiveAudit {
    /// An audit against `policy`, printing to standard error when
    /// `to_stderr`.
    pub fn new(policy: Policy, to_stderr: bool) -> LiveAudit {
        LiveAudit {
            policy,
            to_stderr,
            scan: String::new(),
            start: std::time::SystemTime::UNIX_EPOCH,
            hosts: 0,
            violations: 0,
            error: None,
        }
    }

    fn write(&mut self, text: &str) {
        if self.error.is_some() || text.is_empty() {
            return;
        }
        let result = if self.to_stderr {
            io::stderr().lock().write_all(text.as_bytes())
        } else {
            let mut out = io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|()| out.flush())
        };
        if let Err(e) = result {
            self.error = Some(e);
        }
    }

    /// The scan started.
    pub fn started(&mut self, info: &ScanInfo) {
        let header = ScanResults::begin(info);
        self.scan = header.id.to_string();
        self.start = header.start;
    }

    /// A host was written: its violations now.
    pub fn host(&mut self, host: &HostReport) {
        if !matches!(host.status, portolan_model::HostStatus::Up(_)) {
            return;
        }
        self.hosts += 1;
        let violations = audit_host(host, &self.policy, self.start);
        self.violations += violations.len();
        let text: String = violations.iter().map(|v| v.text()).collect();
        self.write(&text);
    }

    /// The scan ended: the summary; whether there were violations.
    pub fn finish(mut self) -> anyhow::Result<bool> {
        let summary = format!(
            "Audit of scan {} ({}): {} hosts up, {} violations\n",
            self.scan,
            portolan_model::time::rfc3339(self.start),
            self.hosts,
            self.violations
        );
        self.write(&summary);
        if let Some(e) = self.error.take()
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            return Err(anyhow::Error::new(e).context("writing the audit failed"));
        }
        Ok(self.violations > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<AuditArgs>, String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        parse(&args).map_err(|e| e.to_string())
    }

    #[test]
    fn arguments() {
        let a = p(&["--policy", "p.toml", "0190abcd"]).unwrap().unwrap();
        assert_eq!(a.scan.as_deref(), Some("0190abcd"));
        assert!(p(&["--risky"]).unwrap().unwrap().risky);
        assert!(p(&[]).unwrap_err().contains("--policy FILE, --risky"));
        assert!(
            p(&["--risky", "a", "b"])
                .unwrap_err()
                .contains("one scan only")
        );
        assert!(p(&["--help"]).unwrap().is_none());
    }
}
