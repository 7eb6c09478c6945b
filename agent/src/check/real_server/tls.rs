//! The TLS side of HTTPS checks (rustls with ring, as the kube client uses): the server name
//! sent as SNI and checked against the certificate, and the client configuration — verifying
//! the chain against a CA bundle or the system's trust store when asked, and otherwise
//! accepting any certificate, as keepalived's `SSL_GET` does. Even then the handshake
//! signatures are checked, so the server holds the key of the certificate it shows.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;

/// Why a TLS client cannot be set up for a check.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("caBundle: {0}")]
    Bundle(String),
    #[error("the system trust store has no certificates ({0})")]
    NoSystemRoots(String),
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// How an HTTPS check talks TLS to one real server.
#[derive(Clone)]
pub struct TlsClient {
    pub connector: TlsConnector,
    /// SNI (for a host name) and the name the certificate must carry when verified.
    pub server_name: ServerName<'static>,
    pub verified: bool,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .field("verified", &self.verified)
            .finish_non_exhaustive()
    }
}

/// Trust for a check that verifies certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Accept any certificate.
    Any,
    /// The system's trust store.
    System,
    /// The certificates of this PEM bundle.
    Bundle(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration for `trust` (one per VirtualServer: building it reads the system
/// trust store). HTTP/1.1 only.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let mut config = match trust {
        Trust::Any => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
            .with_no_client_auth(),
        Trust::System => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_owned(), ToString::to_string);
                return Err(TlsSetupError::NoSystemRoots(why));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Bundle(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| TlsSetupError::Bundle(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| TlsSetupError::Bundle(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(TlsSetupError::Bundle("no certificate in it".to_owned()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The server name of a check: the configured host (a name is sent as SNI; an IP address is
/// not, per RFC 6066), else the real server's address.
pub fn server_name(
    host: Option<&str>,
    address: IpAddr,
) -> Result<ServerName<'static>, TlsSetupError> {
    match host {
        Some(host) => ServerName::try_from(host.to_owned())
            .map_err(|_| TlsSetupError::ServerName(host.to_owned())),
        None => Ok(ServerName::IpAddress(address.into())),
    }
}

impl TlsClient {
    pub fn new(
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
        verified: bool,
    ) -> Self {
        Self {
            connector: TlsConnector::from(config),
            server_name,
            verified,
        }
    }
}

/// Accepts any certificate, but still checks the handshake signatures with it.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
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
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
