//! The newsgroups through the running daemon, read by real news clients:
//! Python's nntplib (CPython 3.11) and Debian's slrnpull.

mod common;

use std::process::Command;

use common::daemon::{python, send, Daemon};
use common::Tidings;
use serde_json::{json, Value};

/// The shipped lists.toml with NNTP on a free port and the German list
/// moderated, so that a post to it waits for approval.
fn newsroom() -> Tidings {
    Tidings::with_config(|text| {
        text.replacen("[listen]\n", "[listen]\nnntp = \"127.0.0.1:0\"\n", 1)
            .replacen(
                "code = \"de\"\n",
                "code = \"de\"\nposting = \"moderated\"\nmoderators = [\"mod@example.net\"]\n",
                1,
            )
    })
}

fn post(daemon: &Daemon, list: &str, id: &str, subject: &str) {
    let sent = send(
        "smtp",
        daemon,
        json!([{"id": id, "to": [format!("a-infos-{list}@lists.example.org")],
                "subject": subject, "body": format!("The text of {id}.\n.A line that starts with a dot.\n")}]),
    );
    assert_eq!(sent[0]["ok"], true, "{sent:?}");
}

/// What a reader of nntplib sees: one JSON object.
const READ: &str = r#"
import base64, json, nntplib, smtplib, sys, warnings
from email.message import EmailMessage
host, port, smtp_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = {}
s = nntplib.NNTP(host, port, readermode=True, timeout=60)
_, groups = s.list()
out["active"] = {g.group: [int(g.last), int(g.first), g.flag] for g in groups}
_, out["descriptions"] = s.descriptions("a-infos.*")
for name in ["a-infos.gr", "a-infos.zh"]:
    _, count, first, last, _ = s.group(name)
    _, overviews = s.over((first, last))
    out[name] = [{"number": n, "subject": nntplib.decode_header(o["subject"]), "id": o["message-id"]} for n, o in overviews]
_, count, first, last, _ = s.group("a-infos.gr")
_, info = s.article(first)
out["by_number"] = base64.b64encode(b"\r\n".join(info.lines) + b"\r\n").decode()
_, info = s.article(out["a-infos.gr"][0]["id"])
out["by_id"] = [info.number, base64.b64encode(b"\r\n".join(info.lines) + b"\r\n").decode()]
try:
    s.post(b"From: a@b\r\nNewsgroups: a-infos.gr\r\nSubject: x\r\n\r\nbody\r\n")
    out["post"] = "accepted"
except nntplib.NNTPError as e:
    out["post"] = e.response
try:
    s.group("a-infos.nowhere")
except nntplib.NNTPError as e:
    out["unknown_group"] = e.response
try:
    s.article(last + 100)
except nntplib.NNTPError as e:
    out["out_of_range"] = e.response
# A post published while this reader is connected: the next GROUP shows it
# with the next number.
msg = EmailMessage()
msg["From"] = "Ana <ana@example.org>"
msg["To"] = "a-infos-gr@lists.example.org"
msg["Subject"] = "(gr) Νέο άρθρο ενώ διαβάζουμε"
msg["Message-ID"] = "<live@test>"
msg.set_content("published while a reader is connected")
with smtplib.SMTP(host, smtp_port, timeout=60) as smtp:
    smtp.send_message(msg)
_, count2, first2, last2, _ = s.group("a-infos.gr")
out["after_live"] = [int(count), int(last), int(count2), int(last2)]
_, number, message_id = s.stat(last2)
out["live"] = [number, message_id]
s.quit()
print(json.dumps(out))
"#;

/// Each Message-ID's number in `group`, read by STAT over nntplib.
const NUMBERS: &str = r#"
import json, nntplib, sys
s = nntplib.NNTP(sys.argv[1], int(sys.argv[2]), readermode=True, timeout=60)
out = {}
for group in sys.argv[3:]:
    _, count, first, last, _ = s.group(group)
    _, overviews = s.over((first, last)) if int(count) else (None, [])
    out[group] = {o["message-id"]: n for n, o in overviews}
s.quit()
print(json.dumps(out))
"#;

