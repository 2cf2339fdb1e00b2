//! Running tidings for years next to an MTA: the modes of what it
//! publishes whatever the umask Postfix gives a pipe, a store file another
//! user left behind named, and upgrades of the schema (a copy first) and
//! downgrades (refused).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{generate, Tidings};

/// Runs `tidings --config CONFIG ARGS` in `dir` through `sh` with `umask`
/// set, as Postfix's pipe(8) (umask 077) or a unit's UMask= would.
fn tidings_under_umask(tidings: &Tidings, umask: &str, args: &[&str]) -> Output {
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_tidings"))
        .arg("--config")
        .arg(tidings.config())
        .args(args)
        .current_dir(tidings.path())
        .env_remove("TIDINGS_CONFIG")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Every file and directory under `dir`, with its permission bits, less
/// tidings' own hidden files (the lock, the fingerprints), which no web
/// server serves.
fn modes(dir: &Path) -> Vec<(PathBuf, u32, bool)> {
    let mut found = Vec::new();
    let mut waiting = vec![dir.to_path_buf()];
    while let Some(next) = waiting.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let metadata = entry.metadata().unwrap();
            let mode = metadata.permissions().mode() & 0o7777;
            if metadata.is_dir() {
                waiting.push(entry.path());
            }
            found.push((entry.path(), mode, metadata.is_dir()));
        }
    }
    found
}

fn mbox_of_posts(tidings: &Tidings, count: usize) -> PathBuf {
    let (mbox, _) = generate(
        tidings.path(),
        "posts.mbox",
        "mbox",
        &["--n", &count.to_string()],
    );
    mbox
}

#[test]
fn feeds_and_pages_written_under_umask_077_are_readable_by_a_web_server() {
    let tidings = Tidings::new();
    let mbox = mbox_of_posts(&tidings, 20);
    tidings_under_umask(&tidings, "077", &["import", mbox.to_str().unwrap()]);
    tidings_under_umask(&tidings, "077", &["feeds"]);
    tidings_under_umask(&tidings, "077", &["site"]);
    for dir in ["feeds", "site"] {
        let written = modes(&tidings.path().join(dir));
        assert!(written.len() > 16, "{dir}: {written:?}");
        assert!(written.iter().any(|(_, _, is_dir)| *is_dir) || dir == "feeds");
        for (path, mode, is_dir) in written {
            let wanted = if is_dir { 0o755 } else { 0o644 };
            assert_eq!(mode, wanted, "{} is {mode:o}", path.display());
        }
        let top = std::fs::metadata(tidings.path().join(dir)).unwrap();
        assert_eq!(top.permissions().mode() & 0o777, 0o755, "{dir}");
    }
    // The store stays the owner's alone: only what is published opens up.
    let data = tidings.path().join("data/tidings.sqlite3");
    let store = std::fs::metadata(data).unwrap().permissions().mode() & 0o777;
    assert_eq!(store, 0o600);
}

#[test]
fn file_mode_is_configured_and_an_unchanged_feed_is_given_it() {
    let tidings = Tidings::new();
    let mbox = mbox_of_posts(&tidings, 5);
    tidings_under_umask(&tidings, "077", &["import", mbox.to_str().unwrap()]);
    tidings_under_umask(&tidings, "022", &["feeds"]);
    let feed = tidings.path().join("feeds/en.atom");
    // A feed made private by hand (or by a tidings before file_mode) is
    // given the configured mode by the next run, though its bytes stay.
    std::fs::set_permissions(&feed, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = std::fs::read_to_string(tidings.config()).unwrap();
    let config = config.replacen("\nfile_mode = 0o644\n", "\nfile_mode = 0o640\n", 1);
    std::fs::write(tidings.config(), config).unwrap();
    let said = tidings_under_umask(&tidings, "077", &["feeds"]);
    assert!(
        !String::from_utf8_lossy(&said.stdout).contains("en.atom"),
        "the feed was rewritten"
    );
    let mode = std::fs::metadata(&feed).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    tidings_under_umask(&tidings, "077", &["site"]);
    for (path, mode, is_dir) in modes(&tidings.path().join("site")) {
        let wanted = if is_dir { 0o750 } else { 0o640 };
        assert_eq!(mode, wanted, "{} is {mode:o}", path.display());
    }
}

#[test]
fn a_file_mode_without_owner_write_is_refused_with_its_line() {
    let tidings = Tidings::with_config(|text| {
        text.replacen("\nfile_mode = 0o644\n", "\nfile_mode = 644\n", 1)
    });
    let output = tidings.run(&["check"]);
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("lists.toml:"), "{said}");
    assert!(said.contains("file_mode 644"), "{said}");
    assert!(said.contains("0o644"), "{said}");
}

