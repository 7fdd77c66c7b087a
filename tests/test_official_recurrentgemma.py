"""Griffin/Hawk against a transcription of the official RecurrentGemma PyTorch code.

The functions prefixed ``official_`` are our own re-typing, in torch and float64, of
google-deepmind/recurrentgemma at commit ``2efa84dac0e68e63547a27a18fa943c98f1c312e``
(2026-02-06); the line numbers refer to that commit:

- ``recurrentgemma/torch/layers.py``
    - ``rnn_scan`` (lines 141-191)                          -> :func:`official_rnn_scan`
    - ``RGLRU.forward`` (lines 314-366)                     -> :func:`official_rg_lru`
    - ``Conv1D.forward`` (lines 448-530) with its helpers ``_concatenate_with_cache``,
      ``_convolution_window_indices``, ``_compute_document_mask``, ``_pad_window`` and
      ``_pad_cache`` (lines 531-636)                         -> :func:`official_conv1d`
- ``recurrentgemma/torch/modules.py``
    - ``RecurrentBlock.forward`` (lines 606-656)            -> :func:`official_recurrent_block`
    - ``_compute_causal_mask`` (lines 89-124) and ``_compute_forward_pass_mask``
      (lines 128-150)                                        -> :func:`official_forward_pass_mask`
    - ``_apply_rope`` (lines 52-85) and the no-cache path of ``LocalAttentionBlock.forward``
      (lines 399-476)                                        -> :func:`official_local_attention`

Deliberate differences, none of which changes the equations: everything runs in float64 (the
official code accumulates the scan in float32 and the softmax in float32, so that the test
measures the equations rather than rounding); the weights are passed as tensors instead of
module attributes; ``Conv1D`` multiplies the masked window in place (``x_window *= mask``),
written here out of place (the masks only grow with the shift, so the result is the same).

Weight layouts (official -> this package, see :func:`official_weights`):

- ``RGLRU.input_gate`` / ``a_gate`` (``BlockDiagonalLinear``: ``w (H, W/H, W/H)``, ``b (H, W/H)``,
  ``y = einsum("... h i, h i j -> ... h j") + b``) -> ``RGLRU.gate_x`` / ``gate_a`` (same layout);
- ``RGLRU.a_param`` (the official parameter is ``-Λ``: ``log a = -softplus(a_param)``) ->
  ``RGLRU.a_param`` (the same ``-Λ``);
- ``Conv1D.w (temporal_width, W)``, ``w[temporal_width - 1 - s]`` multiplying the input ``s``
  steps back -> ``CausalConv1d.weight (W, K)`` with tap ``K - 1`` on the current token, so
  ``official w = weight.T``; ``Conv1D.b`` -> ``CausalConv1d.bias``;
- ``RecurrentBlock.linear_x / linear_y / linear_out`` -> ``linear_x / linear_y / out_proj``;
- ``LocalAttentionBlock.proj_q / proj_k / proj_v / proj_final`` -> ``q_proj``, the two halves of
  ``kv_proj`` (rows ``[0, head_dim)`` keys, ``[head_dim, 2 head_dim)`` values), ``out_proj``.

Official windows: ``window_size=w`` lets a query see keys with ``0 <= q - k <= w``, that is
``w + 1`` keys including itself. This package's ``window=w`` means ``w`` keys including the
current one, so official ``window_size=w`` is package ``window=w + 1``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from linattn_edu.models import RGLRU, GriffinConfig, HawkConfig, RecurrentState, build_model
from linattn_edu.models.griffin import LocalAttention, RecurrentBlock
from linattn_edu.reference import attention_mask

DT = torch.float64
TOL = 1e-5  # the bound; the measured differences are at float64 rounding (~1e-15)


# ----------------------------------------------------------------------------------------------
# Transcriptions of recurrentgemma/torch/layers.py
# ----------------------------------------------------------------------------------------------


def official_block_diagonal_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``BlockDiagonalLinear.forward`` (layers.py lines 128-137): ``x (..., W)``, ``w (H, W/H, W/H)``."""
    h = w.shape[0]
    xb = x.unflatten(-1, (h, x.shape[-1] // h))  # "... (h i) -> ... h i"
    y = torch.einsum("...hi,hij->...hj", xb, w) + b
    return y.flatten(-2)  # "... h j -> ... (h j)"


def official_rnn_scan(x, a, reset, h0, acc_dtype=torch.float64):
    """``rnn_scan`` (layers.py lines 141-191): ``x, a (B, T, W)``, ``reset (B, T)``, ``h0 (B, W)`` or None."""
    a = a * ~reset[..., None]  # multiply `a` by the reset
    if x.shape[1] == 1:  # sampling mode
        if h0 is None:
            return x, x[:, 0].type(acc_dtype)
        y = a.type(acc_dtype) * h0[:, None] + x.type(acc_dtype)
        return y.type(x.dtype), y[:, -1]
    h_t = h0 if h0 is not None else torch.zeros(x[:, 0].shape, dtype=acc_dtype)
    y = torch.zeros_like(x)
    for t in range(x.shape[1]):
        h_t = a[:, t].type(acc_dtype) * h_t + x[:, t].type(acc_dtype)
        y[:, t] = h_t.type(x.dtype)
    return y, h_t


def official_rg_lru(x, segment_pos, p, cache=None):
    """``RGLRU.forward`` (layers.py lines 314-366).

    ``x (B, T, W)``, ``segment_pos (B, T)`` int, ``cache`` the previous state ``(B, W)`` or None;
    ``p`` a dict of ``a_param (W,)``, ``input_gate_w/b``, ``a_gate_w/b``. Returns ``(y, last_h)``.
    """
    bs, l, _ = x.shape
    assert segment_pos.shape == (bs, l)
    reset = segment_pos == 0
    gate_x = torch.sigmoid(official_block_diagonal_linear(x, p["input_gate_w"], p["input_gate_b"]))
    gate_a = torch.sigmoid(official_block_diagonal_linear(x, p["a_gate_w"], p["a_gate_b"]))
    log_a = -8.0 * gate_a * F.softplus(p["a_param"])
    a = torch.exp(log_a)
    a_square = torch.exp(2 * log_a)
    gated_x = x * gate_x
    multiplier = torch.sqrt(1 - a_square)  # SqrtBoundDerivative: sqrt forward, clipped backward
    multiplier = reset[..., None] + ~reset[..., None] * multiplier
    normalized_x = gated_x * multiplier.type(x.dtype)
    return official_rnn_scan(x=normalized_x, a=a, reset=reset, h0=cache)


def official_conv1d(x, segment_pos, w, b, cache=None):
    """``Conv1D.forward`` (layers.py lines 448-530 and helpers 531-636).

    ``x (B, T, W)``, ``w (temporal_width, W)``, ``b (W,)``, ``cache (B, temporal_width - 1, W)``
    or None (then ``T`` tokens; with a cache the official code takes one token). Returns
    ``(y (B, T, W), new cache)``.
    """
    temporal_width = w.shape[0]
    output_len = x.shape[1]
    if cache is not None:  # decoding mode
        assert cache.shape == (x.shape[0], temporal_width - 1, x.shape[2]) and output_len == 1
        x = torch.cat([cache.type(x.dtype), x], dim=1)  # _concatenate_with_cache
        prompt_len = temporal_width - 1
        cache_dtype = cache.dtype
    else:  # training mode
        prompt_len = 0
        cache_dtype = x.dtype
    out = 0.0
    for shift in range(min(temporal_width, prompt_len + output_len)):
        start_idx = max(prompt_len - shift, 0)  # _convolution_window_indices
        end_idx = prompt_len + output_len - shift
        x_window = x[:, start_idx:end_idx]
        if cache is None:  # _compute_document_mask: no tokens from an earlier document
            not_boundary = (segment_pos != 0).type(torch.int32)
            mask = torch.ones((x.shape[0], end_idx - start_idx))
            for look in range(1, shift + 1):
                mask = mask * not_boundary[:, start_idx + look:end_idx + look]
            x_window = x_window * mask[:, :, None].type(x.dtype)
        pad = output_len - x_window.shape[1]  # _pad_window
        x_window = torch.cat([x_window.new_zeros(x_window.shape[0], pad, x_window.shape[2]), x_window], dim=1)
        out = out + x_window * w[temporal_width - shift - 1][None, None, :]
    out = out + b[None, None]
    new_cache = x[:, 1 - temporal_width:].type(cache_dtype)
    pad = temporal_width - new_cache.shape[1] - 1  # _pad_cache
    new_cache = torch.cat([new_cache.new_zeros(new_cache.shape[0], pad, new_cache.shape[2]), new_cache], dim=1)
    return out, new_cache


# ----------------------------------------------------------------------------------------------
# Transcriptions of recurrentgemma/torch/modules.py
# ----------------------------------------------------------------------------------------------


def official_recurrent_block(x, segment_pos, p, cache=None):
    """``RecurrentBlock.forward`` (modules.py lines 606-656), GeLU = ``gelu`` (lines 289-291, tanh).

    ``x (B, T, width)``; ``cache`` a pair ``(conv1d_state, rg_lru_state)`` or None. Returns
    ``(y, (conv1d_state, rg_lru_state))``.
    """
    y = F.gelu(F.linear(x, p["linear_y_w"], p["linear_y_b"]), approximate="tanh")
    x = F.linear(x, p["linear_x_w"], p["linear_x_b"])
    x, conv1d_state = official_conv1d(x, segment_pos, p["conv_w"], p["conv_b"], None if cache is None else cache[0])
    x, rg_lru_state = official_rg_lru(x, segment_pos, p, None if cache is None else cache[1])
    x = x * y
    x = F.linear(x, p["linear_out_w"], p["linear_out_b"])
    return x, (conv1d_state, rg_lru_state)


def official_causal_mask(q_positions, k_positions, window_size, q_segment_ids, k_segment_ids):
    """``_compute_causal_mask`` (modules.py lines 89-124): True where the query may see the key."""
    if q_segment_ids is not None or k_segment_ids is not None:
        same_segment_mask = q_segment_ids[..., None] == k_segment_ids[..., None, :]
    else:
        same_segment_mask = (k_positions >= 0)[..., None, :]
    causal_mask = q_positions[..., None] >= k_positions[..., None, :]
    window_cond = q_positions[..., None] <= (k_positions[..., None, :] + window_size)
    return same_segment_mask & causal_mask & window_cond


def official_forward_pass_mask(segment_pos, window_size):
    """``_compute_forward_pass_mask`` (modules.py lines 128-150): ``(B, T, T)`` bool."""
    segment_ids = torch.cumsum(segment_pos == 0, dim=-1)
    positions = torch.arange(segment_pos.shape[-1])[None].repeat_interleave(segment_pos.shape[0], dim=0)
    return official_causal_mask(positions, positions, window_size, segment_ids, segment_ids)


def official_apply_rope(inputs, positions, max_wavelength=10_000):
    """``_apply_rope`` (modules.py lines 52-85): RoPE on the first half of the head dim."""
    batch_size, sequence_length = positions.shape
    x_rope, x = torch.chunk(inputs, 2, dim=-1)
    positions = positions.reshape(batch_size, sequence_length, 1, 1)
    freq = torch.arange(x_rope.shape[-1] // 2)
    freq_exponents = 2 * freq / x_rope.shape[-1]
    timescale = max_wavelength**freq_exponents
    inv_frequencies = 1.0 / timescale
    sinusoid_imp = positions * inv_frequencies
    sin = torch.sin(sinusoid_imp).type_as(inputs)
    cos = torch.cos(sinusoid_imp).type_as(inputs)
    first_half, second_half = torch.chunk(x_rope, 2, dim=-1)
    first_part = first_half * cos - second_half * sin
    second_part = second_half * cos + first_half * sin
    return torch.cat([first_part, second_part, x], dim=-1)


def official_local_attention(x, segment_pos, p, num_heads, window_size):
    """``LocalAttentionBlock.forward`` without a cache (modules.py lines 399-476): ``x (B, T, width)``."""
    b, t, width = x.shape
    head_dim = width // num_heads
    queries = F.linear(x, p["proj_q"]).unflatten(-1, (num_heads, head_dim))  # (B, T, N, hd)
    keys = F.linear(x, p["proj_k"]).unflatten(-1, (1, head_dim))
    values = F.linear(x, p["proj_v"]).unflatten(-1, (1, head_dim))
    queries = official_apply_rope(queries, segment_pos)
    keys = official_apply_rope(keys, segment_pos)
    attn_mask = official_forward_pass_mask(segment_pos, window_size)
    logits = torch.einsum("btnh,bsnh->bnts", queries, keys.expand(-1, -1, num_heads, -1))
    logits = logits * head_dim**-0.5
    masked_logits = torch.where(attn_mask[:, None], logits, -2.3819763e38)
    probs = torch.softmax(masked_logits, dim=-1)
    encoded = torch.einsum("bnts,bsnh->btnh", probs, values.expand(-1, -1, num_heads, -1)).flatten(-2)
    return F.linear(encoded, p["proj_final_w"], p["proj_final_b"])


# ----------------------------------------------------------------------------------------------
# Identical weights
# ----------------------------------------------------------------------------------------------


def official_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The official parameters of a package :class:`RGLRU`, :class:`RecurrentBlock` or
    :class:`LocalAttention`, mapped as in the module docstring (detached copies)."""
    if isinstance(module, LocalAttention):
        hd = module.cfg.head_dim
        assert module.cfg.n_kv_heads == 1, "the official local attention has one KV head"
        kv = module.kv_proj.weight.detach()
        return {"proj_q": module.q_proj.weight.detach(), "proj_k": kv[:hd], "proj_v": kv[hd:],
                "proj_final_w": module.out_proj.weight.detach(), "proj_final_b": module.out_proj.bias.detach()}
    lru = module.rg_lru if isinstance(module, RecurrentBlock) else module
    p = {"a_param": lru.a_param.detach(),
         "input_gate_w": lru.gate_x.weight.detach(), "input_gate_b": lru.gate_x.bias.detach(),
         "a_gate_w": lru.gate_a.weight.detach(), "a_gate_b": lru.gate_a.bias.detach()}
    if isinstance(module, RecurrentBlock):
        p.update(linear_x_w=module.linear_x.weight.detach(), linear_x_b=module.linear_x.bias.detach(),
                 linear_y_w=module.linear_y.weight.detach(), linear_y_b=module.linear_y.bias.detach(),
                 linear_out_w=module.out_proj.weight.detach(), linear_out_b=module.out_proj.bias.detach(),
                 conv_w=module.conv.weight.detach().T, conv_b=module.conv.bias.detach())
    return p


def _randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Float64, every weight and bias random (non-zero biases exercise the gates' biases), the
    base decays ``a`` spread over ``[0.5, 0.999]``."""
    gen = torch.Generator().manual_seed(seed)
    module = module.to(DT)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("a_param"):
                a = 0.5 + 0.499 * torch.rand(param.shape, generator=gen, dtype=DT)
                param.copy_(torch.log(1 / a - 1))  # -Λ with a = σ(Λ)
            else:
                param.copy_(torch.randn(param.shape, generator=gen, dtype=DT) / math.sqrt(max(param.shape[-1], 1)))
    return module.eval()


def _positions(batch: int, t: int, start: int = 0) -> torch.Tensor:
    return torch.arange(start, start + t)[None].repeat(batch, 1)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max())


# ----------------------------------------------------------------------------------------------
# The RG-LRU alone
# ----------------------------------------------------------------------------------------------


def test_rg_lru_without_a_state_starts_a_document_like_the_official_code():
    layer = _randomize(RGLRU(12, n_heads=3), seed=0)
    p = official_weights(layer)
    x = torch.randn(2, 10, 12, dtype=DT)
    want, want_last = official_rg_lru(x, _positions(2, 10), p)
    y, last = layer(x)  # h0=None: position 0 is a reset
    assert _max_diff(y, want) < TOL and _max_diff(last, want_last) < TOL
    # the first token enters unscaled: h_0 = i_0 x_0
    i0 = torch.sigmoid(layer.gate_x(x[:, 0]))
    torch.testing.assert_close(y[:, 0], i0 * x[:, 0], atol=1e-14, rtol=0)
    # step() without a state: the same first token
    y0, h = layer.step(x[:, 0], None)
    torch.testing.assert_close(y0, want[:, 0], atol=TOL, rtol=0)
    # then step() with a state continues (official: segment_pos 1, 2, ... and a cache)
    for t in range(1, 10):
        want_t, want_h = official_rg_lru(x[:, t:t + 1], _positions(2, 1, t), p, cache=h)
        y_t, h = layer.step(x[:, t], h)
        assert _max_diff(y_t, want_t[:, 0]) < TOL and _max_diff(h, want_h) < TOL
        torch.testing.assert_close(y_t, y[:, t], atol=1e-13, rtol=0)


def test_rg_lru_with_a_state_does_not_reset():
    layer = _randomize(RGLRU(8, n_heads=2), seed=1)
    p = official_weights(layer)
    x = torch.randn(3, 7, 8, dtype=DT)
    h0 = torch.randn(3, 8, dtype=DT)
    want, want_last = official_rg_lru(x, _positions(3, 7, start=5), p, cache=h0)  # a continuing chunk
    y, last = layer(x, h0)
    assert _max_diff(y, want) < TOL and _max_diff(last, want_last) < TOL
    # a zero state is a state too: no reset (the old behaviour of h0=None)
    zeros = torch.zeros(3, 8, dtype=DT)
    y_zero, _ = layer(x, zeros)
    want_zero, _ = official_rg_lru(x, _positions(3, 7, start=1), p, cache=zeros)
    assert _max_diff(y_zero, want_zero) < TOL
    assert _max_diff(y_zero[:, 0], y[:, 0]) > 0 and _max_diff(y_zero[:, 0], layer(x)[0][:, 0]) > 1e-3


def test_rg_lru_document_resets_inside_the_sequence():
    """segment_pos with several documents: resets where segment_pos == 0, with and without a state."""
    layer = _randomize(RGLRU(8, n_heads=4), seed=2)
    p = official_weights(layer)
    x = torch.randn(2, 12, 8, dtype=DT)
    segment_pos = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3, 4], [3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6]])
    h0 = torch.randn(2, 8, dtype=DT)
    for state in (None, h0):
        want, want_last = official_rg_lru(x, segment_pos, p, cache=state)
        if state is None:  # the official code with no state and segment_pos[0] != 0 starts from zeros
            state = torch.zeros(2, 8, dtype=DT)
        y, last = layer(x, state, reset=segment_pos == 0)
        assert _max_diff(y, want) < TOL and _max_diff(last, want_last) < TOL


