//! Operating-system specifics of the transports: the raw, frame and packet
//! sockets with their kernel filter, batched sending (`sendmmsg`),
//! resource limits, capabilities, and the ICMP error queue of sockets.
//!
//! Linux reports the ICMP error that ended a connection attempt only as
//! an errno, which loses the ICMP code (admin-prohibited and host
//! unreachable both become `EHOSTUNREACH`), and since 6.x it holds back
//! an ICMPv6 error for a SYN until the first retransmission (a second
//! later). With `IP_RECVERR`/`IPV6_RECVERR` set, the error is reported at
//! once and queued with its type and code (ip(7), ipv6(7),
//! `sock_extended_err`); [`take_icmp_error`] reads it back.
//!
//! This is the only module with `unsafe`; each block says why it is sound.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use crate::ring::Arrival;

/// Where a queued socket error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpFamily {
    /// ICMP for IPv4.
    V4,
    /// ICMPv6.
    V6,
}

/// An ICMP error queued on a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpError {
    /// ICMP or ICMPv6.
    pub family: IcmpFamily,
    /// The ICMP type.
    pub icmp_type: u8,
    /// The ICMP code.
    pub code: u8,
}

/// Asks the kernel to queue ICMP errors on the socket (`IP_RECVERR` or
/// `IPV6_RECVERR`) and to report them at once.
pub fn enable_icmp_errors(fd: RawFd, ipv6: bool) -> io::Result<()> {
    let (level, name) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVERR)
    };
    let on: libc::c_int = 1;
    // SAFETY: `on` is a live c_int and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads one ICMP error from the socket's error queue, without blocking.
pub fn take_icmp_error(fd: RawFd) -> Option<IcmpError> {
    // Room for one control message carrying a sock_extended_err and the
    // offender's sockaddr_in6, with alignment to spare.
    let mut control = [0u64; 16];
    let mut data = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: a zeroed msghdr is valid (null name, no iovecs); the fields
    // set below point at live local buffers of the lengths given.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `msg` describes buffers that outlive the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if n < 0 {
        return None;
    }
    // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR walk the control buffer the kernel
    // filled, bounded by msg_controllen; CMSG_DATA of a header they return
    // points inside that buffer. The payload is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            let is_err = (c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_RECVERR)
                || (c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_RECVERR);
            let len = c.cmsg_len as usize;
            if is_err
                && len
                    >= libc::CMSG_LEN(std::mem::size_of::<libc::sock_extended_err>() as u32)
                        as usize
            {
                let ee: libc::sock_extended_err =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                let family = match ee.ee_origin {
                    libc::SO_EE_ORIGIN_ICMP => IcmpFamily::V4,
                    libc::SO_EE_ORIGIN_ICMP6 => IcmpFamily::V6,
                    _ => return None,
                };
                return Some(IcmpError {
                    family,
                    icmp_type: ee.ee_type,
                    code: ee.ee_code,
                });
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    None
}

/// Raises the soft open-file limit to the hard limit where the process
/// may, and returns the soft limit now in force.
pub fn raise_open_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit read by setrlimit only.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    lim.rlim_cur
}

/// Whether a packet socket saw a packet leave (`PACKET_OUTGOING`); those
/// are our own probes on loopback and are skipped.
pub const PACKET_OUTGOING: u8 = libc::PACKET_OUTGOING;

/// Opens the raw sending socket of one family: `IPPROTO_RAW`, so that the
/// packets carry our own IP header (`IP_HDRINCL` is implied for IPv4, and
/// for IPv6 on Linux 4.5 and later). Needs `CAP_NET_RAW`.
pub fn open_raw_sender(ipv6: bool) -> io::Result<socket2::Socket> {
    let domain = if ipv6 {
        socket2::Domain::IPV6
    } else {
        socket2::Domain::IPV4
    };
    let socket = socket2::Socket::new(
        domain,
        socket2::Type::RAW.nonblocking().cloexec(),
        Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
    )?;
    // Room for bursts of probes; a full buffer surfaces as ENOBUFS.
    let _ = socket.set_send_buffer_size(4 << 20);
    Ok(socket)
}

