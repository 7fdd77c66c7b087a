"""Tests of ``tools/sitecheck.py`` (the Playwright check of the built site) on small hand-made sites.

A good site must pass; a bad one has one fault per page, and each page must report exactly the
kinds of problem its fault causes, so every check is shown to fail when it should. The browser
tests run Debian's Chromium for real under Playwright: :func:`ensure_chromium` installs it on a
root CI machine instead of skipping them.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import pytest

from tools import sitecheck
from tools.sitecheck import Problem, check_site, ensure_chromium

REPO_URL = "https://github.com/acme/book"
COLAB = "https://colab.research.google.com/github/acme/book/blob/main"

#: A widget following the contract: sliders, an inline script that draws an SVG from the
#: slider's value, redraws on ``input`` and sets ``data-rendered="1"``. Its first SVG panel
#: never changes (like a real widget's panel that does not depend on the first slider).
GOOD_WIDGET = """
<div class="linattn-static-widget" data-widget="{name}">
  <input type="range" min="0" max="4" step="1" value="1"><input type="range" min="0" max="1">
  <svg width="20" height="20"><circle r="5" cx="10" cy="10"/></svg><svg width="200" height="20"></svg>
</div>
<script>
(function () {{
  const root = document.currentScript.previousElementSibling;
  const slider = root.querySelector('input'), svg = root.querySelectorAll('svg')[1];
  const draw = () => {{ svg.innerHTML = '<rect height="10" width="' + 20 * (+slider.value + 1) + '"/>'; }};
  slider.addEventListener('input', draw);
  draw();
  root.dataset.rendered = '1';
}})();
</script>
"""
#: Its script never ran: no data-rendered, an empty SVG.
NEVER_RENDERED_WIDGET = """
<div class="linattn-static-widget" data-widget="{name}">
  <input type="range" min="0" max="4" value="1"><svg></svg>
</div>
"""
#: Rendered once, but deaf to its slider.
DEAF_WIDGET = """
<div class="linattn-static-widget" data-widget="{name}" data-rendered="1">
  <input type="range" min="0" max="4" value="1"><svg><rect width="5" height="5"/></svg>
</div>
"""


def _png(width: int = 3, height: int = 2) -> bytes:
    """A valid RGB PNG of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + b"\x80\x20\x20" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _html(body: str) -> str:
    head = '<meta charset="utf-8"><title>t</title>'
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>"


def _write_site(
    root: Path, pages: dict[str, str], *, notebooks: set[str] = frozenset(), absent: tuple[str, ...] = ()
) -> Path:
    """A repository at ``root`` with a toc, a config, notebook sources and a built site.

    ``pages`` maps toc entries (the first is the root) to page bodies; ``notebooks`` are the
    entries that have an ``.ipynb`` source; ``absent`` are toc entries with no built page.
    Returns the html directory.
    """
    entries = list(pages) + list(absent)
    chapters = "".join(f"  - file: {entry}\n" for entry in entries[1:])
    toc = f"format: jb-book\nroot: {entries[0]}\nchapters:\n{chapters}"
    (root / "_toc.yml").write_text(toc, encoding="utf-8")
    (root / "_config.yml").write_text(
        f"repository:\n  url: {REPO_URL}\n  branch: main\n  path_to_book: ''\n"
        "launch_buttons:\n  colab_url: https://colab.research.google.com\n",
        encoding="utf-8",
    )
    html = root / "_build" / "html"
    for entry, body in pages.items():
        (html / entry).parent.mkdir(parents=True, exist_ok=True)
        (html / f"{entry}.html").write_text(_html(body), encoding="utf-8")
    for entry in notebooks:
        (root / f"{entry}.ipynb").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{entry}.ipynb").write_text("{}", encoding="utf-8")
    (html / "_images").mkdir(parents=True, exist_ok=True)
    (html / "_images" / "fig.png").write_bytes(_png())
    (html / "_images" / "empty.png").write_bytes(b"")
    redirect = f'<meta http-equiv="Refresh" content="0; url={entries[0]}.html" />'
    (html / "index.html").write_text(redirect, encoding="utf-8")
    return html


