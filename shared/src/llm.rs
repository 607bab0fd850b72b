//! Which provider, model and key serve a run. The same rule runs at submit (to
//! show the expected choice) and in the worker (to make the call), so the two
//! never disagree unless the project's configuration changed in between.

use crate::{
    config::DefaultLlm,
    db::project::ProjectLlm,
    model::{KeySource, Provider},
};

/// The provider, model and key owner for one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LlmChoice {
    pub provider: Provider,
    pub model: String,
    pub key_source: KeySource,
}

/// A project with a key of its own is always served with it (never silently with
/// the default key); a project without one uses the operator's default.
pub fn choose_llm(
    project: &ProjectLlm,
    requested_model: Option<&str>,
    default: &DefaultLlm,
) -> LlmChoice {
    match project.provider {
        Some(provider) if project.has_key => LlmChoice {
            provider,
            model: requested_model
                .or(project.model.as_deref())
                .unwrap_or(&default.model)
                .to_owned(),
            key_source: KeySource::Project,
        },
        _ => {
            // A project's model applies with the default key only on the default's provider.
            let project_model = project
                .model
                .as_deref()
                .filter(|_| project.provider == Some(default.provider));
            LlmChoice {
                provider: default.provider,
                model: requested_model
                    .or(project_model)
                    .unwrap_or(&default.model)
                    .to_owned(),
                key_source: KeySource::Default,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_llm() -> DefaultLlm {
        DefaultLlm {
            provider: Provider::OpenAi,
            model: "gpt-4o-mini".into(),
            api_key: None,
            tokens_per_day: None,
        }
    }

    #[test]
    fn a_project_with_its_own_key_uses_its_provider_and_model() {
        let project = ProjectLlm {
            provider: Some(Provider::OpenRouter),
            model: Some("openai/gpt-4o".into()),
            has_key: true,
            key_status: None,
        };
        let choice = choose_llm(&project, None, &default_llm());
        assert_eq!(choice.provider, Provider::OpenRouter);
        assert_eq!(choice.model, "openai/gpt-4o");
        assert_eq!(choice.key_source, KeySource::Project);
        let choice = choose_llm(&project, Some("x/y"), &default_llm());
        assert_eq!(choice.model, "x/y");
    }

    #[test]
    fn a_project_without_a_key_uses_the_default() {
        let choice = choose_llm(&ProjectLlm::default(), None, &default_llm());
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
        let choice = choose_llm(&project, None, &default_llm());
        assert_eq!(choice.model, "gpt-4o-mini");
        assert_eq!(choice.key_source, KeySource::Default);
    }
}
