//! Loading a generated lists.toml of many lists: TOML parsing, every check
//! and the lookup index, as `tidings check` does it. Run on a release build:
//!
//! ```text
//! cargo bench --bench config
//! ```
//!
//! It prints the median time of parsing and validating 1,000 and 20,000
//! lists (7 runs each). `TIDINGS_BENCH_LISTS` sets other sizes, separated
//! by commas.

use std::path::Path;
use std::time::{Duration, Instant};

use tidings::config;

const RUNS: usize = 7;

fn main() {
    let sizes: Vec<usize> = std::env::var("TIDINGS_BENCH_LISTS")
        .ok()
        .map(|sizes| {
            sizes
                .split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![1_000, 20_000]);
    for lists in sizes {
        let text = lists_toml(lists);
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let started = Instant::now();
            let config = config::parse(&text, "lists.toml", Path::new(".")).expect("valid");
            times.push(started.elapsed());
            assert_eq!(config.lists.len(), lists);
        }
        times.sort();
        println!(
            "{lists} lists ({} KB): median {}, min {}, max {}",
            text.len() / 1024,
            millis(times[RUNS / 2]),
            millis(times[0]),
            millis(times[RUNS - 1]),
        );
    }
}

/// A configuration of `lists` lists, each with a title, a description, an
/// alias and a schedule, as a large site would write them.
fn lists_toml(lists: usize) -> String {
    let mut text = String::from("[site]\nname = \"Many\"\ndomain = \"lists.example.org\"\n");
    for n in 0..lists {
        text.push_str(&format!(
            "\n[[list]]\ncode = \"l{n}\"\nlang = \"en\"\nname = \"List {n}\"\n\
             title = \"Many: list {n}\"\ndescription = \"The list numbered {n}\"\n\
             address = \"list-{n}@lists.example.org\"\naliases = [\"a{n}\"]\n\
             digest_schedule = \"{} {} * * 1-5\"\n",
            n % 60,
            n % 24
        ));
    }
    text
}

fn millis(time: Duration) -> String {
    format!("{:.1} ms", time.as_secs_f64() * 1000.0)
}
