//! Posting policy, moderation and loops through the pipe, as an MTA's
//! pipe transport delivers: one routing table, held posts decided once,
//! loops never published.

mod common;

use common::Tidings;
use serde_json::Value;

const DOMAIN: &str = "lists.example.org";

fn post(id: &str, from: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: a-infos-en@{DOMAIN}\r\nSubject: (en) Strike {id}\r\nMessage-ID: <{id}@example.net>\r\n\r\nThe strike began at dawn.\r\n"
    )
    .into_bytes()
}

/// The English list moderated, with an editor and a moderator.
fn moderated() -> Tidings {
    Tidings::with_config(|text| {
        text.replacen(
            "code = \"en\"\n",
            "code = \"en\"\nposting = \"moderated\"\neditors = [\"editor@example.net\"]\nmoderators = [\"mod@example.net\"]\n",
            1,
        )
    })
}

fn statuses(tidings: &Tidings) -> Vec<(String, String)> {
    tidings
        .posts(&[])
        .iter()
        .map(|p| {
            (
                p["title"].as_str().unwrap_or("").to_string(),
                p["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_stranger_s_post_is_held_an_editor_s_published_and_an_approval_counts_once() {
    let tidings = moderated();
    let to = format!("a-infos-en@{DOMAIN}");
    let out = tidings.run_with_stdin(
        &["ingest", "--sender", "ana@example.net", &to],
        &[],
        &post("s1", "ana@example.net"),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tidings.run_with_stdin(
        &["ingest", "--sender", "editor@example.net", &to],
        &[],
        &post("e1", "editor@example.net"),
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        statuses(&tidings),
        [
            ("Strike s1".to_string(), "held".to_string()),
            ("Strike e1".to_string(), "published".to_string())
        ]
    );
    let held = tidings.posts(&["--status", "held"]);
    assert_eq!(
        held[0]["reason"],
        "moderated list: every post waits for a moderator"
    );
    let listed = tidings.ok(&["moderate", "list"]);
    assert!(listed.contains("1 held"), "{listed}");

    let approved = tidings.ok(&["moderate", "approve", "--all"]);
    assert!(approved.contains("published 1"), "{approved}");
    assert!(tidings.posts(&["--status", "held"]).is_empty());
    // Its page is made with the feeds, daemon or not.
    let key = held[0]["key"].as_str().unwrap();
    let page = tidings.path().join(format!("site/posts/{key}.html"));
    assert!(page.is_file(), "no page for the approved post");
    // Decided once: a second approval, or a rejection after it, changes nothing.
    let again = tidings.ok(&["moderate", "reject", &held[0]["id"].to_string()]);
    assert!(again.contains("rejected 0"), "{again}");
    assert_eq!(tidings.posts(&["--status", "published"]).len(), 2);
    let shown = tidings.ok(&["moderate", "show", &held[0]["id"].to_string()]);
    assert!(shown.contains("Decided by:"), "{shown}");
}

#[test]
fn forged_moderation_tokens_change_nothing() {
    let tidings = moderated();
    let to = format!("a-infos-en@{DOMAIN}");
    tidings.run_with_stdin(
        &["ingest", "--sender", "ana@example.net", &to],
        &[],
        &post("s2", "ana@example.net"),
    );
    let reply =
        b"From: mod@example.net\r\nSubject: Re: held\r\nMessage-ID: <r1@example.net>\r\n\r\nok\r\n";
    for forged in ["aaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "nonsense"] {
        let out = tidings.run_with_stdin(
            &[
                "ingest",
                "--sender",
                "mod@example.net",
                &format!("a-infos-en-owner+approve-{forged}@{DOMAIN}"),
            ],
            &[],
            reply,
        );
        assert_eq!(out.status.code(), Some(0));
    }
    assert_eq!(tidings.posts(&["--status", "held"]).len(), 1);
    assert!(tidings.posts(&["--status", "published"]).is_empty());
}

#[test]
fn every_route_of_the_pipe_does_what_its_address_says() {
    let tidings = Tidings::new();
    let command =
        b"From: ana@example.net\r\nSubject: help\r\nMessage-ID: <c1@example.net>\r\n\r\nhelp\r\n";
    for local in [
        "a-infos-en-request",
        "a-infos-en-subscribe",
        "a-infos-en-unsubscribe",
        "a-infos-en-join",
        "a-infos-en-leave",
        "a-infos-en-confirm+abc",
        "a-infos-en-owner",
        "postmaster",
        "a-infos-en-bounces+ana=example.net",
    ] {
        let out = tidings.run_with_stdin(
            &[
                "ingest",
                "--sender",
                "ana@example.net",
                &format!("{local}@{DOMAIN}"),
            ],
            &[],
            command,
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{local}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(tidings.posts(&[]).is_empty(), "no service mail is a post");
    for unknown in [
        format!("nobody@{DOMAIN}"),
        format!("a-infos-en-admin@{DOMAIN}"),
    ] {
        let out = tidings.run_with_stdin(&["ingest", &unknown], &[], command);
        assert_eq!(out.status.code(), Some(67), "{unknown}");
    }
    assert!(tidings.posts(&[]).is_empty());
}

#[test]
fn loops_are_kept_rejected_and_never_published() {
    let tidings = Tidings::new();
    let to = format!("a-infos-en@{DOMAIN}");
    // From the list's own address.
    tidings.run_with_stdin(
        &["ingest", "--sender", "x@example.net", &to],
        &[],
        &post("l1", &to),
    );
    // A digest of ours come back: our List-Id.
    let digest = format!(
        "From: someone@example.net\r\nList-Id: A-Infos <en.{DOMAIN}>\r\nSubject: (en) Digest\r\nMessage-ID: <l2@example.net>\r\n\r\nIssue 1.\r\n"
    );
    tidings.run_with_stdin(
        &["ingest", "--sender", "x@example.net", &to],
        &[],
        digest.as_bytes(),
    );
    // A null sender to the posting address.
    let out = tidings.run_with_stdin(
        &["ingest", "--sender", "", &to],
        &[],
        &post("l3", "ana@example.net"),
    );
    assert_eq!(out.status.code(), Some(0), "a loop is not bounced");
    let rejected = tidings.posts(&["--status", "rejected"]);
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    assert!(rejected
        .iter()
        .all(|p| p["reason"].as_str().unwrap().starts_with("loop: ")));
    assert!(tidings.posts(&["--status", "published"]).is_empty());
}

#[test]
fn a_post_no_list_can_take_is_held_and_a_moderator_files_it_or_refuses_it() {
    let tidings = Tidings::new();
    let to = format!("a-infos-en@{DOMAIN}");
    let esperanto = |id: &str, from: &str, title: &str| {
        format!(
            "From: {from}\r\nTo: {to}\r\nSubject: (eo) {title}\r\nMessage-ID: <{id}@example.net>\r\n\r\nLa striko komenciĝis ĉe tagiĝo.\r\n"
        )
        .into_bytes()
    };
    for (id, from, title) in [
        ("eo1", "ana@example.net", "Striko en la haveno"),
        ("eo2", "bo@example.net", "Dua afiŝo"),
        ("eo3", "cy@example.net", "Tria afiŝo"),
    ] {
        let out = tidings.run_with_stdin(
            &["ingest", "--sender", from, &to],
            &[],
            &esperanto(id, from, title),
        );
        assert_eq!(out.status.code(), Some(0));
    }
    let held = tidings.posts(&["--status", "held"]);
    assert_eq!(held.len(), 3);
    for post in &held {
        assert_eq!(post["list"], Value::Null);
        assert_eq!(post["reason"], "no list serves the language tag (eo)");
    }
    let (first, second) = (held[0]["id"].to_string(), held[1]["id"].to_string());
    let listed = tidings.ok(&["moderate", "list"]);
    assert!(
        listed.contains("no list serves the language tag (eo)") && listed.contains("--list CODE"),
        "{listed}"
    );

    // Without a list it cannot be published; an unknown list is refused.
    let out = tidings.run(&["moderate", "approve", &first]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("approve it with --list CODE"));
    let out = tidings.run(&["moderate", "approve", &first, "--list", "eo"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no list eo"));
    assert_eq!(tidings.posts(&["--status", "held"]).len(), 3);

    // Filed by the moderator under the Supplement, in its own language.
    let approved = tidings.ok(&["moderate", "approve", &first, "--list", "supplement"]);
    assert!(approved.contains("published 1"), "{approved}");
    let post = &tidings.posts(&["--status", "published"])[0];
    assert_eq!(post["title"], "Striko en la haveno");
    assert_eq!(post["list"], "supplement");
    assert_eq!(post["lang"], "eo");
    assert_eq!(post["filed_by"], "moderator");
    let feed = std::fs::read_to_string(tidings.path().join("feeds/supplement.atom")).unwrap();
    assert!(feed.contains("Striko en la haveno"), "{feed}");
    let english = std::fs::read_to_string(tidings.path().join("feeds/en.atom")).unwrap();
    assert!(!english.contains("Striko"));

    // Refused: its sender is told why.
    let rejected = tidings.ok(&[
        "moderate",
        "reject",
        &second,
        "--reason",
        "write to the Supplement's address",
    ]);
    assert!(rejected.contains("rejected 1"), "{rejected}");
    let told = &stored_about(&tidings, "bo@example.net")["outgoing"];
    assert_eq!(told.as_array().unwrap().len(), 1, "{told}");
    // Told by the list it was sent to, not by whichever list comes first.
    let raw = told[0]["message"].as_str().unwrap();
    let message = mail_parser::MessageParser::new()
        .parse(raw.as_bytes())
        .unwrap();
    assert_eq!(message.subject(), Some("Not published: (eo) Dua afiŝo"));
    let from = message.from().unwrap().first().unwrap().address().unwrap();
    assert_eq!(from, format!("a-infos-en-request@{DOMAIN}"));
    let text = message.body_text(0).unwrap();
    assert!(text.contains("write to the Supplement's address"), "{text}");

    // The moderators of the list each was sent to were told (the
    // operator, as the list names none); replying to the third's notice
    // publishes it there.
    let notices = &stored_about(&tidings, "root@localhost")["outgoing"];
    assert_eq!(notices.as_array().unwrap().len(), 3, "{notices}");
    let notice = mail_parser::MessageParser::new()
        .parse(notices[2]["message"].as_str().unwrap().as_bytes())
        .unwrap();
    assert!(notice.subject().unwrap().contains("Tria afiŝo"));
    let approve = notice.header_raw("Reply-To").unwrap().trim().to_string();
    assert!(
        approve.starts_with("a-infos-en-owner+approve-"),
        "{approve}"
    );
    let out = tidings.run_with_stdin(
        &["ingest", "--sender", "root@localhost", &approve],
        &[],
        b"From: root@localhost\r\nSubject: Re: held\r\nMessage-ID: <ok.1@localhost>\r\n\r\nok\r\n",
    );
    assert_eq!(out.status.code(), Some(0));
    let third = tidings
        .posts(&["--status", "published"])
        .into_iter()
        .find(|post| post["title"] == "Tria afiŝo")
        .expect("published by the reply");
    assert_eq!(third["list"], "en");
    assert_eq!(third["lang"], "en", "published in its list's language");
    assert_eq!(third["filed_by"], "moderator");
    assert!(tidings.ok(&["moderate", "list"]).contains("0 held"));
}

/// Everything the store holds about `address` (`subscribers export
/// --address`): the mail it sent to service addresses, the messages to it.
fn stored_about(tidings: &Tidings, address: &str) -> Value {
    let document: Value =
        serde_json::from_str(&tidings.ok(&["subscribers", "export", "--address", address]))
            .unwrap();
    document["stored"].clone()
}
