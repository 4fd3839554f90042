//! IKE (port 500, and 4500 behind the non-ESP marker): an IKEv2
//! IKE_SA_INIT request, or an IKEv1 Main Mode first message.
//!
//! Read first: RFC 7296 sections 1.2 (IKE_SA_INIT: SA, KE and Nonce
//! payloads, answered before any authentication), 3.1 (the header: the
//! initiator's SPI, which every answer carries back in the same place), 3.3
//! (proposals and transforms), 3.4 (KE) and 3.9 (Nonce), and 2.23 (an
//! initiator may start on port 4500; there, IKE messages follow four zero
//! bytes, the non-ESP marker of RFC 3948 section 2.2); RFC 2408 sections
//! 3.1 to 3.6 and RFC 2409 appendix A for IKEv1 (the initiator cookie is
//! the same first 8 bytes).
//!
//! The IKEv2 proposal is AES-CBC-256, HMAC-SHA2-256 (PRF and integrity)
//! and Diffie-Hellman group 14 (2048-bit MODP), with a KE value in range;
//! a responder answers with its own SA_INIT, or with a notification (no
//! proposal chosen, invalid KE payload, a cookie request), all of them
//! under our SPI. No keys are needed for this first exchange.
//! [`payload_for`](crate::payload_for) sends IKEv2; [`v1_main_mode`]
//! writes the IKEv1 message for IKEv1-only peers.
//!
//! Cookie: the initiator's SPI is the cookie followed by its complement
//! (never zero, as RFC 7296 requires): **32 bits checked**, plus the
//! complement's consistency.

use crate::Echo;
use crate::bytes::{In, Out};

/// The IKE header length (both versions).
pub const HEADER_LEN: usize = 28;
/// The non-ESP marker before IKE messages on port 4500.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// IKEv2 payload types (RFC 7296, section 3.2).
mod v2 {
    pub(super) const NONE: u8 = 0;
    pub(super) const SA: u8 = 33;
    pub(super) const KE: u8 = 34;
    pub(super) const NONCE: u8 = 40;
    pub(super) const IKE_SA_INIT: u8 = 34;
    pub(super) const FLAG_INITIATOR: u8 = 0x08;
    pub(super) const VERSION: u8 = 0x20;
    /// Diffie-Hellman group 14: 2048-bit MODP (RFC 3526).
    pub(super) const DH_GROUP_14: u16 = 14;
    pub(super) const DH_14_LEN: usize = 256;
    pub(super) const NONCE_LEN: usize = 32;
}

/// The initiator's SPI: the cookie, then its complement.
fn header(
    out: &mut Out<'_>,
    cookie: u32,
    next: u8,
    version: u8,
    exchange: u8,
    flags: u8,
) -> Option<usize> {
    let start = out.len();
    out.u32(cookie)?;
    out.u32(!cookie)?;
    out.fill(8, 0)?; // responder's SPI: unknown yet
    out.u8(next)?;
    out.u8(version)?;
    out.u8(exchange)?;
    out.u8(flags)?;
    out.u32(0)?; // message ID
    out.u32(0)?; // length, patched by `finish`
    Some(start)
}

/// Patches the header's Length to cover the message from `start`.
fn finish(out: &mut Out<'_>, start: usize) -> Option<()> {
    let len = u16::try_from(out.len().checked_sub(start)?).ok()?;
    // The 32-bit Length field's low half (messages here are short).
    out.patch_u16(start.checked_add(HEADER_LEN)?.checked_sub(2)?, len)
}

/// A generic payload header (RFC 7296, section 3.2).
fn payload_header(out: &mut Out<'_>, next: u8, len: usize) -> Option<()> {
    out.u8(next)?;
    out.u8(0)?;
    out.u16(u16::try_from(len).ok()?)
}

/// A transform substructure without attributes (RFC 7296, section 3.3.2).
fn transform(
    out: &mut Out<'_>,
    last: bool,
    kind: u8,
    id: u16,
    key_bits: Option<u16>,
) -> Option<()> {
    out.u8(if last { 0 } else { 3 })?;
    out.u8(0)?;
    out.u16(if key_bits.is_some() { 12 } else { 8 })?;
    out.u8(kind)?;
    out.u8(0)?;
    out.u16(id)?;
    if let Some(bits) = key_bits {
        out.u16(0x8000 | 14)?; // Key Length, TV format
        out.u16(bits)?;
    }
    Some(())
}

