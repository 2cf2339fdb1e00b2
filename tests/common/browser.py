#!/usr/bin/env python3
"""Headless Chromium as a reader's browser, driven over the DevTools protocol.

    browser.py CHROMIUM URL ADDRESS MODE SCREENSHOT

Opens URL (a subscribe form), types ADDRESS into the address field the way
a keyboard does, picks MODE in the delivery-mode select, clicks the submit
button with the mouse, waits for the page that answers, and saves a
screenshot of it to SCREENSHOT (PNG). Prints one JSON object: the answer
page's URL and text (document.body.innerText), and the distinct pixel
colours of the screenshot, counted by decoding the PNG here (zlib and the
PNG filters, no imaging library), so the caller knows it is not blank.

Chromium gets a new empty profile, a debugging port of its own choosing
(port 0; it writes the one it took to DevToolsActivePort in the profile)
and no background networking: this machine's network is closed and the
test needs only loopback. websocket-client (pip) speaks the protocol.
"""

import base64
import collections
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib

import websocket

# Bounds a failure only: a passing run never waits this long.
PATIENCE = 60


class DevTools:
    """One page target's DevTools connection: commands and their events."""

    def __init__(self, url):
        # Chromium refuses DevTools connections that name an Origin unless
        # told to allow it; a test client needs none.
        self.socket = websocket.create_connection(url, timeout=PATIENCE, suppress_origin=True)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for(self, method):
        """The first event `method` not yet seen (earlier ones are dropped)."""
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            for index, event in enumerate(self.events):
                if event["method"] == method:
                    del self.events[: index + 1]
                    return event
            self.events.append(json.loads(self.socket.recv()))
        raise TimeoutError(f"no {method} from Chromium")

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")


def start_chromium(chromium, profile):
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "--window-size=1024,768",
        "about:blank",
    ]
    log = open(os.path.join(profile, "..", "chromium.log"), "wb")
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    active = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode} before it listened")
        try:
            with open(active) as file:
                port = int(file.readline())
            return process, port
        except (FileNotFoundError, ValueError):
            time.sleep(0.05)
    raise TimeoutError("chromium wrote no DevToolsActivePort")


def page_target(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=PATIENCE) as answer:
        targets = json.load(answer)
    return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")


def colours(png):
    """The set of distinct pixel values in a PNG (8-bit, non-interlaced)."""
    return set(pixel_counts(png))


def pixel_counts(png):
    """How many pixels of each value a PNG (8-bit, non-interlaced) has."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at, data, header = 8, b"", None
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, body = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        at += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            data += body
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and interlace == 0, f"unexpected PNG layout {header}"
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    raw = zlib.decompress(data)
    stride = width * channels
    previous = bytearray(stride)
    seen = collections.Counter()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
        seen.update(bytes(line[i : i + channels]) for i in range(0, stride, channels))
        previous = line
    return seen


def main():
    chromium, url, address, mode, screenshot = sys.argv[1:6]
    work = tempfile.mkdtemp(prefix="tidings-chromium-")
    profile = os.path.join(work, "profile")
    os.mkdir(profile)
    process = None
    try:
        process, port = start_chromium(chromium, profile)
        page = DevTools(page_target(port))
        page.call("Page.enable")
        page.call("Page.navigate", url=url)
        page.wait_for("Page.loadEventFired")

        # Type the address as a keyboard would, into the focused field.
        page.evaluate("document.getElementById('address').focus()")
        page.call("Input.insertText", text=address)
        # A select's list is drawn outside the page in headless mode: choose
        # the option the way a keyboard choice ends, value and change event.
        chosen = page.evaluate(
            "(() => { const s = document.getElementById('mode');"
            f" s.value = {json.dumps(mode)};"
            " s.dispatchEvent(new Event('change', {bubbles: true})); return s.value; })()"
        )
        assert chosen == mode, f"the form offers no mode {mode!r}"
        # Click the submit button with the mouse, at its middle.
        box = page.evaluate(
            "(() => { const b = document.querySelector('form[method=post] button[type=submit]');"
            " b.scrollIntoView(); const r = b.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            page.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)
        page.wait_for("Page.loadEventFired")

        answer = {
            "url": page.evaluate("location.href"),
            "text": page.evaluate("document.body.innerText"),
        }
        shot = page.call("Page.captureScreenshot", format="png")
        png = base64.b64decode(shot["data"])
        with open(screenshot, "wb") as file:
            file.write(png)
        answer["colours"] = len(colours(png))
        answer["bytes"] = len(png)
        print(json.dumps(answer))
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
