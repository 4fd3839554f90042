//! The raw engine's sending paths: for each destination, the source
//! address of its probes and how they leave, as a whole Ethernet frame on
//! the packet socket (the fast path: no routing, netfilter or qdisc per
//! packet) or through the kernel's IP path (`IPPROTO_RAW`).
//!
//! Frames need the next hop's link-layer address. It comes from the
//! kernel's neighbour table. While the kernel has none, the probes to
//! that next hop take the IP path: the first makes the kernel resolve it
//! (ARP or Neighbor Discovery), which queues the packets meanwhile (up to
//! `unres_qlen_bytes`, 208 KiB by default: thousands of probes) and sends
//! them once resolved; the table is asked again every
//! [`NEIGHBOUR_RECHECK`]. Nothing waits, so absent hosts on an on-link
//! range cost no time; Portolan sends no resolution traffic of its own,
//! and links without Ethernet framing (tun, tunnels) still work through
//! the IP path.
//!
//! Contract: one netlink route query per destination network (/24 or /64)
//! and at most one neighbour query per next hop per [`NEIGHBOUR_RECHECK`];
//! the caches are bounded and start over when full.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::route::{Link, Netlink, Route};

/// How long a next hop with no link-layer address yet keeps using the IP
/// path before the neighbour table is asked again.
pub(crate) const NEIGHBOUR_RECHECK: Duration = Duration::from_millis(10);

/// Entries per cache before it starts over (a wide sweep of an on-link
/// range must not grow memory without bound).
const CACHE_LIMIT: usize = 1 << 16;

/// Length of an Ethernet header.
pub(crate) const ETHERNET_HEADER: usize = 14;

/// How one probe leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// As a frame on interface `ifindex`, behind `header`.
    Frame {
        /// The interface.
        ifindex: u32,
        /// Destination and source link-layer addresses and EtherType.
        header: [u8; ETHERNET_HEADER],
    },
    /// Through the kernel's IP path.
    Ip,
}

/// The source address and path of a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Path {
    pub(crate) source: IpAddr,
    pub(crate) via: Via,
}

/// A route, with what framing it needs.
#[derive(Clone, Copy)]
struct Hop {
    route: Route,
    source: IpAddr,
    link: Link,
}

#[derive(Clone, Copy)]
enum Neighbour {
    Known([u8; 6]),
    Unknown { recheck_at: Instant },
}

/// The caches' hasher: each probe looks its destination up in two or
/// three of them, and std's SipHash made those lookups about 1% of a
/// sparse sweep's CPU. Their keys are the scan's own targets and next
/// hops, not chosen by the network.
type RouteHasher = foldhash::fast::RandomState;

/// Caches of routes, links and neighbours.
pub(crate) struct Paths {
    netlink: Option<Netlink>,
    oif: Option<u32>,
    fixed_source: Option<IpAddr>,
    frames: bool,
    hops: HashMap<IpAddr, Hop, RouteHasher>,
    links: HashMap<u32, Link, RouteHasher>,
    neighbours: HashMap<(u32, IpAddr), Neighbour, RouteHasher>,
    /// This machine's own addresses: their routes are looked up and cached
    /// one by one, not for their whole /24 or /64.
    locals: HashSet<IpAddr, RouteHasher>,
}

impl Paths {
    /// Paths through interface `oif` only (`-e`) if given, from
    /// `fixed_source` (`-S`) if given; `frames` false keeps every probe on
    /// the IP path (`--send-ip`).
    pub(crate) fn new(oif: Option<u32>, fixed_source: Option<IpAddr>, frames: bool) -> Paths {
        Paths {
            // Without netlink (a kernel without it), the IP path and the
            // socket-based source lookup still work.
            netlink: Netlink::open().ok(),
            oif,
            fixed_source,
            frames,
            hops: HashMap::default(),
            links: HashMap::default(),
            neighbours: HashMap::default(),
            locals: crate::sys::local_addresses().into_iter().collect(),
        }
    }

    /// The path of a probe to `dst`.
    pub(crate) fn resolve(&mut self, dst: IpAddr, now: Instant) -> io::Result<Path> {
        let hop = self.hop(dst)?;
        let source = match self.fixed_source {
            Some(s) if s.is_ipv4() == dst.is_ipv4() => s,
            _ => hop.source,
        };
        // The kernel drops frames injected on loopback for this machine's
        // own IPv4 addresses (127.0.0.0/8 is a "martian" unless
        // route_localnet, and the others fail the input route), so probes
        // to this machine take the IP path.
        let via = if self.frames && !hop.route.local {
            self.frame_via(&hop, dst, now)
        } else {
            Via::Ip
        };
        Ok(Path { source, via })
    }

