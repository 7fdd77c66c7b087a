"""Chunked causal linear attention in Triton: forward and backward kernels, a PyTorch twin, decoding.

The inputs are already feature-mapped: ``q = φ(Q)``, ``k = φ(K)`` of width ``F`` (273 for the
Based Taylor map of ``D = 16``). The kernels compute the *unnormalized* causal linear attention::

    y_i = Σ_{j≤i} (q_i·k_j) v_j = q_iᵀ S_i,        S_i = Σ_{j≤i} k_j v_jᵀ   (F, Dv)

chunk by chunk (chunks of ``C`` tokens, ``c`` indexes chunks, ``M`` is the causal mask of a chunk)::

    Y_c = (Q_c K_cᵀ ⊙ M) V_c  +  Q_c S_{c-1}          intra-chunk (parallel)  +  earlier chunks
    S_c = S_{c-1} + K_cᵀ V_c                          the state, updated once per chunk

**Grid.** One program per (batch·head, Dv tile, F tile): ``(B*H, cdiv(Dv, BLOCK_V),
cdiv(F, BLOCK_F))``. Each program loops over all chunks in order and keeps *its* block
``S[f-tile, v-tile]`` (``BLOCK_F x BLOCK_V``, float32) in registers the whole time: the state never
goes to memory. A dot product splits over feature blocks, ``q·k = Σ_f q^(f)·k^(f)``, so each F tile
computes a partial output and the launcher adds the ``cdiv(F, BLOCK_F)`` partials (the "split-K"
of fla's chunk kernels). This is how ``F = 273`` works: five tiles of 64 with the tail masked,
instead of one 512-wide padded tile whose state would not fit in registers.

**Backward.** With ``dY`` the output gradient (``M`` lower-triangular, ``Mᵀ`` upper)::

    dQ_c = (dY_c V_cᵀ ⊙ M) K_c + dY_c S_{c-1}ᵀ              forward scan of the same S
    dK_c = (V_c dY_cᵀ ⊙ Mᵀ) Q_c + V_c dS_{c+1}ᵀ             reverse scan of dS
    dV_c = (K_c Q_cᵀ ⊙ Mᵀ) dY_c + K_c dS_{c+1}
    dS_c = dS_{c+1} + Q_cᵀ dY_c,    dS_{c+1} = Σ_{i in later chunks} q_i dy_iᵀ   (F, Dv)

``dS`` is the state of the *reversed* problem: position ``j`` receives gradient from every later
query, so the backward kernel walks the chunks from last to first carrying ``dS`` on chip, exactly
as the forward carries ``S``. dQ and dK are partial over Dv tiles and dV over F tiles; the
launcher adds the partials (float32, deterministic: no atomics).

**Normalization** is composed in PyTorch: ``num = y(q, k, v)``, ``den = y(q, k, 1)`` (the
normalizer is linear attention whose values are all 1, a ``(B, H, T, 1)`` tensor), ``o = num /
(den + eps)``; autograd through the division gives the right gradients. ``num`` and ``den`` stay
float32 until the division (a 16-bit numerator or denominator grows with ``T`` and could overflow).

**Precision.** Tiles are loaded in the input dtype and converted to float32 on chip; the state
and all accumulators are float32. ``tl.dot`` runs in IEEE float32 for float32 inputs (to meet the
float32 tolerance) and in TF32 for 16-bit inputs (exact for fp16/bf16 inputs, float32 range for
the state, which grows with ``T`` and can overflow fp16 on long sequences).

**Sizes.** Any ``T`` (masked tail chunk), any ``F >= 1`` and ``Dv >= 1`` (masked to tiles of
16-64). ``chunk_size`` for the kernels is a power of two in 16..128 (a ``tl.dot`` tile side); the
PyTorch version accepts any ``chunk_size >= 1``. The result does not depend on ``chunk_size``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from .. import runtime
from . import configs
from ._common import check_bool, check_float, check_int, choose_backend, jit, require_tensor, safe_divide, tl, triton

__all__ = [
    "KERNEL_CHUNK_SIZES",
    "LinearAttentionState",
    "chunked_linear_attention",
    "chunked_linear_attention_torch",
    "linear_attention_config",
    "linear_attention_step",
]

#: Chunk sizes the Triton kernels accept (a chunk is a ``tl.dot`` tile side: >= 16, a power of 2).
KERNEL_CHUNK_SIZES = (16, 32, 64, 128)
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


# ----------------------------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------------------------


@jit
def _load_tile(base, offs_t, offs_c, T, stride_t, n_cols):
    """Rows ``offs_t`` (< T) and columns ``offs_c`` (< n_cols) of a row-major (T, n_cols) slab, as fp32."""
    mask = (offs_t[:, None] < T) & (offs_c[None, :] < n_cols)
    x = tl.load(base + offs_t.to(tl.int64)[:, None] * stride_t + offs_c[None, :], mask=mask, other=0.0)
    return x.to(tl.float32)


@jit
def _linear_fwd_kernel(
    Q, K, V, Y,
    stride_qb, stride_qh, stride_qt,
    stride_vb, stride_vh, stride_vt,
    stride_yp, stride_yb, stride_yh, stride_yt,
    T, H, F, DV,
    CHUNK: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_V: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Partial ``y`` of one (b, h), Dv tile and F tile: grid ``(B*H, cdiv(Dv, BLOCK_V), cdiv(F, BLOCK_F))``.

    ``Y`` is ``(n_f_tiles, B, H, T, Dv)`` float32; F tile ``pid_f`` writes slice ``pid_f``.
    """
    bh = tl.program_id(0)
    pid_v = tl.program_id(1)
    pid_f = tl.program_id(2)
    b = bh // H
    h = bh % H
    offs_c = tl.arange(0, CHUNK)
    offs_f = pid_f * BLOCK_F + tl.arange(0, BLOCK_F)
    offs_v = pid_v * BLOCK_V + tl.arange(0, BLOCK_V)
    causal = offs_c[:, None] >= offs_c[None, :]  # (C, C): query row i sees key column j <= i

    q_base = Q + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    k_base = K + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh  # k has q's layout
    v_base = V + b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh
    y_base = Y + pid_f.to(tl.int64) * stride_yp + b.to(tl.int64) * stride_yb + h.to(tl.int64) * stride_yh

    state = tl.zeros([BLOCK_F, BLOCK_V], tl.float32)  # S restricted to this (F tile, Dv tile)
    for start in range(0, T, CHUNK):
        offs_t = start + offs_c
        q = _load_tile(q_base, offs_t, offs_f, T, stride_qt, F)  # (C, BLOCK_F)
        k = _load_tile(k_base, offs_t, offs_f, T, stride_qt, F)  # (C, BLOCK_F)
        v = _load_tile(v_base, offs_t, offs_v, T, stride_vt, DV)  # (C, BLOCK_V)

        scores = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)  # (C, C)
        scores = tl.where(causal, scores, 0.0)
        y = tl.dot(scores, v, input_precision=DOT_PRECISION)  # this chunk's own keys
        y += tl.dot(q, state, input_precision=DOT_PRECISION)  # every earlier chunk, through S
        out_mask = (offs_t[:, None] < T) & (offs_v[None, :] < DV)
        tl.store(y_base + offs_t.to(tl.int64)[:, None] * stride_yt + offs_v[None, :], y, mask=out_mask)

        state += tl.dot(tl.trans(k), v, input_precision=DOT_PRECISION)  # S += K_cᵀ V_c


