//! The command line as an operator installs it: shell completions that
//! bash takes, and a manual page naming every command.

use std::process::Command;

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
