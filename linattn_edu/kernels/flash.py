"""FlashAttention in Triton: exact softmax attention computed tile by tile.

The forward kernel streams key/value blocks past a block of queries and keeps a running max
``m`` and running sum ``l`` (the *online softmax*), so the ``(Tq, Tk)`` score matrix is never
stored. It also writes the log-sum-exp of every row, which is all the backward pass needs to
rebuild the probabilities block by block:

- ``_flash_bwd_dkdv_kernel``: one program per key block, loops over the query blocks that see it;
- ``_flash_bwd_dq_kernel``: one program per query block, loops over the key blocks it sees.

Features: causal masking with queries at the end of the keys (``Tq <= Tk``, decoding with a cache),
a causal sliding window, ALiBi biases computed in the kernel from the per-head slopes (no
``T x T`` bias tensor), multi-query / grouped-query attention (query head ``h`` reads KV head
``h // (H / H_kv)``), any sequence length (masked tails), head dims 16/32/64/128,
fp32/fp16/bf16 inputs with fp32 accumulation.

Blocks that are entirely masked (above the causal diagonal, or left of the window) are skipped
by the loop bounds, which is where causal and windowed attention save their work.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from . import configs
from ._common import check_bool, check_float, check_int, choose_backend, jit, require_tensor, tl, triton

__all__ = [
    "SUPPORTED_HEAD_DIMS",
    "flash_attention",
    "flash_attention_torch",
    "flash_attention_config",
]

#: Head dims the Triton kernels are built for (``tl.dot`` wants tile sides >= 16, powers of 2).
SUPPORTED_HEAD_DIMS = (16, 32, 64, 128)
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_LOG2E = 1.4426950408889634  # exp(x) = exp2(x * log2(e)); exp2 is the cheaper instruction


# ----------------------------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------------------------


@jit
def _scores_to_log2(
    qk, q_pos, k_pos, slope, sm_scale, q_valid, k_valid, window,
    CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr, HAS_ALIBI: tl.constexpr,
):
    """Scale raw ``q·k`` scores, add the ALiBi bias, mask, and convert to base-2 units.

    Returns the scores times ``log2(e)`` (masked entries at ``-inf``), ready for ``exp2``.
    """
    s = qk * sm_scale
    if HAS_ALIBI:
        # ALiBi: -m_h * (i - j), with i and j the absolute positions of query and key.
        s = s - slope * (q_pos[:, None] - k_pos[None, :]).to(tl.float32)
    visible = q_valid[:, None] & k_valid[None, :]
    if CAUSAL:
        visible = visible & (k_pos[None, :] <= q_pos[:, None])
    if HAS_WINDOW:
        visible = visible & (k_pos[None, :] > q_pos[:, None] - window)
    return tl.where(visible, s * 1.4426950408889634, float("-inf"))


@jit
def _key_block_range(start_m, offset, Tk, window,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                     CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr):
    """First and one-past-last key index a query block must visit (multiples of BLOCK_N)."""
    lo = 0
    hi = Tk
    if CAUSAL:
        # The last query of the block sits at position start_m + BLOCK_M - 1 + offset.
        hi = tl.minimum(Tk, start_m + BLOCK_M + offset)
    if HAS_WINDOW:
        first_visible = tl.maximum(start_m + offset - window + 1, 0)
        lo = (first_visible // BLOCK_N) * BLOCK_N
    return lo, hi


@jit
def _flash_fwd_kernel(
    Q, K, V, O, LSE, SLOPES,
    stride_qb, stride_qh, stride_qt,
    stride_kb, stride_kh, stride_kt,
    stride_vb, stride_vh, stride_vt,
    stride_ob, stride_oh, stride_ot,
    sm_scale, Tq, Tk, H, GROUP, window,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr, HAS_ALIBI: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """One program computes ``BLOCK_M`` query rows of one (batch, head): grid ``(cdiv(Tq, BLOCK_M), B*H)``."""
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    h_kv = h // GROUP  # grouped-query attention: GROUP query heads share one KV head

    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    q_valid = offs_m < Tq
    offset = Tk - Tq  # queries are the last Tq positions of the key sequence
    q_pos = offs_m + offset

    q_base = Q + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    k_base = K + b.to(tl.int64) * stride_kb + h_kv.to(tl.int64) * stride_kh
    v_base = V + b.to(tl.int64) * stride_vb + h_kv.to(tl.int64) * stride_vh
    q = tl.load(q_base + offs_m.to(tl.int64)[:, None] * stride_qt + offs_d[None, :], mask=q_valid[:, None], other=0.0)

    slope = 0.0
    if HAS_ALIBI:
        slope = tl.load(SLOPES + h)

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)  # running max (base-2 units)
    l_i = tl.zeros([BLOCK_M], tl.float32)  # running sum of exp2(s - m_i)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)  # running sum of p @ v

    lo, hi = _key_block_range(start_m, offset, Tk, window, BLOCK_M, BLOCK_N, CAUSAL, HAS_WINDOW)
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k_valid = offs_n < Tk
        k = tl.load(k_base + offs_n.to(tl.int64)[:, None] * stride_kt + offs_d[None, :], mask=k_valid[:, None], other=0.0)
        v = tl.load(v_base + offs_n.to(tl.int64)[:, None] * stride_vt + offs_d[None, :], mask=k_valid[:, None], other=0.0)

        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
        s = _scores_to_log2(qk, q_pos, offs_n, slope, sm_scale, q_valid, k_valid, window,
                            CAUSAL, HAS_WINDOW, HAS_ALIBI)

        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        # A row may have seen only masked keys so far: keep its exponent finite.
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - m_safe)  # rescales what was accumulated under the old max
        p = tl.exp2(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
        m_i = m_new

    l_safe = tl.where(l_i == 0.0, 1.0, l_i)
    acc = acc / l_safe[:, None]
    o_base = O + b.to(tl.int64) * stride_ob + h.to(tl.int64) * stride_oh
    tl.store(o_base + offs_m.to(tl.int64)[:, None] * stride_ot + offs_d[None, :], acc.to(O.dtype.element_ty),
             mask=q_valid[:, None])
    # Log-sum-exp in base 2 per row: the backward pass rebuilds p = exp2(s - lse) from it.
    m_final = tl.where(m_i == float("-inf"), 0.0, m_i)
    tl.store(LSE + bh.to(tl.int64) * Tq + offs_m, m_final + tl.log2(l_safe), mask=q_valid)


@jit
def _flash_bwd_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV, SLOPES,
    stride_qb, stride_qh, stride_qt,
    stride_kb, stride_kh, stride_kt,
    stride_vb, stride_vh, stride_vt,
    stride_dob, stride_doh, stride_dot,
    stride_dkb, stride_dkh, stride_dkt,
    sm_scale, Tq, Tk, H, GROUP, window,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr, HAS_ALIBI: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """dK and dV of one key block for one *query* head: grid ``(cdiv(Tk, BLOCK_N), B*H)``.

    With GQA, each query head writes its own partial dK/dV (``DK``, ``DV`` are ``(B, H, Tk, D)``
    fp32); the launcher sums the ``GROUP`` partials that share a KV head.
    """
    start_n = tl.program_id(0) * BLOCK_N
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    h_kv = h // GROUP
    offset = Tk - Tq

    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    k_valid = offs_n < Tk
    k_base = K + b.to(tl.int64) * stride_kb + h_kv.to(tl.int64) * stride_kh
    v_base = V + b.to(tl.int64) * stride_vb + h_kv.to(tl.int64) * stride_vh
    k = tl.load(k_base + offs_n.to(tl.int64)[:, None] * stride_kt + offs_d[None, :], mask=k_valid[:, None], other=0.0)
    v = tl.load(v_base + offs_n.to(tl.int64)[:, None] * stride_vt + offs_d[None, :], mask=k_valid[:, None], other=0.0)

    slope = 0.0
    if HAS_ALIBI:
        slope = tl.load(SLOPES + h)

    # Which query rows can see this key block? Causal: queries at positions >= start_n.
    # Window: queries at positions < start_n + BLOCK_N - 1 + window.
    lo = 0
    hi = Tq
    if CAUSAL:
        lo = tl.maximum(start_n - offset, 0)
        lo = (lo // BLOCK_M) * BLOCK_M
    if HAS_WINDOW:
        hi = tl.minimum(Tq, start_n + BLOCK_N - 1 + window - offset)

    dk = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    q_base = Q + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    do_base = DO + b.to(tl.int64) * stride_dob + h.to(tl.int64) * stride_doh
    for start_m in range(lo, hi, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        q_valid = offs_m < Tq
        q = tl.load(q_base + offs_m.to(tl.int64)[:, None] * stride_qt + offs_d[None, :], mask=q_valid[:, None], other=0.0)
        do = tl.load(do_base + offs_m.to(tl.int64)[:, None] * stride_dot + offs_d[None, :], mask=q_valid[:, None], other=0.0)
        lse = tl.load(LSE + bh.to(tl.int64) * Tq + offs_m, mask=q_valid, other=0.0)
        delta = tl.load(DELTA + bh.to(tl.int64) * Tq + offs_m, mask=q_valid, other=0.0)

        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
        s = _scores_to_log2(qk, offs_m + offset, offs_n, slope, sm_scale, q_valid, k_valid, window,
                            CAUSAL, HAS_WINDOW, HAS_ALIBI)
        p = tl.exp2(s - lse[:, None])  # the forward probabilities, rebuilt: (BLOCK_M, BLOCK_N)
        dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=DOT_PRECISION)
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
        ds = p * (dp - delta[:, None])  # softmax backward: dS = P * (dP - rowsum(dO * O))
        dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=DOT_PRECISION)

    dk = dk * sm_scale
    dk_ptrs = DK + b.to(tl.int64) * stride_dkb + h.to(tl.int64) * stride_dkh + offs_n.to(tl.int64)[:, None] * stride_dkt + offs_d[None, :]
    dv_ptrs = DV + b.to(tl.int64) * stride_dkb + h.to(tl.int64) * stride_dkh + offs_n.to(tl.int64)[:, None] * stride_dkt + offs_d[None, :]
    tl.store(dk_ptrs, dk, mask=k_valid[:, None])
    tl.store(dv_ptrs, dv, mask=k_valid[:, None])


@jit
def _flash_bwd_dq_kernel(
    Q, K, V, DO, LSE, DELTA, DQ, SLOPES,
    stride_qb, stride_qh, stride_qt,
    stride_kb, stride_kh, stride_kt,
    stride_vb, stride_vh, stride_vt,
    stride_dob, stride_doh, stride_dot,
    stride_dqb, stride_dqh, stride_dqt,
    sm_scale, Tq, Tk, H, GROUP, window,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr, HAS_ALIBI: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """dQ of one query block: grid ``(cdiv(Tq, BLOCK_M), B*H)``; same key loop as the forward."""
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    h_kv = h // GROUP
    offset = Tk - Tq

    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    q_valid = offs_m < Tq
    q_base = Q + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    do_base = DO + b.to(tl.int64) * stride_dob + h.to(tl.int64) * stride_doh
    q = tl.load(q_base + offs_m.to(tl.int64)[:, None] * stride_qt + offs_d[None, :], mask=q_valid[:, None], other=0.0)
    do = tl.load(do_base + offs_m.to(tl.int64)[:, None] * stride_dot + offs_d[None, :], mask=q_valid[:, None], other=0.0)
    lse = tl.load(LSE + bh.to(tl.int64) * Tq + offs_m, mask=q_valid, other=0.0)
    delta = tl.load(DELTA + bh.to(tl.int64) * Tq + offs_m, mask=q_valid, other=0.0)

    slope = 0.0
    if HAS_ALIBI:
        slope = tl.load(SLOPES + h)

    k_base = K + b.to(tl.int64) * stride_kb + h_kv.to(tl.int64) * stride_kh
    v_base = V + b.to(tl.int64) * stride_vb + h_kv.to(tl.int64) * stride_vh
    dq = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    lo, hi = _key_block_range(start_m, offset, Tk, window, BLOCK_M, BLOCK_N, CAUSAL, HAS_WINDOW)
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k_valid = offs_n < Tk
        k = tl.load(k_base + offs_n.to(tl.int64)[:, None] * stride_kt + offs_d[None, :], mask=k_valid[:, None], other=0.0)
        v = tl.load(v_base + offs_n.to(tl.int64)[:, None] * stride_vt + offs_d[None, :], mask=k_valid[:, None], other=0.0)
        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
        s = _scores_to_log2(qk, offs_m + offset, offs_n, slope, sm_scale, q_valid, k_valid, window,
                            CAUSAL, HAS_WINDOW, HAS_ALIBI)
        p = tl.exp2(s - lse[:, None])
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=DOT_PRECISION)

    dq = dq * sm_scale
    dq_ptrs = DQ + b.to(tl.int64) * stride_dqb + h.to(tl.int64) * stride_dqh + offs_m.to(tl.int64)[:, None] * stride_dqt + offs_d[None, :]
    tl.store(dq_ptrs, dq.to(DQ.dtype.element_ty), mask=q_valid[:, None])


# ----------------------------------------------------------------------------------------------
# Launch configuration
# ----------------------------------------------------------------------------------------------


def flash_attention_config(device: torch.device, head_dim: int, dtype: torch.dtype) -> dict[str, Any]:
    """A small fixed launch configuration (no autotuning, so readers can see what runs).

    On the interpreter the blocks are the smallest ``tl.dot`` accepts (16): cheap, and small
    test shapes still cross several blocks. On a GPU the tiles come from
    :func:`linattn_edu.kernels.configs.flash_blocks` for the device's architecture: 128 x 64
    forward tiles for 16-bit inputs up to D = 64 (fp32 or D = 128 halve them), 32 x 64 / 32 x 32
    for the backward.
    """
    target = configs.target_of(device)
    if target is None:
        return {"fwd": dict(BLOCK_M=16, BLOCK_N=16), "bwd": dict(BLOCK_M=16, BLOCK_N=16),
                "launch": {}, "launch_bwd": {}}
    return configs.flash_blocks(target, head_dim, dtype)


# ----------------------------------------------------------------------------------------------
# PyTorch version of the same math (fallback and readable spec)
# ----------------------------------------------------------------------------------------------


def _visibility(tq: int, tk: int, causal: bool, window: int | None, device: torch.device) -> torch.Tensor:
    """``(Tq, Tk)`` bool, True where query i may see key j (queries end-aligned with the keys)."""
    q_pos = torch.arange(tq, device=device)[:, None] + (tk - tq)
    k_pos = torch.arange(tk, device=device)[None, :]
    visible = torch.ones(tq, tk, dtype=torch.bool, device=device)
    if causal:
        visible &= k_pos <= q_pos
    if window is not None:
        visible &= k_pos > q_pos - window
    return visible


def _alibi_bias(slopes: torch.Tensor, tq: int, tk: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(H, Tq, Tk)`` ALiBi bias ``-m_h * (i - j)`` in ``dtype``, with end-aligned query positions."""
    q_pos = torch.arange(tq, device=slopes.device)[:, None] + (tk - tq)
    k_pos = torch.arange(tk, device=slopes.device)[None, :]
    return -slopes.to(dtype)[:, None, None] * (q_pos - k_pos).to(dtype)


