"""Where the book runs: device, problem sizes and kernel backend, decided in one place.

Every chapter starts with :func:`setup`, then asks :func:`pick` for its sizes, so that the same
notebook runs in seconds under the tests, in minutes on a laptop CPU and at real sizes on a GPU.

Four *modes* (size tiers):

``"fast"``
    ``LINATTN_FAST=1`` is set (the test-suite sets it). Tiny sizes: only checks that code runs.
``"cpu"``
    No CUDA GPU. Sizes chosen so the whole book builds on a 2-core CPU in minutes.
``"t4"``
    A CUDA GPU older than sm_80 (Colab's free T4, sm_75): the Triton kernels do not run there
    (PyTorch fallback, announced once) and bf16 is only emulated, so each chapter gets sizes that
    finish in about five minutes (by default the ``cpu`` sizes; a chapter may pass ``t4=``).
``"gpu"``
    A CUDA GPU with compute capability >= 8.0 (A100, L4, H100, ...). Real sizes.

``LINATTN_SIZE=cpu|t4|gpu`` overrides the choice from the hardware (``LINATTN_FAST=1`` still wins).

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

Mode = Literal["fast", "cpu", "t4", "gpu"]
Backend = Literal["triton", "interpreter", "torch"]
T = TypeVar("T")

#: Lowest CUDA compute capability for which the book's kernels are compiled (Ampere, sm_80).
MIN_CAPABILITY = (8, 0)

#: The size tiers ``LINATTN_SIZE`` may name.
SIZE_TIERS = ("cpu", "t4", "gpu")

_warned: set[str] = set()
_MISSING: object = object()


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


def size_override() -> str | None:
    """The tier named by ``LINATTN_SIZE`` (``"cpu"``, ``"t4"`` or ``"gpu"``), or None if unset.

    Raises:
        ValueError: ``LINATTN_SIZE`` is set to anything else.
    """
    value = os.environ.get("LINATTN_SIZE", "").strip().lower()
    if not value:
        return None
    if value not in SIZE_TIERS:
        raise ValueError(f"LINATTN_SIZE must be one of {', '.join(SIZE_TIERS)} (or unset), got {value!r}")
    return value


def mode() -> Mode:
    """The size preset: ``"fast"`` (tests), then ``LINATTN_SIZE`` if set, else from the hardware:
    ``"gpu"`` for a CUDA GPU with compute capability >= 8.0, ``"t4"`` for an older one, ``"cpu"``."""
    if fast_mode():
        return "fast"
    override = size_override()
    if override is not None:
        return override  # type: ignore[return-value]
    cap = cuda_capability()
    if cap is None:
        return "cpu"
    return "gpu" if cap >= MIN_CAPABILITY else "t4"


def pick(*, fast: T, cpu: T, gpu: T, t4: T = _MISSING) -> T:  # type: ignore[assignment]
    """Return the value for the current :func:`mode`.

    Chapters choose every problem size through this helper, e.g.
    ``seq_lens = pick(fast=[64, 128], cpu=[128, 256, 512, 1024], gpu=[1024, 4096, 16384])``.
    ``t4`` (an sm_75 GPU such as Colab's T4) defaults to the ``cpu`` value: the kernels take the
    PyTorch fallback there, and the CPU sizes finish each chapter within minutes on a T4.
    """
    values = {"fast": fast, "cpu": cpu, "gpu": gpu, "t4": cpu if t4 is _MISSING else t4}
    return values[mode()]


def native_bf16(dev: torch.device | None = None) -> bool:
    """True when ``dev`` is a CUDA GPU with *native* bfloat16 (sm_80+), not the slow emulation.

    ``torch.cuda.is_bf16_supported()`` also says True on a T4 (sm_75), where bf16 is emulated;
    ``including_emulation=False`` (PyTorch >= 2.3) asks for native support only. Older PyTorch
    falls back to the compute capability.
    """
    dev = device() if dev is None else torch.device(dev)
    if dev.type != "cuda" or not cuda_available():
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # PyTorch < 2.3 has no including_emulation argument
        cap = cuda_capability()
        return cap is not None and cap >= MIN_CAPABILITY


def amp_dtype(dev: torch.device | None = None) -> torch.dtype | None:
    """The autocast dtype for training on ``dev``: bfloat16 where it is native, else None (float32).

    Every trainer of the package (:func:`linattn_edu.train.train_lm`, the MQAR sweep) asks this
    one function. Where bf16 is not native (a T4, a CPU) training stays in float32: float16
    autocast would need loss scaling, and the ``t4`` sizes are small enough without it.
    """
    return torch.bfloat16 if native_bf16(dev) else None


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

    On an older GPU (e.g. Colab's T4, sm_75) this returns False: the kernels fall back to
    PyTorch there because features they use (bf16 ``tl.dot``, ...) need sm_80.
    :func:`backend_for` announces the fallback once.
    """
    cap = cuda_capability()
    if cap is None or not triton_installed() or interpreter_requested():
        return False
    return cap >= MIN_CAPABILITY


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
        cap = cuda_capability() if tensor_device.type == "cuda" else None
        if cap is not None and cap < MIN_CAPABILITY:
            warn_once(
                f"GPU {torch.cuda.get_device_name()} has compute capability {cap[0]}.{cap[1]} < 8.0: "
                "the book's Triton kernels use their PyTorch implementation of the same math on this GPU."
            )
        else:
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
