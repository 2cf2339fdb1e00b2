//! `tidings backup` of a large store, and what it costs ingest meanwhile.
//! Run on a release build:
//!
//! ```text
//! cargo bench --bench backup
//! ```
//!
//! Builds a store of 1,000,000 posts (`TIDINGS_BENCH_POSTS` sets another
//! number) over the 16 lists of the shipped lists.toml, then runs the real
//! command three times (`tidings backup FILE`, each to a new file) and
//! prints the median wall time and the copy's size. Then `tidings ingest`
//! is run one message after another, first alone and then while a backup
//! runs, and the median and the largest latency of each are printed: a
//! backup holds a read transaction, which in WAL mode a writer does not
//! wait for.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tidings::config;
use tidings::store;

#[path = "common/store.rs"]
mod common;
use common::{configuration, fill};

const RUNS: usize = 3;
const TIDINGS: &str = env!("CARGO_BIN_EXE_tidings");

fn main() {
    let posts: usize = std::env::var("TIDINGS_BENCH_POSTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let lists_toml = dir.path().join("lists.toml");
    std::fs::write(&lists_toml, config::EMBEDDED_LISTS_TOML).expect("write lists.toml");
    let config = configuration(dir.path());
    let started = Instant::now();
    let mut db = store::open(&config.database_path()).expect("open the store");
    fill(&mut db, &config, posts);
    drop(db);
    let size = std::fs::metadata(config.database_path()).map_or(0, |m| m.len());
    println!(
        "store: {posts} posts, {:.0} MB, built in {:.1} s",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let mut times = Vec::new();
    for run in 0..RUNS {
        let copy = dir.path().join(format!("backup-{run}.sqlite3"));
        let started = Instant::now();
        let mut backup = backup(&lists_toml, &copy);
        assert!(
            backup.wait().expect("backup runs").success(),
            "backup failed"
        );
        times.push(started.elapsed());
        if run == 0 {
            let copied = std::fs::metadata(&copy).map_or(0, |m| m.len());
            println!("backup copy: {:.0} MB", copied as f64 / 1e6);
        }
        std::fs::remove_file(&copy).expect("remove the copy");
    }
    times.sort();
    println!(
        "tidings backup of {posts} posts: median {:.2} s (min {:.2}, max {:.2}, {RUNS} runs)",
        times[RUNS / 2].as_secs_f64(),
        times[0].as_secs_f64(),
        times[RUNS - 1].as_secs_f64()
    );

    let alone = ingest_while(&lists_toml, 200, || false);
    report("tidings ingest alone", &alone);
    let copy = dir.path().join("backup-during-ingest.sqlite3");
    let mut running = backup(&lists_toml, &copy);
    let during = ingest_while(&lists_toml, usize::MAX, || {
        running.try_wait().expect("backup runs").is_some()
    });
    report("tidings ingest during a backup", &during);
}

fn backup(lists_toml: &Path, copy: &Path) -> std::process::Child {
    Command::new(TIDINGS)
        .arg("--config")
        .arg(lists_toml)
        .arg("backup")
        .arg(copy)
        .stdout(Stdio::null())
        .spawn()
        .expect("start tidings backup")
}

/// Latencies of `tidings ingest`, one message after another, until `done`
/// or `most` messages.
fn ingest_while(lists_toml: &Path, most: usize, mut done: impl FnMut() -> bool) -> Vec<Duration> {
    let mut latencies = Vec::new();
    while latencies.len() < most && !done() {
        let n = latencies.len();
        let message = format!(
            "From: bench@example.org\r\nTo: a-infos-en@lists.example.org\r\n\
Subject: (en) During the backup {n}\r\nMessage-ID: <backup-{n}-{}@bench.example.org>\r\n\r\n\
A post that arrives while the store is copied.\r\n",
            std::process::id() as u64 * 1_000_000 + Instant::now().elapsed().as_nanos() as u64
        );
        let started = Instant::now();
        let mut child = Command::new(TIDINGS)
            .arg("--config")
            .arg(lists_toml)
            .args(["ingest", "a-infos-en@lists.example.org"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start tidings ingest");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(message.as_bytes())
            .expect("write the message");
        assert!(
            child.wait().expect("ingest runs").success(),
            "ingest failed"
        );
        latencies.push(started.elapsed());
    }
    latencies
}

fn report(what: &str, latencies: &[Duration]) {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        println!("{what}: no message");
        return;
    }
    println!(
        "{what}: {} messages, median {:.1} ms, max {:.1} ms",
        sorted.len(),
        sorted[sorted.len() / 2].as_secs_f64() * 1e3,
        sorted[sorted.len() - 1].as_secs_f64() * 1e3
    );
}
