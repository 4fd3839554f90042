//! `--resume FILE`: what an interrupted scan's output says about it, the
//! command line that started it and the hosts it had finished, from
//! normal (`-oN`), grepable (`-oG`), XML (`-oX`) or JSON-lines (`-oJ`)
//! output, also cut short by SIGKILL.
//!
//! A host counts as finished only when its whole record is in the file:
//! in normal output its report followed by the blank line that ends it
//! (or a "Skipping host ... due to host timeout" line), in grepable
//! output a complete line (newline included) for it, in XML a `<host>`
//! element with its closing tag, in JSON lines a complete `host` line.
//! Anything after the last such record is what the kill cut, and is
//! scanned again. The command line is the `as:` part of the first
//! comment (normal, grepable), the `args` attribute of `<nmaprun>` (XML),
//! split on whitespace as Portolan wrote it, or the `begin` line's `args`
//! (JSON lines). Reference: `man nmap`, `--resume`.
//!
//! JSON lines are not cut at a byte offset: a port line is written as its
//! port resolves, before its host's line and among other hosts' lines.
//! [`keep_json_lines`] keeps the lines of the finished hosts instead.
//!
//! Contract: no panic on any input; the first problem is a
//! [`ResumeError`].

use std::net::IpAddr;

/// Which output the file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeFormat {
    /// `-oN`.
    Normal,
    /// `-oG`.
    Grepable,
    /// `-oX`.
    Xml,
    /// `-oJ`.
    JsonLines,
}

/// What an interrupted scan's output says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    /// The format of the file.
    pub format: ResumeFormat,
    /// The command line's arguments, without the program's name.
    pub args: Vec<String>,
    /// Every host whose record is complete, in file order.
    pub finished: Vec<IpAddr>,
    /// For each of `finished`, the byte offset just past its record: where
    /// the file is cut to keep that host and the ones before it only.
    pub ends: Vec<usize>,
    /// Where host records begin (after the opening comment or elements):
    /// the cut that keeps no host.
    pub records_start: usize,
    /// For XML: the byte length of the document up to the end of the last
    /// complete `<host>` element (or of the prologue, before any), where
    /// the resumed scan goes on writing.
    pub xml_resume_at: Option<usize>,
}

impl Resume {
    /// The byte length that keeps the first `hosts` finished hosts (all of
    /// them when there are fewer).
    pub fn cut_after(&self, hosts: usize) -> usize {
        match hosts.min(self.ends.len()) {
            0 => self.records_start,
            n => self.ends[n - 1],
        }
    }
}

/// Why a file cannot be resumed from.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// Not normal, grepable, XML nor JSON-lines output of a scan.
    #[error("not normal, grepable, XML or JSON-lines output of a scan (it starts with {0:?})")]
    UnknownFormat(String),
    /// No command line in the file.
    #[error("no command line (`as: ...`, args=\"...\" or a begin line's args) in the file")]
    NoCommandLine,
    /// The scan had already ended.
    #[error("the scan finished (the file ends with its summary): nothing to resume")]
    Finished,
}

/// Reads `text`, the output of an interrupted scan.
pub fn read_resume(text: &str) -> Result<Resume, ResumeError> {
    let first = text.lines().next().unwrap_or("");
    if text.trim_start().starts_with('<') {
        return read_xml(text);
    }
    if first.starts_with('{') {
        return read_json_lines(text);
    }
    let args = first
        .strip_prefix('#')
        .and_then(|rest| rest.split_once(" as: "))
        .map(|(_, args)| split_args(args))
        .ok_or_else(|| {
            if first.starts_with('#') {
                ResumeError::NoCommandLine
            } else {
                ResumeError::UnknownFormat(first.chars().take(40).collect())
            }
        })?;
    // The last line of a finished scan: "# Nmap done at ..." (grepable,
    // normal files).
    if text
        .lines()
        .any(|l| l.starts_with("# Nmap done") || l.starts_with("# Portolan done"))
    {
        return Err(ResumeError::Finished);
    }
    let grepable = text.lines().skip(1).any(|l| l.starts_with("Host: "));
    let records = if grepable {
        grepable_finished(text)
    } else {
        normal_finished(text)
    };
    let (finished, ends) = records.into_iter().unzip();
    Ok(Resume {
        format: if grepable {
            ResumeFormat::Grepable
        } else {
            ResumeFormat::Normal
        },
        args,
        finished,
        ends,
        records_start: text.find('\n').map_or(text.len(), |i| i + 1),
        xml_resume_at: None,
    })
}

