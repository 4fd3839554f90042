//! OS detection's probe module (`-O`): the scheduler's "ports" are the
//! indexes of nmap's sixteen IPv4 probes (`portolan_os::probes`), so the
//! OS probes run on the scan engine like any scan: keyed numbers, windows,
//! retries, `--max-rate`, `--scan-delay` and `--host-timeout`.
//!
//! Each host has its own [`ProbeSet`], whose numbers (the base of its
//! sixteen source ports, the TCP sequence and acknowledgment numbers, the
//! IP IDs and the echo identifier) are keyed cookies of the run
//! ([`OsProbes::keyed_set`]). An answer is valid when it comes from the
//! host to the source port of one of its probes from the port that probe
//! went to (TCP), echoes the identifier (ICMP echo), or quotes U1's ports
//! (port unreachable); [`ProbeSet::which`] tells which probe it answers.
//! The answer's acknowledgment number is not required to acknowledge the
//! probe: what the host puts there is one of the fingerprint's tests.
//!
//! The module only stamps and validates; the OS phase keeps the answers'
//! packets (through the transport's observer) and computes the tests.
//! Contract: no allocation per probe or answer (one map lookup), no panic
//! on any packet. IPv4 only, as nmap's first-generation method.
//!
//! Read first: nmap.org/book/osdetect-methods.html ("Probes Sent").

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use portolan_engine::{PortState, Reason, Reply};
use portolan_os::ProbeSet;
use portolan_os::probes::{IE, PROBE_COUNT, U1};
use portolan_wire::{StampError, ip_protocol};

use super::{Answer, Judged, Keys, ProbeModule, Shot};
use crate::cookie::CookieJar;

/// nmap's probe sets for a batch of hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsProbes {
    sets: Vec<ProbeSet>,
    by_target: HashMap<Ipv4Addr, u32>,
    /// Hosts without an open TCP port: the probes that need one are not
    /// sent to them.
    no_open: Vec<bool>,
}

/// Probes that go to the open TCP port: the six SEQ probes, ECN and
/// T2-T4.
pub fn needs_open_port(index: usize) -> bool {
    matches!(index, 0..=5 | 8..=11)
}

impl OsProbes {
    /// The module for `sets` (one per host; a later set for the same host
    /// replaces an earlier), `open[i]` saying whether host `i` has an open
    /// TCP port.
    pub fn new(sets: Vec<ProbeSet>, open: Vec<bool>) -> OsProbes {
        let by_target = sets
            .iter()
            .enumerate()
            .map(|(i, s)| (s.target, i as u32))
            .collect();
        OsProbes {
            no_open: open.iter().map(|o| !o).collect(),
            sets,
            by_target,
        }
    }

    /// The probe set of `target` with its numbers keyed by the run's
    /// `jar` (the cookies of a probe from nowhere to the host's port 0 to
    /// 3): an answer cannot be forged without the key.
    pub fn keyed_set(
        jar: &CookieJar,
        target: Ipv4Addr,
        open: u16,
        closed: u16,
        closed_udp: u16,
    ) -> ProbeSet {
        let cookie = |n: u16| jar.cookie(IpAddr::V4(Ipv4Addr::UNSPECIFIED), target.into(), 0, n);
        let (a, b) = (cookie(0), cookie(1));
        ProbeSet {
            // Set from the route when stamped.
            source: Ipv4Addr::UNSPECIFIED,
            target,
            open,
            closed,
            closed_udp,
            // Sixteen ports per host, from 20,000 up to 59,999.
            base_port: 20_000 + (a % 2_500) as u16 * 16,
            seq: b,
            ack: cookie(2),
            ip_id: (a >> 16) as u16,
            icmp_id: cookie(3) as u16,
        }
    }

    /// The probe set of `target`, as last stamped (with our address).
    pub fn set(&self, target: Ipv4Addr) -> Option<&ProbeSet> {
        let &i = self.by_target.get(&target)?;
        self.sets.get(i as usize)
    }
}

