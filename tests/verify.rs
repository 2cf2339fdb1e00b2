//! Incoming authentication (`verify = true`) against a real DNS server on
//! loopback (tests/common/dns_server.py, dnslib) that this test starts and
//! configures through `[ingest] dns_servers`, never the network: posts
//! signed with dkimpy and sent with smtplib through the daemon's SMTP
//! listener, and piped through `tidings ingest` as Postfix's pipe does.

mod common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use serde_json::{json, Value};

use common::daemon::{python, Daemon};
use common::Tidings;

const DOMAIN: &str = "lists.example.org";

/// tests/common/dns_server.py serving `zone`, logging every query.
struct Dns {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Dns {
    fn start(dir: &Path, zone: &Value) -> Dns {
        Dns::start_holding(dir, zone, None)
    }

    /// A server that answers nothing until the file `hold` exists.
    fn start_holding(dir: &Path, zone: &Value, hold: Option<&Path>) -> Dns {
        let zone_path = dir.join("zone.json");
        std::fs::write(&zone_path, zone.to_string()).unwrap();
        let log = dir.join("queries.log");
        std::fs::write(&log, "").unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/dns_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&zone_path)
            .arg(&log)
            .args(hold)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs dns_server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("dns_server.py said {line:?} (is dnslib installed?)"))
            .parse()
            .unwrap();
        Dns { child, port, log }
    }

    /// The queries answered so far, "NAME TYPE" each.
    fn queries(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An RSA key (openssl) and its DKIM record.
struct Key {
    pem: PathBuf,
    record: String,
}

fn make_key(dir: &Path) -> Key {
    let pem = dir.join("sender.pem");
    let status = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .arg("-out")
        .arg(&pem)
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success());
    let public = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&pem)
        .output()
        .unwrap();
    assert!(public.status.success());
    let encoded = base64::engine::general_purpose::STANDARD.encode(public.stdout);
    Key {
        pem,
        record: format!("v=DKIM1; k=rsa; p={encoded}"),
    }
}

/// The test zone: sender.test signs (selector `sel`), sends from loopback
/// and refuses what fails (p=reject); forger.test sends from loopback too,
/// with no DMARC; relaxed.test sends from elsewhere and only watches
/// (p=none).
fn zone(key: &Key) -> Value {
    json!({
        "sender.test": ["v=spf1 ip4:127.0.0.1 -all"],
        "mail.sender.test": ["v=spf1 ip4:127.0.0.1 -all"],
        "sel._domainkey.sender.test": [key.record],
        "_dmarc.sender.test": ["v=DMARC1; p=reject"],
        "forger.test": ["v=spf1 ip4:127.0.0.1 -all"],
        "relaxed.test": ["v=spf1 ip4:192.0.2.1 -all"],
        "_dmarc.relaxed.test": ["v=DMARC1; p=none"],
        "sel._domainkey.forwarder.test": [key.record],
    })
}

/// The shipped lists.toml (posting open) verifying every list, asking only
/// `dns`, each query given `timeout` seconds.
fn verifying(port: u16, timeout: u32) -> impl FnOnce(String) -> String {
    move |text| {
        let text = text.replacen("[site]\n", "[site]\nverify = true\n", 1);
        let ingest = format!(
            "[ingest]\ndns_servers = [\"127.0.0.1:{port}\"]\ndns_timeout_seconds = {timeout}\n"
        );
        assert!(text.contains("[ingest]\n"));
        text.replacen("[ingest]\n", &ingest, 1)
    }
}

