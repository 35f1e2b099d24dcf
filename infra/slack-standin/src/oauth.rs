//! Slack's OAuth v2 as an app sees it: the install grant (`/oauth/v2/authorize` → one-time code
//! → `oauth.v2.access`), token rotation (expiring access tokens, single-use refresh tokens),
//! revocation and expiry. No HTTP here: `api` translates and `consent` draws the pages.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use tokio::time::Instant;
use url::Url;

use crate::rejection::Rejection;

/// How long an authorization code can be exchanged (Slack: 10 minutes).
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// How long a rotating access token works (Slack: 12 hours), as `expires_in` reports it.
pub(crate) const ROTATING_TOKEN_LIFETIME_SECS: u64 = 12 * 60 * 60;

/// The user who clicks Allow on the consent page.
pub(crate) const INSTALLER_ID: &str = "U0INSTALLER";

/// The app's name on the consent page.
pub(crate) const APP_NAME: &str = "ingestlayer";

/// Why `/oauth/v2/authorize` shows an error page instead of the consent page. Slack shows
/// these on its own page and never redirects, so a bad request cannot bounce a user anywhere.
/// An answer to the client, not a failure of the stand-in (see [`crate::error`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizeError {
    /// `client_id` is missing or names no registered app.
    InvalidClientId,
    /// `redirect_uri` is missing, not an absolute `http(s)` URL, or carries a fragment.
    BadRedirectUri,
    /// No scope was asked for, or a scope is not a scope name.
    InvalidScope,
    /// The consent form came back without a decision the stand-in knows.
    InvalidDecision,
}

impl AuthorizeError {
    /// Slack's error code, shown on the page.
    pub fn code(self) -> &'static str {
        match self {
            AuthorizeError::InvalidClientId => "invalid_client_id",
            AuthorizeError::BadRedirectUri => "bad_redirect_uri",
            AuthorizeError::InvalidScope => "invalid_scope",
            AuthorizeError::InvalidDecision => "invalid_arguments",
        }
    }

    /// A sentence for the page.
    pub fn explanation(self) -> &'static str {
        match self {
            AuthorizeError::InvalidClientId => "No app is registered with this client_id.",
            AuthorizeError::BadRedirectUri => {
                "redirect_uri must be an absolute http or https URL without a fragment \
                 (the stand-in has no app settings to fall back to)."
            }
            AuthorizeError::InvalidScope => {
                "Ask for at least one scope in scope or user_scope, as comma-separated scope \
                 names such as chat:write."
            }
            AuthorizeError::InvalidDecision => "The form was sent without Allow or Cancel.",
        }
    }
}

/// A redirect URI as given (the exact string `oauth.v2.access` must repeat) and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedirectUri {
    raw: String,
    url: Url,
}

impl RedirectUri {
    /// `None` unless the value is an absolute `http`/`https` URL with a host and no fragment.
    pub(crate) fn parse(raw: &str) -> Option<RedirectUri> {
        let url = Url::parse(raw).ok()?;
        let usable = matches!(url.scheme(), "http" | "https")
            && url.host().is_some()
            && url.fragment().is_none();
        usable.then(|| RedirectUri {
            raw: raw.to_owned(),
            url,
        })
    }

    /// The URI exactly as the app sent it.
    pub(crate) fn as_str(&self) -> &str {
        &self.raw
    }

    /// The URI with the given pairs appended to its query, form-encoded.
    pub(crate) fn with_query(&self, pairs: &[(&str, &str)]) -> String {
        let mut url = self.url.clone();
        {
            let mut query = url.query_pairs_mut();
            for (key, value) in pairs {
                query.append_pair(key, value);
            }
        }
        url.into()
    }
}

