//! The TCP probe module: SYN (`-sS`), ACK (`-sA`), window (`-sW`), FIN
//! (`-sF`), NULL (`-sN`), Xmas (`-sX`) and Maimon (`-sM`) probes, custom
//! control bits (`--scanflags`), and the TCP pings (`-PS`, `-PA`).
//!
//! The cookie is the sequence number, and the acknowledgment number too
//! when the probe carries ACK. An answer with ACK acknowledges the
//! cookie plus one for a SYN or a FIN (RFC 9293 section 3.4); a RST
//! without ACK answers a probe that carried ACK and takes its sequence
//! number from the probe's acknowledgment number (RFC 9293 section
//! 3.10.7.1): the cookie again. An ICMP unreachable counts only when the
//! TCP header it quotes carries the cookie as its sequence number.
//!
//! States (nmap's): for SYN, SYN-ACK = open (`syn-ack`), RST = closed
//! (`reset`); for ACK, RST = unfiltered; for window, RST with a non-zero
//! window = open, else closed; for FIN, NULL, Xmas and Maimon, RST =
//! closed and silence = open|filtered; an ICMP unreachable = filtered with
//! its code as reason. The answer's TTL is kept.
//!
//! Read first: RFC 9293 section 3.10.7 (what a closed port answers), and
//! nmap's chapter on port scanning techniques.

use std::collections::HashMap;
use std::net::IpAddr;

use portolan_engine::{PortState, Reason};
use portolan_wire::{Reply as Packet, StampError, SynTemplate, TcpFlags, ip_protocol, parse_reply};

use super::{Judged, Keys, ProbeModule, Shot, answer};

/// The raw TCP scans: one engine, one template each, and nmap's reading
/// of the answers (RFC 9293 §3.10.7: a closed port answers anything but a
/// RST with a RST; an open one silently drops segments without SYN, RST or
/// ACK; any port answers a lone ACK with a RST).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TcpScan {
    /// `-sS`: SYN-ACK = open, RST = closed, silence = filtered.
    #[default]
    Syn,
    /// `-sA`: RST = unfiltered, silence = filtered (maps firewalls).
    Ack,
    /// `-sW`: an ACK scan that reads the RST's window: non-zero = open,
    /// zero = closed (on the few systems that differ; Linux says zero).
    Window,
    /// `-sF`: FIN; RST = closed, silence = open|filtered.
    Fin,
    /// `-sN`: no flags; as FIN.
    Null,
    /// `-sX`: FIN, PSH and URG; as FIN.
    Xmas,
    /// `-sM`: FIN and ACK; as FIN (BSD stacks drop it on open ports; most
    /// others answer RST everywhere).
    Maimon,
}

impl TcpScan {
    /// The probe's control bits.
    pub fn flags(self) -> TcpFlags {
        let bits = match self {
            TcpScan::Syn => TcpFlags::SYN.bits(),
            TcpScan::Ack | TcpScan::Window => TcpFlags::ACK.bits(),
            TcpScan::Fin => TcpFlags::FIN.bits(),
            TcpScan::Null => 0,
            TcpScan::Xmas => TcpFlags::FIN.bits() | TcpFlags::PSH.bits() | TcpFlags::URG.bits(),
            TcpScan::Maimon => TcpFlags::FIN.bits() | TcpFlags::ACK.bits(),
        };
        TcpFlags::from_bits(bits)
    }

    /// nmap's name of the scan (XML `scaninfo type`).
    pub fn name(self) -> &'static str {
        match self {
            TcpScan::Syn => "syn",
            TcpScan::Ack => "ack",
            TcpScan::Window => "window",
            TcpScan::Fin => "fin",
            TcpScan::Null => "null",
            TcpScan::Xmas => "xmas",
            TcpScan::Maimon => "maimon",
        }
    }

    /// The state of a port that never answered.
    pub fn silent_state(self) -> PortState {
        match self {
            TcpScan::Syn | TcpScan::Ack | TcpScan::Window => PortState::Filtered,
            TcpScan::Fin | TcpScan::Null | TcpScan::Xmas | TcpScan::Maimon => {
                PortState::OpenFiltered
            }
        }
    }

    /// What a valid TCP answer with `flags` and `window` says.
    pub fn read(self, flags: TcpFlags, window: u16) -> Option<(PortState, Reason)> {
        if self == TcpScan::Syn && flags.is_syn_ack() {
            return Some((PortState::Open, Reason::SynAck));
        }
        if !flags.is_rst() {
            return None;
        }
        let state = match self {
            TcpScan::Ack => PortState::Unfiltered,
            TcpScan::Window if window > 0 => PortState::Open,
            _ => PortState::Closed,
        };
        Some((state, Reason::Reset))
    }
}

