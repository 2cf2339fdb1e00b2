//! The archive on the web through the running daemon: every page built
//! and served, well formed (html5lib), every link of every page and feed
//! answering, a post's versions in other languages linked both ways,
//! hostile posts shown as text, held posts nowhere, search in Russian,
//! Chinese and Greek, and the pages loaded in headless Chromium.

mod common;

use std::path::Path;

use common::daemon::{get, python, Daemon};
use common::{wait_until, Tidings, PATIENCE};
use serde_json::{json, Value};

const CRAWL: &str = include_str!("common/crawl_site.py");

/// A post mailed to `list`'s address through the pipe; returns its key.
fn post(tidings: &Tidings, list: &str, message_id: &str, subject: &str, body: &str) {
    let raw = format!(
        "From: Ana Libre <ana@example.net>\r\nTo: a-infos-{list}@lists.example.org\r\n\
         Subject: {subject}\r\nMessage-ID: <{message_id}>\r\n\
         Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    );
    let output = tidings.run_with_stdin(
        &["ingest", &format!("a-infos-{list}@lists.example.org")],
        &[],
        raw.as_bytes(),
    );
    assert!(
        output.status.success(),
        "ingest {subject}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn key_of(tidings: &Tidings, message_id: &str) -> String {
    tidings
        .posts(&[])
        .into_iter()
        .find(|post| post["message_id"] == format!("<{message_id}>"))
        .and_then(|post| post["key"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no post {message_id}"))
}

fn page(daemon: &Daemon, path: &str) -> String {
    let (status, _, body) = get(daemon, path, json!({}));
    assert_eq!(status, 200, "GET {path}");
    body
}

/// Keys of the posts a search page lists.
fn found(daemon: &Daemon, query: &str) -> Vec<String> {
    let path = format!("/search?q={}", urlencode(query));
    page(daemon, &path)
        .split("posts&#x2f;")
        .skip(1)
        .map(|rest| rest.chars().take_while(char::is_ascii_hexdigit).collect())
        .collect()
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

struct Archive {
    tidings: Tidings,
    daemon: Daemon,
    keys: Value,
}

fn archive() -> Archive {
    let tidings = Tidings::new();
    // A real archive first: the corpus's A-Infos-style submissions.
    let mbox = common::shared().join("corpus/generated/sample-seed1.mbox");
    tidings.ok(&["import", mbox.to_str().unwrap()]);
    post(
        &tidings,
        "en",
        "story-en@test",
        "(en) France, UCL AL #316 = International, Mirzali Mahammad: the real enemy (ct, fr)",
        "The real enemy is at home.\r\n\r\nA second paragraph.",
    );
    post(
        &tidings,
        "fr",
        "story-fr@test",
        "(fr) France, UCL AL #316 - Internationale, Mirzali Mahammad : le vrai ennemi (en, ct)",
        "Le vrai ennemi est chez nous.",
    );
    post(
        &tidings,
        "ru",
        "ru@test",
        "(ru) Россия, КРАС: шахтёры объявили забастовку",
        "Шахтёры Кузбасса объявили бессрочную забастовку солидарности.",
    );
    post(
        &tidings,
        "zh",
        "zh@test",
        "(zh) 中国: 工人运动",
        "今天工厂的工人开始罢工，要求提高工资。",
    );
    post(
        &tidings,
        "gr",
        "gr@test",
        "(gr) Ελλάδα: γενική απεργία στην Αθήνα",
        "Η γενική απεργία ξεκίνησε σήμερα στην Αθήνα.",
    );
    let long_word = "A".repeat(200_000);
    post(
        &tidings,
        "en",
        "xss@test",
        "(en) <script>alert(1)</script> \"><img src=x onerror=alert(2)> zzhostile",
        &format!(
            "<script>alert(3)</script>\r\n\"><img src=x onerror=alert(4)>\r\n\
             <a href=\"javascript:alert(5)\">click</a> javascript:alert(6)\r\n\r\n{long_word}"
        ),
    );
    // Held: no text in the body. Its title must be found nowhere.
    post(&tidings, "en", "held@test", "(en) zzheldword secret", "");
    let keys = json!({
        "en": key_of(&tidings, "story-en@test"),
        "fr": key_of(&tidings, "story-fr@test"),
        "ru": key_of(&tidings, "ru@test"),
        "zh": key_of(&tidings, "zh@test"),
        "gr": key_of(&tidings, "gr@test"),
        "xss": key_of(&tidings, "xss@test"),
    });
    // Every list's digest in every format as it would go out now, before
    // the daemon sends them.
    let digests = tidings.run(&["digest", "--now", "--dry-run"]);
    assert!(
        digests.status.success(),
        "digest --dry-run: {}",
        String::from_utf8_lossy(&digests.stderr)
    );
    std::fs::write(tidings.path().join("digests.mbox"), &digests.stdout).unwrap();
    let daemon = Daemon::start(&tidings);
    let site = tidings.path().join("site");
    for key in ["en", "fr", "ru", "zh", "gr", "xss"] {
        let file = site.join(format!("posts/{}.html", keys[key].as_str().unwrap()));
        wait_until(&format!("the page of post {key}"), PATIENCE, || {
            file.exists()
        });
    }
    Archive {
        tidings,
        daemon,
        keys,
    }
}

fn key<'a>(archive: &'a Archive, name: &str) -> &'a str {
    archive.keys[name].as_str().unwrap()
}

#[test]
fn every_page_is_well_formed_and_every_link_of_pages_and_feeds_answers() {
    let archive = archive();
    let (host, port) = archive.daemon.address("http");
    let mbox = archive.tidings.path().join("digests.mbox");
    let report: Value = serde_json::from_str(&python(
        CRAWL,
        &[
            "http://127.0.0.1:8080/",
            &format!("http://{host}:{port}/"),
            "--mbox",
            mbox.to_str().unwrap(),
            "",
            "syndication/",
        ],
    ))
    .unwrap();
    assert_eq!(report["failures"], json!([]), "{report}");
    assert!(report["mail_links"].as_u64().unwrap() > 100, "{report}");
    // Every post of the archive has its page, and the crawl found them all.
    let published = archive.tidings.posts(&["--status", "published"]).len() as u64;
    assert!(published > 150, "{published} published");
    assert!(
        report["pages"].as_u64().unwrap() > published,
        "{report}: {published} posts"
    );
}

#[test]
fn a_story_s_versions_link_each_other_in_their_own_language() {
    let archive = archive();
    let en = page(&archive.daemon, &format!("/posts/{}", key(&archive, "en")));
    let fr = page(&archive.daemon, &format!("/posts/{}", key(&archive, "fr")));
    let fr_url = format!("posts&#x2f;{}", key(&archive, "fr"));
    let en_url = format!("posts&#x2f;{}", key(&archive, "en"));
    assert!(
        en.contains(&format!(
            "hreflang=\"fr\" href=\"http:&#x2f;&#x2f;127.0.0.1:8080&#x2f;{fr_url}\""
        )),
        "{en}"
    );
    assert!(
        en.contains(">Français</a>"),
        "the French version named in French"
    );
    assert!(fr.contains(&format!("&#x2f;{en_url}\"")), "{fr}");
    assert!(fr.contains(">English</a>"));
    assert!(en.contains("<html lang=\"en\" dir=\"ltr\">"));
    // The Atom entries link the versions too.
    let atom = page(&archive.daemon, "/feeds/all.atom");
    let fr_link = format!(
        "<link href=\"http://127.0.0.1:8080/posts/{}\" rel=\"alternate\" hreflang=\"fr\" type=\"text/html\"/>",
        key(&archive, "fr")
    );
    assert!(atom.contains(&fr_link), "{fr_link} not in all.atom");
    // A post that is not one of the story links neither.
    let ru = page(&archive.daemon, &format!("/posts/{}", key(&archive, "ru")));
    assert!(!ru.contains(&fr_url) && !ru.contains("hreflang=\"fr\" href"));
    assert!(ru.contains("lang=\"ru\""));
}

#[test]
fn hostile_posts_are_shown_as_text_and_held_posts_nowhere() {
    let archive = archive();
    let xss = page(&archive.daemon, &format!("/posts/{}", key(&archive, "xss")));
    assert!(
        xss.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "title as text"
    );
    assert!(!xss.contains("<script"), "no script element");
    assert!(!xss.contains("<img"), "no image element");
    assert!(!xss.contains("href=\"javascript:"), "no javascript: link");
    assert!(
        xss.contains("overflow-wrap: anywhere"),
        "the long word wraps"
    );
    assert!(xss.contains(&"A".repeat(1000)));
    let home = page(&archive.daemon, "/");
    assert!(home.contains("zzhostile") && !home.contains("<script"));

    // The held post: in no page and no search.
    let site = archive.tidings.path().join("site");
    for entry in walk(&site) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        assert!(
            !text.contains("zzheldword"),
            "{} shows a held post",
            entry.display()
        );
    }
    assert_eq!(found(&archive.daemon, "zzheldword"), Vec::<String>::new());
    assert_eq!(
        found(&archive.daemon, "zzhostile"),
        vec![key(&archive, "xss")]
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn search_finds_posts_in_russian_chinese_and_greek_and_no_query_is_an_error() {
    let archive = archive();
    assert!(found(&archive.daemon, "забастовку").contains(&key(&archive, "ru").to_string()));
    assert_eq!(found(&archive.daemon, "罢工"), vec![key(&archive, "zh")]);
    // One character of the word alone, in another order: not the word.
    assert_eq!(found(&archive.daemon, "工罢"), Vec::<String>::new());
    assert_eq!(found(&archive.daemon, "απεργία"), vec![key(&archive, "gr")]);
    assert_eq!(found(&archive.daemon, "απεργια"), vec![key(&archive, "gr")]);
    assert_eq!(
        found(&archive.daemon, "ΑΠΕΡΓΙΑ Αθηνα"),
        vec![key(&archive, "gr")]
    );
    for hostile in [
        "\"unbalanced AND (",
        "*",
        "NEAR(",
        "title:x",
        "\"",
        "))))",
        "",
    ] {
        let path = format!("/search?q={}&lang=zz&year=abc&page=-1", urlencode(hostile));
        page(&archive.daemon, &path);
    }
    // Filters: the Russian word in Greek posts is not found.
    let path = format!("/search?q={}&lang=gr", urlencode("забастовку"));
    assert!(!page(&archive.daemon, &path).contains(key(&archive, "ru")));
}

/// Whether a PNG shows more than a blank page: its decompressed pixel
/// rows hold many distinct byte values.
const NOT_BLANK: &str = r#"
import sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
position, idat = 8, b""
while position < len(data):
    length = int.from_bytes(data[position:position + 4], "big")
    kind = data[position + 4:position + 8]
    if kind == b"IDAT":
        idat += data[position + 8:position + 8 + length]
    position += 12 + length
print(len(set(zlib.decompress(idat))))
"#;

#[test]
fn headless_chromium_renders_the_pages() {
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| Path::new(path).exists())
    else {
        eprintln!("skipped: no chromium here (.ci/run installs it)");
        return;
    };
    let archive = archive();
    let (host, port) = archive.daemon.address("http");
    let profile = tempfile::tempdir().unwrap();
    for (name, path) in [
        ("home", "/".to_string()),
        ("list", "/lists/en/".to_string()),
        ("chinese", format!("/posts/{}", key(&archive, "zh"))),
        ("greek", format!("/posts/{}", key(&archive, "gr"))),
        ("search", format!("/search?q={}", urlencode("απεργία"))),
    ] {
        let shot = archive.tidings.path().join(format!("{name}.png"));
        let status = std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=800,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--screenshot={}", shot.display()))
            .arg(format!("http://{host}:{port}{path}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "chromium on {path}");
        let colours: usize = python(NOT_BLANK, &[shot.to_str().unwrap()])
            .trim()
            .parse()
            .unwrap();
        assert!(colours > 16, "{name}: the screenshot is blank ({colours})");
    }
}
