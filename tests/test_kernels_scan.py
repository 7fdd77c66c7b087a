"""The Triton linear scan and causal depthwise convolution against float64 PyTorch, autograd and decoding.

On a CPU these run the real kernel code through the Triton interpreter (set by conftest.py). The
interpreter's tiles are 8 steps x 32 channels (see ``linear_scan_config``), so C = 40 spans two
channel tiles with a masked tail and T = 37 crosses five time tiles, the last one partial: the
carry between tiles, the identity padding and the reversed tiles of the backward are all exercised.
The interpreter handles float16 but has no bfloat16: bfloat16 inputs are computed in float32 and
cast back by the launchers (tested too). References are computed in float64 on the very same
(rounded) inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import linattn_edu.kernels.scan as scan_mod
from linattn_edu.checks import check, tolerance
from linattn_edu.kernels import (
    causal_conv1d,
    causal_conv1d_config,
    causal_conv1d_step,
    causal_conv1d_torch,
    linear_scan,
    linear_scan_config,
    linear_scan_step,
    linear_scan_torch,
)
from linattn_edu.kernels._common import choose_backend, is_interpreted

GRAD_TOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}
C = 40  # two channel tiles of 32 on the interpreter, the second one masked


def scan_inputs(b, t, c, device, dtype=torch.float32, h0=False, requires_grad=False):
    """Decays in (0.5, 1) (long memory, as the RG-LRU's), inputs ~ N(0, 1), optional h0."""
    a = (0.5 + 0.5 * torch.rand(b, t, c, dtype=torch.float64)).to(device, dtype)
    x = torch.randn(b, t, c, dtype=torch.float64).to(device, dtype)
    s = torch.randn(b, c, dtype=torch.float64).to(device, dtype) if h0 else None
    return [z if z is None else z.requires_grad_(requires_grad) for z in (a, x, s)]


def scan_reference(a, b, h0=None):
    """float64 ``(h, h_last)`` on the same inputs, through the PyTorch loop (differentiable)."""
    return linear_scan_torch(a.double(), b.double(), None if h0 is None else h0.double())


def conv_reference(x, w, bias=None):
    """The spec, literally: F.conv1d of the left-padded input, in float64."""
    k = w.shape[1]
    xp = F.pad(x.double().transpose(1, 2), (k - 1, 0))
    y = F.conv1d(xp, w.double()[:, None, :], None if bias is None else bias.double(), groups=x.shape[2])
    return y.transpose(1, 2)


def scaled(dtype, ref):
    """(atol, rtol) of ``dtype`` with atol scaled by the reference's largest value."""
    atol, rtol = tolerance(dtype)
    return atol * max(1.0, float(ref.abs().max())), rtol


def test_kernels_really_run_here(device, monkeypatch):
    expected = "triton" if device.type == "cuda" else "interpreter"
    for kernel in (scan_mod._linear_scan_fwd_kernel, scan_mod._causal_conv1d_fwd_kernel):
        assert choose_backend(kernel, torch.zeros(1, device=device)) == expected
        assert is_interpreted(kernel) == (expected == "interpreter")

    def no_fallback(*args, **kwargs):
        raise AssertionError("the PyTorch fallback ran instead of the kernel")

    monkeypatch.setattr(scan_mod, "linear_scan_torch", no_fallback)
    monkeypatch.setattr(scan_mod, "causal_conv1d_torch", no_fallback)
    a, b, h0 = scan_inputs(1, 9, C, device, h0=True, requires_grad=True)
    h, h_last = linear_scan(a, b, h0)
    (h.sum() + h_last.sum()).backward()
    assert all(z.grad is not None and torch.isfinite(z.grad).all() for z in (a, b, h0))
    x = torch.randn(1, 9, C, device=device, requires_grad=True)
    w = torch.randn(C, 4, device=device, requires_grad=True)
    causal_conv1d(x, w).sum().backward()
    assert x.grad is not None and w.grad is not None


# ----------------------------------------------------------------------------------------------
# linear_scan
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [1, 5, 37])
@pytest.mark.parametrize("with_h0", [False, True])
def test_scan_forward_matches_float64_loop(device, t, with_h0):
    a, b, h0 = scan_inputs(2, t, C, device, h0=with_h0)
    h, h_last = linear_scan(a, b, h0)
    assert h.shape == (2, t, C) and h.dtype == torch.float32
    assert h_last.shape == (2, C) and h_last.dtype == torch.float32
    want, want_last = scan_reference(a, b, h0)
    check(h, want, name=f"h T={t}", quiet=True)
    check(h_last, want_last, name="h_last", quiet=True)
    assert torch.equal(h_last, h[:, -1])  # float32 in, float32 out: h_last is the last row exactly


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_scan_16bit_inputs_accumulate_in_float32(device, dtype):
    a, b, h0 = scan_inputs(2, 37, C, device, dtype, h0=True)
    h, h_last = linear_scan(a, b, h0)
    assert h.dtype == dtype and h_last.dtype == torch.float32
    want, want_last = scan_reference(a, b, h0)  # the same rounded inputs, in float64
    check(h, want, atol=scaled(dtype, want)[0], rtol=tolerance(dtype)[1], quiet=True)
    # The state is never rounded to 16 bits: h_last is float32-accurate.
    check(h_last, want_last, atol=1e-5 * float(want_last.abs().max()), rtol=1e-5, quiet=True)