/// Probes of one TCP scan, and the reading of their answers.
#[derive(Debug)]
pub struct TcpProbes {
    scan: TcpScan,
    /// The probes' control bits: the scan's, or `--scanflags`.
    sent: TcpFlags,
    /// One template per source address (ours, or a decoy's).
    templates: HashMap<IpAddr, SynTemplate>,
}

impl TcpProbes {
    /// Probes of `scan`, with `flags` instead of the scan's own bits when
    /// given (`--scanflags`; answers are still read as `scan` says).
    pub fn new(scan: TcpScan, flags: Option<TcpFlags>) -> TcpProbes {
        TcpProbes {
            scan,
            sent: flags.unwrap_or(scan.flags()),
            templates: HashMap::new(),
        }
    }

    /// The scan whose reading of answers applies.
    pub fn scan(&self) -> TcpScan {
        self.scan
    }

    /// The probes' control bits.
    pub fn sent(&self) -> TcpFlags {
        self.sent
    }

    /// Whether `packet` is one of our own probes (our port, our bits),
    /// seen arriving when the target is on loopback.
    fn is_own_probe(&self, packet: &Packet, keys: &Keys<'_>) -> bool {
        matches!(
            *packet,
            Packet::Tcp { src_port, flags, .. }
                if keys.ports.contains(src_port) && flags == self.sent
        )
    }

    /// What an already parsed packet proves (see [`ProbeModule::judge`]).
    pub fn judge_parsed(&self, packet: Packet, keys: &Keys<'_>) -> Judged {
        if self.is_own_probe(&packet, keys) {
            return Judged::OwnProbe;
        }
        match packet {
            Packet::Tcp {
                src,
                dst,
                ttl,
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                window,
                ..
            } => {
                let cookie = keys.jar.cookie(dst, src, dst_port, src_port);
                let valid = if flags.contains(TcpFlags::ACK) {
                    let consumed = u32::from(self.sent.contains(TcpFlags::SYN))
                        + u32::from(self.sent.contains(TcpFlags::FIN));
                    ack == cookie.wrapping_add(consumed)
                } else {
                    self.sent.contains(TcpFlags::ACK) && seq == cookie
                };
                match self.scan.read(flags, window) {
                    Some((state, reason)) if valid => answer(src, src_port, state, reason, ttl),
                    _ => Judged::Invalid,
                }
            }
            Packet::IcmpError {
                ttl,
                v6,
                icmp_type,
                code,
                quoted,
                ..
            } if quoted.protocol == ip_protocol::TCP => {
                let expected =
                    keys.jar
                        .cookie(quoted.src, quoted.dst, quoted.src_port, quoted.dst_port);
                if quoted.seq != Some(expected) {
                    return Judged::Invalid;
                }
                // Destination unreachables (and IPv6's unrecognised next
                // header) only, with nmap's IPv4 codes.
                let reason = if v6 {
                    // Not a time exceeded (type 3): it says nothing of the
                    // port.
                    Reason::from_icmpv6(icmp_type, code).filter(|_| icmp_type != 3)
                } else if icmp_type == 3 && matches!(code, 0 | 1 | 2 | 3 | 9 | 10 | 13) {
                    Reason::from_icmpv4(icmp_type, code)
                } else {
                    None
                };
                match reason {
                    Some(reason) => answer(
                        quoted.dst,
                        quoted.dst_port,
                        PortState::Filtered,
                        reason,
                        ttl,
                    ),
                    None => Judged::Invalid,
                }
            }
            Packet::IcmpError { .. } => Judged::Invalid,
            _ => Judged::Unrelated,
        }
    }
}

