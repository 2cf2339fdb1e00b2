#!/usr/bin/env python3
"""A scriptable SMTP server for the digest tests (aiosmtpd).

Listens on 127.0.0.1 on a free port, prints "PORT <n>" on stdout, and writes
every accepted message to OUT/NNNNNN.eml with its envelope in
OUT/NNNNNN.json (written before the 250 reply, renamed into place so a
reader never sees half a file). Behaviours:

  --reject ADDR     answer RCPT TO:<ADDR> with 550 (repeatable)
  --defer ADDR      answer RCPT TO:<ADDR> with 450, every time (repeatable)
  --defer-first     answer the first DATA for each recipient with 451
  --defer-data N    answer the first N DATA for each recipient with 451
                    (--defer-first is --defer-data 1)
  --greet-421 N     greet the first N connections with 421 and close them
                    (a relay that is overloaded or shutting down)
  --mail-421 N      answer the first N MAIL commands with 421 and close the
                    connection
  --drop-in-data N  for the first N DATA transactions, read the whole
                    message, then close the connection without a reply (the
                    message is not kept, unless --keep-dropped)
  --keep-dropped    keep each message --drop-in-data drops, as a relay that
                    queued it and lost the connection before its 250 would
  --port N          listen on port N instead of a free one
  --down-until FILE hold the port but listen only once FILE exists: until
                    then every connection is refused, as by a relay that is
                    down
  --events FILE     append a line per thing the peer did to FILE, one of
                    "greet 421", "mail 421 SENDER", "rcpt 550 ADDR",
                    "rcpt 450 ADDR", "data 451 ADDRS", "data drop ADDRS",
                    "data 250 ADDRS" (recipients lowercased, space
                    separated) and "up" (--down-until: listening now)
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
                    when its RCPT was answered ("pipelined"), and whether
                    the next command had arrived with its content
                    ("followed")

Each message's .json also says whether its session was encrypted ("tls")
and under which login it was authenticated ("login", or null).

Runs until SIGTERM or SIGINT.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import sys

import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Refuse421(asyncio.Protocol):
    """A connection greeted with 421 and closed (--greet-421)."""

    def connection_made(self, transport):
        transport.write(b"421 4.3.2 peer.test Service not available, closing transmission channel\r\n")
        transport.close()


async def hang_up(server):
    """Closes the connection and waits, answering nothing, until aiosmtpd
    cancels the session as the connection is lost."""
    server.transport.close()
    await asyncio.get_running_loop().create_future()


class Handler:
    def __init__(self, out, reject, defer, defer_data, delay, pipelining=False,
                 mail_421=0, drop_in_data=0, keep_dropped=False, events=None):
        self.pipelining = pipelining
        self.out = out
        self.reject = {address.lower() for address in reject}
        self.defer = {address.lower() for address in defer}
        self.defer_data = defer_data
        self.delay = delay
        self.deferred = {}
        self.count = 0
        self.mail_421 = mail_421
        self.drop_in_data = drop_in_data
        self.keep_dropped = keep_dropped
        self.events = events

    def event(self, *words):
        if self.events:
            with open(self.events, "a") as f:
                f.write(" ".join(words) + "\n")

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail_421 > 0:
            self.mail_421 -= 1
            self.event("mail", "421", address)
            await server.push("421 4.3.2 Service shutting down, closing transmission channel")
            await hang_up(server)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

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
            self.event("rcpt", "550", address.lower())
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if address.lower() in self.defer:
            self.event("rcpt", "450", address.lower())
            return "450 4.2.1 <%s>: Recipient address rejected: Mailbox busy" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        # What the client wrote after the content's closing dot and before
        # our reply: with pipelining, the next transaction's commands.
        followed = bool(server._reader._buffer)
        recipients = [r.lower() for r in envelope.rcpt_tos]
        key = tuple(recipients)
        if self.deferred.get(key, 0) < self.defer_data:
            self.deferred[key] = self.deferred.get(key, 0) + 1
            self.event("data", "451", *recipients)
            return "451 4.3.0 Temporary failure, try again later"
        drop = self.drop_in_data > 0
        if drop:
            self.drop_in_data -= 1
            if not self.keep_dropped:
                self.event("data", "drop", *recipients)
                await hang_up(server)
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
                       "pipelined": getattr(envelope, "pipelined", False),
                       "followed": followed}, f)
        os.rename(name + ".tmp", name + ".eml")
        if drop:
            self.event("data", "drop", *recipients)
            await hang_up(server)
        self.event("data", "250", *recipients)
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
    parser.add_argument("--smtputf8", action="store_true")
    parser.add_argument("--defer-data", type=int, default=0)
    parser.add_argument("--greet-421", type=int, default=0)
    parser.add_argument("--mail-421", type=int, default=0)
    parser.add_argument("--drop-in-data", type=int, default=0)
    parser.add_argument("--keep-dropped", action="store_true")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--down-until")
    parser.add_argument("--events")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    defer_data = max(args.defer_data, 1 if args.defer_first else 0)
    handler = Handler(args.out, args.reject, args.defer, defer_data, args.delay,
                      args.pipelining, args.mail_421, args.drop_in_data,
                      args.keep_dropped, args.events)
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
    greet_421 = [args.greet_421]

    def session():
        if greet_421[0] > 0:
            greet_421[0] -= 1
            handler.event("greet", "421")
            return Refuse421()
        return SMTP(handler, hostname="peer.test", data_size_limit=64 * 1024 * 1024,
                    tls_context=None if args.implicit_tls else context,
                    require_starttls=args.require_starttls,
                    enable_SMTPUTF8=args.smtputf8, **options)

    # Bound at once, listening only when told: a bound socket that does not
    # listen refuses every connection, as a relay that is down does.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    print("PORT %d" % sock.getsockname()[1], flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.down_until:
        while not os.path.exists(args.down_until):
            if stop.is_set():
                return
            await asyncio.sleep(0.01)
    server = await loop.create_server(session, sock=sock,
                                      ssl=context if args.implicit_tls else None)
    if args.down_until:
        handler.event("up")
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
