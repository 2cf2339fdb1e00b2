//! A post: one contributor's message as parsed and filed, the unit every
//! way out (feeds, digests, pages) shows.
//!
//! [`Post`] holds what filing decided; [`NewPost`] is a post with the bytes
//! it came from, ready to be stored; [`StoredPost`] is a post as read back,
//! with its id.

use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// Where a post stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Filed under a list and visible in digests, feeds and pages.
    Published,
    /// Kept for a moderator, with a reason.
    Held,
    /// Refused, with a reason; the sender is told.
    Rejected,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 3] = [Status::Published, Status::Held, Status::Rejected];

    /// The name used in SQL, JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Published => "published",
            Status::Held => "held",
            Status::Rejected => "rejected",
        }
    }
}

/// How the list of a post was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FiledBy {
    /// The language tag of the subject, `(en)`.
    Tag,
    /// The list address the message was delivered or addressed to.
    Address,
    /// The language detected in the text.
    Detection,
    /// A moderator's choice, when approving a held post
    /// (`tidings moderate approve --list CODE`).
    Moderator,
}

impl FiledBy {
    /// Every way of filing.
    pub const ALL: [FiledBy; 4] = [
        FiledBy::Tag,
        FiledBy::Address,
        FiledBy::Detection,
        FiledBy::Moderator,
    ];

    /// The name used in SQL and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FiledBy::Tag => "tag",
            FiledBy::Address => "address",
            FiledBy::Detection => "detection",
            FiledBy::Moderator => "moderator",
        }
    }
}

/// `FromStr` and `Display` by `as_str` over `ALL`, for the enums stored as
/// text.
macro_rules! named {
    ($($kind:ty: $what:literal),* $(,)?) => {$(
        impl ::std::str::FromStr for $kind {
            type Err = $crate::post::UnknownName;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                <$kind>::ALL
                    .into_iter()
                    .find(|value| value.as_str() == text)
                    .ok_or_else(|| $crate::post::UnknownName {
                        what: $what,
                        name: text.to_string(),
                    })
            }
        }

        impl ::std::fmt::Display for $kind {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
pub(crate) use named;

named!(Status: "post status", FiledBy: "filing");

/// A name that is none of an enum's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`")]
pub struct UnknownName {
    /// What was named, e.g. "post status".
    pub what: &'static str,
    /// The name given.
    pub name: String,
}

/// An attachment of a post: listed, never inlined (its bytes stay in the
/// raw message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub filename: Option<String>,
    pub content_type: String,
    pub size: usize,
}

/// A post as filed: what was parsed from the message and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Post {
    /// Stable public key (20 hex digits); `None` for rejected messages,
    /// which take no part in duplicate detection.
    pub key: Option<String>,
    pub message_id: Option<String>,
    /// The list it is filed under; `None` when held as "language unknown"
    /// or rejected.
    pub list_code: Option<String>,
    /// BCP 47 language of the text.
    pub lang: Option<String>,
    pub status: Status,
    /// Why it is held or rejected.
    pub reason: Option<String>,
    pub filed_by: Option<FiledBy>,
    /// The language tag of the subject as written, e.g. `en`.
    pub tag: Option<String>,
    /// The decoded Subject.
    pub subject: String,
    /// The subject without tag, translation list and "[machine translation]".
    pub title: String,
    /// The languages the subject says the post is also in.
    pub translations: Vec<String>,
    pub machine_translation: bool,
    pub author_name: String,
    /// Never shown in feeds or pages.
    pub author_address: String,
    pub date_header: Option<String>,
    /// Unix seconds of the Date header, when it parsed; for an imported
    /// message without one, of its delivery as the mailbox recorded it.
    pub date: Option<i64>,
    /// Unix seconds of arrival.
    pub received_at: i64,
    /// The text, as plain text.
    pub body: String,
    pub attachments: Vec<Attachment>,
    /// Bytes of the message as received.
    pub size: usize,
}

/// A post ready to be stored, with the message it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPost {
    pub post: Post,
    /// The message exactly as received; `None` only for messages rejected
    /// for their size.
    pub raw: Option<Vec<u8>>,
    /// What incoming authentication found (the value of the
    /// Authentication-Results field added on top of `raw`, RFC 8601);
    /// `None` when the post's list does not verify (see [`crate::auth`]).
    pub auth_results: Option<String>,
}

impl Deref for NewPost {
    type Target = Post;
    fn deref(&self) -> &Post {
        &self.post
    }
}

/// A post as stored, with its id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredPost {
    /// The store's id: the order of arrival.
    pub id: i64,
    #[serde(flatten)]
    pub post: Post,
}

impl Deref for StoredPost {
    type Target = Post;
    fn deref(&self) -> &Post {
        &self.post
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_say_what_they_are() {
        for status in Status::ALL {
            assert_eq!(status.to_string().parse::<Status>(), Ok(status));
        }
        for by in FiledBy::ALL {
            assert_eq!(by.as_str().parse::<FiledBy>(), Ok(by));
        }
        let error = "lost".parse::<Status>().unwrap_err();
        assert_eq!(error.to_string(), "unknown post status `lost`");
    }
}
