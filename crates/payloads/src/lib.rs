//! The UDP payloads that make real services answer, written from the
//! protocols' specifications, each carrying the scan's 32-bit cookie where
//! the protocol echoes it back, so that a stateless scanner can tell a real
//! answer to its own probe from a stray or forged datagram.
//!
//! - [`payload_for`] writes the payload for a well-known port into a
//!   caller's buffer; ports without one get `None` (send an empty
//!   datagram, as nmap does).
//! - [`echo`] reads from an answer the bits of the cookie that its protocol
//!   echoed, with their mask ([`Echo`]); [`echoed_cookie`] is its value
//!   alone, and [`answers`] compares it with the cookie sent.
//! - [`protocol`] names the protocol of a port and says how many cookie
//!   bits its answers carry; [`PROTOCOLS`] lists them all.
//!
//! Each module's doc names the specification it follows, where the cookie
//! goes, and how many bits come back. Some answers echo no cookie at all
//! (TFTP answers from a new port; SSDP echoes nothing of the request):
//! their [`Echo`] has an empty mask, and only the answer's shape and the
//! four-tuple tie it to the probe.
//!
//! Contract: no panic on any input (the library is linted against
//! indexing, slicing, `unwrap` and arithmetic overflow); no allocation
//! (`no_std` outside tests); no I/O. A buffer too small for a payload gives
//! `None`, never a partial payload. [`MAX_PAYLOAD_LEN`] bytes always
//! suffice.
//!
//! Read first: RFC 768 (UDP), then each module's specification. Nothing
//! here comes from another scanner's payload files.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::arithmetic_side_effects,
        clippy::print_stdout,
        clippy::print_stderr,
    )
)]

mod bytes;
pub mod coap;
pub mod dns;
pub mod ike;
pub mod memcached;
pub mod ntp;
pub mod quic;
pub mod snmp;
pub mod sunrpc;
pub mod text;
pub mod tftp;
pub mod wireguard;

use bytes::Out;

/// The bits of the cookie an answer carried back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Echo {
    /// The echoed bits, in the cookie's own bit positions; the bits outside
    /// [`Echo::mask`] are zero.
    pub value: u32,
    /// Which bits of the cookie the answer carried: `0xffff_ffff` for all
    /// 32, `0x0000_ffff` for a 16-bit transaction ID, 0 when the protocol
    /// echoes nothing.
    pub mask: u32,
}

impl Echo {
    /// All 32 bits of `cookie`.
    pub(crate) const fn full(cookie: u32) -> Self {
        Self {
            value: cookie,
            mask: u32::MAX,
        }
    }

    /// The low 16 bits of a cookie, as echoed by a 16-bit transaction ID.
    pub(crate) const fn low16(id: u16) -> Self {
        Self {
            value: id as u32,
            mask: 0xffff,
        }
    }

    /// No bits: the answer has the protocol's shape and nothing more.
    pub(crate) const NONE: Self = Self { value: 0, mask: 0 };

    /// Whether the echoed bits are those of `cookie`.
    #[must_use]
    pub const fn matches(self, cookie: u32) -> bool {
        self.value == cookie & self.mask
    }
}

/// A protocol with a payload: its name, its ports and how to write and read
/// it.
#[derive(Clone, Copy, Debug)]
pub struct Protocol {
    /// A short name, as a service table would print it (`dns`, `ntp`).
    pub name: &'static str,
    /// The UDP ports it is sent to.
    pub ports: &'static [u16],
    /// The most cookie bits an answer carries back (some answers carry
    /// fewer: see the module's doc).
    pub echoed_bits: u32,
    write: fn(u32, &mut Out<'_>) -> Option<()>,
    echo: fn(&[u8]) -> Option<Echo>,
}

impl Protocol {
    /// Writes this protocol's payload carrying `cookie` into `buf` and
    /// returns its length; `None` if `buf` is too small.
    #[must_use]
    pub fn write(&self, cookie: u32, buf: &mut [u8]) -> Option<usize> {
        let mut out = Out::new(buf);
        (self.write)(cookie, &mut out)?;
        Some(out.len())
    }

