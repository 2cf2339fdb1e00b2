//! HTTP can never starve mail intake (issue 13): `tidings serve` on
//! loopback under idle and slow HTTP clients, with a real SMTP and LMTP
//! client (smtplib) and raw sockets for the attackers.
//!
//! Deadlines here only bound a failing test; nothing is timed.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::daemon::{send, Daemon};
use common::{wait_for, Tidings, PATIENCE};

/// How long an idle client tries to connect: the kernel's queue holds
/// 128 (the listen backlog), and a handshake it drops is retried after a
/// second, then 3 and 7.
const CONNECT: Duration = Duration::from_secs(10);

/// The shipped configuration with small mail and HTTP limits and short
/// HTTP deadlines; `http_max_connections` as given.
fn tidings(http_max_connections: u32, header: u32, idle: u32) -> Tidings {
    Tidings::with_config(|text| {
        text.replace("max_connections = 64", "max_connections = 4")
            .replace(
                "http_max_connections = 1024",
                &format!("http_max_connections = {http_max_connections}"),
            )
            .replace(
                "http_header_timeout_secs = 30",
                &format!("http_header_timeout_secs = {header}"),
            )
            .replace(
                "http_idle_timeout_secs = 15",
                &format!("http_idle_timeout_secs = {idle}"),
            )
    })
}

/// Up to `count` connections to the daemon's HTTP listener that send
/// nothing, opened at once: those the daemon accepted or its kernel queue
/// took (the others' handshakes are dropped, and time out).
fn idle_connections(daemon: &Daemon, count: usize) -> Vec<TcpStream> {
    let (host, port) = daemon.address("http");
    let address: SocketAddr = format!("{host}:{port}").parse().unwrap();
    let attempts: Vec<_> = (0..count)
        .map(|_| {
            std::thread::spawn(move || {
                let stream = TcpStream::connect_timeout(&address, CONNECT).ok()?;
                stream.set_read_timeout(Some(PATIENCE)).unwrap();
                Some(stream)
            })
        })
        .collect();
    attempts
        .into_iter()
        .filter_map(|attempt| attempt.join().unwrap())
        .collect()
}

