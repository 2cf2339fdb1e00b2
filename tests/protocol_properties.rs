//! Hostile input at scale, the rest of issue 13, promise 6: what reaches
//! tidings besides posts, mutated, through the code that takes it.
//!
//! - Bounces: real ones (flufl.bounce's corpus, which `.ci/run` downloads
//!   into ../.cache, and a few written here) truncated, bytes flipped or
//!   put in, boundaries broken, charsets lied about, header fields
//!   flooded, recipient blocks flooded and their `Final-Recipient` and
//!   `Original-Recipient` made hostile (CR and LF, huge, another
//!   subscriber's address), sent to `LIST-bounces[+VERP]` through the
//!   routing table and `intake::handle_service_mail`, as the listeners and
//!   the pipe do.
//! - Mail commands to -request, -subscribe, -unsubscribe and -confirm+TOKEN
//!   (genuine, replayed, expired, altered and foreign tokens) and
//!   moderators' answers to -owner+approve-/reject-TOKEN, hand-written or
//!   real corpus messages, with random bytes in the command lines, forged
//!   From fields and automatic-mail markers, through the same function.
//! - SMTP and LMTP sessions (`ingest::session`, sans-IO) and NNTP sessions
//!   (`nntp::listener::converse` over an in-process duplex stream and a
//!   store of mutated posts) given random command sequences, overlong
//!   lines, NUL bytes, pipelined garbage and DATA/BDAT mixes, in reads of
//!   random sizes, then a valid transaction.
//!
//! Cases and seeds as in tests/properties.rs: a fixed seed and a bounded
//! number of cases a property ([`BOUNCE_CASES`]...), more with
//! `TIDINGS_PROPTEST_CASES=N`, other seeds with `TIDINGS_PROPTEST_SEED=N`
//! (or `random`). Each failure found is a named regression test at the
//! end of this file, with its minimal input inline.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mail_parser::MessageParser;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed, TestCaseError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use tidings::bounce::detect::detect;
use tidings::clock::Clock;
use tidings::config::{self, Config};
use tidings::ingest::intake::{handle_service_mail, Deferred};
use tidings::ingest::listener::Limits;
use tidings::ingest::route::{route, Route};
use tidings::ingest::session::{Delivered, Message, Next, Output, Protocol, Rules, Session};
use tidings::ingest::{self, Envelope, Filer, Outcome};
use tidings::nntp;
use tidings::post::Status;
use tidings::store::{self, bounces, posts, Connection, Handle};
use tidings::subscribe::{Asked, Service, Via};
use tidings::subscribers::Mode;
use tidings::templates::Templates;
use tidings::tokens::{Purpose, Secret};

/// When every message of these tests arrives: 2026-11-29.
const NOW: i64 = 1_796_000_000;

const DAY: i64 = 86_400;

/// Cases of each property by default: the whole file within a minute in a
/// debug build on two cores.
const BOUNCE_CASES: u32 = 160;
const COMMAND_CASES: u32 = 192;
const MODERATION_CASES: u32 = 128;
const SESSION_CASES: u32 = 256;
const NNTP_CASES: u32 = 192;

/// The seed every run starts from unless told otherwise.
const SEED: u64 = 0x7469_6469_6e67_7332; // "tidings2"

/// What one flood adds at most.
const MAX_GROWTH: usize = 1 << 20;

/// The message size limit of the sessions here: small, so that a message
/// over it costs a case little and memory can be seen not to follow it.
const SESSION_LIMIT: usize = 64 * 1024;

/// Live bytes a session may hold at its peak, whatever it is sent: the
/// message being received (up to the limit and one chunk more, as a
/// doubling vector), a read of input and change. Several megabytes of
/// overlong lines and oversize messages go through in a case.
const SESSION_MEMORY: usize = 1 << 20;

/// Reads of a listener are at most this large (its READ_BUFFER).
const READ_BUFFER: usize = 16 * 1024;

// ---------------------------------------------------------------------
// Configuration of the runs (as tests/properties.rs)

fn run_config(default_cases: u32) -> ProptestConfig {
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
        Ok("random") => RngSeed::Fixed(std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            0,
        )),
        Ok(_) => RngSeed::Fixed(env_number("TIDINGS_PROPTEST_SEED").unwrap_or(SEED)),
        Err(_) if std::env::var_os("PROPTEST_RNG_SEED").is_some() => run.rng_seed,
        Err(_) => RngSeed::Fixed(SEED),
    };
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

type Checked = Result<(), TestCaseError>;

fn fail(why: String) -> TestCaseError {
    TestCaseError::fail(why)
}

// ---------------------------------------------------------------------
// Memory: the bytes each thread has allocated and not freed, so that a
// session's peak can be read while it is fed megabytes.

mod memory {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// The system allocator, counting per thread.
    pub struct Counting;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    fn count(delta: isize) {
        // Const thread-locals without a destructor allocate nothing, so
        // the allocator may use them; after a thread's end, nothing counts.
        let _ = LIVE.try_with(|live| {
            let now = live.get() + delta;
            live.set(now);
            let _ = PEAK.try_with(|peak| {
                if now > peak.get() {
                    peak.set(now);
                }
            });
        });
    }

    #[allow(
        unsafe_code,
        reason = "a global allocator is unsafe to implement; this one only counts and calls System"
    )]
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let pointer = unsafe { System.alloc(layout) };
            if !pointer.is_null() {
                count(layout.size() as isize);
            }
            pointer
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let pointer = unsafe { System.alloc_zeroed(layout) };
            if !pointer.is_null() {
                count(layout.size() as isize);
            }
            pointer
        }

        unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
            unsafe { System.dealloc(pointer, layout) };
            count(-(layout.size() as isize));
        }

        unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let moved = unsafe { System.realloc(pointer, layout, new_size) };
            if !moved.is_null() {
                count(new_size as isize - layout.size() as isize);
            }
            moved
        }
    }

    /// What `work` returns, and the most bytes this thread had allocated
    /// during it beyond what it had before.
    pub fn peak_during<T>(work: impl FnOnce() -> T) -> (T, usize) {
        let start = LIVE.with(Cell::get);
        PEAK.with(|peak| peak.set(start));
        let out = work();
        let peak = PEAK.with(Cell::get);
        (out, (peak - start).max(0) as usize)
    }
}

#[global_allocator]
static ALLOCATOR: memory::Counting = memory::Counting;

// ---------------------------------------------------------------------
// The world every case shares

struct World {
    config: Config,
    templates: Templates,
    secret: Secret,
    /// Real bounces by name: flufl.bounce's, when downloaded, and ours.
    bounces: Vec<(String, Vec<u8>)>,
    /// ../shared/corpus messages up to 64 KB, by name.
    corpus: Vec<(String, Vec<u8>)>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let text = config::EMBEDDED_LISTS_TOML.replace(
            "base_url = \"http://127.0.0.1:8080/\"",
            "base_url = \"https://news.example.org/\"",
        );
        let config = config::parse(&text, "lists.toml", Path::new("/nonexistent/tidings"))
            .expect("the shipped configuration");
        let mut bounces: Vec<(String, Vec<u8>)> = OUR_BOUNCES
            .iter()
            .map(|(name, raw)| (name.to_string(), raw.to_vec()))
            .collect();
        match flufl_bounces() {
            Some(found) => bounces.extend(found),
            None => eprintln!(
                "the flufl.bounce corpus is not here (.ci/run downloads it into ../.cache; \
                 or set FLUFL_BOUNCE_DIR): the bounce property runs on its own bounces alone"
            ),
        }
        World {
            config,
            templates: Templates::shipped(),
            secret: Secret::from_bytes(&[7; 32]),
            bounces,
            corpus: corpus(),
        }
    })
}

/// The messages of flufl.bounce's tests/data, as tests/bounces_corpus.rs
/// finds them.
fn flufl_bounces() -> Option<Vec<(String, Vec<u8>)>> {
    let dir = match std::env::var("FLUFL_BOUNCE_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => {
            let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache");
            let mut found: Vec<PathBuf> = std::fs::read_dir(cache)
                .ok()?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| {
                    path.file_name()
                        .is_some_and(|name| name.to_string_lossy().starts_with("flufl_bounce-"))
                        && path.join("tests/data").is_dir()
                })
                .collect();
            found.sort();
            found.pop()?
        }
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("tests/data"))
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    let bounces: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|path| {
            let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            (format!("flufl/{name}"), raw)
        })
        .collect();
    (bounces.len() >= 100).then_some(bounces)
}

/// ../shared/corpus's real-world messages up to 64 KB.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/realworld");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let messages: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !(name.ends_with(".upstream") || name.ends_with(".md") || name.starts_with('.'))
        })
        .filter(|path| std::fs::metadata(path).is_ok_and(|m| m.len() <= 64 * 1024))
        .map(|path| {
            let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            let name = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            (name, raw)
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

/// The service every handler of these tests runs under.
fn service(world: &World) -> Service<'_> {
    Service {
        config: &world.config,
        templates: &world.templates,
        secret: &world.secret,
        now: NOW,
    }
}

/// Runs `work` in one transaction of `db`, as the daemon's writer does.
fn write<T>(
    db: &mut Connection,
    work: impl FnOnce(&store::Transaction<'_>) -> anyhow::Result<T>,
) -> Result<T, TestCaseError> {
    store::transaction(db, work).map_err(|error| fail(format!("the transaction failed: {error:#}")))
}

/// The rows `sql` selects from `db`, each made by `row`.
macro_rules! rows {
    ($db:expr, $sql:expr, $row:expr) => {{
        let sql: &str = $sql;
        let mut statement = $db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let found: Vec<_> = statement
            .query_map([], $row)
            .and_then(|rows| rows.collect())
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        found
    }};
}

// ---------------------------------------------------------------------
// Mutating messages

/// Bytes shown as a byte string literal.
#[derive(Clone, PartialEq)]
struct Bytes(Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.len() > 400 {
            return write!(
                f,
                "b\"{}\"... ({} bytes)",
                self.0[..400].escape_ascii(),
                self.0.len()
            );
        }
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// A place in a message, as a fraction of its length at the time.
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

/// A field of a delivery-status report (RFC 3464) whose values a bounce
/// mutation replaces.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ReportField {
    FinalRecipient,
    OriginalRecipient,
    Action,
    Status,
}

impl ReportField {
    fn name(self) -> &'static str {
        match self {
            ReportField::FinalRecipient => "Final-Recipient",
            ReportField::OriginalRecipient => "Original-Recipient",
            ReportField::Action => "Action",
            ReportField::Status => "Status",
        }
    }
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
    /// The first delimiter given twice.
    Twice,
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
    /// Bytes put in: CR, LF, NUL, separators, invalid UTF-8...
    Insert(At, Bytes),
    /// The nth header field repeated many times.
    Repeat { nth: u8, times: u16 },
    /// Header fields put on top, many times over.
    Add {
        name: &'static str,
        value: Bytes,
        times: u16,
    },
    /// Every field of this name taken out and one with this value put on top.
    Set { name: &'static str, value: Bytes },
    /// Every charset parameter made to say this.
    Charset(&'static str),
    /// The first boundary parameter and its delimiters played with.
    Boundary(BoundaryGame),
    /// The whole message forwarded as message/rfc822, `depth` times: in a
    /// multipart/mixed after a note, or as the whole body (`bare`).
    Forward { depth: u8, bare: bool },
    /// The message put inside multiparts nested this deep.
    Nest(u16),
    /// Every value of a report field replaced (a text bounce without the
    /// field gets a line naming the value).
    Report { field: ReportField, value: Bytes },
    /// This many recipient blocks put before the first `Final-Recipient`.
    Recipients(u16),
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
    b"\r\n.\r\n",
    b"caf\xe9 \xfcber \xff\xfe",
    b"\xc3\x28\xe2\x82",
    "\u{202e}\u{2066}\u{feff}\u{200b}".as_bytes(),
    b"\nFrom someone@example.org Sat Jan  3 01:05:34 1996\n",
    b"\x1b[31m\x7f\x08",
    b"\r\nFinal-Recipient: rfc822; bystander@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n",
    b"\r\nContent-Type: message/rfc822\r\n\r\n",
    b"\r\nContent-Type: message/delivery-status\r\n\r\n",
];

const CHARSETS: &[&str] = &[
    "utf-8",
    "us-ascii",
    "x-unknown-charset",
    "utf-7",
    "iso-2022-jp",
    "utf-16",
    "utf-32be",
    "",
    "\"utf-8",
    "koi8-r",
];

fn at() -> impl Strategy<Value = At> {
    any::<u16>().prop_map(At)
}

fn insert() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => (0..INSERTS.len()).prop_map(|n| Bytes(INSERTS[n].to_vec())),
        1 => proptest::collection::vec(any::<u8>(), 1..24).prop_map(Bytes),
    ]
}

fn boundary_game() -> impl Strategy<Value = BoundaryGame> {
    prop_oneof![
        Just(BoundaryGame::Unclosed),
        Just(BoundaryGame::NoDelimiters),
        Just(BoundaryGame::Unknown),
        Just(BoundaryGame::Empty),
        Just(BoundaryGame::Twice),
    ]
}

fn pick(values: &'static [&'static [u8]]) -> impl Strategy<Value = Bytes> {
    (0..values.len()).prop_map(move |n| Bytes(values[n].to_vec()))
}

/// The mutations every kind of message gets; `fields` are the header
/// fields set or added, with the values they take.
fn mutation(
    fields: &'static [(&'static str, &'static [&'static [u8]])],
) -> impl Strategy<Value = Mutation> {
    let field = (0..fields.len(), any::<u16>()).prop_map(move |(n, pick)| {
        let (name, values) = fields[n];
        (
            name,
            Bytes(values[usize::from(pick) % values.len()].to_vec()),
        )
    });
    prop_oneof![
        2 => at().prop_map(Mutation::Truncate),
        2 => (at(), any::<u8>()).prop_map(|(at, byte)| Mutation::Overwrite(at, byte)),
        2 => (at(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip(at, mask)),
        4 => (at(), insert()).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        1 => (any::<u8>(), 1..5_000u16).prop_map(|(nth, times)| Mutation::Repeat { nth, times }),
        2 => (field.clone(), prop_oneof![3 => Just(1u16), 1 => 2..5_000u16])
            .prop_map(|((name, value), times)| Mutation::Add { name, value, times }),
        3 => field.prop_map(|(name, value)| Mutation::Set { name, value }),
        2 => (0..CHARSETS.len()).prop_map(|n| Mutation::Charset(CHARSETS[n])),
        2 => boundary_game().prop_map(Mutation::Boundary),
        2 => (1..=4u8, any::<bool>()).prop_map(|(depth, bare)| Mutation::Forward { depth, bare }),
        1 => (1..300u16).prop_map(Mutation::Nest),
    ]
}

/// Where the header ends: the offset just after the last field's line
/// break, or the whole message.
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

/// The header fields, each with its continuation lines and line break.
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

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn is_named(field: &[u8], name: &str) -> bool {
    field.len() > name.len()
        && starts_with_ignore_case(field, name.as_bytes())
        && field[name.len()] == b':'
}

fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && find_ignore_case(haystack, needle).is_some()
}

fn replace_all(raw: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return raw.to_vec();
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = memchr::memmem::find(rest, from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
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
            raw.splice(field.end..field.end, copy.repeat(times));
        }
        Mutation::Add { name, value, times } => {
            let line = [name.as_bytes(), b": ", &value.0, eol].concat();
            let times = usize::from(*times).min(MAX_GROWTH / line.len());
            raw.splice(0..0, line.repeat(times));
        }
        Mutation::Set { name, value } => {
            for field in fields(raw).into_iter().rev() {
                if is_named(&raw[field.clone()], name) {
                    raw.drain(field);
                }
            }
            let line = [name.as_bytes(), b": ", &value.0, eol].concat();
            raw.splice(0..0, line);
        }
        Mutation::Charset(charset) => {
            let mut out = Vec::with_capacity(raw.len());
            let mut rest = &raw[..];
            while let Some(at) = find_ignore_case(rest, b"charset=") {
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
            *raw = out;
        }
        Mutation::Boundary(game) => play_boundary(raw, *game, eol),
        Mutation::Forward { depth, bare } => {
            for level in 0..*depth {
                forward(raw, *bare && level % 2 == 1, level, eol);
            }
        }
        Mutation::Nest(depth) => nest(raw, usize::from(*depth), eol),
        Mutation::Report { field, value } => report(raw, *field, &value.0, eol),
        Mutation::Recipients(count) => recipients(raw, usize::from(*count), eol),
    }
}

