"""Chapter 2's Triton puzzles: vector add → row softmax → tiled matmul → FlashAttention forward → dS.

Per puzzle: a spec (NumPy, float64), a launcher that runs a reader's ``@triton.jit`` kernel with the
grid and block sizes the skeleton documents, a checker ``check_*`` (prints ✓/✗ with the max error,
the first wrong index and a hint; returns a bool; never raises) and a drawing ``draw_*`` of which
elements each program instance loads and stores, recorded under the Triton interpreter.

Shapes: attention tensors are ``(BH, T, D)`` (batch and heads flattened), float32, causal.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ._common import SENTINEL, Case, Mistake, draw_case, guarded, next_pow2, record, run_checker

__all__ = [
    "add_spec", "launch_add", "check_add", "draw_add",
    "softmax_spec", "launch_softmax", "check_softmax", "draw_softmax",
    "matmul_spec", "launch_matmul", "check_matmul", "draw_matmul",
    "flash_forward_spec", "flash_forward_blocks", "launch_flash_forward", "check_flash_forward", "draw_flash_forward",
    "flash_ds_spec", "flash_bwd_stats", "launch_flash_ds", "check_flash_ds", "draw_flash_ds",
]

NAN = float("nan")


def _solution(name: str) -> Any:
    from . import _solutions

    return getattr(_solutions, name)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _cdiv(a: int, b: int) -> int:
    """``ceil(a / b)`` for positive ints, as ``triton.cdiv`` (without importing Triton)."""
    return -(-a // b)


def _randn(gen: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=gen) * scale


# =============================================================================================
# Puzzle 2.1 — vector add with a mask
# =============================================================================================


def add_spec(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x + y`` for 1-D arrays ``x, y: (n,)``."""
    return np.asarray(x, dtype=np.float64) + np.asarray(y, dtype=np.float64)


def launch_add(kernel: Any, x: torch.Tensor, y: torch.Tensor, out: torch.Tensor, *, block: int = 32) -> None:
    """Run ``kernel[(cdiv(n, block),)](x, y, out, n, BLOCK=block)``; ``x, y, out: (n,)``."""
    n = x.shape[0]
    kernel[(_cdiv(n, block),)](x, y, out, n, BLOCK=block)


def _add_case(p: tuple[int, int], dev: torch.device) -> Case:
    n, block = p
    gen = torch.Generator().manual_seed(n)
    x = guarded("x", (n,), fill=NAN, pad=(block,), values=_randn(gen, n), device=dev)
    y = guarded("y", (n,), fill=NAN, pad=(block,), values=_randn(gen, n), device=dev)
    out = guarded("out", (n,), fill=SENTINEL, pad=(block,), device=dev)
    return Case(
        f"n={n}, BLOCK={block}", lambda k: launch_add(k, x.view, y.view, out.view, block=block), [out],
        {"out": add_spec(_np(x.view), _np(y.view))}, inputs=[x, y],
    )


def check_add(kernel: Any, *, quiet: bool = False) -> bool:
    """Check ``kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr)``: ``out[i] = x[i] + y[i]`` for ``i < n``.

    One program per ``BLOCK`` elements; ``n`` not a multiple of ``BLOCK``; guard cells after each tensor.
    """
    return run_checker(
        "add", kernel, _add_case, [(1, 16), (37, 16), (64, 32), (200, 64)],
        store_hint="the last program's offsets run past n: mask the store (and the loads) with offs < n",
        nan_hint="a load read past n: mask the loads with offs < n",
        hint=lambda name, idx: "offsets are pid * BLOCK + tl.arange(0, BLOCK)",
        quiet=quiet,
    )


def draw_add(kernel: Any = None, *, n: int = 37, block: int = 16) -> Any:
    """Draw the loads/stores of each program of ``kernel`` (default: the reference) on ``n`` elements."""
    case = _add_case((n, block), torch.device("cpu"))
    return draw_case(kernel, _solution("add_kernel"), case, f"vector add, n={n}, BLOCK={block}")


# =============================================================================================
# Puzzle 2.2 — row softmax
# =============================================================================================