@jit
def _linear_bwd_dq_kernel(
    K, V, DY, DQ,
    stride_qb, stride_qh, stride_qt,
    stride_vb, stride_vh, stride_vt,
    stride_dqp, stride_dqb, stride_dqh, stride_dqt,
    T, H, F, DV,
    CHUNK: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_V: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Partial dQ (over Dv tiles) by a forward scan of ``S``: ``DQ`` is ``(n_v_tiles, B, H, T, F)`` float32.

    ``dq_i = Σ_{j≤i} (dy_i·v_j) k_j``: inside the chunk through the masked ``dY_c V_cᵀ``, from
    earlier chunks through ``dy_i S_{c-1}ᵀ``. ``DY`` has ``V``'s strides.
    """
    bh = tl.program_id(0)
    pid_v = tl.program_id(1)
    pid_f = tl.program_id(2)
    b = bh // H
    h = bh % H
    offs_c = tl.arange(0, CHUNK)
    offs_f = pid_f * BLOCK_F + tl.arange(0, BLOCK_F)
    offs_v = pid_v * BLOCK_V + tl.arange(0, BLOCK_V)
    causal = offs_c[:, None] >= offs_c[None, :]

    k_base = K + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    v_base = V + b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh
    dy_base = DY + b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh
    dq_base = DQ + pid_v.to(tl.int64) * stride_dqp + b.to(tl.int64) * stride_dqb + h.to(tl.int64) * stride_dqh

    state = tl.zeros([BLOCK_F, BLOCK_V], tl.float32)
    for start in range(0, T, CHUNK):
        offs_t = start + offs_c
        k = _load_tile(k_base, offs_t, offs_f, T, stride_qt, F)
        v = _load_tile(v_base, offs_t, offs_v, T, stride_vt, DV)
        dy = _load_tile(dy_base, offs_t, offs_v, T, stride_vt, DV)

        dscores = tl.dot(dy, tl.trans(v), input_precision=DOT_PRECISION)  # (C, C): dy_i·v_j
        dscores = tl.where(causal, dscores, 0.0)
        dq = tl.dot(dscores, k, input_precision=DOT_PRECISION)
        dq += tl.dot(dy, tl.trans(state), input_precision=DOT_PRECISION)
        out_mask = (offs_t[:, None] < T) & (offs_f[None, :] < F)
        tl.store(dq_base + offs_t.to(tl.int64)[:, None] * stride_dqt + offs_f[None, :], dq, mask=out_mask)

        state += tl.dot(tl.trans(k), v, input_precision=DOT_PRECISION)


@jit
def _linear_bwd_dkdv_kernel(
    Q, K, V, DY, DK, DV_OUT,
    stride_qb, stride_qh, stride_qt,
    stride_vb, stride_vh, stride_vt,
    stride_dkp, stride_dkb, stride_dkh, stride_dkt,
    stride_dvp, stride_dvb, stride_dvh, stride_dvt,
    T, H, F, DV,
    CHUNK: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_V: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Partial dK (over Dv tiles) and dV (over F tiles) by a *reverse* scan of ``dS``.

    ``DK``: ``(n_v_tiles, B, H, T, F)``, ``DV_OUT``: ``(n_f_tiles, B, H, T, Dv)``, both float32.
    ``dS = Σ_{i in later chunks} q_i dy_iᵀ`` is the state of the time-reversed problem.
    """
    bh = tl.program_id(0)
    pid_v = tl.program_id(1)
    pid_f = tl.program_id(2)
    b = bh // H
    h = bh % H
    offs_c = tl.arange(0, CHUNK)
    offs_f = pid_f * BLOCK_F + tl.arange(0, BLOCK_F)
    offs_v = pid_v * BLOCK_V + tl.arange(0, BLOCK_V)
    anticausal = offs_c[:, None] <= offs_c[None, :]  # (C, C): key row j is seen by query column i >= j

    q_base = Q + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    k_base = K + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    v_base = V + b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh
    dy_base = DY + b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh
    dk_base = DK + pid_v.to(tl.int64) * stride_dkp + b.to(tl.int64) * stride_dkb + h.to(tl.int64) * stride_dkh
    dv_base = DV_OUT + pid_f.to(tl.int64) * stride_dvp + b.to(tl.int64) * stride_dvb + h.to(tl.int64) * stride_dvh

    dstate = tl.zeros([BLOCK_F, BLOCK_V], tl.float32)  # dS from the chunks after this one
    n_chunks = tl.cdiv(T, CHUNK)
    for step in range(0, n_chunks):
        start = (n_chunks - 1 - step) * CHUNK  # last chunk first
        offs_t = start + offs_c
        q = _load_tile(q_base, offs_t, offs_f, T, stride_qt, F)
        k = _load_tile(k_base, offs_t, offs_f, T, stride_qt, F)
        v = _load_tile(v_base, offs_t, offs_v, T, stride_vt, DV)
        dy = _load_tile(dy_base, offs_t, offs_v, T, stride_vt, DV)

        # dK_c = (V_c dY_cᵀ ⊙ Mᵀ) Q_c + V_c dSᵀ
        dscores_t = tl.where(anticausal, tl.dot(v, tl.trans(dy), input_precision=DOT_PRECISION), 0.0)
        dk = tl.dot(dscores_t, q, input_precision=DOT_PRECISION)
        dk += tl.dot(v, tl.trans(dstate), input_precision=DOT_PRECISION)
        # dV_c = (K_c Q_cᵀ ⊙ Mᵀ) dY_c + K_c dS
        scores_t = tl.where(anticausal, tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION), 0.0)
        dv = tl.dot(scores_t, dy, input_precision=DOT_PRECISION)
        dv += tl.dot(k, dstate, input_precision=DOT_PRECISION)

        t_valid = offs_t[:, None] < T
        tl.store(dk_base + offs_t.to(tl.int64)[:, None] * stride_dkt + offs_f[None, :], dk, mask=t_valid & (offs_f[None, :] < F))
        tl.store(dv_base + offs_t.to(tl.int64)[:, None] * stride_dvt + offs_v[None, :], dv, mask=t_valid & (offs_v[None, :] < DV))

        dstate += tl.dot(tl.trans(q), dy, input_precision=DOT_PRECISION)  # dS += Q_cᵀ dY_c


