#!/usr/bin/env python
"""The MQAR study (Chapter 5, Chapter 8): recall against decode-state size, stored and resumable.

Usage (from the repository root)::

    nohup python scripts/mqar_study.py --preset cpu --threads 1 --shard 0/2 > shard0.log 2>&1 &   # two
    nohup python scripts/mqar_study.py --preset cpu --threads 1 --shard 1/2 > shard1.log 2>&1 &   # cores
    python scripts/mqar_study.py --preset gpu                 # a CUDA GPU (the paper's settings)
    python scripts/mqar_study.py --preset fast --out-dir /tmp  # smoke test, seconds
    python scripts/mqar_study.py --preset cpu --families hawk griffin   # only some families

What it does
    :func:`linattn_edu.experiments.mqar_study.run_mqar_study` over the grid of
    :data:`~linattn_edu.experiments.mqar_study.STUDY_PRESETS` ``[preset]``: settings ×
    families × state points × learning rates, every model trained with the same data, steps
    and seeds. Each finished model appends its row to ``linattn_edu/results/mqar_study_<preset>.json``
    at once (device, date, versions, git commit, config, this command, accumulated wall time), so
    an interrupted run continues where it stopped when started again with the same arguments.
    ``--fresh`` starts over. At the end it prints the best accuracy per (setting, family, point)
    and the computed findings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    from linattn_edu.experiments import mqar_study as ms

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=list(ms.STUDY_PRESETS), default="cpu")
    parser.add_argument("--families", nargs="*", choices=list(ms.STUDY_FAMILIES), default=None,
                        help="run only these families (rows of the others in the file are kept)")
    parser.add_argument("--out-dir", type=Path, default=None, help="default: linattn_edu/results/")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--fresh", action="store_true", help="start a new results file")
    parser.add_argument("--shard", default="0/1",
                        help="K/N: train every N-th model starting at the K-th; run N processes (K = 0..N-1) "
                             "on N cores, all appending to the same file (default 0/1: every model)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from linattn_edu import bench, runtime

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cfg = ms.study_config(args.preset)
    store = bench.ResumableResults(f"mqar_study_{args.preset}", command=bench.command_line(), config=cfg,
                                   key_fields=("seq_len", "n_pairs", "family", "point", "lr"),
                                   device=runtime.device(), directory=args.out_dir, fresh=args.fresh)
    run_cfg = dict(cfg, families=args.families or cfg["families"])
    done = len(store.rows)
    total = len(ms.study_jobs(cfg, store.rows))  # the grid + extensions due so far
    print(f"{store.path}: {done} of {total} models already stored", flush=True)

    def report(row: dict) -> None:
        acc = "diverged" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        print(f"L={row['seq_len']:4d} pairs={row['n_pairs']:3d} {row['family']:15s} {row['point']:16s} "
              f"lr={row['lr']:.0e} acc={acc:>8s} state={row['state_bytes']:>9d} B {row['seconds']:7.1f} s", flush=True)

    try:
        shard = tuple(int(v) for v in args.shard.split("/"))
    except ValueError:
        parser.error(f"--shard must be K/N, got {args.shard!r}")
    rows = ms.run_mqar_study(run_cfg, store=store, progress=not args.no_progress, on_row=report, shard=shard)
    print("\n" + ms.study_table_markdown(rows))
    total = len(ms.study_jobs(cfg, store.rows))
    print(f"\n{len(store.rows)} of {total} models stored in {store.path} "
          f"({store.record['wall_seconds'] / 3600:.2f} h of training so far)")
    for setting, found in ms.study_findings(rows).items():
        print(f"\n{setting}: attention >= 0.95: {found['attention_ok']}; frontier: {', '.join(found['frontier_families'])}")
        for family, f in found["families"].items():
            print(f"  {family:15s} best {f['best_accuracy']:.3f} at {f['best_point']} (lr {f['best_lr']:.0e})"
                  f"{'  [chance plateau]' if f['plateau'] else ''}{'  grows with state' if f['grows_with_state'] else ''}"
                  f"{'  best lr at the grid edge: ' + ', '.join(f['lr_at_edge']) if f['lr_at_edge'] else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
