"""Chapter 6's Triton puzzles: a scan within a tile → a chunked scan with carries → causal depthwise conv.

The recurrence is ``h_t = a_t · h_{t-1} + b_t`` with ``h_{-1} = 0``, per channel; tensors are
``(B, T, C)`` float32 with a unit stride along channels. The convolution is the one of Griffin's
recurrent block: ``y_t = bias + Σ_j w[:, j] · x_{t-(K-1)+j}`` with tap ``K-1`` on the current token
and zeros before the start (``w: (C, K)``, ``bias: (C,)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._common import SENTINEL, Case, Mistake, draw_case, guarded, next_pow2, run_checker

__all__ = [
    "scan_spec", "launch_scan_tile", "check_scan_tile", "draw_scan_tile",
    "launch_chunked_scan", "check_chunked_scan", "draw_chunked_scan",
    "causal_conv_spec", "launch_causal_conv", "check_causal_conv", "draw_causal_conv",
]

NAN = float("nan")
#: Channels per program in the launchers.
BLOCK_C = 16
#: Time steps per tile in the chunked scan and the convolution.
BLOCK_T = 16


def _solution(name: str) -> Any:
    from . import _solutions

    return getattr(_solutions, name)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def scan_spec(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``h_t = a_t h_{t-1} + b_t`` (``h_{-1} = 0``) along axis 1 of ``a, b: (B, T, C)``, float64, by a loop."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    h = np.zeros_like(b)
    prev = np.zeros((b.shape[0], b.shape[2]))
    for t in range(b.shape[1]):
        prev = a[:, t] * prev + b[:, t]
        h[:, t] = prev
    return h


def _check_same(*ts: torch.Tensor) -> None:
    for t in ts[1:]:
        if t.shape != ts[0].shape or t.stride() != ts[0].stride():
            raise ValueError(f"a, b, h must share shape and strides, got {tuple(t.shape)}/{t.stride()} and "
                             f"{tuple(ts[0].shape)}/{ts[0].stride()}")


def launch_scan_tile(kernel: Any, a: torch.Tensor, b: torch.Tensor, h: torch.Tensor) -> None:
    """Run ``kernel[(cdiv(C, BLOCK_C), B)](a, b, h, T, C, stride_b, stride_t, BLOCK_T, BLOCK_C)``.

    ``a, b, h: (B, T, C)`` sharing strides; ``BLOCK_T`` is the power of two ``>= T`` (one tile holds
    the whole sequence), ``BLOCK_C = 16``.
    """
    _check_same(a, b, h)
    bsz, t, c = a.shape
    kernel[(_cdiv(c, BLOCK_C), bsz)](a, b, h, t, c, a.stride(0), a.stride(1), BLOCK_T=next_pow2(t), BLOCK_C=BLOCK_C)


def _ab(p: tuple[int, int, int], dev: torch.device, pad_t: int) -> tuple[Any, Any, dict]:
    bsz, t, c = p
    gen = torch.Generator().manual_seed(bsz * 101 + t * 7 + c)
    a = guarded("a", (bsz, t, c), fill=NAN, pad=(0, pad_t, BLOCK_C), values=0.5 + 0.5 * torch.rand(bsz, t, c, generator=gen), device=dev)
    b = guarded("b", (bsz, t, c), fill=NAN, pad=(0, pad_t, BLOCK_C), values=torch.randn(bsz, t, c, generator=gen), device=dev)
    return a, b, {"a": _np(a.view), "b": _np(b.view)}


def _scan_tile_case(p: tuple[int, int, int], dev: torch.device) -> Case:
    a, b, data = _ab(p, dev, next_pow2(p[1]))
    h = guarded("h", p, fill=SENTINEL, pad=(0, next_pow2(p[1]), BLOCK_C), device=dev)
    return Case(f"B={p[0]}, T={p[1]}, C={p[2]}", lambda k: launch_scan_tile(k, a.view, b.view, h.view), [h],
                {"h": scan_spec(data["a"], data["b"])}, data, [a, b])


def _scan_reversed_combine(d: dict) -> dict:
    """What ``combine = (a_l a_r, a_l b_r + b_l)`` (the right step applied first) computes."""
    a, b = d["a"], d["b"]
    h = np.zeros_like(b)
    acc_a, acc_b = a[:, 0], b[:, 0]
    h[:, 0] = acc_b
    for t in range(1, b.shape[1]):
        acc_a, acc_b = acc_a * a[:, t], acc_a * b[:, t] + acc_b
        h[:, t] = acc_b
    return {"h": h}


def check_scan_tile(kernel: Any, *, quiet: bool = False) -> bool:
    """Check ``kernel(a_ptr, b_ptr, h_ptr, T, C, stride_b, stride_t, BLOCK_T, BLOCK_C)``: the scan of one tile.

    Grid ``(cdiv(C, 16), B)``; ``T <= BLOCK_T``, ``C`` not a multiple of 16. Recognises a combine
    that applies the steps in the wrong order.
    """
    return run_checker(
        "scan_tile", kernel, _scan_tile_case, [(1, 1, 3), (2, 13, 20), (1, 32, 16)],
        mistakes=[Mistake("combine(left, right) must apply the left step first: (a_l * a_r, a_r * b_l + b_r)",
                          _scan_reversed_combine)],
        nan_hint="a padded row or channel was read: mask the loads (a with other=1.0, b with other=0.0)",
        store_hint="mask the store with (t < T) & (c < C)",
        hint=lambda name, idx: "tl.associative_scan((a, b), 0, combine) scans along time (axis 0 of the tile)",
        quiet=quiet,
    )


def draw_scan_tile(kernel: Any = None, *, t: int = 13, c: int = 40) -> Any:
    """Draw which channels each program of ``kernel`` (default: the reference) loads and stores."""
    case = _scan_tile_case((1, t, c), torch.device("cpu"))
    return draw_case(kernel, _solution("scan_tile_kernel"), case, f"scan within a tile, T={t}, C={c}, BLOCK_C={BLOCK_C}")


# =============================================================================================
# Puzzle 6.2 — chunked scan with carries
# =============================================================================================


def launch_chunked_scan(kernel: Any, a: torch.Tensor, b: torch.Tensor, h: torch.Tensor, h_last: torch.Tensor) -> None:
    """Run ``kernel[(cdiv(C, BLOCK_C), B)](a, b, h, h_last, T, C, stride_b, stride_t, stride_lb, BLOCK_T=16, BLOCK_C=16)``.

    ``a, b, h: (B, T, C)`` sharing strides; ``h_last: (B, C)`` receives ``h_{T-1}``.
    """
    _check_same(a, b, h)
    bsz, t, c = a.shape
    kernel[(_cdiv(c, BLOCK_C), bsz)](a, b, h, h_last, t, c, a.stride(0), a.stride(1), h_last.stride(0),
                                      BLOCK_T=BLOCK_T, BLOCK_C=BLOCK_C)


def _chunked_case(p: tuple[int, int, int], dev: torch.device) -> Case:
    a, b, data = _ab(p, dev, BLOCK_T)
    h = guarded("h", p, fill=SENTINEL, pad=(0, BLOCK_T, BLOCK_C), device=dev)
    last = guarded("h_last", (p[0], p[2]), fill=SENTINEL, pad=(0, BLOCK_C), device=dev)
    ref = scan_spec(data["a"], data["b"])
    return Case(f"B={p[0]}, T={p[1]}, C={p[2]}, BLOCK_T={BLOCK_T}",
                lambda k: launch_chunked_scan(k, a.view, b.view, h.view, last.view), [h, last],
                {"h": ref, "h_last": ref[:, -1]}, data, [a, b])


def _chunked_variant(d: dict, *, carry: bool = True, scale_carry: bool = True) -> dict:
    a, b = d["a"], d["b"]
    h = np.zeros_like(b)
    for t0 in range(0, b.shape[1], BLOCK_T):
        sl = slice(t0, t0 + BLOCK_T)
        local = scan_spec(a[:, sl], b[:, sl])
        prefix = np.cumprod(a[:, sl], axis=1)
        prev = h[:, t0 - 1] if (t0 and carry) else np.zeros_like(b[:, 0])
        h[:, sl] = local + (prefix if scale_carry else 1.0) * prev[:, None]
    return {"h": h}


def _chunked_zero_padding(d: dict) -> dict:
    """The last row of the padded tile when the padding is loaded as a = 0: h_last = 0 unless T % 16 == 0."""
    ref = scan_spec(d["a"], d["b"])
    last = ref[:, -1] if d["b"].shape[1] % BLOCK_T == 0 else np.zeros_like(ref[:, -1])
    return {"h": ref, "h_last": last}


def check_chunked_scan(kernel: Any, *, quiet: bool = False) -> bool:
    """Check ``kernel(a_ptr, b_ptr, h_ptr, hlast_ptr, T, C, stride_b, stride_t, stride_lb, BLOCK_T, BLOCK_C)``.

    Grid ``(cdiv(C, 16), B)``; the program walks tiles of 16 time steps carrying ``h`` between them
    and stores ``h_{T-1}`` in ``h_last``. Recognises a carry that is dropped, a carry not multiplied
    by the tile's cumulative ``a``, and a padded tail that corrupts ``h_last``.
    """
    return run_checker(
        "chunked_scan", kernel, _chunked_case, [(1, 5, 3), (2, 37, 20), (1, 48, 16)],
        mistakes=[
            Mistake("the carry is dropped: every tile starts from the previous tile's last h, not from 0",
                    lambda d: _chunked_variant(d, carry=False)),
            Mistake("the carry must be scaled: h = a_prefix * h_carry + b_prefix (a_prefix = product of a so far in the tile)",
                    lambda d: _chunked_variant(d, scale_carry=False)),
            Mistake("h_last is wrong in a partial last tile: load the padding as the identity step (a=1, b=0), "
                    "or take the last valid row", _chunked_zero_padding),
        ],
        nan_hint="a padded row or channel was read: mask the loads (a with other=1.0, b with other=0.0)",
        store_hint="mask the stores with (t < T) & (c < C), and h_last with c < C",
        hint=lambda name, idx: ("h_last[b, c] is h at t = T-1" if name == "h_last"
                                else "scan the tile, then h = a_prefix * carry + b_prefix; carry = the tile's last row"),
        quiet=quiet,
    )


def draw_chunked_scan(kernel: Any = None, *, t: int = 37, c: int = 20) -> Any:
    """Draw what each program (a channel block walking the time tiles) loads and stores at each tile step."""
    case = _chunked_case((1, t, c), torch.device("cpu"))
    return draw_case(kernel, _solution("chunked_scan_kernel"), case, f"chunked scan, T={t}, C={c}, tiles of {BLOCK_T}x{BLOCK_C}, one row per time tile",
                     by_step=True)


# =============================================================================================
# Puzzle 6.3 — causal depthwise convolution
# =============================================================================================


def causal_conv_spec(x: np.ndarray, w: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``y_t = bias + Σ_j w[:, j] x_{t-(K-1)+j}`` (zeros before the start); ``x: (B, T, C)``, ``w: (C, K)``, ``bias: (C,)``."""
    x, w, bias = (np.asarray(t, dtype=np.float64) for t in (x, w, bias))
    k = w.shape[1]
    padded = np.concatenate([np.zeros((x.shape[0], k - 1, x.shape[2])), x], axis=1)
    return bias + sum(w[:, j] * padded[:, j: j + x.shape[1]] for j in range(k))


