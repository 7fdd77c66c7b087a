"""Checking the built book in a real headless browser.

Run it from the repository root after ``jupyter-book build .``::

    python -m linattn_edu.sitecheck _build/html [--screenshots DIR]

It serves ``_build/html`` over a local ``http.server`` (127.0.0.1, a free port) and opens every
page of ``_toc.yml`` in Debian's Chromium, headless, driven through the Chrome DevTools Protocol
over ``--remote-debugging-pipe``: no browser download, no port to discover, no PyPI dependency.
It checks that

- every toc page exists and loads without console errors, uncaught exceptions or failed requests
  for the site's own files;
- every ``<img>`` was loaded by the browser (``naturalWidth > 0``) and its file is not empty;
- every static widget (``<div class="linattn-static-widget" data-widget=NAME>``) set
  ``data-rendered="1"``, drew an ``<svg>``, and redraws it when its first slider moves; and each
  widget of :data:`EXPECTED_WIDGETS` is on its page;
- every same-site ``<a href>`` resolves to a file, and its ``#fragment`` to an id in that file;
- every notebook chapter links to Colab at ``.../blob/<branch>/<path>.ipynb`` (from
  ``_config.yml``), and every Colab link on the site names a notebook that exists.

The check is hermetic: every host other than 127.0.0.1 resolves to nothing, so resources from
CDNs (MathJax, require.js) fail the same way on- and offline. They are listed in the report as
external requests, not counted as problems. The exit status is 1 when there is a problem.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import functools
import json
import os
import posixpath
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

__all__ = [
    "EXPECTED_WIDGETS",
    "Problem",
    "SiteReport",
    "check_site",
    "ensure_chromium",
    "main",
]

#: Static widget name -> the toc entry of the page that must show it.
EXPECTED_WIDGETS: dict[str, str] = {
    "alibi": "book/03_alibi",
    "recall": "book/05_based",
    "gates": "book/06_griffin_hawk",
}
#: Pages outside the toc whose links are checked as well (Sphinx writes them beside the book).
EXTRA_PAGES: tuple[str, ...] = ("index.html", "genindex.html", "search.html")
#: Size of the browser window, and so of each screenshot: a laptop's first screen.
VIEWPORT: tuple[int, int] = (1280, 900)
#: Seconds a page may take to fire its load event (2 shared cores, MathJax-heavy pages).
PAGE_TIMEOUT = 60.0
#: Seconds without network activity after which a loaded page counts as settled.
NETWORK_IDLE = 0.5
#: Flags that work as root on an offline machine. The resolver rule makes the check hermetic:
#: every external host fails at once, instead of after a DNS timeout or depending on a CDN.
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)
#: Colab's address when ``launch_buttons.colab_url`` is not set.
DEFAULT_COLAB_URL = "https://colab.research.google.com"

#: Requests the browser makes by itself, not asked for by any page: a missing one is no problem.
IMPLICIT_REQUESTS: tuple[str, ...] = ("favicon.ico",)

#: What a problem is about; the report groups them by page.
KINDS = ("page", "console", "exception", "request", "image", "widget", "link", "colab")


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the site: on ``page`` (a toc entry or file name), of ``kind``."""

    page: str
    kind: str
    message: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    def __str__(self) -> str:
        return f"{self.page}: [{self.kind}] {self.message}"


