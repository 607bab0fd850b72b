//! Taking a secret out of text that may quote it. Providers echo the key they
//! reject, and not always verbatim: upper-cased, URL-encoded, or only its tail
//! after a masked head. So any run of [`MIN_RUN`] or more characters of the
//! secret, in any letter case, plain or percent-encoded, becomes `[redacted]`.

use std::collections::HashSet;

/// The shortest piece of a secret that is redacted on its own.
pub const MIN_RUN: usize = 8;
/// What stands where a piece of the secret was.
pub const MARK: &str = "[redacted]";

/// `text` with every piece of `secret` of [`MIN_RUN`] characters or more (the
/// whole secret, if it is shorter) replaced by [`MARK`]. Cuts fall on character
/// boundaries, whatever the text holds.
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() || text.is_empty() {
        return text.to_owned();
    }
    let haystack = text.as_bytes().to_ascii_lowercase();
    let mut hidden = vec![false; haystack.len()];
    for form in [
        secret.as_bytes().to_ascii_lowercase(),
        percent_encoded(secret),
    ] {
        mark_shared_runs(&haystack, &form, &mut hidden);
    }
    if !hidden.contains(&true) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut in_mark = false;
    for (at, c) in text.char_indices() {
        // A character is hidden when any of its bytes is.
        if hidden[at..at + c.len_utf8()].contains(&true) {
            if !in_mark {
                out.push_str(MARK);
                in_mark = true;
            }
        } else {
            out.push(c);
            in_mark = false;
        }
    }
    out
}

/// Marks in `hidden` every byte of `haystack` that lies in a stretch shared with
/// `form` of at least `MIN_RUN` bytes (or all of `form`, if shorter). Every such
/// stretch is covered by its windows of that width, each of which is a window of
/// `form`: one hash set of windows finds them all in linear time.
fn mark_shared_runs(haystack: &[u8], form: &[u8], hidden: &mut [bool]) {
    let width = MIN_RUN.min(form.len());
    if width == 0 || haystack.len() < width {
        return;
    }
    let windows: HashSet<&[u8]> = form.windows(width).collect();
    for (start, window) in haystack.windows(width).enumerate() {
        if windows.contains(window) {
            hidden[start..start + width].fill(true);
        }
    }
}

/// The secret as a URL query or path would carry it (lower-case hex, as the
/// search is case-insensitive anyway).
fn percent_encoded(secret: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(secret.len() * 3);
    for byte in secret.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte.to_ascii_lowercase());
        } else {
            out.extend_from_slice(format!("%{byte:02x}").as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-proj-Ab/cD+eF9gH1iJ2kL3mN4oP5";

    fn leaks(text: &str) -> bool {
        let lower = text.to_ascii_lowercase();
        let key = KEY.to_ascii_lowercase();
        (0..=key.len() - MIN_RUN).any(|i| lower.contains(&key[i..i + MIN_RUN]))
    }

    #[test]
    fn the_key_and_its_transformed_forms_are_redacted() {
        for form in [
            KEY.to_owned(),
            KEY.to_uppercase(),
            KEY.replace('/', "%2F").replace('+', "%2B"),
            KEY.replace('/', "%2f").replace('+', "%2b"),
            KEY[12..].to_owned(),
            format!("{}****", &KEY[..12]),
            format!("***{}", &KEY[KEY.len() - 8..]),
        ] {
            let text = format!("Incorrect API key provided: {form}. See the docs.");
            let redacted = redact(&text, KEY);
            assert!(!leaks(&redacted), "{form} -> {redacted}");
            assert!(redacted.contains("[redacted]"), "{redacted}");
            assert!(redacted.ends_with(". See the docs."), "{redacted}");
        }
    }

    #[test]
    fn text_without_the_key_is_unchanged() {
        let text = "You exceeded your current quota, please check your plan.";
        assert_eq!(redact(text, KEY), text);
        assert_eq!(redact("", KEY), "");
        assert_eq!(redact(text, ""), text);
    }

    #[test]
    fn short_pieces_stay_and_multibyte_text_is_cut_on_boundaries() {
        // Seven characters of the key are not enough to redact.
        assert_eq!(redact("key sk-proj ok", KEY), "key sk-proj ok");
        let key = "sk-ünï\u{200b}cødé-0123456789";
        let text = format!("é {key} ü");
        assert_eq!(redact(&text, key), "é [redacted] ü");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn any_text_and_secret_are_redacted_without_panicking(text in "\\PC{0,200}", secret in "\\PC{0,40}") {
            let _ = redact(&text, &secret);
        }

        #[test]
        fn a_key_quoted_in_any_form_leaves_no_eight_characters_behind(
            key in "[!-~]{8,64}",
            before in "\\PC{0,40}",
            after in "\\PC{0,40}",
            form in 0..4usize,
            from in 0..8usize,
        ) {
            let quoted = match form {
                0 => key.clone(),
                1 => key.to_uppercase(),
                2 => String::from_utf8(percent_encoded(&key)).unwrap_or_default(),
                _ => key[from.min(key.len() - 8)..].to_owned(),
            };
            let redacted = redact(&format!("{before}{quoted}{after}"), &key).to_ascii_lowercase();
            let lower = key.to_ascii_lowercase();
            for i in 0..=lower.len() - MIN_RUN {
                proptest::prop_assert!(!redacted.contains(&lower[i..i + MIN_RUN]), "{redacted}");
            }
        }
    }
}
