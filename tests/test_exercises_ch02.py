"""Chapter 2's exercise checkers: right solutions pass, typical mistakes fail with a useful message.

The Triton solutions are jitted here, after ``tests/conftest.py`` has set ``TRITON_INTERPRET=1``
(on a CPU), so they run in the interpreter exactly as in the notebook.
"""

from __future__ import annotations

import numpy as np
import pytest
import triton
import triton.language as tl

from linattn_edu.exercises import ch02

# --------------------------------------------------------------------------------------------
# Exercise 1: scale kernel
# --------------------------------------------------------------------------------------------


@triton.jit
def scale_right(x_ptr, out_ptr, alpha, n_elements, BLOCK_SIZE: tl.constexpr):
    offs = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offs < n_elements
    x = tl.load(x_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, alpha * x, mask=mask)


@triton.jit
def scale_unmasked(x_ptr, out_ptr, alpha, n_elements, BLOCK_SIZE: tl.constexpr):
    offs = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    x = tl.load(x_ptr + offs)
    tl.store(out_ptr + offs, alpha * x)


@triton.jit
def scale_first_block_only(x_ptr, out_ptr, alpha, n_elements, BLOCK_SIZE: tl.constexpr):
    offs = tl.arange(0, BLOCK_SIZE)  # forgot the program id
    mask = offs < n_elements
    tl.store(out_ptr + offs, alpha * tl.load(x_ptr + offs, mask=mask), mask=mask)


@triton.jit
def scale_stub(x_ptr, out_ptr, alpha, n_elements, BLOCK_SIZE: tl.constexpr):
    pid = tl.program_id(0)  # noqa: F841 - the notebook's unsolved stub


