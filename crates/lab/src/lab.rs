//! The lab topology: a scanner namespace, point-to-point target hosts, and
//! bridged segments of several hosts, with their address plan.
//!
//! Contract: every link gets its own subnet, [`Subnet`]: IPv4 `198.18.0.0/15`
//! cut into 512 `/24` blocks and a matching IPv6 `fd00:<o2>:<o3>::/64`
//! (`198.18.5.0/24` pairs with `fd00:18:5::/64`). The scanner is `.1`/`::1`
//! on every link; point-to-point targets are `.2`/`::2`, segment hosts
//! `.2`, `.3`, ... Only connected routes exist, so nothing can leave the
//! lab. IPv6 addresses are added with `nodad` and usable at once. Dropping
//! a [`Lab`] deletes all its namespaces (and so its links). Read first:
//! RFC 2544 and RFC 4193 for the address ranges, ip-link(8), ip-address(8).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Deref;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::LabError;
use crate::namespace::Namespace;
use crate::sweep::{next_stem, sweep_stale_namespaces};

/// How many `/24` blocks `198.18.0.0/15` holds.
const SUBNET_BLOCKS: u32 = 512;

/// How long [`Lab::wait_until_links_work`] waits at most, in steps.
const LINK_WAIT_STEP: std::time::Duration = std::time::Duration::from_millis(20);
const LINK_WAIT_TRIES: u32 = 150;

/// Most hosts one bridged segment can hold (`.2` to `.251`).
pub const MAX_SEGMENT_HOSTS: usize = 250;

static NEXT_BLOCK: AtomicU32 = AtomicU32::new(0);

/// The IPv4 `/24` and IPv6 `/64` of one lab link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Subnet {
    block: u16,
}

impl Subnet {
    /// The block-th `/24` of `198.18.0.0/15` (taken modulo 512).
    pub fn from_block(block: u16) -> Self {
        Subnet {
            block: block % SUBNET_BLOCKS as u16,
        }
    }

    /// A block not handed out recently by this process; the start depends
    /// on the pid so that parallel processes tend to differ too.
    fn allocate() -> Self {
        let start = std::process::id().wrapping_mul(97);
        let n = start.wrapping_add(NEXT_BLOCK.fetch_add(1, Ordering::Relaxed));
        Subnet::from_block((n % SUBNET_BLOCKS) as u16)
    }

    fn octets(self) -> (u8, u8) {
        (18 + (self.block / 256) as u8, (self.block % 256) as u8)
    }

    /// The link-layer address of the `host`-th address of this subnet:
    /// locally administered, `02:5c:<o2>:<o3>:00:<host>`.
    pub fn mac(self, host: u8) -> String {
        let (o2, o3) = self.octets();
        format!("02:5c:{o2:02x}:{o3:02x}:00:{host:02x}")
    }

    /// `198.<18|19>.<o3>.<host>`.
    pub fn ipv4(self, host: u8) -> Ipv4Addr {
        let (o2, o3) = self.octets();
        Ipv4Addr::new(198, o2, o3, host)
    }

    /// `fd00:<o2>:<o3>::<host>`, the decimal octets written as hex digits.
    pub fn ipv6(self, host: u16) -> Ipv6Addr {
        let (o2, o3) = self.octets();
        let as_hex_digits = |n: u8| u16::from_str_radix(&n.to_string(), 16).unwrap_or(0);
        Ipv6Addr::new(
            0xfd00,
            as_hex_digits(o2),
            as_hex_digits(o3),
            0,
            0,
            0,
            0,
            host,
        )
    }

    /// The IPv4 prefix length (24).
    pub const IPV4_PREFIX: u8 = 24;
    /// The IPv6 prefix length (64).
    pub const IPV6_PREFIX: u8 = 64;
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} {}/{}",
            self.ipv4(0),
            Self::IPV4_PREFIX,
            self.ipv6(0),
            Self::IPV6_PREFIX
        )
    }
}

/// A target machine: its own namespace with one interface towards the
/// scanner. Dereferences to its [`Namespace`] for listeners, daemons,
/// firewall rules and sysctls.
#[derive(Debug)]
pub struct Host {
    namespace: Namespace,
    subnet: Subnet,
    ipv4: Ipv4Addr,
    ipv6: Ipv6Addr,
    interface: String,
    scanner_interface: String,
}

