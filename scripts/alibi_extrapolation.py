#!/usr/bin/env python
"""Train short, test long: run the ALiBi extrapolation experiment and store its result.

Usage (from the repository root)::

    python scripts/alibi_extrapolation.py                        # the preset of this machine (cpu or gpu)
    python scripts/alibi_extrapolation.py --preset large-cpu     # the stored result (~10-15 min, 2 cores)
    python scripts/alibi_extrapolation.py --preset gpu           # on a CUDA GPU
    python scripts/alibi_extrapolation.py --preset cpu --out-dir /tmp/results --threads 1

What it does
    :func:`linattn_edu.experiments.run_extrapolation` with the sizes of
    :data:`linattn_edu.experiments.PRESETS` ``[preset]``: one small byte-level Transformer per
    position scheme (sinusoidal, learned, rope, alibi, none), trained at ``train_len`` on the
    offline ``stdlib`` corpus, evaluated at every length of ``eval_lens`` on the same valid text;
    plus the training cost of each scheme and ALiBi at ``L/2`` against sinusoidal at ``L``.

Output
    A perplexity table on stdout and ``linattn_edu/results/alibi_extrapolation.json`` (or
    ``--out-dir``) written by :func:`linattn_edu.bench.save_results` with the device name, date,
    versions, this exact command line and the config (including the corpus description). Rows
    carry a ``kind``: ``"perplexity"`` (``pos, train_len, eval_len, perplexity``), ``"train"`` (one
    per scheme: parameters, final loss, step time, tokens/s, peak memory, training seconds) and
    ``"cost"`` (the ALiBi-at-L/2 vs sinusoidal-at-L comparison and its ratios).
    :func:`linattn_edu.experiments.plot_extrapolation` draws such a record with ``stored=``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

PRESET_CHOICES = ("auto", "fast", "cpu", "gpu", "large-cpu")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="ALiBi length extrapolation: train at L, evaluate at longer lengths, store the result.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--preset", choices=PRESET_CHOICES, default="auto",
        help="sizes (linattn_edu.experiments.PRESETS); auto: gpu with CUDA, else cpu",
    )
    parser.add_argument(
        "--out-dir", type=Path, default=None,
        help="directory for alibi_extrapolation.json (default: linattn_edu/results/)",
    )
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads during the run (default 1, see run_extrapolation's threads=)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    return parser.parse_args(argv)


def command_line() -> str:
    """The command that regenerates the results, as typed (interpreter name + arguments)."""
    return shlex.join([Path(sys.executable).name, *sys.argv])


def format_table(result: dict[str, Any]) -> str:
    """Perplexity per scheme (rows) and eval length (columns), then the training cost per scheme."""
    lens = result["config"]["eval_lens"]
    table: dict[str, dict[int, float]] = {}
    for r in result["rows"]:
        table.setdefault(r["pos"], {})[r["eval_len"]] = r["perplexity"]
    head = f"{'scheme':<11}" + "".join(f"{'L=' + str(n):>9}" for n in lens)
    head += f" | {'loss':>6} {'ms/step':>8} {'tok/s':>8} {'peak MB':>8} {'params':>8}"
    lines = [f"perplexity (trained at L={result['config']['train_len']}) on {result['device']}", head,
             "-" * len(head)]
    for pos, ppl in table.items():
        t = result["train"][pos]
        mem = "n/a" if t["peak_memory_bytes"] is None else f"{t['peak_memory_bytes'] / 2**20:.0f}"
        lines.append(
            f"{pos:<11}" + "".join(f"{ppl[n]:>9.2f}" for n in lens)
            + f" | {t['final_loss']:>6.3f} {1e3 * t['step_time_s']:>8.1f} {t['tokens_per_s']:>8.0f} {mem:>8}"
            + f" {t['n_params']:>8}"
        )
    cost = result.get("cost")
    if cost:
        a, s = cost["alibi_short"], cost["sinusoidal_full"]
        mem = "n/a" if cost["memory_ratio"] is None else f"{cost['memory_ratio']:.2f}"
        lines.append(
            f"train short: alibi at L={a['seq_len']} x {a['batch_size']} vs sinusoidal at L={s['seq_len']} "
            f"x {s['batch_size']} (same tokens/step): step time ratio {cost['step_time_ratio']:.2f}, "
            f"memory ratio {mem}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from linattn_edu import bench, runtime
    from linattn_edu.experiments import extrapolation_config, result_to_rows, run_extrapolation

    if args.threads < 1:
        print(f"error: --threads must be >= 1, got {args.threads}", file=sys.stderr)
        return 2
    preset = args.preset
    if preset == "auto":
        preset = "gpu" if runtime.mode() == "gpu" else "cpu"  # a T4 (sm_75) gets the cpu sizes
    if preset == "gpu" and not runtime.cuda_available():
        print("error: --preset gpu needs a CUDA GPU; use --preset cpu or large-cpu", file=sys.stderr)
        return 2
    cfg = extrapolation_config(preset)
    device = runtime.device()
    print(f"preset {preset}: {cfg}")
    print(f"device: {bench.device_name(device)} | torch {torch.__version__} | CPU threads {args.threads}")
    result = run_extrapolation(**cfg, device=device, progress=not args.no_progress, threads=args.threads)
    print()
    print(format_table(result))
    config = {**result["config"], "preset": preset, "corpus": result["corpus"], "seconds": result["seconds"]}
    path = bench.save_results("alibi_extrapolation", result_to_rows(result), command=command_line(),
                              config=config, device=device, directory=args.out_dir)
    print(f"wrote {path} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
