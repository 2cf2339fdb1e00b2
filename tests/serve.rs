//! The daemon end to end: `tidings serve` on free loopback ports, real SMTP
//! and LMTP clients (Python's smtplib and asyncio streams, swaks), a real
//! HTTP client.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::daemon::{get, python, send, Daemon};
use common::{wait_for, wait_until, Peer, Tidings, PATIENCE};
use serde_json::Value;

#[test]
fn posts_in_several_charsets_arrive_by_smtp_and_lmtp_and_show_in_served_feeds() {
    let tidings = Tidings::new();
    let daemon = Daemon::start(&tidings);
    let smtp = send(
        "smtp",
        &daemon,
        serde_json::json!([
            {"id": "<ru-1@example.org>", "to": ["a-infos-ru@lists.example.org"], "subject": "(ru) Россия: забастовка", "body": "Все люди рождаются свободными.\n", "charset": "koi8-r"},
            {"id": "<gr-1@example.org>", "to": ["a-infos-gr@lists.example.org"], "subject": "(gr) Ελλάδα: απεργία", "body": "Όλοι οι άνθρωποι γεννιούνται ελεύθεροι.\n", "charset": "iso-8859-7"},
            {"id": "<zh-1@example.org>", "to": ["a-infos-zh@lists.example.org"], "subject": "(zh) 中国：罢工", "body": "人人生而自由。\n", "charset": "gb2312"},
        ]),
    );
    assert!(smtp.iter().all(|r| r["ok"] == true), "{smtp:?}");
    let lmtp = send(
        "lmtp",
        &daemon,
        serde_json::json!([
            {"id": "<tr-1@example.org>", "to": ["a-infos-tr@lists.example.org", "a-infos-en@lists.example.org"], "subject": "(tr) Türkiye: grev", "body": "Bütün insanlar hür doğarlar.\n"},
        ]),
    );
    assert!(lmtp.iter().all(|r| r["ok"] == true), "{lmtp:?}");

    let posts = tidings.posts(&[]);
    let titles: Vec<(&str, &str)> = posts
        .iter()
        .map(|p| (p["list"].as_str().unwrap(), p["title"].as_str().unwrap()))
        .collect();
    assert_eq!(
        titles,
        [
            ("ru", "Россия: забастовка"),
            ("gr", "Ελλάδα: απεργία"),
            ("zh", "中国：罢工"),
            ("tr", "Türkiye: grev")
        ]
    );

    // The feeds follow within the debounce, and a poll that changes nothing costs a 304.
    wait_until("the Turkish feed to carry the post", PATIENCE, || {
        get(&daemon, "/feeds/tr.atom", serde_json::json!({}))
            .2
            .contains("Türkiye: grev")
    });
    let (status, headers, body) = get(&daemon, "/feeds/gr.rss", serde_json::json!({}));
    assert_eq!(status, 200);
    assert!(body.contains("Ελλάδα: απεργία"));
    assert_eq!(
        headers["content-type"],
        "application/rss+xml; charset=utf-8"
    );
    let etag = headers["etag"].as_str().unwrap().to_string();
    let last_modified = headers["last-modified"].as_str().unwrap().to_string();
    let (status, _, _) = get(
        &daemon,
        "/feeds/gr.rss",
        serde_json::json!({"If-None-Match": etag}),
    );
    assert_eq!(status, 304);
    let (status, _, _) = get(
        &daemon,
        "/feeds/gr.rss",
        serde_json::json!({"If-Modified-Since": last_modified}),
    );
    assert_eq!(status, 304);
    let (status, headers, _) = get(
        &daemon,
        "/feeds/gr.rss",
        serde_json::json!({"Accept-Encoding": "gzip"}),
    );
    assert_eq!(
        (status, headers["content-encoding"].as_str()),
        (200, Some("gzip"))
    );
    assert_eq!(
        get(
            &daemon,
            "/feeds/../data/tidings.sqlite3",
            serde_json::json!({})
        )
        .0,
        404
    );
    let (status, _, metrics) = get(&daemon, "/metrics", serde_json::json!({}));
    assert_eq!(status, 200);
    assert!(
        metrics.contains("tidings_posts_received_total{list=\"tr\",outcome=\"stored\"} 1"),
        "{metrics}"
    );
    assert_eq!(get(&daemon, "/healthz", serde_json::json!({})).0, 200);

    // The log has one line per message with its Message-ID, list and outcome.
    let log = std::fs::read_to_string(tidings.path().join("serve.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("<zh-1@example.org>") && l.contains("zh") && l.contains("stored")),
        "{log}"
    );
}

#[test]
fn swaks_submits_a_post() {
    if Command::new("swaks").arg("--version").output().is_err() {
        panic!("swaks is not installed: .ci/run installs it");
    }
    let tidings = Tidings::new();
    let daemon = Daemon::start(&tidings);
    let (host, port) = daemon.address("smtp");
    let output = Command::new("swaks")
        .args([
            "--server",
            &host,
            "--port",
            &port.to_string(),
            "--to",
            "a-infos-fr@lists.example.org",
            "--from",
            "a@example.org",
        ])
        .args([
            "--header",
            "Subject: (fr) France: grève générale",
            "--header",
            "Message-ID: <swaks-1@example.org>",
        ])
        .args(["--body", "La grève a commencé à l'aube."])
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{transcript}");
    assert!(
        transcript.contains("250 2.0.0 stored as post 1"),
        "{transcript}"
    );
    assert_eq!(tidings.posts(&[])[0]["title"], "France: grève générale");
}

/// Speaks raw SMTP: sends each line, prints every reply line. `READ` reads
/// a reply without sending anything (a client that stalls until the daemon
/// speaks); `SLEEP S` is a client deliberately slow for S seconds before it
/// reads; `RAW` sends bytes as they are, `\n` as CRLF.
const CONVERSE: &str = r#"
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
# The timeout only bounds a failure: a daemon that never answers fails the
# test instead of hanging it.
s = socket.create_connection((host, port), timeout=60)
f = s.makefile("rb")
def reply():
    lines = []
    while True:
        line = f.readline().decode()
        if not line:
            return lines + ["<closed>"]
        lines.append(line.rstrip())
        if line[3:4] != "-":
            return lines
print(" | ".join(reply()))
def send(data):
    try:
        s.sendall(data)
        return True
    except OSError:
        print("<closed>")
        return False
for command in sys.argv[3:]:
    if command == "READ":
        print(" | ".join(reply())); continue
    if command.startswith("SLEEP "):
        time.sleep(float(command[6:])); print(" | ".join(reply())); continue
    if command.startswith("RAW "):
        if not send(command[4:].encode().replace(b"\\n", b"\r\n")): break
        print(" | ".join(reply())); continue
    if not send(command.encode() + b"\r\n"): break
    print(" | ".join(reply()))
"#;

fn converse(daemon: &Daemon, protocol: &str, commands: &[&str]) -> Vec<String> {
    let (host, port) = daemon.address(protocol);
    let mut args = vec![host.as_str()];
    let port = port.to_string();
    args.push(&port);
    args.extend_from_slice(commands);
    python(CONVERSE, &args)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_listener_refuses_what_is_not_ours() {
    let tidings = Tidings::with_config(|text| {
        text.replace("max_message_bytes = 10485760", "max_message_bytes = 4096")
            .replace("command_timeout_secs = 300", "command_timeout_secs = 1")
    });
    let daemon = Daemon::start(&tidings);
    let replies = converse(
        &daemon,
        "smtp",
        &[
            "EHLO client.example.org",
            "MAIL FROM:<a@example.org> SIZE=999999",
            "MAIL FROM:<a@example.org>",
            "RCPT TO:<nobody@lists.example.org>",
            "RCPT TO:<victim@gmail.com>",
            "RCPT TO:<a-infos-en-bounces@lists.example.org>",
            "RCPT TO:<a-infos-en@lists.example.org>",
            "QUIT",
        ],
    );
    assert!(replies[0].starts_with("220 "), "{replies:?}");
    for extension in [
        "PIPELINING",
        "8BITMIME",
        "SMTPUTF8",
        "SIZE 4096",
        "ENHANCEDSTATUSCODES",
    ] {
        assert!(
            replies[1].starts_with("250") && replies[1].contains(extension),
            "{extension}: {replies:?}"
        );
    }
    assert!(replies[2].starts_with("552 5.3.4"), "{replies:?}");
    assert!(replies[3].starts_with("250 "), "{replies:?}");
    assert!(replies[4].starts_with("550 5.1.1"), "{replies:?}");
    assert!(replies[5].starts_with("550 5.7.1"), "{replies:?}");
    // -bounces goes to bounce processing.
    assert!(replies[6].starts_with("250 "), "{replies:?}");
    assert!(replies[7].starts_with("250 "), "{replies:?}");

    // A message over the size limit that did not declare its size.
    let big = format!("RAW Subject: (en) big\\n\\n{}\\n.\\n", "x".repeat(8000));
    let replies = converse(
        &daemon,
        "smtp",
        &[
            "EHLO c",
            "MAIL FROM:<a@example.org>",
            "RCPT TO:<a-infos-en@lists.example.org>",
            "DATA",
            &big,
            "QUIT",
        ],
    );
    assert!(replies[4].starts_with("354"), "{replies:?}");
    assert!(replies[5].starts_with("552 5.3.4"), "{replies:?}");
    // Refused, and recorded as such (without its bytes): every message
    // ends as a row.
    let posts = tidings.posts(&[]);
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0]["status"], "rejected");
    assert!(posts[0]["reason"]
        .as_str()
        .unwrap()
        .contains("over the limit of 4096 bytes"));

    // A command flood is cut off.
    let flood: Vec<String> = (0..12).map(|i| format!("BOGUS {i}")).collect();
    let mut commands = vec!["EHLO c"];
    commands.extend(flood.iter().map(String::as_str));
    let replies = converse(&daemon, "smtp", &commands);
    assert!(
        replies.iter().any(|r| r.starts_with("421 4.7.0")),
        "{replies:?}"
    );
    assert!(replies.last().unwrap().ends_with("<closed>"), "{replies:?}");

    // A client that stalls is dropped: it sends nothing more and reads
    // what the daemon says once the command timeout (1 s here) has passed.
    let replies = converse(&daemon, "lmtp", &["LHLO c", "READ"]);
    assert!(replies[2].starts_with("421 4.4.2"), "{replies:?}");
}

