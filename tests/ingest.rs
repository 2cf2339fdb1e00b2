//! Ingest end to end: the real binary on the real corpus in ../shared.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{generate, shared, summary_count, Tidings};
use serde_json::Value;

/// Every message file of the real-world corpus (license files left out).
fn realworld_messages() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("corpus folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if !path.to_string_lossy().ends_with(".upstream")
                && !path.ends_with("SOURCES.md")
            {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&shared().join("corpus/realworld"), &mut files);
    files.sort();
    files
}

/// The title the ground truth expects once the trailing translation list
/// and machine-translation marker are taken out, as tidings stores it.
fn expected_title(truth: &Value) -> String {
    let mut title = truth["expected_title"].as_str().unwrap().to_string();
    if let Some(stripped) = title.strip_suffix("[machine translation]") {
        title = stripped.trim_end().to_string();
    }
    let translations: Vec<&str> = truth["translations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    if !translations.is_empty() {
        let suffix = format!("({})", translations.join(", "));
        title = title
            .strip_suffix(&suffix)
            .expect("title ends with its translations")
            .trim_end()
            .to_string();
    }
    title
}

#[test]
fn every_realworld_message_piped_in_is_stored_held_or_rejected_with_a_reason() {
    let tidings = Tidings::new();
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    let files = realworld_messages();
    assert!(files.len() >= 400, "corpus has {} files", files.len());
    for file in &files {
        let raw = std::fs::read(file).unwrap();
        let output = tidings.run_with_stdin(&["ingest"], &[], &raw);
        let stderr = String::from_utf8_lossy(&output.stderr);
        match output.status.code() {
            Some(0) => {
                *tally
                    .entry("accepted (stored, held or duplicate)".into())
                    .or_default() += 1
            }
            Some(65) => {
                let reason = stderr.lines().last().unwrap_or("").to_string();
                assert!(
                    !reason.is_empty(),
                    "{}: rejected without a reason",
                    file.display()
                );
                *tally.entry(format!("rejected: {reason}")).or_default() += 1;
            }
            other => panic!(
                "{}: exit {other:?} (expected 0 or 65)\n{stderr}",
                file.display()
            ),
        }
    }
    println!(
        "{} real-world messages through `tidings ingest`:",
        files.len()
    );
    for (outcome, count) in &tally {
        println!("  {count:>5}  {outcome}");
    }

    let posts = tidings.posts(&[]);
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    for post in &posts {
        let status = post["status"].as_str().unwrap();
        *by_status.entry(status.to_string()).or_default() += 1;
        if status == "published" {
            assert!(post["list"].is_string(), "published without a list: {post}");
        } else {
            assert!(
                post["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{status} without a reason: {post}"
            );
        }
    }
    println!("in the store: {by_status:?}");
    let rejected = tally
        .iter()
        .filter(|(k, _)| k.starts_with("rejected"))
        .map(|(_, v)| v)
        .sum::<u64>();
    assert_eq!(by_status.get("rejected").copied().unwrap_or(0), rejected);
    // Every accepted message is a row, unless it repeated one already stored.
    assert!(posts.len() as u64 <= files.len() as u64);
    assert!(by_status.get("published").copied().unwrap_or(0) > 50);
    // Raw bytes are kept: the first stored post gives back exactly what was piped in.
    let first = &posts[0];
    let raw = tidings
        .run(&["posts", "show", &first["id"].to_string(), "--raw"])
        .stdout;
    assert!(files.iter().any(|f| std::fs::read(f).unwrap() == raw));
}

#[test]
fn realworld_import_accounts_for_every_message() {
    let tidings = Tidings::new();
    let summary = tidings.ok(&[
        "import",
        shared().join("corpus/realworld").to_str().unwrap(),
    ]);
    println!("{summary}");
    let messages = summary_count(&summary, "imported");
    let stored = summary_count(&summary, "stored");
    let duplicates = summary_count(&summary, "duplicates");
    let held = summary_count(&summary, "held");
    let rejected = summary_count(&summary, "rejected");
    assert_eq!(messages, stored + duplicates + held + rejected);
    // The mbox files hold more than one message each.
    assert!(messages > realworld_messages().len() as u64);
    let posts = tidings.posts(&[]);
    assert_eq!(posts.len() as u64, stored + held + rejected);

    // A reader that stops early (`tidings posts | head`) is no error: one
    // gone before tidings writes (0), and one that takes a byte of a
    // listing larger than a pipe holds, so that tidings meets the closed
    // pipe mid-way (1).
    let json = tidings.run(&["posts", "--json"]).stdout.len();
    assert!(json > 2 * 65_536, "posts --json: {json} bytes");
    let cases = [
        (&["posts", "--json"][..], 0),
        (&["status"], 0),
        (&["posts"], 0),
        (&["posts", "--json"], 1),
    ];
    for (args, bytes) in cases {
        let output = tidings.run_cut_short(args, bytes);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{args:?} | head -c {bytes}: {stderr}"
        );
        assert!(
            !stderr.contains("Broken pipe") && !stderr.contains("panicked"),
            "{args:?} | head -c {bytes}: {stderr}"
        );
    }
}

