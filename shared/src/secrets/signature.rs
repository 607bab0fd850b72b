//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed by the base64 bytes after
//! `whsec_`. Several space-separated signatures are allowed (secret rotation).
//! `verify` is what receivers (and our tests) run.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Every signing secret starts with this.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret (the specification allows 24 to 64).
const SECRET_BYTES: usize = 32;
/// How far a timestamp may be from now before `verify` refuses it.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// Why a signature did not verify, or a secret could not be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the secret is not `whsec_` followed by base64")]
    BadSecret,
    #[error("the timestamp is not a number")]
    BadTimestamp,
    #[error("the timestamp is more than five minutes away from now")]
    StaleTimestamp,
    #[error("no signature matches")]
    NoMatch,
}

/// A new random secret, shown to its owner once.
pub fn generate_secret() -> SecretString {
    let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
    rand::fill(&mut bytes[..]);
    SecretString::from(format!(
        "{SECRET_PREFIX}{}",
        STANDARD.encode(bytes.as_slice())
    ))
}

fn mac(secret: &SecretString) -> Result<Hmac<Sha256>, SignatureError> {
    let encoded = secret
        .expose_secret()
        .strip_prefix(SECRET_PREFIX)
        .ok_or(SignatureError::BadSecret)?;
    let key = Zeroizing::new(
        STANDARD
            .decode(encoded)
            .map_err(|_| SignatureError::BadSecret)?,
    );
    if key.is_empty() {
        return Err(SignatureError::BadSecret);
    }
    Hmac::<Sha256>::new_from_slice(&key).map_err(|_| SignatureError::BadSecret)
}

fn signed_content(mac: &mut Hmac<Sha256>, id: &str, timestamp: i64, body: &[u8]) {
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
}

/// One `v1,<base64>` signature.
pub fn sign(
    secret: &SecretString,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    let mut mac = mac(secret)?;
    signed_content(&mut mac, id, timestamp, body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Checks a `webhook-signature` header: the timestamp within five minutes of `now`
/// and at least one `v1` signature matching (compared in constant time, lengths
/// included, so an empty or cut signature never matches).
pub fn verify(
    secret: &SecretString,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(SignatureError::StaleTimestamp);
    }
    let base = mac(secret)?;
    for candidate in signatures.split(' ') {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(given) = STANDARD.decode(encoded) else {
            continue;
        };
        let mut mac = base.clone();
        signed_content(&mut mac, id, timestamp, body);
        if mac.verify_slice(&given).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The published known answer of the Standard Webhooks specification.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TIMESTAMP: i64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const EXPECTED: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn secret() -> SecretString {
        SecretString::from(SECRET)
    }

    #[test]
    fn signing_matches_the_specifications_known_answer() {
        assert_eq!(
            sign(&secret(), ID, TIMESTAMP, BODY).as_deref(),
            Ok(EXPECTED)
        );
    }

    #[test]
    fn the_known_answer_verifies_and_alterations_do_not() {
        let ts = TIMESTAMP.to_string();
        assert_eq!(
            verify(&secret(), ID, &ts, EXPECTED, BODY, TIMESTAMP),
            Ok(())
        );
        assert_eq!(
            verify(&secret(), ID, &ts, EXPECTED, b"{}", TIMESTAMP),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(&secret(), "msg_other", &ts, EXPECTED, BODY, TIMESTAMP),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn empty_and_truncated_signatures_are_refused() {
        let ts = TIMESTAMP.to_string();
        for bad in [
            "v1,",
            "v1",
            "",
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3",
            "v2,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        ] {
            assert_eq!(
                verify(&secret(), ID, &ts, bad, BODY, TIMESTAMP),
                Err(SignatureError::NoMatch),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn a_timestamp_outside_five_minutes_is_refused() {
        let ts = TIMESTAMP.to_string();
        assert_eq!(
            verify(
                &secret(),
                ID,
                &ts,
                EXPECTED,
                BODY,
                TIMESTAMP + TOLERANCE_SECS + 1
            ),
            Err(SignatureError::StaleTimestamp)
        );
        assert_eq!(
            verify(
                &secret(),
                ID,
                &ts,
                EXPECTED,
                BODY,
                TIMESTAMP - TOLERANCE_SECS - 1
            ),
            Err(SignatureError::StaleTimestamp)
        );
        assert_eq!(
            verify(&secret(), ID, "soon", EXPECTED, BODY, TIMESTAMP),
            Err(SignatureError::BadTimestamp)
        );
    }

    #[test]
    fn any_one_of_several_signatures_is_enough() {
        let ts = TIMESTAMP.to_string();
        let other = sign(&generate_secret(), ID, TIMESTAMP, BODY).unwrap_or_default();
        let both = format!("{other} {EXPECTED}");
        assert_eq!(verify(&secret(), ID, &ts, &both, BODY, TIMESTAMP), Ok(()));
        assert_eq!(
            verify(&generate_secret(), ID, &ts, &both, BODY, TIMESTAMP),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_new_secret_has_the_prefix_and_signs() {
        let secret = generate_secret();
        assert!(secret.expose_secret().starts_with(SECRET_PREFIX));
        let signature = sign(&secret, "msg_1", 1, b"x").expect("signs");
        assert_eq!(verify(&secret, "msg_1", "1", &signature, b"x", 1), Ok(()));
        assert_eq!(
            sign(&SecretString::from("whsec_!!"), "m", 1, b""),
            Err(SignatureError::BadSecret)
        );
    }
}
