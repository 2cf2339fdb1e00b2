//! The newsgroups of a large archive through the running daemon. Run on a
//! release build:
//!
//! ```text
//! cargo bench --bench nntp
//! ```
//!
//! Builds a store of 1,000,000 posts with their raw messages
//! (`TIDINGS_BENCH_POSTS` sets another number) over the 16 lists of the
//! shipped lists.toml, as if the daemon had kept up with them (its site is
//! current: the pages of an archive that size were made as it grew, not
//! now), starts `tidings serve` with `[listen] nntp` on and reads it as a
//! news client would, over loopback:
//!
//! - the daemon's memory once it is idle, 20 seconds after it started
//!   (VmRSS, and its peak VmHWM);
//! - OVER of 1,000 articles of the group of all lists, from places spread
//!   over it: the median and the slowest of 21;
//! - ARTICLE by number over 8 connections at once for 10 seconds: articles
//!   per second;
//! - the memory at the end of that load, and 10 seconds after.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tidings::config;
use tidings::store;

#[path = "common/store.rs"]
mod common;
use common::{configuration, fill_with, raw_message};

const TIDINGS: &str = env!("CARGO_BIN_EXE_tidings");
const OVER_RUNS: usize = 21;
const OVER_COUNT: i64 = 1_000;
const CONNECTIONS: usize = 8;
const ARTICLE_SECONDS: u64 = 10;

