"""Linear attention in NumPy: feature maps and the three equal forms (parallel, recurrent, chunked).

Softmax attention weighs key ``j`` for query ``i`` by ``exp(q_i·k_j/√D)``. Linear attention
replaces that weight by a dot product of *features* ``φ(q_i)·φ(k_j)``, and the product can then be
regrouped::

    o_i = Σ_{j≤i} (φ(q_i)·φ(k_j)) v_j = φ(q_i)ᵀ S_i,      S_i = Σ_{j≤i} φ(k_j) v_jᵀ   (F, Dv)

With normalization (the analogue of softmax's denominator)::

    o_i = φ(q_i)ᵀ S_i / (φ(q_i)ᵀ z_i + eps),             z_i = Σ_{j≤i} φ(k_j)         (F,)

Three ways to compute the same numbers (Arora et al., *Based*, ICML 2024, §2):

``"parallel"``
    the masked ``(T, T)`` matrix ``φ(Q) φ(K)ᵀ`` times ``V``: O(T²) time, like softmax attention.
``"recurrent"``
    carry ``S`` and ``z`` one token at a time: O(T) time and O(1) memory per step (decoding).
``"chunked"``
    split the sequence into chunks of ``C`` tokens: inside a chunk use the parallel form, between
    chunks carry the state. What the GPU kernels do: matrix multiplies, and a state that is
    updated only ``T / C`` times.

Everything here computes and returns ``float64``; layout ``(..., T, D)`` like
:mod:`linattn_edu.reference.attention`.
"""

from __future__ import annotations

import math
from typing import Callable, Union

import numpy as np
from numpy.typing import ArrayLike

from ..checks import check_bool, check_float, check_int
from ._common import as_float64
from .attention import masked_matmul

__all__ = [
    "identity_feature_map",
    "elu_feature_map",
    "relu_feature_map",
    "taylor_feature_map",
    "taylor_feature_map_compact",
    "FEATURE_MAPS",
    "feature_map_dim",
    "linear_attention",
    "linear_attention_state_bytes",
]

FeatureMap = Callable[[np.ndarray], np.ndarray]

#: The forms :func:`linear_attention` can compute; all give the same result.
FORMS = ("parallel", "recurrent", "chunked")


def _features_in(x: ArrayLike, name: str = "x") -> np.ndarray:
    x = as_float64(x, name)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"{name} must have shape (..., D) with D >= 1, got shape {x.shape}")
    return x


# ----------------------------------------------------------------------------------------------
# Feature maps: (..., D) -> (..., F)
# ----------------------------------------------------------------------------------------------


def identity_feature_map(x: ArrayLike) -> np.ndarray:
    """``φ(x) = x``: ``(..., D) -> (..., D)``. Scores ``q·k`` can be negative (no true weights)."""
    return _features_in(x).copy()


def elu_feature_map(x: ArrayLike) -> np.ndarray:
    """``φ(x) = elu(x) + 1`` (Katharopoulos et al., 2020): ``(..., D) -> (..., D)``, always > 0."""
    x = _features_in(x)
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def relu_feature_map(x: ArrayLike) -> np.ndarray:
    """``φ(x) = max(x, 0)``: ``(..., D) -> (..., D)``, >= 0 (a row of scores may be all zero)."""
    return np.maximum(_features_in(x), 0.0)


def taylor_feature_map(x: ArrayLike) -> np.ndarray:
    """The Based 2nd-order Taylor map ``(..., D) -> (..., 1 + D + D²)``.

    ``φ(x) = [1, x / D^{1/4}, vec(x xᵀ) / (√2·√D)]``, so that, with ``s = q·k / √D``::

        φ(q)·φ(k) = 1 + s + s²/2  ≈  exp(s)

    (the quadratic block gives ``Σ_ab q_a q_b k_a k_b / (2D) = (q·k)² / (2D) = s²/2``). The weight
    ``1 + s + s²/2 = ((1 + s)² + 1) / 2 >= 1/2`` is always positive, so normalization is safe.
    For ``D = 16``: ``F = 1 + 16 + 256 = 273``.
    """
    x = _features_in(x)
    d = x.shape[-1]
    lead = x.shape[:-1]
    ones = np.ones(lead + (1,))
    linear = x / d**0.25
    # Scale before the outer product, (x/c)(x/c)ᵀ with c² = √2·√D: x xᵀ itself would overflow
    # for inputs whose features are still representable (in float16 already at |x| = 256).
    xs = x / math.sqrt(math.sqrt(2.0) * math.sqrt(d))
    quadratic = (xs[..., :, None] * xs[..., None, :]).reshape(lead + (d * d,))
    return np.concatenate([ones, linear, quadratic], axis=-1)


