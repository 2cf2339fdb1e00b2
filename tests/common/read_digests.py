#!/usr/bin/env python3
"""Reads back the digests a test's SMTP server received, with Python's own
parsers, and prints one JSON object per message for the Rust test to check.

    read_digests.py DIR [--key DNSNAME=KEY.pem]... [--originals DIR]

DIR holds either smtp-sink dumps (-d) or smtp_peer.py files (.eml + .json).
For each message: the envelope, the top-level header fields (decoded, and
any parse defects), the result of verifying each DKIM-Signature with dkimpy
against the public keys derived here from the private key files with
openssl (never from tidings), and what the message holds by format:

  mime     multipart/mixed: the part tree, masthead/contents/footer text,
           and per message/rfc822 part its header fields, whether they equal
           the original's (ORIGINALS/NNN.eml, in digest order) and its text
  plain    the RFC 1153 body split by a strict burster: preamble, posts
           (header fields in order, body), trailer
  html     multipart/alternative: the text part, and from the HTML part its
           anchors, links, and whether it has scripts, styles or images
  summary  the text
"""

import argparse
import base64
import email
import email.policy
import json
import os
import subprocess
import sys
from html.parser import HTMLParser

try:
    import dkim
    import nacl  # noqa: F401  (dkimpy verifies ed25519 with PyNaCl)
except ImportError as error:  # pragma: no cover
    sys.exit("read_digests.py needs dkimpy and pynacl: pip install dkimpy pynacl (%s)" % error)

KEPT = ["date", "from", "sender", "reply-to", "to", "cc", "subject", "message-id",
        "in-reply-to", "references", "keywords", "summary", "comments", "organization",
        "mime-version", "content-type", "content-transfer-encoding", "content-disposition",
        "content-language", "content-id", "content-description"]
RFC1153_ORDER = ["Date", "From", "To", "Cc", "Subject", "Message-ID", "Keywords"]
TOP_FIELDS = ["Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "List-Id",
              "List-Post", "List-Help", "List-Subscribe", "List-Archive", "List-Unsubscribe",
              "List-Unsubscribe-Post", "Precedence", "Content-Type",
              "Content-Transfer-Encoding"]


def public_record(pem_path):
    der = subprocess.run(["openssl", "pkey", "-in", pem_path, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    text = open(pem_path).read()
    if len(der) == 44 and b"\x2b\x65\x70" in der[:12]:  # id-Ed25519 SPKI
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:]).decode()
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def read_message(path):
    raw = open(path, "rb").read()
    envelope = {}
    if raw.startswith(b"X-Client-Addr:"):
        # smtp-sink: pseudo-headers, its Received field, the message, an empty line.
        lines = raw.split(b"\n")
        rest = []
        i = 0
        while i < len(lines) and lines[i].split(b":")[0] in (b"X-Client-Addr", b"X-Client-Proto", b"X-Helo-Args", b"X-Mail-Args", b"X-Rcpt-Args"):
            name, _, value = lines[i].partition(b":")
            value = value.strip().decode()
            address = value.split("<", 1)[-1].split(">", 1)[0]
            if name == b"X-Mail-Args":
                envelope["mail_from"] = address
            if name == b"X-Rcpt-Args":
                envelope.setdefault("rcpt_tos", []).append(address)
            i += 1
        # Its three-line Received field.
        if i < len(lines) and lines[i].startswith(b"Received:"):
            i += 1
            while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
                i += 1
        rest = lines[i:]
        if rest and rest[-1] == b"":
            rest = rest[:-1]
        if rest and rest[-1] == b"":
            rest = rest[:-1]  # the empty line smtp-sink appends
        raw = b"\n".join(rest) + b"\n"
    else:
        meta = path[:-4] + ".json"
        if os.path.exists(meta):
            envelope = json.load(open(meta))
    crlf = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return crlf, envelope


