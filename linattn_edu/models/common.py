"""Pieces every zoo model shares: norms, the MLP, position encodings, the decode cache, generation.

The decoding interface every zoo model implements::

    logits = model(tokens)                     # (B, T) int64 -> (B, T, vocab)
    logits, cache = model.prefill(tokens)      # same logits, plus the state after the last token
    logits, cache = model.step(token, cache)   # (B,) int64 -> (B, vocab), the state one token later

:class:`LanguageModel` is the shell every zoo family builds on: token embedding, a list of
residual blocks, final norm, (tied) LM head, the initialization, and ``forward`` / ``prefill`` /
``step`` with their input checks. A family supplies its config class, its blocks, its cache and
what is its own (positions, cache checks). :class:`TreeLanguageModel` adds ``tree_step`` and
``commit_tree`` (speculative decoding) for the families that verify draft trees.

Caches are dataclasses of tensors; :func:`cache_bytes` measures any of them, so chapters can plot
how a KV cache grows with the context while a recurrent state stays constant.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

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
    "DecodeCache",
    "TreeStates",
    "LanguageModel",
    "TreeLanguageModel",
    "attention_backend",
    "HeadsConfig",
    "periodic_layer_pattern",
    "check_state_sizes",
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


def _inverse_frequencies(
    dim: Any, name: str, what: str, base: float, device: torch.device
) -> tuple[int, torch.Tensor]:
    """``(dim, base^(-2k/dim) for k = 0..dim/2-1)`` in float64, after checking ``dim`` is a positive even int."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 2 or dim % 2:
        raise ValueError(f"{name} must be a positive even int for {what}, got {dim!r}")
    dim = int(dim)
    return dim, base ** (-torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim)


def sinusoidal_positions(positions: torch.Tensor, dim: int, *, base: float = 10000.0) -> torch.Tensor:
    """The fixed sinusoidal embedding of Vaswani et al. (2017) for any positions: ``(T,) -> (T, dim)``.

    ``PE[p, 2k] = sin(p / base^(2k/dim))`` and ``PE[p, 2k+1] = cos(p / base^(2k/dim))``.
    Computed on the fly in float64 (no table, so no length limit), returned in float64: cast
    it to the model's dtype.

    Raises:
        ValueError: ``dim`` is not a positive even int.
    """
    dim, inv_freq = _inverse_frequencies(dim, "dim", "sinusoidal positions", base, positions.device)
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
    head_dim, inv_freq = _inverse_frequencies(head_dim, "head_dim", "RoPE", base, positions.device)
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


class DecodeCache:
    """What every zoo decode cache shares (a mixin of the cache dataclasses: it adds no fields).

    A cache has ``position`` (tokens consumed), ``layers`` (one state per layer) and
    ``batch_size``; it is never modified in place (``model.step`` returns a new one).
    """

    @property
    def nbytes(self) -> int:
        """Bytes of all state tensors (:func:`~linattn_edu.models.common.cache_bytes`)."""
        return cache_bytes(self)


@dataclasses.dataclass
class KVCache(DecodeCache):
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
    def layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One ``(K, V)`` pair per layer (the layer states :class:`LanguageModel` hands its blocks)."""
        return list(zip(self.keys, self.values))

    @property
    def batch_size(self) -> int:
        """``B``, read from the first layer's keys."""
        return int(self.keys[0].shape[0]) if self.keys else 0


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


# ----------------------------------------------------------------------------------------------
# Shared pieces of the configs: attention backend, state-size arguments
# ----------------------------------------------------------------------------------------------


def attention_backend(
    attn_backend: str | None, head_dim: int, device: torch.device | str | None = None
) -> str | None:
    """``backend=`` for :func:`~linattn_edu.kernels.flash_attention` in a model's attention layers.

    ``attn_backend`` if set; else ``"torch"`` on a CPU (the Triton interpreter is far too slow
    inside a model) or for a head dim the kernel lacks, and None (the kernel chooses) on a GPU.
    """
    if attn_backend is not None:
        return attn_backend
    device = torch.device("cpu" if device is None else device)
    if device.type == "cpu":
        return "torch"
    from .. import kernels  # lazily: importing the models must not import Triton

    return "torch" if head_dim not in kernels.SUPPORTED_HEAD_DIMS else None


class HeadsConfig:
    """What the zoo's config dataclasses with attention heads share (a mixin: it adds no fields).

    Needs the fields ``d_model``, ``n_heads`` and ``attn_backend``.
    """

    @property
    def head_dim(self) -> int:
        """``d_model // n_heads``: the dim of each head (attention, or values and outputs)."""
        return self.d_model // self.n_heads  # type: ignore[attr-defined]

    def window_backend(self, device: torch.device | str | None = None) -> str | None:
        """``backend=`` for :func:`~linattn_edu.kernels.flash_attention` in the attention layers.

        ``attn_backend`` if set; else ``"torch"`` on a CPU or for a head dim the kernel lacks,
        and None (the kernel chooses) on a GPU (:func:`attention_backend`).
        """
        return attention_backend(self.attn_backend, self.head_dim, device)  # type: ignore[attr-defined]


