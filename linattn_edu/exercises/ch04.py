"""Checkers for Chapter 4's exercises (linear attention).

1. :func:`check_elu_feature_map`: the ``elu(x) + 1`` feature map, without overflow.
2. :func:`check_chunk_step`: one chunk of the chunked form, normalized, with the state ``(S, z)``
   coming in and going out.
3. :func:`check_decode_state_bytes`: the size of the recurrent decoding state of a model.
4. :func:`check_linear_attention_backward`: the gradients of unnormalized causal linear attention
   by a forward and a reverse scan, in O(T) memory.

Each ``check_*`` function runs the reader's function on several cases, prints one line —
``✓ ...`` with the max error, or ``✗ ...`` naming the failing case, the max error and a hint —
and returns ``True`` or ``False``. Wrong answers never raise, so a notebook with unsolved
exercises still runs top to bottom; an exception raised by the reader's code is reported the
same way. Everything is float64 NumPy; torch tensors are accepted as results.
"""

from __future__ import annotations

import tracemalloc
from typing import Any, Callable

import numpy as np
import torch

from ..reference import (
    elu_feature_map,
    feature_map_dim,
    linear_attention,
    linear_attention_state_bytes,
)
from ._common import report as _report, failure as _failure, as_array as _as_array
from ._common import close as _close, compare as _compare

__all__ = [
    "check_elu_feature_map",
    "check_chunk_step",
    "check_decode_state_bytes",
    "check_linear_attention_backward",
]



# --------------------------------------------------------------------------------------------
# Exercise 1: the elu + 1 feature map
# --------------------------------------------------------------------------------------------


def _elu_cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(4)
    return [
        ("random (5, 8)", rng.standard_normal((5, 8))),
        ("random (2, 3, 7, 16), scaled by 3", 3.0 * rng.standard_normal((2, 3, 7, 16))),
        ("edge values", np.array([[-1e300, -800.0, -30.0, -1.0, -1e-12, 0.0, 1e-12, 1.0, 30.0, 800.0, 1e300]])),
    ]


def check_elu_feature_map(fn: Callable[[np.ndarray], Any], *, quiet: bool = False) -> bool:
    """Check ``fn(x) -> elu(x) + 1`` (``x + 1`` for ``x > 0``, ``exp(x)`` otherwise), same shape as ``x``.

    Runs with ``np.errstate(over="raise", invalid="raise")``: an ``exp`` of a large positive
    number (``np.where`` evaluates *both* branches) is reported as a failure. Hints recognize a
    missing ``+ 1``, ``exp`` used on both sides, and ``relu(x) + 1``.
    """
    name = "elu_feature_map"
    worst = 0.0
    for case, x in _elu_cases():
        expected = elu_feature_map(x)
        try:
            with np.errstate(over="raise", invalid="raise"):
                got = fn(x.copy())
        except FloatingPointError as err:
            return _report(False, name, f"{case}: floating-point error ({err}). Hint: np.where computes both "
                           "branches for every element, so exp(x) overflows for large positive x even though that "
                           "branch is discarded; clamp its argument, e.g. np.exp(np.minimum(x, 0))", quiet)
        except Exception as err:  # noqa: BLE001 - report whatever the reader's code raised
            return _failure(name, err, quiet)
        problem, err = _compare(got, expected)
        if problem is not None:
            return _report(False, name, f"{case}: {problem}. Hint: {_elu_hint(x, got)}", quiet)
        worst = max(worst, err)
    return _report(True, name, f"{len(_elu_cases())} cases (incl. ±800 and ±1e300), positive and finite, "
                   f"max |err| = {worst:.3g}", quiet)


def _elu_hint(x: np.ndarray, got: Any) -> str:
    try:
        got = _as_array(got)
    except (TypeError, ValueError):
        return "return a NumPy array of x's shape"
    if got.shape != x.shape:
        return "the feature map acts elementwise: the output has the input's shape (..., D)"
    with np.errstate(all="ignore"):
        elu = np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
        if np.allclose(got, elu, equal_nan=True):
            return "that is elu(x), which is negative for x < 0; add 1 so that every feature is positive"
        if np.allclose(got, np.maximum(x, 0) + 1):
            return "relu(x) + 1 is flat for x < 0; elu(x) + 1 = exp(x) there"
        if np.allclose(got[x < 30], np.exp(x[x < 30])):
            return "exp(x) is right only for x <= 0; for x > 0 use x + 1 (linear growth, no overflow)"
    return "phi(x) = x + 1 where x > 0, exp(x) where x <= 0"


