//! The archive against a large store: the pages made again after one new
//! post (`site::build` with `Scope::Changed`, what the daemon runs after
//! each ingest) and full-text searches in several languages. The store is
//! one `tidings import` made (see BENCHMARKS.md, "The archive"); run on a
//! release build:
//!
//! ```text
//! TIDINGS_BENCH_CONFIG=DIR/lists.toml cargo bench --bench archive
//! ```
//!
//! `TIDINGS_BENCH_ONLY=site` or `search` runs one half. The site half
//! builds the whole site into the configuration's `site_dir` first when it
//! is not there yet (and says how long that took), then files each of
//! `TIDINGS_BENCH_EML`'s messages (default: the generated
//! `target/bench-data/emls-201`), through the path of `tidings ingest`,
//! with a Message-ID of its own, and times the build of the pages that
//! post touches. The store keeps the posts it added.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tidings::config::{self, Config};
use tidings::ingest::{self, Envelope};
use tidings::site::{self, Scope};
use tidings::store::{self, archive};
use tidings::templates::Templates;

/// Posts added and pages built one at a time.
const NEW_POSTS: usize = 21;
/// Times each query is run.
const QUERY_RUNS: usize = 11;

/// Realistic queries over the generated posts (the corpus is the UDHR in
/// the lists' languages): common words that match a good share of a
/// language's posts, rarer words, phrases, with and without accents, CJK
/// words, with a language or a year filter, and a word found nowhere.
const QUERIES: &[(&str, Option<&str>)] = &[
    ("rights", None),
    ("the", None),
    ("human rights", None),
    ("freedom of expression", None),
    ("education", Some("en")),
    ("Menschenrechte", None),
    ("Recht", Some("de")),
    ("droits de l'homme", None),
    ("liberté", None),
    ("liberte", None),
    ("derechos", Some("ca")),
    ("libertad", None),
    ("права человека", None),
    ("свобода", Some("ru")),
    ("δικαιώματα", None),
    ("δικαιωματα", None),
    ("人人", None),
    ("权利", Some("zh")),
    ("hak", None),
    ("prawo", None),
    ("diritti", None),
    ("ihmisoikeudet", None),
    ("direitos humanos", None),
    ("quarantine zebra", None),
];

fn main() {
    let Ok(config_path) = std::env::var("TIDINGS_BENCH_CONFIG") else {
        eprintln!("set TIDINGS_BENCH_CONFIG to the lists.toml of an imported store");
        return;
    };
    let config = config::load(Some(Path::new(&config_path))).expect("the configuration");
    let only = std::env::var("TIDINGS_BENCH_ONLY").unwrap_or_default();
    let db = store::open(&config.database_path()).expect("open the store");
    let published: i64 = archive::count_between(&db, i64::MIN, i64::MAX).expect("count") as i64;
    println!("store: {published} published posts");
    if only.is_empty() || only == "search" {
        searches(&config, &db);
    }
    drop(db);
    if only.is_empty() || only == "site" {
        incremental(&config);
    }
}

fn searches(config: &Config, db: &store::Connection) {
    let mut all = Vec::new();
    for (text, lang) in QUERIES {
        let fts = tidings::search::query(text).expect("a query with words");
        let filter = archive::SearchFilter {
            lang: lang.map(str::to_string),
            between: None,
        };
        let mut times = Vec::new();
        let mut found = 0;
        for _ in 0..QUERY_RUNS {
            let started = Instant::now();
            // What /search does: the years for its layout, then a page.
            let years = site::years(config, db).expect("years");
            let results = archive::search(db, &fts, &filter, 21, 0).expect("search");
            times.push(started.elapsed());
            found = results.results.len();
            std::hint::black_box(years);
        }
        let label = match lang {
            Some(lang) => format!("{text:?} lang={lang}"),
            None => format!("{text:?}"),
        };
        print_times(&format!("search {label} ({found} on the page)"), &times);
        all.extend(times);
    }
    all.sort();
    println!(
        "search, all {} queries x {QUERY_RUNS}: median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        QUERIES.len(),
        ms(all[all.len() / 2]),
        ms(all[all.len() * 95 / 100]),
        ms(all[all.len() - 1])
    );
}

