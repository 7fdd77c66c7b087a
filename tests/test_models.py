"""The model zoo's Transformer: shapes, decode == forward, causality, position encodings, errors."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from linattn_edu import models
from linattn_edu.models import (
    KVCache,
    POSITION_ENCODINGS,
    apply_rope,
    available_models,
    build_model,
    cache_bytes,
    count_parameters,
    generate,
    register_model,
    rope_cos_sin,
    sinusoidal_positions,
)
from linattn_edu.reference import alibi_attention, alibi_slopes, softmax_attention

V = 13


def tiny(pos="alibi", **options):
    """A float64 model on the PyTorch attention path (exact and fast on a CPU)."""
    options.setdefault("attn_backend", "torch")
    return build_model("transformer", vocab_size=V, d_model=32, n_layers=2, n_heads=4, pos=pos, **options).double().eval()


def decode_all(model, tokens, n_prompt):
    """Logits for every position by prefill(tokens[:, :n_prompt]) then step() per token."""
    logits, cache = model.prefill(tokens[:, :n_prompt])
    out = [logits]
    for t in range(n_prompt, tokens.shape[1]):
        step_logits, cache = model.step(tokens[:, t], cache)
        out.append(step_logits[:, None])
    return torch.cat(out, dim=1), cache


def test_registry_lists_transformer():
    assert "transformer" in available_models()
    assert set(POSITION_ENCODINGS) == {"alibi", "rope", "sinusoidal", "learned", "none"}


@pytest.mark.parametrize("pos", POSITION_ENCODINGS)
def test_forward_shape_and_config(pos):
    model = build_model("transformer", vocab_size=V, d_model=32, n_layers=2, n_heads=2, pos=pos, attn_backend="torch")
    assert model.kind == "transformer"
    assert model.config.pos == pos and model.config.n_kv_heads == 2 and model.config.max_len == 1024
    logits = model(torch.randint(0, V, (3, 10)))
    assert logits.shape == (3, 10, V) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("pos", POSITION_ENCODINGS)
@pytest.mark.parametrize("extra", [{}, {"n_kv_heads": 2, "norm": "rmsnorm"}, {"window": 3, "n_kv_heads": 1}])
def test_step_by_step_decoding_equals_forward(pos, extra):
    torch.manual_seed(1)
    model = tiny(pos, max_len=64, **extra)
    tokens = torch.randint(0, V, (2, 11))
    full = model(tokens)
    incremental, cache = decode_all(model, tokens, n_prompt=4)
    torch.testing.assert_close(incremental, full, atol=1e-12, rtol=0)
    assert cache.position == 11
    expected_len = 11 if "window" not in extra else extra["window"]
    assert cache.seq_len == expected_len  # a sliding window caps the cache


def test_chunked_prefill_equals_forward():
    model = tiny("rope")
    tokens = torch.randint(0, V, (2, 12))
    logits_a, cache = model.prefill(tokens[:, :5])
    logits_b, cache = model.prefill(tokens[:, 5:], cache)  # queries at the end of the cached keys
    torch.testing.assert_close(torch.cat([logits_a, logits_b], 1), model(tokens), atol=1e-12, rtol=0)


@pytest.mark.parametrize("pos", POSITION_ENCODINGS)
def test_future_tokens_never_change_past_logits(pos):
    model = tiny(pos)
    a = torch.randint(0, V, (1, 12))
    b = a.clone()
    b[0, 7:] = (b[0, 7:] + 1 + torch.randint(0, V - 1, (5,))) % V  # change every token from 7 on
    la, lb = model(a), model(b)
    torch.testing.assert_close(la[:, :7], lb[:, :7], atol=1e-12, rtol=0)
    assert (la[:, 7:] - lb[:, 7:]).abs().max() > 1e-6  # ...but the future ones do change


def test_step_does_not_modify_the_cache_it_gets():
    model = tiny()
    tokens = torch.randint(0, V, (2, 6))
    _, cache = model.prefill(tokens)
    before = [k.clone() for k in cache.keys]
    la, cache_a = model.step(torch.tensor([1, 2]), cache)
    lb, cache_b = model.step(torch.tensor([1, 2]), cache)  # branching from the same cache
    torch.testing.assert_close(la, lb)
    assert cache.position == 6 and cache_a.position == 7
    for k0, k1 in zip(before, cache.keys):
        assert torch.equal(k0, k1)


def test_decode_calls_flash_attention_with_one_query(monkeypatch):
    """The model's attention goes through linattn_edu.kernels.flash_attention, end-aligned, with ALiBi."""
    import linattn_edu.kernels as kernels

    calls = []
    real = kernels.flash_attention

    def spy(q, k, v, **kw):
        calls.append((q.shape[2], k.shape[2], kw))
        return real(q, k, v, **kw)

    monkeypatch.setattr(kernels, "flash_attention", spy)
    model = tiny("alibi")
    _, cache = model.prefill(torch.randint(0, V, (1, 5)))
    model.step(torch.tensor([3]), cache)
    assert [(tq, tk) for tq, tk, _ in calls] == [(5, 5), (5, 5), (1, 6), (1, 6)]
    for _, _, kw in calls:
        assert kw["causal"] is True
        np.testing.assert_allclose(kw["alibi_slopes"].numpy(), alibi_slopes(4))


