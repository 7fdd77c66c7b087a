"""Linear-attention language models: a plain linear Transformer and the Based architecture.

Two kinds, both with the zoo's decoding interface (``model(tokens)``, ``model.prefill(tokens)``,
``model.step(token, cache)``; see :mod:`linattn_edu.models.common`):

``build_model("linear", vocab_size=..., d_model=..., n_layers=..., n_heads=..., feature_map="elu")``
    A Transformer whose softmax attention is replaced by causal linear attention (Katharopoulos
    et al., 2020)::

        x = token_embedding(tokens)                     # no position encoding at all
        for each layer:
            x = x + LinearAttention(Norm(x))
            x = x + MLP(Norm(x))
        logits = LMHead(Norm(x))                        # tied to the embedding by default

``build_model("based", vocab_size=..., d_model=..., n_layers=..., n_heads=...)``
    Based (Arora et al., ICML 2024): a stack mixing three *sequence mixers*, each in its own
    pre-norm residual sublayer, then an MLP per block::

        for each layer, for each mixer named in layer_pattern[layer] (e.g. "conv+linear"):
            x = x + Mixer(Norm(x))
        x = x + MLP(Norm(x))

The three mixers, each a map ``(B, T, C) -> (B, T, C)`` with a decode state:

``"linear"`` — linear attention (:class:`LinearAttention`)
    Per head, q and k are projected to ``feature_dim`` dims (16 by default) and passed through a
    feature map φ (``feature_map=``: ``"elu"`` ``elu(x)+1``, ``"relu"``, ``"identity"``,
    ``"taylor"`` the Based 2nd-order Taylor map with ``F = 1 + d + d²`` features, or
    ``"taylor_compact"``, the same dot products with ``1 + d + d(d+1)/2``); v is projected to the
    head dim ``D = d_model / n_heads``. Then ``o_i = φ(q_i)ᵀ S_i / (φ(q_i)ᵀ z_i + eps)`` through
    :func:`~linattn_edu.kernels.chunked_linear_attention` (``normalize=False``: no denominator).
    Decode state per layer: ``S (B, H, F, D)`` and ``z (B, H, F)``, float32 (float64 for a float64
    model), the same size after 10 tokens or 10 million.
    With ``"identity"`` the weights ``q·k`` can be negative and the denominator can cross zero:
    training is unstable, which is the point of comparing feature maps.
``"window"`` — sliding-window softmax attention (:class:`WindowAttention`)
    Multi-head attention in which query ``i`` sees the ``window`` keys ``i - window < j <= i``
    (itself included), through :func:`~linattn_edu.kernels.flash_attention` with ``window=``.
    RoPE on q and k (base ``rope_base``) as in the official Based code. Decode state: the last
    ``window`` keys and values, ``(B, H, min(T, window), D)`` each: bounded. **Window
    conventions:** ``window=w`` counts the current key. The official Based config's
    ``window_size: 256`` means 128 previous keys plus the current one: ``window=129`` here;
    Zoology's ``SlidingAttn(block_size=b)`` sees ``b`` previous keys plus the current one:
    ``window=b + 1``.
``"conv"`` — short gated convolution (``conv_form=`` picks the module)
    ``"based"`` (default): the official Based LM's BaseConv (:class:`BaseConv`,
    ``based/models/mixers/convolution.py``): ``OutProj(silu(conv(u1)) ⊙ u2)`` with
    ``[u1, u2] = InProj(x)`` (``C -> 2C``, split in halves) and a causal depthwise convolution of
    ``conv_kernel_size`` taps (3) **without bias**. ``"zoology"``: Zoology's BaseConv
    (:class:`ZoologyBaseConv`, ``zoology/mixers/base_conv.py``): ``conv(x) ⊙ Proj(x) + x``, the
    conv with a bias. ``"book"``: this book's own :class:`ShortConv` (``OutProj(Gate(x) ⊙
    conv(In(x)))``, no SiLU, conv with bias), kept as a named variant; it is not an official
    form. Decode state of each: the last ``kernel_size - 1`` conv inputs ``(B, C, kernel_size -
    1)`` (zeros before the sequence starts), constant.

**The layer pattern** (``layer_pattern=``, one entry per layer, each mixer names joined by
``"+"``). The official 360M Based model repeats a period of five layers ``conv, linear, window,
conv, conv`` (linear attention at layers 1, 6, 11, …, sliding window at 2, 7, 12, …, BaseConv
elsewhere): one mixer per layer. That period needs at least three layers; for smaller models
the default is this book's choice:

- ``n_layers = 1``: ``["conv+linear"]`` (the book's: two mixers in one layer);
- ``n_layers = 2``: ``["conv+linear", "conv+window"]`` (the book's: a short convolution before
  each of one linear-attention and one sliding-window mixer, so a 2-layer model has all three
  ingredients);
- ``n_layers >= 3``: the official period, ``layer_pattern[i] = ("conv", "linear", "window",
  "conv", "conv")[i % 5]``.

**Zoology's MQAR models** (the Based paper's recall experiments were run with the Zoology code)
have one mixer per layer, layer ``i`` taking ``configs[i % len(configs)]``
(:func:`zoology_layer_pattern`); the paper's 2-layer MQAR model is Zoology's BaseConv in layer 0
and Taylor linear attention in layer 1, no MLP, no window. :data:`ZOOLOGY_MQAR_MODELS` and
:func:`zoology_mqar_options` name it and the other MQAR families in that form::

    build_model("based", vocab_size=8192, d_model=64, n_layers=2, n_heads=1,
                **zoology_mqar_options("based", feature_dim=16))

Note that a window at least as long as the sequence makes the window mixer full softmax
attention: for recall-vs-state experiments keep ``window`` well below ``seq_len``.

**MLP** (``mlp=``): ``"gelu"`` (the zoo's :class:`~linattn_edu.models.common.MLP`), ``"swiglu"``
(:class:`GatedMLP`, as in the official Based code; ``mlp_ratio · d_model`` projected units split
into value and gate halves), ``"none"`` (no second sublayer) or ``"identity"`` (what Zoology's
MQAR models run: ``state_mixer=torch.nn.Identity`` in its ``TransformerBlock``, so the second
sublayer adds ``Norm(x)`` to the residual stream; no parameters besides the norm).

**Backends.** ``attn_backend=None`` uses the PyTorch paths of both kernels on a CPU (the Triton
interpreter is far too slow inside a model) and lets the kernels choose on a GPU; float64 always
takes the PyTorch path. ``chunk_size`` values the Triton kernel lacks, and window head dims the
flash kernel lacks, also fall back to PyTorch automatically. ``"torch"``, ``"triton"`` and
``"interpreter"`` force a path.
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
from ..reference.alibi import alibi_slopes
from .common import (DecodeCache, MLP, NORMS, HeadsConfig, LanguageModel, apply_rope, check_state_sizes,
                     make_norm, periodic_layer_pattern, rope_cos_sin)
from .registry import register_family, register_model

__all__ = [
    "LINEAR_FEATURE_MAPS",
    "MIXERS",
    "WINDOW_POSITIONS",
    "MLP_KINDS",
    "ATTN_BACKENDS",
    "feature_map_torch",
    "CONV_FORMS",
    "default_layer_pattern",
    "zoology_layer_pattern",
    "ZOOLOGY_MQAR_MODELS",
    "zoology_mqar_options",
    "GatedMLP",
    "BaseConv",
    "ZoologyBaseConv",
    "ShortConv",
    "LinearAttention",
    "WindowAttention",
    "LinearConfig",
    "BasedConfig",
    "MixerCache",
    "LinearTransformer",
    "Based",
]

#: Values of the ``feature_map=`` option.
LINEAR_FEATURE_MAPS = ("elu", "relu", "identity", "taylor", "taylor_compact")
#: Sequence mixers a ``layer_pattern`` entry may name (joined with ``"+"``).
MIXERS = ("conv", "linear", "window")
#: Values of the ``window_pos=`` option (position encoding of the ``"window"`` mixer); ``"none"``
#: is Zoology's attention, which has no position encoding (the convolution supplies order).
WINDOW_POSITIONS = ("rope", "alibi", "none")
#: Values of the ``mlp=`` option; ``"identity"`` is Zoology's ``state_mixer=torch.nn.Identity``.
MLP_KINDS = ("gelu", "swiglu", "none", "identity")
#: Values of the ``conv_form=`` option: the module behind every ``"conv"`` mixer.
CONV_FORMS = ("based", "zoology", "book")
#: Values of the ``attn_backend=`` option (None: per device, see the module docstring).
ATTN_BACKENDS = (None, "triton", "interpreter", "torch")

_BASED_PERIOD = ("conv", "linear", "window", "conv", "conv")


def _kernels() -> Any:
    """Import the kernels lazily, so that importing the models does not import Triton."""
    from .. import kernels

    return kernels


# ----------------------------------------------------------------------------------------------
# Feature maps in torch (the NumPy references are in linattn_edu.reference.linear)
# ----------------------------------------------------------------------------------------------


def feature_map_torch(x: torch.Tensor, feature_map: str) -> torch.Tensor:
    """Apply a named feature map to the last dim: ``(..., d) -> (..., F)``, differentiable.

    Same numbers as :data:`linattn_edu.reference.FEATURE_MAPS` (the NumPy references).
    ``"taylor"``: ``[1, x / d^{1/4}, vec(x xᵀ) / (√2·√d)]`` so ``φ(q)·φ(k) = 1 + s + s²/2`` with
    ``s = q·k/√d``; ``"taylor_compact"`` keeps the upper triangle of ``x xᵀ`` (``np.triu_indices``
    order), off-diagonal entries scaled by ``√2``.

    Raises:
        ValueError: unknown ``feature_map``.
        TypeError: ``x`` is not a floating tensor.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor (..., d), got {type(x).__name__}")
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must have shape (..., d) with d >= 1, got shape {tuple(x.shape)}")
    if feature_map == "elu":
        return F.elu(x) + 1.0
    if feature_map == "relu":
        return F.relu(x)
    if feature_map == "identity":
        return x
    if feature_map in ("taylor", "taylor_compact"):
        d = x.shape[-1]
        ones = torch.ones_like(x[..., :1])
        linear = x / d**0.25
        # Scale *before* the outer product: x xᵀ overflows float16 at |x| >= 256 although the
        # scaled features are still representable (up to |x| ≈ 256·(2d)^{1/4}).
        if feature_map == "taylor":
            xs = x / math.sqrt(math.sqrt(2.0) * math.sqrt(d))  # xs_a·xs_b = x_a·x_b / (√2·√d)
            quad = (xs[..., :, None] * xs[..., None, :]).flatten(-2)
        else:
            rows, cols = torch.triu_indices(d, d, device=x.device)
            xs = linear  # x / d^{1/4}: xs_a·xs_b = x_a·x_b / √d, the off-diagonal weight (√2 · 1/(√2·√d))
            quad = xs[..., rows] * xs[..., cols]
            quad = torch.where(rows == cols, quad / math.sqrt(2.0), quad)  # diagonal: 1/(√2·√d)
        return torch.cat([ones, linear, quad], dim=-1)
    raise ValueError(f"feature_map must be one of {list(LINEAR_FEATURE_MAPS)}, got {feature_map!r}")


