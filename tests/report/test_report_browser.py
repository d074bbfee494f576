"""A real report.html, from a committed run folder, rendered in headless Chromium.

Chromium is driven over the DevTools protocol with a small standard-library websocket client (no
extra dependency): console errors and exceptions are collected from the first byte, the DOM,
title and page state are read with Runtime.evaluate, and a full-page screenshot is decoded and
checked for content. Skipped when no Chromium binary is found, unless HARNESS_REQUIRE_BROWSER=1
(set it in CI, where a skipped browser check must not pass silently).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from run_helpers import XSS, fixture_run, make_run, mixed_responder

pytestmark = pytest.mark.browser

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync")


def find_chromium() -> str | None:
    """$HARNESS_CHROMIUM, else the first Chromium/Chrome binary on PATH."""
    env = os.environ.get("HARNESS_CHROMIUM")
    if env:
        return env
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


class WebSocket:
    """Just enough RFC 6455 for the DevTools protocol: text frames, client-masked."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        hostport, _, path = url.removeprefix("ws://").partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = bytearray()
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.buf = bytearray(rest)

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("DevTools closed the connection")
        self.buf += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def send(self, text: str) -> None:
        data = text.encode()
        n = len(data)
        if n < 126:
            head = bytes([0x81, 0x80 | n])
        elif n < 1 << 16:
            head = bytes([0x81, 0x80 | 126]) + struct.pack(">H", n)
        else:
            head = bytes([0x81, 0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = (np.frombuffer(data, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), n)).tobytes()
        self.sock.sendall(head + mask + masked)

    def recv(self) -> str:
        message = b""
        while True:
            b0, b1 = self._take(2)
            n = b1 & 0x7F
            n = struct.unpack(">H", self._take(2))[0] if n == 126 else (
                struct.unpack(">Q", self._take(8))[0] if n == 127 else n)
            payload = self._take(n)
            if b0 & 0x0F == 8:
                raise ConnectionError("DevTools closed the websocket")
            if b0 & 0x0F in (9, 10):  # ping / pong
                continue
            message += payload
            if b0 & 0x80:
                return message.decode()


class Browser:
    """One headless Chromium with one page, driven over DevTools."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.cmd = [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                    "--window-size=1366,768", "about:blank"]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Chromium did not start: {self.proc.stderr.read()[-2000:]!r}"
                                   if self.proc.stderr else "Chromium did not start")
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        pages: list[dict[str, Any]] = []
        while not pages and time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
        self.ws = WebSocket(pages[0]["webSocketDebuggerUrl"])
        self.events: list[dict[str, Any]] = []
        self.url = "about:blank"
        self._id = 0
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command; keep the events that arrive meanwhile."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg["result"])
            self.events.append(msg)

    def open(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self.events.clear()
        self.url = url
        self.call("Page.navigate", url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(json.loads(self.ws.recv()))
        self.call("Runtime.evaluate", expression="1")  # drain what the load queued

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in res, res
        return res["result"].get("value")

    def console_errors(self) -> list[str]:
        """Uncaught exceptions, console.error/assert calls and error-level log entries."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                out.append(str(p["exceptionDetails"].get("text")))
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value")) for a in p.get("args", [])))
            elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(p["entry"]["text"])
        return out

    def close(self) -> None:
        """Stop the browser this object started."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    binary = find_chromium()
    if binary is None:
        if os.environ.get("HARNESS_REQUIRE_BROWSER") == "1":
            pytest.fail("HARNESS_REQUIRE_BROWSER=1 but no Chromium binary was found")
        pytest.skip(f"no Chromium binary found (looked for {', '.join(BROWSERS)} on PATH and "
                    "$HARNESS_CHROMIUM); install it, e.g. `apt-get install chromium`")
    b = Browser(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed complete run (its eval set holds an XSS payload), reports built by `harness report`."""
    return fixture_run("complete", tmp_path_factory.mktemp("browser"))


@pytest.fixture
def loaded(browser: Browser, run_dir: Path) -> tuple[Browser, Path]:
    """The run's report.html, opened from disk (once, unless another page was opened since)."""
    url = (run_dir / "report.html").as_uri()
    if browser.url != url:
        browser.open(url)
    return browser, run_dir


def test_no_console_errors_and_the_payload_runs_nothing(loaded: tuple[Browser, Path]) -> None:
    b, _ = loaded
    assert b.console_errors() == []
    assert b.js("document.title") == "harness report: routing"
    assert b.js("typeof window.__pwned") == "undefined"
    assert b.js("document.scripts.length") == 0 and b.js("document.images.length") == 0
    cells = b.js("[...document.querySelectorAll('#failures td')].map(td => td.textContent)")
    assert XSS in cells  # shown as text, exactly as it came


def test_verdict_table_and_chart_in_the_dom(loaded: tuple[Browser, Path]) -> None:
    b, run_dir = loaded
    dom = b.js("document.documentElement.outerHTML")
    sentence = json.loads((run_dir / "summary.json").read_text())["recommendation"]["sentence"]
    assert b.js("document.querySelector('#verdict .sentence').textContent") == sentence
    headers = b.js("[...document.querySelectorAll('#T_arms th')].map(th => th.textContent)")
    assert {"arm", "accuracy", "95% CI", "macro-F1", "schema ok", "p95 ms"} <= set(headers)
    arms = b.js("[...document.querySelectorAll('#T_arms tbody tr td:first-child')].map(t => t.textContent)")
    assert arms == ["zero-shot", "few-shot@k=1", "few-shot@k=2", "few-shot@k=4", "fine-tuned"]
    assert 'id="learning-curve"' in dom
    box = b.js("(r => [r.width, r.height])(document.querySelector('svg#learning-curve')"
               ".getBoundingClientRect())")
    assert box[0] > 300 and box[1] > 150


def test_fits_a_laptop_screen_and_prints_collapsed_prompts(loaded: tuple[Browser, Path]) -> None:
    b, _ = loaded
    assert b.js("document.documentElement.scrollWidth <= window.innerWidth")
    visible = "[...document.querySelectorAll('#prompts details pre')].map(p => p.checkVisibility())"
    assert b.js(visible) == [False] * 5  # collapsed on screen
    b.call("Emulation.setEmulatedMedia", media="print")
    try:
        assert b.js(visible) == [True] * 5  # opened when printed
        pdf = base64.b64decode(b.call("Page.printToPDF")["data"])
        assert pdf.startswith(b"%PDF") and len(pdf) > 20_000
    finally:
        b.call("Emulation.setEmulatedMedia", media="")


def test_screenshot_is_not_blank(loaded: tuple[Browser, Path]) -> None:
    b, _ = loaded
    shot = b.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB"))
    assert img.shape[0] > 2000 and img.shape[1] >= 1000
    packed = img.astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.uint32)
    colours = len(np.unique(packed))
    ink = float((img.min(axis=2) < 200).mean())
    assert colours > 100, colours
    assert ink > 0.02, ink


