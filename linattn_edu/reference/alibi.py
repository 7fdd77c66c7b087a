"""ALiBi (Press, Smith & Lewis, ICLR 2022, arXiv:2108.12409) in NumPy: slopes and biases.

ALiBi uses no position embeddings. Instead every head ``h`` adds a penalty proportional to the
distance between query and key to the attention scores::

    score(i, j) = q_i · k_j / sqrt(D)  -  m_h · (i - j)

with a fixed, head-specific slope ``m_h`` (:func:`alibi_slopes`). Far-away keys are penalized
more, and heads with small slopes look further back.

Positions follow :func:`linattn_edu.reference.softmax_attention`: when there are fewer queries
than keys (decoding with a KV cache), query ``i`` sits at position ``Tk - Tq + i``.

Everything here is float64.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..checks import check_int
from ._common import as_float64
from .attention import softmax_attention

__all__ = [
    "alibi_slopes",
    "alibi_bias",
    "alibi_bias_official",
    "alibi_attention",
]


def _check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` naming ``name``."""
    return check_int(value, name, minimum=1)


def _power_of_two_slopes(n: int) -> np.ndarray:
    """``m_h = 2^(-8 h / n)`` for ``h = 1..n`` (``n`` a power of two)."""
    h = np.arange(1, n + 1, dtype=np.float64)
    return np.exp2(-8.0 * h / n)


def alibi_slopes(n_heads: int) -> np.ndarray:
    """The ALiBi slope ``m_h`` of every head: a ``(H,)`` float64 array.

    For ``n_heads`` a power of two the slopes form a geometric sequence
    ``m_h = 2^(-8h/n)``, ``h = 1..n``; e.g. 8 heads give ``1/2, 1/4, ..., 1/256``.

    Otherwise, with ``c = 2^floor(log2 n)`` (the largest power of two below ``n``), the paper's
    official rule takes the ``c`` slopes for ``c`` heads, then appends every other slope of the
    rule for ``2c`` heads (``slopes(2c)[0::2]``), the first ``n - c`` of them. The result is *not*
    monotone: for 12 heads it is ``2^-1, ..., 2^-8`` followed by ``2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5``.
    That is what the official code (and every ALiBi checkpoint) uses, so we keep it.

    Raises:
        ValueError: ``n_heads`` is not a positive int.
    """
    n = _check_positive_int(n_heads, "n_heads")
    if n & (n - 1) == 0:  # a power of two
        return _power_of_two_slopes(n)
    c = 1 << (n.bit_length() - 1)  # 2^floor(log2 n)
    extra = _power_of_two_slopes(2 * c)[0::2][: n - c]
    return np.concatenate([_power_of_two_slopes(c), extra])


def _positions(q_len: int, k_len: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Query positions ``(Tq, 1)`` (end-aligned with the keys) and key positions ``(1, Tk)``."""
    q_len = _check_positive_int(q_len, "q_len")
    k_len = q_len if k_len is None else _check_positive_int(k_len, "k_len")
    if q_len > k_len:
        raise ValueError(
            f"q_len must be <= k_len (queries are the last keys), got q_len={q_len} > k_len={k_len}"
        )
    pos_q = np.arange(q_len)[:, None] + (k_len - q_len)
    pos_k = np.arange(k_len)[None, :]
    return pos_q, pos_k


def alibi_bias(n_heads: int, q_len: int, k_len: int | None = None) -> np.ndarray:
    """The ALiBi bias ``-m_h · (i - j)`` as a ``(H, Tq, Tk)`` float64 array.

    ``i`` is the position of the query (query row ``r`` sits at ``Tk - Tq + r``, the end-aligned
    convention of :func:`~linattn_edu.reference.softmax_attention`) and ``j`` the position of the
    key. Pass it as ``bias=`` to ``softmax_attention``.

    The same formula is used for *every* entry, including future keys ``j > i``, where it is
    positive. Those entries are removed by the causal mask anyway (``softmax_attention`` masks
    them whatever the bias), so there is no need to special-case them here. Without a causal mask
    (``causal=False``) the formula would *reward* future keys: ALiBi is meant for causal models.

    Raises:
        ValueError: a non-positive size, or ``q_len > k_len``, naming the argument.
    """
    slopes = alibi_slopes(n_heads)
    pos_q, pos_k = _positions(q_len, k_len)
    return slopes[:, None, None] * (pos_k - pos_q)[None, :, :]  # = -m_h (i - j), without -0.0


def alibi_bias_official(n_heads: int, q_len: int, k_len: int | None = None) -> np.ndarray:
    """The form the official ALiBi code uses: ``+m_h · j``, a ``(H, Tq, Tk)`` float64 array.

    The authors' implementation builds ``m_h · j`` once (it depends only on the key position ``j``)
    and adds it to the causal mask. It differs from :func:`alibi_bias` by ``m_h · i``::

        m_h · j  -  (-m_h · (i - j))  =  m_h · i

    which is the same for every key of a query row. Softmax is shift-invariant per row
    (``softmax(s + c) = softmax(s)``), so both biases give the same attention weights; only the
    raw scores differ. (For very long sequences the official form makes the scores large, which
    is harmless in float32 after the max-subtraction but worth knowing.)

    Raises:
        ValueError: as :func:`alibi_bias`.
    """
    slopes = alibi_slopes(n_heads)
    pos_q, pos_k = _positions(q_len, k_len)
    return slopes[:, None, None] * np.broadcast_to(pos_k, (pos_q.shape[0], pos_k.shape[1]))[None]


def alibi_attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    *,
    causal: bool = True,
    scale: float | None = None,
    window: int | None = None,
    slopes: ArrayLike | None = None,
) -> np.ndarray:
    """Softmax attention with the ALiBi bias: ``softmax(q k^T * scale - m_h (i - j)) v``.

    Args:
        q: ``(..., H, Tq, D)`` queries (the head axis is required: each head has its own slope).
        k: ``(..., H_kv, Tk, D)`` keys (``H % H_kv == 0``).
        v: ``(..., H_kv, Tk, Dv)`` values.
        causal, scale, window: as :func:`~linattn_edu.reference.softmax_attention`.
        slopes: ``(H,)`` finite slopes; default :func:`alibi_slopes` of ``H``.

    Returns:
        ``(..., H, Tq, Dv)`` float64.

    Raises:
        ValueError: ``q`` without a head axis, ``k`` without a time axis, ``slopes`` of the wrong
            shape or not finite (and whatever :func:`softmax_attention` rejects).
    """
    q = as_float64(q, "q")
    if q.ndim < 3:
        raise ValueError(f"q must have a head axis (..., H, Tq, D), got shape {q.shape}")
    h, tq = q.shape[-3], q.shape[-2]
    k = as_float64(k, "k")
    if k.ndim < 2:
        raise ValueError(f"k must have shape (..., H_kv, Tk, D), got shape {k.shape}")
    tk = k.shape[-2]
    if slopes is None:
        m = alibi_slopes(h)
    else:
        m = as_float64(slopes, "slopes")
        if m.shape != (h,):
            raise ValueError(f"slopes must have shape (H={h},), got {m.shape}")
        if not np.all(np.isfinite(m)):
            raise ValueError(f"slopes must be finite, got {m}")
    # Query row r sits at position Tk - Tq + r, as in softmax_attention and the flash kernel.
    pos_q = np.arange(tq)[:, None] + (tk - tq)
    pos_k = np.arange(tk)[None, :]
    bias = m[:, None, None] * (pos_k - pos_q)[None]
    return softmax_attention(q, k, v, causal=causal, scale=scale, bias=bias, window=window)

