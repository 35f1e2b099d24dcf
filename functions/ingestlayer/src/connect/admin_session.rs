//! Who may use the destinations page: the admin token, presented as `Authorization: Bearer`
//! or exchanged at the sign-in form for a session.
//!
//! A session is a random id with a server-side record (the connections table,
//! `session#<id>`, with a TTL) and a cookie `il_session=<id>.<exp>.<sig>`, a [`TokenKey`]
//! token of [`Purpose::AdminSession`]. CSRF tokens are [`Purpose::Csrf`] tags of the
//! session id. It is valid only while all of these hold:
//! - the signature matches and `exp` is in the future but no further than
//!   [`SESSION_SECONDS`] from now;
//! - its record exists and has not expired (DynamoDB deletes expired items lazily);
//! - its record was made with the admin token that is configured now. The token is re-read
//!   from Secrets Manager at least every [`ADMIN_TOKEN_REFRESH`], so rotating a leaked token
//!   ends every session within a minute.
//!
//! Sign-out deletes the record. Every decision takes `now_unix` from the caller.
//!
//! A request that is not the admin's is `Ok(None)`, never an error: the page answers it with
//! the sign-in form (401). An `Err` is the library's [`Error`] for a store or secret that
//! could not be read (503).

use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};
use crate::purpose::{Purpose, PurposeKey, TokenKey};

/// A session's record in the connections table: `pk` = `session#<id>`, its expiry (epoch
/// seconds, also the table's TTL) and its binding to the admin token it was signed in with.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct SessionItem {
    pk: String,
    expires_at: i64,
    admin: String,
}

/// How long a sign-in lasts.
pub const SESSION_SECONDS: i64 = 8 * 3600;
/// The admin token read from Secrets Manager is trusted this long before it is read again.
pub const ADMIN_TOKEN_REFRESH: Duration = Duration::from_secs(60);
/// The shortest admin token accepted; a shorter one leaves the page off.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// The session cookie's name.
pub const COOKIE: &str = "il_session";

/// What a request is authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    /// `Authorization: Bearer <admin token>`.
    Bearer,
    /// A signed-in browser session.
    Session { id: String },
}

impl Admin {
    /// What CSRF tokens are bound to.
    fn csrf_subject(&self) -> &str {
        match self {
            Admin::Bearer => "bearer",
            Admin::Session { id } => id,
        }
    }
}

/// Where the admin token comes from.
#[derive(Debug)]
pub enum AdminTokenSource {
    /// Fixed for the process (`INGESTLAYER_ADMIN_TOKEN` in `make dev`); `None`: page off.
    Fixed(Option<SecretString>),
    /// Secrets Manager, re-read at least every [`ADMIN_TOKEN_REFRESH`].
    Secret {
        client: aws_sdk_secretsmanager::Client,
        arn: String,
        /// When it was last read (unix seconds) and what it held.
        cached: Mutex<Option<(i64, Option<SecretString>)>>,
    },
}

impl AdminTokenSource {
    pub fn secret(client: aws_sdk_secretsmanager::Client, arn: String) -> Self {
        Self::Secret {
            client,
            arn,
            cached: Mutex::new(None),
        }
    }
}

/// A secret's text as an admin token: trimmed, and at least [`MIN_ADMIN_TOKEN_LEN`] long.
pub fn usable_token(text: &str) -> Option<SecretString> {
    let t = text.trim();
    (t.len() >= MIN_ADMIN_TOKEN_LEN).then(|| SecretString::from(t.to_owned()))
}

/// Admin authentication for the destinations page and the install link.
#[derive(Debug)]
pub struct AdminAuth {
    token: AdminTokenSource,
    session_key: TokenKey,
    csrf_key: TokenKey,
    token_key: PurposeKey,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
}

impl AdminAuth {
    /// `root` is the stack's signing secret; sessions are recorded in `table` (the
    /// connections table).
    pub fn new(
        root: &SecretString,
        token: AdminTokenSource,
        dynamo: aws_sdk_dynamodb::Client,
        table: String,
    ) -> Self {
        Self {
            token,
            session_key: TokenKey::new(
                root,
                Purpose::AdminSession,
                Some(Duration::from_secs(SESSION_SECONDS as u64)),
            ),
            csrf_key: TokenKey::new(root, Purpose::Csrf, None),
            token_key: PurposeKey::derive(root, Purpose::AdminToken),
            dynamo,
            table,
        }
    }

