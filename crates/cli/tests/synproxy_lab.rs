//! A host behind netfilter's `synproxy` (nftables, in the host's own
//! namespace), which answers every SYN to ports 1-1000 with a SYN cookie
//! and opens the connection to the host only once the handshake is done:
//! one real service (80) among closed ports. The connect scan tells them
//! apart: the real port completes (`syn-ack`), the others complete with
//! the proxy and are then reset (`conn-reset`), never plain `syn-ack`.
//! (A SYN scan sees only the proxy's SYN-ACKs: every port open.)

use std::net::IpAddr;

use portolan_lab::lab_or_skip;

use crate::util::{assert_success, portolan_bin, read_jsonl, scratch_dir};

#[test]
fn connect_scan_tells_the_real_service_behind_a_syn_proxy() {
    let lab = lab_or_skip!();
    let host = lab.host(0);
    let _service = host.listen_tcp([80]).unwrap();
    host.exec("sysctl", &["-qw", "net.ipv4.tcp_syncookies=1"], None)
        .unwrap();
    host.exec(
        "sysctl",
        &["-qw", "net.netfilter.nf_conntrack_tcp_loose=0"],
        None,
    )
    .unwrap();
    host.nft(
        "table ip portolan_synproxy {\n\
         chain pre {\n type filter hook prerouting priority raw; policy accept;\n\
         tcp dport 1-1000 tcp flags syn notrack\n }\n\
         chain inp {\n type filter hook input priority filter; policy accept;\n\
         tcp dport 1-1000 ct state invalid,untracked \
         synproxy mss 1460 wscale 7 timestamp sack-perm\n\
         ct state invalid drop\n }\n}\n",
    )
    .unwrap();
    let json = scratch_dir().join("synproxy.jsonl");
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["--no-db", "--no-progress", "-n", "-Pn", "-sT"])
        .args(["-p", "22,79-81,443,999,2000", "-oJ"])
        .arg(&json)
        .arg(host.ipv4().to_string())
        .output()
        .unwrap();
    assert_success(&out);
    let run = read_jsonl(&json);
    let addr: IpAddr = host.ipv4().into();
    let got = |port: u16| {
        let p = &run.ports[&(addr, port)];
        (p.state.as_str(), p.reason.as_str())
    };
    assert_eq!(got(80), ("open", "syn-ack"), "the real service");
    for port in [22, 79, 81, 443, 999] {
        assert_eq!(got(port), ("open", "conn-reset"), "port {port}, proxied");
    }
    // Outside the proxied range, the host's own answer.
    assert_eq!(got(2000), ("closed", "conn-refused"));
}
