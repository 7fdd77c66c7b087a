"""The ``"linearized"`` attention against a transcription of the official Linearized-LLM code.

The oracle below is our own re-typing, in float64 PyTorch, of the official attention forward of
GATECH-EIC/Linearized-LLM (commit 273274e):

- ``experiments/llama_attn_replace.py``, the patched ``LlamaAttention.forward`` (the grouped path
  after RoPE: q, k divided by their norms, ``_local_quadratic_attn_p`` /
  ``_local_quadratic_attn_p_g1`` for the local branch, ``_global_linear_attn_p`` /
  ``_global_linear_attn_causal`` for the global one,
  ``attn_output * local_factor + global_out * global_factor``, then ``attn_output += dwconv(v)``);
- ``experiments/fine-tune.py``, ``train()``: the DWConv is ``Conv2d(H, H, (63, 1), padding=(31, 0),
  bias=False, groups=H)`` applied to ``value_states (B, H, T, D)`` with its weight multiplied by
  ``conv_mask`` (taps ``63 // 2 + 1 ..`` zeroed: no future); ``global_factor`` is
  ``Parameter(zeros(1))``, ``local_factor`` ``Parameter(ones(1))``;
- ``experiments/medusa/model/modeling_llama_kv.py``: ``rotate_half`` / ``apply_rotary_pos_emb``
  and ``LlamaRotaryEmbedding`` (the HF LLaMA RoPE) for q and k, ``GROUP_SIZE`` default 64.

``einops.rearrange`` calls are written as ``reshape`` / ``permute``. Identical weights are copied
into both; the official masked 63-tap kernel maps to our 32 causal taps ``w[:, 0, :32, 0]``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from linattn_edu.models import build_model
from linattn_edu.models.linearized import (
    OFFICIAL_CONV_KERNEL_SIZE,
    OFFICIAL_GROUP_SIZE,
    official_causal_taps,
)

TOL = dict(atol=1e-10, rtol=1e-10)


# ------------------------------------------------------------------------------------------------
# The transcription (official names kept)
# ------------------------------------------------------------------------------------------------


def _rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def _rotary_cos_sin(dim, seq_len, base=10000.0):
    """``LlamaRotaryEmbedding._set_cos_sin_cache`` (float64 here)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    t = torch.arange(seq_len, dtype=torch.float64)
    freqs = torch.einsum("i,j->ij", t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def _local_quadratic_attn_p(q, k, v, causal_mask=None):
    qk = torch.einsum("bhgns,bhgms->bhgnm", q, k)
    a = torch.nn.functional.relu(qk) ** 2
    if causal_mask is not None:
        a = causal_mask.unsqueeze(1) * a
    return torch.einsum("bhgnm,bhgme->bhgne", a, v)


def _local_quadratic_attn_p_g1(q, k, v, causal_mask=None):
    qk = torch.einsum("bhns,bhms->bhnm", q, k)
    a = torch.nn.functional.relu(qk) ** 2
    if causal_mask is not None:
        a = causal_mask.unsqueeze(1) * a
    return torch.einsum("bhnm,bhme->bhne", a, v)


def _global_linear_attn_p(q, k, v):
    kv = torch.einsum("bhgcs,bhgce->bhgse", k, v)
    kv = torch.cumsum(kv, dim=2) - kv
    return torch.einsum("bhgcs,bhgse->bhgce", q, kv)


def _global_linear_attn_causal(q, k, v, q_res, k_res, v_res):
    kv = torch.einsum("bhgcs,bhgce->bhgse", k, v)
    kv1 = torch.cumsum(kv, dim=2)
    if kv1.size(2) > 0:
        qkv_res = torch.einsum("bhcs,bhse->bhce", q_res, kv1[:, :, -1, :, :])
        if q.size(2) > 0:
            qkv0 = torch.einsum("bhgcs,bhgse->bhgce", q, kv1 - kv)
        else:
            qkv0 = q_res.new_zeros((q_res.size(0), q_res.size(1), 0, q_res.size(3), kv1.size(-1)))
    else:
        qkv_res = q_res.new_zeros((q_res.size(0), q_res.size(1), q_res.size(2), kv1.size(-1)))
        if q.size(2) > 0:
            qkv0 = q_res.new_zeros((q_res.size(0), q_res.size(1), 0, q_res.size(3), kv1.size(-1)))
        else:
            qkv0 = torch.einsum("bhgcs,bhgse->bhgce", q, kv1 - kv)
    b, h, g, c, d = qkv0.shape
    return torch.cat((qkv0.reshape(b, h, g * c, d), qkv_res), dim=2)


def _groups(x, c):
    """``rearrange(x, "b h (g c) d -> b h g c d", c=c)``."""
    b, h, t, d = x.shape
    return x.reshape(b, h, t // c, c, d)


def _diag_mask(mask, c):
    """``rearrange(mask, "(g c) (g1 c1) -> c c1 g g1")``, its diagonal, ``-> b dia c c1``."""
    g = mask.shape[0] // c
    m = mask.reshape(g, c, g, c).permute(1, 3, 0, 2)
    m = torch.diagonal(m, dim1=-1, dim2=-2).unsqueeze(0)  # (1, c, c1, dia)
    return m.permute(0, 3, 1, 2)


def official_attention(hidden, q_w, k_w, v_w, o_w, dwconv, global_factor, local_factor, n_heads, group_size):
    """The official grouped attention with ``USE_GLOBAL=GLOBAL_FACTOR=ADD_CONV=1`` (``LOCAL_FACTOR=1``
    when ``local_factor`` is not None): ``hidden (B, T, C) -> (B, T, C)``, float64.

    ``llama_attn_replace.py`` forward from the projections to ``o_proj``; see the module docstring.
    """
    bsz, q_len, hidden_size = hidden.shape
    head_dim = hidden_size // n_heads
    query_states = (hidden @ q_w.t()).view(bsz, q_len, n_heads, head_dim).transpose(1, 2)
    key_states = (hidden @ k_w.t()).view(bsz, q_len, n_heads, head_dim).transpose(1, 2)
    value_states = (hidden @ v_w.t()).view(bsz, q_len, n_heads, head_dim).transpose(1, 2)
    cos, sin = _rotary_cos_sin(head_dim, q_len)
    query_states = query_states * cos + _rotate_half(query_states) * sin
    key_states = key_states * cos + _rotate_half(key_states) * sin
    causal = torch.full((q_len, q_len), torch.finfo(torch.float64).min, dtype=torch.float64).triu(1)
    attention_mask0 = torch.where(causal < 0, 0, 1).to(torch.float64)

    GROUP_SIZE = group_size
    query_t = query_states / query_states.norm(dim=-1, keepdim=True)
    key_t = key_states / key_states.norm(dim=-1, keepdim=True)
    value_t = value_states
    res = query_t.size(2) % GROUP_SIZE
    res_k = key_t.size(2) % GROUP_SIZE
    if not res:
        query_t, key_t, value_t = (_groups(z, GROUP_SIZE) for z in (query_t, key_t, value_t))
        local_out0 = _local_quadratic_attn_p(query_t, key_t, value_t, causal_mask=_diag_mask(attention_mask0, GROUP_SIZE))
        attn_output = local_out0.reshape(bsz, n_heads, q_len, head_dim)
    else:
        query_t_pre = _groups(query_t[:, :, :-res, :], GROUP_SIZE)
        query_t_res = query_t[:, :, -res:, :]
        if res_k == 0:
            res_k = key_t.size(2)
        key_t_pre = _groups(key_t[:, :, :-res_k, :], GROUP_SIZE)
        key_t_res = key_t[:, :, -res_k:, :]
        value_t_pre = _groups(value_t[:, :, :-res_k, :], GROUP_SIZE)
        value_t_res = value_t[:, :, -res_k:, :]
        attention_mask_res = attention_mask0[-res:, -res_k:].unsqueeze(0)
        if query_t_pre.size(2) > 0:
            attention_mask_pre = _diag_mask(attention_mask0[:-res, :-res_k], GROUP_SIZE)
            local_out_pre = _local_quadratic_attn_p(query_t_pre, key_t_pre, value_t_pre, causal_mask=attention_mask_pre)
            local_out_pre = local_out_pre.reshape(bsz, n_heads, -1, head_dim)
        local_out_res = _local_quadratic_attn_p_g1(query_t_res, key_t_res, value_t_res, causal_mask=attention_mask_res)
        attn_output = torch.cat([local_out_pre, local_out_res], dim=2) if query_t_pre.size(2) > 0 else local_out_res
    # USE_GLOBAL
    if not res:
        global_out = _global_linear_attn_p(query_t, key_t, value_t).reshape(bsz, n_heads, q_len, head_dim)
    else:
        global_out = _global_linear_attn_causal(query_t_pre, key_t_pre, value_t_pre, query_t_res, key_t_res, value_t_res)
    attn_output = attn_output * (local_factor if local_factor is not None else 1.0) + global_out * global_factor
    # ADD_CONV
    with torch.no_grad():
        dwconv.weight.data *= dwconv.conv_mask
    attn_output = attn_output + dwconv(value_states)
    attn_output = attn_output.transpose(1, 2).reshape(bsz, q_len, hidden_size)
    return attn_output @ o_w.t()


def official_dwconv(n_heads, res_kernel_size=OFFICIAL_CONV_KERNEL_SIZE):
    """``fine-tune.py``: the DWConv and its ``conv_mask`` buffer (float64 here)."""
    dwconv = nn.Conv2d(n_heads, n_heads, kernel_size=(res_kernel_size, 1), padding=(res_kernel_size // 2, 0),
                       bias=False, groups=n_heads).double()
    conv_mask = torch.ones((1, 1, res_kernel_size, 1), dtype=torch.float64)
    conv_mask[:, :, res_kernel_size // 2 + 1 :, :] = 0.0
    dwconv.register_buffer("conv_mask", conv_mask)
    return dwconv


# ------------------------------------------------------------------------------------------------
# The tests
# ------------------------------------------------------------------------------------------------


def _pair(group_size, local_factor, seed=0, n_heads=2, d_model=16):
    torch.manual_seed(seed)
    model = build_model("linearized", vocab_size=32, d_model=d_model, n_layers=1, n_heads=n_heads,
                        group_size=group_size, conv_kernel_size=official_causal_taps(),
                        local_factor=local_factor).double().eval()
    attn = model.blocks[0].attn
    dwconv = official_dwconv(n_heads)
    with torch.no_grad():
        dwconv.weight.normal_(0.0, 0.3)
        attn.conv_weight.copy_(dwconv.weight[:, 0, : official_causal_taps(), 0])
        attn.alpha.fill_(0.7)  # trained value; the official init 0 is tested below
        if local_factor:
            attn.local_factor.fill_(1.3)
    gf = torch.tensor([0.7], dtype=torch.float64)
    lf = torch.tensor([1.3], dtype=torch.float64) if local_factor else None
    return attn, dwconv, gf, lf


@pytest.mark.parametrize("t_len", [5, 24, 29, 70])
@pytest.mark.parametrize("local_factor", [False, True])
def test_attention_matches_official_transcription(t_len, local_factor):
    g = 8
    attn, dwconv, gf, lf = _pair(g, local_factor)
    x = torch.randn(2, t_len, 16, dtype=torch.float64)
    mine, _ = attn(x, keep_state=False)
    theirs = official_attention(x, attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight, attn.out_proj.weight,
                                dwconv, gf, lf, n_heads=2, group_size=g)
    torch.testing.assert_close(mine, theirs, **TOL)


def test_decode_matches_official_transcription():
    """prefill + step of a 1-layer model's attention reproduce the official full forward."""
    g, t_len = 8, 37
    attn, dwconv, gf, lf = _pair(g, True, seed=1)
    x = torch.randn(1, t_len, 16, dtype=torch.float64)
    theirs = official_attention(x, attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight, attn.out_proj.weight,
                                dwconv, gf, lf, n_heads=2, group_size=g)
    out, state = attn(x[:, :13], position=0)
    outs = [out]
    for t in range(13, t_len):
        o, state = attn(x[:, t : t + 1], state, position=t)
        outs.append(o)
    torch.testing.assert_close(torch.cat(outs, dim=1), theirs, **TOL)


def test_official_parameterisation_by_default():
    """One filter per head (H·K weights, no bias), one α per layer at 0, no local_factor by default."""
    h, k = 4, 5
    model = build_model("linearized", vocab_size=32, d_model=32, n_layers=2, n_heads=h, conv_kernel_size=k)
    for block in model.blocks:
        attn = block.attn
        assert attn.conv_weight.shape == (h, k)
        assert attn.alpha.shape == (1,) and float(attn.alpha.detach()) == 0.0
        assert attn.local_factor is None
        names = {n for n, _ in attn.named_parameters()}
        assert names == {"q_proj.weight", "k_proj.weight", "v_proj.weight", "out_proj.weight", "conv_weight", "alpha"}
    with_lf = build_model("linearized", vocab_size=32, d_model=32, n_layers=1, n_heads=h, local_factor=True)
    assert float(with_lf.blocks[0].attn.local_factor.detach()) == 1.0
    # this book's variants stay available
    book = build_model("linearized", vocab_size=32, d_model=32, n_layers=1, n_heads=h, conv_kernel_size=k,
                       conv_filters="channel", alpha_per="head")
    assert book.blocks[0].attn.conv_weight.shape == (32, k) and book.blocks[0].attn.alpha.shape == (h,)
    # a head filter is the channel filter repeated over the head's D channels
    w = model.blocks[0].attn.channel_weight()
    assert w.shape == (32, k) and torch.equal(w[:8], model.blocks[0].attn.conv_weight[:1].expand(8, k))


def test_official_kernel_constants():
    assert official_causal_taps(OFFICIAL_CONV_KERNEL_SIZE) == 32 and OFFICIAL_GROUP_SIZE == 64
    assert official_causal_taps(5) == 3
    for bad in (0, 4, -3, 2.0, True):
        with pytest.raises(ValueError, match="kernel_size"):
            official_causal_taps(bad)


def test_official_options_are_checked():
    for bad, name in (({"conv_filters": "depth"}, "conv_filters"), ({"alpha_per": "token"}, "alpha_per"),
                      ({"local_factor": 1}, "local_factor"),
                      ({"local_factor": True, "attention": "linear"}, "local_factor")):
        with pytest.raises(ValueError, match=name):
            build_model("linearized", vocab_size=32, d_model=16, n_layers=1, n_heads=2, **bad)
