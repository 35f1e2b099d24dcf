//! Telegram's flood limits for a bot (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this):
//! about one message per second in a chat, with short bursts allowed; no more than 20 messages
//! per minute in a group; about 30 messages per second overall.
//!
//! Time comes from `tokio::time::Instant`, so tests that pause tokio's clock pace the stand-in
//! too. A message is admitted only when every limit that applies has room, and only then uses
//! room in each: a refused message costs nothing.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// The limits, as [`crate::StandinConfig`] sets them; `None` switches a limit off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limits {
    /// Per chat: `(messages per second, burst)`.
    pub(crate) per_chat: Option<(f64, u32)>,
    /// Per group or supergroup: `(messages, window)`.
    pub(crate) per_group: Option<(u32, Duration)>,
    /// Per bot, across chats: `(messages per second, burst)`.
    pub(crate) per_bot: Option<(f64, u32)>,
}

/// Refills `rate` tokens per second up to `burst`; a message takes one.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
    }

    /// How long until a token is available (zero when one is).
    fn wait(&self, rate: f64) -> Duration {
        // A hair of slack so float sums such as 0.4 + 0.6 count as a whole token.
        if self.tokens >= 1.0 - 1e-9 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(((1.0 - self.tokens) / rate).min(86_400.0))
        }
    }
}

/// At most `limit` messages in any `window`: the documented "20 messages per minute".
#[derive(Debug, Default)]
struct Window {
    sent: VecDeque<Instant>,
}

impl Window {
    fn wait(&mut self, limit: u32, window: Duration, now: Instant) -> Duration {
        while self.sent.front().is_some_and(|t| *t + window <= now) {
            self.sent.pop_front();
        }
        if self.sent.len() < limit as usize {
            return Duration::ZERO;
        }
        self.sent.front().map_or(Duration::ZERO, |oldest| {
            (*oldest + window).saturating_duration_since(now)
        })
    }
}

/// The flood-limit state of every bot and chat.
#[derive(Debug)]
pub(crate) struct Pacer {
    limits: Limits,
    chats: HashMap<(i64, i64), Bucket>,
    groups: HashMap<(i64, i64), Window>,
    bots: HashMap<i64, Bucket>,
}

impl Pacer {
    pub(crate) fn new(limits: Limits) -> Pacer {
        Pacer {
            limits,
            chats: HashMap::new(),
            groups: HashMap::new(),
            bots: HashMap::new(),
        }
    }

    /// Admits a message of `bot` to `chat` (a group or supergroup when `is_group`), or says how
    /// many whole seconds to wait: Telegram's `retry_after`, rounded up, at least 1.
    pub(crate) fn admit(
        &mut self,
        bot: i64,
        chat: i64,
        is_group: bool,
        now: Instant,
    ) -> Result<(), u64> {
        let mut wait = Duration::ZERO;
        if let Some((rate, burst)) = self.limits.per_bot {
            let burst = f64::from(burst.max(1));
            let bucket = self.bots.entry(bot).or_insert(Bucket::full(burst, now));
            bucket.refill(rate, burst, now);
            wait = wait.max(bucket.wait(rate));
        }
        if let Some((rate, burst)) = self.limits.per_chat {
            let burst = f64::from(burst.max(1));
            let bucket = self
                .chats
                .entry((bot, chat))
                .or_insert(Bucket::full(burst, now));
            bucket.refill(rate, burst, now);
            wait = wait.max(bucket.wait(rate));
        }
        if let (true, Some((limit, window))) = (is_group, self.limits.per_group) {
            let group = self.groups.entry((bot, chat)).or_default();
            wait = wait.max(group.wait(limit.max(1), window, now));
        }
        if !wait.is_zero() {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(secs.max(1));
        }
        if self.limits.per_bot.is_some() {
            if let Some(bucket) = self.bots.get_mut(&bot) {
                bucket.tokens -= 1.0;
            }
        }
        if self.limits.per_chat.is_some() {
            if let Some(bucket) = self.chats.get_mut(&(bot, chat)) {
                bucket.tokens -= 1.0;
            }
        }
        if is_group && self.limits.per_group.is_some() {
            self.groups
                .entry((bot, chat))
                .or_default()
                .sent
                .push_back(now);
        }
        Ok(())
    }

    pub(crate) fn clear(&mut self) {
        self.chats.clear();
        self.groups.clear();
        self.bots.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOT: i64 = 1;

    fn pacer(
        per_chat: Option<(f64, u32)>,
        per_group: Option<(u32, Duration)>,
        per_bot: Option<(f64, u32)>,
    ) -> Pacer {
        Pacer::new(Limits {
            per_chat,
            per_group,
            per_bot,
        })
    }

    #[test]
    fn a_chat_gets_its_burst_then_one_a_second() {
        let mut pacer = pacer(Some((1.0, 3)), None, None);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(pacer.admit(BOT, 7, false, t0), Ok(()));
        }
        assert_eq!(pacer.admit(BOT, 7, false, t0), Err(1));
        assert_eq!(pacer.admit(BOT, 8, false, t0), Ok(()));
        assert_eq!(
            pacer.admit(BOT, 7, false, t0 + Duration::from_millis(999)),
            Err(1)
        );
        assert_eq!(
            pacer.admit(BOT, 7, false, t0 + Duration::from_secs(1)),
            Ok(())
        );
    }

    #[test]
    fn a_group_gets_twenty_in_any_minute() {
        let mut pacer = pacer(None, Some((20, Duration::from_secs(60))), None);
        let t0 = Instant::now();
        for i in 0..20 {
            assert_eq!(
                pacer.admit(BOT, -5, true, t0 + Duration::from_secs(i)),
                Ok(())
            );
        }
        // The first of the twenty leaves the window at t0 + 60 s.
        assert_eq!(
            pacer.admit(BOT, -5, true, t0 + Duration::from_secs(20)),
            Err(40)
        );
        assert_eq!(
            pacer.admit(BOT, -5, true, t0 + Duration::from_millis(59_500)),
            Err(1)
        );
        assert_eq!(
            pacer.admit(BOT, -5, true, t0 + Duration::from_secs(60)),
            Ok(())
        );
        // A private chat is not a group.
        assert_eq!(
            pacer.admit(BOT, 5, false, t0 + Duration::from_secs(20)),
            Ok(())
        );
    }

    #[test]
    fn a_refused_message_uses_no_room_in_the_other_limits() {
        let mut pacer = pacer(Some((1.0, 1)), None, Some((30.0, 2)));
        let t0 = Instant::now();
        assert_eq!(pacer.admit(BOT, 1, false, t0), Ok(()));
        for _ in 0..5 {
            assert_eq!(pacer.admit(BOT, 1, false, t0), Err(1));
        }
        assert_eq!(pacer.admit(BOT, 2, false, t0), Ok(()));
        assert_eq!(pacer.admit(BOT, 3, false, t0), Err(1));
    }

    #[test]
    fn bots_are_paced_apart() {
        let mut pacer = pacer(Some((1.0, 1)), None, Some((1.0, 1)));
        let t0 = Instant::now();
        assert_eq!(pacer.admit(1, 9, false, t0), Ok(()));
        assert_eq!(pacer.admit(2, 9, false, t0), Ok(()));
    }
}
