"""Measuring honestly: timers, peak memory, log-log slopes and results files with provenance.

Benchmarks in the book report numbers measured in the same run, or load a results file written
by :func:`save_results`, which records what was run, where (device name), when, and the command
that regenerates it. Nothing here asserts on timings.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Iterator

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
    "git_commit",
    "command_line",
    "provenance",
    "validate_results",
    "ResumableResults",
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


#: Fields every results file carries, with their types (:func:`validate_results` checks them).
#: ``git_commit`` and ``wall_seconds`` may be ``None`` only in files written before they were
#: recorded (the run's commit or duration is then unknown, and the file says so).
RESULTS_FIELDS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "device": str,
    "date": str,
    "torch": str,
    "triton": (str, type(None)),
    "command": str,
    "config": dict,
    "rows": list,
}
#: Fields added to the schema later: optional when reading, always written by :func:`save_results`.
RESULTS_LATER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "python": str,
    "numpy": str,
    "git_commit": (str, type(None)),
    "wall_seconds": (int, float, type(None)),
}


def git_commit(root: Path | None = None) -> str | None:
    """The checked-out commit of the repository holding this package (``+dirty`` when the tree has
    uncommitted changes), or None outside a git checkout (e.g. a pip install)."""
    root = Path(__file__).resolve().parents[1] if root is None else Path(root)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "") if sha else None


def command_line() -> str:
    """The command that is running, as typed (interpreter name + arguments): what regenerates a file."""
    return shlex.join([Path(sys.executable).name, *sys.argv])


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def provenance(
    name: str,
    *,
    command: str,
    config: dict[str, Any] | None = None,
    device: torch.device | str | None = None,
    wall_seconds: float | None = None,
) -> dict[str, Any]:
    """The provenance fields of a results file (everything but ``rows``): what was run (``config``,
    ``command``), where (device name), when (UTC), with which versions and at which git commit,
    and how long it took (``wall_seconds``)."""
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"name must be letters, digits, '_' or '-', got {name!r}")
    try:
        import triton

        triton_version: str | None = triton.__version__
    except ImportError:
        triton_version = None
    return {
        "name": name,
        "device": device_name(device),
        "date": _utc_now(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": triton_version,
        "numpy": np.__version__,
        "git_commit": git_commit(),
        "command": command,
        "config": config or {},
        "wall_seconds": None if wall_seconds is None else float(wall_seconds),
    }


def validate_results(record: Any, *, path: Path | str | None = None, strict: bool = False) -> None:
    """Raise ``ValueError`` unless ``record`` follows the results schema.

    Every field of :data:`RESULTS_FIELDS` must be present with its type, rows must be dicts, and
    ``date`` an ISO UTC time. With ``strict=True`` the later fields (:data:`RESULTS_LATER_FIELDS`:
    python, numpy, git commit, wall time) must be present too; new files always have them.
    """
    where = f"results file {path}" if path is not None else "results record"
    if not isinstance(record, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(record).__name__}")
    missing = [k for k in RESULTS_FIELDS if k not in record]
    if strict:
        missing += [k for k in RESULTS_LATER_FIELDS if k not in record]
    if missing:
        raise ValueError(f"{where} lacks provenance fields {sorted(missing)}")
    for fields in (RESULTS_FIELDS, RESULTS_LATER_FIELDS):
        for key, kind in fields.items():
            if key in record and not isinstance(record[key], kind):
                raise ValueError(f"{where}: field {key!r} has type {type(record[key]).__name__}")
    try:
        _dt.datetime.strptime(record["date"], "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise ValueError(f"{where}: date must be UTC 'YYYY-MM-DDTHH:MM:SSZ', got {record['date']!r}") from None
    bad = [i for i, row in enumerate(record["rows"]) if not isinstance(row, dict)]
    if bad:
        raise ValueError(f"{where}: rows {bad[:5]} are not objects")


def _write_atomically(path: Path, record: dict[str, Any]) -> None:
    """Write JSON to ``path`` through a temporary file, so an interrupted run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def save_results(
    name: str,
    rows: list[dict[str, Any]],
    *,
    command: str,
    config: dict[str, Any] | None = None,
    device: torch.device | str | None = None,
    directory: Path | None = None,
    wall_seconds: float | None = None,
) -> Path:
    """Write ``rows`` to ``<directory>/<name>.json`` with provenance; returns the path.

    The file records the device name, the date (UTC), Python, torch, triton and NumPy versions,
    the git commit, the config, the ``command`` that regenerates it and its ``wall_seconds``
    (see :func:`provenance`; the schema is checked by :func:`validate_results`).
    """
    record = provenance(name, command=command, config=config, device=device, wall_seconds=wall_seconds)
    record["rows"] = rows
    validate_results(record, strict=True)
    directory = RESULTS_DIR if directory is None else Path(directory)
    path = directory / f"{name}.json"
    _write_atomically(path, record)
    return path


def load_results(name: str, *, directory: Path | None = None) -> dict[str, Any] | None:
    """Load a results file written by :func:`save_results`, or None if there is none yet.

    Raises ``ValueError`` if the file does not follow the schema (:func:`validate_results`).
    """
    directory = RESULTS_DIR if directory is None else Path(directory)
    path = directory / f"{name}.json"
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    validate_results(record, path=path)
    return record


