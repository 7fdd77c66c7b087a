"""Interactive figures for the chapters (ipywidgets + matplotlib).

Each widget comes with a plain plotting function that draws its default state, so a static
page of the book shows a meaningful figure; the sliders themselves need a live kernel
(Jupyter or Colab).

- :func:`plot_alibi`, :func:`alibi_widget` (Chapter 3): ALiBi's bias, slopes and attention pattern.
- :func:`plot_recall_frontier`, :func:`recall_widget`: recall against state size on MQAR, the
  stored sweep with a chosen model's state marked, and a button that trains it live.
- :func:`plot_gates`, :func:`gates_widget`, :func:`plot_token_gates`: the RG-LRU's gates (Griffin/Hawk):
  decay, memory horizon, impulse response and the √(1−a_t²) normalization; and a trained layer's
  gates on a text snippet.
- :func:`static_alibi_widget`, :func:`static_gates_widget`, :func:`static_recall_widget`: the same three
  widgets for the static web page, where no kernel runs: states precomputed in Python by the functions
  above (:func:`alibi_payload`, :func:`gates_payload`, :func:`recall_payload`), drawn as SVG by a small
  dependency-free script (``static.js``) whose sliders respond in the browser.
- :mod:`linattn_edu.widgets.diagrams`: diagrams drawn by code (FlashAttention's tile schedule, chunked
  linear attention, scan dependencies, Griffin's blocks, convolution taps over a draft tree).
"""

from .alibi import alibi_widget, plot_alibi
from .recall import RecallExplorer, chosen_state_bytes, plot_recall_frontier, recall_widget
from .gates import GatesExplorer, gates_widget, plot_gates, plot_token_gates
from .static import (
    StaticWidget,
    alibi_payload,
    gates_payload,
    recall_payload,
    static_alibi_widget,
    static_gates_widget,
    static_recall_widget,
)

__all__ = [
    "alibi_widget", "plot_alibi", "plot_recall_frontier", "recall_widget", "RecallExplorer", "chosen_state_bytes",
    "plot_gates", "gates_widget", "plot_token_gates", "GatesExplorer",
    "static_alibi_widget", "static_gates_widget", "static_recall_widget", "StaticWidget",
    "alibi_payload", "gates_payload", "recall_payload",
]
