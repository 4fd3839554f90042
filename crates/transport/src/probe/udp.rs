//! The UDP probe module (`-sU`, and the UDP pings `-PU`): each probe
//! carries the payload that makes its port's service answer
//! (`portolan-payloads`), with the cookie where the protocol echoes it.
//!
//! States (nmap's): any UDP answer = open (`udp-response`) when it
//! carries our cookie where its protocol echoes one (an answer of a
//! protocol that echoes nothing, or that we cannot read, proves the port
//! open as it is); ICMP port unreachable = closed; other unreachables =
//! filtered; silence = open|filtered (closed|filtered with
//! `--defeat-icmp-ratelimit`, which the scan plan decides).
//!
//! Read first: RFC 768, RFC 792 and RFC 4443 (the errors), and
//! `portolan-payloads`' documentation of each payload.

use std::collections::HashMap;
use std::net::IpAddr;

use portolan_engine::{PortState, Reason, Reply};
use portolan_wire::{Reply as Packet, StampError, UdpTemplate, ip_protocol, parse_reply};

use super::{Judged, Keys, ProbeModule, Shot, answer, unreachable_reason};
use crate::cookie::CookieJar;

/// UDP probes with payloads, and the reading of their answers.
#[derive(Debug)]
pub struct UdpProbes {
    /// One template per source address (ours, or a decoy's).
    templates: HashMap<IpAddr, UdpTemplate>,
    /// Where a probe's payload is written before it is copied behind the
    /// headers (allocated once).
    scratch: Vec<u8>,
}

impl Default for UdpProbes {
    fn default() -> Self {
        UdpProbes {
            templates: HashMap::new(),
            scratch: vec![0; portolan_payloads::MAX_PAYLOAD_LEN],
        }
    }
}

/// The reading of a UDP datagram from `target` to `ours` with `payload`:
/// open (`udp-response`), if it carries our cookie where its protocol
/// echoes it.
pub fn datagram_reply(
    jar: &CookieJar,
    target: (IpAddr, u16),
    ours: (IpAddr, u16),
    ttl: u8,
    payload: &[u8],
) -> Option<Reply> {
    let cookie = jar.cookie(ours.0, target.0, ours.1, target.1);
    let echoed = portolan_payloads::echo(target.1, payload).is_none_or(|e| e.matches(cookie));
    echoed.then_some(Reply {
        state: PortState::Open,
        reason: Reason::UdpResponse,
        ttl: Some(ttl),
    })
}

impl UdpProbes {
    /// What an already parsed packet proves (see [`ProbeModule::judge`]);
    /// `bytes` are those it was parsed from (the payload lies in them).
    pub fn judge_parsed(&self, packet: Packet, bytes: &[u8], keys: &Keys<'_>) -> Judged {
        match packet {
            Packet::Udp {
                src,
                dst,
                ttl,
                src_port,
                dst_port,
                payload,
            } => {
                if let Some(judged) = keys.ports.triage((src_port, dst_port)) {
                    return judged;
                }
                match datagram_reply(
                    keys.jar,
                    (src, src_port),
                    (dst, dst_port),
                    ttl,
                    payload.of(bytes),
                ) {
                    Some(reply) => Judged::Answer(super::Answer {
                        target: src,
                        port: src_port,
                        reply,
                    }),
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
            } if quoted.protocol == ip_protocol::UDP && keys.ports.contains(quoted.src_port) => {
                match unreachable_reason(v6, icmp_type, code) {
                    Some(reason) => {
                        let state = if reason == Reason::PortUnreach {
                            PortState::Closed
                        } else {
                            PortState::Filtered
                        };
                        answer(quoted.dst, quoted.dst_port, state, reason, ttl)
                    }
                    None => Judged::Invalid,
                }
            }
            _ => Judged::Unrelated,
        }
    }
}

impl ProbeModule for UdpProbes {
    fn answer_protocols(&self) -> &'static [u8] {
        &[ip_protocol::UDP]
    }

    fn silent_state(&self) -> PortState {
        PortState::OpenFiltered
    }

