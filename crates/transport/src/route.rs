//! Where a probe leaves: the kernel's own answers, over rtnetlink, to
//! "which interface, source address and gateway reach this address"
//! (`RTM_GETROUTE`, the lookup `ip route get` makes, so policy routing
//! and `-e` are honoured), "what is this next hop's link-layer address"
//! (`RTM_GETNEIGH`, as `ip neigh get`) and "what is this interface's own
//! link-layer address and type" (`RTM_GETLINK`).
//!
//! With those three, the raw engine writes whole Ethernet frames and hands
//! them to the interface directly, past routing, netfilter and the qdisc.
//! This module sends nothing on the network and needs no privilege.
//!
//! Contract: every query is one request and one answer on a blocking
//! netlink socket with a receive timeout, so a query never hangs;
//! the kernel's refusals come back as `io::Error`s with its errno.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::link::{LinkAttribute, LinkLayerType, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// The kernel's route to one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The output interface.
    pub ifindex: u32,
    /// The preferred source address.
    pub source: Option<IpAddr>,
    /// The gateway, when the destination is not on the link.
    pub gateway: Option<IpAddr>,
    /// Whether the destination is one of this machine's own addresses
    /// (delivered over loopback).
    pub local: bool,
}

impl Route {
    /// The address whose link-layer address a frame to `dst` carries.
    pub fn next_hop(&self, dst: IpAddr) -> IpAddr {
        self.gateway.unwrap_or(dst)
    }
}

/// What kind of link an interface is, as far as framing goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Ethernet (veth, bridges, NICs), with the interface's own address.
    Ethernet([u8; 6]),
    /// The loopback interface: Ethernet framing with zero addresses.
    Loopback,
    /// Anything else (tun, ip tunnels, ...): no frames of ours; the
    /// kernel's IP path is used instead.
    Other,
}

/// A netlink socket for route, neighbour and link queries.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// How long one query may wait for the kernel's answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

