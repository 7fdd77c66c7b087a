"""Execute every chapter as the book build does and store how long each one takes.

    python tools/time_chapters.py                      # cpu mode, every chapter of _toc.yml
    python tools/time_chapters.py --only 05_based      # one chapter (rows of the others are kept)
    python tools/time_chapters.py --update-notebooks   # then rewrite each chapter's "Run time" line

Writes ``linattn_edu/results/chapter_times.json`` (:func:`linattn_edu.bench.save_results`: device,
date, versions, git commit, this command): one row per chapter with its wall time (kernel start
included), the sum of its cells' times and its slowest cell. The chapters' ``**Run time:**`` lines
and the README's table are written from this file, so they never carry a typed number; a test
checks that they agree with it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
import time
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
    return (f"**Run time:** CPU {round(row['wall_seconds'])} s (executed by `tools/time_chapters.py` on "
            f"{device}, {date[:10]}; slowest cell {round(row['slowest_cell_seconds'])} s) ·")


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["cpu", "fast"], default="cpu",
                        help="cpu: the sizes a reader's CPU gets (default); fast: LINATTN_FAST=1")
    parser.add_argument("--only", nargs="*", default=None, help="chapter stems to time (default: all)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell, as in _config.yml")
    parser.add_argument("--update-notebooks", action="store_true", help="rewrite the chapters' Run time lines")
    args = parser.parse_args(argv)

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
    order = [p.stem for p in toc_notebooks()]
    ordered = sorted(rows.values(), key=lambda r: order.index(r["chapter"]) if r["chapter"] in order else 99)
    path = bench.save_results("chapter_times", ordered, command=bench.command_line(),
                              config={"mode": args.mode, "cell_timeout_s": args.timeout,
                                      "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
                              wall_seconds=time.perf_counter() - start)
    print(f"wrote {path}: total {sum(r['wall_seconds'] for r in ordered):.0f} s over {len(ordered)} chapters")
    if args.update_notebooks:
        print("updated:", ", ".join(update_notebooks(bench.load_results("chapter_times"))) or "nothing")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
