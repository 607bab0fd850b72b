//! Output contracts: a run whose `response_format` is a `json_schema` has its
//! final answer checked against that schema (a maintained validator,
//! `jsonschema`, Draft 2020-12 and earlier); an answer that fails is sent back
//! to the model with what failed, at most `max_repairs` times.

use serde_json::Value;

/// Repairs a run may ask for unless it says otherwise, and the most it may say.
pub const DEFAULT_MAX_REPAIRS: i32 = 2;
pub const MAX_REPAIRS_LIMIT: i32 = 10;
/// Validation errors told (to the model, in the step) at most.
const ERRORS_TOLD: usize = 10;

/// The schema a `response_format` asks the final answer to match, if any.
pub fn schema_of(response_format: Option<&Value>) -> Option<&Value> {
    let format = response_format?;
    if format.get("type").and_then(Value::as_str) != Some("json_schema") {
        return None;
    }
    format.get("json_schema")?.get("schema")
}

/// Whether `schema` can check answers at all (else: the reason).
pub fn check_schema(schema: &Value) -> Result<(), String> {
    jsonschema::validator_for(schema)
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// What is wrong with `answer` against `schema`, one line per error (at most
/// ten); empty when it matches.
pub fn errors(schema: &Value, answer: Option<&str>) -> Vec<String> {
    let text = answer.unwrap_or_default();
    let parsed: Value = match serde_json::from_str(text) {
        Ok(parsed) => parsed,
        Err(error) => return vec![format!("the answer is not JSON: {error}")],
    };
    let Ok(validator) = jsonschema::validator_for(schema) else {
        // Refused at submit; a schema that cannot check checks nothing.
        return Vec::new();
    };
    validator
        .iter_errors(&parsed)
        .take(ERRORS_TOLD)
        .map(|error| {
            let at = error.instance_path().to_string();
            let at = if at.is_empty() { "/".to_owned() } else { at };
            format!("at {at}: {error}")
        })
        .collect()
}

/// What the model is told after an answer that does not match.
pub fn repair_message(errors: &str) -> String {
    format!(
        "Your answer does not match the required JSON schema:\n{errors}\n\
         Answer again with only JSON that matches the schema."
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn answers_are_checked_against_the_schema_of_a_json_schema_format() {
        let format = json!({"type": "json_schema", "json_schema": {"name": "p", "schema": {
            "type": "object", "required": ["name", "age"],
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}}});
        let schema = schema_of(Some(&format)).expect("a schema");
        assert!(errors(schema, Some(r#"{"name": "Ada", "age": 36}"#)).is_empty());
        let wrong = errors(schema, Some(r#"{"name": "Ada", "age": "old"}"#));
        assert_eq!(wrong.len(), 1, "{wrong:?}");
        assert!(wrong[0].starts_with("at /age:"), "{wrong:?}");
        assert!(errors(schema, Some("not json"))[0].contains("not JSON"));
        assert!(errors(schema, None)[0].contains("not JSON"));
        assert!(schema_of(Some(&json!({"type": "json_object"}))).is_none());
        assert!(check_schema(&json!({"type": "no such type"})).is_err());
    }
}