LONG_LABELS = {"billing": "card_payment_wrong_exchange_rate",
               "shipping": "transfer_not_received_by_recipient",
               "returns": "Refund_not_showing_up", "account": "verify_source_of_funds"}

# Each line break inside a label cell: (text before, text after) wherever a character starts a
# new line; an allowed break follows '_', '/', '.', or a space.
LINE_BREAKS = """[...document.querySelectorAll(SEL)].flatMap(td => {
  const text = td.firstChild ? td.textContent : ''; const out = []; let top = null;
  const walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT); let node, seen = '';
  while ((node = walker.nextNode())) {
    for (let i = 0; i < node.length; i++) {
      const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 1);
      const rect = r.getBoundingClientRect();
      if (top !== null && rect.width > 0 && rect.top > top + 2) out.push([seen, text.slice(seen.length)]);
      if (rect.width > 0) top = rect.top;
      seen += node.data[i];
    }
  }
  return out; })"""


def test_long_labels_wrap_between_words_in_the_confusion_tables(browser: Browser, run_dir: Path,
                                                                tmp_path: Path) -> None:
    """Banking77-like labels in a narrow window: they wrap after '_' and nowhere inside a word."""
    import dataclasses

    from harness.analysis import analyse
    from harness.report.html import render_html
    from harness.running.store import read_meta, read_records

    meta = read_meta(run_dir)
    a = analyse(read_records(run_dir), meta)
    r = a.results.copy()
    r["expected"] = r["expected"].map(lambda x: LONG_LABELS.get(x, x))
    r["prediction"] = r["prediction"].map(lambda x: LONG_LABELS.get(x, x))
    page = tmp_path / "report.html"
    page.write_text(render_html(dataclasses.replace(a, results=r), meta), encoding="utf-8")
    b = browser
    b.call("Emulation.setDeviceMetricsOverride", width=700, height=900, deviceScaleFactor=1, mobile=False)
    try:
        b.open(page.as_uri())
        cells = b.js("[...document.querySelectorAll('#confusions td.text')].map(td => td.textContent)")
        assert set(LONG_LABELS.values()) & set(cells)
        breaks = b.js(LINE_BREAKS.replace("SEL", "'#confusions td.text, #failures td.label'"))
        labels = set(LONG_LABELS.values())
        label_breaks = [(x, y) for x, y in breaks if x + y in labels]
        assert label_breaks, "the window is narrow enough that some label wraps"
        inside_a_word = [(x, y) for x, y in label_breaks if x[-1] not in "_/. "]
        assert not inside_a_word
    finally:
        b.call("Emulation.clearDeviceMetricsOverride")
        b.url = "about:blank"  # the next test opens its page again


