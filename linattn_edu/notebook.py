"""Small helpers the chapters share, so that no notebook redefines them.

- :func:`show_source`: the syntax-highlighted source of a function or a ``@triton.jit`` kernel.
- :func:`best_time`: the chapters' timing rule (the fastest of ``repeat`` runs after a warm-up).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch

from . import bench

__all__ = ["show_source", "best_time"]


def show_source(obj: Any) -> Any:
    """Syntax-highlighted source of ``obj`` for a notebook: a function, a class, or a
    ``@triton.jit`` kernel (whose Python function is its ``.fn``; under the interpreter too).

    Returns an :class:`IPython.display.Code` object (displayed when it ends a cell).
    """
    from IPython.display import Code

    target = getattr(obj, "fn", obj)
    if not (inspect.isfunction(target) or inspect.isclass(target) or inspect.ismethod(target)):
        raise TypeError(f"obj must be a function, class or @triton.jit kernel, got {type(obj).__name__}")
    return Code(inspect.getsource(target), language="python")


def best_time(fn: Callable[[], Any], repeat: int, *, device: torch.device | str | None = None) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``fn()`` after one warm-up call (synchronizing
    ``device`` when it is a GPU). The fastest run is the one least disturbed by other work on a
    shared machine; chapters report ratios measured in the same run, never absolute promises."""
    return bench.time_fn(fn, warmup=1, repeat=repeat, device=device, reduce="min")
