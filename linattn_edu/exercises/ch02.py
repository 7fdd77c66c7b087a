"""Checkers for Chapter 2's exercises (Triton basics, online softmax, block skipping, the backward).

Each ``check_*`` function runs the reader's code on several cases, prints one line —
``✓ ...`` with the max error, or ``✗ ...`` saying what went wrong and on which case — and
returns ``True`` or ``False``. Wrong answers never raise, so a notebook with unsolved exercises
still runs top to bottom; an exception raised by the reader's code is reported the same way.

Triton exercises launch the reader's ``@triton.jit`` kernel themselves, on the CPU through the
interpreter (call :func:`linattn_edu.runtime.setup` before importing Triton) or on a CUDA GPU.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from ..reference import attention_mask
from ._common import compare as _compare, failure as _failure, matches as _matches, report as _report

__all__ = [
    "check_scale_kernel",
    "check_online_softmax_update",
    "check_key_block_range",
    "check_row_logsumexp_kernel",
    "check_attention_backward",
    "attention_backward_reference",
    "brute_force_key_blocks",
]

_SENTINEL = -7.0  # what the guard cells and untouched outputs hold


def _kernel_device(kernel: Any) -> torch.device:
    """Where to launch a reader's kernel: the CPU if it is interpreted, else the CUDA GPU."""
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError as err:  # pragma: no cover - only without Triton
        raise RuntimeError("Triton is not installed: the Triton exercises need it") from err
    if isinstance(kernel, InterpretedFunction):
        return torch.device("cpu")
    if not hasattr(kernel, "__getitem__"):
        raise TypeError(
            f"expected a @triton.jit kernel, got {type(kernel).__name__}: decorate it with @triton.jit"
        )
    if torch.cuda.is_available():
        return torch.device("cuda")
    raise RuntimeError(
        "this kernel was compiled for a GPU but there is none: restart the notebook and call "
        "linattn_edu.runtime.setup() before importing triton, so the interpreter is used"
    )


# --------------------------------------------------------------------------------------------
# Exercise 1: a masked scale kernel
# --------------------------------------------------------------------------------------------


def check_scale_kernel(kernel: Any, *, quiet: bool = False) -> bool:
    """Check ``kernel(x_ptr, out_ptr, alpha, n_elements, BLOCK_SIZE: tl.constexpr)``.

    The kernel must write ``out[i] = alpha * x[i]`` for ``i < n_elements``, one program per
    ``BLOCK_SIZE`` elements, and touch nothing past ``n_elements``: the checker launches it on
    views of larger buffers whose tail holds guard values, with sizes that are not multiples of
    the block.
    """
    name = "scale_kernel"
    try:
        dev = _kernel_device(kernel)
    except (RuntimeError, TypeError) as err:
        return _report(False, name, str(err), quiet)
    gen = torch.Generator().manual_seed(2)
    worst = 0.0
    cases = [(1, 16), (5, 16), (64, 64), (100, 64), (1000, 128), (4099, 1024)]
    for n, block in cases:
        alpha = float(torch.empty(()).uniform_(-3, 3, generator=gen))
        x_buf = torch.full((n + block,), float("nan"))
        x_buf[:n] = torch.randn(n, generator=gen)
        x_buf = x_buf.to(dev)
        out_buf = torch.full((n + block,), _SENTINEL, device=dev)
        case = f"n={n}, BLOCK_SIZE={block}, alpha={alpha:.3f}"
        try:
            grid = (math.ceil(n / block),)
            kernel[grid](x_buf[:n], out_buf[:n], alpha, n, BLOCK_SIZE=block)
        except Exception as err:  # noqa: BLE001 - report whatever the reader's kernel raised
            return _failure(name, err, quiet)
        out, expected = out_buf[:n].cpu(), alpha * x_buf[:n].cpu()
        if torch.all(out == _SENTINEL):
            return _report(False, name, f"{case}: the output was never written (store missing?)", quiet)
        if not torch.all(out_buf[n:].cpu() == _SENTINEL):
            return _report(
                False, name, f"{case}: the kernel wrote past element n-1 — is the store masked?", quiet
            )
        err = (out - expected).abs()
        bad = ~(err <= 1e-6 * (1 + expected.abs()))
        if bad.any():
            i = int(bad.nonzero()[0])
            return _report(
                False, name, f"{case}: out[{i}] = {float(out[i]):.6g}, expected {float(expected[i]):.6g}", quiet
            )
        worst = max(worst, float(err.max()))
    return _report(True, name, f"{len(cases)} sizes, guard cells untouched, max |err| = {worst:.3g}", quiet)


# --------------------------------------------------------------------------------------------
# Exercise 2: the online-softmax update
# --------------------------------------------------------------------------------------------


