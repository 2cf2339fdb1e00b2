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