/// Builds a post (signed by sender.test with dkimpy when `key` is given,
/// relaxed/simple), writes its bytes to `out`, and sends it with smtplib
/// to `port` when given, saying EHLO `helo` and MAIL FROM `mail_from`.
const WRITE_AND_SEND: &str = r#"
import json, smtplib, sys
import dkim
from email.message import EmailMessage
from email.policy import SMTP
spec = json.loads(sys.argv[1])
msg = EmailMessage(policy=SMTP)
msg["From"] = spec["from"]
msg["To"] = spec["to"]
msg["Subject"] = spec["subject"]
msg["Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
msg["Message-ID"] = spec["id"]
msg.set_content("The dockers stopped work this morning.\n\n-- \nAna\n")
raw = msg.as_bytes()
if spec.get("key"):
    raw = dkim.sign(raw, b"sel", b"sender.test", open(spec["key"], "rb").read(),
                    canonicalize=(b"relaxed", b"simple"),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"]) + raw
if spec.get("arc"):
    # Passed on by forwarder.test, which checked it and sealed the chain.
    raw = (b"Authentication-Results: forwarder.test; dkim=pass header.d=sender.test\r\n" + raw)
    raw = b"".join(dkim.arc_sign(raw, b"sel", b"forwarder.test", open(spec["key"], "rb").read(),
                                 b"forwarder.test")) + raw
open(spec["out"], "wb").write(raw)
if spec.get("port"):
    client = smtplib.SMTP("127.0.0.1", spec["port"], local_hostname=spec["helo"], timeout=60)
    refused = client.sendmail(spec["mail_from"], [spec["to"]], raw)
    assert not refused, refused
    client.quit()
"#;

/// One post to write (and maybe send).
struct Mail<'a> {
    from: &'a str,
    mail_from: &'a str,
    id: &'a str,
    signed: bool,
    /// The code of the list it is sent to.
    list: &'a str,
}

impl Mail<'_> {
    /// The posting address of its list.
    fn to(&self) -> String {
        format!("a-infos-{}@{DOMAIN}", self.list)
    }
}

fn write_mail(dir: &Path, key: &Key, mail: &Mail<'_>, port: Option<u16>) -> Vec<u8> {
    python(
        WRITE_AND_SEND,
        &[&spec(dir, key, mail, port, false).to_string()],
    );
    std::fs::read(out_path(dir, mail)).unwrap()
}

fn out_path(dir: &Path, mail: &Mail<'_>) -> PathBuf {
    dir.join(format!("{}.eml", mail.id.trim_matches(['<', '>'])))
}

fn spec(dir: &Path, key: &Key, mail: &Mail<'_>, port: Option<u16>, arc: bool) -> Value {
    let out = out_path(dir, mail);
    json!({
        "from": mail.from,
        "to": mail.to(),
        "subject": format!("Strike {}", mail.id),
        "id": mail.id,
        "key": if mail.signed { Some(key.pem.display().to_string()) } else { None },
        "out": out.display().to_string(),
        "port": port,
        "helo": "mail.sender.test",
        "mail_from": mail.mail_from,
        "arc": arc,
    })
}

/// The stored post with Message-ID `id`.
fn stored(tidings: &Tidings, id: &str) -> Value {
    tidings
        .posts(&[])
        .into_iter()
        .find(|post| post["message_id"] == id)
        .unwrap_or_else(|| panic!("no post {id} stored"))
}

/// What `posts show` says and the raw bytes stored, of post `post`.
fn show(tidings: &Tidings, post: &Value) -> (String, Vec<u8>) {
    let id = post["id"].to_string();
    let shown = tidings.ok(&["posts", "show", &id]);
    let raw = tidings.run(&["posts", "show", &id, "--raw"]);
    assert!(raw.status.success());
    (shown, raw.stdout)
}

/// The Authentication-Results field on top of `raw`, and what follows it.
fn split_field(raw: &[u8]) -> (String, &[u8]) {
    let text = String::from_utf8_lossy(raw);
    assert!(
        text.starts_with(&format!("Authentication-Results: {DOMAIN};")),
        "no Authentication-Results of ours on top:\n{text}"
    );
    // The field ends at the first line that is not a continuation.
    let mut end = 0;
    for (index, line) in raw.split_inclusive(|&b| b == b'\n').enumerate() {
        if index > 0 && !line.starts_with(b"\t") && !line.starts_with(b" ") {
            break;
        }
        end += line.len();
    }
    (
        String::from_utf8_lossy(&raw[..end]).into_owned(),
        &raw[end..],
    )
}

