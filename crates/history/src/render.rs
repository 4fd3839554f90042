//! A diff written for people (text, after ndiff's layout), for programs
//! (JSON), and as ndiff's XML (`<nmapdiff version="1">`, the elements
//! ndiff writes: `hostdiff`, `portdiff`, `a` and `b` around what changed),
//! so that what reads ndiff's output reads Portolan's.
//!
//! Every string that came from the network (names, services, versions,
//! certificate subjects) is escaped for the format: control characters
//! for the terminal, markup for XML; JSON is escaped by serde.

use std::fmt::Write as _;

use portolan_output::escape::{for_terminal, for_xml};

use crate::banner::Stable;
use crate::diff::{Change, HostDiff, PortDiff, PortSide, ScanDiff};

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
    if h.ports.is_empty() {
        return;
    }
    let mut rows: Vec<[String; 5]> = vec![[
        " ".into(),
        "PORT".into(),
        "STATE".into(),
        "SERVICE".into(),
        "VERSION".into(),
    ]];
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
        if let Some(a) = &p.a {
            rows.push(row("-", a));
        }
        if let Some(b) = &p.b {
            rows.push(row("+", b));
        }
        if p.change == Change::Banner {
            let line = changed_line(p);
            for (mark, side) in [("-", &p.a), ("+", &p.b)] {
                if let Some(b) = side.as_ref().and_then(|x| x.banner.as_ref()) {
                    let text = b.split('\n').nth(line).unwrap_or("").trim_end_matches('\r');
                    rows.push([
                        mark.into(),
                        "|".into(),
                        "banner".into(),
                        for_terminal(text).into_owned(),
                        String::new(),
                    ]);
                }
            }
        }
        if p.change == Change::Certificate {
            for (mark, side) in [("-", &p.a), ("+", &p.b)] {
                if let Some(c) = side.as_ref().and_then(|x| x.cert.as_ref()) {
                    rows.push([
                        mark.into(),
                        "|".into(),
                        "cert".into(),
                        for_terminal(&c.subject).into_owned(),
                        format!("until {}", c.not_after.as_deref().unwrap_or("?")),
                    ]);
                }
            }
        }
    }
    let mut widths = [0usize; 5];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in rows {
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

fn port_xml(s: &mut String, p: &PortDiff, side: &PortSide) {
    s.push_str("<port");
    attr(s, "protocol", &p.proto);
    attr(s, "portid", &p.port.to_string());
    s.push('>');
    s.push_str("<state");
    attr(s, "state", &side.state);
    attr(s, "reason", &side.reason);
    s.push_str("/>");
    if let Some(name) = &side.service {
        s.push_str("<service");
        attr(s, "name", name.strip_prefix("ssl/").unwrap_or(name));
        if let Some(product) = &side.product {
            attr(s, "product", product);
        }
        if let Some(version) = &side.version {
            attr(s, "version", version);
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
    if p.change == Change::Banner
        && let Some(banner) = &side.banner
    {
        // nmap's banner script's element, as ndiff shows scripts.
        s.push_str("<script");
        attr(s, "id", "banner");
        attr(s, "output", banner);
        s.push_str("/>");
    }
    s.push_str("</port>");
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

fn status_xml(s: &mut String, state: &str) {
    s.push_str("<status");
    attr(s, "state", state);
    s.push_str("/>");
}

/// The diff as ndiff's XML.
pub fn xml(d: &ScanDiff) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str("<nmapdiff version=\"1\">\n<scandiff>\n");
    for h in &d.hosts {
        s.push_str("<hostdiff>");
        match (&h.a_status, &h.b_status) {
            (Some(only), None) | (None, Some(only)) => {
                let tag = if h.a_status.is_some() { "a" } else { "b" };
                let _ = write!(s, "<{tag}><host>");
                status_xml(&mut s, only);
                address_xml(&mut s, h);
                s.push_str("<ports>");
                for p in &h.ports {
                    if let Some(side) = p.a.as_ref().or(p.b.as_ref()) {
                        port_xml(&mut s, p, side);
                    }
                }
                let _ = write!(s, "</ports></host></{tag}>");
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
                if !h.ports.is_empty() {
                    s.push_str("<ports>");
                    for p in &h.ports {
                        s.push_str("<portdiff>");
                        for (tag, side) in [("a", &p.a), ("b", &p.b)] {
                            if let Some(side) = side {
                                let _ = write!(s, "<{tag}>");
                                port_xml(&mut s, p, side);
                                let _ = write!(s, "</{tag}>");
                            }
                        }
                        s.push_str("</portdiff>");
                    }
                    s.push_str("</ports>");
                }
                s.push_str("</host>");
            }
        }
        s.push_str("</hostdiff>\n");
    }
    s.push_str("</scandiff>\n</nmapdiff>\n");
    s
}
