//! Host discovery's probe module (`-PE -PP -PM -PS -PA -PU -PY`): the
//! scheduler's "ports" are indexes into the list of pings. ICMP queries
//! carry the cookie in their identifier and sequence number; TCP, UDP and
//! SCTP pings are the probes of those modules, to the ping's port.
//!
//! Any answer from the host itself proves it up: an echo, timestamp or
//! address mask reply, a SYN-ACK or RST, a UDP answer, an SCTP INIT ACK
//! or ABORT, or the host's own ICMP unreachable quoting a UDP or SCTP
//! ping (its port or protocol unreachable); errors from routers on the way
//! count as silence. ARP and Neighbor Discovery (`-PR`) are link-layer
//! frames and stay with the raw engine, which knows the segment.
//!
//! Read first: nmap's "Host Discovery" chapter; RFC 792 (echo, timestamp
//! and address mask), RFC 4443 (ICMPv6 echo).

use std::net::IpAddr;

use portolan_engine::{PortState, Reason, Reply};
use portolan_wire::{
    IcmpQuery, Reply as Packet, SctpProbe, StampError, ip_protocol, parse_query_reply, parse_reply,
    write_query,
};

use super::sctp::SctpProbes;
use super::tcp::{TcpProbes, TcpScan};
use super::udp::{UdpProbes, datagram_reply};
use super::{Answer, Judged, Keys, ProbeModule, Shot, unreachable_reason};

/// A host discovery probe of the raw engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingProbe {
    /// `-PE`: ICMP or ICMPv6 echo request; the echo reply proves the host.
    Echo,
    /// `-PP`: ICMP timestamp request (IPv4 only; skipped for IPv6).
    Timestamp,
    /// `-PS<port>`: a SYN; a SYN-ACK or a RST proves the host.
    Syn(u16),
    /// `-PA<port>`: a lone ACK; the RST it draws proves the host.
    Ack(u16),
    /// `-PM`: ICMP address mask request (IPv4 only; skipped for IPv6).
    AddressMask,
    /// `-PU<port>`: a UDP datagram (with the port's payload); any UDP
    /// answer, or the host's own port unreachable, proves it.
    Udp(u16),
    /// `-PY<port>`: an SCTP INIT; an INIT ACK or ABORT proves the host.
    Sctp(u16),
    /// `-PR`: an ARP request (IPv4) or Neighbor Solicitation (IPv6), for
    /// hosts on a directly attached segment, where it replaces the other
    /// probes (a host answers it even when its firewall drops all IP).
    Neighbour,
}

impl PingProbe {
    /// The scan whose probe and reading of answers a TCP ping shares.
    pub fn tcp(self) -> Option<(TcpScan, u16)> {
        match self {
            PingProbe::Syn(port) => Some((TcpScan::Syn, port)),
            PingProbe::Ack(port) => Some((TcpScan::Ack, port)),
            _ => None,
        }
    }
}

/// Probes of host discovery, and the reading of their answers.
#[derive(Debug)]
pub struct DiscoveryProbes {
    pings: Vec<PingProbe>,
    syn: TcpProbes,
    ack: TcpProbes,
    udp: UdpProbes,
    sctp: SctpProbes,
}

impl DiscoveryProbes {
    /// The probes of `pings`, in that order.
    pub fn new(pings: Vec<PingProbe>) -> DiscoveryProbes {
        DiscoveryProbes {
            pings,
            syn: TcpProbes::new(TcpScan::Syn, None),
            ack: TcpProbes::new(TcpScan::Ack, None),
            udp: UdpProbes::default(),
            sctp: SctpProbes::new(SctpProbe::Init),
        }
    }

    /// The pings, whose indexes are the scheduler's "ports".
    pub fn pings(&self) -> &[PingProbe] {
        &self.pings
    }

    /// The index of `ping` among the pings.
    fn index(&self, ping: PingProbe) -> Option<u16> {
        self.pings.iter().position(|p| *p == ping).map(|i| i as u16)
    }

    /// An answer proving the host up to ping `index`.
    fn up(target: IpAddr, index: u16, reason: Reason, ttl: Option<u8>) -> Judged {
        Judged::Answer(Answer {
            target,
            port: index,
            reply: Reply {
                state: PortState::Open,
                reason,
                ttl,
            },
        })
    }

    /// A TCP ping's answer.
    fn tcp_answer(&self, packet: Packet, keys: &Keys<'_>) -> Judged {
        let readings = [&self.syn, &self.ack].map(|m| m.judge_parsed(packet, keys));
        if readings.contains(&Judged::OwnProbe) {
            return Judged::OwnProbe;
        }
        for (index, ping) in self.pings.iter().enumerate() {
            let Some((scan, port)) = ping.tcp() else {
                continue;
            };
            let reading = readings[usize::from(scan != TcpScan::Syn)];
            if let Judged::Answer(a) = reading
                && a.port == port
            {
                return Self::up(a.target, index as u16, a.reply.reason, a.reply.ttl);
            }
        }
        Judged::Invalid
    }