def _online_cases(rng: np.random.Generator) -> list[tuple[str, np.ndarray, list[int]]]:
    """(label, row, block sizes) with large values, ragged blocks and masked (-inf) entries."""
    cases = []
    for i in range(6):
        n = int(rng.integers(1, 200))
        row = rng.normal(scale=[1.0, 30.0, 300.0][i % 3], size=n)
        if i == 4:
            row += 900.0  # exp(row) overflows float64: only a max-shifted update survives
        if i == 5:
            row[rng.random(n) < 0.3] = -np.inf  # some masked keys
            row[0] = 0.0
        sizes, left = [], n
        while left:
            s = int(min(left, rng.integers(1, 40)))
            sizes.append(s)
            left -= s
        cases.append((f"row of {n} values in {len(sizes)} blocks", row, sizes))
    return cases


def check_online_softmax_update(
    fn: Callable[[float, float, np.ndarray], tuple[float, float]], *, quiet: bool = False
) -> bool:
    """Check ``fn(m, l, x_block) -> (m_new, l_new)``, one step of the online softmax of a row.

    Starting from ``m = -inf, l = 0`` and feeding a row block by block, after each block ``m``
    must be the max so far and ``l`` the sum of ``exp(x - m)`` so far. Rows include values near
    900 (``exp`` overflows), ragged block sizes and masked ``-inf`` entries. Last case: a first
    block that is entirely masked must leave ``(m, l) = (-inf, 0)`` (not ``nan``).
    """
    name = "online_softmax_update"
    rng = np.random.default_rng(3)
    worst = 0.0
    for label, row, sizes in _online_cases(rng):
        m, l, start = -np.inf, 0.0, 0
        for b, size in enumerate(sizes):
            block = row[start : start + size].copy()
            start += size
            try:
                m, l = fn(m, l, block)
                m, l = float(m), float(l)
            except Exception as err:  # noqa: BLE001
                return _failure(name, err, quiet)
            seen = row[:start]
            m_ref = float(np.max(seen))
            l_ref = float(np.sum(np.exp(seen - m_ref))) if np.isfinite(m_ref) else 0.0
            if not (m == m_ref and abs(l - l_ref) <= 1e-12 * max(1.0, l_ref)):
                return _report(
                    False, name,
                    f"{label}, after block {b}: (m, l) = ({m:.6g}, {l:.6g}), expected ({m_ref:.6g}, {l_ref:.6g})",
                    quiet,
                )
            worst = max(worst, abs(l - l_ref))
    # Masked start: the first block holds only -inf (e.g. keys outside a sliding window).
    try:
        m, l = fn(-np.inf, 0.0, np.full(4, -np.inf))
        m, l = float(m), float(l)
        m2, l2 = fn(m, l, np.array([0.5, -1.0]))
        m2, l2 = float(m2), float(l2)
    except Exception as err:  # noqa: BLE001
        return _failure(name, err, quiet)
    if not (m == -np.inf and l == 0.0):
        return _report(
            False, name,
            f"a fully masked first block gave (m, l) = ({m}, {l}); expected (-inf, 0). "
            "Hint: exp(-inf - (-inf)) is nan; use a finite stand-in for m_new when it is -inf",
            quiet,
        )
    l2_ref = float(np.exp(0.0) + np.exp(-1.5))
    if not (m2 == 0.5 and abs(l2 - l2_ref) <= 1e-12):
        return _report(
            False, name, f"after a masked block then [0.5, -1.0]: ({m2}, {l2}), expected (0.5, {l2_ref:.6g})", quiet
        )
    return _report(True, name, f"6 rows and a masked block, every intermediate (m, l) right, max |err| of l = {worst:.3g}", quiet)


# --------------------------------------------------------------------------------------------
# Exercise 3: which key blocks a query block visits
# --------------------------------------------------------------------------------------------