#[test]
fn lmtp_answers_each_recipient_and_pipelined_commands_work() {
    let tidings = Tidings::new();
    let daemon = Daemon::start(&tidings);
    let pipelined = "RAW MAIL FROM:<a@example.org>\\nRCPT TO:<a-infos-de@lists.example.org>\\nRCPT TO:<a-infos-nl@lists.example.org>\\nDATA\\n";
    let replies = converse(
        &daemon,
        "lmtp",
        &[
            "LHLO c",
            pipelined,
            "READ",
            "READ",
            "READ",
            "RAW From: a@example.org\\nSubject: (de) Streik\\nMessage-ID: <lmtp-1@x>\\n\\n..dot-stuffed line\\n.\\n",
            "READ",
            "QUIT",
        ],
    );
    // 250 MAIL, 250 RCPT, 250 RCPT, 354 DATA, then one reply per recipient.
    assert!(
        replies[2].starts_with("250")
            && replies[3].starts_with("250")
            && replies[4].starts_with("250"),
        "{replies:?}"
    );
    assert!(replies[5].starts_with("354"), "{replies:?}");
    assert!(
        replies[6].starts_with("250 2.0.0 stored") && replies[7].starts_with("250 2.0.0 stored"),
        "{replies:?}"
    );
    let post = &tidings.posts(&[])[0];
    assert_eq!(post["list"], "de");
    let body = tidings.ok(&["posts", "show", "1"]);
    assert!(
        body.contains("\n.dot-stuffed line"),
        "dot-unstuffing: {body}"
    );
}

