#!/usr/bin/env python3
"""Floods benchmark: how quickly the daemon answers, and how much mail it
takes, while it is flooded (issue 13, promise 5).

Run from the repository root after a release build, as a user whose hard
open-files limit allows 20,000 sockets (the daemon and the flooding process
each raise their soft limit to it):

    cargo build --release && python3 benches/floods.py

Starts `target/release/tidings serve` on free loopback ports with the
shipped lists.toml in a temporary directory, then runs each flood for
PHASE seconds (BENCH_PHASE, default 10), one after another (or those
BENCH_PHASES names, comma-separated), with a quiet pause between:

- baseline: no flood.
- smtp-1000: 1,000 SMTP clients at once from 125 addresses (127.1.0.x, 8
  each, the per-address limit), each sending posts back to back, and
  coming back after a pause when told 421.
- smtp-slowloris: 256 SMTP clients from 64 addresses sending `EHLO` a byte
  every 2 s, coming back when closed.
- http-slowloris: 2,000 HTTP clients sending a request head a byte every
  2 s, coming back when closed.
- http-idle-20000: 20,000 HTTP connections that send nothing, opened 500 at
  a time and held.
- subscribe-10000: 10,000 subscribe POSTs for one address, 32 keep-alive
  connections.
- oneclick-forged-10000: 10,000 RFC 8058 one-click POSTs with forged
  tokens, 32 keep-alive connections.

Throughout, in processes of their own (so the flood's Python does not
delay them): a probe from 127.0.0.2 that every 50 ms times the SMTP banner,
the LMTP banner and GET /healthz, each on a new connection; one LMTP and
one SMTP client (127.0.0.3) sending posts back to back, whose posts a
second are the throughput held; the daemon's resident memory every 100 ms.

Prints, per phase, the medians, 99th percentiles and maxima of the probe's
times (ms) and the replies it got, the posts a second each client got
through, the peak resident memory, and what the flood itself did; then the
daemon's peak resident memory over the run (VmHWM) and what the forged
one-clicks and the subscribe flood changed in the store (nothing, and
three confirmations).
"""

import asyncio
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("TIDINGS", os.path.join(ROOT, "target", "release", "tidings"))
PHASE = float(os.environ.get("BENCH_PHASE", "10"))
PAUSE = 3.0
LIST = "a-infos-en@lists.example.org"