def test_alibi_attention_layer_matches_numpy_reference():
    """One attention sublayer against reference.alibi_attention on the same projections."""
    model = tiny("alibi", n_kv_heads=2)
    attn = model.blocks[0].attn
    x = torch.randn(2, 9, 32, dtype=torch.float64)
    out, _ = attn(x, slopes=model.alibi_slopes)
    cfg = model.config
    q = attn.q_proj(x).view(2, 9, 4, 8).transpose(1, 2)
    k, v = attn.kv_proj(x).view(2, 9, 2, 2, 8).permute(2, 0, 3, 1, 4)
    ref = alibi_attention(q.detach().numpy(), k.detach().numpy(), v.detach().numpy())
    ref = torch.from_numpy(ref).transpose(1, 2).reshape(2, 9, cfg.d_model)
    torch.testing.assert_close(out, attn.out_proj(ref), atol=1e-6, rtol=0)  # slopes pass through fp32
    no_alibi = torch.from_numpy(softmax_attention(q.detach().numpy(), k.detach().numpy(), v.detach().numpy()))
    no_alibi = attn.out_proj(no_alibi.transpose(1, 2).reshape(2, 9, cfg.d_model))
    assert (out - no_alibi).abs().max() > 1e-4


def test_rope_scores_depend_on_relative_position_only():
    d = 8
    q, k = torch.randn(1, 1, 1, d, dtype=torch.float64), torch.randn(1, 1, 1, d, dtype=torch.float64)

    def score(i, j):
        ci, si = rope_cos_sin(torch.tensor([i]), d, dtype=torch.float64)
        cj, sj = rope_cos_sin(torch.tensor([j]), d, dtype=torch.float64)
        return float((apply_rope(q, ci, si) * apply_rope(k, cj, sj)).sum())

    assert score(5, 2) == pytest.approx(score(103, 100), abs=1e-10)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-6)
    c0, s0 = rope_cos_sin(torch.tensor([0]), d, dtype=torch.float64)
    torch.testing.assert_close(apply_rope(q, c0, s0), q)  # position 0 is the identity
    # rotate-half: channels k and k + D/2 rotate together by angle p * base^(-2k/D)
    c, s = rope_cos_sin(torch.tensor([3]), d, dtype=torch.float64)
    assert float(c[0, 1]) == pytest.approx(np.cos(3 * 10000 ** (-2 / d)))
    assert float(c[0, 1 + d // 2]) == float(c[0, 1])


def test_sinusoidal_values():
    pe = sinusoidal_positions(torch.arange(5), 6)
    assert pe.shape == (5, 6) and pe.dtype == torch.float64
    torch.testing.assert_close(pe[0], torch.tensor([0.0, 1.0] * 3, dtype=torch.float64))
    assert float(pe[3, 0]) == pytest.approx(np.sin(3.0)) and float(pe[3, 1]) == pytest.approx(np.cos(3.0))
    assert float(pe[4, 2]) == pytest.approx(np.sin(4 * 10000 ** (-2 / 6)))


def test_learned_table_too_short_raises_naming_max_len():
    model = tiny("learned", max_len=8)
    model(torch.randint(0, V, (1, 8)))  # exactly max_len is fine
    with pytest.raises(ValueError, match="max_len=8"):
        model(torch.randint(0, V, (1, 9)))
    _, cache = model.prefill(torch.randint(0, V, (1, 8)))
    with pytest.raises(ValueError, match="max_len=8"):
        model.step(torch.tensor([0]), cache)


@pytest.mark.parametrize("pos", ["sinusoidal", "rope", "alibi", "none"])
def test_other_encodings_run_past_max_len(pos):
    model = tiny(pos, max_len=8)
    assert model(torch.randint(0, V, (1, 20))).shape == (1, 20, V)


def test_kv_cache_bytes_grow_linearly_and_window_caps_them():
    model = tiny(n_kv_heads=2)  # float64: 8 bytes per number
    _, cache = model.prefill(torch.randint(0, V, (3, 10)))
    expected = 2 * 2 * 3 * 2 * 10 * 8 * 8  # K and V, layers, B, H_kv, T, D, bytes
    assert cache.nbytes == cache_bytes(cache) == expected
    _, cache = model.step(torch.tensor([1, 2, 3]), cache)
    assert cache.nbytes == expected * 11 // 10
    windowed = tiny(window=4)
    _, wc = windowed.prefill(torch.randint(0, V, (1, 10)))
    for t in range(5):
        _, wc = windowed.step(torch.tensor([t]), wc)
    assert wc.seq_len == 4 and wc.position == 15
    assert cache_bytes({"a": torch.zeros(3, dtype=torch.float32), "b": [torch.zeros(2, dtype=torch.int64)]}) == 28
    with pytest.raises(TypeError, match="cache"):
        cache_bytes(3)


def test_generate_greedy_equals_argmax_of_forward():
    model = tiny("rope")
    prompt = torch.randint(0, V, (2, 4))
    out = generate(model, prompt, 6)
    assert out.shape == (2, 10) and torch.equal(out[:, :4], prompt)
    seq = prompt
    for _ in range(6):
        seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)
    sampled = generate(model, prompt, 3, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert sampled.shape == (2, 7) and int(sampled.max()) < V
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, prompt, -1)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, prompt, 2, temperature=-1.0)


