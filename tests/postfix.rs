//! tidings next to a real Postfix (Debian's, a private instance per test:
//! tests/common/postfix.rs), configured from the snippets of
//! docs/postfix.md as an operator would paste them: the list domain goes
//! to `tidings serve` over LMTP, or to `tidings ingest` through the pipe
//! transport, and digests go out through that Postfix to a relay on
//! loopback (aiosmtpd, tests/common/smtp_peer.py).
//!
//! What only a real MTA shows: a relay's 550 after Postfix has queued a
//! digest comes back later as Postfix's own DSN to the VERP sender, mail
//! submitted to Postfix (SMTP and its sendmail) lands in tidings, and a
//! tidings that answers 451, is down, or whose pipe exits 75 makes Postfix
//! keep the mail until it can take it.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use common::daemon::{python, Daemon, SEND};
use common::postfix::{doc_block, free_port, Postfix};
use common::{wait_until, Peer, Tidings, PATIENCE};
use serde_json::{json, Value};
use tidings::deliver::DeliveryState;
use tidings::store::{self, deliveries, digests};

const DOMAIN: &str = "lists.example.org";

/// The shipped lists.toml with its [delivery] table edited as
/// docs/postfix.md's "Digests out through Postfix" says (each of the doc's
/// keys replaces the shipped one), pointed at the test's Postfix on
/// `port`, and `english` added to the English list.
fn through_postfix(port: u16, english: &'static str) -> impl FnOnce(String) -> String {
    move |mut text| {
        let block = doc_block(
            "Digests out through Postfix",
            "Over SMTP to the local Postfix",
        );
        let mut lines = block.lines();
        assert_eq!(
            lines.next(),
            Some("[delivery]"),
            "the doc's block:\n{block}"
        );
        for line in lines {
            let setting = line.split(" #").next().unwrap().trim();
            let (key, _) = setting
                .split_once(" = ")
                .unwrap_or_else(|| panic!("not a setting in the doc's [delivery]: {line}"));
            let setting = match key {
                // The test's Postfix listens on a port of its own.
                "port" => format!("port = {port}"),
                _ => setting.to_string(),
            };
            text = set_in_table(&text, "delivery", key, &setting);
        }
        let english_list = "code = \"en\"\n";
        assert!(
            text.contains(english_list),
            "lists.toml has no `{english_list}`"
        );
        text.replacen(english_list, &format!("{english_list}{english}"), 1)
    }
}

/// `text` with the line of `key` in `[table]` replaced by `setting` (or
/// `setting` added at the table's top when it has none).
fn set_in_table(text: &str, table: &str, key: &str, setting: &str) -> String {
    let header = format!("\n[{table}]\n");
    let start = text.find(&header).expect("the table is in lists.toml") + header.len();
    let end = text[start..]
        .find("\n[")
        .map_or(text.len(), |at| start + at + 1);
    let mut body: Vec<String> = text[start..end].lines().map(str::to_string).collect();
    match body
        .iter_mut()
        .find(|line| line.starts_with(&format!("{key} =")))
    {
        Some(line) => *line = setting.to_string(),
        None => body.insert(0, setting.to_string()),
    }
    format!("{}{}\n{}", &text[..start], body.join("\n"), &text[end..])
}

/// Routes the list domain to tidings' LMTP listener at `lmtp`: the
/// main.cf lines and the transport table of docs/postfix.md's LMTP
/// section, with the doc's paths and port made the test's.
fn route_to_lmtp(postfix: &mut Postfix, lmtp: &str) {
    const SECTION: &str = "LMTP to the daemon";
    let config_dir = format!("{}/", postfix.config_dir().display());
    let main_cf = doc_block(SECTION, "`/etc/postfix/main.cf`:");
    assert!(main_cf.contains("hash:/etc/postfix/transport"), "{main_cf}");
    postfix.main_cf(&main_cf.replace("/etc/postfix/", &config_dir));
    let transport = doc_block(SECTION, "`/etc/postfix/transport`:");
    assert!(
        transport.contains(&format!("{DOMAIN} ")) && transport.contains("127.0.0.1:8024"),
        "the doc's transport table routes {DOMAIN} to tidings' default LMTP port:\n{transport}"
    );
    postfix.map("transport", &transport.replace("127.0.0.1:8024", lmtp));
}

fn lmtp_address(daemon: &Daemon) -> String {
    let (host, port) = daemon.address("lmtp");
    format!("{host}:{port}")
}