def default_layer_pattern(n_layers: int) -> list[str]:
    """The default ``layer_pattern`` of ``"based"`` (see the module docstring).

    ``["conv+linear"]`` for 1 layer and ``["conv+linear", "conv+window"]`` for 2 (this book's
    choice: the official period does not fit), and the official period ``conv, linear, window,
    conv, conv`` repeated for 3 or more (one mixer per layer).

    Raises:
        ValueError: ``n_layers`` is not a positive int.
    """
    return periodic_layer_pattern(n_layers, _BASED_PERIOD, {1: ["conv+linear"], 2: ["conv+linear", "conv+window"]})


def zoology_layer_pattern(configs: list[str] | tuple[str, ...], n_layers: int) -> list[str]:
    """A ``layer_pattern`` with one mixer entry per layer, picked as Zoology's ``Hybrid`` picks it.

    Zoology (``zoology/mixers/hybrid.py``, class ``Hybrid``) gives layer ``i`` the mixer
    ``configs[i % len(configs)]``; with ``configs=["conv", "linear"]`` and 2 layers that is the
    Based paper's MQAR model: BaseConv in layer 0, linear attention in layer 1.

    Args:
        configs: mixer entries (each a name of :data:`MIXERS`, or several joined with ``"+"``).
        n_layers: number of layers.

    Returns:
        ``[configs[i % len(configs)] for i in range(n_layers)]``.

    Raises:
        ValueError: ``configs`` empty or not strings, ``n_layers`` not a positive int.
    """
    _positive_int(n_layers, "n_layers")
    if isinstance(configs, str) or not isinstance(configs, (list, tuple)) or not configs \
            or not all(isinstance(c, str) for c in configs):
        raise ValueError(f"configs must be a non-empty list of mixer entries from {list(MIXERS)}, got {configs!r}")
    return [configs[i % len(configs)] for i in range(n_layers)]


