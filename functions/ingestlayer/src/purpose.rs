//! One key per purpose. Every signed artifact (an event link, an admin session, a form's
//! CSRF token, an OAuth state) is signed with its own key, derived from the stack's signing
//! secret with HKDF-SHA256 and a distinct `info` label, and what is signed is an unambiguous,
//! length-delimited encoding that starts with the purpose's label. An artifact made for one
//! purpose therefore never verifies as another, whatever values an attacker chooses (an event
//! id of `session`, a nonce containing the separator, …).

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;

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
            Ok(sig) => self.mac(fields).verify_slice(&sig).is_ok(),
            Err(_) => false,
        }
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