    /// The admin token in force at `now_unix`; `None` when none is configured (or it is too
    /// short), which turns the page off.
    pub async fn admin_token(&self, now_unix: i64) -> Result<Option<SecretString>> {
        let (client, arn, cached) = match &self.token {
            AdminTokenSource::Fixed(t) => return Ok(t.clone()),
            AdminTokenSource::Secret {
                client,
                arn,
                cached,
            } => (client, arn, cached),
        };
        if let Ok(guard) = cached.lock() {
            if let Some((at, token)) = guard.as_ref() {
                if now_unix - at < ADMIN_TOKEN_REFRESH.as_secs() as i64 && now_unix >= *at {
                    return Ok(token.clone());
                }
            }
        }
        let text = crate::aws::secrets::read_secret(client, arn, "the admin token").await?;
        let token = usable_token(&text);
        if token.is_none() {
            tracing::warn!(
                min_len = MIN_ADMIN_TOKEN_LEN,
                "the admin token secret holds no token of 16 or more characters; the destinations page is off"
            );
        }
        if let Ok(mut guard) = cached.lock() {
            *guard = Some((now_unix, token.clone()));
        }
        Ok(token)
    }

    /// Whether `given` is `admin`, compared in constant time (as MACs, so neither the
    /// length nor a common prefix shows in the timing).
    fn is_admin_token(&self, given: &str, admin: &SecretString) -> bool {
        let expected = self.token_key.sign(&[admin.expose_secret().as_bytes()]);
        self.token_key.verify(&[given.trim().as_bytes()], &expected)
    }

    /// The fingerprint that binds a session to the admin token it was made with.
    fn binding(&self, admin: &SecretString) -> String {
        self.token_key
            .sign(&[b"session-binding", admin.expose_secret().as_bytes()])
    }

    /// A request's bearer token or session cookie, checked at `now_unix`.
    pub async fn authenticate(
        &self,
        bearer: Option<&str>,
        cookie: Option<&str>,
        now_unix: i64,
    ) -> Result<Option<Admin>> {
        let Some(admin) = self.admin_token(now_unix).await? else {
            return Ok(None);
        };
        if let Some(given) = bearer {
            return Ok(self.is_admin_token(given, &admin).then_some(Admin::Bearer));
        }
        let Some(value) = cookie else {
            return Ok(None);
        };
        let Some(id) = self.session_id(value, now_unix) else {
            return Ok(None);
        };
        let record = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("session#{id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("the sessions table", e))?;
        let Some(item) = record.item else {
            return Ok(None);
        };
        // An item that is not a session record (by hand, or damaged) is no session.
        let Ok(session) = crate::aws::dynamo::from_item::<SessionItem>(item, "a session") else {
            return Ok(None);
        };
        let live = session.expires_at > now_unix;
        let bound = self.token_key.verify(
            &[b"session-binding", admin.expose_secret().as_bytes()],
            &session.admin,
        );
        Ok((live && bound).then_some(Admin::Session { id }))
    }

    /// The session id of a well-signed, unexpired cookie value `<id>.<exp>.<sig>` whose
    /// expiry is no further than [`SESSION_SECONDS`] away (the record is checked after).
    fn session_id(&self, value: &str, now_unix: i64) -> Option<String> {
        self.session_key
            .check(value, now_unix)
            .ok()
            .map(str::to_owned)
    }

    /// Signs in with `given` at `now_unix`: the cookie value of a new session, or `None`
    /// when `given` is not the admin token (or the page is off).
    pub async fn sign_in(&self, given: &str, now_unix: i64) -> Result<Option<String>> {
        let Some(admin) = self.admin_token(now_unix).await? else {
            return Ok(None);
        };
        if !self.is_admin_token(given, &admin) {
            return Ok(None);
        }
        let mut raw = [0u8; 16];
        rand::rng().fill_bytes(&mut raw);
        let id = hex::encode(raw);
        let exp = now_unix + SESSION_SECONDS;
        self.dynamo
            .put_item()
            .table_name(&self.table)
            .set_item(Some(crate::aws::dynamo::to_item(
                &SessionItem {
                    pk: format!("session#{id}"),
                    expires_at: exp,
                    admin: self.binding(&admin),
                },
                "a session",
            )?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| Error::aws("the sessions table", e))?;
        Ok(Some(self.session_key.issue(&id, exp)))
    }

    /// Ends a session: its record is deleted, so its cookie no longer works anywhere.
    pub async fn sign_out(&self, who: &Admin) -> Result<()> {
        let Admin::Session { id } = who else {
            return Ok(());
        };
        self.dynamo
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("session#{id}")))
            .send()
            .await
            .map_err(|e| Error::aws("the sessions table", e))?;
        Ok(())
    }