    /// Whether `dst` is on a directly attached Ethernet segment (no
    /// gateway, not this machine): then its interface, our link-layer
    /// address there and our source address.
    pub(crate) fn on_segment(&mut self, dst: IpAddr) -> io::Result<Option<(u32, [u8; 6], IpAddr)>> {
        let hop = self.hop(dst)?;
        let source = match self.fixed_source {
            Some(s) if s.is_ipv4() == dst.is_ipv4() => s,
            _ => hop.source,
        };
        Ok(match hop.link {
            Link::Ethernet(own) if hop.route.gateway.is_none() && !hop.route.local => {
                Some((hop.route.ifindex, own, source))
            }
            _ => None,
        })
    }

    fn hop(&mut self, dst: IpAddr) -> io::Result<Hop> {
        let network = if self.locals.contains(&dst) {
            dst
        } else {
            network_of(dst)
        };
        if let Some(hop) = self.hops.get(&network) {
            return Ok(*hop);
        }
        let route = match &mut self.netlink {
            Some(netlink) => netlink.route(dst, self.oif)?,
            None => Route {
                ifindex: 0,
                source: None,
                gateway: None,
                local: false,
            },
        };
        let source = match route.source {
            Some(source) => source,
            None => crate::sys::source_for(dst)?,
        };
        let link = match self.links.get(&route.ifindex) {
            Some(link) => *link,
            None => {
                let link = match &mut self.netlink {
                    Some(netlink) if route.ifindex != 0 => {
                        netlink.link(route.ifindex).unwrap_or(Link::Other)
                    }
                    _ => Link::Other,
                };
                self.links.insert(route.ifindex, link);
                link
            }
        };
        let hop = Hop {
            route,
            source,
            link,
        };
        if self.hops.len() >= CACHE_LIMIT {
            self.hops.clear();
        }
        self.hops.insert(network, hop);
        Ok(hop)
    }

    fn frame_via(&mut self, hop: &Hop, dst: IpAddr, now: Instant) -> Via {
        let ethertype: u16 = if dst.is_ipv4() { 0x0800 } else { 0x86dd };
        let (destination, own) = match hop.link {
            Link::Loopback => ([0; 6], [0; 6]),
            Link::Ethernet(own) => {
                let key = (hop.route.ifindex, hop.route.next_hop(dst));
                match self.neighbour(key, now) {
                    Some(mac) => (mac, own),
                    None => return Via::Ip,
                }
            }
            Link::Other => return Via::Ip,
        };
        Via::Frame {
            ifindex: hop.route.ifindex,
            header: ethernet_header(destination, own, ethertype),
        }
    }

    /// The next hop's link-layer address, if the kernel knows it.
    fn neighbour(&mut self, key: (u32, IpAddr), now: Instant) -> Option<[u8; 6]> {
        match self.neighbours.get(&key) {
            Some(Neighbour::Known(mac)) => return Some(*mac),
            Some(Neighbour::Unknown { recheck_at }) if now < *recheck_at => return None,
            _ => {}
        }
        let found = self
            .netlink
            .as_mut()
            .and_then(|n| n.neighbour(key.0, key.1).ok().flatten());
        if self.neighbours.len() >= CACHE_LIMIT {
            self.neighbours.clear();
        }
        let entry = match found {
            Some(mac) => Neighbour::Known(mac),
            None => Neighbour::Unknown {
                recheck_at: now + NEIGHBOUR_RECHECK,
            },
        };
        self.neighbours.insert(key, entry);
        found
    }
}

/// The network a route is cached for: the /24 or /64 around `addr`.
fn network_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            IpAddr::from([o[0], o[1], o[2], 0])
        }
        IpAddr::V6(a) => {
            let mut o = a.octets();
            o[8..].fill(0);
            IpAddr::from(o)
        }
    }
}

fn ethernet_header(destination: [u8; 6], source: [u8; 6], ethertype: u16) -> [u8; 14] {
    let mut header = [0u8; ETHERNET_HEADER];
    header[..6].copy_from_slice(&destination);
    header[6..12].copy_from_slice(&source);
    header[12..].copy_from_slice(&ethertype.to_be_bytes());
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_is_reached_through_the_ip_path() {
        let mut paths = Paths::new(None, None, true);
        let now = Instant::now();
        for addr in ["::1", "127.0.0.1"] {
            let path = paths.resolve(addr.parse().unwrap(), now).unwrap();
            assert_eq!(path.source, addr.parse::<IpAddr>().unwrap());
            assert_eq!(path.via, Via::Ip);
        }
    }

    #[test]
    fn a_fixed_source_of_the_family_wins() {
        let source: IpAddr = "127.0.0.9".parse().unwrap();
        let mut paths = Paths::new(None, Some(source), true);
        let now = Instant::now();
        assert_eq!(
            paths
                .resolve("127.0.0.1".parse().unwrap(), now)
                .unwrap()
                .source,
            source
        );
        assert_eq!(
            paths.resolve("::1".parse().unwrap(), now).unwrap().source,
            "::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn header_layout() {
        let h = ethernet_header([1; 6], [2; 6], 0x86dd);
        assert_eq!(&h[..6], &[1; 6]);
        assert_eq!(&h[6..12], &[2; 6]);
        assert_eq!(&h[12..], &[0x86, 0xdd]);
    }
}
