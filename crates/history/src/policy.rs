//! Exposure policies: what may be reachable where, written in TOML.
//!
//! ```toml
//! [default]                       # every host
//! tcp = [22]                      # TCP ports that may be open ("8000-8010" for ranges)
//! udp = []                        # UDP ports that may be open
//! services = ["ssh"]              # services that may be open on any port
//! closed = [113]                  # TCP ports that must answer closed, not be dropped
//! forbidden_services = ["telnet"] # services that must never be open
//! min_cert_days = 21              # certificates must have this many days left
//! risky = true                    # also apply the built-in catalogue (--risky)
//!
//! [[zone]]                        # more allowed for some hosts
//! name = "web"
//! networks = ["198.18.0.0/28"]    # addresses or networks
//! hosts = ["198.18.0.20"]
//! tags = ["public-web"]           # names from [tags]
//! tcp = [80, 443]
//!
//! [tags]
//! public-web = ["198.18.1.0/24"]
//! ```
//!
//! A host's rules are the default's joined with those of every zone it
//! falls in: allowed ports and services add up, as do the ports that must
//! be closed and the forbidden services; the largest `min_cert_days`
//! holds. A protocol whose allowed ports no rule names is not checked.
//! Unknown keys, bad ports and bad networks are errors with their line
//! and column ([`PolicyError::Invalid`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::PolicyError;

/// A port or an inclusive range of ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange(pub u16, pub u16);

impl PortRange {
    /// Whether `port` is in it.
    pub fn contains(&self, port: u16) -> bool {
        (self.0..=self.1).contains(&port)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(i64),
            Text(String),
        }
        let port = |n: i64| {
            u16::try_from(n).map_err(|_| D::Error::custom(format!("port {n} is not in 0-65535")))
        };
        match Raw::deserialize(d)? {
            Raw::One(n) => port(n).map(|p| PortRange(p, p)),
            Raw::Text(t) => {
                let bad = || {
                    D::Error::custom(format!(
                        "{t:?} is not a port or a range such as \"8000-8010\""
                    ))
                };
                let (a, b) = t.split_once('-').unwrap_or((&t, &t));
                let a: i64 = a.trim().parse().map_err(|_| bad())?;
                let b: i64 = b.trim().parse().map_err(|_| bad())?;
                let (a, b) = (port(a)?, port(b)?);
                if a > b {
                    return Err(D::Error::custom(format!("range {t:?} runs backwards")));
                }
                Ok(PortRange(a, b))
            }
        }
    }
}

/// An address or a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net(pub IpNet);

impl<'de> Deserialize<'de> for Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let text = String::deserialize(d)?;
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(Net(net));
        }
        text.parse::<IpAddr>()
            .map(|a| Net(IpNet::from(a)))
            .map_err(|_| {
                D::Error::custom(format!(
                    "{text:?} is not an address or a network such as 198.18.0.0/24"
                ))
            })
    }
}

/// The rules of the default or of one zone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// TCP ports that may be open.
    pub tcp: Option<Vec<PortRange>>,
    /// UDP ports that may be open.
    pub udp: Option<Vec<PortRange>>,
    /// SCTP ports that may be open.
    pub sctp: Option<Vec<PortRange>>,
    /// Services that may be open on any port.
    #[serde(default)]
    pub services: Vec<String>,
    /// TCP ports that must answer closed rather than be dropped.
    #[serde(default)]
    pub closed: Vec<PortRange>,
    /// Services that must never be open.
    #[serde(default)]
    pub forbidden_services: Vec<String>,
    /// Certificates must have at least this many days left.
    pub min_cert_days: Option<u32>,
    /// Apply the built-in catalogue of risky exposures.
    pub risky: Option<bool>,
}

/// A zone: hosts with rules of their own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// Its name, for reports.
    #[serde(default)]
    pub name: String,
    /// Networks (or addresses) in the zone.
    #[serde(default)]
    pub networks: Vec<Net>,
    /// Addresses in the zone.
    #[serde(default)]
    pub hosts: Vec<Net>,
    /// Tags whose hosts are in the zone.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Its rules.
    #[serde(flatten)]
    pub rules: Rules,
}

