//! The provider key of a run, decrypted only now, just before the call.

use secrecy::SecretString;
use stewrd_shared::{
    db::run::ClaimedRun,
    domain::{
        llm::LlmChoice,
        model::{FailureCode, KeySource, KeyStatus},
    },
    secrets::crypto::SecretField,
};

use super::{Decision, Verdict, failed};
use crate::Worker;

/// The key for this run, decrypted only now. A project with a key of its own is
/// never served with the default one: a key that cannot be decrypted fails the
/// run (and marks the key invalid) instead.
pub(super) fn provider_key(
    worker: &Worker,
    run: &ClaimedRun,
    choice: &LlmChoice,
) -> Result<SecretString, Verdict> {
    let no_key = || {
        Verdict::from(failed(
            FailureCode::NoProviderConfigured,
            "no provider key: set one for the project (PUT /v1/project/llm) \
             or a default (STEWRD_DEFAULT_API_KEY)",
        ))
    };
    match choice.key_source {
        KeySource::Default => worker.config.default_llm.api_key.clone().ok_or_else(no_key),
        KeySource::Project => {
            let stored = run.project.encrypted_key.as_deref().ok_or_else(no_key)?;
            worker
                .master_keys
                .decrypt_text(stored, run.project_id, SecretField::ProviderKey)
                .map_err(|error| {
                    tracing::error!(%error, project_id = %run.project_id, "cannot decrypt the project's provider key");
                    Verdict::Finish(Decision {
                        outcome: failed(
                            FailureCode::ProviderAuthFailed,
                            format!("the project's provider key cannot be decrypted ({error}); set it again with PUT /v1/project/llm"),
                        ),
                        key_status: Some(KeyStatus::Invalid),
                        last_step: None,
                    })
                })
        }
    }
}