/// `/oauth/v2/authorize` arguments, parsed once: who asks, for what, and where the answer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthorizeRequest {
    pub(crate) client_id: String,
    /// Bot scopes (`scope`), in the order asked, without duplicates.
    pub(crate) bot_scopes: Vec<String>,
    /// User scopes (`user_scope`), in the order asked, without duplicates.
    pub(crate) user_scopes: Vec<String>,
    pub(crate) redirect_uri: RedirectUri,
    /// Passed back untouched; `None` when the app sent none.
    pub(crate) state: Option<String>,
}

impl AuthorizeRequest {
    /// Parses query-string (or consent-form) pairs, checking in Slack's order: the app, then
    /// where to send the user, then what is asked for. The first occurrence of a key counts.
    pub(crate) fn parse(
        pairs: &[(String, String)],
        clients: &[(String, String)],
    ) -> Result<AuthorizeRequest, AuthorizeError> {
        let client_id = first(pairs, "client_id")
            .filter(|id| clients.iter().any(|(known, _)| known == id))
            .ok_or(AuthorizeError::InvalidClientId)?;
        let redirect_uri = first(pairs, "redirect_uri")
            .and_then(RedirectUri::parse)
            .ok_or(AuthorizeError::BadRedirectUri)?;
        let bot_scopes = parse_scopes(first(pairs, "scope").unwrap_or(""))?;
        let user_scopes = parse_scopes(first(pairs, "user_scope").unwrap_or(""))?;
        if bot_scopes.is_empty() && user_scopes.is_empty() {
            return Err(AuthorizeError::InvalidScope);
        }
        Ok(AuthorizeRequest {
            client_id: client_id.to_owned(),
            bot_scopes,
            user_scopes,
            redirect_uri,
            state: first(pairs, "state").map(str::to_owned),
        })
    }

    /// Where Cancel sends the user: `redirect_uri?error=access_denied&state=…`.
    pub(crate) fn denied_redirect(&self) -> String {
        let mut pairs = vec![("error", "access_denied")];
        if let Some(state) = &self.state {
            pairs.push(("state", state));
        }
        self.redirect_uri.with_query(&pairs)
    }

    /// Where Allow sends the user with `code`: `redirect_uri?code=…&state=…`.
    pub(crate) fn approved_redirect(&self, code: &str) -> String {
        let mut pairs = vec![("code", code)];
        if let Some(state) = &self.state {
            pairs.push(("state", state));
        }
        self.redirect_uri.with_query(&pairs)
    }
}

/// The value of the first pair named `key`.
pub(crate) fn first<'p>(pairs: &'p [(String, String)], key: &str) -> Option<&'p str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Comma- (or space-) separated scope names such as `chat:write,users:read.email`.
fn parse_scopes(raw: &str) -> Result<Vec<String>, AuthorizeError> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in raw.split(|c: char| c == ',' || c.is_whitespace()) {
        if scope.is_empty() {
            continue;
        }
        let valid = scope.len() <= 100
            && scope.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b':' | b'.' | b'_' | b'-')
            });
        if !valid {
            return Err(AuthorizeError::InvalidScope);
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    Ok(scopes)
}

/// Bot (`xoxb-`) or user (`xoxp-`) token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Bot,
    User,
}

impl TokenKind {
    /// `token_type` in Slack's answers.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TokenKind::Bot => "bot",
            TokenKind::User => "user",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Bot => "xoxb",
            TokenKind::User => "xoxp",
        }
    }
}

/// What a token was granted: to which app, which kind, which scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    client_id: String,
    kind: TokenKind,
    scopes: Vec<String>,
}

/// A token just handed out by `oauth.v2.access`. No `Debug`: it holds tokens.
pub(crate) struct Issued {
    pub(crate) kind: TokenKind,
    pub(crate) scopes: Vec<String>,
    pub(crate) access_token: String,
    /// With token rotation: the single-use refresh token and the access token's lifetime.
    pub(crate) rotation: Option<Rotation>,
}

/// The rotation half of an [`Issued`] token.
pub(crate) struct Rotation {
    pub(crate) refresh_token: String,
    pub(crate) expires_in: u64,
}

