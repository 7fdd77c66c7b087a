#!/usr/bin/env python
"""Benchmark the book's Triton FlashAttention against PyTorch's SDPA on a CUDA GPU.

Usage (from the repository root, on a machine with a CUDA GPU of compute capability >= 8.0)::

    python scripts/bench_flash_attention.py            # the full sweep below
    python scripts/bench_flash_attention.py --quick    # T in {1024, 4096}, fp16 only
    python scripts/bench_flash_attention.py --out-dir /tmp/results   # write somewhere else
    python scripts/bench_flash_attention.py --interpret-smoke        # CPU: tiny correctness pass

What is measured
    Causal self-attention, ``q, k, v`` of shape ``(B, H, T, D)`` with ``Tq = Tk = T``, for
    ``T`` in {1024, 2048, 4096, 8192, 16384}, ``D`` in {64, 128}, float16 (and bfloat16 where the
    GPU supports it). The work per call is kept roughly constant as in the FlashAttention-2
    paper's benchmarks: ``B * T = 16384`` tokens and ``H * D = 2048`` (so ``H = 32`` for
    ``D = 64`` and ``H = 16`` for ``D = 128``; ``B = 16384 / T``).

    Two modes: ``fwd`` (forward only) and ``fwd_bwd`` (forward + backward of ``o`` against a
    random ``do``). Each is timed with :func:`triton.testing.do_bench` (median of repeated runs,
    after warm-up) for ``linattn_edu.kernels.flash_attention`` ("ours") and
    ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)`` ("SDPA", which picks
    its fastest fused backend, usually FlashAttention-2 on Ampere/Hopper).

    FLOPs: ``4 * B * H * T^2 * D`` for the forward (two matmuls), halved for causal masking;
    backward counted as 2.5x the forward, so ``fwd_bwd`` is 3.5x. TFLOP/s = FLOPs / time.

    Before any timing, the outputs of ours and SDPA are compared (and, for ``fwd_bwd``, the
    gradients); a disagreement stops the script before anything is written.

Output
    A table on stdout and ``linattn_edu/results/flash_attention.json`` (or ``--out-dir``),
    written by :func:`linattn_edu.bench.save_results` with the GPU name, date, versions, the
    config and this command line. Chapter 2 plots it.

Without CUDA the script exits with status 2 and a message, unless ``--interpret-smoke`` is
given: then it runs a tiny correctness-only pass through the Triton interpreter on the CPU
(timings from that pass are not representative and nothing is written).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

FULL_SEQ_LENS = (1024, 2048, 4096, 8192, 16384)
QUICK_SEQ_LENS = (1024, 4096)
HEAD_DIMS = (64, 128)
TOKENS = 16384  # B * T
MODEL_DIM = 2048  # H * D
BWD_FLOP_FACTOR = 2.5  # backward FLOPs / forward FLOPs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark linattn_edu's Triton FlashAttention against PyTorch SDPA (CUDA).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Sizes: B*T = 16384 tokens, H*D = 2048, causal, Tq = Tk = T. See the module docstring.",
    )
    parser.add_argument("--quick", action="store_true", help="T in {1024, 4096}, float16 only, fewer repetitions")
    parser.add_argument(
        "--out-dir", type=Path, default=None,
        help="directory for flash_attention.json (default: linattn_edu/results/)",
    )
    parser.add_argument(
        "--interpret-smoke", action="store_true",
        help="no GPU needed: tiny correctness-only pass through the Triton interpreter; writes nothing",
    )
    return parser.parse_args(argv)


def attention_flops(batch: int, heads: int, seq_len: int, head_dim: int, *, causal: bool, mode: str) -> float:
    """FLOPs of one attention call: ``4·B·H·T²·D`` forward, halved when causal, x3.5 with backward."""
    fwd = 4.0 * batch * heads * seq_len * seq_len * head_dim
    if causal:
        fwd /= 2
    return fwd * (1.0 + BWD_FLOP_FACTOR) if mode == "fwd_bwd" else fwd


def shapes_for(seq_len: int, head_dim: int) -> tuple[int, int]:
    """``(B, H)`` with ``B * T = TOKENS`` and ``H * D = MODEL_DIM``."""
    return max(1, TOKENS // seq_len), MODEL_DIM // head_dim


def command_line() -> str:
    """The command that regenerates the results, as typed (interpreter name + arguments)."""
    return shlex.join([Path(sys.executable).name, *sys.argv])


def format_table(rows: list[dict[str, Any]], title: str) -> str:
    header = (
        f"{'mode':<8} {'dtype':<9} {'T':>6} {'D':>4} {'B':>3} {'H':>3} "
        f"{'ours ms':>9} {'SDPA ms':>9} {'ours TF/s':>10} {'SDPA TF/s':>10} {'ours/SDPA':>9}"
    )
    lines = [title, header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['mode']:<8} {r['dtype']:<9} {r['T']:>6} {r['D']:>4} {r['B']:>3} {r['H']:>3} "
            f"{r['ms_ours']:>9.3f} {r['ms_sdpa']:>9.3f} {r['tflops_ours']:>10.1f} {r['tflops_sdpa']:>10.1f} "
            f"{r['ratio']:>9.2f}"
        )
    return "\n".join(lines)


def _rel_err(a, b) -> float:
    """``||a - b|| / ||b||`` in float64."""
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def agree(ours, sdpa, q, k, v, do, dtype, mode: str) -> dict[str, float]:
    """Compare our output (and gradients) with SDPA's; raise ``AssertionError`` if they differ."""
    import torch

    from linattn_edu.checks import check, tolerance

    atol, rtol = tolerance(dtype)
    # Both sides round to dtype once at the end: allow twice the one-sided tolerance.
    with torch.no_grad():
        o1, o2 = ours(q, k, v), sdpa(q, k, v)
    err = check(o1, o2, atol=2 * atol, rtol=2 * rtol, name="forward ours vs SDPA", quiet=True)
    out = {"max_abs_err_fwd": err}
    if mode == "fwd_bwd":
        qs, ks, vs = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
        g1 = torch.autograd.grad(ours(qs, ks, vs), (qs, ks, vs), do)
        g2 = torch.autograd.grad(sdpa(qs, ks, vs), (qs, ks, vs), do)
        worst = max(_rel_err(a, b) for a, b in zip(g1, g2))
        limit = 10 * rtol  # relative Frobenius error of dq, dk, dv
        if not worst <= limit:
            raise AssertionError(f"gradients of ours and SDPA differ: relative error {worst:.3g} > {limit:g}")
        out["rel_err_grad"] = worst
    return out