#[test]
fn generated_posts_are_filed_by_language_with_exact_titles() {
    let tidings = Tidings::new();
    let (mbox, truth) = generate(
        tidings.path(),
        "posts.mbox",
        "mbox",
        &[
            "--n",
            "1500",
            "--seed",
            "20261122",
            "--rate",
            "untagged=0.3",
        ],
    );
    let summary = tidings.ok(&["import", mbox.to_str().unwrap()]);
    let unique: Vec<&Value> = truth
        .iter()
        .filter(|t| !t["is_duplicate"].as_bool().unwrap())
        .collect();
    assert_eq!(
        summary_count(&summary, "duplicates"),
        (truth.len() - unique.len()) as u64
    );

    let posts = tidings.posts(&[]);
    assert_eq!(posts.len(), unique.len(), "one post per distinct message");
    let (mut tagged, mut tagged_right, mut untagged, mut untagged_right) = (0, 0, 0, 0);
    let mut charsets = BTreeSet::new();
    for (truth, post) in unique.iter().zip(&posts) {
        let context = format!("truth {truth}\npost {post}");
        if truth["message_id"].is_string() {
            assert_eq!(post["message_id"], truth["message_id"], "{context}");
        }
        let right = post["list"] == truth["list_code"];
        if truth["tag"].is_string() {
            tagged += 1;
            tagged_right += right as u32;
        } else {
            untagged += 1;
            untagged_right += right as u32;
        }
        assert_eq!(
            post["title"].as_str().unwrap(),
            expected_title(truth),
            "{context}"
        );
        assert_eq!(post["translations"], truth["translations"], "{context}");
        let marked = truth["expected_title"]
            .as_str()
            .unwrap()
            .ends_with("[machine translation]");
        assert_eq!(
            post["machine_translation"].as_bool().unwrap(),
            marked,
            "{context}"
        );
        assert_eq!(post["author"], truth["from_name"], "{context}");
        if right {
            assert_eq!(post["status"], "published", "{context}");
        }
        charsets.insert(truth["charset"].as_str().unwrap().to_string());
    }
    println!("tagged {tagged_right}/{tagged}, untagged {untagged_right}/{untagged}, charsets {charsets:?}");
    assert_eq!(
        tagged_right, tagged,
        "every tagged post is filed by its tag"
    );
    assert!(
        untagged >= 300,
        "enough untagged posts to measure: {untagged}"
    );
    assert!(
        untagged_right as f64 >= 0.97 * untagged as f64,
        "untagged accuracy {untagged_right}/{untagged} is under 97%"
    );
    for legacy in [
        "koi8-r",
        "windows-1251",
        "iso-8859-7",
        "gb2312",
        "big5",
        "windows-1252",
    ] {
        assert!(charsets.contains(legacy), "the sample covers {legacy}");
    }
    // The generator's one Japanese name comes ISO-2022-JP encoded; each
    // author was compared above.
    let japanese = unique
        .iter()
        .filter(|t| t["from_name"] == "山田花子")
        .count();
    assert!(japanese > 0, "the sample covers ISO-2022-JP display names");
}

