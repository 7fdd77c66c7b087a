"""The student edition: generated from the tags, committed up to date, solution-free, runnable.

Fast tests read files only. The ``slow`` ones execute a student notebook (``LINATTN_FAST=1``) and
check that every exercise's checker printed ✗ and nothing crashed; chapter 1 (the fastest chapter
with five exercises) runs in the default selection as well, so "Run all" is proved on one chapter
in every test run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest

from linattn_edu import student_edition as se

ROOT = Path(__file__).resolve().parents[1]
STUDENT = ROOT / "student"
CHAPTERS = se.chapter_notebooks(ROOT)
#: Chapters whose exercises this repository's tags cover (chapter 7's notebook is tagged by its owner).
TAGGED = [p for p in CHAPTERS if p.name[:2] in {"01", "02", "03", "04", "05", "06", "07", "08"}]
_CHECK_CALL = re.compile(r"\b(ch\d\d)\.(check_\w+)\s*\(")
#: Any checker call (the chapters' ``chNN.check_*`` and the puzzles' checkers alike).
_ANY_CHECK = re.compile(r"\bcheck_\w+\s*\(")
KERNEL_NAME = "python3"


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _tags(cell: nbformat.NotebookNode) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


# ------------------------------------------------------------------------------------------------
# The generator
# ------------------------------------------------------------------------------------------------


def test_solution_block_becomes_stub() -> None:
    src = "def f(x):\n    # x: (T,)\n    # BEGIN SOLUTION\n    y = x + 1\n    return y\n    # END SOLUTION\n\n\ncheck(f);"
    out = se.strip_solution_blocks(src)
    assert out == "def f(x):\n    # x: (T,)\n    # YOUR CODE HERE\n    raise NotImplementedError\n\n\ncheck(f);"


def test_triton_solution_block_becomes_pass() -> None:
    src = (
        "@triton.jit\ndef k(x_ptr, n, BLOCK: tl.constexpr):\n    pid = tl.program_id(0)\n"
        "    # BEGIN SOLUTION\n    offs = pid * BLOCK + tl.arange(0, BLOCK)\n    if pid < 3:\n"
        "        tl.store(x_ptr + offs, 0.0, mask=offs < n)\n    # END SOLUTION\n\n\ndef host():\n"
        "    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n"
    )
    out = se.strip_solution_blocks(src)
    assert "    # YOUR CODE HERE\n    pass\n" in out
    assert "def host():\n    # YOUR CODE HERE\n    raise NotImplementedError\n" in out
    assert "tl.store" not in out and "return 1" not in out


@pytest.mark.parametrize(
    "src",
    [
        "    # BEGIN SOLUTION\n    x = 1\n",
        "    x = 1\n    # END SOLUTION\n",
        "    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    # END SOLUTION\n",
        "    # BEGIN SOLUTION\n    x = 1\n  # END SOLUTION\n",
    ],
    ids=["no-end", "no-begin", "nested", "indent"],
)
def test_malformed_blocks_raise(src: str) -> None:
    with pytest.raises(ValueError, match="SOLUTION"):
        se.strip_solution_blocks(src, where="test")


def test_removed_cells_and_kept_checkers() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("text"),
        nbformat.v4.new_code_cell("def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n\nch01.check_f(f);",
                                  metadata={"tags": ["exercise", "hide-input"]}),
        nbformat.v4.new_markdown_cell("```{dropdown} Solution\nx\n```", metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell("assert ch01.check_f(_solution_f)", metadata={"tags": ["remove-cell", "proof"]}),
        nbformat.v4.new_code_cell("secret()", metadata={"tags": ["hidden-check"]}),
        nbformat.v4.new_code_cell("# Hidden in the book: proof\nassert 1", metadata={"tags": ["remove-cell"]}),
        nbformat.v4.new_markdown_cell("````{dropdown} Solution to exercise 9\nold layout\n````"),
        nbformat.v4.new_code_cell("ch01.check_f(f);", metadata={"tags": ["checker"]}),
    ]
    cells = se.student_cells(nb)
    assert [c.source for c in cells] == [
        "text",
        "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError\n\nch01.check_f(f);",
        "ch01.check_f(f);",
    ]
    assert cells[1].metadata["tags"] == ["exercise"]  # the reader sees the code they complete
    assert "hide-input" in nb.cells[1].metadata["tags"]  # the solution notebook is untouched


# ------------------------------------------------------------------------------------------------
# The book's tags and the committed student edition
# ------------------------------------------------------------------------------------------------


def test_committed_student_edition_is_up_to_date(tmp_path: Path) -> None:
    """``student/`` is exactly what ``python -m linattn_edu.student_edition student`` writes now."""
    written = se.write_student_edition(tmp_path, ROOT)
    assert [p.name for p in written] == [p.name for p in CHAPTERS]
    committed = sorted(p.name for p in STUDENT.glob("*.ipynb"))
    assert committed == sorted(p.name for p in written), "student/ holds other files than the generator writes"
    stale = [p.name for p in written if p.read_bytes() != (STUDENT / p.name).read_bytes()]
    assert not stale, (
        f"student/ is out of date for {stale}: run `python -m linattn_edu.student_edition student` and commit"
    )


@pytest.mark.parametrize("path", TAGGED, ids=_ids(TAGGED))
def test_every_exercise_is_tagged_and_has_a_checker(path: Path) -> None:
    """Each exercise has a checker (in its cell or a following ``checker`` cell) and its solution a proof.

    Exercises checked by ``chNN.check_*`` use their own chapter's module and have a ``proof`` cell
    calling the same checker on the solution (puzzles may prove their solutions in the test suite).
    """
    nb = nbformat.read(path, as_version=4)
    module = f"ch{path.name[:2]}"
    exercises = [i for i, c in enumerate(nb.cells) if "exercise" in _tags(c)]
    assert exercises, f"{path.name} has no cell tagged 'exercise'"
    for i in exercises:
        cell = nb.cells[i]
        following = [c for c in nb.cells[i + 1:] if "checker" in _tags(c)][:1]
        assert _ANY_CHECK.search(cell.source) or any(_ANY_CHECK.search(c.source) for c in following), (
            f"{path.name}: exercise cell {i} has no checker call in it or in a later cell tagged 'checker'"
        )
        calls = _CHECK_CALL.findall(cell.source)
        assert all(m == module for m, _ in calls), f"exercise cell calls another chapter's checker:\n{cell.source}"
        assert "# YOUR CODE HERE" in cell.source or se.BEGIN in cell.source, cell.source
    exercises = [nb.cells[i] for i in exercises]
    in_exercises = {n for c in exercises for _, n in _CHECK_CALL.findall(c.source)}
    proved = {n for c in nb.cells if "proof" in _tags(c) for _, n in _CHECK_CALL.findall(c.source)}
    assert in_exercises <= proved, f"exercises without a proof cell: {sorted(in_exercises - proved)}"
    for cell in nb.cells:
        if cell.cell_type == "markdown" and re.match(r"^(`{3,}|:{3,})\{dropdown\} Solution", cell.source):
            assert "solution" in _tags(cell), f"{path.name}: untagged solution dropdown:\n{cell.source[:200]}"
        if cell.cell_type == "code" and cell.source.startswith("# Hidden in the book"):
            assert "proof" in _tags(cell) or "hidden-check" in _tags(cell), f"{path.name}: untagged proof"
        if "prediction" in _tags(cell):
            assert cell.cell_type == "markdown"


@pytest.mark.parametrize("path", TAGGED, ids=_ids(TAGGED))
def test_chapter_has_predictions_and_a_derivation(path: Path) -> None:
    """At least two "predict before you run" questions, each answered in a later solution cell, and one derivation."""
    cells = nbformat.read(path, as_version=4).cells
    predictions = [i for i, c in enumerate(cells) if "prediction" in _tags(c)]
    assert len(predictions) >= 2, f"{path.name}: {len(predictions)} prediction cells, expected at least 2"
    for i in predictions:
        later = [c for c in cells[i + 1:] if "solution" in _tags(c) and "prediction" not in _tags(c)]
        assert later, (
            f"{path.name}: the prediction in cell {i} has no answer revealed after it"
        )
    derivations = [c for c in cells if "solution" in _tags(c) and "Pen and paper" in c.source]
    assert derivations, f"{path.name}: no pen-and-paper derivation with a worked answer (a 'Pen and paper' solution cell)"


@pytest.mark.parametrize("path", CHAPTERS, ids=_ids(CHAPTERS))
def test_student_notebook_has_no_solutions(path: Path) -> None:
    """No solution, proof or hidden-check cell; no later cell re-defines or bypasses the reader's code."""
    nb = nbformat.read(STUDENT / path.name, as_version=4)
    defined: list[str] = []
    for index, cell in enumerate(nb.cells):
        assert not _tags(cell) & se.REMOVED_TAGS, f"{path.name} cell {index} should have been removed"
        assert "_solution_" not in cell.source, f"{path.name} cell {index} uses a hidden solution"
        assert not re.match(r"^(`{3,}|:{3,})\{dropdown\} Solution", cell.source), f"{path.name} cell {index}"
        assert se.BEGIN not in cell.source and se.END not in cell.source
        if cell.cell_type != "code":
            continue
        names = re.findall(r"^(?:def|class) (\w+)", cell.source, re.MULTILINE)
        if "exercise" in _tags(cell):
            assert "# YOUR CODE HERE" in cell.source, f"{path.name} cell {index}: nothing for the reader to write"
            defined += names
        else:
            again = sorted(set(names) & set(defined))
            assert not again, f"{path.name} cell {index} re-defines the reader's {again}: 'Run all' would overwrite it"