def launch_causal_conv(kernel: Any, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor, y: torch.Tensor) -> None:
    """Run ``kernel[(cdiv(T, 16), cdiv(C, 16), B)](x, w, bias, y, T, C, stride_b, stride_t, BLOCK_T, BLOCK_C, K)``.

    ``x, y: (B, T, C)`` sharing strides; ``w: (C, K)`` with rows ``K`` apart; ``bias: (C,)``.
    """
    if x.shape != y.shape or x.stride() != y.stride():
        raise ValueError(f"x and y must share shape and strides, got {tuple(x.shape)}/{x.stride()} and {tuple(y.shape)}/{y.stride()}")
    if w.stride() != (w.shape[1], 1):
        raise ValueError(f"w must be (C, K) with rows K apart, got strides {w.stride()}")
    bsz, t, c = x.shape
    kernel[(_cdiv(t, BLOCK_T), _cdiv(c, BLOCK_C), bsz)](x, w, bias, y, t, c, x.stride(0), x.stride(1),
                                                         BLOCK_T=BLOCK_T, BLOCK_C=BLOCK_C, K=w.shape[1])


def _conv_case(p: tuple[int, int, int, int], dev: torch.device) -> Case:
    bsz, t, c, k = p
    gen = torch.Generator().manual_seed(bsz * 13 + t * 5 + c + k)
    x = guarded("x", (bsz, t, c), fill=NAN, front=(0, k, 0), pad=(0, BLOCK_T, BLOCK_C),
                values=torch.randn(bsz, t, c, generator=gen), device=dev)
    w = guarded("w", (c, k), fill=NAN, pad=(BLOCK_C, 0), values=torch.randn(c, k, generator=gen), device=dev)
    bias = guarded("bias", (c,), fill=NAN, pad=(BLOCK_C,), values=torch.randn(c, generator=gen), device=dev)
    y = guarded("y", (bsz, t, c), fill=SENTINEL, front=(0, k, 0), pad=(0, BLOCK_T, BLOCK_C), device=dev)
    data = {"x": _np(x.view), "w": _np(w.view), "bias": _np(bias.view)}
    return Case(f"B={bsz}, T={t}, C={c}, K={k}", lambda kern: launch_causal_conv(kern, x.view, w.view, bias.view, y.view),
                [y], {"y": causal_conv_spec(data["x"], data["w"], data["bias"])}, data, [x, w, bias])


