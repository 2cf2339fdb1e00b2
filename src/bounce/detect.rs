//! Reading a bounce (pure): which recipients failed, and whether for good.
//!
//! A delivery status notification (RFC 3464, `multipart/report` with a
//! `message/delivery-status` part) says it in fields: each recipient's
//! `Final-Recipient` (or `Original-Recipient`), its `Action` and `Status`.
//! That is read first. Many servers still send a plain letter instead
//! ("could not be delivered to the following recipients"); for those the
//! report is the text before the returned message, and the failed
//! recipients are the addresses it names, less the postmaster's, the
//! bounce's own sender and recipient and the site's. A letter that speaks
//! of a delay (a warning, "will retry") is a temporary failure; anything
//! else that names an address is a permanent one.
//!
//! This file uses nothing of the crate but mail-parser, so it can be tried
//! on a corpus on its own.

use std::panic::{catch_unwind, AssertUnwindSafe};

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

/// One recipient a bounce reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The address as the bounce spells it.
    pub address: String,
    /// A permanent failure (5.x.x, "failed"), not a delay (4.x.x,
    /// "delayed", a warning).
    pub permanent: bool,
}

/// What reading a bounce found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// How the failures were read: "dsn" (RFC 3464) or "text"; `None` when
    /// the message reports no failure tidings can read.
    pub format: Option<&'static str>,
    /// The recipients it reports, each once (case-insensitively).
    pub failures: Vec<Failure>,
}

/// Reads the bounce `raw`; `ours` is the site's domain, whose addresses
/// are never a failed recipient (they are the list's own, quoted back).
pub fn detect(raw: &[u8], ours: &str) -> Found {
    let Some(message) = parse(raw) else {
        return Found::default();
    };
    let mut dsn = Vec::new();
    read_dsn(&message, 0, &mut dsn);
    if !dsn.is_empty() {
        return Found {
            format: Some("dsn"),
            failures: dsn,
        };
    }
    let text = read_text(&message, ours);
    Found {
        format: (!text.is_empty()).then_some("text"),
        failures: text,
    }
}

/// The bounce as mail-parser reads it. mail-parser 0.11 can panic on some
/// MIME trees, and a bounce that returns one of our MIME digests of a
/// forwarded post has such a tree (a message/rfc822 inside another, in a
/// multipart): the report comes before what it returns, so the bounce is
/// then read again without the message it returns.
fn parse(raw: &[u8]) -> Option<Message<'_>> {
    let parser = MessageParser::default();
    if let Ok(message) = catch_unwind(AssertUnwindSafe(|| parser.parse(raw))) {
        return message;
    }
    let returned =
        memchr::memmem::find(&raw.to_ascii_lowercase(), b"content-type: message/rfc822")?;
    catch_unwind(AssertUnwindSafe(|| parser.parse(&raw[..returned])))
        .ok()
        .flatten()
}

/// The failed recipients of every `message/delivery-status` part, also
/// in a report forwarded as an attachment (a few levels deep).
fn read_dsn(message: &Message<'_>, depth: usize, failures: &mut Vec<Failure>) {
    for part in &message.parts {
        if let PartType::Message(nested) = &part.body {
            if depth < 3 {
                read_dsn(nested, depth + 1, failures);
            }
            continue;
        }
        if !is_type(part, "message", "delivery-status") {
            continue;
        }
        let contents = String::from_utf8_lossy(part.contents());
        // The per-message fields come first, then one block per recipient,
        // blocks separated by blank lines (RFC 3464 2.1).
        for block in blocks(&contents) {
            let field = |name: &str| {
                block
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
                    .map(|(_, value)| value.as_str())
            };
            let Some(address) = field("Original-Recipient")
                .and_then(recipient_address)
                .or_else(|| field("Final-Recipient").and_then(recipient_address))
            else {
                continue;
            };
            let action = field("Action").map(|a| a.trim().to_ascii_lowercase());
            let status = field("Status").map(str::trim).unwrap_or("");
            let permanent = match action.as_deref() {
                // A failure is final whatever its status (4.4.7: expired).
                Some(action) if action.starts_with("failed") => true,
                Some(action) if action.starts_with("delayed") => false,
                // Delivered, relayed, expanded: no failure.
                Some(_) => continue,
                None if status.starts_with('5') => true,
                None if status.starts_with('4') => false,
                None => continue,
            };
            push(failures, address, permanent);
        }
    }
}

