//! Migration 0018 on a large store: every post that came only in HTML
//! filed again from its raw message. Run on a release build:
//!
//! ```text
//! cargo bench --bench migration
//! ```
//!
//! Builds a store of 1,000,000 posts (`TIDINGS_BENCH_POSTS` sets another
//! number) over the 16 lists of the shipped lists.toml, each with its raw
//! message, one in twenty of them only in HTML and stored as an earlier
//! conversion left it (its paragraphs run together); puts the store back at
//! schema version 17 and times the upgrade as the first command after a
//! new binary runs it: `store::open`, which writes the backup copy beside
//! the store and then runs the migration. Prints both, and how many posts
//! were filed again.

use std::time::Instant;

use tidings::config;
use tidings::store;

#[path = "common/store.rs"]
mod common;
use common::{configuration, fill_with, raw_message};

/// One post in this many came only in HTML.
const HTML_EVERY: usize = 20;

fn main() {
    let posts: usize = std::env::var("TIDINGS_BENCH_POSTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("lists.toml"), config::EMBEDDED_LISTS_TOML)
        .expect("write lists.toml");
    let config = configuration(dir.path());
    let path = config.database_path();
    let started = Instant::now();
    let mut db = store::open(&path).expect("open the store");
    fill_with(&mut db, &config, posts, |post| {
        let n = post.post.received_at as usize / 30;
        if n % HTML_EVERY == 3 {
            let html: String = post
                .post
                .body
                .split("\n\n")
                .map(|paragraph| format!("<p>{paragraph}</p>"))
                .collect();
            let text = raw_message(&post.post);
            let text = String::from_utf8(text).expect("UTF-8");
            let (head, _) = text.split_once("\r\n\r\n").expect("a header");
            let head = head.replace("text/plain", "text/html");
            post.raw = Some(format!("{head}\r\n\r\n{html}\r\n").into_bytes());
            // As the earlier conversion stored it.
            post.post.body = post.post.body.replace("\n\n", "");
        } else {
            post.raw = Some(raw_message(&post.post));
        }
    });
    // What the fill itself changed is no part of what the upgrade does.
    db.execute("DELETE FROM archive_changes", [])
        .expect("clear the pages' change list");
    db.pragma_update(None, "user_version", 17)
        .expect("back to schema version 17");
    drop(db);
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "store: {posts} posts with their raw messages, {:.0} MB, built in {:.1} s",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let db = store::open(&path).expect("the upgrade");
    let upgrade = started.elapsed();
    let refiled: i64 = db
        .query_row("SELECT count(*) FROM archive_changes", [], |row| row.get(0))
        .expect("count");
    let version: i64 = db
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("version");
    println!(
        "upgrade from 17 to {version} (backup copy and migration 0018): {:.1} s, {refiled} posts filed again",
        upgrade.as_secs_f64()
    );
}