/// The messages the file transport wrote to `dir`: (envelope, bytes), in
/// no particular order.
fn outbox_messages(dir: &Path) -> Vec<(Value, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut messages = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "eml") {
            let envelope = std::fs::read(path.with_extension("json")).unwrap_or_default();
            let Ok(envelope) = serde_json::from_slice(&envelope) else {
                continue; // written between the two files
            };
            messages.push((envelope, std::fs::read(&path).unwrap()));
        }
    }
    messages
}

#[test]
fn postmaster_mail_is_passed_on_to_the_operator_and_loops_are_not() {
    let tidings = Tidings::with_config(|text| {
        text.replace(
            "operator = \"root@localhost\"",
            "operator = \"ops@example.net\"",
        )
    });
    let daemon = Daemon::start(&tidings);
    let outbox = tidings.path().join("data/outbox");
    let message = |id: &str, subject: &str, extra: &str| {
        format!(
            "RAW {extra}From: a@example.org\\nSubject: {subject}\\nMessage-ID: <{id}@x>\\n\\nbody\\n.\\n"
        )
    };
    let first = message("postmaster-1", "(en) to the list and postmaster", "");
    let replies = converse(
        &daemon,
        "lmtp",
        &[
            "LHLO c",
            "MAIL FROM:<a@example.org>",
            "RCPT TO:<a-infos-en@lists.example.org>",
            "RCPT TO:<Postmaster@lists.example.org>",
            "DATA",
            &first,
            "READ",
            "QUIT",
        ],
    );
    // RFC 5321 4.5.1: postmaster is accepted at RCPT, and LMTP answers each
    // recipient: the post is stored, the postmaster copy queued.
    assert!(replies[4].starts_with("250 2.1.5"), "{replies:?}");
    assert!(replies[6].starts_with("250 2.0.0 stored"), "{replies:?}");
    assert!(replies[7].starts_with("250 2.0.0"), "{replies:?}");
    assert_eq!(tidings.posts(&[]).len(), 1);
    let sent = wait_for("the operator's copy in the outbox", PATIENCE, || {
        outbox_messages(&outbox).into_iter().next()
    });
    let (envelope, bytes) = sent;
    assert_eq!(
        envelope["forward_path"],
        serde_json::json!(["ops@example.net"]),
        "{envelope}"
    );
    assert_eq!(envelope["reverse_path"], "a@example.org", "{envelope}");
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.starts_with("Delivered-To: postmaster@lists.example.org\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Subject: (en) to the list and postmaster"),
        "{text}"
    );

    // Mail that has been through postmaster once is a loop: taken (so the
    // sender stops), kept, never sent. A later message still goes out, so
    // the count below is not read before the outbox had its chance.
    let looped = message(
        "postmaster-2",
        "came round",
        "Delivered-To: postmaster@lists.example.org\\n",
    );
    let third = message("postmaster-3", "after the loop", "");
    for data in [&looped, &third] {
        let replies = converse(
            &daemon,
            "smtp",
            &[
                "EHLO c",
                "MAIL FROM:<>",
                "RCPT TO:<postmaster@lists.example.org>",
                "DATA",
                data,
                "QUIT",
            ],
        );
        assert!(replies[5].starts_with("250 2.0.0"), "{replies:?}");
    }
    let subjects = wait_for("the third message in the outbox", PATIENCE, || {
        let subjects: Vec<String> = outbox_messages(&outbox)
            .iter()
            .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
            .collect();
        subjects
            .iter()
            .any(|text| text.contains("Subject: after the loop"))
            .then_some(subjects)
    });
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(!subjects.iter().any(|text| text.contains("came round")));
    let queue = tidings.ok(&["queue"]);
    let forwards = queue.lines().find(|l| l.starts_with("(forward)")).unwrap();
    assert_eq!(
        forwards.split_whitespace().collect::<Vec<_>>(),
        ["(forward)", "0", "0", "2", "1"],
        "{queue}"
    );
}

