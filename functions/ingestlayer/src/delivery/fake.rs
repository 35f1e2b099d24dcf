//! The ledger and channel state in memory, with the same conditional semantics as the
//! DynamoDB tables: the second implementation of [`LedgerStore`] and [`ChannelStore`],
//! for unit tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use crate::delivery::channel_store::{
    ChannelState, ChannelStore, Gate, Membership, Pause, PauseScope,
};
use crate::delivery::ledger::{Entry, LedgerStore};
use crate::error::{Error, Result};
use crate::ids::{DeliveryKey, GroupId, TeamId};

#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Posting { since_ms: i64 },
    NotPosted,
    Delivered { ts: String },
}

#[derive(Default)]
pub struct FakeState {
    pub ledger: Mutex<HashMap<DeliveryKey, Status>>,
    pub next_at_ms: Mutex<HashMap<GroupId, i64>>,
    pub pauses: Mutex<HashMap<PauseScope, Pause>>,
    pub channels: Mutex<HashMap<GroupId, ChannelState>>,
    /// Each channel's last failed post.
    pub last_errors: Mutex<HashMap<GroupId, String>>,
    /// Every slot taken, as (group, when).
    pub slots: Mutex<Vec<(GroupId, i64)>>,
    /// How long taking a slot takes to answer (on tokio's clock), as a slow write would.
    pub slot_latency: Mutex<Duration>,
    /// When set, every call fails (a retryable error), as an unreachable table would.
    pub down: Mutex<bool>,
    /// When set to n, every claim after the first n fails, as a ledger that became
    /// unreachable would.
    pub ledger_down_after: Mutex<Option<usize>>,
    claims: Mutex<usize>,
    /// Operations notices claimed: subject → until (ms).
    pub notices: Mutex<HashMap<String, i64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeState {
    fn check(&self) -> Result<()> {
        if *lock(&self.down) {
            Err(Error::Slack {
                what: "the fake table".into(),
                detail: "down".into(),
                source: None,
            })
        } else {
            Ok(())
        }
    }

    pub fn status(&self, key: &DeliveryKey) -> Option<Status> {
        lock(&self.ledger).get(key).cloned()
    }

    pub fn pause_of(&self, scope: &PauseScope) -> Option<Pause> {
        lock(&self.pauses).get(scope).cloned()
    }

    pub fn slot_times(&self) -> Vec<i64> {
        lock(&self.slots).iter().map(|(_, t)| *t).collect()
    }
}

impl FakeState {
    fn begin_one<'a>(&'a self, key: &'a DeliveryKey, now_ms: i64) -> BoxFuture<'a, Result<Entry>> {
        async move {
            self.check()?;
            {
                let mut claims = lock(&self.claims);
                if lock(&self.ledger_down_after).is_some_and(|n| *claims >= n) {
                    return Err(Error::Slack {
                        what: "the fake ledger".into(),
                        detail: "down".into(),
                        source: None,
                    });
                }
                *claims += 1;
            }
            let mut ledger = lock(&self.ledger);
            let entry = match ledger.get(key) {
                None | Some(Status::NotPosted) => Entry::Clear,
                Some(Status::Delivered { ts }) => return Ok(Entry::Delivered { ts: ts.clone() }),
                Some(Status::Posting { since_ms }) => {
                    return Ok(Entry::Uncertain {
                        since_ms: *since_ms,
                    })
                }
            };
            ledger.insert(key.clone(), Status::Posting { since_ms: now_ms });
            Ok(entry)
        }
        .boxed()
    }

    fn delivered_one<'a>(
        &'a self,
        key: &'a DeliveryKey,
        ts: &'a str,
        _channel_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            self.check()?;
            lock(&self.ledger).insert(key.clone(), Status::Delivered { ts: ts.to_owned() });
            Ok(())
        }
        .boxed()
    }

    fn not_posted_one<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<()>> {
        async move {
            self.check()?;
            let mut ledger = lock(&self.ledger);
            if matches!(ledger.get(key), Some(Status::Posting { .. })) {
                ledger.insert(key.clone(), Status::NotPosted);
            }
            Ok(())
        }
        .boxed()
    }
}

impl LedgerStore for FakeState {
    fn begin_all<'a>(
        &'a self,
        keys: &'a [DeliveryKey],
        now_ms: i64,
    ) -> BoxFuture<'a, Vec<Result<Entry>>> {
        async move {
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                out.push(self.begin_one(key, now_ms).await);
            }
            out
        }
        .boxed()
    }

    fn delivered_all<'a>(
        &'a self,
        keys: &'a [DeliveryKey],
        ts: &'a str,
        channel_id: Option<&'a str>,
    ) -> BoxFuture<'a, Vec<Result<()>>> {
        async move {
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                out.push(self.delivered_one(key, ts, channel_id).await);
            }
            out
        }
        .boxed()
    }

    fn not_posted_all<'a>(&'a self, keys: &'a [DeliveryKey]) -> BoxFuture<'a, Vec<Result<()>>> {
        async move {
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                out.push(self.not_posted_one(key).await);
            }
            out
        }
        .boxed()
    }

    /// The fake has no leases: a `posting` key is uncertain to the next claim already, so
    /// marking it unsure changes nothing.
    fn unsure_all<'a>(&'a self, keys: &'a [DeliveryKey]) -> BoxFuture<'a, Vec<Result<()>>> {
        async move {
            keys.iter()
                .map(|_| self.check())
                .collect::<Vec<Result<()>>>()
        }
        .boxed()
    }
}

