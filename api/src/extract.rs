//! Extractors whose rejections come back in the contract's error shape, naming the
//! field at fault. The body is parsed as JSON whatever its `Content-Type`, so a
//! plain `curl -d` works.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::request::Parts,
};
use serde::{Deserialize, de::DeserializeOwned};

use crate::{error::ApiError, state::AppState};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body; unknown fields are refused by the target types.
pub struct JsonBody<T>(pub T);

impl<T> FromRequest<AppState> for JsonBody<T>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        // A client trickling its body would otherwise hold the request for ever.
        let limit = state.config.http.body_read_timeout;
        let bytes = tokio::time::timeout(limit, Bytes::from_request(request, state))
            .await
            .map_err(|_| ApiError::body_timeout(limit))?
            .map_err(|_| ApiError::too_large(MAX_BODY_BYTES))?;
        parse_json(&bytes).map(Self)
    }
}

/// Parses a JSON body into `T`, turning serde's complaint into a 400 that names
/// the offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::invalid_body(
                "invalid_json",
                "the request body is empty; send a JSON object",
            ));
        }
        // serde would also read a struct from an array; the API takes objects only.
        Some(b'[') => {
            return Err(ApiError::invalid_body(
                "invalid_body",
                "the body must be a JSON object",
            ));
        }
        Some(_) => {}
    }
    if contains_nul(bytes) {
        return Err(ApiError::invalid_body(
            "invalid_value",
            "text must not contain the NUL character (\\u0000)",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        describe(&path, &inner)
    })?;
    // Anything after the object would be ignored, and two bodies differing only
    // there would look alike: refuse it.
    deserializer.end().map_err(|_| {
        ApiError::invalid_body(
            "invalid_json",
            "the body has more after its JSON object; send one JSON object only",
        )
    })?;
    Ok(value)
}

/// Whether any string (or key) of the JSON holds U+0000, which Postgres cannot
/// store in text. Bodies without the escape sequence skip the walk.
fn contains_nul(bytes: &[u8]) -> bool {
    fn walk(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(text) => text.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(walk),
            serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || walk(v)),
            _ => false,
        }
    }
    bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
        && serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|value| walk(&value))
}

fn describe(path: &str, error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let text = error.to_string();
    // serde's messages end with " at line 1 column 7"; users need only the first part.
    let detail = text.split(" at line ").next().unwrap_or(&text).to_owned();
    let quoted = detail.split('`').nth(1).map(str::to_owned);
    let field = |name: Option<String>| match (path, name) {
        (".", Some(name)) | ("", Some(name)) => name,
        (path, Some(name)) => format!("{path}.{name}"),
        (path, None) => path.to_owned(),
    };
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::invalid_body(
            "invalid_json",
            format!("the body is not valid JSON: {detail}"),
        ),
        Category::Data if detail.starts_with("missing field") => {
            let param = field(quoted);
            ApiError::invalid("missing_field", &param, format!("`{param}` is required"))
        }
        Category::Data if detail.starts_with("unknown field") => {
            // The path already ends at the unknown field.
            let param = path.to_owned();
            ApiError::invalid("unknown_field", &param, format!("unknown field `{param}`"))
        }
        Category::Data if path == "." || path.is_empty() => ApiError::invalid_body(
            "invalid_body",
            format!("the body must be a JSON object: {detail}"),
        ),
        Category::Data => ApiError::invalid("invalid_value", path, format!("`{path}`: {detail}")),
    }
}

/// An integer, also written as a number with no fraction (`5.0`), as JSON Schema
/// counts those among the integers.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    let number: Option<serde_json::Number> = Option::deserialize(deserializer)?;
    let Some(number) = number else {
        return Ok(None);
    };
    if let Some(n) = number.as_i64() {
        return Ok(Some(n));
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
        _ => Err(serde::de::Error::custom(format!(
            "invalid type: {number}, expected a whole number"
        ))),
    }
}

