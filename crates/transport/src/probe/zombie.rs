//! The idle scan's zombie probe (`-sI`): a SYN-ACK to the zombie's probe
//! port, which any stack answers with a RST (RFC 9293 section 3.10.7.1)
//! whose IPv4 identification is the zombie's counter at that moment.
//!
//! The probe carries the cookie (plus a serial number per reading) as its
//! sequence and acknowledgment numbers; the RST takes its sequence number
//! from our acknowledgment number, so a RST counts only from the zombie's
//! probe port to the probe's source port with that number. Unlike the
//! scan modules, this one proves no port state: it reads a counter, which
//! the idle scan's search (`idle.rs`) turns into states.
//!
//! Read first: nmap's "TCP Idle Scan (-sI)" chapter; RFC 6864 on how
//! stacks set the IPv4 identification.

use std::net::IpAddr;

use portolan_wire::{Reply as Packet, SynOptions, SynTemplate, TcpFlags, parse_reply};

/// The template of the probes from `source` (our address towards the
/// zombie), for source ports from `base`: SYN and ACK set, no options.
pub fn probe_template(source: IpAddr, base: u16) -> SynTemplate {
    SynTemplate::with_options(
        source,
        base,
        SynOptions {
            flags: TcpFlags::SYN | TcpFlags::ACK,
            mss: None,
            ..SynOptions::default()
        },
    )
}

/// The zombie's IP ID in `packet`, if it is the RST from `zombie`'s
/// `probe_port` answering our probe from `our_port` with sequence number
/// `seq`; `None` for anything else (another packet, a forged or stale
/// answer, a truncated one, an IPv6 packet, which carries no ID).
pub fn rst_ip_id(
    packet: &[u8],
    zombie: IpAddr,
    probe_port: u16,
    our_port: u16,
    seq: u32,
) -> Option<u16> {
    match parse_reply(packet).ok()? {
        Packet::Tcp {
            src,
            src_port,
            dst_port,
            seq: their_seq,
            flags,
            ip_id,
            ..
        } if src == zombie
            && src_port == probe_port
            && dst_port == our_port
            && flags.is_rst()
            && their_seq == seq =>
        {
            ip_id
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::fixtures::*;

    /// The zombie's RST with IP ID `id` and sequence number `seq`.
    fn rst(id: u16, seq: u32) -> Vec<u8> {
        let mut packet = ip(V4_TARGET, V4_US, 6, 64, &tcp(80, 45_000, seq, 0, RST, 0));
        packet[4..6].copy_from_slice(&id.to_be_bytes());
        packet
    }

    #[test]
    fn the_zombies_rst_gives_its_ip_id_and_nothing_else_does() {
        let seq = 0x1357_9bdf;
        assert_eq!(
            rst_ip_id(&rst(4242, seq), V4_TARGET, 80, 45_000, seq),
            Some(4242)
        );
        // A stale or forged answer, another port, another sender.
        assert_eq!(
            rst_ip_id(&rst(4242, seq + 1), V4_TARGET, 80, 45_000, seq),
            None
        );
        assert_eq!(rst_ip_id(&rst(4242, seq), V4_TARGET, 81, 45_000, seq), None);
        assert_eq!(rst_ip_id(&rst(4242, seq), V4_US, 80, 45_000, seq), None);
        // Not a RST.
        let syn_ack = ip(
            V4_TARGET,
            V4_US,
            6,
            64,
            &tcp(80, 45_000, seq, 0, SYN | ACK, 0),
        );
        assert_eq!(rst_ip_id(&syn_ack, V4_TARGET, 80, 45_000, seq), None);
        // IPv6 carries no ID.
        let v6 = ip(V6_TARGET, V6_US, 6, 64, &tcp(80, 45_000, seq, 0, RST, 0));
        assert_eq!(rst_ip_id(&v6, V6_TARGET, 80, 45_000, seq), None);
        let whole = rst(4242, seq);
        for end in 0..whole.len() {
            assert_eq!(
                rst_ip_id(&whole[..end], V4_TARGET, 80, 45_000, seq),
                None,
                "{end}"
            );
        }
    }

    #[test]
    fn probes_carry_syn_ack_and_the_sequence_number_twice() {
        let mut buf = [0u8; 64];
        let template = probe_template(V4_US, 45_000);
        let len = template
            .stamp(&mut buf, V4_TARGET, 45_001, 80, 0xabcd, 7)
            .unwrap();
        let Ok(Packet::Tcp {
            seq, ack, flags, ..
        }) = parse_reply(&buf[..len])
        else {
            panic!("a TCP probe");
        };
        assert_eq!((seq, ack), (0xabcd, 0xabcd));
        assert_eq!(flags, TcpFlags::SYN | TcpFlags::ACK);
    }
}
