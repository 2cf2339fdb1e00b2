//! Mail through the real Postfix into tidings, beside the same Postfix
//! delivering to its own discard transport. Run on a release build, as
//! root (Postfix makes its queue as root), with Debian's postfix:
//!
//! ```text
//! cargo bench --bench postfix
//! ```
//!
//! Two private Postfix instances (tests/common/postfix.rs: each its own
//! configuration, queue and log, on a loopback port) are set up from
//! docs/postfix.md's LMTP section; one routes the list domain to `tidings
//! serve` over LMTP, the other to `discard:`. Postfix's smtp-source submits
//! 10,000 messages (`TIDINGS_BENCH_MESSAGES` sets another number) of 2 KB
//! over 8 sessions to each in turn, three rounds, and a round ends when
//! Postfix has logged every message delivered (`status=sent`): for tidings
//! that is after its LMTP 250, given once the post is committed to the
//! store. Prints each round and the medians of both, and their ratio.
//!
//! A third instance delivers over LMTP to Postfix's own `smtp-sink -L`,
//! which answers every message at once and keeps nothing: what Postfix
//! itself takes to deliver over LMTP on this machine, the ceiling for any
//! LMTP server beside it. Each round also prints the CPU the whole machine
//! spent per message (from /proc/stat) and, for tidings, its own share
//! (from /proc/PID/stat), since on two cores Postfix and the server it
//! delivers to share them.

// The tests' helpers (a private Postfix, the daemon), of which this uses a few.
#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::postfix::{doc_block, free_port, Postfix};
use common::Tidings;

const ROUNDS: usize = 3;
const SESSIONS: &str = "8";
const SIZE: &str = "2000";
const DOMAIN: &str = "lists.example.org";

