"""ALiBi reference: slopes (incl. the official non-power-of-two rule), biases, the official form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from linattn_edu.reference import (
    alibi_attention,
    alibi_bias,
    alibi_bias_official,
    alibi_slopes,
    attention_mask,
    softmax,
    softmax_attention,
)


def slopes_by_recursion(n: int) -> list[float]:
    """The rule written as the paper states it, independently of the package (recursive form)."""
    if math.log2(n).is_integer():
        return [2.0 ** (-8.0 * h / n) for h in range(1, n + 1)]
    c = 2 ** math.floor(math.log2(n))
    return slopes_by_recursion(c) + slopes_by_recursion(2 * c)[0::2][: n - c]


def test_slopes_power_of_two_match_the_paper():
    np.testing.assert_array_equal(alibi_slopes(8), [2.0**-k for k in range(1, 9)])  # 1/2 ... 1/256
    np.testing.assert_allclose(alibi_slopes(16), [2.0 ** (-k / 2) for k in range(1, 17)], rtol=1e-15)
    assert alibi_slopes(1).tolist() == [2.0**-8]
    assert alibi_slopes(2).tolist() == [2.0**-4, 2.0**-8]


def test_slopes_twelve_heads_follow_the_official_non_monotone_rule():
    s = alibi_slopes(12)
    expected = [2.0**-k for k in range(1, 9)] + [2.0**-0.5, 2.0**-1.5, 2.0**-2.5, 2.0**-3.5]
    np.testing.assert_allclose(s, expected, rtol=1e-15)
    assert not np.all(np.diff(s) < 0), "the official rule is not monotone for 12 heads"


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7, 12, 20, 24, 33, 64, 96])
def test_slopes_match_recursive_rule(n):
    s = alibi_slopes(n)
    assert s.shape == (n,) and s.dtype == np.float64
    np.testing.assert_allclose(s, slopes_by_recursion(n), rtol=1e-14)
    assert np.all((s > 0) & (s < 1))


@pytest.mark.parametrize("bad", [0, -3, 2.0, "8", None, True])
def test_slopes_reject_bad_n_heads(bad):
    with pytest.raises(ValueError, match="n_heads"):
        alibi_slopes(bad)


def test_bias_values_and_end_aligned_queries():
    h, tq, tk = 4, 3, 7
    bias = alibi_bias(h, tq, tk)
    assert bias.shape == (h, tq, tk) and bias.dtype == np.float64
    m = alibi_slopes(h)
    for head in range(h):
        for r in range(tq):
            i = tk - tq + r  # query row r sits at position Tk - Tq + r
            for j in range(tk):
                assert bias[head, r, j] == pytest.approx(-m[head] * (i - j), abs=0)
    # The last Tq rows of the square bias are the rectangular bias (decoding with a cache).
    np.testing.assert_array_equal(alibi_bias(h, tk)[:, -tq:], bias)
    # Zero on the diagonal, negative for past keys, positive (masked later) for future keys.
    square = alibi_bias(h, 5)
    assert np.all(np.diagonal(square, axis1=1, axis2=2) == 0)
    assert np.all(square[:, np.tril_indices(5, -1)[0], np.tril_indices(5, -1)[1]] < 0)
    assert np.all(square[:, np.triu_indices(5, 1)[0], np.triu_indices(5, 1)[1]] > 0)


@pytest.mark.parametrize(
    "args,name", [((2, 0), "q_len"), ((2, 3, 0), "k_len"), ((2, 5, 3), "q_len"), ((0, 3), "n_heads"), ((2, 2.5), "q_len")]
)
def test_bias_rejects_bad_sizes(args, name):
    with pytest.raises(ValueError, match=name):
        alibi_bias(*args)
    with pytest.raises(ValueError, match=name):
        alibi_bias_official(*args)


def test_official_form_differs_by_a_per_row_constant_only():
    h, tq, tk = 6, 4, 9
    ours, official = alibi_bias(h, tq, tk), alibi_bias_official(h, tq, tk)
    assert official.shape == (h, tq, tk)
    assert not np.allclose(ours, official)  # the raw scores really differ...
    diff = official - ours
    pos_q = np.arange(tq) + tk - tq
    np.testing.assert_allclose(diff, np.broadcast_to((alibi_slopes(h)[:, None] * pos_q)[:, :, None], diff.shape))
    # ...but the causal softmax weights agree, since softmax is shift-invariant per row.
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((h, tq, tk))
    mask = attention_mask(tq, tk)
    p_ours = softmax(np.where(mask, scores + ours, -np.inf))
    p_official = softmax(np.where(mask, scores + official, -np.inf))
    np.testing.assert_allclose(p_ours, p_official, atol=1e-14)
    q, k, v = rng.standard_normal((2, h, tq, 8)), rng.standard_normal((2, h, tk, 8)), rng.standard_normal((2, h, tk, 8))
    np.testing.assert_allclose(
        softmax_attention(q, k, v, bias=official), softmax_attention(q, k, v, bias=ours), atol=1e-13
    )


def loop_alibi_attention(q, k, v, slopes):
    """One query at a time, straight from the paper's formula (causal, end-aligned, GQA)."""
    h, tq, d = q.shape
    h_kv, tk, _ = k.shape
    out = np.zeros((h, tq, v.shape[-1]))
    for head in range(h):
        kv = head // (h // h_kv)
        for r in range(tq):
            i = tk - tq + r
            s = np.array([q[head, r] @ k[kv, j] / math.sqrt(d) - slopes[head] * (i - j) for j in range(i + 1)])
            w = np.exp(s - s.max())
            out[head, r] = (w / w.sum()) @ v[kv, : i + 1]
    return out


@pytest.mark.parametrize("h,h_kv,tq,tk", [(4, 4, 6, 6), (4, 2, 3, 8), (3, 1, 1, 5)])
def test_alibi_attention_matches_loop_and_torch_path(h, h_kv, tq, tk):
    rng = np.random.default_rng(1)
    q = rng.standard_normal((h, tq, 8)) * 2
    k = rng.standard_normal((h_kv, tk, 8)) * 2
    v = rng.standard_normal((h_kv, tk, 8))
    slopes = alibi_slopes(h)
    out = alibi_attention(q, k, v)
    np.testing.assert_allclose(out, loop_alibi_attention(q, k, v, slopes), atol=1e-12)
    # Without ALiBi the answer is different: the bias really is applied.
    assert not np.allclose(out, softmax_attention(q, k, v), atol=1e-3)
    from linattn_edu.kernels import flash_attention_torch

    t = [torch.from_numpy(x)[None] for x in (q, k, v)]
    got = flash_attention_torch(*t, alibi_slopes=torch.from_numpy(slopes))
    np.testing.assert_allclose(got[0].numpy(), out, atol=1e-6)  # the torch path rounds slopes to fp32


def test_alibi_attention_matches_flash_kernel():
    """The package's kernel (Triton interpreter on a CPU) with the reference slopes."""
    from linattn_edu.kernels import flash_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 4, 20, 16, generator=g) for _ in range(3))
    slopes = torch.tensor(alibi_slopes(4), dtype=torch.float32)
    out = flash_attention(q, k, v, alibi_slopes=slopes)
    ref = alibi_attention(q[0].double().numpy(), k[0].double().numpy(), v[0].double().numpy())
    np.testing.assert_allclose(out[0].double().numpy(), ref, atol=2e-5)


def test_alibi_attention_errors():
    with pytest.raises(ValueError, match="q must have a head axis"):
        alibi_attention(np.zeros((3, 4)), np.zeros((3, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="slopes"):
        alibi_attention(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), slopes=np.ones(3))
