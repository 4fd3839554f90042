//! The IP protocol scan's module (`-sO`): the "ports" are protocol
//! numbers. A protocol with an answer of its own gets its own probe (an
//! ICMP or ICMPv6 echo request, a TCP ACK to port 80, a UDP datagram to a
//! port no service is known on, an SCTP INIT to port 80, each through the
//! module of its protocol); every other protocol gets a bare header whose
//! first 8 bytes carry the cookie and a checksum (`write_bare`).
//!
//! States (nmap's): any answer in the protocol = open (`echo-reply`,
//! `proto-response`), and so is the host's port unreachable answering the
//! UDP probe (`port-unreach`); the host's protocol unreachable = closed
//! (`proto-unreach`, or `param-problem` over IPv6); other unreachables,
//! or any unreachable from a router, = filtered; silence =
//! open|filtered. Every answer must carry the probe's cookie: an echo's
//! identifier and sequence number, the TCP and SCTP modules' cookies, a
//! bare header's first 4 bytes in the ICMP error's quote.
//!
//! Read first: nmap's "IP Protocol Scan" chapter; RFC 792 and RFC 4443
//! (protocol unreachable, and IPv6's unrecognised next header).

use std::net::IpAddr;

use portolan_engine::{PortState, Reason, Reply};
use portolan_wire::{
    IcmpQuery, Quoted, Reply as Packet, SctpProbe, StampError, ip_protocol, parse_query_reply,
    parse_reply, write_bare, write_query,
};

use super::sctp::SctpProbes;
use super::tcp::{TcpProbes, TcpScan};
use super::udp::{UdpProbes, datagram_reply};
use super::{Answer, Judged, Keys, ProbeModule, Shot, unreachable_reason};

/// The port the TCP and SCTP probes go to (any port draws an answer: a
/// RST or an ABORT when closed).
pub const TCP_SCTP_PORT: u16 = 80;
/// The port of the UDP probe: one no service is known on, so the answer
/// is the host's port unreachable.
pub const UDP_PORT: u16 = 40_125;

/// What the IP protocol scan sends for one protocol number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolProbe {
    /// An ICMP echo request (protocol 1 over IPv4, 58 over IPv6).
    Echo,
    /// A TCP ACK, which any stack answers with a RST.
    Tcp,
    /// A UDP datagram to a closed port: a port unreachable proves UDP.
    Udp,
    /// An SCTP INIT, answered by an INIT ACK or an ABORT.
    Sctp,
    /// A bare header, for the protocols without such a probe.
    Bare,
}

impl ProtocolProbe {
    /// The probe of `protocol` over IPv6 (`v6`) or IPv4.
    pub fn of(protocol: u8, v6: bool) -> ProtocolProbe {
        match protocol {
            ip_protocol::TCP => ProtocolProbe::Tcp,
            ip_protocol::UDP => ProtocolProbe::Udp,
            ip_protocol::SCTP => ProtocolProbe::Sctp,
            p if p == echo_protocol(v6) => ProtocolProbe::Echo,
            _ => ProtocolProbe::Bare,
        }
    }
}

/// ICMP's protocol number in this IP version: 1, or 58 (ICMPv6).
pub fn echo_protocol(v6: bool) -> u8 {
    if v6 {
        ip_protocol::ICMPV6
    } else {
        ip_protocol::ICMP
    }
}

/// Probes of the IP protocol scan, and the reading of their answers.
#[derive(Debug)]
pub struct IpProtocolProbes {
    tcp: TcpProbes,
    udp: UdpProbes,
    sctp: SctpProbes,
}

impl Default for IpProtocolProbes {
    fn default() -> Self {
        IpProtocolProbes {
            tcp: TcpProbes::new(TcpScan::Ack, None),
            udp: UdpProbes::default(),
            sctp: SctpProbes::new(SctpProbe::Init),
        }
    }
}

/// An answer proving `protocol` of `target` in `state` with `reason`.
fn proves(target: IpAddr, protocol: u8, state: PortState, reason: Reason, ttl: u8) -> Judged {
    Judged::Answer(Answer {
        target,
        port: u16::from(protocol),
        reply: Reply {
            state,
            reason,
            ttl: Some(ttl),
        },
    })
}

impl IpProtocolProbes {
    /// The protocol number of our probe an ICMP error quotes, if the quote
    /// shows that probe's cookie.
    fn quoted_probe(quoted: &Quoted, keys: &Keys<'_>) -> Option<u8> {
        let jar = keys.jar;
        let (ours, target) = (quoted.src, quoted.dst);
        let (sport, dport) = (quoted.src_port, quoted.dst_port);
        let protocol = quoted.protocol;
        let valid = match ProtocolProbe::of(protocol, target.is_ipv6()) {
            ProtocolProbe::Tcp => {
                keys.ports.contains(sport)
                    && quoted.seq == Some(jar.cookie(ours, target, sport, dport))
            }
            ProtocolProbe::Udp => keys.ports.contains(sport),
            ProtocolProbe::Sctp => {
                keys.ports.contains(sport)
                    && quoted.sctp_cookie()
                        == Some(super::sctp::cookie(jar, ours, target, sport, dport))
            }
            ProtocolProbe::Echo => {
                quoted.echo_cookie == Some(jar.cookie(ours, target, 0, u16::from(protocol)))
            }
            ProtocolProbe::Bare => {
                let carried = (u32::from(sport) << 16) | u32::from(dport);
                carried == jar.cookie(ours, target, 0, u16::from(protocol))
            }
        };
        valid.then_some(protocol)
    }
}

