"""Execute every chapter as the book build does and store how long each one takes.

    python tools/time_chapters.py                      # cpu mode, every chapter of _toc.yml
    python tools/time_chapters.py --only 05_based      # one chapter (rows of the others are kept)
    python tools/time_chapters.py --update-notebooks   # then rewrite each chapter's "Run time" line
    python tools/time_chapters.py --full-build         # time `jupyter-book build` of a fresh clone of HEAD
    python tools/time_chapters.py --only-update        # rewrite Run time lines and tables from the stored files

Writes ``linattn_edu/results/chapter_times.json`` (:func:`linattn_edu.bench.save_results`: device,
date, versions, git commit, this command): one row per chapter with its wall time (kernel start
included), the sum of its cells' times and its slowest cell. The chapters' ``**Run time:**`` lines
and the tables between ``<!-- chapter-times:start -->`` and ``<!-- chapter-times:end -->`` in
README.md and book/course_kit.md are written from this file (``--update-notebooks``), so they never
carry a typed number; a test checks that they agree with it. ``--full-build`` clones HEAD into a
temporary directory, runs ``jupyter-book build`` there (every chapter executed, as on a reader's
machine) and stores its wall time in ``linattn_edu/results/book_build.json``; it also writes
``chapter_times.json`` from that build (each chapter's execution time from myst-nb's log; the
build keeps no per-cell times, so the chapter's time bounds its slowest cell), so one build
measures both.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
import time
from typing import Any, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUN_TIME_LINE = re.compile(r"^\*\*Run time:\*\* CPU \d+ s[^·\n]*·", re.MULTILINE)


def toc_notebooks() -> list[Path]:
    """The notebooks of ``_toc.yml``, in reading order."""
    import yaml

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                yield node["file"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"], *walk(toc.get("parts", toc.get("chapters", [])))]
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def time_notebook(path: Path, timeout: int) -> dict:
    """Execute ``path`` in book/ (as the build does) and time it, cell by cell."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}}, record_timing=True)
    start = time.perf_counter()
    client.execute()
    wall = time.perf_counter() - start
    cell_seconds = []
    for i, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        if cell.cell_type == "code" and "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            t0 = dt.datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
            t1 = dt.datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
            cell_seconds.append((i, (t1 - t0).total_seconds()))
    slowest = max(cell_seconds, key=lambda c: c[1]) if cell_seconds else (None, 0.0)
    return {"chapter": path.stem, "wall_seconds": round(wall, 1),
            "cells_seconds": round(sum(s for _, s in cell_seconds), 1),
            "slowest_cell": slowest[0], "slowest_cell_seconds": round(slowest[1], 1)}


def run_time_line(row: dict, device: str, date: str) -> str:
    """The chapter's ``**Run time:**`` line for ``row`` (its GPU part is kept as it is)."""
    slowest = "" if row.get("slowest_cell_seconds") is None else f"; slowest cell {round(row['slowest_cell_seconds'])} s"
    return (f"**Run time:** CPU {round(row['wall_seconds'])} s (executed by `tools/time_chapters.py` on "
            f"{device}, {date[:10]}{slowest}) ·")


def update_notebooks(record: dict) -> list[str]:
    """Rewrite the CPU part of each timed chapter's ``**Run time:**`` line from ``record``."""
    import nbformat

    changed = []
    rows = {r["chapter"]: r for r in record["rows"]}
    for path in toc_notebooks():
        if path.stem not in rows:
            continue
        nb = nbformat.read(path, as_version=4)
        first = nb.cells[0]
        new = RUN_TIME_LINE.sub(run_time_line(rows[path.stem], record["device"], record["date"]), first.source, count=1)
        if new != first.source:
            first.source = new
            nbformat.write(nb, path)
            changed.append(path.name)
    return changed


TABLE_START, TABLE_END = "<!-- chapter-times:start -->", "<!-- chapter-times:end -->"
TABLE_BLOCK = re.compile(re.escape(TABLE_START) + r".*?" + re.escape(TABLE_END), re.DOTALL)
#: The pages whose chapter-times table is generated.
TABLE_PAGES = ("README.md", "book/course_kit.md")


def chapter_title(path: Path) -> str:
    """The first markdown heading of the notebook at ``path``."""
    import nbformat

    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, re.MULTILINE)
            if m:
                return m.group(1).strip()
    return path.stem


