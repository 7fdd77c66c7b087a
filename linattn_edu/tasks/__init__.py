"""Synthetic tasks that probe what a sequence model can do, generated offline from a seed.

- :func:`make_mqar`: multi-query associative recall (Zoology / Based), the recall test of the
  recall-vs-state-size tradeoff; :func:`mqar_accuracy` scores predictions on its query positions.
"""

from .mqar import IGNORE_INDEX, make_mqar, mqar_accuracy, mqar_query_slots

__all__ = ["IGNORE_INDEX", "make_mqar", "mqar_accuracy", "mqar_query_slots"]
