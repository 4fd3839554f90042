//! A diff written for people (text, after ndiff's layout), for programs
//! (JSON), and as ndiff's XML (`<nmapdiff version="1">`, the elements
//! ndiff writes: the scans' `nmaprun` when they differ, `hostdiff`,
//! `extraports`, `portdiff`, `os`/`osmatch`, `script` and `hostscript`,
//! `a` and `b` around what changed), so that what reads ndiff's output
//! reads Portolan's.
//!
//! Every string that came from the network (names, services, versions,
//! certificate subjects) is escaped for the format: control characters
//! for the terminal, markup for XML; JSON is escaped by serde.

use std::fmt::Write as _;

use portolan_output::escape::{for_terminal, for_xml};

use crate::banner::Stable;
use crate::diff::{
    Change, Counted, HostDiff, PortDiff, PortSide, ScanDiff, ScanSide, ScriptDiff, Sides,
};

/// The diff as text: a header per scan, then per host `-` for the
/// earlier side and `+` for the later one.
pub fn text(d: &ScanDiff) -> String {
    let mut s = String::new();
    let scan_line = |mark: char, side: &crate::diff::ScanSide| {
        format!(
            "{mark}{} {} scan {} of {}: {}\n",
            side.scanner,
            side.version,
            side.id,
            side.start,
            for_terminal(&side.args)
        )
    };
    s.push_str(&scan_line('-', &d.a));
    s.push_str(&scan_line('+', &d.b));
    s.push('\n');
    for h in &d.hosts {
        host_text(&mut s, h);
        s.push('\n');
    }
    if !d.unconfirmed.is_empty() {
        s.push_str("Unconfirmed (not counted until a second scan agrees):\n");
        for (addr, p) in &d.unconfirmed {
            let _ = writeln!(
                s,
                "  {addr} {}/{}: {} -> {} ({})",
                p.port,
                p.proto,
                p.a.as_ref().map_or("-", |x| x.state.as_str()),
                p.b.as_ref().map_or("-", |x| x.state.as_str()),
                p.weak.as_deref().unwrap_or("")
            );
        }
        s.push('\n');
    }
    if !d.expiring.is_empty() {
        let _ = writeln!(s, "Certificates expiring within {} days:", d.expiring_days);
        for e in &d.expiring {
            let _ = writeln!(
                s,
                "  {} {}/{}: {} expires {} ({} days left)",
                e.addr,
                e.port,
                e.proto,
                for_terminal(&e.subject),
                e.not_after,
                e.days_left
            );
        }
        s.push('\n');
    }
    if !d.differs() {
        s.push_str("No differences.\n");
    }
    s
}

/// "998 closed ports, 2 filtered ports", as nmap's "Not shown:".
fn counted_text(counted: &[Counted]) -> String {
    let mut list: Vec<&Counted> = counted.iter().collect();
    list.sort_by_key(|c| std::cmp::Reverse(c.count));
    list.iter()
        .map(|c| format!("{} {} ports", c.count, c.state))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A script's output as ndiff's lines: `|  ` before each, `|_ ` before
/// the last, the first led by the script's name.
fn script_lines(mark: char, id: &str, output: &str) -> Vec<String> {
    let lines: Vec<&str> = output.lines().collect();
    let last = lines.len().saturating_sub(1);
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let text = if i == 0 {
                format!("{id}: {l}")
            } else {
                l.to_string()
            };
            let lead = if i == last { "|_ " } else { "|  " };
            format!("{mark}{lead}{}", for_terminal(&text))
        })
        .collect()
}

fn script_diff_lines(diffs: &[ScriptDiff]) -> Vec<String> {
    let mut out = Vec::new();
    for d in diffs {
        if let Some(a) = &d.a {
            out.extend(script_lines('-', &d.id, a));
        }
        if let Some(b) = &d.b {
            out.extend(script_lines('+', &d.id, b));
        }
    }
    out
}

/// A row of the port table, or a line under it.
enum Row {
    Cols([String; 5]),
    Raw(String),
}

