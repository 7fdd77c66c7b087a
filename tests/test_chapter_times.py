"""The chapters' "Run time" lines come from the stored chapter timings (tools/time_chapters.py)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

from linattn_edu import bench

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("time_chapters", ROOT / "tools" / "time_chapters.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_time_line_round_trip(tmp_path):
    tc = _script()
    row = {"chapter": "x", "wall_seconds": 41.6, "cells_seconds": 40.0, "slowest_cell": 3, "slowest_cell_seconds": 12.2}
    line = tc.run_time_line(row, "CPU (AMD EPYC)", "2026-12-03T08:00:00Z")
    source = "# T\n\n**Run time:** CPU 348 s, about 6 minutes (old) · GPU not measured yet."
    new = tc.RUN_TIME_LINE.sub(line, source, count=1)
    assert "CPU 42 s (executed by `tools/time_chapters.py` on CPU (AMD EPYC), 2026-12-03; slowest cell 12 s) · GPU" in new
    assert re.search(r"^\*\*Run time:\*\* CPU \d+ s.*· GPU \S", new, re.MULTILINE)


def test_chapters_agree_with_the_stored_timings():
    record = bench.load_results("chapter_times")
    if record is None or record["config"].get("mode") != "cpu":
        pytest.skip("no cpu-mode chapter timings stored yet (python tools/time_chapters.py)")
    tc = _script()
    rows = {r["chapter"]: r for r in record["rows"]}
    for path in tc.toc_notebooks():
        if path.stem in rows:
            first = nbformat.read(path, as_version=4).cells[0].source
            assert f"**Run time:** CPU {round(rows[path.stem]['wall_seconds'])} s" in first, (
                f"{path.name}: run `python tools/time_chapters.py --update-notebooks`"
            )


def test_times_table_is_generated_between_markers(tmp_path):
    tc = _script()
    stems = [p.stem for p in tc.toc_notebooks()][:2]
    record = {"command": "python tools/time_chapters.py", "device": "CPU (test)", "date": "2026-12-03T08:00:00Z",
              "config": {"mode": "cpu"},
              "rows": [{"chapter": s, "wall_seconds": 30.4 + i, "slowest_cell_seconds": 9.6} for i, s in enumerate(stems)]}
    build = {"device": "CPU (test)", "date": "2026-12-03T09:00:00Z", "command": "python tools/time_chapters.py --full-build",
             "git_commit": "abcdef123456", "rows": [{"wall_seconds": 600.0, "returncode": 0}]}
    for name in tc.TABLE_PAGES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"before\n{tc.TABLE_START}\nold typed table\n{tc.TABLE_END}\nafter\n")
    assert tc.update_tables(record, build, root=tmp_path) == list(tc.TABLE_PAGES)
    text = (tmp_path / "README.md").read_text()
    assert "old typed table" not in text and text.startswith("before\n") and text.endswith("after\n")
    assert "| 30 s | 10 s |" in text and "**62 s**" in text and "10.0 min" in text
    assert tc.update_tables(record, build, root=tmp_path) == []          # idempotent


def test_pages_agree_with_the_stored_timings():
    record = bench.load_results("chapter_times")
    if record is None or record["config"].get("mode") != "cpu":
        pytest.skip("no cpu-mode chapter timings stored yet (python tools/time_chapters.py)")
    tc = _script()
    block = tc.times_table(record, bench.load_results("book_build"))
    for name in tc.TABLE_PAGES:
        assert block in (ROOT / name).read_text(), f"{name}: run `python tools/time_chapters.py --update-notebooks`"


def test_build_log_gives_each_chapter_time():
    tc = _script()
    log = ("\x1b[01mreading sources... \x1b[39;49;00m[ 50%] book/01_softmax_attention\n"
           "/tmp/x/book/01_softmax_attention.ipynb: Executing notebook using local CWD [mystnb]\n"
           "/tmp/x/book/01_softmax_attention.ipynb: Executed notebook in 31.25 seconds [mystnb]\n"
           "/tmp/x/book/05_based.ipynb: Executed notebook in 7.5 seconds [mystnb]\n")
    assert tc.executed_times(log) == {"01_softmax_attention": 31.25, "05_based": 7.5}
    row = {"chapter": "05_based", "wall_seconds": 7.5, "cells_seconds": None, "slowest_cell": None,
           "slowest_cell_seconds": None}
    line = tc.run_time_line(row, "CPU (test)", "2026-12-03T08:00:00Z")
    assert line == "**Run time:** CPU 8 s (executed by `tools/time_chapters.py` on CPU (test), 2026-12-03) ·"
