//! QUIC (UDP port 443): a long-header Initial of a reserved version, which
//! every QUIC server answers with Version Negotiation.
//!
//! Read first: RFC 8999 sections 5.1 and 6 (the version-independent long
//! header: form bit, version, Destination and Source Connection IDs; a
//! server that does not know the version answers with Version Negotiation,
//! version 0, whose Destination Connection ID is the client's Source
//! Connection ID and whose Source Connection ID is the client's
//! Destination Connection ID), RFC 9000 sections 6.3 and 15 (versions of
//! the form `0x?a?a?a?a` are reserved to force Version Negotiation), 14.1
//! (a client's first datagram is padded to at least 1200 bytes; servers
//! ignore shorter ones) and 17.2.2 (the Initial layout kept here: token
//! length 0, a Length, a packet number, then padding).
//!
//! The Destination Connection ID is the cookie then its complement, the
//! Source Connection ID the complement then the cookie. Cookie: **32 bits
//! checked**, from both echoed connection IDs, which must agree.

use crate::Echo;
use crate::bytes::{In, Out};

/// The payload's length: RFC 9000's minimum for a client's first datagram.
pub const LEN: usize = 1200;
/// Long header, fixed bit, type Initial, packet number length 1.
const LONG_INITIAL: u8 = 0xc0;
/// A reserved version of the `0x?a?a?a?a` form.
pub const FORCE_NEGOTIATION: u32 = 0x1a2a_3a4a;
const CID_LEN: u8 = 8;
/// Everything after the Length field's start: first byte, version, two
/// connection IDs with their lengths, the token length and the Length.
const HEADER_LEN: usize = 1 + 4 + 1 + 8 + 1 + 8 + 1 + 2;

pub(crate) fn write(cookie: u32, out: &mut Out<'_>) -> Option<()> {
    out.u8(LONG_INITIAL)?;
    out.u32(FORCE_NEGOTIATION)?;
    out.u8(CID_LEN)?;
    out.u32(cookie)?;
    out.u32(!cookie)?;
    out.u8(CID_LEN)?;
    out.u32(!cookie)?;
    out.u32(cookie)?;
    out.u8(0)?; // token length (a variable-length integer)
    // Length: the packet number and the padding, as a 2-byte varint.
    let rest = LEN.checked_sub(HEADER_LEN)?;
    out.u16(0x4000 | u16::try_from(rest).ok()?)?;
    out.u8(0)?; // packet number
    out.fill(rest.checked_sub(1)?, 0) // PADDING frames
}

pub(crate) fn echo(answer: &[u8]) -> Option<Echo> {
    let mut r = In::new(answer);
    let first = r.u8()?;
    let version = r.u32()?;
    if first & 0x80 == 0 || version != 0 {
        return None;
    }
    let dcid_len = r.u8()?;
    let dcid = r.take(usize::from(dcid_len))?;
    let scid_len = r.u8()?;
    let scid = r.take(usize::from(scid_len))?;
    r.u32()?; // at least one supported version
    let [a, b] = cid_halves(dcid)?; // our Source CID: complement, cookie
    let [c, d] = cid_halves(scid)?; // our Destination CID: cookie, complement
    (a == !b && c == b && d == a).then_some(Echo::full(b))
}

/// An 8-byte connection ID as two big-endian words.
fn cid_halves(cid: &[u8]) -> Option<[u32; 2]> {
    let mut r = In::new(cid);
    let halves = [r.u32()?, r.u32()?];
    r.rest().is_empty().then_some(halves)
}

#[cfg(test)]
mod tests {
    use crate::{answers, echoed_cookie, payload_for};

    #[test]
    fn test_initial_by_the_spec() {
        let mut buf = [0xeeu8; 1500];
        let n = payload_for(443, 0x1111_2222, &mut buf).unwrap();
        assert_eq!(n, 1200);
        let p = &buf[..n];
        assert_eq!(p[0] & 0x80, 0x80, "long header");
        assert_eq!(p[0] & 0x40, 0x40, "fixed bit");
        assert_eq!((p[0] >> 4) & 3, 0, "Initial");
        let version = u32::from_be_bytes(p[1..5].try_into().unwrap());
        assert_eq!(version & 0x0f0f_0f0f, 0x0a0a_0a0a, "reserved version");
        assert_eq!(p[5], 8);
        assert_eq!(&p[6..14], &[0x11, 0x11, 0x22, 0x22, 0xee, 0xee, 0xdd, 0xdd]);
        assert_eq!(p[14], 8);
        assert_eq!(
            &p[15..23],
            &[0xee, 0xee, 0xdd, 0xdd, 0x11, 0x11, 0x22, 0x22]
        );
        assert_eq!(p[23], 0, "token length");
        let length = u16::from_be_bytes([p[24], p[25]]);
        assert_eq!(length >> 14, 1, "2-byte varint");
        assert_eq!(
            usize::from(length & 0x3fff),
            n - 26,
            "Length covers the rest"
        );
        assert!(p[26..].iter().all(|&b| b == 0));
    }

    #[test]
    fn test_version_negotiation_echo() {
        let mut buf = [0u8; 1200];
        payload_for(443, 0x1111_2222, &mut buf).unwrap();
        // The server's answer: version 0, the IDs swapped, its versions.
        let mut vn = vec![0x80 | 0x2a, 0, 0, 0, 0, 8];
        vn.extend_from_slice(&buf[15..23]);
        vn.push(8);
        vn.extend_from_slice(&buf[6..14]);
        vn.extend_from_slice(&1u32.to_be_bytes());
        assert_eq!(echoed_cookie(443, &vn), Some(0x1111_2222));
        assert!(answers(443, 0x1111_2222, &vn));
        // Not swapped: our own packet's IDs, or a version other than 0.
        assert_eq!(echoed_cookie(443, &buf), None);
        let mut wrong = vn.clone();
        wrong[6] ^= 1;
        assert_eq!(echoed_cookie(443, &wrong), None);
        assert_eq!(echoed_cookie(443, &vn[..vn.len() - 4]), None, "no versions");
    }
}
