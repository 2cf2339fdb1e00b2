//! The NNTP reader session (RFC 3977), sans-IO: a command line and a store
//! connection in, the reply's bytes and what the connection does next out.
//! No sockets, no clock (the time is given). Each reply code it sends is
//! tested in `tests` below.

use crate::store::Connection;
use chrono::{DateTime, Utc};

use super::command::{self, Command, ListKind, Refusal, Span, Target};
use super::{Group, Newsroom};
use crate::store::newsgroups::{self, Article, Entry};

/// What the connection does after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Read the next command.
    Read,
    /// Close (QUIT, too many errors).
    Close,
    /// Start TLS, then read commands in a new session.
    StartTls,
}

/// A reply and what follows it.
#[derive(Debug)]
pub struct Answer {
    /// The reply, CRLF-terminated, multi-line ones dot-stuffed and ended.
    pub bytes: Vec<u8>,
    /// What the connection does next.
    pub after: After,
}

/// One reader's state: the selected group and current article.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// The index of the selected group in the newsroom.
    group: Option<usize>,
    /// The current article number in it.
    current: Option<i64>,
    /// Whether the connection is under TLS already.
    tls: bool,
    /// 500 and 501 replies in a row.
    errors: u32,
}

/// The greeting (RFC 3977 section 5.1): 201, posting is not allowed.
pub fn greeting(newsroom: &Newsroom) -> Vec<u8> {
    format!(
        "201 {} tidings news server ready, posting prohibited (post by mail)\r\n",
        newsroom.host
    )
    .into_bytes()
}

/// The reply to a client that came when every slot was taken.
pub const TOO_MANY_CONNECTIONS: &[u8] = b"400 too many connections, try again later\r\n";

/// The reply to a client silent past the command deadline.
pub const TIMEOUT: &[u8] = b"400 timeout: no command in time, closing\r\n";

/// The reply to a command line over [`command::MAX_LINE`].
pub const LINE_TOO_LONG: &[u8] = b"501 command line too long\r\n";

/// The reply when the daemon stops.
pub const SHUTTING_DOWN: &[u8] = b"400 server shutting down\r\n";

type Reply = crate::store::Result<(Vec<u8>, After)>;

/// Longest status line, CRLF included (RFC 3977 section 3.1).
const MAX_STATUS_LINE: usize = 512;

/// A one-line reply. Its text may quote the reader (a group name): control
/// characters become spaces, so it ends where it should and carries no
/// escape, and it is cut to [`MAX_STATUS_LINE`].
fn line(text: impl AsRef<str>) -> Reply {
    let mut out = Vec::with_capacity(text.as_ref().len() + 2);
    for c in text.as_ref().chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_STATUS_LINE - 2 {
            break;
        }
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Ok((out, After::Read))
}

impl Session {
    /// A new session after STARTTLS: nothing of the one before is kept
    /// (RFC 4642 section 2.2.2), and STARTTLS is not offered again.
    pub fn under_tls() -> Session {
        Session {
            tls: true,
            ..Session::default()
        }
    }

    /// Answers one command line (CRLF taken off) from the store as `db`
    /// sees it now; `now` for DATE.
    pub fn answer(
        &mut self,
        input: &[u8],
        db: &Connection,
        newsroom: &Newsroom,
        now: DateTime<Utc>,
    ) -> Answer {
        let reply = match command::parse(input) {
            Ok(command) => {
                self.errors = 0;
                self.run(command, db, newsroom, now)
            }
            Err(refusal) => {
                self.errors += 1;
                if self.errors > crate::ingest::listener::MAX_ERRORS {
                    Ok((b"400 too many errors, closing\r\n".to_vec(), After::Close))
                } else {
                    match refusal {
                        Refusal::Unknown => line("500 unknown command"),
                        Refusal::Syntax(why) => line(format!("501 syntax error: {why}")),
                    }
                }
            }
        };
        let (bytes, after) = reply.unwrap_or_else(|error| {
            tracing::warn!(%error, "nntp: the store could not answer");
            (
                b"403 internal fault, try again later\r\n".to_vec(),
                After::Read,
            )
        });
        Answer { bytes, after }
    }

