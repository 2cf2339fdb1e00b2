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

use tidings::feeds::{self, Mode};
use tidings::store;

#[path = "common/store.rs"]
mod common;
use common::{configuration, fill, insert, new_post, texts};

const RUNS: usize = 7;

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
