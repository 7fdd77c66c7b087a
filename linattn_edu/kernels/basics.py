"""Two first Triton kernels: an elementwise vector add and a numerically stable row softmax.

They are the warm-up of Chapter 2 and show the whole pattern every kernel of the book follows:

1. a ``@jit`` kernel that handles one *block* of the problem per *program* (``tl.program_id``),
   built from ``tl.arange`` offsets, pointer arithmetic and a mask for the ragged tail;
2. a launcher that validates its inputs, picks a backend with
   :func:`~linattn_edu.kernels._common.choose_backend`, computes the grid and launches;
3. a PyTorch path with the same math, used where Triton cannot run (see
   :mod:`linattn_edu.runtime`).

Under the Triton interpreter (``TRITON_INTERPRET=1``, CPU tensors) bfloat16 does not exist:
the launchers upcast bf16 inputs to float32 for the kernel and cast the result back, which gives
the same values as a bf16 kernel that computes in float32.
"""

from __future__ import annotations

import torch

from ._common import check_int, choose_backend, jit, require_tensor, tl

__all__ = ["vector_add", "row_softmax", "MAX_ADD_BLOCK", "MAX_SOFTMAX_COLS", "next_power_of_2", "cdiv"]

#: Largest ``block_size`` of :func:`vector_add`. A block lives in registers: 16384 float64
#: elements of x and y over 16 warps are 64 registers per thread each; 65536 would need more
#: than a streaming multiprocessor's whole register file and spill (measured by
#: ``scripts/aot_compile.py``: 19 KB of spills per thread at 65536 float32 elements on 4 warps).
MAX_ADD_BLOCK = 16384

#: Longest row :func:`row_softmax` accepts: the whole row is one block held in registers.
MAX_SOFTMAX_COLS = 65536

_ADD_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_SOFTMAX_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def next_power_of_2(n: int) -> int:
    """Smallest power of two ``>= n`` (1 for ``n <= 1``); ``tl.arange`` needs power-of-two sizes."""
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def cdiv(a: int, b: int) -> int:
    """``ceil(a / b)`` for positive ints: the number of blocks of size ``b`` covering ``a``."""
    return -(-a // b)


def _interpreter_dtype(dtype: torch.dtype, backend: str) -> torch.dtype:
    """The dtype the kernel sees: float32 instead of bfloat16 under the interpreter."""
    return torch.float32 if backend == "interpreter" and dtype == torch.bfloat16 else dtype


# --------------------------------------------------------------------------------------------
# vector add
# --------------------------------------------------------------------------------------------


@jit
def _vector_add_kernel(x_ptr, y_ptr, out_ptr, n_elements, BLOCK_SIZE: tl.constexpr):
    """``out[i] = x[i] + y[i]`` for the ``BLOCK_SIZE`` elements of this program's block."""
    pid = tl.program_id(axis=0)  # which block this program instance handles
    # int64: with more than 2**31 elements, pid * BLOCK_SIZE in int32 would wrap negative,
    # pass the mask and touch memory before the array.
    offsets = pid.to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)  # element indices of the block
    mask = offsets < n_elements  # the last block may stick out past the end
    x = tl.load(x_ptr + offsets, mask=mask)
    y = tl.load(y_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, x + y, mask=mask)


def _add_num_warps(block_size: int) -> int:
    """4 warps up to 2048 elements, 8 at 4096, 16 from 8192: at most 32 elements per thread and input."""
    return 16 if block_size >= 8192 else 8 if block_size >= 4096 else 4


def vector_add(
    x: torch.Tensor, y: torch.Tensor, *, block_size: int = 1024, backend: str | None = None
) -> torch.Tensor:
    """Elementwise ``x + y`` with a Triton kernel, one program per ``block_size`` elements.

    Args:
        x: a floating tensor of any shape (float16, bfloat16, float32 or float64).
        y: same shape, dtype and device as ``x``.
        block_size: elements per program, a power of two between 16 and ``MAX_ADD_BLOCK``
            (16384; 4 warps up to 2048 elements, 8 at 4096, 16 from 8192). The grid has
            ``ceil(x.numel() / block_size)`` programs; the last one is masked.
        backend: ``None`` (decide from the device), ``"triton"``, ``"interpreter"`` or
            ``"torch"``; see :func:`linattn_edu.kernels._common.choose_backend`.

    Returns:
        A new tensor of ``x``'s shape, dtype and device.

    Raises:
        TypeError: ``x`` or ``y`` is not a floating tensor of a supported dtype.
        ValueError: mismatched shapes, dtypes or devices, or a bad ``block_size``/``backend``.
    """
    require_tensor(x, "x")
    require_tensor(y, "y")
    if x.dtype not in _ADD_DTYPES:
        raise TypeError(f"x must be float16, bfloat16, float32 or float64, got {x.dtype}")
    if y.shape != x.shape:
        raise ValueError(f"y must have x's shape {tuple(x.shape)}, got {tuple(y.shape)}")
    if y.dtype != x.dtype:
        raise ValueError(f"y must have x's dtype {x.dtype}, got {y.dtype}")
    if y.device != x.device:
        raise ValueError(f"y must be on x's device {x.device}, got {y.device}")
    expected = f"block_size must be a power of two in [16, {MAX_ADD_BLOCK}], got {block_size!r}"
    try:
        block_size = check_int(block_size, "block_size", minimum=16, maximum=MAX_ADD_BLOCK)  # NumPy ints too
    except ValueError as err:  # ArgumentTypeError for a non-int, ValueError out of range
        raise type(err)(expected) from None
    if block_size & (block_size - 1):
        raise ValueError(expected)

    chosen = choose_backend(_vector_add_kernel, x, backend)
    if chosen == "torch" or x.numel() == 0:
        return x + y

    kernel_dtype = _interpreter_dtype(x.dtype, chosen)
    xf = x.reshape(-1).to(kernel_dtype).contiguous()  # flat views; copies only when needed
    yf = y.reshape(-1).to(kernel_dtype).contiguous()
    out = torch.empty_like(xf)
    n = xf.numel()
    grid = (cdiv(n, block_size),)
    _vector_add_kernel[grid](xf, yf, out, n, BLOCK_SIZE=block_size, num_warps=_add_num_warps(block_size))
    return out.to(x.dtype).reshape(x.shape)