/// Query parameters, with the same error shape.
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let param = text
                    .split('`')
                    .nth(1)
                    .map(str::to_owned)
                    .unwrap_or_else(|| query.split('=').next().unwrap_or_default().to_owned());
                ApiError::invalid("invalid_query", param, text)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        message: String,
        count: Option<u8>,
    }

    fn error_of(body: &str) -> serde_json::Value {
        let error = parse_json::<Sample>(body.as_bytes()).expect_err("should fail");
        let response = axum::response::IntoResponse::into_response(error);
        let bytes = futures_util::FutureExt::now_or_never(axum::body::to_bytes(
            response.into_body(),
            usize::MAX,
        ))
        .and_then(Result::ok)
        .unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    #[test]
    fn a_missing_field_is_named() {
        let error = error_of("{}");
        assert_eq!(error["error"]["code"], "missing_field");
        assert_eq!(error["error"]["param"], "message");
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn an_unknown_field_is_named() {
        let error = error_of(r#"{"message":"x","colour":"red"}"#);
        assert_eq!(error["error"]["code"], "unknown_field");
        assert_eq!(error["error"]["param"], "colour");
    }

    #[test]
    fn nul_characters_are_refused_but_an_escaped_backslash_is_not() {
        assert_eq!(
            error_of(r#"{"message":"a\u0000b"}"#)["error"]["code"],
            "invalid_value"
        );
        assert!(parse_json::<Sample>(br#"{"message":"a\\u0000b"}"#).is_ok());
    }

    #[test]
    fn malformed_json_and_wrong_types_are_told_apart() {
        assert_eq!(error_of("{\"message\":")["error"]["code"], "invalid_json");
        assert_eq!(error_of("")["error"]["code"], "invalid_json");
        let error = error_of(r#"{"message":"x","count":"many"}"#);
        assert_eq!(error["error"]["code"], "invalid_value");
        assert_eq!(error["error"]["param"], "count");
        assert_eq!(error_of("[1]")["error"]["code"], "invalid_body");
    }

    #[test]
    fn data_after_the_object_is_refused_and_whitespace_is_not() {
        for body in [
            r#"{"message":"a"} x"#,
            r#"{"message":"a"}{"message":"b"}"#,
            r#"{"message":"a"} 1"#,
        ] {
            assert_eq!(error_of(body)["error"]["code"], "invalid_json", "{body}");
        }
        assert!(parse_json::<Sample>(b"{\"message\":\"a\"} \n\t ").is_ok());
    }

    /// The codes a body refusal may carry.
    const BODY_CODES: &[&str] = &[
        "invalid_json",
        "invalid_body",
        "invalid_value",
        "missing_field",
        "unknown_field",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn any_body_gets_a_contract_error_or_a_value(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if parse_json::<Sample>(&bytes).is_err() {
                let error = error_of(&String::from_utf8_lossy(&bytes));
                let code = error["error"]["code"].as_str().unwrap_or_default().to_owned();
                proptest::prop_assert!(BODY_CODES.contains(&code.as_str()), "{}", error);
            }
        }

        #[test]
        fn any_json_like_body_gets_a_contract_error_or_a_value(text in "[{}\\[\\]\":,a-z0-9 \\\\.-]{0,80}") {
            if parse_json::<Sample>(text.as_bytes()).is_err() {
                let code = error_of(&text)["error"]["code"].as_str().unwrap_or_default().to_owned();
                proptest::prop_assert!(BODY_CODES.contains(&code.as_str()), "{}", text);
            }
        }

        #[test]
        fn anything_after_a_valid_object_is_refused(tail in "[^ \\t\\r\\n]\\PC{0,20}") {
            let body = format!("{{\"message\":\"x\"}}{tail}");
            proptest::prop_assert!(parse_json::<Sample>(body.as_bytes()).is_err(), "{}", body);
        }
    }
}
