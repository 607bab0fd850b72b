//! What counts as blank and as printable in names, models, keys and messages,
//! matching the patterns of the OpenAPI document (ECMAScript regular expressions,
//! whose `\s` also covers U+FEFF) so that validators and the API agree.

/// Whitespace as ECMAScript's `\s` sees it, plus NEL (U+0085).
pub fn is_blank(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// Has at least one character that is neither blank nor a control character.
pub fn has_visible(text: &str) -> bool {
    text.chars().any(|c| !is_blank(c) && !c.is_control())
}

/// A short label (name, model): 1 to `max` characters, no control characters,
/// something visible.
pub fn is_label(text: &str, max: usize) -> bool {
    has_visible(text) && text.chars().count() <= max && !text.chars().any(char::is_control)
}

/// Bytes in lowercase hex (digests as they are shown and stored).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

/// A provider key as providers issue them: 1 to `max` visible ASCII characters.
/// Anything else (a zero-width space pasted with the key, say) cannot be a valid
/// key and would only fail later, far from the form that took it.
pub fn is_visible_ascii(text: &str, max: usize) -> bool {
    (1..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic())
}

/// `text` cut to at most `max` characters (never inside one), with `…` added
/// when something was cut.
pub fn cut(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_covers_unicode_spaces_and_bom() {
        for c in [
            ' ', '\t', '\n', '\u{85}', '\u{a0}', '\u{2028}', '\u{3000}', '\u{feff}',
        ] {
            assert!(is_blank(c), "{c:?}");
        }
        assert!(!is_blank('a'));
    }

    #[test]
    fn labels() {
        assert!(is_label("gpt-4o", 200));
        assert!(!is_label("\u{feff}", 200));
        assert!(!is_label("a\u{85}b", 200));
        assert!(!is_label(&"m".repeat(201), 200));
        assert!(has_visible(" x "));
        assert!(!has_visible(" \u{85}\u{feff} "));
    }

    #[test]
    fn provider_keys_are_visible_ascii() {
        assert!(is_visible_ascii("sk-proj-abc_DEF/+=", 512));
        assert!(!is_visible_ascii("sk-proj-abc\u{200b}FAKE", 512));
        assert!(!is_visible_ascii("sk-é", 512));
        assert!(!is_visible_ascii("sk abc", 512));
        assert!(!is_visible_ascii("", 512));
        assert!(!is_visible_ascii(&"k".repeat(513), 512));
    }

    #[test]
    fn cutting_keeps_whole_characters() {
        assert_eq!(cut("héllo".to_owned(), 2), "hé…");
        assert_eq!(cut("\u{200b}\u{200b}\u{200b}".to_owned(), 1), "\u{200b}…");
        assert_eq!(cut("short".to_owned(), 10), "short");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn cutting_any_text_keeps_a_prefix_of_whole_characters(text in "\\PC{0,100}", max in 0..50usize) {
            let cut_text = cut(text.clone(), max);
            let kept = cut_text.strip_suffix('…').unwrap_or(&cut_text);
            proptest::prop_assert!(text.starts_with(kept));
            proptest::prop_assert!(kept.chars().count() <= max);
        }
    }
}

/// A provider's text made storable: Postgres `text` and `jsonb` cannot hold
/// U+0000, so a model answer with one could never be stored, and its run would
/// be called again after every lease expiry. It becomes U+FFFD, as an
/// unreadable character does elsewhere.
pub fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// [`storable`] for every string in a JSON value (keys included).
pub fn storable_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) => Value::String(storable(text)),
        Value::Array(items) => Value::Array(items.into_iter().map(storable_json).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, value)| (storable(key), storable_json(value)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod storable_tests {
    use super::*;

    #[test]
    fn nul_becomes_the_replacement_character_everywhere() {
        assert_eq!(storable("a\0b".into()), "a\u{FFFD}b");
        assert_eq!(storable("plain".into()), "plain");
        let value = serde_json::json!({"k\u{0}": ["x\u{0}", 1, {"y": "\u{0}"}]});
        assert_eq!(
            storable_json(value),
            serde_json::json!({"k\u{FFFD}": ["x\u{FFFD}", 1, {"y": "\u{FFFD}"}]})
        );
    }
}