    fn run(
        &mut self,
        command: Command,
        db: &Connection,
        room: &Newsroom,
        now: DateTime<Utc>,
    ) -> Reply {
        match command {
            Command::Capabilities => {
                let mut text = String::from(
                    "101 capability list follows\r\nVERSION 2\r\nREADER\r\nHDR\r\nOVER\r\nLIST ACTIVE NEWSGROUPS OVERVIEW.FMT HEADERS\r\nNEWNEWS\r\n",
                );
                if room.starttls && !self.tls {
                    text.push_str("STARTTLS\r\n");
                }
                text.push_str(concat!(
                    "IMPLEMENTATION tidings ",
                    env!("CARGO_PKG_VERSION"),
                    "\r\n.\r\n"
                ));
                Ok((text.into_bytes(), After::Read))
            }
            Command::ModeReader => line("201 reader mode, posting prohibited (post by mail)"),
            Command::List(kind) => Ok((list(kind, db, room)?, After::Read)),
            Command::Group(name) => match room.groups.iter().position(|group| group.name == name) {
                None => line(format!("411 no such group {name}")),
                Some(index) => {
                    let range = newsgroups::range(db, &room.groups[index].code)?;
                    self.group = Some(index);
                    self.current = (range.count > 0).then_some(range.low);
                    line(format!(
                        "211 {} {} {} {name}",
                        range.count, range.low, range.high
                    ))
                }
            },
            Command::ListGroup(name, span) => {
                let index = match name {
                    Some(name) => match room.groups.iter().position(|group| group.name == name) {
                        Some(index) => index,
                        None => return line(format!("411 no such group {name}")),
                    },
                    None => match self.group {
                        Some(index) => index,
                        None => return line("412 no newsgroup selected"),
                    },
                };
                let group = &room.groups[index];
                let range = newsgroups::range(db, &group.code)?;
                self.group = Some(index);
                self.current = (range.count > 0).then_some(range.low);
                let (low, high) = match span {
                    Some(Span::Numbers(low, high)) => (low, high),
                    _ => (range.low, range.high),
                };
                let mut out = format!(
                    "211 {} {} {} {} list follows\r\n",
                    range.count, range.low, range.high, group.name
                );
                for number in newsgroups::numbers(db, &group.code, low, high)? {
                    out.push_str(&format!("{number}\r\n"));
                }
                out.push_str(".\r\n");
                Ok((out.into_bytes(), After::Read))
            }
            Command::Article(target) => self.article(target, db, room, Part::Whole),
            Command::Head(target) => self.article(target, db, room, Part::Head),
            Command::Body(target) => self.article(target, db, room, Part::Body),
            Command::Stat(target) => self.article(target, db, room, Part::Stat),
            Command::Next | Command::Last => {
                let forward = command == Command::Next;
                let Some(group) = self.group.map(|index| &room.groups[index]) else {
                    return line("412 no newsgroup selected");
                };
                let Some(current) = self.current else {
                    return line("420 no current article");
                };
                match newsgroups::neighbour(db, &group.code, current, forward)? {
                    None if forward => line("421 no next article in this group"),
                    None => line("422 no previous article in this group"),
                    Some(number) => match newsgroups::by_number(db, &group.code, number)? {
                        None => line("420 no current article"),
                        Some(article) => {
                            self.current = Some(number);
                            line(format!(
                                "223 {number} {} retrieved",
                                message_id(&article, room)
                            ))
                        }
                    },
                }
            }
            Command::Over(span) => self.over(span, db, room),
            Command::Hdr(field, span, legacy) => self.hdr(&field, span, legacy, db, room),
            Command::NewGroups(since) => {
                // A group is new from its first article (RFC 3977 7.3: the
                // lines are those of LIST ACTIVE).
                let mut out = String::from("231 list of new newsgroups follows\r\n");
                for group in &room.groups {
                    let began = newsgroups::began(db, &group.code)?;
                    if began.is_some_and(|began| began >= since.timestamp()) {
                        let range = newsgroups::range(db, &group.code)?;
                        out.push_str(&format!(
                            "{} {} {} n\r\n",
                            group.name, range.high, range.low
                        ));
                    }
                }
                out.push_str(".\r\n");
                Ok((out.into_bytes(), After::Read))
            }
            Command::NewNews(wildmat, since) => {
                let codes: Vec<String> = room
                    .groups
                    .iter()
                    .filter(|group| command::wildmat(&wildmat, &group.name))
                    .map(|group| group.code.clone())
                    .collect();
                let mut out = String::from("230 list of new articles follows\r\n");
                // An id that is no one word cannot be listed (see is_sound).
                for id in newsgroups::new_since(db, &codes, since.timestamp())? {
                    if is_sound(&id) {
                        out.push_str(&format!("{id}\r\n"));
                    }
                }
                out.push_str(".\r\n");
                Ok((out.into_bytes(), After::Read))
            }
            Command::Date => line(format!("111 {}", now.format("%Y%m%d%H%M%S"))),
            Command::Help => Ok((HELP.as_bytes().to_vec(), After::Read)),
            Command::Quit => Ok((b"205 closing connection\r\n".to_vec(), After::Close)),
            Command::Post => {
                let address = self
                    .group
                    .and_then(|index| room.groups[index].address.clone());
                let to = match address {
                    Some(address) => format!("to {address}"),
                    None => "to the list's address (each list's page names it)".to_string(),
                };
                line(format!(
                    "440 posting not permitted: send your post by mail {to}, where moderation applies"
                ))
            }
            Command::Ihave => line("435 article not wanted: this server takes no transfers"),
            Command::StartTls if self.tls => line("502 already under TLS"),
            Command::StartTls if !room.starttls => {
                line("502 STARTTLS not offered: no certificate configured")
            }
            Command::StartTls => Ok((
                b"382 continue with TLS negotiation\r\n".to_vec(),
                After::StartTls,
            )),
        }
    }