impl ChannelStore for FakeState {
    fn next_slot<'a>(&'a self, group: &'a GroupId) -> BoxFuture<'a, Result<Option<i64>>> {
        async move {
            self.check()?;
            Ok(lock(&self.next_at_ms).get(group).copied())
        }
        .boxed()
    }

    fn acquire<'a>(
        &'a self,
        group: &'a GroupId,
        interval: Duration,
        now_ms: i64,
        ahead: Duration,
        told: Option<i64>,
    ) -> BoxFuture<'a, Result<Gate>> {
        async move {
            self.check()?;
            // Each conditional write takes `slot_latency`, as `Channels` makes them: a
            // slot ahead costs a second write unless the caller was told of it.
            let latency = *lock(&self.slot_latency);
            let ahead_ms = ahead.as_millis() as i64;
            let next = lock(&self.next_at_ms).get(group).copied();
            let writes = match next {
                Some(at) if at > now_ms && at - now_ms <= ahead_ms && told != Some(at) => 2,
                _ => 1,
            };
            if !latency.is_zero() {
                tokio::time::sleep(latency * writes).await;
            }
            if let Some(p) = lock(&self.pauses).get(&PauseScope::Channel(group.clone())) {
                return Ok(Gate::Paused(p.clone()));
            }
            let mut next = lock(&self.next_at_ms);
            let at = match next.get(group) {
                Some(at) if *at - now_ms > ahead_ms => {
                    return Ok(Gate::Wait(Duration::from_millis((*at - now_ms) as u64)));
                }
                Some(at) => (*at).max(now_ms),
                None => now_ms,
            };
            next.insert(group.clone(), at + interval.as_millis() as i64);
            lock(&self.slots).push((group.clone(), at));
            Ok(Gate::At(at))
        }
        .boxed()
    }

    fn hold_until<'a>(&'a self, group: &'a GroupId, until_ms: i64) -> BoxFuture<'a, Result<()>> {
        async move {
            self.check()?;
            let mut next = lock(&self.next_at_ms);
            let at = next.entry(group.clone()).or_insert(until_ms);
            *at = (*at).max(until_ms);
            Ok(())
        }
        .boxed()
    }

    fn workspace_pause<'a>(&'a self, team: &'a TeamId) -> BoxFuture<'a, Result<Option<Pause>>> {
        async move {
            self.check()?;
            Ok(self.pause_of(&PauseScope::Workspace(team.clone())))
        }
        .boxed()
    }

    fn claim_notice<'a>(
        &'a self,
        subject: &'a str,
        now_ms: i64,
        quiet_ms: i64,
    ) -> BoxFuture<'a, Result<bool>> {
        async move {
            self.check()?;
            let mut notices = lock(&self.notices);
            match notices.get(subject) {
                Some(until) if *until > now_ms => Ok(false),
                _ => {
                    notices.insert(subject.to_owned(), now_ms + quiet_ms);
                    Ok(true)
                }
            }
        }
        .boxed()
    }

    fn record_pause<'a>(
        &'a self,
        scope: &'a PauseScope,
        pause: &'a Pause,
        _now: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            self.check()?;
            lock(&self.pauses).insert(scope.clone(), pause.clone());
            Ok(())
        }
        .boxed()
    }

    fn record_error<'a>(
        &'a self,
        group: &'a GroupId,
        error: &'a str,
        _now: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            self.check()?;
            lock(&self.last_errors).insert(group.clone(), error.to_owned());
            Ok(())
        }
        .boxed()
    }

    fn channel<'a>(&'a self, group: &'a GroupId) -> BoxFuture<'a, Result<ChannelState>> {
        async move {
            self.check()?;
            Ok(lock(&self.channels).get(group).cloned().unwrap_or_default())
        }
        .boxed()
    }

    fn set_channel_id<'a>(&'a self, group: &'a GroupId, id: &'a str) -> BoxFuture<'a, Result<()>> {
        async move {
            self.check()?;
            lock(&self.channels)
                .entry(group.clone())
                .or_default()
                .channel_id = Some(id.to_owned());
            Ok(())
        }
        .boxed()
    }

    fn set_membership<'a>(
        &'a self,
        group: &'a GroupId,
        membership: Option<Membership>,
        channel_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            self.check()?;
            let mut channels = lock(&self.channels);
            let state = channels.entry(group.clone()).or_default();
            state.membership = membership;
            if let Some(id) = channel_id {
                state.channel_id = Some(id.to_owned());
            }
            Ok(())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_fake_ledger_claims_once_and_a_released_claim_is_clear_again() {
        let state = FakeState::default();
        let key = DeliveryKey::of("e1", "p", 0);
        assert_eq!(state.begin(&key, 10).await.unwrap(), Entry::Clear);
        assert_eq!(
            state.begin(&key, 20).await.unwrap(),
            Entry::Uncertain { since_ms: 10 }
        );
        state.not_posted(&key).await.unwrap();
        assert_eq!(state.status(&key), Some(Status::NotPosted));
        assert_eq!(state.begin(&key, 30).await.unwrap(), Entry::Clear);
        state.delivered(&key, "1.2", None).await.unwrap();
        state.not_posted(&key).await.unwrap();
        assert_eq!(
            state.begin(&key, 40).await.unwrap(),
            Entry::Delivered { ts: "1.2".into() }
        );
    }
}
