"""Checkers for Chapter 5's exercises (Based: Taylor linear attention plus a sliding window).

1. :func:`check_taylor_exp`: the 2nd-order Taylor polynomial ``1 + x + x²/2`` of ``exp``.
2. :func:`check_taylor_feature_map`: a feature map whose dot products are ``1 + s + s²/2`` with
   ``s = q·k/√D`` (the full ``1 + D + D²`` layout or the compact symmetric one).
3. :func:`check_sliding_window_attention`: causal softmax attention in which each query sees only
   the last ``window`` keys, itself included.
4. :func:`check_mqar_accuracy`: the MQAR score, accuracy over the query positions only.
5. :func:`check_window_decode_step` (issue 14; it replaces 3 as the chapter's exercise 4): one decoding step of
   sliding-window attention with a ring-buffer cache of exactly ``window`` slots, which the checker
   owns and inspects after every step.
6. :func:`check_taylor_max_rel_error` (issue 14; it replaces 1 as the chapter's exercise 2): the
   worst relative error of ``1 + s + s²/2`` against ``exp(s)`` on ``|s| <= r``, found by calculus.
7. :func:`check_window_recall_fraction` (issue 14; it replaces 4 as the chapter's exercise 1): the
   share of MQAR queries whose answer lies inside a sliding window, an upper bound on the accuracy
   of a model that attends through the window only.

Each ``check_*`` function runs the reader's function on several cases, prints one line —
``✓ ...`` with the max error, or ``✗ ...`` naming the failing case, the max error and a hint —
and returns ``True`` or ``False``. Wrong answers never raise, so a notebook with unsolved
exercises still runs top to bottom; an exception raised by the reader's code is reported the
same way. Everything is float64 NumPy; torch tensors are accepted as results.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..reference import attention_mask, softmax, softmax_attention
from ..tasks.mqar import IGNORE_INDEX, make_mqar, mqar_accuracy
from ._common import report as _report, failure as _failure, as_array as _as_array
from ._common import close as _close, compare as _compare, matches as _matches

__all__ = [
    "check_window_recall_fraction",
    "check_window_decode_step",
    "check_taylor_max_rel_error",
    "check_taylor_exp",
    "check_taylor_feature_map",
    "check_sliding_window_attention",
    "check_mqar_accuracy",
]



# --------------------------------------------------------------------------------------------
# Exercise 1: the Taylor polynomial of exp
# --------------------------------------------------------------------------------------------


def _taylor_exp_cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(50)
    return [
        ("random (7,)", rng.standard_normal(7)),
        ("random (3, 4), scaled by 3", 3.0 * rng.standard_normal((3, 4))),
        ("edge values", np.array([-10.0, -3.0, -1.0, -1e-8, 0.0, 1e-8, 0.5, 1.0, 3.0, 10.0])),
    ]


def check_taylor_exp(fn: Callable[[np.ndarray], Any], *, quiet: bool = False) -> bool:
    """Check ``fn(x) -> 1 + x + x²/2`` elementwise, same shape as ``x``.

    Cases: random arrays of shapes ``(7,)`` and ``(3, 4)`` and edge values from -10 to 10 (0
    included). Hints recognize a missing ``/2``, a missing term, and ``np.exp`` itself.
    """
    name = "taylor_exp"
    worst = 0.0
    cases = _taylor_exp_cases()
    for case, x in cases:
        expected = 1.0 + x + x * x / 2.0
        try:
            got = fn(x.copy())
        except Exception as err:  # noqa: BLE001 - report whatever the reader's code raised
            return _failure(name, err, quiet)
        problem, err = _compare(got, expected)
        if problem is not None:
            return _report(False, name, f"{case}: {problem}. Hint: {_taylor_exp_hint(x, got)}", quiet)
        worst = max(worst, err)
    return _report(True, name, f"{len(cases)} cases (shapes (7,), (3, 4) and edge values ±10, 0), "
                   f"max |err| = {worst:.3g}", quiet)


def _taylor_exp_hint(x: np.ndarray, got: Any) -> str:
    try:
        arr = _as_array(got)
    except (TypeError, ValueError):
        return "return a NumPy array of x's shape"
    if arr.shape != x.shape:
        return "the polynomial acts elementwise: the output has the input's shape"
    variants = {
        "the quadratic term is x²/2 (x² divided by 2! = 2)": 1.0 + x + x * x,
        "that is exp(x) itself; the exercise is its 2nd-order Taylor polynomial 1 + x + x²/2": np.exp(x),
        "add the quadratic term x²/2": 1.0 + x,
        "start with the constant term 1 (= exp(0))": x + x * x / 2.0,
        "keep the linear term x": 1.0 + x * x / 2.0,
    }
    for hint, wrong in variants.items():
        if _matches(arr, wrong):
            return hint
    return "1 + x + x**2 / 2, elementwise"


# --------------------------------------------------------------------------------------------
# Exercise 2: the Taylor feature map, checked through its dot products
# --------------------------------------------------------------------------------------------


def _gram(fq: np.ndarray, fk: np.ndarray) -> np.ndarray:
    return np.einsum("...if,...jf->...ij", fq, fk)


def _taylor_kernel(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    s = _gram(q, k) / math.sqrt(q.shape[-1])
    return 1.0 + s + s * s / 2.0


def check_taylor_feature_map(fn: Callable[[np.ndarray], Any], *, quiet: bool = False) -> bool:
    """Check ``fn(x) -> φ(x)``, ``(..., D) -> (..., F)``, with ``φ(q)·φ(k) = 1 + s + s²/2``, ``s = q·k/√D``.

    No particular layout or ``F`` is required: ``fn`` is applied to a batch of queries and a batch
    of keys, and the Gram matrix ``φ(Q) φ(K)ᵀ`` is compared with ``1 + S + S²/2``, ``S = Q Kᵀ/√D``
    (shapes ``(5, 4)``, ``(2, 3, 6, 8)`` and ``D = 1``). The output must keep the input's leading
    dims and have ``F <= 1 + D + D²`` features: the full layout ``[1, x/D^¼, vec(x xᵀ)/(√2·√D)]``
    passes, and so does the compact symmetric one with ``1 + D + D(D+1)/2`` features (upper
    triangle of ``x xᵀ``, off-diagonal entries times ``√2``).
    """
    name = "taylor_feature_map"
    rng = np.random.default_rng(51)
    cases = [("q, k of shape (5, 4)", (5, 4), (5, 4)),
             ("q (2, 3, 6, 8), k (2, 3, 9, 8)", (2, 3, 6, 8), (2, 3, 9, 8)),
             ("D = 1: q (7, 1), k (4, 1)", (7, 1), (4, 1))]
    worst = 0.0
    dims: dict[int, int] = {}
    for case, q_shape, k_shape in cases:
        q, k = rng.standard_normal(q_shape), rng.standard_normal(k_shape)
        d = q.shape[-1]
        f_max = 1 + d + d * d
        got = []
        for x in (q, k):
            try:
                phi = fn(x.copy())
            except Exception as err:  # noqa: BLE001
                return _failure(name, err, quiet)
            if phi is None:
                return _report(False, name, f"{case}: your function returned None (a missing `return`?)", quiet)
            try:
                phi = _as_array(phi)
            except (TypeError, ValueError) as err:
                return _report(False, name, f"{case}: expected an array, got {type(phi).__name__} ({err})", quiet)
            if phi.ndim != x.ndim or phi.shape[:-1] != x.shape[:-1]:
                return _report(False, name, f"{case}: input {x.shape} gave shape {phi.shape}. Hint: keep the "
                               f"leading dims and replace only the last one, (..., D) -> (..., F); "
                               f"concatenate the blocks along axis=-1", quiet)
            if phi.shape[-1] > f_max:
                return _report(False, name, f"{case}: F = {phi.shape[-1]} features for D = {d}, more than "
                               f"1 + D + D² = {f_max}. Hint: [1, x/D^¼, vec(x xᵀ)/(√2·√D)] has 1 + D + D² "
                               f"features; the compact symmetric variant with 1 + D + D(D+1)/2 = "
                               f"{1 + d + d * (d + 1) // 2} passes too", quiet)
            if not np.all(np.isfinite(phi)):
                return _report(False, name, f"{case}: the features contain inf or nan", quiet)
            got.append(phi)
        fq, fk = got
        if fq.shape[-1] != fk.shape[-1]:
            return _report(False, name, f"{case}: φ(q) has {fq.shape[-1]} features but φ(k) has "
                           f"{fk.shape[-1]}: F must depend on D only", quiet)
        dims[d] = fq.shape[-1]
        expected = _taylor_kernel(q, k)
        gram = _gram(fq, fk)
        problem, err = _compare(gram, expected)
        if problem is not None:
            return _report(False, name, f"{case}: φ(q)·φ(k) ≠ 1 + s + s²/2, {problem}. "
                           f"Hint: {_taylor_map_hint(q, k, gram)}", quiet)
        worst = max(worst, err)
    d = max(dims)
    f = dims[d]
    full, compact = 1 + d + d * d, 1 + d + d * (d + 1) // 2
    if f == compact:
        layout = f"F = {f} for D = {d}: the compact symmetric layout (the full one, 1 + D + D² = {full}, passes too)"
    else:
        layout = (f"F = {f} for D = {d} (the compact symmetric variant with 1 + D + D(D+1)/2 = {compact} "
                  "features passes too)")
    return _report(True, name, f"{len(cases)} Gram matrices φ(Q)φ(K)ᵀ = 1 + S + S²/2; {layout}, "
                   f"max |err| = {worst:.3g}", quiet)


def _taylor_map_hint(q: np.ndarray, k: np.ndarray, gram: np.ndarray) -> str:
    d = q.shape[-1]
    dot = _gram(q, k)
    s = dot / math.sqrt(d)
    rows, cols = np.triu_indices(d)
    upper = np.einsum("...ip,...jp->...ij", q[..., rows] * q[..., cols], k[..., rows] * k[..., cols]) / (2.0 * d)
    variants = {
        "the quadratic block must give s²/2, not s²: divide vec(x xᵀ) by √2·√D "
        "(√2 on each side makes the 1/2)":
            1.0 + s + s * s,
        "scale by √D: s = q·k/√D, so the linear block is x/D^¼ and the quadratic block vec(x xᵀ)/(√2·√D)":
            1.0 + dot + dot * dot / 2.0,
        "the linear block is x/D^¼ (D to the 1/4 on each side gives the 1/√D of s), not x/√D":
            1.0 + s / math.sqrt(d) + s * s / 2.0,
        "the linear block is x/D^¼ (so that φ(q)·φ(k) contains q·k/√D), not x unscaled":
            1.0 + dot + s * s / 2.0,
        "the quadratic block is vec(x xᵀ)/(√2·√D), scaled by √D (not D): "
        "its dot product is (q·k)²/(2D) = s²/2":
            1.0 + s + s * s / (2.0 * d),
        "start with a constant feature 1 (the 1 of 1 + s + s²/2)": s + s * s / 2.0,
        "include the linear block x/D^¼ (the s of 1 + s + s²/2)": 1.0 + s * s / 2.0,
        "include the quadratic block vec(x xᵀ)/(√2·√D) (the s²/2 of 1 + s + s²/2)": 1.0 + s,
        "keeping only the upper triangle a <= b of x xᵀ drops the (b, a) terms: multiply each off-diagonal "
        "entry by √2 (or keep all D² entries)": 1.0 + s + upper,
    }
    for hint, wrong in variants.items():
        if _matches(gram, wrong):
            return hint
    return "φ(x) = [1, x/D^¼, vec(x xᵀ)/(√2·√D)] along the last axis, so φ(q)·φ(k) = 1 + s + s²/2"


# --------------------------------------------------------------------------------------------
# Exercise 3: sliding-window softmax attention
# --------------------------------------------------------------------------------------------


def _masked_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray,
                      scale: float | None = None) -> np.ndarray:
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = np.where(mask, q @ k.T * scale, -np.inf)
    return softmax(scores, axis=-1) @ v


def check_sliding_window_attention(fn: Callable[..., Any], *, quiet: bool = False) -> bool:
    """Check ``fn(q, k, v, window) -> o``: causal softmax attention restricted to the last ``window`` keys.

    Single head: ``q, k``: ``(T, D)``, ``v``: ``(T, Dv)``, output ``(T, Dv)``. Query ``i`` sees keys
    ``i - window < j <= i`` (``window`` keys, itself included; fewer at the start), scores scaled
    by ``1/√D``. Compared with :func:`~linattn_edu.reference.softmax_attention` with
    ``window=window`` (the mask of :func:`~linattn_edu.reference.attention_mask`). Cases: window 1
    (the output is ``v``), a window at least ``T`` (plain causal attention), a window in between,
    and ``T`` not a multiple of the window. Hints recognize a window of ``window ± 1`` keys, a
    two-sided band, a missing window or scale, and masking after the softmax.
    """
    name = "sliding_window_attention"
    rng = np.random.default_rng(52)
    cases = [("T = 6, window = 1 (output = v)", 6, 4, 3, 1),
             ("T = 10, window = 16 >= T (plain causal attention)", 10, 8, 5, 16),
             ("T = 12, window = 4", 12, 8, 5, 4),
             ("T = 13, window = 5 (T not a multiple of the window)", 13, 6, 7, 5),
             ("T = 9, window = 9 = T", 9, 4, 2, 9)]
    worst = 0.0
    for case, t, d, dv, window in cases:
        q, k = 1.5 * rng.standard_normal((t, d)), 1.5 * rng.standard_normal((t, d))
        v = rng.standard_normal((t, dv))
        expected = softmax_attention(q, k, v, causal=True, window=window)
        try:
            got = fn(q.copy(), k.copy(), v.copy(), window)
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        problem, err = _compare(got, expected)
        if problem is not None:
            return _report(False, name, f"{case}: {problem}. Hint: {_window_hint(q, k, v, window, got)}", quiet)
        worst = max(worst, err)
    return _report(True, name, f"{len(cases)} cases (window 1, window >= T, T not a multiple of the window), "
                   f"max |err| = {worst:.3g}", quiet)


def _window_hint(q: np.ndarray, k: np.ndarray, v: np.ndarray, window: int, got: Any) -> str:
    try:
        arr = _as_array(got)
    except (TypeError, ValueError):
        return "return an array of shape (T, Dv)"
    t = q.shape[0]
    if arr.shape != v.shape:
        return f"one output row per query, one column per value dim: shape {v.shape}"
    if not np.all(np.isfinite(arr)):
        return ("a row of the softmax has no visible key: query i always sees itself (j <= i), "
                "so the mask is i - window < j <= i")
    causal = attention_mask(t, t, causal=True)
    pos = np.arange(t)
    band = np.abs(pos[:, None] - pos[None, :]) < window
    probs = softmax(np.where(causal, q @ k.T / math.sqrt(q.shape[-1]), -np.inf), axis=-1)
    variants = {
        f"off by one: your query sees window + 1 = {window + 1} keys; it should see {window}, itself "
        "included: i - window < j <= i":
            _masked_attention(q, k, v, attention_mask(t, t, causal=True, window=window + 1)),
        f"off by one: your query sees window - 1 = {window - 1} keys; it should see {window}, itself "
        "included: i - window < j <= i":
            _masked_attention(q, k, v, attention_mask(t, t, causal=True, window=window - 1))
            if window > 1 else None,
        "the window looks back only: mask the future too (j <= i), the keys are i - window < j <= i":
            _masked_attention(q, k, v, band),
        "restrict to the window: keys j <= i - window are masked as well as the future ones":
            _masked_attention(q, k, v, causal),
        "scale the scores by 1/√D before the softmax": _masked_attention(
            q, k, v, attention_mask(t, t, causal=True, window=window), scale=1.0),
        "mask before the softmax (scores of hidden keys = -inf), not by zeroing probabilities afterwards: "
        "the weights of each row must sum to 1":
            (probs * attention_mask(t, t, causal=True, window=window)) @ v,
    }
    for hint, wrong in variants.items():
        if wrong is not None and _matches(arr, wrong):
            return hint
    return "o = softmax(q kᵀ/√D with scores outside i - window < j <= i set to -inf) v"


# --------------------------------------------------------------------------------------------
# Exercise 4: MQAR accuracy
# --------------------------------------------------------------------------------------------


def _mqar_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(53)
    cases = []
    _, tgt = make_mqar(8, seq_len=64, n_pairs=4, vocab_size=128, seed=5)
    cases.append(("N = 8, L = 64, random predictions", rng.integers(0, 128, size=tgt.shape), tgt))
    _, tgt = make_mqar(6, seq_len=128, n_pairs=8, vocab_size=256, seed=6)
    preds = rng.integers(0, 256, size=tgt.shape)
    query = tgt != IGNORE_INDEX
    right = query & (rng.random(tgt.shape) < 0.6)
    preds[right] = tgt[right]
    cases.append(("N = 6, L = 128, ~60% of the queries right", preds, tgt))
    _, tgt = make_mqar(4, seq_len=32, n_pairs=3, vocab_size=64, seed=7)
    preds = np.where(tgt != IGNORE_INDEX, tgt, rng.integers(0, 64, size=tgt.shape))
    cases.append(("N = 4, L = 32, every query right (accuracy 1.0)", preds, tgt))
    _, tgt = make_mqar(5, seq_len=64, n_pairs=2, vocab_size=100, seed=8)
    preds = np.zeros_like(tgt)
    preds[:, :4] = tgt[:, :4]  # a few non-query positions, never scored
    q_rows, q_cols = np.nonzero(tgt != IGNORE_INDEX)
    preds[q_rows[::3], q_cols[::3]] = tgt[q_rows[::3], q_cols[::3]]
    cases.append(("N = 5, L = 64, predictions 0 except a third of the queries", preds, tgt))
    return cases


def _as_number(got: Any) -> float | None:
    """A Python float from a reader's scalar (float, NumPy scalar, 0-d array or tensor), else None."""
    if isinstance(got, (bool, np.bool_)):
        return None
    if hasattr(got, "detach"):
        got = got.detach().cpu()
        if got.numel() != 1 or got.dim() != 0:
            return None
        return float(got.item())
    if isinstance(got, (int, float, np.integer, np.floating)):
        return float(got)
    if isinstance(got, np.ndarray) and got.ndim == 0 and np.issubdtype(got.dtype, np.number):
        return float(got)
    return None


