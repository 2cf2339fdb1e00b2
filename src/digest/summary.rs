//! The summary digest, for readers who only scan: the masthead, then each
//! post's subject, author and date, its first lines and its permalink, then
//! the footer; text/plain.

use super::headers::text_entity;
use super::html::Shortening;
use super::{wrap, Digest};

/// Columns of the wrapped first lines.
const WIDTH: usize = 72;

/// The text/plain entity of the summary digest.
pub fn render_summary_entity(digest: &Digest<'_>) -> Vec<u8> {
    text_entity("plain", None, &render_summary(digest))
}

/// The text of the summary digest (LF line ends).
pub fn render_summary(digest: &Digest<'_>) -> String {
    render_entries(digest, Shortening::none(digest.entries.len()), None)
}

/// The summary of the posts as a shortened HTML page shows them (the text
/// alternative of a big day's HTML digest): the posts past
/// `shortening.whole` without their first lines, those past
/// `shortening.listed` left to the archive, said in one line.
pub fn render_summary_shortened(
    digest: &Digest<'_>,
    shortening: Shortening,
) -> anyhow::Result<String> {
    let left = digest.entries.len() - shortening.listed;
    let more_posts = if left > 0 {
        Some(digest.templates.render_str(
            &digest.labels.more_posts,
            minijinja::context! { count => left },
        )?)
    } else {
        None
    };
    Ok(render_entries(digest, shortening, more_posts))
}

fn render_entries(
    digest: &Digest<'_>,
    shortening: Shortening,
    more_posts: Option<String>,
) -> String {
    let mut out = String::new();
    out.push_str(&digest.masthead);
    out.push('\n');
    out.push_str(&format!("{}:\n\n", digest.labels.topics));
    if digest.entries.is_empty() {
        out.push_str(&format!("   {}\n\n", digest.labels.no_posts));
    }
    if !shortening.is_none(digest.entries.len()) {
        for line in wrap(&digest.labels.shortened, WIDTH) {
            out.push_str(&line);
            out.push('\n');
        }
        out.push_str(&format!("{}\n\n", digest.addresses.archive_url));
    }
    for entry in digest.entries.iter().take(shortening.listed) {
        if let Some(section) = &entry.section {
            out.push_str(&section.text());
        }
        out.push_str(&format!("{:>4}. {}\n", entry.number, entry.subject));
        out.push_str(&format!("      {}, {}\n", entry.author, entry.date));
        let excerpt: &[String] = if entry.number <= shortening.whole {
            &entry.excerpt
        } else {
            &[]
        };
        for paragraph in excerpt {
            for line in wrap(paragraph, WIDTH - 6) {
                out.push_str("      ");
                out.push_str(&line);
                out.push('\n');
            }
        }
        out.push_str(&format!("      {}\n", entry.permalink));
        out.push_str(&digest.also_in_text(entry));
        out.push('\n');
    }
    if let Some(line) = more_posts {
        out.push_str(&format!("{line}: {}\n\n", digest.addresses.archive_url));
    }
    out.push_str("-- \n");
    out.push_str(&digest.footer);
    out
}
