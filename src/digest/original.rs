//! A post's original message taken apart just enough to carry it in a
//! digest: its header fields exactly as received (folding and encoding
//! kept) and its body bytes.

/// Header fields a digest reader needs, kept in the MIME digest's
/// message/rfc822 parts in their original order; trace fields (Received,
/// Return-Path, Delivered-To), authentication results, signatures and
/// mailer noise are left out.
const KEPT_FIELDS: &[&str] = &[
    "date",
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "subject",
    "message-id",
    "in-reply-to",
    "references",
    "keywords",
    "summary",
    "comments",
    "organization",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "content-language",
    "content-id",
    "content-description",
];

/// One header field as received: its name and its whole raw text
/// (`Name: value` with any continuation lines, without the final line break).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a str,
    pub raw: &'a [u8],
}

impl Field<'_> {
    /// The value after the colon, unfolded and trimmed (still encoded).
    pub fn value(&self) -> String {
        let text = String::from_utf8_lossy(self.raw);
        let value = text.split_once(':').map_or("", |(_, value)| value);
        super::headers::unfold(value)
    }
}

/// A message split into header fields and body.
#[derive(Debug, Clone)]
pub struct Original<'a> {
    pub fields: Vec<Field<'a>>,
    pub body: &'a [u8],
}

impl<'a> Original<'a> {
    /// Splits `raw` at its first empty line. A leading mbox `From ` line and
    /// lines that are not fields are skipped.
    pub fn parse(raw: &'a [u8]) -> Original<'a> {
        let mut fields: Vec<Field<'a>> = Vec::new();
        let mut position = 0;
        let mut body = &raw[raw.len()..];
        // (start, end) of the field being read.
        let mut current: Option<(usize, usize)> = None;
        let finish = |current: &mut Option<(usize, usize)>, fields: &mut Vec<Field<'a>>| {
            if let Some((start, end)) = current.take() {
                let raw_field = &raw[start..end];
                if let Some(colon) = raw_field.iter().position(|&b| b == b':') {
                    if let Ok(name) = std::str::from_utf8(&raw_field[..colon]) {
                        let name = name.trim_end();
                        if !name.is_empty() && !name.contains(' ') {
                            fields.push(Field {
                                name,
                                raw: raw_field,
                            });
                        }
                    }
                }
            }
        };
        while position < raw.len() {
            let line_end = raw[position..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(raw.len(), |i| position + i + 1);
            let line = &raw[position..line_end];
            let content = trim_line_break(line);
            if content.is_empty() {
                finish(&mut current, &mut fields);
                body = &raw[line_end..];
                break;
            }
            let end = position + content.len();
            if content[0] == b' ' || content[0] == b'\t' {
                if let Some((_, field_end)) = current.as_mut() {
                    *field_end = end;
                }
            } else {
                finish(&mut current, &mut fields);
                if !(fields.is_empty() && content.starts_with(b"From ")) {
                    current = Some((position, end));
                }
            }
            position = line_end;
        }
        finish(&mut current, &mut fields);
        Original { fields, body }
    }

    /// The first field named `name` (case-insensitive).
    pub fn field(&self, name: &str) -> Option<&Field<'a>> {
        self.fields
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case(name))
    }

    /// The message as a digest carries it: the kept fields in their order,
    /// a blank line and the body, every line ending in CRLF.
    ///
    /// A field with raw 8-bit text (as some mailers send, RFC 6532 style)
    /// is written again in ASCII, its text as RFC 2047 encoded-words
    /// ([`seven_bit_field`]): a relay without SMTPUTF8 refuses or bounces
    /// a message whose parts' headers are not ASCII, Postfix with "SMTPUTF8
    /// is required, but was not offered", and readers show both the same.
    ///
    /// A body line longer than SMTP allows (998 octets, RFC 5321 4.5.3.1.6)
    /// would be broken up by some relay on the way, and the digest's DKIM
    /// signature with it: a single-part body is then carried
    /// quoted-printable, the same content once decoded. (A multipart one is
    /// carried as it came.)
    pub fn for_digest(&self) -> Vec<u8> {
        let body = super::headers::crlf(self.body);
        let recode = body
            .split(|&b| b == b'\n')
            .any(|line| line.len() > MAX_LINE + 1)
            && self.single_part_unencoded();
        let mut out = Vec::with_capacity(body.len() + 2048);
        for field in &self.fields {
            let kept = KEPT_FIELDS
                .iter()
                .any(|kept| field.name.eq_ignore_ascii_case(kept));
            let replaced = recode && field.name.eq_ignore_ascii_case("content-transfer-encoding");
            if kept && !replaced {
                match (!field.raw.is_ascii())
                    .then(|| seven_bit_field(field))
                    .flatten()
                {
                    Some(ascii) => out.extend_from_slice(ascii.as_bytes()),
                    None => {
                        out.extend_from_slice(&super::headers::field_crlf(field.raw));
                        out.extend_from_slice(b"\r\n");
                    }
                }
            }
        }
        if recode {
            out.extend_from_slice(b"Content-Transfer-Encoding: quoted-printable\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if recode {
            out.extend_from_slice(super::headers::quoted_printable(&body).as_bytes());
        } else {
            out.extend_from_slice(&body);
        }
        if !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// Whether the body is one part sent as it is (7bit, 8bit or binary),
    /// which quoted-printable can carry instead.
    fn single_part_unencoded(&self) -> bool {
        let value = |name: &str| {
            self.field(name)
                .map(|field| field.value().to_ascii_lowercase())
                .unwrap_or_default()
        };
        let content_type = value("content-type");
        let encoding = value("content-transfer-encoding");
        !content_type.starts_with("multipart/")
            && !content_type.starts_with("message/")
            && matches!(encoding.trim(), "" | "7bit" | "8bit" | "binary")
    }
}

/// `field` (with 8-bit text) in ASCII, ending in CRLF: an unstructured or
/// keyword field as encoded-words, an address field with its display
/// names encoded. `None` when it cannot be (an address that is not ASCII
/// needs SMTPUTF8 whatever is done; a structured field of another kind is
/// left as it came).
fn seven_bit_field(field: &Field<'_>) -> Option<String> {
    use mail_parser::HeaderValue;
    let mut raw = field.raw.to_vec();
    raw.extend_from_slice(b"\r\n\r\n");
    let parsed = mail_parser::MessageParser::new().parse_headers(&raw)?;
    let header = parsed.headers().first()?;
    let name = field.name;
    let unstructured = [
        "subject",
        "comments",
        "keywords",
        "summary",
        "organization",
        "content-description",
    ];
    match &header.value {
        HeaderValue::Text(text) if unstructured.iter().any(|u| name.eq_ignore_ascii_case(u)) => {
            Some(super::headers::unstructured(name, text))
        }
        HeaderValue::TextList(texts)
            if unstructured.iter().any(|u| name.eq_ignore_ascii_case(u)) =>
        {
            Some(super::headers::unstructured(name, &texts.join(", ")))
        }
        HeaderValue::Address(address) => {
            let mailboxes: Vec<(&str, &str)> = address
                .iter()
                .map(|addr| (addr.name().unwrap_or(""), addr.address().unwrap_or("")))
                .collect();
            let ascii = mailboxes
                .iter()
                .all(|(_, address)| !address.is_empty() && address.is_ascii());
            (ascii && !mailboxes.is_empty())
                .then(|| super::headers::mailbox_list_field(name, &mailboxes))
        }
        _ => None,
    }
}

/// The longest line SMTP carries, without its CRLF.
const MAX_LINE: usize = 998;

fn trim_line_break(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_their_folding_and_trace_fields_are_dropped() {
        let raw = b"From someone Mon Jan  1 00:00:00 2026\nReceived: from a\n  by b\nSubject: =?utf-8?b?zpHOsg==?=\n continued\nFrom: A <a@x.org>\nX-Spam: yes\n\nBody\nline\n";
        let original = Original::parse(raw);
        let names: Vec<&str> = original.fields.iter().map(|f| f.name).collect();
        assert_eq!(names, ["Received", "Subject", "From", "X-Spam"]);
        assert_eq!(
            original.field("subject").unwrap().raw,
            b"Subject: =?utf-8?b?zpHOsg==?=\n continued"
        );
        assert_eq!(original.body, b"Body\nline\n");
        assert_eq!(
            original.for_digest(),
            b"Subject: =?utf-8?b?zpHOsg==?=\r\n continued\r\nFrom: A <a@x.org>\r\n\r\nBody\r\nline\r\n"
        );
    }

    #[test]
    fn a_body_line_too_long_for_smtp_is_carried_quoted_printable() {
        let long = "Ελευθερία ".repeat(150); // 2,850 octets on one line
        let raw = format!(
            "Subject: long\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nshort line\n{long}\nend\n"
        );
        let carried = Original::parse(raw.as_bytes()).for_digest();
        let text = String::from_utf8(carried).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(
            head,
            "Subject: long\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
        );
        assert!(body.split("\r\n").all(|line| line.len() <= 76));
        let decoded = quoted_printable::decode(body, quoted_printable::ParseMode::Strict).unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            format!("short line\r\n{long}\r\nend\r\n")
        );
    }

    #[test]
    fn short_lines_and_multipart_bodies_are_carried_as_they_came() {
        let short = "Content-Type: text/plain\n\nshort\n";
        assert!(
            String::from_utf8(Original::parse(short.as_bytes()).for_digest())
                .unwrap()
                .ends_with("\r\n\r\nshort\r\n")
        );
        let multipart = format!(
            "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n{}\n--b--\n",
            "x".repeat(1200)
        );
        let carried = Original::parse(multipart.as_bytes()).for_digest();
        assert!(!String::from_utf8(carried)
            .unwrap()
            .contains("quoted-printable"));
    }

    #[test]
    fn raw_utf8_fields_are_carried_as_encoded_words() {
        let raw = "From: Αννα Π. <anna@example.org>\nTo: Σύλλογος <a-infos-gr@lists.example.org>, b@example.org\n\
                   Subject: (gr) Ελλάδα: απεργία\nMessage-ID: <1@example.org>\n\nΚείμενο.\n";
        let carried = Original::parse(raw.as_bytes()).for_digest();
        let text = String::from_utf8(carried.clone()).unwrap();
        let header = &text[..text.find("\r\n\r\n").unwrap()];
        assert!(header.is_ascii(), "{header}");
        assert!(
            text.ends_with("\r\n\r\nΚείμενο.\r\n"),
            "the body as it came"
        );
        let parsed = mail_parser::MessageParser::default()
            .parse(&carried)
            .unwrap();
        assert_eq!(parsed.subject(), Some("(gr) Ελλάδα: απεργία"));
        let from = parsed.from().unwrap().first().unwrap();
        assert_eq!(from.name(), Some("Αννα Π."));
        assert_eq!(from.address(), Some("anna@example.org"));
        let to: Vec<_> = parsed
            .to()
            .unwrap()
            .iter()
            .map(|a| a.address().unwrap())
            .collect();
        assert_eq!(to, ["a-infos-gr@lists.example.org", "b@example.org"]);
        assert_eq!(parsed.message_id(), Some("1@example.org"));
    }

    #[test]
    fn crlf_messages_split_too() {
        let original =
            Original::parse(b"Date: Thu, 1 Jan 2026 00:00:00 +0000\r\nTo: x@y.org\r\n\r\nHi\r\n");
        assert_eq!(original.fields.len(), 2);
        assert_eq!(original.field("to").unwrap().value(), "x@y.org");
        assert_eq!(original.body, b"Hi\r\n");
    }
}