# ------------------------------------------------------------------------------------------------
# Execution: the student notebooks run to the end, every checker printing ✗
# ------------------------------------------------------------------------------------------------




def _execute_student(name: str, jupyter_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PATH", jupyter_path)
    monkeypatch.setenv("LINATTN_FAST", "1")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(STUDENT / name, as_version=4)
    # run where the solution notebooks run (book/), so relative paths to results resolve the same
    client = NotebookClient(nb, timeout=600, kernel_name=KERNEL_NAME, allow_errors=False,
                            resources={"metadata": {"path": str(ROOT / "book")}})
    client.execute()  # raises CellExecutionError on the first crashing cell
    checked = 0
    for index, cell in enumerate(nb.cells):
        if not (_tags(cell) & {"exercise", "checker"}) or not _ANY_CHECK.search(cell.source):
            continue
        printed = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
        assert "✗" in printed and "✓" not in printed, f"{name} cell {index}: expected a ✗ line, got {printed!r}"
        checked += 1
    assert checked, f"{name}: no checker ran"


STUDENT_FAST = ["01_softmax_attention.ipynb"]


@pytest.mark.parametrize("name", STUDENT_FAST)
def test_student_notebook_runs_with_checkers_reporting_not_solved(
    name: str, jupyter_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _execute_student(name, jupyter_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in TAGGED if p.name not in STUDENT_FAST], ids=_ids(
    [p for p in TAGGED if p.name not in STUDENT_FAST]))
def test_student_notebook_runs_slow(path: Path, jupyter_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _execute_student(path.name, jupyter_path, monkeypatch)


# ------------------------------------------------------------------------------------------------
# The Colab launch button opens the student edition
# ------------------------------------------------------------------------------------------------


def _colab_extension():
    import importlib.util

    spec = importlib.util.spec_from_file_location("linattn_colab", ROOT / "book" / "_ext" / "linattn_colab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_colab_url_points_at_the_student_notebook() -> None:
    ext = _colab_extension()
    base = "https://colab.research.google.com/github/linattn/linattn/blob/main/"
    available = {p.name for p in STUDENT.glob("*.ipynb")}
    assert ext.student_url(base + "book/05_based.ipynb", "student", available) == base + "student/05_based.ipynb"
    # pages without a student notebook, and other URLs, are left alone
    assert ext.student_url(base + "book/intro.ipynb", "student", available) == base + "book/intro.ipynb"
    assert ext.student_url("https://mybinder.org/v2/gh/x/y/main", "student", available) == "https://mybinder.org/v2/gh/x/y/main"


def test_colab_extension_rewrites_the_theme_button() -> None:
    """The html-page-context handler edits the Colab entry of the theme's launch-button group only."""
    from types import SimpleNamespace

    ext = _colab_extension()
    base = "https://colab.research.google.com/github/linattn/linattn/blob/main/"
    app = SimpleNamespace(config=SimpleNamespace(linattn_student_dir="student"), srcdir=str(ROOT))
    context = {"header_buttons": [
        {"label": "download-buttons", "buttons": [{"text": "Colab", "url": base + "book/01_softmax_attention.ipynb"}]},
        {"label": "launch-buttons", "buttons": [
            {"text": "Binder", "url": "https://mybinder.org/v2/gh/linattn/linattn/main?urlpath=tree/book/01_softmax_attention.ipynb"},
            {"text": "Colab", "url": base + "book/01_softmax_attention.ipynb"},
        ]},
    ]}
    ext._rewrite_colab(app, "book/01_softmax_attention", "page.html", context, None)
    launch = context["header_buttons"][1]["buttons"]
    assert launch[1]["url"] == base + "student/01_softmax_attention.ipynb"
    assert "book/01_softmax_attention" in launch[0]["url"]
    assert context["header_buttons"][0]["buttons"][0]["url"].endswith("book/01_softmax_attention.ipynb")


def test_config_registers_the_colab_extension() -> None:
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["sphinx"]["local_extensions"].get("linattn_colab") == "book/_ext"
    assert config["launch_buttons"].get("colab_url"), "Colab launch buttons are configured"