#: The real widget pages (``EXPECTED_WIDGETS``), each a notebook chapter with its Colab link.
GOOD_PAGES = {
    "book/intro": '<h1 id="top-title">Intro</h1><a href="03_alibi.html#sec">chapter</a>'
    '<a href="#top-title">up</a> <img src="../_images/fig.png" alt="figure">'
    '<a href="https://example.org/">external</a>',
    **{
        entry: f'<h2 id="sec">{name}</h2><a href="{COLAB}/{entry}.ipynb">Colab</a>'
        '<a href="../index.html">home</a>' + GOOD_WIDGET.format(name=name)
        for name, entry in sitecheck.EXPECTED_WIDGETS.items()
    },
}

#: toc entry -> (page body, the problem kinds its fault must cause, and no others).
BAD_PAGES: dict[str, tuple[str, set[str]]] = {
    "book/intro": ('<a href="broken_link.html">fine</a>', set()),
    "book/broken_link": ('<a href="nowhere.html">x</a> <a href="intro.html#no-such-id">y</a>', {"link"}),
    "book/missing_image": ('<img src="../_images/gone.png">', {"image", "request"}),
    "book/empty_image": ('<img src="../_images/empty.png">', {"image"}),
    "book/console_error": ('<script>console.error("boom")</script>', {"console"}),
    "book/exception": ('<script>throw new Error("kaput")</script>', {"exception"}),
    "book/missing_script": ('<script src="../_static/gone.js"></script>', {"request"}),
    "book/external_only": ('<script src="https://cdn.example.org/lib.js"></script>', set()),
    "book/widget_never": (NEVER_RENDERED_WIDGET.format(name="alibi"), {"widget"}),
    "book/widget_deaf": (DEAF_WIDGET.format(name="gates"), {"widget"}),
    "book/widget_unknown": (GOOD_WIDGET.format(name="mystery"), {"widget"}),
    "book/nb_no_colab": ("<p>a notebook chapter without its launch link</p>", {"colab"}),
    "book/nb_wrong_colab": (
        f'<a href="{COLAB}/book/nb_wrong_colab.ipynb">ok</a> <a href="{COLAB}/book/ghost.ipynb">ghost</a>'
        f'<a href="{COLAB.replace("/main", "/dev")}/book/nb_wrong_colab.ipynb">dev</a>',
        {"colab"},
    ),
}
BAD_NOTEBOOKS = {"book/nb_no_colab", "book/nb_wrong_colab"}
#: recall's page never shows it; alibi's and gates' widgets are broken on their pages.
BAD_WIDGETS = {"alibi": "book/widget_never", "gates": "book/widget_deaf", "recall": "book/intro"}


@pytest.fixture(scope="module")
def chromium() -> str:
    """Chromium, installed here if needed (root CI machine): these tests never skip."""
    return ensure_chromium()


@pytest.fixture(scope="module")
def good_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("good")
    return _write_site(root, GOOD_PAGES, notebooks=set(sitecheck.EXPECTED_WIDGETS.values()))


