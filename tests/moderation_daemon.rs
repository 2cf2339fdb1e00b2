//! Moderation, loops and the expiry of held posts through the running
//! daemon: smtplib submits over SMTP and LMTP as contributors, moderators
//! and their mail systems do, aiosmtpd (tests/common/smtp_peer.py) is the
//! relay that receives what tidings sends, urllib reads the feeds.

mod common;

use common::daemon::{get, send, send_raw, Daemon};
use common::{wait_for, Peer, Received, Tidings, PATIENCE};
use serde_json::{json, Value};

const DOMAIN: &str = "lists.example.org";
const LIST: &str = "a-infos-en@lists.example.org";
const MODERATOR: &str = "mod@example.org";
const EDITOR: &str = "editor@example.org";

/// lists.toml delivering over SMTP to `port`, https links, the operator
/// outside the list domain, and the English list moderated (an editor, a
/// moderator) with its digest due as soon as one post is pending.
fn config(port: u16) -> impl FnOnce(String) -> String {
    move |text| {
        let replace = |text: String, from: &str, to: &str| {
            assert!(text.contains(from), "lists.toml has no `{from}`");
            text.replacen(from, to, 1)
        };
        let mut text = replace(text, "transport = \"file\"", "transport = \"smtp\"");
        text = replace(text, "\nport = 25\n", &format!("\nport = {port}\n"));
        text = replace(text, "tls = \"opportunistic\"", "tls = \"none\"");
        text = replace(
            text,
            "base_url = \"http://127.0.0.1:8080/\"",
            "base_url = \"https://news.example.org/\"",
        );
        text = replace(
            text,
            "operator = \"root@localhost\"",
            "operator = \"ops@example.com\"",
        );
        replace(
            text,
            "code = \"en\"\n",
            &format!(
                "code = \"en\"\nposting = \"moderated\"\neditors = [\"{EDITOR}\"]\nmoderators = [\"{MODERATOR}\"]\ndigest_size_threshold = 1\n"
            ),
        )
    }
}

/// Sends one message over `protocol`; asserts it was taken.
fn mail(daemon: &Daemon, protocol: &str, item: Value) {
    let sent = send(protocol, daemon, json!([item]));
    assert_eq!(sent[0]["ok"], true, "{sent:?}");
    assert_eq!(sent[0]["refused"], json!({}), "{sent:?}");
}

/// The first address in `text` that starts with `prefix`.
fn address_in(text: &str, prefix: &str) -> String {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {text}"));
    text[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '>' && *c != ')')
        .collect()
}

/// The post whose title is `title`, as `tidings posts --json` prints it.
fn post_titled(tidings: &Tidings, title: &str) -> Value {
    tidings
        .posts(&[])
        .into_iter()
        .find(|post| post["title"] == title)
        .unwrap_or_else(|| panic!("no post {title}"))
}

/// Everything the store holds about `address` (`subscribers export
/// --address`): the mail it sent to service addresses, the messages to it.
fn stored_about(tidings: &Tidings, address: &str) -> Value {
    let document: Value =
        serde_json::from_str(&tidings.ok(&["subscribers", "export", "--address", address]))
            .unwrap();
    document["stored"].clone()
}