fn host_text(s: &mut String, h: &HostDiff) {
    let name = if h.names.is_empty() {
        h.addr.to_string()
    } else {
        format!("{} ({})", for_terminal(&h.names.join(", ")), h.addr)
    };
    let _ = writeln!(s, " {name}:");
    if h.status_changed() {
        if let Some(a) = &h.a_status {
            let _ = writeln!(s, "-Host is {a}.");
        }
        if let Some(b) = &h.b_status {
            let _ = writeln!(s, "+Host is {b}.");
        }
    }
    if h.extraports.changed() {
        for (mark, counted) in [('-', &h.extraports.a), ('+', &h.extraports.b)] {
            if !counted.is_empty() {
                let _ = writeln!(s, "{mark}Not shown: {}", counted_text(counted));
            }
        }
    }
    ports_text(s, h);
    if let Some(os) = &h.os {
        let title = match (os.a.is_empty(), os.b.is_empty()) {
            (false, true) => "-OS details:",
            (true, false) => "+OS details:",
            _ => " OS details:",
        };
        let _ = writeln!(s, "{title}");
        for (mark, names) in [('-', &os.a), ('+', &os.b)] {
            for n in names {
                let _ = writeln!(s, "{mark}  {}", for_terminal(n));
            }
        }
    }
    if !h.scripts.is_empty() {
        let _ = writeln!(s, "\n Host script results:");
        for line in script_diff_lines(&h.scripts) {
            let _ = writeln!(s, "{line}");
        }
    }
}

