//! Host-name resolution behind an injectable [`Resolver`], so tests and the
//! engine's dry runs never touch the network.
//!
//! [`SystemResolver`] asks the operating system (`getaddrinfo` through
//! `std::net::ToSocketAddrs`), which may block and may query DNS; it is the
//! only I/O this crate does. Any `Fn(&str) -> io::Result<Vec<IpAddr>>` is a
//! resolver too. Nothing here panics.

use std::io;
use std::net::{IpAddr, ToSocketAddrs};

/// Turns a host name into addresses, in the resolver's order of preference.
pub trait Resolver {
    fn resolve(&self, name: &str) -> io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo`), honouring
/// `/etc/hosts` and `nsswitch.conf`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, name: &str) -> io::Result<Vec<IpAddr>> {
        Ok((name, 0u16)
            .to_socket_addrs()?
            .map(|socket| socket.ip())
            .collect())
    }
}

impl<F> Resolver for F
where
    F: Fn(&str) -> io::Result<Vec<IpAddr>>,
{
    fn resolve(&self, name: &str) -> io::Result<Vec<IpAddr>> {
        self(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_resolver_finds_localhost() {
        let addrs = SystemResolver.resolve("localhost").unwrap();
        assert!(addrs.iter().any(|addr| addr.is_loopback()), "{addrs:?}");
    }

    #[test]
    fn closures_are_resolvers() {
        let fake = |name: &str| -> io::Result<Vec<IpAddr>> {
            match name {
                "a.test" => Ok(vec!["198.18.0.1".parse().unwrap()]),
                _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
            }
        };
        assert_eq!(fake.resolve("a.test").unwrap().len(), 1);
        assert!(fake.resolve("b.test").is_err());
    }
}
