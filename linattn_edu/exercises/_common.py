"""Plumbing every exercise checker shares: one ✓/✗ line, and a friendly message when the reader's code raises."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["report", "failure", "as_array"]


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
