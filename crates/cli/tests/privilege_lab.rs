//! Least privilege: a copy of the binary given `cap_net_raw,cap_net_admin`
//! by `setcap`, run as `nobody`, does every raw technique; once its
//! sockets are open, no thread of the running scan holds a capability,
//! effective or permitted (read from `/proc/<pid>/task/*/status`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use portolan_lab::{Lab, lab_or_skip};

use crate::util::{portolan_bin, read_jsonl, scratch_dir};

/// A copy of the binary that `nobody` may run, with the two capabilities
/// in its file's permitted and effective sets.
fn capable_copy() -> PathBuf {
    let dir = scratch_dir();
    let copy = dir.join("portolan");
    std::fs::copy(portolan_bin(), &copy).unwrap();
    let out = Command::new("setcap")
        .arg("cap_net_raw,cap_net_admin+eip")
        .arg(&copy)
        .output()
        .expect("setcap (Debian's libcap2-bin)");
    assert!(
        out.status.success(),
        "setcap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let caps = Command::new("getcap").arg(&copy).output().unwrap();
    let caps = String::from_utf8_lossy(&caps.stdout);
    assert!(caps.contains("cap_net_admin,cap_net_raw=eip"), "{caps}");
    copy
}

/// `binary ARGS` as `nobody` in the lab's scanner namespace (no
/// inheritable capabilities: what it holds comes from the file).
fn as_nobody(lab: &Lab, binary: &Path) -> Command {
    let mut command = lab.scanner().command("setpriv");
    command
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(binary)
        .args(["--no-db", "--no-progress", "-n"]);
    command
}

fn run_json(lab: &Lab, binary: &Path, args: &[&str]) -> (Output, crate::util::JsonRun) {
    let out = as_nobody(lab, binary)
        .args(args)
        .args(["-oJ", "-"])
        .output()
        .expect("run portolan");
    assert!(
        out.status.success(),
        "{args:?} as nobody with file capabilities: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = scratch_dir().join("run.jsonl");
    std::fs::write(&file, &out.stdout).unwrap();
    let run = read_jsonl(&file);
    (out, run)
}

#[test]
fn every_raw_technique_works_with_file_capabilities_as_nobody() {
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    let _service = host.listen_tcp([80]).unwrap();
    let copy = capable_copy();
    let v4 = host.ipv4().to_string();
    let addr = host.ipv4().into();
    // (flags, port, the state it must find)
    let cases: &[(&[&str], u16, &str)] = &[
        (&["-sS", "-p", "80,81"], 80, "open"),
        (&["-sS", "-p", "80,81"], 81, "closed"),
        (&["-sA", "-p", "80"], 80, "unfiltered"),
        (&["-sW", "-p", "81"], 81, "closed"),
        (&["-sF", "-p", "81"], 81, "closed"),
        (&["-sN", "-p", "81"], 81, "closed"),
        (&["-sX", "-p", "81"], 81, "closed"),
        (&["-sM", "-p", "81"], 81, "closed"),
        (&["-sU", "-p", "9"], 9, "closed"),
        (&["-sO", "-p", "6"], 6, "open"),
    ];
    for (flags, port, state) in cases {
        let mut args = flags.to_vec();
        args.extend(["-Pn", v4.as_str()]);
        let (_, run) = run_json(&lab, &copy, &args);
        let got = run.ports.get(&(addr, *port)).map(|p| p.state.as_str());
        assert_eq!(got, Some(*state), "{flags:?} port {port}");
    }
    // SCTP: the host answers INIT with ABORT (kernel SCTP) or an ICMP
    // protocol unreachable (without): either way an answer, raw-read.
    let (_, run) = run_json(&lab, &copy, &["-sY", "-Pn", "-p", "80", &v4]);
    let got = &run.ports[&(addr, 80)];
    assert_ne!(got.reason, "no-response", "{got:?}");
    // Host discovery with raw pings (ICMP echo, timestamp, TCP, UDP).
    for ping in ["-PE", "-PP", "-PS80", "-PA80", "-PU9"] {
        let (_, run) = run_json(&lab, &copy, &["-sn", ping, &v4]);
        assert_eq!(run.hosts.len(), 1, "{ping}");
        assert_eq!(run.hosts[0]["status"], "up", "{ping}: {:?}", run.hosts[0]);
    }
}

/// Every thread's `CapEff` and `CapPrm` lines of process `pid`; empty once
/// it has exited.
fn thread_capabilities(pid: u32) -> Vec<(String, String)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut caps = Vec::new();
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for key in ["CapEff:", "CapPrm:"] {
            if let Some(value) = status.lines().find_map(|l| l.strip_prefix(key)) {
                caps.push((
                    format!("{} {key}", task.file_name().to_string_lossy()),
                    value.trim().to_string(),
                ));
            }
        }
    }
    caps
}

#[test]
fn a_running_scan_keeps_no_capability_in_any_thread() {
    let lab = lab_or_skip!();
    let host = lab.host(0);
    host.drop_tcp(1..=65535).unwrap();
    let copy = capable_copy();
    // The connect scan needs no capability, and keeps none either.
    for technique in ["-sS", "-sT"] {
        let held = capabilities_while_scanning(&lab, &copy, technique, &host.ipv4().to_string());
        assert!(
            held.is_empty(),
            "{technique}: capabilities still held: {held:?}"
        );
    }
}

/// Starts a scan of a silent host as `nobody` and returns each thread
/// capability set that is not empty once it runs.
fn capabilities_while_scanning(
    lab: &Lab,
    copy: &Path,
    technique: &str,
    target: &str,
) -> Vec<(String, String)> {
    // nobody writes its normal output where it may.
    let normal = std::env::temp_dir().join(format!(
        "portolan-caps-{}{technique}.txt",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&normal);
    let mut child = as_nobody(lab, copy)
        .args([technique, "-Pn", "-p", "1-300", "--max-retries", "3", "-oN"])
        .arg(&normal)
        .arg(target)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // The silent host keeps it scanning for seconds. Wait until the
    // output file is there (the sockets and files are open, the scan
    // running), then read every thread.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        if !normal.exists() {
            continue;
        }
        std::thread::sleep(Duration::from_millis(500));
        seen = thread_capabilities(pid);
        break;
    }
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&normal);
    assert!(
        still_running,
        "{technique}: the scan ended before it was read: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!seen.is_empty(), "{technique}: no thread status read");
    seen.into_iter()
        .filter(|(_, value)| value != "0000000000000000")
        .collect()
}
