//! `ingestlayer explain EVENT_ID`: one event's journey, as a timeline or (`--json`) the same
//! record. Ingest's line is the events table's item (source, API key, time); every later line
//! is a record the pipeline and delivery functions wrote to the journey table
//! ([`ingestlayer::journey`]): each pipeline that listened, matched or filtered out and why,
//! what enrichment found; each delivery, paced, each attempt with Slack's answer, then posted
//! (ts and permalink), digested into a post, or parked (reason and hint).

use std::io::Write;

use ingestlayer::ingress::event_store::{EventStore, Received};
use ingestlayer::journey::{clock, JourneyStore, Outcome, Record, Stage, StepTrace};
use serde::Serialize;

use crate::error::CliError;
use crate::stack::Stack;

/// An event's journey: how it arrived, then every stage's record, oldest first.
#[derive(Debug, Serialize)]
pub struct Journey {
    pub id: String,
    pub received: Option<Received>,
    pub records: Vec<Record>,
}

/// Reads the journey of `id`; an id neither table knows is an error naming what to check.
pub async fn load(stack: &Stack, id: &str) -> Result<Journey, CliError> {
    let events = EventStore {
        client: stack.dynamo(),
        table: stack.output("EventsTableName")?.to_owned(),
        ttl_days: 0,
    };
    let journey = JourneyStore {
        client: stack.dynamo(),
        table: stack.output("JourneyTableName")?.to_owned(),
        ttl_days: 0,
    };
    let received = events.received(id).await.map_err(|e| stack.explain(e))?;
    let records = journey.of_event(id).await.map_err(|e| stack.explain(e))?;
    if received.is_none() && records.is_empty() {
        return Err(CliError::Stack(format!(
            "no event {id:?} in the {}: give the id as the API answered it (an id a client \
             chose is stored as <source>:<id>); events and their journeys are kept for the \
             stack's EventTtlDays",
            stack.target.describe()
        )));
    }
    Ok(Journey {
        id: id.to_owned(),
        received,
        records,
    })
}

/// `explain ID [--json]`.
pub async fn cmd_explain(
    stack: &Stack,
    id: &str,
    out: &mut dyn Write,
    as_json: bool,
) -> Result<(), CliError> {
    let journey = load(stack, id).await?;
    if as_json {
        let text = serde_json::to_string_pretty(&journey)
            .map_err(|e| CliError::Stack(format!("cannot print the journey as JSON: {e}")))?;
        writeln!(out, "{text}").ok();
    } else {
        print(&journey, out);
    }
    Ok(())
}

/// The timeline: one line per record, with its details indented below.
pub fn print(j: &Journey, out: &mut dyn Write) {
    let name = j
        .received
        .as_ref()
        .map(|r| r.name.clone())
        .or_else(|| j.records.iter().find_map(|r| r.event_name.clone()))
        .unwrap_or_default();
    writeln!(out, "event {}  {name}", j.id).ok();
    match &j.received {
        Some(r) => {
            let key = r
                .key_id
                .as_deref()
                .map_or_else(|| "a signed webhook".to_owned(), |k| format!("API key {k}"));
            writeln!(
                out,
                "{}  received    from source {:?} with {key}",
                clock(r.received_ms),
                r.source
            )
            .ok();
        }
        None => {
            writeln!(
                out,
                "{:23}  received    (the stored event has expired; its journey remains)",
                ""
            )
            .ok();
        }
    }
    for r in &j.records {
        writeln!(out, "{}  {}", clock(r.at_ms), headline(r)).ok();
        for detail in details(r) {
            writeln!(out, "{:23}      {detail}", "").ok();
        }
    }
    if j.records.is_empty() {
        writeln!(
            out,
            "{:23}  no stage has recorded it yet: it may still wait on the events queue \
             (`ingestlayer status`)",
            ""
        )
        .ok();
    } else if let Some(last) = j.records.iter().rev().find(|r| r.stage == Stage::Delivery) {
        if !last.outcome.is_final() {
            let queue = if beyond_slack(last) {
                "destinations"
            } else {
                "Slack"
            };
            writeln!(
                out,
                "{:23}  not final yet: the message is back on the {queue} queue and will be tried again",
                ""
            )
            .ok();
        }
    }
}

/// Whether a delivery record is about a destination beyond Slack (delivered from the
/// destinations queue, parked in its DLQ).
fn beyond_slack(r: &Record) -> bool {
    r.channels
        .iter()
        .any(|c| ingestlayer::outbound::message::describes_target(c))
}

/// The DLQ a parked delivery waits in, and the redrive that sends it again.
fn dlq_of(r: &Record) -> (&'static str, &'static str) {
    if beyond_slack(r) {
        (
            "destinations DLQ",
            "ingestlayer dlq redrive --queue destinations",
        )
    } else {
        ("Slack DLQ", "ingestlayer dlq redrive")
    }
}

