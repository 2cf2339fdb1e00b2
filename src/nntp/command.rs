//! Pure: one NNTP command line (RFC 3977 section 3.1) -> [`Command`], or
//! the reply that refuses it (500 unknown, 501 syntax).

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

/// Longest command line taken, CRLF included (RFC 3977 section 3.1).
pub const MAX_LINE: usize = 512;

/// Which article a command names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The current article of the selected group.
    Current,
    /// A number in the selected group.
    Number(i64),
    /// A Message-ID, with its angle brackets (as the store keeps it).
    MessageId(String),
}

/// Which articles OVER, HDR and LISTGROUP name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// The current article.
    Current,
    /// One article by Message-ID.
    MessageId(String),
    /// Numbers from the first to the second, inclusive (`N`, `N-`, `N-M`).
    Numbers(i64, i64),
}

/// The LIST keywords served (RFC 3977 section 7.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    /// LIST or LIST ACTIVE, with an optional wildmat.
    Active(Option<String>),
    /// LIST NEWSGROUPS, with an optional wildmat.
    Newsgroups(Option<String>),
    /// LIST OVERVIEW.FMT.
    OverviewFmt,
    /// LIST HEADERS.
    Headers,
}

/// A command as the session takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Capabilities,
    ModeReader,
    List(ListKind),
    Group(String),
    ListGroup(Option<String>, Option<Span>),
    Article(Target),
    Head(Target),
    Body(Target),
    Stat(Target),
    Next,
    Last,
    Over(Span),
    /// HDR, or XHDR (`true`: RFC 2980 section 2.6, answered 221).
    Hdr(String, Span, bool),
    NewGroups(DateTime<Utc>),
    NewNews(String, DateTime<Utc>),
    Date,
    Help,
    Quit,
    Post,
    Ihave,
    StartTls,
}

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 500: no such command.
    Unknown,
    /// 501: the command's arguments are wrong.
    Syntax(&'static str),
}

/// Parses one line, its CRLF (or LF) already taken off.
pub fn parse(line: &[u8]) -> Result<Command, Refusal> {
    let line = std::str::from_utf8(line).map_err(|_| Refusal::Syntax("not UTF-8"))?;
    let mut words = line.split_ascii_whitespace();
    let verb = words.next().ok_or(Refusal::Unknown)?.to_ascii_uppercase();
    let arguments: Vec<&str> = words.collect();
    let none = |command: Command| {
        if arguments.is_empty() {
            Ok(command)
        } else {
            Err(Refusal::Syntax("this command takes no argument"))
        }
    };
    match verb.as_str() {
        "CAPABILITIES" => Ok(Command::Capabilities),
        "MODE" => match arguments.as_slice() {
            [mode] if mode.eq_ignore_ascii_case("READER") => Ok(Command::ModeReader),
            _ => Err(Refusal::Syntax("only MODE READER")),
        },
        "LIST" => list(&arguments),
        "GROUP" => match arguments.as_slice() {
            [group] => Ok(Command::Group(group.to_ascii_lowercase())),
            _ => Err(Refusal::Syntax("GROUP takes a group name")),
        },
        "LISTGROUP" => match arguments.as_slice() {
            [] => Ok(Command::ListGroup(None, None)),
            [group] => Ok(Command::ListGroup(Some(group.to_ascii_lowercase()), None)),
            [group, range] => Ok(Command::ListGroup(
                Some(group.to_ascii_lowercase()),
                Some(numbers(range).ok_or(Refusal::Syntax("not a range"))?),
            )),
            _ => Err(Refusal::Syntax("LISTGROUP [group [range]]")),
        },
        "ARTICLE" => target(&arguments).map(Command::Article),
        "HEAD" => target(&arguments).map(Command::Head),
        "BODY" => target(&arguments).map(Command::Body),
        "STAT" => target(&arguments).map(Command::Stat),
        "NEXT" => none(Command::Next),
        "LAST" => none(Command::Last),
        "OVER" | "XOVER" => {
            span(arguments.first().copied(), arguments.len() > 1).map(Command::Over)
        }
        "HDR" | "XHDR" => match arguments.as_slice() {
            [field, rest @ ..] if rest.len() <= 1 => Ok(Command::Hdr(
                field.to_string(),
                span(rest.first().copied(), false)?,
                verb == "XHDR",
            )),
            _ => Err(Refusal::Syntax("HDR field [range|message-id]")),
        },
        "NEWGROUPS" => match arguments.as_slice() {
            [date, time, rest @ ..] if rest.len() <= 1 => {
                Ok(Command::NewGroups(when(date, time, rest.first().copied())?))
            }
            _ => Err(Refusal::Syntax("NEWGROUPS date time [GMT]")),
        },
        "NEWNEWS" => match arguments.as_slice() {
            [wildmat, date, time, rest @ ..] if rest.len() <= 1 => Ok(Command::NewNews(
                wildmat.to_ascii_lowercase(),
                when(date, time, rest.first().copied())?,
            )),
            _ => Err(Refusal::Syntax("NEWNEWS wildmat date time [GMT]")),
        },
        "DATE" => none(Command::Date),
        "HELP" => none(Command::Help),
        "QUIT" => none(Command::Quit),
        "POST" => Ok(Command::Post),
        "IHAVE" => Ok(Command::Ihave),
        "STARTTLS" => none(Command::StartTls),
        _ => Err(Refusal::Unknown),
    }
}