#[test]
fn maildir_hard_profile_lands_or_is_rejected_for_its_size() {
    let tidings = Tidings::with_config(|text| {
        text.replace(
            "max_message_bytes = 10485760",
            "max_message_bytes = 4000000",
        )
    });
    let (maildir, truth) = generate(
        tidings.path(),
        "Maildir",
        "maildir",
        &["--profile", "hard", "--n", "120", "--seed", "5"],
    );
    let summary = tidings.ok(&["import", maildir.to_str().unwrap()]);
    println!("{summary}");
    // Each delivery of an oversize message is refused, copies included.
    let too_big: Vec<&Value> = truth
        .iter()
        .filter(|t| t["size"].as_u64().unwrap() > 4_000_000)
        .collect();
    assert!(!too_big.is_empty(), "the hard profile has huge messages");
    assert_eq!(summary_count(&summary, "imported"), truth.len() as u64);
    let rejected = tidings.posts(&["--status", "rejected"]);
    assert_eq!(
        rejected.len(),
        too_big.len(),
        "exactly the oversize messages are rejected"
    );
    for post in &rejected {
        assert!(
            post["reason"]
                .as_str()
                .unwrap()
                .contains("over the limit of 4000000 bytes"),
            "{post}"
        );
    }
    // Attachments are listed, not inlined.
    let posts = tidings.posts(&["--status", "published"]);
    let with_attachments = truth
        .iter()
        .filter(|t| !t["attachments"].as_array().unwrap().is_empty())
        .count();
    assert!(with_attachments > 0);
    assert!(posts
        .iter()
        .any(|p| !p["attachments"].as_array().unwrap().is_empty()));
    for truth in truth
        .iter()
        .filter(|t| t["size"].as_u64().unwrap() <= 4_000_000)
    {
        let Some(id) = truth["message_id"].as_str() else {
            continue;
        };
        let post = posts
            .iter()
            .find(|p| p["message_id"] == id)
            .unwrap_or_else(|| panic!("{id} was stored"));
        let names: BTreeSet<&str> = post["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["filename"].as_str())
            .collect();
        for attachment in truth["attachments"].as_array().unwrap() {
            let name = attachment["filename"].as_str().unwrap();
            assert!(
                names.contains(name),
                "attachment {name} of {id} is listed: {names:?}"
            );
        }
    }
}

#[test]
fn importing_twice_stores_nothing_new() {
    let tidings = Tidings::new();
    let (mbox, truth) = generate(
        tidings.path(),
        "posts.mbox",
        "mbox",
        &["--n", "300", "--seed", "2"],
    );
    let first = tidings.ok(&["import", mbox.to_str().unwrap()]);
    let stored = summary_count(&first, "stored") + summary_count(&first, "held");
    assert!(stored > 250);
    let second = tidings.ok(&["import", mbox.to_str().unwrap()]);
    assert_eq!(summary_count(&second, "stored"), 0);
    assert_eq!(summary_count(&second, "held"), 0);
    assert_eq!(summary_count(&second, "duplicates"), truth.len() as u64);
    assert_eq!(tidings.posts(&[]).len() as u64, stored);
}

/// A real PNG image (8x8, red), made here with its CRCs and zlib stream.
fn png_image() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    // Eight rows of filter byte 0 and eight red pixels, stored (not
    // deflated) in one zlib block.
    let row = [&[0u8][..], &[0xff, 0, 0].repeat(8)].concat();
    let pixels = row.repeat(8);
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend_from_slice(&(pixels.len() as u16).to_le_bytes());
    zlib.extend_from_slice(&(!(pixels.len() as u16)).to_le_bytes());
    zlib.extend_from_slice(&pixels);
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &pixels {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&8u32.to_be_bytes());
    header.extend_from_slice(&8u32.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    png
}

const GOOD: &[u8] = b"From: Ana <ana@example.org>\r\nTo: a-infos-en@lists.example.org\r\nSubject: (en) Greece, CGA: general strike\r\nMessage-ID: <strike-1@example.org>\r\nDate: Mon, 31 May 2021 10:25:55 +0300\r\n\r\nThe general strike began at dawn.\r\n";

#[test]
fn pipe_exit_codes_tell_the_mta_what_to_do() {
    let tidings = Tidings::new();
    let output = tidings.run_with_stdin(&["ingest"], &[], GOOD);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let posts = tidings.posts(&[]);
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["list"], "en");
    assert_eq!(posts[0]["title"], "Greece, CGA: general strike");
    assert_eq!(posts[0]["date"], "2021-05-31T07:25:55+00:00");

    // The MTA redelivers after a lost acknowledgement: stored once, still 0.
    assert_eq!(
        tidings.run_with_stdin(&["ingest"], &[], GOOD).status.code(),
        Some(0)
    );
    assert_eq!(tidings.posts(&[]).len(), 1);

    let empty = tidings.run_with_stdin(&["ingest"], &[], b"");
    assert_eq!(empty.status.code(), Some(65));
    assert_eq!(
        String::from_utf8_lossy(&empty.stderr).trim(),
        "empty message"
    );

    let headless = tidings.run_with_stdin(&["ingest"], &[], b"just some words\nand more\n");
    assert_eq!(headless.status.code(), Some(65));

    // A file that is no message (a PNG image piped by mistake; the parser
    // takes some of its bytes for fields) is refused, not held for an
    // editor, and its bytes are kept whole.
    let png = png_image();
    let image = tidings.run_with_stdin(&["ingest"], &[], &png);
    assert_eq!(image.status.code(), Some(65));
    assert!(
        String::from_utf8_lossy(&image.stderr).contains("not a mail message"),
        "{}",
        String::from_utf8_lossy(&image.stderr)
    );
    let rejected = tidings.posts(&["--status", "rejected"]);
    let kept = rejected
        .iter()
        .find(|post| {
            post["reason"]
                .as_str()
                .unwrap()
                .starts_with("not a mail message")
        })
        .expect("the image is recorded as rejected");
    let raw = tidings.run(&["posts", "show", &kept["id"].to_string(), "--raw"]);
    assert_eq!(raw.stdout, png, "the image's bytes, kept whole");

    // An unserved tag is kept for a moderator, not bounced.
    let held = tidings.run_with_stdin(
        &["ingest"],
        &[],
        b"From: a@example.org\nSubject: (ar) Title\nMessage-ID: <ar@x>\n\nText\n",
    );
    assert_eq!(held.status.code(), Some(0));
    let held = tidings.posts(&["--status", "held"]);
    assert_eq!(held[0]["reason"], "no list serves the language tag (ar)");
}

