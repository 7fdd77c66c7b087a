"""The scan reference: sequential == associative, chunking, causality, the RG-LRU formula, resets,
log-space stability, the causal depthwise conv against torch, errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from linattn_edu.reference import (
    SCAN_METHODS,
    causal_conv1d,
    linear_scan,
    linear_scan_associative,
    linear_scan_sequential,
    rg_lru,
)

rng = np.random.default_rng(0)
TOL = dict(rtol=1e-10, atol=1e-10)
T_VALUES = [1, 2, 3, 7, 16, 33]


def loop_scan(a, b, h0):
    """The definition, one batch row, channel and step at a time, in Python floats."""
    bsz, t_len, ch = a.shape
    h = np.zeros((bsz, t_len, ch))
    for i in range(bsz):
        for c in range(ch):
            state = float(h0[i, c])
            for t in range(t_len):
                state = float(a[i, t, c]) * state + float(b[i, t, c])
                h[i, t, c] = state
    return h


def loop_rg_lru_official(x, r, i, p, *, c=8.0, h0=None, reset=None):
    """The RG-LRU one step at a time, written the way the official code does it.

    The official code stores ``p = -Λ``: ``log a_t = -c r_t softplus(p)``; at a reset ``a_t = 0``
    and the multiplier is 1. Naive ``1 - a_t**2`` (fine for moderate ``Λ``).
    """
    bsz, t_len, ch = x.shape
    h = np.zeros((bsz, ch)) if h0 is None else h0.copy()
    reset = np.zeros((bsz, t_len), dtype=bool) if reset is None else reset
    out = np.zeros_like(x)
    for t in range(t_len):
        a_t = np.exp(-c * r[:, t] * np.log1p(np.exp(p)))  # exp(-c r softplus(p)) = σ(-p)^(c r)
        mult = np.sqrt(1.0 - a_t**2)
        res = reset[:, t, None]
        a_t = np.where(res, 0.0, a_t)
        mult = np.where(res, 1.0, mult)
        h = a_t * h + mult * (i[:, t] * x[:, t])
        out[:, t] = h
    return out, h


def _rg_inputs(bsz=2, t_len=9, ch=3):
    x = rng.normal(size=(bsz, t_len, ch))
    r = rng.uniform(0, 1, size=(bsz, t_len, ch))
    i = rng.uniform(0, 1, size=(bsz, t_len, ch))
    lam = rng.normal(size=ch) * 2.0
    return x, r, i, lam


# ---------------------------------------------------------------------------------- linear scan


@pytest.mark.parametrize("t_len", T_VALUES)
@pytest.mark.parametrize("a_range", [(0.0, 1.0), (-1.5, 1.5)])
@pytest.mark.parametrize("with_h0", [False, True])
def test_sequential_equals_associative_equals_loop(t_len, a_range, with_h0):
    a = rng.uniform(*a_range, size=(2, t_len, 3))
    b = rng.normal(size=(2, t_len, 3))
    h0 = rng.normal(size=(2, 3)) if with_h0 else None
    h_seq, last_seq = linear_scan(a, b, h0, method="sequential")
    h_par, last_par = linear_scan(a, b, h0, method="associative")
    assert h_seq.shape == h_par.shape == (2, t_len, 3) and last_seq.shape == (2, 3)
    assert h_seq.dtype == h_par.dtype == np.float64
    want = loop_scan(a, b, np.zeros((2, 3)) if h0 is None else h0)
    np.testing.assert_allclose(h_seq, want, **TOL)
    np.testing.assert_allclose(h_par, want, **TOL)
    np.testing.assert_array_equal(last_seq, h_seq[:, -1])
    np.testing.assert_array_equal(last_par, h_par[:, -1])


def test_named_functions_and_default_method():
    a, b, h0 = rng.uniform(0, 1, size=(1, 5, 2)), rng.normal(size=(1, 5, 2)), rng.normal(size=(1, 2))
    np.testing.assert_array_equal(linear_scan(a, b, h0)[0], linear_scan_sequential(a, b, h0)[0])
    np.testing.assert_array_equal(linear_scan(a, b, h0, method="associative")[0], linear_scan_associative(a, b, h0)[0])
    assert SCAN_METHODS == ("sequential", "associative")


def test_scan_does_not_modify_its_inputs_and_accepts_torch():
    a, b, h0 = rng.uniform(0, 1, size=(2, 6, 2)), rng.normal(size=(2, 6, 2)), rng.normal(size=(2, 2))
    copies = a.copy(), b.copy(), h0.copy()
    for method in SCAN_METHODS:
        linear_scan(a, b, h0, method=method)
    for before, after in zip(copies, (a, b, h0)):
        np.testing.assert_array_equal(before, after)
    got, _ = linear_scan(torch.from_numpy(a).float(), torch.from_numpy(b).float(), method="associative")
    np.testing.assert_allclose(got, linear_scan(a.astype(np.float32), b.astype(np.float32))[0], **TOL)


def test_known_values():
    # a = 1: a running sum; b = 0: h0 times the running product of a.
    ones = np.ones((1, 4, 1))
    np.testing.assert_allclose(linear_scan(ones, ones, method="associative")[0].ravel(), [1, 2, 3, 4], **TOL)
    a = np.full((1, 4, 1), 0.5)
    h, last = linear_scan(a, np.zeros((1, 4, 1)), np.array([[8.0]]), method="associative")
    np.testing.assert_allclose(h.ravel(), [4, 2, 1, 0.5], **TOL)
    assert last.shape == (1, 1) and last[0, 0] == 0.5


@pytest.mark.parametrize("method", SCAN_METHODS)
@pytest.mark.parametrize("split", [1, 5, 12, 16])
def test_chunking_with_h_last_as_h0_equals_the_whole(method, split):
    a, b, h0 = rng.uniform(-1, 1, size=(2, 17, 3)), rng.normal(size=(2, 17, 3)), rng.normal(size=(2, 3))
    whole, whole_last = linear_scan(a, b, h0, method=method)
    first, mid = linear_scan(a[:, :split], b[:, :split], h0, method=method)
    second, last = linear_scan(a[:, split:], b[:, split:], mid, method=method)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, **TOL)
    np.testing.assert_allclose(last, whole_last, **TOL)


@pytest.mark.parametrize("method", SCAN_METHODS)
def test_causality_future_tokens_never_change_past_states(method):
    a, b = rng.uniform(0, 1, size=(2, 20, 3)), rng.normal(size=(2, 20, 3))
    before, _ = linear_scan(a, b, method=method)
    a2, b2 = a.copy(), b.copy()
    a2[:, 11:] = rng.uniform(0, 1, size=(2, 9, 3))
    b2[:, 11:] += 5.0
    after, _ = linear_scan(a2, b2, method=method)
    np.testing.assert_array_equal(after[:, :11], before[:, :11])
    assert not np.allclose(after[:, 11:], before[:, 11:])


# ---------------------------------------------------------------------------------- RG-LRU


@pytest.mark.parametrize("c", [8.0, 1.0, 2.5])
def test_rg_lru_matches_per_step_loop_of_the_formula(c):
    x, r, i, lam = _rg_inputs()
    h0 = rng.normal(size=(2, 3))
    y, last = rg_lru(x, r, i, lam, c=c, h0=h0)
    # The paper's form: a = σ(Λ), a_t = a^(c r_t).
    a = 1.0 / (1.0 + np.exp(-lam))
    h, want = h0.copy(), np.zeros_like(x)
    for t in range(x.shape[1]):
        a_t = a ** (c * r[:, t])
        h = a_t * h + np.sqrt(1.0 - a_t**2) * (i[:, t] * x[:, t])
        want[:, t] = h
    assert y.shape == x.shape and last.shape == (2, 3) and y.dtype == np.float64
    np.testing.assert_allclose(y, want, **TOL)
    np.testing.assert_allclose(last, want[:, -1], **TOL)


def test_rg_lru_matches_official_sign_convention_with_resets():
    x, r, i, lam = _rg_inputs(t_len=12)
    h0 = rng.normal(size=(2, 3))
    reset = np.zeros((2, 12), dtype=bool)
    reset[0, [0, 7]] = True
    reset[1, 4] = True
    y, last = rg_lru(x, r, i, lam, h0=h0, reset=reset)
    want, want_last = loop_rg_lru_official(x, r, i, -lam, h0=h0, reset=reset)  # official stores p = -Λ
    np.testing.assert_allclose(y, want, **TOL)
    np.testing.assert_allclose(last, want_last, **TOL)


def test_rg_lru_zero_recurrence_gate_carries_the_state_unchanged():
    x, r, i, lam = _rg_inputs(t_len=10)
    r[:, 4:7] = 0.0  # a_t = a^0 = 1 and √(1 - a_t²) = 0: x_t is ignored
    y, _ = rg_lru(x, r, i, lam, h0=rng.normal(size=(2, 3)))
    for t in (4, 5, 6):
        np.testing.assert_array_equal(y[:, t], y[:, 3])
    # Also from h0 at t = 0, with x there as large as you like.
    r0 = np.zeros((1, 1, 3))
    x0 = np.full((1, 1, 3), 1e6)
    y0, last0 = rg_lru(x0, r0, np.ones((1, 1, 3)), lam, h0=np.array([[1.0, -2.0, 3.0]]))
    np.testing.assert_array_equal(y0[0, 0], [1.0, -2.0, 3.0])
    np.testing.assert_array_equal(last0, [[1.0, -2.0, 3.0]])


def test_rg_lru_reset_restarts_the_state_exactly():
    x, r, i, lam = _rg_inputs(t_len=15)
    reset = np.zeros((2, 15), dtype=bool)
    reset[:, 6] = True
    reset[1, 11] = True
    y, _ = rg_lru(x, r, i, lam, h0=rng.normal(size=(2, 3)), reset=reset)
    np.testing.assert_array_equal(y[:, 6], i[:, 6] * x[:, 6])  # a_t = 0, multiplier 1
    np.testing.assert_array_equal(y[1, 11], i[1, 11] * x[1, 11])
    # Nothing before the reset reaches it or anything after: change all of it, and h0.
    x2, r2, i2 = x.copy(), r.copy(), i.copy()
    x2[:, :6] = rng.normal(size=(2, 6, 3)) * 10
    r2[:, :6] = rng.uniform(0, 1, size=(2, 6, 3))
    i2[:, :6] = rng.uniform(0, 1, size=(2, 6, 3))
    y2, _ = rg_lru(x2, r2, i2, lam, h0=rng.normal(size=(2, 3)), reset=reset)
    np.testing.assert_array_equal(y2[:, 6:], y[:, 6:])
    assert not np.allclose(y2[:, :6], y[:, :6])
    # A reset segment equals the same tokens run on their own from h0 = 0.
    alone, _ = rg_lru(x[:, 6:], r[:, 6:], i[:, 6:], lam, reset=reset[:, 6:])
    np.testing.assert_array_equal(alone, y[:, 6:])


def test_rg_lru_reset_all_false_is_no_reset():
    x, r, i, lam = _rg_inputs()
    h0 = rng.normal(size=(2, 3))
    np.testing.assert_array_equal(
        rg_lru(x, r, i, lam, h0=h0, reset=np.zeros((2, 9), dtype=bool))[0], rg_lru(x, r, i, lam, h0=h0)[0]
    )


def test_rg_lru_chunking_with_h_last():
    x, r, i, lam = _rg_inputs(t_len=14)
    whole, whole_last = rg_lru(x, r, i, lam)
    first, mid = rg_lru(x[:, :5], r[:, :5], i[:, :5], lam)
    second, last = rg_lru(x[:, 5:], r[:, 5:], i[:, 5:], lam, h0=mid)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, **TOL)
    np.testing.assert_allclose(last, whole_last, **TOL)


@pytest.mark.parametrize("lam", [20.0, 40.0, 100.0, 800.0, -800.0])
def test_rg_lru_is_stable_for_extreme_lambda(lam):
    x = rng.normal(size=(2, 50, 2))
    r, i = rng.uniform(0, 1, size=x.shape), rng.uniform(0, 1, size=x.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / invalid-value warnings either
        y, last = rg_lru(x, r, i, np.array([lam, lam]), h0=np.ones((2, 2)))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(last))
    # |h_t| <= max(|h_{t-1}|, |i_t x_t|) since a_t² + (1 - a_t²) = 1: the state cannot blow up.
    assert np.max(np.abs(y)) <= max(1.0, np.max(np.abs(i * x))) + 1e-12


def test_rg_lru_sqrt_factor_keeps_its_digits_near_a_equal_one():
    lam = 40.0  # a = σ(40) = 1 - 4.2e-18: 1 - a² rounds to 0 if computed naively
    y, _ = rg_lru(np.ones((1, 1, 1)), np.ones((1, 1, 1)), np.ones((1, 1, 1)), np.array([lam]))
    # 1 - a_t² = 1 - σ(Λ)^16 ≈ 16 e^(-Λ) for large Λ
    np.testing.assert_allclose(y[0, 0, 0], math.sqrt(16.0 * math.exp(-lam)), rtol=1e-8)
    assert 1.0 - (1.0 / (1.0 + math.exp(-lam))) ** 16 == 0.0  # what the naive form would give


# ---------------------------------------------------------------------------------- causal conv


@pytest.mark.parametrize("k_len", [1, 2, 4])
@pytest.mark.parametrize("t_len", [1, 3, 9])
@pytest.mark.parametrize("with_bias", [False, True])
def test_causal_conv1d_equals_torch_conv1d(k_len, t_len, with_bias):
    x = rng.normal(size=(2, t_len, 5))
    w = rng.normal(size=(5, k_len))
    bias = rng.normal(size=5) if with_bias else None
    got = causal_conv1d(x, w, bias)
    xt = torch.from_numpy(x).transpose(1, 2)  # (B, C, T)
    xt = F.pad(xt, (k_len - 1, 0))  # K - 1 zeros on the left
    want = F.conv1d(
        xt, torch.from_numpy(w)[:, None, :], None if bias is None else torch.from_numpy(bias), groups=5
    ).transpose(1, 2)
    assert got.shape == (2, t_len, 5) and got.dtype == np.float64
    np.testing.assert_allclose(got, want.numpy(), **TOL)


def test_causal_conv1d_formula_and_causality():
    x, w = rng.normal(size=(1, 8, 2)), rng.normal(size=(2, 4))
    y = causal_conv1d(x, w)
    t = 5  # y[t] = Σ_k w[:, k] x[t - 3 + k]
    np.testing.assert_allclose(y[0, t], sum(w[:, k] * x[0, t - 3 + k] for k in range(4)), **TOL)
    np.testing.assert_allclose(y[0, 0], w[:, 3] * x[0, 0], **TOL)  # only the current-token tap
    x2 = x.copy()
    x2[:, 6:] += 1.0
    np.testing.assert_array_equal(causal_conv1d(x2, w)[:, :6], y[:, :6])


# ---------------------------------------------------------------------------------- errors

A3, B3 = np.zeros((2, 5, 3)), np.zeros((2, 5, 3))


@pytest.mark.parametrize(
    "args,kwargs,error,match",
    [
        ((np.zeros((5, 3)), np.zeros((5, 3))), {}, ValueError, r"a must have shape \(B, T, C\)"),
        ((A3, np.zeros((2, 5))), {}, ValueError, r"b must have shape \(B, T, C\)"),
        ((np.zeros((2, 0, 3)), np.zeros((2, 0, 3))), {}, ValueError, r"a must have shape \(B, T, C\) with T, C >= 1"),
        ((A3, np.zeros((2, 6, 3))), {}, ValueError, r"b must have the same shape as a \(2, 5, 3\)"),
        ((A3, B3, np.zeros((2, 4))), {}, ValueError, r"h0 must have shape \(B, C\) = \(2, 3\)"),
        ((A3, B3, np.zeros((2, 1, 3))), {}, ValueError, r"h0 must have shape \(B, C\)"),
        ((A3.astype(int), B3), {}, TypeError, "a must be a real floating array"),
        ((A3, B3.astype(bool)), {}, TypeError, "b must be a real floating array"),
        ((A3, B3.astype(complex)), {}, TypeError, "b must be a real floating array"),
        ((["x"], B3), {}, TypeError, "a must be a real floating array"),
        ((A3, B3, torch.zeros(2, 3, dtype=torch.int64)), {}, TypeError, "h0 must be a real floating array"),
        ((A3, B3), {"method": "blelloch"}, ValueError, r"method must be one of \['sequential', 'associative'\]"),
    ],
)
def test_linear_scan_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        linear_scan(*args, **kwargs)


X3 = np.zeros((2, 5, 3))
G3 = np.full((2, 5, 3), 0.5)
LAM = np.zeros(3)


@pytest.mark.parametrize(
    "args,kwargs,error,match",
    [
        ((np.zeros((5, 3)), G3, G3, LAM), {}, ValueError, r"x must have shape \(B, T, C\)"),
        ((X3, np.full((2, 4, 3), 0.5), G3, LAM), {}, ValueError, r"gate_a must have the same shape as x \(2, 5, 3\)"),
        ((X3, G3, np.full((2, 5), 0.5), LAM), {}, ValueError, r"gate_x must have the same shape as x"),
        ((X3, G3, G3, np.zeros(4)), {}, ValueError, r"a_param must have shape \(C,\) = \(3,\)"),
        ((X3, G3, G3, np.zeros((1, 3))), {}, ValueError, r"a_param must have shape \(C,\)"),
        ((X3, G3 + 0.6, G3, LAM), {}, ValueError, r"gate_a must hold gate values in \[0, 1\]"),
        ((X3, G3, G3 - 0.6, LAM), {}, ValueError, r"gate_x must hold gate values in \[0, 1\]"),
        ((X3, np.where(X3 == 0, np.nan, 0.5), G3, LAM), {}, ValueError, r"gate_a must hold gate values"),
        ((X3.astype(int), G3, G3, LAM), {}, TypeError, "x must be a real floating array"),
        ((X3, G3, G3, np.zeros(3, dtype=int)), {}, TypeError, "a_param must be a real floating array"),
        ((X3, G3, G3, LAM), {"h0": np.zeros(3)}, ValueError, r"h0 must have shape \(B, C\) = \(2, 3\)"),
        ((X3, G3, G3, LAM), {"reset": np.zeros((2, 5))}, TypeError, r"reset must be a bool array"),
        (
            (X3, G3, G3, LAM), {"reset": np.zeros((2, 4), dtype=bool)}, ValueError,
            r"reset must have shape \(B, T\) = \(2, 5\)",
        ),
        ((X3, G3, G3, LAM), {"c": -1.0}, ValueError, "c must be a finite number >= 0"),
        ((X3, G3, G3, LAM), {"c": "8"}, TypeError, "c must be a real number"),
    ],
)
def test_rg_lru_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        rg_lru(*args, **kwargs)


@pytest.mark.parametrize(
    "args,error,match",
    [
        ((np.zeros((5, 3)), np.zeros((3, 4))), ValueError, r"x must have shape \(B, T, C\)"),
        ((X3, np.zeros((4, 4))), ValueError, r"weight must have shape \(C, K\) = \(3, K\)"),
        ((X3, np.zeros(3)), ValueError, r"weight must have shape \(C, K\)"),
        ((X3, np.zeros((3, 0))), ValueError, r"weight must have shape \(C, K\) = \(3, K\) with K >= 1"),
        ((X3, np.zeros((3, 4)), np.zeros(4)), ValueError, r"bias must have shape \(C,\) = \(3,\)"),
        ((X3, np.zeros((3, 4), dtype=int)), TypeError, "weight must be a real floating array"),
        ((X3, np.zeros((3, 4)), np.zeros(3, dtype=bool)), TypeError, "bias must be a real floating array"),
    ],
)
def test_causal_conv1d_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        causal_conv1d(*args)
