//! `make dev`'s destinations beyond Slack: the Discord, Telegram and Notion stand-ins, a
//! webhook receiver that verifies signatures with the Standard Webhooks reference library,
//! SES on the emulator, their secrets stored as a deployment stores them, and one example
//! pipeline per destination type (each takes `feature.used`).

use std::net::SocketAddr;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::resources::Resources;
use crate::webhook_receiver::Receiver;

/// The local ports, each movable with its variable.
pub const PORTS: [(&str, u16); 4] = [
    ("DISCORD_STANDIN_PORT", 3002),
    ("TELEGRAM_STANDIN_PORT", 3003),
    ("NOTION_STANDIN_PORT", 3004),
    ("WEBHOOK_RECEIVER_PORT", 3005),
];

/// The example webhook pipeline's signing secret (local only; a deployment's is generated
/// with `ingestlayer webhooks secret`).
pub const DEV_WEBHOOK_SECRET: &str = "whsec_ZGV2LXdlYmhvb2stc2lnbmluZy1zZWNyZXQtMDE=";

/// The example email pipeline's sender, verified in the emulator's SES.
pub const DEV_EMAIL_FROM: &str = "ingestlayer@example.com";

/// What runs for the destinations beyond Slack.
pub struct Running {
    pub discord: discord_standin::Standin,
    pub telegram: telegram_standin::Standin,
    pub notion: notion_standin::Standin,
    pub receiver: Receiver,
    /// The example pipelines, as items for the pipelines table.
    pub pipelines: Vec<Value>,
    /// What `make dev` prints: each destination's target and where its messages appear.
    pub lines: String,
}

fn port(var: &str, default: u16) -> u16 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn listen(what: &str, var: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid(
        format!("starting the {what} (move it with {var})"),
        Some(e.to_string().into()),
    )
}

impl Running {
    /// Starts the stand-ins and the receiver, stores the secrets and verifies the sender.
    pub async fn start(sdk: &aws_config::SdkConfig, res: &Resources) -> Result<Self> {
        let at = |i: usize| SocketAddr::from(([127, 0, 0, 1], port(PORTS[i].0, PORTS[i].1)));
        let discord = discord_standin::Standin::start_on(
            at(0),
            discord_standin::StandinConfig {
                print_messages: true,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| listen("Discord stand-in", PORTS[0].0, e))?;
        let telegram = telegram_standin::Standin::start_on(
            at(1),
            telegram_standin::StandinConfig {
                print_messages: true,
                // Telegram counts the 4,096 in characters, after entity parsing.
                length_unit: telegram_standin::LengthUnit::CodePoints,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| listen("Telegram stand-in", PORTS[1].0, e))?;
        let standin_setup = |e: telegram_standin::Error| {
            Error::invalid(
                "setting up the Telegram stand-in",
                Some(e.to_string().into()),
            )
        };
        telegram
            .add_bot(telegram_standin::DEFAULT_TOKEN)
            .map_err(standin_setup)?;
        telegram
            .add_chat(1001, telegram_standin::ChatKind::Private)
            .map_err(standin_setup)?;
        let notion = notion_standin::Standin::start_on(
            at(2),
            notion_standin::StandinConfig {
                print_pages: true,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| listen("Notion stand-in", PORTS[2].0, e))?;
        let receiver = Receiver::start(at(3), DEV_WEBHOOK_SECRET, true)
            .await
            .map_err(|e| listen("webhook receiver", PORTS[3].0, e))?;

        let hook = discord
            .default_webhook()
            .ok_or_else(|| Error::invalid("the Discord stand-in has no webhook", None))?;
        let database = notion.create_events_database().map_err(|e| {
            Error::invalid(
                "creating the Notion stand-in's database",
                Some(e.to_string().into()),
            )
        })?;
        for (name, value) in [
            (
                "dev-discord",
                format!(
                    "https://discord.com/api/webhooks/{}/{}",
                    hook.id, hook.token
                ),
            ),
            ("dev-telegram", telegram_standin::DEFAULT_TOKEN.to_owned()),
            ("dev-notion", notion_standin::DEFAULT_TOKEN.to_owned()),
            ("dev-webhook", DEV_WEBHOOK_SECRET.to_owned()),
        ] {
            res.put_destination_secret(sdk, name, &value).await?;
        }
        verify_sender(sdk, DEV_EMAIL_FROM).await?;

        let example = |id: &str, destination: Value| {
            json!({
                "id": id,
                "description": "make dev's example of a destination beyond Slack",
                "events": ["feature.used"],
                "destinations": [destination],
            })
        };
        let pipelines = vec![
            example(
                "dev-feature-usage-to-discord",
                json!({"type": "discord", "secret": "dev-discord"}),
            ),
            example(
                "dev-feature-usage-to-telegram",
                json!({"type": "telegram", "secret": "dev-telegram", "chat_id": 1001}),
            ),
            example(
                "dev-feature-usage-to-email",
                json!({"type": "email", "from": DEV_EMAIL_FROM, "to": ["team@example.com"]}),
            ),
            example(
                "dev-feature-usage-to-notion",
                json!({"type": "notion", "secret": "dev-notion", "database": database.database_id,
                       "properties": {"Event": "$name", "Plan": "$event.plan", "Count": "$event.count"}}),
            ),
            example(
                "dev-feature-usage-to-webhook",
                json!({"type": "webhook", "url": receiver.url, "secret": "dev-webhook"}),
            ),
        ];
        let lines = format!(
            "  discord     stand-in at {} (webhook {}; messages print below)\n  telegram    stand-in at {} (chat 1001; messages print below)\n  notion      stand-in at {} (database \"{}\"; pages print below)\n  email       SES on the emulator, from {DEV_EMAIL_FROM} to team@example.com (sent mail: {}/_ingestlayer/ses-sent)\n  webhook     receiver at {} (verifies each signature with the standardwebhooks library; deliveries print below)\n",
            discord.api_url(),
            hook.id,
            telegram.api_url(),
            notion.api_url(),
            notion_standin::EVENTS_DATABASE_TITLE,
            std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "the emulator".into()),
            receiver.url,
        );
        Ok(Self {
            discord,
            telegram,
            notion,
            receiver,
            pipelines,
            lines,
        })
    }

    pub async fn shutdown(self) {
        self.discord.shutdown().await;
        self.telegram.shutdown().await;
        self.notion.shutdown().await;
        self.receiver.shutdown().await;
    }
}

/// Verifies `from` in the emulator's SES, as a deployment's operator does once in the
/// console (SES refuses to send from an unverified address).
pub async fn verify_sender(sdk: &aws_config::SdkConfig, from: &str) -> Result<()> {
    let ses = aws_sdk_sesv2::Client::new(sdk);
    match ses
        .create_email_identity()
        .email_identity(from)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(Error::invalid(
            "verifying the example sender in SES",
            Some(
                aws_sdk_sesv2::error::DisplayErrorContext(e)
                    .to_string()
                    .into(),
            ),
        )),
    }
}