def periodic_layer_pattern(
    n_layers: int, period: Sequence[str], short: dict[int, list[str]] | None = None
) -> list[str]:
    """A default ``layer_pattern``: ``period`` repeated over ``n_layers``, or ``short[n_layers]`` when
    the stack is too short for it (e.g. Griffin's 2-layer ``["recurrent", "attention"]``).

    Raises:
        ValueError: ``n_layers`` is not a positive int.
    """
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be a positive int, got {n_layers!r}")
    if short and n_layers in short:
        return list(short[n_layers])
    return [period[i % len(period)] for i in range(n_layers)]


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_state_sizes(
    seq_len: int, bytes_per_element: int, state_bytes_per_element: int | None = None
) -> tuple[int, int, int]:
    """Validated ``(seq_len, bytes_per_element, state_bytes_per_element)`` of a config's ``state_bytes``.

    ``state_bytes_per_element=None`` means ``bytes_per_element``.

    Raises:
        ValueError: ``seq_len`` is not an int >= 0, or an element size is not an int >= 1.
    """
    seq_len = _check_count(seq_len, "seq_len", 0)
    bpe = _check_count(bytes_per_element, "bytes_per_element", 1)
    sbpe = bpe if state_bytes_per_element is None else _check_count(
        state_bytes_per_element, "state_bytes_per_element", 1)
    return seq_len, bpe, sbpe


# ----------------------------------------------------------------------------------------------
# The language-model shell
# ----------------------------------------------------------------------------------------------