/// Opens the frame sending socket: a packet socket (`AF_PACKET`,
/// `SOCK_RAW`) for whole Ethernet frames, bound to no protocol so that it
/// receives nothing, with `PACKET_QDISC_BYPASS`, so that a frame goes
/// straight to the driver (no queueing discipline, as with a raw socket
/// that already paces its own sending). Needs `CAP_NET_RAW`.
pub fn open_frame_sender() -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::PACKET,
        socket2::Type::RAW.nonblocking().cloexec(),
        Some(socket2::Protocol::from(0)),
    )?;
    let _ = socket.set_send_buffer_size(4 << 20);
    set_int_option(
        socket.as_raw_fd(),
        libc::SOL_PACKET,
        libc::PACKET_QDISC_BYPASS,
        1,
    )?;
    Ok(socket)
}

/// Binds a packet socket to one interface (`-e`), so that it sees only
/// that interface's packets.
pub fn bind_packet_socket(fd: RawFd, ifindex: u32) -> io::Result<()> {
    // SAFETY: a zeroed sockaddr_ll is valid; the fields set below make it a
    // bind address for every protocol on one interface.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as libc::sa_family_t;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = ifindex as libc::c_int;
    // SAFETY: `addr` is a live sockaddr_ll and the length passed is its size.
    let rc = unsafe {
        libc::bind(
            fd,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Opens a packet socket that receives every IP packet of the network
/// namespace from its network header on (`AF_PACKET`, `SOCK_DGRAM`), with
/// a classic BPF filter that lets through only ARP, ICMP, ICMPv6 and the
/// IP protocols in `answers` (the probe modules' answer protocols). Needs
/// `CAP_NET_RAW`.
pub fn open_packet_receiver(answers: &[u8]) -> io::Result<socket2::Socket> {
    let protocol = (libc::ETH_P_ALL as u16).to_be() as i32;
    let socket = socket2::Socket::new(
        socket2::Domain::PACKET,
        socket2::Type::DGRAM.nonblocking().cloexec(),
        Some(socket2::Protocol::from(protocol)),
    )?;
    // The receive buffer absorbs bursts of answers between reads; root may
    // exceed rmem_max.
    let size: libc::c_int = 32 << 20;
    if set_int_option(
        socket.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        size,
    )
    .is_err()
    {
        let _ = socket.set_recv_buffer_size(size as usize);
    }
    attach_reply_filter(&socket, answers)?;
    Ok(socket)
}

/// Replaces the kernel filter of a receiving packet socket with one that
/// passes ARP, ICMP, ICMPv6 and the IP protocols in `answers`.
pub fn attach_reply_filter(socket: &socket2::Socket, answers: &[u8]) -> io::Result<()> {
    socket.attach_filter(&reply_filter(answers))
}

/// Replaces the kernel filter of a packet socket with one for watching
/// traffic (`portolan detect --iface`): IPv4 and IPv6 packets of ICMP,
/// ICMPv6 and the IP protocols in `protocols`, and ARP, both those the
/// interface receives and, with `outgoing`, those it sends (a host's
/// answers to a scan are what prove it one); cut to [`CAPTURE_SNAP`]
/// bytes, as the headers are all a watcher reads.
pub fn attach_capture_filter(
    socket: &socket2::Socket,
    protocols: &[u8],
    outgoing: bool,
) -> io::Result<()> {
    socket.attach_filter(&to_socket_filter(program(
        protocols,
        capture_spec(outgoing),
    )))
}

/// What [`attach_capture_filter`] lets through besides its protocols.
fn capture_spec(outgoing: bool) -> FilterSpec {
    FilterSpec {
        outgoing,
        arp: true,
        snap: CAPTURE_SNAP,
    }
}

/// Bytes of each packet a capture filter keeps: the IP and transport
/// headers, and the headers an ICMP error quotes.
pub const CAPTURE_SNAP: u32 = 512;

/// Sets an integer socket option that socket2 has no method for.
fn set_int_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Classic BPF over a packet that starts at its network header: drop what
/// this machine sends (our own probes, seen leaving; the kernel's RSTs);
/// accept ARP (for host discovery), IPv4 ICMP and IPv6 ICMPv6 (errors and
/// query replies), and the IP protocols of `answers` in either version;
/// drop everything else; all in the kernel, before anything is copied to
/// us. At most 64 protocols are taken (the jumps must fit in a byte).
fn reply_filter(answers: &[u8]) -> Vec<socket2::SockFilter> {
    to_socket_filter(reply_program(answers))
}

fn to_socket_filter(program: Vec<Bpf>) -> Vec<socket2::SockFilter> {
    program
        .into_iter()
        .map(|i| socket2::SockFilter::new(i.code, i.jt, i.jf, i.k))
        .collect()
}

/// What a packet socket's filter lets through besides its IP protocols.
#[derive(Clone, Copy, Debug)]
struct FilterSpec {
    /// Packets this machine sends.
    outgoing: bool,
    /// ARP.
    arp: bool,
    /// Most bytes of a packet kept.
    snap: u32,
}

/// One classic BPF instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bpf {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
const ALU_RSH: u16 = (libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Ancillary fields: the packet type (SKF_AD_OFF + SKF_AD_PKTTYPE) and
/// the link-layer protocol (SKF_AD_OFF + SKF_AD_PROTOCOL).
const PKTTYPE: u32 = (-0x1000i32 + 4) as u32;
const PROTOCOL: u32 = (-0x1000i32) as u32;

/// The program of [`reply_filter`].
fn reply_program(answers: &[u8]) -> Vec<Bpf> {
    program(
        answers,
        FilterSpec {
            outgoing: false,
            arp: true,
            snap: 0x0004_0000,
        },
    )
}

/// The filter program: the same layout whatever `spec` says (a kept
/// direction or protocol jumps to the next test instead of to its verdict).
fn program(protocols: &[u8], spec: FilterSpec) -> Vec<Bpf> {
    let bpf = |code, jt, jf, k| Bpf { code, jt, jf, k };
    let family = |icmp: u8, other: u8| -> Vec<u8> {
        let mut list = vec![icmp];
        for &p in protocols.iter().take(64) {
            if p != other && !list.contains(&p) {
                list.push(p);
            }
        }
        list
    };
    let (v4, v6) = (family(1, 58), family(58, 1));
    // Layout: 0-6 the common head, then the IPv4 block (a load and a test
    // per protocol), the IPv6 block likewise, drop, accept.
    let v4_at = 7;
    let v6_at = v4_at + 1 + v4.len();
    let drop_at = v6_at + 1 + v6.len();
    let accept_at = drop_at + 1;
    // A jump from instruction `from` to `to` (offsets count from the next
    // instruction).
    let to = |from: usize, to: usize| (to - from - 1) as u8;
    let outgoing_to = if spec.outgoing { 0 } else { to(1, drop_at) };
    let arp_to = if spec.arp {
        to(3, accept_at)
    } else {
        to(3, drop_at)
    };
    let mut program = vec![
        bpf(LD_B_ABS, 0, 0, PKTTYPE), // A = packet type
        bpf(JEQ, outgoing_to, 0, libc::PACKET_OUTGOING as u32), // outgoing: drop (or read on)
        bpf(LD_H_ABS, 0, 0, PROTOCOL), // A = EtherType
        bpf(JEQ, arp_to, 0, libc::ETH_P_ARP as u32), // ARP: accept (or drop)
        bpf(LD_B_ABS, 0, 0, 0),       // A = first byte
        bpf(ALU_RSH, 0, 0, 4),        // A = IP version
        bpf(JEQ, 0, to(6, v6_at), 4), // IPv4, else IPv6
    ];
    for (load, offset, list) in [(v4_at, 9, &v4), (v6_at, 6, &v6)] {
        // A = the IPv4 protocol or the IPv6 next header.
        program.push(bpf(LD_B_ABS, 0, 0, offset));
        for (i, &p) in list.iter().enumerate() {
            let at = load + 1 + i;
            let next = if i + 1 == list.len() { drop_at } else { at + 1 };
            program.push(bpf(JEQ, to(at, accept_at), to(at, next), u32::from(p)));
        }
    }
    program.push(bpf(RET, 0, 0, 0)); // drop
    program.push(bpf(RET, 0, 0, spec.snap)); // accept (reply filter: up to 256 KiB)
    program
}

/// Reads one packet from a packet socket without blocking: its length
/// and packet type (`PACKET_HOST`, `PACKET_OUTGOING`, ...), or `None` when
/// nothing is waiting.
pub fn recv_packet(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<(usize, Arrival)>> {
    // SAFETY: a zeroed sockaddr_ll is valid; recvfrom writes at most `len`
    // bytes into it and at most `buf.len()` bytes into `buf`.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: see above; all pointers are to live locals or `buf`.
    let n = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            (&mut addr as *mut libc::sockaddr_ll).cast(),
            &mut len,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    let mac = (addr.sll_halen == 6).then(|| {
        let a = addr.sll_addr;
        [a[0], a[1], a[2], a[3], a[4], a[5]]
    });
    let arrival = Arrival {
        kind: addr.sll_pkttype,
        mac,
    };
    Ok(Some(((n as usize).min(buf.len()), arrival)))
}

/// A batch of packets for one `sendmmsg(2)` call: buffers, addresses and
/// message headers allocated once and reused, so sending allocates
/// nothing per probe.
pub struct SendBatch {
    packets: Vec<[u8; SendBatch::PACKET_MAX]>,
    lens: Vec<usize>,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: Vec<libc::socklen_t>,
    used: usize,
}

impl SendBatch {
    /// Largest packet a batch slot holds.
    /// (An Ethernet frame with an IPv6 header and the longest UDP payload,
    /// QUIC's 1200 bytes.)
    pub const PACKET_MAX: usize = 1280;
    /// Packets per batch.
    pub const CAPACITY: usize = 64;

    /// An empty batch.
    pub fn new() -> SendBatch {
        SendBatch {
            packets: vec![[0u8; Self::PACKET_MAX]; Self::CAPACITY],
            lens: vec![0; Self::CAPACITY],
            // SAFETY: an all-zero sockaddr_storage is a valid value.
            addrs: vec![unsafe { std::mem::zeroed() }; Self::CAPACITY],
            addr_lens: vec![0; Self::CAPACITY],
            used: 0,
        }
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.used
    }

    /// Whether no packet waits.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Drops every waiting packet.
    pub fn clear(&mut self) {
        self.used = 0;
    }

    /// Whether the batch is full.
    pub fn is_full(&self) -> bool {
        self.used == Self::CAPACITY
    }

    /// The next free packet buffer; call [`SendBatch::commit`] after
    /// writing it. `None` when full.
    pub fn next_buffer(&mut self) -> Option<&mut [u8; Self::PACKET_MAX]> {
        self.packets.get_mut(self.used)
    }

    /// Adds the packet written into the next buffer, `len` bytes to `dst`.
    pub fn commit(&mut self, len: usize, dst: std::net::IpAddr) {
        if self.used == Self::CAPACITY {
            return;
        }
        let sock: socket2::SockAddr = std::net::SocketAddr::new(dst, 0).into();
        // SAFETY: `sock` holds a valid address of `sock.len()` bytes, which
        // fits a sockaddr_storage.
        unsafe {
            std::ptr::copy_nonoverlapping(
                sock.as_ptr().cast::<u8>(),
                (&mut self.addrs[self.used] as *mut libc::sockaddr_storage).cast::<u8>(),
                sock.len() as usize,
            );
        }
        self.addr_lens[self.used] = sock.len();
        self.lens[self.used] = len.min(Self::PACKET_MAX);
        self.used += 1;
    }

    /// Adds the frame written into the next buffer, `len` bytes from its
    /// Ethernet header on, to leave on interface `ifindex` (for a socket
    /// from [`open_frame_sender`]).
    pub fn commit_frame(&mut self, len: usize, ifindex: u32) {
        if self.used == Self::CAPACITY {
            return;
        }
        // SAFETY: an all-zero sockaddr_ll is valid, and a sockaddr_ll fits
        // in a sockaddr_storage, which is aligned for any address.
        unsafe {
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as libc::sa_family_t;
            addr.sll_ifindex = ifindex as libc::c_int;
            std::ptr::write(
                (&mut self.addrs[self.used] as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_ll>(),
                addr,
            );
        }
        self.addr_lens[self.used] = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        self.lens[self.used] = len.min(Self::PACKET_MAX);
        self.used += 1;
    }

    /// Sends the batch with `sendmmsg`; returns how many packets went (in
    /// order from the first) and the error that stopped the rest, if any.
    /// The batch is empty afterwards.
    pub fn flush(&mut self, fd: RawFd) -> (usize, Option<io::Error>) {
        let n = self.used;
        self.used = 0;
        if n == 0 {
            return (0, None);
        }
        let mut iovecs: [libc::iovec; Self::CAPACITY] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; Self::CAPACITY];
        // SAFETY: an all-zero mmsghdr is valid; the fields set below point
        // into `self`'s buffers and `iovecs`, which outlive the call.
        let mut msgs: [libc::mmsghdr; Self::CAPACITY] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            iovecs[i] = libc::iovec {
                iov_base: self.packets[i].as_mut_ptr().cast(),
                iov_len: self.lens[i],
            };
            msgs[i].msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            msgs[i].msg_hdr.msg_namelen = self.addr_lens[i];
            msgs[i].msg_hdr.msg_iov = &mut iovecs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < n {
            // SAFETY: `msgs[sent..n]` are initialised headers (see above).
            let rc = unsafe { libc::sendmmsg(fd, msgs[sent..].as_mut_ptr(), (n - sent) as u32, 0) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return (sent, Some(e));
            }
            if rc == 0 {
                return (sent, Some(io::Error::from(io::ErrorKind::WriteZero)));
            }
            sent += rc as usize;
        }
        (sent, None)
    }
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch::new()
    }
}

/// The source address the kernel would use to reach `dst` (a route
/// lookup through an unconnected UDP socket's `connect`, which sends
/// nothing).
pub fn source_for(dst: std::net::IpAddr) -> io::Result<std::net::IpAddr> {
    let bind: std::net::SocketAddr = match dst {
        std::net::IpAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        std::net::IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(bind)?;
    socket.connect((dst, 9))?;
    Ok(socket.local_addr()?.ip())
}

/// This machine's own addresses (every interface's, IPv4 and IPv6), from
/// `getifaddrs(3)`; empty if the call fails.
pub fn local_addresses() -> Vec<std::net::IpAddr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Vec::new();
    }
    let mut addrs = Vec::new();
    let mut node = list;
    while !node.is_null() {
        // SAFETY: `node` is a live element of the list getifaddrs made;
        // each ifa_addr is null or points to a sockaddr of its family.
        unsafe {
            let sa = (*node).ifa_addr;
            if !sa.is_null() {
                match i32::from((*sa).sa_family) {
                    libc::AF_INET => {
                        let v4 = &*(sa as *const libc::sockaddr_in);
                        addrs.push(
                            std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)).into(),
                        );
                    }
                    libc::AF_INET6 => {
                        let v6 = &*(sa as *const libc::sockaddr_in6);
                        addrs.push(std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr).into());
                    }
                    _ => {}
                }
            }
            node = (*node).ifa_next;
        }
    }
    // SAFETY: frees the list getifaddrs made, once.
    unsafe { libc::freeifaddrs(list) };
    addrs
}

