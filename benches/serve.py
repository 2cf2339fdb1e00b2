#!/usr/bin/env python3
"""Daemon benchmark: SMTP submissions, feed polling over HTTP, idle cost.

Run from the repository root after a release build:

    cargo build --release && python3 benches/serve.py

1. Starts `target/release/tidings serve` on free loopback ports with the
   shipped lists.toml in a temporary directory.
2. Submissions: 8 concurrent SMTP clients (Python's smtplib, one connection
   each) send 20,000 distinct posts of about 4 KB; every 250 is an
   acknowledged, committed post. Reports durable posts/s and the median and
   99th percentile latency of one message (DATA sent to 250 received), then
   checks that the store holds every acknowledged post.
3. HTTP: `wrk` polls /feeds/en.atom for 10 s with the feed's ETag in
   If-None-Match, so every answer is a 304; reports requests/s.
4. Idle: resident memory and CPU time of the daemon over 10 idle seconds.
"""

import json
import os
import re
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# TIDINGS=path/to/tidings measures another build (e.g. the previous commit's).
BINARY = os.environ.get("TIDINGS", os.path.join(ROOT, "target", "release", "tidings"))
CLIENTS = 8
POSTS = int(os.environ.get("BENCH_POSTS", "20000"))

PARAGRAPH = ("Everyone has the right to freedom of peaceful assembly and association. "
             "No one may be compelled to belong to an association. ") * 3


def message(client, index):
    body = "\r\n".join([PARAGRAPH[i:i + 72] for i in range(0, len(PARAGRAPH), 72)] * 8)
    return (f"From: Bench {client} <bench{client}@example.org>\r\n"
            f"To: a-infos-en@lists.example.org\r\n"
            f"Subject: (en) Benchmark post {client}-{index}\r\n"
            f"Message-ID: <bench-{client}-{index}@example.org>\r\n"
            f"Date: Sun, 22 Nov 2026 08:00:00 +0000\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n")


def start(directory):
    config = os.path.join(directory, "lists.toml")
    shutil.copy(os.path.join(ROOT, "lists.toml"), config)
    log = open(os.path.join(directory, "serve.log"), "w")
    process = subprocess.Popen([BINARY, "--config", config, "serve", "--lmtp-listen", "127.0.0.1:0",
                                "--smtp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
                               cwd=directory, stdout=subprocess.DEVNULL, stderr=log)
    serve_json = os.path.join(directory, "data", "serve.json")
    for _ in range(200):
        if os.path.exists(serve_json):
            addresses = json.load(open(serve_json))
            if addresses["pid"] == process.pid:
                return process, addresses, config
        time.sleep(0.05)
    sys.exit("tidings serve did not start")


def submissions(host, port):
    latencies = [[] for _ in range(CLIENTS)]
    acked = [[] for _ in range(CLIENTS)]
    per_client = POSTS // CLIENTS

    def client(n):
        smtp = smtplib.SMTP(host, port)
        smtp.ehlo("bench")
        for i in range(per_client):
            data = message(n, i).encode()
            smtp.mail("bench@example.org")
            smtp.rcpt("a-infos-en@lists.example.org")
            started = time.perf_counter()
            code, _ = smtp.data(data)
            latencies[n].append((time.perf_counter() - started) * 1000)
            if code == 250:
                acked[n].append(f"<bench-{n}-{i}@example.org>")
        smtp.quit()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    flat = sorted(x for client in latencies for x in client)
    return {
        "posts": len(flat),
        "acknowledged": sum(len(a) for a in acked),
        "seconds": round(seconds, 2),
        "posts_per_s": round(len(flat) / seconds),
        "median_ms": round(statistics.median(flat), 2),
        "p99_ms": round(flat[int(len(flat) * 0.99)], 2),
    }, [mid for client in acked for mid in client]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    if not os.path.exists(BINARY):
        sys.exit("build first: cargo build --release")
    directory = tempfile.mkdtemp(prefix="tidings-serve-bench-")
    process, addresses, config = start(directory)
    try:
        time.sleep(2)
        idle_before = cpu_seconds(process.pid)
        time.sleep(10)
        idle = {"rss_mb": round(rss_kb(process.pid) / 1024, 1),
                "cpu_seconds_in_10s": round(cpu_seconds(process.pid) - idle_before, 3)}

        host, port = addresses["smtp"].rsplit(":", 1)
        submitted, acked = submissions(host, int(port))
        posts = subprocess.run([BINARY, "--config", config, "posts", "--json"], capture_output=True,
                               text=True, check=True).stdout.splitlines()
        stored = {json.loads(line)["message_id"] for line in posts}
        submitted["all_acknowledged_stored"] = all(mid in stored for mid in acked)

        http = addresses["http"]
        url = f"http://{http}/feeds/en.atom"
        time.sleep(2)  # the debounced feed rebuild
        etag = urllib.request.urlopen(url).headers["ETag"]
        wrk = subprocess.run(["wrk", "-t2", "-c32", "-d10s", "-H", f"If-None-Match: {etag}", url],
                             capture_output=True, text=True, check=True).stdout
        requests = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1))
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)
        http_result = {"requests_per_s_304": round(requests), "wrk": " ".join(wrk.split()[-12:]),
                       "non_304": int(non_2xx.group(1)) if non_2xx else 0}
        print(json.dumps({"submissions": submitted, "http": http_result, "idle": idle}, indent=2))
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
