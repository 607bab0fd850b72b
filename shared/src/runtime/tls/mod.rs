//! TLS for every hop: the client side towards Postgres and RabbitMQ, and the API's
//! own HTTPS listener. Everything is rustls with ring, so one crypto stack is
//! compiled in.

pub mod postgres;
pub mod server;
mod verify;

use std::sync::Arc;

use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};

/// Installs ring as rustls's process-wide crypto provider (reqwest and lapin both
/// use rustls, built without a default provider so only one is compiled in).
/// Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The provider every config here is built with, whether or not
/// [`install_crypto_provider`] ran first (unit tests, library callers).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Why a PEM file of certificates cannot be used; never repeats its contents.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not PEM: {detail}")]
    NotPem { path: String, detail: String },
    #[error("{0} holds no PEM certificate")]
    NoCertificate(String),
    #[error("{path} holds an unusable certificate: {detail}")]
    Unusable { path: String, detail: String },
    #[error("no CA file given and the system has no CA certificates")]
    NoSystemRoots,
}

/// Reads the PEM certificates in `path`.
pub fn read_certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let pem = std::fs::read(path).map_err(|source| PemError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    parse_certificates(&pem, path)
}

/// The certificates in `pem`, read from `path`.
pub fn parse_certificates(
    pem: &[u8],
    path: &str,
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::NotPem {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// The trust anchors in a CA file, or the system's store when there is none.
fn roots(ca_file: Option<&str>) -> Result<RootCertStore, PemError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in read_certificates(path)? {
                roots.add(cert).map_err(|e| PemError::Unusable {
                    path: path.to_owned(),
                    detail: e.to_string(),
                })?;
            }
        }
        None => {
            let (added, _) =
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                return Err(PemError::NoSystemRoots);
            }
        }
    }
    Ok(roots)
}

/// TLS for provider calls: the platform's verifier (the system's trust store,
/// as reqwest used before provider calls left it), with ring.
pub fn provider_client_config() -> Result<rustls::ClientConfig, rustls::Error> {
    use rustls_platform_verifier::BuilderVerifierExt;
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth())
}