class ResumableResults:
    """A results file that grows one finished row at a time, so a long run can be interrupted.

    Heavy experiments (training dozens of models) write each model's row as soon as it finishes;
    started again with the same ``config``, the run skips the rows already there and goes on
    where it stopped. ``wall_seconds`` adds up the time of every part of the run.

    Args:
        name: file stem: ``<directory>/<name>.json``.
        command: the command line that (re)generates the file.
        config: the experiment's configuration; resuming requires the stored one to be equal.
        key_fields: the row fields that identify a unit of work (e.g. ``("family", "size", "lr")``).
        device: where the run happens (its name is recorded; resuming on another device is refused).
        directory: defaults to the package's results directory.
        fresh: start a new file even if one exists (the old one is overwritten on the first row).

    Several processes may fill one file at once (e.g. ``scripts/mqar_study.py --shard 0/2`` and
    ``--shard 1/2`` on two cores): each :meth:`add` takes a file lock, re-reads the file and keeps
    every row already there, so no process overwrites another's rows.

    Example::

        store = ResumableResults("mqar_study", command=bench.command_line(), config=cfg,
                                 key_fields=("family", "point", "lr"))
        for job in jobs:
            if store.done(job):
                continue
            t0 = time.perf_counter(); row = run(job)
            store.add(row, seconds=time.perf_counter() - t0)
    """

    def __init__(
        self,
        name: str,
        *,
        command: str,
        config: dict[str, Any],
        key_fields: tuple[str, ...] | list[str],
        device: torch.device | str | None = None,
        directory: Path | None = None,
        fresh: bool = False,
    ) -> None:
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        if not key_fields or not all(isinstance(k, str) for k in key_fields):
            raise ValueError(f"key_fields must be a non-empty sequence of field names, got {key_fields!r}")
        self.key_fields = tuple(key_fields)
        self._overwrite = bool(fresh)
        self.path = (RESULTS_DIR if directory is None else Path(directory)) / f"{name}.json"
        self._record = provenance(name, command=command, config=config, device=device, wall_seconds=0.0)
        self._record["rows"] = []
        # JSON round trip, so that tuples vs lists do not make equal configs differ.
        config_json = json.loads(json.dumps(config))
        if self.path.exists() and not fresh:
            old = json.loads(self.path.read_text())
            validate_results(old, path=self.path)
            if old["config"] != config_json:
                raise ValueError(
                    f"{self.path} was made with another config; pass fresh=True (--fresh) to start over, "
                    f"or run with the stored config"
                )
            if old["device"] != self._record["device"]:
                raise ValueError(
                    f"{self.path} was started on {old['device']!r}, this run is on "
                    f"{self._record['device']!r}; pass fresh=True to start over"
                )
            self._record["rows"] = list(old["rows"])
            self._record["wall_seconds"] = float(old.get("wall_seconds") or 0.0)
            self._record["started"] = old.get("started", old["date"])
        else:
            self._record["started"] = self._record["date"]
        self._record["config"] = config_json

    def key(self, row: dict[str, Any]) -> tuple[Any, ...]:
        """The identity of ``row``: its values of :attr:`key_fields` (JSON-normalized)."""
        missing = [k for k in self.key_fields if k not in row]
        if missing:
            raise ValueError(f"row lacks key fields {missing}")
        return tuple(json.dumps(row[k], sort_keys=True) for k in self.key_fields)

    def done(self, job: dict[str, Any]) -> bool:
        """Whether a row with the same key as ``job`` is already stored."""
        k = self.key(job)
        return any(self.key(r) == k for r in self._record["rows"])

    def add(self, row: dict[str, Any], *, seconds: float = 0.0) -> None:
        """Append ``row`` (replacing a stored row with the same key), add ``seconds`` to the wall
        time, and write the file at once."""
        if not isinstance(row, dict):
            raise TypeError(f"row must be a dict, got {type(row).__name__}")
        k = self.key(row)
        with self._locked():
            self._merge_from_disk()  # rows another process (a second shard) wrote meanwhile
            rows = [r for r in self._record["rows"] if self.key(r) != k]
            rows.append(row)
            self._record["rows"] = rows
            self._record["wall_seconds"] = float(self._record["wall_seconds"] or 0.0) + float(seconds)
            self._record["date"] = _utc_now()
            validate_results(self._record, path=self.path, strict=True)
            _write_atomically(self.path, self._record)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on ``<path>.lock`` (POSIX ``flock``; a no-op where there is none), so
        that several processes may append to one file: each add re-reads the file under it."""
        try:
            import fcntl
        except ImportError:  # not POSIX: one process per file
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def refresh(self) -> None:
        """Take in the rows other processes (other shards) have written to the file since."""
        with self._locked():
            self._merge_from_disk()

    def _merge_from_disk(self) -> None:
        """Take the file's rows and wall time as the base (same config only), keeping our rows
        that it lacks: the file is the union of what every process has written."""
        if self._overwrite or not self.path.exists():
            self._overwrite = False  # fresh=True: the old file is replaced by the first add
            return
        disk = json.loads(self.path.read_text())
        if disk.get("config") != self._record["config"] or disk.get("device") != self._record["device"]:
            return  # another run's file (fresh=True overwrites it)
        have = {self.key(r) for r in disk["rows"]}
        self._record["rows"] = list(disk["rows"]) + [r for r in self._record["rows"] if self.key(r) not in have]
        self._record["wall_seconds"] = float(disk.get("wall_seconds") or 0.0)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows stored so far (a copy)."""
        return list(self._record["rows"])

    @property
    def record(self) -> dict[str, Any]:
        """The whole record as it is (or would be) on disk."""
        return dict(self._record)


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