#: Options every Zoology-style MQAR model shares: Zoology's BaseConv, LayerNorm, no MLP, attention
#: without position encoding, ``eps=1e-12``. Zoology's code literally runs ``state_mixer=Identity``,
#: whose block adds ``Norm(x)`` to the stream; ``mlp="identity"`` reproduces that exactly (checked
#: against a transcription), but the book's default is ``mlp="none"`` (the paper's "no MLP"):
#: measured on this book's CPU budget (MQAR L=64, 8 pairs, 800 steps of 32, d_model 64, 2 heads,
#: 2026-12-03), the identity sublayer kept the Taylor d=4 model at 0.14 accuracy, against 0.81
#: with ``mlp="none"``. Pass ``mlp="identity"`` for Zoology's exact forward.
ZOOLOGY_COMMON: dict[str, Any] = {"conv_form": "zoology", "mlp": "none", "norm": "layernorm",
                                   "conv_kernel_size": 3, "window_pos": "none", "eps": 1e-12}

#: Zoology-style MQAR models by name: the ``configs`` cycled over the layers
#: (:func:`zoology_layer_pattern`) and their own options. ``"based"`` is the Based paper's MQAR model
#: (``zoology/experiments/arxiv24_based_figure2/configs.py``: ``Hybrid([BaseConv(kernel_size=3),
#: Based(feature_name="taylor_exp")])``, 2 layers, no MLP, no window; the paper sweeps
#: ``feature_dim`` over 8, 16, 24); ``"linear_taylor"`` is the same model (the book's family name);
#: ``"attention"`` (``MHA``), ``"sliding_window"`` (``SlidingAttn``) and ``"linear_elu"`` put
#: the other mixers after the same BaseConv. ``window`` of ``"attention"`` is the sequence length;
#: ``"sliding_window"`` defaults to Zoology's ``block_size=64``, i.e. ``window=65``.
ZOOLOGY_MQAR_MODELS: dict[str, dict[str, Any]] = {
    "based": {"configs": ("conv", "linear"), "options": {"feature_map": "taylor", "feature_dim": 16}},
    "linear_taylor": {"configs": ("conv", "linear"), "options": {"feature_map": "taylor", "feature_dim": 16}},
    "linear_elu": {"configs": ("conv", "linear"), "options": {"feature_map": "elu", "feature_dim": 16}},
    "attention": {"configs": ("conv", "window"), "options": {}},
    "sliding_window": {"configs": ("conv", "window"), "options": {"window": 65}},
}


def zoology_mqar_options(
    name: str, *, n_layers: int = 2, seq_len: int | None = None, **overrides: Any
) -> dict[str, Any]:
    """Options for ``build_model("based", ...)`` that build the Zoology-style MQAR model ``name``.

    ``build_model("based", vocab_size=V, d_model=C, n_layers=2, n_heads=1,
    **zoology_mqar_options("based", feature_dim=16))`` is the Based paper's MQAR model: one mixer
    per layer (``layer_pattern = ["conv", "linear"]``), Zoology's BaseConv
    (``conv_form="zoology"``), Taylor linear attention, no MLP (``mlp="none"``; add
    ``mlp="identity"`` for Zoology's identity state mixer, see :data:`ZOOLOGY_COMMON`), LayerNorm,
    no window. Zoology runs these with one head (``n_heads=1``).

    Differences that remain (this package's mixers, not Zoology's): the attention mixers' q/k/v
    and output projections have no bias (Zoology's ``MHA``/``SlidingAttn`` have one), there is
    no dropout inside attention, and the initialization is this package's (GPT-2 style, std
    0.02; Zoology's differs only in which output projections it rescales). With
    ``mlp="identity"``, the BaseConv layers, the Zoology ``Based`` mixer (``"linear"`` with the
    Taylor map and ``eps=1e-12``), the blocks and the final norm match Zoology's forward at
    identical weights (checked in ``tests/test_official_based_zoology.py``).

    Args:
        name: a key of :data:`ZOOLOGY_MQAR_MODELS`.
        n_layers: layers of the model (Zoology's ``Hybrid`` cycles the configs over them).
        seq_len: needed for ``"attention"``: its window is ``seq_len`` (full causal attention).
        **overrides: any other ``"based"`` option (e.g. ``feature_dim``, ``window``).

    Returns:
        A new dict of options, including ``layer_pattern``.

    Raises:
        ValueError: unknown ``name``; ``"attention"`` without ``seq_len``.
    """
    if not isinstance(name, str) or name not in ZOOLOGY_MQAR_MODELS:
        raise ValueError(f"name must be one of {list(ZOOLOGY_MQAR_MODELS)}, got {name!r}")
    spec = ZOOLOGY_MQAR_MODELS[name]
    options = {**ZOOLOGY_COMMON, **spec["options"]}
    if name == "attention":
        if seq_len is None:
            raise ValueError("seq_len must be given for 'attention' (its window is the whole sequence)")
        _positive_int(seq_len, "seq_len")
        options["window"] = seq_len
    options["layer_pattern"] = zoology_layer_pattern(list(spec["configs"]), n_layers)
    options.update(overrides)
    return options


# ----------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------


def _positive_int(value: Any, name: str) -> None:
    check_int(value, name, minimum=1)  # NumPy integer scalars welcome, bools refused