    fn selected<'a>(&self, room: &'a Newsroom) -> Option<&'a Group> {
        self.group.map(|index| &room.groups[index])
    }

    /// The article a command names, or the reply that says why not.
    fn find(
        &mut self,
        target: Target,
        db: &Connection,
        room: &Newsroom,
    ) -> crate::store::Result<Result<Article, &'static str>> {
        match target {
            Target::MessageId(id) => Ok(newsgroups::by_message_id(
                db,
                &id,
                self.selected(room).map(|group| group.code.as_str()),
            )?
            .ok_or("430 no article with that message-id")),
            Target::Number(number) => {
                let Some(group) = self.selected(room) else {
                    return Ok(Err("412 no newsgroup selected"));
                };
                match newsgroups::by_number(db, &group.code, number)? {
                    Some(article) => {
                        self.current = Some(number);
                        Ok(Ok(article))
                    }
                    None => Ok(Err("423 no article with that number")),
                }
            }
            Target::Current => {
                let Some(group) = self.selected(room) else {
                    return Ok(Err("412 no newsgroup selected"));
                };
                let Some(current) = self.current else {
                    return Ok(Err("420 no current article"));
                };
                Ok(newsgroups::by_number(db, &group.code, current)?
                    .ok_or("420 current article is gone"))
            }
        }
    }

    fn article(&mut self, target: Target, db: &Connection, room: &Newsroom, part: Part) -> Reply {
        let article = match self.find(target, db, room)? {
            Ok(article) => article,
            Err(reply) => return line(reply),
        };
        let id = message_id(&article, room);
        let (code, what) = match part {
            Part::Whole => (220, "article"),
            Part::Head => (221, "head"),
            Part::Body => (222, "body"),
            Part::Stat => (223, "retrieved"),
        };
        let mut out = format!("{code} {} {id} {what}\r\n", article.number).into_bytes();
        if part == Part::Stat {
            return Ok((out, After::Read));
        }
        let (head, body) = split(&article.raw);
        if part != Part::Body {
            out.extend_from_slice(added_fields(&article, room).as_bytes());
            push_lines(&mut out, head);
        }
        if part == Part::Whole {
            out.extend_from_slice(b"\r\n");
        }
        if part != Part::Head {
            push_lines(&mut out, body);
        }
        out.extend_from_slice(b".\r\n");
        Ok((out, After::Read))
    }

    /// The articles OVER and HDR are asked about.
    fn spanned(
        &self,
        span: Span,
        db: &Connection,
        room: &Newsroom,
    ) -> crate::store::Result<Result<Vec<Entry>, &'static str>> {
        match span {
            Span::MessageId(id) => {
                let group = self.selected(room).map(|group| group.code.as_str());
                Ok(newsgroups::by_message_id(db, &id, group)?
                    .map(|article| {
                        vec![Entry {
                            number: article.number,
                            message_id: article.message_id,
                            key: article.key,
                            raw: article.raw,
                        }]
                    })
                    .ok_or("430 no article with that message-id"))
            }
            Span::Numbers(low, high) => {
                let Some(group) = self.selected(room) else {
                    return Ok(Err("412 no newsgroup selected"));
                };
                let found = newsgroups::overview(db, &group.code, low, high)?;
                Ok(if found.is_empty() {
                    Err("423 no articles in that range")
                } else {
                    Ok(found)
                })
            }
            Span::Current => {
                let Some(group) = self.selected(room) else {
                    return Ok(Err("412 no newsgroup selected"));
                };
                let Some(current) = self.current else {
                    return Ok(Err("420 no current article"));
                };
                let found = newsgroups::overview(db, &group.code, current, current)?;
                Ok(if found.is_empty() {
                    Err("420 current article is gone")
                } else {
                    Ok(found)
                })
            }
        }
    }

    fn over(&self, span: Span, db: &Connection, room: &Newsroom) -> Reply {
        let found = match self.spanned(span, db, room)? {
            Ok(found) => found,
            Err(reply) => return line(reply),
        };
        let mut out = b"224 overview information follows\r\n".to_vec();
        for entry in found {
            let (number, raw) = (entry.number, &entry.raw);
            let fields = Fields::of(&entry, room);
            let row = format!(
                "{number}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                fields.get("Subject"),
                fields.get("From"),
                fields.get("Date"),
                fields.message_id,
                fields.get("References"),
                raw.len(),
                fields.lines,
            );
            push_lines(&mut out, row.as_bytes());
        }
        out.extend_from_slice(b".\r\n");
        Ok((out, After::Read))
    }

    fn hdr(
        &self,
        field: &str,
        span: Span,
        legacy: bool,
        db: &Connection,
        room: &Newsroom,
    ) -> Reply {
        let found = match self.spanned(span, db, room)? {
            Ok(found) => found,
            Err(reply) => return line(reply),
        };
        // XHDR's success code was 221 (RFC 2980 section 2.6); readers
        // such as slrnpull take nothing else.
        let mut out = if legacy {
            b"221 headers follow\r\n".to_vec()
        } else {
            b"225 headers follow\r\n".to_vec()
        };
        for entry in found {
            let (number, raw) = (entry.number, &entry.raw);
            let fields = Fields::of(&entry, room);
            let value = match field.to_ascii_lowercase().as_str() {
                ":bytes" => raw.len().to_string(),
                ":lines" => fields.lines.to_string(),
                "message-id" => fields.message_id.clone(),
                _ => fields.get(field),
            };
            push_lines(&mut out, format!("{number} {value}").as_bytes());
        }
        out.extend_from_slice(b".\r\n");
        Ok((out, After::Read))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Whole,
    Head,
    Body,
    Stat,
}

