//! The certificate verifier for libpq's weaker `sslmode`s. `verify-full` needs
//! none: it is rustls's own WebPKI verifier.

use std::sync::Arc;

use rustls::{
    CertificateError, DigitallySignedStruct, Error, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::{
        CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
    },
    pki_types::{CertificateDer, ServerName, UnixTime},
};

/// Checks less than WebPKI would, and the handshake signatures as always.
#[derive(Debug)]
pub(super) struct Lenient {
    /// `sslmode=verify-ca`: the chain must lead to a trusted CA, whatever name the
    /// certificate carries. `None` for `require` and `prefer`: any certificate
    /// (tokio-postgres adds SCRAM channel binding, so a man in the middle still
    /// cannot relay the login).
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl Lenient {
    pub(super) fn any_certificate(provider: &CryptoProvider) -> Self {
        Self {
            chain: None,
            algorithms: provider.signature_verification_algorithms,
        }
    }

    pub(super) fn chain_only(webpki: Arc<WebPkiServerVerifier>, provider: &CryptoProvider) -> Self {
        Self {
            chain: Some(webpki),
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(webpki) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // WebPKI checks the chain before the name, so a name error means the chain passed.
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
