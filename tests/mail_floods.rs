//! Floods of the mail listeners (issue 13, promise 5): `tidings serve` on
//! loopback under a thousand SMTP connections at once and clients that
//! send their commands a byte now and then, holding their slots, with a
//! real SMTP and LMTP client (smtplib) beside them.
//!
//! Deadlines here only bound a failing test; nothing is timed.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::daemon::{get, send, Daemon};
use common::{Tidings, PATIENCE};

/// How long a flooding client tries to connect: the kernel's queue holds
/// 128 (the listen backlog), and a handshake it drops is retried after a
/// second, then 3 and 7.
const CONNECT: Duration = Duration::from_secs(15);

/// What a connection opened to `address` was told first; `None` when the
/// kernel never completed its handshake, or it was reset.
fn greeting(address: SocketAddr) -> Option<(TcpStream, String)> {
    let stream = TcpStream::connect_timeout(&address, CONNECT).ok()?;
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut line = String::new();
    BufReader::new(stream.try_clone().unwrap())
        .read_line(&mut line)
        .ok()?;
    Some((stream, line))
}

/// Posts one message by `protocol`; it must be taken.
fn taken(daemon: &Daemon, protocol: &str, id: &str) {
    let answers = send(
        protocol,
        daemon,
        serde_json::json!([{"id": id, "to": ["a-infos-en@lists.example.org"],
                            "subject": format!("(en) Taken by {protocol}"), "body": "Still here.\n"}]),
    );
    assert!(answers.iter().all(|a| a["ok"] == true), "{answers:?}");
}

/// The daemon's peak resident memory, in kB.
fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").parse().ok())
        .expect("VmHWM")
}

#[test]
fn a_thousand_smtp_connections_and_slow_clients_holding_their_slots_never_stop_lmtp_or_http() {
    let tidings = Tidings::new();
    let daemon = Daemon::start(&tidings);
    let (host, port) = daemon.address("smtp");
    let smtp: SocketAddr = format!("{host}:{port}").parse().unwrap();

    // A thousand at once, all from one address: the per-address limit
    // (8) serves some, the rest are told 421 and closed, or past the 64
    // refusals being written at once closed unanswered. Handshakes the
    // kernel's listen queue (128) dropped and the client gave up on never
    // reached the daemon, and are counted apart.
    let attempts: Vec<_> = (0..1_000)
        .map(|_| std::thread::spawn(move || greeting(smtp)))
        .collect();
    let mut held = Vec::new();
    let (mut served, mut refused, mut closed, mut dropped) = (0, 0, 0, 0);
    for attempt in attempts {
        let Some((stream, line)) = attempt.join().unwrap() else {
            dropped += 1;
            continue;
        };
        if line.starts_with("220 ") {
            served += 1;
            held.push(stream);
        } else if line.is_empty() {
            closed += 1;
        } else {
            assert!(line.starts_with("421 "), "{line:?}");
            refused += 1;
        }
    }
    assert_eq!(served + refused + closed + dropped, 1_000);
    assert!((1..=8).contains(&served), "{served} served");
    assert!(
        refused > 0,
        "{refused} told 421, {closed} closed, {dropped} never connected"
    );

    // Those served send their commands a byte at a time and hold their
    // slots: LMTP takes a post, /healthz answers, and a new SMTP client
    // is greeted (told to come back) rather than left waiting.
    for stream in &mut held {
        stream.write_all(b"E").unwrap();
    }
    taken(&daemon, "lmtp", "<flood-lmtp@example.org>");
    let (status, _, body) = get(&daemon, "/healthz", serde_json::json!({}));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\nsmtp 127.0.0.1:"), "{body}");
    let (_, line) = greeting(smtp).expect("a new client is answered");
    assert!(line.starts_with("421 "), "{line:?}");
    for stream in &mut held {
        stream.write_all(b"H").unwrap();
    }

    // They leave: SMTP takes a post again. Memory stayed bounded.
    drop(held);
    taken(&daemon, "smtp", "<flood-smtp@example.org>");
    let titles: Vec<String> = tidings
        .posts(&[])
        .iter()
        .map(|post| post["title"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(titles, ["Taken by lmtp", "Taken by smtp"]);
    let peak = peak_memory(daemon.pid());
    assert!(peak < 200 * 1024, "peak {peak} kB");
}

/// LMTP's clients are the MTA's delivery agents, all from one address:
/// past `max_connections_per_ip` (8) the LMTP listener greets each of
/// Postfix's 20 (its default concurrency), while SMTP tells the ninth
/// client from one address 421.
#[test]
fn lmtp_serves_the_mta_past_the_per_address_limit_and_smtp_does_not() {
    let tidings = Tidings::new();
    let daemon = Daemon::start(&tidings);
    let address = |name| -> SocketAddr {
        let (host, port) = daemon.address(name);
        format!("{host}:{port}").parse().unwrap()
    };
    let lmtp: Vec<_> = (0..20)
        .map(|_| greeting(address("lmtp")).expect("connected"))
        .collect();
    let told: Vec<&str> = lmtp.iter().map(|(_, line)| line.as_str()).collect();
    assert!(told.iter().all(|line| line.starts_with("220 ")), "{told:?}");
    let smtp: Vec<_> = (0..8)
        .map(|_| greeting(address("smtp")).expect("connected"))
        .collect();
    assert!(smtp.iter().all(|(_, line)| line.starts_with("220 ")));
    let (_, ninth) = greeting(address("smtp")).expect("connected");
    assert!(ninth.starts_with("421 "), "{ninth:?}");
    drop((lmtp, smtp));
}
