//! Source addresses the scanner claims on a segment without the kernel
//! knowing them (`-S` with a list or range, as masscan's `--source-ip`):
//! targets limit their ICMP errors per destination address, so more
//! sources give a rate-limited target more budget.
//!
//! The kernel answers ARP and Neighbor Solicitations only for addresses
//! configured on an interface, so for the others the raw engine answers
//! itself, from the packet socket it reads answers on: every ARP request
//! or solicitation for a claimed address gets a reply with the
//! interface's link-layer address, for as long as the scan runs (and not
//! a moment longer: nothing answers once the run returns). Before the
//! first probe, each claimed address is asked for on the segment; an
//! answer means another host holds it, and the scan stops with an error
//! naming it, so Portolan never answers for a taken address.
//!
//! Contract: no I/O here (the raw engine sends and reads); no allocation
//! per packet; no panic on any packet. Read first: RFC 826 (ARP),
//! RFC 4861 sections 4.3, 4.4 and 7.2 (solicitation and advertisement),
//! RFC 5227 (address conflict detection, whose probe this follows loosely).

use std::net::IpAddr;

use portolan_wire::{
    NeighbourReply, StampError, parse_neighbour_reply, parse_neighbour_request,
    write_neighbour_answer,
};

/// The claimed addresses on one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Claims {
    /// The addresses (not configured on any interface of this machine).
    addrs: Vec<IpAddr>,
    /// The interface's link-layer address, which they answer with.
    mac: [u8; 6],
    /// The interface.
    ifindex: u32,
}

impl Claims {
    /// Claims `addrs` on interface `ifindex` whose address is `mac`;
    /// `None` when there is nothing to claim.
    pub(crate) fn new(addrs: Vec<IpAddr>, mac: [u8; 6], ifindex: u32) -> Option<Claims> {
        (!addrs.is_empty()).then_some(Claims {
            addrs,
            mac,
            ifindex,
        })
    }

    /// The interface they are claimed on.
    pub(crate) fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// If `packet` (from its ARP or IPv6 header on) asks for a claimed
    /// address, writes the answering frame into `frame` and returns its
    /// length.
    pub(crate) fn answer(&self, packet: &[u8], frame: &mut [u8]) -> Option<usize> {
        let request = parse_neighbour_request(packet)?;
        if !self.addrs.contains(&request.target) || request.asker_mac == self.mac {
            return None;
        }
        write_neighbour_answer(frame, self.mac, &request).ok()
    }

    /// If `packet` is another host's answer for a claimed address (a
    /// conflict), that address and the other host's link-layer address.
    pub(crate) fn conflict(&self, packet: &[u8]) -> Option<(IpAddr, Option<[u8; 6]>)> {
        let NeighbourReply { addr, mac, .. } = parse_neighbour_reply(packet)?;
        (self.addrs.contains(&addr) && mac != Some(self.mac)).then_some((addr, mac))
    }

    /// Writes the frame asking the segment who holds claimed address
    /// `addr`, from `asker` (the interface's own address of that family).
    pub(crate) fn ask(
        &self,
        frame: &mut [u8],
        asker: IpAddr,
        addr: IpAddr,
    ) -> Result<usize, StampError> {
        portolan_wire::write_solicitation(frame, self.mac, asker, addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: [u8; 6] = [2, 0x5c, 0x12, 0, 0, 1];
    const THEIRS: [u8; 6] = [2, 0x5c, 0x12, 0, 0, 2];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn requests_for_claimed_addresses_alone_are_answered() {
        let claims = Claims::new(vec![ip("198.18.0.100"), ip("fd00::100")], OURS, 3).unwrap();
        let mut request = [0u8; 128];
        let mut frame = [0u8; 128];
        for (asker, target, answered) in [
            ("198.18.0.2", "198.18.0.100", true),
            ("198.18.0.2", "198.18.0.101", false),
            ("fd00::2", "fd00::100", true),
            ("fd00::2", "fd00::1", false),
        ] {
            let n = portolan_wire::write_solicitation(&mut request, THEIRS, ip(asker), ip(target))
                .unwrap();
            let got = claims.answer(&request[14..n], &mut frame);
            assert_eq!(got.is_some(), answered, "{asker} asking for {target}");
            if let Some(len) = got {
                let reply = parse_neighbour_reply(&frame[14..len]).unwrap();
                assert_eq!(reply.addr, ip(target));
                assert_eq!(reply.mac, Some(OURS));
                assert_eq!(&frame[..6], &THEIRS);
            }
        }
        // Our own question (the conflict check) is not answered.
        let n = claims
            .ask(&mut request, ip("198.18.0.1"), ip("198.18.0.100"))
            .unwrap();
        assert_eq!(claims.answer(&request[14..n], &mut frame), None);
    }

    #[test]
    fn another_hosts_answer_for_a_claimed_address_is_a_conflict() {
        let claims = Claims::new(vec![ip("198.18.0.100")], OURS, 3).unwrap();
        let mut request = [0u8; 128];
        let mut frame = [0u8; 128];
        let n = portolan_wire::write_solicitation(
            &mut request,
            OURS,
            ip("198.18.0.1"),
            ip("198.18.0.100"),
        )
        .unwrap();
        // Another host holding .100 answers as we would.
        let other = Claims::new(vec![ip("198.18.0.100")], THEIRS, 3).unwrap();
        let len = other.answer(&request[14..n], &mut frame);
        // (Our own question has our MAC as asker: `other` answers it.)
        let len = len.unwrap();
        assert_eq!(
            claims.conflict(&frame[14..len]),
            Some((ip("198.18.0.100"), Some(THEIRS)))
        );
        // Our own answer is no conflict.
        let mine = claims.answer(
            &{
                let mut r = [0u8; 128];
                let k = portolan_wire::write_solicitation(
                    &mut r,
                    THEIRS,
                    ip("198.18.0.2"),
                    ip("198.18.0.100"),
                )
                .unwrap();
                r[..k].to_vec()
            }[14..],
            &mut frame,
        );
        assert_eq!(claims.conflict(&frame[14..mine.unwrap()]), None);
        assert!(Claims::new(Vec::new(), OURS, 3).is_none());
    }
}
