"""An interactive look at ALiBi: the bias of one head, the slopes of all heads, the attention it yields.

Two entry points:

- :func:`plot_alibi` draws one state as a :class:`matplotlib.figure.Figure` (no pyplot state,
  so it displays exactly once when it is the last expression of a notebook cell). A static book
  shows this figure.
- :func:`alibi_widget` wraps the same drawing in ipywidgets sliders (number of heads, head,
  sequence length) and a toggle (ALiBi / no bias). It redraws into an :class:`ipywidgets.Image`,
  so the first state is embedded in a static HTML page too; moving a slider needs a live kernel
  (Jupyter or Colab).

The three panels:

(a) the bias ``-m_h (i - j)`` of the chosen head over the visible (causal) query/key pairs;
(b) the slopes ``m_h`` of all heads (:func:`~linattn_edu.reference.alibi_slopes`, the official
    rule, non-monotone when ``n_heads`` is not a power of two), the chosen head highlighted;
(c) the causal attention weights ``softmax(q·k/sqrt(D) + bias)`` for seeded random queries and
    keys: the same ``q`` and ``k`` for every head, so only the slope changes between heads.
"""

from __future__ import annotations

import io
from typing import Any

import ipywidgets
import numpy as np
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from ..reference import alibi_bias, alibi_slopes, attention_mask, softmax

__all__ = ["plot_alibi", "alibi_widget", "AlibiExplorer", "attention_weights", "HEAD_DIM"]

#: Head dimension of the random queries and keys in panel (c).
HEAD_DIM = 16
#: Lower end of the color scale of panel (a): e^-10 ~ 5e-5, a key that far is practically unseen.
BIAS_FLOOR = -10.0
#: Largest values the widget's sliders offer.
MAX_HEADS = 32
MAX_SEQ_LEN = 256


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _validate(n_heads: Any, head: Any, seq_len: Any, seed: Any) -> tuple[int, int, int, int]:
    n_heads = _int(n_heads, "n_heads", 1)
    head = _int(head, "head", 0)
    if head >= n_heads:
        raise ValueError(f"head must be in 0..n_heads-1 = 0..{n_heads - 1}, got {head}")
    seq_len = _int(seq_len, "seq_len", 2)
    seed = _int(seed, "seed", 0)
    return n_heads, head, seq_len, seed


def attention_weights(
    n_heads: int, head: int, seq_len: int, *, seed: int = 0, alibi: bool = True
) -> np.ndarray:
    """The ``(T, T)`` causal attention weights that panel (c) shows.

    ``q, k ~ N(0, 1)`` of shape ``(T, HEAD_DIM)`` drawn from ``numpy.random.default_rng(seed)``
    (the same for every head); weights ``softmax(q k^T / sqrt(D) + bias)`` with the causal mask,
    where ``bias`` is ALiBi's ``-m_head (i - j)`` if ``alibi`` else 0. Masked entries are 0.

    Raises:
        ValueError: ``n_heads < 1``, ``head`` outside ``0..n_heads-1``, ``seq_len < 2``, ``seed < 0``.
    """
    n_heads, head, seq_len, seed = _validate(n_heads, head, seq_len, seed)
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((seq_len, HEAD_DIM))
    k = rng.standard_normal((seq_len, HEAD_DIM))
    scores = q @ k.T / np.sqrt(HEAD_DIM)
    if alibi:
        scores = scores + alibi_bias(n_heads, seq_len)[head]
    mask = attention_mask(seq_len, seq_len, causal=True)
    return softmax(np.where(mask, scores, -np.inf), axis=-1)


def _slope_label(m: float) -> str:
    """``m`` as a power of two in mathtext, e.g. ``$2^{-1.5}$``."""
    exponent = float(np.log2(m))
    text = str(int(round(exponent))) if np.isclose(exponent, round(exponent)) else f"{exponent:.3g}"
    return f"$2^{{{text}}}$"