/// The first `boundary=` parameter's value.
fn first_boundary(raw: &[u8]) -> Option<Vec<u8>> {
    let at = find_ignore_case(raw, b"boundary=")? + 9;
    let rest = &raw[at..];
    let value = if let Some(quoted) = rest.strip_prefix(b"\"") {
        &quoted[..memchr::memchr(b'"', quoted)?]
    } else {
        let end = rest
            .iter()
            .position(|b| matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n'))
            .unwrap_or(rest.len());
        &rest[..end]
    };
    (!value.is_empty()).then(|| value.to_vec())
}

fn play_boundary(raw: &mut Vec<u8>, game: BoundaryGame, eol: &[u8]) {
    let Some(boundary) = first_boundary(raw) else {
        return;
    };
    let delimiter = [b"--", &boundary[..]].concat();
    let closing = [&delimiter[..], b"--"].concat();
    *raw = match game {
        BoundaryGame::Unclosed => replace_all(raw, &closing, b""),
        BoundaryGame::NoDelimiters => replace_all(raw, &delimiter, b""),
        BoundaryGame::Unknown => {
            let parameter = [b"boundary=", &boundary[..]].concat();
            replace_all(raw, &parameter, b"boundary=no-such-boundary-at-all")
        }
        BoundaryGame::Empty => {
            let parameter = [b"boundary=\"", &boundary[..], b"\""].concat();
            let bare = [b"boundary=", &boundary[..]].concat();
            replace_all(
                &replace_all(raw, &parameter, b"boundary=\"\""),
                &bare,
                b"boundary=",
            )
        }
        BoundaryGame::Twice => {
            let line = [&delimiter[..], eol].concat();
            match memchr::memmem::find(raw, &line) {
                Some(at) => {
                    let mut out = raw.clone();
                    out.splice(at..at, line.iter().copied());
                    out
                }
                None => raw.clone(),
            }
        }
    };
}

/// The message forwarded: the same From, To, Subject and Message-ID
/// outside (the address it was sent to stays the address it is sent to).
fn forward(raw: &mut Vec<u8>, bare: bool, level: u8, eol: &[u8]) {
    let outer: Vec<u8> = fields(raw)
        .into_iter()
        .filter(|field| {
            ["From", "To", "Subject", "Message-ID"]
                .iter()
                .any(|name| is_named(&raw[field.clone()], name))
        })
        .flat_map(|field| raw[field].to_vec())
        .collect();
    let boundary = format!("forward-{level}");
    let mut out = outer;
    out.extend_from_slice(b"MIME-Version: 1.0");
    out.extend_from_slice(eol);
    if bare {
        out.extend_from_slice(b"Content-Type: message/rfc822");
        out.extend_from_slice(eol);
        out.extend_from_slice(eol);
        out.extend_from_slice(raw);
    } else {
        let lines = [
            format!("Content-Type: multipart/mixed; boundary=\"{boundary}\""),
            String::new(),
            format!("--{boundary}"),
            "Content-Type: text/plain; charset=utf-8".into(),
            String::new(),
            "Forwarded.".into(),
            format!("--{boundary}"),
            "Content-Type: message/rfc822".into(),
            String::new(),
        ];
        for line in lines {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(raw);
        out.extend_from_slice(eol);
        out.extend_from_slice(format!("--{boundary}--").as_bytes());
        out.extend_from_slice(eol);
    }
    *raw = out;
}

/// The body put inside `depth` multiparts, each opened and never closed.
fn nest(raw: &mut Vec<u8>, depth: usize, eol: &[u8]) {
    let end = header_end(raw);
    let mut head = raw[..end].to_vec();
    let body = raw[end..].to_vec();
    head.extend_from_slice(b"Content-Type: multipart/mixed; boundary=\"n0\"");
    head.extend_from_slice(eol);
    let mut out = head;
    for level in 0..depth {
        out.extend_from_slice(eol);
        out.extend_from_slice(format!("--n{level}").as_bytes());
        out.extend_from_slice(eol);
        out.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=\"n{}\"", level + 1).as_bytes(),
        );
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(eol);
    out.extend_from_slice(&body);
    *raw = out;
}

/// Every value of `field` in the message replaced by `value`; where none
/// is, a text line naming the value goes at the start of the body.
fn report(raw: &mut Vec<u8>, field: ReportField, value: &[u8], eol: &[u8]) {
    let name = format!("{}:", field.name());
    let mut out = Vec::with_capacity(raw.len() + value.len());
    let mut found = false;
    let mut at = 0;
    while at < raw.len() {
        let line_end = memchr::memchr(b'\n', &raw[at..]).map_or(raw.len(), |n| at + n + 1);
        let line = &raw[at..line_end];
        if starts_with_ignore_case(line, name.as_bytes()) {
            found = true;
            out.extend_from_slice(name.as_bytes());
            out.push(b' ');
            out.extend_from_slice(value);
            let ending = line.len() - line.trim_ascii_end().len();
            out.extend_from_slice(&line[line.len() - ending..]);
        } else {
            out.extend_from_slice(line);
        }
        at = line_end;
    }
    if !found {
        let end = header_end(&out);
        let text = [
            eol,
            b"The following recipient failed permanently:",
            eol,
            eol,
            b"    ",
            value,
            eol,
            eol,
        ]
        .concat();
        let end = (end + line_break(&out).len()).min(out.len());
        out.splice(end..end, text);
    }
    *raw = out;
}

/// `count` recipient blocks, the first naming another subscriber, put
/// before the first `Final-Recipient` of the message.
fn recipients(raw: &mut Vec<u8>, count: usize, eol: &[u8]) {
    let Some(at) = find_ignore_case(raw, b"Final-Recipient:") else {
        return;
    };
    let mut blocks = Vec::new();
    for n in 0..count {
        let address = match n {
            0 => BYSTANDER.to_string(),
            n => format!("flood{n}@example.net"),
        };
        for line in [
            format!("Final-Recipient: rfc822; {address}"),
            "Action: failed".to_string(),
            "Status: 5.1.1".to_string(),
            String::new(),
        ] {
            blocks.extend_from_slice(line.as_bytes());
            blocks.extend_from_slice(eol);
        }
        if blocks.len() > MAX_GROWTH {
            break;
        }
    }
    raw.splice(at..at, blocks);
}

// ---------------------------------------------------------------------
// What tidings sends back: one well-formed message, no field it did not
// write.

/// The fields a notice of tidings has (src/subscribe/notice.rs).
const NOTICE_FIELDS: &[&str] = &[
    "date",
    "from",
    "to",
    "reply-to",
    "subject",
    "message-id",
    "in-reply-to",
    "references",
    "list-id",
    "auto-submitted",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
];

/// A notice as queued: CRLF lines only, no NUL, header lines of at most
/// 998 octets, each of [`NOTICE_FIELDS`] at most once, To the envelope
/// recipient alone.
fn check_notice(what: &str, message: &[u8], recipient: &str) -> Checked {
    for (at, byte) in message.iter().enumerate() {
        let bare_lf = *byte == b'\n' && (at == 0 || message[at - 1] != b'\r');
        let bare_cr = *byte == b'\r' && message.get(at + 1) != Some(&b'\n');
        if bare_lf || bare_cr || *byte == 0 {
            return Err(fail(format!(
                "{what}: a bare CR, LF or NUL at byte {at}: {}",
                String::from_utf8_lossy(
                    &message[at.saturating_sub(80)..(at + 80).min(message.len())]
                )
            )));
        }
    }
    let end = memchr::memmem::find(message, b"\r\n\r\n")
        .ok_or_else(|| fail(format!("{what}: no end of the header")))?;
    let head = std::str::from_utf8(&message[..end])
        .map_err(|_| fail(format!("{what}: a header not in UTF-8")))?;
    let mut seen: Vec<String> = Vec::new();
    let mut to = String::new();
    let mut current = String::new();
    for line in head.split("\r\n") {
        prop_assert!(
            line.len() <= 998,
            "{}: a header line of {} octets",
            what,
            line.len()
        );
        prop_assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "{}: a control character in {:?}",
            what,
            line
        );
        if line.starts_with([' ', '\t']) {
            if current == "to" {
                to.push_str(line);
            }
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| fail(format!("{what}: a header line that is no field: {line:?}")))?;
        let name = name.to_ascii_lowercase();
        prop_assert!(
            NOTICE_FIELDS.contains(&name.as_str()),
            "{}: a field tidings does not write: {:?}",
            what,
            line
        );
        prop_assert!(!seen.contains(&name), "{}: {} twice:\n{}", what, name, head);
        if name == "to" {
            to = value.to_string();
        }
        seen.push(name.clone());
        current = name;
    }
    prop_assert_eq!(to.trim(), recipient, "{}: To is not the recipient", what);
    let parsed = std::panic::catch_unwind(|| {
        MessageParser::default()
            .parse(message)
            .and_then(|m| m.to().map(|to| to.iter().count()))
    })
    .map_err(|_| fail(format!("{what}: mail-parser panicked on it")))?;
    prop_assert_eq!(parsed, Some(1), "{}: not one To address", what);
    Ok(())
}

/// The messages queued since outgoing row `after`: (kind, recipient,
/// envelope sender, message).
fn queued_since(db: &Connection, after: i64) -> Vec<(String, String, String, Vec<u8>)> {
    rows!(
        db,
        &format!(
            "SELECT kind, recipient, sender, message FROM outgoing WHERE id > {after} ORDER BY id"
        ),
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
    )
}

fn last_id(db: &Connection, table: &str) -> i64 {
    db.query_row(
        &format!("SELECT coalesce(max(id), 0) FROM {table}"),
        [],
        |row| row.get(0),
    )
    .unwrap_or_else(|e| panic!("{table}: {e}"))
}

/// Every subscription: (id, list, address, mode, next mode, removed,
/// disabled).
type Subscription = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

fn subscriptions(db: &Connection) -> Vec<Subscription> {
    rows!(
        db,
        "SELECT s.id, s.list_code, p.address, s.mode, s.next_mode, s.removed_at, s.disabled_at \
         FROM subscribers s JOIN people p ON p.id = s.person_id ORDER BY s.id",
        |row| Ok((
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
            row.get(6)?
        ))
    )
}

/// The service mail kept since row `after`: (route, message, outcome).
fn kept_since(db: &Connection, after: i64) -> Vec<(String, Vec<u8>, String)> {
    rows!(
        db,
        &format!("SELECT route, message, outcome FROM mail WHERE id > {after} ORDER BY id"),
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    )
}

/// Runs `work`, a panic made a failure of the case with its message.
fn unpanicking<T>(what: &str, work: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        fail(format!("{what} panicked: {text}"))
    })
}

// ---------------------------------------------------------------------
// 1. Bounces to LIST-bounces[+VERP]

/// The subscriber the VERP address of a bounce names.
const TARGET: &str = "reader@example.com";

/// Another subscriber of the same lists, whom a bounce to the target's
/// VERP address may name but must never score.
const BYSTANDER: &str = "bystander@example.org";

/// Bounces of our own, so the property has real shapes without the
/// download: a Postfix DSN, a qmail letter, a DSN for two recipients.
const OUR_BOUNCES: &[(&str, &[u8])] = &[
    (
        "ours/postfix-dsn",
        b"From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
        To: a-infos-en-bounces+reader=example.com@lists.example.org\r\n\
        Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/report; report-type=delivery-status; boundary=\"dsn\"\r\n\r\n\
        --dsn\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
        I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n\
        --dsn\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
        Final-Recipient: rfc822; reader@example.com\r\nOriginal-Recipient: rfc822;reader@example.com\r\n\
        Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n\
        --dsn\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: a-infos-en@lists.example.org\r\n\
        To: reader@example.com\r\nSubject: A-Infos English Digest\r\n\r\n--dsn--\r\n",
    ),
    (
        "ours/qmail-letter",
        b"From: MAILER-DAEMON@mx.example.com\r\nTo: a-infos-en-bounces+reader=example.com@lists.example.org\r\n\
        Subject: failure notice\r\n\r\nHi. This is the qmail-send program at mx.example.com.\r\n\
        I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\
        This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n\
        <reader@example.com>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n\
        --- Below this line is a copy of the message.\r\n\r\nFrom: a-infos-en@lists.example.org\r\n\
        To: reader@example.com\r\n\r\nThe digest.\r\n",
    ),
    (
        "ours/two-recipients",
        b"From: postmaster@example.net\r\nTo: a-infos-en-bounces@lists.example.org\r\n\
        Subject: Delivery Status Notification (Delay)\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n\
        --b\r\nContent-Type: text/plain\r\n\r\nDelivery is delayed; we will retry.\r\n\
        --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; example.net\r\n\r\n\
        Final-Recipient: rfc822; reader@example.com\r\nAction: delayed\r\nStatus: 4.4.7\r\n\r\n\
        Final-Recipient: rfc822; bystander@example.org\r\nAction: failed\r\nStatus: 5.2.2\r\n\r\n\
        --b--\r\n",
    ),
];

/// Which envelope recipient the bounce came to.
#[derive(Debug, Clone, PartialEq)]
enum Verp {
    /// `LIST-bounces@`: every subscribed address it names counts.
    None,
    /// `LIST-bounces+reader=example.com@`: the target.
    Target,
    /// The VERP address of nobody subscribed.
    Stranger,
    /// A detail written to mislead: CR/LF, another `=`, huge...
    Hostile(Bytes),
}

const VERP_DETAILS: &[&[u8]] = &[
    b"reader=example.com\r\nBcc: bystander@example.org",
    b"Reader=Example.COM",
    b"reader=example.com=evil.example",
    b"=example.com",
    b"reader%example.com",
    b"reader=example.com\0",
    b"reader=",
    b"bystander@example.org=example.com",
    b"\"reader\"=example.com",
    b"reader=example.com bystander=example.org",
];

/// Recipients a report may name: another subscriber, our own addresses,
/// CR and LF smuggling a block in, encodings, other address types.
const RECIPIENT_VALUES: &[&[u8]] = &[
    b"rfc822; bystander@example.org",
    b"rfc822; reader@example.com",
    b"rfc822; bystander@example.org\r\nAction: failed\r\nStatus: 5.1.1",
    b"rfc822; nobody@example.net\r\n\r\nFinal-Recipient: rfc822; bystander@example.org\r\nAction: failed\r\nStatus: 5.0.0",
    b"rfc822; nobody@example.net\rbystander@example.org",
    b"rfc822; <BYSTANDER@Example.ORG>",
    b"utf-8; bystander@example.org",
    b"rfc822; =?utf-8?q?bystander=40example.org?=",
    b"rfc822; \"bystander@example.org\"@evil.example",
    b"rfc822;",
    b"rfc822; bystander@example.org, reader@example.com",
    b"rfc822; postmaster@lists.example.org",
    b"rfc822; a-infos-en-bounces+bystander=example.org@lists.example.org",
    b"rfc822; bystander@example.org\0",
    b"x400; /G=bystander/S=example/",
];

const ACTION_VALUES: &[&[u8]] = &[
    b"failed",
    b"delayed",
    b"delivered",
    b"relayed",
    b"FAILED (permanent)",
    b"",
    b"failed\r\nFinal-Recipient: rfc822; bystander@example.org",
    b"expanded",
];

const STATUS_VALUES: &[&[u8]] = &[
    b"5.1.1",
    b"4.4.7",
    b"2.0.0",
    b"9.9.9",
    b"",
    b"5",
    b"5.1.1 (bystander@example.org)",
];

const BOUNCE_FIELDS: &[(&str, &[&[u8]])] = &[
    (
        "Content-Type",
        &[
            b"multipart/report; report-type=delivery-status; boundary=\"x\"",
            b"multipart/report",
            b"text/plain; charset=x-unknown",
            b"message/delivery-status",
            b"multipart/mixed; boundary=",
            b"message/rfc822",
        ],
    ),
    (
        "From",
        &[
            b"MAILER-DAEMON@mx.example.net",
            b"Mail Delivery System <postmaster@example.net>",
            b"bystander@example.org",
            b"=?utf-8?q?x=0D=0ABcc=3A_bystander=40example.org?= <x@example.net>",
            b"",
        ],
    ),
    (
        "To",
        &[
            b"a-infos-en-bounces+bystander=example.org@lists.example.org",
            b"bystander@example.org",
            b"reader@example.com",
        ],
    ),
    (
        "Subject",
        &[
            b"Undelivered Mail Returned to Sender",
            b"Warning: message delayed",
            b"failure notice",
            b"=?utf-8?b?!!broken?=",
            b"",
        ],
    ),
    (
        "Received",
        &[b"from mx.example.net by lists.example.org", b"x"],
    ),
    (
        "Content-Transfer-Encoding",
        &[b"base64", b"quoted-printable", b"x-uuencode"],
    ),
    ("Auto-Submitted", &[b"auto-replied"]),
];

