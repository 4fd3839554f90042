//! The nmap-service-probes file format: a parser into a [`ProbeDb`].
//!
//! The format is line based (read <https://nmap.org/book/vscan-fileformat.html>
//! first): `Exclude` at the top, then one `Probe TCP|UDP name q|payload|`
//! per probe, each followed by its directives (`match`, `softmatch`,
//! `ports`, `sslports`, `rarity`, `fallback`, `totalwaitms`,
//! `tcpwrappedms`). A `match` line reads
//! `match <service> m<d>pattern<d>[is] [p/../ v/../ i/../ h/../ o/../ d/../ cpe:/../[a]]`
//! where each delimiter `<d>` is any character and ends at its next
//! occurrence (there is no escaping of the delimiter).
//!
//! Contract: [`parse`] never panics, whatever the bytes; every bad line is
//! reported as a [`ParseError`] carrying its line number and is skipped, and
//! the rest of the file still loads. Patterns are compiled here (PCRE2, see
//! [`crate::pattern`]), so a database that parsed is ready to match.

use std::time::Duration;

use crate::pattern::{Pattern, PatternError};
use crate::template::VersionFields;

/// nmap's default wait for a probe's answer.
pub const DEFAULT_TOTALWAIT: Duration = Duration::from_millis(5000);
/// nmap's default window in which a silent close means `tcpwrapped`.
pub const DEFAULT_TCPWRAPPED: Duration = Duration::from_millis(2000);
/// The rarity of a probe that names none.
pub const DEFAULT_RARITY: u8 = 5;
/// Longest wait a file may ask for (`totalwaitms`, `tcpwrappedms`).
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// The transport a probe is sent over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A TCP connection.
    Tcp,
    /// One UDP datagram.
    Udp,
}

/// A set of port ranges (`ports`, `sslports`, `Exclude`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSet {
    ranges: Vec<(u16, u16)>,
}

impl PortSet {
    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    fn extend(&mut self, other: PortSet) {
        self.ranges.extend(other.ranges);
    }
}

/// The ports the file's `Exclude` line keeps away from version detection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exclusions {
    /// Excluded TCP ports.
    pub tcp: PortSet,
    /// Excluded UDP ports.
    pub udp: PortSet,
}

/// One `match` or `softmatch` line.
#[derive(Debug)]
pub struct MatchRule {
    /// The service it names (`http`, `ssh`, `ssl`, ...).
    pub service: String,
    /// `softmatch`: the service is known, the product not yet.
    pub soft: bool,
    /// The compiled pattern.
    pub pattern: Pattern,
    /// The version fields, with `$1`-style references.
    pub template: VersionFields,
    /// Where it stands in the file (1-based).
    pub line: usize,
}

/// One `Probe` and its directives.
#[derive(Debug)]
pub struct Probe {
    /// TCP or UDP.
    pub transport: Transport,
    /// Its name (`NULL`, `GetRequest`, ...).
    pub name: String,
    /// The bytes to send (empty for the NULL probe).
    pub payload: Vec<u8>,
    /// Ports where this probe is likely to succeed (tried whatever the
    /// intensity).
    pub ports: PortSet,
    /// The same, for services inside TLS.
    pub sslports: PortSet,
    /// 1 (common) to 9 (rare).
    pub rarity: u8,
    /// Names of the probes whose rules also apply to this probe's answer.
    pub fallback: Vec<String>,
    /// [`Probe::fallback`] resolved to indices in [`ProbeDb::probes`].
    pub fallback_index: Vec<usize>,
    /// How long to wait for the answer.
    pub totalwait: Duration,
    /// A close without data within this window means `tcpwrapped`.
    pub tcpwrapped: Duration,
    /// Its rules, in file order.
    pub rules: Vec<MatchRule>,
    /// Where the `Probe` line stands (1-based).
    pub line: usize,
}

impl Probe {
    /// Whether this is the NULL probe (send nothing, read the banner).
    pub fn is_null(&self) -> bool {
        self.payload.is_empty()
    }
}

