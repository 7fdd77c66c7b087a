"""A small decoder-only Transformer with a choice of position encoding: the zoo's baseline.

``build_model("transformer", vocab_size=..., d_model=..., n_layers=..., n_heads=..., pos="alibi")``

Architecture (GPT-style, pre-norm)::

    x = token_embedding(tokens) [+ position embedding for pos="learned" / "sinusoidal"]
    for each layer:
        x = x + Dropout(OutProj(Attention(Norm(x))))      # causal, through flash_attention
        x = x + MLP(Norm(x))                               # Linear -> GeLU -> Linear
    logits = LMHead(Norm(x))                               # tied to the token embedding by default

Position encodings (``pos=``):

``"alibi"`` (default)
    No embedding; each head adds ``-m_h (i - j)`` to its scores (Press et al., 2022). The slopes
    :func:`~linattn_edu.reference.alibi_slopes` are a buffer passed to
    :func:`~linattn_edu.kernels.flash_attention` as ``alibi_slopes=``; the kernel builds the bias
    from positions, so no ``T x T`` tensor is stored. Works at any length.
``"rope"``
    Rotary embeddings on q and k (rotate-half layout, see
    :func:`~linattn_edu.models.common.apply_rope`), base ``rope_base``. Works at any length.
``"sinusoidal"``
    Fixed sin/cos vectors added to the token embeddings (scaled by ``sqrt(d_model)`` first, as
    in Vaswani et al.), computed on the fly for any position (no table, so no length limit;
    beyond the training length they are merely unfamiliar).
``"learned"``
    A trained table of ``max_len`` vectors added to the token embeddings. Positions past
    ``max_len`` have no vector: a ``ValueError`` names ``max_len``.
``"none"``
    No position information at all (NoPE): the causal mask alone lets a model infer order.

Attention backend (``attn_backend=``), always through :func:`~linattn_edu.kernels.flash_attention`:

- ``None`` (default): on a GPU, ``flash_attention`` chooses (compiled Triton on compute
  capability >= 8.0, its PyTorch path otherwise). On a CPU the model uses the PyTorch path
  (``backend="torch"``) even when the Triton interpreter is on: the interpreter runs the kernel
  in NumPy, about a thousand times slower (a 0.8M-parameter model: ~77 s per training step
  instead of ~0.08 s), fine for checking a kernel, not for training a model. float64 always takes
  the PyTorch path, and so does a head dim ``d_model / n_heads`` the kernel lacks (it supports
  16, 32, 64, 128).
- ``"torch"``: force the PyTorch path; ``"triton"`` / ``"interpreter"``: insist on the kernel
  (``"interpreter"`` on a CPU needs ``TRITON_INTERPRET=1`` before the kernels are imported).

The kernel has no attention-probability dropout: ``dropout`` acts on the embeddings and on the
outputs of the attention and MLP sublayers.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ..reference.alibi import alibi_slopes
from ..reference.attention import kv_cache_bytes
from .common import (MLP, NORMS, HeadsConfig, KVCache, TreeLanguageModel, TreeStates, apply_rope, attention_backend,
                     check_state_sizes, make_norm, rope_cos_sin, sinusoidal_positions)
from .registry import register_family, register_model

__all__ = ["POSITION_ENCODINGS", "ATTN_BACKENDS", "TransformerConfig", "Transformer", "CausalSelfAttention",
           "TransformerTreeStates"]

#: Values of the ``pos=`` option.
POSITION_ENCODINGS = ("alibi", "rope", "sinusoidal", "learned", "none")
#: Values of the ``attn_backend=`` option (None: let flash_attention choose).
ATTN_BACKENDS = (None, "triton", "interpreter", "torch")


def _flash() -> Any:
    """Import the kernels lazily, so that importing the models does not import Triton.

    (``linattn_edu.runtime.setup()`` must run before the kernels are imported for the Triton
    interpreter to be enabled on a CPU.)
    """
    from .. import kernels

    return kernels


@dataclasses.dataclass
class TransformerConfig(HeadsConfig):
    """Everything needed to rebuild a :class:`Transformer`: ``build_model("transformer", **asdict(cfg))``.

    Attributes:
        vocab_size, d_model, n_layers, n_heads: sizes; ``d_model % n_heads == 0``.
        pos: position encoding, one of :data:`POSITION_ENCODINGS`.
        max_len: length of the ``"learned"`` table (unused by the other encodings).
        n_kv_heads: key/value heads for grouped-query attention (``n_heads`` = standard
            multi-head, 1 = multi-query); must divide ``n_heads``. None means ``n_heads``.
        mlp_ratio: MLP hidden width / ``d_model``.
        dropout: dropout probability on embeddings and sublayer outputs.
        tie_embeddings: share the token embedding with the output layer.
        attn_backend: one of :data:`ATTN_BACKENDS`; None picks per device (see the module docstring).
        norm: ``"layernorm"`` or ``"rmsnorm"``.
        window: causal sliding-window size (None: full causal attention). With a window the
            decode cache keeps only the last ``window`` keys, so it stops growing.
        rope_base: the RoPE frequency base (``pos="rope"``).
    """

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    pos: str = "alibi"
    max_len: int = 1024
    n_kv_heads: int | None = None
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    tie_embeddings: bool = True
    attn_backend: str | None = None
    norm: str = "layernorm"
    window: int | None = None
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_len", "n_kv_heads"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{name} must be a positive int, got {val!r}")
        if self.pos not in POSITION_ENCODINGS:
            raise ValueError(f"pos must be one of {list(POSITION_ENCODINGS)}, got {self.pos!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads}")
        if self.pos == "rope" and self.head_dim % 2:
            raise ValueError(f"pos='rope' needs an even head dim d_model/n_heads, got {self.head_dim}")
        if self.pos == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"pos='sinusoidal' needs an even d_model, got {self.d_model}")
        if not isinstance(self.mlp_ratio, (int, float)) or isinstance(self.mlp_ratio, bool) or self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be a positive number, got {self.mlp_ratio!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise ValueError(f"tie_embeddings must be a bool, got {self.tie_embeddings!r}")
        if self.attn_backend not in ATTN_BACKENDS:
            raise ValueError(f"attn_backend must be one of {list(ATTN_BACKENDS)}, got {self.attn_backend!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {list(NORMS)}, got {self.norm!r}")
        if self.window is not None and (
            isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1
        ):
            raise ValueError(f"window must be a positive int or None, got {self.window!r}")
        if not isinstance(self.rope_base, (int, float)) or self.rope_base <= 1:
            raise ValueError(f"rope_base must be a number > 1, got {self.rope_base!r}")

    def resolved_backend(self, device: torch.device | str | None = None) -> str | None:
        """The ``backend=`` passed to ``flash_attention`` for tensors on ``device`` (default: the CPU).

        ``attn_backend`` if set; else ``"torch"`` on a CPU or for a head dim the kernel lacks, and
        None (``flash_attention`` chooses) on a GPU. See the module docstring.
        """
        return attention_backend(self.attn_backend, self.head_dim, device)

    def state_bytes(
        self, seq_len: int, bytes_per_element: int = 2, state_bytes_per_element: int | None = None
    ) -> int:
        """Bytes of the KV cache per sequence after ``seq_len`` tokens: ``2 · layers · H_kv · D · T · b``.

        ``T`` is ``min(seq_len, window)`` with a sliding window
        (:func:`~linattn_edu.reference.kv_cache_bytes`). ``state_bytes_per_element`` is accepted
        for a uniform signature and unused (attention keeps no accumulated state).
        """
        seq_len, bpe, _ = check_state_sizes(seq_len, bytes_per_element, state_bytes_per_element)
        cached = seq_len if self.window is None else min(seq_len, self.window)
        return kv_cache_bytes(
            cached, n_layers=self.n_layers, n_kv_heads=self.n_kv_heads, head_dim=self.head_dim, bytes_per_element=bpe
        )


class CausalSelfAttention(nn.Module):
    """Multi-head (or grouped-query) causal self-attention through ``flash_attention``.

    ``(B, T, C) -> (B, T, C)``; also returns this call's keys and values (after RoPE)
    ``(B, H_kv, T_total, D)`` including any ``past`` ones, for the decode cache.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, h, h_kv, hd = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(d, h * hd, bias=False)
        self.kv_proj = nn.Linear(d, 2 * h_kv * hd, bias=False)
        self.out_proj = nn.Linear(h * hd, d, bias=False)
        self.dropout = nn.Dropout(cfg.dropout)

    def project(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``q`` ``(B, H, T, D)``, ``k``, ``v`` ``(B, H_kv, T, D)`` of ``x`` ``(B, T, C)``, RoPE applied if given."""
        cfg = self.cfg
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        k, v = self.kv_proj(x).view(b, t, 2, cfg.n_kv_heads, cfg.head_dim).permute(2, 0, 3, 1, 4)
        if rope is not None:
            cos, sin = rope[0].to(q.dtype), rope[1].to(q.dtype)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return q, k, v

    def forward(
        self,
        x: torch.Tensor,
        *,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        slopes: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x ``(B, T, C)``; past ``(K, V)`` each ``(B, H_kv, T_past, D)``; rope ``(cos, sin)`` each ``(T, D)``."""
        cfg = self.cfg
        b, t, _ = x.shape
        q, k, v = self.project(x, rope)
        if past is not None:
            k = torch.cat([past[0].to(k.dtype), k], dim=2)
            v = torch.cat([past[1].to(v.dtype), v], dim=2)
        # Queries are the last T of the T_past + T keys: flash_attention's end-aligned convention.
        o = _flash().flash_attention(
            q, k, v, causal=True, alibi_slopes=slopes, window=cfg.window, backend=cfg.resolved_backend(q.device)
        )
        o = o.transpose(1, 2).reshape(b, t, cfg.n_heads * cfg.head_dim)
        return self.dropout(self.out_proj(o)), (k, v)

    def tree_attend(
        self,
        x: torch.Tensor,
        *,
        past: tuple[torch.Tensor, torch.Tensor],
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        slopes: torch.Tensor | None,
        visible: torch.Tensor,
        q_pos: torch.Tensor,
        k_pos: torch.Tensor,
    ) -> torch.Tensor:
        """Attention under an arbitrary mask, for tree verification (:meth:`Transformer.tree_step`).

        x ``(B, N, C)``: the tree nodes; past ``(K, V)`` each ``(B, H_kv, T_cached, D)``;
        visible ``(N, T_cached + N)`` bool; q_pos ``(N,)`` / k_pos ``(T_cached + N,)`` absolute
        positions (for ALiBi's ``-m_h (i - j)``). Plain PyTorch, the math of
        ``flash_attention_torch`` with the mask and positions given. Returns ``((B, N, C), (k, v))``
        with the nodes' own keys (after RoPE) and values ``(B, H_kv, N, D)``, which
        :meth:`Transformer.commit_tree` appends to the cache for the accepted path.
        """
        cfg = self.cfg
        b, t, _ = x.shape
        q, k, v = self.project(x, rope)
        node_kv = (k, v)
        k = torch.cat([past[0].to(k.dtype), k], dim=2)
        v = torch.cat([past[1].to(v.dtype), v], dim=2)
        compute = torch.float64 if q.dtype == torch.float64 else torch.float32
        group = cfg.n_heads // cfg.n_kv_heads
        k_full = k.to(compute).repeat_interleave(group, dim=1)
        v_full = v.to(compute).repeat_interleave(group, dim=1)
        scores = torch.matmul(q.to(compute), k_full.transpose(-1, -2)) / math.sqrt(cfg.head_dim)
        if slopes is not None:
            dist = (q_pos[:, None] - k_pos[None, :]).to(compute)
            scores = scores - slopes.to(compute)[:, None, None] * dist
        scores = scores.masked_fill(~visible, float("-inf"))
        o = torch.matmul(torch.softmax(scores, dim=-1), v_full).to(q.dtype)
        o = o.transpose(1, 2).reshape(b, t, cfg.n_heads * cfg.head_dim)
        return self.dropout(self.out_proj(o)), node_kv


def _tree_structure(parents: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(tree_attention_mask(parents), tree_depths(parents))``, cached for hashable (tuple) parents:
    a speculative loop verifies trees of the same shape again and again."""
    from ..reference.speculative import tree_attention_mask, tree_depths

    if isinstance(parents, tuple):
        return _tree_structure_cached(parents)
    return tree_attention_mask(parents), tree_depths(parents)


@functools.lru_cache(maxsize=256)
def _tree_structure_cached(parents: tuple) -> tuple[np.ndarray, np.ndarray]:
    from ..reference.speculative import tree_attention_mask, tree_depths

    return tree_attention_mask(parents), tree_depths(parents)  # read only by tree_step


class TransformerTreeStates(TreeStates):
    """What :meth:`Transformer.tree_step` keeps to commit an accepted path without another pass.

    Attributes:
        keys, values: one ``(B, H_kv, N, D)`` tensor per layer: every tree node's key (after
            RoPE) and value.
        parents: the tree's parent array (length ``N``).
        position: the cache position the tree was verified at.
    """


class Block(nn.Module):
    """Pre-norm residual block: ``x + Attn(Norm(x))``, then ``x + MLP(Norm(x))``. ``(B, T, C)``."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.window = cfg.window
        self.norm_attn = make_norm(cfg.norm, cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.norm_mlp = make_norm(cfg.norm, cfg.d_model)
        self.mlp = MLP(cfg.d_model, cfg.mlp_ratio, cfg.dropout)

    def forward(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None, position: int, keep_state: bool,
        **attn_kwargs: Any,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """x ``(B, T, C)`` after the cached ``past`` ``(K, V)``; returns ``(x, (K, V) to cache or None)``.

        The keys and values kept are the last ``window`` ones with a sliding window (older keys
        are never seen again). ``attn_kwargs``: ``rope``, ``slopes`` of :class:`CausalSelfAttention`.
        """
        a, (k, v) = self.attn(self.norm_attn(x), past=past, **attn_kwargs)
        x = x + a
        x = x + self.mlp(self.norm_mlp(x))
        if not keep_state:
            return x, None
        if self.window is not None:
            k, v = k[:, :, -self.window:], v[:, :, -self.window:]
        return x, (k, v)


#: Softmax-attention families of the experiments (built as ``"transformer"`` LMs, or as ``"based"``
#: window mixers in the MQAR models).
register_family("attention", label="softmax", color="tab:red", marker="*")
register_family("sliding_window", label="sliding window", color="tab:orange", marker="s")
register_family("alibi", label="ALiBi", color="tab:olive", marker="<")


@register_model("transformer")
class Transformer(TreeLanguageModel):
    """Decoder-only Transformer LM; see the module docstring. Build with ``build_model("transformer", ...)``.

    ``model(tokens)``: ``(B, T)`` int64 -> ``(B, T, vocab_size)`` logits.
    ``model.prefill(tokens)`` / ``model.step(token, cache)``: incremental decoding with a
    :class:`~linattn_edu.models.common.KVCache`; a step runs attention with one query against
    all cached keys (``Tq = 1 < Tk``, end-aligned).
    ``model.tree_step(token_tree, parents, cache)``: logits of a whole draft tree in one pass
    (speculative decoding, :mod:`linattn_edu.speculative`).

    ``forward``, ``prefill``, ``step`` and ``tree_step`` raise a ``ValueError`` naming ``max_len``
    when a ``"learned"`` table is too short for the positions asked.
    """

    kind = "transformer"
    config_class = TransformerConfig
    cache_class = KVCache
    tree_states_class = TransformerTreeStates

    def _build_embedding(self, cfg: TransformerConfig) -> None:
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.d_model) if cfg.pos == "learned" else None
        # (H,) slopes, or None. Kept in float64 so that a float64 model gets exact slopes (they are
        # not parameters: derived from n_heads, hence not saved in the state dict).
        slopes = torch.tensor(alibi_slopes(cfg.n_heads), dtype=torch.float64) if cfg.pos == "alibi" else None
        self.register_buffer("alibi_slopes", slopes, persistent=False)

    def _build_blocks(self, cfg: TransformerConfig) -> list[nn.Module]:
        return [Block(cfg) for _ in range(cfg.n_layers)]

    # ------------------------------------------------------------------------------------------

    def _check_max_len(self, last: int) -> None:
        cfg = self.config
        if cfg.pos == "learned" and last >= cfg.max_len:
            raise ValueError(
                f"pos='learned' has a table of max_len={cfg.max_len} positions, but position {last} "
                f"was requested; build the model with a larger max_len or use pos='alibi'/'rope'/'sinusoidal'"
            )

    def _embed_at(
        self, tokens: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Embeddings ``(B, T, C)`` of ``tokens`` at absolute ``positions`` ``(T,)``, and RoPE's ``(cos, sin)`` or None."""
        cfg = self.config
        x = self.tok_emb(tokens)
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        elif cfg.pos == "sinusoidal":
            # Vaswani et al. scale the token embeddings by sqrt(d_model) before adding the unit-scale
            # sinusoids; without it the position vector would swamp the small-initialized embedding.
            x = x * math.sqrt(cfg.d_model) + sinusoidal_positions(positions, cfg.d_model).to(x.dtype)
        x = self.emb_dropout(x)
        rope = rope_cos_sin(positions, cfg.head_dim, base=cfg.rope_base, dtype=x.dtype) if cfg.pos == "rope" else None
        return x, rope

    def _embed(self, tokens: torch.Tensor, start: int) -> tuple[torch.Tensor, dict[str, Any]]:
        end = start + tokens.shape[1]
        self._check_max_len(end - 1)
        x, rope = self._embed_at(tokens, torch.arange(start, end, device=tokens.device))
        return x, {"rope": rope, "slopes": self.alibi_slopes}

    def _new_cache(self, layers: list[Any], position: int) -> KVCache:
        return KVCache([k for k, _ in layers], [v for _, v in layers], position)

    def _check_cache_layers(self, cache: KVCache, batch: int) -> None:
        if len(cache.keys) != self.config.n_layers or len(cache.values) != self.config.n_layers:
            raise ValueError(f"cache must hold {self.config.n_layers} layers, got {len(cache.keys)}")
        self._check_batch(cache, batch)

    def _tree_forward(self, tokens: torch.Tensor, parents: Any, cache: KVCache
                      ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], list[int]]:
        """The tree pass (see :meth:`tree_step`): node ``i`` attends to every cached key plus its
        own ancestors and itself, at position ``cache.position + depth(i)``; RoPE, ALiBi, learned,
        sinusoidal and no positions, grouped-query heads and sliding windows all follow the node's
        absolute position. The tree mask is not causal-by-index, so the attention runs in plain
        PyTorch (:meth:`CausalSelfAttention.tree_attend`) rather than through ``flash_attention``."""
        cfg = self.config
        if isinstance(parents, torch.Tensor):
            parents = parents.detach().cpu().numpy()
        par = tuple(np.asarray(parents).reshape(-1).tolist()) if np.asarray(parents).ndim == 1 else parents
        mask, depths_np = _tree_structure(par)
        n = tokens.shape[1]
        if mask.shape[0] != n:
            raise ValueError(f"parents must have one entry per node: token_tree has N={n} nodes, parents has {mask.shape[0]}")
        device = tokens.device
        depths = torch.as_tensor(depths_np, device=device)
        positions = cache.position + depths  # (N,) absolute positions of the nodes
        self._check_max_len(int(positions.max()))
        t_cached = cache.seq_len
        cached_pos = torch.arange(cache.position - t_cached, cache.position, device=device)
        k_pos = torch.cat([cached_pos, positions])  # (T_cached + N,)
        visible = torch.cat(
            [torch.ones(n, t_cached, dtype=torch.bool, device=device), torch.as_tensor(mask, device=device)], dim=1
        )
        if cfg.window is not None:
            visible &= k_pos[None, :] > positions[:, None] - cfg.window

        x, rope = self._embed_at(tokens, positions)
        node_keys, node_values = [], []
        for i, block in enumerate(self.blocks):
            past = (cache.keys[i], cache.values[i])
            a, (k, v) = block.attn.tree_attend(
                block.norm_attn(x), past=past, rope=rope, slopes=self.alibi_slopes,
                visible=visible, q_pos=positions, k_pos=k_pos,
            )
            node_keys.append(k)
            node_values.append(v)
            x = x + a
            x = x + block.mlp(block.norm_mlp(x))
        logits = self.lm_head(self.norm_out(x))
        return logits, node_keys, node_values, [int(p) for p in par]

    def _commit(self, cache: KVCache, states: TreeStates, index: torch.Tensor) -> KVCache:
        """The nodes' keys and values appended to each layer's, the window applied."""
        keys, values = [], []
        window = self.config.window
        for past_k, past_v, k, v in zip(cache.keys, cache.values, states.keys, states.values):
            k = torch.cat([past_k, k.index_select(2, index).to(past_k.dtype)], dim=2)
            v = torch.cat([past_v, v.index_select(2, index).to(past_v.dtype)], dim=2)
            if window is not None:
                k, v = k[:, :, -window:], v[:, :, -window:]
            keys.append(k)
            values.append(v)
        return KVCache(keys, values, cache.position + len(index))

    def extra_repr(self) -> str:
        cfg = self.config
        return f"pos={cfg.pos!r}, heads={cfg.n_heads}/{cfg.n_kv_heads} kv, head_dim={cfg.head_dim}, window={cfg.window}"