def raise_open_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def start(directory):
    config = os.path.join(directory, "lists.toml")
    log = open(os.path.join(directory, "serve.log"), "w")
    process = subprocess.Popen([BINARY, "--config", config, "serve", "--lmtp-listen", "127.0.0.1:0",
                                "--smtp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
                               cwd=directory, stdout=subprocess.DEVNULL, stderr=log)
    serve_json = os.path.join(directory, "data", "serve.json")
    for _ in range(400):
        if os.path.exists(serve_json):
            addresses = json.load(open(serve_json))
            if addresses["pid"] == process.pid:
                return process, addresses, config
        time.sleep(0.05)
    sys.exit("tidings serve did not start")


def split(address):
    host, port = address.rsplit(":", 1)
    return host, int(port)


def message(sender, index):
    return (f"From: Flood {sender} <flood@example.org>\r\n"
            f"To: {LIST}\r\n"
            f"Subject: (en) Flood {sender} {index}\r\n"
            f"Message-ID: <flood-{sender}-{index}-{os.getpid()}@example.org>\r\n"
            f"Date: Sun, 22 Nov 2026 08:00:00 +0000\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"A post of the flood, {index}.\r\n.\r\n").encode()


# --- Beside the floods: probe, steady senders, memory -----------------------

def probe(addresses, pid, out, stop):
    """Every 50 ms: the SMTP and LMTP banners and /healthz, each timed on a
    new connection from 127.0.0.2; the daemon's RSS every 100 ms."""
    smtp, lmtp, http = split(addresses["smtp"]), split(addresses["lmtp"]), split(addresses["http"])
    records = open(out, "w")
    last_rss = 0.0
    while not stop.is_set():
        now = time.monotonic()
        for kind, target in (("smtp", smtp), ("lmtp", lmtp)):
            started = time.monotonic()
            try:
                with socket.create_connection(target, timeout=30, source_address=("127.0.0.2", 0)) as s:
                    line = s.makefile("rb").readline()
                    code = line[:3].decode() or "closed"
                    if code == "220":
                        s.sendall(b"QUIT\r\n")
            except OSError as error:
                code = type(error).__name__
            records.write(json.dumps([started, kind, (time.monotonic() - started) * 1000, code]) + "\n")
        started = time.monotonic()
        try:
            with socket.create_connection(http, timeout=30, source_address=("127.0.0.2", 0)) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
                code = answer[9:12].decode() or "closed"
        except OSError as error:
            code = type(error).__name__
        records.write(json.dumps([started, "healthz", (time.monotonic() - started) * 1000, code]) + "\n")
        if now - last_rss >= 0.1:
            last_rss = now
            try:
                rss = int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{pid}/status").read()).group(1))
                records.write(json.dumps([now, "rss", rss / 1024, ""]) + "\n")
            except (OSError, AttributeError):
                pass
        time.sleep(max(0.0, 0.05 - (time.monotonic() - now)))
    records.close()


def steady(kind, address, out, stop):
    """One client sending posts back to back by `kind`; a record per post
    taken (and per refusal)."""
    host, port = split(address)
    source = "127.0.0.3" if kind == "smtp" else "127.0.0.1"
    records = open(out, "w")
    index = 0
    while not stop.is_set():
        try:
            with socket.create_connection((host, port), timeout=30, source_address=(source, 0)) as s:
                reader = s.makefile("rb")

                def reply():
                    while True:
                        line = reader.readline()
                        if not line or line[3:4] != b"-":
                            return line

                if not reply().startswith(b"220"):
                    records.write(json.dumps([time.monotonic(), kind, 0, "refused"]) + "\n")
                    time.sleep(0.1)
                    continue
                s.sendall(b"LHLO steady\r\n" if kind == "lmtp" else b"EHLO steady\r\n")
                reply()
                while not stop.is_set():
                    started = time.monotonic()
                    s.sendall(f"MAIL FROM:<steady@example.org>\r\nRCPT TO:<{LIST}>\r\nDATA\r\n".encode())
                    answers = [reply() for _ in range(3)]
                    if not answers[2].startswith(b"354"):
                        break
                    s.sendall(message(f"steady-{kind}", index))
                    index += 1
                    code = reply()[:3].decode() or "closed"
                    records.write(json.dumps([started, kind, (time.monotonic() - started) * 1000, code]) + "\n")
                    if code != "250":
                        break
        except OSError as error:
            records.write(json.dumps([time.monotonic(), kind, 0, type(error).__name__]) + "\n")
            time.sleep(0.1)
    records.close()


# --- The floods ---------------------------------------------------------------

async def smtp_sender(target, source, until, stats, sender):
    index = 0
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*target, local_addr=(source, 0)), 10)
        except (OSError, asyncio.TimeoutError):
            stats["no connection"] += 1
            await asyncio.sleep(0.5)
            continue
        try:
            async def reply():
                while True:
                    line = await reader.readline()
                    if not line or line[3:4] != b"-":
                        return line

            banner = await reply()
            if not banner.startswith(b"220"):
                stats["told 421"] += 1
                writer.close()
                await asyncio.sleep(random.uniform(0.2, 1.0))
                continue
            stats["greeted"] += 1
            writer.write(b"EHLO flood\r\n")
            await reply()
            while time.monotonic() < until:
                writer.write(f"MAIL FROM:<flood@example.org>\r\nRCPT TO:<{LIST}>\r\nDATA\r\n".encode())
                answers = [await reply() for _ in range(3)]
                if not answers[2].startswith(b"354"):
                    break
                writer.write(message(sender, index))
                index += 1
                if (await reply()).startswith(b"250"):
                    stats["posts taken"] += 1
            writer.write(b"QUIT\r\n")
        except (OSError, asyncio.IncompleteReadError):
            stats["dropped"] += 1
        finally:
            writer.close()


async def trickler(target, source, until, stats, text, gap):
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*target, local_addr=(source, 0)), 10)
        except (OSError, asyncio.TimeoutError):
            stats["no connection"] += 1
            await asyncio.sleep(0.5)
            continue
        stats["connections"] += 1
        try:
            for byte in text:
                if time.monotonic() >= until:
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                try:
                    got = await asyncio.wait_for(reader.read(4096), gap)
                except asyncio.TimeoutError:
                    continue
                if not got or got.startswith(b"421") or b" 408 " in got:
                    stats["closed by the daemon"] += 1
                    break
        except OSError:
            stats["closed by the daemon"] += 1
        finally:
            writer.close()