const HELP: &str = "100 help text follows\r\n\
ARTICLE|HEAD|BODY|STAT [number|<message-id>]\r\n\
CAPABILITIES\r\n\
DATE\r\n\
GROUP group\r\n\
HDR field [range|<message-id>]\r\n\
HELP\r\n\
LAST\r\n\
LIST [ACTIVE|NEWSGROUPS [wildmat]|OVERVIEW.FMT|HEADERS]\r\n\
LISTGROUP [group [range]]\r\n\
MODE READER\r\n\
NEWGROUPS yyyymmdd hhmmss [GMT]\r\n\
NEWNEWS wildmat yyyymmdd hhmmss [GMT]\r\n\
NEXT\r\n\
OVER|XOVER [range|<message-id>]\r\n\
POST (refused: post by mail)\r\n\
QUIT\r\n\
STARTTLS (when offered)\r\n\
.\r\n";

fn list(kind: ListKind, db: &Connection, room: &Newsroom) -> crate::store::Result<Vec<u8>> {
    let matching = |pattern: &Option<String>, group: &Group| {
        pattern
            .as_deref()
            .is_none_or(|pattern| command::wildmat(pattern, &group.name))
    };
    let mut out = String::new();
    match kind {
        ListKind::Active(pattern) => {
            out.push_str("215 list of newsgroups follows\r\n");
            for group in room.groups.iter().filter(|group| matching(&pattern, group)) {
                let range = newsgroups::range(db, &group.code)?;
                // `n`: posting is not permitted (RFC 3977 section 7.6.3).
                out.push_str(&format!(
                    "{} {} {} n\r\n",
                    group.name, range.high, range.low
                ));
            }
        }
        ListKind::Newsgroups(pattern) => {
            out.push_str("215 list of newsgroups follows\r\n");
            for group in room.groups.iter().filter(|group| matching(&pattern, group)) {
                out.push_str(&format!("{}\t{}\r\n", group.name, group.description));
            }
        }
        ListKind::OverviewFmt => {
            out.push_str("215 order of fields in overview database\r\nSubject:\r\nFrom:\r\nDate:\r\nMessage-ID:\r\nReferences:\r\n:bytes\r\n:lines\r\n");
        }
        ListKind::Headers => out.push_str("215 headers supported\r\n:\r\n:bytes\r\n:lines\r\n"),
    }
    out.push_str(".\r\n");
    Ok(out.into_bytes())
}

