//! Target specifications as typed on the command line: the first line's
//! tokens are targets, the second line's are `--exclude` entries. Names
//! resolve through a fixed resolver (no DNS). Every address the list
//! claims to hold must be reachable by index without a panic.
#![no_main]

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use portolan_targets::TargetList;

fn resolve(name: &str) -> io::Result<Vec<IpAddr>> {
    if name.len() % 2 == 0 {
        Ok(vec![IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))])
    } else {
        Err(io::Error::other("no such name"))
    }
}

fuzz_target!(|text: &str| {
    let mut lines = text.splitn(2, '\n');
    let tokens: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    let excludes: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let resolver = resolve;
    let Ok(list) = TargetList::parse(&tokens, &excludes, &resolver) else {
        return;
    };
    let total = list.host_count();
    // The first, last and a few addresses in between.
    for i in [0, 1, total / 3, total / 2, total.saturating_sub(1)] {
        if i < total {
            let _ = list.host_at(i);
        }
    }
});