@dataclass
class SiteReport:
    """What :func:`check_site` found.

    ``external`` maps each external URL the pages asked for (all blocked) to the pages asking.
    """

    html_dir: Path
    pages: list[str]
    problems: list[Problem] = field(default_factory=list)
    external: dict[str, list[str]] = field(default_factory=dict)
    screenshots: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def format(self) -> str:
        """A readable report: a summary line, the problems by page, then external requests."""
        lines = [
            f"sitecheck: {len(self.pages)} pages in {self.html_dir}, {len(self.problems)} problem(s), "
            f"{self.seconds:.1f}s"
        ]
        current = None
        for problem in sorted(self.problems):
            if problem.page != current:
                current = problem.page
                lines.append(f"{current}:")
            lines.append(f"  [{problem.kind}] {problem.message}")
        if self.external:
            lines.append("external requests (blocked: the check is offline; not counted as problems):")
            for url, pages in sorted(self.external.items()):
                lines.append(f"  {url}  ({len(pages)} page(s))")
        if self.screenshots:
            lines.append(f"{len(self.screenshots)} screenshot(s) in {self.screenshots[0].parent}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The book's configuration
# --------------------------------------------------------------------------------------------


def toc_entries(toc: Path) -> list[str]:
    """Every ``file:`` entry of a jb-book ``_toc.yml``, root first, in reading order."""
    data = yaml.safe_load(Path(toc).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "root" not in data:
        raise ValueError(f"toc {toc} has no 'root' entry")
    entries = [str(data["root"])]

    def walk(items: Sequence[Any]) -> None:
        for item in items or []:
            if "file" in item:
                entries.append(str(item["file"]))
            for key in ("parts", "chapters", "sections"):
                walk(item.get(key, []))

    walk([data])
    # Entries may carry a suffix in the toc; the page is named without it.
    return [re.sub(r"\.(ipynb|md)$", "", entry) for entry in entries]


@dataclass(frozen=True)
class LaunchConfig:
    """Where the Colab launch links must point, from ``_config.yml``."""

    owner_repo: str
    branch: str
    path_to_book: str
    colab_url: str

    def colab_link(self, entry: str) -> str:
        """The Colab link of the notebook behind toc ``entry``."""
        path = posixpath.join(self.path_to_book, entry) if self.path_to_book else entry
        return f"{self.colab_url}/github/{self.owner_repo}/blob/{self.branch}/{path}.ipynb"


def launch_config(config: Path) -> LaunchConfig:
    """Read ``repository`` and ``launch_buttons`` from a Jupyter Book ``_config.yml``."""
    data = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
    repository = data.get("repository") or {}
    url = str(repository.get("url", ""))
    match = re.fullmatch(r"https?://github\.com/([^/\s]+/[^/\s]+?)(?:\.git)?/?", url)
    if not match:
        raise ValueError(f"config {config}: repository.url must be a GitHub repository URL, got {url!r}")
    colab = str((data.get("launch_buttons") or {}).get("colab_url") or DEFAULT_COLAB_URL)
    return LaunchConfig(
        owner_repo=match.group(1),
        branch=str(repository.get("branch") or "master"),  # Jupyter Book's own default
        path_to_book=str(repository.get("path_to_book") or "").strip("/"),
        colab_url=colab.rstrip("/"),
    )


# --------------------------------------------------------------------------------------------
# Static checks: files, links, Colab (no browser)
# --------------------------------------------------------------------------------------------


class _PageParser(HTMLParser):
    """Collects ids, link targets, image sources and a meta refresh target of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        if attr.get("id"):
            self.ids.add(attr["id"])
        if tag == "a" and attr.get("name"):
            self.ids.add(attr["name"])  # old-style anchors are fragment targets too
        if tag == "a" and "href" in attr:
            self.links.append(attr["href"])
        elif tag == "img" and attr.get("src"):
            self.images.append(attr["src"])
        elif tag == "meta" and attr.get("http-equiv", "").lower() == "refresh":
            # Jupyter Book's index.html is a redirect: ``content="0; url=book/intro.html"``.
            match = re.search(r"url\s*=\s*(\S+)", attr.get("content", ""), re.IGNORECASE)
            if match:
                self.links.append(match.group(1).strip("'\""))


@functools.lru_cache(maxsize=512)
def _parse_cached(path: Path, mtime: float) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return parser


def _parse(path: Path) -> _PageParser:
    """The parsed page (cached: link targets are looked up many times)."""
    return _parse_cached(path, path.stat().st_mtime)


def _local_target(page: str, ref: str) -> tuple[str, str] | None:
    """``(site-relative path, fragment)`` a reference on ``page`` points at; None if external.

    ``page`` is the page's path relative to the site root (``book/03_alibi.html``). The path is
    returned normalised; it starts with ``../`` when the reference leaves the site.
    """
    parts = urlsplit(ref)
    if parts.scheme or parts.netloc:  # http:, mailto:, javascript:, data:, //host/...
        return None
    path = unquote(parts.path)
    if not path:
        target = page
    elif path.startswith("/"):
        target = posixpath.normpath(path.lstrip("/"))
    else:
        target = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
    if path.endswith("/") and not target.endswith("/"):
        target += "/"
    return target, unquote(parts.fragment)


def _target_file(html_dir: Path, target: str) -> Path | None:
    """The file a site-relative target names (a folder means its index.html), or None."""
    if target == ".." or target.startswith("../"):
        return None
    path = html_dir / target
    if path.is_dir():
        path = path / "index.html"
    return path if path.is_file() else None


def check_links(html_dir: Path, page: str, label: str) -> list[Problem]:
    """Same-site ``<a href>`` (and meta refresh) targets of ``page`` that do not resolve."""
    problems: set[Problem] = set()
    for ref in _parse(html_dir / page).links:
        local = _local_target(page, ref)
        if local is None:
            continue
        target, fragment = local
        file = _target_file(html_dir, target)
        if file is None:
            problems.add(Problem(label, "link", f"{ref!r}: no such file {target}"))
        elif fragment and file.suffix == ".html" and fragment not in _parse(file).ids:
            problems.add(Problem(label, "link", f"{ref!r}: no id {fragment!r} in {target}"))
    return sorted(problems)


def check_image_files(html_dir: Path, page: str, label: str) -> list[Problem]:
    """Local ``<img>`` sources of ``page`` whose file is missing or empty."""
    problems: set[Problem] = set()
    for src in _parse(html_dir / page).images:
        local = _local_target(page, src)
        if local is None:
            continue  # data: URIs and external images are judged by the browser
        file = _target_file(html_dir, local[0])
        if file is None:
            problems.add(Problem(label, "image", f"{src!r}: no such file {local[0]}"))
        elif file.stat().st_size == 0:
            problems.add(Problem(label, "image", f"{src!r}: the file {local[0]} is empty"))
    return sorted(problems)


def check_colab_links(
    html_dir: Path, page: str, label: str, *, launch: LaunchConfig, book_root: Path, notebook: bool
) -> list[Problem]:
    """The Colab link of a notebook page, and the notebook path of every Colab link on ``page``."""
    links = [ref for ref in _parse(html_dir / page).links if ref.startswith(f"{launch.colab_url}/")]
    problems = []
    expected = launch.colab_link(label)
    if notebook and expected not in links:
        problems.append(Problem(label, "colab", f"no Colab launch link {expected}"))
    prefix = f"{launch.colab_url}/github/{launch.owner_repo}/blob/{launch.branch}/"
    for ref in sorted(set(links)):
        if not ref.startswith(prefix):
            problems.append(Problem(label, "colab", f"{ref} is not {prefix}<path>.ipynb"))
            continue
        path = unquote(urlsplit(ref[len(prefix):]).path)
        if launch.path_to_book:
            path = path.removeprefix(launch.path_to_book + "/")
        if not path.endswith(".ipynb") or not (book_root / path).is_file():
            problems.append(Problem(label, "colab", f"{ref}: no notebook {path} in the repository"))
    return problems


# --------------------------------------------------------------------------------------------
# Chromium: finding it, and a minimal DevTools Protocol client over a pipe
# --------------------------------------------------------------------------------------------


def _find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def ensure_chromium() -> str:
    """The path of Chromium, installing Debian's ``chromium`` package when root and it is missing.

    Raises ``RuntimeError`` with install instructions when Chromium is missing and cannot be
    installed here (not root, or no ``apt-get``).
    """
    found = _find_chromium()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(
            "Chromium is needed to check the built site but was not found on PATH. Install it, "
            "e.g. `sudo apt-get install chromium` on Debian (`chromium-browser` on Ubuntu), "
            "then run the check again."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Two pytest workers may get here at once: wait for the dpkg lock instead of failing.
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    for command in (["apt-get", *lock, "update"], ["apt-get", *lock, "install", "-y", "chromium"]):
        print("sitecheck: running", " ".join(command), file=sys.stderr, flush=True)
        subprocess.run(command, check=True, env=env, stdin=subprocess.DEVNULL)
    found = _find_chromium()
    if not found:
        raise RuntimeError("apt-get installed chromium, but no `chromium` is on PATH")
    return found


class DevToolsError(RuntimeError):
    """The browser failed, answered with an error, or did not answer in time."""


def _high_fd(fd: int) -> int:
    """``fd`` moved to a number above 4, so that mapping pipes onto fds 3 and 4 cannot clash."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5)
    os.close(fd)
    return moved


class Chromium:
    """A headless Chromium driven over ``--remote-debugging-pipe``.

    Chromium reads NUL-terminated JSON commands on fd 3 and writes replies and events on fd 4.
    ``posix_spawn`` maps our pipes onto those numbers without running Python in the child
    (safe while the HTTP server thread runs). Events are kept per session id.
    """

    def __init__(self, executable: str, *, timeout: float = PAGE_TIMEOUT) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="sitecheck-chromium-")
        self._log_path = Path(self._profile.name) / "chromium.log"
        to_child, self._cmd = map(_high_fd, os.pipe())
        self._reply, from_child = map(_high_fd, os.pipe())
        profile_dir = Path(self._profile.name) / "profile"
        argv = [
            executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}",
            f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "--remote-debugging-pipe", "about:blank",
        ]
        with open(self._log_path, "wb") as log:
            # In this order: the log file may itself be fd 3 or 4 here, the pipes are above 4.
            actions = [
                (os.POSIX_SPAWN_DUP2, log.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, log.fileno(), 2),
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, to_child, 3),
                (os.POSIX_SPAWN_DUP2, from_child, 4),
            ]
            # Its own process group: closing can end the renderers with the browser.
            self.pid = os.posix_spawn(executable, argv, dict(os.environ), file_actions=actions, setpgroup=0)
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self.events: dict[str | None, list[dict]] = {}
        self._closed = False

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- protocol ----------------------------------------------------------------------------

    def _log_tail(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _pump(self, deadline: float) -> None:
        """Read what the browser sent (waiting until ``deadline`` at most) and file it."""
        ready, _, _ = select.select([self._reply], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return
        data = os.read(self._reply, 1 << 20)
        if not data:
            raise DevToolsError(f"Chromium closed the DevTools pipe; its log:\n{self._log_tail()}")
        self._buffer += data
        *messages, self._buffer = self._buffer.split(b"\0")
        for raw in messages:
            message = json.loads(raw)
            if "id" in message:
                self._replies[message["id"]] = message
            else:
                self.events.setdefault(message.get("sessionId"), []).append(message)

    def call(
        self, method: str, params: dict | None = None, *, session: str | None = None,
        timeout: float | None = None,
    ) -> dict:
        """Send one command and return its result; ``DevToolsError`` on an error reply."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._cmd, data):]
        except BrokenPipeError as exc:
            raise DevToolsError(f"Chromium is gone; its log:\n{self._log_tail()}") from exc
        deadline = time.monotonic() + (timeout or self.timeout)
        while self._next_id not in self._replies:
            if time.monotonic() >= deadline:
                raise DevToolsError(f"{method}: no reply within {timeout or self.timeout:.0f}s")
            self._pump(deadline)
        reply = self._replies.pop(message["id"])
        if "error" in reply:
            raise DevToolsError(f"{method}: {reply['error'].get('message', reply['error'])}")
        return reply.get("result", {})

    def wait_for(self, session: str, done: Callable[[list[dict]], bool], timeout: float) -> bool:
        """Pump events until ``done(events of session)``; False if ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while not done(self.events.get(session, [])):
            if time.monotonic() >= deadline:
                return False
            self._pump(min(deadline, time.monotonic() + 0.1))
        return True

    def evaluate(self, session: str, expression: str, *, timeout: float | None = None) -> Any:
        """The JSON value of a JavaScript expression (promises awaited) in the page."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session=session, timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise DevToolsError(f"script failed in the page: {text}")
        return result.get("result", {}).get("value")

    @contextmanager
    def tab(self) -> Iterator[str]:
        """A fresh page of ``VIEWPORT`` size with events on; yields its session id."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable", session=session)
            width, height = VIEWPORT
            self.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session=session,
            )
            yield session
        finally:
            self.events.pop(session, None)
            if not self._closed:
                try:
                    self.call("Target.closeTarget", {"targetId": target}, timeout=10)
                except DevToolsError:
                    pass  # the browser is going away anyway

    def close(self) -> None:
        """Close the browser (politely, then by signal) and remove its profile."""
        if self._closed:
            return
        self._closed = True
        try:
            self._next_id += 1
            os.write(self._cmd, json.dumps({"id": self._next_id, "method": "Browser.close"}).encode() + b"\0")
        except OSError:
            pass
        os.close(self._cmd)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            time.sleep(0.05)
        try:
            os.killpg(self.pid, signal.SIGKILL)  # its own group: renderers left behind, if any
        except ProcessLookupError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass  # already reaped above
        os.close(self._reply)
        self._profile.cleanup()


