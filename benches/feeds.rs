//! Feed regeneration against a large archive: 1,000,000 posts spread over
//! the 16 lists of the shipped lists.toml, with text from
//! ../shared/corpus/text. Run on a release build:
//!
//! ```text
//! cargo bench --bench feeds
//! ```
//!
//! It prints the median time of regenerating every feed of every list and
//! of all (into an empty directory, so every file is written and synced;
//! and over identical files, so everything is rendered and compared), of a
//! no-change regeneration (which must write nothing), of the regeneration
//! after one new post, and the peak memory (VmHWM) of the regenerations,
//! which run in a process of their own so that building the store does not
//! count. `TIDINGS_BENCH_POSTS` sets another number of posts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tidings::config::{self, Config};
use tidings::feeds::{self, Mode};
use tidings::post::{FiledBy, NewPost, Post, Status};
use tidings::store::{self, posts, Connection};

const RUNS: usize = 7;
const BATCH: usize = 10_000;

/// Set in the process that measures: the directory of the built store.
const MEASURE_IN: &str = "TIDINGS_BENCH_MEASURE_IN";

fn main() {
    let posts: usize = std::env::var("TIDINGS_BENCH_POSTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    if let Ok(dir) = std::env::var(MEASURE_IN) {
        measure(Path::new(&dir), posts);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = configuration(dir.path());
    let started = Instant::now();
    let mut store = store::open(&config.database_path()).expect("open the store");
    fill(&mut store, &config, posts);
    println!(
        "store: {posts} posts over {} lists, built in {:.1} s",
        config.lists.len(),
        started.elapsed().as_secs_f64()
    );
    drop(store);
    let status = std::process::Command::new(std::env::current_exe().expect("this program"))
        .env(MEASURE_IN, dir.path())
        .env("TIDINGS_BENCH_POSTS", posts.to_string())
        .status()
        .expect("run the measuring process");
    assert!(status.success(), "the measuring process failed");
}

fn configuration(dir: &Path) -> Config {
    let mut config = config::parse(config::EMBEDDED_LISTS_TOML, config::EMBEDDED_NAME, dir)
        .expect("the shipped configuration");
    config.site.data_dir = dir.join("data");
    config
}

/// Regenerates the feeds of the store in `dir` in every way, and prints
/// the figures.
fn measure(dir: &Path, posts: usize) {
    let mut config = configuration(dir);
    let store = store::open(&config.database_path()).expect("open the store");

    let files = (config.lists.len() + 1) * feeds::Format::ALL.len();
    let mut written = Vec::new();
    for run in 0..RUNS {
        config.site.feeds_dir = dir.join(format!("feeds-{run}"));
        let started = Instant::now();
        let report = feeds::regenerate(&config, &store, Mode::Everything).expect("regenerate");
        written.push(started.elapsed());
        assert_eq!(report.written.len(), files);
    }
    print_times(
        &format!("regenerate every feed ({files} files, all written)"),
        &written,
    );

    let mut rendered = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let report = feeds::regenerate(&config, &store, Mode::Everything).expect("regenerate");
        rendered.push(started.elapsed());
        assert!(report.written.is_empty());
    }
    print_times(
        "regenerate every feed, bytes unchanged (built, compared, none written)",
        &rendered,
    );

    let before = modification_times(&config.site.feeds_dir);
    let mut unchanged = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let report = feeds::regenerate(&config, &store, Mode::Changed).expect("regenerate");
        unchanged.push(started.elapsed());
        assert!(report.written.is_empty(), "{:?}", report.written);
    }
    assert_eq!(
        modification_times(&config.site.feeds_dir),
        before,
        "a no-change regeneration touched a file"
    );
    print_times("no-change regeneration (files written: 0)", &unchanged);
    let peak = peak_memory_kb();

    drop(store);
    let mut store = store::open(&config.database_path()).expect("open the store");
    let post = new_post(&config, posts, &texts(&config));
    insert(&mut store, &[post]);
    let started = Instant::now();
    let report = feeds::regenerate_after_ingest(&config, &store).expect("regenerate");
    let one = started.elapsed();
    println!(
        "after one new post: {} files written in {:.1} ms",
        report.written.len(),
        ms(one)
    );
    println!(
        "peak memory (VmHWM) over the regenerations: {:.1} MB",
        peak as f64 / 1024.0
    );
}

