//! Operations notices: when a channel or workspace is paused, or a message is parked, one
//! message to the operations channel (the stack's `OpsChannel`; `make dev` uses
//! `#ingestlayer-ops`) with the hint and the command that fixes it. Svix's operational
//! webhooks are the model.
//!
//! Never more than one notice per channel (or workspace) per hour: the channels table holds a
//! `notice#<subject>` mark, claimed with a conditional write that only succeeds once the last
//! one's hour has passed, so every delivery instance shares it. A notice is best effort: one
//! that cannot be claimed or posted is logged and never holds a delivery back.

use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};

use crate::delivery::channel_store::{Pause, PauseScope};
use crate::delivery::DeliveryDeps;
use crate::ids::{ChannelRef, GroupId, DEFAULT_TEAM};
use crate::slack::block_kit::{escape, mrkdwn};
use crate::slack::client::PostMessage;

/// Least time between two notices about one subject.
pub const QUIET: Duration = Duration::from_secs(3600);

/// The longest Retry-After a notice waits out (once) before giving up.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// A notice: what it is about (the once-per-hour key) and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// `<team>:<channel>` for a channel, `team#<team>` for a workspace.
    pub subject: String,
    pub text: String,
}

/// The notice for a pause.
pub fn paused(scope: &PauseScope, pause: &Pause) -> Notice {
    match scope {
        PauseScope::Channel(group) => {
            let channel = shown_channel(group);
            Notice {
                subject: group.as_str().to_owned(),
                text: format!(
                    ":warning: *{}* is paused: {} ({}). Its messages wait in the DLQ. \
                     After the fix: `ingestlayer dlq redrive --channel '{}'`",
                    escape(&channel),
                    escape(&pause.hint),
                    escape(&pause.error),
                    channel.replace('\'', "")
                ),
            }
        }
        PauseScope::Workspace(team) => Notice {
            subject: format!("team#{team}"),
            text: format!(
                ":warning: workspace *{}* is paused: {} ({}). Its messages wait in the DLQ. \
                 After the fix: `ingestlayer dlq redrive --team {}`",
                escape(team.as_str()),
                escape(&pause.hint),
                escape(&pause.error),
                team.as_str()
            ),
        },
    }
}

/// The notice for a parked message.
pub fn parked(group: &str, event_id: Option<&str>, reason: &str) -> Notice {
    let channel = shown_channel(&GroupId::from_queue(group));
    let event = event_id
        .map(|id| {
            format!(
                " (event `{}`: `ingestlayer explain {}`)",
                escape(id),
                escape(id)
            )
        })
        .unwrap_or_default();
    Notice {
        subject: group.to_owned(),
        text: format!(
            ":no_entry: a message for *{}* was parked{event}: {}. \
             See it with `ingestlayer dlq list`; after the fix: `ingestlayer dlq redrive --channel '{}'`",
            escape(&channel),
            escape(reason),
            channel.replace('\'', "")
        ),
    }
}

/// How a group's channel is named in a notice: `#alerts`, or the group itself.
fn shown_channel(group: &GroupId) -> String {
    group
        .channel()
        .map(ToString::to_string)
        .unwrap_or_else(|| group.as_str().to_owned())
}

/// Posts `notice` to the operations channel, unless notices are off, the subject is the
/// operations channel itself, or the subject had one within [`QUIET`].
/// Boxed: it runs deep inside delivery's futures, and its own stays off their size.
pub(super) fn send(deps: &DeliveryDeps, notice: Notice) -> BoxFuture<'_, ()> {
    async move {
    let Some(ops) = &deps.ops_channel else {
        return;
    };
    if is_ops_channel(&notice.subject, ops) {
        return;
    }
    let now_ms = deps.clock.now_ms();
    match deps
        .channels
        .claim_notice(&notice.subject, now_ms, QUIET.as_millis() as i64)
        .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, subject = %notice.subject, "could not claim the operations notice; none sent");
            return;
        }
    }
    let token = match deps.tokens.token(DEFAULT_TEAM).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "no token for the operations notice; none sent");
            return;
        }
    };
    let blocks = [serde_json::json!({"type": "section", "text": mrkdwn(notice.text.clone())})];
    let message = PostMessage {
        channel: ops.as_str(),
        text: &notice.text,
        blocks: &blocks,
        metadata: None,
        unfurl_links: false,
        unfurl_media: false,
        thread_ts: None,
    };
    let mut posted = false;
    // The operations channel is paced like any other: a 429 is waited out once.
    for _ in 0..2 {
        let answer = deps.slack.post_message(&token, &message).await;
        match crate::slack::answers::classify(&answer) {
            crate::slack::answers::Action::Delivered { .. } => {
                posted = true;
                break;
            }
            crate::slack::answers::Action::WaitRetryAfter(wait) if wait <= MAX_WAIT => {
                tokio::time::sleep(wait).await;
            }
            _ => break,
        }
    }
    tracing::info!(subject = %notice.subject, ops_channel = %ops, posted, "operations notice");
    }
    .boxed()
}

