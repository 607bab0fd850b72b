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

/// A token (API key): 1 to `max` characters, none blank or control.
pub fn is_token(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.chars().count() <= max
        && !text.chars().any(|c| is_blank(c) || c.is_control())
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
    fn labels_and_tokens() {
        assert!(is_label("gpt-4o", 200));
        assert!(!is_label("\u{feff}", 200));
        assert!(!is_label("a\u{85}b", 200));
        assert!(!is_label(&"m".repeat(201), 200));
        assert!(is_token("sk-abc", 512));
        assert!(!is_token("sk abc", 512));
        assert!(!is_token("sk\u{feff}", 512));
        assert!(!is_token("", 512));
        assert!(has_visible(" x "));
        assert!(!has_visible(" \u{85}\u{feff} "));
    }
}