def check_mqar_accuracy(fn: Callable[..., Any], *, quiet: bool = False) -> bool:
    """Check ``fn(predictions, targets) -> float``: accuracy over the query positions of MQAR.

    ``predictions``: ``(N, L)`` predicted token ids; ``targets``: ``(N, L)`` from
    :func:`~linattn_edu.tasks.make_mqar`, ``-100`` everywhere but at the queries. The accuracy is the
    fraction of positions with ``targets != -100`` where ``predictions == targets`` (compared with
    :func:`~linattn_edu.tasks.mqar_accuracy`). Cases: random predictions, some right, all right
    (1.0), and right predictions on positions that are not scored.
    """
    name = "mqar_accuracy"
    worst = 0.0
    cases = _mqar_cases()
    for case, preds, tgt in cases:
        expected = mqar_accuracy(preds, tgt)
        try:
            got = fn(preds.copy(), tgt.copy())
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        if got is None:
            return _report(False, name, f"{case}: your function returned None (a missing `return`?)", quiet)
        value = _as_number(got)
        if value is None:
            shape = getattr(got, "shape", None)
            return _report(False, name, f"{case}: return one number (a float), got {type(got).__name__}"
                           f"{'' if shape is None else f' of shape {tuple(shape)}'}. Hint: average over "
                           "all the query positions of all the examples", quiet)
        err = abs(value - expected) if math.isfinite(value) else float("inf")
        if not err <= 1e-12:
            return _report(False, name, f"{case}: got {value:.6g}, expected {expected:.6g}, max |err| = {err:.3g}. "
                           f"Hint: {_mqar_hint(preds, tgt, value)}", quiet)
        worst = max(worst, err)
    return _report(True, name, f"{len(cases)} cases (random, partly right, all right = 1.0), "
                   f"max |err| = {worst:.3g}", quiet)


