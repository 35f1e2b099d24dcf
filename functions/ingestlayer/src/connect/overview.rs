//! The destinations page's markup (maud templates, every value escaped): the sign-in form
//! and the overview of workspaces, paused channels and each pipeline's destination (a Slack
//! one with its channel picker; one beyond Slack with its target, whether its secret is
//! stored and the forms that store the secret and change the target), its latest events
//! with their outcome, and its "Send test" button. Rendering only: what it shows is read by
//! [`super::destinations`]. A secret's value is never rendered, only its name and state.

use std::collections::HashMap;

use maud::{html, Markup};

use crate::delivery::channel_state::PausedEntry;
use crate::ids::DEFAULT_TEAM;
use crate::journey::{self, Outcome, Record};
use crate::slack::client::ChannelInfo;
use crate::slack::workspaces::{Connection, ConnectionStatus};

/// One destination of one pipeline, as the page shows it.
pub(crate) struct Row {
    pub pipeline: String,
    pub events: String,
    pub index: usize,
    pub team: String,
    pub channel: String,
    /// Why the pipeline does not load, if it does not.
    pub error: Option<String>,
    /// A destination beyond Slack: shown with its target and secret instead of a channel
    /// picker (`team` and `channel` are then empty).
    pub outbound: Option<OutboundRow>,
}

/// A destination beyond Slack, as the page shows it.
pub(crate) struct OutboundRow {
    /// Its `type` as written: `webhook`, `discord`, `telegram`, `email` or `notion`.
    pub kind: String,
    pub name: Option<String>,
    /// The target as `Target::describe` names it, or why this destination does not load.
    pub target: Result<String, String>,
    /// The name of its secret (never the value), when it has a valid one.
    pub secret: Option<String>,
    /// The plain setting of its target that the page changes, if it has one.
    pub setting: Option<Setting>,
}

/// A target's plain setting (`chat_id`, `url`, `to`, `database`) with its stored value.
pub(crate) struct Setting {
    /// The destination's field in the pipeline item.
    pub field: &'static str,
    /// What the form calls it.
    pub label: &'static str,
    /// The stored value as the form shows it (`to` joined with ", ").
    pub current: String,
}

/// Whether a destination secret is stored, as Secrets Manager's DescribeSecret says.
pub(crate) enum SecretState {
    /// It has a current value.
    Stored,
    /// There is no such secret, or it has no value yet.
    Missing,
    /// It is scheduled for deletion: it must be restored before a value can be stored.
    Deleted,
    /// It could not be checked; why.
    Unknown(String),
}

/// What the overview shows.
pub(crate) struct Overview<'a> {
    pub csrf: &'a str,
    /// The pipeline whose channel was just saved.
    pub saved: Option<String>,
    pub connections: &'a [Connection],
    pub paused: &'a [PausedEntry],
    pub rows: &'a [Row],
    /// Each workspace's channels, as its bot sees them.
    pub channel_lists: &'a HashMap<String, crate::error::Result<Vec<ChannelInfo>>>,
    /// Each pipeline's latest events (newest first), each with its records about it; a
    /// pipeline missing here could not be read.
    pub recent: &'a HashMap<String, Vec<Vec<Record>>>,
    /// What "Send test" just did.
    pub tested: Option<String>,
    /// The destination secret (its name) that was just stored.
    pub stored: Option<String>,
    /// The pipeline whose target setting was just saved.
    pub target_saved: Option<String>,
    /// Each destination secret's state, by name.
    pub secrets: &'a HashMap<String, SecretState>,
    /// Whether this stack stores destination secrets (`DESTINATION_SECRET_PREFIX` is set).
    pub secrets_on: bool,
}

/// The sign-in form, with `error` above it.
pub(crate) fn sign_in(error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error {
            p role="alert" style="color:#b00" { (e) }
        }
        form method="post" action="/destinations/sign-in" {
            label { "Admin token " input type="password" name="token" autocomplete="current-password" required; }
            " "
            button type="submit" { "Sign in" }
        }
    }
}

