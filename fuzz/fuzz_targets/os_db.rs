//! nmap-os-db files (`--osdb`) and observed fingerprints: a bad line is an
//! error naming it, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    if let Err(e) = portolan_os::Database::parse(&text) {
        let _ = e.to_string();
    }
    let _ = portolan_os::Fingerprint::parse(&text);
});
