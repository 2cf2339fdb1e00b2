//! The plain-text digest in RFC 1153 layout:
//!
//! ```text
//! preamble (masthead, table of contents)
//! ---------------------------------------------------------------------- (70)
//!
//! Date: / From: / To: / Cc: / Subject: / Message-ID: / Keywords:
//!
//! body
//!
//! ------------------------------ (30)
//!
//! ...
//!
//! ------------------------------
//!
//! End of LIST Digest V1 Issue #3
//! ******************************
//! ```
//!
//! Each post keeps only the header fields RFC 1153 keeps, in its order,
//! decoded to UTF-8 on one line each; its body is the stored text with
//! leading and trailing blank lines removed and every line of exactly 30
//! hyphens escaped by turning its first character into a blank.

use mail_parser::{Address, HeaderValue, MessageParser};

use super::headers::{self, text_entity_8bit};
use super::original::Original;
use super::{Digest, Entry};

/// The line that ends the preamble.
pub const PREAMBLE_END: &str =
    "----------------------------------------------------------------------";

/// The line between posts.
pub const SEPARATOR: &str = "------------------------------";

/// The text/plain entity of the plain digest: 8bit, so that it can be
/// burst as it arrives ([`headers::text_entity_8bit`]).
pub fn render_plain_entity(digest: &Digest<'_>) -> Vec<u8> {
    text_entity_8bit("plain", None, &render_plain(digest))
}

/// The RFC 1153 text of a digest (LF line ends).
pub fn render_plain(digest: &Digest<'_>) -> String {
    let mut out = String::with_capacity(
        digest
            .entries
            .iter()
            .map(|e| e.pending.post.body.len() + 512)
            .sum::<usize>()
            + 4096,
    );
    out.push_str(&digest.masthead);
    out.push('\n');
    out.push_str(&digest.table_of_contents());
    out.push('\n');
    out.push_str(PREAMBLE_END);
    out.push_str("\n\n");
    for entry in &digest.entries {
        for (name, value) in kept_fields(entry) {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(&value);
            out.push('\n');
        }
        out.push('\n');
        let body = escaped_body(&entry.pending.post.body);
        if !body.is_empty() {
            out.push_str(&body);
            out.push('\n');
        }
        out.push('\n');
        out.push_str(SEPARATOR);
        out.push_str("\n\n");
    }
    let trailer = format!(
        "End of {} Digest V{} Issue #{}",
        digest.list.title, digest.volume, digest.issue
    );
    out.push_str(&trailer);
    out.push('\n');
    out.push_str(&"*".repeat(trailer.chars().count()));
    out.push('\n');
    out
}

/// The header fields RFC 1153 keeps, in its order (Date, From, To, Cc,
/// Subject, Message-ID, Keywords), those the post has.
pub fn kept_fields(entry: &Entry<'_>) -> Vec<(&'static str, String)> {
    let post = &entry.pending.post;
    let original = entry.pending.raw.as_deref().map(Original::parse);
    let parsed = entry
        .pending
        .raw
        .as_deref()
        .and_then(|raw| MessageParser::default().parse_headers(raw));
    let mut fields = Vec::new();
    let date = post.date_header.clone().or_else(|| {
        original
            .as_ref()
            .and_then(|o| o.field("date"))
            .map(|f| f.value())
    });
    if let Some(date) = date {
        fields.push(("Date", headers::unfold(&date)));
    }
    if !post.author_address.is_empty() || !post.author_name.is_empty() {
        let from = if post.author_name.trim().is_empty() {
            post.author_address.clone()
        } else {
            format!(
                "{} <{}>",
                headers::unfold(&post.author_name),
                post.author_address
            )
        };
        fields.push(("From", from));
    }
    if let Some(parsed) = &parsed {
        if let Some(to) = parsed.to() {
            fields.push(("To", addresses(to)));
        }
        if let Some(cc) = parsed.cc() {
            fields.push(("Cc", addresses(cc)));
        }
    }
    fields.push(("Subject", headers::unfold(&post.subject)));
    if let Some(id) = &post.message_id {
        let id = id.trim();
        let id = if id.starts_with('<') {
            id.to_string()
        } else {
            format!("<{id}>")
        };
        fields.push(("Message-ID", id));
    }
    if let Some(parsed) = &parsed {
        let keywords = match parsed.keywords() {
            HeaderValue::TextList(list) => list.join(", "),
            HeaderValue::Text(text) => text.to_string(),
            _ => String::new(),
        };
        if !keywords.trim().is_empty() {
            fields.push(("Keywords", headers::unfold(&keywords)));
        }
    }
    fields
}

fn addresses(address: &Address<'_>) -> String {
    address
        .iter()
        .filter_map(|addr| {
            let email = addr.address.as_deref().unwrap_or("");
            match addr
                .name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
            {
                Some(name) if !email.is_empty() => Some(format!("{name} <{email}>")),
                Some(name) => Some(name.to_string()),
                None if !email.is_empty() => Some(email.to_string()),
                None => None,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A post body as RFC 1153 carries it: no leading or trailing blank lines,
/// and a blank in place of the first hyphen of any line of exactly 30.
pub fn escaped_body(body: &str) -> String {
    let lines: Vec<&str> = body
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .collect();
    let start = lines
        .iter()
        .position(|line| !line.trim().is_empty())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|line| !line.trim().is_empty())
        .map_or(start, |i| i + 1);
    lines[start..end]
        .iter()
        .map(|line| {
            if *line == SEPARATOR {
                format!(" {}", &SEPARATOR[1..])
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_lose_outer_blank_lines_and_escape_separators() {
        let body = "\n\n  \nFirst\n------------------------------\n-------------------------------\nLast\n\n\n";
        assert_eq!(
            escaped_body(body),
            "First\n -----------------------------\n-------------------------------\nLast"
        );
    }
}