def test_console_error_detection_works(browser: Browser, tmp_path: Path) -> None:
    """Control: the same checks do see an error, so 'no console errors' above means something."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><title>x</title><script>console.error('boom');missing()</script>")
    browser.open(bad.as_uri())
    errors = browser.console_errors()
    assert any("boom" in e for e in errors) and len(errors) >= 2


def _right(body: dict[str, Any]) -> str:
    """Every answer right (the XSS message's label is billing)."""
    from fake_openai import last_user_content

    text = last_user_content(body)
    label = text.splitlines()[0] if text else ""
    return json.dumps({"label": "billing" if label not in ("billing", "shipping", "returns",
                                                            "account") else label})


def test_diff_html_renders_and_runs_nothing(browser: Browser, tmp_path: Path) -> None:
    """diff.html of two real runs, the second fixing every mistake of the first (the XSS
    message's among them): no console error, no script, the payload shown as text."""
    from harness.cli import main

    a = make_run(tmp_path, responder=mixed_responder, out_name="a")
    b = make_run(tmp_path, responder=_right, out_name="b")
    assert main(["diff", str(a), str(b), "--out", str(tmp_path / "d")]) == 0
    browser.open((tmp_path / "d" / "diff.html").as_uri())
    try:
        assert browser.console_errors() == []
        assert browser.js("typeof window.__pwned") == "undefined"
        assert browser.js("document.scripts.length") == 0
        assert browser.js("document.title").startswith("harness diff: routing")
        fixed = browser.js("[...document.querySelectorAll('tr.fixed td:nth-child(3)')]"
                           ".map(td => td.textContent)")
        assert XSS in fixed
        heads = browser.js("[...document.querySelectorAll('table.diff-arms th')]"
                           ".map(th => th.textContent)")
        assert heads[:6] == ["arm", "n", "accuracy A", "accuracy B", "fixed", "broken"]
        width = browser.js("document.documentElement.scrollWidth")
        assert width <= browser.js("window.innerWidth") + 1  # long outputs wrap
    finally:
        browser.url = "about:blank"