def flash_attention_torch(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = True,
    scale: float | None = None,
    alibi_slopes: torch.Tensor | None = None,
    window: int | None = None,
) -> torch.Tensor:
    """The math of :func:`flash_attention` in plain PyTorch; materializes the ``(Tq, Tk)`` scores.

    q: ``(B, H, Tq, D)``; k, v: ``(B, H_kv, Tk, D)``. Computes in float32 (float64 stays float64)
    and returns q's dtype. Differentiable through autograd. Used as the fallback backend and as
    the readable specification the kernels are tested against.
    """
    b, h, tq, d = q.shape
    h_kv, tk = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    compute = torch.float64 if q.dtype == torch.float64 else torch.float32
    group = h // h_kv
    k_full = k.to(compute).repeat_interleave(group, dim=1)
    v_full = v.to(compute).repeat_interleave(group, dim=1)
    scores = torch.matmul(q.to(compute), k_full.transpose(-1, -2)) * scale
    if alibi_slopes is not None:
        scores = scores + _alibi_bias(alibi_slopes, tq, tk, compute)
    scores = scores.masked_fill(~_visibility(tq, tk, causal, window, q.device), float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v_full).to(q.dtype)


# ----------------------------------------------------------------------------------------------
# Validation and the autograd wrapper
# ----------------------------------------------------------------------------------------------


