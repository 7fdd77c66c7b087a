"""Comparing results the way the book does: one line per check, the max error always printed.

``check(actual, expected)`` is the book's equivalent of Triton-Puzzles' checker: it prints
``✓ name: max |err| = ...`` and returns the error, or raises ``AssertionError`` with the worst
position. Tolerances are stated per dtype in :data:`TOLERANCES`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["TOLERANCES", "tolerance", "to_numpy", "max_abs_error", "check"]

#: ``(atol, rtol)`` used when comparing a result computed in this dtype against a float64
#: reference. fp16/bf16 outputs carry 11/8 significant bits; accumulations are in fp32.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (2e-5, 2e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
}


def tolerance(dtype: torch.dtype | np.dtype | str) -> tuple[float, float]:
    """``(atol, rtol)`` for a result in ``dtype`` compared with a float64 reference."""
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
        dtype = torch.from_numpy(np.zeros(0, dtype=dtype)).dtype
    if dtype not in TOLERANCES:
        raise ValueError(f"dtype must be one of {sorted(str(d) for d in TOLERANCES)}, got {dtype}")
    return TOLERANCES[dtype]


def to_numpy(x: Any) -> np.ndarray:
    """A float64 NumPy copy of a tensor (any device or dtype) or array-like."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def max_abs_error(actual: Any, expected: Any) -> float:
    """``max |actual - expected|`` over all elements, in float64."""
    a, e = to_numpy(actual), to_numpy(expected)
    if a.shape != e.shape:
        raise ValueError(f"actual has shape {a.shape} but expected has shape {e.shape}")
    return float(np.max(np.abs(a - e))) if a.size else 0.0


def check(
    actual: Any,
    expected: Any,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    name: str = "result",
    quiet: bool = False,
) -> float:
    """Assert ``actual ≈ expected`` elementwise (``|a - e| <= atol + rtol·|e|``) and print one line.

    Tolerances default to :func:`tolerance` of ``actual``'s dtype (float64 for NumPy input).
    Returns the max absolute error. Raises ``AssertionError`` naming the worst element.
    """
    dtype = actual.dtype if isinstance(actual, torch.Tensor) else torch.float64
    default_atol, default_rtol = tolerance(dtype)
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol
    a, e = to_numpy(actual), to_numpy(expected)
    if a.shape != e.shape:
        raise AssertionError(f"✗ {name}: shape {a.shape} != expected {e.shape}")
    err = np.abs(a - e)
    err = np.where(np.isnan(a) != np.isnan(e), np.inf, np.nan_to_num(err, nan=0.0))
    worst = float(err.max()) if err.size else 0.0
    bad = err > atol + rtol * np.abs(e)
    if bad.any():
        idx = np.unravel_index(np.argmax(np.where(bad, err, -1)), err.shape)
        raise AssertionError(
            f"✗ {name}: {int(bad.sum())} of {err.size} elements differ; worst at {tuple(map(int, idx))}: "
            f"{a[idx]!r} vs {e[idx]!r} (atol={atol:g}, rtol={rtol:g}, max |err| = {worst:.3g})"
        )
    if not quiet:
        print(f"✓ {name}: max |err| = {worst:.3g} (atol={atol:g}, rtol={rtol:g})")
    return worst
