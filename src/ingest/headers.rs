//! Header fields decoded the way their sender meant them.
//!
//! mail-parser decodes RFC 2047 encoded-words one by one, as RFC 2047 asks.
//! Real senders also split one multibyte character across two adjacent
//! encoded-words, and some send raw 8-bit bytes in their own charset; both
//! are repaired here, as Python's `email` package does. The parser is set up
//! here too, around a date-parsing fault of mail-parser 0.11.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{HeaderName, Message, MessageParser, MimeHeaders};

/// A parser for mail-parser's full set of headers, except that Date and
/// Received are read as text: its date parser swallows the next header
/// line after a one- or two-letter zone ("UT", "Z"), losing e.g. the
/// Message-ID. The date is parsed from that text alone.
pub fn message_parser() -> MessageParser {
    MessageParser::new()
        .with_mime_headers()
        .with_address_headers()
        .with_message_ids()
        .header_text(HeaderName::Subject)
        .header_text(HeaderName::Comments)
        .header_raw(HeaderName::Date)
        .header_raw(HeaderName::ResentDate)
        .header_raw(HeaderName::Received)
        .default_header_raw()
}

/// When the header section holds raw 8-bit bytes that are not UTF-8, the
/// headers parsed again after decoding the section with the charset of the
/// message's text (what the sender's client was using), else windows-1252.
pub fn recode_8bit_headers(
    raw: &[u8],
    message: &Message<'_>,
    parser: &MessageParser,
) -> Option<Message<'static>> {
    let end = message
        .headers()
        .iter()
        .map(|h| h.offset_end as usize)
        .max()?;
    let section = raw.get(..end)?;
    if std::str::from_utf8(section).is_ok() {
        return None;
    }
    let charset = message
        .text_bodies()
        .chain(message.html_bodies())
        .find_map(|part| {
            part.content_type()?
                .attribute("charset")
                .map(str::to_string)
        });
    let encoding = charset
        .and_then(|name| encoding_rs::Encoding::for_label(name.as_bytes()))
        .filter(|encoding| *encoding != encoding_rs::UTF_8)
        .unwrap_or(encoding_rs::WINDOWS_1252);
    let (text, _, _) = encoding.decode(section);
    let text = format!("{text}\r\n");
    parser
        .parse_headers(text.as_bytes())
        .map(Message::into_owned)
}

/// The decoded Subject, with encoded-words split inside a character joined.
pub fn decoded_subject(message: &Message<'_>) -> String {
    let decoded = message.subject().unwrap_or("");
    if decoded.contains('\u{FFFD}') {
        if let Some(joined) = message
            .header_raw(HeaderName::Subject)
            .and_then(join_encoded_words)
        {
            return joined;
        }
    }
    decoded.to_string()
}

/// The file name in a part's header section, for names mail-parser decodes
/// piece by piece: RFC 2231 continuations (`filename*0*=utf-8''%CE;`
/// `filename*1*=%9A`) are joined before their bytes are decoded, and
/// encoded-words in `filename="..."` are joined without the space between
/// them. `None` when the name uses neither form.
pub fn rejoin_file_name(header: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header)
        .replace("\r\n", "\n")
        .replace("\n ", " ")
        .replace("\n\t", " ");
    let lower = text.to_ascii_lowercase();
    let parameter = |key: &str| -> Option<&str> {
        let start = lower.find(key)? + key.len();
        let rest = &text[start..];
        let end = rest.find([';', '\n']).unwrap_or(rest.len());
        Some(rest[..end].trim().trim_matches('"'))
    };
    for name in ["filename", "name"] {
        let mut bytes = Vec::new();
        let mut charset = None;
        for index in 0.. {
            let (value, encoded) = match parameter(&format!("{name}*{index}*=")) {
                Some(value) => (value, true),
                None => match parameter(&format!("{name}*{index}=")) {
                    Some(value) => (value, false),
                    None => break,
                },
            };
            let value = match (index, encoded) {
                (0, true) => {
                    let mut fields = value.splitn(3, '\'');
                    charset = fields.next().map(str::to_string);
                    fields.nth(1).unwrap_or("")
                }
                _ => value,
            };
            if encoded {
                bytes.extend(percent_encoding::percent_decode_str(value));
            } else {
                bytes.extend_from_slice(value.as_bytes());
            }
        }
        if !bytes.is_empty() {
            let encoding = charset
                .and_then(|label| encoding_rs::Encoding::for_label(label.as_bytes()))
                .unwrap_or(encoding_rs::UTF_8);
            return Some(encoding.decode_without_bom_handling(&bytes).0.into_owned());
        }
        if let Some(joined) = parameter(&format!("{name}=")).and_then(join_encoded_words) {
            if !joined.contains('\u{FFFD}') {
                return Some(joined);
            }
        }
    }
    None
}

