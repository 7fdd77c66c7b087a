"""The kernel catalogue (``linattn_edu.kernel_catalog``) and its one benchmark command.

``check_kernels`` runs every Triton kernel at tiny shapes (``LINATTN_FAST=1``; the interpreter on
a CPU, compiled on a GPU) against the float64 reference and its PyTorch peers. The launches are
spied on, so a silent fallback to PyTorch cannot make these tests pass. A kernel added to the
package without a catalogue entry fails :func:`test_catalogue_covers_every_launcher`.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from linattn_edu import runtime
from linattn_edu import kernels as K
from linattn_edu import kernel_catalog as catalog
from linattn_edu.kernels import _common

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "bench_kernels.py"


def _kernel_name(kernel) -> str:
    fn = getattr(kernel, "fn", kernel)
    return getattr(fn, "__name__", repr(fn))


@pytest.fixture(scope="module")
def checked():
    """``(rows, launched kernel names)`` of one ``check_kernels()`` over the whole catalogue."""
    seen: set[str] = set()
    cls = type(K.basics._vector_add_kernel)
    original = cls.__getitem__

    def spy(self, grid):
        seen.add(_kernel_name(self))
        return original(self, grid)

    with pytest.MonkeyPatch.context() as mp:
        if _common.HAS_TRITON:
            mp.setattr(cls, "__getitem__", spy)
        rows = catalog.check_kernels()
    return rows, seen


def test_check_passes_every_kernel_within_its_tolerance(checked):
    rows, _ = checked
    assert [r["kernel"] for r in rows] == [e.name for e in catalog.KERNELS]  # one dtype in fast mode
    for r in rows:
        assert r["backend"] in ("interpreter", "triton"), r
        assert r["max_abs_err"] <= r["tol"], r
        assert r["max_abs_err_vs_peers"] <= r["peer_tol"], r
        assert 0 < r["tol"] < 1e-2 and r["peers"], r
        assert r["ok"], r
    assert catalog.failed(rows) == []


def test_the_check_really_launched_every_triton_kernel(checked):
    _, seen = checked
    wanted = {k for kernels in catalog.discover_launchers().values() for k in kernels}
    assert wanted <= seen, f"kernels never launched by check_kernels: {sorted(wanted - seen)}"


def test_catalogue_covers_every_launcher():
    discovered = catalog.discover_launchers()
    # Discovery must see the known launchers (guards against it silently finding nothing)...
    assert {"vector_add", "row_softmax", "flash_attention", "chunked_linear_attention",
            "linear_scan", "causal_conv1d"} <= set(discovered)
    # ...and must not count PyTorch twins, configs or decode steps as Triton launchers.
    assert not any(n.endswith(("_torch", "_config", "_step")) for n in discovered)
    catalogued = {e.launcher for e in catalog.KERNELS}
    missing = set(discovered) - catalogued
    assert not missing, f"Triton launchers without a catalogue entry in KERNELS: {sorted(missing)}"
    assert catalogued <= set(discovered)
    for launcher, kernels in discovered.items():
        directions = {e.direction for e in catalog.KERNELS if e.launcher == launcher}
        assert "fwd" in directions
        if any("bwd" in k for k in kernels):
            assert "fwd+bwd" in directions, f"{launcher} has a backward kernel but no fwd+bwd entry"
    for e in catalog.KERNELS:  # every entry is usable as documented
        assert callable(getattr(K, e.launcher)) and e.peers and e.chapter
        assert set(e.check_shapes) == set(catalog.CHECK_SIZES)
        assert set(e.bench_shapes) == set(catalog.BENCH_SIZES)


def test_discovery_finds_a_new_kernel_and_its_launcher():
    source = '''
@jit
def _new_kernel(x_ptr, BLOCK: tl.constexpr):
    pass

def _launch(x):
    _new_kernel[(1,)](x, BLOCK=16)

class _Fn:
    @staticmethod
    def forward(ctx, x):
        return _launch(x)

def new_op(x):
    return _Fn.apply(x)

def new_op_torch(x):
    return x
'''
    closure = catalog._module_launches(ast.parse(source))
    assert closure["new_op"] == {"_new_kernel"}
    assert closure["new_op_torch"] == set()


def test_a_wrong_forward_is_caught(monkeypatch):
    def wrong_softmax(x, **kwargs):
        return torch.softmax(x.float() * 1.01, dim=-1).to(x.dtype)

    monkeypatch.setattr(K, "row_softmax", wrong_softmax)
    (row,) = catalog.check_kernels("row_softmax")
    assert not row["ok"] and row["max_abs_err"] > row["tol"]
    assert catalog.failed([row]) == [row]


def test_a_wrong_gradient_is_caught(monkeypatch):
    """Right outputs, wrong dq: only the gradient check can see it."""
    def wrong_grad(q, k, v, **kwargs):
        out = K.flash_attention_torch(q, k, v, causal=kwargs.get("causal", True))
        return out + 0.05 * (q - q.detach())  # adds zero forward, 0.05·dO to dq backward

    monkeypatch.setattr(K, "flash_attention", wrong_grad)
    rows = catalog.check_kernels("flash_attention (causal) fwd+bwd")
    assert not rows[0]["ok"] and rows[0]["worst"] == "dq"
    fwd = catalog.check_kernels("flash_attention (causal) fwd")
    assert fwd[0]["ok"]  # the forward alone cannot tell


def test_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="names"):
        catalog.check_kernels("no_such_kernel")
    with pytest.raises(ValueError, match="size"):
        catalog.check_kernels("vector_add", size="huge")
    with pytest.raises(ValueError, match="dtypes"):
        catalog.check_kernels("vector_add", dtypes=[torch.float64])
    with pytest.raises(ValueError, match="size"):
        catalog.bench_kernels(size="huge")
    with pytest.raises(ValueError, match="max_loop_len"):
        catalog.bench_kernels(max_loop_len=-1)
    assert [e.name for e in catalog.entries("linear_scan")] == ["linear_scan fwd", "linear_scan fwd+bwd"]


@pytest.mark.skipif(runtime.triton_compiles(), reason="a GPU whose kernels compile is present")
def test_bench_needs_cuda():
    with pytest.raises(RuntimeError, match="CUDA GPU"):
        catalog.bench_kernels("vector_add")


def test_tables_and_plots(checked):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, _ = checked
    text = catalog.format_table(rows, catalog.CHECK_COLUMNS)
    assert "flash_attention (ALiBi) fwd+bwd" in text and "✓" in text
    page = catalog.html_table(catalog.catalog_rows(), caption="catalogue")
    assert page.count("<tr>") == len(catalog.KERNELS) + 1 and "SDPA" in page
    ax = catalog.plot_check(rows)
    assert ax.get_xlabel() and ax.get_title()
    fake = [dict(kernel="vector_add fwd", dtype="float32", x=n, ratio=r, peer=p, device="GPU X")
            for n in (10, 20) for p, r in (("torch x + y", 1.1), ("copy", 0.9))]
    ax = catalog.plot_ratios(fake)
    assert "GPU X" in ax.get_title() and ax.get_xlabel()
    plt.close("all")
    record = catalog.load_kernel_results()
    assert record is None or {"device", "date", "command", "rows"} <= record.keys()


def test_script_runs_in_cpu_mode(tmp_path):
    env = dict(os.environ, LINATTN_FAST="1", TRITON_INTERPRET="1", LINATTN_FORCE_CPU="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--only", "row_softmax", "--only", "vector_add",
         "--out-dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CPU: Triton interpreter, correctness only, no timings" in proc.stdout
    assert "2/2 checks passed" in proc.stdout
    assert list(tmp_path.iterdir()) == []  # the CPU path writes nothing


def test_the_timing_loop_runs_end_to_end_at_tiny_shapes():
    """bench_kernels' loop (closures, backward, prepare, copy, skips) on CPU tensors, tiny shapes.

    Only the code path is tested: interpreter times mean nothing, and bench_kernels itself refuses
    to run without CUDA.
    """
    import dataclasses

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picked = [dataclasses.replace(e, bench_shapes={"live": [e.check_shapes["tiny"]]})
              for e in catalog.entries(["vector_add", "flash_attention (ALiBi) fwd+bwd", "linear_scan fwd",
                                        "causal_conv1d fwd"])]
    device = torch.device("cuda") if runtime.triton_compiles() else torch.device("cpu")

    def once(fn):
        from linattn_edu import bench

        return 1e3 * bench.time_fn(fn, warmup=0, repeat=1, device=device)

    rows = catalog._bench(picked, size="live", dtypes=[torch.float32], device=device, timer=once,
                          loop_timer=once, max_loop_len=4, seed=0, echo=False)
    assert [(r["kernel"], r["peer"]) for r in rows] == [(e.name, p.name) for e in picked for p in e.peers]
    for r in rows:
        assert r["ms"] > 0 and r["rate"] > 0 and r["metric"] in ("TFLOP/s", "GB/s")
        if r["peer"] == "PyTorch loop":  # T = 20 > max_loop_len = 4
            assert r["peer_ms"] is None and r["ratio"] is None and "loop" in r["skipped"]
        else:
            assert r["skipped"] is None and r["ratio"] == pytest.approx(r["peer_ms"] / r["ms"])
    assert catalog.plot_ratios(rows).get_title()
    assert "ratio" in catalog.format_table(rows, catalog.BENCH_COLUMNS)
    plt.close("all")


def test_alibi_causal_bias_equals_the_reference_bias_below_the_diagonal():
    """The SDPA peer's mask (shared with scripts/bench_alibi.py): ALiBi's bias, -inf on the future."""
    import numpy as np

    from linattn_edu.reference import alibi_bias, alibi_slopes

    bias = catalog.alibi_causal_bias(torch.tensor(alibi_slopes(6)), 9, torch.float64, "cpu").numpy()
    past = np.tril(np.ones((9, 9), dtype=bool))
    np.testing.assert_allclose(bias[:, past], alibi_bias(6, 9)[:, past], rtol=0, atol=1e-12)
    assert np.isneginf(bias[:, ~past]).all()


#: Subpackages and modules of ``linattn_edu`` the kernel layer may import: the layers below it.
KERNEL_LAYER_MAY_IMPORT = {"kernels", "reference", "runtime", "checks"}


def _package_imports(path: Path, root: Path = ROOT) -> set[str]:
    """First component below ``linattn_edu`` of every package import in ``path`` (relative or absolute)."""
    package = path.relative_to(root).with_suffix("").parts[:-1]  # e.g. ("linattn_edu", "kernels")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                parts = base + (node.module.split(".") if node.module else [])
                names = [parts] if node.module else [base + [a.name] for a in node.names]
            else:
                names = [node.module.split(".")] + [node.module.split(".") + [a.name] for a in node.names]
                names = names[:1] if node.module != "linattn_edu" else names[1:]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names]
        else:
            continue
        found |= {parts[1] for parts in names if len(parts) > 1 and parts[0] == "linattn_edu"}
    return found


def test_the_kernel_layer_imports_nothing_above_it():
    """No module of ``linattn_edu.kernels`` imports models, experiments, widgets, the catalogue..."""
    files = sorted((ROOT / "linattn_edu" / "kernels").glob("*.py"))
    assert len(files) >= 5
    upward = {f.name: sorted(_package_imports(f) - KERNEL_LAYER_MAY_IMPORT) for f in files}
    assert not any(upward.values()), f"imports running back up from the kernel layer: {upward}"
    assert not (ROOT / "linattn_edu" / "kernels" / "catalog.py").exists()


def test_the_import_check_sees_an_upward_import(tmp_path):
    """The check above is not vacuous: it flags relative and absolute imports of a higher layer."""
    probe = tmp_path / "linattn_edu" / "kernels" / "probe.py"
    probe.parent.mkdir(parents=True)
    cases = {
        "from ..models.linear import feature_map_torch\n": {"models"},
        "from linattn_edu import experiments\n": {"experiments"},
        "import linattn_edu.widgets.static\n": {"widgets"},
        "from .. import models, runtime\n": {"models", "runtime"},
        "from ._common import tl\nfrom .. import runtime\n": {"kernels", "runtime"},
    }
    for source, expected in cases.items():
        probe.write_text(source, encoding="utf-8")
        assert _package_imports(probe, tmp_path) == expected, source