impl Netlink {
    /// Opens the socket.
    pub fn open() -> io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        socket2::SockRef::from(&socket).set_read_timeout(Some(QUERY_TIMEOUT))?;
        Ok(Netlink {
            socket,
            seq: 0,
            buf: vec![0; 32 * 1024],
        })
    }

    /// The route to `dst`, through interface `oif` when given (`-e`).
    pub fn route(&mut self, dst: IpAddr, oif: Option<u32>) -> io::Result<Route> {
        let mut message = RouteMessage::default();
        message.header.address_family = family(dst);
        message.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
        message
            .attributes
            .push(RouteAttribute::Destination(dst.into()));
        if let Some(oif) = oif {
            message.attributes.push(RouteAttribute::Oif(oif));
        }
        let RouteNetlinkMessage::NewRoute(answer) =
            self.query(RouteNetlinkMessage::GetRoute(message))?
        else {
            return Err(unexpected("route"));
        };
        let mut route = Route {
            ifindex: 0,
            source: None,
            gateway: None,
            local: answer.header.kind == RouteType::Local,
        };
        for attribute in answer.attributes {
            match attribute {
                RouteAttribute::Oif(index) => route.ifindex = index,
                RouteAttribute::PrefSource(address) => route.source = ip_of(address),
                RouteAttribute::Gateway(address) => route.gateway = ip_of(address),
                _ => {}
            }
        }
        if route.ifindex == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the kernel's route names no interface",
            ));
        }
        Ok(route)
    }

    /// The link-layer address of `addr` on interface `ifindex` from the
    /// neighbour table, if the kernel has one that is usable (resolved,
    /// even if stale; not failed or still resolving).
    pub fn neighbour(&mut self, ifindex: u32, addr: IpAddr) -> io::Result<Option<[u8; 6]>> {
        let mut message = NeighbourMessage::default();
        message.header.family = family(addr);
        message.header.ifindex = ifindex;
        message
            .attributes
            .push(NeighbourAttribute::Destination(match addr {
                IpAddr::V4(a) => NeighbourAddress::Inet(a),
                IpAddr::V6(a) => NeighbourAddress::Inet6(a),
            }));
        let answer = match self.query(RouteNetlinkMessage::GetNeighbour(message)) {
            Ok(RouteNetlinkMessage::NewNeighbour(answer)) => answer,
            Ok(_) => return Err(unexpected("neighbour")),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        if matches!(
            answer.header.state,
            NeighbourState::Incomplete | NeighbourState::Failed | NeighbourState::None
        ) {
            return Ok(None);
        }
        Ok(answer.attributes.into_iter().find_map(|a| match a {
            NeighbourAttribute::LinkLayerAddress(mac) => mac.try_into().ok(),
            _ => None,
        }))
    }

    /// The framing and own address of interface `ifindex`.
    pub fn link(&mut self, ifindex: u32) -> io::Result<Link> {
        let mut message = LinkMessage::default();
        message.header.index = ifindex;
        let RouteNetlinkMessage::NewLink(answer) =
            self.query(RouteNetlinkMessage::GetLink(message))?
        else {
            return Err(unexpected("link"));
        };
        Ok(match answer.header.link_layer_type {
            LinkLayerType::Loopback => Link::Loopback,
            LinkLayerType::Ether => answer
                .attributes
                .into_iter()
                .find_map(|a| match a {
                    LinkAttribute::Address(mac) => <[u8; 6]>::try_from(mac).ok(),
                    _ => None,
                })
                .map_or(Link::Other, Link::Ethernet),
            _ => Link::Other,
        })
    }

    /// Sends one request and returns the kernel's one answer.
    fn query(&mut self, request: RouteNetlinkMessage) -> io::Result<RouteNetlinkMessage> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        header.sequence_number = self.seq;
        let mut message = NetlinkMessage::new(header, NetlinkPayload::from(request));
        message.finalize();
        let len = message.buffer_len();
        if len > self.buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "request too long",
            ));
        }
        message.serialize(&mut self.buf[..len]);
        self.socket.send(&self.buf[..len], 0)?;
        // Answers to earlier queries that timed out may still arrive:
        // skip anything that is not ours.
        for _ in 0..16 {
            let size = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let mut offset = 0;
            while offset < size {
                let answer =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..size])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let step = answer.header.length as usize;
                if answer.header.sequence_number == self.seq {
                    return match answer.payload {
                        NetlinkPayload::InnerMessage(inner) => Ok(inner),
                        NetlinkPayload::Error(e) => Err(e.to_io()),
                        _ => Err(unexpected("answer")),
                    };
                }
                if step == 0 {
                    break;
                }
                offset += step.next_multiple_of(4);
            }
        }
        Err(unexpected("answer"))
    }
}

fn family(addr: IpAddr) -> AddressFamily {
    if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn ip_of(address: RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(a) => Some(a.into()),
        RouteAddress::Inet6(a) => Some(a.into()),
        _ => None,
    }
}

fn unexpected(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected netlink {what} message"),
    )
}

/// The index of the interface named `name` (`-e`).
pub fn interface_index(name: &str) -> io::Result<u32> {
    let name = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name with NUL"))?;
    // SAFETY: `name` is a valid NUL-terminated string for the call.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        index => Ok(index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_route_link_and_neighbour() {
        let mut netlink = Netlink::open().unwrap();
        let lo = interface_index("lo").unwrap();
        let route = netlink.route("127.0.0.1".parse().unwrap(), None).unwrap();
        assert_eq!(route.ifindex, lo);
        assert!(route.local);
        assert_eq!(route.gateway, None);
        assert_eq!(netlink.link(lo).unwrap(), Link::Loopback);
        // Loopback has no neighbour entries.
        assert_eq!(
            netlink.neighbour(lo, "127.0.0.1".parse().unwrap()).unwrap(),
            None
        );
        assert!(netlink.link(u32::MAX).is_err());
    }

    #[test]
    fn unknown_interface_is_an_error() {
        assert!(interface_index("no-such-if0").is_err());
        assert!(interface_index("a\0b").is_err());
    }
}
