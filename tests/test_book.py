"""Tests of the book itself: storage, table of contents, first cells, execution, build, README.

The fast tests read files only. The ``slow`` ones execute every notebook (one test each) and build
the whole book with ``-W`` (Sphinx warnings are errors). Both run with ``LINATTN_FAST=1`` and
``TRITON_INTERPRET=1``, in a Jupyter kernel that is guaranteed to run this interpreter.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CONFIG = ROOT / "_config.yml"
TOC = ROOT / "_toc.yml"
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"

#: Kernel name every chapter must declare (it is Colab's, and the one the build uses).
KERNEL_NAME = "python3"
#: Per-cell timeout (seconds) when executing a notebook; matches ``execute.timeout``.
CELL_TIMEOUT = 600
#: Wall-clock limit (seconds) for the whole book build.
BUILD_TIMEOUT = 3600
#: Environment of every execution: tiny sizes, Triton kernels in the interpreter on the CPU.
BOOK_ENV = {"LINATTN_FAST": "1", "TRITON_INTERPRET": "1"}

_SKIP_DIRS = {".ipynb_checkpoints", "_build", "__pycache__", ".jupyter_cache"}


def _book_files(*suffixes: str) -> list[Path]:
    """Files under ``book/`` with one of ``suffixes``, skipping checkpoints and build output."""
    return sorted(
        p
        for p in BOOK.rglob("*")
        if p.is_file() and p.suffix in suffixes and not (_SKIP_DIRS & set(p.relative_to(BOOK).parts))
    )


def _toc_entries() -> list[str]:
    """Every ``file:`` entry of ``_toc.yml`` (root included): root-relative, no suffix."""
    from tools.sitecheck import toc_entries

    return toc_entries(TOC)


def _resolve(entry: str) -> list[Path]:
    """The source files a toc entry may refer to (a clean book has exactly one)."""
    base = ROOT / entry
    if base.suffix in (".ipynb", ".md"):
        return [base] if base.exists() else []
    return [base.with_suffix(s) for s in (".ipynb", ".md") if base.with_suffix(s).exists()]


def _toc_notebooks() -> list[Path]:
    """Notebooks the toc lists, whether or not they exist yet (a missing one fails its tests)."""
    notebooks = []
    for entry in _toc_entries():
        found = _resolve(entry)
        if found and found[0].suffix == ".md":
            continue
        notebooks.append(found[0] if found else (ROOT / entry).with_suffix(".ipynb"))
    return notebooks


def _all_notebooks() -> list[Path]:
    """Notebooks found in ``book/`` together with those the toc lists, without duplicates."""
    return sorted({p.resolve() for p in _book_files(".ipynb")} | {p.resolve() for p in _toc_notebooks()})


def _repo_url() -> str:
    url = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["repository"]["url"]
    return url.rstrip("/")


def _nb_id(path: Path) -> str:
    return path.stem


NOTEBOOKS = _all_notebooks()


def _read(path: Path) -> nbformat.NotebookNode:
    if not path.exists():
        pytest.fail(f"{path.relative_to(ROOT)} is listed in _toc.yml but does not exist")
    return nbformat.read(path, as_version=4)


def _first_code_cell(nb: nbformat.NotebookNode) -> str:
    for cell in nb.cells:
        if cell.cell_type == "code":
            return cell.source
    return ""


# --------------------------------------------------------------------------------------------
# Storage and structure (fast)
# --------------------------------------------------------------------------------------------


def test_book_has_notebooks() -> None:
    """Guard against vacuous parametrized tests: the book must contain chapters."""
    assert NOTEBOOKS, "no notebooks found in book/ or listed in _toc.yml"
    assert _book_files(".ipynb"), "no .ipynb files in book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_nb_id)
def test_notebook_stored_clean(path: Path) -> None:
    """Notebooks are committed without outputs and without execution counts."""
    nb = _read(path)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} have outputs or execution counts; clear them "
        "(e.g. `jupyter nbconvert --clear-output --inplace`) before committing"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_nb_id)
def test_notebook_kernel_is_python3(path: Path) -> None:
    """Chapters declare the standard ``python3`` kernel (Colab's, and the one the build uses)."""
    nb = _read(path)
    name = nb.metadata.get("kernelspec", {}).get("name", KERNEL_NAME)
    assert name == KERNEL_NAME, f"{path.name}: kernelspec name is {name!r}, expected {KERNEL_NAME!r}"


def test_toc_entries_exist_once() -> None:
    """Every toc entry names exactly one existing source (no missing page, no .md twin)."""
    problems = []
    for entry in _toc_entries():
        found = _resolve(entry)
        if not found:
            problems.append(f"{entry}: no such .ipynb or .md file")
        elif len(found) > 1:
            problems.append(f"{entry}: several sources {[p.name for p in found]} (remove the twin)")
    assert not problems, "\n".join(problems)


def test_every_book_page_is_in_toc() -> None:
    """Every .ipynb and .md file in book/ is listed in _toc.yml (nothing silently left out)."""
    listed = {p.resolve() for entry in _toc_entries() for p in _resolve(entry)}
    pages = _book_files(".ipynb", ".md")
    assert pages, "book/ contains no pages"
    missing = [str(p.relative_to(ROOT)) for p in pages if p.resolve() not in listed]
    assert not missing, f"pages in book/ that _toc.yml does not list: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_nb_id)
def test_first_cell_installs_from_configured_repo(path: Path) -> None:
    """The first code cell installs the package from ``repository.url`` and calls setup()."""
    url = _repo_url()
    source = _first_code_cell(_read(path))
    assert source, f"{path.name} has no code cell"
    pattern = re.compile(r"pip install\b.*\bgit\+" + re.escape(url) + r"(?![\w-])")
    install_lines = [line for line in source.splitlines() if "pip install" in line]
    assert install_lines, f"{path.name}: the first code cell has no `pip install` line"
    assert any(pattern.search(line) for line in install_lines), (
        f"{path.name}: the first code cell's install line {install_lines} does not install "
        f"git+{url} (repository.url in _config.yml); keep them in agreement"
    )
    assert "linattn_edu.runtime.setup(" in source, (
        f"{path.name}: the first code cell must call linattn_edu.runtime.setup(...)"
    )


# --------------------------------------------------------------------------------------------
# README and CI (fast)
# --------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def _quick_start() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Quick start[ \t]*\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert match, "README.md has no '## Quick start' section followed by another section"
    return match.group(1)


def _setup_commands() -> list[str]:
    blocks = _FENCE.findall(_quick_start())
    assert len(blocks) == 2, f"README Quick start must have exactly two fenced blocks, found {len(blocks)}"
    commands = []
    for block in blocks:
        lines = [line for line in block.splitlines() if line.strip()]
        assert len(lines) == 1, f"each set-up command is a single line, got {lines}"
        commands.append(lines[0].strip())
    return commands


_RUN_TIME = re.compile(r"^\*\*Run time:\*\* CPU \d+ s.*· GPU \S", re.MULTILINE)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_nb_id)
def test_overview_states_cpu_and_gpu_time(path: Path) -> None:
    """Every chapter's overview (first cell) states its CPU run time in seconds, and its GPU time or
    that it has not been measured: a line ``**Run time:** CPU <n> s ... · GPU ...``."""
    first = _read(path).cells[0]
    assert first.cell_type == "markdown" and _RUN_TIME.search(first.source), (
        f"{path.name}: the first cell needs a line '**Run time:** CPU <seconds> s ... · GPU ...'"
    )


