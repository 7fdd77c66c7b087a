"""Softmax attention in NumPy: the source of truth the rest of the book is checked against.

Everything here computes and returns ``float64``: readability and exactness over speed.
Layout is head-first, like :func:`torch.nn.functional.scaled_dot_product_attention`:
``q: (..., H, Tq, D)``, ``k: (..., H_kv, Tk, D)``, ``v: (..., H_kv, Tk, Dv)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..checks import check_bool, check_float, check_int
from ._common import as_float64

__all__ = [
    "softmax",
    "naive_softmax",
    "attention_mask",
    "repeat_kv",
    "softmax_attention",
    "kv_cache_bytes",
]


def naive_softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """``exp(x) / sum(exp(x))`` exactly as written: overflows to ``nan`` once ``x`` exceeds ~709.

    Kept only to show why :func:`softmax` subtracts the maximum first.
    """
    x = as_float64(x, "x")
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x)
        return e / e.sum(axis=axis, keepdims=True)


def softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``.

    Subtracting the row maximum changes nothing mathematically (softmax is shift-invariant) but
    keeps every ``exp`` argument <= 0, so nothing overflows. Entries equal to ``-inf`` (masked
    keys) get probability 0; a row that is entirely ``-inf`` raises ``ValueError``.
    """
    x = as_float64(x, "x")
    row_max = np.max(x, axis=axis, keepdims=True)
    if np.any(np.isneginf(row_max)):
        raise ValueError("softmax: a row has no finite entry (every key is masked)")
    e = np.exp(x - row_max)
    return e / e.sum(axis=axis, keepdims=True)


def attention_mask(
    q_len: int, k_len: int | None = None, *, causal: bool = True, window: int | None = None
) -> np.ndarray:
    """Which keys each query may see: a ``(Tq, Tk)`` boolean array (True = visible).

    Queries sit at the *end* of the keys: query ``i`` is at position ``Tk - Tq + i`` (this is
    decoding with a cache when ``Tq < Tk``). Causal: key ``j`` is visible when ``j <= pos(i)``.
    Sliding window of size ``w``: additionally ``pos(i) - w < j`` (``w`` keys, the current one
    included).
    """
    q_len = check_int(q_len, "q_len", minimum=1)
    k_len = q_len if k_len is None else check_int(k_len, "k_len", minimum=1)
    causal = check_bool(causal, "causal")
    if window is not None:
        window = check_int(window, "window", minimum=1)
        if not causal:
            raise ValueError("window requires causal=True (it is a causal sliding window)")
    if not causal:
        return np.ones((q_len, k_len), dtype=bool)
    if q_len > k_len:
        raise ValueError(
            f"causal attention needs q_len <= k_len (queries are the last keys), got {q_len} > {k_len}"
        )
    pos_q = np.arange(q_len)[:, None] + (k_len - q_len)
    pos_k = np.arange(k_len)[None, :]
    mask = pos_k <= pos_q
    if window is not None:
        mask &= pos_k > pos_q - window
    return mask


def repeat_kv(x: ArrayLike, n_rep: int) -> np.ndarray:
    """Expand ``(..., H_kv, T, D)`` to ``(..., H_kv * n_rep, T, D)`` for grouped-query attention.

    Query head ``h`` reads key/value head ``h // n_rep``: each KV head serves ``n_rep``
    consecutive query heads.
    """
    x = as_float64(x, "x")
    n_rep = check_int(n_rep, "n_rep", minimum=1)
    if x.ndim < 3:
        raise ValueError(f"x must have a head axis: (..., H_kv, T, D), got shape {x.shape}")
    return np.repeat(x, n_rep, axis=-3)


