"""Ahead-of-time compilation of the Triton kernels for sm_80, sm_89 and sm_90, and the GPU-only hazards.

No GPU is needed: ``scripts/aot_compile.py`` compiles the launches the launchers make (driven on
meta tensors) with ``triton.compile(ASTSource(...), target=GPUTarget("cuda", cc, 32))`` and the
``ptxas`` bundled with Triton, then checks shared memory against the target's per-block limit
and register spills against a stated budget. It runs in a subprocess because the tests set
``TRITON_INTERPRET=1``, under which ``@triton.jit`` returns interpreter functions that cannot be
compiled.

- ``test_ci_subset_compiles_for_every_target``: the representative subset, every kernel at least
  once for sm_89 and the shared-memory-critical ones for sm_80 and sm_90 (``cases(subset="ci")``
  in the script): measured 2026-12-03 at 31 s of CPU time, 77 s wall on the 2-core development
  machine under a load of 4-6. The full matrix (297 compiles) is ``scripts/aot_compile.py``
  without arguments, about an hour of CPU time.
- ``test_committed_matrix_holds_every_launch_now``: compiles nothing; every launch the launchers
  make today over the full matrix must be in ``linattn_edu/results/aot_compile.json`` and fit
  there, so a configuration change without a new compile run fails here.

The hazard tests run the real kernels in the interpreter at offsets past 2**31 on tensors whose
memory is reserved but never touched (``torch.empty`` of a few GB maps pages lazily; only the
pages a test reads or writes are backed).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from linattn_edu.kernels import configs

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "aot_compile.py"
RESULTS = ROOT / "linattn_edu" / "results" / "aot_compile.json"


def _run_script(*args: str, tmp_path: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton-cache")  # a fresh cache: every kernel really compiles
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)


def _launched_kernels_by_grep() -> set[str]:
    """An independent count: functions after an ``@jit``/``@triton.jit`` line whose text has ``program_id``."""
    found = set()
    for path in sorted((ROOT / "linattn_edu" / "kernels").glob("*.py")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.fullmatch(r"@(triton\.)?jit", line.strip()) and not line.startswith(" "):
                name = re.match(r"def (\w+)", lines[i + 1]).group(1)
                end = next((j for j in range(i + 2, len(lines)) if lines[j][:1] not in ("", " ", ")", "#")),
                           len(lines))
                if "program_id" in "\n".join(lines[i:end]):
                    found.add(f"{path.stem}.{name}")
    return found


@pytest.fixture(scope="module")
def ci_result(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("aot")
    out = tmp / "ci.json"
    proc = _run_script("--subset", "ci", "--quiet", "--out", str(out), tmp_path=tmp)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads(out.read_text())


def test_ci_subset_compiles_for_every_target(ci_result):
    assert ci_result["failures"] == []
    assert set(ci_result["kernels"]) == _launched_kernels_by_grep()
    targets = {row["target"] for row in ci_result["rows"]}
    assert targets == {f"sm_{cc}" for cc in configs.AOT_TARGETS}
    compiled = {f"{row['module']}.{row['kernel']}" for row in ci_result["rows"]}
    assert compiled == set(ci_result["kernels"]), "a discovered kernel was never compiled"
    for row in ci_result["rows"]:
        assert row["shared_bytes"] <= configs.shared_memory_limit(int(row["target"][3:]))
        assert row["registers"] > 0 and row["num_warps"] in (4, 8, 16, 32)
    # the largest chunk the launcher accepts on a GPU, and nothing larger
    chunks = {(r["target"], r["constexprs"].get("CHUNK")) for r in ci_result["rows"] if r["module"] == "linear"}
    assert {("sm_80", 64), ("sm_89", 64), ("sm_90", 64)} <= chunks and max(c for _, c in chunks) == 64
    assert ci_result["sm_75"]["backend"] == "torch"  # a T4 takes the PyTorch fallback: nothing to compile


def test_committed_matrix_holds_every_launch_now(tmp_path):
    proc = _run_script("--verify", str(RESULTS), tmp_path=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    result = json.loads(RESULTS.read_text())
    prov = result["provenance"]
    assert prov["subset"] == "full" and prov["triton"] and prov["git_commit"]
    assert {r["target"] for r in result["rows"]} == {f"sm_{cc}" for cc in configs.AOT_TARGETS}
    for row in result["rows"]:
        assert row["shared_bytes"] <= result["limits"][row["target"]]


def test_discovery_finds_a_new_kernel(tmp_path):
    """A new ``@triton.jit`` kernel in kernels/*.py is discovered; a jitted helper is not."""
    src = (
        "import triton\nimport triton.language as tl\n\n"
        "@triton.jit\ndef _helper(x):\n    return x + 1\n\n"
        "@triton.jit\ndef _new_kernel(X, BLOCK: tl.constexpr):\n    pid = tl.program_id(0)\n"
    )
    (tmp_path / "new.py").write_text(src)
    code = (
        "import sys, json; sys.argv = ['x']; sys.path.insert(0, 'scripts')\n"
        "import aot_compile as A\nfrom pathlib import Path\n"
        f"print(json.dumps(A.discover_kernels(Path({str(tmp_path)!r}))))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [["new", "_new_kernel"]]


# ----------------------------------------------------------------------------------------------
# Launch configurations chosen per architecture
# ----------------------------------------------------------------------------------------------


def test_shared_memory_limits_and_chunk_caps():
    assert configs.shared_memory_limit(90) == 232_448
    assert configs.shared_memory_limit(80) == 166_912
    assert configs.shared_memory_limit(89) == configs.shared_memory_limit(86) == 101_376
    assert configs.shared_memory_limit(120) == 101_376  # unknown: the smallest limit of a supported GPU
    for cc in (80, 86, 89, 90, 120):  # chunk 128: over shared memory or the spill budget everywhere
        assert configs.linear_max_chunk(cc, torch.float16) == 64
    for cc in (80, 89, 90):
        assert configs.linear_max_chunk(cc, torch.float32) == 64


def _meta(*shape, dtype=torch.bfloat16):
    return torch.empty(*shape, device="meta", dtype=dtype)


@pytest.mark.parametrize("cc,dtype", [(89, torch.bfloat16), (86, torch.float16), (80, torch.bfloat16),
                                      (90, torch.bfloat16), (80, torch.float32), (90, torch.float32)])
def test_chunk_128_that_does_not_fit_is_refused_naming_chunk_size(monkeypatch, cc, dtype):
    """``backend="triton"``: a ValueError; ``backend=None`` (models): the PyTorch path, one warning."""
    from linattn_edu import runtime
    from linattn_edu.kernels import linear

    monkeypatch.setattr(linear, "choose_backend", lambda *a, **k: "triton")  # as on a GPU
    q = _meta(1, 1, 40, 16, dtype=dtype)
    with configs.assume_target(cc):
        with pytest.raises(ValueError, match=r"chunk_size=128 .*sm_%d.*chunk_size <= 64" % cc):
            linear.chunked_linear_attention(q, q, q, chunk_size=128, backend="triton")
        calls = []
        monkeypatch.setattr(linear, "chunked_linear_attention_torch", lambda *a, **k: calls.append(k) or "torch")
        runtime._warned.clear()
        with pytest.warns(UserWarning, match="chunk_size=128 does not fit"):
            assert linear.chunked_linear_attention(q, q, q, chunk_size=128) == "torch"
        assert calls == [dict(chunk_size=128, normalize=True, eps=1e-6)]


def test_check_grid_names_the_length():
    assert configs.check_grid((2**31 - 1, 65_535, 1), ("a", "b", "c")) == (2**31 - 1, 65_535, 1)
    with pytest.raises(ValueError, match="x's batch B needs 65536 programs on launch-grid axis 1"):
        configs.check_grid((1, 65_536, 1), ("x's length T", "x's batch B", "x's channels C"))
    with pytest.raises(ValueError, match="axis 0"):
        configs.check_grid((2**31,), ("n",))


class _GridRecorder:
    def __init__(self):
        self.grids = []

    def __getitem__(self, grid):
        self.grids.append(grid)
        return lambda *args, **kwargs: None


def test_conv_launch_puts_time_on_the_unlimited_grid_axis(monkeypatch):
    """T = 4M steps: cdiv(T, 32) = 131072 programs, over 65535, so time must be grid axis 0."""
    from linattn_edu.kernels import scan

    rec = _GridRecorder()
    monkeypatch.setattr(scan, "choose_backend", lambda *a, **k: "triton")
    monkeypatch.setattr(scan, "_causal_conv1d_fwd_kernel", rec)
    t = 4 * 2**20
    with configs.assume_target(90):
        scan.causal_conv1d(_meta(1, t, 64), _meta(64, 4))
        assert rec.grids == [(t // 32, 1, 1)]
        with pytest.raises(ValueError, match="x's batch B"):
            scan.causal_conv1d(_meta(70_000, 1, 64), _meta(64, 4))


def test_scan_and_flash_grids_are_checked(monkeypatch):
    from linattn_edu.kernels import flash, scan

    monkeypatch.setattr(scan, "choose_backend", lambda *a, **k: "triton")
    monkeypatch.setattr(scan, "_linear_scan_fwd_kernel", _GridRecorder())
    c = 128 * 70_000  # channel tiles of 128: 70000 programs on grid axis 1
    with configs.assume_target(80), pytest.raises(ValueError, match="a's channels C"):
        scan.linear_scan(_meta(1, 4, c), _meta(1, 4, c))
    with pytest.raises(ValueError, match="B\\*H = 70000 > 65535"):
        flash.flash_attention(_meta(70_000, 1, 16, 16), _meta(70_000, 1, 16, 16), _meta(70_000, 1, 16, 16))


# ----------------------------------------------------------------------------------------------
# int64 offsets: the real kernels past 2**31 elements, in the interpreter
# ----------------------------------------------------------------------------------------------

BIG = 2**31  # first element index that int32 arithmetic cannot reach


def _run_interpreted(body: str) -> None:
    """Run ``body`` with the kernels in the interpreter, in a subprocess: with int32 offsets the
    kernel reads before its array, which crashes the process (it would take pytest down with it)."""
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    code = "import torch\nfrom linattn_edu.kernels import basics\nBIG = 2**31\n" + body + "\nprint('OK')\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and "OK" in proc.stdout, f"rc={proc.returncode}\n{proc.stderr[-3000:]}"


needs_cpu = pytest.mark.skipif(torch.cuda.is_available(), reason="interpreter tests for machines without a GPU")


@needs_cpu
def test_vector_add_offsets_past_2_31():
    """Program 2**21 of 1024-element blocks starts at element 2**31: in int32, pid * BLOCK_SIZE
    wraps to -2**31, passes the mask, and reads before the array (a crash, measured).

    The interpreter runs every program of a grid in turn, so the test launches one program and
    shifts the interpreter's program id by 2**21: it plays the program of a 2**31-element add.
    The three 2 GiB tensors are reserved by ``torch.empty`` but only their last page is touched.
    """
    _run_interpreted("""
from triton.runtime import interpreter
cls = type(interpreter.interpreter_builder)
original = cls.set_grid_idx
def shifted(self, x, y, z):
    original(self, x, y, z)  # checks the launched grid
    self.grid_idx = (x + BIG // 1024, y, z)
cls.set_grid_idx = shifted
n = BIG + 1024
x, y, out = (torch.empty(n, dtype=torch.uint8) for _ in range(3))
x[BIG:] = torch.arange(1024) % 100
y[BIG:] = 7
basics._vector_add_kernel[(1,)](x, y, out, n, BLOCK_SIZE=1024)
assert torch.equal(out[BIG:], (torch.arange(1024) % 100 + 7).to(torch.uint8))
""")


@needs_cpu
def test_row_softmax_row_offsets_past_2_31():
    """Rows 2**30 elements apart (an int32 stride): row 2 starts at element 2**31. With
    ``row * row_stride`` in int32 this crashed (segmentation fault, measured before the fix)."""
    _run_interpreted("""
storage = torch.empty(BIG + 64, dtype=torch.float16)  # 4 GiB reserved, three rows touched
x = storage.as_strided((3, 64), (2**30, 1))
values = torch.randn(3, 64, dtype=torch.float16)
x.copy_(values)
out = basics.row_softmax(x)
assert torch.allclose(out.float(), torch.softmax(values.float(), -1), atol=1e-3)
""")


def test_every_strided_index_in_the_kernels_is_int64():
    """Source check for the kernels that cannot be run at 2**31 here (flash, linear, scan).

    An element offset can pass 2**31 where a row index is multiplied by a row stride (``offs_t *
    stride_t``, ``offs_t * C``) or a program id by a whole slab (``b * stride_qb``, ``pid *
    BLOCK_SIZE``, ``bh * Tq``). Each such product must convert to int64 first; a new kernel that
    writes ``offs_m[:, None] * stride_qt`` fails here.
    """
    row_times_stride = re.compile(r"\boffs_\w+(\[[^\]]*\])?\s*\*\s*(stride_\w+|C\b)")
    pid_times_slab = re.compile(r"\b(pid|pid_b|row|bh|b|h|h_kv)\s*\*\s*(stride_\w+|BLOCK_SIZE|T\b|Tq\b|C\b|K\b)")
    offenders = []
    for path in sorted((ROOT / "linattn_edu" / "kernels").glob("*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if row_times_stride.search(code) or pid_times_slab.search(code):
                offenders.append(f"{path.name}:{lineno}: {line.strip()}")
    assert offenders == [], "\n".join(offenders)