def test_config_rebuilds_the_same_architecture():
    model = build_model("transformer", vocab_size=V, d_model=32, n_layers=2, n_heads=4, pos="learned",
                        max_len=16, tie_embeddings=False, n_kv_heads=1)
    again = build_model(model.kind, **dataclasses.asdict(model.config))
    again.load_state_dict(model.state_dict())  # same parameter names and shapes
    x = torch.randint(0, V, (1, 7))
    torch.testing.assert_close(again(x), model(x))


def test_tied_embeddings_and_parameter_count():
    tied = build_model("transformer", vocab_size=V, d_model=32, n_layers=1, n_heads=2)
    untied = build_model("transformer", vocab_size=V, d_model=32, n_layers=1, n_heads=2, tie_embeddings=False)
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert count_parameters(untied) - count_parameters(tied) == V * 32
    learned = build_model("transformer", vocab_size=V, d_model=32, n_layers=1, n_heads=2, pos="learned", max_len=50)
    assert count_parameters(learned) - count_parameters(tied) == 50 * 32


def test_interpreter_backend_runs_the_kernel_and_matches_torch_path():
    """attn_backend="interpreter" (the Triton kernel on a CPU, fp32) gives the torch path's logits."""
    from linattn_edu.kernels import kernel_backend

    if kernel_backend(torch.zeros(1)) != "interpreter":
        pytest.skip("the Triton interpreter is not on here (conftest.py turns it on without a GPU)")
    kernel_model = build_model("transformer", vocab_size=V, d_model=32, n_layers=1, n_heads=2, pos="alibi",
                               attn_backend="interpreter")
    torch_model = build_model("transformer", vocab_size=V, d_model=32, n_layers=1, n_heads=2, pos="alibi",
                              attn_backend="torch")
    torch_model.load_state_dict(kernel_model.state_dict())
    x = torch.randint(0, V, (2, 20))
    torch.testing.assert_close(kernel_model(x), torch_model(x), atol=1e-5, rtol=1e-5)
    kernel_model(x).sum().backward()  # and the kernel's backward runs inside the model
    assert kernel_model.blocks[0].attn.q_proj.weight.grad is not None
    _, cache = kernel_model.prefill(x[:, :19])
    torch.testing.assert_close(kernel_model.step(x[:, 19], cache)[0], torch_model(x)[:, -1], atol=1e-5, rtol=1e-5)


def test_default_backend_per_device():
    cfg = build_model("transformer", vocab_size=V, d_model=32, n_layers=1, n_heads=2).config
    assert cfg.attn_backend is None
    assert cfg.resolved_backend("cpu") == "torch"  # never the (very slow) interpreter by default
    assert cfg.resolved_backend("cuda") is None  # on a GPU flash_attention chooses


