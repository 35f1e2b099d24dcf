//! The emulator as the tests and `make dev` run it (infra/emulator/moto_server.py) keeps a
//! FIFO group's order as SQS does when its messages are handed back, as delivery hands back
//! what waits: the group comes back first message first, whole; and its sequence numbers
//! increase, as slack-delivery's backlog orders by them; a long poll returns a group's
//! next message as soon as its batch is deleted; a cancelled DynamoDB transaction leaves
//! every item it named as it was (the launcher puts back only those items); and what the
//! launcher makes cheaper answers as before: a Query reads its partition in key order, a
//! send deduplicates by content when the queue says so.

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

/// A Query on a table's own key reads that partition alone here (moto sorted every item of
/// the table first): the answer is still DynamoDB's, in key order either way, paged by
/// Limit and ExclusiveStartKey, with a key condition on the sort key, and empty for a
/// partition with nothing in it.
#[tokio::test]
async fn a_query_answers_its_partition_in_key_order_whatever_else_the_table_holds() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use std::collections::HashMap;

    let s = Stack::new().await;
    let table = s.res.buffer_table.clone();
    let run = ulid::Ulid::new();
    let (a, b) = (format!("buf#a-{run}"), format!("buf#b-{run}"));
    // Written out of order, the two partitions interleaved.
    for sk in ["3", "1", "5", "2", "4"] {
        for pk in [&a, &b] {
            s.dynamo
                .put_item()
                .table_name(&table)
                .item("pk", AttributeValue::S(pk.clone()))
                .item("sk", AttributeValue::S(sk.into()))
                .item("of", AttributeValue::S(format!("{pk}/{sk}")))
                .send()
                .await
                .unwrap();
        }
    }
    let query = |pk: String,
                 after: Option<&'static str>,
                 forward: bool,
                 limit: Option<i32>,
                 start: Option<HashMap<String, AttributeValue>>| {
        let s = &s;
        let table = table.clone();
        async move {
            let mut q = s
                .dynamo
                .query()
                .table_name(table)
                .scan_index_forward(forward)
                .set_limit(limit)
                .set_exclusive_start_key(start)
                .expression_attribute_values(":pk", AttributeValue::S(pk));
            q = match after {
                Some(sk) => q
                    .key_condition_expression("pk = :pk AND sk > :after")
                    .expression_attribute_values(":after", AttributeValue::S(sk.into())),
                None => q.key_condition_expression("pk = :pk"),
            };
            let out = q.send().await.unwrap();
            let of: Vec<String> = out
                .items()
                .iter()
                .map(|i| i["of"].as_s().unwrap().clone())
                .collect();
            (of, out.last_evaluated_key().cloned())
        }
    };
    let of = |pk: &str, sks: &[&str]| -> Vec<String> {
        sks.iter().map(|sk| format!("{pk}/{sk}")).collect()
    };

    let (all, more) = query(a.clone(), None, true, None, None).await;
    assert_eq!(all, of(&a, &["1", "2", "3", "4", "5"]));
    assert_eq!(more, None);
    let (backwards, _) = query(b.clone(), None, false, None, None).await;
    assert_eq!(backwards, of(&b, &["5", "4", "3", "2", "1"]));
    let (after, _) = query(a.clone(), Some("2"), true, None, None).await;
    assert_eq!(after, of(&a, &["3", "4", "5"]));

    let (mut paged, mut start) = (Vec::new(), None);
    loop {
        let (page, next) = query(b.clone(), None, true, Some(2), start).await;
        assert!(page.len() <= 2, "{page:?}");
        paged.extend(page);
        match next {
            Some(key) => start = Some(key),
            None => break,
        }
    }
    assert_eq!(paged, of(&b, &["1", "2", "3", "4", "5"]));

    let (none, _) = query(format!("buf#c-{run}"), None, true, None, None).await;
    assert!(none.is_empty(), "{none:?}");

    // A table keyed by its partition alone: the one item.
    s.dynamo
        .put_item()
        .table_name(&s.res.deliveries_table)
        .item("pk", AttributeValue::S(a.clone()))
        .item("of", AttributeValue::S("the delivery".into()))
        .send()
        .await
        .unwrap();
    let out = s
        .dynamo
        .query()
        .table_name(&s.res.deliveries_table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(a.clone()))
        .send()
        .await
        .unwrap();
    let found: Vec<&str> = out
        .items()
        .iter()
        .map(|i| i["of"].as_s().unwrap().as_str())
        .collect();
    assert_eq!(found, ["the delivery"]);
}