/// The fields of each block of a delivery-status body, continuation lines
/// unfolded.
fn blocks(contents: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = Vec::new();
    let mut block: Vec<(String, String)> = Vec::new();
    for line in contents.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = block.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

/// The address of a `Final-Recipient`/`Original-Recipient` value,
/// `rfc822; user@host` (the address type is dropped).
fn recipient_address(value: &str) -> Option<String> {
    let (kind, address) = value.split_once(';').unwrap_or(("rfc822", value));
    if !kind.trim().eq_ignore_ascii_case("rfc822") {
        return None;
    }
    let address = address.trim().trim_matches(|c| c == '<' || c == '>').trim();
    valid(address).then(|| address.to_string())
}

fn is_type(part: &MessagePart<'_>, ctype: &str, subtype: &str) -> bool {
    part.is_content_type(ctype, subtype)
}

/// Words that mark where the report ends and the returned message (or its
/// headers) begins, in a lowercased line.
const RETURNED: &[&str] = &[
    "original message follows",
    "original message as received",
    "original message:",
    "original message --",
    "-- original message",
    "original message headers",
    "transcript of session",
    "session transcript",
    "returned message",
    "returned mail",
    "copy of the message",
    "copy of your message",
    "copy of the original",
    "message headers follow",
    "the header of the original",
    "included is a copy",
    "below this line is a copy",
    "unsent message below",
    "message text follows",
    "original message details",
    "header of the message",
    "headers of the message",
    "your message reads",
    "old message:",
    "message was:",
];

/// Header fields of a returned message, which end the report when a line
/// starts with one.
const RETURNED_FIELDS: &[&str] = &[
    "received:",
    "return-path:",
    "message-id:",
    "dkim-signature:",
];

/// Words of a report about a delay, not a failure.
const DELAY: &[&str] = &[
    "warning",
    "delayed",
    "not yet been delivered",
    "will continue to",
    "will be retried",
    "will retry",
    "still trying",
    "keep trying",
    "postponed",
    "advisory",
    "no action is required",
    "do not need to take any action",
    "will try again",
    "has not been delivered yet",
];

/// Words that make a report about a delay a failure after all.
const FAILURE: &[&str] = &[
    "permanent error",
    "permanent fatal",
    "permanently",
    "unrecoverable",
    "giving up",
    "gave up",
    "fatal",
];

/// The failed recipients a letter names.
fn read_text(message: &Message<'_>, ours: &str) -> Vec<Failure> {
    let mut report = String::new();
    let mut excluded: Vec<String> = Vec::new();
    for part in &message.parts {
        if is_type(part, "text", "rfc822-headers") {
            if let Some(headers) = MessageParser::default().parse_headers(part.contents()) {
                exclude_returned(&headers, &mut excluded);
            }
            continue;
        }
        match &part.body {
            PartType::Message(returned) => exclude_returned(returned, &mut excluded),
            PartType::Text(text) => report_of(text, &mut report),
            PartType::Html(html) => report_of(&strip_tags(html), &mut report),
            _ => {}
        }
    }
    let lower = report.to_ascii_lowercase();
    let subject = message.subject().unwrap_or("").to_ascii_lowercase();
    // Not every letter to a bounce address is a bounce: one that speaks of
    // no failure at all names no failed recipient.
    let from_daemon = message.header_raw("From").is_some_and(|from| {
        let from = from.to_ascii_lowercase();
        from.contains("mailer-daemon") || from.contains("postmaster")
    });
    if !from_daemon
        && !BOUNCE
            .iter()
            .any(|words| lower.contains(words) || subject.contains(words))
    {
        return Vec::new();
    }
    let delay = DELAY.iter().any(|words| lower.contains(words))
        && !FAILURE.iter().any(|words| lower.contains(words));
    let delay = delay
        || (["warning", "delayed", "delay"]
            .iter()
            .any(|words| subject.contains(words))
            && !["unknown", "fail", "undeliver", "return", "error"]
                .iter()
                .any(|words| subject.contains(words)));
    for name in ["From", "To", "Sender", "Return-Path", "Reply-To"] {
        exclude_field(message, name, &mut excluded);
    }
    let ours = format!("@{}", ours.to_ascii_lowercase());
    let mut failures = Vec::new();
    // Exchange quotes the original's To and Cc ("Your message To: ... did
    // not reach the following recipient(s)"): those are not the failures.
    let exchange = lower.contains("did not reach");
    let quoted = |line: &&str| {
        let line = line.trim_start().to_ascii_lowercase();
        !(exchange && (line.starts_with("to:") || line.starts_with("cc:")))
    };
    let words = report
        .lines()
        .filter(quoted)
        .flat_map(|line| line.split(|c: char| c.is_whitespace() || c == ',' || c == '"'));
    for word in words {
        let Some(address) = address_in(word) else {
            continue;
        };
        let lower = address.to_ascii_lowercase();
        let local = lower.split('@').next().unwrap_or("");
        let machine = [
            "postmaster",
            "mailer-daemon",
            "mailer_daemon",
            "mail-daemon",
        ]
        .contains(&local)
            || local.starts_with("owner-")
            || local.ends_with("-admin")
            || local.ends_with("-owner")
            || local.starts_with("bounce")
            || local.contains("-bounces")
            || local.contains("-request");
        if machine || lower.ends_with(&ours) || excluded.contains(&lower) {
            continue;
        }
        push(&mut failures, address, !delay);
    }
    failures
}

/// Words of a report of a failure or a delay, one of which a bounce
/// letter has (lowercased).
const BOUNCE: &[&str] = &[
    "deliver",
    "failed",
    "failure",
    "unknown",
    "not found",
    "no such",
    "reject",
    "returned",
    "bounce",
    "error",
    "quota",
    "mailbox",
    "unable",
    "undeliverable",
    "not reach",
    "invalid",
];

/// Keeps the addresses of a returned message's sender and list out of the
/// failed recipients: the list's own addresses (List-Post, List-Help...),
/// and a `LIST-request` address's list.
fn exclude_returned(returned: &Message<'_>, excluded: &mut Vec<String>) {
    let mut recipients = Vec::new();
    for name in ["To", "Cc"] {
        exclude_field(returned, name, &mut recipients);
    }
    let mut senders = Vec::new();
    for name in [
        "From",
        "Sender",
        "Reply-To",
        "Errors-To",
        "List-Post",
        "List-Help",
        "List-Subscribe",
        "List-Unsubscribe",
        "List-Id",
    ] {
        exclude_field(returned, name, &mut senders);
    }
    // A message its sender sent to themselves failed for them.
    excluded.extend(
        senders
            .into_iter()
            .filter(|sender| !recipients.contains(sender)),
    );
}

fn exclude_field(message: &Message<'_>, name: &str, excluded: &mut Vec<String>) {
    let Some(value) = message.header_raw(name) else {
        return;
    };
    for word in value.split(|c: char| c.is_whitespace() || c == ',' || c == '?') {
        let Some(address) = address_in(word) else {
            continue;
        };
        let lower = address.to_ascii_lowercase();
        if let Some((local, domain)) = lower.rsplit_once('@') {
            if let Some(list) = local.strip_suffix("-request") {
                excluded.push(format!("{list}@{domain}"));
            }
        }
        excluded.push(lower);
    }
}

/// Appends to `report` the lines of `text` before the returned message.
fn report_of(text: &str, report: &mut String) {
    for (lines, line) in text.lines().enumerate() {
        let lower = line.trim().to_ascii_lowercase();
        // "did not receive a copy of your message" names the failures.
        let returned =
            RETURNED.iter().any(|words| lower.contains(words)) && !lower.contains("not receive");
        if returned || (lines > 0 && RETURNED_FIELDS.iter().any(|field| lower.starts_with(field))) {
            break;
        }
        report.push_str(line);
        report.push('\n');
    }
}

/// The address in one word of a report: `user@host.tld`, perhaps in angle
/// brackets, quotes or parentheses, after `mailto:`, `rfc822;` or `SMTP:`,
/// or before sendmail's `...` and its reason.
fn address_in(word: &str) -> Option<String> {
    let word = word.split("...").next().unwrap_or(word);
    let word = word.trim_matches(|c| "<>()[]'\".,;:!?*".contains(c));
    let word = match word.rfind('<') {
        Some(open) => &word[open + 1..],
        None => word,
    };
    let word = word.rfind([':', ';']).map_or(word, |i| &word[i + 1..]);
    let word = match word.get(..5) {
        Some(prefix) if prefix.eq_ignore_ascii_case("smtp=") => &word[5..],
        _ => word,
    };
    let end = word.find(['>', ')', ']', '\'', '"']).unwrap_or(word.len());
    let word = word[..end].trim_end_matches(['.', ',', ';', ':', '!', '?']);
    valid(word).then(|| word.to_string())
}

/// Whether `address` is a plausible `local@host.tld`.
fn valid(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&*+-/=?^_`{|}~.".contains(c));
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && domain
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

/// HTML as text, crudely: tags become spaces.
fn strip_tags(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                // Tags end lines (<BR>, <P>...): a report's lines matter.
                text.push('\n');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn push(failures: &mut Vec<Failure>, address: String, permanent: bool) {
    match failures
        .iter_mut()
        .find(|failure| failure.address.eq_ignore_ascii_case(&address))
    {
        Some(failure) => failure.permanent |= permanent,
        None => failures.push(Failure { address, permanent }),
    }
}
