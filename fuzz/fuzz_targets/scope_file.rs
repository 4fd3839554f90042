//! `--scope FILE`: networks the operator may scan, any bytes. A scope
//! comes out, or one error naming the line or entry; checking a target
//! list against it never panics.
#![no_main]

use std::io;
use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use portolan_targets::{Scope, TargetList};

fn no_names(_: &str) -> io::Result<Vec<IpAddr>> {
    Err(io::Error::other("no names"))
}

fuzz_target!(|contents: &[u8]| {
    let Ok(scope) = Scope::parse(contents, "scope.txt") else {
        return;
    };
    let targets = ["198.18.0.0/15", "fd00::/120", "10.0.0.0/8", "198.18.1-3.7"].map(String::from);
    if let Ok(mut list) = TargetList::parse(&targets, &[], &no_names) {
        let _ = list.exclude_special_purpose();
        let _ = list.check_scope(&scope);
    }
});
