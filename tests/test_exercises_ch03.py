"""Chapter 3's exercise checkers: right solutions pass, typical mistakes fail with a useful hint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from linattn_edu.exercises import ch03

# --------------------------------------------------------------------------------------------
# Exercise 1: slopes
# --------------------------------------------------------------------------------------------


def slopes_right(n: int) -> np.ndarray:
    def power_of_two(k: int) -> np.ndarray:
        return 2.0 ** (-8.0 * np.arange(1, k + 1) / k)

    c = 2 ** math.floor(math.log2(n))
    if c == n:
        return power_of_two(n)
    return np.concatenate([power_of_two(c), power_of_two(2 * c)[0::2][: n - c]])


def slopes_power_rule_everywhere(n: int) -> np.ndarray:
    return 2.0 ** (-8.0 * np.arange(1, n + 1) / n)


def slopes_sorted(n: int) -> np.ndarray:
    return np.sort(slopes_right(n))[::-1]


def slopes_odd_half(n: int) -> np.ndarray:
    c = 2 ** math.floor(math.log2(n))
    base = 2.0 ** (-8.0 * np.arange(1, c + 1) / c)
    if c == n:
        return base
    return np.concatenate([base, (2.0 ** (-8.0 * np.arange(1, 2 * c + 1) / (2 * c)))[1::2][: n - c]])


def slopes_from_zero(n: int) -> np.ndarray:
    return 2.0 ** (-8.0 * np.arange(n) / n)


def test_slopes_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch03.check_alibi_slopes(slopes_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ alibi_slopes") and "max |err|" in out


def test_slopes_torch_tensor_accepted() -> None:
    assert ch03.check_alibi_slopes(lambda n: torch.from_numpy(slopes_right(n)), quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (slopes_power_rule_everywhere, "powers of two only"),
        (slopes_sorted, "not monotone"),
        (slopes_odd_half, "[0::2]"),
        (slopes_from_zero, "h starts at 1"),
    ],
)
def test_slopes_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch03.check_alibi_slopes(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ alibi_slopes") and hint in out and "max |err|" in out


def test_slopes_stub(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(n: int) -> np.ndarray:
        raise NotImplementedError

    assert ch03.check_alibi_slopes(stub) is False
    assert "not solved yet" in capsys.readouterr().out


def test_slopes_wrong_shape_and_crash(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch03.check_alibi_slopes(lambda n: slopes_right(n)[:-1]) is False
    assert "shape" in capsys.readouterr().out
    assert ch03.check_alibi_slopes(lambda n: 1 / 0) is False
    assert "ZeroDivisionError" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# Exercise 2: symmetric bias
# --------------------------------------------------------------------------------------------


def symmetric_right(n_heads: int, seq_len: int) -> np.ndarray:
    from linattn_edu.reference import alibi_slopes

    pos = np.arange(seq_len)
    return -alibi_slopes(n_heads)[:, None, None] * np.abs(pos[:, None] - pos[None, :])


def symmetric_causal_formula(n_heads: int, seq_len: int) -> np.ndarray:
    from linattn_edu.reference import alibi_bias

    return alibi_bias(n_heads, seq_len)


def symmetric_wrong_sign(n_heads: int, seq_len: int) -> np.ndarray:
    return -symmetric_right(n_heads, seq_len)


def symmetric_power_slopes(n_heads: int, seq_len: int) -> np.ndarray:
    pos = np.arange(seq_len)
    m = 2.0 ** (-8.0 * np.arange(1, n_heads + 1) / n_heads)
    return -m[:, None, None] * np.abs(pos[:, None] - pos[None, :])


def test_symmetric_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch03.check_symmetric_alibi_bias(symmetric_right) is True
    assert capsys.readouterr().out.startswith("✓ symmetric_alibi_bias")


@pytest.mark.parametrize(
    "fn, hint",
    [
        (symmetric_causal_formula, "rewards the future"),
        (symmetric_wrong_sign, "lowers the score"),
        (symmetric_power_slopes, "max |err|"),  # wrong slopes for 12 heads
        (lambda h, t: symmetric_right(h, t)[0], "one (T, T) matrix per head"),
    ],
)
def test_symmetric_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch03.check_symmetric_alibi_bias(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ symmetric_alibi_bias") and hint in out


# --------------------------------------------------------------------------------------------
# Exercise 3: the official form's per-row offset
# --------------------------------------------------------------------------------------------


def offset_right(n_heads: int, q_len: int, k_len: int) -> np.ndarray:
    from linattn_edu.reference import alibi_slopes

    pos_q = np.arange(q_len) + (k_len - q_len)
    return alibi_slopes(n_heads)[:, None] * pos_q[None, :]


def offset_no_decoding_shift(n_heads: int, q_len: int, k_len: int) -> np.ndarray:
    from linattn_edu.reference import alibi_slopes

    return alibi_slopes(n_heads)[:, None] * np.arange(q_len)[None, :]


def offset_wrong_sign(n_heads: int, q_len: int, k_len: int) -> np.ndarray:
    return -offset_right(n_heads, q_len, k_len)


def test_offset_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch03.check_official_row_offset(offset_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ official_row_offset") and "every key" in out


@pytest.mark.parametrize(
    "fn, hint",
    [
        (offset_no_decoding_shift, "k_len - q_len + r"),
        (offset_wrong_sign, "sign"),
        (lambda h, q, k: offset_right(h, q, k)[:, :, None] * np.ones(k), "shape (n_heads, q_len)"),
        (lambda h, q, k: offset_right(h, q, k) + 1e-6, "max |err|"),
    ],
)
def test_offset_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch03.check_official_row_offset(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ official_row_offset") and hint in out


def test_quiet_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch03.check_alibi_slopes(slopes_right, quiet=True) is True
    assert ch03.check_symmetric_alibi_bias(symmetric_causal_formula, quiet=True) is False
    assert capsys.readouterr().out == ""
