//! Probe cookies: the keyed value a raw probe carries (as its TCP sequence
//! number) so that an answer can be checked statelessly.
//!
//! A SYN-ACK or RST must acknowledge `cookie + 1`; an ICMP error must
//! quote the probe with `cookie` as its sequence number. Anything else is
//! a stray or spoofed packet and is counted and ignored. The cookie is
//! SipHash-2-4, keyed per scan, over the four-tuple (masscan's and ZMap's
//! design). No allocation, no panics.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

/// The per-scan key and the cookie function.
#[derive(Clone, Copy, Debug)]
pub struct CookieJar {
    k0: u64,
    k1: u64,
}

fn write_addr(h: &mut SipHasher24, addr: IpAddr) {
    match addr {
        IpAddr::V4(a) => h.write(&a.octets()),
        IpAddr::V6(a) => h.write(&a.octets()),
    }
}

impl CookieJar {
    /// A jar keyed by two secret words (random per scan).
    pub fn new(k0: u64, k1: u64) -> CookieJar {
        CookieJar { k0, k1 }
    }

    /// The cookie of a probe from `src:src_port` to `dst:dst_port`.
    pub fn cookie(&self, src: IpAddr, dst: IpAddr, src_port: u16, dst_port: u16) -> u32 {
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        write_addr(&mut h, src);
        write_addr(&mut h, dst);
        h.write_u16(src_port);
        h.write_u16(dst_port);
        let v = h.finish();
        (v ^ (v >> 32)) as u32
    }

    /// Whether a TCP answer from `target:target_port` to `ours:our_port`
    /// acknowledges the probe we sent there.
    pub fn acknowledges(
        &self,
        ours: IpAddr,
        target: IpAddr,
        our_port: u16,
        target_port: u16,
        ack: u32,
    ) -> bool {
        ack == self
            .cookie(ours, target, our_port, target_port)
            .wrapping_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_depend_on_key_and_tuple() {
        let a: IpAddr = "198.18.0.1".parse().unwrap();
        let b: IpAddr = "198.18.0.2".parse().unwrap();
        let jar = CookieJar::new(1, 2);
        let c = jar.cookie(a, b, 40000, 22);
        assert_eq!(c, jar.cookie(a, b, 40000, 22));
        assert_ne!(c, jar.cookie(a, b, 40000, 23));
        assert_ne!(c, jar.cookie(b, a, 40000, 22));
        assert_ne!(c, CookieJar::new(1, 3).cookie(a, b, 40000, 22));
        assert!(jar.acknowledges(a, b, 40000, 22, c.wrapping_add(1)));
        assert!(!jar.acknowledges(a, b, 40000, 22, c));
    }
}
