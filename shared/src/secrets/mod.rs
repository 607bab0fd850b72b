//! Secrets and what protects them: encryption under the master key ring,
//! project API keys, Standard Webhooks signatures, and taking a secret out of
//! text before it is shown.

pub mod crypto;
pub mod redact;
pub mod seal;
pub mod signature;
pub mod token;
