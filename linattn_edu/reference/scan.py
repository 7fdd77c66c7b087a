"""Linear recurrences in NumPy: the linear scan, the RG-LRU of Griffin/Hawk, and the causal conv.

A *linear scan* runs the recurrence, per batch row and per channel::

    h_t = a_t · h_{t-1} + b_t,        t = 0 .. T-1,   h_{-1} = h0

Each step is an affine map ``h -> a h + b``; applying ``(a1, b1)`` and then ``(a2, b2)`` gives
``h -> a2 (a1 h + b1) + b2``, the affine map ``(a1·a2, a2·b1 + b2)``. Composition of maps is
associative, so the T steps can be combined in any grouping: a loop (``T`` dependent steps), or a
parallel prefix scan (``⌈log2 T⌉`` steps, each one independent work on all positions at once).

The RG-LRU (De et al., *Griffin*, arXiv:2402.19427, §2.4) is such a scan: its gates depend on the
input ``x_t`` only, never on ``h_{t-1}``, so ``a_t`` and ``b_t`` are known for every ``t`` before
the recurrence starts. :func:`causal_conv1d` is the short depthwise convolution (width 4 in the
paper) that sits in front of the RG-LRU in the recurrent block.

Everything here computes and returns ``float64``; recurrences and convolutions use the layout
``(B, T, C)``: batch, time, channels.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from numpy.typing import ArrayLike

from ._common import btc, float_array

__all__ = [
    "SCAN_METHODS",
    "linear_scan",
    "linear_scan_sequential",
    "linear_scan_associative",
    "rg_lru",
    "causal_conv1d",
]

#: The algorithms :func:`linear_scan` can use; both give the same result.
SCAN_METHODS = ("sequential", "associative")


# ----------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------


def _initial_state(h0: Optional[ArrayLike], batch: int, channels: int) -> np.ndarray:
    """``h0`` as a float64 ``(B, C)`` array; zeros when omitted."""
    if h0 is None:
        return np.zeros((batch, channels))
    h0 = float_array(h0, "h0")
    if h0.shape != (batch, channels):
        raise ValueError(f"h0 must have shape (B, C) = {(batch, channels)}, got shape {h0.shape}")
    return h0


def _check_gate(g: np.ndarray, name: str) -> None:
    if not np.all((g >= 0.0) & (g <= 1.0)):  # also catches nan
        bad = g[~((g >= 0.0) & (g <= 1.0))].ravel()[0]
        raise ValueError(f"{name} must hold gate values in [0, 1] (sigmoid outputs), found {bad!r}")


# ----------------------------------------------------------------------------------------------
# The linear scan h_t = a_t h_{t-1} + b_t
# ----------------------------------------------------------------------------------------------


def _scan_sequential(a: np.ndarray, b: np.ndarray, h0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The loop on checked float64 arrays (see :func:`linear_scan_sequential`)."""
    h = np.empty_like(b)
    state = h0
    for t in range(b.shape[1]):
        state = a[:, t] * state + b[:, t]
        h[:, t] = state
    return h, state.copy()


