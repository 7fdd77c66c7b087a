#!/usr/bin/env python
"""What ALiBi costs inside a FlashAttention kernel, measured on a CUDA GPU.

Usage (from the repository root, on a machine with a CUDA GPU of compute capability >= 8.0)::

    python scripts/bench_alibi.py                     # the full sweep below
    python scripts/bench_alibi.py --quick             # T in {1024, 4096}, fewer repetitions
    python scripts/bench_alibi.py --out-dir /tmp/r    # write somewhere else
    python scripts/bench_alibi.py --interpret-smoke   # CPU: tiny correctness pass, writes nothing

What is measured
    Causal self-attention, ``q, k, v`` of shape ``(B, H, T, D)``, float16, for ``T`` in
    {1024, 2048, 4096, 8192} and ``D`` in {64, 128}, with the work per call kept roughly constant
    as in ``bench_flash_attention.py``: ``B * T = 16384`` tokens and ``H * D = 2048``. Three ways:

    ``plain``
        ``linattn_edu.kernels.flash_attention(q, k, v, causal=True)``: our Triton kernel.
    ``alibi``
        the same kernel with ``alibi_slopes=`` (the paper's slopes for ``H`` heads): the bias
        ``-m_h (i - j)`` is computed inside the kernel from positions, no ``T x T`` tensor.
    ``sdpa_bias``
        ``torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)`` with a
        materialized ``(H, T, T)`` float16 bias holding ALiBi and the causal mask (``-inf`` above
        the diagonal), broadcast over the batch: how ALiBi is run without a kernel that knows
        it (PyTorch picks a backend that accepts an additive mask). Its bias takes
        ``H * T^2 * 2`` bytes, recorded as ``bias_bytes``.

    Two modes: ``fwd`` and ``fwd_bwd`` (forward + backward of ``o`` against a random ``do``), each
    timed with :func:`triton.testing.do_bench` (median, after warm-up). Before any timing, the
    ALiBi kernel is checked against ``sdpa_bias`` (outputs, and gradients for ``fwd_bwd``) and the
    plain kernel against SDPA with ``is_causal=True``; a disagreement stops the script before
    anything is written.

    Ratios printed per shape: ``alibi/plain`` (time with ALiBi over time without: the cost of the
    bias inside the kernel; the target is within 5%, i.e. <= 1.05) and ``alibi/sdpa_bias`` (our
    ALiBi kernel's time over SDPA's with a materialized bias; < 1 means ours is faster).

Output
    A table on stdout and ``linattn_edu/results/alibi_kernel.json`` (or ``--out-dir``), written by
    :func:`linattn_edu.bench.save_results` with the GPU name, date, versions, config and this
    command line.

Without CUDA the script exits with status 2 and a message, unless ``--interpret-smoke`` is given:
then it runs a tiny correctness-only pass through the Triton interpreter on the CPU
(``TRITON_INTERPRET=1`` is set before the kernels are imported) and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

FULL_SEQ_LENS = (1024, 2048, 4096, 8192)
QUICK_SEQ_LENS = (1024, 4096)
HEAD_DIMS = (64, 128)
TOKENS = 16384  # B * T
MODEL_DIM = 2048  # H * D
BWD_FLOP_FACTOR = 2.5  # backward FLOPs / forward FLOPs
TARGET_OVERHEAD = 1.05  # alibi / plain time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Cost of ALiBi in linattn_edu's Triton FlashAttention vs without, and vs SDPA with a bias (CUDA).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Sizes: B*T = 16384 tokens, H*D = 2048, causal, float16. See the module docstring.",
    )
    parser.add_argument("--quick", action="store_true", help="T in {1024, 4096}, fewer repetitions")
    parser.add_argument(
        "--out-dir", type=Path, default=None, help="directory for alibi_kernel.json (default: linattn_edu/results/)"
    )
    parser.add_argument(
        "--interpret-smoke", action="store_true",
        help="no GPU needed: tiny correctness-only pass through the Triton interpreter; writes nothing",
    )
    return parser.parse_args(argv)


def command_line() -> str:
    """The command that regenerates the results, as typed (interpreter name + arguments)."""
    return shlex.join([Path(sys.executable).name, *sys.argv])


def attention_flops(batch: int, heads: int, seq_len: int, head_dim: int, *, mode: str) -> float:
    """FLOPs of one causal attention call: ``4·B·H·T²·D / 2`` forward, x3.5 with the backward."""
    fwd = 4.0 * batch * heads * seq_len * seq_len * head_dim / 2
    return fwd * (1.0 + BWD_FLOP_FACTOR) if mode == "fwd_bwd" else fwd


def shapes_for(seq_len: int, head_dim: int) -> tuple[int, int]:
    """``(B, H)`` with ``B * T = TOKENS`` and ``H * D = MODEL_DIM``."""
    return max(1, TOKENS // seq_len), MODEL_DIM // head_dim


def format_table(rows: list[dict[str, Any]], title: str) -> str:
    header = (
        f"{'mode':<8} {'dtype':<8} {'T':>6} {'D':>4} {'B':>3} {'H':>3} {'plain ms':>9} {'alibi ms':>9} {'sdpa+bias':>10} "
        f"{'alibi TF/s':>10} {'alibi/plain':>11} {'alibi/sdpa':>10}"
    )
    lines = [title, header, "-" * len(header)] if title else [header]
    for r in rows:
        lines.append(
            f"{r['mode']:<8} {r['dtype']:<8} {r['T']:>6} {r['D']:>4} {r['B']:>3} {r['H']:>3} {r['ms_plain']:>9.3f} "
            f"{r['ms_alibi']:>9.3f} {r['ms_sdpa_bias']:>10.3f} {r['tflops_alibi']:>10.1f} "
            f"{r['alibi_over_plain']:>11.3f} {r['alibi_over_sdpa_bias']:>10.3f}"
        )
    return "\n".join(lines)


def _rel_err(a, b) -> float:
    """``||a - b|| / ||b||`` in float64."""
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def agree(fn, ref, q, k, v, do, dtype, mode: str, name: str) -> dict[str, float]:
    """Compare ``fn``'s output (and gradients for ``fwd_bwd``) with ``ref``'s; raise ``AssertionError`` if they differ."""
    import torch

    from linattn_edu.checks import check, tolerance

    atol, rtol = tolerance(dtype)
    with torch.no_grad():
        o1, o2 = fn(q, k, v), ref(q, k, v)
    # Both sides round to dtype once at the end: allow twice the one-sided tolerance.
    err = check(o1, o2, atol=2 * atol, rtol=2 * rtol, name=f"forward {name}", quiet=True)
    out = {f"max_abs_err_fwd_{name}": err}
    if mode == "fwd_bwd":
        qs, ks, vs = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
        g1 = torch.autograd.grad(fn(qs, ks, vs), (qs, ks, vs), do)
        g2 = torch.autograd.grad(ref(qs, ks, vs), (qs, ks, vs), do)
        worst = max(_rel_err(a, b) for a, b in zip(g1, g2))
        limit = 10 * rtol  # relative Frobenius error of dq, dk, dv
        if not worst <= limit:
            raise AssertionError(f"gradients of {name} differ: relative error {worst:.3g} > {limit:g}")
        out[f"rel_err_grad_{name}"] = worst
    return out


def run_config(
    *, mode: str, dtype, seq_len: int, head_dim: int, batch: int, heads: int, device,
    timer: Callable[[Callable[[], Any], list], float],
) -> dict[str, Any]:
    """Check then time plain, ALiBi and SDPA-with-bias on one shape; returns one results row."""
    import torch
    import torch.nn.functional as F

    from linattn_edu.kernels import flash_attention
    from linattn_edu.kernel_catalog import alibi_causal_bias
    from linattn_edu.reference import alibi_slopes

    gen = torch.Generator(device=device).manual_seed(seq_len * 1000 + head_dim)
    shape = (batch, heads, seq_len, head_dim)
    q, k, v, do = (torch.randn(shape, generator=gen, device=device, dtype=dtype) for _ in range(4))
    slopes = torch.tensor(alibi_slopes(heads), dtype=torch.float32, device=device)
    bias = alibi_causal_bias(slopes, seq_len, dtype, device)  # (H, T, T), shared with the kernel catalogue
    mask = bias[None].expand(batch, -1, -1, -1)  # (B, H, T, T) view, no copy

    def plain(q_, k_, v_):
        return flash_attention(q_, k_, v_, causal=True)

    def alibi(q_, k_, v_):
        return flash_attention(q_, k_, v_, causal=True, alibi_slopes=slopes)

    def sdpa_bias(q_, k_, v_):
        return F.scaled_dot_product_attention(q_, k_, v_, attn_mask=mask)

    def sdpa_causal(q_, k_, v_):
        return F.scaled_dot_product_attention(q_, k_, v_, is_causal=True)

    errors = {
        **agree(alibi, sdpa_bias, q, k, v, do, dtype, mode, "alibi_vs_sdpa_bias"),
        **agree(plain, sdpa_causal, q, k, v, do, dtype, mode, "plain_vs_sdpa"),
    }

    times = {}
    for name, fn in (("plain", plain), ("alibi", alibi), ("sdpa_bias", sdpa_bias)):
        if mode == "fwd":
            times[name] = timer(lambda fn=fn: fn(q, k, v), [])
        else:
            qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))

            def step(fn=fn, qg=qg, kg=kg, vg=vg):
                fn(qg, kg, vg).backward(do)

            times[name] = timer(step, [qg, kg, vg])

    flops = attention_flops(batch, heads, seq_len, head_dim, mode=mode)
    row = {
        "mode": mode,
        "dtype": str(dtype).replace("torch.", ""),
        "T": seq_len,
        "D": head_dim,
        "B": batch,
        "H": heads,
        "causal": True,
        "flops": flops,
        "ms_plain": times["plain"],
        "ms_alibi": times["alibi"],
        "ms_sdpa_bias": times["sdpa_bias"],
        "tflops_plain": flops / (times["plain"] * 1e-3) / 1e12,
        "tflops_alibi": flops / (times["alibi"] * 1e-3) / 1e12,
        "tflops_sdpa_bias": flops / (times["sdpa_bias"] * 1e-3) / 1e12,
        "alibi_over_plain": times["alibi"] / times["plain"],
        "alibi_over_sdpa_bias": times["alibi"] / times["sdpa_bias"],
        "bias_bytes": bias.numel() * bias.element_size(),
        **errors,
    }
    del bias, mask
    return row


def interpret_smoke() -> int:
    """Tiny shapes through the Triton interpreter: correctness of everything the GPU run checks."""
    import torch

    from linattn_edu import bench
    from linattn_edu.checks import check
    from linattn_edu.kernels import flash_attention, flash_attention_torch, kernel_backend
    from linattn_edu.reference import alibi_attention, alibi_slopes

    backend = kernel_backend(torch.zeros(1))
    if backend != "interpreter":
        print(f"error: the Triton interpreter is not active here (backend {backend!r})", file=sys.stderr)
        return 1
    print("interpret-smoke: tiny shapes, Triton interpreter on the CPU; timings are NOT representative")

    # The kernel's ALiBi against the float64 NumPy reference (queries at the end of the keys too).
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 24, 16, generator=gen, dtype=torch.float64)
    k, v = (torch.randn(1, 4, 40, 16, generator=gen, dtype=torch.float64) for _ in range(2))
    slopes = torch.tensor(alibi_slopes(4), dtype=torch.float32)
    ours = flash_attention(q.float(), k.float(), v.float(), alibi_slopes=slopes)
    expected = torch.from_numpy(alibi_attention(q.numpy(), k.numpy(), v.numpy(), causal=True))
    check(ours, expected, name="ALiBi kernel vs NumPy reference (Tq < Tk, float32)")

    qg, kg, vg = (t.float().clone().requires_grad_(True) for t in (q, k, v))
    do = torch.randn(qg.shape, generator=gen)
    g1 = torch.autograd.grad(flash_attention(qg, kg, vg, alibi_slopes=slopes), (qg, kg, vg), do)
    g2 = torch.autograd.grad(flash_attention_torch(qg, kg, vg, alibi_slopes=slopes), (qg, kg, vg), do)
    for name, a, b in zip(("dq", "dk", "dv"), g1, g2):
        check(a, b, atol=1e-4, rtol=1e-4, name=f"ALiBi {name} vs autograd (float32)")

    def cpu_timer(fn: Callable[[], Any], grad_to_none: list) -> float:
        return 1e3 * bench.time_fn(fn, warmup=0, repeat=1)

    rows = []  # each mode and dtype once; lengths that are not a multiple of the 16-wide tiles
    for mode, dtype, seq_len, head_dim in (
        ("fwd", torch.float32, 40, 16), ("fwd", torch.float16, 24, 32),
        ("fwd_bwd", torch.float32, 24, 32), ("fwd_bwd", torch.float16, 40, 16),
    ):
        rows.append(run_config(
            mode=mode, dtype=dtype, seq_len=seq_len, head_dim=head_dim, batch=1, heads=2,
            device=torch.device("cpu"), timer=cpu_timer,
        ))
    print(format_table(rows, "interpreter smoke test (correctness only; times NOT representative)"))
    print("interpret-smoke passed: ALiBi kernel agrees with the reference and with SDPA + bias; nothing written")
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
            "compute capability >= 8.0. Use --interpret-smoke for a CPU correctness check; results "
            "measured on a GPU are stored in linattn_edu/results/alibi_kernel.json when present.",
            file=sys.stderr,
        )
        return 2

    import triton
    import triton.testing

    from linattn_edu import bench
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
    dtype = torch.float16
    warmup_ms, rep_ms = (10, 50) if args.quick else (25, 100)

    def gpu_timer(fn: Callable[[], Any], grad_to_none: list) -> float:
        return float(triton.testing.do_bench(
            fn, warmup=warmup_ms, rep=rep_ms, grad_to_none=grad_to_none or None, return_mode="median"
        ))

    name = torch.cuda.get_device_name()
    print(f"device: {name} | torch {torch.__version__} | triton {triton.__version__}")
    print(f"shapes: B*T = {TOKENS}, H*D = {MODEL_DIM}, causal, float16; times in ms (do_bench median)")
    rows = []
    for mode in ("fwd", "fwd_bwd"):
        for head_dim in HEAD_DIMS:
            for seq_len in seq_lens:
                batch, heads = shapes_for(seq_len, head_dim)
                row = run_config(
                    mode=mode, dtype=dtype, seq_len=seq_len, head_dim=head_dim, batch=batch, heads=heads,
                    device=device, timer=gpu_timer,
                )
                rows.append(row)
                print(format_table([row], "").splitlines()[-1], flush=True)
                torch.cuda.empty_cache()

    print()
    print(format_table(rows, f"ALiBi in FlashAttention (causal, fp16) on {name}"))
    overheads = [r["alibi_over_plain"] for r in rows]
    worst = max(overheads)
    verdict = "within" if worst <= TARGET_OVERHEAD else "OVER"
    print(f"ALiBi / plain: median {sorted(overheads)[len(overheads) // 2]:.3f}, worst {worst:.3f} "
          f"({verdict} the {100 * (TARGET_OVERHEAD - 1):.0f}% target)")
    config = {
        "seq_lens": list(seq_lens),
        "head_dims": list(HEAD_DIMS),
        "dtype": "float16",
        "modes": ["fwd", "fwd_bwd"],
        "tokens_B_times_T": TOKENS,
        "model_dim_H_times_D": MODEL_DIM,
        "causal": True,
        "flops": "4*B*H*T^2*D, halved for causal; fwd_bwd = 3.5x fwd",
        "timer": f"triton.testing.do_bench(warmup={warmup_ms}, rep={rep_ms}, return_mode='median'), ms",
        "variants": {
            "plain": "flash_attention(q, k, v, causal=True)",
            "alibi": "flash_attention(q, k, v, causal=True, alibi_slopes=slopes)",
            "sdpa_bias": "scaled_dot_product_attention(q, k, v, attn_mask=(H, T, T) fp16 ALiBi + causal -inf bias)",
        },
        "target_alibi_over_plain": TARGET_OVERHEAD,
        "kernel_config": {str(d): flash_attention_config(device, d, dtype) for d in HEAD_DIMS},
        "capability": list(torch.cuda.get_device_capability()),
        "quick": bool(args.quick),
    }
    path = bench.save_results(
        "alibi_kernel", rows, command=command_line(), config=config, device=device, directory=args.out_dir
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
