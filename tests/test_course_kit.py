"""The course kit's exercise index agrees with the notebooks and with ``linattn_edu.exercises``.

Reads files only (the notebooks as JSON, the Markdown page, the toc) and imports the checker
modules, so it is fast. A new exercise, a renamed checker or a dropped one fails here until
``book/course_kit.md`` is updated.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
COURSE_KIT = BOOK / "course_kit.md"
FURTHER_READING = BOOK / "further_reading.md"
TOC = ROOT / "_toc.yml"

#: A checker call in a notebook's code, e.g. ``ch04.check_chunk_step(``.
_CALL = re.compile(r"\b(ch\d\d)\.(check_\w+)\s*\(")
#: A checker named in the course kit, e.g. ``linattn_edu.exercises.ch04.check_chunk_step``.
_NAMED = re.compile(r"linattn_edu\.exercises\.(ch\d\d)\.(check_\w+)")


def _chapters() -> list[Path]:
    """The numbered chapter notebooks ``book/NN_*.ipynb``."""
    chapters = sorted(BOOK.glob("[0-9][0-9]*_*.ipynb"))  # 06b_decay_bridge too
    assert chapters, "no chapter notebooks in book/"
    return chapters


def _calls_in_notebooks() -> set[tuple[str, str]]:
    """``(module, checker)`` for every ``chNN.check_*(`` call in the chapters' code cells.

    Each call must use the module of its own chapter (``ch04`` in ``04_*.ipynb``).
    """
    found: set[tuple[str, str]] = set()
    for path in _chapters():
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        module = f"ch{path.name[:2]}"
        for cell in cells:
            if cell.get("cell_type") != "code":
                continue
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for mod, name in _CALL.findall(source):
                assert mod == module, f"{path.name} calls {mod}.{name}: expected {module}"
                found.add((mod, name))
    assert found, "no checker calls found in the notebooks"
    return found


def _index_rows() -> list[str]:
    """Table rows of the course kit's exercise index (from its heading to the next ``## ``)."""
    text = COURSE_KIT.read_text(encoding="utf-8")
    match = re.search(r"^## Index of the exercises[ \t]*\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, "book/course_kit.md has no '## Index of the exercises' section"
    rows = [line for line in match.group(1).splitlines() if _NAMED.search(line) and line.startswith("|")]
    assert rows, "the exercise index of book/course_kit.md has no rows naming a checker"
    return rows


def _named_in_index() -> list[tuple[str, str]]:
    """``(module, checker)`` of every index row, checking the row's chapter column agrees."""
    named = []
    for row in _index_rows():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        found = _NAMED.findall(row)
        assert len(found) == 1, f"an index row should name exactly one checker: {row}"
        module, name = found[0]
        assert cells[0].isdigit() and int(cells[0]) == int(module[2:]), (
            f"the chapter column {cells[0]!r} disagrees with the checker {module}.{name}"
        )
        named.append((module, name))
    return named


def test_every_notebook_checker_is_indexed() -> None:
    missing = sorted(_calls_in_notebooks() - set(_named_in_index()))
    assert not missing, f"checkers called in the notebooks but missing from the course kit's index: {missing}"


def test_index_has_no_stale_or_duplicate_checkers() -> None:
    named = _named_in_index()
    duplicates = sorted({n for n in named if named.count(n) > 1})
    assert not duplicates, f"checkers listed twice in the course kit's index: {duplicates}"
    stale = sorted(set(named) - _calls_in_notebooks())
    assert not stale, f"checkers in the course kit's index that no notebook calls: {stale}"


def test_every_checker_named_in_the_course_kit_exists() -> None:
    text = COURSE_KIT.read_text(encoding="utf-8")
    named = set(_NAMED.findall(text)) | _calls_in_notebooks()
    absent = []
    for module, name in sorted(named):
        mod = importlib.import_module(f"linattn_edu.exercises.{module}")
        if not callable(getattr(mod, name, None)):
            absent.append(f"linattn_edu.exercises.{module}.{name}")
    assert not absent, f"checkers that linattn_edu.exercises does not define: {absent}"


@pytest.mark.parametrize("page", ["book/course_kit", "book/further_reading"])
def test_page_is_in_toc(page: str) -> None:
    assert (ROOT / f"{page}.md").exists(), f"{page}.md does not exist"
    toc = yaml.safe_load(TOC.read_text(encoding="utf-8"))
    entries: list[str] = [toc["root"]]

    def walk(items: list[dict]) -> None:
        for item in items or []:
            if "file" in item:
                entries.append(item["file"])
            for key in ("parts", "chapters", "sections"):
                walk(item.get(key, []))

    walk([toc])
    assert page in entries, f"{page} is not listed in _toc.yml"
    # Back matter: both pages come before the bibliography.
    assert entries.index(page) < entries.index("book/bibliography"), f"{page} should precede the bibliography"


def test_further_reading_cites_the_four_papers() -> None:
    text = FURTHER_READING.read_text(encoding="utf-8")
    keys = set(re.findall(r"\{cite:[tp]\}`([^`]+)`", text))
    keys = {k.strip() for group in keys for k in group.split(",")}
    bib = (BOOK / "references.bib").read_text(encoding="utf-8")
    known = set(re.findall(r"^@\w+\{([^,\s]+),", bib, re.MULTILINE))
    assert keys <= known, f"citation keys not in book/references.bib: {sorted(keys - known)}"
    for key in ("press2022alibi", "arora2024based", "de2024griffin", "you2024linearized"):
        assert key in keys, f"further_reading.md does not cite {key}"
