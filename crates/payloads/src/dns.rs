//! DNS (port 53), multicast DNS (5353) and NetBIOS name service (137)
//! queries: one header layout, three questions.
//!
//! Read first: RFC 1035 section 4.1 (the message: a 12-byte header, then
//! questions of labels, type and class), RFC 4892 and the CHAOS-class
//! convention it describes (`version.bind`/`id.server` TXT in class CH,
//! which name servers answer with their version or refuse), RFC 6762
//! sections 5.4 and 6.7 (mDNS: a query from a port other than 5353 is a
//! "legacy unicast" query, answered to its source port with the ID echoed
//! and the question repeated), RFC 6763 section 9 (the
//! `_services._dns-sd._udp.local` enumeration), RFC 1002 sections 4.2.1
//! and 4.2.17 (NetBIOS: the same header, a first-level encoded name, NBSTAT
//! node status).
//!
//! Cookie: the low 16 bits go in the transaction ID, which every answer
//! (data, NXDOMAIN, REFUSED, NOTIMP) copies: **16 bits checked**. The
//! answer must have QR (R for NetBIOS) set and opcode 0.

use crate::Echo;
use crate::bytes::{In, Out};

/// Query type TXT (RFC 1035, section 3.2.2).
pub const TYPE_TXT: u16 = 16;
/// Query type PTR.
pub const TYPE_PTR: u16 = 12;
/// NetBIOS node status (RFC 1002, section 4.2.1.3).
pub const TYPE_NBSTAT: u16 = 0x21;
/// Class IN.
pub const CLASS_IN: u16 = 1;
/// Class CH (CHAOS), where `version.bind` lives.
pub const CLASS_CH: u16 = 3;
/// The mDNS "unicast response requested" bit of the question class (RFC
/// 6762, section 5.4).
pub const CLASS_QU: u16 = 0x8000;
/// The header's QR (response) bit.
const FLAG_QR: u16 = 0x8000;
/// The header's opcode bits.
const OPCODE_MASK: u16 = 0x7800;

/// The 12-byte header of a query with one question and `flags`.
fn header(out: &mut Out<'_>, cookie: u32, flags: u16) -> Option<()> {
    out.u16(cookie as u16)?; // ID: the cookie's low 16 bits.
    out.u16(flags)?;
    out.u16(1)?; // QDCOUNT
    out.u16(0)?; // ANCOUNT
    out.u16(0)?; // NSCOUNT
    out.u16(0) // ARCOUNT
}

/// A question: the name as labels, then type and class.
fn question(out: &mut Out<'_>, labels: &[&[u8]], qtype: u16, qclass: u16) -> Option<()> {
    for label in labels {
        out.u8(u8::try_from(label.len()).ok().filter(|&n| n < 64)?)?;
        out.bytes(label)?;
    }
    out.u8(0)?;
    out.u16(qtype)?;
    out.u16(qclass)
}

/// `version.bind. CH TXT`, recursion not desired: any name server answers,
/// with its version, an empty answer or a refusal.
pub(crate) fn write_version_query(cookie: u32, out: &mut Out<'_>) -> Option<()> {
    header(out, cookie, 0)?;
    question(out, &[b"version", b"bind"], TYPE_TXT, CLASS_CH)
}

/// `_services._dns-sd._udp.local. PTR`, class IN with the QU bit: a
/// responder lists its service types.
pub(crate) fn write_mdns_query(cookie: u32, out: &mut Out<'_>) -> Option<()> {
    header(out, cookie, 0)?;
    question(
        out,
        &[b"_services", b"_dns-sd", b"_udp", b"local"],
        TYPE_PTR,
        CLASS_IN | CLASS_QU,
    )
}

/// A NetBIOS node status request for the wildcard name `*` (RFC 1002,
/// section 4.2.17): the node answers with its name table.
pub(crate) fn write_netbios_node_status(cookie: u32, out: &mut Out<'_>) -> Option<()> {
    header(out, cookie, 0)?;
    // First-level encoding (RFC 1001, section 14.1): `*` (0x2a) padded
    // with NULs to 16 bytes, each byte split into two nibbles written as
    // 'A' + nibble: "CK" then 15 times "AA".
    const WILDCARD: &[u8; 32] = b"CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    question(out, &[WILDCARD], TYPE_NBSTAT, CLASS_IN)
}

/// A DNS or mDNS answer: QR set, opcode 0; the ID is the echo.
pub(crate) fn echo(answer: &[u8]) -> Option<Echo> {
    let mut r = In::new(answer);
    let id = r.u16()?;
    let flags = r.u16()?;
    r.take(8)?; // the counts
    (flags & FLAG_QR != 0 && flags & OPCODE_MASK == 0).then_some(Echo::low16(id))
}