/// Subscribes `addresses` to `list` in `mode`, confirmed.
fn subscribe(tidings: &Tidings, list: &str, mode: &str, addresses: &[&str]) {
    let output = tidings.run_with_stdin(
        &[
            "subscribers",
            "add",
            "--no-confirm",
            "--list",
            list,
            "--mode",
            mode,
            "-",
        ],
        &[],
        addresses.join("\n").as_bytes(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Submits messages to Postfix's smtpd with smtplib; one result each.
fn submit(postfix: &Postfix, spec: Value) -> Vec<Value> {
    let results: Vec<Value> = python(
        SEND,
        &[
            "smtp",
            "127.0.0.1",
            &postfix.port.to_string(),
            &spec.to_string(),
        ],
    )
    .lines()
    .map(|line| serde_json::from_str(line).unwrap())
    .collect();
    for result in &results {
        assert_eq!(result["ok"], true, "Postfix refused a submission: {result}");
    }
    results
}

/// The Message-IDs of the stored posts (without angle brackets), with
/// each one's status, oldest first.
fn stored(tidings: &Tidings) -> Vec<(String, String)> {
    tidings.posts(&[]).iter().map(id_and_status).collect()
}

/// A post of `tidings posts --json`: its Message-ID and status.
fn id_and_status(post: &Value) -> (String, String) {
    (
        post["message_id"]
            .as_str()
            .unwrap_or_default()
            .trim_matches(['<', '>'])
            .to_string(),
        post["status"].as_str().unwrap_or_default().to_string(),
    )
}

fn count(items: &[String], wanted: &str) -> usize {
    items.iter().filter(|item| *item == wanted).count()
}

#[test]
fn a_relay_s_550_after_postfix_queued_the_digest_disables_that_subscriber_alone() {
    // A detail in the local part: its VERP address has two `+`.
    const GONE: &str = "gone+news@example.com";
    let work = tempfile::tempdir().unwrap();
    // The relay behind Postfix refuses one recipient, as a dead mailbox does.
    let relay = Peer::start(&work.path().join("relay"), &["--reject", GONE]);
    let smtpd = free_port();
    // A digest as soon as a post is pending, and one permanent failure
    // disables (a day's bounces count once, so a higher threshold would
    // take days).
    let tidings = Tidings::with_config(through_postfix(
        smtpd,
        "digest_size_threshold = 1\nbounce_threshold = 1\n",
    ));
    subscribe(
        &tidings,
        "en",
        "mime",
        &["ana@example.com", GONE, "pia@example.net"],
    );
    // Ola takes each post as it comes, through the same Postfix.
    subscribe(&tidings, "en", "post", &["ola@example.net"]);
    let daemon = Daemon::start(&tidings);
    let mut postfix = Postfix::new(smtpd, relay.port);
    route_to_lmtp(&mut postfix, &lmtp_address(&daemon));
    postfix.start();

    // A post submitted to Postfix reaches tidings by LMTP; its digest goes
    // out through Postfix, which takes all three recipients.
    submit(
        &postfix,
        json!([{"id": "<strike-1@example.org>", "to": [format!("a-infos-en@{DOMAIN}")],
                "subject": "(en) General strike called", "body": "Workers walk out at noon.\n"}]),
    );
    wait_until("Ana and Pia to have the first digest", PATIENCE, || {
        let got = relay.recipients();
        count(&got, "ana@example.com") == 1 && count(&got, "pia@example.net") == 1
    });
    // Postfix's DSN for the refused recipient goes to the VERP sender, over
    // LMTP to tidings, which disables Gone.
    wait_until(
        "tidings to disable the refused subscriber",
        PATIENCE,
        || tidings.ok(&["bounces"]).contains("disabled by bounces: 1"),
    );
    let db = store::open(&tidings.path().join("data/tidings.sqlite3")).unwrap();
    let first = digests::last(&db, "en").unwrap().unwrap();
    let sent = deliveries::of_digest(&db, first.id).unwrap();
    assert_eq!(sent.len(), 3);
    assert!(
        sent.iter().all(|d| d.state == DeliveryState::Sent),
        "Postfix took every recipient with a 250: the refusal came after queueing: {sent:?}"
    );
    let log = postfix.log();
    assert!(
        log.contains(&format!("to=<{GONE}>")) && log.contains("status=bounced"),
        "Postfix bounced the refused recipient:\n{log}"
    );
    let verp = format!("a-infos-en-bounces+gone+news=example.com@{DOMAIN}");
    assert!(
        log.lines()
            .any(|line| line.contains(&format!("to=<{verp}>")) && line.contains("status=sent")),
        "Postfix delivered its DSN to the VERP address over LMTP:\n{log}"
    );
    // Kept with the address it came to, as the operator reads it later.
    let kept: Vec<String> = db
        .prepare("SELECT recipient FROM bounce_messages")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        !kept.is_empty() && kept.iter().all(|to| to.eq_ignore_ascii_case(&verp)),
        "each bounce kept names the address it came to: {kept:?}"
    );

    let report = tidings.ok(&["bounces"]);
    let disabled: Vec<&str> = report
        .lines()
        .skip_while(|line| !line.starts_with("disabled by bounces:"))
        .collect();
    assert_eq!(disabled.len(), 2, "one subscriber disabled:\n{report}");
    assert!(disabled[0].ends_with(": 1"), "{report}");
    assert!(
        disabled[1].contains(" en ") && disabled[1].ends_with(GONE),
        "{report}"
    );
    let scores: Vec<&str> = report
        .lines()
        .skip_while(|line| *line != "scores:")
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .collect();
    assert_eq!(scores.len(), 1, "only Gone has a score:\n{report}");
    assert!(scores[0].contains(GONE) && scores[0].contains("(disabled)"));
    let bounces: Vec<&str> = report
        .lines()
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .collect();
    assert!(
        !bounces.is_empty()
            && bounces
                .iter()
                .all(|line| line.contains("permanent dsn") && line.ends_with(GONE)),
        "every bounce counted is Postfix's DSN, against Gone:\n{report}"
    );

    for address in ["ana@example.com", GONE, "pia@example.net"] {
        let shown = tidings.ok(&["subscribers", "show", address]);
        assert_eq!(
            shown.contains("disabled by bounces since"),
            address == GONE,
            "{shown}"
        );
    }

    // The next digest goes to Ana and Pia, not to Gone.
    submit(
        &postfix,
        json!([{"id": "<strike-2@example.org>", "to": [format!("a-infos-en@{DOMAIN}")],
                "subject": "(en) The strike holds", "body": "Day two.\n"}]),
    );
    wait_until(
        "Ana and Pia to have the second digest, Ola both posts",
        PATIENCE,
        || {
            let got = relay.recipients();
            count(&got, "ana@example.com") == 2
                && count(&got, "pia@example.net") == 2
                && count(&got, "ola@example.net") == 2
        },
    );
    let second = digests::last(&db, "en").unwrap().unwrap();
    assert_ne!(second.id, first.id);
    let mut to: Vec<String> = deliveries::of_digest(&db, second.id)
        .unwrap()
        .into_iter()
        .map(|d| d.address)
        .collect();
    to.sort();
    assert_eq!(to, ["ana@example.com", "pia@example.net"]);
    postfix.wait_for_empty_queue();
    // Nothing else went out: no digest and no notice reached Gone, and
    // nobody was answered for the DSNs (Postfix bounced the final notice
    // to Gone as well; tidings read that DSN and stayed quiet).
    let mut received = relay.recipients();
    received.sort();
    assert_eq!(
        received,
        [
            "ana@example.com",
            "ana@example.com",
            "ola@example.net",
            "ola@example.net",
            "pia@example.net",
            "pia@example.net"
        ]
    );

    // The DSN is kept as a bounce, never published: the posts are the two
    // contributions, and the feeds (written after the second) name no DSN.
    let posts = stored(&tidings);
    assert_eq!(
        posts,
        [
            ("strike-1@example.org".to_string(), "published".to_string()),
            ("strike-2@example.org".to_string(), "published".to_string()),
        ]
    );
    let feeds = tidings.path().join("feeds");
    wait_until("the feeds to show the second post", PATIENCE, || {
        std::fs::read_to_string(feeds.join("en.atom"))
            .is_ok_and(|atom| atom.contains("The strike holds"))
    });
    for feed in ["en.atom", "all.atom", "en.rss", "all.rss"] {
        let text = std::fs::read_to_string(feeds.join(feed)).unwrap();
        assert!(
            !text.contains("Undelivered") && !text.contains("MAILER-DAEMON"),
            "{feed} shows the DSN"
        );
    }
}

#[test]
fn a_relay_s_450_makes_postfix_warn_of_the_delay_which_counts_half_and_disables_nobody() {
    const SLOW: &str = "slow@example.com";
    let work = tempfile::tempdir().unwrap();
    // The relay behind Postfix defers one recipient, again and again.
    let relay = Peer::start(&work.path().join("relay"), &["--defer", SLOW]);
    let smtpd = free_port();
    let tidings = Tidings::with_config(through_postfix(
        smtpd,
        "digest_size_threshold = 1\nbounce_threshold = 1\n",
    ));
    subscribe(&tidings, "en", "mime", &["ana@example.com", SLOW]);
    let daemon = Daemon::start(&tidings);
    let mut postfix = Postfix::new(smtpd, relay.port);
    // Postfix tells the sender of mail still queued after a second.
    postfix.main_cf("delay_warning_time = 1s");
    route_to_lmtp(&mut postfix, &lmtp_address(&daemon));
    postfix.start();

    submit(
        &postfix,
        json!([{"id": "<slow-1@example.org>", "to": [format!("a-infos-en@{DOMAIN}")],
                "subject": "(en) Delayed, not lost", "body": "A relay that is busy.\n"}]),
    );
    wait_until("Ana to have the digest", PATIENCE, || {
        relay.recipients() == ["ana@example.com"]
    });
    // Postfix's delay notice (a DSN with Action: delayed) goes to the VERP
    // sender, over LMTP to tidings.
    let report = common::wait_for("tidings to count the delay notice", PATIENCE, || {
        let report = tidings.ok(&["bounces"]);
        if report.lines().any(|line| line.contains(SLOW)) {
            return Some(report);
        }
        postfix.flush();
        None
    });
    let log = postfix.log();
    assert!(
        log.contains("sender delay notification"),
        "Postfix sent a delay notice:\n{log}"
    );
    let bounces: Vec<&str> = report
        .lines()
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .collect();
    assert!(
        !bounces.is_empty()
            && bounces
                .iter()
                .all(|line| line.contains("temporary dsn") && line.ends_with(SLOW)),
        "a delay is temporary, against Slow alone:\n{report}"
    );
    assert!(
        report.contains(&format!(" 0.5 of 1  {SLOW}\n")),
        "a day's delays score 0.5:\n{report}"
    );
    assert!(report.contains("disabled by bounces: 0"), "{report}");
    let shown = tidings.ok(&["subscribers", "show", SLOW]);
    assert!(!shown.contains("disabled"), "{shown}");
    // The digest is still Postfix's to deliver: delayed is not failed.
    let queue = postfix.queue();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(queue[0]["recipients"][0]["address"], SLOW);
}

#[test]
fn postfix_refusing_a_recipient_in_tidings_session_counts_as_a_bounce_at_once() {
    const REFUSED: &str = "refused@example.com";
    let work = tempfile::tempdir().unwrap();
    let relay = Peer::start(&work.path().join("relay"), &[]);
    let smtpd = free_port();
    let tidings = Tidings::with_config(through_postfix(
        smtpd,
        "digest_size_threshold = 1\nbounce_threshold = 1\n",
    ));
    subscribe(&tidings, "en", "mime", &["ana@example.com", REFUSED]);
    let daemon = Daemon::start(&tidings);
    let mut postfix = Postfix::new(smtpd, relay.port);
    route_to_lmtp(&mut postfix, &lmtp_address(&daemon));
    // Postfix itself knows the address is dead and refuses it at RCPT.
    let access = postfix.map(
        "recipient_access",
        &format!("{REFUSED}   550 5.1.1 <{REFUSED}>: mailbox known dead\n"),
    );
    postfix.main_cf(&format!(
        "smtpd_recipient_restrictions = check_recipient_access hash:{},\n    \
         permit_mynetworks, reject_unauth_destination",
        access.display()
    ));
    postfix.start();

    submit(
        &postfix,
        json!([{"id": "<refused-1@example.org>", "to": [format!("a-infos-en@{DOMAIN}")],
                "subject": "(en) Refused in session", "body": "One reader is gone.\n"}]),
    );
    wait_until("Ana to have the digest", PATIENCE, || {
        relay.recipients() == ["ana@example.com"]
    });
    // tidings heard the 550 itself: the delivery failed, and the refusal
    // counted like a DSN.
    let report = common::wait_for("tidings to disable the refused reader", PATIENCE, || {
        let report = tidings.ok(&["bounces"]);
        report.contains("disabled by bounces: 1").then_some(report)
    });
    let bounces: Vec<&str> = report
        .lines()
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .collect();
    // (The final notice to the reader is refused the same way, maybe
    // already: a second bounce of the same day, which changes nothing.)
    assert!(
        !bounces.is_empty()
            && bounces
                .iter()
                .all(|line| line.contains("permanent smtp") && line.ends_with(REFUSED)),
        "{report}"
    );
    assert!(report.trim_end().ends_with(REFUSED), "{report}");
    let db = store::open(&tidings.path().join("data/tidings.sqlite3")).unwrap();
    let digest = digests::last(&db, "en").unwrap().unwrap();
    let failed: Vec<_> = deliveries::of_digest(&db, digest.id)
        .unwrap()
        .into_iter()
        .filter(|d| d.state == DeliveryState::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].address, REFUSED);
    assert!(
        failed[0]
            .last_reply
            .as_deref()
            .is_some_and(|reply| reply.contains("mailbox known dead")),
        "{failed:?}"
    );
    postfix.wait_for_empty_queue();
    assert!(
        !postfix.log().contains("sender non-delivery notification"),
        "no DSN was needed"
    );
}

#[test]
fn mail_submitted_to_postfix_by_smtp_and_by_its_sendmail_is_stored_by_tidings() {
    let work = tempfile::tempdir().unwrap();
    let relay = Peer::start(&work.path().join("relay"), &[]);
    let smtpd = free_port();
    let tidings = Tidings::with_config(through_postfix(smtpd, ""));
    let daemon = Daemon::start(&tidings);
    let mut postfix = Postfix::new(smtpd, relay.port);
    route_to_lmtp(&mut postfix, &lmtp_address(&daemon));
    postfix.start();

    submit(
        &postfix,
        json!([{"id": "<by-smtp@example.org>", "to": [format!("a-infos-en@{DOMAIN}")],
                "subject": "(en) Submitted over SMTP", "body": "Through Postfix's smtpd.\n"}]),
    );
    postfix.sendmail(
        "bea@example.org",
        &[&format!("a-infos-en@{DOMAIN}")],
        format!(
            "From: Bea <bea@example.org>\nTo: a-infos-en@{DOMAIN}\n\
             Subject: (en) Submitted with sendmail\nMessage-ID: <by-sendmail@example.org>\n\
             Date: Wed, 02 Dec 2026 08:00:00 +0000\n\n\
             Through Postfix's sendmail and pickup.\n"
        )
        .as_bytes(),
    );
    // Loops are kept, never published, and taken with a 250, so that
    // Postfix bounces nothing: an automatic reply (Postfix passes its null
    // envelope sender on in LMTP's MAIL FROM), and a message From the
    // list's own address sent by someone else.
    postfix.sendmail(
        "<>",
        &[&format!("a-infos-en@{DOMAIN}")],
        format!(
            "From: MAILER-DAEMON@example.net\nTo: a-infos-en@{DOMAIN}\n\
             Subject: (en) Out of office\nMessage-ID: <null-sender@example.net>\n\n\
             I am away.\n"
        )
        .as_bytes(),
    );
    postfix.sendmail(
        "bea@example.org",
        &[&format!("a-infos-en@{DOMAIN}")],
        format!(
            "From: a-infos-en@{DOMAIN}\nTo: a-infos-en@{DOMAIN}\n\
             Subject: (en) Looks like ours\nMessage-ID: <from-the-list@example.org>\n\n\
             Forged as the list.\n"
        )
        .as_bytes(),
    );
    wait_until("the four messages to be stored", PATIENCE, || {
        stored(&tidings).len() == 4
    });
    postfix.wait_for_empty_queue();
    let mut posts = stored(&tidings);
    posts.sort();
    let stored_as = |id: &str, status: &str| (id.to_string(), status.to_string());
    assert_eq!(
        posts,
        [
            stored_as("by-sendmail@example.org", "published"),
            stored_as("by-smtp@example.org", "published"),
            stored_as("from-the-list@example.org", "rejected"),
            stored_as("null-sender@example.net", "rejected"),
        ]
    );
    let lmtp = lmtp_address(&daemon).replace(':', "]:");
    let log = postfix.log();
    for sent in [format!("to=<a-infos-en@{DOMAIN}>"), format!("[{lmtp}")] {
        assert_eq!(
            log.lines()
                .filter(|line| line.contains(&sent) && line.contains("status=sent"))
                .count(),
            4,
            "Postfix delivered each to tidings' LMTP listener:\n{log}"
        );
    }
    assert!(
        !log.contains("sender non-delivery notification"),
        "Postfix bounced nothing:\n{log}"
    );
    assert!(relay.recipients().is_empty(), "nothing was relayed");
}

#[test]
fn postmaster_and_abuse_at_the_list_domain_reach_the_operator() {
    // The doc routes the whole domain to tidings, with no alias around
    // it: tidings itself takes postmaster@ and abuse@ (RFC 2142).
    operator_gets_postmaster_and_abuse(Transport::Lmtp);
    operator_gets_postmaster_and_abuse(Transport::Pipe);
}

/// The transports of docs/postfix.md.
#[derive(Debug, Clone, Copy)]
enum Transport {
    /// `tidings serve`'s LMTP listener, which passes mail on at once.
    Lmtp,
    /// `tidings ingest`, which queues what it passes on for the next
    /// `tidings digest` (the timer of a site without a daemon).
    Pipe,
}

/// Mail to postmaster@ and abuse@ the list domain, submitted to Postfix
/// and handed to tidings by `transport`, reaches `[site] operator` through
/// Postfix, as it came, and no post is made of it.
fn operator_gets_postmaster_and_abuse(transport: Transport) {
    const OPERATOR: &str = "operator@example.net";
    let work = tempfile::tempdir().unwrap();
    let relay = Peer::start(&work.path().join("relay"), &[]);
    let smtpd = free_port();
    let config = through_postfix(smtpd, "");
    let tidings = Tidings::with_config(move |text| {
        let shipped = "operator = \"root@localhost\"";
        assert!(text.contains(shipped), "lists.toml has no `{shipped}`");
        config(text).replacen(shipped, &format!("operator = \"{OPERATOR}\""), 1)
    });
    let mut postfix = Postfix::new(smtpd, relay.port);
    let _daemon = match transport {
        Transport::Lmtp => {
            let daemon = Daemon::start(&tidings);
            route_to_lmtp(&mut postfix, &lmtp_address(&daemon));
            Some(daemon)
        }
        Transport::Pipe => {
            chown_to_pipe_user(&tidings);
            route_to_pipe(&mut postfix, &tidings);
            None
        }
    };
    postfix.start();

    submit(
        &postfix,
        json!([
            {"id": "<to-postmaster@example.net>", "from": "Ola <ola@example.net>",
             "to": [format!("postmaster@{DOMAIN}")],
             "subject": "Your server", "body": "Is it yours?\n"},
            {"id": "<to-abuse@example.net>", "from": "Ola <ola@example.net>",
             "to": [format!("abuse@{DOMAIN}")],
             "subject": "Spam from your list", "body": "See below.\n"},
        ]),
    );
    if let Transport::Pipe = transport {
        // The pipe took both (exit 0; an unknown address would exit 67 and
        // be bounced to Ola), queued for the operator; the next run of the
        // outbox sends them.
        postfix.wait_for_empty_queue();
        let log = postfix.log();
        for to in ["postmaster", "abuse"] {
            assert!(
                log.lines()
                    .any(|line| line.contains(&format!("to=<{to}@{DOMAIN}>"))
                        && line.contains("relay=tidings")
                        && line.contains("status=sent")),
                "Postfix piped {to}@ to tidings, which took it:\n{log}"
            );
        }
        let digest = as_pipe_user(env!("CARGO_BIN_EXE_tidings"))
            .arg("--config")
            .arg(tidings.config())
            .arg("digest")
            .output()
            .unwrap();
        assert!(
            digest.status.success(),
            "{}",
            String::from_utf8_lossy(&digest.stderr)
        );
    }
    // tidings passes each on through Postfix, as it came.
    wait_until("the operator to have both", PATIENCE, || {
        relay.recipients().len() == 2
    });
    postfix.wait_for_empty_queue();
    assert_eq!(relay.recipients(), [OPERATOR, OPERATOR], "{transport:?}");
    let mut subjects: Vec<String> = std::fs::read_dir(&relay.dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "eml"))
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let subject = text
                .lines()
                .find_map(|line| line.strip_prefix("Subject: "))
                .unwrap();
            subject.to_string()
        })
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        ["Spam from your list", "Your server"],
        "{transport:?}"
    );
    let posts = match transport {
        Transport::Lmtp => stored(&tidings),
        Transport::Pipe => stored_by_pipe_user(&tidings),
    };
    assert!(posts.is_empty(), "{transport:?}: no post was made of them");
}

