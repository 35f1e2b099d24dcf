//! One key per purpose. Every signed artifact (an event link, an admin session, a form's
//! CSRF token, an OAuth state) is signed with its own key, derived from the stack's signing
//! secret with HKDF-SHA256 and a distinct `info` label, and what is signed is an unambiguous,
//! length-delimited encoding that starts with the purpose's label. An artifact made for one
//! purpose therefore never verifies as another, whatever values an attacker chooses (an event
//! id of `session`, a nonce containing the separator, …).
//!
//! [`TokenKey`] is the one signed-token type built on those keys: a subject signed with its
//! expiry (`<subject>.<exp>.<sig>`, or the parts apart as in an event link's query), checked
//! for signature, expiry and a lifetime no longer than the issuer gives; or, for what lives
//! as long as something else (a CSRF token, bound to its session), a tag without expiry.
//! Every comparison is constant time (`subtle`).

use hkdf::Hkdf;
use hmac::KeyInit;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// What an artifact is for. Each has its own derived key and its own label in what is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// `GET /v1/events/{id}?exp=…&sig=…`, the link in a truncated Slack message.
    EventLink,
    /// The destinations page's `il_session` cookie.
    AdminSession,
    /// The token every destinations form carries, bound to its session.
    Csrf,
    /// The OAuth `state` of an "Add to Slack" install.
    OAuthState,
    /// Comparing a presented admin token with the configured one in constant time, and
    /// fingerprinting it so sessions end when it is rotated. Never handed out.
    AdminToken,
}

impl Purpose {
    /// Every purpose, for tests that check each pair.
    pub const ALL: [Purpose; 5] = [
        Purpose::EventLink,
        Purpose::AdminSession,
        Purpose::Csrf,
        Purpose::OAuthState,
        Purpose::AdminToken,
    ];

    /// The HKDF `info` and the first field of every signed message.
    pub fn label(self) -> &'static str {
        match self {
            Purpose::EventLink => "ingestlayer/v1/event-link",
            Purpose::AdminSession => "ingestlayer/v1/admin-session",
            Purpose::Csrf => "ingestlayer/v1/csrf",
            Purpose::OAuthState => "ingestlayer/v1/oauth-state",
            Purpose::AdminToken => "ingestlayer/v1/admin-token",
        }
    }
}

/// A key derived for one purpose. Its Debug output never shows the key.
pub struct PurposeKey {
    purpose: Purpose,
    key: SecretBox<[u8; 32]>,
}

impl std::fmt::Debug for PurposeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PurposeKey")
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

impl Clone for PurposeKey {
    fn clone(&self) -> Self {
        Self {
            purpose: self.purpose,
            key: SecretBox::new(Box::new(*self.key.expose_secret())),
        }
    }
}

impl PurposeKey {
    /// Derives the key for `purpose` from the stack's signing secret.
    pub fn derive(root: &SecretString, purpose: Purpose) -> Self {
        let hk = Hkdf::<Sha256>::new(None, root.expose_secret().as_bytes());
        let mut okm = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 255 × 32.
        #[allow(clippy::expect_used)]
        hk.expand(purpose.label().as_bytes(), &mut okm)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self {
            purpose,
            key: SecretBox::new(Box::new(okm)),
        }
    }

    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    fn mac(&self, fields: &[&[u8]]) -> HmacSha256 {
        // HMAC takes keys of any length.
        #[allow(clippy::expect_used)]
        let mut m = HmacSha256::new_from_slice(self.key.expose_secret())
            .expect("HMAC accepts any key length");
        let label = self.purpose.label().as_bytes();
        for field in std::iter::once(label).chain(fields.iter().copied()) {
            m.update(&(field.len() as u64).to_be_bytes());
            m.update(field);
        }
        m
    }

    /// The signature of `fields` (hex).
    pub fn sign(&self, fields: &[&[u8]]) -> String {
        hex::encode(self.mac(fields).finalize().into_bytes())
    }