# --------------------------------------------------------------------------------------------
# row softmax
# --------------------------------------------------------------------------------------------


@jit
def _row_softmax_kernel(
    x_ptr, out_ptr, n_cols, x_row_stride, out_row_stride, BLOCK_N: tl.constexpr
):
    """Softmax of one row (this program's ``tl.program_id(0)``), computed in float32."""
    row = tl.program_id(axis=0).to(tl.int64)  # int64: row * row_stride may pass 2**31
    cols = tl.arange(0, BLOCK_N)  # BLOCK_N >= n_cols: the whole row in one block
    mask = cols < n_cols
    # Padding columns load -inf: they neither win the max nor add to the sum (exp(-inf) = 0).
    x = tl.load(x_ptr + row * x_row_stride + cols, mask=mask, other=-float("inf"))
    x = x.to(tl.float32)
    x = x - tl.max(x, axis=0)  # every exponent <= 0: no overflow
    num = tl.exp(x)
    den = tl.sum(num, axis=0)
    y = num / den
    tl.store(out_ptr + row * out_row_stride + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


def _softmax_num_warps(block_n: int) -> int:
    """More warps for longer rows, as in Triton's fused-softmax tutorial (ignored by the interpreter).

    32 warps for the longest rows (65536): with 16 warps a float32 row is 128 values per thread
    and ptxas spills 804 B of registers; 32 warps halve that (``scripts/aot_compile.py``).
    """
    if block_n >= 65536:
        return 32
    if block_n >= 8192:
        return 16
    if block_n >= 2048:
        return 8
    return 4


def row_softmax(x: torch.Tensor, *, backend: str | None = None) -> torch.Tensor:
    """Softmax over the last axis of a 2-D tensor, one Triton program per row.

    Each program loads its whole row as one block of ``BLOCK_N = next_power_of_2(N)`` columns
    (padding masked to ``-inf``), subtracts the row maximum, exponentiates, normalizes, all in
    float32, and stores the result in ``x``'s dtype.

    Args:
        x: ``(M, N)`` float16, bfloat16 or float32 with ``1 <= N <= MAX_SOFTMAX_COLS``. Rows may
            be strided (e.g. ``big[:, :N]``); the columns are made contiguous if they are not.
        backend: ``None`` (decide from the device), ``"triton"``, ``"interpreter"`` or ``"torch"``.

    Returns:
        ``(M, N)`` tensor in ``x``'s dtype and device; each row sums to 1. A row that is
        entirely ``-inf`` gives ``nan``, as in :func:`torch.softmax`.

    Raises:
        TypeError: ``x`` is not a floating tensor of a supported dtype.
        ValueError: ``x`` is not 2-D, has no columns or too many, or a bad ``backend``.
    """
    require_tensor(x, "x", ndim=2, shape_doc="(M, N)")
    if x.dtype not in _SOFTMAX_DTYPES:
        raise TypeError(
            f"x must be float16, bfloat16 or float32 (the kernel computes in float32), got {x.dtype}"
        )
    n_rows, n_cols = x.shape
    if n_cols < 1 or n_cols > MAX_SOFTMAX_COLS:
        raise ValueError(
            f"x must have between 1 and {MAX_SOFTMAX_COLS} columns (one row is one block), "
            f"got shape {tuple(x.shape)}"
        )

    chosen = choose_backend(_row_softmax_kernel, x, backend)
    if chosen == "torch" or n_rows == 0:
        return torch.softmax(x.float(), dim=-1).to(x.dtype)

    kernel_dtype = _interpreter_dtype(x.dtype, chosen)
    xk = x.to(kernel_dtype)
    if xk.stride(1) != 1:
        xk = xk.contiguous()
    out = torch.empty((n_rows, n_cols), dtype=kernel_dtype, device=x.device)
    block_n = next_power_of_2(n_cols)
    _row_softmax_kernel[(n_rows,)](
        xk,
        out,
        n_cols,
        xk.stride(0),
        out.stride(0),
        BLOCK_N=block_n,
        num_warps=_softmax_num_warps(block_n),
    )
    return out.to(x.dtype)
