"""Chapter 2's first kernels, ``vector_add`` and ``row_softmax``, against PyTorch and NumPy.

Without a CUDA GPU the suite runs with ``TRITON_INTERPRET=1`` (set by ``tests/conftest.py``
before anything imports Triton), so on CPU tensors the *Triton kernels themselves* run, in the
interpreter; on a GPU (the ``device`` fixture) they are compiled. Every test that checks values
asks for that backend explicitly or spies on the launches, so a silent fallback to PyTorch
cannot make a test pass.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from linattn_edu.checks import check, tolerance
from linattn_edu.kernels import _common, basics
from linattn_edu.reference import softmax as np_softmax

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.fixture
def backend(device: torch.device) -> str:
    """The Triton backend that must run on ``device``: compiled on CUDA, interpreted on the CPU."""
    expected = "triton" if device.type == "cuda" else "interpreter"
    x = torch.zeros(4, device=device)
    for kernel in (basics._vector_add_kernel, basics._row_softmax_kernel):
        assert _common.choose_backend(kernel, x) == expected, (
            "the kernels cannot run here: on a CPU, set TRITON_INTERPRET=1 before Triton is "
            "imported (tests/conftest.py does this)"
        )
    return expected


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> list:
    """Record every kernel launched (``kernel[grid]``) while the test runs."""
    seen: list = []
    cls = type(basics._vector_add_kernel)
    original = cls.__getitem__

    def spy(self, grid):
        seen.append((self, grid))
        return original(self, grid)

    monkeypatch.setattr(cls, "__getitem__", spy)
    return seen


_DEVICE = {"device": torch.device("cpu")}


@pytest.fixture(autouse=True)
def _tensors_on(device: torch.device):
    """Make :func:`_randn` create tensors on the test device."""
    _DEVICE["device"] = device
    yield
    _DEVICE["device"] = torch.device("cpu")


def _randn(*shape: int, dtype: torch.dtype = torch.float32, seed: int = 0, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * scale
    return x.to(device=_DEVICE["device"], dtype=dtype)


# --------------------------------------------------------------------------------------------
# vector_add
# --------------------------------------------------------------------------------------------


def test_backend_on_cpu_is_the_interpreter(backend: str, device: torch.device) -> None:
    if device.type == "cpu":
        assert backend == "interpreter"
        assert _common.is_interpreted(basics._vector_add_kernel)


@pytest.mark.parametrize("dtype", DTYPES + [torch.float64])
@pytest.mark.parametrize("n, block_size", [(1, 16), (7, 16), (1000, 128), (4097, 1024), (33, 32)])
def test_vector_add_matches_torch(
    dtype: torch.dtype, n: int, block_size: int, backend: str, launches: list
) -> None:
    x, y = _randn(n, dtype=dtype, seed=1), _randn(n, dtype=dtype, seed=2)
    out = basics.vector_add(x, y, block_size=block_size, backend=backend)
    assert [grid for _, grid in launches] == [(basics.cdiv(n, block_size),)]
    assert out.dtype == dtype and out.shape == x.shape
    atol, rtol = tolerance(dtype)
    check(out, x.double() + y.double(), atol=atol, rtol=rtol, quiet=True)
    # One correctly rounded addition per element: bit-identical to PyTorch's.
    assert torch.equal(out, x + y)


def test_vector_add_keeps_shape_and_handles_strided_input(backend: str, launches: list) -> None:
    x = _randn(6, 35, 3, seed=3).transpose(0, 1)  # not contiguous
    y = _randn(35, 6, 3, seed=4)
    out = basics.vector_add(x, y, block_size=64)
    assert len(launches) == 1
    assert out.shape == (35, 6, 3)
    assert torch.equal(out, x + y)


def test_vector_add_empty_and_torch_backend(device: torch.device) -> None:
    e = torch.empty(0, 5, device=device)
    assert basics.vector_add(e, e).shape == (0, 5)
    x, y = _randn(50, seed=5), _randn(50, seed=6)
    assert torch.equal(basics.vector_add(x, y, backend="torch"), x + y)


def test_vector_add_kernel_mask_protects_memory_past_the_end(device: torch.device) -> None:
    """Launch the raw kernel on views of guarded buffers: nothing past n may be read or written."""
    n, block = 37, 16
    x_buf = torch.full((n + block,), float("nan"), device=device)
    y_buf = torch.full((n + block,), float("nan"), device=device)
    out_buf = torch.full((n + block,), -7.0, device=device)
    x_buf[:n], y_buf[:n] = _randn(n, seed=7), _randn(n, seed=8)
    grid = (basics.cdiv(n, block),)
    basics._vector_add_kernel[grid](x_buf[:n], y_buf[:n], out_buf[:n], n, BLOCK_SIZE=block)
    assert torch.equal(out_buf[:n], x_buf[:n] + y_buf[:n])
    assert torch.all(out_buf[n:] == -7.0), "the kernel wrote past the end: is the store masked?"


def test_vector_add_bf16(backend: str, launches: list) -> None:
    """bf16 runs in the kernel (in float32 under the interpreter, which has no bf16)."""
    x, y = _randn(300, dtype=torch.bfloat16, seed=9), _randn(300, dtype=torch.bfloat16, seed=10)
    out = basics.vector_add(x, y, block_size=128, backend=backend)
    assert out.dtype == torch.bfloat16 and len(launches) == 1
    assert torch.equal(out, x + y)


def test_vector_add_rejects_bad_input(device: torch.device) -> None:
    x = torch.zeros(8, device=device)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        basics.vector_add([1.0] * 8, x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="y must be a floating-point"):
        basics.vector_add(x, torch.zeros(8, dtype=torch.int32, device=device))
    with pytest.raises(ValueError, match="y must have x's shape"):
        basics.vector_add(x, torch.zeros(9, device=device))
    with pytest.raises(ValueError, match="y must have x's dtype"):
        basics.vector_add(x, torch.zeros(8, dtype=torch.float16, device=device))
    if device.type == "cuda":
        with pytest.raises(ValueError, match="y must be on x's device"):
            basics.vector_add(x, torch.zeros(8))
    for bad in (0, 8, 100, 2 * basics.MAX_ADD_BLOCK, 2**17, 64.0, True):
        with pytest.raises(ValueError, match="block_size"):
            basics.vector_add(x, x, block_size=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backend"):
        basics.vector_add(x, x, backend="cuda")
    if device.type == "cpu":
        with pytest.raises(ValueError, match="backend='triton' cannot run cpu tensors"):
            basics.vector_add(x, x, backend="triton")


# --------------------------------------------------------------------------------------------
# row_softmax
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (5, 100), (2, 1000), (2, 1025)])
def test_row_softmax_matches_reference(
    dtype: torch.dtype, shape: tuple, backend: str, launches: list
) -> None:
    x = _randn(*shape, dtype=dtype, seed=11, scale=3.0)
    out = basics.row_softmax(x, backend=backend)
    assert [grid for _, grid in launches] == [(shape[0],)]
    assert out.dtype == dtype and out.shape == shape
    expected = np_softmax(x.double().cpu().numpy(), axis=-1)
    atol, rtol = tolerance(dtype)
    check(out, expected, atol=atol, rtol=rtol, quiet=True)
    check(out.double().sum(-1), np.ones(shape[0]), atol=atol * 4, rtol=0, quiet=True)
    check(out, torch.softmax(x.float(), -1).to(dtype).double(), atol=atol, rtol=rtol, quiet=True)


def test_row_softmax_is_numerically_stable(backend: str) -> None:
    # exp(1e4) overflows float32: only a kernel that subtracts the row max gets this right.
    x = _randn(4, 50, seed=12, scale=2.0) * 1e4 + 5e3
    out = basics.row_softmax(x, backend=backend)
    assert torch.isfinite(out).all()
    check(out, np_softmax(x.double().cpu().numpy(), axis=-1), quiet=True)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_row_softmax_masked_entries_and_empty_rows(backend: str) -> None:
    x = _randn(3, 20, seed=13)
    x[0, 5:] = float("-inf")  # a padded / masked row: only the first 5 keys count
    x[2, :] = float("-inf")  # nothing visible: nan, like torch.softmax
    out = basics.row_softmax(x, backend=backend)
    assert torch.all(out[0, 5:] == 0)
    check(out[:2], torch.softmax(x[:2].double(), -1), quiet=True)
    assert torch.isnan(out[2]).all() and torch.isnan(torch.softmax(x[2:], -1)).all()


def test_row_softmax_strided_rows_and_columns(backend: str, launches: list) -> None:
    big = _randn(6, 64, seed=14)
    rows = big[:, :37]  # row stride 64 != 37 columns: the kernel must use the stride
    check(basics.row_softmax(rows), torch.softmax(rows.double(), -1), quiet=True)
    cols = _randn(37, 6, seed=15).t()  # column stride != 1: made contiguous first
    check(basics.row_softmax(cols), torch.softmax(cols.double(), -1), quiet=True)
    assert len(launches) == 2


def test_row_softmax_kernel_leaves_padding_columns_alone(device: torch.device) -> None:
    n_rows, n_cols, stride = 3, 10, 16
    x = _randn(n_rows, stride, seed=16)
    out = torch.full((n_rows, stride), -7.0, device=device)
    basics._row_softmax_kernel[(n_rows,)](x, out, n_cols, stride, stride, BLOCK_N=16)
    check(out[:, :n_cols], torch.softmax(x[:, :n_cols].double(), -1), quiet=True)
    assert torch.all(out[:, n_cols:] == -7.0), "the kernel wrote padding columns: is the store masked?"


def test_row_softmax_torch_backend_and_empty(device: torch.device) -> None:
    x = _randn(4, 9, dtype=torch.float16, seed=17)
    out = basics.row_softmax(x, backend="torch")
    assert out.dtype == torch.float16
    check(out, torch.softmax(x.double(), -1), quiet=True)
    assert basics.row_softmax(torch.empty(0, 9, device=device)).shape == (0, 9)


def test_row_softmax_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        basics.row_softmax(np.zeros((2, 3)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"x must have 2 dims \(M, N\)"):
        basics.row_softmax(torch.zeros(2, 3, 4))
    with pytest.raises(TypeError, match="float64"):
        basics.row_softmax(torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating-point"):
        basics.row_softmax(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="columns"):
        basics.row_softmax(torch.zeros(2, 0))
    with pytest.raises(ValueError, match="columns"):
        basics.row_softmax(torch.zeros(1, basics.MAX_SOFTMAX_COLS + 1))


def test_next_power_of_2_and_cdiv() -> None:
    assert [basics.next_power_of_2(n) for n in (0, 1, 2, 3, 16, 17, 1000)] == [1, 1, 2, 4, 16, 32, 1024]
    assert [basics.cdiv(n, 16) for n in (1, 16, 17, 32, 33)] == [1, 1, 2, 2, 3]