/// Whether a subject is the operations channel (its own trouble is never noticed there).
fn is_ops_channel(subject: &str, ops: &ChannelRef) -> bool {
    GroupId::from_queue(subject)
        .channel()
        .is_some_and(|c| c == ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::clock::Clock;
    use crate::delivery::fake::FakeState;
    use crate::ids::TeamId;
    use slack_standin::{Standin, StandinConfig};
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    /// A clock moved by hand.
    struct Hand(AtomicI64);

    impl Clock for Hand {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[tokio::test]
    async fn a_channel_is_noticed_once_an_hour_and_the_ops_channel_never() {
        let standin = Standin::start(StandinConfig::default()).await.unwrap();
        let mut deps = DeliveryDeps::with_fake(&standin.api_url(), Arc::new(FakeState::default()));
        let clock = Arc::new(Hand(AtomicI64::new(1_800_000_000_000)));
        deps.clock = clock.clone();
        let pause = Pause {
            error: "not_in_channel".into(),
            hint: "invite the app".into(),
        };
        let ops = || standin.messages_in("#ingestlayer-ops");

        send(
            &deps,
            paused(&PauseScope::Channel(group("#growth")), &pause),
        )
        .await;
        assert!(
            ops().is_empty(),
            "notices are off without an operations channel"
        );

        deps.ops_channel = Some(ChannelRef::parse("#ingestlayer-ops").unwrap());
        send(
            &deps,
            paused(&PauseScope::Channel(group("#growth")), &pause),
        )
        .await;
        send(
            &deps,
            paused(&PauseScope::Channel(group("#growth")), &pause),
        )
        .await;
        send(
            &deps,
            parked(group("#growth").as_str(), Some("e1"), "invalid_blocks"),
        )
        .await;
        assert_eq!(
            ops().len(),
            1,
            "one notice for #growth, however many reasons"
        );
        assert!(ops()[0]
            .text
            .as_deref()
            .unwrap_or_default()
            .contains("#growth* is paused"));

        send(
            &deps,
            parked(group("#alerts").as_str(), Some("e2"), "invalid_blocks"),
        )
        .await;
        send(
            &deps,
            paused(&PauseScope::Channel(group("#ingestlayer-ops")), &pause),
        )
        .await;
        assert_eq!(
            ops().len(),
            2,
            "another channel is noticed; the ops channel is not"
        );

        clock.0.fetch_add(59 * 60 * 1000, Ordering::SeqCst);
        send(
            &deps,
            paused(&PauseScope::Channel(group("#growth")), &pause),
        )
        .await;
        assert_eq!(ops().len(), 2, "not again within the hour");
        clock.0.fetch_add(60 * 1000, Ordering::SeqCst);
        send(
            &deps,
            paused(&PauseScope::Channel(group("#growth")), &pause),
        )
        .await;
        assert_eq!(ops().len(), 3, "again once the hour has passed");
    }

    fn group(channel: &str) -> GroupId {
        GroupId::new(
            &TeamId::parse(DEFAULT_TEAM).unwrap(),
            &ChannelRef::parse(channel).unwrap(),
        )
    }

    #[test]
    fn a_pause_notice_names_the_channel_the_hint_and_the_fix() {
        let n = paused(
            &PauseScope::Channel(group("#growth")),
            &Pause {
                error: "not_in_channel".into(),
                hint: "invite the app to the channel".into(),
            },
        );
        assert_eq!(n.subject, group("#growth").as_str());
        assert!(
            n.text
                .contains("*#growth* is paused: invite the app to the channel (not_in_channel)"),
            "{}",
            n.text
        );
        assert!(
            n.text
                .contains("`ingestlayer dlq redrive --channel '#growth'`"),
            "{}",
            n.text
        );
    }

    #[test]
    fn a_park_notice_names_the_event_and_escapes_the_reason() {
        let n = parked(
            group("#alerts").as_str(),
            Some("ev_1"),
            "invalid_blocks <@U1>",
        );
        assert!(n.text.contains("`ingestlayer explain ev_1`"), "{}", n.text);
        assert!(n.text.contains("invalid_blocks &lt;@U1&gt;"), "{}", n.text);
    }

    #[test]
    fn the_operations_channel_never_notices_itself() {
        let ops = ChannelRef::parse("#ingestlayer-ops").unwrap();
        assert!(is_ops_channel(group("#ingestlayer-ops").as_str(), &ops));
        assert!(!is_ops_channel(group("#alerts").as_str(), &ops));
        assert!(!is_ops_channel("team#T1", &ops));
    }
}