/// What one approved install hands out: a bot token for bot scopes, a user token for user
/// scopes (each only when asked for).
pub(crate) struct Installation {
    pub(crate) bot: Option<Issued>,
    pub(crate) user: Option<Issued>,
}

/// How a token stands when a Web API call presents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenStatus {
    /// Revoked (`auth.revoke` or [`crate::Standin::revoke_token`]): `token_revoked`.
    Revoked,
    /// Past its lifetime, replaced by a refresh, or expired by a test: `token_expired`.
    Expired,
    /// Issued by `oauth.v2.access` and still good.
    Issued,
    /// Not issued here; the configured `accepted_tokens` rule decides.
    Unknown,
}

struct Code {
    client_id: String,
    redirect_uri: String,
    bot_scopes: Vec<String>,
    user_scopes: Vec<String>,
    expires_at: Instant,
}

struct Access {
    kind: TokenKind,
    expires_at: Option<Instant>,
}

struct Refresh {
    grant: Grant,
    /// The access token issued with this refresh token; using the refresh token ends it.
    access_token: String,
}

/// Codes, issued tokens and their fate. No `Debug`: it holds tokens.
#[derive(Default)]
pub(crate) struct Registry {
    codes: HashMap<String, Code>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
    revoked: HashSet<String>,
    expired: HashSet<String>,
    refreshes: usize,
}

impl Registry {
    /// A one-time code for an approved request, good for [`CODE_LIFETIME`].
    pub(crate) fn issue_code(&mut self, request: &AuthorizeRequest, now: Instant) -> String {
        self.codes.retain(|_, code| now < code.expires_at);
        let code = format!(
            "{}.{}.{}",
            rand::random_range(1_000_000_000u64..10_000_000_000),
            rand::random_range(1_000_000_000u64..10_000_000_000),
            random_alphanumeric(48).to_ascii_lowercase()
        );
        self.codes.insert(
            code.clone(),
            Code {
                client_id: request.client_id.clone(),
                redirect_uri: request.redirect_uri.as_str().to_owned(),
                bot_scopes: request.bot_scopes.clone(),
                user_scopes: request.user_scopes.clone(),
                expires_at: now + CODE_LIFETIME,
            },
        );
        code
    }

    /// `grant_type=authorization_code`: a code works once, for the app it was issued to,
    /// within its lifetime, and only with the `redirect_uri` given at authorize, repeated
    /// exactly. A failed exchange leaves the code usable.
    pub(crate) fn exchange_code(
        &mut self,
        client_id: &str,
        code: &str,
        redirect_uri: Option<&str>,
        rotation: bool,
        now: Instant,
    ) -> Result<Installation, Rejection> {
        self.codes.retain(|_, code| now < code.expires_at);
        let found = self.codes.get(code).ok_or(Rejection::InvalidCode)?;
        if found.client_id != client_id {
            return Err(Rejection::InvalidCode);
        }
        if redirect_uri != Some(found.redirect_uri.as_str()) {
            return Err(Rejection::BadRedirectUri);
        }
        let found = self.codes.remove(code).ok_or(Rejection::InvalidCode)?;
        let mut issue = |kind, scopes: Vec<String>| {
            (!scopes.is_empty()).then(|| {
                let grant = Grant {
                    client_id: client_id.to_owned(),
                    kind,
                    scopes,
                };
                self.issue(grant, rotation, now)
            })
        };
        let bot = issue(TokenKind::Bot, found.bot_scopes);
        let user = issue(TokenKind::User, found.user_scopes);
        Ok(Installation { bot, user })
    }

