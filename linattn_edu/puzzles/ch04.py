"""Chapter 4's Triton puzzles: the chunked linear-attention forward, then its backward (dK, dV).

The kernels compute the *numerator* of causal linear attention on feature-mapped queries and keys,
``o_i = Σ_{j ≤ i} (φq_i · φk_j) v_j`` (the package's launchers divide by the denominator outside
the kernel, the same way). Shapes: ``q, k: (BH, T, F)``, ``v, o: (BH, T, DV)``, float32.
One program per batch·head walks the chunks in order, carrying the ``F × DV`` state in registers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._common import SENTINEL, Case, Mistake, draw_case, guarded, run_checker

__all__ = [
    "linear_attention_spec", "linear_attention_chunks", "launch_linear_attention_forward",
    "check_linear_attention_forward", "draw_linear_attention_forward",
    "linear_attention_backward_spec", "launch_linear_attention_backward",
    "check_linear_attention_backward", "draw_linear_attention_backward",
]

NAN = float("nan")
#: Chunk length the launchers use (``tl.dot`` wants tile sides >= 16).
CHUNK = 16


def _solution(name: str) -> Any:
    from . import _solutions

    return getattr(_solutions, name)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def linear_attention_spec(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Causal linear-attention numerator ``o = (q kᵀ ∘ M) v`` with ``M`` lower triangular (diagonal included).

    ``q, k: (BH, T, F)``, ``v: (BH, T, DV)`` → ``(BH, T, DV)``, float64.
    """
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    t = q.shape[-2]
    return np.where(np.tril(np.ones((t, t), dtype=bool)), q @ np.swapaxes(k, -1, -2), 0.0) @ v


def linear_attention_chunks(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, chunk: int = CHUNK,
                            diagonal: bool = True, carry: bool = True, update_first: bool = False) -> np.ndarray:
    """The chunked forward in NumPy, with switches that reproduce typical bugs.

    ``diagonal=False`` masks ``j < i`` inside a chunk, ``carry=False`` drops the state,
    ``update_first=True`` adds the chunk's own ``kᵀv`` to the state before using it. Shapes as
    :func:`linear_attention_spec`.
    """
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    bh, t, f = q.shape
    out = np.zeros((bh, t, v.shape[-1]))
    for h in range(bh):
        state = np.zeros((f, v.shape[-1]))
        for c0 in range(0, t, chunk):
            sl = slice(c0, min(c0 + chunk, t))
            n = sl.stop - sl.start
            tri = np.tril(np.ones((n, n), dtype=bool), k=0 if diagonal else -1)
            if update_first:
                state = state + k[h, sl].T @ v[h, sl]
            out[h, sl] = np.where(tri, q[h, sl] @ k[h, sl].T, 0.0) @ v[h, sl] + (q[h, sl] @ state if carry else 0.0)
            if not update_first:
                state = state + k[h, sl].T @ v[h, sl]
    return out


def _check_layouts(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor) -> None:
    if q.stride() != k.stride() or q.shape != k.shape:
        raise ValueError(f"q and k must share shape and strides, got {tuple(q.shape)}/{q.stride()} and {tuple(k.shape)}/{k.stride()}")
    if v.stride() != o.stride() or v.shape != o.shape:
        raise ValueError(f"v and o must share shape and strides, got {tuple(v.shape)}/{v.stride()} and {tuple(o.shape)}/{o.stride()}")


def launch_linear_attention_forward(kernel: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                    o: torch.Tensor, *, chunk: int = CHUNK) -> None:
    """Run ``kernel[(BH,)](q, k, v, o, T, stride_qh, stride_qt, stride_vh, stride_vt, CHUNK, F, DV)``.

    ``q, k: (BH, T, F)`` sharing strides; ``v, o: (BH, T, DV)`` sharing strides; unit last strides.
    """
    _check_layouts(q, k, v, o)
    bh, t, f = q.shape
    kernel[(bh,)](q, k, v, o, t, q.stride(0), q.stride(1), v.stride(0), v.stride(1), CHUNK=chunk, F=f, DV=v.shape[-1])


def _tensors(p: tuple[int, int], names: str, dev: torch.device) -> tuple[list, dict]:
    bh, t = p
    f, dv = 16, 32
    gen = torch.Generator().manual_seed(bh * 31 + t)
    bufs = []
    for nm in names:
        width = f if nm in ("q", "k") else dv
        values = torch.randn(bh, t, width, generator=gen) * 0.5
        bufs.append(guarded(nm, (bh, t, width), fill=NAN, pad=(0, CHUNK, 0), values=values, device=dev))
    return bufs, {b.name: _np(b.view) for b in bufs}