def _draw(fig: Figure, n_heads: int, head: int, seq_len: int, seed: int, alibi: bool) -> None:
    """Draw the three panels into an empty ``fig``."""
    slopes = alibi_slopes(n_heads)
    mask = attention_mask(seq_len, seq_len, causal=True)
    bias = np.where(mask, alibi_bias(n_heads, seq_len)[head], np.nan)  # future keys: masked
    weights = attention_weights(n_heads, head, seq_len, seed=seed, alibi=alibi)
    ax_bias, ax_slopes, ax_attn = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1.1, 1]})

    cmap = _cmap("magma")
    # One color scale for every head and length, so that switching heads shows how far each one
    # reaches: a bias of -10 multiplies a key's weight by e^-10 ~ 5e-5 (effectively invisible).
    im = ax_bias.imshow(bias, cmap=cmap, vmin=BIAS_FLOOR, vmax=0.0, interpolation="nearest")
    ax_bias.set_title(f"(a) ALiBi bias of head {head}: $-m_h\\,(i-j)$,\n"
                      f"$m_{{{head}}}$ = {_slope_label(slopes[head])} = {slopes[head]:.4g}", fontsize=10)
    ax_bias.set_xlabel("key position j")
    ax_bias.set_ylabel("query position i")
    fig.colorbar(im, ax=ax_bias, fraction=0.046, pad=0.04, extend="min",
                 label=f"bias added to the score (color clipped at {BIAS_FLOOR:g})")

    heads = np.arange(n_heads)
    colors = ["C3" if h == head else "C0" for h in heads]
    ax_slopes.bar(heads, slopes, color=colors, width=0.75)
    ax_slopes.set_yscale("log", base=2)
    ax_slopes.set_xlabel("head h (red: the head shown)")
    ax_slopes.set_ylabel("slope $m_h$ (log scale)")
    ax_slopes.set_title(f"(b) slopes of all {n_heads} heads", fontsize=10)
    step = max(1, n_heads // 16)
    ax_slopes.set_xticks(heads[::step])
    ax_slopes.set_ylim(slopes.min() / 2, 1.0)
    ax_slopes.grid(axis="y", alpha=0.3)

    cmap_w = _cmap("viridis")
    shown = np.where(mask, weights, np.nan)
    im_w = ax_attn.imshow(shown, cmap=cmap_w, norm=PowerNorm(0.5, vmin=0.0, vmax=1.0), interpolation="nearest")
    what = f"with ALiBi (head {head})" if alibi else "no bias"
    ax_attn.set_title(f"(c) causal attention weights, {what}\nrandom q, k (seed {seed}, D = {HEAD_DIM})",
                      fontsize=10)
    ax_attn.set_xlabel("key position j")
    ax_attn.set_ylabel("query position i")
    fig.colorbar(im_w, ax=ax_attn, fraction=0.046, pad=0.04, label="attention weight (sqrt color scale)")
    fig.suptitle(f"ALiBi with {n_heads} heads, T = {seq_len} (grey: future keys, masked)", fontsize=11)


def _cmap(name: str) -> Any:
    """A copy of colormap ``name`` whose masked (NaN) cells are light grey."""
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad="0.88")


def plot_alibi(
    n_heads: int = 8,
    head: int = 0,
    seq_len: int = 32,
    *,
    seed: int = 0,
    alibi: bool = True,
    figsize: tuple[float, float] = (14.0, 4.4),
) -> Figure:
    """Draw ALiBi's bias, slopes and attention pattern for one state; returns the Figure.

    Args:
        n_heads: number of heads ``H`` (slopes from :func:`~linattn_edu.reference.alibi_slopes`).
        head: the head shown in panels (a) and (c), ``0 <= head < n_heads``.
        seq_len: sequence length ``T >= 2``.
        seed: seed of the random queries and keys of panel (c).
        alibi: panel (c) with the ALiBi bias (True) or without any bias (False).
        figsize: size in inches.

    Returns:
        A :class:`matplotlib.figure.Figure` with three titled, labelled panels and two colorbars.
        Its ``axes[0]`` holds the bias image, ``axes[1]`` the slopes, ``axes[2]`` the weights.

    Raises:
        ValueError: ``n_heads < 1``, ``head`` outside ``0..n_heads-1``, ``seq_len < 2``, ``seed < 0``,
            each message naming the argument.
    """
    n_heads, head, seq_len, seed = _validate(n_heads, head, seq_len, seed)
    fig = Figure(figsize=figsize, layout="constrained")
    _draw(fig, n_heads, head, seq_len, seed, bool(alibi))
    return fig