/// SendMessage and SendMessageBatch read their queue's ContentBasedDeduplication here
/// without counting the queue's messages; the setting still decides, FIFO's checks still
/// hold (a batch is checked whole before any of it is sent), and the queue's attributes
/// still count its messages everywhere else.
#[tokio::test]
async fn a_send_still_deduplicates_by_content_and_the_queue_still_counts_its_messages() {
    use aws_sdk_sqs::types::QueueAttributeName;

    let s = Stack::new().await;
    let queue = |content: bool| {
        let s = &s;
        async move {
            s.sqs
                .create_queue()
                .queue_name(format!("dedup-{}-{content}.fifo", ulid::Ulid::new()))
                .attributes(QueueAttributeName::FifoQueue, "true")
                .attributes(
                    QueueAttributeName::ContentBasedDeduplication,
                    content.to_string(),
                )
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap()
        }
    };
    let send = |url: String, body: &'static str, dedup: Option<String>| {
        let s = &s;
        async move {
            s.sqs
                .send_message()
                .queue_url(url)
                .message_body(body)
                .message_group_id("g")
                .set_message_deduplication_id(dedup)
                .send()
                .await
        }
    };
    let counted = |url: String| {
        let s = &s;
        async move {
            s.sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::All)
                .send()
                .await
                .unwrap()
                .attributes()
                .unwrap()[&QueueAttributeName::ApproximateNumberOfMessages]
                .parse::<usize>()
                .unwrap()
        }
    };

    let by_content = queue(true).await;
    for body in ["same", "same", "other"] {
        send(by_content.clone(), body, None).await.unwrap();
    }
    assert_eq!(
        counted(by_content).await,
        2,
        "the second \"same\" was a duplicate"
    );

    let by_id = queue(false).await;
    let e = send(by_id.clone(), "no id", None).await.unwrap_err();
    assert!(
        format!("{:?}", e.into_service_error()).contains("ContentBasedDeduplication"),
        "a queue without content-based deduplication wants an id"
    );
    for (body, id) in [("one", "1"), ("one again", "1"), ("two", "2")] {
        send(by_id.clone(), body, Some(id.into())).await.unwrap();
    }
    assert_eq!(
        counted(by_id.clone()).await,
        2,
        "the second id 1 was a duplicate"
    );

    let batch = |url: String, entries: &[(&str, Option<&str>)]| {
        let s = &s;
        let entries: Vec<_> = entries
            .iter()
            .enumerate()
            .map(|(i, (body, id))| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(format!("e{i}"))
                    .message_body(*body)
                    .message_group_id("g")
                    .set_message_deduplication_id(id.map(str::to_owned))
                    .build()
                    .unwrap()
            })
            .collect();
        async move {
            s.sqs
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
        }
    };
    let e = batch(by_id.clone(), &[("three", Some("3")), ("no id", None)])
        .await
        .unwrap_err();
    assert!(
        format!("{:?}", e.into_service_error()).contains("ContentBasedDeduplication"),
        "a batch with a message without an id is refused"
    );
    assert_eq!(
        counted(by_id.clone()).await,
        2,
        "nothing of the refused batch was sent"
    );
    batch(
        by_id.clone(),
        &[("three", Some("3")), ("two again", Some("2"))],
    )
    .await
    .unwrap();
    assert_eq!(counted(by_id).await, 3, "the batch's id 2 was a duplicate");
    let by_content = queue(true).await;
    batch(by_content.clone(), &[("a", None), ("a", None), ("b", None)])
        .await
        .unwrap();
    assert_eq!(
        counted(by_content).await,
        2,
        "the batch's second \"a\" was a duplicate"
    );
}