@pytest.fixture(scope="module")
def bad_report(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> sitecheck.SiteReport:
    root = tmp_path_factory.mktemp("bad")
    pages = {entry: body for entry, (body, _) in BAD_PAGES.items()}
    html = _write_site(root, pages, notebooks=BAD_NOTEBOOKS, absent=("book/not_built",))
    return check_site(html, widgets=BAD_WIDGETS, chromium=chromium, timeout=30)


def _kinds(problems: list[Problem], page: str) -> set[str]:
    return {p.kind for p in problems if p.page == page}


# --------------------------------------------------------------------------------------------
# In the browser
# --------------------------------------------------------------------------------------------


def test_good_site_passes(good_site: Path, chromium: str) -> None:
    report = check_site(good_site, chromium=chromium, timeout=30)
    assert report.ok, report.format()
    assert report.pages == list(GOOD_PAGES)
    assert not report.external  # an external <a href> is not a request


def test_cli_passes_good_site_and_saves_screenshots(
    good_site: Path, chromium: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shots = tmp_path / "shots"
    assert sitecheck.main([str(good_site), "--screenshots", str(shots)]) == 0, capsys.readouterr().out
    assert f"sitecheck: {len(GOOD_PAGES)} pages" in capsys.readouterr().out
    saved = sorted(shots.rglob("*.png"))
    assert [p.relative_to(shots).with_suffix("").as_posix() for p in saved] == sorted(GOOD_PAGES)
    for shot in saved:
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", data[16:24]) == sitecheck.VIEWPORT, f"{shot} is not one first screen"


@pytest.mark.parametrize("page", [*BAD_PAGES, "book/not_built"])
def test_each_fault_is_reported(bad_report: sitecheck.SiteReport, page: str) -> None:
    """Each bad page reports exactly the kinds of problem its one fault causes."""
    expected = BAD_PAGES[page][1] if page in BAD_PAGES else {"page"}
    if page == "book/intro":
        expected = {"widget"}  # the expected recall widget is not there
    assert _kinds(bad_report.problems, page) == expected, bad_report.format()


def test_bad_site_messages_name_the_fault(bad_report: sitecheck.SiteReport) -> None:
    text = bad_report.format()
    for needle in (
        "'nowhere.html': no such file book/nowhere.html",
        "no id 'no-such-id' in book/intro.html",
        "_images/gone.png",
        "the file _images/empty.png is empty",
        "console.error: boom",
        "kaput",
        "_static/gone.js: HTTP 404",
        "data-rendered is '', not '1'",
        "left the svg unchanged",
        "'mystery'",
        f"no Colab launch link {COLAB}/book/nb_no_colab.ipynb",
        "no notebook book/ghost.ipynb",
        "blob/dev/book/nb_wrong_colab.ipynb is not",
        'no static widget data-widget="recall"',
        "book/not_built.html was not built",
    ):
        assert needle in text, f"{needle!r} not in the report:\n{text}"


def test_external_requests_are_listed_not_counted(bad_report: sitecheck.SiteReport) -> None:
    assert bad_report.external == {"https://cdn.example.org/lib.js": ["book/external_only"]}
    assert _kinds(bad_report.problems, "book/external_only") == set()


# --------------------------------------------------------------------------------------------
# Without a browser
# --------------------------------------------------------------------------------------------


def test_missing_page_fails_without_starting_a_browser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sitecheck, "launch_browser", None)  # calling it would raise TypeError
    html = _write_site(tmp_path, {"book/intro": "<p>hi</p>"})
    (html / "book" / "intro.html").unlink()
    assert sitecheck.main([str(html), "--timeout", "5"]) == 1
    out = capsys.readouterr().out
    assert "book/intro.html was not built" in out


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_invalid_html_dir_is_a_value_error(tmp_path: Path, make: str) -> None:
    target = tmp_path / "html"
    if make == "empty":
        target.mkdir()
    elif make == "file":
        target.write_text("not a folder")
    with pytest.raises(ValueError, match="html_dir"):
        check_site(target)


def test_cli_reports_invalid_html_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        sitecheck.main([str(tmp_path / "nowhere")])
    assert exc.value.code == 2
    assert "is not a directory" in capsys.readouterr().err


def test_config_must_name_a_github_repository(tmp_path: Path) -> None:
    config = tmp_path / "_config.yml"
    config.write_text("repository:\n  url: https://gitlab.com/acme\n", encoding="utf-8")
    with pytest.raises(ValueError, match="repository.url"):
        sitecheck.launch_config(config)
    config.write_text("repository:\n  url: https://github.com/acme/book.git\n", encoding="utf-8")
    launch = sitecheck.launch_config(config)
    assert launch.branch == "master"  # Jupyter Book's default when none is set
    expected = "https://colab.research.google.com/github/acme/book/blob/master/book/ch.ipynb"
    assert launch.colab_link("book/ch") == expected


def test_toc_entries_in_reading_order(tmp_path: Path) -> None:
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: A\n    chapters:\n"
        "      - file: book/a\n        sections:\n          - file: book/a1.ipynb\n      - file: book/b\n",
        encoding="utf-8",
    )
    assert sitecheck.toc_entries(toc) == ["book/intro", "book/a", "book/a1", "book/b"]


