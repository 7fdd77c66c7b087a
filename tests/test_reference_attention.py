"""The NumPy reference against straightforward float64 math, torch's SDPA, and its own error checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from linattn_edu.reference import (
    attention_mask,
    kv_cache_bytes,
    naive_softmax,
    repeat_kv,
    softmax,
    softmax_attention,
)

rng = np.random.default_rng(0)


def loop_attention(q, k, v, *, causal=True, scale=None, bias=None, window=None):
    """The definition, one query and one key at a time (2-D inputs), in float64 Python."""
    tq, d = q.shape
    tk = k.shape[0]
    scale = 1 / math.sqrt(d) if scale is None else scale
    out = np.zeros((tq, v.shape[1]))
    for i in range(tq):
        pos = tk - tq + i
        keys = [j for j in range(tk) if (not causal or j <= pos) and (window is None or j > pos - window)]
        s = np.array([q[i] @ k[j] * scale + (0.0 if bias is None else bias[i, j]) for j in keys])
        w = np.exp(s - s.max())
        w /= w.sum()
        out[i] = sum(wj * v[j] for wj, j in zip(w, keys))
    return out


@pytest.mark.parametrize("causal,window", [(False, None), (True, None), (True, 1), (True, 3)])
@pytest.mark.parametrize("tq,tk", [(7, 7), (3, 9), (1, 5)])
def test_matches_loop_definition(causal, window, tq, tk):
    q, k, v = rng.normal(size=(tq, 8)), rng.normal(size=(tk, 8)), rng.normal(size=(tk, 5))
    bias = rng.normal(size=(tq, tk))
    got = softmax_attention(q, k, v, causal=causal, window=window, bias=bias, scale=0.3)
    want = loop_attention(q, k, v, causal=causal, window=window, bias=bias, scale=0.3)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert got.dtype == np.float64


@pytest.mark.parametrize("causal", [False, True])
def test_matches_torch_sdpa_float64(causal):
    q, k, v = (rng.normal(size=(2, 3, 11, 16)) for _ in range(3))
    want = F.scaled_dot_product_attention(*(torch.from_numpy(x) for x in (q, k, v)), is_causal=causal)
    np.testing.assert_allclose(softmax_attention(q, k, v, causal=causal), want.numpy(), rtol=1e-12, atol=1e-12)


def test_window_matches_sdpa_with_explicit_mask():
    q, k, v = (rng.normal(size=(1, 2, 13, 8)) for _ in range(3))
    mask = torch.from_numpy(attention_mask(13, 13, window=4))
    want = F.scaled_dot_product_attention(*(torch.from_numpy(x) for x in (q, k, v)), attn_mask=mask)
    np.testing.assert_allclose(softmax_attention(q, k, v, window=4), want.numpy(), rtol=1e-12, atol=1e-12)


def test_gqa_equals_mha_with_repeated_heads():
    q = rng.normal(size=(2, 6, 9, 8))
    k, v = rng.normal(size=(2, 2, 9, 8)), rng.normal(size=(2, 2, 9, 4))
    got = softmax_attention(q, k, v)
    want = softmax_attention(q, repeat_kv(k, 3), repeat_kv(v, 3))
    np.testing.assert_array_equal(got, want)
    # Query head 4 reads KV head 4 // 3 = 1.
    np.testing.assert_allclose(got[:, 4], softmax_attention(q[:, 4], k[:, 1], v[:, 1]), rtol=1e-13)


def test_decoding_rows_equal_prefill_rows():
    """Queries at the end of the keys: the last 3 rows of a full causal pass."""
    q, k, v = (rng.normal(size=(2, 10, 8)) for _ in range(3))
    full = softmax_attention(q, k, v, window=4)
    tail = softmax_attention(q[:, -3:], k, v, window=4)
    np.testing.assert_allclose(tail, full[:, -3:], rtol=1e-13, atol=1e-13)


def test_causality_future_tokens_do_not_change_past_outputs():
    q, k, v = (rng.normal(size=(12, 8)) for _ in range(3))
    before = softmax_attention(q, k, v)
    k2, v2, q2 = k.copy(), v.copy(), q.copy()
    k2[7:] += 5.0
    v2[7:] -= 3.0
    q2[7:] *= 2.0
    after = softmax_attention(q2, k2, v2)
    np.testing.assert_array_equal(after[:7], before[:7])
    assert not np.allclose(after[7:], before[7:])


def test_stable_softmax_survives_large_logits_where_naive_overflows():
    x = np.array([[1000.0, 1001.0, 1002.0]])
    with np.errstate(all="ignore"):
        assert np.isnan(naive_softmax(x)).all()
    np.testing.assert_allclose(softmax(x), softmax(x - 1000.0))
    np.testing.assert_allclose(softmax(x).sum(), 1.0)


def test_softmax_all_masked_row_raises():
    with pytest.raises(ValueError, match="masked"):
        softmax(np.full((1, 3), -np.inf))


def test_attention_mask_shapes_and_window():
    m = attention_mask(3, 6, window=2)
    # Query 0 sits at position 3 and sees keys 2, 3.
    np.testing.assert_array_equal(m, [[0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1]])
    assert attention_mask(4, causal=False).all()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(q=np.zeros((4, 8)), k=np.zeros((4, 7)), v=np.zeros((4, 3))), "k must have the same last dim"),
        (dict(q=np.zeros((4, 8)), k=np.zeros((4, 8)), v=np.zeros((5, 3))), "v must have as many positions"),
        (dict(q=np.zeros((8,)), k=np.zeros((4, 8)), v=np.zeros((4, 3))), "q must have shape"),
        (dict(q=np.zeros((5, 8)), k=np.zeros((4, 8)), v=np.zeros((4, 3))), "q_len <= k_len"),
        (dict(q=np.zeros((1, 3, 4, 8)), k=np.zeros((1, 2, 4, 8)), v=np.zeros((1, 2, 4, 8))), "multiple of the KV heads"),
        (dict(q=np.zeros((4, 8)), k=np.zeros((4, 8)), v=np.zeros((4, 3)), bias=np.zeros((3, 4))), "bias must broadcast"),
        (dict(q=np.zeros((4, 8)), k=np.zeros((4, 8)), v=np.zeros((4, 3)), window=0), "window must be a positive int"),
        (dict(q=np.zeros((4, 8)), k=np.zeros((4, 8)), v=np.zeros((4, 3)), window=2, causal=False), "window requires causal"),
    ],
)
def test_bad_input_raises_value_error_naming_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        softmax_attention(**kwargs)


def test_non_numeric_input_raises_type_error():
    with pytest.raises(TypeError, match="q must be a numeric array"):
        softmax_attention("abc", np.zeros((2, 2)), np.zeros((2, 2)))


def test_kv_cache_bytes():
    # A 7B-style model: 32 layers, 32 KV heads of 128 dims, fp16: 0.5 MiB per token.
    assert kv_cache_bytes(1, n_layers=32, n_kv_heads=32, head_dim=128) == 2 * 32 * 32 * 128 * 2
    assert kv_cache_bytes(4096, n_layers=32, n_kv_heads=8, head_dim=128) == 4096 * 2 * 32 * 8 * 128 * 2
    with pytest.raises(ValueError, match="n_layers"):
        kv_cache_bytes(10, n_layers=-1, n_kv_heads=1, head_dim=1)
