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

/// Reads the PEM certificates in `path`; the error says what is wrong without
/// repeating the file's contents.
pub fn read_certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_certificates(&pem, path)
}

/// The certificates in `pem`, read from `path`.
pub fn parse_certificates(pem: &[u8], path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{path} is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path} holds no PEM certificate"));
    }
    Ok(certs)
}

/// The trust anchors in a CA file, or the system's store when there is none.
fn roots(ca_file: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in read_certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{path} holds an unusable certificate: {e}"))?;
            }
        }
        None => {
            let (added, _) =
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                return Err("no CA file given and the system has no CA certificates".into());
            }
        }
    }
    Ok(roots)
}
