"""Open a page in headless Chromium and report what a reader's browser would see.

A small client of the Chrome DevTools protocol over ``--remote-debugging-pipe``
(file descriptors 3 and 4, messages separated by NUL bytes), standard library only.
:func:`inspect_page` loads a local file with the network emulated offline and
collects

* every console error: ``console.error``/``console.assert`` calls, uncaught
  exceptions, and the browser's own error log (a resource that failed to load, a
  Content-Security-Policy violation, ...);
* every URL the page requested, so that a caller can assert nothing but the file
  itself and ``data:`` URIs was asked for;
* every image's natural size and whether it decodes;
* the value of an optional JavaScript expression (evaluated after the images have
  decoded and the fonts have loaded);
* optionally a PNG screenshot of the whole page or of its top.

Used by the browser test of the report page, and to take the picture in docs/report.md::

    python -m tests.browser reports/NAME/index.html --screenshot docs/report.png
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: flags every launch uses: headless, no sandbox (containers), no GPU, no background
#: traffic of any kind
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
    "--force-color-profile=srgb", "--remote-debugging-pipe",
)

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserError(RuntimeError):
    """Chromium could not be started, or stopped answering."""


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) executable, or None."""
    env = os.environ.get("NN_HARNESS_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


@dataclass
class PageCheck:
    """What :func:`inspect_page` saw."""

    url: str
    title: str = ""
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    probe: Any = None
    screenshot: Path | None = None
    load_seconds: float = 0.0

    @property
    def external_requests(self) -> list[str]:
        """Requests for anything but the page's own file and ``data:`` URIs."""
        return [u for u in self.requests if not (u.startswith("data:") or u == self.url)]

    @property
    def broken_images(self) -> list[dict[str, Any]]:
        return [i for i in self.images if not i["decoded"] or i["natural_width"] <= 0]


class _Pipe:
    """The DevTools protocol over two pipes: JSON messages ending in a NUL byte."""

    def __init__(self, write_fd: int, read_fd: int, timeout: float):
        self.write_fd, self.read_fd, self.timeout = write_fd, read_fd, timeout
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self.write_fd, data):]
        return self.next_id

    def receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("chromium did not answer in time")
            ready, _, _ = select.select([self.read_fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise BrowserError("chromium closed the DevTools pipe")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict[str, Any]:
        mid = self.send(method, params, session)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            message = self.receive(deadline)
            if message.get("id") == mid:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + (timeout or self.timeout)
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            message = self.receive(deadline)
            self.events.append(message)
            if message.get("method") == method:
                return message


@contextlib.contextmanager
def _chromium(executable: str, width: int, height: int, timeout: float):
    profile = tempfile.mkdtemp(prefix="nn-harness-chromium-")
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()

    def child_fds():  # runs in the child before exec: the pipes become fds 3 and 4
        import fcntl

        a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
        b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.dup2(a, 3)
        os.dup2(b, 4)

    cmd = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
           f"--window-size={width},{height}", "about:blank"]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                preexec_fn=child_fds, close_fds=False)  # noqa: PLW1509
    except OSError as exc:
        for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
            os.close(fd)
        shutil.rmtree(profile, ignore_errors=True)
        raise BrowserError(f"cannot start {executable}: {exc}") from exc
    os.close(to_child_r)
    os.close(from_child_w)
    pipe = _Pipe(to_child_w, from_child_r, timeout)
    try:
        yield pipe
    except BrowserError as exc:
        log.seek(0)
        tail = log.read().decode(errors="replace").strip().splitlines()[-5:]
        raise BrowserError(f"{exc}; chromium said: {' | '.join(tail)}") from None
    finally:
        with contextlib.suppress(Exception):
            pipe.send("Browser.close")
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        os.close(to_child_w)
        os.close(from_child_r)
        log.close()
        shutil.rmtree(profile, ignore_errors=True)


_IMAGES_JS = """
(async () => {
  await document.fonts.ready;
  const images = Array.from(document.images);
  const out = [];
  for (const img of images) {
    let decoded = true, error = null;
    try { await img.decode(); } catch (e) { decoded = false; error = String(e); }
    out.push({src: img.currentSrc.slice(0, 64), alt: img.alt,
              natural_width: img.naturalWidth, natural_height: img.naturalHeight,
              decoded: decoded, error: error});
  }
  return JSON.stringify(out);
})()
"""


def _console_text(params: dict[str, Any]) -> str:
    args = params.get("args", [])
    parts = [str(a.get("value", a.get("description", a.get("type")))) for a in args]
    return f"console.{params.get('type')}: {' '.join(parts)}"