fn ports_text(s: &mut String, h: &HostDiff) {
    if h.ports.is_empty() {
        return;
    }
    let mut rows: Vec<Row> = vec![Row::Cols([
        " ".into(),
        "PORT".into(),
        "STATE".into(),
        "SERVICE".into(),
        "VERSION".into(),
    ])];
    for p in &h.ports {
        let row = |mark: &str, side: &PortSide| {
            [
                mark.to_string(),
                format!("{}/{}", p.port, p.proto),
                side.state.clone(),
                for_terminal(side.service.as_deref().unwrap_or("")).into_owned(),
                for_terminal(side.version.as_deref().unwrap_or("")).into_owned(),
            ]
        };
        match (&p.a, &p.b) {
            // The same columns on both sides: one row (ndiff's " ").
            (Some(a), Some(b)) if row("", a) == row("", b) => rows.push(Row::Cols(row(" ", b))),
            (a, b) => {
                rows.extend(a.iter().map(|a| Row::Cols(row("-", a))));
                rows.extend(b.iter().map(|b| Row::Cols(row("+", b))));
            }
        }
        if p.change == Change::Banner {
            let line = changed_line(p);
            for (mark, side) in [("-", &p.a), ("+", &p.b)] {
                if let Some(b) = side.as_ref().and_then(|x| x.banner.as_ref()) {
                    let text = b.split('\n').nth(line).unwrap_or("").trim_end_matches('\r');
                    rows.push(Row::Cols([
                        mark.into(),
                        "|".into(),
                        "banner".into(),
                        for_terminal(text).into_owned(),
                        String::new(),
                    ]));
                }
            }
        }
        if p.change == Change::Certificate {
            for (mark, side) in [("-", &p.a), ("+", &p.b)] {
                if let Some(c) = side.as_ref().and_then(|x| x.cert.as_ref()) {
                    rows.push(Row::Cols([
                        mark.into(),
                        "|".into(),
                        "cert".into(),
                        for_terminal(&c.subject).into_owned(),
                        format!("until {}", c.not_after.as_deref().unwrap_or("?")),
                    ]));
                }
            }
        }
        rows.extend(script_diff_lines(&p.scripts).into_iter().map(Row::Raw));
    }
    let mut widths = [0usize; 5];
    for r in &rows {
        if let Row::Cols(r) = r {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    for r in rows {
        let r = match r {
            Row::Cols(r) => r,
            Row::Raw(line) => {
                let _ = writeln!(s, "{line}");
                continue;
            }
        };
        let line = format!(
            "{}{:<w1$} {:<w2$} {:<w3$} {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
        let _ = writeln!(s, "{}", line.trim_end());
    }
}

/// The first line where the two banners' stable forms differ.
fn changed_line(p: &PortDiff) -> usize {
    let lines = |side: &Option<PortSide>| match side.as_ref().and_then(|x| x.stable_banner.as_ref())
    {
        Some(Stable::Text(t)) => t.split('\n').map(String::from).collect(),
        _ => Vec::new(),
    };
    let (a, b): (Vec<String>, Vec<String>) = (lines(&p.a), lines(&p.b));
    (0..a.len().max(b.len()))
        .find(|&i| a.get(i) != b.get(i))
        .unwrap_or(0)
}

/// The diff as one JSON object.
pub fn json(d: &ScanDiff) -> String {
    let mut v = serde_json::to_value(d).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("differs".into(), d.differs().into());
    }
    v.to_string()
}

fn attr(s: &mut String, name: &str, value: &str) {
    let _ = write!(s, " {name}=\"{}\"", for_xml(value));
}

fn service_xml(s: &mut String, side: &PortSide) {
    let Some(name) = &side.service else { return };
    s.push_str("<service");
    attr(s, "name", name.strip_prefix("ssl/").unwrap_or(name));
    if let Some(product) = &side.product {
        attr(s, "product", product);
    }
    if let Some(version) = &side.version_only {
        attr(s, "version", version);
    }
    if let Some(extrainfo) = &side.extrainfo {
        attr(s, "extrainfo", extrainfo);
    }
    if name.starts_with("ssl/") {
        attr(s, "tunnel", "ssl");
    }
    s.push('>');
    for c in &side.cpe {
        let _ = write!(s, "<cpe>{}</cpe>", for_xml(c));
    }
    s.push_str("</service>");
}

fn script_xml(s: &mut String, id: &str, output: &str) {
    s.push_str("<script");
    attr(s, "id", id);
    attr(s, "output", output);
    s.push_str("/>");
}

/// A port's changed scripts, with a changed banner as nmap's `banner`
/// script.
fn port_scripts(p: &PortDiff) -> Vec<ScriptDiff> {
    let mut scripts = p.scripts.clone();
    if p.change == Change::Banner {
        let banner = |side: &Option<PortSide>| side.as_ref().and_then(|x| x.banner.clone());
        scripts.push(ScriptDiff {
            id: "banner".into(),
            a: banner(&p.a),
            b: banner(&p.b),
        });
    }
    scripts
}

/// One side's `<port>`: its state, service and scripts (`side` absent or
/// not listed, only counted: the port alone, as ndiff writes a port a scan
/// did not list).
fn port_xml(s: &mut String, p: &PortDiff, side: Option<&PortSide>, scripts: &[(&str, &str)]) {
    s.push_str("<port");
    attr(s, "protocol", &p.proto);
    attr(s, "portid", &p.port.to_string());
    s.push('>');
    if let Some(side) = side.filter(|x| x.listed) {
        s.push_str("<state");
        attr(s, "state", &side.state);
        attr(s, "reason", &side.reason);
        s.push_str("/>");
        service_xml(s, side);
    }
    for (id, output) in scripts {
        script_xml(s, id, output);
    }
    s.push_str("</port>");
}

/// The scripts of one side of `diffs` (`a` when `earlier`).
fn side_scripts(diffs: &[ScriptDiff], earlier: bool) -> Vec<(&str, &str)> {
    diffs
        .iter()
        .filter_map(|d| {
            let out = if earlier { &d.a } else { &d.b };
            out.as_deref().map(|o| (d.id.as_str(), o))
        })
        .collect()
}

/// Script diffs inside an element, as ndiff writes them: each side's
/// output in `<a>` and `<b>`.
fn script_diffs_xml(s: &mut String, diffs: &[ScriptDiff]) {
    for d in diffs {
        for (tag, out) in [("a", &d.a), ("b", &d.b)] {
            if let Some(out) = out {
                let _ = write!(s, "<{tag}>");
                script_xml(s, &d.id, out);
                let _ = write!(s, "</{tag}>");
            }
        }
    }
}

fn same_service(a: &PortSide, b: &PortSide) -> bool {
    (&a.service, &a.product, &a.version, &a.cpe) == (&b.service, &b.product, &b.version, &b.cpe)
}

/// A `<portdiff>`: one `<port>` with what changed inside when the state
/// stayed, else the port of each side (ndiff's layout).
fn portdiff_xml(s: &mut String, p: &PortDiff) {
    let scripts = port_scripts(p);
    s.push_str("<portdiff>");
    match (&p.a, &p.b) {
        (Some(a), Some(b)) if a.state == b.state => {
            s.push_str("<port");
            attr(s, "protocol", &p.proto);
            attr(s, "portid", &p.port.to_string());
            s.push_str("><state");
            attr(s, "state", &b.state);
            attr(s, "reason", &b.reason);
            s.push_str("/>");
            if same_service(a, b) {
                service_xml(s, b);
            } else {
                s.push_str("<a>");
                service_xml(s, a);
                s.push_str("</a><b>");
                service_xml(s, b);
                s.push_str("</b>");
            }
            script_diffs_xml(s, &scripts);
            s.push_str("</port>");
        }
        (a, b) => {
            s.push_str("<a>");
            port_xml(s, p, a.as_ref(), &side_scripts(&scripts, true));
            s.push_str("</a><b>");
            port_xml(s, p, b.as_ref(), &side_scripts(&scripts, false));
            s.push_str("</b>");
        }
    }
    s.push_str("</portdiff>");
}

fn address_xml(s: &mut String, h: &HostDiff) {
    s.push_str("<address");
    attr(s, "addr", &h.addr.to_string());
    attr(
        s,
        "addrtype",
        if h.addr.is_ipv4() { "ipv4" } else { "ipv6" },
    );
    s.push_str("/>");
}

fn hostnames_xml(s: &mut String, h: &HostDiff) {
    if h.names.is_empty() {
        return;
    }
    s.push_str("<hostnames>");
    for n in &h.names {
        s.push_str("<hostname");
        attr(s, "name", n);
        s.push_str("/>");
    }
    s.push_str("</hostnames>");
}

fn status_xml(s: &mut String, state: &str) {
    s.push_str("<status");
    attr(s, "state", state);
    s.push_str("/>");
}

fn extraports_xml(s: &mut String, counted: &[Counted]) {
    for c in counted {
        s.push_str("<extraports");
        attr(s, "state", &c.state);
        attr(s, "count", &c.count.to_string());
        s.push_str("/>");
    }
}

fn osmatch_xml(s: &mut String, names: &[String]) {
    for n in names {
        s.push_str("<osmatch");
        attr(s, "name", n);
        s.push_str("/>");
    }
}

/// OS matches that changed: the common head and tail as they are, the
/// middle of each side in `<a>` and `<b>` (ndiff's sequence diff, for
/// the one change a host's list makes between two scans).
fn os_xml(s: &mut String, os: &Sides<Vec<String>>) {
    let (a, b) = (&os.a, &os.b);
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    s.push_str("<os>");
    osmatch_xml(s, &a[..head]);
    if head + tail < a.len() {
        s.push_str("<a>");
        osmatch_xml(s, &a[head..a.len() - tail]);
        s.push_str("</a>");
    }
    if head + tail < b.len() {
        s.push_str("<b>");
        osmatch_xml(s, &b[head..b.len() - tail]);
        s.push_str("</b>");
    }
    osmatch_xml(s, &a[a.len() - tail..]);
    s.push_str("</os>");
}

/// Host scripts that changed: in `<a>` or `<b>` whole when only one side
/// ran scripts, else each script's sides (ndiff's layout).
fn hostscript_xml(s: &mut String, diffs: &[ScriptDiff]) {
    if diffs.is_empty() {
        return;
    }
    let only = |earlier: bool| {
        diffs.iter().all(|d| {
            if earlier {
                d.b.is_none()
            } else {
                d.a.is_none()
            }
        })
    };
    for (tag, earlier) in [("a", true), ("b", false)] {
        if only(earlier) {
            let _ = write!(s, "<{tag}><hostscript>");
            for (id, out) in side_scripts(diffs, earlier) {
                script_xml(s, id, out);
            }
            let _ = write!(s, "</hostscript></{tag}>");
            return;
        }
    }
    s.push_str("<hostscript>");
    script_diffs_xml(s, diffs);
    s.push_str("</hostscript>");
}

fn nmaprun_xml(s: &mut String, side: &ScanSide) {
    s.push_str("<nmaprun");
    attr(s, "scanner", &side.scanner);
    attr(s, "args", &side.args);
    attr(
        s,
        "start",
        &portolan_model::time::unix_seconds(side.start_time).to_string(),
    );
    attr(
        s,
        "startstr",
        &portolan_model::time::ctime_utc(side.start_time),
    );
    attr(s, "version", &side.version);
    s.push_str("/>");
}

/// The diff as ndiff's XML: the two scans' `<nmaprun>` when they differ,
/// then a `<hostdiff>` per host with its status, addresses, names, ports
/// (`<extraports>`, `<portdiff>`), OS matches and host scripts, each
/// change in `<a>` and `<b>`.
pub fn xml(d: &ScanDiff) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str("<nmapdiff version=\"1\">\n<scandiff>\n");
    let (mut ra, mut rb) = (String::new(), String::new());
    nmaprun_xml(&mut ra, &d.a);
    nmaprun_xml(&mut rb, &d.b);
    if ra != rb {
        let _ = writeln!(s, "<a>{ra}</a>\n<b>{rb}</b>");
    }
    for h in &d.hosts {
        s.push_str("<hostdiff>");
        match (&h.a_status, &h.b_status) {
            (Some(only), None) | (None, Some(only)) => {
                let earlier = h.a_status.is_some();
                let tag = if earlier { "a" } else { "b" };
                let counted = if earlier {
                    &h.extraports.a
                } else {
                    &h.extraports.b
                };
                let _ = write!(s, "<{tag}><host>");
                status_xml(&mut s, only);
                address_xml(&mut s, h);
                hostnames_xml(&mut s, h);
                s.push_str("<ports>");
                extraports_xml(&mut s, counted);
                for p in &h.ports {
                    let side = if earlier { p.a.as_ref() } else { p.b.as_ref() };
                    let scripts = port_scripts(p);
                    port_xml(&mut s, p, side, &side_scripts(&scripts, earlier));
                }
                s.push_str("</ports>");
                if let Some(os) = &h.os {
                    s.push_str("<os>");
                    osmatch_xml(&mut s, if earlier { &os.a } else { &os.b });
                    s.push_str("</os>");
                }
                let scripts = side_scripts(&h.scripts, earlier);
                if !scripts.is_empty() {
                    s.push_str("<hostscript>");
                    for (id, out) in scripts {
                        script_xml(&mut s, id, out);
                    }
                    s.push_str("</hostscript>");
                }
                let _ = write!(s, "</host></{tag}>");
            }
            (a, b) => {
                s.push_str("<host>");
                if a != b {
                    s.push_str("<a>");
                    status_xml(&mut s, a.as_deref().unwrap_or("unknown"));
                    s.push_str("</a><b>");
                    status_xml(&mut s, b.as_deref().unwrap_or("unknown"));
                    s.push_str("</b>");
                }
                address_xml(&mut s, h);
                hostnames_xml(&mut s, h);
                let mut ports = String::new();
                if h.extraports.changed() {
                    ports.push_str("<a>");
                    extraports_xml(&mut ports, &h.extraports.a);
                    ports.push_str("</a><b>");
                    extraports_xml(&mut ports, &h.extraports.b);
                    ports.push_str("</b>");
                } else {
                    extraports_xml(&mut ports, &h.extraports.a);
                }
                for p in &h.ports {
                    portdiff_xml(&mut ports, p);
                }
                if !ports.is_empty() {
                    let _ = write!(s, "<ports>{ports}</ports>");
                }
                if let Some(os) = &h.os {
                    os_xml(&mut s, os);
                }
                hostscript_xml(&mut s, &h.scripts);
                s.push_str("</host>");
            }
        }
        s.push_str("</hostdiff>\n");
    }
    s.push_str("</scandiff>\n</nmapdiff>\n");
    s
}