def taylor_feature_map_compact(x: ArrayLike) -> np.ndarray:
    """The same dot products as :func:`taylor_feature_map` with ``1 + D + D(D+1)/2`` features.

    ``x xᵀ`` is symmetric: its ``D²`` entries hold only ``D(D+1)/2`` distinct values. Keep the
    upper triangle ``a <= b`` and scale each off-diagonal entry by ``√2``: it then stands for both
    ``(a, b)`` and ``(b, a)``, since ``(√2 q_a q_b)(√2 k_a k_b) = 2 q_a q_b k_a k_b``. So
    ``φ_c(q)·φ_c(k) = φ(q)·φ(k) = 1 + s + s²/2`` exactly. For ``D = 16``: ``F = 1 + 16 + 136 = 153``
    instead of 273, a 44% smaller recurrent state ``(F, Dv)`` for identical attention weights.
    Shape ``(..., D) -> (..., 1 + D + D(D+1)/2)``; the quadratic block is in ``np.triu_indices``
    order.
    """
    x = _features_in(x)
    d = x.shape[-1]
    rows, cols = np.triu_indices(d)
    weight = np.where(rows == cols, 1.0 / math.sqrt(2.0), 1.0)
    ones = np.ones(x.shape[:-1] + (1,))
    xs = x / d**0.25  # scaled before the product (no overflow of x_a·x_b): xs_a·xs_b = x_a·x_b/√D
    quadratic = xs[..., rows] * xs[..., cols] * weight
    return np.concatenate([ones, x / d**0.25, quadratic], axis=-1)


#: Feature maps by name; :func:`linear_attention` accepts the name or any callable.
FEATURE_MAPS: dict[str, FeatureMap] = {
    "identity": identity_feature_map,
    "elu": elu_feature_map,
    "relu": relu_feature_map,
    "taylor": taylor_feature_map,
    "taylor_compact": taylor_feature_map_compact,
}

_FEATURE_DIMS: dict[str, Callable[[int], int]] = {
    "identity": lambda d: d,
    "elu": lambda d: d,
    "relu": lambda d: d,
    "taylor": lambda d: 1 + d + d * d,
    "taylor_compact": lambda d: 1 + d + d * (d + 1) // 2,
}


def lookup_feature_map(feature_map: Union[str, FeatureMap]) -> FeatureMap:
    """The feature map called ``feature_map`` in :data:`FEATURE_MAPS`, or ``feature_map`` itself if callable."""
    if isinstance(feature_map, str):
        if feature_map not in FEATURE_MAPS:
            raise ValueError(
                f"feature_map must be a callable or one of {sorted(FEATURE_MAPS)}, got {feature_map!r}"
            )
        return FEATURE_MAPS[feature_map]
    if not callable(feature_map):
        raise TypeError(f"feature_map must be a callable or a name, got {type(feature_map).__name__}")
    return feature_map


def feature_map_dim(name: str, d: int) -> int:
    """Number of features ``F`` the named map produces from ``d``-dimensional inputs.

    ``"identity"``, ``"elu"``, ``"relu"``: ``d``; ``"taylor"``: ``1 + d + d²``;
    ``"taylor_compact"``: ``1 + d + d(d+1)/2``.
    """
    if not isinstance(name, str) or name not in _FEATURE_DIMS:
        raise ValueError(f"name must be one of {sorted(_FEATURE_DIMS)}, got {name!r}")
    return int(_FEATURE_DIMS[name](check_int(d, "d", minimum=1)))


# ----------------------------------------------------------------------------------------------
# Linear attention, three ways
# ----------------------------------------------------------------------------------------------


def _normalize(num: np.ndarray, den: np.ndarray, eps: float) -> np.ndarray:
    """``num / (den + eps)``, with 0 where ``den + eps == 0``.

    ``num``: ``(..., Dv)``; ``den``: ``(...)``. A zero denominator with ``eps = 0`` happens when
    every weight of a row is 0 (e.g. ``relu`` features of a query with no positive entry): the
    numerator is 0 too, and 0 is the limit of ``0 / (0 + eps)`` as ``eps → 0``. (With signed
    features, ``"identity"``, a zero sum of non-zero weights also gives 0 rather than ``±inf``.)
    """
    den = den[..., None] + eps
    zero = den == 0
    return np.where(zero, 0.0, num / np.where(zero, 1.0, den))


