//! The five destinations beyond Slack behind the one delivery abstraction,
//! [`Platform`] (Slack's implementation is [`crate::delivery::slack_platform`]): an
//! implementation per destination type over its adapter in [`crate::outbound`]. Each says
//! its pacing (its unit is [`Target::pacing_key`]), its retry schedule, whether it digests,
//! how it sends and, where the platform allows, how to find a message an ambiguous attempt
//! may have delivered.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use secrecy::SecretString;

use crate::config::DestinationsConfig;
use crate::delivery::platform::{Found, Platform};
use crate::dispatch::secrets::DestinationSecrets;
use crate::error::{Error, Result};
use crate::outbound::message::{Outbound, Target};
use crate::outbound::ssrf::Guard;
use crate::outbound::{discord, email, notion, telegram, webhook, Verdict};

/// A destination beyond Slack, as the destination-delivery loop drives it.
pub type Destination = dyn Platform<Message = Outbound, Answer = Verdict>;

/// What the five destination platforms share: their messages are the destinations queue's,
/// each target's pacing unit is [`Target::pacing_key`], and their adapters classify each
/// answer as they receive it (`discord::classify`, `telegram::classify`, …), so the answer
/// a send returns is already its [`Verdict`].
macro_rules! destination_platform {
    () => {
        type Message = Outbound;
        type Answer = Verdict;

        fn pacing_key(&self, m: &Outbound) -> String {
            m.target.pacing_key()
        }

        fn classify(&self, answer: &Verdict) -> Verdict {
            answer.clone()
        }
    };
}

/// The platforms, by destination type.
pub struct Platforms {
    /// The destinations' secrets, one cache every platform shares.
    secrets: DestinationSecrets,
    webhook: WebhookPlatform,
    discord: DiscordPlatform,
    telegram: TelegramPlatform,
    email: EmailPlatform,
    notion: NotionPlatform,
}

impl Platforms {
    pub fn load(sdk: &aws_config::SdkConfig, cfg: &DestinationsConfig) -> Result<Self> {
        let secrets =
            DestinationSecrets::new(aws_sdk_secretsmanager::Client::new(sdk), &cfg.secret_prefix);
        let http = |what: &str, e: reqwest::Error| {
            Error::invalid(format!("building the {what} client"), e)
        };
        Ok(Self {
            secrets: secrets.clone(),
            webhook: WebhookPlatform {
                sender: webhook::Sender::new(
                    Guard {
                        allow_local: cfg.webhook_allow_local,
                    },
                    cfg.timeout.min(webhook::TIMEOUT),
                )
                .map_err(|e| http("webhook", e))?,
                secrets: secrets.clone(),
                schedule: match &cfg.webhook_retry_schedule {
                    None => webhook::RETRY_SCHEDULE.to_vec(),
                    Some(text) => webhook::parse_schedule(text)
                        .map_err(|e| Error::invalid("WEBHOOK_RETRY_SCHEDULE", e))?,
                },
            },
            discord: DiscordPlatform {
                client: discord::Discord::new(&cfg.discord_api_url, cfg.timeout)
                    .map_err(|e| http("Discord", e))?,
                secrets: secrets.clone(),
            },
            telegram: TelegramPlatform {
                client: telegram::Telegram::new(&cfg.telegram_api_url, cfg.timeout)
                    .map_err(|e| http("Telegram", e))?,
                secrets: secrets.clone(),
            },
            email: EmailPlatform {
                client: email::Email::new(aws_sdk_sesv2::Client::new(sdk)),
                rate: Mutex::new(None),
            },
            notion: NotionPlatform {
                client: notion::Notion::new(&cfg.notion_api_url, cfg.timeout)
                    .map_err(|e| http("Notion", e))?,
                secrets,
                sources: Mutex::new(HashMap::new()),
            },
        })
    }

    /// Drops what this instance keeps of a paused target's secret, so the fix (a new URL
    /// or token stored with `ingestlayer secrets set`) is what the redrive sends with.
    pub fn forget(&self, target: &Target) {
        if let Some(name) = target.secret() {
            self.secrets.forget(name);
        }
    }

    pub fn get(&self, target: &Target) -> &Destination {
        match target {
            Target::Webhook { .. } => &self.webhook,
            Target::Discord { .. } => &self.discord,
            Target::Telegram { .. } => &self.telegram,
            Target::Email { .. } => &self.email,
            Target::Notion { .. } => &self.notion,
        }
    }
}