# ----------------------------------------------------------------------------------------------
# Launch configuration
# ----------------------------------------------------------------------------------------------


def _tile(n: int, cap: int) -> int:
    """Smallest power of two >= n, clamped to [16, cap] (``tl.dot`` wants sides >= 16)."""
    return max(16, min(cap, triton.next_power_of_2(n)))


def linear_attention_config(
    device: torch.device, feature_dim: int, value_dim: int, dtype: torch.dtype = torch.float16
) -> dict[str, Any]:
    """The fixed tile sizes (no autotuning): ``BLOCK_F``, ``BLOCK_V`` and the launch options.

    ``BLOCK_F`` and ``BLOCK_V`` are the smallest power of two covering ``F`` and ``Dv``, clamped to
    16..64: ``F = 273`` runs as 5 tiles of 64 (the last one 17/64 used), ``Dv = 64`` as one tile.
    On a GPU the choice comes from :func:`linattn_edu.kernels.configs.linear_blocks`: tiles of
    at most 32 (64 x 64 spilled registers), 8 warps for float32 inputs (exact IEEE ``tl.dot``
    on CUDA cores), 4 for 16-bit inputs.
    """
    target = configs.target_of(device)
    if target is None:  # the interpreter: no registers to run out of
        return {"blocks": dict(BLOCK_F=_tile(feature_dim, 64), BLOCK_V=_tile(value_dim, 64)), "launch": {}}
    return configs.linear_blocks(target, feature_dim, value_dim, dtype)