fn write_v2_message(cookie: u32, out: &mut Out<'_>) -> Option<()> {
    let start = header(
        out,
        cookie,
        v2::SA,
        v2::VERSION,
        v2::IKE_SA_INIT,
        v2::FLAG_INITIATOR,
    )?;
    // SA: one proposal for IKE with four transforms.
    const PROPOSAL_LEN: usize = 8 + 12 + 8 + 8 + 8;
    payload_header(out, v2::KE, 4 + PROPOSAL_LEN)?;
    out.u8(0)?; // last proposal
    out.u8(0)?;
    out.u16(PROPOSAL_LEN as u16)?;
    out.u8(1)?; // proposal number
    out.u8(1)?; // protocol: IKE
    out.u8(0)?; // SPI size: none in IKE_SA_INIT
    out.u8(4)?; // transforms
    transform(out, false, 1, 12, Some(256))?; // ENCR_AES_CBC, 256-bit keys
    transform(out, false, 2, 5, None)?; // PRF_HMAC_SHA2_256
    transform(out, false, 3, 12, None)?; // AUTH_HMAC_SHA2_256_128
    transform(out, true, 4, v2::DH_GROUP_14, None)?;
    // KE: group 14, a public value below the prime (which starts 0xff..).
    payload_header(out, v2::NONCE, 8 + v2::DH_14_LEN)?;
    out.u16(v2::DH_GROUP_14)?;
    out.u16(0)?;
    out.fill(v2::DH_14_LEN, 0x5a)?;
    // Nonce: 32 bytes (at least 16, RFC 7296 section 2.10).
    payload_header(out, v2::NONE, 4 + v2::NONCE_LEN)?;
    for _ in 0..v2::NONCE_LEN / 4 {
        out.u32(cookie.rotate_left(13) ^ 0x6e6f_6e63)?;
    }
    finish(out, start)
}

pub(crate) fn write_v2(cookie: u32, out: &mut Out<'_>) -> Option<()> {
    write_v2_message(cookie, out)
}

pub(crate) fn write_v2_nat_t(cookie: u32, out: &mut Out<'_>) -> Option<()> {
    out.bytes(&NON_ESP_MARKER)?;
    write_v2_message(cookie, out)
}

/// Writes an IKEv1 Main Mode first message (RFC 2409, section 5): one
/// proposal of AES-CBC-128, SHA-1, pre-shared key, group 2, 8 hours;
/// returns its length, or `None` if `buf` is too small.
#[must_use]
pub fn v1_main_mode(cookie: u32, buf: &mut [u8]) -> Option<usize> {
    let mut out = Out::new(buf);
    let out = &mut out;
    // Next payload SA (1), version 1.0, exchange Identity Protection (2).
    let start = header(out, cookie, 1, 0x10, 2, 0)?;
    // SA attributes in TV format (RFC 2409, appendix A).
    const ATTRIBUTES: [(u16, u16); 7] = [
        (1, 7),      // encryption: AES-CBC
        (14, 128),   // key length
        (2, 2),      // hash: SHA
        (3, 1),      // authentication: pre-shared key
        (4, 2),      // group: 1024-bit MODP
        (11, 1),     // life type: seconds
        (12, 28800), // life duration
    ];
    const TRANSFORM_LEN: usize = 8 + 4 * ATTRIBUTES.len();
    const PROPOSAL_LEN: usize = 8 + TRANSFORM_LEN;
    payload_header(out, 0, 12 + PROPOSAL_LEN)?;
    out.u32(1)?; // DOI: IPsec
    out.u32(1)?; // situation: identity only
    payload_header(out, 0, PROPOSAL_LEN)?;
    out.u8(1)?; // proposal number
    out.u8(1)?; // protocol: ISAKMP
    out.u8(0)?; // SPI size
    out.u8(1)?; // transforms
    payload_header(out, 0, TRANSFORM_LEN)?;
    out.u8(1)?; // transform number
    out.u8(1)?; // KEY_IKE
    out.u16(0)?;
    for (kind, value) in ATTRIBUTES {
        out.u16(0x8000 | kind)?;
        out.u16(value)?;
    }
    finish(out, start)?;
    Some(out.len())
}

/// Any IKE message (v1 or v2) under our initiator SPI.
pub(crate) fn echo(answer: &[u8]) -> Option<Echo> {
    let mut r = In::new(answer);
    let cookie = r.u32()?;
    let complement = r.u32()?;
    r.take(9)?; // responder's SPI, next payload
    let version = r.u8()?;
    r.take(10)?; // exchange, flags, message ID, the length's first half
    (complement == !cookie && matches!(version >> 4, 1 | 2)).then_some(Echo::full(cookie))
}

