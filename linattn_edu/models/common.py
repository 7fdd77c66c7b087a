"""Pieces every zoo model shares: norms, the MLP, position encodings, the decode cache, generation.

The decoding interface every zoo model implements::

    logits = model(tokens)                     # (B, T) int64 -> (B, T, vocab)
    logits, cache = model.prefill(tokens)      # same logits, plus the state after the last token
    logits, cache = model.step(token, cache)   # (B,) int64 -> (B, vocab), the state one token later

Caches are dataclasses of tensors; :func:`cache_bytes` measures any of them, so chapters can plot
how a KV cache grows with the context while a recurrent state stays constant.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_float, check_int

__all__ = [
    "RMSNorm",
    "make_norm",
    "MLP",
    "KVCache",
    "cache_bytes",
    "sinusoidal_positions",
    "rope_cos_sin",
    "apply_rope",
    "check_tokens",
    "count_parameters",
    "generate",
    "NORMS",
]

#: Normalization layers a model may use (``norm=`` option).
NORMS = ("layernorm", "rmsnorm")


class RMSNorm(nn.Module):
    """Root-mean-square norm: ``x / sqrt(mean(x^2) + eps) * weight`` over the last dim ``(…, C)``.

    LayerNorm without the mean subtraction and the bias (used by Griffin and LLaMA).
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., C) -> (..., C)``, computed in at least float32."""
        compute = torch.promote_types(x.dtype, torch.float32)
        xf = x.to(compute)
        out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (out * self.weight.to(compute)).to(x.dtype)


def make_norm(kind: str, dim: int) -> nn.Module:
    """``"layernorm"`` or ``"rmsnorm"`` over ``dim`` channels.

    Raises:
        ValueError: ``kind`` is not one of :data:`NORMS`.
    """
    if kind == "layernorm":
        return nn.LayerNorm(dim)
    if kind == "rmsnorm":
        return RMSNorm(dim)
    raise ValueError(f"norm must be one of {list(NORMS)}, got {kind!r}")


class MLP(nn.Module):
    """The feed-forward block: ``Linear(C -> r·C) -> GeLU -> Linear(r·C -> C) -> dropout``.

    ``(B, T, C) -> (B, T, C)``.
    """

    def __init__(self, dim: int, ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = max(1, int(round(ratio * dim)))
        self.fc_in = nn.Linear(dim, hidden)
        self.fc_out = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc_out(F.gelu(self.fc_in(x))))


# ----------------------------------------------------------------------------------------------
# Position encodings
# ----------------------------------------------------------------------------------------------


def sinusoidal_positions(positions: torch.Tensor, dim: int, *, base: float = 10000.0) -> torch.Tensor:
    """The fixed sinusoidal embedding of Vaswani et al. (2017) for any positions: ``(T,) -> (T, dim)``.

    ``PE[p, 2k] = sin(p / base^(2k/dim))`` and ``PE[p, 2k+1] = cos(p / base^(2k/dim))``.
    Computed on the fly in float64 (no table, so no length limit), returned in float64: cast
    it to the model's dtype.

    Raises:
        ValueError: ``dim`` is not a positive even int.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 2 or dim % 2:
        raise ValueError(f"dim must be a positive even int for sinusoidal positions, got {dim!r}")
    dim = int(dim)
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64, device=positions.device) / dim)
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]  # (T, dim/2)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(positions.shape[0], dim)


