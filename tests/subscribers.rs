//! A subscriber's life through the running daemon: smtplib as the
//! subscriber's mail client, aiosmtpd (tests/common/smtp_peer.py) as the
//! outside world that receives what tidings sends, urllib as the browser
//! and the mail client's one-click POST.

mod common;

use common::daemon::{python, send, Daemon};
use common::{wait_for, Peer, Tidings, PATIENCE};
use mail_parser::MessageParser;
use serde_json::{json, Value};

/// lists.toml delivering over SMTP to `port`, https links, and the English
/// list's digest due as soon as one post is pending.
fn config(port: u16) -> impl FnOnce(String) -> String {
    move |text| {
        let replace = |text: String, from: &str, to: &str| {
            assert!(text.contains(from), "lists.toml has no `{from}`");
            text.replacen(from, to, 1)
        };
        let mut text = replace(text, "transport = \"file\"", "transport = \"smtp\"");
        text = replace(text, "\nport = 25\n", &format!("\nport = {port}\n"));
        text = replace(text, "tls = \"opportunistic\"", "tls = \"none\"");
        text = replace(
            text,
            "base_url = \"http://127.0.0.1:8080/\"",
            "base_url = \"https://news.example.org/\"",
        );
        replace(
            text,
            "code = \"en\"\n",
            "code = \"en\"\ndigest_size_threshold = 1\n",
        )
    }
}

/// A message the peer received: its envelope and its parsed parts.
struct Received {
    envelope: Value,
    raw: Vec<u8>,
}

impl Received {
    fn subject(&self) -> String {
        let message = MessageParser::new().parse(&self.raw).unwrap();
        message.subject().unwrap_or_default().to_string()
    }

    fn header(&self, name: &'static str) -> Option<String> {
        let message = MessageParser::new().parse(&self.raw).unwrap();
        message
            .header_raw(name)
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    fn text(&self) -> String {
        let message = MessageParser::new().parse(&self.raw).unwrap();
        message.body_text(0).unwrap_or_default().into_owned()
    }
}

/// Every message the peer received for `address`, in the order received.
fn received(peer: &Peer, address: &str) -> Vec<Received> {
    let mut names: Vec<_> = std::fs::read_dir(&peer.dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "eml"))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|path| {
            let envelope: Value =
                serde_json::from_str(&std::fs::read_to_string(path.with_extension("json")).ok()?)
                    .ok()?;
            let to = envelope["rcpt_tos"].as_array()?;
            to.iter()
                .any(|t| t.as_str() == Some(address))
                .then(|| Received {
                    envelope: envelope.clone(),
                    raw: std::fs::read(&path).unwrap(),
                })
        })
        .collect()
}

/// Waits for the `nth` (from 1) message to `address`.
fn nth_message(peer: &Peer, address: &str, nth: usize) -> Received {
    wait_for(&format!("message {nth} to {address}"), PATIENCE, || {
        let mut all = received(peer, address);
        (all.len() >= nth).then(|| all.swap_remove(nth - 1))
    })
}

/// The first URL under the site in `text` that starts with `prefix`,
/// turned into a path for the daemon's HTTP listener.
fn site_path(text: &str, prefix: &str) -> String {
    let start = format!("https://news.example.org/{prefix}");
    let at = text
        .find(&start)
        .unwrap_or_else(|| panic!("no {start} in {text}"));
    let url: String = text[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '>')
        .collect();
    url.trim_start_matches("https://news.example.org")
        .to_string()
}

/// Sends one message from `from` to `to` over SMTP.
fn mail(daemon: &Daemon, from: &str, to: &str, subject: &str, body: &str) {
    let sent = send(
        "smtp",
        daemon,
        json!([{"id": format!("<{}@client.example>", subject.len() + body.len() + to.len()), "from": from, "to": [to], "subject": subject, "body": body}]),
    );
    assert_eq!(sent[0]["ok"], true, "{sent:?}");
}

