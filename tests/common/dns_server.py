"""A small authoritative DNS server on loopback for the tests (dnslib).

Usage: dns_server.py ZONE.json LOG [HOLD]

ZONE.json maps names to lists of TXT strings ({"_dmarc.sender.test":
["v=DMARC1; p=reject"]}). The server answers TXT queries for those names
(a string longer than 255 bytes split into character-strings, as RFC 1035
allows), an empty NOERROR for their other types, and NXDOMAIN for every
other name. It listens on one port for UDP and TCP, prints "PORT n" once
both are bound, and appends "NAME TYPE" to LOG for each query before
answering it, so a test that got its answer can read what was asked.
Given HOLD, a path, it answers nothing until that file exists: a test
holds a verification where it wants it, and lets it go.
"""

import json
import os
import socket
import sys
import threading
import time

from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.server import BaseResolver, DNSLogger, DNSServer

zone_path, log_path = sys.argv[1], sys.argv[2]
hold_path = sys.argv[3] if len(sys.argv) > 3 else None
with open(zone_path) as f:
    zone = {name.lower().rstrip("."): texts for name, texts in json.load(f).items()}
log_lock = threading.Lock()


class Zone(BaseResolver):
    def resolve(self, request, handler):
        reply = request.reply()
        reply.header.aa = 1
        name = str(request.q.qname).lower().rstrip(".")
        kind = QTYPE.get(request.q.qtype, str(request.q.qtype))
        with log_lock, open(log_path, "a") as log:
            log.write(f"{name} {kind}\n")
        while hold_path and not os.path.exists(hold_path):
            time.sleep(0.01)
        if name not in zone:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            for text in zone[name]:
                data = text.encode()
                chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
        return reply


quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
# A port free for both: bind UDP on an ephemeral one, then TCP on the same.
for attempt in range(50):
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    try:
        udp = DNSServer(Zone(), port=port, address="127.0.0.1", logger=quiet)
        tcp = DNSServer(Zone(), port=port, address="127.0.0.1", tcp=True, logger=quiet)
    except OSError:
        continue
    break
else:
    sys.exit("no free port")
udp.start_thread()
tcp.start_thread()
print(f"PORT {port}", flush=True)
# Serve until the test kills us or closes our stdin.
sys.stdin.read()
