//! `portolan report`: pages from a lab scan's XML and JSON lines, rendered
//! by headless Chromium (Debian's package). The rendered DOM must show the
//! hosts, their open ports and services, the state counts, the host × port
//! matrix and (from JSON lines) the rate timeline; a screenshot of each is
//! saved under `target/tmp/` for people to look at. Bad input gives one
//! line and exit status 1, never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use portolan_lab::{Lab, lab_or_skip};

use crate::output_tools::{run, tools_or_skip};
use crate::util::{assert_success, portolan, portolan_bin, scratch_dir};

/// Headless Chromium with nothing that reaches out (a fresh profile, no
/// background networking, updates or sync).
fn chromium(profile: &Path, what: &[&str], page: &Path) -> String {
    let out = run(Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1100,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(what)
        .arg(format!("file://{}", page.display())));
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Renders `page`, returns its DOM and saves a screenshot as
/// `target/tmp/<name>.png`.
fn render(page: &Path, name: &str) -> String {
    let profile = scratch_dir().join("chromium-profile");
    let dom = chromium(&profile, &["--dump-dom"], page);
    let png = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    chromium(
        &profile,
        &[&format!("--screenshot={}", png.display())],
        page,
    );
    let bytes = std::fs::read(&png).expect("the screenshot was written");
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    dom
}

fn report(input: &Path, output: &Path) {
    let out = portolan(&[
        "report",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ]);
    assert_success(&out);
}

#[test]
fn reports_from_xml_and_json_lines_render_in_chromium() {
    tools_or_skip!(chromium);
    let lab = lab_or_skip!(Lab::builder().hosts(2));
    let a = lab.host(0);
    let b = lab.host(1);
    let _a = a.listen_tcp([22, 80]).unwrap();
    let _b = b.listen_tcp([80, 443]).unwrap();
    b.drop_tcp(1000..=1009).unwrap();
    let dir = scratch_dir();
    let xml = dir.join("scan.xml");
    let jsonl = dir.join("scan.jsonl");
    // About three seconds at this rate, so JSON lines carry rate samples.
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sT", "--no-progress", "-p", "1-1200", "--max-rate", "800"])
        .arg("-oX")
        .arg(&xml)
        .arg("-oJ")
        .arg(&jsonl)
        .arg(a.ipv4().to_string())
        .arg(b.ipv4().to_string())
        .output()
        .unwrap();
    assert_success(&out);
    let (va, vb) = (a.ipv4().to_string(), b.ipv4().to_string());

    for (input, name) in [(&xml, "report-from-xml"), (&jsonl, "report-from-jsonl")] {
        let page = dir.join(format!("{name}.html"));
        report(input, &page);
        let html = std::fs::read_to_string(&page).unwrap();
        assert!(!html.contains("http://") && !html.contains("https://"));
        let dom = render(&page, name);
        assert!(dom.contains("<h1>Scan report</h1>"), "{name}");
        assert!(dom.contains("<b>2</b>hosts (2 up)"), "{name}");
        assert!(
            dom.contains("data-state=\"open\"><b>4</b>open ports"),
            "{name}"
        );
        assert!(dom.contains("data-state=\"filtered\"><b>10</b>"), "{name}");
        assert!(
            dom.contains("data-state=\"closed\"><b>2386</b>"),
            "{name}: 2 × 1200 − 4 open − 10 filtered"
        );
        for addr in [&va, &vb] {
            assert!(
                dom.contains(&format!("data-addr=\"{addr}\"")),
                "{name}: {addr}"
            );
        }
        // The matrix: columns 22, 80 and 443; 22 open on a only.
        for port in ["22/tcp", "80/tcp", "443/tcp"] {
            assert!(
                dom.contains(&format!("<th class=\"port\">{port}</th>")),
                "{name}"
            );
        }
        assert!(dom.contains(&format!("title=\"{va} 22/tcp: open — syn-ack\">●</td>")));
        assert!(
            dom.contains(&format!("title=\"{vb} 22/tcp: closed")),
            "{name}"
        );
        assert!(dom.contains("<td>ssh</td>") && dom.contains("<td>https</td>"));
        let timeline = dom.contains("<polyline id=\"sent-rate\"");
        assert_eq!(timeline, name.ends_with("jsonl"), "{name}: timeline");
    }
}

#[test]
fn bad_report_input_is_one_line_and_status_one() {
    let dir = scratch_dir();
    let cases: [(&str, &[u8]); 4] = [
        ("empty.xml", b""),
        ("text.txt", b"Host: 1.2.3.4 ()\tStatus: Up\n"),
        ("broken.xml", b"<nmaprun><host></port></nmaprun>"),
        ("broken.jsonl", b"{\"type\":\"begin\"}\n{\"type\":\n"),
    ];
    for (name, bytes) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = portolan(&["report", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.starts_with("portolan: error: "), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
    let out = portolan(&["report", "a", "b"]);
    assert_eq!(out.status.code(), Some(2));
}