/// One transaction on each of COUNT connections at once, half SMTP and half
/// LMTP (asyncio streams, raw protocol), and a kill -9 of the daemon in the
/// middle of them. Every session connects, greets and gives MAIL FROM and
/// RCPT TO; none sends DATA until all have, so every transaction is open at
/// once. Then each sends its message, `<ROUND-N-0@x>` ([`burst_message`]),
/// and logs its id to LOG on its 250, a line flushed at a time. The
/// KILL_AFTER-th 250 read kills PID with SIGKILL on the spot: the state of
/// every session is noted at that moment. Sessions below STALL send only
/// the first part of their message after the 354 and wait there (mid-DATA
/// when the kill falls). Prints one JSON summary: the states at the kill,
/// the 250s read before and after it, and what went wrong before it.
///
/// The daemon's accept queue is short (a backlog of 128), so connecting is
/// gated: at most 100 sessions a listener connected and not yet greeted.
const CONCURRENT: &str = r#"
import asyncio, collections, json, os, resource, signal, sys
host, smtp_port, lmtp_port, pid, log_path, round_ = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
count, kill_after, stall = int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
state = ["connecting"] * count
OPEN = ("mail", "rcpt", "data", "sent")
log = open(log_path, "a")
summary = {"count": count, "kill_after": kill_after, "acked_before_kill": 0, "acked_after_kill": 0,
           "at_kill": None, "failures_before_kill": 0, "failed_before_kill": [], "connect_retries": 0}

def message(mid, n):
    return ("From: a%d@example.org\r\nTo: a-infos-en@lists.example.org\r\n"
            "Subject: (en) burst %s %d 0\r\nMessage-ID: %s\r\n\r\ntext of %s\r\n" % (n, round_, n, mid, mid)).encode()

