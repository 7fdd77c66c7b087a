"""The "hawk" and "griffin" zoo kinds: the RG-LRU against the NumPy reference, decode == forward,
causality, state sizes, the clipped √ gradient, gate values, errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from linattn_edu.models import (
    RGLRU,
    BlockDiagonalLinear,
    GriffinCache,
    MixerCache,
    RecurrentState,
    available_models,
    build_model,
    cache_bytes,
    griffin_layer_pattern,
    model_state_bytes,
    sqrt_bounded_grad,
    state_bytes,
)
from linattn_edu.models import griffin as griffin_module
from linattn_edu.reference import rg_lru

V = 13
# Hawk; Griffin with the official period and a window shorter than the sequences; Griffin with
# attention first, grouped KV heads, a narrower recurrence and a short conv.
ALL_MODELS = [
    ("hawk", {"n_layers": 2}),
    ("griffin", {"n_layers": 3, "window": 3}),
    ("griffin", {"layer_pattern": ["attention", "recurrent"], "window": 4, "n_kv_heads": 2, "lru_width": 24,
                 "conv_width": 2}),
]
IDS = ["hawk", "griffin-rra", "griffin-ar"]


def tiny(kind, dtype=torch.float64, **options):
    """A small model (d_model 16, 2 heads of 8) on the PyTorch paths, float64 by default."""
    options = dict(options)
    n_layers = options.pop("n_layers", len(options.get("layer_pattern", [0, 0])))
    model = build_model(kind, vocab_size=V, d_model=16, n_layers=n_layers, n_heads=2, **options)
    return model.to(dtype).eval()


def decode_all(model, tokens, n_prompt):
    """Logits for every position by prefill(tokens[:, :n_prompt]) then step() per token; the sizes."""
    logits, cache = model.prefill(tokens[:, :n_prompt])
    out, sizes = [logits], [cache_bytes(cache)]
    for t in range(n_prompt, tokens.shape[1]):
        step_logits, cache = model.step(tokens[:, t], cache)
        out.append(step_logits[:, None])
        sizes.append(cache_bytes(cache))
    return torch.cat(out, dim=1), cache, sizes


def test_registered_kinds_and_defaults():
    assert {"hawk", "griffin"} <= set(available_models())
    assert griffin_layer_pattern(1) == ["recurrent"]
    assert griffin_layer_pattern(2) == ["recurrent", "attention"]
    assert griffin_layer_pattern(6) == ["recurrent", "recurrent", "attention"] * 2
    hawk = build_model("hawk", vocab_size=V, d_model=32, n_layers=2, n_heads=4)
    cfg = hawk.config
    assert hawk.kind == "hawk" and cfg.pattern == ["recurrent", "recurrent"]
    assert (cfg.lru_width, cfg.conv_width, cfg.c, cfg.mlp_ratio, cfg.a_min, cfg.a_max) == (32, 4, 8.0, 3.0, 0.9, 0.999)
    griffin = build_model("griffin", vocab_size=V, d_model=32, n_layers=3, n_heads=2)
    gcfg = griffin.config
    assert griffin.kind == "griffin" and gcfg.layer_pattern == ["recurrent", "recurrent", "attention"]
    assert (gcfg.window, gcfg.n_kv_heads, gcfg.head_dim) == (64, 1, 16)
    # multi-query: one KV head of head_dim 16 for 2 query heads
    assert griffin.blocks[2].mixer.kv_proj.weight.shape == (2 * 16, 32)
    assert griffin.blocks[0].mixer.rg_lru.gate_a.weight.shape == (2, 16, 16)  # block-diagonal, per head
    assert griffin.blocks[0].mlp.fc_out.weight.shape == (32, 96)  # gated MLP, expansion 3


@pytest.mark.parametrize("kind,options", ALL_MODELS, ids=IDS)
def test_forward_shape_float32(kind, options):
    model = tiny(kind, torch.float32, **options)
    logits = model(torch.randint(0, V, (3, 10)))
    assert logits.shape == (3, 10, V) and logits.dtype == torch.float32 and torch.isfinite(logits).all()


@pytest.mark.parametrize("kind,options", ALL_MODELS, ids=IDS)
def test_step_by_step_decoding_equals_forward(kind, options):
    model = tiny(kind, **options)
    tokens = torch.randint(0, V, (2, 11))  # longer than every window above
    full = model(tokens)
    incremental, cache, _ = decode_all(model, tokens, n_prompt=4)
    torch.testing.assert_close(incremental, full, atol=1e-12, rtol=0)
    assert isinstance(cache, GriffinCache) and cache.position == 11
    # prefill of one token, then only steps
    incremental, _, _ = decode_all(model, tokens, n_prompt=1)
    torch.testing.assert_close(incremental, full, atol=1e-12, rtol=0)
    # chunked prefill: a second prompt continues the first one's state (also a chunk shorter than the conv)
    logits_a, cache_a = model.prefill(tokens[:, :5])
    logits_b, cache_b = model.prefill(tokens[:, 5:7], cache_a)
    logits_c, cache_c = model.prefill(tokens[:, 7:], cache_b)
    torch.testing.assert_close(torch.cat([logits_a, logits_b, logits_c], 1), full, atol=1e-12, rtol=0)
    assert cache_bytes(cache_c) == cache_bytes(cache)


@pytest.mark.parametrize("kind,options", ALL_MODELS, ids=IDS)
def test_future_tokens_never_change_past_logits(kind, options):
    model = tiny(kind, **options)
    a = torch.randint(0, V, (1, 12))
    b = a.clone()
    b[0, 7:] = (b[0, 7:] + 1 + torch.randint(0, V - 1, (5,))) % V
    la, lb = model(a), model(b)
    torch.testing.assert_close(la[:, :7], lb[:, :7], atol=1e-12, rtol=0)
    assert (la[:, 7:] - lb[:, 7:]).abs().max() > 1e-8


def test_block_diagonal_linear_is_a_dense_layer_with_a_block_diagonal_matrix():
    layer = BlockDiagonalLinear(6, 3).double()
    x = torch.randn(2, 4, 6, dtype=torch.float64)
    dense = torch.block_diag(*layer.weight)  # (6, 6)
    torch.testing.assert_close(layer(x), x @ dense + layer.bias.reshape(6), atol=1e-14, rtol=0)
    with pytest.raises(ValueError, match="divisible by n_blocks"):
        BlockDiagonalLinear(6, 4)


def test_rg_lru_matches_the_numpy_reference_with_resets_and_h0():
    torch.manual_seed(1)
    layer = RGLRU(8, n_heads=2).double()
    with torch.no_grad():  # non-zero biases, so both gates vary around 1/2
        layer.gate_a.bias.normal_()
        layer.gate_x.bias.normal_()
    x = torch.randn(3, 9, 8, dtype=torch.float64)
    h0 = torch.randn(3, 8, dtype=torch.float64)
    reset = torch.zeros(3, 9, dtype=torch.bool)
    reset[0, 0] = reset[1, 4] = reset[2, 3] = reset[2, 7] = True
    g = layer.gates(x, reset)
    y, h_last = layer(x, h0, reset)
    ref_y, ref_last = rg_lru(
        x.numpy(), g["r"].detach().numpy(), g["i"].detach().numpy(), layer.lam.detach().numpy(), c=8.0,
        h0=h0.numpy(), reset=reset.numpy(),
    )
    np.testing.assert_allclose(y.detach().numpy(), ref_y, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h_last.detach().numpy(), ref_last, rtol=1e-12, atol=1e-13)
    # the gates are what the equations say
    torch.testing.assert_close(g["r"], torch.sigmoid(layer.gate_a(x)))
    torch.testing.assert_close(g["a_t"][~reset], (layer.a ** (8.0 * g["r"]))[~reset], atol=1e-14, rtol=1e-12)
    assert (g["a_t"][reset] == 0).all() and (g["multiplier"][reset] == 1).all()
    # a reset at t = 0 hides h0; without resets h0 matters
    y_other, _ = layer(x, h0 + 1.0, reset)
    torch.testing.assert_close(y_other[0], y[0], atol=0, rtol=0)
    assert (y_other[1, :4] - y[1, :4]).abs().min() > 0
    torch.testing.assert_close(y_other[1, 4:], y[1, 4:], atol=0, rtol=0)
    # one token at a time gives the same numbers
    h, steps = h0, []
    for t in range(9):
        y_t, h = layer.step(x[:, t], h, reset[:, t])
        steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, 1), y, atol=1e-13, rtol=0)
    torch.testing.assert_close(h, h_last, atol=1e-13, rtol=0)


def test_rg_lru_initialization_ring_and_parametrization():
    layer = RGLRU(512, n_heads=4)
    a = layer.a.detach().double()
    assert a.min() >= 0.9 - 1e-6 and a.max() <= 0.999 + 1e-6
    assert a.min() < 0.91 and a.max() > 0.99  # spread over the ring
    # a = √u with u uniform on [0.81, 0.998]: the mean of a² is the middle of the interval
    assert abs(float((a**2).mean()) - (0.81 + 0.998) / 2) < 0.02
    # the stored parameter is −Λ: a = exp(−softplus(p)) = σ(Λ)
    torch.testing.assert_close(layer.a, torch.sigmoid(layer.lam))
    assert (layer.a_param < 0).all()  # a > 1/2 means Λ > 0, and the stored parameter is −Λ


def test_hawk_state_is_constant_and_griffin_state_stops_growing_after_the_window():
    hawk = tiny("hawk")
    tokens = torch.randint(0, V, (1, 12))
    _, cache, sizes = decode_all(hawk, tokens, n_prompt=1)
    # 2 layers x (conv: 3 inputs x 16 channels + h: 16), float64
    assert sizes == [2 * (3 * 16 + 16) * 8] * 12
    conv, h = cache.layers[0]
    assert isinstance(cache.layers[0], RecurrentState) and conv.shape == (1, 3, 16) and h.shape == (1, 16)

    griffin = tiny("griffin", n_layers=3, window=4)
    _, cache, sizes = decode_all(griffin, tokens, n_prompt=1)
    assert sizes[0] < sizes[1] < sizes[2] < sizes[3] == sizes[4] == sizes[-1]  # the window fills, then stops
    k, v = cache.layers[2]
    assert k.shape == v.shape == (1, 1, 4, 8)  # one KV head, the last 4 positions


def test_step_does_not_modify_the_cache_it_gets():
    model = tiny("griffin", n_layers=3, window=3)
    _, cache = model.prefill(torch.randint(0, V, (2, 6)))
    before = [t.clone() for t in (cache.layers[0].conv, cache.layers[0].h, cache.layers[2][0])]
    la, cache_a = model.step(torch.tensor([1, 2]), cache)
    lb, _ = model.step(torch.tensor([1, 2]), cache)
    torch.testing.assert_close(la, lb)
    assert cache.position == 6 and cache_a.position == 7
    for x0, x1 in zip(before, (cache.layers[0].conv, cache.layers[0].h, cache.layers[2][0])):
        assert torch.equal(x0, x1)


STATE_CASES = [
    ("hawk", {}),
    ("hawk", {"lru_width": 24, "conv_width": 2}),
    ("griffin", {"window": 4}),
    ("griffin", {"window": 32, "layer_pattern": ["attention", "recurrent", "attention"], "n_kv_heads": 2}),
]


@pytest.mark.parametrize("kind,options", STATE_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_state_bytes_equals_cache_bytes(kind, options, dtype):
    n_layers = len(options.get("layer_pattern", [0, 0]))
    model = build_model(kind, vocab_size=V, d_model=16, n_layers=n_layers, n_heads=2, **options).to(dtype)
    bpe = torch.empty((), dtype=dtype).element_size()
    for t in (3, 9):
        _, cache = model.prefill(torch.randint(0, V, (1, t)))
        expected = state_bytes(kind, seq_len=t, d_model=16, n_layers=n_layers, n_heads=2, bytes_per_element=bpe,
                               **options)
        assert cache_bytes(cache) == expected == model_state_bytes(model, seq_len=t)
    cfg = dataclasses.asdict(model.config)  # the whole config works as options too
    sizes = {k: cfg.pop(k) for k in ("d_model", "n_layers", "n_heads")}
    assert state_bytes(kind, seq_len=9, bytes_per_element=bpe, **sizes, **cfg) == expected


def test_state_bytes_formulas_and_bf16_state():
    # hawk: layers · (W·(K-1)·b + W·b); griffin adds 2 · 1 · D · min(T, window) · b per attention layer
    assert state_bytes("hawk", seq_len=100, d_model=64, n_layers=2, n_heads=4) == 2 * (64 * 3 * 2 + 64 * 2)
    assert state_bytes("hawk", seq_len=10**6, d_model=64, n_layers=2, n_heads=4, lru_width=96) == 2 * (96 * 4 * 2)
    griffin = state_bytes("griffin", seq_len=1000, d_model=64, n_layers=3, n_heads=4, window=128)
    assert griffin == 2 * (64 * 3 * 2 + 64 * 2) + 2 * 16 * 128 * 2
    # A bf16 model keeps the RG-LRU state h in float32 (as the official code does)
    model = build_model("griffin", vocab_size=V, d_model=16, n_layers=3, n_heads=2, window=4).to(torch.bfloat16)
    logits, cache = model.prefill(torch.randint(0, V, (1, 7)))
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()
    assert cache.layers[0].h.dtype == torch.float32 and cache.layers[0].conv.dtype == torch.bfloat16
    assert cache_bytes(cache) == model_state_bytes(model, seq_len=7) == state_bytes(
        "griffin", seq_len=7, d_model=16, n_layers=3, n_heads=2, window=4, bytes_per_element=2,
        state_bytes_per_element=4)


@pytest.mark.parametrize("kind,options", ALL_MODELS, ids=IDS)
def test_gradients_reach_every_parameter(kind, options):
    model = tiny(kind, torch.float32, **options).train()
    tokens = torch.randint(0, V, (2, 9))
    loss = F.cross_entropy(model(tokens[:, :-1]).reshape(-1, V), tokens[:, 1:].reshape(-1))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    rg = model.blocks[-1 if kind == "griffin" and options.get("layer_pattern") else 0].mixer.rg_lru
    assert rg.a_param.grad.abs().sum() > 0 and rg.gate_a.weight.grad.abs().sum() > 0


def test_sqrt_gradient_is_clipped():
    x = torch.tensor([0.0, 1e-12, 0.25, 4.0], requires_grad=True)
    y = sqrt_bounded_grad(x)
    torch.testing.assert_close(y, torch.sqrt(x.detach()), atol=0, rtol=0)
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([1000.0, 1000.0, 1.0, 0.25]))


def test_decay_at_one_gives_finite_gradients(monkeypatch):
    """a → 1 makes 1 − a_t² exactly 0 in float32: the unclipped √ would give NaN gradients."""

    def grads():
        torch.manual_seed(0)
        model = build_model("hawk", vocab_size=V, d_model=16, n_layers=1, n_heads=2)
        with torch.no_grad():
            model.blocks[0].mixer.rg_lru.a_param[:4] = -200.0  # softplus underflows: log a = 0, a = 1
        model(torch.randint(0, V, (2, 8))).square().mean().backward()
        return [p.grad for p in model.parameters()]

    assert all(torch.isfinite(g).all() for g in grads())
    monkeypatch.setattr(griffin_module, "sqrt_bounded_grad", lambda x: torch.sqrt(x))
    assert not all(torch.isfinite(g).all() for g in grads())  # what the clipping prevents


def test_gate_values_of_a_layer():
    model = tiny("griffin", n_layers=3, window=4)
    tokens = torch.randint(0, V, (2, 10))
    g = model.gate_values(tokens, layer=1)
    for key in ("r", "i", "a_t", "x", "h"):
        assert g[key].shape == (2, 10, 16)
    assert g["a"].shape == (16,)
    assert ((g["r"] > 0) & (g["r"] < 1) & (g["i"] > 0) & (g["i"] < 1)).all()
    a_t = g["a_t"][:, 1:]
    assert ((a_t >= g["a"] ** 8) & (a_t <= 1)).all()  # a^(c·r) with r in (0, 1)
    # token 0 starts the document: a reset, a_t = 0 and the √ factor 1
    assert (g["a_t"][:, 0] == 0).all() and (g["multiplier"][:, 0] == 1).all()
    torch.testing.assert_close(g["b"][:, 0], g["i"][:, 0] * g["x"][:, 0], atol=0, rtol=0)
    # the states are the recurrence driven by these gates
    lam = model.blocks[1].mixer.rg_lru.lam.detach().numpy()
    reset = np.zeros((2, 10), dtype=bool)
    reset[:, 0] = True
    ref, _ = rg_lru(g["x"].numpy(), g["r"].numpy(), g["i"].numpy(), lam, reset=reset)
    np.testing.assert_allclose(g["h"].numpy(), ref, rtol=1e-10, atol=1e-12)
    first = model.gate_values(tokens)  # default: the first recurrent layer
    torch.testing.assert_close(first["r"], model.gate_values(tokens, layer=0)["r"])
    with pytest.raises(ValueError, match="layer 2 is an 'attention' layer; recurrent layers: \\[0, 1\\]"):
        model.gate_values(tokens, layer=2)
    with pytest.raises(ValueError, match="layer must be an int"):
        model.gate_values(tokens, layer=3)
    with pytest.raises(ValueError, match="no recurrent layer"):
        tiny("griffin", layer_pattern=["attention"]).gate_values(tokens)


def test_kernels_are_called_with_the_torch_backend_on_cpu(monkeypatch):
    import linattn_edu.kernels as kernels
    import linattn_edu.kernels.scan as scan

    calls = []
    for module, name in ((scan, "linear_scan"), (scan, "linear_scan_step"), (scan, "causal_conv1d"),
                         (scan, "causal_conv1d_step"), (kernels, "flash_attention")):
        real = getattr(module, name)

        def spy(*args, _name=name, _real=real, **kw):
            calls.append((_name, kw.get("backend"), kw.get("window")))
            return _real(*args, **kw)

        monkeypatch.setattr(module, name, spy)
    model = build_model("griffin", vocab_size=V, d_model=32, n_layers=2, n_heads=2, window=5)
    _, cache = model.prefill(torch.randint(0, V, (1, 6)))
    model.step(torch.tensor([3]), cache)
    assert calls == [("causal_conv1d", "torch", None), ("linear_scan", "torch", None),
                     ("flash_attention", "torch", 5),
                     ("causal_conv1d_step", None, None), ("linear_scan_step", None, None),
                     ("flash_attention", "torch", 5)]
    assert model.config.window_backend("cuda") is None and model.config.window_backend("cpu") == "torch"
    assert tiny("griffin").config.window_backend("cuda") == "torch"  # head dim 8: the flash kernel lacks it


def test_interpreter_backend_matches_torch_path():
    from linattn_edu.kernels import kernel_backend

    if kernel_backend(torch.zeros(1)) != "interpreter":
        pytest.skip("the Triton interpreter is not on here (conftest.py turns it on without a GPU)")
    opts = dict(vocab_size=V, d_model=32, n_layers=2, n_heads=2, window=4)
    kernel_model = build_model("griffin", attn_backend="interpreter", **opts)
    torch_model = build_model("griffin", attn_backend="torch", **opts)
    torch_model.load_state_dict(kernel_model.state_dict())
    x = torch.randint(0, V, (1, 12))
    torch.testing.assert_close(kernel_model(x), torch_model(x), atol=1e-5, rtol=1e-5)
    kernel_model(x).sum().backward()
    assert kernel_model.blocks[0].mixer.rg_lru.a_param.grad is not None


def test_config_rebuilds_the_same_architecture():
    for kind, extra in (("hawk", {"lru_width": 24, "tie_embeddings": False}),
                        ("griffin", {"layer_pattern": ["attention", "recurrent"], "window": 8, "c": 4.0})):
        model = build_model(kind, vocab_size=V, d_model=16, n_layers=2, n_heads=2, **extra)
        again = build_model(model.kind, **dataclasses.asdict(model.config))
        again.load_state_dict(model.state_dict())
        x = torch.randint(0, V, (1, 7))
        torch.testing.assert_close(again(x), model(x))


def test_tiny_models_learn_a_repeating_pattern():
    pattern = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8]).repeat(3)[None].repeat(4, 1)  # period 12
    for kind in ("hawk", "griffin"):
        torch.manual_seed(0)
        extra = {"window": 8} if kind == "griffin" else {}
        model = build_model(kind, vocab_size=V, d_model=32, n_layers=2, n_heads=2, **extra)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses = []
        for _ in range(20):
            loss = F.cross_entropy(model(pattern[:, :-1]).reshape(-1, V), pattern[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert np.mean(losses[-3:]) < 0.5 * losses[0], kind


@pytest.mark.parametrize(
    "kind,kwargs,match",
    [
        ("hawk", {"window": 4}, r"unknown option\(s\) \['window'\] for kind 'hawk'; valid options: \["),
        ("hawk", {"lru_width": 30}, "lru_width=30 must be divisible by n_heads=4"),
        ("hawk", {"lru_width": 0}, "lru_width"),
        ("hawk", {"conv_width": 0}, "conv_width"),
        ("hawk", {"c": 0.0}, "c must be a positive number"),
        ("hawk", {"a_min": 1.0}, "a_min"),
        ("hawk", {"a_max": 0.0}, "a_max"),
        ("hawk", {"a_min": 0.99, "a_max": 0.95}, "a_min=0.99 must be <= a_max=0.95"),
        ("hawk", {"mlp_ratio": 0}, "mlp_ratio"),
        ("hawk", {"dropout": 1.0}, "dropout"),
        ("hawk", {"tie_embeddings": 1}, "tie_embeddings"),
        ("hawk", {"attn_backend": "cuda"}, "attn_backend"),
        ("griffin", {"window": 0}, "window"),
        ("griffin", {"n_kv_heads": 3}, "n_kv_heads=3 must divide n_heads=4"),
        ("griffin", {"layer_pattern": ["recurrent", "mlp"]}, r"\['recurrent', 'attention'\], got 'mlp'"),
        ("griffin", {"layer_pattern": ["recurrent"]}, "layer_pattern must have n_layers=2 entries"),
        ("griffin", {"layer_pattern": "recurrent"}, "layer_pattern must be a list"),
        ("griffin", {"rope_base": 1}, "rope_base"),
        ("hawk", {"d_model": 30}, "lru_width=30 must be divisible by n_heads=4"),  # lru_width defaults to d_model
        ("griffin", {"d_model": 30, "lru_width": 32}, "d_model=30 must be divisible by n_heads=4"),
        ("griffin", {"d_model": 24}, "head dim d_model/n_heads divisible by 4"),
        ("griffin", {"n_layers": 0}, "n_layers"),
    ],
)
def test_build_errors_name_the_argument(kind, kwargs, match):
    args = dict(vocab_size=V, d_model=32, n_layers=2, n_heads=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_model(kind, **args)


def test_hawk_ignores_head_dim_rules_that_only_attention_needs():
    # no attention layer: d_model need not split into heads, only lru_width must
    model = build_model("griffin", vocab_size=V, d_model=30, n_layers=2, n_heads=4, lru_width=32,
                        layer_pattern=["recurrent", "recurrent"])
    assert model(torch.randint(0, V, (1, 5))).shape == (1, 5, V)
    assert build_model("hawk", vocab_size=V, d_model=30, n_layers=1, n_heads=4, lru_width=16).config.lru_width == 16


def test_state_bytes_errors():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['window'\] for kind 'hawk'"):
        state_bytes("hawk", seq_len=4, d_model=16, n_layers=1, n_heads=2, window=3)
    with pytest.raises(ValueError, match="layer_pattern entries"):
        state_bytes("griffin", seq_len=4, d_model=16, n_layers=1, n_heads=2, layer_pattern=["window"])


def test_bad_tokens_and_caches():
    model = tiny("griffin", n_layers=3, window=3)
    with pytest.raises(TypeError, match="tokens"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="vocab_size=13"):
        model(torch.full((1, 3), V))
    _, cache = model.prefill(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token must have shape \(B,\)"):
        model.step(torch.zeros(2, 1, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="batch size"):
        model.step(torch.zeros(3, dtype=torch.long), cache)
    with pytest.raises(TypeError, match="cache must be a GriffinCache"):
        model.step(torch.zeros(2, dtype=torch.long), MixerCache([], 0))
    _, hawk_cache = tiny("hawk", n_layers=3).prefill(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="cache layer 2 must hold the state of a 'attention' layer"):
        model.step(torch.zeros(2, dtype=torch.long), hawk_cache)
    with pytest.raises(ValueError, match="reset must have shape"):
        model.blocks[0].mixer.rg_lru(torch.zeros(1, 3, 16, dtype=torch.float64), reset=torch.zeros(1, 4, dtype=bool))


@pytest.mark.parametrize(
    "other",
    [
        ("hawk", {"n_layers": 2, "d_model": 32}),  # another width
        ("hawk", {"n_layers": 2, "conv_width": 2}),  # another conv
        ("hawk", {"n_layers": 2, "lru_width": 24}),  # another recurrence width
        ("griffin", {"n_layers": 2, "window": 3}),  # a shorter window (the attention cache holds 3 keys, not 4)
        ("griffin", {"n_layers": 2, "window": 8}),  # a longer window
        ("griffin", {"n_layers": 2, "n_kv_heads": 2}),  # grouped KV heads
    ],
    ids=["d_model", "conv_width", "lru_width", "window-3", "window-8", "n_kv_heads"],
)
def test_cache_of_a_differently_configured_model_is_refused(other):
    kind, options = other
    options = dict(options)
    target = tiny(kind, n_layers=2, **({"window": 4} if kind == "griffin" else {}))
    d_model, n_layers = options.pop("d_model", 16), options.pop("n_layers")
    model = build_model(kind, vocab_size=V, d_model=d_model, n_layers=n_layers, n_heads=2, **options).double()
    tokens = torch.randint(0, V, (2, 6))
    _, cache = model.prefill(tokens)
    with pytest.raises(ValueError, match=r"cache layer \d .* expects .*same config"):
        target.step(tokens[:, 0], cache)
    with pytest.raises(ValueError, match=r"cache layer \d .* expects .*same config"):
        target.prefill(tokens, cache)
    _, own = target.prefill(tokens)  # the model's own cache is fine
    target.step(tokens[:, 0], own)


def test_cache_position_must_match_the_attention_cache():
    model = tiny("griffin", n_layers=2, window=4)
    _, cache = model.prefill(torch.randint(0, V, (1, 2)))
    with pytest.raises(ValueError, match=r"cache layer 1 \('attention'\) holds \(K, V\)"):
        model.step(torch.tensor([1]), GriffinCache(cache.layers, position=3))
    with pytest.raises(ValueError, match="cache.position must be an int >= 0"):
        model.step(torch.tensor([1]), GriffinCache(cache.layers, position=-1))


def test_first_token_is_a_document_start_only_without_a_state():
    """No state: token 0 is a reset (h_0 = i_0 x_0, the official convention); a state, even zeros, continues."""
    layer = RGLRU(8, n_heads=2).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    i0 = torch.sigmoid(layer.gate_x(x[:, 0]))
    y, _ = layer(x)
    torch.testing.assert_close(y[:, 0], i0 * x[:, 0], atol=1e-15, rtol=0)
    y_step, _ = layer.step(x[:, 0], None)
    torch.testing.assert_close(y_step, y[:, 0], atol=1e-15, rtol=0)
    g = layer.gates(x[:, :1])  # no reset: the scaled input
    y_zero, _ = layer(x, torch.zeros(2, 8, dtype=torch.float64))
    torch.testing.assert_close(y_zero[:, 0], g["b"][:, 0], atol=1e-15, rtol=0)
    assert (y_zero[:, 0] - y[:, 0]).abs().max() > 1e-3
    # an explicit reset elsewhere keeps the one at token 0
    reset = torch.zeros(2, 5, dtype=torch.bool)
    reset[:, 3] = True
    y_r, _ = layer(x, reset=reset)
    torch.testing.assert_close(y_r[:, :3], y[:, :3], atol=0, rtol=0)
