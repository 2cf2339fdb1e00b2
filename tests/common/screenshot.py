#!/usr/bin/env python3
"""Screenshots of an HTML digest in headless Chromium, as readers see it.

    screenshot.py CHROMIUM MESSAGE OUT_DIR

Takes the text/html part out of MESSAGE (a raw digest, or the first HTML
digest of an mbox, read by Python's email package), writes it to OUT_DIR/digest.html and shows it in Chromium
(driven over DevTools by browser.py's helpers) three ways: a desktop
window 1024 px wide, a 390 px phone (mobile viewport), the phone with
prefers-color-scheme: dark emulated, and the phone in Chromium's forced
dark mode. Saves OUT_DIR/{desktop,phone,dark,forced}.png
and prints one JSON object per view: the distinct colours of the
screenshot, the share of its most common colour and that colour's
luminance (0-255), the page's scroll width against the viewport's, the
body's computed background, the HTML part's size, and the elements whose inline style sets a
text colour with no background colour.
"""

import base64
import email
import email.policy
import json
import mailbox
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import DevTools, page_target, pixel_counts, start_chromium  # noqa: E402

# name, width, height, mobile, prefers-color-scheme, Chromium's forced
# (automatic) dark mode, which darkens a page whatever it asks for, as
# Android's and some webmail's dark themes do.
VIEWS = [
    ("desktop", 1024, 768, False, "light", False),
    ("phone", 390, 844, True, "light", False),
    ("dark", 390, 844, True, "dark", False),
    ("forced", 390, 844, True, "light", True),
]

# Elements whose style attribute names a text colour but no background.
UNPAIRED = """(() => Array.from(document.querySelectorAll('[style]'))
  .filter(e => /(^|;)\\s*color\\s*:/i.test(e.getAttribute('style'))
            && !/background(-color)?\\s*:/i.test(e.getAttribute('style')))
  .map(e => e.outerHTML.slice(0, 120)))()"""


def html_part(path):
    """The text/html part of the message in `path`, or of the first message
    with one in the mbox at `path` (as `tidings digest --dry-run` prints)."""
    with open(path, "rb") as file:
        raw = file.read()
    if raw.startswith(b"From "):
        messages = [m for m in mailbox.mbox(path, factory=None)]
        messages = [email.message_from_bytes(m.as_bytes(), policy=email.policy.default) for m in messages]
    else:
        messages = [email.message_from_bytes(raw, policy=email.policy.default)]
    for message in messages:
        if message.get_content_type() == "multipart/alternative":
            part = message.get_body(preferencelist=("html",))
            if part is not None:
                return part
    raise AssertionError("no text/html part")


def main():
    chromium, message, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    page_file = os.path.join(out, "digest.html")
    part = html_part(message)
    with open(page_file, "w", encoding="utf-8") as file:
        file.write(part.get_content())
    work = tempfile.mkdtemp(prefix="tidings-chromium-")
    profile = os.path.join(work, "profile")
    os.mkdir(profile)
    process = None
    report = {}
    try:
        process, port = start_chromium(chromium, profile)
        page = DevTools(page_target(port))
        page.call("Page.enable")
        for name, width, height, mobile, scheme, forced in VIEWS:
            page.call("Emulation.setAutoDarkModeOverride", enabled=forced)
            page.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=mobile,
            )
            page.call(
                "Emulation.setEmulatedMedia",
                features=[{"name": "prefers-color-scheme", "value": scheme}],
            )
            page.call("Page.navigate", url="file://" + os.path.abspath(page_file))
            page.wait_for("Page.loadEventFired")
            shot = page.call("Page.captureScreenshot", format="png")
            png = base64.b64decode(shot["data"])
            with open(os.path.join(out, f"{name}.png"), "wb") as file:
                file.write(png)
            counts = pixel_counts(png)
            common, count = counts.most_common(1)[0]
            red, green, blue = common[0], common[1], common[2]
            report[name] = {
                "colours": len(counts),
                "common_share": count / sum(counts.values()),
                "common_luminance": 0.2126 * red + 0.7152 * green + 0.0722 * blue,
                "scroll_width": page.evaluate("document.documentElement.scrollWidth"),
                "viewport_width": page.evaluate("window.innerWidth"),
                "body_background": page.evaluate("getComputedStyle(document.body).backgroundColor"),
                "dark_matches": page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches"),
                "unpaired": page.evaluate(UNPAIRED),
                "text": page.evaluate("document.body.innerText.length"),
            }
        report["html_part_bytes"] = len(part.as_bytes())
        print(json.dumps(report))
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