fn list(arguments: &[&str]) -> Result<Command, Refusal> {
    let keyword = arguments.first().map(|word| word.to_ascii_uppercase());
    let wildmat = arguments.get(1).map(|word| word.to_ascii_lowercase());
    if arguments.len() > 2 {
        return Err(Refusal::Syntax("LIST [keyword [wildmat]]"));
    }
    match keyword.as_deref() {
        None | Some("ACTIVE") => Ok(Command::List(ListKind::Active(wildmat))),
        Some("NEWSGROUPS") => Ok(Command::List(ListKind::Newsgroups(wildmat))),
        Some("OVERVIEW.FMT") => Ok(Command::List(ListKind::OverviewFmt)),
        Some("HEADERS") => Ok(Command::List(ListKind::Headers)),
        Some(_) => Err(Refusal::Syntax(
            "LIST ACTIVE, NEWSGROUPS, OVERVIEW.FMT or HEADERS",
        )),
    }
}

fn message_id(word: &str) -> Option<String> {
    let inner = word.strip_prefix('<')?.strip_suffix('>')?;
    (!inner.is_empty() && !inner.contains(['<', '>'])).then(|| word.to_string())
}

fn target(arguments: &[&str]) -> Result<Target, Refusal> {
    match arguments {
        [] => Ok(Target::Current),
        [word] => match message_id(word) {
            Some(id) => Ok(Target::MessageId(id)),
            None => word
                .parse::<i64>()
                .ok()
                .filter(|number| *number > 0)
                .map(Target::Number)
                .ok_or(Refusal::Syntax("give an article number or <message-id>")),
        },
        _ => Err(Refusal::Syntax("one article number or <message-id>")),
    }
}

fn numbers(word: &str) -> Option<Span> {
    let number = |text: &str| text.parse::<i64>().ok().filter(|n| *n >= 0);
    match word.split_once('-') {
        None => number(word).map(|n| Span::Numbers(n, n)),
        Some((low, "")) => number(low).map(|n| Span::Numbers(n, i64::MAX)),
        Some((low, high)) => Some(Span::Numbers(number(low)?, number(high)?)),
    }
}

fn span(word: Option<&str>, extra: bool) -> Result<Span, Refusal> {
    if extra {
        return Err(Refusal::Syntax("one range or <message-id>"));
    }
    match word {
        None => Ok(Span::Current),
        Some(word) => message_id(word)
            .map(Span::MessageId)
            .or_else(|| numbers(word))
            .ok_or(Refusal::Syntax(
                "give a range N, N- or N-M, or a <message-id>",
            )),
    }
}

/// NEWGROUPS/NEWNEWS's `[yy]yymmdd hhmmss [GMT]` (RFC 3977 section 7.3);
/// without GMT the server's time, which for tidings is UTC too.
fn when(date: &str, time: &str, zone: Option<&str>) -> Result<DateTime<Utc>, Refusal> {
    const BAD: Refusal = Refusal::Syntax("write the date as yyyymmdd hhmmss [GMT]");
    if zone.is_some_and(|zone| !zone.eq_ignore_ascii_case("GMT")) {
        return Err(BAD);
    }
    let date = match date.len() {
        8 => NaiveDate::parse_from_str(date, "%Y%m%d").map_err(|_| BAD)?,
        6 => {
            // RFC 3977 section 7.3.2: a two-digit year is the nearest century.
            let year: i32 = date[..2].parse().map_err(|_| BAD)?;
            let year = if year < 70 { 2000 + year } else { 1900 + year };
            NaiveDate::parse_from_str(&format!("{year}{}", &date[2..]), "%Y%m%d")
                .map_err(|_| BAD)?
        }
        _ => return Err(BAD),
    };
    let time = NaiveTime::parse_from_str(time, "%H%M%S").map_err(|_| BAD)?;
    Ok(NaiveDateTime::new(date, time).and_utc())
}