def _dot_precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"


def _forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk: int, dtype: torch.dtype) -> torch.Tensor:
    """Launch the forward kernel; returns ``y`` ``(B, H, T, Dv)`` float32."""
    b, h, t, f = q.shape
    dv = v.shape[-1]
    cfg = linear_attention_config(q.device, f, dv, dtype)
    bf, bv = cfg["blocks"]["BLOCK_F"], cfg["blocks"]["BLOCK_V"]
    n_f, n_v = triton.cdiv(f, bf), triton.cdiv(dv, bv)
    y = torch.empty(n_f, b, h, t, dv, device=q.device, dtype=torch.float32)
    _linear_fwd_kernel[(b * h, n_v, n_f)](
        q, k, v, y,
        *q.stride()[:3], *v.stride()[:3], *y.stride()[:4],
        t, h, f, dv,
        CHUNK=chunk, DOT_PRECISION=_dot_precision(dtype), **cfg["blocks"], **cfg["launch"],
    )
    return y.sum(0) if n_f > 1 else y[0]


def _backward(q, k, v, dy, chunk: int, dtype: torch.dtype):
    """Launch the two backward kernels; returns float32 ``dq, dk, dv``."""
    b, h, t, f = q.shape
    dv_dim = v.shape[-1]
    cfg = linear_attention_config(q.device, f, dv_dim, dtype)
    bf, bv = cfg["blocks"]["BLOCK_F"], cfg["blocks"]["BLOCK_V"]
    n_f, n_v = triton.cdiv(f, bf), triton.cdiv(dv_dim, bv)
    dq = torch.empty(n_v, b, h, t, f, device=q.device, dtype=torch.float32)
    dk = torch.empty_like(dq)
    dv = torch.empty(n_f, b, h, t, dv_dim, device=q.device, dtype=torch.float32)
    grid = (b * h, n_v, n_f)
    consts = dict(CHUNK=chunk, DOT_PRECISION=_dot_precision(dtype), **cfg["blocks"], **cfg["launch"])
    _linear_bwd_dq_kernel[grid](
        k, v, dy, dq,
        *q.stride()[:3], *v.stride()[:3], *dq.stride()[:4],
        t, h, f, dv_dim, **consts,
    )
    _linear_bwd_dkdv_kernel[grid](
        q, k, v, dy, dk, dv,
        *q.stride()[:3], *v.stride()[:3], *dk.stride()[:4], *dv.stride()[:4],
        t, h, f, dv_dim, **consts,
    )
    return dq.sum(0), dk.sum(0), dv.sum(0)


