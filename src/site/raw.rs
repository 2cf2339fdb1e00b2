//! A post's raw message as the archive offers it for download: the bytes
//! as received, with every mail address written `local at domain`, the way
//! Mailman's archives do, so that harvesters reading the page find none.
//! Message-IDs (Message-ID, In-Reply-To, References) stay as they are:
//! they name messages, not people, and a mail client threads by them.
//!
//! Text parts sent in base64 or quoted-printable hide their addresses from
//! a plain search of the bytes but not from a harvester that decodes them:
//! such parts are decoded, obfuscated and encoded again the same way, with
//! their line endings, so the message keeps its structure. A part inside an
//! attached message (message/rfc822) is left as it came.

use std::panic::{catch_unwind, AssertUnwindSafe};

use mail_parser::{Encoding, MessageParser, MimeHeaders, PartType};
use memchr::memchr_iter;

/// `raw` with its addresses obfuscated.
pub fn obfuscate(raw: &[u8]) -> Vec<u8> {
    let decoded = obfuscate_encoded_parts(raw);
    let raw = decoded.as_deref().unwrap_or(raw);
    obfuscate_from(raw, find_header_end(raw))
}

/// `raw` with the addresses of its base64 and quoted-printable text parts
/// obfuscated, or None when it has none.
fn obfuscate_encoded_parts(raw: &[u8]) -> Option<Vec<u8>> {
    if !has_encoded_part(raw) {
        return None;
    }
    // mail-parser 0.11 can panic on some MIME trees (a message/rfc822
    // inside another, in a multipart): filing held such a post, and a
    // moderator may approve it. Its download then keeps what the pass
    // over the whole text hid, and the archive goes on being built.
    let message = catch_unwind(AssertUnwindSafe(|| MessageParser::new().parse(raw)))
        .ok()
        .flatten()?;
    let mut out = Vec::with_capacity(raw.len());
    let mut copied = 0;
    let mut changed = false;
    for part in &message.parts {
        if part.encoding == Encoding::None
            || !matches!(part.body, PartType::Text(_) | PartType::Html(_))
        {
            continue;
        }
        let (start, end) = (part.offset_body as usize, part.offset_end as usize);
        let Some(body) = raw.get(start..end).filter(|_| start >= copied) else {
            continue;
        };
        let Some(text) = decode(body, part.encoding).filter(|text| text.contains(&b'@')) else {
            continue;
        };
        // In UTF-16 or UTF-32 text an '@' is not a byte of its own, and
        // changing bytes would break the text: such text is left as it is.
        // A part that says so but whose bytes are ASCII-compatible (no
        // NUL) is obfuscated, as a reader's decoder would show it.
        let charset = part
            .content_type()
            .and_then(|ct| ct.attribute("charset"))
            .unwrap_or("us-ascii")
            .to_ascii_lowercase();
        let wide = charset.starts_with("utf-16") || charset.starts_with("utf-32");
        if wide && text.contains(&0) {
            continue;
        }
        let hidden = obfuscate_from(&text, 0);
        if hidden == text {
            continue;
        }
        let crlf = memchr::memmem::find(body, b"\r\n").is_some() || !body.contains(&b'\n');
        out.extend_from_slice(&raw[copied..start]);
        let encoded = encode(&hidden, part.encoding, crlf);
        out.extend_from_slice(encoded.trim_ascii_end());
        if body.ends_with(b"\n") {
            out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        copied = end;
        changed = true;
    }
    out.extend_from_slice(&raw[copied..]);
    changed.then_some(out)
}

/// Whether any header of `raw` names a transfer encoding that hides text.
fn has_encoded_part(raw: &[u8]) -> bool {
    let lower = raw.to_ascii_lowercase();
    memchr::memmem::find(&lower, b"content-transfer-encoding").is_some()
        && (memchr::memmem::find(&lower, b"base64").is_some()
            || memchr::memmem::find(&lower, b"quoted-printable").is_some())
}

fn decode(body: &[u8], encoding: Encoding) -> Option<Vec<u8>> {
    match encoding {
        Encoding::Base64 => mail_parser::decoders::base64::base64_decode(body),
        Encoding::QuotedPrintable => {
            quoted_printable::decode(body, quoted_printable::ParseMode::Robust).ok()
        }
        Encoding::None => None,
    }
}

fn encode(text: &[u8], encoding: Encoding, crlf: bool) -> Vec<u8> {
    use base64::Engine as _;
    let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    match encoding {
        Encoding::Base64 => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 38);
            for (i, line) in encoded.as_bytes().chunks(76).enumerate() {
                if i > 0 {
                    out.extend_from_slice(eol);
                }
                out.extend_from_slice(line);
            }
            out
        }
        Encoding::QuotedPrintable => {
            // Text mode keeps CRLF line breaks; bare LF would be encoded, so
            // a part written with LF is encoded as CRLF and turned back.
            let encoded = quoted_printable::encode(with_crlf(text));
            if crlf {
                encoded
            } else {
                String::from_utf8_lossy(&encoded)
                    .replace("\r\n", "\n")
                    .into_bytes()
            }
        }
        Encoding::None => text.to_vec(),
    }
}

/// `text` with every line ending CRLF, whatever it had.
fn with_crlf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 32);
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
    out
}