fn raw(tidings: &Tidings, message_id: &str) -> Vec<u8> {
    let post = tidings
        .posts(&[])
        .into_iter()
        .find(|post| post["message_id"] == message_id)
        .unwrap_or_else(|| panic!("{message_id} stored"));
    let id = post["id"].to_string();
    let output = tidings.run(&["posts", "show", &id, "--raw"]);
    assert!(output.status.success());
    output.stdout
}

/// The raw message as NNTP sends it, dot-stuffing undone: CRLF line ends.
fn crlf(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    text.trim_end_matches('\n')
        .replace('\n', "\r\n")
        .into_bytes()
}

fn decode(value: &Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap())
        .unwrap()
}

#[test]
fn news_readers_see_each_list_as_a_group_and_numbers_never_change() {
    let tidings = newsroom();
    let daemon = Daemon::start(&tidings);
    post(
        &daemon,
        "gr",
        "<gr1@test>",
        "(gr) Απεργία στα λιμάνια της Θεσσαλονίκης",
    );
    post(&daemon, "gr", "<gr2@test>", "(gr) Δεύτερο άρθρο");
    post(&daemon, "zh", "<zh1@test>", "(zh) 香港工人罢工");
    let (host, port) = daemon.address("nntp");
    let (_, smtp) = daemon.address("smtp");
    let read: Value = serde_json::from_str(&python(
        READ,
        &[&host, &port.to_string(), &smtp.to_string()],
    ))
    .unwrap();

    assert_eq!(read["active"]["a-infos.gr"], json!([2, 1, "n"]));
    assert_eq!(read["active"]["a-infos.zh"], json!([1, 1, "n"]));
    assert_eq!(read["active"]["a-infos.all"], json!([3, 1, "n"]));
    assert_eq!(
        read["descriptions"]["a-infos.gr"],
        "Πολύγλωσση υπηρεσία ειδήσεων από, για και σχετικά με αναρχικούς"
    );
    assert_eq!(
        read["descriptions"]["a-infos.zh"],
        "由无政府主义者、为无政府主义者、关于无政府主义者的多语种新闻服务"
    );
    assert_eq!(
        read["a-infos.gr"],
        json!([
            {"number": 1, "subject": "(gr) Απεργία στα λιμάνια της Θεσσαλονίκης", "id": "<gr1@test>"},
            {"number": 2, "subject": "(gr) Δεύτερο άρθρο", "id": "<gr2@test>"},
        ])
    );
    assert_eq!(
        read["a-infos.zh"],
        json!([{"number": 1, "subject": "(zh) 香港工人罢工", "id": "<zh1@test>"}])
    );

    // The article is the stored raw message under the two added fields.
    let mut expected =
        b"Newsgroups: a-infos.gr,a-infos.all\r\nXref: lists.example.org a-infos.gr:1 a-infos.all:1\r\n"
            .to_vec();
    expected.extend(crlf(&raw(&tidings, "<gr1@test>")));
    expected.extend(b"\r\n");
    assert_eq!(
        String::from_utf8_lossy(&decode(&read["by_number"])),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(read["by_id"][0], 1);
    assert_eq!(decode(&read["by_id"][1]), expected);

    assert!(
        read["post"].as_str().unwrap().starts_with("440 ")
            && read["post"]
                .as_str()
                .unwrap()
                .contains("a-infos-gr@lists.example.org"),
        "{}",
        read["post"]
    );
    assert!(read["unknown_group"].as_str().unwrap().starts_with("411 "));
    assert!(read["out_of_range"].as_str().unwrap().starts_with("423 "));
    assert_eq!(read["after_live"], json!([2, 2, 3, 3]));
    assert_eq!(read["live"], json!([3, "<live@test>"]));

    let numbers = |groups: &[&str]| -> Value {
        let mut args = vec![host.clone(), port.to_string()];
        args.extend(groups.iter().map(|group| group.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        serde_json::from_str(&python(NUMBERS, &args)).unwrap()
    };
    let before = numbers(&["a-infos.gr", "a-infos.de", "a-infos.all"]);
    assert_eq!(before["a-infos.de"], json!({}));

    // A held post has no number; approved, it gets the next in each group.
    post(&daemon, "de", "<de1@test>", "(de) Warten auf Freigabe");
    assert_eq!(numbers(&["a-infos.de"])["a-infos.de"], json!({}));
    let held = tidings
        .posts(&[])
        .into_iter()
        .find(|post| post["message_id"] == "<de1@test>")
        .unwrap();
    assert_eq!(held["status"], "held");
    tidings.ok(&["moderate", "approve", &held["id"].to_string()]);
    post(&daemon, "gr", "<gr3@test>", "(gr) Τρίτο");
    let after = numbers(&["a-infos.gr", "a-infos.de", "a-infos.all"]);
    assert_eq!(after["a-infos.de"], json!({"<de1@test>": 1}));
    assert_eq!(after["a-infos.all"]["<de1@test>"], 5);
    assert_eq!(after["a-infos.all"]["<gr3@test>"], 6);
    assert_eq!(after["a-infos.gr"]["<gr3@test>"], 4);
    // Numbers given before are the same.
    for group in ["a-infos.gr", "a-infos.all"] {
        for (id, number) in before[group].as_object().unwrap() {
            assert_eq!(&after[group][id], number, "{id} in {group}");
        }
    }
}

#[test]
fn slrnpull_fetches_a_group_with_its_overview_and_articles() {
    let tidings = newsroom();
    let daemon = Daemon::start(&tidings);
    post(&daemon, "gr", "<gr1@test>", "(gr) Απεργία στα λιμάνια");
    post(&daemon, "zh", "<zh1@test>", "(zh) 香港工人罢工");
    let (host, port) = daemon.address("nntp");
    let spool = tidings.path().join("slrnpull");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(
        spool.join("slrnpull.conf"),
        "default 100 0 0\na-infos.gr\na-infos.zh\n",
    )
    .unwrap();
    let output = Command::new("slrnpull")
        .args([
            "-d",
            spool.to_str().unwrap(),
            "-h",
            &format!("{host}:{port}"),
            "--no-post",
        ])
        .output()
        .expect("slrnpull (Debian package slrnpull)");
    let log = std::fs::read_to_string(spool.join("log")).unwrap_or_default();
    assert!(
        output.status.success(),
        "{}\n{}\n{log}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let article = std::fs::read(spool.join("news/a-infos/gr/1")).unwrap_or_else(|error| {
        let tree = Command::new("find").arg(&spool).output().unwrap();
        panic!(
            "no article 1 of a-infos.gr ({error}):\n{log}\n{}\n{}{}",
            String::from_utf8_lossy(&tree.stdout),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let mut expected =
        b"Newsgroups: a-infos.gr,a-infos.all\nXref: lists.example.org a-infos.gr:1 a-infos.all:1\n"
            .to_vec();
    expected.extend(
        String::from_utf8(crlf(&raw(&tidings, "<gr1@test>")))
            .unwrap()
            .replace("\r\n", "\n")
            .into_bytes(),
    );
    expected.push(b'\n');
    assert_eq!(
        String::from_utf8_lossy(&article),
        String::from_utf8_lossy(&expected)
    );
    let overview =
        std::fs::read_to_string(spool.join("news/a-infos/zh/.overview")).unwrap_or_default();
    assert!(overview.contains("<zh1@test>"), "{overview}\n{log}");
}

/// STARTTLS (RFC 4642) read by nntplib over a real TLS handshake, with a
/// certificate openssl makes for 127.0.0.1: offered before, and gone from
/// CAPABILITIES after (a second STARTTLS is refused), the articles then
/// read encrypted; a reader that trusts another certificate is refused
/// the handshake.
const STARTTLS: &str = r#"
import json, nntplib, ssl, sys
host, port, ca, other = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = {}
s = nntplib.NNTP(host, port, readermode=True, timeout=60)
out["before"] = sorted(s.getcapabilities())
context = ssl.create_default_context(cafile=ca)
s.starttls(context)
out["cipher"] = s.sock.version()
out["after"] = sorted(s.getcapabilities())
try:
    s._shortcmd("STARTTLS")
    out["again"] = "accepted"
except nntplib.NNTPError as e:
    out["again"] = e.response
_, count, first, last, _ = s.group("a-infos.gr")
_, info = s.article(first)
out["article"] = b"\r\n".join(info.lines).decode("utf-8", "replace")
s.quit()
untrusting = nntplib.NNTP(host, port, readermode=True, timeout=60)
try:
    untrusting.starttls(ssl.create_default_context(cafile=other))
    out["untrusted"] = "handshake accepted"
except ssl.SSLError as e:
    out["untrusted"] = e.reason
print(json.dumps(out))
"#;

fn self_signed(dir: &std::path::Path, name: &str) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args([
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ])
        .output()
        .expect("openssl (Debian's openssl; .ci/run installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn starttls_encrypts_a_reader_s_session_with_the_configured_certificate() {
    let tidings = Tidings::with_config(|text| {
        text.replacen(
            "[listen]\n",
            "[listen]\nnntp = \"127.0.0.1:0\"\nnntp_tls_certificate = \"news.pem\"\nnntp_tls_key = \"news.key\"\n",
            1,
        )
    });
    self_signed(tidings.path(), "news");
    self_signed(tidings.path(), "other");
    let daemon = Daemon::start(&tidings);
    post(&daemon, "gr", "<tls1@test>", "(gr) Κρυπτογραφημένο άρθρο");
    let (host, port) = daemon.address("nntp");
    let ca = tidings.path().join("news.pem");
    let other = tidings.path().join("other.pem");
    let read: Value = serde_json::from_str(&python(
        STARTTLS,
        &[
            &host,
            &port.to_string(),
            ca.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    ))
    .unwrap();
    let names = |key: &str| -> Vec<String> {
        read[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| name.as_str().unwrap().to_string())
            .collect()
    };
    assert!(names("before").contains(&"STARTTLS".to_string()), "{read}");
    assert!(!names("after").contains(&"STARTTLS".to_string()), "{read}");
    assert!(names("after").contains(&"READER".to_string()), "{read}");
    assert!(
        matches!(read["cipher"].as_str(), Some("TLSv1.3" | "TLSv1.2")),
        "{read}"
    );
    assert!(read["again"].as_str().unwrap().starts_with("502"), "{read}");
    assert!(
        read["article"]
            .as_str()
            .unwrap()
            .contains("Message-ID: <tls1@test>"),
        "{read}"
    );
    assert!(
        read["untrusted"]
            .as_str()
            .unwrap()
            .contains("CERTIFICATE_VERIFY_FAILED"),
        "{read}"
    );
}

/// The listener keeps the mail listeners' limits, counted apart: past
/// `max_connections_per_ip` a reader is told 400 and closed, while mail
/// from the same address is still taken; a freed slot is served again.
#[test]
fn readers_past_the_connection_limits_are_told_400_and_mail_goes_on() {
    use std::io::{BufRead, BufReader};
    let tidings = Tidings::with_config(|text| {
        text.replacen("[listen]\n", "[listen]\nnntp = \"127.0.0.1:0\"\n", 1)
            .replacen(
                "max_connections_per_ip = 8",
                "max_connections_per_ip = 2",
                1,
            )
    });
    let daemon = Daemon::start(&tidings);
    let (host, port) = daemon.address("nntp");
    let greeting = |stream: &std::net::TcpStream| {
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        line
    };
    let connect = || std::net::TcpStream::connect((host.as_str(), port)).unwrap();
    let first = connect();
    let second = connect();
    assert!(greeting(&first).starts_with("201 "));
    assert!(greeting(&second).starts_with("201 "));
    let refused: Vec<String> = (0..5).map(|_| greeting(&connect())).collect();
    for line in &refused {
        assert!(line.starts_with("400 "), "{refused:?}");
    }
    // Mail from this address has slots of its own.
    post(&daemon, "gr", "<limits@test>", "(gr) Όρια");
    drop(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let line = greeting(&connect());
        if line.starts_with("201 ") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no slot freed: {line}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(second);
}