def _causal_rows(weights: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Σ_{j≤i} w_ij v_j`` and ``Σ_{j≤i} w_ij`` for every row ``i`` of ``weights`` ``(..., n, n)``.

    Row ``i`` reads only columns ``j <= i`` (:func:`~linattn_edu.reference.attention.masked_matmul`),
    so a NaN in a later key or value never reaches it (``weights * tril @ v`` would spread it
    through ``0 · NaN``).
    """
    n = weights.shape[-1]
    tril = np.tril(np.ones((n, n), dtype=bool))
    return masked_matmul(weights, v, tril), np.where(tril, weights, 0.0).sum(axis=-1)


def _parallel(fq: np.ndarray, fk: np.ndarray, v: np.ndarray, normalize: bool, eps: float) -> np.ndarray:
    """Masked ``φ(Q) φ(K)ᵀ``, then times ``V``: the O(T²) form (masked entries are never read)."""
    weights = np.einsum("...if,...jf->...ij", fq, fk)
    num, den = _causal_rows(weights, v)
    return _normalize(num, den, eps) if normalize else num


def _recurrent(fq: np.ndarray, fk: np.ndarray, v: np.ndarray, normalize: bool, eps: float) -> np.ndarray:
    """One token at a time: ``S += φ(k_t) v_tᵀ``, ``z += φ(k_t)``, read out with ``φ(q_t)``."""
    lead, t, f = fq.shape[:-2], fq.shape[-2], fq.shape[-1]
    dv = v.shape[-1]
    state = np.zeros(lead + (f, dv))  # S: (..., F, Dv)
    z = np.zeros(lead + (f,))  # (..., F)
    out = np.zeros(lead + (t, dv))
    for i in range(t):
        state = state + fk[..., i, :, None] * v[..., i, None, :]
        z = z + fk[..., i, :]
        num = np.einsum("...f,...fd->...d", fq[..., i, :], state)
        if normalize:
            num = _normalize(num, np.einsum("...f,...f->...", fq[..., i, :], z), eps)
        out[..., i, :] = num
    return out


def _chunked(fq: np.ndarray, fk: np.ndarray, v: np.ndarray, normalize: bool, eps: float, chunk: int) -> np.ndarray:
    """Parallel inside each chunk of ``chunk`` tokens, the state ``(S, z)`` carried between chunks."""
    lead, t, f = fq.shape[:-2], fq.shape[-2], fq.shape[-1]
    dv = v.shape[-1]
    state = np.zeros(lead + (f, dv))
    z = np.zeros(lead + (f,))
    out = np.zeros(lead + (t, dv))
    for start in range(0, t, chunk):
        end = min(start + chunk, t)  # the last chunk may be shorter
        qc, kc, vc = fq[..., start:end, :], fk[..., start:end, :], v[..., start:end, :]
        intra_num, intra_den = _causal_rows(np.einsum("...if,...jf->...ij", qc, kc), vc)
        num = intra_num + qc @ state  # this chunk's keys + every earlier chunk, via S
        if normalize:
            num = _normalize(num, intra_den + np.einsum("...if,...f->...i", qc, z), eps)
        out[..., start:end, :] = num
        state = state + np.swapaxes(kc, -1, -2) @ vc  # Σ over the chunk of φ(k_j) v_jᵀ
        z = z + kc.sum(axis=-2)
    return out


def linear_attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    *,
    feature_map: Union[str, FeatureMap] = "identity",
    form: str = "parallel",
    chunk_size: int = 64,
    normalize: bool = True,
    eps: float = 1e-6,
) -> np.ndarray:
    """Causal linear attention ``o_i = φ(q_i)ᵀ S_i / (φ(q_i)ᵀ z_i + eps)``, in one of three forms.

    Args:
        q: ``(..., T, D)`` queries (raw: the feature map is applied here).
        k: ``(..., T, D)`` keys, the same shape as ``q``.
        v: ``(..., T, Dv)`` values, the same leading dims and ``T`` as ``q``.
        feature_map: a name in :data:`FEATURE_MAPS` (``"identity"``, ``"elu"``, ``"relu"``,
            ``"taylor"``, ``"taylor_compact"``) or a callable ``(..., D) -> (..., F)``.
        form: ``"parallel"`` (masked ``φ(Q)φ(K)ᵀ V``, O(T²)), ``"recurrent"`` (state ``S (F, Dv)``
            and ``z (F,)``, one token at a time) or ``"chunked"`` (parallel within chunks of
            ``chunk_size`` tokens, state between them; any ``T``).
        chunk_size: tokens per chunk for ``form="chunked"`` (>= 1; validated for every form).
        normalize: divide by ``φ(q_i)ᵀ z_i + eps``; False returns ``φ(q_i)ᵀ S_i`` alone.
        eps: added to the denominator; finite and >= 0. ``eps = 0`` is allowed: a row whose
            denominator is exactly 0 (all its weights 0, e.g. ``relu`` features) outputs 0, the
            limit as ``eps → 0`` (the same rule as the kernels).

    Returns:
        ``(..., T, Dv)`` float64; the three forms agree to float64 rounding.
        Row ``i`` reads only positions ``j <= i``: a NaN/Inf in a later key or value never
        reaches it (the parallel and chunked forms do not multiply masked weights by values).

    Raises:
        ValueError: bad shapes, an unknown ``feature_map`` or ``form`` name, ``chunk_size < 1``,
            ``eps`` negative or not finite; each message names the argument.
        TypeError: a non-numeric input, a ``feature_map`` that is neither a name nor callable.
    """
    q = as_float64(q, "q")
    k = as_float64(k, "k")
    v = as_float64(v, "v")
    for name, arr in (("q", q), ("k", k), ("v", v)):
        if arr.ndim < 2 or arr.shape[-2] < 1 or arr.shape[-1] < 1:
            raise ValueError(f"{name} must have shape (..., T, D) with T, D >= 1, got shape {arr.shape}")
    if k.shape != q.shape:
        raise ValueError(f"k must have the same shape as q {q.shape}, got shape {k.shape}")
    if v.shape[:-1] != q.shape[:-1]:
        raise ValueError(f"v must have shape {q.shape[:-1] + ('Dv',)} (q's leading dims and T), got shape {v.shape}")
    fm = lookup_feature_map(feature_map)
    if form not in FORMS:
        raise ValueError(f"form must be one of {list(FORMS)}, got {form!r}")
    chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    normalize = check_bool(normalize, "normalize")
    eps = check_float(eps, "eps", minimum=0.0)

    fq = as_float64(fm(q), "feature_map(q)")
    fk = as_float64(fm(k), "feature_map(k)")
    if fq.ndim != q.ndim or fq.shape[:-1] != q.shape[:-1] or fk.shape != fq.shape:
        raise ValueError(
            f"feature_map must map (..., T, D) to (..., T, F): got {fq.shape} for q {q.shape}, "
            f"{fk.shape} for k {k.shape}"
        )
    if form == "parallel":
        return _parallel(fq, fk, v, bool(normalize), float(eps))
    if form == "recurrent":
        return _recurrent(fq, fk, v, bool(normalize), float(eps))
    return _chunked(fq, fk, v, bool(normalize), float(eps), int(chunk_size))


def linear_attention_state_bytes(
    feature_dim: int,
    value_dim: int,
    *,
    n_heads: int = 1,
    n_layers: int = 1,
    bytes_per_element: int = 2,
    normalize: bool = True,
) -> int:
    """Bytes of the recurrent state: ``layers * heads * (F * Dv + F) * bytes`` (``S`` plus ``z``).

    Without normalization there is no ``z``: ``layers * heads * F * Dv * bytes``. There is no
    sequence length in this formula: the state is the same size after 10 tokens or 10 million,
    whereas :func:`~linattn_edu.reference.kv_cache_bytes` grows linearly with ``T``.
    """
    feature_dim = check_int(feature_dim, "feature_dim", minimum=0)
    value_dim = check_int(value_dim, "value_dim", minimum=0)
    n_heads = check_int(n_heads, "n_heads", minimum=0)
    n_layers = check_int(n_layers, "n_layers", minimum=0)
    bytes_per_element = check_int(bytes_per_element, "bytes_per_element", minimum=0)
    normalize = check_bool(normalize, "normalize")
    per_head = feature_dim * value_dim + (feature_dim if normalize else 0)
    return int(n_layers * n_heads * per_head * bytes_per_element)
