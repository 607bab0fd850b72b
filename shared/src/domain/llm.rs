//! Which provider, model and key serve a run. The same rule runs at submit (to
//! show the expected choice) and in the worker (to make the call), so the two
//! never disagree unless the project's configuration changed in between.

use crate::domain::model::{KeySource, KeyStatus, Provider};

/// A project's own provider configuration.
#[derive(Clone, Debug, Default)]
pub struct ProjectLlm {
    /// The provider the project chose, if any.
    pub provider: Option<Provider>,
    /// The model the project chose, if any.
    pub model: Option<String>,
    /// Whether the project stored a key of its own.
    pub has_key: bool,
    /// What the provider's answers said about that key.
    pub key_status: Option<KeyStatus>,
}

/// The provider, model and key owner for one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LlmChoice {
    pub provider: Provider,
    pub model: String,
    pub key_source: KeySource,
}

/// A project with a key of its own is always served with it (never silently with
/// the default key); a project without one uses the operator's default.
/// `default_provider` and `default_model` are the operator's
/// (`STEWRD_DEFAULT_PROVIDER`, `STEWRD_DEFAULT_MODEL`).
pub fn choose_llm(
    project: &ProjectLlm,
    requested_model: Option<&str>,
    default_provider: Provider,
    default_model: &str,
) -> LlmChoice {
    match project.provider {
        Some(provider) if project.has_key => LlmChoice {
            provider,
            model: requested_model
                .or(project.model.as_deref())
                .unwrap_or(default_model)
                .to_owned(),
            key_source: KeySource::Project,
        },
        _ => {
            // A project's model applies with the default key only on the default's provider.
            let project_model = project
                .model
                .as_deref()
                .filter(|_| project.provider == Some(default_provider));
            LlmChoice {
                provider: default_provider,
                model: requested_model
                    .or(project_model)
                    .unwrap_or(default_model)
                    .to_owned(),
                key_source: KeySource::Default,
            }
        }
    }
}

/// The most fallback models a run or a project may name.
pub const MAX_FALLBACK_MODELS: usize = 5;

/// Checks fallback models as given (`fallback_models`): at most
/// [`MAX_FALLBACK_MODELS`] names of 1 to 200 printable characters, trimmed.
/// The refusal's words; its `param` is `fallback_models`.
pub fn check_fallback_models(given: &[String]) -> Result<Vec<String>, String> {
    if given.len() > MAX_FALLBACK_MODELS {
        return Err(format!(
            "`fallback_models` names at most {MAX_FALLBACK_MODELS} models"
        ));
    }
    given
        .iter()
        .map(|model| {
            if crate::domain::text::is_label(model, 200) {
                Ok(model.trim().to_owned())
            } else {
                Err("each of `fallback_models` must be 1 to 200 printable characters".to_owned())
            }
        })
        .collect()
}

/// The model after `model` in a run's chain: the requested (or project's)
/// model, then each fallback in order. `fallbacks` is how many it has used.
pub fn next_model(fallback_models: &[String], fallbacks: usize) -> Option<&str> {
    fallback_models.get(fallbacks).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_models_are_checked_and_taken_in_order() {
        let given = vec![" gpt-4o ".to_owned(), "openai/gpt-4o-mini".to_owned()];
        let models = check_fallback_models(&given).expect("valid");
        assert_eq!(models, ["gpt-4o", "openai/gpt-4o-mini"]);
        assert_eq!(next_model(&models, 0), Some("gpt-4o"));
        assert_eq!(next_model(&models, 1), Some("openai/gpt-4o-mini"));
        assert_eq!(next_model(&models, 2), None);
        assert!(check_fallback_models(&[" ".to_owned()]).is_err());
        assert!(check_fallback_models(&vec!["m".to_owned(); 6]).is_err());
    }

    fn choose(project: &ProjectLlm, requested: Option<&str>) -> LlmChoice {
        choose_llm(project, requested, Provider::OpenAi, "gpt-4o-mini")
    }

    #[test]
    fn a_project_with_its_own_key_uses_its_provider_and_model() {
        let project = ProjectLlm {
            provider: Some(Provider::OpenRouter),
            model: Some("openai/gpt-4o".into()),
            has_key: true,
            key_status: None,
        };
        let choice = choose(&project, None);
        assert_eq!(choice.provider, Provider::OpenRouter);
        assert_eq!(choice.model, "openai/gpt-4o");
        assert_eq!(choice.key_source, KeySource::Project);
        let choice = choose(&project, Some("x/y"));
        assert_eq!(choice.model, "x/y");
    }

    #[test]
    fn a_project_without_a_key_uses_the_default() {
        let choice = choose(&ProjectLlm::default(), None);
        assert_eq!(choice.provider, Provider::OpenAi);
        assert_eq!(choice.model, "gpt-4o-mini");
        assert_eq!(choice.key_source, KeySource::Default);
    }

    #[test]
    fn a_keyless_project_model_on_another_provider_is_ignored() {
        let project = ProjectLlm {
            provider: Some(Provider::OpenRouter),
            model: Some("meta-llama/llama-3.1-70b-instruct".into()),
            has_key: false,
            key_status: None,
        };
        let choice = choose(&project, None);
        assert_eq!(choice.model, "gpt-4o-mini");
        assert_eq!(choice.key_source, KeySource::Default);
    }
}
