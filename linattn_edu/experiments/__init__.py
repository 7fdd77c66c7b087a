"""Experiments that reproduce a paper's claim at book scale, each a function returning a results dict.

- :mod:`.extrapolation` (Chapter 3): ALiBi's "train short, test long" length extrapolation.
- :mod:`.recurrent` (the Griffin chapter): decode latency and state against the context, length
  generalization and MQAR recall of Hawk and Griffin against an MQA Transformer.
"""

from .extrapolation import (
    POSITION_SCHEMES,
    PRESETS,
    alibi_cost_comparison,
    extrapolation_config,
    plot_extrapolation,
    result_to_rows,
    run_extrapolation,
)

__all__ = [
    "POSITION_SCHEMES",
    "PRESETS",
    "alibi_cost_comparison",
    "extrapolation_config",
    "plot_extrapolation",
    "result_to_rows",
    "run_extrapolation",
]

# The Griffin chapter: decode latency, length generalization and MQAR recall of Hawk and Griffin.
from .recurrent import (
    DECODE_PRESETS,
    LENGTH_PRESETS,
    MQAR_RECURRENT_PRESETS,
    RECURRENT_KINDS,
    decode_latency,
    decode_latency_config,
    length_generalization_config,
    mqar_recurrent_config,
    plot_decode_latency,
    plot_length_generalization,
    run_length_generalization,
)

__all__ += [
    "DECODE_PRESETS",
    "LENGTH_PRESETS",
    "MQAR_RECURRENT_PRESETS",
    "RECURRENT_KINDS",
    "decode_latency",
    "decode_latency_config",
    "length_generalization_config",
    "mqar_recurrent_config",
    "plot_decode_latency",
    "plot_length_generalization",
    "run_length_generalization",
]

# The linearized-LLM chapter: linear attention + DWConv / grouping from scratch, and linearizing a Transformer.
from .linearized import (
    DEFAULT_LINEARIZED_VARIANTS,
    LINEARIZATION_PRESETS,
    LINEARIZATION_STAGES,
    LINEARIZED_PERPLEXITY_PRESETS,
    LINEARIZED_VARIANTS,
    linearization_config,
    linearized_perplexity_config,
    plot_linearization,
    plot_linearized_perplexity,
    run_linearization,
    run_linearized_perplexity,
)

__all__ += [
    "DEFAULT_LINEARIZED_VARIANTS",
    "LINEARIZATION_PRESETS",
    "LINEARIZATION_STAGES",
    "LINEARIZED_PERPLEXITY_PRESETS",
    "LINEARIZED_VARIANTS",
    "linearization_config",
    "linearized_perplexity_config",
    "plot_linearization",
    "plot_linearized_perplexity",
    "run_linearization",
    "run_linearized_perplexity",
]

# Reference runs (stored by scripts/run_experiment.py, loaded by the chapters); importing the
# experiment modules registers their stored experiments in stored.EXPERIMENTS.
from . import compare, mqar_study, mqar_sweep, stored, throughput  # noqa: E402,F401