async def idle_http(target, count, until, stats):
    sockets = []
    gate = asyncio.Semaphore(500)

    async def open_one(n):
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(*target, local_addr=(f"127.2.{n % 200}.1", 0)), 10)
                sockets.append((reader, writer))
                stats["opened"] += 1
            except (OSError, asyncio.TimeoutError):
                stats["not opened"] += 1

    await asyncio.gather(*(open_one(n) for n in range(count)))
    await asyncio.sleep(max(0.0, until - time.monotonic()))
    stats["closed by the daemon"] = sum(1 for reader, _ in sockets if reader.at_eof() or reader.exception())
    for _, writer in sockets:
        writer.close()


async def http_requests(target, requests, count, stats):
    """`count` requests (each of `requests` in turn) over 32 keep-alive
    connections; their statuses."""
    if isinstance(requests, bytes):
        requests = [requests]
    remaining = [count]

    async def connection():
        reader = writer = None
        while remaining[0] > 0:
            if writer is None:
                reader, writer = await asyncio.open_connection(*target, local_addr=("127.3.0.1", 0))
            remaining[0] -= 1
            writer.write(requests[remaining[0] % len(requests)])
            try:
                status = await reader.readline()
                length = 0
                close = False
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                    if name.lower() == "connection" and "close" in value.lower():
                        close = True
                await reader.readexactly(length)
                stats[status[9:12].decode() or "closed"] += 1
            except (OSError, asyncio.IncompleteReadError):
                stats["dropped"] += 1
                close = True
            if close:
                writer.close()
                reader = writer = None

    await asyncio.gather(*(connection() for _ in range(32)))