def times_table(record: dict, build: dict | None) -> str:
    """The generated markdown block: one row per timed chapter, the total, the full build."""
    titles = {p.stem: chapter_title(p) for p in toc_notebooks()}
    per_cell = any(r.get("slowest_cell_seconds") is not None for r in record["rows"])
    lines = [TABLE_START,
             f"Measured by `{record['command']}` on {record['device']}, {record['date'][:10]} "
             f"(mode `{record['config'].get('mode')}`; "
             f"{record['config'].get('source', 'each chapter executed alone, kernel start included')}"
             f"{'' if per_cell else '; a build keeps no per-cell times, so a chapter time also bounds its slowest cell'}):",
             "", "| Chapter | CPU run time |" + (" slowest cell |" if per_cell else ""),
             "| :-- | --: |" + (" --: |" if per_cell else "")]
    for row in record["rows"]:
        cell = "" if not per_cell else (" – |" if row.get("slowest_cell_seconds") is None
                                        else f" {round(row['slowest_cell_seconds'])} s |")
        lines.append(f"| {titles.get(row['chapter'], row['chapter'])} | {round(row['wall_seconds'])} s |{cell}")
    total = sum(r["wall_seconds"] for r in record["rows"])
    lines.append(f"| **all chapters** | **{round(total)} s** ({total / 60:.1f} min) |" + (" |" if per_cell else ""))
    if build is not None and build["rows"]:
        b = build["rows"][-1]
        lines += ["", f"A full `jupyter-book build .` of a fresh clone (commit {(build.get('git_commit') or '?')[:10]}, "
                      f"every chapter executed, then Sphinx) took **{b['wall_seconds'] / 60:.1f} min** on "
                      f"{build['device']}, {build['date'][:10]} (`{build['command']}`; exit {b['returncode']}, "
                      f"{b.get('sphinx_warnings', '?')} Sphinx warnings)."]
    lines.append(TABLE_END)
    return "\n".join(lines)


def update_tables(record: dict, build: dict | None, root: Path = ROOT) -> list[str]:
    """Rewrite the generated chapter-times block of each page of :data:`TABLE_PAGES`."""
    changed = []
    block = times_table(record, build)
    for name in TABLE_PAGES:
        path = root / name
        text = path.read_text()
        new = TABLE_BLOCK.sub(lambda _: block, text, count=1)
        if new != text:
            path.write_text(new)
            changed.append(name)
    return changed


EXECUTED = re.compile(r"(\S+\.ipynb): Executed notebook in ([0-9.]+) seconds")


def executed_times(log: str) -> dict[str, float]:
    """Per-notebook execution seconds from a ``jupyter-book build`` log: myst-nb's
    "<path>.ipynb: Executed notebook in S seconds" lines, keyed by the notebook's stem."""
    return {Path(m.group(1)).stem: float(m.group(2)) for m in EXECUTED.finditer(log)}


def full_build(timeout: int, fast: bool = False, keep_html: Path | None = None) -> tuple[dict, list[dict]]:
    """Clone HEAD into a temporary directory and time ``jupyter-book build`` there.

    Returns the build's row (wall seconds, exit code, warnings, log tail) and one row per executed
    chapter (its execution seconds from the build log; no per-cell times).
    """
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "book"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = dict(os.environ, PYTHONPATH=str(clone))
        env.pop("LINATTN_FAST", None)
        if fast:
            env["LINATTN_FAST"] = "1"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(clone)], env=env, cwd=clone,
                              capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - start
        log = proc.stdout + proc.stderr
        if keep_html is not None and (clone / "_build" / "html").is_dir():
            import shutil

            shutil.rmtree(keep_html, ignore_errors=True)
            shutil.copytree(clone / "_build" / "html", keep_html)
        # myst-nb keeps no per-cell times, so a build's rows have no slowest cell: the chapter's
        # time bounds it (a chapter under 60 s has no cell over 60 s).
        rows = [{"chapter": stem, "wall_seconds": round(seconds, 1), "cells_seconds": None, "slowest_cell": None,
                 "slowest_cell_seconds": None} for stem, seconds in executed_times(log).items()]
    build = {"wall_seconds": round(wall, 1), "returncode": proc.returncode, "sphinx_warnings": log.count(": WARNING:"),
             "chapters_executed": len(rows), "tail": log[-2000:]}
    return build, rows


