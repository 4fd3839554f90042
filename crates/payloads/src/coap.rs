//! CoAP (port 5683): a confirmable GET of `/.well-known/core`.
//!
//! Read first: RFC 7252 sections 3 (the 4-byte header: version 1, type,
//! token length, code, message ID; then the token and options), 3.1
//! (option deltas and lengths), 4.2 and 4.3 (a confirmable message is
//! answered by an ACK or a RST with the same message ID), 5.3.2 (a response
//! carries the request's token), 5.10.1 (Uri-Path is option 11), RFC 6690
//! section 4 (`/.well-known/core` lists a server's resources).
//!
//! Cookie: the low 16 bits in the message ID, all 32 in a 4-byte token.
//! **32 bits checked** when the answer carries the token (a piggybacked
//! response in an ACK, with the message ID agreeing with the token's low
//! half; or a later separate response); **16 bits** for an empty ACK or a
//! RST, which carry only the message ID.

use crate::Echo;
use crate::bytes::{In, Out};

/// Version 1, type CON (0), token length 4.
const VER_CON_TKL4: u8 = 0x44;
/// Code 0.01: GET.
const GET: u8 = 0x01;
/// Option 11, Uri-Path, with an 11-byte value: delta 11, length 11.
const URI_PATH_11: u8 = 0xbb;
/// Uri-Path again (delta 0), 4 bytes.
const URI_PATH_AGAIN_4: u8 = 0x04;
/// Message types (RFC 7252, section 3).
const ACK: u8 = 2;
const RST: u8 = 3;

pub(crate) fn write(cookie: u32, out: &mut Out<'_>) -> Option<()> {
    out.u8(VER_CON_TKL4)?;
    out.u8(GET)?;
    out.u16(cookie as u16)?; // message ID
    out.u32(cookie)?; // token
    out.u8(URI_PATH_11)?;
    out.bytes(b".well-known")?;
    out.u8(URI_PATH_AGAIN_4)?;
    out.bytes(b"core")
}

pub(crate) fn echo(answer: &[u8]) -> Option<Echo> {
    let mut r = In::new(answer);
    let first = r.u8()?;
    let code = r.u8()?;
    let message_id = r.u16()?;
    let (version, kind, token_len) = (first >> 6, (first >> 4) & 3, first & 0x0f);
    // A response (class 2, 4 or 5) or an empty message (0.00); not a
    // request.
    if version != 1 || (code != 0 && code >> 5 < 2) {
        return None;
    }
    let by_id = matches!(kind, ACK | RST);
    match token_len {
        4 => {
            let token = r.u32()?;
            (!by_id || token as u16 == message_id).then_some(Echo::full(token))
        }
        0 if by_id => Some(Echo::low16(message_id)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{answers, echo, payload_for};

    #[test]
    fn test_get_well_known_core_by_the_spec() {
        let mut buf = [0u8; 64];
        let n = payload_for(5683, 0x0a0b_0c0d, &mut buf).unwrap();
        let p = &buf[..n];
        assert_eq!(p[0] >> 6, 1, "version");
        assert_eq!((p[0] >> 4) & 3, 0, "confirmable");
        assert_eq!(p[0] & 0xf, 4, "token length");
        assert_eq!(p[1], 0x01, "GET");
        assert_eq!(&p[2..4], &[0x0c, 0x0d], "message ID");
        assert_eq!(&p[4..8], &[0x0a, 0x0b, 0x0c, 0x0d], "token");
        // Options: (number, value) by RFC 7252 3.1, deltas accumulated.
        let mut number = 0;
        let mut rest = &p[8..];
        let mut path = Vec::new();
        while let [head, tail @ ..] = rest {
            let (delta, len) = (usize::from(head >> 4), usize::from(head & 0xf));
            assert!(delta < 13 && len < 13, "no extended forms needed");
            number += delta;
            assert_eq!(number, 11, "Uri-Path");
            path.push(std::str::from_utf8(&tail[..len]).unwrap());
            rest = &tail[len..];
        }
        assert_eq!(path.join("/"), ".well-known/core");
    }

    #[test]
    fn test_echo() {
        // A piggybacked 2.05 Content in an ACK, token and ID echoed.
        let content = [0x64, 0x45, 0x0c, 0x0d, 0x0a, 0x0b, 0x0c, 0x0d, 0xff, b'<'];
        assert_eq!(
            echo(5683, &content),
            Some(Echo {
                value: 0x0a0b_0c0d,
                mask: u32::MAX
            })
        );
        assert!(answers(5683, 0x0a0b_0c0d, &content));
        // A RST: the message ID only.
        let reset = [0x70, 0x00, 0x0c, 0x0d];
        assert_eq!(
            echo(5683, &reset),
            Some(Echo {
                value: 0x0c0d,
                mask: 0xffff
            })
        );
        assert!(answers(5683, 0xffff_0c0d, &reset));
        // Token and ID disagreeing in an ACK; a request; version 2.
        let mut bad = content;
        bad[3] ^= 1;
        assert_eq!(echo(5683, &bad), None);
        let mut buf = [0u8; 64];
        let n = payload_for(5683, 1, &mut buf).unwrap();
        assert_eq!(echo(5683, &buf[..n]), None);
        assert_eq!(echo(5683, &[0xb0, 0, 0, 1]), None);
    }
}
