//! What version detection found on a port (`-sV`): the service, product,
//! version and the rest of nmap's `<service>` fields, plus what a TLS
//! handshake showed.
//!
//! Plain values, filled by `portolan-service` and read by the sinks. Every
//! string here came from the network (banners, certificates): sinks must
//! escape it for their format.

use std::time::SystemTime;

use portolan_targets::Protocol;
use serde::{Deserialize, Serialize};

use crate::forms;

/// How the service name was found (nmap's `method`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceMethod {
    /// A probe's answer matched a pattern.
    Probed,
    /// Nothing matched: the name comes from the port table.
    #[default]
    Table,
}

impl ServiceMethod {
    /// nmap's name of the method.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceMethod::Probed => "probed",
            ServiceMethod::Table => "table",
        }
    }

    /// The method nmap calls `name`.
    pub fn from_nmap(name: &str) -> Option<ServiceMethod> {
        [ServiceMethod::Probed, ServiceMethod::Table]
            .into_iter()
            .find(|m| m.as_str() == name)
    }
}

forms::by_nmap_name!(ServiceMethod, "a service method");

/// What a TLS handshake with the service showed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    /// The negotiated protocol version ("TLSv1.3").
    pub protocol: String,
    /// The negotiated ALPN protocol, if any.
    pub alpn: Option<String>,
    /// The leaf certificate's subject (RFC 4514 form).
    pub subject: String,
    /// Its issuer.
    pub issuer: String,
    /// Its subject alternative names (DNS names and addresses).
    pub san: Vec<String>,
    /// Start of validity.
    #[serde(with = "forms::rfc3339_opt")]
    pub not_before: Option<SystemTime>,
    /// End of validity.
    #[serde(with = "forms::rfc3339_opt")]
    pub not_after: Option<SystemTime>,
    /// The public key's type and size ("RSA 2048", "EC P-256", "Ed25519").
    pub key_type: String,
}

/// The service found on one port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// nmap's service name ("http", "ssh", "tcpwrapped", "unknown").
    pub name: String,
    /// The product ("nginx").
    pub product: Option<String>,
    /// Its version ("1.22.1").
    pub version: Option<String>,
    /// Extra information ("protocol 2.0").
    pub extrainfo: Option<String>,
    /// A host name the service gave.
    pub hostname: Option<String>,
    /// The operating system it revealed.
    pub ostype: Option<String>,
    /// The device type it revealed.
    pub devicetype: Option<String>,
    /// CPE names (`cpe:/a:nginx:nginx:1.22.1`).
    pub cpe: Vec<String>,
    /// Probed or from the table.
    pub method: ServiceMethod,
    /// Confidence, 0 to 10 (nmap's `conf`): 10 for a match, 3 from the
    /// table.
    pub conf: u8,
    /// The service runs inside TLS (nmap's `tunnel="ssl"`).
    pub ssl: bool,
    /// The TLS handshake, when one completed.
    pub tls: Option<TlsInfo>,
    /// The first bytes the service sent (at most a few hundred), raw.
    #[serde(with = "forms::hex")]
    pub banner: Vec<u8>,
}

impl ServiceInfo {
    /// The name as nmap prints it: `ssl/http` inside TLS.
    pub fn full_name(&self) -> String {
        if self.ssl {
            format!("ssl/{}", self.name)
        } else {
            self.name.clone()
        }
    }

    /// nmap's VERSION column: product, version and `(extra info)`, with
    /// any of them missing; empty when none is known.
    pub fn version_line(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.product.iter().cloned());
        parts.extend(self.version.iter().cloned());
        parts.extend(self.extrainfo.iter().map(|i| format!("({i})")));
        parts.join(" ")
    }
}

/// The service of one port of a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortService {
    /// The port.
    pub port: u16,
    /// Its protocol.
    pub proto: Protocol,
    /// What was found.
    pub info: ServiceInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_version_lines() {
        let mut s = ServiceInfo {
            name: "http".into(),
            product: Some("nginx".into()),
            version: Some("1.22.1".into()),
            ..ServiceInfo::default()
        };
        assert_eq!(s.full_name(), "http");
        assert_eq!(s.version_line(), "nginx 1.22.1");
        s.ssl = true;
        s.version = None;
        s.extrainfo = Some("Debian".into());
        assert_eq!(s.full_name(), "ssl/http");
        assert_eq!(s.version_line(), "nginx (Debian)");
        assert_eq!(ServiceInfo::default().version_line(), "");
    }
}
