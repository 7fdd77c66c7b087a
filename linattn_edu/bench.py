"""Measuring honestly: timers, peak memory, log-log slopes and results files with provenance.

Benchmarks in the book report numbers measured in the same run, or load a results file written
by :func:`save_results`, which records what was run, where (device name), when, and the command
that regenerates it. Nothing here asserts on timings.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

__all__ = [
    "RESULTS_DIR",
    "time_fn",
    "peak_memory_bytes",
    "loglog_slope",
    "device_name",
    "save_results",
    "load_results",
]

#: Where results files live (shipped with the package so Colab installs carry them).
#:
#: :meta hide-value:
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(
    fn: Callable[[], Any],
    *,
    warmup: int = 1,
    repeat: int = 5,
    device: torch.device | str | None = None,
    reduce: str = "median",
) -> float:
    """Wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup`` runs.

    ``reduce="median"`` (default) or ``"min"``: the minimum is the steadier estimate on a shared
    machine, where other work can only ever add time.

    On CUDA, pass ``device`` so the GPU is synchronized around each run (kernel launches are
    asynchronous). For GPU kernel benchmarks prefer :func:`triton.testing.do_bench`.
    """
    if reduce not in ("median", "min"):
        raise ValueError(f"reduce must be 'median' or 'min', got {reduce!r}")
    if repeat < 1 or warmup < 0:
        raise ValueError(f"repeat must be >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    dev = torch.device(device) if isinstance(device, str) else device
    for _ in range(warmup):
        fn()
    _sync(dev)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - start)
    return statistics.median(times) if reduce == "median" else min(times)


def peak_memory_bytes(fn: Callable[[], Any], *, device: torch.device | str | None = None) -> int:
    """Peak memory allocated while ``fn()`` runs, in bytes.

    On CUDA: ``torch.cuda.max_memory_allocated`` above the memory held before the call.
    On the CPU: Python's ``tracemalloc`` peak, which sees NumPy's allocations (NumPy reports
    its buffers to tracemalloc) but not PyTorch's CPU allocator, so use it for NumPy code.
    """
    dev = torch.device(device) if isinstance(device, str) else device
    if dev is not None and dev.type == "cuda":
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        fn()
        torch.cuda.synchronize(dev)
        return int(torch.cuda.max_memory_allocated(dev) - base)
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return int(peak)


def loglog_slope(x: Any, y: Any) -> tuple[float, float]:
    """Least-squares fit ``log y = slope · log x + intercept``; returns ``(slope, intercept)``.

    A cost growing like ``T^p`` has slope ``p``: ~2 for a materialized attention matrix.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"x and y must be 1-D of equal length >= 2, got {x.shape} and {y.shape}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be positive for a log-log fit")
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(intercept)


def device_name(device: torch.device | str | None = None) -> str:
    """A human-readable name of the device: the GPU's name, or the CPU's model."""
    from . import runtime

    dev = runtime.device() if device is None else torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    cpu = platform.processor() or platform.machine()
    try:  # Linux: the model name is more telling than "x86_64"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU ({cpu})"


def save_results(
    name: str,
    rows: list[dict[str, Any]],
    *,
    command: str,
    config: dict[str, Any] | None = None,
    device: torch.device | str | None = None,
    directory: Path | None = None,
) -> Path:
    """Write ``rows`` to ``<directory>/<name>.json`` with provenance; returns the path.

    The file records the device name, the date (UTC), torch and triton versions, the config and
    the ``command`` that regenerates it.
    """
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"name must be letters, digits, '_' or '-', got {name!r}")
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    record = {
        "name": name,
        "device": device_name(device),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch": torch.__version__,
        "triton": triton_version,
        "command": command,
        "config": config or {},
        "rows": rows,
    }
    directory = RESULTS_DIR if directory is None else Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def load_results(name: str, *, directory: Path | None = None) -> dict[str, Any] | None:
    """Load a results file written by :func:`save_results`, or None if there is none yet."""
    directory = RESULTS_DIR if directory is None else Path(directory)
    path = directory / f"{name}.json"
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    missing = {"device", "date", "command", "rows"} - record.keys()
    if missing:
        raise ValueError(f"results file {path} lacks provenance fields {sorted(missing)}")
    return record


def _proc_status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (e.g. ``"VmRSS"``) in KiB, or None if unreadable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_bytes(fn: Callable[[], Any]) -> int | None:
    """How far the process's resident memory rises above its starting point while ``fn()`` runs, in bytes.

    A real measurement of CPU memory, PyTorch's allocator included (unlike
    :func:`peak_memory_bytes`' ``tracemalloc``, which sees only Python and NumPy allocations):

    1. free what can be freed: ``gc.collect()`` and glibc's ``malloc_trim(0)``, which returns
       cached free heap pages to the OS, so memory freed earlier is not silently reused;
    2. read the resident set size ``VmRSS`` from ``/proc/self/status`` (the baseline);
    3. reset the kernel's high-water mark by writing ``"5"`` to ``/proc/self/clear_refs`` (Linux
       >= 4.0): from now on ``VmHWM`` is the peak RSS since this moment;
    4. run ``fn()``, then return ``VmHWM - baseline`` (at least 0).

    It counts pages actually touched, so an allocation that is never written to costs nothing,
    and it sees the whole process: other threads' allocations during ``fn()`` count too. The
    granularity is one page (4 KiB).

    ``fn()`` is always called exactly once (its return value is discarded). Returns None where
    this cannot be measured: not Linux, ``/proc`` unavailable, or ``clear_refs`` not writable.
    """
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass
    baseline = _proc_status_kib("VmRSS")
    supported = baseline is not None
    if supported:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            supported = False
    fn()
    if not supported:
        return None
    peak = _proc_status_kib("VmHWM")
    if peak is None:
        return None
    return max(0, peak - baseline) * 1024

__all__.append("peak_rss_bytes")
