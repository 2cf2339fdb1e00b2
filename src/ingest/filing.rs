//! Raw mail -> a filed [`NewPost`] (pure).
//!
//! Filing by language, in this order: the subject tag, matched against each
//! list's code and aliases; else the list address the message was sent to;
//! else the language detected in the text; else the post is held as
//! "language unknown". A tag no list serves is held, not guessed, unless the
//! post was sent to a catch-all list (The Supplement).

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};

use data_encoding::HEXLOWER;
use mail_parser::{HeaderName, HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use super::headers;
use crate::config::{Config, List};
use crate::lang::{parse_subject, Detector, Subject};
use crate::post::{Attachment, FiledBy, NewPost, Post, Status};

/// What the mail system told us about a message besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// A list code given by the operator (`--list CODE`).
    pub list_code: Option<String>,
    /// Envelope recipients (`RCPT TO`, `$ORIGINAL_RECIPIENT`).
    pub recipients: Vec<String>,
}

/// Files messages under the configured lists.
pub struct Filer<'a> {
    config: &'a Config,
    detector: Detector,
    parser: MessageParser,
}

impl<'a> Filer<'a> {
    /// A filer for the lists of `config`.
    pub fn new(config: &'a Config) -> Self {
        let detector = Detector::new(
            config.lists.iter().map(|list| list.lang.as_str()),
            config.ingest.detect_confidence,
        );
        Filer {
            config,
            detector,
            parser: headers::message_parser(),
        }
    }

    /// Turns the bytes of one message into a post: published under a list,
    /// held with a reason, or rejected with a reason. Never fails: whatever
    /// the bytes, the result says what became of them.
    pub fn file_message(&self, raw: &[u8], envelope: &Envelope, received_at: i64) -> NewPost {
        if raw.len() > self.config.ingest.max_message_bytes {
            return self.oversize(raw.len(), received_at);
        }
        if raw.iter().all(u8::is_ascii_whitespace) {
            return rejected(
                raw.len(),
                Some(raw),
                received_at,
                "empty message".to_string(),
            );
        }
        // mail-parser can panic on some malformed MIME trees; such a message
        // is still kept, filed from its headers alone and held.
        let (parsed, broken) = match catch_unwind(AssertUnwindSafe(|| self.parser.parse(raw))) {
            Ok(parsed) => (parsed, None),
            Err(_) => (
                catch_unwind(AssertUnwindSafe(|| self.parser.parse_headers(raw)))
                    .ok()
                    .flatten(),
                Some("the MIME structure could not be parsed".to_string()),
            ),
        };
        let message = match (parsed, broken) {
            (Some(message), broken) if !message.headers().is_empty() => (message, broken),
            (_, Some(reason)) => {
                let mut post = rejected(raw.len(), Some(raw), received_at, reason);
                post.post.status = Status::Held;
                post.post.key = Some(HEXLOWER.encode(&Sha256::digest(raw))[..20].to_string());
                return post;
            }
            _ => {
                return rejected(
                    raw.len(),
                    Some(raw),
                    received_at,
                    "not an RFC 5322 message: it has no header fields".to_string(),
                )
            }
        };
        let (message, broken) = message;
        if broken.is_none() && !has_mail_fields(&message) {
            return rejected(
                raw.len(),
                Some(raw),
                received_at,
                "not a mail message: none of its header fields is From, Sender, To, Subject, \
                 Date or Message-ID"
                    .to_string(),
            );
        }
        self.file_parsed(raw, &message, envelope, received_at, broken)
    }

    /// The rejection of a message of `size` bytes over the size limit,
    /// for callers that know the size without reading the message.
    pub fn oversize(&self, size: usize, received_at: i64) -> NewPost {
        let limit = self.config.ingest.max_message_bytes;
        rejected(
            size,
            None,
            received_at,
            format!("message is {size} bytes, over the limit of {limit} bytes (ingest.max_message_bytes)"),
        )
    }

