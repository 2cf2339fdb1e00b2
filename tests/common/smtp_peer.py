#!/usr/bin/env python3
"""A scriptable SMTP server for the digest tests (aiosmtpd).

Listens on 127.0.0.1 on a free port, prints "PORT <n>" on stdout, and writes
every accepted message to OUT/NNNNNN.eml with its envelope in
OUT/NNNNNN.json (written before the 250 reply, renamed into place so a
reader never sees half a file). Behaviours:

  --reject ADDR     answer RCPT TO:<ADDR> with 550 (repeatable)
  --defer-first     answer the first DATA for each recipient with 451
  --delay SECONDS   wait this long after storing a message before the 250
                    (a slow peer, to kill the client mid fan-out)

Runs until SIGTERM or SIGINT.
"""

import argparse
import asyncio
import json
import os
import signal
import sys

from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self, out, reject, defer_first, delay):
        self.out = out
        self.reject = {address.lower() for address in reject}
        self.defer_first = defer_first
        self.delay = delay
        self.deferred = set()
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        recipients = [r.lower() for r in envelope.rcpt_tos]
        key = tuple(recipients)
        if self.defer_first and key not in self.deferred:
            self.deferred.add(key)
            return "451 4.3.0 Temporary failure, try again later"
        self.count += 1
        name = os.path.join(self.out, "%06d" % self.count)
        with open(name + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        with open(name + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "mail_options": envelope.mail_options}, f)
        os.rename(name + ".tmp", name + ".eml")
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 2.0.0 Ok: queued as %06d" % self.count


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--reject", action="append", default=[])
    parser.add_argument("--defer-first", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    handler = Handler(args.out, args.reject, args.defer_first, args.delay)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="peer.test", data_size_limit=64 * 1024 * 1024),
        host="127.0.0.1", port=0)
    port = server.sockets[0].getsockname()[1]
    print("PORT %d" % port, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