def _match_kv_heads(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Repeat K/V heads for MQA/GQA when q has more heads than k and v."""
    if q.ndim < 3 or k.ndim < 3 or q.shape[-3] == k.shape[-3]:
        return k, v
    h, h_kv = q.shape[-3], k.shape[-3]
    if v.ndim < 3 or v.shape[-3] != h_kv:
        raise ValueError(f"k and v must have the same number of heads, got {h_kv} and {v.shape[-3]}")
    if h % h_kv != 0:
        raise ValueError(
            f"q has {h} heads and k has {h_kv}: the query heads must be a multiple of the KV heads"
        )
    return repeat_kv(k, h // h_kv), repeat_kv(v, h // h_kv)


def softmax_attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    *,
    causal: bool = True,
    scale: float | None = None,
    bias: ArrayLike | None = None,
    window: int | None = None,
) -> np.ndarray:
    """Scaled dot-product attention, the O(T^2) way: ``softmax(q k^T * scale + bias) v``.

    Args:
        q: ``(..., Tq, D)`` queries; with a head axis ``(..., H, Tq, D)``.
        k: ``(..., Tk, D)`` keys; may have fewer heads ``(..., H_kv, Tk, D)`` with ``H % H_kv == 0``
            (multi-query / grouped-query attention: query head ``h`` reads KV head ``h // (H/H_kv)``).
        v: ``(..., Tk, Dv)`` values, with the same heads as ``k``.
        causal: query ``i`` sees keys ``j <= i``. When ``Tq < Tk`` the queries are the *last*
            ``Tq`` positions (decoding with a KV cache).
        scale: multiplies the scores; defaults to ``1 / sqrt(D)``.
        bias: added to the scores, broadcastable to ``(..., Tq, Tk)`` (e.g. ALiBi's distance
            penalty). Masked positions stay masked whatever the bias.
        window: sliding window ``w``: query ``i`` sees keys ``i - w < j <= i`` (needs ``causal``).

    Returns:
        ``(..., Tq, Dv)`` float64 outputs.

    Masked keys are never read: each query row multiplies only the values it may see, so a NaN
    or Inf in a (masked) future value or key stays out of earlier rows. Computing
    ``softmax(scores) @ v`` with masked probabilities 0 would not: ``0 · NaN = NaN``. PyTorch's
    ``scaled_dot_product_attention`` does (on the CPU, torch 2.x, a NaN in the last value turns
    every causal row into NaN), and so do the Triton kernels within a key tile, so this reference
    and those agree only for finite inputs.

    Raises:
        ValueError: shapes that do not fit together, ``D = 0``, a non-finite ``scale``, a bad
            ``window``, naming the argument.
        TypeError: a non-numeric input or a non-bool ``causal``.
    """
    q = as_float64(q, "q")
    k = as_float64(k, "k")
    v = as_float64(v, "v")
    for name, arr in (("q", q), ("k", k), ("v", v)):
        if arr.ndim < 2:
            raise ValueError(f"{name} must have shape (..., T, D), got shape {arr.shape}")
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(f"k must have the same last dim D as q ({q.shape[-1]}), got shape {k.shape}")
    if v.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"v must have as many positions as k ({k.shape[-2]}), got shape {v.shape} for k {k.shape}"
        )
    if q.shape[-1] < 1:
        raise ValueError(f"q must have a head dim D >= 1, got shape {q.shape}")
    causal = check_bool(causal, "causal")
    if scale is not None:
        scale = check_float(scale, "scale")
    k, v = _match_kv_heads(q, k, v)
    try:
        np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError as err:
        raise ValueError(
            f"q, k, v leading dims must broadcast: got {q.shape}, {k.shape}, {v.shape}"
        ) from err
    tq, tk, d = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1.0 / np.sqrt(d) if scale is None else float(scale)

    scores = np.einsum("...id,...jd->...ij", q, k) * scale
    if bias is not None:
        bias = as_float64(bias, "bias")
        try:
            fits = np.broadcast_shapes(bias.shape, scores.shape) == scores.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"bias must broadcast to the scores' shape {scores.shape}, got shape {bias.shape}"
            )
        scores = scores + bias
    mask = attention_mask(tq, tk, causal=causal, window=window)
    scores = np.where(mask, scores, -np.inf)
    return masked_matmul(softmax(scores, axis=-1), v, mask)


def masked_matmul(p: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``p @ v`` where query row ``i`` reads only the keys ``j`` with ``mask[i, j]``.

    ``p``: ``(..., Tq, Tk)``; ``v``: ``(..., Tk, Dv)``; ``mask``: ``(Tq, Tk)`` bool. Equal to
    ``(p * mask) @ v`` for finite inputs, but a NaN/Inf in a masked entry of ``p`` or in a masked
    value cannot reach row ``i`` through ``0 · NaN``. One matrix product with masked entries and
    non-finite values set to 0, then the (rare) rows that do see a non-finite value are recomputed
    from their visible keys only, so they get the NaN/Inf they should.
    """
    p = np.where(mask, p, 0.0)
    finite = np.isfinite(v)
    out = np.einsum("...ij,...jd->...id", p, np.where(finite, v, 0.0))
    bad_key = ~finite.all(axis=-1)  # (..., Tk): keys whose value has a NaN/Inf
    if bad_key.any():
        sees_bad = np.einsum("ij,...j->...i", mask.astype(np.float64), bad_key.astype(np.float64)) > 0
        for i in np.flatnonzero(sees_bad.reshape(-1, sees_bad.shape[-1]).any(axis=0)):
            js = np.flatnonzero(mask[i])
            exact = np.einsum("...j,...jd->...d", p[..., i, js], v[..., js, :])
            out[..., i, :] = np.where(sees_bad[..., i, None], exact, out[..., i, :])
    return out


def kv_cache_bytes(
    seq_len: int, *, n_layers: int, n_kv_heads: int, head_dim: int, bytes_per_element: int = 2
) -> int:
    """Bytes a KV cache holds after ``seq_len`` tokens: ``2 * layers * H_kv * D * T * bytes``.

    The 2 is one key and one value vector per head; ``bytes_per_element`` is 2 for fp16/bf16.
    """
    seq_len = check_int(seq_len, "seq_len", minimum=0)
    n_layers = check_int(n_layers, "n_layers", minimum=0)
    n_kv_heads = check_int(n_kv_heads, "n_kv_heads", minimum=0)
    head_dim = check_int(head_dim, "head_dim", minimum=0)
    bytes_per_element = check_int(bytes_per_element, "bytes_per_element", minimum=0)
    return 2 * n_layers * n_kv_heads * head_dim * seq_len * bytes_per_element