    fn file_parsed(
        &self,
        raw: &[u8],
        message: &Message<'_>,
        envelope: &Envelope,
        received_at: i64,
        broken: Option<String>,
    ) -> NewPost {
        // Raw 8-bit header bytes are read in the charset of the text.
        let recoded = headers::recode_8bit_headers(raw, message, &self.parser);
        let header_view = recoded.as_ref().unwrap_or(message);
        let subject = clean_line(&headers::decoded_subject(header_view));
        let parts = parse_subject(&subject);
        let message_id = message
            .message_id()
            .map(clean_line)
            .filter(|id| !id.is_empty())
            .map(|id| format!("<{id}>"));
        let (author_name, author_address) = author(header_view);
        let date_header = message
            .header_raw(HeaderName::Date)
            .map(|d| clean_line(d.trim()));
        let date = date_header
            .as_deref()
            .and_then(mail_parser::DateTime::parse_rfc822)
            .filter(|d| d.is_valid())
            .map(|d| d.to_timestamp());
        let (body, attachments) = match broken {
            Some(_) => (String::new(), Vec::new()),
            None => (clean_body(&body_text(message)), attachments(raw, message)),
        };

        let filing = self.decide(message, &parts, &body, envelope);
        let mut status = Status::Published;
        let mut reason = None;
        if let Some(why) = broken.or(filing.held.clone()) {
            status = Status::Held;
            reason = Some(why);
        } else if parts.title.is_empty() {
            status = Status::Held;
            reason = Some("empty subject".to_string());
        } else if author_address.is_empty() {
            status = Status::Held;
            reason = Some("no sender address in From".to_string());
        } else if body.trim().is_empty() {
            status = Status::Held;
            reason = Some("no text in the body".to_string());
        }

        let identity = match &message_id {
            Some(id) => format!("mid:{id}"),
            None => format!(
                "content:{}",
                HEXLOWER.encode(&Sha256::digest(
                    [
                        author_address.as_str(),
                        &subject,
                        date_header.as_deref().unwrap_or(""),
                        &normalise(&body)
                    ]
                    .join("\0")
                    .as_bytes()
                ))
            ),
        };
        let key = HEXLOWER.encode(&Sha256::digest(identity.as_bytes()))[..20].to_string();
        // Cut after the key is made from the whole subject, so a post keeps
        // its key whatever max_title_chars says.
        let cut = |text: String, max: usize| match crate::text::cut_chars(&text, max) {
            Cow::Borrowed(_) => text,
            Cow::Owned(cut) => cut,
        };
        let max_title = self.config.ingest.max_title_chars;
        let (subject, title) = (cut(subject, max_title), cut(parts.title, max_title));
        let author_name = cut(author_name, MAX_NAME_CHARS);

        let post = Post {
            key: Some(key),
            message_id,
            list_code: filing.list.map(|list| list.code.clone()),
            lang: filing.lang,
            status,
            reason,
            filed_by: filing.by,
            tag: parts.tag.clone(),
            subject,
            title,
            translations: parts.translations,
            machine_translation: parts.machine_translation,
            author_name,
            author_address,
            date_header,
            date,
            received_at,
            body,
            attachments,
            size: raw.len(),
        };
        NewPost {
            post,
            raw: Some(raw.to_vec()),
            auth_results: None,
        }
    }

