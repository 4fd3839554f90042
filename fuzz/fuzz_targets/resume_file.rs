//! `--resume FILE`: an interrupted scan's normal, grepable or XML output,
//! cut anywhere. Its command line and finished hosts come out, or one
//! error; an XML resume point always lies inside the file, on a
//! character boundary.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_report::resume::read_resume;

fuzz_target!(|text: &str| {
    if let Ok(resume) = read_resume(text)
        && let Some(at) = resume.xml_resume_at
    {
        assert!(at <= text.len() && text.is_char_boundary(at), "{at}");
    }
});
