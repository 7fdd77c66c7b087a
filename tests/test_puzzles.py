"""The Triton puzzles: every reference solution passes its checker, and deliberately wrong kernels fail.

A wrong kernel ("mutant") is the reference solution's source with one typical mistake edited in
(an off-by-one causal mask, a running sum that is not rescaled, an unmasked tail, ...), written to
a file and imported, so that Triton sees ordinary source. Each mutant must make its checker print a
✗ line carrying the expected hint, return False, and never raise.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("triton")

from linattn_edu.puzzles import PUZZLES, ch02, ch04, ch06  # noqa: E402
from linattn_edu.puzzles import _solutions as S  # noqa: E402
from linattn_edu.puzzles._common import summarize_exception  # noqa: E402

CHECKERS = {"ch02": ch02, "ch04": ch04, "ch06": ch06}
SOLUTIONS = {
    "check_add": "add_kernel",
    "check_softmax": "softmax_kernel",
    "check_matmul": "matmul_kernel",
    "check_flash_forward": "flash_fwd_kernel",
    "check_flash_ds": "flash_bwd_ds_kernel",
    "check_linear_attention_forward": "linear_attn_fwd_kernel",
    "check_linear_attention_backward": "linear_attn_bwd_kernel",
    "check_scan_tile": "scan_tile_kernel",
    "check_chunked_scan": "chunked_scan_kernel",
    "check_causal_conv": "causal_conv_kernel",
}
SOURCE = Path(S.__file__).read_text(encoding="utf-8")
_counter = itertools.count()


def _checker(name: str) -> Any:
    for chapter, checker, _ in PUZZLES:
        if checker == name:
            return getattr(CHECKERS[f"ch{chapter:02d}"], name)
    raise KeyError(name)


def mutant(tmp_path: Path, kernel_name: str, *edits: tuple[str, str]) -> Any:
    """The solution ``kernel_name`` with each ``(old, new)`` edit applied inside its own source once."""
    func_src = inspect.getsource(getattr(S, kernel_name).fn)
    assert SOURCE.count(func_src) == 1
    new_src = func_src
    for old, new in edits:
        assert new_src.count(old) == 1, f"{old!r} occurs {new_src.count(old)} times in {kernel_name}"
        new_src = new_src.replace(old, new)
    path = tmp_path / f"puzzle_mutant_{next(_counter)}.py"
    path.write_text(SOURCE.replace(func_src, new_src), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, kernel_name)


def _run(checker: Any, kernel: Any, capsys: pytest.CaptureFixture) -> tuple[bool, str]:
    ok = checker(kernel)
    out = capsys.readouterr().out
    assert out.count("\n") == 1, f"a checker prints exactly one line, got:\n{out}"
    assert "Traceback" not in out
    return ok, out


@pytest.mark.parametrize("checker_name", list(SOLUTIONS))
def test_solution_passes(checker_name: str, capsys: pytest.CaptureFixture) -> None:
    ok, out = _run(_checker(checker_name), getattr(S, SOLUTIONS[checker_name]), capsys)
    assert ok and out.startswith("✓"), out


def test_ladder_has_ten_puzzles_with_checkers_and_drawings() -> None:
    assert len(PUZZLES) >= 10
    for chapter, checker, _ in PUZZLES:
        module = CHECKERS[f"ch{chapter:02d}"]
        assert callable(getattr(module, checker))
        assert callable(getattr(module, checker.replace("check_", "draw_")))
        assert checker in SOLUTIONS


# (checker, kernel, edits, expected hint substring)
MISTAKES = [
    # 2.1 vector add
    ("check_add", "add_kernel", [("mask = offs < n", "mask = offs < n + BLOCK")], "mask the store"),
    ("check_add", "add_kernel", [("mask = offs < n", "mask = offs <= n")], "mask the store"),
    ("check_add", "add_kernel", [("offs = pid * BLOCK + tl.arange(0, BLOCK)", "offs = tl.arange(0, BLOCK)")], "never written"),
    # 2.2 row softmax
    ("check_softmax", "softmax_kernel", [('other=float("-inf")', "other=0.0")], "other=-inf"),
    ("check_softmax", "softmax_kernel", [("    x = x - tl.max(x, axis=0)\n", "")], "subtract the row max"),
    # 2.3 matmul
    ("check_matmul", "matmul_kernel", [("acc += tl.dot", "acc = tl.dot")], "accumulate"),
    ("check_matmul", "matmul_kernel", [("mask=(offs_m[:, None] < M) & (offs_k[None, :] < K), other=0.0",
                                        "mask=offs_m[:, None] < M, other=0.0"),
                                       ("mask=(offs_k[:, None] < K) & (offs_n[None, :] < N), other=0.0",
                                        "mask=offs_n[None, :] < N, other=0.0")], "mask the loads"),
    ("check_matmul", "matmul_kernel", [(", acc,\n             mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))", ", acc)")],
     "mask the store"),
    # 2.4 FlashAttention forward
    ("check_flash_forward", "flash_fwd_kernel", [("offs_n[None, :] <= offs_m[:, None]", "offs_n[None, :] < offs_m[:, None]")],
     "off-by-one causal mask"),
    ("check_flash_forward", "flash_fwd_kernel", [("offs_n[None, :] <= offs_m[:, None]", "offs_n[None, :] <= offs_m[:, None] + 1")],
     "off-by-one causal mask"),
    ("check_flash_forward", "flash_fwd_kernel", [("l_i = l_i * alpha + tl.sum", "l_i = l_i + tl.sum")], "running sum is not rescaled"),
    ("check_flash_forward", "flash_fwd_kernel", [("acc = acc * alpha[:, None] + tl.dot", "acc = acc + tl.dot")],
     "accumulator is not rescaled"),
    ("check_flash_forward", "flash_fwd_kernel", [("kv_mask = offs_n[:, None] < T", "kv_mask = offs_n[:, None] < T + BLOCK_N")],
     "mask the K/V loads"),
    ("check_flash_forward", "flash_fwd_kernel", [("o, mask=offs_m[:, None] < T)", "o)")], "mask the store"),
    ("check_flash_forward", "flash_fwd_kernel", [("range(0, (pid_m + 1) * BLOCK_M, BLOCK_N)", "range(0, T, BLOCK_N)")],
     "skip the key tiles above the diagonal"),
    ("check_flash_forward", "flash_fwd_kernel", [('        s = tl.where(offs_n[None, :] <= offs_m[:, None], s, float("-inf"))\n', "")],
     "no causal mask"),
    # 2.5 dS
    ("check_flash_ds", "flash_bwd_ds_kernel", [("ds = p * (dp - delta[:, None])", "ds = p * dp")], "delta is missing"),
    ("check_flash_ds", "flash_bwd_ds_kernel", [("ds = p * (dp - delta[:, None])", "ds = p * (delta[:, None] - dp)")], "sign"),
    ("check_flash_ds", "flash_bwd_ds_kernel", [("    p = tl.where(offs_n[None, :] <= offs_m[:, None], p, 0.0)\n", "")],
     "not causally masked"),
    ("check_flash_ds", "flash_bwd_ds_kernel", [("mask=m_ok[:, None] & n_ok[None, :])", "mask=m_ok[:, None])")], "mask the store"),
    ("check_flash_ds", "flash_bwd_ds_kernel", [("n_ok = offs_n < T", "n_ok = offs_n < T + BLOCK_N")], "mask the store"),
    # 4.1 chunked linear attention forward
    ("check_linear_attention_forward", "linear_attn_fwd_kernel",
     [("offs_c[None, :] <= offs_c[:, None]", "offs_c[None, :] < offs_c[:, None]")], "diagonal is missing"),
    ("check_linear_attention_forward", "linear_attn_fwd_kernel",
     [(' + tl.dot(q, state, input_precision="ieee")', "")], "state is not carried"),
    ("check_linear_attention_forward", "linear_attn_fwd_kernel",
     [('        scores = tl.dot(q, tl.trans(k), input_precision="ieee")\n',
       '        state += tl.dot(tl.trans(k), v, input_precision="ieee")\n'
       '        scores = tl.dot(q, tl.trans(k), input_precision="ieee")\n'),
      ('        state += tl.dot(tl.trans(k), v, input_precision="ieee")  # only after this chunk\'s output\n', "")],
     "updated before"),
    ("check_linear_attention_forward", "linear_attn_fwd_kernel",
     [("offs_v[None, :], mask=ok, other=0.0)\n        scores", "offs_v[None, :])\n        scores")], "mask the loads"),
    # 4.2 backward
    ("check_linear_attention_backward", "linear_attn_bwd_kernel",
     [("later = offs_c[None, :] >= offs_c[:, None]", "later = offs_c[None, :] <= offs_c[:, None]")], "anticausal"),
    ("check_linear_attention_backward", "linear_attn_bwd_kernel",
     [("start = (n_chunks - 1 - c) * CHUNK", "start = c * CHUNK")], "walked forwards"),
    ("check_linear_attention_backward", "linear_attn_bwd_kernel",
     [('mask=ok)\n        grad_state += tl.dot(tl.trans(q), do, input_precision="ieee")\n', "mask=ok)\n"),
      ('        later = offs_c', '        grad_state += tl.dot(tl.trans(q), do, input_precision="ieee")\n        later = offs_c')],
     "G was updated before"),
    # 6.1 scan within a tile
    ("check_scan_tile", "scan_tile_kernel",
     [("tl.associative_scan((a, b), 0, scan_combine)", "tl.associative_scan((a, b), 0, wrong_combine)")], "left step first"),
    ("check_scan_tile", "scan_tile_kernel", [("tl.store(h_ptr + ptrs, h, mask=mask)", "tl.store(h_ptr + ptrs, h)")],
     "mask the store"),
    # 6.2 chunked scan
    ("check_chunked_scan", "chunked_scan_kernel", [("h = a_prefix * carry[None, :] + b_prefix", "h = b_prefix")],
     "carry is dropped"),
    ("check_chunked_scan", "chunked_scan_kernel", [("h = a_prefix * carry[None, :] + b_prefix", "h = carry[None, :] + b_prefix")],
     "carry must be scaled"),
    ("check_chunked_scan", "chunked_scan_kernel", [("mask=mask, other=1.0)", "mask=mask, other=0.0)")], "identity step"),
    # 6.3 causal depthwise conv
    ("check_causal_conv", "causal_conv_kernel", [("w_ptr + offs_c * K + j,", "w_ptr + offs_c * K + (K - 1 - j),")],
     "taps are flipped"),
    ("check_causal_conv", "causal_conv_kernel",
     [("    acc += tl.load(bias_ptr + offs_c, mask=c_ok, other=0.0)[None, :]\n", "")], "bias is missing"),
    ("check_causal_conv", "causal_conv_kernel", [("ok = (src[:, None] >= 0) & (src[:, None] < T)", "ok = (src[:, None] < T)")],
     "before t = 0"),
]

WRONG_COMBINE = '''

@triton.jit
def wrong_combine(a_l, b_l, a_r, b_r):
    return a_l * a_r, a_l * b_r + b_l
'''


@pytest.mark.parametrize(
    "checker_name, kernel_name, edits, hint", MISTAKES,
    ids=[f"{m[0][6:]}-{i}-{m[3].split()[0]}" for i, m in enumerate(MISTAKES)],
)
def test_mistake_is_rejected_with_its_hint(checker_name, kernel_name, edits, hint, tmp_path, capsys, monkeypatch) -> None:
    if "wrong_combine" in str(edits):
        monkeypatch.setitem(globals(), "SOURCE", SOURCE + WRONG_COMBINE)
    kernel = mutant(tmp_path, kernel_name, *edits)
    ok, out = _run(_checker(checker_name), kernel, capsys)
    assert ok is False and out.startswith("✗"), out
    assert hint in out, out


def test_unsolved_and_broken_kernels_print_one_line(tmp_path, capsys) -> None:
    """The student edition's empty body, a NotImplementedError, a Triton error, a plain function."""
    body = inspect.getsource(S.add_kernel.fn).split("\n", 2)[2]
    empty = mutant(tmp_path, "add_kernel", (body, "    pass\n"))
    ok, out = _run(ch02.check_add, empty, capsys)
    assert not ok and "not implemented yet" in out, out
    raising = mutant(tmp_path, "add_kernel", (body, "    raise NotImplementedError\n"))
    ok, out = _run(ch02.check_add, raising, capsys)
    assert not ok and "not implemented yet" in out, out
    broken = mutant(tmp_path, "add_kernel", ("tl.arange(0, BLOCK)", "tl.arange(0, BLOCK).no_such_method()"))
    ok, out = _run(ch02.check_add, broken, capsys)
    assert not ok and "your kernel raised" in out, out
    ok, out = _run(ch02.check_flash_forward, lambda *a: None, capsys)
    assert not ok and "@triton.jit" in out, out


