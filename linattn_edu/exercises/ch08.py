"""Checkers for Chapter 8's exercises (putting it together: what a token of context costs).

1. :func:`check_kv_cache_bytes_per_token`: the bytes a softmax model's KV cache adds per token of
   context, checked against :func:`~linattn_edu.models.model_state_bytes` of real zoo models.
2. :func:`check_crossover_length`: the context length from which a growing KV cache is larger than
   a fixed-size state.

The chapter's exercises since issue 14 (the two above stay for instructors who used them):

3. :func:`check_delta_rule_memory`: a fixed-size state that *overwrites* instead of only adding
   (the delta rule), the write that lets a linear memory recall a key it has seen twice.
4. :func:`check_crosstalk_variance`: the noise an additive linear memory adds to a recalled value,
   derived on paper for random unit keys and written as a formula.

Each ``check_*`` function runs the reader's function on several cases, prints one line (``✓ ...``
or ``✗ ...`` naming the failing case, the error and a hint) and returns ``True`` or ``False``;
wrong answers never raise.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ._common import compare as _compare, failure as _failure, matches as _matches, report as _report

__all__ = [
    "check_kv_cache_bytes_per_token",
    "check_crossover_length",
    "check_delta_rule_memory",
    "check_crosstalk_variance",
]


def _as_number(got: Any) -> float | str:
    """A reader's scalar result as a float, or a message saying what is wrong with it."""
    if got is None:
        return "your function returned None (a missing `return`?)"
    if isinstance(got, bool):
        return f"return a number, got a bool ({got})"
    if hasattr(got, "item") and getattr(got, "ndim", 0) == 0:  # a NumPy or torch scalar
        got = got.item()
    if not isinstance(got, (int, float)):
        return f"return a number, got {type(got).__name__}"
    return float(got)


# --------------------------------------------------------------------------------------------
# Exercise 1: KV-cache bytes per token
# --------------------------------------------------------------------------------------------


def _kv_cases() -> list[tuple[str, dict[str, int]]]:
    return [
        ("MHA: 2 layers, 4 heads of 16, float32", dict(n_layers=2, n_heads=4, n_kv_heads=4, head_dim=16, bpe=4)),
        ("MQA: 3 layers, 4 query heads share 1 KV head", dict(n_layers=3, n_heads=4, n_kv_heads=1, head_dim=8, bpe=4)),
        ("GQA: 2 layers, 8 query heads, 2 KV heads, bfloat16",
         dict(n_layers=2, n_heads=8, n_kv_heads=2, head_dim=4, bpe=2)),
    ]


def _zoo_kv_bytes_per_token(n_layers: int, n_heads: int, n_kv_heads: int, head_dim: int, bpe: int) -> float:
    """The package's answer: the decode state of a zoo Transformer at 64 tokens, divided by 64."""
    from ..models import build_model, model_state_bytes

    model = build_model("transformer", vocab_size=16, d_model=n_heads * head_dim, n_layers=n_layers,
                        n_heads=n_heads, n_kv_heads=n_kv_heads)
    return model_state_bytes(model, seq_len=64, bytes_per_element=bpe) / 64


def check_kv_cache_bytes_per_token(fn: Callable[..., Any], *, quiet: bool = False) -> bool:
    """Check ``fn(n_layers, n_kv_heads, head_dim, bytes_per_element) -> bytes``.

    The KV cache of a softmax Transformer stores, for every token of context, one key and one
    value vector of ``head_dim`` numbers per KV head per layer. The expected values are not a
    formula typed here: they are :func:`~linattn_edu.models.model_state_bytes` of zoo
    Transformers (multi-head, multi-query and grouped-query) divided by the context length. A hint
    recognizes a forgotten factor 2 (keys *and* values).
    """
    name = "kv_cache_bytes_per_token"
    cases = _kv_cases()
    for case, c in cases:
        expected = _zoo_kv_bytes_per_token(c["n_layers"], c["n_heads"], c["n_kv_heads"], c["head_dim"], c["bpe"])
        try:
            got = fn(c["n_layers"], c["n_kv_heads"], c["head_dim"], c["bpe"])
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        value = _as_number(got)
        if isinstance(value, str):
            return _report(False, name, f"{case}: {value}", quiet)
        if value != expected:
            hint = "check each factor: layers, KV heads, head_dim, bytes per number"
            if value * 2 == expected:
                hint = "every token stores a key AND a value: a factor 2"
            return _report(False, name, f"{case}: got {value:g}, expected {expected:g}. Hint: {hint}", quiet)
    return _report(True, name, f"{len(cases)} cases (MHA, MQA, GQA in bf16) agree with model_state_bytes, "
                   "max |err| = 0", quiet)


