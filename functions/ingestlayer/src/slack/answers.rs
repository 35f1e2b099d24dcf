//! Slack's answers and what they mean for a message: every chat.postMessage outcome is
//! classified into what delivery does next (DESIGN.md, "Slack facts"), and every pause
//! comes with what an operator must do.

use std::time::Duration;

use serde::Deserialize;

/// The longest Retry-After we honour in one wait; longer ones wait again.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The body of a Slack Web API answer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SlackBody {
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub ts: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
}

/// What came back from one call, before interpretation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Http {
        status: u16,
        retry_after: Option<Duration>,
        /// `None` when the body was not Slack's JSON.
        body: Option<SlackBody>,
    },
    /// No HTTP answer. `maybe_sent` means the request may have reached Slack: everything
    /// but a failure to connect (a timeout, a reset or a close after the request was sent,
    /// a body cut short) leaves that open.
    Transport { maybe_sent: bool, error: String },
}

impl Answer {
    /// The answer in a few words, for the journey: `ok`, Slack's error code (with `429
    /// (Retry-After N s)` for a rate limit), `HTTP 502`, or the transport failure.
    pub fn summary(&self) -> String {
        match self {
            Answer::Http {
                status: 429,
                retry_after,
                ..
            } => match retry_after {
                Some(d) => format!("429 (Retry-After {} s)", d.as_secs()),
                None => "429".to_owned(),
            },
            Answer::Http {
                body: Some(b),
                status,
                ..
            } => match (b.ok, &b.error) {
                (true, _) => "ok".to_owned(),
                (false, Some(code)) => code.clone(),
                (false, None) => format!("HTTP {status}, ok:false without an error"),
            },
            Answer::Http { status, .. } => format!("HTTP {status}"),
            Answer::Transport { maybe_sent, error } => {
                let sent = if *maybe_sent {
                    "may have reached Slack"
                } else {
                    "never reached Slack"
                };
                format!("no answer ({sent}): {error}")
            }
        }
    }
}

/// What delivery does with a message after an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Slack took it; `channel` is the channel id Slack reported.
    Delivered { ts: String, channel: Option<String> },
    /// Rate limited: this channel waits exactly this long.
    WaitRetryAfter(Duration),
    /// A transient failure; retry with backoff. `maybe_posted` means Slack may already
    /// show the message (timeouts, 5xx, `fatal_error`, `internal_error`).
    Retry { reason: String, maybe_posted: bool },
    /// The message itself is unacceptable; park it in the DLQ with the reason.
    Park { reason: String },
    /// The channel cannot take messages until an operator acts; keep its backlog.
    PauseChannel { error: String },
    /// The workspace's token no longer works; keep every backlog of the workspace.
    PauseWorkspace { error: String },
}