/// What happened, in one line.
fn headline(r: &Record) -> String {
    let pipeline = r.pipeline.as_deref().unwrap_or("?");
    let channels = r.channels.join(", ");
    match (r.stage, r.outcome) {
        (Stage::Pipeline, Outcome::Unrouted) => format!(
            "routed      {}",
            r.reason.as_deref().unwrap_or("no pipeline listens to it")
        ),
        (Stage::Pipeline, Outcome::Matched) => {
            format!("pipeline    {pipeline}: matched, queued for {channels}")
        }
        (Stage::Pipeline, Outcome::Filtered) => format!(
            "pipeline    {pipeline}: filtered out: {}",
            r.reason.as_deref().unwrap_or("")
        ),
        (Stage::Pipeline, _) => format!(
            "pipeline    {}: {}",
            r.pipeline.as_deref().unwrap_or("(all)"),
            r.reason.as_deref().unwrap_or(r.outcome.as_str())
        ),
        (Stage::Delivery, Outcome::Posted) if beyond_slack(r) => format!(
            "delivery    {channels} ({pipeline}): delivered, receipt {}",
            r.ts.as_deref().unwrap_or("?")
        ),
        (Stage::Delivery, Outcome::Posted) => format!(
            "delivery    {channels} ({pipeline}): posted, ts {}",
            r.ts.as_deref().unwrap_or("?")
        ),
        (Stage::Delivery, Outcome::Digested) => format!(
            "delivery    {channels} ({pipeline}): digested into the post ts {} ({} messages)",
            r.ts.as_deref().unwrap_or("?"),
            r.digest_of.unwrap_or(0)
        ),
        (Stage::Delivery, Outcome::AlreadyPosted) => format!(
            "delivery    {channels} ({pipeline}): already posted (ts {}), not posted again",
            r.ts.as_deref().unwrap_or("?")
        ),
        (Stage::Delivery, Outcome::Parked) => format!(
            "delivery    {channels} ({pipeline}): parked in the {}: {}",
            dlq_of(r).0,
            r.reason.as_deref().unwrap_or("")
        ),
        (Stage::Delivery, outcome) => format!(
            "delivery    {channels} ({pipeline}): {}, back in {}: {}",
            outcome.as_str().replace('_', " "),
            seconds(r.wait_ms.unwrap_or(0)),
            r.reason.as_deref().unwrap_or("")
        ),
    }
}

/// The lines under a record: its steps, Slack's answer, the permalink, the fix.
fn details(r: &Record) -> Vec<String> {
    let mut lines = Vec::new();
    for step in &r.steps {
        lines.push(match step {
            StepTrace::Filter {
                expr,
                passed,
                decided_by,
                error,
                seen,
            } => {
                let mut l = format!(
                    "filter.match {expr}: {}",
                    if *passed { "passed" } else { "false" }
                );
                if let Some(e) = error {
                    l.push_str(&format!(" (could not judge: {e})"));
                }
                if let Some(d) = decided_by.as_ref().filter(|_| !passed) {
                    l.push_str(&format!("; decided by {d}"));
                    if !seen.is_empty() {
                        l.push_str(&format!(", where {}", seen.join(", ")));
                    }
                }
                l
            }
            StepTrace::Enrich {
                entity,
                key,
                found,
                attached_as,
                attributes,
            } => match (key, found) {
                (None, _) => {
                    format!("enrich.entity {entity}: the event has no key field; nothing attached")
                }
                (Some(k), false) => format!("enrich.entity {k}: not found; nothing attached"),
                (Some(k), true) => format!(
                    "enrich.entity {k}: found, attached as {attached_as} ({})",
                    attributes.join(", ")
                ),
            },
            StepTrace::Stateful {
                kind, key, detail, ..
            } => match key {
                Some(k) => format!("{kind} {k}: {detail}"),
                None => format!("{kind}: {detail}"),
            },
        });
    }
    if r.stage == Stage::Delivery {
        let mut facts = Vec::new();
        if let Some(a) = r.attempt {
            facts.push(format!("receive {a}"));
        }
        if let Some(s) = &r.slack {
            facts.push(format!("Slack answered {s}"));
        }
        if matches!(r.outcome, Outcome::Posted | Outcome::Digested) {
            if let Some(w) = r.wait_ms {
                facts.push(format!("paced {}", seconds(w)));
            }
        }
        if !facts.is_empty() {
            lines.push(facts.join("; "));
        }
        if let Some(link) = &r.permalink {
            lines.push(link.clone());
        }
        // Why it was not posted again, or that a delivery was a repeat (sent again after an
        // unconfirmed attempt, on a platform that cannot be asked).
        if matches!(
            r.outcome,
            Outcome::AlreadyPosted | Outcome::Posted | Outcome::Digested
        ) {
            if let Some(reason) = &r.reason {
                lines.push(reason.clone());
            }
        }
        if let Some(hint) = &r.hint {
            lines.push(format!("fix: {hint}"));
        }
        if r.outcome == Outcome::Parked {
            lines.push(format!(
                "after the fix: `{}` (see `ingestlayer dlq list`)",
                dlq_of(r).1
            ));
        }
    }
    lines
}