# --------------------------------------------------------------------------------------------
# Exercise 2: where a growing cache overtakes a fixed state
# --------------------------------------------------------------------------------------------


def _crossover(fixed_state_bytes: float, bytes_per_token: float) -> int:
    """The smallest integer T >= 1 with T · bytes_per_token > fixed_state_bytes."""
    return max(1, math.floor(fixed_state_bytes / bytes_per_token) + 1)


def check_crossover_length(fn: Callable[[float, float], Any], *, quiet: bool = False) -> bool:
    """Check ``fn(fixed_state_bytes, bytes_per_token) -> T``.

    ``T`` is the smallest whole number of tokens (at least 1) whose KV cache,
    ``T · bytes_per_token``, is strictly larger than the fixed state ``fixed_state_bytes``. Cases
    include an exact multiple (equal is not larger), a state smaller than one token's cache and
    fractional bytes per token. Hints recognize ``>=`` for ``>`` and a division without rounding.
    """
    name = "crossover_length"
    cases = [
        ("fractional bytes per token", 12112.0, 59.5),
        ("Hawk-like 16 KiB state, 512 B/token", 16384.0, 512.0),
        ("an exact multiple: 1000 B state, 100 B/token (equal is not larger)", 1000.0, 100.0),
        ("a state smaller than one token", 10.0, 512.0),
    ]
    for case, state, per_token in cases:
        expected = _crossover(state, per_token)
        try:
            got = fn(state, per_token)
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        value = _as_number(got)
        if isinstance(value, str):
            return _report(False, name, f"{case}: {value}", quiet)
        if value != expected:
            hint = "the smallest whole T with T * bytes_per_token > fixed_state_bytes"
            if value != int(value):
                hint = "T counts tokens: round to a whole number (the first T that is strictly larger)"
            elif value == expected - 1 and value * per_token == state:
                hint = "at that T the cache equals the state; 'larger' needs one more token"
            return _report(False, name, f"{case}: got {value:g}, expected {expected}. Hint: {hint}", quiet)
    return _report(True, name, f"{len(cases)} cases (an exact multiple, a tiny state, fractional bytes), "
                   "max |err| = 0", quiet)


# --------------------------------------------------------------------------------------------
# Exercise 3 (issue 14): the delta rule, a fixed state that overwrites
# --------------------------------------------------------------------------------------------


def delta_rule_reference(k: np.ndarray, v: np.ndarray, q: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Outputs of the delta-rule memory, one token at a time (float64).

    ``S_0 = 0``; ``S_t = S_{t-1} + beta_t (v_t - S_{t-1} k_t) k_t^T``; ``o_t = S_t q_t``.

    Args:
        k: (T, D) keys; v: (T, Dv) values; q: (T, D) queries; beta: (T,) write strengths in [0, 1].

    Returns:
        (T, Dv) outputs.
    """
    t, d = k.shape
    state = np.zeros((v.shape[1], d))
    out = np.empty((t, v.shape[1]))
    for i in range(t):
        state = state + beta[i] * np.outer(v[i] - state @ k[i], k[i])
        out[i] = state @ q[i]
    return out


def _additive_memory(k: np.ndarray, v: np.ndarray, q: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """The usual mistake: ``S_t = S_{t-1} + beta_t v_t k_t^T`` (linear attention's write)."""
    states = np.cumsum(beta[:, None, None] * v[:, :, None] * k[:, None, :], axis=0)  # (T, Dv, D)
    return np.einsum("tij,tj->ti", states, q)


def _read_before_write(k: np.ndarray, v: np.ndarray, q: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """The other slip: reading ``S_{t-1} q_t``, before token t's write."""
    t, d = k.shape
    state = np.zeros((v.shape[1], d))
    out = np.empty((t, v.shape[1]))
    for i in range(t):
        out[i] = state @ q[i]
        state = state + beta[i] * np.outer(v[i] - state @ k[i], k[i])
    return out


def _delta_cases(seed: int) -> list[tuple[str, tuple[np.ndarray, ...]]]:
    rng = np.random.default_rng(seed)
    cases = []
    for t, d, dv in [(6, 4, 3), (17, 8, 5), (33, 16, 2)]:
        k = rng.standard_normal((t, d))
        k /= np.linalg.norm(k, axis=1, keepdims=True)  # unit keys: beta = 1 overwrites exactly
        v = rng.standard_normal((t, dv))
        q = rng.standard_normal((t, d))
        beta = rng.uniform(0.1, 1.0, t)
        cases.append((f"T={t}, D={d}, Dv={dv}, random unit keys", (k, v, q, beta)))
    # one key written twice with beta = 1: the second value must replace the first
    key = np.eye(4)[:1]
    k = np.concatenate([key, np.eye(4)[1:2], key])
    v = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, -5.0]])
    cases.append(("the same key written twice with beta = 1 (the second value replaces the first)",
                  (k, v, k.copy(), np.ones(3))))
    return cases


