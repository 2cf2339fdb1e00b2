//! The operator's `tidings subscribers` commands, through the real binary:
//! add, remove, list, show, import (CSV and `mailman members` output, dry
//! run, with and without confirmation), export (CSV and a person's data),
//! forget; and the refusal to make a store in the wrong directory.

mod common;

use std::process::{Command, Output};

use common::Tidings;
use serde_json::Value;

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `tidings subscribers import ...` of `csv` on stdin; asserts success.
fn import(tidings: &Tidings, args: &[&str], input: &str) -> String {
    let mut all = vec!["subscribers", "import", "-"];
    all.extend_from_slice(args);
    let output = tidings.run_with_stdin(&all, &[], input.as_bytes());
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{all:?}: {stdout}{stderr}");
    stdout
}

/// The lines of `subscribers list`, sorted.
fn listed(tidings: &Tidings) -> Vec<String> {
    let mut lines: Vec<String> = tidings
        .ok(&["subscribers", "list"])
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// Everything stored about `address`, as `export --address` prints it.
fn data_of(tidings: &Tidings, address: &str) -> Value {
    let output = tidings.ok(&["subscribers", "export", "--address", address]);
    serde_json::from_str(&output).expect("JSON")
}

fn rows(data: &Value, table: &str) -> usize {
    data["stored"][table].as_array().expect(table).len()
}

#[test]
fn add_list_show_and_remove_a_person_on_two_lists() {
    let tidings = Tidings::new();
    let added = tidings.ok(&[
        "subscribers",
        "add",
        "--no-confirm",
        "--list",
        "en",
        "--mode",
        "plain",
        "Ana@Example.NET",
        "bo@example.org",
    ]);
    assert_eq!(added.trim(), "en: 2 added, 0 changed, 0 already subscribed");
    tidings.ok(&[
        "subscribers",
        "add",
        "--no-confirm",
        "--list",
        "ca",
        "--mode",
        "post",
        "ana@example.net",
    ]);
    assert_eq!(
        listed(&tidings),
        [
            "ca\tAna@example.net\tpost",
            "en\tAna@example.net\tplain",
            "en\tbo@example.org\tplain",
        ]
    );
    let shown = tidings.ok(&["subscribers", "show", "ANA@example.net"]);
    let lines: Vec<&str> = shown.lines().collect();
    assert!(
        lines[0].starts_with("Ana@example.net, known since "),
        "{shown}"
    );
    assert!(
        lines[1].starts_with("  ca\tpost\tsubscribed since "),
        "{shown}"
    );
    assert!(
        lines[2].starts_with("  en\tplain\tsubscribed since "),
        "{shown}"
    );
    assert_eq!(lines.len(), 3, "{shown}");

    let removed = tidings.ok(&[
        "subscribers",
        "remove",
        "--list",
        "en",
        "ana@example.net",
        "nobody@example.org",
    ]);
    assert_eq!(removed.trim(), "en: 1 removed, 1 were not subscribed");
    assert_eq!(
        listed(&tidings),
        ["ca\tAna@example.net\tpost", "en\tbo@example.org\tplain"]
    );
    let shown = tidings.ok(&["subscribers", "show", "ana@example.net"]);
    assert!(shown.contains("  en\tplain\tleft "), "{shown}");

    let bad = tidings.run(&["subscribers", "add", "--list", "en", "not-an-address"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad).1.contains("not a mail address"),
        "{:?}",
        text(&bad)
    );
    let unknown = tidings.run(&["subscribers", "show", "nobody@example.org"]);
    assert!(!unknown.status.success());
    assert!(text(&unknown)
        .1
        .contains("nothing is stored about nobody@example.org"));
}

#[test]
fn adding_without_no_confirm_asks_and_subscribes_nobody() {
    let tidings = Tidings::new();
    let added = tidings.ok(&["subscribers", "add", "--list", "en", "ana@example.net"]);
    assert!(added.starts_with("en: 1 asked to confirm"), "{added}");
    assert!(
        listed(&tidings).is_empty(),
        "nobody subscribed before confirming"
    );
    let shown = tidings.ok(&["subscribers", "show", "ana@example.net"]);
    assert!(shown.contains("  en\tmime\tunconfirmed: asked "), "{shown}");
    let data = data_of(&tidings, "ana@example.net");
    let outgoing = data["stored"]["outgoing"].as_array().unwrap();
    assert_eq!(outgoing.len(), 1, "one confirmation queued: {data}");
    let message = outgoing[0]["message"].as_str().unwrap();
    assert!(
        message.contains("Subject: Confirm your subscription"),
        "{message}"
    );
    assert!(message.contains("/confirm/"), "{message}");
}

const ROSTER: &str = "\
address,name,mode,lists
Ana@Example.NET,\"Pérez, Ana\",plain,en ca
bo@example.org,,html,
cy@example.com,Cy,,en
";

#[test]
fn importing_a_csv_dry_run_then_at_once_and_its_export_imports_the_same() {
    let tidings = Tidings::new();
    let dry = import(
        &tidings,
        &["--list", "fr", "--dry-run", "--no-confirm"],
        ROSTER,
    );
    assert!(
        dry.starts_with("dry run: nothing was stored or sent\n"),
        "{dry}"
    );
    assert!(dry.contains("en: 2 added"), "{dry}");
    assert!(listed(&tidings).is_empty(), "a dry run stores nothing");
    assert!(
        !tidings
            .run(&["subscribers", "show", "ana@example.net"])
            .status
            .success(),
        "a dry run stores no person"
    );

    let done = import(&tidings, &["--list", "fr", "--no-confirm"], ROSTER);
    assert!(done.contains("en: 2 added, 0 changed"), "{done}");
    let default_mode = |code: &str| {
        let config = tidings::config::load(Some(&tidings.config())).unwrap();
        config.list(code).unwrap().default_mode.as_str().to_string()
    };
    let expected = [
        "ca\tAna@example.net\tplain".to_string(),
        "en\tAna@example.net\tplain".to_string(),
        format!("en\tcy@example.com\t{}", default_mode("en")),
        "fr\tbo@example.org\thtml".to_string(),
    ];
    assert_eq!(listed(&tidings), expected);
    let shown = tidings.ok(&["subscribers", "show", "ana@example.net"]);
    assert!(
        shown.starts_with("Ana@example.net (Pérez, Ana), known since"),
        "{shown}"
    );

    // Importing again changes nothing.
    let again = import(&tidings, &["--list", "fr", "--no-confirm"], ROSTER);
    assert!(
        again.contains("en: 0 added, 0 changed, 2 already subscribed"),
        "{again}"
    );

    let exported = tidings.ok(&["subscribers", "export"]);
    assert!(
        exported.starts_with("address,name,mode,lists\n"),
        "{exported}"
    );
    assert!(
        exported.contains("Ana@example.net,\"Pérez, Ana\",plain,ca en\n"),
        "{exported}"
    );
    let only_es = tidings.ok(&["subscribers", "export", "--list", "fr"]);
    assert_eq!(
        only_es,
        "address,name,mode,lists\nbo@example.org,,html,fr\n"
    );

    let elsewhere = Tidings::new();
    import(&elsewhere, &["--no-confirm"], &exported);
    assert_eq!(listed(&elsewhere), expected);
    assert_eq!(elsewhere.ok(&["subscribers", "export"]), exported);
}

#[test]
fn an_import_with_a_bad_line_imports_nothing_and_names_the_line() {
    let tidings = Tidings::new();
    tidings.ok(&[
        "subscribers",
        "add",
        "--no-confirm",
        "--list",
        "en",
        "--mode",
        "mime",
        "zo@example.org",
    ]);
    tidings.ok(&[
        "subscribers",
        "add",
        "--no-confirm",
        "--list",
        "en",
        "zo@example.org",
    ]);
    let roster =
        format!("{ROSTER}not an address,Eve,,en\nfe@example.org,,weekly,en\ngi@example.org,,,xx\n");
    let output = tidings.run_with_stdin(
        &["subscribers", "import", "-", "--no-confirm", "--list", "en"],
        &[],
        roster.as_bytes(),
    );
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stderr.contains("line 5: `not an address` cannot be subscribed: not a mail address"),
        "{stderr}"
    );
    assert!(stderr.contains("line 6: `weekly` is no mode"), "{stderr}");
    assert!(
        stderr.contains("line 7: no list has the code `xx`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("3 lines could not be imported: nothing was imported"),
        "{stderr}"
    );
    assert_eq!(listed(&tidings), ["en\tzo@example.org\tmime"]);
    // Addresses no relay delivers to are refused at the door, each with
    // its reason, rather than failing at every digest.
    for (given, why) in [
        ("\"a b\"@example.org", "a quoted local part"),
        ("a@[127.0.0.1]", "a domain literal"),
    ] {
        let output = tidings.run(&["subscribers", "add", "--no-confirm", "--list", "en", given]);
        let (_, stderr) = text(&output);
        assert!(!output.status.success(), "{given} was taken");
        assert!(
            stderr.contains(&format!("`{given}` cannot be subscribed: {why}")),
            "{stderr}"
        );
    }
    assert_eq!(listed(&tidings), ["en\tzo@example.org\tmime"]);
}

#[test]
fn importing_mailman_members_output_keeps_names_and_takes_the_list_and_mode_given() {
    let tidings = Tidings::new();
    // What `mailman members ant@example.com` prints.
    let members = "\
Anne Person <anne@example.com>
bart@example.com
\"Person, Cris\" <Cris@Example.com>
";
    let without_list = tidings.run_with_stdin(
        &["subscribers", "import", "-", "--format", "mailman"],
        &[],
        members.as_bytes(),
    );
    assert!(!without_list.status.success());
    assert!(text(&without_list).1.contains("give --list"));

    let done = import(
        &tidings,
        &[
            "--format",
            "mailman",
            "--list",
            "en",
            "--mode",
            "summary",
            "--no-confirm",
        ],
        members,
    );
    assert_eq!(done.trim(), "en: 3 added, 0 changed, 0 already subscribed");
    assert_eq!(
        listed(&tidings),
        [
            "en\tCris@example.com\tsummary",
            "en\tanne@example.com\tsummary",
            "en\tbart@example.com\tsummary",
        ]
    );
    let shown = tidings.ok(&["subscribers", "show", "cris@example.com"]);
    assert!(
        shown.starts_with("Cris@example.com (Person, Cris)"),
        "{shown}"
    );
}

#[test]
fn an_import_without_no_confirm_sends_each_a_confirmation_and_subscribes_nobody() {
    let tidings = Tidings::new();
    let dry = import(&tidings, &["--list", "fr", "--dry-run"], ROSTER);
    assert!(dry.contains("en: 2 asked to confirm"), "{dry}");
    assert_eq!(rows(&data_of(&tidings, "cy@example.com"), "outgoing"), 0);

    let done = import(&tidings, &["--list", "fr"], ROSTER);
    assert!(done.contains("ca: 1 asked to confirm"), "{done}");
    assert!(done.contains("en: 2 asked to confirm"), "{done}");
    assert!(done.contains("fr: 1 asked to confirm"), "{done}");
    assert!(
        listed(&tidings).is_empty(),
        "nobody subscribed before confirming"
    );
    for (address, confirmations) in [
        ("ana@example.net", 2),
        ("bo@example.org", 1),
        ("cy@example.com", 1),
    ] {
        let data = data_of(&tidings, address);
        assert_eq!(rows(&data, "requests"), confirmations, "{data}");
        let outgoing = data["stored"]["outgoing"].as_array().unwrap();
        assert_eq!(outgoing.len(), confirmations, "{data}");
        for message in outgoing {
            let message = message["message"].as_str().unwrap();
            // In the list's language: the link is what they all share.
            assert!(message.contains("/confirm/"), "{message}");
            assert!(
                message.contains("Auto-Submitted: auto-replied"),
                "{message}"
            );
        }
    }
    let shown = tidings.ok(&["subscribers", "show", "bo@example.org"]);
    assert!(shown.contains("  fr\thtml\tunconfirmed: asked "), "{shown}");
}

#[test]
fn forget_erases_a_person_to_the_last_byte_and_leaves_the_others() {
    let tidings = Tidings::new();
    import(&tidings, &["--list", "fr", "--no-confirm"], ROSTER);
    // A pending request, and its confirmation queued to her.
    tidings.ok(&["subscribers", "add", "--list", "gr", "ana@example.net"]);
    let before = data_of(&tidings, "ana@example.net");
    assert_eq!(rows(&before, "people"), 1);
    assert_eq!(rows(&before, "subscribers"), 2);
    assert_eq!(rows(&before, "requests"), 1);
    assert_eq!(rows(&before, "outgoing"), 1);

    let forgot = tidings.ok(&["subscribers", "forget", "ANA@example.net"]);
    assert!(
        forgot.starts_with("forgot ANA@example.net: 1 person, 2 subscriptions, 1 requests"),
        "{forgot}"
    );
    let after = data_of(&tidings, "ana@example.net");
    for (table, found) in after["stored"].as_object().unwrap() {
        assert_eq!(found.as_array().unwrap().len(), 0, "{table}: {found}");
    }
    assert!(!tidings
        .run(&["subscribers", "show", "ana@example.net"])
        .status
        .success());
    let left = listed(&tidings);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left
        .iter()
        .all(|line| !line.to_lowercase().contains("ana@")));
    // Not a byte of her is left in the store's files: neither her
    // address nor her name.
    for name in ["tidings.sqlite3", "tidings.sqlite3-wal"] {
        let Ok(bytes) = std::fs::read(tidings.path().join("data").join(name)) else {
            continue;
        };
        let lower = String::from_utf8_lossy(&bytes).to_lowercase();
        assert!(
            !lower.contains("ana@example.net"),
            "{name} holds her address"
        );
        assert!(!lower.contains("pérez"), "{name} holds her name");
    }
    let again = tidings.ok(&["subscribers", "forget", "ana@example.net"]);
    assert_eq!(again.trim(), "nothing was stored about ana@example.net");
}

#[test]
fn without_a_lists_toml_an_administrator_command_says_what_it_uses_and_makes_no_store() {
    let empty = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(args)
            .current_dir(empty.path())
            .env_remove("TIDINGS_CONFIG")
            .output()
            .unwrap()
    };
    for args in [
        &[
            "subscribers",
            "add",
            "--no-confirm",
            "--list",
            "en",
            "a@example.org",
        ][..],
        &["subscribers", "import", "-", "--list", "en"],
        &["subscribers", "list"],
        &["subscribers", "export"],
        &["subscribers", "forget", "a@example.org"],
        &["status"],
        &["posts"],
    ] {
        let output = run(args);
        let (stdout, stderr) = text(&output);
        assert!(!output.status.success(), "{args:?}: {stdout}");
        assert!(!stdout.contains("added"), "{args:?}: {stdout}");
        assert!(
            stderr.contains(
                "using the embedded sample configuration and the store ./data/tidings.sqlite3"
            ),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("there is no store ./data/tidings.sqlite3"),
            "{args:?}: {stderr}"
        );
        assert!(
            !empty.path().join("data").exists(),
            "{args:?} made a store in the wrong directory"
        );
    }
}