fn report_value(field: ReportField) -> BoxedStrategy<Bytes> {
    match field {
        ReportField::FinalRecipient | ReportField::OriginalRecipient => prop_oneof![
            6 => pick(RECIPIENT_VALUES),
            1 => (1..200_000usize).prop_map(|n| Bytes(
                [b"rfc822; ".as_slice(), &b"a".repeat(n), b"@example.com"].concat()
            )),
        ]
        .boxed(),
        ReportField::Action => pick(ACTION_VALUES).boxed(),
        ReportField::Status => pick(STATUS_VALUES).boxed(),
    }
}

fn bounce_mutation() -> impl Strategy<Value = Mutation> {
    let field = prop_oneof![
        Just(ReportField::FinalRecipient),
        Just(ReportField::OriginalRecipient),
        Just(ReportField::Action),
        Just(ReportField::Status),
    ];
    prop_oneof![
        6 => mutation(BOUNCE_FIELDS),
        4 => field.prop_flat_map(|field| {
            report_value(field).prop_map(move |value| Mutation::Report { field, value })
        }),
        1 => (1..3_000u16).prop_map(Mutation::Recipients),
    ]
}

#[derive(Clone)]
struct BounceRecipe {
    bounce: usize,
    list: u8,
    verp: Verp,
    sender: bool,
    mutations: Vec<Mutation>,
}

impl std::fmt::Debug for BounceRecipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bounces = &world().bounces;
        f.debug_struct("BounceRecipe")
            .field("bounce", &bounces[self.bounce % bounces.len()].0)
            .field("list", &self.list_code())
            .field("verp", &self.verp)
            .field("sender", &self.sender)
            .field("mutations", &self.mutations)
            .finish()
    }
}

impl BounceRecipe {
    fn original(&self) -> &'static [u8] {
        let bounces = &world().bounces;
        &bounces[self.bounce % bounces.len()].1
    }

    fn bytes(&self) -> Vec<u8> {
        let mut raw = self.original().to_vec();
        for mutation in &self.mutations {
            mutate(&mut raw, mutation);
        }
        raw
    }

    fn list_code(&self) -> &'static str {
        let lists = &world().config.lists;
        &lists[usize::from(self.list) % lists.len()].code
    }

    /// The envelope recipient: the list's -bounces address, with the
    /// VERP detail if any.
    fn recipient(&self) -> String {
        let config = &world().config;
        let list = config.list(self.list_code()).expect("a list");
        let local = list.address.rsplit_once('@').expect("an address").0;
        let detail = match &self.verp {
            Verp::None => return format!("{local}-bounces@{}", config.site.domain),
            Verp::Target => b"reader=example.com".to_vec(),
            Verp::Stranger => b"nobody=example.net".to_vec(),
            Verp::Hostile(detail) => detail.0.clone(),
        };
        format!(
            "{local}-bounces+{}@{}",
            String::from_utf8_lossy(&detail),
            config.site.domain
        )
    }

    fn sender(&self) -> &'static str {
        match self.sender {
            false => "",
            true => "MAILER-DAEMON@mx.example.net",
        }
    }
}

fn verp() -> impl Strategy<Value = Verp> {
    prop_oneof![
        3 => Just(Verp::None),
        4 => Just(Verp::Target),
        1 => Just(Verp::Stranger),
        2 => pick(VERP_DETAILS).prop_map(Verp::Hostile),
        1 => (1..6_000usize).prop_map(|n| Verp::Hostile(Bytes(
            [&b"a".repeat(n)[..], b"=example.com"].concat()
        ))),
    ]
}

fn bounce_recipe() -> impl Strategy<Value = BounceRecipe> {
    (
        any::<usize>(),
        prop_oneof![4 => Just(0u8), 1 => any::<u8>()],
        verp(),
        any::<bool>(),
        proptest::collection::vec(bounce_mutation(), 0..6),
    )
        .prop_map(|(bounce, list, verp, sender, mutations)| BounceRecipe {
            bounce,
            list,
            verp,
            sender,
            mutations,
        })
}

/// A store where the target, the bystander, another and each address
/// the bounce `named_by` reports follow `list` and one other list, each with a
/// permanent bounce on each of the last four days: one more permanent
/// one today disables them, so any wrong score shows.
fn bounce_store(list: &str, named_by: &[u8]) -> Result<(Connection, Vec<String>), TestCaseError> {
    let world = world();
    let mut people = vec![
        TARGET.to_string(),
        BYSTANDER.to_string(),
        "flood1@example.net".to_string(),
    ];
    // As a subscriber's address is checked when they subscribe, by
    // whatever way, only the addresses that pass the check.
    let named = detect(named_by, &world.config.site.domain).failures;
    for failure in named.into_iter().take(8) {
        let Some(address) = tidings::subscribers::checked_address(&failure.address) else {
            continue;
        };
        if !people.contains(&address) {
            people.push(address);
        }
    }
    let other = world
        .config
        .lists
        .iter()
        .find(|other| other.code != list)
        .map(|other| other.code.clone())
        .expect("two lists");
    let mut db = store::open_in_memory().map_err(|e| fail(format!("a store: {e}")))?;
    write(&mut db, |tx| {
        for code in [list, other.as_str()] {
            let scoring = world.config.list(code).expect("a list").bounces;
            store::subscribers::add(tx, code, &people, Mode::Mime, NOW - 30 * DAY)?;
            for address in &people {
                for days in 1..=4 {
                    bounces::record(
                        tx,
                        &bounces::NewBounce {
                            list_code: code,
                            address,
                            permanent: true,
                            source: "smtp",
                            message_id: None,
                            reply: Some("550 5.1.1 earlier"),
                        },
                        scoring,
                        NOW - days * DAY,
                    )?;
                }
            }
        }
        Ok(())
    })?;
    Ok((db, people))
}

/// A new row of `bounces`: (list, subscriber id, address, permanent).
type BounceRow = (String, Option<i64>, String, bool);

/// Issue 13, promise 6, for bounces: whatever the bounce, it is read
/// without a panic and kept byte for byte; it is never published nor
/// answered; with a VERP address it scores at most the subscriber that
/// address names, and without one only addresses it reports; only the
/// subscribers it scores may be disabled, each told once in a
/// well-formed notice.
fn check_bounce(raw: &[u8], recipient: &str, sender: &str) -> Checked {
    let world = world();
    let config = &world.config;
    let Ok(route) = unpanicking("routing", || route(config, recipient))? else {
        // Refused at RCPT (550): the client keeps it.
        return Ok(());
    };
    let Route::Bounces { list, subscriber } = &route else {
        return Err(fail(format!("{recipient:?} routed to {route:?}")));
    };
    let (mut db, _) = bounce_store(list, raw)?;
    let subscriptions_before = subscriptions(&db);
    let (bounce_rows, messages, outgoing, mail) = (
        last_id(&db, "bounces"),
        last_id(&db, "bounce_messages"),
        last_id(&db, "outgoing"),
        last_id(&db, "mail"),
    );
    let service = service(world);
    let (outcome, published) = unpanicking("handling the bounce", || {
        write(&mut db, |tx| {
            handle_service_mail(tx, &service, &route, recipient, sender, raw)
        })
    })??;
    prop_assert!(
        published.is_none(),
        "a bounce published a post: {}",
        outcome
    );
    prop_assert_eq!(
        db.query_row("SELECT count(*) FROM posts", [], |row| row.get::<_, i64>(0))
            .map_err(|e| fail(e.to_string()))?,
        0,
        "a bounce became a post"
    );
    prop_assert!(
        kept_since(&db, mail).is_empty(),
        "a bounce kept as a command"
    );

    let kept: Vec<(String, String, String, Vec<u8>)> = rows!(
        db,
        &format!(
            "SELECT list_code, recipient, sender, message FROM bounce_messages WHERE id > {messages}"
        ),
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
    );
    prop_assert_eq!(kept.len(), 1, "the bounce is kept once: {}", outcome);
    prop_assert_eq!(&kept[0].0, list);
    prop_assert_eq!(&kept[0].1, recipient, "kept with the address it came to");
    prop_assert_eq!(&kept[0].2, sender);
    prop_assert!(kept[0].3 == raw, "the bounce is not kept byte for byte");

    let found = detect(raw, &config.site.domain);
    let scored: Vec<BounceRow> = rows!(
        db,
        &format!(
            "SELECT list_code, subscriber_id, address, permanent FROM bounces \
             WHERE id > {bounce_rows} ORDER BY id"
        ),
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
    );
    for row in &scored {
        prop_assert_eq!(&row.0, list, "a bounce scored another list: {:?}", row);
    }
    match subscriber {
        Some(verp) => {
            let expected = usize::from(!found.failures.is_empty());
            prop_assert_eq!(
                scored.len(),
                expected,
                "a VERP bounce scores its address once if it reports a failure: {:?}, found {:?}",
                scored,
                found
            );
            for row in &scored {
                prop_assert_eq!(&row.2, verp, "a VERP bounce scored another address");
                prop_assert_eq!(row.3, found.failures.iter().any(|f| f.permanent));
            }
        }
        None => {
            prop_assert_eq!(
                scored.len(),
                found.failures.len(),
                "{:?} {:?}",
                scored,
                found
            );
            for row in &scored {
                prop_assert!(
                    found.failures.iter().any(|f| f.address == row.2),
                    "scored {:?}, which the bounce does not report: {:?}",
                    row,
                    found
                );
            }
        }
    }

    // Only what was scored changed, and only from enabled to disabled.
    let subscriptions_after = subscriptions(&db);
    prop_assert_eq!(subscriptions_after.len(), subscriptions_before.len());
    let mut disabled = Vec::new();
    for (before, after) in subscriptions_before.iter().zip(&subscriptions_after) {
        if before == after {
            continue;
        }
        let scored_here = scored.iter().any(|row| row.1 == Some(before.0));
        prop_assert!(
            scored_here,
            "a subscription no failure named changed: {:?} -> {:?}",
            before,
            after
        );
        let mut expected = before.clone();
        expected.6 = Some(NOW);
        prop_assert_eq!(after, &expected, "a change other than disabling");
        if let Some(verp) = subscriber {
            prop_assert!(after.2.eq_ignore_ascii_case(verp), "disabled {:?}", after);
        }
        disabled.push(after.2.clone());
    }

    // Nothing answers a bounce; a disabled subscriber is told once.
    let queued = queued_since(&db, outgoing);
    let mut told: Vec<&str> = queued.iter().map(|q| q.1.as_str()).collect();
    told.sort_unstable();
    disabled.sort_unstable();
    prop_assert_eq!(
        &told,
        &disabled,
        "notices to {:?}, disabled {:?}",
        told,
        disabled
    );
    for (kind, recipient, _, message) in &queued {
        prop_assert_eq!(kind, "notice");
        check_notice("the disabled notice", message, recipient)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(run_config(BOUNCE_CASES))]

    /// Real bounces, mutated, through the routing table and the bounce
    /// reader into the store: kept, scored only against the subscriber
    /// their VERP address names (or the addresses they report), never
    /// published nor answered.
    #[test]
    fn a_mutated_bounce_is_kept_and_scores_only_the_subscriber_its_verp_address_names(
        recipe in bounce_recipe()
    ) {
        check_bounce(&recipe.bytes(), &recipe.recipient(), recipe.sender())?;
    }
}

// ---------------------------------------------------------------------
// 2. Mail commands to -request, -subscribe, -unsubscribe, -confirm+TOKEN

/// Follows the English and German lists.
const VICTIM: &str = "victim@example.com";

/// Asked to follow the English list in mode plain an hour ago: the
/// genuine token is theirs.
const PENDING: &str = "pending@example.net";

/// Asked and confirmed already: their token is a replay.
const DONE: &str = "done@example.net";

/// Asked eight days ago: their token has expired.
const LATE: &str = "late@example.net";

/// Which token a command mail carries.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// The pending request's, as sent.
    Genuine,
    /// The pending request's in capitals (tokens are read in any case).
    Capitals,
    /// A confirmed request's: used once already.
    Replayed,
    /// An expired request's.
    Expired,
    /// The genuine one with one character changed.
    Altered(At, u8),
    /// The pending request's id signed for leaving a list.
    Foreign,
    /// The pending request's id signed under another secret.
    OtherSecret,
    /// Whatever bytes.
    Garbage(Bytes),
}

/// The tokens of a command store.
#[derive(Clone)]
struct Tokens {
    genuine: String,
    replayed: String,
    expired: String,
    foreign: String,
    other_secret: String,
}

impl Tokens {
    fn text(&self, token: &Token) -> Vec<u8> {
        match token {
            Token::Genuine => self.genuine.clone().into_bytes(),
            Token::Capitals => self.genuine.to_ascii_uppercase().into_bytes(),
            Token::Replayed => self.replayed.clone().into_bytes(),
            Token::Expired => self.expired.clone().into_bytes(),
            Token::Altered(at, byte) => {
                let mut token = self.genuine.clone().into_bytes();
                let at = at.of(token.len());
                token[at] = if token[at] == *byte {
                    b'a' + (byte % 26)
                } else {
                    *byte
                };
                if token == self.genuine.as_bytes() {
                    token[at] = if token[at] == b'z' { b'a' } else { b'z' };
                }
                token
            }
            Token::Foreign => self.foreign.clone().into_bytes(),
            Token::OtherSecret => self.other_secret.clone().into_bytes(),
            Token::Garbage(bytes) => bytes.0.clone(),
        }
    }
}

fn token() -> impl Strategy<Value = Token> {
    prop_oneof![
        4 => Just(Token::Genuine),
        1 => Just(Token::Capitals),
        1 => Just(Token::Replayed),
        1 => Just(Token::Expired),
        2 => (at(), any::<u8>()).prop_map(|(at, byte)| Token::Altered(at, byte)),
        1 => Just(Token::Foreign),
        1 => Just(Token::OtherSecret),
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| Token::Garbage(Bytes(b))),
    ]
}

/// One line of a command mail.
#[derive(Debug, Clone, PartialEq)]
enum Line {
    Words(&'static str),
    Confirm(Token),
    Random(Bytes),
    Long(u32),
}

const COMMAND_WORDS: &[&str] = &[
    "subscribe",
    "subscribe plain",
    "subscribe bogus",
    "join html",
    "SUBSCRIBE post",
    "unsubscribe",
    "leave",
    "signoff",
    "set mode nomail",
    "set post",
    "mode summary",
    "set mode weekly",
    "help",
    "?",
    "who am i",
    "whoami",
    "info",
    "end",
    "stop",
    "-- ",
    "> unsubscribe",
    "Hello, please add me.",
    "\"unsubscribe\"",
    "confirm",
    "confirm a b",
    "",
];

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        6 => (0..COMMAND_WORDS.len()).prop_map(|n| Line::Words(COMMAND_WORDS[n])),
        2 => token().prop_map(Line::Confirm),
        2 => proptest::collection::vec(any::<u8>(), 0..60).prop_map(|b| Line::Random(Bytes(b))),
        1 => (100..200_000u32).prop_map(Line::Long),
    ]
}

fn line_bytes(line: &Line, tokens: &Tokens) -> Vec<u8> {
    match line {
        Line::Words(words) => words.as_bytes().to_vec(),
        Line::Confirm(token) => [b"confirm ".as_slice(), &tokens.text(token)].concat(),
        Line::Random(bytes) => bytes.0.clone(),
        Line::Long(length) => b"subscribe ".repeat(*length as usize / 10),
    }
}

/// Which address of the list the mail is sent to.
#[derive(Debug, Clone, PartialEq)]
enum CommandRoute {
    Request,
    Subscribe,
    Join,
    Unsubscribe,
    Leave,
    Confirm(Token),
}

/// What the mail is made from.
#[derive(Debug, Clone, PartialEq)]
enum Base {
    /// A command mail as a person writes one.
    Written,
    /// A real message of the corpus, the lines at the start of its body.
    Corpus(usize),
    /// A reply to the confirmation the pending request was sent, quoting it.
    Reply,
}

