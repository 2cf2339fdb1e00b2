//! A private Postfix for the integration tests: Debian's postfix, run as an
//! instance of its own in a temporary directory (config_directory,
//! queue_directory, data_directory and its log file all inside it),
//! listening for SMTP on one free loopback port, and stopped when dropped,
//! also when the test panics.
//!
//! Two tests can each run one at the same time: every path Postfix locks
//! (`pid/master.pid` in the queue, `master.lock` in the data directory) is
//! the instance's own, it binds only its own port, and nothing is left to
//! defaults that would reach the machine's Postfix (no local delivery, no
//! DNS, no mail to postmaster). Starting one needs root, as Postfix does
//! to make its queue; CI runs as root with the package installed (its
//! `postfix` user and `postdrop` group).
//!
//! [`doc_block`] reads configuration snippets out of docs/postfix.md, so a
//! test runs what an operator would paste.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::{wait_for, PATIENCE};

/// The name the instance gives itself (HELO, Received, its DSNs); no
/// machine has it, so Postfix never takes a peer for itself.
pub const HOSTNAME: &str = "mx.postfix-test.invalid";

/// A Postfix instance of the test's own; stopped when dropped.
pub struct Postfix {
    dir: tempfile::TempDir,
    /// The loopback port its smtpd listens on.
    pub port: u16,
    main_cf: String,
    started: bool,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postfix {
    /// An instance, not yet started, whose smtpd will listen on `port` and
    /// that relays all mail it does not route otherwise to `relay_port`, on
    /// loopback. Add to its main.cf and its lookup tables, then
    /// [`Postfix::start`] it.
    ///
    /// Make it after the tidings it delivers to (a [`free_port`] can name
    /// its port in lists.toml first): it is then stopped before tidings'
    /// directory is removed, so that no delivery writes into a directory
    /// being removed.
    pub fn new(port: u16, relay_port: u16) -> Postfix {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .expect("id runs")
            .stdout;
        assert_eq!(
            String::from_utf8_lossy(&uid).trim(),
            "0",
            "a private Postfix needs root to make its queue (CI runs the tests as root)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        // Postfix's daemons run as its mail_owner and open paths under here.
        set_mode(dir.path(), 0o755);
        for sub in ["etc", "queue"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let root = dir.path().display().to_string();
        // Every setting that would otherwise come from the machine is given;
        // the timers are short so that a deferred message is retried within
        // seconds (tests also flush with `postqueue -f` rather than wait).
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {root}/queue\n\
             data_directory = {root}/data\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             myhostname = {HOSTNAME}\n\
             mydomain = postfix-test.invalid\n\
             myorigin = $myhostname\n\
             mydestination =\n\
             local_recipient_maps =\n\
             alias_maps =\n\
             alias_database =\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             relayhost = [127.0.0.1]:{relay_port}\n\
             smtp_dns_support_level = disabled\n\
             lmtp_dns_support_level = disabled\n\
             smtpd_peername_lookup = no\n\
             notify_classes =\n\
             biff = no\n\
             maillog_file = {root}/maillog\n\
             maillog_file_prefixes = {root}\n\
             queue_run_delay = 1s\n\
             minimal_backoff_time = 1s\n\
             maximal_backoff_time = 2s\n\
             maximal_queue_lifetime = 1h\n\
             bounce_queue_lifetime = 1h\n\
             delay_warning_time = 0\n\
             address_verify_poll_delay = 1s\n"
        );
        // No chroot: the queue holds no copy of /etc for one.
        let master_cf = format!(
            "127.0.0.1:{port} inet n - n - - smtpd\n\
             pickup    unix  n - n 60    1 pickup\n\
             cleanup   unix  n - n -     0 cleanup\n\
             qmgr      unix  n - n 300   1 qmgr\n\
             rewrite   unix  - - n -     - trivial-rewrite\n\
             bounce    unix  - - n -     0 bounce\n\
             defer     unix  - - n -     0 bounce\n\
             trace     unix  - - n -     0 bounce\n\
             verify    unix  - - n -     1 verify\n\
             flush     unix  n - n 1000? 0 flush\n\
             proxymap  unix  - - n -     - proxymap\n\
             smtp      unix  - - n -     - smtp\n\
             relay     unix  - - n -     - smtp\n\
             showq     unix  n - n -     - showq\n\
             error     unix  - - n -     - error\n\
             retry     unix  - - n -     - error\n\
             discard   unix  - - n -     - discard\n\
             lmtp      unix  - - n -     - lmtp\n\
             anvil     unix  - - n -     1 anvil\n\
             scache    unix  - - n -     1 scache\n\
             postlog   unix-dgram n - n - 1 postlogd\n"
        );
        std::fs::write(dir.path().join("etc/master.cf"), master_cf).unwrap();
        // postmap reads main.cf too, so it is there from the start.
        std::fs::write(dir.path().join("etc/main.cf"), &main_cf).unwrap();
        Postfix {
            dir,
            port,
            main_cf,
            started: false,
        }
    }

    /// The instance's config_directory (`postfix -c`, `sendmail -C`).
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// Adds lines to main.cf (before the instance starts); a later setting
    /// overrides an earlier one.
    pub fn main_cf(&mut self, lines: &str) {
        assert!(!self.started, "Postfix reads main.cf when it starts");
        self.main_cf.push('\n');
        self.main_cf.push_str(lines);
        self.main_cf.push('\n');
        std::fs::write(self.config_dir().join("main.cf"), &self.main_cf).unwrap();
    }

    /// Adds services to master.cf (before the instance starts).
    pub fn master_cf(&mut self, lines: &str) {
        assert!(!self.started, "Postfix reads master.cf when it starts");
        let path = self.config_dir().join("master.cf");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(lines);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        std::fs::write(path, text).unwrap();
    }

    /// Writes the lookup table `name` into the config directory and builds
    /// its indexed form with `postmap`; returns its path.
    pub fn map(&self, name: &str, text: &str) -> PathBuf {
        let path = self.config_dir().join(name);
        std::fs::write(&path, text).unwrap();
        self.postfix_command("postmap", &[path.to_str().unwrap()]);
        path
    }

    /// Starts the instance: `postfix -c DIR start` makes the queue and
    /// returns once the master runs and listens.
    pub fn start(&mut self) {
        // Marked first, so that a start that fails half way is stopped too.
        self.started = true;
        self.postfix_command("postfix", &["start"]);
    }

    /// Stops the instance (`postfix -c DIR stop`) and waits for its master
    /// to be gone.
    pub fn stop(&mut self) {
        if !self.started {
            return;
        }
        self.started = false;
        let stopped = self.run("postfix", &["stop"]);
        if stopped.status.success() {
            return;
        }
        // Never leave this instance's master running after the test: kill
        // its process group, once its environment shows it is this one's.
        let Ok(pid) = std::fs::read_to_string(self.dir.path().join("queue/pid/master.pid")) else {
            return;
        };
        let pid = pid.trim();
        let ours = format!("MAIL_CONFIG={}\0", self.config_dir().display());
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if environ
            .windows(ours.len())
            .any(|window| window == ours.as_bytes())
        {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }

    /// Runs a Postfix command on this instance (`-c DIR` first).
    fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new(Path::new("/usr/sbin").join(program))
            .arg("-c")
            .arg(self.config_dir())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program} runs (apt-get install postfix): {e}"))
    }

    /// Runs a Postfix command on this instance; asserts it succeeded.
    fn postfix_command(&self, program: &str, args: &[&str]) -> String {
        let output = self.run(program, args);
        assert!(
            output.status.success(),
            "{program} -c {} {args:?} failed: {}\n{}{}\nlog:\n{}",
            self.config_dir().display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Hands `message` to this instance's sendmail (`sendmail -C DIR`) from
    /// `sender` for `recipients`; asserts sendmail took it.
    pub fn sendmail(&self, sender: &str, recipients: &[&str], message: &[u8]) {
        use std::io::Write;
        let mut child = Command::new("/usr/sbin/sendmail")
            .arg("-C")
            .arg(self.config_dir())
            .args(["-i", "-f", sender, "--"])
            .args(recipients)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("Postfix's sendmail runs");
        child.stdin.take().unwrap().write_all(message).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "sendmail failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Asks the queue manager to try every queued message now
    /// (`postqueue -f`), instead of waiting for its timers.
    pub fn flush(&self) {
        self.postfix_command("postqueue", &["-f"]);
    }

    /// The queued messages, as `postqueue -j` describes them: one object
    /// each with `queue_name`, `sender` and `recipients` (each with its
    /// `address` and, once deferred, its `delay_reason`).
    pub fn queue(&self) -> Vec<Value> {
        self.postfix_command("postqueue", &["-j"])
            .lines()
            .map(|line| serde_json::from_str(line).expect("postqueue -j prints JSON lines"))
            .collect()
    }

    /// Waits until the queue is empty: everything delivered or bounced.
    /// What waits is flushed (at most once a second), not left to the
    /// queue manager's timers.
    pub fn wait_for_empty_queue(&self) {
        let mut flushed: Option<std::time::Instant> = None;
        wait_for("Postfix's queue to empty", PATIENCE, || {
            if self.queue().is_empty() {
                return Some(());
            }
            if flushed.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1)) {
                self.flush();
                flushed = Some(std::time::Instant::now());
            }
            None
        });
    }

    /// The instance's log so far (its maillog_file).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Where the instance logs (its maillog_file).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("maillog")
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("Postfix's log:\n{}", self.log());
        }
        self.stop();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The first indented block of docs/postfix.md after the first line
/// containing `after` in the section whose heading contains `section`,
/// without its indentation. Panics, naming both, when there is none: the
/// test then says which snippet of the doc changed.
pub fn doc_block(section: &str, after: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/postfix.md");
    let doc = std::fs::read_to_string(&path).expect("docs/postfix.md");
    let mut lines = doc
        .lines()
        .skip_while(|line| !(line.starts_with("## ") && line.contains(section)))
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .skip_while(|line| !line.contains(after));
    assert!(
        lines.next().is_some(),
        "docs/postfix.md has no `{after}` in the section `{section}`"
    );
    let block: Vec<&str> = lines
        .skip_while(|line| !line.starts_with("    "))
        .take_while(|line| line.starts_with("    ") || line.trim().is_empty())
        .collect();
    let text: Vec<&str> = block
        .iter()
        .map(|line| line.strip_prefix("    ").unwrap_or(""))
        .collect();
    let text = text.join("\n").trim_end().to_string() + "\n";
    assert!(
        !text.trim().is_empty(),
        "docs/postfix.md has no indented block after `{after}` in `{section}`"
    );
    text
}
