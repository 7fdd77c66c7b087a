"""How many bytes a model must keep per sequence to go on generating: KV cache or recurrent state.

:func:`state_bytes` computes it from a kind and its options, without building the model, for
plots of recall against state size (the Based paper's Pareto frontier)::

    >>> state_bytes("transformer", seq_len=1024, d_model=64, n_layers=2, n_heads=4)   # grows with T
    524288
    >>> state_bytes("linear", seq_len=1024, d_model=64, n_layers=2, n_heads=4, feature_map="taylor")
    74256
    >>> state_bytes("based", seq_len=1024, d_model=64, n_layers=2, n_heads=4)   # window of 64
    54024
    >>> state_bytes("hawk", seq_len=1024, d_model=64, n_layers=2, n_heads=4)    # constant
    1024

The formulas (per sequence; ``D = d_model / n_heads``, ``b`` bytes per element):

- ``"transformer"``: ``2 · layers · H_kv · D · T · b``, with ``T`` replaced by ``min(T, window)``
  for a sliding window (:func:`~linattn_edu.reference.kv_cache_bytes`);
- ``"linear"``: ``layers · H · (F·D + F) · b_state`` with ``F`` the number of features
  (:func:`~linattn_edu.reference.linear_attention_state_bytes`; ``z`` is counted even with
  ``normalize=False`` because the cache keeps it);
- ``"based"``: the sum over the mixers of its ``layer_pattern``: ``"linear"`` as above,
  ``"window"`` ``2 · H · D · min(T, window) · b``, ``"conv"`` ``d_model · (kernel_size - 1) · b``;
- ``"hawk"``: ``layers · (W · (conv_width - 1) · b + W · b_state)`` with ``W = lru_width`` (the
  conv's last inputs and the RG-LRU state ``h``);
- ``"griffin"``: each ``"recurrent"`` layer of its ``layer_pattern`` as in Hawk, each
  ``"attention"`` layer ``2 · H_kv · D · min(T, window) · b`` (multi-query: ``H_kv = 1``);
- ``"linearized"``: per layer ``H · F · D · b_state`` (``S``), plus ``H · F · b_state`` (``z``)
  for ``attention="linear"`` or ``2 · H · D · (T mod g) · b`` (the current group's keys and
  values) for ``attention="grouped"``, plus ``H · D · (K - 1) · b`` with ``conv`` (the conv buffer).

Each formula is the ``state_bytes(seq_len, bytes_per_element, state_bytes_per_element)`` method of
the kind's config class (:class:`~linattn_edu.models.TransformerConfig`, ``LinearConfig``,
``BasedConfig``, ``HawkConfig``, ``GriffinConfig``, ``LinearizedConfig``); this module only
dispatches to it by kind. They equal :func:`~linattn_edu.models.cache_bytes` of a real model's cache after a prefill of
``seq_len`` tokens (batch 1) when ``bytes_per_element`` is the model's element size. One caveat:
the linear-attention state (and the RG-LRU state ``h``) is accumulated in float32 even in a 16-bit
model (the kernels' choice, and the official Griffin code's: a 16-bit sum of ``T`` terms loses
precision and can overflow), so for a bf16 model's actual cache pass ``state_bytes_per_element=4``;
the default counts it at ``bytes_per_element``, as papers do when they compare state sizes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from . import griffin, linear, linearized, transformer  # noqa: F401  (the kinds register themselves)
from .common import check_state_sizes
from .registry import MODEL_REGISTRY

__all__ = ["STATE_KINDS", "state_bytes", "model_state_bytes"]

#: Kinds :func:`state_bytes` knows.
STATE_KINDS = ("transformer", "linear", "based", "hawk", "griffin", "linearized")


def state_bytes(
    kind: str,
    *,
    seq_len: int,
    d_model: int,
    n_layers: int,
    n_heads: int,
    bytes_per_element: int = 2,
    state_bytes_per_element: int | None = None,
    **options: Any,
) -> int:
    """Bytes of decode state (KV cache or recurrent state) per sequence after ``seq_len`` tokens.

    Args:
        kind: one of :data:`STATE_KINDS`.
        seq_len: tokens consumed ``T`` (>= 0).
        d_model, n_layers, n_heads: the model's sizes, as given to ``build_model``.
        bytes_per_element: element size of keys, values and conv states (2 for fp16/bf16,
            4 for float32, 8 for float64).
        state_bytes_per_element: element size of linear-attention states ``(S, z)`` and RG-LRU
            states ``h``; None means ``bytes_per_element`` (see the module docstring for 16-bit
            models, whose real cache holds them in float32).
        **options: the kind's options as for ``build_model`` (e.g. ``window``, ``n_kv_heads``,
            ``feature_map``, ``feature_dim``, ``layer_pattern``, ``lru_width``, ``conv_width``);
            ``vocab_size`` may be passed and is ignored, so
            ``state_bytes(model.kind, seq_len=T, **asdict(model.config))`` works.

    Returns:
        The number of bytes, an int.

    Raises:
        ValueError: an unknown ``kind`` (listing :data:`STATE_KINDS`), a bad size, or an option
            the kind rejects (the kind's own message, naming the option).
    """
    if not isinstance(kind, str) or kind not in STATE_KINDS:
        raise ValueError(f"kind must be one of {list(STATE_KINDS)}, got {kind!r}")
    seq_len, bpe, sbpe = check_state_sizes(seq_len, bytes_per_element, state_bytes_per_element)
    options = dict(options)
    vocab_size = options.pop("vocab_size", 2)
    config_class = MODEL_REGISTRY[kind].config_class  # type: ignore[attr-defined]
    valid = {f.name for f in dataclasses.fields(config_class)} - {"vocab_size", "d_model", "n_layers", "n_heads"}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for kind {kind!r}; valid options: {sorted(valid)}")
    cfg = config_class(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads, **options)
    return cfg.state_bytes(seq_len, bpe, sbpe)


def model_state_bytes(model: nn.Module, *, seq_len: int, bytes_per_element: int | None = None) -> int:
    """:func:`state_bytes` of a built zoo model (its ``kind`` and ``config``) after ``seq_len`` tokens.

    ``bytes_per_element`` defaults to the element size of the model's parameters; for a 16-bit
    model linear-attention and RG-LRU states are counted at 4 bytes (float32, as its cache holds
    them), so the result equals ``cache_bytes`` of the model's cache after a prefill of
    ``seq_len`` tokens with batch size 1.

    Raises:
        ValueError: the model's kind is not one of :data:`STATE_KINDS`.
        TypeError: ``model`` has no ``kind`` and ``config``.
    """
    kind, cfg = getattr(model, "kind", None), getattr(model, "config", None)
    if kind is None or cfg is None or not dataclasses.is_dataclass(cfg):
        raise TypeError(f"model must be a zoo model with .kind and a dataclass .config, got {type(model).__name__}")
    dtype = next(model.parameters()).dtype
    element = torch.empty((), dtype=dtype).element_size()
    bpe = element if bytes_per_element is None else bytes_per_element
    sbpe = max(element, 4) if bytes_per_element is None else None
    opts = dataclasses.asdict(cfg)
    sizes = {k: opts.pop(k) for k in ("d_model", "n_layers", "n_heads")}
    return state_bytes(kind, seq_len=seq_len, bytes_per_element=bpe, state_bytes_per_element=sbpe, **sizes, **opts)
