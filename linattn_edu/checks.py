"""Comparing results the way the book does, and checking arguments the way the package does.

``check(actual, expected)`` is the book's equivalent of Triton-Puzzles' checker: it prints
``✓ name: max |err| = ...`` and returns the error, or raises ``AssertionError`` with the worst
position. Tolerances are stated per dtype in :data:`TOLERANCES`.

:func:`check_int`, :func:`check_float` and :func:`check_bool` are the one place where the package
validates scalar arguments (references, kernels, models, training, tasks): NumPy scalars are
accepted wherever Python ones are, ``bool`` is never taken for a number, and every error is a
``ValueError`` (a bad value) or :class:`ArgumentTypeError` (a wrong type; both a
``TypeError`` and a ``ValueError``) whose message names the argument.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = [
    "TOLERANCES",
    "tolerance",
    "to_numpy",
    "max_abs_error",
    "check",
    "check_int",
    "check_float",
    "check_bool",
    "ArgumentTypeError",
]


class ArgumentTypeError(TypeError, ValueError):
    """A scalar argument of the wrong type (``"4"`` for an int, ``True`` for a float, ...).

    Both a ``TypeError`` and a ``ValueError``: older checks in the package raised ``ValueError``
    for these, so ``except ValueError`` and ``except TypeError`` both keep catching them.
    """


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as a Python ``int``, or an error naming ``name``.

    Accepts Python ints and NumPy integer scalars (``np.int64(5)``); rejects ``bool`` (``True`` is
    not a size), floats (even ``2.0``), strings and ``None`` with :class:`ArgumentTypeError`, and
    values out of ``[minimum, maximum]`` (inclusive) with ``ValueError``.
    """
    if minimum == 1:
        kind = "a positive int"
    elif minimum == 0:
        kind = "a non-negative int"
    else:
        kind = "an int" + (f" >= {minimum}" if minimum is not None else "")
    if maximum is not None:
        kind += f" <= {maximum}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ArgumentTypeError(f"{name} must be {kind}, got {_describe(value)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return int(value)


def check_float(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict: bool = False,
    finite: bool = True,
) -> float:
    """``value`` as a Python ``float``, or an error naming ``name``.

    Accepts Python and NumPy real scalars (``np.float32(0.5)``, ``np.int64(2)``); rejects ``bool``,
    strings, arrays and tensors (:class:`ArgumentTypeError`). ``ValueError`` for NaN (always) and
    ``±inf`` (unless ``finite=False``), and for values out of range.
    ``minimum`` is exclusive with ``strict=True`` (``lr > 0``), else inclusive (``eps >= 0``);
    ``maximum`` is inclusive.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ArgumentTypeError(f"{name} must be a float (a real number), got {_describe(value)}")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """``value`` as a Python ``bool`` (NumPy ``np.bool_`` accepted), else :class:`ArgumentTypeError`.

    ``causal="no"`` or ``causal=None`` would otherwise be truthy or falsy by accident.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be a bool, got {_describe(value)}")
    return bool(value)

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
