"""Machinery every puzzle shares: guarded buffers, running a reader's kernel, reporting, tracing, drawing.

A checker launches the reader's ``@triton.jit`` kernel on small float32 problems whose tensors are
*views* of larger buffers: the input buffers hold ``nan`` past the logical tensor (an unmasked load
reads a ``nan`` and poisons the result), the output buffers hold a sentinel (an unmasked store shows
up as a changed guard cell). The checker then prints one line — ``✓`` with the max error, or ``✗``
with the first wrong index and a hint — and returns a bool. It never raises: an exception from the
reader's kernel (``NotImplementedError``, a Triton compile or interpreter error, ...) becomes one line.

The drawings record, per program instance, which elements of each buffer a kernel loads and stores,
by wrapping the Triton interpreter's load and store (so they show what the kernel really did, not a
model of it). A compiled (GPU) kernel is re-run under the interpreter, on CPU copies, to draw it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

__all__ = [
    "SENTINEL",
    "Buffer",
    "Trace",
    "Mistake",
    "guarded",
    "kernel_device",
    "interpreted",
    "summarize_exception",
    "report",
    "compare_outputs",
    "record",
    "draw_trace",
    "next_pow2",
    "Case",
    "run_checker",
    "draw_case",
]

#: What an output buffer holds before the kernel runs: a cell still holding it was never written.
SENTINEL = -7.0

#: Float32 tolerance of the checkers: ``|got - expected| <= TOL * (1 + |expected|)``.
TOL = 2e-4


def next_pow2(n: int, minimum: int = 16) -> int:
    """The smallest power of two ``>= max(n, minimum)`` (``tl.arange`` needs powers of two)."""
    return max(minimum, 1 << max(0, int(n) - 1).bit_length())


@dataclass
class Buffer:
    """A logical tensor ``view`` inside a larger contiguous ``buf`` whose other cells are guards.

    ``region`` is a boolean array of ``buf``'s shape, True on the cells that belong to ``view``.
    """

    name: str
    buf: torch.Tensor
    view: torch.Tensor
    region: np.ndarray

    def guards_intact(self, fill: float) -> tuple[bool, tuple[int, ...] | None]:
        """Whether every guard cell still holds ``fill``; else the first changed cell (buffer index)."""
        data = self.buf.detach().cpu().numpy()
        same = np.isnan(data) if math.isnan(fill) else data == fill
        bad = ~same & ~self.region
        if not bad.any():
            return True, None
        return False, tuple(int(i) for i in np.argwhere(bad)[0])


def guarded(
    name: str,
    shape: tuple[int, ...],
    *,
    fill: float,
    pad: tuple[int, ...] | None = None,
    front: tuple[int, ...] | None = None,
    values: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> Buffer:
    """A :class:`Buffer` of logical ``shape`` with ``front``/``pad`` guard cells before/after each dim.

    The guard cells hold ``fill`` (``nan`` for inputs, :data:`SENTINEL` for outputs); ``values``
    (of ``shape``) fills the logical region, else it also holds ``fill``.
    """
    pad = pad or (0,) * len(shape)
    front = front or (0,) * len(shape)
    full = tuple(s + f + p for s, f, p in zip(shape, front, pad))
    buf = torch.full(full, fill, dtype=torch.float32)
    slices = tuple(slice(f, f + s) for s, f in zip(shape, front))
    if values is not None:
        buf[slices] = values.to(torch.float32).cpu()
    region = np.zeros(full, dtype=bool)
    region[slices] = True
    buf = buf.to(device)
    return Buffer(name, buf, buf[slices], region)


def interpreted(kernel: Any) -> bool:
    """True when ``kernel`` was decorated under ``TRITON_INTERPRET=1`` (it runs in NumPy on the CPU)."""
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:  # pragma: no cover - only without Triton
        return False
    return isinstance(kernel, InterpretedFunction)


def kernel_device(kernel: Any) -> torch.device:
    """Where to launch a reader's kernel: the CPU if it is interpreted, else the CUDA GPU.

    Raises ``TypeError`` for something that is not a ``@triton.jit`` kernel and ``RuntimeError``
    for a compiled kernel on a machine without a GPU (the checkers turn both into a ✗ line).
    """
    if interpreted(kernel):
        return torch.device("cpu")
    if not hasattr(kernel, "__getitem__") or not hasattr(kernel, "fn"):
        raise TypeError(f"expected a @triton.jit kernel, got {type(kernel).__name__}: decorate it with @triton.jit")
    if torch.cuda.is_available():
        return torch.device("cuda")
    raise RuntimeError(
        "this kernel was compiled for a GPU but there is none: restart the notebook and call "
        "linattn_edu.runtime.setup() before importing triton, so that the interpreter is used"
    )


def summarize_exception(err: BaseException) -> str:
    """One line for an exception raised while launching a reader's kernel (no Triton traceback).

    The interpreter wraps the reader's error in an ``InterpreterError`` whose cause is the original
    exception; that original is what the line names.
    """
    inner: BaseException = err
    seen = 0
    while inner.__cause__ is not None and seen < 5:
        inner, seen = inner.__cause__, seen + 1
    if isinstance(inner, NotImplementedError) or isinstance(err, NotImplementedError):
        return "not implemented yet (NotImplementedError): fill in the kernel"
    text = str(inner).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # Triton's compile errors print the source with a caret, then the message: keep the message.
    message = lines[-1] if lines else ""
    if len(message) > 220:
        message = message[:217] + "..."
    return f"your kernel raised {type(inner).__name__}: {message}" if message else f"your kernel raised {type(inner).__name__}"


def report(ok: bool, name: str, message: str, quiet: bool = False) -> bool:
    """Print ``✓ name: message`` or ``✗ name: message`` (unless ``quiet``) and return ``ok``."""
    if not quiet:
        print(f"{'✓' if ok else '✗'} {name}: {message}")
    return ok


@dataclass
class Mistake:
    """A typical wrong answer: ``expected(case)`` gives what that mistake produces; ``hint`` names it.

    ``expected`` returns a dict ``output name -> array`` (a subset of the outputs is enough).
    """

    hint: str
    expected: Callable[[dict], dict[str, np.ndarray]]


def _same(got: np.ndarray, wrong: np.ndarray) -> bool:
    if got.shape != wrong.shape or np.isnan(wrong).all():
        return False  # an all-nan variant would also "match" every kernel that reads a nan
    scale = 1.0 + np.nan_to_num(np.abs(wrong), nan=0.0, posinf=0.0)
    ok = np.isclose(got, wrong, rtol=0, atol=0) | (np.abs(got - wrong) <= 10 * TOL * scale)
    ok |= np.isnan(got) & np.isnan(wrong)
    return bool(ok.all())


def _first_wrong(views: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> str:
    """``first wrong NAME[i, j] = got, expected e (max |err| = ...)`` for the first output that differs."""
    for k, got in views.items():
        exp = expected[k]
        with np.errstate(invalid="ignore"):
            err = np.abs(got - exp)
            bad = ~(err <= TOL * (1 + np.abs(exp)))
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            worst = float(np.nanmax(err)) if np.isfinite(err).any() else math.inf
            if not np.isfinite(err).all():
                worst = math.inf
            return f"first wrong {k}{list(idx)} = {got[idx]:.6g}, expected {exp[idx]:.6g} (max |err| = {worst:.3g})"
    return "no wrong value"


def compare_outputs(
    name: str,
    case: str,
    outputs: list[Buffer],
    expected: dict[str, np.ndarray],
    *,
    mistakes: list[Mistake] = (),
    case_data: dict | None = None,
    hint: Callable[[str, tuple[int, ...]], str] | None = None,
    nan_hint: str = "",
    store_hint: str = "",
    quiet: bool = False,
) -> tuple[bool | None, float]:
    """Judge one case: returns ``(None, max err)`` when it passed, else ``(False, inf)`` after printing.

    Order of the checks: nothing written at all (not implemented) → guard cells written (unmasked
    store) → cells never written → a known mistake matched → ``nan``/``inf`` → wrong values (the
    first wrong index, in the logical tensor's coordinates, and ``hint(output, index)``).
    """
    views = {b.name: b.view.detach().cpu().double().numpy() for b in outputs}
    if all(np.all(v == SENTINEL) for v in views.values()):
        return report(False, name, f"{case}: not implemented yet — the kernel wrote nothing", quiet), math.inf
    for b in outputs:
        intact, where = b.guards_intact(SENTINEL)
        if not intact:
            return report(
                False, name,
                f"{case}: wrote {b.name} buffer cell {where}, outside {b.name}{tuple(b.view.shape)}. "
                f"Hint: {store_hint or 'mask the store so that only valid indices are written'}",
                quiet,
            ), math.inf
    for b in outputs:
        untouched = views[b.name] == SENTINEL
        if untouched.any():
            idx = tuple(int(i) for i in np.argwhere(untouched)[0])
            return report(
                False, name,
                f"{case}: {b.name}{list(idx)} was never written. Hint: does the grid/loop cover every "
                "tile, and does each program write its own tile (offsets from the program id)?",
                quiet,
            ), math.inf
    with np.errstate(invalid="ignore"):
        right = all(
            bool(np.all(np.abs(views[b.name] - expected[b.name]) <= TOL * (1 + np.abs(expected[b.name]))))
            for b in outputs
        )
    if right:  # a right answer never gets a mistake's hint, however close that mistake comes
        return None, max((float(np.max(np.abs(views[b.name] - expected[b.name]), initial=0.0)) for b in outputs), default=0.0)
    data = dict(case_data or {})
    for mistake in mistakes:
        try:
            wrong = mistake.expected(data)
        except Exception:  # noqa: BLE001 - a variant that does not apply to this case
            continue
        relevant = [k for k in wrong if k in views]
        if relevant and all(_same(views[k], wrong[k]) for k in relevant) and not all(
            _same(expected[k], wrong[k]) for k in relevant
        ):
            return report(False, name, f"{case}: {_first_wrong(views, expected)}. Hint: {mistake.hint}", quiet), math.inf
    worst = 0.0
    for b in outputs:
        got, exp = views[b.name], expected[b.name]
        finite = np.isfinite(got)
        if not finite.all():
            idx = tuple(int(i) for i in np.argwhere(~finite)[0])
            return report(
                False, name,
                f"{case}: first wrong {b.name}{list(idx)} = {got[idx]}, expected {exp[idx]:.6g} (max |err| = inf). "
                f"Hint: {nan_hint or 'a load read past the end of a tensor (mask it)'}",
                quiet,
            ), math.inf
        err = np.abs(got - exp)
        bad = ~(err <= TOL * (1 + np.abs(exp)))
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            extra = hint(b.name, idx) if hint else "compare your kernel with the spec"
            return report(False, name, f"{case}: {_first_wrong({b.name: got}, expected)}. Hint: {extra}", quiet), math.inf
        worst = max(worst, float(err.max()) if err.size else 0.0)
    return None, worst


# ---------------------------------------------------------------------------------------------
# Recording loads and stores under the interpreter
# ---------------------------------------------------------------------------------------------


@dataclass
class Trace:
    """Which elements each program instance loaded and stored, per buffer.

    ``loads[name][pid]`` and ``stores[name][pid]`` are sets of buffer indices (tuples, in the
    coordinates of the whole buffer, guard cells included); ``pid`` is ``(x, y, z)``.
    """

    buffers: dict[str, Buffer]
    loads: dict[str, dict[tuple, set]] = field(default_factory=dict)
    stores: dict[str, dict[tuple, set]] = field(default_factory=dict)
    unknown: int = 0
    #: every access in order: ``("load" | "store", name, pid, set of indices)``
    events: list = field(default_factory=list)

    def by_step(self) -> "Trace":
        """The same accesses with each program split into steps: a step ends after its stores.

        A program that walks chunks (load, compute, store; load, ...) becomes one row per chunk in
        :func:`draw_trace`; its program ids become ``(x, y, z, step)``.
        """
        out = Trace(self.buffers)
        step: dict[tuple, int] = {}
        last_kind: dict[tuple, str] = {}
        for kind, name, pid, cells in self.events:
            if kind == "load" and last_kind.get(pid) == "store":
                step[pid] = step.get(pid, 0) + 1
            last_kind[pid] = kind
            key = (*pid, step.get(pid, 0))
            target = out.loads if kind == "load" else out.stores
            target.setdefault(name, {}).setdefault(key, set()).update(cells)
        return out

    def programs(self) -> list[tuple]:
        """Every program id that touched a buffer, in launch order."""
        pids = {p for kind in (self.loads, self.stores) for per in kind.values() for p in per}
        return sorted(pids, key=lambda p: (p[2], p[1], p[0], *p[3:]))

    def rows_loaded(self, name: str, pid: tuple, axis: int = -2) -> set[int]:
        """The indices along ``axis`` of the elements of ``name`` that program ``pid`` loaded."""
        return {idx[axis] for idx in self.loads.get(name, {}).get(pid, set())}


def _to_interpreted(kernel: Any) -> Any:
    """``kernel`` itself if interpreted, else a fresh interpreter wrapper of its Python function."""
    if interpreted(kernel):
        return kernel
    from triton.runtime.interpreter import InterpretedFunction

    return InterpretedFunction(kernel.fn)


def record(kernel: Any, launch: Callable[[Any], None], buffers: list[Buffer]) -> Trace:
    """Run ``launch(kernel)`` under the interpreter and record every load and store it made.

    ``buffers`` must live on the CPU (the interpreter addresses them directly). Each recorded
    address is mapped back to an index of the buffer that contains it; addresses in no buffer
    are counted in ``Trace.unknown``.
    """
    from triton.runtime import interpreter as interp

    builder = interp.interpreter_builder
    ranges = []
    for b in buffers:
        start = b.buf.data_ptr()
        ranges.append((start, start + b.buf.numel() * b.buf.element_size(), b))
    trace = Trace({b.name: b for b in buffers})

    def note(kind: dict, ptrs: Any, mask: Any) -> None:
        addrs = np.asarray(ptrs.data)
        m = np.broadcast_to(np.asarray(mask.data, dtype=bool), addrs.shape)
        pid = tuple(builder.grid_idx)
        touched: dict[str, set] = {}
        for addr in np.unique(addrs[m]).tolist():
            for lo, hi, b in ranges:
                if lo <= addr < hi:
                    flat = (addr - lo) // b.buf.element_size()
                    idx = tuple(int(i) for i in np.unravel_index(flat, tuple(b.buf.shape)))
                    kind.setdefault(b.name, {}).setdefault(pid, set()).add(idx)
                    touched.setdefault(b.name, set()).add(idx)
                    break
            else:
                trace.unknown += 1
        for name, cells in touched.items():
            trace.events.append(("load" if kind is trace.loads else "store", name, pid, cells))

    orig_load, orig_store = builder.create_masked_load, builder.create_masked_store

    def load(ptrs, mask, other, cache_policy, is_volatile):  # noqa: ANN001 - interpreter signature
        note(trace.loads, ptrs, mask)
        return orig_load(ptrs, mask, other, cache_policy, is_volatile)

    def store(ptrs, value, mask, cache_policy):  # noqa: ANN001
        note(trace.stores, ptrs, mask)
        return orig_store(ptrs, value, mask, cache_policy)

    builder.create_masked_load, builder.create_masked_store = load, store
    try:
        launch(_to_interpreted(kernel))
    finally:
        del builder.create_masked_load, builder.create_masked_store
    return trace


def _pick_programs(pids: list[tuple], n: int) -> list[tuple]:
    if len(pids) <= n:
        return pids
    picks = sorted({round(i * (len(pids) - 1) / (n - 1)) for i in range(n)})
    return [pids[i] for i in picks]


def _as_2d(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 1:
        return 1, shape[0]
    return int(np.prod(shape[:-1])), shape[-1]


def draw_trace(trace: Trace, *, title: str = "", programs: int = 4, names: list[str] | None = None) -> Any:
    """A Triton-Puzzles-style figure: one row per program instance, one panel per buffer.

    Cells a program loaded are blue, cells it stored orange (both: purple); the logical tensor is
    outlined in black, guard cells are shaded grey. Buffers with more than two dims are shown
    with their leading dims stacked as rows. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Rectangle

    names = names or list(trace.buffers)
    pids = _pick_programs(trace.programs(), programs)
    cmap = ListedColormap(["white", "#4C72B0", "#DD8452", "#8172B3", "#e6e6e6"])
    shapes = {n: _as_2d(tuple(trace.buffers[n].buf.shape)) for n in names}
    widths = [max(2.0, min(6.0, 0.18 * shapes[n][1])) for n in names]
    height = max(1.2, min(4.0, 0.14 * max(s[0] for s in shapes.values())))
    fig, axes = plt.subplots(
        max(1, len(pids)), len(names), figsize=(sum(widths) + 1, height * max(1, len(pids)) + 0.8),
        gridspec_kw={"width_ratios": widths}, squeeze=False,
    )
    for r, pid in enumerate(pids or [(0, 0, 0)]):
        for c, name in enumerate(names):
            ax = axes[r][c]
            b = trace.buffers[name]
            rows, cols = shapes[name]
            grid = np.where(b.region.reshape(rows, cols), 0, 4)
            loaded = trace.loads.get(name, {}).get(pid, set())
            stored = trace.stores.get(name, {}).get(pid, set())
            flat_shape = tuple(b.buf.shape)
            for cells, code in ((loaded, 1), (stored, 2)):
                for idx in cells:
                    flat = int(np.ravel_multi_index(idx, flat_shape))
                    i, j = divmod(flat, cols)
                    grid[i, j] = code if grid[i, j] in (0, 4) else 3
            ax.imshow(grid, cmap=cmap, vmin=0, vmax=4, aspect="auto", interpolation="nearest")
            # outline the logical region(s): the bounding box of each run of region rows
            reg = b.region.reshape(rows, cols)
            ys, xs = np.nonzero(reg)
            if ys.size:
                ax.add_patch(Rectangle((xs.min() - 0.5, ys.min() - 0.5), xs.max() - xs.min() + 1,
                                       ys.max() - ys.min() + 1, fill=False, lw=1.2, ec="black"))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{name} {tuple(b.view.shape)}", fontsize=9)
            if c == 0:
                label = f"pid {pid[:2] if pid[2] == 0 else pid[:3]}" + (f"\nstep {pid[3]}" if len(pid) > 3 else "")
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(
        (title + "\n" if title else "") + "blue: loaded · orange: stored · purple: both · grey: guard cells",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / fig.get_figheight()))  # room for the two-line title
    return fig