@pytest.mark.parametrize(
    ("ref", "target"),
    [
        ("ch.html#sec", ("book/ch.html", "sec")),
        ("#here", ("book/p.html", "here")),
        ("../_images/a%20b.png", ("_images/a b.png", "")),
        ("/search.html?q=x", ("search.html", "")),
        ("../../outside.html", ("../outside.html", "")),
        ("https://example.org/x.html", None),
        ("mailto:someone@example.org", None),
        ("//cdn.example.org/x.js", None),
    ],
)
def test_local_target(ref: str, target: tuple[str, str] | None) -> None:
    assert sitecheck._local_target("book/p.html", ref) == target


def test_link_leaving_the_site_is_broken(tmp_path: Path) -> None:
    html = _write_site(tmp_path, {"book/intro": '<a href="../../secret.html">x</a>'})
    (tmp_path / "secret.html").write_text("outside the site")
    (problem,) = sitecheck.check_links(html, "book/intro.html", "book/intro")
    assert problem.kind == "link" and "../secret.html" in problem.message


def test_chromium_missing_without_root_gives_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sitecheck, "_find_chromium", lambda: None)
    monkeypatch.setattr(sitecheck.os, "geteuid", lambda: 1000)
    with pytest.raises(RuntimeError, match="apt-get install chromium"):
        ensure_chromium()


def test_chromium_missing_as_root_is_installed_with_apt(monkeypatch: pytest.MonkeyPatch) -> None:
    """As root (CI), a missing Chromium is installed with apt-get, then found."""
    found = iter([None, "/usr/bin/chromium"])
    commands: list[list[str]] = []
    monkeypatch.setattr(sitecheck, "_find_chromium", lambda: next(found))
    monkeypatch.setattr(sitecheck.os, "geteuid", lambda: 0)
    monkeypatch.setattr(sitecheck.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(sitecheck.subprocess, "run", lambda command, **kwargs: commands.append(command))
    assert ensure_chromium() == "/usr/bin/chromium"
    assert [c[0] for c in commands] == ["apt-get", "apt-get"]
    assert commands[0][-1] == "update" and commands[1][-3:] == ["install", "-y", "chromium"]


def test_missing_playwright_gives_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "playwright", None)  # `import playwright` raises ImportError
    with pytest.raises(RuntimeError, match="pip install playwright"):
        sitecheck._playwright()


def test_the_site_checker_is_not_in_the_package() -> None:
    """Readers install ``linattn_edu``; the browser check is repository tooling (``tools/``)."""
    import linattn_edu

    package = Path(linattn_edu.__file__).parent
    assert not list(package.rglob("sitecheck*")), "a site checker is inside linattn_edu"
    assert Path(sitecheck.__file__).resolve().parent.name == "tools"


def test_colab_link_of_a_chapter_with_a_student_edition(tmp_path: Path) -> None:
    """A chapter whose student notebook exists must open that one in Colab (book/_ext/linattn_colab.py)."""
    launch = sitecheck.LaunchConfig(owner_repo="acme/book", branch="main", path_to_book="",
                                    colab_url="https://colab.research.google.com")
    html = tmp_path / "html"
    (html / "book").mkdir(parents=True)
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "ch.ipynb").write_text("{}")
    page = "book/ch.html"

    def problems(href: str) -> list:
        (html / page).write_text(f'<html><body><a href="{href}">Colab</a></body></html>')
        return sitecheck.check_colab_links(html, page, "book/ch", launch=launch, book_root=tmp_path, notebook=True)

    assert problems(f"{COLAB}/book/ch.ipynb") == []  # no student edition: the chapter itself
    (tmp_path / "student").mkdir()
    (tmp_path / "student" / "ch.ipynb").write_text("{}")
    assert problems(f"{COLAB}/student/ch.ipynb") == []
    assert [p.message for p in problems(f"{COLAB}/book/ch.ipynb")] == [
        f"no Colab launch link {COLAB}/student/ch.ipynb"]
