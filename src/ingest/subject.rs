//! The Subject header decoded the way its sender meant it.
//!
//! mail-parser decodes RFC 2047 encoded-words one by one, as RFC 2047 asks.
//! Real senders also split one multibyte character across two adjacent
//! encoded-words, and some send raw 8-bit bytes in the sender's charset;
//! both are repaired here, as Python's `email` package does.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{HeaderName, Message, MessageParser, MimeHeaders};

/// The decoded Subject. A subject sent as raw 8-bit bytes that are not UTF-8
/// is decoded with the charset of the message's text (what the sender's
/// client was using), else as windows-1252.
pub fn decoded_subject(raw: &[u8], message: &Message<'_>) -> String {
    let decoded = message.subject().unwrap_or("");
    if decoded.contains('\u{FFFD}') {
        if let Some(joined) = message
            .header_raw(HeaderName::Subject)
            .and_then(join_encoded_words)
        {
            return joined;
        }
    }
    let Some(header) = message
        .headers()
        .iter()
        .find(|h| h.name == HeaderName::Subject)
    else {
        return decoded.to_string();
    };
    let bytes = raw
        .get(header.offset_start as usize..header.offset_end as usize)
        .unwrap_or(b"");
    if bytes.is_ascii() || std::str::from_utf8(bytes).is_ok() {
        return decoded.to_string();
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
    let (text, _, _) = encoding.decode(bytes);
    // The header may still hold encoded-words next to the raw bytes.
    let unfolded = format!("Subject:{text}\r\n\r\n");
    MessageParser::default()
        .parse_headers(unfolded.as_bytes())
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_else(|| text.trim().to_string())
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
        // "κοινωνίας" in UTF-8 with the "ν" (CE BD) split across two words.
        let raw = "=?utf-8?B?zrrOv865z4nOvQ==?= =?utf-8?B?zq/Osc+C?=";
        assert_eq!(join_encoded_words(raw).as_deref(), Some("κοινωνίας"));
        let split = "=?utf-8?B?zrrOv865z4nO?= =?utf-8?B?vc6vzrHPgg==?=";
        assert_eq!(join_encoded_words(split).as_deref(), Some("κοινωνίας"));
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