def test_readme_has_two_setup_commands() -> None:
    commands = _setup_commands()
    build = [c for c in commands if "jupyter-book build" in c]
    test = [c for c in commands if "pytest" in c]
    assert len(build) == 1 and len(test) == 1, f"expected one build and one test command: {commands}"
    for command in commands:
        assert "pip install -r requirements.txt" in command, command
    # No other fenced block in the README offers a competing set-up.
    text = README.read_text(encoding="utf-8")
    installs = [b.strip() for b in _FENCE.findall(text) if "pip install" in b]
    assert sorted(installs) == sorted(commands), f"extra install commands in README: {installs}"


def test_ci_runs_readme_test_command_verbatim() -> None:
    (test_command,) = [c for c in _setup_commands() if "pytest" in c]
    ci_lines = [line.strip() for line in CI_RUN.read_text(encoding="utf-8").splitlines()]
    assert test_command in ci_lines, f".ci/run does not run the README's test command {test_command!r}"
    assert os.access(CI_RUN, os.X_OK), ".ci/run is not executable"


# --------------------------------------------------------------------------------------------
# Execution and build (slow)
# --------------------------------------------------------------------------------------------




@pytest.fixture()
def book_env(jupyter_path: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("JUPYTER_PATH", jupyter_path)
    for key, value in BOOK_ENV.items():
        monkeypatch.setenv(key, value)
    return dict(os.environ)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_nb_id)
