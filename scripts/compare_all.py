#!/usr/bin/env python
"""Chapter 8's comparison of every mechanism, run once and stored with its provenance.

Usage (from the repository root)::

    python scripts/compare_all.py                  # the preset of this machine (cpu, or gpu with CUDA)
    python scripts/compare_all.py --preset gpu     # bigger models and contexts, on a CUDA GPU
    python scripts/compare_all.py --preset cpu --out-dir /tmp/results

What it does
    :func:`linattn_edu.experiments.compare.run_comparison` with the sizes of
    :data:`~linattn_edu.experiments.compare.COMPARISON_PRESETS` ``[preset]``: MQAR recall against
    state, perplexity at the training length and at 4x it, prefill and decode time and state bytes
    against the context, for the nine mechanisms of the book.

Output
    The table on stdout, then ``linattn_edu/results/comparison.json`` (or ``--out-dir``), written by
    :func:`linattn_edu.bench.save_results` with the device name, date, versions, this command line,
    the preset and the three full results. Chapter 8 shows it (labelled as precomputed) next to
    its own live run: ``compare.stored_comparison()``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Every mechanism of the book on the same axes; stores the result.")
    parser.add_argument("--preset", choices=("auto", "fast", "cpu", "gpu"), default="auto",
                        help="sizes (COMPARISON_PRESETS); auto: gpu with CUDA, else cpu")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="directory for comparison.json (default: linattn_edu/results/)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from linattn_edu import bench, runtime
    from linattn_edu.experiments import compare

    preset = args.preset
    if preset == "auto":
        preset = "gpu" if runtime.mode() == "gpu" else "cpu"  # a T4 (sm_75) gets the cpu sizes
    if preset == "gpu" and not runtime.cuda_available():
        print("error: --preset gpu needs a CUDA GPU; use --preset cpu", file=sys.stderr)
        return 2
    device = runtime.device()
    print(f"preset {preset} | device: {bench.device_name(device)} | torch {torch.__version__}")
    result = compare.run_comparison(**compare.comparison_config(preset), device=device,
                                    progress=not args.no_progress)
    rows, config = compare.comparison_record(result, preset)
    for row in rows:
        print(row)
    for verdict in compare.recommend(rows):
        print(f"{verdict['job']}: {verdict['mechanism']} ({verdict['evidence']})")
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    path = bench.save_results("comparison", rows, command=command, config=config, device=device,
                              directory=args.out_dir)
    print(f"wrote {path} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
