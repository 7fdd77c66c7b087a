"""Checkers for Chapter 8's exercises (putting it together: what a token of context costs).

1. :func:`check_kv_cache_bytes_per_token`: the bytes a softmax model's KV cache adds per token of
   context, checked against :func:`~linattn_edu.models.model_state_bytes` of real zoo models.
2. :func:`check_crossover_length`: the context length from which a growing KV cache is larger than
   a fixed-size state.

Each ``check_*`` function runs the reader's function on several cases, prints one line (``✓ ...``
or ``✗ ...`` naming the failing case, the error and a hint) and returns ``True`` or ``False``;
wrong answers never raise.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from ._common import failure as _failure, report as _report

__all__ = ["check_kv_cache_bytes_per_token", "check_crossover_length"]


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