/// GET /healthz on a connection of its own; status and body. It may wait
/// in the listener's queue behind idle clients until their deadline.
fn healthz(daemon: &Daemon) -> (u16, String) {
    let (host, port) = daemon.address("http");
    let mut stream = TcpStream::connect((host.as_str(), port)).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("/healthz answers within PATIENCE");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// From `/healthz`'s HTTP line: (connections it may hold, peak held).
fn http_capacity_and_peak(body: &str) -> (usize, usize) {
    let line = body
        .lines()
        .find(|line| line.starts_with("http "))
        .unwrap_or_else(|| panic!("no http line in {body:?}"));
    let number_after = |marker: &str| -> usize {
        let rest = &line[line.find(marker).expect(marker) + marker.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (number_after(" of "), number_after("(peak "))
}

/// The sockets open in process `pid` (its listeners among them).
fn sockets_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the daemon's descriptors")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Posts one message by SMTP and one by LMTP; both must be taken.
fn mail_is_taken(tidings: &Tidings, daemon: &Daemon) {
    for (protocol, id, subject) in [
        ("smtp", "<flood-smtp@example.org>", "(en) Taken by SMTP"),
        ("lmtp", "<flood-lmtp@example.org>", "(en) Taken by LMTP"),
    ] {
        let answers = send(
            protocol,
            daemon,
            serde_json::json!([{"id": id, "to": ["a-infos-en@lists.example.org"], "subject": subject, "body": "Still here.\n"}]),
        );
        assert!(answers.iter().all(|a| a["ok"] == true), "{answers:?}");
    }
    let titles: Vec<String> = tidings
        .posts(&[])
        .iter()
        .map(|post| post["title"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(titles, ["Taken by SMTP", "Taken by LMTP"]);
}

/// More idle HTTP sockets than the daemon may open descriptors: without
/// the descriptor budget its accepts fail with "Too many open files" and
/// SMTP and LMTP with them.
#[test]
fn idle_http_connections_past_the_open_files_limit_never_starve_mail_intake() {
    const LIMIT: u32 = 256;
    // No cap of its own: only the descriptor budget holds HTTP back. The
    // deadlines outlast the test, so no idle client is closed to make room.
    let tidings = tidings(100_000, 600, 600);
    let nofile = format!("--nofile={LIMIT}:{LIMIT}");
    let daemon = Daemon::start_under(&tidings, "127.0.0.1:0", &[], &["prlimit", &nofile]);
    let idle = idle_connections(&daemon, 400);

    mail_is_taken(&tidings, &daemon);
    assert!(
        sockets_of(daemon.pid()) < LIMIT as usize,
        "descriptors are left"
    );

    // The idle clients leave; those held are closed, those queued are
    // accepted and closed in turn, and /healthz, queued behind them, answers.
    drop(idle);
    let (status, body) = healthz(&daemon);
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ok\nstore ok\n"), "{body}");
    assert!(body.contains("\nlmtp 127.0.0.1:"), "{body}");
    assert!(body.contains("\nsmtp 127.0.0.1:"), "{body}");
    assert!(
        body.lines()
            .filter(|line| line.starts_with("lmtp ") || line.starts_with("smtp "))
            .all(|line| line.ends_with(" listening")),
        "{body}"
    );
    let (capacity, peak) = http_capacity_and_peak(&body);
    // What the limit leaves after mail's reserve (see descriptors::Budget).
    // 256 - 80 fixed - 150 for mail and deliveries - 1: 12 connections of 2.
    assert_eq!(capacity, 12, "{body}");
    assert!(peak <= capacity, "{body}");
}

/// Past `http_max_connections`, clients wait in the kernel's queue; idle
/// ones are closed after the idle deadline, and the waiting ones are then
/// served in their turn.
#[test]
fn http_connections_past_the_cap_wait_and_idle_ones_are_closed() {
    const CAP: usize = 50;
    let tidings = tidings(CAP as u32, 5, 1);
    let daemon = Daemon::start(&tidings);
    let mut idle = idle_connections(&daemon, 200);
    // The daemon holds the cap and no more: its listeners (three) and a
    // few descriptors of the runtime and logging are sockets too.
    wait_for("the daemon to take the first connections", PATIENCE, || {
        (sockets_of(daemon.pid()) >= CAP).then_some(())
    });
    let held = sockets_of(daemon.pid());
    assert!(held <= CAP + 8, "{held} sockets held, cap {CAP}");

    // Every idle client is closed by the daemon: read gives end of file.
    for stream in &mut idle {
        let mut byte = [0u8; 1];
        let read = stream.read(&mut byte);
        assert!(
            matches!(read, Ok(0))
                || read.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "an idle connection was closed"
        );
    }
    let (status, body) = healthz(&daemon);
    assert_eq!(status, 200, "{body}");
    let (capacity, peak) = http_capacity_and_peak(&body);
    assert_eq!(capacity, CAP, "{body}");
    assert_eq!(peak, CAP, "the cap was reached and never passed: {body}");
    mail_is_taken(&tidings, &daemon);
}

/// A client sending its request head a byte a second keeps the connection
/// from going idle, and is dropped at the header deadline instead.
#[test]
fn a_client_sending_its_head_a_byte_a_second_is_dropped_after_the_header_timeout() {
    let tidings = tidings(50, 3, 2);
    let daemon = Daemon::start(&tidings);
    let (host, port) = daemon.address("http");
    let mut stream = TcpStream::connect((host.as_str(), port)).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reader = stream.try_clone().unwrap();
    let answered = std::thread::spawn(move || {
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer);
        answer
    });
    // 45 bytes: 45 seconds were the header deadline not kept.
    let head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
    let mut sent = 0;
    for byte in head {
        if answered.is_finished() || stream.write_all(&[*byte]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    let answer = answered.join().unwrap();
    assert!(
        sent < head.len(),
        "the whole head went through a byte a second"
    );
    assert!(
        !String::from_utf8_lossy(&answer).contains(" 200 "),
        "{answer:?}"
    );
    // The daemon still serves a client that sends its head at once.
    assert_eq!(healthz(&daemon).0, 200);
}