/// Decodes a header whose adjacent encoded-words in one charset must be
/// joined before their bytes are decoded. `None` when it holds no
/// encoded-word or one that does not decode.
fn join_encoded_words(raw: &str) -> Option<String> {
    let mut out = String::new();
    let mut pending: Option<(String, Vec<u8>)> = None;
    let mut saw_word = false;
    let flush = |pending: &mut Option<(String, Vec<u8>)>, out: &mut String| {
        if let Some((charset, bytes)) = pending.take() {
            let encoding =
                encoding_rs::Encoding::for_label(charset.as_bytes()).unwrap_or(encoding_rs::UTF_8);
            out.push_str(&encoding.decode_without_bom_handling(&bytes).0);
        }
    };
    for token in raw.split_whitespace() {
        match encoded_word(token) {
            Some((charset, bytes)) => {
                saw_word = true;
                match &mut pending {
                    Some((current, buffer)) if current.eq_ignore_ascii_case(&charset) => {
                        buffer.extend(bytes)
                    }
                    _ => {
                        flush(&mut pending, &mut out);
                        if !out.is_empty() && !out.ends_with(' ') {
                            out.push(' ');
                        }
                        pending = Some((charset, bytes));
                    }
                }
            }
            None => {
                flush(&mut pending, &mut out);
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(token);
            }
        }
    }
    flush(&mut pending, &mut out);
    saw_word.then_some(out)
}

/// `=?charset?B?...?=` or `=?charset?Q?...?=` -> (charset, bytes).
fn encoded_word(token: &str) -> Option<(String, Vec<u8>)> {
    let inner = token.strip_prefix("=?")?.strip_suffix("?=")?;
    let mut fields = inner.splitn(3, '?');
    let charset = fields.next()?;
    // RFC 2231 allows a language after '*': "utf-8*en".
    let charset = charset.split('*').next()?.to_string();
    let encoding = fields.next()?;
    let text = fields.next()?;
    let bytes = match encoding {
        "B" | "b" => base64_decode(text.as_bytes())?,
        "Q" | "q" => quoted_printable_decode(text.replace('_', " ").as_bytes())?,
        _ => return None,
    };
    Some((charset, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_multibyte_character_is_joined() {
        // "κοινωνίας" in UTF-8, split after whole characters, then inside "ω" (CF 89).
        let whole = "=?utf-8?B?zrrOv865zr3P?= =?utf-8?B?ic69zq/Osc+C?=";
        assert_eq!(join_encoded_words(whole).as_deref(), Some("κοινωνίας"));
        let split = "=?utf-8?B?zrrOv865zr3PiQ==?= =?utf-8?B?zr3Or86xz4I=?=";
        assert_eq!(join_encoded_words(split).as_deref(), Some("κοινωνίας"));
    }

    #[test]
    fn rfc2231_continuations_split_inside_a_character_are_joined() {
        let header = b"Content-Disposition: attachment;\r\n\tfilename*0*=utf-8''%CE%9A%CE;\r\n\tfilename*1*=%B1%CE%B8.pdf\r\n";
        assert_eq!(rejoin_file_name(header).as_deref(), Some("Καθ.pdf"));
        let quoted = b"Content-Type: application/pdf; name=\"=?utf-8?B?zrrOv865zr3PiQ==?= =?utf-8?B?zr3Or86xz4I=?=\"\r\n";
        assert_eq!(rejoin_file_name(quoted).as_deref(), Some("κοινωνίας"));
    }

    #[test]
    fn plain_words_and_other_charsets_are_kept_apart() {
        let raw = "(de) =?iso-8859-1?Q?Gr=FC=DFe?= aus =?utf-8?Q?K=C3=B6ln?=";
        assert_eq!(
            join_encoded_words(raw).as_deref(),
            Some("(de) Grüße aus Köln")
        );
        assert_eq!(join_encoded_words("no words here"), None);
    }
}