def test_notebook_executes(path: Path, book_env: dict[str, str]) -> None:
    """The notebook runs top to bottom without error, in book/, at LINATTN_FAST sizes."""
    from nbclient import NotebookClient

    nb = _read(path)
    probe = nbformat.v4.new_code_cell("import sys; print(sys.prefix)")
    nb.cells.append(probe)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name=KERNEL_NAME,
        allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, on the first failing cell
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs).strip()
    assert printed == sys.prefix, f"the kernel ran in {printed!r}, not in this environment {sys.prefix!r}"


_COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "_build", "__pycache__", ".pytest_cache", ".hypothesis", ".jupyter_cache",
    ".ipynb_checkpoints", "*.egg-info",
)


@pytest.mark.slow
def test_book_builds_without_warnings(tmp_path: Path, book_env: dict[str, str]) -> None:
    """``jupyter-book build -W`` succeeds from a clean copy: no execution cache is reused."""
    assert _book_files(".ipynb"), "no notebooks in book/: nothing would be executed"
    src = tmp_path / "src"
    out = tmp_path / "out"
    shutil.copytree(ROOT, src, ignore=_COPY_IGNORE)
    command = [
        sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
        "build", str(src), "--path-output", str(out), "--warningiserror", "--keep-going",
    ]
    proc = subprocess.run(
        command, cwd=src, env=book_env, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    log, returncode = proc.stdout + proc.stderr, proc.returncode
    warnings = [line for line in log.splitlines() if re.search(r"WARNING|ERROR", line)]
    tail = "\n".join(log.splitlines()[-150:])
    assert returncode == 0, (
        f"jupyter-book build exited {returncode}\n--- warnings/errors ---\n"
        + "\n".join(warnings) + f"\n--- log tail ---\n{tail}"
    )
    html = out / "_build" / "html"
    assert (html / "index.html").exists(), f"no HTML produced\n{tail}"
    # The licences (html.extra_footer of _config.yml) are in the footer of every page.
    unlicensed = [str(p.relative_to(html)) for p in sorted(html.glob("book/*.html")) if "CC BY 4.0" not in p.read_text()]
    assert not unlicensed, f"pages without the licence footer: {unlicensed}"
    _assert_site_ok(html, src)


def _assert_site_ok(html: Path, src: Path) -> None:
    """The built site passes the headless-browser check (``python -m tools.sitecheck``).

    Every toc page loads without console errors or failed local requests, every image and
    internal link resolves, each static widget renders and reacts to its slider, and every
    notebook chapter's Colab launch link points at ``blob/<branch>/book/<chapter>.ipynb`` of
    ``repository.url``, a notebook that exists in the copy the book was built from.
    """
    from tools.sitecheck import check_site

    report = check_site(html, toc=src / "_toc.yml", config=src / "_config.yml")
    assert report.ok, report.format()
