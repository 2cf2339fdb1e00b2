//! A post's original message taken apart just enough to carry it in a
//! digest: its header fields exactly as received (folding and encoding
//! kept) and its body bytes.

use super::headers::MAX_LINE;

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
    /// Splits `raw` at its first empty line. A leading UTF-8 byte order
    /// mark (some Windows mailers write one), a leading mbox `From ` line
    /// and lines that are not fields (their name not printable ASCII) are
    /// skipped.
    pub fn parse(raw: &'a [u8]) -> Original<'a> {
        let raw = raw.strip_prefix(b"\xef\xbb\xbf").unwrap_or(raw);
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
                        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()) {
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
    /// is written again in ASCII as RFC 6857 downgrades it
    /// ([`seven_bit_field`]), so the header is always ASCII: a relay
    /// without SMTPUTF8 refuses or bounces a message whose parts' headers
    /// are not ASCII, Postfix with "SMTPUTF8 is required, but was not
    /// offered", and readers show both the same.
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
                if field.raw.is_ascii() {
                    out.extend_from_slice(&super::headers::field_crlf(field.raw));
                    out.extend_from_slice(b"\r\n");
                } else {
                    out.extend_from_slice(seven_bit_field(field).as_bytes());
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

    /// The whole message with every header field in ASCII (those that were
    /// not written again as [`seven_bit_field`] does), all of them kept in
    /// their order, and the body as it came: for a way out that would
    /// otherwise need SMTPUTF8. `None` when the header is ASCII already.
    pub fn with_ascii_header(&self) -> Option<Vec<u8>> {
        if self.fields.iter().all(|field| field.raw.is_ascii()) {
            return None;
        }
        let mut out = Vec::with_capacity(self.body.len() + 2048);
        for field in &self.fields {
            if field.raw.is_ascii() {
                out.extend_from_slice(&super::headers::field_crlf(field.raw));
                out.extend_from_slice(b"\r\n");
            } else {
                out.extend_from_slice(seven_bit_field(field).as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(self.body);
        Some(out)
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

/// `field` (with 8-bit text) in ASCII, ending in CRLF, as RFC 6857
/// downgrades a field for a reader without SMTPUTF8: an unstructured or
/// keyword field as encoded-words; an address field with its display names
/// encoded, a domain that is not ASCII as its A-label, and a mailbox whose
/// local part is not ASCII as an empty group named by it; a Content-Type or
/// Content-Disposition with its parameters per RFC 2231; Message-ID,
/// In-Reply-To and References renamed `Downgraded-...` (RFC 6857 4) as
/// encoded-words; any other field (a Date or MIME-Version that is not even
/// ASCII) as encoded-words, readable if not parsable.
fn seven_bit_field(field: &Field<'_>) -> String {
    use super::headers::{self, Addressee};
    use mail_parser::HeaderValue;
    let name = field.name;
    let is = |names: &[&str]| names.iter().any(|n| name.eq_ignore_ascii_case(n));
    let raw_value = || {
        let value = &field.raw[(name.len() + 1).min(field.raw.len())..];
        String::from_utf8_lossy(value).into_owned()
    };
    if is(&["message-id", "in-reply-to", "references"]) {
        let renamed = match name.to_ascii_lowercase().as_str() {
            "message-id" => "Downgraded-Message-Id",
            "in-reply-to" => "Downgraded-In-Reply-To",
            _ => "Downgraded-References",
        };
        return headers::unstructured(renamed, &raw_value());
    }
    let mut raw = field.raw.to_vec();
    raw.extend_from_slice(b"\r\n\r\n");
    // mail-parser can panic on some malformed input: the field is then
    // written as text.
    let parse = || mail_parser::MessageParser::new().parse_headers(&raw);
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse))
        .ok()
        .flatten();
    let value = parsed
        .as_ref()
        .and_then(|parsed| parsed.headers().first())
        .map(|h| &h.value);
    let unstructured = [
        "subject",
        "comments",
        "keywords",
        "summary",
        "organization",
        "content-description",
    ];
    match value {
        Some(HeaderValue::Text(text)) if is(&unstructured) => headers::unstructured(name, text),
        Some(HeaderValue::TextList(texts)) if is(&unstructured) => {
            headers::unstructured(name, &texts.join(", "))
        }
        Some(HeaderValue::Address(address)) if address.iter().next().is_some() => {
            let mailboxes: Vec<(String, String)> = address
                .iter()
                .map(|addr| {
                    let display = addr.name().unwrap_or("").to_string();
                    (display, ascii_address(addr.address().unwrap_or("")))
                })
                .collect();
            let spelled: Vec<String> = address
                .iter()
                .map(|addr| match (addr.name(), addr.address()) {
                    (Some(display), Some(address)) => format!("{display} <{address}>"),
                    (None, Some(address)) => address.to_string(),
                    (Some(display), None) => display.to_string(),
                    (None, None) => String::new(),
                })
                .collect();
            let addressees: Vec<Addressee<'_>> = mailboxes
                .iter()
                .zip(&spelled)
                .map(|((display, address), spelled)| {
                    if !address.is_empty() && address.is_ascii() && !has_controls(address) {
                        Addressee::Mailbox(display, address)
                    } else {
                        Addressee::Unreachable(spelled)
                    }
                })
                .collect();
            headers::address_list_field(name, &addressees)
        }
        Some(HeaderValue::ContentType(content_type)) => {
            let value = match &content_type.c_subtype {
                Some(subtype) => format!("{}/{subtype}", content_type.c_type),
                None => content_type.c_type.to_string(),
            };
            let parameters: Vec<(&str, &str)> = content_type
                .attributes
                .iter()
                .flatten()
                .map(|attribute| (attribute.name.as_ref(), attribute.value.as_ref()))
                .collect();
            // Parameters are written as they can be, or left out
            // (`parameter_field`).
            if value.is_ascii() && !has_controls(&value) {
                headers::parameter_field(name, &value, &parameters)
            } else {
                headers::unstructured(name, &raw_value())
            }
        }
        _ => headers::unstructured(name, &raw_value()),
    }
}

/// Whether `text` holds a control character (a line break above all),
/// which a field written again must not carry.
fn has_controls(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// `address` with a domain that is not ASCII as its A-label (IDNA), the
/// local part as it is (only SMTPUTF8 carries one that is not ASCII).
fn ascii_address(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) if !domain.is_ascii() => match idna::domain_to_ascii(domain) {
            Ok(domain) => format!("{local}@{domain}"),
            Err(_) => address.to_string(),
        },
        _ => address.to_string(),
    }
}

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
    fn every_kept_field_with_raw_utf8_is_downgraded_to_ascii_as_rfc_6857_says() {
        let raw = "From: José <josé@correo.example>\nTo: Ana <ana@bücher.example>, b@example.org\n\
                   Cc: Σύλλογος\nMessage-ID: <ünï@example.org>\nReferences: <a@x.org> <ñ@x.org>\n\
                   Date: Ήμέρα\nMIME-Version: 1.0\n\
                   Content-Type: application/pdf; name=\"Απεργία.pdf\"\n\
                   Content-Disposition: attachment; filename=\"Απεργία.pdf\";\n \
                   creation-date=\"Mon, 1 Jan 2024 10:00:00 +0000\"; x-ναι=\"ναι\"\n\n%PDF\n";
        let carried = Original::parse(raw.as_bytes()).for_digest();
        let text = String::from_utf8(carried.clone()).unwrap();
        let header = &text[..text.find("\r\n\r\n").unwrap()];
        assert!(header.is_ascii(), "{header}");
        let parsed = mail_parser::MessageParser::default()
            .parse(&carried)
            .unwrap();
        // The sender's address cannot be ASCII: an empty group named by it.
        assert!(header.contains(" :;\r\n"), "{header}");
        let from = parsed.header_raw("From").unwrap();
        let as_subject = format!("Subject:{from}\r\n\r\n");
        let shown = mail_parser::MessageParser::new()
            .parse_headers(as_subject.as_bytes())
            .unwrap();
        assert!(shown
            .subject()
            .unwrap()
            .contains("José <josé@correo.example>"));
        // A domain that is not ASCII is its A-label.
        let to: Vec<_> = parsed
            .to()
            .unwrap()
            .iter()
            .map(|a| a.address().unwrap())
            .collect();
        assert_eq!(to, ["ana@xn--bcher-kva.example", "b@example.org"]);
        // Identifiers that are not ASCII are renamed and kept readable.
        assert!(parsed.message_id().is_none());
        assert!(
            header.contains("Downgraded-Message-Id: =?utf-8?"),
            "{header}"
        );
        assert!(
            header.contains("Downgraded-References: =?utf-8?"),
            "{header}"
        );
        // Parameters per RFC 2231, read back whole.
        use mail_parser::MimeHeaders;
        let disposition = parsed.content_disposition().unwrap();
        assert_eq!(disposition.attribute("filename"), Some("Απεργία.pdf"));
        // A name RFC 2231's encoder does not take is written quoted, one
        // that is not even ASCII left out.
        assert_eq!(
            disposition.attribute("creation-date"),
            Some("Mon, 1 Jan 2024 10:00:00 +0000")
        );
        assert!(!header.contains("x-"), "{header}");
        assert_eq!(
            parsed.content_type().unwrap().attribute("name"),
            Some("Απεργία.pdf")
        );
    }

    #[test]
    fn a_whole_header_is_made_ascii_with_every_field_kept_in_order() {
        let raw = "Received: from a\r\nSubject: (es) ¡Huelga!\r\nX-Mailer: Córreo 1.0\r\n\
                   DKIM-Signature: v=1; b=abc\r\n\r\nCuerpo: ¡sí!\r\n";
        let original = Original::parse(raw.as_bytes());
        let ascii = String::from_utf8(original.with_ascii_header().unwrap()).unwrap();
        let (header, body) = ascii.split_once("\r\n\r\n").unwrap();
        assert!(header.is_ascii(), "{header}");
        assert_eq!(body, "Cuerpo: ¡sí!\r\n", "the body as it came");
        let names: Vec<&str> = header
            .lines()
            .filter(|line| !line.starts_with(' '))
            .map(|line| line.split(':').next().unwrap())
            .collect();
        assert_eq!(names, ["Received", "Subject", "X-Mailer", "DKIM-Signature"]);
        let parsed = mail_parser::MessageParser::default()
            .parse(ascii.as_bytes())
            .unwrap();
        assert_eq!(parsed.subject(), Some("(es) ¡Huelga!"));
        assert!(Original::parse(b"Subject: plain\r\n\r\nbody\r\n")
            .with_ascii_header()
            .is_none());
    }

    #[test]
    fn no_corpus_message_keeps_a_field_that_is_not_ascii() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/realworld");
        let mut files = vec![root.clone()];
        let mut checked = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let raw = std::fs::read(&path).unwrap();
            let carried = Original::parse(&raw).for_digest();
            let end = memchr::memmem::find(&carried, b"\r\n\r\n").unwrap_or(carried.len());
            assert!(carried[..end].is_ascii(), "{}", path.display());
            checked += 1;
        }
        assert!(checked > 400, "{} holds {checked} messages", root.display());
    }

    #[test]
    fn a_byte_order_mark_is_no_part_of_the_first_field() {
        // As realworld/mimekit/messages/feedback-report.txt begins.
        let original = Original::parse(
            b"\xef\xbb\xbfFrom: <abusedesk@example.com>\r\nSubject: x\r\n\r\nBody\r\n",
        );
        let names: Vec<&str> = original.fields.iter().map(|f| f.name).collect();
        assert_eq!(names, ["From", "Subject"]);
        assert!(original
            .for_digest()
            .starts_with(b"From: <abusedesk@example.com>\r\n"));
        assert!(original.with_ascii_header().is_none());
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