#[test]
fn a_signed_post_from_its_domain_s_server_passes_and_a_forged_one_of_a_p_reject_domain_is_held() {
    let work = tempfile::tempdir().unwrap();
    let key = make_key(work.path());
    let dns = Dns::start(work.path(), &zone(&key));
    let tidings = Tidings::with_config(verifying(dns.port, 10));
    let daemon = Daemon::start(&tidings);
    let (_, port) = daemon.address("smtp");

    let genuine = Mail {
        from: "Ana <ana@sender.test>",
        mail_from: "ana@sender.test",
        id: "<genuine.1@sender.test>",
        signed: true,
        list: "en",
    };
    let sent = write_mail(work.path(), &key, &genuine, Some(port));
    let post = stored(&tidings, genuine.id);
    assert_eq!(post["status"], "published", "{post}");
    let (shown, raw) = show(&tidings, &post);
    let (field, rest) = split_field(&raw);
    assert_eq!(rest, sent.as_slice(), "the bytes under our field changed");
    for result in [
        "dkim=pass header.i=@sender.test header.s=sel",
        "spf=pass",
        "smtp.mailfrom=ana@sender.test",
        "dmarc=pass header.from=sender.test policy.dmarc=reject",
    ] {
        assert!(field.contains(result), "no {result} in {field}");
        assert!(
            shown.contains(result),
            "posts show lacks {result}:\n{shown}"
        );
    }
    assert!(
        dns.queries()
            .contains(&"sel._domainkey.sender.test TXT".to_string()),
        "{:?}",
        dns.queries()
    );

    // Someone else's server, sender.test in the From, no signature: SPF
    // passes for forger.test, which is not the From domain.
    let forged = Mail {
        from: "Ana <ana@sender.test>",
        mail_from: "someone@forger.test",
        id: "<forged.1@forger.test>",
        signed: false,
        list: "en",
    };
    let sent = write_mail(work.path(), &key, &forged, Some(port));
    let post = stored(&tidings, forged.id);
    assert_eq!(post["status"], "held", "{post}");
    let reason = post["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("dmarc: ") && reason.contains("sender.test publishes p=reject"),
        "{reason}"
    );
    let (shown, raw) = show(&tidings, &post);
    let (field, rest) = split_field(&raw);
    assert_eq!(rest, sent.as_slice());
    for result in [
        "dkim=none",
        "spf=pass",
        "smtp.mailfrom=someone@forger.test",
        "dmarc=fail header.from=sender.test policy.dmarc=reject",
    ] {
        assert!(field.contains(result), "no {result} in {field}");
    }
    assert!(shown.contains("Status:      held (dmarc: "), "{shown}");
    // The moderators are told, as of any held post.
    let held = tidings.ok(&["moderate", "list"]);
    assert!(held.contains("dmarc: "), "{held}");
}

#[test]
fn a_failing_post_from_a_p_none_domain_is_published_with_dmarc_fail_recorded() {
    let work = tempfile::tempdir().unwrap();
    let key = make_key(work.path());
    let dns = Dns::start(work.path(), &zone(&key));
    let tidings = Tidings::with_config(verifying(dns.port, 10));
    let daemon = Daemon::start(&tidings);
    let (_, port) = daemon.address("smtp");
    let mail = Mail {
        from: "Rui <rui@relaxed.test>",
        mail_from: "rui@relaxed.test",
        id: "<watched.1@relaxed.test>",
        signed: false,
        list: "en",
    };
    write_mail(work.path(), &key, &mail, Some(port));
    let post = stored(&tidings, mail.id);
    assert_eq!(post["status"], "published", "{post}");
    let (shown, raw) = show(&tidings, &post);
    let (field, _) = split_field(&raw);
    for result in [
        "spf=fail",
        "dmarc=fail header.from=relaxed.test policy.dmarc=none",
    ] {
        assert!(field.contains(result), "no {result} in {field}");
        assert!(shown.contains(result), "{shown}");
    }
}

