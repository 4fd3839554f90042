//! Interrupted scans leave files that consumers still read. SIGINT: every
//! file is complete and closed (XML valid against nmap.dtd, with
//! `exit="error"`). SIGKILL: the XML holds every host finished before the
//! kill, whole, and only lacks its tail; `xmllint --recover` reads it as it
//! is, and python-libnmap reads it with `incomplete=True` (which appends
//! `</nmaprun>`), as with nmap's own files.
//!
//! The scan is made slow on loopback with `--max-rate` and one host at a
//! time, so hosts finish one after another.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::output_tools::{assert_dtd_valid, libnmap_hosts, run, tools_or_skip};
use crate::util::{portolan_bin, scratch_dir};

const HOSTS: [&str; 6] = [
    "127.0.0.1",
    "127.0.0.2",
    "127.0.0.3",
    "127.0.0.4",
    "127.0.0.5",
    "127.0.0.6",
];

/// About one second per host.
fn slow_scan(dir: &Path) -> (Child, PathBuf, PathBuf) {
    let xml = dir.join("cut.xml");
    let gnmap = dir.join("cut.gnmap");
    let child = Command::new(portolan_bin())
        .args([
            "-sT",
            "-p",
            "1-200",
            "--max-rate",
            "200",
            "--max-hostgroup",
            "1",
        ])
        .arg("-oX")
        .arg(&xml)
        .arg("-oG")
        .arg(&gnmap)
        .args(HOSTS)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start portolan");
    (child, xml, gnmap)
}

/// Waits until the XML file holds a finished host.
fn wait_for_first_host(child: &mut Child, xml: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(xml).is_ok_and(|t| t.contains("</host>")) {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no host finished");
        }
        assert!(child.try_wait().unwrap().is_none(), "the scan ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("portolan did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigint_closes_every_file() {
    tools_or_skip!(xmllint, libnmap);
    let dir = scratch_dir();
    let (mut child, xml, gnmap) = slow_scan(&dir);
    wait_for_first_host(&mut child, &xml);
    let status = run(Command::new("kill").args(["-INT", &child.id().to_string()])).status;
    assert!(status.success());
    assert_eq!(wait(&mut child).code(), Some(130));

    let text = std::fs::read_to_string(&xml).unwrap();
    assert!(text.ends_with("</runstats>\n</nmaprun>\n"), "{text}");
    assert!(
        text.contains(" exit=\"error\" errormsg=\"interrupted"),
        "{text}"
    );
    assert_dtd_valid(&xml);
    let hosts = libnmap_hosts(&xml, false);
    assert!(!hosts.is_empty());
    assert!(hosts.len() < HOSTS.len(), "the scan was not cut: {hosts:?}");
    for h in &hosts {
        assert!(HOSTS.contains(&h.address.as_str()), "{h:?}");
    }
    let grep = std::fs::read_to_string(&gnmap).unwrap();
    assert!(
        grep.contains("# Scan interrupted: the results above are partial\n# Nmap done at "),
        "{grep}"
    );
}

#[test]
fn sigkill_leaves_whole_hosts_that_consumers_recover() {
    tools_or_skip!(xmllint, libnmap);
    let dir = scratch_dir();
    let (mut child, xml, _) = slow_scan(&dir);
    wait_for_first_host(&mut child, &xml);
    child.kill().unwrap();
    wait(&mut child);

    let text = std::fs::read_to_string(&xml).unwrap();
    assert!(text.ends_with("</host>\n"), "a host was cut:\n{text}");
    assert!(!text.contains("<runstats>"));
    let finished = text.matches("</host>").count();
    assert!((1..HOSTS.len()).contains(&finished), "{finished} hosts");

    // As it is: xmllint recovers every finished host.
    let out = run(Command::new("xmllint").arg("--recover").arg(&xml));
    let recovered = String::from_utf8_lossy(&out.stdout);
    assert_eq!(recovered.matches("</host>").count(), finished);
    assert!(recovered.trim_end().ends_with("</nmaprun>"));

    // With the closing tag appended: well-formed, and python-libnmap reads
    // the same hosts with their ports.
    let closed = dir.join("closed.xml");
    std::fs::write(&closed, format!("{text}</nmaprun>\n")).unwrap();
    let out = run(Command::new("xmllint").arg("--noout").arg(&closed));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hosts = libnmap_hosts(&xml, true);
    assert_eq!(hosts.len(), finished);
    for h in &hosts {
        assert_eq!(h.extra.get("closed"), Some(&200), "{h:?}");
    }
}
