"""A linear scan and a causal depthwise convolution in Triton: the two sequence kernels of Griffin/Hawk.

**Linear scan.** Per batch row and channel (``a``, ``b``, ``h`` are ``(B, T, C)``)::

    h_t = a_t · h_{t-1} + b_t,      h_{-1} = h0 (or 0)

The RG-LRU of Griffin is exactly this with ``a_t = a^(c·r_t)`` and ``b_t = √(1 − a_t²)·(i_t ⊙ x_t)``
(the gates depend on ``x_t`` only, so the layer computes ``a`` and ``b`` for all ``t`` in parallel
and only the scan is sequential). A document reset is ``a_t = 0``.

The scan does ~2 flops per 12 bytes moved (read ``a_t``, ``b_t``, write ``h_t`` in float32): it is
memory-bound, and its speed is judged as a fraction of the memory bandwidth, not in FLOP/s.

**Grid.** One program per (batch row, tile of ``BLOCK_C`` channels): ``(B, cdiv(C, BLOCK_C))``.
Channels are independent, and ``C`` is the contiguous axis, so a tile row is one coalesced load.
Each program walks through time in order, carrying ``h`` for its channels in registers. It reads
``BLOCK_T`` time steps at once, a ``(BLOCK_T, BLOCK_C)`` tile of ``a`` and of ``b``, so that many
loads are in flight together (one row at a time would leave the memory system idle waiting for
each row in turn), and scans the tile in registers with ``tl.associative_scan``. The scan works
because composing two steps is again a step::

    (a₁, b₁) then (a₂, b₂):  h ↦ a₂(a₁h + b₁) + b₂ = (a₁a₂)·h + (a₂b₁ + b₂)

so the tile's prefix "products" ``(A_t, B_t)`` give ``h_t = A_t · h_carry + B_t``, and the carry
for the next tile is the tile's last row. Padded rows past ``T`` load the identity ``(1, 0)``.
This is the "blocked linear scan" of the Griffin paper's TPU kernel; with ``BLOCK_T = 1`` it would
be the plain loop ``h = a_t * h + b_t``.

**Backward.** With ``g_t = ∂L/∂h_t`` in total (through ``h_t`` itself and through every later
``h``)::

    g_t = dh_t + a_{t+1} · g_{t+1}      (g_{T-1} = dh_{T-1} + dh_last)
    ∂L/∂b_t = g_t,   ∂L/∂a_t = g_t · h_{t-1},   ∂L/∂h0 = a_0 · g_0

The recursion for ``g`` is again a linear scan, run backwards in time with the coefficients shifted
by one step. The backward kernel walks the tiles from last to first and loads each tile's rows
in reversed time order, so the very same ``associative_scan`` (forward along rows) runs it.

**Causal depthwise convolution.** Each channel ``c`` has its own ``K`` taps ``w[c, 0..K-1]``::

    y_t = bias + Σ_k w[k] · x_{t-(K-1)+k}      (x_s = 0 for s < 0; tap K-1 is the current step)

the same as ``F.conv1d`` of the input left-padded by ``K - 1`` with ``groups=C``. Forward grid:
``(B, cdiv(T, BLOCK_T), cdiv(C, BLOCK_C))``, ``K`` shifted tile loads per program. Backward:
``∂L/∂x_s = Σ_k w[k] · dy_{s+(K-1)-k}`` (the same correlation with the taps flipped, looking
forward in time), ``∂L/∂w[k] = Σ_{b,t} dy_t · x_{t-(K-1)+k}`` and ``∂L/∂bias = Σ_{b,t} dy_t``. Each
backward program covers a run of time tiles of one batch row, accumulates its weight and bias
partial sums in float32 registers and writes them once; the launcher adds the partials (no
atomics, deterministic). The number of programs along time is chosen to fill the GPU, which
keeps the partial-sum buffer small.

**Precision.** Tiles are loaded in the input dtype and converted to float32 on chip; the scan
state and all sums are float32 and the outputs are written in the input dtype. The final state
``h_last`` is returned in float32 (float64 for float64 inputs): it is the decoding state, and
keeping it unrounded makes ``prefill + decode`` match a single pass. Under the Triton interpreter
(no bfloat16) bfloat16 inputs are computed in float32 and cast back. float64 inputs use the
PyTorch versions.

**Decoding.** :func:`linear_scan_step` and :func:`causal_conv1d_step` advance the two
recurrences by one token in plain PyTorch (one token is too little work for a kernel launch to
pay off); replaying a sequence step by step gives the same outputs as the full-sequence kernels.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from . import configs
from ._common import choose_backend, jit, require_tensor, tl, triton

__all__ = [
    "causal_conv1d",
    "causal_conv1d_config",
    "causal_conv1d_step",
    "causal_conv1d_torch",
    "linear_scan",
    "linear_scan_config",
    "linear_scan_step",
    "linear_scan_torch",
]

_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the recurrences accumulate in: float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


# ----------------------------------------------------------------------------------------------
# Triton kernels: linear scan
# ----------------------------------------------------------------------------------------------


@jit
def _scan_combine(a_left, b_left, a_right, b_right):
    """Two steps of ``h ↦ a·h + b`` composed (left first): ``h ↦ (a_l·a_r)·h + (a_r·b_l + b_r)``."""
    return a_left * a_right, a_right * b_left + b_right


@jit
def _last_row(tile, rows, BLOCK_T: tl.constexpr):
    """Row ``BLOCK_T - 1`` of a ``(BLOCK_T, BLOCK_C)`` tile, as a ``(BLOCK_C,)`` vector."""
    return tl.sum(tl.where(rows[:, None] == BLOCK_T - 1, tile, 0.0), axis=0)


@jit
def _linear_scan_fwd_kernel(
    A, Bx, H0, H, HLAST,
    T, C,
    HAS_H0: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``h_t = a_t·h_{t-1} + b_t`` for one batch row and ``BLOCK_C`` channels: grid ``(B, cdiv(C, BLOCK_C))``.

    ``A``, ``Bx``, ``H``: contiguous ``(B, T, C)``; ``H0`` (read only if ``HAS_H0``) and ``HLAST``:
    float32 ``(B, C)``. ``H`` is written in its own dtype, ``HLAST`` in float32.
    """
    pid_b = tl.program_id(0)
    pid_c = tl.program_id(1)
    rows = tl.arange(0, BLOCK_T)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = offs_c < C
    batch = pid_b.to(tl.int64) * T * C  # start of this batch row (int64: B·T·C may exceed 2^31)
    state = pid_b.to(tl.int64) * C + offs_c

    if HAS_H0:
        h = tl.load(H0 + state, mask=c_ok, other=0.0).to(tl.float32)
    else:
        h = tl.zeros([BLOCK_C], dtype=tl.float32)
    for t0 in range(0, T, BLOCK_T):
        offs_t = t0 + rows
        mask = (offs_t[:, None] < T) & c_ok[None, :]
        offs = batch + offs_t[:, None].to(tl.int64) * C + offs_c[None, :]
        # Past the end: the identity step (a, b) = (1, 0), so the last row holds h_{T-1}.
        a = tl.load(A + offs, mask=mask, other=1.0).to(tl.float32)
        b = tl.load(Bx + offs, mask=mask, other=0.0).to(tl.float32)
        a_prefix, b_prefix = tl.associative_scan((a, b), 0, _scan_combine)  # steps t0..t composed
        h_tile = a_prefix * h[None, :] + b_prefix
        tl.store(H + offs, h_tile.to(H.dtype.element_ty), mask=mask)
        h = _last_row(h_tile, rows, BLOCK_T)  # the carry into the next tile
    tl.store(HLAST + state, h, mask=c_ok)