# --------------------------------------------------------------------------------------------
# The site over HTTP
# --------------------------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without logging each request (the report says what matters)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the browser dropping a connection mid-response is not a site problem


@contextmanager
def serve(html_dir: Path) -> Iterator[str]:
    """Serve ``html_dir`` on 127.0.0.1 at a free port; yields the base URL (ending in ``/``)."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    with _QuietServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, name="sitecheck-http", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            thread.join()


# --------------------------------------------------------------------------------------------
# Browser checks of one page
# --------------------------------------------------------------------------------------------

#: Forces lazy images to load, waits for every image (10 s at most), reports each one.
_IMAGES_JS = """
(async () => {
  const images = Array.from(document.images);
  for (const img of images) { if (img.loading === 'lazy') img.loading = 'eager'; }
  const settle = img => img.decode().catch(() => null);
  const limit = new Promise(resolve => setTimeout(resolve, 10000));
  await Promise.race([Promise.all(images.map(settle)), limit]);
  return images.map(img => ({src: img.getAttribute('src') || '', width: img.naturalWidth}));
})()
"""

#: For every static widget: rendered flag, SVG size, and whether moving the first slider one
#: step (up, or down at the top) changes its SVG markup within 1 s (a redraw may wait for a
#: frame). A widget may draw several SVG panels, and one of them may rightly stay the same
#: (ALiBi's head-0 slope is 1/2 for 8 and 9 heads): all its SVGs are compared together.
_WIDGETS_JS = """
(async () => {
  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
  const found = [];
  for (const div of document.querySelectorAll('div.linattn-static-widget')) {
    const svgs = () => Array.from(div.querySelectorAll('svg'));
    const markup = () => svgs().map(svg => svg.outerHTML).join('\\n');
    const info = {
      name: div.dataset.widget || '', rendered: div.dataset.rendered || '',
      svgElements: svgs().reduce((n, svg) => n + svg.querySelectorAll('*').length, 0),
      sliders: div.querySelectorAll('input[type=range]').length, moved: null, changed: null,
    };
    const slider = div.querySelector('input[type=range]');
    if (slider && info.svgElements) {
      const before = markup(), from = slider.value;
      try { slider.stepUp(); } catch (e) {}
      if (slider.value === from) { try { slider.stepDown(); } catch (e) {} }
      info.moved = slider.value === from ? null : from + ' -> ' + slider.value;
      if (info.moved) {
        slider.dispatchEvent(new Event('input', {bubbles: true}));
        for (let i = 0; i < 20 && markup() === before; i++) await sleep(50);
        info.changed = markup() !== before;
      }
    }
    found.push(info);
  }
  return found;
})()
"""


def _is_site_file(url: str, base_url: str) -> bool:
    """True for the site's own files, except those only the browser asks for."""
    return url.startswith(base_url) and url[len(base_url):] not in IMPLICIT_REQUESTS