fn main() {
    let posts: usize = std::env::var("TIDINGS_BENCH_POSTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let lists_toml = dir.path().join("lists.toml");
    let text = config::EMBEDDED_LISTS_TOML
        .replace("lmtp = \"127.0.0.1:8024\"", "lmtp = \"127.0.0.1:0\"")
        .replace("smtp = \"127.0.0.1:8025\"", "smtp = \"127.0.0.1:0\"")
        .replace(
            "http = \"127.0.0.1:8080\"",
            "http = \"127.0.0.1:0\"\nnntp = \"127.0.0.1:0\"",
        );
    let text = if std::env::var_os("TIDINGS_BENCH_NO_DIGEST").is_some() {
        text.replace("[[list]]\n", "[[list]]\ndigest_size_threshold = 0\n")
    } else {
        text
    };
    assert!(
        text.contains("nntp = \"127.0.0.1:0\""),
        "the [listen] table moved"
    );
    std::fs::write(&lists_toml, text).expect("write lists.toml");
    let config = configuration(dir.path());
    let mut db = store::open(&config.database_path()).expect("open the store");
    // The site of the empty store: its fingerprint says the pages are
    // those of this configuration and these templates.
    let site = Command::new(TIDINGS)
        .arg("--config")
        .arg(&lists_toml)
        .arg("site")
        .stdout(Stdio::null())
        .status()
        .expect("tidings site");
    assert!(site.success());

    let started = Instant::now();
    fill_with(&mut db, &config, posts, |new| {
        new.raw = Some(raw_message(&new.post));
        if std::env::var_os("TIDINGS_BENCH_ALL_PUBLISHED").is_some() {
            new.post.status = tidings::post::Status::Published;
        }
    });
    // Every post's pages are made (the daemon kept up with them), and
    // with TIDINGS_BENCH_NO_DIGEST no digest falls due at start: a store
    // filled without digests has every post pending for the first one,
    // which the daemon composes at start, list by list (see BENCHMARKS.md).
    db.execute("DELETE FROM archive_changes", [])
        .expect("archive changes");
    if std::env::var_os("TIDINGS_BENCH_NO_DIGEST").is_some() {
        for list in &config.lists {
            db.execute(
                "INSERT INTO digest_slots (list_code, last_slot) VALUES (?1, 4102444800)",
                [&list.code],
            )
            .expect("digest slots");
        }
    }
    drop(db);
    let size = std::fs::metadata(config.database_path()).map_or(0, |m| m.len());
    println!(
        "store: {posts} posts with their raw messages, {:.0} MB, built in {:.1} s",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let daemon = Daemon::start(&lists_toml, &config.site.data_dir);
    std::thread::sleep(Duration::from_secs(20));
    println!("idle, 20 s after start: {}", daemon.memory());

    let mut reader = Reader::connect(&daemon.nntp);
    let (first, last) = reader.group("a-infos.all");
    println!("group a-infos.all: articles {first} to {last}");
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut times = Vec::new();
    for _ in 0..OVER_RUNS {
        let low = first + random.below((last - first - OVER_COUNT).max(1) as u64) as i64;
        let high = low + OVER_COUNT - 1;
        let started = Instant::now();
        let lines = reader.multiline(&format!("OVER {low}-{high}"), "224");
        times.push(started.elapsed());
        assert!(
            lines as i64 >= OVER_COUNT * 9 / 10,
            "{lines} overview lines"
        );
    }
    times.sort();
    println!(
        "OVER of {OVER_COUNT} articles: median {:.1} ms, slowest {:.1} ms ({OVER_RUNS} runs)",
        times[OVER_RUNS / 2].as_secs_f64() * 1e3,
        times[OVER_RUNS - 1].as_secs_f64() * 1e3
    );
    drop(reader);

    let deadline = Instant::now() + Duration::from_secs(ARTICLE_SECONDS);
    let started = Instant::now();
    let readers: Vec<_> = (0..CONNECTIONS)
        .map(|n| {
            let address = daemon.nntp.clone();
            std::thread::spawn(move || {
                let mut reader = Reader::connect(&address);
                let (first, last) = reader.group("a-infos.all");
                let mut random = Random(0x2545_f491_4f6c_dd1d ^ n as u64);
                let mut read = 0u64;
                while Instant::now() < deadline {
                    let number = first + random.below((last - first + 1) as u64) as i64;
                    // A held post's number is no article: 423, one line.
                    reader.article(number);
                    read += 1;
                }
                read
            })
        })
        .collect();
    let read: u64 = readers
        .into_iter()
        .map(|r| r.join().expect("a reader"))
        .sum();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "ARTICLE over {CONNECTIONS} connections: {read} in {elapsed:.1} s, {:.0} per second",
        read as f64 / elapsed
    );
    println!("at the end of the load: {}", daemon.memory());
    std::thread::sleep(Duration::from_secs(10));
    println!("idle again, 10 s after: {}", daemon.memory());
    drop(daemon);
}

struct Daemon {
    child: Child,
    nntp: String,
}

impl Daemon {
    fn start(lists_toml: &Path, data_dir: &Path) -> Daemon {
        let serve_json = data_dir.join("serve.json");
        let _ = std::fs::remove_file(&serve_json);
        let child = Command::new(TIDINGS)
            .arg("--config")
            .arg(lists_toml)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tidings serve");
        let deadline = Instant::now() + Duration::from_secs(300);
        let nntp = loop {
            let addresses = std::fs::read_to_string(&serve_json)
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .filter(|addresses| addresses["pid"] == child.id());
            if let Some(addresses) = addresses {
                break addresses["nntp"].as_str().map(str::to_string);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let daemon = Daemon {
            child,
            nntp: nntp.clone().unwrap_or_default(),
        };
        if nntp.is_none() {
            drop(daemon);
            panic!("tidings serve did not start with an NNTP listener");
        }
        daemon
    }

    /// VmRSS and VmHWM of the daemon.
    fn memory(&self) -> String {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/PID/status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .map(|value| value.trim().to_string())
                .unwrap_or_default()
        };
        format!("VmRSS {}, VmHWM {}", field("VmRSS:"), field("VmHWM:"))
    }
}

/// Stopped however the bench ends, a failed run too: a daemon left behind
/// would take the next run's CPU.
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// One news reader's connection.
struct Reader {
    lines: BufReader<TcpStream>,
    stream: TcpStream,
    line: String,
}

impl Reader {
    /// A reader connected and greeted. A slot the previous reader held is
    /// free again once the daemon has seen it close: until then (400, the
    /// per-address limit) it tries again, for up to 5 s.
    fn connect(address: &str) -> Reader {
        let mut tries = 0;
        loop {
            let stream = TcpStream::connect(address).expect("connect to the NNTP listener");
            stream.set_nodelay(true).expect("nodelay");
            let mut reader = Reader {
                lines: BufReader::with_capacity(64 * 1024, stream.try_clone().expect("clone")),
                stream,
                line: String::new(),
            };
            let greeting = reader.read_line();
            if greeting.starts_with("400") && tries < 50 {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            assert!(greeting.starts_with("20"), "greeting: {greeting}");
            return reader;
        }
    }

    fn read_line(&mut self) -> String {
        self.line.clear();
        self.lines.read_line(&mut self.line).expect("read a line");
        self.line.clone()
    }

    fn send(&mut self, command: &str) -> String {
        self.stream
            .write_all(format!("{command}\r\n").as_bytes())
            .expect("send a command");
        self.read_line()
    }

    /// (first, last) of `group`.
    fn group(&mut self, group: &str) -> (i64, i64) {
        let reply = self.send(&format!("GROUP {group}"));
        let fields: Vec<&str> = reply.split_whitespace().collect();
        assert_eq!(fields.first(), Some(&"211"), "GROUP: {reply}");
        (fields[2].parse().unwrap(), fields[3].parse().unwrap())
    }

    /// Sends `command`, expects `code` and reads the lines up to the
    /// terminating dot: how many there were.
    fn multiline(&mut self, command: &str, code: &str) -> usize {
        let reply = self.send(command);
        assert!(reply.starts_with(code), "{command}: {reply}");
        self.rest()
    }

    fn rest(&mut self) -> usize {
        let mut lines = 0;
        loop {
            self.line.clear();
            self.lines.read_line(&mut self.line).expect("read a line");
            if self.line == ".\r\n" {
                return lines;
            }
            assert!(!self.line.is_empty(), "the connection closed");
            lines += 1;
        }
    }

    fn article(&mut self, number: i64) {
        let reply = self.send(&format!("ARTICLE {number}"));
        if reply.starts_with("220") {
            self.rest();
        } else {
            assert!(reply.starts_with("423"), "ARTICLE {number}: {reply}");
        }
    }
}

/// xorshift64*: numbers spread well enough to pick articles.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}
