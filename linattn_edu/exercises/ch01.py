"""Checkers for the exercises of Chapter 1 (softmax attention and its O(T²) cost).

Each ``check_*`` function takes *your* function, runs it on random inputs and on the edge cases
that break the obvious first attempt, compares every result with the package reference through
:func:`linattn_edu.checks.check`, and prints a single ``✓`` line. On the first wrong result it
prints a ``✗`` line naming the case, the worst element and the max error, and returns False; it
never raises (an unsolved stub's ``NotImplementedError`` becomes a "not solved yet" line), so
"Run all" in the student edition runs to the end, like the other chapters' checkers.

Layouts follow the book: attention tensors are head-first ``(B, H, T, D)``.
"""

from __future__ import annotations

import numbers
import contextlib
import functools
import io
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from ..checks import check, tolerance
from ..reference import attention_mask, kv_cache_bytes, softmax_attention
from ._common import failure

__all__ = [
    "check_document_mask",
    "check_logsumexp",
    "check_gqa_attention",
    "check_max_context",
    "check_online_logsumexp",
]


def _never_raises(name: str) -> Callable[[Callable[..., None]], Callable[..., bool]]:
    """Turn a checker that raises ``AssertionError("✗ ...")`` into one that prints ✓/✗ and returns a bool."""

    def wrap(inner: Callable[..., None]) -> Callable[..., bool]:
        @functools.wraps(inner)
        def checker(*args: Any, quiet: bool = False, **kwargs: Any) -> bool:
            try:
                if quiet:
                    with contextlib.redirect_stdout(io.StringIO()):
                        inner(*args, **kwargs)
                else:
                    inner(*args, **kwargs)
            except AssertionError as err:
                message = str(err).splitlines()[0] if str(err) else "wrong result"
                if not quiet:
                    print(message if message.startswith("✗") else f"✗ {name}: {message}")
                return False
            except Exception as err:  # the reader's code raised: report it, never a traceback
                return failure(name, err, quiet)
            return True

        return checker

    return wrap


def _as_result(out: Any, case: str) -> tuple[Any, torch.dtype | np.dtype]:
    """Validate what the reader's function returned; returns it with the dtype that sets tolerances."""
    if out is None:
        raise AssertionError(f"✗ {case}: your function returned None (a missing `return`?)")
    if isinstance(out, torch.Tensor):
        return out, out.dtype
    try:
        arr = np.asarray(out)
    except Exception as err:  # pragma: no cover - exotic objects
        raise AssertionError(f"✗ {case}: expected an array, got {type(out).__name__}") from err
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise AssertionError(f"✗ {case}: expected a numeric array, got dtype {arr.dtype}")
    dtype = arr.dtype if arr.dtype in (np.float32, np.float16) else np.dtype(np.float64)
    return arr, dtype


def _compare(out: Any, expected: np.ndarray, case: str, *, exact: bool = False) -> float:
    """``check`` one result quietly, with the tolerance of its dtype (or exact equality)."""
    actual, dtype = _as_result(out, case)
    if tuple(actual.shape) != tuple(expected.shape):
        raise AssertionError(f"✗ {case}: your result has shape {tuple(actual.shape)}, expected {expected.shape}")
    atol, rtol = (0.0, 0.0) if exact else tolerance(dtype)
    return check(actual, expected, atol=atol, rtol=rtol, name=case, quiet=True)


# ------------------------------------------------------------------------------------------------
# Exercise 1: a causal mask for packed documents
# ------------------------------------------------------------------------------------------------


def _document_mask_reference(doc_ids: np.ndarray) -> np.ndarray:
    """``(T,)`` document ids -> ``(T, T)`` bool: causal *and* same document."""
    t = doc_ids.shape[0]
    return attention_mask(t) & (doc_ids[:, None] == doc_ids[None, :])