    /// The cookie bits in `answer`, if it is an answer of this protocol to
    /// one of our payloads.
    #[must_use]
    pub fn echo(&self, answer: &[u8]) -> Option<Echo> {
        (self.echo)(answer)
    }
}

/// The longest payload [`payload_for`] writes (QUIC's, padded to the 1200
/// bytes RFC 9000 section 14.1 requires).
pub const MAX_PAYLOAD_LEN: usize = quic::LEN;

/// Every protocol with a payload, by port.
pub static PROTOCOLS: &[Protocol] = &[
    Protocol {
        name: "dns",
        ports: &[53],
        echoed_bits: 16,
        write: dns::write_version_query,
        echo: dns::echo,
    },
    Protocol {
        name: "tftp",
        ports: &[69],
        echoed_bits: 0,
        write: tftp::write,
        echo: tftp::echo,
    },
    Protocol {
        name: "rpcbind",
        ports: &[111],
        echoed_bits: 32,
        write: sunrpc::write,
        echo: sunrpc::echo,
    },
    Protocol {
        name: "ntp",
        ports: &[123],
        echoed_bits: 32,
        write: ntp::write,
        echo: ntp::echo,
    },
    Protocol {
        name: "netbios-ns",
        ports: &[137],
        echoed_bits: 16,
        write: dns::write_netbios_node_status,
        echo: dns::echo_netbios,
    },
    Protocol {
        name: "snmp",
        ports: &[161],
        echoed_bits: 32,
        write: snmp::write_v1,
        echo: snmp::echo,
    },
    Protocol {
        name: "https",
        ports: &[443],
        echoed_bits: 32,
        write: quic::write,
        echo: quic::echo,
    },
    Protocol {
        name: "isakmp",
        ports: &[500],
        echoed_bits: 32,
        write: ike::write_v2,
        echo: ike::echo,
    },
    Protocol {
        name: "ssdp",
        ports: &[1900],
        echoed_bits: 0,
        write: text::write_ssdp,
        echo: text::echo_ssdp,
    },
    Protocol {
        name: "nat-t-ike",
        ports: &[4500],
        echoed_bits: 32,
        write: ike::write_v2_nat_t,
        echo: ike::echo_nat_t,
    },
    Protocol {
        name: "sip",
        ports: &[5060],
        echoed_bits: 32,
        write: text::write_sip,
        echo: text::echo_sip,
    },
    Protocol {
        name: "mdns",
        ports: &[5353],
        echoed_bits: 16,
        write: dns::write_mdns_query,
        echo: dns::echo,
    },
    Protocol {
        name: "coap",
        ports: &[5683],
        echoed_bits: 32,
        write: coap::write,
        echo: coap::echo,
    },
    Protocol {
        name: "memcache",
        ports: &[11211],
        echoed_bits: 16,
        write: memcached::write,
        echo: memcached::echo,
    },
    Protocol {
        name: "wireguard",
        ports: &[51820],
        echoed_bits: 32,
        write: wireguard::write,
        echo: wireguard::echo,
    },
];

/// The protocol whose payload goes to `port`, if any.
#[must_use]
pub fn protocol(port: u16) -> Option<&'static Protocol> {
    PROTOCOLS.iter().find(|p| p.ports.contains(&port))
}

/// Writes the payload for `port` carrying `cookie` into `buf` and returns
/// its length; `None` if the port has no payload or `buf` is too small
/// ([`MAX_PAYLOAD_LEN`] always suffices).
#[must_use]
pub fn payload_for(port: u16, cookie: u32, buf: &mut [u8]) -> Option<usize> {
    protocol(port)?.write(cookie, buf)
}

/// The cookie bits (with their mask) that `answer`, a UDP payload from
/// `port`, carries back, if it is an answer of that port's protocol.
#[must_use]
pub fn echo(port: u16, answer: &[u8]) -> Option<Echo> {
    protocol(port)?.echo(answer)
}

/// The echoed part of the cookie in `answer`, a UDP payload from `port`:
/// the bits the protocol echoes, the others zero (see [`echo`] for which
/// bits those are). `None` if `answer` is not an answer of the port's
/// protocol or the port has no payload.
#[must_use]
pub fn echoed_cookie(port: u16, answer: &[u8]) -> Option<u32> {
    echo(port, answer).map(|e| e.value)
}

/// Whether `answer`, a UDP payload from `port`, is its protocol's answer
/// carrying back the bits of `cookie` that the protocol echoes.
#[must_use]
pub fn answers(port: u16, cookie: u32, answer: &[u8]) -> bool {
    echo(port, answer).is_some_and(|e| e.matches(cookie))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn test_ports_are_unique() {
        let mut ports: Vec<u16> = PROTOCOLS
            .iter()
            .flat_map(|p| p.ports.iter().copied())
            .collect();
        let n = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), n);
        assert!(protocol(9).is_none());
        assert_eq!(payload_for(9, 1, &mut [0; 64]), None);
    }

    #[test]
    fn test_every_payload_fits_and_is_cut_cleanly() {
        for p in PROTOCOLS {
            let port = p.ports[0];
            let mut buf = [0u8; MAX_PAYLOAD_LEN];
            let n = payload_for(port, 0xdead_beef, &mut buf)
                .unwrap_or_else(|| panic!("{} does not fit", p.name));
            assert!(n > 0, "{}", p.name);
            for short in 0..n {
                assert_eq!(
                    payload_for(port, 0xdead_beef, &mut buf[..short]),
                    None,
                    "{} in {short}",
                    p.name
                );
            }
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_answers(
            port_index in 0..PROTOCOLS.len(),
            answer in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let port = PROTOCOLS[port_index].ports[0];
            let _ = echo(port, &answer);
            let _ = echoed_cookie(port, &answer);
        }

        #[test]
        fn never_panics_on_mutated_payloads(
            port_index in 0..PROTOCOLS.len(),
            cookie in any::<u32>(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let port = PROTOCOLS[port_index].ports[0];
            let mut buf = vec![0u8; MAX_PAYLOAD_LEN];
            let n = payload_for(port, cookie, &mut buf).unwrap();
            buf.truncate(n);
            for (at, v) in edits {
                let i = at.index(n);
                buf[i] = v;
            }
            buf.truncate(cut.index(n + 1));
            let _ = echo(port, &buf);
        }

        #[test]
        fn cookie_bits_change_the_payload(
            port_index in 0..PROTOCOLS.len(),
            a in any::<u32>(),
            b in any::<u32>(),
        ) {
            // Two cookies that differ in the bits a protocol echoes give
            // different payloads.
            let p = &PROTOCOLS[port_index];
            let mask = if p.echoed_bits >= 32 { u32::MAX } else { (1u32 << p.echoed_bits) - 1 };
            prop_assume!(a & mask != b & mask);
            let (mut x, mut y) = (vec![0u8; MAX_PAYLOAD_LEN], vec![0u8; MAX_PAYLOAD_LEN]);
            let n = p.write(a, &mut x).unwrap();
            let m = p.write(b, &mut y).unwrap();
            prop_assert_ne!(&x[..n], &y[..m]);
        }
    }
}
