#!/usr/bin/env python
"""Run a chapter's reference experiment and store it, model by model (resumable).

Usage (from the repository root)::

    python scripts/run_experiment.py --list                             # the experiments and their chapters
    nohup python scripts/run_experiment.py alibi_extrapolation --preset cpu > run.log 2>&1 &
    python scripts/run_experiment.py griffin_length --preset gpu        # on a CUDA GPU
    python scripts/run_experiment.py compare_lm --preset fast --out-dir /tmp   # smoke test, seconds

What it does
    :func:`linattn_edu.experiments.stored.run_stored`: the experiment at ``--preset`` sizes, one
    unit (one trained model) at a time. Each finished unit is appended to
    ``linattn_edu/results/NAME_PRESET.json`` at once, with the device, date, versions, git commit,
    config, this command and the accumulated wall time, so an interrupted run continues where it
    stopped when started again with the same arguments (``--fresh`` starts over). The chapters
    load the file with :func:`~linattn_edu.experiments.stored.reference_run`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    from linattn_edu.experiments import stored

    from linattn_edu import experiments as _all  # noqa: F401  (registers every experiment)

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", choices=sorted(stored.EXPERIMENTS), help="the experiment")
    parser.add_argument("--preset", default="cpu", help="sizes: cpu (2-core CPU, hours), gpu, or fast (smoke test)")
    parser.add_argument("--out-dir", type=Path, default=None, help="default: linattn_edu/results/")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: robust on a busy machine, see run_extrapolation)")
    parser.add_argument("--fresh", action="store_true", help="start a new results file")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    args = parser.parse_args(argv)

    if args.list or args.name is None:
        from linattn_edu import bench

        for name, spec in sorted(stored.EXPERIMENTS.items()):
            record = bench.load_results(f"{name}_cpu")
            made = ("no cpu run stored" if record is None else
                    f"cpu run stored: {(record.get('wall_seconds') or 0) / 60:.0f} min on {record['device']}")
            print(f"{name:22s} {spec.chapter:26s} {made:45s} {spec.description}")
        return 0

    import torch

    torch.set_num_threads(args.threads)

    def report(unit, result, seconds):
        print(f"{args.name}: unit {unit!r} done in {seconds:.0f} s", flush=True)

    result = stored.run_stored(args.name, args.preset, directory=args.out_dir, fresh=args.fresh,
                               on_unit=report, progress=not args.no_progress)
    print(stored.describe(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
