//! Port specifications (`-p`): ranges, protocol prefixes, service names
//! and `[...]` for the top ports; an error names the bad token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_targets::{Protocol, parse_ports, parse_ports_for};

fuzz_target!(|spec: &str| {
    let _ = parse_ports(spec);
    let _ = parse_ports_for(spec, &[Protocol::Udp, Protocol::Tcp]);
});
