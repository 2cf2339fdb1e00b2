//! Promise 4 (issue 13): the disk fills or the store is locked, and
//! tidings survives it. The disk is a tmpfs of a few megabytes the test
//! mounts (tests run as root, as CI does; where it cannot mount, a test
//! fails saying so) and fills with a ballast file; the lock is another
//! process's (Python's sqlite3) exclusive transaction. Mail gets 451 or
//! exit 75 and never a 5xx, the daemon keeps answering,
//! the files it serves are the last whole ones, and once space returns or
//! the lock goes every post, page, feed, digest and confirmation lands,
//! each once.

mod common;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::daemon::{python, Daemon};
use common::{wait_for, wait_until, Peer, Tidings, PATIENCE};
use serde_json::Value;
use tidings::deliver::DeliveryState;
use tidings::store::{self, deliveries, digests, Connection};

/// The English list's posting address.
const EN: &str = "a-infos-en@lists.example.org";

/// How long the store waits for another writer (`store::BUSY_TIMEOUT`):
/// a lock held longer than this makes the write fail.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A tmpfs of a given size mounted on a directory for as long as this
/// lives: a disk the test can fill without filling the machine's.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` on `dir` (made if missing). Fails the test,
    /// saying why, when it cannot: a test of a full disk that quietly ran
    /// on a roomy one would prove nothing. (RLIMIT_FSIZE is no stand-in:
    /// past it the kernel sends SIGXFSZ, which kills a daemon that does not
    /// ignore it, where a full disk only fails a write.)
    fn mount(dir: &Path, bytes: u64) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0755")])
            .arg("tmpfs")
            .arg(dir)
            .output()
            .expect("mount(8) runs");
        assert!(
            output.status.success(),
            "these tests need a small file system of their own to fill, and \
             `mount -t tmpfs tmpfs {}` failed: {}; run them as root (CI does) or in a \
             container allowed to mount",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    /// Bytes still free for files.
    fn free(&self) -> u64 {
        let stat = rustix::fs::statvfs(&self.dir).unwrap();
        stat.f_bavail * stat.f_frsize
    }

    /// Fills the file system with a ballast file called `name`, then gives
    /// `room` bytes of it back.
    fn fill_leaving(&self, name: &str, room: u64) -> Ballast {
        let path = self.dir.join(name);
        let mut file = File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) if error.raw_os_error() == Some(28) => break,
                Err(error) => panic!("writing the ballast: {error}"),
            }
        }
        let length = file.metadata().unwrap().len();
        file.set_len(length.saturating_sub(room)).unwrap();
        let free = self.free();
        assert!(
            free <= room + 64 * 1024,
            "{free} bytes are still free after filling {}",
            self.dir.display()
        );
        Ballast { path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // A process the test started may still hold a file open in it:
        // detached then, and gone once it lets go.
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// The file that fills a [`Tmpfs`]; space returns when it is removed.
struct Ballast {
    path: PathBuf,
}

impl Ballast {
    fn remove(self) {
        fs::remove_file(&self.path).unwrap();
    }
}

/// Another process (Python's sqlite3, not tidings) holding the store's
/// write lock in an exclusive transaction until it is released. Readers go
/// on reading (WAL); every writer waits its busy timeout, then fails.
struct StoreLock {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl StoreLock {
    /// Takes the lock of the database at `database` (waiting for a write
    /// under way to end) and returns once it holds it.
    fn take(database: &Path) -> StoreLock {
        const LOCKER: &str = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"#;
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(LOCKER)
            .arg(database)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked", "the locker did not take the lock");
        let stdin = child.stdin.take();
        StoreLock { child, stdin }
    }

    /// Lets go of the lock and waits until the locker has.
    fn release(mut self) {
        drop(self.stdin.take());
        assert!(self.child.wait().unwrap().success(), "the locker failed");
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` with `from` replaced by `to`, once; `from` must be there.
fn edit(text: String, from: &str, to: &str) -> String {
    assert!(text.contains(from), "lists.toml has no `{from}`");
    text.replacen(from, to, 1)
}

/// A post to the English list with `subject` and at least `size` bytes,
/// CRLF throughout, no line beginning with a dot: the bytes the store must
/// keep.
fn post(message_id: &str, subject: &str, size: usize) -> Vec<u8> {
    let mut text = format!(
        "From: Ana <ana@example.org>\r\nTo: {EN}\r\nSubject: (en) {subject}\r\n\
         Message-ID: {message_id}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         {subject}: the report from the picket line.\r\n"
    );
    let mut line = 0;
    while text.len() < size {
        line += 1;
        text.push_str(&format!(
            "Line {line}: the dockers held the gate of the port for another hour.\r\n"
        ));
    }
    text.into_bytes()
}

/// The mail protocols of the daemon.
#[derive(Debug, Clone, Copy)]
enum Protocol {
    Smtp,
    Lmtp,
}

/// A server's reply: its code and its text (the lines joined).
#[derive(Debug)]
struct Reply {
    code: u16,
    text: String,
}

/// Reads one reply, of one or more lines.
fn read_reply(reader: &mut impl BufRead) -> Reply {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the server closed the connection"
        );
        let code = line.get(..3).and_then(|code| code.parse().ok());
        let code: u16 = code.unwrap_or_else(|| panic!("not a reply: {line:?}"));
        text.push_str(line.get(4..).unwrap_or("").trim_end());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Reply { code, text };
        }
        text.push(' ');
    }
}

/// Sends `message` to the English list over SMTP or LMTP, in a session of
/// its own; the reply to its data (LMTP's for the one recipient), or the
/// first reply that was not a success.
fn deliver(daemon: &Daemon, protocol: Protocol, message: &[u8]) -> Reply {
    let (host, port) = daemon.address(match protocol {
        Protocol::Smtp => "smtp",
        Protocol::Lmtp => "lmtp",
    });
    let stream = TcpStream::connect((host.as_str(), port)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let greeting = read_reply(&mut reader);
    assert_eq!(greeting.code, 220, "{greeting:?}");
    let hello = match protocol {
        Protocol::Smtp => "EHLO client.example.org",
        Protocol::Lmtp => "LHLO client.example.org",
    };
    for (command, expected) in [
        (hello.to_string(), 250),
        ("MAIL FROM:<ana@example.org>".to_string(), 250),
        (format!("RCPT TO:<{EN}>"), 250),
        ("DATA".to_string(), 354),
    ] {
        writer
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        let reply = read_reply(&mut reader);
        if reply.code != expected {
            return reply;
        }
    }
    writer.write_all(message).unwrap();
    writer.write_all(b".\r\n").unwrap();
    let reply = read_reply(&mut reader);
    let _ = writer.write_all(b"QUIT\r\n");
    reply
}

/// Asserts that `reply` is a temporary failure with the daemon's 4.3.0.
fn assert_deferred(reply: &Reply, what: &str) {
    assert_eq!(reply.code, 451, "{what}: {reply:?}");
    assert!(reply.text.starts_with("4.3.0"), "{what}: {reply:?}");
}

/// Runs `tidings ingest` (the MTA pipe) with `message`; its status code and
/// what it said on stderr.
fn pipe(tidings: &Tidings, message: &[u8]) -> (Option<i32>, String) {
    let output = tidings.run_with_stdin(&["ingest", EN], &[], message);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The store of `tidings`, opened by the test.
fn store(tidings: &Tidings) -> Connection {
    store::open(&tidings.path().join("data/tidings.sqlite3")).unwrap()
}

/// Every stored message, by Message-ID: how often it is stored, and its
/// bytes.
fn stored_messages(db: &Connection) -> BTreeMap<String, (usize, Vec<u8>)> {
    let mut statement = db
        .prepare(
            "SELECT p.message_id, r.bytes FROM posts p JOIN raw_messages r ON r.post_id = p.id",
        )
        .unwrap();
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .unwrap();
    let mut stored = BTreeMap::new();
    for row in rows {
        let (message_id, bytes) = row.unwrap();
        let entry = stored.entry(message_id).or_insert((0, Vec::new()));
        entry.0 += 1;
        entry.1 = bytes;
    }
    stored
}

/// The daemon's log so far.
fn log(tidings: &Tidings) -> String {
    fs::read_to_string(tidings.path().join("serve.log")).unwrap_or_default()
}

/// The daemon's log after the first line holding `mark`.
fn log_after(tidings: &Tidings, mark: &str) -> String {
    let log = log(tidings);
    match log.find(mark) {
        Some(at) => log[at..].to_string(),
        None => String::new(),
    }
}

/// Asserts that the daemon logged no panic.
fn assert_no_panic(tidings: &Tidings) {
    let log = log(tidings);
    assert!(!log.contains("panicked"), "the daemon panicked:\n{log}");
}

/// What the daemon answered for a path.
#[derive(Debug)]
struct Fetched {
    status: u16,
    body: Vec<u8>,
    /// Why the body is not a whole document of its kind (XML for feeds but
    /// JSON Feed, strict HTML ending in `</html>` for pages), if it is not.
    problem: Option<String>,
}

/// Fetches `paths` from the daemon with urllib, without compression, and
/// checks each body whole: feeds by Python's XML and JSON parsers, pages
/// by html5lib (strict) and their closing tag.
fn fetch(daemon: &Daemon, paths: &[&str]) -> BTreeMap<String, Fetched> {
    const FETCH: &str = r#"
import base64, json, sys, urllib.error, urllib.request, xml.etree.ElementTree
import html5lib
base = sys.argv[1]
for path in sys.argv[2:]:
    request = urllib.request.Request(base + path, headers={"Accept-Encoding": "identity"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    problem = None
    if status == 200:
        try:
            if path.endswith((".rss", ".atom", ".rdf")):
                xml.etree.ElementTree.fromstring(body)
            elif path.endswith(".json"):
                json.loads(body)
            else:
                html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(body)
                if not body.rstrip().endswith(b"</html>"):
                    problem = "the page does not end with </html>"
        except Exception as error:
            problem = repr(error)
    print(json.dumps({"path": path, "status": status, "problem": problem,
                      "body": base64.b64encode(body).decode()}))
"#;
    let (host, port) = daemon.address("http");
    let mut args = vec![format!("http://{host}:{port}")];
    args.extend(paths.iter().map(|path| path.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    python(FETCH, &args)
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap();
            let body = base64::engine::general_purpose::STANDARD
                .decode(value["body"].as_str().unwrap())
                .unwrap();
            (
                value["path"].as_str().unwrap().to_string(),
                Fetched {
                    status: value["status"].as_u64().unwrap() as u16,
                    body,
                    problem: value["problem"].as_str().map(str::to_string),
                },
            )
        })
        .collect()
}

/// Asserts that every path answered `now` as it did `before`, byte for
/// byte.
fn assert_unchanged(before: &BTreeMap<String, Fetched>, now: &BTreeMap<String, Fetched>) {
    assert_eq!(
        now.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (path, then) in before {
        let served = &now[path];
        assert_eq!(
            (served.status, &served.problem),
            (then.status, &then.problem),
            "{path}"
        );
        assert!(
            served.body == then.body,
            "{path} changed:\n{}",
            String::from_utf8_lossy(&served.body)
        );
    }
}

/// `/healthz`: its status and body.
fn health(daemon: &Daemon) -> (u16, String) {
    let (host, port) = daemon.address("http");
    let mut stream = TcpStream::connect((host.as_str(), port)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: tidings\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// Asserts that the daemon answers `/healthz` with 200, its store readable.
fn assert_healthy(daemon: &Daemon, when: &str) {
    let (status, body) = health(daemon);
    assert_eq!(status, 200, "{when}: /healthz said {body}");
    assert!(body.starts_with("ok\nstore ok\n"), "{when}: {body}");
}

/// Files whose names begin with a dot anywhere under `dir`, less tidings'
/// own (the feeds' lock and fingerprints, the site's fingerprint): a
/// temporary file left behind.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    const OWN: [&str; 3] = [".lock", ".fingerprints", ".fingerprint"];
    let mut found = Vec::new();
    let mut waiting = vec![dir.to_path_buf()];
    while let Some(next) = waiting.pop() {
        for entry in fs::read_dir(&next).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                waiting.push(entry.path());
            } else if (name.starts_with('.') && !OWN.contains(&name.as_str()))
                || name.ends_with(".tmp")
            {
                found.push(entry.path());
            }
        }
    }
    found
}

/// Promise 4, mail: with data_dir on a full disk (a little room left, then
/// none), a post over SMTP and LMTP is answered 451 (never 250, never 5xx)
/// and the pipe exits 75, the daemon keeps answering, and once space
/// returns the same posts are taken and stored byte for byte, each once.
/// Small posts sent meanwhile may fit where the store's log has room to
/// reuse: those acknowledged are stored, those deferred are not until
/// sent again.
#[test]
fn a_full_data_disk_defers_mail_and_every_post_lands_once_when_space_returns() {
    let tidings = Tidings::new();
    let disk = Tmpfs::mount(&tidings.path().join("data"), 64 << 20);
    let daemon = Daemon::start(&tidings);
    let wal = tidings.path().join("data/tidings.sqlite3-wal");
    // Room for the pipe to start (it writes a file of its own before the
    // store), not for a post.
    let room = 256 * 1024;
    let ballast = disk.fill_leaving("ballast", room);
    // Each big post needs more than the room left and the whole log file
    // (SQLite reuses a log file after a checkpoint): it cannot be stored.
    let big = (fs::metadata(&wal).map_or(0, |m| m.len()) + room) as usize + 512 * 1024;
    let by_pipe = post("<by-pipe@x>", "Strike at the port, by pipe", big);
    let by_smtp = post("<by-smtp@x>", "Strike at the port, by SMTP", big);
    let by_lmtp = post("<by-lmtp@x>", "Strike at the port, by LMTP", big);

    let (code, said) = pipe(&tidings, &by_pipe);
    assert_eq!(code, Some(75), "the pipe on a full disk: {said}");
    assert!(
        said.contains("store unavailable") && said.contains("disk is full"),
        "the pipe says why: {said}"
    );
    assert_deferred(&deliver(&daemon, Protocol::Smtp, &by_smtp), "SMTP");
    assert_deferred(&deliver(&daemon, Protocol::Lmtp, &by_lmtp), "LMTP");
    let mut small = Vec::new();
    for n in 0..3 {
        let message = post(&format!("<small-{n}@x>"), &format!("Picket {n}"), 0);
        let reply = deliver(&daemon, Protocol::Smtp, &message);
        assert!(
            reply.code == 250 || reply.code == 451,
            "a small post on a full disk: {reply:?}"
        );
        small.push((message, reply.code == 250));
    }
    // Not a byte left: the pipe fails before it reaches the store (it
    // writes a file beside its secret first), and says why.
    let rest = disk.fill_leaving("rest", 0);
    let (code, said) = pipe(&tidings, &by_pipe);
    assert_eq!(
        code,
        Some(75),
        "the pipe on a disk without a byte left: {said}"
    );
    assert!(
        said.contains("No space left") || said.contains("disk is full"),
        "the pipe says why: {said}"
    );
    assert_deferred(&deliver(&daemon, Protocol::Lmtp, &by_lmtp), "LMTP");
    assert_healthy(&daemon, "on a full disk");
    assert_no_panic(&tidings);
    let log_full = log(&tidings);
    assert!(
        log_full.contains("database or disk is full"),
        "the log says why mail waits:\n{log_full}"
    );

    rest.remove();
    ballast.remove();
    let acknowledged: Vec<String> = (0..small.len())
        .filter(|&n| small[n].1)
        .map(|n| format!("<small-{n}@x>"))
        .collect();
    let kept: Vec<String> = stored_messages(&store(&tidings)).into_keys().collect();
    assert_eq!(kept, acknowledged, "stored while the disk was full");
    let (code, said) = pipe(&tidings, &by_pipe);
    assert_eq!(code, Some(0), "the pipe once space returned: {said}");
    for (protocol, message) in [(Protocol::Smtp, &by_smtp), (Protocol::Lmtp, &by_lmtp)] {
        let reply = deliver(&daemon, protocol, message);
        assert_eq!(
            reply.code, 250,
            "{protocol:?} once space returned: {reply:?}"
        );
    }
    for (message, taken) in &small {
        if !taken {
            let reply = deliver(&daemon, Protocol::Smtp, message);
            assert_eq!(reply.code, 250, "a small post sent again: {reply:?}");
        }
    }
    assert_healthy(&daemon, "once space returned");

    let db = store(&tidings);
    let stored = stored_messages(&db);
    let mut sent: Vec<(String, &Vec<u8>)> = vec![
        ("<by-pipe@x>".to_string(), &by_pipe),
        ("<by-smtp@x>".to_string(), &by_smtp),
        ("<by-lmtp@x>".to_string(), &by_lmtp),
    ];
    for (n, (message, _)) in small.iter().enumerate() {
        sent.push((format!("<small-{n}@x>"), message));
    }
    assert_eq!(
        stored.len(),
        sent.len(),
        "stored: {:?}",
        stored.keys().collect::<Vec<_>>()
    );
    for (message_id, bytes) in sent {
        let (count, kept) = stored
            .get(&message_id)
            .unwrap_or_else(|| panic!("{message_id} was lost"));
        assert_eq!(*count, 1, "{message_id} stored {count} times");
        assert!(kept == bytes, "{message_id} stored otherwise than sent");
    }
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    assert_no_panic(&tidings);
}

/// The feeds and pages the tests look at: every feed of the English list
/// and of all lists, the home page, the list's page, and `post`'s page.
fn published(post: &str) -> Vec<String> {
    let mut paths: Vec<String> = ["en", "all"]
        .iter()
        .flat_map(|name| {
            ["rss", "atom", "rdf", "json"]
                .iter()
                .map(move |format| format!("/feeds/{name}.{format}"))
        })
        .collect();
    paths.push("/".to_string());
    paths.push("/lists/en/".to_string());
    paths.push(format!("/posts/{post}"));
    paths
}

/// The key of the stored post with `message_id`, once it is stored.
fn key_of(tidings: &Tidings, message_id: &str) -> String {
    let posts = tidings.posts(&[]);
    let post = posts
        .iter()
        .find(|post| post["message_id"] == message_id)
        .unwrap_or_else(|| panic!("{message_id} is not stored"));
    post["key"].as_str().unwrap().to_string()
}

/// Promise 4, publishing: with feeds_dir and site_dir on a full disk, the
/// daemon keeps running and serves the last whole feeds and pages, byte
/// for byte, while it fails to write new ones; it leaves no temporary file
/// behind; and the first post after space returns brings every file up to
/// date, the posts of the full days included.
#[test]
fn a_full_publishing_disk_serves_the_last_whole_feeds_and_pages_and_the_next_post_updates_them() {
    let tidings = Tidings::with_config(|text| {
        let text = edit(
            text,
            "feeds_dir = \"feeds\"",
            "feeds_dir = \"public/feeds\"",
        );
        edit(text, "site_dir = \"site\"", "site_dir = \"public/site\"")
    });
    let public = tidings.path().join("public");
    let disk = Tmpfs::mount(&public, 8 << 20);
    let daemon = Daemon::start(&tidings);
    let built = |tidings: &Tidings| log(tidings).matches("archive pages updated").count();
    wait_until("the first pages", PATIENCE, || built(&tidings) == 1);

    let first = post("<first@x>", "Dockers strike in Antwerp", 0);
    assert_eq!(deliver(&daemon, Protocol::Smtp, &first).code, 250);
    wait_until("the pages of the first post", PATIENCE, || {
        built(&tidings) == 2
    });
    let first_key = key_of(&tidings, "<first@x>");
    let paths = published(&first_key);
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let before = fetch(&daemon, &paths);
    for (path, fetched) in &before {
        assert_eq!(fetched.status, 200, "{path}");
        assert_eq!(fetched.problem, None, "{path}");
        assert!(
            String::from_utf8_lossy(&fetched.body).contains("Antwerp"),
            "{path} shows the first post"
        );
    }

    let ballast = disk.fill_leaving("ballast", 0);
    for (message_id, subject) in [
        ("<second@x>", "Second strike in Gent"),
        ("<third@x>", "Third strike in Brugge"),
    ] {
        let reply = deliver(&daemon, Protocol::Smtp, &post(message_id, subject, 0));
        assert_eq!(reply.code, 250, "the store is on another disk: {reply:?}");
        // While the daemon tries to write the new files and fails, what it
        // serves is what it served before, whole.
        let started = Instant::now();
        loop {
            let failed = log_after(&tidings, message_id);
            let done = failed.contains("feeds not updated")
                && failed.contains("archive pages not updated");
            assert_unchanged(&before, &fetch(&daemon, &paths));
            if done {
                break;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "no failed write logged after {message_id}:\n{}",
                log(&tidings)
            );
        }
        assert_eq!(leftovers(&public), Vec::<PathBuf>::new());
    }
    assert_healthy(&daemon, "with the publishing disk full");
    let said = log_after(&tidings, "<second@x>");
    assert!(said.contains("No space left on device"), "{said}");

    ballast.remove();
    assert_eq!(leftovers(&public), Vec::<PathBuf>::new());
    let fourth = post("<fourth@x>", "Ostend joins the strike", 0);
    assert_eq!(deliver(&daemon, Protocol::Smtp, &fourth).code, 250);
    wait_until(
        "the pages of the post after the full disk",
        PATIENCE,
        || built(&tidings) == 3,
    );
    let second_key = key_of(&tidings, "<second@x>");
    let mut paths = published(&first_key);
    paths.push(format!("/posts/{second_key}"));
    paths.push(format!("/posts/{}", key_of(&tidings, "<fourth@x>")));
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let after = fetch(&daemon, &paths);
    for (path, fetched) in &after {
        assert_eq!(fetched.status, 200, "{path}");
        assert_eq!(fetched.problem, None, "{path}");
    }
    for path in ["/feeds/en.atom", "/feeds/all.json", "/lists/en/", "/"] {
        let text = String::from_utf8_lossy(&after[path].body);
        for town in ["Antwerp", "Gent", "Brugge", "Ostend"] {
            assert!(text.contains(town), "{path} shows the post from {town}");
        }
    }
    assert_eq!(leftovers(&public), Vec::<PathBuf>::new());
    assert_healthy(&daemon, "once space returned");
    assert_no_panic(&tidings);
}

/// `tidings` run on `tidings`'s configuration, started and not waited for.
fn start(tidings: &Tidings, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("--config")
        .arg(tidings.config())
        .args(args)
        .current_dir(tidings.path())
        .env_remove("TIDINGS_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tidings")
}

/// Pipes `count` posts into the English list (pending for its digest).
fn pending_posts(tidings: &Tidings, count: usize) {
    for n in 0..count {
        let message = post(&format!("<pending-{n}@x>"), &format!("Picket {n}"), 0);
        let (code, said) = pipe(tidings, &message);
        assert_eq!(code, Some(0), "{said}");
    }
}

/// Messages the file transport wrote to data/outbox, by recipient: their
/// subjects.
fn outbox(tidings: &Tidings) -> BTreeMap<String, Vec<String>> {
    let mut by_recipient: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let Ok(entries) = fs::read_dir(tidings.path().join("data/outbox")) else {
        return by_recipient;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "eml") {
            continue;
        }
        let Ok(envelope) = fs::read(path.with_extension("json")) else {
            continue;
        };
        let Ok(envelope) = serde_json::from_slice::<Value>(&envelope) else {
            continue; // written between the two files
        };
        let raw = fs::read(&path).unwrap();
        let subject = mail_parser::MessageParser::new()
            .parse(&raw)
            .and_then(|message| message.subject().map(str::to_string))
            .unwrap_or_default();
        for to in envelope["forward_path"].as_array().unwrap() {
            by_recipient
                .entry(to.as_str().unwrap().to_string())
                .or_default()
                .push(subject.clone());
        }
    }
    by_recipient
}

/// The English list's subscribers in these tests.
fn readers(count: usize) -> Vec<String> {
    (0..count)
        .map(|n| format!("reader{n}@example.net"))
        .collect()
}

/// Promise 4, digests by hand: `tidings digest` while another process
/// holds the store's write lock past the busy timeout fails, saying the
/// store is locked, and keeps and sends nothing; run while the lock is
/// held for a moment, it waits for it and issues; and the digest reaches
/// each subscriber once.
#[test]
fn a_digest_run_on_a_locked_store_fails_cleanly_or_waits_and_each_subscriber_gets_it_once() {
    let tidings = Tidings::new();
    pending_posts(&tidings, 2);
    let subscribers = readers(3);
    tidings.subscribe("en", "mime", &subscribers);
    let database = tidings.path().join("data/tidings.sqlite3");

    let lock = StoreLock::take(&database);
    let refused = tidings.run(&["digest", "--list", "en", "--now"]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("locked"), "it says why: {said}");
    assert!(!said.contains("panicked"), "{said}");
    lock.release();
    assert!(digests::of_list(&store(&tidings), "en").unwrap().is_empty());
    assert!(outbox(&tidings).is_empty());

    let lock = StoreLock::take(&database);
    let run = start(&tidings, &["digest", "--list", "en", "--now"]);
    // Well within the busy timeout.
    std::thread::sleep(BUSY_TIMEOUT / 5);
    lock.release();
    let output = run.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("en: issued Vol 1, Issue 1"), "{printed}");
    assert!(
        printed.contains("3 sent, 0 deferred, 0 failed"),
        "{printed}"
    );

    let again = tidings.ok(&["digest", "--list", "en"]);
    assert!(again.contains("0 sent, 0 deferred, 0 failed"), "{again}");
    assert_eq!(digests::of_list(&store(&tidings), "en").unwrap().len(), 1);
    let sent = outbox(&tidings);
    assert_eq!(sent.keys().cloned().collect::<Vec<_>>(), subscribers);
    for (to, subjects) in &sent {
        assert_eq!(subjects.len(), 1, "{to}: {subjects:?}");
    }
}

/// lists.toml delivering over SMTP, one connection, to the relay on
/// `port`.
fn relay(port: u16) -> impl FnOnce(String) -> String {
    move |text| {
        let text = edit(text, "transport = \"file\"", "transport = \"smtp\"");
        let text = edit(text, "\nport = 25\n", &format!("\nport = {port}\n"));
        let text = edit(text, "tls = \"opportunistic\"", "tls = \"none\"");
        edit(text, "connections = 4", "connections = 1")
    }
}

/// Promise 4, deliveries: another process takes the store's write lock in
/// the middle of a fan-out to a slow relay and holds it past the busy
/// timeout, so the results of messages the relay has accepted cannot be
/// recorded. Once the lock goes the run records them and goes on: it ends
/// well, and each subscriber has the digest once, also after another run.
#[test]
fn a_store_locked_mid_fan_out_holds_the_run_up_and_each_subscriber_gets_the_digest_once() {
    let work = tempfile::tempdir().unwrap();
    let peer = Peer::start(&work.path().join("peer"), &["--delay", "0.3"]);
    let tidings = Tidings::with_config(relay(peer.port));
    pending_posts(&tidings, 2);
    let subscribers = readers(10);
    tidings.subscribe("en", "mime", &subscribers);
    let database = tidings.path().join("data/tidings.sqlite3");

    let run = start(&tidings, &["digest", "--list", "en", "--now"]);
    wait_until("the relay to have two digests", PATIENCE, || {
        peer.recipients().len() >= 2
    });
    let lock = StoreLock::take(&database);
    std::thread::sleep(BUSY_TIMEOUT + Duration::from_secs(2));
    let during = peer.recipients().len();
    assert!(
        during < subscribers.len(),
        "the run did not wait for the store: {during} sent under the lock"
    );
    lock.release();
    let output = run.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{printed}{said}");
    assert!(
        printed.contains("10 sent, 0 deferred, 0 failed"),
        "{printed}"
    );

    let again = tidings.ok(&["digest", "--list", "en"]);
    assert!(again.contains("0 sent, 0 deferred, 0 failed"), "{again}");
    let mut received = peer.recipients();
    received.sort();
    assert_eq!(received, subscribers, "each subscriber once");
    let db = store(&tidings);
    let digest = digests::last(&db, "en").unwrap().unwrap();
    for delivery in deliveries::of_digest(&db, digest.id).unwrap() {
        assert_eq!(delivery.state, DeliveryState::Sent, "{delivery:?}");
        assert_eq!(delivery.attempts, 1, "{delivery:?}");
    }
}

/// Promise 4, the daemon's digests: started while another process holds
/// the store's write lock, with a digest due, the daemon keeps answering
/// (reads go on), fails to issue the digest and says why, and once the
/// lock goes issues it and delivers it to each subscriber once.
#[test]
fn a_daemon_with_a_digest_due_on_a_locked_store_keeps_serving_and_sends_it_once_the_lock_goes() {
    let tidings = Tidings::new();
    pending_posts(&tidings, 2);
    let subscribers = readers(3);
    tidings.subscribe("en", "mime", &subscribers);
    let database = tidings.path().join("data/tidings.sqlite3");

    let lock = StoreLock::take(&database);
    let daemon = Daemon::start(&tidings);
    assert_healthy(&daemon, "with the store locked");
    let feeds = fetch(&daemon, &["/feeds/en.atom"]);
    assert_eq!(feeds["/feeds/en.atom"].status, 200);
    wait_until("the digests to fail for the lock", PATIENCE, || {
        log(&tidings).contains("digests not issued")
    });
    let said = log(&tidings);
    assert!(said.contains("database is locked"), "{said}");
    assert!(outbox(&tidings).is_empty(), "nothing went out");
    assert_healthy(&daemon, "after the digests failed");
    lock.release();

    // A post wakes the scheduler (as its 20 s tick would).
    let post = post("<after-the-lock@x>", "After the lock", 0);
    assert_eq!(deliver(&daemon, Protocol::Smtp, &post).code, 250);
    let sent = wait_for("the digest to each subscriber", PATIENCE, || {
        let sent = outbox(&tidings);
        (sent.len() == subscribers.len()).then_some(sent)
    });
    for (to, subjects) in &sent {
        assert_eq!(subjects.len(), 1, "{to}: {subjects:?}");
    }
    let db = store(&tidings);
    assert_eq!(digests::of_list(&db, "en").unwrap().len(), 1);
    let digest = digests::last(&db, "en").unwrap().unwrap();
    // A result is recorded just after its message is written.
    wait_until("every delivery recorded as sent", PATIENCE, || {
        let deliveries = deliveries::of_digest(&db, digest.id).unwrap();
        deliveries.len() == subscribers.len()
            && deliveries
                .iter()
                .all(|delivery| delivery.state == DeliveryState::Sent)
    });
    assert_healthy(&daemon, "once the lock went");
    assert_no_panic(&tidings);
}

/// POSTs the subscribe form of the English list for `address`; the status,
/// the Retry-After header ("" for none) and the page.
fn ask_to_subscribe(daemon: &Daemon, address: &str) -> (u16, String, String) {
    const REQUEST: &str = r#"
import sys, urllib.error, urllib.parse, urllib.request
form = urllib.parse.urlencode({"address": sys.argv[2], "mode": "mime"}).encode()
request = urllib.request.Request(sys.argv[1], data=form, method="POST")
request.add_header("Content-Type", "application/x-www-form-urlencoded")
try:
    with urllib.request.urlopen(request, timeout=120) as response:
        print(response.status); print(response.headers.get("Retry-After", "")); print(response.read().decode())
except urllib.error.HTTPError as error:
    print(error.code); print(error.headers.get("Retry-After", "")); print(error.read().decode())
"#;
    let (host, port) = daemon.address("http");
    let url = format!("http://{host}:{port}/lists/en/subscribe");
    let out = python(REQUEST, &[&url, address]);
    let (status, rest) = out.split_once('\n').unwrap();
    let (retry_after, page) = rest.split_once('\n').unwrap();
    (
        status.parse().unwrap(),
        retry_after.to_string(),
        page.to_string(),
    )
}

/// Promise 4, web writes: a subscribe POST while another process holds the
/// store's write lock for a moment waits for it and succeeds; one while
/// the lock is held past the busy timeout gets 503 with a Retry-After and
/// the apology page (no success claimed, no panic, no confirmation sent)
/// and the daemon goes on; asked
/// again once the lock goes, it succeeds; each address gets one
/// confirmation.
#[test]
fn a_subscribe_post_on_a_locked_store_waits_or_fails_cleanly_and_one_confirmation_goes_out() {
    let tidings = Tidings::new();
    let daemon = Daemon::start(&tidings);
    wait_until("the daemon's first pages", PATIENCE, || {
        log(&tidings).contains("archive pages updated")
    });
    let database = tidings.path().join("data/tidings.sqlite3");
    let (patient, late) = ("patient@example.net", "late@example.net");

    let lock = StoreLock::take(&database);
    let asked = std::thread::scope(|scope| {
        let asking = scope.spawn(|| ask_to_subscribe(&daemon, patient));
        std::thread::sleep(BUSY_TIMEOUT / 5);
        lock.release();
        asking.join().unwrap()
    });
    assert_eq!(asked.0, 200, "a short lock is waited for: {}", asked.2);

    let lock = StoreLock::take(&database);
    let (status, retry_after, page) = ask_to_subscribe(&daemon, late);
    assert_eq!(
        (status, retry_after.as_str()),
        (503, "5"),
        "a locked store says \"later\" to people and machines: {page}"
    );
    assert!(page.contains("Please try again in a moment"), "{page}");
    assert_healthy(&daemon, "with the store locked");
    lock.release();
    assert_no_panic(&tidings);
    let (status, _, page) = ask_to_subscribe(&daemon, late);
    assert_eq!(status, 200, "asked again once the lock went: {page}");

    let sent = wait_for("a confirmation to each address", PATIENCE, || {
        let sent = outbox(&tidings);
        (sent.contains_key(patient) && sent.contains_key(late)).then_some(sent)
    });
    assert_eq!(sent.len(), 2, "{sent:?}");
    for (to, subjects) in &sent {
        assert_eq!(subjects.len(), 1, "{to}: {subjects:?}");
    }
    assert_healthy(&daemon, "once the lock went");
    assert_no_panic(&tidings);
}
