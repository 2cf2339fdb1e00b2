//! Header fields and transfer encodings for outgoing mail: RFC 2047
//! encoded-words, folding, mailboxes, dates, base64 and quoted-printable
//! bodies, and the addresses and URLs a list advertises (RFC 2369, RFC 2919,
//! RFC 8058).

use chrono::{DateTime, TimeZone};

use crate::config::{Config, List};

/// Longest header line we write, in octets (RFC 5322 recommends 78).
const LINE: usize = 78;

/// `Name: value` as one header field, folded and encoded per RFC 2047 when
/// the value is not ASCII, ending in CRLF.
pub fn unstructured(name: &str, value: &str) -> String {
    let mut out = String::with_capacity(name.len() + value.len() + 8);
    out.push_str(name);
    out.push(':');
    let value = unfold(value);
    if value.is_ascii() && !looks_encoded(&value) {
        fold_words(&mut out, &value);
    } else {
        encoded_words(&mut out, &value);
    }
    out.push_str("\r\n");
    out
}

/// A header value as it would follow `Name:`, for values built here (the
/// same folding and encoding as [`unstructured`], without name and CRLF).
pub fn encode_value(value: &str) -> String {
    let field = unstructured("X", value);
    field[2..field.len() - 2].to_string()
}

/// Joins folded lines and turns line breaks and tabs into spaces.
pub fn unfold(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut lines = value.split('\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.push_str(&line.replace('\t', " "));
        if let Some(next) = lines.peek() {
            if !next.starts_with([' ', '\t']) {
                out.push(' ');
            }
        }
    }
    out.trim().to_string()
}

/// Whether plain ASCII text would be mistaken for an encoded-word.
fn looks_encoded(value: &str) -> bool {
    value.contains("=?") && value.contains("?=")
}

/// Appends ` word word...` folding before a space whenever a line would
/// pass [`LINE`]. A word longer than a line stays whole (RFC 5322 allows up
/// to 998).
fn fold_words(out: &mut String, value: &str) {
    let mut column = out.len();
    for (index, word) in value.split(' ').enumerate() {
        if index > 0 && column + 1 + word.len() > LINE {
            out.push_str("\r\n");
            column = 0;
        }
        out.push(' ');
        out.push_str(word);
        column += 1 + word.len();
    }
}

/// Appends the value as RFC 2047 B encoded-words in UTF-8, each at most 75
/// characters and never splitting a character, one per folded line.
fn encoded_words(out: &mut String, value: &str) {
    // A line holding encoded-words stays within 76 characters (RFC 2047
    // section 2): " =?utf-8?b?" + base64 + "?=" after what the line already
    // holds, base64 in whole groups of 4 for 3 bytes.
    let mut column = out.len() - out.rfind('\n').map_or(0, |i| i + 1);
    let mut start = 0;
    while start < value.len() {
        let mut room = 76usize.saturating_sub(column + 13) / 4 * 3;
        if room < 12 && column > 0 {
            out.push_str("\r\n");
            column = 0;
            room = 63 / 4 * 3;
        }
        let mut end = (start + room).min(value.len());
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        if end == start {
            // A character longer than the room: cannot happen with room >= 12.
            end = start + value[start..].chars().next().map_or(1, char::len_utf8);
        }
        if column > 0 && start > 0 {
            out.push_str("\r\n");
            column = 0;
        }
        let word = format!(" =?utf-8?b?{}?=", base64(&value.as_bytes()[start..end]));
        column += word.len();
        out.push_str(&word);
        start = end;
    }
}

/// A mailbox `Display Name <address>` (RFC 5322), the name quoted or
/// encoded as needed.
pub fn mailbox(name: &str, address: &str) -> String {
    let name = unfold(name);
    if name.is_empty() {
        return address.to_string();
    }
    format!("{} <{address}>", phrase(&name))
}

/// A display name or List-Id description as an RFC 5322 phrase: atoms as
/// they are, a quoted-string when it has specials, encoded-words when it is
/// not ASCII.
pub fn phrase(text: &str) -> String {
    if !text.is_ascii() || looks_encoded(text) {
        let mut out = String::new();
        encoded_words(&mut out, text);
        return out.trim_start().replace("\r\n ", " ");
    }
    let special = |c: char| "()<>[]:;@\\,.\"".contains(c);
    if text.chars().any(special) {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        text.to_string()
    }
}

/// The RFC 5322 date of `time` in its own timezone.
pub fn rfc5322_date<Tz: TimeZone>(time: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    time.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

/// Base64 (RFC 4648) without line breaks.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Base64 in lines of 76 characters, each ending in CRLF (RFC 2045 6.8).
pub fn base64_body(bytes: &[u8]) -> String {
    let encoded = base64(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 2);
    for line in encoded.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push_str("\r\n");
    }
    out
}

/// Quoted-printable (RFC 2045 6.7) of LF-separated text: lines end in CRLF,
/// soft breaks keep encoded lines within 76 characters.
pub fn quoted_printable(text: &str) -> String {
    quoted_printable_bytes(text.as_bytes())
}

