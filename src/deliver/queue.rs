//! The outbox as data: where each delivery stands, the single messages
//! queued beside the digests, what one attempt gave, and the summaries
//! `tidings queue`, `tidings status` and /metrics show.

use crate::digest::DigestMode;
use crate::post::named;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryState {
    /// Not tried yet.
    Queued,
    /// Refused for now (4xx) or not reached; tried again at its next attempt.
    Deferred,
    /// Accepted by the server.
    Sent,
    /// Refused for good (5xx), or given up.
    Failed,
}

impl DeliveryState {
    /// Every state, in the order a delivery goes through them.
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Queued,
        DeliveryState::Deferred,
        DeliveryState::Sent,
        DeliveryState::Failed,
    ];

    /// The name used in SQL and in `tidings queue`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Deferred => "deferred",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
        }
    }

    /// Whether the delivery is still to be made (queued or deferred).
    pub fn is_waiting(self) -> bool {
        matches!(self, DeliveryState::Queued | DeliveryState::Deferred)
    }
}

named!(DeliveryState: "delivery state");

/// A delivery due now, with what its personal headers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub id: i64,
    pub digest_id: i64,
    pub subscriber_id: i64,
    pub list_code: String,
    pub address: String,
    pub mode: DigestMode,
    /// The subscriber's unsubscribe secret.
    pub token: String,
    /// Attempts made so far.
    pub attempts: u32,
}

/// What a single outgoing message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageKind {
    /// Mail passed on as it came, with a new envelope: mail to postmaster
    /// for the operator, to -owner for the editors.
    Forward,
    /// What tidings writes to one person: a confirmation to give, a
    /// welcome, a goodbye, the answer to commands, a link asked for.
    Notice,
    /// One person's digest across several lists
    /// ([`crate::digest::combined`]).
    Combined,
}

impl MessageKind {
    /// Every kind.
    pub const ALL: [MessageKind; 3] = [
        MessageKind::Forward,
        MessageKind::Notice,
        MessageKind::Combined,
    ];

    /// The name used in SQL and in `tidings queue`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Forward => "forward",
            MessageKind::Notice => "notice",
            MessageKind::Combined => "combined",
        }
    }
}

named!(MessageKind: "message kind");

/// A single message to queue for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub kind: MessageKind,
    /// The list it concerns, if any.
    pub list_code: Option<String>,
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: String,
    pub recipient: String,
    /// The whole message, CRLF line ends.
    pub message: Vec<u8>,
    /// Sign with the configured DKIM keys (what tidings writes), or send as
    /// it is (mail passed on keeps its own signatures).
    pub sign: bool,
}

/// A queued message due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueMessage {
    pub id: i64,
    pub message: NewMessage,
    /// Attempts made so far.
    pub attempts: u32,
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The server accepted the message with this reply.
    Sent { reply: String },
    /// Try again at `next_attempt_at` (Unix seconds).
    Deferred { reply: String, next_attempt_at: i64 },
    /// Refused for good.
    Failed { reply: String },
}

impl Attempt {
    /// The state a delivery is in after this attempt.
    pub fn state(&self) -> DeliveryState {
        match self {
            Attempt::Sent { .. } => DeliveryState::Sent,
            Attempt::Deferred { .. } => DeliveryState::Deferred,
            Attempt::Failed { .. } => DeliveryState::Failed,
        }
    }

    /// The server's reply, or what went wrong.
    pub fn reply(&self) -> &str {
        match self {
            Attempt::Sent { reply }
            | Attempt::Deferred { reply, .. }
            | Attempt::Failed { reply } => reply,
        }
    }
}

/// Counts and recent problems of the outbox, for `tidings queue`.
#[derive(Debug, Clone, Default)]
pub struct QueueSummary {
    /// Digest deliveries: (list, state, count), by list then state.
    pub counts: Vec<(String, DeliveryState, u64)>,
    /// Deliveries of posts as they arrive: (list, state, count), by list
    /// then state.
    pub posts: Vec<(String, DeliveryState, u64)>,
    /// Single messages: (kind, state, count), by kind then state.
    pub messages: Vec<(MessageKind, DeliveryState, u64)>,
    /// The deferred digest delivery waiting longest.
    pub oldest_deferred: Option<ProblemDelivery>,
    /// The latest deferred or failed digest deliveries, newest first.
    pub last_errors: Vec<ProblemDelivery>,
}

impl QueueSummary {
    /// Digest and post deliveries still to be made (queued or deferred) of
    /// one list, or with `None` everything still to be sent, single
    /// messages too: the outbox depth.
    pub fn waiting(&self, list: Option<&str>) -> u64 {
        let digests: u64 = self
            .counts
            .iter()
            .chain(&self.posts)
            .filter(|(code, state, _)| state.is_waiting() && list.is_none_or(|list| code == list))
            .map(|(_, _, count)| count)
            .sum();
        let messages: u64 = match list {
            Some(_) => 0,
            None => self
                .messages
                .iter()
                .filter(|(_, state, _)| state.is_waiting())
                .map(|(_, _, count)| count)
                .sum(),
        };
        digests + messages
    }

    /// Digest deliveries of `list` in `state`.
    pub fn count(&self, list: &str, state: DeliveryState) -> u64 {
        Self::find(&self.counts, list, state)
    }

    /// Post deliveries of `list` in `state`.
    pub fn post_count(&self, list: &str, state: DeliveryState) -> u64 {
        Self::find(&self.posts, list, state)
    }

    fn find(counts: &[(String, DeliveryState, u64)], list: &str, state: DeliveryState) -> u64 {
        counts
            .iter()
            .find(|(code, s, _)| code == list && *s == state)
            .map_or(0, |(_, _, count)| *count)
    }
}

/// A deferred or failed delivery, as `tidings queue` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemDelivery {
    pub id: i64,
    pub list_code: String,
    pub address: String,
    pub state: DeliveryState,
    pub issued_at: i64,
    pub attempts: u32,
    pub last_attempt_at: Option<i64>,
    pub next_attempt_at: i64,
    pub last_reply: Option<String>,
}

/// A delivery of one digest, for tests and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: i64,
    pub subscriber_id: i64,
    pub address: String,
    pub mode: DigestMode,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_reply: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_depth_counts_what_is_still_to_send() {
        let summary = QueueSummary {
            counts: vec![
                ("en".into(), DeliveryState::Queued, 3),
                ("en".into(), DeliveryState::Sent, 100),
                ("fr".into(), DeliveryState::Deferred, 2),
                ("fr".into(), DeliveryState::Failed, 7),
            ],
            posts: vec![
                ("en".into(), DeliveryState::Queued, 5),
                ("en".into(), DeliveryState::Sent, 9),
            ],
            messages: vec![
                (MessageKind::Forward, DeliveryState::Deferred, 1),
                (MessageKind::Forward, DeliveryState::Sent, 4),
            ],
            ..QueueSummary::default()
        };
        assert_eq!(summary.waiting(None), 11);
        assert_eq!(summary.waiting(Some("en")), 8);
        assert_eq!(summary.post_count("en", DeliveryState::Sent), 9);
        assert_eq!(summary.waiting(Some("de")), 0);
        assert_eq!(summary.count("fr", DeliveryState::Failed), 7);
    }
}