def check_delta_rule_memory(fn: Callable[..., Any], *, seed: int = 0, quiet: bool = False) -> bool:
    """Check ``fn(k, v, q, beta) -> o`` against :func:`delta_rule_reference`.

    ``k, q: (T, D)``, ``v: (T, Dv)``, ``beta: (T,)``; ``o: (T, Dv)`` with ``o_t = S_t q_t`` and
    ``S_t = S_{t-1} + beta_t (v_t - S_{t-1} k_t) k_t^T`` from ``S_0 = 0``. Hints recognize the
    additive write of linear attention and reading the state before the write.
    """
    name = "delta_rule_memory"
    cases = _delta_cases(seed)
    worst = 0.0
    for case, args in cases:
        expected = delta_rule_reference(*args)
        try:
            got = fn(*(a.copy() for a in args))
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        problem, err = _compare(got, expected)
        if problem is not None:
            hint = ""
            if _matches(got, _additive_memory(*args)):
                hint = (" Hint: that is linear attention's write S += beta v k^T; the delta rule first "
                        "subtracts what the memory already returns for k_t: v_t - S k_t.")
            elif _matches(got, _read_before_write(*args)):
                hint = " Hint: read after writing token t: o_t = S_t q_t, not S_{t-1} q_t."
            return _report(False, name, f"{case}: {problem}.{hint}", quiet)
        worst = max(worst, err)
    return _report(True, name, f"{len(cases)} cases (incl. a key overwritten), max |err| = {worst:.1e}", quiet)


# --------------------------------------------------------------------------------------------
# Exercise 4 (issue 14): crosstalk of an additive linear memory
# --------------------------------------------------------------------------------------------


def _crosstalk(n_pairs: int, dim: int) -> float:
    """Variance of one coordinate of the recall noise: (N - 1) / D (see the chapter's derivation)."""
    return (n_pairs - 1) / dim


def crosstalk_monte_carlo(n_pairs: int, dim: int, *, trials: int = 2000, seed: int = 0) -> float:
    """Measured variance of ``S k_1 - v_1`` per coordinate, ``S = sum_j v_j k_j^T``.

    Keys are uniform on the unit sphere of R^dim, values standard normal (each coordinate).
    """
    rng = np.random.default_rng(seed)
    k = rng.standard_normal((trials, n_pairs, dim))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    v = rng.standard_normal((trials, n_pairs))  # one value coordinate suffices
    overlaps = np.einsum("tnd,td->tn", k, k[:, 0])
    noise = np.einsum("tn,tn->t", v, overlaps) - v[:, 0]
    return float(noise.var())


def check_crosstalk_variance(fn: Callable[[int, int], Any], *, quiet: bool = False) -> bool:
    """Check ``fn(n_pairs, dim) -> variance``, the variance of one coordinate of ``S k_1 - v_1``.

    ``S = sum_{j=1}^{N} v_j k_j^T`` stores ``N`` pairs with keys uniform on the unit sphere of
    ``R^D`` and values with independent standard normal coordinates. The exact answer is compared
    at several ``(N, D)``, and a Monte Carlo estimate is printed next to it.
    """
    name = "crosstalk_variance"
    cases = [(1, 8), (2, 4), (16, 64), (100, 16), (1000, 512)]
    for n, d in cases:
        try:
            got = fn(n, d)
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        value = _as_number(got)
        if isinstance(value, str):
            return _report(False, name, f"N={n}, D={d}: {value}", quiet)
        expected = _crosstalk(n, d)
        if not math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12):
            hint = "each of the N - 1 other pairs adds v_j (k_j . k_1); what is E[(k_j . k_1)^2] for unit keys?"
            if math.isclose(value, n / d, rel_tol=1e-9):
                hint = "the pair being recalled contributes v_1 (k_1 . k_1) = v_1 exactly: it is signal, not noise"
            elif math.isclose(value, (n - 1) / d**2, rel_tol=1e-9) or math.isclose(value, (n - 1) / math.sqrt(d), rel_tol=1e-9):
                hint = "E[(k_j . k_1)^2] for independent unit vectors: the D squared coordinates of k_j sum to 1"
            return _report(False, name, f"N={n}, D={d}: got {value:g}, expected {expected:g}. Hint: {hint}", quiet)
    measured = crosstalk_monte_carlo(16, 64)
    return _report(True, name, f"{len(cases)} cases; at N=16, D=64 the formula gives {_crosstalk(16, 64):.4f}, "
                   f"a Monte Carlo run measures {measured:.4f}", quiet)