    /// Whether `sig_hex` is the signature of `fields`; the comparison is constant time.
    pub fn verify(&self, fields: &[&[u8]], sig_hex: &str) -> bool {
        match hex::decode(sig_hex) {
            Ok(sig) => {
                let expected = self.mac(fields).finalize().into_bytes();
                bool::from(expected.as_slice().ct_eq(&sig))
            }
            Err(_) => false,
        }
    }
}

/// Why a signed token was refused. A refusal returned by the pure checks below, which
/// each purpose maps to its own answer ([`crate::event_links::LinkError`],
/// [`crate::slack::oauth::StateError`], a sign-in page); not one of the library's failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not `<subject>.<exp>.<sig>`, or its expiry or signature are not numbers.
    #[error("the token is malformed")]
    Malformed,
    /// Not signed with this purpose's key, or altered since; also a token claiming to live
    /// longer than its issuer ever grants.
    #[error("the token's signature does not match")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

/// Signs and checks tokens of one [`Purpose`]: a subject and an expiry (unix seconds), so a
/// token of one purpose never verifies as another and never outlives its expiry. A token is
/// valid strictly before its expiry.
#[derive(Clone, Debug)]
pub struct TokenKey {
    key: PurposeKey,
    /// The longest lifetime this purpose grants; a token whose expiry is further away was
    /// not issued here.
    max_ttl: Option<i64>,
}

impl TokenKey {
    /// The key for `purpose`, derived from the stack's signing secret `root`. `max_ttl`:
    /// the longest lifetime the issuer grants (`None`: no limit).
    pub fn new(
        root: &SecretString,
        purpose: Purpose,
        max_ttl: Option<std::time::Duration>,
    ) -> Self {
        Self {
            key: PurposeKey::derive(root, purpose),
            max_ttl: max_ttl.map(|d| d.as_secs() as i64),
        }
    }

    pub fn purpose(&self) -> Purpose {
        self.key.purpose()
    }

    /// The signature of `subject` valid until `exp` (hex).
    pub fn signature(&self, subject: &str, exp: i64) -> String {
        self.key
            .sign(&[subject.as_bytes(), exp.to_string().as_bytes()])
    }

    /// A token `<subject>.<exp>.<sig>`; `subject` must not contain `.`.
    pub fn issue(&self, subject: &str, exp: i64) -> String {
        format!("{subject}.{exp}.{}", self.signature(subject, exp))
    }

    /// Checks a token's parts at `now_unix`: signature, then expiry, then lifetime.
    pub fn check_parts(
        &self,
        subject: &str,
        exp: &str,
        sig: &str,
        now_unix: i64,
    ) -> Result<(), TokenError> {
        let exp: i64 = exp.parse().map_err(|_| TokenError::Malformed)?;
        if hex::decode(sig).map(|s| s.len()) != Ok(32) {
            return Err(TokenError::Malformed);
        }
        if !self
            .key
            .verify(&[subject.as_bytes(), exp.to_string().as_bytes()], sig)
        {
            return Err(TokenError::BadSignature);
        }
        if exp <= now_unix {
            return Err(TokenError::Expired);
        }
        if self.max_ttl.is_some_and(|max| exp > now_unix + max) {
            return Err(TokenError::BadSignature);
        }
        Ok(())
    }

