//! template.yaml's operations side: alarms that page someone, the topic they notify, the
//! dashboard, traces and access logs. cfn-lint (in `make test`'s template checks) proves the
//! template valid; these tests prove it says what an operator is promised.

use serde_norway::Value;

fn template() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
        .unwrap();
    serde_norway::from_str(&text).unwrap()
}

/// `!Ref X` (short form) as the name it refers to.
fn ref_name(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) if t.tag == "Ref" => t.value.as_str().map(str::to_owned),
        _ => None,
    }
}

/// `!GetAtt X.QueueName` as `X`.
fn queue_of(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) if t.tag == "GetAtt" => t
            .value
            .as_str()
            .and_then(|s| s.strip_suffix(".QueueName"))
            .map(str::to_owned),
        _ => None,
    }
}

fn alarms(t: &Value) -> Vec<(String, Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .map(|(k, r)| (k.as_str().unwrap().to_owned(), r["Properties"].clone()))
        .collect()
}

/// The alarm on `metric` whose dimension `dimension` refers to `target`.
fn alarm_on(t: &Value, metric: &str, dimension: &str, target: &str) -> Option<Value> {
    alarms(t).into_iter().map(|(_, p)| p).find(|p| {
        p["MetricName"].as_str() == Some(metric)
            && p["Dimensions"].as_sequence().is_some_and(|d| {
                d.iter().any(|d| {
                    d["Name"].as_str() == Some(dimension)
                        && (ref_name(&d["Value"]).as_deref() == Some(target)
                            || queue_of(&d["Value"]).as_deref() == Some(target))
                })
            })
    })
}

#[test]
fn every_alarm_notifies_the_alarm_topic_and_says_what_to_do() {
    let t = template();
    let all = alarms(&t);
    assert!(all.len() >= 12, "{} alarms", all.len());
    for (name, p) in all {
        let actions = p["AlarmActions"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name}"));
        assert!(
            actions
                .iter()
                .any(|a| ref_name(a).as_deref() == Some("AlarmTopic")),
            "{name} does not notify AlarmTopic"
        );
        assert!(
            p["AlarmDescription"].as_str().is_some() || p["AlarmDescription"].is_tagged(),
            "{name} has no description"
        );
        assert_eq!(
            p["TreatMissingData"].as_str(),
            Some("notBreaching"),
            "{name}"
        );
    }
}

trait Tagged {
    fn is_tagged(&self) -> bool;
}

impl Tagged for Value {
    fn is_tagged(&self) -> bool {
        matches!(self, Value::Tagged(_))
    }
}

#[test]
fn either_dlq_not_empty_and_an_old_slack_backlog_raise_alarms() {
    let t = template();
    for dlq in ["EventsDLQ", "SlackDLQ"] {
        let a = alarm_on(&t, "ApproximateNumberOfMessagesVisible", "QueueName", dlq)
            .unwrap_or_else(|| panic!("no alarm on {dlq}"));
        assert_eq!(a["Threshold"].as_u64(), Some(0));
        assert_eq!(
            a["ComparisonOperator"].as_str(),
            Some("GreaterThanThreshold")
        );
    }
    // The Slack queue's oldest message, and the drain queue's oldest ticket (a busy
    // channel's backlog waiting that long).
    for queue in ["SlackQueue", "SlackDrainQueue"] {
        let age = alarm_on(&t, "ApproximateAgeOfOldestMessage", "QueueName", queue)
            .unwrap_or_else(|| panic!("no alarm on the age of {queue}'s oldest message"));
        assert_eq!(
            ref_name(&age["Threshold"]).as_deref(),
            Some("SlackBacklogAlarmSeconds")
        );
    }
    assert_eq!(
        t["Parameters"]["SlackBacklogAlarmSeconds"]["Default"].as_u64(),
        Some(300),
        "five minutes by default"
    );
}

#[test]
fn the_warehouse_dlq_and_its_lag_raise_alarms() {
    let t = template();
    let dlq = alarm_on(
        &t,
        "ApproximateNumberOfMessagesVisible",
        "QueueName",
        "WarehouseDLQ",
    )
    .expect("no alarm on the warehouse DLQ");
    assert_eq!(dlq["Threshold"].as_u64(), Some(0));
    let lag = alarm_on(
        &t,
        "ApproximateAgeOfOldestMessage",
        "QueueName",
        "WarehouseQueue",
    )
    .expect("no alarm on the warehouse's oldest unwritten event");
    assert_eq!(
        ref_name(&lag["Threshold"]).as_deref(),
        Some("WarehouseLagAlarmSeconds")
    );
}

