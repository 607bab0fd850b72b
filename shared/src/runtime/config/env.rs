//! Reading the environment: typed access with one error shape, and the
//! duration syntax settings and providers' headers share.

use std::{str::FromStr, time::Duration};

use secrecy::SecretString;

use super::ConfigError;
use crate::domain::model::Provider;

/// Typed access to one lookup function; empty values count as unset.
pub(super) struct Env<'a>(pub(super) &'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    pub(super) fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.trim().is_empty())
    }

    pub(super) fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    pub(super) fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name).map(SecretString::from)
    }

    pub(super) fn parse<T: FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse()
                .map_err(|_| ConfigError::new(name, format!("cannot parse {text:?}"))),
        }
    }

    pub(super) fn parse_min<T: FromStr + PartialOrd + std::fmt::Display + Copy>(
        &self,
        name: &'static str,
        default: T,
        min: T,
    ) -> Result<T, ConfigError> {
        let value = self.parse(name, default)?;
        if value < min {
            return Err(ConfigError::new(name, format!("must be at least {min}")));
        }
        Ok(value)
    }

    pub(super) fn parse_max<T: FromStr + PartialOrd + std::fmt::Display + Copy>(
        &self,
        name: &'static str,
        default: T,
        max: T,
    ) -> Result<T, ConfigError> {
        let value = self.parse(name, default)?;
        if value > max {
            return Err(ConfigError::new(name, format!("must be at most {max}")));
        }
        Ok(value)
    }

    pub(super) fn seconds(
        &self,
        name: &'static str,
        default: u64,
    ) -> Result<Duration, ConfigError> {
        self.parse_min(name, default, 1).map(Duration::from_secs)
    }

    pub(super) fn schedule(
        &self,
        name: &'static str,
        default: &str,
    ) -> Result<Vec<Duration>, ConfigError> {
        let text = self.string(name, default);
        let steps: Option<Vec<Duration>> =
            text.split(',').map(|s| parse_duration(s.trim())).collect();
        match steps {
            Some(steps) if !steps.is_empty() && steps.iter().all(|d| !d.is_zero()) => Ok(steps),
            _ => Err(ConfigError::new(
                name,
                "must be a comma-separated list of durations like 5s,30s,2m",
            )),
        }
    }

    pub(super) fn provider(&self, name: &'static str) -> Result<Provider, ConfigError> {
        match self.get(name) {
            None => Ok(Provider::OpenAi),
            Some(text) => Provider::parse(text.trim())
                .ok_or_else(|| ConfigError::new(name, "must be openai or openrouter")),
        }
    }

    pub(super) fn base_url(
        &self,
        name: &'static str,
        default: &str,
    ) -> Result<String, ConfigError> {
        let url = self.string(name, default);
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ConfigError::new(name, "must be an http:// or https:// URL"));
        }
        Ok(url.trim_end_matches('/').to_owned())
    }

    /// An HTTP proxy (`http://[user:password@]host[:port]`), if set. Kept
    /// secret: its password may be in it, and no error repeats it.
    pub(super) fn proxy_url(
        &self,
        name: &'static str,
    ) -> Result<Option<SecretString>, ConfigError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        match url::Url::parse(text.trim()) {
            Ok(url) if url.scheme() == "http" && url.host_str().is_some() => {
                Ok(Some(SecretString::from(text.trim())))
            }
            _ => Err(ConfigError::new(
                name,
                "must be an http:// URL: a proxy that tunnels calls with CONNECT",
            )),
        }
    }
}

/// Parses durations like `1s`, `6m0s`, `1h2m3.5s`, `250ms` (OpenAI's reset headers
/// use this form; so do stewrd's schedule settings).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    (total.is_finite() && total <= 86_400.0 * 7.0).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_go_form() {
        assert_eq!(
            parse_duration("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn any_duration_text_is_read_without_panicking(text in "\\PC{0,40}") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn durations_in_go_form_read_back(h in 0..48u64, m in 0..60u64, s in 0..60u64, ms in 0..1000u64) {
            let text = format!("{h}h{m}m{s}s{ms}ms");
            let expected = Duration::from_millis(((h * 60 + m) * 60 + s) * 1000 + ms);
            let read = parse_duration(&text).expect("parses");
            proptest::prop_assert!(read.abs_diff(expected) < Duration::from_micros(1), "{:?}", read);
        }
    }
}
