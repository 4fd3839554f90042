//! ONC RPC programs behind open ports: from the portmapper's list, or by
//! grinding through program numbers.
//!
//! Read RFC 5531 (RPC messages, record marking in §11) and RFC 1833
//! (portmapper version 2, `PMAPPROC_DUMP`) first. Where a host's portmapper
//! answers `DUMP`, its list says which program and versions serve each
//! port, so one call names every RPC port of the host (the issue's
//! "portmapper dump where allowed"). Otherwise the port is ground, as
//! nmap's RPC grinder does: a NULL call (procedure 0) for each program of
//! [`GRIND_PROGRAMS`] at a version no program serves ([`GRIND_VERSION`]);
//! the program that listens answers `PROG_MISMATCH` with the lowest and
//! highest versions it serves, the others `PROG_UNAVAIL`.
//!
//! Contract: [`parse_dump`] and [`parse_call_reply`] never panic and never
//! read past their input; [`parse_dump`] accepts at most [`MAX_MAPPINGS`]
//! entries. No I/O here.

/// The portmapper's program number.
pub const PORTMAPPER: u32 = 100_000;
/// The most entries read from one `DUMP` reply.
pub const MAX_MAPPINGS: usize = 4096;
/// The transaction id of our calls ("PLRP").
pub const XID: u32 = 0x504c_5250;
/// IP protocol number of TCP in a mapping.
pub const PROTO_TCP: u32 = 6;
/// IP protocol number of UDP in a mapping.
pub const PROTO_UDP: u32 = 17;

/// One entry of the portmapper's list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The program number.
    pub program: u32,
    /// One version it serves.
    pub version: u32,
    /// 6 (TCP) or 17 (UDP).
    pub protocol: u32,
    /// The port.
    pub port: u32,
}

/// The `PMAPPROC_DUMP` call (program 100000 version 2 procedure 4), with
/// TCP record marking.
pub fn dump_call() -> Vec<u8> {
    let words: [u32; 10] = [XID, 0, 2, PORTMAPPER, 2, 4, 0, 0, 0, 0];
    let mut call = Vec::with_capacity(44);
    call.extend_from_slice(&(0x8000_0000u32 | 40).to_be_bytes());
    for w in words {
        call.extend_from_slice(&w.to_be_bytes());
    }
    call
}

/// Joins the record fragments of a TCP reply; `None` until the last
/// fragment is complete (or if a fragment is malformed).
pub fn record(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    loop {
        let (mark, after) = rest.split_first_chunk::<4>()?;
        let mark = u32::from_be_bytes(*mark);
        let len = (mark & 0x7fff_ffff) as usize;
        let fragment = after.get(..len)?;
        out.extend_from_slice(fragment);
        if mark & 0x8000_0000 != 0 {
            return Some(out);
        }
        rest = &after[len..];
    }
}

/// Reads the mappings of an accepted `DUMP` reply (one joined record).
pub fn parse_dump(reply: &[u8]) -> Option<Vec<Mapping>> {
    let mut words = reply
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    let mut next = || words.next();
    // xid, REPLY (1), MSG_ACCEPTED (0)
    if next()? != XID || next()? != 1 || next()? != 0 {
        return None;
    }
    // The verifier: flavor, then an opaque body padded to 4 bytes.
    let _flavor = next()?;
    let body = next()? as usize;
    for _ in 0..body.div_ceil(4) {
        next()?;
    }
    // SUCCESS (0)
    if next()? != 0 {
        return None;
    }
    let mut list = Vec::new();
    while next()? == 1 {
        if list.len() == MAX_MAPPINGS {
            break;
        }
        list.push(Mapping {
            program: next()?,
            version: next()?,
            protocol: next()?,
            port: next()?,
        });
    }
    Some(list)
}