/// [`quoted_printable`] of bytes in any charset.
pub fn quoted_printable_bytes(text: &[u8]) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.split(|&b| b == b'\n') {
        let bytes = line.strip_suffix(b"\r").unwrap_or(line);
        let mut column = 0;
        for (index, &byte) in bytes.iter().enumerate() {
            let last = index + 1 == bytes.len();
            let literal = match byte {
                b'=' => false,
                // Trailing white space would be lost in transport.
                b' ' | b'\t' => !last,
                // A leading dot or "From " is safe to keep, but encoding
                // the dot spares broken relays.
                b'.' => column != 0,
                33..=126 => true,
                _ => false,
            };
            let width = if literal { 1 } else { 3 };
            // Leave room for the "=" of a soft break unless this is the
            // line's last character.
            let limit = if last { 76 } else { 75 };
            if column + width > limit {
                out.push_str("=\r\n");
                column = 0;
            }
            if literal {
                out.push(byte as char);
            } else {
                out.push_str(&format!("={byte:02X}"));
            }
            column += width;
        }
        out.push_str("\r\n");
    }
    // `split` gives a last empty line for text ending in LF; one CRLF too many.
    if text.ends_with(b"\n") {
        out.truncate(out.len() - 2);
    }
    out
}

/// The body of a text part and its Content-Transfer-Encoding: 7bit for
/// ASCII text with short lines, quoted-printable for mostly ASCII text,
/// base64 otherwise (Greek, Russian, Chinese...).
pub fn encode_text(text: &str) -> (&'static str, String) {
    let short_lines = text.split('\n').all(|line| line.len() <= 76);
    if text.is_ascii() && short_lines && !text.contains('\r') {
        let mut body = text.replace('\n', "\r\n");
        if !body.ends_with("\r\n") {
            body.push_str("\r\n");
        }
        return ("7bit", body);
    }
    let non_ascii = text.bytes().filter(|b| !b.is_ascii()).count();
    if non_ascii * 6 < text.len() {
        let mut body = quoted_printable(text);
        if !body.ends_with("\r\n") {
            body.push_str("\r\n");
        }
        ("quoted-printable", body)
    } else {
        ("base64", base64_body(text.as_bytes()))
    }
}

/// A text/* MIME entity: header fields, blank line, encoded body.
pub fn text_entity(subtype: &str, description: Option<&str>, text: &str) -> Vec<u8> {
    let (encoding, body) = encode_text(text);
    let mut out = String::with_capacity(body.len() + 200);
    out.push_str(&format!(
        "Content-Type: text/{subtype}; charset=\"utf-8\"\r\nContent-Transfer-Encoding: {encoding}\r\n"
    ));
    if let Some(description) = description {
        out.push_str(&unstructured("Content-Description", description));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}

/// Text with every line ending in LF turned to CRLF, bare CR left alone.
pub fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 40);
    let mut previous = 0u8;
    for &byte in bytes {
        if byte == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(byte);
        previous = byte;
    }
    out
}

/// The addresses and URLs a list advertises in its headers and masthead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListAddresses {
    /// The posting address.
    pub post: String,
    /// `LIST-request@domain`: subscribe, unsubscribe and help by mail.
    pub request: String,
    /// `LIST-owner@domain`: the editors.
    pub owner: String,
    /// Local part of the VERP envelope sender, `LIST-bounces`.
    pub bounces_local: String,
    /// Domain of the list address.
    pub domain: String,
    /// `list-label.list-id-namespace` of List-Id (RFC 2919): `CODE.DOMAIN`.
    pub list_id: String,
    /// The list's archive page.
    pub archive_url: String,
    /// The page to subscribe on.
    pub subscribe_url: String,
    /// The page explaining how to leave (the same for everyone; the
    /// personal one-click URL goes in List-Unsubscribe only).
    pub unsubscribe_url: String,
    /// Prefix of the personal one-click URL; the subscriber's token follows.
    pub one_click_prefix: String,
}

impl ListAddresses {
    /// The addresses of `list` under the site of `config`.
    pub fn new(config: &Config, list: &List) -> ListAddresses {
        let (local, domain) = list
            .address
            .rsplit_once('@')
            .unwrap_or((list.address.as_str(), config.site.domain.as_str()));
        let base = config.site.base_url.as_str();
        ListAddresses {
            post: list.address.clone(),
            request: format!("{local}-request@{domain}"),
            owner: format!("{local}-owner@{domain}"),
            bounces_local: format!("{local}-bounces"),
            domain: domain.to_string(),
            list_id: format!("{}.{}", list.code, config.site.domain),
            archive_url: format!("{base}lists/{}/", list.code),
            subscribe_url: format!("{base}lists/{}/subscribe", list.code),
            unsubscribe_url: format!("{base}lists/{}/unsubscribe", list.code),
            one_click_prefix: format!("{base}unsubscribe/"),
        }
    }

