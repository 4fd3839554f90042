//! nmap XML files (`portolan report`, `portolan diff`, history imports):
//! read into the result model, or one error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(file) = portolan_report::read_results(text) {
        let _ = portolan_report::ScanReport::from_file(&file);
    }
});