/// A policy file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Rules for every host.
    #[serde(default)]
    pub default: Rules,
    /// Zones.
    #[serde(default, rename = "zone")]
    pub zones: Vec<Zone>,
    /// Tags: names for sets of addresses and networks.
    #[serde(default)]
    pub tags: BTreeMap<String, Vec<Net>>,
}

/// The rules that hold for one host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostRules {
    /// The zones it is in.
    pub zones: Vec<String>,
    /// Allowed TCP ports (`None`: not checked).
    pub tcp: Option<Vec<PortRange>>,
    /// Allowed UDP ports.
    pub udp: Option<Vec<PortRange>>,
    /// Allowed SCTP ports.
    pub sctp: Option<Vec<PortRange>>,
    /// Allowed services.
    pub services: Vec<String>,
    /// Ports that must answer closed.
    pub closed: Vec<PortRange>,
    /// Forbidden services.
    pub forbidden_services: Vec<String>,
    /// Days certificates must have left.
    pub min_cert_days: Option<u32>,
    /// Whether the risky catalogue applies.
    pub risky: bool,
}

fn join(into: &mut Option<Vec<PortRange>>, from: &Option<Vec<PortRange>>) {
    if let Some(from) = from {
        into.get_or_insert_with(Vec::new)
            .extend(from.iter().copied());
    }
}

impl Policy {
    /// Reads a policy; an error names the line and column.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
            PolicyError::Invalid {
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        // Tags a zone names must exist.
        for zone in &policy.zones {
            for tag in &zone.tags {
                if !policy.tags.contains_key(tag) {
                    let at = text.find(&format!("\"{tag}\"")).unwrap_or(0);
                    let (line, column) = line_column(text, at);
                    return Err(PolicyError::Invalid {
                        line,
                        column,
                        message: format!(
                            "zone {:?} names tag {tag:?}, which [tags] does not define",
                            zone.name
                        ),
                    });
                }
            }
        }
        Ok(policy)
    }

    /// The policy of `--risky` alone: the catalogue, nothing else.
    pub fn risky_only() -> Policy {
        Policy {
            default: Rules {
                risky: Some(true),
                ..Rules::default()
            },
            ..Policy::default()
        }
    }

    /// The rules that hold for `addr`.
    pub fn rules_for(&self, addr: IpAddr) -> HostRules {
        let mut r = HostRules::default();
        let add = |rules: &Rules, r: &mut HostRules| {
            join(&mut r.tcp, &rules.tcp);
            join(&mut r.udp, &rules.udp);
            join(&mut r.sctp, &rules.sctp);
            r.services.extend(rules.services.iter().cloned());
            r.closed.extend(rules.closed.iter().copied());
            r.forbidden_services
                .extend(rules.forbidden_services.iter().cloned());
            r.min_cert_days = r.min_cert_days.max(rules.min_cert_days);
            r.risky |= rules.risky.unwrap_or(false);
        };
        add(&self.default, &mut r);
        for zone in &self.zones {
            let in_nets = |nets: &[Net]| nets.iter().any(|n| n.0.contains(&addr));
            let tagged = zone
                .tags
                .iter()
                .any(|t| self.tags.get(t).is_some_and(|nets| in_nets(nets)));
            if in_nets(&zone.networks) || in_nets(&zone.hosts) || tagged {
                r.zones.push(zone.name.clone());
                add(&zone.rules, &mut r);
            }
        }
        r
    }
}

/// 1-based line and column (in characters) of byte `at`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_characters() {
        assert_eq!(line_column("ab\ncdé\nf", 0), (1, 1));
        assert_eq!(line_column("ab\ncdé\nf", 3), (2, 1));
        assert_eq!(line_column("ab\ncdé\nf", 8), (3, 1));
        assert_eq!(line_column("ab\ncdé\nf", 7), (2, 4));
    }
}
