//! SNMP (port 161): a GetRequest for `sysDescr.0` with the community
//! `public`, in version 1 or 2c.
//!
//! Read first: RFC 1157 section 4 (the v1 Message: SEQUENCE of version 0,
//! community, PDU; GetRequest-PDU is `[0]` with request-id, error-status,
//! error-index and variable bindings), RFC 1901 and RFC 3416 section 3
//! (v2c: the same Message with version 1; `request-id` is an Integer32,
//! which the agent copies into its Response-PDU `[2]`), RFC 1213 (sysDescr
//! is 1.3.6.1.2.1.1.1, instance 0), X.690 section 8 (BER: tag, length,
//! content; INTEGER contents are minimal two's complement).
//!
//! [`payload_for`](crate::payload_for) sends version 1, which agents that
//! also speak 2c accept; [`get_request`] writes either.
//!
//! Cookie: the request-id, the cookie read as a signed 32-bit integer:
//! **32 bits checked**. The answer must be a Response-PDU. An agent whose
//! community differs stays silent (RFC 3584 section 4.1), as do agents of
//! another version.

use crate::Echo;
use crate::bytes::{In, Out};

/// The SNMP version field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// SNMPv1 (RFC 1157): 0 on the wire.
    V1,
    /// SNMPv2c (RFC 1901): 1 on the wire.
    V2c,
}

/// BER tags (X.690; RFC 1157 and RFC 3416 for the PDUs).
mod tag {
    pub(super) const INTEGER: u8 = 0x02;
    pub(super) const OCTET_STRING: u8 = 0x04;
    pub(super) const NULL: u8 = 0x05;
    pub(super) const OID: u8 = 0x06;
    pub(super) const SEQUENCE: u8 = 0x30;
    pub(super) const GET_REQUEST: u8 = 0xa0;
    pub(super) const RESPONSE: u8 = 0xa2;
}

/// 1.3.6.1.2.1.1.1.0 in BER: 1.3 packed into 0x2b, the rest one byte each.
const SYS_DESCR_0: &[u8] = &[0x2b, 6, 1, 2, 1, 1, 1, 0];
/// The community most agents ship with for reading.
const COMMUNITY: &[u8] = b"public";

/// Writes a GetRequest for `sysDescr.0` with the community `public` and
/// `cookie` as request-id into `buf`; returns its length, or `None` if
/// `buf` is too small.
#[must_use]
pub fn get_request(version: Version, cookie: u32, buf: &mut [u8]) -> Option<usize> {
    let mut out = Out::new(buf);
    write(version, cookie, &mut out)?;
    Some(out.len())
}

pub(crate) fn write_v1(cookie: u32, out: &mut Out<'_>) -> Option<()> {
    write(Version::V1, cookie, out)
}

fn write(version: Version, cookie: u32, out: &mut Out<'_>) -> Option<()> {
    let message = begin(out, tag::SEQUENCE)?;
    integer(
        out,
        match version {
            Version::V1 => 0,
            Version::V2c => 1,
        },
    )?;
    out.u8(tag::OCTET_STRING)?;
    out.u8(u8::try_from(COMMUNITY.len()).ok()?)?;
    out.bytes(COMMUNITY)?;
    let pdu = begin(out, tag::GET_REQUEST)?;
    integer(out, cookie as i32)?; // request-id
    integer(out, 0)?; // error-status
    integer(out, 0)?; // error-index
    let bindings = begin(out, tag::SEQUENCE)?;
    let binding = begin(out, tag::SEQUENCE)?;
    out.u8(tag::OID)?;
    out.u8(u8::try_from(SYS_DESCR_0.len()).ok()?)?;
    out.bytes(SYS_DESCR_0)?;
    out.u8(tag::NULL)?;
    out.u8(0)?;
    for at in [binding, bindings, pdu, message] {
        end(out, at)?;
    }
    Some(())
}

/// Writes a constructed tag with a one-byte length to patch later; returns
/// where the length goes.
fn begin(out: &mut Out<'_>, tag: u8) -> Option<usize> {
    out.u8(tag)?;
    let at = out.len();
    out.u8(0)?;
    Some(at)
}

/// Patches the length at `at` to cover what was written since (short form:
/// every message here is under 128 bytes).
fn end(out: &mut Out<'_>, at: usize) -> Option<()> {
    let len = out.len().checked_sub(at)?.checked_sub(1)?;
    out.patch_u8(at, u8::try_from(len).ok().filter(|&n| n < 0x80)?)
}

/// An INTEGER in its minimal two's complement form (X.690, 8.3.2).
fn integer(out: &mut Out<'_>, v: i32) -> Option<()> {
    let bytes = v.to_be_bytes();
    let mut content: &[u8] = &bytes;
    while let [first, second, ..] = content {
        let redundant = (*first == 0x00 && *second < 0x80) || (*first == 0xff && *second >= 0x80);
        if !redundant {
            break;
        }
        content = content.get(1..)?;
    }
    out.u8(tag::INTEGER)?;
    out.u8(u8::try_from(content.len()).ok()?)?;
    out.bytes(content)
}

/// One TLV: its tag and contents (definite lengths, short or long form).
fn tlv<'a>(r: &mut In<'a>) -> Option<(u8, &'a [u8])> {
    let tag = r.u8()?;
    let first = r.u8()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let mut len: usize = 0;
        for _ in 0..(first & 0x7f) {
            len = len.checked_mul(256)?.checked_add(usize::from(r.u8()?))?;
        }
        len
    };
    Some((tag, r.take(len)?))
}

