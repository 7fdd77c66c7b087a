"""Linear attention with decay: the bridge from Chapter 4's additive state to Chapter 6's gates.

Chapter 4's linear attention keeps a state ``S_t = S_{t-1} + k_t v_tᵀ`` that only ever grows;
Chapter 6's RG-LRU keeps a vector ``h_t = a_t ⊙ h_{t-1} + b_t`` that forgets. Both are special
cases of one recurrence with a *gate* ``G_t`` (a ``Dk × Dv`` matrix, applied elementwise):

    S_t = G_t ⊙ S_{t-1} + k_t v_tᵀ,        o_t = S_tᵀ q_t.

The gate's structure names the model family (the output is not normalized, as in all of them):

- ``G = 1`` (no decay; ``alpha=None, beta=None``): linear attention, unnormalized
  (Katharopoulos et al., Chapter 4);
- ``G = γ``, fixed per head (``alpha`` of shape ``(..., T)``, constant over ``T``): RetNet
  (Sun et al., 2023);
- ``G = a_t``, one data-dependent scalar per step (``alpha`` of shape ``(..., T)``): Mamba-2 / SSD
  (Dao & Gu, 2024);
- ``G = α_t 1ᵀ``, one decay per key channel (``alpha`` of shape ``(..., T, Dk)``): GLA
  (Yang et al., 2024);
- ``G = α_t β_tᵀ``, an outer product (``alpha`` and ``beta`` of shape ``(..., T, Dv)``): GLA's
  general form;
- ``G = 1 a_tᵀ`` with ``Dk = 1`` (``beta = a``, ``q = k = 1``): the RG-LRU's scan (Chapter 6).

Because the gate is a rank-one outer product, products of gates factor:
``G_{j+1} ⊙ … ⊙ G_i = (Π α)(Π β)ᵀ``. That gives the same three forms as Chapter 4:

- **recurrent**: the loop above (O(T) time, state ``Dk × Dv``);
- **parallel**: ``o_i = Σ_{j≤i} [Σ_d q_i[d] k_j[d] A_{ij}[d]] · v_j ⊙ B_{ij}`` with the decays
  ``A_{ij} = Π_{t=j+1..i} α_t`` and ``B_{ij} = Π_{t=j+1..i} β_t``, computed in log space;
- **chunked**: the parallel form inside chunks of ``chunk_size`` tokens, the recurrent state
  carried (and decayed) between them, as GLA's and Mamba-2's kernels do.

Gates must lie in ``(0, 1]``: the parallel and chunked forms take their logarithms (a gate of 0,
a hard reset, is the limit; model code clamps it). All computation is float64.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["DECAY_FORMS", "decay_linear_attention", "retnet_decays"]

#: The forms :func:`decay_linear_attention` computes; they agree to float64 rounding.
DECAY_FORMS = ("recurrent", "parallel", "chunked")


def retnet_decays(n_heads: int) -> np.ndarray:
    """RetNet's fixed per-head decays ``γ_h = 1 - 2^(-5-h)``, ``h = 0 … n_heads-1`` (Sun et al.,
    2023, arXiv:2307.08621): head 0 forgets fastest (``γ ≈ 0.969``, a horizon of about 32 tokens),
    each next head remembers about twice as long.

    Returns:
        ``(n_heads,)`` float64.
    """
    if isinstance(n_heads, bool) or not isinstance(n_heads, (int, np.integer)) or n_heads < 1:
        raise ValueError(f"n_heads must be a positive int, got {n_heads!r}")
    return 1.0 - 2.0 ** (-5.0 - np.arange(int(n_heads), dtype=np.float64))


def _float64(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a real array, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _log_gate(gate: Optional[ArrayLike], name: str, lead: tuple[int, ...], T: int, width: int) -> np.ndarray:
    """``log`` of a gate broadcast to ``(*lead, T, width)``; a missing gate is ``0`` (no decay)."""
    if gate is None:
        return np.zeros(lead + (T, width))
    g = _float64(gate, name)
    if g.shape == lead + (T,):  # scalar per step: the same decay for every channel
        g = np.broadcast_to(g[..., None], lead + (T, width))
    elif g.shape != lead + (T, width):
        raise ValueError(
            f"{name} must have shape {lead + (T,)} (a scalar gate per step) or {lead + (T, width)} "
            f"(one gate per channel), got shape {g.shape}"
        )
    if not np.all(np.isfinite(g)) or np.any(g <= 0) or np.any(g > 1):
        raise ValueError(f"{name} must lie in (0, 1] (a decay), got values in [{g.min()}, {g.max()}]")
    return np.log(g)


def _recurrent(q, k, v, la, lb, S):
    T = q.shape[-2]
    out = np.empty(q.shape[:-1] + (v.shape[-1],))
    for t in range(T):
        gate = np.exp(la[..., t, :, None] + lb[..., t, None, :])  # (..., Dk, Dv)
        S = gate * S + k[..., t, :, None] * v[..., t, None, :]
        out[..., t, :] = np.einsum("...d,...de->...e", q[..., t, :], S)
    return out, S


def _parallel_block(q, k, v, La, Lb):
    """Causal decayed attention inside one block, from the block's inclusive log-cumsums."""
    T = q.shape[-2]
    causal = np.tril(np.ones((T, T), dtype=bool))
    # log A_ij[d] = La_i[d] - La_j[d] (<= 0 for j <= i); masked before exp so nothing overflows.
    la = np.where(causal[..., None], La[..., :, None, :] - La[..., None, :, :], -np.inf)
    scores = np.einsum("...id,...jd,...ijd->...ij", q, k, np.exp(la))
    lb = np.where(causal[..., None], Lb[..., :, None, :] - Lb[..., None, :, :], -np.inf)
    return np.einsum("...ij,...je,...ije->...ie", scores, v, np.exp(lb))


