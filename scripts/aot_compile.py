"""Compile every Triton kernel of the package ahead of time for sm_80, sm_89 and sm_90, on a CPU.

No GPU is needed: ``triton.compile(ASTSource(fn, signature, constexprs), target=GPUTarget("cuda",
cc, 32))`` lowers a kernel to PTX and runs the ``ptxas`` bundled with Triton, which reports the
shared memory, registers and spills of the cubin. What is compiled is exactly what the launchers
launch:

1. the kernels are *discovered* from the source: every ``@jit`` / ``@triton.jit`` function in
   ``linattn_edu/kernels/*.py`` that calls ``tl.program_id`` (a launched kernel, not a helper);
2. each launcher is *called* on meta tensors (shapes and dtypes, no memory) for cases that reach
   every configuration it can choose (head dims 16-128, feature dims up to 273, chunk sizes, block
   sizes, dtypes, flags), with :func:`linattn_edu.kernels.configs.assume_target` set to the target
   and every kernel replaced by a recorder of ``kernel[grid](*args, **kwargs)``;
3. every distinct recorded launch is compiled for its target and checked: it compiles, its shared
   memory fits the target's per-block limit, and its register spills stay within
   :data:`SPILL_BUDGET_BYTES`. A discovered kernel that no case launches is a failure too.

sm_75 (Colab's T4) is checked as well: the runtime must not launch any kernel there
(``runtime.backend_for`` falls back to PyTorch below sm_80), so its row of the table is empty.

Usage::

    python scripts/aot_compile.py                       # full matrix -> linattn_edu/results/aot_compile.json
    python scripts/aot_compile.py --subset ci --out x.json   # the CI subset (tests/test_aot_compile.py)

Runs without ``TRITON_INTERPRET`` (the interpreter replaces the compiled kernels): the variable is
removed before Triton is imported. Set ``TRITON_CACHE_DIR`` to keep the cache out of ``~/.triton``.
"""

from __future__ import annotations

import os

os.environ.pop("TRITON_INTERPRET", None)  # must happen before Triton is imported
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9's default; silences its warning

import argparse  # noqa: E402
import ast  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Iterable  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402
from triton import knobs  # noqa: E402

from linattn_edu import runtime  # noqa: E402
from linattn_edu.kernels import basics, configs, flash, linear, scan  # noqa: E402

KERNEL_DIR = ROOT / "linattn_edu" / "kernels"
MODULES = {"basics": basics, "flash": flash, "linear": linear, "scan": scan}

#: Register spills allowed per kernel (spill stores + spill loads, bytes per thread). Spills go to
#: local memory, cached in L1: a few hundred bytes cost little, many kilobytes mean a tile too big
#: for the register file. 1 KiB covers the longest softmax row (65536 float32 values in one block
#: of 32 warps, the most a block can have: 444-580 B of spills on sm_80/sm_90).
SPILL_BUDGET_BYTES = 1024
#: Kernels whose ``tl.dot`` runs in exact IEEE float32 (float32 inputs; the book keeps float32
#: results float32-accurate) run it on CUDA cores, not tensor cores, and its operand layouts need
#: several times the registers. No tile that ``tl.dot`` accepts removes their spills: the float32
#: FlashAttention dK/dV kernel at D = 128 spills about 10 KB per thread on sm_89 with the best
#: tiles found (32 x 32, 8 warps; 16 x 16 and 16 x 32 spilled as much). They are the float32
#: correctness path, not the fast one (16-bit inputs, tensor cores, no spills), and get this budget.
SPILL_BUDGET_IEEE_DOT_BYTES = 16384


def spill_budget(constexprs: dict[str, Any]) -> int:
    """The spill budget of a launch: larger for exact-float32 ``tl.dot`` kernels."""
    return SPILL_BUDGET_IEEE_DOT_BYTES if constexprs.get("DOT_PRECISION") == "ieee" else SPILL_BUDGET_BYTES


_TORCH_TO_TRITON = {
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.float32: "fp32",
    torch.float64: "fp64",
    torch.int32: "i32",
    torch.int64: "i64",
}


# ----------------------------------------------------------------------------------------------
# 1. Discover the kernels from the source
# ----------------------------------------------------------------------------------------------


