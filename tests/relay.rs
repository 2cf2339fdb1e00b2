//! A relay that misbehaves (issue 13, promise 3): the real binary delivers
//! digests to aiosmtpd on loopback (tests/common/smtp_peer.py) scripted to
//! greet or answer MAIL with 421, answer 451 for several tries, drop the
//! connection after the message and before its reply, be down (its port
//! bound, nothing listening), or answer 450 until the retry age is over.
//!
//! Time moves by `--at`, never by sleeping: each run of `tidings digest`
//! or `tidings queue retry` is given the instant it happens at, and the
//! retries are checked against the times the store recorded
//! (`last_attempt_at`, `next_attempt_at`), never against the wall clock.
//! The peer logs what it did to each connection and transaction
//! (`--events`), so each test knows exactly how often the relay was asked,
//! and which recipients it took, how many times.
//!
//! A delivery given up after `give_up_after_hours` counts as a temporary
//! bounce of its subscriber when the relay was deferring that recipient
//! (a 4xx to RCPT TO or DATA) and took the digest for others, and against
//! nobody when the relay was down, greeted with 421 or deferred everyone.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use common::{generate, wait_until, Peer, Received, Tidings, PATIENCE};
use serde_json::Value;
use tidings::store::{self, digests, Connection};

const BASE_URL: &str = "https://news.example.org/";

/// The instant of each test's first run; later runs are seconds after it.
/// A morning, far from the lists' 18:00 schedule.
const START: &str = "2030-01-15T09:00:00Z";

/// `START` in Unix seconds, as the store records times.
fn start() -> i64 {
    DateTime::parse_from_rfc3339(START).unwrap().timestamp()
}

/// `START` and `seconds` more, as `--at` takes it.
fn at(seconds: i64) -> String {
    (DateTime::<Utc>::from_timestamp(start(), 0).unwrap() + TimeDelta::seconds(seconds))
        .to_rfc3339()
}

/// The shipped lists.toml delivering through the relay on `port` with
/// `connections` connections, plain SMTP, then `edits` (`from`, `to`)
/// applied to the `[delivery]` keys.
fn relay_config(
    port: u16,
    connections: usize,
    edits: &'static [(&'static str, &'static str)],
) -> impl FnOnce(String) -> String {
    move |text| {
        let replace = |text: String, from: &str, to: &str| {
            assert!(text.contains(from), "lists.toml has no `{from}`");
            text.replacen(from, to, 1)
        };
        let mut text = replace(
            text,
            "base_url = \"http://127.0.0.1:8080/\"",
            &format!("base_url = \"{BASE_URL}\""),
        );
        text = replace(text, "transport = \"file\"", "transport = \"smtp\"");
        text = replace(text, "\nport = 25\n", &format!("\nport = {port}\n"));
        text = replace(text, "tls = \"opportunistic\"", "tls = \"none\"");
        text = replace(
            text,
            "connections = 4",
            &format!("connections = {connections}"),
        );
        text = replace(text, "timeout_seconds = 60", "timeout_seconds = 20");
        for (from, to) in edits {
            text = replace(text, from, to);
        }
        text
    }
}

fn store(tidings: &Tidings) -> Connection {
    store::open(&tidings.path().join("data/tidings.sqlite3")).unwrap()
}

/// Imports 20 generated posts (A-Infos tags) as mail just arrived, pending
/// for the lists' digests; the seeds used give English posts.
fn import(tidings: &Tidings, seed: u32) {
    let (mbox, _) = generate(
        tidings.path(),
        &format!("posts-{seed}.mbox"),
        "mbox",
        &["--n", "20", "--seed", &seed.to_string()],
    );
    tidings.ok(&["import", "--deliver", mbox.to_str().unwrap()]);
}

/// Subscribes `addresses` to the English list, plain digests, confirmed.
fn subscribe(tidings: &Tidings, addresses: &[String]) {
    tidings.subscribe("en", "plain", addresses);
}

fn addresses(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}{i:02}@example.com"))
        .collect()
}

/// What one run of tidings printed and whether it succeeded.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The outbox's report without its timing: "delivered: 3 sent, 1
    /// deferred, 0 failed" (", 1 given up" when there was one).
    fn delivered(&self) -> &str {
        let line = self
            .stdout
            .lines()
            .find(|line| line.starts_with("delivered: "))
            .unwrap_or_else(|| panic!("no delivery report in:\n{}", self.stdout));
        line.split(" in ").next().unwrap()
    }
}