def _chunked(q, k, v, la, lb, S, chunk):
    T = q.shape[-2]
    out = np.empty(q.shape[:-1] + (v.shape[-1],))
    for start in range(0, T, chunk):
        sl = slice(start, min(start + chunk, T))
        La, Lb = np.cumsum(la[..., sl, :], axis=-2), np.cumsum(lb[..., sl, :], axis=-2)
        qc, kc, vc = q[..., sl, :], k[..., sl, :], v[..., sl, :]
        # carried state, decayed from the chunk's start to each position i
        inter = np.einsum("...id,...de->...ie", qc * np.exp(La), S) * np.exp(Lb)
        out[..., sl, :] = inter + _parallel_block(qc, kc, vc, La, Lb)
        # state after the chunk: old state decayed over the whole chunk + decayed contributions
        La_end, Lb_end = La[..., -1:, :], Lb[..., -1:, :]
        S = (np.exp(La_end[..., 0, :, None] + Lb_end[..., 0, None, :]) * S
             + np.einsum("...jd,...je->...de", kc * np.exp(La_end - La), vc * np.exp(Lb_end - Lb)))
    return out, S


def decay_linear_attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    alpha: Optional[ArrayLike] = None,
    beta: Optional[ArrayLike] = None,
    *,
    form: str = "recurrent",
    chunk_size: int = 16,
    initial_state: Optional[ArrayLike] = None,
    return_state: bool = False,
):
    """Linear attention with a decaying state: ``S_t = (α_t β_tᵀ) ⊙ S_{t-1} + k_t v_tᵀ``,
    ``o_t = S_tᵀ q_t`` (see the module docstring for which gate is which model).

    Args:
        q: ``(..., T, Dk)`` queries (feature map already applied, if any).
        k: ``(..., T, Dk)`` keys, the same shape as ``q``.
        v: ``(..., T, Dv)`` values, the same leading dims and ``T``.
        alpha: key-side decay in ``(0, 1]``: ``(..., T)`` (one scalar per step: RetNet, Mamba-2),
            ``(..., T, Dk)`` (per key channel: GLA), or None (no decay).
        beta: value-side decay in ``(0, 1]``: ``(..., T)`` or ``(..., T, Dv)``, or None.
        form: ``"recurrent"``, ``"parallel"`` or ``"chunked"`` (:data:`DECAY_FORMS`).
        chunk_size: tokens per chunk for ``form="chunked"`` (any ``T``; the last chunk may be short).
        initial_state: ``(..., Dk, Dv)`` state before step 0 (zeros if None); not allowed with
            ``form="parallel"``.
        return_state: also return the final state ``(..., Dk, Dv)``.

    Returns:
        ``o (..., T, Dv)`` float64, and the final state when ``return_state``.

    Raises:
        ValueError: shapes, a gate outside ``(0, 1]``, an unknown ``form``, ``chunk_size < 1``.
        TypeError: non-numeric input.
    """
    q, k, v = _float64(q, "q"), _float64(k, "k"), _float64(v, "v")
    if q.ndim < 2 or q.shape[-2] < 1 or q.shape[-1] < 1:
        raise ValueError(f"q must have shape (..., T, Dk) with T, Dk >= 1, got shape {q.shape}")
    if k.shape != q.shape:
        raise ValueError(f"k must have the same shape as q {q.shape}, got shape {k.shape}")
    if v.ndim != q.ndim or v.shape[:-1] != q.shape[:-1] or v.shape[-1] < 1:
        raise ValueError(f"v must have shape {q.shape[:-1] + ('Dv',)} (q's leading dims and T), got shape {v.shape}")
    if form not in DECAY_FORMS:
        raise ValueError(f"form must be one of {list(DECAY_FORMS)}, got {form!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    lead, T, Dk, Dv = q.shape[:-2], q.shape[-2], q.shape[-1], v.shape[-1]
    la = _log_gate(alpha, "alpha", lead, T, Dk)
    lb = _log_gate(beta, "beta", lead, T, Dv)
    if initial_state is None:
        S = np.zeros(lead + (Dk, Dv))
    else:
        if form == "parallel":
            raise ValueError("initial_state needs form='recurrent' or 'chunked' (the parallel form starts from zero)")
        S = _float64(initial_state, "initial_state")
        if S.shape != lead + (Dk, Dv):
            raise ValueError(f"initial_state must have shape {lead + (Dk, Dv)}, got shape {S.shape}")
    if form == "recurrent":
        out, S = _recurrent(q, k, v, la, lb, S)
    elif form == "chunked":
        out, S = _chunked(q, k, v, la, lb, S, int(chunk_size))
    else:
        out = _parallel_block(q, k, v, np.cumsum(la, axis=-2), np.cumsum(lb, axis=-2))
        if return_state:
            _, S = _chunked(q, k, v, la, lb, S, T)
    return (out, S) if return_state else out