/// Well-known RPC programs and their usual names (as in `/etc/rpc`, the
/// Debian netbase list, and `rpcbind` for the portmapper as nmap names
/// it), in the order the grinder tries them: the most often exposed
/// first.
pub const GRIND_PROGRAMS: [(u32, &str); 40] = [
    (100_000, "rpcbind"),
    (100_003, "nfs"),
    (100_005, "mountd"),
    (100_021, "nlockmgr"),
    (100_024, "status"),
    (100_227, "nfs_acl"),
    (100_011, "rquotad"),
    (100_004, "ypserv"),
    (100_007, "ypbind"),
    (100_009, "yppasswdd"),
    (100_069, "ypxfrd"),
    (100_001, "rstatd"),
    (100_002, "rusersd"),
    (100_008, "walld"),
    (100_012, "sprayd"),
    (100_068, "cmsd"),
    (100_083, "ttdbserverd"),
    (150_001, "pcnfsd"),
    (300_019, "amd"),
    (391_002, "sgi_fam"),
    (100_017, "rexd"),
    (100_026, "bootparam"),
    (100_028, "ypupdated"),
    (100_029, "keyserv"),
    (100_010, "etherstatd"),
    (100_013, "3270_mapper"),
    (100_014, "rje_mapper"),
    (100_015, "selection_svc"),
    (100_016, "database_svc"),
    (100_018, "alis"),
    (100_019, "sched"),
    (100_020, "llockmgr"),
    (100_022, "x25.inr"),
    (100_023, "statmon"),
    (100_037, "tfsd"),
    (100_038, "nsed"),
    (100_039, "nsemntd"),
    (545_580_417, "ugidd"),
    (600_100_069, "fypxfrd"),
    (788_585_389, "bwnfsd"),
];

/// The version the grinder's calls ask for: far above any real program's,
/// so the program that listens answers with the versions it does serve.
pub const GRIND_VERSION: u32 = 0x2e_5f3a;

/// The usual name of an RPC program (as in `/etc/rpc`), for the
/// well-known numbers; `None` for others.
pub fn program_name(program: u32) -> Option<&'static str> {
    GRIND_PROGRAMS
        .iter()
        .find(|(number, _)| *number == program)
        .map(|(_, name)| *name)
}

/// A NULL call (procedure 0, no credentials) to `program` at `version`
/// with transaction id `xid`; with TCP's record mark in front when
/// `record_marked`.
pub fn null_call(program: u32, version: u32, xid: u32, record_marked: bool) -> Vec<u8> {
    let words: [u32; 10] = [xid, 0, 2, program, version, 0, 0, 0, 0, 0];
    let mut call = Vec::with_capacity(44);
    if record_marked {
        call.extend_from_slice(&(0x8000_0000u32 | 40).to_be_bytes());
    }
    for w in words {
        call.extend_from_slice(&w.to_be_bytes());
    }
    call
}

/// What an RPC server answered a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallReply {
    /// Accepted and run: the program serves that version.
    Success,
    /// `PROG_UNAVAIL`: no such program here.
    ProgramUnavailable,
    /// `PROG_MISMATCH`: the program is here, serving these versions.
    ProgramMismatch {
        /// The lowest version served.
        low: u32,
        /// The highest version served.
        high: u32,
    },
    /// Any other accepted status, or the call denied.
    Other,
}

/// Reads the reply (one joined record, or a datagram) to the call with
/// transaction id `xid`; `None` if it is not one.
pub fn parse_call_reply(reply: &[u8], xid: u32) -> Option<CallReply> {
    let mut words = reply
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    let mut next = || words.next();
    // xid, REPLY (1)
    if next()? != xid || next()? != 1 {
        return None;
    }
    // MSG_DENIED (1)
    if next()? != 0 {
        return Some(CallReply::Other);
    }
    let _flavor = next()?;
    let body = next()? as usize;
    for _ in 0..body.div_ceil(4) {
        next()?;
    }
    Some(match next()? {
        0 => CallReply::Success,
        1 => CallReply::ProgramUnavailable,
        2 => CallReply::ProgramMismatch {
            low: next()?,
            high: next()?,
        },
        _ => CallReply::Other,
    })
}

/// The lowest and highest version of `program` served on `port` over
/// `protocol` ([`PROTO_TCP`] or [`PROTO_UDP`]).
pub fn versions_on(list: &[Mapping], program: u32, protocol: u32, port: u16) -> Option<(u32, u32)> {
    let served = list
        .iter()
        .filter(|m| m.program == program && m.protocol == protocol && m.port == u32::from(port));
    let low = served.clone().map(|m| m.version).min()?;
    let high = served.map(|m| m.version).max()?;
    Some((low, high))
}

