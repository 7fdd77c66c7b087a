"""Checking the built book in a real headless browser (repository tooling, not shipped in the wheel).

Run it from the repository root after ``jupyter-book build .``::

    python -m tools.sitecheck _build/html [--screenshots DIR]

It serves ``_build/html`` over a local ``http.server`` (127.0.0.1, a free port) and opens every
page of ``_toc.yml`` in Debian's Chromium, headless, driven by Playwright for Python
(https://playwright.dev/python/) through ``executable_path``: Playwright's own browser download
(``playwright install``) is never used. It checks that

- every toc page exists and loads without console errors, uncaught exceptions or failed requests
  for the site's own files;
- every ``<img>`` was loaded by the browser (``naturalWidth > 0``) and its file is not empty;
- every static widget (``<div class="linattn-static-widget" data-widget=NAME>``) set
  ``data-rendered="1"``, drew an ``<svg>``, and redraws it when its first slider moves; and each
  widget of :data:`EXPECTED_WIDGETS` is on its page;
- every same-site ``<a href>`` resolves to a file, and its ``#fragment`` to an id in that file;
- every notebook chapter links to Colab at ``.../blob/<branch>/<path>.ipynb`` (from
  ``_config.yml``), and every Colab link on the site names a notebook that exists.

The check is hermetic: every request to another host than the local server is aborted (and every
other host resolves to nothing), so resources from CDNs (MathJax, require.js) fail the same way
on- and offline. They are listed in the report as external requests, not counted as problems.
The exit status is 1 when there is a problem.

It needs ``playwright`` and ``PyYAML`` (both in the ``[test]`` extra) and Debian's ``chromium``
(``apt-get install chromium``; :func:`ensure_chromium` installs it when run as root). It lives in
``tools/``, outside the ``linattn_edu`` package: readers of the book never need it.
"""

from __future__ import annotations

import argparse
import functools
import os
import posixpath
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
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
    "PageEvents",
    "Problem",
    "SiteReport",
    "check_site",
    "ensure_chromium",
    "launch_browser",
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
#: Extra flags for Chromium (Playwright adds the headless ones and, as root, ``--no-sandbox``).
#: The resolver rule backs up the request routing: every external host fails at once, instead
#: of after a DNS timeout or depending on a CDN.
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--disable-gpu",
    "--disable-quic",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)
#: Where the student edition of the chapters lives (``python -m linattn_edu.student_edition student``);
#: a chapter with a notebook there must have its Colab button point at it.
STUDENT_DIR = "student"
#: Colab's address when ``launch_buttons.colab_url`` is not set.
DEFAULT_COLAB_URL = "https://colab.research.google.com"

#: Requests the browser makes by itself, not asked for by any page: a missing one is no problem.
IMPLICIT_REQUESTS: tuple[str, ...] = ("favicon.ico",)

#: What a problem is about; the report groups them by page.
KINDS = ("page", "console", "exception", "request", "image", "widget", "link", "colab")
#: Console messages Chromium writes for a failed request: the request itself is reported (a
#: local file) or listed as external, so these are not counted twice.
_NETWORK_CONSOLE = re.compile(r"^Failed to load resource: ")


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
    student = book_root / STUDENT_DIR / f"{posixpath.basename(label)}.ipynb"
    if student.is_file():  # book/_ext/linattn_colab.py points the button at the student edition
        expected = launch.colab_link(f"{STUDENT_DIR}/{posixpath.basename(label)}")
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
# Chromium: finding it, installing it
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


# --------------------------------------------------------------------------------------------
# Chromium under Playwright
# --------------------------------------------------------------------------------------------


def _playwright() -> Any:
    """``playwright.sync_api``, or a ``RuntimeError`` saying how to install it."""
    try:
        from playwright import sync_api
    except ImportError as exc:
        raise RuntimeError(
            "the site check needs Playwright for Python: `python -m pip install playwright` (it is in "
            "the [test] extra). Its browser download (`playwright install`) is not needed: the check "
            "drives Debian's chromium."
        ) from exc
    return sync_api


@contextmanager
def launch_browser(executable: str) -> Iterator[Any]:
    """The Chromium at ``executable``, headless, under Playwright; yields a Playwright ``Browser``."""
    api = _playwright()
    with api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def site_context(browser: Any, base_url: str) -> Iterator[Any]:
    """A browser context of :data:`VIEWPORT` size that aborts every request not to ``base_url``."""
    width, height = VIEWPORT
    context = browser.new_context(
        viewport={"width": width, "height": height}, device_scale_factor=1, service_workers="block"
    )
    context.route(lambda url: not url.startswith(base_url), lambda route: route.abort("blockedbyclient"))
    try:
        yield context
    finally:
        context.close()


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


