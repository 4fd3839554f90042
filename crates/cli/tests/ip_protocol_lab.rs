//! The IP protocol scan (`-sO`) against a lab host over IPv4 and IPv6:
//! ICMP, TCP and UDP answer in their own protocols, an SCTP endpoint
//! answers the INIT, unknown protocols draw the kernel's protocol
//! unreachable (ICMPv6: parameter problem), and nftables drops one
//! protocol and rejects another. nmap's states and reasons, nmap's output
//! forms (PROTOCOL column, `Protocols:` in grepable output, XML valid
//! against nmap.dtd).

use std::net::IpAddr;

use portolan_lab::{Lab, lab_or_skip};

use crate::output_tools::{assert_dtd_valid, tools_or_skip};
use crate::util::{assert_success, portolan_bin, read_jsonl, scratch_dir};

const PROTOCOLS: &str = "1,2,6,17,58,98,99,132,200-210,253";
const DROPPED: u16 = 99;
const REJECTED: u16 = 98;

fn expected(addr: IpAddr, protocol: u16) -> Option<(&'static str, &'static str)> {
    let v6 = addr.is_ipv6();
    let unknown = if v6 {
        ("closed", "param-problem")
    } else {
        ("closed", "proto-unreach")
    };
    Some(match protocol {
        1 if !v6 => ("open", "echo-reply"),
        58 if v6 => ("open", "echo-reply"),
        // Linux reads an IGMP message with a bad checksum and drops it.
        2 if !v6 => ("open|filtered", "no-response"),
        // ICMP of the other IP version, and IGMP over IPv6 (which has
        // MLD instead), are protocols the stack lacks.
        1 | 2 | 58 => unknown,
        6 | 132 => ("open", "proto-response"),
        17 => ("open", "port-unreach"),
        DROPPED => ("open|filtered", "no-response"),
        REJECTED => ("filtered", "admin-prohibited"),
        200..=210 | 253 => unknown,
        _ => return None,
    })
}

#[test]
fn ip_protocol_scan_reads_each_protocol_as_nmap_does() {
    tools_or_skip!(xmllint);
    let lab = lab_or_skip!(Lab::builder().hosts(1).without_icmp_rate_limits());
    let host = lab.host(0);
    // A user-space SCTP endpoint: the kernel here may have no SCTP.
    let _sctp = host.respond_sctp([80]).unwrap();
    host.nft(&format!(
        "table inet protocols {{\n\
           chain input {{\n\
             type filter hook input priority filter; policy accept;\n\
             meta l4proto {DROPPED} drop\n\
             meta nfproto ipv4 meta l4proto {REJECTED} reject with icmp type admin-prohibited\n\
             meta nfproto ipv6 meta l4proto {REJECTED} reject with icmpv6 type admin-prohibited\n\
           }}\n\
         }}\n"
    ))
    .unwrap();
    let targets = host.addrs();
    let dir = scratch_dir();
    let (json, xml, grep) = (
        dir.join("proto.jsonl"),
        dir.join("proto.xml"),
        dir.join("proto.gnmap"),
    );
    let out = lab
        .scanner()
        .command(portolan_bin())
        .args(["-sO", "-n", "-Pn", "-T4", "--no-progress", "-p", PROTOCOLS])
        .arg("-oJ")
        .arg(&json)
        .arg("-oX")
        .arg(&xml)
        .arg("-oG")
        .arg(&grep)
        .args(targets.map(|a| a.to_string()))
        .output()
        .unwrap();
    let normal = assert_success(&out);
    let run = read_jsonl(&json);
    let mut wrong = Vec::new();
    let mut count = 0;
    for addr in targets {
        for protocol in (0..=255u16).filter(|&p| expected(addr, p).is_some()) {
            count += 1;
            let want = expected(addr, protocol).unwrap();
            match run.ports.get(&(addr, protocol)) {
                Some(p) if (p.state.as_str(), p.reason.as_str()) == want => {}
                got => wrong.push(format!(
                    "{addr} protocol {protocol}: want {want:?}, got {got:?}"
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // Every protocol asked for is reported, the unlisted ones too.
    assert_eq!(run.ports.len(), 2 * 20, "protocols reported");
    assert_eq!(count, 2 * 20);

    // nmap's forms.
    assert!(normal.contains("PROTOCOL STATE"), "{normal}");
    assert!(normal.contains("\n6        open          tcp"), "{normal}");
    let grepable = std::fs::read_to_string(&grep).unwrap();
    assert!(
        grepable.contains("\tProtocols: 1/open/icmp/,") && grepable.contains("200/closed//"),
        "{grepable}"
    );
    let report = std::fs::read_to_string(&xml).unwrap();
    assert!(
        report.contains("<scaninfo type=\"ipproto\" protocol=\"ip\""),
        "{report}"
    );
    assert!(
        report.contains("<port protocol=\"ip\" portid=\"17\">"),
        "{report}"
    );
    assert_dtd_valid(&xml);
}

#[test]
fn ip_protocol_numbers_above_255_are_refused() {
    let out = crate::util::portolan(&["-sO", "-p", "1-300", "127.0.0.1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("IP protocol number \"1-300\""), "{stderr}");
}
