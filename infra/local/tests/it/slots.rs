//! A channel's posting slot in DynamoDB: taken when due, taken ahead when it begins
//! within moments (so the post leaves at its first moment), by one instance only, and
//! what a failed take answers comes back with its condition, not from a second read.

use std::time::Duration;

use ingestlayer::delivery::channel_state::{ChannelStore, Channels, Gate, Pause, PauseScope};
use ingestlayer::ids::GroupId;

use crate::harness::{Requests, Stack};

const T0: i64 = 1_800_000_000_000;
const INTERVAL: Duration = Duration::from_millis(1100);
const AHEAD: Duration = Duration::from_millis(250);

fn alerts() -> GroupId {
    GroupId::from_queue("default:#alerts")
}

/// `#alerts`' slot at `now`, asked for `told` (the slot a wait named) or not.
async fn acquire(channels: &Channels, now: i64, told: Option<i64>) -> Gate {
    channels
        .acquire(&alerts(), INTERVAL, now, AHEAD, told)
        .await
        .unwrap()
}

/// The stack's channels table through a client whose requests are counted.
fn counted_channels(s: &Stack) -> (Channels, Requests) {
    let (client, requests) = s.counted_dynamo();
    let channels = Channels {
        client,
        table: s.res.channels_table.clone(),
    };
    (channels, requests)
}

#[tokio::test]
async fn a_due_slot_is_one_write_and_a_close_one_is_taken_ahead_without_a_read() {
    let s = Stack::new().await;
    let (channels, requests) = counted_channels(&s);
    let g = alerts();

    let gate = acquire(&channels, T0, None).await;
    assert_eq!(
        gate,
        Gate::At(T0),
        "a channel never posted to: its slot is now"
    );
    assert_eq!(requests.take_operations(), ["UpdateItem"]);

    // 250 ms before the next slot: it is taken ahead, at its own start.
    let gate = acquire(&channels, T0 + 850, None).await;
    assert_eq!(gate, Gate::At(T0 + 1100));
    assert_eq!(
        requests.take_operations(),
        ["UpdateItem", "UpdateItem"],
        "the first write's failed condition returned the slot: no GetItem"
    );
    assert_eq!(channels.next_slot(&g).await.unwrap(), Some(T0 + 2200));

    // The slot after that is 1,300 ms away: too far to take; one request says so.
    requests.take();
    let gate = acquire(&channels, T0 + 900, None).await;
    assert_eq!(gate, Gate::Wait(Duration::from_millis(1300)));
    assert_eq!(requests.take_operations(), ["UpdateItem"]);

    // Late (the slot began 400 ms ago): the slot is now, the next an interval after now.
    let gate = acquire(&channels, T0 + 2600, None).await;
    assert_eq!(gate, Gate::At(T0 + 2600));
    assert_eq!(channels.next_slot(&g).await.unwrap(), Some(T0 + 3700));
}

#[tokio::test]
async fn a_slot_the_wait_named_is_taken_ahead_with_one_write_and_never_sooner_than_ahead() {
    let s = Stack::new().await;
    let (channels, requests) = counted_channels(&s);
    let g = alerts();
    acquire(&channels, T0, None).await;
    // Just after the post: the next slot is 1,100 ms away, and the wait names it.
    requests.take();
    let gate = acquire(&channels, T0 + 10, None).await;
    assert_eq!(gate, Gate::Wait(Duration::from_millis(1090)));
    let told = Some(T0 + 1100);
    // Asked again with it 900 ms before it: too far ahead to take, whatever the caller
    // was told, and nothing is written.
    assert_eq!(
        acquire(&channels, T0 + 200, told).await,
        Gate::Wait(Duration::from_millis(900))
    );
    assert_eq!(channels.next_slot(&g).await.unwrap(), Some(T0 + 1100));
    // 200 ms before it: taken ahead with a single write (without `told`, the first write
    // asks for a slot due now and fails).
    requests.take();
    let gate = acquire(&channels, T0 + 900, told).await;
    assert_eq!(gate, Gate::At(T0 + 1100));
    assert_eq!(requests.take_operations(), ["UpdateItem"]);
    assert_eq!(channels.next_slot(&g).await.unwrap(), Some(T0 + 2200));

    // A late post's hold moved the next slot after the caller was told of it: the told
    // slot is not taken; the second write takes the moved one when it is close.
    channels.hold_until(&g, T0 + 2300).await.unwrap();
    requests.take();
    let gate = acquire(&channels, T0 + 2100, Some(T0 + 2200)).await;
    assert_eq!(gate, Gate::At(T0 + 2300));
    assert_eq!(requests.take_operations(), ["UpdateItem", "UpdateItem"]);
    assert_eq!(channels.next_slot(&g).await.unwrap(), Some(T0 + 3400));
}

#[tokio::test]
async fn of_two_instances_reaching_for_the_same_slot_ahead_one_takes_it() {
    let s = Stack::new().await;
    let channels = s.channels();
    let g = alerts();
    assert_eq!(acquire(&channels, T0, None).await, Gate::At(T0));
    for round in 1..=30 {
        let slot = T0 + round * 1100;
        let now = slot - 200;
        let (a, b) = tokio::join!(
            channels.acquire(&g, INTERVAL, now, AHEAD, None),
            channels.acquire(&g, INTERVAL, now, AHEAD, None)
        );
        let gates = [a.unwrap(), b.unwrap()];
        let taken = gates.iter().filter(|g| **g == Gate::At(slot)).count();
        assert_eq!(taken, 1, "round {round}: {gates:?}");
        assert!(
            gates
                .iter()
                .any(|g| matches!(g, Gate::Wait(d) if *d >= Duration::from_millis(1))),
            "round {round}: the other waits: {gates:?}"
        );
        assert_eq!(channels.next_slot(&g).await.unwrap(), Some(slot + 1100));
    }
}

#[tokio::test]
async fn a_paused_channel_answers_its_pause_and_a_hold_is_never_taken_past() {
    let s = Stack::new().await;
    let (channels, requests) = counted_channels(&s);
    let g = alerts();
    acquire(&channels, T0, None).await;

    // A 429 held the channel 30 s: a slot close to the old one is not taken.
    channels.hold_until(&g, T0 + 30_000).await.unwrap();
    assert_eq!(
        acquire(&channels, T0 + 1000, None).await,
        Gate::Wait(Duration::from_millis(29_000))
    );

    let pause = Pause {
        error: "is_archived".into(),
        hint: "unarchive it".into(),
    };
    channels
        .record_pause(&PauseScope::Channel(g.clone()), &pause, "now")
        .await
        .unwrap();
    requests.take();
    assert_eq!(
        acquire(&channels, T0 + 29_900, None).await,
        Gate::Paused(pause)
    );
    assert_eq!(requests.take_operations(), ["UpdateItem"]);
    assert_eq!(
        channels.next_slot(&g).await.unwrap(),
        Some(T0 + 30_000),
        "a paused channel's slot is not taken"
    );
}