#[test]
fn every_function_alarms_on_errors_and_throttles() {
    let t = template();
    let functions: Vec<String> = t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(k, _)| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(functions.len(), 6);
    for f in &functions {
        for metric in ["Errors", "Throttles"] {
            assert!(
                alarm_on(&t, metric, "FunctionName", f).is_some(),
                "no {metric} alarm on {f}"
            );
        }
    }
}

#[test]
fn the_ingest_5xx_rate_alarm_divides_5xx_by_requests_of_the_http_api() {
    let t = template();
    let (_, a) = alarms(&t)
        .into_iter()
        .find(|(_, p)| {
            p["Metrics"].as_sequence().is_some_and(|m| {
                m.iter()
                    .any(|m| m["MetricStat"]["Metric"]["MetricName"].as_str() == Some("5xx"))
            })
        })
        .expect("no 5xx alarm");
    let metrics = a["Metrics"].as_sequence().unwrap();
    let expr = metrics
        .iter()
        .find_map(|m| m["Expression"].as_str())
        .unwrap();
    assert!(expr.contains("errors / requests"), "{expr}");
    for m in metrics.iter().filter(|m| m["MetricStat"].is_mapping()) {
        let dims = m["MetricStat"]["Metric"]["Dimensions"]
            .as_sequence()
            .unwrap();
        assert_eq!(ref_name(&dims[0]["Value"]).as_deref(), Some("HttpApi"));
    }
}

#[test]
fn an_alarm_email_subscribes_only_when_given() {
    let t = template();
    let sub = &t["Resources"]["AlarmEmailSubscription"];
    assert_eq!(sub["Condition"].as_str(), Some("HasAlarmEmail"));
    assert_eq!(sub["Properties"]["Protocol"].as_str(), Some("email"));
    assert_eq!(
        ref_name(&sub["Properties"]["Endpoint"]).as_deref(),
        Some("AlarmEmail")
    );
    assert_eq!(t["Parameters"]["AlarmEmail"]["Default"].as_str(), Some(""));
    assert_eq!(
        ref_name(&t["Resources"]["AlarmTopic"]["Properties"]["KmsMasterKeyId"]).as_deref(),
        Some("StackKey"),
        "the topic is encrypted under the stack's key"
    );
    let key_policy =
        serde_norway::to_string(&t["Resources"]["StackKey"]["Properties"]["KeyPolicy"]).unwrap();
    assert!(
        key_policy.contains("cloudwatch.amazonaws.com"),
        "CloudWatch may use the key to publish to the encrypted topic"
    );
}

#[test]
fn the_dashboard_shows_every_queue_and_function() {
    let t = template();
    let body = match &t["Resources"]["Dashboard"]["Properties"]["DashboardBody"] {
        Value::Tagged(s) => s.value.as_str().unwrap().to_owned(),
        other => panic!("{other:?}"),
    };
    for name in [
        "EventsQueue",
        "SlackQueue",
        "SlackDrainQueue",
        "EventsDLQ",
        "SlackDLQ",
        "WarehouseQueue",
        "WarehouseDLQ",
        "WarehouseFunction",
        "IngestFunction",
        "PipelineFunction",
        "SlackDeliveryFunction",
        "DestinationsQueue",
        "DestinationsDLQ",
        "DestinationDeliveryFunction",
        "SlackConnectFunction",
        "HttpApi",
    ] {
        assert!(
            body.contains(&format!("${{{name}")),
            "the dashboard misses {name}"
        );
    }
    // The functions' own metrics (journey::metrics), under the names they are emitted with.
    for metric in [
        "events_accepted",
        "events_refused",
        "events_matched",
        "events_filtered",
        "messages_posted",
        "messages_digested",
        "messages_parked",
        "slack_latency_ms",
        "pacing_wait_ms",
        "end_to_end_ms",
    ] {
        assert!(body.contains(metric), "the dashboard misses {metric}");
    }
    let json_body = body.replace("${AWS::Region}", "r");
    let re = regex_free_subs(&json_body);
    let parsed: serde_json::Value = serde_json::from_str(&re).expect("the body is JSON");
    assert!(parsed["widgets"].as_array().unwrap().len() >= 10);
}

/// The dashboard body with `${…}` substitutions replaced by a plain word.
fn regex_free_subs(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').unwrap();
        out.push('x');
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn functions_are_traced_and_the_http_api_logs_each_request() {
    let t = template();
    assert_eq!(t["Globals"]["Function"]["Tracing"].as_str(), Some("Active"));
    let logs = &t["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"];
    let format = logs["Format"].as_str().unwrap();
    for field in ["$context.requestId", "$context.status", "$context.routeKey"] {
        assert!(format.contains(field), "{field}");
    }
    assert!(
        !format.contains("querystring") && !format.contains("header"),
        "an access log never carries a query (signed links) or a header (credentials)"
    );
}
