//! Signing in to the dashboard with the admin token. The session cookie is
//! stateless (`<expiry>.<HMAC>` keyed by the admin token), so it works on every API
//! process and dies when the token changes; a sign-out records it in Postgres
//! (`db::sign_out`), so a copy of it dies too. `HttpOnly` keeps it from scripts,
//! `SameSite=Strict` from other sites; every form also carries a CSRF token
//! derived from the cookie, checked on every POST.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, header::COOKIE};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The cookie's name.
pub const COOKIE_NAME: &str = "stewrd_dashboard";
/// How long a sign-in lasts.
pub const SESSION_SECS: u64 = 12 * 3600;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn mac(admin_token: &SecretString, purpose: &str, value: &str) -> String {
    // The token itself is never the key: its hash is, so the key has a fixed size.
    let key = Sha256::digest(admin_token.expose_secret().as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key size");
    mac.update(purpose.as_bytes());
    mac.update(b":");
    mac.update(value.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A new session cookie value.
pub fn new_session(admin_token: &SecretString) -> String {
    let expiry = (now() + SESSION_SECS).to_string();
    let signature = mac(admin_token, "session", &expiry);
    format!("{expiry}.{signature}")
}

/// The request's session cookie, if it is genuine and unexpired.
pub fn session(headers: &HeaderMap, admin_token: &SecretString) -> Option<String> {
    let value = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(&format!("{COOKIE_NAME}=")))?;
    let (expiry, signature) = value.split_once('.')?;
    let valid = same(signature, &mac(admin_token, "session", expiry))
        && expiry.parse::<u64>().is_ok_and(|expiry| expiry > now());
    valid.then(|| value.to_owned())
}

/// When a session cookie (as [`session`] returned it) expires.
pub fn expires_at(session: &str) -> Option<time::OffsetDateTime> {
    let expiry = session.split_once('.')?.0.parse::<i64>().ok()?;
    time::OffsetDateTime::from_unix_timestamp(expiry).ok()
}

/// The CSRF token for forms of this session.
pub fn csrf_token(admin_token: &SecretString, session: &str) -> String {
    mac(admin_token, "csrf", session)
}

/// Whether a submitted CSRF token belongs to this session.
pub fn csrf_ok(admin_token: &SecretString, session: &str, submitted: &str) -> bool {
    same(submitted, &csrf_token(admin_token, session))
}

/// `Set-Cookie` for a sign-in (or, with `None`, a sign-out); `secure` when the
/// API is reached over HTTPS, so the browser never sends the cookie in clear.
pub fn set_cookie(value: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(value) => format!(
            "{COOKIE_NAME}={value}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}{secure}"
        ),
        None => {
            format!("{COOKIE_NAME}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(cookie).expect("header"));
        headers
    }

    #[test]
    fn a_session_cookie_is_accepted_only_with_the_same_admin_token() {
        let token = SecretString::from("admin");
        let value = new_session(&token);
        let found = session(&headers(&format!("a=b; {COOKIE_NAME}={value}")), &token);
        assert_eq!(found.as_deref(), Some(value.as_str()));
        assert!(
            session(
                &headers(&format!("{COOKIE_NAME}={value}")),
                &SecretString::from("other")
            )
            .is_none()
        );
        let forged = format!("{}.{}", now() + 999_999, "AAAA");
        assert!(session(&headers(&format!("{COOKIE_NAME}={forged}")), &token).is_none());
        let expired_at = (now() - 1).to_string();
        let expired = format!("{expired_at}.{}", mac(&token, "session", &expired_at));
        assert!(session(&headers(&format!("{COOKIE_NAME}={expired}")), &token).is_none());
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let token = SecretString::from("admin");
        let (a, b) = (new_session(&token), format!("{}.x", now() + 10));
        let csrf = csrf_token(&token, &a);
        assert!(csrf_ok(&token, &a, &csrf));
        assert!(!csrf_ok(&token, &b, &csrf));
        assert!(!csrf_ok(&token, &a, ""));
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let cookie = set_cookie(Some("v"), false);
        assert!(!cookie.contains("Secure"));
        assert!(set_cookie(Some("v"), true).ends_with("; Secure"));
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(set_cookie(None, false).contains("Max-Age=0"));
    }
}