def _mqar_hint(preds: np.ndarray, tgt: np.ndarray, value: float) -> str:
    query = tgt != IGNORE_INDEX
    hits = preds[query] == tgt[query]
    acc = float(hits.mean())
    variants = {
        "score only the query positions: average over targets != -100, not over every position":
            float((preds == tgt).mean()),
        "positions with target -100 are not scored: leave them out of the average instead of counting "
        "them as right": float(((preds == tgt) | ~query).mean()),
        "divide the number of right answers by the number of query positions (a fraction in [0, 1])":
            float(hits.sum()),
        "a fraction in [0, 1], not a percentage": 100.0 * acc,
        "that is the error rate: count the positions where the prediction equals the target": 1.0 - acc,
    }
    for hint, wrong in variants.items():
        if abs(value - wrong) <= 1e-12:
            return hint
    return "mask = targets != -100; accuracy = (predictions[mask] == targets[mask]).mean()"


# --------------------------------------------------------------------------------------------
# Issue 14: sliding-window decoding with a ring buffer
# --------------------------------------------------------------------------------------------


def check_window_decode_step(fn: Callable[..., Any], *, seed: int = 0, quiet: bool = False) -> bool:
    """Check ``fn(k_cache, v_cache, t, q_t, k_t, v_t) -> o_t``, one decoding step of window attention.

    The checker owns the caches, ``k_cache: (W, D)`` and ``v_cache: (W, Dv)``, initially NaN (slots
    never written hold garbage), and calls ``fn`` for ``t = 0, 1, ..., T-1`` with ``q_t, k_t: (D,)``,
    ``v_t: (Dv,)``. ``fn`` must write token ``t`` into slot ``t % W`` in place and return
    ``o_t: (Dv,)``, softmax attention of ``q_t`` (scores scaled by ``1/sqrt(D)``) over the last
    ``min(t + 1, W)`` tokens, itself included. After each step the checker compares ``o_t`` with
    full-sequence window attention and the caches with the last ``W`` tokens in ring order.
    """
    name = "window_decode_step"
    rng = np.random.default_rng(seed)
    cases = [(1, 5, 4, 3), (3, 10, 4, 2), (4, 4, 8, 8), (5, 17, 8, 3)]
    worst = 0.0
    for window, t_len, d, dv in cases:
        q, k = rng.standard_normal((t_len, d)) * 2, rng.standard_normal((t_len, d))
        v = rng.standard_normal((t_len, dv))
        expected = softmax_attention(q, k, v, window=window)
        k_cache, v_cache = np.full((window, d), np.nan), np.full((window, dv), np.nan)
        for t in range(t_len):
            case = f"W={window}, D={d}, Dv={dv}, step t={t}"
            try:
                got = fn(k_cache, v_cache, t, q[t].copy(), k[t].copy(), v[t].copy())
            except Exception as err:  # noqa: BLE001
                return _failure(name, err, quiet)
            slots = [s % window for s in range(max(0, t + 1 - window), t + 1)]
            tokens = list(range(max(0, t + 1 - window), t + 1))
            if not (np.array_equal(k_cache[slots], k[tokens]) and np.array_equal(v_cache[slots], v[tokens])):
                return _report(False, name, f"{case}: after the step the caches should hold tokens "
                               f"{tokens[0]}..{t} at slots (token % W); write k_t, v_t into slot t % W, in place "
                               "(k_cache[t % W] = k_t)", quiet)
            problem, err = _compare(got, expected[t])
            if problem is not None:
                hint = ""
                if t + 1 < window:
                    hint = (" Hint: the cache is not full yet; slots never written hold NaN in this checker "
                            "(garbage in a real cache): attend only to the min(t + 1, W) filled slots")
                else:
                    hint = " Hint: the full cache holds exactly the W visible tokens, the current one included"
                return _report(False, name, f"{case}: {problem}.{hint}", quiet)
            worst = max(worst, err)
    return _report(True, name, f"{len(cases)} sequences step by step (W = 1, W = T, W > T), caches of exactly W "
                   f"slots, max |err| = {worst:.1e}", quiet)