def _fwd_case(p: tuple[int, int], dev: torch.device) -> Case:
    (q, k, v), data = _tensors(p, "qkv", dev)
    o = guarded("o", tuple(v.view.shape), fill=SENTINEL, pad=(0, CHUNK, 0), device=dev)
    return Case(f"BH={p[0]}, T={p[1]}, F=16, DV=32, CHUNK={CHUNK}",
                lambda kern: launch_linear_attention_forward(kern, q.view, k.view, v.view, o.view), [o],
                {"o": linear_attention_spec(data["q"], data["k"], data["v"])}, data, [q, k, v])


def _fwd_variant(**kw: Any):
    return lambda d: {"o": linear_attention_chunks(d["q"], d["k"], d["v"], **kw)}


def check_linear_attention_forward(kernel: Any, *, quiet: bool = False) -> bool:
    """Check ``kernel(q_ptr, k_ptr, v_ptr, o_ptr, T, stride_qh, stride_qt, stride_vh, stride_vt, CHUNK, F, DV)``.

    Grid ``(BH,)``; ``CHUNK = F = 16``, ``DV = 32``; ``T`` not a multiple of ``CHUNK``; rows past ``T``
    are guard cells. Recognises a strict intra-chunk mask, a state that is not carried, and a state
    updated before the chunk's output is computed.
    """
    return run_checker(
        "linear_attention_forward", kernel, _fwd_case, [(1, 1), (2, 37), (1, 48)],
        mistakes=[
            Mistake("the diagonal is missing: inside a chunk query i sees keys j <= i", _fwd_variant(diagonal=False)),
            Mistake("the state is not carried: add q @ S, S = sum of k_jᵀ v_j over the earlier chunks", _fwd_variant(carry=False)),
            Mistake("the state was updated before this chunk's output: compute o with S of the earlier chunks, then S += kᵀ v",
                    _fwd_variant(update_first=True)),
        ],
        nan_hint="a row past T was read (nan × 0 is nan): mask the loads with rows < T (other=0.0)",
        store_hint="mask the store of o with rows < T",
        hint=lambda name, idx: "o_chunk = (q kᵀ masked to j <= i) @ v + q @ S; then S += kᵀ @ v",
        quiet=quiet,
    )


def draw_linear_attention_forward(kernel: Any = None, *, t: int = 40) -> Any:
    """Draw the rows the program of one head loads and stores at each chunk step (default: the reference)."""
    case = _fwd_case((1, t), torch.device("cpu"))
    return draw_case(kernel, _solution("linear_attn_fwd_kernel"), case, f"chunked linear attention forward, one head, T={t}, CHUNK={CHUNK}, one row per chunk step",
                     by_step=True)


# =============================================================================================
# Puzzle 4.2 — the backward: dK and dV
# =============================================================================================