def brute_force_key_blocks(
    m: int, block_m: int, block_n: int, t_q: int, t_k: int, window: int | None = None
) -> list[int]:
    """Key blocks holding at least one key that some valid query of query block ``m`` sees.

    Causal attention with queries at the end of the keys (query ``i`` at position
    ``t_k - t_q + i``) and an optional sliding window, decided from
    :func:`linattn_edu.reference.attention_mask`. Slow (builds the full mask); for checking.
    """
    mask = attention_mask(t_q, t_k, causal=True, window=window)
    rows = mask[m * block_m : min((m + 1) * block_m, t_q)]
    n_blocks = -(-t_k // block_n)
    return [n for n in range(n_blocks) if rows[:, n * block_n : (n + 1) * block_n].any()]


def check_key_block_range(
    fn: Callable[..., tuple[int, int]], *, quiet: bool = False
) -> bool:
    """Check ``fn(m, block_m, block_n, t_q, t_k, window) -> (first, end)``.

    ``first`` and ``end`` are key-*block* indices: query block ``m`` must visit exactly the key
    blocks ``first, ..., end - 1`` (causal, queries at the end of the keys, ``window=None`` or a
    sliding window). Compared with :func:`brute_force_key_blocks` on many random shapes.
    """
    name = "key_block_range"
    rng = np.random.default_rng(4)
    n_checked = 0
    for case in range(150):
        block_m = int(rng.choice([16, 32, 64]))
        block_n = int(rng.choice([16, 32, 64]))
        t_k = int(rng.integers(1, 300))
        t_q = t_k if case % 3 else int(rng.integers(1, t_k + 1))
        window = None if case % 2 else int(rng.integers(1, 150))
        for m in range(-(-t_q // block_m)):
            expected = brute_force_key_blocks(m, block_m, block_n, t_q, t_k, window)
            args = dict(m=m, block_m=block_m, block_n=block_n, t_q=t_q, t_k=t_k, window=window)
            try:
                first, end = fn(m, block_m, block_n, t_q, t_k, window)
            except Exception as err:  # noqa: BLE001
                return _failure(name, err, quiet)
            got = list(range(int(first), int(end)))
            if got != expected:
                exp = f"({expected[0]}, {expected[-1] + 1})" if expected else "an empty range"
                return _report(
                    False, name, f"{args}: you return (first, end) = ({first}, {end}), expected {exp}", quiet
                )
            n_checked += 1
    return _report(True, name, f"{n_checked} query blocks on 150 random shapes, all exact", quiet)


# --------------------------------------------------------------------------------------------
# Exercise 4: a row log-sum-exp kernel
# --------------------------------------------------------------------------------------------


def check_row_logsumexp_kernel(kernel: Any, *, quiet: bool = False) -> bool:
    """Check ``kernel(x_ptr, out_ptr, n_cols, row_stride, BLOCK_N: tl.constexpr)``.

    One program per row of a float32 ``(M, N)`` matrix whose rows are ``row_stride`` apart;
    ``out[row] = log(sum(exp(x[row, :n_cols])))`` computed stably. ``BLOCK_N`` is a power of two
    ``>= n_cols`` (at least 16), so the padding columns must be masked. Rows include values near
    1000, ``-inf`` entries, and ``+inf`` garbage in the padding between rows.
    """
    name = "row_logsumexp_kernel"
    try:
        dev = _kernel_device(kernel)
    except (RuntimeError, TypeError) as err:
        return _report(False, name, str(err), quiet)
    gen = torch.Generator().manual_seed(5)
    worst = 0.0
    cases = [(1, 1), (3, 7), (4, 100), (2, 513)]
    for n_rows, n_cols in cases:
        stride = n_cols + 3  # rows are strided: columns past n_cols hold garbage (+inf)
        x = torch.full((n_rows, stride), float("inf"))
        x[:, :n_cols] = torch.randn(n_rows, n_cols, generator=gen) * 5
        x[0, :n_cols] += 1000.0  # exp overflows float32 without the max shift
        if n_cols > 2:
            x[-1, 1:n_cols:2] = float("-inf")  # masked entries contribute nothing
        out = torch.full((n_rows + 1,), _SENTINEL, device=dev)
        block = max(16, 1 << max(0, n_cols - 1).bit_length())
        case = f"{n_rows}x{n_cols} (BLOCK_N={block})"
        try:
            kernel[(n_rows,)](x.to(dev), out, n_cols, stride, BLOCK_N=block)
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        got = out.cpu().double()
        expected = torch.logsumexp(x[:, :n_cols].double(), dim=-1)
        if got[n_rows] != _SENTINEL:
            return _report(False, name, f"{case}: wrote out[{n_rows}], past the last row", quiet)
        if (got[:n_rows] == _SENTINEL).any():
            return _report(False, name, f"{case}: out[row] was never written (store missing?)", quiet)
        if not torch.isfinite(got[:n_rows]).all():
            return _report(
                False, name, f"{case}: got {got[:n_rows].tolist()} — inf/nan: did you subtract the row max "
                "and mask the padding columns with -inf?", quiet
            )
        err = (got[:n_rows] - expected).abs()
        bad = err > 1e-5 * (1 + expected.abs())
        if bad.any():
            i = int(bad.nonzero()[0])
            return _report(
                False, name, f"{case}: row {i}: got {float(got[i]):.7g}, expected {float(expected[i]):.7g}", quiet
            )
        worst = max(worst, float(err.max()))
    return _report(True, name, f"{len(cases)} shapes, max |err| = {worst:.3g}", quiet)


# ------------------------------------------------------------------------------------------------
# Exercise 2 (issue 14): the FlashAttention backward from the saved log-sum-exp
# ------------------------------------------------------------------------------------------------


def attention_backward_reference(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, do: np.ndarray, *, causal: bool = True
) -> tuple[np.ndarray, ...]:
    """``(o, lse, dq, dk, dv)`` of single-head attention by float64 autograd (the oracle).

    Args:
        q: (Tq, D) queries, the last Tq of the Tk positions; k: (Tk, D); v: (Tk, Dv);
            do: (Tq, Dv) upstream gradient.
        causal: mask the future (query i sits at position Tk - Tq + i).

    Returns:
        o (Tq, Dv), lse (Tq,) natural-log log-sum-exp of the scaled scores, dq (Tq, D),
        dk (Tk, D), dv (Tk, Dv), all float64 NumPy.
    """
    tq, d = q.shape
    qt, kt, vt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (q, k, v))
    s = qt @ kt.T / math.sqrt(d)
    if causal:
        s = s.masked_fill(~torch.from_numpy(attention_mask(tq, k.shape[0])), float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    o = torch.softmax(s, dim=-1) @ vt
    dq, dk, dv = torch.autograd.grad(o, (qt, kt, vt), torch.tensor(do, dtype=torch.float64))
    return tuple(x.detach().numpy() for x in (o, lse, dq, dk, dv))


def _backward_wrong(q, k, v, o, lse, do, *, forget: str) -> tuple[np.ndarray, ...]:
    """Typical mistakes: ``forget='delta'`` (dS = P * dP) or ``'scale'`` (no 1/sqrt(D) in dq, dk)."""
    tq, d = q.shape
    s = q @ k.T / math.sqrt(d)
    s = np.where(attention_mask(tq, k.shape[0]), s, -np.inf)
    p = np.exp(s - lse[:, None])
    dp = do @ v.T
    delta = 0.0 if forget == "delta" else np.sum(do * o, axis=1, keepdims=True)
    ds = p * (dp - delta)
    scale = 1.0 if forget == "scale" else 1.0 / math.sqrt(d)
    return ds @ k * scale, ds.T @ q * scale, p.T @ do


def check_attention_backward(fn: Callable[..., Any], *, seed: int = 0, quiet: bool = False) -> bool:
    """Check ``fn(q, k, v, o, lse, do) -> (dq, dk, dv)`` for causal single-head attention.

    ``q: (Tq, D)``, ``k: (Tk, D)``, ``v: (Tk, Dv)``, the forward's output ``o: (Tq, Dv)`` and
    log-sum-exp ``lse: (Tq,)`` (natural log, of the scores ``q k^T / sqrt(D)``), the upstream
    gradient ``do: (Tq, Dv)``; queries sit at the end of the keys. The reader rebuilds ``P`` from
    ``lse`` and uses ``dS = P * (dP - delta)`` with ``delta = rowsum(dO * O)``. Compared with float64
    autograd; hints recognize a forgotten ``delta`` and a forgotten ``1/sqrt(D)``.
    """
    name = "attention_backward"
    rng = np.random.default_rng(seed)
    shapes = [(1, 1, 4, 3), (5, 5, 8, 8), (7, 7, 16, 4), (3, 10, 8, 5), (16, 16, 32, 16)]
    worst = 0.0
    for tq, tk, d, dv in shapes:
        case = f"Tq={tq}, Tk={tk}, D={d}, Dv={dv}"
        q, k = rng.standard_normal((tq, d)), rng.standard_normal((tk, d))
        v, do = rng.standard_normal((tk, dv)), rng.standard_normal((tq, dv))
        o, lse, *expected = attention_backward_reference(q, k, v, do)
        try:
            got = fn(q.copy(), k.copy(), v.copy(), o.copy(), lse.copy(), do.copy())
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            return _report(False, name, f"{case}: return the tuple (dq, dk, dv), got {type(got).__name__}", quiet)
        for label, g, e in zip(("dq", "dk", "dv"), got, expected):
            problem, err = _compare(g, e)
            if problem is not None:
                hint = ""
                for forget, text in (("delta", "dS = P * (dP - delta) with delta = rowsum(dO * O): the softmax's "
                                               "Jacobian subtracts the row's weighted mean of dP"),
                                     ("scale", "the scores are q k^T / sqrt(D): dq and dk carry the factor 1/sqrt(D)")):
                    wrong = _backward_wrong(q, k, v, o, lse, do, forget=forget)
                    if all(_matches(a, b) for a, b in zip(got, wrong)):
                        hint = f" Hint: {text}."
                return _report(False, name, f"{case}: {label}: {problem}.{hint}", quiet)
            worst = max(worst, err)
    return _report(True, name, f"{len(shapes)} shapes (one query, a cache with Tq < Tk), max |err| = {worst:.1e}",
                   quiet)
