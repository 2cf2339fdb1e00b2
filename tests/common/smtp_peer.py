#!/usr/bin/env python3
"""A scriptable SMTP server for the digest tests (aiosmtpd).

Listens on 127.0.0.1 on a free port, prints "PORT <n>" on stdout, and writes
every accepted message to OUT/NNNNNN.eml with its envelope in
OUT/NNNNNN.json (written before the 250 reply, renamed into place so a
reader never sees half a file). Behaviours:

  --reject ADDR     answer RCPT TO:<ADDR> with 550 (repeatable)
  --defer ADDR      answer RCPT TO:<ADDR> with 450, every time (repeatable)
  --defer-first     answer the first DATA for each recipient with 451
  --delay SECONDS   wait this long after storing a message before the 250
                    (a slow peer, to kill the client mid fan-out)
  --cert PEM --key PEM
                    offer STARTTLS with this certificate and key
  --require-starttls
                    refuse mail until the client has started TLS
  --implicit-tls    speak TLS from the first byte (port 465 style)
  --auth USER:PASS  require AUTH (PLAIN or LOGIN) with these credentials,
                    over TLS only
  --pipelining      offer PIPELINING (RFC 2920), and record in each
                    message's .json whether its DATA had arrived already
                    when its RCPT was answered ("pipelined")

Each message's .json also says whether its session was encrypted ("tls")
and under which login it was authenticated ("login", or null).

Runs until SIGTERM or SIGINT.
"""

import argparse
import asyncio
import json
import os
import signal
import sys

import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler:
    def __init__(self, out, reject, defer, defer_first, delay, pipelining=False):
        self.pipelining = pipelining
        self.out = out
        self.reject = {address.lower() for address in reject}
        self.defer = {address.lower() for address in defer}
        self.defer_first = defer_first
        self.delay = delay
        self.deferred = set()
        self.count = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # What the client wrote after this RCPT and before our reply is
        # still in the reader's buffer: with pipelining, the DATA.
        envelope.pipelined = bool(server._reader._buffer)
        if address.lower() in self.reject:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if address.lower() in self.defer:
            return "450 4.2.1 <%s>: Recipient address rejected: Mailbox busy" % address
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
            login = session.auth_data if session.authenticated else None
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "mail_options": envelope.mail_options,
                       "tls": server.transport.get_extra_info("ssl_object") is not None,
                       "login": login,
                       "pipelined": getattr(envelope, "pipelined", False)}, f)
        os.rename(name + ".tmp", name + ".eml")
        if self.delay:
            # A relay deliberately slow (--delay): the scenario of tests that
            # need a fan-out long enough to interrupt, not a wait on anything.
            await asyncio.sleep(self.delay)
        return "250 2.0.0 Ok: queued as %06d" % self.count


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--reject", action="append", default=[])
    parser.add_argument("--defer", action="append", default=[])
    parser.add_argument("--defer-first", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--require-starttls", action="store_true")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--auth")
    parser.add_argument("--pipelining", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    handler = Handler(args.out, args.reject, args.defer, args.defer_first, args.delay,
                      args.pipelining)
    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    options = {}
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword)
                  and auth_data.login == user.encode()
                  and auth_data.password == password.encode())
            return AuthResult(success=ok, handled=False,
                              auth_data=user if ok else None)

        # aiosmtpd's own check knows STARTTLS only; implicit TLS is TLS too.
        options = {"authenticator": authenticator, "auth_required": True,
                   "auth_require_tls": not args.implicit_tls}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="peer.test", data_size_limit=64 * 1024 * 1024,
                     tls_context=None if args.implicit_tls else context,
                     require_starttls=args.require_starttls, **options),
        host="127.0.0.1", port=0, ssl=context if args.implicit_tls else None)
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