def run_config(
    *, mode: str, dtype, seq_len: int, head_dim: int, batch: int, heads: int, device,
    timer: Callable[[Callable[[], Any], list], float],
) -> dict[str, Any]:
    """Check then time ours and SDPA on one shape; returns one results row."""
    import torch
    import torch.nn.functional as F

    from linattn_edu.kernels import flash_attention

    gen = torch.Generator(device=device).manual_seed(seq_len * 1000 + head_dim)
    shape = (batch, heads, seq_len, head_dim)
    q, k, v, do = (torch.randn(shape, generator=gen, device=device, dtype=dtype) for _ in range(4))

    def ours(q_, k_, v_):
        return flash_attention(q_, k_, v_, causal=True)

    def sdpa(q_, k_, v_):
        return F.scaled_dot_product_attention(q_, k_, v_, is_causal=True)

    errors = agree(ours, sdpa, q, k, v, do, dtype, mode)

    times = {}
    for name, fn in (("ours", ours), ("sdpa", sdpa)):
        if mode == "fwd":
            times[name] = timer(lambda fn=fn: fn(q, k, v), [])
        else:
            qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))

            def step(fn=fn, qg=qg, kg=kg, vg=vg):
                fn(qg, kg, vg).backward(do)

            times[name] = timer(step, [qg, kg, vg])

    flops = attention_flops(batch, heads, seq_len, head_dim, causal=True, mode=mode)
    tflops = {name: flops / (ms * 1e-3) / 1e12 for name, ms in times.items()}
    return {
        "mode": mode,
        "dtype": str(dtype).replace("torch.", ""),
        "T": seq_len,
        "D": head_dim,
        "B": batch,
        "H": heads,
        "causal": True,
        "flops": flops,
        "ms_ours": times["ours"],
        "ms_sdpa": times["sdpa"],
        "tflops_ours": tflops["ours"],
        "tflops_sdpa": tflops["sdpa"],
        "ratio": tflops["ours"] / tflops["sdpa"],
        **errors,
    }


