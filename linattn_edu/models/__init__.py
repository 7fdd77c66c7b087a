"""The model zoo: language models built by name, all with the same decoding interface.

>>> from linattn_edu.models import build_model
>>> model = build_model("transformer", vocab_size=256, d_model=64, n_layers=2, n_heads=4, pos="alibi")

Every model maps ``(B, T)`` int64 tokens to ``(B, T, vocab)`` logits and decodes incrementally
with ``logits, cache = model.prefill(tokens)`` then ``logits, cache = model.step(token, cache)``;
:func:`cache_bytes` measures any model's cache. ``model.kind`` and ``model.config`` say how to
rebuild it.

Kinds are registered with :func:`register_model`; a chapter adding a kind puts its module in this
package and imports it below. Importing this package does not import Triton (the attention
kernels are imported on first use, after :func:`linattn_edu.runtime.setup`).
"""

from .common import (
    MLP,
    NORMS,
    KVCache,
    LanguageModel,
    RMSNorm,
    TreeLanguageModel,
    TreeStates,
    apply_rope,
    cache_bytes,
    count_parameters,
    generate,
    rope_cos_sin,
    sinusoidal_positions,
)
from .registry import (FAMILY_INFO, MODEL_REGISTRY, FamilyInfo, available_models, build_model, family_info,
                       register_family, register_model)
from .transformer import ATTN_BACKENDS, POSITION_ENCODINGS, Transformer, TransformerConfig

__all__ = [
    "FAMILY_INFO",
    "FamilyInfo",
    "LanguageModel",
    "TreeLanguageModel",
    "TreeStates",
    "family_info",
    "register_family",
    "ATTN_BACKENDS",
    "KVCache",
    "MLP",
    "MODEL_REGISTRY",
    "NORMS",
    "POSITION_ENCODINGS",
    "RMSNorm",
    "Transformer",
    "TransformerConfig",
    "apply_rope",
    "available_models",
    "build_model",
    "cache_bytes",
    "count_parameters",
    "generate",
    "register_model",
    "rope_cos_sin",
    "sinusoidal_positions",
]

# The Based chapter: linear attention, Based, and state sizes.
from .linear import (
    LINEAR_FEATURE_MAPS,
    MIXERS,
    MLP_KINDS,
    Based,
    BasedConfig,
    GatedMLP,
    LinearAttention,
    LinearConfig,
    LinearTransformer,
    MixerCache,
    ShortConv,
    WindowAttention,
    default_layer_pattern,
    feature_map_torch,
)
from .linear import (
    CONV_FORMS,
    ZOOLOGY_MQAR_MODELS,
    BaseConv,
    ZoologyBaseConv,
    zoology_layer_pattern,
    zoology_mqar_options,
)
from .state import STATE_KINDS, model_state_bytes, state_bytes

__all__ += [
    "CONV_FORMS",
    "ZOOLOGY_MQAR_MODELS",
    "BaseConv",
    "ZoologyBaseConv",
    "zoology_layer_pattern",
    "zoology_mqar_options",
    "LINEAR_FEATURE_MAPS",
    "MIXERS",
    "MLP_KINDS",
    "STATE_KINDS",
    "Based",
    "BasedConfig",
    "GatedMLP",
    "LinearAttention",
    "LinearConfig",
    "LinearTransformer",
    "MixerCache",
    "ShortConv",
    "WindowAttention",
    "default_layer_pattern",
    "feature_map_torch",
    "model_state_bytes",
    "state_bytes",
]

# The Griffin chapter: gated linear recurrences (Hawk) and local attention (Griffin).
from .griffin import (
    GRIFFIN_BACKENDS,
    GRIFFIN_BLOCKS,
    RGLRU,
    BlockDiagonalLinear,
    CausalConv1d,
    Griffin,
    GriffinCache,
    GriffinConfig,
    GriffinMLP,
    Hawk,
    HawkConfig,
    LocalAttention,
    RecurrentBlock,
    RecurrentState,
    griffin_layer_pattern,
    sqrt_bounded_grad,
)

__all__ += [
    "GRIFFIN_BACKENDS",
    "GRIFFIN_BLOCKS",
    "RGLRU",
    "BlockDiagonalLinear",
    "CausalConv1d",
    "Griffin",
    "GriffinCache",
    "GriffinConfig",
    "GriffinMLP",
    "Hawk",
    "HawkConfig",
    "LocalAttention",
    "RecurrentBlock",
    "RecurrentState",
    "griffin_layer_pattern",
    "sqrt_bounded_grad",
]

# The linearized-LLM chapter: grouped linear attention + causal DWConv, tree verification, conversion.
from .linearized import (
    CONV_INITS,
    LINEARIZED_ATTENTIONS,
    LINEARIZED_POSITIONS,
    LOCAL_KINDS,
    Linearized,
    LinearizedAttention,
    LinearizedCache,
    LinearizedConfig,
    LinearizedLayerState,
    linearize,
)

__all__ += [
    "CONV_INITS",
    "LINEARIZED_ATTENTIONS",
    "LINEARIZED_POSITIONS",
    "LOCAL_KINDS",
    "Linearized",
    "LinearizedAttention",
    "LinearizedCache",
    "LinearizedConfig",
    "LinearizedLayerState",
    "linearize",
]