    /// A UDP or SCTP ping's answer, or an ICMP error from the host itself
    /// quoting one.
    fn other_answer(&self, packet: Packet, bytes: &[u8], keys: &Keys<'_>) -> Judged {
        let (target, ping, reason, ttl) = match packet {
            Packet::Udp {
                src,
                dst,
                ttl,
                src_port,
                dst_port,
                payload,
            } if keys.ports.answers((src_port, dst_port)) => {
                let Some(reply) = datagram_reply(
                    keys.jar,
                    (src, src_port),
                    (dst, dst_port),
                    ttl,
                    payload.of(bytes),
                ) else {
                    return Judged::Unrelated;
                };
                (src, PingProbe::Udp(src_port), reply.reason, ttl)
            }
            Packet::Sctp {
                src,
                dst,
                ttl,
                src_port,
                dst_port,
                vtag,
                chunk,
            } if keys.ports.contains(dst_port) => {
                // An INIT ACK or an ABORT: the host is up either way.
                let read = super::sctp::reading(
                    keys.jar,
                    (src, src_port),
                    (dst, dst_port),
                    vtag,
                    chunk,
                    SctpProbe::Init,
                );
                let Some((_, reason)) = read else {
                    return Judged::Unrelated;
                };
                (src, PingProbe::Sctp(src_port), reason, ttl)
            }
            Packet::IcmpError {
                from,
                ttl,
                v6,
                icmp_type,
                code,
                quoted,
            } if from == quoted.dst && keys.ports.contains(quoted.src_port) => {
                let Some(reason) = unreachable_reason(v6, icmp_type, code) else {
                    return Judged::Unrelated;
                };
                let ping = match quoted.protocol {
                    ip_protocol::UDP => PingProbe::Udp(quoted.dst_port),
                    ip_protocol::SCTP => PingProbe::Sctp(quoted.dst_port),
                    _ => return Judged::Unrelated,
                };
                (quoted.dst, ping, reason, ttl)
            }
            _ => return Judged::Unrelated,
        };
        match self.index(ping) {
            Some(index) => Self::up(target, index, reason, Some(ttl)),
            None => Judged::Invalid,
        }
    }
}