@dataclasses.dataclass
class LinearConfig(HeadsConfig):
    """Everything needed to rebuild a ``"linear"`` model: ``build_model("linear", **asdict(cfg))``.

    Attributes:
        vocab_size, d_model, n_layers, n_heads: sizes; ``d_model % n_heads == 0``; the value
            (and output) head dim is ``D = d_model / n_heads``.
        feature_map: one of :data:`LINEAR_FEATURE_MAPS`.
        feature_dim: dims q and k are projected to per head before the feature map (16).
        normalize: divide by ``φ(q)ᵀ z + eps`` (the state keeps ``z`` either way).
        eps: added to the denominator.
        chunk_size: tokens per chunk of the chunked form (does not change the result; the
            Triton kernel takes 16, 32, 64 or 128, other values use the PyTorch path).
        mlp: one of :data:`MLP_KINDS`; mlp_ratio: its hidden width / ``d_model``.
        dropout: on embeddings and sublayer outputs.
        tie_embeddings: share the token embedding with the output layer.
        norm: ``"layernorm"`` or ``"rmsnorm"``.
        attn_backend: one of :data:`ATTN_BACKENDS`.
    """

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    feature_map: str = "elu"
    feature_dim: int = 16
    normalize: bool = True
    eps: float = 1e-6
    chunk_size: int = 64
    mlp: str = "gelu"
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    tie_embeddings: bool = True
    norm: str = "layernorm"
    attn_backend: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    @property
    def n_features(self) -> int:
        """``F``: features per head after the feature map (:func:`~linattn_edu.reference.feature_map_dim`)."""
        return feature_map_dim(self.feature_map, self.feature_dim)

    @property
    def pattern(self) -> list[tuple[str, ...]]:
        """The mixers of each layer: ``[("linear",)] * n_layers``."""
        return [("linear",)] * self.n_layers

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field (and listing valid values)."""
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "feature_dim", "chunk_size"):
            _positive_int(getattr(self, name), name)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.feature_map not in LINEAR_FEATURE_MAPS:
            raise ValueError(f"feature_map must be one of {list(LINEAR_FEATURE_MAPS)}, got {self.feature_map!r}")
        if not isinstance(self.normalize, bool):
            raise ValueError(f"normalize must be a bool, got {self.normalize!r}")
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)) or not self.eps >= 0:
            raise ValueError(f"eps must be a number >= 0, got {self.eps!r}")
        if self.mlp not in MLP_KINDS:
            raise ValueError(f"mlp must be one of {list(MLP_KINDS)}, got {self.mlp!r}")
        if isinstance(self.mlp_ratio, bool) or not isinstance(self.mlp_ratio, (int, float)) or self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be a positive number, got {self.mlp_ratio!r}")
        dropout = self.dropout
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise ValueError(f"tie_embeddings must be a bool, got {self.tie_embeddings!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {list(NORMS)}, got {self.norm!r}")
        if self.attn_backend not in ATTN_BACKENDS:
            raise ValueError(f"attn_backend must be one of {list(ATTN_BACKENDS)}, got {self.attn_backend!r}")

    def state_bytes(
        self, seq_len: int, bytes_per_element: int = 2, state_bytes_per_element: int | None = None
    ) -> int:
        """Bytes of decode state per sequence after ``seq_len`` tokens: the sum over every layer's mixers.

        A ``"linear"`` mixer keeps ``H · (F·D + F)`` numbers at ``state_bytes_per_element``
        (:func:`~linattn_edu.reference.linear_attention_state_bytes`; ``z`` is counted even with
        ``normalize=False`` because the cache keeps it); for :class:`BasedConfig` a ``"window"``
        mixer ``2 · H · D · min(T, window)`` and a ``"conv"`` mixer ``d_model · (kernel_size - 1)``
        at ``bytes_per_element``. ``state_bytes_per_element=None`` means ``bytes_per_element``.
        """
        seq_len, bpe, sbpe = check_state_sizes(seq_len, bytes_per_element, state_bytes_per_element)
        return int(sum(self._mixer_state_bytes(name, seq_len, bpe, sbpe) for mixers in self.pattern for name in mixers))

    def _mixer_state_bytes(self, name: str, seq_len: int, bpe: int, sbpe: int) -> int:
        f, d = self.n_features, self.head_dim
        return self.n_heads * (f * d + f) * sbpe  # "linear": S (F x D) and z (F) per head

    def linear_backend(self, device: torch.device | str | None = None) -> str | None:
        """``backend=`` for :func:`~linattn_edu.kernels.chunked_linear_attention` on ``device``.

        ``attn_backend`` if set; else ``"torch"`` on a CPU or for a ``chunk_size`` the kernel
        lacks, and None (the kernel chooses) on a GPU.
        """
        if self.attn_backend is not None:
            return self.attn_backend
        device = torch.device("cpu" if device is None else device)
        if device.type == "cpu" or self.chunk_size not in _kernels().KERNEL_CHUNK_SIZES:
            return "torch"
        return None


@dataclasses.dataclass
class BasedConfig(LinearConfig):
    """Everything needed to rebuild a ``"based"`` model: ``build_model("based", **asdict(cfg))``.

    The fields of :class:`LinearConfig` (with Based's defaults: ``feature_map="taylor"``,
    ``mlp="swiglu"``, ``norm="rmsnorm"``) plus:

    Attributes:
        layer_pattern: one string per layer naming its mixers in order, joined with ``"+"``
            (each of :data:`MIXERS` at most once per layer), e.g. ``["conv+linear",
            "conv+window"]``. None means :func:`default_layer_pattern` (stored resolved).
        window: sliding-window size ``w`` of the ``"window"`` mixer: query ``i`` sees keys
            ``i - w < j <= i``, i.e. ``w`` keys *including the current one* (the book's
            convention). The official Based config's ``window_size: 256`` means 128 previous keys
            plus the current one, so it is ``window=129`` here; Zoology's ``SlidingAttn(block_size=b)``
            sees ``b`` previous keys plus the current one: ``window=b + 1``.
        conv_kernel_size: taps of the short causal convolution.
        rope_base: RoPE frequency base of the ``"window"`` mixer.
        window_pos: position encoding of the ``"window"`` mixer: ``"rope"`` (Based's, the
            default) or ``"alibi"`` (no rotation; ALiBi's per-head linear distance bias, with
            :func:`~linattn_edu.reference.alibi_slopes`, added inside the kernel). Chapter 8 uses
            ``"alibi"`` to put ALiBi attention on the same MQAR footing as the other mixers.
            ``"none"``: no position encoding at all, as Zoology's ``MHA`` and ``SlidingAttn``.
        conv_form: the module of every ``"conv"`` mixer: ``"based"`` (default) the official
            Based LM's :class:`BaseConv` (``silu(conv(u1)) ⊙ u2``, conv without bias);
            ``"zoology"`` Zoology's :class:`ZoologyBaseConv` (``conv(u) ⊙ proj(u) + u``, used in
            the MQAR models); ``"book"`` this book's own :class:`ShortConv` (an earlier version's
            convolution, kept as a named variant: not an official form).
    """

    feature_map: str = "taylor"
    mlp: str = "swiglu"
    norm: str = "rmsnorm"
    layer_pattern: list[str] | None = None
    window: int = 64
    conv_kernel_size: int = 3
    rope_base: float = 10000.0
    window_pos: str = "rope"
    conv_form: str = "based"

    def __post_init__(self) -> None:
        if self.layer_pattern is None and isinstance(self.n_layers, int) and not isinstance(self.n_layers, bool) \
                and self.n_layers >= 1:
            self.layer_pattern = default_layer_pattern(self.n_layers)
        self.validate()

    @property
    def pattern(self) -> list[tuple[str, ...]]:
        """The mixers of each layer, e.g. ``[("conv", "linear"), ("conv", "window")]``."""
        return [tuple(entry.split("+")) for entry in self.layer_pattern or []]

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field (and listing valid values)."""
        super().validate()
        _positive_int(self.window, "window")
        _positive_int(self.conv_kernel_size, "conv_kernel_size")
        if isinstance(self.rope_base, bool) or not isinstance(self.rope_base, (int, float)) or self.rope_base <= 1:
            raise ValueError(f"rope_base must be a number > 1, got {self.rope_base!r}")
        if self.window_pos not in WINDOW_POSITIONS:
            raise ValueError(f"window_pos must be one of {list(WINDOW_POSITIONS)}, got {self.window_pos!r}")
        if self.conv_form not in CONV_FORMS:
            raise ValueError(f"conv_form must be one of {list(CONV_FORMS)}, got {self.conv_form!r}")
        pattern = self.layer_pattern
        if not isinstance(pattern, (list, tuple)) or not all(isinstance(e, str) for e in pattern):
            raise ValueError(
                f"layer_pattern must be a list of strings made of {list(MIXERS)} joined by '+', got {pattern!r}"
            )
        if len(pattern) != self.n_layers:
            raise ValueError(f"layer_pattern must have n_layers={self.n_layers} entries, got {len(pattern)}")
        for entry in pattern:
            names = entry.split("+")
            if not names or any(n not in MIXERS for n in names) or len(set(names)) != len(names):
                raise ValueError(
                    f"layer_pattern entries must join distinct mixers from {list(MIXERS)} with '+' "
                    f"(e.g. 'conv+linear'), got {entry!r}"
                )
        self.layer_pattern = list(pattern)
        if any("window" in layer for layer in self.pattern) and self.window_pos == "rope" and self.head_dim % 2:
            raise ValueError(f"a 'window' mixer (RoPE) needs an even head dim d_model/n_heads, got {self.head_dim}")

    def _mixer_state_bytes(self, name: str, seq_len: int, bpe: int, sbpe: int) -> int:
        if name == "window":
            return 2 * self.n_heads * self.head_dim * min(seq_len, self.window) * bpe
        if name == "conv":
            return self.d_model * (self.conv_kernel_size - 1) * bpe
        return super()._mixer_state_bytes(name, seq_len, bpe, sbpe)



