#!/usr/bin/env python
"""Recall vs state size: run the Based paper's MQAR sweep at book scale and store its result.

Usage (from the repository root)::

    python scripts/mqar_sweep.py                          # the preset of this machine (cpu or gpu)
    python scripts/mqar_sweep.py --preset large-cpu       # the stored result (<= 20 min, 2 cores)
    python scripts/mqar_sweep.py --preset gpu             # the paper's settings, on a CUDA GPU
    python scripts/mqar_sweep.py --preset cpu --out-dir /tmp/results --threads 1
    python scripts/mqar_sweep.py --preset large-cpu --stack zoology   # the stored sizes, Zoology's models

What it does
    :func:`linattn_edu.experiments.mqar_sweep.run_mqar_sweep` with the sizes of
    :data:`~linattn_edu.experiments.mqar_sweep.MQAR_PRESETS` ``[preset]``: for every
    ``(seq_len, n_pairs)`` setting, 2-layer models of five families (attention, sliding window,
    elu and Taylor linear attention, Based) trained on the same MQAR examples, scored on held-out
    ones, and their decode-state bytes at ``seq_len``. The preset picks the stack (``--stack``
    overrides it): ``zoology`` is Zoology's MQAR models (a BaseConv layer, then the mixer's layer,
    no MLP), ``conv_prefixed`` this book's variant (a short convolution in front of the mixer in
    every layer), with which the stored ``large-cpu`` result was made.

Output
    A table on stdout, then ``linattn_edu/results/mqar_sweep.json`` (or ``--out-dir``) written by
    :func:`linattn_edu.bench.save_results` with the device name, date, versions, this exact
    command line and the config. Rows: ``family, label, seq_len, n_pairs, state_bytes, accuracy,
    n_params, train_seconds, final_loss, options``. Draw it with
    ``plot_recall_vs_state(None, stored=bench.load_results("mqar_sweep"))``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

PRESET_CHOICES = ("auto", "fast", "cpu", "large-cpu", "gpu")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="MQAR recall vs decode-state size for five model families; stores the result.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", choices=PRESET_CHOICES, default="auto",
                        help="sizes (MQAR_PRESETS); auto: gpu with CUDA, else cpu")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="directory for mqar_sweep.json (default: linattn_edu/results/)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); 1 is steadier on a shared machine")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    parser.add_argument("--stack", choices=("zoology", "conv_prefixed"), default=None,
                        help="model stack (default: the preset's; see linattn_edu.experiments.mqar_sweep)")
    return parser.parse_args(argv)


def command_line() -> str:
    """The command that regenerates the results, as typed (interpreter name + arguments)."""
    return shlex.join([Path(sys.executable).name, *sys.argv])


def format_table(result: dict[str, Any]) -> str:
    """One line per model: setting, family, variant, state bytes, accuracy, loss, seconds."""
    head = (f"{'L':>4} {'pairs':>5}  {'family':<15} {'variant':<20} {'state (B)':>10} {'accuracy':>8} "
            f"{'loss':>6} {'params':>7} {'train s':>7}")
    lines = [f"MQAR sweep on {result['device']} ({result['seconds']:.0f} s)", head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['seq_len']:>4} {r['n_pairs']:>5}  {r['family']:<15} {r['label']:<20} {r['state_bytes']:>10} "
                     f"{r['accuracy']:>8.3f} {r['final_loss']:>6.3f} {r['n_params']:>7} {r['train_seconds']:>7.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from linattn_edu import bench, runtime
    from linattn_edu.experiments.mqar_sweep import mqar_sweep_config, run_mqar_sweep

    if args.threads is not None:
        if args.threads < 1:
            print(f"error: --threads must be >= 1, got {args.threads}", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    preset = args.preset
    if preset == "auto":
        preset = "gpu" if runtime.mode() == "gpu" else "cpu"  # a T4 (sm_75) gets the cpu sizes
    if preset == "gpu" and not runtime.cuda_available():
        print("error: --preset gpu needs a CUDA GPU; use --preset cpu or large-cpu", file=sys.stderr)
        return 2
    cfg = mqar_sweep_config(preset)
    if args.stack is not None:
        cfg["stack"] = args.stack
    device = runtime.device()
    print(f"preset {preset}: {cfg}")
    print(f"device: {bench.device_name(device)} | torch {torch.__version__} | threads {torch.get_num_threads()}")
    result = run_mqar_sweep(**cfg, device=device, progress=not args.no_progress)
    print()
    print(format_table(result))
    config = {**result["config"], "preset": preset, "seconds": result["seconds"]}
    path = bench.save_results("mqar_sweep", result["rows"], command=command_line(), config=config, device=device,
                              directory=args.out_dir)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