const SENDERS: &[&str] = &[
    "",
    "ana@example.org",
    "victim@example.com",
    "pending@example.net",
    "Victim@Example.COM",
    "victim@example.com\r\nBcc: evil@example.org",
    "a-infos-en@lists.example.org",
    "not an address",
];

const COMMAND_FIELDS: &[(&str, &[&[u8]])] = &[
    (
        "From",
        &[
            b"Ana <ana@example.org>",
            b"Victim <victim@example.com>",
            b"pending@example.net",
            b"=?utf-8?q?Carol=0D=0ABcc=3A_victim=40example.org?= <carol@example.org>",
            b"ana@example.org, victim@example.com",
            b"\"x\r\nBcc: y@z.org\" <x@example.org>",
            b"<>",
            b"victim@example.com\r\n\tBcc: evil@example.org",
            b"Jos\xe9 <jose@example.es>",
            b"a-infos-en-request@lists.example.org",
            b"=?utf-8?b?dmljdGltQGV4YW1wbGUuY29t?=",
            b"\"victim@example.com\" <ana@example.org>",
            b"ana@[192.0.2.1]",
            b"\"a b\"@example.org",
            b"",
        ],
    ),
    (
        "Subject",
        &[
            b"subscribe",
            b"Re: unsubscribe",
            b"set mode nomail",
            b"=?utf-8?q?unsubscribe=0D=0ABcc=3A_x=40example.org?=",
            b"help\r\nBcc: x@example.org",
            b"",
            b"\xff\xfe",
        ],
    ),
    (
        "Auto-Submitted",
        &[b"no", b"auto-replied", b"auto-generated"],
    ),
    ("Precedence", &[b"bulk", b"list", b"first-class"]),
    ("List-Id", &[b"<other.example.org>"]),
    ("X-Loop", &[b"lists.example.org"]),
    (
        "Message-ID",
        &[
            b"<a@b>\r\nBcc: x@example.org",
            b"<\0@x>",
            b"<a b@x>",
            b"no-brackets",
            b"=?utf-8?q?=3Ca=40b=3E=0D=0ABcc:_x=40y?=",
        ],
    ),
    (
        "Content-Type",
        &[
            b"text/html; charset=utf-8",
            b"multipart/alternative; boundary=",
            b"text/plain; charset=utf-16",
            b"message/rfc822",
        ],
    ),
    (
        "Content-Transfer-Encoding",
        &[b"base64", b"quoted-printable", b"8bit"],
    ),
    ("Reply-To", &[b"victim@example.com"]),
    ("Sender", &[b"victim@example.com"]),
];

#[derive(Clone)]
struct CommandRecipe {
    route: CommandRoute,
    list: u8,
    sender: usize,
    base: Base,
    subject: Line,
    lines: Vec<Line>,
    mutations: Vec<Mutation>,
}

impl std::fmt::Debug for CommandRecipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let base = match &self.base {
            Base::Corpus(n) => {
                let corpus = &world().corpus;
                format!("Corpus({})", corpus[n % corpus.len()].0)
            }
            other => format!("{other:?}"),
        };
        f.debug_struct("CommandRecipe")
            .field("route", &self.route)
            .field("list", &self.list_code())
            .field("sender", &SENDERS[self.sender % SENDERS.len()])
            .field("base", &base)
            .field("subject", &self.subject)
            .field("lines", &self.lines)
            .field("mutations", &self.mutations)
            .finish()
    }
}

fn command_recipe() -> impl Strategy<Value = CommandRecipe> {
    let route = prop_oneof![
        3 => Just(CommandRoute::Request),
        1 => Just(CommandRoute::Subscribe),
        1 => Just(CommandRoute::Join),
        1 => Just(CommandRoute::Unsubscribe),
        1 => Just(CommandRoute::Leave),
        3 => token().prop_map(CommandRoute::Confirm),
    ];
    let base = prop_oneof![
        3 => Just(Base::Written),
        2 => any::<usize>().prop_map(Base::Corpus),
        2 => Just(Base::Reply),
    ];
    (
        route,
        prop_oneof![4 => Just(0u8), 1 => any::<u8>()],
        any::<usize>(),
        base,
        line(),
        proptest::collection::vec(line(), 0..8),
        proptest::collection::vec(mutation(COMMAND_FIELDS), 0..4),
    )
        .prop_map(
            |(route, list, sender, base, subject, lines, mutations)| CommandRecipe {
                route,
                list,
                sender,
                base,
                subject,
                lines,
                mutations,
            },
        )
}

impl CommandRecipe {
    fn list_code(&self) -> &'static str {
        let lists = &world().config.lists;
        // Mostly the list the store's requests are for.
        &lists[usize::from(self.list) % lists.len()].code
    }

    fn sender(&self) -> &'static str {
        SENDERS[self.sender % SENDERS.len()]
    }

    fn recipient(&self, tokens: &Tokens) -> Vec<u8> {
        let config = &world().config;
        let list = config.list(self.list_code()).expect("a list");
        let local = list.address.rsplit_once('@').expect("an address").0;
        let suffix: Vec<u8> = match &self.route {
            CommandRoute::Request => b"-request".to_vec(),
            CommandRoute::Subscribe => b"-subscribe".to_vec(),
            CommandRoute::Join => b"-join".to_vec(),
            CommandRoute::Unsubscribe => b"-unsubscribe".to_vec(),
            CommandRoute::Leave => b"-leave".to_vec(),
            CommandRoute::Confirm(token) => [b"-confirm+".as_slice(), &tokens.text(token)].concat(),
        };
        [
            local.as_bytes(),
            &suffix,
            b"@",
            config.site.domain.as_bytes(),
        ]
        .concat()
    }

    fn bytes(&self, tokens: &Tokens, confirmation: &[u8]) -> Vec<u8> {
        let recipient = self.recipient(tokens);
        let subject = line_bytes(&self.subject, tokens);
        let mut body = Vec::new();
        for line in &self.lines {
            body.extend_from_slice(&line_bytes(line, tokens));
            body.extend_from_slice(b"\r\n");
        }
        let mut raw = match &self.base {
            Base::Written => [
                b"From: Ana <ana@example.org>\r\nTo: ".as_slice(),
                &recipient,
                b"\r\nSubject: ",
                &subject,
                b"\r\nMessage-ID: <command@example.org>\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\n\
                  MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
                &body,
            ]
            .concat(),
            Base::Corpus(n) => {
                let corpus = &world().corpus;
                let mut raw = corpus[n % corpus.len()].1.clone();
                mutate(
                    &mut raw,
                    &Mutation::Set {
                        name: "Subject",
                        value: Bytes(subject),
                    },
                );
                mutate(
                    &mut raw,
                    &Mutation::Set {
                        name: "To",
                        value: Bytes(recipient),
                    },
                );
                let end = header_end(&raw);
                let end = (end + line_break(&raw).len()).min(raw.len());
                raw.splice(end..end, body);
                raw
            }
            Base::Reply => {
                let mut raw = [
                    b"From: pending@example.net\r\nTo: ".as_slice(),
                    &recipient,
                    b"\r\nSubject: Re: ",
                    &subject,
                    b"\r\nIn-Reply-To: <notice@lists.example.org>\r\n\
                      Message-ID: <reply@example.net>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
                    &body,
                    b"\r\nOn Sunday, the list wrote:\r\n",
                ]
                .concat();
                for quoted in confirmation.split(|b| *b == b'\n') {
                    raw.extend_from_slice(b"> ");
                    raw.extend_from_slice(quoted);
                    raw.push(b'\n');
                }
                raw
            }
        };
        for mutation in &self.mutations {
            mutate(&mut raw, mutation);
        }
        raw
    }
}

/// A store where the victim follows two lists and three requests wait:
/// the pending one (the genuine token), a confirmed one and an expired
/// one; with the tokens and the confirmation the pending request was sent.
fn command_store() -> Result<(Connection, Tokens, Vec<u8>), TestCaseError> {
    let world = world();
    let mut db = store::open_in_memory().map_err(|e| fail(format!("a store: {e}")))?;
    let english = world.config.list("en").expect("the English list");
    let (tokens, confirmation) = write(&mut db, |tx| {
        store::subscribers::add(tx, "en", &[VICTIM.to_string()], Mode::Mime, NOW - 30 * DAY)?;
        store::subscribers::add(tx, "de", &[VICTIM.to_string()], Mode::Plain, NOW - 30 * DAY)?;
        let at = |now| Service {
            now,
            ..service(world)
        };
        let sent = |asked: Asked| match asked {
            Asked::Sent { token } => Ok(token),
            other => Err(anyhow::anyhow!("no confirmation sent: {other:?}")),
        };
        let expired = sent(at(NOW - 8 * DAY).ask(tx, english, LATE, Mode::Summary, Via::Mail)?)?;
        let replayed = sent(at(NOW - 2 * DAY).ask(tx, english, DONE, Mode::Html, Via::Web)?)?;
        at(NOW - 2 * DAY).confirm(tx, &replayed)?;
        let genuine = sent(at(NOW - 3_600).ask(tx, english, PENDING, Mode::Plain, Via::Mail)?)?;
        let id = world.secret.verify(&genuine, Purpose::Confirm, NOW)?;
        let confirmation: Vec<u8> = tx.query_row(
            "SELECT message FROM outgoing WHERE recipient = ?1 ORDER BY id DESC LIMIT 1",
            [PENDING],
            |row| row.get(0),
        )?;
        let tokens = Tokens {
            genuine,
            replayed,
            expired,
            foreign: world.secret.sign(Purpose::Unsubscribe, id, None),
            other_secret: Secret::from_bytes(&[8; 32]).sign(
                Purpose::Confirm,
                id,
                Some(NOW + 6 * DAY),
            ),
        };
        Ok((tokens, confirmation))
    })?;
    Ok((db, tokens, confirmation))
}

/// The addresses a command mail speaks for: its envelope sender and the
/// first From address as mail-parser reads it, lowercased.
fn identities(sender: &str, raw: &[u8]) -> Vec<String> {
    let mut identities = vec![sender.trim().to_ascii_lowercase()];
    let first_from = |message: mail_parser::Message<'_>| {
        message
            .from()
            .and_then(|from| from.first())
            .and_then(|from| from.address())
            .map(str::to_ascii_lowercase)
    };
    // A message whose MIME tree mail-parser cannot take speaks by its
    // header alone.
    let from = std::panic::catch_unwind(|| MessageParser::new().parse(raw).and_then(first_from))
        .or_else(|_| {
            std::panic::catch_unwind(|| {
                MessageParser::new().parse_headers(raw).and_then(first_from)
            })
        });
    if let Ok(Some(from)) = from {
        identities.push(from);
    }
    identities
}

/// A request: (id, address, confirmed at).
type RequestRow = (i64, String, Option<i64>);

fn requests(db: &Connection) -> Vec<RequestRow> {
    rows!(
        db,
        "SELECT id, address, confirmed_at FROM requests ORDER BY id",
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    )
}

/// Issue 13, promise 6, for mail commands: whatever the mail, it is
/// handled without a panic and kept with what was done; nobody is
/// subscribed but the pending request's address, and only when its
/// genuine token was in the mail; a subscription leaves or changes mode
/// only for the address the mail speaks for (docs/SECURITY.md: mail
/// commands act on the From address); requests are made only for that
/// address; at most one answer goes, to that address, never to a null
/// sender, well-formed and with no field of the mail's making.
fn check_command(recipient: &[u8], sender: &str, raw: &[u8], tokens: &Tokens) -> Checked {
    let world = world();
    let recipient = String::from_utf8_lossy(recipient).into_owned();
    let Ok(route) = unpanicking("routing", || route(&world.config, &recipient))? else {
        return Ok(());
    };
    prop_assert!(route.is_command(), "{:?} routed to {:?}", recipient, route);
    let (mut db, _, _) = command_store()?;
    let (subscriptions_before, requests_before) = (subscriptions(&db), requests(&db));
    let (outgoing, mail) = (last_id(&db, "outgoing"), last_id(&db, "mail"));
    let service = service(world);
    let (outcome, published) = unpanicking("handling the command mail", || {
        write(&mut db, |tx| {
            handle_service_mail(tx, &service, &route, &recipient, sender, raw)
        })
    })??;
    prop_assert!(published.is_none());

    let kept = kept_since(&db, mail);
    prop_assert_eq!(kept.len(), 1, "the mail is kept once: {}", &outcome);
    prop_assert_eq!(&kept[0].0, route.kind().trim_start_matches('-'));
    prop_assert!(kept[0].1 == raw, "the mail is not kept byte for byte");
    prop_assert_eq!(&kept[0].2, &outcome);

    let identities = identities(sender, raw);
    let genuine = tokens.genuine.as_bytes();
    let token_given =
        contains_ignore_case(recipient.as_bytes(), genuine) || contains_ignore_case(raw, genuine);
    let pending_id = world
        .secret
        .verify(&tokens.genuine, Purpose::Confirm, NOW)
        .map_err(|e| fail(e.to_string()))?;
    let subscriptions_after = subscriptions(&db);
    for after in &subscriptions_after {
        let before = subscriptions_before.iter().find(|b| b.0 == after.0);
        if before == Some(after) {
            continue;
        }
        if after.2 == PENDING && after.5.is_none() {
            prop_assert!(
                token_given,
                "{} subscribed without the token: {}",
                PENDING,
                &outcome
            );
            prop_assert_eq!((after.1.as_str(), after.3.as_str()), ("en", "plain"));
            continue;
        }
        let before = before.ok_or_else(|| {
            fail(format!(
                "a subscription came from nowhere: {after:?} ({outcome})"
            ))
        })?;
        prop_assert!(
            identities.contains(&after.2.to_ascii_lowercase()),
            "a subscription of {} changed by mail from {:?}: {:?} -> {:?} ({})",
            after.2,
            identities,
            before,
            after,
            &outcome
        );
        prop_assert_eq!(
            (&after.1, &after.2, after.6),
            (&before.1, &before.2, before.6)
        );
    }
    let requests_after = requests(&db);
    for after in &requests_after {
        match requests_before.iter().find(|b| b.0 == after.0) {
            None => prop_assert!(
                identities.contains(&after.1.to_ascii_lowercase()),
                "a request for {} by mail from {:?}",
                after.1,
                identities
            ),
            Some(before) if before != after => {
                prop_assert!(
                    token_given && after.0 == pending_id,
                    "{:?} confirmed",
                    after
                );
            }
            Some(_) => {}
        }
    }

    let queued = queued_since(&db, outgoing);
    prop_assert!(queued.len() <= 1, "{} answers to one mail", queued.len());
    if sender.trim().is_empty() {
        prop_assert!(queued.is_empty(), "a null sender was answered");
    }
    for (kind, to, envelope_sender, message) in &queued {
        prop_assert_eq!(kind, "notice");
        prop_assert!(
            identities.contains(to),
            "an answer to {} for mail from {:?}",
            to,
            identities
        );
        prop_assert!(
            !envelope_sender.contains(|c: char| c.is_control() || c.is_whitespace()),
            "the envelope sender {:?}",
            envelope_sender
        );
        check_notice("the answer", message, to)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(run_config(COMMAND_CASES))]

    /// Command mails, hand-written, real or replies to a confirmation,
    /// with random bytes in their lines and mutated, to each command
    /// address: subscribing only by the genuine token, changes only for
    /// the address the mail speaks for, one well-formed answer at most.
    #[test]
    fn a_mutated_command_mail_changes_no_subscription_without_its_token_and_answers_cleanly(
        recipe in command_recipe()
    ) {
        let (_, tokens, confirmation) = command_store()?;
        let raw = recipe.bytes(&tokens, &confirmation);
        check_command(&recipe.recipient(&tokens), recipe.sender(), &raw, &tokens)?;
    }
}

// ---------------------------------------------------------------------
// 2b. Moderators' answers to -owner+approve-TOKEN / -owner+reject-TOKEN

/// The held posts of a moderation store, and one published.
const HELD_POSTS: &[(&str, &str, &str)] = &[
    // (list it is sent to, subject, its state)
    ("en", "(en) Held for the English moderators", "held"),
    ("de", "(de) Held for the German moderators", "held"),
    ("en", "(en) Published already", "published"),
    ("en", "(xx) A language no list serves", "held"),
];

