"""Linearized LLMs: DWConv-augmented and grouped linear attention (references and the zoo kind)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from linattn_edu.models import (
    LinearizedCache,
    available_models,
    build_model,
    cache_bytes,
    linearize,
    model_state_bytes,
    state_bytes,
)
from linattn_edu.reference import (
    augmented_linear_attention,
    causal_conv1d,
    centered_conv1d,
    grouped_linear_attention,
    linear_attention,
    softmax_attention,
    value_conv,
)

V = 13
RNG = np.random.default_rng(0)


def qkv(b=2, h=3, t=11, d=4, dv=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(b, h, t, d)), rng.normal(size=(b, h, t, d)), rng.normal(size=(b, h, t, dv))


# ----------------------------------------------------------------------------------------------
# References
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("local", ["relu2", "softmax"])
@pytest.mark.parametrize("feature_map", ["identity", "elu", "taylor"])
@pytest.mark.parametrize("t,g", [(1, 4), (11, 4), (12, 4), (7, 1), (5, 8)])
def test_grouped_parallel_equals_group_recurrent(local, feature_map, t, g):
    q, k, v = qkv(t=t)
    kw = dict(group_size=g, local=local, feature_map=feature_map, alpha=np.array([0.5, 1.0, -2.0]))
    par = grouped_linear_attention(q, k, v, **kw)
    rec = grouped_linear_attention(q, k, v, form="recurrent", **kw)
    assert par.shape == (2, 3, t, 5) and par.dtype == np.float64
    np.testing.assert_allclose(rec, par, rtol=1e-12, atol=1e-12)


def test_grouped_limits_one_group_is_attention_and_singletons_are_linear():
    q, k, v = qkv(t=9)
    # one group covering everything, softmax scores: plain causal softmax attention (alpha is unused)
    one = grouped_linear_attention(q, k, v, group_size=9, local="softmax", normalize_qk=False, alpha=3.0)
    np.testing.assert_allclose(one, softmax_attention(q, k, v, causal=True), rtol=1e-12, atol=1e-12)
    # relu² with no denominator, by hand
    qn = q / np.linalg.norm(q, axis=-1, keepdims=True)
    kn = k / np.linalg.norm(k, axis=-1, keepdims=True)
    w = np.maximum(qn @ np.swapaxes(kn, -1, -2), 0) ** 2 * np.tril(np.ones((9, 9)))
    np.testing.assert_allclose(grouped_linear_attention(q, k, v, group_size=16), w @ v, rtol=1e-12, atol=1e-12)
    # groups of one: the global branch is exclusive linear attention (identity map, no denominator)
    g1 = grouped_linear_attention(q, k, v, group_size=1, alpha=1.0)
    inclusive = linear_attention(qn, kn, v, feature_map="identity", normalize=False)
    diag = np.einsum("bhtd,bhtd->bht", qn, kn)[..., None]
    np.testing.assert_allclose(g1, inclusive - diag * v + np.maximum(diag, 0) ** 2 * v, rtol=1e-11, atol=1e-12)
    # alpha = 0: only the local branch
    np.testing.assert_allclose(
        grouped_linear_attention(q, k, v, group_size=4, alpha=0.0),
        grouped_linear_attention(q, k, v, group_size=4, alpha=0.0, feature_map="elu"), rtol=0, atol=0,
    )


@pytest.mark.parametrize("form", ["parallel", "recurrent"])
def test_grouped_attention_is_causal(form):
    q, k, v = qkv(t=10)
    q2, k2, v2 = q.copy(), k.copy(), v.copy()
    q2[:, :, 6:] += 1.0
    k2[:, :, 6:] -= 2.0
    v2[:, :, 6:] *= 3.0
    a = grouped_linear_attention(q, k, v, group_size=4, form=form)
    b = grouped_linear_attention(q2, k2, v2, group_size=4, form=form)
    np.testing.assert_array_equal(a[:, :, :6], b[:, :, :6])
    assert np.abs(a[:, :, 6:] - b[:, :, 6:]).max() > 1e-3


def test_centered_conv_matches_torch_and_augmented_is_linear_plus_conv():
    x = RNG.normal(size=(2, 9, 6))
    w = RNG.normal(size=(6, 5))
    b = RNG.normal(size=6)
    expect = F.conv1d(torch.tensor(x).transpose(1, 2), torch.tensor(w)[:, None], torch.tensor(b), padding=2, groups=6)
    np.testing.assert_allclose(centered_conv1d(x, w, b), expect.transpose(1, 2).numpy(), rtol=1e-12, atol=1e-12)

    q, k, v = qkv(t=8)
    w3 = RNG.normal(size=(3, 5, 3))  # (H, Dv, K)
    flat = w3.reshape(15, 3)  # (H·Dv, K), channel h·Dv + d
    v_btc = v.transpose(0, 2, 1, 3).reshape(2, 8, 15)
    for causal, conv in ((True, causal_conv1d), (False, centered_conv1d)):
        conv_out = conv(v_btc, flat).reshape(2, 8, 3, 5).transpose(0, 2, 1, 3)
        expect = linear_attention(q, k, v, feature_map="elu") + conv_out
        out = augmented_linear_attention(q, k, v, w3, causal_conv=causal)
        np.testing.assert_allclose(out, expect, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(augmented_linear_attention(q, k, v, flat, causal_conv=causal), out)
        np.testing.assert_array_equal(value_conv(v, w3, causal=causal), conv_out)


def test_causal_conv_is_causal_and_the_centered_conv_leaks_the_future():
    q, k, v = qkv(t=10)
    w = RNG.normal(size=(3, 5, 5))
    v2 = v.copy()
    v2[:, :, 7] += 1.0  # change token 7 only
    causal_a = augmented_linear_attention(q, k, v, w, causal_conv=True)
    causal_b = augmented_linear_attention(q, k, v2, w, causal_conv=True)
    np.testing.assert_array_equal(causal_a[:, :, :7], causal_b[:, :, :7])
    leak_a = augmented_linear_attention(q, k, v, w, causal_conv=False)
    leak_b = augmented_linear_attention(q, k, v2, w, causal_conv=False)
    np.testing.assert_array_equal(leak_a[:, :, :5], leak_b[:, :, :5])  # K//2 = 2 taps of future
    # the leak: outputs 5 and 6 (the past of token 7) change
    assert np.abs(leak_a[:, :, 5:7] - leak_b[:, :, 5:7]).min() > 0
    assert np.abs(leak_a[:, :, 5:7] - leak_b[:, :, 5:7]).max() > 1e-3


def test_value_conv_one_filter_per_head_is_the_official_layout():
    """``(H, 1, K)``: each head's filter shared by its channels, equal to the repeated ``(H, Dv, K)`` form."""
    q, k, v = qkv(t=9)
    h, dv = v.shape[1], v.shape[3]
    w = np.random.default_rng(3).standard_normal((h, 1, 4))
    np.testing.assert_array_equal(value_conv(v, w), value_conv(v, np.repeat(w, dv, axis=1)))
    # against the official module: Conv2d(H, H, (K, 1), groups=H, padding=(K//2, 0)) over (B, H, T, D),
    # future taps masked (experiments/fine-tune.py, GATECH-EIC/Linearized-LLM)
    big = np.zeros((h, 1, 7))
    big[:, :, :4] = w  # taps 0..3 = t-3..t of a centered 7-tap kernel; taps 4..6 (the future) are zero
    conv = torch.nn.Conv2d(h, h, (7, 1), padding=(3, 0), groups=h, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(big)[..., None])
        official = conv(torch.tensor(v)).numpy()
    np.testing.assert_allclose(value_conv(v, w), official, rtol=1e-12, atol=1e-12)