#[test]
fn oversize_message_bounces_with_the_limit_named() {
    let tidings = Tidings::with_config(|text| {
        text.replace("max_message_bytes = 10485760", "max_message_bytes = 2048")
    });
    let mut big = GOOD.to_vec();
    big.extend(std::iter::repeat_n(b'x', 5000));
    let output = tidings.run_with_stdin(&["ingest"], &[], &big);
    assert_eq!(output.status.code(), Some(65));
    let reason = String::from_utf8_lossy(&output.stderr);
    assert!(reason.contains("over the limit of 2048 bytes"), "{reason}");
    assert!(reason.contains(&big.len().to_string()), "{reason}");
    // Recorded for the operator, without its bytes, like every rejection.
    let rejected = tidings.ok(&["posts", "--status", "rejected", "--json"]);
    let rows: Vec<Value> = rejected
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{rejected}");
    assert!(rows[0]["reason"]
        .as_str()
        .unwrap()
        .contains("over the limit of 2048 bytes"));
    assert_eq!(rows[0]["size"], big.len());
    let raw = tidings.run_with_stdin(
        &["posts", "show", "--raw", &rows[0]["id"].to_string()],
        &[],
        b"",
    );
    assert!(
        !raw.status.success(),
        "no bytes are kept of an oversize message"
    );
}