@jit
def _linear_scan_bwd_kernel(
    A, H, H0, DH, DHLAST, DA, DB, DH0,
    T, C,
    HAS_H0: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Reverse scan of ``g_t = dh_t + a_{t+1}·g_{t+1}``; writes ``DA = g·h_{t-1}``, ``DB = g``, ``DH0 = a_0·g_0``.

    Same grid and layouts as the forward; ``DHLAST`` and ``DH0`` are float32 ``(B, C)``. Tiles are
    visited last to first and each tile's rows are loaded in reversed time order (row 0 is the
    latest step), so a forward ``associative_scan`` along rows runs the recursion backwards in time.
    """
    pid_b = tl.program_id(0)
    pid_c = tl.program_id(1)
    rows = tl.arange(0, BLOCK_T)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = offs_c < C
    batch = pid_b.to(tl.int64) * T * C
    state = pid_b.to(tl.int64) * C + offs_c

    dh_last = tl.load(DHLAST + state, mask=c_ok, other=0.0)
    if HAS_H0:
        h0 = tl.load(H0 + state, mask=c_ok, other=0.0).to(tl.float32)
    else:
        h0 = tl.zeros([BLOCK_C], dtype=tl.float32)
    g = tl.zeros([BLOCK_C], dtype=tl.float32)  # g of the step just after this tile (0 after T-1)
    n_tiles = tl.cdiv(T, BLOCK_T)
    for i in range(0, n_tiles):
        offs_t = (n_tiles - 1 - i) * BLOCK_T + (BLOCK_T - 1 - rows)  # reversed: latest step first
        t_ok = offs_t < T
        mask = t_ok[:, None] & c_ok[None, :]
        offs = batch + offs_t[:, None].to(tl.int64) * C + offs_c[None, :]
        x = tl.load(DH + offs, mask=mask, other=0.0).to(tl.float32)
        x += tl.where(offs_t[:, None] == T - 1, dh_last[None, :], 0.0)
        # The coefficient of g_{t+1} in g_t is a_{t+1}; there is no a_T (0: nothing flows back from past the end).
        next_ok = (offs_t[:, None] + 1 < T) & c_ok[None, :]
        coef = tl.load(A + offs + C, mask=next_ok, other=0.0).to(tl.float32)
        c_prefix, x_prefix = tl.associative_scan((coef, x), 0, _scan_combine)
        g_tile = c_prefix * g[None, :] + x_prefix
        tl.store(DB + offs, g_tile.to(DB.dtype.element_ty), mask=mask)

        prev_ok = (offs_t[:, None] >= 1) & mask
        h_prev = tl.load(H + offs - C, mask=prev_ok, other=0.0).to(tl.float32)
        h_prev = tl.where(offs_t[:, None] == 0, h0[None, :], h_prev)  # h_{-1} = h0
        tl.store(DA + offs, (g_tile * h_prev).to(DA.dtype.element_ty), mask=mask)
        g = _last_row(g_tile, rows, BLOCK_T)  # g at this tile's first step: the carry into the tile before
    if HAS_H0:
        a0 = tl.load(A + batch + offs_c, mask=c_ok, other=0.0).to(tl.float32)
        tl.store(DH0 + state, a0 * g, mask=c_ok)


# ----------------------------------------------------------------------------------------------
# Triton kernels: causal depthwise convolution
# ----------------------------------------------------------------------------------------------


@jit
def _causal_conv1d_fwd_kernel(
    X, W, BIAS, Y,
    T, C, K,
    HAS_BIAS: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``y_t = bias + Σ_k w[:, k]·x_{t-(K-1)+k}`` on one ``(BLOCK_T, BLOCK_C)`` tile.

    Grid ``(cdiv(T, BLOCK_T), B, cdiv(C, BLOCK_C))`` (time on axis 0, the only axis without
    CUDA's 65,535 cap); ``X``, ``Y`` contiguous ``(B, T, C)``, ``W`` contiguous ``(C, K)``,
    ``BIAS`` ``(C,)``. The taps are a loop, not unrolled: ``K`` is a run-time argument, so one
    compiled kernel serves every filter width and ``K = 63`` compiles as fast as ``K = 4``.
    """
    pid_t = tl.program_id(0)
    pid_b = tl.program_id(1)
    pid_c = tl.program_id(2)
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = offs_c < C
    t_ok = offs_t < T
    batch = pid_b.to(tl.int64) * T * C  # int64: B·T·C may exceed 2^31

    acc = tl.zeros([BLOCK_T, BLOCK_C], dtype=tl.float32)
    for k in range(0, K):
        src = offs_t - (K - 1 - k)  # the input step tap k reads
        m = ((src >= 0) & t_ok)[:, None] & c_ok[None, :]
        x = tl.load(X + batch + src[:, None].to(tl.int64) * C + offs_c[None, :], mask=m, other=0.0)
        w = tl.load(W + offs_c * K + k, mask=c_ok, other=0.0).to(tl.float32)
        acc += x.to(tl.float32) * w[None, :]
    if HAS_BIAS:
        acc += tl.load(BIAS + offs_c, mask=c_ok, other=0.0).to(tl.float32)[None, :]
    out = batch + offs_t[:, None].to(tl.int64) * C + offs_c[None, :]
    tl.store(Y + out, acc.to(Y.dtype.element_ty), mask=t_ok[:, None] & c_ok[None, :])


