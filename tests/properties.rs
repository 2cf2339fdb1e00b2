//! Hostile input at scale (issue 13, promise 6): real messages from
//! ../shared/corpus, mutated (truncated, bytes flipped or inserted, header
//! fields flooded or made very long, charsets lied about, MIME boundaries
//! broken, multiparts nested deep, CR, LF, NUL and encoded-words carrying
//! line breaks), go the whole way in process: filed, stored, and rendered
//! into every feed format, every digest format and the post's page; a day
//! of them builds every feed file, digest and archive page; and the
//! shipped lists.toml, mutated, goes through the configuration loader.
//!
//! Cases: a bounded number a property on every run ([`CASES`],
//! [`DAY_CASES`]); `TIDINGS_PROPTEST_CASES=N` (or proptest's own
//! `PROPTEST_CASES`) runs more. The seed is fixed ([`SEED`]), so every run
//! tries the same cases and a red CI is the change's, not the dice's:
//! `TIDINGS_PROPTEST_SEED=N` tries others, `random` a new one each run. A
//! failing test prints the seed and case count that find it again, and the
//! minimal recipe (corpus file, routing, mutations) proptest shrank it to.
//! Nothing is persisted to a file (proptest-regressions/): each failure
//! found becomes a named test at the end of this file with its minimal
//! message inline, which says what it guards and survives a change of the
//! corpus or of the strategies, which a stored seed does not.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mail_parser::{MessageParser, MimeHeaders};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed, TestCaseError};

use tidings::config::{self, Config, ConfigErrors};
use tidings::deliver::message::{Prepared, PreparedPost};
use tidings::deliver::transport::Outgoing;
use tidings::deliver::DueDelivery;
use tidings::digest::headers::message_crlf as headers_crlf;
use tidings::digest::numbering::Number;
use tidings::digest::original::Original;
use tidings::digest::{self, plain, Composition, Digest, DigestMode, DigestRecord};
use tidings::feeds::{self, Format, Scope};
use tidings::ingest::{self, Envelope, Filer, Outcome};
use tidings::post::{NewPost, Status, StoredPost};
use tidings::site::{self, pages::Pages};
use tidings::store::{self, digests, posts, Connection};
use tidings::templates::Templates;

/// When every message of these tests arrives: 2026-11-29.
const NOW: i64 = 1_796_000_000;

/// Cases a property runs by default: within a minute for the whole file
/// in a debug build on two cores.
const CASES: u32 = 96;

/// Cases of the property that builds a whole site a case: each is a day
/// of mail.
const DAY_CASES: u32 = 12;

/// The seed every run starts from unless told otherwise.
const SEED: u64 = 0x7469_6469_6e67_7331; // "tidings1"

/// Corpus messages larger than this are left out: filing and rendering a
/// megabyte in a debug build, times the cases, would take minutes
/// (tests/ingest.rs files the large ones whole).
const MAX_CORPUS_BYTES: u64 = 256 * 1024;

/// What one flood adds at most: 5,000 Subject lines fit, a gigabyte of
/// repeated long fields does not (the size limit's refusal is tested by
/// tests/ingest.rs).
const MAX_GROWTH: usize = 1 << 20;

// ---------------------------------------------------------------------
// Configuration of the runs

fn run_config(default_cases: u32) -> ProptestConfig {
    // Reads PROPTEST_CASES, PROPTEST_RNG_SEED and the rest first.
    let mut run = ProptestConfig::default();
    run.failure_persistence = None;
    run.max_shrink_time = 120_000;
    run.max_shrink_iters = 4_096;
    run.cases = match env_number("TIDINGS_PROPTEST_CASES") {
        Some(cases) => cases as u32,
        None if std::env::var_os("PROPTEST_CASES").is_some() => run.cases,
        None => default_cases,
    };
    run.rng_seed = match std::env::var("TIDINGS_PROPTEST_SEED").as_deref() {
        // A seed of our own, not proptest's Random, so the failure can
        // print it.
        Ok("random") => RngSeed::Fixed(std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            0,
        )),
        Ok(_) => RngSeed::Fixed(env_number("TIDINGS_PROPTEST_SEED").unwrap_or(SEED)),
        Err(_) if std::env::var_os("PROPTEST_RNG_SEED").is_some() => run.rng_seed,
        Err(_) => RngSeed::Fixed(SEED),
    };
    // Shown with the output of a failing test, to run it again.
    let seed = match run.rng_seed {
        RngSeed::Fixed(seed) => seed.to_string(),
        RngSeed::Random => "random".to_string(),
    };
    eprintln!(
        "proptest: again with TIDINGS_PROPTEST_SEED={seed} TIDINGS_PROPTEST_CASES={}",
        run.cases
    );
    run
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value}: not a number")),
    )
}

// ---------------------------------------------------------------------
// The world every case shares: the shipped configuration, the templates
// and the corpus.

struct World {
    config: Config,
    templates: Templates,
    corpus: Vec<(String, Vec<u8>)>,
}

/// Where the shared configuration's directories point: nowhere, so that
/// nothing but [`whole_day`], which has a directory of its own, writes.
const NOWHERE: &str = "/nonexistent/tidings-properties";

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let text = config::EMBEDDED_LISTS_TOML.replace(
            "base_url = \"http://127.0.0.1:8080/\"",
            "base_url = \"https://news.example.org/\"",
        );
        let config = config::parse(&text, "lists.toml", Path::new(NOWHERE))
            .expect("the shipped configuration");
        World {
            config,
            templates: Templates::shipped(),
            corpus: corpus(),
        }
    })
}

/// Every message file of ../shared/corpus (the real-world messages and
/// the generated Maildir), by path, sorted so a seed always picks the same.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let mut files = Vec::new();
    for dir in ["realworld", "generated/sample-seed2-maildir/new"] {
        walk(&root.join(dir), &mut files);
    }
    files.sort();
    let messages: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !(name.ends_with(".upstream") || name.ends_with(".md") || name.starts_with('.'))
        })
        .filter(|path| std::fs::metadata(path).is_ok_and(|m| m.len() <= MAX_CORPUS_BYTES))
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            let name = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            (name, bytes)
        })
        .collect();
    assert!(
        messages.len() > 300,
        "the corpus in {} has {} messages",
        root.display(),
        messages.len()
    );
    messages
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            walk(&path, files);
        } else {
            files.push(path);
        }
    }
}

// ---------------------------------------------------------------------
// Recipes: a corpus message, how it was addressed, what was done to it

/// Bytes shown as a byte string literal.
#[derive(Clone, PartialEq)]
struct Bytes(Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// A place in the message, as a fraction of its length at the time.
#[derive(Clone, Copy, PartialEq)]
struct At(u16);

impl std::fmt::Debug for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1}%", f64::from(self.0) / 655.36)
    }
}

impl At {
    fn of(self, len: usize) -> usize {
        (len as u64 * u64::from(self.0) / 65_536) as usize
    }
}

/// One thing done to a message.
#[derive(Debug, Clone, PartialEq)]
enum Mutation {
    /// Cut here: the connection dropped.
    Truncate(At),
    /// One byte replaced.
    Overwrite(At, u8),
    /// Some bits of one byte flipped.
    Flip(At, u8),
    /// Bytes put in: CR, LF, NUL, separators, markup, invalid UTF-8...
    Insert(At, Bytes),
    /// The nth header field (of those there are) repeated many times.
    Repeat { nth: u8, times: u16 },
    /// The body given many times over: a long post.
    RepeatBody(u16),
    /// Header fields put on top, many times over (5,000 Subject lines).
    Add {
        name: &'static str,
        value: Bytes,
        times: u16,
    },
    /// Every field of this name taken out and one with this value put on
    /// top.
    Set { name: &'static str, value: Bytes },
    /// A very long field on top, folded or one line.
    Long {
        name: &'static str,
        bytes: u32,
        folded: bool,
    },
    /// Every charset parameter made to say this.
    Charset(&'static str),
    /// The first boundary parameter and its delimiters played with.
    Boundary(BoundaryGame),
    /// The body put inside multiparts nested this deep, closed or not.
    Nest { depth: u16, closed: bool },
    /// The whole message forwarded as a message/rfc822 entity under the
    /// same From, To, Subject and Message-ID: alone, or after a
    /// quoted-printable note in a multipart/mixed.
    Forward { multipart: bool },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BoundaryGame {
    /// The closing delimiter taken out.
    Unclosed,
    /// Every delimiter taken out.
    NoDelimiters,
    /// The parameter names a boundary no line has.
    Unknown,
    /// The parameter is empty.
    Empty,
    /// The parameter is half of itself: every delimiter still starts
    /// with it.
    Prefix,
    /// The first delimiter given twice: an empty part.
    Twice,
}

/// How the message was addressed.
#[derive(Debug, Clone, PartialEq)]
enum Routing {
    /// No envelope: an import of a file.
    Nothing,
    /// `tidings ingest --list CODE`, the list chosen by index.
    List(u8),
    /// RCPT TO a list's address, the list chosen by index.
    Recipient(u8),
    /// RCPT TO an address no list has.
    Stranger,
}

#[derive(Clone)]
struct Recipe {
    message: usize,
    routing: Routing,
    mutations: Vec<Mutation>,
}

impl std::fmt::Debug for Recipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let corpus = &world().corpus;
        f.debug_struct("Recipe")
            .field("message", &corpus[self.message % corpus.len()].0)
            .field("routing", &self.routing)
            .field("mutations", &self.mutations)
            .finish()
    }
}

impl Recipe {
    fn bytes(&self) -> Vec<u8> {
        let corpus = &world().corpus;
        let mut raw = corpus[self.message % corpus.len()].1.clone();
        for mutation in &self.mutations {
            mutate(&mut raw, mutation);
        }
        raw
    }

