//! Header fields and transfer encodings for outgoing mail: RFC 2047
//! encoded-words, folding, mailboxes, dates, base64 and quoted-printable
//! bodies, and the addresses and URLs a list advertises (RFC 2369, RFC 2919,
//! RFC 8058).
//!
//! The encoding itself is lettre's: `email-encoding` writes encoded-words
//! and folds lines, `quoted_printable` and `email-encoding` encode bodies.
//! What is decided here is what to encode: a value that is not ASCII, or
//! ASCII that a reader would take for an encoded-word, becomes encoded-words
//! as a whole; a phrase with specials is quoted.

use std::fmt::{self, Write as _};

use chrono::{DateTime, TimeZone};
use email_encoding::headers::rfc2047;
use email_encoding::headers::writer::EmailWriter;

use crate::config::{Config, List};

/// `Name: value` as one header field, folded and encoded per RFC 2047 when
/// the value is not ASCII, ending in CRLF.
pub fn unstructured(name: &str, value: &str) -> String {
    let value = unfold(value);
    field(name, |writer| {
        if value.is_ascii() && !looks_encoded(&value) {
            writer.folding().write_str(&value)
        } else {
            rfc2047::encode(&value, writer)
        }
    })
}

/// The value of an unstructured `name` field as it follows `Name:` (the
/// same folding and encoding as [`unstructured`], without name and CRLF),
/// for fields written elsewhere.
pub fn encode_value(name: &str, value: &str) -> String {
    let field = unstructured(name, value);
    field[name.len() + 1..field.len() - 2].to_string()
}

