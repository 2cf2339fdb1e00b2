//! Shared test support: a tidings instance in a temporary directory, run
//! through the real binary, and the corpus in ../shared.
#![allow(
    dead_code,
    reason = "each test binary uses its own part of this module"
)]

pub mod daemon;
pub mod postfix;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// ../shared beside the repository: corpus, schemas, seeds.
pub fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// How long a test waits for something that takes well under a second on
/// an idle machine. CI machines are slow and shared, so this is generous: it
/// only bounds how long a failing test takes, a passing one never waits it.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// An environment variable's number, or `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// A seed for a test's random choices: the environment variable `name`'s
/// number, to replay a run, or a new one each run (from the standard
/// library's random keys); printed as `NAME=SEED` either way.
pub fn seed(name: &str) -> u64 {
    let seed = std::env::var(name)
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        });
    println!("{name}={seed}");
    seed
}

/// The next number of a small pseudo-random generator (SplitMix64) whose
/// state starts at a [`seed`].
pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Waits until `condition` holds: it is looked at again and again, at first
/// every millisecond, then less and less often (up to every 100 ms). Panics
/// with `what` and the time waited once `timeout` has passed without it.
///
/// Tests wait with this on what they need (a file, a port, a row, a log
/// line), never with a fixed sleep.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    wait_for(what, timeout, || condition().then_some(()))
}

/// Waits until `probe` gives a value, as [`wait_until`] does, and returns it.
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        let waited = started.elapsed();
        assert!(
            waited < timeout,
            "gave up after {waited:.1?} waiting for {what}"
        );
        std::thread::sleep(pause.min(timeout - waited));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A tidings set-up of its own: lists.toml, data/ and feeds/ in a tempdir.
pub struct Tidings {
    pub dir: tempfile::TempDir,
}

impl Tidings {
    /// The shipped lists.toml, unchanged apart from living in a tempdir.
    pub fn new() -> Self {
        Self::with_config(|text| text)
    }

    /// The shipped lists.toml passed through `edit` first.
    pub fn with_config(edit: impl FnOnce(String) -> String) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let shipped =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("lists.toml"))
                .expect("shipped lists.toml");
        std::fs::write(dir.path().join("lists.toml"), edit(shipped)).expect("write lists.toml");
        Tidings { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("lists.toml")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tidings"));
        command
            .arg("--config")
            .arg(self.config())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("TIDINGS_CONFIG")
            .env_remove("ORIGINAL_RECIPIENT");
        command
    }

    /// Runs `tidings ARGS` and returns its output, whatever its status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run tidings")
    }

    /// Runs `tidings ARGS` and asserts it succeeded; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "tidings {args:?} failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Runs `tidings ARGS` with `input` on stdin, with extra environment.
    pub fn run_with_stdin(&self, args: &[&str], env: &[(&str, &str)], input: &[u8]) -> Output {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tidings");
        // A child that refuses early may close stdin: that is its answer.
        let _ = child.stdin.take().expect("stdin").write_all(input);
        child.wait_with_output().expect("wait for tidings")
    }

    /// Runs `tidings ARGS` with its stdout read by a reader that takes
    /// `bytes` bytes and then closes the pipe, as `tidings ARGS | head -c
    /// BYTES` does; with 0 the pipe is closed before tidings starts, so its
    /// first write already fails. For a write to really meet the closed
    /// pipe with `bytes` > 0, the output must be larger than what the pipe
    /// holds (64 KiB on Linux). Returns the status and stderr.
    pub fn run_cut_short(&self, args: &[&str], bytes: usize) -> Output {
        use std::io::Read;
        let (mut reader, writer) = std::io::pipe().expect("pipe");
        let mut command = self.command(args);
        command
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped());
        if bytes == 0 {
            drop(reader);
            return command.output().expect("run tidings");
        }
        let child = command.spawn().expect("spawn tidings");
        // The child has its own copy of the writing end.
        drop(command);
        let mut taken = vec![0; bytes];
        reader.read_exact(&mut taken).expect("the first bytes");
        drop(reader);
        child.wait_with_output().expect("wait for tidings")
    }

    /// Subscribes `addresses` to `list` in `mode`, confirmed already
    /// (`subscribers add --no-confirm`, the addresses on stdin).
    pub fn subscribe(&self, list: &str, mode: &str, addresses: &[String]) {
        let args = [
            "subscribers",
            "add",
            "--no-confirm",
            "--list",
            list,
            "--mode",
            mode,
            "-",
        ];
        let output = self.run_with_stdin(&args, &[], addresses.join("\n").as_bytes());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Every stored post, as `tidings posts --json` prints them, oldest first.
    pub fn posts(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["posts", "--json"];
        all.extend_from_slice(args);
        self.ok(&all)
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
            .collect()
    }
}

