//! NTP (port 123): a client-mode request.
//!
//! Read first: RFC 5905 section 7.3 (the 48-byte header: LI, VN, Mode,
//! then stratum, poll, precision, root delay and dispersion, reference ID
//! and four timestamps) and section 8 (a server copies the request's
//! Transmit Timestamp into its reply's Origin Timestamp, the client's check
//! against forged replies); RFC 9109 section 3 (a client need not reveal
//! its clock: the Transmit Timestamp may be any value).
//!
//! The request is version 4, mode 3 (client), every field zero but the
//! Transmit Timestamp, which carries the cookie in its seconds and the
//! cookie's complement in its fraction (so it is never zero, which servers
//! reject as "no timestamp"). Cookie: **32 bits checked**, in the reply's
//! Origin Timestamp, whose fraction must hold the complement too; the
//! reply must be mode 4 (server). A kiss-o'-death (stratum 0) also echoes
//! the timestamp and counts as an answer.

use crate::Echo;
use crate::bytes::{In, Out};

/// The length of an NTP header without extensions (RFC 5905, 7.3).
pub const LEN: usize = 48;
/// LI 0, VN 4, Mode 3 (client).
const LI_VN_MODE_CLIENT: u8 = (4 << 3) | 3;
/// Mode 4: server.
const MODE_SERVER: u8 = 4;

pub(crate) fn write(cookie: u32, out: &mut Out<'_>) -> Option<()> {
    out.u8(LI_VN_MODE_CLIENT)?;
    // Stratum, poll, precision, root delay, root dispersion, reference ID,
    // reference, origin and receive timestamps: all zero.
    out.fill(39, 0)?;
    // Transmit Timestamp: seconds, then fraction.
    out.u32(cookie)?;
    out.u32(!cookie)
}

pub(crate) fn echo(answer: &[u8]) -> Option<Echo> {
    let mut r = In::new(answer);
    let first = r.u8()?;
    if first & 0x07 != MODE_SERVER {
        return None;
    }
    r.take(23)?; // to the Origin Timestamp at offset 24
    let seconds = r.u32()?;
    let fraction = r.u32()?;
    r.take(16)?; // receive and transmit timestamps: a whole header
    (fraction == !seconds).then_some(Echo::full(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{answers, echoed_cookie, payload_for};

    #[test]
    fn test_request_by_the_spec() {
        let mut buf = [0u8; 64];
        let n = payload_for(123, 0xc0ff_ee00, &mut buf).unwrap();
        assert_eq!(n, LEN);
        let p = &buf[..n];
        assert_eq!(p[0] >> 6, 0, "LI");
        assert_eq!((p[0] >> 3) & 7, 4, "VN");
        assert_eq!(p[0] & 7, 3, "Mode: client");
        assert!(p[1..40].iter().all(|&b| b == 0));
        assert_eq!(&p[40..44], &0xc0ff_ee00u32.to_be_bytes());
        assert_eq!(&p[44..48], &0x3f00_11ffu32.to_be_bytes());
    }

    /// A server's reply to `request`: mode 4, the transmit timestamp copied
    /// to the origin timestamp, its own receive and transmit times.
    fn reply_to(request: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; LEN];
        r[0] = (4 << 3) | 4;
        r[1] = 2;
        r[24..32].copy_from_slice(&request[40..48]);
        r[32..40].copy_from_slice(&[0xea, 1, 2, 3, 4, 5, 6, 7]);
        r[40..48].copy_from_slice(&[0xea, 1, 2, 3, 4, 5, 6, 8]);
        r
    }

    #[test]
    fn test_echo() {
        let mut buf = [0u8; LEN];
        payload_for(123, 5, &mut buf).unwrap();
        let reply = reply_to(&buf);
        assert_eq!(echoed_cookie(123, &reply), Some(5));
        assert!(answers(123, 5, &reply));
        assert!(!answers(123, 6, &reply));
        // Our own request (mode 3), a short reply, a wrong fraction.
        assert_eq!(echoed_cookie(123, &buf), None);
        assert_eq!(echoed_cookie(123, &reply[..47]), None);
        let mut forged = reply.clone();
        forged[31] ^= 1;
        assert_eq!(echoed_cookie(123, &forged), None);
    }
}
