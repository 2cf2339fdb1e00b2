//! The systemd units in docs/systemd as an operator installs them:
//! `systemd-analyze verify` takes each without a word, `systemd-analyze
//! security` rates the sandbox "OK" or better, and the command lines they
//! run are ones tidings accepts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const UNITS: [&str; 3] = [
    "tidings.service",
    "tidings-digest.service",
    "tidings-digest.timer",
];

/// The units copied into a directory of their own, with ExecStart pointing
/// at the binary under test instead of /usr/local/bin (verify checks that
/// the command exists and is executable).
fn installed_units(edit: impl Fn(&str, String) -> String) -> (tempfile::TempDir, Vec<PathBuf>) {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/systemd");
    let dir = tempfile::tempdir().unwrap();
    let paths = UNITS
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(docs.join(name)).unwrap();
            let text = text.replace("/usr/local/bin/tidings", env!("CARGO_BIN_EXE_tidings"));
            let path = dir.path().join(name);
            std::fs::write(&path, edit(name, text)).unwrap();
            path
        })
        .collect();
    (dir, paths)
}

fn systemd_analyze(args: &[&str], units: &[PathBuf]) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .args(units)
        .output()
        .expect("systemd-analyze (Debian's systemd package; .ci/run installs it)")
}

#[test]
fn systemd_analyze_verify_takes_every_unit_without_a_warning() {
    let (_dir, units) = installed_units(|_, text| text);
    let output = systemd_analyze(&["verify"], &units);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "{stderr}"
    );

    // The check is worth something: a misspelt value is reported.
    let (_dir, units) =
        installed_units(|_, text| text.replace("ProtectSystem=strict", "ProtectSystem=strictly"));
    let output = systemd_analyze(&["verify"], &units);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ProtectSystem") || stderr.contains("protect system"),
        "{stderr}"
    );
}

#[test]
fn systemd_analyze_security_rates_both_services_ok() {
    let (_dir, units) = installed_units(|_, text| text);
    for unit in units
        .iter()
        .filter(|u| u.extension().is_some_and(|e| e == "service"))
    {
        let output = systemd_analyze(
            &["security", "--offline=yes", "--no-pager"],
            std::slice::from_ref(unit),
        );
        let report = String::from_utf8_lossy(&output.stdout);
        let line = report
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("{report}{}", String::from_utf8_lossy(&output.stderr)));
        let exposure: f64 = line
            .split(": ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        // systemd calls 0-2 "OK", 2-5 "MEDIUM", above "EXPOSED"/"UNSAFE".
        assert!(exposure <= 2.0, "{}: {line}", unit.display());
    }
}

#[test]
fn the_units_run_command_lines_tidings_accepts() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/systemd");
    for name in ["tidings.service", "tidings-digest.service"] {
        let text = std::fs::read_to_string(docs.join(name)).unwrap();
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{name} has no ExecStart"));
        let mut words = exec.split_whitespace();
        assert_eq!(words.next(), Some("/usr/local/bin/tidings"), "{name}");
        // The same arguments with --help: clap parses all of them first
        // and fails on any it does not know.
        let args: Vec<&str> = words.chain(["--help"]).collect();
        let output = Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name}: {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Runs `args` as the user nobody, in the supplementary group `group` if
/// one is given (a web server's user added to it), else in none.
fn as_nobody(group: Option<u32>, args: &[&std::ffi::OsStr]) -> Output {
    let groups = match group {
        Some(group) => format!("--groups={group}"),
        None => "--clear-groups".to_string(),
    };
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", &groups, "--"])
        .args(args)
        .output()
        .expect("setpriv (util-linux; .ci/run installs it)")
}

#[test]
fn a_web_server_in_the_tidings_group_reads_the_feeds_as_postfix_md_says() {
    use std::os::unix::fs::PermissionsExt;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("docs/systemd/tidings.service")).unwrap();
    let doc = std::fs::read_to_string(root.join("docs/postfix.md")).unwrap();
    let doc = doc.replace('\n', " ");
    // The doc's recipe rests on these lines of the unit.
    for line in [
        "Group=tidings",
        "StateDirectory=tidings",
        "StateDirectoryMode=0750",
        "ReadWritePaths=/var/lib/tidings",
        "UMask=0077",
    ] {
        assert!(unit.lines().any(|l| l == line), "tidings.service: {line}");
    }
    for said in [
        "data_dir = \"/var/lib/tidings/data\"",
        "feeds_dir = \"/var/lib/tidings/feeds\"",
        "site_dir = \"/var/lib/tidings/site\"",
        "StateDirectoryMode=0750",
        "usermod -aG tidings www-data",
    ] {
        assert!(doc.contains(said), "docs/postfix.md does not say {said}");
    }

    // As the unit leaves the machine: a state directory of mode 0750 in
    // tidings' group (a group of the test's here), written into by
    // tidings under UMask=0077.
    let output = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "0",
        "this test acts as another user (nobody) and needs root (CI runs the tests as root)"
    );
    let group = 64_123;
    let top = tempfile::tempdir().unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let state = top.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(&state, None, Some(group)).unwrap();
    let shipped = std::fs::read_to_string(root.join("lists.toml")).unwrap();
    let config = top.path().join("lists.toml");
    let mut text = shipped;
    for (from, to) in [
        ("data_dir = \"data\"", "data_dir = \"state/data\""),
        ("feeds_dir = \"feeds\"", "feeds_dir = \"state/feeds\""),
        ("site_dir = \"site\"", "site_dir = \"state/site\""),
    ] {
        assert!(text.contains(from), "lists.toml has no {from}");
        text = text.replacen(from, to, 1);
    }
    std::fs::write(&config, text).unwrap();
    for command in ["feeds", "site"] {
        let output = Command::new("sh")
            .arg("-c")
            .arg("umask 0077 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_tidings"))
            .arg("--config")
            .arg(&config)
            .arg(command)
            .env_remove("TIDINGS_CONFIG")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let feed = state.join("feeds/en.atom");
    let page = state.join("site/index.html");
    let cat = std::ffi::OsStr::new("cat");
    let ls = std::ffi::OsStr::new("ls");
    // In the group, the web server reads the feeds and pages, not the store.
    for path in [&feed, &page] {
        let read = as_nobody(Some(group), &[cat, path.as_os_str()]);
        assert!(
            read.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&read.stderr)
        );
    }
    let store = as_nobody(Some(group), &[ls, state.join("data").as_os_str()]);
    assert!(!store.status.success(), "the web server lists data_dir");
    // Outside it, not even the feeds.
    let read = as_nobody(None, &[cat, feed.as_os_str()]);
    assert!(
        !read.status.success(),
        "a user outside the group reads the feeds"
    );
}