def rope_cos_sin(
    positions: torch.Tensor, head_dim: int, *, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines and sines of rotary embeddings, each ``(T, head_dim)`` in ``dtype``.

    Channel pairs ``(k, k + D/2)`` rotate by the angle ``p · base^(-2k/D)``, ``k = 0..D/2-1``
    (the *rotate-half* layout of GPT-NeoX and LLaMA; the RoFormer paper pairs neighbours
    ``(2k, 2k+1)`` instead, which is the same up to a permutation of channels). The angles are
    computed in float64 so long positions stay accurate.

    Raises:
        ValueError: ``head_dim`` is not a positive even int.
    """
    if isinstance(head_dim, bool) or not isinstance(head_dim, (int, np.integer)) or head_dim < 2 or head_dim % 2:
        raise ValueError(f"head_dim must be a positive even int for RoPE, got {head_dim!r}")
    head_dim = int(head_dim)
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64, device=positions.device) / head_dim)
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]  # (T, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, D): channel k and k + D/2 share an angle
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``(B, H, T, D)`` by the angles of :func:`rope_cos_sin` ``(T, D)``.

    ``x * cos + rotate_half(x) * sin`` with ``rotate_half([x1, x2]) = [-x2, x1]``: each pair
    ``(x1[k], x2[k])`` turns by its angle, so ``q_i · k_j`` depends on ``i - j`` only.
    """
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


# ----------------------------------------------------------------------------------------------
# Decode caches
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class KVCache:
    """The decoding state of a softmax-attention model: every layer's keys and values.

    Attributes:
        keys: one tensor per layer, ``(B, H_kv, T_cached, D)`` (keys after RoPE, if any).
        values: one tensor per layer, ``(B, H_kv, T_cached, D)``.
        position: how many tokens have been consumed so far; the next token sits at this
            absolute position. Equals ``T_cached`` unless a sliding window dropped old keys.

    Caches are not modified in place: ``model.step`` returns a new one, so an old cache can be
    reused (e.g. to branch two continuations from one prompt).
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    position: int

    @property
    def seq_len(self) -> int:
        """Number of cached positions ``T_cached`` (the same in every layer)."""
        return int(self.keys[0].shape[2]) if self.keys else 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached tensors: ``2 · layers · B · H_kv · T_cached · D · element size``."""
        return cache_bytes(self)


def _tensor_bytes(obj: Any, seen: set[int]) -> int:
    if isinstance(obj, torch.Tensor):
        if id(obj) in seen:
            return 0
        seen.add(id(obj))
        return obj.numel() * obj.element_size()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(_tensor_bytes(getattr(obj, f.name), seen) for f in dataclasses.fields(obj))
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v, seen) for v in obj)
    return 0


def cache_bytes(cache: Any) -> int:
    """Bytes of all tensors in a decode cache (any dataclass, dict, list or tuple of tensors).

    Works for every zoo model's cache: the KV cache of attention grows with the context, the
    state of a recurrent model does not. Tensors are counted once even if referenced twice.

    Raises:
        TypeError: ``cache`` holds no tensors at all and is not an empty container.
    """
    if not (
        isinstance(cache, (torch.Tensor, dict, list, tuple))
        or (dataclasses.is_dataclass(cache) and not isinstance(cache, type))
    ):
        raise TypeError(f"cache must be a dataclass, dict, list, tuple or tensor, got {type(cache).__name__}")
    return _tensor_bytes(cache, set())


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def check_tokens(tokens: Any, vocab_size: int, *, name: str = "tokens", ndim: int = 2) -> torch.Tensor:
    """Validate token ids: an integer tensor of ``ndim`` dims with values in ``[0, vocab_size)``.

    Raises:
        TypeError: not a tensor, or not an integer dtype.
        ValueError: wrong number of dims, empty, or an id out of range; the message names ``name``.
    """
    shape_doc = "(B, T)" if ndim == 2 else "(B,)"
    vocab_size = check_int(vocab_size, "vocab_size", minimum=1)
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {shape_doc} of int64 ids, got {type(tokens).__name__}")
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got dtype {tokens.dtype}")
    if tokens.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape_doc}, got shape {tuple(tokens.shape)}")
    if tokens.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(tokens.shape)}")
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"{name} must be in [0, vocab_size={vocab_size}), got values in [{lo}, {hi}]")
    return tokens.long()


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of parameters of ``model`` (tied weights counted once)."""
    params = {id(p): p for p in model.parameters() if p.requires_grad or not trainable_only}
    return sum(p.numel() for p in params.values())


@torch.no_grad()
def generate(
    model: nn.Module,
    prompt: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Continue ``prompt`` ``(B, T)`` by ``max_new_tokens`` tokens with ``prefill`` then ``step``.

    ``temperature=0`` is greedy decoding (argmax); otherwise tokens are sampled from
    ``softmax(logits / temperature)`` with ``generator``. Returns ``(B, T + max_new_tokens)``.
    Works with every zoo model (anything with ``prefill`` and ``step``).

    Raises:
        ValueError: a negative ``max_new_tokens``, a negative or non-finite ``temperature``.
    """
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens", minimum=0)
    temperature = check_float(temperature, "temperature", minimum=0.0)
    was_training = model.training
    model.eval()
    try:
        out = [prompt]
        if max_new_tokens == 0:
            return prompt.clone()
        logits, cache = model.prefill(prompt)
        last = logits[:, -1]
        for i in range(max_new_tokens):
            if temperature == 0:
                token = last.argmax(-1)
            else:
                probs = torch.softmax(last.float() / temperature, dim=-1)
                token = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(prompt.device)
            out.append(token[:, None])
            if i + 1 < max_new_tokens:
                last, cache = model.step(token, cache)
        return torch.cat(out, dim=1)
    finally:
        model.train(was_training)