/// A loaded probe database.
#[derive(Debug, Default)]
pub struct ProbeDb {
    /// Probes in file order.
    pub probes: Vec<Probe>,
    /// The `Exclude` directive.
    pub exclude: Exclusions,
}

impl ProbeDb {
    /// The index of the probe named `name` over `transport`.
    pub fn find(&self, transport: Transport, name: &str) -> Option<usize> {
        self.probes
            .iter()
            .position(|p| p.transport == transport && p.name == name)
    }

    /// How many match and softmatch rules were loaded.
    pub fn rule_count(&self) -> usize {
        self.probes.iter().map(|p| p.rules.len()).sum()
    }

    /// The rules that apply to the answer to probe `index`: its own, its
    /// fallbacks', then (for TCP) the NULL probe's, as nmap does.
    pub fn rules_for(&self, index: usize) -> impl Iterator<Item = &MatchRule> {
        let probe = self.probes.get(index);
        let transport = probe.map(|p| p.transport);
        let fallbacks = probe.map_or(&[][..], |p| &p.fallback_index[..]);
        let null = self
            .probes
            .iter()
            .position(|p| p.is_null() && Some(p.transport) == transport)
            .filter(|&n| {
                transport == Some(Transport::Tcp) && n != index && !fallbacks.contains(&n)
            });
        probe
            .map(|_| index)
            .into_iter()
            .chain(fallbacks.iter().copied())
            .chain(null)
            .flat_map(|i| self.probes[i].rules.iter())
    }

    /// Matches the answer to probe `index`: the first hard match, or else
    /// the first soft match. `only` restricts the rules to one service
    /// (after a soft match).
    pub fn identify(
        &self,
        index: usize,
        answer: &[u8],
        only: Option<&str>,
    ) -> Option<Identified<'_>> {
        let mut soft = None;
        for rule in self.rules_for(index) {
            if only.is_some_and(|s| s != rule.service) || (rule.soft && soft.is_some()) {
                continue;
            }
            let Some(groups) = rule.pattern.captures(answer) else {
                continue;
            };
            let found = Identified {
                rule,
                fields: rule.template.fill(&groups),
            };
            if !rule.soft {
                return Some(found);
            }
            soft = Some(found);
        }
        soft
    }
}

/// A rule that matched an answer, and the version fields it filled.
#[derive(Debug)]
pub struct Identified<'a> {
    /// The rule.
    pub rule: &'a MatchRule,
    /// Its fields, filled from the answer.
    pub fields: crate::template::VersionFields,
}

/// What is wrong with a line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The first word is no directive of the format.
    #[error("unknown directive \"{0}\"")]
    UnknownDirective(String),
    /// A probe directive came before any `Probe` line.
    #[error("\"{0}\" before any Probe line")]
    OutsideProbe(String),
    /// The `Probe` line is malformed.
    #[error("bad Probe line: {0}")]
    BadProbe(String),
    /// A delimited field has no closing delimiter.
    #[error("unterminated {0} field")]
    Unterminated(&'static str),
    /// A `\` escape in a probe string is not one of the format's.
    #[error("bad escape \"{0}\" in the probe string")]
    BadEscape(String),
    /// A `match` line is malformed.
    #[error("bad match line: {0}")]
    BadMatch(String),
    /// The pattern did not compile, or matches the empty string.
    #[error("pattern: {0}")]
    Pattern(#[from] PatternError),
    /// A port list is malformed.
    #[error("bad port list \"{0}\"")]
    BadPorts(String),
    /// A number is malformed or out of range.
    #[error("bad number \"{0}\"")]
    BadNumber(String),
    /// A fallback names no probe.
    #[error("fallback to unknown probe \"{0}\"")]
    UnknownFallback(String),
    /// Two probes of one transport share a name.
    #[error("duplicate probe \"{0}\"")]
    DuplicateProbe(String),
}

/// A bad line, and where it is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// A database and the lines that were skipped.
#[derive(Debug, Default)]
pub struct Parsed {
    /// What loaded.
    pub db: ProbeDb,
    /// Every skipped line, in file order.
    pub errors: Vec<ParseError>,
}

/// Parses a whole file. Never panics; see the module doc.
pub fn parse(text: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let trimmed = trim(raw);
        if trimmed.is_empty() || trimmed[0] == b'#' {
            continue;
        }
        if let Err(kind) = parse_line(&mut parsed.db, trimmed, line) {
            parsed.errors.push(ParseError { line, kind });
        }
    }
    resolve_fallbacks(&mut parsed);
    parsed
}

