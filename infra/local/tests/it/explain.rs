//! `ingestlayer explain ID`, as its binary, against a local stack whose functions wrote the
//! events' journeys as they ran: the filter's reason for an event filtered out, the post's ts
//! and permalink for a posted one, the fix for a parked one.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{posted_event_ids, registered, run, Stack};

async fn send(s: &Stack, id: &str, user: &str, feature: &str) -> String {
    let event = json!({"name": "feature.used", "id": id,
        "data": {"user_id": user, "feature": feature, "count": 1, "plan": "pro"}});
    let (status, body) = s.post("/v1/events", &event.to_string()).await;
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn explain_names_the_filters_reason_the_enrichment_and_the_posts_ts_and_permalink() {
    let s = registered().await;
    let posted_id = send(&s, "exp-1", "u_42", "export").await;
    let filtered_id = send(&s, "exp-2", "u_42", "search").await;
    assert!(
        s.pump_until(Duration::from_secs(15), |s| !s
            .standin
            .messages_in("#alerts")
            .is_empty())
            .await,
        "nothing posted"
    );
    let post = s.standin.messages_in("#alerts").remove(0);

    let posted = run(&s, &["explain", &posted_id]);
    assert_eq!(posted.code, Some(0), "{}", posted.stderr);
    let text = posted.stdout;
    assert!(
        text.contains("received    from source \"tests\" with API key il_"),
        "{text}"
    );
    assert!(
        text.contains("pipeline    feature-usage-to-alerts: matched, queued for #alerts"),
        "{text}"
    );
    assert!(
        text.contains("enrich.entity user#u_42: found, attached as user (account, plan, owner)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "delivery    #alerts (feature-usage-to-alerts): posted, ts {}",
            post.ts
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "/archives/{}/p{}",
            post.channel_id,
            post.ts.replace('.', "")
        )),
        "the permalink: {text}"
    );
    assert!(text.contains("Slack answered ok"), "{text}");

    let filtered = run(&s, &["explain", &filtered_id, "--json"]);
    assert_eq!(filtered.code, Some(0), "{}", filtered.stderr);
    let journey: Value = serde_json::from_str(&filtered.stdout).unwrap();
    assert_eq!(journey["received"]["source"], "tests");
    let records = journey["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{journey}");
    assert_eq!(records[0]["outcome"], "filtered");
    assert_eq!(records[0]["pipeline"], "feature-usage-to-alerts");
    assert_eq!(
        records[0]["reason"],
        "filter.match \"feature in {export, api, webhook}\" is false"
    );
    let step = &records[0]["steps"][0];
    assert_eq!(step["passed"], false);
    assert_eq!(step["decided_by"], "feature in {export, api, webhook}");
    assert_eq!(step["seen"], json!(["feature = \"search\""]));
    let text = run(&s, &["explain", &filtered_id]).stdout;
    assert!(
        text.contains("feature-usage-to-alerts: filtered out: filter.match \"feature in {export, api, webhook}\" is false"),
        "{text}"
    );
    assert!(
        text.contains("decided by feature in {export, api, webhook}, where feature = \"search\""),
        "{text}"
    );

    let unknown = run(&s, &["explain", "tests:nope"]);
    assert_ne!(unknown.code, Some(0));
    assert!(
        unknown.stderr.contains("no event \"tests:nope\""),
        "{}",
        unknown.stderr
    );
}

#[tokio::test]
async fn explain_says_why_a_message_was_parked_and_what_fixes_it() {
    let s = registered().await;
    s.standin.create_channel("secret", true, false);
    let mut p = ingestlayer_local::seed::example_pipeline("#secret");
    p["id"] = json!("to-secret");
    s.put_pipeline(&p).await;
    let id = send(&s, "sec-1", "u_42", "api").await;
    s.pump().await;

    let text = run(&s, &["explain", &id]).stdout;
    assert!(
        text.contains("#secret (to-secret): parked in the Slack DLQ"),
        "{text}"
    );
    assert!(text.contains("fix: invite the app to #secret"), "{text}");
    assert!(text.contains("Slack answered not_in_channel"), "{text}");
    assert!(text.contains("ingestlayer dlq redrive"), "{text}");
}

#[tokio::test]
async fn explain_names_the_digest_post_that_carried_an_event_of_a_busy_channels_backlog() {
    let s = registered().await;
    // A burst of 30: full batches wait in the channel's backlog and go out in digests.
    let events: Vec<Value> = (0..30)
        .map(|i| {
            json!({"name": "feature.used", "id": format!("dig-{i:02}"),
                "data": {"user_id": "u_42", "feature": "export", "count": i, "plan": "pro"}})
        })
        .collect();
    let (status, body) = s
        .post("/v1/events/batch", &json!({ "events": events }).to_string())
        .await;
    assert_eq!(status, 202, "{body}");
    assert!(
        s.pump_until(Duration::from_secs(30), |s| posted_event_ids(&s.alerts())
            .len()
            >= 30)
            .await,
        "the burst was not posted"
    );
    let id = "tests:dig-17";
    let posts = s.alerts();
    let post = posts
        .iter()
        .find(|p| {
            posted_event_ids(std::slice::from_ref(*p))
                .iter()
                .any(|e| e == id)
        })
        .expect("a post carried the event");
    let carried = posted_event_ids(std::slice::from_ref(post)).len();
    assert!(carried > 1, "the event went out in a digest, not alone");

    let text = run(&s, &["explain", id]).stdout;
    assert!(
        text.contains(&format!(
            "delivery    #alerts (feature-usage-to-alerts): digested into the post ts {} ({carried} messages)",
            post.ts
        )),
        "{text}"
    );
    // It waited in the backlog first, and says so.
    assert!(
        text.contains("waiting in its backlog to go out in its next digest"),
        "{text}"
    );
    let json: Value = serde_json::from_str(&run(&s, &["explain", id, "--json"]).stdout).unwrap();
    let digested: Vec<&Value> = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "digested")
        .collect();
    assert_eq!(digested.len(), 1, "{json}");
    assert_eq!(digested[0]["ts"], post.ts.as_str());
    assert_eq!(digested[0]["digest_of"], carried);
}