/// Which post a token names, by its place in [`HELD_POSTS`].
#[derive(Debug, Clone, PartialEq)]
enum ModerationToken {
    /// The post's token for the route's action, or the other action's.
    Genuine {
        post: u8,
        same_action: bool,
    },
    /// The post's token, expired.
    Expired(u8),
    /// The post's token with a character changed.
    Altered(u8, At, u8),
    /// The post's id signed for a confirmation.
    Confirm(u8),
    Garbage(Bytes),
}

fn moderation_token() -> impl Strategy<Value = ModerationToken> {
    let post = 0..HELD_POSTS.len() as u8;
    prop_oneof![
        6 => (post.clone(), prop_oneof![4 => Just(true), 1 => Just(false)])
            .prop_map(|(post, same_action)| ModerationToken::Genuine { post, same_action }),
        1 => post.clone().prop_map(ModerationToken::Expired),
        2 => (post.clone(), at(), any::<u8>()).prop_map(|(p, at, b)| ModerationToken::Altered(p, at, b)),
        1 => post.prop_map(ModerationToken::Confirm),
        1 => proptest::collection::vec(any::<u8>(), 1..40).prop_map(|b| ModerationToken::Garbage(Bytes(b))),
    ]
}

/// A moderation store: the posts of [`HELD_POSTS`] filed a day ago, by
/// id, with their approval and rejection tokens.
struct Moderation {
    db: Connection,
    ids: Vec<i64>,
    tokens: Vec<(String, String)>,
}

fn moderation_store() -> Result<Moderation, TestCaseError> {
    let world = world();
    let config = &world.config;
    let received_at = NOW - DAY;
    let batch: Vec<_> = HELD_POSTS
        .iter()
        .enumerate()
        .map(|(n, (list, subject, state))| {
            let address = &config.list(list).expect("a list").address;
            let raw = format!(
                "From: Author <author@example.net>\r\nTo: {address}\r\nSubject: {subject}\r\n\
                 Message-ID: <held{n}@example.net>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\n\
                 The text of a post that waits for a moderator.\r\n"
            );
            let envelope = Envelope {
                list_code: None,
                recipients: vec![address.clone()],
            };
            let mut post = Filer::new(config).file_message(raw.as_bytes(), &envelope, received_at);
            post.post.status = match *state {
                "held" => Status::Held,
                _ => Status::Published,
            };
            post
        })
        .collect();
    let mut db = store::open_in_memory().map_err(|e| fail(format!("a store: {e}")))?;
    let outcomes = write(&mut db, |tx| Ok(ingest::commit(tx, &batch)?))?;
    let ids: Vec<i64> = outcomes
        .iter()
        .map(|outcome| match outcome {
            Outcome::Stored { id } | Outcome::Held { id, .. } => Ok(*id),
            other => Err(fail(format!("not stored: {other:?}"))),
        })
        .collect::<Result<_, _>>()?;
    let service = service(world);
    let tokens = ids
        .iter()
        .map(|id| tidings::moderation::tokens(&service, *id, received_at))
        .collect();
    Ok(Moderation { db, ids, tokens })
}

#[derive(Clone, Debug)]
struct ModerationRecipe {
    list: u8,
    approve: bool,
    token: ModerationToken,
    sender: usize,
    corpus: Option<usize>,
    lines: Vec<Line>,
    mutations: Vec<Mutation>,
}

fn moderation_recipe() -> impl Strategy<Value = ModerationRecipe> {
    (
        prop_oneof![3 => Just(0u8), 2 => Just(1u8), 1 => any::<u8>()],
        any::<bool>(),
        moderation_token(),
        any::<usize>(),
        prop_oneof![3 => Just(None), 1 => any::<usize>().prop_map(Some)],
        proptest::collection::vec(line(), 0..6),
        proptest::collection::vec(mutation(COMMAND_FIELDS), 0..4),
    )
        .prop_map(|(list, approve, token, sender, corpus, lines, mutations)| {
            ModerationRecipe {
                list,
                approve,
                token,
                sender,
                corpus,
                lines,
                mutations,
            }
        })
}

impl ModerationRecipe {
    fn list_code(&self) -> &'static str {
        let lists = &world().config.lists;
        match self.list {
            0 => "en",
            1 => "de",
            n => &lists[usize::from(n) % lists.len()].code,
        }
    }

    fn token(&self, store: &Moderation) -> Vec<u8> {
        let secret = &world().secret;
        let own = |post: &u8, same: bool| {
            let (approve, reject) = &store.tokens[usize::from(*post)];
            match self.approve == same {
                true => approve.clone(),
                false => reject.clone(),
            }
        };
        let purpose = match self.approve {
            true => Purpose::Approve,
            false => Purpose::Reject,
        };
        match &self.token {
            ModerationToken::Genuine { post, same_action } => own(post, *same_action).into_bytes(),
            ModerationToken::Expired(post) => secret
                .sign(purpose, store.ids[usize::from(*post)], Some(NOW - 2 * DAY))
                .into_bytes(),
            ModerationToken::Altered(post, at, byte) => {
                let mut token = own(post, true).into_bytes();
                let at = at.of(token.len());
                token[at] = if token[at] == *byte {
                    b'a' + (byte % 26)
                } else {
                    *byte
                };
                token
            }
            ModerationToken::Confirm(post) => secret
                .sign(
                    Purpose::Confirm,
                    store.ids[usize::from(*post)],
                    Some(NOW + DAY),
                )
                .into_bytes(),
            ModerationToken::Garbage(bytes) => bytes.0.clone(),
        }
    }

    fn recipient(&self, store: &Moderation) -> Vec<u8> {
        let config = &world().config;
        let list = config.list(self.list_code()).expect("a list");
        let local = list.address.rsplit_once('@').expect("an address").0;
        let action: &[u8] = match self.approve {
            true => b"-owner+approve-",
            false => b"-owner+reject-",
        };
        [
            local.as_bytes(),
            action,
            &self.token(store),
            b"@",
            config.site.domain.as_bytes(),
        ]
        .concat()
    }

    fn sender(&self) -> &'static str {
        SENDERS[self.sender % SENDERS.len()]
    }

    fn bytes(&self, store: &Moderation) -> Vec<u8> {
        let tokens = Tokens {
            genuine: store.tokens[0].0.clone(),
            replayed: store.tokens[0].1.clone(),
            expired: store.tokens[1].0.clone(),
            foreign: store.tokens[2].0.clone(),
            other_secret: store.tokens[3].1.clone(),
        };
        let recipient = self.recipient(store);
        let mut body = Vec::new();
        for line in &self.lines {
            body.extend_from_slice(&line_bytes(line, &tokens));
            body.extend_from_slice(b"\r\n");
        }
        let mut raw = match self.corpus {
            None => [
                b"From: A Moderator <mod@example.org>\r\nTo: ".as_slice(),
                &recipient,
                b"\r\nSubject: Re: Held for moderation\r\nMessage-ID: <answer@example.org>\r\n\r\n",
                &body,
                b"\r\n> Held for moderation: (en) Held for the English moderators\r\n",
            ]
            .concat(),
            Some(n) => {
                let corpus = &world().corpus;
                let mut raw = corpus[n % corpus.len()].1.clone();
                mutate(
                    &mut raw,
                    &Mutation::Set {
                        name: "To",
                        value: Bytes(recipient),
                    },
                );
                let end = header_end(&raw);
                let end = (end + line_break(&raw).len()).min(raw.len());
                raw.splice(end..end, body);
                raw
            }
        };
        for mutation in &self.mutations {
            mutate(&mut raw, mutation);
        }
        raw
    }
}

/// Issue 13, promise 6, for moderators' answers: whatever the answer, it
/// is handled without a panic and kept; a post changes only when the
/// route carries that post's genuine token for that action, sent to the
/// list it waits in, and then only to what the action says; at most the
/// refused post's author is told, in a well-formed notice.
fn check_moderation(recipient: &[u8], sender: &str, raw: &[u8], store: Moderation) -> Checked {
    let world = world();
    let Moderation {
        mut db,
        ids,
        tokens,
    } = store;
    let recipient = String::from_utf8_lossy(recipient).into_owned();
    let Ok(route) = unpanicking("routing", || route(&world.config, &recipient))? else {
        return Ok(());
    };
    let Route::Moderate {
        list,
        approve,
        token,
    } = &route
    else {
        return Err(fail(format!("{recipient:?} routed to {route:?}")));
    };
    let status = |db: &Connection, id: i64| {
        posts::get(db, id)
            .map_err(|e| fail(e.to_string()))?
            .map(|post| (post.status, post.list_code.clone()))
            .ok_or_else(|| fail(format!("post {id} is gone")))
    };
    let before: Vec<_> = ids
        .iter()
        .map(|id| status(&db, *id))
        .collect::<Result<_, _>>()?;
    let (outgoing, mail) = (last_id(&db, "outgoing"), last_id(&db, "mail"));
    let service = service(world);
    let (outcome, published) = unpanicking("handling the moderator's answer", || {
        write(&mut db, |tx| {
            handle_service_mail(tx, &service, &route, &recipient, sender, raw)
        })
    })??;
    let kept = kept_since(&db, mail);
    prop_assert_eq!(kept.len(), 1, "the answer is kept once: {}", &outcome);
    prop_assert_eq!(&kept[0].0, "moderate");
    prop_assert!(kept[0].1 == raw, "the answer is not kept byte for byte");

    let mut changed = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let after = status(&db, *id)?;
        if after == before[n] {
            continue;
        }
        let (approval, rejection) = &tokens[n];
        let genuine = match approve {
            true => approval,
            false => rejection,
        };
        prop_assert!(
            token.eq_ignore_ascii_case(genuine),
            "post {} changed by a token not its own for this action: {:?} -> {:?} ({})",
            id,
            before[n],
            after,
            &outcome
        );
        let sent_to = HELD_POSTS[n].0;
        prop_assert_eq!(list, sent_to, "post {} decided through another list", id);
        prop_assert_eq!(before[n].0, Status::Held, "post {} was not held", id);
        let expected = match approve {
            true => Status::Published,
            false => Status::Rejected,
        };
        prop_assert_eq!(after.0, expected, "post {}: {}", id, &outcome);
        changed.push((n, after));
    }
    prop_assert!(changed.len() <= 1, "one answer decided {:?}", changed);
    let published_list = changed
        .iter()
        .find(|(_, after)| after.0 == Status::Published)
        .and_then(|(_, after)| after.1.clone());
    prop_assert_eq!(published, published_list, "{}", &outcome);

    let queued = queued_since(&db, outgoing);
    let refused = changed.iter().any(|(_, after)| after.0 == Status::Rejected);
    prop_assert!(
        queued.len() <= usize::from(refused),
        "{} messages queued by an answer ({})",
        queued.len(),
        &outcome
    );
    for (kind, to, _, message) in &queued {
        prop_assert_eq!(kind, "notice");
        prop_assert_eq!(to, "author@example.net");
        check_notice("the refusal", message, to)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(run_config(MODERATION_CASES))]

    /// Moderators' answers, with genuine, expired, altered, foreign and
    /// garbage tokens and mutated mail: a post is decided only by its own
    /// token for the action, once; nothing else changes.
    #[test]
    fn a_mutated_moderator_s_answer_decides_only_the_post_its_token_names(
        recipe in moderation_recipe()
    ) {
        let store = moderation_store()?;
        let (recipient, raw) = (recipe.recipient(&store), recipe.bytes(&store));
        check_moderation(&recipient, recipe.sender(), &raw, store)?;
    }
}

// ---------------------------------------------------------------------
// 3. SMTP and LMTP sessions

/// Paths of MAIL FROM and RCPT TO: ours, others', broken, hostile.
const PATHS: &[&[u8]] = &[
    b"<ana@example.org>",
    b"<>",
    b"<a-infos-en@lists.example.org>",
    b"<postmaster>",
    b"<a-infos-en-request@lists.example.org>",
    b"<a-infos-en-bounces+reader=example.com@lists.example.org>",
    b"<nobody@lists.example.org>",
    b"<x@gmail.com>",
    b"<a\0b@lists.example.org>",
    b"no-brackets@lists.example.org",
    b"<@relay.example:a-infos-en@lists.example.org>",
    "<\u{fc}n\u{ef}code@lists.example.org>".as_bytes(),
    b"<a b@lists.example.org>",
    b"<\"q\rx\"@lists.example.org>",
    b"<a-infos-en@lists.example.org",
    b"<a-infos-en-confirm+abc@lists.example.org>",
    b"<a-infos-en-owner+approve-abc@lists.example.org>",
    b"<\xff\xfe@lists.example.org>",
];

const PARAMETERS: &[&[u8]] = &[
    b"",
    b" SIZE=100",
    b" SIZE=99999999999999999999999",
    b" SIZE=",
    b" BODY=8BITMIME",
    b" SMTPUTF8",
    b" RET=FULL ENVID=x",
    b" XYZ=1",
    b" NOTIFY=NEVER",
];

const VERBS: &[&[u8]] = &[
    b"RSET",
    b"NOOP",
    b"NOOP hello",
    b"QUIT",
    b"VRFY postmaster",
    b"HELP",
    b"STARTTLS",
    b"AUTH PLAIN AGFuYQBzZWNyZXQ=",
    b"EXPN a-infos-en",
    b"ETRN lists.example.org",
    b"XFORWARD ADDR=192.0.2.1 HELO=mail.example.org",
    b"XFORWARD ADDR=[UNAVAILABLE] NAME=x PROTO=ESMTP",
    b"XFORWARD BOGUS=1",
    b"XFORWARD ADDR=+zz",
    b"DATA",
    b"BDAT 0 LAST",
    b"HELO",
    b"MAIL",
    b"RCPT",
    b"mail from:<ana@example.org>",
    b"",
];

/// What a message sent after DATA is made of.
#[derive(Debug, Clone, PartialEq)]
enum Content {
    /// A small post, with dot-stuffing games.
    Post(u8),
    /// Random bytes.
    Random(Bytes),
    /// This many bytes of lines: over the size limit when large.
    Long(u32),
}

/// Small messages: dots that must be un-stuffed, lines that look like
/// the end and are not, lone CRs and LFs, NUL and 8-bit bytes.
const POSTS: &[&[u8]] = &[
    b"From: Ana <ana@example.org>\r\nTo: a-infos-en@lists.example.org\r\nSubject: (en) Hi\r\n\r\nText.\r\n",
    b"Subject: dots\r\n\r\n..stuffed\r\n.\rnot the end\r\n. \r\n",
    b"Subject: lone\r\n\r\nA lone LF\nthen .\nand a lone CR\r.\r\n",
    b"Subject: nul\r\n\r\nA NUL \0 and \xff\xfe 8-bit\r\n",
    b"\r\n",
    b"",
    b"Subject: end early\r\n\r\nbody\r\n.\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<a-infos-en@lists.example.org>\r\n",
];

/// One piece of a client's input.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Hello {
        verb: u8,
        host: Bytes,
    },
    Mail {
        path: u8,
        parameters: u8,
    },
    Rcpt {
        path: u8,
    },
    Data {
        content: Content,
        end: u8,
    },
    /// A hello, a sender, a list recipient and DATA with this content.
    Envelope {
        content: Content,
        end: u8,
    },
    Bdat {
        size: u16,
        last: bool,
    },
    Verb(u8),
    Garbage(Bytes),
    Overlong {
        bytes: u32,
        ended: bool,
    },
    Raw(Bytes),
}

const ENDS: &[&[u8]] = &[
    b"\r\n.\r\n",
    b".\r\n",
    b"\n.\n",
    b"\r\n.\n",
    b"",
    b"\r\n..\r\n",
];