def test_reference_validation():
    q, k, v = qkv(t=6)
    with pytest.raises(ValueError, match="weight.*K odd"):
        centered_conv1d(np.zeros((1, 4, 2)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"weight must have shape \(C, K\)"):
        centered_conv1d(np.zeros((1, 4, 2)), np.zeros((3, 3)))
    with pytest.raises(TypeError, match="x"):
        centered_conv1d(np.zeros((1, 4, 2), dtype=int), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"conv_weight must have shape \(H, Dv, K\)"):
        augmented_linear_attention(q, k, v, np.zeros((3, 4, 3)))
    with pytest.raises(ValueError, match="conv_weight must have an odd K"):
        augmented_linear_attention(q, k, v, np.zeros((15, 4)), causal_conv=False)
    with pytest.raises(ValueError, match=r"k must have q's shape \(B, H, T, D\)"):
        grouped_linear_attention(q, k[:, :, :3], v, group_size=2)
    with pytest.raises(ValueError, match=r"v must have shape \(B, H, T, Dv\)"):
        grouped_linear_attention(q, k, v[:, :2], group_size=2)
    with pytest.raises(ValueError, match=r"q must have shape \(B, H, T, D\)"):
        grouped_linear_attention(q[0], k[0], v[0], group_size=2)
    with pytest.raises(TypeError, match="q"):
        grouped_linear_attention(q.astype(int), k, v, group_size=2)
    with pytest.raises(ValueError, match="group_size"):
        grouped_linear_attention(q, k, v, group_size=0)
    with pytest.raises(ValueError, match="local"):
        grouped_linear_attention(q, k, v, group_size=2, local="exp")
    with pytest.raises(ValueError, match="form"):
        grouped_linear_attention(q, k, v, group_size=2, form="chunked")
    with pytest.raises(ValueError, match="alpha"):
        grouped_linear_attention(q, k, v, group_size=2, alpha=np.ones(2))
    with pytest.raises(ValueError, match="feature_map"):
        grouped_linear_attention(q, k, v, group_size=2, feature_map="cosine")


# ----------------------------------------------------------------------------------------------
# The zoo kind
# ----------------------------------------------------------------------------------------------

COMBOS = [
    {},  # grouped, relu², identity φ, RoPE, conv
    {"local": "softmax", "pos": "none", "conv": False},
    {"feature_map": "elu", "normalize_qk": False, "conv_kernel_size": 1, "group_size": 3},
    {"attention": "linear"},  # elu, normalized, RoPE, conv
    {"attention": "linear", "feature_map": "taylor", "normalize_qk": True, "conv": False, "pos": "none"},
    {"conv_filters": "channel", "alpha_per": "head", "local_factor": True},  # this book's variants + local_factor
]
IDS = ["grouped", "grouped-softmax", "grouped-elu-k1", "linear", "linear-taylor", "grouped-book-variants"]


def tiny(**options):
    opts = dict(group_size=4, conv_kernel_size=3, chunk_size=4, alpha_init=0.7)
    opts.update(options)
    return build_model("linearized", vocab_size=V, d_model=16, n_layers=2, n_heads=2, **opts).double().eval()


def test_registered_and_defaults():
    assert "linearized" in available_models()
    cfg = build_model("linearized", vocab_size=V, d_model=32, n_layers=1, n_heads=2).config
    assert (cfg.attention, cfg.conv, cfg.conv_kernel_size, cfg.group_size) == ("grouped", True, 4, 16)
    assert (cfg.feature_map, cfg.normalize_qk, cfg.local, cfg.pos) == ("identity", True, "relu2", "rope")
    assert (cfg.alpha_init, cfg.conv_init) == (0.0, "normal")
    assert (cfg.conv_filters, cfg.alpha_per, cfg.local_factor) == ("head", "layer", False)  # official
    lin = build_model("linearized", vocab_size=V, d_model=32, n_layers=1, n_heads=2, attention="linear").config
    assert (lin.feature_map, lin.normalize_qk) == ("elu", False)
    rebuilt = build_model("linearized", **dataclasses.asdict(cfg))
    assert rebuilt.config == cfg


@pytest.mark.parametrize("options", COMBOS, ids=IDS)
def test_decode_equals_prefill_and_cache_bytes(options):
    model = tiny(**options)
    tokens = torch.randint(0, V, (2, 11))
    full = model(tokens)
    logits, cache = model.prefill(tokens[:, :3])
    outs = [logits]
    for t in range(3, 11):
        step, cache = model.step(tokens[:, t], cache)
        outs.append(step[:, None])
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-12, rtol=0)
    assert isinstance(cache, LinearizedCache) and cache.position == 11
    a, cache_a = model.prefill(tokens[:, :6])  # chunked prefill, ending mid-group
    b, cache_b = model.prefill(tokens[:, 6:], cache_a)
    torch.testing.assert_close(torch.cat([a, b], 1), full, atol=1e-12, rtol=0)
    assert cache_bytes(cache_b) == cache_bytes(cache)
    for t in (1, 4, 7, 8):  # cache bytes (batch 1) == the state_bytes formula, on and off group boundaries
        _, c = model.prefill(tokens[:1, :t])
        assert cache_bytes(c) == model_state_bytes(model, seq_len=t)