#[test]
fn unusable_store_or_config_asks_the_mta_to_retry() {
    let tidings = Tidings::with_config(|text| {
        text.replace("data_dir = \"data\"", "data_dir = \"blocker/data\"")
    });
    // A file where the data directory should be: the store cannot open.
    std::fs::write(tidings.path().join("blocker"), b"not a directory").unwrap();
    let output = tidings.run_with_stdin(&["ingest"], &[], GOOD);
    assert_eq!(
        output.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let broken = Tidings::with_config(|text| text.replace("[site]", "[site]\nbogus = 1"));
    let output = broken.run_with_stdin(&["ingest"], &[], GOOD);
    assert_eq!(output.status.code(), Some(75));
}

#[test]
fn envelope_recipient_and_list_option_file_untagged_posts() {
    let tidings = Tidings::new();
    let untagged = |id: &str| {
        format!("From: a@example.org\nTo: someone@example.net\nSubject: Plain title\nMessage-ID: <{id}@x>\n\nok\n")
    };
    let by_env = tidings.run_with_stdin(
        &["ingest"],
        &[("ORIGINAL_RECIPIENT", "a-infos-ct@lists.example.org")],
        untagged("1").as_bytes(),
    );
    assert_eq!(by_env.status.code(), Some(0));
    let by_arg = tidings.run_with_stdin(
        &["ingest", "A-Infos-FI@lists.example.org"],
        &[],
        untagged("2").as_bytes(),
    );
    assert_eq!(by_arg.status.code(), Some(0));
    let by_list =
        tidings.run_with_stdin(&["ingest", "--list", "tr"], &[], untagged("3").as_bytes());
    assert_eq!(by_list.status.code(), Some(0));
    let lists: Vec<Value> = tidings
        .posts(&[])
        .iter()
        .map(|p| p["list"].clone())
        .collect();
    assert_eq!(lists, ["ct", "fi", "tr"]);
}

#[test]
fn broken_and_hostile_messages_never_crash_or_vanish() {
    let tidings = Tidings::new();
    let cases: &[(&str, &[u8])] = &[
        ("nul bytes", b"From: a@example.org\nSubject: (en) Nul\0 title\nMessage-ID: <nul@x>\n\nBody with \0 nul\n"),
        ("bare lf", b"From: a@example.org\nSubject: (en) Bare LF\nMessage-ID: <lf@x>\n\nline one\nline two\n"),
        ("broken encoded-word", b"From: a@example.org\r\nSubject: (en) =?utf-8?B?broken!!?= =?unknown-charset?Q?x?=\r\nMessage-ID: <ew@x>\r\n\r\nText\r\n"),
        ("8-bit header", b"From: J\xfcrgen <j@example.org>\r\nSubject: (de) Stra\xdfe\r\nMessage-ID: <8bit@x>\r\n\r\nText\r\n"),
        ("no date, no message-id", b"From: a@example.org\r\nSubject: (en) Undated\r\n\r\nText\r\n"),
        ("html only", b"From: a@example.org\r\nSubject: (fr) HTML\r\nMessage-ID: <html@x>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Premier paragraphe.</p><p>Second <b>paragraphe</b>.</p>\r\n"),
        ("unterminated multipart", b"From: a@example.org\r\nSubject: (en) Cut\r\nMessage-ID: <cut@x>\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nHalf a mess"),
        ("binary garbage", &[0xff, 0xfe, 0x00, 0x01, b':', b'\n', 0x80, 0x81]),
    ];
    for (name, raw) in cases {
        let output = tidings.run_with_stdin(&["ingest"], &[], raw);
        let code = output.status.code();
        assert!(
            matches!(code, Some(0) | Some(65)),
            "{name}: exit {code:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let posts = tidings.posts(&[]);
    assert_eq!(posts.len(), cases.len(), "every case left a record");
    let by_id = |id: &str| {
        posts
            .iter()
            .find(|p| p["message_id"] == id)
            .unwrap_or_else(|| panic!("{id} stored"))
    };
    assert_eq!(by_id("<nul@x>")["title"], "Nul title");
    assert_eq!(by_id("<8bit@x>")["title"], "Straße");
    assert_eq!(by_id("<8bit@x>")["author"], "Jürgen");
    assert_eq!(by_id("<ew@x>")["list"], "en");
    assert_eq!(by_id("<html@x>")["list"], "fr");
    assert!(posts
        .iter()
        .any(|p| p["title"] == "Undated" && p["date"].is_null()));
    let html = tidings.ok(&[
        "posts",
        "show",
        by_id("<html@x>")["id"].to_string().as_str(),
    ]);
    assert!(
        html.contains("Premier paragraphe.") && html.contains("Second paragraphe."),
        "{html}"
    );
    assert!(!html.contains("<p>"), "{html}");
}

#[test]
fn truncated_mbox_keeps_every_message_that_arrived() {
    let tidings = Tidings::new();
    let (mbox, truth) = generate(
        tidings.path(),
        "posts.mbox",
        "mbox",
        &["--n", "40", "--seed", "8"],
    );
    let bytes = std::fs::read(&mbox).unwrap();
    // Cut in the middle of the last message's body.
    let last = bytes.windows(6).rposition(|w| w == b"\nFrom ").unwrap();
    let cut = last + (bytes.len() - last) / 2;
    let truncated = tidings.path().join("truncated.mbox");
    std::fs::write(&truncated, &bytes[..cut]).unwrap();
    let summary = tidings.ok(&["import", truncated.to_str().unwrap()]);
    assert_eq!(summary_count(&summary, "imported"), truth.len() as u64);
}

#[test]
fn a_bad_configuration_names_file_line_and_column() {
    let tidings = Tidings::with_config(|text| {
        text.replace("timezone = \"UTC\"", "timezone = \"Mars/Olympus\"")
            .replacen(
                "digest_schedule = \"0 18 * * *\"",
                "digest_schedule = \"at six\"",
                1,
            )
    });
    let output = tidings.run(&["check"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let config = tidings.config().display().to_string();
    let text = std::fs::read_to_string(tidings.config()).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(
        stderr.contains(&format!(
            "{config}:{}:12: unknown timezone `Mars/Olympus`",
            line_of("Mars/Olympus")
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{config}:{}:19: digest_schedule `at six`",
            line_of("at six")
        )),
        "{stderr}"
    );
    assert!(stderr.contains("help: "), "{stderr}");
    assert!(stderr.contains("2 problem(s) found"), "{stderr}");

    assert!(Tidings::new().ok(&["check"]).contains("ok, 16 lists"));
}

#[test]
fn backup_copies_the_store_and_export_writes_an_mbox_python_reads_back() {
    let tidings = Tidings::new();
    let (mbox, _) = generate(
        tidings.path(),
        "posts.mbox",
        "mbox",
        &["--n", "200", "--seed", "5"],
    );
    tidings.ok(&["import", mbox.to_str().unwrap()]);
    let posts = tidings.posts(&[]);

    let copy = tidings.path().join("copy.sqlite3");
    let said = tidings.ok(&["backup", copy.to_str().unwrap()]);
    assert!(said.contains("wrote"), "{said}");
    let db = tidings::store::open(&copy).unwrap();
    let filter = tidings::store::posts::PostFilter {
        list_code: None,
        status: None,
        limit: None,
    };
    assert_eq!(
        tidings::store::posts::list(&db, &filter).unwrap().len(),
        posts.len()
    );
    // A second backup to the same name is refused, the first kept.
    assert!(!tidings
        .run(&["backup", copy.to_str().unwrap()])
        .status
        .success());

    let out = tidings.path().join("en.mbox");
    tidings.ok(&["export", "--list", "en", "--mbox", out.to_str().unwrap()]);
    let english: Vec<&Value> = posts
        .iter()
        .filter(|post| post["list"] == "en" && post["status"] == "published")
        .collect();
    assert!(english.len() > 10);
    let script = "import mailbox, sys, json\n\
                  print(json.dumps([m['Message-ID'] for m in mailbox.mbox(sys.argv[1])]))\n";
    let read = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let ids: Vec<Option<String>> = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(ids.len(), english.len());
    let mut want: Vec<Option<String>> = english
        .iter()
        .map(|post| post["message_id"].as_str().map(str::to_string))
        .collect();
    let mut got = ids.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want);
}

/// What mutt (a real mail client, in a tmux pane of its own) lists when it
/// opens `mbox`: the status line's message count and each index line's
/// subject, read off the screen.
fn mutt_index(mbox: &Path) -> (usize, Vec<String>) {
    let socket = format!("tidings-mutt-{}", std::process::id());
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(["-L", &socket])
            .args(args)
            .env("LANG", "C.UTF-8")
            .output()
            .expect("tmux (Debian's tmux; .ci/run installs it)")
    };
    // Some posts came with their Subject in raw ISO-8859-7, as sent: mutt
    // reads those as a Greek reader sets it up (assumed_charset). Its
    // folder is the mbox's own, else a machine without ~/Mail has mutt ask
    // whether to make it instead of opening the mbox.
    let folder = mbox.parent().expect("the mbox is in a directory");
    let mutt = format!(
        "mutt -n -R -F /dev/null -e 'set folder=\"{}\" index_format=\"%4C|%s\" status_format=\"MSGS=%m=\" sort=mailbox-order assumed_charset=\"utf-8:iso-8859-7\"' -f {}",
        folder.display(),
        mbox.display()
    );
    let started = tmux(&["new-session", "-d", "-x", "400", "-y", "200", &mutt]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let screen = loop {
        let screen = String::from_utf8(tmux(&["capture-pane", "-p", "-t", "0"]).stdout).unwrap();
        if screen.contains("MSGS=") || std::time::Instant::now() > deadline {
            break screen;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    tmux(&["kill-server"]);
    let count = screen
        .split("MSGS=")
        .nth(1)
        .and_then(|rest| rest.split('=').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no message count on mutt's screen:\n{screen}"));
    let subjects = screen
        .lines()
        .filter_map(|line| line.split_once('|'))
        .filter(|(number, _)| number.trim().parse::<usize>().is_ok())
        .map(|(_, subject)| subject.trim_end().to_string())
        .collect();
    (count, subjects)
}

#[test]
fn mutt_reads_an_exported_list_with_its_greek_subjects() {
    let tidings = Tidings::new();
    let (mbox, _) = generate(
        tidings.path(),
        "posts.mbox",
        "mbox",
        &["--n", "300", "--seed", "8"],
    );
    tidings.ok(&["import", mbox.to_str().unwrap()]);
    let greek: Vec<String> = tidings
        .posts(&[])
        .iter()
        .filter(|post| post["list"] == "gr" && post["status"] == "published")
        .map(|post| post["title"].as_str().unwrap().to_string())
        .collect();
    assert!(greek.len() > 3, "{}", greek.len());
    let out = tidings.path().join("gr.mbox");
    tidings.ok(&["export", "--list", "gr", "--mbox", out.to_str().unwrap()]);

    let (count, subjects) = mutt_index(&out);
    assert_eq!(count, greek.len());
    assert_eq!(subjects.len(), greek.len(), "{subjects:#?}");
    for title in &greek {
        assert!(
            subjects
                .iter()
                .any(|subject| subject.contains(title.as_str())),
            "mutt does not list {title:?}: {subjects:#?}"
        );
    }
    assert!(
        subjects
            .iter()
            .any(|s| s.chars().any(|c| ('\u{370}'..='\u{3ff}').contains(&c))),
        "{subjects:#?}"
    );
}

#[test]
fn a_mailman_archive_imports_by_language_with_its_senders_and_bodies_whole() {
    let tidings = Tidings::new();
    // A Mailman 2 pipermail month as its "Text" download gives it: senders
    // written "local at domain (Name)", list prefixes in subjects, and body
    // lines beginning "From " left unescaped.
    let pipermail = tidings.path().join("2022-February.txt");
    std::fs::write(
        &pipermail,
        "From ana at example.org  Fri Feb  4 10:00:00 2022\n\
From: ana at example.org (Ana =?iso-8859-1?q?P=E9rez?=)\n\
Date: Fri, 04 Feb 2022 10:00:00 +0100\n\
Subject: [A-infos-en] (en) France, UCL AL #316 - General strike\n\
Message-ID: <mm2-1@example.org>\n\
\n\
The general strike starts on Monday.\n\
From the assembly of workers, a call to join it.\n\
\n\
From the beginning, we said so.\n\
\n\
From bob at example.net  Sat Feb  5 11:00:00 2022\n\
From: bob at example.net (Bob)\n\
Date: Sat, 05 Feb 2022 11:00:00 +0100\n\
Subject: [A-infos-de] (de) Deutschland, FAU - Generalstreik\n\
In-Reply-To: <mm2-1@example.org>\n\
Message-ID: <mm2-2@example.net>\n\
\n\
Der Generalstreik beginnt am Montag.\n\
\n",
    )
    .unwrap();
    // A Mailman 3 (HyperKitty) export: Python's mailbox writes it, with
    // MAILER-DAEMON separators and mboxo escaping.
    let hyperkitty = tidings.path().join("a-infos-fr.mbox");
    let script = "import mailbox, sys, email.message\n\
box = mailbox.mbox(sys.argv[1])\n\
m = email.message.EmailMessage()\n\
m['From'] = 'Carl <carl@example.com>'\n\
m['Subject'] = '(fr) France, UCL - Grève générale'\n\
m['Date'] = 'Sun, 06 Feb 2022 12:00:00 +0100'\n\
m['Message-ID'] = '<mm3-1@example.com>'\n\
m.set_content('La grève générale commence lundi.\\nFrom Paris, the call.\\n')\n\
box.add(m)\n\
box.close()\n";
    let made = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&hyperkitty)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    tidings.ok(&[
        "import",
        pipermail.to_str().unwrap(),
        hyperkitty.to_str().unwrap(),
    ]);
    let posts = tidings.posts(&[]);
    assert_eq!(posts.len(), 3, "{posts:#?}");
    let by_id = |id: &str| {
        posts
            .iter()
            .find(|p| p["message_id"] == id)
            .unwrap_or_else(|| panic!("{id}: {posts:#?}"))
    };
    // Published, not held for "no sender address in From": the address
    // was read back from "local at domain".
    for (id, list, name) in [
        ("<mm2-1@example.org>", "en", "Ana Pérez"),
        ("<mm2-2@example.net>", "de", "Bob"),
        ("<mm3-1@example.com>", "fr", "Carl"),
    ] {
        let post = by_id(id);
        assert_eq!(post["status"], "published", "{post}");
        assert_eq!(post["list"], list, "{post}");
        assert_eq!(post["author"], name, "{post}");
    }
    assert_eq!(
        by_id("<mm2-1@example.org>")["title"],
        "France, UCL AL #316 - General strike"
    );
    let shown = tidings.ok(&[
        "posts",
        "show",
        &by_id("<mm2-1@example.org>")["id"].to_string(),
    ]);
    assert!(
        shown.contains("From the assembly of workers, a call to join it."),
        "{shown}"
    );
    assert!(shown.contains("From the beginning, we said so."), "{shown}");
    let shown = tidings.ok(&[
        "posts",
        "show",
        &by_id("<mm3-1@example.com>")["id"].to_string(),
    ]);
    assert!(shown.contains("From Paris, the call."), "{shown}");
}

/// An archive's messages without a Date of their own (or with one that
/// does not parse) take the delivery time the mailbox recorded, the mbox
/// "From " line's or the Maildir name's, not the day of the import; one
/// with a Date keeps it, and a delivery time in the future is not taken.
#[test]
fn undated_archive_messages_are_dated_by_their_delivery_not_the_import() {
    let tidings = Tidings::new();
    let mbox = tidings.path().join("old.mbox");
    std::fs::write(
        &mbox,
        "From ana@example.org Fri Feb  4 10:00:00 2022\n\
From: Ana <ana@example.org>\n\
Subject: (en) France - Undated strike call\n\
Message-ID: <undated-1@example.org>\n\
\n\
The strike starts on Monday.\n\
\n\
From bob@example.net Sat Feb  5 11:00:00 2022\n\
From: Bob <bob@example.net>\n\
Date: a day in February\n\
Subject: (en) France - A date that does not parse\n\
Message-ID: <undated-2@example.net>\n\
\n\
Text.\n\
\n\
From carl@example.com Sun Feb  6 12:00:00 2022\n\
From: Carl <carl@example.com>\n\
Date: Mon, 10 Jan 2022 08:00:00 +0000\n\
Subject: (en) France - Dated\n\
Message-ID: <dated-3@example.com>\n\
\n\
Text.\n\
\n\
From dan@example.com Mon Feb  6 12:00:00 2090\n\
From: Dan <dan@example.com>\n\
Subject: (en) France - Delivered in the future\n\
Message-ID: <future-4@example.com>\n\
\n\
Text.\n",
    )
    .unwrap();
    let maildir = tidings.path().join("Maildir");
    for folder in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(folder)).unwrap();
    }
    std::fs::write(
        maildir.join("cur/1650000000.M1P2.host:2,S"),
        "From: Eve <eve@example.org>\r\n\
Subject: (en) France - Undated in a Maildir\r\n\
Message-ID: <undated-5@example.org>\r\n\
\r\n\
Text.\r\n",
    )
    .unwrap();
    tidings.ok(&["import", mbox.to_str().unwrap(), maildir.to_str().unwrap()]);
    let posts = tidings.posts(&[]);
    let date = |id: &str| {
        let post = posts
            .iter()
            .find(|p| p["message_id"] == id)
            .unwrap_or_else(|| panic!("{id}: {posts:#?}"));
        assert_eq!(post["status"], "published", "{post}");
        post["date"].clone()
    };
    assert_eq!(date("<undated-1@example.org>"), "2022-02-04T10:00:00+00:00");
    assert_eq!(date("<undated-2@example.net>"), "2022-02-05T11:00:00+00:00");
    assert_eq!(date("<dated-3@example.com>"), "2022-01-10T08:00:00+00:00");
    assert_eq!(date("<future-4@example.com>"), serde_json::Value::Null);
    assert_eq!(date("<undated-5@example.org>"), "2022-04-15T05:20:00+00:00");
}

/// The pages a piped post starts making are made by one command at a
/// time: each `tidings ingest` starts a `feeds --after-ingest` of its own,
/// and on a site to make whole (a store just imported) every one made all
/// of it at once. One waits while another holds `data_dir/site.lock`, then
/// finds its work done.
#[test]
fn page_builders_started_by_piped_posts_take_turns() {
    let tidings = Tidings::new();
    let output = tidings.run_with_stdin(&["ingest"], &[], GOOD);
    assert_eq!(output.status.code(), Some(0));
    let lock = std::fs::File::create(tidings.path().join("data/site.lock")).unwrap();
    lock.lock().unwrap();
    let mut builder = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("--config")
        .arg(tidings.config())
        .args(["feeds", "--after-ingest"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let waiting = builder.try_wait().unwrap();
    lock.unlock().unwrap();
    let status = builder.wait().unwrap();
    assert!(
        waiting.is_none(),
        "the builder ran while another held the lock"
    );
    assert!(status.success());
    assert!(tidings.path().join("site/index.html").exists());
}

/// Promise 1 (issue 13) for `tidings ingest`: runs piped a message each,
/// sixteen at a time, are killed with SIGKILL at random points of their
/// lives (from the start to a little past a whole run; the seed is printed
/// and `TIDINGS_INGEST_SEED` replays it); every run that
/// exited 0 has its message stored byte for byte, every killed one has
/// either its whole message or nothing, and the store stays sound.
#[test]
fn ingest_killed_at_random_points_keeps_every_message_it_acknowledged() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let runs = common::env_number("TIDINGS_INGEST_KILLS", 160);
    let tidings = Tidings::new();
    let message = |n: usize| {
        format!(
            "From: w{n}@example.org\r\nTo: a-infos-en@lists.example.org\r\n\
             Subject: (en) killed ingest {n}\r\nMessage-ID: <kill-{n}@example.org>\r\n\
             Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n\r\n{}\r\n",
            format!("paragraph {n} of a post piped in. ").repeat(40)
        )
        .into_bytes()
    };
    let spawn = |n: usize| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
            .arg("--config")
            .arg(tidings.config())
            .args(["ingest", "a-infos-en@lists.example.org"])
            .current_dir(tidings.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // A child killed early may close stdin before reading it all.
        let _ = child.stdin.take().unwrap().write_all(&message(n));
        child
    };
    // How long a run lives among sixteen: the kill points spread over
    // that and a bit.
    let started = Instant::now();
    let unkilled: Vec<_> = (runs..runs + 16).map(spawn).collect();
    for mut child in unkilled {
        assert_eq!(child.wait().unwrap().code(), Some(0));
    }
    let life = started.elapsed();

    let mut state = common::seed("TIDINGS_INGEST_SEED");
    let mut acknowledged = Vec::new();
    let mut killed = Vec::new();
    for wave in (0..runs).collect::<Vec<_>>().chunks(16) {
        let mut children: Vec<(usize, std::process::Child, Instant, Duration)> = wave
            .iter()
            .map(|&n| {
                let share = common::splitmix(&mut state) % 1_300;
                let kill_after = life.mul_f64(share as f64 / 1_000.0);
                (n, spawn(n), Instant::now(), kill_after)
            })
            .collect();
        while !children.is_empty() {
            children.retain_mut(|(n, child, started, kill_after)| {
                if let Some(status) = child.try_wait().unwrap() {
                    // Anything but 0 (75: try again) promises nothing.
                    match status.code() {
                        Some(0) => acknowledged.push(*n),
                        _ => killed.push(*n),
                    }
                    return false;
                }
                if started.elapsed() >= *kill_after {
                    child.kill().unwrap();
                    let status = child.wait().unwrap();
                    match status.code() {
                        Some(0) => acknowledged.push(*n),
                        _ => killed.push(*n),
                    }
                    return false;
                }
                true
            });
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    println!(
        "{runs} runs killed within {:.1?} (sixteen at once take {life:.1?}): {} exited 0, \
         {} killed or told to retry",
        life.mul_f64(1.3),
        acknowledged.len(),
        killed.len()
    );
    assert!(
        acknowledged.len() >= runs / 10 && killed.len() >= runs / 10,
        "the kills fall before and after the end of runs: {} acknowledged, {} killed",
        acknowledged.len(),
        killed.len()
    );

    let db = tidings::store::open(&tidings.path().join("data/tidings.sqlite3")).unwrap();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let mut statement = db
        .prepare(
            "SELECT p.message_id, r.bytes FROM posts p JOIN raw_messages r ON r.post_id = p.id",
        )
        .unwrap();
    let stored: BTreeMap<String, Vec<u8>> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let id = |n: usize| format!("<kill-{n}@example.org>");
    for n in &acknowledged {
        let bytes = stored.get(&id(*n));
        assert!(
            bytes.is_some_and(|bytes| *bytes == message(*n)),
            "run {n} exited 0 and its message is {}",
            if bytes.is_some() { "changed" } else { "lost" }
        );
    }
    for n in &killed {
        if let Some(bytes) = stored.get(&id(*n)) {
            assert!(*bytes == message(*n), "run {n} was killed and left a part");
        }
    }
}