    /// The CSRF token the forms of `who` carry.
    pub fn csrf(&self, who: &Admin) -> String {
        self.csrf_key.tag(who.csrf_subject())
    }

    /// Whether `given` is the CSRF token of `who` (constant time).
    pub fn csrf_ok(&self, who: &Admin, given: &str) -> bool {
        self.csrf_key.tag_ok(who.csrf_subject(), given)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_record_round_trips_in_its_stored_shape() {
        let s = SessionItem {
            pk: "session#ab".into(),
            expires_at: 1_800_000_000,
            admin: "binding".into(),
        };
        let item = crate::aws::dynamo::to_item(&s, "test").unwrap();
        assert_eq!(item["expires_at"], AttributeValue::N("1800000000".into()));
        assert_eq!(item["admin"], AttributeValue::S("binding".into()));
        assert_eq!(
            crate::aws::dynamo::from_item::<SessionItem>(item, "test").unwrap(),
            s
        );
    }

    fn auth(token: &str) -> AdminAuth {
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        AdminAuth::new(
            &SecretString::from("stack-signing-secret-0123456789".to_owned()),
            AdminTokenSource::Fixed(Some(SecretString::from(token.to_owned()))),
            aws_sdk_dynamodb::Client::from_conf(conf),
            "connections".into(),
        )
    }

    fn cookie(a: &AdminAuth, id: &str, exp: i64) -> String {
        a.session_key.issue(id, exp)
    }

    #[test]
    fn a_cookie_needs_its_signature_and_an_expiry_within_the_session_lifetime() {
        let a = auth("admin-token-0123456789");
        let now = 1_000_000;
        let ok = cookie(&a, "abc", now + 60);
        assert_eq!(a.session_id(&ok, now), Some("abc".to_owned()));
        assert_eq!(a.session_id(&ok, now + 60), None, "expired");
        let far = cookie(&a, "abc", now + SESSION_SECONDS + 1);
        assert_eq!(a.session_id(&far, now), None, "beyond the lifetime");
        let at_limit = cookie(&a, "abc", now + SESSION_SECONDS);
        assert!(a.session_id(&at_limit, now).is_some());
        let swapped = ok.replacen("abc", "abd", 1);
        assert_eq!(a.session_id(&swapped, now), None, "another id");
        assert_eq!(a.session_id("abc.1.2.3", now), None);
        assert_eq!(a.session_id("", now), None);
    }

    #[test]
    fn no_other_purpose_can_sign_a_session_cookie() {
        let a = auth("admin-token-0123456789");
        let root = SecretString::from("stack-signing-secret-0123456789".to_owned());
        let now = 1_000_000;
        let exp = (now + 60).to_string();
        for p in Purpose::ALL {
            let sig = PurposeKey::derive(&root, p).sign(&[b"abc", exp.as_bytes()]);
            assert_eq!(
                a.session_id(&format!("abc.{exp}.{sig}"), now).is_some(),
                p == Purpose::AdminSession,
                "{p:?}"
            );
        }
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_session() {
        let a = auth("admin-token-0123456789");
        let one = Admin::Session { id: "one".into() };
        let two = Admin::Session { id: "two".into() };
        let t = a.csrf(&one);
        assert!(a.csrf_ok(&one, &t));
        assert!(!a.csrf_ok(&two, &t));
        assert!(!a.csrf_ok(&Admin::Bearer, &t));
        assert!(!a.csrf_ok(&one, ""));
    }

    #[test]
    fn the_admin_token_is_compared_whole() {
        let a = auth("admin-token-0123456789");
        let admin = SecretString::from("admin-token-0123456789".to_owned());
        assert!(a.is_admin_token("admin-token-0123456789", &admin));
        assert!(a.is_admin_token(" admin-token-0123456789 ", &admin));
        assert!(!a.is_admin_token("admin-token-012345678", &admin));
        assert!(!a.is_admin_token("", &admin));
    }

    #[test]
    fn short_admin_tokens_are_not_usable() {
        assert!(usable_token("short").is_none());
        assert!(usable_token("  0123456789abcdef  ").is_some());
    }
}