def _init_linear_and_embedding(module: nn.Module) -> None:
    """The zoo's GPT-2 initialization: ``N(0, 0.02)`` weights of linear layers and embeddings, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class LanguageModel(nn.Module):
    """The shell of every zoo language model: embedding -> residual blocks -> final norm -> LM head.

    ``model(tokens)``: ``(B, T)`` int64 -> ``(B, T, vocab_size)`` logits (position ``t`` predicts
    ``t + 1``). ``model.prefill(tokens, cache=None)`` -> ``(logits (B, T, V), cache)``, continuing
    ``cache`` if given (chunked prefill); ``model.step(token, cache)``: ``token (B,)`` ->
    ``(logits (B, V), new cache)``. Caches are never modified in place.

    Built with ``build_model(kind, vocab_size=..., d_model=..., n_layers=..., n_heads=...,
    **options)``; the options are the fields of :attr:`config_class` (unknown ones are refused,
    naming the valid ones). Modules, in this order (the order fixes how the seeded
    initialization draws): ``tok_emb`` (``nn.Embedding``), what :meth:`_build_embedding` adds,
    ``emb_dropout``, ``blocks`` (:meth:`_build_blocks`), ``norm_out`` (``make_norm(cfg.norm)``),
    ``lm_head`` (``Linear(d_model -> vocab_size)``, no bias, tied to ``tok_emb`` when
    ``cfg.tie_embeddings``).

    Initialization (GPT-2): every ``nn.Linear`` and ``nn.Embedding`` weight ``N(0, 0.02)``, biases
    zero, then the output projections of the residual branches (:meth:`_residual_outputs`)
    ``N(0, 0.02 / √n)`` with ``n`` the number of residual sublayers. Other parameters keep their
    module's own initialization.

    A family subclasses it and supplies:

    - ``kind``, ``config_class`` (a dataclass with ``vocab_size, d_model, n_layers, n_heads``,
      ``dropout``, ``tie_embeddings``, ``norm`` and ``state_bytes(seq_len, bytes_per_element)``)
      and ``cache_class`` (a dataclass with ``layers``, ``position`` and ``batch_size``);
    - :meth:`_build_blocks`: the blocks, each called as
      ``block(x, state, position, keep_state, **context) -> (x, new state or None)``;
    - optionally :meth:`_build_embedding`, :meth:`_embed` (positions), :meth:`_new_cache`,
      :meth:`_check_cache_layers`, :meth:`_check_decodable`, :meth:`_residual_outputs`.
    """

    kind: str = "_lm"
    #: The family's config dataclass.
    config_class: type = type(None)
    #: The family's decode-cache dataclass.
    cache_class: type = type(None)
    #: Attribute of a block holding its sequence mixer (for :meth:`_residual_outputs`).
    mixer_attr: str = "attn"

    def __init__(self, *, vocab_size: int, d_model: int, n_layers: int, n_heads: int, **options: Any) -> None:
        super().__init__()
        fields = {f.name for f in dataclasses.fields(self.config_class)}
        unknown = sorted(set(options) - fields)
        if unknown:
            valid = sorted(fields - {"vocab_size", "d_model", "n_layers", "n_heads"})
            raise ValueError(f"unknown option(s) {unknown} for kind {self.kind!r}; valid options: {valid}")
        cfg = self.config_class(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads, **options)
        self.config = cfg

        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self._build_embedding(cfg)
        self.emb_dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(self._build_blocks(cfg))
        self.norm_out = make_norm(cfg.norm, cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

        self.apply(_init_linear_and_embedding)
        n_residual, outputs = self._residual_outputs()
        for lin in outputs:  # GPT-2: shrink the residual branches' last layers with depth
            nn.init.normal_(lin.weight, std=0.02 / math.sqrt(n_residual))
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    # -- what a family supplies -----------------------------------------------------------------

    def _build_blocks(self, cfg: Any) -> list[nn.Module]:
        """The residual blocks, in order."""
        raise NotImplementedError

    def _build_embedding(self, cfg: Any) -> None:
        """Add position tables or buffers after ``tok_emb`` (default: nothing)."""

    def _residual_outputs(self) -> tuple[int, list[nn.Linear]]:
        """``(number of residual sublayers, their output projections in order)``.

        Default: two sublayers per block, ``block.<mixer_attr>.out_proj`` and ``block.mlp.fc_out``.
        """
        outputs = [lin for block in self.blocks
                   for lin in (getattr(block, self.mixer_attr).out_proj, block.mlp.fc_out)]
        return 2 * len(self.blocks), outputs

    def _embed(self, tokens: torch.Tensor, start: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """Embeddings ``(B, T, C)`` of ``tokens`` at positions ``start..start+T-1``, and keyword
        arguments passed to every block (default: ``emb_dropout(tok_emb(tokens))``, none)."""
        return self.emb_dropout(self.tok_emb(tokens)), {}

    def _new_cache(self, layers: list[Any], position: int) -> Any:
        """The cache holding the blocks' new ``layers`` states after ``position`` tokens."""
        return self.cache_class(layers, position)

    def _check_decodable(self) -> None:
        """Raise ``ValueError`` if this model cannot decode (``prefill``/``step``); default: it can."""

    def _check_cache_layers(self, cache: Any, batch: int) -> None:
        """The family's checks of a cache of the right type and depth; default: its batch size."""
        self._check_batch(cache, batch)

    # -- the shared plumbing --------------------------------------------------------------------

    @staticmethod
    def _check_batch(cache: Any, batch: int) -> None:
        if cache.batch_size != batch:
            raise ValueError(f"cache has batch size {cache.batch_size}, but the tokens have {batch}")

    def _check_cache(self, cache: Any, batch: int) -> None:
        """Raise ``TypeError`` / ``ValueError`` (naming ``cache``) unless it fits this model and ``batch``."""
        if not isinstance(cache, self.cache_class):
            raise TypeError(f"cache must be a {self.cache_class.__name__} from prefill() or step(), "
                            f"got {type(cache).__name__}")
        if len(cache.layers) != self.config.n_layers:
            raise ValueError(f"cache must hold {self.config.n_layers} layers, got {len(cache.layers)}")
        self._check_cache_layers(cache, batch)

    def _run(self, tokens: torch.Tensor, cache: Any, keep_cache: bool) -> tuple[torch.Tensor, Any]:
        """Logits ``(B, T, V)`` for ``tokens`` ``(B, T)`` placed after ``cache``; the new cache if asked."""
        start = 0 if cache is None else cache.position
        x, context = self._embed(tokens, start)
        states = None if cache is None else cache.layers
        layers = []
        for i, block in enumerate(self.blocks):
            x, state = block(x, None if states is None else states[i], start, keep_cache, **context)
            layers.append(state)
        logits = self.lm_head(self.norm_out(x))
        return logits, (self._new_cache(layers, start + tokens.shape[1]) if keep_cache else None)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` int64 token ids -> ``(B, T, vocab_size)`` logits (position ``t`` predicts ``t+1``).

        Raises:
            TypeError / ValueError: bad ``tokens`` (the message names them).
        """
        tokens = check_tokens(tokens, self.config.vocab_size)
        return self._run(tokens, None, keep_cache=False)[0]

    def prefill(self, tokens: torch.Tensor, cache: Any = None) -> tuple[torch.Tensor, Any]:
        """Process a prompt ``(B, T)``: returns ``(logits (B, T, V), cache)``.

        ``logits[:, -1]`` predicts the next token. With ``cache`` the prompt continues an earlier
        one (chunked prefill).

        Raises:
            TypeError / ValueError: bad ``tokens``; a ``cache`` that does not fit this model.
        """
        tokens = check_tokens(tokens, self.config.vocab_size)
        self._check_decodable()
        if cache is not None:
            self._check_cache(cache, tokens.shape[0])
        return self._run(tokens, cache, keep_cache=True)

    def step(self, token: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """Decode one token per sequence: ``token (B,)`` int64 -> ``(logits (B, V), new cache)``.

        The cache passed in is not modified.

        Raises:
            TypeError / ValueError: bad ``token``; a ``cache`` that does not fit this model.
        """
        token = check_tokens(token, self.config.vocab_size, name="token", ndim=1)
        self._check_decodable()
        self._check_cache(cache, token.shape[0])
        logits, new_cache = self._run(token[:, None], cache, keep_cache=True)
        return logits[:, -1], new_cache

    def num_parameters(self, *, trainable_only: bool = True) -> int:
        """:func:`count_parameters` of this model (tied weights counted once)."""
        return count_parameters(self, trainable_only=trainable_only)


@dataclasses.dataclass
class TreeStates:
    """What :meth:`TreeLanguageModel.tree_step` keeps to commit an accepted path without another pass.

    Attributes:
        keys, values: one ``(B, H, N, D)`` tensor per layer: every tree node's key and value.
        parents: the tree's parent array (length ``N``).
        position: the cache position the tree was verified at.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    parents: list[int]
    position: int


class TreeLanguageModel(LanguageModel):
    """A :class:`LanguageModel` that verifies draft trees in one pass (speculative decoding).

    A family supplies ``tree_states_class`` (a :class:`TreeStates` subclass),
    :meth:`_tree_forward` and :meth:`_commit`.
    """

    tree_states_class: type = TreeStates

    def _tree_forward(self, tokens: torch.Tensor, parents: Any, cache: Any
                      ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], list[int]]:
        """``(logits (B, N, V), per-layer node keys, per-layer node values, parent list)``."""
        raise NotImplementedError

    def _commit(self, cache: Any, states: TreeStates, index: torch.Tensor) -> Any:
        """The cache after the nodes ``index`` (a root path) of ``states``, without a forward pass."""
        raise NotImplementedError

    @torch.no_grad()
    def tree_step(self, token_tree: torch.Tensor, parents: Any, cache: Any, *, return_states: bool = False
                  ) -> torch.Tensor | tuple[torch.Tensor, TreeStates]:
        """Verify a draft tree in one forward pass: ``token_tree (B, N)`` -> logits ``(B, N, V)``.

        ``parents`` ``(N,)`` (shared by the batch) gives each node's parent index, or -1 for a
        child of the cached prefix, parents before children. Node ``i``'s logits equal those of
        ``step``-decoding its root path after ``cache``. The cache is not modified. With
        ``return_states=True`` returns ``(logits, states)``; :meth:`commit_tree` builds the cache
        after an accepted path from ``states`` without another pass.

        Raises:
            TypeError / ValueError: bad ``token_tree`` or ``cache``; ``ValueError`` naming
                ``parents`` for a bad parent array or one whose length is not ``N``.
        """
        tokens = check_tokens(token_tree, self.config.vocab_size, name="token_tree")
        self._check_decodable()
        self._check_cache(cache, tokens.shape[0])
        logits, keys, values, parent_list = self._tree_forward(tokens, parents, cache)
        if not return_states:
            return logits
        return logits, self.tree_states_class(keys, values, parent_list, cache.position)

    def commit_tree(self, cache: Any, states: TreeStates, path: Sequence[int]) -> Any:
        """The cache after the tokens of the root path ``path`` of a verified tree, with no forward pass.

        Args:
            cache: the cache ``tree_step`` verified against (not modified).
            states: from ``tree_step(..., return_states=True)`` on that cache.
            path: node indices ``[root, child, grandchild, ...]``, each the parent of the next,
                ``path[0]`` a root (parent -1); may be empty.

        Returns:
            The cache ``prefill(tokens[path], cache)`` would return (up to float rounding),
            ``position`` advanced by ``len(path)``.

        Raises:
            TypeError / ValueError: a bad ``cache`` or ``states``; ``ValueError`` naming ``path``
                when it is not a root path of the tree.
        """
        from ..reference.speculative import check_root_path

        if not isinstance(states, self.tree_states_class):
            raise TypeError(f"states must be the {self.tree_states_class.__name__} of tree_step(return_states=True), "
                            f"got {type(states).__name__}")
        self._check_cache(cache, states.keys[0].shape[0] if states.keys else 0)
        if states.position != cache.position:
            raise ValueError(f"cache is at position {cache.position} but states were verified at position "
                             f"{states.position}: pass the cache given to tree_step")
        path = check_root_path(states.parents, path)
        index = torch.tensor(path, dtype=torch.long, device=states.keys[0].device)
        return self._commit(cache, states, index)