    fn envelope(&self) -> Envelope {
        let lists = &world().config.lists;
        match self.routing {
            Routing::Nothing => Envelope::default(),
            Routing::List(n) => Envelope {
                list_code: Some(lists[usize::from(n) % lists.len()].code.clone()),
                recipients: Vec::new(),
            },
            Routing::Recipient(n) => Envelope {
                list_code: None,
                recipients: vec![lists[usize::from(n) % lists.len()].address.clone()],
            },
            Routing::Stranger => Envelope {
                list_code: None,
                recipients: vec!["nobody@lists.example.org".to_string()],
            },
        }
    }
}

/// What hostile bytes look like.
const INSERTS: &[&[u8]] = &[
    b"\r",
    b"\n",
    b"\0",
    b"\r\n",
    b"\r\n\r\n",
    b"\n\n",
    b"\r\n--",
    b"\t",
    b"=?utf-8?q?a=0D=0ABcc:_x@example.org?=",
    b"=?utf-8?b?",
    b"?=",
    b"\r\n------------------------------\r\n",
    b"\n----------------------------------------------------------------------\n",
    b"<script>alert(1)</script>",
    b"\"><img src=x onerror=alert(1)>",
    b"caf\xe9 \xfcber \xff\xfe",
    b"\xc3\x28\xe2\x82",
    "\u{202e}\u{2066}\u{feff}\u{200b}".as_bytes(),
    b"\nFrom someone@example.org Sat Jan  3 01:05:34 1996\n",
    b"\r\n.\r\n",
    b"&amp;&#0;&#x110000;&bogus",
    b"]]><![CDATA[",
    b"\x1b[31m\x7f\x08",
    b"begin 644 x.txt\n",
];

/// Field values that lie, break lines, smuggle fields or are empty.
const VALUES: &[&[u8]] = &[
    b"(en) =?utf-8?q?Real=0D=0A=0D=0A------------------------------=0D=0A=0D=0ASubject=3A_fake?=",
    b"=?utf-8?q?Bob=0A=0A------------------------------=0A=0AFrom=3A_evil=40example.org?= <bob@example.org>",
    b"=?utf-8?q?Carol=0D=0ABcc=3A_victim=40example.org?= <carol@example.org>",
    b"(en) <script>alert(1)</script> & \"quotes\" 'too'",
    "(en) \u{202e}evil\u{202c} title \u{200b}".as_bytes(),
    b"(de) Stra\xdfe raw 8-bit",
    b"=?x-unknown?q?hello?= =?utf-8?b?!!broken?=",
    b"=?utf-8?b?4oI=?= =?utf-8?b?rA==?=",
    b"(xx) no list serves this tag",
    b"(en) (en) (fr) (de, fr, it, xx, yy)[machine translation][machine translation]",
    b"",
    b"   ",
    b"\"Ana\" <>",
    b"<@> , ,, <a@b@c>, \"unclosed",
    b"=?utf-8?q?=00=01=1B[31m?=",
    "(ar) مرحبا \u{200f}".as_bytes(),
    b"(en) =?utf-8?q?line=0Aone?=\r\n\tfolded =?ISO-2022-JP?B?GyRCJEgbKEI=?=",
    b"=?utf-8?q?x?=\r\n \r\n \r\n",
    b"\xff\xfe\x00S\x00u\x00b",
    b"(en) javascript:alert(1) http://x.example/<b>",
];

/// Values for fields that have a syntax of their own.
fn values_of(name: &str) -> &'static [&'static [u8]] {
    match name {
        "Content-Type" => &[
            b"text/plain; charset=\"utf-8",
            b"multipart/mixed",
            b"multipart/mixed; boundary=",
            b"multipart/alternative; boundary=\"\"",
            b"text/html; charset=x-unknown",
            b"message/rfc822",
            b"text/plain; charset*=utf-8''%FF",
            b"application/octet-stream; name*0*=utf-8''%E2%82; name*1*=%AC.txt",
            b"multipart/digest; boundary=\"--\"",
            b"text/plain; charset=utf-16",
        ],
        "Content-Transfer-Encoding" => &[
            b"base64",
            b"quoted-printable",
            b"x-uuencode",
            b"binary",
            b"base64; junk",
        ],
        "Date" => &[
            b"Mon, 32 Foo 99999 25:61:61 +9999",
            b"Tue, 03 Mar 2026 09:15:00 GMT+1",
            b"1 Jan 1970 00:00:00 -2400",
            b"Sat, 31 Dec 9999 23:59:59 +1400",
            b"Fri, 13 Dec 1901 20:45:52 -0000",
        ],
        "Message-ID" => &[
            b"<>",
            b"<a@b",
            b"<x@y> <z@w>",
            b"no-brackets",
            b"<\0@x>",
            b"<../../etc/passwd@x>",
        ],
        _ => &[],
    }
}

const FIELDS: &[&str] = &[
    "Subject",
    "From",
    "To",
    "Cc",
    "Date",
    "Message-ID",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Keywords",
    "Sender",
    "Reply-To",
];

const CHARSETS: &[&str] = &[
    "utf-8",
    "us-ascii",
    "iso-8859-1",
    "x-unknown-charset",
    "utf-7",
    "iso-2022-jp",
    "gb18030",
    "utf-16",
    "utf-32be",
    "",
    "\"utf-8",
    "windows-1252",
    "koi8-r",
];

fn at() -> impl Strategy<Value = At> {
    any::<u16>().prop_map(At)
}

fn field() -> impl Strategy<Value = (&'static str, Bytes)> {
    (0..FIELDS.len(), any::<u16>()).prop_map(|(field, pick)| {
        let name = FIELDS[field];
        let own = values_of(name);
        let pick = usize::from(pick) % (VALUES.len() + own.len());
        let value = VALUES
            .get(pick)
            .copied()
            .unwrap_or_else(|| own[pick - VALUES.len()]);
        (name, Bytes(value.to_vec()))
    })
}

fn insert() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => (0..INSERTS.len()).prop_map(|n| Bytes(INSERTS[n].to_vec())),
        1 => proptest::collection::vec(any::<u8>(), 1..24).prop_map(Bytes),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => at().prop_map(Mutation::Truncate),
        2 => (at(), any::<u8>()).prop_map(|(at, byte)| Mutation::Overwrite(at, byte)),
        2 => (at(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip(at, mask)),
        4 => (at(), insert()).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        1 => (any::<u8>(), 1..5_000u16).prop_map(|(nth, times)| Mutation::Repeat { nth, times }),
        1 => (2..2_000u16).prop_map(Mutation::RepeatBody),
        2 => (field(), prop_oneof![3 => Just(1u16), 1 => 2..5_000u16])
            .prop_map(|((name, value), times)| Mutation::Add { name, value, times }),
        3 => field().prop_map(|(name, value)| Mutation::Set { name, value }),
        1 => (0..FIELDS.len(), 1..200_000u32, any::<bool>()).prop_map(|(field, bytes, folded)| {
            Mutation::Long {
                name: FIELDS[field],
                bytes,
                folded,
            }
        }),
        2 => (0..CHARSETS.len()).prop_map(|n| Mutation::Charset(CHARSETS[n])),
        2 => prop_oneof![
            Just(BoundaryGame::Unclosed),
            Just(BoundaryGame::NoDelimiters),
            Just(BoundaryGame::Unknown),
            Just(BoundaryGame::Empty),
            Just(BoundaryGame::Prefix),
            Just(BoundaryGame::Twice),
        ]
        .prop_map(Mutation::Boundary),
        1 => (1..300u16, any::<bool>()).prop_map(|(depth, closed)| Mutation::Nest { depth, closed }),
        2 => any::<bool>().prop_map(|multipart| Mutation::Forward { multipart }),
    ]
}

fn routing() -> impl Strategy<Value = Routing> {
    prop_oneof![
        2 => Just(Routing::Nothing),
        1 => any::<u8>().prop_map(Routing::List),
        2 => any::<u8>().prop_map(Routing::Recipient),
        1 => Just(Routing::Stranger),
    ]
}

fn recipe() -> impl Strategy<Value = Recipe> {
    (
        any::<usize>(),
        routing(),
        proptest::collection::vec(mutation(), 0..6),
    )
        .prop_map(|(message, routing, mutations)| Recipe {
            message,
            routing,
            mutations,
        })
}

// ---------------------------------------------------------------------
// Mutating bytes

/// Where the header ends: the offset just after the last field's line
/// break (the blank line and the body follow), or the whole message.
fn header_end(raw: &[u8]) -> usize {
    let mut at = 0;
    while let Some(found) = memchr::memchr(b'\n', &raw[at..]) {
        let next = at + found + 1;
        let rest = &raw[next..];
        if rest.starts_with(b"\n") || rest.starts_with(b"\r\n") || next == raw.len() {
            return next;
        }
        at = next;
    }
    raw.len()
}

/// The line break the message writes.
fn line_break(raw: &[u8]) -> &'static [u8] {
    if memchr::memmem::find(&raw[..header_end(raw)], b"\r\n").is_some() {
        b"\r\n"
    } else {
        b"\n"
    }
}

/// The header fields, each with its continuation lines and line break,
/// as ranges of `raw`.
fn fields(raw: &[u8]) -> Vec<std::ops::Range<usize>> {
    let end = header_end(raw);
    let mut fields: Vec<std::ops::Range<usize>> = Vec::new();
    let mut at = 0;
    while at < end {
        let line_end = memchr::memchr(b'\n', &raw[at..end]).map_or(end, |n| at + n + 1);
        match fields.last_mut() {
            Some(last) if raw[at] == b' ' || raw[at] == b'\t' => last.end = line_end,
            _ => fields.push(at..line_end),
        }
        at = line_end;
    }
    fields
}