fn step() -> impl Strategy<Value = Step> {
    let host = prop_oneof![
        3 => Just(Bytes(b"client.example.net".to_vec())),
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes),
    ];
    let content = prop_oneof![
        4 => (0..POSTS.len() as u8).prop_map(Content::Post),
        1 => proptest::collection::vec(any::<u8>(), 0..400).prop_map(|b| Content::Random(Bytes(b))),
        1 => (1..3_000_000u32).prop_map(Content::Long),
    ];
    prop_oneof![
        3 => (0..4u8, host).prop_map(|(verb, host)| Step::Hello { verb, host }),
        3 => (0..PATHS.len() as u8, 0..PARAMETERS.len() as u8)
            .prop_map(|(path, parameters)| Step::Mail { path, parameters }),
        4 => (0..PATHS.len() as u8).prop_map(|path| Step::Rcpt { path }),
        3 => (content.clone(), 0..ENDS.len() as u8).prop_map(|(content, end)| Step::Data { content, end }),
        3 => (content, 0..ENDS.len() as u8).prop_map(|(content, end)| Step::Envelope { content, end }),
        1 => (any::<u16>(), any::<bool>()).prop_map(|(size, last)| Step::Bdat { size, last }),
        3 => (0..VERBS.len() as u8).prop_map(Step::Verb),
        2 => proptest::collection::vec(any::<u8>(), 0..80).prop_map(|b| Step::Garbage(Bytes(b))),
        1 => (4_000..2_000_000u32, any::<bool>())
            .prop_map(|(bytes, ended)| Step::Overlong { bytes, ended }),
        1 => prop_oneof![
            Just(Bytes(b"\n".to_vec())),
            Just(Bytes(b"\r".to_vec())),
            Just(Bytes(b"\0".to_vec())),
            Just(Bytes(b"\r\n".to_vec())),
        ]
        .prop_map(Step::Raw),
    ]
}

fn step_bytes(step: &Step, protocol: Protocol, out: &mut Vec<u8>) {
    let crlf = |out: &mut Vec<u8>| out.extend_from_slice(b"\r\n");
    match step {
        Step::Envelope { content, end } => {
            out.extend_from_slice(match protocol {
                Protocol::Smtp => b"EHLO client.example.net\r\n",
                Protocol::Lmtp => b"LHLO client.example.net\r\n",
            });
            out.extend_from_slice(
                b"MAIL FROM:<ana@example.org>\r\nRCPT TO:<a-infos-en@lists.example.org>\r\n",
            );
            let data = Step::Data {
                content: content.clone(),
                end: *end,
            };
            step_bytes(&data, protocol, out);
        }
        Step::Hello { verb, host } => {
            out.extend_from_slice([b"EHLO ", b"HELO ", b"LHLO ", b"ehlo "][usize::from(*verb) % 4]);
            out.extend_from_slice(&host.0);
            crlf(out);
        }
        Step::Mail { path, parameters } => {
            out.extend_from_slice(b"MAIL FROM:");
            out.extend_from_slice(PATHS[usize::from(*path) % PATHS.len()]);
            out.extend_from_slice(PARAMETERS[usize::from(*parameters) % PARAMETERS.len()]);
            crlf(out);
        }
        Step::Rcpt { path } => {
            out.extend_from_slice(b"RCPT TO:");
            out.extend_from_slice(PATHS[usize::from(*path) % PATHS.len()]);
            crlf(out);
        }
        Step::Data { content, end } => {
            out.extend_from_slice(b"DATA\r\n");
            match content {
                Content::Post(n) => out.extend_from_slice(POSTS[usize::from(*n) % POSTS.len()]),
                Content::Random(bytes) => out.extend_from_slice(&bytes.0),
                Content::Long(length) => {
                    let line = b"A line of a long message, over and over again.\r\n";
                    let lines = *length as usize / line.len();
                    out.extend_from_slice(&line.repeat(lines));
                }
            }
            out.extend_from_slice(ENDS[usize::from(*end) % ENDS.len()]);
        }
        Step::Bdat { size, last } => {
            let size = usize::from(*size) % 20_000;
            out.extend_from_slice(
                format!("BDAT {size}{}\r\n", if *last { " LAST" } else { "" }).as_bytes(),
            );
            out.extend(std::iter::repeat_n(b'x', size));
        }
        Step::Verb(n) => {
            out.extend_from_slice(VERBS[usize::from(*n) % VERBS.len()]);
            crlf(out);
        }
        Step::Garbage(bytes) => {
            out.extend_from_slice(&bytes.0);
            crlf(out);
        }
        Step::Overlong { bytes, ended } => {
            out.extend_from_slice(b"MAIL FROM:<");
            out.extend(std::iter::repeat_n(b'a', *bytes as usize));
            if *ended {
                out.extend_from_slice(b">\r\n");
            }
        }
        Step::Raw(bytes) => out.extend_from_slice(&bytes.0),
    }
}

/// How the intake answers each message: hostile reasons included, which
/// a reply must carry on one line.
fn intake_answer(message: &Message, pick: u8) -> Delivered {
    let reason = [
        "loop: sent from one of the site's own addresses",
        "held\r\n250 2.0.0 injected",
        "rejected\0with a NUL and \u{1b}[31m an escape",
        "the store is busy\nQUIT",
    ][usize::from(pick) % 4]
        .to_string();
    let post = message.post_recipients().next().map(|_| match pick % 6 {
        0 => Ok(Outcome::Stored { id: 1 }),
        1 => Ok(Outcome::Held {
            id: 2,
            reason: reason.clone(),
        }),
        2 => Ok(Outcome::Rejected {
            id: 3,
            reason: reason.clone(),
        }),
        3 => Ok(Outcome::Duplicate { id: 4 }),
        _ => Err(Deferred::new(reason.clone())),
    });
    let services = message
        .service_routes()
        .into_iter()
        .map(|route| match pick % 3 {
            2 => (route, Err(Deferred::new(reason.clone()))),
            _ => (route, Ok(())),
        })
        .collect();
    Delivered { post, services }
}

#[derive(Clone, Debug)]
struct SessionRecipe {
    protocol: Protocol,
    loopback: bool,
    steps: Vec<Step>,
    reads: Vec<u16>,
    answers: u8,
}

fn session_recipe() -> impl Strategy<Value = SessionRecipe> {
    (
        prop_oneof![Just(Protocol::Smtp), Just(Protocol::Lmtp)],
        any::<bool>(),
        proptest::collection::vec(step(), 1..24),
        proptest::collection::vec(prop_oneof![1u16..16, 1u16..=16_384], 1..8),
        any::<u8>(),
    )
        .prop_map(
            |(protocol, loopback, steps, reads, answers)| SessionRecipe {
                protocol,
                loopback,
                steps,
                reads,
                answers,
            },
        )
}

/// The configuration of the sessions: the shipped one with a small size
/// limit.
fn session_config() -> Arc<Config> {
    static CONFIG: OnceLock<Arc<Config>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut config = world().config.clone();
            config.ingest.max_message_bytes = SESSION_LIMIT;
            Arc::new(config)
        })
        .clone()
}

const SESSION_RULES: Rules = Rules {
    max_recipients: 50,
    max_errors: 10,
};

/// Every reply of one output: `ddd text` or `ddd-text` lines ended by
/// CRLF, a first digit 2 to 5, at most 512 octets with the CRLF (RFC 5321
/// 4.5.3.1.5), the text UTF-8 without control characters; a multi-line
/// reply keeps its code and ends with a `ddd ` line.
fn check_replies(replies: &[u8], lines: &mut Vec<String>) -> Checked {
    let mut open: Option<&[u8]> = None;
    let mut rest = replies;
    while !rest.is_empty() {
        let end = memchr::memmem::find(rest, b"\r\n")
            .ok_or_else(|| fail(format!("a reply without CRLF: {:?}", Bytes(rest.to_vec()))))?;
        let line = &rest[..end];
        rest = &rest[end + 2..];
        let shown = || format!("{:?}", Bytes(line.to_vec()));
        prop_assert!(
            line.len() + 2 <= 512,
            "a reply of {} octets: {}",
            line.len() + 2,
            shown()
        );
        prop_assert!(
            line.len() >= 4
                && line[..3].iter().all(u8::is_ascii_digit)
                && (b'2'..=b'5').contains(&line[0])
                && (line[3] == b' ' || line[3] == b'-'),
            "not a reply line: {}",
            shown()
        );
        let text =
            std::str::from_utf8(&line[4..]).map_err(|_| fail(format!("not UTF-8: {}", shown())))?;
        prop_assert!(
            !text.chars().any(char::is_control),
            "a control character in a reply: {}",
            shown()
        );
        if let Some(code) = open {
            prop_assert_eq!(
                code,
                &line[..3],
                "a multi-line reply changed its code: {}",
                shown()
            );
        }
        open = (line[3] == b'-').then_some(&line[..3]);
        if lines.len() < 64 {
            lines.push(String::from_utf8_lossy(line).into_owned());
        }
    }
    prop_assert!(open.is_none(), "a multi-line reply without its last line");
    Ok(())
}

/// What a client saw of a session.
#[derive(Default)]
struct Seen {
    /// The reply lines of the last input (at most 64).
    lines: Vec<String>,
    /// The messages delivered.
    messages: Vec<Message>,
    closed: bool,
}

/// Follows `output` through deliveries and oversize records to the next
/// read or the end, checking every reply and message.
fn follow(session: &mut Session, mut output: Output, answers: u8, seen: &mut Seen) -> Checked {
    loop {
        check_replies(&output.replies, &mut seen.lines)?;
        match output.next {
            Next::Read => return Ok(()),
            Next::Close => {
                seen.closed = true;
                return Ok(());
            }
            Next::Deliver(message) => {
                prop_assert!(
                    message.content.len() <= SESSION_LIMIT,
                    "a message of {} bytes delivered",
                    message.content.len()
                );
                prop_assert!(
                    (1..=SESSION_RULES.max_recipients).contains(&message.recipients.len()),
                    "{} recipients",
                    message.recipients.len()
                );
                for recipient in &message.recipients {
                    prop_assert!(
                        route(&session_config(), &recipient.address).as_ref()
                            == Ok(&recipient.route),
                        "{:?} accepted as {:?}",
                        recipient.address,
                        recipient.route
                    );
                }
                let delivered = intake_answer(&message, answers);
                if seen.messages.len() < 4 {
                    seen.messages.push(message);
                }
                output = session.delivered(delivered);
            }
            Next::Oversize(size) => {
                prop_assert!(size > SESSION_LIMIT, "{} bytes called oversize", size);
                output = session.resume();
            }
        }
    }
}

/// Sends `input` in reads of the sizes given (cycled), as a listener's
/// reads come, until the input ends or the session closes.
fn send(
    session: &mut Session,
    input: &[u8],
    reads: &[usize],
    answers: u8,
    seen: &mut Seen,
) -> Checked {
    let mut rest = input;
    let mut sizes = reads.iter().cycle();
    seen.lines.clear();
    while !rest.is_empty() && !seen.closed {
        let size = (*sizes.next().unwrap_or(&READ_BUFFER)).clamp(1, READ_BUFFER);
        let (read, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        let output = session.receive(read);
        follow(session, output, answers, seen)?;
    }
    Ok(())
}

fn new_session(protocol: Protocol, loopback: bool) -> Result<Session, TestCaseError> {
    let mut session = Session::new(protocol, session_config(), SESSION_RULES);
    let peer: IpAddr = match loopback {
        true => [127, 0, 0, 1].into(),
        false => [192, 0, 2, 7].into(),
    };
    session.set_peer(peer);
    let mut lines = Vec::new();
    check_replies(&session.greeting(), &mut lines)?;
    prop_assert!(lines[0].starts_with("220 "), "{:?}", lines);
    Ok(session)
}

/// The transaction every session must still take after what came
/// before: two recipients, a dot to un-stuff, QUIT.
const VALID_MESSAGE: &[u8] = b"From: Ana <ana@example.org>\r\nTo: a-infos-en@lists.example.org\r\n\
    Subject: (en) After the storm\r\nMessage-ID: <after@example.org>\r\n\r\n..A line with a dot.\r\nThe end.\r\n";

fn check_valid_transaction(session: &mut Session, protocol: Protocol, seen: &mut Seen) -> Checked {
    let hello = match protocol {
        Protocol::Smtp => "EHLO client.example.net",
        Protocol::Lmtp => "LHLO client.example.net",
    };
    let group = format!(
        "{hello}\r\nMAIL FROM:<ana@example.org>\r\nRCPT TO:<a-infos-en@lists.example.org>\r\n\
         RCPT TO:<a-infos-en-request@lists.example.org>\r\nDATA\r\n"
    );
    seen.messages.clear();
    send(session, group.as_bytes(), &[READ_BUFFER], 0, seen)?;
    let codes: Vec<&str> = seen.lines.iter().map(|line| &line[..4]).collect();
    let hello_lines = codes.iter().take_while(|code| **code == "250-").count();
    prop_assert!(hello_lines >= 2, "the hello: {:?}", seen.lines);
    prop_assert_eq!(
        &codes[hello_lines..],
        &["250 ", "250 ", "250 ", "250 ", "354 "],
        "the envelope: {:?}",
        seen.lines
    );
    let ending = [
        &VALID_MESSAGE[..VALID_MESSAGE.len() - 2],
        b"\r\n.\r\nQUIT\r\n",
    ]
    .concat();
    send(session, &ending, &[READ_BUFFER], 0, seen)?;
    let expected: &[&str] = match protocol {
        Protocol::Smtp => &["250 ", "221 "],
        Protocol::Lmtp => &["250 ", "250 ", "221 "],
    };
    let codes: Vec<&str> = seen.lines.iter().map(|line| &line[..4]).collect();
    prop_assert_eq!(&codes[..], expected, "after DATA: {:?}", seen.lines);
    prop_assert!(seen.closed, "QUIT did not close");
    prop_assert_eq!(seen.messages.len(), 1);
    let message = &seen.messages[0];
    prop_assert_eq!(&message.sender, "ana@example.org");
    let recipients: Vec<&str> = message
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    prop_assert_eq!(
        recipients,
        [
            "a-infos-en@lists.example.org",
            "a-infos-en-request@lists.example.org"
        ]
    );
    let unstuffed = replace_all(VALID_MESSAGE, b"\r\n..A", b"\r\n.A");
    prop_assert!(
        message.content[..] == unstuffed[..],
        "the message is not what was sent: {:?}",
        Bytes(message.content.to_vec())
    );
    Ok(())
}

/// Issue 13, promise 6, for SMTP and LMTP: a session given any sequence
/// of commands, garbage, overlong lines, NULs, pipelined input and
/// DATA/BDAT mixes, in reads of any size, never panics, answers with
/// well-formed reply lines only, delivers nothing over the size limit,
/// holds at most [`SESSION_MEMORY`] whatever it is sent, and then takes a
/// valid transaction (on a new connection if it closed this one).
fn check_session(recipe: &SessionRecipe) -> Checked {
    let mut input = Vec::new();
    for step in &recipe.steps {
        step_bytes(step, recipe.protocol, &mut input);
    }
    let reads: Vec<usize> = recipe.reads.iter().map(|r| usize::from(*r)).collect();
    let protocol = recipe.protocol;
    // Made once, outside what is measured.
    session_config();
    let (checked, peak) = memory::peak_during(|| {
        unpanicking("the session", || -> Checked {
            let mut seen = Seen::default();
            let mut session = new_session(protocol, recipe.loopback)?;
            send(&mut session, &input, &reads, recipe.answers, &mut seen)?;
            // Whatever state it was left in: end a message, a line, a
            // transaction.
            if !seen.closed {
                send(
                    &mut session,
                    b"\r\n.\r\nRSET\r\n",
                    &[READ_BUFFER],
                    0,
                    &mut seen,
                )?;
            }
            if seen.closed {
                session = new_session(protocol, recipe.loopback)?;
                seen = Seen::default();
            }
            check_valid_transaction(&mut session, protocol, &mut seen)
        })
    });
    checked??;
    prop_assert!(
        peak <= SESSION_MEMORY,
        "the session held {} bytes at its peak, for {} bytes of input",
        peak,
        input.len()
    );
    Ok(())
}

proptest! {
    #![proptest_config(run_config(SESSION_CASES))]

    /// SMTP and LMTP sessions under hostile input: well-formed replies
    /// only, memory bounded, and a valid transaction still goes through.
    #[test]
    fn a_hostile_smtp_or_lmtp_session_gets_well_formed_replies_and_a_valid_transaction_still_works(
        recipe in session_recipe()
    ) {
        check_session(&recipe)?;
    }
}

// ---------------------------------------------------------------------
// 4. NNTP sessions

/// The post every reader's last transaction reads: article 1 of the
/// English group.
const KNOWN: &[u8] = b"From: Ana <ana@example.net>\r\nTo: a-infos-en@lists.example.org\r\n\
    Subject: (en) The known article\r\nMessage-ID: <known@example.net>\r\n\
    Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nIts text.\r\n.A line with a dot.\r\n";

/// Field values a published post may carry into OVER, HDR and status
/// lines.
const NEWS_FIELDS: &[(&str, &[&[u8]])] = &[
    (
        "Message-ID",
        &[
            b"<a b@example.net>",
            b"<a\tb@example.net>",
            b"<x@example.net> <z@example.net>",
            b"no-brackets@example.net",
            b"<>",
            b"<\x01\x1b[31m@example.net>",
            b"<caf\xc3\xa9@example.net>",
            b"<=?utf-8?q?x=0D=0A?=@example.net>",
            b"<.dot@example.net>",
        ],
    ),
    (
        "Subject",
        &[
            b"(en) Tab\there and\rthere",
            b"(en) =?utf-8?q?a=09b=0D=0Ac?=",
            b"(en) \x00NUL",
            b"(en) .",
        ],
    ),
    ("References", &[b"<a@x>\t<b@y>", b"<a@x>\r\n\t<b@y>"]),
    (
        "From",
        &[
            b"Tab\tName <ana@example.net>",
            b"\"Line\r\nBreak\" <ana@example.net>",
        ],
    ),
];

/// The store every reader reads: the known post, then real messages with
/// hostile fields and dots, NULs and lone CRs in their bodies, published
/// in every group.
struct Newsroom {
    store: Handle,
    message_ids: Vec<String>,
}

fn newsroom() -> &'static Newsroom {
    static NEWSROOM: OnceLock<Newsroom> = OnceLock::new();
    NEWSROOM.get_or_init(|| {
        let world = world();
        let config = &world.config;
        let filer = Filer::new(config);
        let mut raws = vec![KNOWN.to_vec()];
        let bodies: &[&[u8]] = &[
            b"\r\n.\r\n..\r\n.\r\r\nend\r\n",
            b"\r\nA NUL \0 here and a lone CR\r there\r\n",
            b"\n.\n.. \n",
        ];
        for (n, (_, raw)) in world.corpus.iter().step_by(11).take(36).enumerate() {
            let mut raw = raw.clone();
            let (name, values) = NEWS_FIELDS[n % NEWS_FIELDS.len()];
            let value = values[(n / NEWS_FIELDS.len()) % values.len()];
            mutate(
                &mut raw,
                &Mutation::Set {
                    name,
                    value: Bytes(value.to_vec()),
                },
            );
            let end = header_end(&raw);
            raw.splice(end..end, bodies[n % bodies.len()].iter().copied());
            raws.push(raw);
        }
        let batch: Vec<_> = raws
            .iter()
            .enumerate()
            .map(|(n, raw)| {
                let code = match n {
                    0 => "en".to_string(),
                    n => config.lists[n % config.lists.len()].code.clone(),
                };
                let envelope = Envelope {
                    list_code: Some(code),
                    recipients: Vec::new(),
                };
                let mut post = filer.file_message(raw, &envelope, NOW - DAY);
                post.post.status = Status::Published;
                post
            })
            .collect();
        let store = Handle::open_in_memory().expect("a store");
        store
            .blocking_write(move |tx| ingest::commit(tx, &batch))
            .expect("the posts stored");
        let message_ids = store
            .blocking_read(|db| {
                Ok::<_, store::Error>(rows!(
                    db,
                    "SELECT message_id FROM posts WHERE message_id IS NOT NULL ORDER BY id",
                    |row| row.get(0)
                ))
            })
            .expect("the Message-IDs");
        Newsroom { store, message_ids }
    })
}