def _is_network(url: str) -> bool:
    """True for URLs that go over the network (not data:, blob:, about: ...)."""
    return urlsplit(url).scheme in ("http", "https", "ws", "wss")


def event_problems(label: str, events: list[dict], base_url: str) -> tuple[list[Problem], set[str]]:
    """Console errors, uncaught exceptions and failed local requests among a page's events.

    Returns the problems and the external network URLs the page asked for.
    """
    problems: list[Problem] = []
    external: set[str] = set()
    urls: dict[str, str] = {}
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            problems.append(Problem(label, "console", f"console.{params['type']}: {text}"))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            where = details.get("url", "").removeprefix(base_url)  # no random port in the report
            if where:
                text += f" (at {where}, line {details.get('lineNumber', -1) + 1})"
            problems.append(Problem(label, "exception", text))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            # Network entries repeat what the Network events below already say.
            if entry.get("level") == "error" and entry.get("source") != "network":
                problems.append(Problem(label, "console", f"{entry.get('source')}: {entry.get('text')}"))
        elif method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            urls[params.get("requestId", "")] = url
            if _is_network(url) and not url.startswith(base_url):
                external.add(url)
        elif method == "Network.loadingFailed":
            url = urls.get(params.get("requestId", ""), "?")
            if _is_site_file(url, base_url) and not params.get("canceled"):
                error = params.get("errorText")
                problems.append(Problem(label, "request", f"{url[len(base_url):]}: {error}"))
        elif method == "Network.responseReceived":
            response = params.get("response", {})
            url, status = response.get("url", ""), int(response.get("status", 0))
            if _is_site_file(url, base_url) and status >= 400:
                problems.append(Problem(label, "request", f"{url[len(base_url):]}: HTTP {status}"))
    return problems, external