def softmax_spec(x: np.ndarray) -> np.ndarray:
    """Softmax of each row of ``x: (rows, n_cols)`` (max-shifted, float64)."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def launch_softmax(kernel: Any, x: torch.Tensor, out: torch.Tensor) -> None:
    """Run ``kernel[(rows,)](x, out, n_cols, x.stride(0), out.stride(0), BLOCK_N=next_pow2(n_cols))``."""
    rows, n_cols = x.shape
    kernel[(rows,)](x, out, n_cols, x.stride(0), out.stride(0), BLOCK_N=next_pow2(n_cols))


def _softmax_case(p: tuple[int, int], dev: torch.device) -> Case:
    rows, cols = p
    gen = torch.Generator().manual_seed(rows * 100 + cols)
    values = _randn(gen, rows, cols, scale=3.0)
    if rows > 3:
        values[0] += 1000.0  # exp overflows float32 without the max shift
    x = guarded("x", (rows, cols), fill=NAN, pad=(1, 5), values=values, device=dev)
    out = guarded("out", (rows, cols), fill=SENTINEL, pad=(1, 3), device=dev)
    data = {"x": _np(x.view)}
    return Case(f"{rows}x{cols}", lambda k: launch_softmax(k, x.view, out.view), [out], {"out": softmax_spec(data["x"])}, data, [x])


def _softmax_zero_padded(d: dict) -> dict:
    x = d["x"]
    block = next_pow2(x.shape[1])
    padded = np.concatenate([x, np.zeros((x.shape[0], block - x.shape[1]))], axis=1)
    return {"out": softmax_spec(padded)[:, : x.shape[1]]}


def check_softmax(kernel: Any, *, quiet: bool = False) -> bool:
    """Check ``kernel(x_ptr, out_ptr, n_cols, stride_x, stride_out, BLOCK_N: tl.constexpr)``.

    One program per row; ``BLOCK_N`` is the power of two ``>= n_cols`` (at least 16), so the padding
    columns must be masked; rows are ``stride_x`` apart (not ``n_cols``); one row sits near 1000.
    """
    return run_checker(
        "softmax", kernel, _softmax_case, [(1, 1), (3, 7), (2, 16), (4, 100)],
        mistakes=[Mistake("the padding columns were loaded as 0 and counted in the sum: load them with other=-inf",
                          _softmax_zero_padded)],
        nan_hint="inf/nan: subtract the row max before tl.exp, and load the padding columns with other=-inf",
        store_hint="mask the store with cols < n_cols",
        hint=lambda name, idx: ("row 0 is right but a later row is not: rows start at row * stride_x" if idx[0] > 0
                                else "softmax = exp(x - max) / sum(exp(x - max)) over the n_cols valid columns"),
        quiet=quiet,
    )


def draw_softmax(kernel: Any = None, *, rows: int = 4, n_cols: int = 11) -> Any:
    """Draw the loads/stores of each program (one per row) of ``kernel`` (default: the reference)."""
    case = _softmax_case((rows, n_cols), torch.device("cpu"))
    return draw_case(kernel, _solution("softmax_kernel"), case, f"row softmax, {rows}x{n_cols}, BLOCK_N={next_pow2(n_cols)}")


# =============================================================================================
# Puzzle 2.3 — tiled matmul
# =============================================================================================


def matmul_spec(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for ``a: (M, K)``, ``b: (K, N)`` (float64)."""
    return np.asarray(a, dtype=np.float64) @ np.asarray(b, dtype=np.float64)


def launch_matmul(kernel: Any, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, *,
                  block_m: int = 16, block_n: int = 16, block_k: int = 16) -> None:
    """Run ``kernel[(cdiv(M, BLOCK_M), cdiv(N, BLOCK_N))](a, b, c, M, N, K, <6 strides>, BLOCK_M, BLOCK_N, BLOCK_K)``."""
    (m, k), n = a.shape, b.shape[1]
    grid = (_cdiv(m, block_m), _cdiv(n, block_n))
    kernel[grid](a, b, c, m, n, k, a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1),
                 BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k)


def _matmul_case(p: tuple[int, int, int], dev: torch.device) -> Case:
    m, n, k = p
    gen = torch.Generator().manual_seed(m * 7 + n * 3 + k)
    a = guarded("a", (m, k), fill=NAN, pad=(16, 16), values=_randn(gen, m, k), device=dev)
    b = guarded("b", (k, n), fill=NAN, pad=(16, 16), values=_randn(gen, k, n), device=dev)
    c = guarded("c", (m, n), fill=SENTINEL, pad=(16, 16), device=dev)
    data = {"a": _np(a.view), "b": _np(b.view)}
    return Case(f"M={m}, N={n}, K={k}", lambda kern: launch_matmul(kern, a.view, b.view, c.view), [c],
                {"c": matmul_spec(data["a"], data["b"])}, data, [a, b])