def test_state_bytes_formula():
    kw = dict(seq_len=21, d_model=32, n_layers=2, n_heads=2, bytes_per_element=2)
    # S (16x16) + 21 mod 16 = 5 keys and values + 3 conv inputs, per head and layer
    assert state_bytes("linearized", **kw) == 2 * 2 * (16 * 16 * 2 + 2 * 16 * 5 * 2 + 16 * 3 * 2)
    assert state_bytes("linearized", attention="linear", conv=False, **kw) == 2 * 2 * (16 * 16 + 16) * 2


@pytest.mark.parametrize("options", COMBOS, ids=IDS)
def test_future_tokens_never_change_past_logits(options):
    model = tiny(**options)
    a = torch.randint(0, V, (1, 12))
    b = a.clone()
    b[0, 7:] = (b[0, 7:] + 1 + torch.randint(0, V - 1, (5,))) % V
    la, lb = model(a), model(b)
    torch.testing.assert_close(la[:, :7], lb[:, :7], atol=1e-12, rtol=0)
    assert (la[:, 7:] - lb[:, 7:]).abs().max() > 1e-8


@pytest.mark.parametrize("options", [{}, {"local": "softmax", "feature_map": "elu"}, {"attention": "linear"}])
def test_attention_layer_matches_numpy_reference(options):
    model = tiny(alpha_per="head", **options)  # one α per head: this book's variant, the reference's general case
    attn = model.blocks[0].attn
    if attn.alpha is not None:
        with torch.no_grad():
            attn.alpha.copy_(torch.tensor([0.5, -1.5]))
    x = torch.randn(2, 10, 16, dtype=torch.float64)
    out, _ = attn(x, keep_state=False)
    q, k, v = (z.detach().numpy() for z in attn.project(x, torch.arange(10)))  # after RoPE (and norm)
    w = attn.channel_weight().detach().numpy()  # (H·D, K): each head's filter repeated over its channels
    cfg = model.config
    if cfg.attention == "grouped":
        o = grouped_linear_attention(q, k, v, group_size=4, alpha=[0.5, -1.5], local=cfg.local,
                                     feature_map=cfg.feature_map, normalize_qk=False) + value_conv(v, w)
    else:
        o = augmented_linear_attention(q, k, v, w, feature_map="elu", eps=cfg.eps)
    expect = attn.out_proj(torch.tensor(o).transpose(1, 2).reshape(2, 10, 16))
    torch.testing.assert_close(out, expect, atol=1e-12, rtol=1e-12)


