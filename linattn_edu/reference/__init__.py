"""NumPy reference implementations: float64, readable, the source of truth for every test."""

from .attention import (
    attention_mask,
    kv_cache_bytes,
    naive_softmax,
    repeat_kv,
    softmax,
    softmax_attention,
)

__all__ = [
    "attention_mask",
    "kv_cache_bytes",
    "naive_softmax",
    "repeat_kv",
    "softmax",
    "softmax_attention",
]

from .alibi import alibi_attention, alibi_bias, alibi_bias_official, alibi_slopes

__all__ += ["alibi_attention", "alibi_bias", "alibi_bias_official", "alibi_slopes"]
