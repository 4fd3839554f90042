//! One self-contained HTML page for a [`ScanReport`]: inline CSS and SVG,
//! no script, and a Content-Security-Policy that forbids loading anything,
//! so the page shows the same offline, from a mail attachment or a ticket.
//!
//! Sections (each with an `id` for tests and links): `summary` (hosts and
//! ports per state, with a bar), `timeline` (probes and replies per second
//! from the rate samples), `matrix` (hosts × ports open anywhere) and
//! `hosts` (each host's listed ports with state, service and reason).
//! Every string from the file goes through `escape` (the XML writer's).

use std::fmt::Write;

// XML's escaping serves HTML too: the five markup characters become
// entities, and characters that have no place in a page become `\xNN` text.
use portolan_output::escape::for_xml as escape;

use crate::{HostEntry, RatePoint, ScanReport};

/// At most this many port columns in the matrix.
const MATRIX_COLUMNS: usize = 100;

/// The CSS class of a state ("open|filtered" → "st-open-filtered").
fn state_class(state: &str) -> String {
    let safe: String = state
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("st-{safe}")
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d2733;background:#f5f7fa}
header{background:#1d2b3a;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header code{color:#cfe3ff;word-break:break-all}
.badge{display:inline-block;background:#c62828;color:#fff;border-radius:4px;padding:1px 8px;margin-left:8px;font-size:13px}
main{padding:8px 28px 28px;max-width:1200px}
section{background:#fff;border:1px solid #dde3ea;border-radius:8px;margin:18px 0;padding:14px 20px}
h2{font-size:18px;margin:0 0 10px}
h3{font-size:16px;margin:18px 0 6px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:12px}
.card{border:1px solid #dde3ea;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:22px}
table{border-collapse:collapse;font-size:14px}
th,td{border:1px solid #dde3ea;padding:3px 8px;text-align:left}
th{background:#eef2f6}
.matrix td{text-align:center;min-width:22px;padding:2px}
.matrix th.port{writing-mode:vertical-rl;transform:rotate(180deg);padding:6px 2px}
.scroll{overflow-x:auto}
.st-open{background:#c8e6c9;color:#1b5e20}
.st-closed{background:#eceff1;color:#455a64}
.st-filtered{background:#ffe0b2;color:#e65100}
.st-unfiltered{background:#bbdefb;color:#0d47a1}
.st-open-filtered{background:#b2dfdb;color:#004d40}
.st-closed-filtered{background:#e1bee7;color:#4a148c}
.muted{color:#6b7785}
.legend span{display:inline-block;padding:1px 8px;margin-right:6px;border-radius:4px}
";

/// Colours of the states in SVG (the same as the CSS classes).
fn state_colour(state: &str) -> &'static str {
    match state {
        "open" => "#43a047",
        "closed" => "#90a4ae",
        "filtered" => "#fb8c00",
        "unfiltered" => "#1e88e5",
        "open|filtered" => "#00897b",
        "closed|filtered" => "#8e24aa",
        _ => "#bdbdbd",
    }
}

/// The whole page. `generator` names the program that wrote it.
pub fn render(report: &ScanReport, generator: &str) -> String {
    let mut page = String::with_capacity(16 * 1024);
    let open_total: u64 = report.state_counts().get("open").copied().unwrap_or(0);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Scan report: {} hosts, {open_total} open ports</title>\n<style>{STYLE}</style></head>\n<body>\n",
        report.hosts.len()
    );
    header(&mut page, report);
    page.push_str("<main>\n");
    summary(&mut page, report);
    timeline(&mut page, &report.rates);
    matrix(&mut page, report);
    hosts(&mut page, report);
    let _ = write!(
        page,
        "</main>\n<footer class=\"muted\" style=\"padding:0 28px 20px\">Written by {}.</footer>\n</body></html>\n",
        escape(generator)
    );
    page
}

fn header(page: &mut String, r: &ScanReport) {
    let _ = write!(page, "<header><h1>Scan report");
    if r.incomplete {
        page.push_str("<span class=\"badge\">incomplete</span>");
    }
    page.push_str("</h1>\n<div>");
    let mut facts = Vec::new();
    if !r.scanner.is_empty() {
        facts.push(escape(&r.scanner).into_owned());
    }
    if !r.scan_type.is_empty() {
        facts.push(format!("{} scan", escape(&r.scan_type)));
    }
    if !r.start.is_empty() {
        facts.push(format!("started {}", escape(&r.start)));
    }
    if let Some(s) = r.elapsed_s {
        facts.push(format!("{s:.2} s"));
    }
    page.push_str(&facts.join(" · "));
    let _ = write!(
        page,
        "</div>\n<div><code>{}</code></div></header>\n",
        escape(&r.args)
    );
}

fn summary(page: &mut String, r: &ScanReport) {
    let counts = r.state_counts();
    let up = r.hosts.iter().filter(|h| h.status == "up").count();
    page.push_str("<section id=\"summary\"><h2>Summary</h2>\n<div class=\"cards\">");
    let _ = write!(
        page,
        "<div class=\"card\" id=\"hosts-count\"><b>{}</b>hosts ({up} up)</div>",
        r.hosts.len()
    );
    for (state, n) in &counts {
        let _ = write!(
            page,
            "<div class=\"card {}\" data-state=\"{}\"><b>{n}</b>{} ports</div>",
            state_class(state),
            escape(state),
            escape(state)
        );
    }
    page.push_str("</div>\n");
    let total: u64 = counts.values().sum();
    if total > 0 {
        // One bar, split by state; a state with few ports still shows.
        let widths: Vec<f64> = counts
            .values()
            .map(|n| (720.0 * *n as f64 / total as f64).max(4.0))
            .collect();
        let _ = write!(
            page,
            "<svg width=\"{:.0}\" height=\"28\" role=\"img\" aria-label=\"ports by state\">",
            widths.iter().sum::<f64>().ceil()
        );
        let mut x = 0.0;
        for ((state, n), w) in counts.iter().zip(widths) {
            let _ = write!(
                page,
                "<rect x=\"{x:.1}\" y=\"0\" width=\"{w:.1}\" height=\"28\" fill=\"{}\"><title>{} {}</title></rect>",
                state_colour(state),
                n,
                escape(state)
            );
            x += w;
        }
        page.push_str("</svg>\n");
    }
    page.push_str("</section>\n");
}

/// Per-second rates between consecutive samples (from the start): (end of
/// the interval, probes per second, replies per second).
fn rates(points: &[RatePoint]) -> Vec<(f64, f64, f64)> {
    let mut previous = RatePoint {
        t_s: 0.0,
        probes_sent: 0,
        replies: 0,
    };
    let mut out = Vec::new();
    for p in points {
        let dt = p.t_s - previous.t_s;
        if dt > 0.0 {
            out.push((
                p.t_s,
                p.probes_sent.saturating_sub(previous.probes_sent) as f64 / dt,
                p.replies.saturating_sub(previous.replies) as f64 / dt,
            ));
            previous = *p;
        }
    }
    out
}

/// A step line: each rate held over its interval, from time 0.
fn polyline(series: &[(f64, f64)], sx: impl Fn(f64) -> f64, sy: impl Fn(f64) -> f64) -> String {
    let mut from = 0.0;
    let mut points = Vec::with_capacity(series.len() * 2);
    for (t, v) in series {
        points.push(format!("{:.1},{:.1}", sx(from), sy(*v)));
        points.push(format!("{:.1},{:.1}", sx(*t), sy(*v)));
        from = *t;
    }
    points.join(" ")
}

fn timeline(page: &mut String, points: &[RatePoint]) {
    page.push_str("<section id=\"timeline\"><h2>Send and reply rates</h2>\n");
    let series = rates(points);
    if series.is_empty() {
        page.push_str(
            "<p class=\"muted\">No rate samples in this file: JSON lines (-oJ) of scans \
             longer than a second carry them; XML does not.</p></section>\n",
        );
        return;
    }
    let (w, h, left, bottom, top, right) = (720.0, 240.0, 60.0, 30.0, 14.0, 16.0);
    let t_max = series.last().map_or(1.0, |s| s.0).max(1e-3);
    let v_max = series
        .iter()
        .map(|s| s.1.max(s.2))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.15;
    let sx = |t: f64| left + (w - left - right) * t / t_max;
    let sy = |v: f64| top + (h - top - bottom) * (1.0 - v / v_max);
    let _ = write!(
        page,
        "<svg width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"probes and replies per second\">\
         <line x1=\"{left}\" y1=\"{y0:.1}\" x2=\"{x1:.1}\" y2=\"{y0:.1}\" stroke=\"#90a4ae\"/>\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{y0:.1}\" stroke=\"#90a4ae\"/>\
         <text x=\"{lx:.1}\" y=\"{ty:.1}\" font-size=\"12\" text-anchor=\"end\">{v_max:.0}/s</text>\
         <text x=\"{lx:.1}\" y=\"{ym:.1}\" font-size=\"12\" text-anchor=\"end\">{vm:.0}/s</text>\
         <text x=\"{lx:.1}\" y=\"{y0:.1}\" font-size=\"12\" text-anchor=\"end\">0</text>\
         <text x=\"{left}\" y=\"{h}\" font-size=\"12\">0 s</text>\
         <text x=\"{x1:.1}\" y=\"{h}\" font-size=\"12\" text-anchor=\"end\">{t_max:.1} s</text>",
        y0 = sy(0.0),
        x1 = sx(t_max),
        lx = left - 6.0,
        ty = top + 10.0,
        ym = sy(v_max / 2.0) + 4.0,
        vm = v_max / 2.0,
    );
    let sent: Vec<(f64, f64)> = series.iter().map(|s| (s.0, s.1)).collect();
    let replies: Vec<(f64, f64)> = series.iter().map(|s| (s.0, s.2)).collect();
    let _ = writeln!(
        page,
        "<polyline id=\"sent-rate\" fill=\"none\" stroke=\"#1e88e5\" stroke-width=\"2\" points=\"{}\"/>\
         <polyline id=\"reply-rate\" fill=\"none\" stroke=\"#43a047\" stroke-width=\"2\" stroke-dasharray=\"6 4\" points=\"{}\"/></svg>",
        polyline(&sent, sx, sy),
        polyline(&replies, sx, sy)
    );
    let _ = writeln!(
        page,
        "<p class=\"legend\"><span style=\"background:#bbdefb\">probes sent per second</span>\
         <span style=\"background:#c8e6c9\">replies per second (dashed)</span> \
         <span class=\"muted\">{} samples</span></p></section>",
        series.len()
    );
}

/// The state of `port` on `host`, with the reason if listed.
fn cell_state<'a>(host: &'a HostEntry, proto: &str, port: u16) -> (&'a str, &'a str) {
    match host
        .ports
        .iter()
        .find(|p| p.port == port && p.proto == proto)
    {
        Some(p) => (&p.state, &p.reason),
        None => (host.unlisted_state().unwrap_or("unknown"), ""),
    }
}

fn matrix(page: &mut String, r: &ScanReport) {
    let columns = r.open_ports();
    page.push_str("<section id=\"matrix\"><h2>Hosts × open ports</h2>\n");
    if columns.is_empty() {
        page.push_str("<p class=\"muted\">No open port on any host.</p></section>\n");
        return;
    }
    if columns.len() > MATRIX_COLUMNS {
        let _ = write!(
            page,
            "<p class=\"muted\">The first {MATRIX_COLUMNS} of {} ports open somewhere.</p>",
            columns.len()
        );
    }
    let columns = &columns[..columns.len().min(MATRIX_COLUMNS)];
    page.push_str("<div class=\"scroll\"><table class=\"matrix\"><tr><th>host</th>");
    for (proto, port) in columns {
        let _ = write!(page, "<th class=\"port\">{port}/{}</th>", escape(proto));
    }
    page.push_str("</tr>\n");
    for h in &r.hosts {
        let _ = write!(page, "<tr><th>{}</th>", escape(&h.addr));
        for (proto, port) in columns {
            let (state, reason) = cell_state(h, proto, *port);
            let mark = if state == "open" { "●" } else { "" };
            let _ = write!(
                page,
                "<td class=\"{}\" title=\"{} {port}/{}: {}{}{}\">{mark}</td>",
                state_class(state),
                escape(&h.addr),
                escape(proto),
                escape(state),
                if reason.is_empty() { "" } else { " — " },
                escape(reason)
            );
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</table></div>\n<p class=\"legend\">");
    for state in [
        "open",
        "closed",
        "filtered",
        "unfiltered",
        "open|filtered",
        "closed|filtered",
    ] {
        let _ = write!(
            page,
            "<span class=\"{}\">{state}</span>",
            state_class(state)
        );
    }
    page.push_str("</p></section>\n");
}

fn hosts(page: &mut String, r: &ScanReport) {
    page.push_str("<section id=\"hosts\"><h2>Hosts</h2>\n");
    for h in &r.hosts {
        let names = if h.names.is_empty() {
            String::new()
        } else {
            format!(" ({})", escape(&h.names.join(", ")))
        };
        let _ = writeln!(
            page,
            "<h3 class=\"host\" data-addr=\"{a}\">{a}{names} <span class=\"muted\">{}</span></h3>",
            escape(&h.status),
            a = escape(&h.addr),
        );
        if !h.extra.is_empty() {
            let parts: Vec<String> = h
                .extra
                .iter()
                .map(|(s, n)| format!("{n} {}", escape(s)))
                .collect();
            let _ = writeln!(
                page,
                "<p class=\"muted\">Not listed: {}.</p>",
                parts.join(", ")
            );
        }
        if h.ports.is_empty() {
            continue;
        }
        page.push_str(
            "<table class=\"ports\"><tr><th>port</th><th>state</th><th>service</th><th>version</th><th>reason</th></tr>\n",
        );
        let mut ports: Vec<_> = h.ports.iter().collect();
        // Open ports first, then by number.
        ports.sort_by_key(|p| (p.state != "open", p.port));
        for p in ports {
            let _ = writeln!(
                page,
                "<tr><td>{}/{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                p.port,
                escape(&p.proto),
                state_class(&p.state),
                escape(&p.state),
                escape(&p.service),
                escape(&p.version),
                escape(&p.reason)
            );
        }
        page.push_str("</table>\n");
    }
    page.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PortEntry;

    fn sample() -> ScanReport {
        ScanReport {
            scanner: "Portolan 0.1.0".into(),
            args: "portolan <script>".into(),
            hosts: vec![HostEntry {
                addr: "198.18.0.2".into(),
                names: vec!["<b>evil</b>".into()],
                status: "up".into(),
                ports: vec![PortEntry {
                    port: 22,
                    proto: "tcp".into(),
                    state: "open".into(),
                    reason: "syn-ack".into(),
                    service: "ssh\"><img src=x>".into(),
                    version: String::new(),
                }],
                extra: [("closed".to_string(), 999)].into(),
            }],
            rates: vec![
                RatePoint {
                    t_s: 1.0,
                    probes_sent: 100,
                    replies: 90,
                },
                RatePoint {
                    t_s: 2.0,
                    probes_sent: 300,
                    replies: 200,
                },
            ],
            ..ScanReport::default()
        }
    }

    #[test]
    fn outside_text_is_escaped_and_nothing_is_fetched() {
        let page = render(&sample(), "Portolan test");
        assert!(!page.contains("<script>"));
        assert!(!page.contains("<b>evil"));
        assert!(!page.contains("<img"));
        assert!(page.contains("&lt;b&gt;evil&lt;/b&gt;"));
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(page.contains("default-src 'none'"));
    }

    #[test]
    fn rates_are_differences_over_time() {
        let r = rates(&sample().rates);
        assert_eq!(r, vec![(1.0, 100.0, 90.0), (2.0, 200.0, 110.0)]);
        let page = render(&sample(), "x");
        assert!(page.contains("id=\"sent-rate\""));
        assert!(
            page.contains(
                "<td class=\"st-open\" title=\"198.18.0.2 22/tcp: open — syn-ack\">●</td>"
            )
        );
        assert!(page.contains("data-state=\"closed\"><b>999</b>"));
    }
}