# --------------------------------------------------------------------------------------------
# Exercise 2: one chunk of the chunked form, with the state in and out
# --------------------------------------------------------------------------------------------


def _chunk_reference(qc, kc, vc, s, z, eps):
    w = np.tril(qc @ kc.T)
    num = w @ vc + qc @ s
    den = w.sum(axis=1) + qc @ z
    return num / (den[:, None] + eps), s + kc.T @ vc, z + kc.sum(axis=0)


def _positive_features(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return elu_feature_map(rng.standard_normal(shape))


def check_chunk_step(fn: Callable[..., Any], *, quiet: bool = False) -> bool:
    """Check ``fn(q_c, k_c, v_c, S, z, eps) -> (o_c, S_new, z_new)``: one chunk of normalized linear attention.

    ``q_c, k_c``: ``(n, F)`` feature-mapped queries and keys of the chunk; ``v_c``: ``(n, Dv)``;
    ``S``: ``(F, Dv)`` and ``z``: ``(F,)``, the sums over all earlier tokens. Expected::

        o_c   = (tril(q_c k_cᵀ) v_c + q_c S) / (rowsum(tril(q_c k_cᵀ)) + q_c z + eps)
        S_new = S + k_cᵀ v_c,      z_new = z + Σ_rows k_c

    Cases: a first chunk (zero state), chunks in the middle of a sequence, a one-token chunk,
    then a whole sequence of T = 45 in chunks of 16 (ragged last chunk) chained through ``fn``
    and compared with :func:`~linattn_edu.reference.linear_attention`.
    """
    name = "chunk_step"
    rng = np.random.default_rng(5)
    eps = 1e-6
    worst = 0.0
    cases = []
    for label, n, f, dv, n_before in [("first chunk (S = 0, z = 0)", 8, 6, 5, 0),
                                      ("a chunk after 24 tokens", 8, 6, 5, 24),
                                      ("a one-token chunk", 1, 4, 3, 10),
                                      ("a ragged chunk of 5 tokens, F = 9, Dv = 2", 5, 9, 2, 33)]:
        kb, vb = _positive_features(rng, (n_before, f)), rng.standard_normal((n_before, dv))
        s, z = kb.T @ vb, kb.sum(axis=0)
        qc, kc = _positive_features(rng, (n, f)), _positive_features(rng, (n, f))
        vc = rng.standard_normal((n, dv))
        cases.append((label, qc, kc, vc, s, z))
    for label, qc, kc, vc, s, z in cases:
        expected = _chunk_reference(qc, kc, vc, s, z, eps)
        try:
            got = fn(qc.copy(), kc.copy(), vc.copy(), s.copy(), z.copy(), eps)
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            return _report(False, name, f"{label}: return a tuple (o_c, S_new, z_new), got "
                           f"{type(got).__name__}{'' if not hasattr(got, '__len__') else f' of length {len(got)}'}",
                           quiet)
        for part, g, e in zip(("o_c", "S_new", "z_new"), got, expected):
            problem, err = _compare(g, e)
            if problem is not None:
                hint = _chunk_hint(part, qc, kc, vc, s, z, eps, g)
                return _report(False, name, f"{label}: {part} wrong, {problem}. Hint: {hint}", quiet)
            worst = max(worst, err)
    # A whole sequence, chunk by chunk through the reader's function.
    t, f, dv, c = 45, 7, 4, 16
    q, k = _positive_features(rng, (t, f)), _positive_features(rng, (t, f))
    v = rng.standard_normal((t, dv))
    s, z = np.zeros((f, dv)), np.zeros(f)
    outs = []
    try:
        for start in range(0, t, c):
            o, s, z = fn(q[start:start + c].copy(), k[start:start + c].copy(), v[start:start + c].copy(),
                         _as_array(s), _as_array(z), eps)
            outs.append(_as_array(o))
    except Exception as err:  # noqa: BLE001
        return _failure(name, err, quiet)
    expected = linear_attention(q, k, v, feature_map="identity", eps=eps)
    problem, err = _compare(np.concatenate(outs, axis=0), expected)
    if problem is not None:
        return _report(False, name, f"T = {t} in chunks of {c}, chained: {problem}. Hint: the state passed to the "
                       "next chunk must be the S_new, z_new you return", quiet)
    worst = max(worst, err)
    return _report(True, name, f"{len(cases)} single chunks and a T = {t} sequence in chunks of {c} "
                   f"(= reference linear_attention), max |err| = {worst:.3g}", quiet)


def _chunk_hint(part, qc, kc, vc, s, z, eps, got) -> str:
    try:
        got = _as_array(got)
    except (TypeError, ValueError):
        return f"{part} must be an array"
    if part == "S_new":
        if got.shape == s.shape and np.allclose(got, s):
            return "add this chunk's keys and values to the state: S_new = S + k_cᵀ v_c"
        if got.shape == (vc.shape[1], kc.shape[1]):
            return "S has shape (F, Dv): k_cᵀ v_c, not v_cᵀ k_c"
        return "S_new = S + k_cᵀ v_c (a sum of outer products φ(k_j) v_jᵀ)"
    if part == "z_new":
        if got.shape == z.shape and np.allclose(got, z):
            return "add this chunk's keys to the normalizer: z_new = z + k_c.sum(axis=0)"
        return "z_new = z + Σ_j φ(k_j), a vector of length F"
    # o_c: compare with the usual mistakes
    n = qc.shape[0]
    s_new, z_new = s + kc.T @ vc, z + kc.sum(axis=0)

    def norm(w, s_, z_):
        return (w @ vc + qc @ s_) / ((w.sum(axis=1) + qc @ z_)[:, None] + eps)

    full = qc @ kc.T
    variants = {
        "a token sees itself: keep the diagonal of the chunk's mask (np.tril, not np.tril(..., k=-1))":
            norm(np.tril(full, k=-1), s, z),
        "mask the future inside the chunk: token i sees the chunk's tokens j <= i only (np.tril)":
            norm(full, s, z),
        "earlier chunks enter through the state *before* this chunk's update (S, z, not S_new, z_new): "
        "otherwise the chunk is counted twice": norm(np.tril(full), s_new, z_new),
        "normalize: divide by rowsum(tril(q_c k_cᵀ)) + q_c z + eps":
            np.tril(full) @ vc + qc @ s,
        "the denominator has an intra-chunk part too: rowsum(tril(q_c k_cᵀ)) + q_c z":
            (np.tril(full) @ vc + qc @ s) / ((qc @ z)[:, None] + eps),
    }
    if got.shape == (n, vc.shape[1]):
        for hint, wrong in variants.items():
            if np.allclose(got, wrong, rtol=1e-8, atol=1e-10):
                return hint
    return "o_c = (tril(q_c k_cᵀ) v_c + q_c S) / (rowsum(tril(q_c k_cᵀ)) + q_c z + eps), shape (n, Dv)"


# --------------------------------------------------------------------------------------------
# Exercise 3: bytes of the decoding state
# --------------------------------------------------------------------------------------------

_STATE_CASES = [
    dict(feature_map="identity", head_dim=64, value_dim=64, n_heads=8, n_layers=12, bytes_per_element=2,
         normalize=True),
    dict(feature_map="elu", head_dim=128, value_dim=64, n_heads=16, n_layers=24, bytes_per_element=4,
         normalize=True),
    dict(feature_map="relu", head_dim=32, value_dim=32, n_heads=1, n_layers=1, bytes_per_element=2,
         normalize=False),
    dict(feature_map="taylor", head_dim=16, value_dim=64, n_heads=16, n_layers=24, bytes_per_element=2,
         normalize=True),
    dict(feature_map="taylor", head_dim=16, value_dim=64, n_heads=12, n_layers=2, bytes_per_element=4,
         normalize=False),
    dict(feature_map="taylor_compact", head_dim=16, value_dim=64, n_heads=16, n_layers=24, bytes_per_element=2,
         normalize=True),
    dict(feature_map="taylor_compact", head_dim=8, value_dim=48, n_heads=3, n_layers=5, bytes_per_element=2,
         normalize=False),
]


def _state_bytes(c: dict[str, Any]) -> int:
    f = feature_map_dim(c["feature_map"], c["head_dim"])
    return linear_attention_state_bytes(f, c["value_dim"], n_heads=c["n_heads"], n_layers=c["n_layers"],
                                        bytes_per_element=c["bytes_per_element"], normalize=c["normalize"])


def check_decode_state_bytes(fn: Callable[..., Any], *, quiet: bool = False) -> bool:
    """Check ``fn(feature_map, head_dim, value_dim, *, n_heads, n_layers, bytes_per_element, normalize) -> int``.

    The state of one head is ``S (F, Dv)`` plus, with normalization, ``z (F,)``, where ``F`` is
    the feature dimension of the named map (``"identity"``, ``"elu"``, ``"relu"``: ``D``;
    ``"taylor"``: ``1 + D + D²``; ``"taylor_compact"``: ``1 + D + D(D+1)/2``). The answer must be
    an exact integer (a Python or NumPy int).
    """
    name = "decode_state_bytes"
    for c in _STATE_CASES:
        expected = _state_bytes(c)
        args = dict(c)
        fm, d, dv = args.pop("feature_map"), args.pop("head_dim"), args.pop("value_dim")
        label = f"{fm}, D = {d}, Dv = {dv}, H = {c['n_heads']}, L = {c['n_layers']}, " \
                f"{c['bytes_per_element']} B, normalize={c['normalize']}"
        try:
            got = fn(fm, d, dv, **args)
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, np.integer)):
            value = f" (= {got})" if isinstance(got, (float, np.floating)) else ""
            return _report(False, name, f"{label}: return an int, got {type(got).__name__}{value}. Hint: "
                           "every factor is an integer; avoid '/' (use '//' for D(D+1)/2)", quiet)
        if int(got) != expected:
            err = abs(int(got) - expected)
            return _report(False, name, f"{label}: got {int(got):,} bytes, expected {expected:,}, "
                           f"max |err| = {err:,}. Hint: {_state_hint(c, int(got))}", quiet)
    return _report(True, name, f"{len(_STATE_CASES)} configurations (all five maps, with and without z), "
                   "max |err| = 0", quiet)


