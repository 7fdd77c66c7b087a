"""Checkers for Chapter 6's exercises (Griffin and Hawk: the RG-LRU and its linear scan).

1. :func:`check_scan_combine`: the associative combine of two scan elements,
   ``(a1, b1) ∘ (a2, b2) = (a1·a2, a2·b1 + b2)`` (the left element applied first).
2. :func:`check_associative_scan`: ``h_t = a_t h_{t-1} + b_t`` over one ``(T, C)`` sequence by a
   Hillis–Steele parallel prefix scan (values checked; the depth cannot be seen from outside).
3. :func:`check_rg_lru_step`: one step of the RG-LRU in log space, stable when ``a_t ≈ 1``.
4. :func:`check_causal_conv1d`: the causal depthwise Conv1D in front of the RG-LRU.

Since issue 14 the chapter's first two exercises are (the two above stay for instructors):

5. :func:`check_blelloch_scan`: a work-efficient (Blelloch / Brent–Kung) scan written with a combine
   the checker supplies and counts: at most ``3·T'`` combined pairs and ``2·log2 T' + 2`` rounds
   (``T'`` = ``T`` rounded up to a power of two), which a Hillis–Steele scan (``T log T`` work) and a
   loop (``T`` rounds) both exceed.
6. :func:`check_chunked_scan`: the scan a kernel runs, chunk by chunk, with a carried state decayed
   by the chunk's cumulative gates.
7. :func:`check_causal_conv1d_backward`: the gradients of the causal depthwise convolution (replaces
   4 as the chapter's exercise 4): ``dx`` is an *anti-causal* correlation with the same taps.
8. :func:`check_chunked_decay_attention` (the decay-bridge section): linear attention with a scalar
   decay gate in chunked form, stable over long sequences where cumulative products underflow.

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

from ..reference import causal_conv1d, linear_scan, rg_lru
from ._common import report as _report, failure as _failure, as_array as _as_array
from ._common import close as _close, compare as _compare, matches as _matches

__all__ = [
    "check_scan_combine",
    "check_associative_scan",
    "check_rg_lru_step",
    "check_causal_conv1d",
    "check_blelloch_scan",
    "check_chunked_scan",
    "check_causal_conv1d_backward",
    "check_chunked_decay_attention",
]



def _as_pair(got: Any) -> tuple[np.ndarray, np.ndarray] | str:
    """A reader's ``(a, b)`` as two float64 arrays, or a message saying what is wrong with it."""
    if got is None:
        return "your function returned None (a missing `return`?)"
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        length = f" of length {len(got)}" if isinstance(got, (tuple, list)) else ""
        return f"return a tuple (a, b), got {type(got).__name__}{length}"
    try:
        return _as_array(got[0]), _as_array(got[1])
    except (TypeError, ValueError) as err:
        return f"expected two arrays (a, b) ({err})"


# --------------------------------------------------------------------------------------------
# Exercise 1: the combine of two scan elements
# --------------------------------------------------------------------------------------------


def _combine(left: tuple[np.ndarray, np.ndarray], right: tuple[np.ndarray, np.ndarray]):
    (a1, b1), (a2, b2) = left, right
    return a1 * a2, a2 * b1 + b2


