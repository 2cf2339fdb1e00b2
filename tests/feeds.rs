//! Feeds, end to end: posts from ../shared/corpus and crafted hostile
//! messages are imported with the real binary, then every feed it writes is
//! read by real readers and validators (feedparser, feed-rs, jing with the
//! RFC 4287 schema, expat) and compared with what `tidings posts --json`
//! says the store holds. Tests that need python3 or jing fail when those are
//! missing: .ci/run installs them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::SystemTime;

use common::{shared, wait_until, PATIENCE};
use serde_json::Value;
use tidings::config::Config;

const FORMATS: [&str; 4] = ["rss", "atom", "rdf", "json"];
/// The formats Python's feedparser reads (6.0 has no JSON Feed; feed-rs and
/// the JSON Feed test read those).
const XML_FORMATS: [&str; 3] = ["rss", "atom", "rdf"];
const SCRIPT_SUBJECT: &str = "<script>alert(1)</script> & \"x\"";
const BASE_URL: &str = "https://news.example.net/a-infos/";

/// A tidings set-up in a tempdir: lists.toml (the shipped one with its own
/// data_dir, feeds_dir and base_url), the store and the feeds.
struct FeedSite {
    dir: tempfile::TempDir,
}

impl FeedSite {
    fn new() -> Self {
        let site = FeedSite {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        site.set_base_url(BASE_URL);
        site
    }

    fn set_base_url(&self, base_url: &str) {
        let shipped =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("lists.toml"))
                .expect("shipped lists.toml");
        let mut text = String::new();
        for line in shipped.lines() {
            let line = if line.starts_with("data_dir =") {
                format!("data_dir = {:?}", self.dir.path().join("data"))
            } else if line.starts_with("feeds_dir =") {
                format!("feeds_dir = {:?}", self.feeds_dir())
            } else if line.starts_with("base_url =") {
                format!("base_url = {base_url:?}")
            } else {
                line.to_string()
            };
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(self.config_path(), text).expect("write lists.toml");
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("lists.toml")
    }

    fn config(&self) -> Config {
        tidings::config::load(Some(&self.config_path())).expect("valid configuration")
    }

    fn feeds_dir(&self) -> PathBuf {
        self.dir.path().join("public-feeds")
    }

    fn feed(&self, name: &str, format: &str) -> PathBuf {
        self.feeds_dir().join(format!("{name}.{format}"))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tidings"));
        command
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("TIDINGS_CONFIG")
            .env_remove("ORIGINAL_RECIPIENT");
        command
    }

    /// `tidings ARGS`, which must succeed; its standard output.
    fn run(&self, args: &[&str]) -> String {
        let output = self.command(args).output().expect("run tidings");
        assert_success(&output, &format!("tidings {args:?}"));
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    fn import(&self, paths: &[&Path]) -> String {
        let mut args = vec!["import".to_string()];
        args.extend(paths.iter().map(|p| p.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&args)
    }

    /// `tidings ingest` with `message` on standard input, as an MTA pipes it.
    fn ingest(&self, message: &[u8]) -> Output {
        let mut child = self
            .command(&["ingest"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tidings ingest");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(message)
            .expect("write message");
        child.wait_with_output().expect("wait for tidings ingest")
    }

    /// Every post as `tidings posts --json` prints it.
    fn posts(&self) -> Vec<Value> {
        self.run(&["posts", "--json"])
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }

    /// Every feed file: name -> bytes. A writer's temporary file, renamed
    /// away between the listing and the read, is not one.
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(self.feeds_dir())
            .expect("feeds dir")
            .map(|entry| entry.expect("dir entry").path())
            .filter(|path| !is_temporary(path))
            .map(|path| {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                (name, std::fs::read(&path).expect("read feed"))
            })
            .collect()
    }

    /// Every file in the feeds dir: name -> modification time.
    fn mtimes(&self) -> BTreeMap<String, SystemTime> {
        std::fs::read_dir(self.feeds_dir())
            .expect("feeds dir")
            .map(|entry| entry.expect("dir entry"))
            .filter(|entry| !is_temporary(&entry.path()))
            .map(|entry| {
                let name = entry.file_name().to_string_lossy().to_string();
                (name, entry.metadata().unwrap().modified().unwrap())
            })
            .collect()
    }

    /// Every feed file path of the given formats.
    fn feed_paths(&self, formats: &[&str]) -> Vec<PathBuf> {
        let config = self.config();
        feed_names(&config)
            .iter()
            .flat_map(|name| formats.iter().map(move |format| self.feed(name, format)))
            .collect()
    }
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn feed_names(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = config.lists.iter().map(|l| l.code.clone()).collect();
    names.push("all".to_string());
    names
}

/// Messages crafted for the cases a corpus may not hold: markup and script
/// in subject, author and body; control characters and noncharacters; a
/// Date in the future and none at all; right-to-left and CJK text in legacy
/// charsets; posts in languages only The Supplement takes.
fn hostile_messages() -> Vec<(String, Vec<u8>)> {
    let text = |lang: &str| {
        let text = std::fs::read_to_string(shared().join(format!("corpus/text/{lang}.txt")))
            .expect("corpus text");
        text.split("\n\n")
            .filter(|p| p.chars().count() > 80)
            .take(4)
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    let encode = |encoding: &'static encoding_rs::Encoding, text: &str| {
        let (bytes, _, unmappable) = encoding.encode(text);
        assert!(!unmappable, "{} cannot carry the text", encoding.name());
        bytes.into_owned()
    };
    let b64 = |bytes: &[u8]| {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    };
    let mut messages = Vec::new();
    let mut message = |name: &str, headers: &[u8], body: &[u8]| {
        let mut raw = headers.to_vec();
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(body);
        messages.push((name.to_string(), raw));
    };

    message(
        "script.eml",
        format!(
            "From: \"<b>Mallory</b> & Co\" <mallory@example.org>\r\nTo: a-infos-en@lists.example.org\r\nSubject: (en) {SCRIPT_SUBJECT}\r\nMessage-ID: <script-subject@feeds.test>\r\nDate: Mon, 31 May 2021 10:25:55 +0300\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        )
        .as_bytes(),
        b"<script>alert(1)</script> & \"x\" ]]> <![CDATA[ y ]]>\r\n<img src=x onerror=alert(2)> &amp; &#x3C;\r\nSee https://example.org/?a=1&b=<2> and javascript:alert(3)\r\n\r\nSecond paragraph.\r\n",
    );

    let controls = "Bell\u{7} tab\t vt\u{b} ff\u{c} esc\u{1b}[31m C1\u{85}\u{9b} nonchars\u{fffe}\u{ffff}\u{fdd0}\u{1ffff} lost\u{fffd}bytes end\u{7f}";
    message(
        "controls.eml",
        format!(
            "From: Ctl\u{1} Name <ctl@example.org>\r\nTo: a-infos-en@lists.example.org\r\nSubject: (en) Control{}\r\nMessage-ID: <controls@feeds.test>\r\nDate: Fri, 01 Jan 2099 00:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
            "\u{fffe} chars\u{ffff} \u{fdd0}in subject"
        )
        .as_bytes(),
        format!("{controls}\r\n\r\n{controls}\r\n").as_bytes(),
    );

    message(
        "arabic.eml",
        format!(
            "From: =?utf-8?b?{}?= <ar@example.org>\r\nTo: a-infos-supplement@lists.example.org\r\nSubject: (ar) =?utf-8?b?{}?=\r\nMessage-ID: <arabic@feeds.test>\r\nDate: Tue, 02 Jan 2024 12:00:00 +0200\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n",
            b64("سلمى".as_bytes()),
            b64("\u{200f}الحرية والمساواة: بيان".as_bytes())
        )
        .as_bytes(),
        b64("يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق. وقد وهبوا عقلاً وضميرًا وعليهم أن يعامل بعضهم بعضًا بروح الإخاء.\n\n\u{202b}نص مضمن\u{202c} https://example.org/ar\n".as_bytes()).as_bytes(),
    );

    let hebrew = "כל בני האדם נולדו בני חורין ושווים בערכם ובזכויותיהם. כולם חוננו בתבונה ובמצפון, לפיכך חובה עליהם לנהוג איש ברעהו ברוח של אחוה.";
    let mut headers =
        b"From: a@example.org\r\nTo: a-infos-supplement@lists.example.org\r\nSubject: (he) "
            .to_vec();
    headers.extend(encode(encoding_rs::ISO_8859_8, "חירות ושוויון"));
    headers.extend_from_slice(b"\r\nMessage-ID: <hebrew@feeds.test>\r\nDate: Wed, 03 Jan 2024 08:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-8\r\nContent-Transfer-Encoding: 8bit\r\n");
    message(
        "hebrew.eml",
        &headers,
        &encode(encoding_rs::ISO_8859_8, hebrew),
    );

    let chinese = text("zh");
    message(
        "chinese.eml",
        format!(
            "From: =?gb2312?b?{}?= <zh@example.org>\r\nTo: a-infos-zh@lists.example.org\r\nSubject: (zh) =?gb18030?b?{}?=\r\nMessage-ID: <chinese@feeds.test>\r\nDate: Thu, 04 Jan 2024 09:30:00 +0800\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=gb18030\r\nContent-Transfer-Encoding: base64\r\n",
            b64(&encode(encoding_rs::GBK, "王小明")),
            b64(&encode(encoding_rs::GB18030, "世界人权宣言：人人生而自由，在尊严和权利上一律平等"))
        )
        .as_bytes(),
        b64(&encode(encoding_rs::GB18030, &chinese)).as_bytes(),
    );

    let headers = format!(
            "From: =?iso-2022-jp?b?{}?= <ja@example.org>\r\nTo: a-infos-supplement@lists.example.org\r\nSubject: (ja) =?iso-2022-jp?b?{}?=\r\nMessage-ID: <japanese@feeds.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-2022-jp\r\nContent-Transfer-Encoding: 7bit\r\n",
            b64(&encode(encoding_rs::ISO_2022_JP, "山田太郎")),
            b64(&encode(encoding_rs::ISO_2022_JP, "世界人権宣言"))
        );
    message(
        "japanese-no-date.eml",
        headers.as_bytes(),
        &encode(
            encoding_rs::ISO_2022_JP,
            "すべての人間は、生れながらにして自由であり、かつ、尊厳と権利とについて平等である。\r\n人間は、理性と良心とを授けられており、互いに同胞の精神をもって行動しなければならない。\r\n",
        ),
    );

    let greek = text("el");
    let mut headers = b"From: =?windows-1253?q?=C1=ed=ed=e1?= <el@example.org>\r\nTo: a-infos-gr@lists.example.org\r\nSubject: (gr) ".to_vec();
    headers.extend(encode(
        encoding_rs::WINDOWS_1253,
        "Ελλάδα: «απεργία» & διαδήλωση",
    ));
    headers.extend_from_slice(b"\r\nMessage-ID: <greek@feeds.test>\r\nDate: Fri, 05 Jan 2024 10:00:00 +0200\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=windows-1253\r\nContent-Transfer-Encoding: 8bit\r\n");
    message(
        "greek.eml",
        &headers,
        &encode(encoding_rs::WINDOWS_1253, &greek),
    );

    message(
        "held.eml",
        b"From: someone@example.org\r\nTo: a-infos@lists.example.org\r\nSubject: (xx) Held: no list serves this tag\r\nMessage-ID: <held@feeds.test>\r\nDate: Sat, 06 Jan 2024 10:00:00 +0000\r\n",
        b"This post is held for a moderator and must not appear in any feed.\r\n",
    );
    messages
}

fn write_hostile_messages(dir: &Path) -> PathBuf {
    let folder = dir.join("hostile");
    std::fs::create_dir_all(&folder).expect("create folder");
    for (name, raw) in hostile_messages() {
        std::fs::write(folder.join(name), raw).expect("write message");
    }
    folder
}

fn generate_posts(dir: &Path, seed: u32, count: u32) -> PathBuf {
    let out = dir.join(format!("generated-{seed}.mbox"));
    let output = Command::new("python3")
        .arg(shared().join("corpus/gen-posts.py"))
        .args(["--tags", "ainfos", "--n", &count.to_string()])
        .args(["--seed", &seed.to_string(), "--format", "mbox", "--out"])
        .arg(&out)
        .output()
        .expect("python3 is needed to generate posts (.ci/run installs it)");
    assert_success(&output, "gen-posts.py");
    out
}

/// The site every read-only test looks at: the realworld corpus, 300
/// generated posts and the hostile messages, imported once.
fn corpus_site() -> &'static FeedSite {
    static SITE: OnceLock<FeedSite> = OnceLock::new();
    SITE.get_or_init(|| {
        let site = FeedSite::new();
        let generated = generate_posts(site.dir.path(), 3, 300);
        let hostile = write_hostile_messages(site.dir.path());
        let realworld = shared().join("corpus/realworld");
        let summary = site.import(&[&realworld, &generated, &hostile]);
        assert!(summary.contains("feeds written"), "{summary}");
        if let Ok(keep) = std::env::var("TIDINGS_KEEP_FEEDS") {
            // For running other validators by hand on what the tests made.
            let keep = PathBuf::from(keep);
            std::fs::create_dir_all(&keep).expect("create TIDINGS_KEEP_FEEDS");
            for (name, bytes) in site.files() {
                std::fs::write(keep.join(name), bytes).expect("keep feed");
            }
        }
        site
    })
}

/// What a feed entry must say, from the store.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    key: String,
    title: String,
    link: String,
    id: String,
    date: i64,
    lang: String,
}

/// The entries each feed must hold, newest first, from `tidings posts --json`.
fn expected_feeds(site: &FeedSite) -> BTreeMap<String, Vec<Expected>> {
    let config = site.config();
    let mut published: Vec<Value> = site
        .posts()
        .into_iter()
        .filter(|post| post["status"] == "published")
        .collect();
    published.sort_by_key(|post| std::cmp::Reverse(post["id"].as_i64().unwrap()));
    let expect = |post: &Value| {
        let key = post["key"].as_str().unwrap().to_string();
        let seconds = |field: &str| {
            post[field].as_str().map(|date| {
                chrono::DateTime::parse_from_rfc3339(date)
                    .unwrap()
                    .timestamp()
            })
        };
        let received = seconds("received_at").unwrap();
        Expected {
            title: expected_title(post["title"].as_str().unwrap()),
            link: format!("{}posts/{key}", config.site.base_url),
            id: format!("tag:{},2026:posts/{key}", config.site.domain),
            // The Date header, else the arrival; never later than arrival.
            date: seconds("date").unwrap_or(received).min(received),
            lang: post["lang"].as_str().unwrap().to_string(),
            key,
        }
    };
    let mut feeds = BTreeMap::new();
    for list in &config.lists {
        let entries: Vec<Expected> = published
            .iter()
            .filter(|post| post["list"] == list.code.as_str())
            .take(list.feed_entries)
            .map(expect)
            .collect();
        feeds.insert(list.code.clone(), entries);
    }
    let all: Vec<Expected> = published
        .iter()
        .take(config.feeds.all_entries)
        .map(expect)
        .collect();
    feeds.insert("all".to_string(), all);
    feeds
}

/// The title a reader must show for a stored title: the same text, less
/// what XML cannot carry (controls, noncharacters, U+FFFD), with white
/// space runs made one space, and UTF-8 that ingest read as Latin-1 read
/// again.
fn expected_title(stored: &str) -> String {
    let repaired = tidings::feeds::text::undo_double_encoding(stored);
    let kept: String = repaired
        .chars()
        .filter(|&c| {
            let code = c as u32;
            !c.is_control()
                && c != '\u{fffd}'
                && !(0xfdd0..=0xfdef).contains(&code)
                && code & 0xfffe != 0xfffe
        })
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What Python's feedparser makes of each file, as JSON. An entry's
/// `title` is what a reader shows: feedparser's title itself, except for an
/// Atom title of `type="html"`, whose text (unescaped once) is shown. An
/// RSS 2.0 or 1.0 title is never unescaped here: it is plain text (escaped
/// once, as XML needs), so a title escaped twice reads `&amp;` and fails.
/// feedparser guesses that an RSS title is HTML (and sanitizes it) when the
/// text it finds has an end tag or an entity reference (`looks_like_html`):
/// a title escaped twice has one wherever escaping changed it, and no
/// stored title of the corpus has one, so `title_type` says which happened.
fn feedparser(paths: &[PathBuf]) -> BTreeMap<String, Value> {
    const SCRIPT: &str = r#"
import calendar, html, json, sys
import feedparser
out = {}
for path in sys.argv[1:]:
    parsed = feedparser.parse(path)
    entries = []
    for entry in parsed.entries:
        detail = entry.get('title_detail') or {}
        title = entry.get('title')
        # An Atom title of type html is shown as its text.
        if (title is not None and parsed.version.startswith('atom')
                and detail.get('type') == 'text/html'):
            title = html.unescape(title)
        def seconds(name):
            value = entry.get(name + '_parsed')
            return calendar.timegm(value) if value else None
        entries.append({
            'title': title,
            'title_type': detail.get('type'),
            'language': detail.get('language'),
            # An RSS item's dc:language.
            'entry_language': entry.get('language'),
            'link': entry.get('link'),
            'id': entry.get('id'),
            'published': seconds('published'),
            'updated': seconds('updated'),
            'author': entry.get('author'),
            'summary': entry.get('summary'),
            'content': [c.get('value') for c in entry.get('content', [])],
        })
    out[path] = {
        'bozo': bool(parsed.bozo),
        'bozo_exception': str(parsed.get('bozo_exception', '')),
        'version': parsed.version,
        'title': parsed.feed.get('title'),
        'language': parsed.feed.get('language'),
        'links': [(l.get('rel'), l.get('href')) for l in parsed.feed.get('links', [])],
        'entries': entries,
    }
json.dump(out, sys.stdout)
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .args(paths)
        .output()
        .expect("python3 with feedparser is needed (.ci/run installs it)");
    assert_success(&output, "python3 feedparser");
    let parsed: BTreeMap<String, Value> =
        serde_json::from_slice(&output.stdout).expect("feedparser JSON");
    parsed
}

/// What a reader made of one entry.
struct ReadEntry {
    title: Option<String>,
    link: Option<String>,
    /// `None` where the reader does not read ids.
    id: Option<String>,
    /// Published and updated, as far as the reader found them.
    dates: Vec<i64>,
}

/// Checks one reader's entries against what the store holds.
fn assert_entries(reader: &str, path: &Path, expected: &[Expected], entries: &[ReadEntry]) {
    let what = format!("{reader} reading {}", path.display());
    assert_eq!(entries.len(), expected.len(), "{what}: number of entries");
    for (entry, want) in entries.iter().zip(expected) {
        let ReadEntry {
            title,
            link,
            id,
            dates,
        } = entry;
        assert_eq!(
            title.as_deref(),
            Some(want.title.as_str()),
            "{what}: title of {}",
            want.key
        );
        assert_eq!(
            link.as_deref(),
            Some(want.link.as_str()),
            "{what}: link of {}",
            want.key
        );
        if let Some(id) = id {
            assert_eq!(id, &want.id, "{what}: id of {}", want.key);
        }
        assert!(!dates.is_empty(), "{what}: no date for {}", want.key);
        for date in dates {
            assert_eq!(*date, want.date, "{what}: date of {}", want.key);
        }
    }
}

#[test]
fn feedparser_reads_every_feed_as_the_store_holds_it() {
    let site = corpus_site();
    let expected = expected_feeds(site);
    // The corpus must reach the cases that matter, or this proves little.
    assert_eq!(expected["all"].len(), 40);
    assert!(expected["en"].len() > 20 && expected["supplement"].len() >= 3);
    let paths = site.feed_paths(&XML_FORMATS);
    let parsed = feedparser(&paths);
    for path in &paths {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let format = path.extension().unwrap().to_string_lossy().to_string();
        let feed = &parsed[&path.display().to_string()];
        assert_eq!(
            feed["bozo"],
            false,
            "{}: {}",
            path.display(),
            feed["bozo_exception"]
        );
        let version = feed["version"].as_str().unwrap();
        let want_version = match format.as_str() {
            "rss" => "rss20",
            "atom" => "atom10",
            _ => "rss10",
        };
        assert_eq!(version, want_version, "{}", path.display());
        let entries: Vec<_> = feed["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                let text = |field: &str| entry[field].as_str().map(str::to_string);
                let dates: Vec<i64> = ["published", "updated"]
                    .iter()
                    .filter_map(|field| entry[*field].as_i64())
                    .collect();
                ReadEntry {
                    title: text("title"),
                    link: text("link"),
                    id: text("id"),
                    dates,
                }
            })
            .collect();
        assert!(
            feed["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|entry| !entry["id"].is_null()),
            "{}: an entry without id",
            path.display()
        );
        if format != "atom" {
            // Plain text, as sent: no entity feedparser could take for HTML.
            for entry in feed["entries"].as_array().unwrap() {
                assert_eq!(
                    entry["title_type"],
                    "text/plain",
                    "{}: feedparser took the title {} for HTML",
                    path.display(),
                    entry["title"]
                );
            }
        }
        assert_entries("feedparser", path, &expected[&name], &entries);
    }
}

#[test]
fn feed_rs_reads_every_feed_as_the_store_holds_it() {
    let site = corpus_site();
    let expected = expected_feeds(site);
    for path in site.feed_paths(&FORMATS) {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let format = path.extension().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&path).expect("read feed");
        let feed = feed_rs::parser::parse(bytes.as_slice())
            .unwrap_or_else(|e| panic!("feed-rs cannot read {}: {e}", path.display()));
        let entries: Vec<_> = feed
            .entries
            .iter()
            .map(|entry| {
                let title = entry.title.as_ref().map(shown_title);
                let link = entry.links.first().map(|link| link.href.clone());
                // feed-rs makes up ids for RSS 1.0 items instead of reading
                // rdf:about; feedparser checks those.
                let id = (format != "rdf").then(|| entry.id.clone());
                let dates: Vec<i64> = [entry.published, entry.updated]
                    .iter()
                    .flatten()
                    .map(|date| date.timestamp())
                    .collect();
                ReadEntry {
                    title,
                    link,
                    id,
                    dates,
                }
            })
            .collect();
        assert_entries("feed-rs", &path, &expected[&name], &entries);
    }
}

/// The title a reader built on feed-rs shows: RSS titles are plain text
/// (escaped once, as XML needs), Atom ones text or HTML as their type says.
fn shown_title(title: &feed_rs::model::Text) -> String {
    if title.content_type.essence().to_string() == "text/html" {
        unescape_html(&title.content)
    } else {
        title.content.clone()
    }
}

/// The text an HTML fragment without markup shows.
fn unescape_html(html: &str) -> String {
    assert!(!html.contains('<'), "markup in a title: {html}");
    html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[test]
fn atom_feeds_are_valid_against_the_rfc_4287_schema() {
    let site = corpus_site();
    let paths = site.feed_paths(&["atom"]);
    let output = Command::new("jing")
        .arg("-c")
        .arg(shared().join("schemas/atom.rnc"))
        .args(&paths)
        .output()
        .expect("jing is needed (.ci/run installs it)");
    assert_success(&output, "jing -c atom.rnc");
    assert!(
        output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn xml_feeds_are_well_formed_and_json_feeds_have_what_version_1_1_requires() {
    let site = corpus_site();
    let xml = site.feed_paths(&["rss", "atom", "rdf"]);
    let output = Command::new("python3")
        .arg("-c")
        .arg("import sys, xml.etree.ElementTree as ET\nfor p in sys.argv[1:]: ET.parse(p)")
        .args(&xml)
        .output()
        .expect("python3 is needed (.ci/run installs it)");
    assert_success(&output, "expat parsing the XML feeds");

    let config = site.config();
    for path in site.feed_paths(&["json"]) {
        let feed: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let what = path.display();
        assert_eq!(
            feed["version"], "https://jsonfeed.org/version/1.1",
            "{what}"
        );
        assert!(
            feed["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{what}"
        );
        let name = path.file_stem().unwrap().to_string_lossy();
        assert_eq!(
            feed["feed_url"].as_str(),
            Some(format!("{}feeds/{name}.json", config.site.base_url).as_str()),
            "{what}"
        );
        assert!(feed["home_page_url"].as_str().is_some(), "{what}");
        for author in feed["authors"].as_array().expect("authors") {
            assert!(author["name"].is_string(), "{what}");
        }
        for item in feed["items"].as_array().expect("items") {
            assert!(
                item["id"].as_str().is_some_and(|id| !id.is_empty()),
                "{what}"
            );
            assert!(
                item["content_html"].is_string() || item["content_text"].is_string(),
                "{what}: an item needs content_html or content_text"
            );
            for date in ["date_published", "date_modified"] {
                let text = item[date].as_str().expect("dates");
                chrono::DateTime::parse_from_rfc3339(text)
                    .unwrap_or_else(|e| panic!("{what}: {date} {text}: {e}"));
            }
            for author in item["authors"].as_array().into_iter().flatten() {
                assert!(author["name"].is_string() && author.get("url").is_none());
            }
        }
    }
}

#[test]
fn a_script_in_a_subject_is_text_in_every_reader() {
    let site = corpus_site();
    let key = post_key(site, "<script-subject@feeds.test>");
    let mut paths = site.feed_paths(&FORMATS);
    paths.retain(|path| {
        let name = path.file_stem().unwrap().to_string_lossy();
        name == "en" || name == "all"
    });
    let xml: Vec<PathBuf> = paths
        .iter()
        .filter(|path| path.extension().unwrap() != "json")
        .cloned()
        .collect();
    let parsed = feedparser(&xml);
    for path in &paths {
        let bytes = std::fs::read(path).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains(&key), "{} lacks the post", path.display());
        // Nowhere is it markup: not in the XML, and not in the HTML the
        // XML or JSON carries (JSON Feed titles are plain text by definition).
        let markup = if path.extension().unwrap() == "json" {
            let feed: Value = serde_json::from_str(&text).unwrap();
            feed["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item["content_html"].as_str().unwrap().to_string())
                .collect::<String>()
        } else {
            text.clone()
        };
        assert!(
            !markup.contains("<script") && !markup.contains("<img"),
            "{}",
            path.display()
        );
        if let Some(feed) = parsed.get(&path.display().to_string()) {
            let entry = feed["entries"]
                .as_array()
                .unwrap()
                .iter()
                .find(|entry| entry["link"].as_str().unwrap().ends_with(&key))
                .expect("the entry");
            assert_eq!(
                entry["title"],
                SCRIPT_SUBJECT,
                "feedparser, {}",
                path.display()
            );
            // A name is no place for markup: tags are dropped from it.
            assert_eq!(
                entry["author"],
                "Mallory & Co",
                "feedparser, {}",
                path.display()
            );
            let content = entry["content"][0].as_str().unwrap_or_default();
            assert!(
                content
                    .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot; ]]&gt;"),
                "feedparser, {}: {content}",
                path.display()
            );
            assert!(!content.contains("<script") && !content.contains("<img"));
            assert!(content.contains("<a href=\"https://example.org/?a=1&amp;b=\">"));
            assert!(!content.contains("href=\"javascript"));
        }

        let feed = feed_rs::parser::parse(bytes.as_slice()).unwrap();
        let entry = feed
            .entries
            .iter()
            .find(|entry| entry.links.iter().any(|l| l.href.ends_with(&key)))
            .expect("the entry");
        let shown = shown_title(entry.title.as_ref().unwrap());
        assert_eq!(shown, SCRIPT_SUBJECT, "feed-rs, {}", path.display());
        let html = entry.content.as_ref().and_then(|c| c.body.clone()).unwrap();
        assert!(!html.contains("<script") && html.contains("&lt;script&gt;"));
    }
}

fn post_key(site: &FeedSite, message_id: &str) -> String {
    site.posts()
        .into_iter()
        .find(|post| post["message_id"] == message_id)
        .unwrap_or_else(|| panic!("no post {message_id}"))["key"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn control_characters_and_noncharacters_never_reach_a_feed() {
    let site = corpus_site();
    let key = post_key(site, "<controls@feeds.test>");
    for path in site.feed_paths(&FORMATS) {
        let text = std::fs::read_to_string(&path).unwrap();
        let bad: BTreeSet<String> = text
            .chars()
            .filter(|&c| {
                let code = c as u32;
                (c.is_control() && c != '\n' && c != '\t')
                    || (0xfdd0..=0xfdef).contains(&code)
                    || code & 0xfffe == 0xfffe
                    || c == '\u{fffd}'
            })
            .map(|c| format!("U+{:04X}", c as u32))
            .collect();
        assert!(bad.is_empty(), "{}: {bad:?}", path.display());
        // JSON may escape them instead: it must not.
        assert!(
            !text.contains("\\u0007") && !text.contains("\\u001b"),
            "{}",
            path.display()
        );
    }
    let atom = std::fs::read_to_string(site.feed("en", "atom")).unwrap();
    assert!(atom.contains(&key));
    assert!(
        atom.contains("<title>Control chars in subject</title>"),
        "{atom}"
    );
    assert!(atom.contains("Bell tab\t vt ff esc[31m C1 nonchars lostbytes end"));
}

#[test]
fn a_date_in_the_future_becomes_the_time_of_arrival() {
    let site = corpus_site();
    let post = site
        .posts()
        .into_iter()
        .find(|post| post["message_id"] == "<controls@feeds.test>")
        .unwrap();
    assert!(post["date"].as_str().unwrap().starts_with("2099"));
    let received = post["received_at"].as_str().unwrap();
    let received = chrono::DateTime::parse_from_rfc3339(received).unwrap();
    let feed =
        feed_rs::parser::parse(std::fs::read(site.feed("en", "atom")).unwrap().as_slice()).unwrap();
    let entry = feed
        .entries
        .iter()
        .find(|entry| entry.id.ends_with(post["key"].as_str().unwrap()))
        .unwrap();
    assert_eq!(entry.published.unwrap().timestamp(), received.timestamp());
}

#[test]
fn right_to_left_and_cjk_posts_keep_their_text_and_language() {
    let site = corpus_site();
    let parsed = feedparser(&[site.feed("supplement", "atom"), site.feed("all", "atom")]);
    let supplement = &parsed[&site.feed("supplement", "atom").display().to_string()];
    // The Supplement has no one language: the feed says several, and each
    // entry its own.
    assert_eq!(supplement["language"], "mul", "{supplement}");
    let arabic_key = post_key(site, "<arabic@feeds.test>");
    let arabic = supplement["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["link"].as_str().unwrap().ends_with(&arabic_key))
        .expect("the Arabic post");
    assert_eq!(arabic["title"], "\u{200f}الحرية والمساواة: بيان");
    assert_eq!(arabic["language"], "ar");
    assert_eq!(arabic["author"], "سلمى");
    let japanese_key = post_key(site, "<japanese@feeds.test>");
    let japanese = supplement["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["link"].as_str().unwrap().ends_with(&japanese_key))
        .expect("the Japanese post");
    assert_eq!(japanese["title"], "世界人権宣言");
    assert_eq!(japanese["language"], "ja");

    // A Chinese summary is a few lines cut between characters, not a
    // whole paragraph, and its lines are joined without spaces.
    let zh: Value =
        serde_json::from_slice(&std::fs::read(site.feed("zh", "json")).unwrap()).unwrap();
    assert_eq!(zh["language"], "zh");
    let chinese_key = post_key(site, "<chinese@feeds.test>");
    let item = zh["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["id"].as_str().unwrap().ends_with(&chinese_key))
        .expect("the Chinese post");
    assert_eq!(
        item["title"],
        "世界人权宣言：人人生而自由，在尊严和权利上一律平等"
    );
    assert!(
        item["language"].is_null(),
        "the feed's own language is not repeated"
    );
    let summary = item["summary"].as_str().unwrap();
    assert!(summary.ends_with('…'), "{summary}");
    let width = unicode_width::UnicodeWidthStr::width(summary);
    let columns = tidings::feeds::text::SUMMARY_COLUMNS;
    assert!(
        (columns - 4..=columns).contains(&width),
        "{width}: {summary}"
    );
    let chars: Vec<char> = summary.chars().collect();
    assert!(
        !chars
            .windows(3)
            .any(|w| w[1] == ' ' && w[0] > '\u{2e80}' && w[2] > '\u{2e80}'),
        "no space between two CJK characters: {summary}"
    );
    let content = item["content_html"].as_str().unwrap();
    assert!(content.matches("<p>").count() >= 2, "paragraphs are kept");

    let greek: Value =
        serde_json::from_slice(&std::fs::read(site.feed("gr", "json")).unwrap()).unwrap();
    assert_eq!(greek["language"], "el");
    assert!(greek["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|item| item["title"] == "Ελλάδα: «απεργία» & διαδήλωση"
            && item["authors"][0]["name"] == "Αννα"));
}

/// Each `entry` of an Atom document: its id and the `xml:lang` on the
/// element itself.
fn entry_languages(xml: &str) -> Vec<(String, Option<String>)> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut entries = Vec::new();
    let mut in_id = false;
    loop {
        match reader.read_event().expect("well-formed Atom") {
            Event::Eof => break,
            Event::Start(start) if start.name().as_ref() == b"entry" => {
                let lang = start
                    .try_get_attribute("xml:lang")
                    .unwrap()
                    .map(|attribute| String::from_utf8(attribute.value.to_vec()).unwrap());
                entries.push((String::new(), lang));
            }
            Event::Start(start) => in_id = start.name().as_ref() == b"id",
            Event::Text(text) if in_id => {
                if let Some(entry) = entries.last_mut() {
                    entry.0 = text.decode().unwrap().into_owned();
                }
            }
            Event::End(_) => in_id = false,
            _ => {}
        }
    }
    entries
}

/// Every entry of the feeds of all lists says its own language, as the
/// post's row has it: Atom as `xml:lang` on the entry element itself, RSS
/// 2.0 and 1.0 as the item's `dc:language` (as feedparser reads it), JSON
/// Feed as the item's `language`.
#[test]
fn every_entry_of_the_feeds_of_all_lists_says_its_post_s_language() {
    let site = corpus_site();
    let languages: BTreeMap<String, Option<String>> = site
        .posts()
        .iter()
        .filter(|post| post["status"] == "published")
        .map(|post| {
            (
                post["key"].as_str().unwrap().to_string(),
                post["lang"].as_str().map(str::to_string),
            )
        })
        .collect();
    let parsed = feedparser(&[site.feed("all", "rss"), site.feed("all", "rdf")]);
    for format in FORMATS {
        let path = site.feed("all", format);
        // (entry id, its language) for each entry, in order.
        let entries: Vec<(String, Option<String>)> = match format {
            "atom" => entry_languages(&std::fs::read_to_string(&path).unwrap()),
            "json" => {
                let feed: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                assert!(feed["language"].is_null(), "{}", path.display());
                feed["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|item| {
                        (
                            item["id"].as_str().unwrap().to_string(),
                            item["language"].as_str().map(str::to_string),
                        )
                    })
                    .collect()
            }
            _ => parsed[&path.display().to_string()]["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|entry| {
                    (
                        entry["id"].as_str().unwrap().to_string(),
                        entry["entry_language"].as_str().map(str::to_string),
                    )
                })
                .collect(),
        };
        assert_eq!(entries.len(), 40, "{}", path.display());
        for (id, lang) in &entries {
            let key = id.rsplit('/').next().unwrap();
            assert_eq!(
                Some(lang),
                languages.get(key),
                "the language of the entry {id} in {}",
                path.display()
            );
        }
        // The newest posts of all lists are in several languages, so this
        // is no feed-wide language repeated.
        let distinct: BTreeSet<&str> = entries.iter().filter_map(|(_, l)| l.as_deref()).collect();
        assert!(distinct.len() >= 3, "{}: {distinct:?}", path.display());
    }
}

/// The text of every date and time element of an XML feed: Atom's
/// `updated` and `published`, RSS 2.0's `pubDate` and `lastBuildDate`,
/// RSS 1.0's `dc:date`.
fn xml_timestamps(xml: &str) -> Vec<(String, String)> {
    use quick_xml::events::Event;
    const DATES: [&[u8]; 5] = [
        b"updated",
        b"published",
        b"pubDate",
        b"lastBuildDate",
        b"dc:date",
    ];
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Eof => break,
            Event::Start(start) => {
                let name = start.name();
                current = DATES
                    .contains(&name.as_ref())
                    .then(|| String::from_utf8_lossy(name.as_ref()).into_owned());
            }
            Event::Text(text) => {
                if let Some(name) = current.take() {
                    found.push((name, text.decode().unwrap().into_owned()));
                }
            }
            Event::End(_) => current = None,
            _ => {}
        }
    }
    found
}

/// Timestamps are the real times of the posts, to the second: no fraction
/// (Atom `updated` once carried the row id as nanoseconds, which feedparser
/// and feed-rs drop, so only the documents themselves show it).
#[test]
fn every_timestamp_of_every_feed_is_whole_seconds() {
    let site = corpus_site();
    let mut checked = 0;
    for path in site.feed_paths(&FORMATS) {
        let text = std::fs::read_to_string(&path).unwrap();
        let what = path.display();
        let format = path.extension().unwrap().to_string_lossy().to_string();
        let timestamps: Vec<(String, String)> = if format == "json" {
            let feed: Value = serde_json::from_str(&text).unwrap();
            feed["items"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|item| {
                    ["date_published", "date_modified"]
                        .map(|field| (field.to_string(), item[field].as_str().unwrap().to_string()))
                })
                .collect()
        } else {
            xml_timestamps(&text)
        };
        // Each entry's dates, and the feed's own (JSON Feed has none).
        let (entry, per_entry, own) = match format.as_str() {
            "atom" => ("<entry", 2, 1),
            "rss" => ("<item>", 1, 1),
            "rdf" => ("<item rdf:about", 1, 1),
            _ => ("\"date_published\"", 2, 0),
        };
        let entries = text.matches(entry).count();
        assert_eq!(
            timestamps.len(),
            entries * per_entry + own,
            "{what}: {timestamps:?}"
        );
        for (name, value) in &timestamps {
            let parsed = if format == "rss" {
                chrono::DateTime::parse_from_rfc2822(value)
            } else {
                chrono::DateTime::parse_from_rfc3339(value)
            }
            .unwrap_or_else(|e| panic!("{what}: {name} {value}: {e}"));
            assert_eq!(
                parsed.timestamp_subsec_nanos(),
                0,
                "{what}: {name} {value} has a fraction of a second"
            );
            assert!(!value.contains('.'), "{what}: {name} {value}");
            checked += 1;
        }
    }
    assert!(checked > 2_000, "{checked} timestamps");
}

#[test]
fn held_and_rejected_posts_and_addresses_never_appear() {
    let site = corpus_site();
    let posts = site.posts();
    let hidden: Vec<&Value> = posts
        .iter()
        .filter(|post| post["status"] != "published")
        .collect();
    assert!(hidden
        .iter()
        .any(|post| post["message_id"] == "<held@feeds.test>"));
    assert!(
        hidden.len() > 50,
        "the corpus holds many held and rejected posts"
    );
    // Contributors' addresses: those that no published text shows must
    // not be anywhere in a feed (from headers, that is).
    let db = tidings::store::open(&site.config().database_path()).unwrap();
    let stored = tidings::store::posts::list(&db, &Default::default()).unwrap();
    let texts: Vec<String> = stored
        .iter()
        .filter(|post| post.status == tidings::post::Status::Published)
        .map(|post| format!("{}\n{}\n{}", post.title, post.author_name, post.body).to_lowercase())
        .collect();
    let addresses: BTreeSet<String> = stored
        .iter()
        .map(|post| post.author_address.to_lowercase())
        .filter(|address| address.contains('@'))
        .filter(|address| !texts.iter().any(|text| text.contains(address)))
        .collect();
    assert!(addresses.len() > 100, "{}", addresses.len());
    for (name, bytes) in site.files() {
        let text = String::from_utf8_lossy(&bytes).to_lowercase();
        // Every post key and every address-shaped word the file holds.
        let keys: BTreeSet<&str> = text
            .match_indices("posts/")
            .filter_map(|(at, _)| text.get(at + 6..at + 26))
            .collect();
        let words: BTreeSet<&str> = text
            .split(|c: char| !(c.is_alphanumeric() || "._%+-@".contains(c)))
            .map(|word| word.trim_matches('.'))
            .filter(|word| word.contains('@'))
            .collect();
        for post in &hidden {
            if let Some(key) = post["key"].as_str() {
                assert!(!keys.contains(key), "{name} shows non-published post {key}");
            }
        }
        let shown: Vec<&String> = addresses
            .iter()
            .filter(|address| words.contains(address.as_str()))
            .collect();
        assert!(
            shown.is_empty(),
            "{name} shows contributors' addresses {shown:?}"
        );
    }
}

#[test]
fn feeds_say_who_they_are_for_and_where_they_live() {
    let site = corpus_site();
    let config = site.config();
    let paths: Vec<PathBuf> = ["gr", "supplement", "all"]
        .iter()
        .flat_map(|name| FORMATS.iter().map(move |f| site.feed(name, f)))
        .collect();
    let xml: Vec<PathBuf> = paths
        .iter()
        .filter(|path| path.extension().unwrap() != "json")
        .cloned()
        .collect();
    let mut parsed = feedparser(&xml);
    for path in paths
        .iter()
        .filter(|path| path.extension().unwrap() == "json")
    {
        // The same questions, asked of the JSON document itself.
        let feed: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let links = serde_json::json!([
            ["alternate", feed["home_page_url"]],
            ["self", feed["feed_url"]]
        ]);
        parsed.insert(
            path.display().to_string(),
            serde_json::json!({"title": feed["title"], "language": feed["language"], "links": links}),
        );
    }
    for path in &paths {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let format = path.extension().unwrap().to_string_lossy().to_string();
        let feed = &parsed[&path.display().to_string()];
        let list = config.list(&name);
        let title = list.map_or(config.site.name.as_str(), |l| l.title.as_str());
        assert_eq!(feed["title"], title, "{}", path.display());
        let lang = match list.map(|l| l.lang.as_str()) {
            // Atom says a feed of several languages is one (xml:lang="mul");
            // RSS's language element takes one language or none.
            None | Some("mul") if format == "atom" => Some("mul"),
            Some("mul") => None,
            lang => lang,
        };
        if format != "rdf" || lang.is_some() {
            assert_eq!(feed["language"].as_str(), lang, "{}", path.display());
        }
        let links: Vec<(Option<String>, Option<String>)> =
            serde_json::from_value(feed["links"].clone()).unwrap();
        let home = match list {
            Some(list) => format!("{}lists/{}/", config.site.base_url, list.code),
            None => config.site.base_url.to_string(),
        };
        assert!(
            links
                .iter()
                .any(|(_, href)| href.as_deref() == Some(home.as_str())),
            "{}: {links:?}",
            path.display()
        );
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains(&format!("{}feeds/{name}.{format}", config.site.base_url)));
        if format != "json" {
            assert!(text.contains("tidings"), "a generator element");
        }
    }
    let rss = std::fs::read_to_string(site.feed("gr", "rss")).unwrap();
    assert!(rss.contains("<atom:link href=\"https://news.example.net/a-infos/feeds/gr.rss\" rel=\"self\" type=\"application/rss+xml\"/>"));
    assert!(rss.contains("<language>el</language>"));
}

/// A smaller site for the tests that change things.
fn small_site() -> FeedSite {
    let site = FeedSite::new();
    let generated = generate_posts(site.dir.path(), 5, 60);
    let hostile = write_hostile_messages(site.dir.path());
    site.import(&[&generated, &hostile]);
    site
}

#[test]
fn rebuilding_gives_identical_bytes_and_writes_nothing() {
    let site = small_site();
    let files = site.files();
    let mtimes = site.mtimes();
    assert!(files.len() >= 68, "{:?}", files.keys());
    let again = site.run(&["feeds"]);
    assert!(
        again.contains("0 feed files written, 68 unchanged"),
        "{again}"
    );
    assert_eq!(site.files(), files);
    assert_eq!(
        site.mtimes(),
        mtimes,
        "no file, not even the fingerprints, is touched"
    );
    // A feed removed by hand is written again, and only that one.
    std::fs::remove_file(site.feed("de", "rdf")).unwrap();
    let output = site.run(&["feeds"]);
    assert!(
        output.contains("1 feed files written, 67 unchanged"),
        "{output}"
    );
    assert_eq!(site.files(), files);
}

#[test]
fn ids_survive_a_change_of_base_url() {
    let site = small_site();
    let before = feedparser(&site.feed_paths(&XML_FORMATS));
    let json_before = site
        .feed_paths(&["json"])
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect::<Vec<_>>();
    site.set_base_url("http://mirror.example.com/news/");
    site.run(&["feeds"]);
    let after = feedparser(&site.feed_paths(&XML_FORMATS));
    let json_after = site
        .feed_paths(&["json"])
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect::<Vec<_>>();
    for (old, new) in json_before.iter().zip(&json_after) {
        let items = |bytes: &[u8]| -> Vec<String> {
            let feed: Value = serde_json::from_slice(bytes).unwrap();
            feed["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_string())
                .collect()
        };
        assert_ne!(old, new, "the links changed");
        assert_eq!(items(old), items(new));
    }
    let mut compared = 0;
    for (path, feed) in &before {
        let entries = |feed: &Value| -> Vec<(String, String)> {
            feed["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["id"].as_str().unwrap().to_string(),
                        e["link"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        let old = entries(feed);
        let new = entries(&after[path]);
        assert_eq!(old.len(), new.len());
        for ((old_id, old_link), (new_id, new_link)) in old.iter().zip(&new) {
            assert_eq!(old_id, new_id, "{path}");
            assert!(old_link.starts_with(BASE_URL), "{old_link}");
            assert_eq!(
                new_link,
                &old_link.replace(BASE_URL, "http://mirror.example.com/news/")
            );
            compared += 1;
        }
    }
    assert!(compared > 200);
}

#[test]
fn an_ingested_post_updates_its_list_and_all_and_nothing_else() {
    let site = small_site();
    let files = site.files();
    let mtimes = site.mtimes();
    let message = b"From: Ida <ida@example.org>\r\nTo: a-infos-de@lists.example.org\r\nSubject: (de) Neue Meldung aus Berlin\r\nMessage-ID: <ingested@feeds.test>\r\nDate: Sun, 07 Jan 2024 10:00:00 +0100\r\n\r\nAlle Menschen sind frei und gleich an Wuerde und Rechten geboren.\r\n";
    let output = site.ingest(message);
    assert_success(&output, "tidings ingest");
    let key = post_key(&site, "<ingested@feeds.test>");
    let mut want: BTreeSet<String> = ["de", "all"]
        .iter()
        .flat_map(|name| FORMATS.iter().map(move |f| format!("{name}.{f}")))
        .collect();
    want.insert(".fingerprints".to_string());
    // The rebuild runs detached from `ingest`, which answers the MTA first.
    let changed = || -> BTreeSet<String> {
        site.files()
            .into_iter()
            .filter(|(name, bytes)| files.get(name) != Some(bytes))
            .map(|(name, _)| name)
            .collect()
    };
    wait_until("the de and all feeds to be rebuilt", PATIENCE, || {
        want.is_subset(&changed())
    });
    // `tidings feeds` takes the feeds lock only once the detached rebuild has
    // let go of it, and then finds nothing left to write: after it, the
    // rebuild is over, and what it changed is all it will ever change.
    let settled = site.run(&["feeds"]);
    assert!(settled.starts_with("0 feed files written"), "{settled}");
    assert_eq!(changed(), want);
    for name in &want {
        if name != ".fingerprints" {
            let text = std::fs::read_to_string(site.feeds_dir().join(name)).unwrap();
            assert!(text.contains(&key), "{name} lacks the new post");
        }
    }
    let mtimes_after = site.mtimes();
    for (name, mtime) in &mtimes {
        if !want.contains(name) {
            assert_eq!(mtimes_after.get(name), Some(mtime), "{name} was rewritten");
        }
    }
    // A duplicate, or a held post, changes nothing at all. Whatever either
    // did to the store, a full rebuild after them (which also waits for any
    // rebuild they started) would write it out, so nothing may be written.
    assert_success(&site.ingest(message), "duplicate ingest");
    let held = b"From: x@example.org\r\nTo: a-infos@lists.example.org\r\nSubject: (xx) Nobody serves this\r\n\r\ntext\r\n";
    assert_success(&site.ingest(held), "held ingest");
    let rebuilt = site.run(&["feeds"]);
    assert!(rebuilt.starts_with("0 feed files written"), "{rebuilt}");
    assert_eq!(site.mtimes(), mtimes_after);
}

#[test]
fn a_burst_of_concurrent_ingests_leaves_no_post_out() {
    let site = FeedSite::new();
    site.run(&["feeds"]);
    let children: Vec<_> = (0..16)
        .map(|n| {
            let message = format!(
                "From: P{n} <p{n}@example.org>\r\nTo: a-infos-fr@lists.example.org\r\nSubject: (fr) Communiqué numéro {n}\r\nMessage-ID: <burst-{n}@feeds.test>\r\nDate: Mon, 08 Jan 2024 10:00:{n:02} +0100\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTous les êtres humains naissent libres et égaux ({n}).\r\n"
            );
            let mut child = site
                .command(&["ingest"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn tidings ingest");
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(message.as_bytes()).unwrap();
            drop(stdin);
            child
        })
        .collect();
    for child in children {
        assert_success(&child.wait_with_output().unwrap(), "concurrent ingest");
    }
    let complete = |format: &str| {
        let text = std::fs::read_to_string(site.feed("fr", format)).unwrap_or_default();
        (0..16).all(|n| {
            text.contains(&format!("Communiqué numéro {n}<"))
                || text.contains(&format!("Communiqué numéro {n}\""))
        })
    };
    for format in FORMATS {
        wait_until(
            &format!("fr.{format} to carry all 16 posts"),
            PATIENCE,
            || complete(format),
        );
    }
    // Whoever regenerated last left every feed current.
    let output = site.run(&["feeds"]);
    assert!(output.starts_with("0 feed files written"), "{output}");
}

#[test]
fn empty_feeds_are_valid_too() {
    let site = FeedSite::new();
    let output = site.run(&["feeds"]);
    assert!(output.contains("68 feed files written"), "{output}");
    let paths = site.feed_paths(&XML_FORMATS);
    let parsed = feedparser(&paths);
    for path in &paths {
        let feed = &parsed[&path.display().to_string()];
        assert_eq!(
            feed["bozo"],
            false,
            "{}: {}",
            path.display(),
            feed["bozo_exception"]
        );
        assert!(feed["entries"].as_array().unwrap().is_empty());
    }
    for path in site.feed_paths(&FORMATS) {
        let feed = feed_rs::parser::parse(std::fs::read(&path).unwrap().as_slice())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(feed.entries.is_empty());
    }
    let output = Command::new("jing")
        .arg("-c")
        .arg(shared().join("schemas/atom.rnc"))
        .args(site.feed_paths(&["atom"]))
        .output()
        .expect("jing is needed (.ci/run installs it)");
    assert_success(&output, "jing on empty feeds");
}

/// The W3C Feed Validation Service's own code, run on every feed the
/// corpus gives. It is not part of the repository: fetch w3c/feedvalidator,
/// install its requirements (lxml, html5lib, rdflib), then
/// `TIDINGS_FEEDVALIDATOR=/path/to/feedvalidator cargo test --test feeds -- --ignored`.
#[test]
#[ignore = "needs a checkout of w3c/feedvalidator in TIDINGS_FEEDVALIDATOR"]
fn w3c_feedvalidator_reports_no_error_or_warning() {
    let checkout = std::env::var("TIDINGS_FEEDVALIDATOR")
        .expect("TIDINGS_FEEDVALIDATOR must name a checkout of w3c/feedvalidator");
    const SCRIPT: &str = r#"
import os, sys
sys.path.insert(0, os.path.join(sys.argv[1], 'src'))
import feedvalidator
from feedvalidator import compatibility
from feedvalidator.formatter.text_plain import Formatter
base, failed = sys.argv[2], 0
for path in sys.argv[3:]:
    with open(path, 'rb') as f:
        try:
            events = feedvalidator.validateStream(f, firstOccurrenceOnly=1, base=base + os.path.basename(path))['loggedEvents']
        except feedvalidator.logging.ValidationFailure as failure:
            events = [failure.event]
    output = Formatter(compatibility.AA(events))
    if output:
        failed += 1
        print(path + ':\n  ' + '\n  '.join(output))
sys.exit(1 if failed else 0)
"#;
    let site = corpus_site();
    let python = std::env::var("TIDINGS_FEEDVALIDATOR_PYTHON").unwrap_or("python3".into());
    let output = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(&checkout)
        .arg(format!("{}feeds/", site.config().site.base_url))
        .args(site.feed_paths(&["rss", "atom", "rdf"]))
        .output()
        .expect("python3 runs the feed validator");
    assert_success(&output, "the W3C feed validator");
}

/// A file a writer is about to rename over a feed (`files`: `.NAME.PID.tmp`).
fn is_temporary(path: &std::path::Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.starts_with('.') && name.ends_with(".tmp")
}

/// A post of several megabytes with a subject of hundreds of kilobytes
/// that tries to turn its text around (U+202E) and hide a word break
/// (U+200B): each feed carries the post's first `[feeds] entry_chars`
/// characters, cut at a paragraph and ended with a link to the whole
/// post, and a title cut to `[ingest] max_title_chars` without the
/// controls. Feeds stay small however big the posts are.
#[test]
fn a_huge_post_is_cut_in_every_feed_and_its_title_kept_short_and_plain() {
    let site = FeedSite::new();
    let paragraph = "Words of a long report that goes on and on. ".repeat(40);
    let body = format!("{paragraph}\r\n\r\n").repeat(2_000);
    assert!(body.len() > 3_000_000);
    let subject = format!(
        "(en) Huge \u{202e}txt.exe \u{200b}report {}",
        "very ".repeat(60_000)
    );
    let raw = format!(
        "From: Ana <ana@example.org>\r\nTo: a-infos-en@lists.example.org\r\nSubject: {subject}\r\n\
         Message-ID: <huge@feeds.test>\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    );
    let folder = site.dir.path().join("huge");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("huge.eml"), raw).unwrap();
    site.import(&[&folder]);
    let key = post_key(&site, "<huge@feeds.test>");
    let config = site.config();
    let permalink = format!("{}posts/{key}", config.site.base_url);
    for name in ["en", "all"] {
        for format in FORMATS {
            let path = site.feed(name, format);
            let size = std::fs::metadata(&path).unwrap().len();
            assert!(size < 200_000, "{} is {size} bytes", path.display());
        }
    }
    let xml: Vec<PathBuf> = XML_FORMATS
        .iter()
        .map(|format| site.feed("en", format))
        .collect();
    for (path, feed) in feedparser(&xml) {
        let entry = &feed["entries"][0];
        let title = entry["title"].as_str().unwrap();
        assert!(
            title.starts_with("Huge txt.exe report very"),
            "{path}: {title:.40}"
        );
        assert!(
            title.chars().count() <= 500 && title.ends_with("very…"),
            "{path}"
        );
        let content = entry["content"][0]
            .as_str()
            .or(entry["summary"].as_str())
            .unwrap();
        let text = content.replace("<p>", "").replace("</p>", "");
        assert!(
            content.ends_with(&format!(
                "<p><a href=\"{permalink}\">Read the whole post</a></p>"
            )),
            "{path}: {}",
            &content[content.len() - 200..]
        );
        assert!(
            text.len() <= 20_000 + 200,
            "{path}: {} bytes of text",
            text.len()
        );
        // Cut after a whole paragraph: the last one shown ends its sentence.
        assert!(content.contains("on and on.</p>\n<p><a"), "{path}");
    }
    // The store keeps the post whole, and the raw message the subject.
    let post = site
        .posts()
        .into_iter()
        .find(|post| post["key"] == key.as_str())
        .unwrap();
    assert!(post["title"].as_str().unwrap().chars().count() <= 500);
    let raw = site.run(&["posts", "show", &post["id"].to_string(), "--raw"]);
    assert!(raw.contains("\u{202e}txt.exe") && raw.len() > 3_000_000);
}
