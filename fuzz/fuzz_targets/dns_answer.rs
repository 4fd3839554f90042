//! Reverse DNS answers, as a datagram from a resolver: checked against
//! the query (ID, question) and read for the PTR name, which is escaped
//! before it reaches a terminal or a report. The datagram's own ID is
//! used so fuzzing reaches past the ID check; the address asked for is
//! the one the seeds answer (198.18.0.1) or, with the first byte odd,
//! an IPv6 one.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use portolan_dns::Answer;
use portolan_dns::message::read_answer;

fuzz_target!(|datagram: &[u8]| {
    let Some(&[hi, lo]) = datagram.first_chunk::<2>() else {
        let _ = read_answer(datagram, 0, IpAddr::from([198, 18, 0, 1]));
        return;
    };
    let id = u16::from_be_bytes([hi, lo]);
    let addr = if hi & 1 == 0 {
        IpAddr::from([198, 18, 0, 1])
    } else {
        IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 1])
    };
    if let Ok(Answer::Name(name)) = read_answer(datagram, id, addr) {
        // Names are printable ASCII once read.
        assert!(
            name.as_str().bytes().all(|b| b.is_ascii_graphic()),
            "{name:?}"
        );
    }
});