/// Runs `tidings ARGS --at START+seconds`.
fn run_at(tidings: &Tidings, args: &[&str], seconds: i64) -> Run {
    let at = at(seconds);
    let mut all = args.to_vec();
    all.extend(["--at", &at]);
    let output = tidings.run(&all);
    Run {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Issues the English digest at `START` and delivers it.
fn issue(tidings: &Tidings) -> Run {
    let run = run_at(tidings, &["digest", "--list", "en", "--now"], 0);
    assert!(run.stdout.contains("en: issued Vol"), "{}", run.stdout);
    run
}

/// A plain delivery run at `START+seconds` that must succeed and issue
/// nothing; returns the outbox's report.
fn deliver_at(tidings: &Tidings, seconds: i64) -> String {
    let run = run_at(tidings, &["digest", "--list", "en"], seconds);
    assert!(
        run.success,
        "tidings digest at +{seconds}s failed: {}",
        run.stderr
    );
    assert!(!run.stdout.contains("issued"), "{}", run.stdout);
    run.delivered().to_string()
}

/// A row of `deliveries` as the store has it.
#[derive(Debug, Clone)]
struct Delivery {
    address: String,
    state: String,
    attempts: u32,
    last_attempt_at: Option<i64>,
    next_attempt_at: i64,
    last_reply: Option<String>,
}

/// Every delivery of the last English digest, by id.
fn deliveries(tidings: &Tidings) -> Vec<Delivery> {
    let db = store(tidings);
    let digest = digests::last(&db, "en").unwrap().expect("a digest");
    let mut statement = db
        .prepare(
            "SELECT address, state, attempts, last_attempt_at, next_attempt_at, last_reply \
             FROM deliveries WHERE digest_id = ?1 ORDER BY id",
        )
        .unwrap();
    statement
        .query_map([digest.id], |row| {
            Ok(Delivery {
                address: row.get(0)?,
                state: row.get(1)?,
                attempts: row.get(2)?,
                last_attempt_at: row.get(3)?,
                next_attempt_at: row.get(4)?,
                last_reply: row.get(5)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The deliveries in `state`.
fn in_state(deliveries: &[Delivery], state: &str) -> Vec<Delivery> {
    deliveries
        .iter()
        .filter(|d| d.state == state)
        .cloned()
        .collect()
}

/// How many messages the peer took for each recipient.
fn received(peer: &Peer) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for to in peer.recipients() {
        *counts.entry(to.to_lowercase()).or_default() += 1;
    }
    counts
}

/// Each of `addresses` `n` times.
fn each(addresses: &[String], n: usize) -> BTreeMap<String, usize> {
    addresses.iter().map(|a| (a.clone(), n)).collect()
}

/// The peer's `--events` log, a line per thing it did.
fn events(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// How many events begin with `prefix`.
fn count(events: &[String], prefix: &str) -> usize {
    events.iter().filter(|e| e.starts_with(prefix)).count()
}

/// How many of the messages `peer` took had the next transaction's
/// commands right behind their content (PIPELINING across messages).
fn followed(peer: &Peer) -> usize {
    std::fs::read_dir(&peer.dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .filter(|path| {
            let envelope: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            envelope["followed"] == true
        })
        .count()
}

/// A peer with `options` and an events log; returns it and the log's path.
fn peer(work: &Path, options: &[&str]) -> (Peer, PathBuf) {
    let log = work.join("events.log");
    let mut args = vec!["--events", log.to_str().unwrap()];
    args.extend_from_slice(options);
    (Peer::start(&work.join("peer"), &args), log)
}

#[test]
fn a_relay_answering_421_to_the_greeting_and_to_mail_is_retried_after_the_backoff() {
    answering_421(false);
}

/// The same with PIPELINING, where MAIL goes ahead with the last
/// message's content and its 421 is read after that message's 250.
#[test]
fn a_pipelining_relay_answering_421_to_the_greeting_and_to_mail_is_retried_after_the_backoff() {
    answering_421(true);
}

fn answering_421(pipelining: bool) {
    let work = tempfile::tempdir().unwrap();
    // Two connections, both greeted with 421; then three transactions
    // whose MAIL gets 421 and a closed connection.
    let mut options = vec!["--greet-421", "2", "--mail-421", "3"];
    if pipelining {
        options.push("--pipelining");
    }
    let (peer, log) = peer(work.path(), &options);
    let tidings = Tidings::with_config(relay_config(peer.port, 2, &[]));
    import(&tidings, 67);
    let addresses = addresses("g", 20);
    subscribe(&tidings, &addresses);

    // A greeting of 421 is a relay that cannot be reached: each
    // connection's delivery is deferred and the run stops, the rest queued.
    let first = issue(&tidings);
    assert!(!first.success, "a run that met 421 greetings succeeded");
    assert_eq!(first.delivered(), "delivered: 0 sent, 2 deferred, 0 failed");
    assert!(
        first
            .stderr
            .contains(&format!("stopped: cannot reach 127.0.0.1:{}", peer.port))
            && first.stderr.contains("421"),
        "{}",
        first.stderr
    );
    let rows = deliveries(&tidings);
    let greeted = in_state(&rows, "deferred");
    assert_eq!(greeted.len(), 2, "{rows:?}");
    for d in &greeted {
        assert_eq!(d.attempts, 1);
        assert_eq!(d.last_attempt_at, Some(start()));
        assert_eq!(d.next_attempt_at, start() + 300, "retry_initial_seconds");
        assert!(d.last_reply.as_deref().unwrap().contains("421"), "{d:?}");
    }
    assert_eq!(in_state(&rows, "queued").len(), 18);
    assert!(peer.recipients().is_empty());
    assert_eq!(events(&log), ["greet 421", "greet 421"]);

    // A minute later the relay greets, but refuses MAIL three times.
    assert_eq!(
        deliver_at(&tidings, 60),
        "delivered: 15 sent, 3 deferred, 0 failed"
    );
    let rows = deliveries(&tidings);
    let refused: Vec<Delivery> = in_state(&rows, "deferred")
        .into_iter()
        .filter(|d| d.last_attempt_at == Some(start() + 60))
        .collect();
    assert_eq!(refused.len(), 3, "{rows:?}");
    for d in &refused {
        assert_eq!(d.attempts, 1);
        assert_eq!(d.next_attempt_at, start() + 60 + 300);
        let reply = d.last_reply.as_deref().unwrap();
        assert!(
            reply.starts_with("MAIL FROM: transient error (421)"),
            "{d:?}"
        );
    }
    assert_eq!(in_state(&rows, "deferred").len(), 5);
    assert_eq!(in_state(&rows, "sent").len(), 15);
    let log_now = events(&log);
    assert_eq!(count(&log_now, "mail 421 "), 3, "{log_now:?}");
    assert_eq!(count(&log_now, "data 250 "), 15, "{log_now:?}");

    // Nothing is due before its time; each comes back at its own.
    assert_eq!(
        deliver_at(&tidings, 299),
        "delivered: 0 sent, 0 deferred, 0 failed"
    );
    assert_eq!(
        deliver_at(&tidings, 300),
        "delivered: 2 sent, 0 deferred, 0 failed"
    );
    assert_eq!(
        deliver_at(&tidings, 359),
        "delivered: 0 sent, 0 deferred, 0 failed"
    );
    assert_eq!(
        deliver_at(&tidings, 360),
        "delivered: 3 sent, 0 deferred, 0 failed"
    );

    assert_eq!(received(&peer), each(&addresses, 1));
    let rows = deliveries(&tidings);
    let tried_twice: Vec<&str> = greeted
        .iter()
        .chain(&refused)
        .map(|d| d.address.as_str())
        .collect();
    for d in &rows {
        assert_eq!(d.state, "sent", "{d:?}");
        assert!(d.last_reply.as_deref().unwrap().starts_with("250"), "{d:?}");
        let expected = if tried_twice.contains(&d.address.as_str()) {
            2
        } else {
            1
        };
        assert_eq!(d.attempts, expected, "{d:?}");
    }
    assert_eq!(count(&events(&log), "data 250 "), 20);
    assert_eq!(followed(&peer) > 0, pipelining, "MAIL sent ahead");
}

#[test]
fn a_relay_deferring_for_four_tries_is_retried_at_waits_doubling_up_to_retry_max_seconds() {
    let work = tempfile::tempdir().unwrap();
    let (peer, log) = peer(work.path(), &["--defer-data", "4"]);
    let tidings = Tidings::with_config(relay_config(
        peer.port,
        2,
        &[
            ("retry_initial_seconds = 300", "retry_initial_seconds = 60"),
            ("retry_max_seconds = 14400", "retry_max_seconds = 200"),
        ],
    ));
    import(&tidings, 70);
    let addresses = addresses("b", 4);
    subscribe(&tidings, &addresses);

    // 60 s, then twice as long each time, but never over 200 s.
    let waits = [60, 120, 200, 200];
    let first = issue(&tidings);
    assert!(first.success, "{}", first.stderr);
    assert_eq!(first.delivered(), "delivered: 0 sent, 4 deferred, 0 failed");
    let mut tried_at = 0;
    for (tries, wait) in (1..).zip(waits) {
        for d in deliveries(&tidings) {
            assert_eq!(d.state, "deferred", "{d:?}");
            assert_eq!(d.attempts, tries, "{d:?}");
            assert_eq!(d.last_attempt_at, Some(start() + tried_at), "{d:?}");
            assert_eq!(
                d.next_attempt_at - d.last_attempt_at.unwrap(),
                wait,
                "the wait after try {tries}: {d:?}"
            );
            let reply = d.last_reply.as_deref().unwrap();
            assert!(reply.starts_with("DATA: transient error (451)"), "{d:?}");
        }
        let asked = events(&log).len();
        assert_eq!(
            deliver_at(&tidings, tried_at + wait - 1),
            "delivered: 0 sent, 0 deferred, 0 failed",
            "try {} came early",
            tries + 1
        );
        assert_eq!(events(&log).len(), asked, "the relay was asked early");
        tried_at += wait;
        let expected = if tries < 4 {
            "delivered: 0 sent, 4 deferred, 0 failed"
        } else {
            "delivered: 4 sent, 0 deferred, 0 failed"
        };
        assert_eq!(
            deliver_at(&tidings, tried_at),
            expected,
            "try {}",
            tries + 1
        );
        if tries == 3 {
            let queue = tidings.ok(&["queue"]);
            assert!(
                queue.contains("(digest of 2030-01-15 09:00, 4 attempts, next 2030-01-15 09:")
                    && queue.contains("451"),
                "{queue}"
            );
        }
    }

    assert_eq!(received(&peer), each(&addresses, 1));
    for d in deliveries(&tidings) {
        assert_eq!(d.state, "sent", "{d:?}");
        assert_eq!(d.attempts, 5, "{d:?}");
        assert_eq!(d.last_attempt_at, Some(start() + 60 + 120 + 200 + 200));
    }
    let log = events(&log);
    assert_eq!(count(&log, "data 451 "), 16, "{log:?}");
    assert_eq!(count(&log, "data 250 "), 4, "{log:?}");
}

#[test]
fn a_connection_dropped_before_the_reply_to_data_is_retried_and_the_digest_arrives_once() {
    dropped_in_data(false, false);
}

#[test]
fn a_relay_that_kept_a_message_whose_reply_it_dropped_gets_it_twice_with_one_message_id() {
    dropped_in_data(true, false);
}

/// With PIPELINING the next message's MAIL, RCPT and DATA went with the
/// content the relay dropped the connection after: that message was never
/// sent, so it goes on the next connection at once, not after a backoff.
#[test]
fn a_pipelining_relay_dropping_the_connection_before_the_reply_to_data_defers_only_that_message() {
    dropped_in_data(false, true);
}

/// Twelve recipients; the relay reads the whole of the first three
/// messages and closes the connection without a reply, having kept them
/// (`keep`: the reply was lost) or not. tidings cannot know which: it
/// records a delivery as sent only on a 250, so it tries the three again
/// after the backoff, and a relay that kept them has them twice, under
/// the same Message-ID (ARCHITECTURE.md: "the same on a retry"), and never
/// a third time.
fn dropped_in_data(keep: bool, pipelining: bool) {
    let work = tempfile::tempdir().unwrap();
    let mut options = vec!["--drop-in-data", "3"];
    if keep {
        options.push("--keep-dropped");
    }
    if pipelining {
        options.push("--pipelining");
    }
    let (peer, log) = peer(work.path(), &options);
    let tidings = Tidings::with_config(relay_config(peer.port, 2, &[]));
    import(&tidings, 74);
    let addresses = addresses("m", 12);
    subscribe(&tidings, &addresses);

    let first = issue(&tidings);
    assert!(first.success, "{}", first.stderr);
    assert_eq!(first.delivered(), "delivered: 9 sent, 3 deferred, 0 failed");
    let rows = deliveries(&tidings);
    let deferred = in_state(&rows, "deferred");
    let mut dropped: Vec<String> = events(&log)
        .iter()
        .filter_map(|e| e.strip_prefix("data drop "))
        .map(str::to_string)
        .collect();
    dropped.sort();
    let mut deferred_addresses: Vec<String> = deferred.iter().map(|d| d.address.clone()).collect();
    deferred_addresses.sort();
    assert_eq!(deferred_addresses, dropped, "{rows:?}");
    for d in &deferred {
        assert_eq!(d.attempts, 1);
        assert_eq!(d.next_attempt_at, start() + 300);
        let reply = d.last_reply.as_deref().unwrap();
        assert!(!reply.is_empty() && !reply.starts_with("250"), "{d:?}");
    }
    assert_eq!(peer.recipients().len(), if keep { 12 } else { 9 });

    assert_eq!(
        deliver_at(&tidings, 299),
        "delivered: 0 sent, 0 deferred, 0 failed"
    );
    assert_eq!(
        deliver_at(&tidings, 300),
        "delivered: 3 sent, 0 deferred, 0 failed"
    );
    // Sent is final: a later run and a retry send nothing again.
    assert_eq!(
        deliver_at(&tidings, 86_400),
        "delivered: 0 sent, 0 deferred, 0 failed"
    );
    let retry = run_at(&tidings, &["queue", "retry"], 86_400);
    assert!(retry.stdout.contains("0 deferred deliveries are due now"));
    assert_eq!(retry.delivered(), "delivered: 0 sent, 0 deferred, 0 failed");

    let mut expected = each(&addresses, 1);
    if keep {
        for address in &dropped {
            expected.insert(address.clone(), 2);
        }
    }
    assert_eq!(received(&peer), expected);
    if keep {
        for address in &dropped {
            let copies = peer.messages(address);
            assert_eq!(
                copies[0].header("Message-ID"),
                copies[1].header("Message-ID"),
                "{address}'s two copies"
            );
            assert!(copies[0].header("Message-ID").is_some());
        }
    }
    for d in deliveries(&tidings) {
        assert_eq!(d.state, "sent", "{d:?}");
        let tries = if dropped.contains(&d.address) { 2 } else { 1 };
        assert_eq!(d.attempts, tries, "{d:?}");
    }
    assert_eq!(followed(&peer) > 0, pipelining, "MAIL sent ahead");
}

#[test]
fn a_relay_down_for_minutes_gets_everything_once_up_and_what_was_not_tried_stays_queued() {
    let work = tempfile::tempdir().unwrap();
    let up = work.path().join("up");
    // The port is the peer's from the start, but nothing listens on it.
    let (peer, log) = peer(work.path(), &["--down-until", up.to_str().unwrap()]);
    let tidings = Tidings::with_config(relay_config(peer.port, 2, &[]));
    import(&tidings, 79);
    let addresses = addresses("u", 10);
    subscribe(&tidings, &addresses);

    // Each connection tries once, is refused, and the run stops.
    let unreachable = |run: &Run| {
        assert!(!run.success, "a run against a relay that is down succeeded");
        assert_eq!(run.delivered(), "delivered: 0 sent, 2 deferred, 0 failed");
        assert!(
            run.stderr
                .contains(&format!("stopped: cannot reach 127.0.0.1:{}", peer.port))
                && run
                    .stderr
                    .contains("the rest stays queued for the next run"),
            "{}",
            run.stderr
        );
    };
    unreachable(&issue(&tidings));
    // Two minutes later: the queued ones are due, the deferred not yet.
    unreachable(&run_at(&tidings, &["digest", "--list", "en"], 120));
    // Five minutes: the first two are due again and still refused.
    unreachable(&run_at(&tidings, &["digest", "--list", "en"], 300));
    let rows = deliveries(&tidings);
    let tried: Vec<(u32, Option<i64>, i64)> = rows
        .iter()
        .map(|d| (d.attempts, d.last_attempt_at, d.next_attempt_at))
        .collect();
    let s = start();
    assert_eq!(
        tried[..4],
        [
            (2, Some(s + 300), s + 300 + 600),
            (2, Some(s + 300), s + 300 + 600),
            (1, Some(s + 120), s + 120 + 300),
            (1, Some(s + 120), s + 120 + 300),
        ],
        "{rows:?}"
    );
    assert_eq!(in_state(&rows, "deferred").len(), 4);
    assert_eq!(in_state(&rows, "queued").len(), 6);
    for d in in_state(&rows, "deferred") {
        let reply = d.last_reply.unwrap();
        assert!(reply.contains("cannot reach 127.0.0.1"), "{reply}");
    }
    assert!(events(&log).is_empty(), "the relay was reached while down");

    // Up after ten minutes: everything due goes, the first two at their time.
    std::fs::write(&up, "").unwrap();
    wait_until("the relay to listen", PATIENCE, || events(&log) == ["up"]);
    assert_eq!(
        deliver_at(&tidings, 600),
        "delivered: 8 sent, 0 deferred, 0 failed"
    );
    assert_eq!(
        deliver_at(&tidings, 899),
        "delivered: 0 sent, 0 deferred, 0 failed"
    );
    assert_eq!(
        deliver_at(&tidings, 900),
        "delivered: 2 sent, 0 deferred, 0 failed"
    );

    assert_eq!(received(&peer), each(&addresses, 1));
    let attempts: Vec<u32> = deliveries(&tidings)
        .iter()
        .map(|d| {
            assert_eq!(d.state, "sent", "{d:?}");
            d.attempts
        })
        .collect();
    assert_eq!(attempts, [3, 3, 2, 2, 1, 1, 1, 1, 1, 1]);
}

#[test]
fn a_delivery_deferred_past_give_up_after_hours_is_failed_as_given_up_and_never_tried_again() {
    let work = tempfile::tempdir().unwrap();
    let (peer, log) = peer(
        work.path(),
        &[
            "--defer",
            "stuck@example.com",
            "--reject",
            "gone@example.com",
        ],
    );
    let tidings = Tidings::with_config(relay_config(
        peer.port,
        2,
        &[("give_up_after_hours = 120", "give_up_after_hours = 1")],
    ));
    import(&tidings, 80);
    let mut addresses = addresses("ok", 4);
    addresses.insert(1, "stuck@example.com".to_string());
    addresses.insert(3, "gone@example.com".to_string());
    subscribe(&tidings, &addresses);

    let first = issue(&tidings);
    assert!(first.success, "{}", first.stderr);
    assert_eq!(first.delivered(), "delivered: 4 sent, 1 deferred, 1 failed");
    // The 550 counts against its subscriber, and against nobody else.
    let bounces = || bounces(&tidings);
    let refused = vec![(
        "gone@example.com".to_string(),
        true,
        "smtp".to_string(),
        "gone@example.com".to_string(),
    )];
    assert_eq!(bounces(), refused);

    // 450 at each retry: after 5, 10 and 20 minutes.
    for (tried_at, wait) in [(300, 600), (900, 1200), (2100, 2400)] {
        assert_eq!(
            deliver_at(&tidings, tried_at),
            "delivered: 0 sent, 1 deferred, 0 failed"
        );
        let stuck = deliveries(&tidings).remove(1);
        assert_eq!(
            stuck.next_attempt_at,
            start() + tried_at + wait,
            "{stuck:?}"
        );
    }
    // An hour after the digest is not over the hour; a second more is.
    assert_eq!(
        deliver_at(&tidings, 3600),
        "delivered: 0 sent, 0 deferred, 0 failed"
    );
    assert_eq!(
        deliver_at(&tidings, 3601),
        "delivered: 0 sent, 0 deferred, 0 failed, 1 given up"
    );
    let rows = deliveries(&tidings);
    let stuck = &rows[1];
    assert_eq!(stuck.address, "stuck@example.com");
    assert_eq!(stuck.state, "failed");
    assert_eq!(stuck.attempts, 4);
    assert_eq!(stuck.last_attempt_at, Some(start() + 2100));
    let reply = stuck.last_reply.as_deref().unwrap();
    assert!(
        reply.starts_with("given up: not delivered in time; last reply: ") && reply.contains("450"),
        "{reply}"
    );
    let queue = tidings.ok(&["queue"]);
    assert!(
        queue.contains("stuck@example.com failed: given up: not delivered in time"),
        "{queue}"
    );
    assert!(
        queue
            .lines()
            .any(|line| line.split_whitespace().collect::<Vec<_>>() == ["en", "0", "0", "4", "2"]),
        "{queue}"
    );

    // A month on, neither a run nor a retry asks the relay again.
    let asked = events(&log);
    assert_eq!(
        deliver_at(&tidings, 30 * 86_400),
        "delivered: 0 sent, 0 deferred, 0 failed"
    );
    let retry = run_at(&tidings, &["queue", "retry"], 30 * 86_400);
    assert!(
        retry.stdout.contains("0 deferred deliveries are due now"),
        "{}",
        retry.stdout
    );
    assert_eq!(retry.delivered(), "delivered: 0 sent, 0 deferred, 0 failed");
    assert_eq!(events(&log), asked);
    assert_eq!(count(&asked, "rcpt 450 stuck@example.com"), 4, "{asked:?}");
    assert_eq!(count(&asked, "rcpt 550 gone@example.com"), 1, "{asked:?}");
    assert_eq!(count(&asked, "data 250 "), 4, "{asked:?}");

    let mut delivered: Vec<String> = addresses
        .iter()
        .filter(|a| !a.starts_with("stuck") && !a.starts_with("gone"))
        .cloned()
        .collect();
    delivered.sort();
    assert_eq!(received(&peer), each(&delivered, 1));
    // The 550 counted at once (bounce::record_smtp_refusal); the 450s
    // to RCPT until the give-up count once, as a temporary bounce of
    // stuck alone (src/deliver/give_up.rs).
    let mut counted = refused;
    counted.push((
        "stuck@example.com".to_string(),
        false,
        "smtp".to_string(),
        "stuck@example.com".to_string(),
    ));
    assert_eq!(bounces(), counted);
}

/// Every bounce counted against a subscriber: (address, permanent,
/// source, the subscriber's address), in the order they were counted.
fn bounces(tidings: &Tidings) -> Vec<(String, bool, String, String)> {
    let db = store(tidings);
    let mut statement = db
        .prepare(
            "SELECT b.address, b.permanent, b.source, p.address FROM bounces b \
             JOIN subscribers s ON s.id = b.subscriber_id \
             JOIN people p ON p.id = s.person_id ORDER BY b.id",
        )
        .unwrap();
    statement
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every row of `bounces`, whoever it names: (address, reply).
fn bounce_rows(tidings: &Tidings) -> Vec<(String, Option<String>)> {
    let db = store(tidings);
    let mut statement = db
        .prepare("SELECT address, reply FROM bounces ORDER BY id")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Each subscriber's bounce score at `START+seconds`, as `tidings
/// bounces` shows it: (address, score).
fn scores(tidings: &Tidings, seconds: i64) -> Vec<(String, f64)> {
    let db = store(tidings);
    let scoring = |_: &str| tidings::config::bounces::BounceScoring::default();
    store::bounces::scores(&db, scoring, start() + seconds)
        .unwrap()
        .into_iter()
        .map(|(_, address, score, _)| (address, score))
        .collect()
}

/// The lists.toml of the give-up tests: two connections, an hour's retries.
fn give_up_in_an_hour(port: u16) -> impl FnOnce(String) -> String {
    relay_config(
        port,
        2,
        &[("give_up_after_hours = 120", "give_up_after_hours = 1")],
    )
}

/// The retries of a digest issued at `START+issued` (at 5, 15 and 35
/// minutes), each run reporting `report`, then the give-up at an hour and
/// a second: "1 given up".
fn retry_until_given_up(tidings: &Tidings, issued: i64, report: &str, reachable: bool) {
    for tried_at in [300, 900, 2100] {
        let run = run_at(tidings, &["digest", "--list", "en"], issued + tried_at);
        assert_eq!(run.success, reachable, "{}", run.stderr);
        assert_eq!(run.delivered(), report, "at +{tried_at}s");
    }
    assert_eq!(
        deliver_at(tidings, issued + 3601),
        "delivered: 0 sent, 0 deferred, 0 failed, 1 given up"
    );
}

/// Issue 13: a recipient the relay deferred at RCPT TO until the give-up
/// (PIPELINING, so the refusal comes back in a group) is a temporary
/// bounce of that subscriber, scored 0.5 as a soft bounce is, and of
/// nobody else; a second digest given up the next day makes it 1.
#[test]
fn a_recipient_the_relay_deferred_until_the_give_up_counts_as_a_soft_bounce_of_that_subscriber_alone(
) {
    let work = tempfile::tempdir().unwrap();
    let (peer, log) = peer(
        work.path(),
        &["--pipelining", "--defer", "stuck@example.com"],
    );
    let tidings = Tidings::with_config(give_up_in_an_hour(peer.port));
    import(&tidings, 80);
    let mut addresses = addresses("ok", 4);
    addresses.insert(2, "stuck@example.com".to_string());
    subscribe(&tidings, &addresses);

    let first = issue(&tidings);
    assert!(first.success, "{}", first.stderr);
    assert_eq!(first.delivered(), "delivered: 4 sent, 1 deferred, 0 failed");
    let stuck = deliveries(&tidings).remove(2);
    let reply = stuck.last_reply.unwrap();
    assert!(
        reply.starts_with("RCPT TO: transient error (450): 4.2.1 <stuck@example.com>"),
        "{reply}"
    );
    assert!(bounces(&tidings).is_empty(), "a deferral is no bounce yet");
    retry_until_given_up(&tidings, 0, "delivered: 0 sent, 1 deferred, 0 failed", true);

    let soft = (
        "stuck@example.com".to_string(),
        false,
        "smtp".to_string(),
        "stuck@example.com".to_string(),
    );
    assert_eq!(bounces(&tidings), std::slice::from_ref(&soft));
    let (_, counted) = &bounce_rows(&tidings)[0];
    assert!(
        counted.as_deref().is_some_and(|reply| reply.starts_with(
            "given up: not delivered in time; last reply: RCPT TO: transient error (450)"
        )),
        "{counted:?}"
    );
    assert_eq!(
        scores(&tidings, 3601),
        [("stuck@example.com".to_string(), 0.5)]
    );

    // The next day's digest, given up the same way, adds another half.
    import(&tidings, 70);
    let day = 86_400;
    let second = run_at(&tidings, &["digest", "--list", "en", "--now"], day);
    assert!(
        second.stdout.contains("en: issued Vol"),
        "{}",
        second.stdout
    );
    assert_eq!(
        second.delivered(),
        "delivered: 4 sent, 1 deferred, 0 failed"
    );
    retry_until_given_up(
        &tidings,
        day,
        "delivered: 0 sent, 1 deferred, 0 failed",
        true,
    );
    assert_eq!(bounces(&tidings), [soft.clone(), soft]);
    assert_eq!(
        scores(&tidings, day + 3601),
        [("stuck@example.com".to_string(), 1.0)]
    );
    let asked = events(&log);
    assert_eq!(count(&asked, "rcpt 450 stuck@example.com"), 8, "{asked:?}");
    let mut delivered: Vec<String> = addresses
        .iter()
        .filter(|a| !a.starts_with("stuck"))
        .cloned()
        .collect();
    delivered.sort();
    assert_eq!(received(&peer), each(&delivered, 2));
}

#[test]
fn a_relay_down_from_the_first_retry_until_the_give_up_counts_no_bounce_against_anyone() {
    gone_before_the_give_up(Gone::Down);
}

#[test]
fn a_relay_greeting_with_421_until_the_give_up_counts_no_bounce_against_anyone() {
    gone_before_the_give_up(Gone::Greeting421);
}

/// How the relay fails after the first try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gone {
    /// Its port bound, nothing listening: every connection refused.
    Down,
    /// Every connection greeted with 421 and closed.
    Greeting421,
}

/// Issue 13: the relay takes the digest for four subscribers and defers
/// the fifth at RCPT TO, then fails for everyone (`gone`) at every retry
/// until the give-up: the last reply is the relay's, not the
/// recipient's, so the give-up counts against nobody, although the relay
/// had deferred that recipient before and took the digest for others.
fn gone_before_the_give_up(gone: Gone) {
    let work = tempfile::tempdir().unwrap();
    let (peer, _) = peer(work.path(), &["--defer", "stuck@example.com"]);
    let port = peer.port;
    let tidings = Tidings::with_config(give_up_in_an_hour(port));
    import(&tidings, 79);
    let mut addresses = addresses("ok", 4);
    addresses.insert(1, "stuck@example.com".to_string());
    subscribe(&tidings, &addresses);
    let first = issue(&tidings);
    assert_eq!(first.delivered(), "delivered: 4 sent, 1 deferred, 0 failed");
    let reply = deliveries(&tidings)[1].last_reply.clone().unwrap();
    assert!(
        reply.starts_with("RCPT TO: transient error (450)"),
        "{reply}"
    );
    assert_eq!(received(&peer).len(), 4);

    // The same port from now on, held by a relay that is down or that
    // greets every connection with 421.
    drop(peer);
    let never = work.path().join("never");
    let port_text = port.to_string();
    let mut options = vec!["--port", port_text.as_str()];
    match gone {
        Gone::Down => options.extend(["--down-until", never.to_str().unwrap()]),
        Gone::Greeting421 => options.extend(["--greet-421", "1000"]),
    }
    let log = work.path().join("gone.log");
    options.extend(["--events", log.to_str().unwrap()]);
    let _gone = Peer::start(&work.path().join("gone"), &options);
    retry_until_given_up(
        &tidings,
        0,
        "delivered: 0 sent, 1 deferred, 0 failed",
        false,
    );

    let stuck = deliveries(&tidings).remove(1);
    assert_eq!(stuck.state, "failed");
    assert_eq!(stuck.attempts, 4);
    let reply = stuck.last_reply.unwrap();
    assert!(
        reply.starts_with(&format!(
            "given up: not delivered in time; last reply: cannot reach 127.0.0.1:{port}"
        )),
        "{reply}"
    );
    let greeted = count(&events(&log), "greet 421");
    match gone {
        Gone::Down => assert_eq!(greeted, 0),
        Gone::Greeting421 => {
            assert_eq!(greeted, 3);
            assert!(reply.contains("421"), "{reply}");
        }
    }
    assert_eq!(bounce_rows(&tidings), [], "the give-up counted a bounce");
    assert!(scores(&tidings, 3601).is_empty());
}

/// Issue 13: a relay answering every DATA with 451 until the give-up took
/// the digest for nobody: a relay in trouble, not its recipients, so
/// although each was deferred at DATA, no give-up counts against anyone.
#[test]
fn a_relay_deferring_every_recipient_until_the_give_up_counts_no_bounce_against_anyone() {
    let work = tempfile::tempdir().unwrap();
    let (peer, log) = peer(work.path(), &["--defer-data", "1000"]);
    let tidings = Tidings::with_config(give_up_in_an_hour(peer.port));
    import(&tidings, 67);
    let addresses = addresses("d", 3);
    subscribe(&tidings, &addresses);
    let first = issue(&tidings);
    assert!(first.success, "{}", first.stderr);
    assert_eq!(first.delivered(), "delivered: 0 sent, 3 deferred, 0 failed");
    for tried_at in [300, 900, 2100] {
        assert_eq!(
            deliver_at(&tidings, tried_at),
            "delivered: 0 sent, 3 deferred, 0 failed"
        );
    }
    assert_eq!(
        deliver_at(&tidings, 3601),
        "delivered: 0 sent, 0 deferred, 0 failed, 3 given up"
    );
    for d in deliveries(&tidings) {
        assert_eq!(d.state, "failed", "{d:?}");
        let reply = d.last_reply.unwrap();
        assert!(
            reply.starts_with(
                "given up: not delivered in time; last reply: DATA: transient error (451)"
            ),
            "{reply}"
        );
    }
    assert_eq!(count(&events(&log), "data 451 "), 12);
    assert!(peer.recipients().is_empty());
    assert_eq!(bounce_rows(&tidings), [], "the give-up counted a bounce");
}

/// A post whose author wrote raw UTF-8 fields (RFC 6532), sent as it
/// arrived to a relay with or without SMTPUTF8.
fn raw_utf8_post_to(smtputf8: bool) -> (Received, Value) {
    let work = tempfile::tempdir().unwrap();
    let options: &[&str] = if smtputf8 { &["--smtputf8"] } else { &[] };
    let (peer, _) = peer(work.path(), options);
    let tidings = Tidings::with_config(relay_config(peer.port, 1, &[]));
    tidings.subscribe("en", "post", &["ola@example.net".to_string()]);
    let mbox = tidings.path().join("utf8.mbox");
    std::fs::write(
        &mbox,
        "From ana@example.org Mon Jan  1 00:00:00 2024\n\
         From: Ana Ñúñez <ana@example.org>\nTo: a-infos-en@lists.example.org\n\
         Subject: (en) Spain, CNT: ¡general strike in Málaga!\n\
         Message-ID: <malaga@example.org>\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\
         MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: 8bit\n\nThe strike in Málaga goes on.\n\n",
    )
    .unwrap();
    tidings.ok(&["import", "--deliver", mbox.to_str().unwrap()]);
    let report = tidings.ok(&["digest", "--list", "en"]);
    assert!(report.contains("delivered: 1 sent"), "{report}");
    let mut got = peer.messages("ola@example.net");
    assert_eq!(got.len(), 1);
    let message = got.remove(0);
    let envelope = message.envelope.clone();
    (message, envelope)
}

/// Not marked SMTPUTF8 even where the relay offers it: a relay such as
/// Postfix would then bounce it at the first server without SMTPUTF8.
#[test]
fn a_post_with_raw_utf8_fields_goes_as_it_came_unmarked_whether_or_not_the_relay_offers_smtputf8() {
    for smtputf8 in [true, false] {
        let (message, envelope) = raw_utf8_post_to(smtputf8);
        let options: Vec<&str> = envelope["mail_options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert!(options.contains(&"BODY=8BITMIME"), "{options:?}");
        assert!(!options.contains(&"SMTPUTF8"), "{options:?}");
        // Byte for byte the author's: the raw fields stay as written.
        assert!(
            message
                .lossy()
                .contains("\r\nSubject: (en) Spain, CNT: ¡general strike in Málaga!\r\n"),
            "{}",
            message.lossy()
        );
    }
}
