//! The system's DNS servers: the `nameserver` lines of `/etc/resolv.conf`
//! (resolv.conf(5)), in order, on port 53. With none, the C library asks
//! the local host, and so does this.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Where the system's resolver configuration lives.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The servers named by a resolv.conf text; `127.0.0.1:53` when none is.
/// Lines that do not parse are skipped (IPv6 addresses with a `%zone`
/// included).
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    let servers: Vec<SocketAddr> = resolv_conf
        .lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(addr)) => addr.parse::<IpAddr>().ok(),
                _ => None,
            }
        })
        .map(|addr| SocketAddr::new(addr, 53))
        .collect();
    if servers.is_empty() {
        vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53)]
    } else {
        servers
    }
}

/// The servers of [`RESOLV_CONF`] (the local host when it cannot be read).
pub fn system_nameservers() -> Vec<SocketAddr> {
    nameservers(&std::fs::read_to_string(RESOLV_CONF).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_lines_in_order() {
        let text = "# comment\nsearch lab.example\nnameserver 198.18.0.2 # first\n\
                    nameserver fd00::2\nnameserver fe80::1%eth0\nnameserver bogus\n\
                    nameserver\noptions timeout:1\n ; nameserver 198.18.0.9\n";
        let want: Vec<SocketAddr> = vec![
            "198.18.0.2:53".parse().unwrap(),
            "[fd00::2]:53".parse().unwrap(),
        ];
        assert_eq!(nameservers(text), want);
    }

    #[test]
    fn no_nameserver_means_the_local_host() {
        assert_eq!(nameservers(""), vec!["127.0.0.1:53".parse().unwrap()]);
    }
}
