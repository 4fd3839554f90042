//! The SCTP probe module: INIT (`-sY`) and COOKIE ECHO (`-sZ`) probes,
//! and the SCTP pings (`-PY`).
//!
//! The cookie is the INIT's Initiate Tag (echoed as the verification tag
//! of the INIT ACK or ABORT that answers it) or the COOKIE ECHO's own
//! verification tag (reflected by an ABORT with the T bit set); never 0,
//! which an Initiate Tag may not be (RFC 9260 section 3.3.2).
//!
//! States (nmap's): INIT: INIT ACK = open (`init-ack`), ABORT = closed
//! (`abort`), silence = filtered; COOKIE ECHO: ABORT = closed, silence =
//! open|filtered; an ICMP unreachable quoting a probe with our cookie =
//! filtered.
//!
//! Read first: RFC 9260 sections 3.3.2, 3.3.3, 8.4 and 8.5.1.

use std::collections::HashMap;
use std::net::IpAddr;

use portolan_engine::{PortState, Reason};
use portolan_wire::{
    Reply as Packet, SctpChunk, SctpProbe, SctpTemplate, StampError, ip_protocol, parse_reply,
};

use super::{Judged, Keys, ProbeModule, Shot, answer, unreachable_reason};
use crate::cookie::CookieJar;

/// The cookie of an SCTP probe from `ours` to `target`: never 0.
pub fn cookie(jar: &CookieJar, ours: IpAddr, target: IpAddr, sport: u16, dport: u16) -> u32 {
    jar.cookie(ours, target, sport, dport).max(1)
}

/// How a probe of `kind` reads a packet from `target` to `ours` with
/// verification tag `vtag` and first chunk `chunk`: an INIT's INIT ACK =
/// open, its ABORT = closed; a COOKIE ECHO's ABORT (T bit set) = closed.
/// `None` for anything else, or without our cookie as the tag.
pub fn reading(
    jar: &CookieJar,
    (target, target_port): (IpAddr, u16),
    (ours, our_port): (IpAddr, u16),
    vtag: u32,
    chunk: SctpChunk,
    kind: SctpProbe,
) -> Option<(PortState, Reason)> {
    let read = match (kind, chunk) {
        (SctpProbe::Init, SctpChunk::InitAck { .. }) => (PortState::Open, Reason::InitAck),
        (SctpProbe::Init, SctpChunk::Abort { reflected: false })
        | (SctpProbe::CookieEcho, SctpChunk::Abort { reflected: true }) => {
            (PortState::Closed, Reason::Abort)
        }
        _ => return None,
    };
    (vtag == cookie(jar, ours, target, our_port, target_port)).then_some(read)
}

/// SCTP probes of one kind, and the reading of their answers.
#[derive(Debug)]
pub struct SctpProbes {
    kind: SctpProbe,
    /// One template per source address (ours, or a decoy's).
    templates: HashMap<IpAddr, SctpTemplate>,
}

impl SctpProbes {
    /// Probes of `kind`.
    pub fn new(kind: SctpProbe) -> SctpProbes {
        SctpProbes {
            kind,
            templates: HashMap::new(),
        }
    }

    /// What an already parsed packet proves (see [`ProbeModule::judge`]).
    pub fn judge_parsed(&self, packet: Packet, keys: &Keys<'_>) -> Judged {
        match packet {
            Packet::Sctp {
                src,
                dst,
                ttl,
                src_port,
                dst_port,
                vtag,
                chunk,
            } => {
                if let Some(judged) = keys.ports.triage((src_port, dst_port)) {
                    return judged;
                }
                match reading(
                    keys.jar,
                    (src, src_port),
                    (dst, dst_port),
                    vtag,
                    chunk,
                    self.kind,
                ) {
                    Some((state, reason)) => answer(src, src_port, state, reason, ttl),
                    None => Judged::Invalid,
                }
            }
            Packet::IcmpError {
                ttl,
                v6,
                icmp_type,
                code,
                quoted,
                ..
            } if quoted.protocol == ip_protocol::SCTP && keys.ports.contains(quoted.src_port) => {
                let ours = cookie(
                    keys.jar,
                    quoted.src,
                    quoted.dst,
                    quoted.src_port,
                    quoted.dst_port,
                );
                match unreachable_reason(v6, icmp_type, code) {
                    Some(reason) if quoted.sctp_cookie() == Some(ours) => answer(
                        quoted.dst,
                        quoted.dst_port,
                        PortState::Filtered,
                        reason,
                        ttl,
                    ),
                    _ => Judged::Invalid,
                }
            }
            _ => Judged::Unrelated,
        }
    }
}