#[test]
fn a_dns_server_that_never_answers_gives_temperror_and_the_post_is_stored_as_its_list_says() {
    let work = tempfile::tempdir().unwrap();
    let key = make_key(work.path());
    // A socket that takes every query and answers none.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let tidings = Tidings::with_config(verifying(port, 1));
    let daemon = Daemon::start(&tidings);
    let (_, smtp) = daemon.address("smtp");
    // Would be held for p=reject, were DNS answering.
    let forged = Mail {
        from: "Ana <ana@sender.test>",
        mail_from: "someone@forger.test",
        id: "<unanswered.1@forger.test>",
        signed: true,
        list: "en",
    };
    let sent = write_mail(work.path(), &key, &forged, Some(smtp));
    let post = stored(&tidings, forged.id);
    assert_eq!(post["status"], "published", "{post}");
    let mut buffer = [0u8; 512];
    silent.set_nonblocking(true).unwrap();
    assert!(
        silent.recv(&mut buffer).is_ok(),
        "the resolver asked nothing"
    );
    let (shown, raw) = show(&tidings, &post);
    let (field, rest) = split_field(&raw);
    assert_eq!(rest, sent.as_slice());
    for result in ["dkim=temperror", "spf=temperror", "dmarc=temperror"] {
        assert!(field.contains(result), "no {result} in {field}");
        assert!(shown.contains(result), "{shown}");
    }
}