# ----------------------------------------------------------------------------------------------
# The recurrent block
# ----------------------------------------------------------------------------------------------


def _block(seed: int, **options) -> RecurrentBlock:
    cfg = HawkConfig(vocab_size=5, d_model=options.pop("d_model", 12), n_layers=1, n_heads=options.pop("n_heads", 3),
                     **options)
    return _randomize(RecurrentBlock(cfg), seed)


@pytest.mark.parametrize("options", [{}, {"lru_width": 18, "conv_width": 2}, {"conv_width": 4, "n_heads": 1}],
                         ids=["W=d", "W=18,K=2", "H=1"])
def test_recurrent_block_matches_the_official_forward(options):
    block = _block(3, **options)
    p = official_weights(block)
    t = 9
    x = torch.randn(2, t, 12, dtype=DT)
    want, (want_conv, want_h) = official_recurrent_block(x, _positions(2, t), p)
    y, state = block(x)  # no state: the document starts at token 0
    assert _max_diff(y, want) < TOL
    assert _max_diff(state.h, want_h) < TOL and _max_diff(state.conv, want_conv) < TOL
    # official decoding (a cache and segment_pos = t, t+1, ...) = the package's step with a state
    x_more = torch.randn(2, 3, 12, dtype=DT)
    cache = (want_conv, want_h)
    for s in range(3):
        want_s, cache = official_recurrent_block(x_more[:, s:s + 1], _positions(2, 1, t + s), p, cache)
        y_s, state = block(x_more[:, s:s + 1], state)
        assert _max_diff(y_s, want_s) < TOL
        assert _max_diff(state.conv, cache[0]) < TOL and _max_diff(state.h, cache[1]) < TOL
    # a chunked prefill (package) equals the official single forward over the whole sequence
    whole = torch.cat([x, x_more], dim=1)
    want_whole, _ = official_recurrent_block(whole, _positions(2, t + 3), p)
    y_a, state_a = block(whole[:, :4])
    y_b, _ = block(whole[:, 4:], state_a)
    assert _max_diff(torch.cat([y_a, y_b], 1), want_whole) < TOL