fn resolve_fallbacks(parsed: &mut Parsed) {
    let names: Vec<(Transport, String)> = parsed
        .db
        .probes
        .iter()
        .map(|p| (p.transport, p.name.clone()))
        .collect();
    for probe in &mut parsed.db.probes {
        let mut index = Vec::new();
        for name in &probe.fallback {
            // A fallback names a probe of the same transport, or else of
            // the other one (nmap's TCP DNS probe falls back to the UDP one).
            let same = names
                .iter()
                .position(|(t, n)| *t == probe.transport && n == name);
            match same.or_else(|| names.iter().position(|(_, n)| n == name)) {
                Some(i) => index.push(i),
                None => parsed.errors.push(ParseError {
                    line: probe.line,
                    kind: ParseErrorKind::UnknownFallback(name.clone()),
                }),
            }
        }
        probe.fallback_index = index;
    }
    parsed.errors.sort_by_key(|e| e.line);
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Splits off the first whitespace-delimited word.
fn word(s: &[u8]) -> (&[u8], &[u8]) {
    let end = s
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(s.len());
    (&s[..end], trim(&s[end..]))
}

fn lossy(s: &[u8]) -> String {
    String::from_utf8_lossy(s).into_owned()
}

fn parse_line(db: &mut ProbeDb, line: &[u8], number: usize) -> Result<(), ParseErrorKind> {
    let (directive, rest) = word(line);
    match directive {
        b"Probe" => {
            let probe = parse_probe(rest, number)?;
            if db.find(probe.transport, &probe.name).is_some() {
                return Err(ParseErrorKind::DuplicateProbe(probe.name));
            }
            db.probes.push(probe);
            return Ok(());
        }
        b"Exclude" => {
            let (tcp, udp) = parse_ports(rest, true)?;
            db.exclude.tcp.extend(tcp);
            db.exclude.udp.extend(udp);
            return Ok(());
        }
        _ => {}
    }
    let known = matches!(
        directive,
        b"match"
            | b"softmatch"
            | b"ports"
            | b"sslports"
            | b"rarity"
            | b"fallback"
            | b"totalwaitms"
            | b"tcpwrappedms"
    );
    if !known {
        return Err(ParseErrorKind::UnknownDirective(lossy(directive)));
    }
    let Some(probe) = db.probes.last_mut() else {
        return Err(ParseErrorKind::OutsideProbe(lossy(directive)));
    };
    match directive {
        b"match" | b"softmatch" => {
            let rule = parse_match(rest, directive == b"softmatch", number)?;
            probe.rules.push(rule);
        }
        b"ports" => probe.ports.extend(parse_ports(rest, false)?.0),
        b"sslports" => probe.sslports.extend(parse_ports(rest, false)?.0),
        b"rarity" => {
            let n = number_in(rest, 1, 9)?;
            probe.rarity = n as u8;
        }
        b"fallback" => probe.fallback.extend(
            rest.split(|&b| b == b',')
                .map(trim)
                .filter(|s| !s.is_empty())
                .map(lossy),
        ),
        b"totalwaitms" => probe.totalwait = wait(rest)?,
        _ => probe.tcpwrapped = wait(rest)?,
    }
    Ok(())
}

fn number_in(s: &[u8], lo: u64, hi: u64) -> Result<u64, ParseErrorKind> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|n| (lo..=hi).contains(n))
        .ok_or_else(|| ParseErrorKind::BadNumber(lossy(s)))
}

fn wait(s: &[u8]) -> Result<Duration, ParseErrorKind> {
    number_in(s, 1, MAX_WAIT.as_millis() as u64).map(Duration::from_millis)
}