impl ProbeModule for SctpProbes {
    fn answer_protocols(&self) -> &'static [u8] {
        &[ip_protocol::SCTP]
    }

    fn silent_state(&self) -> PortState {
        match self.kind {
            SctpProbe::Init => PortState::Filtered,
            _ => PortState::OpenFiltered,
        }
    }

    fn stamp(
        &mut self,
        shot: Shot,
        keys: &Keys<'_>,
        buffer: &mut [u8],
    ) -> Result<usize, StampError> {
        let (base, kind) = (keys.ports.base, self.kind);
        let template = self
            .templates
            .entry(shot.source)
            .or_insert_with(|| SctpTemplate::new(shot.source, base, kind));
        let port = keys.ports.port_for(shot.try_no);
        let cookie = cookie(keys.jar, shot.source, shot.target, port, shot.port);
        template.stamp(
            buffer,
            shot.target,
            port,
            shot.port,
            cookie,
            shot.ip_id(cookie),
        )
    }

    fn judge(&self, packet: &[u8], keys: &Keys<'_>) -> Judged {
        match parse_reply(packet) {
            Ok(parsed) => self.judge_parsed(parsed, keys),
            Err(_) => Judged::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::probe::fixtures::{self, *};

    const OURS: u16 = 42_000;
    const INIT_ACK: u8 = 2;
    const ABORT: u8 = 6;

    fn keys(jar: &CookieJar) -> Keys<'_> {
        fixtures::keys(jar, OURS)
    }

    #[test]
    fn init_probes_read_init_ack_abort_and_icmp() {
        let jar = CookieJar::new(21, 22);
        let keys = keys(&jar);
        let mut module = SctpProbes::new(SctpProbe::Init);
        for (us, target) in [(V4_US, V4_TARGET), (V6_US, V6_TARGET)] {
            let mut probe = [0u8; 200];
            let shot = Shot {
                source: us,
                target,
                port: 5060,
                try_no: 0,
            };
            let len = module.stamp(shot, &keys, &mut probe).unwrap();
            let probe = &probe[..len];
            assert_eq!(module.judge(probe, &keys), Judged::OwnProbe);
            let tag = cookie(&jar, us, target, OURS, 5060);
            let init_ack = ip(
                target,
                us,
                132,
                61,
                &sctp(5060, OURS, tag, INIT_ACK, 0, &init_ack_body()),
            );
            assert_eq!(
                proves(module.judge(&init_ack, &keys)),
                Some((PortState::Open, Reason::InitAck))
            );
            let abort = ip(target, us, 132, 61, &sctp(5060, OURS, tag, ABORT, 0, &[]));
            assert_eq!(
                proves(module.judge(&abort, &keys)),
                Some((PortState::Closed, Reason::Abort))
            );
            // A reflected ABORT answers a COOKIE ECHO, not an INIT.
            let reflected = ip(target, us, 132, 61, &sctp(5060, OURS, tag, ABORT, 1, &[]));
            assert_eq!(module.judge(&reflected, &keys), Judged::Invalid);
            let forged = ip(
                target,
                us,
                132,
                61,
                &sctp(5060, OURS, tag ^ 4, INIT_ACK, 0, &init_ack_body()),
            );
            assert_eq!(module.judge(&forged, &keys), Judged::Invalid);
            let filtered = icmp_unreachable(target, us, prohibited(us), probe);
            assert_eq!(
                proves(module.judge(&filtered, &keys)),
                Some((PortState::Filtered, Reason::AdminProhibited))
            );
            for end in 0..init_ack.len() {
                assert!(
                    !matches!(module.judge(&init_ack[..end], &keys), Judged::Answer(_)),
                    "{end}"
                );
            }
        }
        assert_eq!(module.silent_state(), PortState::Filtered);
    }

    #[test]
    fn cookie_echo_probes_read_only_a_reflected_abort() {
        let jar = CookieJar::new(23, 24);
        let keys = keys(&jar);
        let module = SctpProbes::new(SctpProbe::CookieEcho);
        let tag = cookie(&jar, V4_US, V4_TARGET, OURS, 80);
        let reflected = ip(
            V4_TARGET,
            V4_US,
            132,
            61,
            &sctp(80, OURS, tag, ABORT, 1, &[]),
        );
        assert_eq!(
            proves(module.judge(&reflected, &keys)),
            Some((PortState::Closed, Reason::Abort))
        );
        let plain = ip(
            V4_TARGET,
            V4_US,
            132,
            61,
            &sctp(80, OURS, tag, ABORT, 0, &[]),
        );
        assert_eq!(module.judge(&plain, &keys), Judged::Invalid);
        assert_eq!(module.silent_state(), PortState::OpenFiltered);
    }
}