def test_recurrent_block_first_token_of_one_token_prompt():
    """A prompt of one token (official: T = 1, segment_pos 0, no cache: rnn_scan's sampling branch)."""
    block = _block(4)
    p = official_weights(block)
    x = torch.randn(3, 1, 12, dtype=DT)
    want, (want_conv, want_h) = official_recurrent_block(x, _positions(3, 1), p)
    y, state = block(x)
    assert _max_diff(y, want) < TOL and _max_diff(state.h, want_h) < TOL and _max_diff(state.conv, want_conv) < TOL


def test_hawk_model_without_a_cache_treats_token_zero_as_a_document_start():
    """The whole Hawk model, with its recurrent blocks replaced by the official transcription."""
    torch.manual_seed(5)
    model = build_model("hawk", vocab_size=11, d_model=12, n_layers=2, n_heads=3)
    model = _randomize(model, seed=5)
    tokens = torch.randint(0, 11, (2, 8))
    x = model.tok_emb(tokens)
    for block in model.blocks:
        y, _ = official_recurrent_block(block.norm_mix(x), _positions(2, 8), official_weights(block.mixer))
        x = x + y
        x = x + block.mlp(block.norm_mlp(x))
    want = model.lm_head(model.norm_out(x))
    with torch.no_grad():
        assert _max_diff(model(tokens), want) < TOL
        assert _max_diff(model.prefill(tokens)[0], want) < TOL
        logits, cache = model.prefill(tokens[:, :1])  # a one-token prompt, then steps
        out = [logits]
        for t in range(1, 8):
            step_logits, cache = model.step(tokens[:, t], cache)
            out.append(step_logits[:, None])
        assert _max_diff(torch.cat(out, 1), want) < TOL