/// The request-id of a Response-PDU, as the cookie's bits.
pub(crate) fn echo(answer: &[u8]) -> Option<Echo> {
    let (tag::SEQUENCE, message) = tlv(&mut In::new(answer))? else {
        return None;
    };
    let mut m = In::new(message);
    let (tag::INTEGER, _version) = tlv(&mut m)? else {
        return None;
    };
    let (tag::OCTET_STRING, _community) = tlv(&mut m)? else {
        return None;
    };
    let (tag::RESPONSE, pdu) = tlv(&mut m)? else {
        return None;
    };
    let (tag::INTEGER, id) = tlv(&mut In::new(pdu))? else {
        return None;
    };
    let value = match id {
        // Minimal two's complement of an Integer32, sign-extended.
        [first, ..] if id.len() <= 4 => {
            let fill = if *first >= 0x80 { 0xff } else { 0 };
            let mut word = [fill; 4];
            word.get_mut(4usize.checked_sub(id.len())?..)?
                .copy_from_slice(id);
            u32::from_be_bytes(word)
        }
        // An agent that read the id as unsigned: 0x00 and 4 bytes.
        [0, rest @ ..] if rest.len() == 4 => u32::from_be_bytes(rest.try_into().ok()?),
        _ => return None,
    };
    Some(Echo::full(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{answers, echoed_cookie, payload_for};

    /// A minimal BER reader for the tests: (tag, contents) of each TLV.
    fn tlvs(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut all = Vec::new();
        while !bytes.is_empty() {
            let (tag, len) = (bytes[0], usize::from(bytes[1]));
            assert!(len < 0x80, "short form only in our requests");
            all.push((tag, bytes[2..2 + len].to_vec()));
            bytes = &bytes[2 + len..];
        }
        all
    }

    fn int(content: &[u8]) -> i64 {
        let mut v: i64 = if content[0] >= 0x80 { -1 } else { 0 };
        for &b in content {
            v = (v << 8) | i64::from(b);
        }
        v
    }

    fn check_request(p: &[u8], version: i64, cookie: u32) {
        let top = tlvs(p);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].0, 0x30);
        let message = tlvs(&top[0].1);
        assert_eq!(message[0].0, 0x02);
        assert_eq!(int(&message[0].1), version);
        assert_eq!(message[1], (0x04, b"public".to_vec()));
        assert_eq!(message[2].0, 0xa0, "GetRequest-PDU");
        let pdu = tlvs(&message[2].1);
        assert_eq!(pdu.len(), 4);
        assert_eq!(int(&pdu[0].1), i64::from(cookie as i32), "request-id");
        // Minimal: no redundant leading byte.
        let id = &pdu[0].1;
        assert!(id.len() == 1 || !(id[0] == 0 && id[1] < 0x80 || id[0] == 0xff && id[1] >= 0x80));
        assert_eq!(pdu[1], (0x02, vec![0]));
        assert_eq!(pdu[2], (0x02, vec![0]));
        let bindings = tlvs(&pdu[3].1);
        let binding = tlvs(&bindings[0].1);
        assert_eq!(binding[0], (0x06, vec![0x2b, 6, 1, 2, 1, 1, 1, 0]));
        assert_eq!(binding[1], (0x05, vec![]));
    }

    /// The agent's answer: the request with the PDU tag turned into a
    /// Response and the NULL into an OCTET STRING.
    fn response_to(request: &[u8]) -> Vec<u8> {
        let mut r = request.to_vec();
        let at = r.iter().position(|&b| b == 0xa0).unwrap();
        r[at] = 0xa2;
        r
    }

    #[test]
    fn test_get_requests_by_the_spec() {
        for cookie in [
            0,
            1,
            0x7f,
            0x80,
            0xffff_ffff,
            0x8000_0000,
            0x1234_5678,
            0xff7f_0000,
        ] {
            let mut buf = [0u8; 128];
            let n = payload_for(161, cookie, &mut buf).unwrap();
            check_request(&buf[..n], 0, cookie);
            let response = response_to(&buf[..n]);
            assert_eq!(echoed_cookie(161, &response), Some(cookie), "{cookie:#x}");
            assert!(answers(161, cookie, &response));
            assert_eq!(
                echoed_cookie(161, &buf[..n]),
                None,
                "a request is no answer"
            );
            let n = get_request(Version::V2c, cookie, &mut buf).unwrap();
            check_request(&buf[..n], 1, cookie);
        }
    }

    #[test]
    fn test_long_form_and_unsigned_ids() {
        // A response with long-form lengths and the id as 5 bytes.
        let pdu_body = [
            0x02, 0x05, 0x00, 0x80, 0x00, 0x00, 0x01, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30,
            0x00,
        ];
        let mut pdu = vec![0xa2, 0x81, pdu_body.len() as u8];
        pdu.extend_from_slice(&pdu_body);
        let mut body = vec![0x02, 0x01, 0x01, 0x04, 0x06];
        body.extend_from_slice(b"public");
        body.extend_from_slice(&pdu);
        let mut m = vec![0x30, 0x82, 0x00, body.len() as u8];
        m.extend_from_slice(&body);
        assert_eq!(echoed_cookie(161, &m), Some(0x8000_0001));
        // Truncated anywhere: no echo, no panic.
        for len in 0..m.len() {
            assert_eq!(echoed_cookie(161, &m[..len]), None);
        }
    }
}
