"""Interactive figures for the chapters (ipywidgets + matplotlib).

Each widget comes with a plain plotting function that draws its default state, so a static
page of the book shows a meaningful figure; the sliders themselves need a live kernel
(Jupyter or Colab).

- :func:`plot_alibi`, :func:`alibi_widget` (Chapter 3): ALiBi's bias, slopes and attention pattern.
"""

from .alibi import alibi_widget, plot_alibi

__all__ = ["alibi_widget", "plot_alibi"]