/// Runs `tidings --config CONFIG ARGS` as the user nobody, as Postfix's
/// alias variant does (`default_privs`), with `input` on stdin.
fn tidings_as_nobody(tidings: &Tidings, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_tidings"))
        .arg("--config")
        .arg(tidings.config())
        .args(args)
        .current_dir(tidings.path())
        .env_remove("TIDINGS_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

fn chown_to_nobody(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_wal_file_left_read_only_is_named_and_ingest_retries() {
    assert!(
        is_root(),
        "this test acts as another user (nobody) and needs root (CI runs the tests as root)"
    );
    let tidings = Tidings::new();
    let mbox = mbox_of_posts(&tidings, 3);
    tidings.ok(&["import", mbox.to_str().unwrap()]);
    let (eml, _) = generate(tidings.path(), "one", "eml", &["--n", "1", "--seed", "7"]);
    let message = std::fs::read(eml.join("000000.eml")).unwrap();
    // The store was opened read-only once: SQLite left its -wal and -shm
    // at 0444, and the operator then made only the database writable.
    let store = tidings.path().join("data/tidings.sqlite3");
    let wal = tidings.path().join("data/tidings.sqlite3-wal");
    let shm = tidings.path().join("data/tidings.sqlite3-shm");
    for file in [&wal, &shm] {
        std::fs::write(file, b"").unwrap();
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    chown_to_nobody(tidings.path());
    std::fs::set_permissions(tidings.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let args = ["ingest", "a-infos-en@lists.example.org"];
    let refused = tidings_as_nobody(&tidings, &args, &message);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(75), "{said}");
    assert!(
        said.contains(&format!("{} is not writable", wal.display())),
        "{said}"
    );
    assert!(said.contains("chown"), "{said}");
    // Fixed as the message says, the same message goes in.
    for file in [&wal, &shm] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let taken = tidings_as_nobody(&tidings, &args, &message);
    assert!(
        taken.status.success(),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    assert!(store.exists());
}

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// Runs SQL on the database file with the sqlite3 shell, another program
/// than tidings, and returns what it printed.
fn sqlite3(database: &Path, sql: &str) -> String {
    let output = Command::new("sqlite3")
        .arg(database)
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// The store as the tidings before migration 0014 left it: without the
/// first_lines table (0014), the newsgroup numbers (0015) and their
/// triggers, the imported posts (0016) nor the digests across lists
/// (0017), at schema version 13.
fn downgrade_to_13(database: &Path) {
    sqlite3(
        database,
        "DROP TRIGGER first_lines_changed; DROP TRIGGER first_lines_deleted; \
         DROP TABLE first_lines; \
         DROP TRIGGER posts_nntp_insert; DROP TRIGGER posts_nntp_update; \
         DROP TABLE nntp_articles; DROP TABLE imported_posts; \
         DROP TABLE combined_owed; DROP TABLE combined; \
         DROP INDEX outgoing_combined_to_prune; PRAGMA user_version = 13;",
    );
}

#[test]
fn an_older_store_is_copied_beside_itself_before_it_is_upgraded() {
    let tidings = Tidings::new();
    let mbox = mbox_of_posts(&tidings, 20);
    tidings.ok(&["import", mbox.to_str().unwrap()]);
    let database = tidings.path().join("data/tidings.sqlite3");
    let current = sqlite3(&database, "PRAGMA user_version");
    let posts = sqlite3(&database, "SELECT count(*) FROM posts");
    assert!(posts.parse::<u32>().unwrap() > 0);
    downgrade_to_13(&database);
    let output = tidings.run(&["status"]);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    let backup = tidings.path().join("data/tidings.sqlite3.v13.backup");
    assert!(said.contains(&backup.display().to_string()), "{said}");
    // The copy is the store as it was; the store is upgraded in place.
    assert_eq!(sqlite3(&backup, "PRAGMA user_version"), "13");
    assert_eq!(sqlite3(&backup, "SELECT count(*) FROM posts"), posts);
    assert_eq!(
        sqlite3(
            &backup,
            "SELECT count(*) FROM sqlite_master WHERE name = 'first_lines'"
        ),
        "0"
    );
    assert_eq!(sqlite3(&database, "PRAGMA user_version"), current);
    assert_eq!(
        sqlite3(&database, "SELECT count(*) FROM first_lines"),
        posts
    );
    // A store already up to date is copied no more.
    std::fs::remove_file(&backup).unwrap();
    tidings.ok(&["status"]);
    assert!(!backup.exists());
}

#[test]
fn a_newer_store_is_refused_naming_both_versions_and_left_alone() {
    let tidings = Tidings::new();
    let mbox = mbox_of_posts(&tidings, 3);
    tidings.ok(&["import", mbox.to_str().unwrap()]);
    let database = tidings.path().join("data/tidings.sqlite3");
    let current: usize = sqlite3(&database, "PRAGMA user_version").parse().unwrap();
    let newer = current + 3;
    sqlite3(&database, &format!("PRAGMA user_version = {newer}"));
    for args in [&["status"][..], &["posts"][..]] {
        let output = tidings.run(args);
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(
            said.contains(&format!("at schema version {newer}")),
            "{said}"
        );
        assert!(
            said.contains(&format!("knows versions up to {current}")),
            "{said}"
        );
        assert!(said.contains("docs/upgrading.md"), "{said}");
    }
    let (eml, _) = generate(tidings.path(), "one", "eml", &["--n", "1", "--seed", "7"]);
    let message = std::fs::read(eml.join("000000.eml")).unwrap();
    let refused =
        tidings.run_with_stdin(&["ingest", "a-infos-en@lists.example.org"], &[], &message);
    assert_eq!(refused.status.code(), Some(75), "the MTA keeps the mail");
    assert_eq!(sqlite3(&database, "PRAGMA user_version"), newer.to_string());
}

/// A documented key: its name, its type, its default and its example, as
/// written.
struct Documented {
    key: String,
    kind: String,
    default: String,
    example: String,
}

/// The tables of docs/configuration.md: each `## [table]` heading with
/// its rows.
fn documented_tables() -> Vec<(String, Vec<Documented>)> {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
    )
    .unwrap();
    let mut tables: Vec<(String, Vec<Documented>)> = Vec::new();
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            tables.push((heading.trim().to_string(), Vec::new()));
        } else if let Some(row) = line.strip_prefix("| `") {
            let cells: Vec<&str> = row.split(" | ").map(str::trim).collect();
            let key = cells[0].trim_end_matches('`').to_string();
            let example = cells[3].trim_matches('`').to_string();
            let (_, rows) = tables.last_mut().expect("a row under a table heading");
            rows.push(Documented {
                key,
                kind: cells[1].to_string(),
                default: cells[2].to_string(),
                example,
            });
        }
    }
    tables
}

#[test]
fn configuration_md_documents_every_key_the_tables_take_and_no_other() {
    let documented = documented_tables();
    let code = tidings::config::keys::tables();
    let names = |tables: Vec<&str>| tables.into_iter().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        names(documented.iter().map(|(name, _)| name.as_str()).collect()),
        names(code.iter().map(|(name, _)| *name).collect()),
        "the tables of docs/configuration.md"
    );
    for ((table, rows), (_, keys)) in documented.iter().zip(&code) {
        let mut written: Vec<&str> = rows.iter().map(|row| row.key.as_str()).collect();
        let mut taken = keys.to_vec();
        written.sort_unstable();
        taken.sort_unstable();
        assert_eq!(
            written, taken,
            "the keys of {table} in docs/configuration.md"
        );
    }
}

#[test]
fn every_example_in_configuration_md_has_its_type_and_all_load_together() {
    let mut document = String::new();
    for (table, rows) in documented_tables() {
        document.push_str(&format!("{table}\n"));
        for Documented {
            key, kind, example, ..
        } in rows
        {
            let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {example}"))
                .unwrap_or_else(|error| panic!("{table} {key}: {example}: {error}"))
                .remove("v")
                .unwrap();
            let fits = match kind.as_str() {
                "string" | "path" | "choice" => value.is_str(),
                "integer" => value.is_integer(),
                "number" => value.is_integer() || value.is_float(),
                "boolean" => value.is_bool(),
                "strings" => value
                    .as_array()
                    .is_some_and(|items| items.iter().all(toml::Value::is_str)),
                "schedules" => value
                    .as_table()
                    .is_some_and(|items| items.values().all(toml::Value::is_str)),
                other => panic!("{table} {key}: unknown type {other}"),
            };
            assert!(fits, "{table} {key}: example {example} is not a {kind}");
            document.push_str(&format!("{key} = {example}\n"));
        }
        document.push('\n');
    }
    // The examples make one configuration that loads: each a value its
    // key takes.
    let dir = tempfile::tempdir().unwrap();
    // The key file must exist (it is read when signing, not when loading).
    std::fs::create_dir(dir.path().join("dkim")).unwrap();
    std::fs::write(dir.path().join("dkim/tidings2026.pem"), "").unwrap();
    let config = tidings::config::parse(&document, "configuration.md", dir.path());
    if let Err(errors) = config {
        panic!("{document}\n{errors}");
    }
}

/// A value as TOML writes it, if `text` is one.
fn toml_value(text: &str) -> Option<toml::Value> {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()?
        .remove("v")
}

/// A setting: its table as docs/configuration.md heads it, its key and its
/// value as TOML.
type Setting<'a> = (&'a str, &'a str, String);

/// A lists.toml of `settings` and what it needs to load: one `[[dkim]]`
/// and one `[[list]]` with their required keys (the documented examples,
/// the list's address moved into the `[site] domain` set, if one is), less
/// the required key `without`.
fn configuration(
    tables: &[(String, Vec<Documented>)],
    settings: &[Setting<'_>],
    without: Option<(&str, &str)>,
) -> String {
    let domain = settings
        .iter()
        .find(|(table, key, _)| (*table, *key) == ("[site]", "domain"))
        .map(|(_, _, value)| toml_value(value).unwrap().as_str().unwrap().to_string())
        .unwrap_or_else(|| tidings::config::Site::default().domain);
    let mut document = String::new();
    for (table, rows) in tables {
        let mut lines = Vec::new();
        if table.starts_with("[[") {
            for row in rows.iter().filter(|row| row.default == "required") {
                if without == Some((table.as_str(), row.key.as_str())) {
                    continue;
                }
                let value = match row.key.as_str() {
                    "address" => {
                        let example = toml_value(&row.example).unwrap();
                        let (local, _) = example.as_str().unwrap().rsplit_once('@').unwrap();
                        format!("\"{local}@{domain}\"")
                    }
                    _ => row.example.clone(),
                };
                lines.push(format!("{} = {value}", row.key));
            }
        }
        for (_, key, value) in settings.iter().filter(|(of, _, _)| of == table) {
            lines.push(format!("{key} = {value}"));
        }
        if !lines.is_empty() {
            document.push_str(&format!("{table}\n{}\n\n", lines.join("\n")));
        }
    }
    document
}

/// Every table and list `document` loads to, as Debug renders them, or
/// the errors it gets.
fn loaded(document: &str, dir: &Path) -> Result<String, String> {
    tidings::config::parse(document, "lists.toml", dir)
        .map(|config| {
            format!(
                "{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}",
                config.site,
                config.ingest,
                config.feeds,
                config.listen,
                config.delivery,
                config.dkim,
                config.lists
            )
        })
        .map_err(|errors| format!("{document}\n{errors}"))
}

/// The defaults docs/configuration.md writes in words, each with what it
/// means: given these settings, the key left out loads as if written so.
/// (table, key, the default as documented, given, as if written)
type Prose = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str, &'static str)],
    &'static str,
);
const PROSE_DEFAULTS: &[Prose] = &[
    (
        "[site]",
        "newsgroups_prefix",
        "the `name` in lowercase, other characters `-`",
        &[("[site]", "name", "\"A-Infos News\"")],
        "\"a-infos-news\"",
    ),
    (
        "[delivery]",
        "outbox_dir",
        "`data_dir` + `/outbox`",
        &[("[site]", "data_dir", "\"/var/lib/tidings\"")],
        "\"/var/lib/tidings/outbox\"",
    ),
    // The list's name is its documented example, "English".
    ("[[list]]", "title", "the name", &[], "\"English\""),
    ("[[list]]", "description", "the name", &[], "\"English\""),
];

/// Where two loaded configurations differ: the lines of `written` that
/// are not those of `absent` at the same place, or nothing.
fn differences(written: &str, absent: &str) -> String {
    let lines: Vec<String> = written
        .lines()
        .zip(absent.lines())
        .filter(|(written, absent)| written != absent)
        .map(|(written, absent)| format!("{} instead of {}", written.trim(), absent.trim()))
        .take(3)
        .collect();
    if lines.is_empty() && written != absent {
        return "a different number of lines".to_string();
    }
    lines.join("; ")
}

#[test]
fn every_default_in_configuration_md_is_what_a_file_without_the_key_loads() {
    let tables = documented_tables();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dkim")).unwrap();
    std::fs::write(dir.path().join("dkim/tidings2026.pem"), "").unwrap();
    let load = |settings: &[Setting<'_>]| {
        loaded(&configuration(&tables, settings, None), dir.path()).unwrap()
    };
    let example = |table: &str, key: &str| {
        let (_, rows) = tables.iter().find(|(name, _)| name == table).unwrap();
        let row = rows.iter().find(|row| row.key == key).unwrap();
        row.example.clone()
    };
    // What the key written as documented loads to against what the file
    // without it loads to, given `given`.
    let compare = |given: &[Setting<'_>], written: Setting<'_>| {
        let mut settings = given.to_vec();
        settings.push(written);
        differences(&load(&settings), &load(given))
    };
    let absent = load(&[]);
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (table, rows) in &tables {
        let table = table.as_str();
        for row in rows {
            let (key, default) = (row.key.as_str(), row.default.as_str());
            // The first `...` of the cell: a value, or the key it follows.
            let written = default
                .split('`')
                .nth(1)
                .filter(|_| default.matches('`').count() >= 2);
            let found = if default == "required" {
                let without = configuration(&tables, &[], Some((table, key)));
                match loaded(&without, dir.path()) {
                    Ok(_) => "a file without it loads".to_string(),
                    Err(_) => String::new(),
                }
            } else if default.starts_with("none") {
                match absent.contains(&format!("{key}: None,")) {
                    true => String::new(),
                    false => "a file without it does not load it as none".to_string(),
                }
            } else if let Some(value) = written.filter(|value| toml_value(value).is_some()) {
                let mut found = compare(&[], (table, key, value.to_string()));
                // "`465` with `tls = \"implicit\"`": its default under another setting.
                let rest = default.splitn(3, '`').nth(2).unwrap_or("").trim();
                if let Some((value, setting)) = rest
                    .strip_prefix("(`")
                    .and_then(|rest| rest.strip_suffix("`)"))
                    .and_then(|rest| rest.split_once("` with `"))
                {
                    let (other, other_value) = setting.split_once(" = ").unwrap();
                    let given = [(table, other, other_value.to_string())];
                    let under = compare(&given, (table, key, value.to_string()));
                    if !under.is_empty() {
                        found.push_str(&format!(" with {setting}: {under}"));
                    }
                }
                found
            } else if let Some((other_table, other_key)) = written
                .and_then(|written| written.split_once(' '))
                .filter(|(other_table, _)| other_table.starts_with('['))
            {
                // "`[site] posting`": the other key's value, whatever it is.
                let value = example(other_table, other_key);
                let given = [(other_table, other_key, value.clone())];
                compare(&given, (table, key, value))
            } else {
                match PROSE_DEFAULTS
                    .iter()
                    .find(|rule| (rule.0, rule.1) == (table, key))
                {
                    None => "neither a value, a key it follows, nor in PROSE_DEFAULTS".to_string(),
                    Some((_, _, documented, _, _)) if default != *documented => {
                        format!("changed from {documented}: check it and PROSE_DEFAULTS")
                    }
                    Some((_, _, _, given, as_if)) => {
                        let given: Vec<Setting<'_>> = given
                            .iter()
                            .map(|(table, key, value)| (*table, *key, value.to_string()))
                            .collect();
                        compare(&given, (table, key, as_if.to_string()))
                    }
                }
            };
            if !found.is_empty() {
                wrong.push(format!(
                    "{table} {key}: documented default {default}: {found}"
                ));
            }
            checked += 1;
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/configuration.md:\n{}",
        wrong.join("\n")
    );
    assert!(checked > 80, "{checked} defaults checked");
}