impl ProbeModule for IpProtocolProbes {
    fn answer_protocols(&self) -> &'static [u8] {
        &super::EVERY_ANSWER
    }

    fn silent_state(&self) -> PortState {
        PortState::OpenFiltered
    }

    /// `shot.port` is the protocol number.
    fn stamp(
        &mut self,
        shot: Shot,
        keys: &Keys<'_>,
        buffer: &mut [u8],
    ) -> Result<usize, StampError> {
        let protocol = u8::try_from(shot.port).unwrap_or(u8::MAX);
        let to = |port| Shot { port, ..shot };
        match ProtocolProbe::of(protocol, shot.target.is_ipv6()) {
            ProtocolProbe::Echo => {
                let cookie = keys.jar.cookie(shot.source, shot.target, 0, shot.port);
                let query = IcmpQuery::Echo;
                write_query(
                    buffer,
                    shot.source,
                    shot.target,
                    query,
                    cookie,
                    shot.ip_id(cookie),
                )
            }
            ProtocolProbe::Tcp => self.tcp.stamp(to(TCP_SCTP_PORT), keys, buffer),
            ProtocolProbe::Udp => self.udp.stamp(to(UDP_PORT), keys, buffer),
            ProtocolProbe::Sctp => self.sctp.stamp(to(TCP_SCTP_PORT), keys, buffer),
            ProtocolProbe::Bare => {
                let cookie = keys.jar.cookie(shot.source, shot.target, 0, shot.port);
                write_bare(
                    buffer,
                    shot.source,
                    shot.target,
                    protocol,
                    cookie,
                    shot.ip_id(cookie),
                )
            }
        }
    }

    fn judge(&self, bytes: &[u8], keys: &Keys<'_>) -> Judged {
        if let Some(answer) = parse_query_reply(bytes) {
            if answer.query != IcmpQuery::Echo {
                return Judged::Unrelated;
            }
            let protocol = echo_protocol(answer.src.is_ipv6());
            if answer.cookie
                != keys
                    .jar
                    .cookie(answer.dst, answer.src, 0, u16::from(protocol))
            {
                return Judged::Invalid;
            }
            return proves(
                answer.src,
                protocol,
                PortState::Open,
                Reason::EchoReply,
                answer.ttl,
            );
        }
        let Ok(packet) = parse_reply(bytes) else {
            return Judged::Invalid;
        };
        match packet {
            Packet::Tcp { .. } => match self.tcp.judge_parsed(packet, keys) {
                Judged::OwnProbe => Judged::OwnProbe,
                Judged::Answer(a) if a.port == TCP_SCTP_PORT => {
                    let ttl = a.reply.ttl.unwrap_or(0);
                    proves(
                        a.target,
                        ip_protocol::TCP,
                        PortState::Open,
                        Reason::ProtoResponse,
                        ttl,
                    )
                }
                _ => Judged::Invalid,
            },
            Packet::Udp {
                src,
                dst,
                ttl,
                src_port,
                dst_port,
                payload,
            } => {
                if !keys.ports.answers((src_port, dst_port)) {
                    return Judged::Unrelated;
                }
                let reply = datagram_reply(
                    keys.jar,
                    (src, src_port),
                    (dst, dst_port),
                    ttl,
                    payload.of(bytes),
                );
                match reply {
                    Some(reply) => Judged::Answer(Answer {
                        target: src,
                        port: u16::from(ip_protocol::UDP),
                        reply,
                    }),
                    None => Judged::Invalid,
                }
            }
            Packet::Sctp {
                src,
                dst,
                ttl,
                src_port,
                dst_port,
                vtag,
                chunk,
            } => {
                if !keys.ports.answers((src_port, dst_port)) {
                    return Judged::Unrelated;
                }
                // An INIT's answer, either way, is SCTP spoken.
                let read = super::sctp::reading(
                    keys.jar,
                    (src, src_port),
                    (dst, dst_port),
                    vtag,
                    chunk,
                    SctpProbe::Init,
                );
                match read {
                    Some(_) => proves(
                        src,
                        ip_protocol::SCTP,
                        PortState::Open,
                        Reason::ProtoResponse,
                        ttl,
                    ),
                    None => Judged::Invalid,
                }
            }
            Packet::IcmpError {
                from,
                ttl,
                v6,
                icmp_type,
                code,
                quoted,
            } => {
                let reason = unreachable_reason(v6, icmp_type, code);
                let Some((protocol, reason)) = Self::quoted_probe(&quoted, keys).zip(reason) else {
                    return Judged::Invalid;
                };
                let from_target = from == quoted.dst;
                let state = match reason {
                    Reason::ProtoUnreach | Reason::ParamProblem if from_target => PortState::Closed,
                    Reason::PortUnreach if from_target && protocol == ip_protocol::UDP => {
                        PortState::Open
                    }
                    _ => PortState::Filtered,
                };
                proves(quoted.dst, protocol, state, reason, ttl)
            }
            _ => Judged::Unrelated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cookie::CookieJar;

    use crate::probe::fixtures::{self, *};

    const OURS: u16 = 43_000;

    fn keys(jar: &CookieJar) -> Keys<'_> {
        fixtures::keys(jar, OURS)
    }

    fn read(judged: Judged) -> Option<(u16, PortState, Reason)> {
        match judged {
            Judged::Answer(a) => Some((a.port, a.reply.state, a.reply.reason)),
            _ => None,
        }
    }

    /// Our probe of `protocol` to `target`, as sent.
    fn probe(
        module: &mut IpProtocolProbes,
        keys: &Keys<'_>,
        us: IpAddr,
        target: IpAddr,
        protocol: u8,
    ) -> Vec<u8> {
        let mut buf = [0u8; 1600];
        let shot = Shot {
            source: us,
            target,
            port: u16::from(protocol),
            try_no: 0,
        };
        let len = module.stamp(shot, keys, &mut buf).unwrap();
        buf[..len].to_vec()
    }

    #[test]
    fn each_protocol_reads_open_closed_and_filtered() {
        let jar = CookieJar::new(31, 32);
        let keys = keys(&jar);
        let mut module = IpProtocolProbes::default();
        for (us, target) in [(V4_US, V4_TARGET), (V6_US, V6_TARGET)] {
            let v6 = us.is_ipv6();
            // A bare header (protocol 47, GRE): the host's protocol
            // unreachable = closed, a router's = filtered.
            let gre = probe(&mut module, &keys, us, target, 47);
            let proto_unreach = if v6 { (4, 1) } else { (3, 2) };
            let closed = icmp_unreachable(target, us, proto_unreach, &gre);
            let want_reason = if v6 {
                Reason::ParamProblem
            } else {
                Reason::ProtoUnreach
            };
            assert_eq!(
                read(module.judge(&closed, &keys)),
                Some((47, PortState::Closed, want_reason))
            );
            let router = if v6 { V6_US } else { V4_US };
            let from_router = icmp_unreachable(router, us, proto_unreach, &gre);
            assert_eq!(
                read(module.judge(&from_router, &keys)),
                Some((47, PortState::Filtered, want_reason))
            );
            // A quote whose cookie is not ours.
            let mut forged = gre.clone();
            let at = transport_offset(&forged);
            forged[at] ^= 0x55;
            let forged = icmp_unreachable(target, us, proto_unreach, &forged);
            assert_eq!(module.judge(&forged, &keys), Judged::Invalid);

            // UDP: the host's port unreachable proves UDP spoken.
            let udp_probe = probe(&mut module, &keys, us, target, 17);
            let port_unreach = icmp_unreachable(target, us, port_unreachable(us), &udp_probe);
            assert_eq!(
                read(module.judge(&port_unreach, &keys)),
                Some((17, PortState::Open, Reason::PortUnreach))
            );

            // TCP: a RST to the ACK from port 80.
            let cookie = jar.cookie(us, target, OURS, TCP_SCTP_PORT);
            let rst = ip(
                target,
                us,
                6,
                61,
                &tcp(TCP_SCTP_PORT, OURS, cookie, 0, RST, 0),
            );
            assert_eq!(
                read(module.judge(&rst, &keys)),
                Some((6, PortState::Open, Reason::ProtoResponse))
            );
            let wrong = ip(
                target,
                us,
                6,
                61,
                &tcp(TCP_SCTP_PORT, OURS, cookie ^ 1, 0, RST, 0),
            );
            assert_eq!(module.judge(&wrong, &keys), Judged::Invalid);

            // Truncated: never an answer.
            for end in 0..closed.len() {
                assert!(
                    !matches!(module.judge(&closed[..end], &keys), Judged::Answer(_)),
                    "{end}"
                );
            }
        }
        assert_eq!(module.silent_state(), PortState::OpenFiltered);
    }

    #[test]
    fn an_echo_reply_with_the_cookie_proves_icmp() {
        let jar = CookieJar::new(33, 34);
        let keys = keys(&jar);
        let cookie = jar.cookie(V4_US, V4_TARGET, 0, 1);
        let mut echo = vec![0, 0, 0, 0];
        echo.extend_from_slice(&cookie.to_be_bytes());
        let reply = ip(V4_TARGET, V4_US, 1, 61, &echo);
        let module = IpProtocolProbes::default();
        assert_eq!(
            read(module.judge(&reply, &keys)),
            Some((1, PortState::Open, Reason::EchoReply))
        );
        let mut forged = echo.clone();
        forged[7] ^= 1;
        let forged = ip(V4_TARGET, V4_US, 1, 61, &forged);
        assert_eq!(module.judge(&forged, &keys), Judged::Invalid);
    }
}