@_never_raises("document_mask")
def check_document_mask(fn: Callable[[np.ndarray], Any], *, seed: int = 0) -> bool:
    """Check ``fn(doc_ids) -> mask`` for sequences that pack several documents one after another.

    Args:
        fn: your function. It receives ``doc_ids``, an ``(T,)`` int array whose equal, consecutive
            entries mark one document (ids increase along the sequence), and must return a
            ``(T, T)`` boolean array, True where query ``i`` may see key ``j``: ``j <= i`` and
            ``doc_ids[j] == doc_ids[i]``.
        seed: seed of the random layouts.

    Returns:
        True when every case matches; prints ✗ and returns False otherwise (never raises).
    """
    rng = np.random.default_rng(seed)
    layouts = [
        np.zeros(7, dtype=np.int64),  # one document: plain causal
        np.arange(5),  # every token its own document: only the diagonal
        np.array([0, 0, 0, 1, 1, 2, 2, 2, 2]),
        np.array([3, 3, 8, 8, 8, 9]),  # ids need not be 0, 1, 2, ...
    ]
    for _ in range(4):
        t = int(rng.integers(8, 24))
        layouts.append(np.cumsum(rng.random(t) < 0.25))
    for doc_ids in layouts:
        case = f"document_mask(doc_ids={doc_ids.tolist()})"
        out = fn(doc_ids.copy())
        arr, _ = _as_result(out, case)
        if isinstance(arr, np.ndarray) and np.issubdtype(arr.dtype, np.floating) and np.isinf(arr).any():
            raise AssertionError(
                f"✗ {case}: the mask contains ±inf; return True/False (visible/hidden), not an "
                "additive 0/-inf mask"
            )
        _compare(arr, _document_mask_reference(doc_ids).astype(np.float64), case, exact=True)
    print(f"✓ document_mask: {len(layouts)} layouts match the reference (causal ∧ same document)")


# ------------------------------------------------------------------------------------------------
# Exercise 2: a stable log-sum-exp
# ------------------------------------------------------------------------------------------------


def _logsumexp_reference(x: np.ndarray, axis: int) -> np.ndarray:
    return torch.logsumexp(torch.from_numpy(x), dim=axis).numpy()


@_never_raises("logsumexp")
def check_logsumexp(fn: Callable[..., Any], *, seed: int = 0) -> bool:
    """Check ``fn(x, axis=-1) -> log(sum(exp(x), axis))``, computed without overflow.

    Args:
        fn: your function. ``x`` is a float64 array of any shape; the result has ``x``'s shape
            with ``axis`` removed. Inputs include logits near ±1000 (where ``exp`` overflows or
            underflows in float64) and ``-inf`` entries (masked keys; every row keeps at least
            one finite entry).
        seed: seed of the random inputs.

    Returns:
        True when every case passes; otherwise prints ✗ and returns False (never raises).
    """
    rng = np.random.default_rng(seed)
    masked = rng.standard_normal((5, 9)) * 3
    hide = rng.random((5, 9)) < 0.5
    hide[:, 4] = False  # every row keeps one visible entry
    masked[hide] = -np.inf
    cases = [
        ("random (4, 6)", rng.standard_normal((4, 6)), -1),
        ("random (3, 5, 7), axis=1", rng.standard_normal((3, 5, 7)), 1),
        ("random (3, 5, 7), axis=0", rng.standard_normal((3, 5, 7)), 0),
        ("large logits ~ +1000 (exp overflows)", rng.standard_normal((4, 8)) * 10 + 1000, -1),
        ("small logits ~ -1000 (exp underflows)", rng.standard_normal((4, 8)) * 10 - 1000, -1),
        ("masked entries (-inf)", masked, -1),
        ("a single entry per row", rng.standard_normal((6, 1)) * 100, -1),
    ]
    worst = 0.0
    for label, x, axis in cases:
        case = f"logsumexp[{label}]"
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            out = fn(x.copy(), axis=axis)
        worst = max(worst, _compare(out, _logsumexp_reference(x, axis), case))
    print(f"✓ logsumexp: {len(cases)} cases (overflow, underflow, -inf, axes), max |err| = {worst:.3g}")


# ------------------------------------------------------------------------------------------------
# Exercise 3: grouped-query attention without copying K and V
# ------------------------------------------------------------------------------------------------