def fields(state):
    return [getattr(state, f.name) for f in dataclasses.fields(state)]


def random_tree(rng, max_depth=4, max_branch=3, max_nodes=18):
    """A parents-first parent array: 1..3 roots, each node 0..3 children, depth <= 4 levels."""
    parents, frontier = [], [(-1, 0)]
    while frontier:
        parent, depth = frontier.pop(0)
        if depth == max_depth:
            continue
        for _ in range(rng.integers(1 if parent == -1 else 0, max_branch + 1)):
            if len(parents) == max_nodes:
                return parents
            parents.append(parent)
            frontier.append((len(parents) - 1, depth + 1))
    return parents


@pytest.mark.parametrize("options", [{}, {"local": "softmax", "conv_kernel_size": 4}, {"attention": "linear"}],
                         ids=["grouped", "grouped-softmax", "linear"])
def test_tree_step_equals_step_decoding_every_root_path(options):
    model = tiny(**options)
    rng = np.random.default_rng(1)
    for prefix_len in (6, 4, 1):  # trees start mid-group (crossing the boundary at 8), on a boundary
        prompt = torch.randint(0, V, (2, prefix_len))
        _, cache = model.prefill(prompt)
        before = [[None if z is None else z.clone() for z in fields(st)] for st in cache.layers]
        parents = random_tree(rng)
        if prefix_len == 6:
            parents = [-1, 0, 1, 2] + [p + 4 if p >= 0 else -1 for p in parents]  # a depth-4 chain too
            parents = parents[:22]
        tree_tokens = torch.randint(0, V, (2, len(parents)))
        logits = model.tree_step(tree_tokens, parents, cache)
        assert logits.shape == (2, len(parents), V)
        caches = []
        for i, p in enumerate(parents):
            step_logits, c = model.step(tree_tokens[:, i], cache if p < 0 else caches[p])
            caches.append(c)
            torch.testing.assert_close(logits[:, i], step_logits, atol=1e-12, rtol=0)
        after = [fields(st) for st in cache.layers]
        for old, new in zip(before, after):  # the cache was not modified
            for x, y in zip(old, new):
                assert (x is None and y is None) or torch.equal(x, y)
        assert cache.position == prefix_len