fn main() {
    let messages: usize = std::env::var("TIDINGS_BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    // Open posting without a rate limit: every message is published, as a
    // busy list's are (feeds and pages follow in the background).
    let tidings = Tidings::with_config(|text| {
        assert!(
            text.contains("posting = \"open\""),
            "the shipped lists.toml posts openly"
        );
        text.replacen("max_posts_per_hour = 30", "max_posts_per_hour = 0", 1)
    });
    let daemon = Daemon::start(&tidings);
    let (host, port) = daemon.address("lmtp");
    let mut into_tidings = instance(&format!("lmtp:inet:{host}:{port}"));
    let mut into_discard = instance("discard:");
    let sink = Sink::start();
    let mut into_sink = instance(&format!("lmtp:inet:127.0.0.1:{}", sink.port));
    into_tidings.start();
    into_discard.start();
    into_sink.start();

    let mut tidings_rates = Vec::new();
    let mut discard_rates = Vec::new();
    let mut sink_rates = Vec::new();
    for round in 1..=ROUNDS {
        let discard = deliver(&into_discard, messages, round, None);
        let sunk = deliver(&into_sink, messages, round, None);
        let through = deliver(&into_tidings, messages, round, Some(daemon.pid()));
        println!(
            "round {round}: discard {}; LMTP to smtp-sink {}; LMTP to tidings {} \
             (deferred so far: {}, {} and {})",
            discard.describe(messages),
            sunk.describe(messages),
            through.describe(messages),
            deferred(&into_discard),
            deferred(&into_sink),
            deferred(&into_tidings)
        );
        discard_rates.push(discard.rate(messages));
        sink_rates.push(sunk.rate(messages));
        tidings_rates.push(through.rate(messages));
    }
    for (name, postfix) in [
        ("discard", &into_discard),
        ("smtp-sink", &into_sink),
        ("tidings", &into_tidings),
    ] {
        println!("{name}: {}", delays(postfix));
    }
    let posts = tidings.posts(&[]).len();
    assert_eq!(posts, messages * ROUNDS, "every message is in the store");
    let median = |rates: &mut Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let (discard, sunk, through) = (
        median(&mut discard_rates),
        median(&mut sink_rates),
        median(&mut tidings_rates),
    );
    println!(
        "{messages} messages x {ROUNDS} rounds, medians: Postfix to discard {discard:.0}/s; \
         over LMTP to smtp-sink {sunk:.0}/s ({:.0}% of discard); \
         over LMTP to tidings {through:.0}/s ({:.0}% of discard, {:.0}% of smtp-sink)",
        100.0 * sunk / discard,
        100.0 * through / discard,
        100.0 * through / sunk
    );
}

/// Postfix's `smtp-sink` speaking LMTP on a free loopback port.
struct Sink {
    child: Child,
    port: u16,
}

impl Sink {
    fn start() -> Sink {
        let port = free_port();
        let user =
            String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
        let child = Command::new("/usr/sbin/smtp-sink")
            .args([
                "-L",
                "-u",
                user.trim(),
                &format!("127.0.0.1:{port}"),
                "1024",
            ])
            .spawn()
            .expect("smtp-sink (Debian's postfix package)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "smtp-sink did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sink { child, port }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One round: how long it took, the CPU the machine spent in it, and the
/// share of it the process watched (tidings) spent.
struct Round {
    elapsed: Duration,
    machine_cpu: Duration,
    process_cpu: Option<Duration>,
}

impl Round {
    fn rate(&self, messages: usize) -> f64 {
        messages as f64 / self.elapsed.as_secs_f64()
    }

    fn describe(&self, messages: usize) -> String {
        let per_message = |cpu: Duration| cpu.as_secs_f64() * 1e3 / messages as f64;
        let mut text = format!(
            "{:.0}/s, {:.2} ms of CPU a message",
            self.rate(messages),
            per_message(self.machine_cpu)
        );
        if let Some(cpu) = self.process_cpu {
            text += &format!(" ({:.2} ms of it tidings')", per_message(cpu));
        }
        text
    }
}

/// Clock ticks a second, as /proc counts them (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// CPU time every core has spent busy since boot (/proc/stat's first line:
/// all but idle and iowait).
fn machine_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse().unwrap())
        .collect();
    let busy: u64 = fields
        .iter()
        .enumerate()
        .filter(|(index, _)| ![3, 4].contains(index))
        .map(|(_, ticks)| ticks)
        .sum();
    Duration::from_secs_f64(busy as f64 / TICKS)
}

/// CPU time a process has spent, user and system (/proc/PID/stat).
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15, the 12th and 13th after it.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / TICKS)
}

/// A Postfix set up as docs/postfix.md says, the list domain routed to
/// `transport`.
fn instance(transport: &str) -> Postfix {
    const SECTION: &str = "LMTP to the daemon";
    let mut postfix = Postfix::new(free_port(), free_port());
    let config_dir = format!("{}/", postfix.config_dir().display());
    let main_cf = doc_block(SECTION, "`/etc/postfix/main.cf`:");
    postfix.main_cf(&main_cf.replace("/etc/postfix/", &config_dir));
    // smtpd processes enough for smtp-source's sessions; the LMTP
    // concurrency is the doc's.
    postfix.main_cf("default_process_limit = 100");
    postfix.map("transport", &format!("{DOMAIN}   {transport}\n"));
    postfix.map("virtual", &doc_block(SECTION, "`/etc/postfix/virtual`:"));
    postfix
}

