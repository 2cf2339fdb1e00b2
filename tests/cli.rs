//! The command line as an operator installs it: shell completions that
//! bash takes, a manual page naming every command, `init`'s next steps, and
//! output a reader cuts short (`tidings ... | head`).

mod common;

use std::process::Command;

use common::Tidings;

fn tidings(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The subcommands `tidings --help` lists.
fn subcommands() -> Vec<String> {
    let help = tidings(&["--help"]);
    let commands = help
        .split("Commands:")
        .nth(1)
        .expect("a list of commands")
        .split("\n\n")
        .next()
        .unwrap();
    commands
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_takes_the_completions_and_they_offer_every_command() {
    let script = tidings(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tidings.bash");
    std::fs::write(&path, script).unwrap();
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p tidings >/dev/null && COMP_WORDS=(tidings ''); COMP_CWORD=1; COMP_LINE='tidings '; COMP_POINT=8; _tidings tidings '' tidings && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            path.display()
        ))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let offered = String::from_utf8(output.stdout).unwrap();
    let commands = subcommands();
    assert!(commands.len() > 15, "{commands:?}");
    for command in &commands {
        assert!(
            offered.lines().any(|line| line == command),
            "{command} not offered: {offered}"
        );
    }
}

#[test]
fn the_manual_page_names_every_command_and_each_has_its_help() {
    let man = tidings(&["man"]);
    assert!(man.contains(".TH tidings 1"), "{}", &man[..200]);
    for command in subcommands() {
        assert!(man.contains(&command), "the manual lacks {command}");
        let help = tidings(&[&command, "--help"]);
        assert!(help.contains("Usage: tidings"), "{command}: {help}");
    }
}

#[test]
fn init_sets_up_a_service_that_checks_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let service = dir.path().join("news");
    let said = tidings(&[
        "init",
        service.to_str().unwrap(),
        "--domain",
        "lists.news.example",
        "--base-url",
        "https://news.example/archive",
    ]);
    assert!(said.contains("Next:"), "{said}");
    let config = service.join("lists.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("domain = \"lists.news.example\""));
    assert!(text.contains("address = \"a-infos-en@lists.news.example\""));
    assert!(!text.contains("lists.example.org"));
    assert!(text.contains("base_url = \"https://news.example/archive/\""));
    assert!(text.contains("\nposting = \"moderated\""));
    // The next steps are this service's: the Postfix lines of
    // docs/postfix.md for its domain and the LMTP listener lists.toml names.
    let lmtp = text
        .lines()
        .find_map(|line| line.strip_prefix("lmtp = "))
        .expect("lists.toml names the LMTP listener")
        .trim_matches('"');
    assert!(
        said.contains("\n       relay_domains = lists.news.example\n"),
        "{said}"
    );
    assert!(
        said.contains(&format!("\n       lists.news.example   lmtp:inet:{lmtp}\n")),
        "{said}"
    );
    let printed: Vec<String> = said
        .lines()
        .skip_while(|line| !line.contains("In /etc/postfix/main.cf:"))
        .take_while(|line| !line.contains("Then, as root:"))
        .filter_map(|line| line.strip_prefix("       "))
        .map(|line| {
            line.replace("lists.news.example", "lists.example.org")
                .replace(lmtp, "127.0.0.1:8024")
        })
        .collect();
    assert_eq!(
        printed,
        lmtp_lines_of_postfix_md(),
        "init prints docs/postfix.md's LMTP lines:\n{said}"
    );
    // And the systemd unit of docs/systemd, with the commands that make its
    // user and install it.
    let service = service.canonicalize().unwrap();
    let unit = std::fs::read_to_string(service.join("tidings.service")).unwrap();
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/systemd/tidings.service"),
    )
    .unwrap();
    assert_eq!(unit, shipped);
    for command in [
        "useradd --system --home-dir /var/lib/tidings --shell /usr/sbin/nologin tidings"
            .to_string(),
        format!(
            "install -m 0644 {} /etc/systemd/system/",
            service.join("tidings.service").display()
        ),
        "systemctl daemon-reload && systemctl enable --now tidings".to_string(),
    ] {
        assert!(said.contains(&format!("\n       {command}\n")), "{said}");
    }
    let check = tidings(&["--config", config.to_str().unwrap(), "check"]);
    assert!(check.contains("ok, 16 lists"), "{check}");
    assert!(service.join("templates/mail/en/confirm.txt").is_file());
    let mode = std::fs::metadata(service.join("data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
    // A second init changes nothing.
    std::fs::write(&config, "# mine\n").unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["init", service.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "# mine\n");
}

/// The lines of the indented blocks of docs/postfix.md's LMTP section
/// (main.cf, the transport table), without indentation and comments.
fn lmtp_lines_of_postfix_md() -> Vec<String> {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/postfix.md"),
    )
    .unwrap();
    let lines: Vec<String> = doc
        .lines()
        .skip_while(|line| !(line.starts_with("## ") && line.contains("LMTP to the daemon")))
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .filter_map(|line| line.strip_prefix("    "))
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(str::to_string)
        .collect();
    assert!(lines.len() > 5, "docs/postfix.md's LMTP section: {lines:?}");
    lines
}

