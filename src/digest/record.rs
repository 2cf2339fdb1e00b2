//! What a digest is, as composed and as recorded: its formats, its number,
//! the posts pending for it, its rendered bodies.

use crate::post::{named, StoredPost};

/// The digest format a subscriber chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum DigestMode {
    /// RFC 2046 multipart/mixed with a multipart/digest of the posts.
    Mime,
    /// RFC 1153 plain text.
    Plain,
    /// multipart/alternative: the plain text and an HTML rendering.
    Html,
    /// The table of contents alone, with each post's first lines and link.
    Summary,
}

impl DigestMode {
    /// Every mode, in the order digests are rendered.
    pub const ALL: [DigestMode; 4] = [
        DigestMode::Mime,
        DigestMode::Plain,
        DigestMode::Html,
        DigestMode::Summary,
    ];

    /// The name used in SQL and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestMode::Mime => "mime",
            DigestMode::Plain => "plain",
            DigestMode::Html => "html",
            DigestMode::Summary => "summary",
        }
    }
}

named!(DigestMode: "digest mode");

/// A digest as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestRecord {
    pub id: i64,
    pub list_code: String,
    pub volume: u32,
    pub issue: u32,
    /// The volume period it falls in, e.g. `2026` or `2026-W05`.
    pub period: String,
    /// Why it was issued: `schedule`, `size` or `forced`.
    pub reason: String,
    /// Unix seconds.
    pub issued_at: i64,
    /// The random part of its Message-IDs; `None` for digests issued before
    /// there was one.
    pub nonce: Option<String>,
}

/// A published post not yet in any digest of its list, with its original
/// bytes for the MIME digest.
#[derive(Debug, Clone)]
pub struct PendingPost {
    pub post: StoredPost,
    pub raw: Option<Vec<u8>>,
}

/// A digest ready to be recorded: its number and its rendered bodies.
#[derive(Debug, Clone)]
pub struct NewDigest {
    pub volume: u32,
    pub issue: u32,
    pub period: String,
    pub reason: String,
    pub issued_at: i64,
    pub bodies: Vec<DigestBody>,
}

/// One format of a digest, rendered once for every recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestBody {
    pub mode: DigestMode,
    /// The Subject header value, already encoded (RFC 2047) as needed.
    pub subject: String,
    /// The MIME entity: its header fields, a blank line, the body (CRLF).
    pub entity: Vec<u8>,
}

/// A digest just recorded, with what came of it.
#[derive(Debug, Clone)]
pub struct IssuedDigest {
    pub record: DigestRecord,
    pub posts: usize,
    /// Deliveries queued, one per subscriber.
    pub queued: usize,
}

/// How many posts are pending for a list's next digest and how many bytes
/// of text they hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    pub posts: usize,
    pub bytes: usize,
}
