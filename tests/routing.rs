//! The routing table, row by row, through every way in: the pipe (`tidings
//! ingest RECIPIENT`, as Postfix's pipe transport runs it), LMTP and SMTP
//! (smtplib against `tidings serve`). What each address does is seen from
//! outside: the answers aiosmtpd receives, the posts and bounces the
//! operator's commands show, and the feeds over HTTP.

mod common;

use common::daemon::{get, send_raw, Daemon};
use common::{wait_for, Peer, Tidings, PATIENCE};
use serde_json::{json, Value};

const DOMAIN: &str = "lists.example.org";
const EDITOR: &str = "editor@example.org";
const OPERATOR: &str = "ops@example.com";

/// What mail to one address does.
#[derive(Debug, Clone, Copy)]
enum Effect {
    /// Filed as a post (the shipped lists are open: published).
    Post,
    /// Answered by the subscriber service from LIST-request: the answer's
    /// text or Reply-To says this.
    Answer(&'static str),
    /// Read as a bounce of this subscriber: scored, never published nor
    /// answered.
    Bounce(&'static str),
    /// Passed on as it came, to this address.
    PassedOn(&'static str),
    /// Refused: 550 5.1.1 from the listeners, 67 from the pipe.
    Refused,
}

use Effect::*;

/// Every row of the table: a local part at the site domain, and what it does.
const TABLE: [(&str, Effect); 15] = [
    ("a-infos-en", Post),
    ("a-infos-en-request", Answer("Help follows.")),
    ("a-infos-en-subscribe", Answer("a-infos-en-confirm+")),
    ("a-infos-en-join", Answer("a-infos-en-confirm+")),
    (
        "a-infos-en-unsubscribe",
        Answer("This address does not follow the list."),
    ),
    (
        "a-infos-en-leave",
        Answer("This address does not follow the list."),
    ),
    (
        "a-infos-en-confirm+aaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        Answer("This confirmation is not valid"),
    ),
    (
        "a-infos-en-bounces+a=sink.example",
        Bounce("a@sink.example"),
    ),
    ("a-infos-en-owner", PassedOn(EDITOR)),
    ("postmaster", PassedOn(OPERATOR)),
    ("abuse", PassedOn(OPERATOR)),
    ("nobody", Refused),
    ("a-infos-en-admin", Refused),
    ("a-infos-en-confirm", Refused),
    ("a-infos-xx-request", Refused),
];

/// What Postfix sends back when a subscriber's mailbox is gone, to the
/// VERP address of the message it could not deliver. English text, from
/// MAILER-DAEMON: filed by its language, it used to be published.
const POSTFIX_BOUNCE: &str = "\
Date: Mon,  2 Mar 2026 10:00:05 +0000 (UTC)
From: MAILER-DAEMON@mx.sink.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: a-infos-en-bounces+a=sink.example@lists.example.org
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary=\"4F2A81C0A5.1772445605/mx.sink.example\"
Content-Transfer-Encoding: 8bit
Message-Id: <20260302100005.7B1C41C0A6@mx.sink.example>

This is a MIME-encapsulated message.

--4F2A81C0A5.1772445605/mx.sink.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.sink.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

<a@sink.example>: host mx.sink.example[192.0.2.25] said: 550 5.1.1
    <a@sink.example>: Recipient address rejected: User unknown in local
    recipient table (in reply to RCPT TO command)

--4F2A81C0A5.1772445605/mx.sink.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.sink.example
X-Postfix-Queue-ID: 4F2A81C0A5
X-Postfix-Sender: rfc822; a-infos-en-bounces+a=sink.example@lists.example.org
Arrival-Date: Mon,  2 Mar 2026 10:00:04 +0000 (UTC)

Final-Recipient: rfc822; a@sink.example
Original-Recipient: rfc822;a@sink.example
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.sink.example
Diagnostic-Code: smtp; 550 5.1.1 <a@sink.example>: Recipient address rejected:
    User unknown in local recipient table

--4F2A81C0A5.1772445605/mx.sink.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers
Content-Transfer-Encoding: 8bit

From: A-Infos English <a-infos-en-request@lists.example.org>
To: a@sink.example
Subject: (en) A-Infos English Digest, Vol 1, Issue 1
Message-ID: <digest.en.1.1@lists.example.org>
List-Id: A-Infos English <en.lists.example.org>

--4F2A81C0A5.1772445605/mx.sink.example--
";

/// The sender of the message a way in takes for a row.
fn sender(way: &str, row: usize) -> String {
    format!("{way}.{row}@example.net")
}

/// The envelope sender and the message for row `row` by `way`.
fn message(way: &str, row: usize, local: &str, effect: Effect) -> (String, String) {
    let from = sender(way, row);
    let (subject, body) = match effect {
        Post => (
            format!("(en) Strike news by {way}"),
            "The strike began at dawn and the port is closed.",
        ),
        Bounce(_) => return (String::new(), POSTFIX_BOUNCE.replace('\n', "\r\n")),
        _ if local.ends_with("-request") => ("help".to_string(), ""),
        _ => (format!("{way} to {local}"), "Hello."),
    };
    let text = format!(
        "From: {from}\r\nTo: {local}@{DOMAIN}\r\nSubject: {subject}\r\nMessage-ID: <{way}.{row}@example.net>\r\n\r\n{body}\r\n"
    );
    (from, text)
}

/// Everything the store holds about `address` (`subscribers export --address`).
fn stored_about(tidings: &Tidings, address: &str) -> Value {
    let document: Value =
        serde_json::from_str(&tidings.ok(&["subscribers", "export", "--address", address]))
            .unwrap();
    document["stored"].clone()
}

/// The rows of `table` in the store's export of a person.
fn rows(stored: &Value, table: &str) -> usize {
    stored[table].as_array().unwrap().len()
}

#[test]
fn every_row_of_the_routing_table_does_the_same_through_the_pipe_lmtp_and_smtp() {
    let work = tempfile::tempdir().unwrap();
    let peer = Peer::start(&work.path().join("peer"), &[]);
    let tidings = Tidings::with_config(|text| {
        let replace = |text: String, from: &str, to: &str| {
            assert!(text.contains(from), "lists.toml has no `{from}`");
            text.replacen(from, to, 1)
        };
        let mut text = replace(text, "transport = \"file\"", "transport = \"smtp\"");
        text = replace(text, "\nport = 25\n", &format!("\nport = {}\n", peer.port));
        text = replace(text, "tls = \"opportunistic\"", "tls = \"none\"");
        text = replace(
            text,
            "operator = \"root@localhost\"",
            &format!("operator = \"{OPERATOR}\""),
        );
        replace(
            text,
            "code = \"en\"\n",
            &format!("code = \"en\"\neditors = [\"{EDITOR}\"]\n"),
        )
    });
    tidings.ok(&[
        "subscribers",
        "add",
        "--no-confirm",
        "--list",
        "en",
        "a@sink.example",
    ]);

    // The pipe, as Postfix runs it: one process per message and recipient.
    for (row, (local, effect)) in TABLE.iter().enumerate() {
        let (from, text) = message("pipe", row, local, *effect);
        let out = tidings.run_with_stdin(
            &["ingest", "--sender", &from, &format!("{local}@{DOMAIN}")],
            &[],
            text.as_bytes(),
        );
        let expected = match effect {
            Refused => 67,
            _ => 0,
        };
        assert_eq!(
            out.status.code(),
            Some(expected),
            "pipe to {local}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Refused = effect {
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(said.contains("5.1.1"), "pipe to {local}: {said}");
        }
    }

    // The listeners; the daemon also sends what the pipe queued.
    let daemon = Daemon::start(&tidings);
    for way in ["lmtp", "smtp"] {
        let spec: Vec<Value> = TABLE
            .iter()
            .enumerate()
            .map(|(row, (local, effect))| {
                let (from, raw) = message(way, row, local, *effect);
                json!({"from": from, "to": [format!("{local}@{DOMAIN}")], "raw": raw})
            })
            .collect();
        let answers = send_raw(way, &daemon, Value::Array(spec));
        for ((local, effect), answer) in TABLE.iter().zip(&answers) {
            match effect {
                Refused => {
                    let refusal = &answer["error"][format!("{local}@{DOMAIN}")];
                    assert_eq!(refusal[0], 550, "{way} to {local}: {answer}");
                    assert!(
                        refusal[1].as_str().unwrap().starts_with("5.1.1 "),
                        "{way} to {local}: {answer}"
                    );
                }
                _ => assert_eq!(answer["ok"], true, "{way} to {local}: {answer}"),
            }
        }
    }

    // What each row did, for each way in.
    for way in ["pipe", "lmtp", "smtp"] {
        for (row, (local, effect)) in TABLE.iter().enumerate() {
            let from = sender(way, row);
            let about = stored_about(&tidings, &from);
            match effect {
                Post => {
                    let post = tidings
                        .posts(&["--list", "en"])
                        .into_iter()
                        .find(|post| post["title"] == format!("Strike news by {way}"))
                        .unwrap_or_else(|| panic!("{way}: no post from {local}"));
                    assert_eq!(post["status"], "published");
                }
                Answer(says) => {
                    let answer = peer.nth(&from, 1);
                    let shown = format!(
                        "{}\n{}",
                        answer.header("Reply-To").unwrap_or_default(),
                        answer.text()
                    );
                    assert!(shown.contains(says), "{way} to {local}: {shown}");
                    assert!(answer
                        .header("From")
                        .unwrap()
                        .contains(&format!("a-infos-en-request@{DOMAIN}")));
                    assert_eq!(rows(&about, "mail"), 1, "{way} to {local}: {about}");
                }
                PassedOn(to) => {
                    let subject = format!("{way} to {local}");
                    let passed = wait_for(&format!("{subject} at {to}"), PATIENCE, || {
                        peer.messages(to)
                            .into_iter()
                            .find(|message| message.subject() == subject)
                    });
                    assert_eq!(passed.envelope["mail_from"], from.as_str());
                }
                Bounce(_) | Refused => {}
            }
            if !matches!(effect, Answer(_)) {
                assert_eq!(rows(&about, "outgoing"), 0, "{way} to {local}: {about}");
            }
            if let Refused = effect {
                assert_eq!(rows(&about, "mail"), 0, "{way} to {local}: {about}");
                assert_eq!(rows(&about, "posts"), 0, "{way} to {local}: {about}");
            }
        }
    }

    // Each bounce counted once per way in, and published by none.
    let bounces = tidings.ok(&["bounces"]);
    for (_, effect) in TABLE {
        if let Bounce(subscriber) = effect {
            let counted = bounces
                .lines()
                .filter(|line| line.contains("permanent") && line.ends_with(subscriber))
                .count();
            assert_eq!(counted, 3, "{bounces}");
        }
    }
    let posts = tidings.posts(&[]);
    assert_eq!(posts.len(), 3, "only the posts are posts: {posts:?}");
    for feed in ["/feeds/en.atom", "/feeds/all.atom"] {
        let body = wait_for(&format!("every post in {feed}"), PATIENCE, || {
            let (status, _, body) = get(&daemon, feed, json!({}));
            (status == 200
                && ["pipe", "lmtp", "smtp"]
                    .iter()
                    .all(|way| body.contains(&format!("Strike news by {way}"))))
            .then_some(body)
        });
        assert!(!body.contains("Undelivered"), "{feed}: {body}");
        assert!(!body.contains("Digest, Vol 1"), "{feed}: {body}");
    }
}