@dataclass
class Case:
    """One problem a checker runs: ``launch(kernel)`` fills ``outputs``, to compare with ``expected``.

    ``data`` holds the inputs as float64 NumPy arrays, for the :class:`Mistake` variants.
    """

    label: str
    launch: Callable[[Any], None]
    outputs: list[Buffer]
    expected: dict[str, np.ndarray]
    data: dict = field(default_factory=dict)
    inputs: list[Buffer] = field(default_factory=list)

    def buffers(self) -> list[Buffer]:
        """Inputs then outputs: everything a drawing shows."""
        return [*self.inputs, *self.outputs]


def run_checker(
    name: str,
    kernel: Any,
    build: Callable[[Any, torch.device], Case],
    params: list,
    *,
    mistakes: list[Mistake] = (),
    hint: Callable[[str, tuple[int, ...]], str] | None = None,
    nan_hint: str = "",
    store_hint: str = "",
    extra: Callable[[Any], str | None] | None = None,
    quiet: bool = False,
) -> bool:
    """Launch ``kernel`` on ``build(p, device)`` for each ``p`` in ``params``; print one ✓/✗ line.

    ``extra(kernel)``, run after every case passed, may return a problem that the values alone do
    not show (e.g. tiles visited that causality lets a kernel skip). Never raises.
    """
    try:
        dev = kernel_device(kernel)
    except (TypeError, RuntimeError) as err:
        return report(False, name, str(err), quiet)
    worst = 0.0
    for p in params:
        try:
            case = build(p, dev)
            case.launch(kernel)
            if dev.type == "cuda":
                torch.cuda.synchronize()
        except Exception as err:  # noqa: BLE001 - whatever the reader's kernel raised, in one line
            return report(False, name, summarize_exception(err), quiet)
        ok, err = compare_outputs(
            name, case.label, case.outputs, case.expected, mistakes=mistakes, case_data=case.data,
            hint=hint, nan_hint=nan_hint, store_hint=store_hint, quiet=quiet,
        )
        if ok is False:
            return False
        worst = max(worst, err)
    if extra is not None:
        try:
            problem = extra(kernel)
        except Exception as err:  # noqa: BLE001
            problem = summarize_exception(err)
        if problem:
            return report(False, name, problem, quiet)
    return report(True, name, f"{len(params)} cases (odd lengths, edge masks, guard cells), max |err| = {worst:.2g}", quiet)


def draw_case(kernel: Any, solution: Any, case: Case, title: str, names: list[str] | None = None,
              by_step: bool = False, programs: int = 4) -> Any:
    """Record ``kernel`` (``None``: the reference ``solution``) on ``case`` and draw it (see :func:`draw_trace`).

    ``by_step=True`` draws each program's chunks as separate rows (see :meth:`Trace.by_step`).

    A reader's kernel that raises (or is not a kernel) is reported in one ✗ line and the reference
    is drawn instead, so that a notebook keeps running.
    """
    who = "reference solution"
    trace = None
    if kernel is not None:
        try:
            trace = record(kernel, case.launch, case.buffers())
            who = f"your kernel {getattr(getattr(kernel, 'fn', kernel), '__name__', '')}"
        except Exception as err:  # noqa: BLE001 - never a traceback from the reader's kernel
            print(f"✗ could not record your kernel ({summarize_exception(err)}); drawing the reference solution instead")
    if trace is None:
        trace = record(solution, case.launch, case.buffers())
    if by_step:
        trace = trace.by_step()
    return draw_trace(trace, title=f"{title}: {who} (recorded under the Triton interpreter)", names=names,
                      programs=programs)