def test_tree_step_bad_parents():
    model = tiny()
    _, cache = model.prefill(torch.randint(0, V, (1, 3)))
    tokens = torch.randint(0, V, (1, 3))
    for bad in ([-1, 0], [-1, 1, 0], [-1, 0, -2], [0, 0, 1]):
        with pytest.raises(ValueError, match="parents"):
            model.tree_step(tokens, bad, cache)


@pytest.mark.parametrize("pos,n_kv_heads,tie", [("rope", 2, True), ("none", 1, False), ("rope", 1, True)])
def test_linearize_copies_weights_and_starts_local(pos, n_kv_heads, tie):
    src = build_model("transformer", vocab_size=V, d_model=16, n_layers=2, n_heads=2, pos=pos,
                      n_kv_heads=n_kv_heads, norm="rmsnorm", tie_embeddings=tie).double().eval()
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.1 * torch.randn_like(p))  # "trained": norms not at their init
    model = linearize(src)
    assert model.kind == "linearized" and model.config.pos == pos and next(model.parameters()).dtype == torch.float64
    assert torch.equal(model.tok_emb.weight, src.tok_emb.weight)
    assert torch.equal(model.lm_head.weight, src.lm_head.weight)
    assert torch.equal(model.norm_out.weight, src.norm_out.weight)
    for mine, theirs in zip(model.blocks, src.blocks):
        for name in ("norm_attn", "norm_mlp", "mlp"):
            for (k1, t1), (k2, t2) in zip(getattr(mine, name).state_dict().items(),
                                          getattr(theirs, name).state_dict().items()):
                assert k1 == k2 and torch.equal(t1, t2)
        assert torch.equal(mine.attn.q_proj.weight, theirs.attn.q_proj.weight)
        assert torch.equal(mine.attn.out_proj.weight, theirs.attn.out_proj.weight)
        k_w, v_w = theirs.attn.kv_proj.weight.view(2, n_kv_heads, 8, 16)
        for h in range(2):  # query head h reads kv head h // (2 / n_kv_heads)
            kv_head = h // (2 // n_kv_heads)
            assert torch.equal(mine.attn.k_proj.weight[8 * h : 8 * h + 8], k_w[kv_head])
            assert torch.equal(mine.attn.v_proj.weight[8 * h : 8 * h + 8], v_w[kv_head])
        assert not mine.attn.conv_weight.any() and not mine.attn.alpha.any()
    tokens = torch.randint(0, V, (2, 10))
    # conv = 0 and α = 0: the output is the local branch alone (no conv, any global feature map) ...
    local_only = linearize(src, conv=False, feature_map="elu")
    torch.testing.assert_close(model(tokens), local_only(tokens), atol=1e-12, rtol=0)
    # ... and a softmax local branch over one group of the whole sequence is the Transformer itself
    same = linearize(src, local="softmax", normalize_qk=False, group_size=16)
    torch.testing.assert_close(same(tokens), src(tokens), atol=1e-12, rtol=0)
    # the branches start at zero but are trainable: a gradient reaches the conv kernel and α
    model.train()
    longer = torch.randint(0, V, (2, 20))  # past one group of 16, so the global branch is used
    F.cross_entropy(model(longer).flatten(0, 1), longer.flatten()).backward()
    assert model.blocks[0].attn.conv_weight.grad.abs().max() > 0 and model.blocks[0].attn.alpha.grad.abs().max() > 0


