//! The outbox as data: where each delivery stands, what one attempt gave,
//! and the summaries `tidings queue`, `tidings status` and /metrics show.

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
    /// (list, state, count), by list then state.
    pub counts: Vec<(String, DeliveryState, u64)>,
    /// The deferred delivery waiting longest.
    pub oldest_deferred: Option<ProblemDelivery>,
    /// The latest deferred or failed deliveries, newest first.
    pub last_errors: Vec<ProblemDelivery>,
}

impl QueueSummary {
    /// Deliveries still to be made (queued or deferred), of one list or of
    /// all: the outbox depth.
    pub fn waiting(&self, list: Option<&str>) -> u64 {
        self.counts
            .iter()
            .filter(|(code, state, _)| state.is_waiting() && list.is_none_or(|list| code == list))
            .map(|(_, _, count)| count)
            .sum()
    }

    /// Deliveries of `list` in `state`.
    pub fn count(&self, list: &str, state: DeliveryState) -> u64 {
        self.counts
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
    fn the_outbox_depth_counts_queued_and_deferred_only() {
        let summary = QueueSummary {
            counts: vec![
                ("en".into(), DeliveryState::Queued, 3),
                ("en".into(), DeliveryState::Sent, 100),
                ("fr".into(), DeliveryState::Deferred, 2),
                ("fr".into(), DeliveryState::Failed, 7),
            ],
            ..QueueSummary::default()
        };
        assert_eq!(summary.waiting(None), 5);
        assert_eq!(summary.waiting(Some("en")), 3);
        assert_eq!(summary.waiting(Some("de")), 0);
        assert_eq!(summary.count("fr", DeliveryState::Failed), 7);
    }
}
