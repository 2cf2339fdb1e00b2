#!/usr/bin/env python3
"""Ingest benchmark: bulk import throughput, `tidings ingest` latency, peak memory.

Run from the repository root after a release build:

    cargo build --release && python3 benches/ingest.py

It generates 100,000 A-Infos-style posts with ../shared/corpus/gen-posts.py
(cached under target/bench-data/), imports them into a fresh store three
times and reports the median throughput and the peak resident memory of the
import, then pipes 200 distinct messages through `tidings ingest`, one
process each, and reports the median and 90th percentile latency including
process start. Figures go to stdout; copy them into BENCHMARKS.md.
"""

import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
# TIDINGS=path/to/tidings measures another build (e.g. the previous commit's).
BINARY = os.environ.get("TIDINGS", os.path.join(ROOT, "target", "release", "tidings"))
DATA = os.path.join(ROOT, "target", "bench-data")
POSTS = int(os.environ.get("BENCH_POSTS", "100000"))


def generate(fmt, name, n, seed):
    out = os.path.join(DATA, name)
    if not os.path.exists(out):
        os.makedirs(DATA, exist_ok=True)
        print(f"generating {n} posts into {out} ...", file=sys.stderr)
        subprocess.run(
            [sys.executable, os.path.join(SHARED, "corpus", "gen-posts.py"), "--tags", "ainfos",
             "--n", str(n), "--seed", str(seed), "--format", fmt, "--out", out, "--no-verify"],
            check=True, stdout=subprocess.DEVNULL)
    return out


def fresh_config(directory):
    with open(os.path.join(ROOT, "lists.toml")) as shipped:
        text = shipped.read()
    path = os.path.join(directory, "lists.toml")
    with open(path, "w") as config:
        config.write(text)
    return path


def child_peak_rss_mb(before):
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024


def bench_import(mbox):
    rates, peaks = [], []
    for run in range(3):
        directory = tempfile.mkdtemp(prefix="tidings-bench-")
        config = fresh_config(directory)
        # ru_maxrss of children is the largest of all children so far: run
        # each import in its own Python child so the figure is its own.
        code = ("import resource,subprocess,sys,time;t=time.monotonic();"
                "p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
                "print(time.monotonic()-t);print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
                "print(p.stdout);sys.exit(p.returncode)")
        result = subprocess.run([sys.executable, "-c", code, BINARY, "--config", config, "import", mbox],
                                capture_output=True, text=True, check=True)
        seconds, rss_kb, summary = result.stdout.split("\n", 2)
        imported = int(re.search(r"imported (\d+) messages", summary).group(1))
        stored = int(re.search(r"stored\s+(\d+)", summary).group(1))
        rates.append(imported / float(seconds))
        peaks.append(int(rss_kb) / 1024)
        count = subprocess.run([BINARY, "--config", config, "posts", "--json"], capture_output=True,
                               text=True, check=True).stdout.count("\n")
        assert count == stored + int(re.search(r"held\s+(\d+)", summary).group(1)) + \
            int(re.search(r"rejected\s+(\d+)", summary).group(1)), "every post durable at the end"
        print(f"  run {run + 1}: {imported} messages in {float(seconds):.2f} s = {rates[-1]:,.0f}/s, "
              f"peak RSS {peaks[-1]:.1f} MB", file=sys.stderr)
        shutil.rmtree(directory)
    return statistics.median(rates), max(peaks), imported


def bench_ingest(emls):
    directory = tempfile.mkdtemp(prefix="tidings-bench-")
    config = fresh_config(directory)
    files = sorted(f for f in os.listdir(emls) if f.endswith(".eml"))
    # One warm-up delivery creates the store and its schema.
    subprocess.run([BINARY, "--config", config, "ingest"], stdin=open(os.path.join(emls, files[0]), "rb"), check=True)
    timings = []
    for name in files[1:]:
        with open(os.path.join(emls, name), "rb") as message:
            started = time.perf_counter()
            subprocess.run([BINARY, "--config", config, "ingest"], stdin=message, check=True)
            timings.append((time.perf_counter() - started) * 1000)
    # Each stored post started a detached feed rebuild: wait for the last.
    subprocess.run([BINARY, "--config", config, "feeds"], check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(directory, ignore_errors=True)
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.9)], len(timings)


def main():
    if not os.path.exists(BINARY):
        sys.exit("build first: cargo build --release")
    mbox = generate("mbox", f"posts-{POSTS}.mbox", POSTS, 1)
    size_mb = os.path.getsize(mbox) / 1e6
    rate, peak, imported = bench_import(mbox)
    emls = generate("eml", "emls-201", 201, 2)
    median, p90, runs = bench_ingest(emls)
    print(json.dumps({
        "import": {"messages": imported, "mbox_mb": round(size_mb, 1), "median_posts_per_s": round(rate),
                   "peak_rss_mb": round(peak, 1)},
        "ingest": {"runs": runs, "median_ms": round(median, 2), "p90_ms": round(p90, 2)},
    }, indent=2))


if __name__ == "__main__":
    main()
