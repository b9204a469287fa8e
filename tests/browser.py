"""Open a page in headless Chromium and report what a reader would see go wrong.

Chromium is driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``: JSON messages ending in NUL on file descriptors
3 and 4), so nothing but the standard library is needed and no port is opened.
:func:`inspect_page` loads a page, waits for its load event and for the
network to settle, and returns its console errors, uncaught exceptions, failed
loads, broken images, whether it overflows the window sideways, and a
full-page screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
)


def chromium_binary() -> str | None:
    """The Chromium executable (``$SCALELAB_CHROMIUM``, else the first on PATH), or None."""
    named = os.environ.get("SCALELAB_CHROMIUM")
    if named:
        return named if os.access(named, os.X_OK) else None
    return next((found for n in CHROMIUM_NAMES if (found := shutil.which(n))), None)


@dataclass
class PageReport:
    """What went wrong on a page, and its screenshot."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    failed_loads: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    images: int = 0
    scroll_width: int = 0
    window_width: int = 0
    title: str = ""
    screenshot: Path | None = None

    @property
    def problems(self) -> list[str]:
        """Every problem, one line each (empty when the page is clean)."""
        out = [f"console error: {m}" for m in self.console_errors]
        out += [f"uncaught exception: {m}" for m in self.exceptions]
        out += [f"failed to load: {m}" for m in self.failed_loads]
        out += [f"broken image: {m}" for m in self.broken_images]
        if self.scroll_width > self.window_width:
            out.append(
                f"the page is {self.scroll_width} px wide in a {self.window_width} px window"
            )
        return out


class _Pipe:
    """The DevTools protocol over Chromium's pipe: commands, their answers, and events."""

    def __init__(self, write_fd: int, read_fd: int) -> None:
        self._out = os.fdopen(write_fd, "wb", buffering=0)
        self._in = os.fdopen(read_fd, "rb", buffering=0)
        self._next = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = self._in.read(65536)
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                message = json.loads(raw)
                with self._cond:
                    if "id" in message:
                        self._answers[message["id"]] = message
                    else:
                        self.events.append(message)
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._out.write(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        with self._cond:
            while ident not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    raise TimeoutError(f"Chromium did not answer {method}")
                self._cond.wait(left)
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def wait_event(self, method: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not any(e.get("method") == method for e in self.events):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        for f in (self._out, self._in):
            with contextlib.suppress(OSError):
                f.close()


@contextlib.contextmanager
def _chromium(binary: str) -> Iterator[_Pipe]:
    """A headless Chromium in its own process group, ended (group and profile) on exit."""
    profile = tempfile.mkdtemp(prefix="scalelab-chromium-")
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()

    def fds() -> None:  # the pipe's ends as fds 3 (commands in) and 4 (answers out)
        high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)  # out of the way of 3 and 4
        high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
        os.dup2(high_r, 3)
        os.dup2(high_w, 4)

    args = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe"]
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(3, 4),
        preexec_fn=fds,  # noqa: PLW1509 - runs before exec, in the child only
        start_new_session=True,
    )
    os.close(to_child_r)
    os.close(from_child_w)
    pipe = _Pipe(to_child_w, from_child_r)
    try:
        yield pipe
    finally:
        with contextlib.suppress(Exception):
            pipe.send("Browser.close")
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        pipe.close()
        shutil.rmtree(profile, ignore_errors=True)


_IMAGES_JS = """JSON.stringify({
  broken: Array.from(document.images)
    .filter(i => !i.complete || i.naturalWidth === 0)
    .map(i => (i.alt || '') + ' ' + i.src.slice(0, 80)),
  images: document.images.length,
  scrollWidth: document.documentElement.scrollWidth,
  windowWidth: window.innerWidth,
  title: document.title,
})"""


def inspect_page(
    url: str,
    screenshot: Path | None = None,
    width: int = 1280,
    height: int = 900,
    binary: str | None = None,
    settle_s: float = 0.2,
) -> PageReport:
    """Load ``url`` in headless Chromium and report its problems; save a full-page PNG."""
    chromium = binary or chromium_binary()
    if chromium is None:
        raise FileNotFoundError("no Chromium found (apt-get install chromium)")
    report = PageReport(url)
    with _chromium(chromium) as pipe:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.send(f"{domain}.enable", session=session)
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        pipe.send("Emulation.setDeviceMetricsOverride", metrics, session=session)
        pipe.events.clear()
        pipe.send("Page.navigate", {"url": url}, session=session)
        if not pipe.wait_event("Page.loadEventFired", 60):
            report.exceptions.append("the page did not finish loading within 60 s")
        time.sleep(settle_s)
        evaluated = pipe.send(
            "Runtime.evaluate", {"expression": _IMAGES_JS, "returnByValue": True}, session=session
        )
        state = json.loads(evaluated["result"]["value"])
        report.broken_images = state["broken"]
        report.images = state["images"]
        report.scroll_width, report.window_width = state["scrollWidth"], state["windowWidth"]
        report.title = state["title"]
        if screenshot is not None:
            size = pipe.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            shot = pipe.send(
                "Page.captureScreenshot",
                {"format": "png", "captureBeyondViewport": True, "clip": clip},
                session=session,
            )
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            report.screenshot = screenshot
        for event in list(pipe.events):
            _note(report, event.get("method"), event.get("params", {}))
    return report


def _note(report: PageReport, method: Any, params: dict[str, Any]) -> None:
    """File one DevTools event under the problem it shows, if any."""
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        args = params.get("args", [])
        report.console_errors.append(
            " ".join(str(a.get("value", a.get("description", ""))) for a in args)
        )
    elif method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        report.exceptions.append(
            str(details.get("exception", {}).get("description") or details.get("text"))
        )
    elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        entry = params["entry"]
        report.console_errors.append(f"{entry.get('text')} {entry.get('url', '')}".strip())
    elif method == "Network.loadingFailed" and not params.get("canceled"):
        report.failed_loads.append(f"{params.get('errorText')} ({params.get('type')})")
