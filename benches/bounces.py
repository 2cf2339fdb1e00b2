#!/usr/bin/env python3
"""Times bounce processing: N RFC 3464 bounces mailed by LMTP to a running
`tidings serve` (release build), each to a subscriber's VERP address
LIST-bounces+user=host@domain, over a few connections, as an MTA hands
them on. Prints the wall time from the first message to the last answer
(each answer comes after the bounce is stored and scored) and how many
subscribers ended disabled.

    cargo build --release
    python3 benches/bounces.py --tidings target/release/tidings --n 10000

Each of N/5 subscribers bounces five times (permanent, 5.1.1). A day
counts once in the score, so nobody reaches the threshold within the run:
the figure is the cost of reading, storing and scoring every bounce.
"""

import argparse
import json
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

DSN = """From: MAILER-DAEMON@mx.example{host:02d}.org
To: {verp}
Subject: Undelivered Mail Returned to Sender
Date: Tue, 01 Dec 2026 10:00:{second:02d} +0000
Message-ID: <bounce-{n}@mx.example{host:02d}.org>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b{n}"

--b{n}
Content-Type: text/plain

This is the mail system at host mx.example{host:02d}.org.
I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{address}>: host mx.example{host:02d}.org said: 550 5.1.1 User unknown

--b{n}
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example{host:02d}.org
Arrival-Date: Tue, 01 Dec 2026 10:00:00 +0000

Final-Recipient: rfc822; {address}
Original-Recipient: rfc822;{address}
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example{host:02d}.org
Diagnostic-Code: smtp; 550 5.1.1 <{address}>: Recipient address rejected: User unknown

--b{n}
Content-Type: text/rfc822-headers

From: A-Infos English <a-infos-en@lists.example.org>
To: {address}
Subject: A-Infos English digest, Vol 1, Issue 1
List-Id: <en.lists.example.org>

--b{n}--
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tidings", required=True)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    tidings = os.path.abspath(args.tidings)
    here = os.path.dirname(os.path.abspath(__file__))
    work = tempfile.mkdtemp(prefix="tidings-bounces-")
    try:
        shutil.copy(os.path.join(here, "..", "lists.toml"), work)
        config = os.path.join(work, "lists.toml")
        people = max(1, args.n // 5)
        roster = os.path.join(work, "roster.csv")
        with open(roster, "w") as out:
            out.write("address,name,mode,lists\n")
            for i in range(people):
                out.write(f"reader{i:06d}@example{i % 100:02d}.org,,mime,en\n")
        subprocess.run([tidings, "--config", config, "subscribers", "import", roster, "--no-confirm"],
                       check=True, stdout=subprocess.DEVNULL)
        daemon = subprocess.Popen(
            [tidings, "--config", config, "serve", "--lmtp-listen", "127.0.0.1:0",
             "--smtp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "serve.log"), "w"))
        serve_json = os.path.join(work, "data", "serve.json")
        for _ in range(600):
            try:
                with open(serve_json) as f:
                    addresses = json.load(f)
                if addresses["pid"] == daemon.pid:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        host, port = addresses["lmtp"].rsplit(":", 1)
        messages = []
        for n in range(args.n):
            i = n % people
            address = f"reader{i:06d}@example{i % 100:02d}.org"
            local, domain = address.split("@")
            verp = f"a-infos-en-bounces+{local}={domain}@lists.example.org"
            messages.append((verp, DSN.format(n=n, host=i % 100, verp=verp, address=address,
                                              second=n % 60).replace("\n", "\r\n").encode()))
        failures = []

        def send(part):
            client = smtplib.LMTP(host, int(port))
            for verp, message in part:
                refused = client.sendmail("", [verp], message)
                if refused:
                    failures.append(refused)
            client.quit()

        parts = [messages[k::args.connections] for k in range(args.connections)]
        started = time.monotonic()
        threads = [threading.Thread(target=send, args=(part,)) for part in parts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        shown = subprocess.run([tidings, "--config", config, "bounces"], capture_output=True, text=True).stdout
        daemon.terminate()
        daemon.wait()
        disabled = shown.count("disabled")
        print(json.dumps({"bounces": args.n, "seconds": round(elapsed, 2),
                          "per_second": round(args.n / elapsed), "refused": len(failures),
                          "disabled_lines": disabled}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