fn is_named(field: &[u8], name: &str) -> bool {
    field.len() > name.len()
        && field[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        && field[name.len()] == b':'
}

fn mutate(raw: &mut Vec<u8>, mutation: &Mutation) {
    let eol = line_break(raw);
    match mutation {
        Mutation::Truncate(at) => raw.truncate(at.of(raw.len())),
        Mutation::Overwrite(at, byte) => {
            if !raw.is_empty() {
                let at = at.of(raw.len());
                raw[at] = *byte;
            }
        }
        Mutation::Flip(at, mask) => {
            if !raw.is_empty() {
                let at = at.of(raw.len());
                raw[at] ^= mask;
            }
        }
        Mutation::Insert(at, bytes) => {
            let at = at.of(raw.len() + 1).min(raw.len());
            raw.splice(at..at, bytes.0.iter().copied());
        }
        Mutation::Repeat { nth, times } => {
            let fields = fields(raw);
            if fields.is_empty() {
                return;
            }
            let field = fields[usize::from(*nth) % fields.len()].clone();
            let copy = raw[field.clone()].to_vec();
            let times = usize::from(*times).min(MAX_GROWTH / copy.len().max(1));
            let flood: Vec<u8> = copy.repeat(times);
            raw.splice(field.end..field.end, flood);
        }
        Mutation::RepeatBody(times) => {
            let body = raw[header_end(raw)..].to_vec();
            let times = usize::from(*times).min(MAX_GROWTH / body.len().max(1));
            for _ in 1..times {
                raw.extend_from_slice(&body);
            }
        }
        Mutation::Add { name, value, times } => {
            let line = [name.as_bytes(), b": ", &value.0, eol].concat();
            let times = usize::from(*times).min(MAX_GROWTH / line.len());
            raw.splice(0..0, line.repeat(times));
        }
        Mutation::Set { name, value } => {
            let fields = fields(raw);
            for field in fields.into_iter().rev() {
                if is_named(&raw[field.clone()], name) {
                    raw.drain(field);
                }
            }
            let line = [name.as_bytes(), b": ", &value.0, eol].concat();
            raw.splice(0..0, line);
        }
        Mutation::Long {
            name,
            bytes,
            folded,
        } => {
            let mut line = format!("{name}:").into_bytes();
            let words = ["(en)", "word", "=?utf-8?q?w=C3=B6rd?=", "a@example.org,"];
            let mut column = line.len();
            let mut n = 0;
            while line.len() < *bytes as usize {
                if *folded && column > 70 {
                    line.extend_from_slice(eol);
                    column = 0;
                }
                let word = if *folded { words[n % words.len()] } else { "x" };
                if *folded || n == 0 {
                    line.push(b' ');
                }
                line.extend_from_slice(word.as_bytes());
                column += word.len() + 1;
                n += 1;
            }
            line.extend_from_slice(eol);
            raw.splice(0..0, line);
        }
        Mutation::Charset(charset) => {
            let mut out = Vec::with_capacity(raw.len());
            let mut rest = &raw[..];
            let mut found = false;
            while let Some(at) = find_ignore_case(rest, b"charset=") {
                found = true;
                out.extend_from_slice(&rest[..at + 8]);
                rest = &rest[at + 8..];
                let value_len = if rest.starts_with(b"\"") {
                    memchr::memchr(b'"', &rest[1..]).map_or(rest.len(), |n| n + 2)
                } else {
                    rest.iter()
                        .position(|b| matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n'))
                        .unwrap_or(rest.len())
                };
                out.extend_from_slice(charset.as_bytes());
                rest = &rest[value_len..];
            }
            out.extend_from_slice(rest);
            if !found {
                let line = [
                    b"Content-Type: text/plain; charset=",
                    charset.as_bytes(),
                    eol,
                ]
                .concat();
                out.splice(0..0, line);
            }
            *raw = out;
        }
        Mutation::Boundary(game) => play_boundary(raw, *game, eol),
        Mutation::Nest { depth, closed } => nest(raw, usize::from(*depth), *closed, eol),
        Mutation::Forward { multipart } => forward(raw, *multipart, eol),
    }
}

fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
}

fn replace_all(raw: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut at = 0;
    for found in memchr::memmem::find_iter(raw, from) {
        if found < at {
            continue;
        }
        out.extend_from_slice(&raw[at..found]);
        out.extend_from_slice(to);
        at = found + from.len();
    }
    out.extend_from_slice(&raw[at..]);
    out
}

fn play_boundary(raw: &mut Vec<u8>, game: BoundaryGame, eol: &[u8]) {
    let Some(param) = find_ignore_case(raw, b"boundary=") else {
        return;
    };
    let start = param + b"boundary=".len();
    let (value_start, value_end) = if raw.get(start) == Some(&b'"') {
        let end = memchr::memchr(b'"', &raw[start + 1..]).map_or(raw.len(), |n| start + 1 + n);
        (start + 1, end)
    } else {
        let end = raw[start..]
            .iter()
            .position(|b| matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n'))
            .map_or(raw.len(), |n| start + n);
        (start, end)
    };
    let boundary = raw[value_start..value_end].to_vec();
    if boundary.is_empty() {
        return;
    }
    let delimiter = [b"--", &boundary[..]].concat();
    match game {
        BoundaryGame::Unclosed => {
            let closing = [&delimiter[..], b"--"].concat();
            let (head, body) = raw.split_at(value_end);
            *raw = [head, &replace_all(body, &closing, b"")].concat();
        }
        BoundaryGame::NoDelimiters => {
            let (head, body) = raw.split_at(value_end);
            *raw = [head, &replace_all(body, &delimiter, b"")].concat();
        }
        BoundaryGame::Unknown => {
            raw.splice(value_start..value_end, *b"no-line-has-this-boundary");
        }
        BoundaryGame::Empty => {
            raw.splice(value_start..value_end, []);
        }
        BoundaryGame::Prefix => {
            let half = boundary.len().div_ceil(2);
            raw.splice(value_start + half..value_end, []);
        }
        BoundaryGame::Twice => {
            if let Some(first) = memchr::memmem::find(&raw[value_end..], &delimiter) {
                let at = value_end + first;
                let line = [&delimiter[..], eol].concat();
                raw.splice(at..at, line);
            }
        }
    }
}

/// `raw` forwarded: a new message with its From, To, Subject and
/// Message-ID whose body is `raw` whole.
fn forward(raw: &mut Vec<u8>, multipart: bool, eol: &[u8]) {
    let mut out = Vec::with_capacity(raw.len() + 512);
    for field in fields(raw) {
        let bytes = &raw[field];
        if ["From", "To", "Subject", "Message-ID"]
            .iter()
            .any(|name| is_named(bytes, name))
        {
            out.extend_from_slice(bytes);
        }
    }
    out.extend_from_slice(b"MIME-Version: 1.0");
    out.extend_from_slice(eol);
    if multipart {
        let lines: [&[u8]; 10] = [
            b"Content-Type: multipart/mixed; boundary=\"forward\"",
            b"",
            b"--forward",
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Transfer-Encoding: quoted-printable",
            b"",
            b"Forwarded by ana=40example.net, see below.",
            b"--forward",
            b"Content-Type: message/rfc822",
            b"",
        ];
        for line in lines {
            out.extend_from_slice(line);
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(raw);
        out.extend_from_slice(eol);
        out.extend_from_slice(b"--forward--");
        out.extend_from_slice(eol);
    } else {
        out.extend_from_slice(b"Content-Type: message/rfc822");
        out.extend_from_slice(eol);
        out.extend_from_slice(eol);
        out.extend_from_slice(raw);
    }
    *raw = out;
}

/// The message's body, with its Content-* fields, put inside `depth`
/// multiparts each the one part of the next.
fn nest(raw: &mut Vec<u8>, depth: usize, closed: bool, eol: &[u8]) {
    let end = header_end(raw);
    let mut outer = Vec::new();
    let mut inner = Vec::new();
    for field in fields(raw) {
        let bytes = &raw[field];
        if bytes.len() >= 8 && bytes[..8].eq_ignore_ascii_case(b"content-") {
            inner.extend_from_slice(bytes);
        } else {
            outer.extend_from_slice(bytes);
        }
    }
    let body = raw[end..].to_vec();
    let mut out = outer;
    for level in 0..depth {
        out.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=\"nest{level}\"").as_bytes(),
        );
        out.extend_from_slice(eol);
        out.extend_from_slice(eol);
        out.extend_from_slice(format!("--nest{level}").as_bytes());
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(&inner);
    out.extend_from_slice(&body);
    if closed {
        for level in (0..depth).rev() {
            out.extend_from_slice(eol);
            out.extend_from_slice(format!("--nest{level}--").as_bytes());
            out.extend_from_slice(eol);
        }
    }
    *raw = out;
}

// ---------------------------------------------------------------------
// What must hold

type Checked = Result<(), TestCaseError>;

fn fail(why: String) -> TestCaseError {
    TestCaseError::fail(why)
}

/// Files `raw` as it came by `envelope`, checks what filing promises, and
/// returns the post.
fn file(world: &World, raw: &[u8], envelope: &Envelope) -> Result<NewPost, TestCaseError> {
    let post = Filer::new(&world.config).file_message(raw, envelope, NOW);
    if raw.len() > world.config.ingest.max_message_bytes {
        prop_assert_eq!(post.status, Status::Rejected, "oversize");
        prop_assert!(post.raw.is_none(), "an oversize message is not kept");
        return Ok(post);
    }
    // Under the size limit every message is kept as it came, byte for
    // byte, whatever became of it.
    prop_assert!(
        post.raw.as_deref() == Some(raw),
        "the raw bytes were not kept"
    );
    prop_assert_eq!(post.size, raw.len());
    match post.status {
        Status::Published => {
            let list = post.list_code.as_deref().and_then(|c| world.config.list(c));
            prop_assert!(
                list.is_some(),
                "published under no list: {:?}",
                post.list_code
            );
            prop_assert!(post.reason.is_none());
            prop_assert!(!post.title.trim().is_empty(), "published without a title");
            prop_assert!(
                !post.author_address.is_empty(),
                "published without a sender"
            );
            prop_assert!(!post.body.trim().is_empty(), "published without text");
        }
        Status::Held | Status::Rejected => {
            prop_assert!(post.reason.is_some(), "{:?} without a reason", post.status);
        }
    }
    if post.status != Status::Rejected {
        let key = post.key.as_deref().unwrap_or("");
        prop_assert!(
            key.len() == 20 && key.bytes().all(|b| b.is_ascii_hexdigit()),
            "key {key:?}"
        );
    }
    // Titles, subjects and names lose control characters and the
    // characters that reorder or hide text, and are cut.
    for (what, line) in [
        ("title", &post.title),
        ("subject", &post.subject),
        ("author name", &post.author_name),
        ("author address", &post.author_address),
    ] {
        let bad = line
            .chars()
            .find(|&c| c.is_control() || tidings::text::is_spoofing_format(c));
        prop_assert!(bad.is_none(), "the {} keeps {:?}: {:?}", what, bad, line);
    }
    let max_title = world.config.ingest.max_title_chars;
    prop_assert!(post.title.chars().count() <= max_title);
    prop_assert!(post.subject.chars().count() <= max_title);
    prop_assert!(post.author_name.chars().count() <= 200);
    let bad = post
        .body
        .chars()
        .find(|&c| c.is_control() && c != '\n' && c != '\t');
    prop_assert!(bad.is_none(), "the body keeps {:?}", bad);
    Ok(post)
}

/// Commits `batch` as mail just arrived and checks each ends stored,
/// held or rejected with its bytes (or is a duplicate of an earlier one
/// of the batch); returns the ids.
fn commit(db: &mut Connection, batch: &[NewPost]) -> Result<Vec<i64>, TestCaseError> {
    let outcomes = store::transaction(db, |tx| ingest::commit_and_hand_out(tx, batch, NOW))
        .map_err(|e| fail(format!("the commit failed: {e}")))?;
    prop_assert_eq!(outcomes.len(), batch.len());
    let mut ids = Vec::new();
    for (index, (post, outcome)) in batch.iter().zip(&outcomes).enumerate() {
        let (id, status) = match outcome {
            Outcome::Stored { id } => (*id, Status::Published),
            Outcome::Held { id, .. } => (*id, Status::Held),
            Outcome::Rejected { id, .. } => (*id, Status::Rejected),
            Outcome::Duplicate { id } => {
                let earlier = batch[..index].iter().any(|other| other.key == post.key);
                prop_assert!(
                    earlier,
                    "a duplicate of nothing in a new store: {:?}",
                    post.key
                );
                ids.push(*id);
                continue;
            }
        };
        prop_assert_eq!(status, post.status);
        let stored = posts::get(db, id)
            .map_err(|e| fail(format!("reading post {id}: {e}")))?
            .ok_or_else(|| fail(format!("post {id} is not in the store")))?;
        prop_assert_eq!(stored.status, post.status);
        prop_assert_eq!(&stored.title, &post.title);
        prop_assert_eq!(&stored.body, &post.body);
        let raw = posts::raw(db, id).map_err(|e| fail(format!("raw {id}: {e}")))?;
        prop_assert!(
            raw == post.raw,
            "the stored bytes differ from those received"
        );
        ids.push(id);
    }
    Ok(ids)
}

/// A feed document is well-formed, readable by feed-rs, and has `entries`
/// entries, each with an id of the site's.
fn check_feed(format: Format, bytes: &[u8], entries: usize) -> Checked {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| fail(format!("{}: not UTF-8: {e}", format.name())))?;
    let bad = text
        .chars()
        .find(|&c| (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{fffe}');
    prop_assert!(bad.is_none(), "{}: holds {:?}", format.name(), bad);
    match format {
        Format::Json => {
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| fail(format!("JSON Feed: {e}")))?;
        }
        _ => well_formed_xml(text).map_err(|e| fail(format!("{}: {e}", format.name())))?,
    }
    let feed = feed_rs::parser::parse(bytes)
        .map_err(|e| fail(format!("feed-rs cannot read the {}: {e}", format.name())))?;
    prop_assert_eq!(feed.entries.len(), entries, "{}", format.name());
    for entry in &feed.entries {
        // feed-rs makes up the ids of RSS 1.0 items: their link is the
        // post's there.
        let linked = entry.links.iter().any(|link| link.href.contains("/posts/"));
        prop_assert!(
            linked && (format == Format::Rdf || entry.id.contains("posts/")),
            "{}: entry id {:?}, links {:?}",
            format.name(),
            entry.id,
            entry.links
        );
        for content in entry.content.iter().filter_map(|c| c.body.as_deref()) {
            no_markup_from_mail(format.name(), content)?;
        }
        // A summary is HTML in RSS (its description) and where Atom says
        // so; plain text in JSON Feed and Atom's type="text".
        if let Some(summary) = &entry.summary {
            let html = match format {
                Format::Rss | Format::Rdf => true,
                Format::Atom => summary.content_type.essence().to_string() != "text/plain",
                Format::Json => false,
            };
            if html {
                no_markup_from_mail(format.name(), &summary.content)?;
            }
        }
    }
    Ok(())
}

fn well_formed_xml(text: &str) -> Result<(), String> {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut roots = 0;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(_)) => {
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
            }
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::Empty(_)) if depth == 0 => roots += 1,
            Ok(quick_xml::events::Event::Text(text)) if depth == 0 => {
                if !text.iter().all(u8::is_ascii_whitespace) {
                    return Err("text outside the root element".to_string());
                }
            }
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(error) => {
                return Err(format!(
                    "not well-formed at {}: {error}",
                    reader.buffer_position()
                ))
            }
        }
    }
    if depth != 0 || roots != 1 {
        return Err(format!("{roots} root elements, {depth} left open"));
    }
    Ok(())
}