@_never_raises("gqa_attention")
def check_gqa_attention(fn: Callable[[np.ndarray, np.ndarray, np.ndarray], Any], *, seed: int = 0) -> bool:
    """Check ``fn(q, k, v) -> o``: causal grouped-query attention, queries at the end of the keys.

    Args:
        fn: your function. Shapes: ``q (B, H, Tq, D)``, ``k (B, H_kv, Tk, D)``,
            ``v (B, H_kv, Tk, Dv)`` with ``H % H_kv == 0`` and ``Tq <= Tk``; returns
            ``(B, H, Tq, Dv)``. Query head ``h`` reads KV head ``h // (H // H_kv)``; query ``i``
            sits at position ``Tk - Tq + i`` and sees the keys ``j <= Tk - Tq + i``; the scale is
            ``1 / sqrt(D)``.
        seed: seed of the random inputs.

    Returns:
        True when every case passes; otherwise prints ✗ and returns False (never raises).
    """
    rng = np.random.default_rng(seed)
    shapes = [  # (B, H, H_kv, Tq, Tk, D, Dv)
        (2, 4, 4, 5, 5, 8, 8),  # multi-head
        (1, 4, 1, 6, 6, 8, 8),  # multi-query
        (2, 6, 2, 7, 7, 16, 16),  # grouped, 3 query heads per KV head
        (1, 8, 2, 3, 9, 8, 12),  # decoding: Tq < Tk, and Dv != D
        (1, 8, 4, 1, 10, 16, 16),  # one new token against a cache of 10
    ]
    worst = 0.0
    for b, h, h_kv, tq, tk, d, dv in shapes:
        q = rng.standard_normal((b, h, tq, d))
        k = rng.standard_normal((b, h_kv, tk, d))
        v = rng.standard_normal((b, h_kv, tk, dv))
        case = f"gqa_attention[B={b}, H={h}, H_kv={h_kv}, Tq={tq}, Tk={tk}, D={d}, Dv={dv}]"
        out = fn(q.copy(), k.copy(), v.copy())
        worst = max(worst, _compare(out, softmax_attention(q, k, v, causal=True), case))
    print(f"✓ gqa_attention: {len(shapes)} shapes (MHA, MQA, GQA, Tq < Tk), max |err| = {worst:.3g}")


# ------------------------------------------------------------------------------------------------
# Exercise 4: the longest context that fits
# ------------------------------------------------------------------------------------------------


def _max_context_reference(
    budget_bytes: int, *, n_layers: int, n_kv_heads: int, head_dim: int, bytes_per_element: int, batch: int
) -> int:
    per_token = batch * kv_cache_bytes(
        1, n_layers=n_layers, n_kv_heads=n_kv_heads, head_dim=head_dim, bytes_per_element=bytes_per_element
    )
    return budget_bytes // per_token