def test_summarize_exception_names_the_cause() -> None:
    try:
        try:
            raise KeyError("inner problem")
        except KeyError as inner:
            raise RuntimeError("wrapper\nwith lines") from inner
    except RuntimeError as err:
        line = summarize_exception(err)
    assert line.startswith("your kernel raised KeyError") and "\n" not in line


# --------------------------------------------------------------------------------------------
# Specs against independent references
# --------------------------------------------------------------------------------------------


def test_ds_spec_is_the_gradient_of_the_scores() -> None:
    gen = torch.Generator().manual_seed(0)
    q, k, v, do = (torch.randn(2, 9, 4, generator=gen, dtype=torch.float64) for _ in range(4))
    scale = 0.5
    s = (scale * q @ k.transpose(-1, -2)).requires_grad_()
    causal = torch.ones(9, 9, dtype=torch.bool).tril()
    (torch.softmax(s.masked_fill(~causal, float("-inf")), -1) @ v).backward(do)
    got = ch02.flash_ds_spec(q.numpy(), k.numpy(), v.numpy(), do.numpy(), scale)
    np.testing.assert_allclose(got, s.grad.numpy(), rtol=1e-10, atol=1e-12)
    lse, delta = ch02.flash_bwd_stats(q.numpy(), k.numpy(), v.numpy(), do.numpy(), scale)
    np.testing.assert_allclose(lse, torch.logsumexp(s.detach().masked_fill(~causal, float("-inf")), -1).numpy(), rtol=1e-12)
    p = torch.softmax(s.detach().masked_fill(~causal, float("-inf")), -1)
    np.testing.assert_allclose(delta, (p * (do @ v.transpose(-1, -2))).sum(-1).numpy(), rtol=1e-10)