/// Drops every capability of the process (effective, permitted and
/// inheritable) and forbids gaining new privileges, once the raw sockets
/// are open: what a scan still needs after that is what it already holds.
pub fn drop_capabilities() -> io::Result<()> {
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: capset(2) reads a version-3 header and two data structs,
    // which `header` and `data` are, alive for the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_file_limit_is_positive() {
        assert!(super::raise_open_file_limit() >= 16);
    }

    /// Runs the reply filter as the kernel would over a packet of link
    /// protocol `ethertype` and packet type `kind`; whether it passes.
    fn passes(program: &[Bpf], ethertype: u16, kind: u8, packet: &[u8]) -> bool {
        let (mut a, mut pc) = (0u32, 0usize);
        for _ in 0..program.len() {
            let i = program[pc];
            pc += 1;
            match i.code {
                LD_B_ABS if i.k == PKTTYPE => a = u32::from(kind),
                LD_H_ABS if i.k == PROTOCOL => a = u32::from(ethertype),
                LD_B_ABS => a = packet.get(i.k as usize).copied().map_or(0, u32::from),
                ALU_RSH => a >>= i.k,
                JEQ => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                RET => return i.k > 0,
                other => panic!("instruction {other:#x}"),
            }
        }
        panic!("the program ran off its end");
    }

    /// An IPv4 header of protocol `protocol`.
    fn v4(protocol: u8) -> [u8; 20] {
        let mut p = [0u8; 20];
        p[0] = 0x45;
        p[9] = protocol;
        p
    }

    /// An IPv6 header with next header `next`.
    fn v6(next: u8) -> [u8; 40] {
        let mut p = [0u8; 40];
        p[0] = 0x60;
        p[6] = next;
        p
    }

    #[test]
    fn the_reply_filter_passes_what_the_modules_read_and_nothing_else() {
        const IPV4: u16 = libc::ETH_P_IP as u16;
        const IPV6: u16 = libc::ETH_P_IPV6 as u16;
        let host = libc::PACKET_HOST;
        let outgoing = libc::PACKET_OUTGOING;
        let tcp_only = reply_program(&[6]);
        assert!(passes(&tcp_only, IPV4, host, &v4(6)));
        assert!(passes(&tcp_only, IPV4, host, &v4(1)), "ICMP errors");
        assert!(passes(&tcp_only, IPV6, host, &v6(6)));
        assert!(passes(&tcp_only, IPV6, host, &v6(58)), "ICMPv6 errors");
        assert!(passes(&tcp_only, libc::ETH_P_ARP as u16, host, &[]));
        assert!(!passes(&tcp_only, IPV4, host, &v4(17)), "UDP is not read");
        assert!(!passes(&tcp_only, IPV6, host, &v6(132)));
        assert!(!passes(&tcp_only, IPV6, host, &v6(1)), "ICMP for IPv4 only");
        assert!(!passes(&tcp_only, IPV4, outgoing, &v4(6)), "our own probes");
        let every = reply_program(&crate::probe::EVERY_ANSWER);
        for protocol in [1, 6, 17, 132] {
            assert!(passes(&every, IPV4, host, &v4(protocol)), "{protocol}");
        }
        for next in [6, 17, 58, 132] {
            assert!(passes(&every, IPV6, host, &v6(next)), "{next}");
        }
        assert!(!passes(&every, IPV4, host, &v4(47)));
        // Every protocol at once still fits the jumps.
        let all: Vec<u8> = (0..=255).collect();
        let wide = reply_program(&all);
        assert!(passes(&wide, IPV4, host, &v4(63)));
        assert!(!passes(&wide, IPV4, host, &v4(200)), "at most 64 protocols");
    }

    #[test]
    fn the_capture_filter_passes_both_directions_of_the_watched_protocols_and_arp() {
        const IPV4: u16 = libc::ETH_P_IP as u16;
        const IPV6: u16 = libc::ETH_P_IPV6 as u16;
        let (host, outgoing) = (libc::PACKET_HOST, libc::PACKET_OUTGOING);
        let spec = capture_spec;
        let both = program(&[6, 17, 132], spec(true));
        for kind in [host, outgoing] {
            for protocol in [1, 6, 17, 132] {
                assert!(
                    passes(&both, IPV4, kind, &v4(protocol)),
                    "{kind} {protocol}"
                );
            }
            for next in [6, 17, 58, 132] {
                assert!(passes(&both, IPV6, kind, &v6(next)), "{kind} {next}");
            }
            assert!(passes(&both, libc::ETH_P_ARP as u16, kind, &[]), "ARP");
            assert!(!passes(&both, libc::ETH_P_RARP as u16, kind, &[]));
            assert!(!passes(&both, IPV4, kind, &v4(47)));
        }
        let inbound = program(&[6], spec(false));
        assert!(passes(&inbound, IPV4, host, &v4(6)));
        assert!(!passes(&inbound, IPV4, outgoing, &v4(6)));
        // The scanner's filter is the program it always was.
        assert_eq!(
            reply_program(&[6, 17]).len(),
            program(&[6, 17], spec(false)).len()
        );
        assert_eq!(reply_program(&[6])[1].jt, inbound[1].jt);
    }
}