# ----------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------


class GatedMLP(nn.Module):
    """SwiGLU feed-forward: ``FcOut(silu(gate) ⊙ value)`` with ``[value, gate] = FcIn(x)``.

    ``FcIn`` maps ``C`` to ``2·h`` units with ``h = round(ratio·C / 2)`` (the official Based MLP
    projects to ``4C`` and splits it in two), ``FcOut`` maps ``h`` back to ``C``.
    ``(B, T, C) -> (B, T, C)``.
    """

    def __init__(self, dim: int, ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = max(1, int(round(ratio * dim / 2)))
        self.fc_in = nn.Linear(dim, 2 * hidden)
        self.fc_out = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C) -> (B, T, C)``."""
        value, gate = self.fc_in(x).chunk(2, dim=-1)
        return self.dropout(self.fc_out(F.silu(gate) * value))


def _causal_depthwise_conv(
    u: torch.Tensor, state: torch.Tensor | None, weight: torch.Tensor, bias: torch.Tensor | None, keep_state: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Causal depthwise convolution of ``u`` ``(B, C, T)`` after ``state`` ``(B, C, K-1)`` (None: zeros).

    ``y_t = bias + Σ_{s<K} weight[:, 0, K-1-s] · u_{t-s}`` (PyTorch's cross-correlation, as an
    ``nn.Conv1d(C, C, K, groups=C, padding=K-1)`` truncated to the first ``T`` outputs computes).
    Returns ``(y (B, C, T), the last K-1 inputs (B, C, K-1) or None)``.
    """
    b, c, _ = u.shape
    k = weight.shape[-1]
    if state is None:
        state = u.new_zeros(b, c, k - 1)
    full = torch.cat([state.to(u.dtype), u], dim=2)  # (B, C, K-1+T): the past, then this call
    y = F.conv1d(full, weight, bias, groups=c)  # (B, C, T)
    new_state = full[:, :, full.shape[2] - (k - 1):] if keep_state else None
    return y, new_state