# --------------------------------------------------------------------------------------------
# Issue 14: the worst relative error of the Taylor polynomial on an interval
# --------------------------------------------------------------------------------------------


def _taylor_rel_error(s: np.ndarray) -> np.ndarray:
    """``(1 + s + s²/2) e^{-s} - 1``: the signed relative error, decreasing in ``s``."""
    return (1 + s + s * s / 2) * np.exp(-s) - 1


def check_taylor_max_rel_error(fn: Callable[[float], Any], *, quiet: bool = False) -> bool:
    """Check ``fn(r) -> max_{|s| <= r} |1 + s + s²/2 - e^s| / e^s`` for ``r >= 0``.

    The exact value is ``(1 - r + r²/2) e^r - 1`` (the error is decreasing in ``s``, and larger at
    ``-r`` than at ``+r``); it is compared at several ``r`` with a relative tolerance of 1e-9. A
    grid search passes only if the grid contains ``-r`` exactly (which is the point to discover).
    Hints recognize the error at ``+r`` only and the absolute instead of the relative error.
    """
    name = "taylor_max_rel_error"
    radii = [0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 6.0]
    for r in radii:
        expected = float(_taylor_rel_error(np.float64(-r)))
        try:
            got = fn(r)
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        value = _as_number(got)
        if value is None:
            return _report(False, name, f"r={r}: return a number, got {type(got).__name__}", quiet)
        if not math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-15):
            hint = ("differentiate the relative error (1 + s + s²/2) e^{-s} - 1: its derivative has one sign, so "
                    "the maximum of its absolute value sits at an end of [-r, r]; which end?")
            if math.isclose(value, abs(float(_taylor_rel_error(np.float64(r)))), rel_tol=1e-9):
                hint = ("that is the error at s = +r; the polynomial errs more on the negative side, where e^s decays "
                        "and 1 + s + s²/2 does not")
            elif math.isclose(value, abs(1 - r + r * r / 2 - math.exp(-r)), rel_tol=1e-9):
                hint = "that is the absolute error at -r; divide by e^s (relative error)"
            return _report(False, name, f"r={r}: got {value:.12g}, expected {expected:.12g}. Hint: {hint}", quiet)
    return _report(True, name, f"{len(radii)} radii from 0 to 6; at r = 1 the polynomial errs by up to "
                   f"{float(_taylor_rel_error(np.float64(-1.0))):.1%}", quiet)