/// Joins folded lines and turns line breaks, tabs and any other control
/// character (a bare CR a decoded name may hold) into spaces, so that no
/// value written into a field can end it.
pub fn unfold(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut lines = value.split('\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.extend(line.chars().map(|c| if c.is_control() { ' ' } else { c }));
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

/// `Name:` and what `write` writes after one space, folded by
/// [`EmailWriter`] (lines within 76 characters where a space allows, an
/// encoded-word never longer than 75), ending in CRLF.
fn field(name: &str, write: impl FnOnce(&mut EmailWriter<'_>) -> fmt::Result) -> String {
    let mut out = String::with_capacity(name.len() + 80);
    out.push_str(name);
    out.push(':');
    {
        // One space after the colon, and no fold before the first word.
        let column = out.len();
        let mut writer = EmailWriter::new(&mut out, column, 1, false);
        write(&mut writer).expect("writing to a String cannot fail");
    }
    out.push_str("\r\n");
    out
}

/// A mailbox field, `Name: Display Name <address>` (RFC 5322), the display
/// name quoted or encoded as needed, ending in CRLF.
pub fn mailbox_field(name: &str, display_name: &str, address: &str) -> String {
    if unfold(display_name).is_empty() {
        return field(name, |writer| writer.write_str(address));
    }
    phrase_field(name, display_name, address)
}

/// A field of mailboxes, `Name: Display Name <address>, other@host`, each
/// display name quoted or encoded as needed, ending in CRLF.
pub fn mailbox_list_field(name: &str, mailboxes: &[(&str, &str)]) -> String {
    let addressees: Vec<Addressee<'_>> = mailboxes
        .iter()
        .map(|&(display_name, address)| Addressee::Mailbox(display_name, address))
        .collect();
    address_list_field(name, &addressees)
}

/// One entry of an address field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressee<'a> {
    /// A display name (may be empty) and an ASCII address.
    Mailbox(&'a str, &'a str),
    /// A mailbox whose address is not ASCII, carried without SMTPUTF8 as
    /// RFC 6857 3.1.10 downgrades it: an empty group whose name is the
    /// whole mailbox as encoded-words (`=?utf-8?b?...?= :;`), which a
    /// reader shows as written and nobody can reply to by mistake.
    Unreachable(&'a str),
}

/// A field of [`Addressee`]s, separated by commas, ending in CRLF.
pub fn address_list_field(name: &str, addressees: &[Addressee<'_>]) -> String {
    field(name, |writer| {
        for (index, addressee) in addressees.iter().enumerate() {
            if index > 0 {
                writer.write_char(',')?;
                writer.space();
            }
            match *addressee {
                Addressee::Mailbox(display_name, address) => {
                    let display_name = unfold(display_name);
                    if !display_name.is_empty() {
                        write_phrase(&display_name, writer)?;
                        writer.space();
                        writer.folding().write_str(&format!("<{address}>"))?;
                    } else {
                        writer.folding().write_str(address)?;
                    }
                }
                Addressee::Unreachable(mailbox) => {
                    rfc2047::encode(&unfold(mailbox), writer)?;
                    writer.space();
                    writer.folding().write_str(":;")?;
                }
            }
        }
        Ok(())
    })
}

/// `Name: type/subtype; key=value...` (a Content-Type or
/// Content-Disposition), each parameter quoted or, when it is not ASCII,
/// encoded per RFC 2231 (`filename*=utf-8''%CE%B1.pdf`), ending in CRLF.
///
/// email-encoding's RFC 2231 encoder takes names of letters and digits
/// alone: another name that is a token (`creation-date`) is written with
/// its value quoted when that is printable ASCII, and a parameter that is
/// neither is left out, as nothing a reader needs is lost with it.
pub fn parameter_field(name: &str, value: &str, parameters: &[(&str, &str)]) -> String {
    let encodable = |key: &str| {
        !key.is_empty() && key.len() <= 40 && key.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    let token = |key: &str| {
        !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
    };
    let printable = |text: &str| text.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    field(name, |writer| {
        writer.folding().write_str(&unfold(value))?;
        for &(key, parameter) in parameters {
            if encodable(key) {
                writer.write_char(';')?;
                writer.space();
                email_encoding::headers::rfc2231::encode(key, parameter, writer)?;
            } else if token(key) && printable(parameter) {
                writer.write_char(';')?;
                writer.space();
                let escaped = parameter.replace('\\', "\\\\").replace('"', "\\\"");
                writer
                    .folding()
                    .write_str(&format!("{key}=\"{escaped}\""))?;
            }
        }
        Ok(())
    })
}

/// `Name: phrase <id>`, ending in CRLF: a display name and its address
/// (RFC 5322 name-addr), or a description and its List-Id (RFC 2919).
fn phrase_field(name: &str, phrase: &str, bracketed: &str) -> String {
    let phrase = unfold(phrase);
    field(name, |writer| {
        if !phrase.is_empty() {
            write_phrase(&phrase, writer)?;
            writer.space();
        }
        writer.folding().write_str(&format!("<{bracketed}>"))
    })
}

/// Writes a display name or List-Id description as an RFC 5322 phrase:
/// atoms as they are, a quoted-string when it has specials, encoded-words
/// when it is not ASCII (or looks encoded).
///
/// `email-encoding`'s own `quoted_string::encode` is stricter: it quotes
/// any space and turns every other special (`:`, `,`, `(`...) into
/// encoded-words, which RFC 5322 does not ask for and readers show less
/// well in a raw header.
fn write_phrase(text: &str, writer: &mut EmailWriter<'_>) -> fmt::Result {
    if !text.is_ascii() || looks_encoded(text) {
        return rfc2047::encode(text, writer);
    }
    let special = |c: char| "()<>[]:;@\\,.\"".contains(c);
    if text.chars().any(special) {
        // Escaping doubles every backslash, so a fold at a space never
        // follows an unfinished quoted-pair.
        let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
        writer.write_char('"')?;
        writer.folding().write_str(&escaped)?;
        writer.write_char('"')
    } else {
        writer.folding().write_str(text)
    }
}

/// The RFC 5322 date of `time` in its own timezone.
pub fn rfc5322_date<Tz: TimeZone>(time: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    time.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

/// Base64 in lines of 76 characters, each ending in CRLF (RFC 2045 6.8).
pub fn base64_body(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(email_encoding::body::base64::encoded_len(bytes.len()) + 2);
    email_encoding::body::base64::encode(bytes, &mut out).expect("writing to a String cannot fail");
    if !out.is_empty() {
        out.push_str("\r\n");
    }
    out
}

/// Quoted-printable (RFC 2045 6.7) of text in any charset whose lines end in
/// LF or CRLF: lines end in CRLF, soft breaks keep encoded lines within 76
/// characters, and white space at the end of a line is encoded.
///
/// A line starting with "." is left as it is: every transport dot-stuffs
/// (our SMTP writer, lettre's, `sendmail -i`), which is where that matters.
pub fn quoted_printable(text: &[u8]) -> String {
    // The crate takes CRLF for a line break and would encode a bare LF.
    quoted_printable::encode_to_str(crlf(text))
}

/// The body of a text part and its Content-Transfer-Encoding: 7bit for
/// ASCII text with short lines, quoted-printable for mostly ASCII text,
/// base64 otherwise (Greek, Russian, Chinese...).
///
/// Not `email_encoding::body::Encoding::choose`: it calls ASCII with a bare
/// CR 7bit, and a line of 75 or 76 characters too long for 7bit, which
/// would make every RFC 1153 digest (76 columns) quoted-printable.
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
        let mut body = quoted_printable(text.as_bytes());
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

/// A text/* MIME entity sent as it reads: 8bit UTF-8 (RFC 6152), or 7bit
/// when the text is ASCII. A reader that does not decode
/// MIME, such as procmail's `formail` bursting an RFC 1153 digest, sees the
/// text itself. A relay without 8BITMIME gets it quoted-printable instead
/// ([`downgrade_8bit`]).
///
/// The text is first made fit for SMTP ([`fit_for_smtp`]): a line over 998
/// octets (an unwrapped paragraph of Greek or Chinese) is broken, so that
/// no text, however long its lines, falls back to an encoding a burster
/// cannot read.
pub fn text_entity_8bit(subtype: &str, description: Option<&str>, text: &str) -> Vec<u8> {
    let text = fit_for_smtp(text);
    // ASCII within SMTP's lines is 7bit (RFC 2045 2.7), whatever its width.
    let encoding = if text.is_ascii() {
        "Content-Transfer-Encoding: 7bit\r\n"
    } else {
        EIGHT_BIT
    };
    let mut body = text.replace('\n', "\r\n");
    if !body.ends_with("\r\n") {
        body.push_str("\r\n");
    }
    let mut out = String::with_capacity(body.len() + 200);
    out.push_str(&format!(
        "Content-Type: text/{subtype}; charset=\"utf-8\"\r\n{encoding}"
    ));
    if let Some(description) = description {
        out.push_str(&unstructured("Content-Description", description));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}

/// The longest line SMTP carries, without its CRLF (RFC 5321 4.5.3.1.6).
pub const MAX_LINE: usize = 998;

/// `text` as 8bit MIME may carry it (RFC 2045 2.8): line ends LF (CRLF and
/// a bare CR become LF), no NUL, and no line over 998 octets. A longer line
/// is broken before the last space that keeps it within the limit, or,
/// where it has none, at a character boundary with a space put before the
/// rest. Every piece after the first thus begins with white space: a header
/// line of a post in a plain digest goes on as a folded line, and no piece
/// of a poster's line can be read as a field or as the digest's separator.
pub fn fit_for_smtp(text: &str) -> std::borrow::Cow<'_, str> {
    let fits = !text.contains(['\0', '\r']) && text.split('\n').all(|line| line.len() <= MAX_LINE);
    if fits {
        return text.into();
    }
    let text = text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\0', "");
    let mut out = String::with_capacity(text.len() + text.len() / MAX_LINE * 2 + 1);
    for (index, mut line) in text.split('\n').enumerate() {
        if index > 0 {
            out.push('\n');
        }
        // Whether the rest of the line, cut where it had no space, is to
        // be written after one.
        let mut indent = false;
        loop {
            let room = MAX_LINE - usize::from(indent);
            if indent {
                out.push(' ');
            }
            if line.len() <= room {
                out.push_str(line);
                break;
            }
            let mut end = room;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            // Before a space, which then begins the next piece; never at 0,
            // which would make no progress.
            let space = if line[end..].starts_with([' ', '\t']) {
                Some(end)
            } else {
                line[..end].rfind([' ', '\t'])
            };
            let (at, hard) = match space {
                Some(space) if space > 0 => (space, false),
                _ => (end, true),
            };
            out.push_str(&line[..at]);
            out.push('\n');
            line = &line[at..];
            indent = hard;
        }
    }
    out.into()
}

const EIGHT_BIT: &str = "Content-Transfer-Encoding: 8bit\r\n";

/// An entity of [`text_entity_8bit`] made 7-bit for a relay without
/// 8BITMIME: its body quoted-printable. `None` when it is not such an
/// entity (it is 7-bit already, or a multipart one).
pub fn downgrade_8bit(entity: &[u8]) -> Option<Vec<u8>> {
    let end = memchr::memmem::find(entity, b"\r\n\r\n")?;
    let (head, body) = (&entity[..end + 2], &entity[end + 4..]);
    let head = std::str::from_utf8(head).ok()?;
    let at = head.find(EIGHT_BIT)?;
    if !head.starts_with("Content-Type: text/") {
        return None;
    }
    let mut out = Vec::with_capacity(entity.len() * 3 / 2);
    out.extend_from_slice(&head.as_bytes()[..at]);
    out.extend_from_slice(b"Content-Transfer-Encoding: quoted-printable\r\n");
    out.extend_from_slice(&head.as_bytes()[at + EIGHT_BIT.len()..]);
    out.extend_from_slice(b"\r\n");
    // A plain digest's posts keep their header fields whole (no soft break).
    let fields = std::str::from_utf8(body)
        .ok()
        .and_then(super::plain::encoded_fields);
    let body = fields.as_ref().map_or(body, |text| text.as_bytes());
    let mut encoded = quoted_printable(body);
    if !encoded.ends_with("\r\n") {
        encoded.push_str("\r\n");
    }
    out.extend_from_slice(encoded.as_bytes());
    Some(out)
}

/// Text with every line ending in CRLF: a lone LF or a lone CR (which
/// old Macs wrote and SMTP forbids, RFC 5321 2.3.8) each becomes CRLF.
pub fn crlf(bytes: &[u8]) -> Vec<u8> {
    line_ends(bytes, b"\r\n")
}

/// Header field text with every line ending in CRLF and a lone CR made a
/// space: a bare CR is no line break to a digest's reader, but some read
/// it as one, and `Subject: x<CR>Bcc: y` would then be two fields.
pub fn field_crlf(bytes: &[u8]) -> Vec<u8> {
    line_ends(bytes, b" ")
}

/// A whole message as SMTP carries it: lines ending in CRLF, its header's
/// lone CRs made spaces ([`field_crlf`]) and its body's line breaks
/// ([`crlf`]). The header ends at the first empty line.
pub fn message_crlf(raw: &[u8]) -> Vec<u8> {
    let mut start = 0;
    let header_end = loop {
        let Some(newline) = raw[start..].iter().position(|&b| b == b'\n') else {
            break raw.len();
        };
        let line = &raw[start..start + newline];
        if line.is_empty() || line == b"\r" {
            break start;
        }
        start += newline + 1;
    };
    let mut out = field_crlf(&raw[..header_end]);
    out.extend_from_slice(&crlf(&raw[header_end..]));
    out
}

/// `bytes` with LF and CRLF ends made CRLF and a CR not before an LF
/// replaced by `bare_cr`.
fn line_ends(bytes: &[u8], bare_cr: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 40);
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
        out.extend_from_slice(&rest[..at]);
        if rest[at] == b'\n' {
            out.extend_from_slice(b"\r\n");
            rest = &rest[at + 1..];
        } else if rest.get(at + 1) == Some(&b'\n') {
            out.extend_from_slice(b"\r\n");
            rest = &rest[at + 2..];
        } else {
            out.extend_from_slice(bare_cr);
            rest = &rest[at + 1..];
        }
    }
    out.extend_from_slice(rest);
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
    /// Prefix of the personal one-click URL, the subscriber's token to
    /// follow; `None` when base_url is not https, which RFC 8058 requires
    /// of it (the mailto then stands alone).
    pub one_click_prefix: Option<String>,
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
            one_click_prefix: (config.site.base_url.scheme() == "https")
                .then(|| format!("{base}unsubscribe/")),
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

    /// The one-click unsubscribe URL of the subscriber with `token` (RFC
    /// 8058), when base_url is https.
    pub fn one_click_url(&self, token: &str) -> Option<String> {
        self.one_click_prefix
            .as_ref()
            .map(|prefix| format!("{prefix}{token}"))
    }

    /// `LIST-confirm+TOKEN@domain`: where the reply to a confirmation goes.
    pub fn confirm_address(&self, token: &str) -> String {
        let local = self
            .request
            .trim_end_matches(&format!("-request@{}", self.domain));
        format!("{local}-confirm+{token}@{}", self.domain)
    }

    /// The List-Id field (RFC 2919) alone, ending in CRLF.
    pub fn list_id_field(&self, list_title: &str) -> String {
        phrase_field("List-Id", list_title, &self.list_id)
    }

    /// The list header fields every recipient shares (RFC 2369, RFC 2919),
    /// each ending in CRLF: List-Id, List-Post, List-Help, List-Subscribe,
    /// List-Archive and Precedence.
    pub fn shared_fields(&self, list_title: &str) -> String {
        let mut out = String::new();
        out.push_str(&phrase_field("List-Id", list_title, &self.list_id));
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
    /// and List-Unsubscribe-Post (RFC 8058), each ending in CRLF; without
    /// https, the mailto alone.
    pub fn unsubscribe_fields(&self, token: &str) -> String {
        match self.one_click_url(token) {
            Some(url) => format!(
                "List-Unsubscribe: <{url}>,\r\n <mailto:{}?subject=unsubscribe>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
                self.request
            ),
            None => format!(
                "List-Unsubscribe: <mailto:{}?subject=unsubscribe>\r\n",
                self.request
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    use mail_parser::MessageParser;

    use super::*;

    #[test]
    fn a_message_s_lone_crs_end_lines_in_its_body_and_are_spaces_in_its_header() {
        let raw = b"Subject: a\rBcc: x@y.org\nTo: b\r\n\nline\rnext\nlast\r";
        assert_eq!(
            message_crlf(raw),
            b"Subject: a Bcc: x@y.org\r\nTo: b\r\n\r\nline\r\nnext\r\nlast\r\n"
        );
        assert_eq!(crlf(b"a\r\nb\nc\rd"), b"a\r\nb\r\nc\r\nd");
        assert_eq!(field_crlf(b"To: a\r\n b\rc"), b"To: a\r\n b c");
        // No empty line: all header.
        assert_eq!(message_crlf(b"X: a\rb"), b"X: a b");
    }

    /// The text of a field's encoded-words, each decoded on its own: a word
    /// that split a character would not be UTF-8.
    fn decode_words(field: &str) -> String {
        let value = field.split_once(':').unwrap().1.replace("\r\n", "");
        let mut out = String::new();
        for word in value.split_whitespace() {
            let payload = word
                .strip_prefix("=?utf-8?b?")
                .and_then(|w| w.strip_suffix("?="))
                .expect("encoded word");
            let bytes = BASE64.decode(payload).expect("base64");
            out.push_str(&String::from_utf8(bytes).expect("whole characters"));
        }
        out
    }

    /// The message a reader (mail-parser) makes of `fields`.
    fn parsed(fields: &str) -> mail_parser::Message<'_> {
        MessageParser::default()
            .parse(fields.as_bytes())
            .expect("a message")
    }

    /// A phrase written at the start of a line.
    fn phrase(text: &str) -> String {
        let mut out = String::new();
        {
            let mut writer = EmailWriter::new(&mut out, 0, 0, false);
            write_phrase(text, &mut writer).unwrap();
        }
        out
    }

    fn assert_lines_within(field: &str, limit: usize) {
        for line in field.trim_end().split("\r\n") {
            assert!(line.len() <= limit, "{} > {limit}: {line}", line.len());
        }
    }

    #[test]
    fn base64_bodies_match_rfc_4648_vectors_in_lines_of_76() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg==\r\n"),
            ("fo", "Zm8=\r\n"),
            ("foo", "Zm9v\r\n"),
            ("foob", "Zm9vYg==\r\n"),
            ("fooba", "Zm9vYmE=\r\n"),
            ("foobar", "Zm9vYmFy\r\n"),
        ] {
            assert_eq!(base64_body(plain.as_bytes()), encoded);
        }
        let bytes: Vec<u8> = (0..=255).collect();
        let body = base64_body(&bytes);
        let lines: Vec<&str> = body.strip_suffix("\r\n").unwrap().split("\r\n").collect();
        assert!(lines[..lines.len() - 1].iter().all(|line| line.len() == 76));
        assert_eq!(BASE64.decode(lines.concat()).unwrap(), bytes);
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
        assert_eq!(parsed(&field).subject(), Some(subject));
    }

    #[test]
    fn ascii_that_looks_encoded_is_encoded() {
        let subject = "=?utf-8?b?U3Bvb2Y=?= is not a word";
        let field = unstructured("Subject", subject);
        assert!(field.starts_with("Subject: =?utf-8?b?"), "{field}");
        assert_eq!(parsed(&field).subject(), Some(subject));
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
    fn an_encoded_value_folds_for_its_own_field_name() {
        // Regression: values were folded as if they followed "X:", so a
        // Subject's first line ran 6 characters past the others.
        for subject in ["word ".repeat(30), "Ελληνικά ".repeat(12)] {
            let field = format!("Subject:{}\r\n", encode_value("Subject", subject.trim()));
            assert_eq!(field, unstructured("Subject", &subject));
            assert_lines_within(&field, 78);
        }
    }

    #[test]
    fn without_8bitmime_a_plain_digests_post_fields_are_encoded_words_never_soft_broken() {
        use crate::digest::plain::{PREAMBLE_END, SEPARATOR};
        let subject =
            "(gr) Ελλάδα, Αναρχική Ομοσπονδία: γενική απεργία στην Αθήνα και σε όλη τη χώρα";
        let digest = format!(
            "A-Infos (gr) Digest\n\nΣήμερα:\n   1. {subject}\n\n{PREAMBLE_END}\n\n\
Date: Fri, 4 Feb 2022 10:00:00 +0200\nFrom: Αναρχική Ομοσπονδία <ao@example.gr>\n\
Subject: {subject}\n\nΚείμενο της ανακοίνωσης.\nSubject: Ελλάδα (in the body)\n\n\
{SEPARATOR}\n\nDate: Sat, 5 Feb 2022 10:00:00 +0200\nFrom: a@example.org\n\
Subject: (gr) Δεύτερο\n\nΔεύτερο κείμενο.\n\n{SEPARATOR}\n\nEnd of A-Infos (gr) Digest\n"
        );
        let entity = text_entity_8bit("plain", None, &digest);
        let seven = downgrade_8bit(&entity).unwrap();
        assert!(seven.is_ascii());
        let sent = String::from_utf8(seven.clone()).unwrap();
        let body = &sent[sent.find("\r\n\r\n").unwrap() + 4..];
        // Every line of a post's fields is whole: no soft break among them.
        for block in body.split(&format!("{SEPARATOR}\r\n\r\n")).skip(1) {
            let fields = block.split("\r\n\r\n").next().unwrap();
            assert!(!fields.contains("=\r\n"), "{fields}");
            assert_lines_within(fields, 76);
        }
        // Decoded, each post is a message whose fields read as written.
        let parsed = mail_parser::MessageParser::default().parse(&seven).unwrap();
        let text = parsed.body_text(0).unwrap().replace("\r\n", "\n");
        let first = text.split(&format!("{PREAMBLE_END}\n\n")).nth(1).unwrap();
        let post = mail_parser::MessageParser::default()
            .parse(first.as_bytes())
            .unwrap();
        assert_eq!(post.subject(), Some(subject));
        let from = post.from().unwrap().first().unwrap();
        assert_eq!(from.name(), Some("Αναρχική Ομοσπονδία"));
        assert_eq!(from.address(), Some("ao@example.gr"));
        // The body is not a header: its text stays as it was written.
        assert!(text.contains("Subject: Ελλάδα (in the body)\n"), "{text}");
        assert!(text.contains("\nSubject: =?utf-8?b?"), "{text}");
    }

    #[test]
    fn eight_bit_text_goes_as_it_reads_and_quoted_printable_where_it_must() {
        let greek = "Ελλάδα: απεργία\n------------------------------\nSubject: (gr) Αθήνα\n";
        let entity = String::from_utf8(text_entity_8bit("plain", None, greek)).unwrap();
        assert!(entity.contains("Content-Transfer-Encoding: 8bit\r\n\r\n"));
        assert!(entity.ends_with(&greek.replace('\n', "\r\n")));
        let seven = downgrade_8bit(entity.as_bytes()).unwrap();
        assert!(seven.is_ascii());
        let parsed = mail_parser::MessageParser::default().parse(&seven).unwrap();
        assert_eq!(parsed.body_text(0).unwrap().replace("\r\n", "\n"), greek);
        // ASCII stays 7bit.
        let ascii = text_entity_8bit("plain", None, "plain words\n");
        assert!(String::from_utf8_lossy(&ascii).contains("7bit"));
        assert!(downgrade_8bit(&ascii).is_none());
    }

    #[test]
    fn no_piece_of_a_cut_line_reads_as_a_field_or_the_separator() {
        use crate::digest::plain::SEPARATOR;
        let forged_field = format!("Subject:{}Reply-To: x@evil.example", "x".repeat(990));
        let forged_separator = "-".repeat(MAX_LINE + SEPARATOR.len());
        let text = format!("{forged_field}\n\n{forged_separator}\n\nFrom: a@b.example\n");
        let fitted = fit_for_smtp(&text);
        for line in fitted.lines() {
            assert!(line.len() <= MAX_LINE);
            assert_ne!(line, SEPARATOR);
            assert!(!line.starts_with("Reply-To:"), "{line}");
        }
        assert!(fitted.contains("\n Reply-To: x@evil.example"));
    }

    #[test]
    fn lines_too_long_for_smtp_are_broken_and_stay_8bit() {
        // An unwrapped Greek paragraph (2,100 octets), a Chinese one with no
        // space at all, a long ASCII line and a bare CR.
        let greek = "Ελευθερία και ".repeat(80);
        let chinese = "世界自由".repeat(120);
        let ascii = "word ".repeat(300);
        let text = format!("Subject: {greek}\n\n{chinese}\n{ascii}\nold\rmac\n");
        let entity = String::from_utf8(text_entity_8bit("plain", None, &text)).unwrap();
        assert!(entity.contains("Content-Transfer-Encoding: 8bit\r\n\r\n"));
        let body = &entity[entity.find("\r\n\r\n").unwrap() + 4..];
        assert!(!body.replace("\r\n", "").contains('\r'));
        let lines: Vec<&str> = body.split("\r\n").collect();
        assert!(lines.iter().all(|line| line.len() <= MAX_LINE), "{lines:?}");
        // Broken before a space: the header line goes on folded, and no
        // word or character is split or lost.
        assert!(lines[0].starts_with("Subject: Ελευθερία"));
        assert!(lines[1].starts_with(' '), "{}", &lines[1][..20]);
        // A line without a space is cut with a space put before the rest;
        // nothing else is added.
        let joined: Vec<char> = body.replace("\r\n", "").chars().collect();
        let cjk = |c: char| "世界自由".contains(c);
        let added = |i: usize| {
            joined[i] == ' '
                && i > 0
                && i + 1 < joined.len()
                && cjk(joined[i - 1])
                && cjk(joined[i + 1])
        };
        let without_added: String = (0..joined.len())
            .filter(|&i| !added(i))
            .map(|i| joined[i])
            .collect();
        assert_eq!(without_added, text.replace(['\n', '\r'], ""));
        let chinese_lines: Vec<&&str> = lines.iter().filter(|l| l.contains('世')).collect();
        assert!(chinese_lines.len() > 1);
        assert!(chinese_lines[1..].iter().all(|l| l.starts_with(' ')));
        assert!(body.contains("old\r\nmac\r\n"));
        // The folded Subject reads whole to a burster's parser.
        let post = mail_parser::MessageParser::default()
            .parse(body.as_bytes())
            .unwrap();
        assert_eq!(post.subject(), Some(greek.trim_end()));
        // An ASCII text with a long line is broken too, and then 7bit.
        let long = text_entity_8bit("plain", None, &ascii);
        assert!(String::from_utf8_lossy(&long).contains("7bit"));
    }

    #[test]
    fn quoted_printable_keeps_lines_short_and_round_trips_utf8() {
        let text = format!("{}é\nend = here \n", "x".repeat(100));
        let encoded = quoted_printable(text.as_bytes());
        assert!(
            encoded.split("\r\n").all(|line| line.len() <= 76),
            "{encoded}"
        );
        assert!(encoded.contains("=C3=A9"));
        assert!(encoded.contains("end =3D here=20\r\n"));
    }

    #[test]
    fn quoted_printable_encodes_trailing_white_space_and_decodes_back() {
        let text = format!(
            ".leading dot\nFrom the start\ntab\t\n{}\n{} \nlast",
            "é".repeat(60),
            "y".repeat(75)
        );
        let encoded = quoted_printable(text.as_bytes());
        for line in encoded.split("\r\n") {
            assert!(line.len() <= 76, "{line}");
            assert!(!line.ends_with([' ', '\t']), "{line}");
            // A soft break never splits an "=XX".
            let soft = line.strip_suffix('=').unwrap_or(line);
            if let Some(at) = soft.rfind('=') {
                assert!(at + 3 <= soft.len(), "{line}");
            }
        }
        assert!(encoded.contains("tab=09\r\n"), "{encoded}");
        let decoded =
            mail_parser::decoders::quoted_printable::quoted_printable_decode(encoded.as_bytes())
                .expect("valid quoted-printable");
        assert_eq!(
            String::from_utf8(decoded).unwrap().replace("\r\n", "\n"),
            text
        );
    }

    #[test]
    fn phrases_quote_specials_and_encode_non_ascii() {
        assert_eq!(phrase("A-Infos English"), "A-Infos English");
        assert_eq!(
            phrase("A-Infos: The Supplement"),
            "\"A-Infos: The Supplement\""
        );
        assert!(phrase("A-Infos Ελληνικά").starts_with("=?utf-8?b?"));
        assert_eq!(phrase(r#"Joe "the \ one""#), r#""Joe \"the \\ one\"""#);
    }

    #[test]
    fn mailbox_fields_fold_and_read_back() {
        for name in [
            "A-Infos English",
            "A-Infos: The Supplement, with a long description of what it is",
            r#"Joe "the \ one" Bloggs"#,
            "A-Infos Ελληνικά: Σύνοψη των ειδήσεων της εβδομάδας από όλο τον κόσμο",
        ] {
            let field = mailbox_field("From", name, "a-infos@lists.example.org");
            assert_lines_within(&field, 78);
            let message = parsed(&field);
            let from = message.from().and_then(|from| from.first()).unwrap();
            assert_eq!(from.name(), Some(name), "{field}");
            assert_eq!(from.address(), Some("a-infos@lists.example.org"));
        }
        assert_eq!(
            mailbox_field("From", " ", "a@example.org"),
            "From: a@example.org\r\n"
        );
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