def _validate(q, k, v, causal, scale, alibi_slopes, window) -> None:
    shape_doc = "(B, H, T, D)"
    require_tensor(q, "q", ndim=4, shape_doc=shape_doc)
    require_tensor(k, "k", ndim=4, shape_doc="(B, H_kv, T, D)")
    require_tensor(v, "v", ndim=4, shape_doc="(B, H_kv, T, D)")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    b, h, tq, d = q.shape
    if k.shape[0] != b or k.shape[3] != d:
        raise ValueError(f"k must have shape (B={b}, H_kv, Tk, D={d}), got {tuple(k.shape)}")
    if v.shape != k.shape:
        raise ValueError(f"v must have the same shape as k {tuple(k.shape)}, got {tuple(v.shape)}")
    if k.shape[1] < 1 or h % k.shape[1] != 0:
        raise ValueError(f"k has {k.shape[1]} heads: the {h} query heads of q must be a multiple of it")
    if tq < 1 or k.shape[2] < 1:
        raise ValueError(f"q and k need at least one position, got Tq={tq}, Tk={k.shape[2]}")
    if d < 1:
        raise ValueError(f"q must have a head dim D >= 1, got shape {tuple(q.shape)}")
    check_bool(causal, "causal")
    if causal and tq > k.shape[2]:
        raise ValueError(f"causal attention needs Tq <= Tk (queries are the last keys), got q {tuple(q.shape)}, k {tuple(k.shape)}")
    if window is not None:
        if not causal:
            raise ValueError("window requires causal=True (it is a causal sliding window)")
        check_int(window, "window", minimum=1)
    if scale is not None:
        if isinstance(scale, torch.Tensor):
            raise TypeError("scale must be a float or None, got a tensor (use float(scale))")
        check_float(scale, "scale")
    if alibi_slopes is not None:
        require_tensor(alibi_slopes, "alibi_slopes", ndim=1, shape_doc=f"(H={h},)")
        if alibi_slopes.shape[0] != h:
            raise ValueError(f"alibi_slopes must have shape (H={h},), got {tuple(alibi_slopes.shape)}")
        if alibi_slopes.device != q.device:
            raise ValueError(f"alibi_slopes must be on q's device {q.device}, got {alibi_slopes.device}")