class BaseConv(nn.Module):
    """The short gated convolution of the official Based language model; ``(B, T, C) -> (B, T, C)``.

    Follows ``BaseConv`` in HazyResearch/based, ``based/models/mixers/convolution.py`` (with its
    ``ShortConvolution``, ``conv_bias=False``, the PyTorch path, ``expand_proj=2``,
    ``use_bias=True``)::

        [u1, u2] = InProj(x)                 # Linear(C -> 2C, bias), split into two halves of C
        y = OutProj(silu(conv(u1)) ⊙ u2)     # OutProj: Linear(C -> C, bias)

    ``conv`` is causal and depthwise, ``kernel_size`` taps per channel, **without a bias**.
    The decode state is the last ``K - 1`` values of ``u1`` ``(B, C, K - 1)``, zeros before the
    first token (``d_model · (K - 1)`` numbers, as for every conv form here). This is the
    default ``"conv"`` mixer of ``build_model("based")`` (``conv_form="based"``).
    """

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.in_proj = nn.Linear(dim, 2 * dim)
        self.conv = nn.Conv1d(dim, dim, kernel_size, groups=dim, bias=False)
        self.out_proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None, *, position: int = 0, keep_state: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x ``(B, T, C)``; state ``(B, C, K-1)`` or None. Returns ``(y (B, T, C), state or None)``."""
        u1, u2 = self.in_proj(x).chunk(2, dim=-1)
        conv, new_state = _causal_depthwise_conv(u1.transpose(1, 2), state, self.conv.weight, None, keep_state)
        return self.out_proj(F.silu(conv.transpose(1, 2)) * u2), new_state


class ZoologyBaseConv(nn.Module):
    """Zoology's BaseConv, the mixer of layer 0 in the Based paper's MQAR models; ``(B, T, C) -> (B, T, C)``.

    Follows ``BaseConv`` in HazyResearch/zoology, ``zoology/mixers/base_conv.py`` (a short
    ``kernel_size``, ``use_act=False``; its ``ShortConvolution`` in ``zoology/mixers/convolution.py``
    is an ``nn.Conv1d`` with the default bias)::

        y = conv(u) ⊙ Projection(u) + u      # Projection: Linear(C -> C, bias); no output projection

    ``conv`` is causal and depthwise, ``kernel_size`` taps per channel, **with a bias**. Note the
    ``+ u``: the mixer carries its own skip connection, on top of the block's residual. The
    decode state is the last ``K - 1`` inputs ``(B, C, K - 1)``. Selected with
    ``conv_form="zoology"``.
    """

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.projection = nn.Linear(dim, dim)
        self.conv = nn.Conv1d(dim, dim, kernel_size, groups=dim, bias=True)

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None, *, position: int = 0, keep_state: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x ``(B, T, C)``; state ``(B, C, K-1)`` or None. Returns ``(y (B, T, C), state or None)``."""
        conv, new_state = _causal_depthwise_conv(x.transpose(1, 2), state, self.conv.weight, self.conv.bias,
                                                 keep_state)
        return conv.transpose(1, 2) * self.projection(x) + x, new_state


class ShortConv(nn.Module):
    """This book's own gated short convolution (not an official form): ``OutProj(Gate(x) ⊙ conv(In(x)))``.

    An earlier version of the book used it as Based's convolution; it differs from the official
    :class:`BaseConv` (no SiLU, the conv has a bias, two separate ``C -> C`` input projections)
    and from :class:`ZoologyBaseConv` (an output projection, no ``+ u``). It stays available as
    ``conv_form="book"``. ``conv`` is causal and depthwise (one ``kernel_size``-tap filter per
    channel, with a bias): ``conv(u)_t = b + Σ_{s<K} w_s u_{t-s}``. ``(B, T, C) -> (B, T, C)``;
    the decode state is the last ``K - 1`` conv inputs ``(B, C, K - 1)``, zeros before the first
    token.
    """

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.in_proj = nn.Linear(dim, dim)
        self.gate_proj = nn.Linear(dim, dim)
        self.conv = nn.Conv1d(dim, dim, kernel_size, groups=dim, bias=True)
        self.out_proj = nn.Linear(dim, dim, bias=False)

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None, *, position: int = 0, keep_state: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x ``(B, T, C)``; state ``(B, C, K-1)`` or None. Returns ``(y (B, T, C), state or None)``."""
        u = self.in_proj(x).transpose(1, 2)  # (B, C, T)
        conv, new_state = _causal_depthwise_conv(u, state, self.conv.weight, self.conv.bias, keep_state)
        return self.out_proj(self.gate_proj(x) * conv.transpose(1, 2)), new_state


class LinearAttention(nn.Module):
    """Multi-head causal linear attention with a feature map; ``(B, T, C) -> (B, T, C)``.

    ``q, k``: ``Linear(C -> H·d)`` with ``d = feature_dim``, then φ: ``(B, H, T, F)``;
    ``v``: ``Linear(C -> H·D)``, ``(B, H, T, D)``; output ``Linear(H·D -> C)``. The decode state
    is a :class:`~linattn_edu.kernels.LinearAttentionState` ``(S (B, H, F, D), z (B, H, F))``.
    """

    def __init__(self, cfg: LinearConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h, d, hd = cfg.n_heads, cfg.feature_dim, cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, h * d, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, h * d, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, h * hd, bias=False)
        self.out_proj = nn.Linear(h * hd, cfg.d_model, bias=False)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``φ(q), φ(k)`` ``(B, H, T, F)`` and ``v`` ``(B, H, T, D)`` of ``x`` ``(B, T, C)``."""
        cfg = self.cfg
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, cfg.n_heads, cfg.feature_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, cfg.n_heads, cfg.feature_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        return feature_map_torch(q, cfg.feature_map), feature_map_torch(k, cfg.feature_map), v

    def forward(
        self, x: torch.Tensor, state: Any = None, *, position: int = 0, keep_state: bool = True
    ) -> tuple[torch.Tensor, Any]:
        """x ``(B, T, C)``; state ``(S, z)`` or None. Returns ``(y (B, T, C), new state or None)``.

        Without a state: the chunked form (:func:`~linattn_edu.kernels.chunked_linear_attention`).
        One token with a state: the recurrent form
        (:func:`~linattn_edu.kernels.linear_attention_step`). Several tokens after a state
        (chunked prefill): the chunked form without normalization on ``[v, 1]`` (numerator and
        denominator of the new tokens) plus the state's contribution ``φ(q)ᵀS``, ``φ(q)ᵀz``.
        """
        cfg = self.cfg
        kernels = _kernels()
        b, t, _ = x.shape
        fq, fk, v = self.features(x)
        compute = torch.float64 if fq.dtype == torch.float64 else torch.float32
        new_state = None
        if state is not None and t == 1:
            o, new_state = kernels.linear_attention_step(
                fq[:, :, 0], fk[:, :, 0], v[:, :, 0], state, normalize=cfg.normalize, eps=cfg.eps
            )
            o = o[:, :, None]
        else:
            backend = cfg.linear_backend(x.device)
            if state is None:
                o = kernels.chunked_linear_attention(
                    fq, fk, v, chunk_size=cfg.chunk_size, normalize=cfg.normalize, eps=cfg.eps, backend=backend
                )
            else:
                s0, z0 = state[0].to(compute), state[1].to(compute)
                fq_c, fk_c, v_c = fq.to(compute), fk.to(compute), v.to(compute)
                ones = torch.ones(b, cfg.n_heads, t, 1, dtype=compute, device=x.device)
                y = kernels.chunked_linear_attention(
                    fq_c, fk_c, torch.cat([v_c, ones], dim=-1), chunk_size=cfg.chunk_size, normalize=False,
                    backend=backend,
                )
                num = y[..., :-1] + fq_c @ s0  # (B, H, T, D)
                den = y[..., -1:] + (fq_c @ z0[..., None])  # (B, H, T, 1)
                o = (num / (den + cfg.eps) if cfg.normalize else num).to(v.dtype)
            if keep_state:
                fk_c, v_c = fk.to(compute), v.to(compute)
                s = fk_c.transpose(-1, -2) @ v_c  # Σ_j φ(k_j) v_jᵀ: (B, H, F, D)
                z = fk_c.sum(dim=2)  # (B, H, F)
                if state is not None:
                    s, z = s + state[0].to(compute), z + state[1].to(compute)
                new_state = kernels.LinearAttentionState(s, z)
        o = o.transpose(1, 2).reshape(b, t, cfg.n_heads * cfg.head_dim)
        return self.out_proj(o), (new_state if keep_state else None)