def test_bad_options_raise():
    for bad in ({"attention": "softmax"}, {"group_size": 0}, {"conv_kernel_size": 0}, {"conv_init": "xavier"},
                {"local": "exp"}, {"feature_map": "cos"}, {"pos": "alibi"}, {"conv": 1}, {"alpha_init": "0"},
                {"normalize_qk": "yes"}, {"window": 4}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            build_model("linearized", vocab_size=V, d_model=16, n_layers=1, n_heads=2, **bad)
    alibi = build_model("transformer", vocab_size=V, d_model=16, n_layers=1, n_heads=2, pos="alibi")
    with pytest.raises(ValueError, match="pos"):
        linearize(alibi)
    with pytest.raises(ValueError, match="d_model"):
        linearize(build_model("transformer", vocab_size=V, d_model=16, n_layers=1, n_heads=2, pos="rope"), d_model=8)
    with pytest.raises(TypeError, match="transformer"):
        linearize(tiny())
    model = tiny()
    with pytest.raises(TypeError, match="cache"):
        model.step(torch.tensor([1]), None)


def test_centered_conv_option_leaks_and_cannot_decode():
    """conv_causal=False is the leaky centered conv: forward equals the NumPy centered reference
    path (the future changes the past), and every decoding entry point refuses it."""
    torch.manual_seed(0)
    model = build_model("linearized", vocab_size=32, d_model=16, n_layers=1, n_heads=2, attention="linear",
                        conv_kernel_size=5, conv_causal=False).double().eval()
    tokens = torch.randint(0, 32, (1, 12))
    changed = tokens.clone()
    changed[0, 8] = (changed[0, 8] + 1) % 32
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    assert (a[0, 6:8] - b[0, 6:8]).abs().max() > 1e-6   # positions 6, 7 read token 8: the leak
    assert torch.equal(a[0, :6], b[0, :6])                # beyond K//2 = 2 taps: untouched
    for call in (lambda: model.prefill(tokens), lambda: model.step(tokens[:, 0], None)):
        with pytest.raises(ValueError, match="conv_causal"):
            call()
    with pytest.raises(ValueError, match="odd"):
        build_model("linearized", vocab_size=32, d_model=16, n_layers=1, n_heads=2, conv_kernel_size=4,
                    conv_causal=False)


def test_cache_from_a_differently_configured_model_is_refused():
    tokens = torch.randint(0, V, (1, 6))
    base = dict(vocab_size=V, d_model=16, n_layers=2, n_heads=2)
    model = build_model("linearized", **base, group_size=4, conv_kernel_size=3).double().eval()
    for other in ({"group_size": 5, "conv_kernel_size": 3}, {"group_size": 4, "conv_kernel_size": 4},
                  {"group_size": 4, "conv": False}, {"attention": "linear", "conv_kernel_size": 3},
                  {"group_size": 4, "conv_kernel_size": 3, "feature_map": "elu"}):
        foreign = build_model("linearized", **base, **other).double().eval()
        _, cache = foreign.prefill(tokens)
        with pytest.raises(ValueError, match="cache"):
            model.step(tokens[:, 0], cache)
        with pytest.raises(ValueError, match="cache"):
            model.prefill(tokens, cache)
        with pytest.raises(ValueError, match="cache"):
            model.tree_step(tokens[:, :2], [-1, 0], cache)
    # without the signature the shapes are still checked
    _, cache = build_model("linearized", **base, group_size=4, conv_kernel_size=4).double().prefill(tokens)
    cache.signature = None
    with pytest.raises(ValueError, match="cache does not fit"):
        model.step(tokens[:, 0], cache)