    fn decide(
        &self,
        message: &Message<'_>,
        parts: &Subject,
        body: &str,
        envelope: &Envelope,
    ) -> Filing<'a> {
        let (sent_to, addressed_to) = self.addressed_lists(message, envelope);
        if let Some(tag) = &parts.tag {
            if let Some(list) = self.config.list_by_tag(tag) {
                return Filing::to(list, list.lang.clone(), FiledBy::Tag);
            }
            return match sent_to.or(addressed_to).filter(|list| list.catch_all) {
                Some(list) => Filing::to(list, tag.clone(), FiledBy::Address),
                None => Filing::held(format!("no list serves the language tag ({tag})")),
            };
        }
        // Names of groups and places in a title are often in another script
        // than the text, so the title only helps when the body says little.
        let detected = self.detector.detect(body).or_else(|| {
            (letters(body) < 40)
                .then(|| self.detector.detect(&format!("{}\n{}", parts.title, body)))
                .flatten()
        });
        if let Some(list) = sent_to {
            let lang = match (list.catch_all, detected) {
                (true, Some(code)) => code.to_string(),
                _ => list.lang.clone(),
            };
            return Filing::to(list, lang, FiledBy::Address);
        }
        if let Some((code, list)) =
            detected.and_then(|code| Some((code, self.config.list_by_lang(code)?)))
        {
            return Filing::to(list, code.to_string(), FiledBy::Detection);
        }
        match addressed_to {
            Some(list) => Filing::to(list, list.lang.clone(), FiledBy::Address),
            None => Filing::held(
                "language unknown: no tag in the subject, not sent to a list address, and the text is not clearly in a served language"
                    .to_string(),
            ),
        }
    }

    /// The lists the message was sent to: first where the mail system says it
    /// was delivered (`--list`, the envelope, Delivered-To, X-Original-To),
    /// then where the sender addressed it (To, Cc). The second is weaker
    /// evidence: a post cross-posted to several lists names them all, so the
    /// text's language decides before it.
    fn addressed_lists(
        &self,
        message: &Message<'_>,
        envelope: &Envelope,
    ) -> (Option<&'a List>, Option<&'a List>) {
        let config = self.config;
        let in_headers = |names: &[&str]| {
            names.iter().find_map(|name| {
                message
                    .header_values(*name)
                    .find_map(|value| addresses(value).find_map(|a| config.list_by_address(&a)))
            })
        };
        let sent_to = envelope
            .list_code
            .as_deref()
            .and_then(|code| config.list(code))
            .or_else(|| {
                envelope
                    .recipients
                    .iter()
                    .find_map(|r| config.list_by_address(r))
            })
            .or_else(|| in_headers(&["Delivered-To", "X-Original-To"]));
        (sent_to, in_headers(&["To", "Cc"]))
    }
}

/// The outcome of the language decision.
struct Filing<'a> {
    list: Option<&'a List>,
    lang: Option<String>,
    by: Option<FiledBy>,
    held: Option<String>,
}

impl<'a> Filing<'a> {
    fn to(list: &'a List, lang: String, by: FiledBy) -> Self {
        Filing {
            list: Some(list),
            lang: Some(lang),
            by: Some(by),
            held: None,
        }
    }

    fn held(reason: String) -> Self {
        Filing {
            list: None,
            lang: None,
            by: None,
            held: Some(reason),
        }
    }
}

fn rejected(size: usize, raw: Option<&[u8]>, received_at: i64, reason: String) -> NewPost {
    let post = Post {
        key: None,
        message_id: None,
        list_code: None,
        lang: None,
        status: Status::Rejected,
        reason: Some(reason),
        filed_by: None,
        tag: None,
        subject: String::new(),
        title: String::new(),
        translations: Vec::new(),
        machine_translation: false,
        author_name: String::new(),
        author_address: String::new(),
        date_header: None,
        date: None,
        received_at,
        body: String::new(),
        attachments: Vec::new(),
        size,
    };
    NewPost {
        post,
        raw: raw.map(<[u8]>::to_vec),
        auth_results: None,
    }
}

/// The body a post only in HTML gets from its raw message today, as
/// [`Filer::file_message`] would store it; `None` for any other message
/// (its first text part plain, or no MIME structure to read). Migration
/// 0018 files the HTML-only posts of an older store again with it, whose
/// paragraphs an earlier conversion ran together.
///
/// A message that makes the parser or the conversion panic is `None`: an
/// old archive holds every kind, and one of them must not stop an upgrade.
pub fn html_only_body(raw: &[u8]) -> Option<String> {
    if !raw.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")) {
        return None;
    }
    let refile = || {
        let message = headers::message_parser().parse(raw)?;
        let index = *message.text_body.first()?;
        match message.parts.get(index as usize)?.body {
            PartType::Html(_) => Some(clean_body(&body_text(&message))),
            _ => None,
        }
    };
    catch_unwind(AssertUnwindSafe(refile)).ok().flatten()
}