/// Runs the corpus generator into `dir` and returns (output path, truth).
pub fn generate(dir: &Path, name: &str, format: &str, args: &[&str]) -> (PathBuf, Vec<Value>) {
    let out = dir.join(name);
    let status = Command::new("python3")
        .arg(shared().join("corpus/gen-posts.py"))
        .args(["--tags", "ainfos", "--format", format, "--out"])
        .arg(&out)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("python3 runs the generator");
    assert!(status.success(), "gen-posts.py failed");
    let truth_path = match format {
        "mbox" => PathBuf::from(format!("{}.truth.jsonl", out.display())),
        _ => out.join("truth.jsonl"),
    };
    let truth = std::fs::read_to_string(truth_path)
        .expect("truth file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("truth JSON"))
        .collect();
    (out, truth)
}

/// The count after `label` in an import summary ("  stored   12").
pub fn summary_count(summary: &str, label: &str) -> u64 {
    summary
        .lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(label))
                .then(|| words.next()?.parse().ok())
                .flatten()
        })
        .unwrap_or_else(|| panic!("no `{label}` in summary:\n{summary}"))
}

/// tests/common/smtp_peer.py: aiosmtpd answering as told.
pub struct Peer {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Peer {
    pub fn start(dir: &Path, args: &[&str]) -> Peer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/smtp_peer.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg("--out")
            .arg(dir)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs smtp_peer.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("smtp_peer.py said {line:?} (is aiosmtpd installed?)"))
            .parse()
            .unwrap();
        Peer {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// Recipients of the messages accepted so far, one entry per message.
    pub fn recipients(&self) -> Vec<String> {
        let mut recipients = Vec::new();
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "eml") {
                let meta: Value = serde_json::from_str(
                    &std::fs::read_to_string(path.with_extension("json")).unwrap(),
                )
                .unwrap();
                for to in meta["rcpt_tos"].as_array().unwrap() {
                    recipients.push(to.as_str().unwrap().to_string());
                }
            }
        }
        recipients
    }
}

/// A message the peer received: its envelope and its bytes.
pub struct Received {
    pub envelope: Value,
    pub raw: Vec<u8>,
}

impl Received {
    fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::new()
            .parse(&self.raw)
            .expect("the peer received a message")
    }

    /// The decoded Subject.
    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_string()
    }

    /// A header field as written, its lines unfolded.
    pub fn header(&self, name: &'static str) -> Option<String> {
        self.parsed()
            .header_raw(name)
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    /// The first text part, decoded.
    pub fn text(&self) -> String {
        self.parsed().body_text(0).unwrap_or_default().into_owned()
    }

    /// The whole message as text (a digest's parts and all).
    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

impl Peer {
    /// Every message received for `address`, in the order received.
    pub fn messages(&self, address: &str) -> Vec<Received> {
        let mut names: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|path| {
                let envelope: Value = serde_json::from_str(
                    &std::fs::read_to_string(path.with_extension("json")).ok()?,
                )
                .ok()?;
                let to = envelope["rcpt_tos"].as_array()?;
                to.iter()
                    .any(|t| t.as_str().is_some_and(|t| t.eq_ignore_ascii_case(address)))
                    .then(|| Received {
                        envelope: envelope.clone(),
                        raw: std::fs::read(&path).unwrap(),
                    })
            })
            .collect()
    }

    /// Waits for the `nth` (from 1) message to `address`.
    pub fn nth(&self, address: &str, nth: usize) -> Received {
        wait_for(&format!("message {nth} to {address}"), PATIENCE, || {
            let mut all = self.messages(address);
            (all.len() >= nth).then(|| all.swap_remove(nth - 1))
        })
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