def _is_jit(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    return name == "jit"


def discover_kernels(kernel_dir: Path = KERNEL_DIR) -> list[tuple[str, str]]:
    """``(module stem, function name)`` of every jitted function that calls ``tl.program_id``."""
    found = []
    for path in sorted(kernel_dir.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or not any(_is_jit(d) for d in node.decorator_list):
                continue
            calls_pid = any(
                isinstance(n, ast.Attribute) and n.attr == "program_id" for n in ast.walk(node)
            )
            if calls_pid:
                found.append((path.stem, node.name))
    return found


# ----------------------------------------------------------------------------------------------
# 2. Record what the launchers launch
# ----------------------------------------------------------------------------------------------


@dataclass
class Launch:
    """One kernel launch as the launcher made it: kernel, grid, signature, constexprs, options."""

    module: str
    kernel: str
    grid: tuple
    signature: dict[str, str]
    constexprs: dict[str, Any]
    attrs: dict
    options: dict[str, int]
    case: str = ""

    def key(self) -> tuple:
        return (self.module, self.kernel, tuple(sorted(self.signature.items())),
                tuple(sorted(self.constexprs.items())), tuple(sorted(self.options.items())))


def _arg_type(value: Any) -> tuple[str, bool]:
    """Triton signature type of a launch argument, and whether the runtime marks it 16-divisible."""
    if isinstance(value, torch.Tensor):
        return "*" + _TORCH_TO_TRITON[value.dtype], True  # torch allocations are 16-byte aligned
    if isinstance(value, bool):
        return "i1", False
    if isinstance(value, int):
        return ("i32" if -(2**31) <= value < 2**31 else "i64"), value % 16 == 0
    if isinstance(value, float):
        return "fp32", False
    raise TypeError(f"unexpected kernel argument {value!r}")


class _Recorder:
    """Stands in for a ``JITFunction``: ``rec[grid](*args, **kwargs)`` records the launch."""

    def __init__(self, module: str, fn: Any, sink: list[Launch], case: Callable[[], str]) -> None:
        self.module, self.fn, self.sink, self.case = module, fn, sink, case

    def __getitem__(self, grid: tuple) -> Callable[..., None]:
        def launch(*args: Any, **kwargs: Any) -> None:
            names = self.fn.arg_names
            constexpr_names = {p.name for p in self.fn.params if p.is_constexpr}
            options = {k: kwargs.pop(k) for k in ("num_warps", "num_stages") if k in kwargs}
            options.setdefault("num_warps", 4)
            options.setdefault("num_stages", 3)
            bound = dict(zip(names, args))
            bound.update(kwargs)
            missing = [n for n in names if n not in bound]
            if missing:
                raise TypeError(f"{self.fn.__name__} launched without {missing}")
            signature, constexprs, attrs = {}, {}, {}
            for i, name in enumerate(names):
                if name in constexpr_names:
                    signature[name] = "constexpr"
                    constexprs[name] = bound[name]
                else:
                    ty, divisible = _arg_type(bound[name])
                    signature[name] = ty
                    if divisible:
                        attrs[(i,)] = [["tt.divisibility", 16]]
            self.sink.append(Launch(self.module, self.fn.__name__, tuple(grid), signature, constexprs,
                                    attrs, options, self.case()))

        return launch


@contextlib.contextmanager
def recording(kernels: Iterable[tuple[str, str]], sink: list[Launch], case: Callable[[], str]):
    """Replace the discovered kernels by recorders and force the Triton backend for meta tensors."""
    saved = []
    try:
        for mod_name, name in kernels:
            mod = MODULES[mod_name]
            fn = getattr(mod, name)
            saved.append((mod, name, fn))
            setattr(mod, name, _Recorder(mod_name, fn, sink, case))
        for mod in MODULES.values():
            if hasattr(mod, "choose_backend"):
                saved.append((mod, "choose_backend", mod.choose_backend))
                mod.choose_backend = lambda kernel, tensor, backend=None: "triton"
        yield
    finally:
        for mod, name, value in reversed(saved):
            setattr(mod, name, value)


def _meta(*shape: int, dtype: torch.dtype, grad: bool = False) -> torch.Tensor:
    return torch.empty(*shape, device="meta", dtype=dtype).requires_grad_(grad)


def _backward(out: Any) -> None:
    outs = out if isinstance(out, tuple) else (out,)
    total = sum(o.float().sum() for o in outs if o.requires_grad)
    total.backward()


DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_FLAGS_ALL = (True, 64, True)  # causal, window, alibi: every branch of the score code
_FLAGS_NONE = (False, None, False)


def _flash_case(d: int, dt: torch.dtype, flags: tuple) -> Callable[[], None]:
    causal, window, alibi = flags

    def call() -> None:
        q = _meta(2, 4, 256, d, dtype=dt, grad=True)
        k = _meta(2, 2, 256, d, dtype=dt, grad=True)
        v = _meta(2, 2, 256, d, dtype=dt, grad=True)
        slopes = _meta(4, dtype=torch.float32) if alibi else None
        _backward(flash.flash_attention(q, k, v, causal=causal, window=window, alibi_slopes=slopes))
    return call


def _linear_case(dt: torch.dtype, chunk: int, f: int, dv: int) -> Callable[[], None]:
    def call() -> None:
        cap = configs.linear_max_chunk(configs.target_of(torch.device("meta")), dt)
        if chunk > cap:  # the launcher refuses it with a ValueError (tests/test_aot_compile.py)
            return
        q = _meta(1, 2, 300, f, dtype=dt, grad=True)
        k = _meta(1, 2, 300, f, dtype=dt, grad=True)
        v = _meta(1, 2, 300, dv, dtype=dt, grad=True)
        _backward(linear.chunked_linear_attention(q, k, v, chunk_size=chunk))  # also launches Dv = 1
    return call


def _scan_case(dt: torch.dtype, batch: int, channels: int) -> Callable[[], None]:
    def call() -> None:
        a = _meta(batch, 100, channels, dtype=dt, grad=True)
        b = _meta(batch, 100, channels, dtype=dt, grad=True)
        _backward(scan.linear_scan(a, b, _meta(batch, channels, dtype=torch.float32, grad=True)))
    return call


def _conv_case(dt: torch.dtype, k: int) -> Callable[[], None]:
    def call() -> None:
        x = _meta(2, 300, 256, dtype=dt, grad=True)
        _backward(scan.causal_conv1d(x, _meta(256, k, dtype=dt, grad=True), _meta(256, dtype=dt, grad=True)))
    return call


def cases(subset: str, capability: int) -> Iterable[tuple[str, Callable[[], None]]]:
    """``(description, call)`` pairs that drive every launcher through its configurations.

    ``"full"`` (the matrix of ``linattn_edu/results/aot_compile.json``) covers every tile
    configuration the launchers choose: vector-add block sizes, softmax row blocks, head dims
    16-128, chunk sizes 16-128 up to the target's cap, feature tiles for F up to 273 and value
    tiles up to 64, the scan's three channel tiles, the convolution at K = 4 and K = 63, in
    float32 and bfloat16, float16 at the largest tiles (float16 and bfloat16 launch the same tiles),
    and float64 for the vector add. Some dimensions are sampled rather than crossed, to keep the
    run near half an hour per target on one CPU core: FlashAttention's flags run with all of
    causal, window and ALiBi on (every branch of the score code) and, at D = 128, all off; D = 16
    and 32 in bfloat16 only; chunk sizes 16, 64 and 128 (32 lies between); vector-add blocks 16,
    1024, 4096, 8192, 16384 and softmax rows 1, 1024, 8192, 32768, 65536 (the warp-count steps
    and the extremes). Run-time arguments (sequence length, batch) are not compiled in, except
    where they pick a tile.

    ``"ci"`` (``tests/test_aot_compile.py``): every kernel once at its largest 16-bit
    configuration on sm_89 (the smallest shared memory), and the shared-memory-critical
    FlashAttention D = 128 and linear attention at the target's largest chunk on sm_80 and sm_90
    (the time is stated in ``tests/test_aot_compile.py``).
    """
    full = subset == "full"
    if not full and capability != 89:
        for dt in (torch.bfloat16,):
            chunk = configs.linear_max_chunk(capability, dt)
            yield f"flash_attention D=128 {dt}", _flash_case(128, dt, _FLAGS_ALL)
            yield f"chunked_linear_attention chunk={chunk} F=273 Dv=64 {dt}", _linear_case(dt, chunk, 273, 64)
        return
    two = (torch.float32, torch.bfloat16) if full else (torch.bfloat16,)

    # Chapter 2: vector add (user-chosen block size) and row softmax (block = next pow2 of N).
    if full:
        for bs in (16, 1024, 4096, 8192):
            yield f"vector_add block_size={bs} float64", lambda bs=bs: basics.vector_add(
                _meta(1000, dtype=torch.float64), _meta(1000, dtype=torch.float64), block_size=bs)
        for dt in DTYPES:
            yield f"vector_add block_size=16384 {dt}", lambda dt=dt: basics.vector_add(
                _meta(1000, dtype=dt), _meta(1000, dtype=dt), block_size=basics.MAX_ADD_BLOCK)
    else:
        yield "vector_add block_size=16384 float64", lambda: basics.vector_add(
            _meta(1000, dtype=torch.float64), _meta(1000, dtype=torch.float64), block_size=basics.MAX_ADD_BLOCK)
    for n in [1, 1024, 8192, 32768, 65536] if full else [65536]:
        for dt in (torch.float32,) if n < 65536 else (DTYPES if full else (torch.float32,)):
            yield f"row_softmax N={n} {dt}", lambda n=n, dt=dt: basics.row_softmax(_meta(8, n, dtype=dt))

    # FlashAttention: head dims x dtypes, forward and backward.
    for d in flash.SUPPORTED_HEAD_DIMS if full else (64,):
        for dt in (DTYPES if d >= 64 else (torch.bfloat16,)) if full else two:
            yield f"flash_attention D={d} {dt} causal+window+alibi", _flash_case(d, dt, _FLAGS_ALL)
            if full and d == 128:
                yield f"flash_attention D={d} {dt} no flags", _flash_case(d, dt, _FLAGS_NONE)

    # Chunked linear attention: chunk sizes up to the target's cap x feature/value tiles.
    for dt in two:
        for chunk in (16, 64, 128) if full else (64,):
            for f, dv in ((273, 64), (16, 16)) if full else ((273, 64),):
                yield f"chunked_linear_attention chunk={chunk} F={f} Dv={dv} {dt}", _linear_case(dt, chunk, f, dv)
    if full:
        chunk = configs.linear_max_chunk(capability, torch.float16)
        yield f"chunked_linear_attention chunk={chunk} F=273 Dv=64 float16", _linear_case(torch.float16, chunk, 273, 64)

    # Linear scan: BLOCK_C 128 / 64 / 32 by batch x channels.
    for dt in two:
        for batch, channels in ((64, 1024), (1, 1024), (1, 64)) if full else ((1, 64),):
            yield f"linear_scan B={batch} C={channels} {dt}", _scan_case(dt, batch, channels)

    # Causal depthwise convolution: Griffin's K = 4 and the linearized K = 63 (K is a run-time arg).
    for dt in two:
        for k in (4, 63) if full else (63,):
            yield f"causal_conv1d K={k} {dt}", _conv_case(dt, k)


def record_launches(capability: int, subset: str, kernels: list[tuple[str, str]]) -> list[Launch]:
    """Every distinct launch the launchers make on ``capability`` for the cases of ``subset``."""
    sink: list[Launch] = []
    current = [""]
    with recording(kernels, sink, lambda: current[0]), configs.assume_target(capability):
        for desc, call in cases(subset, capability):
            current[0] = desc
            call()
    unique: dict[tuple, Launch] = {}
    for launch in sink:
        unique.setdefault(launch.key(), launch)
    return list(unique.values())


# ----------------------------------------------------------------------------------------------
# 3. Compile and check
# ----------------------------------------------------------------------------------------------

_PTXAS_REGS = re.compile(r"Used (\d+) registers")
_PTXAS_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def compile_launch(launch: Launch, capability: int) -> dict[str, Any]:
    """Compile one launch for ``sm_<capability>``; shared memory, registers, spills, time."""
    mod = MODULES[launch.module]
    fn = getattr(mod, launch.kernel)
    src = ASTSource(fn, launch.signature, {(fn.arg_names.index(k),): v for k, v in launch.constexprs.items()},
                    launch.attrs)
    log = io.StringIO()
    start = time.perf_counter()
    knobs.nvidia.dump_ptxas_log = True
    try:
        with contextlib.redirect_stdout(log):
            compiled = triton.compile(src, target=GPUTarget("cuda", capability, 32), options=launch.options)
    finally:
        knobs.nvidia.dump_ptxas_log = False
    seconds = time.perf_counter() - start
    text = log.getvalue()
    regs = _PTXAS_REGS.findall(text)
    spill = _PTXAS_SPILL.findall(text)
    if not regs or not spill:  # a cache hit skips ptxas: ask it directly on the cached PTX
        text = _ptxas_log(compiled.asm["ptx"], capability)
        regs, spill = _PTXAS_REGS.findall(text), _PTXAS_SPILL.findall(text)
    return {
        "shared_bytes": int(compiled.metadata.shared),
        "num_warps": int(compiled.metadata.num_warps),
        "num_stages": int(compiled.metadata.num_stages),
        "registers": int(regs[-1]),
        "stack_bytes": int(spill[-1][0]),
        "spill_store_bytes": int(spill[-1][1]),
        "spill_load_bytes": int(spill[-1][2]),
        "compile_seconds": round(seconds, 2),
    }


def _ptxas_log(ptx: str, capability: int) -> str:
    """``ptxas -v`` on a cached kernel's PTX, with the flags Triton's own ``make_cubin`` uses."""
    import tempfile

    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "k.ptx"
        path.write_text(ptx)
        cmd = [get_ptxas(capability).path, "-lineinfo", "-v", "--regAllocOptLevel=2",
               f"--gpu-name={sm_arch_from_capability(capability)}", str(path), "-o", str(Path(tmp) / "k.cubin")]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return out.stdout + out.stderr


def check_result(res: dict[str, Any], capability: int) -> list[str]:
    """What is wrong with a compiled launch: shared memory over the limit, spills over budget."""
    problems = []
    budget = spill_budget(res["constexprs"])
    limit = configs.shared_memory_limit(capability)
    if res["shared_bytes"] > limit:
        problems.append(f"shared memory {res['shared_bytes']} B > sm_{capability}'s {limit} B")
    spills = res["spill_store_bytes"] + res["spill_load_bytes"]
    if spills > budget:
        problems.append(f"register spills {spills} B > budget {budget} B")
    return problems


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def sm75_backend() -> str:
    """The backend the runtime picks for CUDA tensors on an sm_75 GPU (must be ``"torch"``)."""
    saved = (runtime.cuda_capability, runtime.triton_installed, runtime.interpreter_requested)
    try:
        runtime.cuda_capability = lambda: (7, 5)  # type: ignore[assignment]
        runtime.interpreter_requested = lambda: False  # type: ignore[assignment]
        torch_name = torch.cuda.get_device_name
        torch.cuda.get_device_name = lambda *a: "Tesla T4 (assumed)"  # type: ignore[assignment]
        try:
            return runtime.backend_for(torch.device("cuda"), kernels_interpreted=False)
        finally:
            torch.cuda.get_device_name = torch_name  # type: ignore[assignment]
    finally:
        runtime.cuda_capability, runtime.triton_installed, runtime.interpreter_requested = saved


def run(subset: str, targets: Iterable[int], verbose: bool = True, only: str | None = None) -> dict[str, Any]:
    kernels = discover_kernels()
    started = time.perf_counter()
    rows, failures, launched = [], [], set()
    for cc in targets:
        launches = record_launches(cc, subset, kernels)
        if only:
            launches = [l for l in launches if l.module == only]
        launched |= {(l.module, l.kernel) for l in launches}
        for i, launch in enumerate(launches):
            row = {"target": f"sm_{cc}", "module": launch.module, "kernel": launch.kernel,
                   "constexprs": launch.constexprs, "options": launch.options,
                   "dtypes": sorted({t for t in launch.signature.values() if t.startswith("*")}),
                   "case": launch.case}
            try:
                row.update(compile_launch(launch, cc))
                row["problems"] = check_result(row, cc)
            except Exception as exc:  # noqa: BLE001 - a failed compile is a result to report
                row["problems"] = [f"compile failed: {type(exc).__name__}: {str(exc)[:300]}"]
            if row["problems"]:
                failures.append(row)
            rows.append(row)
            if verbose:
                print(f"[sm_{cc} {i + 1}/{len(launches)}] {launch.kernel} {launch.constexprs} "
                      f"{launch.options} -> {row.get('shared_bytes')} B smem, {row.get('registers')} regs, "
                      f"{row.get('spill_store_bytes')}+{row.get('spill_load_bytes')} B spill "
                      f"{'; '.join(row['problems'])}", flush=True)
    missing = sorted(set(k for k in kernels if not only or k[0] == only) - launched)
    for mod, name in missing:
        failures.append({"module": mod, "kernel": name, "problems": ["discovered but never launched by any case"]})
    return {
        "provenance": {
            "script": "scripts/aot_compile.py",
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "git_commit": _git("rev-parse", "HEAD"),
            "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
            "triton": triton.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": f"{platform.machine()} CPU (no GPU: ahead-of-time compilation)",
            "subset": subset,
            "only_module": only,
            "seconds": round(time.perf_counter() - started, 1),
        },
        "limits": {f"sm_{cc}": configs.shared_memory_limit(cc) for cc in (75, *targets)},
        "spill_budget_bytes": {"default": SPILL_BUDGET_BYTES, "ieee_fp32_dot": SPILL_BUDGET_IEEE_DOT_BYTES},
        "kernels": [f"{m}.{k}" for m, k in kernels],
        "sm_75": {"backend": sm75_backend(),
                  "note": "below sm_80 the runtime takes the PyTorch fallback: no kernel is launched"},
        "rows": rows,
        "failures": failures,
    }


def with_standard_fields(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with the fields every results file of the package carries
    (:func:`linattn_edu.bench.validate_results`), taken from its ``provenance``."""
    import numpy as np

    prov = result["provenance"]
    command = prov["command"]
    head = {
        "name": "aot_compile",
        "device": prov["machine"],
        "date": prov["date_utc"][:19] + "Z",
        "python": prov["python"],
        "torch": prov["torch"],
        "triton": prov["triton"],
        "numpy": np.__version__,
        "git_commit": (prov["git_commit"] or "") + ("+dirty" if prov.get("git_dirty") else "") or None,
        "command": " && ".join(command) if isinstance(command, list) else command,
        "config": {"subset": prov["subset"], "limits": result["limits"],
                   "spill_budget_bytes": result["spill_budget_bytes"]},
        "wall_seconds": prov["seconds"],
    }
    return {**head, **{k: v for k, v in result.items() if k not in head}}


def summary_table(result: dict[str, Any]) -> str:
    """Kernel x target: max shared memory, warps, max registers, max spills over the configurations."""
    agg: dict[tuple[str, str], dict[str, Any]] = {}
    for row in result["rows"]:
        if "shared_bytes" not in row:
            continue
        key = (row["kernel"], row["target"])
        a = agg.setdefault(key, {"n": 0, "smem": 0, "warps": set(), "regs": 0, "spill": 0})
        a["n"] += 1
        a["smem"] = max(a["smem"], row["shared_bytes"])
        a["warps"].add(row["num_warps"])
        a["regs"] = max(a["regs"], row["registers"])
        a["spill"] = max(a["spill"], row["spill_store_bytes"] + row["spill_load_bytes"])
    lines = ["| kernel | target | configs | max shared B | warps | max regs | max spill B |",
             "|---|---|---|---|---|---|---|"]
    for (kernel, target), a in sorted(agg.items()):
        warps = "/".join(str(w) for w in sorted(a["warps"]))
        lines.append(f"| {kernel} | {target} | {a['n']} | {a['smem']} | {warps} | {a['regs']} | {a['spill']} |")
    return "\n".join(lines)


def _row_key(target: str, kernel: str, constexprs: dict, options: dict, dtypes: list) -> str:
    return json.dumps([target, kernel, sorted(constexprs.items()), sorted(options.items()), sorted(dtypes)],
                      default=str)


def verify(path: Path) -> list[str]:
    """Problems with a results file: a launch the launchers make now that it does not hold, or holds
    with a problem (so the committed table stays the table of the current configurations)."""
    result = json.loads(Path(path).read_text())
    good = {_row_key(r["target"], r["kernel"], r["constexprs"], r["options"], r["dtypes"]): r
            for r in result["rows"] if "shared_bytes" in r}
    problems = [f"{r.get('target', '')} {r['kernel']}: {r['problems']}" for r in result["failures"]]
    kernels = discover_kernels()
    targets = sorted({int(r["target"][3:]) for r in result["rows"]})
    for cc in targets:
        for launch in record_launches(cc, "full", kernels):
            dtypes = sorted({t for t in launch.signature.values() if t.startswith("*")})
            key = _row_key(f"sm_{cc}", launch.kernel, launch.constexprs, launch.options, dtypes)
            row = good.get(key)
            if row is None:
                problems.append(f"sm_{cc} {launch.kernel} {launch.constexprs} {launch.options} {dtypes} "
                                f"({launch.case}) is not in {path}: rerun scripts/aot_compile.py")
            elif row["problems"]:
                problems.append(f"sm_{cc} {launch.kernel} {launch.constexprs}: {row['problems']}")
    if set(f"{m}.{k}" for m, k in kernels) - set(result["kernels"]):
        problems.append(f"kernels not in {path}: {sorted(set(f'{m}.{k}' for m, k in kernels) - set(result['kernels']))}")
    return problems


def merge(paths: list[str]) -> dict[str, Any]:
    """One results dict from several runs (e.g. one process per target, or a later ``--only`` run
    after a module's configurations changed). A later file's rows replace earlier rows of the same
    launch, and only the rows of launches the launchers make *now* are kept."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    out = dict(parts[0])
    prov = dict(parts[0]["provenance"])
    prov["command"] = [p["provenance"]["command"] for p in parts]
    prov["runs"] = [{k: p["provenance"].get(k) for k in ("date_utc", "git_commit", "git_dirty", "seconds", "only_module")}
                    for p in parts]
    prov["seconds"] = round(sum(p["provenance"]["seconds"] for p in parts), 1)
    prov["date_utc"] = max(p["provenance"]["date_utc"] for p in parts)
    prov["git_commit"] = _git("rev-parse", "HEAD")
    prov["git_dirty"] = bool(_git("status", "--porcelain", "--untracked-files=no"))
    prov["note"] = ("merged by --merge: the runs above, run in parallel per target; a later run's rows replace "
                    "earlier rows of the same launch; rows of launches no longer made were dropped")
    out["provenance"] = prov
    out["limits"] = {k: v for p in parts for k, v in p["limits"].items()}
    rows: dict[str, dict] = {}
    for part in parts:
        for r in part["rows"]:
            if "shared_bytes" in r:
                rows[_row_key(r["target"], r["kernel"], r["constexprs"], r["options"], r["dtypes"])] = r
    kernels = discover_kernels()
    current = set()
    for cc in sorted({int(r["target"][3:]) for r in rows.values()}):
        for launch in record_launches(cc, "full", kernels):
            dtypes = sorted({t for t in launch.signature.values() if t.startswith("*")})
            current.add(_row_key(f"sm_{cc}", launch.kernel, launch.constexprs, launch.options, dtypes))
    out["rows"] = [r for k, r in rows.items() if k in current]
    for row in out["rows"]:  # the problems follow from the numbers and today's budgets
        row["problems"] = check_result(row, int(row["target"][3:]))
    out["spill_budget_bytes"] = {"default": SPILL_BUDGET_BYTES, "ieee_fp32_dot": SPILL_BUDGET_IEEE_DOT_BYTES}
    out["failures"] = [r for r in out["rows"] if r["problems"]]
    missing = current - {k for k in rows}
    out["failures"] += [{"kernel": json.loads(k)[1], "target": json.loads(k)[0], "problems": ["not compiled"]}
                        for k in sorted(missing)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subset", choices=("full", "ci"), default="full")
    parser.add_argument("--targets", default=",".join(str(t) for t in configs.AOT_TARGETS),
                        help="comma-separated compute capabilities, e.g. 80,89,90")
    parser.add_argument("--out", default=None, help="JSON output (default: linattn_edu/results/aot_compile.json "
                                                    "for the full matrix, none for the subset)")
    parser.add_argument("--verify", default=None, metavar="JSON",
                        help="compile nothing: check that JSON holds every launch the launchers make now, without problems")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON", help="merge per-target runs into --out")
    parser.add_argument("--only", default=None, choices=sorted(MODULES), help="compile one module's kernels only")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.verify:
        problems = verify(Path(args.verify))
        for p in problems:
            print("PROBLEM", p)
        print(f"verify {args.verify}: {len(problems)} problems")
        return 1 if problems else 0
    if args.merge:
        result = merge(args.merge)
    else:
        targets = [int(t) for t in args.targets.split(",")]
        result = run(args.subset, targets, verbose=not args.quiet, only=args.only)
    out = args.out or (str(ROOT / "linattn_edu" / "results" / "aot_compile.json") if args.subset == "full" else None)
    if out:
        Path(out).write_text(json.dumps(with_standard_fields(result), indent=1, default=str) + "\n")
    print(summary_table(result))
    print(f"{len(result['rows'])} compiles, {len(result['failures'])} failures, "
          f"{result['provenance']['seconds']} s; sm_75 backend: {result['sm_75']['backend']}")
    for row in result["failures"]:
        print("FAIL", row.get("target", ""), row["kernel"], row.get("constexprs", ""), row["problems"])
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
