//! A running `tidings serve` for the integration tests, and the Python
//! clients (smtplib, urllib) they talk to it with.

use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use super::{wait_for, Tidings, PATIENCE};

/// A running `tidings serve`, killed when dropped.
pub struct Daemon {
    child: Child,
    addresses: Value,
}

impl Daemon {
    pub fn start(tidings: &Tidings) -> Daemon {
        Daemon::start_with_http(tidings, "127.0.0.1:0")
    }

    /// A daemon whose HTTP listener is at `http` (an address the test
    /// chose, so that base_url can name it for a browser to follow).
    pub fn start_with_http(tidings: &Tidings, http: &str) -> Daemon {
        Daemon::start_with_args(tidings, http, &[])
    }

    /// A daemon started with `extra` arguments to `serve` (e.g. `--at`).
    pub fn start_with_args(tidings: &Tidings, http: &str, extra: &[&str]) -> Daemon {
        Daemon::start_listening(tidings, "127.0.0.1:0", http, extra, &[])
    }

    /// A daemon taking LMTP at `lmtp` and HTTP at `http` (addresses the
    /// test chose, so that a restarted daemon is where an MTA or a browser
    /// was told it is).
    pub fn start_at(tidings: &Tidings, lmtp: &str, http: &str) -> Daemon {
        Daemon::start_listening(tidings, lmtp, http, &[], &[])
    }

    /// A daemon started by `wrapper` (a command that runs the rest of its
    /// arguments in the same process, e.g. `prlimit --nofile=N:N`).
    pub fn start_under(tidings: &Tidings, http: &str, extra: &[&str], wrapper: &[&str]) -> Daemon {
        Daemon::start_listening(tidings, "127.0.0.1:0", http, extra, wrapper)
    }

