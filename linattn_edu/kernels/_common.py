"""Shared plumbing for the Triton launchers: imports, backend choice and input validation."""

from __future__ import annotations

from typing import Any

import torch

from .. import runtime
from ..checks import check_bool, check_float, check_int

try:  # Triton is optional: without it every kernel call takes its PyTorch path.
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - exercised only where Triton is missing
    triton = None  # type: ignore[assignment]
    tl = None  # type: ignore[assignment]
    HAS_TRITON = False

__all__ = [
    "HAS_TRITON",
    "triton",
    "tl",
    "jit",
    "is_interpreted",
    "choose_backend",
    "require_tensor",
    "check_int",
    "check_float",
    "check_bool",
    "safe_divide",
]


def jit(fn: Any) -> Any:
    """``triton.jit`` when Triton is installed; otherwise the plain function (never launched)."""
    return triton.jit(fn) if HAS_TRITON else fn


def is_interpreted(kernel: Any) -> bool:
    """True when ``kernel`` was decorated under ``TRITON_INTERPRET=1`` (runs in NumPy on the CPU)."""
    if not HAS_TRITON:
        return False
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(kernel, InterpretedFunction)


def choose_backend(kernel: Any, tensor: torch.Tensor, backend: str | None = None) -> str:
    """``"triton"``, ``"interpreter"`` or ``"torch"`` for running ``kernel`` on ``tensor``.

    ``backend=None`` decides from the tensor's device (see :func:`linattn_edu.runtime.backend_for`).
    ``backend="torch"`` always works; asking for a Triton backend that cannot run here raises
    ``ValueError`` rather than crashing inside Triton.
    """
    auto = runtime.backend_for(tensor.device, is_interpreted(kernel)) if HAS_TRITON else "torch"
    if backend is None:
        return auto
    if backend not in ("triton", "interpreter", "torch"):
        raise ValueError(f"backend must be None, 'triton', 'interpreter' or 'torch', got {backend!r}")
    if backend != "torch" and backend != auto:
        raise ValueError(
            f"backend={backend!r} cannot run {tensor.device.type} tensors here (available: {auto!r}); "
            "for the interpreter set TRITON_INTERPRET=1 before importing linattn_edu.kernels"
        )
    return backend


def require_tensor(x: Any, name: str, *, ndim: int | None = None, shape_doc: str = "") -> torch.Tensor:
    """Raise ``TypeError``/``ValueError`` naming ``name`` unless ``x`` is a floating tensor of ``ndim``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor{' ' + shape_doc if shape_doc else ''}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dims {shape_doc}, got shape {tuple(x.shape)}")
    return x


def safe_divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` with 0 where ``den == 0`` (broadcasting), and finite gradients there.

    The normalization of linear attention divides by ``q·z + eps``; with ``eps = 0`` a row whose
    weights are all 0 has ``0 / 0``. Its limit as ``eps → 0`` is 0, which is what this returns
    (the same rule as :mod:`linattn_edu.reference.linear`). The inner ``where`` keeps the
    backward pass free of ``0 · inf``.
    """
    zero = den == 0
    return torch.where(zero, torch.zeros((), dtype=num.dtype, device=num.device), num / torch.where(zero, torch.ones_like(den), den))