fn parse_probe(rest: &[u8], line: usize) -> Result<Probe, ParseErrorKind> {
    let (proto, rest) = word(rest);
    let transport = match proto {
        b"TCP" => Transport::Tcp,
        b"UDP" => Transport::Udp,
        other => {
            return Err(ParseErrorKind::BadProbe(format!(
                "transport \"{}\" is neither TCP nor UDP",
                lossy(other)
            )));
        }
    };
    let (name, rest) = word(rest);
    if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic()) {
        return Err(ParseErrorKind::BadProbe(format!(
            "bad probe name \"{}\"",
            lossy(name)
        )));
    }
    let Some(after_q) = rest.strip_prefix(b"q") else {
        return Err(ParseErrorKind::BadProbe(
            "the probe string must start with q".into(),
        ));
    };
    let (raw, tail) = delimited(after_q, "probe string")?;
    let payload = unescape(raw)?;
    let tail = trim(tail);
    if !tail.is_empty() && tail != b"no-payload" {
        return Err(ParseErrorKind::BadProbe(format!(
            "unexpected \"{}\" after the probe string",
            lossy(tail)
        )));
    }
    Ok(Probe {
        transport,
        name: lossy(name),
        payload,
        ports: PortSet::default(),
        sslports: PortSet::default(),
        rarity: DEFAULT_RARITY,
        fallback: Vec::new(),
        fallback_index: Vec::new(),
        totalwait: DEFAULT_TOTALWAIT,
        tcpwrapped: DEFAULT_TCPWRAPPED,
        rules: Vec::new(),
        line,
    })
}

/// Reads `<d>content<d>` where `<d>` is the first byte; returns the
/// content and what follows the closing delimiter.
fn delimited<'a>(s: &'a [u8], what: &'static str) -> Result<(&'a [u8], &'a [u8]), ParseErrorKind> {
    let (&delim, body) = s.split_first().ok_or(ParseErrorKind::Unterminated(what))?;
    if delim.is_ascii_whitespace() {
        return Err(ParseErrorKind::Unterminated(what));
    }
    let end = body
        .iter()
        .position(|&b| b == delim)
        .ok_or(ParseErrorKind::Unterminated(what))?;
    Ok((&body[..end], &body[end + 1..]))
}

/// Decodes a probe string's escapes: `\\ \0 \a \b \f \n \r \t \v \xHH`,
/// and `\` before any other punctuation stands for that character.
pub fn unescape(s: &[u8]) -> Result<Vec<u8>, ParseErrorKind> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = s.get(i) else {
            return Err(ParseErrorKind::BadEscape("\\".into()));
        };
        i += 1;
        let byte = match e {
            b'0' => 0,
            b'a' => 0x07,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            b'x' => {
                let hex = s.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                let value = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                match value {
                    Some(v) => {
                        i += 2;
                        v
                    }
                    None => {
                        let end = (i + 2).min(s.len());
                        return Err(ParseErrorKind::BadEscape(format!(
                            "\\x{}",
                            lossy(&s[i..end])
                        )));
                    }
                }
            }
            e if e.is_ascii_alphanumeric() => {
                return Err(ParseErrorKind::BadEscape(format!("\\{}", e as char)));
            }
            e => e,
        };
        out.push(byte);
    }
    Ok(out)
}

/// Parses `22,80-90` (or with `T:`/`U:` prefixes when `by_protocol`).
/// Unprefixed ports go to the first set (TCP).
fn parse_ports(s: &[u8], by_protocol: bool) -> Result<(PortSet, PortSet), ParseErrorKind> {
    let bad = || ParseErrorKind::BadPorts(lossy(s));
    let text = std::str::from_utf8(s).map_err(|_| bad())?;
    let mut tcp = PortSet::default();
    let mut udp = PortSet::default();
    let mut udp_now = false;
    for item in text.split(',').map(str::trim) {
        if item.is_empty() {
            continue;
        }
        let mut item = item;
        if by_protocol {
            if let Some(r) = item.strip_prefix("T:") {
                udp_now = false;
                item = r;
            } else if let Some(r) = item.strip_prefix("U:") {
                udp_now = true;
                item = r;
            }
        }
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (item, item),
        };
        let lo: u16 = lo.parse().map_err(|_| bad())?;
        let hi: u16 = hi.parse().map_err(|_| bad())?;
        if lo > hi {
            return Err(bad());
        }
        if udp_now { &mut udp } else { &mut tcp }
            .ranges
            .push((lo, hi));
    }
    if tcp.is_empty() && udp.is_empty() {
        return Err(bad());
    }
    Ok((tcp, udp))
}