impl ProbeModule for OsProbes {
    fn answer_protocols(&self) -> &'static [u8] {
        &[ip_protocol::ICMP, ip_protocol::TCP]
    }

    /// A probe that drew nothing: its tests are missing.
    fn silent_state(&self) -> PortState {
        PortState::Filtered
    }

    /// `shot.port` is the probe's index. Nothing is written (length 0, as
    /// if unanswered) for a host that is not in the batch, an IPv6 host,
    /// or a probe to an open port of a host without one.
    fn stamp(
        &mut self,
        shot: Shot,
        _keys: &Keys<'_>,
        buffer: &mut [u8],
    ) -> Result<usize, StampError> {
        let (IpAddr::V4(source), IpAddr::V4(target)) = (shot.source, shot.target) else {
            return Ok(0);
        };
        let index = usize::from(shot.port);
        let Some(&i) = self.by_target.get(&target) else {
            return Ok(0);
        };
        let i = i as usize;
        if index >= PROBE_COUNT || (self.no_open[i] && needs_open_port(index)) {
            return Ok(0);
        }
        let set = &mut self.sets[i];
        set.source = source;
        let available = buffer.len();
        set.write(index, buffer).ok_or(StampError::BufferTooSmall {
            needed: 328,
            available,
        })
    }

    fn judge(&self, packet: &[u8], _keys: &Keys<'_>) -> Judged {
        let Some(src) = packet.get(12..16) else {
            return Judged::Unrelated;
        };
        if packet.first().is_none_or(|b| b >> 4 != 4) {
            return Judged::Unrelated;
        }
        let target = Ipv4Addr::new(src[0], src[1], src[2], src[3]);
        let Some(set) = self.set(target) else {
            return Judged::Unrelated;
        };
        let Some(index) = set.which(packet) else {
            return Judged::Invalid;
        };
        let reason = match index {
            IE | 7 => Reason::EchoReply,
            U1 => Reason::PortUnreach,
            _ => match packet.get(usize::from(packet[0] & 0x0f) * 4 + 13) {
                Some(flags) if flags & 0x12 == 0x12 => Reason::SynAck,
                _ => Reason::Reset,
            },
        };
        Judged::Answer(Answer {
            target: target.into(),
            port: index as u16,
            reply: Reply {
                state: PortState::Open,
                reason,
                ttl: packet.get(8).copied(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::SourcePorts;

    fn module() -> (OsProbes, CookieJar) {
        let jar = CookieJar::new(1, 2);
        let target = Ipv4Addr::new(198, 18, 0, 2);
        let set = OsProbes::keyed_set(&jar, target, 22, 1, 40_125);
        (OsProbes::new(vec![set], vec![true]), jar)
    }

    fn shot(index: u16) -> Shot {
        Shot {
            source: Ipv4Addr::new(198, 18, 0, 1).into(),
            target: Ipv4Addr::new(198, 18, 0, 2).into(),
            port: index,
            try_no: 0,
        }
    }

    /// The SYN-ACK a host would send to SEQ probe `index`.
    fn syn_ack(set: &ProbeSet, index: usize) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[3] = 40;
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&set.target.octets());
        p[16..20].copy_from_slice(&set.source.octets());
        p[20..22].copy_from_slice(&set.open.to_be_bytes());
        p[22..24].copy_from_slice(&set.source_port(index).to_be_bytes());
        p[32] = 0x50;
        p[33] = 0x12;
        p
    }

    #[test]
    fn probes_are_stamped_and_their_answers_told_apart_by_index() {
        let (mut m, jar) = module();
        let keys = Keys {
            jar: &jar,
            ports: SourcePorts::from_base(40_000),
        };
        let mut buf = [0u8; 1500];
        for index in 0..PROBE_COUNT as u16 {
            let len = m.stamp(shot(index), &keys, &mut buf).unwrap();
            assert!(len >= 28, "probe {index}");
        }
        let set = *m.set(Ipv4Addr::new(198, 18, 0, 2)).unwrap();
        assert_eq!(set.source, Ipv4Addr::new(198, 18, 0, 1));
        let answer = syn_ack(&set, 3);
        match m.judge(&answer, &keys) {
            Judged::Answer(a) => {
                assert_eq!(
                    (a.port, a.reply.reason, a.reply.ttl),
                    (3, Reason::SynAck, Some(64))
                );
            }
            other => panic!("{other:?}"),
        }
        // To a port none of its probes left from: not ours.
        let mut forged = answer.clone();
        forged[22..24].copy_from_slice(&set.base_port.wrapping_sub(1).to_be_bytes());
        assert_eq!(m.judge(&forged, &keys), Judged::Invalid);
        // From a host not in the batch, or truncated: not for us.
        let mut stranger = answer.clone();
        stranger[15] = 9;
        assert_eq!(m.judge(&stranger, &keys), Judged::Unrelated);
        for cut in 0..answer.len() {
            let _ = m.judge(&answer[..cut], &keys);
        }
    }

    #[test]
    fn a_host_without_an_open_port_gets_only_the_closed_ports_probes() {
        let jar = CookieJar::new(1, 2);
        let target = Ipv4Addr::new(198, 18, 0, 2);
        let set = OsProbes::keyed_set(&jar, target, 0, 1, 40_125);
        let mut m = OsProbes::new(vec![set], vec![false]);
        let keys = Keys {
            jar: &jar,
            ports: SourcePorts::from_base(40_000),
        };
        let mut buf = [0u8; 1500];
        let sent: Vec<usize> = (0..PROBE_COUNT)
            .filter(|&i| m.stamp(shot(i as u16), &keys, &mut buf).unwrap() > 0)
            .collect();
        assert_eq!(sent, vec![6, 7, 12, 13, 14, 15]);
    }

    #[test]
    fn the_numbers_are_keyed() {
        let target = Ipv4Addr::new(198, 18, 0, 2);
        let a = OsProbes::keyed_set(&CookieJar::new(1, 2), target, 22, 1, 9);
        let b = OsProbes::keyed_set(&CookieJar::new(3, 4), target, 22, 1, 9);
        assert_ne!((a.base_port, a.seq, a.ack), (b.base_port, b.seq, b.ack));
        assert!((20_000..60_000).contains(&a.base_port));
    }
}
