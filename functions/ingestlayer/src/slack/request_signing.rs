//! Slack request signing (Events API, interactivity): `X-Slack-Signature: v0=<hex>` is
//! HMAC-SHA256 with the app's signing secret over `v0:{X-Slack-Request-Timestamp}:{body}`.
//! Requests older or newer than five minutes are refused (replay window); the comparison is
//! constant time.

use hmac::KeyInit;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Slack's replay window.
pub const WINDOW_SECONDS: i64 = 300;

/// Why a request's signature was refused (the Events API answers 401 with it). A
/// refusal returned by the pure [`verify`], not one of the library's failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("X-Slack-Request-Timestamp is missing or not a number")]
    BadTimestamp,
    #[error("the request timestamp is more than 5 minutes away from now")]
    Stale,
    #[error("X-Slack-Signature is missing or not v0=<64 hex digits>")]
    Malformed,
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks a Slack request's signature at `now_unix`.
pub fn verify(
    signing_secret: &SecretString,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), SignatureError> {
    let ts_text = timestamp
        .map(str::trim)
        .ok_or(SignatureError::BadTimestamp)?;
    let ts: i64 = ts_text.parse().map_err(|_| SignatureError::BadTimestamp)?;
    if (now_unix - ts).abs() > WINDOW_SECONDS {
        return Err(SignatureError::Stale);
    }
    let hex_sig = signature
        .and_then(|s| s.trim().strip_prefix("v0="))
        .filter(|h| h.len() == 64)
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_sig).map_err(|_| SignatureError::Malformed)?;
    mac(signing_secret, ts_text, body)
        .verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The signature Slack would send (for tests and tools).
pub fn sign(signing_secret: &SecretString, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        hex::encode(mac(signing_secret, timestamp, body).finalize().into_bytes())
    )
}

fn mac(secret: &SecretString, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    #[allow(clippy::expect_used)]
    let mut m =
        Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).expect("any key length");
    m.update(b"v0:");
    m.update(timestamp.as_bytes());
    m.update(b":");
    m.update(body);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretString {
        SecretString::from("8f742231b10e8888abcd99yyyzzz85a5".to_owned())
    }

    #[test]
    fn a_signed_request_verifies_within_the_window() {
        let body = br#"{"type":"url_verification","challenge":"abc"}"#;
        let sig = sign(&secret(), "1531420618", body);
        assert_eq!(
            verify(
                &secret(),
                Some("1531420618"),
                Some(&sig),
                body,
                1531420618 + 299
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                &secret(),
                Some("1531420618"),
                Some(&sig),
                body,
                1531420618 - 300
            ),
            Ok(())
        );
    }

    #[test]
    fn old_tampered_and_malformed_requests_are_refused() {
        let body = b"payload";
        let sig = sign(&secret(), "1000", body);
        assert_eq!(
            verify(&secret(), Some("1000"), Some(&sig), body, 1301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&secret(), Some("1000"), Some(&sig), b"payloaD", 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&secret(), Some("1001"), Some(&sig), body, 1000),
            Err(SignatureError::Mismatch)
        );
        let other = SecretString::from("another-secret".to_owned());
        assert_eq!(
            verify(&other, Some("1000"), Some(&sig), body, 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&secret(), Some("1000"), Some("v0="), body, 1000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(&secret(), Some("1000"), None, body, 1000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(&secret(), Some("soon"), Some(&sig), body, 1000),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify(&secret(), None, Some(&sig), body, 1000),
            Err(SignatureError::BadTimestamp)
        );
    }
}