@jit
def _causal_conv1d_bwd_kernel(
    X, W, DY, DX, DW, DBIAS,
    T, C, K, tiles_per_program,
    BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``dx``, and per-program partial sums of ``dw`` and ``dbias``, for a run of time tiles.

    Grid ``(B, P, cdiv(C, BLOCK_C))``: program ``(b, p, ·)`` covers time tiles
    ``p·tiles_per_program ..`` of batch row ``b``. ``DX`` is ``(B, T, C)``; ``DW`` is float32
    ``(B, P, K, C)`` and ``DBIAS`` float32 ``(B, P, C)``: the launcher sums them over ``(B, P)``.
    Two passes over the program's tiles, both loops over taps (``K`` is a run-time argument):
    the first accumulates each tile's ``dx`` over taps, the second each tap's ``dw`` over tiles,
    so only a ``(BLOCK_T, BLOCK_C)`` tile and a ``(BLOCK_C,)`` sum are live at a time.
    """
    pid_b = tl.program_id(0)
    pid_p = tl.program_id(1)
    pid_c = tl.program_id(2)
    n_p = tl.num_programs(1)
    rows = tl.arange(0, BLOCK_T)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = offs_c < C
    batch = pid_b.to(tl.int64) * T * C
    first_t = pid_p * tiles_per_program * BLOCK_T

    dbias = tl.zeros([BLOCK_C], dtype=tl.float32)
    for i in range(0, tiles_per_program):
        offs_t = first_t + i * BLOCK_T + rows
        t_ok = offs_t < T
        here = batch + offs_t[:, None].to(tl.int64) * C + offs_c[None, :]
        mask = t_ok[:, None] & c_ok[None, :]
        dbias += tl.sum(tl.load(DY + here, mask=mask, other=0.0).to(tl.float32), axis=0)
        dx = tl.zeros([BLOCK_T, BLOCK_C], dtype=tl.float32)
        for k in range(0, K):
            shift = K - 1 - k  # tap k links input step s to output step s + shift
            w = tl.load(W + offs_c * K + k, mask=c_ok, other=0.0).to(tl.float32)
            # dx_s += w[k]·dy_{s+shift}: the flipped correlation, looking forward in time.
            m_dst = ((offs_t + shift) < T)[:, None] & c_ok[None, :]
            dy_later = tl.load(DY + here + shift * C, mask=m_dst, other=0.0).to(tl.float32)
            dx += w[None, :] * dy_later
        tl.store(DX + here, dx.to(DX.dtype.element_ty), mask=mask)

    part = pid_b.to(tl.int64) * n_p + pid_p
    for k in range(0, K):
        shift = K - 1 - k
        dw = tl.zeros([BLOCK_C], dtype=tl.float32)  # Σ_t dy_t·x_{t-shift} over this program's tiles
        for i in range(0, tiles_per_program):
            offs_t = first_t + i * BLOCK_T + rows
            t_ok = offs_t < T
            here = batch + offs_t[:, None].to(tl.int64) * C + offs_c[None, :]
            dy = tl.load(DY + here, mask=t_ok[:, None] & c_ok[None, :], other=0.0).to(tl.float32)
            m_src = ((offs_t - shift >= 0) & t_ok)[:, None] & c_ok[None, :]
            x_earlier = tl.load(X + here - shift * C, mask=m_src, other=0.0).to(tl.float32)
            dw += tl.sum(dy * x_earlier, axis=0)
        tl.store(DW + (part * K + k) * C + offs_c, dw, mask=c_ok)
    tl.store(DBIAS + part * C + offs_c, dbias, mask=c_ok)


# ----------------------------------------------------------------------------------------------
# Launch configuration
# ----------------------------------------------------------------------------------------------


def linear_scan_config(device: torch.device, batch: int, channels: int) -> dict[str, Any]:
    """The fixed tile sizes of the scan kernels (no autotuning): ``BLOCK_T``, ``BLOCK_C`` and launch options.

    On a GPU, ``BLOCK_C`` is the widest of 128, 64, 32 channels that still gives at least two
    programs per streaming multiprocessor (``B · cdiv(C, BLOCK_C) >= 2 · SMs``; 32 if none does):
    the scan's only parallelism is over batch rows and channels, and a memory-bound kernel needs
    every SM busy. ``BLOCK_T`` makes a tile of 2048 elements (16 x 128 .. 64 x 32), i.e. 8 KiB of
    float32 per input in flight per program, 16 elements per thread with 4 warps. Under the
    interpreter tiles are small (8 x 32) so that small tests cross several tiles and a masked tail.
    """
    if configs.target_of(device) is None:
        return {"blocks": dict(BLOCK_T=8, BLOCK_C=32), "launch": {}}
    want = 2 * configs.sm_count(device)
    block_c = next((bc for bc in (128, 64, 32) if batch * triton.cdiv(channels, bc) >= want), 32)
    block_t = min(64, max(16, 2048 // block_c))
    return {"blocks": dict(BLOCK_T=block_t, BLOCK_C=block_c), "launch": dict(num_warps=4)}


def causal_conv1d_config(
    device: torch.device, batch: int, seq_len: int, channels: int, kernel_size: int
) -> dict[str, Any]:
    """Fixed tile sizes of the convolution kernels: ``BLOCK_T``, ``BLOCK_C``, launch options,
    and ``programs_t``, how many programs share the time axis in the backward.

    GPU: ``(32, 128)`` tiles with 4 warps. The backward uses about ``4 · SMs`` programs in all,
    each covering a run of consecutive time tiles, so its partial sums of ``dw`` (``B · programs_t
    · K · C`` floats) stay small whatever ``T`` is. Interpreter: ``(8, 32)`` tiles, and up to 4
    programs, so that small tests exercise several time tiles per program and several partials.
    """
    if configs.target_of(device) is not None:
        blocks = dict(BLOCK_T=32, BLOCK_C=128)
        launch = dict(num_warps=4)
        target = 4 * configs.sm_count(device)
    else:
        blocks = dict(BLOCK_T=8, BLOCK_C=32)
        launch = {}
        target = 4
    n_t_tiles = triton.cdiv(seq_len, blocks["BLOCK_T"])
    n_c = triton.cdiv(channels, blocks["BLOCK_C"])
    programs_t = min(n_t_tiles, max(1, triton.cdiv(target, batch * n_c)))
    tiles_per_program = triton.cdiv(n_t_tiles, programs_t)
    programs_t = triton.cdiv(n_t_tiles, tiles_per_program)  # no program left with nothing to do
    return {
        "blocks": blocks,
        "launch": launch,
        "programs_t": programs_t,
        "tiles_per_program": tiles_per_program,
    }


# ----------------------------------------------------------------------------------------------
# autograd.Functions around the kernels
# ----------------------------------------------------------------------------------------------


class _LinearScanFn(torch.autograd.Function):
    """``(h, h_last)`` of the linear scan with Triton forward and backward.

    Saves ``a``, ``h`` and ``h0`` (not ``b``: its gradient does not need it). With ``upcast``
    (bfloat16 under the interpreter) the kernels run on float32 copies and ``h`` is cast back.
    """

    @staticmethod
    def forward(ctx, a, b, h0, upcast):  # type: ignore[override]
        in_dtype = a.dtype
        h0_dtype = None if h0 is None else h0.dtype
        if upcast:
            a, b = a.float(), b.float()
        a, b = a.contiguous(), b.contiguous()
        bsz, t, c = a.shape
        h0_32 = None if h0 is None else h0.float().contiguous()
        h = torch.empty_like(a)
        h_last = torch.empty(bsz, c, device=a.device, dtype=torch.float32)
        cfg = linear_scan_config(a.device, bsz, c)
        grid = configs.check_grid((bsz, triton.cdiv(c, cfg["blocks"]["BLOCK_C"])), ("a's batch B", "a's channels C"))
        _linear_scan_fwd_kernel[grid](
            a, b, a if h0_32 is None else h0_32, h, h_last, t, c,
            HAS_H0=h0_32 is not None, **cfg["blocks"], **cfg["launch"],
        )
        ctx.save_for_backward(a, h, h0_32)
        ctx.meta = (in_dtype, h0_dtype)
        return h.to(in_dtype), h_last

    @staticmethod
    def backward(ctx, dh, dh_last):  # type: ignore[override]
        a, h, h0_32 = ctx.saved_tensors
        in_dtype, h0_dtype = ctx.meta
        bsz, t, c = a.shape
        dh = dh.to(a.dtype).contiguous()
        dh_last = dh_last.float().contiguous()
        da = torch.empty_like(a)
        db = torch.empty_like(a)
        dh0 = torch.empty(bsz, c, device=a.device, dtype=torch.float32) if h0_32 is not None else None
        cfg = linear_scan_config(a.device, bsz, c)
        grid = configs.check_grid((bsz, triton.cdiv(c, cfg["blocks"]["BLOCK_C"])), ("a's batch B", "a's channels C"))
        _linear_scan_bwd_kernel[grid](
            a, h, a if h0_32 is None else h0_32, dh, dh_last, da, db, a if dh0 is None else dh0, t, c,
            HAS_H0=h0_32 is not None, **cfg["blocks"], **cfg["launch"],
        )
        need_a, need_b, need_h0 = ctx.needs_input_grad[:3]
        return (
            da.to(in_dtype) if need_a else None,
            db.to(in_dtype) if need_b else None,
            dh0.to(h0_dtype) if (need_h0 and dh0 is not None) else None,
            None,
        )


class _CausalConv1dFn(torch.autograd.Function):
    """Causal depthwise convolution with Triton forward and backward; output in x's dtype."""

    @staticmethod
    def forward(ctx, x, weight, bias, upcast):  # type: ignore[override]
        in_dtype = x.dtype
        if upcast:
            x, weight = x.float(), weight.float()
            bias = None if bias is None else bias.float()
        x, weight = x.contiguous(), weight.contiguous()
        bias = None if bias is None else bias.contiguous()
        bsz, t, c = x.shape
        k = weight.shape[1]
        cfg = causal_conv1d_config(x.device, bsz, t, c, k)
        bt, bc = cfg["blocks"]["BLOCK_T"], cfg["blocks"]["BLOCK_C"]
        y = torch.empty_like(x)
        grid = configs.check_grid((triton.cdiv(t, bt), bsz, triton.cdiv(c, bc)),
                                  ("x's length T", "x's batch B", "x's channels C"))
        _causal_conv1d_fwd_kernel[grid](
            x, weight, weight if bias is None else bias, y, t, c, k,
            HAS_BIAS=bias is not None, BLOCK_T=bt, BLOCK_C=bc, **cfg["launch"],
        )
        ctx.save_for_backward(x, weight)
        ctx.meta = (in_dtype, bias is not None)
        return y.to(in_dtype)

    @staticmethod
    def backward(ctx, dy):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        in_dtype, has_bias = ctx.meta
        bsz, t, c = x.shape
        k = weight.shape[1]
        cfg = causal_conv1d_config(x.device, bsz, t, c, k)
        blocks = cfg["blocks"]
        n_p = cfg["programs_t"]
        dy = dy.to(x.dtype).contiguous()
        dx = torch.empty_like(x)
        dw_part = torch.empty(bsz, n_p, k, c, device=x.device, dtype=torch.float32)
        db_part = torch.empty(bsz, n_p, c, device=x.device, dtype=torch.float32)
        grid = configs.check_grid((bsz, n_p, triton.cdiv(c, blocks["BLOCK_C"])),
                                  ("x's batch B", "x's length T", "x's channels C"))
        _causal_conv1d_bwd_kernel[grid](
            x, weight, dy, dx, dw_part, db_part, t, c, k, cfg["tiles_per_program"],
            **blocks, **cfg["launch"],
        )
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dw = dw_part.sum((0, 1)).t().to(in_dtype) if need_w else None
        db = db_part.sum((0, 1)).to(in_dtype) if (need_b and has_bias) else None
        return (dx.to(in_dtype) if need_x else None), dw, db, None


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------


def _check_state_dtype(h: torch.Tensor, name: str, ref: torch.Tensor, ref_name: str) -> None:
    allowed = {ref.dtype, _state_dtype(ref.dtype)}
    if h.dtype not in allowed:
        names = " or ".join(sorted(str(d).replace("torch.", "") for d in allowed))
        raise TypeError(f"{name} must have dtype {names} ({ref_name}'s dtype or the state's), got {h.dtype}")


def _validate_scan(a: Any, b: Any, h0: Any) -> None:
    require_tensor(a, "a", ndim=3, shape_doc="(B, T, C)")
    require_tensor(b, "b", ndim=3, shape_doc="(B, T, C)")
    if a.dtype != b.dtype:
        raise TypeError(f"a and b must share one dtype, got {a.dtype} and {b.dtype}")
    if a.device != b.device:
        raise ValueError(f"a and b must be on one device, got {a.device} and {b.device}")
    if min(a.shape) < 1:
        raise ValueError(f"a must have B, T, C >= 1 (shape (B, T, C)), got shape {tuple(a.shape)}")
    if b.shape != a.shape:
        raise ValueError(f"b must have a's shape (B, T, C) = {tuple(a.shape)}, got {tuple(b.shape)}")
    if h0 is not None:
        require_tensor(h0, "h0", ndim=2, shape_doc="(B, C)")
        want = (a.shape[0], a.shape[2])
        if tuple(h0.shape) != want:
            raise ValueError(f"h0 must have shape (B, C) = {want}, got {tuple(h0.shape)}")
        _check_state_dtype(h0, "h0", a, "a")
        if h0.device != a.device:
            raise ValueError(f"h0 must be on a's device {a.device}, got {h0.device}")


def _validate_conv(x: Any, weight: Any, bias: Any) -> None:
    require_tensor(x, "x", ndim=3, shape_doc="(B, T, C)")
    if min(x.shape) < 1:
        raise ValueError(f"x must have B, T, C >= 1 (shape (B, T, C)), got shape {tuple(x.shape)}")
    _validate_filter(weight, bias, x, "x")


def _validate_filter(weight: Any, bias: Any, x: torch.Tensor, x_name: str) -> None:
    """``weight`` ``(C, K)`` and ``bias`` ``(C,)`` matching ``x``'s channels (its last dim), dtype and device."""
    require_tensor(weight, "weight", ndim=2, shape_doc="(C, K)")
    c = x.shape[-1]
    if weight.shape[0] != c or weight.shape[1] < 1:
        raise ValueError(f"weight must have shape (C, K) = ({c}, K) with K >= 1, got {tuple(weight.shape)}")
    if weight.dtype != x.dtype:
        raise TypeError(f"weight must have {x_name}'s dtype {x.dtype}, got {weight.dtype}")
    if weight.device != x.device:
        raise ValueError(f"weight must be on {x_name}'s device {x.device}, got {weight.device}")
    if bias is not None:
        require_tensor(bias, "bias", ndim=1, shape_doc="(C,)")
        if bias.shape[0] != c:
            raise ValueError(f"bias must have shape (C,) = ({c},), got {tuple(bias.shape)}")
        if bias.dtype != x.dtype:
            raise TypeError(f"bias must have {x_name}'s dtype {x.dtype}, got {bias.dtype}")
        if bias.device != x.device:
            raise ValueError(f"bias must be on {x_name}'s device {x.device}, got {bias.device}")


def _check_decay_domain(a: torch.Tensor) -> None:
    """``ValueError`` naming ``a`` unless ``|a| <= 1`` everywhere (NaN passes: it propagates anyway).

    The blocked scan composes up to ``BLOCK_T`` steps into products ``a_{t0}···a_t`` before it
    applies them to the carried state. For ``|a| <= 1`` those products cannot overflow; for
    ``|a| >> 1`` they reach ``inf`` and ``inf · 0`` turns exact zeros into NaN where the plain
    loop of :func:`linear_scan_torch` gives 0. One reduction over ``a`` (and a host sync); skipped
    while ``torch.compile`` traces.
    """
    if torch.compiler.is_compiling() or a.device.type == "meta":  # meta: shapes only (ahead-of-time compiles)
        return
    if bool((a.abs() > 1).any()):
        worst = float(a.abs().nan_to_num(0.0).max())
        raise ValueError(
            f"a must satisfy |a| <= 1 on the Triton backends (a stable decay; got max |a| = {worst:g}): "
            "the blocked scan multiplies up to BLOCK_T decays together, which overflows for |a| >> 1; "
            "use backend='torch' (the sequential loop) for |a| > 1"
        )


def _kernel_backend(kernel: Any, x: torch.Tensor, backend: str | None) -> str:
    """``"torch"``, ``"triton"`` or ``"interpreter"``; float64 goes to torch unless a kernel is forced."""
    if backend == "torch" or (backend is None and x.dtype == torch.float64):
        return "torch"
    chosen = choose_backend(kernel, x, backend)
    if chosen != "torch" and x.dtype not in _KERNEL_DTYPES:
        raise TypeError(
            f"inputs must be float32, float16 or bfloat16 for the Triton kernel, got {x.dtype} (use backend='torch')"
        )
    return chosen


# ----------------------------------------------------------------------------------------------
# Linear scan: public functions
# ----------------------------------------------------------------------------------------------


def linear_scan_torch(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear scan as a plain PyTorch loop over time: the readable spec, baseline and fallback.

    ``h_t = a_t·h_{t-1} + b_t`` with ``h_{-1} = h0`` (zeros if None). Computes in float32 (float64
    for float64 inputs); differentiable through autograd. Returns ``(h, h_last)`` as
    :func:`linear_scan` does: ``h`` ``(B, T, C)`` in a's dtype, ``h_last`` ``(B, C)`` in the state
    dtype. One small PyTorch op pair per step: ``T`` kernel launches on a GPU.
    """
    _validate_scan(a, b, h0)
    compute = _state_dtype(a.dtype)
    bsz, t, c = a.shape
    h = torch.zeros(bsz, c, dtype=compute, device=a.device) if h0 is None else h0.to(compute)
    a_, b_ = a.to(compute), b.to(compute)
    outs = []
    for step in range(t):
        h = a_[:, step] * h + b_[:, step]
        outs.append(h)
    return torch.stack(outs, dim=1).to(a.dtype), h


def linear_scan(
    a: torch.Tensor,
    b: torch.Tensor,
    h0: torch.Tensor | None = None,
    *,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear recurrence ``h_t = a_t·h_{t-1} + b_t`` over time, per batch row and channel.

    Args:
        a: ``(B, T, C)`` decay (the RG-LRU's ``a_t``; 0 resets the state). On the Triton backends
            ``|a| <= 1`` (checked: ``ValueError`` otherwise); ``backend="torch"`` takes any real.
        b: ``(B, T, C)`` input, the same shape and dtype as ``a``.
        h0: ``(B, C)`` state before the first step, or None for zeros. Its dtype is a's or the
            state dtype (float32; float64 for float64 inputs), so a previous call's ``h_last``
            can be passed back in.
        backend: None picks from the tensors' device (compiled Triton on a CUDA GPU with compute
            capability >= 8.0, the Triton interpreter for CPU tensors when ``TRITON_INTERPRET=1``
            was set before import, PyTorch otherwise) or force ``"torch"``. float64 inputs take
            the PyTorch path.

    Returns:
        ``(h, h_last)``: ``h`` ``(B, T, C)`` in a's dtype, every step's state; ``h_last`` ``(B, C)``
        the state after the last step in float32 (float64 for float64 inputs), unrounded, for
        continuing with :func:`linear_scan_step` or another call. Differentiable in ``a``, ``b``
        and ``h0``, through both outputs. Accumulation is in float32 for every input dtype.

    Raises:
        TypeError: non-tensor or non-float inputs, ``a`` and ``b`` of different dtypes, an ``h0``
            of another dtype, or float64 forced onto a Triton backend.
        ValueError: shapes that do not fit together, mixed devices, ``|a| > 1`` on a Triton
            backend, or a Triton backend requested where it cannot run; each names the argument.
    """
    _validate_scan(a, b, h0)
    chosen = _kernel_backend(_linear_scan_fwd_kernel, a, backend)
    if chosen == "torch":
        return linear_scan_torch(a, b, h0)
    _check_decay_domain(a)
    upcast = chosen == "interpreter" and a.dtype == torch.bfloat16
    return _LinearScanFn.apply(a, b, h0, upcast)


def linear_scan_step(a_t: torch.Tensor, b_t: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
    """One step of the scan for decoding: ``h_new = a_t·h + b_t``.

    Args:
        a_t, b_t: ``(B, C)``, one dtype.
        h: ``(B, C)`` the previous state (e.g. ``h_last`` of :func:`linear_scan`), or None for
            zeros. Its dtype is a_t's or the state dtype (float32; float64 for float64 inputs).

    Returns:
        ``h_new`` ``(B, C)`` in the state dtype (float32, or float64): a new tensor. The layer's
        output at this step is ``h_new.to(a_t.dtype)``, which equals the ``h[:, t]`` of a full
        :func:`linear_scan`.
    """
    require_tensor(a_t, "a_t", ndim=2, shape_doc="(B, C)")
    require_tensor(b_t, "b_t", ndim=2, shape_doc="(B, C)")
    if a_t.dtype != b_t.dtype:
        raise TypeError(f"a_t and b_t must share one dtype, got {a_t.dtype} and {b_t.dtype}")
    if a_t.device != b_t.device:
        raise ValueError(f"a_t and b_t must be on one device, got {a_t.device} and {b_t.device}")
    if b_t.shape != a_t.shape:
        raise ValueError(f"b_t must have a_t's shape (B, C) = {tuple(a_t.shape)}, got {tuple(b_t.shape)}")
    compute = _state_dtype(a_t.dtype)
    if h is None:
        return b_t.to(compute).clone()
    require_tensor(h, "h", ndim=2, shape_doc="(B, C)")
    if h.shape != a_t.shape:
        raise ValueError(f"h must have shape (B, C) = {tuple(a_t.shape)}, got {tuple(h.shape)}")
    _check_state_dtype(h, "h", a_t, "a_t")
    if h.device != a_t.device:
        raise ValueError(f"h must be on a_t's device {a_t.device}, got {h.device}")
    return a_t.to(compute) * h.to(compute) + b_t.to(compute)


# ----------------------------------------------------------------------------------------------
# Causal depthwise convolution: public functions
# ----------------------------------------------------------------------------------------------


def causal_conv1d_torch(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`causal_conv1d` through ``F.conv1d``: pad ``K - 1`` steps on the left, ``groups=C``.

    Computes in float32 (float64 for float64) and returns ``(B, T, C)`` in x's dtype.
    """
    _validate_conv(x, weight, bias)
    compute = _state_dtype(x.dtype)
    k = weight.shape[1]
    xt = F.pad(x.to(compute).transpose(1, 2), (k - 1, 0))  # (B, C, K-1+T)
    b = None if bias is None else bias.to(compute)
    y = F.conv1d(xt, weight.to(compute)[:, None, :], b, groups=x.shape[2])
    return y.transpose(1, 2).to(x.dtype)


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Causal depthwise 1-D convolution: ``y_t = bias + Σ_k weight[:, k]·x_{t-(K-1)+k}``.

    The output at step ``t`` sees inputs ``t-K+1 .. t`` only (zeros before the start); it equals
    ``F.conv1d(F.pad(x.transpose(1, 2), (K-1, 0)), weight[:, None, :], bias, groups=C).transpose(1, 2)``.

    Args:
        x: ``(B, T, C)``; any ``T >= 1`` (also ``T < K``) and ``C >= 1``.
        weight: ``(C, K)`` one filter per channel, x's dtype; ``weight[:, K-1]`` multiplies the
            current step (Griffin's temporal width is ``K = 4``).
        bias: ``(C,)`` or None.
        backend: None (choose from the device, as :func:`linear_scan`) or ``"torch"``.

    Returns:
        ``(B, T, C)`` in x's dtype (float32 accumulation). Differentiable in x, weight and bias.

    Raises:
        TypeError: non-tensor or non-float inputs, mixed dtypes.
        ValueError: shapes that do not fit together, mixed devices, a Triton backend requested
            where it cannot run; each names the argument and the expected shape.
    """
    _validate_conv(x, weight, bias)
    chosen = _kernel_backend(_causal_conv1d_fwd_kernel, x, backend)
    if chosen == "torch":
        return causal_conv1d_torch(x, weight, bias)
    upcast = chosen == "interpreter" and x.dtype == torch.bfloat16
    return _CausalConv1dFn.apply(x, weight, bias, upcast)


def causal_conv1d_step(
    x_t: torch.Tensor,
    conv_state: torch.Tensor | None,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding step of :func:`causal_conv1d`.

    Args:
        x_t: ``(B, C)`` the new input.
        conv_state: ``(B, K-1, C)`` the previous ``K - 1`` inputs, oldest first, in x_t's dtype
            (zeros at the start of a sequence; None means zeros). After a prefill of ``x``
            ``(B, T, C)`` it is ``F.pad(x, (0, 0, K - 1, 0))[:, -(K - 1):]`` (empty for ``K = 1``).
        weight: ``(C, K)``; bias: ``(C,)`` or None.

    Returns:
        ``(y_t, new_state)``: ``y_t`` ``(B, C)`` in x_t's dtype (float32 accumulation) and the
        state shifted by one step with ``x_t`` appended (a new tensor).
    """
    require_tensor(x_t, "x_t", ndim=2, shape_doc="(B, C)")
    if min(x_t.shape) < 1:
        raise ValueError(f"x_t must have B, C >= 1 (shape (B, C)), got shape {tuple(x_t.shape)}")
    _validate_filter(weight, bias, x_t, "x_t")
    bsz, c = x_t.shape
    k = weight.shape[1]
    if conv_state is None:
        conv_state = torch.zeros(bsz, k - 1, c, dtype=x_t.dtype, device=x_t.device)
    require_tensor(conv_state, "conv_state", ndim=3, shape_doc="(B, K-1, C)")
    if tuple(conv_state.shape) != (bsz, k - 1, c):
        raise ValueError(f"conv_state must have shape (B, K-1, C) = {(bsz, k - 1, c)}, got {tuple(conv_state.shape)}")
    if conv_state.dtype != x_t.dtype:
        raise TypeError(f"conv_state must have x_t's dtype {x_t.dtype}, got {conv_state.dtype}")
    if conv_state.device != x_t.device:
        raise ValueError(f"conv_state must be on x_t's device {x_t.device}, got {conv_state.device}")
    compute = _state_dtype(x_t.dtype)
    window = torch.cat([conv_state, x_t[:, None, :]], dim=1)  # (B, K, C): steps t-K+1 .. t
    y = (window.to(compute) * weight.to(compute).t()[None]).sum(1)
    if bias is not None:
        y = y + bias.to(compute)
    return y.to(x_t.dtype), window[:, 1:].contiguous()