def test_flash_specs_agree_with_the_package() -> None:
    from linattn_edu.reference import attention

    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((2, 37, 16)) for _ in range(3))
    scale = 1 / math.sqrt(16)
    spec = ch02.flash_forward_spec(q, k, v, scale)
    np.testing.assert_allclose(ch02.flash_forward_blocks(q, k, v, scale), spec, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(spec, attention.softmax_attention(q[None], k[None], v[None], causal=True)[0], rtol=1e-10, atol=1e-12)
    assert not np.allclose(ch02.flash_forward_blocks(q, k, v, scale, rescale_l=False), spec)


def test_linear_attention_specs() -> None:
    gen = torch.Generator().manual_seed(3)
    q, k = (torch.randn(2, 37, 16, generator=gen, dtype=torch.float64) for _ in range(2))
    v, do = (torch.randn(2, 37, 8, generator=gen, dtype=torch.float64) for _ in range(2))
    spec = ch04.linear_attention_spec(q.numpy(), k.numpy(), v.numpy())
    np.testing.assert_allclose(ch04.linear_attention_chunks(q.numpy(), k.numpy(), v.numpy()), spec, rtol=1e-10, atol=1e-12)
    loop = np.stack([np.stack([sum((q[h, i] @ k[h, j]).item() * v[h, j].numpy() for j in range(i + 1))
                               for i in range(37)]) for h in range(2)])
    np.testing.assert_allclose(spec, loop, rtol=1e-10, atol=1e-12)
    k.requires_grad_(True)
    v.requires_grad_(True)
    causal = torch.ones(37, 37, dtype=torch.bool).tril()
    ((q @ k.transpose(-1, -2)).masked_fill(~causal, 0.0) @ v).backward(do)
    dk, dv = ch04.linear_attention_backward_spec(q.numpy(), k.detach().numpy(), v.detach().numpy(), do.numpy())
    np.testing.assert_allclose(dk, k.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dv, v.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_scan_and_conv_specs_agree_with_the_package() -> None:
    from linattn_edu import reference as ref

    rng = np.random.default_rng(2)
    a, b = rng.uniform(0.5, 1, (2, 21, 5)), rng.standard_normal((2, 21, 5))
    np.testing.assert_allclose(ch06.scan_spec(a, b), ref.linear_scan(a, b)[0], rtol=1e-12)
    x, w, bias = rng.standard_normal((2, 11, 5)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    np.testing.assert_allclose(ch06.causal_conv_spec(x, w, bias), ref.causal_conv1d(x, w, bias), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Drawings
# --------------------------------------------------------------------------------------------


def test_drawings_record_the_reference_and_a_readers_kernel(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for chapter, checker, _ in PUZZLES:
        fig = getattr(CHECKERS[f"ch{chapter:02d}"], checker.replace("check_", "draw_"))()
        assert fig.axes, checker
        plt.close(fig)
    # a reader's kernel that skips no tiles: its drawing shows K rows past the diagonal loaded
    no_skip = mutant(tmp_path, "flash_fwd_kernel", ("range(0, (pid_m + 1) * BLOCK_M, BLOCK_N)", "range(0, T, BLOCK_N)"))
    case = ch02._flash_case((1, 40), torch.device("cpu"))
    from linattn_edu.puzzles._common import record

    trace_ref = record(S.flash_fwd_kernel, case.launch, case.buffers())
    trace_bad = record(no_skip, case.launch, case.buffers())
    assert max(trace_ref.rows_loaded("k", (0, 0, 0))) == 15
    assert max(trace_bad.rows_loaded("k", (0, 0, 0))) == 39
    assert trace_ref.stores["o"][(2, 0, 0)] == {(0, t, d) for t in range(32, 40) for d in range(16)}
    plt.close(ch02.draw_flash_forward(no_skip))


def test_drawing_a_broken_kernel_prints_one_line_and_draws_the_reference(tmp_path, capsys) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    body = inspect.getsource(S.add_kernel.fn).split("\n", 2)[2]
    raising = mutant(tmp_path, "add_kernel", (body, "    raise NotImplementedError\n"))
    fig = ch02.draw_add(raising)
    out = capsys.readouterr().out
    assert out.startswith("✗ could not record your kernel") and "not implemented yet" in out and "Traceback" not in out
    assert "reference solution" in fig._suptitle.get_text()
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# The book's puzzle cells
# --------------------------------------------------------------------------------------------

NOTEBOOKS = {2: "02_triton_flash_attention", 4: "04_linear_attention", 6: "06_griffin_hawk"}
_SOLUTION_BLOCK = re.compile(r"^( *)# BEGIN SOLUTION\n(.*?)^\1# END SOLUTION$", re.S | re.M)


def _body(kernel_name: str) -> str:
    """The statements of a reference solution, as the book's cells spell them (``my_`` names)."""
    lines = inspect.getsource(getattr(S, kernel_name).fn).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("    ") and not line.startswith("     ")
                 and i > 0 and lines[i - 1].rstrip().endswith(":"))
    return re.sub(r"\bscan_combine\b", "my_scan_combine", "\n".join(lines[start:]))


@pytest.mark.parametrize("chapter", sorted(NOTEBOOKS))
def test_notebook_puzzles_use_the_proved_solutions(chapter: int) -> None:
    """Each puzzle's exercise cell holds the tested solution between the markers; a checker cell follows."""
    import nbformat

    nb = nbformat.read(Path(__file__).resolve().parents[1] / "book" / f"{NOTEBOOKS[chapter]}.ipynb", as_version=4)
    cells = {c.get("id"): c for c in nb.cells}
    expected = [(checker, SOLUTIONS[checker]) for ch, checker, _ in PUZZLES if ch == chapter]
    for checker, kernel_name in expected:
        short = checker.removeprefix("check_").replace("_", "-")
        exercise, check_cell = cells[f"puzzle-{short}-exercise"], cells[f"puzzle-{short}-checker"]
        assert {"exercise", "hide-input"} <= set(exercise.metadata.get("tags", []))
        assert "checker" in check_cell.metadata.get("tags", [])
        assert f"{checker}(my_{kernel_name})" in check_cell.source
        blocks = [m.group(2).rstrip("\n") for m in _SOLUTION_BLOCK.finditer(exercise.source)]
        assert f"def my_{kernel_name}(" in exercise.source
        assert _body(kernel_name) in blocks, f"{checker}: the book's solution drifted from linattn_edu.puzzles._solutions"
        if kernel_name == "scan_tile_kernel":
            assert _body("scan_combine") in blocks


def test_trace_by_step_shows_the_backward_walking_from_the_last_chunk() -> None:
    from linattn_edu.puzzles._common import record

    case = ch04._bwd_case((1, 40), torch.device("cpu"))
    steps = record(S.linear_attn_bwd_kernel, case.launch, case.buffers()).by_step()
    assert steps.programs() == [(0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 0, 2)]
    assert steps.rows_loaded("q", (0, 0, 0, 0)) == set(range(32, 40))
    assert steps.rows_loaded("q", (0, 0, 0, 2)) == set(range(0, 16))
    assert {idx[1] for idx in steps.stores["dv"][(0, 0, 0, 1)]} == set(range(16, 32))


def test_a_compiled_kernel_is_drawn_by_reinterpreting_it(capsys) -> None:
    """On a GPU the reader's kernel is a compiled JITFunction: drawings re-run its Python under the interpreter."""
    from triton.runtime.jit import JITFunction

    compiled = JITFunction(S.flash_fwd_kernel.fn)
    assert ch02._flash_skips_tiles(compiled) is None
    if not torch.cuda.is_available():
        ok, out = _run(ch02.check_add, JITFunction(S.add_kernel.fn), capsys)
        assert not ok and "compiled for a GPU but there is none" in out