GRAD_CASES = [
    # t, with h0, which outputs the loss uses
    (1, True, "both"),
    (5, False, "h"),
    (37, True, "both"),
    (37, False, "h_last"),  # only through the final state: dh arrives as zeros
]


@pytest.mark.parametrize("t,with_h0,via", GRAD_CASES)
def test_scan_gradients_match_float64_autograd(device, t, with_h0, via):
    a, b, h0 = scan_inputs(2, t, C, device, h0=with_h0, requires_grad=True)
    inputs = [z for z in (a, b, h0) if z is not None]
    gh = torch.randn(2, t, C, device=device)
    gl = torch.randn(2, C, device=device)

    def loss(h, h_last):
        terms = []
        if via in ("h", "both"):
            terms.append((h * gh.to(h.dtype)).sum())
        if via in ("h_last", "both"):
            terms.append((h_last * gl.to(h_last.dtype)).sum())
        return sum(terms)

    loss(*linear_scan(a, b, h0)).backward()
    ref_inputs = [z.detach().double().requires_grad_() for z in inputs]
    ra, rb, *rest = ref_inputs
    loss(*linear_scan_torch(ra, rb, rest[0] if rest else None)).backward()
    for name, got, want in zip(("da", "db", "dh0"), (z.grad for z in inputs), (z.grad for z in ref_inputs)):
        assert got.dtype == torch.float32 and got.shape == want.shape
        scale = max(1.0, want.abs().max().item())
        check(got, want, atol=GRAD_TOL[torch.float32] * scale, rtol=GRAD_TOL[torch.float32], name=name, quiet=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_scan_half_precision_gradients(device, dtype):
    a, b, h0 = scan_inputs(1, 21, C, device, dtype, h0=True, requires_grad=True)
    h, h_last = linear_scan(a, b, h0)
    gh = torch.randn_like(h)
    (h * gh).sum().backward()
    ref = [z.detach().double().requires_grad_() for z in (a, b, h0)]
    (linear_scan_torch(*ref)[0] * gh.double()).sum().backward()
    for got, want in zip((a.grad, b.grad, h0.grad), (z.grad for z in ref)):
        assert got.dtype == dtype
        scale = max(1.0, want.abs().max().item())
        check(got, want, atol=GRAD_TOL[dtype] * scale, rtol=GRAD_TOL[dtype], quiet=True)


def test_torch_loop_is_the_closed_form_and_passes_gradcheck():
    """The oracle itself: h_t = P_t·h0 + Σ_{s≤t} (P_t / P_s)·b_s with P_t = a_0···a_t, and finite differences."""
    a, b, h0 = scan_inputs(2, 9, 3, "cpu", torch.float64, h0=True, requires_grad=True)
    p = torch.cumprod(a, dim=1)
    closed = p * h0[:, None] + p * torch.cumsum(b / p, dim=1)
    h, h_last = linear_scan_torch(a, b, h0)
    check(h, closed, quiet=True)
    assert torch.equal(h_last, h[:, -1])
    assert torch.autograd.gradcheck(lambda x, y, z: linear_scan_torch(x, y, z), (a, b, h0))
    assert torch.autograd.gradcheck(lambda x, y: linear_scan_torch(x, y)[1], (a, b))


def test_scan_steps_and_split_prefill_replay_the_full_scan(device):
    a, b, h0 = scan_inputs(2, 19, C, device, h0=True)
    h, h_last = linear_scan(a, b, h0)
    state, outs = h0, []
    for t in range(a.shape[1]):
        state = linear_scan_step(a[:, t], b[:, t], state)
        outs.append(state.to(a.dtype))
    check(torch.stack(outs, dim=1), h, name="decode vs prefill", quiet=True)
    check(state, h_last, quiet=True)
    # Prefill part of the sequence, then continue from its h_last: the same as one pass.
    h1, last1 = linear_scan(a[:, :11], b[:, :11], h0)
    h2, last2 = linear_scan(a[:, 11:], b[:, 11:], last1)
    check(torch.cat([h1, h2], dim=1), h, quiet=True)
    check(last2, h_last, quiet=True)
    assert linear_scan_step(a[:, 0], b[:, 0]).dtype == torch.float32  # h=None: zeros


def test_scan_16bit_prefill_state_continues_in_float32(device):
    a, b, _ = scan_inputs(1, 20, C, device, torch.float16)
    h, h_last = linear_scan(a, b)
    _, last1 = linear_scan(a[:, :13], b[:, :13])
    assert last1.dtype == torch.float32  # an h0 of the state dtype is accepted with float16 a, b
    h2, last2 = linear_scan(a[:, 13:], b[:, 13:], last1)
    assert torch.equal(h2, h[:, 13:])
    check(last2, h_last, atol=1e-5, rtol=1e-5, quiet=True)
    state = last1
    for t in range(13, 20):
        state = linear_scan_step(a[:, t], b[:, t], state)
    check(state, h_last, atol=1e-5, rtol=1e-5, quiet=True)


def test_scan_is_causal_and_a_zero_decay_resets(device):
    a, b, _ = scan_inputs(1, 37, C, device)
    h, _ = linear_scan(a, b)
    a2, b2 = a.clone(), b.clone()
    a2[:, 20:] = 0.9
    b2[:, 20:] += 5.0
    h2, _ = linear_scan(a2, b2)
    assert torch.equal(h2[:, :20], h[:, :20])
    assert not torch.allclose(h2[:, 20:], h[:, 20:])
    # A document boundary at t = 25: a_t = 0 makes everything after independent of what came before.
    a3 = a.clone()
    a3[:, 25] = 0.0
    h3, _ = linear_scan(a3, b)
    fresh, _ = linear_scan(a[:, 25:], b[:, 25:])
    check(h3[:, 25:], fresh, quiet=True)


def test_scan_non_contiguous_inputs(device):
    a, b, h0 = scan_inputs(2, 13, C, device, h0=True)
    at, bt = (z.transpose(1, 2).contiguous().transpose(1, 2) for z in (a, b))
    assert not at.is_contiguous()
    got, got_last = linear_scan(at, bt, h0)
    want, want_last = linear_scan(a, b, h0)
    assert torch.equal(got, want) and torch.equal(got_last, want_last)


def test_scan_float64_and_torch_backend_use_the_loop(device):
    a, b, h0 = scan_inputs(1, 6, 5, device, torch.float64, h0=True)
    h, h_last = linear_scan(a, b, h0)
    assert h.dtype == torch.float64 and h_last.dtype == torch.float64
    check(h, scan_reference(a, b, h0)[0], quiet=True)
    h32, _ = linear_scan(a.float(), b.float(), h0.float(), backend="torch")
    check(h32, h, quiet=True)
    if device.type == "cpu":
        with pytest.raises(TypeError, match="float32, float16 or bfloat16 for the Triton kernel"):
            linear_scan(a, b, backend="interpreter")


# ----------------------------------------------------------------------------------------------
# causal_conv1d
# ----------------------------------------------------------------------------------------------


CONV_CASES = [
    # b, k, t, bias
    (2, 1, 13, True),
    (2, 3, 2, False),  # T < K: most taps read the zero padding
    (1, 3, 37, True),  # five time tiles in two backward programs of three (the last tile past T)
    (2, 4, 3, True),
    (2, 4, 13, False),
]


@pytest.mark.parametrize("b,k,t,with_bias", CONV_CASES)
def test_conv_forward_and_backward_match_f_conv1d(device, b, k, t, with_bias):
    x = torch.randn(b, t, C, device=device, requires_grad=True)
    w = torch.randn(C, k, device=device, requires_grad=True)
    bias = torch.randn(C, device=device, requires_grad=True) if with_bias else None
    y = causal_conv1d(x, w, bias)
    assert y.shape == (b, t, C) and y.dtype == torch.float32
    inputs = [z for z in (x, w, bias) if z is not None]
    ref_inputs = [z.detach().double().requires_grad_() for z in inputs]
    want = conv_reference(ref_inputs[0], ref_inputs[1], ref_inputs[2] if with_bias else None)
    check(y, want.detach(), name=f"conv K={k} T={t}", quiet=True)
    gy = torch.randn_like(y)
    y.backward(gy)
    want.backward(gy.double())
    for name, got, ref in zip(("dx", "dw", "dbias"), (z.grad for z in inputs), (z.grad for z in ref_inputs)):
        assert got.dtype == torch.float32 and got.shape == ref.shape
        scale = max(1.0, ref.abs().max().item())
        check(got, ref, atol=GRAD_TOL[torch.float32] * scale, rtol=GRAD_TOL[torch.float32], name=name, quiet=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_conv_16bit(device, dtype):
    x = torch.randn(2, 13, C, device=device).to(dtype).requires_grad_()
    w = (0.5 * torch.randn(C, 4, device=device)).to(dtype).requires_grad_()
    bias = torch.randn(C, device=device).to(dtype).requires_grad_()
    y = causal_conv1d(x, w, bias)
    assert y.dtype == dtype
    ref = [z.detach().double().requires_grad_() for z in (x, w, bias)]
    want = conv_reference(*ref)
    check(y, want.detach(), atol=scaled(dtype, want.detach())[0], rtol=tolerance(dtype)[1], quiet=True)
    gy = torch.randn_like(y)
    y.backward(gy)
    want.backward(gy.double())
    for got, r in zip((x.grad, w.grad, bias.grad), ref):
        assert got.dtype == dtype
        scale = max(1.0, r.grad.abs().max().item())
        check(got, r.grad, atol=GRAD_TOL[dtype] * scale, rtol=GRAD_TOL[dtype], quiet=True)


def test_conv_torch_version_and_float64(device):
    x = torch.randn(2, 7, 5, device=device, dtype=torch.float64)
    w = torch.randn(5, 3, device=device, dtype=torch.float64)
    bias = torch.randn(5, device=device, dtype=torch.float64)
    want = conv_reference(x, w, bias)
    check(causal_conv1d(x, w, bias), want, quiet=True)  # float64 takes the PyTorch path
    check(causal_conv1d(x.float(), w.float(), bias.float(), backend="torch"), want, quiet=True)
    # Written out by hand: y_t = bias + Σ_k w[:, k]·x_{t-(K-1)+k}.
    xp = F.pad(x, (0, 0, 2, 0))
    by_hand = bias + sum(w[:, k] * xp[:, k:k + 7] for k in range(3))
    check(causal_conv1d_torch(x, w, bias), by_hand, quiet=True)


def test_conv_is_causal(device):
    x = torch.randn(1, 37, C, device=device)
    w = torch.randn(C, 4, device=device)
    y = causal_conv1d(x, w)
    x2 = x.clone()
    x2[:, 20:] += 3.0
    y2 = causal_conv1d(x2, w)
    assert torch.equal(y2[:, :20], y[:, :20])
    assert not torch.allclose(y2[:, 20:], y[:, 20:])


@pytest.mark.parametrize("k", [1, 4])
def test_conv_steps_replay_the_full_convolution(device, k):
    x = torch.randn(2, 11, C, device=device)
    w = torch.randn(C, k, device=device)
    bias = torch.randn(C, device=device)
    full = causal_conv1d(x, w, bias)
    state, outs = None, []
    for t in range(x.shape[1]):
        y_t, state = causal_conv1d_step(x[:, t], state, w, bias)
        outs.append(y_t)
    check(torch.stack(outs, dim=1), full, name="conv decode vs prefill", quiet=True)
    assert state.shape == (2, k - 1, C)
    # The state after a prefill is the last K-1 inputs (zero-padded); continuing from it matches too.
    state = F.pad(x[:, :6], (0, 0, k - 1, 0))[:, 6:]  # the last K-1 of the first 6 inputs
    assert state.shape == (2, k - 1, C)
    for t in range(6, 11):
        y_t, state = causal_conv1d_step(x[:, t], state, w, bias)
        check(y_t, full[:, t], quiet=True)


# ----------------------------------------------------------------------------------------------
# Configs and bad input
# ----------------------------------------------------------------------------------------------


def test_configs_on_the_interpreter():
    assert linear_scan_config(torch.device("cpu"), 2, C) == {"blocks": {"BLOCK_T": 8, "BLOCK_C": 32}, "launch": {}}
    cfg = causal_conv1d_config(torch.device("cpu"), 1, 37, C, 3)  # a case of the conv tests above
    assert cfg["blocks"] == {"BLOCK_T": 8, "BLOCK_C": 32}
    # 5 time tiles over 2 backward programs of 3 tiles: the per-program loop, an all-masked tile
    # and the sum of partials all run.
    assert (cfg["programs_t"], cfg["tiles_per_program"]) == (2, 3)
    many = causal_conv1d_config(torch.device("cpu"), 4, 37, C, 4)
    assert many["programs_t"] == 1 and many["tiles_per_program"] == 5


def _z(*shape, dtype=torch.float32):
    return torch.zeros(shape, dtype=dtype)


@pytest.mark.parametrize(
    "args,error,match",
    [
        ((np.zeros((1, 4, 3)), _z(1, 4, 3)), TypeError, "a must be a torch.Tensor"),
        ((_z(1, 4, 3, dtype=torch.int32), _z(1, 4, 3)), TypeError, "a must be a floating-point tensor"),
        ((_z(4, 3), _z(4, 3)), ValueError, r"a must have 3 dims \(B, T, C\)"),
        ((_z(1, 4, 3), _z(1, 5, 3)), ValueError, r"b must have a's shape \(B, T, C\) = \(1, 4, 3\)"),
        ((_z(1, 4, 3), _z(1, 4, 3, dtype=torch.float64)), TypeError, "a and b must share one dtype"),
        ((_z(1, 0, 3), _z(1, 0, 3)), ValueError, "a must have B, T, C >= 1"),
        ((_z(1, 4, 3), _z(1, 4, 3), _z(1, 4)), ValueError, r"h0 must have shape \(B, C\) = \(1, 3\)"),
        ((_z(1, 4, 3), _z(1, 4, 3), _z(3)), ValueError, r"h0 must have 2 dims \(B, C\)"),
        ((_z(1, 4, 3, dtype=torch.float16), _z(1, 4, 3, dtype=torch.float16), _z(1, 3, dtype=torch.float64)),
         TypeError, "h0 must have dtype float16 or float32"),
    ],
)
def test_scan_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        linear_scan(*args)
    with pytest.raises(error, match=match):
        linear_scan_torch(*args)


@pytest.mark.parametrize(
    "args,kwargs,error,match",
    [
        ((_z(2, 4, 3), _z(3, 2)), {}, None, None),
        ((_z(2, 4), _z(3, 2)), {}, ValueError, r"x must have 3 dims \(B, T, C\)"),
        ((_z(2, 4, 3), _z(4, 2)), {}, ValueError, r"weight must have shape \(C, K\) = \(3, K\)"),
        ((_z(2, 4, 3), _z(3, 0)), {}, ValueError, r"weight must have shape \(C, K\)"),
        ((_z(2, 4, 3), _z(3)), {}, ValueError, r"weight must have 2 dims \(C, K\)"),
        ((_z(2, 4, 3), _z(3, 2), _z(4)), {}, ValueError, r"bias must have shape \(C,\) = \(3,\)"),
        ((_z(2, 4, 3), _z(3, 2, dtype=torch.float16)), {}, TypeError, "weight must have x's dtype"),
        ((_z(2, 4, 3), _z(3, 2), _z(3, dtype=torch.float64)), {}, TypeError, "bias must have x's dtype"),
        ((_z(2, 4, 3, dtype=torch.int64), _z(3, 2)), {}, TypeError, "x must be a floating-point tensor"),
        ((_z(2, 4, 3), _z(3, 2)), {"backend": "cuda"}, ValueError, "backend must be"),
    ],
)
def test_conv_bad_input(args, kwargs, error, match):
    if error is None:
        assert causal_conv1d(*args, **kwargs).shape == (2, 4, 3)
        return
    with pytest.raises(error, match=match):
        causal_conv1d(*args, **kwargs)


def test_mixed_devices_raise():
    a = _z(1, 4, 3)
    with pytest.raises(ValueError, match="a and b must be on one device"):
        linear_scan(a, a.to("meta"))
    with pytest.raises(ValueError, match="h0 must be on a's device"):
        linear_scan(a, a, _z(1, 3).to("meta"))
    with pytest.raises(ValueError, match="weight must be on x's device"):
        causal_conv1d(a, _z(3, 2).to("meta"))
    with pytest.raises(ValueError, match="bias must be on x's device"):
        causal_conv1d(a, _z(3, 2), _z(3).to("meta"))


def test_triton_backend_on_cpu_tensors_is_refused_clearly():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal is for CPU-only machines")
    with pytest.raises(ValueError, match="cannot run cpu tensors"):
        linear_scan(_z(1, 4, 3), _z(1, 4, 3), backend="triton")
    with pytest.raises(ValueError, match="cannot run cpu tensors"):
        causal_conv1d(_z(1, 4, 3), _z(3, 2), backend="triton")


def test_step_functions_bad_input():
    with pytest.raises(ValueError, match=r"a_t must have 2 dims \(B, C\)"):
        linear_scan_step(_z(1, 4, 3), _z(1, 4, 3))
    with pytest.raises(ValueError, match=r"b_t must have a_t's shape \(B, C\) = \(2, 3\)"):
        linear_scan_step(_z(2, 3), _z(2, 4))
    with pytest.raises(TypeError, match="a_t and b_t must share one dtype"):
        linear_scan_step(_z(2, 3), _z(2, 3, dtype=torch.float16))
    with pytest.raises(ValueError, match=r"h must have shape \(B, C\) = \(2, 3\)"):
        linear_scan_step(_z(2, 3), _z(2, 3), _z(3, 2))
    with pytest.raises(TypeError, match="h must have dtype"):
        linear_scan_step(_z(2, 3), _z(2, 3), _z(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"conv_state must have shape \(B, K-1, C\) = \(2, 3, 5\)"):
        causal_conv1d_step(_z(2, 5), _z(2, 2, 5), _z(5, 4))
    with pytest.raises(TypeError, match="conv_state must have x_t's dtype"):
        causal_conv1d_step(_z(2, 5), _z(2, 3, 5, dtype=torch.float64), _z(5, 4))
    with pytest.raises(ValueError, match=r"weight must have shape \(C, K\) = \(5, K\)"):
        causal_conv1d_step(_z(2, 5), None, _z(4, 4))
    with pytest.raises(ValueError, match=r"x_t must have 2 dims \(B, C\)"):
        causal_conv1d_step(_z(2, 1, 5), None, _z(5, 4))