/// The same behind the non-ESP marker.
pub(crate) fn echo_nat_t(answer: &[u8]) -> Option<Echo> {
    echo(answer.strip_prefix(&NON_ESP_MARKER)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{answers, echoed_cookie, payload_for};

    fn be32(b: &[u8]) -> u32 {
        u32::from_be_bytes(b[..4].try_into().unwrap())
    }

    /// Walks an IKEv2 message's payload chain by RFC 7296 3.1 and 3.2:
    /// (type, body) of each payload; the lengths must add up exactly.
    fn payloads(m: &[u8]) -> Vec<(u8, Vec<u8>)> {
        assert_eq!(be32(&m[24..]) as usize, m.len(), "header Length");
        let mut next = m[16];
        let mut rest = &m[28..];
        let mut all = Vec::new();
        while next != 0 {
            let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            all.push((next, rest[4..len].to_vec()));
            next = rest[0];
            rest = &rest[len..];
        }
        assert!(rest.is_empty());
        all
    }

    #[test]
    fn test_v2_sa_init_by_the_spec() {
        let mut buf = [0u8; 1024];
        let n = payload_for(500, 0x0102_0304, &mut buf).unwrap();
        let m = &buf[..n];
        assert_eq!(
            &m[..8],
            &[1, 2, 3, 4, 0xfe, 0xfd, 0xfc, 0xfb],
            "initiator SPI"
        );
        assert_eq!(&m[8..16], &[0; 8], "responder SPI");
        assert_eq!(
            (m[17], m[18], m[19]),
            (0x20, 34, 0x08),
            "v2.0, IKE_SA_INIT, initiator"
        );
        assert_eq!(be32(&m[20..]), 0, "message ID");
        let p = payloads(m);
        let kinds: Vec<u8> = p.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, [33, 34, 40], "SA, KE, Nonce");
        // SA: one proposal, protocol IKE, four transforms of types 1-4.
        let sa = &p[0].1;
        assert_eq!(sa[0], 0, "last proposal");
        assert_eq!(usize::from(u16::from_be_bytes([sa[2], sa[3]])), sa.len());
        assert_eq!((sa[4], sa[5], sa[6], sa[7]), (1, 1, 0, 4));
        let mut t = &sa[8..];
        let mut types = Vec::new();
        while !t.is_empty() {
            let len = usize::from(u16::from_be_bytes([t[2], t[3]]));
            types.push((t[4], u16::from_be_bytes([t[6], t[7]])));
            let last = t[0] == 0;
            t = &t[len..];
            assert_eq!(last, t.is_empty());
        }
        assert_eq!(types, [(1, 12), (2, 5), (3, 12), (4, 14)]);
        // KE: group 14 and 256 bytes; Nonce: 32 bytes.
        assert_eq!(u16::from_be_bytes([p[1].1[0], p[1].1[1]]), 14);
        assert_eq!(p[1].1.len(), 4 + 256);
        assert_eq!(p[2].1.len(), 32);
    }

    #[test]
    fn test_nat_t() {
        let mut a = [0u8; 1024];
        let mut b = [0u8; 1024];
        let n = payload_for(4500, 9, &mut a).unwrap();
        let m = payload_for(500, 9, &mut b).unwrap();
        assert_eq!(&a[..4], &[0; 4]);
        assert_eq!(&a[4..n], &b[..m]);
        assert_eq!(echoed_cookie(4500, &a[..n]), Some(9));
        assert_eq!(echoed_cookie(4500, &b[..m]), None, "no marker");
    }

    #[test]
    fn test_v1_main_mode_by_the_spec() {
        let mut buf = [0u8; 256];
        let n = v1_main_mode(0xa0b0_c0d0, &mut buf).unwrap();
        let m = &buf[..n];
        assert_eq!(be32(m), 0xa0b0_c0d0);
        assert_eq!((m[16], m[17], m[18], m[19]), (1, 0x10, 2, 0));
        assert_eq!(be32(&m[24..]) as usize, n);
        let sa = &m[28..];
        assert_eq!(usize::from(u16::from_be_bytes([sa[2], sa[3]])), sa.len());
        assert_eq!((be32(&sa[4..]), be32(&sa[8..])), (1, 1), "DOI, situation");
        let proposal = &sa[12..];
        assert_eq!(
            (proposal[4], proposal[5], proposal[6], proposal[7]),
            (1, 1, 0, 1)
        );
        let transform = &proposal[8..];
        assert_eq!((transform[4], transform[5]), (1, 1), "KEY_IKE");
        assert_eq!(
            usize::from(u16::from_be_bytes([transform[2], transform[3]])),
            transform.len()
        );
        assert!(v1_main_mode(1, &mut buf[..n - 1]).is_none());
    }

    #[test]
    fn test_echo() {
        // A responder's answer: our SPI, its SPI, the same layout.
        let mut buf = [0u8; 1024];
        let n = payload_for(500, 0xfeed_f00d, &mut buf).unwrap();
        let mut answer = buf[..n].to_vec();
        answer[8..16].copy_from_slice(&[7; 8]);
        answer[19] = 0x20; // the response flag
        assert!(answers(500, 0xfeed_f00d, &answer));
        answer[7] ^= 1;
        assert_eq!(echoed_cookie(500, &answer), None, "complement broken");
        let n1 = v1_main_mode(0xfeed_f00d, &mut buf).unwrap();
        assert!(answers(500, 0xfeed_f00d, &buf[..n1]));
        assert_eq!(echoed_cookie(500, &buf[..27]), None);
    }
}