@dataclass
class PageEvents:
    """What one page did while it was checked, recorded from Playwright's page events."""

    #: ``(type, text)`` of every console message (``"error"``, ``"log"``, ...).
    console: list[tuple[str, str]] = field(default_factory=list)
    #: Uncaught exceptions (their stack, or name and message).
    errors: list[str] = field(default_factory=list)
    #: Every URL the page asked for.
    requests: list[str] = field(default_factory=list)
    #: ``(url, error text)`` of every request that failed in the network.
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: ``(url, HTTP status)`` of every response.
    responses: list[tuple[str, int]] = field(default_factory=list)

    def listen(self, page: Any) -> None:
        """Record the events of a Playwright ``Page`` from now on."""
        page.on("console", lambda message: self.console.append((message.type, message.text)))
        page.on("pageerror", lambda error: self.errors.append(error.stack or f"{error.name}: {error.message}"))
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("requestfailed", lambda request: self.failed.append((request.url, request.failure or "failed")))
        page.on("response", lambda response: self.responses.append((response.url, response.status)))


def event_problems(label: str, events: PageEvents, base_url: str) -> tuple[list[Problem], set[str]]:
    """Console errors, uncaught exceptions and failed local requests among a page's events.

    Returns the problems and the external network URLs the page asked for.
    """
    problems: list[Problem] = []
    for kind, text in events.console:
        if kind in ("error", "assert") and not _NETWORK_CONSOLE.match(text):
            problems.append(Problem(label, "console", f"console.{kind}: {text}"))
    for text in events.errors:
        problems.append(Problem(label, "exception", text.replace(base_url, "")))  # no random port
    for url, error in events.failed:
        # net::ERR_ABORTED: a request the page itself cancelled (e.g. by navigating on).
        if _is_site_file(url, base_url) and error != "net::ERR_ABORTED":
            problems.append(Problem(label, "request", f"{url[len(base_url):]}: {error}"))
    for url, status in events.responses:
        if _is_site_file(url, base_url) and status >= 400:
            problems.append(Problem(label, "request", f"{url[len(base_url):]}: HTTP {status}"))
    external = {url for url in events.requests if _is_network(url) and not url.startswith(base_url)}
    return problems, external


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
    context: Any, base_url: str, page: str, label: str, screenshot: Path | None, timeout: float
) -> _PageResult:
    """Load one page and check what only a browser can see; optionally save its first screen."""
    api = _playwright()
    problems: list[Problem] = []
    events = PageEvents()
    tab = context.new_page()
    events.listen(tab)
    try:
        try:
            tab.goto(base_url + page, wait_until="load", timeout=timeout * 1000)
        except api.TimeoutError:
            problems.append(Problem(label, "page", f"no load event within {timeout:.0f}s"))
        except api.Error as exc:
            failed = Problem(label, "page", f"navigation failed: {str(exc).splitlines()[0]}")
            return _PageResult([failed], set(), [])
        try:  # settled: no request for 500 ms
            tab.wait_for_load_state("networkidle", timeout=timeout * 1000)
        except api.TimeoutError:
            pass  # whatever is still loading is judged below
        for image in tab.evaluate(_IMAGES_JS) or []:
            if image["width"] <= 0:
                message = f"{image['src'][:120]!r} did not load in the browser (naturalWidth 0)"
                problems.append(Problem(label, "image", message))
        if screenshot is not None:
            # Before the widgets are touched: the first screen as a reader sees it.
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(screenshot), full_page=False)
        widgets = tab.evaluate(_WIDGETS_JS) or []
        # Handlers run by the slider may log errors too: read the events last.
        tab.wait_for_timeout(100)
    finally:
        tab.close()
    found, external = event_problems(label, events, base_url)
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
    api = _playwright()
    seen_widgets: dict[str, list[str]] = {}
    with serve(report.html_dir) as base_url, launch_browser(executable) as browser:
        with site_context(browser, base_url) as context:
            for entry in present:
                shot = shots / f"{entry}.png" if shots is not None else None
                try:
                    result = _check_in_browser(context, base_url, f"{entry}.html", entry, shot, timeout)
                except api.Error as exc:  # one page's failure must not hide the others'
                    report.problems.append(Problem(entry, "page", f"browser: {str(exc).splitlines()[0]}"))
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
        prog="python -m tools.sitecheck",
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
