//! Slack behind the one delivery abstraction, [`Platform`]: a channel is the pacing unit
//! (its `min_interval_ms`, about one post a second), waiting messages go as Block Kit
//! digests, a post carries its delivery keys in message metadata, Slack's answer is read
//! into the shared [`Verdict`] (a revoked token pauses the whole workspace:
//! [`Verdict::PauseAccount`]), and the duplicate check reads the channel's history (and the
//! key's thread) for those keys.
//!
//! The group loop ([`crate::delivery::group`]) drives it and adds what only Slack has: the
//! day's threads, owners' mentions, joining a channel before its first post, workspace
//! pauses and the backlog buffer.

use std::marker::PhantomData;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use crate::delivery::history;
use crate::delivery::message::Item;
use crate::delivery::platform::{Found, Platform, Verdict};
use crate::delivery::post::{self, Posted};
use crate::delivery::retry::paced_interval;
use crate::delivery::DeliveryDeps;
use crate::slack::answers::{classify, history_hint, operator_hint, Action, Answer};
use crate::slack::client::HistoryCheck;

/// Slack, over the slack-delivery function's dependencies; `'r` is the batch its messages
/// come from.
pub struct SlackPlatform<'a, 'r> {
    deps: &'a DeliveryDeps,
    /// The thread the next post replies in (its key's thread of the day).
    reply_to: Option<&'a str>,
    batch: PhantomData<fn() -> Item<'r>>,
}

impl<'a, 'r> SlackPlatform<'a, 'r> {
    pub fn new(deps: &'a DeliveryDeps) -> Self {
        Self {
            deps,
            reply_to: None,
            batch: PhantomData,
        }
    }

    /// The same platform, posting in the thread of `ts` (top level when `None`).
    pub fn in_thread(&self, ts: Option<&'a str>) -> Self {
        Self {
            deps: self.deps,
            reply_to: ts,
            batch: PhantomData,
        }
    }
}

impl<'r> Platform for SlackPlatform<'_, 'r> {
    type Message = Item<'r>;
    type Answer = Posted;

    fn pacing_key(&self, item: &Item<'r>) -> String {
        item.delivery.group().to_string()
    }

    fn interval(&self, item: &Item<'r>) -> Duration {
        paced_interval(item.delivery.min_interval_ms)
    }

    fn schedule(&self) -> &[u64] {
        &self.deps.retry_schedule
    }

    fn digests(&self) -> bool {
        true
    }

    /// Posts the message, or the digest of several (the history check, not a marker, keeps
    /// a resend from repeating a post, so `resent` changes nothing).
    fn send<'b>(
        &'b self,
        messages: &'b [&'b Item<'r>],
        _resent: bool,
        _now: i64,
    ) -> BoxFuture<'b, Posted> {
        async move {
            let Some(first) = messages.first() else {
                return Posted {
                    answer: Answer::Transport {
                        maybe_sent: false,
                        error: "nothing to post".into(),
                    },
                    channel: String::new(),
                    thread_gone: None,
                };
            };
            let channel = first.delivery.channel.to_string();
            match self.deps.tokens.token(first.delivery.team.as_str()).await {
                Ok(token) => post::post_unit(messages, &token, self.deps, self.reply_to).await,
                Err(e) => Posted {
                    answer: Answer::Transport {
                        maybe_sent: false,
                        error: format!("no usable Slack token: {e}"),
                    },
                    channel,
                    thread_gone: None,
                },
            }
        }
        .boxed()
    }

    fn classify(&self, posted: &Posted) -> Verdict {
        verdict(classify(&posted.answer), &posted.channel)
    }

    fn find<'b>(&'b self, item: &'b Item<'r>, since_ms: i64) -> BoxFuture<'b, Option<Found>> {
        async move {
            let group = item.delivery.group();
            let check =
                history::check(&item.delivery, &group, &item.key, since_ms, self.deps).await;
            Some(found(check, item.delivery.channel.as_str()))
        }
        .boxed()
    }
}

/// Slack's classified answer as the shared verdict; pauses carry what the operator must do
/// for `channel`.
pub fn verdict(action: Action, channel: &str) -> Verdict {
    match action {
        Action::Delivered { ts, .. } => Verdict::Delivered {
            receipt: ts,
            hold: None,
        },
        Action::WaitRetryAfter(wait) => Verdict::RetryAfter {
            wait,
            reason: "Slack answered 429".into(),
        },
        Action::Retry {
            reason,
            maybe_posted,
        } => Verdict::Retry {
            reason,
            maybe_sent: maybe_posted,
        },
        Action::Park { reason } => Verdict::Park { reason },
        Action::PauseChannel { error } => Verdict::PauseTarget {
            hint: operator_hint(&error, channel),
            reason: error,
        },
        Action::PauseWorkspace { error } => Verdict::PauseAccount {
            hint: operator_hint(&error, channel),
            reason: error,
        },
    }
}

/// The history check's answer as the shared [`Found`]: a history Slack refuses to show
/// pauses the channel with what to do (retrying cannot tell either); one that cannot be
/// read yet is asked again later.
pub fn found(check: HistoryCheck, channel: &str) -> Found {
    match check {
        HistoryCheck::Found(ts) => Ok(Some(ts)),
        HistoryCheck::NotFound => Ok(None),
        HistoryCheck::Unavailable(reason) => Err(Verdict::Retry {
            reason,
            maybe_sent: true,
        }),
        HistoryCheck::Refused(error) => Err(Verdict::PauseTarget {
            hint: history_hint(&error, channel),
            reason: error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_answers_map_onto_the_shared_verdicts() {
        assert_eq!(
            verdict(
                Action::Delivered {
                    ts: "1.2".into(),
                    channel: Some("C1".into())
                },
                "#alerts"
            ),
            Verdict::Delivered {
                receipt: "1.2".into(),
                hold: None
            }
        );
        assert!(matches!(
            verdict(Action::WaitRetryAfter(Duration::from_secs(30)), "#alerts"),
            Verdict::RetryAfter { wait, .. } if wait == Duration::from_secs(30)
        ));
        assert_eq!(
            verdict(
                Action::Retry {
                    reason: "Slack answered HTTP 502".into(),
                    maybe_posted: true
                },
                "#alerts"
            ),
            Verdict::Retry {
                reason: "Slack answered HTTP 502".into(),
                maybe_sent: true
            }
        );
        let Verdict::PauseTarget { reason, hint } = verdict(
            Action::PauseChannel {
                error: "not_in_channel".into(),
            },
            "#alerts",
        ) else {
            panic!("a channel refusal pauses the channel");
        };
        assert_eq!(reason, "not_in_channel");
        assert!(hint.contains("/invite @ingestlayer in #alerts"), "{hint}");
        assert!(matches!(
            verdict(
                Action::PauseWorkspace {
                    error: "token_revoked".into()
                },
                "#alerts"
            ),
            Verdict::PauseAccount { .. }
        ));
    }

    #[test]
    fn history_answers_map_onto_found() {
        assert_eq!(
            found(HistoryCheck::Found("9.9".into()), "#a"),
            Ok(Some("9.9".into()))
        );
        assert_eq!(found(HistoryCheck::NotFound, "#a"), Ok(None));
        assert!(matches!(
            found(HistoryCheck::Unavailable("HTTP 503".into()), "#a"),
            Err(Verdict::Retry { .. })
        ));
        let Err(Verdict::PauseTarget { hint, .. }) =
            found(HistoryCheck::Refused("missing_scope".into()), "#a")
        else {
            panic!("a refused history pauses the channel");
        };
        assert!(hint.contains("channels:history"), "{hint}");
    }
}