/// Markup a hostile message brings must stay text.
fn no_markup_from_mail(what: &str, html: &str) -> Checked {
    for made in ["<script", "<img src=x", "<![CDATA["] {
        prop_assert!(!html.contains(made), "{} has {}: {}", what, made, html);
    }
    Ok(())
}

/// An HTML document whose elements nest and close, whose attributes are
/// quoted, whose ampersands start references, and which holds nothing a
/// message brought as markup.
fn check_html(what: &str, html: &str) -> Checked {
    well_formed_html(html).map_err(|e| fail(format!("{what}: {e}")))?;
    no_markup_from_mail(what, html)
}

const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr",
];

fn well_formed_html(html: &str) -> Result<(), String> {
    let bytes = html.as_bytes();
    let mut open: Vec<String> = Vec::new();
    let mut at = 0;
    let context = |at: usize| {
        let start = at.saturating_sub(80);
        let mut start = start;
        while !html.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (at + 80).min(html.len());
        while !html.is_char_boundary(end) {
            end += 1;
        }
        html[start..end].to_string()
    };
    while at < bytes.len() {
        match bytes[at] {
            b'&' => {
                let name_len = bytes[at + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'#')
                    .count();
                if name_len == 0 || bytes.get(at + 1 + name_len) != Some(&b';') {
                    return Err(format!("a bare ampersand at {at}: {}", context(at)));
                }
                at += name_len + 2;
            }
            b'<' if html[at..].starts_with("<!--") => {
                let end = html[at..]
                    .find("-->")
                    .ok_or_else(|| format!("an unclosed comment at {at}"))?;
                at += end + 3;
            }
            b'<' if html[at..].starts_with("<!") => {
                let end = html[at..]
                    .find('>')
                    .ok_or_else(|| format!("an unclosed declaration at {at}"))?;
                at += end + 1;
            }
            b'<' if bytes.get(at + 1) == Some(&b'/') => {
                let name: String = html[at + 2..]
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect::<String>()
                    .to_ascii_lowercase();
                let end = html[at..]
                    .find('>')
                    .ok_or_else(|| format!("an unclosed end tag at {at}"))?;
                match open.pop() {
                    Some(top) if top == name => {}
                    top => {
                        return Err(format!("</{name}> closes {top:?} at {at}: {}", context(at)))
                    }
                }
                at += end + 1;
            }
            b'<' => {
                let name: String = html[at + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect::<String>()
                    .to_ascii_lowercase();
                if name.is_empty() {
                    return Err(format!("a bare < at {at}: {}", context(at)));
                }
                // Attributes: a name, then = and a value, quoted or not; no
                // event handler, no < and no stray quote.
                let mut cursor = at + 1 + name.len();
                let mut self_closing = false;
                loop {
                    while bytes.get(cursor).is_some_and(u8::is_ascii_whitespace) {
                        cursor += 1;
                    }
                    match bytes.get(cursor) {
                        None => return Err(format!("an unclosed <{name}> at {at}")),
                        Some(b'>') => break,
                        Some(b'/') if bytes.get(cursor + 1) == Some(&b'>') => {
                            self_closing = true;
                            cursor += 1;
                            break;
                        }
                        Some(_) => {}
                    }
                    let attribute_len = bytes[cursor..]
                        .iter()
                        .take_while(|b| {
                            !b.is_ascii_whitespace() && !matches!(b, b'=' | b'>' | b'/')
                        })
                        .count();
                    let attribute = html[cursor..cursor + attribute_len].to_ascii_lowercase();
                    if attribute.is_empty() || attribute.contains(['<', '"', '\'']) {
                        return Err(format!(
                            "a stray {:?} in <{name}> at {at}: {}",
                            &html[cursor..cursor + 1],
                            context(at)
                        ));
                    }
                    if attribute.starts_with("on") {
                        return Err(format!(
                            "an event handler {attribute} on <{name}> at {at}: {}",
                            context(at)
                        ));
                    }
                    cursor += attribute_len;
                    if bytes.get(cursor) != Some(&b'=') {
                        continue;
                    }
                    cursor += 1;
                    match bytes.get(cursor) {
                        Some(&quote) if quote == b'"' || quote == b'\'' => {
                            let end = memchr::memchr(quote, &bytes[cursor + 1..])
                                .ok_or_else(|| format!("an unclosed quote in <{name}> at {at}"))?;
                            let value = &html[cursor + 1..cursor + 1 + end];
                            if value.contains('<') {
                                return Err(format!("a < in an attribute of <{name}> at {at}"));
                            }
                            cursor += end + 2;
                        }
                        _ => {
                            let value_len = bytes[cursor..]
                                .iter()
                                .take_while(|b| !b.is_ascii_whitespace() && **b != b'>')
                                .count();
                            let value = &html[cursor..cursor + value_len];
                            if value.is_empty() || value.contains(['<', '"', '\'', '=', '`']) {
                                return Err(format!(
                                    "an unquoted value {value:?} in <{name}> at {at}"
                                ));
                            }
                            cursor += value_len;
                        }
                    }
                }
                at = cursor + 1;
                if name == "script" || name == "style" {
                    let close = format!("</{name}");
                    let end = html[at..]
                        .find(&close)
                        .ok_or_else(|| format!("an unclosed <{name}> at {at}"))?;
                    at += end;
                    open.push(name);
                } else if !self_closing && !VOID.contains(&name.as_str()) {
                    open.push(name);
                }
            }
            _ => at += 1,
        }
    }
    if !open.is_empty() {
        return Err(format!("left open: {open:?}"));
    }
    Ok(())
}

/// Every feed of the post's list and of all lists, as the feed writer
/// makes them from the store.
fn check_feeds_of(world: &World, db: &Connection, list: Option<&str>) -> Checked {
    let config = &world.config;
    let mut scopes = vec![Scope::All];
    if let Some(list) = list.and_then(|code| config.list(code)) {
        scopes.push(Scope::List(list));
    }
    for scope in scopes {
        let shown = posts::latest_published(
            db,
            match scope {
                Scope::All => None,
                Scope::List(list) => Some(list.code.as_str()),
            },
            scope.entries(config),
            config.feeds.entry_chars + 1,
        )
        .map_err(|e| fail(format!("reading the feed's posts: {e}")))?;
        let feed = feeds::build_feed(
            config,
            scope,
            &shown,
            &|post| feeds::versions_in_store(config, db, post),
            &|lang| {
                let templates = &world.templates;
                templates.label("digest", &templates.language(lang), "read_more")
            },
        );
        for format in Format::ALL {
            let bytes = format
                .render(&feed)
                .map_err(|e| fail(format!("rendering the {}: {e:#}", format.name())))?;
            check_feed(format, &bytes, shown.len())?;
        }
    }
    Ok(())
}

/// Every format of the digest of the posts pending for `list`.
fn check_digest(world: &World, db: &Connection, list: &str) -> Checked {
    let config = &world.config;
    let list = config
        .list(list)
        .ok_or_else(|| fail(format!("no list {list}")))?;
    let pending = digests::pending_posts(db, &list.code)
        .map_err(|e| fail(format!("reading the pending posts: {e}")))?;
    if pending.is_empty() {
        return Ok(());
    }
    let number = Number {
        volume: 1,
        issue: 1,
        period: "2026".to_string(),
    };
    let issued_at = chrono::DateTime::from_timestamp(NOW + 3_600, 0).expect("a valid time");
    let composition = Composition {
        config,
        list,
        templates: &world.templates,
        number: &number,
        issued_at,
        posts: &pending,
    };
    let digest =
        Digest::new(&composition).map_err(|e| fail(format!("composing the digest: {e:#}")))?;
    check_rfc1153(&plain::render_plain(&digest), pending.len())?;
    // The summary links every post.
    let summary = digest::summary::render_summary(&digest);
    for post in &pending {
        let link = feeds::permalink(config, post.post.key.as_deref().unwrap_or_default());
        prop_assert!(
            summary.contains(&link),
            "the summary does not link {}",
            link
        );
    }
    for mode in DigestMode::ALL {
        let body = digest::render_body(&digest, mode)
            .map_err(|e| fail(format!("rendering the {} digest: {e:#}", mode.as_str())))?;
        let what = format!("the {} digest", mode.as_str());
        prop_assert!(
            body.subject.is_ascii() && !body.subject.contains(['\r', '\n']) || {
                // An encoded subject is folded: CRLF and a blank only.
                body.subject.is_ascii()
                    && body
                        .subject
                        .split("\r\n")
                        .skip(1)
                        .all(|line| line.starts_with(' '))
            },
            "{} subject {:?}",
            what,
            body.subject
        );
        check_entity(&what, &body.entity)?;
        check_digest_delivery(world, list, &body)?;
        let entity = MimePart::read(&body.entity).map_err(|e| fail(format!("{what}: {e}")))?;
        match mode {
            DigestMode::Mime => {
                prop_assert_eq!(entity.content_type.as_str(), "multipart/mixed");
                let digest = entity
                    .parts
                    .iter()
                    .find(|part| part.content_type == "multipart/digest")
                    .ok_or_else(|| fail(format!("{what}: no multipart/digest")))?;
                prop_assert_eq!(
                    digest.parts.len(),
                    pending.len(),
                    "{} holds another count of posts",
                    what
                );
                for part in &digest.parts {
                    prop_assert_eq!(part.content_type.as_str(), "message/rfc822");
                }
            }
            DigestMode::Html => {
                prop_assert_eq!(entity.content_type.as_str(), "multipart/alternative");
                let part = entity
                    .parts
                    .iter()
                    .find(|part| part.content_type == "text/html")
                    .ok_or_else(|| fail(format!("{what}: no text/html part")))?;
                prop_assert!(
                    part.bytes <= list.digest_html_budget,
                    "the HTML part takes {} bytes, over the budget of {}",
                    part.bytes,
                    list.digest_html_budget
                );
                // mail-parser decodes it: an HTML digest carries no
                // original message that could trouble it.
                let message = parse_entity(&what, &body.entity)?;
                let html = message
                    .html_bodies()
                    .next()
                    .and_then(|part| part.text_contents())
                    .ok_or_else(|| fail(format!("{what}: mail-parser finds no HTML")))?;
                check_html(&what, html)?;
            }
            DigestMode::Plain | DigestMode::Summary => {
                prop_assert_eq!(entity.content_type.as_str(), "text/plain");
            }
        }
    }
    Ok(())
}

/// A MIME entity as RFC 2046 reads it: its type, and for a multipart its
/// parts, each between delimiters, the last closed; a message/rfc822
/// part is not read further (it is the original as it came, broken or
/// not).
struct MimePart {
    content_type: String,
    /// The part's size, fields included.
    bytes: usize,
    parts: Vec<MimePart>,
}

impl MimePart {
    fn read(entity: &[u8]) -> Result<MimePart, String> {
        let (head, body) = match memchr::memmem::find(entity, b"\r\n\r\n") {
            Some(end) => (&entity[..end + 2], &entity[end + 4..]),
            None if entity.starts_with(b"\r\n") => (&entity[..0], &entity[2..]),
            None => return Err("no blank line after the fields".to_string()),
        };
        let head = String::from_utf8_lossy(head)
            .replace("\r\n ", " ")
            .replace("\r\n\t", " ");
        let content_type = head
            .split("\r\n")
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-type")
                    .then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| "text/plain".to_string());
        let (kind, params) = content_type.split_once(';').unwrap_or((&content_type, ""));
        let kind = kind.trim().to_ascii_lowercase();
        let mut parts = Vec::new();
        if kind.starts_with("multipart/") {
            let boundary = params
                .split(';')
                .find_map(|param| {
                    let (name, value) = param.split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("boundary")
                        .then(|| value.trim().trim_matches('"').to_string())
                })
                .filter(|b| !b.is_empty())
                .ok_or_else(|| format!("{kind} without a boundary"))?;
            let delimiter = format!("\r\n--{boundary}");
            // The CRLF before a delimiter is the delimiter's; the first may
            // begin the body.
            let body = [b"\r\n", body].concat();
            let mut rest = &body[..];
            let mut first = true;
            loop {
                let at = memchr::memmem::find(rest, delimiter.as_bytes())
                    .ok_or_else(|| format!("{kind} is not closed"))?;
                if !first {
                    parts.push(MimePart::read(&rest[..at])?);
                }
                first = false;
                let after = &rest[at + delimiter.len()..];
                if after.starts_with(b"--") {
                    break;
                }
                // Transport padding (RFC 2046 5.1.1) may follow a delimiter.
                let padding = after
                    .iter()
                    .take_while(|b| matches!(b, b' ' | b'\t'))
                    .count();
                if !after[padding..].starts_with(b"\r\n") {
                    return Err(format!(
                        "a line begins with the delimiter of {kind} and goes on"
                    ));
                }
                rest = &after[padding + 2..];
            }
            if parts.is_empty() {
                return Err(format!("{kind} has no part"));
            }
        }
        Ok(MimePart {
            content_type: kind,
            bytes: entity.len(),
            parts,
        })
    }
}

