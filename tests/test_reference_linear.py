"""The linear-attention reference: Taylor feature maps, three equal forms, the loop definition, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from linattn_edu.reference import (
    FEATURE_MAPS,
    feature_map_dim,
    kv_cache_bytes,
    linear_attention,
    linear_attention_state_bytes,
    taylor_feature_map,
    taylor_feature_map_compact,
)

rng = np.random.default_rng(0)
TOL = dict(rtol=1e-10, atol=1e-10)


def loop_linear_attention(q, k, v, phi, *, normalize=True, eps=1e-6):
    """The definition, one query and one key at a time (2-D inputs), in float64 Python."""
    t = q.shape[0]
    out = np.zeros((t, v.shape[1]))
    for i in range(t):
        num, den = np.zeros(v.shape[1]), 0.0
        for j in range(i + 1):
            w = float(phi(q[i]) @ phi(k[j]))
            num += w * v[j]
            den += w
        out[i] = num / (den + eps) if normalize else num
    return out


# ---------------------------------------------------------------------------------- feature maps


@pytest.mark.parametrize("fmap", [taylor_feature_map, taylor_feature_map_compact])
@pytest.mark.parametrize("d", [1, 3, 16])
def test_taylor_dot_products_are_second_order_exp(fmap, d):
    q, k = rng.normal(size=(5, d)), rng.normal(size=(7, d))
    s = q @ k.T / math.sqrt(d)
    np.testing.assert_allclose(fmap(q) @ fmap(k).T, 1 + s + s**2 / 2, **TOL)


def test_taylor_sizes_and_compact_equals_full():
    x = rng.normal(size=(2, 3, 16))
    full, compact = taylor_feature_map(x), taylor_feature_map_compact(x)
    assert full.shape == (2, 3, 273) and compact.shape == (2, 3, 153)
    assert feature_map_dim("taylor", 16) == 273 and feature_map_dim("taylor_compact", 16) == 153
    assert full.dtype == compact.dtype == np.float64
    np.testing.assert_allclose(full[..., :17], compact[..., :17], **TOL)  # [1, x / D^(1/4)] shared
    y = rng.normal(size=(4, 16))
    np.testing.assert_allclose(
        np.einsum("abf,cf->abc", full, taylor_feature_map(y)),
        np.einsum("abf,cf->abc", compact, taylor_feature_map_compact(y)), **TOL,
    )


def test_taylor_approximates_exp_near_zero():
    q, k = 0.1 * rng.normal(size=(6, 16)), 0.1 * rng.normal(size=(6, 16))
    approx = taylor_feature_map(q) @ taylor_feature_map(k).T
    exact = np.exp(q @ k.T / 4.0)
    assert np.max(np.abs(approx - exact)) < 1e-4  # the error is O(s^3), s ~ 0.01 here


@pytest.mark.parametrize("name", sorted(FEATURE_MAPS))
def test_every_feature_map_has_its_stated_dim(name):
    for d in (1, 4, 16):
        assert FEATURE_MAPS[name](rng.normal(size=(3, d))).shape == (3, feature_map_dim(name, d))


def test_elementwise_maps():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(FEATURE_MAPS["elu"](x), np.where(x > 0, x + 1, np.exp(x)), **TOL)
    np.testing.assert_allclose(FEATURE_MAPS["relu"](x), np.maximum(x, 0), **TOL)
    np.testing.assert_allclose(FEATURE_MAPS["identity"](x), x, **TOL)
    assert np.all(FEATURE_MAPS["elu"](rng.normal(size=100) * 30) > 0)


# ---------------------------------------------------------------------------------- three forms

ALL_MAPS = sorted(FEATURE_MAPS)


@pytest.mark.parametrize("feature_map", ALL_MAPS)
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("t,chunk", [(1, 4), (13, 4), (23, 5), (17, 1), (9, 32), (12, 12)])
def test_three_forms_agree(feature_map, normalize, t, chunk):
    d = 3 if feature_map.startswith("taylor") else 5
    q, k = rng.normal(size=(2, 3, t, d)), rng.normal(size=(2, 3, t, d))  # batched leading dims
    v = rng.normal(size=(2, 3, t, 4))
    kwargs = dict(feature_map=feature_map, normalize=normalize)
    parallel = linear_attention(q, k, v, form="parallel", **kwargs)
    recurrent = linear_attention(q, k, v, form="recurrent", **kwargs)
    chunked = linear_attention(q, k, v, form="chunked", chunk_size=chunk, **kwargs)
    assert parallel.shape == (2, 3, t, 4) and parallel.dtype == np.float64
    np.testing.assert_allclose(recurrent, parallel, **TOL)
    np.testing.assert_allclose(chunked, parallel, **TOL)


@pytest.mark.parametrize("form", ["parallel", "recurrent", "chunked"])
@pytest.mark.parametrize("feature_map", ["elu", "taylor", "relu"])
@pytest.mark.parametrize("normalize", [True, False])
def test_matches_loop_definition(form, feature_map, normalize):
    q, k, v = rng.normal(size=(9, 4)), rng.normal(size=(9, 4)), rng.normal(size=(9, 3))
    got = linear_attention(q, k, v, feature_map=feature_map, form=form, chunk_size=4, normalize=normalize)
    want = loop_linear_attention(q, k, v, FEATURE_MAPS[feature_map], normalize=normalize)
    np.testing.assert_allclose(got, want, **TOL)


def test_callable_feature_map_and_other_leading_dims():
    def squares(x):
        return np.concatenate([x, x**2], axis=-1)  # (..., D) -> (..., 2D)

    q, k, v = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), rng.normal(size=(6, 2))  # no batch
    got = linear_attention(q, k, v, feature_map=squares, form="chunked", chunk_size=4)
    np.testing.assert_allclose(got, loop_linear_attention(q, k, v, squares), **TOL)
    q4 = rng.normal(size=(2, 1, 2, 5, 3))  # three leading dims
    out = linear_attention(q4, q4, rng.normal(size=(2, 1, 2, 5, 2)), form="recurrent")
    assert out.shape == (2, 1, 2, 5, 2)


def test_identity_unnormalized_is_masked_qkt_times_v():
    q, k, v = rng.normal(size=(2, 11, 4)), rng.normal(size=(2, 11, 4)), rng.normal(size=(2, 11, 3))
    want = (q @ np.swapaxes(k, -1, -2) * np.tril(np.ones((11, 11)))) @ v
    for form in ("parallel", "recurrent", "chunked"):
        np.testing.assert_allclose(linear_attention(q, k, v, form=form, chunk_size=3, normalize=False), want, **TOL)


def test_taylor_normalized_is_close_to_softmax_for_small_scores():
    from linattn_edu.reference import softmax_attention

    q, k, v = 0.1 * rng.normal(size=(10, 16)), 0.1 * rng.normal(size=(10, 16)), rng.normal(size=(10, 4))
    lin = linear_attention(q, k, v, feature_map="taylor", eps=0.0)
    assert np.max(np.abs(lin - softmax_attention(q, k, v))) < 1e-4


@pytest.mark.parametrize("form", ["parallel", "recurrent", "chunked"])
def test_causality_future_tokens_never_change_past_outputs(form):
    q, k, v = rng.normal(size=(1, 20, 4)), rng.normal(size=(1, 20, 4)), rng.normal(size=(1, 20, 3))
    before = linear_attention(q, k, v, feature_map="elu", form=form, chunk_size=6)
    q2, k2, v2 = q.copy(), k.copy(), v.copy()
    q2[:, 13:] += 3.0
    k2[:, 13:] -= 2.0
    v2[:, 13:] *= 5.0
    after = linear_attention(q2, k2, v2, feature_map="elu", form=form, chunk_size=6)
    np.testing.assert_array_equal(after[:, :13], before[:, :13])
    assert not np.allclose(after[:, 13:], before[:, 13:])


def test_accepts_torch_tensors_and_lists():
    q = torch.randn(5, 4, dtype=torch.float64)
    got = linear_attention(q, q, q, feature_map="elu")
    np.testing.assert_allclose(got, linear_attention(q.numpy().tolist(), q.numpy(), q.numpy(), feature_map="elu"), **TOL)


def test_eps_is_added_to_the_denominator():
    q = k = np.zeros((3, 2))  # relu(0) = 0: every weight is zero, so the output is 0 / eps = 0
    out = linear_attention(q, k, np.ones((3, 2)), feature_map="relu", eps=1e-6)
    np.testing.assert_array_equal(out, 0.0)
    out = linear_attention(np.ones((1, 1)), np.ones((1, 1)), np.ones((1, 1)), feature_map="identity", eps=1.0)
    np.testing.assert_allclose(out, [[0.5]], **TOL)  # 1 / (1 + 1)


# ---------------------------------------------------------------------------------- state size


def test_state_bytes_constant_in_t_while_kv_cache_grows():
    state = linear_attention_state_bytes(273, 64, n_heads=8, n_layers=4)
    assert state == 4 * 8 * (273 * 64 + 273) * 2
    assert linear_attention_state_bytes(273, 64, normalize=False, bytes_per_element=4) == 273 * 64 * 4
    caches = [kv_cache_bytes(t, n_layers=4, n_kv_heads=8, head_dim=64) for t in (128, 1024, 8192)]
    assert caches[0] < caches[1] < caches[2]
    # The state does not take a sequence length at all; the recurrent form keeps exactly S and z.
    assert linear_attention_state_bytes(16, 16, bytes_per_element=8) == (16 * 16 + 16) * 8


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(feature_dim=-1, value_dim=4), "feature_dim"),
        (dict(feature_dim=4, value_dim=2.5), "value_dim"),
        (dict(feature_dim=4, value_dim=4, n_heads=-2), "n_heads"),
        (dict(feature_dim=4, value_dim=4, n_layers=None), "n_layers"),
        (dict(feature_dim=4, value_dim=4, bytes_per_element=True), "bytes_per_element"),
    ],
)
def test_state_bytes_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        linear_attention_state_bytes(**kwargs)


# ---------------------------------------------------------------------------------- errors


def _qkv(tq=5, d=4, dv=3):
    return np.zeros((tq, d)), np.zeros((tq, d)), np.zeros((tq, dv))


@pytest.mark.parametrize(
    "args,kwargs,error,match",
    [
        ((np.zeros(4),) + _qkv()[1:], {}, ValueError, r"q must have shape \(\.\.\., T, D\)"),
        ((np.zeros((0, 4)), np.zeros((0, 4)), np.zeros((0, 3))), {}, ValueError, "q must have shape"),
        ((np.zeros((5, 4)), np.zeros((5, 3)), np.zeros((5, 3))), {}, ValueError, "k must have the same shape as q"),
        ((np.zeros((5, 4)), np.zeros((5, 4)), np.zeros((6, 3))), {}, ValueError, "v must have shape"),
        ((np.zeros((2, 5, 4)), np.zeros((2, 5, 4)), np.zeros((3, 5, 3))), {}, ValueError, "v must have shape"),
        ((["a"],) + _qkv()[1:], {}, TypeError, "q must be a numeric array"),
        (_qkv(), {"feature_map": "softmax"}, ValueError, r"feature_map must be .*'elu'.*'taylor'"),
        (_qkv(), {"feature_map": 3}, TypeError, "feature_map must be a callable"),
        (_qkv(), {"feature_map": lambda x: x[..., 0]}, ValueError, r"feature_map must map"),
        (_qkv(), {"form": "fast"}, ValueError, r"form must be one of \['parallel', 'recurrent', 'chunked'\]"),
        (_qkv(), {"form": "chunked", "chunk_size": 0}, ValueError, "chunk_size must be a positive int"),
        (_qkv(), {"chunk_size": 2.0}, ValueError, "chunk_size must be a positive int"),
        (_qkv(), {"normalize": "yes"}, TypeError, "normalize must be a bool"),
        (_qkv(), {"eps": -1.0}, ValueError, "eps must be >= 0"),
        (_qkv(), {"eps": "small"}, TypeError, "eps must be a float"),
    ],
)
def test_bad_input_raises_clear_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        linear_attention(*args, **kwargs)


def test_feature_map_dim_bad_input():
    with pytest.raises(ValueError, match=r"name must be one of .*'taylor_compact'"):
        feature_map_dim("cosine", 4)
    with pytest.raises(ValueError, match="d must be a positive int"):
        feature_map_dim("taylor", 0)
    with pytest.raises(ValueError, match="x must have shape"):
        taylor_feature_map(np.zeros((3, 0)))
