"""Where the book runs: device, problem sizes and kernel backend, decided in one place.

Every chapter starts with :func:`setup`, then asks :func:`pick` for its sizes, so that the same
notebook runs in seconds under the tests, in minutes on a laptop CPU and at real sizes on a GPU.

Three *modes*:

``"fast"``
    ``LINATTN_FAST=1`` is set (the test-suite sets it). Tiny sizes: only checks that code runs.
``"cpu"``
    No CUDA GPU. Sizes chosen so the whole book builds on a 2-core CPU in minutes.
``"gpu"``
    A CUDA GPU is present. Real sizes.

Three *backends* for the Triton kernels in :mod:`linattn_edu.kernels`:

``"triton"``
    CUDA tensors on a GPU with compute capability >= 8.0: kernels are compiled.
``"interpreter"``
    CPU tensors and ``TRITON_INTERPRET=1`` was set *before* Triton was imported: the Triton
    interpreter runs the very same kernel code with NumPy (slow; use small sizes).
``"torch"``
    Anything else (a CPU without the interpreter, an older GPU such as Colab's T4, no Triton
    installed): a plain PyTorch implementation of the same math. Announced once with a warning.
"""

from __future__ import annotations

import os
import sys
import warnings
from functools import lru_cache
from typing import Literal, TypeVar

import torch

Mode = Literal["fast", "cpu", "gpu"]
Backend = Literal["triton", "interpreter", "torch"]
T = TypeVar("T")

#: Lowest CUDA compute capability for which the book's kernels are compiled (Ampere, sm_80).
MIN_CAPABILITY = (8, 0)

_warned: set[str] = set()


def warn_once(message: str) -> None:
    """Emit ``message`` as a :class:`UserWarning` the first time it is seen in this process."""
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, UserWarning, stacklevel=3)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def fast_mode() -> bool:
    """True when ``LINATTN_FAST=1``: the tests' tiny problem sizes."""
    return _env_flag("LINATTN_FAST")


def cuda_available() -> bool:
    """True when PyTorch sees a CUDA GPU (``LINATTN_FORCE_CPU=1`` hides it)."""
    return not _env_flag("LINATTN_FORCE_CPU") and torch.cuda.is_available()


def device() -> torch.device:
    """The device the book computes on: the first CUDA GPU if there is one, else the CPU."""
    return torch.device("cuda") if cuda_available() else torch.device("cpu")


def mode() -> Mode:
    """The size preset: ``"fast"`` (tests), ``"gpu"`` (a CUDA GPU) or ``"cpu"``."""
    if fast_mode():
        return "fast"
    return "gpu" if cuda_available() else "cpu"


def pick(*, fast: T, cpu: T, gpu: T) -> T:
    """Return the value for the current :func:`mode`.

    Chapters choose every problem size through this helper, e.g.
    ``seq_lens = pick(fast=[64, 128], cpu=[128, 256, 512, 1024], gpu=[1024, 4096, 16384])``.
    """
    return {"fast": fast, "cpu": cpu, "gpu": gpu}[mode()]


@lru_cache(maxsize=None)
def triton_installed() -> bool:
    """True when the ``triton`` package can be imported (it does not import it)."""
    import importlib.util

    return importlib.util.find_spec("triton") is not None


def interpreter_requested() -> bool:
    """True when ``TRITON_INTERPRET=1`` is in the environment."""
    return _env_flag("TRITON_INTERPRET")


def cuda_capability() -> tuple[int, int] | None:
    """Compute capability ``(major, minor)`` of the current CUDA device, or None without CUDA."""
    if not cuda_available():
        return None
    return tuple(torch.cuda.get_device_capability())  # type: ignore[return-value]


def triton_compiles() -> bool:
    """True when Triton kernels can be compiled here: CUDA, capability >= 8.0, Triton installed.

    On an older GPU (e.g. Colab's T4, sm_75) this returns False and warns once: the kernels fall
    back to PyTorch there because features they use (bf16 ``tl.dot``, ...) need sm_80.
    """
    cap = cuda_capability()
    if cap is None or not triton_installed() or interpreter_requested():
        return False
    if cap < MIN_CAPABILITY:
        warn_once(
            f"GPU {torch.cuda.get_device_name()} has compute capability {cap[0]}.{cap[1]} < 8.0: "
            "the book's Triton kernels fall back to their PyTorch versions on this GPU."
        )
        return False
    return True


def enable_interpreter_on_cpu() -> bool:
    """Turn on the Triton interpreter when there is no GPU, if it is not too late.

    The interpreter is chosen when ``@triton.jit`` decorates a kernel, i.e. when a module that
    defines kernels is imported. So this must run before ``import linattn_edu.kernels``.
    Returns True when the interpreter will be used for CPU tensors.
    """
    if cuda_available() or not triton_installed():
        return interpreter_requested()
    if not interpreter_requested():
        if "triton" in sys.modules:
            warn_once(
                "Triton was imported before TRITON_INTERPRET=1 could be set; restart the kernel and "
                "call linattn_edu.runtime.setup() first to run Triton kernels on the CPU."
            )
            return False
        os.environ["TRITON_INTERPRET"] = "1"
    return True


def backend_for(tensor_device: torch.device, kernels_interpreted: bool) -> Backend:
    """Which backend runs a kernel on tensors that live on ``tensor_device``.

    ``kernels_interpreted`` says whether the kernels were decorated under the interpreter.
    """
    if not triton_installed():
        choice: Backend = "torch"
    elif tensor_device.type == "cuda" and not kernels_interpreted and triton_compiles():
        choice = "triton"
    elif tensor_device.type == "cpu" and kernels_interpreted:
        choice = "interpreter"
    else:
        choice = "torch"
    if choice == "torch":
        warn_once(
            f"Triton kernels are not available for {tensor_device.type} tensors here "
            f"(Triton installed: {triton_installed()}, interpreter: {kernels_interpreted}); "
            "using the PyTorch implementation of the same math."
        )
    return choice


def describe() -> str:
    """One line saying where the book runs: device, mode and kernel backend."""
    dev = device()
    if dev.type == "cuda":
        cap = cuda_capability()
        where = f"CUDA GPU {torch.cuda.get_device_name()} (sm_{cap[0]}{cap[1]})" if cap else "CUDA"
        kernels = "compiled Triton" if triton_compiles() else "PyTorch fallback"
    else:
        where = "CPU"
        if interpreter_requested() and triton_installed():
            kernels = "Triton interpreter (slow, small sizes)"
        else:
            kernels = "PyTorch fallback"
    return f"device: {where} | sizes: {mode()} mode | kernels: {kernels} | torch {torch.__version__}"


def setup(*, interpret_on_cpu: bool = True, quiet: bool = False) -> torch.device:
    """Prepare a chapter: enable the Triton interpreter on CPU-only machines, print where we run.

    Call it in a chapter's first cell, before importing :mod:`linattn_edu.kernels`.
    Returns the :class:`torch.device` to compute on.
    """
    if interpret_on_cpu:
        enable_interpreter_on_cpu()
    if not quiet:
        print(describe())
    return device()
