//! The summary digest, for readers who only scan: the masthead, then each
//! post's subject, author and date, its first lines and its permalink, then
//! the footer; text/plain.

use super::headers::text_entity;
use super::{wrap, Digest};

/// Columns of the wrapped first lines.
const WIDTH: usize = 72;

/// The text/plain entity of the summary digest.
pub fn render_summary_entity(digest: &Digest<'_>) -> Vec<u8> {
    text_entity("plain", None, &render_summary(digest))
}

/// The text of the summary digest (LF line ends).
pub fn render_summary(digest: &Digest<'_>) -> String {
    let mut out = String::new();
    out.push_str(&digest.masthead);
    out.push('\n');
    out.push_str(&format!("{}:\n\n", digest.labels.topics));
    if digest.entries.is_empty() {
        out.push_str(&format!("   {}\n\n", digest.labels.no_posts));
    }
    for entry in &digest.entries {
        out.push_str(&format!("{:>4}. {}\n", entry.number, entry.subject));
        out.push_str(&format!("      {}, {}\n", entry.author, entry.date));
        for paragraph in &entry.excerpt {
            for line in wrap(paragraph, WIDTH - 6) {
                out.push_str("      ");
                out.push_str(&line);
                out.push('\n');
            }
        }
        out.push_str(&format!("      {}\n\n", entry.permalink));
    }
    out.push_str("-- \n");
    out.push_str(&digest.footer);
    out
}