#[test]
fn a_list_that_does_not_verify_asks_no_dns_and_stores_the_bytes_as_sent() {
    let work = tempfile::tempdir().unwrap();
    let key = make_key(work.path());
    let dns = Dns::start(work.path(), &zone(&key));
    let port = dns.port;
    // Only the Greek list verifies.
    let tidings = Tidings::with_config(move |text| {
        let text = verifying(port, 10)(text).replacen("[site]\nverify = true\n", "[site]\n", 1);
        text.replacen("code = \"gr\"\n", "code = \"gr\"\nverify = true\n", 1)
    });
    let daemon = Daemon::start(&tidings);
    let (_, smtp) = daemon.address("smtp");
    let mail = Mail {
        from: "Ana <ana@sender.test>",
        mail_from: "ana@sender.test",
        id: "<unverified.1@sender.test>",
        signed: true,
        list: "en",
    };
    let sent = write_mail(work.path(), &key, &mail, Some(smtp));
    let post = stored(&tidings, mail.id);
    assert_eq!(post["status"], "published");
    assert_eq!(dns.queries(), Vec::<String>::new(), "en asked DNS");
    let (shown, raw) = show(&tidings, &post);
    assert_eq!(raw, sent, "the bytes of an unverified post changed");
    assert!(!shown.contains("Auth:"), "{shown}");

    // The same server answers for a list that verifies.
    let greek = format!(
        "From: Ana <ana@sender.test>\r\nTo: a-infos-gr@{DOMAIN}\r\nSubject: (gr) Apergia\r\nMessage-ID: <verified.1@sender.test>\r\n\r\nApergia.\r\n"
    );
    let out = tidings.run_with_stdin(
        &[
            "ingest",
            "--sender",
            "ana@sender.test",
            "--client-ip",
            "127.0.0.1",
            &format!("a-infos-gr@{DOMAIN}"),
        ],
        &[],
        greek.as_bytes(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dns.queries().contains(&"sender.test TXT".to_string()),
        "{:?}",
        dns.queries()
    );
}

#[test]
fn through_the_pipe_the_client_ip_and_helo_postfix_passes_feed_spf() {
    let work = tempfile::tempdir().unwrap();
    let key = make_key(work.path());
    let dns = Dns::start(work.path(), &zone(&key));
    let tidings = Tidings::with_config(verifying(dns.port, 10));
    let to = format!("a-infos-en@{DOMAIN}");

    // As Postfix's pipe hands it over: LF line endings.
    let genuine = Mail {
        from: "Ana <ana@sender.test>",
        mail_from: "ana@sender.test",
        id: "<piped.1@sender.test>",
        signed: true,
        list: "en",
    };
    let crlf = write_mail(work.path(), &key, &genuine, None);
    let lf = String::from_utf8(crlf).unwrap().replace("\r\n", "\n");
    let out = tidings.run_with_stdin(
        &[
            "ingest",
            "--sender",
            "ana@sender.test",
            "--client-ip",
            "127.0.0.1",
            "--helo",
            "mail.sender.test",
            &to,
        ],
        &[],
        lf.as_bytes(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let post = stored(&tidings, genuine.id);
    assert_eq!(post["status"], "published", "{post}");
    let (_, raw) = show(&tidings, &post);
    let (field, rest) = split_field(&raw);
    assert_eq!(rest, lf.as_bytes(), "the piped bytes changed");
    assert!(
        !field.contains('\r'),
        "the field is in the message's line endings"
    );
    for result in ["dkim=pass", "spf=pass", "dmarc=pass"] {
        assert!(field.contains(result), "no {result} in {field}");
    }

    // Local(8)'s environment says the same; a forged From is held, and the
    // pipe still takes the message (exit 0).
    let forged = Mail {
        from: "Ana <ana@sender.test>",
        mail_from: "someone@forger.test",
        id: "<piped.2@forger.test>",
        signed: false,
        list: "en",
    };
    let bytes = write_mail(work.path(), &key, &forged, None);
    let out = tidings.run_with_stdin(
        &["ingest", "--sender", "someone@forger.test", &to],
        &[
            ("CLIENT_ADDRESS", "127.0.0.1"),
            ("CLIENT_HELO", "mx.forger.test"),
        ],
        &bytes,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let post = stored(&tidings, forged.id);
    assert_eq!(post["status"], "held", "{post}");
    let (shown, _) = show(&tidings, &post);
    assert!(shown.contains("spf=pass"), "{shown}");
    assert!(
        shown.contains("dmarc=fail header.from=sender.test"),
        "{shown}"
    );

    // Without a client address SPF cannot be checked; the signature still
    // carries DMARC.
    let unknown = Mail {
        from: "Ana <ana@sender.test>",
        mail_from: "ana@sender.test",
        id: "<piped.3@sender.test>",
        signed: true,
        list: "en",
    };
    let bytes = write_mail(work.path(), &key, &unknown, None);
    let out = tidings.run_with_stdin(&["ingest", "--sender", "ana@sender.test", &to], &[], &bytes);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let post = stored(&tidings, unknown.id);
    assert_eq!(post["status"], "published", "{post}");
    let (shown, _) = show(&tidings, &post);
    assert!(
        shown.contains("spf=none (the client address is unknown)"),
        "{shown}"
    );
    assert!(shown.contains("dkim=pass"), "{shown}");
    assert!(shown.contains("dmarc=pass"), "{shown}");
}

#[test]
fn an_arc_sealed_post_records_the_chain_s_result() {
    let work = tempfile::tempdir().unwrap();
    let key = make_key(work.path());
    let dns = Dns::start(work.path(), &zone(&key));
    let tidings = Tidings::with_config(verifying(dns.port, 10));
    let mail = Mail {
        from: "Ana <ana@sender.test>",
        mail_from: "list@forwarder.test",
        id: "<sealed.1@sender.test>",
        signed: true,
        list: "en",
    };
    python(
        WRITE_AND_SEND,
        &[&spec(work.path(), &key, &mail, None, true).to_string()],
    );
    let bytes = std::fs::read(out_path(work.path(), &mail)).unwrap();
    let out = tidings.run_with_stdin(
        &[
            "ingest",
            "--sender",
            mail.mail_from,
            "--client-ip",
            "127.0.0.1",
            &mail.to(),
        ],
        &[],
        &bytes,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let post = stored(&tidings, mail.id);
    let (shown, raw) = show(&tidings, &post);
    let (field, rest) = split_field(&raw);
    assert_eq!(rest, bytes.as_slice());
    assert!(field.contains("arc=pass"), "{field}");
    assert!(shown.contains("arc=pass"), "{shown}");
    assert!(
        dns.queries()
            .contains(&"sel._domainkey.forwarder.test TXT".to_string()),
        "{:?}",
        dns.queries()
    );
}

#[test]
fn a_verification_waiting_for_dns_holds_up_no_other_connection() {
    let work = tempfile::tempdir().unwrap();
    let key = make_key(work.path());
    let release = work.path().join("release");
    let dns = Dns::start_holding(work.path(), &zone(&key), Some(&release));
    let port = dns.port;
    // The Greek list verifies, the English one does not; DNS answers only
    // when the test says.
    let tidings = Tidings::with_config(move |text| {
        let text = verifying(port, 60)(text).replacen("[site]\nverify = true\n", "[site]\n", 1);
        text.replacen("code = \"gr\"\n", "code = \"gr\"\nverify = true\n", 1)
    });
    let daemon = Daemon::start(&tidings);
    let (_, smtp) = daemon.address("smtp");

    let waiting = Mail {
        from: "Ana <ana@sender.test>",
        mail_from: "ana@sender.test",
        id: "<gr.waiting@sender.test>",
        signed: true,
        list: "gr",
    };
    let mut sending = Command::new("python3")
        .arg("-c")
        .arg(WRITE_AND_SEND)
        .arg(spec(work.path(), &key, &waiting, Some(smtp), false).to_string())
        .spawn()
        .unwrap();
    common::wait_until("the Greek post's first DNS query", common::PATIENCE, || {
        !dns.queries().is_empty()
    });

    // Meanwhile a post to the English list is taken at once.
    let other = Mail {
        from: "Rui <rui@example.net>",
        mail_from: "rui@example.net",
        id: "<en.meanwhile@example.net>",
        signed: false,
        list: "en",
    };
    write_mail(work.path(), &key, &other, Some(smtp));
    assert_eq!(stored(&tidings, other.id)["status"], "published");
    assert!(
        sending.try_wait().unwrap().is_none(),
        "the Greek post was answered before DNS was"
    );
    assert!(tidings
        .posts(&[])
        .iter()
        .all(|post| post["message_id"] != waiting.id));

    std::fs::write(&release, "").unwrap();
    let status = common::wait_for("the Greek post's answer", common::PATIENCE, || {
        sending.try_wait().unwrap()
    });
    assert!(status.success());
    let post = stored(&tidings, waiting.id);
    let (shown, _) = show(&tidings, &post);
    assert!(shown.contains("dkim=pass"), "{shown}");
    assert!(shown.contains("dmarc=pass"), "{shown}");
}

/// Sends the message file ARGV[3] over LMTP as Postfix with
/// `lmtp_send_xforward_command = yes` does: XFORWARD after LHLO, once the
/// server offered it, naming the client Postfix received it from.
const XFORWARD_LMTP: &str = r#"
import smtplib, sys
port, mail_from, path, to = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
client = smtplib.LMTP("127.0.0.1", port, local_hostname="postfix.lists.example.org", timeout=60)
client.ehlo_or_helo_if_needed()
assert client.has_extn("xforward"), client.esmtp_features
code, reply = client.docmd("XFORWARD", "NAME=mx.relaxed.test ADDR=192.0.2.1 PROTO=ESMTP")
assert code == 250, (code, reply)
code, reply = client.docmd("XFORWARD", "HELO=mx.relaxed.test")
assert code == 250, (code, reply)
refused = client.sendmail(mail_from, [to], open(path, "rb").read())
assert not refused, refused
client.quit()
"#;

#[test]
fn over_lmtp_the_postfix_in_front_names_the_client_spf_checks_by_xforward() {
    let work = tempfile::tempdir().unwrap();
    let key = make_key(work.path());
    let dns = Dns::start(work.path(), &zone(&key));
    let tidings = Tidings::with_config(verifying(dns.port, 10));
    let daemon = Daemon::start(&tidings);
    let (_, lmtp) = daemon.address("lmtp");
    // relaxed.test sends from 192.0.2.1 only: from loopback SPF would fail.
    let mail = Mail {
        from: "Rui <rui@relaxed.test>",
        mail_from: "rui@relaxed.test",
        id: "<forwarded.1@relaxed.test>",
        signed: false,
        list: "en",
    };
    write_mail(work.path(), &key, &mail, None);
    let path = out_path(work.path(), &mail);
    python(
        XFORWARD_LMTP,
        &[
            &lmtp.to_string(),
            mail.mail_from,
            path.to_str().unwrap(),
            &mail.to(),
        ],
    );
    let post = stored(&tidings, mail.id);
    assert_eq!(post["status"], "published", "{post}");
    let (shown, raw) = show(&tidings, &post);
    let (field, _) = split_field(&raw);
    for result in [
        "spf=pass (lists.example.org: domain of rui@relaxed.test designates 192.0.2.1 as permitted sender)",
        "dmarc=pass header.from=relaxed.test",
    ] {
        assert!(field.contains(result), "no {result} in {field}");
        assert!(shown.contains(result), "{shown}");
    }
}

#[test]
fn hostile_signatures_and_seals_never_crash_verification_or_lose_the_post() {
    let work = tempfile::tempdir().unwrap();
    let key = make_key(work.path());
    let dns = Dns::start(work.path(), &zone(&key));
    let tidings = Tidings::with_config(verifying(dns.port, 10));
    let to = format!("a-infos-en@{DOMAIN}");
    let hostile: [&[u8]; 4] = [
        b"DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; s=sel; h=from; bh=!!!; b=@@@\r\nFrom: ana@sender.test\r\nSubject: (en) one\r\nMessage-ID: <h1@x>\r\n\r\nbody\r\n",
        b"ARC-Seal: i=4294967296; a=rsa-sha256; cv=none; d=forwarder.test; s=sel; b=\r\nARC-Message-Signature: i=0\r\nARC-Authentication-Results: i=-1; x\r\nFrom: ana@sender.test\r\nSubject: (en) two\r\nMessage-ID: <h2@x>\r\n\r\nbody\r\n",
        b"DKIM-Signature: v=1; a=ed25519-sha256; d=sender.test; s=sel; l=99999999999999999999; h=from:from:from; bh=; b=\r\nFrom: a@b@c, <<>>\r\nSubject: (en) three\r\nMessage-ID: <h3@x>\r\n\r\nbody\r\n",
        b"From: ana@sender.test\r\nDKIM-Signature: \xff\xfe\x00 binary\r\nSubject: (en) four\r\nMessage-ID: <h4@x>\r\n\r\n\x00\x01body\r\n",
    ];
    for (index, bytes) in hostile.iter().enumerate() {
        let out = tidings.run_with_stdin(
            &[
                "ingest",
                "--sender",
                "ana@sender.test",
                "--client-ip",
                "127.0.0.1",
                &to,
            ],
            &[],
            bytes,
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "message {index}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let posts = tidings.posts(&[]);
    assert_eq!(posts.len(), hostile.len(), "{posts:?}");
    for (post, bytes) in posts.iter().zip(hostile) {
        let (shown, raw) = show(&tidings, post);
        let (_, rest) = split_field(&raw);
        assert_eq!(rest, bytes, "{shown}");
        assert!(shown.contains("Auth:"), "{shown}");
    }
}