    /// `grant_type=refresh_token`: a refresh token works once, for the app it was issued to.
    /// The access token issued with it stops working at once (`token_expired`); a new access
    /// token and a new refresh token take their place.
    pub(crate) fn refresh(
        &mut self,
        client_id: &str,
        refresh_token: &str,
        now: Instant,
    ) -> Result<Issued, Rejection> {
        let found = self
            .refresh
            .get(refresh_token)
            .ok_or(Rejection::InvalidRefreshToken)?;
        if found.grant.client_id != client_id {
            return Err(Rejection::InvalidRefreshToken);
        }
        let found = self
            .refresh
            .remove(refresh_token)
            .ok_or(Rejection::InvalidRefreshToken)?;
        self.access.remove(&found.access_token);
        self.expired.insert(found.access_token);
        self.refreshes += 1;
        Ok(self.issue(found.grant, true, now))
    }

    fn issue(&mut self, grant: Grant, rotation: bool, now: Instant) -> Issued {
        let access_token = if rotation {
            format!("xoxe.{}-1-{}", grant.kind.prefix(), random_alphanumeric(40))
        } else {
            format!(
                "{}-{}-{}-{}",
                grant.kind.prefix(),
                rand::random_range(1_000_000_000u64..10_000_000_000),
                rand::random_range(1_000_000_000u64..10_000_000_000),
                random_alphanumeric(24)
            )
        };
        let lifetime = Duration::from_secs(ROTATING_TOKEN_LIFETIME_SECS);
        let rotation = rotation.then(|| {
            let refresh_token = format!("xoxe-1-{}", random_alphanumeric(48));
            self.refresh.insert(
                refresh_token.clone(),
                Refresh {
                    grant: grant.clone(),
                    access_token: access_token.clone(),
                },
            );
            Rotation {
                refresh_token,
                expires_in: ROTATING_TOKEN_LIFETIME_SECS,
            }
        });
        self.access.insert(
            access_token.clone(),
            Access {
                kind: grant.kind,
                expires_at: rotation.as_ref().map(|_| now + lifetime),
            },
        );
        Issued {
            kind: grant.kind,
            scopes: grant.scopes,
            access_token,
            rotation,
        }
    }

    /// How `token` stands at `now`. Revocation wins over expiry.
    pub(crate) fn status(&self, token: &str, now: Instant) -> TokenStatus {
        if self.revoked.contains(token) {
            return TokenStatus::Revoked;
        }
        if self.expired.contains(token) {
            return TokenStatus::Expired;
        }
        match self.access.get(token) {
            Some(access) if access.expires_at.is_some_and(|at| now >= at) => TokenStatus::Expired,
            Some(_) => TokenStatus::Issued,
            None => TokenStatus::Unknown,
        }
    }

    /// Whether an issued token is a bot or a user token; `None` for tokens not issued here.
    pub(crate) fn issued_kind(&self, token: &str) -> Option<TokenKind> {
        self.access.get(token).map(|access| access.kind)
    }

    /// The token (any token, issued here or not) stops working with `token_revoked`. Revoking
    /// an access token also ends the refresh token issued with it; revoking a refresh token
    /// ends that refresh token.
    pub(crate) fn revoke(&mut self, token: &str) {
        self.refresh
            .retain(|refresh, r| refresh != token && r.access_token != token);
        self.revoked.insert(token.to_owned());
    }

    /// The token (any token, issued here or not) stops working with `token_expired`. A
    /// rotating token's refresh token keeps working, as after a real expiry.
    pub(crate) fn expire(&mut self, token: &str) {
        self.expired.insert(token.to_owned());
    }

    /// Successful `grant_type=refresh_token` exchanges so far.
    pub(crate) fn refresh_count(&self) -> usize {
        self.refreshes
    }
}

