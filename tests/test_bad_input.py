"""Property-based tests: bad input gets a clear error naming the argument, never a silent wrong result.

One group per public entry point changed for issue 17 (item 5). Hypothesis draws the bad (or
valid but unusual) input; each test states what must happen. Small shapes; the Triton kernels run
in the interpreter on a CPU (tests/conftest.py), with few examples.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linattn_edu import reference as ref
from linattn_edu.checks import ArgumentTypeError, check_bool, check_float, check_int
from linattn_edu.models import build_model, feature_map_torch, generate
from linattn_edu.models.common import check_tokens
from linattn_edu.tasks.mqar import make_mqar, mqar_query_slots
from linattn_edu.train import cosine_lr, evaluate_perplexity, train_lm

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KERNEL = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NP_INT_TYPES = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
np_int_type = st.sampled_from(NP_INT_TYPES)
not_an_int = st.one_of(
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.none(),
    st.just(np.float64(2.0)),
    st.just(np.bool_(True)),
)
non_finite = st.sampled_from([math.nan, math.inf, -math.inf, np.float32("nan"), np.float64("inf")])


def kernels():
    from linattn_edu import kernels as k

    return k


# ------------------------------------------------------------------------------------------------
# linattn_edu.checks: the one place scalar arguments are checked
# ------------------------------------------------------------------------------------------------


@FAST
@given(value=st.integers(0, 120), kind=np_int_type)
def test_check_int_accepts_numpy_integers_as_ints(value, kind):
    out = check_int(kind(value), "n", minimum=0)
    assert out == value and type(out) is int


@FAST
@given(value=not_an_int)
def test_check_int_rejects_non_ints_naming_the_argument(value):
    with pytest.raises(ArgumentTypeError, match="n_heads"):
        check_int(value, "n_heads", minimum=1)
    # ArgumentTypeError is both: old `except ValueError` and new `except TypeError` callers work
    assert issubclass(ArgumentTypeError, ValueError) and issubclass(ArgumentTypeError, TypeError)


@FAST
@given(value=st.integers(-50, 0))
def test_check_int_rejects_values_below_the_minimum(value):
    with pytest.raises(ValueError, match="seq_len must be a positive int"):
        check_int(value, "seq_len", minimum=1)


@FAST
@given(value=non_finite)
def test_check_float_rejects_non_finite(value):
    with pytest.raises(ValueError, match="lr must be a finite number"):
        check_float(value, "lr", minimum=0.0, strict=True)


@FAST
@given(value=st.floats(1e-6, 1e6), kind=st.sampled_from([float, np.float32, np.float64]))
def test_check_float_accepts_numpy_floats(value, kind):
    assert check_float(kind(value), "eps", minimum=0.0) == pytest.approx(float(kind(value)))


@FAST
@given(value=st.one_of(st.integers(), st.text(max_size=3), st.none(), st.floats()))
def test_check_bool_rejects_truthy_non_bools(value):
    with pytest.raises(TypeError, match="causal must be a bool"):
        check_bool(value, "causal")


# ------------------------------------------------------------------------------------------------
# reference.softmax_attention / attention_mask / alibi_attention
# ------------------------------------------------------------------------------------------------


def _qkv(t: int, d: int = 4, seed: int = 0, lead: tuple[int, ...] = (2,)):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(lead + (t, d)) for _ in range(3))


@FAST
@given(t=st.integers(2, 9), bad=st.integers(1, 8), window=st.one_of(st.none(), st.integers(1, 9)),
       poison=st.sampled_from([math.nan, math.inf]), seed=st.integers(0, 50))
def test_softmax_attention_non_finite_future_value_stays_out_of_earlier_rows(t, bad, window, poison, seed):
    bad = min(bad, t - 1)
    q, k, v = _qkv(t, seed=seed)
    v_bad = v.copy()
    v_bad[:, bad] = poison
    out = ref.softmax_attention(q, k, v_bad, window=window)
    clean = ref.softmax_attention(q, k, v, window=window)
    np.testing.assert_allclose(out[:, :bad], clean[:, :bad], rtol=1e-12, atol=1e-12)  # rows that cannot see it
    assert not np.isfinite(out[:, bad]).all()  # the row that sees it does


@FAST
@given(t=st.integers(1, 8), window=st.one_of(st.none(), st.integers(1, 8)), seed=st.integers(0, 50))
def test_softmax_attention_equals_the_plain_formula_for_finite_inputs(t, window, seed):
    q, k, v = _qkv(t, seed=seed)
    mask = ref.attention_mask(t, t, window=window)
    scores = np.where(mask, q @ np.swapaxes(k, -1, -2) / 2.0, -np.inf)
    np.testing.assert_allclose(ref.softmax_attention(q, k, v, window=window), ref.softmax(scores) @ v, rtol=1e-12, atol=1e-12)


@FAST
@given(scale=non_finite)
def test_softmax_attention_rejects_non_finite_scale(scale):
    q, k, v = _qkv(4)
    with pytest.raises(ValueError, match="scale"):
        ref.softmax_attention(q, k, v, scale=scale)
    with pytest.raises(ValueError, match="scale"):
        ref.alibi_attention(q[None], k[None], v[None], scale=scale)


@FAST
@given(window=st.integers(1, 6), kind=np_int_type)
def test_window_accepts_numpy_ints_and_rejects_bools(window, kind):
    q, k, v = _qkv(6)
    np.testing.assert_array_equal(ref.softmax_attention(q, k, v, window=kind(window)), ref.softmax_attention(q, k, v, window=window))
    np.testing.assert_array_equal(ref.attention_mask(kind(6), kind(6), window=kind(window)), ref.attention_mask(6, 6, window=window))
    for flag in (True, np.bool_(True)):
        with pytest.raises(ValueError, match="window"):
            ref.softmax_attention(q, k, v, window=flag)


@FAST
@given(causal=st.one_of(st.text(max_size=3), st.none(), st.integers(0, 3)))
def test_causal_must_be_a_bool(causal):
    q, k, v = _qkv(3)
    with pytest.raises(TypeError, match="causal"):
        ref.softmax_attention(q, k, v, causal=causal)


def test_softmax_attention_rejects_empty_head_dim():
    with pytest.raises(ValueError, match="D >= 1"):
        ref.softmax_attention(np.ones((2, 4, 0)), np.ones((2, 4, 0)), np.ones((2, 4, 3)))


@FAST
@given(n_rep=not_an_int)
def test_repeat_kv_rejects_non_int_n_rep(n_rep):
    with pytest.raises(ValueError, match="n_rep"):
        ref.repeat_kv(np.ones((2, 3, 4)), n_rep)


@FAST
@given(bad=non_finite, head=st.integers(0, 1))
def test_alibi_attention_rejects_non_finite_slopes(bad, head):
    q, k, v = _qkv(4, lead=(1, 2))
    slopes = ref.alibi_slopes(2)
    slopes[head] = bad
    with pytest.raises(ValueError, match="slopes must be finite"):
        ref.alibi_attention(q, k, v, slopes=slopes)


@FAST
@given(kind=np_int_type, n=st.integers(1, 12))
def test_alibi_slopes_and_kv_cache_bytes_accept_numpy_ints(kind, n):
    np.testing.assert_array_equal(ref.alibi_slopes(kind(n)), ref.alibi_slopes(n))
    got = ref.kv_cache_bytes(kind(n), n_layers=kind(2), n_kv_heads=2, head_dim=kind(4))
    assert got == ref.kv_cache_bytes(n, n_layers=2, n_kv_heads=2, head_dim=4) and type(got) is int


# ------------------------------------------------------------------------------------------------
# reference.linear_attention and the feature maps
# ------------------------------------------------------------------------------------------------

FORMS = ("parallel", "recurrent", "chunked")
MAPS = ("identity", "elu", "relu", "taylor", "taylor_compact")


@FAST
@given(t=st.integers(1, 7), zero_rows=st.lists(st.integers(0, 6), max_size=4), form=st.sampled_from(FORMS),
       chunk=st.integers(1, 4), seed=st.integers(0, 50))
def test_linear_attention_eps_zero_gives_zero_rows_not_nan(t, zero_rows, form, chunk, seed):
    """relu features of a query with no positive entry: every weight 0, so 0 / 0 -> 0 (the eps -> 0 limit)."""
    rng = np.random.default_rng(seed)
    q, k, v = rng.standard_normal((t, 3)), rng.standard_normal((t, 3)), rng.standard_normal((t, 2))
    for r in zero_rows:
        if r < t:
            q[r] = -np.abs(q[r])  # relu(q_r) = 0
    out = ref.linear_attention(q, k, v, feature_map="relu", form=form, chunk_size=chunk, eps=0.0)
    assert np.isfinite(out).all()
    tiny = ref.linear_attention(q, k, v, feature_map="relu", form="recurrent", eps=1e-300)
    np.testing.assert_allclose(out, tiny, rtol=1e-9, atol=1e-12)


@FAST
@given(t=st.integers(2, 7), bad=st.integers(1, 6), fm=st.sampled_from(MAPS), form=st.sampled_from(FORMS),
       chunk=st.integers(1, 4), where=st.sampled_from(["k", "v"]), seed=st.integers(0, 50))
def test_linear_attention_nan_in_a_later_key_or_value_stays_out_of_earlier_rows(t, bad, fm, form, chunk, where, seed):
    bad = min(bad, t - 1)
    q, k, v = _qkv(t, d=3, seed=seed)
    poisoned = {"k": k.copy(), "v": v.copy()}
    poisoned[where][:, bad] = np.nan
    out = ref.linear_attention(q, poisoned["k"], poisoned["v"], feature_map=fm, form=form, chunk_size=chunk)
    clean = ref.linear_attention(q[:, :bad], k[:, :bad], v[:, :bad], feature_map=fm)
    np.testing.assert_allclose(out[:, :bad], clean, rtol=1e-9, atol=1e-12)


@FAST
@given(eps=st.one_of(non_finite, st.floats(-10, -1e-9)))
def test_linear_attention_rejects_negative_or_non_finite_eps(eps):
    q, k, v = _qkv(3)
    with pytest.raises(ValueError, match="eps"):
        ref.linear_attention(q, k, v, eps=eps)


@FAST
@given(chunk=np_int_type, size=st.integers(1, 5))
def test_linear_attention_chunk_size_accepts_numpy_ints(chunk, size):
    q, k, v = _qkv(6)
    np.testing.assert_array_equal(ref.linear_attention(q, k, v, form="chunked", chunk_size=chunk(size)),
                                  ref.linear_attention(q, k, v, form="chunked", chunk_size=size))


@FAST
@given(d=st.integers(1, 6), scale=st.floats(1e-3, 1e150), seed=st.integers(0, 50))
def test_taylor_maps_keep_the_exponential_approximation_and_stay_finite(d, scale, seed):
    """φ(q)·φ(k) = 1 + s + s²/2 with s = q·k/√D; scaling before the outer product keeps big inputs finite."""
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal(d), rng.standard_normal(d)
    s = q @ k / math.sqrt(d)
    for fm in (ref.taylor_feature_map, ref.taylor_feature_map_compact):
        assert fm(q) @ fm(k) == pytest.approx(1 + s + s * s / 2, rel=1e-9, abs=1e-12)
        big = fm(q * scale)
        assert np.isfinite(big).all()


@FAST
@given(value=st.floats(-600.0, 600.0), d=st.sampled_from([4, 16]), fm=st.sampled_from(["taylor", "taylor_compact"]))
def test_feature_map_torch_taylor_fp16_does_not_overflow_while_the_features_fit(value, d, fm):
    """fp16: x xᵀ overflows at |x| >= 256, the scaled features (x/c)(x/c)ᵀ only past |x| ≈ 256·(2d)^{1/4}."""
    x = torch.full((1, d), value, dtype=torch.float16)
    expected = ref.FEATURE_MAPS[fm](x.double().numpy())
    if np.abs(expected).max() > 6.0e4:  # the true features do not fit in fp16 (max 65504)
        return
    got = feature_map_torch(x, fm).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-3)


def test_feature_map_torch_rejects_an_empty_feature_axis():
    with pytest.raises(ValueError, match="d >= 1"):
        feature_map_torch(torch.ones(2, 0), "taylor")


# ------------------------------------------------------------------------------------------------
# kernels (the Triton interpreter on a CPU)
# ------------------------------------------------------------------------------------------------


def _flash_inputs(seed: int, t: int = 16, d: int = 16, h: int = 2):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(1, h, t, d, generator=g) for _ in range(3))


@KERNEL
@given(scale=non_finite, backend=st.sampled_from([None, "torch"]))
def test_flash_attention_rejects_non_finite_scale(scale, backend):
    q, k, v = _flash_inputs(0)
    with pytest.raises(ValueError, match="scale"):
        kernels().flash_attention(q, k, v, scale=scale, backend=backend)


@KERNEL
@given(window=st.integers(1, 16), kind=np_int_type, seed=st.integers(0, 20))
def test_flash_attention_window_accepts_numpy_ints(window, kind, seed):
    q, k, v = _flash_inputs(seed)
    K = kernels()
    torch.testing.assert_close(K.flash_attention(q, k, v, window=kind(window)), K.flash_attention(q, k, v, window=window))


@pytest.mark.parametrize("bad", [dict(window=True), dict(causal="yes"), dict(causal=None), dict(scale=True)])
def test_flash_attention_rejects_bools_and_truthy_flags(bad):
    q, k, v = _flash_inputs(0)
    name = next(iter(bad))
    with pytest.raises((ValueError, TypeError), match=name):
        kernels().flash_attention(q, k, v, **bad)


@pytest.mark.parametrize("backend", [None, "torch"])
def test_flash_attention_rejects_empty_head_dim(backend):
    q = torch.zeros(1, 2, 4, 0)
    with pytest.raises(ValueError, match="D >= 1"):
        kernels().flash_attention(q, q, q, backend=backend)


def test_flash_attention_alibi_slopes_requiring_grad_raise_on_the_kernel_path():
    q, k, v = _flash_inputs(1)
    K = kernels()
    slopes = torch.tensor(ref.alibi_slopes(2), dtype=torch.float32, requires_grad=True)
    if K.kernel_backend(q) == "torch":  # pragma: no cover - only without Triton
        pytest.skip("no Triton backend here")
    with pytest.raises(ValueError, match="alibi_slopes requires grad"):
        K.flash_attention(q, k, v, alibi_slopes=slopes)
    with torch.no_grad():  # inference with a Parameter is fine
        K.flash_attention(q, k, v, alibi_slopes=slopes)
    K.flash_attention(q, k, v, alibi_slopes=slopes.detach())
    out = K.flash_attention(q, k, v, alibi_slopes=slopes, backend="torch")  # the torch path differentiates them
    out.sum().backward()
    assert slopes.grad is not None and torch.isfinite(slopes.grad).all()


@KERNEL
@given(zero_rows=st.lists(st.integers(0, 15), min_size=1, max_size=5), backend=st.sampled_from([None, "torch"]),
       seed=st.integers(0, 20))
def test_chunked_linear_attention_eps_zero_matches_the_reference(zero_rows, backend, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.rand(1, 2, 16, 4, generator=g), torch.rand(1, 2, 16, 4, generator=g)
    v = torch.randn(1, 2, 16, 4, generator=g)
    q[:, :, zero_rows] = 0.0  # φ(q) = 0: the denominator is exactly 0 with eps = 0
    q.requires_grad_(True)
    out = kernels().chunked_linear_attention(q, k, v, chunk_size=16, eps=0.0, backend=backend)
    expected = ref.linear_attention(q.detach(), k, v, eps=0.0)
    np.testing.assert_allclose(out.detach().double().numpy(), expected, rtol=2e-4, atol=2e-5)
    out.sum().backward()
    assert torch.isfinite(q.grad).all()


def test_linear_attention_step_eps_zero_gives_zero_not_nan():
    z = torch.zeros(1, 2, 4)
    v = torch.randn(1, 2, 3)
    o, _ = kernels().linear_attention_step(z, z, v, eps=0.0)
    assert torch.equal(o, torch.zeros_like(o))


@KERNEL
@given(eps=st.one_of(non_finite, st.floats(-5, -1e-9)), chunk=np_int_type)
def test_chunked_linear_attention_rejects_bad_eps_and_accepts_numpy_chunk_size(eps, chunk):
    q = torch.rand(1, 1, 16, 4)
    K = kernels()
    with pytest.raises(ValueError, match="eps"):
        K.chunked_linear_attention(q, q, q, eps=eps)
    with pytest.raises(ValueError, match="eps"):
        K.linear_attention_step(q[:, :, 0], q[:, :, 0], q[:, :, 0], eps=eps)
    torch.testing.assert_close(K.chunked_linear_attention(q, q, q, chunk_size=chunk(16)), K.chunked_linear_attention(q, q, q, chunk_size=16))


@KERNEL
@given(magnitude=st.floats(1.001, 1e30), sign=st.sampled_from([1.0, -1.0]), t=st.integers(1, 40))
def test_linear_scan_rejects_unstable_decay_on_the_kernel_path(magnitude, sign, t):
    K = kernels()
    a = torch.rand(1, t, 3) * 0.5
    a[0, t // 2, 1] = sign * magnitude
    b = torch.zeros(1, t, 3)
    with pytest.raises(ValueError, match=r"a must satisfy \|a\| <= 1"):
        K.linear_scan(a, b)
    h, _ = K.linear_scan(a, b, backend="torch")  # the loop takes any real: 0 stays 0
    assert torch.equal(h, torch.zeros_like(h))


@KERNEL
@given(t=st.integers(1, 40), seed=st.integers(0, 20))
def test_linear_scan_matches_the_loop_on_its_domain(t, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(1, t, 3, generator=g) * 2 - 1  # |a| <= 1, signs included
    a[0, 0, 0] = 1.0
    b = torch.randn(1, t, 3, generator=g)
    K = kernels()
    torch.testing.assert_close(K.linear_scan(a, b)[0], K.linear_scan(a, b, backend="torch")[0], rtol=1e-5, atol=1e-5)


@KERNEL
@given(block=st.sampled_from([16, 32, 64]), kind=np_int_type)
def test_vector_add_block_size_accepts_numpy_ints(block, kind):
    x = torch.arange(40.0)
    torch.testing.assert_close(kernels().vector_add(x, x, block_size=kind(block)), 2 * x)


# ------------------------------------------------------------------------------------------------
# models.check_tokens / generate
# ------------------------------------------------------------------------------------------------


@FAST
@given(vocab=st.one_of(not_an_int, st.integers(-3, 0)))
def test_check_tokens_rejects_a_bad_vocab_size(vocab):
    with pytest.raises(ValueError, match="vocab_size"):
        check_tokens(torch.zeros(2, 3, dtype=torch.long), vocab)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_model("transformer", vocab_size=16, d_model=16, n_layers=1, n_heads=2)


@settings(max_examples=10, deadline=None)
@given(temperature=st.one_of(non_finite, st.floats(-5, -1e-6)), n=np_int_type)
def test_generate_rejects_bad_temperature_and_accepts_numpy_lengths(tiny_model, temperature, n):
    prompt = torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="temperature"):
        generate(tiny_model, prompt, 2, temperature=temperature)
    assert generate(tiny_model, prompt, n(2)).shape == (1, 4)


# ------------------------------------------------------------------------------------------------
# train_lm / evaluate_perplexity / cosine_lr
# ------------------------------------------------------------------------------------------------


def _stream(n: int = 120, vocab: int = 16) -> torch.Tensor:
    return torch.arange(n) % vocab


@settings(max_examples=8, deadline=None)
@given(position=st.integers(0, 119), excess=st.integers(0, 100))
def test_train_lm_rejects_an_id_outside_the_vocabulary_anywhere(tiny_model, position, excess):
    """Also an id that is only ever a target (the last token): torch would say 'Target 40 is out of bounds'."""
    tokens = _stream()
    tokens[position] = 16 + excess
    with pytest.raises(ValueError, match="train_tokens holds id .* vocab_size=16"):
        train_lm(tiny_model, tokens, seq_len=8, batch_size=2, steps=1, progress=False, device="cpu")
    with pytest.raises(ValueError, match="eval_tokens holds id"):
        train_lm(tiny_model, _stream(), seq_len=8, batch_size=2, steps=1, progress=False, device="cpu",
                 eval_tokens=tokens, eval_every=1)
    with pytest.raises(ValueError, match="tokens holds id"):
        evaluate_perplexity(tiny_model, tokens, context_len=8, device="cpu")


class _NoVocabAttr(torch.nn.Module):
    """A model without ``vocab_size``: train_lm learns the vocabulary from its logits."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.emb(x)