fn seconds(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journey() -> Journey {
        let mut filtered = Record::new("web:e1", Stage::Pipeline, Outcome::Filtered, 1_000, "free")
            .pipeline("free-on-paid")
            .reason("filter.match \"plan == 'free'\" is false");
        filtered.steps.push(StepTrace::Filter {
            expr: "plan == 'free'".into(),
            passed: false,
            decided_by: Some("plan == 'free'".into()),
            error: None,
            seen: vec!["plan = \"pro\"".into()],
        });
        let mut matched = Record::new("web:e1", Stage::Pipeline, Outcome::Matched, 1_000, "exp")
            .pipeline("expansion");
        matched.channels = vec!["#alerts".into()];
        matched.steps.push(StepTrace::Enrich {
            entity: "user".into(),
            key: Some("user#u_42".into()),
            found: true,
            attached_as: "user".into(),
            attributes: vec!["account".into(), "plan".into()],
        });
        let mut paced = Record::new("web:e1", Stage::Delivery, Outcome::Paced, 1_500, "exp#0")
            .pipeline("expansion")
            .reason("the channel's next posting slot is later; waiting in the queue");
        paced.channels = vec!["#alerts".into()];
        paced.wait_ms = Some(2_000);
        let mut posted = Record::new("web:e1", Stage::Delivery, Outcome::Posted, 3_600, "exp#0")
            .pipeline("expansion");
        posted.channels = vec!["#alerts".into()];
        posted.ts = Some("1700000000.000100".into());
        posted.permalink = Some("https://acme.slack.com/archives/C1/p1700000000000100".into());
        posted.slack = Some("ok".into());
        posted.wait_ms = Some(400);
        posted.attempt = Some(2);
        Journey {
            id: "web:e1".into(),
            received: Some(Received {
                id: "web:e1".into(),
                name: "feature.used".into(),
                source: "web".into(),
                key_id: Some("il_abcdefgh".into()),
                received_at: "1970-01-01T00:00:00.5Z".into(),
                received_ms: 500,
                queued: true,
            }),
            records: vec![filtered, matched, paced, posted],
        }
    }

    #[test]
    fn the_timeline_names_the_filters_reason_the_enrichment_the_pacing_and_the_post() {
        let mut out = Vec::new();
        print(&journey(), &mut out);
        let text = String::from_utf8(out).unwrap();
        let expected = [
            "event web:e1  feature.used",
            "1970-01-01T00:00:00.500Z  received    from source \"web\" with API key il_abcdefgh",
            "1970-01-01T00:00:01.000Z  pipeline    free-on-paid: filtered out: filter.match \"plan == 'free'\" is false",
            "filter.match plan == 'free': false; decided by plan == 'free', where plan = \"pro\"",
            "1970-01-01T00:00:01.000Z  pipeline    expansion: matched, queued for #alerts",
            "enrich.entity user#u_42: found, attached as user (account, plan)",
            "1970-01-01T00:00:01.500Z  delivery    #alerts (expansion): paced, back in 2.0 s: the channel's next posting slot is later; waiting in the queue",
            "1970-01-01T00:00:03.600Z  delivery    #alerts (expansion): posted, ts 1700000000.000100",
            "receive 2; Slack answered ok; paced 400 ms",
            "https://acme.slack.com/archives/C1/p1700000000000100",
        ];
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        assert_eq!(lines, expected, "{text}");
    }

    #[test]
    fn a_parked_delivery_says_why_the_fix_and_the_redrive() {
        let mut j = journey();
        let mut parked = Record::new("web:e1", Stage::Delivery, Outcome::Parked, 4_000, "exp#0")
            .pipeline("expansion")
            .reason("channel paused: channel_not_found");
        parked.channels = vec!["#gone".into()];
        parked.hint = Some("create #gone or point the pipeline elsewhere".into());
        j.records = vec![parked];
        let mut out = Vec::new();
        print(&j, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "#gone (expansion): parked in the Slack DLQ: channel paused: channel_not_found"
            ),
            "{text}"
        );
        assert!(
            text.contains("fix: create #gone or point the pipeline elsewhere"),
            "{text}"
        );
        assert!(text.contains("ingestlayer dlq redrive"), "{text}");
    }

    #[test]
    fn a_delivery_sent_again_after_an_unconfirmed_attempt_says_it_was_a_repeat() {
        let mut j = journey();
        let mut resent = Record::new("web:e1", Stage::Delivery, Outcome::Posted, 4_000, "exp#1")
            .pipeline("expansion")
            .reason("sent again after an unconfirmed attempt");
        resent.channels = vec!["discord webhook (ops-discord)".into()];
        resent.ts = Some("1234567890".into());
        j.records = vec![resent];
        let mut out = Vec::new();
        print(&j, &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let at = lines
            .iter()
            .position(|l| l.contains("delivered, receipt 1234567890"))
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            lines.get(at + 1),
            Some(&"sent again after an unconfirmed attempt"),
            "{text}"
        );
    }

    #[test]
    fn a_journey_still_under_way_says_so() {
        let mut j = journey();
        j.records.truncate(3);
        let mut out = Vec::new();
        print(&j, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("not final yet"), "{text}");
        j.records.clear();
        let mut out = Vec::new();
        print(&j, &mut out);
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("no stage has recorded it yet"));
    }
}
