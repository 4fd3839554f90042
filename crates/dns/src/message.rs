//! PTR queries and the checked reading of their answers (RFC 1035 §4).
//!
//! [`query`] writes one standard query (recursion desired) for the
//! reverse name of an address. [`read_answer`] accepts a datagram only
//! if it answers that query: the ID, the response bit and the one
//! question (name, type PTR, class IN) must match, or it is an
//! [`AnswerError`] and the caller keeps waiting. A matching answer says
//! one of four things ([`Answer`]): a name (following CNAMEs inside the
//! answer, as RFC 2317 delegation needs, at most [`MAX_CNAMES`]), no name
//! (NXDOMAIN, or no PTR), truncated (no TCP fallback: give the name up),
//! or a server error (try the next server).
//!
//! Decoding is hickory-proto's, which bounds labels and names and refuses
//! forward and looping compression pointers. Nothing here panics.

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use crate::name::{HostName, NameError};

/// How many CNAMEs an answer may chain before its PTR.
pub const MAX_CNAMES: usize = 8;

/// What a matching answer says about the name asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The first PTR record's name.
    Name(HostName),
    /// The server says there is none (NXDOMAIN, or no PTR record).
    NoName,
    /// The answer did not fit in a datagram (TC bit): given up.
    Truncated,
    /// SERVFAIL, REFUSED or another error code: worth asking another
    /// server.
    ServerError(u16),
}

/// Why a datagram is not an answer to the query.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// Shorter than a DNS header.
    #[error("{0} bytes, shorter than a DNS header")]
    TooShort(usize),
    /// Another query's ID.
    #[error("ID {got:#06x}, expected {expected:#06x}")]
    WrongId {
        /// The ID of the query.
        expected: u16,
        /// The ID received.
        got: u16,
    },
    /// The response bit is not set.
    #[error("a query, not a response")]
    NotAResponse,
    /// The message does not decode.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Not exactly the question asked.
    #[error("the question is not the one asked")]
    WrongQuestion,
    /// The PTR names something that is no valid name.
    #[error("invalid name in the PTR record: {0}")]
    BadName(NameError),
}

/// Why a query could not be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode the PTR query: {0}")]
pub struct QueryError(String);

/// The bytes of a PTR query with ID `id` for the reverse name of `addr`.
pub fn query(id: u16, addr: IpAddr) -> Result<Vec<u8>, QueryError> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from(addr), RecordType::PTR));
    message.to_vec().map_err(|e| QueryError(e.to_string()))
}