#[test]
fn the_readme_lists_every_command_tidings_help_lists() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let listed: Vec<&str> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("    tidings "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    for command in subcommands() {
        assert!(
            listed.contains(&command.as_str()),
            "README.md's Commands lack `tidings {command}`"
        );
    }
    assert!(readme.contains("TIDINGS_LOG"));
    assert!(readme.contains("cargo install --path ."));
}

/// Where `tidings ARGS | head -c BYTES` left tidings: it must succeed and say
/// nothing of the pipe, as a command killed by SIGPIPE would.
fn assert_cut_short_quietly(tidings: &Tidings, args: &[&str], bytes: usize) {
    let output = tidings.run_cut_short(args, bytes);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "tidings {args:?} | head -c {bytes}: {stderr}"
    );
    assert!(
        output.status.success(),
        "tidings {args:?} | head -c {bytes}: {}: {stderr}",
        output.status
    );
}

#[test]
fn every_command_whose_reader_stops_early_ends_quietly() {
    let tidings = Tidings::new();
    let work = tempfile::tempdir().unwrap();
    let path = |name: &str| work.path().join(name).display().to_string();
    // Enough subscribers that their listing is well over what a pipe holds.
    let addresses: Vec<String> = (0..3000)
        .map(|n| format!("subscriber-{n:05}@mail-{n:05}.example.org"))
        .collect();
    tidings.subscribe("en", "mime", &addresses);
    let post = b"From: Ana <ana@example.org>\nTo: a-infos-en@lists.example.org\n\
        Subject: (en) Strike news\nMessage-ID: <strike@example.org>\n\n\
        The strike began at dawn and the port is closed.\n";
    let piped = tidings.run_with_stdin(&["ingest", "a-infos-en@lists.example.org"], &[], post);
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let mbox = path("posts.mbox");
    std::fs::write(
        &mbox,
        [
            b"From ana@example.org Mon Mar  2 10:00:00 2026\n",
            &post[..],
        ]
        .concat(),
    )
    .unwrap();

    // A reader that takes a byte and goes, while tidings still has more
    // than a pipe holds to write.
    for args in [&["subscribers", "list"][..], &["subscribers", "export"]] {
        let all = tidings.ok(args);
        assert!(all.len() > 2 * 65_536, "{args:?}: {} bytes", all.len());
        assert_cut_short_quietly(&tidings, args, 1);
    }
    // A reader gone before tidings writes anything: the first write fails,
    // whatever the size, for every command that prints.
    let first = addresses[0].as_str();
    let commands: Vec<Vec<String>> = [
        vec!["check"],
        vec!["status"],
        vec!["bounces"],
        vec!["queue"],
        vec!["posts"],
        vec!["posts", "--json"],
        vec!["posts", "show", "1"],
        vec!["moderate", "list"],
        vec!["moderate", "show", "1"],
        vec!["moderate", "expire"],
        vec!["subscribers", "list"],
        vec!["subscribers", "show", first],
        vec!["subscribers", "export"],
        vec!["subscribers", "export", "--address", first],
        vec!["subscribers", "enable", first],
        vec!["subscribers", "add", "--no-confirm", "--list", "de", first],
        vec!["subscribers", "combine", first, "--lists", "en"],
        vec!["subscribers", "combine", first, "--off"],
        vec!["subscribers", "remove", "--list", "de", first],
        vec!["subscribers", "forget", "nobody@example.net"],
        vec!["feeds"],
        vec!["site", "--out", &path("site")],
        vec!["digest", "--now", "--list", "en"],
        vec!["queue", "retry"],
        vec!["import", &mbox],
        vec!["backup", &path("backup.sqlite3")],
        vec!["export", "--mbox", &path("export.mbox")],
        vec!["init", &path("new")],
        vec!["completions", "bash"],
        vec!["man"],
    ]
    .into_iter()
    .map(|args| args.into_iter().map(str::to_string).collect())
    .collect();
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_cut_short_quietly(&tidings, &args, 0);
    }
    // What the commands did was done all the same.
    assert!(
        tidings.ok(&["queue"]).contains("en "),
        "the digest was issued"
    );
    assert!(std::path::Path::new(&path("backup.sqlite3")).is_file());
    assert!(std::path::Path::new(&path("new/lists.toml")).is_file());
}

