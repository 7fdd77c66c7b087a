"""Linearized LLMs (You et al., ICML 2024): linear or grouped attention, augmented with a causal DWConv.

``build_model("linearized", vocab_size=..., d_model=..., n_layers=..., n_heads=..., attention="grouped")``

A pre-norm Transformer (the same embedding, norms, GeLU MLPs and LM head as the zoo's
``"transformer"``, so that :func:`linearize` can copy a trained one) whose softmax attention is
replaced by::

    q, k, v = Q(x), K(x), V(x)                  # (B, H, T, D) each, D = d_model / n_heads
    q, k = RoPE(q), RoPE(k)                     # pos="rope" (default); pos="none": nothing
    q, k = q/|q|, k/|k|                         # normalize_qk (default for "grouped")
    o = Attention(q, k, v) + DWConv(v)          # DWConv: causal, one filter per head (official)
    y = Out(o)

``attention="grouped"`` (default): grouped linear attention
(:func:`~linattn_edu.reference.grouped_linear_attention`). Token ``i`` attends to its own group of
``group_size`` tokens (``G(i) = i // g``) exactly, with ``relu(q·k)²`` scores and no denominator
(``local="relu2"``, official) or a causal softmax of ``q·k/√D`` (``local="softmax"``), and to
every completed earlier group through linear attention ``α · φ(q_i)ᵀ S`` (``feature_map``,
default ``"identity"`` on the normalized q, k, as officially; no denominator) with one learnable
``α`` per layer (the official ``global_factor``, initialised to 0; ``alpha_per="head"`` is this
book's variant with one ``α`` per head). ``local_factor=True`` adds the official optional
learnable scale of the local branch (initialised to 1). Decode state per layer: ``S (B, H, F, D)`` (the sum over completed groups, float32
or float64), the current partial group's keys and values ``(B, H, T mod g, D)`` (after RoPE and
normalization) and the conv buffer.

``attention="linear"``: plain causal linear attention ``φ(q)ᵀS / (φ(q)ᵀz + eps)`` (``feature_map``
default ``"elu"``, ``normalize=True``) through :func:`~linattn_edu.kernels.chunked_linear_attention`
(as the ``"linear"`` kind does). Decode state: ``(S, z)`` and the conv buffer.

The convolution (``conv=True``) is causal: output ``t`` reads ``v_{t-K+1..t}``, ``K =
conv_kernel_size``, through :func:`~linattn_edu.kernels.causal_conv1d`. As in the official code
(``Conv2d(H, H, (63, 1), groups=H, bias=False)`` over ``(B, H, T, D)``) there is one filter per
head, shared by the head's ``D`` channels: ``H·K`` weights per layer, no bias
(``conv_filters="head"``); ``conv_filters="channel"`` is this book's variant with one filter per
value channel (``H·D·K`` weights, channel ``h·D + d``). Decode state: the last ``K - 1`` values
``(B, K-1, H·D)``. ``K`` counts *causal* taps: the official kernel of 63 taps with its future 31
masked is ``conv_kernel_size=32`` (:func:`official_causal_taps`); the official groups have 64
tokens. The book-scale (CPU) defaults are smaller: ``conv_kernel_size=4`` and ``group_size=16``.

**Initialization.** ``conv_init="normal"`` (default; ``N(0, 1/K)``) or ``"zero"``; ``alpha_init``
(default 0.0, the paper's value) fills ``α``. The global branch has no denominator,
so with ``α = 1`` from the start its sum over all earlier groups grows with the position and
swamps the local branch early in training (measured at book scale, 200 steps, with this book's
per-head ``α`` and per-channel filters: perplexity 9.66 with ``α = 1`` against 7.10 with
``α = 0``); starting at 0 lets training open it gradually. :func:`linearize`, which converts a trained Transformer, sets both to zero
(the official recipe): the converted model starts as the purely local attention (exactly
the Transformer's, for ``local="softmax"`` and ``group_size >= T`` without normalization), and
both parameters still receive gradients.

**Speculative decoding.** :meth:`Linearized.tree_step` verifies a whole draft tree in one pass
without touching the cache; each node's logits equal those of step-decoding its root path. With
``return_states=True`` it also keeps every node's keys and values, from which
:meth:`Linearized.commit_tree` builds the cache after the accepted path (recurrent state,
partial group, conv buffer) with no further pass: one target pass per speculative round.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from ..checks import check_int
import torch.nn.functional as F
from torch import nn

from ..reference.linear import feature_map_dim
from .common import (DecodeCache, MLP, NORMS, HeadsConfig, TreeLanguageModel, TreeStates, apply_rope,
                     check_state_sizes, make_norm, rope_cos_sin)
from .linear import LINEAR_FEATURE_MAPS, feature_map_torch
from .registry import build_model, register_family, register_model

__all__ = [
    "LINEARIZED_ATTENTIONS",
    "LOCAL_KINDS",
    "CONV_INITS",
    "LINEARIZED_POSITIONS",
    "LinearizedConfig",
    "LinearizedAttention",
    "LinearizedLayerState",
    "LinearizedCache",
    "LinearizedTreeStates",
    "Linearized",
    "linearize",
    "CONV_FILTERS",
    "ALPHA_PER",
    "OFFICIAL_CONV_KERNEL_SIZE",
    "OFFICIAL_GROUP_SIZE",
    "official_causal_taps",
]

#: Values of ``attention=``.
LINEARIZED_ATTENTIONS = ("grouped", "linear")
#: Values of ``local=`` (the grouped attention's in-group scores).
LOCAL_KINDS = ("relu2", "softmax")
#: Values of ``conv_init=``.
CONV_INITS = ("normal", "zero")
#: Values of ``pos=``.
LINEARIZED_POSITIONS = ("rope", "none")
_BACKENDS = (None, "triton", "interpreter", "torch")
#: Values of ``conv_filters=``: ``"head"`` (official: one filter per head, shared across the head
#: dimension) or ``"channel"`` (this book's variant: one filter per head and channel).
CONV_FILTERS = ("head", "channel")
#: Values of ``alpha_per=``: ``"layer"`` (official ``global_factor``: one scalar per layer) or
#: ``"head"`` (this book's variant: one ``α`` per head).
ALPHA_PER = ("layer", "head")
#: The official DWConv kernel size (``fine-tune.py``: ``res_kernel_size = 63``, future half masked).
OFFICIAL_CONV_KERNEL_SIZE = 63
#: The official group size (``modeling_llama_kv.py``: ``GROUP_SIZE`` default 64).
OFFICIAL_GROUP_SIZE = 64


def official_causal_taps(kernel_size: int = OFFICIAL_CONV_KERNEL_SIZE) -> int:
    """Causal taps ``K`` of an official masked kernel of odd size ``kernel_size``: ``kernel_size // 2 + 1``.

    The official code masks taps ``kernel_size // 2 + 1 ..`` (the future) of a centered kernel,
    so 63 taps leave 32: the current token and the 31 before it (``conv_kernel_size=32`` here).

    Raises:
        ValueError: ``kernel_size`` is not a positive odd int.
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
    return kernel_size // 2 + 1