/// The program served on `port` over `protocol`, if the list names
/// exactly one.
pub fn program_on(list: &[Mapping], protocol: u32, port: u16) -> Option<u32> {
    let mut programs = list
        .iter()
        .filter(|m| m.protocol == protocol && m.port == u32::from(port))
        .map(|m| m.program);
    let first = programs.next()?;
    programs.all(|p| p == first).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_be_bytes()).collect()
    }

    /// A reply listing rpcbind 4, 3, 2 on 111 and nfs 3, 4 on 2049.
    fn reply() -> Vec<u8> {
        let mut w = vec![XID, 1, 0, 0, 0, 0];
        for (prog, vers, port) in [
            (100_000, 4, 111),
            (100_000, 3, 111),
            (100_000, 2, 111),
            (100_003, 3, 2049),
            (100_003, 4, 2049),
        ] {
            w.extend([1, prog, vers, PROTO_TCP, port]);
        }
        w.extend([1, 100_003, 3, PROTO_UDP, 2049, 0]);
        words(&w)
    }

    #[test]
    fn dump_call_is_a_record_of_ten_words() {
        let call = dump_call();
        assert_eq!(call.len(), 44);
        assert_eq!(&call[..4], &[0x80, 0, 0, 40]);
        assert_eq!(record(&call).unwrap().len(), 40);
    }

    #[test]
    fn dump_replies_parse() {
        let list = parse_dump(&reply()).unwrap();
        assert_eq!(list.len(), 6);
        assert_eq!(versions_on(&list, PORTMAPPER, PROTO_TCP, 111), Some((2, 4)));
        assert_eq!(versions_on(&list, 100_003, PROTO_TCP, 2049), Some((3, 4)));
        assert_eq!(versions_on(&list, 100_003, PROTO_UDP, 2049), Some((3, 3)));
        assert_eq!(program_on(&list, PROTO_TCP, 2049), Some(100_003));
        assert_eq!(program_on(&list, PROTO_UDP, 2049), Some(100_003));
        assert_eq!(program_on(&list, PROTO_UDP, 111), None);
        assert_eq!(program_on(&list, PROTO_TCP, 22), None);
        assert_eq!(program_name(100_003), Some("nfs"));
    }

    #[test]
    fn fragments_join_and_truncation_is_refused() {
        let body = reply();
        let (a, b) = body.split_at(12);
        let mut framed = Vec::new();
        framed.extend_from_slice(&(a.len() as u32).to_be_bytes());
        framed.extend_from_slice(a);
        framed.extend_from_slice(&(0x8000_0000 | b.len() as u32).to_be_bytes());
        framed.extend_from_slice(b);
        assert_eq!(record(&framed).unwrap(), body);
        for cut in 0..framed.len() {
            assert!(record(&framed[..cut]).is_none());
        }
        for cut in 0..body.len() {
            let _ = parse_dump(&body[..cut]);
        }
        assert!(parse_dump(&words(&[XID, 1, 1])).is_none());
    }

    #[test]
    fn null_calls_and_their_replies() {
        let call = null_call(100_005, GRIND_VERSION, 7, true);
        assert_eq!(&call[..4], &[0x80, 0, 0, 40]);
        let body = record(&call).unwrap();
        assert_eq!(
            body,
            words(&[7, 0, 2, 100_005, GRIND_VERSION, 0, 0, 0, 0, 0])
        );
        assert_eq!(null_call(100_005, GRIND_VERSION, 7, false), body);
        let mismatch = words(&[7, 1, 0, 0, 0, 2, 1, 3]);
        assert_eq!(
            parse_call_reply(&mismatch, 7),
            Some(CallReply::ProgramMismatch { low: 1, high: 3 })
        );
        assert_eq!(parse_call_reply(&mismatch, 8), None);
        assert_eq!(
            parse_call_reply(&words(&[7, 1, 0, 0, 0, 1]), 7),
            Some(CallReply::ProgramUnavailable)
        );
        assert_eq!(
            parse_call_reply(&words(&[7, 1, 0, 1, 4, 0xdead_beef, 0]), 7),
            Some(CallReply::Success)
        );
        assert_eq!(
            parse_call_reply(&words(&[7, 1, 1, 0]), 7),
            Some(CallReply::Other)
        );
        for cut in 0..mismatch.len() {
            assert_ne!(
                parse_call_reply(&mismatch[..cut], 7),
                Some(CallReply::ProgramMismatch { low: 1, high: 3 })
            );
        }
        assert_eq!(program_name(100_005), Some("mountd"));
        assert_eq!(program_name(4), None);
        // Each program once.
        let mut numbers: Vec<u32> = GRIND_PROGRAMS.iter().map(|(n, _)| *n).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), GRIND_PROGRAMS.len());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_replies_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = record(&bytes);
            let _ = parse_dump(&bytes);
            let _ = parse_call_reply(&bytes, XID);
        }
    }
}