async def main():
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    killed = asyncio.Event()
    go = asyncio.Event()
    arrived = 0
    gates = {smtp_port: asyncio.Semaphore(100), lmtp_port: asyncio.Semaphore(100)}

    def arrive():
        nonlocal arrived
        arrived += 1
        if arrived == count:
            summary["t_go"] = loop.time() - t0
            go.set()

    def kill():
        summary["at_kill"] = dict(collections.Counter(state))
        summary["open_lmtp"] = sum(1 for n in range(1, count, 2) if state[n] in OPEN)
        summary["t_kill"] = loop.time() - t0
        os.kill(pid, signal.SIGKILL)
        killed.set()

    async def reply(reader):
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("closed")
            if line[3:4] != b"-":
                return int(line[:3]), line.decode().rstrip()

    async def expect(reader, writer, command, code):
        if command:
            writer.write(command)
            await writer.drain()
        got, text = await reply(reader)
        if got != code:
            raise ValueError("%r: %s" % (command, text))

    async def connect(port):
        for attempt in range(100):
            try:
                return await asyncio.open_connection(host, port)
            except OSError:
                # Refused while the accept queue was full: try again, unless
                # the daemon is gone.
                if killed.is_set():
                    raise
                summary["connect_retries"] += 1
                await asyncio.sleep(0.05)
        raise ConnectionError("never connected")

    async def session(n):
        lmtp = n % 2 == 1
        port = lmtp_port if lmtp else smtp_port
        mid = "<%s-%d-0@x>" % (round_, n)
        writer = None
        waiting = True
        try:
            async with gates[port]:
                reader, writer = await connect(port)
                await expect(reader, writer, None, 220)
            state[n] = "greeted"
            await expect(reader, writer, b"LHLO c\r\n" if lmtp else b"EHLO c\r\n", 250)
            await expect(reader, writer, b"MAIL FROM:<a%d@example.org>\r\n" % n, 250)
            state[n] = "mail"
            await expect(reader, writer, b"RCPT TO:<a-infos-en@lists.example.org>\r\n", 250)
            state[n] = "rcpt"
            waiting = False
            arrive()
            await go.wait()
            await expect(reader, writer, b"DATA\r\n", 354)
            state[n] = "data"
            body = message(mid, n)
            if n < stall:
                writer.write(body[:len(body) // 2])
                await writer.drain()
                await killed.wait()
                return
            writer.write(body + b".\r\n")
            await writer.drain()
            state[n] = "sent"
            code, text = await reply(reader)
            if code != 250:
                raise ValueError("end of data: %s" % text)
            state[n] = "acked"
            log.write(mid + "\n")
            log.flush()
            if killed.is_set():
                summary["acked_after_kill"] += 1
            else:
                summary["acked_before_kill"] += 1
                if summary["acked_before_kill"] == kill_after:
                    kill()
            await expect(reader, writer, b"QUIT\r\n", 221)
        except (OSError, ConnectionError, ValueError, asyncio.IncompleteReadError) as error:
            if not killed.is_set():
                summary["failures_before_kill"] += 1
                if len(summary["failed_before_kill"]) < 20:
                    summary["failed_before_kill"].append("%s %s: %s" % (mid, state[n], error))
        finally:
            if waiting:
                arrive()
            if writer is not None:
                writer.close()

    tasks = [asyncio.create_task(session(n)) for n in range(count)]
    finished = asyncio.gather(*tasks)
    # A round that never reached its kill point ends too: the stalled
    # sessions are let go once every other one is done.
    rest = [t for n, t in enumerate(tasks) if n >= stall]
    await asyncio.wait(rest)
    if not killed.is_set():
        killed.set()
    await finished

asyncio.run(asyncio.wait_for(main(), 300))
print(json.dumps(summary), flush=True)
"#;

/// The bytes [`CONCURRENT`] sends as message `id` (`<ROUND-N-I@x>`).
fn burst_message(id: &str) -> Vec<u8> {
    let parts: Vec<&str> = id
        .trim_matches(['<', '>'])
        .trim_end_matches("@x")
        .split('-')
        .collect();
    let (round, n, i) = (parts[0], parts[1], parts[2]);
    format!(
        "From: a{n}@example.org\r\nTo: a-infos-en@lists.example.org\r\n\
         Subject: (en) burst {round} {n} {i}\r\nMessage-ID: {id}\r\n\r\ntext of {id}\r\n"
    )
    .into_bytes()
}

/// Every message the store holds, by Message-ID: its raw bytes.
fn stored_messages(tidings: &Tidings) -> std::collections::HashMap<String, Vec<u8>> {
    let store = tidings::store::open(&tidings.path().join("data/tidings.sqlite3")).unwrap();
    let mut statement = store
        .prepare(
            "SELECT p.message_id, r.bytes FROM posts p JOIN raw_messages r ON r.post_id = p.id",
        )
        .unwrap();
    let rows = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// Asserts that every id of `acked` is stored as [`burst_message`] sent
/// it, and that none of `cut_off` (never sent whole) is stored.
fn assert_stored(tidings: &Tidings, acked: &[String], cut_off: &[String], when: &str) {
    let stored = stored_messages(tidings);
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{when}: {} of {} acknowledged posts lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    for id in acked {
        assert_eq!(
            String::from_utf8_lossy(&stored[id]),
            String::from_utf8_lossy(&burst_message(id)),
            "{when}: {id} stored otherwise"
        );
    }
    let kept: Vec<&String> = cut_off
        .iter()
        .filter(|id| stored.contains_key(*id))
        .collect();
    assert!(kept.is_empty(), "{when}: stored though cut off: {kept:?}");
}

/// Promise 1: kill -9 of the daemon while 5,000 transactions are open at
/// once, half over SMTP and half over LMTP ([`CONCURRENT`]), round after
/// round (10, or `TIDINGS_KILL_ROUNDS`; `TIDINGS_KILL_CONNECTIONS` for
/// another number of sessions a round). Each round's kill falls after
/// another share of its 250s, from 10% to 90%; the second round's falls
/// while two in five sessions are part-way through their message. After
/// each restart every message acknowledged so far is in the store byte for
/// byte as it was sent, and none that was cut off is.
#[test]
fn every_acknowledged_message_survives_sigkill() {
    let rounds = common::env_number("TIDINGS_KILL_ROUNDS", 10);
    let count = common::env_number("TIDINGS_KILL_CONNECTIONS", 5_000);
    assert!(count >= 10, "TIDINGS_KILL_CONNECTIONS is at least 10");
    // The daemon and the client each hold a descriptor a session; the
    // daemon raises its soft limit to the hard one, as this does.
    let limit = tidings::descriptors::raise_limit();
    assert!(
        limit >= count as u64 + 1_000,
        "an open-files limit of {limit} is too low for {count} sessions at once: \
         raise the hard limit (ulimit -Hn) or lower TIDINGS_KILL_CONNECTIONS"
    );
    // Both listeners take every session of a round, all from 127.0.0.1.
    let tidings = Tidings::with_config(|text| {
        let replace = |text: String, from: &str, to: String| {
            assert!(text.contains(from), "lists.toml has no `{from}`");
            text.replacen(from, &to, 1)
        };
        let text = replace(
            text,
            "max_connections = 64\n",
            format!("max_connections = {count}\n"),
        );
        replace(
            text,
            "max_connections_per_ip = 8\n",
            format!("max_connections_per_ip = {count}\n"),
        )
    });
    let log = tidings.path().join("acked.txt");
    let acknowledged = || -> Vec<String> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let started = std::time::Instant::now();
    let mut in_flight = Vec::new();
    let mut cut_off = Vec::new();
    for round in 0..rounds {
        let mut daemon = Daemon::start(&tidings);
        // What the rounds before acknowledged survived their kills.
        assert_stored(
            &tidings,
            &acknowledged(),
            &cut_off,
            &format!("restarted after round {}", round.saturating_sub(1)),
        );
        let (host, smtp) = daemon.address("smtp");
        let (_, lmtp) = daemon.address("lmtp");
        // Round 1 kills while two in five sessions are part-way through DATA.
        let stall = if round == 1 { count * 2 / 5 } else { 0 };
        // Where the kill falls: after 10% to 90% of the 250s the round can
        // give, another share each round (a golden-ratio walk).
        let share = 0.1 + 0.8 * ((round as f64 * 0.618_034 + 0.3) % 1.0);
        let kill_after = (((count - stall) as f64 * share) as usize).max(1);
        let output = Command::new("python3")
            .arg("-c")
            .arg(CONCURRENT)
            .args([
                host.as_str(),
                &smtp.to_string(),
                &lmtp.to_string(),
                &daemon.pid().to_string(),
                log.to_str().unwrap(),
                &format!("r{round}"),
                &count.to_string(),
                &kill_after.to_string(),
                &stall.to_string(),
            ])
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(output.status.success(), "round {round}: the client failed");
        let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(daemon.wait(), None, "round {round}: killed by SIGKILL");
        let at_kill = &summary["at_kill"];
        assert!(
            at_kill.is_object() && summary["failures_before_kill"] == 0,
            "round {round}: the kill point was not reached cleanly: {summary}"
        );
        let state = |name: &str| at_kill[name].as_u64().unwrap_or(0) as usize;
        // Transactions begun (MAIL FROM taken) and not answered when the
        // daemon died.
        let open = state("mail") + state("rcpt") + state("data") + state("sent");
        println!(
            "round {round}: killed at the {kill_after}th 250 of {count} sessions, {:.2} s in \
             (all {count} past RCPT TO at {:.2} s); at the kill {open} transactions open \
             ({} over LMTP): {} part-way through the message, {} awaiting the reply to the \
             final dot; {} more 250s read after it",
            summary["t_kill"].as_f64().unwrap(),
            summary["t_go"].as_f64().unwrap(),
            summary["open_lmtp"],
            state("data"),
            state("sent"),
            summary["acked_after_kill"],
        );
        // Every session was open at once: each not yet answered was inside
        // its transaction when the kill fell.
        assert_eq!(
            (open, state("acked")),
            (count - kill_after, kill_after),
            "round {round}: every session open or answered at the kill: {summary}"
        );
        assert!(
            state("data") >= stall,
            "round {round}: {stall} sessions part-way through DATA: {summary}"
        );
        in_flight.push(open);
        cut_off.extend((0..stall).map(|n| format!("<r{round}-{n}-0@x>")));
    }

    let daemon = Daemon::start(&tidings);
    let acked = acknowledged();
    assert_stored(&tidings, &acked, &cut_off, "after the last restart");
    println!(
        "{} acknowledged over {rounds} rounds of {count} sessions, open at each kill \
         {in_flight:?}; {:.1?} in all",
        acked.len(),
        started.elapsed()
    );
    let busy = in_flight.iter().filter(|&&open| open >= count / 5).count();
    assert!(
        busy * 2 > rounds,
        "{} transactions open at most kills: {in_flight:?}",
        count / 5
    );
    let protocols: std::collections::BTreeSet<&str> = acked
        .iter()
        .map(|id| {
            if id.split('-').nth(1).unwrap().parse::<u32>().unwrap() % 2 == 1 {
                "lmtp"
            } else {
                "smtp"
            }
        })
        .collect();
    assert_eq!(protocols.len(), 2, "both SMTP and LMTP acknowledged posts");
    drop(daemon);
}

#[test]
fn sigterm_exits_cleanly_and_sighup_keeps_a_good_config() {
    let tidings = Tidings::new();
    let mut daemon = Daemon::start(&tidings);
    // A broken file on SIGHUP is reported; the running configuration stays.
    let good = std::fs::read_to_string(tidings.config()).unwrap();
    std::fs::write(
        tidings.config(),
        good.replace("[site]", "[site]\nbogus = 1"),
    )
    .unwrap();
    daemon.signal("HUP");
    wait_until("the reload error in the log", PATIENCE, || {
        std::fs::read_to_string(tidings.path().join("serve.log"))
            .unwrap()
            .contains("configuration not reloaded")
    });
    let sent = send(
        "smtp",
        &daemon,
        serde_json::json!([{"id": "<after-hup@x>", "to": ["a-infos-it@lists.example.org"], "subject": "(it) Ancora qui", "body": "testo\n"}]),
    );
    assert_eq!(sent[0]["ok"], true, "{sent:?}");
    std::fs::write(tidings.config(), &good).unwrap();
    daemon.signal("HUP");
    wait_until("the reload in the log", PATIENCE, || {
        std::fs::read_to_string(tidings.path().join("serve.log"))
            .unwrap()
            .contains("configuration reloaded")
    });

    daemon.signal("TERM");
    assert_eq!(daemon.wait(), Some(0));
    assert!(Path::new(&tidings.path().join("data/tidings.sqlite3")).exists());
}

/// lists.toml delivering to `port` over SMTP, with the English list's digest
/// due as soon as one post is pending.
fn digest_config(port: u16) -> impl FnOnce(String) -> String {
    move |text| {
        let replace = |text: String, from: &str, to: &str| {
            assert!(text.contains(from), "lists.toml has no `{from}`");
            text.replacen(from, to, 1)
        };
        let mut text = replace(text, "transport = \"file\"", "transport = \"smtp\"");
        text = replace(text, "\nport = 25\n", &format!("\nport = {port}\n"));
        text = replace(text, "tls = \"opportunistic\"", "tls = \"none\"");
        replace(
            text,
            "code = \"en\"\n",
            "code = \"en\"\ndigest_size_threshold = 1\n",
        )
    }
}

#[test]
fn a_post_makes_the_daemon_send_a_digest_once_even_across_sigterm() {
    const SUBSCRIBERS: usize = 300;
    let work = tempfile::tempdir().unwrap();
    // A peer that takes 50 ms a message: the fan-out lasts long enough to be cut.
    let peer = Peer::start(&work.path().join("peer"), &["--delay", "0.05"]);
    let tidings = Tidings::with_config(digest_config(peer.port));
    let addresses: Vec<String> = (0..SUBSCRIBERS)
        .map(|i| format!("reader{i:03}@example.net"))
        .collect();
    tidings.subscribe("en", "mime", &addresses);

    let mut daemon = Daemon::start(&tidings);
    let sent = send(
        "smtp",
        &daemon,
        serde_json::json!([{"id": "<digest-me@x>", "to": ["a-infos-en@lists.example.org"], "subject": "(en) General strike called", "body": "Workers walk out at noon.\n"}]),
    );
    assert_eq!(sent[0]["ok"], true, "{sent:?}");
    // The size trigger makes the digest due at the scheduler's next look.
    wait_until("the fan-out to begin", PATIENCE, || {
        !peer.recipients().is_empty()
    });
    daemon.signal("TERM");
    assert_eq!(daemon.wait(), Some(0));
    let at_stop = peer.recipients().len();
    assert!(
        at_stop < SUBSCRIBERS,
        "SIGTERM stopped the fan-out part way ({at_stop})"
    );

    // After a restart the daemon finishes what is left, and issues no new digest.
    let daemon = Daemon::start(&tidings);
    wait_until("every subscriber to have the digest", PATIENCE, || {
        let got: std::collections::HashSet<String> = peer.recipients().into_iter().collect();
        addresses.iter().all(|a| got.contains(a))
    });
    // The scheduler reports what it sent and what still waits. Once its
    // outbox run is over, every message it sent is in the peer's folder (the
    // peer writes each before its 250): a repeat would be there to count.
    wait_until("the metrics to show the outbox drained", PATIENCE, || {
        let metrics = get(&daemon, "/metrics", serde_json::json!({})).2;
        let sent: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("tidings_deliveries_sent_total "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        metrics.contains("\ntidings_outbox_depth 0\n")
            && sent + at_stop as u64 >= SUBSCRIBERS as u64
    });
    let mut received: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for to in peer.recipients() {
        *received.entry(to).or_default() += 1;
    }
    let twice: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "{at_stop} of {SUBSCRIBERS} sent before SIGTERM; {} twice",
        twice.len()
    );
    // A stop finishes and records the messages in flight, so hardly any
    // repeat: at most one per connection (a crash could repeat up to
    // `outbox::WINDOW` per connection, which digests.rs checks).
    assert!(twice.len() <= 4, "sent twice: {twice:?}");
    assert_eq!(received.len(), SUBSCRIBERS);
    let status = tidings.ok(&["status"]);
    let en = status.lines().find(|l| l.starts_with("en ")).unwrap();
    assert!(en.split_whitespace().nth(3) == Some("300"), "{status}");
    assert!(en.ends_with(" 0"), "outbox drained: {status}");
    drop(daemon);
    let db = tidings::store::open(&tidings.path().join("data/tidings.sqlite3")).unwrap();
    assert_eq!(
        tidings::store::digests::of_list(&db, "en").unwrap().len(),
        1,
        "one digest, resumed, not a second one"
    );
}

#[test]
fn a_store_that_cannot_commit_answers_451_and_the_retry_lands() {
    let tidings = Tidings::new();
    let daemon = Daemon::start(&tidings);
    // Another process holds the database's write lock longer than the
    // daemon's busy timeout, until its standard input closes: the commit
    // fails, and the sender must keep the message.
    let database = tidings.path().join("data/tidings.sqlite3");
    let locker = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"#;
    let mut lock = Command::new("python3")
        .arg("-c")
        .arg(locker)
        .arg(&database)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(lock.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let message = serde_json::json!([{"id": "<locked-out@x>", "to": ["a-infos-pl@lists.example.org"], "subject": "(pl) Strajk", "body": "tekst\n"}]);
    let refused = send("smtp", &daemon, message.clone());
    assert_eq!(refused[0]["code"], 451, "{refused:?}");
    assert!(
        refused[0]["error"].as_str().unwrap().starts_with("4.3.0"),
        "{refused:?}"
    );
    drop(lock.stdin.take());
    assert!(lock.wait().unwrap().success(), "the locker failed");
    let accepted = send("smtp", &daemon, message);
    assert_eq!(accepted[0]["ok"], true, "{accepted:?}");
    let posts = tidings.posts(&[]);
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["message_id"], "<locked-out@x>");
}

/// The lines of a log written with `--log-format json`: each must be one
/// JSON object with a level and its fields, as tracing-subscriber's json
/// format writes them.
fn json_log(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| {
            let object: Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not one JSON object: {line}: {error}"));
            assert!(
                object["level"].is_string() && object["fields"].is_object(),
                "no level or fields: {line}"
            );
            object
        })
        .collect()
}

#[test]
fn the_daemon_logs_json_lines_and_tidings_log_sets_what_it_logs() {
    // The log of a daemon run under TIDINGS_LOG=`filter`, taking one mail
    // to -request and stopped by SIGTERM.
    let log_under = |filter: &str| {
        let tidings = Tidings::new();
        let environment = format!("TIDINGS_LOG={filter}");
        let mut daemon = Daemon::start_under(
            &tidings,
            "127.0.0.1:0",
            &["--log-format", "json"],
            &["env", &environment],
        );
        let sent = send(
            "smtp",
            &daemon,
            serde_json::json!([{"id": "<help-1@example.org>", "to": ["a-infos-en-request@lists.example.org"], "subject": "help", "body": "help\n"}]),
        );
        assert_eq!(sent[0]["ok"], true, "{sent:?}");
        daemon.signal("TERM");
        assert_eq!(daemon.wait(), Some(0));
        json_log(&std::fs::read_to_string(tidings.path().join("serve.log")).unwrap())
    };
    let said = |lines: &[Value], level: &str, message: &str| {
        lines
            .iter()
            .any(|line| line["level"] == level && line["fields"]["message"] == message)
    };

    let debug = log_under("debug");
    // A subscriber's address is logged at debug only.
    assert!(
        debug.iter().any(|line| line["level"] == "DEBUG"
            && line["fields"]["message"] == "service mail from"
            && line["fields"]["sender"] == "ana@example.org"),
        "{debug:#?}"
    );
    assert!(said(&debug, "INFO", "service mail taken"), "{debug:#?}");
    assert!(said(&debug, "INFO", "stopped"), "{debug:#?}");

    let errors_only = log_under("error");
    assert!(
        errors_only.iter().all(|line| line["level"] == "ERROR"),
        "{errors_only:#?}"
    );
}

/// What a mail client got for each message it sent.
struct Submitted {
    replies: std::sync::Mutex<Vec<String>>,
    answered: std::sync::atomic::AtomicUsize,
    stop: std::sync::atomic::AtomicBool,
}

/// Sends posts to a-infos-en@ over one `protocol` ("lmtp" or "smtp")
/// session at `address`, one after another until `submitted.stop`, and
/// records the final reply to each.
fn submit_until_stopped(protocol: &str, address: (String, u16), submitted: &Submitted) {
    use std::io::{BufRead, Write};
    use std::sync::atomic::Ordering;
    let stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut reply = || {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "connection closed"
            );
            text.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return text;
            }
        }
    };
    assert!(reply().starts_with("220"));
    let hello = if protocol == "lmtp" { "LHLO" } else { "EHLO" };
    writer
        .write_all(format!("{hello} submitter.example.org\r\n").as_bytes())
        .unwrap();
    assert!(reply().starts_with("250"));
    let mut sequence = 0;
    while !submitted.stop.load(Ordering::SeqCst) {
        sequence += 1;
        let id = format!("<{protocol}-{sequence}@submitter.example.org>");
        for command in [
            "MAIL FROM:<ana@example.org>\r\n",
            "RCPT TO:<a-infos-en@lists.example.org>\r\n",
        ] {
            writer.write_all(command.as_bytes()).unwrap();
            let said = reply();
            assert!(said.starts_with("250"), "{command}: {said}");
        }
        writer.write_all(b"DATA\r\n").unwrap();
        let said = reply();
        assert!(said.starts_with("354"), "DATA: {said}");
        let message = format!(
            "From: Ana <ana@example.org>\r\nTo: a-infos-en@lists.example.org\r\n\
             Subject: (en) Strike day {sequence} by {protocol}\r\nMessage-ID: {id}\r\n\
             Date: Mon, 1 Jun 2026 10:00:00 +0000\r\n\r\n\
             The dockers of the port stopped work for the {sequence}th day.\r\n.\r\n"
        );
        writer.write_all(message.as_bytes()).unwrap();
        // LMTP answers once per recipient, SMTP once: one recipient here.
        let said = reply();
        submitted
            .replies
            .lock()
            .unwrap()
            .push(format!("{id} {}", said.trim()));
        submitted.answered.fetch_add(1, Ordering::SeqCst);
    }
    let _ = writer.write_all(b"QUIT\r\n");
}

