//! A model call's worst case, as token budgets reserve it before the call:
//! the prompt's tokens, over-estimated without a tokenizer, plus the most the
//! model may answer (`max_tokens`, else the model's output limit).

/// The output limit assumed for a model not in [`OUTPUT_LIMITS`].
pub const DEFAULT_OUTPUT_LIMIT: i64 = 16_384;

/// The most tokens an answer of these models may hold, by name prefix (the
/// longest prefix that matches wins), as OpenAI's model pages list them
/// (checked 2026-12; a model served through OpenRouter as `openai/<name>`
/// counts as `<name>`). An unknown model is assumed [`DEFAULT_OUTPUT_LIMIT`]:
/// set `max_tokens` to reserve less.
const OUTPUT_LIMITS: &[(&str, i64)] = &[
    ("gpt-3.5-turbo", 4_096),
    ("gpt-4", 8_192),
    ("gpt-4-turbo", 4_096),
    ("gpt-4o", 16_384),
    ("gpt-4o-mini", 16_384),
    ("gpt-4.1", 32_768),
    ("gpt-5", 128_000),
    ("o1", 100_000),
    ("o3", 100_000),
    ("o4-mini", 100_000),
];

/// The output limit of `model`.
pub fn output_limit(model: &str) -> i64 {
    let name = model.rsplit('/').next().unwrap_or(model);
    OUTPUT_LIMITS
        .iter()
        .filter(|(prefix, _)| name.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map_or(DEFAULT_OUTPUT_LIMIT, |(_, limit)| *limit)
}

/// The most prompt tokens of a call whose messages and tools serialize to
/// `prompt_bytes` of JSON: a token of the models' byte-level tokenizers is at
/// least one byte, and the JSON around each message more than covers its few
/// framing tokens.
pub fn prompt_tokens(prompt_bytes: usize) -> i64 {
    i64::try_from(prompt_bytes).unwrap_or(i64::MAX)
}

/// The most answer tokens of a call: `max_tokens`, or the model's output limit.
pub fn output_tokens(max_tokens: Option<i64>, model: &str) -> i64 {
    max_tokens.unwrap_or_else(|| output_limit(model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_known_prefix_gives_the_output_limit() {
        assert_eq!(output_limit("gpt-4o-mini-2024-07-18"), 16_384);
        assert_eq!(output_limit("openai/gpt-4.1-nano"), 32_768);
        assert_eq!(output_limit("gpt-4-turbo"), 4_096);
        assert_eq!(output_limit("gpt-4-0613"), 8_192);
        assert_eq!(output_limit("some-new-model"), DEFAULT_OUTPUT_LIMIT);
    }

    #[test]
    fn the_worst_case_is_the_prompt_s_bytes_and_the_output_limit() {
        assert_eq!(prompt_tokens(120), 120);
        assert_eq!(output_tokens(None, "gpt-4o"), 16_384);
        assert_eq!(output_tokens(Some(50), "gpt-4o"), 50);
    }
}