/// The subscriber of these tests.
fn delivery(mode: DigestMode) -> DueDelivery {
    DueDelivery {
        id: 1,
        digest_id: 1,
        subscriber_id: 1,
        list_code: String::new(),
        address: "reader@example.com".to_string(),
        mode,
        token: "0123456789abcdef0123456789abcdef".to_string(),
        attempts: 0,
    }
}

/// The digest as the outbox sends it to one subscriber: a whole message
/// with one each of the fields a reader goes by, CRLF only, 7-bit for a
/// relay without 8BITMIME where the format can be, and in SMTP's DATA
/// form ended by its one lone dot.
fn check_digest_delivery(world: &World, list: &config::List, body: &digest::DigestBody) -> Checked {
    let record = DigestRecord {
        id: 1,
        list_code: list.code.clone(),
        volume: 1,
        issue: 1,
        period: "2026".to_string(),
        reason: "schedule".to_string(),
        issued_at: NOW,
        nonce: Some("5f3a9c0e1b2d4e6f".to_string()),
    };
    let prepared = Prepared::new(
        &world.config,
        list,
        &record,
        body.mode,
        &body.subject,
        body.entity.clone(),
        false,
    );
    let delivery = delivery(body.mode);
    let what = format!("the {} digest as sent", body.mode.as_str());
    let bytes = prepared
        .message_bytes(&delivery, &[])
        .map_err(|e| fail(format!("{what}: {e:#}")))?;
    check_message(&what, &bytes)?;
    for eight_bit in [true, false] {
        let outgoing = prepared
            .message(&delivery, &[], true, eight_bit)
            .map_err(|e| fail(format!("{what}: {e:#}")))?;
        if let Outgoing::Data { head, shared } = &outgoing {
            check_data(&what, &format!("{head}{shared}"))?;
        }
        let seven = match prepared.message(&delivery, &[], false, eight_bit) {
            Ok(Outgoing::Bytes(bytes)) => bytes,
            other => return Err(fail(format!("{what}: {:?}", other.map(|o| o.len())))),
        };
        if !eight_bit && body.mode != DigestMode::Mime {
            prop_assert!(seven.is_ascii(), "{} to a 7-bit relay is 8-bit", what);
        }
    }
    Ok(())
}

/// The post as it goes to a subscriber in mode post: the raw message
/// under the list's fields, CRLF only, and in DATA form ended by its one
/// lone dot.
fn check_post_delivery(world: &World, list: &config::List, id: i64, raw: &[u8]) -> Checked {
    check_ascii_headers(raw)?;
    let prepared = PreparedPost::new(&world.config, list, id, raw, false);
    let delivery = delivery(DigestMode::Plain);
    for smtp in [true, false] {
        match prepared
            .message(&delivery, &[], smtp)
            .map_err(|e| fail(format!("the post as sent: {e:#}")))?
        {
            Outgoing::Data { head, shared } => {
                check_data("the post as sent", &format!("{head}{shared}"))?
            }
            Outgoing::Bytes(bytes) => {
                for (at, &byte) in bytes.iter().enumerate() {
                    let crlf = match byte {
                        b'\r' => bytes.get(at + 1) == Some(&b'\n'),
                        b'\n' => at > 0 && bytes[at - 1] == b'\r',
                        _ => true,
                    };
                    prop_assert!(crlf, "the post as sent: a bare CR or LF at {}", at);
                }
            }
        }
    }
    Ok(())
}

/// The message's header as a digest carries it, and as sendmail gets a
/// post sent as it arrived, is ASCII whatever came (no SMTPUTF8 needed),
/// CRLF only, and every line a field or the folded rest of one: nothing
/// re-encoded ends a field early.
fn check_ascii_headers(raw: &[u8]) -> Checked {
    let crlf = headers_crlf(raw);
    let original = Original::parse(&crlf);
    let carried = original.for_digest();
    let mut heads = vec![("the original in a digest", carried)];
    if let Some(whole) = original.with_ascii_header() {
        heads.push(("the post through sendmail", whole));
    }
    for (what, message) in heads {
        let end = memchr::memmem::find(&message, b"\r\n\r\n").map_or(message.len(), |end| end + 2);
        let head = &message[..end];
        prop_assert!(head.is_ascii(), "{}: a header that is not ASCII", what);
        for line in head.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
            prop_assert!(line.ends_with(b"\r"), "{}: a bare LF", what);
            let line = &line[..line.len() - 1];
            prop_assert!(!line.contains(&b'\r'), "{}: a bare CR", what);
            let folded = line.starts_with(b" ") || line.starts_with(b"\t");
            let field = line.iter().position(|&b| b == b':').is_some_and(|colon| {
                // RFC 5322's obsolete syntax allows blanks before the colon.
                let name = line[..colon].trim_ascii_end();
                !name.is_empty() && name.iter().all(|&b| b.is_ascii_graphic())
            });
            prop_assert!(
                folded || field,
                "{}: a line that is neither a field nor folded: {:?}",
                what,
                String::from_utf8_lossy(line)
            );
        }
    }
    Ok(())
}

/// A whole message: CRLF only; one From, To, Subject, Date and
/// Message-ID; readable as MIME.
fn check_message(what: &str, message: &[u8]) -> Checked {
    check_entity(what, message)?;
    let end = memchr::memmem::find(message, b"\r\n\r\n").expect("checked");
    let head = String::from_utf8_lossy(&message[..end]);
    for name in [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
    ] {
        let count = head
            .split("\r\n")
            .filter(|line| {
                line.split_once(':')
                    .is_some_and(|(field, _)| field.eq_ignore_ascii_case(name))
            })
            .count();
        prop_assert_eq!(count, 1, "{}: {} {} fields", what, count, name);
    }
    MimePart::read(message).map_err(|e| fail(format!("{what}: {e}")))?;
    Ok(())
}

/// SMTP's DATA phase (RFC 5321 4.5.2): CRLF only, every line that begins
/// with a dot given a second, and the lone dot that ends it at the end
/// alone.
fn check_data(what: &str, data: &str) -> Checked {
    prop_assert!(data.ends_with("\r\n.\r\n"), "{}: DATA is not closed", what);
    let body = &data[..data.len() - 3];
    let bytes = body.as_bytes();
    for (at, &byte) in bytes.iter().enumerate() {
        let crlf = match byte {
            b'\r' => bytes.get(at + 1) == Some(&b'\n'),
            b'\n' => at > 0 && bytes[at - 1] == b'\r',
            _ => true,
        };
        prop_assert!(crlf, "{}: a bare CR or LF in DATA at {}", what, at);
    }
    for line in body.split("\r\n") {
        prop_assert!(
            !line.starts_with('.') || line.starts_with(".."),
            "{}: a line begins with one dot: {:?}",
            what,
            line
        );
    }
    Ok(())
}