def _kernels() -> Any:
    from .. import kernels

    return kernels


def _positive_int(value: Any, name: str) -> None:
    check_int(value, name, minimum=1)  # NumPy integer scalars welcome, bools refused


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


@dataclasses.dataclass
class LinearizedConfig(HeadsConfig):
    """Everything needed to rebuild a ``"linearized"`` model: ``build_model("linearized", **asdict(cfg))``.

    Attributes:
        vocab_size, d_model, n_layers, n_heads: sizes; head dim ``D = d_model / n_heads``.
        attention: ``"grouped"`` (default) or ``"linear"``.
        conv: add the causal depthwise convolution over v.
        conv_kernel_size: its causal taps ``K`` (4 at book scale; the official 63-tap kernel with
            the future half masked is ``K = 32``, :func:`official_causal_taps`).
        conv_filters: ``"head"`` (official: ``H`` filters, each shared by a head's ``D`` channels)
            or ``"channel"`` (this book's variant: ``H·D`` filters).
        conv_init: ``"normal"`` (``N(0, 1/K)``) or ``"zero"``.
        conv_causal: True (the default, the only decodable choice). False makes the convolution
            *centered* (taps ``t - K//2 .. t + K//2``, ``K`` odd): output ``t`` reads future values.
            That is the leak the official code masks away; it exists here only so the chapter can
            train such a model and show its too-good loss. ``prefill``, ``step`` and
            ``tree_step`` refuse it (``ValueError``); ``forward`` runs it.
        group_size: ``g`` of the grouped attention (16; official 64).
        alpha_init: initial ``α`` (grouped attention's global branch; official 0).
        alpha_per: ``"layer"`` (official ``global_factor``: one scalar per layer) or ``"head"``
            (this book's variant: one per head).
        local_factor: add the official optional learnable scale of the local branch (init 1;
            ``attention="grouped"`` only).
        local: ``"relu2"`` (official) or ``"softmax"``.
        feature_map: φ of the linear part, one of :data:`~linattn_edu.models.LINEAR_FEATURE_MAPS`;
            None means ``"identity"`` for grouped, ``"elu"`` for linear (stored resolved).
        normalize_qk: L2-normalize q, k after RoPE; None means True for grouped, False for linear.
        normalize, eps: the plain linear attention's denominator (``attention="linear"`` only).
        pos: ``"rope"`` or ``"none"``; rope_base: its base.
        chunk_size: chunk of the chunked linear-attention kernel (``attention="linear"``).
        mlp_ratio, dropout, tie_embeddings, norm: as for ``"transformer"``.
        attn_backend: None (PyTorch on a CPU, the kernels choose on a GPU) or a forced backend.
    """

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    attention: str = "grouped"
    conv: bool = True
    conv_kernel_size: int = 4
    conv_init: str = "normal"
    conv_causal: bool = True
    conv_filters: str = "head"
    group_size: int = 16
    alpha_init: float = 0.0
    alpha_per: str = "layer"
    local_factor: bool = False
    local: str = "relu2"
    feature_map: str | None = None
    normalize_qk: bool | None = None
    normalize: bool = True
    eps: float = 1e-6
    pos: str = "rope"
    rope_base: float = 10000.0
    chunk_size: int = 64
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    tie_embeddings: bool = True
    norm: str = "layernorm"
    attn_backend: str | None = None

    def __post_init__(self) -> None:
        if self.attention in LINEARIZED_ATTENTIONS:
            if self.feature_map is None:
                self.feature_map = "identity" if self.attention == "grouped" else "elu"
            if self.normalize_qk is None:
                self.normalize_qk = self.attention == "grouped"
        self.validate()

    @property
    def n_features(self) -> int:
        """``F``: features per head of the linear part (``feature_map_dim(feature_map, head_dim)``)."""
        return feature_map_dim(self.feature_map, self.head_dim)  # type: ignore[arg-type]

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field (and listing valid values)."""
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "conv_kernel_size", "group_size", "chunk_size"):
            _positive_int(getattr(self, name), name)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.attention not in LINEARIZED_ATTENTIONS:
            raise ValueError(f"attention must be one of {list(LINEARIZED_ATTENTIONS)}, got {self.attention!r}")
        for name in ("conv", "conv_causal", "normalize", "tie_embeddings", "normalize_qk", "local_factor"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if not self.conv_causal and self.conv_kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size must be odd for a centered conv (conv_causal=False), "
                             f"got {self.conv_kernel_size}")
        if self.conv_filters not in CONV_FILTERS:
            raise ValueError(f"conv_filters must be one of {list(CONV_FILTERS)}, got {self.conv_filters!r}")
        if self.alpha_per not in ALPHA_PER:
            raise ValueError(f"alpha_per must be one of {list(ALPHA_PER)}, got {self.alpha_per!r}")
        if self.local_factor and self.attention != "grouped":
            raise ValueError("local_factor=True needs attention='grouped' (it scales the local branch)")
        if self.conv_init not in CONV_INITS:
            raise ValueError(f"conv_init must be one of {list(CONV_INITS)}, got {self.conv_init!r}")
        if not _number(self.alpha_init) or not math.isfinite(self.alpha_init):
            raise ValueError(f"alpha_init must be a finite number, got {self.alpha_init!r}")
        if self.local not in LOCAL_KINDS:
            raise ValueError(f"local must be one of {list(LOCAL_KINDS)}, got {self.local!r}")
        if self.feature_map not in LINEAR_FEATURE_MAPS:
            raise ValueError(f"feature_map must be one of {list(LINEAR_FEATURE_MAPS)}, got {self.feature_map!r}")
        if not _number(self.eps) or not self.eps >= 0:
            raise ValueError(f"eps must be a number >= 0, got {self.eps!r}")
        if self.pos not in LINEARIZED_POSITIONS:
            raise ValueError(f"pos must be one of {list(LINEARIZED_POSITIONS)}, got {self.pos!r}")
        if self.pos == "rope" and self.head_dim % 2:
            raise ValueError(f"pos='rope' needs an even head dim d_model/n_heads, got {self.head_dim}")
        if not _number(self.rope_base) or self.rope_base <= 1:
            raise ValueError(f"rope_base must be a number > 1, got {self.rope_base!r}")
        if not _number(self.mlp_ratio) or self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be a positive number, got {self.mlp_ratio!r}")
        if not _number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {list(NORMS)}, got {self.norm!r}")
        if self.attn_backend not in _BACKENDS:
            raise ValueError(f"attn_backend must be one of {list(_BACKENDS)}, got {self.attn_backend!r}")

    def state_bytes(
        self, seq_len: int, bytes_per_element: int = 2, state_bytes_per_element: int | None = None
    ) -> int:
        """Bytes of decode state per sequence after ``seq_len`` tokens, summed over the layers.

        Per layer: ``S`` ``H · F · D`` at ``state_bytes_per_element``, plus ``z`` ``H · F`` (same
        size) for ``attention="linear"`` or the current group's keys and values
        ``2 · H · D · (T mod g)`` at ``bytes_per_element`` for ``"grouped"``, plus the conv buffer
        ``H · D · (K - 1)`` at ``bytes_per_element`` with ``conv``.
        ``state_bytes_per_element=None`` means ``bytes_per_element``.
        """
        seq_len, bpe, sbpe = check_state_sizes(seq_len, bytes_per_element, state_bytes_per_element)
        h, f, d = self.n_heads, self.n_features, self.head_dim
        per_layer = h * f * d * sbpe
        if self.attention == "linear":
            per_layer += h * f * sbpe
        else:
            per_layer += 2 * h * d * (seq_len % self.group_size) * bpe
        if self.conv:
            per_layer += h * d * (self.conv_kernel_size - 1) * bpe
        return int(self.n_layers * per_layer)

    def state_signature(self) -> tuple:
        """The options that decide what the decode state means (sizes, attention, φ, groups, conv, positions)."""
        return (self.d_model, self.n_layers, self.n_heads, self.attention, self.feature_map, self.normalize_qk,
                self.group_size if self.attention == "grouped" else None, self.conv,
                self.conv_kernel_size if self.conv else None, self.pos, self.rope_base)

    def linear_backend(self, device: torch.device) -> str | None:
        """``backend=`` of the linear-attention kernel: PyTorch on a CPU or for a chunk the kernel lacks."""
        if self.attn_backend is not None:
            return self.attn_backend
        if device.type == "cpu" or self.chunk_size not in _kernels().KERNEL_CHUNK_SIZES:
            return "torch"
        return None

    def conv_backend(self, x: torch.Tensor) -> str | None:
        """``backend=`` of the convolution kernel: PyTorch on a CPU and for float64."""
        if self.attn_backend is not None:
            return self.attn_backend
        return "torch" if x.device.type == "cpu" or x.dtype == torch.float64 else None


# ----------------------------------------------------------------------------------------------
# Decode state
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class LinearizedLayerState:
    """One layer's decode state (never modified in place).

    Attributes:
        s: ``(B, H, F, D)``: grouped: the sum of ``φ(k) vᵀ`` over *completed* groups; linear:
            over every token. float32 (float64 for a float64 model).
        z: ``(B, H, F)`` the sum of ``φ(k)`` (``attention="linear"``), else None.
        keys, values: ``(B, H, T mod g, D)`` the current partial group (``"grouped"``), else None.
        conv: ``(B, K-1, H·D)`` the last ``K - 1`` values, oldest first (``conv=True``), else None.
    """

    s: torch.Tensor
    z: torch.Tensor | None = None
    keys: torch.Tensor | None = None
    values: torch.Tensor | None = None
    conv: torch.Tensor | None = None


class LinearizedTreeStates(TreeStates):
    """What :meth:`Linearized.tree_step` keeps to commit an accepted path without another pass.

    Attributes:
        keys, values: one ``(B, H, N, D)`` tensor per layer: every tree node's key (after RoPE and
            normalization) and value; from them :meth:`Linearized.commit_tree` builds each
            layer's recurrent state ``S`` (and ``z``), partial group and conv buffer for a path.
        parents: the tree's parent array (length ``N``).
        position: the cache position the tree was verified at.
    """


@dataclasses.dataclass
class LinearizedCache(DecodeCache):
    """The decoding state of a ``"linearized"`` model: one :class:`LinearizedLayerState` per layer.

    ``position`` is the number of tokens consumed (the next token's absolute position). Its size
    is bounded: ``S`` (and ``z``), fewer than ``g`` keys and values, and ``K - 1`` conv inputs.
    """

    layers: list[LinearizedLayerState]
    position: int
    #: The state-shaping options of the model that made it (:meth:`LinearizedConfig.state_signature`),
    #: checked by the model it is passed to; None skips that check.
    signature: tuple | None = None

    @property
    def batch_size(self) -> int:
        """``B``."""
        return int(self.layers[0].s.shape[0]) if self.layers else 0


# ----------------------------------------------------------------------------------------------
# The attention layer
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Tree:
    """A validated draft tree: depths ``(N,)``, ancestor-or-self mask ``(N, N)``, root paths."""

    depths: torch.Tensor
    ancestors: torch.Tensor
    paths: list[list[int]]
    _conv_index: dict = dataclasses.field(default_factory=dict)

    def conv_index(self, kk: int) -> torch.Tensor:
        """``(N, K)`` rows into ``[conv buffer (K-1) | nodes (N)]``: node ``i``'s tap ``K-1-s`` reads
        its ancestor ``s`` steps up, or the buffer once the path runs out (computed once per tree)."""
        if kk not in self._conv_index:
            n = len(self.paths)
            index = torch.empty(n, kk, dtype=torch.long)
            for i, path in enumerate(self.paths):
                depth = len(path) - 1
                for tap in range(kk):  # tap K-1 is the node itself, tap K-1-s is s steps back
                    back = kk - 1 - tap
                    index[i, tap] = kk - 1 + path[depth - back] if back <= depth else kk - 1 - (back - depth)
            self._conv_index[kk] = index.to(self.depths.device)
        return self._conv_index[kk]


def _make_tree(parents: Any, n: int, device: torch.device) -> _Tree:
    if isinstance(parents, torch.Tensor):
        parents = parents.detach().cpu().tolist()
    try:
        par = [int(p) for p in parents]
        if any(float(p) != int(p) for p in parents):
            raise TypeError
    except (TypeError, ValueError) as err:
        raise ValueError(f"parents must be a 1-D sequence of ints of length N = {n}, got {parents!r}") from err
    if len(par) != n:
        raise ValueError(f"parents must have length N = {n} (one per node of token_tree), got {len(par)}")
    paths: list[list[int]] = []
    for i, p in enumerate(par):
        if not -1 <= p < i:
            raise ValueError(f"parents[{i}] must be -1 (a root) or a node index in [0, {i}), got {p}")
        paths.append(([] if p < 0 else paths[p]) + [i])
    anc = torch.zeros(n, n, dtype=torch.bool, device=device)
    for i, path in enumerate(paths):
        anc[i, path] = True
    depths = torch.tensor([len(p) - 1 for p in paths], dtype=torch.long, device=device)
    return _Tree(depths, anc, paths)


class LinearizedAttention(nn.Module):
    """Grouped or plain linear attention plus a causal DWConv over v; ``(B, T, C) -> (B, T, C)``.

    Parameters: ``q_proj``, ``k_proj``, ``v_proj`` (``C -> H·D``), ``out_proj`` (``H·D -> C``), all
    without bias; ``conv_weight`` ``(H, K)`` (official, ``conv_filters="head"``) or ``(H·D, K)``
    (``"channel"``), None without ``conv``; ``alpha`` ``(1,)`` (official, ``alpha_per="layer"``)
    or ``(H,)`` (``"head"``), None for ``attention="linear"``; ``local_factor`` ``(1,)`` or None.
    """

    def __init__(self, cfg: LinearizedConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h, hd = cfg.n_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, h * hd, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, h * hd, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, h * hd, bias=False)
        self.out_proj = nn.Linear(h * hd, cfg.d_model, bias=False)
        if cfg.conv:
            weight = torch.zeros(h if cfg.conv_filters == "head" else h * hd, cfg.conv_kernel_size)
            if cfg.conv_init == "normal":
                nn.init.normal_(weight, std=1.0 / math.sqrt(cfg.conv_kernel_size))
            self.conv_weight = nn.Parameter(weight)
        else:
            self.register_parameter("conv_weight", None)
        if cfg.attention == "grouped":
            self.alpha = nn.Parameter(torch.full((1 if cfg.alpha_per == "layer" else h,), float(cfg.alpha_init)))
        else:
            self.register_parameter("alpha", None)
        if cfg.local_factor:
            self.local_factor = nn.Parameter(torch.ones(1))
        else:
            self.register_parameter("local_factor", None)

    def channel_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The convolution's filter per value channel, ``(H·D, K)`` (channel ``h·D + d``).

        With ``conv_filters="head"`` each head's filter is repeated for its ``D`` channels.
        """
        w = self.conv_weight if dtype is None else self.conv_weight.to(dtype)
        if self.cfg.conv_filters == "head":
            w = w.repeat_interleave(self.cfg.head_dim, dim=0)
        return w

    # -- pieces -------------------------------------------------------------------------------

    def project(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``q, k, v`` ``(B, H, T, D)`` of ``x`` ``(B, T, C)`` at absolute ``positions`` ``(T,)``:
        RoPE (``pos="rope"``), then L2 normalization of q and k (``normalize_qk``)."""
        cfg = self.cfg
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        if cfg.pos == "rope":
            cos, sin = rope_cos_sin(positions, cfg.head_dim, base=cfg.rope_base, dtype=x.dtype)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cfg.normalize_qk:
            q, k = F.normalize(q, dim=-1, eps=1e-12), F.normalize(k, dim=-1, eps=1e-12)
        return q, k, v

    def _local_weights(self, qk: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """In-group weights from raw ``q·k`` and a boolean mask (broadcastable)."""
        if self.cfg.local == "relu2":
            return F.relu(qk).square() * mask
        scores = (qk / math.sqrt(self.cfg.head_dim)).masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=-1)

    def _alpha(self, compute: torch.dtype) -> torch.Tensor:
        return self.alpha.to(compute)[:, None, None]  # (H, 1, 1) or (1, 1, 1)

    def _local_scale(self, local: torch.Tensor) -> torch.Tensor:
        return local if self.local_factor is None else local * self.local_factor.to(local.dtype)

    def _grouped(self, q, k, v, state: LinearizedLayerState | None, keep_state: bool):
        """Grouped attention of new tokens after ``state``; the partial group is re-attended."""
        cfg = self.cfg
        g = cfg.group_size
        compute = torch.float64 if v.dtype == torch.float64 else torch.float32
        b, h, t, d = q.shape
        f = cfg.n_features
        if state is None:
            s0 = torch.zeros(b, h, f, d, dtype=compute, device=q.device)
            kc, vc = k[:, :, :0], v[:, :, :0]
        else:
            s0, kc, vc = state.s.to(compute), state.keys.to(k.dtype), state.values.to(v.dtype)
        n = kc.shape[2]  # tokens of the current group before this call (position % g)
        k_all = torch.cat([kc, k], dim=2).to(compute)
        v_all = torch.cat([vc, v], dim=2).to(compute)
        q_all = torch.cat([q.new_zeros(b, h, n, d), q], dim=2).to(compute)  # dummy queries, dropped
        length = n + t
        groups = -(-length // g)
        pad = groups * g - length
        if pad:
            q_all, k_all, v_all = (F.pad(z, (0, 0, 0, pad)) for z in (q_all, k_all, v_all))
        qg = q_all.reshape(b, h, groups, g, d)
        kg = k_all.reshape(b, h, groups, g, d)
        vg = v_all.reshape(b, h, groups, g, d)
        mask = torch.ones(g, g, dtype=torch.bool, device=q.device).tril()
        local = self._local_scale(self._local_weights(qg @ kg.transpose(-1, -2), mask) @ vg)  # (B, H, N, g, D)
        fq, fk = feature_map_torch(qg, cfg.feature_map), feature_map_torch(kg, cfg.feature_map)
        # padded keys have zero values, so φ(0) ≠ 0 adds nothing to the group states
        group_states = fk.transpose(-1, -2) @ vg  # (B, H, N, F, D)
        before = torch.cumsum(group_states, dim=2) - group_states + s0[:, :, None]  # exclusive + S0
        out = local + self._alpha(compute)[:, None] * (fq @ before)
        out = out.reshape(b, h, groups * g, d)[:, :, n : n + t].to(v.dtype)
        new_state = None
        if keep_state:
            complete = length // g
            s_new = s0 + group_states[:, :, :complete].sum(dim=2)
            start = complete * g
            keys = torch.cat([kc, k], dim=2)[:, :, start:length]
            values = torch.cat([vc, v], dim=2)[:, :, start:length]
            new_state = LinearizedLayerState(s=s_new, keys=keys.contiguous(), values=values.contiguous())
        return out, new_state

    def _linear(self, q, k, v, state: LinearizedLayerState | None, keep_state: bool):
        """Plain causal linear attention (as :class:`~linattn_edu.models.LinearAttention`)."""
        cfg = self.cfg
        kernels = _kernels()
        b, h, t, _ = q.shape
        fq, fk = feature_map_torch(q, cfg.feature_map), feature_map_torch(k, cfg.feature_map)
        compute = torch.float64 if fq.dtype == torch.float64 else torch.float32
        if state is not None and t == 1:
            o, st = kernels.linear_attention_step(
                fq[:, :, 0], fk[:, :, 0], v[:, :, 0], (state.s, state.z), normalize=cfg.normalize, eps=cfg.eps
            )
            return o[:, :, None], (LinearizedLayerState(s=st[0], z=st[1]) if keep_state else None)
        backend = cfg.linear_backend(q.device)
        if state is None:
            o = kernels.chunked_linear_attention(
                fq, fk, v, chunk_size=cfg.chunk_size, normalize=cfg.normalize, eps=cfg.eps, backend=backend
            )
        else:
            s0, z0 = state.s.to(compute), state.z.to(compute)
            fq_c, fk_c, v_c = fq.to(compute), fk.to(compute), v.to(compute)
            ones = torch.ones(b, h, t, 1, dtype=compute, device=q.device)
            y = kernels.chunked_linear_attention(
                fq_c, fk_c, torch.cat([v_c, ones], dim=-1), chunk_size=cfg.chunk_size, normalize=False,
                backend=backend,
            )
            num = y[..., :-1] + fq_c @ s0
            den = y[..., -1:] + fq_c @ z0[..., None]
            o = (num / (den + cfg.eps) if cfg.normalize else num).to(v.dtype)
        new_state = None
        if keep_state:
            fk_c, v_c = fk.to(compute), v.to(compute)
            s, z = fk_c.transpose(-1, -2) @ v_c, fk_c.sum(dim=2)
            if state is not None:
                s, z = s + state.s.to(compute), z + state.z.to(compute)
            new_state = LinearizedLayerState(s=s, z=z)
        return o, new_state

    def _conv(self, v_flat: torch.Tensor, conv_state: torch.Tensor | None, keep_state: bool):
        """Causal DWConv of ``v_flat`` ``(B, T, H·D)`` after ``conv_state`` ``(B, K-1, H·D)``."""
        kernels = _kernels()
        kk = self.cfg.conv_kernel_size
        w = self.channel_weight(v_flat.dtype)
        if conv_state is not None and v_flat.shape[1] == 1:
            y, new = kernels.causal_conv1d_step(v_flat[:, 0], conv_state.to(v_flat.dtype), w)
            return y[:, None], new
        backend = self.cfg.conv_backend(v_flat)
        if not self.cfg.conv_causal:  # centered (leaky): a causal conv of v shifted K//2 steps left
            half = kk // 2
            y = kernels.causal_conv1d(F.pad(v_flat, (0, 0, 0, half)), w, backend=backend)[:, half:]
            return y, None
        if conv_state is None:
            y = kernels.causal_conv1d(v_flat, w, backend=backend)
            full = F.pad(v_flat, (0, 0, kk - 1, 0))
        else:
            full = torch.cat([conv_state.to(v_flat.dtype), v_flat], dim=1)
            y = kernels.causal_conv1d(full, w, backend=backend)[:, kk - 1 :]
        new = full[:, full.shape[1] - (kk - 1) :].contiguous() if keep_state else None
        return y, new

    # -- forward ------------------------------------------------------------------------------

    def forward(
        self, x: torch.Tensor, state: LinearizedLayerState | None = None, *, position: int = 0,
        keep_state: bool = True,
    ) -> tuple[torch.Tensor, LinearizedLayerState | None]:
        """x ``(B, T, C)`` at absolute positions ``position .. position+T-1`` after ``state``.

        Returns ``(y (B, T, C), new state or None)``. The state passed in is not modified.
        """
        cfg = self.cfg
        b, t, _ = x.shape
        positions = torch.arange(position, position + t, device=x.device)
        q, k, v = self.project(x, positions)
        if cfg.attention == "grouped":
            o, new_state = self._grouped(q, k, v, state, keep_state)
        else:
            o, new_state = self._linear(q, k, v, state, keep_state)
        o = o.transpose(1, 2).reshape(b, t, cfg.n_heads * cfg.head_dim)
        if cfg.conv:
            v_flat = v.transpose(1, 2).reshape(b, t, cfg.n_heads * cfg.head_dim)
            y, conv_state = self._conv(v_flat, None if state is None else state.conv, keep_state)
            o = o + y
            if keep_state:
                new_state.conv = conv_state  # type: ignore[union-attr]
        return self.out_proj(o), (new_state if keep_state else None)

    def tree_forward(
        self, x: torch.Tensor, state: LinearizedLayerState, position: int, tree: _Tree
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Draft-tree nodes ``x`` ``(B, N, C)`` after ``state`` (read only): ``((B, N, C), (k, v))``.

        ``k``, ``v`` ``(B, H, N, D)`` are the nodes' keys (after RoPE and normalization) and values:
        :meth:`commit` folds an accepted path of them into the state without another pass.

        Node ``i`` sits at position ``P_i = position + depth_i``; it sees the cached prefix and
        its ancestors (and itself), never other nodes. Grouped: with ``start_i = g·(P_i // g)``,
        every visible token at a position ``>= start_i`` goes to the local branch, every visible
        token before it (the cached partial group and ancestors in a group the path has
        completed) joins ``S`` in the global branch, exactly as step-decoding the root path would
        have folded it. The conv's taps read the node's ancestors, then the cached buffer.
        """
        cfg = self.cfg
        b, n, _ = x.shape
        positions = position + tree.depths
        q, k, v = self.project(x, positions)
        compute = torch.float64 if v.dtype == torch.float64 else torch.float32
        qc, kc, vc = q.to(compute), k.to(compute), v.to(compute)
        fq, fk = feature_map_torch(qc, cfg.feature_map), feature_map_torch(kc, cfg.feature_map)
        anc = tree.ancestors
        if cfg.attention == "grouped":
            m = state.keys.shape[2]
            keys = torch.cat([state.keys.to(compute), kc], dim=2)  # (B, H, m+N, D)
            vals = torch.cat([state.values.to(compute), vc], dim=2)
            key_pos = torch.cat([torch.arange(position - m, position, device=x.device), positions])
            visible = torch.cat([torch.ones(n, m, dtype=torch.bool, device=x.device), anc], dim=1)
            start = (positions // cfg.group_size) * cfg.group_size
            in_group = key_pos[None, :] >= start[:, None]
            local_w = self._local_weights(qc @ keys.transpose(-1, -2), visible & in_group)
            fkeys = feature_map_torch(keys, cfg.feature_map)
            glob_w = (fq @ fkeys.transpose(-1, -2)) * (visible & ~in_group)
            glob = glob_w @ vals + fq @ state.s.to(compute)
            o = self._local_scale(local_w @ vals) + self._alpha(compute) * glob
        else:
            w = (fq @ fk.transpose(-1, -2)) * anc
            num = w @ vc + fq @ state.s.to(compute)
            if cfg.normalize:
                den = w.sum(-1, keepdim=True) + fq @ state.z.to(compute)[..., None]
                num = num / (den + cfg.eps)
            o = num
        o = o.to(v.dtype).transpose(1, 2).reshape(b, n, cfg.n_heads * cfg.head_dim)
        if cfg.conv:
            kk = cfg.conv_kernel_size
            v_flat = v.transpose(1, 2).reshape(b, n, cfg.n_heads * cfg.head_dim)
            src = torch.cat([state.conv.to(v.dtype), v_flat], dim=1)  # (B, K-1+N, C)
            window = src[:, tree.conv_index(kk)]  # (B, N, K, C)
            o = o + (window.to(compute) * self.channel_weight(compute).t()[None, None]).sum(2).to(v.dtype)
        return self.out_proj(o), (k, v)

    def commit(self, state: LinearizedLayerState, k: torch.Tensor, v: torch.Tensor) -> LinearizedLayerState:
        """The state after consuming ``L`` tokens whose keys ``k`` and values ``v`` ``(B, H, L, D)`` are known.

        Exactly the state update of :meth:`forward` with ``keep_state=True`` (no projections, no
        attention): grouped: the partial group grows, every group it completes is folded into
        ``S`` as ``φ(K)ᵀ V``; linear: ``S += φ(k)ᵀ v``, ``z += Σ φ(k)``; conv: the last ``K - 1``
        values. ``state`` is not modified.
        """
        cfg = self.cfg
        b, h, length, d = k.shape
        compute = state.s.dtype
        if cfg.attention == "grouped":
            g = cfg.group_size
            keys = torch.cat([state.keys, k.to(state.keys.dtype)], dim=2)
            values = torch.cat([state.values, v.to(state.values.dtype)], dim=2)
            complete = keys.shape[2] // g
            s = state.s
            if complete:
                kg = keys[:, :, : complete * g].to(compute).reshape(b, h, complete, g, d)
                vg = values[:, :, : complete * g].to(compute).reshape(b, h, complete, g, d)
                s = s + (feature_map_torch(kg, cfg.feature_map).transpose(-1, -2) @ vg).sum(dim=2)
            new = LinearizedLayerState(s=s, keys=keys[:, :, complete * g :].contiguous(),
                                       values=values[:, :, complete * g :].contiguous())
        else:
            fk = feature_map_torch(k, cfg.feature_map).to(compute)
            new = LinearizedLayerState(s=state.s + fk.transpose(-1, -2) @ v.to(compute), z=state.z + fk.sum(dim=2))
        if cfg.conv:
            full = torch.cat([state.conv, v.transpose(1, 2).reshape(b, length, h * d).to(state.conv.dtype)], dim=1)
            new.conv = full[:, full.shape[1] - (cfg.conv_kernel_size - 1) :].contiguous()
        return new


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------


class LinearizedBlock(nn.Module):
    """Pre-norm residual block: ``x + Attn(Norm(x))``, then ``x + MLP(Norm(x))`` (as ``"transformer"``)."""

    def __init__(self, cfg: LinearizedConfig) -> None:
        super().__init__()
        self.norm_attn = make_norm(cfg.norm, cfg.d_model)
        self.attn = LinearizedAttention(cfg)
        self.norm_mlp = make_norm(cfg.norm, cfg.d_model)
        self.mlp = MLP(cfg.d_model, cfg.mlp_ratio, cfg.dropout)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, state, position, keep_state):
        a, st = self.attn(self.norm_attn(x), state, position=position, keep_state=keep_state)
        x = x + self.dropout(a)
        return x + self.mlp(self.norm_mlp(x)), st

    def tree_forward(self, x, state, position, tree):
        a, kv = self.attn.tree_forward(self.norm_attn(x), state, position, tree)
        x = x + self.dropout(a)
        return x + self.mlp(self.norm_mlp(x)), kv


register_family("linearized", label="linearized", color="tab:pink", marker="h")


@register_model("linearized")
class Linearized(TreeLanguageModel):
    """A linearized LM: grouped or linear attention plus a causal DWConv; see the module docstring.

    ``model(tokens)``: ``(B, T)`` int64 -> ``(B, T, vocab_size)``; ``prefill``/``step`` decode with
    a :class:`LinearizedCache` of bounded size; ``tree_step`` verifies a draft tree. Grouped: a
    step attends to the ``< g`` cached keys of its group and to ``S``; when its group completes,
    the group's ``φ(k) vᵀ`` is folded into ``S`` and the keys are dropped. With
    ``conv_causal=False`` only ``forward`` runs (``prefill``/``step``/``tree_step`` raise).
    """

    kind = "linearized"
    config_class = LinearizedConfig
    cache_class = LinearizedCache
    tree_states_class = LinearizedTreeStates

    def _build_blocks(self, cfg: LinearizedConfig) -> list[nn.Module]:
        return [LinearizedBlock(cfg) for _ in range(cfg.n_layers)]

    def _new_cache(self, layers: list[Any], position: int) -> LinearizedCache:
        return LinearizedCache(layers, position, self.config.state_signature())

    def _check_decodable(self) -> None:
        if not self.config.conv_causal:
            raise ValueError("conv_causal=False: a centered convolution reads future tokens, so this model "
                             "cannot decode (prefill/step/tree_step); it exists only to show the leak")

    def _tree_forward(self, tokens: torch.Tensor, parents: Any, cache: LinearizedCache
                      ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], list[int]]:
        """The tree pass (see :meth:`tree_step`): each node's logits equal those of ``step``-decoding
        its root path after ``cache`` (see :meth:`LinearizedAttention.tree_forward` for how each
        branch, including one crossing a group boundary, sees exactly that path); ``parents[i]``
        must be ``-1`` or a node index ``< i``."""
        tree = _make_tree(parents, tokens.shape[1], tokens.device)
        x = self.tok_emb(tokens)
        node_keys, node_values = [], []
        for i, block in enumerate(self.blocks):
            x, (k, v) = block.tree_forward(x, cache.layers[i], cache.position, tree)
            node_keys.append(k)
            node_values.append(v)
        logits = self.lm_head(self.norm_out(x))
        return logits, node_keys, node_values, [p[-2] if len(p) > 1 else -1 for p in tree.paths]

    def _commit(self, cache: LinearizedCache, states: TreeStates, index: torch.Tensor) -> LinearizedCache:
        """Per layer the path's keys and values folded in by :meth:`LinearizedAttention.commit`
        (groups completed into ``S``, the conv buffer shifted)."""
        layers = [
            block.attn.commit(layer, k.index_select(2, index), v.index_select(2, index))
            for block, layer, k, v in zip(self.blocks, cache.layers, states.keys, states.values)
        ]
        return LinearizedCache(layers, cache.position + len(index), self.config.state_signature())

    def _check_cache_layers(self, cache: LinearizedCache, batch: int) -> None:
        cfg = self.config
        self._check_batch(cache, batch)
        if cache.signature is not None and cache.signature != cfg.state_signature():
            names = ("d_model", "n_layers", "n_heads", "attention", "feature_map", "normalize_qk", "group_size",
                     "conv", "conv_kernel_size", "pos", "rope_base")
            diff = [f"{n}={a!r} (this model: {b!r})" for n, a, b in zip(names, cache.signature, cfg.state_signature())
                    if a != b]
            raise ValueError(f"cache comes from a differently configured 'linearized' model: {', '.join(diff)}")
        h, d, f = cfg.n_heads, cfg.head_dim, cfg.n_features
        for i, layer in enumerate(cache.layers):
            problem = None
            if tuple(layer.s.shape[1:]) != (h, f, d):
                problem = f"S of shape (B, {h}, {f}, {d}), got {tuple(layer.s.shape)}"
            elif (layer.z is None) != (cfg.attention == "grouped") or (layer.keys is None) != (cfg.attention == "linear"):
                problem = f"the state of attention={cfg.attention!r}"
            elif cfg.attention == "grouped" and (tuple(layer.keys.shape[1:2]) + tuple(layer.keys.shape[3:]) != (h, d)
                                                 or layer.keys.shape[2] >= cfg.group_size
                                                 or layer.keys.shape[2] != cache.position % cfg.group_size):
                problem = (f"a partial group of position % group_size = {cache.position % cfg.group_size} keys "
                           f"(B, {h}, ., {d}), got {tuple(layer.keys.shape)}")
            elif (layer.conv is None) == cfg.conv:
                problem = "a conv buffer" if cfg.conv else "no conv buffer (conv=False)"
            elif cfg.conv and tuple(layer.conv.shape[1:]) != (cfg.conv_kernel_size - 1, h * d):
                problem = (f"a conv buffer of shape (B, {cfg.conv_kernel_size - 1}, {h * d}), "
                           f"got {tuple(layer.conv.shape)}")
            if problem is not None:
                raise ValueError(f"cache does not fit this model (a cache from a differently configured "
                                 f"'linearized' model?): layer {i} should hold {problem}")

    def extra_repr(self) -> str:
        cfg = self.config
        extra = f", group_size={cfg.group_size}, local={cfg.local!r}" if cfg.attention == "grouped" else ""
        conv = f"conv K={cfg.conv_kernel_size} per {cfg.conv_filters}" if cfg.conv else "no conv"
        return f"attention={cfg.attention!r}{extra}, feature_map={cfg.feature_map!r}, {conv}, pos={cfg.pos!r}"


def linearize(transformer: nn.Module, *, attention: str = "grouped", conv: bool = True, **options: Any) -> Linearized:
    """A ``"linearized"`` model with the sizes and weights of a trained ``"transformer"``.

    Copies the token embedding, every norm, MLP, the LM head and the attention projections
    (``q_proj``; ``kv_proj`` split into ``k_proj`` and ``v_proj``, each key/value head repeated
    for the ``n_heads / n_kv_heads`` query heads it serves under grouped-query attention;
    ``out_proj``). The DWConv kernel and ``α`` start at zero (``conv_init="zero"``,
    ``alpha_init=0.0``, which ``options`` may override), so the converted model is the purely
    local attention (grouped) at first. The result has the transformer's dtype and device.

    Args:
        transformer: a zoo ``"transformer"`` with ``pos="rope"`` or ``"none"``.
        attention, conv, ``**options``: options of :class:`LinearizedConfig` (not the sizes, ``pos``,
            ``rope_base``, ``norm``, ``mlp_ratio``, ``tie_embeddings``: those come from the
            transformer).

    Raises:
        TypeError: ``transformer`` is not a zoo ``"transformer"``.
        ValueError: its ``pos`` is not ``"rope"`` or ``"none"``, or an option conflicts.
    """
    if getattr(transformer, "kind", None) != "transformer" or not hasattr(transformer, "config"):
        raise TypeError(f"transformer must be a zoo 'transformer' model, got {type(transformer).__name__}")
    src = transformer.config
    if src.pos not in LINEARIZED_POSITIONS:
        raise ValueError(f"transformer's pos must be one of {list(LINEARIZED_POSITIONS)} to linearize, got {src.pos!r}")
    inherited = dict(
        vocab_size=src.vocab_size, d_model=src.d_model, n_layers=src.n_layers, n_heads=src.n_heads, pos=src.pos,
        rope_base=src.rope_base, norm=src.norm, mlp_ratio=src.mlp_ratio, tie_embeddings=src.tie_embeddings,
    )
    clash = sorted(set(options) & set(inherited))
    if clash:
        raise ValueError(f"options {clash} come from the transformer and cannot be set when linearizing")
    options.setdefault("conv_init", "zero")
    options.setdefault("alpha_init", 0.0)
    options.setdefault("dropout", src.dropout)
    param = next(transformer.parameters())
    model = build_model("linearized", attention=attention, conv=conv, **inherited, **options)
    model = model.to(dtype=param.dtype, device=param.device)
    h, h_kv, hd, d = src.n_heads, src.n_kv_heads, src.head_dim, src.d_model
    rep = h // h_kv
    with torch.no_grad():
        model.tok_emb.weight.copy_(transformer.tok_emb.weight)
        model.norm_out.load_state_dict(transformer.norm_out.state_dict())
        if not src.tie_embeddings:
            model.lm_head.weight.copy_(transformer.lm_head.weight)
        for mine, theirs in zip(model.blocks, transformer.blocks):
            mine.norm_attn.load_state_dict(theirs.norm_attn.state_dict())
            mine.norm_mlp.load_state_dict(theirs.norm_mlp.state_dict())
            mine.mlp.load_state_dict(theirs.mlp.state_dict())
            mine.attn.q_proj.weight.copy_(theirs.attn.q_proj.weight)
            mine.attn.out_proj.weight.copy_(theirs.attn.out_proj.weight)
            kv = theirs.attn.kv_proj.weight.view(2, h_kv, hd, d)  # rows: [k heads..., v heads...]
            mine.attn.k_proj.weight.copy_(kv[0].repeat_interleave(rep, dim=0).reshape(h * hd, d))
            mine.attn.v_proj.weight.copy_(kv[1].repeat_interleave(rep, dim=0).reshape(h * hd, d))
    return model