/// JSON lines: the `begin` line's command line, each complete `host`
/// line's address; a `summary` line means the scan ended.
fn read_json_lines(text: &str) -> Result<Resume, ResumeError> {
    let mut args = None;
    let mut finished = Vec::new();
    for (line, end) in complete_lines(text) {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match value["type"].as_str() {
            Some("begin") if args.is_none() => {
                args = value["args"].as_array().map(|list| {
                    // The first word is the program's name.
                    list.iter()
                        .skip(1)
                        .filter_map(|a| a.as_str().map(String::from))
                        .collect::<Vec<_>>()
                });
            }
            Some("host") => {
                if let Some(addr) = value["addr"].as_str().and_then(|a| a.parse().ok()) {
                    record(&mut finished, addr, end);
                }
            }
            Some("summary") => return Err(ResumeError::Finished),
            _ => {}
        }
    }
    let args = args.ok_or(ResumeError::NoCommandLine)?;
    let (finished, ends) = finished.into_iter().unzip();
    Ok(Resume {
        format: ResumeFormat::JsonLines,
        args,
        finished,
        ends,
        records_start: text.find('\n').map_or(text.len(), |i| i + 1),
        xml_resume_at: None,
    })
}

/// The lines of a JSON-lines file to keep when a scan resumes with the
/// hosts `kept` finished: the `begin` and `rate` lines, and the `port` and
/// `host` lines of those hosts. Everything else (the lines of hosts that
/// are scanned again, a line the kill cut) goes.
pub fn keep_json_lines(text: &str, kept: &[IpAddr]) -> String {
    let mut out = String::with_capacity(text.len());
    for (line, _) in complete_lines(text) {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let addr = || {
            value["addr"]
                .as_str()
                .and_then(|a| a.parse::<IpAddr>().ok())
        };
        let keep = match value["type"].as_str() {
            Some("begin" | "rate") => true,
            Some("port" | "host") => addr().is_some_and(|a| kept.contains(&a)),
            _ => false,
        };
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn split_args(args: &str) -> Vec<String> {
    // The first word is the program's name.
    args.split_whitespace().skip(1).map(String::from).collect()
}

/// Records a host's record ending at `end`: a new host, or more lines
/// of the last one.
fn record(list: &mut Vec<(IpAddr, usize)>, addr: IpAddr, end: usize) {
    if let Some(last) = list.last_mut()
        && last.0 == addr
    {
        last.1 = end;
    } else if !list.iter().any(|(a, _)| *a == addr) {
        list.push((addr, end));
    }
}

/// Complete lines only (the last one, without its newline, may be cut),
/// each with the offset just past it.
fn complete_lines(text: &str) -> impl Iterator<Item = (&str, usize)> {
    let end = text.rfind('\n').map_or(0, |i| i + 1);
    text[..end].split_inclusive('\n').scan(0, |at, line| {
        *at += line.len();
        Some((line.trim_end_matches(['\n', '\r']), *at))
    })
}

fn grepable_finished(text: &str) -> Vec<(IpAddr, usize)> {
    let mut finished = Vec::new();
    for (line, end) in complete_lines(text) {
        let Some(rest) = line.strip_prefix("Host: ") else {
            continue;
        };
        if let Some(addr) = rest.split_whitespace().next().and_then(|a| a.parse().ok()) {
            record(&mut finished, addr, end);
        }
    }
    finished
}

/// The address of a "... scan report for NAME (ADDR)" or "... for ADDR"
/// line.
fn report_addr(line: &str) -> Option<IpAddr> {
    let (_, rest) = line.split_once(" scan report for ")?;
    let rest = rest.trim_end_matches(" [host down]").trim_end();
    if let Some(inner) = rest.strip_suffix(')')
        && let Some((_, addr)) = inner.rsplit_once('(')
        && let Ok(addr) = addr.parse()
    {
        return Some(addr);
    }
    rest.split_whitespace().next()?.parse().ok()
}

fn normal_finished(text: &str) -> Vec<(IpAddr, usize)> {
    let mut finished = Vec::new();
    let mut open: Option<IpAddr> = None;
    for (line, end) in complete_lines(text) {
        if let Some(addr) = report_addr(line) {
            open = Some(addr);
        } else if line.trim().is_empty() {
            if let Some(addr) = open.take() {
                record(&mut finished, addr, end);
            }
        } else if let Some(rest) = line.strip_prefix("Skipping host ")
            && let Some(addr) = rest.split_whitespace().next().and_then(|a| a.parse().ok())
        {
            record(&mut finished, addr, end);
        }
    }
    finished
}

/// The value of attribute `name` in the tag text `tag`, XML entities
/// decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn read_xml(text: &str) -> Result<Resume, ResumeError> {
    let start = text
        .find("<nmaprun ")
        .ok_or_else(|| ResumeError::UnknownFormat(text.chars().take(40).collect()))?;
    let tag_end = text[start..]
        .find('>')
        .map(|i| start + i + 1)
        .ok_or(ResumeError::NoCommandLine)?;
    let args = attribute(&text[start..tag_end], "args")
        .map(|a| split_args(&a))
        .ok_or(ResumeError::NoCommandLine)?;
    if text.contains("</nmaprun>") {
        return Err(ResumeError::Finished);
    }
    // Hosts come after the scan's opening elements (scaninfo, verbose,
    // debugging): the document goes on after the last complete one.
    let mut resume_at = text[tag_end..]
        .find("<host")
        .map_or(text.len(), |i| tag_end + i);
    // Only whole lines before the first host: a cut line is written again.
    resume_at = text[..resume_at].rfind('\n').map_or(tag_end, |i| i + 1);
    let records_start = resume_at;
    let mut finished = Vec::new();
    let mut at = tag_end;
    while let Some(open) = text[at..].find("<host") {
        let open = at + open;
        let Some(close) = text[open..].find("</host>") else {
            break;
        };
        let close = open + close + "</host>".len();
        let element = &text[open..close];
        let mut search = element;
        let mut host: Option<IpAddr> = None;
        while let Some(i) = search.find("<address ") {
            let tag = &search[i..search[i..].find('>').map_or(search.len(), |e| i + e)];
            if matches!(attribute(tag, "addrtype").as_deref(), Some("ipv4" | "ipv6"))
                && let Some(addr) = attribute(tag, "addr").and_then(|a| a.parse().ok())
            {
                host = Some(addr);
                break;
            }
            search = &search[i + 1..];
        }
        // The newline after the element belongs to it.
        at = if text[close..].starts_with('\n') {
            close + 1
        } else {
            close
        };
        if let Some(addr) = host {
            finished.push((addr, at));
        }
        resume_at = at;
    }
    let (finished, ends) = finished.into_iter().unzip();
    Ok(Resume {
        format: ResumeFormat::Xml,
        args,
        finished,
        ends,
        records_start,
        xml_resume_at: Some(resume_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    const GREPABLE: &str = "# Portolan 0.1.0 scan initiated Tue Nov 24 18:45:19 2026 as: portolan -sS -p 1-40 -oG scan.gnmap 198.18.0.0/29\n\
        Host: 198.18.0.2 (lab)\tStatus: Up\n\
        Host: 198.18.0.2 (lab)\tPorts: 22/open/tcp//ssh///\n\
        Host: fd00::2 ()\tStatus: Up\n\
        Host: 198.18.0.3 ()\tPorts: 22/op";

    #[test]
    fn grepable_output_gives_its_command_line_and_complete_hosts() {
        let r = read_resume(GREPABLE).unwrap();
        assert_eq!(r.format, ResumeFormat::Grepable);
        assert_eq!(
            r.args,
            ["-sS", "-p", "1-40", "-oG", "scan.gnmap", "198.18.0.0/29"]
        );
        // The cut line's host is not finished.
        assert_eq!(r.finished, addrs(&["198.18.0.2", "fd00::2"]));
        // Cuts keep whole records: none, the first host's two lines, both.
        let first_line = GREPABLE.find('\n').unwrap() + 1;
        assert_eq!(r.cut_after(0), first_line);
        assert!(GREPABLE[..r.cut_after(1)].ends_with("22/open/tcp//ssh///\n"));
        assert!(GREPABLE[..r.cut_after(2)].ends_with("Status: Up\n"));
        assert_eq!(r.cut_after(9), r.cut_after(2));
    }

    #[test]
    fn normal_output_counts_a_host_once_its_report_has_ended() {
        let text = "# Portolan 0.1.0 scan initiated X as: portolan -oN out.txt 198.18.0.0/30\n\
            Portolan scan report for lab<&>\"' (198.18.0.2)\n\
            Host is up.\n\
            PORT   STATE SERVICE\n\
            22/tcp open  ssh\n\
            \n\
            Skipping host 198.18.0.1 due to host timeout\n\
            Portolan scan report for fd00::2\n\
            Host is up.\n\
            \n\
            Portolan scan report for 198.18.0.3\n\
            Host is up.\n";
        let r = read_resume(text).unwrap();
        assert_eq!(r.format, ResumeFormat::Normal);
        assert_eq!(r.args, ["-oN", "out.txt", "198.18.0.0/30"]);
        assert_eq!(r.finished, addrs(&["198.18.0.2", "198.18.0.1", "fd00::2"]));
        assert!(text[..r.cut_after(1)].ends_with("ssh\n\n"));
        assert!(text[..r.cut_after(2)].ends_with("timeout\n"));
    }

    #[test]
    fn xml_output_resumes_after_the_last_complete_host() {
        let head = "<?xml version=\"1.0\"?>\n<nmaprun scanner=\"nmap\" args=\"portolan -sS -&#45;reason -oX a&amp;b.xml 198.18.0.0/30\" start=\"1\">\n<scaninfo type=\"syn\"/>\n";
        let host = "<host><status state=\"up\"/>\n<address addr=\"198.18.0.2\" addrtype=\"ipv4\"/>\n<address addr=\"02:00:00:00:00:02\" addrtype=\"mac\"/>\n</host>\n";
        let cut = "<host><status state=\"up\"/>\n<address addr=\"198.18.0.3\" addrt";
        let text = format!("{head}{host}{cut}");
        let r = read_resume(&text).unwrap();
        assert_eq!(r.format, ResumeFormat::Xml);
        assert_eq!(
            r.args,
            ["-sS", "--reason", "-oX", "a&b.xml", "198.18.0.0/30"]
        );
        assert_eq!(r.finished, addrs(&["198.18.0.2"]));
        assert_eq!(r.xml_resume_at, Some(head.len() + host.len()));
        assert_eq!(r.cut_after(1), head.len() + host.len());
        assert_eq!(r.cut_after(0), head.len());
        // Before any host: after the prologue's last whole line.
        let r = read_resume(&format!("{head}<sca")).unwrap();
        assert_eq!(r.xml_resume_at, Some(head.len()));
        assert!(r.finished.is_empty());
    }

    #[test]
    fn json_lines_resume_after_their_host_lines_and_keep_only_finished_hosts() {
        let text = concat!(
            "{\"type\":\"begin\",\"schema\":3,\"args\":[\"portolan\",\"-sS\",\"-p\",\"80\",\"-oJ\",\"s.jsonl\",\"198.18.0.1-3\"]}\n",
            "{\"type\":\"port\",\"addr\":\"198.18.0.1\",\"port\":80,\"state\":\"closed\"}\n",
            "{\"type\":\"port\",\"addr\":\"198.18.0.2\",\"port\":80,\"state\":\"closed\"}\n",
            "{\"type\":\"host\",\"addr\":\"198.18.0.1\",\"status\":\"up\"}\n",
            "{\"type\":\"rate\",\"elapsed_s\":1.0}\n",
            "{\"type\":\"port\",\"addr\":\"198.18.0.3\",\"port\":80,\"state\":\"open\"}\n",
            "{\"type\":\"host\",\"addr\":\"198.18.0.3\",\"stat",
        );
        let r = read_resume(text).unwrap();
        assert_eq!(r.format, ResumeFormat::JsonLines);
        assert_eq!(
            r.args,
            ["-sS", "-p", "80", "-oJ", "s.jsonl", "198.18.0.1-3"]
        );
        assert_eq!(r.finished, addrs(&["198.18.0.1"]));
        let kept = keep_json_lines(text, &r.finished);
        assert_eq!(
            kept.lines()
                .map(|l| l.split(",\"").take(2).collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>(),
            [
                "{\"type\":\"begin\" schema\":3",
                "{\"type\":\"port\" addr\":\"198.18.0.1\"",
                "{\"type\":\"host\" addr\":\"198.18.0.1\"",
                "{\"type\":\"rate\" elapsed_s\":1.0}",
            ]
        );
        // A scan that ended has its summary line.
        let ended = format!("{text}\"}}\n{{\"type\":\"summary\",\"interrupted\":false}}\n");
        assert_eq!(read_resume(&ended), Err(ResumeError::Finished));
        assert_eq!(
            read_resume("{\"type\":\"host\"}\n"),
            Err(ResumeError::NoCommandLine)
        );
    }

    #[test]
    fn finished_scans_and_other_files_are_refused() {
        let done = format!("{GREPABLE}\n# Nmap done at X -- 8 IP addresses\n");
        assert_eq!(read_resume(&done), Err(ResumeError::Finished));
        assert!(matches!(
            read_resume("hello"),
            Err(ResumeError::UnknownFormat(_))
        ));
        assert_eq!(
            read_resume("# no command\n"),
            Err(ResumeError::NoCommandLine)
        );
        assert_eq!(
            read_resume("<nmaprun args=\"portolan x\"></nmaprun>"),
            Err(ResumeError::Finished)
        );
        for junk in [
            "",
            "<",
            "# as: ",
            "<nmaprun ",
            "<nmaprun args=\"&#xffffffff;&\"",
            "\u{0}#",
        ] {
            let _ = read_resume(junk);
        }
    }
}