class Html(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links, self.tags = [], [], set()
        self.remote, self.texts = [], []

    def handle_data(self, data):
        if data.strip():
            self.texts.append(data.strip())

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        for name in ("src", "background"):
            if name in attrs:
                self.remote.append(attrs[name])


def split_rfc1153(text):
    """A strict RFC 1153 burster; raises on any departure from the layout."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    end = lines.index("-" * 70)
    assert lines[end + 1] == "", "no blank line after the 70 hyphens"
    preamble = "\n".join(lines[:end])
    rest = lines[end + 2:]
    chunks, current = [], []
    i = 0
    while i < len(rest):
        line = rest[i]
        if line == "-" * 30:
            assert current and current[-1] == "", "no blank line before a separator"
            assert rest[i + 1] == "", "no blank line after a separator"
            chunks.append(current[:-1])
            current = []
            i += 2
            continue
        current.append(line)
        i += 1
    trailer = current
    assert len(trailer) == 2, "trailer is %r" % trailer
    assert trailer[0].startswith("End of ") and set(trailer[1]) == {"*"}
    assert len(trailer[1]) == len(trailer[0]), "asterisks and trailer differ in length"
    posts = []
    for chunk in chunks:
        blank = chunk.index("")
        fields = []
        for line in chunk[:blank]:
            name, _, value = line.partition(": ")
            fields.append([name, value])
        posts.append({"fields": fields, "body": "\n".join(chunk[blank + 1:])})
    return {"preamble": preamble, "posts": posts, "trailer": trailer}


def text_of(part):
    return part.get_content().replace("\r\n", "\n")


def read_mime(message, raw_message, originals):
    parts = list(message.iter_parts())
    out = {"structure": [p.get_content_type() for p in parts]}
    texts = [p for p in parts if p.get_content_type() == "text/plain"]
    out["texts"] = [text_of(p) for p in texts]
    out["descriptions"] = [str(p.get("Content-Description", "")) for p in parts]
    digests = [p for p in parts if p.get_content_type() == "multipart/digest"]
    raw_digests = [p for p in raw_message.get_payload() if p.get_content_type() == "multipart/digest"]
    posts = []
    if digests:
        raw_parts = raw_digests[0].get_payload()
        for index, part in enumerate(digests[0].iter_parts()):
            inner = part.get_content()  # the enclosed message, decoded view
            ours = raw_parts[index].get_payload()[0]  # the same, raw header text
            entry = {"content_type": part.get_content_type(),
                     "subject": str(inner.get("Subject", "")),
                     "message_id": str(inner.get("Message-ID", "")).strip(),
                     "fields": [k.lower() for k in ours.keys()]}
            body = inner.get_body(preferencelist=("plain",))
            entry["text"] = text_of(body) if body is not None else None
            if originals:
                path = os.path.join(originals, "%03d.eml" % (index + 1))
                with open(path, "rb") as f:
                    original = email.message_from_binary_file(f, policy=email.policy.compat32)
                mismatches = []
                for name in KEPT:
                    want = [str(v).replace("\r\n", "\n") for v in (original.get_all(name) or [])]
                    got = [str(v).replace("\r\n", "\n") for v in (ours.get_all(name) or [])]
                    if want != got:
                        mismatches.append({"field": name, "original": want, "digest": got})
                entry["header_mismatches"] = mismatches
                entry["extra_fields"] = [k for k in ours.keys() if k.lower() not in KEPT]
            posts.append(entry)
    out["posts"] = posts
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--key", action="append", default=[])
    parser.add_argument("--originals")
    args = parser.parse_args()
    records = {}
    for item in args.key:
        name, _, path = item.partition("=")
        records[name.lower().rstrip(".") + "."] = public_record(path).encode()

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return records.get(name.lower().rstrip(".") + ".")

    files = sorted(f for f in os.listdir(args.dir)
                   if not f.endswith((".json", ".tmp")) and os.path.isfile(os.path.join(args.dir, f)))
    for name in files:
        path = os.path.join(args.dir, name)
        raw, envelope = read_message(path)
        # A compat32 parse keeps raw header text; the default policy decodes.
        message = email.message_from_bytes(raw, policy=email.policy.default)
        raw_message = email.message_from_bytes(raw, policy=email.policy.compat32)
        out = {"file": name, "envelope": envelope, "size": len(raw)}
        out["fields"] = {f: [str(v) for v in message.get_all(f, [])] for f in TOP_FIELDS}
        out["raw_fields"] = {f: [v for v in raw_message.get_all(f, [])] for f in TOP_FIELDS}
        defects = [type(d).__name__ for d in message.defects]
        for f in TOP_FIELDS:
            for value in message.get_all(f, []):
                defects += ["%s: %s" % (f, type(d).__name__) for d in getattr(value, "defects", ())]
        out["defects"] = defects
        out["date_parses"] = bool(message["Date"] and message["Date"].datetime)
        verifier = dkim.DKIM(raw)
        signatures = raw_message.get_all("DKIM-Signature", [])
        results = []
        for index, signature in enumerate(signatures):
            tags = dict(t.strip().split("=", 1) for t in signature.replace("\r\n", "").replace("\n", "").split(";") if "=" in t)
            ok = verifier.verify(idx=index, dnsfunc=dnsfunc)
            results.append({"a": tags.get("a", "").strip(), "h": tags.get("h", "").replace(" ", "").replace("\t", "").lower().split(":"), "ok": bool(ok)})
        out["dkim"] = results
        content_type = message.get_content_type()
        out["content_type"] = content_type
        if content_type == "multipart/mixed":
            out["mime"] = read_mime(message, raw_message, args.originals)
        elif content_type == "multipart/alternative":
            parts = list(message.iter_parts())
            out["structure"] = [p.get_content_type() for p in parts]
            text = text_of(parts[0])
            html = parts[1].get_content()
            page = Html()
            page.feed(html)
            out["html"] = {"text": text, "ids": page.ids, "links": page.links,
                           "tags": sorted(page.tags), "images": page.remote, "texts": page.texts}
            try:
                out["html"]["plain"] = split_rfc1153(text)
            except Exception as error:  # report, the test fails on it
                out["html"]["plain_error"] = repr(error)
        elif content_type == "text/plain":
            text = text_of(message)
            out["text"] = text
            if ("\n" + "-" * 70 + "\n") in text:
                try:
                    out["plain"] = split_rfc1153(text)
                except Exception as error:
                    out["plain_error"] = repr(error)
        print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