impl ProbeModule for TcpProbes {
    fn answer_protocols(&self) -> &'static [u8] {
        &[ip_protocol::TCP]
    }

    fn silent_state(&self) -> PortState {
        self.scan.silent_state()
    }

    /// nmap's shapes: a SYN with the MSS option, the others without
    /// options; the cookie as sequence number.
    fn stamp(
        &mut self,
        shot: Shot,
        keys: &Keys<'_>,
        buffer: &mut [u8],
    ) -> Result<usize, StampError> {
        let flags = self.sent;
        let base = keys.ports.base;
        let template = self.templates.entry(shot.source).or_insert_with(|| {
            let shape = portolan_wire::SynOptions {
                flags,
                mss: (flags == TcpFlags::SYN).then_some(1460),
                ..portolan_wire::SynOptions::default()
            };
            SynTemplate::with_options(shot.source, base, shape)
        });
        let port = keys.ports.port_for(shot.try_no);
        let seq = keys.jar.cookie(shot.source, shot.target, port, shot.port);
        template.stamp(buffer, shot.target, port, shot.port, seq, shot.ip_id(seq))
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
    use crate::cookie::CookieJar;
    use crate::probe::Answer;
    use crate::probe::fixtures::{self, *};

    const OURS: u16 = 40_000;

    fn keys(jar: &CookieJar) -> Keys<'_> {
        fixtures::keys(jar, OURS)
    }

    /// The answer of `target`:`port` to our probe's try 0, with `flags`,
    /// `seq` and `ack` as given.
    fn tcp_answer(target: IpAddr, us: IpAddr, port: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
        ip(target, us, 6, 61, &tcp(port, OURS, seq, ack, flags, 29_200))
    }

    fn filtered(target: IpAddr, port: u16, reason: Reason) -> Judged {
        Judged::Answer(Answer {
            target,
            port,
            reply: portolan_engine::Reply {
                state: PortState::Filtered,
                reason,
                ttl: Some(61),
            },
        })
    }

    #[test]
    fn syn_probes_read_syn_ack_rst_and_icmp_over_both_families() {
        let jar = CookieJar::new(1, 2);
        let keys = keys(&jar);
        let mut module = TcpProbes::new(TcpScan::Syn, None);
        for (us, target) in [(V4_US, V4_TARGET), (V6_US, V6_TARGET)] {
            let cookie = jar.cookie(us, target, OURS, 22);
            // The probe itself: a SYN with the cookie, and it reads as our
            // own probe when it comes back on loopback.
            let mut probe = [0u8; 80];
            let shot = Shot {
                source: us,
                target,
                port: 22,
                try_no: 0,
            };
            let len = module.stamp(shot, &keys, &mut probe).unwrap();
            assert_eq!(module.judge(&probe[..len], &keys), Judged::OwnProbe);

            let syn_ack = tcp_answer(target, us, 22, 7, cookie.wrapping_add(1), SYN | ACK);
            assert_eq!(
                module.judge(&syn_ack, &keys),
                Judged::Answer(Answer {
                    target,
                    port: 22,
                    reply: portolan_engine::Reply {
                        state: PortState::Open,
                        reason: Reason::SynAck,
                        ttl: Some(61),
                    },
                })
            );
            let rst = tcp_answer(target, us, 22, 0, cookie.wrapping_add(1), RST | ACK);
            assert_eq!(
                proves(module.judge(&rst, &keys)),
                Some((PortState::Closed, Reason::Reset))
            );

            // An ICMP unreachable quoting the probe.
            let unreachable = icmp_unreachable(target, us, prohibited(us), &probe[..len]);
            assert_eq!(
                module.judge(&unreachable, &keys),
                filtered(target, 22, Reason::AdminProhibited)
            );

            // Forged: a wrong acknowledgment, a quote without our cookie.
            let forged = tcp_answer(target, us, 22, 7, cookie.wrapping_add(2), SYN | ACK);
            assert_eq!(module.judge(&forged, &keys), Judged::Invalid);
            let mut other = probe[..len].to_vec();
            let seq_at = transport_offset(&other) + 4;
            other[seq_at] ^= 0xff;
            let forged = icmp_unreachable(target, us, prohibited(us), &other);
            assert_eq!(module.judge(&forged, &keys), Judged::Invalid);

            // Truncated anywhere: never an answer, never a panic.
            for end in 0..syn_ack.len() {
                assert!(!matches!(
                    module.judge(&syn_ack[..end], &keys),
                    Judged::Answer(_)
                ));
            }
            for end in 0..unreachable.len() {
                let _ = module.judge(&unreachable[..end], &keys);
            }
        }
    }

    #[test]
    fn each_scan_reads_a_rst_as_nmap_does() {
        let jar = CookieJar::new(3, 4);
        let keys = keys(&jar);
        let cookie = jar.cookie(V4_US, V4_TARGET, OURS, 80);
        // A probe with ACK draws a RST without ACK whose sequence number
        // is the cookie; one without ACK draws RST-ACK acknowledging it
        // (plus one for a FIN).
        let with_window = |mut packet: Vec<u8>, window: u16| {
            let at = transport_offset(&packet) + 14;
            packet[at..at + 2].copy_from_slice(&window.to_be_bytes());
            packet
        };
        let rst_seq = with_window(tcp_answer(V4_TARGET, V4_US, 80, cookie, 0, RST), 0);
        let window_rst = with_window(rst_seq.clone(), 512);
        let rst_ack = |plus: u32| {
            tcp_answer(
                V4_TARGET,
                V4_US,
                80,
                0,
                cookie.wrapping_add(plus),
                RST | ACK,
            )
        };
        let cases = [
            (
                TcpScan::Ack,
                rst_seq.clone(),
                Some((PortState::Unfiltered, Reason::Reset)),
            ),
            (
                TcpScan::Window,
                rst_seq.clone(),
                Some((PortState::Closed, Reason::Reset)),
            ),
            (
                TcpScan::Window,
                window_rst,
                Some((PortState::Open, Reason::Reset)),
            ),
            (
                TcpScan::Maimon,
                rst_seq.clone(),
                Some((PortState::Closed, Reason::Reset)),
            ),
            (
                TcpScan::Fin,
                rst_ack(1),
                Some((PortState::Closed, Reason::Reset)),
            ),
            (
                TcpScan::Xmas,
                rst_ack(1),
                Some((PortState::Closed, Reason::Reset)),
            ),
            (
                TcpScan::Null,
                rst_ack(0),
                Some((PortState::Closed, Reason::Reset)),
            ),
            // A NULL probe consumes no sequence number: cookie + 1 is wrong.
            (TcpScan::Null, rst_ack(1), None),
            // A SYN probe carries no ACK: a bare RST cannot answer it.
            (TcpScan::Syn, rst_seq, None),
        ];
        for (scan, packet, want) in cases {
            let module = TcpProbes::new(scan, None);
            assert_eq!(proves(module.judge(&packet, &keys)), want, "{scan:?}");
        }
        assert_eq!(
            TcpProbes::new(TcpScan::Fin, None).silent_state(),
            PortState::OpenFiltered
        );
        assert_eq!(
            TcpProbes::new(TcpScan::Syn, None).silent_state(),
            PortState::Filtered
        );
    }

    #[test]
    fn custom_flags_are_sent_and_read_as_the_scan_says() {
        let jar = CookieJar::new(5, 6);
        let keys = keys(&jar);
        // --scanflags SYNFIN read as a SYN scan: the answer acknowledges
        // both the SYN and the FIN.
        let module = TcpProbes::new(TcpScan::Syn, Some(TcpFlags::from_bits(SYN | FIN)));
        let cookie = jar.cookie(V4_US, V4_TARGET, OURS, 443);
        let syn_ack = tcp_answer(V4_TARGET, V4_US, 443, 9, cookie.wrapping_add(2), SYN | ACK);
        assert_eq!(
            proves(module.judge(&syn_ack, &keys)),
            Some((PortState::Open, Reason::SynAck))
        );
        let one = tcp_answer(V4_TARGET, V4_US, 443, 9, cookie.wrapping_add(1), SYN | ACK);
        assert_eq!(module.judge(&one, &keys), Judged::Invalid);
    }

    #[test]
    fn packets_of_other_protocols_are_unrelated() {
        let jar = CookieJar::new(7, 8);
        let keys = keys(&jar);
        let module = TcpProbes::new(TcpScan::Syn, None);
        let datagram = ip(V4_TARGET, V4_US, 17, 64, &udp(53, OURS, b"x"));
        assert_eq!(module.judge(&datagram, &keys), Judged::Unrelated);
    }
}
