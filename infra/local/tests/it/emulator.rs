//! The emulator as the tests and `make dev` run it (infra/emulator/moto_server.py) keeps a
//! FIFO group's order as SQS does when its messages are handed back, as delivery hands back
//! what waits: the group comes back first message first, whole; and its sequence numbers
//! increase, as slack-delivery's backlog orders by them; a long poll returns a group's
//! next message as soon as its batch is deleted; and a cancelled DynamoDB transaction
//! leaves every item it named as it was (the launcher puts back only those items).

use std::time::Duration;

use crate::harness::Stack;

#[tokio::test]
async fn a_fifo_group_handed_back_comes_back_in_order() {
    let s = Stack::new().await;
    let url = &s.res.destinations_queue_url;
    for body in ["a", "c", "b"] {
        s.sqs
            .send_message()
            .queue_url(url)
            .message_body(body)
            .message_group_id("g")
            .message_deduplication_id(format!("{body}-{}", ulid::Ulid::new()))
            .send()
            .await
            .unwrap();
    }
    let receive = || async {
        s.sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    };
    let got = receive().await;
    // SQS: a group's sequence numbers increase in the order its messages were sent.
    let seqs: Vec<u128> = got
        .iter()
        .map(|m| {
            m.attributes()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::SequenceNumber)
                })
                .and_then(|s| s.parse().ok())
                .unwrap()
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let bodies = |m: &[aws_sdk_sqs::types::Message]| -> Vec<String> {
        m.iter().filter_map(|m| m.body.clone()).collect()
    };
    assert_eq!(bodies(&got), ["a", "c", "b"]);
    for m in &got {
        s.sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(m.receipt_handle().unwrap())
            .visibility_timeout(1)
            .send()
            .await
            .unwrap();
    }
    assert!(receive().await.is_empty(), "the group is in flight");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(bodies(&receive().await), ["a", "c", "b"]);
}