const NNTP_LINES: &[&str] = &[
    "CAPABILITIES",
    "MODE READER",
    "MODE POSTER",
    "LIST",
    "LIST ACTIVE",
    "LIST ACTIVE a-infos.*",
    "LIST NEWSGROUPS",
    "LIST NEWSGROUPS *.en",
    "LIST OVERVIEW.FMT",
    "LIST HEADERS",
    "LIST DISTRIBUTIONS",
    "GROUP a-infos.en",
    "GROUP a-infos.all",
    "GROUP a-infos.gr",
    "GROUP a-infos.nowhere",
    "GROUP",
    "LISTGROUP",
    "LISTGROUP a-infos.en",
    "LISTGROUP a-infos.all 2-",
    "LISTGROUP a-infos.all 5-2",
    "ARTICLE",
    "ARTICLE 1",
    "ARTICLE 99999999999999999999",
    "ARTICLE -1",
    "HEAD 2",
    "BODY 3",
    "STAT",
    "NEXT",
    "LAST",
    "OVER",
    "OVER 1-",
    "XOVER 1-100",
    "OVER 3-1",
    "HDR Subject 1-",
    "XHDR From 1-",
    "HDR :bytes 1-",
    "HDR :lines 1-",
    "HDR message-id 1-",
    "HDR References",
    "NEWGROUPS 20000101 000000 GMT",
    "NEWGROUPS 000101 000000",
    "NEWGROUPS 20001301 000000",
    "NEWNEWS * 20000101 000000",
    "NEWNEWS a-infos.*,!a-infos.en 991231 235959 GMT",
    "DATE",
    "HELP",
    "POST",
    "IHAVE <x@example.net>",
    "STARTTLS",
    "QUIT",
    "article 1",
    "  GROUP  a-infos.all  ",
    "",
    "AUTHINFO USER x",
    "XYZZY",
];

/// One line a reader sends.
#[derive(Debug, Clone, PartialEq)]
enum NewsLine {
    Words(u8),
    /// A command naming a stored article by its Message-ID.
    ById {
        verb: u8,
        id: u8,
    },
    /// A wildmat of stars and letters.
    Wildmat {
        stars: u16,
        tail: Bytes,
    },
    /// GROUP with whatever bytes.
    Group(Bytes),
    Garbage(Bytes),
    Overlong(u16),
}

/// How a line ends.
const NEWS_ENDS: &[&[u8]] = &[b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r\r\n", b""];

fn news_line() -> impl Strategy<Value = (NewsLine, u8)> {
    let line = prop_oneof![
        10 => (0..NNTP_LINES.len() as u8).prop_map(NewsLine::Words),
        3 => (0..6u8, any::<u8>()).prop_map(|(verb, id)| NewsLine::ById { verb, id }),
        1 => (1..250u16, proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'*'), Just(b'?'), Just(b'x')], 0..20))
            .prop_map(|(stars, tail)| NewsLine::Wildmat { stars, tail: Bytes(tail) }),
        1 => proptest::collection::vec(any::<u8>(), 0..600).prop_map(|b| NewsLine::Group(Bytes(b))),
        2 => proptest::collection::vec(any::<u8>(), 0..80).prop_map(|b| NewsLine::Garbage(Bytes(b))),
        1 => (400..3_000u16).prop_map(NewsLine::Overlong),
    ];
    (
        line,
        prop_oneof![8 => Just(0u8), 1 => 0..NEWS_ENDS.len() as u8],
    )
}

fn news_line_bytes(line: &NewsLine, room: &Newsroom, out: &mut Vec<u8>) {
    match line {
        NewsLine::Words(n) => {
            out.extend_from_slice(NNTP_LINES[usize::from(*n) % NNTP_LINES.len()].as_bytes())
        }
        NewsLine::ById { verb, id } => {
            let verb =
                ["ARTICLE", "HEAD", "BODY", "STAT", "OVER", "HDR Subject"][usize::from(*verb) % 6];
            let ids = &room.message_ids;
            out.extend_from_slice(
                format!("{verb} {}", ids[usize::from(*id) % ids.len()]).as_bytes(),
            );
        }
        NewsLine::Wildmat { stars, tail } => {
            out.extend_from_slice(b"LIST ACTIVE ");
            out.extend(std::iter::repeat_n(b'*', usize::from(*stars)));
            out.extend_from_slice(&tail.0);
            out.push(b'!');
        }
        NewsLine::Group(bytes) => {
            out.extend_from_slice(b"GROUP ");
            out.extend_from_slice(&bytes.0);
        }
        NewsLine::Garbage(bytes) => out.extend_from_slice(&bytes.0),
        NewsLine::Overlong(length) => out.extend(std::iter::repeat_n(b'A', usize::from(*length))),
    }
}

/// Talks to one NNTP session over an in-process stream: `input` written
/// in writes of the sizes given, then the stream's end; returns all the
/// session wrote until it closed.
fn news_conversation(input: &[u8], writes: &[usize]) -> Result<Vec<u8>, TestCaseError> {
    news_conversation_with(&newsroom().store, input, writes)
}

/// [`news_conversation`] with the articles of `store`.
fn news_conversation_with(
    store: &Handle,
    input: &[u8],
    writes: &[usize],
) -> Result<Vec<u8>, TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("a runtime: {e}")))?;
    let context = Arc::new(nntp::listener::Context {
        config: tokio::sync::watch::channel(Arc::new(world().config.clone())).1,
        store: store.clone(),
        limits: Limits {
            max_connections: 8,
            max_connections_per_ip: 8,
            max_recipients: 50,
            command_timeout: Duration::from_secs(20),
            data_timeout: Duration::from_secs(20),
            stress_timeout: Duration::from_secs(10),
            max_errors: 10,
            make_room_after: Duration::from_secs(1),
        },
        tls: None,
        clock: Clock::Fixed(chrono::DateTime::from_timestamp(NOW, 0).expect("a time")),
    });
    let chunks: Vec<Vec<u8>> = {
        let mut chunks = Vec::new();
        let mut rest = input;
        let mut sizes = writes.iter().cycle();
        while !rest.is_empty() {
            let size = (*sizes.next().unwrap_or(&4096)).max(1).min(rest.len());
            chunks.push(rest[..size].to_vec());
            rest = &rest[size..];
        }
        chunks
    };
    runtime.block_on(async move {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let shutdown = CancellationToken::new();
        let peer: IpAddr = [192, 0, 2, 9].into();
        let session = tokio::spawn(async move {
            nntp::listener::converse(server, Some(peer), &context, &shutdown).await
        });
        let (mut reading, mut writing) = tokio::io::split(client);
        let writer = async move {
            for chunk in chunks {
                if writing.write_all(&chunk).await.is_err() {
                    // The session closed and dropped its end.
                    return;
                }
            }
            let _ = writing.shutdown().await;
        };
        let reader = async move {
            let mut output = Vec::new();
            reading.read_to_end(&mut output).await.map(|_| output)
        };
        let ((), output) = tokio::join!(writer, reader);
        let _ = session.await;
        output.map_err(|e: io::Error| fail(format!("reading the session: {e}")))
    })
}

/// One line of input as the listener frames it: its bytes without the
/// LF and one CR before it; whether it ended; whether it is over the
/// 512-octet limit (with its line end).
fn news_lines(input: &[u8]) -> Vec<(&[u8], bool, bool)> {
    let mut lines = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        match memchr::memchr(b'\n', rest) {
            Some(at) => {
                let line = &rest[..at];
                let too_long = at + 1 > nntp::command::MAX_LINE;
                lines.push((line.strip_suffix(b"\r").unwrap_or(line), true, too_long));
                rest = &rest[at + 1..];
            }
            None => {
                lines.push((rest, false, rest.len() >= nntp::command::MAX_LINE));
                rest = &[];
            }
        }
    }
    lines
}

/// Whether a Message-ID can stand in a status or overview line (RFC 3977
/// 3.6): `<...>`, printable US-ASCII, at most 250 octets.
fn sound_message_id(id: &str) -> bool {
    id.len() <= 250
        && id.len() > 2
        && id.starts_with('<')
        && id.ends_with('>')
        && id.bytes().all(|b| b.is_ascii_graphic())
}

/// One response of a session.
struct Response {
    status: String,
    block: Vec<Vec<u8>>,
}

/// Reads the response to `command` from `output` at `at`: a status line
/// (three digits, a space, text without control characters, at most 512
/// octets), then for the multi-line responses their lines up to the lone
/// dot, each ended by CRLF with no other CR or LF, checked for what the
/// command lists.
fn read_response(output: &[u8], at: &mut usize, command: &[u8]) -> Result<Response, TestCaseError> {
    let line = |at: &mut usize| -> Result<Vec<u8>, TestCaseError> {
        let rest = &output[*at..];
        let end = memchr::memmem::find(rest, b"\r\n").ok_or_else(|| {
            fail(format!(
                "output ends without CRLF: {:?}",
                Bytes(rest.to_vec())
            ))
        })?;
        *at += end + 2;
        let line = rest[..end].to_vec();
        prop_assert!(
            !line.contains(&b'\n'),
            "a bare LF in {:?}",
            Bytes(line.clone())
        );
        Ok(line)
    };
    let status = line(at)?;
    let shown = format!(
        "{:?} to {:?}",
        Bytes(status.clone()),
        Bytes(command.to_vec())
    );
    prop_assert!(
        status.len() + 2 <= 512,
        "a status line of {} octets: {}",
        status.len() + 2,
        shown
    );
    let text =
        String::from_utf8(status.clone()).map_err(|_| fail(format!("not UTF-8: {shown}")))?;
    prop_assert!(
        text.len() >= 4
            && text.as_bytes()[..3].iter().all(u8::is_ascii_digit)
            && (b'1'..=b'5').contains(&text.as_bytes()[0])
            && text.as_bytes()[3] == b' ',
        "not a status line: {}",
        shown
    );
    prop_assert!(
        !text.chars().any(char::is_control),
        "a control character: {}",
        shown
    );
    let code = &text[..3];
    let verb = String::from_utf8_lossy(command)
        .split_ascii_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    let words: Vec<&str> = text.split(' ').collect();
    if matches!(code, "220" | "221" | "222" | "223") && verb != "XHDR" {
        prop_assert!(
            words.len() == 4
                && words[1].bytes().all(|b| b.is_ascii_digit())
                && sound_message_id(words[2]),
            "an article's status line: {}",
            shown
        );
    }
    let multi = matches!(
        code,
        "100" | "101" | "215" | "220" | "221" | "222" | "224" | "225" | "230" | "231"
    ) || (code == "211" && verb == "LISTGROUP");
    let mut block = Vec::new();
    if multi {
        loop {
            let row = line(at)?;
            if row == b"." {
                break;
            }
            let row = match row.strip_prefix(b".") {
                Some(rest) => {
                    prop_assert!(
                        rest.starts_with(b"."),
                        "a line with a dot not doubled: {:?}",
                        Bytes(row.clone())
                    );
                    rest.to_vec()
                }
                None => row,
            };
            block.push(row);
        }
    }
    // The lines whose fields a reader takes apart.
    let structured = !matches!(code, "220" | "221" | "222") || verb == "XHDR";
    for row in block.iter().filter(|_| structured) {
        let text = String::from_utf8_lossy(row);
        let shown = format!("{text:?} after {shown}");
        prop_assert!(
            !text.chars().any(|c| c.is_control() && c != '\t'),
            "a control character in {}",
            shown
        );
        let numeric = |field: &str| !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit());
        match code {
            "224" => {
                let fields: Vec<&str> = text.split('\t').collect();
                prop_assert!(
                    fields.len() == 8
                        && numeric(fields[0])
                        && numeric(fields[6])
                        && numeric(fields[7])
                        && sound_message_id(fields[4]),
                    "an overview row of {} fields: {}",
                    fields.len(),
                    shown
                );
            }
            "225" | "221" => prop_assert!(
                !text.contains('\t') && numeric(text.split(' ').next().unwrap_or("")),
                "a header row: {}",
                shown
            ),
            "211" => prop_assert!(numeric(&text), "a number row: {}", shown),
            "230" => prop_assert!(sound_message_id(&text), "a Message-ID row: {}", shown),
            "231" => prop_assert!(text.split(' ').count() == 4, "a group row: {}", shown),
            "215" if verb == "LIST" && !text.contains('\t') && text.contains(' ') => {
                prop_assert!(text.split(' ').count() == 4, "a group row: {}", shown)
            }
            _ => {}
        }
    }
    Ok(Response {
        status: text,
        block,
    })
}

/// What a reader does last, and must always be able to: select the
/// English group, check article 1 and read it by its Message-ID.
const NEWS_VALID: &[&[u8]] = &[
    b"GROUP a-infos.en",
    b"STAT 1",
    b"ARTICLE <known@example.net>",
    b"QUIT",
];

