//! The emulator as the tests and `make dev` run it (infra/emulator/moto_server.py) keeps a
//! FIFO group's order as SQS does when its messages are handed back, as delivery hands back
//! what waits: the group comes back first message first, whole; and its sequence numbers
//! increase, as slack-delivery's backlog orders by them.

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