def _element(rng: np.random.Generator, shape: tuple[int, ...], low: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(low, 1.0, size=shape), rng.standard_normal(shape)


def _combine_cases() -> list[tuple[str, tuple, tuple]]:
    rng = np.random.default_rng(60)
    cases = [
        ("shape (6,)", _element(rng, (6,)), _element(rng, (6,))),
        ("shape (3, 4)", _element(rng, (3, 4)), _element(rng, (3, 4))),
        ("shape (2, 3, 5), a in [-1, 1]", _element(rng, (2, 3, 5), -1.0), _element(rng, (2, 3, 5), -1.0)),
        ("0-d arrays", tuple(np.asarray(v[0]) for v in _element(rng, (1,))),
         tuple(np.asarray(v[0]) for v in _element(rng, (1,)))),
    ]
    a, b = _element(rng, (4,))
    cases.append(("identity on the left: (1, 0) ∘ (a, b) = (a, b)", (np.ones(4), np.zeros(4)), (a, b)))
    cases.append(("identity on the right: (a, b) ∘ (1, 0) = (a, b)", (a.copy(), b.copy()), (np.ones(4), np.zeros(4))))
    return cases


def _call_combine(fn: Callable[..., Any], left, right):
    return fn((left[0].copy(), left[1].copy()), (right[0].copy(), right[1].copy()))


def _associativity_gap(fn: Callable[..., Any], rng: np.random.Generator, n: int = 3) -> float:
    """Max |(x∘y)∘z - x∘(y∘z)| over ``n`` random triples of the reader's combine (inf if unusable)."""

    def op(p, q):
        if isinstance(p, str) or isinstance(q, str):
            return "unusable"
        return _as_pair(fn((p[0].copy(), p[1].copy()), (q[0].copy(), q[1].copy())))

    worst = 0.0
    for _ in range(n):
        x, y, z = (_element(rng, (4, 5), -1.0) for _ in range(3))
        lhs, rhs = op(op(x, y), z), op(x, op(y, z))
        if isinstance(lhs, str) or isinstance(rhs, str):
            return float("inf")
        for p, q in zip(lhs, rhs):
            if p.shape != q.shape or not np.all(np.isfinite(p)) or not np.all(np.isfinite(q)):
                return float("inf")
            worst = max(worst, float(np.max(np.abs(p - q))) if p.size else 0.0)
    return worst


def check_scan_combine(fn: Callable[..., Any], *, quiet: bool = False) -> bool:
    """Check ``fn(left, right) -> (a, b)``: the combine ``(a1, b1) ∘ (a2, b2) = (a1·a2, a2·b1 + b2)``.

    ``left = (a1, b1)`` and ``right = (a2, b2)`` are tuples of NumPy arrays of one shape (any
    shape, 0-d included); ``left`` is the earlier element, applied first: ``h -> a1 h + b1`` then
    ``h -> a2 h + b2`` is ``h -> (a1·a2) h + (a2·b1 + b2)``. Cases: shapes ``(6,)``, ``(3, 4)``,
    ``(2, 3, 5)`` (negative ``a`` too), 0-d arrays, and the identity ``(1, 0)`` on either side.
    Then the reader's combine is applied to 3 random triples both ways, ``(x∘y)∘z`` and
    ``x∘(y∘z)``, which must agree (that is what lets a parallel scan regroup the steps). Hints
    recognize the swapped order (still associative, but the other composition), ``b1 + b2``,
    and ``a1`` or ``a1·a2`` in place of ``a2``.
    """
    name = "scan_combine"
    worst = 0.0
    cases = _combine_cases()
    for case, left, right in cases:
        expected = _combine(left, right)
        try:
            got = _call_combine(fn, left, right)
        except Exception as err:  # noqa: BLE001 - report whatever the reader's code raised
            return _failure(name, err, quiet)
        pair = _as_pair(got)
        if isinstance(pair, str):
            return _report(False, name, f"{case}: {pair}", quiet)
        for part, g, e in zip(("a", "b"), pair, expected):
            problem, err = _compare(g, e)
            if problem is not None:
                hint = _combine_hint(part, left, right, g, fn)
                return _report(False, name, f"{case}: {part} wrong, {problem}. Hint: {hint}", quiet)
            worst = max(worst, err)
    try:
        gap = _associativity_gap(fn, np.random.default_rng(61))
    except Exception as err:  # noqa: BLE001
        return _failure(name, err, quiet)
    if not gap <= 1e-12:
        return _report(False, name, "right values, but (x∘y)∘z ≠ x∘(y∘z) on random triples, "
                       f"max |err| = {gap:.3g}. "
                       "Hint: return new arrays built from the inputs only (no state kept between calls, "
                       "no in-place changes to the inputs)", quiet)
    return _report(True, name, f"{len(cases)} cases (shapes (6,), (3, 4), (2, 3, 5), 0-d, identity (1, 0) both "
                   f"sides), associative on 3 random triples, max |err| = {worst:.3g}", quiet)


def _combine_hint(part: str, left, right, got: np.ndarray, fn: Callable[..., Any]) -> str:
    (a1, b1), (a2, b2) = left, right
    if got.shape != a1.shape:
        return "the combine acts elementwise: a and b have the inputs' shape"
    if part == "a":
        variants = {
            "the a's compose by multiplication (a1·a2): a2 (a1 h) = (a1·a2) h": a1 + a2,
            "the combined a is a1·a2 (both maps scale h)": a2,
        }
        for hint, wrong in variants.items():
            if _matches(got, wrong):
                return hint
        return "a = a1·a2"
    swapped = "the right element's a multiplies the left's b: left first, then right gives " \
              "a2 (a1 h + b1) + b2 = (a1·a2) h + (a2·b1 + b2); a1·b2 + b1 is the other order (right first)"
    variants = {
        swapped: a1 * b2 + b1,
        "the right element's a multiplies the left's b: b1 goes through the second map too, a2·b1 + b2, "
        "not b1 + b2": b1 + b2,
        "the right element's a multiplies the left's b: a2·b1 + b2, not a1·b1 + b2": a1 * b1 + b2,
        "the right element's a multiplies the left's b: only a2 (not a1·a2) multiplies b1": a1 * a2 * b1 + b2,
        "b2 is added after the second map: a2·b1 + b2, not a2·(b1 + b2)": a2 * (b1 + b2),
    }
    hint = next((h for h, wrong in variants.items() if _matches(got, wrong)),
                "b = a2·b1 + b2: the right element's a multiplies the left's b")
    try:
        gap = _associativity_gap(fn, np.random.default_rng(62), n=1)
    except Exception:  # noqa: BLE001 - the hint is best effort
        gap = float("nan")
    if hint == swapped and gap <= 1e-12:
        hint += " (yours is associative too, but it composes the maps in the other order)"
    elif gap > 1e-12:
        hint += " (and yours is not associative: (x∘y)∘z ≠ x∘(y∘z), so a parallel scan could not regroup it)"
    return hint


# --------------------------------------------------------------------------------------------
# Exercise 2: the linear scan by a parallel prefix (Hillis–Steele)
# --------------------------------------------------------------------------------------------

_SCAN_SHAPES = [(1, 3), (2, 4), (5, 3), (8, 2), (13, 5), (64, 4)]


def _scan_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return linear_scan(a[None], b[None])[0][0]


def _hillis_steele(a: np.ndarray, b: np.ndarray, *, steps: int | None = None, a_first: bool = False,
                   swapped: bool = False, in_place_ascending: bool = False) -> np.ndarray:
    """Hillis–Steele on ``(T, C)`` with the usual mistakes switchable (for the hints)."""
    acc_a, acc_b = a.copy(), b.copy()
    t_len = a.shape[0]
    d, k = 1, 0
    while d < t_len and (steps is None or k < steps):
        if in_place_ascending:
            for t in range(d, t_len):
                acc_a[t], acc_b[t] = acc_a[t - d] * acc_a[t], acc_a[t] * acc_b[t - d] + acc_b[t]
        else:
            pa, pb, ca, cb = acc_a[:-d].copy(), acc_b[:-d].copy(), acc_a[d:].copy(), acc_b[d:].copy()
            if a_first:
                acc_a[d:] = pa * ca
                acc_b[d:] = acc_a[d:] * pb + cb
            elif swapped:
                acc_a[d:], acc_b[d:] = pa * ca, pa * cb + pb
            else:
                acc_a[d:], acc_b[d:] = pa * ca, ca * pb + cb
        d, k = 2 * d, k + 1
    return acc_b


def check_associative_scan(fn: Callable[[np.ndarray, np.ndarray], Any], *, quiet: bool = False) -> bool:
    """Check ``fn(a, b) -> h``, ``h_t = a_t h_{t-1} + b_t`` with ``h_{-1} = 0``, for one sequence.

    ``a, b``: NumPy arrays of shape ``(T, C)`` (time first); ``h``: ``(T, C)``. Compared with
    :func:`~linattn_edu.reference.linear_scan` for ``T`` in 1, 2, 5, 8, 13, 64 (not only powers
    of two: ``⌈log2 T⌉`` Hillis–Steele steps, offsets 1, 2, 4, …, must cover any ``T``).

    Values only: the checker sees what ``fn`` returns, not how it got there, so it cannot verify
    the log depth — a plain loop over ``t`` passes too. Count your own steps: for ``T = 64`` a
    Hillis–Steele scan makes ⌈log2 64⌉ = 6 passes over the whole sequence, the loop 64. Hints
    recognize too few steps (``⌊log2 T⌋``), a step that reads values already updated in the same
    step, the swapped combine, an exclusive scan and the ``a`` half returned instead of ``b``.
    """
    name = "associative_scan"
    rng = np.random.default_rng(63)
    worst = 0.0
    for t, c in _SCAN_SHAPES:
        a, b = rng.uniform(0.5, 1.0, size=(t, c)), rng.standard_normal((t, c))
        expected = _scan_reference(a, b)
        case = f"T = {t}, C = {c}"
        try:
            got = fn(a.copy(), b.copy())
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        if isinstance(got, (tuple, list)):
            return _report(False, name, f"{case}: return h alone, an array (T, C), not a "
                           f"{type(got).__name__} of length {len(got)}", quiet)
        problem, err = _compare(got, expected)
        if problem is not None:
            return _report(False, name, f"{case}: {problem}. Hint: {_scan_hint(a, b, got)}", quiet)
        worst = max(worst, err)
    return _report(True, name, f"{len(_SCAN_SHAPES)} sequences (T = 1, 2, 5, 8, 13, 64) equal to linear_scan, "
                   f"max |err| = {worst:.3g}. Values only: the checker can't see the depth; for T = 64 "
                   "Hillis–Steele takes 6 steps (offsets 1, 2, 4, 8, 16, 32), a loop 64", quiet)


def _scan_hint(a: np.ndarray, b: np.ndarray, got: Any) -> str:
    try:
        arr = _as_array(got)
    except (TypeError, ValueError):
        return "return an array of shape (T, C)"
    t = a.shape[0]
    if arr.shape != a.shape:
        if arr.shape == a.shape[::-1]:
            return "time is axis 0: a, b and h are (T, C)"
        return f"h has one state per step and channel: shape {a.shape} (T, C)"
    h = _scan_reference(a, b)
    variants = {
        f"too few steps: T = {t} needs ⌈log2 T⌉ = {math.ceil(math.log2(t)) if t > 1 else 0} "
        "(offsets 1, 2, 4, … while d < T), not ⌊log2 T⌋":
            _hillis_steele(a, b, steps=int(math.floor(math.log2(t)))) if t > 1 else None,
        "each step must read the values from before the step: the new b uses the old a of position t "
        "(update b before a, or compute both from copies)":
            _hillis_steele(a, b, a_first=True),
        "each step must read the values from before the step: updating in place from left to right "
        "makes position t read position t - d's new value (go right to left, or use slices of the old arrays)":
            _hillis_steele(a, b, in_place_ascending=True),
        "the combine is (a1, b1) ∘ (a2, b2) = (a1·a2, a2·b1 + b2) with the earlier element (t - d) on the "
        "left: the later element's a multiplies the earlier prefix's b":
            _hillis_steele(a, b, swapped=True),
        "the scan is inclusive: h_t includes step t itself (h_0 = b_0)":
            np.concatenate([np.zeros_like(b[:1]), h[:-1]], axis=0),
        "return the b half of the prefixes (that is h), not the a half (the running product of the a's)":
            np.cumprod(a, axis=0),
        "h_t = a_t h_{t-1} + b_t: a_t multiplies the previous state, not b_t":
            np.cumsum(a * b, axis=0),
    }
    for hint, wrong in variants.items():
        if wrong is not None and _matches(arr, wrong):
            return hint
    return ("h_t = a_t h_{t-1} + b_t: combine position t with position t - d, (a, b)[t] <- "
            "(a[t-d]·a[t], a[t]·b[t-d] + b[t]), for d = 1, 2, 4, … while d < T; h is the b half")


# --------------------------------------------------------------------------------------------
# Exercise 3: one RG-LRU step in log space
# --------------------------------------------------------------------------------------------

_REL_TOL = 1e-6  # relative error allowed per entry in the a_t ≈ 1 case


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _rg_step_reference(h, x, r, i, lam, c):
    return rg_lru(x[:, None], r[:, None], i[:, None], lam, c=c, h0=h)[0][:, 0]


def _rg_step_variant(h, x, r, i, lam, c, *, sign=1.0, use_c=True, use_r=True, use_i=True, carry=True,
                     mult="sqrt", gate_in_mult=True):
    """One RG-LRU step with one of the usual mistakes (for the hints)."""
    log_a = -np.logaddexp(0.0, -sign * lam)
    log_a_t = (c if use_c else 1.0) * (r if use_r else 1.0) * log_a
    a_t = np.exp(log_a_t)
    a_m = a_t if gate_in_mult else np.exp(log_a) * np.ones_like(a_t)
    m = {"sqrt": np.sqrt(-np.expm1(2.0 * np.log(a_m))), "one_minus": 1.0 - a_m, "none": np.ones_like(a_m)}[mult]
    return (a_t * h if carry else 0.0) + m * ((i if use_i else 1.0) * x)


def _rg_cases() -> list[tuple[str, dict[str, Any], float | None]]:
    rng = np.random.default_rng(64)
    cases = []

    def add(label, b, c_dim, lam, c=None, r=None, h=None):
        h = rng.standard_normal((b, c_dim)) if h is None else h
        x = rng.standard_normal((b, c_dim))
        r = rng.uniform(0.0, 1.0, size=(b, c_dim)) if r is None else r
        i = rng.uniform(0.2, 1.0, size=(b, c_dim))
        cases.append((label, dict(h=h, x=x, r=r, i=i, lam=lam), c))

    ring = lambda n: _logit(np.sqrt(rng.uniform(0.81, 0.998, size=n)))  # noqa: E731 - the paper's init
    add("B = 2, C = 6, Λ from the paper's init (a = σ(Λ) in [0.9, 0.999]), c = 8 (default)", 2, 6, ring(6))
    add("B = 3, C = 4, c = 4 (passed as c=4.0)", 3, 4, ring(4), c=4.0)
    r = rng.uniform(0.0, 1.0, size=(2, 5))
    r[:, ::2] = 0.0
    add("B = 2, C = 5, r_t = 0 on channels 0, 2, 4 (a_t = 1: the state is carried unchanged)", 2, 5, ring(5), r=r)
    add("B = 1, C = 7, Λ from -3 to 3, c = 2", 1, 7, np.linspace(-3.0, 3.0, 7), c=2.0)
    r = np.tile(np.array([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 5e-2]), (2, 1))
    add("Λ = 30, r_t from 1e-6 to 0.05, h_prev = 0 (a_t within 1e-13 of 1)", 2, 6, np.full(6, 30.0), r=r,
        h=np.zeros((2, 6)))
    return cases


def check_rg_lru_step(fn: Callable[..., Any], *, quiet: bool = False) -> bool:
    """Check ``fn(h_prev, x_t, r_t, i_t, a_param, c=8.0) -> h_t``: one RG-LRU step, in log space.

    ``h_prev, x_t, r_t, i_t``: ``(B, C)``; ``a_param``: ``Λ`` ``(C,)``; ``h_t``: ``(B, C)``::

        log a   = -softplus(-Λ)          (= log σ(Λ))
        log a_t = c · r_t · log a
        h_t     = a_t ⊙ h_prev + √(1 - a_t²) ⊙ (i_t ⊙ x_t),   1 - a_t² = -expm1(2 log a_t)

    Compared with :func:`~linattn_edu.reference.rg_lru` on ``T = 1`` with ``h0 = h_prev``.
    Cases: the paper's initialization of ``Λ`` with the default ``c`` (``fn`` called without
    ``c``), ``c = 4`` and ``c = 2`` (passed as ``c=``), ``r_t = 0`` (the state carried), and
    ``Λ = 30`` with small ``r_t`` and ``h_prev = 0``, where ``a_t`` is within 1e-13 of 1: there
    every entry must be right to a relative 1e-6 — ``np.sqrt(1 - a_t**2)`` cancels to 0 or loses
    whole digits, and so does ``np.log(σ(Λ))``. Hints recognize those and a missing ``c``,
    ``r_t``, ``i_t``, √ or state term, ``1 - a_t`` and ``σ(-Λ)``.
    """
    name = "rg_lru_step"
    worst, rel_worst = 0.0, 0.0
    cases = _rg_cases()
    for case, v, c in cases:
        c_used = 8.0 if c is None else c
        expected = _rg_step_reference(v["h"], v["x"], v["r"], v["i"], v["lam"], c_used)
        args = (v["h"].copy(), v["x"].copy(), v["r"].copy(), v["i"].copy(), v["lam"].copy())
        try:
            got = fn(*args) if c is None else fn(*args, c=c)
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        if isinstance(got, (tuple, list)):
            return _report(False, name, f"{case}: return h_t alone, an array (B, C), not a {type(got).__name__}",
                           quiet)
        problem, err = _compare(got, expected)
        if case.startswith("Λ = 30") and _finite_like(got, expected):
            # a_t ≈ 1: every entry is tiny, so judge each one relative to itself
            arr = _as_array(got)
            rel = float(np.max(np.abs(arr - expected) / np.abs(expected)))
            if not rel <= _REL_TOL:
                hint = _rg_precision_hint(v, arr, expected)  # the earlier cases caught the other mistakes
                return _report(False, name, f"{case}: max relative err = {rel:.3g} (tolerance {_REL_TOL:g}), "
                               f"max |err| = {err:.3g}. Hint: {hint}", quiet)
            rel_worst, problem = rel, None
        if problem is not None:
            hint = _rg_hint(v, c_used, c, got) or (
                "log a = -np.logaddexp(0, -Λ); log a_t = c·r_t·log a; "
                "h_t = exp(log a_t)·h_prev + np.sqrt(-np.expm1(2·log a_t))·i_t·x_t")
            return _report(False, name, f"{case}: {problem}. Hint: {hint}", quiet)
        worst = max(worst, err)
    return _report(True, name, f"{len(cases)} cases (paper's Λ init, c = 8, 4, 2, r_t = 0, Λ = 30 with a_t ≈ 1), "
                   f"max |err| = {worst:.3g}, max relative err at Λ = 30: {rel_worst:.1e}", quiet)


def _finite_like(got: Any, expected: np.ndarray) -> bool:
    """Whether ``got`` is a finite array of ``expected``'s shape (so a relative error makes sense)."""
    try:
        arr = _as_array(got)
    except (TypeError, ValueError):
        return False
    return arr.shape == expected.shape and bool(np.all(np.isfinite(arr)))


def _rg_precision_hint(v: dict[str, Any], got: np.ndarray, expected: np.ndarray) -> str:
    zeros = int(np.sum((got == 0.0) & (expected != 0.0)))
    lam, r, i, x = v["lam"], v["r"], v["i"], v["x"]
    log_a_sig = np.log(1.0 / (1.0 + np.exp(-lam)))
    via_log_sigmoid = np.sqrt(-np.expm1(2.0 * 8.0 * r * log_a_sig)) * i * x
    if np.allclose(got, via_log_sigmoid, rtol=1e-9, atol=0.0):
        return ("log a = np.log(σ(Λ)) keeps only ~3 digits at Λ = 30 (σ(30) = 1 - 9.4e-14 is rounded to the "
                "nearest double before the log): compute log a = -softplus(-Λ) = -np.logaddexp(0, -Λ) directly")
    lost = (f" (yours is exactly 0 for {zeros} of {got.size} entries)" if zeros else "")
    return ("√(1 - a_t²) loses its digits when a_t ≈ 1: a_t**2 rounds to 1 or to the double next to it, "
            f"so 1 - a_t**2 cancels{lost}. Use 1 - a_t² = -np.expm1(2 * log_a_t), i.e. "
            "np.sqrt(-np.expm1(2 * log_a_t)), and log a = -np.logaddexp(0, -Λ)")


def _rg_hint(v: dict[str, Any], c: float, c_passed: float | None, got: Any) -> str | None:
    """The hint for a recognized mistake, or None."""
    try:
        arr = _as_array(got)
    except (TypeError, ValueError):
        return "return an array of shape (B, C)"
    if arr.shape != v["h"].shape:
        return f"h_t has one state per batch row and channel: shape {v['h'].shape} (B, C)"
    args = (v["h"], v["x"], v["r"], v["i"], v["lam"])
    variants = {
        "use the c argument (the exponent scale): log a_t = c · r_t · log a, c is not always 8":
            _rg_step_variant(*args, 8.0) if c_passed is not None and c_passed != 8.0 else None,
        "log a_t = c · r_t · log a: multiply by c (a_t = a^(c·r_t))": _rg_step_variant(*args, c, use_c=False),
        "log a_t = c · r_t · log a: the recurrence gate r_t scales the exponent":
            _rg_step_variant(*args, c, use_r=False),
        "a = σ(Λ): a_param is Λ itself, log a = -softplus(-Λ) (the official code stores -Λ, not this exercise)":
            _rg_step_variant(*args, c, sign=-1.0),
        "gate the input: √(1 - a_t²) ⊙ (i_t ⊙ x_t)": _rg_step_variant(*args, c, use_i=False),
        "carry the state: h_t = a_t ⊙ h_prev + …": _rg_step_variant(*args, c, carry=False),
        "normalize the input by √(1 - a_t²), which keeps the state's scale": _rg_step_variant(*args, c, mult="none"),
        "the input multiplier is √(1 - a_t²), not 1 - a_t": _rg_step_variant(*args, c, mult="one_minus"),
        "the multiplier uses the gated a_t (after r_t and c): √(1 - a_t²), not √(1 - a²)":
            _rg_step_variant(*args, c, gate_in_mult=False),
    }
    for hint, wrong in variants.items():
        if wrong is not None and _matches(arr, wrong):
            return hint
    return None


# --------------------------------------------------------------------------------------------
# Exercise 4: the causal depthwise Conv1D
# --------------------------------------------------------------------------------------------


def _shifted_conv(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, back: int) -> np.ndarray:
    """``y[t] = bias + Σ_k w[:, k] · x[t - back + k]`` with ``x`` = 0 outside ``[0, T)``.

    ``back = K - 1`` is the causal convolution, ``0`` the right-padded (look-ahead) one.
    """
    t_len, k_len = x.shape[1], w.shape[1]
    y = np.zeros_like(x)
    for k in range(k_len):
        s = k - back  # y[t] reads x[t + s]
        if s >= 0:
            if s < t_len:
                y[:, : t_len - s] += w[:, k] * x[:, s:]
        elif -s < t_len:
            y[:, -s:] += w[:, k] * x[:, : t_len + s]
    return y if bias is None else y + bias


def check_causal_conv1d(fn: Callable[..., Any], *, quiet: bool = False) -> bool:
    """Check ``fn(x, weight, bias) -> y``: the causal depthwise Conv1D of the recurrent block.

    ``x``: ``(B, T, C)``; ``weight``: ``(C, K)``; ``bias``: ``(C,)``; ``y``: ``(B, T, C)`` with
    ``y[:, t, c] = bias[c] + Σ_k weight[c, k] · x[:, t - (K-1) + k, c]`` (zeros before ``t = 0``):
    tap ``K-1`` multiplies the current token. Compared with
    :func:`~linattn_edu.reference.causal_conv1d` for ``K`` = 3, 4, 1 and ``T < K``, ``T = 1``.
    Hints compute the flipped-kernel answer, the right-padded (look-ahead, non-causal) one, both
    together, outputs shifted by one step and a missing bias, and say which one yours equals.
    """
    name = "causal_conv1d"
    rng = np.random.default_rng(65)
    cases = [("B = 2, T = 7, C = 3, K = 3", 2, 7, 3, 3),
             ("B = 1, T = 10, C = 6, K = 4 (the paper's width)", 1, 10, 6, 4),
             ("B = 2, T = 5, C = 4, K = 1 (a per-channel scale)", 2, 5, 4, 1),
             ("B = 2, T = 2, C = 3, K = 4 (T < K)", 2, 2, 3, 4),
             ("B = 3, T = 1, C = 2, K = 3 (T = 1)", 3, 1, 2, 3)]
    worst = 0.0
    for case, b, t, c, k in cases:
        x = rng.standard_normal((b, t, c))
        w = rng.standard_normal((c, k))
        bias = rng.standard_normal(c)
        expected = causal_conv1d(x, w, bias)
        try:
            got = fn(x.copy(), w.copy(), bias.copy())
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        problem, err = _compare(got, expected)
        if problem is not None:
            return _report(False, name, f"{case}: {problem}. Hint: {_conv_hint(x, w, bias, got)}", quiet)
        worst = max(worst, err)
    return _report(True, name, f"{len(cases)} cases (K = 3, 4, 1, T < K, T = 1), max |err| = {worst:.3g}", quiet)


def _conv_hint(x: np.ndarray, w: np.ndarray, bias: np.ndarray, got: Any) -> str:
    try:
        arr = _as_array(got)
    except (TypeError, ValueError):
        return "return an array of shape (B, T, C)"
    b, t, c = x.shape
    k = w.shape[1]
    if arr.shape != x.shape:
        if arr.ndim == 3 and arr.shape[0] == b and arr.shape[2] == c and arr.shape[1] == t + k - 1:
            return (f"{t + k - 1} outputs for T = {t}: that is the 'full' convolution; keep the first T "
                    "(output t sees x_{t-K+1} … x_t)")
        if arr.ndim == 3 and arr.shape[0] == b and arr.shape[2] == c and arr.shape[1] == max(t - k + 1, 0):
            return (f"pad K - 1 = {k - 1} zeros on the left of time so that there are T outputs "
                    "(the 'valid' part is shorter)")
        return f"one output per input: shape {x.shape} (B, T, C)"
    flipped = w[:, ::-1]
    variants = {
        "your output equals the causal convolution with the kernel flipped: weight[c, K-1] multiplies the "
        "current token x_t and weight[c, 0] the one K-1 steps back (a cross-correlation, like torch's "
        "conv1d; np.convolve flips the kernel)": _shifted_conv(x, flipped, bias, k - 1),
        "your output equals the right-padded (non-causal) convolution: output t reads x_t … x_{t+K-1}, "
        "the future. Pad K - 1 zeros on the left of time, not on the right": _shifted_conv(x, w, bias, 0),
        "your output reads the future (right-padded) and flips the kernel: pad K - 1 zeros on the left, "
        "and let weight[c, K-1] multiply the current token x_t": _shifted_conv(x, flipped, bias, 0),
        "off by one: output t must include the current token x_t (tap K-1); yours stops at x_{t-1}":
            _shifted_conv(x, w, bias, k),
        "off by one: output t ends at x_t; yours reads x_{t+1} (pad K - 1 zeros on the left, not K - 2)":
            _shifted_conv(x, w, bias, k - 2) if k >= 2 else None,
        "add the bias (one per channel)": causal_conv1d(x, w),
    }
    for hint, wrong in variants.items():
        if wrong is not None and _matches(arr, wrong):
            return hint
    return ("y[:, t, c] = bias[c] + Σ_k weight[c, k]·x[:, t-(K-1)+k, c]: left-pad time with K - 1 zeros and "
            "slide the kernel without flipping it")


# --------------------------------------------------------------------------------------------
# Exercise 1 (issue 14): a work-efficient scan, with a combine the checker counts
# --------------------------------------------------------------------------------------------


class _CountingCombine:
    """The combine ``(a1, b1) ∘ (a2, b2) = (a1·a2, a2·b1 + b2)`` that counts rounds and pairs.

    Each call is one *round* (one parallel step); it may combine many pairs at once when given
    arrays of shape ``(n, C)`` (``n`` pairs) or ``(C,)`` (one pair).
    """

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.calls = 0
        self.pairs = 0

    def __call__(self, left: Any, right: Any) -> tuple[np.ndarray, np.ndarray]:
        (a1, b1), (a2, b2) = left, right
        a1, b1, a2, b2 = (np.asarray(x, dtype=np.float64) for x in (a1, b1, a2, b2))
        if not (a1.shape == b1.shape == a2.shape == b2.shape) or a1.shape[-1:] != (self.channels,):
            raise ValueError(f"combine: a1, b1, a2, b2 must share a shape (..., C={self.channels}), got "
                             f"{a1.shape}, {b1.shape}, {a2.shape}, {b2.shape}")
        self.calls += 1
        self.pairs += int(np.prod(a1.shape[:-1], dtype=np.int64))
        return a1 * a2, a2 * b1 + b2


def _blelloch_bounds(t: int) -> tuple[int, int]:
    """(max rounds, max pairs) allowed for length ``t``."""
    t_pad = 1 << max(0, math.ceil(math.log2(t))) if t > 1 else 1
    return 2 * int(math.log2(t_pad)) + 2, 3 * t_pad


def check_blelloch_scan(fn: Callable[..., Any], *, seed: int = 0, quiet: bool = False) -> bool:
    """Check ``fn(a, b, combine) -> h`` for ``h_t = a_t h_{t-1} + b_t``, ``h_{-1} = 0`` (inclusive).

    ``a, b: (T, C)``; ``combine(left, right)`` is the checker's associative operator, applied to
    pairs ``(a, b)`` of arrays of shape ``(n, C)`` (``n`` pairs at once, one *round*) or ``(C,)``.
    Every combining must go through it: besides the values, the checker requires at most
    ``2·log2 T' + 2`` calls and ``3·T'`` combined pairs, ``T'`` = ``T`` rounded up to a power of
    two. Lengths include 1 and non-powers of two.
    """
    name = "blelloch_scan"
    rng = np.random.default_rng(seed)
    worst = 0.0
    lengths = [1, 2, 5, 8, 13, 64, 256]
    for t in lengths:
        c = 3
        a, b = rng.uniform(0.3, 1.0, (t, c)), rng.standard_normal((t, c))
        expected = _scan_reference(a, b)
        combine = _CountingCombine(c)
        try:
            got = fn(a.copy(), b.copy(), combine)
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        problem, err = _compare(got, expected)
        if problem is not None:
            return _report(False, name, f"T={t}: {problem}. Hint: h_t = a_t h_(t-1) + b_t from h = 0; the "
                           "combine applies its left (earlier) element first", quiet)
        rounds, pairs = _blelloch_bounds(t)
        if combine.calls > rounds:
            return _report(False, name, f"T={t}: right values, but {combine.calls} calls of combine (rounds); a "
                           f"work-efficient scan needs at most {rounds}. Hint: combine whole levels of the tree "
                           "at once (strided slices), not one pair per call", quiet)
        if combine.pairs > pairs:
            return _report(False, name, f"T={t}: right values, but {combine.pairs} combined pairs; a work-efficient "
                           f"scan needs at most {pairs} (a Hillis–Steele scan does about T·log2 T). Hint: "
                           "up-sweep a tree of partial reductions, then sweep down", quiet)
        worst = max(worst, err)
    return _report(True, name, f"{len(lengths)} lengths (1 to 256, non-powers of two), work and rounds within "
                   f"the Blelloch bounds, max |err| = {worst:.1e}", quiet)


# --------------------------------------------------------------------------------------------
# Exercise 2 (issue 14): the chunked scan with a decayed carry
# --------------------------------------------------------------------------------------------


def _chunked_without_decay(a: np.ndarray, b: np.ndarray, chunk: int, h0: np.ndarray) -> np.ndarray:
    """The usual slip: the carry is added to every step of the next chunk without decaying it."""
    out = np.empty_like(b)
    carry = h0.copy()
    for start in range(0, a.shape[0], chunk):
        local = _scan_reference(a[start:start + chunk], b[start:start + chunk])
        out[start:start + chunk] = local + carry
        carry = out[start + len(local) - 1]
    return out


def check_chunked_scan(fn: Callable[..., Any], *, seed: int = 0, quiet: bool = False) -> bool:
    """Check ``fn(a, b, chunk, h0) -> h``: the scan of ``a, b: (T, C)`` from ``h0: (C,)``, by chunks.

    ``h_t = a_t h_{t-1} + b_t`` with ``h_{-1} = h0``. Values are compared with the sequential scan;
    chunk sizes include 1, sizes that do not divide ``T`` and sizes larger than ``T``, and gates
    of exactly 0 (a reset: dividing by cumulative gates fails there) and exactly 1. A hint recognizes a carry that was not
    multiplied by the chunk's cumulative gates.
    """
    name = "chunked_scan"
    rng = np.random.default_rng(seed)
    cases = [(10, 1), (10, 4), (17, 5), (16, 16), (7, 32), (40, 8)]
    worst = 0.0
    for t, chunk in cases:
        c = 3
        a = rng.uniform(0.0, 1.0, (t, c))
        a[t // 2, 0], a[:, 1] = 0.0, 1.0  # a reset in channel 0 (gate 0); channel 1 keeps everything
        b, h0 = rng.standard_normal((t, c)), rng.standard_normal(c)
        folded = b.copy()
        folded[0] += a[0] * h0
        expected = _scan_reference(a, folded)
        try:
            got = fn(a.copy(), b.copy(), chunk, h0.copy())
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        problem, err = _compare(got, expected)
        if problem is not None:
            hint = ""
            if _matches(got, _chunked_without_decay(a, b, chunk, h0)):
                hint = (" Hint: the carry enters step t of a chunk multiplied by the product of the chunk's "
                        "gates up to t (cumprod), not unchanged")
            return _report(False, name, f"T={t}, chunk={chunk}: {problem}.{hint}", quiet)
        worst = max(worst, err)
    return _report(True, name, f"{len(cases)} cases (chunk 1, ragged last chunks, chunk > T, a reset gate of 0), "
                   f"max |err| = {worst:.1e}", quiet)


# --------------------------------------------------------------------------------------------
# Exercise 4 (issue 14): the backward pass of the causal depthwise convolution
# --------------------------------------------------------------------------------------------


def causal_conv1d_backward_reference(
    x: np.ndarray, weight: np.ndarray, dy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dx (B, T, C), dweight (C, K), dbias (C,))`` of :func:`~linattn_edu.reference.causal_conv1d`.

    By float64 autograd through ``torch.nn.functional.conv1d`` on ``x`` left-padded with ``K - 1``
    zeros (the oracle); ``x, dy: (B, T, C)``, ``weight: (C, K)``.
    """
    import torch
    import torch.nn.functional as F

    c, k = weight.shape
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(weight, dtype=torch.float64, requires_grad=True)
    bt = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    y = F.conv1d(F.pad(xt.transpose(1, 2), (k - 1, 0)), wt[:, None, :], bt, groups=c).transpose(1, 2)
    grads = torch.autograd.grad(y, (xt, wt, bt), torch.tensor(dy, dtype=torch.float64))
    return tuple(g.numpy() for g in grads)


def _conv_backward_causal_dx(x: np.ndarray, weight: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """The usual slip: dx by the forward (causal) convolution of dy instead of the anti-causal one."""
    return causal_conv1d(dy, weight)


def check_causal_conv1d_backward(fn: Callable[..., Any], *, seed: int = 0, quiet: bool = False) -> bool:
    """Check ``fn(x, weight, dy) -> (dx, dweight, dbias)`` against float64 autograd.

    ``x, dy: (B, T, C)``, ``weight: (C, K)`` with tap ``K - 1`` on the current token (as in
    :func:`~linattn_edu.reference.causal_conv1d`). Cases include ``K = 1``, ``T < K`` and a batch
    of 3. Hints recognize a causal ``dx`` (it must look *forward* in time) and a ``dbias`` or
    ``dweight`` that does not sum over the batch.
    """
    name = "causal_conv1d_backward"
    rng = np.random.default_rng(seed)
    cases = [(1, 9, 2, 4), (3, 7, 3, 3), (2, 5, 4, 1), (2, 2, 3, 4)]
    worst = 0.0
    for b, t, c, k in cases:
        case = f"B={b}, T={t}, C={c}, K={k}"
        x, dy, weight = rng.standard_normal((b, t, c)), rng.standard_normal((b, t, c)), rng.standard_normal((c, k))
        expected = causal_conv1d_backward_reference(x, weight, dy)
        try:
            got = fn(x.copy(), weight.copy(), dy.copy())
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            return _report(False, name, f"{case}: return the tuple (dx, dweight, dbias), got {type(got).__name__}",
                           quiet)
        for label, g, e in zip(("dx", "dweight", "dbias"), got, expected):
            problem, err = _compare(g, e)
            if problem is not None:
                hint = ""
                if label == "dx" and _matches(g, _conv_backward_causal_dx(x, weight, dy)):
                    hint = (" Hint: x[s] feeds y[s], ..., y[s + K - 1]: its gradient collects dy from the "
                            "*future*, dx[s] = sum_k w[k] dy[s + K - 1 - k] (pad dy on the right)")
                elif label != "dx" and b > 1 and _matches(
                        g, causal_conv1d_backward_reference(x[:1], weight, dy[:1])[1 if label == "dweight" else 2]):
                    hint = " Hint: the taps and the bias are shared by the whole batch: sum over B as well as T"
                return _report(False, name, f"{case}: {label}: {problem}.{hint}", quiet)
            worst = max(worst, err)
    return _report(True, name, f"{len(cases)} cases (K = 1, T < K, a batch of 3), max |err| = {worst:.1e}", quiet)


# --------------------------------------------------------------------------------------------
# The decay bridge (section 6.x): chunked linear attention with a scalar decay gate
# --------------------------------------------------------------------------------------------


def _chunked_decay_by_division(q, k, v, a, chunk):
    """A tempting wrong answer: decays as ratios of running products over the *whole* sequence
    (0/0 once the product underflows)."""
    with np.errstate(all="ignore"):
        A = np.cumprod(a)
        ratio = np.tril(A[:, None] / A[None, :])  # noqa: the mistake the hint names
        return ((q @ k.T) * ratio) @ v


def _chunked_decay_no_carry_decay(q, k, v, a, chunk):
    """A wrong answer: the carried state enters each chunk undecayed."""
    from ..reference import decay_linear_attention

    out, S = np.empty((q.shape[0], v.shape[1])), np.zeros((q.shape[1], v.shape[1]))
    for start in range(0, len(a), chunk):
        sl = slice(start, start + chunk)
        out[sl] = decay_linear_attention(q[sl], k[sl], v[sl], a[sl], form="parallel") + q[sl] @ S
        _, S_local = decay_linear_attention(q[sl], k[sl], v[sl], a[sl], form="recurrent", return_state=True)
        S = np.prod(a[sl]) * S + S_local
    return out


def check_chunked_decay_attention(fn: Callable[..., Any], *, seed: int = 0, quiet: bool = False) -> bool:
    """Check ``fn(q, k, v, a, chunk) -> o``: ``S_t = a_t S_{t-1} + k_t v_tᵀ``, ``o_t = S_tᵀ q_t``
    (``q, k: (T, Dk)``, ``v: (T, Dv)``, ``a: (T,)`` in ``(0, 1]``), computed chunk by chunk:
    the masked parallel form with a decay mask inside each chunk, the state carried between chunks.

    Cases include chunk sizes that do not divide ``T``, chunk 1 and chunk > ``T``, and a long
    sequence with strong decay where the running product of all gates underflows to 0 (a formula
    with ratios of whole-sequence products gives 0/0 there). Hints recognise that mistake and a
    carried state that is not decayed inside the chunk.
    """
    from ..reference import decay_linear_attention

    name = "chunked_decay_attention"
    rng = np.random.default_rng(seed)
    cases = [(12, 4, 0.5, 1.0), (13, 5, 0.5, 1.0), (9, 1, 0.3, 0.9), (7, 16, 0.5, 1.0), (400, 32, 0.05, 0.2)]
    worst = 0.0
    for t, chunk, lo, hi in cases:
        q, k = rng.standard_normal((t, 4)), rng.standard_normal((t, 4))
        v, a = rng.standard_normal((t, 3)), rng.uniform(lo, hi, t)
        expected = decay_linear_attention(q, k, v, a, form="recurrent")
        try:
            got = fn(q.copy(), k.copy(), v.copy(), a.copy(), chunk)
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        problem, err = _compare(got, expected)
        if problem is not None:
            hint = ""
            with np.errstate(all="ignore"):
                got_arr = _as_array(got) if got is not None else None
                if got_arr is not None and not np.all(np.isfinite(got_arr)):
                    hint = (" Hint: NaN or inf — a ratio of running products over the whole sequence underflows "
                            "(0/0); take products only inside a chunk, or differences of cumulative log-gates")
                elif _matches(got, _chunked_decay_no_carry_decay(q, k, v, a, chunk)):
                    hint = (" Hint: the carried state must be decayed by the gates from the chunk's start up to "
                            "each position (a cumulative product inside the chunk)")
            return _report(False, name, f"T={t}, chunk={chunk}: {problem}.{hint}", quiet)
        worst = max(worst, err)
    return _report(True, name, f"{len(cases)} cases (ragged chunks, chunk 1 and > T, 400 strongly decaying steps), "
                   f"max |err| = {worst:.1e}", quiet)