fn random_alphanumeric(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test may panic
mod tests {
    use super::*;

    fn clients() -> Vec<(String, String)> {
        vec![("cid".to_owned(), "secret".to_owned())]
    }

    fn pairs(query: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn request(query: &str) -> Result<AuthorizeRequest, AuthorizeError> {
        AuthorizeRequest::parse(&pairs(query), &clients())
    }

    const GOOD: &str = "client_id=cid&scope=chat:write,channels:read&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=s1";

    #[test]
    fn authorize_requests_are_checked_app_first_then_redirect_then_scopes() {
        assert_eq!(
            request("client_id=nope&scope=x"),
            Err(AuthorizeError::InvalidClientId)
        );
        assert_eq!(
            request("scope=chat:write&redirect_uri=https://a.example/"),
            Err(AuthorizeError::InvalidClientId)
        );
        assert_eq!(
            request("client_id=cid&scope=chat:write"),
            Err(AuthorizeError::BadRedirectUri)
        );
        for bad in [
            "javascript:alert(1)",
            "/relative",
            "https://a.example/cb#frag",
            "ftp://a.example/",
        ] {
            let query = format!(
                "client_id=cid&scope=chat:write&redirect_uri={}",
                form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>()
            );
            assert_eq!(
                request(&query),
                Err(AuthorizeError::BadRedirectUri),
                "{bad}"
            );
        }
        assert_eq!(
            request("client_id=cid&redirect_uri=https://a.example/"),
            Err(AuthorizeError::InvalidScope)
        );
        assert_eq!(
            request("client_id=cid&scope=<b>&redirect_uri=https://a.example/"),
            Err(AuthorizeError::InvalidScope)
        );
    }

    #[test]
    fn scopes_split_on_commas_and_spaces_without_duplicates() {
        let parsed =
            request("client_id=cid&scope=chat:write, users:read.email,chat:write&user_scope=identity.basic&redirect_uri=https://a.example/")
                .unwrap();
        assert_eq!(parsed.bot_scopes, ["chat:write", "users:read.email"]);
        assert_eq!(parsed.user_scopes, ["identity.basic"]);
        assert_eq!(parsed.state, None);
    }

    #[test]
    fn redirects_keep_the_apps_own_query_and_encode_the_state() {
        let parsed = request(
            "client_id=cid&scope=chat:write&redirect_uri=https%3A%2F%2Fa.example%2Fcb%3Fx%3D1&state=a%26b%3Dc",
        )
        .unwrap();
        assert_eq!(
            parsed.approved_redirect("123.456.abc"),
            "https://a.example/cb?x=1&code=123.456.abc&state=a%26b%3Dc"
        );
        assert_eq!(
            parsed.denied_redirect(),
            "https://a.example/cb?x=1&error=access_denied&state=a%26b%3Dc"
        );
    }

    #[test]
    fn a_code_works_once_for_its_app_and_redirect_uri() {
        let parsed = request(GOOD).unwrap();
        let mut registry = Registry::default();
        let now = Instant::now();
        let code = registry.issue_code(&parsed, now);
        let uri = Some("https://app.example/cb");

        assert!(matches!(
            registry.exchange_code("other", &code, uri, false, now),
            Err(Rejection::InvalidCode)
        ));
        assert!(matches!(
            registry.exchange_code("cid", &code, None, false, now),
            Err(Rejection::BadRedirectUri)
        ));
        assert!(matches!(
            registry.exchange_code("cid", &code, Some("https://app.example/cb/"), false, now),
            Err(Rejection::BadRedirectUri)
        ));
        let installed = registry
            .exchange_code("cid", &code, uri, false, now)
            .unwrap();
        let bot = installed.bot.unwrap();
        assert!(bot.access_token.starts_with("xoxb-"));
        assert!(bot.rotation.is_none());
        assert!(installed.user.is_none());
        assert_eq!(registry.status(&bot.access_token, now), TokenStatus::Issued);
        assert!(matches!(
            registry.exchange_code("cid", &code, uri, false, now),
            Err(Rejection::InvalidCode)
        ));
    }

    #[test]
    fn a_code_expires_after_ten_minutes() {
        let parsed = request(GOOD).unwrap();
        let mut registry = Registry::default();
        let now = Instant::now();
        let code = registry.issue_code(&parsed, now);
        let late = now + CODE_LIFETIME;
        assert!(matches!(
            registry.exchange_code("cid", &code, Some("https://app.example/cb"), false, late),
            Err(Rejection::InvalidCode)
        ));
    }

    #[test]
    fn rotating_tokens_expire_after_twelve_hours_and_refresh_once() {
        let parsed = request(GOOD).unwrap();
        let mut registry = Registry::default();
        let now = Instant::now();
        let code = registry.issue_code(&parsed, now);
        let bot = registry
            .exchange_code("cid", &code, Some("https://app.example/cb"), true, now)
            .unwrap()
            .bot
            .unwrap();
        assert!(bot.access_token.starts_with("xoxe.xoxb-1-"));
        let rotation = bot.rotation.unwrap();
        assert!(rotation.refresh_token.starts_with("xoxe-1-"));
        assert_eq!(rotation.expires_in, 43_200);

        let twelve_hours = Duration::from_secs(43_200);
        assert_eq!(
            registry.status(
                &bot.access_token,
                now + twelve_hours - Duration::from_secs(1)
            ),
            TokenStatus::Issued
        );
        assert_eq!(
            registry.status(&bot.access_token, now + twelve_hours),
            TokenStatus::Expired
        );

        assert!(matches!(
            registry.refresh("other", &rotation.refresh_token, now),
            Err(Rejection::InvalidRefreshToken)
        ));
        let renewed = registry
            .refresh("cid", &rotation.refresh_token, now)
            .unwrap();
        assert_eq!(renewed.scopes, ["chat:write", "channels:read"]);
        assert_eq!(
            registry.status(&bot.access_token, now),
            TokenStatus::Expired
        );
        assert_eq!(
            registry.status(&renewed.access_token, now),
            TokenStatus::Issued
        );
        assert!(matches!(
            registry.refresh("cid", &rotation.refresh_token, now),
            Err(Rejection::InvalidRefreshToken)
        ));
        assert_eq!(registry.refresh_count(), 1);
    }

    #[test]
    fn revoking_an_access_token_ends_its_refresh_token() {
        let parsed = request(GOOD).unwrap();
        let mut registry = Registry::default();
        let now = Instant::now();
        let code = registry.issue_code(&parsed, now);
        let bot = registry
            .exchange_code("cid", &code, Some("https://app.example/cb"), true, now)
            .unwrap()
            .bot
            .unwrap();
        registry.revoke(&bot.access_token);
        assert_eq!(
            registry.status(&bot.access_token, now),
            TokenStatus::Revoked
        );
        let refresh_token = bot.rotation.unwrap().refresh_token;
        assert!(matches!(
            registry.refresh("cid", &refresh_token, now),
            Err(Rejection::InvalidRefreshToken)
        ));
    }

    #[test]
    fn tokens_not_issued_here_can_be_expired_and_revoked() {
        let mut registry = Registry::default();
        let now = Instant::now();
        assert_eq!(registry.status("xoxb-static", now), TokenStatus::Unknown);
        registry.expire("xoxb-static");
        assert_eq!(registry.status("xoxb-static", now), TokenStatus::Expired);
        registry.revoke("xoxb-static");
        assert_eq!(registry.status("xoxb-static", now), TokenStatus::Revoked);
    }

    #[test]
    fn user_scopes_get_a_user_token() {
        let parsed =
            request("client_id=cid&user_scope=identity.basic&redirect_uri=https://a.example/")
                .unwrap();
        let mut registry = Registry::default();
        let now = Instant::now();
        let code = registry.issue_code(&parsed, now);
        let installed = registry
            .exchange_code("cid", &code, Some("https://a.example/"), false, now)
            .unwrap();
        assert!(installed.bot.is_none());
        let user = installed.user.unwrap();
        assert_eq!(user.kind, TokenKind::User);
        assert!(user.access_token.starts_with("xoxp-"));
    }
}