def _network_idle(idle: float) -> Callable[[list[dict]], bool]:
    """A ``wait_for`` condition: no request in flight and no network event for ``idle`` seconds."""
    state = {"count": -1, "since": time.monotonic()}

    def done(events: list[dict]) -> bool:
        if len(events) != state["count"]:
            state["count"], state["since"] = len(events), time.monotonic()
            return False
        started = {e["params"]["requestId"] for e in events if e.get("method") == "Network.requestWillBeSent"}
        finished = ("Network.loadingFinished", "Network.loadingFailed")
        ended = {e["params"]["requestId"] for e in events if e.get("method") in finished}
        return not (started - ended) and time.monotonic() - state["since"] >= idle

    return done


def _load_fired(events: list[dict]) -> bool:
    """A ``wait_for`` condition: the page fired its load event."""
    return any(e.get("method") == "Page.loadEventFired" for e in events)


def widget_problems(label: str, widgets: list[dict], known: Sequence[str]) -> list[Problem]:
    """Problems with the static widgets on one page (as ``_WIDGETS_JS`` reports them).

    ``known`` are the widget names the site may use.
    """
    messages = []
    for i, w in enumerate(widgets):
        name = f"widget {w.get('name') or '#' + str(i)!r}"
        if w.get("name") not in known:
            messages.append(f"{name}: data-widget is not one of {sorted(known)}")
        if w.get("rendered") != "1":
            rendered = w.get("rendered")
            messages.append(f"{name}: data-rendered is {rendered!r}, not '1' (its script did not finish)")
        if not w.get("svgElements"):
            messages.append(f"{name}: no <svg> with content")
        if not w.get("sliders"):
            messages.append(f"{name}: no <input type=range> slider")
        elif w.get("svgElements") and not w.get("moved"):
            messages.append(f"{name}: its first slider cannot move")
        elif w.get("moved") and not w.get("changed"):
            messages.append(f"{name}: moving the first slider ({w['moved']}) left the svg unchanged")
    return [Problem(label, "widget", message) for message in messages]