const PARK: &[&str] = &[
    "invalid_blocks",
    "invalid_blocks_format",
    "msg_too_long",
    "no_text",
    "invalid_metadata_format",
    "invalid_metadata_schema",
    "metadata_too_large",
    "metadata_must_be_sent_from_app",
    "too_many_attachments",
    "invalid_arguments",
    "invalid_arg_name",
    "invalid_array_arg",
    "invalid_charset",
    "invalid_form_data",
    "invalid_post_type",
    "missing_post_type",
    "json_not_object",
    "invalid_json",
    "as_user_not_supported",
    "duplicate_message_not_found",
];
const PAUSE_CHANNEL: &[&str] = &[
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "restricted_action",
    "restricted_action_read_only_channel",
    "restricted_action_thread_only_channel",
    "restricted_action_non_threadable_channel",
    "team_access_not_granted",
    "ekm_access_denied",
];
const PAUSE_WORKSPACE: &[&str] = &[
    "invalid_auth",
    "not_authed",
    "token_revoked",
    "account_inactive",
    "missing_scope",
    "token_expired",
    "no_permission",
    "org_login_required",
    "not_allowed_token_type",
    "team_not_found",
];
/// Retry, and the message may already be posted.
const RETRY_MAYBE_POSTED: &[&str] = &["internal_error", "fatal_error"];
/// Retry; Slack did not take the message.
const RETRY: &[&str] = &[
    "request_timeout",
    "service_unavailable",
    "team_added_to_org",
];
/// Classifies an answer (DESIGN.md, "Slack facts").
pub fn classify(answer: &Answer) -> Action {
    match answer {
        Answer::Transport { maybe_sent, error } => Action::Retry {
            reason: format!("no answer from Slack: {error}"),
            maybe_posted: *maybe_sent,
        },
        Answer::Http {
            status: 429,
            retry_after,
            ..
        } => Action::WaitRetryAfter(
            retry_after
                .unwrap_or(Duration::from_secs(1))
                .min(MAX_RETRY_AFTER),
        ),
        Answer::Http { status, body, .. } if *status >= 500 => Action::Retry {
            reason: format!(
                "Slack answered HTTP {status}{}",
                body.as_ref()
                    .and_then(|b| b.error.as_deref())
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
            maybe_posted: true,
        },
        Answer::Http {
            status,
            body: Some(body),
            retry_after,
        } if (200..300).contains(status) => classify_body(body, *retry_after),
        Answer::Http {
            status: 200..=299,
            body: None,
            ..
        } => Action::Retry {
            reason: "Slack answered 2xx with a body that is not Slack's JSON".into(),
            maybe_posted: true,
        },
        Answer::Http { status: 408, .. } => Action::Retry {
            reason: "Slack answered HTTP 408".into(),
            maybe_posted: false,
        },
        Answer::Http { status, body, .. } => match body.as_ref() {
            Some(b) if b.error.is_some() => classify_body(b, None),
            _ => Action::Park {
                reason: format!("Slack answered HTTP {status}; check SLACK_API_URL"),
            },
        },
    }
}

fn classify_body(body: &SlackBody, retry_after: Option<Duration>) -> Action {
    if body.ok {
        return match &body.ts {
            Some(ts) => Action::Delivered {
                ts: ts.clone(),
                channel: body.channel.clone(),
            },
            None => Action::Retry {
                reason: "Slack said ok without a message ts".into(),
                maybe_posted: true,
            },
        };
    }
    let error = body.error.clone().unwrap_or_else(|| "unknown_error".into());
    let e = error.as_str();
    if e == "ratelimited" || e == "rate_limited" {
        Action::WaitRetryAfter(
            retry_after
                .unwrap_or(Duration::from_secs(1))
                .min(MAX_RETRY_AFTER),
        )
    } else if RETRY_MAYBE_POSTED.contains(&e) {
        Action::Retry {
            reason: format!("Slack error {e}"),
            maybe_posted: true,
        }
    } else if RETRY.contains(&e) {
        Action::Retry {
            reason: format!("Slack error {e}"),
            maybe_posted: false,
        }
    } else if PAUSE_CHANNEL.contains(&e) {
        Action::PauseChannel { error }
    } else if PAUSE_WORKSPACE.contains(&e) {
        Action::PauseWorkspace { error }
    } else if PARK.contains(&e) {
        Action::Park {
            reason: format!("Slack refused the message: {e}"),
        }
    } else {
        // An error we do not know is parked, not retried forever: nothing is lost and the
        // operator sees the reason.
        Action::Park {
            reason: format!("Slack refused the message with an unrecognised error: {e}"),
        }
    }
}

/// What an operator must do for a paused channel or workspace.
pub fn operator_hint(error: &str, channel: &str) -> String {
    match error {
        "not_in_channel" => format!("invite the app to {channel} (/invite @ingestlayer in {channel}); its backlog is kept and flows once it is in"),
        "channel_not_found" => format!("{channel} does not exist or the app cannot see it: create it, invite the app, or change the pipeline's channel"),
        "is_archived" => format!("{channel} is archived: unarchive it or point the pipeline at another channel"),
        e if e.starts_with("restricted_action") => format!("posting in {channel} is restricted ({e}): allow the app to post there"),
        "missing_scope" => "the Slack app lacks a scope it needs: reinstall it from the destinations page".into(),
        "token_revoked" | "invalid_auth" | "not_authed" | "account_inactive" | "token_expired" => {
            "the workspace's bot token no longer works: reconnect Slack (reinstall the app), then the backlog flows".into()
        }
        e => format!("Slack says {e}: fix the workspace or channel, then the backlog flows"),
    }
}

/// What an operator must do for a channel paused because its history could not be read
/// after an uncertain post (so whether the post landed cannot be told).
pub fn history_hint(error: &str, channel: &str) -> String {
    let why = format!("an earlier post to {channel} may have landed and the app cannot read {channel} to check ({error})");
    match error {
        "not_in_channel" => format!("{why}: invite the app to {channel} (/invite @ingestlayer in {channel}), or reinstall it so it may join public channels (channels:join); its backlog is kept and flows once it is in"),
        "missing_scope" => format!("{why}: reinstall the app from the destinations page so it has channels:history, groups:history and channels:join; then redrive the backlog"),
        _ => format!("{why}: {}", operator_hint(error, channel)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_false(e: &str) -> Answer {
        Answer::Http {
            status: 200,
            retry_after: None,
            body: Some(SlackBody {
                ok: false,
                error: Some(e.into()),
                ts: None,
                channel: None,
            }),
        }
    }

    #[test]
    fn classifies_as_design_lists() {
        assert!(matches!(
            classify(&ok_false("invalid_blocks")),
            Action::Park { .. }
        ));
        assert!(matches!(
            classify(&ok_false("msg_too_long")),
            Action::Park { .. }
        ));
        assert!(matches!(
            classify(&ok_false("no_text")),
            Action::Park { .. }
        ));
        for e in [
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "restricted_action",
        ] {
            assert_eq!(
                classify(&ok_false(e)),
                Action::PauseChannel { error: e.into() }
            );
        }
        for e in [
            "invalid_auth",
            "token_revoked",
            "account_inactive",
            "missing_scope",
            "token_expired",
        ] {
            assert_eq!(
                classify(&ok_false(e)),
                Action::PauseWorkspace { error: e.into() }
            );
        }
        assert!(matches!(
            classify(&ok_false("fatal_error")),
            Action::Retry {
                maybe_posted: true,
                ..
            }
        ));
        assert!(matches!(
            classify(&ok_false("internal_error")),
            Action::Retry {
                maybe_posted: true,
                ..
            }
        ));
        assert!(matches!(
            classify(&ok_false("request_timeout")),
            Action::Retry {
                maybe_posted: false,
                ..
            }
        ));
        assert!(matches!(
            classify(&ok_false("something_new")),
            Action::Park { .. }
        ));
    }

    #[test]
    fn a_429_waits_exactly_its_retry_after() {
        let a = Answer::Http {
            status: 429,
            retry_after: Some(Duration::from_secs(30)),
            body: None,
        };
        assert_eq!(
            classify(&a),
            Action::WaitRetryAfter(Duration::from_secs(30))
        );
        let huge = Answer::Http {
            status: 429,
            retry_after: Some(Duration::from_secs(99_999)),
            body: None,
        };
        assert_eq!(classify(&huge), Action::WaitRetryAfter(MAX_RETRY_AFTER));
    }

    #[test]
    fn server_errors_and_timeouts_retry_and_may_have_posted() {
        let a = Answer::Http {
            status: 503,
            retry_after: None,
            body: None,
        };
        assert!(matches!(
            classify(&a),
            Action::Retry {
                maybe_posted: true,
                ..
            }
        ));
        let t = Answer::Transport {
            maybe_sent: true,
            error: "timeout".into(),
        };
        assert!(matches!(
            classify(&t),
            Action::Retry {
                maybe_posted: true,
                ..
            }
        ));
        let c = Answer::Transport {
            maybe_sent: false,
            error: "refused".into(),
        };
        assert!(matches!(
            classify(&c),
            Action::Retry {
                maybe_posted: false,
                ..
            }
        ));
    }

    #[test]
    fn ok_true_is_delivered() {
        let a = Answer::Http {
            status: 200,
            retry_after: None,
            body: Some(SlackBody {
                ok: true,
                error: None,
                ts: Some("1.2".into()),
                channel: Some("C1".into()),
            }),
        };
        assert_eq!(
            classify(&a),
            Action::Delivered {
                ts: "1.2".into(),
                channel: Some("C1".into())
            }
        );
    }

    #[test]
    fn operators_are_told_what_to_do() {
        assert!(operator_hint("not_in_channel", "#growth").contains("invite the app to #growth"));
    }
}