/// The one message a platform without digests sends.
fn single<'a>(messages: &'a [&'a Outbound]) -> std::result::Result<&'a Outbound, Verdict> {
    match messages {
        [m] => Ok(m),
        _ => Err(Verdict::Park {
            reason: format!(
                "{} messages given to a platform that sends one at a time",
                messages.len()
            ),
        }),
    }
}

/// A message whose target is not the platform's (routing never makes one).
fn wrong_target(m: &Outbound) -> Verdict {
    Verdict::Park {
        reason: format!("a {} message reached the wrong platform", m.target.kind()),
    }
}

// ---- webhook ----

struct WebhookPlatform {
    sender: webhook::Sender,
    secrets: DestinationSecrets,
    /// `WEBHOOK_RETRY_SCHEDULE`, svix's by default.
    schedule: Vec<u64>,
}

/// An RFC 3339 time from ms since the epoch.
fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl Platform for WebhookPlatform {
    destination_platform!();

    fn interval(&self, _m: &Outbound) -> Duration {
        // Receivers are the user's own services: no platform limit, only their answers.
        Duration::ZERO
    }

    fn schedule(&self) -> &[u64] {
        &self.schedule
    }

    fn retry_after_attempt(&self, attempt: usize) -> Option<Duration> {
        webhook::next_retry(&self.schedule, attempt)
    }

    fn send<'a>(
        &'a self,
        messages: &'a [&'a Outbound],
        _resent: bool,
        now: i64,
    ) -> BoxFuture<'a, Verdict> {
        async move {
            let m = match single(messages) {
                Ok(m) => m,
                Err(v) => return v,
            };
            let Target::Webhook { url, secret } = &m.target else {
                return wrong_target(m);
            };
            let secret = match self.secrets.get(secret).await {
                Ok(s) => s,
                Err(v) => return v,
            };
            let Ok(url) = url::Url::parse(url) else {
                return Verdict::PauseTarget {
                    reason: format!("{url:?} is not a URL"),
                    hint: "correct the destination's url in the pipeline".into(),
                };
            };
            let fields = m.data.clone().unwrap_or(serde_json::Value::Null);
            let body = webhook::body(
                &m.event_name,
                &m.event_id,
                &rfc3339(m.received_ms),
                &m.source,
                &fields,
                &m.pipeline_id,
                m.card.link.as_deref(),
            );
            let bytes = match serde_json::to_vec(&body) {
                Ok(b) => b,
                Err(e) => {
                    return Verdict::Park {
                        reason: format!("the event could not be encoded: {e}"),
                    }
                }
            };
            let endpoint = webhook::Endpoint { url, secret };
            self.sender
                .send(&endpoint, &webhook::webhook_id(&m.key()), &bytes, now)
                .await
        }
        .boxed()
    }
}

// ---- discord ----

struct DiscordPlatform {
    client: discord::Discord,
    secrets: DestinationSecrets,
}

impl Platform for DiscordPlatform {
    destination_platform!();

    fn interval(&self, _m: &Outbound) -> Duration {
        discord::MIN_INTERVAL
    }

    fn sender_key(&self) -> Option<&'static str> {
        // Discord's global limit is per sender (here: the stack's functions).
        Some("discord:global")
    }

    fn send<'a>(
        &'a self,
        messages: &'a [&'a Outbound],
        resent: bool,
        now: i64,
    ) -> BoxFuture<'a, Verdict> {
        async move {
            let m = match single(messages) {
                Ok(m) => m,
                Err(v) => return v,
            };
            let Target::Discord { secret } = &m.target else {
                return wrong_target(m);
            };
            let url = match self.secrets.get(secret).await {
                Ok(s) => s,
                Err(v) => return v,
            };
            let hook = match discord::WebhookUrl::parse(secrecy::ExposeSecret::expose_secret(&url)) {
                Ok(h) => h,
                Err(why) => {
                    return Verdict::PauseTarget {
                        reason: format!("the secret {secret} is not a Discord webhook URL: {why}"),
                        hint: format!("store the webhook's URL (Channel settings → Integrations → Webhooks → Copy Webhook URL) with `ingestlayer secrets set {secret}`"),
                    }
                }
            };
            let body = discord::render(&m.card, resent);
            self.client.send(&hook, &body, now).await
        }
        .boxed()
    }
}

// ---- notion ----

struct NotionPlatform {
    client: notion::Notion,
    secrets: DestinationSecrets,
    /// Each database's data source, as read once per instance.
    sources: Mutex<HashMap<String, notion::DataSource>>,
}

impl NotionPlatform {
    async fn source(
        &self,
        token: &SecretString,
        database: &str,
    ) -> std::result::Result<notion::DataSource, Verdict> {
        if let Some(s) = self
            .sources
            .lock()
            .ok()
            .and_then(|m| m.get(database).cloned())
        {
            return Ok(s);
        }
        let source = self.client.data_source(token, database).await?;
        if let Ok(mut m) = self.sources.lock() {
            m.insert(database.to_owned(), source.clone());
        }
        Ok(source)
    }

