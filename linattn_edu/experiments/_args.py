"""Argument checks every experiment shares (each raises ``ValueError`` naming the argument)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .. import runtime

__all__ = ["check_int", "check_positive", "resolve_device"]


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int if it is one (not a bool) and ``>= minimum``; else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_positive(value: Any, name: str) -> float:
    """``value`` as a float if it is a finite number > 0 (not a bool); else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def resolve_device(device: Any) -> torch.device:
    """None -> :func:`linattn_edu.runtime.device`; else ``torch.device(device)`` or ``ValueError``."""
    if device is None:
        return runtime.device()
    try:
        return torch.device(device)
    except (TypeError, RuntimeError) as err:
        raise ValueError(f"device must be None, a torch.device or a string like 'cpu', got {device!r}") from err