fn incremental(config: &Config) {
    let templates = Templates::load(&config.site.templates_dir).expect("templates");
    let out = config.site.site_dir.clone();
    let mut db = store::open(&config.database_path()).expect("open the store");
    if site::is_stale(config, &templates, &out) {
        let started = Instant::now();
        let report = site::build(config, &templates, &db, &out, Scope::Full, now()).expect("build");
        println!(
            "full build: {} pages in {:.1} s",
            report.pages,
            started.elapsed().as_secs_f64()
        );
    }
    // The full build (this one or `tidings site`'s) made the pages of what
    // imports changed: those changes are done.
    let changes = archive::changes(&db, usize::MAX).expect("changes");
    store::transaction(&mut db, |tx| archive::changes_done(tx, &changes)).expect("changes done");

    let messages = messages();
    let envelope = Envelope {
        list_code: None,
        recipients: Vec::new(),
    };
    let mut times = Vec::new();
    let mut cpu_times = Vec::new();
    let mut pages = Vec::new();
    let stamp = now();
    for (n, message) in messages.iter().cycle().take(NEW_POSTS).enumerate() {
        let raw = with_message_id(message, &format!("<bench-{stamp}-{n}@archive.example.org>"));
        let sender = Some("bench@archive.example.org");
        let delivery = ingest::pipe::deliver(config, &envelope, sender, raw.as_slice());
        assert_eq!(delivery.exit_code, 0, "{}", delivery.message);
        let started = Instant::now();
        let cpu_started = thread_cpu_time();
        let report = take_changes(&mut db, config, &templates, &out);
        times.push(started.elapsed());
        cpu_times.extend(
            thread_cpu_time()
                .zip(cpu_started)
                .map(|(end, start)| end - start),
        );
        pages.push(report.pages);
    }
    pages.sort();
    print_times(
        &format!(
            "pages made again after one new post ({} pages, median)",
            pages[pages.len() / 2]
        ),
        &times,
    );
    if !cpu_times.is_empty() {
        print_times("the same, CPU time of the building thread", &cpu_times);
    }
    let started = Instant::now();
    let report = take_changes(&mut db, config, &templates, &out);
    println!(
        "no change: {} pages made in {:.1} ms",
        report.pages,
        ms(started.elapsed())
    );
}

/// What the daemon does after a feed refresh: the pages of the changes
/// listed, then the changes taken out.
fn take_changes(
    db: &mut store::Connection,
    config: &Config,
    templates: &Templates,
    out: &Path,
) -> site::Report {
    let changes = archive::changes(db, usize::MAX).expect("changes");
    let report =
        site::build(config, templates, db, out, Scope::Changed(&changes), now()).expect("build");
    store::transaction(db, |tx| archive::changes_done(tx, &changes)).expect("changes done");
    report
}

fn messages() -> Vec<Vec<u8>> {
    let dir = std::env::var("TIDINGS_BENCH_EML").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/emls-201"),
        PathBuf::from,
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| std::fs::read(path).expect("message"))
        .collect()
}

/// `raw` with its Message-ID replaced (or added), so that it is new.
fn with_message_id(raw: &[u8], id: &str) -> Vec<u8> {
    let mut out = format!("Message-ID: {id}\r\n").into_bytes();
    let mut in_headers = true;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if in_headers && (line == b"\n" || line == b"\r\n") {
            in_headers = false;
        }
        let lower = line
            .iter()
            .take(11)
            .map(u8::to_ascii_lowercase)
            .collect::<Vec<_>>();
        if in_headers && lower == b"message-id:" {
            continue;
        }
        out.extend_from_slice(line);
    }
    out
}

/// The CPU time the calling thread has had (Linux's schedstat), so that
/// figures taken on a loaded machine say what the work costs besides how
/// long it waited for a core; None elsewhere.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn now() -> i64 {
    tidings::clock::Clock::System.now().timestamp()
}

fn print_times(what: &str, times: &[Duration]) {
    let mut sorted = times.to_vec();
    sorted.sort();
    println!(
        "{what}: median {:.2} ms, p95 {:.2} ms (min {:.2}, max {:.2}, {} runs)",
        ms(sorted[sorted.len() / 2]),
        ms(sorted[(sorted.len() * 95 / 100).min(sorted.len() - 1)]),
        ms(sorted[0]),
        ms(sorted[sorted.len() - 1]),
        sorted.len()
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