def _scan_associative(a: np.ndarray, b: np.ndarray, h0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hillis–Steele on checked float64 arrays (see :func:`linear_scan_associative`)."""
    acc_a = a.copy()
    acc_b = b.copy()
    acc_b[:, 0] = a[:, 0] * h0 + b[:, 0]  # fold h0 into the first element
    t_len = b.shape[1]
    d = 1
    while d < t_len:
        # Right-hand sides are evaluated before assignment: every position reads the old values.
        prev_a, prev_b = acc_a[:, :-d], acc_b[:, :-d]  # positions t - d
        cur_a, cur_b = acc_a[:, d:], acc_b[:, d:]  # positions t
        acc_a[:, d:], acc_b[:, d:] = prev_a * cur_a, cur_a * prev_b + cur_b
        d *= 2
    return acc_b, acc_b[:, -1].copy()


def linear_scan_sequential(
    a: ArrayLike, b: ArrayLike, h0: Optional[ArrayLike] = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`linear_scan` as a loop: ``T`` dependent steps, O(T) work, depth ``T``.

    ``a, b (B, T, C)``, ``h0 (B, C)`` or None -> ``(h (B, T, C), h_last (B, C))``, float64.
    The same checks and errors as :func:`linear_scan`.
    """
    return linear_scan(a, b, h0, method="sequential")


def linear_scan_associative(
    a: ArrayLike, b: ArrayLike, h0: Optional[ArrayLike] = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`linear_scan` as a Hillis–Steele parallel prefix scan; the combine of two affine maps
    (the earlier one first) is::

        (a1, b1) ∘ (a2, b2) = (a1·a2, a2·b1 + b2)

    ``h0`` is folded into the first element (``b_0 <- a_0·h0 + b_0``), so after the scan the
    ``b`` half of the prefix ``(a_0, b_0) ∘ … ∘ (a_t, b_t)`` *is* ``h_t``. Step ``k`` (offset
    ``d = 2^k``) combines every position ``t >= d`` with position ``t - d``; after it, position
    ``t`` holds the prefix of the last ``min(t + 1, 2d)`` elements. So ``⌈log2 T⌉`` steps suffice,
    for any ``T >= 1`` (no padding to a power of two).

    Cost: depth ``⌈log2 T⌉`` steps (each fully parallel over ``B·T·C``), work ``O(T log T)``
    combines. The loop does ``T`` combines in ``T`` dependent steps. Blelloch's scan (an up-sweep
    then a down-sweep over a tree) gets work back to ``O(T)`` at depth ``2⌈log2 T⌉``; blocked GPU
    and TPU kernels do a loop inside a block and carry the state between blocks.

    ``a, b (B, T, C)``, ``h0 (B, C)`` or None -> ``(h (B, T, C), h_last (B, C))``, float64.
    The same checks and errors as :func:`linear_scan`. Equal to the loop up to float64 rounding
    (the products are grouped differently).
    """
    return linear_scan(a, b, h0, method="associative")


def linear_scan(
    a: ArrayLike,
    b: ArrayLike,
    h0: Optional[ArrayLike] = None,
    *,
    method: str = "sequential",
) -> tuple[np.ndarray, np.ndarray]:
    """The linear recurrence ``h_t = a_t · h_{t-1} + b_t`` along axis 1 (time), elementwise.

    Args:
        a: ``(B, T, C)`` decay (any real values; ``|a_t| < 1`` keeps the state bounded).
        b: ``(B, T, C)`` input, the same shape as ``a``.
        h0: ``(B, C)`` state before step 0; zeros if omitted.
        method: ``"sequential"`` (a loop over ``T``: O(T) work, depth T; see
            :func:`linear_scan_sequential`) or ``"associative"`` (Hillis–Steele parallel prefix:
            O(T log T) work, depth ``⌈log2 T⌉``; see :func:`linear_scan_associative`).

    Returns:
        ``(h, h_last)``: every state ``h (B, T, C)`` and the last one ``h_last = h[:, -1]``
        ``(B, C)``, both float64. Feeding ``h_last`` as ``h0`` to the next chunk of the sequence
        continues the scan exactly.

    Raises:
        ValueError: wrong ndim or shapes (``T, C >= 1``), ``a`` and ``b`` of different shapes,
            an unknown ``method``; each message names the argument.
        TypeError: a non-floating input.
    """
    a = btc(a, "a")
    b = btc(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"b must have the same shape as a {a.shape} (B, T, C), got shape {b.shape}")
    h0 = _initial_state(h0, b.shape[0], b.shape[2])
    if method not in SCAN_METHODS:
        raise ValueError(f"method must be one of {list(SCAN_METHODS)}, got {method!r}")
    if method == "sequential":
        return _scan_sequential(a, b, h0)
    return _scan_associative(a, b, h0)


# ----------------------------------------------------------------------------------------------
# RG-LRU (Griffin / Hawk)
# ----------------------------------------------------------------------------------------------


def _softplus(z: np.ndarray) -> np.ndarray:
    """``log(1 + exp(z))`` without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def rg_lru(
    x: ArrayLike,
    gate_a: ArrayLike,
    gate_x: ArrayLike,
    a_param: ArrayLike,
    *,
    c: float = 8.0,
    h0: Optional[ArrayLike] = None,
    reset: Optional[ArrayLike] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The Real-Gated Linear Recurrent Unit of Griffin/Hawk (De et al., 2024, arXiv:2402.19427).

    Per channel, with the gates already computed (``r_t = σ(W_a x_t + b_a)``,
    ``i_t = σ(W_x x_t + b_x)``)::

        a       = σ(Λ)                          log a   = -softplus(-Λ)
        log a_t = c · r_t · log a               a_t     = exp(log a_t)        (so a_t = a^(c r_t))
        h_t     = a_t ⊙ h_{t-1} + √(1 - a_t²) ⊙ (i_t ⊙ x_t)
        y_t     = h_t

    Computed in log space: ``σ(Λ)`` is never formed, and ``1 - a_t² = -expm1(2 log a_t)`` keeps
    its digits when ``a_t`` is within 1e-16 of 1 (large ``Λ``), where ``1 - exp(...)**2`` would
    round to exactly 0. ``r_t = 0`` gives ``a_t = 1`` and a multiplier of 0: the state is carried
    unchanged. The recurrence is run by :func:`linear_scan` with ``a_t`` and
    ``b_t = √(1 - a_t²) · i_t · x_t``.

    Convention: the official code (RecurrentGemma) stores the parameter ``p = -Λ`` and computes
    ``log a = -softplus(p)``, i.e. ``a = exp(-softplus(p)) = σ(-p)``. Here ``a_param`` is ``Λ``
    itself, as in the paper: pass ``-p`` when loading official weights.

    Args:
        x: ``(B, T, C)`` input of the recurrence (the Conv1D output in the recurrent block).
        gate_a: ``(B, T, C)`` recurrence gate ``r_t``, values in ``[0, 1]``.
        gate_x: ``(B, T, C)`` input gate ``i_t``, values in ``[0, 1]``.
        a_param: ``(C,)`` ``Λ``, one per channel; ``a = σ(Λ)``.
        c: the exponent scale, 8 in the paper (a real number >= 0).
        h0: ``(B, C)`` state before step 0; zeros if omitted (and no reset: see ``reset``).
        reset: ``(B, T)`` bool, True at a document start. As in the official code the state
            restarts there: ``a_t = 0`` and the √ factor is replaced by 1, so ``h_t = i_t x_t``
            (nothing before the reset, ``h0`` included, reaches ``h_t`` or anything after it).
            This is the plain scan ``a_t = 0, b_t = i_t x_t``. The official code marks
            ``reset = segment_pos == 0``, so a sequence's first token is a reset; so do the
            models (:class:`linattn_edu.models.RGLRU` without a state). This function applies
            only the resets it is given: pass ``reset[:, 0] = True`` for that convention.

    Returns:
        ``(y, h_last)``: ``y = h`` ``(B, T, C)`` and the final state ``(B, C)``, float64.

    Raises:
        ValueError: wrong ndim or shapes, gate values outside ``[0, 1]``, ``c < 0``; each
            message names the argument.
        TypeError: a non-floating ``x``, gate, ``a_param`` or ``h0``, a non-bool ``reset``, a
            non-real ``c``.
    """
    x = btc(x, "x")
    gate_a = float_array(gate_a, "gate_a")
    gate_x = float_array(gate_x, "gate_x")
    for name, g in (("gate_a", gate_a), ("gate_x", gate_x)):
        if g.shape != x.shape:
            raise ValueError(f"{name} must have the same shape as x {x.shape} (B, T, C), got shape {g.shape}")
        _check_gate(g, name)
    batch, t_len, channels = x.shape
    a_param = float_array(a_param, "a_param")
    if a_param.shape != (channels,):
        raise ValueError(f"a_param must have shape (C,) = {(channels,)}, got shape {a_param.shape}")
    if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, float, np.integer, np.floating)):
        raise TypeError(f"c must be a real number, got {type(c).__name__}")
    if not (np.isfinite(c) and c >= 0):
        raise ValueError(f"c must be a finite number >= 0, got {c!r}")
    h0 = _initial_state(h0, batch, channels)
    if reset is not None:
        if hasattr(reset, "detach"):
            reset = reset.detach().cpu().numpy()
        reset = np.asarray(reset)
        if reset.dtype != np.bool_:
            raise TypeError(f"reset must be a bool array (B, T), got dtype {reset.dtype}")
        if reset.shape != (batch, t_len):
            raise ValueError(f"reset must have shape (B, T) = {(batch, t_len)}, got shape {reset.shape}")

    log_a = -_softplus(-a_param)  # log σ(Λ), (C,), always < 0
    log_a_t = float(c) * gate_a * log_a  # (B, T, C), <= 0
    a_t = np.exp(log_a_t)
    multiplier = np.sqrt(-np.expm1(2.0 * log_a_t))  # √(1 - a_t²), stable as a_t -> 1
    if reset is not None:
        r = reset[:, :, None]
        a_t = np.where(r, 0.0, a_t)
        multiplier = np.where(r, 1.0, multiplier)
    return linear_scan(a_t, multiplier * (gate_x * x), h0)


# ----------------------------------------------------------------------------------------------
# Causal depthwise Conv1D
# ----------------------------------------------------------------------------------------------


def causal_conv1d(x: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None) -> np.ndarray:
    """Causal depthwise 1-D convolution over time: each channel has its own ``K`` taps.

    ``y[:, t, c] = bias[c] + Σ_{k=0}^{K-1} weight[c, k] · x[:, t - (K-1) + k, c]``, with ``x`` taken
    as 0 before ``t = 0``: tap ``K-1`` multiplies the current token, tap 0 the one ``K-1`` steps
    back. Equal to ``torch.nn.functional.conv1d(x.transpose(1, 2), weight[:, None, :], bias,
    groups=C)`` on ``x`` left-padded with ``K-1`` zeros (torch's conv is a cross-correlation, so
    no kernel flip), transposed back. Output ``t`` never sees ``x`` after ``t``. Any ``T >= 1``,
    also ``T < K``.

    Args:
        x: ``(B, T, C)``.
        weight: ``(C, K)`` with ``K >= 1`` (the paper's recurrent block uses ``K = 4``).
        bias: ``(C,)``, or None for no bias.

    Returns:
        ``(B, T, C)`` float64.

    Raises:
        ValueError: wrong ndim or shapes; each message names the argument.
        TypeError: a non-floating input.
    """
    x = btc(x, "x")
    channels, t_len = x.shape[2], x.shape[1]
    weight = float_array(weight, "weight")
    if weight.ndim != 2 or weight.shape[0] != channels or weight.shape[1] < 1:
        raise ValueError(f"weight must have shape (C, K) = ({channels}, K) with K >= 1, got shape {weight.shape}")
    if bias is not None:
        bias = float_array(bias, "bias")
        if bias.shape != (channels,):
            raise ValueError(f"bias must have shape (C,) = {(channels,)}, got shape {bias.shape}")
    k_len = weight.shape[1]
    padded = np.concatenate([np.zeros((x.shape[0], k_len - 1, channels)), x], axis=1)  # (B, K-1+T, C)
    y = np.zeros_like(x)
    for k in range(k_len):
        y += weight[:, k] * padded[:, k : k + t_len]
    if bias is not None:
        y += bias
    return y
