"""Hawk and Griffin (De et al., 2024, arXiv:2402.19427): gated linear recurrences, plus local attention.

Two kinds, both with the zoo's decoding interface (``model(tokens)``, ``model.prefill(tokens)``,
``model.step(token, cache)``; see :mod:`linattn_edu.models.common`):

``build_model("hawk", vocab_size=..., d_model=..., n_layers=..., n_heads=...)``
    Every mixing layer is a *recurrent block* (below).
``build_model("griffin", vocab_size=..., d_model=..., n_layers=..., n_heads=..., window=64)``
    Recurrent blocks and *local attention* layers, by default in the paper's period
    ``recurrent, recurrent, attention`` (see :func:`griffin_layer_pattern`).

Both stack the same residual block (pre-norm, RMSNorm)::

    x = token_embedding(tokens)                      # no position encoding: recurrences know order
    for each layer:
        x = x + Mixer(RMSNorm(x))                    # a recurrent block or local attention
        x = x + GatedMLP(RMSNorm(x))                 # FcOut(GeLU(W1 x) ⊙ W2 x), 3·d_model hidden units
    logits = LMHead(RMSNorm(x))                      # tied to the embedding by default

**The recurrent block** (:class:`RecurrentBlock`), on ``x (B, T, d_model)``::

    branch1 = GeLU(LinearY(x))                       # (B, T, lru_width)
    branch2 = RG-LRU(Conv1D(LinearX(x)))             # causal depthwise conv of width 4, then the RG-LRU
    out     = LinearOut(branch1 ⊙ branch2)           # back to d_model

**The RG-LRU** (:class:`RGLRU`), per channel of ``x_t`` (the conv output)::

    r_t = σ(W_a x_t + b_a)                  recurrence gate     (W_a, W_x block-diagonal: one block per head)
    i_t = σ(W_x x_t + b_x)                  input gate
    log a_t = c · r_t · log a,   c = 8      a = σ(Λ) ∈ (0, 1) learned per channel
    h_t = a_t ⊙ h_{t-1} + √(1 − a_t²) ⊙ (i_t ⊙ x_t),      y_t = h_t

The gates read ``x_t`` only, never ``h_{t-1}``: all ``a_t`` and ``b_t = √(1 − a_t²) i_t x_t`` are
known before the recurrence runs, which is then a *linear scan* ``h_t = a_t h_{t-1} + b_t``
(:func:`linattn_edu.kernels.scan.linear_scan`, computed in float32, float64 for a float64 model).
Conventions of the official code (RecurrentGemma, ``recurrentgemma/torch/layers.py`` and
``modules.py``), which we follow (``tests/test_official_recurrentgemma.py`` checks the recurrent
block and the RG-LRU against a transcription of that code, at identical weights):

- the parameter stored is ``p = −Λ``: ``log a = −softplus(p)`` (``a = exp(−softplus(p)) = σ(−p)``);
  ``a`` is initialized as ``√u`` with ``u ~ U(0.81, 0.998)``, so ``a ∈ [0.9, 0.999]``;
- ``log a_t`` is computed in log space and ``1 − a_t² = −expm1(2 log a_t)``;
- the square root gets a *clipped gradient*: ``d√x/dx = 1/(2√x)`` is capped at 1000
  (:func:`sqrt_bounded_grad`), since ``a_t → 1`` would otherwise blow it up;
- at a document start (``reset``) the state restarts: ``a_t = 0`` and the √ factor is 1, so
  ``h_t = i_t ⊙ x_t``. In the scan this is just ``a_t = 0, b_t = i_t x_t``: the same kernels run it;
- **the first token is a document start.** The official code marks ``reset = segment_pos == 0``,
  and a sequence starts at position 0. Here: a call without a state (``RGLRU.forward(x)`` with
  ``h0=None``, ``RGLRU.step(x_t, None)``, a model's ``forward``/``prefill`` without a cache)
  treats token 0 as a reset, so ``h_0 = i_0 ⊙ x_0`` enters unscaled (not
  ``√(1 − a_0²) i_0 x_0``). A call with a state (``step``, chunked ``prefill``, ``h0`` given, even
  zeros) continues the sequence: no reset.

**Local attention** (:class:`LocalAttention`): multi-query attention (one key/value head by
default, ``n_kv_heads``), a causal sliding window (query ``i`` sees keys ``i − window < j ≤ i``)
through :func:`~linattn_edu.kernels.flash_attention`, and RoPE on the *first half* of each head's
dims (the other half carries no position), as in the official code.

**Window convention.** Here ``window=w`` means ``w`` keys, the current one included (the book's
convention everywhere). RecurrentGemma's ``window_size=w`` lets a query see keys with
``0 ≤ q − k ≤ w``: ``w + 1`` keys. So official ``window_size=w`` is ``window=w + 1`` here: the
paper's Griffin window of 1024 is ``window=1025``, RecurrentGemma's 2048 is ``window=2049``. The
default ``window=64`` is a book-scale (CPU) size; the GPU presets of
:mod:`linattn_edu.experiments.recurrent` use the paper's window where the sequences are longer
than it.

**Decode state** (:class:`GriffinCache`): per recurrent layer a :class:`RecurrentState` — the last
``conv_width − 1`` conv inputs ``(B, conv_width − 1, lru_width)`` and the RG-LRU state
``h (B, lru_width)`` (float32, float64 for a float64 model, as the official code keeps it) —
constant in the context length; per attention layer the last ``window`` keys and values,
``(B, n_kv_heads, min(T, window), head_dim)`` each: bounded.

**Backends.** ``attn_backend=None`` runs the PyTorch paths of the kernels (scan, conv, attention)
on a CPU and lets the kernels choose on a GPU; float64 always takes the PyTorch path, and so does
a head dim the flash kernel lacks. ``"torch"``, ``"triton"`` and ``"interpreter"`` force a path
for every kernel call (the option keeps the name the other kinds use). The kernels are imported
on first use, so importing this module does not import Triton.

Where we differ from the paper's models (on purpose, for book-scale experiments): the embedding is
not multiplied by ``√d_model`` and the logits are not soft-capped (RecurrentGemma does both); the
weights get the zoo's GPT-2 initialization (normal, std 0.02, residual outputs scaled down with
depth) except the RG-LRU (block-diagonal gates: std ``1/√(block width)``, zero biases, the ring
initialization of ``a``) and the conv (std ``1/√conv_width``); the models' ``forward`` takes one
document per row, starting at token 0 (no ``segment_pos``): documents packed into one row would
need resets inside the sequence, which the RG-LRU layer takes (``reset=``) but the models do not
pass, and the official conv also masks inputs across a document boundary, which ours does not.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from typing import Any, NamedTuple

import torch

from ..checks import check_int
import torch.nn.functional as F
from torch import nn

from .common import (DecodeCache, HeadsConfig, LanguageModel, RMSNorm, apply_rope, check_state_sizes,
                     check_tokens, periodic_layer_pattern, rope_cos_sin)
from .registry import register_family, register_model

__all__ = [
    "GRIFFIN_BLOCKS",
    "GRIFFIN_BACKENDS",
    "griffin_layer_pattern",
    "sqrt_bounded_grad",
    "BlockDiagonalLinear",
    "RGLRU",
    "CausalConv1d",
    "RecurrentBlock",
    "LocalAttention",
    "GriffinMLP",
    "ResidualBlock",
    "MAX_SQRT_GRADIENT",
    "HawkConfig",
    "GriffinConfig",
    "RecurrentState",
    "GriffinCache",
    "Hawk",
    "Griffin",
]

#: Mixing blocks a Griffin ``layer_pattern`` entry may name.
GRIFFIN_BLOCKS = ("recurrent", "attention")
#: Values of the ``attn_backend=`` option (None: per device, see the module docstring).
GRIFFIN_BACKENDS = (None, "triton", "interpreter", "torch")
#: The official Griffin period.
_GRIFFIN_PERIOD = ("recurrent", "recurrent", "attention")
#: The cap on the derivative of √ in the RG-LRU (official code: 1000).
MAX_SQRT_GRADIENT = 1000.0


def _kernels() -> Any:
    """The attention kernels, imported lazily (importing the models must not import Triton)."""
    from .. import kernels

    return kernels


def _scan() -> Any:
    """:mod:`linattn_edu.kernels.scan`, imported lazily (it imports Triton)."""
    return importlib.import_module("..kernels.scan", __package__)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Recurrences run in float32, or float64 for float64 inputs."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _scan_backend(backend: str | None, x: torch.Tensor) -> str | None:
    """``backend=`` for the scan/conv kernels: the forced one, else torch on a CPU or for float64."""
    if backend is not None:
        return backend
    if x.device.type == "cpu" or x.dtype == torch.float64:
        return "torch"
    return None


def griffin_layer_pattern(n_layers: int) -> list[str]:
    """The default ``layer_pattern`` of ``"griffin"``.

    The paper's period ``recurrent, recurrent, attention`` repeated (``n_layers >= 3``), so one
    layer in three is local attention. Shorter stacks would get no attention layer at all from
    the period, so a 2-layer Griffin is ``["recurrent", "attention"]`` (book-scale experiments
    use 2-layer models) and a 1-layer one is ``["recurrent"]`` (the same as Hawk).

    Raises:
        ValueError: ``n_layers`` is not a positive int.
    """
    return periodic_layer_pattern(n_layers, _GRIFFIN_PERIOD, {1: ["recurrent"], 2: ["recurrent", "attention"]})


# ----------------------------------------------------------------------------------------------
# The square root with a bounded derivative
# ----------------------------------------------------------------------------------------------


class _SqrtBoundedGrad(torch.autograd.Function):
    """``√x`` whose backward uses ``min(1/(2√x), max_grad)``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, max_grad: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.max_grad = max_grad
        return torch.sqrt(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        # 1/(2√x) = 1/√(4x) <= max_grad  <=>  4x >= max_grad⁻²
        return grad / torch.sqrt(torch.clamp(4.0 * x, min=ctx.max_grad**-2)), None


def sqrt_bounded_grad(x: torch.Tensor, max_grad: float = MAX_SQRT_GRADIENT) -> torch.Tensor:
    """``√x`` (elementwise, ``x >= 0``) whose gradient ``1/(2√x)`` is capped at ``max_grad``.

    The RG-LRU multiplies its input by ``√(1 − a_t²)``; when ``a_t`` approaches 1 the derivative
    of the square root goes to infinity (and is ``inf`` at exactly 0, which then turns into NaN
    gradients). The official Griffin code caps it at 1000, which matters most in bfloat16.
    The forward value is the exact ``torch.sqrt(x)``.
    """
    return _SqrtBoundedGrad.apply(x, float(max_grad))


# ----------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------


class BlockDiagonalLinear(nn.Module):
    """``y = x W + b`` with a block-diagonal ``W``: one ``(C/H × C/H)`` block per head.

    ``(..., C) -> (..., C)``; channel group ``h`` of the output depends only on group ``h`` of
    the input. Weights ``(H, C/H, C/H)`` normal with std ``1/√(C/H)`` (the official
    initialization), biases ``(H, C/H)`` zero.
    """

    def __init__(self, width: int, n_blocks: int) -> None:
        super().__init__()
        if width % n_blocks:
            raise ValueError(f"width={width} must be divisible by n_blocks={n_blocks}")
        self.width, self.n_blocks = width, n_blocks
        self.block_width = width // n_blocks
        self.weight = nn.Parameter(torch.empty(n_blocks, self.block_width, self.block_width))
        self.bias = nn.Parameter(torch.empty(n_blocks, self.block_width))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(self.block_width))
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb = x.unflatten(-1, (self.n_blocks, self.block_width))  # (..., H, C/H)
        y = torch.einsum("...hi,hij->...hj", xb, self.weight) + self.bias
        return y.flatten(-2)

    def extra_repr(self) -> str:
        return f"width={self.width}, n_blocks={self.n_blocks}"