/// The entity as mail-parser reads it; a panic of mail-parser is a
/// failure of the entity, which readers built on it would meet too.
fn parse_entity<'x>(
    what: &str,
    entity: &'x [u8],
) -> Result<mail_parser::Message<'x>, TestCaseError> {
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(entity))
        .map_err(|_| fail(format!("{what}: mail-parser panics reading it")))?;
    parsed.ok_or_else(|| fail(format!("{what}: mail-parser reads no message")))
}

/// A MIME entity has CRLF line ends only and a blank line after its
/// fields, each field a name and a colon.
fn check_entity(what: &str, entity: &[u8]) -> Checked {
    for (at, &byte) in entity.iter().enumerate() {
        if byte == b'\r' {
            prop_assert!(
                entity.get(at + 1) == Some(&b'\n'),
                "{}: a bare CR at {}",
                what,
                at
            );
        }
        if byte == b'\n' {
            prop_assert!(
                at > 0 && entity[at - 1] == b'\r',
                "{}: a bare LF at {}",
                what,
                at
            );
        }
    }
    let end = memchr::memmem::find(entity, b"\r\n\r\n")
        .ok_or_else(|| fail(format!("{what}: no blank line after the fields")))?;
    for line in entity[..end].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let field = line.starts_with(b" ")
            || line.starts_with(b"\t")
            || line.iter().position(|&b| b == b':').is_some_and(|colon| {
                colon > 0 && line[..colon].iter().all(|b| b.is_ascii_graphic())
            });
        prop_assert!(
            field,
            "{}: not a field: {:?}",
            what,
            String::from_utf8_lossy(line)
        );
    }
    Ok(())
}

/// The plain digest as a burster (RFC 1153) reads it: the preamble ends
/// at the first line of 70 hyphens (a body may hold more: RFC 1153 has
/// only lines of 30 escaped), one separator a post, and each post's
/// fields the kept ones, once each, one line each.
fn check_rfc1153(text: &str, posts: usize) -> Checked {
    let lines: Vec<&str> = text.split('\n').collect();
    prop_assert!(
        lines.contains(&plain::PREAMBLE_END),
        "no preamble end in:\n{}",
        text
    );
    let separators = lines.iter().filter(|l| **l == plain::SEPARATOR).count();
    prop_assert_eq!(separators, posts, "post separators in:\n{}", text);
    const KEPT: [&str; 7] = [
        "Date",
        "From",
        "To",
        "Cc",
        "Subject",
        "Message-ID",
        "Keywords",
    ];
    let mut at = lines
        .iter()
        .position(|l| *l == plain::PREAMBLE_END)
        .expect("counted")
        + 1;
    for post in 0..posts {
        prop_assert_eq!(
            lines.get(at).copied(),
            Some(""),
            "post {}: no blank line",
            post
        );
        at += 1;
        let mut seen: Vec<&str> = Vec::new();
        while let Some(line) = lines.get(at).filter(|l| !l.is_empty()) {
            let name = line.split_once(": ").map(|(name, _)| name);
            prop_assert!(
                name.is_some_and(|n| KEPT.contains(&n) && !seen.contains(&n)),
                "post {}: {:?} is no field it keeps, or a second one",
                post,
                line
            );
            seen.push(name.expect("checked"));
            at += 1;
        }
        prop_assert!(seen.contains(&"Subject"), "post {}: no Subject", post);
        at = lines[at..]
            .iter()
            .position(|l| *l == plain::SEPARATOR)
            .map(|n| at + n + 1)
            .ok_or_else(|| fail(format!("post {post}: no separator")))?;
    }
    Ok(())
}

/// Renders the post's page and its raw download.
fn check_page(world: &World, post: &StoredPost, raw: &[u8]) -> Checked {
    let pages = Pages::new(&world.config, &world.templates);
    let page = pages
        .post(post, &[])
        .map_err(|e| fail(format!("rendering the post's page: {e:#}")))?;
    check_html("the post's page", &page)?;
    if unparsable(raw) {
        // Known bug: an_approved_post_whose_mime_could_not_be_parsed_gets_its_page.
        return Ok(());
    }
    let obfuscated = site::raw::obfuscate(raw);
    prop_assert!(!obfuscated.is_empty() || raw.is_empty());
    no_address_in_encoded_text(&obfuscated)
}

/// Whether mail-parser panics on `raw`, as it does on a forward of a
/// forward: filing holds such a post ("the MIME structure could not be
/// parsed"), and once approved its raw download panics
/// (an_approved_post_whose_mime_could_not_be_parsed_gets_its_page), so the
/// properties step round that known bug until it is fixed.
fn unparsable(raw: &[u8]) -> bool {
    std::panic::catch_unwind(|| MessageParser::new().parse(raw)).is_err()
}

/// The raw download's text parts in base64 or quoted-printable, decoded
/// as a harvester would, hold no address (`local@domain`).
fn no_address_in_encoded_text(obfuscated: &[u8]) -> Checked {
    let Ok(Some(message)) = std::panic::catch_unwind(|| MessageParser::default().parse(obfuscated))
    else {
        // What mail-parser cannot read, the obfuscation cannot decode
        // either: its addresses are hidden or left as plain bytes.
        return Ok(());
    };
    for part in &message.parts {
        let text = match &part.body {
            mail_parser::PartType::Text(text) | mail_parser::PartType::Html(text) => text,
            _ => continue,
        };
        if part.encoding == mail_parser::Encoding::None {
            continue;
        }
        // A part that says UTF-16 or UTF-32 is left as it is when its bytes
        // are (NULs in them), and its address with it; a lie is obfuscated
        // (a_part_lying_that_it_is_utf_32_keeps_no_address_in_the_raw_download).
        let wide = part
            .content_type()
            .and_then(|t| t.attribute("charset"))
            .is_some_and(|c| {
                let c = c.to_ascii_lowercase();
                c.starts_with("utf-16") || c.starts_with("utf-32")
            });
        if wide {
            continue;
        }
        let bytes = text.as_bytes();
        let found = memchr::memchr_iter(b'@', bytes).find(|&at| {
            at > 0
                && (bytes[at - 1].is_ascii_alphanumeric() || b"._+-".contains(&bytes[at - 1]))
                && bytes.get(at + 1).is_some_and(u8::is_ascii_alphanumeric)
        });
        if let Some(at) = found {
            let start = text.floor_char_boundary(at.saturating_sub(30));
            let end = text.ceil_char_boundary((at + 30).min(text.len()));
            return Err(fail(format!(
                "the raw download's {:?} part keeps an address: {:?}",
                part.encoding,
                &text[start..end]
            )));
        }
    }
    Ok(())
}

/// One message the whole way: filed, stored, in every feed, every digest
/// format and its page; or, not published, in none of them until a
/// moderator approves it, and then in all of them.
fn whole_path(raw: &[u8], envelope: &Envelope) -> Checked {
    let world = world();
    let filed = file(world, raw, envelope)?;
    let mut db = store::open_in_memory().map_err(|e| fail(format!("a store: {e}")))?;
    let id = commit(&mut db, std::slice::from_ref(&filed))?[0];
    check_feeds_of(world, &db, filed.list_code.as_deref())?;
    for list in &world.config.lists {
        let pending = digests::pending_posts(&db, &list.code)
            .map_err(|e| fail(format!("pending posts: {e}")))?;
        let expected = usize::from(
            filed.status == Status::Published && filed.list_code.as_deref() == Some(&list.code),
        );
        prop_assert_eq!(pending.len(), expected, "pending for {}", list.code);
    }
    let list = match filed.status {
        Status::Published => filed.list_code.clone().expect("checked when filed"),
        Status::Held => approve(world, &mut db, id, envelope)?,
        Status::Rejected => return Ok(()),
    };
    check_feeds_of(world, &db, Some(&list))?;
    check_digest(world, &db, &list)?;
    let stored = posts::get(&db, id)
        .map_err(|e| fail(format!("{e}")))?
        .expect("checked when committed");
    check_page(world, &stored, raw)?;
    let list = world.config.list(&list).expect("a configured list");
    check_post_delivery(world, list, id, raw)?;
    Ok(())
}

/// A moderator approves held post `id` (`tidings moderate approve`),
/// filing it under the list it was sent to, else English, when it has
/// none; returns the list.
fn approve(
    world: &World,
    db: &mut Connection,
    id: i64,
    envelope: &Envelope,
) -> Result<String, TestCaseError> {
    let held = posts::get(db, id)
        .map_err(|e| fail(format!("{e}")))?
        .expect("checked when committed");
    let list = match &held.list_code {
        Some(code) => code.clone(),
        None => envelope
            .list_code
            .clone()
            .or_else(|| {
                let to = envelope.recipients.first()?;
                Some(world.config.list_by_address(to)?.code.clone())
            })
            .unwrap_or_else(|| "en".to_string()),
    };
    let lang = world
        .config
        .list(&list)
        .expect("a configured list")
        .lang
        .clone();
    let decided = store::transaction(db, |tx| {
        if held.list_code.is_none() {
            posts::refile(tx, id, &list, &lang)?;
        }
        posts::decide(
            tx,
            id,
            Status::Published,
            None,
            "moderator@example.org",
            NOW,
        )
    })
    .map_err(|e: store::Error| fail(format!("approving post {id}: {e}")))?;
    prop_assert!(decided, "post {} was not approved", id);
    Ok(list)
}

proptest! {
    #![proptest_config(run_config(CASES))]

    /// Issue 13, promise 6: a mutated corpus message is filed, stored byte
    /// for byte (published, held or rejected: never lost) and rendered
    /// into every feed format, every digest format and its page, all
    /// well-formed; a post not published appears in none of them.
    #[test]
    fn a_mutated_corpus_message_is_kept_and_renders_well_formed_everywhere(recipe in recipe()) {
        whole_path(&recipe.bytes(), &recipe.envelope())?;
    }
}

// ---------------------------------------------------------------------
// A day of mutated mail: the writers of feeds and pages over a store.