class WindowAttention(nn.Module):
    """Sliding-window causal softmax attention with RoPE (or ALiBi); ``(B, T, C) -> (B, T, C)``.

    Query ``i`` sees keys ``i - window < j <= i``, through
    :func:`~linattn_edu.kernels.flash_attention` (``window=``): ``window`` keys *including the
    current one*. Official conventions map onto it as follows: Based's ``window_size: 256``
    (``(128, 0)``: 128 previous keys plus the current one) is ``window=129``; Zoology's
    ``SlidingAttn(block_size=b)`` (keys ``i - b <= j <= i``) is ``window=b + 1``. The decode
    state is ``(K, V)``, each ``(B, H, min(T, window), D)`` (keys after RoPE). With
    ``cfg.window_pos == "alibi"`` there is no rotation and the kernel adds ALiBi's bias instead;
    with ``"none"`` there is neither (Zoology's attention has no position encoding).
    """

    def __init__(self, cfg: BasedConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, h, hd = cfg.d_model, cfg.n_heads, cfg.head_dim
        self.qkv_proj = nn.Linear(d, 3 * h * hd, bias=False)
        self.out_proj = nn.Linear(h * hd, d, bias=False)
        alibi = cfg.window_pos == "alibi"
        slopes = torch.tensor(alibi_slopes(h), dtype=torch.float32) if alibi else None
        self.register_buffer("alibi_slopes", slopes, persistent=False)

    def forward(
        self, x: torch.Tensor, state: Any = None, *, position: int = 0, keep_state: bool = True
    ) -> tuple[torch.Tensor, Any]:
        """x ``(B, T, C)`` at absolute positions ``position..position+T-1``; state ``(K, V)`` or None."""
        cfg = self.cfg
        b, t, _ = x.shape
        q, k, v = self.qkv_proj(x).view(b, t, 3, cfg.n_heads, cfg.head_dim).permute(2, 0, 3, 1, 4)
        if cfg.window_pos == "rope":  # ALiBi's bias needs no rotation (the kernel adds it); "none": neither
            cos, sin = rope_cos_sin(
                torch.arange(position, position + t, device=x.device), cfg.head_dim, base=cfg.rope_base,
                dtype=x.dtype,
            )
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if state is not None:
            k = torch.cat([state[0].to(k.dtype), k], dim=2)
            v = torch.cat([state[1].to(v.dtype), v], dim=2)
        o = _kernels().flash_attention(q, k, v, causal=True, window=cfg.window, alibi_slopes=self.alibi_slopes,
                                       backend=cfg.window_backend(x.device))
        o = o.transpose(1, 2).reshape(b, t, cfg.n_heads * cfg.head_dim)
        new_state = (k[:, :, -cfg.window:], v[:, :, -cfg.window:]) if keep_state else None
        return self.out_proj(o), new_state


#: ``conv_form`` -> the module class of the ``"conv"`` mixer.
CONV_CLASSES: dict[str, type[nn.Module]] = {"based": BaseConv, "zoology": ZoologyBaseConv, "book": ShortConv}


def _make_mixer(name: str, cfg: LinearConfig) -> nn.Module:
    if name == "linear":
        return LinearAttention(cfg)
    if name == "window":
        return WindowAttention(cfg)  # type: ignore[arg-type]
    return CONV_CLASSES[cfg.conv_form](cfg.d_model, cfg.conv_kernel_size)  # type: ignore[attr-defined]


def _make_mlp(cfg: LinearConfig) -> nn.Module | None:
    if cfg.mlp == "gelu":
        return MLP(cfg.d_model, cfg.mlp_ratio, cfg.dropout)
    if cfg.mlp == "swiglu":
        return GatedMLP(cfg.d_model, cfg.mlp_ratio, cfg.dropout)
    if cfg.mlp == "identity":  # Zoology's state_mixer=Identity: the sublayer adds Norm(x) to the stream
        return nn.Identity()
    return None


class _Block(nn.Module):
    """One layer: ``x + Mixer(Norm(x))`` for each of its mixers, then ``x + MLP(Norm(x))``.

    With ``mlp="identity"`` the second sublayer is ``x + Norm(x)``: what Zoology's
    ``TransformerBlock`` computes with ``state_mixer=torch.nn.Identity`` (its ``norm2`` output is
    added to the residual stream by the next block, or before the final norm).
    """

    def __init__(self, cfg: LinearConfig, mixers: tuple[str, ...]) -> None:
        super().__init__()
        self.mixer_names = mixers
        self.norms = nn.ModuleList(make_norm(cfg.norm, cfg.d_model) for _ in mixers)
        self.mixers = nn.ModuleDict({name: _make_mixer(name, cfg) for name in mixers})
        self.dropout = nn.Dropout(cfg.dropout)
        self.mlp = _make_mlp(cfg)
        self.norm_mlp = make_norm(cfg.norm, cfg.d_model) if self.mlp is not None else None

    def forward(
        self, x: torch.Tensor, states: dict[str, Any] | None, position: int, keep_state: bool
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        new_states: dict[str, Any] = {}
        for name, norm in zip(self.mixer_names, self.norms):
            y, st = self.mixers[name](
                norm(x), None if states is None else states[name], position=position, keep_state=keep_state
            )
            x = x + self.dropout(y)
            if keep_state:
                new_states[name] = st
        if self.mlp is not None:
            x = x + self.mlp(self.norm_mlp(x))
        return x, new_states


# ----------------------------------------------------------------------------------------------
# The cache and the models
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class MixerCache(DecodeCache):
    """The decoding state of a ``"linear"`` or ``"based"`` model.

    Attributes:
        layers: one dict per layer, mixer name -> its state: ``"linear"``:
            ``LinearAttentionState(S (B, H, F, D), z (B, H, F))``; ``"window"``: ``(K, V)`` each
            ``(B, H, min(T, window), D)``; ``"conv"``: ``(B, C, kernel_size - 1)`` (the last
            inputs of the convolution, for every ``conv_form``).
        position: tokens consumed so far (the next token's absolute position).

    Not modified in place: ``model.step`` returns a new cache.
    """

    layers: list[dict[str, Any]]
    position: int

    @property
    def batch_size(self) -> int:
        """``B``, read from the first state tensor."""
        for layer in self.layers:
            for st in layer.values():
                tensor = st if isinstance(st, torch.Tensor) else st[0]
                return int(tensor.shape[0])
        return 0


class _MixerLM(LanguageModel):
    """Embedding, residual blocks of sequence mixers (+ MLP), final norm, LM head.

    A step updates linear-attention layers' ``(S, z)`` with one outer product (the recurrent
    form), window layers attend over at most ``window`` cached keys, conv layers shift their
    ``kernel_size - 1`` inputs: the cost of a step does not grow with the context (beyond the
    window).
    """

    kind = "_mixer"
    config_class: type[LinearConfig] = LinearConfig
    cache_class = MixerCache

    def _build_blocks(self, cfg: LinearConfig) -> list[nn.Module]:
        return [_Block(cfg, mixers) for mixers in cfg.pattern]

    def _residual_outputs(self) -> tuple[int, list[nn.Linear]]:
        """Every mixer's ``out_proj`` (the conv forms without one are skipped) and the MLP's ``fc_out``;
        one residual sublayer per mixer, plus one per MLP."""
        cfg = self.config
        n_residual = sum(len(m) + (cfg.mlp != "none") for m in cfg.pattern)
        outs = []
        for block in self.blocks:
            outs += [mixer.out_proj for mixer in block.mixers.values() if hasattr(mixer, "out_proj")]
            if block.mlp is not None and hasattr(block.mlp, "fc_out"):
                outs.append(block.mlp.fc_out)
        return n_residual, outs

    def _check_cache_layers(self, cache: MixerCache, batch: int) -> None:
        for i, (layer, mixers) in enumerate(zip(cache.layers, self.config.pattern)):
            if set(layer) != set(mixers):
                raise ValueError(f"cache layer {i} must hold states for {list(mixers)}, got {sorted(layer)}")
        self._check_batch(cache, batch)

    def extra_repr(self) -> str:
        cfg = self.config
        return (f"feature_map={cfg.feature_map!r}, feature_dim={cfg.feature_dim} (F={cfg.n_features}), "
                f"heads={cfg.n_heads}, head_dim={cfg.head_dim}")


#: Linear-attention families of the experiments.
register_family("linear_elu", label="linear (elu)", color="tab:blue", marker="v")
register_family("linear_taylor", label="linear (Taylor)", color="tab:green", marker="^")
register_family("based", label="Based", color="tab:purple", marker="o")


@register_model("linear")
class LinearTransformer(_MixerLM):
    """A Transformer with causal linear attention in every layer; see the module docstring.

    Build with ``build_model("linear", vocab_size=..., d_model=..., n_layers=..., n_heads=...,
    feature_map="elu", feature_dim=16)``; options are the fields of :class:`LinearConfig`.
    ``model(tokens)``: ``(B, T)`` int64 -> ``(B, T, vocab_size)``; ``prefill``/``step`` decode
    with a :class:`MixerCache` of constant size.
    """

    kind = "linear"
    config_class = LinearConfig


@register_model("based")
class Based(_MixerLM):
    """Based: short gated convolutions, Taylor linear attention and sliding-window attention.

    Build with ``build_model("based", vocab_size=..., d_model=..., n_layers=..., n_heads=...,
    feature_dim=16, window=64, layer_pattern=None)``; options are the fields of
    :class:`BasedConfig` (see the module docstring for the default layer pattern).
    ``model(tokens)``: ``(B, T)`` int64 -> ``(B, T, vocab_size)``; ``prefill``/``step`` decode
    with a :class:`MixerCache` whose size is bounded (window) or constant (the rest).
    """

    kind = "based"
    config_class = BasedConfig

    def extra_repr(self) -> str:
        cfg = self.config
        return f"{super().extra_repr()}, window={cfg.window}, layer_pattern={cfg.layer_pattern}"
