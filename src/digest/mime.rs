//! The MIME digest (RFC 2046 5.1.3 and 5.1.5): multipart/mixed holding the
//! masthead, the table of contents, a multipart/digest with one
//! message/rfc822 part per post (its original header fields that matter,
//! exactly as received, and its original body), and the footer.

use super::headers::{self, text_entity};
use super::original::Original;
use super::{Digest, Entry};

/// The preamble MIME readers skip and others show (RFC 2046 5.1.1); ASCII.
const PREAMBLE: &str =
    "This is a digest in MIME format (RFC 2046): each post is an attached message.\r\n";

/// The multipart/mixed entity of the MIME digest.
pub fn render_mime(digest: &Digest<'_>) -> Vec<u8> {
    let labels = &digest.labels;
    let masthead = text_entity("plain", Some(&labels.masthead), &digest.masthead);
    let contents = text_entity("plain", Some(&labels.topics), &digest.table_of_contents());
    let footer = text_entity("plain", Some(&labels.footer), &digest.footer);

    let posts: Vec<Vec<u8>> = digest.entries.iter().map(message_part).collect();
    let post_refs: Vec<&[u8]> = posts.iter().map(Vec::as_slice).collect();
    let digest_boundary = digest.boundary("digest", &post_refs);
    let eight_bit = posts.iter().any(|part| !part.is_ascii());
    let mut inner = Vec::with_capacity(posts.iter().map(Vec::len).sum::<usize>() + 4096);
    inner.extend_from_slice(
        format!("Content-Type: multipart/digest; boundary=\"{digest_boundary}\"\r\n").as_bytes(),
    );
    if eight_bit {
        inner.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n");
    }
    inner.extend_from_slice(
        &headers::unstructured("Content-Description", &labels.posts).into_bytes(),
    );
    inner.extend_from_slice(b"\r\n");
    write_parts(&mut inner, &digest_boundary, &post_refs);

    let outer_parts: [&[u8]; 4] = [&masthead, &contents, &inner, &footer];
    let mixed_boundary = digest.boundary("mixed", &outer_parts);
    let mut out =
        Vec::with_capacity(inner.len() + masthead.len() + contents.len() + footer.len() + 1024);
    out.extend_from_slice(
        format!("Content-Type: multipart/mixed; boundary=\"{mixed_boundary}\"\r\n").as_bytes(),
    );
    if eight_bit {
        out.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(PREAMBLE.as_bytes());
    write_parts(&mut out, &mixed_boundary, &outer_parts);
    out
}

/// Writes `parts` between boundary delimiters. Each part ends in CRLF, and
/// the CRLF before a delimiter belongs to the delimiter (RFC 2046 5.1.1), so
/// one more is written to keep each part's last line break.
pub(super) fn write_parts(out: &mut Vec<u8>, boundary: &str, parts: &[&[u8]]) {
    for part in parts {
        out.extend_from_slice(b"\r\n--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
}

/// One post as a message/rfc822 part. Its body may not be re-encoded
/// (RFC 2046 5.2.1), so 8-bit originals are labelled 8bit.
fn message_part(entry: &Entry<'_>) -> Vec<u8> {
    let message = match &entry.pending.raw {
        Some(raw) => Original::parse(raw).for_digest(),
        None => synthesized(entry),
    };
    let mut out = Vec::with_capacity(message.len() + 80);
    out.extend_from_slice(b"Content-Type: message/rfc822\r\n");
    if !message.is_ascii() {
        out.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&message);
    out
}

/// A message made from the stored post, for the rare post whose original
/// bytes are gone.
fn synthesized(entry: &Entry<'_>) -> Vec<u8> {
    let post = &entry.pending.post;
    let mut out = String::new();
    if let Some(date) = &post.date_header {
        out.push_str(&headers::unstructured("Date", date));
    }
    out.push_str(&headers::mailbox_field(
        "From",
        &post.author_name,
        &post.author_address,
    ));
    out.push_str(&headers::unstructured("Subject", &post.subject));
    if let Some(id) = &post.message_id {
        out.push_str(&format!("Message-ID: {id}\r\n"));
    }
    out.push_str("MIME-Version: 1.0\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&text_entity("plain", None, &post.body));
    bytes
}