def linear_attention_backward_spec(q: np.ndarray, k: np.ndarray, v: np.ndarray, do: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(dk, dv)`` of :func:`linear_attention_spec` for the upstream gradient ``do: (BH, T, DV)``.

    ``dv_j = Σ_{i ≥ j} (q_i · k_j) do_i`` and ``dk_j = Σ_{i ≥ j} (do_i · v_j) q_i``: the same sums
    over *later* queries (anticausal), so a kernel walks the chunks from the last to the first.
    """
    q, k, v, do = (np.asarray(t, dtype=np.float64) for t in (q, k, v, do))
    t = q.shape[-2]
    upper = np.triu(np.ones((t, t), dtype=bool))  # [j, i]: i >= j
    kq = np.where(upper, k @ np.swapaxes(q, -1, -2), 0.0)
    vdo = np.where(upper, v @ np.swapaxes(do, -1, -2), 0.0)
    return vdo @ q, kq @ do


def _bwd_chunks(d: dict, *, backwards: bool = True, anticausal: bool = True, update_first: bool = False) -> dict:
    q, k, v, do = d["q"], d["k"], d["v"], d["do"]
    bh, t, f = q.shape
    dk, dv = np.zeros_like(k), np.zeros_like(v)
    starts = list(range(0, t, CHUNK))
    for h in range(bh):
        g = np.zeros((f, v.shape[-1]))
        for c0 in (starts[::-1] if backwards else starts):
            sl = slice(c0, min(c0 + CHUNK, t))
            n = sl.stop - sl.start
            m = np.triu(np.ones((n, n), dtype=bool)) if anticausal else np.tril(np.ones((n, n), dtype=bool))
            if update_first:
                g = g + q[h, sl].T @ do[h, sl]
            dv[h, sl] = np.where(m, k[h, sl] @ q[h, sl].T, 0.0) @ do[h, sl] + k[h, sl] @ g
            dk[h, sl] = np.where(m, v[h, sl] @ do[h, sl].T, 0.0) @ q[h, sl] + v[h, sl] @ g.T
            if not update_first:
                g = g + q[h, sl].T @ do[h, sl]
    return {"dk": dk, "dv": dv}


def launch_linear_attention_backward(kernel: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                     do: torch.Tensor, dk: torch.Tensor, dv: torch.Tensor, *, chunk: int = CHUNK) -> None:
    """Run ``kernel[(BH,)](q, k, v, do, dk, dv, T, stride_qh, stride_qt, stride_vh, stride_vt, CHUNK, F, DV)``.

    ``q, k, dk: (BH, T, F)`` sharing strides; ``v, do, dv: (BH, T, DV)`` sharing strides.
    """
    _check_layouts(q, k, v, do)
    _check_layouts(q, dk, v, dv)
    bh, t, f = q.shape
    kernel[(bh,)](q, k, v, do, dk, dv, t, q.stride(0), q.stride(1), v.stride(0), v.stride(1),
                  CHUNK=chunk, F=f, DV=v.shape[-1])


def _bwd_case(p: tuple[int, int], dev: torch.device) -> Case:
    (q, k, v, do), data = _tensors(p, ["q", "k", "v", "do"], dev)
    dk = guarded("dk", tuple(k.view.shape), fill=SENTINEL, pad=(0, CHUNK, 0), device=dev)
    dv = guarded("dv", tuple(v.view.shape), fill=SENTINEL, pad=(0, CHUNK, 0), device=dev)
    dk_ref, dv_ref = linear_attention_backward_spec(data["q"], data["k"], data["v"], data["do"])
    return Case(f"BH={p[0]}, T={p[1]}, F=16, DV=32, CHUNK={CHUNK}",
                lambda kern: launch_linear_attention_backward(kern, q.view, k.view, v.view, do.view, dk.view, dv.view),
                [dk, dv], {"dk": dk_ref, "dv": dv_ref}, data, [q, k, v, do])


def check_linear_attention_backward(kernel: Any, *, quiet: bool = False) -> bool:
    """Check ``kernel(q_ptr, k_ptr, v_ptr, do_ptr, dk_ptr, dv_ptr, T, stride_qh, stride_qt, stride_vh, stride_vt, CHUNK, F, DV)``.

    Grid ``(BH,)``; the program walks the chunks from the last to the first, carrying
    ``G = Σ q_iᵀ do_i`` over the later chunks. Recognises a causal (instead of anticausal) intra-chunk
    mask, chunks walked forwards, and ``G`` updated before use.
    """
    return run_checker(
        "linear_attention_backward", kernel, _bwd_case, [(1, 1), (2, 37), (1, 48)],
        mistakes=[
            Mistake("inside a chunk key j receives gradient from queries i >= j: mask [j, i] with i >= j (anticausal), not i <= j",
                    lambda d: _bwd_chunks(d, anticausal=False)),
            Mistake("the chunks were walked forwards: the carried G must sum the LATER chunks, so start at the last chunk",
                    lambda d: _bwd_chunks(d, backwards=False)),
            Mistake("G was updated before this chunk's gradients: use G of the later chunks, then G += qᵀ do",
                    lambda d: _bwd_chunks(d, update_first=True)),
        ],
        nan_hint="a row past T was read: mask every load with rows < T (other=0.0); the first chunk you visit is the partial one",
        store_hint="mask the stores of dk and dv with rows < T",
        hint=lambda name, idx: "dv = (k qᵀ masked i >= j) @ do + k @ G;  dk = (v doᵀ masked i >= j) @ q + v @ Gᵀ",
        quiet=quiet,
    )


def draw_linear_attention_backward(kernel: Any = None, *, t: int = 40) -> Any:
    """Draw the rows the program of one head loads and stores at each chunk step, last chunk first."""
    case = _bwd_case((1, t), torch.device("cpu"))
    return draw_case(kernel, _solution("linear_attn_bwd_kernel"), case, f"chunked linear attention backward, T={t}, CHUNK={CHUNK}, one row per chunk step",
                     by_step=True)