# --------------------------------------------------------------------------------------------
# Issue 14: which MQAR queries can a sliding window answer?
# --------------------------------------------------------------------------------------------


def window_recall_fraction_reference(inputs: np.ndarray, targets: np.ndarray, window: int) -> float:
    """Share of query positions ``p`` whose bound *value* token sits at ``p - window < j <= p``.

    ``inputs, targets: (N, L)`` from :func:`~linattn_edu.tasks.mqar.make_mqar`. The binding of a key is
    its first occurrence ``i`` (keys appear once in the pair list before being queried); its value is
    at ``i + 1``.
    """
    hits = total = 0
    for row_in, row_tgt in zip(inputs, targets):
        for p in np.flatnonzero(row_tgt != IGNORE_INDEX):
            value_pos = int(np.flatnonzero(row_in == row_in[p])[0]) + 1
            hits += p - window < value_pos <= p
            total += 1
    return hits / total


def check_window_recall_fraction(fn: Callable[..., Any], *, quiet: bool = False) -> bool:
    """Check ``fn(inputs, targets, window) -> float`` against :func:`window_recall_fraction_reference`.

    Windows range from 1 (the query itself only) to the whole sequence; the MQAR layouts include
    the power-law gaps of the chapter. Hints recognize measuring to the key instead of the value
    and a window of ``window + 1`` tokens.
    """
    name = "window_recall_fraction"
    cases = []
    for seed, (n, length, pairs, vocab) in enumerate([(4, 32, 4, 64), (16, 64, 8, 128), (8, 128, 16, 256)]):
        x, y = make_mqar(n, seq_len=length, n_pairs=pairs, vocab_size=vocab, seed=40 + seed)
        # the smallest window that shows each query its value: p - (i + 1) + 1
        needed = sorted({int(p - np.flatnonzero(r == r[p])[0]) for r, t in zip(x, y)
                         for p in np.flatnonzero(t != IGNORE_INDEX)})
        edges = {needed[0] - 1, needed[0], needed[len(needed) // 2] - 1, needed[len(needed) // 2]}
        for window in sorted({1, 2, length // 4, length} | {w for w in edges if w >= 1}):
            cases.append((f"L={length}, {pairs} pairs, window={window}", x, y, window))
    for case, x, y, window in cases:
        expected = window_recall_fraction_reference(x, y, window)
        try:
            got = fn(x.copy(), y.copy(), window)
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        value = _as_number(got)
        if value is None:
            return _report(False, name, f"{case}: return a number, got {type(got).__name__}", quiet)
        if not math.isclose(value, expected, rel_tol=1e-12, abs_tol=1e-12):
            hint = ("for each query position p, find where its key was bound (its first occurrence i); the "
                    "answer is the value at i + 1, visible when p - window < i + 1 <= p")
            if math.isclose(value, window_recall_fraction_reference(x, y, window + 1), abs_tol=1e-12):
                hint = ("your window holds window + 1 tokens; it covers p - window < j <= p, the current token "
                        "included")
            elif math.isclose(value, _key_in_window(x, y, window), abs_tol=1e-12):
                hint = "you measured to the key; the model must see the *value* token, one position later"
            return _report(False, name, f"{case}: got {value:.6g}, expected {expected:.6g}. Hint: {hint}", quiet)
    return _report(True, name, f"{len(cases)} cases (windows from 1 to L), exact", quiet)


def _key_in_window(inputs: np.ndarray, targets: np.ndarray, window: int) -> float:
    """The slip: the *key's* binding position inside the window instead of its value's."""
    hits = total = 0
    for row_in, row_tgt in zip(inputs, targets):
        for p in np.flatnonzero(row_tgt != IGNORE_INDEX):
            key_pos = int(np.flatnonzero(row_in == row_in[p])[0])
            hits += p - window < key_pos <= p
            total += 1
    return hits / total
