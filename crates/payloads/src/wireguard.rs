//! WireGuard (port 51820): the shape of a handshake initiation.
//!
//! Read first: the WireGuard paper (Donenfeld, NDSS 2017), section 5.4.2
//! (the 148-byte initiation: type 1, three reserved bytes, the sender
//! index, then the ephemeral key, encrypted static key, encrypted
//! timestamp, `mac1` and `mac2`), 5.4.3 (the response, type 2, carries our
//! sender index as its receiver index), 5.4.7 (a cookie reply, type 3,
//! carries it too) and 5.3 (a responder checks `mac1`, keyed by a hash of
//! its own public key, before anything else, and **drops silently** any
//! message that fails it). All integers are little-endian.
//!
//! Without the server's public key, `mac1` cannot be right, so a real
//! server stays silent by design: port 51820 shows as open|filtered, never
//! open, whatever runs there. The probe still has the initiation's exact
//! shape (keys and MACs zero), so a server that knows nothing better than
//! parsing it, or a honeypot, may answer. Cookie: the sender index:
//! **32 bits checked** in a response's receiver index or a cookie reply's.

use crate::Echo;
use crate::bytes::{In, Out};

/// The length of a handshake initiation.
pub const INITIATION_LEN: usize = 148;
/// Message types.
const INITIATION: u8 = 1;
const RESPONSE: u8 = 2;
const COOKIE_REPLY: u8 = 3;

pub(crate) fn write(cookie: u32, out: &mut Out<'_>) -> Option<()> {
    out.u8(INITIATION)?;
    out.fill(3, 0)?; // reserved
    out.u32_le(cookie)?; // sender index
    // Ephemeral key (32), encrypted static (32 + 16), encrypted timestamp
    // (12 + 16), mac1 (16), mac2 (16).
    out.fill(INITIATION_LEN.checked_sub(8)?, 0)
}

pub(crate) fn echo(answer: &[u8]) -> Option<Echo> {
    let mut r = In::new(answer);
    let kind = r.u8()?;
    if r.take(3)? != [0, 0, 0] {
        return None;
    }
    let receiver = match kind {
        RESPONSE => {
            r.u32_le()?; // the responder's sender index
            r.u32_le()?
        }
        COOKIE_REPLY => r.u32_le()?,
        _ => return None,
    };
    Some(Echo::full(receiver))
}

#[cfg(test)]
mod tests {
    use crate::{echoed_cookie, payload_for};

    #[test]
    fn test_initiation_shape() {
        let mut buf = [0xffu8; 200];
        let n = payload_for(51820, 0x0403_0201, &mut buf).unwrap();
        assert_eq!(n, 148);
        assert_eq!(&buf[..8], &[1, 0, 0, 0, 1, 2, 3, 4]);
        assert!(buf[8..n].iter().all(|&b| b == 0));
        assert_eq!(
            echoed_cookie(51820, &buf[..n]),
            None,
            "an initiation is no answer"
        );
    }

    #[test]
    fn test_echo() {
        let mut response = vec![2, 0, 0, 0, 9, 9, 9, 9, 1, 2, 3, 4];
        response.resize(92, 0);
        assert_eq!(echoed_cookie(51820, &response), Some(0x0403_0201));
        let mut cookie_reply = vec![3, 0, 0, 0, 1, 2, 3, 4];
        cookie_reply.resize(64, 0);
        assert_eq!(echoed_cookie(51820, &cookie_reply), Some(0x0403_0201));
        assert_eq!(
            echoed_cookie(51820, &[2, 0, 0, 1, 9, 9, 9, 9, 1, 2, 3, 4]),
            None
        );
    }
}
