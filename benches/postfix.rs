//! Mail through the real Postfix into tidings, beside the same Postfix
//! delivering to its own discard transport. Run on a release build, as
//! root (Postfix makes its queue as root), with Debian's postfix:
//!
//! ```text
//! cargo bench --bench postfix
//! ```
//!
//! Two private Postfix instances (tests/common/postfix.rs: each its own
//! configuration, queue and log, on a loopback port) are set up from
//! docs/postfix.md's LMTP section; one routes the list domain to `tidings
//! serve` over LMTP, the other to `discard:`. Postfix's smtp-source submits
//! 10,000 messages (`TIDINGS_BENCH_MESSAGES` sets another number) of 2 KB
//! over 8 sessions to each in turn, three rounds, and a round ends when
//! Postfix has logged every message delivered (`status=sent`): for tidings
//! that is after its LMTP 250, given once the post is committed to the
//! store. Prints each round and the medians of both, and their ratio.

// The tests' helpers (a private Postfix, the daemon), of which this uses a few.
#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::postfix::{doc_block, free_port, Postfix};
use common::Tidings;

const ROUNDS: usize = 3;
const SESSIONS: &str = "8";
const SIZE: &str = "2000";
const DOMAIN: &str = "lists.example.org";

fn main() {
    let messages: usize = std::env::var("TIDINGS_BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    // Open posting without a rate limit: every message is published, as a
    // busy list's are (feeds and pages follow in the background).
    let tidings = Tidings::with_config(|text| {
        assert!(
            text.contains("posting = \"open\""),
            "the shipped lists.toml posts openly"
        );
        text.replacen("max_posts_per_hour = 30", "max_posts_per_hour = 0", 1)
    });
    let daemon = Daemon::start(&tidings);
    let (host, port) = daemon.address("lmtp");
    let mut into_tidings = instance(&format!("lmtp:inet:{host}:{port}"));
    let mut into_discard = instance("discard:");
    into_tidings.start();
    into_discard.start();

    let mut tidings_rates = Vec::new();
    let mut discard_rates = Vec::new();
    for round in 1..=ROUNDS {
        let discard = deliver(&into_discard, messages, round);
        let through = deliver(&into_tidings, messages, round);
        println!(
            "round {round}: discard {:.0} messages/s, tidings {:.0} messages/s \
             (deferred so far: {} and {})",
            discard,
            through,
            deferred(&into_discard),
            deferred(&into_tidings)
        );
        discard_rates.push(discard);
        tidings_rates.push(through);
    }
    for (name, postfix) in [("discard", &into_discard), ("tidings", &into_tidings)] {
        println!("{name}: {}", delays(postfix));
    }
    let posts = tidings.posts(&[]).len();
    assert_eq!(posts, messages * ROUNDS, "every message is in the store");
    let median = |rates: &mut Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let (discard, through) = (median(&mut discard_rates), median(&mut tidings_rates));
    println!(
        "{messages} messages x {ROUNDS} rounds: Postfix to discard {discard:.0}/s median, \
         Postfix to tidings over LMTP {through:.0}/s median: {:.0}% of discard",
        100.0 * through / discard
    );
}

/// A Postfix set up as docs/postfix.md says, the list domain routed to
/// `transport`.
fn instance(transport: &str) -> Postfix {
    const SECTION: &str = "LMTP to the daemon";
    let mut postfix = Postfix::new(free_port(), free_port());
    let config_dir = format!("{}/", postfix.config_dir().display());
    let main_cf = doc_block(SECTION, "`/etc/postfix/main.cf`:");
    postfix.main_cf(&main_cf.replace("/etc/postfix/", &config_dir));
    // smtpd processes enough for smtp-source's sessions; the LMTP
    // concurrency is the doc's.
    postfix.main_cf("default_process_limit = 100");
    postfix.map("transport", &format!("{DOMAIN}   {transport}\n"));
    postfix.map("virtual", &doc_block(SECTION, "`/etc/postfix/virtual`:"));
    postfix
}

/// Submits `messages` with smtp-source and waits for Postfix to log each
/// delivered: messages per second from the first submission to the last
/// delivery.
fn deliver(postfix: &Postfix, messages: usize, round: usize) -> f64 {
    let sent_before = delivered(postfix);
    let started = Instant::now();
    let submitted = Command::new("/usr/sbin/smtp-source")
        .args(["-s", SESSIONS, "-l", SIZE, "-m", &messages.to_string()])
        .args([
            "-f",
            "bench@example.org",
            "-t",
            &format!("a-infos-en@{DOMAIN}"),
        ])
        .args(["-S", &format!("(en) Benchmark round {round}")])
        .arg(format!("127.0.0.1:{}", postfix.port))
        .status()
        .expect("smtp-source (Debian's postfix package)");
    assert!(submitted.success(), "smtp-source failed");
    let deadline = Instant::now() + Duration::from_secs(600);
    while delivered(postfix) < sent_before + messages {
        assert!(
            Instant::now() < deadline,
            "Postfix did not deliver them all"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    messages as f64 / started.elapsed().as_secs_f64()
}

/// Where the time of Postfix's deliveries to the list domain went: the
/// medians of the four parts of each logged `delays=a/b/c/d` (before the
/// queue manager, in it, connection setup, transmission; seconds), and
/// how many deliveries used a connection cached from an earlier one
/// (`conn_use` over 1).
fn delays(postfix: &Postfix) -> String {
    let log = postfix.log();
    let sent: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("status=sent") && line.contains(&format!("@{DOMAIN}>")))
        .collect();
    let mut parts: [Vec<f64>; 4] = Default::default();
    for line in &sent {
        let Some(field) = line.split("delays=").nth(1) else {
            continue;
        };
        let values = field.split(',').next().unwrap_or("").split('/');
        for (part, value) in parts.iter_mut().zip(values) {
            part.push(value.parse().unwrap_or(0.0));
        }
    }
    let medians: Vec<String> = parts
        .iter_mut()
        .map(|part| {
            part.sort_by(f64::total_cmp);
            format!("{:.3}", part.get(part.len() / 2).copied().unwrap_or(0.0))
        })
        .collect();
    let conn_use = |line: &&str| -> u32 {
        let field = line.split("conn_use=").nth(1).unwrap_or("1");
        field.split(',').next().unwrap_or("1").parse().unwrap_or(1)
    };
    let cached = sent.iter().filter(|line| conn_use(line) > 1).count();
    format!(
        "{} deliveries, median delays before/in queue manager/connection/transmission {} s; \
         {cached} over a cached connection",
        sent.len(),
        medians.join("/")
    )
}

/// Deliveries Postfix has logged deferred (tried again later).
fn deferred(postfix: &Postfix) -> usize {
    postfix
        .log()
        .lines()
        .filter(|line| line.contains("status=deferred"))
        .count()
}

/// Messages Postfix has logged delivered to the list address.
fn delivered(postfix: &Postfix) -> usize {
    postfix
        .log()
        .lines()
        .filter(|line| line.contains("status=sent") && line.contains(&format!("@{DOMAIN}>")))
        .count()
}
