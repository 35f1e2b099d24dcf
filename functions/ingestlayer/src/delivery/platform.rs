//! The one delivery abstraction: [`Platform`], what differs between Slack, Discord,
//! Telegram, email, Notion and webhooks. Each destination type says
//!
//! - its pacing: what is paced together ([`Platform::pacing_key`]: a Slack channel, a
//!   Discord webhook, a Telegram chat, the SES account, a Notion integration) and the least
//!   time between two sends to it ([`Platform::interval`]), its retry schedule and whether
//!   waiting messages go as one digest;
//! - how it sends a message or a digest, rendered from the one template model (Slack's
//!   Block Kit is rendered by routing; the others render their card when they send);
//! - what its answer means ([`Platform::classify`], into the shared [`Verdict`]);
//! - where the platform allows one, its duplicate check after an ambiguous attempt
//!   ([`Platform::find`]: Slack's channel history, Notion's data-source query).
//!
//! Slack's implementation is [`crate::delivery::slack_platform::SlackPlatform`], driven by
//! the group loop in [`crate::delivery::group`], which adds what only Slack has (threads,
//! owners, membership, workspace pauses); the five others are in
//! `crate::dispatch::platform`, driven by the destination-delivery loop.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use crate::delivery::retry::{retry_delay, RETRY_SCHEDULE};
pub use crate::outbound::Verdict;

/// What a duplicate check found: `Ok(Some(receipt))` the platform shows it delivered (a
/// Slack ts, a Notion page id), `Ok(None)` it shows it was not, `Err(verdict)` it cannot
/// tell now (`Retry`/`RetryAfter`: ask again later; `PauseTarget`: it will not tell until
/// someone acts).
pub type Found = std::result::Result<Option<String>, Verdict>;

/// One destination type, as a delivery loop sees it.
pub trait Platform: Send + Sync {
    /// What one send carries one of (a queued message; a digest sends several).
    type Message: Sync;
    /// What came back from a send, before [`Platform::classify`] reads it.
    type Answer: Send;

    /// What is paced together: the platform's unit of rate limits.
    fn pacing_key(&self, message: &Self::Message) -> String;

    /// The least time between two sends to one pacing unit.
    fn interval(&self, message: &Self::Message) -> Duration;

    /// The pacing unit every target of the platform shares, when the platform can hold
    /// them all at once (Discord's global rate limit on a sender): a
    /// [`Verdict::RetryAfterAll`] holds it, and no target sends while it is held.
    fn sender_key(&self) -> Option<&'static str> {
        None
    }

    /// Seconds before retry n of a transient failure (by receive count; the last repeats
    /// until the message is too old).
    fn schedule(&self) -> &[u64] {
        RETRY_SCHEDULE
    }

    /// The wait after `attempt` failed attempts, or `None` to park (the schedule is spent).
    fn retry_after_attempt(&self, attempt: usize) -> Option<Duration> {
        Some(retry_delay(attempt, self.schedule()))
    }

    /// Whether several waiting messages of one target go as one (a digest).
    fn digests(&self) -> bool {
        false
    }

    /// Sends `messages` (one, or a digest's several, all to one target). `resent`: an
    /// earlier attempt may have delivered them and the platform cannot say. `now`: seconds
    /// since the epoch.
    fn send<'a>(
        &'a self,
        messages: &'a [&'a Self::Message],
        resent: bool,
        now: i64,
    ) -> BoxFuture<'a, Self::Answer>;

    /// What an answer means for the messages sent.
    fn classify(&self, answer: &Self::Answer) -> Verdict;

    /// After an ambiguous attempt that began at `since_ms`: whether the platform shows the
    /// message delivered; `None` when the platform gives no way to ask.
    fn find<'a>(
        &'a self,
        _message: &'a Self::Message,
        _since_ms: i64,
    ) -> BoxFuture<'a, Option<Found>> {
        async { None }.boxed()
    }
}