fn parse_match(rest: &[u8], soft: bool, line: usize) -> Result<MatchRule, ParseErrorKind> {
    let (service, rest) = word(rest);
    if service.is_empty() || !service.iter().all(|b| b.is_ascii_graphic()) {
        return Err(ParseErrorKind::BadMatch(format!(
            "bad service name \"{}\"",
            lossy(service)
        )));
    }
    let Some(after_m) = rest.strip_prefix(b"m") else {
        return Err(ParseErrorKind::BadMatch(
            "the pattern must start with m".into(),
        ));
    };
    let (pattern, rest) = delimited(after_m, "pattern")?;
    let flag_end = rest
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let (flags, mut rest) = (&rest[..flag_end], trim(&rest[flag_end..]));
    let mut caseless = false;
    let mut dotall = false;
    for &f in flags {
        match f {
            b'i' => caseless = true,
            b's' => dotall = true,
            other => {
                return Err(ParseErrorKind::BadMatch(format!(
                    "unknown pattern flag \"{}\"",
                    other as char
                )));
            }
        }
    }
    let mut template = VersionFields::default();
    while !rest.is_empty() {
        let (key, after_key): (&[u8], &[u8]) = if let Some(r) = rest.strip_prefix(b"cpe:") {
            (b"cpe", r)
        } else {
            rest.split_at(1)
        };
        let (value, after) = delimited(after_key, "version")?;
        let value = lossy(value);
        let flag_end = after
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .unwrap_or(after.len());
        let field_flags = &after[..flag_end];
        rest = trim(&after[flag_end..]);
        let slot = match key {
            b"p" => &mut template.product,
            b"v" => &mut template.version,
            b"i" => &mut template.info,
            b"h" => &mut template.hostname,
            b"o" => &mut template.ostype,
            b"d" => &mut template.devicetype,
            b"cpe" => {
                if !field_flags.iter().all(|&b| b == b'a') {
                    return Err(ParseErrorKind::BadMatch(format!(
                        "unknown cpe flag \"{}\"",
                        lossy(field_flags)
                    )));
                }
                template.cpe.push(value);
                continue;
            }
            other => {
                return Err(ParseErrorKind::BadMatch(format!(
                    "unknown version field \"{}\"",
                    lossy(other)
                )));
            }
        };
        if !field_flags.is_empty() {
            return Err(ParseErrorKind::BadMatch(format!(
                "unexpected \"{}\" after a version field",
                lossy(field_flags)
            )));
        }
        *slot = Some(value);
    }
    let pattern = Pattern::compile(pattern, caseless, dotall)?;
    Ok(MatchRule {
        service: lossy(service),
        soft,
        pattern,
        template,
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# a comment
Exclude T:9100-9107,U:30000-30001
Probe TCP NULL q||
totalwaitms 3000
tcpwrappedms 1500
match ssh m|^SSH-([\\d.]+)-OpenSSH_([\\w._-]+)[ -]{1,2}Debian[ -_]([^\\r\\n]+)\\r?\\n| p/OpenSSH/ v/$2 Debian $3/ i/protocol $1/ o/Linux/ cpe:|a:openbsd:openssh:$2| cpe:/o:debian:debian_linux/a
softmatch ftp m/^220[ -]/i
Probe TCP GetRequest q|GET / HTTP/1.0\\r\\n\\r\\n|
ports 80,8000-8010
sslports 443
rarity 1
fallback NULL
match http m|^HTTP/1\\.[01] \\d\\d\\d.*\\r\\nServer: nginx/([\\d.]+)|s p/nginx/ v/$1/
";

    #[test]
    fn sample_parses() {
        let parsed = parse(SAMPLE.as_bytes());
        assert_eq!(parsed.errors, vec![]);
        let db = parsed.db;
        assert!(db.exclude.tcp.contains(9105));
        assert!(db.exclude.udp.contains(30001));
        assert!(!db.exclude.tcp.contains(30001));
        assert_eq!(db.probes.len(), 2);
        let null = &db.probes[0];
        assert!(null.is_null());
        assert_eq!(null.totalwait, Duration::from_millis(3000));
        assert_eq!(null.tcpwrapped, Duration::from_millis(1500));
        assert_eq!(null.rules.len(), 2);
        let ssh = &null.rules[0];
        assert_eq!(ssh.service, "ssh");
        assert_eq!(ssh.line, 6);
        assert_eq!(ssh.template.product.as_deref(), Some("OpenSSH"));
        assert_eq!(ssh.template.info.as_deref(), Some("protocol $1"));
        assert_eq!(
            ssh.template.cpe,
            vec!["a:openbsd:openssh:$2", "o:debian:debian_linux"]
        );
        assert!(null.rules[1].soft);
        let get = &db.probes[1];
        assert_eq!(get.payload, b"GET / HTTP/1.0\r\n\r\n");
        assert!(get.ports.contains(8005) && !get.ports.contains(8011));
        assert!(get.sslports.contains(443));
        assert_eq!(get.rarity, 1);
        assert_eq!(get.fallback_index, vec![0]);
        assert_eq!(db.rule_count(), 3);
    }

    #[test]
    fn escapes_decode() {
        assert_eq!(
            unescape(b"\\0\\x41\\r\\n\\t\\\\\\|a").unwrap(),
            b"\0A\r\n\t\\|a"
        );
        assert!(unescape(b"\\xZZ").is_err());
        assert!(unescape(b"\\x4").is_err());
        assert!(unescape(b"abc\\").is_err());
        assert!(unescape(b"\\q").is_err());
    }

    #[test]
    fn bad_lines_are_reported_with_their_number_and_skipped() {
        let text = "\
match x m/a/
Probe TCP NULL q||
Probe SCTP X q||
Probe TCP Y q|unterminated
match http m|a(|
match http m|^x|z
match http m|^x| q/what/
match http m|^x| p/unterminated
match http m|x?|
ports 99999
rarity 10
totalwaitms soon
fallback Nowhere
Probe TCP NULL q||
frobnicate 1
match ftp m|^220 | p/ok/
";
        let parsed = parse(text.as_bytes());
        let lines: Vec<usize> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15]);
        assert!(matches!(
            parsed.errors[0].kind,
            ParseErrorKind::OutsideProbe(_)
        ));
        assert!(matches!(
            parsed.errors[1].kind,
            ParseErrorKind::UnknownFallback(_)
        ));
        assert!(matches!(parsed.errors[4].kind, ParseErrorKind::Pattern(_)));
        assert!(matches!(parsed.errors[8].kind, ParseErrorKind::Pattern(_)));
        assert_eq!(parsed.db.probes.len(), 1);
        assert_eq!(parsed.db.probes[0].rules.len(), 1);
        assert!(parsed.errors[0].to_string().starts_with("line 1: "));
    }

    #[test]
    fn non_utf8_and_crlf_lines_parse() {
        let text = b"Probe TCP NULL q||\r\nmatch x m|^\xff\xfe| p/\xe9t\xe9/\r\n";
        let parsed = parse(text);
        assert_eq!(parsed.errors, vec![]);
        let rule = &parsed.db.probes[0].rules[0];
        assert!(rule.pattern.captures(b"\xff\xfe!").is_some());
        assert!(rule.template.product.is_some());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn mutated_sample_lines_never_panic(
            cut in 0usize..SAMPLE.len(),
            insert in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8),
        ) {
            let mut bytes = SAMPLE.as_bytes().to_vec();
            let at = cut.min(bytes.len());
            bytes.splice(at..at, insert);
            let _ = parse(&bytes);
            let _ = parse(&bytes[..at]);
        }
    }
}