/// The overview.
pub(crate) fn render(o: &Overview) -> Markup {
    html! {
        @if let Some(saved) = &o.saved {
            p role="status" style="color:#070" { "Saved the channel of " (saved) "." }
        }
        @if let Some(tested) = &o.tested {
            p role="status" id="tested" style="color:#070" { (tested) }
        }
        @if let Some(name) = &o.stored {
            p role="status" id="stored" style="color:#070" { "Stored the secret " (name) "." }
        }
        @if let Some(saved) = &o.target_saved {
            p role="status" id="target-saved" style="color:#070" { "Saved the target of " (saved) "." }
        }
        h2 { "Workspaces" }
        @if o.connections.is_empty() {
            p { "No workspace is connected yet." }
        } @else {
            table {
                tr { th { "Workspace" } th { "Team id" } th { "Status" } th { "Installed" } }
                @for c in o.connections {
                    tr data-team=(c.team_id) {
                        td { (c.team_name) }
                        td { code { (c.team_id) } }
                        td {
                            @match &c.revoked_reason {
                                Some(r) if c.status == ConnectionStatus::Revoked => { "revoked (" (r) ")" }
                                _ => { (c.status.as_str()) }
                            }
                        }
                        td { (c.installed_at) }
                    }
                }
            }
        }
        p {
            a id="add-to-slack" href="/slack/install" style="display:inline-block;padding:.5em 1em;background:#4a154b;color:#fff;border-radius:4px;text-decoration:none" { "Add to Slack" }
        }
        @if !o.paused.is_empty() {
            h2 { "Paused" }
            ul id="paused" {
                @for p in o.paused {
                    li { strong { (p.name()) } " since " (p.since) ": " strong { (p.pause.error) } ": " (p.pause.hint) }
                }
            }
            p { "After the fix, redrive the backlog: " code { "ingestlayer dlq redrive --channel '#name'" } "." }
        }
        h2 { "Pipelines" }
        @if o.rows.is_empty() {
            p { "No pipelines yet: put one in the pipelines table (see the README)." }
        }
        @for row in o.rows {
            (pipeline(o, row))
        }
        p { "A private channel appears in the list once the app is in it: in Slack, " code { "/invite @ingestlayer" } " in that channel." }
        form method="post" action="/destinations/sign-out" {
            input type="hidden" name="csrf" value=(o.csrf);
            button type="submit" { "Sign out" }
        }
    }
}

/// One `<option>` of a channel picker.
struct Choice {
    value: String,
    text: String,
    selected: bool,
}

/// One pipeline destination: its events, why it does not load, its pause, its picker (or,
/// beyond Slack, its target and secret).
fn pipeline(o: &Overview, row: &Row) -> Markup {
    let pk = crate::delivery::channel_state::channel_pk(&format!("{}:{}", row.team, row.channel));
    let paused = o.paused.iter().find(|p| p.pk == pk);
    let mut teams: Vec<(&str, &str)> = o
        .connections
        .iter()
        .filter(|c| c.status == ConnectionStatus::Active)
        .map(|c| (c.team_id.as_str(), c.team_name.as_str()))
        .collect();
    if matches!(o.channel_lists.get(DEFAULT_TEAM), Some(Ok(_))) {
        teams.push((DEFAULT_TEAM, "default workspace"));
    }
    // Each workspace's name and its channels as options.
    let mut groups: Vec<(&str, Vec<Choice>)> = Vec::new();
    let mut current_listed = false;
    for (team_id, team_name) in &teams {
        let Some(Ok(list)) = o.channel_lists.get(*team_id) else {
            continue;
        };
        let mut options = Vec::new();
        for ch in list {
            let target = if ch.is_private {
                ch.id.clone()
            } else {
                format!("#{}", ch.name)
            };
            let selected = row.team == *team_id
                && (row.channel == target
                    || row.channel == ch.id
                    || row.channel == format!("#{}", ch.name));
            current_listed |= selected;
            let lock = if ch.is_private { "🔒 " } else { "" };
            options.push(Choice {
                value: format!("{team_id}|{target}"),
                text: format!("{lock}#{} ({team_name})", ch.name),
                selected,
            });
        }
        groups.push((team_name, options));
    }
    html! {
        section class="pipeline" data-pipeline=(row.pipeline) {
            h3 { code { (row.pipeline) } }
            p { "listens to " (row.events) }
            @if let Some(err) = &row.error {
                p style="color:#b00" { "Not loaded: " (err) }
            }
            @if let Some(p) = paused {
                p class="paused" style="color:#b00" { (row.channel) " is paused: " (p.pause.hint) }
            }
            @if row.index == 0 {
                (latest(o, &row.pipeline))
            }
            @if let Some(d) = &row.outbound {
                (outbound(o, row, d))
            } @else {
                form method="post" action="/destinations/pipelines" {
                    input type="hidden" name="csrf" value=(o.csrf);
                    input type="hidden" name="pipeline" value=(row.pipeline);
                    input type="hidden" name="destination" value=(row.index);
                    label {
                        "Channel "
                        select name="target" {
                            @if !current_listed && !row.channel.is_empty() {
                                option value={ (row.team) "|" (row.channel) } selected { (row.channel) " (" (row.team) ")" }
                            }
                            @for (label, options) in &groups {
                                optgroup label=(label) {
                                    @for c in options {
                                        option value=(c.value) selected[c.selected] { (c.text) }
                                    }
                                }
                            }
                        }
                    }
                    " "
                    button type="submit" { "Save" }
                }
            }
        }
    }
}

