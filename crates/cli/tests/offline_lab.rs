//! `--offline` (issue 18): a raw scan's whole engine with no socket. Run
//! inside the lab's scanner namespace, whose only routes lead to lab
//! hosts, so that even a bug could send nothing anywhere else; the tests
//! check that nothing is sent at all, and that a wide sweep's memory stays
//! flat.

use portolan_lab::{Lab, lab_or_skip};

use crate::util::{assert_success, portolan_bin, read_jsonl, scratch_dir};

/// TCP segments `host` has received, counted by an nftables rule of its
/// own (the kernel's own chatter on a new link, IPv6 neighbour and
/// multicast listener messages, is not a probe and is not counted).
fn tcp_received(host: &portolan_lab::Host) -> u64 {
    let listing = host
        .namespace()
        .exec("nft", &["list", "table", "inet", "offline_count"], None)
        .unwrap();
    listing
        .split("packets ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no counter in {listing}"))
        .parse()
        .unwrap()
}

#[test]
fn offline_sends_nothing_and_stamps_every_probe() {
    let lab = lab_or_skip!(Lab::builder().hosts(1));
    let host = lab.host(0);
    let _tcp = host.listen_tcp([22]).unwrap();
    host.nft(
        "add table inet offline_count\n\
         add chain inet offline_count input { type filter hook input priority -30; }\n\
         add rule inet offline_count input meta l4proto tcp counter\n",
    )
    .unwrap();
    let json = scratch_dir().join("offline.jsonl");
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["--offline", "-sS", "-p", "1-1000", "--no-progress", "-oJ"])
        .arg(&json)
        .arg(host.ipv4().to_string())
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(tcp_received(host), 0, "an offline scan sent packets");
    let run = read_jsonl(&json);
    let summary = run.summary.unwrap();
    // Every port stamped at least once, none answered (not even the open
    // one: nothing went out).
    assert!(
        summary["probes_sent"].as_u64().unwrap() >= 1000,
        "{summary}"
    );
    assert_eq!(summary["packets"]["sent"], summary["probes_sent"]);
    assert_eq!(summary["replies"], 0);
    assert_eq!(run.ports.len(), 1000);
    assert!(run.ports.values().all(|p| p.state == "filtered"));
}

#[test]
fn an_offline_sweep_of_a_million_addresses_stays_in_bounded_memory() {
    // A one-port sweep of fd00:18::/108 (1,048,576 lab addresses), one
    // try each: the scheduler holds a group at a time, so memory does not
    // grow with the targets (a generous bound: the binary and its
    // buffers take most of it).
    let lab = lab_or_skip!(Lab::builder().hosts(1));
    let mut child = lab
        .scanner()
        .command(portolan_bin())
        .args([
            "--offline",
            "--no-db",
            "-sS",
            "-T5",
            "--max-retries",
            "0",
            "-p",
            "80",
            "--no-progress",
            "-oG",
            "/dev/null",
            "fd00:18::/108",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{stdout}");
    assert!(
        stdout.contains("1048576 IP addresses"),
        "{}",
        stdout.lines().last().unwrap_or("")
    );
    let peak_kib = crate::util::children_peak_rss_kib();
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
}
