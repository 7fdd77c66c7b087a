"""The Triton FlashAttention kernel against the float64 NumPy reference, torch SDPA and autograd.

On a CPU these run the real kernel code through the Triton interpreter (set by conftest.py), at
shapes that still cross several 16-wide blocks; on a CUDA GPU the same tests compile it.
Tolerances per dtype come from :data:`linattn_edu.checks.TOLERANCES` (outputs) and
``GRAD_TOL`` below (gradients, which sum over more terms).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linattn_edu.checks import check, tolerance
from linattn_edu.kernels import flash_attention, flash_attention_config, flash_attention_torch, kernel_backend
from linattn_edu.reference import softmax_attention

GRAD_TOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


def alibi_bias_np(slopes: np.ndarray, tq: int, tk: int) -> np.ndarray:
    """``(H, Tq, Tk)``: ``-m_h (i - j)`` with query i at position ``Tk - Tq + i``."""
    i = np.arange(tq)[:, None] + tk - tq
    j = np.arange(tk)[None, :]
    return -slopes[:, None, None] * (i - j)


def make_qkv(b, h, h_kv, tq, tk, d, dtype, device, requires_grad=False):
    q = torch.randn(b, h, tq, d, device=device).to(dtype)
    k = torch.randn(b, h_kv, tk, d, device=device).to(dtype)
    v = torch.randn(b, h_kv, tk, d, device=device).to(dtype)
    return [x.requires_grad_(requires_grad) for x in (q, k, v)]


def reference(q, k, v, *, causal=True, window=None, slopes=None):
    bias = None if slopes is None else alibi_bias_np(slopes.double().cpu().numpy(), q.shape[2], k.shape[2])
    return softmax_attention(q, k, v, causal=causal, window=window, bias=bias)


def test_kernel_really_runs_here(device):
    expected = "triton" if device.type == "cuda" else "interpreter"
    assert kernel_backend(torch.zeros(1, device=device)) == expected


CASES = [
    # b, h, h_kv, tq, tk, d, causal, window, alibi
    (1, 2, 2, 37, 37, 16, True, None, False),  # odd T, three query blocks
    (2, 4, 2, 50, 50, 32, True, 7, False),  # GQA + window narrower than a block
    (1, 4, 1, 50, 50, 16, True, 20, False),  # MQA + window wider than a block
    (1, 2, 2, 33, 33, 64, False, None, False),  # bidirectional
    (1, 4, 1, 20, 45, 16, True, None, True),  # decoding chunk: Tq < Tk, ALiBi
    (1, 2, 1, 1, 40, 128, True, 9, True),  # one decode step, D = 128, window + ALiBi
    (1, 2, 2, 17, 17, 32, False, None, True),  # ALiBi without a causal mask
]


@pytest.mark.parametrize("b,h,h_kv,tq,tk,d,causal,window,alibi", CASES)
def test_forward_matches_float64_reference(device, b, h, h_kv, tq, tk, d, causal, window, alibi):
    q, k, v = make_qkv(b, h, h_kv, tq, tk, d, torch.float32, device)
    slopes = torch.rand(h, device=device) if alibi else None
    out = flash_attention(q, k, v, causal=causal, window=window, alibi_slopes=slopes)
    assert out.shape == q.shape and out.dtype == q.dtype
    check(out, reference(q, k, v, causal=causal, window=window, slopes=slopes), name="flash fp32", quiet=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dtypes_against_reference(device, dtype):
    q, k, v = make_qkv(2, 2, 1, 40, 40, 32, dtype, device)
    out = flash_attention(q, k, v, window=24)
    assert out.dtype == dtype
    # The reference sees the same rounded inputs, so only the kernel's own rounding counts.
    atol, rtol = tolerance(dtype)
    check(out, reference(q, k, v, window=24), atol=atol, rtol=rtol, quiet=True)


def test_matches_torch_sdpa(device):
    q, k, v = make_qkv(2, 3, 3, 45, 45, 64, torch.float32, device)
    want = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=True)
    check(flash_attention(q, k, v), want, name="vs SDPA", quiet=True)
    want = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
    check(flash_attention(q, k, v, causal=False, scale=None), want, quiet=True)


def test_custom_scale(device):
    q, k, v = make_qkv(1, 2, 2, 20, 20, 16, torch.float32, device)
    check(flash_attention(q, k, v, scale=0.05), softmax_attention(q, k, v, scale=0.05), quiet=True)


@pytest.mark.parametrize("b,h,h_kv,tq,tk,d,causal,window,alibi", CASES[:6])
def test_gradients_match_autograd_float64(device, b, h, h_kv, tq, tk, d, causal, window, alibi):
    q, k, v = make_qkv(b, h, h_kv, tq, tk, d, torch.float32, device, requires_grad=True)
    slopes = torch.rand(h, device=device) if alibi else None
    out = flash_attention(q, k, v, causal=causal, window=window, alibi_slopes=slopes)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    out64 = flash_attention_torch(q64, k64, v64, causal=causal, window=window,
                                  alibi_slopes=None if slopes is None else slopes.double())
    out64.backward(grad_out.double())
    for name, got, want in (("dq", q.grad, q64.grad), ("dk", k.grad, k64.grad), ("dv", v.grad, v64.grad)):
        check(got, want, atol=GRAD_TOL[torch.float32], rtol=GRAD_TOL[torch.float32], name=name, quiet=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_gradients(device, dtype):
    q, k, v = make_qkv(1, 2, 2, 40, 40, 32, dtype, device, requires_grad=True)
    out = flash_attention(q, k, v)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    flash_attention_torch(q64, k64, v64).backward(grad_out.double())
    for got, want in ((q.grad, q64.grad), (k.grad, k64.grad), (v.grad, v64.grad)):
        assert got.dtype == dtype
        check(got, want, atol=GRAD_TOL[dtype], rtol=GRAD_TOL[dtype], quiet=True)


def test_causality_future_tokens_never_change_past_outputs(device):
    q, k, v = make_qkv(1, 2, 2, 48, 48, 16, torch.float32, device)
    before = flash_attention(q, k, v)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    q2[:, :, 30:] += 3.0
    k2[:, :, 30:] -= 2.0
    v2[:, :, 30:] *= 5.0
    after = flash_attention(q2, k2, v2)
    assert torch.equal(after[:, :, :30], before[:, :, :30])
    assert not torch.allclose(after[:, :, 30:], before[:, :, 30:])


def test_shapes_cross_several_blocks(device):
    """The tests above would not exercise block skipping if one block covered everything."""
    cfg = flash_attention_config(device, 16, torch.float32)
    assert max(c[3] for c in CASES) > 2 * cfg["fwd"]["BLOCK_M"] or device.type == "cuda"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    b=st.integers(1, 2),
    h_kv=st.integers(1, 2),
    group=st.integers(1, 3),
    tq=st.integers(1, 40),
    extra=st.integers(0, 20),
    d=st.sampled_from([16, 32]),
    window=st.one_of(st.none(), st.integers(1, 50)),
    alibi=st.booleans(),
)
def test_random_shapes_property(device, b, h_kv, group, tq, extra, d, window, alibi):
    tk = tq + extra
    q, k, v = make_qkv(b, h_kv * group, h_kv, tq, tk, d, torch.float32, device)
    slopes = torch.rand(h_kv * group, device=device) if alibi else None
    out = flash_attention(q, k, v, window=window, alibi_slopes=slopes)
    check(out, reference(q, k, v, window=window, slopes=slopes), quiet=True)


def test_float64_and_torch_backend_use_the_pytorch_path(device):
    q, k, v = make_qkv(1, 2, 2, 9, 9, 24, torch.float64, device)  # D = 24: no kernel for it
    check(flash_attention(q, k, v), softmax_attention(q, k, v), quiet=True)
    q32 = q.float()
    check(flash_attention(q32, k.float(), v.float(), backend="torch"), softmax_attention(q, k, v), quiet=True)


def _qkv(shape_q=(1, 2, 8, 16), shape_k=(1, 2, 8, 16), shape_v=None, dtype=torch.float32):
    return torch.zeros(shape_q, dtype=dtype), torch.zeros(shape_k, dtype=dtype), torch.zeros(shape_v or shape_k, dtype=dtype)


@pytest.mark.parametrize(
    "args,kwargs,error,match",
    [
        ((np.zeros((1, 2, 8, 16)),) + _qkv()[1:], {}, TypeError, "q must be a torch.Tensor"),
        (_qkv(dtype=torch.int64), {}, TypeError, "q must be a floating-point tensor"),
        ((torch.zeros(2, 8, 16),) + _qkv()[1:], {}, ValueError, r"q must have 4 dims"),
        (_qkv(shape_k=(1, 2, 8, 32)), {}, ValueError, "k must have shape"),
        (_qkv(shape_v=(1, 2, 9, 16)), {}, ValueError, "v must have the same shape as k"),
        (_qkv(shape_q=(1, 3, 8, 16)), {}, ValueError, "multiple of it"),
        (_qkv(shape_q=(1, 2, 9, 16)), {}, ValueError, "Tq <= Tk"),
        (_qkv((1, 2, 8, 48), (1, 2, 8, 48)), {}, ValueError, "head dim D=48"),
        (_qkv(), {"window": 0}, ValueError, "window must be a positive int"),
        (_qkv(), {"window": 2, "causal": False}, ValueError, "window requires causal"),
        (_qkv(), {"alibi_slopes": torch.zeros(3)}, ValueError, r"alibi_slopes must have shape \(H=2,\)"),
        (_qkv(), {"backend": "cuda"}, ValueError, "backend must be"),
        (_qkv(), {"scale": "big"}, TypeError, "scale must be a float"),
    ],
)
def test_bad_input_raises_clear_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        flash_attention(*args, **kwargs)


def test_mixed_dtypes_and_devices_raise():
    q, k, v = _qkv()
    with pytest.raises(TypeError, match="share one dtype"):
        flash_attention(q, k.half(), v)
    with pytest.raises(ValueError, match="one device"):
        flash_attention(q, k.to("meta"), v)


def test_triton_backend_on_cpu_tensors_is_refused_clearly():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal is for CPU-only machines")
    with pytest.raises(ValueError, match="cannot run cpu tensors"):
        flash_attention(*_qkv(), backend="triton")


def test_float64_alibi_is_float64_accurate():
    """12 heads: slopes like 2**-0.5 are not exact in float32, so the float64 path must not round them."""
    from linattn_edu.reference import alibi_slopes

    q, k, v = (torch.randn(1, 12, 40, 16, dtype=torch.float64) for _ in range(3))
    slopes = torch.tensor(alibi_slopes(12))
    out = flash_attention(q, k, v, alibi_slopes=slopes)
    check(out, reference(q, k, v, slopes=slopes), quiet=True)  # float64 tolerance: 1e-10
