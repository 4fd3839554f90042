//! TLS for version detection: a rustls client that accepts any
//! certificate (a scanner identifies services, it trusts none of them),
//! and the reading of what the handshake showed into a [`TlsInfo`].
//!
//! Read RFC 8446 (TLS 1.3) §4 and RFC 5280 §4.1 (certificate fields)
//! first. rustls speaks TLS 1.2 and 1.3 only: an SSLv3/TLS 1.0-only
//! service fails the handshake and stays `ssl` without a product.
//!
//! Contract: no panics on any certificate bytes (x509-parser returns
//! errors; a certificate that does not parse leaves the fields empty).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use portolan_engine::TlsInfo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// ALPN protocols offered on the handshake that reads the certificate.
pub const ALPN_OFFERED: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Accepts every certificate and signature: the peer is being identified,
/// not trusted, and nothing secret is sent to it.
#[derive(Debug)]
struct AcceptAny(Vec<SignatureScheme>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_tls12_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

/// The two client configurations detection needs.
#[derive(Clone)]
pub struct TlsClients {
    /// Offers [`ALPN_OFFERED`]: for the handshake that reads the facts.
    pub inspect: TlsConnector,
    /// Offers no ALPN: for probes, which speak HTTP/1.x and the like.
    pub probe: TlsConnector,
}

impl TlsClients {
    /// Builds both configurations.
    pub fn new() -> Result<TlsClients, rustls::Error> {
        Ok(TlsClients {
            inspect: connector(ALPN_OFFERED.iter().map(|p| p.to_vec()).collect())?,
            probe: connector(Vec::new())?,
        })
    }
}

fn connector(alpn: Vec<Vec<u8>>) -> Result<TlsConnector, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(schemes)))
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name to present: the address itself (rustls sends no SNI for an
/// address).
pub fn server_name(addr: IpAddr) -> ServerName<'static> {
    ServerName::IpAddress(addr.into())
}

/// What a completed handshake shows.
pub fn inspect<S>(stream: &TlsStream<S>) -> TlsInfo {
    let (_, conn) = stream.get_ref();
    let mut info = TlsInfo {
        protocol: match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".into(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".into(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        },
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        ..TlsInfo::default()
    };
    if let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) {
        read_certificate(leaf.as_ref(), &mut info);
    }
    info
}

/// Fills the certificate fields of `info` from a DER certificate.
pub fn read_certificate(der: &[u8], info: &mut TlsInfo) {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return;
    };
    info.subject = cert.subject().to_string();
    info.issuer = cert.issuer().to_string();
    let time = |t: i64| {
        u64::try_from(t)
            .ok()
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
    };
    info.not_before = time(cert.validity().not_before.timestamp());
    info.not_after = time(cert.validity().not_after.timestamp());
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => info.san.push(format!("DNS:{n}")),
                GeneralName::IPAddress(b) => {
                    let addr = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(a) = addr {
                        info.san.push(format!("IP:{a}"));
                    }
                }
                GeneralName::RFC822Name(n) => info.san.push(format!("email:{n}")),
                _ => {}
            }
        }
    }
    let spki = cert.public_key();
    let bits = spki.parsed().map(|k| k.key_size()).unwrap_or(0);
    info.key_type = match spki.algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.113549.1.1.1" => format!("RSA {bits}"),
        "1.2.840.10045.2.1" => format!("EC {bits}"),
        "1.3.101.112" => "Ed25519".into(),
        "1.3.101.113" => "Ed448".into(),
        "1.2.840.10040.4.1" => format!("DSA {bits}"),
        other => other.to_string(),
    };
}

/// Whether `bytes` start like a TLS record (handshake or alert) or an
/// SSLv2 server hello.
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    match bytes {
        [0x15 | 0x16, 0x03, minor, ..] => *minor <= 0x04,
        [hi, _, 0x04, 0x00, ..] => hi & 0x80 != 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_records_are_recognised() {
        assert!(looks_like_tls(b"\x16\x03\x03\x00\x50\x02"));
        assert!(looks_like_tls(b"\x15\x03\x01\x00\x02\x02\x28"));
        assert!(!looks_like_tls(b"HTTP/1.1 400"));
        assert!(!looks_like_tls(b"\x16"));
    }

    #[test]
    fn garbage_certificates_leave_fields_empty() {
        let mut info = TlsInfo::default();
        read_certificate(b"\x30\x82\xff\xff garbage", &mut info);
        assert_eq!(info, TlsInfo::default());
        read_certificate(b"", &mut info);
        assert_eq!(info, TlsInfo::default());
    }

    #[test]
    fn connectors_build() {
        assert!(TlsClients::new().is_ok());
        assert!(matches!(
            server_name("127.0.0.1".parse().unwrap()),
            ServerName::IpAddress(_)
        ));
    }
}