def inspect_page(path: str | os.PathLike, *, screenshot: str | os.PathLike | None = None,
                 probe: str | None = None, width: int = 1280, height: int = 900,
                 clip_height: int | None = None, scale: float = 1.0, timeout: float = 60.0,
                 executable: str | None = None) -> PageCheck:
    """Load the local file ``path`` offline in headless Chromium; see the module docstring.

    Parameters
    ----------
    path : the HTML file
    screenshot : path, optional
        Write a PNG of the whole page there (of its top ``clip_height`` CSS pixels
        when given), at ``scale`` times the CSS pixel size.
    probe : str, optional
        A JavaScript expression evaluated after load (a Promise is awaited); its
        JSON-serialisable value is returned as ``PageCheck.probe``.
    width, height : the window (viewport) size
    timeout : seconds for any one step
    executable : Chromium to use (default: :func:`find_chromium`)

    Raises
    ------
    BrowserError
        No Chromium, or it failed.
    """
    executable = executable or find_chromium()
    if executable is None:
        raise BrowserError("no chromium found (install it, e.g. apt-get install chromium)")
    url = Path(path).resolve().as_uri()
    check = PageCheck(url=url)
    with _chromium(executable, width, height, timeout) as pipe:
        target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.call(f"{domain}.enable", session=session)
        pipe.call("Network.emulateNetworkConditions",
                  {"offline": True, "latency": 0, "downloadThroughput": -1,
                   "uploadThroughput": -1}, session=session)
        pipe.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": scale,
                   "mobile": False}, session=session)
        pipe.events.clear()
        started = time.monotonic()
        result = pipe.call("Page.navigate", {"url": url}, session=session)
        if result.get("errorText"):
            raise BrowserError(f"cannot load {url}: {result['errorText']}")
        pipe.wait_for("Page.loadEventFired")
        check.load_seconds = time.monotonic() - started
        images = pipe.call("Runtime.evaluate", {"expression": _IMAGES_JS, "awaitPromise": True,
                                                "returnByValue": True}, session=session)
        check.images = json.loads(images["result"]["value"])
        title = pipe.call("Runtime.evaluate", {"expression": "document.title",
                                               "returnByValue": True}, session=session)
        check.title = title["result"].get("value", "")
        if probe is not None:
            value = pipe.call("Runtime.evaluate",
                              {"expression": probe, "awaitPromise": True,
                               "returnByValue": True}, session=session)
            if "exceptionDetails" in value:
                raise BrowserError(f"the probe failed: "
                                   f"{value['exceptionDetails'].get('exception', {}).get('description')}")
            check.probe = value["result"].get("value")
        if screenshot is not None:
            metrics = pipe.call("Page.getLayoutMetrics", session=session)
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            clip = {"x": 0, "y": 0, "width": width,
                    "height": min(size["height"], clip_height or size["height"]), "scale": 1}
            shot = pipe.call("Page.captureScreenshot",
                             {"format": "png", "clip": clip, "captureBeyondViewport": True},
                             session=session)
            out = Path(screenshot)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(base64.b64decode(shot["data"]))
            check.screenshot = out
        # drain what arrived meanwhile (a console error logged late, for instance)
        with contextlib.suppress(BrowserError):
            pipe.call("Runtime.evaluate", {"expression": "0"}, session=session, timeout=5)
    for event in pipe.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            check.console_errors.append(_console_text(params))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            check.console_errors.append(f"uncaught exception: {text}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            check.console_errors.append(f"{entry.get('source')}: {entry.get('text')} "
                                        f"{entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            check.requests.append(params.get("request", {}).get("url", ""))
    return check


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m tests.browser",
                                description="Load a page offline in headless Chromium; print "
                                            "console errors, requests and images.")
    p.add_argument("page")
    p.add_argument("--screenshot", default=None, metavar="PNG")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=900)
    p.add_argument("--clip-height", type=int, default=None, metavar="PX",
                   help="screenshot only the top PX CSS pixels")
    p.add_argument("--scale", type=float, default=1.0)
    args = p.parse_args(argv)
    check = inspect_page(args.page, screenshot=args.screenshot, width=args.width,
                         height=args.height, clip_height=args.clip_height, scale=args.scale)
    print(f"title: {check.title}")
    print(f"loaded in {check.load_seconds:.2f} s; {len(check.images)} images, "
          f"{len(check.broken_images)} broken; {len(check.external_requests)} external requests")
    for line in check.console_errors:
        print(f"error: {line}")
    for url in check.external_requests:
        print(f"request: {url}")
    if check.screenshot:
        print(f"screenshot: {check.screenshot}")
    return 1 if check.console_errors or check.broken_images or check.external_requests else 0


if __name__ == "__main__":
    raise SystemExit(main())