@dataclass
class _PageResult:
    problems: list[Problem]
    external: set[str]
    widgets: list[dict]


def _check_in_browser(
    browser: Chromium, base_url: str, page: str, label: str, screenshot: Path | None
) -> _PageResult:
    """Load one page and check what only a browser can see; optionally save its first screen."""
    problems: list[Problem] = []
    with browser.tab() as session:
        navigation = browser.call("Page.navigate", {"url": base_url + page}, session=session)
        if navigation.get("errorText"):
            failed = Problem(label, "page", f"navigation failed: {navigation['errorText']}")
            return _PageResult([failed], set(), [])
        loaded = browser.wait_for(session, _load_fired, browser.timeout)
        if not loaded:
            problems.append(Problem(label, "page", f"no load event within {browser.timeout:.0f}s"))
        browser.wait_for(session, _network_idle(NETWORK_IDLE), browser.timeout)
        for image in browser.evaluate(session, _IMAGES_JS) or []:
            if image["width"] <= 0:
                message = f"{image['src'][:120]!r} did not load in the browser (naturalWidth 0)"
                problems.append(Problem(label, "image", message))
        if screenshot is not None:
            # Before the widgets are touched: the first screen as a reader sees it.
            data = browser.call("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(data))
        widgets = browser.evaluate(session, _WIDGETS_JS) or []
        # Handlers run by the slider may log errors too: read the events last.
        browser.wait_for(session, _network_idle(0.1), 5)
        found, external = event_problems(label, browser.events.get(session, []), base_url)
    return _PageResult(found + problems, external, widgets)


# --------------------------------------------------------------------------------------------
# The whole site
# --------------------------------------------------------------------------------------------


def _validate_html_dir(html_dir: Path | str) -> Path:
    html_dir = Path(html_dir)
    if not html_dir.is_dir():
        raise ValueError(f"html_dir {html_dir} is not a directory (build the book: jupyter-book build .)")
    if not (html_dir / "index.html").is_file() and not any(html_dir.glob("*/*.html")):
        raise ValueError(f"html_dir {html_dir} holds no built HTML (no index.html, no <dir>/<page>.html)")
    return html_dir.resolve()


def _default_source(html_dir: Path, name: str) -> Path:
    """``name`` of the book that built ``html_dir``: ``<root>/_build/html`` -> ``<root>/name``."""
    for candidate in (html_dir.parent.parent / name, Path.cwd() / name):
        if candidate.is_file():
            return candidate
    raise ValueError(f"no {name} beside {html_dir.parent.parent} or in {Path.cwd()}: pass it explicitly")


def check_site(
    html_dir: Path | str,
    *,
    toc: Path | str | None = None,
    config: Path | str | None = None,
    screenshots: Path | str | None = None,
    widgets: Mapping[str, str] = EXPECTED_WIDGETS,
    chromium: str | None = None,
    timeout: float = PAGE_TIMEOUT,
) -> SiteReport:
    """Check a built Jupyter Book site in headless Chromium; see the module docstring.

    Args:
        html_dir: the built site, e.g. ``_build/html``.
        toc: the book's ``_toc.yml``; by default the one two levels above ``html_dir``
            (``<root>/_build/html``), else the one in the working directory. Its folder is the
            repository root against which notebook paths are checked.
        config: the book's ``_config.yml``, found like ``toc``.
        screenshots: a folder to save ``<entry>.png`` (the first ``VIEWPORT`` screen) per page.
        widgets: static widget name -> toc entry of the page that must show it.
        chromium: the browser to run; by default :func:`ensure_chromium`'s.
        timeout: seconds a page may take to load.

    Returns:
        A :class:`SiteReport`; ``report.ok`` is False when there is a problem.

    Raises:
        ValueError: ``html_dir`` is not a built site, or the toc/config are missing or invalid.
    """
    start = time.monotonic()
    html_dir = _validate_html_dir(html_dir)
    toc = _source_file(html_dir, toc, "_toc.yml")
    config = _source_file(html_dir, config, "_config.yml")
    entries = toc_entries(toc)
    report = SiteReport(html_dir=html_dir, pages=entries)
    present = [entry for entry in entries if (html_dir / f"{entry}.html").is_file()]
    report.problems += [Problem(e, "page", f"{e}.html was not built") for e in entries if e not in present]
    report.problems += _static_problems(html_dir, present, launch_config(config), toc.resolve().parent)
    seen_widgets: dict[str, list[str]] = {}
    if present:
        shots = Path(screenshots) if screenshots is not None else None
        seen_widgets = _browser_pass(report, present, chromium or ensure_chromium(), timeout, shots, widgets)
    for name, entry in widgets.items():
        if entry not in seen_widgets.get(name, []):
            elsewhere = seen_widgets.get(name)
            where = f"found on {elsewhere} instead" if elsewhere else "not found on any page"
            if entry not in entries:
                where += "; _toc.yml does not list this page"
            message = f'no static widget data-widget="{name}" on this page ({where})'
            report.problems.append(Problem(entry, "widget", message))
    report.seconds = time.monotonic() - start
    return report


def _source_file(html_dir: Path, given: Path | str | None, name: str) -> Path:
    """The book's ``name`` file: ``given``, else found beside ``_build/`` or in the working directory."""
    path = Path(given) if given is not None else _default_source(html_dir, name)
    if not path.is_file():
        raise ValueError(f"{name} {path} does not exist")
    return path


def _static_problems(
    html_dir: Path, present: list[str], launch: LaunchConfig, book_root: Path
) -> list[Problem]:
    """Links, image files and Colab links of the built toc pages, and links of the extra pages."""
    problems = []
    for entry in present:
        page = f"{entry}.html"
        problems += check_links(html_dir, page, entry)
        problems += check_image_files(html_dir, page, entry)
        notebook = (book_root / f"{entry}.ipynb").is_file()
        problems += check_colab_links(
            html_dir, page, entry, launch=launch, book_root=book_root, notebook=notebook
        )
    for extra in EXTRA_PAGES:
        if (html_dir / extra).is_file():
            problems += check_links(html_dir, extra, extra)
    return problems


def _browser_pass(
    report: SiteReport, present: list[str], executable: str, timeout: float, shots: Path | None,
    widgets: Mapping[str, str],
) -> dict[str, list[str]]:
    """Open every built toc page in Chromium, adding to ``report``; returns widget name -> pages."""
    seen_widgets: dict[str, list[str]] = {}
    with serve(report.html_dir) as base_url, Chromium(executable, timeout=timeout) as browser:
        for entry in present:
            shot = shots / f"{entry}.png" if shots is not None else None
            try:
                result = _check_in_browser(browser, base_url, f"{entry}.html", entry, shot)
            except DevToolsError as exc:  # one page's failure must not hide the others'
                report.problems.append(Problem(entry, "page", f"browser: {exc}"))
                continue
            report.problems += result.problems + widget_problems(entry, result.widgets, list(widgets))
            for url in result.external:
                report.external.setdefault(url, []).append(entry)
            for name in {w.get("name", "") for w in result.widgets}:
                seen_widgets.setdefault(name, []).append(entry)
            if shot is not None:
                report.screenshots.append(shot)
    return seen_widgets


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: check a built site, print the report, return 1 if there is a problem."""
    parser = argparse.ArgumentParser(
        prog="python -m linattn_edu.sitecheck",
        description="Check the built book in headless Chromium: pages, images, widgets, links, Colab links.",
    )
    parser.add_argument("html_dir", type=Path, help="the built site, e.g. _build/html")
    parser.add_argument(
        "--screenshots", type=Path, metavar="DIR", help="save each page's first screen as DIR/<entry>.png"
    )
    parser.add_argument("--toc", type=Path, help="the book's _toc.yml (default: beside _build/)")
    parser.add_argument("--config", type=Path, help="the book's _config.yml (default: beside _build/)")
    parser.add_argument("--timeout", type=float, default=PAGE_TIMEOUT, help="seconds a page may take to load")
    args = parser.parse_args(argv)
    try:
        report = check_site(
            args.html_dir, toc=args.toc, config=args.config, screenshots=args.screenshots,
            timeout=args.timeout,
        )
    except (ValueError, RuntimeError) as exc:
        parser.error(str(exc))
    print(report.format())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