fn whole_day(recipes: &[Recipe]) -> Checked {
    let world = world();
    let dir = tempfile::tempdir().map_err(|e| fail(format!("{e}")))?;
    let mut config = world.config.clone();
    config.site.data_dir = dir.path().join("data");
    config.site.feeds_dir = dir.path().join("feeds");
    config.site.site_dir = dir.path().join("site");
    let batch: Vec<NewPost> = recipes
        .iter()
        .map(|recipe| file(world, &recipe.bytes(), &recipe.envelope()))
        .collect::<Result<_, _>>()?;
    std::fs::create_dir_all(&config.site.data_dir).map_err(|e| fail(format!("{e}")))?;
    let mut db = store::open(&config.database_path()).map_err(|e| fail(format!("a store: {e}")))?;
    let ids = commit(&mut db, &batch)?;
    // A moderator approves every other post held.
    for (n, ((id, post), recipe)) in ids.iter().zip(&batch).zip(recipes).enumerate() {
        let still_held = posts::get(&db, *id)
            .map_err(|e| fail(format!("{e}")))?
            .is_some_and(|p| p.status == Status::Held);
        // Known bug: an_approved_post_whose_mime_could_not_be_parsed_gets_its_page
        // (its raw download panics the whole build).
        let raw = post.raw.as_deref().unwrap_or_default();
        if post.status == Status::Held && still_held && n % 2 == 0 && !unparsable(raw) {
            approve(world, &mut db, *id, &recipe.envelope())?;
        }
    }

    let report = feeds::regenerate(&config, &db, feeds::Mode::Everything)
        .map_err(|e| fail(format!("writing the feeds: {e:#}")))?;
    prop_assert_eq!(
        report.written.len(),
        Scope::every(&config).len() * Format::ALL.len()
    );
    for path in &report.written {
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let format = Format::ALL
            .into_iter()
            .find(|f| path.extension().and_then(|e| e.to_str()) == Some(f.extension()))
            .ok_or_else(|| fail(format!("{}: which format?", path.display())))?;
        let scope = config.list(name).map_or(Scope::All, Scope::List);
        let expected = posts::latest_published(
            &db,
            config.list(name).map(|list| list.code.as_str()),
            scope.entries(&config),
            1,
        )
        .map_err(|e| fail(format!("{e}")))?
        .len();
        let bytes = std::fs::read(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        check_feed(format, &bytes, expected)?;
    }

    for list in &config.lists {
        check_digest(world, &db, &list.code)?;
    }

    let out = config.site.site_dir.clone();
    site::build(&config, &world.templates, &db, &out, site::Scope::Full, NOW)
        .map_err(|e| fail(format!("building the site: {e:#}")))?;
    let mut pages = Vec::new();
    walk(&out, &mut pages);
    let published = posts::list(
        &db,
        &posts::PostFilter {
            status: Some(Status::Published),
            ..Default::default()
        },
    )
    .map_err(|e| fail(format!("{e}")))?
    .len();
    let post_pages = pages
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .filter(|p| {
            p.parent()
                .and_then(|d| d.file_name())
                .is_some_and(|d| d == "posts")
        })
        .count();
    prop_assert_eq!(post_pages, published, "a page for each post published");
    for page in pages
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
    {
        let html =
            std::fs::read_to_string(page).map_err(|e| fail(format!("{}: {e}", page.display())))?;
        check_html(&page.display().to_string(), &html)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(run_config(DAY_CASES))]

    /// A day of mutated mail in one store: every feed file the writer
    /// makes, every list's digest in every format and every page of the
    /// archive are well-formed.
    #[test]
    fn a_day_of_mutated_mail_writes_well_formed_feeds_digests_and_pages(
        recipes in proptest::collection::vec(recipe(), 1..10)
    ) {
        whole_day(&recipes)?;
    }
}

// ---------------------------------------------------------------------
// The configuration loader

/// Lines of lists.toml, and lines to put into it.
const CONFIG_LINES: &[&str] = &[
    "[[list]]",
    "[site]",
    "[ingest]",
    "[listen]",
    "[[dkim]]",
    "[delivery]",
    "[feeds]",
    "[bogus]",
    "[[site]]",
    "code = \"en\"",
    "code = \"all\"",
    "code = \"../x\"",
    "code = \"\"",
    "lang = \"\"",
    "lang = \"xx-Latn-QQ-invalid-!\"",
    "address = \"@\"",
    "address = \"a-infos-en@elsewhere.example\"",
    "aliases = [1, 2]",
    "aliases = [\"en\", \"en\"]",
    "digest_schedule = \"61 * * * *\"",
    "digest_schedule = \"* * * * * * * *\"",
    "digest_schedule = \"\"",
    "max_message_bytes = -1",
    "max_message_bytes = 99999999999999999999",
    "max_title_chars = 0",
    "timezone = \"Mars/Olympus\"",
    "base_url = \"not a url\"",
    "base_url = \"https://news.example.org\"",
    "file_mode = 0o7777",
    "file_mode = \"644\"",
    "detect_confidence = nan",
    "detect_confidence = inf",
    "x = 1e400",
    "hold_days = 0",
    "entry_chars = 0",
    "transport = \"smtp\"",
    "port = 70000",
    "selector = \"s\"",
    "key_file = \"/nonexistent/key.pem\"",
    "data_dir = \"\"",
    "domain = \"\"",
    "domain = \"-bad-.example\"",
    "smtp = \"not an address\"",
    "\"\u{202e}\" = 1",
    "key = \"\"\"",
    "key = '''",
    "a.b.c = 1",
    "site = 1",
    "list = []",
    "dkim = {}",
    "= 1",
    "[",
    "\"",
    "\u{feff}",
    "\0",
];

#[derive(Debug, Clone, PartialEq)]
enum Edit {
    /// A line (of those with a key or a table) taken out.
    Delete(u16),
    /// A line given twice.
    Duplicate(u16),
    /// Two lines swapped.
    Swap(u16, u16),
    /// A line put in: a table before a line, a key in place of one.
    Insert(u16, &'static str),
    /// A key's value replaced.
    Value(u16, &'static str),
    /// One character replaced.
    Char(At, char),
    /// Cut here.
    Truncate(At),
}

const CONFIG_VALUES: &[&str] = &[
    "\"\"",
    "-1",
    "0",
    "true",
    "[]",
    "{}",
    "\"x\"",
    "1.5",
    "\"\\u0000\"",
    "[[]]",
    "1979-05-27",
    "nan",
    "-inf",
    "-0.0",
    "1e309",
    "\"\\ud800\"",
    "0x7fffffffffffffff",
    "'single'",
    "{ a = 1 }",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => any::<u16>().prop_map(Edit::Delete),
        1 => any::<u16>().prop_map(Edit::Duplicate),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        2 => (any::<u16>(), 0..CONFIG_LINES.len()).prop_map(|(at, n)| Edit::Insert(at, CONFIG_LINES[n])),
        3 => (any::<u16>(), 0..CONFIG_VALUES.len()).prop_map(|(at, n)| Edit::Value(at, CONFIG_VALUES[n])),
        2 => (at(), prop_oneof![
            Just('"'), Just('['), Just(']'), Just('='), Just('#'), Just('\n'),
            Just('\\'), Just('{'), Just('.'), Just('7'), Just('é'), Just('\u{0}'),
            any::<char>(),
        ]).prop_map(|(at, c)| Edit::Char(at, c)),
        1 => at().prop_map(Edit::Truncate),
    ]
}

/// The shipped lists.toml with `edits` made, as lines.
fn edited_config(edits: &[Edit]) -> String {
    let mut lines: Vec<String> = config::EMBEDDED_LISTS_TOML
        .lines()
        .map(str::to_string)
        .collect();
    for edit in edits {
        // Lines with a key or a table: what comments and blanks are not.
        let meaningful: Vec<usize> = (0..lines.len())
            .filter(|&n| {
                let line = lines[n].trim_start();
                !line.is_empty() && !line.starts_with('#')
            })
            .collect();
        let pick = |n: u16| -> Option<usize> {
            (!meaningful.is_empty()).then(|| meaningful[usize::from(n) % meaningful.len()])
        };
        match edit {
            Edit::Delete(n) => {
                if let Some(line) = pick(*n) {
                    lines.remove(line);
                }
            }
            Edit::Duplicate(n) => {
                if let Some(line) = pick(*n) {
                    lines.insert(line, lines[line].clone());
                }
            }
            Edit::Swap(a, b) => {
                if let (Some(a), Some(b)) = (pick(*a), pick(*b)) {
                    lines.swap(a, b);
                }
            }
            Edit::Insert(n, text) => {
                let at = pick(*n).unwrap_or(0);
                // A key takes the place of a line, so that the file seldom
                // stops at a duplicate key before its tables are checked.
                if text.contains('=') && !text.starts_with('[') && at < lines.len() {
                    lines[at] = text.to_string();
                } else {
                    lines.insert(at, text.to_string());
                }
            }
            Edit::Value(n, value) => {
                if let Some(line) = pick(*n) {
                    if let Some((key, _)) = lines[line].split_once('=') {
                        lines[line] = format!("{key}= {value}");
                    }
                }
            }
            Edit::Char(at, c) => {
                let mut text: Vec<char> = lines.join("\n").chars().collect();
                if !text.is_empty() {
                    let at = at.of(text.len());
                    text[at] = *c;
                }
                lines = text
                    .into_iter()
                    .collect::<String>()
                    .split('\n')
                    .map(str::to_string)
                    .collect();
            }
            Edit::Truncate(at) => {
                let text = lines.join("\n");
                let mut cut = at.of(text.len());
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                lines = text[..cut].split('\n').map(str::to_string).collect();
            }
        }
    }
    lines.join("\n") + "\n"
}

/// Every problem is located in `file` at a line the text has and a column
/// its line has, and says what is wrong and how to fix it.
fn check_located(errors: &[config::ConfigError], file: &str, text: &str) -> Checked {
    let lines: Vec<&str> = text.split('\n').collect();
    for error in errors {
        prop_assert_eq!(&error.file, file);
        prop_assert!(
            error.line >= 1 && error.line <= lines.len(),
            "line {} of {}: {}",
            error.line,
            lines.len(),
            error
        );
        let columns = lines[error.line - 1].chars().count() + 1;
        prop_assert!(
            error.column >= 1 && error.column <= columns,
            "column {} of {}: {}",
            error.column,
            columns,
            error
        );
        prop_assert!(!error.message.trim().is_empty(), "no message: {}", error);
        prop_assert!(!error.help.trim().is_empty(), "no help: {}", error);
        let shown = error.to_string();
        let prefix = format!("{file}:{}:{}: ", error.line, error.column);
        prop_assert!(shown.starts_with(&prefix), "{:?}", shown);
        prop_assert!(shown.contains("\n  help: "), "{:?}", shown);
    }
    Ok(())
}

fn check_config_text(text: &str) -> Checked {
    let dir = tempfile::tempdir().map_err(|e| fail(format!("{e}")))?;
    match config::parse(text, "lists.toml", dir.path()) {
        Ok(config) => {
            prop_assert!(!config.lists.is_empty());
            check_located(&config.warnings, "lists.toml", text)?;
            // What it accepts works: a post is filed under it.
            let list = &config.lists[0];
            let raw = format!(
                "From: Ana <ana@example.net>\r\nTo: {}\r\nSubject: ({}) A post\r\n\
                 Message-ID: <config@example.net>\r\n\r\nThe text of a post.\r\n",
                list.address, list.code
            );
            let post = Filer::new(&config).file_message(raw.as_bytes(), &Envelope::default(), NOW);
            prop_assert!(post.raw.is_some() || raw.len() > config.ingest.max_message_bytes);
            Ok(())
        }
        Err(ConfigErrors(errors)) => {
            prop_assert!(!errors.is_empty(), "refused without a reason");
            check_located(&errors, "lists.toml", text)
        }
    }
}

/// The file as `tidings check` reads it: bytes, so not UTF-8 is located
/// too.
fn check_config_file(bytes: &[u8]) -> Checked {
    let dir = tempfile::tempdir().map_err(|e| fail(format!("{e}")))?;
    let path = dir.path().join("lists.toml");
    std::fs::write(&path, bytes).map_err(|e| fail(format!("{e}")))?;
    let file = path.display().to_string();
    match config::load(Some(&path)) {
        Ok(config) => {
            let text = String::from_utf8_lossy(bytes);
            check_located(&config.warnings, &file, &text)
        }
        Err(error) => {
            let errors = error
                .downcast_ref::<ConfigErrors>()
                .ok_or_else(|| fail(format!("an error that locates nothing: {error:#}")))?;
            prop_assert!(!errors.0.is_empty(), "refused without a reason");
            // The text up to the first byte that is not UTF-8 locates it.
            let text = match std::str::from_utf8(bytes) {
                Ok(text) => text.to_string(),
                Err(e) => {
                    String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned() + "\u{fffd}"
                }
            };
            check_located(&errors.0, &file, &text)
        }
    }
}

proptest! {
    #![proptest_config(run_config(CASES))]

    /// The shipped lists.toml with lines taken out, repeated, swapped or
    /// put in, values and characters replaced: the loader never panics,
    /// and refuses with every problem named by file, line and column, or
    /// gives a configuration with at least one list.
    #[test]
    fn a_mutated_lists_toml_never_panics_and_every_error_names_file_line_and_column(
        edits in proptest::collection::vec(edit(), 1..6)
    ) {
        check_config_text(&edited_config(&edits))?;
    }

    /// The same file with bytes flipped, as the file `tidings check`
    /// reads: not UTF-8 is located at its first bad byte.
    #[test]
    fn a_lists_toml_with_flipped_bytes_is_refused_at_a_line_of_the_file(
        edits in proptest::collection::vec(edit(), 0..3),
        flips in proptest::collection::vec((at(), any::<u8>()), 1..4)
    ) {
        let mut bytes = edited_config(&edits).into_bytes();
        for (at, byte) in flips {
            let at = at.of(bytes.len());
            bytes[at] = byte;
        }
        check_config_file(&bytes)?;
    }
}

// ---------------------------------------------------------------------
// Regression tests: each failure the properties found, minimised.

/// Runs `check` as a plain test, failing with its message.
fn regression(check: Checked) {
    if let Err(error) = check {
        panic!("{error}");
    }
}

#[test]
fn the_unmutated_corpus_goes_the_whole_way() {
    // The cases the properties start from: every message as it is, to
    // every list by its address. A failure here is no mutation's.
    let world = world();
    let lists = world.config.lists.len() as u8;
    for (index, (name, _)) in world.corpus.iter().enumerate() {
        let recipe = Recipe {
            message: index,
            routing: Routing::Recipient(index as u8 % lists),
            mutations: Vec::new(),
        };
        if let Err(error) = whole_path(&recipe.bytes(), &recipe.envelope()) {
            panic!("{name}: {error}");
        }
    }
}

#[test]
fn the_shipped_lists_toml_loads_as_the_properties_start_from_it() {
    regression(check_config_text(&edited_config(&[])));
}

/// `raw` filed as sent to `list`, stored, and its digest in every format.
fn digest_of(raw: &[u8], list: &str) -> Vec<digest::DigestBody> {
    let world = world();
    let envelope = Envelope {
        list_code: Some(list.to_string()),
        recipients: Vec::new(),
    };
    let filed = Filer::new(&world.config).file_message(raw, &envelope, NOW);
    assert_eq!(filed.status, Status::Published, "{:?}", filed.reason);
    let mut db = store::open_in_memory().expect("a store");
    store::transaction(&mut db, |tx| ingest::commit(tx, &[filed])).expect("stored");
    let pending = digests::pending_posts(&db, list).expect("pending posts");
    let number = Number {
        volume: 1,
        issue: 1,
        period: "2026".to_string(),
    };
    digest::compose_digest(&Composition {
        config: &world.config,
        list: world.config.list(list).expect("a list"),
        templates: &world.templates,
        number: &number,
        issued_at: chrono::DateTime::from_timestamp(NOW, 0).expect("a time"),
        posts: &pending,
    })
    .expect("composed")
}

/// A post forwarded as a message/rfc822 entity of its own, as
/// realworld/cpython-test_email/msg_46.txt is.
const FORWARDED: &[u8] = b"From: Ana <ana@example.net>\r\nTo: a-infos-en@lists.example.org\r\n\
    Subject: (en) Forwarded\r\nMessage-ID: <fwd@example.net>\r\nMIME-Version: 1.0\r\n\
    Content-Type: message/rfc822\r\n\r\nFrom: Bob <bob@example.net>\r\nSubject: The original\r\n\
    Content-Type: text/plain\r\n\r\nThe forwarded text.\r\n";

/// Found by the first property on the unmutated corpus: the MIME digest
/// of a forwarded post nests message/rfc822 in message/rfc822 inside its
/// multipart/digest. That is RFC 2046 and reads so, but mail-parser
/// 0.11.9 panics on it ("Invalid part ID, could not find multipart"), so
/// the properties read digests with a reader of their own.
#[test]
fn a_forwarded_post_makes_a_well_formed_mime_digest_holding_one_post() {
    let bodies = digest_of(FORWARDED, "en");
    let mime = bodies
        .iter()
        .find(|body| body.mode == DigestMode::Mime)
        .expect("a MIME digest");
    regression(check_entity("the MIME digest", &mime.entity));
    let entity = MimePart::read(&mime.entity).expect("RFC 2046");
    let digest = entity
        .parts
        .iter()
        .find(|part| part.content_type == "multipart/digest")
        .expect("a multipart/digest");
    assert_eq!(digest.parts.len(), 1);
    assert_eq!(digest.parts[0].content_type, "message/rfc822");
}

/// The consequence of the panic above in tidings itself: a DSN that
/// returns such a digest whole (Postfix returns messages under its
/// bounce_size_limit, 50 KB) makes `bounce::detect` panic, so the
/// listener answers 451 for ever (the store handle catches the panic)
/// and `tidings ingest` exits 101, and the failed subscriber is never
/// counted. filing.rs guards its parse with catch_unwind; detect.rs does
/// not.
#[test]
fn a_bounce_returning_the_mime_digest_of_a_forwarded_post_counts_its_recipient() {
    let bodies = digest_of(FORWARDED, "en");
    let mime = bodies
        .iter()
        .find(|body| body.mode == DigestMode::Mime)
        .expect("a MIME digest");
    let mut dsn = b"From: MAILER-DAEMON@mx.example.net\r\n\
        To: a-infos-en-bounces+reader=example.com@lists.example.org\r\n\
        Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/report; report-type=delivery-status; boundary=\"dsn\"\r\n\r\n\
        --dsn\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n\
        --dsn\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
        Final-Recipient: rfc822; reader@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
        --dsn\r\nContent-Type: message/rfc822\r\n\r\nFrom: a-infos-en@lists.example.org\r\n\
        To: reader@example.com\r\nSubject: A-Infos English Digest\r\nMIME-Version: 1.0\r\n"
        .to_vec();
    dsn.extend_from_slice(&mime.entity);
    dsn.extend_from_slice(b"\r\n--dsn--\r\n");
    let found =
        std::panic::catch_unwind(|| tidings::bounce::detect::detect(&dsn, "lists.example.org"))
            .expect("bounce::detect panicked");
    assert!(
        found
            .failures
            .iter()
            .any(|failure| failure.address == "reader@example.com" && failure.permanent),
        "{found:?}"
    );
}

/// Found by the first property (body text held "<script>" and an
/// attribute breaker): feeds carry them as text; JSON Feed's summary is
/// plain text, so "<script>" there is no markup.
#[test]
fn markup_in_a_body_is_text_in_every_feed_and_page() {
    let raw = b"From: Ana <ana@example.net>\r\nTo: a-infos-it@lists.example.org\r\n\
        Subject: (it) Markup\r\nMessage-ID: <markup@example.net>\r\n\r\n\
        \"><img src=x onerror=alert(1)>--\r\n<script>alert(1)</script>Ogni individuo\r\n";
    regression(whole_path(raw, &Envelope::default()));
}

/// Found by the first property: a body line of 70 hyphens, as forwarded
/// mail has, is no second preamble to a burster, which takes the first
/// (RFC 1153 escapes only lines of 30).
#[test]
fn a_body_line_of_seventy_hyphens_adds_no_post_to_the_plain_digest() {
    let raw = format!(
        "From: Ana <ana@example.net>\r\nTo: a-infos-en@lists.example.org\r\n\
         Subject: (en) Hyphens\r\nMessage-ID: <hyphens@example.net>\r\n\r\n\
         Before.\r\n{}\r\nAfter.\r\n{}\r\nEnd.\r\n",
        plain::PREAMBLE_END,
        plain::SEPARATOR
    );
    regression(whole_path(raw.as_bytes(), &Envelope::default()));
}

/// Found by the first property (a forward's quoted-printable note whose
/// charset was made to lie): the raw download leaves a base64 or
/// quoted-printable part that says UTF-16 or UTF-32 encoded, since `@` is
/// no byte of its own there, but when the bytes are ASCII after all
/// mail-parser (as a harvester would) reads them as text, address and all.
#[test]
fn a_part_lying_that_it_is_utf_32_keeps_no_address_in_the_raw_download() {
    let raw = b"From: Ana <ana@example.net>\r\nTo: a-infos-en@lists.example.org\r\n\
        Subject: (en) Charset lie\r\nMessage-ID: <lie@example.net>\r\nMIME-Version: 1.0\r\n\
        Content-Type: text/plain; charset=utf-32be\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\r\nWrite to ana=40example.net, see below.\r\n";
    let obfuscated = site::raw::obfuscate(raw);
    let message = MessageParser::default()
        .parse(&obfuscated)
        .expect("a message");
    let text = message.body_text(0).expect("a text part");
    assert!(!text.contains("ana@example.net"), "{text}");
}

/// Found by the first property once held posts were approved: a post
/// held because mail-parser panicked on its MIME tree (here a forward of
/// a forward, multipart > message/rfc822 > message/rfc822) and approved
/// by a moderator panics the archive build, because
/// `site::raw::obfuscate` parses it again, unguarded, for its raw
/// download. The daemon's refresh then fails on the same change every
/// time (the store handle catches the panic, the change stays listed), so
/// no page of the archive is updated again; `tidings site` exits 101.
#[test]
fn an_approved_post_whose_mime_could_not_be_parsed_gets_its_page() {
    let raw = b"From: Ana <ana@example.net>\r\nTo: a-infos-en@lists.example.org\r\n\
        Subject: (en) Forward of a forward\r\nMessage-ID: <broken@example.net>\r\n\
        MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
        --b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
        Write to ana=40example.net.\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n\
        Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ntext\r\n--b--\r\n";
    let filed = Filer::new(&world().config).file_message(raw, &Envelope::default(), NOW);
    assert_eq!(
        filed.reason.as_deref(),
        Some("the MIME structure could not be parsed")
    );
    // Held, then approved, then its page and raw download.
    regression(whole_path(raw, &Envelope::default()));
}