def flood(name, addresses, result):
    """Runs flood `name` for PHASE seconds (the request floods until done);
    what it did, by outcome."""
    raise_open_files()
    from collections import Counter
    stats = Counter()
    smtp, http = split(addresses["smtp"]), split(addresses["http"])
    until = time.monotonic() + PHASE

    async def run():
        if name == "baseline":
            await asyncio.sleep(PHASE)
        elif name == "smtp-1000":
            await asyncio.gather(*(smtp_sender(smtp, f"127.1.0.{n % 125 + 1}", until, stats, f"{n}")
                                   for n in range(1000)))
        elif name == "smtp-slowloris":
            await asyncio.gather(*(trickler(smtp, f"127.4.0.{n % 64 + 1}", until, stats,
                                            b"EHLO slow.example.org\r\n", 2.0) for n in range(256)))
        elif name == "http-slowloris":
            head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\n\r\n"
            await asyncio.gather(*(trickler(http, f"127.5.{n % 100}.1", until, stats, head, 2.0)
                                   for n in range(2000)))
        elif name == "http-idle-20000":
            await idle_http(http, 20000, until, stats)
        elif name == "subscribe-10000":
            form = b"address=flooded%40example.net&mode=mime"
            request = (b"POST /lists/en/subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Content-Type: application/x-www-form-urlencoded\r\n"
                       b"Content-Length: " + str(len(form)).encode() + b"\r\n\r\n" + form)
            await http_requests(http, request, 10000, stats)
        elif name == "oneclick-forged-10000":
            rng = random.Random(7)
            body = b"List-Unsubscribe=One-Click"
            requests = []
            for _ in range(64):
                token = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(52))
                requests.append(f"POST /unsubscribe/{token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                "Content-Type: application/x-www-form-urlencoded\r\n"
                                f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await http_requests(http, requests, 10000, stats)
        else:
            raise ValueError(name)

    started = time.monotonic()
    asyncio.run(run())
    stats["seconds"] = round(time.monotonic() - started, 1)
    result.put(dict(stats))


PHASES = ["baseline", "smtp-1000", "smtp-slowloris", "http-slowloris", "http-idle-20000",
          "subscribe-10000", "oneclick-forged-10000"]
# BENCH_PHASES: a comma-separated choice of them, in their order.
if os.environ.get("BENCH_PHASES"):
    chosen = os.environ["BENCH_PHASES"].split(",")
    PHASES = [name for name in PHASES if name in chosen]


def quantiles(values):
    values = sorted(values)
    if not values:
        return None
    return {"median": round(statistics.median(values), 2),
            "p99": round(values[min(len(values) - 1, int(len(values) * 0.99))], 2),
            "max": round(values[-1], 2)}


def main():
    if not os.path.exists(BINARY):
        sys.exit("build first: cargo build --release")
    hard = raise_open_files()
    if hard < 21000:
        print(f"note: the hard open-files limit is {hard}; the idle flood opens what it can",
              file=sys.stderr)
    directory = tempfile.mkdtemp(prefix="tidings-floods-")
    config = os.path.join(directory, "lists.toml")
    shutil.copy(os.path.join(ROOT, "lists.toml"), config)
    # Readers the forged one-clicks must not take away.
    subprocess.run([BINARY, "--config", config, "subscribers", "add", "--list", "en", "--no-confirm"]
                   + [f"reader{n}@example.net" for n in range(100)],
                   cwd=directory, check=True, capture_output=True)
    process, addresses, config = start(directory)
    stop = multiprocessing.Event()
    files = {name: os.path.join(directory, f"{name}.jsonl") for name in ("probe", "lmtp", "smtp")}
    helpers = [multiprocessing.Process(target=probe, args=(addresses, process.pid, files["probe"], stop)),
               multiprocessing.Process(target=steady, args=("lmtp", addresses["lmtp"], files["lmtp"], stop)),
               multiprocessing.Process(target=steady, args=("smtp", addresses["smtp"], files["smtp"], stop))]
    windows = []
    floods = {}
    try:
        time.sleep(3)  # the first pages and feeds
        for helper in helpers:
            helper.start()
        time.sleep(PAUSE)
        for name in PHASES:
            result = multiprocessing.Queue()
            worker = multiprocessing.Process(target=flood, args=(name, addresses, result))
            began = time.monotonic()
            worker.start()
            floods[name] = result.get()
            worker.join()
            windows.append((name, began, time.monotonic()))
            print(f"{name}: {floods[name]}", file=sys.stderr)
            time.sleep(PAUSE)
        stop.set()
        for helper in helpers:
            helper.join(timeout=60)
        peak = int(re.search(r"VmHWM:\s+(\d+)", open(f"/proc/{process.pid}/status").read()).group(1))
    finally:
        stop.set()
        process.terminate()
        process.wait(timeout=60)

    def load(path):
        with open(path) as lines:
            return [json.loads(line) for line in lines]

    probed, sent = load(files["probe"]), {kind: load(files[kind]) for kind in ("lmtp", "smtp")}
    report = {}
    for name, began, ended in windows:
        inside = [r for r in probed if began <= r[0] < ended]
        phase = {"seconds": round(ended - began, 1)}
        for kind in ("smtp", "lmtp", "healthz"):
            phase[f"probe {kind} ms"] = quantiles([r[2] for r in inside if r[1] == kind])
        replies = {}
        for r in inside:
            if r[1] != "rss":
                replies[f"{r[1]} {r[3]}"] = replies.get(f"{r[1]} {r[3]}", 0) + 1
        phase["probe replies"] = replies
        for kind in ("lmtp", "smtp"):
            taken = [r for r in sent[kind] if began <= r[0] < ended and r[3] == "250"]
            phase[f"steady {kind} posts/s"] = round(len(taken) / (ended - began), 1)
        rss = [r[2] for r in inside if r[1] == "rss"]
        phase["rss peak MB"] = round(max(rss), 1) if rss else None
        phase["flood"] = floods[name]
        report[name] = phase
    report["daemon peak RSS MB (VmHWM)"] = round(peak / 1024, 1)
    report["after"] = after(config, directory)
    print(json.dumps(report, indent=2))
    shutil.rmtree(directory)


def after(config, directory):
    """What the floods changed: subscriptions (the forged one-clicks must
    change none) and confirmations sent to the flooded address."""
    subscribers = subprocess.run([BINARY, "--config", config, "subscribers", "list", "--list", "en"],
                                 capture_output=True, text=True, cwd=directory).stdout
    outbox = os.path.join(directory, "data", "outbox")
    confirmations = 0
    if os.path.isdir(outbox):
        for name in os.listdir(outbox):
            if name.endswith(".json"):
                envelope = json.load(open(os.path.join(outbox, name)))
                if "flooded@example.net" in json.dumps(envelope):
                    confirmations += 1
    return {"subscribers of en": len([l for l in subscribers.splitlines() if "@" in l]),
            "confirmations to the flooded address": confirmations}


if __name__ == "__main__":
    main()