    /// A daemon taking LMTP at `lmtp` and HTTP at `http`, started with
    /// `extra` arguments to `serve`, under `wrapper` when one is given.
    #[allow(
        clippy::zombie_processes,
        reason = "Drop kills the child and waits for it"
    )]
    fn start_listening(
        tidings: &Tidings,
        lmtp: &str,
        http: &str,
        extra: &[&str],
        wrapper: &[&str],
    ) -> Daemon {
        let serve_json = tidings.path().join("data/serve.json");
        let _ = std::fs::remove_file(&serve_json);
        let binary = env!("CARGO_BIN_EXE_tidings");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let mut child = command
            .args(["--config"])
            .arg(tidings.config())
            .args([
                "serve",
                "--lmtp-listen",
                lmtp,
                "--smtp-listen",
                "127.0.0.1:0",
                "--http-listen",
                http,
            ])
            .args(extra)
            .current_dir(tidings.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(tidings.path().join("serve.log")).unwrap())
            .spawn()
            .expect("start tidings serve");
        let log = tidings.path().join("serve.log");
        let addresses = wait_for("serve.json to name this daemon", PATIENCE, || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "tidings serve ended ({status}) before it listened:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let text = std::fs::read_to_string(&serve_json).ok()?;
            let addresses: Value = serde_json::from_str(&text).ok()?;
            (addresses["pid"] == child.id()).then_some(addresses)
        });
        Daemon { child, addresses }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A request to the web side as a browser or a mail client's
    /// one-click sends it (urllib, no redirect followed): status and body.
    #[allow(dead_code, reason = "not every test file asks the web side")]
    pub fn http(&self, method: &str, path: &str, form: &str) -> (u16, String) {
        const REQUEST: &str = r#"
import sys, urllib.request, urllib.error
url, method, form = sys.argv[1], sys.argv[2], sys.argv[3]
data = form.encode() if method == "POST" else None
request = urllib.request.Request(url, data=data, method=method)
if data is not None:
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None
try:
    with urllib.request.build_opener(NoRedirect).open(request, timeout=60) as response:
        print(response.status); print(response.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"#;
        let (host, port) = self.address("http");
        let out = python(
            REQUEST,
            &[&format!("http://{host}:{port}{path}"), method, form],
        );
        let (status, body) = out.split_once('\n').unwrap();
        (status.parse().unwrap(), body.to_string())
    }

    pub fn address(&self, which: &str) -> (String, u16) {
        let text = self.addresses[which].as_str().unwrap();
        let (host, port) = text.rsplit_once(':').unwrap();
        (host.to_string(), port.parse().unwrap())
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// How the process ended, if it has (without waiting).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for the process to exit; its status code.
    pub fn wait(&mut self) -> Option<i32> {
        wait_for("the daemon to exit", PATIENCE, || {
            self.child.try_wait().unwrap().map(|status| status.code())
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a Python script with arguments; asserts it succeeded; its stdout.
pub fn python(script: &str, args: &[&str]) -> String {
    let output = run_python(script, args);
    assert!(
        output.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub fn run_python(script: &str, args: &[&str]) -> Output {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3")
}

/// Sends messages with smtplib (SMTP or LMTP) and prints one JSON line per
/// message: the replies per recipient, or the error.
pub const SEND: &str = r#"
import json, smtplib, sys
from email.message import EmailMessage
from email.policy import SMTP
protocol, host, port, spec = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
for item in spec:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = item.get("from", "Ana <ana@example.org>")
    msg["To"] = ", ".join(item["to"])
    msg["Subject"] = item["subject"]
    msg["Message-ID"] = item["id"]
    for name, value in item.get("headers", {}).items():
        msg[name] = value
    msg.set_content(item["body"], charset=item.get("charset", "utf-8"))
    # The timeout only bounds a failure: a daemon that never answers fails
    # the test instead of hanging it.
    client = smtplib.LMTP(host, port, timeout=60) if protocol == "lmtp" else smtplib.SMTP(host, port, timeout=60)
    try:
        refused = client.send_message(msg, to_addrs=item["to"])
        print(json.dumps({"id": item["id"], "ok": True, "refused": {k: [v[0], v[1].decode()] for k, v in refused.items()}}))
    except smtplib.SMTPRecipientsRefused as e:
        print(json.dumps({"id": item["id"], "ok": False, "error": {k: [v[0], v[1].decode()] for k, v in e.recipients.items()}}))
    except smtplib.SMTPResponseException as e:
        print(json.dumps({"id": item["id"], "ok": False, "code": e.smtp_code, "error": e.smtp_error.decode()}))
    finally:
        try:
            client.quit()
        except Exception:
            pass
"#;

pub fn send(protocol: &str, daemon: &Daemon, spec: Value) -> Vec<Value> {
    let (host, port) = daemon.address(protocol);
    python(
        SEND,
        &[protocol, &host, &port.to_string(), &spec.to_string()],
    )
    .lines()
    .map(|line| serde_json::from_str(line).unwrap())
    .collect()
}

/// Sends raw messages with smtplib (SMTP or LMTP), each with its own
/// envelope (`from` may be empty: the null sender), and prints one JSON
/// line per message: the refused recipients, or the error.
pub const SEND_RAW: &str = r#"
import json, smtplib, sys
protocol, host, port, spec = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
for item in spec:
    client = smtplib.LMTP(host, port, timeout=60) if protocol == "lmtp" else smtplib.SMTP(host, port, timeout=60)
    try:
        refused = client.sendmail(item["from"], item["to"], item["raw"].encode())
        print(json.dumps({"ok": True, "refused": {k: [v[0], v[1].decode()] for k, v in refused.items()}}))
    except smtplib.SMTPRecipientsRefused as e:
        print(json.dumps({"ok": False, "error": {k: [v[0], v[1].decode()] for k, v in e.recipients.items()}}))
    except smtplib.SMTPResponseException as e:
        print(json.dumps({"ok": False, "code": e.smtp_code, "error": e.smtp_error.decode()}))
    finally:
        try:
            client.quit()
        except Exception:
            pass
"#;

/// [`SEND_RAW`]: each of `spec` (`{"from", "to": [...], "raw"}`) in a
/// session of its own; the answers, in order.
pub fn send_raw(protocol: &str, daemon: &Daemon, spec: Value) -> Vec<Value> {
    let (host, port) = daemon.address(protocol);
    python(
        SEND_RAW,
        &[protocol, &host, &port.to_string(), &spec.to_string()],
    )
    .lines()
    .map(|line| serde_json::from_str(line).unwrap())
    .collect()
}

/// GETs a URL; prints status, then headers as JSON, then the body length.
pub const GET: &str = r#"
import json, sys, urllib.request, urllib.error
request = urllib.request.Request(sys.argv[1], headers=json.loads(sys.argv[2]))
try:
    with urllib.request.urlopen(request) as response:
        body = response.read()
        print(response.status); print(json.dumps(dict(response.headers))); print(body.decode("utf-8", "replace"))
except urllib.error.HTTPError as e:
    print(e.code); print(json.dumps(dict(e.headers))); print("")
"#;

pub fn get(daemon: &Daemon, path: &str, headers: Value) -> (u16, Value, String) {
    let (host, port) = daemon.address("http");
    let out = python(
        GET,
        &[&format!("http://{host}:{port}{path}"), &headers.to_string()],
    );
    let mut lines = out.splitn(3, '\n');
    let status = lines.next().unwrap().parse().unwrap();
    let headers = serde_json::from_str(lines.next().unwrap()).unwrap();
    (status, headers, lines.next().unwrap_or("").to_string())
}