impl Host {
    /// The host's namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The host's IPv4 address.
    pub fn ipv4(&self) -> Ipv4Addr {
        self.ipv4
    }

    /// The host's IPv6 address.
    pub fn ipv6(&self) -> Ipv6Addr {
        self.ipv6
    }

    /// Both addresses, IPv4 first.
    pub fn addrs(&self) -> [IpAddr; 2] {
        [self.ipv4.into(), self.ipv6.into()]
    }

    /// `ipv4:port`.
    pub fn socket_v4(&self, port: u16) -> SocketAddr {
        (self.ipv4, port).into()
    }

    /// `[ipv6]:port`.
    pub fn socket_v6(&self, port: u16) -> SocketAddr {
        (self.ipv6, port).into()
    }

    /// The link's subnet.
    pub fn subnet(&self) -> Subnet {
        self.subnet
    }

    /// The scanner's IPv4 address on this host's link.
    pub fn scanner_ipv4(&self) -> Ipv4Addr {
        self.subnet.ipv4(1)
    }

    /// The scanner's IPv6 address on this host's link.
    pub fn scanner_ipv6(&self) -> Ipv6Addr {
        self.subnet.ipv6(1)
    }

    /// The host's interface, inside its namespace (`eth0`).
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The scanner namespace's interface that reaches this host.
    pub fn scanner_interface(&self) -> &str {
        &self.scanner_interface
    }
}

impl Deref for Host {
    type Target = Namespace;

    fn deref(&self) -> &Namespace {
        &self.namespace
    }
}

/// Several hosts on one Ethernet segment with the scanner: a bridge in its
/// own "switch" namespace, the scanner and each host attached by a veth
/// pair, all in one subnet (for ARP and neighbour-discovery scans).
#[derive(Debug)]
pub struct Segment {
    hosts: Vec<Host>,
    switch: Namespace,
    subnet: Subnet,
    scanner_interface: String,
}

impl Segment {
    /// The segment's hosts, `.2`, `.3`, ... in order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The `index`-th host. Panics if out of range.
    pub fn host(&self, index: usize) -> &Host {
        &self.hosts[index]
    }

    /// The namespace holding the bridge `br0`.
    pub fn switch(&self) -> &Namespace {
        &self.switch
    }

    /// The segment's subnet.
    pub fn subnet(&self) -> Subnet {
        self.subnet
    }

    /// The scanner's IPv4 address on the segment.
    pub fn scanner_ipv4(&self) -> Ipv4Addr {
        self.subnet.ipv4(1)
    }

    /// The scanner's IPv6 address on the segment.
    pub fn scanner_ipv6(&self) -> Ipv6Addr {
        self.subnet.ipv6(1)
    }

    /// The scanner namespace's interface on the segment.
    pub fn scanner_interface(&self) -> &str {
        &self.scanner_interface
    }
}

/// Describes a lab before creating it; see [`Lab::builder`].
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct LabBuilder {
    hosts: usize,
    segments: Vec<usize>,
    no_icmp_rate_limits: bool,
}

impl LabBuilder {
    /// Adds `count` point-to-point hosts.
    pub fn hosts(mut self, count: usize) -> Self {
        self.hosts += count;
        self
    }

    /// Adds a bridged segment of `hosts` hosts (1 to [`MAX_SEGMENT_HOSTS`]).
    pub fn segment(mut self, hosts: usize) -> Self {
        self.segments.push(hosts);
        self
    }

    /// Lifts the ICMP error rate limits on every host created at build time
    /// (see [`Namespace::disable_icmp_rate_limits`]). By default hosts keep
    /// the kernel's limits, like real machines.
    pub fn without_icmp_rate_limits(mut self) -> Self {
        self.no_icmp_rate_limits = true;
        self
    }

    /// Creates the namespaces and links. Sweeps namespaces leaked by dead
    /// processes first. On error, whatever was created is removed again.
    pub fn build(self) -> Result<Lab, LabError> {
        // Best effort: a failure to sweep must not fail this test.
        let _ = sweep_stale_namespaces();
        let id = next_stem();
        let scanner = Namespace::create(format!("{id}s"))?;
        let mut lab = Lab {
            hosts: Vec::new(),
            segments: Vec::new(),
            scanner,
            id,
        };
        for _ in 0..self.hosts {
            lab.add_host()?;
        }
        for &size in &self.segments {
            lab.add_segment(size)?;
        }
        if self.no_icmp_rate_limits {
            for host in lab.all_hosts() {
                host.disable_icmp_rate_limits()?;
            }
        }
        lab.wait_until_links_work()?;
        Ok(lab)
    }
}

