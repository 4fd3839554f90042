//! SunRPC portmapper / rpcbind (port 111): a NULL call.
//!
//! Read first: RFC 5531 section 9 (the call: XID, message type CALL, RPC
//! version 2, program, version, procedure, then credential and verifier,
//! here AUTH_NONE) and section 8 (procedure 0 of every program does
//! nothing and returns nothing: a cheap "are you there"), RFC 1833 section
//! 3 (rpcbind is program 100000; version 2 is the portmapper every rpcbind
//! still serves). Over UDP there is no record marking.
//!
//! Cookie: the XID, copied into the reply: **32 bits checked**. The reply
//! must be message type REPLY (1); accepted or denied, it proves a server.

use crate::Echo;
use crate::bytes::{In, Out};

/// The portmapper's program number (RFC 1833).
pub const PROGRAM_PORTMAP: u32 = 100_000;
/// RPC message types (RFC 5531, section 9).
const CALL: u32 = 0;
const REPLY: u32 = 1;
const RPC_VERSION: u32 = 2;
const AUTH_NONE: u32 = 0;

pub(crate) fn write(cookie: u32, out: &mut Out<'_>) -> Option<()> {
    out.u32(cookie)?; // XID
    out.u32(CALL)?;
    out.u32(RPC_VERSION)?;
    out.u32(PROGRAM_PORTMAP)?;
    out.u32(2)?; // program version
    out.u32(0)?; // procedure NULL
    for _ in 0..2 {
        // credential, then verifier: flavor AUTH_NONE, no body
        out.u32(AUTH_NONE)?;
        out.u32(0)?;
    }
    Some(())
}

pub(crate) fn echo(answer: &[u8]) -> Option<Echo> {
    let mut r = In::new(answer);
    let xid = r.u32()?;
    let msg_type = r.u32()?;
    let _reply_stat = r.u32()?;
    (msg_type == REPLY).then_some(Echo::full(xid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{answers, echoed_cookie, payload_for};

    fn words(bytes: &[u8]) -> Vec<u32> {
        bytes
            .chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn test_null_call_by_the_spec() {
        let mut buf = [0u8; 64];
        let n = payload_for(111, 0x8000_0001, &mut buf).unwrap();
        assert_eq!(
            words(&buf[..n]),
            [
                0x8000_0001,
                CALL,
                2,
                100_000,
                2,
                0,
                AUTH_NONE,
                0,
                AUTH_NONE,
                0
            ]
        );
    }

    #[test]
    fn test_echo() {
        // An accepted reply: XID, REPLY, MSG_ACCEPTED, verifier AUTH_NONE,
        // SUCCESS, no results.
        let reply: Vec<u8> = [0x8000_0001u32, REPLY, 0, 0, 0, 0]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(echoed_cookie(111, &reply), Some(0x8000_0001));
        assert!(answers(111, 0x8000_0001, &reply));
        let mut buf = [0u8; 64];
        let n = payload_for(111, 1, &mut buf).unwrap();
        assert_eq!(echoed_cookie(111, &buf[..n]), None, "a call is not a reply");
        assert_eq!(echoed_cookie(111, &reply[..11]), None);
    }
}
