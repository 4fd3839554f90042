//! `-iL` and `--excludefile` files: any bytes, of any encoding, with
//! comments and blank lines; tokens come out or one error naming the line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|contents: &[u8]| {
    let _ = portolan_targets::target_file_tokens(contents, "fuzz.txt");
});