    /// The token and data source of a Notion message.
    async fn open(
        &self,
        m: &Outbound,
    ) -> std::result::Result<(SecretString, notion::DataSource, String), Verdict> {
        let Target::Notion {
            secret,
            database,
            id_property,
        } = &m.target
        else {
            return Err(wrong_target(m));
        };
        let token = self.secrets.get(secret).await?;
        let source = self.source(&token, database).await?;
        Ok((token, source, id_property.clone()))
    }
}

impl Platform for NotionPlatform {
    destination_platform!();

    fn interval(&self, _m: &Outbound) -> Duration {
        notion::MIN_INTERVAL
    }

    fn send<'a>(
        &'a self,
        messages: &'a [&'a Outbound],
        _resent: bool,
        now: i64,
    ) -> BoxFuture<'a, Verdict> {
        async move {
            let m = match single(messages) {
                Ok(m) => m,
                Err(v) => return v,
            };
            let (token, source, id_property) = match self.open(m).await {
                Ok(x) => x,
                Err(v) => return v,
            };
            let body =
                match notion::page_body(&source, &m.properties, &m.card, &m.event_id, &id_property)
                {
                    Ok(b) => b,
                    Err(e) => {
                        // The schema may have changed since it was read: read it again next time.
                        if let (Ok(mut cache), Target::Notion { database, .. }) =
                            (self.sources.lock(), &m.target)
                        {
                            cache.remove(database);
                        }
                        return Verdict::Park {
                            reason: e.to_string(),
                        };
                    }
                };
            self.client.create(&token, &body, now).await
        }
        .boxed()
    }

    fn find<'a>(&'a self, m: &'a Outbound, _since_ms: i64) -> BoxFuture<'a, Option<Found>> {
        async move {
            let (token, source, id_property) = match self.open(m).await {
                Ok(x) => x,
                Err(v) => return Some(Err(v)),
            };
            Some(
                self.client
                    .find(&token, &source, &id_property, &m.event_id)
                    .await,
            )
        }
        .boxed()
    }
}

// ---- telegram ----

struct TelegramPlatform {
    client: telegram::Telegram,
    secrets: DestinationSecrets,
}

impl Platform for TelegramPlatform {
    destination_platform!();

    fn interval(&self, m: &Outbound) -> Duration {
        match &m.target {
            Target::Telegram { chat_id, .. } => telegram::ChatId::parse(chat_id)
                .map(|c| telegram::min_interval(&c))
                .unwrap_or(Duration::from_secs(3)),
            _ => Duration::from_secs(1),
        }
    }

    fn send<'a>(
        &'a self,
        messages: &'a [&'a Outbound],
        resent: bool,
        now: i64,
    ) -> BoxFuture<'a, Verdict> {
        async move {
            let m = match single(messages) {
                Ok(m) => m,
                Err(v) => return v,
            };
            let Target::Telegram { secret, chat_id } = &m.target else {
                return wrong_target(m);
            };
            let chat =
                match telegram::ChatId::parse(chat_id) {
                    Ok(c) => c,
                    Err(why) => return Verdict::PauseTarget {
                        reason: format!("{chat_id:?} is not a Telegram chat: {why}"),
                        hint:
                            "set chat_id in the pipeline to the chat's id or a channel's @username"
                                .into(),
                    },
                };
            let token = match self.secrets.get(secret).await {
                Ok(s) => s,
                Err(v) => return v,
            };
            let html = telegram::render(&m.card, resent);
            self.client.send(&token, &chat, &html, now).await
        }
        .boxed()
    }
}

// ---- email ----

struct EmailPlatform {
    client: email::Email,
    /// The account's sending rate (SES `GetAccount`), read once per instance.
    rate: Mutex<Option<Option<f64>>>,
}

impl Platform for EmailPlatform {
    destination_platform!();

    fn interval(&self, _m: &Outbound) -> Duration {
        let rate = self.rate.lock().ok().and_then(|r| *r).flatten();
        email::min_interval(rate)
    }

    fn digests(&self) -> bool {
        true
    }

    fn send<'a>(
        &'a self,
        messages: &'a [&'a Outbound],
        _resent: bool,
        _now: i64,
    ) -> BoxFuture<'a, Verdict> {
        async move {
            let Some(first) = messages.first() else {
                return Verdict::Park {
                    reason: "an email with no message".into(),
                };
            };
            let Target::Email { from, to } = &first.target else {
                return wrong_target(first);
            };
            let known = self.rate.lock().ok().is_some_and(|r| r.is_some());
            if !known {
                let rate = self.client.max_send_rate().await;
                if let Ok(mut r) = self.rate.lock() {
                    *r = Some(rate);
                }
            }
            let rendered = match messages {
                [one] => email::render(&one.card),
                many => {
                    let cards: Vec<crate::outbound::card::Card> =
                        many.iter().map(|m| m.card.clone()).collect();
                    email::render_digest(&cards)
                }
            };
            self.client.send(from, to, &rendered).await
        }
        .boxed()
    }
}
