//! Signed, expiring links to stored events: `GET /v1/events/{id}?exp=<unix>&sig=<hex>`,
//! where `sig` is the [`Purpose::EventLink`] signature of `(id, exp)` (a [`TokenKey`] with
//! its parts in the path and query): its own key, derived from the stack's signing secret,
//! so a link never works as a session, a CSRF token or an OAuth state. An expired or
//! tampered link gets 403; checks are constant time. The id is percent-encoded as one path
//! segment.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use secrecy::SecretString;
use std::time::Duration;

use crate::purpose::{Purpose, TokenError, TokenKey};

/// What stays unencoded in a path segment: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How long a link in a Slack message works, unless configured.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 86_400);

/// Why a link was refused (the stored event answers 403 with it). A
/// refusal returned by the pure [`LinkSigner::verify`], not one of the library's failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link has expired")]
    Expired,
    #[error("the link's signature does not match")]
    BadSignature,
    #[error("the link is missing exp or sig")]
    Incomplete,
}

/// Signs and checks event links.
#[derive(Clone)]
pub struct LinkSigner {
    key: TokenKey,
    /// The public base URL of the ingest API, e.g. `https://abc.execute-api.eu-west-1.amazonaws.com`.
    base_url: String,
    ttl: Duration,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSigner")
            .field("base_url", &self.base_url)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl LinkSigner {
    /// A signer whose key is derived from the stack's signing secret `root`.
    pub fn new(root: SecretString, base_url: &str, ttl: Duration) -> Self {
        Self {
            key: TokenKey::new(&root, Purpose::EventLink, None),
            base_url: base_url.trim_end_matches('/').to_owned(),
            ttl,
        }
    }

    /// A link to event `id` that works until `now_unix + ttl`.
    pub fn link(&self, id: &str, now_unix: i64) -> String {
        let exp = now_unix + self.ttl.as_secs() as i64;
        let sig = self.key.signature(id, exp);
        let id = utf8_percent_encode(id, SEGMENT);
        format!("{}/v1/events/{id}?exp={exp}&sig={sig}", self.base_url)
    }

    /// Checks a link's `exp` and `sig` query values for event `id` at `now_unix`.
    pub fn verify(
        &self,
        id: &str,
        exp: Option<&str>,
        sig: Option<&str>,
        now_unix: i64,
    ) -> Result<(), LinkError> {
        let (Some(exp), Some(sig)) = (exp, sig) else {
            return Err(LinkError::Incomplete);
        };
        self.key
            .check_parts(id, exp, sig, now_unix)
            .map_err(|e| match e {
                TokenError::Expired => LinkError::Expired,
                TokenError::Malformed | TokenError::BadSignature => LinkError::BadSignature,
            })
    }
}

/// Decodes a percent-encoded path segment; `None` when it is not UTF-8.
pub fn percent_decode_segment(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// A signing-key secret is `{"key": "…"}` or the bare key.
pub fn parse_key(secret: &str) -> Option<SecretString> {
    let key = match serde_json::from_str::<serde_json::Value>(secret) {
        Ok(v) => v
            .get("key")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_owned(),
        Err(_) => secret.trim().to_owned(),
    };
    (key.len() >= 16).then(|| SecretString::from(key))
}

/// Reads the stack's signing secret (the root every purpose's key is derived from) from
/// Secrets Manager.
pub async fn load_key(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> crate::error::Result<SecretString> {
    let secret = crate::aws::secrets::read_secret(client, arn, "the link signing key").await?;
    parse_key(&secret).ok_or_else(|| {
        crate::error::Error::invalid(
            "the link signing secret",
            "it holds no key of 16 or more characters",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> LinkSigner {
        LinkSigner::new(
            SecretString::from("0123456789abcdef0123".to_owned()),
            "https://api.example/",
            Duration::from_secs(60),
        )
    }

    fn parts(link: &str) -> (String, String, String) {
        let (path, query) = link.split_once('?').unwrap();
        let id = percent_decode_segment(path.rsplit('/').next().unwrap()).unwrap();
        let mut exp = String::new();
        let mut sig = String::new();
        for kv in query.split('&') {
            let (k, v) = kv.split_once('=').unwrap();
            if k == "exp" {
                exp = v.into()
            } else {
                sig = v.into()
            }
        }
        (id, exp, sig)
    }

    #[test]
    fn a_fresh_link_verifies() {
        let s = signer();
        let link = s.link("evt/1 x", 1000);
        assert!(link.starts_with("https://api.example/v1/events/evt%2F1%20x?exp=1060&sig="));
        let (id, exp, sig) = parts(&link);
        assert_eq!(s.verify(&id, Some(&exp), Some(&sig), 1059), Ok(()));
    }

    #[test]
    fn expired_and_tampered_links_fail() {
        let s = signer();
        let (id, exp, sig) = parts(&s.link("evt-1", 1000));
        assert_eq!(
            s.verify(&id, Some(&exp), Some(&sig), 1061),
            Err(LinkError::Expired)
        );
        assert_eq!(
            s.verify("evt-2", Some(&exp), Some(&sig), 1000),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            s.verify(&id, Some("99999"), Some(&sig), 1000),
            Err(LinkError::BadSignature)
        );
        let mut bad = sig.clone();
        bad.replace_range(0..1, if &sig[0..1] == "a" { "b" } else { "a" });
        assert_eq!(
            s.verify(&id, Some(&exp), Some(&bad), 1000),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            s.verify(&id, Some(&exp), None, 1000),
            Err(LinkError::Incomplete)
        );
        let other = LinkSigner::new(
            SecretString::from("another-key-of-16-chars".to_owned()),
            "https://api.example",
            Duration::from_secs(60),
        );
        assert_eq!(
            other.verify(&id, Some(&exp), Some(&sig), 1000),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn keys_must_be_long_enough() {
        assert!(parse_key(r#"{"key":"short"}"#).is_none());
        assert!(parse_key(r#"{"key":"0123456789abcdef"}"#).is_some());
    }
}