/// The text body: the first text/plain part, else text derived from HTML;
/// when that holds no more than a greeting or a signature, the text of a
/// forwarded message follows it.
fn body_text(message: &Message<'_>) -> String {
    let mut text = text_of(message).unwrap_or_default();
    if letters(without_signature(&text)) < 40 {
        let forwarded = message.parts.iter().find_map(|part| match &part.body {
            PartType::Message(inner) => text_of(inner),
            _ => None,
        });
        if let Some(forwarded) = forwarded {
            if !text.trim().is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(&forwarded);
        }
    }
    text
}

/// The first text body of `message`: a text/plain part as it is, an HTML
/// one as text with its block structure kept ([`html_text`]).
fn text_of(message: &Message<'_>) -> Option<String> {
    let index = *message.text_body.first()?;
    match &message.parts.get(index as usize)?.body {
        PartType::Html(html) => Some(html_text(html)),
        _ => message.body_text(0).map(|text| text.into_owned()),
    }
}

/// Lines of text in an HTML body (most posts that are only HTML come from
/// webmail), as html2text renders it: a blank line between paragraphs,
/// headings, list items and table rows, lines of at most 76 columns, each
/// link's address in a numbered note at the end, and a list apart from
/// the paragraph before it ([`lists_apart`]). mail-parser's own
/// conversion runs paragraphs together; it is the fallback if html2text
/// fails.
fn html_text(html: &str) -> String {
    const WIDTH: usize = 76;
    match html2text::config::plain_no_decorate()
        .link_footnotes(true)
        .no_link_wrapping()
        .allow_width_overflow()
        .string_from_read(html.as_bytes(), WIDTH)
    {
        Ok(text) => lists_apart(&text),
        Err(_) => mail_parser::decoders::html::html_to_text(html),
    }
}

/// `text` as html2text renders HTML, with a blank line before a list that
/// follows a line of text: html2text starts a `<ul>` or `<ol>` on the line
/// after a `<p>`, which made the list part of that paragraph wherever
/// paragraphs are read (an excerpt ran `on Sunday. * bread * roses`).
fn lists_apart(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut previous = "";
    for line in text.split_inclusive('\n') {
        // A line indented is an item's own, continued, or a nested list's.
        let in_list = is_list_item(previous) || previous.starts_with(' ');
        if is_list_item(line) && !previous.trim().is_empty() && !in_list {
            out.push('\n');
        }
        out.push_str(line);
        previous = line;
    }
    out
}

/// Whether `line` opens a list item as html2text writes one: `* `, or a
/// number of up to three digits and `. `.
fn is_list_item(line: &str) -> bool {
    let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    line.starts_with("* ") || ((1..=3).contains(&digits) && line[digits..].starts_with(". "))
}

/// Text before the "-- " signature separator.
fn without_signature(text: &str) -> &str {
    let start =
        if text.starts_with("-- \n") || text.starts_with("-- \r\n") || text.trim_end() == "--" {
            0
        } else {
            text.find("\n-- \n")
                .or_else(|| text.find("\n-- \r\n"))
                .map_or(text.len(), |i| i + 1)
        };
    &text[..start]
}

fn letters(text: &str) -> usize {
    text.chars().filter(|c| c.is_alphabetic()).count()
}

