#!/usr/bin/env python
"""Generation throughput: softmax Transformer (growing KV cache) vs Based (fixed state).

Usage (from the repository root)::

    python scripts/bench_generation.py                 # on a CUDA GPU: GPU sizes, writes generation.json
    python scripts/bench_generation.py --cpu           # CPU sizes, prints only
    python scripts/bench_generation.py --cpu --save --out-dir /tmp/results

What it does
    :func:`linattn_edu.experiments.throughput.generation_benchmark`: untrained models of equal
    width and depth, a random prompt, then greedy decoding through ``prefill`` + ``step``; the
    decode time, tokens/s and the cache bytes after each generated length. Sizes:
    :data:`~linattn_edu.experiments.throughput.GENERATION_PRESETS` (``"gpu"`` on CUDA, ``"cpu"``
    with ``--cpu``, ``"fast"`` with ``--cpu`` when ``LINATTN_FAST=1``).

Output
    A table on stdout. On CUDA (or with ``--cpu --save``) also
    ``linattn_edu/results/generation.json`` (or ``--out-dir``) written by
    :func:`linattn_edu.bench.save_results` with the device, date, versions, this command line and
    the config (which records the paper's claim it is compared with: 24× FlashAttention-2's
    throughput for 1.3B models generating 1024 tokens).

Without a GPU and without ``--cpu`` it exits with status 2 and a message: a CPU timing of small
models says little about the GPU claim, so it is only run when asked for.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Greedy-decoding throughput of a Transformer vs Based, against generated length.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cpu", action="store_true",
                        help="run the CPU sizes on the CPU (prints only, unless --save)")
    parser.add_argument("--save", action="store_true", help="with --cpu: also write the results file")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="directory for generation.json (default: linattn_edu/results/)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return parser.parse_args(argv)


def command_line() -> str:
    """The command that regenerates the results, as typed (interpreter name + arguments)."""
    return shlex.join([Path(sys.executable).name, *sys.argv])


def format_table(res: dict[str, Any]) -> str:
    """Tokens/s, ms per token and state MiB per kind and generated length, then the speed-up."""
    cfg = res["config"]
    lines = [f"greedy generation on {res['device']}: d_model={cfg['d_model']}, {cfg['n_layers']} layers, "
             f"{cfg['n_heads']} heads, batch {cfg['batch_size']}, prompt {cfg['prompt_len']} tokens",
             f"{'kind':<12} {'gen_len':>7} {'tokens/s':>10} {'ms/token':>9} {'state MiB':>10}"]
    by = {}
    for r in res["rows"]:
        by[(r["kind"], r["gen_len"])] = r
        lines.append(f"{r['kind']:<12} {r['gen_len']:>7} {r['tokens_per_s']:>10.0f} {r['ms_per_token']:>9.2f} "
                     f"{r['state_bytes'] / 2**20:>10.2f}")
    kinds = cfg["kinds"]
    if "transformer" in kinds and "based" in kinds:
        ratios = ", ".join(f"{g}: {by[('based', g)]['tokens_per_s'] / by[('transformer', g)]['tokens_per_s']:.1f}x"
                           for g in cfg["gen_lens"])
        lines.append(f"Based / Transformer tokens/s by generated length: {ratios}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from linattn_edu import bench, runtime
    from linattn_edu.experiments.throughput import generation_benchmark, generation_config

    if args.threads is not None:
        if args.threads < 1:
            print(f"error: --threads must be >= 1, got {args.threads}", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    if args.save and not args.cpu:
        print("note: --save only matters with --cpu (a GPU run always saves)", file=sys.stderr)
    if args.cpu:  # LINATTN_FAST=1 (the tests) shrinks the CPU sizes to the "fast" preset
        preset, device = ("fast" if runtime.fast_mode() else "cpu"), torch.device("cpu")
    elif runtime.cuda_available():
        preset, device = "gpu", torch.device("cuda")
    else:
        print("error: no CUDA GPU: this benchmark is meant for a GPU (the paper's claim is about GPU decoding). "
              "Use --cpu to run the CPU sizes here (add --save to write the results file).", file=sys.stderr)
        return 2
    cfg = generation_config(preset)
    print(f"preset {preset}: {cfg}")
    print(f"device: {bench.device_name(device)} | torch {torch.__version__} | threads {torch.get_num_threads()}")
    res = generation_benchmark(**cfg, device=device, progress=not args.no_progress)
    print()
    print(format_table(res))
    if not args.cpu or args.save:
        config = {**res["config"], "preset": preset}
        path = bench.save_results("generation", res["rows"], command=command_line(), config=config, device=device,
                                  directory=args.out_dir)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
