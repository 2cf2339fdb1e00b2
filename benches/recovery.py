#!/usr/bin/env python3
"""Recovery benchmark: how long `tidings serve`, killed with SIGKILL while
mail is coming in, takes to serve again (issue 13).

Run from the repository root after a release build:

    cargo build --release && python3 benches/recovery.py

Imports POSTS posts (BENCH_POSTS, default 20,000, made by
../shared/corpus/gen-posts.py) into a store under the shipped lists.toml
in a temporary directory, then ROUNDS times (BENCH_ROUNDS, default 5):
starts `target/release/tidings serve` on fixed loopback ports, lets one
SMTP client send posts back to back for two seconds, kills the daemon
with SIGKILL in the middle of that, starts it again at once, and times
from the new process's start until its SMTP banner (220), its LMTP
banner, `GET /healthz` answered 200, and the first post the client sends
again taken with 250. Prints each round's times and their medians (ms).
"""

import json
import os
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("TIDINGS", os.path.join(ROOT, "target", "release", "tidings"))
POSTS = int(os.environ.get("BENCH_POSTS", "20000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
LIST = "a-infos-en@lists.example.org"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def banner(port):
    """The first line a new connection to `port` is told, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            return s.makefile("rb").readline().decode(errors="replace")
    except OSError:
        return None


def healthz(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.makefile("rb").readline().decode(errors="replace")
    except OSError:
        return None


def until(check, started):
    """Milliseconds from `started` until `check()` holds (30 s at most)."""
    while time.monotonic() - started < 30:
        if check():
            return (time.monotonic() - started) * 1000
        time.sleep(0.002)
    sys.exit("the daemon did not come back within 30 s")


def sender(port, stop, taken):
    """Sends posts back to back over SMTP, a new session after any trouble;
    appends the time of each 250 to `taken`."""
    n = 0
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
                while not stop.is_set():
                    n += 1
                    body = (f"From: Steady <steady@example.org>\r\nTo: {LIST}\r\n"
                            f"Subject: (en) Steady {n}\r\n"
                            f"Message-ID: <steady-{n}-{os.getpid()}@example.org>\r\n"
                            f"Content-Type: text/plain; charset=utf-8\r\n\r\nPost {n}.\r\n")
                    smtp.sendmail("steady@example.org", [LIST], body.encode())
                    taken.append(time.monotonic())
        except (OSError, smtplib.SMTPException):
            time.sleep(0.002)


def main():
    if not os.path.exists(BINARY):
        sys.exit("build first: cargo build --release")
    directory = tempfile.mkdtemp(prefix="tidings-recovery-")
    config = os.path.join(directory, "lists.toml")
    with open(os.path.join(ROOT, "lists.toml")) as shipped, open(config, "w") as out:
        # Every post published, none held for the sender's rate.
        out.write(shipped.read().replace("max_posts_per_hour = 30", "max_posts_per_hour = 0"))
    mbox = os.path.join(directory, "posts.mbox")
    subprocess.run([sys.executable, os.path.join(ROOT, "..", "shared", "corpus", "gen-posts.py"),
                    "--tags", "ainfos", "--n", str(POSTS), "--seed", "13", "--format", "mbox",
                    "--out", mbox], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([BINARY, "--config", config, "import", mbox], cwd=directory, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    smtp, lmtp, http = free_port(), free_port(), free_port()
    command = [BINARY, "--config", config, "serve", "--smtp-listen", f"127.0.0.1:{smtp}",
               "--lmtp-listen", f"127.0.0.1:{lmtp}", "--http-listen", f"127.0.0.1:{http}"]
    log = open(os.path.join(directory, "serve.log"), "w")

    def start():
        return subprocess.Popen(command, cwd=directory, stdout=subprocess.DEVNULL, stderr=log)

    process = start()
    until(lambda: (healthz(http) or "").startswith("HTTP/1.1 200"), time.monotonic())
    rounds = []
    for round in range(ROUNDS):
        stop, taken = threading.Event(), []
        thread = threading.Thread(target=sender, args=(smtp, stop, taken))
        thread.start()
        time.sleep(2)
        before = len(taken)
        process.send_signal(signal.SIGKILL)
        process.wait()
        started = time.monotonic()
        process = start()
        figures = {
            "smtp 220": until(lambda: (banner(smtp) or "").startswith("220"), started),
            "lmtp 220": until(lambda: (banner(lmtp) or "").startswith("220"), started),
            "healthz 200": until(lambda: (healthz(http) or "").startswith("HTTP/1.1 200"), started),
            "first post taken": until(lambda: len(taken) > before and taken[-1] > started, started),
            "posts taken in the 2 s before the kill": before,
        }
        stop.set()
        thread.join()
        rounds.append(figures)
        print(f"round {round + 1}: " + json.dumps({k: round_ms(v) for k, v in figures.items()}))
    process.send_signal(signal.SIGTERM)
    process.wait()
    medians = {key: round_ms(statistics.median(r[key] for r in rounds))
               for key in rounds[0] if not key.startswith("posts")}
    print(json.dumps({"posts in the store at the start": POSTS, "rounds": ROUNDS,
                      "medians ms": medians}, indent=2))


def round_ms(value):
    return round(value, 1) if isinstance(value, float) else value


if __name__ == "__main__":
    main()