/// A destination beyond Slack: its type and target, its secret's state with a form that
/// stores a new value (never showing the old one), and a form for its plain setting.
fn outbound(o: &Overview, row: &Row, d: &OutboundRow) -> Markup {
    html! {
        div class="destination" data-destination=(row.index) data-type=(d.kind) {
            p {
                strong { (d.kind) }
                @if let Some(name) = &d.name { " " code { (name) } }
                ": "
                @match &d.target {
                    Ok(target) => span class="target" { (target) },
                    Err(why) => span class="target" style="color:#b00" { "not valid: " (why) },
                }
            }
            @if let Some(name) = &d.secret {
                p class="secret" data-secret=(name) {
                    "Secret " code { (name) } ": "
                    @match o.secrets.get(name) {
                        Some(SecretState::Stored) => span class="secret-state" data-state="stored" style="color:#070" { "stored" },
                        Some(SecretState::Missing) => span class="secret-state" data-state="missing" style="color:#b00" { "missing — store it below" },
                        Some(SecretState::Deleted) => span class="secret-state" data-state="deleted" style="color:#b00" { "scheduled for deletion — restore it in Secrets Manager, then store it below" },
                        Some(SecretState::Unknown(why)) => span class="secret-state" data-state="unknown" style="color:#b00" { "unknown (" (why) ")" },
                        None => span class="secret-state" data-state="unknown" style="color:#b00" { "unknown (this stack stores no destination secrets: DESTINATION_SECRET_PREFIX is not set)" },
                    }
                }
                @if o.secrets_on {
                    form method="post" action="/destinations/secrets" class="store-secret" {
                        input type="hidden" name="csrf" value=(o.csrf);
                        input type="hidden" name="pipeline" value=(row.pipeline);
                        input type="hidden" name="destination" value=(row.index);
                        input type="hidden" name="secret" value=(name);
                        label { "New value of " code { (name) } " " input type="password" name="value" autocomplete="new-password" required; }
                        " "
                        button type="submit" { "Store" }
                    }
                    p { "Or from a terminal: " code { "ingestlayer secrets set " (name) } "." }
                }
            }
            @if let Some(s) = &d.setting {
                form method="post" action="/destinations/targets" class="set-target" data-field=(s.field) {
                    input type="hidden" name="csrf" value=(o.csrf);
                    input type="hidden" name="pipeline" value=(row.pipeline);
                    input type="hidden" name="destination" value=(row.index);
                    label { (s.label) " " input type="text" name="value" value=(s.current) required; }
                    " "
                    button type="submit" { "Save" }
                }
            }
        }
    }
}

/// A pipeline's latest events with their outcome (the journey's summary of each), and its
/// "Send test" button.
fn latest(o: &Overview, pipeline: &str) -> Markup {
    let events = o.recent.get(pipeline);
    html! {
        details class="latest" data-pipeline=(pipeline) open[events.is_some_and(|e| !e.is_empty())] {
            summary { "Latest events" @if let Some(e) = events { " (" (e.len()) ")" } }
            @match events {
                None => p { "The latest events could not be read." },
                Some(e) if e.is_empty() => p { "No event has reached this pipeline yet." },
                Some(list) => table {
                    tr { th { "When" } th { "Event" } th { "Outcome" } th { "Detail" } }
                    @for records in list {
                        @if let Some(r) = journey::summary(records) {
                            tr class="event" data-event=(r.event_id) data-outcome=(r.outcome.as_str()) {
                                td { (journey::clock(r.at_ms)) }
                                td { code { (r.event_id) } }
                                td { (r.outcome.as_str().replace('_', " ")) }
                                td { (detail(r)) }
                            }
                        }
                    }
                },
            }
            p { "The whole journey of one event: " code { "ingestlayer explain EVENT_ID" } "." }
        }
        form method="post" action="/destinations/test" class="send-test" {
            input type="hidden" name="csrf" value=(o.csrf);
            input type="hidden" name="pipeline" value=(pipeline);
            button type="submit" { "Send test" }
            " posts this pipeline's message for its latest event (or a sample), marked as a test, to its channels."
        }
    }
}

/// One outcome's detail: why it was filtered or parked, where it was posted.
fn detail(r: &Record) -> Markup {
    let link = r
        .permalink
        .as_deref()
        .filter(|l| l.starts_with("https://") || l.starts_with("http://"));
    html! {
        @match r.outcome {
            Outcome::Posted | Outcome::Digested | Outcome::AlreadyPosted => {
                (r.channels.join(", ")) " · ts " (r.ts.as_deref().unwrap_or("?"))
                @if let Some(n) = r.digest_of { " · digest of " (n) }
                @if let Some(l) = link { " · " a href=(l) { "open in Slack" } }
            }
            Outcome::Matched => { "queued for " (r.channels.join(", ")) }
            Outcome::Parked => {
                (r.channels.join(", ")) ": " (r.reason.as_deref().unwrap_or(""))
                @if let Some(h) = &r.hint { " Fix: " (h) }
            }
            _ => { (r.reason.as_deref().unwrap_or("")) }
        }
    }
}