def _matmul_last_k_block(d: dict) -> dict:
    a, b = d["a"], d["b"]
    k0 = ((a.shape[1] - 1) // 16) * 16
    return {"c": a[:, k0:] @ b[k0:]}


def check_matmul(kernel: Any, *, quiet: bool = False) -> bool:
    """Check ``kernel(a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn, BLOCK_M, BLOCK_N, BLOCK_K)``.

    Grid ``(cdiv(M, 16), cdiv(N, 16))``, blocks of 16; ``M``, ``N``, ``K`` not multiples of 16.
    """
    return run_checker(
        "matmul", kernel, _matmul_case, [(16, 16, 16), (37, 20, 45), (5, 33, 17)],
        mistakes=[Mistake("only the last K block counts: accumulate, acc += tl.dot(a, b)", _matmul_last_k_block)],
        nan_hint="a tile read past M, N or K: mask the loads (other=0.0) on both the row and the K index",
        store_hint="mask the store with (offs_m < M) & (offs_n < N)",
        hint=lambda name, idx: "loop k0 over range(0, K, BLOCK_K) and sum tl.dot of the A and B tiles",
        quiet=quiet,
    )


def draw_matmul(kernel: Any = None, *, m: int = 40, n: int = 24, k: int = 40) -> Any:
    """Draw which tiles of A, B and C each program of ``kernel`` (default: the reference) touches."""
    case = _matmul_case((m, n, k), torch.device("cpu"))
    return draw_case(kernel, _solution("matmul_kernel"), case, f"tiled matmul M={m}, N={n}, K={k}, blocks of 16")


# =============================================================================================
# Puzzle 2.4 — FlashAttention forward (causal)
# =============================================================================================


def flash_forward_spec(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """Causal softmax attention ``softmax(scale · q kᵀ + mask) v``; ``q, k, v: (BH, T, D)`` → ``(BH, T, D)``."""
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    s = scale * q @ np.swapaxes(k, -1, -2)
    t = q.shape[-2]
    s = np.where(np.tril(np.ones((t, t), dtype=bool)), s, -np.inf)
    return softmax_spec(s) @ v


def flash_forward_blocks(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, *, block_m: int = 16,
                         block_n: int = 16, diag: int = 0, rescale_l: bool = True, rescale_acc: bool = True) -> np.ndarray:
    """The tiled online-softmax forward in NumPy, with switches that reproduce typical bugs.

    ``diag`` shifts the causal mask (key ``j`` visible when ``j <= i + diag``; 0 is right),
    ``rescale_l=False`` forgets to rescale the running sum, ``rescale_acc=False`` the accumulator.
    Shapes as :func:`flash_forward_spec`.
    """
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    bh, t, d = q.shape
    # keys past T read as zeros (a masked load's other=0.0): visible only with a wrong mask
    length = -(-(-(-t // block_m) * block_m) // block_n) * block_n
    k = np.concatenate([k, np.zeros((bh, length - t, d))], axis=1)
    v = np.concatenate([v, np.zeros((bh, length - t, v.shape[-1]))], axis=1)
    out = np.zeros_like(q)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for h in range(bh):
            for m0 in range(0, t, block_m):
                rows = np.arange(m0, min(m0 + block_m, t))
                m_i, l_i, acc = np.full(rows.size, -np.inf), np.zeros(rows.size), np.zeros((rows.size, d))
                for n0 in range(0, m0 + block_m, block_n):
                    cols = np.arange(n0, n0 + block_n)
                    s = scale * q[h, rows] @ k[h, cols].T
                    s = np.where(cols[None, :] <= rows[:, None] + diag, s, -np.inf)
                    m_new = np.maximum(m_i, s.max(axis=1))
                    alpha = np.exp(m_i - m_new)
                    p = np.exp(s - m_new[:, None])
                    l_i = (l_i * alpha if rescale_l else l_i) + p.sum(axis=1)
                    acc = (acc * alpha[:, None] if rescale_acc else acc) + p @ v[h, cols]
                    m_i = m_new
                out[h, rows] = acc / l_i[:, None]
    return out


def _check_same_layout(*tensors: torch.Tensor) -> None:
    first = tensors[0]
    for t in tensors[1:]:
        if t.shape != first.shape or t.stride() != first.stride():
            raise ValueError(f"q, k, v, o must share shape and strides, got {tuple(t.shape)}/{t.stride()} "
                             f"and {tuple(first.shape)}/{first.stride()}")


def launch_flash_forward(kernel: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, *,
                         scale: float | None = None, block_m: int = 16, block_n: int = 16) -> None:
    """Run ``kernel[(cdiv(T, BLOCK_M), BH)](q, k, v, o, T, scale, stride_h, stride_t, BLOCK_M, BLOCK_N, D)``.

    ``q, k, v, o: (BH, T, D)`` with the same strides and a unit stride along ``D``.
    """
    _check_same_layout(q, k, v, o)
    bh, t, d = q.shape
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    kernel[(_cdiv(t, block_m), bh)](q, k, v, o, t, scale, q.stride(0), q.stride(1),
                                          BLOCK_M=block_m, BLOCK_N=block_n, D=d)


def _qkv(gen: torch.Generator, bh: int, t: int, d: int, names: str, dev: torch.device) -> list:
    return [guarded(nm, (bh, t, d), fill=NAN, pad=(0, 16, 0), values=_randn(gen, bh, t, d), device=dev) for nm in names]


def _flash_case(p: tuple[int, int], dev: torch.device) -> Case:
    bh, t = p
    d = 16
    gen = torch.Generator().manual_seed(bh * 1000 + t)
    q, k, v = _qkv(gen, bh, t, d, "qkv", dev)
    with torch.no_grad():
        q.view.mul_(2.0)  # sharper softmax: rescaling errors show
    o = guarded("o", (bh, t, d), fill=SENTINEL, pad=(0, 16, 0), device=dev)
    scale = 1.0 / math.sqrt(d)
    data = {"q": _np(q.view), "k": _np(k.view), "v": _np(v.view), "scale": scale}
    return Case(f"BH={bh}, T={t}, D={d}", lambda kern: launch_flash_forward(kern, q.view, k.view, v.view, o.view),
                [o], {"o": flash_forward_spec(data["q"], data["k"], data["v"], scale)}, data, [q, k, v])


def _flash_variant(**kw: Any):
    return lambda d: {"o": flash_forward_blocks(d["q"], d["k"], d["v"], d["scale"], **kw)}


_FLASH_MISTAKES = [
    Mistake("off-by-one causal mask: query i sees keys j <= i (the diagonal included), not j < i",
            _flash_variant(diag=-1)),
    Mistake("off-by-one causal mask: query i sees keys j <= i, not j <= i + 1", _flash_variant(diag=1)),
    Mistake("the running sum is not rescaled: l = l * exp(m_old - m_new) + rowsum(p)", _flash_variant(rescale_l=False)),
    Mistake("the accumulator is not rescaled: acc = acc * exp(m_old - m_new)[:, None] + p @ v",
            _flash_variant(rescale_acc=False)),
    Mistake("no causal mask: set the scores of keys j > i to -inf", _flash_variant(diag=10**9)),
    Mistake("no causal mask: set the scores of keys j > i to -inf", lambda d: {"o": _full_attention(d)}),
]


def _full_attention(d: dict) -> np.ndarray:
    s = d["scale"] * d["q"] @ np.swapaxes(d["k"], -1, -2)
    return softmax_spec(s) @ d["v"]


def _flash_skips_tiles(kernel: Any) -> str | None:
    """Re-run a one-head, T=64 problem under the interpreter: no K rows past a query block's last row."""
    case = _flash_case((1, 64), torch.device("cpu"))
    trace = record(kernel, case.launch, case.buffers())
    for pid in trace.programs():
        last_row = (pid[0] + 1) * 16 - 1
        rows = trace.rows_loaded("k", pid)
        if rows and max(rows) > last_row:
            return (f"values right, but program {pid[:2]} loaded K rows up to {max(rows)} while its last query is row "
                    f"{last_row}: skip the key tiles above the diagonal (loop start_n over range(0, (pid_m + 1) * BLOCK_M, BLOCK_N))")
    if not trace.loads.get("k"):
        return "could not record the kernel's loads of K under the interpreter"
    return None


def check_flash_forward(kernel: Any, *, quiet: bool = False) -> bool:
    """Check ``kernel(q_ptr, k_ptr, v_ptr, o_ptr, T, scale, stride_h, stride_t, BLOCK_M, BLOCK_N, D)``.

    Causal attention, grid ``(cdiv(T, 16), BH)``, ``D = 16``; ``T`` not a multiple of the block; the
    rows past ``T`` in every buffer are guard cells. Recognises an off-by-one causal mask, a running
    sum or accumulator that is not rescaled, unmasked tails, and (recorded under the interpreter)
    key tiles above the diagonal that causality lets the kernel skip.
    """
    return run_checker(
        "flash_forward", kernel, _flash_case, [(2, 37), (1, 1), (1, 50)],
        mistakes=_FLASH_MISTAKES,
        nan_hint="a K or V row past T was read (nan × 0 is nan): mask the K/V loads with offs_n < T (other=0.0)",
        store_hint="mask the store of O with offs_m < T",
        hint=lambda name, idx: "online softmax: m_new = max(m, rowmax(s)); alpha = exp(m - m_new); "
                               "l = l*alpha + rowsum(p); acc = acc*alpha + p @ v; o = acc / l",
        extra=_flash_skips_tiles,
        quiet=quiet,
    )


def draw_flash_forward(kernel: Any = None, *, t: int = 40) -> Any:
    """Draw which rows of Q, K, V and O each program of ``kernel`` (default: the reference) touches."""
    case = _flash_case((1, t), torch.device("cpu"))
    return draw_case(kernel, _solution("flash_fwd_kernel"), case, f"causal FlashAttention forward, T={t}, D=16, blocks of 16")


# =============================================================================================
# Puzzle 2.5 — the FlashAttention backward's dS
# =============================================================================================


def flash_bwd_stats(q: np.ndarray, k: np.ndarray, v: np.ndarray, do: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """``(lse, delta)``, each ``(BH, T)``: the natural log-sum-exp of each row of the causal
    scores ``scale · q kᵀ``, and ``delta_i = Σ_d dO_id O_id`` (= ``Σ_j P_ij dP_ij``)."""
    q, k, v, do = (np.asarray(t, dtype=np.float64) for t in (q, k, v, do))
    t = q.shape[-2]
    s = np.where(np.tril(np.ones((t, t), dtype=bool)), scale * q @ np.swapaxes(k, -1, -2), -np.inf)
    mx = s.max(axis=-1, keepdims=True)
    lse = (mx + np.log(np.exp(s - mx).sum(axis=-1, keepdims=True)))[..., 0]
    o = flash_forward_spec(q, k, v, scale)
    return lse, (do * o).sum(axis=-1)


def flash_ds_spec(q: np.ndarray, k: np.ndarray, v: np.ndarray, do: np.ndarray, scale: float) -> np.ndarray:
    """``dS = P ∘ (dP − δ)``: the gradient of the loss with respect to the scores ``S = scale · q kᵀ``.

    ``P = softmax(S + causal mask)``, ``dP = dO vᵀ``, ``δ_i = Σ_j P_ij dP_ij``. Inputs ``(BH, T, D)``;
    returns ``(BH, T, T)``, zero above the diagonal.
    """
    q, k, v, do = (np.asarray(t, dtype=np.float64) for t in (q, k, v, do))
    t = q.shape[-2]
    s = np.where(np.tril(np.ones((t, t), dtype=bool)), scale * q @ np.swapaxes(k, -1, -2), -np.inf)
    p = softmax_spec(s)
    dp = do @ np.swapaxes(v, -1, -2)
    delta = (p * dp).sum(axis=-1, keepdims=True)
    return p * (dp - delta)


def launch_flash_ds(kernel: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, do: torch.Tensor,
                    lse: torch.Tensor, delta: torch.Tensor, ds: torch.Tensor, *, scale: float | None = None,
                    block_m: int = 16, block_n: int = 16) -> None:
    """Run ``kernel[(cdiv(T, BLOCK_M), cdiv(T, BLOCK_N), BH)](q, k, v, do, lse, delta, ds, T, scale,
    stride_h, stride_t, stride_lh, stride_dsh, stride_dsm, BLOCK_M, BLOCK_N, D)``.

    ``q, k, v, do: (BH, T, D)`` sharing strides; ``lse, delta: (BH, T)`` sharing strides; ``ds: (BH, T, T)``.
    """
    _check_same_layout(q, k, v, do)
    bh, t, d = q.shape
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    grid = (_cdiv(t, block_m), _cdiv(t, block_n), bh)
    kernel[grid](q, k, v, do, lse, delta, ds, t, scale, q.stride(0), q.stride(1), lse.stride(0),
                 ds.stride(0), ds.stride(1), BLOCK_M=block_m, BLOCK_N=block_n, D=d)


def _ds_case(p: tuple[int, int], dev: torch.device) -> Case:
    bh, t = p
    d = 16
    gen = torch.Generator().manual_seed(bh * 77 + t)
    q, k, v, do = _qkv(gen, bh, t, d, ["q", "k", "v", "do"], dev)
    scale = 1.0 / math.sqrt(d)
    data = {n: _np(b.view) for n, b in zip(["q", "k", "v", "do"], (q, k, v, do))}
    data["scale"] = scale
    lse_np, delta_np = flash_bwd_stats(data["q"], data["k"], data["v"], data["do"], scale)
    lse = guarded("lse", (bh, t), fill=NAN, pad=(0, 16), values=torch.from_numpy(lse_np), device=dev)
    delta = guarded("delta", (bh, t), fill=NAN, pad=(0, 16), values=torch.from_numpy(delta_np), device=dev)
    ds = guarded("ds", (bh, t, t), fill=SENTINEL, pad=(0, 16, 16), device=dev)
    data.update(lse=lse_np, delta=delta_np)
    return Case(f"BH={bh}, T={t}, D={d}",
                lambda kern: launch_flash_ds(kern, q.view, k.view, v.view, do.view, lse.view, delta.view, ds.view),
                [ds], {"ds": flash_ds_spec(data["q"], data["k"], data["v"], data["do"], scale)}, data,
                [q, k, v, do, lse, delta])


def _ds_parts(d: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = d["q"].shape[-2]
    causal = np.tril(np.ones((t, t), dtype=bool))
    s = d["scale"] * d["q"] @ np.swapaxes(d["k"], -1, -2)
    p_all = np.exp(s - d["lse"][..., None])
    dp = d["do"] @ np.swapaxes(d["v"], -1, -2)
    return np.where(causal, p_all, 0.0), p_all, dp


_DS_MISTAKES = [
    Mistake("delta is missing: dS = P * (dP - delta[:, None]), not P * dP",
            lambda d: {"ds": _ds_parts(d)[0] * _ds_parts(d)[2]}),
    Mistake("sign: dS = P * (dP - delta), not P * (delta - dP)",
            lambda d: {"ds": -_ds_parts(d)[0] * (_ds_parts(d)[2] - d["delta"][..., None])}),
    Mistake("P is not causally masked: set P to 0 where key j > query i",
            lambda d: {"ds": _ds_parts(d)[1] * (_ds_parts(d)[2] - d["delta"][..., None])}),
]


def check_flash_ds(kernel: Any, *, quiet: bool = False) -> bool:
    """Check ``kernel(q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, ds_ptr, T, scale, stride_h, stride_t,
    stride_lh, stride_dsh, stride_dsm, BLOCK_M, BLOCK_N, D)``.

    One program per ``(query tile, key tile, head)``; writes the whole ``dS`` tile (zeros above the
    diagonal). ``lse`` is the natural log-sum-exp of each row of the causal scores.
    """
    return run_checker(
        "flash_ds", kernel, _ds_case, [(1, 1), (2, 37), (1, 20)],
        mistakes=_DS_MISTAKES,
        nan_hint="a row past T was read: mask the loads of q/dO/lse/delta with offs_m < T and k/v with offs_n < T",
        store_hint="mask the store with (offs_m < T) & (offs_n < T)",
        hint=lambda name, idx: "P = exp(scale * q kᵀ - lse[:, None]) (causal), dP = dO vᵀ, dS = P * (dP - delta[:, None])",
        quiet=quiet,
    )


def draw_flash_ds(kernel: Any = None, *, t: int = 40) -> Any:
    """Draw which tiles of the inputs and of dS each program of ``kernel`` (default: the reference) touches."""
    case = _ds_case((1, t), torch.device("cpu"))
    return draw_case(kernel, _solution("flash_bwd_ds_kernel"), case, f"FlashAttention backward dS, T={t}, tiles of 16",
                      names=["q", "k", "ds"])
