"""Linear attention with decay: recurrent = parallel = chunked for every gate, and the two
chapters it bridges (Chapter 4's linear attention, Chapter 6's scan) as special cases."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from linattn_edu import reference as ref

RNG = np.random.default_rng(0)
B, H, T, DK, DV = 2, 3, 13, 4, 5


def _qkv():
    return RNG.standard_normal((B, H, T, DK)), RNG.standard_normal((B, H, T, DK)), RNG.standard_normal((B, H, T, DV))


def _gates():
    """Every gate structure of the module's table, as (alpha, beta)."""
    gammas = ref.retnet_decays(H)
    return {
        "none": (None, None),
        "retnet": (np.broadcast_to(gammas[None, :, None], (B, H, T)).copy(), None),
        "scalar": (RNG.uniform(0.5, 1.0, (B, H, T)), None),
        "vector": (RNG.uniform(0.5, 1.0, (B, H, T, DK)), None),
        "outer": (RNG.uniform(0.5, 1.0, (B, H, T, DK)), RNG.uniform(0.5, 1.0, (B, H, T, DV))),
    }


@pytest.mark.parametrize("gate", ["none", "retnet", "scalar", "vector", "outer"])
@pytest.mark.parametrize("chunk", [1, 4, 5, 13, 64])
def test_forms_agree(gate, chunk):
    q, k, v = _qkv()
    alpha, beta = _gates()[gate]
    rec, S_rec = ref.decay_linear_attention(q, k, v, alpha, beta, form="recurrent", return_state=True)
    par, S_par = ref.decay_linear_attention(q, k, v, alpha, beta, form="parallel", return_state=True)
    chk, S_chk = ref.decay_linear_attention(q, k, v, alpha, beta, form="chunked", chunk_size=chunk,
                                           return_state=True)
    assert_allclose(par, rec, rtol=1e-10, atol=1e-10)
    assert_allclose(chk, rec, rtol=1e-10, atol=1e-10)
    assert_allclose(S_par, S_rec, rtol=1e-10, atol=1e-10)
    assert_allclose(S_chk, S_rec, rtol=1e-10, atol=1e-10)


def test_recurrence_by_hand():
    """One step of S_t = (α βᵀ) ⊙ S_{t-1} + k vᵀ, o = Sᵀ q, written out."""
    q, k, v = _qkv()
    alpha, beta = _gates()["outer"]
    out = ref.decay_linear_attention(q, k, v, alpha, beta)
    S = np.zeros((DK, DV))
    for t in range(T):
        S = np.outer(alpha[0, 1, t], beta[0, 1, t]) * S + np.outer(k[0, 1, t], v[0, 1, t])
        assert_allclose(out[0, 1, t], S.T @ q[0, 1, t], rtol=1e-12, atol=1e-12)


def test_no_decay_is_chapter_4_linear_attention():
    q, k, v = _qkv()
    expected = ref.linear_attention(q, k, v, feature_map="identity", normalize=False)
    assert_allclose(ref.decay_linear_attention(q, k, v, form="chunked", chunk_size=4), expected,
                    rtol=1e-10, atol=1e-10)


def test_rg_lru_scan_is_the_value_gated_case_with_one_key_channel():
    a = RNG.uniform(0.3, 0.999, (B, T, DV))
    b = RNG.standard_normal((B, T, DV))
    h, _ = ref.linear_scan(a, b)
    ones = np.ones((B, T, 1))
    for form in ref.DECAY_FORMS:
        assert_allclose(ref.decay_linear_attention(ones, ones, b, beta=a, form=form), h, rtol=1e-10, atol=1e-10)


def test_causal_and_resumable():
    q, k, v = _qkv()
    alpha, beta = _gates()["vector"]
    out = ref.decay_linear_attention(q, k, v, alpha, form="chunked", chunk_size=4)
    v2 = v.copy()
    v2[..., 9:, :] += 100.0
    out2 = ref.decay_linear_attention(q, k, v2, alpha, form="chunked", chunk_size=4)
    assert_allclose(out2[..., :9, :], out[..., :9, :], rtol=0, atol=1e-12)
    assert not np.allclose(out2[..., 9:, :], out[..., 9:, :])
    # two halves with the state handed over = the whole sequence
    first, S = ref.decay_linear_attention(q[..., :6, :], k[..., :6, :], v[..., :6, :], alpha[..., :6, :],
                                          return_state=True)
    second = ref.decay_linear_attention(q[..., 6:, :], k[..., 6:, :], v[..., 6:, :], alpha[..., 6:, :],
                                        form="chunked", chunk_size=3, initial_state=S)
    assert_allclose(np.concatenate([first, second], axis=-2), out, rtol=1e-10, atol=1e-10)


def test_retnet_decays():
    g = ref.retnet_decays(4)
    assert_allclose(g, [1 - 2 ** -5, 1 - 2 ** -6, 1 - 2 ** -7, 1 - 2 ** -8])
    with pytest.raises(ValueError, match="n_heads"):
        ref.retnet_decays(0)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"alpha": np.zeros((B, H, T))}, ValueError, r"alpha must lie in \(0, 1\]"),
        ({"alpha": np.full((B, H, T), 1.5)}, ValueError, "alpha must lie"),
        ({"beta": np.ones((B, H, T, DV + 1))}, ValueError, "beta must have shape"),
        ({"alpha": np.ones((B, H, T - 1))}, ValueError, "alpha must have shape"),
        ({"form": "fft"}, ValueError, "form must be one of"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"form": "parallel", "initial_state": np.zeros((B, H, DK, DV))}, ValueError, "initial_state"),
        ({"initial_state": np.zeros((DK, DV))}, ValueError, "initial_state must have shape"),
    ],
)
def test_bad_input(kwargs, error, message):
    q, k, v = _qkv()
    with pytest.raises(error, match=message):
        ref.decay_linear_attention(q, k, v, **kwargs)


def test_bad_shapes_and_types():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="k must have the same shape"):
        ref.decay_linear_attention(q, k[..., :2], v)
    with pytest.raises(ValueError, match="v must have shape"):
        ref.decay_linear_attention(q, k, v[..., :3, :])
    with pytest.raises(TypeError, match="q must be a real array"):
        ref.decay_linear_attention(np.array([["a"]]), k, v)
