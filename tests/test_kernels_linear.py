"""The Triton chunked linear-attention kernels against the float64 reference, autograd, and decoding.

On a CPU these run the real kernel code through the Triton interpreter (set by conftest.py) with
chunk_size=16, so T = 37..50 crosses 3-4 chunks and the carried state matters; F = 273 (the Taylor
map of D = 16) crosses five 64-wide feature tiles and Dv = 80 two value tiles, so the partial sums
over tiles are exercised too. Unnormalized outputs grow with T, so their tolerance is scaled by the
largest reference value (``scaled_tol``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import linattn_edu.kernels.linear as linear_mod
from linattn_edu.checks import check, tolerance
from linattn_edu.kernels import (
    LinearAttentionState,
    chunked_linear_attention,
    chunked_linear_attention_torch,
    linear_attention_config,
    linear_attention_step,
)
from linattn_edu.kernels._common import choose_backend, is_interpreted
from linattn_edu.reference import linear_attention, taylor_feature_map

GRAD_TOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


def features(b, h, t, f, device, dtype=torch.float32):
    """Feature-mapped q and k of width f: the Taylor map of D=16 for f=273, else elu(x)+1 (> 0)."""
    if f == 273:
        raw = 0.7 * torch.randn(2, b, h, t, 16, dtype=torch.float64)
        q, k = (torch.from_numpy(taylor_feature_map(x)) for x in raw)
    else:
        q, k = (torch.nn.functional.elu(torch.randn(b, h, t, f, dtype=torch.float64)) + 1 for _ in range(2))
    return q.to(device, dtype), k.to(device, dtype)


def make_qkv(b, h, t, f, dv, device, dtype=torch.float32, requires_grad=False):
    q, k = features(b, h, t, f, device, dtype)
    v = torch.randn(b, h, t, dv, device=device).to(dtype)
    return [x.requires_grad_(requires_grad) for x in (q, k, v)]


def reference(q, k, v, normalize=True, eps=1e-6):
    """float64 NumPy reference; the inputs are already feature-mapped, so the map is the identity."""
    return linear_attention(q, k, v, feature_map="identity", normalize=normalize, eps=eps)


def scaled_tol(dtype, ref):
    """(atol, rtol) of ``dtype``, atol scaled by the output's size (sums of T terms cancel)."""
    atol, rtol = tolerance(dtype)
    return atol * max(1.0, float(np.abs(ref).max())), rtol


def test_kernel_really_runs_here(device, monkeypatch):
    expected = "triton" if device.type == "cuda" else "interpreter"
    q, k, v = make_qkv(1, 1, 20, 16, 16, device, requires_grad=True)
    assert choose_backend(linear_mod._linear_fwd_kernel, q) == expected
    assert is_interpreted(linear_mod._linear_fwd_kernel) == (expected == "interpreter")

    def no_fallback(*args, **kwargs):
        raise AssertionError("the PyTorch fallback ran instead of the kernel")

    monkeypatch.setattr(linear_mod, "chunked_linear_attention_torch", no_fallback)
    out = chunked_linear_attention(q, k, v, chunk_size=16)
    check(out, reference(q, k, v), quiet=True)
    out.sum().backward()  # the backward kernels, too, run without the fallback
    assert all(x.grad is not None and torch.isfinite(x.grad).all() for x in (q, k, v))


CASES = [
    # b, h, t, f, dv, normalize
    (1, 2, 37, 16, 16, True),  # odd T, three chunks of 16
    (2, 1, 50, 33, 32, False),  # F not a power of two (masked to 64), four chunks
    (1, 2, 41, 273, 16, True),  # Based: Taylor of D=16, five feature tiles
    (1, 1, 45, 273, 32, False),
    (1, 1, 23, 7, 80, True),  # tiny F, Dv = 80: two value tiles (64 + 16 masked)
    (1, 1, 5, 1, 1, True),  # F = Dv = 1, shorter than one chunk
]