def interpret_smoke() -> int:
    """Tiny shapes through the Triton interpreter: correctness of everything the GPU run does."""
    import torch

    from linattn_edu import bench
    from linattn_edu.checks import check
    from linattn_edu.kernels import flash_attention, flash_attention_torch, kernel_backend
    from linattn_edu.reference import softmax_attention

    probe = torch.zeros(1)
    backend = kernel_backend(probe)
    if backend != "interpreter":
        print(f"error: the Triton interpreter is not active here (backend {backend!r})", file=sys.stderr)
        return 1
    print("interpret-smoke: tiny shapes, Triton interpreter on the CPU; timings are NOT representative")

    # GQA and Tq < Tk are not in the GPU sweep but are cheap to check here.
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 24, 16, generator=gen)
    k, v = (torch.randn(1, 2, 40, 16, generator=gen) for _ in range(2))
    check(flash_attention(q, k, v, window=17), softmax_attention(q, k, v, window=17), name="GQA, Tq<Tk, window")

    qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))
    do = torch.randn_like(q)
    g1 = torch.autograd.grad(flash_attention(qg, kg, vg), (qg, kg, vg), do)
    g2 = torch.autograd.grad(flash_attention_torch(qg, kg, vg), (qg, kg, vg), do)
    for name, a, b in zip(("dq", "dk", "dv"), g1, g2):
        check(a, b, atol=1e-4, rtol=1e-4, name=f"{name} vs autograd (float32)")

    def cpu_timer(fn: Callable[[], Any], grad_to_none: list) -> float:
        return 1e3 * bench.time_fn(fn, warmup=0, repeat=1)

    rows = []
    for mode in ("fwd", "fwd_bwd"):
        for dtype in (torch.float32, torch.float16):
            for seq_len, head_dim in ((32, 16), (80, 32)):
                rows.append(run_config(
                    mode=mode, dtype=dtype, seq_len=seq_len, head_dim=head_dim, batch=1, heads=2,
                    device=torch.device("cpu"), timer=cpu_timer,
                ))
    print(format_table(rows, "interpreter smoke test (correctness only; times NOT representative)"))
    print("interpret-smoke passed: outputs and gradients agree; nothing written")
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

    from linattn_edu import bench, runtime
    from linattn_edu.kernels import flash_attention_config, kernel_backend

    device = torch.device("cuda")
    backend = kernel_backend(torch.zeros(1, device=device))
    if backend != "triton":
        print(
            f"error: the Triton kernels do not compile on {torch.cuda.get_device_name()} "
            f"(backend {backend!r}; needs compute capability >= 8.0): nothing to benchmark.",
            file=sys.stderr,
        )
        return 2

    seq_lens = QUICK_SEQ_LENS if args.quick else FULL_SEQ_LENS
    dtypes = [torch.float16]
    if not args.quick and runtime.native_bf16():
        dtypes.append(torch.bfloat16)
    warmup_ms, rep_ms = (10, 50) if args.quick else (25, 100)

    def gpu_timer(fn: Callable[[], Any], grad_to_none: list) -> float:
        return float(triton.testing.do_bench(
            fn, warmup=warmup_ms, rep=rep_ms, grad_to_none=grad_to_none or None, return_mode="median"
        ))

    name = torch.cuda.get_device_name()
    print(f"device: {name} | torch {torch.__version__} | triton {triton.__version__}")
    print(f"shapes: B*T = {TOKENS}, H*D = {MODEL_DIM}, causal; FLOPs 4*B*H*T^2*D/2, backward 2.5x forward")
    rows = []
    for mode in ("fwd", "fwd_bwd"):
        for dtype in dtypes:
            for head_dim in HEAD_DIMS:
                for seq_len in seq_lens:
                    batch, heads = shapes_for(seq_len, head_dim)
                    row = run_config(
                        mode=mode, dtype=dtype, seq_len=seq_len, head_dim=head_dim, batch=batch,
                        heads=heads, device=device, timer=gpu_timer,
                    )
                    rows.append(row)
                    print(format_table([row], "").splitlines()[-1], flush=True)
                    torch.cuda.empty_cache()

    print()
    print(format_table(rows, f"FlashAttention (causal) on {name}: ours vs SDPA"))
    config = {
        "seq_lens": list(seq_lens),
        "head_dims": list(HEAD_DIMS),
        "dtypes": [str(d).replace("torch.", "") for d in dtypes],
        "modes": ["fwd", "fwd_bwd"],
        "tokens_B_times_T": TOKENS,
        "model_dim_H_times_D": MODEL_DIM,
        "causal": True,
        "flops": "4*B*H*T^2*D, halved for causal; fwd_bwd = 3.5x fwd",
        "timer": f"triton.testing.do_bench(warmup={warmup_ms}, rep={rep_ms}, return_mode='median'), ms",
        "baseline": "torch.nn.functional.scaled_dot_product_attention(is_causal=True)",
        "kernel_config": {
            str(d): {k: v for k, v in flash_attention_config(device, d, torch.float16).items()}
            for d in HEAD_DIMS
        },
        "capability": list(torch.cuda.get_device_capability()),
        "quick": bool(args.quick),
    }
    path = bench.save_results(
        "flash_attention", rows, command=command_line(), config=config, device=device, directory=args.out_dir
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