/// SQS's long poll returns as soon as a message can be returned: a FIFO group's next message
/// once the batch in flight is deleted. moto's own loop kept the group "in flight" for the
/// whole wait and returned nothing.
#[tokio::test]
async fn a_long_poll_returns_a_groups_next_message_once_its_batch_is_deleted() {
    let s = Stack::new().await;
    let url = s.res.destinations_queue_url.clone();
    for body in ["first", "second"] {
        s.sqs
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .message_group_id("g")
            .message_deduplication_id(format!("{body}-{}", ulid::Ulid::new()))
            .send()
            .await
            .unwrap();
    }
    let first = s
        .sqs
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].body(), Some("first"));
    let sqs = s.sqs.clone();
    let poll_url = url.clone();
    let poll = tokio::spawn(async move {
        sqs.receive_message()
            .queue_url(&poll_url)
            .wait_time_seconds(5)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.sqs
        .delete_message()
        .queue_url(&url)
        .receipt_handle(first[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    let got = poll.await.unwrap();
    assert_eq!(
        got.iter().filter_map(|m| m.body()).collect::<Vec<_>>(),
        ["second"],
        "the long poll saw the group released"
    );
}

/// The launcher's SES faults: a fault queued for an address is taken by the next SendEmail
/// to it (an email to another address passes untouched); a 429 answers
/// TooManyRequestsException; `after_send` keeps the email before answering. `ses-sent` lists
/// what SES kept, per address.
#[tokio::test]
async fn ses_faults_fail_the_next_email_to_their_address_only() {
    use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
    let s = Stack::new().await;
    // Each call once: the SDK would retry a 429 or a 500 by itself, taking the next fault.
    let ses = aws_sdk_sesv2::Client::from_conf(
        aws_sdk_sesv2::config::Builder::from(&s.sdk)
            .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled())
            .build(),
    );
    let tag = ulid::Ulid::new().to_string().to_lowercase();
    let from = format!("alerts-{tag}@acme.example");
    let (to, other) = (
        format!("ops-{tag}@acme.example"),
        format!("sales-{tag}@acme.example"),
    );
    ses.create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .unwrap();
    let faults = serde_json::json!([
        {"status": 429, "to": to},
        {"status": 500, "after_send": true, "to": to}
    ]);
    let url = format!("{}/_ingestlayer/ses-faults", crate::harness::endpoint());
    let http = reqwest::Client::new();
    assert_eq!(
        http.post(&url).json(&faults).send().await.unwrap().status(),
        204
    );
    let bad = http
        .post(&url)
        .body("[{\"status\": 404}]")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "an unknown fault is refused");
    let send = |address: String| {
        let ses = ses.clone();
        let from = from.clone();
        async move {
            let text = Content::builder().data("hello").build().unwrap();
            ses.send_email()
                .from_email_address(from)
                .destination(Destination::builder().to_addresses(address).build())
                .content(
                    EmailContent::builder()
                        .simple(
                            Message::builder()
                                .subject(Content::builder().data("s").build().unwrap())
                                .body(Body::builder().text(text).build())
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
        }
    };
    assert!(send(other.clone()).await.is_ok(), "another address passes");
    let throttled = send(to.clone()).await.unwrap_err();
    assert_eq!(
        throttled.raw_response().map(|r| r.status().as_u16()),
        Some(429)
    );
    assert!(
        throttled
            .as_service_error()
            .is_some_and(|e| e.is_too_many_requests_exception()),
        "{throttled:?}"
    );
    let lost = send(to.clone()).await.unwrap_err();
    assert_eq!(lost.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert_eq!(
        crate::outbound::sent_emails(&to).await.len(),
        1,
        "the 500 came after the email was kept"
    );
    assert!(send(to.clone()).await.is_ok(), "the faults are used up");

    // `ses-sent` answers each address its own emails, and all of them without `to`.
    let sent = crate::outbound::sent_emails(&to).await;
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_eq!(sent[0]["source"], from.as_str());
    assert_eq!(sent[0]["subject"], "s");
    assert_eq!(
        sent[0]["destinations"]["ToAddresses"],
        serde_json::json!([to])
    );
    assert_eq!(crate::outbound::sent_emails(&other).await.len(), 1);
    let sent_url = format!("{}/_ingestlayer/ses-sent", crate::harness::endpoint());
    let all: Vec<serde_json::Value> = http
        .get(&sent_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for address in [&to, &other] {
        assert!(
            all.iter()
                .any(|m| m["destinations"]["ToAddresses"][0] == address.as_str()),
            "{address} among all sent"
        );
    }
    let wrong = http.post(&sent_url).send().await.unwrap();
    assert_eq!(wrong.status(), 405, "ses-sent is read only");
}

#[tokio::test]
async fn a_cancelled_transaction_leaves_every_item_it_named_as_it_was() {
    use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

    let s = Stack::new().await;
    let table = s.res.deliveries_table.clone();
    let pk = |v: &str| AttributeValue::S(v.into());
    for (key, status) in [("a", "posting"), ("b", "delivered")] {
        s.dynamo
            .put_item()
            .table_name(&table)
            .item("pk", pk(key))
            .item("status", pk(status))
            .send()
            .await
            .unwrap();
    }
    let set = |key: &str, condition: Option<&str>| {
        let u = Update::builder()
            .table_name(&table)
            .key("pk", pk(key))
            .update_expression("SET #s = :v")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":v", pk("changed"));
        let u = match condition {
            Some(c) => u
                .condition_expression(c)
                .expression_attribute_values(":p", pk("posting")),
            None => u,
        };
        TransactWriteItem::builder()
            .update(u.build().unwrap())
            .build()
    };
    let put_new = TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(&table)
                .item("pk", pk("c"))
                .item("status", pk("new"))
                .build()
                .unwrap(),
        )
        .build();
    // a is changed, c is created, b's condition fails: nothing of it stays.
    let e = s
        .dynamo
        .transact_write_items()
        .transact_items(set("a", None))
        .transact_items(put_new.clone())
        .transact_items(set("b", Some("#s = :p")))
        .send()
        .await
        .unwrap_err();
    let reasons: Vec<Option<String>> = match e.as_service_error() {
        Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => c
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().map(str::to_owned))
            .collect(),
        other => panic!("not a cancellation: {other:?}"),
    };
    assert_eq!(
        reasons,
        [
            Some("None".into()),
            Some("None".into()),
            Some("ConditionalCheckFailed".into())
        ]
    );
    let status = |items: &[serde_json::Value], key: &str| {
        items
            .iter()
            .find(|i| i["pk"] == key)
            .map(|i| i["status"].as_str().unwrap().to_owned())
    };
    let items = s.ledger().await;
    assert_eq!(status(&items, "a").as_deref(), Some("posting"));
    assert_eq!(status(&items, "b").as_deref(), Some("delivered"));
    assert_eq!(status(&items, "c"), None, "{items:?}");
    assert_eq!(items.len(), 2);

    // Without the failing update, all of it is written.
    s.dynamo
        .transact_write_items()
        .transact_items(set("a", Some("#s = :p")))
        .transact_items(put_new)
        .send()
        .await
        .unwrap();
    let items = s.ledger().await;
    assert_eq!(status(&items, "a").as_deref(), Some("changed"));
    assert_eq!(status(&items, "c").as_deref(), Some("new"));
}