/// One test's isolated network: a scanner namespace and target hosts.
/// Dropping it (also while panicking) deletes every namespace it created.
#[derive(Debug)]
pub struct Lab {
    // Declared before `scanner` so that targets are torn down first.
    hosts: Vec<Host>,
    segments: Vec<Segment>,
    scanner: Namespace,
    id: String,
}

impl Lab {
    /// Starts describing a lab (no hosts by default).
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    /// The `pl<pid>x<n>` stem shared by this lab's namespace names.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The namespace the scanner runs in: `lo` and one interface per link,
    /// no default route.
    pub fn scanner(&self) -> &Namespace {
        &self.scanner
    }

    /// The point-to-point hosts, in creation order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The `index`-th point-to-point host. Panics if out of range.
    pub fn host(&self, index: usize) -> &Host {
        &self.hosts[index]
    }

    /// The bridged segments, in creation order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The `index`-th segment. Panics if out of range.
    pub fn segment(&self, index: usize) -> &Segment {
        &self.segments[index]
    }

    /// Every host: point-to-point ones, then those of each segment.
    pub fn all_hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts
            .iter()
            .chain(self.segments.iter().flat_map(|s| s.hosts.iter()))
    }

    /// The names of every namespace of this lab.
    pub fn namespace_names(&self) -> Vec<String> {
        let mut names = vec![self.scanner.name().to_owned()];
        names.extend(self.all_hosts().map(|h| h.name().to_owned()));
        names.extend(self.segments.iter().map(|s| s.switch.name().to_owned()));
        names
    }

    /// A command running `program` in `namespace` via `ip netns exec`; see
    /// [`Namespace::command`].
    pub fn command_in(
        &self,
        namespace: &Namespace,
        program: impl AsRef<std::ffi::OsStr>,
    ) -> Command {
        namespace.command(program)
    }

    /// Adds a point-to-point host: namespace `<id>h<i>`, scanner interface
    /// `ph<i>` to the host's `eth0`, on a fresh subnet. Both ends know each
    /// other's link-layer address from the start (see `neighbour_script`);
    /// hosts on segments start with empty neighbour tables, as discovery
    /// tests want.
    pub fn add_host(&mut self) -> Result<&Host, LabError> {
        let index = self.hosts.len();
        let subnet = Subnet::allocate();
        let namespace = Namespace::create(format!("{}h{index}", self.id))?;
        let scanner_interface = format!("ph{index}");
        self.scanner.ip_batch(&format!(
            "link add {scanner_interface} type veth peer name eth0 netns {peer}\n{addrs}",
            peer = namespace.name(),
            addrs = address_script(&scanner_interface, subnet, 1),
        ))?;
        namespace.ip_batch(&format!(
            "{}{}",
            address_script("eth0", subnet, 2),
            neighbour_script("eth0", subnet, 1)
        ))?;
        self.scanner
            .ip_batch(&neighbour_script(&scanner_interface, subnet, 2))?;
        self.hosts.push(Host {
            namespace,
            subnet,
            ipv4: subnet.ipv4(2),
            ipv6: subnet.ipv6(2),
            interface: "eth0".into(),
            scanner_interface,
        });
        Ok(&self.hosts[index])
    }

    /// Adds a bridged segment of `hosts` hosts: a switch namespace
    /// `<id>w<k>` with bridge `br0`, scanner interface `pg<k>`, and host
    /// namespaces `<id>g<k>h<j>` each with `eth0`, all in one fresh subnet.
    pub fn add_segment(&mut self, hosts: usize) -> Result<&Segment, LabError> {
        if !(1..=MAX_SEGMENT_HOSTS).contains(&hosts) {
            return Err(LabError::Invalid(format!(
                "segment of {hosts} hosts (1..={MAX_SEGMENT_HOSTS})"
            )));
        }
        let index = self.segments.len();
        let subnet = Subnet::allocate();
        let switch = Namespace::create(format!("{}w{index}", self.id))?;
        // No STP (ports forward at once) and no multicast snooping (which can
        // swallow neighbour solicitations without a querier).
        switch
            .ip_batch("link add br0 type bridge stp_state 0 mcast_snooping 0\nlink set br0 up\n")?;
        let scanner_interface = format!("pg{index}");
        self.scanner.ip_batch(&format!(
            "link add {scanner_interface} type veth peer name uplink netns {switch}\n{addrs}",
            switch = switch.name(),
            addrs = address_script(&scanner_interface, subnet, 1),
        ))?;
        let mut switch_script = String::from("link set uplink master br0 up\n");
        let mut members = Vec::with_capacity(hosts);
        for j in 0..hosts {
            let namespace = Namespace::create(format!("{}g{index}h{j}", self.id))?;
            let host_octet = 2 + j as u8;
            namespace.ip_batch(&format!(
                "link add eth0 type veth peer name p{j} netns {switch}\n{addrs}",
                switch = switch.name(),
                addrs = address_script("eth0", subnet, host_octet),
            ))?;
            switch_script.push_str(&format!("link set p{j} master br0 up\n"));
            members.push(Host {
                namespace,
                subnet,
                ipv4: subnet.ipv4(host_octet),
                ipv6: subnet.ipv6(host_octet.into()),
                interface: "eth0".into(),
                scanner_interface: scanner_interface.clone(),
            });
        }
        switch.ip_batch(&switch_script)?;
        self.segments.push(Segment {
            hosts: members,
            switch,
            subnet,
            scanner_interface,
        });
        Ok(&self.segments[index])
    }
}