    /// The VERP envelope sender for `recipient`: `LIST-bounces+user=host@domain`,
    /// so a bounce names the subscriber it is about.
    pub fn verp_sender(&self, recipient: &str) -> String {
        let encoded = match recipient.rsplit_once('@') {
            Some((user, host)) => format!("{user}={host}"),
            None => recipient.to_string(),
        };
        format!("{}+{encoded}@{}", self.bounces_local, self.domain)
    }

    /// The one-click unsubscribe URL of the subscriber with `token` (RFC 8058).
    pub fn one_click_url(&self, token: &str) -> String {
        format!("{}{token}", self.one_click_prefix)
    }

    /// The list header fields every recipient shares (RFC 2369, RFC 2919),
    /// each ending in CRLF: List-Id, List-Post, List-Help, List-Subscribe,
    /// List-Archive and Precedence.
    pub fn shared_fields(&self, list_title: &str) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "List-Id: {} <{}>\r\n",
            phrase(list_title),
            self.list_id
        ));
        out.push_str(&format!("List-Post: <mailto:{}>\r\n", self.post));
        out.push_str(&format!(
            "List-Help: <mailto:{}?subject=help>\r\n",
            self.request
        ));
        out.push_str(&format!(
            "List-Subscribe: <{}>,\r\n <mailto:{}?subject=subscribe>\r\n",
            self.subscribe_url, self.request
        ));
        out.push_str(&format!("List-Archive: <{}>\r\n", self.archive_url));
        out.push_str("Precedence: list\r\n");
        out
    }

    /// List-Unsubscribe with the subscriber's one-click URL and a mailto,
    /// and List-Unsubscribe-Post (RFC 8058), each ending in CRLF.
    pub fn unsubscribe_fields(&self, token: &str) -> String {
        format!(
            "List-Unsubscribe: <{}{token}>,\r\n <mailto:{}?subject=unsubscribe>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
            self.one_click_prefix, self.request
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_words(field: &str) -> String {
        // A minimal decoder for the tests: our own B words only.
        let value = field.split_once(':').unwrap().1.replace("\r\n", "");
        let mut out = Vec::new();
        for word in value.split_whitespace() {
            let payload = word
                .strip_prefix("=?utf-8?b?")
                .and_then(|w| w.strip_suffix("?="))
                .expect("encoded word");
            out.extend(debase64(payload));
        }
        String::from_utf8(out).unwrap()
    }

    fn debase64(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
        let mut out = Vec::new();
        for chunk in bytes.chunks(4) {
            let mut n = 0u32;
            for (i, &c) in chunk.iter().enumerate() {
                n |= u32::from(value(c)) << (18 - 6 * i);
            }
            for i in 0..chunk.len() - 1 {
                out.push((n >> (16 - 8 * i)) as u8);
            }
        }
        out
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn non_ascii_subjects_are_encoded_words_of_at_most_75_characters() {
        let subject = "A-Infos Ελληνικά Σύνοψη, Τόμος 2026, Τεύχος 12 — 中文 Türkçe Русский";
        let field = unstructured("Subject", subject);
        for line in field.trim_end().split("\r\n") {
            assert!(line.len() <= 78, "{line}");
            let word = line.trim_start().trim_start_matches("Subject: ");
            assert!(word.len() <= 75, "{word}");
        }
        assert_eq!(decode_words(&field), subject);
    }

    #[test]
    fn long_ascii_values_fold_at_spaces() {
        let subject = "word ".repeat(40);
        let field = unstructured("Subject", subject.trim());
        assert!(field.split("\r\n").all(|line| line.len() <= 78));
        assert_eq!(
            field.replace("\r\n", "").trim_end(),
            format!("Subject: {}", subject.trim())
        );
    }

    #[test]
    fn quoted_printable_keeps_lines_short_and_round_trips_utf8() {
        let text = format!("{}é\nend = here \n", "x".repeat(100));
        let encoded = quoted_printable(&text);
        assert!(
            encoded.split("\r\n").all(|line| line.len() <= 76),
            "{encoded}"
        );
        assert!(encoded.contains("=C3=A9"));
        assert!(encoded.contains("end =3D here=20\r\n"));
    }

    #[test]
    fn phrases_quote_specials_and_encode_non_ascii() {
        assert_eq!(phrase("A-Infos English"), "A-Infos English");
        assert_eq!(
            phrase("A-Infos: The Supplement"),
            "\"A-Infos: The Supplement\""
        );
        assert!(phrase("A-Infos Ελληνικά").starts_with("=?utf-8?b?"));
    }

    #[test]
    fn verp_sender_encodes_the_recipient() {
        let config = crate::config::parse(
            crate::config::EMBEDDED_LISTS_TOML,
            "lists.toml",
            std::path::Path::new("."),
        )
        .unwrap();
        let list = config.list("en").unwrap();
        let addresses = ListAddresses::new(&config, list);
        assert_eq!(
            addresses.verp_sender("alice+news@example.com"),
            "a-infos-en-bounces+alice+news=example.com@lists.example.org"
        );
        assert_eq!(addresses.list_id, "en.lists.example.org");
    }
}