def test_train_lm_checks_targets_against_the_logits_without_a_vocab_attribute():
    tokens = _stream()
    tokens[-1] = 40  # only ever a target
    with pytest.raises(ValueError, match="train_tokens holds id 40"):
        train_lm(_NoVocabAttr(), tokens, seq_len=8, batch_size=2, steps=3, progress=False, device="cpu")
    with pytest.raises(ValueError, match="tokens holds id 40"):
        evaluate_perplexity(_NoVocabAttr(), torch.cat([_stream(), torch.tensor([40, 40])]), context_len=8, device="cpu")


@settings(max_examples=15, deadline=None)
@given(name=st.sampled_from(["lr", "weight_decay", "grad_clip", "min_lr_ratio"]),
       value=st.one_of(non_finite, st.floats(-10, -1e-9), st.booleans(), st.text(max_size=2)))
def test_train_lm_rejects_non_finite_or_negative_hyperparameters(tiny_model, name, value):
    with pytest.raises(ValueError, match=name):
        train_lm(tiny_model, _stream(), seq_len=8, batch_size=2, steps=1, progress=False, device="cpu", **{name: value})


@settings(max_examples=5, deadline=None)
@given(kind=np_int_type, lr=st.sampled_from([np.float32(1e-3), np.float64(1e-3)]))
def test_train_lm_accepts_numpy_scalars(kind, lr):
    torch.manual_seed(0)
    model = build_model("transformer", vocab_size=16, d_model=16, n_layers=1, n_heads=2)
    hist = train_lm(model, _stream(), seq_len=kind(8), batch_size=kind(2), steps=kind(2), lr=lr, progress=False, device="cpu")
    assert len(hist["loss"]) == 2 and all(math.isfinite(x) for x in hist["loss"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_names_the_device(tiny_model):
    with pytest.raises(ValueError, match="device='cuda' but CUDA is not available"):
        train_lm(tiny_model, _stream(), seq_len=8, batch_size=2, steps=1, progress=False, device="cuda")
    with pytest.raises(ValueError, match="device"):
        evaluate_perplexity(tiny_model, _stream(), context_len=8, device="cuda:0")


@FAST
@given(bad=st.sampled_from([dict(steps=0), dict(warmup=-1), dict(lr=math.nan), dict(lr=0.0), dict(min_lr_ratio=1.5),
                            dict(step=-1), dict(steps=True)]))
def test_cosine_lr_names_a_bad_argument(bad):
    args = dict(step=0, steps=10, lr=1e-3, warmup=2)
    args.update(bad)
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        cosine_lr(args.pop("step"), **args)


# ------------------------------------------------------------------------------------------------
# tasks.make_mqar / mqar_query_slots
# ------------------------------------------------------------------------------------------------


@FAST
@given(alpha=st.one_of(non_finite, st.floats(-5, 0), st.booleans()))
def test_make_mqar_rejects_non_finite_or_non_positive_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        make_mqar(2, seq_len=16, n_pairs=2, vocab_size=32, seed=0, alpha=alpha)
    with pytest.raises(ValueError, match="alpha"):
        mqar_query_slots(2, n_slots=4, n_queries=2, alpha=alpha, rng=np.random.default_rng(0))


@FAST
@given(kind=np_int_type, seed=st.integers(0, 100))
def test_make_mqar_numpy_ints_give_the_same_data(kind, seed):
    a = make_mqar(kind(3), seq_len=kind(16), n_pairs=kind(2), vocab_size=kind(40), seed=kind(seed))
    b = make_mqar(3, seq_len=16, n_pairs=2, vocab_size=40, seed=seed)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_mqar_query_slots_names_a_missing_generator():
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        mqar_query_slots(2, n_slots=4, n_queries=2, rng=None)