#[test]
fn by_mail_a_reader_subscribes_confirms_gets_a_digest_and_leaves_in_one_click() {
    let work = tempfile::tempdir().unwrap();
    let peer = Peer::start(&work.path().join("peer"), &[]);
    let tidings = Tidings::with_config(config(peer.port));
    // Another reader, so the absence of Ana's second digest is checked
    // against a digest that did go out.
    tidings.ok(&[
        "subscribers",
        "add",
        "--no-confirm",
        "--list",
        "en",
        "--mode",
        "mime",
        "bo@example.net",
    ]);
    let daemon = Daemon::start(&tidings);

    mail(
        &daemon,
        "ana@example.net",
        "a-infos-en-request@lists.example.org",
        "subscribe mime",
        "",
    );
    let confirmation = nth_message(&peer, "ana@example.net", 1);
    // VERP: a bounce of it names Ana.
    assert_eq!(
        confirmation.envelope["mail_from"],
        "a-infos-en-bounces+ana=example.net@lists.example.org"
    );
    assert!(confirmation
        .header("Auto-Submitted")
        .unwrap()
        .contains("auto-replied"));
    let reply_to = confirmation.header("Reply-To").unwrap();
    assert!(reply_to.starts_with("a-infos-en-confirm+"), "{reply_to}");
    let listed = tidings.ok(&["subscribers", "list", "--list", "en"]);
    assert!(
        !listed.contains("ana@example.net"),
        "not before confirming: {listed}"
    );

    // Ana's client replies to the confirmation.
    mail(
        &daemon,
        "ana@example.net",
        &reply_to,
        &format!("Re: {}", confirmation.subject()),
        "> Someone, hopefully you, asked...\n",
    );
    let welcome = nth_message(&peer, "ana@example.net", 2);
    assert!(
        welcome.text().contains("https://news.example.org/prefs/"),
        "{}",
        welcome.text()
    );
    let listed = tidings.ok(&["subscribers", "list", "--list", "en"]);
    assert!(listed.contains("ana@example.net\tmime"), "{listed}");

    // A post: the digest goes out at once (size trigger), to both.
    mail(
        &daemon,
        "writer@example.org",
        "a-infos-en@lists.example.org",
        "(en) General strike called",
        "Workers walk out at noon.\n",
    );
    let digest = nth_message(&peer, "ana@example.net", 3);
    assert!(digest.subject().contains("Digest"), "{}", digest.subject());
    nth_message(&peer, "bo@example.net", 1);
    let unsubscribe = digest.header("List-Unsubscribe").unwrap();
    assert!(unsubscribe.contains("mailto:a-infos-en-request@lists.example.org?subject=unsubscribe"));
    assert_eq!(
        digest.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let one_click = site_path(&unsubscribe, "unsubscribe/");

    // The mail client's one-click POST (RFC 8058): 200, no redirect.
    let (status, page) = daemon.http("POST", &one_click, "List-Unsubscribe=One-Click");
    assert_eq!(status, 200, "{page}");
    let listed = tidings.ok(&["subscribers", "list", "--list", "en"]);
    assert!(!listed.contains("ana@example.net"), "{listed}");

    // The next digest reaches Bo and not Ana.
    mail(
        &daemon,
        "writer@example.org",
        "a-infos-en@lists.example.org",
        "(en) The strike goes on",
        "Day two.\n",
    );
    nth_message(&peer, "bo@example.net", 2);
    assert_eq!(
        received(&peer, "ana@example.net").len(),
        3,
        "nothing after leaving"
    );
    // Ana's mail went through the service addresses, logged at info: her
    // address is hers, and never in the log above debug.
    let log = std::fs::read_to_string(tidings.path().join("serve.log")).unwrap();
    assert!(log.contains("service mail taken"), "{log}");
    assert!(!log.to_lowercase().contains("ana@example.net"), "{log}");
}

#[test]
fn on_the_web_a_reader_subscribes_and_confirms_and_the_link_scanner_does_not() {
    let work = tempfile::tempdir().unwrap();
    let peer = Peer::start(&work.path().join("peer"), &[]);
    let tidings = Tidings::with_config(config(peer.port));
    let daemon = Daemon::start(&tidings);

    let (status, form) = daemon.http("GET", "/lists/gr/subscribe", "");
    assert_eq!(status, 200);
    assert!(
        form.contains("lang=\"el\""),
        "the page is in the list's language"
    );
    let (status, page) = daemon.http(
        "POST",
        "/lists/gr/subscribe",
        "address=cy%40example.net&mode=plain",
    );
    assert_eq!(status, 200, "{page}");
    let confirmation = nth_message(&peer, "cy@example.net", 1);
    let confirm = site_path(&confirmation.text(), "confirm/");
    // What a link scanner does: GET. Nothing happens.
    let (status, _) = daemon.http("GET", &confirm, "");
    assert_eq!(status, 200);
    assert!(!tidings
        .ok(&["subscribers", "list", "--list", "gr"])
        .contains("cy@example.net"));
    let (status, page) = daemon.http("POST", &confirm, "");
    assert_eq!(status, 200, "{page}");
    let listed = tidings.ok(&["subscribers", "list", "--list", "gr"]);
    assert!(listed.contains("cy@example.net\tplain"), "{listed}");
    let welcome = nth_message(&peer, "cy@example.net", 2);
    let prefs = site_path(&welcome.text(), "prefs/");
    let (status, page) = daemon.http("GET", &prefs, "");
    assert_eq!(status, 200);
    assert!(page.contains("cy@example.net"));
    // Forged and replayed tokens change nothing. The forgery changes the
    // last character (to another one: a token ends in 'a' one time in 16).
    let last = if confirm.ends_with('a') { 'b' } else { 'a' };
    let (status, _) = daemon.http(
        "POST",
        &format!("{}{last}", &confirm[..confirm.len() - 1]),
        "",
    );
    assert_eq!(status, 404);
    let (status, page) = daemon.http("POST", &confirm, "");
    assert_eq!(status, 200);
    assert_eq!(received(&peer, "cy@example.net").len(), 2, "{page}");
}

#[test]
fn mail_to_owner_reaches_the_editors_and_automatic_mail_gets_no_answer() {
    let work = tempfile::tempdir().unwrap();
    let peer = Peer::start(&work.path().join("peer"), &[]);
    let tidings = Tidings::with_config(|text| {
        config(peer.port)(text).replacen(
            "code = \"en\"\n",
            "code = \"en\"\neditors = [\"editor@example.org\"]\n",
            1,
        )
    });
    let daemon = Daemon::start(&tidings);
    mail(
        &daemon,
        "ana@example.net",
        "a-infos-en-owner@lists.example.org",
        "A question for the editors",
        "Hello.\n",
    );
    let forwarded = nth_message(&peer, "editor@example.org", 1);
    assert_eq!(forwarded.subject(), "A question for the editors");
    assert_eq!(forwarded.envelope["mail_from"], "ana@example.net");

    // An out-of-office answer to -request: kept, never answered.
    let sent = send(
        "smtp",
        &daemon,
        json!([{"id": "<ooo@x>", "from": "ana@example.net", "to": ["a-infos-en-request@lists.example.org"], "subject": "subscribe", "body": "I am away.\n", "headers": {"Auto-Submitted": "auto-replied"}}]),
    );
    assert_eq!(sent[0]["ok"], true);
    // A later normal request is answered: once it has been, the out-of-office
    // one had its chance and got nothing.
    mail(
        &daemon,
        "bo@example.net",
        "a-infos-en-request@lists.example.org",
        "help",
        "",
    );
    nth_message(&peer, "bo@example.net", 1);
    assert!(received(&peer, "ana@example.net").is_empty());
}

/// Debian's chromium, where .ci/run installs it.
const CHROMIUM: &str = "/usr/bin/chromium";

#[test]
fn in_headless_chromium_a_reader_fills_the_form_and_gets_the_confirmation() {
    if !std::path::Path::new(CHROMIUM).exists() {
        // CI installs chromium (.ci/run), so there a missing one is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "{CHROMIUM} is missing in CI: .ci/run installs it"
        );
        eprintln!("skipped: {CHROMIUM} is not installed (apt-get install chromium)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let peer = Peer::start(&work.path().join("peer"), &[]);
    // The form posts to base_url, so base_url names the daemon's own
    // listener: a port free a moment ago.
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let tidings = Tidings::with_config(|text| {
        config(peer.port)(text).replacen(
            "base_url = \"https://news.example.org/\"",
            &format!("base_url = \"http://{listen}/\""),
            1,
        )
    });
    let daemon = Daemon::start_with_http(&tidings, &listen.to_string());

    let screenshot = work.path().join("check-your-mail.png");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/browser.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .args([
            CHROMIUM,
            &format!("http://{listen}/lists/en/subscribe"),
            "dee@example.net",
            "summary",
        ])
        .arg(&screenshot)
        .output()
        .expect("python3 runs browser.py");
    assert!(
        output.status.success(),
        "browser.py failed (is websocket-client installed?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();

    // The answer page arrived in the browser, rendered: its text, and a
    // screenshot with more on it than one colour.
    assert_eq!(
        answer["url"],
        format!("http://{listen}/lists/en/subscribe"),
        "{answer}"
    );
    let text = answer["text"].as_str().unwrap();
    assert!(text.contains("Check your mail"), "{text}");
    assert!(text.contains("confirmation is on its way"), "{text}");
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        answer["colours"].as_u64().unwrap() > 1,
        "the screenshot is blank: {answer}"
    );

    // The confirmation reached the outside world, for the address typed and
    // the mode chosen; nobody is subscribed before confirming.
    let confirmation = nth_message(&peer, "dee@example.net", 1);
    assert!(confirmation
        .header("Auto-Submitted")
        .unwrap()
        .contains("auto-replied"));
    let confirm = confirmation.text();
    assert!(
        confirm.contains(&format!("http://{listen}/confirm/")),
        "{confirm}"
    );
    assert!(
        confirm.contains("a daily summary"),
        "the mode chosen: {confirm}"
    );
    assert!(!tidings
        .ok(&["subscribers", "list", "--list", "en"])
        .contains("dee@example.net"));
    let link = confirm
        .split_whitespace()
        .find(|word| word.contains("/confirm/"))
        .unwrap();
    let path = link.trim_start_matches(&format!("http://{listen}"));
    let (status, page) = daemon.http("POST", path, "");
    assert_eq!(status, 200, "{page}");
    let listed = tidings.ok(&["subscribers", "list", "--list", "en"]);
    assert!(listed.contains("dee@example.net\tsummary"), "{listed}");
}

/// Signs a post with the author's key (dkimpy, rsa-sha256, simple
/// canonicalization: any changed byte of the covered fields or the body
/// breaks it), writes the signed bytes to OUT and submits them with
/// smtplib.
const SIGN_AND_SEND: &str = r#"
import smtplib, sys
import dkim
from email.message import EmailMessage
from email.policy import SMTP
host, port, key, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
msg = EmailMessage(policy=SMTP)
msg["From"] = "Carla <carla@author.example>"
msg["To"] = "a-infos-en@lists.example.org"
msg["Subject"] = "(en) Strike at the port"
msg["Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
msg["Message-ID"] = "<strike.1@author.example>"
msg.set_content("Dockers stopped work this morning.\n.a line that begins with a dot\n\n-- \nCarla\n")
raw = msg.as_bytes()
signature = dkim.sign(raw, b"author", b"author.example", open(key, "rb").read(),
                      canonicalize=(b"simple", b"simple"),
                      include_headers=[b"from", b"to", b"subject", b"date", b"message-id",
                                       b"mime-version", b"content-type", b"content-transfer-encoding"])
signed = signature + raw
open(out, "wb").write(signed)
client = smtplib.SMTP(host, port, timeout=60)
client.sendmail("carla@author.example", ["a-infos-en@lists.example.org"], signed)
client.quit()
"#;

#[test]
fn a_post_subscriber_gets_each_post_as_sent_with_both_signatures_verifying() {
    let work = tempfile::tempdir().unwrap();
    let keys = work.path();
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    let (author_key, list_key) = (keys.join("author.pem"), keys.join("list.pem"));
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        author_key.to_str().unwrap(),
    ]);
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        list_key.to_str().unwrap(),
    ]);
    let peer = Peer::start(&work.path().join("peer"), &[]);
    let list_key_path = list_key.display().to_string();
    let tidings = Tidings::with_config(move |text| {
        let mut text = config(peer.port)(text);
        text.push_str(&format!(
            "\n[[dkim]]\nselector = \"tidings-ed\"\nalgorithm = \"ed25519-sha256\"\nkey_file = \"{list_key_path}\"\n"
        ));
        text
    });
    tidings.ok(&[
        "subscribers",
        "add",
        "--list",
        "en",
        "--mode",
        "post",
        "--no-confirm",
        "pia@example.net",
    ]);
    let daemon = Daemon::start(&tidings);

    let signed_path = work.path().join("signed.eml");
    let (host, port) = daemon.address("smtp");
    python(
        SIGN_AND_SEND,
        &[
            &host,
            &port.to_string(),
            author_key.to_str().unwrap(),
            signed_path.to_str().unwrap(),
        ],
    );
    let post = nth_message(&peer, "pia@example.net", 1);

    // The post as Carla sent it, byte for byte, under the list's fields.
    let signed = std::fs::read(&signed_path).unwrap();
    assert!(
        post.raw.ends_with(&signed),
        "the contributor's message is not intact:\n{}",
        String::from_utf8_lossy(&post.raw)
    );
    assert_eq!(
        post.envelope["mail_from"],
        "a-infos-en-bounces+pia=example.net@lists.example.org"
    );
    assert_eq!(
        post.header("To").as_deref(),
        Some("a-infos-en@lists.example.org")
    );
    assert!(post
        .header("List-Id")
        .unwrap()
        .ends_with("<en.lists.example.org>"));
    assert!(post.header("List-Post").is_some());
    assert!(post.header("List-Help").is_some());
    let unsubscribe = post.header("List-Unsubscribe").unwrap();
    assert!(
        unsubscribe.contains("https://news.example.org/unsubscribe/"),
        "{unsubscribe}"
    );
    assert_eq!(
        post.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );

    // Both signatures verify with dkimpy, the keys answered from the test's
    // own files: the list's on top (ed25519), the author's beneath (rsa).
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/read_digests.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg(&peer.dir)
        .arg(format!(
            "--key=author._domainkey.author.example={}",
            author_key.display()
        ))
        .arg(format!(
            "--key=tidings-ed._domainkey.lists.example.org={}",
            list_key.display()
        ))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Value = serde_json::from_str(
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .find(|line| line.contains("pia@example.net"))
            .expect("the post read back"),
    )
    .unwrap();
    let dkim = read["dkim"].as_array().unwrap();
    assert_eq!(dkim.len(), 2, "{read}");
    assert_eq!(dkim[0]["a"], "ed25519-sha256");
    assert_eq!(dkim[1]["a"], "rsa-sha256");
    for signature in dkim {
        assert_eq!(signature["ok"], true, "a signature fails: {read}");
    }
    let list_signed: Vec<&str> = dkim[0]["h"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert!(
        list_signed.contains(&"list-unsubscribe") && list_signed.contains(&"list-id"),
        "{list_signed:?}"
    );

    // Recorded as sent once (the result commits just after the 250), and
    // nothing else went to Pia.
    let posts_line = || {
        let queue = tidings.ok(&["queue"]);
        queue
            .lines()
            .find(|line| line.starts_with("en (posts)"))
            .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    wait_for("the post delivery recorded as sent", PATIENCE, || {
        posts_line().filter(|line| line == "en (posts) 0 0 1 0")
    });
    assert_eq!(received(&peer, "pia@example.net").len(), 1);
}
