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

/// The fields RFC 1153 keeps of each post, as they head its part.
const KEPT: [&str; 7] = [
    "Date",
    "From",
    "To",
    "Cc",
    "Subject",
    "Message-ID",
    "Keywords",
];

/// The plain digest's text (CRLF line ends) with each post's non-ASCII
/// header fields written as RFC 2047 encoded-words, for a relay that takes
/// no 8-bit text, so that quoted-printable needs no soft line break among
/// them and a burster reading the decoded digest finds every field whole.
/// A post's part begins after a separator line and an empty line; its
/// fields run to the next empty line. None when every such field is ASCII.
pub fn encoded_fields(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let (mut after_separator, mut in_fields, mut changed) = (false, false, false);
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\r', '\n']);
        if in_fields && bare.is_empty() {
            in_fields = false;
        }
        let field = bare
            .split_once(": ")
            .filter(|(name, _)| KEPT.contains(name));
        match field {
            Some((name, value)) if in_fields && !bare.is_ascii() => {
                out.push_str(&quoted_printable_safe_field(name, value));
                changed = true;
            }
            _ => out.push_str(line),
        }
        if after_separator && bare.is_empty() {
            in_fields = true;
        }
        after_separator = bare == SEPARATOR || bare == PREAMBLE_END;
    }
    changed.then_some(out)
}

/// `name: value` as a 7-bit field ending in CRLF whose lines stay within
/// 76 characters once quoted-printable has turned each `=` into `=3D`:
/// text and display names as base64 encoded-words short enough for that
/// (email-encoding folds at 76 before that growth, so it cannot serve
/// here), addresses as they are.
fn quoted_printable_safe_field(name: &str, value: &str) -> String {
    let mut out = format!("{name}:");
    let mailboxes = matches!(name, "From" | "To" | "Cc")
        .then(|| mailboxes(name, value))
        .flatten();
    match mailboxes {
        Some(mailboxes) => {
            for (index, (display_name, address)) in mailboxes.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                if !display_name.is_empty() {
                    push_encoded_words(&mut out, display_name);
                }
                let address = format!("<{address}>");
                if line_length(&out) + 1 + address.len() > 76 {
                    out.push_str("\r\n");
                }
                out.push(' ');
                out.push_str(&address);
            }
        }
        None => push_encoded_words(&mut out, value),
    }
    out.push_str("\r\n");
    out
}

/// The mailboxes of an address field's value, their addresses ASCII, or
/// None.
fn mailboxes(name: &str, value: &str) -> Option<Vec<(String, String)>> {
    let header = format!("{name}: {value}\r\n\r\n");
    let parsed = MessageParser::default().parse_headers(header.as_bytes())?;
    let list = parsed.header(name)?.as_address()?.as_list()?;
    let mailboxes: Option<Vec<(String, String)>> = list
        .iter()
        .map(|a| {
            let address = a.address().filter(|a| a.is_ascii() && !a.is_empty())?;
            Some((
                a.name().unwrap_or_default().to_string(),
                address.to_string(),
            ))
        })
        .collect();
    mailboxes.filter(|m| !m.is_empty())
}

/// Appends `text` as base64 encoded-words, each after a space, folding
/// before one that would end past column 76 once quoted-printable has
/// written its three or four `=` as `=3D` (six characters more).
fn push_encoded_words(out: &mut String, text: &str) {
    use base64::Engine as _;
    // " =?utf-8?b?" and "?=", each `=` three characters, and up to two
    // `=` of padding: what a word costs besides its base64 text.
    const COST: usize = 1 + 12 + 4 + 4;
    let mut rest = text;
    while !rest.is_empty() {
        let room = 76usize.saturating_sub(line_length(out) + COST);
        if room < 8 && line_length(out) > 1 {
            out.push_str("\r\n");
            continue;
        }
        let mut end = rest.len().min((room / 4).max(1) * 3);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        if end == 0 {
            end = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        out.push_str(" =?utf-8?b?");
        out.push_str(&base64::engine::general_purpose::STANDARD.encode(&rest[..end]));
        out.push_str("?=");
        rest = &rest[end..];
        if !rest.is_empty() {
            out.push_str("\r\n");
        }
    }
}

/// The length of the last line of `text`.
fn line_length(text: &str) -> usize {
    text.len() - text.rfind('\n').map_or(0, |i| i + 1)
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
    let trailer = &digest.trailer;
    out.push_str(trailer);
    out.push('\n');
    out.push_str(&"*".repeat(trailer.chars().count()));
    out.push('\n');
    out
}

/// The header fields RFC 1153 keeps, in its order (Date, From, To, Cc,
/// Subject, Message-ID, Keywords), those the post has.
pub fn kept_fields(entry: &Entry<'_>) -> Vec<(&'static str, String)> {
    let mut fields = fields_as_sent(entry);
    for (_, value) in &mut fields {
        *value = one_line(value);
    }
    fields
}

/// A field's value on one line, as a digest may carry it: every control
/// character (CR and LF decoded from an encoded-word among them, which
/// would otherwise start a fake post or a `Bcc:` line) and every
/// reordering format ([`crate::text::is_spoofing_format`]) made a space,
/// runs of white space one.
fn one_line(value: &str) -> String {
    let spaced: String = value
        .chars()
        .map(|c| {
            if c.is_control() || crate::text::is_spoofing_format(c) {
                ' '
            } else {
                c
            }
        })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn fields_as_sent(entry: &Entry<'_>) -> Vec<(&'static str, String)> {
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