def _state_hint(c: dict[str, Any], got: int) -> str:
    d, dv = c["head_dim"], c["value_dim"]
    f = feature_map_dim(c["feature_map"], d)
    scale = c["n_heads"] * c["n_layers"] * c["bytes_per_element"]
    if c["normalize"] and got == scale * f * dv:
        return "with normalization the state also holds z (F numbers per head): (F·Dv + F) per head"
    if not c["normalize"] and got == scale * (f * dv + f):
        return "normalize=False: there is no z, only S (F·Dv per head)"
    per_head = f * dv + (f if c["normalize"] else 0)
    if got == per_head * c["bytes_per_element"] or got == per_head * c["n_heads"] * c["bytes_per_element"] \
            or got == per_head * c["n_layers"] * c["bytes_per_element"]:
        return "every layer and every head keeps its own state: multiply by n_layers and n_heads"
    if got == per_head * c["n_heads"] * c["n_layers"]:
        return "multiply by bytes_per_element"
    if c["feature_map"].startswith("taylor"):
        return ("the Taylor map has a constant, a linear and a quadratic block: F = 1 + D + D² "
                "(taylor) or 1 + D + D(D+1)/2 (taylor_compact)")
    if got == scale * (d * d * dv + (d * d if c["normalize"] else 0)):
        return f"F = D for {c['feature_map']!r}: it acts elementwise"
    return "bytes = n_layers · n_heads · (F·Dv + F if normalize else F·Dv) · bytes_per_element"