/// The Message-ID an article is known by: its own, or one made from its
/// key at the site's domain when it came without.
fn message_id(article: &Article, room: &Newsroom) -> String {
    known_id(&article.message_id, &article.key, room)
}

fn known_id(message_id: &Option<String>, key: &Option<String>, room: &Newsroom) -> String {
    match (message_id, key) {
        (Some(id), _) if is_sound(id) => id.clone(),
        (_, Some(key)) => format!("<{key}@{}>", room.host),
        (_, None) => "<unknown@invalid>".to_string(),
    }
}

/// Whether a stored Message-ID can be written where NNTP puts one, as one
/// word of a status line or one field of an overview row (RFC 3977
/// section 3.6): `<...>`, printable US-ASCII, at most 250 octets. Filing
/// keeps a sender's `<a b@host>` as written; such an article goes by the
/// id made from its key, as one without a Message-ID does.
fn is_sound(id: &str) -> bool {
    id.len() <= 250
        && id.len() > 2
        && id.starts_with('<')
        && id.ends_with('>')
        && id.bytes().all(|byte| byte.is_ascii_graphic())
}

/// The fields put above the raw message: which groups hold it, and its
/// number in each (RFC 5536 sections 3.1.4 and 3.2.14).
fn added_fields(article: &Article, room: &Newsroom) -> String {
    let places: Vec<(&str, i64)> = article
        .places
        .iter()
        .filter_map(|(code, number)| room.name_of(code).map(|name| (name, *number)))
        .collect();
    let names: Vec<&str> = places.iter().map(|(name, _)| *name).collect();
    let xref: Vec<String> = places
        .iter()
        .map(|(name, number)| format!("{name}:{number}"))
        .collect();
    format!(
        "Newsgroups: {}\r\nXref: {} {}\r\n",
        names.join(","),
        room.host,
        xref.join(" ")
    )
}

/// The header block (without the blank line) and the body of a message.
fn split(raw: &[u8]) -> (&[u8], &[u8]) {
    let mut start = 0;
    while start < raw.len() {
        let end = memchr::memchr(b'\n', &raw[start..]).map_or(raw.len(), |at| start + at + 1);
        let text = &raw[start..end];
        if text == b"\n" || text == b"\r\n" {
            return (&raw[..start], &raw[end..]);
        }
        start = end;
    }
    (raw, &[])
}

/// Appends `text` line by line, each ended by CRLF, a leading dot doubled
/// (RFC 3977 section 3.1.1); a bare LF ends a line as CRLF does.
fn push_lines(out: &mut Vec<u8>, text: &[u8]) {
    if text.is_empty() {
        return;
    }
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    for piece in text.split(|byte| *byte == b'\n') {
        let piece = piece.strip_suffix(b"\r").unwrap_or(piece);
        if piece.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
}

/// The header fields OVER and HDR show, as written (encoded-words left for
/// the client to decode), unfolded, tabs and other control characters
/// made spaces.
struct Fields<'a> {
    message: Option<mail_parser::Message<'a>>,
    message_id: String,
    lines: usize,
}

impl<'a> Fields<'a> {
    fn of(entry: &'a Entry, room: &Newsroom) -> Fields<'a> {
        let message = mail_parser::MessageParser::new().parse_headers(&entry.raw);
        let message_id = known_id(&entry.message_id, &entry.key, room);
        let (_, body) = split(&entry.raw);
        let lines = if body.is_empty() {
            0
        } else {
            body.strip_suffix(b"\n")
                .unwrap_or(body)
                .split(|b| *b == b'\n')
                .count()
        };
        Fields {
            message,
            message_id,
            lines,
        }
    }

    fn get(&self, name: &str) -> String {
        let Some(message) = &self.message else {
            return String::new();
        };
        let raw = message.header_raw(name).map(str::to_string).or_else(|| {
            // A field not in UTF-8 (raw 8-bit): its decoded value instead.
            match name.to_ascii_lowercase().as_str() {
                "subject" => message.subject().map(str::to_string),
                _ => None,
            }
        });
        // CR, LF and TAB would break the row (RFC 3977 section 8.3), and
        // readers in C end a string at a NUL: every control character
        // goes, as white space does.
        raw.unwrap_or_default()
            .split(|c: char| c.is_control())
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