impl Lab {
    /// Waits until every link of the lab carries traffic. A veth pair
    /// reports its carrier at once, but the kernel starts sending on it
    /// only once its link watch has run, up to a second later; until then
    /// packets are dropped (a fresh lab would lose its first probes).
    fn wait_until_links_work(&self) -> Result<(), LabError> {
        let namespaces = std::iter::once(&self.scanner)
            .chain(self.all_hosts().map(|h| &h.namespace))
            .chain(self.segments.iter().map(|s| &s.switch));
        for namespace in namespaces {
            let mut waited = 0;
            loop {
                let links = namespace.ip(&["-o", "link", "show"])?;
                let ready = links
                    .lines()
                    .filter(|l| !l.contains(" lo:"))
                    .all(|l| l.contains("state UP"));
                if ready {
                    break;
                }
                if waited >= LINK_WAIT_TRIES {
                    return Err(LabError::Invalid(format!(
                        "links of {} not up after {} ms: {links}",
                        namespace.name(),
                        LINK_WAIT_TRIES * LINK_WAIT_STEP.as_millis() as u32
                    )));
                }
                waited += 1;
                std::thread::sleep(LINK_WAIT_STEP);
            }
        }
        Ok(())
    }

    /// Routes `prefix` (IPv4 inside `198.18.0.0/15` or IPv6 inside
    /// `fd00::/8`, e.g. `198.19.0.0/16`) from the scanner through `host`,
    /// which takes every address in it as its own (a `local` route on its
    /// loopback): one namespace stands in for a whole routed range of live
    /// machines, behind a gateway. The lab's own link subnets inside the
    /// prefix keep their more specific connected routes.
    pub fn route_range_to(&self, host: &Host, prefix: &str) -> Result<(), LabError> {
        // `ip` takes the family from the addresses.
        let gateway = match lab_prefix(prefix)? {
            IpAddr::V4(_) => host.ipv4().to_string(),
            IpAddr::V6(_) => host.ipv6().to_string(),
        };
        self.scanner
            .ip_batch(&format!("route add {prefix} via {gateway}\n"))?;
        // The link's own subnet stays on the link even if the prefix holds
        // it: the `local` route would otherwise take the scanner's address
        // too (the local table is searched first, by longest prefix).
        let subnet = host.subnet();
        host.ip_batch(&format!(
            "route add local {prefix} dev lo\n\
             route replace unicast {v4}/{p4} dev {link} table local\n\
             route replace unicast {v6}/{p6} dev {link} table local\n",
            v4 = subnet.ipv4(0),
            p4 = Subnet::IPV4_PREFIX,
            v6 = subnet.ipv6(0),
            p6 = Subnet::IPV6_PREFIX,
            link = host.interface(),
        ))
        .map(drop)
    }
}