/// `tidings --log-format FORMAT ingest` of a post with the Message-ID
/// `id`, under TIDINGS_LOG=`filter` (none: unset); its status and stderr.
fn ingest_logging(
    tidings: &Tidings,
    format: &str,
    filter: Option<&str>,
    id: &str,
) -> (bool, String) {
    use std::io::Write;
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidings"));
    command
        .arg("--config")
        .arg(tidings.config())
        .args([
            "--log-format",
            format,
            "ingest",
            "a-infos-en@lists.example.org",
        ])
        .current_dir(tidings.path())
        .env_remove("TIDINGS_CONFIG")
        .env_remove("TIDINGS_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(filter) = filter {
        command.env("TIDINGS_LOG", filter);
    }
    let mut child = command.spawn().unwrap();
    let message = format!(
        "From: Ana <ana@example.org>\nTo: a-infos-en@lists.example.org\n\
         Subject: (en) Strike at the port\nMessage-ID: {id}\n\
         Date: Mon, 1 Jun 2026 10:00:00 +0000\n\nThe dockers stopped work.\n"
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn a_command_logs_json_lines_at_the_level_tidings_log_sets() {
    let tidings = Tidings::new();
    let (ok, said) = ingest_logging(&tidings, "json", Some("info"), "<one@example.org>");
    assert!(ok, "{said}");
    let lines: Vec<serde_json::Value> = said
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not one JSON object: {line}: {error}"))
        })
        .collect();
    assert_eq!(lines.len(), 1, "{said}");
    assert_eq!(lines[0]["level"], "INFO", "{said}");
    let message = lines[0]["fields"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("post 1"), "{said}");

    // The same line for people is not JSON.
    let (ok, said) = ingest_logging(&tidings, "human", Some("info"), "<two@example.org>");
    assert!(ok, "{said}");
    assert!(said.contains("post 2"), "{said}");
    assert!(serde_json::from_str::<serde_json::Value>(said.trim()).is_err());

    // Errors only, and a command's default (warnings): nothing to say.
    let (ok, said) = ingest_logging(&tidings, "json", Some("error"), "<three@example.org>");
    assert!(ok && said.is_empty(), "{said}");
    let (ok, said) = ingest_logging(&tidings, "json", None, "<four@example.org>");
    assert!(ok && said.is_empty(), "{said}");
    assert_eq!(tidings.posts(&[]).len(), 4);
}

/// The words in `...` of `text`.
fn code_spans(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readme_names_what_ci_run_installs_and_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let paragraph = readme
        .split("\n\n")
        .find(|paragraph| paragraph.starts_with("`.ci/run` installs"))
        .expect("README.md says what .ci/run installs")
        .replace('\n', " ");
    let sentence = |start: &str| {
        let from = paragraph
            .find(start)
            .unwrap_or_else(|| panic!("README.md: no `{start}` in {paragraph}"));
        let rest = &paragraph[from..];
        rest[..rest.find(". ").unwrap_or(rest.len())].to_string()
    };
    let sorted = |mut names: Vec<String>| {
        names.sort();
        names
    };
    // Debian's packages: each `missing+=(NAME)`.
    let debian: Vec<String> = run
        .split("missing+=(")
        .skip(1)
        .map(|rest| rest[..rest.find(')').unwrap()].to_string())
        .collect();
    assert!(debian.len() > 10, "{debian:?}");
    assert_eq!(
        sorted(code_spans(&sentence("Debian packages:"))),
        sorted(debian),
        "README.md's Debian packages"
    );
    // Python's: what pip installs when the import fails.
    let pip = run
        .lines()
        .find(|line| line.contains("pip install"))
        .expect(".ci/run installs Python packages");
    let python: Vec<String> = pip
        .split_whitespace()
        .skip_while(|word| !word.starts_with("--disable-pip"))
        .skip(1)
        .map(str::to_string)
        .collect();
    assert!(python.len() > 5, "{python:?}");
    assert_eq!(
        sorted(code_spans(&sentence("Python packages"))),
        sorted(python),
        "README.md's Python packages"
    );
    // What it downloads, and the cargo commands it runs.
    for line in run.lines().filter(|line| line.contains("pip download")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let into = words.iter().position(|word| *word == "-d").unwrap();
        let package = words[into - 1];
        assert!(paragraph.contains(package), "README.md lacks {package}");
    }
    for line in run.lines().filter(|line| line.starts_with("cargo ")) {
        let command = line.replace(" --quiet", "");
        assert!(
            paragraph.contains(&format!("`{command}`")),
            "README.md lacks `{command}`"
        );
    }
}