    fn stamp(
        &mut self,
        shot: Shot,
        keys: &Keys<'_>,
        buffer: &mut [u8],
    ) -> Result<usize, StampError> {
        let base = keys.ports.base;
        let template = self
            .templates
            .entry(shot.source)
            .or_insert_with(|| UdpTemplate::new(shot.source, base));
        let port = keys.ports.port_for(shot.try_no);
        let cookie = keys.jar.cookie(shot.source, shot.target, port, shot.port);
        let len = portolan_payloads::payload_for(shot.port, cookie, &mut self.scratch).unwrap_or(0);
        let payload = self.scratch.get(..len).unwrap_or_default();
        template.stamp(
            buffer,
            shot.target,
            port,
            shot.port,
            shot.ip_id(cookie),
            payload,
        )
    }

    fn judge(&self, packet: &[u8], keys: &Keys<'_>) -> Judged {
        match parse_reply(packet) {
            Ok(parsed) => self.judge_parsed(parsed, packet, keys),
            Err(_) => Judged::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Answer;
    use crate::probe::fixtures::{self, *};

    const OURS: u16 = 41_000;

    fn keys(jar: &CookieJar) -> Keys<'_> {
        fixtures::keys(jar, OURS)
    }

    /// A DNS answer to the probe of `cookie`: the ID echoed (the low 16
    /// bits of the cookie), a response with no records.
    fn dns_answer(cookie: u32) -> Vec<u8> {
        let mut m = (cookie as u16).to_be_bytes().to_vec();
        m.extend_from_slice(&[0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0]);
        m
    }

    #[test]
    fn udp_probes_read_answers_unreachables_and_forgeries() {
        let jar = CookieJar::new(11, 12);
        let keys = keys(&jar);
        let mut module = UdpProbes::default();
        for (us, target) in [(V4_US, V4_TARGET), (V6_US, V6_TARGET)] {
            let mut probe = [0u8; 1600];
            let shot = Shot {
                source: us,
                target,
                port: 53,
                try_no: 0,
            };
            let len = module.stamp(shot, &keys, &mut probe).unwrap();
            let probe = &probe[..len];
            // Our own probe back on loopback.
            assert_eq!(module.judge(probe, &keys), Judged::OwnProbe);
            // The DNS payload carries the cookie; an answer echoing it is
            // open, one echoing another ID is not ours.
            let cookie = jar.cookie(us, target, OURS, 53);
            let good = ip(target, us, 17, 61, &udp(53, OURS, &dns_answer(cookie)));
            assert_eq!(
                module.judge(&good, &keys),
                Judged::Answer(Answer {
                    target,
                    port: 53,
                    reply: Reply {
                        state: PortState::Open,
                        reason: Reason::UdpResponse,
                        ttl: Some(61),
                    },
                })
            );
            let forged = ip(target, us, 17, 61, &udp(53, OURS, &dns_answer(cookie ^ 1)));
            assert_eq!(module.judge(&forged, &keys), Judged::Invalid);
            // A port whose protocol echoes nothing: any datagram is open.
            let other = ip(target, us, 17, 61, &udp(7777, OURS, b"hello"));
            assert_eq!(
                proves(module.judge(&other, &keys)),
                Some((PortState::Open, Reason::UdpResponse))
            );
            // Not to one of our ports.
            let stray = ip(target, us, 17, 61, &udp(53, 5353, b"x"));
            assert_eq!(module.judge(&stray, &keys), Judged::Unrelated);

            let closed = icmp_unreachable(target, us, port_unreachable(us), probe);
            assert_eq!(
                proves(module.judge(&closed, &keys)),
                Some((PortState::Closed, Reason::PortUnreach))
            );
            let filtered = icmp_unreachable(target, us, prohibited(us), probe);
            assert_eq!(
                proves(module.judge(&filtered, &keys)),
                Some((PortState::Filtered, Reason::AdminProhibited))
            );
            let late = icmp_unreachable(target, us, time_exceeded(us), probe);
            assert_eq!(module.judge(&late, &keys), Judged::Invalid);

            for end in 0..good.len() {
                assert!(
                    !matches!(module.judge(&good[..end], &keys), Judged::Answer(_)),
                    "{end}"
                );
            }
        }
        assert_eq!(module.silent_state(), PortState::OpenFiltered);
    }
}