def test_unsupported_head_dim_picks_torch_path_automatically():
    model = build_model("transformer", vocab_size=V, d_model=24, n_layers=1, n_heads=2)  # head dim 12
    assert model.config.resolved_backend("cuda") == "torch"
    assert model(torch.randint(0, V, (1, 5))).shape == (1, 5, V)


def test_cpu_without_interpreter_in_a_subprocess():
    """Float32 on a CPU with no TRITON_INTERPRET: flash_attention falls back to PyTorch."""
    code = (
        "import sys, torch\n"
        "import linattn_edu.models as m, linattn_edu.train, linattn_edu.data\n"
        "assert 'triton' not in sys.modules, 'importing the models must not import Triton'\n"
        "model = m.build_model('transformer', vocab_size=11, d_model=32, n_layers=1, n_heads=2)\n"
        "out = model(torch.randint(0, 11, (2, 6)))\n"
        "lg, c = model.prefill(torch.randint(0, 11, (2, 6))); lg, c = model.step(torch.tensor([1, 2]), c)\n"
        "print(tuple(out.shape), tuple(lg.shape))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["LINATTN_FORCE_CPU"] = "1"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "(2, 6, 11) (2, 11)" in result.stdout


def test_register_a_new_kind():
    @register_model("_test_bigram")
    class Bigram(nn.Module):
        def __init__(self, *, vocab_size, d_model, n_layers, n_heads, bias=0.0):
            super().__init__()
            self.table = nn.Embedding(vocab_size, vocab_size)
            self.config = {"vocab_size": vocab_size, "bias": bias}

        def forward(self, tokens):
            return self.table(tokens)

    try:
        model = build_model("_test_bigram", vocab_size=5, d_model=1, n_layers=1, n_heads=1, bias=2.0)
        assert model.kind == "_test_bigram" and model.config["bias"] == 2.0
        assert "_test_bigram" in available_models()
        with pytest.raises(ValueError, match="already registered"):
            register_model("_test_bigram")(lambda **kw: nn.Linear(1, 1))
    finally:
        models.MODEL_REGISTRY.pop("_test_bigram", None)
    with pytest.raises(ValueError, match="kind"):
        register_model("")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kind": "mamba"}, r"kind must be one of \[.*'transformer'"),
        ({"pos": "xpos"}, r"pos must be one of \['alibi', 'rope', 'sinusoidal', 'learned', 'none'\]"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"n_layers": 1.5}, "n_layers"),
        ({"d_model": 30}, "d_model=30 must be divisible by n_heads=4"),
        ({"n_kv_heads": 3}, "n_kv_heads=3 must divide n_heads=4"),
        ({"flash": True}, r"unknown option\(s\) \['flash'\]"),
        ({"attn_backend": "cuda"}, "attn_backend"),
        ({"norm": "batchnorm"}, "norm"),
        ({"window": 0}, "window"),
        ({"dropout": 1.0}, "dropout"),
        ({"max_len": 0}, "max_len"),
        ({"mlp_ratio": 0}, "mlp_ratio"),
    ],
)
def test_build_errors_name_the_argument(kwargs, match):
    args = dict(kind="transformer", vocab_size=V, d_model=32, n_layers=2, n_heads=4)
    args.update(kwargs)
    kind = args.pop("kind")
    with pytest.raises(ValueError, match=match):
        build_model(kind, **args)


def test_rope_needs_even_head_dim():
    with pytest.raises(ValueError, match="head dim"):
        build_model("transformer", vocab_size=V, d_model=6, n_layers=1, n_heads=2, pos="rope")


def test_bad_tokens_and_caches():
    model = tiny()
    with pytest.raises(TypeError, match="tokens"):
        model(torch.zeros(1, 4))  # float ids
    with pytest.raises(TypeError, match="tokens"):
        model([[1, 2]])
    with pytest.raises(ValueError, match=r"tokens must have shape \(B, T\)"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="vocab_size=13"):
        model(torch.full((1, 3), V))
    _, cache = model.prefill(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token must have shape \(B,\)"):
        model.step(torch.zeros(2, 1, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="batch size"):
        model.step(torch.zeros(3, dtype=torch.long), cache)
    with pytest.raises(TypeError, match="cache must be a KVCache"):
        model.step(torch.zeros(2, dtype=torch.long), {"k": 1})
    assert isinstance(cache, KVCache)