/// Checks that `prefix` is a network inside the lab ranges and returns its
/// address.
fn lab_prefix(prefix: &str) -> Result<IpAddr, LabError> {
    let invalid = || {
        LabError::Invalid(format!(
            "{prefix}: not a prefix inside 198.18.0.0/15 or fd00::/8"
        ))
    };
    let (addr, len) = prefix.split_once('/').ok_or_else(invalid)?;
    let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
    let len: u8 = len.parse().map_err(|_| invalid())?;
    let inside = match addr {
        IpAddr::V4(a) => {
            (15..=32).contains(&len) && a.octets()[0] == 198 && a.octets()[1] & 0xfe == 18
        }
        IpAddr::V6(a) => (8..=128).contains(&len) && a.segments()[0] & 0xff00 == 0xfd00,
    };
    if inside { Ok(addr) } else { Err(invalid()) }
}

/// `ip -batch` lines that enter the `host`-th addresses of `subnet` as a
/// neighbour reachable on `interface`: a lab link is as warm as a network
/// that has long been up, where the kernel resolved its neighbours long
/// ago (a link just brought up loses the first Neighbor Solicitations,
/// and the kernel sends the next a second later).
fn neighbour_script(interface: &str, subnet: Subnet, host: u8) -> String {
    format!(
        "neigh replace {v4} lladdr {mac} dev {interface} nud reachable\n\
         neigh replace {v6} lladdr {mac} dev {interface} nud reachable\n",
        mac = subnet.mac(host),
        v4 = subnet.ipv4(host),
        v6 = subnet.ipv6(host.into()),
    )
}

/// `ip -batch` lines giving `interface` the `host`-th addresses of `subnet`
/// and bringing it up.
fn address_script(interface: &str, subnet: Subnet, host: u8) -> String {
    format!(
        "link set {interface} address {mac}\n\
         address add {v4}/{p4} dev {interface}\n\
         address add {v6}/{p6} dev {interface} nodad\n\
         link set {interface} up\n",
        mac = subnet.mac(host),
        v4 = subnet.ipv4(host),
        p4 = Subnet::IPV4_PREFIX,
        v6 = subnet.ipv6(host.into()),
        p6 = Subnet::IPV6_PREFIX,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_pair_ipv4_and_ipv6() {
        let s = Subnet::from_block(5);
        assert_eq!(s.ipv4(2), Ipv4Addr::new(198, 18, 5, 2));
        assert_eq!(s.ipv6(2), "fd00:18:5::2".parse::<Ipv6Addr>().unwrap());
        let last = Subnet::from_block(511);
        assert_eq!(last.ipv4(1), Ipv4Addr::new(198, 19, 255, 1));
        assert_eq!(last.ipv6(1), "fd00:19:255::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(Subnet::from_block(512), Subnet::from_block(0));
        assert_eq!(s.to_string(), "198.18.5.0/24 fd00:18:5::/64");
    }

    #[test]
    fn routed_ranges_stay_in_the_lab_ranges() {
        assert!(lab_prefix("198.19.0.0/16").is_ok());
        assert!(lab_prefix("198.18.0.0/15").is_ok());
        assert!(lab_prefix("fd00:99::/64").is_ok());
        for bad in [
            "198.16.0.0/12",
            "10.0.0.0/8",
            "198.20.0.0/16",
            "fe80::/64",
            "198.19.0.0",
            "x/8",
            "198.19.0.0/33",
        ] {
            assert!(lab_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_subnet_stays_in_the_lab_ranges() {
        for block in 0..512 {
            let s = Subnet::from_block(block);
            let v4 = s.ipv4(254).octets();
            assert!(v4[0] == 198 && (v4[1] & 0xfe) == 18, "{s}");
            assert_eq!(s.ipv6(2).segments()[0] & 0xff00, 0xfd00, "{s}");
        }
    }

    #[test]
    fn labs_can_move_between_and_be_shared_by_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Lab>();
        send_sync::<Host>();
        send_sync::<crate::TcpService>();
        send_sync::<crate::Daemon>();
    }

    #[test]
    fn consecutive_allocations_differ() {
        assert_ne!(Subnet::allocate(), Subnet::allocate());
    }
}
