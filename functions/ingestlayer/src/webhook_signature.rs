//! Webhook signatures as each provider makes them: the one signing code that the ingest
//! function verifies deliveries with (`ingress::webhooks::verify`) and that the outbound
//! webhook destination signs its own deliveries with (`outbound::webhook`), so both follow
//! <https://www.standardwebhooks.com> the same way. Interoperability with the reference
//! libraries is tested in `infra/webhooks`.

use base64::Engine;
use hmac::KeyInit;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The signing scheme a source's sender uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// <https://www.standardwebhooks.com> (Svix and the senders built on it).
    StandardWebhooks,
    Stripe,
    Github,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StandardWebhooks => "standard-webhooks",
            Self::Stripe => "stripe",
            Self::Github => "github",
        }
    }
}

impl std::str::FromStr for Provider {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> crate::error::Result<Self> {
        match s {
            "standard-webhooks" | "standard" => Ok(Self::StandardWebhooks),
            "stripe" => Ok(Self::Stripe),
            "github" => Ok(Self::Github),
            other => Err(crate::error::Error::reason(format!(
                "unknown provider {other:?}: use standard-webhooks, stripe or github"
            ))),
        }
    }
}

pub(crate) fn mac(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    #[allow(clippy::expect_used)]
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    for p in parts {
        m.update(p);
    }
    m
}

/// The HMAC key behind a configured secret: Standard Webhooks secrets are `whsec_<base64>`
/// of the key; Stripe's (`whsec_…`) and GitHub's are used as they are.
pub(crate) fn signing_key(provider: Provider, secret: &str) -> Result<Vec<u8>, &'static str> {
    let secret = secret.trim();
    if secret.is_empty() {
        return Err("is empty");
    }
    match provider {
        Provider::StandardWebhooks => {
            let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
            let key = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| "is not whsec_<base64>")?;
            if key.len() < 24 {
                return Err("is shorter than 24 bytes (Standard Webhooks asks for 24 to 64)");
            }
            Ok(key)
        }
        Provider::Stripe | Provider::Github => Ok(secret.as_bytes().to_vec()),
    }
}

/// Signatures as each provider's sender makes them: for tools (`ingestlayer webhooks send`)
/// and tests. Interoperability with the providers' own code is tested in `infra/webhooks`.
pub mod sign {
    use base64::Engine;
    use hmac::Mac;

    use super::{mac, signing_key, Provider};

    /// `webhook-signature` for a Standard Webhooks delivery.
    pub fn standard(
        secret: &str,
        id: &str,
        timestamp: i64,
        body: &[u8],
    ) -> crate::error::Result<String> {
        let key =
            signing_key(Provider::StandardWebhooks, secret).map_err(crate::error::Error::reason)?;
        let ts = timestamp.to_string();
        let sig = mac(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]).finalize();
        Ok(format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(sig.into_bytes())
        ))
    }

    /// `Stripe-Signature` for a Stripe delivery.
    pub fn stripe(secret: &str, timestamp: i64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let sig = mac(secret.as_bytes(), &[ts.as_bytes(), b".", body]).finalize();
        format!("t={ts},v1={}", hex::encode(sig.into_bytes()))
    }

    /// `X-Hub-Signature-256` for a GitHub delivery.
    pub fn github(secret: &str, body: &[u8]) -> String {
        let sig = mac(secret.as_bytes(), &[body]).finalize();
        format!("sha256={}", hex::encode(sig.into_bytes()))
    }
}