class _ChunkedLinearAttentionFn(torch.autograd.Function):
    """Unnormalized causal linear attention, Triton forward and backward; returns float32 ``y``.

    Saves only q, k, v (no per-chunk states): the backward re-runs the forward scan for dQ, and
    the reverse scan rebuilds ``dS`` from ``dY``, so memory stays O(T·(F + Dv)).
    """

    @staticmethod
    def forward(ctx, q, k, v, chunk, upcast):  # type: ignore[override]
        in_dtypes = (q.dtype, k.dtype, v.dtype)
        compute_dtype = q.dtype
        if upcast:  # the interpreter has no bfloat16: load float32 copies instead
            q, k, v = q.float(), k.float(), v.float()
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        y = _forward(q, k, v, chunk, compute_dtype)
        ctx.save_for_backward(q, k, v)
        ctx.meta = (chunk, compute_dtype, in_dtypes)
        return y

    @staticmethod
    def backward(ctx, dy):  # type: ignore[override]
        q, k, v = ctx.saved_tensors
        chunk, compute_dtype, in_dtypes = ctx.meta
        dq, dk, dv = _backward(q, k, v, dy.float().contiguous(), chunk, compute_dtype)
        grads = [g.to(dt) if need else None
                 for g, dt, need in zip((dq, dk, dv), in_dtypes, ctx.needs_input_grad[:3])]
        return grads[0], grads[1], grads[2], None, None


# ----------------------------------------------------------------------------------------------
# PyTorch version of the same math (fallback and readable spec)
# ----------------------------------------------------------------------------------------------