@pytest.mark.parametrize("b,h,t,f,dv,normalize", CASES)
def test_forward_matches_float64_reference(device, b, h, t, f, dv, normalize):
    q, k, v = make_qkv(b, h, t, f, dv, device)
    out = chunked_linear_attention(q, k, v, chunk_size=16, normalize=normalize)
    assert out.shape == (b, h, t, dv) and out.dtype == torch.float32
    want = reference(q, k, v, normalize)
    atol, rtol = scaled_tol(torch.float32, want)
    check(out, want, atol=atol, rtol=rtol, name=f"linear F={f} Dv={dv}", quiet=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("normalize", [True, False])
def test_dtypes_against_reference(device, dtype, normalize):
    q, k, v = make_qkv(1, 2, 40, 273, 32, device, dtype)
    out = chunked_linear_attention(q, k, v, chunk_size=16, normalize=normalize)
    assert out.dtype == dtype
    want = reference(q, k, v, normalize)  # sees the same rounded inputs
    atol, rtol = scaled_tol(dtype, want) if not normalize else tolerance(dtype)
    check(out, want, atol=atol, rtol=rtol, quiet=True)


def test_result_does_not_depend_on_chunk_size_or_layout(device):
    q, k, v = make_qkv(1, 2, 50, 33, 16, device)
    want = reference(q, k, v)
    for chunk in (16, 32, 64):
        check(chunked_linear_attention(q, k, v, chunk_size=chunk), want, quiet=True)
    # A (B, T, H, F) tensor viewed as (B, H, T, F): non-contiguous strides must not matter.
    qt, kt, vt = (x.transpose(1, 2).contiguous().transpose(1, 2) for x in (q, k, v))
    assert not qt.is_contiguous()
    check(chunked_linear_attention(qt, kt, vt, chunk_size=16), want, quiet=True)


GRAD_CASES = [
    # b, h, t, f, dv, normalize
    (1, 2, 37, 33, 16, True),
    (1, 1, 41, 273, 32, False),  # five feature tiles: dV sums five partials
    (1, 1, 35, 20, 80, False),  # two value tiles: dQ and dK sum two partials
    (2, 1, 21, 273, 16, True),
]


@pytest.mark.parametrize("b,h,t,f,dv,normalize", GRAD_CASES)
def test_gradients_match_autograd_float64(device, b, h, t, f, dv, normalize):
    q, k, v = make_qkv(b, h, t, f, dv, device, requires_grad=True)
    out = chunked_linear_attention(q, k, v, chunk_size=16, normalize=normalize)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    chunked_linear_attention_torch(q64, k64, v64, chunk_size=16, normalize=normalize).backward(grad_out.double())
    for name, got, want in (("dq", q.grad, q64.grad), ("dk", k.grad, k64.grad), ("dv", v.grad, v64.grad)):
        assert got.dtype == torch.float32 and got.shape == want.shape
        scale = max(1.0, want.abs().max().item())
        check(got, want, atol=GRAD_TOL[torch.float32] * scale, rtol=GRAD_TOL[torch.float32], name=name, quiet=True)


def test_torch_version_gradients_equal_the_reference_loop():
    """The float64 torch version (the gradient oracle above) against finite differences."""
    q, k, v = make_qkv(1, 1, 9, 5, 3, "cpu", torch.float64, requires_grad=True)
    for normalize in (True, False):
        assert torch.autograd.gradcheck(
            lambda a, b, c: chunked_linear_attention_torch(a, b, c, chunk_size=4, normalize=normalize), (q, k, v)
        )
    check(chunked_linear_attention_torch(q, k, v, chunk_size=4), reference(q, k, v), quiet=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_gradients(device, dtype):
    q, k, v = make_qkv(1, 1, 40, 33, 16, device, dtype, requires_grad=True)
    out = chunked_linear_attention(q, k, v, chunk_size=16)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    chunked_linear_attention_torch(q64, k64, v64).backward(grad_out.double())
    for got, want in ((q.grad, q64.grad), (k.grad, k64.grad), (v.grad, v64.grad)):
        assert got.dtype == dtype
        check(got, want, atol=GRAD_TOL[dtype], rtol=GRAD_TOL[dtype], quiet=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("normalize", [True, False])
def test_decode_steps_equal_prefill(device, dtype, normalize):
    q, k, v = make_qkv(2, 2, 19, 33, 16, device, dtype)
    prefill = chunked_linear_attention(q, k, v, chunk_size=16, normalize=normalize)
    state, outs = None, []
    for t in range(q.shape[2]):
        o_t, state = linear_attention_step(q[:, :, t], k[:, :, t], v[:, :, t], state, normalize=normalize)
        outs.append(o_t)
    stepped = torch.stack(outs, dim=2)
    assert isinstance(state, LinearAttentionState) and state.S.shape == (2, 2, 33, 16) and state.z.shape == (2, 2, 33)
    assert state.S.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    want = reference(q, k, v, normalize)
    atol, rtol = scaled_tol(dtype, want)
    check(stepped, prefill, atol=atol, rtol=rtol, name="decode vs prefill", quiet=True)
    check(stepped, want, atol=atol, rtol=rtol, quiet=True)
    # The final state is the whole sequence's S and z.
    check(state.S, torch.einsum("bhtf,bhtd->bhfd", k.double(), v.double()), atol=atol, rtol=rtol, quiet=True)
    check(state.z, k.double().sum(2), atol=atol, rtol=rtol, quiet=True)


def test_decode_continues_a_prefill_state_and_keeps_half_inputs_in_float32_state():
    q, k, v = make_qkv(1, 2, 12, 8, 4, "cpu", torch.float16)
    s0 = torch.einsum("bhtf,bhtd->bhfd", k[:, :, :11].float(), v[:, :, :11].float())
    z0 = k[:, :, :11].float().sum(2)
    o_t, state = linear_attention_step(q[:, :, 11], k[:, :, 11], v[:, :, 11], (s0, z0))
    assert o_t.dtype == torch.float16 and state.S.dtype == torch.float32
    check(o_t, reference(q, k, v)[:, :, 11], atol=2e-3, rtol=2e-3, quiet=True)
    assert torch.equal(s0, torch.einsum("bhtf,bhtd->bhfd", k[:, :, :11].float(), v[:, :, :11].float()))  # not in place


def test_causality_future_tokens_never_change_past_outputs(device):
    q, k, v = make_qkv(1, 2, 48, 33, 16, device)
    before = chunked_linear_attention(q, k, v, chunk_size=16)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    q2[:, :, 30:] += 3.0
    k2[:, :, 30:] *= 2.0
    v2[:, :, 30:] *= 5.0
    after = chunked_linear_attention(q2, k2, v2, chunk_size=16)
    assert torch.equal(after[:, :, :30], before[:, :, :30])
    assert not torch.allclose(after[:, :, 30:], before[:, :, 30:])


def test_float64_and_torch_backend_use_the_pytorch_path(device):
    q, k, v = make_qkv(1, 2, 30, 33, 16, device, torch.float64)
    check(chunked_linear_attention(q, k, v, chunk_size=7), reference(q, k, v), quiet=True)  # any chunk
    out = chunked_linear_attention(q.float(), k.float(), v.float(), chunk_size=5, backend="torch")
    check(out, reference(q, k, v), quiet=True)


def test_config_tiles():
    cfg = linear_attention_config(torch.device("cpu"), 273, 64)
    assert cfg["blocks"] == {"BLOCK_F": 64, "BLOCK_V": 64}
    assert linear_attention_config(torch.device("cpu"), 1, 20)["blocks"] == {"BLOCK_F": 16, "BLOCK_V": 32}


def _qkv(shape_q=(1, 2, 8, 16), shape_k=None, shape_v=(1, 2, 8, 16), dtype=torch.float32):
    return torch.zeros(shape_q, dtype=dtype), torch.zeros(shape_k or shape_q, dtype=dtype), torch.zeros(shape_v, dtype=dtype)


@pytest.mark.parametrize(
    "args,kwargs,error,match",
    [
        ((np.zeros((1, 2, 8, 16)),) + _qkv()[1:], {}, TypeError, "q must be a torch.Tensor"),
        (_qkv(dtype=torch.int64), {}, TypeError, "q must be a floating-point tensor"),
        ((torch.zeros(2, 8, 16),) + _qkv()[1:], {}, ValueError, r"q must have 4 dims"),
        (_qkv(shape_k=(1, 2, 8, 32)), {}, ValueError, "k must have the same shape as q"),
        (_qkv(shape_v=(1, 2, 9, 16)), {}, ValueError, r"v must have shape \(B, H, T, Dv\)"),
        (_qkv(shape_q=(1, 2, 0, 16), shape_v=(1, 2, 0, 16)), {}, ValueError, "q must have B, H, T, F >= 1"),
        (_qkv(), {"chunk_size": 0}, ValueError, "chunk_size must be a positive int"),
        (_qkv(), {"chunk_size": 24}, ValueError, r"chunk_size must be one of \(16, 32, 64, 128\)"),
        (_qkv(), {"normalize": 1}, TypeError, "normalize must be a bool"),
        (_qkv(), {"eps": -1e-3}, ValueError, "eps must be >= 0"),
        (_qkv(), {"eps": None}, TypeError, "eps must be a float"),
        (_qkv(), {"backend": "cuda"}, ValueError, "backend must be"),
    ],
)
def test_bad_input_raises_clear_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        chunked_linear_attention(*args, **kwargs)


def test_mixed_dtypes_and_devices_raise():
    q, k, v = _qkv()
    with pytest.raises(TypeError, match="share one dtype"):
        chunked_linear_attention(q, k.half(), v)
    with pytest.raises(ValueError, match="one device"):
        chunked_linear_attention(q, k.to("meta"), v)


def test_triton_backend_on_cpu_tensors_is_refused_clearly():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal is for CPU-only machines")
    with pytest.raises(ValueError, match="cannot run cpu tensors"):
        chunked_linear_attention(*_qkv(), backend="triton")


@pytest.mark.parametrize(
    "args,error,match",
    [
        ((torch.zeros(1, 2, 8), torch.zeros(1, 2, 8), torch.zeros(1, 2, 4), None), None, None),
        ((torch.zeros(2, 8), torch.zeros(1, 2, 8), torch.zeros(1, 2, 4), None), ValueError, "q_t must have 3 dims"),
        ((torch.zeros(1, 2, 8), torch.zeros(1, 2, 7), torch.zeros(1, 2, 4), None), ValueError, "k_t must have the same shape"),
        ((torch.zeros(1, 2, 8), torch.zeros(1, 2, 8), torch.zeros(1, 3, 4), None), ValueError, "v_t must have shape"),
        ((torch.zeros(1, 2, 8), torch.zeros(1, 2, 8).double(), torch.zeros(1, 2, 4), None), TypeError, "share one dtype"),
        ((torch.zeros(1, 2, 8), torch.zeros(1, 2, 8), torch.zeros(1, 2, 4), torch.zeros(3)), TypeError, "state must be None or"),
        ((torch.zeros(1, 2, 8), torch.zeros(1, 2, 8), torch.zeros(1, 2, 4), (torch.zeros(1, 2, 8, 5), torch.zeros(1, 2, 8))),
         ValueError, r"state.S must have shape \(B, H, F, Dv\) = \(1, 2, 8, 4\)"),
        ((torch.zeros(1, 2, 8), torch.zeros(1, 2, 8), torch.zeros(1, 2, 4), (torch.zeros(1, 2, 8, 4), torch.zeros(1, 8))),
         ValueError, "state.z must have 3 dims"),
    ],
)
def test_step_bad_input(args, error, match):
    if error is None:
        o_t, state = linear_attention_step(*args)
        assert o_t.shape == (1, 2, 4) and state.z.shape == (1, 2, 8)
        return
    with pytest.raises(error, match=match):
        linear_attention_step(*args)


def test_step_bad_options():
    q = torch.zeros(1, 2, 8)
    with pytest.raises(TypeError, match="normalize must be a bool"):
        linear_attention_step(q, q, q, normalize="yes")
    with pytest.raises(ValueError, match="eps must be >= 0"):
        linear_attention_step(q, q, q, eps=-1.0)