/// The attachments of a message, and those of the messages it forwards.
/// `raw` is the outermost message: mail-parser counts the offsets of a
/// forwarded message's parts from there, unless the forward was encoded.
fn attachments(raw: &[u8], message: &Message<'_>) -> Vec<Attachment> {
    let mut found = Vec::new();
    for part in message.attachments() {
        if let PartType::Message(inner) = &part.body {
            found.extend(attachments(raw, inner));
            continue;
        }
        let filename = part.attachment_name().map(|name| {
            let header = part.offset_header as usize..part.offset_body as usize;
            let repaired = || {
                [raw, message.raw_message()]
                    .iter()
                    .find_map(|bytes| headers::rejoin_file_name(bytes.get(header.clone())?))
            };
            clean_line(&repaired().unwrap_or_else(|| name.to_string()))
        });
        found.push(Attachment {
            filename,
            content_type: part
                .content_type()
                .map(|ct| match &ct.c_subtype {
                    Some(sub) => format!("{}/{}", ct.c_type, sub),
                    None => ct.c_type.to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".to_string())
                .to_ascii_lowercase(),
            size: part.contents().len(),
        });
    }
    found
}

fn author(message: &Message<'_>) -> (String, String) {
    let Some(from) = message.from().and_then(|from| from.first()) else {
        return (String::new(), String::new());
    };
    let mut address = from.address().map(clean_line).unwrap_or_default();
    let mut name = from.name().map(clean_line).unwrap_or_default();
    if !address.contains('@') {
        if let Some((found, comment)) = message
            .header_raw(HeaderName::From)
            .and_then(archived_sender)
        {
            address = found;
            name = comment
                .map(|c| clean_line(&decoded_phrase(&c)))
                .unwrap_or_default();
        }
    }
    // A display name that is only the address again shows nothing new.
    let name = if name.eq_ignore_ascii_case(&address) {
        String::new()
    } else {
        name
    };
    (name, address)
}

/// The sender of a message from a Mailman 2 (pipermail) archive, which
/// writes `From: ana at example.org (Ana Pérez)` to keep the address from
/// harvesters: the address and the comment, if the raw value has that form.
fn archived_sender(raw: &str) -> Option<(String, Option<String>)> {
    let raw = raw.trim();
    let (mailbox, comment) = match raw.split_once(" (") {
        Some((mailbox, rest)) => (mailbox.trim(), rest.strip_suffix(')').map(str::to_string)),
        None => (raw, None),
    };
    let (local, domain) = mailbox.split_once(" at ")?;
    let plain = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b))
    };
    (plain(local) && plain(domain) && domain.contains('.'))
        .then(|| (format!("{local}@{domain}"), comment))
}

/// A phrase as a header carries it, encoded-words decoded.
fn decoded_phrase(phrase: &str) -> String {
    let header = format!("Subject: {phrase}\r\n\r\n");
    MessageParser::default()
        .parse_headers(header.as_bytes())
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_else(|| phrase.to_string())
}

/// Every address in an address header.
fn addresses<'x>(value: &'x HeaderValue<'x>) -> impl Iterator<Item = String> + 'x {
    let list: Vec<String> = match value {
        HeaderValue::Address(address) => address
            .iter()
            .filter_map(|a| a.address().map(str::to_string))
            .collect(),
        HeaderValue::Text(text) => vec![text.to_string()],
        HeaderValue::TextList(list) => list.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    };
    list.into_iter()
}

/// Whether `message` has a field every mail message has one of: what a
/// file that is no message at all (an image, a document piped by mistake)
/// lacks, whatever its bytes made the parser take for fields.
fn has_mail_fields(message: &Message<'_>) -> bool {
    message.headers().iter().any(|header| {
        matches!(
            header.name,
            HeaderName::From
                | HeaderName::Sender
                | HeaderName::To
                | HeaderName::Subject
                | HeaderName::Date
                | HeaderName::MessageId
        )
    })
}

/// The longest contributor name a post is stored with, in characters: a
/// name is shown beside every title, never worth more than a line.
const MAX_NAME_CHARS: usize = 200;