/// The outcomes of the mail `address` sent to the service addresses.
fn mail_outcomes(tidings: &Tidings, address: &str) -> Vec<String> {
    stored_about(tidings, address)["mail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["outcome"].as_str().unwrap().to_string())
        .collect()
}

/// How many messages were queued for `address`.
fn queued_for(tidings: &Tidings, address: &str) -> usize {
    stored_about(tidings, address)["outgoing"]
        .as_array()
        .unwrap()
        .len()
}

/// Waits until the daemon serves `feed` with `text` in it; the feed.
fn feed_with(daemon: &Daemon, feed: &str, text: &str) -> String {
    wait_for(&format!("{text} in {feed}"), PATIENCE, || {
        let (status, _, body) = get(daemon, &format!("/feeds/{feed}"), json!({}));
        (status == 200 && body.contains(text)).then_some(body)
    })
}

/// A moderator's answer to `to`: a reply quoting the notice.
fn answer(to: &str, id: &str, body: &str) -> Value {
    json!({"id": id, "from": format!("Mod <{MODERATOR}>"), "to": [to], "subject": "Re: held post", "body": body})
}

fn notice_of(notices: &[Received], title: &str) -> usize {
    notices
        .iter()
        .position(|notice| notice.subject().contains(title))
        .unwrap_or_else(|| panic!("no notice of {title}"))
}

#[test]
fn a_moderated_list_through_the_daemon_holds_notifies_publishes_on_approval_and_tells_a_refused_sender(
) {
    let work = tempfile::tempdir().unwrap();
    let peer = Peer::start(&work.path().join("peer"), &[]);
    let tidings = Tidings::with_config(config(peer.port));
    tidings.ok(&[
        "subscribers",
        "add",
        "--no-confirm",
        "--list",
        "en",
        "--mode",
        "mime",
        "bo@example.net",
    ]);
    tidings.ok(&[
        "subscribers",
        "add",
        "--no-confirm",
        "--list",
        "en",
        "--mode",
        "post",
        "pia@example.net",
    ]);
    let daemon = Daemon::start(&tidings);

    // A stranger's post over SMTP, another's over LMTP: both held, each
    // moderator told.
    mail(
        &daemon,
        "smtp",
        json!({"id": "<dock@example.net>", "from": "Ana <ana@example.net>", "to": [LIST],
               "subject": "(en) Dockers strike at the port",
               "body": "Dockers stopped work at dawn.\nThe port is closed.\nMore tomorrow.\n"}),
    );
    mail(
        &daemon,
        "lmtp",
        json!({"id": "<offtopic@example.net>", "from": "Cy <cy@example.net>", "to": [LIST],
               "subject": "(en) Cheap watches", "body": "Buy now.\n"}),
    );
    let notices = [peer.nth(MODERATOR, 1), peer.nth(MODERATOR, 2)];
    let dock = &notices[notice_of(&notices, "Dockers strike at the port")];
    let spam = &notices[notice_of(&notices, "Cheap watches")];
    let dock_post = post_titled(&tidings, "Dockers strike at the port");
    assert_eq!(dock_post["status"], "held");
    assert_eq!(
        dock.subject(),
        format!(
            "Held for moderation: (en) Dockers strike at the port (post {})",
            dock_post["id"]
        )
    );
    assert_eq!(
        dock.envelope["mail_from"],
        format!("a-infos-en-bounces+mod=example.org@{DOMAIN}")
    );
    assert!(dock
        .header("Auto-Submitted")
        .unwrap()
        .contains("auto-replied"));
    let text = dock.text();
    for shown in [
        "ana@example.net",
        "Language: en",
        "moderated list: every post waits for a moderator",
        "| Dockers stopped work at dawn.",
        "| The port is closed.",
        &format!("tidings moderate approve {}", dock_post["id"]),
        "a-infos-en-owner+reject-",
    ] {
        assert!(text.contains(shown), "the notice lacks {shown:?}:\n{text}");
    }
    let approve = dock.header("Reply-To").unwrap();
    assert!(
        approve.starts_with("a-infos-en-owner+approve-"),
        "{approve}"
    );
    assert!(text.contains(&approve), "{text}");

    // An editor's post is published at once; the digest it makes carries
    // it and nothing held.
    mail(
        &daemon,
        "smtp",
        json!({"id": "<statement@example.org>", "from": format!("Editor <{EDITOR}>"), "to": [LIST],
               "subject": "(en) A word from the editors", "body": "We stand with the dockers.\n"}),
    );
    let first_digest = peer.nth("bo@example.net", 1);
    assert!(first_digest.lossy().contains("A word from the editors"));
    assert!(!first_digest.lossy().contains("Dockers strike"));
    assert_eq!(
        post_titled(&tidings, "A word from the editors")["status"],
        "published"
    );
    let feed = feed_with(&daemon, "en.atom", "A word from the editors");
    assert!(!feed.contains("Dockers strike"), "a held post in the feed");
    let as_sent = peer.nth("pia@example.net", 1);
    assert_eq!(as_sent.subject(), "(en) A word from the editors");

    // A forged token, the rejection token at the approval address, and the
    // token at another list's owner address change nothing.
    let spam_approve = spam.header("Reply-To").unwrap();
    let spam_reject = address_in(&spam.text(), "a-infos-en-owner+reject-");
    let (local, _) = spam_approve.split_once('@').unwrap();
    let last = if local.ends_with('a') { 'b' } else { 'a' };
    let forged = format!("{}{last}@{DOMAIN}", &local[..local.len() - 1]);
    let wrong_purpose = spam_reject.replace("+reject-", "+approve-");
    let other_list = spam_approve.replace("a-infos-en-owner", "a-infos-fr-owner");
    for (n, to) in [&forged, &wrong_purpose, &other_list]
        .into_iter()
        .enumerate()
    {
        mail(
            &daemon,
            "smtp",
            answer(to, &format!("<forged.{n}@example.org>"), "ok"),
        );
    }
    assert_eq!(post_titled(&tidings, "Cheap watches")["status"], "held");
    let outcomes = mail_outcomes(&tidings, MODERATOR);
    assert_eq!(
        outcomes,
        [
            "ignored: not a valid moderation token",
            "ignored: not a valid moderation token",
            "ignored: the token names no post of this list",
        ]
    );

    // The moderator's reply to the notice publishes the post: in the feed,
    // then in the next digest.
    mail(
        &daemon,
        "smtp",
        answer(&approve, "<approve.1@example.org>", "> A post is held\n"),
    );
    let feed = feed_with(&daemon, "en.atom", "Dockers strike at the port");
    assert!(!feed.contains("Cheap watches"));
    feed_with(&daemon, "all.atom", "Dockers strike at the port");
    let second_digest = peer.nth("bo@example.net", 2);
    assert!(second_digest.lossy().contains("Dockers strike at the port"));
    assert!(!second_digest.lossy().contains("A word from the editors"));
    // And to the subscriber in mode post, as it was sent.
    let late = peer.nth("pia@example.net", 2);
    assert_eq!(late.subject(), "(en) Dockers strike at the port");
    assert!(late.text().contains("Dockers stopped work at dawn."));
    let shown = tidings.ok(&["moderate", "show", &dock_post["id"].to_string()]);
    assert!(
        shown.contains(&format!("Decided by:  {MODERATOR}")),
        "{shown}"
    );

    // Replayed, the approval does nothing more.
    mail(
        &daemon,
        "smtp",
        answer(&approve, "<approve.2@example.org>", "> A post is held\n"),
    );
    assert_eq!(
        mail_outcomes(&tidings, MODERATOR)[3..],
        [
            format!("approved post {}", dock_post["id"]),
            format!("ignored: post {} is no longer held", dock_post["id"]),
        ]
    );

    // A post from an automatic sender is refused without telling it; a
    // person's refusal tells them the moderator's reason.
    mail(
        &daemon,
        "smtp",
        json!({"id": "<robot@example.net>", "from": "robot@example.net", "to": [LIST],
               "subject": "(en) Weekly report", "body": "All systems nominal.\n",
               "headers": {"Auto-Submitted": "auto-generated"}}),
    );
    let robot = peer.nth(MODERATOR, 3);
    assert!(robot.subject().contains("Weekly report"));
    let robot_reject = address_in(&robot.text(), "a-infos-en-owner+reject-");
    mail(
        &daemon,
        "smtp",
        answer(&robot_reject, "<reject.1@example.org>", "Automatic.\n"),
    );
    mail(
        &daemon,
        "lmtp",
        answer(
            &spam_reject,
            "<reject.2@example.org>",
            "Advertising is not news.\n\n> A post to A-Infos English is held\n-- \nMod\n",
        ),
    );
    let told = peer.nth("cy@example.net", 1);
    assert_eq!(told.subject(), "Not published: (en) Cheap watches");
    assert!(
        told.text().contains("Reason:  Advertising is not news."),
        "{}",
        told.text()
    );
    assert_eq!(
        told.envelope["mail_from"],
        format!("a-infos-en-bounces+cy=example.net@{DOMAIN}")
    );
    let spam_post = post_titled(&tidings, "Cheap watches");
    assert_eq!(spam_post["status"], "rejected");
    assert_eq!(
        spam_post["reason"],
        "rejected by a moderator: Advertising is not news."
    );
    assert_eq!(post_titled(&tidings, "Weekly report")["status"], "rejected");
    assert_eq!(queued_for(&tidings, "robot@example.net"), 0);
    assert!(peer.messages("robot@example.net").is_empty());
    // Each held post made one notice; the editor's post none. Pia got the
    // two published posts alone.
    assert_eq!(queued_for(&tidings, MODERATOR), 3);
    assert!(peer.messages(EDITOR).is_empty());
    let deliveries = &stored_about(&tidings, "pia@example.net")["post_deliveries"];
    assert_eq!(deliveries.as_array().unwrap().len(), 2, "{deliveries}");
    assert_eq!(peer.messages("pia@example.net").len(), 2);
}

/// lists.toml of [`config`] with the English list open, as most are.
fn open_config(port: u16) -> impl FnOnce(String) -> String {
    move |text| config(port)(text).replacen("posting = \"moderated\"\n", "", 1)
}

/// A counter's value in the daemon's /metrics, 0 when it has none.
fn metric(daemon: &Daemon, name: &str) -> u64 {
    let (status, _, body) = get(daemon, "/metrics", json!({}));
    assert_eq!(status, 200);
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_digest_come_back_a_post_from_the_list_and_an_auto_reply_are_kept_never_published_nor_answered()
{
    let work = tempfile::tempdir().unwrap();
    let peer = Peer::start(&work.path().join("peer"), &[]);
    let tidings = Tidings::with_config(open_config(peer.port));
    tidings.ok(&[
        "subscribers",
        "add",
        "--no-confirm",
        "--list",
        "en",
        "--mode",
        "mime",
        "bo@example.net",
    ]);
    let daemon = Daemon::start(&tidings);
    mail(
        &daemon,
        "smtp",
        json!({"id": "<called@example.net>", "from": "writer@example.net", "to": [LIST],
               "subject": "(en) General strike called", "body": "Workers walk out at noon.\n"}),
    );
    let digest = peer.nth("bo@example.net", 1);
    assert!(digest.lossy().contains("General strike called"));

    // Bo's mailbox forwards the digest, as it came, to the list's address.
    let sent = send_raw(
        "smtp",
        &daemon,
        json!([{"from": "bo@example.net", "to": [LIST], "raw": digest.lossy()}]),
    );
    assert_eq!(
        sent[0]["ok"], true,
        "a loop is taken, not bounced: {sent:?}"
    );
    // A post whose From is the list's own address, over LMTP.
    mail(
        &daemon,
        "lmtp",
        json!({"id": "<own@example.net>", "from": format!("A-Infos <{LIST}>"), "to": [LIST],
               "subject": "(en) Looped post", "body": "This came from the list itself.\n"}),
    );
    // Carl asks to subscribe; his autoresponder answers the confirmation.
    mail(
        &daemon,
        "smtp",
        json!({"id": "<carl.1@example.net>", "from": "carl@example.net",
               "to": [format!("a-infos-en-request@{DOMAIN}")], "subject": "subscribe", "body": ""}),
    );
    let confirmation = peer.nth("carl@example.net", 1);
    let confirm = confirmation.header("Reply-To").unwrap();
    assert!(confirm.starts_with("a-infos-en-confirm+"), "{confirm}");
    mail(
        &daemon,
        "smtp",
        json!({"id": "<carl.2@example.net>", "from": "carl@example.net", "to": [confirm],
               "subject": format!("Out of office: {}", confirmation.subject()),
               "body": "I am away until Monday.\n", "headers": {"Auto-Submitted": "auto-replied"}}),
    );

    // Kept, each with its reason; none published.
    let rejected = tidings.posts(&["--status", "rejected"]);
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    for post in &rejected {
        let reason = post["reason"].as_str().unwrap();
        assert!(reason.starts_with("loop: "), "{reason}");
    }
    assert!(rejected.iter().any(|post| post["title"] == "Looped post"));
    assert_eq!(tidings.posts(&["--status", "published"]).len(), 1);
    assert_eq!(
        mail_outcomes(&tidings, "carl@example.net"),
        [
            "answered: confirm",
            "ignored: Auto-Submitted says it is automatic"
        ]
    );
    assert!(!tidings
        .ok(&["subscribers", "list", "--list", "en"])
        .contains("carl@example.net"));
    assert_eq!(
        metric(&daemon, "tidings_loops_total{address=\"posting\"}"),
        2
    );
    assert_eq!(
        metric(&daemon, "tidings_loops_total{address=\"-confirm\"}"),
        1
    );

    // Not answered: the next post makes a digest of itself alone, and
    // nothing more went to Carl or to the writer.
    mail(
        &daemon,
        "smtp",
        json!({"id": "<on@example.net>", "from": "writer@example.net", "to": [LIST],
               "subject": "(en) The strike goes on", "body": "Day two.\n"}),
    );
    let next = peer.nth("bo@example.net", 2);
    assert!(next.lossy().contains("The strike goes on"));
    assert!(!next.lossy().contains("Looped post"));
    assert!(!next.lossy().contains("General strike called"));
    let feed = feed_with(&daemon, "en.atom", "The strike goes on");
    assert!(
        !feed.contains("Looped post") && !feed.contains("Digest"),
        "{feed}"
    );
    assert_eq!(queued_for(&tidings, "carl@example.net"), 1);
    assert_eq!(queued_for(&tidings, "writer@example.net"), 0);
    assert_eq!(peer.messages("carl@example.net").len(), 1);
    assert_eq!(peer.messages("bo@example.net").len(), 2);
}

#[test]
fn held_posts_expire_on_the_daemon_s_schedule_and_their_senders_are_told() {
    let work = tempfile::tempdir().unwrap();
    let peer = Peer::start(&work.path().join("peer"), &[]);
    let tidings = Tidings::with_config(|text| {
        config(peer.port)(text).replacen("hold_days = 14", "hold_days = 3", 1)
    });
    let mut daemon = Daemon::start(&tidings);
    mail(
        &daemon,
        "smtp",
        json!({"id": "<late@example.net>", "from": "Ana <ana@example.net>", "to": [LIST],
               "subject": "(en) Squat evicted", "body": "The police came at six.\n"}),
    );
    mail(
        &daemon,
        "smtp",
        json!({"id": "<robot.2@example.net>", "from": "robot@example.net", "to": [LIST],
               "subject": "(en) Daily report", "body": "Nothing to say.\n",
               "headers": {"Auto-Submitted": "auto-generated"}}),
    );
    let notice = peer.nth(MODERATOR, 1);
    let approve = notice.header("Reply-To").unwrap();
    peer.nth(MODERATOR, 2);
    let held = post_titled(&tidings, "Squat evicted");
    assert_eq!(held["status"], "held");
    daemon.signal("TERM");
    assert_eq!(daemon.wait(), Some(0));

    // The same store, four days later: past the hold, and past the day
    // the moderators' tokens end with.
    let received =
        chrono::DateTime::parse_from_rfc3339(held["received_at"].as_str().unwrap()).unwrap();
    let later = received + chrono::TimeDelta::days(4);
    let daemon = Daemon::start_with_args(&tidings, "127.0.0.1:0", &["--at", &later.to_rfc3339()]);
    let told = peer.nth("ana@example.net", 1);
    assert_eq!(told.subject(), "Not published: (en) Squat evicted");
    assert!(
        told.text().contains("no moderator decided within 3 days"),
        "{}",
        told.text()
    );
    let expired = post_titled(&tidings, "Squat evicted");
    assert_eq!(expired["status"], "rejected");
    assert_eq!(
        expired["reason"],
        "expired: no moderator decided within 3 days"
    );
    assert_eq!(post_titled(&tidings, "Daily report")["status"], "rejected");
    assert_eq!(queued_for(&tidings, "robot@example.net"), 0);
    // A post held now waits its own three days.
    mail(
        &daemon,
        "smtp",
        json!({"id": "<fresh@example.net>", "from": "Ana <ana@example.net>", "to": [LIST],
               "subject": "(en) Squat retaken", "body": "They are back inside.\n"}),
    );
    peer.nth(MODERATOR, 3);
    let listed = tidings.ok(&["moderate", "list"]);
    assert!(
        listed.contains("Squat retaken") && listed.contains("1 held"),
        "{listed}"
    );
    // The approval comes too late: its token expired with the hold.
    mail(
        &daemon,
        "smtp",
        answer(&approve, "<late.approve@example.org>", "ok\n"),
    );
    assert_eq!(
        mail_outcomes(&tidings, MODERATOR),
        ["ignored: not a valid moderation token"]
    );
    assert_eq!(post_titled(&tidings, "Squat evicted")["status"], "rejected");
    let shown = tidings.ok(&["moderate", "show", &held["id"].to_string()]);
    assert!(shown.contains("Decided by:  expiry"), "{shown}");
}