def check_causal_conv(kernel: Any, *, quiet: bool = False) -> bool:
    """Check ``kernel(x_ptr, w_ptr, bias_ptr, y_ptr, T, C, stride_b, stride_t, BLOCK_T, BLOCK_C, K)``.

    Grid ``(cdiv(T, 16), cdiv(C, 16), B)``; the rows before ``t = 0`` are ``nan`` guard cells (the
    sequence starts with zeros: mask them). Recognises flipped taps and a missing bias.
    """
    return run_checker(
        "causal_conv", kernel, _conv_case, [(1, 1, 3, 4), (2, 37, 20, 4), (1, 20, 16, 3)],
        mistakes=[
            Mistake("the taps are flipped: tap K-1 multiplies the current token x_t, tap 0 multiplies x_{t-K+1}",
                    lambda d: {"y": causal_conv_spec(d["x"], d["w"][:, ::-1], d["bias"])}),
            Mistake("the bias is missing: start the accumulator from bias[c]",
                    lambda d: {"y": causal_conv_spec(d["x"], d["w"], 0 * d["bias"])}),
        ],
        nan_hint="a row before t = 0 (or past T, or a channel past C) was read: mask the loads with "
                 "0 <= t - (K-1) + j < T and c < C (other=0.0)",
        store_hint="mask the store with (t < T) & (c < C)",
        hint=lambda name, idx: "y[t, c] = bias[c] + sum over j of w[c, j] * x[t - (K-1) + j, c]",
        quiet=quiet,
    )


def draw_causal_conv(kernel: Any = None, *, t: int = 37, c: int = 20, k: int = 4) -> Any:
    """Draw the rows of x (a halo of K-1 before each tile), w, bias and y each program touches."""
    case = _conv_case((1, t, c, k), torch.device("cpu"))
    return draw_case(kernel, _solution("causal_conv_kernel"), case, f"causal depthwise conv, T={t}, C={c}, K={k}, tiles of {BLOCK_T}x{BLOCK_C}",
                      names=["x", "w", "y"])