# ----------------------------------------------------------------------------------------------
# Window conventions of the local attention
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window_size", [0, 1, 2, 3, 5, 8, 20])
def test_official_window_size_w_is_package_window_w_plus_1(window_size):
    t = 13
    official = official_forward_pass_mask(_positions(1, t), window_size)[0].numpy()
    assert official.sum(-1).max() == min(window_size + 1, t)  # w + 1 keys, the query's own included
    np.testing.assert_array_equal(official, attention_mask(t, window=window_size + 1))
    if 1 <= window_size and window_size + 1 < t:  # package window=w misses the oldest key (w=0 is no window)
        assert not np.array_equal(official, attention_mask(t, window=window_size))


@pytest.mark.parametrize("window_size", [1, 3, 6])
def test_local_attention_with_window_w_plus_1_matches_the_official_block(window_size):
    cfg = GriffinConfig(vocab_size=5, d_model=16, n_layers=1, n_heads=2, layer_pattern=["attention"],
                        window=window_size + 1, attn_backend="torch")
    attn = _randomize(LocalAttention(cfg), seed=6)
    t = 11
    x = torch.randn(2, t, 16, dtype=DT)
    want = official_local_attention(x, _positions(2, t), official_weights(attn), num_heads=2, window_size=window_size)
    y, (k, v) = attn(x)
    assert _max_diff(y, want) < TOL
    assert k.shape[2] == window_size + 1  # the decode cache holds the w + 1 keys a query sees
    # the wrong mapping (package window = official window_size) differs
    attn.cfg = GriffinConfig(**{**cfg.__dict__, "window": window_size})
    assert _max_diff(attn(x)[0], want) > 1e-6


def test_prompt_shorter_than_the_conv_pads_the_state_like_the_official_cache():
    """A 2-token prompt with conv width 4: the official Conv1D pads its cache with zeros on the left
    (``_pad_cache``); our :class:`RecurrentState` (conv, h) is its (conv1d_state, rg_lru_state)."""
    block = _block(7)
    p = official_weights(block)
    x = torch.randn(1, 2, 12, dtype=DT)
    want, (want_conv, want_h) = official_recurrent_block(x, _positions(1, 2), p)
    y, state = block(x)
    assert isinstance(state, RecurrentState) and state.conv.shape == want_conv.shape == (1, 3, 12)
    assert _max_diff(y, want) < TOL and _max_diff(state.conv, want_conv) < TOL and _max_diff(state.h, want_h) < TOL
