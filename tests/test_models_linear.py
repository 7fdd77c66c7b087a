"""The "linear" and "based" zoo kinds: decode == forward, causality, state sizes, errors, MQAR."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from linattn_edu.models import (
    LINEAR_FEATURE_MAPS,
    MixerCache,
    available_models,
    build_model,
    cache_bytes,
    default_layer_pattern,
    feature_map_torch,
    model_state_bytes,
    state_bytes,
)
from linattn_edu.reference import FEATURE_MAPS, feature_map_dim, linear_attention
from linattn_edu.tasks import make_mqar

V = 13
MAPS = ("elu", "relu", "identity", "taylor")
# Every Based mixer, alone and combined, with a window shorter than the test sequences.
BASED_OPTIONS = [
    {"window": 3, "chunk_size": 4},
    {"window": 4, "layer_pattern": ["conv", "linear", "window", "conv+window+linear"], "mlp": "gelu"},
    {"window": 2, "layer_pattern": ["linear+conv", "window"], "mlp": "none", "conv_kernel_size": 4},
    {"window": 5, "layer_pattern": ["conv+window", "window"], "window_pos": "alibi"},  # Chapter 8's ALiBi
]


def tiny(kind, **options):
    """A float64 model on the PyTorch paths (exact and fast on a CPU)."""
    n_layers = len(options.get("layer_pattern", [0, 0]))
    options.setdefault("feature_dim", 4)
    return build_model(kind, vocab_size=V, d_model=16, n_layers=n_layers, n_heads=2, **options).double().eval()


def tiny_linear(feature_map="elu", **options):
    return tiny("linear", feature_map=feature_map, chunk_size=4, **options)


ALL_MODELS = [("linear", {"feature_map": m, "chunk_size": 4}) for m in MAPS] + [("based", o) for o in BASED_OPTIONS]
IDS = [f"linear-{m}" for m in MAPS] + [f"based-{i}" for i in range(len(BASED_OPTIONS))]


def decode_all(model, tokens, n_prompt):
    """Logits for every position by prefill(tokens[:, :n_prompt]) then step() per token."""
    logits, cache = model.prefill(tokens[:, :n_prompt])
    out = [logits]
    for t in range(n_prompt, tokens.shape[1]):
        step_logits, cache = model.step(tokens[:, t], cache)
        out.append(step_logits[:, None])
    return torch.cat(out, dim=1), cache


def test_registered_kinds_and_default_pattern():
    assert {"linear", "based", "transformer"} <= set(available_models())
    assert default_layer_pattern(1) == ["conv+linear"]
    assert default_layer_pattern(2) == ["conv+linear", "conv+window"]
    assert default_layer_pattern(6) == ["conv", "linear", "window", "conv", "conv", "conv"]
    model = build_model("based", vocab_size=V, d_model=32, n_layers=2, n_heads=2)
    cfg = model.config
    assert model.kind == "based" and cfg.layer_pattern == ["conv+linear", "conv+window"]
    assert (cfg.feature_map, cfg.feature_dim, cfg.window, cfg.n_features) == ("taylor", 16, 64, 273)
    assert build_model("linear", vocab_size=V, d_model=32, n_layers=1, n_heads=2).config.feature_map == "elu"


@pytest.mark.parametrize("name", LINEAR_FEATURE_MAPS)
def test_torch_feature_maps_match_the_numpy_references(name):
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    out = feature_map_torch(x, name)
    assert out.shape == (2, 3, feature_map_dim(name, 5))
    np.testing.assert_allclose(out.numpy(), FEATURE_MAPS[name](x.numpy()), rtol=1e-14, atol=1e-14)
    if name.startswith("taylor"):  # φ(q)·φ(k) = 1 + s + s²/2
        q, k = x[0, 0], x[0, 1]
        s = float(q @ k) / 5**0.5
        assert float(feature_map_torch(q, name) @ feature_map_torch(k, name)) == pytest.approx(1 + s + s * s / 2)


@pytest.mark.parametrize("kind,options", ALL_MODELS, ids=IDS)
def test_forward_shape(kind, options):
    model = build_model(kind, vocab_size=V, d_model=16, n_layers=len(options.get("layer_pattern", [0, 0])),
                        n_heads=2, **options)
    logits = model(torch.randint(0, V, (3, 10)))
    assert logits.shape == (3, 10, V) and logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert model.kind == kind


@pytest.mark.parametrize("kind,options", ALL_MODELS, ids=IDS)
def test_step_by_step_decoding_equals_forward(kind, options):
    model = tiny(kind, **options)
    tokens = torch.randint(0, V, (2, 11))
    full = model(tokens)
    incremental, cache = decode_all(model, tokens, n_prompt=4)
    # identity features: the denominator Σ q·k can be near 0 and amplifies rounding
    tol = dict(atol=1e-9, rtol=1e-9) if options.get("feature_map") == "identity" else dict(atol=1e-12, rtol=0)
    torch.testing.assert_close(incremental, full, **tol)
    assert isinstance(cache, MixerCache) and cache.position == 11
    # chunked prefill: a second prompt continues the first one's state
    logits_a, cache_a = model.prefill(tokens[:, :5])
    logits_b, cache_b = model.prefill(tokens[:, 5:], cache_a)
    torch.testing.assert_close(torch.cat([logits_a, logits_b], 1), full, **tol)
    assert cache_bytes(cache_b) == cache_bytes(cache)


@pytest.mark.parametrize("kind,options", ALL_MODELS, ids=IDS)
def test_future_tokens_never_change_past_logits(kind, options):
    model = tiny(kind, **options)
    a = torch.randint(0, V, (1, 12))
    b = a.clone()
    b[0, 7:] = (b[0, 7:] + 1 + torch.randint(0, V - 1, (5,))) % V
    la, lb = model(a), model(b)
    torch.testing.assert_close(la[:, :7], lb[:, :7], atol=1e-12, rtol=0)
    assert (la[:, 7:] - lb[:, 7:]).abs().max() > 1e-8


def test_linear_attention_layer_matches_numpy_reference():
    """One layer against reference.linear_attention on the same projections (Taylor map)."""
    model = tiny_linear("taylor")
    attn = model.blocks[0].mixers["linear"]
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    out, _ = attn(x, keep_state=False)
    q = attn.q_proj(x).view(2, 9, 2, 4).transpose(1, 2).detach().numpy()
    k = attn.k_proj(x).view(2, 9, 2, 4).transpose(1, 2).detach().numpy()
    v = attn.v_proj(x).view(2, 9, 2, 8).transpose(1, 2).detach().numpy()
    ref = torch.from_numpy(linear_attention(q, k, v, feature_map="taylor", form="recurrent"))
    torch.testing.assert_close(out, attn.out_proj(ref.transpose(1, 2).reshape(2, 9, 16)), atol=1e-12, rtol=0)


def test_alibi_window_mixer_matches_numpy_reference():
    """``window_pos="alibi"``: the window mixer is reference.alibi_attention (no RoPE) on its projections."""
    from linattn_edu.reference.alibi import alibi_attention

    model = tiny("based", layer_pattern=["window", "window"], window=4, window_pos="alibi")
    attn = model.blocks[0].mixers["window"]
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    out, _ = attn(x, keep_state=False)
    q, k, v = attn.qkv_proj(x).view(2, 9, 3, 2, 8).permute(2, 0, 3, 1, 4).detach().numpy()
    ref = torch.from_numpy(alibi_attention(q, k, v, causal=True, window=4))
    torch.testing.assert_close(out, attn.out_proj(ref.transpose(1, 2).reshape(2, 9, 16)), atol=1e-12, rtol=0)


def test_linear_state_is_constant_and_based_state_is_bounded():
    model = tiny_linear("taylor")
    sizes = []
    for t in (1, 5, 20):
        _, cache = model.prefill(torch.randint(0, V, (1, t)))
        sizes.append(cache_bytes(cache))
    _, cache = model.step(torch.tensor([1]), cache)
    sizes.append(cache.nbytes)
    # 2 layers x 2 heads x (F·D + F) float64 numbers, F = 1 + 4 + 16, D = 8
    assert sizes == [2 * 2 * (21 * 8 + 21) * 8] * 4
    S, z = cache.layers[0]["linear"]
    assert S.shape == (1, 2, 21, 8) and z.shape == (1, 2, 21)

    based = tiny("based", window=3)
    grow = []
    for t in (1, 2, 3, 8, 30):
        _, cache = based.prefill(torch.randint(0, V, (1, t)))
        grow.append(cache_bytes(cache))
    assert grow[0] < grow[1] < grow[2] == grow[3] == grow[4]  # the window fills, then stops
    assert cache.layers[1]["window"][0].shape == (1, 2, 3, 8)
    assert cache.layers[0]["conv"].shape == (1, 16, 2)


def test_step_does_not_modify_the_cache_it_gets():
    model = tiny("based", window=3)
    _, cache = model.prefill(torch.randint(0, V, (2, 6)))
    before = [t.clone() for t in (cache.layers[0]["linear"].S, cache.layers[0]["conv"], cache.layers[1]["window"][0])]
    la, cache_a = model.step(torch.tensor([1, 2]), cache)
    lb, _ = model.step(torch.tensor([1, 2]), cache)
    torch.testing.assert_close(la, lb)
    assert cache.position == 6 and cache_a.position == 7
    after = (cache.layers[0]["linear"].S, cache.layers[0]["conv"], cache.layers[1]["window"][0])
    for x0, x1 in zip(before, after):
        assert torch.equal(x0, x1)


def test_kernels_are_called_with_the_torch_backend_on_cpu(monkeypatch):
    import linattn_edu.kernels as kernels

    calls = []
    for name in ("chunked_linear_attention", "linear_attention_step", "flash_attention"):
        real = getattr(kernels, name)

        def spy(*args, _name=name, _real=real, **kw):
            calls.append((_name, kw.get("backend"), kw.get("window")))
            return _real(*args, **kw)

        monkeypatch.setattr(kernels, name, spy)
    model = build_model("based", vocab_size=V, d_model=32, n_layers=2, n_heads=2, window=5, feature_dim=4)
    _, cache = model.prefill(torch.randint(0, V, (1, 6)))
    model.step(torch.tensor([3]), cache)
    assert calls == [("chunked_linear_attention", "torch", None), ("flash_attention", "torch", 5),
                     ("linear_attention_step", None, None), ("flash_attention", "torch", 5)]
    assert model.config.linear_backend("cuda") is None and model.config.window_backend("cuda") is None
    assert model.config.linear_backend("cpu") == "torch"
    assert tiny("based").config.window_backend("cuda") == "torch"  # head dim 8: the flash kernel lacks it
    odd_chunk = build_model("linear", vocab_size=V, d_model=16, n_layers=1, n_heads=2, chunk_size=10)
    assert odd_chunk.config.linear_backend("cuda") == "torch"  # the kernel takes 16..128 only


@pytest.mark.parametrize(
    "kind,options",
    [
        ("transformer", {}),
        ("transformer", {"window": 4, "n_kv_heads": 1}),
        ("linear", {"feature_map": "taylor"}),
        ("linear", {"feature_map": "elu", "normalize": False}),
        ("linear", {"feature_map": "taylor_compact"}),
        ("based", {"window": 4}),
        ("based", {"window": 32, "layer_pattern": ["conv", "linear", "window"], "conv_kernel_size": 4}),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_state_bytes_equals_cache_bytes(kind, options, dtype):
    n_layers = len(options.get("layer_pattern", [0, 0]))
    model = build_model(kind, vocab_size=V, d_model=16, n_layers=n_layers, n_heads=2, feature_dim=4, **options) \
        if kind != "transformer" else build_model(kind, vocab_size=V, d_model=16, n_layers=2, n_heads=2, **options)
    model = model.to(dtype)
    bpe = torch.empty((), dtype=dtype).element_size()
    for t in (3, 9):
        _, cache = model.prefill(torch.randint(0, V, (1, t)))
        opts = dict(options, **({"feature_dim": 4} if kind != "transformer" else {}))
        expected = state_bytes(kind, seq_len=t, d_model=16, n_layers=n_layers, n_heads=2, bytes_per_element=bpe,
                               **opts)
        assert cache_bytes(cache) == expected == model_state_bytes(model, seq_len=t)
    cfg = dataclasses.asdict(model.config)  # the whole config works as options too
    sizes = {k: cfg.pop(k) for k in ("d_model", "n_layers", "n_heads")}
    assert state_bytes(kind, seq_len=9, bytes_per_element=bpe, **sizes, **cfg) == expected


def test_state_bytes_formulas_and_bf16_state():
    # transformer: 2 · layers · H · D · T · 2 bytes; linear: layers · H · (F·D + F) · 2 bytes
    assert state_bytes("transformer", seq_len=100, d_model=64, n_layers=2, n_heads=4) == 2 * 2 * 4 * 16 * 100 * 2
    windowed = state_bytes("transformer", seq_len=100, d_model=64, n_layers=2, n_heads=4, window=8)
    assert windowed == 2 * 2 * 4 * 16 * 8 * 2
    lin = state_bytes("linear", seq_len=100, d_model=64, n_layers=2, n_heads=4, feature_map="taylor")
    assert lin == 2 * 4 * (273 * 16 + 273) * 2
    assert lin == state_bytes("linear", seq_len=10**6, d_model=64, n_layers=2, n_heads=4, feature_map="taylor")
    # based, 2 layers: conv (64 · 2) + linear + conv + window (2 · H · D · 64)
    based = state_bytes("based", seq_len=1000, d_model=64, n_layers=2, n_heads=4)
    assert based == 2 * (64 * 2 * 2) + 4 * (273 * 16 + 273) * 2 + 2 * 4 * 16 * 64 * 2
    # A bf16 model keeps the linear state in float32: model_state_bytes counts it so.
    model = build_model("based", vocab_size=V, d_model=16, n_layers=2, n_heads=2, feature_dim=4, window=4)
    model = model.to(torch.bfloat16)
    _, cache = model.prefill(torch.randint(0, V, (1, 7)))
    assert cache.layers[0]["linear"].S.dtype == torch.float32
    assert cache_bytes(cache) == model_state_bytes(model, seq_len=7) == state_bytes(
        "based", seq_len=7, d_model=16, n_layers=2, n_heads=2, feature_dim=4, window=4,
        bytes_per_element=2, state_bytes_per_element=4)


@pytest.mark.parametrize("kind,options", [("linear", {"feature_map": "elu"}), ("based", {"window": 4})])
def test_tiny_model_fits_a_tiny_mqar_batch(kind, options):
    inputs, targets = make_mqar(16, seq_len=16, n_pairs=2, vocab_size=24, seed=0)
    x, y = torch.from_numpy(inputs), torch.from_numpy(targets)
    torch.manual_seed(0)
    model = build_model(kind, vocab_size=24, d_model=32, n_layers=2, n_heads=2, feature_dim=8, **options)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x).reshape(-1, 24), y.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * losses[0]


def test_interpreter_backend_runs_the_kernels_and_matches_torch_path():
    from linattn_edu.kernels import kernel_backend

    if kernel_backend(torch.zeros(1)) != "interpreter":
        pytest.skip("the Triton interpreter is not on here (conftest.py turns it on without a GPU)")
    opts = dict(vocab_size=V, d_model=32, n_layers=2, n_heads=2, feature_dim=4, window=4, chunk_size=16)
    kernel_model = build_model("based", attn_backend="interpreter", **opts)
    torch_model = build_model("based", attn_backend="torch", **opts)
    torch_model.load_state_dict(kernel_model.state_dict())
    x = torch.randint(0, V, (1, 20))
    torch.testing.assert_close(kernel_model(x), torch_model(x), atol=1e-5, rtol=1e-5)
    kernel_model(x).sum().backward()
    assert kernel_model.blocks[0].mixers["linear"].q_proj.weight.grad is not None


def test_config_rebuilds_the_same_architecture():
    for kind, extra in (("linear", {"feature_map": "relu", "tie_embeddings": False}),
                        ("based", {"layer_pattern": ["window+conv", "linear"], "window": 8})):
        model = build_model(kind, vocab_size=V, d_model=16, n_layers=2, n_heads=2, **extra)
        again = build_model(model.kind, **dataclasses.asdict(model.config))
        again.load_state_dict(model.state_dict())
        x = torch.randint(0, V, (1, 7))
        torch.testing.assert_close(again(x), model(x))


@pytest.mark.parametrize(
    "kind,kwargs,match",
    [
        ("linear", {"feature_map": "softmax"},
         r"feature_map must be one of \['elu', 'relu', 'identity', 'taylor', 'taylor_compact'\]"),
        ("based", {"feature_map": "exp"}, r"feature_map must be one of \['elu'"),
        ("linear", {"window": 4}, r"unknown option\(s\) \['window'\] for kind 'linear'; valid options: \["),
        ("based", {"layer_pattern": ["conv", "attention"]}, r"\['conv', 'linear', 'window'\].*'attention'"),
        ("based", {"layer_pattern": ["conv+conv", "linear"]}, "distinct mixers"),
        ("based", {"layer_pattern": ["conv"]}, "layer_pattern must have n_layers=2 entries"),
        ("based", {"layer_pattern": "conv+linear"}, "layer_pattern must be a list"),
        ("based", {"window": 0}, "window"),
        ("based", {"conv_kernel_size": 0}, "conv_kernel_size"),
        ("based", {"mlp": "relu"}, r"mlp must be one of \['gelu', 'swiglu', 'none', 'identity'\]"),
        ("linear", {"feature_dim": 0}, "feature_dim"),
        ("linear", {"chunk_size": 2.0}, "chunk_size"),
        ("linear", {"d_model": 30}, "d_model=30 must be divisible by n_heads=4"),
        ("linear", {"norm": "batchnorm"}, "norm"),
        ("linear", {"attn_backend": "cuda"}, "attn_backend"),
        ("linear", {"eps": -1.0}, "eps"),
        ("linear", {"normalize": 1}, "normalize"),
        ("linear", {"dropout": 1.0}, "dropout"),
        ("based", {"d_model": 30, "n_heads": 6}, "even head dim"),
        ("based", {"window_pos": "learned"}, r"window_pos must be one of \['rope', 'alibi', 'none'\]"),
        ("based", {"conv_form": "hyena"}, r"conv_form must be one of \['based', 'zoology', 'book'\]"),
    ],
)
def test_build_errors_name_the_argument(kind, kwargs, match):
    args = dict(vocab_size=V, d_model=32, n_layers=2, n_heads=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_model(kind, **args)


def test_state_bytes_errors():
    with pytest.raises(ValueError, match=r"kind must be one of \['transformer', 'linear', 'based'"):
        state_bytes("mamba", seq_len=4, d_model=16, n_layers=1, n_heads=2)
    with pytest.raises(ValueError, match="seq_len"):
        state_bytes("linear", seq_len=-1, d_model=16, n_layers=1, n_heads=2)
    with pytest.raises(ValueError, match="bytes_per_element"):
        state_bytes("linear", seq_len=4, d_model=16, n_layers=1, n_heads=2, bytes_per_element=0)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['window'\] for kind 'linear'"):
        state_bytes("linear", seq_len=4, d_model=16, n_layers=1, n_heads=2, window=3)
    with pytest.raises(ValueError, match="feature_map must be one of"):
        state_bytes("based", seq_len=4, d_model=16, n_layers=1, n_heads=2, feature_map="exp")
    with pytest.raises(TypeError, match="zoo model"):
        model_state_bytes(torch.nn.Linear(2, 2), seq_len=3)


def test_bad_tokens_and_caches():
    model = tiny("based", window=3)
    with pytest.raises(TypeError, match="tokens"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="vocab_size=13"):
        model(torch.full((1, 3), V))
    _, cache = model.prefill(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token must have shape \(B,\)"):
        model.step(torch.zeros(2, 1, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="batch size"):
        model.step(torch.zeros(3, dtype=torch.long), cache)
    with pytest.raises(TypeError, match="cache must be a MixerCache"):
        model.step(torch.zeros(2, dtype=torch.long), {"k": 1})
    _, other = tiny_linear().prefill(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"cache layer 0 must hold states for \['conv', 'linear'\]"):
        model.step(torch.zeros(2, dtype=torch.long), other)