def _in_toc_order(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chapter rows in the table of contents' order (unknown chapters last)."""
    order = [p.stem for p in toc_notebooks()]
    return sorted(rows, key=lambda r: order.index(r["chapter"]) if r["chapter"] in order else len(order))


def _config_cell_timeout() -> int | None:
    """The per-cell timeout the book build uses (``execute.timeout`` in ``_config.yml``)."""
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    return (cfg.get("execute") or {}).get("timeout")


def _update_from_stored() -> None:
    """Rewrite the chapters' Run time lines and the README/course-kit tables from the stored files."""
    from linattn_edu import bench

    record = bench.load_results("chapter_times")
    changed = update_notebooks(record) + update_tables(record, bench.load_results("book_build"))
    print("updated:", ", ".join(changed) or "nothing")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["cpu", "fast"], default="cpu",
                        help="cpu: the sizes a reader's CPU gets (default); fast: LINATTN_FAST=1")
    parser.add_argument("--only", nargs="*", default=None, help="chapter stems to time (default: all)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell, as in _config.yml")
    parser.add_argument("--update-notebooks", action="store_true",
                        help="rewrite the chapters' Run time lines and the README/course-kit tables")
    parser.add_argument("--full-build", action="store_true",
                        help="time `jupyter-book build` of a fresh clone of HEAD (book_build.json) and take each chapter's time "
                             "from that build (chapter_times.json)")
    parser.add_argument("--keep-html", type=Path, default=None,
                        help="with --full-build: copy the built site here (to look at it)")
    parser.add_argument("--only-update", action="store_true",
                        help="run nothing: rewrite the Run time lines and tables from the stored files")
    args = parser.parse_args(argv)
    if args.only_update:
        from linattn_edu import bench

        if bench.load_results("chapter_times") is None:
            parser.error("no chapter_times.json stored yet")
        _update_from_stored()
        return 0
    if args.full_build:
        if args.only:
            parser.error("--only times single chapters; --full-build builds the whole book")
        from linattn_edu import bench

        result, rows = full_build(timeout=3 * 3600, fast=args.mode == "fast", keep_html=args.keep_html)
        config = {"mode": args.mode, "what": "jupyter-book build of a fresh clone of HEAD",
                  "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
        path = bench.save_results("book_build", [result], command=bench.command_line(), config=config,
                                  wall_seconds=result["wall_seconds"])
        print(f"wrote {path}: {result['wall_seconds']:.0f} s, exit {result['returncode']}, "
              f"{result['sphinx_warnings']} Sphinx warnings, {len(rows)} chapters executed")
        if rows:  # the chapters' times as executed in this build
            path = bench.save_results("chapter_times", _in_toc_order(rows), command=bench.command_line(),
                                      config=dict(config, source="each chapter's execution time in the full build, from its log",
                                                  cell_timeout_s=_config_cell_timeout()),
                                      wall_seconds=result["wall_seconds"])
            for r in rows:
                print(f"{r['chapter']:32s} {r['wall_seconds']:7.1f} s")
        if args.update_notebooks:
            _update_from_stored()
        return 0 if result["returncode"] == 0 else 1

    os.environ.pop("LINATTN_FAST", None)
    if args.mode == "fast":
        os.environ["LINATTN_FAST"] = "1"
    from tqdm.auto import tqdm

    from linattn_edu import bench

    old = bench.load_results("chapter_times")
    rows = {r["chapter"]: r for r in (old["rows"] if old and old["config"].get("mode") == args.mode else [])}
    notebooks = [p for p in toc_notebooks() if args.only is None or p.stem in args.only]
    start = time.perf_counter()
    for path in tqdm(notebooks, desc="chapters"):
        rows[path.stem] = time_notebook(path, args.timeout)
        print(f"{path.stem:32s} {rows[path.stem]['wall_seconds']:7.1f} s "
              f"(slowest cell {rows[path.stem]['slowest_cell_seconds']:.1f} s)", flush=True)
    ordered = _in_toc_order(rows.values())
    path = bench.save_results("chapter_times", ordered, command=bench.command_line(),
                              config={"mode": args.mode, "cell_timeout_s": args.timeout,
                                      "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
                              wall_seconds=time.perf_counter() - start)
    print(f"wrote {path}: total {sum(r['wall_seconds'] for r in ordered):.0f} s over {len(ordered)} chapters")
    if args.update_notebooks:
        _update_from_stored()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
