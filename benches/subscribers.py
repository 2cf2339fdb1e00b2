#!/usr/bin/env python3
"""Subscriber benchmarks of issue 10: one-click unsubscribes, and the
daemon's memory with a million subscribers.

Run from the repository root after a release build:

    cargo build --release && cargo build --example unsubscribe_tokens
    python3 benches/subscribers.py oneclick   # RFC 8058 POSTs, 32 clients
    python3 benches/subscribers.py memory     # 1,000,000 subscribers

Both fill a store of made-up subscribers with SQL (Python's sqlite3, into
the schema the daemon itself created and migrated at a first start),
because the figures are about what the daemon does with them, not about
how they got there (`tidings subscribers import` has a benchmark of its
own).

oneclick: SUBSCRIBERS (default 100,000) subscribers of the English list,
each with HISTORY (default 3) digests already delivered (so leaving has
rows to look through, as on a list that has run a while); with DEFERRED=1
one more digest whose deliveries are all deferred, as while a large
provider answers 4xx for an hour. Their tokens come
from examples/unsubscribe_tokens.rs. Each of RUNS (default 5) runs starts
the release daemon, has `wrk -t2 -c32` POST `List-Unsubscribe=One-Click`
to /unsubscribe/TOKEN for DURATION seconds (default 5), every request
another subscriber (benches/oneclick.lua), then SIGKILLs the daemon and
counts the subscribers the store says have left: every 200 wrk counted
must be among them (each answer follows its commit, synchronous = FULL).
Prints each run and the median requests/s.

memory: SUBSCRIBERS (default 1,000,000) subscribers of the English list,
MIME digests, delivery over SMTP into Postfix's smtp-sink on loopback. The
daemon starts; its memory is read idle, then one post arrives by SMTP,
the size trigger issues a digest to all of them, and the outbox sends
for SEND_SECONDS (default 60, or until all are sent) while the web side is
asked for pages. Memory is read from /proc/PID/status: VmRSS (now) every
half second and VmHWM (peak resident) at each step.
"""

import json
import os
import shutil
import signal
import smtplib
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BINARY = os.path.abspath(os.environ.get("TIDINGS", os.path.join(TARGET, "release", "tidings")))
# The token minter signs the same in either profile; a debug build of it is
# quick where the tests have been built (a release one builds the
# dev-dependencies again).
TOKENS = os.path.abspath(os.environ.get("TOKENS", next(
    (path for path in (os.path.join(TARGET, profile, "examples", "unsubscribe_tokens")
                       for profile in ("release", "debug")) if os.path.exists(path)),
    os.path.join(TARGET, "debug", "examples", "unsubscribe_tokens"))))
NOW = int(time.time())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(directory, edit=lambda text: text):
    with open(os.path.join(ROOT, "lists.toml")) as file:
        text = edit(file.read())
    path = os.path.join(directory, "lists.toml")
    with open(path, "w") as file:
        file.write(text)
    return path


def replace(text, old, new):
    assert old in text, f"lists.toml has no {old!r}"
    return text.replace(old, new, 1)


