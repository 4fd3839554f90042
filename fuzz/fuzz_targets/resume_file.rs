//! `--resume FILE`: an interrupted scan's normal, grepable, XML or
//! JSON-lines output, cut anywhere. Its command line and finished hosts
//! come out, or one error; every cut point lies inside the file, on a
//! character boundary, in order; the JSON lines kept are lines of the
//! file, each whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_report::resume::{keep_json_lines, read_resume};

fuzz_target!(|text: &str| {
    let Ok(resume) = read_resume(text) else {
        return;
    };
    assert_eq!(resume.finished.len(), resume.ends.len());
    let cuts = resume.ends.iter().chain(resume.xml_resume_at.iter());
    for &at in cuts.chain([resume.records_start, resume.cut_after(usize::MAX)].iter()) {
        assert!(at <= text.len() && text.is_char_boundary(at), "{at}");
    }
    // Cuts only move forward with more hosts kept.
    assert!(resume.ends.windows(2).all(|w| w[0] <= w[1]));
    let kept = keep_json_lines(text, &resume.finished);
    assert!(kept.len() <= text.len() + 1);
    for line in kept.lines() {
        assert!(text.lines().any(|l| l.trim_end_matches('\r') == line), "{line}");
    }
});