# --------------------------------------------------------------------------------------------
# Exercise 4: the backward pass by two scans
# --------------------------------------------------------------------------------------------


def _backward_reference(q, k, v, dy):
    """Gradients of ``sum(dy * y)``, ``y = tril(q kᵀ) v``, by torch autograd in float64."""
    qt, kt, vt = (torch.from_numpy(x).requires_grad_(True) for x in (q, k, v))
    y = torch.tril(qt @ kt.T) @ vt
    return [g.numpy() for g in torch.autograd.grad(y, (qt, kt, vt), torch.from_numpy(dy))]


def check_linear_attention_backward(fn: Callable[..., Any], *, quiet: bool = False,
                                    memory_check: bool = True) -> bool:
    """Check ``fn(q, k, v, dy) -> (dq, dk, dv)`` for ``y_i = Σ_{j≤i} (q_i·k_j) v_j`` (no normalization).

    ``q, k``: ``(T, F)``; ``v, dy``: ``(T, Dv)``. Gradients are compared with torch autograd of the
    parallel form in float64 on four shapes (``T = 1`` included). With ``memory_check``, a last
    run at ``T = 4096, F = Dv = 4`` must allocate less than 16 MiB (``tracemalloc``): a ``(T, T)``
    float64 matrix would take 128 MiB, so the gradients must come from scans (or chunks), not
    from the score matrix.
    """
    name = "linear_attention_backward"
    rng = np.random.default_rng(6)
    worst = 0.0
    shapes = [(1, 3, 2), (7, 4, 3), (33, 6, 5), (50, 2, 8)]
    for t, f, dv in shapes:
        q, k = rng.standard_normal((t, f)), rng.standard_normal((t, f))
        v, dy = rng.standard_normal((t, dv)), rng.standard_normal((t, dv))
        expected = _backward_reference(q, k, v, dy)
        label = f"T = {t}, F = {f}, Dv = {dv}"
        try:
            got = fn(q.copy(), k.copy(), v.copy(), dy.copy())
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            return _report(False, name, f"{label}: return a tuple (dq, dk, dv)", quiet)
        for part, g, e in zip(("dq", "dk", "dv"), got, expected):
            problem, err = _compare(g, e)
            if problem is not None:
                hint = _backward_hint(part, q, k, v, dy, g)
                return _report(False, name, f"{label}: {part} wrong, {problem}. Hint: {hint}", quiet)
            worst = max(worst, err)
    message = f"{len(shapes)} shapes against torch autograd (float64), max |err| = {worst:.3g}"
    if memory_check:
        t, f, dv = 4096, 4, 4
        q, k = rng.standard_normal((t, f)), rng.standard_normal((t, f))
        v, dy = rng.standard_normal((t, dv)), rng.standard_normal((t, dv))
        tracemalloc.start()
        try:
            fn(q, k, v, dy)
            peak = tracemalloc.get_traced_memory()[1]
        except Exception as err:  # noqa: BLE001
            tracemalloc.stop()
            return _failure(name, err, quiet)
        tracemalloc.stop()
        limit = 16 * 2**20
        if peak > limit:
            return _report(False, name, f"right values, but T = {t} allocated {peak / 2**20:.0f} MiB "
                           f"(limit {limit / 2**20:.0f} MiB; one (T, T) float64 matrix is "
                           f"{t * t * 8 / 2**20:.0f} MiB), max |err| = {worst:.3g}. Hint: carry S (F, Dv) "
                           "forward for dq and dS (F, Dv) backward for dk and dv; never form q kᵀ", quiet)
        message += f"; T = {t} in {peak / 2**20:.1f} MiB (no T×T matrix)"
    return _report(True, name, message, quiet)


