//! Posting policy, moderation and loops through the pipe, as an MTA's
//! pipe transport delivers: one routing table, held posts decided once,
//! loops never published.

mod common;

use common::Tidings;

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