/// `raw` with its addresses obfuscated, the bytes before `header_end`
/// read as a header (where Message-IDs are kept).
fn obfuscate_from(raw: &[u8], header_end: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 64);
    let mut copied = 0;
    let mut in_id_header = false;
    let mut line_start = 0;
    for at in memchr_iter(b'@', raw) {
        // Which header line this `@` is on, for the headers' part.
        if at < header_end {
            let start = raw[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            if start != line_start {
                line_start = start;
                let first = raw[start];
                if first != b' ' && first != b'\t' {
                    in_id_header = is_id_header(&raw[start..at]);
                }
            }
            if in_id_header {
                continue;
            }
        }
        let local = at > 0 && is_local_byte(raw[at - 1]);
        let domain = raw.get(at + 1).is_some_and(|&b| b.is_ascii_alphanumeric());
        if local && domain {
            out.extend_from_slice(&raw[copied..at]);
            out.extend_from_slice(b" at ");
            copied = at + 1;
        }
    }
    out.extend_from_slice(&raw[copied..]);
    out
}

fn is_local_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&byte)
}

fn is_id_header(line: &[u8]) -> bool {
    let name = line.split(|&b| b == b':').next().unwrap_or_default();
    [
        "message-id",
        "in-reply-to",
        "references",
        "resent-message-id",
    ]
    .iter()
    .any(|id| name.eq_ignore_ascii_case(id.as_bytes()))
}

fn find_header_end(raw: &[u8]) -> usize {
    memchr::memmem::find(raw, b"\r\n\r\n")
        .or_else(|| memchr::memmem::find(raw, b"\n\n"))
        .unwrap_or(raw.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_obfuscated_and_message_ids_kept() {
        let raw = b"From: Ana <ana.p@example.org>\r\nCc: b@x.net,\r\n c+d@y.org\r\n\
Message-ID: <123@host.example>\r\nReferences: <1@a.b>\r\n <2@c.d>\r\n\r\n\
Write to info@collective.example or @someone on social.\r\n";
        let out = String::from_utf8(obfuscate(raw)).unwrap();
        assert!(out.contains("From: Ana <ana.p at example.org>"), "{out}");
        assert!(out.contains("Cc: b at x.net,\r\n c+d at y.org"), "{out}");
        assert!(out.contains("Message-ID: <123@host.example>"), "{out}");
        assert!(out.contains("References: <1@a.b>\r\n <2@c.d>"), "{out}");
        assert!(
            out.contains("info at collective.example or @someone"),
            "{out}"
        );
        assert!(!out.contains("ana.p@"));
    }

    /// The decoded text of each text part, in order.
    fn decoded_texts(raw: &[u8]) -> Vec<Vec<u8>> {
        let message = MessageParser::new().parse(raw).unwrap();
        message
            .parts
            .iter()
            .filter(|part| matches!(part.body, PartType::Text(_) | PartType::Html(_)))
            .map(|part| {
                let body = &raw[part.offset_body as usize..part.offset_end as usize];
                decode(body, part.encoding).unwrap_or_else(|| body.to_vec())
            })
            .collect()
    }

    fn has_address(text: &[u8]) -> bool {
        text.windows(3)
            .any(|w| w[1] == b'@' && is_local_byte(w[0]) && w[2].is_ascii_alphanumeric())
    }

    #[test]
    fn addresses_inside_base64_and_quoted_printable_parts_are_obfuscated() {
        use base64::Engine as _;
        let secret = "Écrivez à ana.p@example.org ou à\r\nb@x.net.\r\n";
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        let raw = format!(
            "From: x@y.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n\
--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
=E9crivez =E0 c.d=40example.org, soft-br=\r\noken e@f.o=\r\nrg\r\n\
--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nQUBCQ0Q=\r\n\
--b--\r\n"
        );
        let before = decoded_texts(raw.as_bytes());
        assert!(before.iter().all(|t| has_address(t)));
        let out = obfuscate(raw.as_bytes());
        let after = decoded_texts(&out);
        assert_eq!(after.len(), 2, "{}", String::from_utf8_lossy(&out));
        assert_eq!(
            String::from_utf8(after[0].clone()).unwrap(),
            "Écrivez à ana.p at example.org ou à\r\nb at x.net.\r\n"
        );
        // The Latin-1 part keeps its charset's bytes.
        assert_eq!(
            after[1],
            b"\xe9crivez \xe0 c.d at example.org, soft-broken e at f.org"
        );
        // The attachment is not text and stays as it came ("A@BCD").
        assert!(
            out.ends_with(b"QUBCQ0Q=\r\n--b--\r\n"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(obfuscate(&out), out, "obfuscating twice changes nothing");
    }

    #[test]
    fn a_part_written_with_bare_line_feeds_keeps_them() {
        let raw = b"From: x@y.org\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n\
line one a=40b.org\nline two\n";
        let out = obfuscate(raw);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "From: x at y.org\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n\
line one a at b.org\nline two\n"
        );
    }

    #[test]
    fn a_real_calendar_invitation_keeps_its_structure_and_loses_its_addresses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/corpus/realworld/php-mime-mail-parser/m0020"
        );
        let raw = std::fs::read(path).unwrap();
        let before = decoded_texts(&raw);
        assert!(
            has_address(&before[2]),
            "the base64 text/calendar part names people"
        );
        let out = obfuscate(&raw);
        let after = decoded_texts(&out);
        assert_eq!(after.len(), before.len());
        for (old, new) in before.iter().zip(&after) {
            assert!(!has_address(new), "{}", String::from_utf8_lossy(new));
            let old = String::from_utf8_lossy(old).replace('@', " at ");
            assert_eq!(old, String::from_utf8_lossy(new).replace('@', " at "));
        }
        let types = |raw: &[u8]| {
            let message = MessageParser::new().parse(raw).unwrap();
            message
                .parts
                .iter()
                .map(|p| {
                    p.content_type()
                        .map(|ct| format!("{}/{:?}", ct.ctype(), ct.subtype()))
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(types(&raw), types(&out));
    }
}