class RGLRU(nn.Module):
    """The Real-Gated Linear Recurrent Unit: ``(B, T, C) -> (B, T, C)``, see the module docstring.

    Args:
        width: channels ``C``.
        n_heads: blocks of the block-diagonal gate projections (``C % n_heads == 0``).
        c: the exponent scale of ``a_t = a^(c·r_t)`` (8 in the paper).
        a_min, a_max: the ring ``a ∈ [a_min, a_max]`` of the initialization (0.9, 0.999):
            ``a = √u``, ``u ~ U(a_min², a_max²)``.
        backend: ``backend=`` of :func:`~linattn_edu.kernels.scan.linear_scan`; None: PyTorch
            on a CPU or for float64, the kernel's choice on a GPU.

    Parameters: ``gate_a`` (``W_a, b_a``), ``gate_x`` (``W_x, b_x``), both
    :class:`BlockDiagonalLinear`, and ``a_param`` ``(C,)``, which stores ``−Λ`` as the official
    code does: ``log a = −softplus(a_param)``. :attr:`lam` is ``Λ`` (what
    :func:`linattn_edu.reference.rg_lru` takes), :attr:`a` the base decay ``a = σ(Λ)``.
    """

    def __init__(
        self,
        width: int,
        n_heads: int = 1,
        *,
        c: float = 8.0,
        a_min: float = 0.9,
        a_max: float = 0.999,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 < a_min <= a_max < 1.0:
            raise ValueError(f"need 0 < a_min <= a_max < 1, got a_min={a_min!r}, a_max={a_max!r}")
        self.width, self.n_heads, self.c = width, n_heads, float(c)
        self.a_min, self.a_max = float(a_min), float(a_max)
        self.backend = backend
        self.gate_a = BlockDiagonalLinear(width, n_heads)
        self.gate_x = BlockDiagonalLinear(width, n_heads)
        self.a_param = nn.Parameter(torch.empty(width))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Gates as in :class:`BlockDiagonalLinear`; ``a = √u``, ``u ~ U(a_min², a_max²)``.

        ``a_param = softplus⁻¹(−log a) = log(1/a − 1)`` (the official ``rnn_param_init``).
        """
        self.gate_a.reset_parameters()
        self.gate_x.reset_parameters()
        u = torch.empty(self.width, dtype=torch.float64).uniform_(self.a_min**2, self.a_max**2)
        log_a = 0.5 * torch.log(u)
        self.a_param.copy_(torch.log(torch.expm1(-log_a)))  # softplus(p) = -log a

    @property
    def lam(self) -> torch.Tensor:
        """``Λ = −a_param`` ``(C,)``, the paper's parameter: ``a = σ(Λ)``."""
        return -self.a_param

    @property
    def a(self) -> torch.Tensor:
        """The base decay ``a = exp(−softplus(a_param)) = σ(Λ)`` ``(C,)``, in ``(0, 1)``."""
        return torch.exp(-F.softplus(self.a_param))

    def gates(self, x: torch.Tensor, reset: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Everything the recurrence needs, per token and channel, for ``x`` ``(B, T, C)``.

        Returns a dict of ``(B, T, C)`` tensors in float32 (float64 for float64 ``x``):
        ``"r"`` the recurrence gate ``r_t``, ``"i"`` the input gate ``i_t``, ``"log_a_t"``,
        ``"a_t"`` the decay of this step, ``"multiplier"`` ``√(1 − a_t²)`` (1 at a reset, where
        ``a_t = 0``), and ``"b"`` ``= multiplier · i_t · x_t``, the scan's input. Differentiable.
        Only the resets passed are applied (:meth:`forward` without a state adds one at token 0).
        (The chapter's widget shows ``r`` and ``i`` of a trained layer over a text.)
        """
        compute = _compute_dtype(x.dtype)
        r = torch.sigmoid(self.gate_a(x)).to(compute)
        i = torch.sigmoid(self.gate_x(x)).to(compute)
        log_a = -F.softplus(self.a_param.to(compute))  # (C,), log a < 0
        log_a_t = self.c * r * log_a
        a_t = torch.exp(log_a_t)
        multiplier = sqrt_bounded_grad(-torch.expm1(2.0 * log_a_t))  # √(1 − a_t²), exact near a_t = 1
        if reset is not None:
            r_mask = self._check_reset(reset, x)[..., None]
            a_t = torch.where(r_mask, torch.zeros_like(a_t), a_t)
            multiplier = torch.where(r_mask, torch.ones_like(multiplier), multiplier)
        b = multiplier * (i * x.to(compute))
        return {"r": r, "i": i, "log_a_t": log_a_t, "a_t": a_t, "multiplier": multiplier, "b": b}

    @classmethod
    def _document_start(cls, x: torch.Tensor, reset: torch.Tensor | None) -> torch.Tensor:
        """``reset (B, T)`` with token 0 marked: the sequence ``x (B, T, C)`` starts a document."""
        start = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        start[:, 0] = True
        return start if reset is None else start | cls._check_reset(reset, x)

    @staticmethod
    def _check_reset(reset: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(reset, torch.Tensor) or reset.dtype != torch.bool:
            raise TypeError(f"reset must be a bool tensor (B, T), got {getattr(reset, 'dtype', type(reset))}")
        if tuple(reset.shape) != tuple(x.shape[:2]):
            raise ValueError(f"reset must have shape (B, T) = {tuple(x.shape[:2])}, got {tuple(reset.shape)}")
        return reset.to(x.device)

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, T, C)``, ``h0 (B, C)`` or None, ``reset (B, T)`` bool or None.

        ``h0=None`` means the sequence *starts a document* at token 0, as in the official code
        (``reset = segment_pos == 0``): token 0 is a reset, ``a_0 = 0`` and the √ factor is 1, so
        ``h_0 = i_0 ⊙ x_0`` (the first token enters unscaled). A state ``h0`` (zeros included)
        continues an earlier sequence: no reset at token 0 unless ``reset`` says so. A True in
        ``reset`` starts a new document at that token: nothing before it (``h0`` included)
        reaches its output or later ones.

        Returns ``(y, h_last)``: ``y = h (B, T, C)`` in ``x``'s dtype and the last state
        ``(B, C)`` in float32 (float64 for float64 ``x``); ``h_last`` as ``h0`` of the next call
        continues the sequence exactly.
        """
        if x.ndim != 3 or x.shape[-1] != self.width:
            raise ValueError(f"x must have shape (B, T, C={self.width}), got {tuple(x.shape)}")
        if h0 is None:
            reset = self._document_start(x, reset)
        g = self.gates(x, reset)
        compute = g["b"].dtype
        h0 = None if h0 is None else h0.to(compute)
        h, h_last = _scan().linear_scan(g["a_t"], g["b"], h0, backend=_scan_backend(self.backend, x))
        return h.to(x.dtype), h_last

    def step(
        self, x_t: torch.Tensor, h: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One token: ``x_t (B, C)``, state ``h (B, C)`` or None, ``reset (B,)`` bool or None.

        Returns ``(y_t (B, C), new h (B, C))``: ``h_t = a_t h + √(1 − a_t²) i_t x_t``, the same
        numbers as :meth:`forward` on the sequence, one token at a time. ``h=None`` is the first
        token of a document (a reset: ``h_t = i_t ⊙ x_t``), as in :meth:`forward`.
        """
        reset_seq = None if reset is None else reset[:, None]
        if h is None:
            reset_seq = self._document_start(x_t[:, None], reset_seq)
        g = self.gates(x_t[:, None], reset_seq)
        a_t, b = g["a_t"][:, 0], g["b"][:, 0]
        h_new = _scan().linear_scan_step(a_t, b, None if h is None else h.to(b.dtype))
        return h_new.to(x_t.dtype), h_new

    def extra_repr(self) -> str:
        return f"width={self.width}, n_heads={self.n_heads}, c={self.c}, a_init=[{self.a_min}, {self.a_max}]"


class CausalConv1d(nn.Module):
    """Causal depthwise convolution over time: ``(B, T, C) -> (B, T, C)``, ``K`` taps per channel.

    ``y_t = bias + Σ_k weight[:, k] · x_{t − (K−1) + k}`` (tap ``K − 1`` multiplies the current
    token; zeros before the sequence), through :func:`~linattn_edu.kernels.scan.causal_conv1d`.
    Weights ``(C, K)`` normal with std ``1/√K``, bias zero. The decode state is the last ``K − 1``
    inputs ``(B, K − 1, C)``.
    """

    def __init__(self, width: int, kernel_size: int = 4, *, backend: str | None = None) -> None:
        super().__init__()
        self.width, self.kernel_size, self.backend = width, kernel_size, backend
        self.weight = nn.Parameter(torch.empty(width, kernel_size))
        self.bias = nn.Parameter(torch.empty(width))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(self.kernel_size))
        nn.init.zeros_(self.bias)

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None, *, keep_state: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x (B, T, C)`` after the inputs in ``state`` ``(B, K−1, C)`` (None: zeros).

        Returns ``(y (B, T, C), the last K−1 inputs or None)``. One token with a state takes
        :func:`~linattn_edu.kernels.scan.causal_conv1d_step`.
        """
        scan = _scan()
        b, t, c = x.shape
        k = self.kernel_size
        weight, bias = self.weight.to(x.dtype), self.bias.to(x.dtype)
        if state is not None and t == 1:
            y_t, new_state = scan.causal_conv1d_step(x[:, 0], state.to(x.dtype), weight, bias)
            return y_t[:, None], (new_state if keep_state else None)
        backend = _scan_backend(self.backend, x)
        if state is None:
            y = scan.causal_conv1d(x, weight, bias, backend=backend)
            full = x if not keep_state or t >= k - 1 else torch.cat([x.new_zeros(b, k - 1 - t, c), x], dim=1)
        else:  # continue after a state: convolve [state, x] and drop the state's own outputs
            full = torch.cat([state.to(x.dtype), x], dim=1)
            y = scan.causal_conv1d(full, weight, bias, backend=backend)[:, k - 1:]
        new_state = full[:, full.shape[1] - (k - 1):] if keep_state else None
        return y, new_state

    def extra_repr(self) -> str:
        return f"width={self.width}, kernel_size={self.kernel_size}"


class RecurrentState(NamedTuple):
    """The decode state of one recurrent block.

    Attributes:
        conv: the last ``conv_width − 1`` conv inputs ``(B, conv_width − 1, lru_width)``, in the
            model's dtype (zeros before the first token).
        h: the RG-LRU state ``(B, lru_width)``, float32 (float64 for a float64 model).
    """

    conv: torch.Tensor
    h: torch.Tensor


class RecurrentBlock(nn.Module):
    """Griffin's recurrent block: ``LinearOut(GeLU(LinearY(x)) ⊙ RG-LRU(Conv1D(LinearX(x))))``.

    ``(B, T, d_model) -> (B, T, d_model)`` through ``lru_width`` channels. GeLU is the tanh
    approximation, as in the official code. Decode state: a :class:`RecurrentState`.
    """

    def __init__(self, cfg: HawkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, w = cfg.d_model, cfg.lru_width
        self.linear_y = nn.Linear(d, w)
        self.linear_x = nn.Linear(d, w)
        self.conv = CausalConv1d(w, cfg.conv_width, backend=cfg.attn_backend)
        self.rg_lru = RGLRU(w, cfg.n_heads, c=cfg.c, a_min=cfg.a_min, a_max=cfg.a_max, backend=cfg.attn_backend)
        self.out_proj = nn.Linear(w, d)

    def forward(
        self, x: torch.Tensor, state: RecurrentState | None = None, *, position: int = 0, keep_state: bool = True
    ) -> tuple[torch.Tensor, RecurrentState | None]:
        """x ``(B, T, d_model)`` after ``state`` (None: a document starts at token 0).

        Without a state the conv sees zeros before token 0 and the RG-LRU treats token 0 as a
        reset (``h_0 = i_0 ⊙ x_0``), as the official block does with ``segment_pos[:, 0] == 0``;
        with a state both continue it (no reset). Returns ``(y (B, T, d_model), new state or
        None)``; one token with a state takes the recurrent step (no scan).
        """
        y_branch = F.gelu(self.linear_y(x), approximate="tanh")
        u, conv_state = self.conv(self.linear_x(x), None if state is None else state.conv, keep_state=keep_state)
        if state is not None and x.shape[1] == 1:
            h_seq, h_last = self.rg_lru.step(u[:, 0], state.h)
            h_seq = h_seq[:, None]
        else:
            h_seq, h_last = self.rg_lru(u, None if state is None else state.h)
        out = self.out_proj(h_seq * y_branch)
        return out, (RecurrentState(conv_state, h_last) if keep_state else None)

    @torch.no_grad()
    def gate_values(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The RG-LRU's gates (see :meth:`RGLRU.gates`) for the block input ``x (B, T, d_model)``
        (already normalized), plus ``"x"`` the conv output the RG-LRU reads and ``"h"`` its states.
        Token 0 starts the document (a reset: ``a_t = 0``, ``multiplier = 1`` there), as in
        :meth:`forward` without a state.
        """
        u, _ = self.conv(self.linear_x(x), keep_state=False)
        gates = self.rg_lru.gates(u, RGLRU._document_start(u, None))
        h, _ = self.rg_lru(u)
        return dict(gates, x=u, h=h)


class LocalAttention(nn.Module):
    """Sliding-window multi-query attention with RoPE on half of each head's dims.

    ``q``: ``n_heads`` heads of ``head_dim = d_model / n_heads``; ``k, v``: ``n_kv_heads`` heads
    (1: multi-query). Query ``i`` sees keys ``i − window < j ≤ i`` through
    :func:`~linattn_edu.kernels.flash_attention`. RoPE (rotate-half layout, base ``rope_base``)
    turns the first ``head_dim / 2`` dims of q and k; the rest are left alone, as in the official
    code. Decode state: ``(K, V)``, each ``(B, n_kv_heads, min(T, window), head_dim)`` (keys after
    RoPE).

    ``window`` counts keys *including the current one*. RecurrentGemma's ``LocalAttentionBlock``
    with ``window_size=w`` masks keys with ``q − k > w``, so it sees ``w + 1`` keys: official
    ``window_size=w`` is ``window=w + 1`` here (the paper's 1024 is ``window=1025``; RecurrentGemma's
    2048 is ``window=2049``). Tested against a transcription of the official mask and block.
    """

    def __init__(self, cfg: GriffinConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, h, h_kv, hd = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(d, h * hd, bias=False)
        self.kv_proj = nn.Linear(d, 2 * h_kv * hd, bias=False)
        self.out_proj = nn.Linear(h * hd, d)

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = self.cfg.head_dim // 2
        return torch.cat([apply_rope(x[..., :half], cos, sin), x[..., half:]], dim=-1)

    def forward(
        self, x: torch.Tensor, state: Any = None, *, position: int = 0, keep_state: bool = True
    ) -> tuple[torch.Tensor, Any]:
        """x ``(B, T, C)`` at absolute positions ``position..position+T-1``; state ``(K, V)`` or None."""
        cfg = self.cfg
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        k, v = self.kv_proj(x).view(b, t, 2, cfg.n_kv_heads, cfg.head_dim).permute(2, 0, 3, 1, 4)
        cos, sin = rope_cos_sin(
            torch.arange(position, position + t, device=x.device), cfg.head_dim // 2, base=cfg.rope_base,
            dtype=x.dtype,
        )
        q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
        if state is not None:
            k = torch.cat([state[0].to(k.dtype), k], dim=2)
            v = torch.cat([state[1].to(v.dtype), v], dim=2)
        o = _kernels().flash_attention(q, k, v, causal=True, window=cfg.window, backend=cfg.window_backend(x.device))
        o = o.transpose(1, 2).reshape(b, t, cfg.n_heads * cfg.head_dim)
        new_state = (k[:, :, -cfg.window:], v[:, :, -cfg.window:]) if keep_state else None
        return self.out_proj(o), new_state


class GriffinMLP(nn.Module):
    """Griffin's gated MLP: ``FcOut(GeLU(W1 x) ⊙ W2 x)`` with ``ratio · C`` hidden units (3).

    ``fc_in`` maps ``C`` to ``2·h`` (the ``W1`` half then the ``W2`` half), ``fc_out`` maps ``h``
    back; GeLU is the tanh approximation (official code). ``(B, T, C) -> (B, T, C)``.
    """

    def __init__(self, dim: int, ratio: float = 3.0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = max(1, int(round(ratio * dim)))
        self.fc_in = nn.Linear(dim, 2 * hidden)
        self.fc_out = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.fc_in(x).chunk(2, dim=-1)
        return self.dropout(self.fc_out(F.gelu(gate, approximate="tanh") * value))


# ----------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------


def _positive_int(value: Any, name: str) -> None:
    check_int(value, name, minimum=1)  # NumPy integer scalars welcome, bools refused


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass
class HawkConfig:
    """Everything needed to rebuild a ``"hawk"`` model: ``build_model("hawk", **asdict(cfg))``.

    Attributes:
        vocab_size, d_model, n_layers: sizes.
        n_heads: blocks of the RG-LRU's block-diagonal gates; must divide ``lru_width``.
        lru_width: channels of the recurrence; None means ``d_model`` (the official default;
            the paper's models use about ``4/3 · d_model``). Stored resolved.
        conv_width: taps of the causal depthwise conv before the RG-LRU (4).
        c: the RG-LRU's exponent scale, ``a_t = a^(c·r_t)`` (8).
        a_min, a_max: the initialization ring of the base decay, ``a ∈ [a_min, a_max]``
            (0.9, 0.999).
        mlp_ratio: hidden units of the gated MLP / ``d_model`` (3).
        dropout: on embeddings and sublayer outputs.
        tie_embeddings: share the token embedding with the output layer.
        attn_backend: one of :data:`GRIFFIN_BACKENDS`, the ``backend=`` of every kernel call
            (scan, conv and, in Griffin, attention); None picks per device.
    """

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    lru_width: int | None = None
    conv_width: int = 4
    c: float = 8.0
    a_min: float = 0.9
    a_max: float = 0.999
    mlp_ratio: float = 3.0
    dropout: float = 0.0
    tie_embeddings: bool = True
    attn_backend: str | None = None

    def __post_init__(self) -> None:
        if self.lru_width is None:
            self.lru_width = self.d_model
        self.validate()

    @property
    def pattern(self) -> list[str]:
        """The mixing block of each layer: ``["recurrent"] * n_layers``."""
        return ["recurrent"] * self.n_layers

    @property
    def norm(self) -> str:
        """The norm of every block and of the output: always ``"rmsnorm"`` (not an option)."""
        return "rmsnorm"

    def state_bytes(
        self, seq_len: int, bytes_per_element: int = 2, state_bytes_per_element: int | None = None
    ) -> int:
        """Bytes of decode state per sequence after ``seq_len`` tokens, summed over the layers.

        A recurrent layer keeps ``W · (conv_width - 1)`` conv inputs at ``bytes_per_element`` and
        the RG-LRU state ``h`` (``W``) at ``state_bytes_per_element`` (``W = lru_width``); a local
        attention layer (:class:`GriffinConfig`) ``2 · H_kv · D · min(T, window)`` keys and values
        at ``bytes_per_element``. ``state_bytes_per_element=None`` means ``bytes_per_element``.
        """
        seq_len, bpe, sbpe = check_state_sizes(seq_len, bytes_per_element, state_bytes_per_element)
        return int(sum(self._layer_state_bytes(block, seq_len, bpe, sbpe) for block in self.pattern))

    def _layer_state_bytes(self, block: str, seq_len: int, bpe: int, sbpe: int) -> int:
        return self.lru_width * (self.conv_width - 1) * bpe + self.lru_width * sbpe  # "recurrent"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "lru_width", "conv_width"):
            _positive_int(getattr(self, name), name)
        if self.lru_width % self.n_heads:
            raise ValueError(f"lru_width={self.lru_width} must be divisible by n_heads={self.n_heads}")
        if not _number(self.c) or self.c <= 0:
            raise ValueError(f"c must be a positive number, got {self.c!r}")
        for name in ("a_min", "a_max"):
            val = getattr(self, name)
            if not _number(val) or not 0.0 < val < 1.0:
                raise ValueError(f"{name} must be a number in (0, 1), got {val!r}")
        if self.a_min > self.a_max:
            raise ValueError(f"a_min={self.a_min} must be <= a_max={self.a_max}")
        if not _number(self.mlp_ratio) or self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be a positive number, got {self.mlp_ratio!r}")
        if not _number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise ValueError(f"tie_embeddings must be a bool, got {self.tie_embeddings!r}")
        if self.attn_backend not in GRIFFIN_BACKENDS:
            raise ValueError(f"attn_backend must be one of {list(GRIFFIN_BACKENDS)}, got {self.attn_backend!r}")


@dataclasses.dataclass
class GriffinConfig(HawkConfig, HeadsConfig):
    """Everything needed to rebuild a ``"griffin"`` model: ``build_model("griffin", **asdict(cfg))``.

    The fields of :class:`HawkConfig` plus:

    Attributes:
        layer_pattern: one entry per layer, ``"recurrent"`` or ``"attention"``; None means
            :func:`griffin_layer_pattern` (stored resolved).
        window: the local attention's window ``w``: query ``i`` sees keys ``i − w < j ≤ i``,
            ``w`` keys including itself. The official code's ``window_size=w`` sees ``w + 1``
            keys, so it is ``window=w + 1`` here: the paper's models (1024) are ``window=1025``,
            RecurrentGemma (2048) ``window=2049``. The default, 64, is a book-scale size for a
            CPU; the GPU decode-latency preset of :mod:`linattn_edu.experiments.recurrent` uses
            the paper's 1025 (presets whose sequences are shorter than that keep smaller windows).
        n_kv_heads: key/value heads of the local attention (1: multi-query, as in the paper);
            must divide ``n_heads``.
        rope_base: RoPE frequency base.

    With attention layers, ``d_model`` must be divisible by ``n_heads`` and the head dim
    ``d_model / n_heads`` by 4 (RoPE turns pairs of dims in the first half).
    """

    layer_pattern: list[str] | None = None
    window: int = 64
    n_kv_heads: int = 1
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        if self.layer_pattern is None and isinstance(self.n_layers, int) and not isinstance(self.n_layers, bool) \
                and self.n_layers >= 1:
            self.layer_pattern = griffin_layer_pattern(self.n_layers)
        super().__post_init__()

    @property
    def pattern(self) -> list[str]:
        """The mixing block of each layer, e.g. ``["recurrent", "recurrent", "attention"]``."""
        return list(self.layer_pattern or [])

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        super().validate()
        _positive_int(self.window, "window")
        _positive_int(self.n_kv_heads, "n_kv_heads")
        if not _number(self.rope_base) or self.rope_base <= 1:
            raise ValueError(f"rope_base must be a number > 1, got {self.rope_base!r}")
        pattern = self.layer_pattern
        if not isinstance(pattern, (list, tuple)) or not all(isinstance(e, str) for e in pattern):
            raise ValueError(f"layer_pattern must be a list of {list(GRIFFIN_BLOCKS)}, got {pattern!r}")
        if len(pattern) != self.n_layers:
            raise ValueError(f"layer_pattern must have n_layers={self.n_layers} entries, got {len(pattern)}")
        for entry in pattern:
            if entry not in GRIFFIN_BLOCKS:
                raise ValueError(f"layer_pattern entries must be one of {list(GRIFFIN_BLOCKS)}, got {entry!r}")
        self.layer_pattern = list(pattern)
        if "attention" in self.layer_pattern:
            if self.d_model % self.n_heads:
                raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
            if self.n_heads % self.n_kv_heads:
                raise ValueError(f"n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads}")
            if self.head_dim % 4:
                raise ValueError(
                    f"attention layers need a head dim d_model/n_heads divisible by 4 (RoPE on half of it), "
                    f"got {self.head_dim}"
                )

    def _layer_state_bytes(self, block: str, seq_len: int, bpe: int, sbpe: int) -> int:
        if block == "attention":
            return 2 * self.n_kv_heads * self.head_dim * min(seq_len, self.window) * bpe
        return super()._layer_state_bytes(block, seq_len, bpe, sbpe)



# ----------------------------------------------------------------------------------------------
# The residual block, the cache and the models
# ----------------------------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    """``x + Mixer(RMSNorm(x))``, then ``x + GatedMLP(RMSNorm(x))``; ``(B, T, C)``."""

    def __init__(self, cfg: HawkConfig, block: str) -> None:
        super().__init__()
        self.block = block
        self.norm_mix = RMSNorm(cfg.d_model)
        self.mixer = RecurrentBlock(cfg) if block == "recurrent" else LocalAttention(cfg)  # type: ignore[arg-type]
        self.norm_mlp = RMSNorm(cfg.d_model)
        self.mlp = GriffinMLP(cfg.d_model, cfg.mlp_ratio, cfg.dropout)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, state: Any, position: int, keep_state: bool) -> tuple[torch.Tensor, Any]:
        y, new_state = self.mixer(self.norm_mix(x), state, position=position, keep_state=keep_state)
        x = x + self.dropout(y)
        return x + self.mlp(self.norm_mlp(x)), new_state


@dataclasses.dataclass
class GriffinCache(DecodeCache):
    """The decoding state of a ``"hawk"`` or ``"griffin"`` model.

    Attributes:
        layers: one state per layer: a :class:`RecurrentState` ``(conv, h)`` for a recurrent
            layer (constant size), ``(K, V)`` each ``(B, n_kv_heads, min(T, window), head_dim)``
            for an attention layer (bounded by the window).
        position: tokens consumed so far (the next token's absolute position).

    Not modified in place: ``model.step`` returns a new cache.
    """

    layers: list[Any]
    position: int

    @property
    def batch_size(self) -> int:
        """``B``, read from the first layer's state."""
        return int(self.layers[0][0].shape[0]) if self.layers else 0


class _GriffinLM(LanguageModel):
    """Embedding, residual blocks (recurrent or local attention, + gated MLP), final RMSNorm, LM head.

    Each row of ``forward`` / ``prefill`` without a cache is one document starting at token 0:
    the RG-LRU treats token 0 as a reset (``h_0 = i_0 ⊙ x_0``), as the official code does at
    ``segment_pos == 0``. With a cache (``step``, chunked ``prefill``) the scans start from the
    cached states, no reset. A step shifts the recurrent layers' conv inputs and does one
    ``h = a_t h + b_t``; attention layers attend over at most ``window`` cached keys: the cost of
    a step does not grow with the context. A cache made by a model with another width, conv
    width, window or number of KV heads is refused (``ValueError`` naming ``cache``).
    """

    kind = "_griffin"
    config_class: type[HawkConfig] = HawkConfig
    cache_class = GriffinCache
    mixer_attr = "mixer"

    def _build_blocks(self, cfg: HawkConfig) -> list[nn.Module]:
        return [ResidualBlock(cfg, block) for block in cfg.pattern]

    def _check_cache_layers(self, cache: GriffinCache, batch: int) -> None:
        position = cache.position
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ValueError(f"cache.position must be an int >= 0, got {position!r}")
        for i, (state, block) in enumerate(zip(cache.layers, self.config.pattern)):
            is_recurrent = isinstance(state, RecurrentState)
            if is_recurrent != (block == "recurrent") or not isinstance(state, tuple) or len(state) != 2:
                raise ValueError(f"cache layer {i} must hold the state of a {block!r} layer")
            if not all(isinstance(t, torch.Tensor) for t in state):
                raise ValueError(f"cache layer {i} must hold tensors, got {[type(t).__name__ for t in state]}")
        self._check_batch(cache, batch)
        for i, (state, expected) in enumerate(zip(cache.layers, self._state_shapes(batch, position))):
            got = tuple(tuple(t.shape) for t in state)
            if got != expected:
                names = "(conv, h)" if isinstance(state, RecurrentState) else "(K, V)"
                raise ValueError(
                    f"cache layer {i} ({self.config.pattern[i]!r}) holds {names} of shapes {got}, but this model "
                    f"expects {expected} after {position} tokens: the cache must come from prefill()/step() of a "
                    f"model with the same config"
                )

    def _state_shapes(self, batch: int, position: int) -> list[tuple[tuple[int, ...], ...]]:
        """The shapes of each layer's state after ``position`` tokens: ``(conv, h)`` or ``(K, V)``."""
        cfg = self.config
        shapes = []
        for block in cfg.pattern:
            if block == "recurrent":
                shapes.append(((batch, cfg.conv_width - 1, cfg.lru_width), (batch, cfg.lru_width)))
            else:
                kv = (batch, cfg.n_kv_heads, min(position, cfg.window), cfg.head_dim)  # type: ignore[attr-defined]
                shapes.append((kv, kv))
        return shapes

    @torch.no_grad()
    def gate_values(self, tokens: torch.Tensor, layer: int | None = None) -> dict[str, torch.Tensor]:
        """The RG-LRU gates of one recurrent layer over a token sequence (for visualizations).

        Args:
            tokens: ``(B, T)`` int64 token ids.
            layer: index of a recurrent layer; None means the first one.

        Returns:
            A dict of ``(B, T, lru_width)`` tensors (see :meth:`RGLRU.gates`): ``"r"`` the
            recurrence gate, ``"i"`` the input gate, ``"a_t"`` the decay, ``"log_a_t"``,
            ``"multiplier"``, ``"b"``, ``"x"`` the RG-LRU's input, ``"h"`` its states; and
            ``"a"`` ``(lru_width,)`` the base decay of the layer.

        Runs without gradients and with dropout off (the model's mode is restored afterwards).

        Raises:
            ValueError: ``layer`` is out of range or not a recurrent layer.
        """
        tokens = check_tokens(tokens, self.config.vocab_size)
        pattern = self.config.pattern
        if layer is None:
            if "recurrent" not in pattern:
                raise ValueError("this model has no recurrent layer")
            layer = pattern.index("recurrent")
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < len(pattern):
            raise ValueError(f"layer must be an int in [0, {len(pattern)}), got {layer!r}")
        if pattern[layer] != "recurrent":
            recurrent = [i for i, b in enumerate(pattern) if b == "recurrent"]
            raise ValueError(f"layer {layer} is an {pattern[layer]!r} layer; recurrent layers: {recurrent}")
        was_training = self.training
        self.eval()  # no dropout
        try:
            x = self.tok_emb(tokens)
            for block in self.blocks[:layer]:
                x, _ = block(x, None, 0, False)
            block = self.blocks[layer]
            out = block.mixer.gate_values(block.norm_mix(x))
            out["a"] = block.mixer.rg_lru.a.detach()
        finally:
            self.train(was_training)
        return out

    def extra_repr(self) -> str:
        cfg = self.config
        return f"lru_width={cfg.lru_width}, heads={cfg.n_heads}, conv_width={cfg.conv_width}, c={cfg.c}"


#: The recurrent families of the experiments.
register_family("hawk", label="Hawk", color="tab:brown", marker="D")
register_family("griffin", label="Griffin", color="tab:cyan", marker="P")


@register_model("hawk")
class Hawk(_GriffinLM):
    """Hawk: every mixing layer is a recurrent block (RG-LRU); see the module docstring.

    Build with ``build_model("hawk", vocab_size=..., d_model=..., n_layers=..., n_heads=...)``;
    options are the fields of :class:`HawkConfig`. ``prefill``/``step`` decode with a
    :class:`GriffinCache` of constant size.
    """

    kind = "hawk"
    config_class = HawkConfig


@register_model("griffin")
class Griffin(_GriffinLM):
    """Griffin: recurrent blocks and local multi-query attention; see the module docstring.

    Build with ``build_model("griffin", vocab_size=..., d_model=..., n_layers=..., n_heads=...,
    window=64, layer_pattern=None)``; options are the fields of :class:`GriffinConfig`.
    ``prefill``/``step`` decode with a :class:`GriffinCache` whose size is bounded by the window.
    """

    kind = "griffin"
    config_class = GriffinConfig

    def extra_repr(self) -> str:
        cfg = self.config
        return f"{super().extra_repr()}, window={cfg.window}, kv_heads={cfg.n_kv_heads}, layer_pattern={cfg.pattern}"
