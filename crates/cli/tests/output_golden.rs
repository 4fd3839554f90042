//! Golden files of every format from the real binary on a deterministic
//! lab scan (three open ports, five dropped, the rest closed), with what
//! varies from run to run masked: times and durations, round-trip figures,
//! probe counts, the lab's address, the binary's path and version.
//!
//! To accept a deliberate change: `UPDATE_GOLDEN=1 cargo nextest run -p
//! portolan --test integration output_golden`, then review the diff of
//! `crates/cli/tests/golden/`.

use std::path::PathBuf;

use portolan_lab::lab_or_skip;
use serde_json::Value;

use crate::util::{assert_success, portolan_bin, scratch_dir};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// XML attributes whose values vary between runs.
const VOLATILE_ATTRS: [&str; 12] = [
    "args",
    "start",
    "startstr",
    "version",
    "starttime",
    "endtime",
    "srtt",
    "rttvar",
    "to",
    "time",
    "timestr",
    "elapsed",
];

/// JSON keys whose values vary between runs.
const VOLATILE_KEYS: [&str; 16] = [
    "scan_id",
    "args",
    "version",
    "start",
    "end",
    "elapsed_s",
    "probes_sent",
    "retransmissions",
    "replies",
    "late_replies",
    "probes_per_s",
    "srtt_us",
    "rttvar_us",
    "timeout_us",
    "tries",
    "packets",
];

/// Replaces ` name="..."` values by `*`.
fn mask_attr(text: &str, name: &str) -> String {
    let key = format!(" {name}=\"");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&key) {
        out.push_str(&rest[..at + key.len()]);
        rest = &rest[at + key.len()..];
        let end = rest.find('"').expect("closed attribute");
        out.push('*');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Replaces every run of digits (with dots) by `N`.
fn mask_numbers(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_number = false;
    for c in line.chars() {
        if c.is_ascii_digit() || (in_number && c == '.') {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// Lines of a text format with the volatile ones' numbers masked.
fn mask_lines(text: &str, volatile: &[&str]) -> String {
    text.lines()
        .map(|l| {
            if volatile.iter().any(|v| l.contains(v)) {
                mask_numbers(l)
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect()
}

/// Keeps a line up to and with `marker`, then `*`.
fn cut_after(line: &str, marker: &str) -> Option<String> {
    line.find(marker)
        .map(|at| format!("{} *", &line[..at + marker.len()]))
}

fn mask_xml(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("<?") {
                return l.to_string();
            }
            // The comment holds the command line and the start time.
            if let Some(masked) = cut_after(l, "scan initiated").filter(|_| l.starts_with("<!--")) {
                return masked + " -->";
            }
            VOLATILE_ATTRS
                .iter()
                .chain(&["summary"])
                .fold(l.to_string(), |l, name| mask_attr(&l, name))
        })
        .map(|l| l + "\n")
        .collect()
}

/// Masks the `# ... scan initiated` and `# Nmap done at` lines of the
/// normal and grepable files.
fn mask_comments(text: &str) -> String {
    text.lines()
        .map(|l| {
            if let Some(masked) = cut_after(l, "scan initiated") {
                masked
            } else if let Some(rest) = l.strip_prefix("# Nmap done at ") {
                let tail = rest.split_once(" -- ").map_or("", |(_, t)| t);
                format!("# Nmap done at * -- {}", mask_numbers(tail))
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect()
}

fn mask_jsonl(text: &str) -> String {
    // Rate samples come once a second: how many depends on the run.
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.contains("\"type\":\"rate\""))
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("JSON line");
            let object = v.as_object_mut().expect("an object per line");
            for key in VOLATILE_KEYS {
                if object.contains_key(key) {
                    object.insert(key.to_string(), Value::String("*".into()));
                }
            }
            v.to_string()
        })
        .collect();
    // Port lines arrive as ports resolve: order them.
    let ports = lines
        .iter()
        .position(|l| l.contains("\"type\":\"port\""))
        .unwrap_or(0);
    let end = lines
        .iter()
        .rposition(|l| l.contains("\"type\":\"port\""))
        .map_or(0, |i| i + 1);
    lines[ports..end].sort();
    lines.into_iter().map(|l| l + "\n").collect()
}

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert!(
        actual == expected,
        "{name} differs from {}:\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

#[test]
fn every_format_of_a_lab_scan_matches_its_golden_file() {
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = host.listen_tcp([22, 80, 443]).expect("listeners");
    host.drop_tcp(1000..=1004).expect("drop rule");
    let addr = host.ipv4().to_string();
    let dir = scratch_dir();
    let base = dir.join("lab");
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sT", "-T4", "--reason", "--no-progress", "-p"])
        .arg("1-100,443,1000-1004")
        .arg("-oA")
        .arg(&base)
        .arg("-oJ")
        .arg(base.with_extension("jsonl"))
        .arg(&addr)
        .output()
        .expect("run portolan in the lab");
    assert_success(&out);
    let read = |ext: &str| {
        std::fs::read_to_string(base.with_extension(ext))
            .unwrap()
            .replace(&addr, "198.18.0.2")
            .replace(VERSION, "VERSION")
            .replace(portolan_bin(), "portolan")
    };
    check("lab.xml", &mask_xml(&read("xml")));
    check("lab.gnmap", &mask_comments(&read("gnmap")));
    check(
        "lab.nmap",
        &mask_lines(&mask_comments(&read("nmap")), &["latency", "probes/s"]),
    );
    check("lab.jsonl", &mask_jsonl(&read("jsonl")));
}

#[test]
fn masks_hide_only_what_varies() {
    assert_eq!(
        mask_attr("<times srtt=\"12\" to=\"5\"/>", "srtt"),
        "<times srtt=\"*\" to=\"5\"/>"
    );
    assert_eq!(
        mask_numbers("in 1.52 seconds, 3 hosts"),
        "in N seconds, N hosts"
    );
}
