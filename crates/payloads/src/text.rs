//! The text protocols: SSDP (port 1900) and SIP (port 5060), both
//! HTTP-like requests of header lines ending in CRLF.
//!
//! **SSDP.** Read first: UPnP Device Architecture 2.0, section 1.3.2
//! (M-SEARCH: `M-SEARCH * HTTP/1.1` with HOST, MAN `"ssdp:discover"`, MX
//! and ST; devices answer `HTTP/1.1 200 OK` with their own ST, USN and
//! LOCATION) and 1.3.3 (devices also answer an M-SEARCH sent to them by
//! unicast). The request searches `ssdp:all`. Cookie: nothing of the
//! request is echoed: **0 bits checked**; the answer must start with an
//! HTTP/1.x status line.
//!
//! **SIP.** Read first: RFC 3261 sections 8.1.1 (a request's mandatory
//! headers: To, From with a tag, Call-ID, CSeq, Max-Forwards, Via with a
//! branch starting `z9hG4bK`), 11 (OPTIONS: "what can you do", answered by
//! any user agent or proxy, with 200 or an error) and 8.2.6.2 (a response
//! copies From, Call-ID, CSeq and Via), RFC 3581 (`rport`: answer to the
//! source port), RFC 2606 (`.invalid` names). Cookie: 8 hexadecimal digits
//! in the Call-ID (`<hex>@portolan.invalid`), also in the branch and the
//! From tag: **32 bits checked**, read from the answer's Call-ID (or its
//! compact form `i:`), which must start with `SIP/2.0 `.

use crate::Echo;
use crate::bytes::{Out, parse_hex32};

pub(crate) fn write_ssdp(_cookie: u32, out: &mut Out<'_>) -> Option<()> {
    out.bytes(
        b"M-SEARCH * HTTP/1.1\r\n\
          HOST: 239.255.255.250:1900\r\n\
          MAN: \"ssdp:discover\"\r\n\
          MX: 1\r\n\
          ST: ssdp:all\r\n\
          \r\n",
    )
}

pub(crate) fn echo_ssdp(answer: &[u8]) -> Option<Echo> {
    let status = answer.get(..9)?;
    (status.eq_ignore_ascii_case(b"HTTP/1.1 ") || status.eq_ignore_ascii_case(b"HTTP/1.0 "))
        .then_some(Echo::NONE)
}

pub(crate) fn write_sip(cookie: u32, out: &mut Out<'_>) -> Option<()> {
    out.bytes(b"OPTIONS sip:portolan.invalid SIP/2.0\r\n")?;
    out.bytes(b"Via: SIP/2.0/UDP portolan.invalid;branch=z9hG4bK")?;
    out.hex32(cookie)?;
    out.bytes(b";rport\r\n")?;
    out.bytes(b"Max-Forwards: 70\r\n")?;
    out.bytes(b"To: <sip:portolan.invalid>\r\n")?;
    out.bytes(b"From: <sip:scan@portolan.invalid>;tag=")?;
    out.hex32(cookie)?;
    out.bytes(b"\r\nCall-ID: ")?;
    out.hex32(cookie)?;
    out.bytes(b"@portolan.invalid\r\n")?;
    out.bytes(b"CSeq: 1 OPTIONS\r\n")?;
    out.bytes(b"Contact: <sip:scan@portolan.invalid>\r\n")?;
    out.bytes(b"Accept: application/sdp\r\n")?;
    out.bytes(b"Content-Length: 0\r\n\r\n")
}

pub(crate) fn echo_sip(answer: &[u8]) -> Option<Echo> {
    if !answer.starts_with(b"SIP/2.0 ") {
        return None;
    }
    // Header names are case-insensitive; `i` is Call-ID's compact form
    // (RFC 3261, section 7.3.3). Spaces may surround the colon.
    for line in answer.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let name = name.trim_ascii();
        if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
            let value = value.get(1..)?.trim_ascii_start();
            return parse_hex32(value).map(Echo::full);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{answers, echo, echoed_cookie, payload_for};

    /// Splits a request into its start line and (name, value) headers,
    /// checking the CRLF framing and the empty line at the end.
    fn parse(p: &[u8]) -> (String, Vec<(String, String)>) {
        let text = std::str::from_utf8(p).unwrap();
        let head = text
            .strip_suffix("\r\n\r\n")
            .expect("ends with an empty line");
        let mut lines = head.split("\r\n");
        let start = lines.next().unwrap().to_owned();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("a header line");
                (n.to_owned(), v.trim().to_owned())
            })
            .collect();
        (start, headers)
    }

    #[test]
    fn test_m_search_by_the_spec() {
        let mut buf = [0u8; 256];
        let n = payload_for(1900, 0, &mut buf).unwrap();
        let (start, headers) = parse(&buf[..n]);
        assert_eq!(start, "M-SEARCH * HTTP/1.1");
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("HOST"), Some("239.255.255.250:1900"));
        assert_eq!(get("MAN"), Some("\"ssdp:discover\""));
        assert_eq!(get("MX"), Some("1"));
        assert_eq!(get("ST"), Some("ssdp:all"));
        let ok = b"HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\n\r\n";
        assert_eq!(echo(1900, ok), Some(Echo { value: 0, mask: 0 }));
        assert_eq!(echo(1900, &buf[..n]), None);
    }

    #[test]
    fn test_options_by_the_spec() {
        let mut buf = [0u8; 512];
        let n = payload_for(5060, 0x00c0_ffee, &mut buf).unwrap();
        let (start, headers) = parse(&buf[..n]);
        assert_eq!(start, "OPTIONS sip:portolan.invalid SIP/2.0");
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("Call-ID"), "00c0ffee@portolan.invalid");
        assert_eq!(
            get("Via"),
            "SIP/2.0/UDP portolan.invalid;branch=z9hG4bK00c0ffee;rport"
        );
        assert!(get("From").ends_with(";tag=00c0ffee"));
        assert_eq!(get("CSeq"), "1 OPTIONS");
        assert_eq!(get("Max-Forwards"), "70");
        assert_eq!(get("Content-Length"), "0");
        for name in ["To", "Contact"] {
            assert!(headers.iter().any(|(n, _)| n == name));
        }
    }

    #[test]
    fn test_sip_echo() {
        let ok = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK00c0ffee\r\ncall-id :  00C0FFEE@portolan.invalid\r\nCSeq: 1 OPTIONS\r\n\r\n";
        assert_eq!(echoed_cookie(5060, ok), Some(0x00c0_ffee));
        assert!(answers(5060, 0x00c0_ffee, ok));
        let compact = b"SIP/2.0 404 Not Found\r\ni: 0000abcd@portolan.invalid\r\n\r\n";
        assert_eq!(echoed_cookie(5060, compact), Some(0xabcd));
        let mut buf = [0u8; 512];
        let n = payload_for(5060, 1, &mut buf).unwrap();
        assert_eq!(
            echoed_cookie(5060, &buf[..n]),
            None,
            "a request is no answer"
        );
        assert_eq!(
            echoed_cookie(5060, b"SIP/2.0 200 OK\r\nCall-ID: 12\r\n"),
            None
        );
    }
}
