"""Plumbing every exercise checker shares: one ✓/✗ line, and a friendly message when the reader's code raises."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["report", "failure", "as_array", "close", "compare", "matches", "RTOL"]


def report(ok: bool, name: str, message: str, quiet: bool) -> bool:
    """Print ``✓ name: message`` or ``✗ name: message`` (unless ``quiet``) and return ``ok``."""
    if not quiet:
        print(f"{'✓' if ok else '✗'} {name}: {message}")
    return ok


def failure(name: str, err: BaseException, quiet: bool) -> bool:
    """Report a reader's function that raised: unsolved stubs get a hint, other errors their message."""
    if isinstance(err, NotImplementedError):
        return report(False, name, "not solved yet (NotImplementedError) — fill in the function", quiet)
    return report(False, name, f"your code raised {type(err).__name__}: {err}", quiet)


def as_array(value: Any) -> np.ndarray:
    """A float64 NumPy copy of a reader's result (array-like or torch tensor on any device)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


#: Relative tolerance of the float64 checkers: arithmetic in a different order errs by ~1e-15.
RTOL = 1e-10


def close(got: np.ndarray, expected: np.ndarray, rtol: float = RTOL) -> bool:
    """Same shape and ``|got - expected| <= rtol · (1 + max |expected|)`` everywhere."""
    return got.shape == expected.shape and bool(
        np.all(np.abs(got - expected) <= rtol * (1.0 + np.abs(expected).max(initial=0.0)))
    )


def compare(got: Any, expected: np.ndarray, rtol: float = RTOL) -> tuple[str | None, float]:
    """``(problem or None, max |err|)`` of ``got`` against ``expected`` (relative to its scale)."""
    if got is None:
        return "your function returned None (a missing `return`?)", float("inf")
    try:
        got = as_array(got)
    except (TypeError, ValueError) as err:
        return f"expected an array, got {type(got).__name__} ({err})", float("inf")
    if got.shape != expected.shape:
        return f"shape {got.shape}, expected {expected.shape}, max |err| = inf", float("inf")
    if not np.all(np.isfinite(got)):
        return "the result contains inf or nan, max |err| = inf", float("inf")
    err = float(np.max(np.abs(got - expected))) if got.size else 0.0
    return (None if close(got, expected, rtol) else f"max |err| = {err:.3g}"), err


def matches(got: Any, candidate: np.ndarray) -> bool:
    """Whether ``got`` equals ``candidate`` (a known wrong answer) up to rounding."""
    try:
        got = as_array(got)
    except (TypeError, ValueError):
        return False
    return got.shape == candidate.shape and bool(np.allclose(got, candidate, rtol=1e-8, atol=1e-10))