/// A NetBIOS name service response: the same layout and checks as DNS
/// (the R bit is QR's position).
pub(crate) fn echo_netbios(answer: &[u8]) -> Option<Echo> {
    echo(answer)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{answers, echoed_cookie, payload_for};

    /// A parsed query: header fields, the labels of the one question, its
    /// type and class, and the bytes left over (RFC 1035, section 4.1).
    #[derive(Debug, PartialEq)]
    pub(crate) struct Query {
        pub id: u16,
        pub flags: u16,
        pub counts: [u16; 4],
        pub labels: Vec<Vec<u8>>,
        pub qtype: u16,
        pub qclass: u16,
    }

    /// Parses a query by RFC 1035 section 4.1, with no compression (a
    /// query has nothing to point back to), requiring every byte used.
    pub(crate) fn parse_query(bytes: &[u8]) -> Query {
        let u16_at = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        let mut at = 12;
        let mut labels = Vec::new();
        loop {
            let len = usize::from(bytes[at]);
            assert!(len < 64, "a label of {len} bytes (or a pointer)");
            at += 1;
            if len == 0 {
                break;
            }
            labels.push(bytes[at..at + len].to_vec());
            at += len;
        }
        let q = Query {
            id: u16_at(0),
            flags: u16_at(2),
            counts: [u16_at(4), u16_at(6), u16_at(8), u16_at(10)],
            labels,
            qtype: u16_at(at),
            qclass: u16_at(at + 2),
        };
        assert_eq!(at + 4, bytes.len(), "bytes after the question");
        q
    }

    /// The answer a server makes of `query`: QR set, rcode `rcode`, the
    /// question kept, no records.
    pub(crate) fn reply_to(query: &[u8], rcode: u8) -> Vec<u8> {
        let mut a = query.to_vec();
        a[2] |= 0x80;
        a[3] = (a[3] & 0xf0) | rcode;
        a
    }

    fn payload(port: u16, cookie: u32) -> Vec<u8> {
        let mut buf = [0u8; 512];
        let n = payload_for(port, cookie, &mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn test_version_bind_query() {
        let p = payload(53, 0x1234_abcd);
        let q = parse_query(&p);
        assert_eq!(q.id, 0xabcd);
        assert_eq!(q.flags, 0, "standard query, no recursion");
        assert_eq!(q.counts, [1, 0, 0, 0]);
        assert_eq!(q.labels, [b"version".to_vec(), b"bind".to_vec()]);
        assert_eq!((q.qtype, q.qclass), (TYPE_TXT, CLASS_CH));

        let refused = reply_to(&p, 5);
        assert_eq!(echoed_cookie(53, &refused), Some(0xabcd));
        assert!(answers(53, 0x9999_abcd, &refused));
        assert!(!answers(53, 0x1234_abce, &refused));
        // The query itself (QR clear) is not an answer.
        assert_eq!(echoed_cookie(53, &p), None);
        // Nor is a response of another opcode, or 11 bytes.
        let mut notify = refused.clone();
        notify[2] |= 0x20;
        assert_eq!(echoed_cookie(53, &notify), None);
        assert_eq!(echoed_cookie(53, &refused[..11]), None);
    }

    #[test]
    fn test_mdns_query() {
        let p = payload(5353, 7);
        let q = parse_query(&p);
        assert_eq!(q.id, 7);
        assert_eq!(q.counts, [1, 0, 0, 0]);
        let labels: Vec<&[u8]> = q.labels.iter().map(Vec::as_slice).collect();
        assert_eq!(labels, [&b"_services"[..], b"_dns-sd", b"_udp", b"local"]);
        assert_eq!(q.qtype, TYPE_PTR);
        assert_eq!(q.qclass, CLASS_IN | CLASS_QU);
        assert_eq!(echoed_cookie(5353, &reply_to(&p, 0)), Some(7));
    }

    #[test]
    fn test_netbios_node_status() {
        let p = payload(137, 0xffff_0102);
        let q = parse_query(&p);
        assert_eq!(q.id, 0x0102);
        assert_eq!(q.flags, 0, "a query, no broadcast");
        assert_eq!(q.counts, [1, 0, 0, 0]);
        assert_eq!(q.labels.len(), 1);
        // Decode the first-level encoding back to the 16-byte name.
        let name: Vec<u8> = q.labels[0]
            .chunks(2)
            .map(|c| ((c[0] - b'A') << 4) | (c[1] - b'A'))
            .collect();
        let mut expected = vec![b'*'];
        expected.resize(16, 0);
        assert_eq!(name, expected);
        assert_eq!((q.qtype, q.qclass), (TYPE_NBSTAT, CLASS_IN));
        assert!(answers(137, 0xffff_0102, &reply_to(&p, 0)));
    }
}
