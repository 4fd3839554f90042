//! Portolan JSON lines files (`-oJ`), read by `portolan report`,
//! `portolan diff` and history imports: the model, or one error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(file) = portolan_report::read_results(text) {
        let _ = portolan_report::ScanReport::from_file(&file);
    }
});