/// Submits `messages` with smtp-source and waits for Postfix to log each
/// delivered: the time from the first submission to the last delivery,
/// and the CPU spent meanwhile (by `watched` too, if given).
fn deliver(postfix: &Postfix, messages: usize, round: usize, watched: Option<u32>) -> Round {
    let mut deliveries = Deliveries::of(postfix);
    let sent_before = deliveries.count();
    let (machine_before, process_before) = (machine_cpu(), watched.map(process_cpu));
    let started = Instant::now();
    let submitted = Command::new("/usr/sbin/smtp-source")
        .args(["-s", SESSIONS, "-l", SIZE, "-m", &messages.to_string()])
        .args([
            "-f",
            "bench@example.org",
            "-t",
            &format!("a-infos-en@{DOMAIN}"),
        ])
        .args(["-S", &format!("(en) Benchmark round {round}")])
        .arg(format!("127.0.0.1:{}", postfix.port))
        .status()
        .expect("smtp-source (Debian's postfix package)");
    assert!(submitted.success(), "smtp-source failed");
    let deadline = Instant::now() + Duration::from_secs(600);
    while deliveries.count() < sent_before + messages {
        assert!(
            Instant::now() < deadline,
            "Postfix did not deliver them all"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Round {
        elapsed: started.elapsed(),
        machine_cpu: machine_cpu() - machine_before,
        process_cpu: watched
            .zip(process_before)
            .map(|(pid, before)| process_cpu(pid) - before),
    }
}

/// Where the time of Postfix's deliveries to the list domain went: the
/// medians of the four parts of each logged `delays=a/b/c/d` (before the
/// queue manager, in it, connection setup, transmission; seconds), and
/// how many deliveries used a connection cached from an earlier one
/// (`conn_use` over 1).
fn delays(postfix: &Postfix) -> String {
    let log = postfix.log();
    let sent: Vec<&str> = log.lines().filter(|line| is_delivery(line)).collect();
    let mut parts: [Vec<f64>; 4] = Default::default();
    for line in &sent {
        let Some(field) = line.split("delays=").nth(1) else {
            continue;
        };
        let values = field.split(',').next().unwrap_or("").split('/');
        for (part, value) in parts.iter_mut().zip(values) {
            part.push(value.parse().unwrap_or(0.0));
        }
    }
    let medians: Vec<String> = parts
        .iter_mut()
        .map(|part| {
            part.sort_by(f64::total_cmp);
            format!("{:.3}", part.get(part.len() / 2).copied().unwrap_or(0.0))
        })
        .collect();
    let conn_use = |line: &&str| -> u32 {
        let field = line.split("conn_use=").nth(1).unwrap_or("1");
        field.split(',').next().unwrap_or("1").parse().unwrap_or(1)
    };
    let cached = sent.iter().filter(|line| conn_use(line) > 1).count();
    format!(
        "{} deliveries, median delays before/in queue manager/connection/transmission {} s; \
         {cached} over a cached connection",
        sent.len(),
        medians.join("/")
    )
}

/// Deliveries Postfix has logged deferred (tried again later).
fn deferred(postfix: &Postfix) -> usize {
    postfix
        .log()
        .lines()
        .filter(|line| line.contains("status=deferred"))
        .count()
}

/// Whether a line of Postfix's log is a delivery to the list domain.
fn is_delivery(line: &str) -> bool {
    line.contains("status=sent") && line.contains(&format!("@{DOMAIN}>"))
}

/// Counts the deliveries a Postfix logs, reading only what it has logged
/// since the last look: polled every 50 ms, reading the whole log (tens of
/// megabytes by the last round) would take CPU from what is measured.
struct Deliveries {
    log: std::path::PathBuf,
    read: u64,
    partial: String,
    delivered: usize,
}

impl Deliveries {
    fn of(postfix: &Postfix) -> Deliveries {
        let mut deliveries = Deliveries {
            log: postfix.log_path(),
            read: 0,
            partial: String::new(),
            delivered: 0,
        };
        deliveries.count();
        deliveries
    }

    /// Deliveries logged so far.
    fn count(&mut self) -> usize {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(&self.log) else {
            return self.delivered;
        };
        file.seek(SeekFrom::Start(self.read)).unwrap();
        let mut new = Vec::new();
        self.read += file.read_to_end(&mut new).unwrap() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&new));
        let complete = self.partial.rfind('\n').map_or(0, |end| end + 1);
        self.delivered += self.partial[..complete]
            .lines()
            .filter(|line| is_delivery(line))
            .count();
        self.partial.drain(..complete);
        self.delivered
    }
}