/// One line of header text: no control characters, no NUL, no folding,
/// none of the formatting characters that reorder or hide what follows
/// ([`crate::text::is_spoofing_format`]).
fn clean_line(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .filter(|&c| !crate::text::is_spoofing_format(c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut line = String::with_capacity(cleaned.len());
    for word in cleaned.split(' ').filter(|w| !w.is_empty()) {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    line
}

/// Body text with LF line ends, no NUL and no other C0 control except tab.
fn clean_body(text: &str) -> String {
    let text: Cow<'_, str> = if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(text)
    };
    text.chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control() || (c as u32) > 0x9f)
        .collect()
}

/// Body text reduced to what survives re-sending: words separated by one space.
fn normalise(body: &str) -> String {
    body.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::config::shipped()
    }

    fn file(raw: &str) -> NewPost {
        let config = config();
        Filer::new(&config).file_message(raw.as_bytes(), &Envelope::default(), 1_700_000_000)
    }

    #[test]
    fn tagged_post_is_filed_by_its_tag() {
        let post = file("From: Ana <ana@example.org>\r\nTo: a-infos-fr@lists.example.org\r\nSubject: (gr) Ελλάδα: απεργία (en, fr)[machine translation]\r\nMessage-ID: <1@example.org>\r\n\r\nΚείμενο.\r\n");
        assert_eq!(post.status, Status::Published, "{:?}", post.reason);
        assert_eq!(post.list_code.as_deref(), Some("gr"));
        assert_eq!(post.lang.as_deref(), Some("el"));
        assert_eq!(post.filed_by, Some(FiledBy::Tag));
        assert_eq!(post.title, "Ελλάδα: απεργία");
        assert_eq!(post.translations, ["en", "fr"]);
        assert!(post.machine_translation);
        assert_eq!(post.message_id.as_deref(), Some("<1@example.org>"));
        assert_eq!(post.body, "Κείμενο.\n");
    }

    #[test]
    fn long_subjects_are_cut_and_reordering_controls_dropped_but_the_key_is_the_whole_ones() {
        let long = "word ".repeat(40_000);
        let raw = format!(
            "From: =?UTF-8?Q?Ana_=E2=80=AEgpj.exe?= <a@example.org>\r\n\
             To: a-infos-en@lists.example.org\r\nMessage-ID: <long@example.org>\r\n\
             Subject: (en) Zero\u{200b}width \u{2066}isolate\u{2069} {long}\r\n\r\nText\r\n"
        );
        let post = file(&raw);
        assert_eq!(post.status, Status::Published);
        let max = crate::config::ingest::DEFAULT_MAX_TITLE_CHARS;
        assert!(post.title.chars().count() <= max, "{}", post.title.len());
        assert!(post.subject.chars().count() <= max);
        assert!(
            post.title.starts_with("Zerowidth isolate word word"),
            "{}",
            &post.title[..40]
        );
        assert!(
            post.title.ends_with("word…"),
            "cut after a word: {:?}",
            &post.title[post.title.len() - 12..]
        );
        assert_eq!(post.author_name, "Ana gpj.exe");
        // The key comes from the Message-ID, not from the cut subject.
        let whole = HEXLOWER.encode(&Sha256::digest(b"mid:<long@example.org>"))[..20].to_string();
        assert_eq!(post.key.as_deref(), Some(whole.as_str()));
        // Hebrew and Persian keep the marks and joiners they need.
        let rtl = file("From: a@example.org\r\nTo: a-infos-en@lists.example.org\r\n\
            Subject: (en) \u{5e9}\u{5dc}\u{5d5}\u{5dd}\u{200f} \u{645}\u{06cc}\u{200c}\u{62e}\u{648}\u{627}\u{647}\u{645}\r\n\r\nText\r\n");
        assert_eq!(rtl.title, "\u{5e9}\u{5dc}\u{5d5}\u{5dd}\u{200f} \u{645}\u{06cc}\u{200c}\u{62e}\u{648}\u{627}\u{647}\u{645}");
    }

    #[test]
    fn unserved_tag_is_held_not_guessed() {
        let post = file("From: a@example.org\r\nTo: a-infos-en@lists.example.org\r\nSubject: (ar) Title\r\n\r\nText\r\n");
        assert_eq!(post.status, Status::Held);
        assert_eq!(
            post.reason.as_deref(),
            Some("no list serves the language tag (ar)")
        );
    }

    #[test]
    fn unserved_tag_sent_to_the_supplement_is_filed_there() {
        let post = file("From: a@example.org\r\nTo: a-infos-supplement@lists.example.org\r\nSubject: (eu) Izenburua\r\n\r\nTestua\r\n");
        assert_eq!(post.list_code.as_deref(), Some("supplement"));
        assert_eq!(post.lang.as_deref(), Some("eu"));
    }

    #[test]
    fn untagged_post_is_filed_by_address_then_by_text() {
        let post = file("From: a@example.org\r\nTo: A-Infos-DE@lists.example.org\r\nSubject: Titel\r\n\r\nText\r\n");
        assert_eq!(
            (post.list_code.as_deref(), post.filed_by),
            (Some("de"), Some(FiledBy::Address))
        );
        let post = file("From: a@example.org\r\nTo: a-infos@lists.example.org\r\nSubject: Titre\r\n\r\nTous les êtres humains naissent libres et égaux en dignité et en droits. Ils sont doués de raison et de conscience et doivent agir les uns envers les autres dans un esprit de fraternité.\r\n");
        assert_eq!(
            (post.list_code.as_deref(), post.filed_by),
            (Some("fr"), Some(FiledBy::Detection))
        );
    }

    #[test]
    fn raw_8bit_subject_is_decoded_with_the_body_charset() {
        let raw = b"From: a@example.org\r\nSubject: (de) Gr\xfc\xdfe\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nHallo\r\n";
        let config = config();
        let post = Filer::new(&config).file_message(raw, &Envelope::default(), 0);
        assert_eq!(post.title, "Grüße");
    }

    #[test]
    fn oversize_and_empty_messages_are_rejected_with_a_reason() {
        let config = config();
        let filer = Filer::new(&config);
        let big = vec![b'a'; config.ingest.max_message_bytes + 1];
        let post = filer.file_message(&big, &Envelope::default(), 0);
        assert_eq!(post.status, Status::Rejected);
        assert!(post.reason.as_deref().unwrap().contains("10485760"));
        assert!(post.raw.is_none());
        let post = filer.file_message(b"\r\n", &Envelope::default(), 0);
        assert_eq!(post.reason.as_deref(), Some("empty message"));
    }

    #[test]
    fn missing_message_id_gets_a_content_key() {
        let a = file("From: a@example.org\r\nSubject: (en) T\r\n\r\nSame text\r\n");
        let b = file("From: a@example.org\r\nSubject: (en) T\r\n\r\nSame  text\n");
        assert_eq!(a.key, b.key);
        assert!(a.message_id.is_none());
    }

    #[test]
    fn an_html_only_post_keeps_its_paragraphs_and_links() {
        let post = file(
            "From: a@example.org\r\nSubject: (en) Strike\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
             <html><body><h1>Strike</h1><p>The strike goes on.</p><p>Assembly at <a href=\"https://example.org/a\">the hall</a>\r\n\
             on Sunday.</p><ul><li>bread</li><li>roses</li></ul></body></html>\r\n",
        );
        let paragraphs = crate::text::paragraphs(&post.body);
        let texts: Vec<String> = paragraphs.iter().map(|lines| lines.join(" ")).collect();
        assert_eq!(texts[1], "The strike goes on.", "{texts:?}");
        assert!(texts[2].starts_with("Assembly at [the hall][1] on Sunday."));
        // List items each on a line of their own, the list apart from the
        // paragraph before it; the link's address in a note.
        assert!(
            post.body.contains("Sunday.\n\n* bread\n* roses\n"),
            "{}",
            post.body
        );
        assert!(texts.contains(&"[1]: https://example.org/a".to_string()));
        assert!(!post.body.contains('<'), "{}", post.body);
    }
}
