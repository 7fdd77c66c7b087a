"""Input conversion the NumPy references share: arrays as float64, with errors that name the argument.
Public names, so that no reference module imports another's private helpers."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def float_array(x: ArrayLike, name: str) -> np.ndarray:
    """A real floating array (NumPy, list of floats, CPU torch tensor) as float64, else TypeError.

    Integer, bool, complex and non-numeric inputs are refused: a scan of ints is almost always a
    mistake (a gate of ``1`` instead of ``1.0`` is fine to write as a float).
    """
    if hasattr(x, "detach"):  # a torch tensor: accept it, the reference stays NumPy
        if x.is_complex() or not x.is_floating_point():
            raise TypeError(f"{name} must be a real floating array, got a torch tensor of dtype {x.dtype}")
        return x.detach().cpu().double().numpy()
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as err:  # ragged lists and the like
        raise TypeError(f"{name} must be a real floating array, got {type(x).__name__}") from err
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be a real floating array, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def btc(x: ArrayLike, name: str) -> np.ndarray:
    """A float64 ``(B, T, C)`` array with ``T, C >= 1``."""
    arr = float_array(x, name)
    if arr.ndim != 3 or arr.shape[1] < 1 or arr.shape[2] < 1:
        raise ValueError(f"{name} must have shape (B, T, C) with T, C >= 1, got shape {arr.shape}")
    return arr


def as_float64(x: ArrayLike, name: str) -> np.ndarray:
    """Convert an array-like (NumPy, list, CPU torch tensor) to float64, naming it on failure."""
    if hasattr(x, "detach"):  # a torch tensor: accept it, the reference stays NumPy
        x = x.detach().cpu().double().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}") from err
    return arr
