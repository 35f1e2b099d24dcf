//! The delivery ledger in DynamoDB: a digest's keys claimed, recorded and released in one
//! request each, and every key answered as a single-key claim would answer it.

use std::time::Duration;

use ingestlayer::delivery::ledger::{Entry, Ledger, LedgerStore, CLAIM_LEASE};
use ingestlayer::ids::DeliveryKey;
use serde_json::Value;

use crate::harness::Stack;

fn keys(from: usize, to: usize) -> Vec<DeliveryKey> {
    (from..to)
        .map(|i| DeliveryKey::of(&format!("tests:e{i}"), "p", 0))
        .collect()
}

fn item<'a>(ledger: &'a [Value], key: &DeliveryKey) -> &'a Value {
    ledger
        .iter()
        .find(|i| i["pk"] == key.as_str())
        .unwrap_or_else(|| panic!("no ledger item for {key}: {ledger:#?}"))
}

#[tokio::test]
async fn a_digests_keys_are_claimed_recorded_and_released_in_one_request_each() {
    let s = Stack::new().await;
    let (client, requests) = s.counted_dynamo();
    let ledger = Ledger {
        client,
        table: s.res.deliveries_table.clone(),
    };

    // 45 fresh keys (one Block Kit digest's worth): one request claims them all.
    let digest = keys(0, 45);
    let entries = ledger.begin_all(&digest, 1_000).await;
    assert_eq!(requests.take(), 1, "one TransactWriteItems");
    assert!(
        entries.iter().all(|e| matches!(e, Ok(Entry::Clear))),
        "{entries:?}"
    );
    // Recorded as one post: one request.
    let recorded = ledger.delivered_all(&digest, "1.5", Some("C1")).await;
    assert_eq!(requests.take(), 1);
    assert!(recorded.iter().all(Result::is_ok), "{recorded:?}");
    let stored = s.ledger().await;
    assert_eq!(stored.len(), 45);
    for key in &digest {
        let i = item(&stored, key);
        assert_eq!(
            (&i["status"], &i["ts"], &i["channel_id"], &i["attempts"]),
            (
                &Value::from("delivered"),
                &Value::from("1.5"),
                &Value::from("C1"),
                &Value::from(1)
            ),
            "{i}"
        );
    }

    // A mix: delivered (0), left posting at 2_000 by an invocation that stopped (45),
    // released (46), fresh (47); claimed once the stopped claim's lease is over.
    assert!(matches!(
        ledger.begin(&keys(45, 46)[0], 2_000).await,
        Ok(Entry::Clear)
    ));
    assert!(matches!(
        ledger.begin(&keys(46, 47)[0], 2_000).await,
        Ok(Entry::Clear)
    ));
    let released = ledger.not_posted_all(&keys(46, 47)).await;
    assert!(released.iter().all(Result::is_ok), "{released:?}");
    requests.take();
    let mixed: Vec<DeliveryKey> = [keys(0, 1), keys(45, 48)].concat();
    let at = 2_000 + CLAIM_LEASE.as_millis() as i64 + 1;
    let entries = ledger.begin_all(&mixed, at).await;
    let entries: Vec<Entry> = entries.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        entries,
        vec![
            Entry::Delivered { ts: "1.5".into() },
            Entry::Uncertain { since_ms: 2_000 },
            Entry::Clear,
            Entry::Clear,
        ]
    );
    // The claim that met two taken keys, the claim of the two others, the stale key taken
    // over.
    assert_eq!(requests.take(), 3);
    let stored = s.ledger().await;
    let status = |k: &DeliveryKey| {
        let i = item(&stored, k);
        (
            i["status"].as_str().unwrap().to_owned(),
            i["attempts"].as_i64().unwrap(),
            i["since_ms"].as_i64().unwrap(),
        )
    };
    assert_eq!(
        status(&mixed[0]),
        ("delivered".into(), 1, 1_000),
        "untouched"
    );
    assert_eq!(
        status(&mixed[1]),
        ("posting".into(), 2, 2_000),
        "attempt counted"
    );
    assert_eq!(
        status(&mixed[2]),
        ("posting".into(), 2, at),
        "claimed again"
    );
    assert_eq!(status(&mixed[3]), ("posting".into(), 1, at));

    // Releasing a delivered key leaves it delivered; the posting ones are released, in one
    // request after the one that met the delivered key.
    let released = ledger.not_posted_all(&mixed).await;
    assert!(released.iter().all(Result::is_ok), "{released:?}");
    assert_eq!(requests.take(), 2);
    let stored = s.ledger().await;
    let status = |k: &DeliveryKey| item(&stored, k)["status"].as_str().unwrap().to_owned();
    assert_eq!(
        mixed.iter().map(status).collect::<Vec<_>>(),
        ["delivered", "not_posted", "not_posted", "not_posted"]
    );

    // More than a transaction holds (100): one request per hundred.
    let many = keys(100, 260);
    let entries = ledger.begin_all(&many, at).await;
    assert_eq!(requests.take(), 2);
    assert!(entries.iter().all(|e| matches!(e, Ok(Entry::Clear))));
    assert_eq!(s.ledger().await.len(), 48 + 160);
}

