#!/usr/bin/env python
"""Chapter 8's comparison of every mechanism: store its runs, then print the table they give.

Usage (from the repository root)::

    python scripts/compare_all.py                  # the preset of this machine (cpu, or gpu with CUDA)
    python scripts/compare_all.py --preset gpu     # bigger models and contexts, on a CUDA GPU
    python scripts/compare_all.py --preset cpu --out-dir /tmp/results
    python scripts/compare_all.py --table-only     # just print the table of what is stored

What it does
    Runs the two stored experiments of Chapter 8 at ``--preset`` sizes
    (:data:`~linattn_edu.experiments.compare.COMPARISON_PRESETS`), unit by unit and resumably,
    exactly as ``python scripts/run_experiment.py compare_lm --preset P`` and ``... compare_speed``
    do (:func:`linattn_edu.experiments.stored.run_stored`):

    - ``compare_lm``: one byte-level LM per mechanism, perplexity at the training length and at 4x;
    - ``compare_speed``: prefill and decode time and decode-state bytes against the context.

    The MQAR column is not run here: it is read from the stored MQAR study
    (``mqar_study_P.json``, made by ``python scripts/mqar_study.py --preset P``).

Output
    ``linattn_edu/results/compare_lm_P.json`` and ``compare_speed_P.json`` (or ``--out-dir``), each
    with the device, date, versions, git commit, config, command and wall time; then the
    provenance of every part, the table and the verdicts on stdout
    (:func:`~linattn_edu.experiments.compare.stored_comparison`, the same function Chapter 8 uses).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PARTS = ("compare_lm", "compare_speed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Every mechanism of the book on the same axes; stores the runs.")
    parser.add_argument("--preset", choices=("auto", "fast", "cpu", "gpu"), default="auto",
                        help="sizes (COMPARISON_PRESETS); auto: gpu with CUDA, else cpu")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="directory of the results files (default: linattn_edu/results/)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--table-only", action="store_true", help="run nothing; print the table of what is stored")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from linattn_edu import bench, runtime
    from linattn_edu.experiments import compare, stored

    preset = args.preset
    if preset == "auto":
        preset = "gpu" if runtime.mode() == "gpu" else "cpu"  # a T4 (sm_75) gets the cpu sizes
    if preset == "gpu" and not runtime.cuda_available() and not args.table_only:
        print("error: --preset gpu needs a CUDA GPU; use --preset cpu", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    print(f"preset {preset} | device: {bench.device_name(runtime.device())} | torch {torch.__version__}")
    if not args.table_only:
        for name in PARTS:
            stored.run_stored(name, preset, directory=args.out_dir, progress=not args.no_progress,
                              on_unit=lambda unit, _r, sec, name=name: print(f"{name}: {unit} done in {sec:.0f} s",
                                                                            flush=True))
    result = compare.stored_comparison(preset, directory=args.out_dir)
    if result is None:
        print(f"nothing stored for preset {preset}", file=sys.stderr)
        return 1
    for line in compare.comparison_provenance(result):
        print(line)
    if result["mqar"] is None:
        print(f"(MQAR column: no stored study; make one with `python scripts/mqar_study.py --preset {preset}`)")
    table = compare.comparison_table(result)
    print(compare.comparison_markdown(table))
    for verdict in compare.recommend(table):
        print(f"{verdict['job']}: {verdict['mechanism']} ({verdict['evidence']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
