//! memcached over UDP (port 11211): the `version` command.
//!
//! Read first: memcached's protocol.txt, "UDP protocol" (every datagram
//! starts with an 8-byte frame header: request ID, sequence number, total
//! number of datagrams, reserved, each 16 bits; the server copies the
//! request ID into every datagram of its answer) and "General-purpose
//! commands" (`version\r\n` is answered with `VERSION <version>\r\n`).
//! Since memcached 1.5.6 UDP is off by default (`-U 0`); servers started
//! with `-U 11211` answer.
//!
//! Cookie: the low 16 bits in the request ID: **16 bits checked**. The
//! answer must be a single-datagram or first-of-many frame.

use crate::Echo;
use crate::bytes::{In, Out};

/// The length of the UDP frame header.
pub const FRAME_HEADER_LEN: usize = 8;

pub(crate) fn write(cookie: u32, out: &mut Out<'_>) -> Option<()> {
    out.u16(cookie as u16)?; // request ID
    out.u16(0)?; // sequence number
    out.u16(1)?; // total datagrams
    out.u16(0)?; // reserved
    out.bytes(b"version\r\n")
}

pub(crate) fn echo(answer: &[u8]) -> Option<Echo> {
    let mut r = In::new(answer);
    let id = r.u16()?;
    let _sequence = r.u16()?;
    let total = r.u16()?;
    let _reserved = r.u16()?;
    (total >= 1 && !r.rest().is_empty()).then_some(Echo::low16(id))
}

#[cfg(test)]
mod tests {
    use crate::{answers, echoed_cookie, payload_for};

    #[test]
    fn test_version_by_the_spec() {
        let mut buf = [0u8; 64];
        let n = payload_for(11211, 0xaaaa_1234, &mut buf).unwrap();
        let p = &buf[..n];
        assert_eq!(&p[..8], &[0x12, 0x34, 0, 0, 0, 1, 0, 0]);
        assert_eq!(&p[8..], b"version\r\n");
    }

    #[test]
    fn test_echo() {
        let answer = b"\x12\x34\x00\x00\x00\x01\x00\x00VERSION 1.6.18\r\n";
        assert_eq!(echoed_cookie(11211, answer), Some(0x1234));
        assert!(answers(11211, 0xaaaa_1234, answer));
        assert!(!answers(11211, 0xaaaa_1235, answer));
        assert_eq!(echoed_cookie(11211, &answer[..8]), None, "no body");
    }
}
