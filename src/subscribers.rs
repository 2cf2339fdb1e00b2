//! Subscribers: who reads each list by email, and in which format.

use crate::digest::DigestMode;

/// A subscriber of one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub id: i64,
    pub list_code: String,
    pub address: String,
    pub mode: DigestMode,
    /// Personal secret of the one-click unsubscribe URL (RFC 8058).
    pub token: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// What subscribing an address did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A new subscriber.
    New,
    /// Already subscribed; the mode was updated (or a removed subscriber
    /// came back).
    Updated,
    /// Already subscribed in this mode.
    Unchanged,
}