class _FlashAttentionFn(torch.autograd.Function):
    """Triton forward and backward; saves q, k, v, o and the per-row log-sum-exp."""

    @staticmethod
    def forward(ctx, q, k, v, slopes, causal, scale, window, upcast):  # type: ignore[override]
        out_dtype = q.dtype
        if upcast:  # the interpreter has no bfloat16: compute in float32, cast back
            q, k, v = q.float(), k.float(), v.float()
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        o, lse = _forward(q, k, v, slopes, causal, scale, window)
        ctx.save_for_backward(q, k, v, o, lse, slopes if slopes is not None else torch.empty(0))
        ctx.meta = (causal, scale, window, slopes is not None, out_dtype)
        return o.to(out_dtype)

    @staticmethod
    def backward(ctx, do):  # type: ignore[override]
        q, k, v, o, lse, slopes = ctx.saved_tensors
        causal, scale, window, has_alibi, out_dtype = ctx.meta
        dq, dk, dv = _backward(q, k, v, o, lse, do.to(q.dtype).contiguous(),
                               slopes if has_alibi else None, causal, scale, window)
        return dq.to(out_dtype), dk.to(out_dtype), dv.to(out_dtype), None, None, None, None, None


def _common_args(q: torch.Tensor, k: torch.Tensor, scale: float, window: int | None) -> tuple:
    """Runtime scalars every kernel takes: sm_scale, Tq, Tk, H, GROUP, window (0 = none)."""
    h, tq = q.shape[1], q.shape[2]
    return (scale, tq, k.shape[2], h, h // k.shape[1], window or 0)


def _constexprs(q: torch.Tensor, causal: bool, window: int | None, slopes: Any, blocks: dict) -> dict:
    return dict(
        HEAD_DIM=q.shape[3], CAUSAL=causal, HAS_WINDOW=window is not None, HAS_ALIBI=slopes is not None,
        DOT_PRECISION="ieee" if q.dtype == torch.float32 else "tf32", **blocks,
    )


def _forward(q, k, v, slopes, causal, scale, window):
    b, h, tq, d = q.shape
    cfg = flash_attention_config(q.device, d, q.dtype)
    o = torch.empty_like(q)
    lse = torch.empty(b, h, tq, device=q.device, dtype=torch.float32)
    grid = (triton.cdiv(tq, cfg["fwd"]["BLOCK_M"]), b * h)
    slopes_arg = slopes.float().contiguous() if slopes is not None else lse  # dummy pointer if unused
    _flash_fwd_kernel[grid](
        q, k, v, o, lse, slopes_arg,
        *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *o.stride()[:3],
        *_common_args(q, k, scale, window),
        **_constexprs(q, causal, window, slopes, cfg["fwd"]), **cfg["launch"],
    )
    return o, lse


def _backward(q, k, v, o, lse, do, slopes, causal, scale, window):
    b, h, tq, d = q.shape
    h_kv, tk = k.shape[1], k.shape[2]
    cfg = flash_attention_config(q.device, d, q.dtype)
    delta = (do.float() * o.float()).sum(-1).contiguous()  # rowsum(dO * O): (B, H, Tq)
    dq = torch.empty_like(q)
    dk_full = torch.empty(b, h, tk, d, device=q.device, dtype=torch.float32)  # per query head
    dv_full = torch.empty_like(dk_full)
    slopes_arg = slopes.float().contiguous() if slopes is not None else lse
    strides = (*q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *do.stride()[:3])
    consts = _constexprs(q, causal, window, slopes, cfg["bwd"])
    grid_kv = (triton.cdiv(tk, cfg["bwd"]["BLOCK_N"]), b * h)
    _flash_bwd_dkdv_kernel[grid_kv](
        q, k, v, do, lse, delta, dk_full, dv_full, slopes_arg,
        *strides, *dk_full.stride()[:3], *_common_args(q, k, scale, window), **consts, **cfg["launch_bwd"],
    )
    grid_q = (triton.cdiv(tq, cfg["bwd"]["BLOCK_M"]), b * h)
    _flash_bwd_dq_kernel[grid_q](
        q, k, v, do, lse, delta, dq, slopes_arg,
        *strides, *dq.stride()[:3], *_common_args(q, k, scale, window), **consts, **cfg["launch_bwd"],
    )
    group = h // h_kv  # GQA: the query heads sharing a KV head add their contributions
    dk = dk_full.view(b, h_kv, group, tk, d).sum(2)
    dv = dv_full.view(b, h_kv, group, tk, d).sum(2)
    return dq, dk, dv


def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = True,
    scale: float | None = None,
    alibi_slopes: torch.Tensor | None = None,
    window: int | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Exact softmax attention with Triton forward and backward kernels (FlashAttention-2 style).

    Args:
        q: ``(B, H, Tq, D)`` queries, ``D`` in ``SUPPORTED_HEAD_DIMS`` (16, 32, 64, 128).
        k: ``(B, H_kv, Tk, D)`` keys; ``H % H_kv == 0`` (``H_kv = 1`` is multi-query attention).
        v: ``(B, H_kv, Tk, D)`` values.
        causal: query ``i`` sees keys at positions ``<= i``; with ``Tq < Tk`` the queries are the
            last ``Tq`` positions (decoding with a KV cache). Needs ``Tq <= Tk``.
        scale: score scale, default ``1 / sqrt(D)``.
        alibi_slopes: ``(H,)`` ALiBi slopes ``m_h``; the bias ``-m_h * (i - j)`` is computed inside
            the kernel from positions (no ``T x T`` tensor). The kernels do not differentiate
            them: slopes that require grad raise ``ValueError`` on a Triton backend while grad
            is enabled (pass ``alibi_slopes.detach()``, or ``backend="torch"`` for their gradient).
        window: causal sliding window ``w``: query ``i`` sees keys ``i - w < j <= i``.
        backend: None picks from the tensors' device (compiled Triton on a CUDA GPU with
            compute capability >= 8.0, the Triton interpreter for CPU tensors when
            ``TRITON_INTERPRET=1`` was set before import, PyTorch otherwise); or force
            ``"torch"``. float64 inputs always take the PyTorch path (the kernels are for
            32- and 16-bit floats).

    Returns:
        ``(B, H, Tq, D)`` in q's dtype; accumulation is in float32. Under the interpreter,
        bfloat16 inputs are computed in float32 (the interpreter has no bfloat16) and cast back.
        A NaN/Inf in a key or value at position ``j`` can also reach queries that may not see
        ``j`` (masked probability ``0 · NaN = NaN``), within ``j``'s key tile on the Triton path
        and in every row on the PyTorch path; PyTorch's ``scaled_dot_product_attention`` does the
        same. :func:`linattn_edu.reference.softmax_attention` reads only visible keys.

    Raises:
        TypeError: non-tensor or non-float inputs, mixed dtypes.
        ValueError: shapes that do not fit together, an unsupported head dim, mixed devices, a bad
            window, or a Triton backend requested where it cannot run; each message names the argument.
    """
    _validate(q, k, v, causal, scale, alibi_slopes, window)
    d = q.shape[-1]
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    window = None if window is None else int(window)  # NumPy ints accepted, plain int for the kernel
    if backend == "torch" or (backend is None and q.dtype == torch.float64):
        return flash_attention_torch(q, k, v, causal=causal, scale=scale, alibi_slopes=alibi_slopes, window=window)
    if d not in SUPPORTED_HEAD_DIMS:
        raise ValueError(
            f"q's head dim D={d} is not supported by the Triton kernel; use one of "
            f"{SUPPORTED_HEAD_DIMS} or backend='torch'"
        )
    if q.dtype not in _KERNEL_DTYPES:
        raise TypeError(f"q must be float32, float16 or bfloat16 for the Triton kernel, got {q.dtype} (use backend='torch')")
    if q.shape[0] * q.shape[1] > 65535:  # the launch grid's second axis is B*H, capped by CUDA
        raise ValueError(f"q has B*H = {q.shape[0] * q.shape[1]} > 65535 (batch, head) pairs; split the batch")
    chosen = choose_backend(_flash_fwd_kernel, q, backend)
    if chosen == "torch":
        return flash_attention_torch(q, k, v, causal=causal, scale=scale, alibi_slopes=alibi_slopes, window=window)
    if alibi_slopes is not None and alibi_slopes.requires_grad and torch.is_grad_enabled():
        raise ValueError(
            "alibi_slopes requires grad, but the Triton kernels do not differentiate the slopes "
            "(they would silently get no gradient): pass alibi_slopes.detach(), or use backend='torch'"
        )
    upcast = chosen == "interpreter" and q.dtype == torch.bfloat16
    return _FlashAttentionFn.apply(q, k, v, alibi_slopes, bool(causal), scale, window, upcast)

