"""Experiments that reproduce a paper's claim at book scale, each a function returning a results dict.

- :mod:`.extrapolation` (Chapter 3): ALiBi's "train short, test long" length extrapolation.
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