/// The posts `db` holds, whatever their state.
fn count_posts(db: &std::path::Path) -> usize {
    let db = tidings::store::open(db).unwrap();
    let count: i64 = db
        .query_row("SELECT count(*) FROM posts", [], |row| row.get(0))
        .unwrap();
    usize::try_from(count).unwrap()
}

#[test]
fn backup_while_the_daemon_takes_mail_is_whole_and_defers_none() {
    use std::sync::atomic::Ordering;
    let tidings = Tidings::new();
    // A store of some size, so a copy takes a while.
    let (mbox, _) = common::generate(
        tidings.path(),
        "archive.mbox",
        "mbox",
        &["--n", "2000", "--seed", "15"],
    );
    tidings.ok(&["import", mbox.to_str().unwrap()]);
    let live = tidings.path().join("data/tidings.sqlite3");
    let imported = count_posts(&live);
    let daemon = Daemon::start(&tidings);
    let submitted = Submitted {
        replies: std::sync::Mutex::new(Vec::new()),
        answered: std::sync::atomic::AtomicUsize::new(0),
        stop: std::sync::atomic::AtomicBool::new(false),
    };
    /// Stops the submitters when dropped, so that a failed assertion
    /// ends the test instead of waiting on them forever.
    struct StopWhenDropped<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopWhenDropped<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let overlapped = std::thread::scope(|scope| {
        let _stop = StopWhenDropped(&submitted.stop);
        for protocol in ["lmtp", "smtp"] {
            let address = daemon.address(protocol);
            let submitted = &submitted;
            scope.spawn(move || submit_until_stopped(protocol, address, submitted));
        }
        wait_until("the first submissions answered", PATIENCE, || {
            submitted.answered.load(Ordering::SeqCst) >= 10
        });
        // Backups until one has run while submissions were answered (the
        // first, as a rule): each a whole store, holding every post
        // committed before it started and none not committed when it ended.
        let mut overlapped = false;
        for attempt in 0..10 {
            let before = count_posts(&live);
            let answered_before = submitted.answered.load(Ordering::SeqCst);
            let copy = tidings.path().join(format!("backup-{attempt}.sqlite3"));
            tidings.ok(&["backup", copy.to_str().unwrap()]);
            let answered_during = submitted.answered.load(Ordering::SeqCst) - answered_before;
            let after = count_posts(&live);
            let db = tidings::store::open(&copy).unwrap();
            let integrity: String = db
                .query_row("PRAGMA integrity_check", [], |row| row.get(0))
                .unwrap();
            assert_eq!(integrity, "ok", "{}", copy.display());
            let copied = count_posts(&copy);
            assert!(
                (before..=after).contains(&copied),
                "the copy holds {copied} posts, the store {before} before and {after} after"
            );
            if answered_during > 0 {
                overlapped = true;
                break;
            }
        }
        overlapped
    });
    assert!(
        overlapped,
        "no submission was answered while any of 10 backups ran"
    );
    let replies = submitted.replies.into_inner().unwrap();
    let refused: Vec<&String> = replies
        .iter()
        .filter(|reply| !reply.split_whitespace().nth(1).unwrap().starts_with("250"))
        .collect();
    assert!(refused.is_empty(), "not taken: {refused:#?}");
    // Every post answered 250 is in the store, once.
    assert_eq!(count_posts(&live), imported + replies.len());
}
