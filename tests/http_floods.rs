//! HTTP can never starve mail intake (issue 13): `tidings serve` on
//! loopback under idle and slow HTTP clients, with a real SMTP and LMTP
//! client (smtplib) and raw sockets for the attackers.
//!
//! Deadlines here only bound a failing test; nothing is timed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::daemon::{send, Daemon};
use common::{wait_until, Tidings, PATIENCE};

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

/// Past `http_max_connections`, each new client is served at once: the
/// connection that has waited longest for a request makes room, whether
/// it never sent a byte or sends its head a piece at a time. The cap is
/// never passed, and those closed for room read end of file.
#[test]
fn past_the_cap_the_connection_waiting_longest_makes_room_for_each_new_client() {
    const CAP: usize = 50;
    // Deadlines past the test's life: only making room closes a client.
    let tidings = tidings(CAP as u32, 600, 600);
    let daemon = Daemon::start(&tidings);
    let mut idle = idle_connections(&daemon, 200);
    // Half of them start a request head and never finish it.
    for stream in idle.iter_mut().step_by(2) {
        stream
            .write_all(b"GET /feeds/en.atom HTTP/1.1\r\nHo")
            .unwrap();
    }
    // All 200 are accepted: the first 50 held, each later one closing the
    // longest waiting, so that the last CAP are held and the others read
    // end of file.
    for stream in &idle {
        stream.set_nonblocking(true).unwrap();
    }
    let closed = |idle: &mut [TcpStream]| {
        idle.iter_mut()
            .filter(|stream| {
                let mut byte = [0u8; 1];
                match (&**stream).read(&mut byte) {
                    Ok(0) => true,
                    Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
                    Ok(_) => panic!("an idle client was answered"),
                }
            })
            .count()
    };
    wait_until("all but the last CAP closed for room", PATIENCE, || {
        closed(&mut idle) >= 200 - CAP
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(closed(&mut idle), 200 - CAP, "only to make room");
    let held = sockets_of(daemon.pid());
    assert!(held <= CAP + 8, "{held} sockets held, cap {CAP}");

    // A new client is answered at once (were it queued behind the idle
    // ones, it would wait 600 s for their deadlines) and mail is taken.
    let (status, body) = healthz(&daemon);
    assert_eq!(status, 200, "{body}");
    let (capacity, peak) = http_capacity_and_peak(&body);
    assert_eq!(capacity, CAP, "{body}");
    assert_eq!(peak, CAP, "the cap was reached and never passed: {body}");
    mail_is_taken(&tidings, &daemon);
}

/// A connection with a request in hand (its head read, its body coming)
/// is never closed for room: when every one has a request, a new client
/// waits for a slot, and each request gets its whole answer.
#[test]
fn connections_with_a_request_in_hand_are_never_closed_for_room() {
    const CAP: usize = 4;
    let tidings = tidings(CAP as u32, 600, 600);
    let daemon = Daemon::start(&tidings);
    let (host, port) = daemon.address("http");
    let form = b"address=patient%40example.net&mode=mime";
    let mut uploads: Vec<TcpStream> = (0..CAP)
        .map(|_| {
            let mut stream = TcpStream::connect((host.as_str(), port)).expect("connect");
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            // Expect: 100-continue makes hyper say when the handler reads
            // the body: from then on the request is in hand.
            let head = format!(
                "POST /lists/en/subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
                form.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with("HTTP/1.1 100 "), "{line:?}");
            reader.read_line(&mut line).unwrap();
            stream.write_all(&form[..10]).unwrap();
            stream
        })
        .collect();
    // A new client comes: there is no room to make.
    let waiting = {
        let (host, port) = (host.clone(), port);
        std::thread::spawn(move || {
            let mut stream = TcpStream::connect((host.as_str(), port)).expect("connect");
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).unwrap();
            String::from_utf8_lossy(&answer).into_owned()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(!waiting.is_finished(), "a slot was taken from a request");
    for stream in &mut uploads {
        stream.write_all(&form[10..]).unwrap();
    }
    for stream in &mut uploads {
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("the whole answer");
        let answer = String::from_utf8_lossy(&answer);
        // 200: the whole form was read (a form cut short is a 4xx, a
        // connection closed for room no answer at all).
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    }
    let answer = waiting.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
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
