"""Checkers for Chapter 3's exercises (ALiBi slopes, an encoder bias, the official form's offset).

Each ``check_*`` function runs the reader's NumPy function on several cases, prints one line —
``✓ ...`` with the max error, or ``✗ ...`` saying which case failed, by how much, and a hint —
and returns ``True`` or ``False``. Wrong answers never raise, so a notebook with unsolved
exercises still runs top to bottom; an exception raised by the reader's code is reported the
same way.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..reference import alibi_bias, alibi_bias_official, alibi_slopes
from ._common import report as _report, failure as _failure, as_array as _as_array

__all__ = ["check_alibi_slopes", "check_symmetric_alibi_bias", "check_official_row_offset"]

_ATOL = 1e-12  # everything here is exact float64 arithmetic on powers of two and small integers


def _compare(got: Any, expected: np.ndarray) -> tuple[str | None, float]:
    """``(problem or None, max |err|)`` of ``got`` against ``expected``."""
    got = _as_array(got)
    if got.shape != expected.shape:
        return f"shape {got.shape}, expected {expected.shape}", float("inf")
    if not np.all(np.isfinite(got)):
        return "the result contains inf or nan", float("inf")
    err = float(np.max(np.abs(got - expected))) if got.size else 0.0
    return (None if err <= _ATOL else f"max |err| = {err:.3g}"), err


# --------------------------------------------------------------------------------------------
# Exercise 1: the slopes for any number of heads
# --------------------------------------------------------------------------------------------

_SLOPE_CASES = list(range(1, 33)) + [40, 48, 64, 80, 96, 100]


def check_alibi_slopes(fn: Callable[[int], Any], *, quiet: bool = False) -> bool:
    """Check ``fn(n_heads) -> (n_heads,)`` slopes against the official ALiBi rule.

    Cases: every ``n`` from 1 to 32 and a few larger ones (40, 48, 64, 80, 96, 100), powers of
    two or not. Hints recognize the usual mistakes: the power-of-two formula used for every
    ``n``, the extra slopes sorted (the official list is not monotone), the wrong half of the
    ``2c`` rule.
    """
    name = "alibi_slopes"
    worst = 0.0
    for n in _SLOPE_CASES:
        expected = alibi_slopes(n)
        try:
            got = fn(n)
        except Exception as err:  # noqa: BLE001 - report whatever the reader's code raised
            return _failure(name, err, quiet)
        problem, err = _compare(got, expected)
        if problem is not None:
            return _report(False, name, f"n_heads={n}: {problem}. Hint: {_slopes_hint(n, _as_array(got))}", quiet)
        worst = max(worst, err)
    return _report(True, name, f"{len(_SLOPE_CASES)} head counts (1..32, 40, 48, 64, 80, 96, 100), "
                   f"max |err| = {worst:.3g}", quiet)


def _slopes_hint(n: int, got: np.ndarray) -> str:
    power_rule = np.exp2(-8.0 * np.arange(1, n + 1) / n)
    expected = alibi_slopes(n)
    if n & (n - 1) == 0:
        return "for a power of two, m_h = 2^(-8h/n) with h = 1..n (h starts at 1, not 0)"
    if got.shape == expected.shape and np.allclose(got, power_rule):
        return ("2^(-8h/n) is the rule for powers of two only; otherwise take the c = 2^floor(log2 n) "
                "slopes of c heads, then slopes(2c)[0::2][:n - c]")
    if got.shape == expected.shape and np.allclose(np.sort(got), np.sort(expected)):
        return ("right values, wrong order: the official list is the c slopes of c heads *followed by* the "
                "extra ones, not sorted (it is not monotone)")
    c = 1 << (n.bit_length() - 1)
    odd = np.exp2(-8.0 * np.arange(1, 2 * c + 1) / (2 * c))[1::2][: n - c]
    if got.shape == expected.shape and np.allclose(got[c:], odd):
        return "the extra slopes are slopes(2c)[0::2] (the 1st, 3rd, ... of the 2c rule), not [1::2]"
    return f"with c = {c}: first alibi_slopes({c}), then the first {n - c} of slopes({2 * c})[0::2]"


# --------------------------------------------------------------------------------------------
# Exercise 2: a symmetric (encoder) bias
# --------------------------------------------------------------------------------------------

_SYM_CASES = [(1, 1), (1, 5), (4, 7), (8, 16), (12, 10), (16, 3)]


def _symmetric(n_heads: int, seq_len: int) -> np.ndarray:
    pos = np.arange(seq_len)
    return -alibi_slopes(n_heads)[:, None, None] * np.abs(pos[:, None] - pos[None, :])[None]


def check_symmetric_alibi_bias(fn: Callable[[int, int], Any], *, quiet: bool = False) -> bool:
    """Check ``fn(n_heads, seq_len) -> (H, T, T)`` bias ``-m_h |i - j|`` (no mask, for encoders).

    The slopes are the official ones (:func:`linattn_edu.reference.alibi_slopes`). Hints recognize
    the causal formula ``-m_h (i - j)`` (which rewards future keys), a flipped sign, and
    transposed or head-less shapes.
    """
    name = "symmetric_alibi_bias"
    worst = 0.0
    for n_heads, seq_len in _SYM_CASES:
        expected = _symmetric(n_heads, seq_len)
        try:
            got = fn(n_heads, seq_len)
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        problem, err = _compare(got, expected)
        if problem is not None:
            return _report(False, name, f"n_heads={n_heads}, seq_len={seq_len}: {problem}. "
                           f"Hint: {_symmetric_hint(n_heads, seq_len, _as_array(got))}", quiet)
        worst = max(worst, err)
    return _report(True, name, f"{len(_SYM_CASES)} shapes, symmetric in (i, j), max |err| = {worst:.3g}", quiet)


def _symmetric_hint(n_heads: int, seq_len: int, got: np.ndarray) -> str:
    expected = _symmetric(n_heads, seq_len)
    if got.shape != expected.shape:
        return "return one (T, T) matrix per head: shape (n_heads, seq_len, seq_len)"
    if np.allclose(got, alibi_bias(n_heads, seq_len)):
        return ("that is the causal bias -m (i - j): it is *positive* for j > i, so without a causal mask "
                "it rewards the future. Use the distance |i - j|")
    if np.allclose(got, -expected):
        return "a penalty lowers the score: the bias is -m_h |i - j| <= 0"
    if np.allclose(got, expected[::-1]):
        return "head h gets alibi_slopes(n_heads)[h]; your heads are in reverse order"
    return "bias[h, i, j] = -alibi_slopes(n_heads)[h] * |i - j|"


# --------------------------------------------------------------------------------------------
# Exercise 3: the per-row offset between the official form and the paper's
# --------------------------------------------------------------------------------------------

_OFFSET_CASES = [(1, 1, 1), (4, 6, 6), (8, 3, 10), (12, 1, 25), (8, 16, 16), (2, 5, 9)]


def check_official_row_offset(fn: Callable[[int, int, int], Any], *, quiet: bool = False) -> bool:
    """Check ``fn(n_heads, q_len, k_len) -> (H, Tq)`` offsets ``c`` with official = paper + c.

    ``alibi_bias_official(H, Tq, Tk) - alibi_bias(H, Tq, Tk)`` must equal ``c[:, :, None]`` for
    every key: a constant per (head, query row), which softmax ignores. Cases include decoding
    (``q_len < k_len``), where query row ``r`` sits at position ``k_len - q_len + r``.
    """
    name = "official_row_offset"
    worst = 0.0
    for n_heads, q_len, k_len in _OFFSET_CASES:
        diff = alibi_bias_official(n_heads, q_len, k_len) - alibi_bias(n_heads, q_len, k_len)
        expected = diff[:, :, 0]
        try:
            got = fn(n_heads, q_len, k_len)
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        problem, err = _compare(got, expected)
        if problem is not None:
            return _report(False, name, f"n_heads={n_heads}, q_len={q_len}, k_len={k_len}: {problem}. "
                           f"Hint: {_offset_hint(n_heads, q_len, k_len, _as_array(got))}", quiet)
        # The point of the exercise: the offset is the same for every key of the row.
        residual = float(np.max(np.abs(diff - _as_array(got)[:, :, None])))
        worst = max(worst, err, residual)
    return _report(True, name, f"{len(_OFFSET_CASES)} cases (decoding included): official - paper = c per row "
                   f"for every key, max |err| = {worst:.3g}", quiet)


def _offset_hint(n_heads: int, q_len: int, k_len: int, got: np.ndarray) -> str:
    slopes = alibi_slopes(n_heads)
    rows = np.arange(q_len)
    if got.shape != (n_heads, q_len):
        return "one number per head and query row: shape (n_heads, q_len)"
    if np.allclose(got, slopes[:, None] * rows[None, :]):
        return ("right for q_len == k_len only: when decoding, query row r sits at position "
                "k_len - q_len + r (queries are the last positions)")
    if np.allclose(got, -slopes[:, None] * (rows[None, :] + k_len - q_len)):
        return "sign: official - paper = m j - (-m (i - j))"
    return "expand m_h j - (-m_h (i - j)): the j cancels"
