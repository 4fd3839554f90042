//! nftables rules for a namespace: raw rulesets and typed helpers for the
//! firewall behaviours a scanner must classify (silent drop, TCP reset,
//! ICMP unreachable of various codes) and for random packet loss.
//!
//! Contract: every helper adds to one `inet` table, [`TABLE`], with an
//! `input` and an `output` chain at filter priority and policy accept, plus
//! `loss_input`/`loss_output` chains (priority -10) owned by
//! [`Namespace::random_loss`]. Rules are appended; the first matching verdict
//! wins. Read first: nft(8), sections "REJECT STATEMENT" and "NUMGEN".

use std::fmt;
use std::ops::RangeInclusive;

use crate::LabError;
use crate::namespace::Namespace;

/// The nftables table (family `inet`) the helpers write to.
pub const TABLE: &str = "portolan";

/// An inclusive range of ports, `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port of the range.
    pub first: u16,
    /// Last port of the range (inclusive).
    pub last: u16,
}

impl From<u16> for PortRange {
    fn from(port: u16) -> Self {
        PortRange {
            first: port,
            last: port,
        }
    }
}

impl From<RangeInclusive<u16>> for PortRange {
    fn from(range: RangeInclusive<u16>) -> Self {
        PortRange {
            first: *range.start(),
            last: *range.end(),
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// The answer a `reject` rule sends instead of letting a packet through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// A TCP RST (TCP only): looks like a closed port.
    TcpReset,
    /// ICMP type 3 code 13 / ICMPv6 type 1 code 1 ("administratively
    /// prohibited"). Linux reports it as `EHOSTUNREACH` (IPv4) and `EACCES`
    /// (IPv6) to a connecting socket.
    AdminProhibited,
    /// ICMP type 3 code 3 / ICMPv6 type 1 code 4 ("port unreachable").
    PortUnreachable,
    /// ICMP type 3 code 1 / ICMPv6 type 1 code 3 ("host unreachable").
    HostUnreachable,
    /// ICMP type 3 code 0 / ICMPv6 type 1 code 0 ("no route").
    NoRoute,
}

impl Rejection {
    fn statement(self) -> &'static str {
        match self {
            Rejection::TcpReset => "reject with tcp reset",
            Rejection::AdminProhibited => "reject with icmpx type admin-prohibited",
            Rejection::PortUnreachable => "reject with icmpx type port-unreachable",
            Rejection::HostUnreachable => "reject with icmpx type host-unreachable",
            Rejection::NoRoute => "reject with icmpx type no-route",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    fn keyword(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// Declarations that create the table and base chains if missing (nft's
/// `add` is idempotent).
fn table_preamble() -> String {
    format!(
        "add table inet {TABLE}\n\
         add chain inet {TABLE} input {{ type filter hook input priority filter; policy accept; }}\n\
         add chain inet {TABLE} output {{ type filter hook output priority filter; policy accept; }}\n"
    )
}

fn port_rule(transport: Transport, ports: PortRange, verdict: &str) -> Result<String, LabError> {
    if ports.first > ports.last {
        return Err(LabError::Invalid(format!(
            "empty port range {}..={}",
            ports.first, ports.last
        )));
    }
    if transport == Transport::Udp && verdict == Rejection::TcpReset.statement() {
        return Err(LabError::Invalid("a TCP reset cannot answer UDP".into()));
    }
    Ok(format!(
        "{}add rule inet {TABLE} input {} dport {ports} {verdict}\n",
        table_preamble(),
        transport.keyword()
    ))
}

fn loss_script(percent: u8) -> Result<String, LabError> {
    if percent > 100 {
        return Err(LabError::Invalid(format!("loss of {percent}% (0..=100)")));
    }
    let mut script = format!("add table inet {TABLE}\n");
    for (chain, hook) in [("loss_input", "input"), ("loss_output", "output")] {
        script.push_str(&format!(
            "add chain inet {TABLE} {chain} {{ type filter hook {hook} priority -10; policy accept; }}\n\
             flush chain inet {TABLE} {chain}\n"
        ));
        if percent > 0 {
            // nft refuses `numgen random mod 100 < 100` (value out of range).
            let draw = if percent == 100 {
                String::new()
            } else {
                format!("numgen random mod 100 < {percent} ")
            };
            // Neighbour discovery is spared so that IPv6, like IPv4 (whose
            // ARP is not `inet` traffic), loses data packets only.
            script.push_str(&format!(
                "add rule inet {TABLE} {chain} icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept\n\
                 add rule inet {TABLE} {chain} {draw}drop\n"
            ));
        }
    }
    Ok(script)
}

impl Namespace {
    /// Applies an nftables script (`nft -f -`) in this namespace.
    pub fn nft(&self, ruleset: &str) -> Result<(), LabError> {
        self.exec("nft", &["-f", "-"], Some(ruleset)).map(drop)
    }

    /// The namespace's whole ruleset (`nft list ruleset`).
    pub fn nft_ruleset(&self) -> Result<String, LabError> {
        self.exec("nft", &["list", "ruleset"], None)
    }

    /// Silently drops incoming TCP segments to `ports` ("filtered", no answer).
    pub fn drop_tcp(&self, ports: impl Into<PortRange>) -> Result<(), LabError> {
        self.nft(&port_rule(Transport::Tcp, ports.into(), "drop")?)
    }

    /// Answers TCP segments to `ports` with a RST from the firewall, even if
    /// something listens there.
    pub fn reject_tcp_reset(&self, ports: impl Into<PortRange>) -> Result<(), LabError> {
        self.reject_tcp_with(ports, Rejection::TcpReset)
    }

    /// Answers TCP segments to `ports` with ICMP/ICMPv6 "administratively
    /// prohibited".
    pub fn reject_tcp_admin_prohibited(&self, ports: impl Into<PortRange>) -> Result<(), LabError> {
        self.reject_tcp_with(ports, Rejection::AdminProhibited)
    }

    /// Answers TCP segments to `ports` with `rejection`.
    pub fn reject_tcp_with(
        &self,
        ports: impl Into<PortRange>,
        rejection: Rejection,
    ) -> Result<(), LabError> {
        self.nft(&port_rule(
            Transport::Tcp,
            ports.into(),
            rejection.statement(),
        )?)
    }

    /// Silently drops incoming UDP datagrams to `ports`.
    pub fn drop_udp(&self, ports: impl Into<PortRange>) -> Result<(), LabError> {
        self.nft(&port_rule(Transport::Udp, ports.into(), "drop")?)
    }

    /// Answers UDP datagrams to `ports` with ICMP/ICMPv6 "administratively
    /// prohibited".
    pub fn reject_udp_admin_prohibited(&self, ports: impl Into<PortRange>) -> Result<(), LabError> {
        self.reject_udp_with(ports, Rejection::AdminProhibited)
    }

    /// Answers UDP datagrams to `ports` with `rejection` (not
    /// [`Rejection::TcpReset`]).
    pub fn reject_udp_with(
        &self,
        ports: impl Into<PortRange>,
        rejection: Rejection,
    ) -> Result<(), LabError> {
        self.nft(&port_rule(
            Transport::Udp,
            ports.into(),
            rejection.statement(),
        )?)
    }

    /// Drops `percent`% of packets at random, independently on input and on
    /// output (IPv6 neighbour discovery excepted). Replaces any previous loss
    /// setting; 0 removes it.
    pub fn random_loss(&self, percent: u8) -> Result<(), LabError> {
        self.nft(&loss_script(percent)?)
    }

    /// Deletes the lab's table and so every rule the helpers added.
    pub fn clear_firewall(&self) -> Result<(), LabError> {
        self.nft(&format!(
            "add table inet {TABLE}\ndelete table inet {TABLE}\n"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_render_like_nft() {
        assert_eq!(PortRange::from(22).to_string(), "22");
        assert_eq!(PortRange::from(1000..=2000).to_string(), "1000-2000");
    }

    #[test]
    fn port_rules_append_to_the_input_chain() {
        let rule = port_rule(
            Transport::Tcp,
            (80..=81).into(),
            Rejection::AdminProhibited.statement(),
        )
        .unwrap();
        assert!(rule.starts_with(&table_preamble()));
        assert!(rule.ends_with(
            "add rule inet portolan input tcp dport 80-81 reject with icmpx type admin-prohibited\n"
        ));
    }

    #[test]
    fn impossible_rules_are_refused() {
        let reversed = PortRange { first: 9, last: 1 };
        assert!(port_rule(Transport::Tcp, reversed, "drop").is_err());
        assert!(port_rule(Transport::Udp, 53.into(), Rejection::TcpReset.statement()).is_err());
        assert!(loss_script(101).is_err());
    }

    #[test]
    fn loss_covers_both_directions_and_zero_only_flushes() {
        let script = loss_script(30).unwrap();
        assert!(script.contains("loss_input numgen random mod 100 < 30 drop"));
        assert!(script.contains("loss_output numgen random mod 100 < 30 drop"));
        assert!(!loss_script(0).unwrap().contains("drop"));
        let total = loss_script(100).unwrap();
        assert!(total.contains("loss_input drop\n") && !total.contains("numgen"));
    }
}
