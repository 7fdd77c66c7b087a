"""Triton kernels, their launchers, and PyTorch fallbacks of the same math.

Import this module *after* :func:`linattn_edu.runtime.setup` in a notebook: on a CPU-only
machine ``setup()`` turns on the Triton interpreter, which must happen before the kernels are
decorated. Every public function takes ``backend=None`` (choose from the tensors' device) or
``backend="torch"``.
"""

from __future__ import annotations

import torch

from ._common import HAS_TRITON, choose_backend
from .flash import (
    SUPPORTED_HEAD_DIMS,
    flash_attention,
    flash_attention_config,
    flash_attention_torch,
)

try:  # the teaching kernels of Chapter 2
    from .basics import row_softmax, vector_add
except ImportError:  # pragma: no cover - only while basics.py is being written
    pass


def kernel_backend(x: torch.Tensor) -> str:
    """The backend a kernel call on ``x`` would use here: ``"triton"``, ``"interpreter"`` or ``"torch"``."""
    from .flash import _flash_fwd_kernel

    return choose_backend(_flash_fwd_kernel, x)


__all__ = [
    "HAS_TRITON",
    "SUPPORTED_HEAD_DIMS",
    "flash_attention",
    "flash_attention_config",
    "flash_attention_torch",
    "kernel_backend",
    "row_softmax",
    "vector_add",
]

from .linear import (
    KERNEL_CHUNK_SIZES,
    LinearAttentionState,
    chunked_linear_attention,
    chunked_linear_attention_torch,
    linear_attention_config,
    linear_attention_step,
)

__all__ += [
    "KERNEL_CHUNK_SIZES",
    "LinearAttentionState",
    "chunked_linear_attention",
    "chunked_linear_attention_torch",
    "linear_attention_config",
    "linear_attention_step",
]

from .scan import (
    causal_conv1d,
    causal_conv1d_config,
    causal_conv1d_step,
    causal_conv1d_torch,
    linear_scan,
    linear_scan_config,
    linear_scan_step,
    linear_scan_torch,
)

__all__ += [
    "causal_conv1d",
    "causal_conv1d_config",
    "causal_conv1d_step",
    "causal_conv1d_torch",
    "linear_scan",
    "linear_scan_config",
    "linear_scan_step",
    "linear_scan_torch",
]