class Daemon:
    """The release `tidings serve` on free loopback ports."""

    def __init__(self, directory, config):
        self.directory = directory
        serve_json = os.path.join(directory, "data", "serve.json")
        if os.path.exists(serve_json):
            os.remove(serve_json)
        self.log = open(os.path.join(directory, "serve.log"), "a")
        self.process = subprocess.Popen(
            [BINARY, "--config", config, "serve", "--lmtp-listen", "127.0.0.1:0",
             "--smtp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
            cwd=directory, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"tidings serve exited with {self.process.returncode}; see {self.log.name}")
            try:
                with open(serve_json) as file:
                    addresses = json.load(file)
                if addresses["pid"] == self.process.pid:
                    self.addresses = addresses
                    return
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)
        sys.exit("tidings serve did not start")

    def address(self, which):
        host, port = self.addresses[which].rsplit(":", 1)
        return host, int(port)

    def status(self):
        """/proc/PID/status as a dict of kB figures."""
        figures = {}
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if value.strip().endswith("kB"):
                    figures[name] = int(value.split()[0])
        return figures

    def cpu_seconds(self):
        """User and system CPU time of the daemon so far."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, how=signal.SIGTERM):
        self.process.send_signal(how)
        self.process.wait(timeout=120)


def create_store(directory, config):
    """The daemon creates and migrates the store (and the token secret)."""
    daemon = Daemon(directory, config)
    daemon.stop()
    return database(directory)


def database(directory):
    data = os.path.join(directory, "data")
    names = [n for n in os.listdir(data) if n.endswith((".sqlite3", ".sqlite", ".db"))]
    assert len(names) == 1, f"which store in {data}: {names}?"
    return os.path.join(data, names[0])


def fill(path, count, list_code="en", mode="mime", history=0, deferred=False):
    """`count` people, each subscribed to `list_code` in `mode`, `history`
    digests delivered to every one of them and, when `deferred`, one more
    whose deliveries are all deferred (their server said 4xx), due again in
    an hour. Returns the ids."""
    started = time.perf_counter()
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    with db:
        first_person = db.execute("SELECT coalesce(max(id), 0) + 1 FROM people").fetchone()[0]
        db.executemany(
            "INSERT INTO people (id, address, created_at) VALUES (?, ?, ?)",
            ((first_person + i, f"reader{i:07d}@bench.example", NOW) for i in range(count)))
        first = db.execute("SELECT coalesce(max(id), 0) + 1 FROM subscribers").fetchone()[0]
        db.executemany(
            "INSERT INTO subscribers (id, list_code, person_id, mode, created_at, confirmed_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            ((first + i, list_code, first_person + i, mode, NOW, NOW) for i in range(count)))
        for issue in range(1, history + 1):
            issued = NOW - 86400 * (history - issue + 1)
            digest = db.execute(
                "INSERT INTO digests (list_code, volume, issue, period, reason, issued_at) "
                "VALUES (?, 1, ?, '2026', 'schedule', ?)", (list_code, issue, issued)).lastrowid
            db.execute(
                "INSERT INTO deliveries (digest_id, subscriber_id, address, mode, state, attempts, "
                "next_attempt_at, last_attempt_at, last_reply) "
                "SELECT ?, s.id, p.address, s.mode, 'sent', 1, ?, ?, '250 2.0.0 Ok' "
                "FROM subscribers s JOIN people p ON p.id = s.person_id "
                "WHERE s.id >= ? ORDER BY s.id", (digest, issued, issued, first))
        if deferred:
            digest = db.execute(
                "INSERT INTO digests (list_code, volume, issue, period, reason, issued_at) "
                "VALUES (?, 1, ?, '2026', 'schedule', ?)", (list_code, history + 1, NOW - 3600)).lastrowid
            db.execute(
                "INSERT INTO deliveries (digest_id, subscriber_id, address, mode, state, attempts, "
                "next_attempt_at, last_attempt_at, last_reply) "
                "SELECT ?, s.id, p.address, s.mode, 'deferred', 1, ?, ?, '451 4.7.1 Try again later' "
                "FROM subscribers s JOIN people p ON p.id = s.person_id "
                "WHERE s.id >= ? ORDER BY s.id", (digest, NOW + 3600, NOW - 3600, first))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    print(f"store: {count:,} subscribers of {list_code} ({mode}), {history} digests delivered "
          f"to each{', one more deferred for each' if deferred else ''}, filled in {time.perf_counter() - started:.1f} s")
    return range(first, first + count)


def left(path, ids):
    db = sqlite3.connect(path)
    (gone,) = db.execute(
        "SELECT count(*) FROM subscribers WHERE id BETWEEN ? AND ? AND removed_at IS NOT NULL",
        (ids[0], ids[-1])).fetchone()
    db.close()
    return gone


def oneclick():
    subscribers = int(os.environ.get("SUBSCRIBERS", "100000"))
    history = int(os.environ.get("HISTORY", "3"))
    deferred = os.environ.get("DEFERRED", "0") == "1"
    runs = int(os.environ.get("RUNS", "5"))
    duration = int(os.environ.get("DURATION", "5"))
    connections = int(os.environ.get("CONNECTIONS", "32"))
    for needed in (BINARY, TOKENS):
        if not os.path.exists(needed):
            sys.exit(f"build first: cargo build --release && cargo build --example unsubscribe_tokens ({needed})")
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    work = tempfile.mkdtemp(prefix="tidings-oneclick-")
    try:
        config = write_config(work)
        path = create_store(work, config)
        ids = fill(path, subscribers, history=history, deferred=deferred)
        tokens = os.path.join(work, "tokens")
        with open(tokens, "w") as out:
            subprocess.run([TOKENS, os.path.join(work, "data")], check=True, stdout=out,
                           input="".join(f"{i}\n" for i in ids).encode())
        share = subscribers // runs
        print(f"{os.cpu_count()} cores; {subprocess.check_output([BINARY, '--version']).decode().strip()}; "
              f"wrk -t2 -c{connections} -d{duration}s, {runs} runs of at most {share:,} distinct tokens")
        rates, costs = [], []
        for run in range(runs):
            daemon = Daemon(work, config)
            host, port = daemon.address("http")
            cpu_before = daemon.cpu_seconds()
            env = dict(os.environ, ONECLICK_TOKENS=tokens, ONECLICK_FIRST=str(run * share),
                       ONECLICK_COUNT=str(share), ONECLICK_THREADS="2")
            output = subprocess.run(
                ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
                 "-s", os.path.join(ROOT, "benches", "oneclick.lua"), f"http://{host}:{port}/"],
                env=env, check=True, capture_output=True, text=True).stdout
            figures = json.loads(output.strip().splitlines()[-1])
            cpu = daemon.cpu_seconds() - cpu_before
            # Killed, not stopped: what the store holds now is what was
            # committed before each answer.
            daemon.stop(signal.SIGKILL)
            slice_ids = ids[run * share:(run + 1) * share]
            gone = left(path, slice_ids)
            ok = figures["requests"] - figures["non_2xx"]
            rate = figures["requests"] / (figures["duration_us"] / 1e6)
            rates.append(rate)
            costs.append(cpu * 1e6 / max(figures["requests"], 1))
            problems = {k: v for k, v in figures.items() if k.endswith(("errors", "timeouts", "non_2xx")) and v}
            print(f"run {run + 1}: {figures['requests']:,} POSTs in {figures['duration_us'] / 1e6:.2f} s = "
                  f"{rate:,.0f}/s; latency p50 {figures['latency_p50_us'] / 1000:.2f} ms, "
                  f"p99 {figures['latency_p99_us'] / 1000:.2f} ms; daemon CPU {cpu:.2f} s "
                  f"({cpu * 1e6 / max(figures['requests'], 1):.0f} µs a POST); {ok:,} answered 200, {gone:,} left "
                  f"in the store after SIGKILL{'; ' + str(problems) if problems else ''}")
            if gone < ok:
                sys.exit(f"only {gone} of {ok} acknowledged unsubscribes are in the store")
        print(f"one-click POSTs/s, median of {runs}: {statistics.median(rates):,.0f} "
              f"(runs: {', '.join(f'{r:,.0f}' for r in rates)}); daemon CPU a POST, median: "
              f"{statistics.median(costs):.0f} µs")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def memory():
    subscribers = int(os.environ.get("SUBSCRIBERS", "1000000"))
    send_seconds = float(os.environ.get("SEND_SECONDS", "60"))
    if not os.path.exists(BINARY):
        sys.exit(f"build first: cargo build --release ({BINARY})")
    work = tempfile.mkdtemp(prefix="tidings-memory-")
    sink = None
    try:
        sink_port = free_port()
        sink = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "root", f"127.0.0.1:{sink_port}", "1024"])

        def edit(text):
            text = replace(text, 'transport = "file"', 'transport = "smtp"')
            text = replace(text, "\nport = 25\n", f"\nport = {sink_port}\n")
            text = replace(text, 'tls = "opportunistic"', 'tls = "none"')
            return replace(text, 'code = "en"\n', 'code = "en"\ndigest_size_threshold = 1\n')

        config = write_config(work, edit)
        path = create_store(work, config)
        fill(path, subscribers)
        daemon = Daemon(work, config)
        print(f"{os.cpu_count()} cores; {subprocess.check_output([BINARY, '--version']).decode().strip()}; "
              f"{subscribers:,} subscribers, smtp-sink on 127.0.0.1:{sink_port}")
        http_host, http_port = daemon.address("http")

        def page(path):
            with urllib.request.urlopen(f"http://{http_host}:{http_port}{path}", timeout=60) as answer:
                answer.read()
                return answer.status

        time.sleep(2)
        figures = daemon.status()
        print(f"idle: VmRSS {figures['VmRSS'] / 1024:.1f} MB, VmHWM {figures['VmHWM'] / 1024:.1f} MB")
        pages = [page(p) for p in ("/healthz", "/lists/en/subscribe", "/feeds/en.atom")]

        host, port = daemon.address("smtp")
        started = time.monotonic()
        with smtplib.SMTP(host, port, timeout=60) as smtp:
            smtp.sendmail("writer@example.org", ["a-infos-en@lists.example.org"],
                          "From: Writer <writer@example.org>\r\nTo: a-infos-en@lists.example.org\r\n"
                          "Subject: (en) General strike called\r\nMessage-ID: <memory-bench@example.org>\r\n"
                          "Date: Sun, 22 Nov 2026 08:00:00 +0000\r\n\r\nWorkers walk out at noon.\r\n")
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        peak_rss, issued_at, sent = 0, None, 0
        while time.monotonic() - started < send_seconds + 600:
            time.sleep(0.5)
            peak_rss = max(peak_rss, daemon.status()["VmRSS"])
            states = dict(db.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall())
            queued = sum(states.values())
            sent = states.get("sent", 0)
            if queued and issued_at is None:
                issued_at = time.monotonic()
                figures = daemon.status()
                print(f"digest issued to {queued:,} after {issued_at - started:.1f} s: "
                      f"VmRSS {figures['VmRSS'] / 1024:.1f} MB, VmHWM {figures['VmHWM'] / 1024:.1f} MB")
                pages += [page(p) for p in ("/healthz", "/lists/en/subscribe", "/feeds/en.atom")]
            if issued_at is not None and (sent >= subscribers or time.monotonic() - issued_at > send_seconds):
                break
        db.close()
        figures = daemon.status()
        sending = time.monotonic() - issued_at if issued_at else 0
        print(f"after {sending:.0f} s of sending, {sent:,} sent ({sent / max(sending, 1e-9):,.0f}/s): "
              f"VmRSS {figures['VmRSS'] / 1024:.1f} MB, peak sampled VmRSS {peak_rss / 1024:.1f} MB, "
              f"VmHWM {figures['VmHWM'] / 1024:.1f} MB; pages answered {sorted(set(pages))}")
        daemon.stop()
    finally:
        if sink is not None:
            sink.kill()
            sink.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    {"oneclick": oneclick, "memory": memory}[sys.argv[1] if len(sys.argv) > 1 else "oneclick"]()