#[tokio::test]
async fn a_ledger_that_cannot_be_reached_claims_nothing_and_says_so_for_each_key() {
    let s = Stack::new().await;
    let ledger = Ledger {
        client: s.dynamo.clone(),
        table: format!("{}-missing", s.res.deliveries_table),
    };
    let entries = ledger.begin_all(&keys(0, 3), 1_000).await;
    assert_eq!(entries.len(), 3);
    for e in &entries {
        let e = e.as_ref().unwrap_err();
        assert!(
            e.to_string().contains("claiming deliveries in the ledger"),
            "{e}"
        );
    }
    assert!(s.ledger().await.is_empty());
}

#[tokio::test]
async fn a_live_claim_is_waited_for_a_stale_or_unsure_one_is_taken_over_by_one_invocation() {
    let s = Stack::new().await;
    let ledger = Ledger {
        client: s.dynamo.clone(),
        table: s.res.deliveries_table.clone(),
    };
    let key = &keys(0, 1)[0];
    let lease = CLAIM_LEASE.as_millis() as i64;
    let stored = |items: Vec<Value>| {
        let i = item(&items, key).clone();
        (
            i["status"].as_str().unwrap().to_owned(),
            i["attempts"].as_i64().unwrap(),
            i["since_ms"].as_i64().unwrap(),
            i["claimed_ms"].as_i64().unwrap(),
        )
    };

    assert_eq!(ledger.begin(key, 1_000).await.unwrap(), Entry::Clear);
    // Another invocation a second later: the claim may be posting now. It waits out the
    // rest of the lease and neither posts nor checks the history; nothing is written.
    assert_eq!(
        ledger.begin(key, 2_000).await.unwrap(),
        Entry::Busy {
            wait: CLAIM_LEASE - Duration::from_secs(1)
        }
    );
    assert_eq!(
        stored(s.ledger().await),
        ("posting".into(), 1, 1_000, 1_000)
    );

    // The lease is over: the invocation stopped. One taker checks the history from when the
    // stopped attempt began, and holds the key; a second one at the same moment waits.
    let later = 1_000 + lease;
    assert_eq!(
        ledger.begin(key, later).await.unwrap(),
        Entry::Uncertain { since_ms: 1_000 }
    );
    assert_eq!(
        stored(s.ledger().await),
        ("posting".into(), 2, 1_000, later)
    );
    assert!(matches!(
        ledger.begin(key, later).await.unwrap(),
        Entry::Busy { .. }
    ));

    // The history could not tell: the taker lets go, unsure. The next attempt checks the
    // history at once, from the same start.
    assert!(ledger.unsure(key).await.is_ok());
    assert_eq!(stored(s.ledger().await).0, "unsure");
    assert_eq!(
        ledger.begin(key, later + 1).await.unwrap(),
        Entry::Uncertain { since_ms: 1_000 }
    );
    assert_eq!(
        stored(s.ledger().await),
        ("posting".into(), 3, 1_000, later + 1)
    );

    // Delivered: neither unsure nor released changes it.
    ledger.delivered(key, "9.9", None).await.unwrap();
    ledger.unsure(key).await.unwrap();
    ledger.not_posted(key).await.unwrap();
    assert_eq!(
        ledger.begin(key, later + 2).await.unwrap(),
        Entry::Delivered { ts: "9.9".into() }
    );
}