class AlibiExplorer(ipywidgets.VBox):
    """The widget :func:`alibi_widget` returns: controls above a rendered :func:`plot_alibi` figure.

    Attributes:
        n_heads_slider, head_slider, seq_len_slider: the :class:`ipywidgets.IntSlider` controls.
        bias_toggle: :class:`ipywidgets.ToggleButtons` with options ``"ALiBi"`` and ``"no bias"``.
        image: the :class:`ipywidgets.Image` showing the current figure (PNG).
        figure: the :class:`matplotlib.figure.Figure` last drawn (same layout as :func:`plot_alibi`).
        redraws: how many times the figure has been drawn.
    """

    def __init__(
        self, n_heads: int, head: int, seq_len: int, *, seed: int, alibi: bool, dpi: int,
        max_heads: int, max_seq_len: int,
    ) -> None:
        style = {"description_width": "150px"}
        layout = ipywidgets.Layout(width="480px")
        self.seed = seed
        self.dpi = dpi
        self.redraws = 0
        self.figure: Figure | None = None
        self._busy = False
        self.n_heads_slider = ipywidgets.IntSlider(
            value=n_heads, min=1, max=max_heads, description="number of heads H", style=style,
            layout=layout, continuous_update=False)
        self.head_slider = ipywidgets.IntSlider(
            value=head, min=0, max=n_heads - 1, description="head h", style=style, layout=layout,
            continuous_update=False)
        self.seq_len_slider = ipywidgets.IntSlider(
            value=seq_len, min=2, max=max_seq_len, description="sequence length T", style=style,
            layout=layout, continuous_update=False)
        self.bias_toggle = ipywidgets.ToggleButtons(
            options=["ALiBi", "no bias"], value="ALiBi" if alibi else "no bias",
            description="panel (c)", style={"description_width": "150px"},
            tooltips=["softmax(q·k/√D − m_h (i − j))", "softmax(q·k/√D)"])
        self.image = ipywidgets.Image(format="png", layout=ipywidgets.Layout(width="100%"))
        self.n_heads_slider.observe(self._on_n_heads, names="value")
        for control in (self.head_slider, self.seq_len_slider, self.bias_toggle):
            control.observe(self._on_change, names="value")
        controls = ipywidgets.VBox([self.n_heads_slider, self.head_slider, self.seq_len_slider, self.bias_toggle])
        super().__init__([controls, self.image])
        self.redraw()

    @property
    def state(self) -> dict[str, Any]:
        """The current ``plot_alibi`` arguments."""
        return dict(n_heads=self.n_heads_slider.value, head=self.head_slider.value,
                    seq_len=self.seq_len_slider.value, seed=self.seed,
                    alibi=self.bias_toggle.value == "ALiBi")

    def _on_n_heads(self, change: dict[str, Any]) -> None:
        # Shrinking H may clamp the head slider, which fires its own event: redraw once, after.
        self._busy = True
        try:
            self.head_slider.max = max(0, change["new"] - 1)
        finally:
            self._busy = False
        self.redraw()

    def _on_change(self, change: dict[str, Any]) -> None:
        if not self._busy:
            self.redraw()

    def redraw(self) -> None:
        """Draw the current state into a fresh figure and show it as a PNG."""
        fig = plot_alibi(**self.state)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=self.dpi)
        self.figure = fig
        self.image.value = buffer.getvalue()
        self.redraws += 1


def alibi_widget(
    n_heads: int = 8,
    head: int = 0,
    seq_len: int = 32,
    *,
    seed: int = 0,
    alibi: bool = True,
    dpi: int = 80,
    max_heads: int = MAX_HEADS,
    max_seq_len: int = MAX_SEQ_LEN,
) -> ipywidgets.Widget:
    """Sliders for ``H``, the head and ``T``, and a bias toggle, above the :func:`plot_alibi` figure.

    Every change redraws the three panels (bias of the head, slopes of all heads, attention
    weights with or without ALiBi). Callbacks need a running kernel: in a static HTML page the
    widget shows its first state only.

    Args:
        n_heads, head, seq_len, seed, alibi: the initial state, as in :func:`plot_alibi`.
        dpi: resolution of the rendered figure.
        max_heads, max_seq_len: the sliders' upper ends.

    Returns:
        An :class:`AlibiExplorer` (an :class:`ipywidgets.VBox`).

    Raises:
        ValueError: bad initial state (as :func:`plot_alibi`), or a state beyond the sliders'
            ranges, naming the argument.
    """
    n_heads, head, seq_len, seed = _validate(n_heads, head, seq_len, seed)
    max_heads = _int(max_heads, "max_heads", 1)
    max_seq_len = _int(max_seq_len, "max_seq_len", 2)
    dpi = _int(dpi, "dpi", 10)
    if n_heads > max_heads:
        raise ValueError(f"n_heads must be <= max_heads={max_heads}, got {n_heads}")
    if seq_len > max_seq_len:
        raise ValueError(f"seq_len must be <= max_seq_len={max_seq_len}, got {seq_len}")
    return AlibiExplorer(n_heads, head, seq_len, seed=seed, alibi=bool(alibi), dpi=dpi,
                         max_heads=max_heads, max_seq_len=max_seq_len)
