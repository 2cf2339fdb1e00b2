//! The bounce reader on real bounces: flufl.bounce's test corpus (Mailman's
//! bounce detector, Apache-2.0), which `.ci/run` downloads beside the
//! repository (`../.cache/flufl_bounce-*/`, or `$FLUFL_BOUNCE_DIR`). Its
//! tests/test_detectors.py says which addresses each message must yield
//! and whether the failure is temporary; tidings must find the same
//! addresses for at least 95% of them and never take a temporary failure
//! for a permanent one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tidings::bounce::detect::detect;

/// What the corpus expects of one message.
#[derive(Debug, Default)]
struct Expected {
    addresses: Vec<String>,
    temporary: bool,
}

/// The corpus's directory (the unpacked source distribution), if present.
fn corpus() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("FLUFL_BOUNCE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache");
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache)
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.is_dir()
                && path
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with("flufl_bounce-"))
                && path.join("tests/test_detectors.py").is_file()
        })
        .collect();
    found.sort();
    found.pop()
}

/// The `DETECTORS` table of test_detectors.py: per file, the addresses
/// every detector listed expects (their union) and whether temporary.
fn expectations(source: &str) -> BTreeMap<String, Expected> {
    let start = source.find("DETECTORS = [").expect("a DETECTORS table");
    let table = &source[start..];
    let table = &table[..table.find("\n]").expect("the table's end")];
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    // Each entry is ('module', 'file.txt', [b'address', ...], True|False).
    let mut rest = table;
    while let Some(open) = rest.find("('") {
        rest = &rest[open + 1..];
        let close = rest.find(')').expect("an entry's end");
        let entry = &rest[..close];
        rest = &rest[close..];
        let quoted: Vec<&str> = entry.split('\'').skip(1).step_by(2).collect();
        let (Some(file), addresses) = (quoted.get(1), quoted.get(2..).unwrap_or(&[])) else {
            continue;
        };
        let temporary = entry.trim_end().ends_with("True");
        let slot = expected.entry(file.to_string()).or_default();
        slot.temporary |= temporary;
        for address in addresses {
            if !slot
                .addresses
                .iter()
                .any(|a| a.eq_ignore_ascii_case(address))
            {
                slot.addresses.push(address.to_string());
            }
        }
    }
    expected
}

fn lowered(addresses: impl Iterator<Item = String>) -> Vec<String> {
    let mut list: Vec<String> = addresses.map(|a| a.to_ascii_lowercase()).collect();
    list.sort();
    list.dedup();
    list
}

#[test]
fn the_flufl_bounce_corpus_yields_the_same_addresses_and_no_delay_is_taken_for_a_failure() {
    let Some(dir) = corpus() else {
        eprintln!(
            "SKIPPED: the flufl.bounce corpus is not here (.ci/run downloads it into ../.cache; \
             or set FLUFL_BOUNCE_DIR to an unpacked flufl_bounce source distribution)"
        );
        return;
    };
    let source = std::fs::read_to_string(dir.join("tests/test_detectors.py")).unwrap();
    let expected = expectations(&source);
    assert!(
        expected.len() >= 100,
        "only {} entries read",
        expected.len()
    );
    let (mut same, mut misses, mut mistaken) = (0, Vec::new(), Vec::new());
    for (file, expected) in &expected {
        let raw = std::fs::read(dir.join("tests/data").join(file)).unwrap();
        let found = detect(&raw, "lists.example.org");
        let want = lowered(expected.addresses.iter().cloned());
        let permanent = lowered(
            found
                .failures
                .iter()
                .filter(|f| f.permanent)
                .map(|f| f.address.clone()),
        );
        let temporary = lowered(
            found
                .failures
                .iter()
                .filter(|f| !f.permanent)
                .map(|f| f.address.clone()),
        );
        if expected.temporary && want.iter().any(|a| permanent.contains(a)) {
            mistaken.push(file.clone());
        }
        let got = if expected.temporary {
            &temporary
        } else {
            &permanent
        };
        if *got == want {
            same += 1;
        } else {
            misses.push(format!(
                "{file}: want {want:?}, found permanent {permanent:?} temporary {temporary:?}"
            ));
        }
    }
    let share = 100.0 * same as f64 / expected.len() as f64;
    println!(
        "flufl.bounce corpus: {same} of {} messages yield the same addresses ({share:.1}%); \
         {} temporary taken for permanent",
        expected.len(),
        mistaken.len()
    );
    for miss in &misses {
        println!("  differs: {miss}");
    }
    assert!(
        mistaken.is_empty(),
        "temporary failures taken for permanent: {mistaken:?}"
    );
    assert!(
        share >= 95.0,
        "only {share:.1}% match:\n{}",
        misses.join("\n")
    );
}