def chunked_linear_attention_torch(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    chunk_size: int = 64,
    normalize: bool = True,
    eps: float = 1e-6,
) -> torch.Tensor:
    """The math of :func:`chunked_linear_attention` in PyTorch, chunked and differentiable.

    q, k: ``(B, H, T, F)`` feature-mapped; v: ``(B, H, T, Dv)``. Computes in float32 (float64 stays
    float64) and returns ``(B, H, T, Dv)`` in q's dtype. Any ``chunk_size >= 1`` and any ``T``
    (the sequence is zero-padded to whole chunks; zero keys and values add nothing).

    Normalization rides along as one extra value column of ones: its output is the denominator
    ``q_i·z_i``. All chunk states are formed at once (``K_cᵀ V_c`` per chunk, then an exclusive
    cumulative sum over chunks), which holds ``T / C`` states of ``(F, Dv)`` in memory; the kernel
    instead carries one state through a loop.
    """
    _validate(q, k, v, chunk_size, normalize, eps)
    chunk_size, normalize, eps = int(chunk_size), bool(normalize), float(eps)
    compute = torch.float64 if q.dtype == torch.float64 else torch.float32
    b, h, t, f = q.shape
    q_, k_, v_ = q.to(compute), k.to(compute), v.to(compute)
    if normalize:
        v_ = torch.cat([v_, torch.ones(b, h, t, 1, dtype=compute, device=v.device)], dim=-1)
    c = int(chunk_size)
    n = -(-t // c)  # number of chunks
    pad = n * c - t
    if pad:
        q_, k_, v_ = (torch.nn.functional.pad(x, (0, 0, 0, pad)) for x in (q_, k_, v_))
    qc = q_.reshape(b, h, n, c, f)  # (B, H, N, C, F)
    kc = k_.reshape(b, h, n, c, f)
    vc = v_.reshape(b, h, n, c, v_.shape[-1])
    mask = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
    scores = (qc @ kc.transpose(-1, -2)).masked_fill(~mask, 0.0)  # (B, H, N, C, C)
    intra = scores @ vc
    chunk_states = kc.transpose(-1, -2) @ vc  # K_cᵀ V_c: (B, H, N, F, Dv')
    before = torch.cumsum(chunk_states, dim=2) - chunk_states  # S_{c-1}: states of earlier chunks
    out = (intra + qc @ before).reshape(b, h, n * c, -1)[:, :, :t]
    if normalize:
        out = safe_divide(out[..., :-1], out[..., -1:] + eps)  # 0 where 0 / 0 (eps = 0)
    return out.to(q.dtype)


# ----------------------------------------------------------------------------------------------
# Validation and the public entry points
# ----------------------------------------------------------------------------------------------


def _validate(q, k, v, chunk_size, normalize, eps) -> None:
    require_tensor(q, "q", ndim=4, shape_doc="(B, H, T, F)")
    require_tensor(k, "k", ndim=4, shape_doc="(B, H, T, F)")
    require_tensor(v, "v", ndim=4, shape_doc="(B, H, T, Dv)")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    if min(q.shape) < 1:
        raise ValueError(f"q must have B, H, T, F >= 1, got shape {tuple(q.shape)}")
    if k.shape != q.shape:
        raise ValueError(f"k must have the same shape as q {tuple(q.shape)}, got {tuple(k.shape)}")
    if v.shape[:3] != q.shape[:3] or v.shape[3] < 1:
        raise ValueError(f"v must have shape (B, H, T, Dv) = {tuple(q.shape[:3])} + (Dv,), got {tuple(v.shape)}")
    check_int(chunk_size, "chunk_size", minimum=1)
    check_bool(normalize, "normalize")
    check_float(eps, "eps", minimum=0.0)


def chunked_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    chunk_size: int = 64,
    normalize: bool = True,
    eps: float = 1e-6,
    backend: str | None = None,
) -> torch.Tensor:
    """Causal linear attention on feature-mapped inputs, with Triton forward and backward kernels.

    ``o_i = q_iᵀ S_i / (q_iᵀ z_i + eps)`` with ``S_i = Σ_{j≤i} k_j v_jᵀ``, ``z_i = Σ_{j≤i} k_j``
    (``normalize=False``: ``o_i = q_iᵀ S_i``). The feature map is applied by the caller.

    Args:
        q: ``(B, H, T, F)`` feature-mapped queries ``φ(Q)``; any ``F >= 1`` (e.g. 273 for Based).
        k: ``(B, H, T, F)`` feature-mapped keys ``φ(K)``.
        v: ``(B, H, T, Dv)`` values; any ``Dv >= 1`` (tiles of 16..64, masked).
        chunk_size: tokens per chunk; for the Triton kernels one of :data:`KERNEL_CHUNK_SIZES`
            (16, 32, 64, 128), any positive int for ``backend="torch"``. Does not change the result.
            On a GPU at most :func:`linattn_edu.kernels.configs.linear_max_chunk` (64 today:
            128 overflows shared memory or the register budget on sm_80, sm_89 and sm_90); a
            larger one takes the PyTorch path with one warning (``backend=None``) or raises
            ``ValueError`` (``backend="triton"``).
        normalize: divide by ``q_i·z_i + eps`` (computed as linear attention with values 1).
        eps: added to the denominator, finite and >= 0. With ``eps = 0`` a row whose denominator
            is exactly 0 (all its weights 0) outputs 0, the limit as ``eps → 0``.
        backend: None picks from the tensors' device (compiled Triton on a CUDA GPU with compute
            capability >= 8.0, the Triton interpreter for CPU tensors when ``TRITON_INTERPRET=1``
            was set before import, PyTorch otherwise) or force ``"torch"``. float64 inputs take
            the PyTorch path.

    Returns:
        ``(B, H, T, Dv)`` in q's dtype; float32 accumulation and state. Under the interpreter,
        bfloat16 inputs are computed in float32 and cast back. Differentiable in q, k and v.
        A NaN/Inf in a key or value can reach earlier rows of its own chunk (masked weight
        ``0 · NaN``), not earlier chunks; :func:`linattn_edu.reference.linear_attention` never
        reads masked positions.

    Raises:
        TypeError: non-tensor or non-float inputs, mixed dtypes, a non-bool ``normalize``.
        ValueError: shapes that do not fit together, mixed devices, a bad ``chunk_size`` (also,
            with ``backend="triton"``, one too big for this GPU; with ``backend=None`` that one
            takes the PyTorch path with a warning) or ``eps``, or a Triton backend requested where it cannot run; each names the argument.
    """
    _validate(q, k, v, chunk_size, normalize, eps)
    chunk_size, normalize, eps = int(chunk_size), bool(normalize), float(eps)  # NumPy scalars accepted
    if backend == "torch" or (backend is None and q.dtype == torch.float64):
        return chunked_linear_attention_torch(q, k, v, chunk_size=chunk_size, normalize=normalize, eps=eps)
    chosen = choose_backend(_linear_fwd_kernel, q, backend)
    if chosen == "torch":
        return chunked_linear_attention_torch(q, k, v, chunk_size=chunk_size, normalize=normalize, eps=eps)
    if q.dtype not in _KERNEL_DTYPES:
        raise TypeError(f"q must be float32, float16 or bfloat16 for the Triton kernel, got {q.dtype} (use backend='torch')")
    if chunk_size not in KERNEL_CHUNK_SIZES:
        raise ValueError(
            f"chunk_size must be one of {KERNEL_CHUNK_SIZES} for the Triton kernel, got {chunk_size} "
            "(the result does not depend on it; backend='torch' accepts any positive int)"
        )
    target = configs.target_of(q.device) if chosen == "triton" else None
    if target is not None and chunk_size > configs.linear_max_chunk(target, q.dtype):
        message = (
            f"chunk_size={chunk_size} does not fit this GPU (sm_{target}, {configs.shared_memory_limit(target)} B "
            f"of shared memory per block) for {q.dtype} inputs: use chunk_size <= "
            f"{configs.linear_max_chunk(target, q.dtype)} (the result does not depend on it)"
        )
        if backend == "triton":  # asked for the kernel explicitly
            raise ValueError(message)
        runtime.warn_once(message + "; using the PyTorch implementation for this chunk size.")
        return chunked_linear_attention_torch(q, k, v, chunk_size=chunk_size, normalize=normalize, eps=eps)
    upcast = chosen == "interpreter" and q.dtype == torch.bfloat16
    num = _ChunkedLinearAttentionFn.apply(q, k, v, chunk_size, upcast)  # float32
    if not normalize:
        return num.to(q.dtype)
    ones = torch.ones(*q.shape[:3], 1, dtype=q.dtype, device=q.device)
    den = _ChunkedLinearAttentionFn.apply(q, k, ones, chunk_size, upcast)  # q_i·z_i, float32
    return safe_divide(num, den + eps).to(q.dtype)  # 0 where 0 / 0 (eps = 0)


