//! nmap-service-probes files (`--versiondb`): every line parsed, its
//! regular expressions compiled, its templates read. A bad line is an
//! error naming it, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &[u8]| {
    let parsed = portolan_service::parse(text);
    let _ = format!("{:?}", parsed.errors);
});