impl ProbeModule for DiscoveryProbes {
    fn answer_protocols(&self) -> &'static [u8] {
        &super::EVERY_ANSWER
    }

    /// A host no ping reached is down; for one ping, silence is "no
    /// answer" (the scheduler reads it as filtered).
    fn silent_state(&self) -> PortState {
        PortState::Filtered
    }

    /// `shot.port` is the ping's index. Nothing is written (length 0) for
    /// a ping without a form in the target's IP version (timestamp and
    /// address mask over IPv6) or of the link layer (`-PR`, the raw
    /// engine's).
    fn stamp(
        &mut self,
        shot: Shot,
        keys: &Keys<'_>,
        buffer: &mut [u8],
    ) -> Result<usize, StampError> {
        let Some(&ping) = self.pings.get(usize::from(shot.port)) else {
            return Ok(0);
        };
        let query = match ping {
            PingProbe::Syn(port) => return self.syn.stamp(Shot { port, ..shot }, keys, buffer),
            PingProbe::Ack(port) => return self.ack.stamp(Shot { port, ..shot }, keys, buffer),
            PingProbe::Udp(port) => return self.udp.stamp(Shot { port, ..shot }, keys, buffer),
            PingProbe::Sctp(port) => return self.sctp.stamp(Shot { port, ..shot }, keys, buffer),
            PingProbe::Neighbour => return Ok(0),
            PingProbe::Timestamp | PingProbe::AddressMask if shot.target.is_ipv6() => return Ok(0),
            PingProbe::Timestamp => IcmpQuery::Timestamp,
            PingProbe::AddressMask => IcmpQuery::AddressMask,
            PingProbe::Echo => IcmpQuery::Echo,
        };
        let cookie = keys.jar.cookie(shot.source, shot.target, 0, shot.port);
        write_query(
            buffer,
            shot.source,
            shot.target,
            query,
            cookie,
            shot.ip_id(cookie),
        )
    }

    fn judge(&self, bytes: &[u8], keys: &Keys<'_>) -> Judged {
        if let Some(answer) = parse_query_reply(bytes) {
            let (want, reason) = match answer.query {
                IcmpQuery::Echo => (PingProbe::Echo, Reason::EchoReply),
                IcmpQuery::Timestamp => (PingProbe::Timestamp, Reason::TimestampReply),
                IcmpQuery::AddressMask => (PingProbe::AddressMask, Reason::MaskReply),
            };
            let valid = self
                .index(want)
                .filter(|&i| answer.cookie == keys.jar.cookie(answer.dst, answer.src, 0, i));
            return match valid {
                Some(index) => Self::up(answer.src, index, reason, Some(answer.ttl)),
                None => Judged::Invalid,
            };
        }
        match parse_reply(bytes) {
            Ok(packet @ Packet::Tcp { .. }) => self.tcp_answer(packet, keys),
            Ok(other) => self.other_answer(other, bytes, keys),
            Err(_) => Judged::Unrelated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cookie::CookieJar;

    use crate::probe::fixtures::{self, *};

    const OURS: u16 = 44_000;

    fn keys(jar: &CookieJar) -> Keys<'_> {
        fixtures::keys(jar, OURS)
    }

    fn read(judged: Judged) -> Option<(u16, Reason)> {
        match judged {
            Judged::Answer(a) => Some((a.port, a.reply.reason)),
            _ => None,
        }
    }

    fn pings() -> DiscoveryProbes {
        DiscoveryProbes::new(vec![
            PingProbe::Echo,
            PingProbe::Syn(443),
            PingProbe::Ack(80),
            PingProbe::Timestamp,
            PingProbe::Udp(40125),
        ])
    }

    #[test]
    fn each_ping_is_proved_by_its_own_answer() {
        let jar = CookieJar::new(41, 42);
        let keys = keys(&jar);
        let mut module = pings();
        let (us, target) = (V4_US, V4_TARGET);
        // Echo reply with the cookie of ping 0.
        let cookie = jar.cookie(us, target, 0, 0);
        let mut echo = vec![0, 0, 0, 0];
        echo.extend_from_slice(&cookie.to_be_bytes());
        let reply = ip(target, us, 1, 61, &echo);
        assert_eq!(
            read(module.judge(&reply, &keys)),
            Some((0, Reason::EchoReply))
        );
        let mut forged = echo.clone();
        forged[4] ^= 1;
        assert_eq!(
            module.judge(&ip(target, us, 1, 61, &forged), &keys),
            Judged::Invalid
        );

        // SYN-ACK from 443: ping 1; RST to the ACK from 80: ping 2.
        let syn_cookie = jar.cookie(us, target, OURS, 443);
        let syn_ack = ip(
            target,
            us,
            6,
            61,
            &tcp(443, OURS, 1, syn_cookie.wrapping_add(1), SYN | ACK, 100),
        );
        assert_eq!(
            read(module.judge(&syn_ack, &keys)),
            Some((1, Reason::SynAck))
        );
        let ack_cookie = jar.cookie(us, target, OURS, 80);
        let rst = ip(target, us, 6, 61, &tcp(80, OURS, ack_cookie, 0, RST, 0));
        assert_eq!(read(module.judge(&rst, &keys)), Some((2, Reason::Reset)));
        // The SYN-ACK from a port no ping went to.
        let other = ip(
            target,
            us,
            6,
            61,
            &tcp(22, OURS, 1, syn_cookie.wrapping_add(1), SYN | ACK, 100),
        );
        assert_eq!(module.judge(&other, &keys), Judged::Invalid);

        // The host's own port unreachable quoting the UDP ping: up; the
        // same from a router: silence.
        let mut udp_probe = [0u8; 1600];
        let shot = Shot {
            source: us,
            target,
            port: 4,
            try_no: 0,
        };
        let len = module.stamp(shot, &keys, &mut udp_probe).unwrap();
        let unreach = icmp_unreachable(target, us, port_unreachable(us), &udp_probe[..len]);
        assert_eq!(
            read(module.judge(&unreach, &keys)),
            Some((4, Reason::PortUnreach))
        );
        let from_router = icmp_unreachable(V4_US, us, port_unreachable(us), &udp_probe[..len]);
        assert_eq!(module.judge(&from_router, &keys), Judged::Unrelated);

        // Truncated: never an answer.
        for end in 0..syn_ack.len() {
            assert!(
                !matches!(module.judge(&syn_ack[..end], &keys), Judged::Answer(_)),
                "{end}"
            );
        }
    }

    #[test]
    fn pings_without_an_ipv6_form_send_nothing() {
        let jar = CookieJar::new(43, 44);
        let keys = keys(&jar);
        let mut module = pings();
        let mut buf = [0u8; 128];
        let shot = |port| Shot {
            source: V6_US,
            target: V6_TARGET,
            port,
            try_no: 0,
        };
        assert_eq!(module.stamp(shot(3), &keys, &mut buf), Ok(0), "timestamp");
        assert!(module.stamp(shot(0), &keys, &mut buf).unwrap() > 0, "echo");
        assert_eq!(
            module.stamp(shot(9), &keys, &mut buf),
            Ok(0),
            "no such ping"
        );
    }
}
