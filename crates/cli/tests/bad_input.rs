//! Bad input gets one clear error line naming the offending token, exit
//! status 2, and never a panic.

use crate::util::{portolan, scratch_dir};

fn assert_usage_error(args: &[&str], token: &str) {
    let out = portolan(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "args {args:?}: stderr {stderr}");
    assert!(out.stdout.is_empty(), "args {args:?} printed to stdout");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "args {args:?}: want one line, got {stderr}");
    assert!(
        lines[0].starts_with("portolan: error: ") && lines[0].contains(token),
        "args {args:?}: {:?} should name {token:?}",
        lines[0]
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn unknown_flags_are_named() {
    assert_usage_error(&["--frobnicate", "127.0.0.1"], "--frobnicate");
    assert_usage_error(&["-Q", "127.0.0.1"], "-Q");
    assert_usage_error(&["-sQ", "127.0.0.1"], "-sQ");
    assert_usage_error(&["--scanflags", "SYNX", "127.0.0.1"], "SYNX");
    assert_usage_error(&["--scanflags", "SYN", "-sT", "127.0.0.1"], "--scanflags");
}

#[test]
fn bad_targets_are_named() {
    assert_usage_error(&["-p", "80", "198.18.0.300"], "198.18.0.300");
    assert_usage_error(&["-p", "80", "198.18.5-3.1"], "198.18.5-3.1");
    assert_usage_error(&["-p", "80", "198.18.0.0/33"], "198.18.0.0/33");
    assert_usage_error(&["-p", "80", "fd00::/0"], "fd00::/0");
    assert_usage_error(
        &["-p", "80", "no-such-host.invalid"],
        "no-such-host.invalid",
    );
    assert_usage_error(
        &["-p", "80", "--exclude", "1.2.3.999", "127.0.0.1"],
        "1.2.3.999",
    );
}

#[test]
fn bad_ports_are_named() {
    assert_usage_error(&["-p", "70000", "127.0.0.1"], "70000");
    assert_usage_error(&["-p", "90-80", "127.0.0.1"], "90-80");
    assert_usage_error(&["-p", "22,x", "127.0.0.1"], "x");
    assert_usage_error(&["-p", "", "127.0.0.1"], "-p");
    assert_usage_error(&["--top-ports", "0", "127.0.0.1"], "--top-ports");
    assert_usage_error(&["-p", "U:53", "127.0.0.1"], "no TCP ports");
}

#[test]
fn bad_values_are_named() {
    assert_usage_error(&["-T9", "127.0.0.1"], "-T");
    assert_usage_error(&["--min-rate", "fast", "127.0.0.1"], "fast");
    assert_usage_error(&["--host-timeout", "5y", "127.0.0.1"], "5y");
    assert_usage_error(&["--max-retries", "-1", "127.0.0.1"], "-1");
    assert_usage_error(
        &["--sweep-confidence", "1", "127.0.0.1"],
        "--sweep-confidence",
    );
    assert_usage_error(&["-p"], "-p");
}

#[test]
fn missing_or_empty_inputs_are_errors() {
    assert_usage_error(&[], "no targets");
    assert_usage_error(&["-p", "80"], "no targets");
    assert_usage_error(
        &["-iL", "/nonexistent/targets.txt"],
        "/nonexistent/targets.txt",
    );
    let dir = scratch_dir();
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "# nothing here\n\n").unwrap();
    assert_usage_error(&["-iL", empty.to_str().unwrap()], "no targets");
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, "127.0.0.1\n# comment\n198.18.0.256\n").unwrap();
    assert_usage_error(&["-iL", bad.to_str().unwrap()], ":3");
}

#[test]
fn help_version_and_man_work() {
    let out = portolan(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "-sT",
        "-p <port ranges>",
        "-iL <file>",
        "--min-rate",
        "-oJ <file>",
        "-T<0-5>",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
    let out = portolan(&["-V"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Portolan version "));
    let out = portolan(&["--man"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(".TH PORTOLAN 1"));
}

#[test]
fn list_scan_expands_lazily_and_excludes() {
    let out = portolan(&[
        "-sL",
        "198.18.0.0/30",
        "198.18.1-2.7",
        "--exclude",
        "198.18.0.1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let hosts: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Portolan scan report for "))
        .collect();
    assert_eq!(
        hosts,
        [
            "198.18.0.0",
            "198.18.0.2",
            "198.18.0.3",
            "198.18.1.7",
            "198.18.2.7"
        ]
    );
    // A /8 lists without building it in memory (only its first lines read).
    let mut child = std::process::Command::new(crate::util::portolan_bin())
        .args(["-sL", "198.0.0.0/8"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    for _ in 0..3 {
        reader.read_line(&mut first).unwrap();
    }
    drop(reader);
    // Closing the pipe early ends it quietly (broken pipe is not an error).
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        first.contains("Portolan scan report for 198.0.0.0"),
        "{first}"
    );
}

#[test]
fn list_scans_keep_the_scope_too() {
    // -sL sends nothing, but it lists what a scan would take: a target
    // outside --scope is refused as a scan refuses it.
    let scope = scratch_dir().join("scope.txt");
    std::fs::write(&scope, "198.18.0.0/24\n").unwrap();
    let scope = scope.to_str().unwrap();
    assert_usage_error(
        &["-sL", "--scope", scope, "198.18.1.0/30"],
        "\"198.18.1.0/30\" is outside the scope",
    );
    let out = portolan(&["-sL", "--scope", scope, "198.18.0.0/30"]);
    assert_eq!(out.status.code(), Some(0));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed.matches("Portolan scan report for").count(), 4);
}