    /// Checks a token `<subject>.<exp>.<sig>` at `now_unix`; its subject when it holds.
    pub fn check<'t>(&self, token: &'t str, now_unix: i64) -> Result<&'t str, TokenError> {
        let mut parts = token.split('.');
        let (Some(subject), Some(exp), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        self.check_parts(subject, exp, sig, now_unix)?;
        Ok(subject)
    }

    /// A tag of `subject` without expiry, for what lives as long as what it is bound to
    /// (a CSRF token and its session).
    pub fn tag(&self, subject: &str) -> String {
        self.key.sign(&[subject.as_bytes()])
    }

    /// Whether `given` is the tag of `subject` (constant time).
    pub fn tag_ok(&self, subject: &str, given: &str) -> bool {
        self.key.verify(&[subject.as_bytes()], given)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> SecretString {
        SecretString::from("the-stack-signing-secret-0123".to_owned())
    }

    #[test]
    fn an_artifact_of_one_purpose_never_verifies_as_another() {
        let fields: [&[u8]; 2] = [b"session", b"1999999999"];
        for a in Purpose::ALL {
            let sig = PurposeKey::derive(&root(), a).sign(&fields);
            for b in Purpose::ALL {
                assert_eq!(
                    PurposeKey::derive(&root(), b).verify(&fields, &sig),
                    a == b,
                    "{a:?} signed, checked as {b:?}"
                );
            }
        }
    }

    #[test]
    fn the_encoding_is_unambiguous() {
        let k = PurposeKey::derive(&root(), Purpose::EventLink);
        let sig = k.sign(&[b"a\nb", b"c"]);
        assert!(k.verify(&[b"a\nb", b"c"], &sig));
        assert!(!k.verify(&[b"a", b"b\nc"], &sig));
        assert!(!k.verify(&[b"a\nbc"], &sig));
        assert!(!k.verify(&[b"a\nb", b"c", b""], &sig));
    }

    #[test]
    fn a_token_of_one_purpose_never_checks_as_another() {
        for a in Purpose::ALL {
            let token = TokenKey::new(&root(), a, None).issue("subject", 2000);
            for b in Purpose::ALL {
                assert_eq!(
                    TokenKey::new(&root(), b, None).check(&token, 1000).is_ok(),
                    a == b,
                    "{a:?} issued, checked as {b:?}"
                );
            }
        }
    }

    #[test]
    fn a_token_holds_strictly_before_its_expiry_and_within_its_lifetime() {
        let k = TokenKey::new(
            &root(),
            Purpose::OAuthState,
            Some(std::time::Duration::from_secs(600)),
        );
        let t = k.issue("nonce", 1600);
        assert_eq!(k.check(&t, 1000), Ok("nonce"));
        assert_eq!(k.check(&t, 1599), Ok("nonce"));
        assert_eq!(k.check(&t, 1600), Err(TokenError::Expired));
        assert_eq!(k.check(&t, 999), Err(TokenError::BadSignature), "too long");
        let bumped = t.replacen("1600", "1601", 1);
        assert_eq!(k.check(&bumped, 1000), Err(TokenError::BadSignature));
        assert_eq!(k.check("a.b.c", 1000), Err(TokenError::Malformed));
        assert_eq!(k.check("a.1.c.d", 1000), Err(TokenError::Malformed));
        assert_eq!(k.check("", 1000), Err(TokenError::Malformed));
    }

    #[test]
    fn a_tag_is_bound_to_its_subject_and_purpose() {
        let csrf = TokenKey::new(&root(), Purpose::Csrf, None);
        let t = csrf.tag("one");
        assert!(csrf.tag_ok("one", &t));
        assert!(!csrf.tag_ok("two", &t));
        assert!(!TokenKey::new(&root(), Purpose::AdminSession, None).tag_ok("one", &t));
        assert!(!csrf.tag_ok("one", ""));
    }

    #[test]
    fn another_root_or_a_malformed_signature_fails() {
        let k = PurposeKey::derive(&root(), Purpose::Csrf);
        let sig = k.sign(&[b"x"]);
        let other = PurposeKey::derive(
            &SecretString::from("another-stack-secret-456".to_owned()),
            Purpose::Csrf,
        );
        assert!(!other.verify(&[b"x"], &sig));
        assert!(!k.verify(&[b"x"], "not hex"));
        assert!(!k.verify(&[b"x"], &sig[..10]));
        assert!(!format!("{k:?}").contains(&hex::encode(k.key.expose_secret())));
    }
}