/// Reads `datagram` as the answer to query `id` for `addr`.
pub fn read_answer(datagram: &[u8], id: u16, addr: IpAddr) -> Result<Answer, AnswerError> {
    if datagram.len() < 12 {
        return Err(AnswerError::TooShort(datagram.len()));
    }
    let got = u16::from_be_bytes([datagram[0], datagram[1]]);
    if got != id {
        return Err(AnswerError::WrongId { expected: id, got });
    }
    if datagram[2] & 0x80 == 0 {
        return Err(AnswerError::NotAResponse);
    }
    if datagram[2] & 0x02 != 0 {
        // A truncated message may not decode (its records are cut).
        return Ok(Answer::Truncated);
    }
    let message = Message::from_vec(datagram).map_err(|e| AnswerError::Malformed(e.to_string()))?;
    let asked = Name::from(addr);
    match message.queries.as_slice() {
        [q] if q.query_type() == RecordType::PTR
            && q.query_class() == DNSClass::IN
            && *q.name() == asked => {}
        _ => return Err(AnswerError::WrongQuestion),
    }
    match message.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Ok(Answer::NoName),
        other => return Ok(Answer::ServerError(u16::from(other))),
    }
    let mut owner = asked;
    for _ in 0..=MAX_CNAMES {
        let mut next = None;
        for record in message.answers.iter().filter(|r| r.name == owner) {
            match &record.data {
                RData::PTR(ptr) => {
                    return HostName::from_labels(ptr.0.iter())
                        .map(Answer::Name)
                        .map_err(AnswerError::BadName);
                }
                RData::CNAME(target) if next.is_none() => next = Some(target.0.clone()),
                _ => {}
            }
        }
        match next {
            Some(target) => owner = target,
            None => break,
        }
    }
    Ok(Answer::NoName)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{CNAME, PTR};
    use proptest::prelude::*;

    const ID: u16 = 0x1234;

    fn addr() -> IpAddr {
        "198.18.0.2".parse().unwrap()
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    /// An answer to `query(ID, addr())` carrying `answers`.
    fn response(rcode: ResponseCode, answers: Vec<Record>) -> Vec<u8> {
        let mut m = Message::new(ID, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from(addr()), RecordType::PTR));
        m.add_answers(answers);
        m.to_vec().unwrap()
    }

    fn ptr(owner: Name, target: &str) -> Record {
        Record::from_rdata(owner, 60, RData::PTR(PTR(name(target))))
    }

    #[test]
    fn query_bytes_decode_as_one_ptr_question() {
        let bytes = query(ID, addr()).unwrap();
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.id, ID);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.metadata.message_type, MessageType::Query);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.queries[0].name().to_ascii(), "2.0.18.198.in-addr.arpa.");
        assert_eq!(m.queries[0].query_type(), RecordType::PTR);
        let v6 = query(7, "fd00::2".parse().unwrap()).unwrap();
        let m = Message::from_vec(&v6).unwrap();
        assert!(m.queries[0].name().to_ascii().ends_with(".d.f.ip6.arpa."));
    }

    #[test]
    fn a_ptr_answer_gives_its_name() {
        let bytes = response(
            ResponseCode::NoError,
            vec![ptr(Name::from(addr()), "web.lab.example.")],
        );
        assert_eq!(
            read_answer(&bytes, ID, addr()),
            Ok(Answer::Name(
                HostName::parse_dotted("web.lab.example").unwrap()
            ))
        );
    }

    #[test]
    fn classless_delegation_cnames_are_followed() {
        let owner = Name::from(addr());
        let alias = name("2.0-25.0.18.198.in-addr.arpa.");
        let bytes = response(
            ResponseCode::NoError,
            vec![
                Record::from_rdata(owner, 60, RData::CNAME(CNAME(alias.clone()))),
                ptr(alias, "delegated.example."),
            ],
        );
        assert_eq!(
            read_answer(&bytes, ID, addr()).unwrap(),
            Answer::Name(HostName::parse_dotted("delegated.example").unwrap())
        );
    }

    #[test]
    fn cname_loops_end_without_a_name() {
        let a = Name::from(addr());
        let b = name("b.example.");
        let bytes = response(
            ResponseCode::NoError,
            vec![
                Record::from_rdata(a.clone(), 60, RData::CNAME(CNAME(b.clone()))),
                Record::from_rdata(b, 60, RData::CNAME(CNAME(a))),
            ],
        );
        assert_eq!(read_answer(&bytes, ID, addr()), Ok(Answer::NoName));
    }

    #[test]
    fn nxdomain_empty_and_errors() {
        let nx = response(ResponseCode::NXDomain, vec![]);
        assert_eq!(read_answer(&nx, ID, addr()), Ok(Answer::NoName));
        let empty = response(ResponseCode::NoError, vec![]);
        assert_eq!(read_answer(&empty, ID, addr()), Ok(Answer::NoName));
        let other_owner = response(
            ResponseCode::NoError,
            vec![ptr(name("3.0.18.198.in-addr.arpa."), "not.me.")],
        );
        assert_eq!(read_answer(&other_owner, ID, addr()), Ok(Answer::NoName));
        let fail = response(ResponseCode::ServFail, vec![]);
        assert_eq!(read_answer(&fail, ID, addr()), Ok(Answer::ServerError(2)));
        let refused = response(ResponseCode::Refused, vec![]);
        assert_eq!(
            read_answer(&refused, ID, addr()),
            Ok(Answer::ServerError(5))
        );
    }

    #[test]
    fn truncated_answers_give_up() {
        let mut bytes = response(
            ResponseCode::NoError,
            vec![ptr(Name::from(addr()), "web.lab.example.")],
        );
        bytes[2] |= 0x02;
        bytes.truncate(20);
        assert_eq!(read_answer(&bytes, ID, addr()), Ok(Answer::Truncated));
    }

    #[test]
    fn wrong_id_query_bit_and_question_are_refused() {
        let bytes = response(
            ResponseCode::NoError,
            vec![ptr(Name::from(addr()), "web.lab.example.")],
        );
        assert_eq!(
            read_answer(&bytes, ID ^ 1, addr()),
            Err(AnswerError::WrongId {
                expected: ID ^ 1,
                got: ID
            })
        );
        assert_eq!(
            read_answer(&bytes, ID, "198.18.0.3".parse().unwrap()),
            Err(AnswerError::WrongQuestion)
        );
        let q = query(ID, addr()).unwrap();
        assert_eq!(read_answer(&q, ID, addr()), Err(AnswerError::NotAResponse));
        assert_eq!(
            read_answer(&q[..5], ID, addr()),
            Err(AnswerError::TooShort(5))
        );
        // Two questions, or another type, are not the question asked.
        let mut m = Message::new(ID, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(Name::from(addr()), RecordType::PTR));
        m.add_query(Query::query(Name::from(addr()), RecordType::PTR));
        let two = m.to_vec().unwrap();
        assert_eq!(
            read_answer(&two, ID, addr()),
            Err(AnswerError::WrongQuestion)
        );
        let mut m = Message::new(ID, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(Name::from(addr()), RecordType::A));
        let a = m.to_vec().unwrap();
        assert_eq!(read_answer(&a, ID, addr()), Err(AnswerError::WrongQuestion));
    }

    /// A response header (ID, QR, one question, `answers` answers).
    fn header(answers: u8) -> Vec<u8> {
        vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, answers, 0, 0, 0, 0]
    }

    #[test]
    fn compression_loops_are_errors_not_hangs() {
        // The question's name is a pointer to itself (offset 12).
        let mut bytes = header(0);
        bytes.extend_from_slice(&[0xc0, 0x0c, 0, 12, 0, 1]);
        assert!(matches!(
            read_answer(&bytes, ID, addr()),
            Err(AnswerError::Malformed(_))
        ));
        // A label then a pointer back to that label: an endless name.
        let mut bytes = header(0);
        bytes.extend_from_slice(&[1, b'a', 0xc0, 0x0c, 0, 12, 0, 1]);
        assert!(matches!(
            read_answer(&bytes, ID, addr()),
            Err(AnswerError::Malformed(_))
        ));
        // The PTR's target points forward, past the end.
        let mut bytes = response(ResponseCode::NoError, vec![]);
        bytes[7] = 1;
        bytes.extend_from_slice(&[0xc0, 0x0c, 0, 12, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 0xff]);
        assert!(read_answer(&bytes, ID, addr()).is_err());
    }

    #[test]
    fn oversized_labels_are_errors() {
        // A label length of 64 (0x40: the reserved extended-label type).
        let mut bytes = header(0);
        bytes.push(64);
        bytes.extend_from_slice(&[b'x'; 64]);
        bytes.extend_from_slice(&[0, 0, 12, 0, 1]);
        assert!(matches!(
            read_answer(&bytes, ID, addr()),
            Err(AnswerError::Malformed(_))
        ));
        // A name of more than 255 bytes in the PTR record.
        let mut bytes = response(ResponseCode::NoError, vec![]);
        bytes[7] = 1;
        let mut rdata = Vec::new();
        for _ in 0..5 {
            rdata.push(63);
            rdata.extend_from_slice(&[b'y'; 63]);
        }
        rdata.push(0);
        bytes.extend_from_slice(&[0xc0, 0x0c, 0, 12, 0, 1, 0, 0, 0, 60]);
        bytes.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&rdata);
        assert!(read_answer(&bytes, ID, addr()).is_err());
    }

    #[test]
    fn control_bytes_in_names_are_escaped() {
        let mut bytes = response(ResponseCode::NoError, vec![]);
        bytes[7] = 1;
        let rdata = b"\x07e\x1b[2J\x07x\x00";
        bytes.extend_from_slice(&[0xc0, 0x0c, 0, 12, 0, 1, 0, 0, 0, 60, 0, rdata.len() as u8]);
        bytes.extend_from_slice(rdata);
        let Ok(Answer::Name(n)) = read_answer(&bytes, ID, addr()) else {
            panic!("no name");
        };
        assert_eq!(n.as_str(), "e\\027\\0912J\\007x");
    }

    #[test]
    fn every_prefix_of_an_answer_is_handled() {
        let bytes = response(
            ResponseCode::NoError,
            vec![ptr(Name::from(addr()), "web.lab.example.")],
        );
        for len in 0..bytes.len() {
            let _ = read_answer(&bytes[..len], ID, addr());
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if bytes.len() >= 3 {
                bytes[0] = 0x12;
                bytes[1] = 0x34;
                bytes[2] |= 0x80;
                bytes[2] &= !0x02;
            }
            let _ = read_answer(&bytes, ID, addr());
        }

        #[test]
        fn mutated_answers_never_panic(i in 0usize..64, b in any::<u8>()) {
            let mut bytes = response(
                ResponseCode::NoError,
                vec![ptr(Name::from(addr()), "web.lab.example.")],
            );
            let i = i % bytes.len();
            bytes[i] = b;
            let _ = read_answer(&bytes, ID, addr());
        }
    }
}