def test_scale_checker(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch02.check_scale_kernel(scale_right) is True
    assert "✓ scale_kernel" in capsys.readouterr().out
    assert ch02.check_scale_kernel(scale_unmasked) is False
    assert "masked" in capsys.readouterr().out
    assert ch02.check_scale_kernel(scale_first_block_only) is False
    assert "expected" in capsys.readouterr().out
    assert ch02.check_scale_kernel(scale_stub) is False
    assert "never written" in capsys.readouterr().out


def test_scale_checker_rejects_a_plain_function(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch02.check_scale_kernel(lambda *a: None) is False
    assert "triton.jit" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# Exercise 2: online softmax update
# --------------------------------------------------------------------------------------------


def online_right(m, l, x):
    m_new = max(m, float(np.max(x)))
    m_safe = 0.0 if m_new == -np.inf else m_new
    return m_new, l * np.exp(m - m_safe) + float(np.sum(np.exp(x - m_safe)))


def online_no_guard(m, l, x):
    m_new = max(m, float(np.max(x)))
    return m_new, l * np.exp(m - m_new) + float(np.sum(np.exp(x - m_new)))


def online_no_rescale(m, l, x):
    m_new = max(m, float(np.max(x)))
    m_safe = 0.0 if m_new == -np.inf else m_new
    return m_new, l + float(np.sum(np.exp(x - m_safe)))


def online_no_shift(m, l, x):
    with np.errstate(over="ignore"):
        return max(m, float(np.max(x))), l + float(np.sum(np.exp(x)))


def online_stub(m, l, x):
    raise NotImplementedError


def test_online_checker(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch02.check_online_softmax_update(online_right) is True
    assert "✓ online_softmax_update" in capsys.readouterr().out
    with np.errstate(invalid="ignore"):
        assert ch02.check_online_softmax_update(online_no_guard) is False
    assert "fully masked" in capsys.readouterr().out
    assert ch02.check_online_softmax_update(online_no_rescale) is False
    assert "after block" in capsys.readouterr().out
    assert ch02.check_online_softmax_update(online_no_shift) is False
    assert ch02.check_online_softmax_update(online_stub) is False
    assert "not solved yet" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# Exercise 3: key block range
# --------------------------------------------------------------------------------------------


def blocks_right(m, block_m, block_n, t_q, t_k, window):
    offset = t_k - t_q
    last_pos = min((m + 1) * block_m, t_q) - 1 + offset  # position of the last valid query
    end = last_pos // block_n + 1
    first = 0 if window is None else max(m * block_m + offset - window + 1, 0) // block_n
    return first, end


def blocks_ignore_window(m, block_m, block_n, t_q, t_k, window):
    return blocks_right(m, block_m, block_n, t_q, t_k, None)


def blocks_ignore_offset(m, block_m, block_n, t_q, t_k, window):
    return blocks_right(m, block_m, block_n, t_q, t_q, window)


def test_key_block_checker(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch02.check_key_block_range(blocks_right) is True
    assert "✓ key_block_range" in capsys.readouterr().out
    assert ch02.check_key_block_range(blocks_ignore_window) is False
    assert ch02.check_key_block_range(blocks_ignore_offset) is False
    assert "expected" in capsys.readouterr().out


def test_brute_force_key_blocks() -> None:
    # T = 64, blocks of 16: causal query block 2 sees key blocks 0..2; a window of 16 only 1..2.
    assert ch02.brute_force_key_blocks(2, 16, 16, 64, 64) == [0, 1, 2]
    assert ch02.brute_force_key_blocks(2, 16, 16, 64, 64, window=16) == [1, 2]
    # One query at the end of 64 keys (decoding): it sees every key block.
    assert ch02.brute_force_key_blocks(0, 16, 16, 1, 64) == [0, 1, 2, 3]


# --------------------------------------------------------------------------------------------
# Exercise 4: row log-sum-exp kernel
# --------------------------------------------------------------------------------------------


@triton.jit
def lse_right(x_ptr, out_ptr, n_cols, row_stride, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    x = tl.load(x_ptr + row * row_stride + cols, mask=cols < n_cols, other=-float("inf"))
    m = tl.max(x, axis=0)
    tl.store(out_ptr + row, m + tl.log(tl.sum(tl.exp(x - m), axis=0)))


@triton.jit
def lse_no_shift(x_ptr, out_ptr, n_cols, row_stride, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    x = tl.load(x_ptr + row * row_stride + cols, mask=cols < n_cols, other=-float("inf"))
    tl.store(out_ptr + row, tl.log(tl.sum(tl.exp(x), axis=0)))


@triton.jit
def lse_pad_zero(x_ptr, out_ptr, n_cols, row_stride, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    x = tl.load(x_ptr + row * row_stride + cols, mask=cols < n_cols, other=0.0)  # padding counts!
    m = tl.max(x, axis=0)
    tl.store(out_ptr + row, m + tl.log(tl.sum(tl.exp(x - m), axis=0)))


def test_lse_checker(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch02.check_row_logsumexp_kernel(lse_right) is True
    assert "✓ row_logsumexp_kernel" in capsys.readouterr().out
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        assert ch02.check_row_logsumexp_kernel(lse_no_shift) is False
        assert "subtract the row max" in capsys.readouterr().out
        assert ch02.check_row_logsumexp_kernel(lse_pad_zero) is False
    assert "expected" in capsys.readouterr().out


def test_quiet_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch02.check_online_softmax_update(online_right, quiet=True) is True
    assert capsys.readouterr().out == ""


@triton.jit
def lse_stub(x_ptr, out_ptr, n_cols, row_stride, BLOCK_N: tl.constexpr):
    row = tl.program_id(axis=0)  # noqa: F841 - the notebook's unsolved stub


def test_lse_checker_on_the_stub(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch02.check_row_logsumexp_kernel(lse_stub) is False
    assert "never written" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# Issue 14: the attention backward from the saved log-sum-exp
# ------------------------------------------------------------------------------------------------


def _backward_right(q, k, v, o, lse, do):
    t_q, d = q.shape
    s = q @ k.T / np.sqrt(d)
    s = np.where(np.tril(np.ones((t_q, k.shape[0]), dtype=bool), k=k.shape[0] - t_q), s, -np.inf)
    p = np.exp(s - lse[:, None])
    dp = do @ v.T
    ds = p * (dp - np.sum(do * o, axis=1, keepdims=True))
    return ds @ k / np.sqrt(d), ds.T @ q / np.sqrt(d), p.T @ do


def _backward_no_delta(q, k, v, o, lse, do):
    t_q, d = q.shape
    s = np.where(np.tril(np.ones((t_q, k.shape[0]), dtype=bool), k=k.shape[0] - t_q), q @ k.T / np.sqrt(d), -np.inf)
    p = np.exp(s - lse[:, None])
    ds = p * (do @ v.T)
    return ds @ k / np.sqrt(d), ds.T @ q / np.sqrt(d), p.T @ do


def _backward_mask_off_by_one(q, k, v, o, lse, do):
    t_q, d = q.shape
    s = np.where(np.tril(np.ones((t_q, k.shape[0]), dtype=bool)), q @ k.T / np.sqrt(d), -np.inf)  # ignores Tk - Tq
    p = np.exp(s - lse[:, None])
    ds = p * (do @ v.T - np.sum(do * o, axis=1, keepdims=True))
    return ds @ k / np.sqrt(d), ds.T @ q / np.sqrt(d), p.T @ do


def test_attention_backward_accepts_right_answer(capsys):
    assert ch02.check_attention_backward(_backward_right)
    assert capsys.readouterr().out.startswith("✓ attention_backward")


def test_attention_backward_rejects_mistakes(capsys):
    assert not ch02.check_attention_backward(_backward_no_delta)
    assert "delta = rowsum(dO * O)" in capsys.readouterr().out
    assert not ch02.check_attention_backward(lambda *a: tuple(g * np.sqrt(a[0].shape[1]) if i < 2 else g
                                                               for i, g in enumerate(_backward_right(*a))))
    assert "1/sqrt(D)" in capsys.readouterr().out
    assert not ch02.check_attention_backward(_backward_mask_off_by_one)
    assert "Tq=3, Tk=10" in capsys.readouterr().out
    assert not ch02.check_attention_backward(lambda *a: _backward_right(*a)[:2])
    assert "tuple (dq, dk, dv)" in capsys.readouterr().out


def test_attention_backward_stub_does_not_raise(capsys):
    def stub(*a):
        raise NotImplementedError

    assert not ch02.check_attention_backward(stub)
    assert "not solved yet" in capsys.readouterr().out


def test_attention_backward_reference_matches_the_kernel_math():
    """The oracle's lse re-creates P exactly: exp(s - lse) sums to 1 over the visible keys."""
    rng = np.random.default_rng(3)
    q, k, v, do = rng.standard_normal((4, 8)), rng.standard_normal((6, 8)), rng.standard_normal((6, 3)), rng.standard_normal((4, 3))
    o, lse, *_ = ch02.attention_backward_reference(q, k, v, do)
    s = np.where(np.tril(np.ones((4, 6), dtype=bool), k=2), q @ k.T / np.sqrt(8), -np.inf)
    np.testing.assert_allclose(np.exp(s - lse[:, None]).sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(s - lse[:, None]) @ v, o, rtol=1e-12)