/// Checks the responses of `output` to the lines of `input`; returns the
/// responses to the last [`NEWS_VALID`] lines if the session got to them.
fn check_news(input: &[u8], output: &[u8]) -> Result<Option<Vec<Response>>, TestCaseError> {
    let lines = news_lines(input);
    let mut at = 0;
    let greeting = read_response(output, &mut at, b"")?;
    prop_assert!(greeting.status.starts_with("201 "), "{}", greeting.status);
    let mut responses = Vec::new();
    for (line, ended, too_long) in &lines {
        if *too_long {
            let response = read_response(output, &mut at, line)?;
            prop_assert_eq!(&response.status, "501 command line too long");
            break;
        }
        if !ended {
            break;
        }
        let response = read_response(output, &mut at, line)?;
        let closing = response.status.starts_with("205 ") || response.status.starts_with("400 ");
        responses.push(response);
        if closing {
            break;
        }
    }
    prop_assert_eq!(
        at,
        output.len(),
        "output after the end: {:?}",
        Bytes(output[at..].to_vec())
    );
    let answered_all = responses.len() == lines.len();
    let last = lines.len().saturating_sub(NEWS_VALID.len());
    Ok(answered_all.then(|| responses.split_off(last)))
}

fn check_news_valid(responses: &[Response]) -> Checked {
    let statuses: Vec<&str> = responses.iter().map(|r| r.status.as_str()).collect();
    prop_assert!(statuses[0].starts_with("211 "), "{:?}", statuses);
    prop_assert_eq!(statuses[1], "223 1 <known@example.net> retrieved");
    prop_assert_eq!(statuses[2], "220 1 <known@example.net> article");
    prop_assert!(statuses[3].starts_with("205 "), "{:?}", statuses);
    let article = &responses[2].block;
    prop_assert!(
        article[0].starts_with(b"Newsgroups: "),
        "{:?}",
        Bytes(article[0].clone())
    );
    prop_assert!(
        article[1].starts_with(b"Xref: "),
        "{:?}",
        Bytes(article[1].clone())
    );
    let text: Vec<u8> = article[2..]
        .iter()
        .flat_map(|line| [&line[..], b"\r\n"].concat())
        .collect();
    prop_assert!(
        text == KNOWN,
        "the article is not the post: {:?}",
        Bytes(text)
    );
    Ok(())
}

#[derive(Debug, Clone)]
struct NewsRecipe {
    lines: Vec<(NewsLine, u8)>,
    writes: Vec<u16>,
}

fn news_recipe() -> impl Strategy<Value = NewsRecipe> {
    (
        proptest::collection::vec(news_line(), 0..30),
        proptest::collection::vec(prop_oneof![1u16..8, 1u16..=8_192], 1..6),
    )
        .prop_map(|(lines, writes)| NewsRecipe { lines, writes })
}

/// Issue 13, promise 6, for NNTP: a reader sending any commands, garbage,
/// overlong lines, NULs and lone CRs, pipelined in writes of any size,
/// gets one well-formed response a line (multi-line ones dot-stuffed and
/// ended, overview and header rows whole), a line over 512 octets ends
/// the session with 501, and the session never panics; then a valid
/// reader's commands work, on this connection or a new one.
fn check_news_session(recipe: &NewsRecipe) -> Checked {
    let room = newsroom();
    let mut input = Vec::new();
    for (line, end) in &recipe.lines {
        news_line_bytes(line, room, &mut input);
        input.extend_from_slice(NEWS_ENDS[usize::from(*end) % NEWS_ENDS.len()]);
    }
    // Whatever the last line was, it ends here.
    input.extend_from_slice(b"\r\n");
    let mut valid = Vec::new();
    for line in NEWS_VALID {
        valid.extend_from_slice(line);
        valid.extend_from_slice(b"\r\n");
    }
    let writes: Vec<usize> = recipe.writes.iter().map(|w| usize::from(*w)).collect();
    let whole = [&input[..], &valid].concat();
    let output = news_conversation(&whole, &writes)?;
    let responses = match check_news(&whole, &output)? {
        Some(responses) => responses,
        None => {
            let output = news_conversation(&valid, &[4096])?;
            check_news(&valid, &output)?
                .ok_or_else(|| fail("a new reader's commands were not all answered".into()))?
        }
    };
    check_news_valid(&responses)
}

proptest! {
    #![proptest_config(run_config(NNTP_CASES))]

    /// NNTP readers sending hostile input: well-formed responses only,
    /// the line limit kept, and a valid reader still served.
    #[test]
    fn a_hostile_nntp_reader_gets_well_formed_responses_and_a_valid_reader_still_works(
        recipe in news_recipe()
    ) {
        check_news_session(&recipe)?;
    }
}

// ---------------------------------------------------------------------
// Regression tests: the cases the properties start from, and each
// failure they found, minimised.

/// Runs `check` as a plain test, failing with its message.
fn regression(check: Checked) {
    if let Err(error) = check {
        panic!("{error}");
    }
}

#[test]
fn every_real_bounce_as_it_came_scores_the_subscriber_its_verp_address_names() {
    // The cases the bounce property starts from, each to the target's
    // VERP address and to the bare -bounces address; most must report a
    // failure, or the property would prove little.
    let world = world();
    let mut reporting = 0;
    for (name, raw) in &world.bounces {
        for recipient in [
            "a-infos-en-bounces+reader=example.com@lists.example.org",
            "a-infos-en-bounces@lists.example.org",
        ] {
            if let Err(error) = check_bounce(raw, recipient, "") {
                panic!("{name} to {recipient}: {error}");
            }
        }
        reporting += usize::from(!detect(raw, &world.config.site.domain).failures.is_empty());
    }
    assert!(
        reporting * 10 >= world.bounces.len() * 9,
        "only {reporting} of {} bounces report a failure",
        world.bounces.len()
    );
}

/// The store and route a command mail to `recipient` is handled with;
/// what it answered.
fn handle_command(db: &mut Connection, recipient: &str, sender: &str, raw: &[u8]) -> String {
    let world = world();
    let route = route(&world.config, recipient).expect("a route");
    let service = service(world);
    store::transaction(db, |tx| {
        handle_service_mail(tx, &service, &route, recipient, sender, raw)
    })
    .expect("handled")
    .0
}

#[test]
fn a_genuine_token_by_mail_subscribes_its_address_and_an_altered_one_does_not() {
    // The command property's checks are not vacuous: its genuine token
    // subscribes, as the property lets it.
    let (mut db, tokens, _) = command_store().expect("a store");
    let altered = Tokens::text(&tokens, &Token::Altered(At(0), b'x'));
    let altered = String::from_utf8(altered).expect("a token");
    for (token, subscribed) in [(altered.as_str(), false), (tokens.genuine.as_str(), true)] {
        let recipient = format!("a-infos-en-confirm+{token}@lists.example.org");
        let raw = format!(
            "From: pending@example.net\r\nTo: {recipient}\r\nSubject: Re: confirm\r\n\
             Message-ID: <reply@example.net>\r\n\r\nYes.\r\n"
        );
        regression(check_command(
            recipient.as_bytes(),
            PENDING,
            raw.as_bytes(),
            &tokens,
        ));
        let outcome = handle_command(&mut db, &recipient, PENDING, raw.as_bytes());
        let found = store::subscribers::find(&db, "en", PENDING).expect("a query");
        assert_eq!(found.is_some(), subscribed, "{outcome}");
    }
}

/// A command mail that forwards a forward: message/rfc822 right inside
/// message/rfc822, in a multipart, which mail-parser 0.11.9 panics on
/// ("Invalid part ID, could not find multipart").
const FORWARD_OF_A_FORWARD: &[u8] = b"From: Ana <ana@example.org>\r\n\
    To: a-infos-en-request@lists.example.org\r\nSubject: subscribe\r\n\
    Message-ID: <forward@example.org>\r\nMIME-Version: 1.0\r\n\
    Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
    Please see below.\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n\
    Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ntext\r\n--b--\r\n";

/// Found by the command property (a mail forwarded three times over):
/// `Service::handle_mail` parsed command mail unguarded, so a forward of
/// a forward to -request panicked. The daemon's store handle caught it
/// and the listener answered 451 for ever; `tidings ingest` exited 101;
/// the mail was never kept. Now it is read for its header and subject.
#[test]
fn a_command_mail_forwarding_a_forward_is_answered_from_its_subject() {
    let parsed = std::panic::catch_unwind(|| MessageParser::new().parse(FORWARD_OF_A_FORWARD));
    assert!(
        parsed.is_err(),
        "mail-parser takes it now: the guard may go"
    );
    let (mut db, tokens, _) = command_store().expect("a store");
    regression(check_command(
        b"a-infos-en-request@lists.example.org",
        "ana@example.org",
        FORWARD_OF_A_FORWARD,
        &tokens,
    ));
    let outcome = handle_command(
        &mut db,
        "a-infos-en-request@lists.example.org",
        "ana@example.org",
        FORWARD_OF_A_FORWARD,
    );
    assert_eq!(outcome, "answered: confirm");
    let confirmations = queued_since(&db, 0)
        .into_iter()
        .filter(|queued| queued.1 == "ana@example.org")
        .count();
    assert_eq!(confirmations, 1);
}

/// Found with the one above, in `moderation::handle_mail`: a moderator's
/// answer forwarding a forward panicked, and the post was never decided.
#[test]
fn a_moderator_s_answer_forwarding_a_forward_still_decides_the_post() {
    let Moderation {
        mut db,
        ids,
        tokens,
    } = moderation_store().expect("a store");
    let recipient = format!("a-infos-en-owner+approve-{}@lists.example.org", tokens[0].0);
    let outcome = handle_command(&mut db, &recipient, "mod@example.org", FORWARD_OF_A_FORWARD);
    assert_eq!(outcome, format!("approved post {}", ids[0]));
    let post = posts::get(&db, ids[0]).expect("a query").expect("the post");
    assert_eq!(post.status, Status::Published);
}

#[test]
fn a_moderator_s_genuine_answer_approves_and_the_other_action_s_token_does_nothing() {
    // The moderation property's checks are not vacuous.
    let store = moderation_store().expect("a store");
    let reject_token = store.tokens[0].1.clone();
    let recipient = format!("a-infos-en-owner+approve-{reject_token}@lists.example.org");
    let raw = b"From: A Moderator <mod@example.org>\r\nSubject: Re: held\r\n\r\nOk.\r\n";
    regression(check_moderation(
        recipient.as_bytes(),
        "mod@example.org",
        raw,
        store,
    ));
    let store = moderation_store().expect("a store");
    let id = store.ids[0];
    let recipient = format!(
        "a-infos-en-owner+approve-{}@lists.example.org",
        store.tokens[0].0
    );
    let Moderation { mut db, .. } = store;
    assert_eq!(
        handle_command(&mut db, &recipient, "mod@example.org", raw),
        format!("approved post {id}")
    );
}

/// The replies to `input` sent in one read to a new SMTP session after
/// EHLO.
fn smtp_replies(input: &[u8]) -> Vec<String> {
    let mut session = new_session(Protocol::Smtp, false).expect("a session");
    let mut seen = Seen::default();
    regression(send(&mut session, input, &[READ_BUFFER], 0, &mut seen));
    seen.lines
}

/// Found by the session property: the HELO reply quoted the client's
/// host as sent, NUL and escapes included.
#[test]
fn a_helo_host_with_a_nul_or_an_escape_is_quoted_without_them() {
    assert_eq!(
        smtp_replies(b"HELO a\0b\x1bc\r\n"),
        ["250 lists.example.org hello a b c"]
    );
}

/// Found with the one above: a reply quoting what the client sent (here
/// smtp-proto's refusal of an unknown MAIL parameter, 555 5.5.4
/// unsupported parameter ...) went past the 512 octets a reply line may
/// have (RFC 5321 4.5.3.1.5); a client reading lines in pieces takes the
/// rest for a reply of its own.
#[test]
fn an_unknown_parameter_of_three_thousand_characters_gets_a_reply_of_at_most_512_octets() {
    let input = format!(
        "EHLO client.example.net\r\nMAIL FROM:<ana@example.org> {}=1\r\n",
        "X".repeat(3_000)
    );
    let replies = smtp_replies(input.as_bytes());
    let last = replies.last().expect("a reply");
    assert!(
        last.starts_with("555 5.5.4 unsupported parameter XXXX"),
        "{last}"
    );
    assert_eq!(last.len() + 2, 512);
}

/// The articles `raws` make, published, each under the list it is
/// written to.
fn news_store(raws: &[&[u8]]) -> Handle {
    let config = &world().config;
    let batch: Vec<_> = raws
        .iter()
        .map(|raw| {
            let envelope = Envelope {
                list_code: Some("en".to_string()),
                recipients: Vec::new(),
            };
            let mut post = Filer::new(config).file_message(raw, &envelope, NOW - DAY);
            post.post.status = Status::Published;
            post
        })
        .collect();
    let store = Handle::open_in_memory().expect("a store");
    store
        .blocking_write(move |tx| ingest::commit(tx, &batch))
        .expect("stored");
    store
}

/// What a reader of `store` gets for `input`, every response checked.
fn news_output(store: &Handle, input: &[u8]) -> String {
    let output = news_conversation_with(store, input, &[4096]).expect("a conversation");
    if let Err(error) = check_news(input, &output) {
        panic!("{error}\n{}", String::from_utf8_lossy(&output));
    }
    String::from_utf8_lossy(&output).into_owned()
}

/// Found by the NNTP property: filing keeps a Message-ID as the sender
/// wrote it, `<a b@example.net>` too, and the session put it in status
/// lines ("223 1 <a b@example.net> retrieved", five words), overview rows
/// and NEWNEWS, where a reader splits it in two. Such an article now goes
/// by its key's id, as one without a Message-ID does.
#[test]
fn an_article_whose_message_id_has_a_space_goes_by_its_key_s_id_in_every_line() {
    let store = news_store(&[
        b"From: Ana <ana@example.net>\r\nTo: a-infos-en@lists.example.org\r\n\
        Subject: (en) Spaced\r\nMessage-ID: <a b@example.net>\r\n\r\nText.\r\n",
    ]);
    let output = news_output(
        &store,
        b"GROUP a-infos.en\r\nSTAT 1\r\nOVER 1-\r\nHDR Message-ID 1-\r\n\
          NEWNEWS * 20000101 000000\r\nQUIT\r\n",
    );
    assert!(!output.contains("<a b@"), "{output}");
    assert!(output.contains("223 1 <"), "{output}");
    assert!(output.contains("@lists.example.org> retrieved"), "{output}");
}

/// Found by the NNTP property: a raw NUL in a Subject went into the
/// overview row, where a reader in C ends the row.
#[test]
fn a_nul_in_a_subject_is_a_space_in_the_overview() {
    let store = news_store(&[
        b"From: Ana <ana@example.net>\r\nTo: a-infos-en@lists.example.org\r\n\
        Subject: (en) before\0after\r\nMessage-ID: <nul@example.net>\r\n\r\nText.\r\n",
    ]);
    let output = news_output(&store, b"GROUP a-infos.en\r\nOVER 1\r\nQUIT\r\n");
    assert!(output.contains("\t(en) before after\t"), "{output:?}");
}

/// Found by the NNTP property: GROUP quoted the name it was given in its
/// 411, NUL and escapes included, and past 512 octets.
#[test]
fn a_group_name_with_a_nul_or_of_300_characters_is_quoted_on_one_short_clean_line() {
    let store = news_store(&[KNOWN]);
    let long = "\u{e9}".repeat(300);
    let input = format!("GROUP a\0b\x1b[31m\r\nGROUP {long}\r\nQUIT\r\n");
    let output = news_output(&store, input.as_bytes());
    assert!(
        output.contains("411 no such group a b [31m\r\n"),
        "{output:?}"
    );
}

/// Found by the NNTP property: wildmats were matched by a recursion that
/// tries every way each `*` can take the name, so `LIST ACTIVE` with a
/// few dozen stars and a character no group name has kept a store reader
/// thread busy for ever (the web side reads on those threads too), one
/// 512-byte line a reader.
#[test]
fn a_wildmat_of_hundreds_of_stars_is_answered_at_once() {
    let stars = "*".repeat(480);
    assert!(!nntp::command::wildmat(&format!("{stars}!"), "a-infos.all"));
    assert!(nntp::command::wildmat(&format!("{stars}l"), "a-infos.all"));
    assert!(nntp::command::wildmat("a*?*s.*l", "a-infos.all"));
    let store = news_store(&[KNOWN]);
    let output = news_output(
        &store,
        format!("LIST ACTIVE {}x!\r\nQUIT\r\n", "*a".repeat(200)).as_bytes(),
    );
    assert!(
        output.contains("215 list of newsgroups follows\r\n.\r\n"),
        "{output}"
    );
}
