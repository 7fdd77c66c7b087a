#!/usr/bin/env python
"""Benchmark the book's Triton linear scan and causal depthwise convolution on a CUDA GPU.

Usage (from the repository root, on a machine with a CUDA GPU of compute capability >= 8.0)::

    python scripts/bench_scan.py                     # the full sweep below
    python scripts/bench_scan.py --quick             # two shapes, float32 only
    python scripts/bench_scan.py --out-dir /tmp/res  # write somewhere else
    python scripts/bench_scan.py --interpret-smoke   # CPU: tiny correctness pass, writes nothing

What is measured
    ``linear_scan(a, b)`` forward (``h_t = a_t·h_{t-1} + b_t`` over ``(B, T, C)``) and
    ``causal_conv1d(x, w)`` forward (``K = 4``, Griffin's temporal width), each timed with
    :func:`triton.testing.do_bench` (median after warm-up). Both kernels do a few flops per
    byte, so they are judged by *effective bandwidth*: the bytes they must move divided by time.

    * scan bytes: read ``a`` and ``b``, write ``h`` (``3·B·T·C`` elements) plus ``h_last`` (float32)
    * conv bytes: read ``x``, write ``y`` (``2·B·T·C`` elements); the ``K`` taps and the tiny
      weight are re-read from cache and not counted

    Each bandwidth is reported three ways: in GB/s, as a fraction of the GPU's nominal peak
    (spec-sheet HBM bandwidth from the table ``PEAK_BANDWIDTH`` below, looked up by device name;
    none for other GPUs), and as a fraction of what a plain device-to-device copy of the same
    number of bytes achieves *in the same run* (``dst.copy_(src)``: the practical ceiling).

    Baselines at the same size:
    * scan: ``linear_scan_torch`` (a Python loop: 2 small kernels per time step) and
      ``torch.cumsum(b, dim=1)`` (a fused library scan that moves 2/3 of the bytes: it has no ``a``)
    * conv: ``causal_conv1d_torch`` (transpose, pad, ``F.conv1d(groups=C)``, transpose back, as a
      layer would call it) and ``F.conv1d`` alone on an already padded ``(B, C, T+K-1)`` input.

    The Python-loop baseline is slow (``T`` launches); it is timed with fewer repetitions and
    skipped above ``--max-loop-T`` steps.

    Before any timing, each kernel's output is compared with its PyTorch version; a disagreement
    stops the script before anything is written.

Output
    A table on stdout and ``linattn_edu/results/scan.json`` (or ``--out-dir``), written by
    :func:`linattn_edu.bench.save_results` with the GPU name, date, versions, the config and this
    command line.

Without CUDA the script exits with status 2 and a message, unless ``--interpret-smoke`` is given.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

# (B, T, C): B·C is the scan's parallelism (channels are independent, time is sequential).
FULL_SHAPES = (
    (8, 2048, 2048),
    (16, 4096, 2048),
    (4, 8192, 4096),
    (1, 16384, 2560),  # one sequence: little parallelism, the hard case for a scan
)
QUICK_SHAPES = ((8, 2048, 2048), (1, 16384, 2560))
CONV_WIDTH = 4

#: Nominal (spec-sheet) HBM bandwidth in bytes/s, matched against ``torch.cuda.get_device_name()``
#: in order: the first entry whose every word appears in the name wins.
PEAK_BANDWIDTH: tuple[tuple[tuple[str, ...], float], ...] = (
    (("H200",), 4.8e12),
    (("H100", "NVL"), 3.9e12),
    (("H100", "PCIE"), 2.0e12),
    (("H100",), 3.35e12),  # SXM5
    (("A100", "PCIE", "80GB"), 1.935e12),
    (("A100", "80GB"), 2.039e12),  # SXM4 80GB
    (("A100",), 1.555e12),  # 40GB (SXM4 and PCIe)
)


def peak_bandwidth(device_name: str) -> float | None:
    """Nominal peak memory bandwidth (bytes/s) of a GPU by name, or None if it is not in the table."""
    upper = device_name.upper()
    for words, peak in PEAK_BANDWIDTH:
        if all(w in upper for w in words):
            return peak
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark linattn_edu's Triton linear scan and causal conv1d (CUDA): effective bandwidth.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Bandwidth = bytes that must move / time. See the module docstring for what is counted.",
    )
    parser.add_argument("--quick", action="store_true", help="two shapes, float32 only, fewer repetitions")
    parser.add_argument(
        "--out-dir", type=Path, default=None, help="directory for scan.json (default: linattn_edu/results/)"
    )
    parser.add_argument(
        "--max-loop-T", type=int, default=4096,
        help="time the Python-loop scan baseline only up to this T (it launches 2 kernels per step)",
    )
    parser.add_argument(
        "--interpret-smoke", action="store_true",
        help="no GPU needed: tiny correctness-only pass through the Triton interpreter; writes nothing",
    )
    return parser.parse_args(argv)


def command_line() -> str:
    """The command that regenerates the results, as typed (interpreter name + arguments)."""
    return shlex.join([Path(sys.executable).name, *sys.argv])


def _gbps(nbytes: float, ms: float | None) -> float | None:
    return None if ms is None else nbytes / (ms * 1e-3) / 1e9


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def format_table(rows: list[dict[str, Any]], title: str) -> str:
    header = (
        f"{'op':<5} {'dtype':<9} {'B':>3} {'T':>6} {'C':>5} {'ours ms':>8} {'GB/s':>7} {'%peak':>6} "
        f"{'%copy':>6} {'base':<10} {'base ms':>9} {'base GB/s':>9} {'speedup':>8}"
    )
    lines = [title, header, "-" * len(header)] if title else [header, "-" * len(header)]
    for r in rows:
        for base in r["baselines"]:
            lines.append(
                f"{r['op']:<5} {r['dtype']:<9} {r['B']:>3} {r['T']:>6} {r['C']:>5} {r['ms_ours']:>8.3f} "
                f"{r['gbps_ours']:>7.0f} {_fmt(r['frac_peak'] and 100 * r['frac_peak'], '6.1f'):>6} "
                f"{100 * r['frac_copy']:>6.1f} {base['name']:<10} {_fmt(base['ms'], '9.3f'):>9} "
                f"{_fmt(base['gbps'], '9.0f'):>9} {_fmt(base['ms'] and base['ms'] / r['ms_ours'], '8.2f'):>8}"
            )
    return "\n".join(lines)


def _rel_err(a, b) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _element_size(dtype) -> int:
    import torch

    return torch.empty(0, dtype=dtype).element_size()


def bench_scan(
    b: int, t: int, c: int, dtype, device, *, timer, loop_timer, peak: float | None, max_loop_t: int
) -> dict[str, Any]:
    """Check, then time ``linear_scan`` against the copy, the Python loop and ``torch.cumsum``."""
    import torch

    from linattn_edu.kernels import linear_scan, linear_scan_torch
    from linattn_edu.kernel_catalog import copy_ms as copy_time

    gen = torch.Generator(device=device).manual_seed(b * 7 + t * 3 + c)
    a = (0.5 + 0.5 * torch.rand(b, t, c, generator=gen, device=device)).to(dtype)
    x = torch.randn(b, t, c, generator=gen, device=device).to(dtype)

    # Agreement first (at most 256 steps of the slow loop: enough to test the carry over many tiles).
    tc = min(t, 256)
    h, h_last = linear_scan(a[:, :tc], x[:, :tc])
    h_ref, last_ref = linear_scan_torch(a[:, :tc], x[:, :tc])
    err = max(_rel_err(h, h_ref), _rel_err(h_last, last_ref))
    limit = 1e-5 if dtype == torch.float32 else 1e-2
    if not err <= limit:
        raise AssertionError(f"linear_scan disagrees with linear_scan_torch at {(b, tc, c)}: rel err {err:.3g}")

    elt = _element_size(dtype)
    nbytes = 3 * b * t * c * elt + 4 * b * c
    ms_ours = timer(lambda: linear_scan(a, x))
    ms_copy = copy_time(nbytes, device, timer)
    ms_loop = loop_timer(lambda: linear_scan_torch(a, x)) if t <= max_loop_t else None
    ms_cumsum = timer(lambda: torch.cumsum(x, dim=1))
    gbps = _gbps(nbytes, ms_ours)
    return {
        "op": "scan",
        "dtype": str(dtype).replace("torch.", ""),
        "B": b, "T": t, "C": c,
        "bytes": nbytes,
        "ms_ours": ms_ours,
        "gbps_ours": gbps,
        "frac_peak": None if peak is None else gbps * 1e9 / peak,
        "ms_copy": ms_copy,
        "frac_copy": ms_copy / ms_ours,
        "rel_err": err,
        "baselines": [
            {"name": "torch loop", "ms": ms_loop, "gbps": _gbps(nbytes, ms_loop)},
            {"name": "cumsum", "ms": ms_cumsum, "gbps": _gbps(2 * b * t * c * elt, ms_cumsum)},
        ],
    }


def bench_conv(b: int, t: int, c: int, dtype, device, *, timer, peak: float | None) -> dict[str, Any]:
    """Check, then time ``causal_conv1d`` against the copy, ``causal_conv1d_torch`` and bare ``F.conv1d``."""
    import torch
    import torch.nn.functional as F

    from linattn_edu.kernels import causal_conv1d, causal_conv1d_torch
    from linattn_edu.kernel_catalog import copy_ms as copy_time

    k = CONV_WIDTH
    gen = torch.Generator(device=device).manual_seed(b * 5 + t + c)
    x = torch.randn(b, t, c, generator=gen, device=device).to(dtype)
    w = (0.5 * torch.randn(c, k, generator=gen, device=device)).to(dtype)
    bias = torch.randn(c, generator=gen, device=device).to(dtype)

    err = _rel_err(causal_conv1d(x, w, bias), causal_conv1d_torch(x, w, bias))
    limit = 1e-5 if dtype == torch.float32 else 1e-2
    if not err <= limit:
        raise AssertionError(f"causal_conv1d disagrees with causal_conv1d_torch at {(b, t, c)}: rel err {err:.3g}")

    elt = _element_size(dtype)
    nbytes = 2 * b * t * c * elt
    x_padded = F.pad(x.transpose(1, 2), (k - 1, 0)).contiguous()  # (B, C, T+K-1): conv1d's own layout
    w3 = w[:, None, :].contiguous()
    ms_ours = timer(lambda: causal_conv1d(x, w, bias))
    ms_copy = copy_time(nbytes, device, timer)
    ms_layer = timer(lambda: causal_conv1d_torch(x, w, bias))
    ms_conv = timer(lambda: F.conv1d(x_padded, w3, bias, groups=c))
    gbps = _gbps(nbytes, ms_ours)
    return {
        "op": "conv",
        "dtype": str(dtype).replace("torch.", ""),
        "B": b, "T": t, "C": c, "K": k,
        "bytes": nbytes,
        "ms_ours": ms_ours,
        "gbps_ours": gbps,
        "frac_peak": None if peak is None else gbps * 1e9 / peak,
        "ms_copy": ms_copy,
        "frac_copy": ms_copy / ms_ours,
        "rel_err": err,
        "baselines": [
            {"name": "torch layer", "ms": ms_layer, "gbps": _gbps(nbytes, ms_layer)},
            {"name": "F.conv1d", "ms": ms_conv, "gbps": _gbps(nbytes, ms_conv)},
        ],
    }


def run_sweep(shapes, dtypes, device, *, timer, loop_timer, peak, max_loop_t, echo=True) -> list[dict[str, Any]]:
    rows = []
    for dtype in dtypes:
        for b, t, c in shapes:
            for row in (
                bench_scan(b, t, c, dtype, device, timer=timer, loop_timer=loop_timer, peak=peak, max_loop_t=max_loop_t),
                bench_conv(b, t, c, dtype, device, timer=timer, peak=peak),
            ):
                rows.append(row)
                if echo:
                    print(format_table([row], ""), flush=True)
    return rows


def interpret_smoke() -> int:
    """Tiny shapes through the Triton interpreter: the script's correctness checks, without timing meaning."""
    import torch

    from linattn_edu import bench
    from linattn_edu.kernels import kernel_backend

    backend = kernel_backend(torch.zeros(1))
    if backend != "interpreter":
        print(f"error: the Triton interpreter is not active here (backend {backend!r})", file=sys.stderr)
        return 1
    print("interpret-smoke: tiny shapes, Triton interpreter on the CPU; timings are NOT representative")

    def cpu_timer(fn: Callable[[], Any]) -> float:
        return 1e3 * bench.time_fn(fn, warmup=0, repeat=1)

    rows = run_sweep(
        ((2, 37, 40), (1, 20, 8)), (torch.float32, torch.float16), torch.device("cpu"),
        timer=cpu_timer, loop_timer=cpu_timer, peak=None, max_loop_t=64, echo=False,
    )
    print(format_table(rows, "interpreter smoke test (correctness only; times NOT representative)"))
    print("interpret-smoke passed: kernels agree with their PyTorch versions; nothing written")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.interpret_smoke:
        os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of Triton
        return interpret_smoke()

    import torch

    if not torch.cuda.is_available():
        print(
            "error: no CUDA GPU found. This benchmark times GPU kernels and needs a CUDA GPU with "
            "compute capability >= 8.0. Use --interpret-smoke for a CPU correctness check.",
            file=sys.stderr,
        )
        return 2

    import triton
    import triton.testing

    from linattn_edu import bench
    from linattn_edu.kernels import causal_conv1d_config, kernel_backend, linear_scan_config

    device = torch.device("cuda")
    backend = kernel_backend(torch.zeros(1, device=device))
    if backend != "triton":
        print(
            f"error: the Triton kernels do not compile on {torch.cuda.get_device_name()} "
            f"(backend {backend!r}; needs compute capability >= 8.0): nothing to benchmark.",
            file=sys.stderr,
        )
        return 2

    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    dtypes = [torch.float32] if args.quick else [torch.float32, torch.bfloat16]
    warmup_ms, rep_ms = (10, 50) if args.quick else (25, 100)

    def gpu_timer(fn: Callable[[], Any]) -> float:
        return float(triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median"))

    def loop_timer(fn: Callable[[], Any]) -> float:  # the Python loop takes ~T·10 µs per call
        return 1e3 * bench.time_fn(fn, warmup=1, repeat=3, device=device)

    name = torch.cuda.get_device_name()
    peak = peak_bandwidth(name)
    print(f"device: {name} | torch {torch.__version__} | triton {triton.__version__}")
    print(f"nominal peak bandwidth: {'unknown (not in PEAK_BANDWIDTH)' if peak is None else f'{peak / 1e9:.0f} GB/s'}")
    print(f"%copy = ours vs dst.copy_(src) of the same bytes in this run; conv K = {CONV_WIDTH}")
    rows = run_sweep(
        shapes, dtypes, device, timer=gpu_timer, loop_timer=loop_timer, peak=peak, max_loop_t=args.max_loop_T
    )
    torch.cuda.empty_cache()

    print()
    print(format_table(rows, f"linear scan and causal conv1d (forward) on {name}"))
    config = {
        "shapes_B_T_C": [list(s) for s in shapes],
        "dtypes": [str(d).replace("torch.", "") for d in dtypes],
        "conv_kernel_size": CONV_WIDTH,
        "mode": "forward",
        "bytes": {
            "scan": "3*B*T*C*elt (read a, b; write h) + 4*B*C (h_last, float32)",
            "conv": "2*B*T*C*elt (read x; write y)",
            "copy": "dst.copy_(src) moving the same total bytes (half read, half written)",
        },
        "peak_bandwidth_bytes_per_s": peak,
        "peak_source": "nominal spec-sheet HBM bandwidth, PEAK_BANDWIDTH in scripts/bench_scan.py",
        "timer": f"triton.testing.do_bench(warmup={warmup_ms}, rep={rep_ms}, return_mode='median'), ms",
        "loop_timer": "linattn_edu.bench.time_fn(warmup=1, repeat=3), median, ms",
        "max_loop_T": args.max_loop_T,
        "kernel_config": {
            str(tuple(s)): {
                "scan": linear_scan_config(device, s[0], s[2]),
                "conv": causal_conv1d_config(device, s[0], s[1], s[2], CONV_WIDTH),
            }
            for s in shapes
        },
        "capability": list(torch.cuda.get_device_capability()),
        "quick": bool(args.quick),
    }
    path = bench.save_results("scan", rows, command=command_line(), config=config, device=device, directory=args.out_dir)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