def _backward_hint(part, q, k, v, dy, got) -> str:
    try:
        got = _as_array(got)
    except (TypeError, ValueError):
        return f"{part} must be an array"
    if part == "dq":
        s_incl = np.cumsum(k[:, :, None] * v[:, None, :], axis=0)
        s_excl = s_incl - k[:, :, None] * v[:, None, :]
        if got.shape == q.shape and np.allclose(got, np.einsum("tfd,td->tf", s_excl, dy)):
            return "dq_i = S_i dy_i with S_i including token i itself (update S before reading it)"
        return "dq_i = Σ_{j≤i} (dy_i·v_j) k_j = S_i dy_i, S_i = Σ_{j≤i} k_j v_jᵀ: a forward scan"
    ds_incl = np.cumsum((q[:, :, None] * dy[:, None, :])[::-1], axis=0)[::-1]
    ds_excl = ds_incl - q[:, :, None] * dy[:, None, :]
    ds_fwd = np.cumsum(q[:, :, None] * dy[:, None, :], axis=0)
    if part == "dk":
        if got.shape == k.shape and np.allclose(got, np.einsum("tfd,td->tf", ds_excl, v)):
            return "key j is also seen by query j: dS_j = Σ_{i≥j} q_i dy_iᵀ includes i = j"
        if got.shape == k.shape and np.allclose(got, np.einsum("tfd,td->tf", ds_fwd, v)):
            return "key j receives gradient from the *later* queries i ≥ j: scan from the end (reverse)"
        return "dk_j = Σ_{i≥j} (dy_i·v_j) q_i = dS_j v_j with dS_j = Σ_{i≥j} q_i dy_iᵀ: a reverse scan"
    if got.shape == v.shape and np.allclose(got, np.einsum("tfd,tf->td", ds_excl, k)):
        return "value j is also used by query j: dS_j = Σ_{i≥j} q_i dy_iᵀ includes i = j"
    if got.shape == v.shape and np.allclose(got, np.einsum("tfd,tf->td", ds_fwd, k)):
        return "value j receives gradient from the *later* queries i ≥ j: scan from the end (reverse)"
    return "dv_j = Σ_{i≥j} (q_i·k_j) dy_i = dS_jᵀ k_j with dS_j = Σ_{i≥j} q_i dy_iᵀ: a reverse scan"