#[test]
fn postfix_keeps_mail_while_tidings_answers_451_or_is_down_and_delivers_it_once() {
    let work = tempfile::tempdir().unwrap();
    let relay = Peer::start(&work.path().join("relay"), &[]);
    let smtpd = free_port();
    let tidings = Tidings::with_config(through_postfix(smtpd, ""));
    // A fixed LMTP port, so a restarted daemon is where Postfix delivers.
    let lmtp = format!("127.0.0.1:{}", free_port());
    let mut daemon = Daemon::start_at(&tidings, &lmtp, "127.0.0.1:0");
    let mut postfix = Postfix::new(smtpd, relay.port);
    route_to_lmtp(&mut postfix, &lmtp);
    postfix.start();

    // 451: another process holds the store's write lock past the daemon's
    // busy timeout, so tidings cannot commit and says so.
    let lock = Lock::take(&tidings.path().join("data/tidings.sqlite3"));
    submit(
        &postfix,
        json!([{"id": "<while-locked@example.org>", "to": [format!("a-infos-en@{DOMAIN}")],
                "subject": "(en) While the store is locked", "body": "Kept by Postfix.\n"}]),
    );
    let reason = deferred_reason(&postfix);
    assert!(
        reason.contains(" 451 "),
        "deferred for tidings' 451: {reason}"
    );
    drop(lock);
    postfix.flush();
    postfix.wait_for_empty_queue();

    // Down: the daemon stops; Postfix cannot connect and keeps the mail.
    daemon.signal("TERM");
    assert_eq!(daemon.wait(), Some(0));
    submit(
        &postfix,
        json!([{"id": "<while-down@example.org>", "to": [format!("a-infos-en@{DOMAIN}")],
                "subject": "(en) While tidings is down", "body": "Kept by Postfix too.\n"}]),
    );
    postfix.sendmail(
        "bea@example.org",
        &[&format!("a-infos-en@{DOMAIN}")],
        format!(
            "From: Bea <bea@example.org>\nTo: a-infos-en@{DOMAIN}\n\
             Subject: (en) Also while tidings is down\nMessage-ID: <while-down-2@example.org>\n\n\
             Kept by Postfix, from its sendmail.\n"
        )
        .as_bytes(),
    );
    wait_until(
        "Postfix to defer both while tidings is down",
        PATIENCE,
        || {
            let queue = postfix.queue();
            queue.len() == 2
                && queue.iter().all(|message| {
                    message["recipients"][0]["delay_reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("Connection refused"))
                })
        },
    );
    assert!(TcpStream::connect(&lmtp).is_err(), "tidings is down");
    assert_eq!(stored(&tidings).len(), 1, "only the first is stored yet");

    daemon = Daemon::start_at(&tidings, &lmtp, "127.0.0.1:0");
    assert_eq!(lmtp_address(&daemon), lmtp, "back where Postfix delivers");
    postfix.flush();
    postfix.wait_for_empty_queue();
    let mut posts = stored(&tidings);
    posts.sort();
    assert_eq!(
        posts,
        [
            (
                "while-down-2@example.org".to_string(),
                "published".to_string()
            ),
            (
                "while-down@example.org".to_string(),
                "published".to_string()
            ),
            (
                "while-locked@example.org".to_string(),
                "published".to_string()
            ),
        ],
        "each stored once"
    );
    // Postfix delivered each once: one `sent` per message, after deferrals.
    let log = postfix.log();
    let to_tidings = format!("to=<a-infos-en@{DOMAIN}>");
    let lines = |status: &str| {
        log.lines()
            .filter(|line| line.contains(&to_tidings) && line.contains(status))
            .count()
    };
    assert_eq!(lines("status=sent"), 3, "{log}");
    assert!(lines("status=deferred") >= 3, "{log}");
    assert!(relay.recipients().is_empty(), "nothing was relayed");
}

#[test]
fn outside_clients_get_550_at_rcpt_for_what_tidings_refuses_and_nothing_is_bounced() {
    let work = tempfile::tempdir().unwrap();
    let relay = Peer::start(&work.path().join("relay"), &[]);
    let smtpd = free_port();
    let tidings = Tidings::with_config(through_postfix(smtpd, ""));
    let daemon = Daemon::start(&tidings);
    let mut postfix = Postfix::new(smtpd, relay.port);
    route_to_lmtp(&mut postfix, &lmtp_address(&daemon));
    // A second smtpd for which no client is in mynetworks: how the
    // Internet's servers reach Postfix.
    let outside = free_port();
    postfix.master_cf(&format!(
        "127.0.0.1:{outside} inet n - n - - smtpd\n  -o mynetworks=127.0.0.2/32\n"
    ));
    postfix.start();

    let known = format!("a-infos-en@{DOMAIN}");
    let unknown = format!("a-infos-nowhere@{DOMAIN}");
    // Postfix asks tidings about each address (an LMTP probe that ends at
    // RCPT) before it answers; until the answer is in, it says 450 "in
    // progress", and a real sender would come back, as this one does.
    let mut attempt = 0;
    let result = common::wait_for("Postfix to have verified both addresses", PATIENCE, || {
        attempt += 1;
        let id = format!("<from-outside-{attempt}@example.net>");
        let sent = python(
            SEND,
            &[
                "smtp",
                "127.0.0.1",
                &outside.to_string(),
                &json!([{"id": id, "from": "Ola <ola@example.net>",
                         "to": [&known, &unknown],
                         "subject": "(en) From outside", "body": "Sent from afar.\n"}])
                .to_string(),
            ],
        );
        let result: Value = serde_json::from_str(sent.trim()).unwrap();
        let replies = if result["ok"] == true {
            &result["refused"]
        } else {
            &result["error"]
        };
        let in_progress = replies.as_object().is_some_and(|r| {
            r.values()
                .any(|v| v[1].as_str().unwrap().contains("in progress"))
        });
        (!in_progress).then_some(result)
    });
    assert_eq!(result["ok"], true, "{result}");
    let refused = result["refused"].as_object().unwrap();
    assert_eq!(refused.len(), 1, "{result}");
    assert_eq!(refused[&unknown][0], 550, "refused, not deferred: {result}");
    // The one message with a recipient Postfix took is stored.
    let id = result["id"].as_str().unwrap().trim_matches(['<', '>']);
    wait_until("the outside post to be stored", PATIENCE, || {
        stored(&tidings).iter().any(|(stored, _)| stored == id)
    });
    // Relaying elsewhere is refused outright.
    let elsewhere = python(
        SEND,
        &[
            "smtp",
            "127.0.0.1",
            &outside.to_string(),
            &json!([{"id": "<relay-me@example.net>", "to": ["someone@example.com"],
                     "subject": "relay", "body": "no\n"}])
            .to_string(),
        ],
    );
    assert!(elsewhere.contains("Relay access denied"), "{elsewhere}");

    // From mynetworks the check does not apply (permit_mynetworks comes
    // first): Postfix takes the message, tidings refuses the address over
    // LMTP, and Postfix bounces it to its local sender.
    submit(
        &postfix,
        json!([{"id": "<from-inside@example.org>", "from": "Bea <bea@example.org>",
                "to": [&unknown], "subject": "(en) Mistyped", "body": "Oops.\n"}]),
    );
    wait_until("the local sender to get Postfix's bounce", PATIENCE, || {
        relay.recipients().iter().any(|to| to == "bea@example.org")
    });
    postfix.wait_for_empty_queue();
    let bounces: Vec<String> = postfix
        .log()
        .lines()
        .filter(|line| line.contains("sender non-delivery notification"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        bounces.len(),
        1,
        "Postfix bounced the local message alone, nothing from outside: {bounces:?}"
    );
    assert_eq!(relay.recipients(), ["bea@example.org"]);
}

/// The user the doc's pipe runs as is `tidings`; here it is `nobody`, a
/// user every Debian system has (the pipe refuses root), and it owns
/// tidings' files as `tidings` would on a server.
const PIPE_USER: &str = "nobody";
const PIPE_GROUP: &str = "nogroup";

/// `program`, run as the pipe's user: whatever touches the store runs as
/// that user, or the files SQLite makes beside it would be root's.
fn as_pipe_user(program: &str) -> Command {
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={PIPE_USER}"))
        .arg(format!("--regid={PIPE_GROUP}"))
        .args(["--clear-groups", "--", program]);
    command
}

/// Gives tidings' files to the pipe's user, as they are `tidings`' on a
/// server.
fn chown_to_pipe_user(tidings: &Tidings) {
    let owner = format!("{PIPE_USER}:{PIPE_GROUP}");
    let chown = Command::new("chown")
        .args(["-R", &owner])
        .arg(tidings.path())
        .status()
        .unwrap();
    assert!(chown.success());
}

/// Routes the list domain to `tidings ingest` through the pipe of
/// docs/postfix.md's pipe section (master.cf service, main.cf lines and
/// transport table), with the doc's user, binary and paths made the test's.
fn route_to_pipe(postfix: &mut Postfix, tidings: &Tidings) {
    const SECTION: &str = "A pipe per message";
    let binary = env!("CARGO_BIN_EXE_tidings");
    let config = tidings.config().display().to_string();
    let mut master_cf = doc_block(SECTION, "`/etc/postfix/master.cf`:");
    for (from, to) in [
        ("user=tidings", format!("user={PIPE_USER}").as_str()),
        ("/usr/local/bin/tidings", binary),
        ("/etc/tidings/lists.toml", &config),
    ] {
        assert!(
            master_cf.contains(from),
            "the doc's pipe has no `{from}`:\n{master_cf}"
        );
        master_cf = master_cf.replace(from, to);
    }
    postfix.master_cf(&master_cf);
    let config_dir = format!("{}/", postfix.config_dir().display());
    let main_cf = doc_block(SECTION, "`/etc/postfix/main.cf`:");
    assert!(main_cf.contains("hash:/etc/postfix/transport"), "{main_cf}");
    postfix.main_cf(&main_cf.replace("/etc/postfix/", &config_dir));
    let transport = doc_block(SECTION, "`/etc/postfix/transport`:");
    assert!(
        transport.contains(&format!("{DOMAIN} ")) && transport.contains("tidings:"),
        "the doc's transport table routes {DOMAIN} to the pipe:\n{transport}"
    );
    postfix.map("transport", &transport);
}

/// The stored posts as `stored` gives them, read as the pipe's user.
fn stored_by_pipe_user(tidings: &Tidings) -> Vec<(String, String)> {
    let output = as_pipe_user(env!("CARGO_BIN_EXE_tidings"))
        .arg("--config")
        .arg(tidings.config())
        .args(["posts", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut posts: Vec<(String, String)> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| id_and_status(&serde_json::from_str(line).unwrap()))
        .collect();
    posts.sort();
    posts
}

#[test]
fn the_doc_s_pipe_transport_stores_mail_and_postfix_retries_what_exits_75_once() {
    let work = tempfile::tempdir().unwrap();
    let relay = Peer::start(&work.path().join("relay"), &[]);
    let smtpd = free_port();
    let tidings = Tidings::with_config(through_postfix(smtpd, ""));
    chown_to_pipe_user(&tidings);
    let mut postfix = Postfix::new(smtpd, relay.port);
    route_to_pipe(&mut postfix, &tidings);
    postfix.start();

    // No daemon: Postfix runs `tidings ingest` for each message.
    submit(
        &postfix,
        json!([{"id": "<piped-smtp@example.org>", "to": [format!("a-infos-en@{DOMAIN}")],
                "subject": "(en) Piped from SMTP", "body": "Through the pipe transport.\n"}]),
    );
    postfix.sendmail(
        "bea@example.org",
        &[&format!("a-infos-en@{DOMAIN}")],
        format!(
            "From: Bea <bea@example.org>\nTo: a-infos-en@{DOMAIN}\n\
             Subject: (en) Piped from sendmail\nMessage-ID: <piped-sendmail@example.org>\n\n\
             Through sendmail, pickup and the pipe.\n"
        )
        .as_bytes(),
    );
    // A null envelope sender (an automatic reply) reaches the pipe as such
    // and is kept, never published.
    postfix.sendmail(
        "<>",
        &[&format!("a-infos-en@{DOMAIN}")],
        format!(
            "From: MAILER-DAEMON@example.net\nTo: a-infos-en@{DOMAIN}\n\
             Subject: (en) Out of office\nMessage-ID: <piped-null-sender@example.net>\n\n\
             I am away.\n"
        )
        .as_bytes(),
    );
    postfix.wait_for_empty_queue();
    let published = |id: &str| (id.to_string(), "published".to_string());
    assert_eq!(
        stored_by_pipe_user(&tidings),
        [
            (
                "piped-null-sender@example.net".to_string(),
                "rejected".to_string()
            ),
            published("piped-sendmail@example.org"),
            published("piped-smtp@example.org")
        ]
    );

    // 75: lists.toml broken as issue 15 found it (the doc's [delivery]
    // block pasted in as a second table: a duplicate key); tidings ingest
    // asks Postfix to retry, and Postfix keeps the message.
    let good = std::fs::read_to_string(tidings.config()).unwrap();
    let pasted = doc_block(
        "Digests out through Postfix",
        "Over SMTP to the local Postfix",
    );
    std::fs::write(tidings.config(), format!("{good}\n{pasted}")).unwrap();
    submit(
        &postfix,
        json!([{"id": "<piped-while-broken@example.org>", "to": [format!("a-infos-en@{DOMAIN}")],
                "subject": "(en) Piped while lists.toml is broken", "body": "Kept by Postfix.\n"}]),
    );
    let reason = deferred_reason(&postfix);
    assert!(
        reason.contains("temporary failure") && reason.contains("duplicate key"),
        "deferred for the pipe's exit 75: {reason}"
    );
    std::fs::write(tidings.config(), good).unwrap();
    postfix.flush();
    postfix.wait_for_empty_queue();
    assert_eq!(
        stored_by_pipe_user(&tidings),
        [
            (
                "piped-null-sender@example.net".to_string(),
                "rejected".to_string()
            ),
            published("piped-sendmail@example.org"),
            published("piped-smtp@example.org"),
            published("piped-while-broken@example.org"),
        ],
        "each stored once"
    );
    // 67: an address at the domain that is no list's; Postfix bounces it
    // to its sender.
    submit(
        &postfix,
        json!([{"id": "<piped-mistyped@example.org>", "from": "Bea <bea@example.org>",
                "to": [format!("a-infos-nowhere@{DOMAIN}")],
                "subject": "(en) Mistyped", "body": "Oops.\n"}]),
    );
    wait_until("Bea to get Postfix's bounce", PATIENCE, || {
        relay.recipients() == ["bea@example.org"]
    });
    postfix.wait_for_empty_queue();
    let log = postfix.log();
    assert!(
        log.lines().any(|line| line.contains("to=<a-infos-nowhere@")
            && line.contains("status=bounced")
            && line.contains("5.1.1")),
        "Postfix bounced the unknown address as unknown:\n{log}"
    );
    let sent: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("relay=tidings") && line.contains("status=sent"))
        .collect();
    assert_eq!(sent.len(), 4, "Postfix piped each once:\n{log}");
    assert_eq!(
        stored_by_pipe_user(&tidings).len(),
        4,
        "nothing more stored"
    );
    // Each piped post started a detached feed refresh; once they are done,
    // the feeds show the published posts, and not the automatic reply.
    wait_until("the pipe's feed refreshes to end", PATIENCE, || {
        feed_refreshes(&tidings) == 0
    });
    let atom = std::fs::read_to_string(tidings.path().join("feeds/en.atom")).unwrap();
    for subject in [
        "Piped from SMTP",
        "Piped from sendmail",
        "Piped while lists.toml is broken",
    ] {
        assert!(atom.contains(subject), "en.atom has no {subject}");
    }
    assert!(!atom.contains("Out of office"), "en.atom shows a loop");
}

/// How many `tidings feeds --after-ingest` of this tidings run now (the
/// pipe starts one, detached, after each post).
fn feed_refreshes(tidings: &Tidings) -> usize {
    let config = tidings.config().display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
        .filter(|cmdline| {
            let words: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
            words.contains(&config.as_bytes()) && words.contains(&b"--after-ingest".as_slice())
        })
        .count()
}

/// Waits until Postfix has deferred the one queued message; its reason.
fn deferred_reason(postfix: &Postfix) -> String {
    common::wait_for("Postfix to defer the message", PATIENCE, || {
        let queue = postfix.queue();
        let reason = queue.first()?["recipients"][0]["delay_reason"].as_str()?;
        Some(reason.to_string())
    })
}

/// An exclusive transaction on the store, held by another process until
/// dropped.
struct Lock {
    child: std::process::Child,
}

impl Lock {
    fn take(database: &Path) -> Lock {
        use std::io::BufRead;
        let locker = "import sqlite3, sys\n\
                      db = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                      db.execute('BEGIN EXCLUSIVE')\n\
                      print('locked', flush=True)\n\
                      sys.stdin.read()\n\
                      db.execute('ROLLBACK')\n";
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(locker)
            .arg(database)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
        Lock { child }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Postfix opens no more LMTP connections at once than tidings serves for
/// one address: past that tidings answers 421 and Postfix defers the
/// message (for minutes, with Postfix's default backoff), which the
/// Postfix benchmark saw under a burst with Postfix's default of 20.
#[test]
fn the_doc_s_lmtp_concurrency_stays_under_the_connection_limit() {
    let main_cf = doc_block("LMTP to the daemon", "`/etc/postfix/main.cf`:");
    let limit: usize = main_cf
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("lmtp_destination_concurrency_limit =")
        })
        .expect("docs/postfix.md sets lmtp_destination_concurrency_limit")
        .trim()
        .parse()
        .unwrap();
    let config = tidings::config::parse(
        tidings::config::EMBEDDED_LISTS_TOML,
        "lists.toml",
        Path::new("."),
    )
    .unwrap();
    // Room besides for address probes and connections still closing.
    assert!(
        limit <= config.listen.max_connections / 2,
        "{limit} LMTP connections, {} served at once",
        config.listen.max_connections
    );
}

#[test]
fn a_post_with_raw_utf8_fields_reaches_a_relay_without_smtputf8_through_postfix_s_sendmail() {
    // Postfix's sendmail marks a message whose header is not ASCII as
    // needing SMTPUTF8 and bounces it at a relay that does not offer it,
    // as aiosmtpd does not: the digest carrying the post and the post sent
    // as it arrived must both get there, their fields readable.
    let work = tempfile::tempdir().unwrap();
    let relay = Peer::start(&work.path().join("relay"), &[]);
    let mut postfix = Postfix::new(free_port(), relay.port);
    postfix.start();
    let wrapper = work.path().join("sendmail");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec /usr/sbin/sendmail -C {} \"$@\"\n",
            postfix.config_dir().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sendmail = format!("sendmail_command = \"{}\"", wrapper.display());
    let tidings = Tidings::with_config(move |text| {
        let text = set_in_table(&text, "delivery", "transport", "transport = \"sendmail\"");
        set_in_table(&text, "delivery", "sendmail_command", &sendmail)
    });
    subscribe(&tidings, "en", "mime", &["ana@example.com"]);
    subscribe(&tidings, "en", "post", &["ola@example.net"]);
    let mbox = tidings.path().join("utf8.mbox");
    std::fs::write(
        &mbox,
        format!(
            "From josé@correo.example Mon Jan  1 00:00:00 2024\n\
             From: José Pérez <josé@correo.example>\nTo: a-infos-en@{DOMAIN}\n\
             Subject: (en) Spain, CNT: ¡general strike in Málaga!\n\
             Message-ID: <huelga-ü@correo.example>\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\
             MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\
             Content-Transfer-Encoding: 8bit\n\nThe strike in Málaga goes on.\n\n"
        ),
    )
    .unwrap();
    tidings.ok(&["import", "--deliver", mbox.to_str().unwrap()]);
    let out = tidings.ok(&["digest", "--list", "en", "--now"]);
    assert!(out.contains("issued Vol 1, Issue 1"), "{out}");
    postfix.flush();
    wait_until("Ana's digest and Ola's post at the relay", PATIENCE, || {
        let got = relay.recipients();
        count(&got, "ana@example.com") == 1 && count(&got, "ola@example.net") == 1
    });
    postfix.wait_for_empty_queue();
    let log = postfix.log();
    assert!(!log.contains("SMTPUTF8 is required"), "{log}");
    assert!(!log.contains("status=bounced"), "{log}");
    assert_eq!(relay.recipients().len(), 2, "no bounce came back: {log}");

    let subject = "(en) Spain, CNT: ¡general strike in Málaga!";
    let post = &relay.messages("ola@example.net")[0];
    assert!(
        post.subject().ends_with("¡general strike in Málaga!"),
        "{}",
        post.lossy()
    );
    let header = &post.raw[..memchr::memmem::find(&post.raw, b"\r\n\r\n").unwrap()];
    assert!(header.is_ascii(), "{}", post.lossy());
    assert!(post.text().contains("The strike in Málaga goes on."));
    let digest = relay.messages("ana@example.com")[0].lossy();
    let nested = &digest[digest.find("Content-Type: message/rfc822").unwrap()..];
    let part = &nested[nested.find("\r\n\r\n").unwrap() + 4..];
    let part_header = &part[..part.find("\r\n\r\n").unwrap()];
    assert!(part_header.is_ascii(), "{part_header}");
    let parsed = mail_parser::MessageParser::default()
        .parse(part.as_bytes())
        .unwrap();
    assert_eq!(parsed.subject(), Some(subject));
}
