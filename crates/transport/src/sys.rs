//! Operating-system specifics of the transports: resource limits and the
//! ICMP error queue of sockets.
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
use std::os::fd::RawFd;

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

#[cfg(test)]
mod tests {
    #[test]
    fn open_file_limit_is_positive() {
        assert!(super::raise_open_file_limit() >= 16);
    }
}
