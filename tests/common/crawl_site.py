"""Crawls the archive the way a reader's browser and feed reader would.

Starts at the given paths of a running tidings, fetches every link of the
site it finds in pages (html5lib, strict: a page that is not well formed
HTML is a failure) and feeds (feedparser), and prints one JSON object:
how many URLs were fetched, and every URL that did not answer 200 or did
not parse. Links name the public base_url; they are fetched from the
daemon's own address.

Links in mail (every text part of every message of an mbox, decoded as
a mail client would) are crawled too.

usage: crawl_site.py PUBLIC_BASE DAEMON_BASE [--mbox FILE] START_PATH...
"""

import email.policy
import json
import mailbox
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

import feedparser
import html5lib

public, daemon, starts = sys.argv[1], sys.argv[2], sys.argv[3:]
mboxes = []
while starts[:1] == ["--mbox"]:
    mboxes.append(starts[1])
    starts = starts[2:]
seen, queue, failures, fetched, pages, mail_links = set(), [], [], 0, 0, 0


def local(url):
    url = urllib.parse.urldefrag(url)[0]
    if url.startswith(public):
        return daemon + url[len(public):]
    return None


def enqueue(url):
    target = local(url)
    if target and target not in seen:
        seen.add(target)
        queue.append(target)


for start in starts:
    enqueue(public + start)

URL = re.compile(r"""https?://[^\s"'<>()]+""")
for path in mboxes:
    for message in mailbox.mbox(path, factory=lambda f: email.message_from_binary_file(f, policy=email.policy.default)):
        texts = [str(message.get(name, "")) for name in ("List-Unsubscribe", "List-Subscribe", "List-Archive", "List-Help", "List-Post")]
        for part in message.walk():
            if part.get_content_maintype() == "text":
                texts.append(part.get_content())
            elif part.get_content_type() == "message/rfc822":
                continue
        for text in texts:
            for url in URL.findall(text):
                url = url.rstrip(".,;:")
                if url.startswith(public):
                    mail_links += 1
                enqueue(url)

while queue:
    url = queue.pop()
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body, kind = response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        failures.append({"url": url, "status": error.code})
        continue
    fetched += 1
    if kind.startswith("text/html"):
        pages += 1
        try:
            document = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(body)
        except Exception as error:  # html5lib's ParseError names the spot
            failures.append({"url": url, "parse": str(error)})
            continue
        for element in document.iter():
            for attribute in ("href", "src"):
                if element.get(attribute):
                    enqueue(urllib.parse.urljoin(url, element.get(attribute)))
            if element.tag == "form" and element.get("method", "get").lower() == "get":
                enqueue(urllib.parse.urljoin(url, element.get("action", "")))
    elif "json" in kind:
        try:
            feed = json.loads(body)
        except ValueError as error:
            failures.append({"url": url, "parse": str(error)})
            continue
        for link in [feed.get("home_page_url")] + [item.get("url") for item in feed.get("items", [])]:
            if link:
                enqueue(link)
    elif "xml" in kind:
        feed = feedparser.parse(body)
        if feed.bozo and not feed.entries:
            failures.append({"url": url, "parse": str(feed.bozo_exception)})
        for link in [feed.feed.get("link")] + [entry.get("link") for entry in feed.entries]:
            if link:
                enqueue(link)

print(json.dumps({"fetched": fetched, "pages": pages, "mail_links": mail_links, "failures": failures[:50]}))