@_never_raises("max_context")
def check_max_context(fn: Callable[..., Any]) -> bool:
    """Check ``fn(budget_bytes, *, n_layers, n_kv_heads, head_dim, bytes_per_element, batch) -> T``.

    Args:
        fn: your function. Returns the largest context length ``T`` (an ``int``) such that the KV
            caches of ``batch`` sequences of ``T`` tokens fit in ``budget_bytes``:
            ``batch * 2 * n_layers * n_kv_heads * head_dim * T * bytes_per_element <= budget_bytes``.

    Returns:
        True when every case passes; otherwise prints ✗ and returns False (never raises).
    """
    gib = 2**30
    configs = [
        dict(budget_bytes=64 * gib, n_layers=32, n_kv_heads=32, head_dim=128, bytes_per_element=2, batch=1),
        dict(budget_bytes=64 * gib, n_layers=32, n_kv_heads=8, head_dim=128, bytes_per_element=2, batch=1),
        dict(budget_bytes=64 * gib, n_layers=32, n_kv_heads=8, head_dim=128, bytes_per_element=2, batch=16),
        dict(budget_bytes=40 * gib, n_layers=80, n_kv_heads=8, head_dim=128, bytes_per_element=1, batch=4),
        dict(budget_bytes=10**9, n_layers=26, n_kv_heads=1, head_dim=256, bytes_per_element=4, batch=3),
        dict(budget_bytes=2 * 4 * 2 * 64 * 2 * 100, n_layers=4, n_kv_heads=2, head_dim=64, bytes_per_element=2,
             batch=1),  # exactly 100 tokens
        dict(budget_bytes=1000, n_layers=32, n_kv_heads=32, head_dim=128, bytes_per_element=2, batch=1),
    ]
    for cfg in configs:
        case = "max_context(" + ", ".join(f"{k}={v}" for k, v in cfg.items()) + ")"
        out = fn(cfg["budget_bytes"], **{k: v for k, v in cfg.items() if k != "budget_bytes"})
        if isinstance(out, bool) or not isinstance(out, numbers.Integral):
            raise AssertionError(
                f"✗ {case}: expected an int number of tokens, got {out!r} ({type(out).__name__}); "
                "a cache cannot hold a fraction of a token"
            )
        expected = _max_context_reference(**cfg)
        if int(out) != expected:
            raise AssertionError(f"✗ {case}: got {int(out)}, expected {expected}")
    print(f"✓ max_context: {len(configs)} configurations (MHA, GQA, MQA, batches, dtypes, tiny budgets)")


# ------------------------------------------------------------------------------------------------
# Exercise 5: an online (streaming) log-sum-exp
# ------------------------------------------------------------------------------------------------


def _blocks(x: np.ndarray, widths: list[int]) -> Iterator[np.ndarray]:
    """Yield ``x[..., a:b]`` for consecutive widths: a one-pass stream, as a kernel sees it."""
    start = 0
    for w in widths:
        yield x[..., start : start + w].copy()
        start += w


@_never_raises("online_logsumexp")
def check_online_logsumexp(fn: Callable[[Iterable[np.ndarray]], Any], *, seed: int = 0) -> bool:
    """Check ``fn(blocks) -> lse``: log-sum-exp over the last axis of blocks that arrive one by one.

    Args:
        fn: your function. ``blocks`` is an iterator (it can be traversed once) of float64 arrays
            of shape ``(R, w_b)``: consecutive column blocks, of varying widths, of an ``(R, N)``
            matrix. Return the ``(R,)`` log-sum-exp of each row of the whole matrix, keeping only
            ``O(R)`` running state. Some rows see only ``-inf`` (masked) entries in their first
            blocks, as a sliding window does; every row has a finite entry somewhere.
        seed: seed of the random inputs.

    Returns:
        True when every case passes; otherwise prints ✗ and returns False (never raises).
    """
    rng = np.random.default_rng(seed)
    window_like = rng.standard_normal((4, 20)) * 3
    for r, first_visible in enumerate([0, 6, 11, 15]):  # row r sees nothing before `first_visible`
        window_like[r, :first_visible] = -np.inf
    rising = rng.standard_normal((3, 24)) + np.linspace(0, 60, 24)  # the max keeps moving up
    cases = [
        ("random, widths [3, 5, 2, 7]", rng.standard_normal((4, 17)) * 3, [3, 5, 2, 7]),
        ("one block", rng.standard_normal((5, 9)), [9]),
        ("logits ~ 1000", rng.standard_normal((3, 12)) * 20 + 1000, [4, 4, 4]),
        ("rising logits, the max grows every block", rising, [4] * 6),
        ("first blocks fully masked (-inf) in some rows", window_like, [5, 5, 5, 5]),
        ("blocks of width 1", rng.standard_normal((2, 6)) * 5, [1] * 6),
    ]
    worst = 0.0
    for label, x, widths in cases:
        assert sum(widths) == x.shape[-1]
        case = f"online_logsumexp[{label}]"
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            out = fn(_blocks(x, widths))
        expected = torch.logsumexp(torch.from_numpy(x), dim=-1).numpy()
        worst = max(worst, _compare(out, expected, case))
    print(f"✓ online_logsumexp: {len(cases)} streams (rescaling, overflow, masked blocks), max |err| = {worst:.3g}")
