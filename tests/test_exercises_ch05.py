"""Chapter 5's exercise checkers: right solutions pass, typical mistakes fail with a useful hint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from linattn_edu.exercises import ch05
from linattn_edu.reference import taylor_feature_map, taylor_feature_map_compact

# --------------------------------------------------------------------------------------------
# Exercise 1: 1 + x + x²/2
# --------------------------------------------------------------------------------------------


def taylor_exp_right(x: np.ndarray) -> np.ndarray:
    return 1.0 + x + x**2 / 2.0


def test_taylor_exp_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch05.check_taylor_exp(taylor_exp_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ taylor_exp") and "max |err|" in out


def test_taylor_exp_torch_result_accepted() -> None:
    assert ch05.check_taylor_exp(lambda x: 1 + torch.from_numpy(x) + torch.from_numpy(x) ** 2 / 2,
                                 quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (lambda x: 1.0 + x + x**2, "x²/2"),
        (np.exp, "exp(x) itself"),
        (lambda x: 1.0 + x, "add the quadratic term"),
        (lambda x: x + x**2 / 2, "constant term 1"),
        (lambda x: 1.0 + x**2 / 2, "linear term"),
    ],
)
def test_taylor_exp_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch05.check_taylor_exp(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ taylor_exp") and hint in out and "max |err|" in out


def test_taylor_exp_stub_crash_and_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(x):
        raise NotImplementedError

    assert ch05.check_taylor_exp(stub) is False
    assert "not solved yet" in capsys.readouterr().out
    assert ch05.check_taylor_exp(lambda x: x.reshape(-1)[0] + None) is False
    assert "raised TypeError" in capsys.readouterr().out
    assert ch05.check_taylor_exp(lambda x: None) is False
    assert "None" in capsys.readouterr().out
    assert ch05.check_taylor_exp(lambda x: taylor_exp_right(x).ravel()[:-1]) is False
    assert "shape" in capsys.readouterr().out
    assert ch05.check_taylor_exp(stub, quiet=True) is False
    assert ch05.check_taylor_exp(taylor_exp_right, quiet=True) is True
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------------------------
# Exercise 2: the Taylor feature map
# --------------------------------------------------------------------------------------------


def feature_map_right(x: np.ndarray) -> np.ndarray:
    d = x.shape[-1]
    quad = (x[..., :, None] * x[..., None, :]).reshape(*x.shape[:-1], d * d)
    return np.concatenate([np.ones_like(x[..., :1]), x / d**0.25, quad / (math.sqrt(2) * math.sqrt(d))], axis=-1)


def feature_map_compact_right(x: np.ndarray) -> np.ndarray:
    d = x.shape[-1]
    a, b = np.triu_indices(d)
    quad = x[..., a] * x[..., b] * np.where(a == b, 1.0, math.sqrt(2)) / (math.sqrt(2) * math.sqrt(d))
    return np.concatenate([np.ones_like(x[..., :1]), x / d**0.25, quad], axis=-1)


def _map(lin_scale, quad_scale, *, const=True, lin=True, quad=True):
    def fn(x):
        d = x.shape[-1]
        parts = []
        if const:
            parts.append(np.ones_like(x[..., :1]))
        if lin:
            parts.append(x * lin_scale(d))
        if quad:
            parts.append((x[..., :, None] * x[..., None, :]).reshape(*x.shape[:-1], d * d) * quad_scale(d))
        return np.concatenate(parts, axis=-1)
    return fn


def upper_triangle_no_sqrt2(x: np.ndarray) -> np.ndarray:
    d = x.shape[-1]
    a, b = np.triu_indices(d)
    quad = x[..., a] * x[..., b] / (math.sqrt(2) * math.sqrt(d))
    return np.concatenate([np.ones_like(x[..., :1]), x / d**0.25, quad], axis=-1)


def test_feature_map_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch05.check_taylor_feature_map(feature_map_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ taylor_feature_map") and "F = 73 for D = 8" in out and "compact" in out


@pytest.mark.parametrize("fn", [taylor_feature_map, taylor_feature_map_compact, feature_map_compact_right])
def test_feature_map_reference_and_compact_pass(fn, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch05.check_taylor_feature_map(fn) is True
    assert "max |err|" in capsys.readouterr().out


def test_feature_map_compact_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch05.check_taylor_feature_map(taylor_feature_map_compact) is True
    assert "F = 45 for D = 8: the compact symmetric layout" in capsys.readouterr().out


def test_feature_map_torch_result_accepted() -> None:
    assert ch05.check_taylor_feature_map(lambda x: torch.from_numpy(feature_map_right(x)), quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (_map(lambda d: d**-0.25, lambda d: 1 / math.sqrt(d)), "s²/2, not s²"),
        (_map(lambda d: 1.0, lambda d: 1 / math.sqrt(2)), "scale by √D"),
        (_map(lambda d: 1 / math.sqrt(d), lambda d: 1 / math.sqrt(2 * d)), "not x/√D"),
        (_map(lambda d: 1.0, lambda d: 1 / math.sqrt(2 * d)), "not x unscaled"),
        (_map(lambda d: d**-0.25, lambda d: 1 / (math.sqrt(2) * d)), "scaled by √D (not D)"),
        (_map(lambda d: d**-0.25, lambda d: 1 / math.sqrt(2 * d), const=False), "constant feature 1"),
        (_map(lambda d: d**-0.25, lambda d: 1 / math.sqrt(2 * d), lin=False), "include the linear block"),
        (_map(lambda d: d**-0.25, lambda d: 1 / math.sqrt(2 * d), quad=False), "include the quadratic block"),
        (upper_triangle_no_sqrt2, "multiply each off-diagonal entry by √2"),
    ],
)
def test_feature_map_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch05.check_taylor_feature_map(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ taylor_feature_map") and hint in out and "max |err|" in out


def test_feature_map_bad_shapes_and_stub(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch05.check_taylor_feature_map(lambda x: feature_map_right(x).reshape(-1, 1 + 8 + 64)
                                         if x.ndim > 2 else feature_map_right(x)) is False
    assert "leading dims" in capsys.readouterr().out
    # φ padded with zeros: same dot products, but more than 1 + D + D² features
    assert ch05.check_taylor_feature_map(lambda x: np.concatenate([feature_map_right(x), 0 * x], axis=-1)) is False
    out = capsys.readouterr().out
    assert "more than 1 + D + D²" in out and "compact" in out
    assert ch05.check_taylor_feature_map(lambda x: None) is False
    assert "None" in capsys.readouterr().out

    def stub(x):
        raise NotImplementedError

    assert ch05.check_taylor_feature_map(stub) is False
    assert "not solved yet" in capsys.readouterr().out
    assert ch05.check_taylor_feature_map(stub, quiet=True) is False
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------------------------
# Exercise 3: sliding-window attention
# --------------------------------------------------------------------------------------------


def window_right(q, k, v, window):
    t, d = q.shape
    i, j = np.arange(t)[:, None], np.arange(t)[None, :]
    scores = np.where((j <= i) & (j > i - window), q @ k.T / np.sqrt(d), -np.inf)
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)) @ v


def _window_variant(keep, scale=True, after=False):
    def fn(q, k, v, window):
        t, d = q.shape
        i, j = np.arange(t)[:, None], np.arange(t)[None, :]
        mask = keep(i, j, window)
        s = q @ k.T / (np.sqrt(d) if scale else 1.0)
        if after:
            s = np.where(j <= i, s, -np.inf)
            p = np.exp(s - s.max(axis=1, keepdims=True))
            return (p / p.sum(axis=1, keepdims=True) * mask) @ v
        s = np.where(mask, s, -np.inf)
        with np.errstate(invalid="ignore"):
            p = np.exp(s - s.max(axis=1, keepdims=True))
            return (p / p.sum(axis=1, keepdims=True)) @ v
    return fn


def test_window_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch05.check_sliding_window_attention(window_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ sliding_window_attention") and "max |err|" in out


def test_window_torch_sdpa_accepted() -> None:
    def fn(q, k, v, window):
        t = q.shape[0]
        i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
        mask = (j <= i) & (j > i - window)
        return torch.nn.functional.scaled_dot_product_attention(
            torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v), attn_mask=mask)

    assert ch05.check_sliding_window_attention(fn, quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (_window_variant(lambda i, j, w: (j <= i) & (j >= i - w)), "window + 1"),
        (_window_variant(lambda i, j, w: (j <= i) & (j > i - w + 1) | (j == i)), "window - 1"),
        (_window_variant(lambda i, j, w: np.abs(i - j) < w), "mask the future too"),
        (_window_variant(lambda i, j, w: j <= i), "restrict to the window"),
        (_window_variant(lambda i, j, w: (j <= i) & (j > i - w), scale=False), "1/√D"),
        (_window_variant(lambda i, j, w: (j <= i) & (j > i - w), after=True), "mask before the softmax"),
        (_window_variant(lambda i, j, w: (j < i) & (j >= i - w)), "no visible key"),
    ],
)
def test_window_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch05.check_sliding_window_attention(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ sliding_window_attention") and hint in out and "max |err|" in out


def test_window_stub_and_bad_return(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(q, k, v, window):
        raise NotImplementedError

    assert ch05.check_sliding_window_attention(stub) is False
    assert "not solved yet" in capsys.readouterr().out
    assert ch05.check_sliding_window_attention(lambda q, k, v, w: window_right(q, k, v, w).T) is False
    assert "shape" in capsys.readouterr().out
    assert ch05.check_sliding_window_attention(lambda q, k, v, w: v[len(v)]) is False
    assert "raised IndexError" in capsys.readouterr().out
    assert ch05.check_sliding_window_attention(stub, quiet=True) is False
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------------------------
# Exercise 4: MQAR accuracy
# --------------------------------------------------------------------------------------------


def mqar_right(predictions, targets):
    mask = targets != -100
    return float((predictions[mask] == targets[mask]).mean())


def test_mqar_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch05.check_mqar_accuracy(mqar_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ mqar_accuracy") and "max |err|" in out


@pytest.mark.parametrize(
    "fn",
    [
        lambda p, t: np.mean(p[t != -100] == t[t != -100]),                     # a NumPy float
        lambda p, t: ((p == t) & (t != -100)).sum() / (t != -100).sum(),
        lambda p, t: (torch.from_numpy(p) == torch.from_numpy(t))[torch.from_numpy(t) != -100].double().mean(),
    ],
)
def test_mqar_other_right_forms(fn) -> None:
    assert ch05.check_mqar_accuracy(fn, quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (lambda p, t: float((p == t).mean()), "average over targets != -100"),
        (lambda p, t: float(((p == t) | (t == -100)).mean()), "instead of counting them as right"),
        (lambda p, t: int((p[t != -100] == t[t != -100]).sum()), "divide the number of right answers"),
        (lambda p, t: 100 * mqar_right(p, t), "not a percentage"),
        (lambda p, t: 1 - mqar_right(p, t), "error rate"),
    ],
)
def test_mqar_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch05.check_mqar_accuracy(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ mqar_accuracy") and hint in out and "max |err|" in out


def test_mqar_stub_and_bad_return(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(p, t):
        raise NotImplementedError

    assert ch05.check_mqar_accuracy(stub) is False
    assert "not solved yet" in capsys.readouterr().out
    assert ch05.check_mqar_accuracy(lambda p, t: (p == t).mean(axis=1)) is False
    assert "return one number" in capsys.readouterr().out
    assert ch05.check_mqar_accuracy(lambda p, t: None) is False
    assert "None" in capsys.readouterr().out
    assert ch05.check_mqar_accuracy(stub, quiet=True) is False
    assert ch05.check_mqar_accuracy(mqar_right, quiet=True) is True
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------------------------
# Issue 14: sliding-window decoding with a ring buffer
# --------------------------------------------------------------------------------------------


def ring_right(k_cache, v_cache, t, q_t, k_t, v_t):
    w = k_cache.shape[0]
    k_cache[t % w], v_cache[t % w] = k_t, v_t
    n = min(t + 1, w)                                   # filled slots; order does not matter to softmax
    s = k_cache[:n] @ q_t / np.sqrt(q_t.shape[0])
    p = np.exp(s - s.max())
    return p @ v_cache[:n] / p.sum()


def ring_reads_empty_slots(k_cache, v_cache, t, q_t, k_t, v_t):
    w = k_cache.shape[0]
    k_cache[t % w], v_cache[t % w] = k_t, v_t
    s = np.nan_to_num(k_cache) @ q_t / np.sqrt(q_t.shape[0])
    p = np.exp(s - s.max())
    return p @ np.nan_to_num(v_cache) / p.sum()


def ring_writes_wrong_slot(k_cache, v_cache, t, q_t, k_t, v_t):
    w = k_cache.shape[0]
    k_cache[(t + 1) % w], v_cache[(t + 1) % w] = k_t, v_t
    return ring_right(k_cache.copy(), v_cache.copy(), t, q_t, k_t, v_t)


def ring_window_off_by_one(k_cache, v_cache, t, q_t, k_t, v_t):
    """Attends to the current token plus the previous W tokens (W + 1): keeps an extra slot elsewhere."""
    w = k_cache.shape[0]
    out = ring_right(k_cache, v_cache, t, q_t, k_t, v_t)
    if t >= w:
        return out + 0.1
    return out


def test_window_decode_step_accepts_ring_buffer(capsys):
    assert ch05.check_window_decode_step(ring_right)
    assert capsys.readouterr().out.startswith("✓ window_decode_step")


def test_window_decode_step_rejects_mistakes(capsys):
    assert not ch05.check_window_decode_step(ring_reads_empty_slots)
    assert "filled slots" in capsys.readouterr().out
    assert not ch05.check_window_decode_step(ring_writes_wrong_slot)
    assert "slot t % W" in capsys.readouterr().out
    assert not ch05.check_window_decode_step(ring_window_off_by_one)
    assert "✗ window_decode_step" in capsys.readouterr().out

    def grows_cache(k_cache, v_cache, t, q_t, k_t, v_t):
        return np.zeros(v_t.shape[0] + 1)

    assert not ch05.check_window_decode_step(grows_cache)
    assert "✗" in capsys.readouterr().out


def test_window_decode_step_stub_does_not_raise(capsys):
    def stub(*a):
        raise NotImplementedError

    assert not ch05.check_window_decode_step(stub)
    assert "not solved yet" in capsys.readouterr().out


def taylor_err_right(r):
    return (1 - r + r * r / 2) * math.exp(r) - 1


def test_taylor_max_rel_error(capsys):
    assert ch05.check_taylor_max_rel_error(taylor_err_right)
    assert capsys.readouterr().out.startswith("✓ taylor_max_rel_error")
    assert not ch05.check_taylor_max_rel_error(lambda r: abs((1 + r + r * r / 2) * math.exp(-r) - 1))
    assert "negative side" in capsys.readouterr().out
    assert not ch05.check_taylor_max_rel_error(lambda r: abs(1 - r + r * r / 2 - math.exp(-r)))
    assert "relative error" in capsys.readouterr().out
    grid = lambda r: float(np.max(np.abs((1 + (s := np.linspace(-r, r, 101)) + s * s / 2) * np.exp(-s) - 1)))
    assert ch05.check_taylor_max_rel_error(grid, quiet=True)  # a grid containing both ends is exact too
    assert not ch05.check_taylor_max_rel_error(lambda r: np.array([taylor_err_right(r)]), quiet=True)


def test_taylor_max_rel_error_matches_a_dense_grid():
    for r in (0.3, 1.0, 2.5):
        s = np.linspace(-r, r, 100001)
        dense = np.max(np.abs((1 + s + s * s / 2) * np.exp(-s) - 1))
        assert math.isclose(dense, taylor_err_right(r), rel_tol=1e-9)


def recall_fraction_right(inputs, targets, window):
    hits = []
    for row_in, row_tgt in zip(inputs, targets):
        for p in np.flatnonzero(row_tgt != -100):
            value_pos = np.flatnonzero(row_in == row_in[p])[0] + 1
            hits.append(p - window < value_pos <= p)
    return float(np.mean(hits))


def test_window_recall_fraction(capsys):
    assert ch05.check_window_recall_fraction(recall_fraction_right)
    assert capsys.readouterr().out.startswith("✓ window_recall_fraction")
    assert not ch05.check_window_recall_fraction(lambda x, y, w: recall_fraction_right(x, y, w + 1))
    assert "window + 1 tokens" in capsys.readouterr().out
    assert not ch05.check_window_recall_fraction(lambda x, y, w: recall_fraction_right(x, y, w - 1 if w > 1 else 1) * 0.5)
    assert "✗" in capsys.readouterr().out
    assert not ch05.check_window_recall_fraction(lambda x, y, w: None)
    assert "return a number" in capsys.readouterr().out


def test_window_recall_fraction_key_slip_is_named(capsys):
    def to_key(inputs, targets, window):
        hits = []
        for row_in, row_tgt in zip(inputs, targets):
            for p in np.flatnonzero(row_tgt != -100):
                hits.append(p - window < np.flatnonzero(row_in == row_in[p])[0] <= p)
        return float(np.mean(hits))

    assert not ch05.check_window_recall_fraction(to_key)
    out = capsys.readouterr().out
    assert "*value* token" in out or "window + 1" in out  # both slips give the same count at some windows


def test_window_recall_fraction_bounds():
    from linattn_edu.tasks.mqar import make_mqar

    x, y = make_mqar(8, seq_len=64, n_pairs=8, vocab_size=128, seed=1)
    assert ch05.window_recall_fraction_reference(x, y, 1) == 0.0  # the query token alone never holds the answer
    assert ch05.window_recall_fraction_reference(x, y, 64) == 1.0
    fractions = [ch05.window_recall_fraction_reference(x, y, w) for w in range(1, 65)]
    assert fractions == sorted(fractions)
