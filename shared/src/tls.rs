//! TLS set-up shared by every outgoing connection.

/// Installs ring as rustls's process-wide crypto provider (reqwest and lapin both
/// use rustls, built without a default provider so only one is compiled in).
/// Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