/// Whether `name` matches a wildmat (RFC 3977 section 4): patterns with `*`
/// and `?`, separated by commas, `!` negating; the last that matches wins.
pub fn wildmat(pattern: &str, name: &str) -> bool {
    let mut matched = false;
    for part in pattern.split(',') {
        let (negated, part) = match part.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, part),
        };
        if glob(part.as_bytes(), name.as_bytes()) {
            matched = !negated;
        }
    }
    matched
}

/// Whether `name` matches one pattern of `*` (any run of bytes) and `?`
/// (any one byte), in time bounded by the product of their lengths, not
/// exponential in the stars: on a mismatch only the last star seen takes
/// one byte more, since whatever an earlier star could have taken instead
/// the later one can take too. A line of stars is up to 512 bytes.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // The last star: its place in the pattern, and where in the name
    // what it takes ends.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&byte) if byte == b'?' || byte == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((at, taken)) => {
                    star = Some((at, taken + 1));
                    p = at + 1;
                    n = taken + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&byte| byte == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_case_insensitively_with_their_arguments() {
        assert_eq!(parse(b"mode reader"), Ok(Command::ModeReader));
        assert_eq!(
            parse(b"GROUP A-Infos.EN"),
            Ok(Command::Group("a-infos.en".into()))
        );
        assert_eq!(parse(b"ARTICLE 3"), Ok(Command::Article(Target::Number(3))));
        assert_eq!(
            parse(b"HEAD <a@b>"),
            Ok(Command::Head(Target::MessageId("<a@b>".into())))
        );
        assert_eq!(parse(b"STAT"), Ok(Command::Stat(Target::Current)));
        assert_eq!(
            parse(b"XOVER 1-"),
            Ok(Command::Over(Span::Numbers(1, i64::MAX)))
        );
        assert_eq!(parse(b"OVER 2-5"), Ok(Command::Over(Span::Numbers(2, 5))));
        assert_eq!(
            parse(b"HDR Subject 4"),
            Ok(Command::Hdr("Subject".into(), Span::Numbers(4, 4), false))
        );
        assert_eq!(
            parse(b"LIST NEWSGROUPS a-infos.*"),
            Ok(Command::List(ListKind::Newsgroups(Some(
                "a-infos.*".into()
            ))))
        );
        assert_eq!(parse(b"LIST"), Ok(Command::List(ListKind::Active(None))));
        assert_eq!(
            parse(b"NEWNEWS * 20260101 000000 GMT"),
            Ok(Command::NewNews(
                "*".into(),
                "2026-01-01T00:00:00Z".parse().unwrap()
            ))
        );
        assert_eq!(
            parse(b"NEWGROUPS 990101 120000"),
            Ok(Command::NewGroups("1999-01-01T12:00:00Z".parse().unwrap()))
        );
    }

    #[test]
    fn unknown_commands_are_500_and_bad_arguments_501() {
        assert_eq!(parse(b"FROB"), Err(Refusal::Unknown));
        assert_eq!(parse(b""), Err(Refusal::Unknown));
        assert!(matches!(parse(b"ARTICLE x"), Err(Refusal::Syntax(_))));
        assert!(matches!(parse(b"ARTICLE 0"), Err(Refusal::Syntax(_))));
        assert!(matches!(parse(b"GROUP"), Err(Refusal::Syntax(_))));
        assert!(matches!(parse(b"MODE STREAM"), Err(Refusal::Syntax(_))));
        assert!(matches!(
            parse(b"LIST DISTRIBUTIONS"),
            Err(Refusal::Syntax(_))
        ));
        assert!(matches!(
            parse(b"NEWNEWS * 2026 0"),
            Err(Refusal::Syntax(_))
        ));
        assert!(matches!(parse(b"QUIT now"), Err(Refusal::Syntax(_))));
        assert!(matches!(parse(b"\xff"), Err(Refusal::Syntax(_))));
    }

    #[test]
    fn wildmats_match_the_last_pattern_that_fits() {
        assert!(wildmat("*", "a-infos.en"));
        assert!(wildmat("a-infos.*", "a-infos.gr"));
        assert!(!wildmat("a-infos.*,!a-infos.gr", "a-infos.gr"));
        assert!(wildmat("a-infos.?r", "a-infos.fr"));
        assert!(!wildmat("other.*", "a-infos.en"));
    }
}