class LinearAttentionState(NamedTuple):
    """The recurrent state after ``t`` tokens (a tuple: ``S, z = state`` works).

    ``S``: ``(B, H, F, Dv)`` ``= Σ_{j<=t} k_j v_jᵀ``; ``z``: ``(B, H, F)`` ``= Σ_{j<=t} k_j``.
    float32 (float64 for float64 inputs) whatever the inputs' dtype. Its size does not grow with t.
    """

    S: torch.Tensor
    z: torch.Tensor


def linear_attention_step(
    q_t: torch.Tensor,
    k_t: torch.Tensor,
    v_t: torch.Tensor,
    state: LinearAttentionState | tuple[torch.Tensor, torch.Tensor] | None = None,
    *,
    normalize: bool = True,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """One decoding step of causal linear attention: read the new token, update the state, answer.

    ``S ← S + k_t v_tᵀ``, ``z ← z + k_t``, ``o_t = q_tᵀ S / (q_tᵀ z + eps)`` (``normalize=False``:
    ``q_tᵀ S``). Stepping through a sequence gives :func:`chunked_linear_attention` of the whole
    sequence. ``z`` is kept even with ``normalize=False`` so that one state serves both.

    Args:
        q_t: ``(B, H, F)`` feature-mapped query of the new token.
        k_t: ``(B, H, F)`` feature-mapped key of the new token.
        v_t: ``(B, H, Dv)`` value of the new token.
        state: ``(S (B, H, F, Dv), z (B, H, F))`` from the previous step, or None to start from zeros.
        normalize: divide by ``q_t·z + eps``.
        eps: added to the denominator, >= 0.

    Returns:
        ``(o_t, state)``: ``o_t`` ``(B, H, Dv)`` in q_t's dtype and the new
        :class:`LinearAttentionState` (new tensors; the old state is not modified), float32 or
        float64 for float64 inputs.
    """
    require_tensor(q_t, "q_t", ndim=3, shape_doc="(B, H, F)")
    require_tensor(k_t, "k_t", ndim=3, shape_doc="(B, H, F)")
    require_tensor(v_t, "v_t", ndim=3, shape_doc="(B, H, Dv)")
    if not (q_t.dtype == k_t.dtype == v_t.dtype):
        raise TypeError(f"q_t, k_t, v_t must share one dtype, got {q_t.dtype}, {k_t.dtype}, {v_t.dtype}")
    if not (q_t.device == k_t.device == v_t.device):
        raise ValueError(f"q_t, k_t, v_t must be on one device, got {q_t.device}, {k_t.device}, {v_t.device}")
    if k_t.shape != q_t.shape:
        raise ValueError(f"k_t must have the same shape as q_t {tuple(q_t.shape)}, got {tuple(k_t.shape)}")
    if v_t.shape[:2] != q_t.shape[:2]:
        raise ValueError(f"v_t must have shape (B, H, Dv) = {tuple(q_t.shape[:2])} + (Dv,), got {tuple(v_t.shape)}")
    normalize = check_bool(normalize, "normalize")
    eps = check_float(eps, "eps", minimum=0.0)
    compute = torch.float64 if q_t.dtype == torch.float64 else torch.float32
    b, h, f = q_t.shape
    dv = v_t.shape[-1]
    if state is None:
        s_prev = torch.zeros(b, h, f, dv, dtype=compute, device=q_t.device)
        z_prev = torch.zeros(b, h, f, dtype=compute, device=q_t.device)
    else:
        if not isinstance(state, tuple) or len(state) != 2:
            raise TypeError(f"state must be None or a (S, z) tuple, got {type(state).__name__}")
        s_prev, z_prev = state
        require_tensor(s_prev, "state.S", ndim=4, shape_doc="(B, H, F, Dv)")
        require_tensor(z_prev, "state.z", ndim=3, shape_doc="(B, H, F)")
        if tuple(s_prev.shape) != (b, h, f, dv):
            raise ValueError(f"state.S must have shape (B, H, F, Dv) = {(b, h, f, dv)}, got {tuple(s_prev.shape)}")
        if tuple(z_prev.shape) != (b, h, f):
            raise ValueError(f"state.z must have shape (B, H, F) = {(b, h, f)}, got {tuple(z_prev.shape)}")
        if s_prev.device != q_t.device or z_prev.device != q_t.device:
            raise ValueError(f"state must be on q_t's device {q_t.device}, got {s_prev.device}, {z_prev.device}")
        s_prev, z_prev = s_prev.to(compute), z_prev.to(compute)
    q_, k_, v_ = q_t.to(compute), k_t.to(compute), v_t.to(compute)
    s_new = s_prev + k_[..., :, None] * v_[..., None, :]
    z_new = z_prev + k_
    out = torch.einsum("bhf,bhfd->bhd", q_, s_new)
    if normalize:
        out = safe_divide(out, (q_ * z_new).sum(-1, keepdim=True) + eps)  # 0 where 0 / 0 (eps = 0)
    return out.to(q_t.dtype), LinearAttentionState(s_new, z_new)
