"""Linearized LLMs in NumPy: convolution-augmented and grouped linear attention (You et al., ICML 2024).

Two ingredients make linear attention fit autoregressive decoders well (You et al., *When Linear
Attention Meets Autoregressive Decoding*, arXiv:2406.07368):

**Augmentation with a depthwise convolution over V.** ::

    out = LinearAttention(q, k, v) + DWConv(v)

The convolution gives each token a sharp, local view of its neighbours' values that the blurry
linear attention lacks. For a decoder it must be *causal*: output ``t`` may read ``v_{t-K+1..t}``
only. A centered convolution (taps ``t - K//2 .. t + K//2``, as in vision models) reads the
future: :func:`centered_conv1d` is kept to demonstrate the leak; :func:`causal_conv1d` (from
:mod:`linattn_edu.reference.scan`) is the fix. The official code masks the future half of a
63-tap kernel, which is the same as a 32-tap causal convolution.

**Grouped linear attention.** Split the sequence into groups of ``g`` tokens. Token ``i`` in group
``G(i) = i // g`` sees

- its own group causally, with *quadratic* (exact) attention: ``Σ_{j: G(j) = G(i), j ≤ i}
  s(q_i, k_j) v_j``; official score ``s = relu(q·k)²`` with no denominator;
- every *completed* earlier group through linear attention: ``α · φ(q_i)ᵀ S_{G(i)}`` with the
  exclusive prefix sum ``S_G = Σ_{j < g·G} φ(k_j) v_jᵀ``. ``α`` is learnable and starts at 0 when a
  pretrained model is converted, so the swap begins from a purely local model.

In the official LLaMA variant q and k are L2-normalized (after RoPE), so ``q·k`` is a cosine in
``[-1, 1]``. The decode state is bounded: ``S`` plus the keys and values of the current, partial
group (fewer than ``g`` tokens).

Everything here computes and returns ``float64``.
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np
from numpy.typing import ArrayLike

from ._common import btc, float_array
from .linear import FeatureMap, linear_attention, lookup_feature_map
from .scan import causal_conv1d

__all__ = [
    "LOCAL_SCORES",
    "GROUPED_FORMS",
    "centered_conv1d",
    "value_conv",
    "augmented_linear_attention",
    "grouped_linear_attention",
]

#: Values of ``local=`` in :func:`grouped_linear_attention`.
LOCAL_SCORES = ("relu2", "softmax")
#: Values of ``form=`` in :func:`grouped_linear_attention`.
GROUPED_FORMS = ("parallel", "recurrent")


def centered_conv1d(x: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None) -> np.ndarray:
    """Centered (NON-causal) depthwise 1-D convolution over time, zero-padded on both sides.

    ``y[:, t, c] = bias[c] + Σ_{k=0}^{K-1} weight[c, k] · x[:, t - K//2 + k, c]``: tap ``K//2`` is
    the current token, taps above it read the *future*. This is the vision-style convolution;
    in a decoder it leaks tokens ``t+1 .. t+K//2`` into output ``t`` (the chapter's demo). The
    same tap order as :func:`~linattn_edu.reference.causal_conv1d` (tap index grows with time).

    Args:
        x: ``(B, T, C)``.
        weight: ``(C, K)`` with ``K`` odd.
        bias: ``(C,)`` or None.

    Returns:
        ``(B, T, C)`` float64.

    Raises:
        ValueError: bad shapes or an even ``K``; the message names the argument.
        TypeError: a non-floating input.
    """
    x = btc(x, "x")
    batch, t_len, channels = x.shape
    weight = float_array(weight, "weight")
    if weight.ndim != 2 or weight.shape[0] != channels or weight.shape[1] < 1 or weight.shape[1] % 2 == 0:
        raise ValueError(f"weight must have shape (C, K) = ({channels}, K) with K odd, got shape {weight.shape}")
    if bias is not None:
        bias = float_array(bias, "bias")
        if bias.shape != (channels,):
            raise ValueError(f"bias must have shape (C,) = {(channels,)}, got shape {bias.shape}")
    k_len = weight.shape[1]
    half = k_len // 2
    padded = np.concatenate([np.zeros((batch, half, channels)), x, np.zeros((batch, half, channels))], axis=1)
    y = np.zeros_like(x)
    for k in range(k_len):
        y += weight[:, k] * padded[:, k : k + t_len]
    if bias is not None:
        y += bias
    return y


def _qkv(q: ArrayLike, k: ArrayLike, v: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 ``q, k (B, H, T, D)`` and ``v (B, H, T, Dv)``; TypeError for non-float inputs."""
    q = float_array(q, "q")
    k = float_array(k, "k")
    v = float_array(v, "v")
    if q.ndim != 4 or min(q.shape) < 1:
        raise ValueError(f"q must have shape (B, H, T, D) with every size >= 1, got shape {q.shape}")
    if k.shape != q.shape:
        raise ValueError(f"k must have q's shape (B, H, T, D) = {q.shape}, got shape {k.shape}")
    if v.ndim != 4 or v.shape[:3] != q.shape[:3] or v.shape[3] < 1:
        raise ValueError(f"v must have shape (B, H, T, Dv) = {q.shape[:3] + ('Dv',)}, got shape {v.shape}")
    return q, k, v


def _heads_to_channels(v: np.ndarray) -> np.ndarray:
    """``(B, H, T, Dv) -> (B, T, H·Dv)``, channel ``h·Dv + d`` (head-major, as the models lay out v)."""
    b, h, t, dv = v.shape
    return v.transpose(0, 2, 1, 3).reshape(b, t, h * dv)


def _channels_to_heads(x: np.ndarray, h: int) -> np.ndarray:
    b, t, c = x.shape
    return x.reshape(b, t, h, c // h).transpose(0, 2, 1, 3)


def value_conv(v: ArrayLike, conv_weight: ArrayLike, *, causal: bool = True) -> np.ndarray:
    """Depthwise convolution of the values along time, per head and channel: ``(B, H, T, Dv)``.

    ``conv_weight`` is ``(H, Dv, K)`` or, equivalently, ``(H·Dv, K)`` with channel ``h·Dv + d``
    (head-major, the layout of a ``(B, T, H·Dv)`` value projection), or ``(H, 1, K)``: one filter
    per head shared by its ``Dv`` channels, as in the official code (its ``Conv2d(H, H, (K, 1),
    groups=H)`` weight ``(H, 1, K, 1)`` without the last axis). ``causal=True`` uses
    :func:`~linattn_edu.reference.causal_conv1d` (tap ``K-1`` is the current token), else
    :func:`centered_conv1d` (``K`` odd, tap ``K//2`` is the current token).
    """
    v = float_array(v, "v")
    if v.ndim != 4 or min(v.shape) < 1:
        raise ValueError(f"v must have shape (B, H, T, Dv) with every size >= 1, got shape {v.shape}")
    _, h, _, dv = v.shape
    w = float_array(conv_weight, "conv_weight")
    if w.ndim == 3 and w.shape[:2] == (h, 1) and w.shape[2] >= 1:  # one filter per head
        w = np.repeat(w, dv, axis=1)
    if w.ndim == 3 and w.shape[:2] == (h, dv) and w.shape[2] >= 1:
        w = w.reshape(h * dv, w.shape[2])
    elif not (w.ndim == 2 and w.shape[0] == h * dv and w.shape[1] >= 1):
        raise ValueError(
            f"conv_weight must have shape (H, Dv, K) = ({h}, {dv}, K), (H*Dv, K) = ({h * dv}, K) or "
            f"(H, 1, K) = ({h}, 1, K), got shape {w.shape}"
        )
    if not causal and w.shape[1] % 2 == 0:
        raise ValueError(f"conv_weight must have an odd K for a centered convolution, got K = {w.shape[1]}")
    x = _heads_to_channels(v)
    y = causal_conv1d(x, w) if causal else centered_conv1d(x, w)
    return _channels_to_heads(y, h)


def augmented_linear_attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    conv_weight: ArrayLike,
    *,
    feature_map: Union[str, FeatureMap] = "elu",
    causal_conv: bool = True,
    normalize: bool = True,
    eps: float = 1e-6,
) -> np.ndarray:
    """Linear attention plus a depthwise convolution over V: ``LA(q, k, v) + DWConv(v)``.

    Args:
        q, k: ``(B, H, T, D)`` raw queries and keys (the feature map is applied here).
        v: ``(B, H, T, Dv)`` values.
        conv_weight: ``(H, Dv, K)`` or ``(H·Dv, K)`` (channel ``h·Dv + d``): one ``K``-tap filter
            per head and value channel; or ``(H, 1, K)``: one per head, shared by its channels
            (official; see :func:`value_conv`).
        feature_map: as for :func:`~linattn_edu.reference.linear_attention` (default ``"elu"``).
        causal_conv: True: the causal convolution (taps ``t-K+1 .. t``); False: the centered,
            leaky one (``K`` odd, taps ``t-K//2 .. t+K//2``).
        normalize, eps: the linear attention's denominator ``φ(q)ᵀz + eps``.

    Returns:
        ``(B, H, T, Dv)`` float64.

    Raises:
        ValueError: bad shapes (naming the argument and the expected shape), an even ``K`` with
            ``causal_conv=False``, a bad ``feature_map`` name.
        TypeError: a non-floating input.
    """
    q, k, v = _qkv(q, k, v)
    if not isinstance(causal_conv, (bool, np.bool_)):
        raise TypeError(f"causal_conv must be a bool, got {type(causal_conv).__name__}")
    conv = value_conv(v, conv_weight, causal=bool(causal_conv))
    attn = linear_attention(q, k, v, feature_map=feature_map, normalize=normalize, eps=eps)
    return attn + conv


# ----------------------------------------------------------------------------------------------
# Grouped linear attention
# ----------------------------------------------------------------------------------------------


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    """``x / ||x||`` over the last dim (a zero vector stays zero)."""
    norm = np.sqrt((x * x).sum(axis=-1, keepdims=True))
    return x / np.maximum(norm, 1e-12)


def _alpha(alpha: Any, h: int) -> np.ndarray:
    """``alpha`` as an array broadcastable to ``(B, H, T, Dv)``: a scalar or one value per head."""
    if isinstance(alpha, bool):
        raise TypeError(f"alpha must be a float or an (H,) array, got {alpha!r}")
    if isinstance(alpha, (int, float, np.integer, np.floating)):
        return np.asarray(float(alpha))
    arr = float_array(alpha, "alpha")
    if arr.ndim == 0:
        return arr
    if arr.shape != (h,):
        raise ValueError(f"alpha must be a scalar or have shape (H,) = ({h},), got shape {arr.shape}")
    return arr[:, None, None]


def _local_weights(qk: np.ndarray, mask: np.ndarray, local: str, d: int) -> np.ndarray:
    """Local attention weights from raw dot products ``qk (..., Tq, Tk)`` and a boolean mask."""
    if local == "relu2":
        return np.maximum(qk, 0.0) ** 2 * mask
    scores = np.where(mask, qk / np.sqrt(d), -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(axis=-1, keepdims=True)


def _grouped_parallel(q, k, v, fq, fk, g, alpha, local):
    t, d = q.shape[-2], q.shape[-1]
    pos = np.arange(t)
    grp = pos // g
    causal = pos[:, None] >= pos[None, :]
    same = grp[:, None] == grp[None, :]
    local_w = _local_weights(q @ np.swapaxes(k, -1, -2), causal & same, local, d)
    global_w = (fq @ np.swapaxes(fk, -1, -2)) * (grp[:, None] > grp[None, :])  # completed groups only
    return local_w @ v + alpha * (global_w @ v)


def _grouped_recurrent(q, k, v, fq, fk, g, alpha, local):
    b, h, t, d = q.shape
    state = np.zeros((b, h, fq.shape[-1], v.shape[-1]))  # S: Σ over completed groups of φ(k) vᵀ
    out = np.zeros((b, h, t, v.shape[-1]))
    for start in range(0, t, g):
        end = min(start + g, t)
        n = end - start
        sl = slice(start, end)
        mask = np.tril(np.ones((n, n), dtype=bool))
        local_w = _local_weights(q[..., sl, :] @ np.swapaxes(k[..., sl, :], -1, -2), mask, local, d)
        out[..., sl, :] = local_w @ v[..., sl, :] + alpha * (fq[..., sl, :] @ state)
        state = state + np.swapaxes(fk[..., sl, :], -1, -2) @ v[..., sl, :]  # fold the finished group
    return out


def grouped_linear_attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    *,
    group_size: int,
    alpha: Any = 1.0,
    local: str = "relu2",
    feature_map: Union[str, FeatureMap] = "identity",
    normalize_qk: bool = True,
    form: str = "parallel",
) -> np.ndarray:
    """Grouped linear attention: quadratic inside each group, linear over completed earlier groups.

    With ``G(i) = i // g``::

        o_i = Σ_{j: G(j) = G(i), j ≤ i} s(q_i, k_j) v_j  +  α · φ(q_i)ᵀ Σ_{j < g·G(i)} φ(k_j) v_jᵀ

    ``s = relu(q·k)²`` (``local="relu2"``, the official LLaMA variant: no denominator) or the
    causal softmax of ``q·k / √D`` within the group (``local="softmax"``). The global branch has
    no denominator either. Any ``T``: the last group may be partial.

    Args:
        q, k: ``(B, H, T, D)`` (with RoPE already applied, if any).
        v: ``(B, H, T, Dv)``.
        group_size: ``g >= 1`` tokens per group (official: 64).
        alpha: the global branch's scale: a float or one value per head ``(H,)``.
        local: one of :data:`LOCAL_SCORES`.
        feature_map: φ of the global branch, a name in
            :data:`~linattn_edu.reference.FEATURE_MAPS` or a callable; default ``"identity"``
            (on L2-normalized q, k, as officially).
        normalize_qk: L2-normalize q and k over ``D`` first (both branches see the normalized ones).
        form: ``"parallel"`` (masked ``(T, T)`` matrices) or ``"recurrent"`` (group by group,
            carrying the exclusive state ``S``); they agree to float64 rounding.

    Returns:
        ``(B, H, T, Dv)`` float64.

    Raises:
        ValueError: bad shapes (naming the argument and the expected shape), a bad
            ``group_size``, ``local``, ``form`` or ``feature_map`` name.
        TypeError: a non-floating input.
    """
    q, k, v = _qkv(q, k, v)
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 1:
        raise ValueError(f"group_size must be a positive int, got {group_size!r}")
    if local not in LOCAL_SCORES:
        raise ValueError(f"local must be one of {list(LOCAL_SCORES)}, got {local!r}")
    if form not in GROUPED_FORMS:
        raise ValueError(f"form must be one of {list(GROUPED_FORMS)}, got {form!r}")
    if not isinstance(normalize_qk, (bool, np.bool_)):
        raise TypeError(f"normalize_qk must be a bool, got {type(normalize_qk).__name__}")
    fm = lookup_feature_map(feature_map)
    a = _alpha(alpha, q.shape[1])
    if normalize_qk:
        q, k = _l2_normalize(q), _l2_normalize(k)
    fq, fk = float_array(fm(q), "feature_map(q)"), float_array(fm(k), "feature_map(k)")
    if fq.shape[:-1] != q.shape[:-1] or fk.shape != fq.shape:
        raise ValueError(f"feature_map must map (B, H, T, D) to (B, H, T, F), got {fq.shape} for q {q.shape}")
    fn = _grouped_parallel if form == "parallel" else _grouped_recurrent
    return fn(q, k, v, fq, fk, int(group_size), a, local)