fn insert(db: &mut Connection, batch: &[NewPost]) {
    store::transaction(db, |tx| posts::insert(tx, batch)).expect("insert");
}

/// Posts `0..count`, list by list in turn, as ingest would file them.
fn fill(store: &mut Connection, config: &Config, count: usize) {
    let texts = texts(config);
    let mut batch = Vec::with_capacity(BATCH);
    for n in 0..count {
        batch.push(new_post(config, n, &texts));
        if batch.len() == BATCH {
            insert(store, &batch);
            batch.clear();
        }
    }
    insert(store, &batch);
}

/// Paragraphs of each list's language, from ../shared/corpus/text.
fn texts(config: &Config) -> Vec<Vec<String>> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/text");
    config
        .lists
        .iter()
        .map(|list| {
            let lang = if list.lang == "mul" { "en" } else { &list.lang };
            let text = std::fs::read_to_string(shared.join(format!("{lang}.txt")))
                .unwrap_or_else(|e| panic!("corpus text for {lang}: {e}"));
            text.split("\n\n")
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

fn new_post(config: &Config, n: usize, texts: &[Vec<String>]) -> NewPost {
    let lists = config.lists.len();
    let list = &config.lists[n % lists];
    let paragraphs = &texts[n % lists];
    // Three to six paragraphs: 1-3 KB, like a news item.
    let start = (n / lists) % paragraphs.len();
    let body: Vec<&str> = (0..3 + n % 4)
        .map(|i| paragraphs[(start + i) % paragraphs.len()].as_str())
        .collect();
    let body = format!("{}\n\nhttps://example.org/news/{n}\n", body.join("\n\n"));
    let title: String = paragraphs[start].chars().take(70).collect();
    let received_at = 1_600_000_000 + n as i64 * 30;
    NewPost {
        post: Post {
            key: Some(format!("{n:020x}")),
            message_id: Some(format!("<{n}@bench.example.org>")),
            list_code: Some(list.code.clone()),
            lang: Some(if list.lang == "mul" {
                "eu".into()
            } else {
                list.lang.clone()
            }),
            // One post in twenty is held: the feeds must step over them.
            status: if n % 20 == 7 {
                Status::Held
            } else {
                Status::Published
            },
            reason: None,
            filed_by: Some(FiledBy::Tag),
            tag: Some(list.code.clone()),
            subject: format!("({}) {title}", list.code),
            title,
            translations: Vec::new(),
            machine_translation: false,
            author_name: format!("Contributor {}", n % 997),
            author_address: format!("c{}@example.org", n % 997),
            date_header: None,
            date: Some(received_at - 600),
            received_at,
            size: body.len(),
            body,
            attachments: Vec::new(),
        },
        raw: None,
        auth_results: None,
    }
}

fn modification_times(dir: &Path) -> Vec<(PathBuf, SystemTime)> {
    let mut times: Vec<(PathBuf, SystemTime)> = std::fs::read_dir(dir)
        .expect("feeds dir")
        .map(|entry| {
            let entry = entry.expect("dir entry");
            (entry.path(), entry.metadata().unwrap().modified().unwrap())
        })
        .collect();
    times.sort();
    times
}

fn print_times(what: &str, times: &[Duration]) {
    let mut sorted = times.to_vec();
    sorted.sort();
    println!(
        "{what}: median {:.1} ms (min {:.1}, max {:.1}, {} runs)",
        ms(sorted[sorted.len() / 2]),
        ms(sorted[0]),
        ms(sorted[sorted.len() - 1]),
        sorted.len()
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// VmHWM from /proc/self/status, in kB.
fn peak_memory_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}
