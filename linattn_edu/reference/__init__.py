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

from .linear import (
    FEATURE_MAPS,
    elu_feature_map,
    feature_map_dim,
    identity_feature_map,
    linear_attention,
    linear_attention_state_bytes,
    relu_feature_map,
    taylor_feature_map,
    taylor_feature_map_compact,
)

__all__ += [
    "FEATURE_MAPS",
    "elu_feature_map",
    "feature_map_dim",
    "identity_feature_map",
    "linear_attention",
    "linear_attention_state_bytes",
    "relu_feature_map",
    "taylor_feature_map",
    "taylor_feature_map_compact",
]

from .scan import (
    SCAN_METHODS,
    causal_conv1d,
    linear_scan,
    linear_scan_associative,
    linear_scan_sequential,
    rg_lru,
)

__all__ += [
    "SCAN_METHODS",
    "causal_conv1d",
    "linear_scan",
    "linear_scan_associative",
    "linear_scan_sequential",
    "rg_lru",
]

from .speculative import tree_attention_mask, tree_depths, tree_paths

__all__ += ["tree_attention_mask", "tree_depths", "tree_paths"]

from .linearized import (
    GROUPED_FORMS,
    LOCAL_SCORES,
    augmented_linear_attention,
    centered_conv1d,
    grouped_linear_attention,
    value_conv,
)

__all__ += [
    "GROUPED_FORMS",
    "LOCAL_SCORES",
    "augmented_linear_attention",
    "centered_conv1d",
    "grouped_linear_attention",
    "value_conv",
]

from .decay import DECAY_FORMS, decay_linear_attention, retnet_decays

__all__ += ["DECAY_FORMS", "decay_linear_attention", "retnet_decays"]
