//! The API's own HTTPS: `STEWRD_TLS_CERT` and `STEWRD_TLS_KEY`, for deployments
//! with no TLS-terminating proxy in front.

use std::sync::Arc;

use rustls::{
    ServerConfig,
    pki_types::{PrivateKeyDer, pem::PemObject},
};

use crate::runtime::setting::ConfigError;

/// Builds the listener's TLS settings from a PEM certificate chain (leaf first)
/// and its PEM private key. HTTP/1.1 only, as the API serves.
pub fn server_config(cert_file: &str, key_file: &str) -> Result<Arc<ServerConfig>, ConfigError> {
    let chain = super::read_certificates(cert_file)
        .map_err(|e| ConfigError::new("STEWRD_TLS_CERT", e.to_string()))?;
    let key = std::fs::read(key_file)
        .map_err(|e| format!("cannot read {key_file}: {e}"))
        .and_then(|pem| {
            PrivateKeyDer::from_pem_slice(&pem)
                .map_err(|e| format!("{key_file} holds no PEM private key: {e}"))
        })
        .map_err(|e| ConfigError::new("STEWRD_TLS_KEY", e))?;
    let mut config = ServerConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("STEWRD_TLS_CERT", format!("TLS set-up failed: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            ConfigError::new(
                "STEWRD_TLS_KEY",
                format!("does not match the certificate in STEWRD_TLS_CERT: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
