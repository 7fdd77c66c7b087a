#!/usr/bin/env python
"""Every Triton kernel of linattn_edu beside its PyTorch peer: one command, CPU or GPU.

Usage (from the repository root)::

    python scripts/bench_kernels.py                  # CPU: interpreter check; GPU: check + timings
    python scripts/bench_kernels.py --quick          # GPU: two sizes, one dtype each (sized for ~2 minutes)
    python scripts/bench_kernels.py --out kernels_h100 --out-dir /tmp/res
    python scripts/bench_kernels.py --only flash_attention --only linear_scan
    python scripts/bench_kernels.py --cpu            # force the CPU path even on a GPU machine

What it does
    The table is :data:`linattn_edu.kernel_catalog.KERNELS`: one entry per Triton entry point
    and direction (``vector_add``, ``row_softmax``, ``flash_attention`` causal / ALiBi / window,
    ``chunked_linear_attention``, ``linear_scan``, ``causal_conv1d``; forward and forward +
    backward), each with its PyTorch peers (SDPA, a Python loop, a ``torch.cumsum`` closed form,
    ``F.conv1d``, ``torch.softmax``, ``x + y``) and, for memory-bound kernels, a plain copy of the
    same bytes (the bandwidth ceiling).

    **On a CPU** (no CUDA GPU, or ``--cpu``): the Triton interpreter runs the kernels with NumPy,
    so only correctness is checked, at small shapes: every kernel against the float64 reference
    and against each peer (:func:`~linattn_edu.kernel_catalog.check_kernels`). Nothing is timed
    and nothing is written. ``--quick`` (or ``LINATTN_FAST=1``) uses tiny shapes and float32 only.

    **On a CUDA GPU** with compute capability >= 8.0: the same check at real sizes (compiled
    kernels; float32/float16/bfloat16, or only the timed dtype with ``--quick``); a failure stops
    the script before anything is timed or written, unless ``--allow-failures``. Then
    :func:`~linattn_edu.kernel_catalog.bench_kernels` times kernel and peers with
    :func:`triton.testing.do_bench` (Python loops with ``bench.time_fn``) and the results go to
    ``linattn_edu/results/<out>.json`` (default ``kernels.json``) through
    :func:`linattn_edu.bench.save_results`: GPU name, date, torch and triton versions, this
    command line, and a config with the sizes, timers, Python/CUDA versions, the git commit (when
    available) and the GPU correctness rows.

Exit status: 0 on success, 1 when a correctness check fails, 2 when a GPU is present but the
kernels do not compile on it (e.g. a T4: use ``--cpu``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

CPU_LABEL = "CPU: Triton interpreter, correctness only, no timings"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Check (CPU and GPU) and time (GPU) every Triton kernel of linattn_edu against its PyTorch peers.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring and linattn_edu/kernel_catalog.py for what is compared and counted.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="GPU: two sizes and one dtype per kernel (sized for ~2 minutes); CPU: tiny shapes, float32 only")
    parser.add_argument("--out", default="kernels", metavar="NAME",
                        help="results file name, without .json (default: kernels)")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="directory of the results file (default: linattn_edu/results/)")
    parser.add_argument("--only", action="append", default=None, metavar="KERNEL",
                        help="a launcher (e.g. flash_attention) or an entry name; repeat for more (default: all)")
    parser.add_argument("--cpu", action="store_true",
                        help="ignore any GPU: interpreter correctness check on the CPU only")
    parser.add_argument("--allow-failures", action="store_true",
                        help="GPU: time and save even if a correctness check fails (the failures are recorded)")
    parser.add_argument("--max-loop-len", type=int, default=2048,
                        help="time Python-loop peers only up to this sequence length (default: 2048)")
    return parser.parse_args(argv)


def run_cpu(args: argparse.Namespace) -> int:
    """The interpreter correctness check; prints a table, writes nothing."""
    import torch

    from linattn_edu import runtime
    from linattn_edu import kernel_catalog as catalog

    try:
        catalog.entries(args.only)
    except ValueError as exc:
        print(f"error: --only: {exc}", file=sys.stderr)
        return 2
    size = "tiny" if (args.quick or runtime.fast_mode()) else "small"
    dtypes = (torch.float32,) if size == "tiny" else (torch.float32, torch.float16)
    print(CPU_LABEL)
    print(f"{runtime.describe()} | shapes: {size} | dtypes: {', '.join(str(d).replace('torch.', '') for d in dtypes)}")
    start = time.perf_counter()
    try:
        rows = catalog.check_kernels(args.only, size=size, dtypes=dtypes, device="cpu", echo=True)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(catalog.format_table(rows, catalog.CHECK_COLUMNS))
    bad = catalog.failed(rows)
    print(f"\n{len(rows) - len(bad)}/{len(rows)} checks passed in {time.perf_counter() - start:.0f} s "
          f"({CPU_LABEL}). GPU timings: run this command on a CUDA GPU (compute capability >= 8.0).")
    return 1 if bad else 0


def kernel_configs(device: Any, selected: list[Any], size: str) -> dict[str, Any]:
    """The fixed launch configurations of the timed shapes, per entry (no autotuning in the package)."""
    import torch

    from linattn_edu import kernels as K

    out: dict[str, Any] = {}
    for e in selected:
        per_shape = {}
        for s in e.bench_shapes[size]:
            key = " ".join(f"{k}={v}" for k, v in s.items())
            if e.family == "attention":
                per_shape[key] = K.flash_attention_config(device, s["D"], torch.float16)
            elif e.family == "linear":
                per_shape[key] = K.linear_attention_config(device, 1 + s["d"] + s["d"] ** 2, s["Dv"])
            elif e.family == "scan":
                per_shape[key] = K.linear_scan_config(device, s["B"], s["C"])
            elif e.family == "conv":
                per_shape[key] = K.causal_conv1d_config(device, s["B"], s["T"], s["C"], s["K"])
            else:
                per_shape[key] = "block_size=1024" if e.family == "add" else "one program per row, BLOCK_N = next_power_of_2(N)"
        out[e.name] = per_shape
    return out


def run_gpu(args: argparse.Namespace) -> int:
    """Check at real sizes, then time, then save with provenance."""
    import torch
    import triton

    from linattn_edu import bench, runtime
    from linattn_edu import kernel_catalog as catalog

    if not runtime.triton_compiles():
        print(f"error: the Triton kernels do not compile on {torch.cuda.get_device_name()} (compute capability "
              f"{'.'.join(map(str, torch.cuda.get_device_capability()))} < 8.0, or Triton missing): nothing to time. "
              "Run with --cpu for the interpreter correctness check.", file=sys.stderr)
        return 2
    start = time.perf_counter()
    device = torch.device("cuda")
    size = "quick" if args.quick else "full"
    try:
        selected = catalog.entries(args.only)
    except ValueError as exc:
        print(f"error: --only: {exc}", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name()
    print(f"GPU: {name} | torch {torch.__version__} | triton {triton.__version__} | CUDA {torch.version.cuda} | "
          f"sizes: {size}")

    print("\n== correctness at real sizes (compiled kernels) ==")
    check_rows = []
    for e in selected:
        dtypes = e.bench_dtypes["quick"] if args.quick else (torch.float32, torch.float16, torch.bfloat16)
        check_rows += catalog.check_kernels(e.name, size="gpu", dtypes=dtypes, device=device, echo=True)
        torch.cuda.empty_cache()
    bad = catalog.failed(check_rows)
    print(f"{len(check_rows) - len(bad)}/{len(check_rows)} checks passed ({time.perf_counter() - start:.0f} s so far)")
    if bad and not args.allow_failures:
        print(catalog.format_table(bad, catalog.CHECK_COLUMNS), file=sys.stderr)
        print("error: correctness failures: nothing timed, nothing written (--allow-failures to go on)",
              file=sys.stderr)
        return 1

    print("\n== timings (peer ms / kernel ms > 1: the Triton kernel is faster) ==")
    rows = catalog.bench_kernels(args.only, size=size, max_loop_len=args.max_loop_len, echo=True)
    print()
    print(catalog.format_table(rows, catalog.BENCH_COLUMNS))
    warmup, rep = (5, 25) if args.quick else (25, 100)
    config = {
        "size": size,
        "quick": bool(args.quick),
        "only": args.only,
        "entries": {
            e.name: {
                "shapes": e.bench_shapes[size],
                "dtypes": [str(d).replace("torch.", "") for d in e.bench_dtypes["quick" if args.quick else "full"]],
                "metric": e.metric,
                "work": e.notes,
                "peers": {p.name: p.call for p in e.peers},
            }
            for e in selected
        },
        "timer": f"triton.testing.do_bench(warmup={warmup}, rep={rep}, return_mode='median'), ms",
        "loop_timer": "linattn_edu.bench.time_fn(warmup=1, repeat=3, device=cuda), median, ms",
        "max_loop_len": args.max_loop_len,
        "ratio": "peer_ms / ms: > 1 means the Triton kernel is faster; for 'copy', the fraction of the bandwidth ceiling",
        "kernel_config": kernel_configs(device, selected, size),
        "capability": list(torch.cuda.get_device_capability()),
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "git_commit": bench.git_commit(),
        "correctness": check_rows,
        "correctness_failures": len(bad),
        "elapsed_s": None,
    }
    config["elapsed_s"] = round(time.perf_counter() - start, 1)
    path = bench.save_results(args.out, rows, command=bench.command_line(), config=config, device=device,
                              directory=args.out_dir)
    print(f"\nwrote {path} ({config['elapsed_s']:.0f} s in all)")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cpu:
        os.environ["LINATTN_FORCE_CPU"] = "1"  # hides the GPU from linattn_edu.runtime
    if args.max_loop_len < 0:
        print(f"error: --max-loop-len must be >= 0, got {args.max_loop_len}", file=sys.stderr)
        return 2
    if not args.out.replace("_", "").replace("-", "").isalnum():
        print(f"error: --out must be letters, digits, '_' or '-', got {args.out!r}", file=sys.stderr)
        return 2

    from linattn_edu import runtime

    if not runtime.cuda_available():
        # TRITON_INTERPRET=1 must be set before the kernels are decorated, i.e. before the import.
        runtime.enable_interpreter_on_cpu()
        return run_cpu(args)
    return run_gpu(args)


if __name__ == "__main__":
    sys.exit(main())
