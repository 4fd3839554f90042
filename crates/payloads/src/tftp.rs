//! TFTP (port 69): a read request.
//!
//! Read first: RFC 1350 sections 4 and 5 (a read request is opcode 1, a
//! file name and a mode, each NUL-terminated; the server answers with DATA
//! block 1 or an ERROR, "file not found" being the usual one) and section 4
//! again for the catch: **the answer comes from a new port** (the server's
//! transfer identifier), not from 69, to our source port. A scanner must
//! match a TFTP answer by the target's address and our port alone.
//!
//! Cookie: none. Nothing of the request comes back in DATA or ERROR:
//! **0 bits checked**; the answer must only have the shape of DATA, ERROR
//! or an option acknowledgment (RFC 2347).

use crate::Echo;
use crate::bytes::{In, Out};

/// TFTP opcodes (RFC 1350, section 5; OACK from RFC 2347).
mod opcode {
    pub(super) const RRQ: u16 = 1;
    pub(super) const DATA: u16 = 3;
    pub(super) const ERROR: u16 = 5;
    pub(super) const OACK: u16 = 6;
}

pub(crate) fn write(_cookie: u32, out: &mut Out<'_>) -> Option<()> {
    out.u16(opcode::RRQ)?;
    out.bytes(b"portolan\0")?;
    out.bytes(b"octet\0")
}

pub(crate) fn echo(answer: &[u8]) -> Option<Echo> {
    let mut r = In::new(answer);
    let code = r.u16()?;
    match code {
        opcode::DATA | opcode::ERROR => {
            r.u16()?; // block number, error code
        }
        opcode::OACK => {}
        _ => return None,
    }
    Some(Echo::NONE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{answers, echo, payload_for};

    #[test]
    fn test_read_request_by_the_spec() {
        let mut buf = [0u8; 64];
        let n = payload_for(69, 1, &mut buf).unwrap();
        let p = &buf[..n];
        assert_eq!(u16::from_be_bytes([p[0], p[1]]), 1, "RRQ");
        let fields: Vec<&[u8]> = p[2..].split(|&b| b == 0).collect();
        assert_eq!(fields, [&b"portolan"[..], b"octet", b""]);
    }

    #[test]
    fn test_echo() {
        let not_found = b"\x00\x05\x00\x01File not found\x00";
        assert_eq!(echo(69, not_found), Some(Echo { value: 0, mask: 0 }));
        assert!(answers(69, 0x1234_5678, not_found));
        assert!(answers(69, 1, b"\x00\x03\x00\x01hello"));
        let mut buf = [0u8; 64];
        let n = payload_for(69, 1, &mut buf).unwrap();
        assert_eq!(echo(69, &buf[..n]), None, "a request is no answer");
        assert_eq!(echo(69, b"\x00\x05\x00"), None);
    }
}
