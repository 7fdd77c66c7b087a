"""Reference solutions of the puzzles (hidden from the book's pages; proved by tests/test_puzzles.py).

Imported lazily by the puzzle modules, after :func:`linattn_edu.runtime.setup` has chosen whether
Triton interprets or compiles. Program ids are widened to int64 before they multiply a stride, so
that an offset past 2**31 elements cannot wrap. Float32 ``tl.dot`` uses ``input_precision="ieee"``.
"""

from __future__ import annotations

import triton
import triton.language as tl

# ---------------------------------------------------------------------------------------------
# Chapter 2
# ---------------------------------------------------------------------------------------------


@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    y = tl.load(y_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, x + y, mask=mask)


@triton.jit
def softmax_kernel(x_ptr, out_ptr, n_cols, stride_x, stride_out, BLOCK_N: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=float("-inf"))
    x = x - tl.max(x, axis=0)
    e = tl.exp(x)
    tl.store(out_ptr + row * stride_out + cols, e / tl.sum(e, axis=0), mask=mask)


@triton.jit
def matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K,
                  stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_m = tl.program_id(0).to(tl.int64)
    pid_n = tl.program_id(1).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        a = tl.load(a_ptr + offs_m[:, None] * stride_am + offs_k[None, :] * stride_ak,
                    mask=(offs_m[:, None] < M) & (offs_k[None, :] < K), other=0.0)
        b = tl.load(b_ptr + offs_k[:, None] * stride_bk + offs_n[None, :] * stride_bn,
                    mask=(offs_k[:, None] < K) & (offs_n[None, :] < N), other=0.0)
        acc += tl.dot(a, b, input_precision="ieee")
    tl.store(c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn, acc,
             mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


@triton.jit
def flash_fwd_kernel(q_ptr, k_ptr, v_ptr, o_ptr, T, scale, stride_h, stride_t,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, D: tl.constexpr):
    pid_m = tl.program_id(0)
    head = tl.program_id(1).to(tl.int64)
    base = head * stride_h
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, D)
    q = tl.load(q_ptr + base + offs_m[:, None].to(tl.int64) * stride_t + offs_d[None, :],
                mask=offs_m[:, None] < T, other=0.0)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, D), dtype=tl.float32)
    # causal tile skipping: key blocks past this query block's last row hold no visible key
    for start_n in range(0, (pid_m + 1) * BLOCK_M, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kv_mask = offs_n[:, None] < T
        k = tl.load(k_ptr + base + offs_n[:, None].to(tl.int64) * stride_t + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_ptr + base + offs_n[:, None].to(tl.int64) * stride_t + offs_d[None, :], mask=kv_mask, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale
        s = tl.where(offs_n[None, :] <= offs_m[:, None], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
        m_i = m_new
    o = acc / l_i[:, None]
    tl.store(o_ptr + base + offs_m[:, None].to(tl.int64) * stride_t + offs_d[None, :], o, mask=offs_m[:, None] < T)


@triton.jit
def flash_bwd_ds_kernel(q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, ds_ptr, T, scale,
                        stride_h, stride_t, stride_lh, stride_dsh, stride_dsm,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, D: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    head = tl.program_id(2).to(tl.int64)
    base = head * stride_h
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, D)
    m_ok = offs_m < T
    n_ok = offs_n < T
    q = tl.load(q_ptr + base + offs_m[:, None].to(tl.int64) * stride_t + offs_d[None, :], mask=m_ok[:, None], other=0.0)
    do = tl.load(do_ptr + base + offs_m[:, None].to(tl.int64) * stride_t + offs_d[None, :], mask=m_ok[:, None], other=0.0)
    k = tl.load(k_ptr + base + offs_n[:, None].to(tl.int64) * stride_t + offs_d[None, :], mask=n_ok[:, None], other=0.0)
    v = tl.load(v_ptr + base + offs_n[:, None].to(tl.int64) * stride_t + offs_d[None, :], mask=n_ok[:, None], other=0.0)
    lse = tl.load(lse_ptr + head * stride_lh + offs_m, mask=m_ok, other=0.0)
    delta = tl.load(delta_ptr + head * stride_lh + offs_m, mask=m_ok, other=0.0)
    s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale
    p = tl.exp(s - lse[:, None])
    p = tl.where(offs_n[None, :] <= offs_m[:, None], p, 0.0)
    dp = tl.dot(do, tl.trans(v), input_precision="ieee")
    ds = p * (dp - delta[:, None])
    tl.store(ds_ptr + head * stride_dsh + offs_m[:, None].to(tl.int64) * stride_dsm + offs_n[None, :], ds,
             mask=m_ok[:, None] & n_ok[None, :])


# ---------------------------------------------------------------------------------------------
# Chapter 4
# ---------------------------------------------------------------------------------------------


@triton.jit
def linear_attn_fwd_kernel(q_ptr, k_ptr, v_ptr, o_ptr, T, stride_qh, stride_qt, stride_vh, stride_vt,
                           CHUNK: tl.constexpr, F: tl.constexpr, DV: tl.constexpr):
    head = tl.program_id(0).to(tl.int64)
    offs_c = tl.arange(0, CHUNK)
    offs_f = tl.arange(0, F)
    offs_v = tl.arange(0, DV)
    state = tl.zeros((F, DV), dtype=tl.float32)  # sum over earlier chunks of k_j^T v_j
    for start in range(0, T, CHUNK):
        rows = start + offs_c
        ok = rows[:, None] < T
        q = tl.load(q_ptr + head * stride_qh + rows[:, None].to(tl.int64) * stride_qt + offs_f[None, :], mask=ok, other=0.0)
        k = tl.load(k_ptr + head * stride_qh + rows[:, None].to(tl.int64) * stride_qt + offs_f[None, :], mask=ok, other=0.0)
        v = tl.load(v_ptr + head * stride_vh + rows[:, None].to(tl.int64) * stride_vt + offs_v[None, :], mask=ok, other=0.0)
        scores = tl.dot(q, tl.trans(k), input_precision="ieee")
        scores = tl.where(offs_c[None, :] <= offs_c[:, None], scores, 0.0)  # intra-chunk, causal
        o = tl.dot(scores, v, input_precision="ieee") + tl.dot(q, state, input_precision="ieee")
        tl.store(o_ptr + head * stride_vh + rows[:, None].to(tl.int64) * stride_vt + offs_v[None, :], o, mask=ok)
        state += tl.dot(tl.trans(k), v, input_precision="ieee")  # only after this chunk's output


@triton.jit
def linear_attn_bwd_kernel(q_ptr, k_ptr, v_ptr, do_ptr, dk_ptr, dv_ptr, T,
                           stride_qh, stride_qt, stride_vh, stride_vt,
                           CHUNK: tl.constexpr, F: tl.constexpr, DV: tl.constexpr):
    head = tl.program_id(0).to(tl.int64)
    offs_c = tl.arange(0, CHUNK)
    offs_f = tl.arange(0, F)
    offs_v = tl.arange(0, DV)
    grad_state = tl.zeros((F, DV), dtype=tl.float32)  # sum over later chunks of q_i^T do_i
    n_chunks = tl.cdiv(T, CHUNK)
    for c in range(0, n_chunks):
        start = (n_chunks - 1 - c) * CHUNK  # last chunk first
        rows = start + offs_c
        ok = rows[:, None] < T
        q = tl.load(q_ptr + head * stride_qh + rows[:, None].to(tl.int64) * stride_qt + offs_f[None, :], mask=ok, other=0.0)
        k = tl.load(k_ptr + head * stride_qh + rows[:, None].to(tl.int64) * stride_qt + offs_f[None, :], mask=ok, other=0.0)
        v = tl.load(v_ptr + head * stride_vh + rows[:, None].to(tl.int64) * stride_vt + offs_v[None, :], mask=ok, other=0.0)
        do = tl.load(do_ptr + head * stride_vh + rows[:, None].to(tl.int64) * stride_vt + offs_v[None, :], mask=ok, other=0.0)
        later = offs_c[None, :] >= offs_c[:, None]  # [j, i]: query i at or after key j
        kq = tl.where(later, tl.dot(k, tl.trans(q), input_precision="ieee"), 0.0)    # [j, i] = k_j . q_i
        vdo = tl.where(later, tl.dot(v, tl.trans(do), input_precision="ieee"), 0.0)  # [j, i] = v_j . do_i
        dv = tl.dot(kq, do, input_precision="ieee") + tl.dot(k, grad_state, input_precision="ieee")
        dk = tl.dot(vdo, q, input_precision="ieee") + tl.dot(v, tl.trans(grad_state), input_precision="ieee")
        tl.store(dk_ptr + head * stride_qh + rows[:, None].to(tl.int64) * stride_qt + offs_f[None, :], dk, mask=ok)
        tl.store(dv_ptr + head * stride_vh + rows[:, None].to(tl.int64) * stride_vt + offs_v[None, :], dv, mask=ok)
        grad_state += tl.dot(tl.trans(q), do, input_precision="ieee")


# ---------------------------------------------------------------------------------------------
# Chapter 6
# ---------------------------------------------------------------------------------------------


@triton.jit
def scan_combine(a_l, b_l, a_r, b_r):
    # apply the left step, then the right one: h -> a_r * (a_l * h + b_l) + b_r
    return a_l * a_r, a_r * b_l + b_r


@triton.jit
def scan_tile_kernel(a_ptr, b_ptr, h_ptr, T, C, stride_b, stride_t,
                     BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):
    pid_c = tl.program_id(0)
    batch = tl.program_id(1).to(tl.int64)
    offs_t = tl.arange(0, BLOCK_T)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (offs_t[:, None] < T) & (offs_c[None, :] < C)
    ptrs = batch * stride_b + offs_t[:, None].to(tl.int64) * stride_t + offs_c[None, :]
    a = tl.load(a_ptr + ptrs, mask=mask, other=1.0)
    b = tl.load(b_ptr + ptrs, mask=mask, other=0.0)
    _, h = tl.associative_scan((a, b), 0, scan_combine)
    tl.store(h_ptr + ptrs, h, mask=mask)


@triton.jit
def chunked_scan_kernel(a_ptr, b_ptr, h_ptr, hlast_ptr, T, C, stride_b, stride_t, stride_lb,
                        BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):
    pid_c = tl.program_id(0)
    batch = tl.program_id(1).to(tl.int64)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = offs_c < C
    carry = tl.zeros((BLOCK_C,), dtype=tl.float32)  # h at the end of the previous tile
    for start in range(0, T, BLOCK_T):
        offs_t = start + tl.arange(0, BLOCK_T)
        mask = (offs_t[:, None] < T) & c_ok[None, :]
        ptrs = batch * stride_b + offs_t[:, None].to(tl.int64) * stride_t + offs_c[None, :]
        a = tl.load(a_ptr + ptrs, mask=mask, other=1.0)  # padding = the identity step (1, 0)
        b = tl.load(b_ptr + ptrs, mask=mask, other=0.0)
        a_prefix, b_prefix = tl.associative_scan((a, b), 0, scan_combine)
        h = a_prefix * carry[None, :] + b_prefix
        tl.store(h_ptr + ptrs, h, mask=mask)
        carry = tl.sum(tl.where(offs_t[:, None] == start + BLOCK_T - 1, h, 0.0), axis=0)  # last row
    tl.store(hlast_ptr + batch * stride_lb + offs_c, carry, mask=c_ok)


@triton.jit
def causal_conv_kernel(x_ptr, w_ptr, bias_ptr, y_ptr, T, C, stride_b, stride_t,
                       BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr, K: tl.constexpr):
    pid_t = tl.program_id(0)
    pid_c = tl.program_id(1)
    batch = tl.program_id(2).to(tl.int64)
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = offs_c < C
    acc = tl.zeros((BLOCK_T, BLOCK_C), dtype=tl.float32)
    acc += tl.load(bias_ptr + offs_c, mask=c_ok, other=0.0)[None, :]
    for j in tl.static_range(K):
        src = offs_t - (K - 1) + j  # tap K-1 is the current token
        ok = (src[:, None] >= 0) & (src[:, None] < T) & c_ok[None, :]
        x = tl.load(x_ptr + batch * stride_b + src[:, None].to(tl.int64) * stride_t + offs_c[None, :], mask=ok, other=0.0)
        w = tl.load(w_ptr + offs_c * K + j, mask=c_ok, other=0.0)
        acc += x * w[None, :]
    tl.store(y_ptr + batch * stride_b + offs_t[:, None].to(tl.int64) * stride_t + offs_c[None, :], acc,
             mask=(offs_t[:, None] < T) & c_ok[None, :])
