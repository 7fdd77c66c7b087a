"""An interactive look at the RG-LRU's gates (Griffin/Hawk, De et al. 2024, arXiv:2402.19427).

Per channel the RG-LRU keeps a state ``h_t = a_t h_{t-1} + sqrt(1 - a_t^2) (i_t x_t)`` whose decay
``a_t = a^(c r_t)`` (``log a_t = c r_t log a``, ``a = sigma(Lambda)``, ``c = 8``) is chosen per token by
the recurrence gate ``r_t``; the input gate ``i_t`` scales what is written.

Three entry points:

- :func:`plot_gates` draws one state (base decay ``a``, scale ``c``, constant gates ``r`` and
  ``i``) as a :class:`matplotlib.figure.Figure` (no pyplot state, so it displays exactly once when
  it is the last expression of a notebook cell). A static book shows this figure.
- :func:`gates_widget` wraps the same drawing in ipywidgets sliders for ``a``, ``c``, ``r`` and
  ``i``. It redraws into an :class:`ipywidgets.Image`, so the first state is embedded in a static
  HTML page too; moving a slider needs a live kernel (Jupyter or Colab).
- :func:`plot_token_gates`, the "second view": the gates a trained layer actually produced on a
  text snippet, as channels x tokens heatmaps of ``r_t`` and ``i_t`` with the per-token mean
  ``a_t`` below.

The four panels of :func:`plot_gates`:

(1) the decay ``a_t = a^(c r)`` against ``r`` in ``[0, 1]`` (``r = 1/c`` gives ``a_t = a``);
(2) the memory horizon ``-1 / log a_t`` (tokens until an impulse has decayed to ``1/e``)
    against ``r``, log scale;
(3) the impulse response: ``h_t`` after a single input ``x_0 = 1`` with constant gates, computed
    with :func:`~linattn_edu.reference.rg_lru` (``Lambda = logit(a)``); for constant gates it is
    ``h_t = sqrt(1 - a_t^2) i a_t^t``. The chosen ``r`` bold, ``r = 0.1`` and ``r = 1`` faint;
(4) what the ``sqrt(1 - a_t^2)`` factor buys: the stationary variance of ``h`` for i.i.d.
    unit-variance inputs, ``i^2`` with the factor and ``i^2 / (1 - a_t^2)`` without, against
    ``r`` (log scale; linear when ``i = 0``, where both are 0).

``r = 0`` gives ``a_t = 1``: the state is carried unchanged and nothing is written (the factor is
0), so the horizon and the un-normalized variance are infinite; panels (2) and (4) start their
``r`` grid just above 0 and say so when the chosen ``r`` is 0.
"""

from __future__ import annotations

import io
import math
from typing import Any, Optional

import ipywidgets
import numpy as np
from matplotlib.figure import Figure

from ..reference import rg_lru

__all__ = [
    "plot_gates",
    "gates_widget",
    "GatesExplorer",
    "plot_token_gates",
    "decay",
    "horizon",
    "impulse_response",
    "R_GRID",
    "COMPARE_R",
]

#: ``r`` values of panels (2) and (4): ``r = 0`` itself is left out (infinite horizon/variance).
#:
#: :meta hide-value:
R_GRID = np.linspace(0.0, 1.0, 201)[1:]
#: ``r`` values of panel (1), 0 included.
R_GRID_DECAY = np.linspace(0.0, 1.0, 201)
#: The faint comparison curves of panel (3).
COMPARE_R = (0.1, 1.0)
#: Slider ranges of the widget.
A_MIN, A_MAX = 0.5, 0.9999
C_MIN, C_MAX = 1.0, 16.0


# ----------------------------------------------------------------------------- validation


def _real(value: Any, name: str) -> float:
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _base(a: Any) -> float:
    a = _real(a, "a")
    if not 0.0 < a < 1.0:
        raise ValueError(f"a must be in the open interval (0, 1), got {a!r}")
    return a


def _scale(c: Any) -> float:
    c = _real(c, "c")
    if c <= 0.0:
        raise ValueError(f"c must be > 0, got {c!r}")
    return c


def _gate(value: Any, name: str) -> float:
    value = _real(value, name)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return value


def _validate(a: Any, c: Any, r: Any, i: Any, steps: Any) -> tuple[float, float, float, float, int]:
    return _base(a), _scale(c), _gate(r, "r"), _gate(i, "i"), _int(steps, "steps", 1)


# ----------------------------------------------------------------------------- the numbers drawn


def decay(a: float, c: float, r: Any) -> np.ndarray:
    """``a_t = a^(c r) = exp(c r log a)`` (elementwise in ``r``)."""
    return np.exp(float(c) * np.asarray(r, dtype=np.float64) * math.log(a))


def horizon(a: float, c: float, r: Any) -> np.ndarray:
    """Memory horizon ``-1 / log a_t = -1 / (c r log a)`` in tokens (``inf`` where ``r = 0``)."""
    with np.errstate(divide="ignore"):
        return -1.0 / (float(c) * np.asarray(r, dtype=np.float64) * math.log(a))


def impulse_response(a: float, c: float, r: Any, i: float, steps: int) -> np.ndarray:
    """``h_0 .. h_{steps-1}`` of :func:`~linattn_edu.reference.rg_lru` after ``x_0 = 1`` (then 0).

    Constant gates ``r_t = r``, ``i_t = i``; ``Lambda = logit(a)``. ``r`` may be a sequence: one
    channel each, returned as ``(steps, len(r))``; a scalar ``r`` gives ``(steps,)``. Equals
    ``sqrt(1 - a_t^2) i a_t^t`` with ``a_t = a^(c r)``.
    """
    rs = np.atleast_1d(np.asarray(r, dtype=np.float64))
    channels = rs.size
    x = np.zeros((1, steps, channels))
    x[0, 0, :] = 1.0
    gate_a = np.broadcast_to(rs, (1, steps, channels)).copy()
    gate_x = np.full((1, steps, channels), float(i))
    lam = np.full(channels, math.log(a) - math.log1p(-a))  # logit(a)
    y, _ = rg_lru(x, gate_a, gate_x, lam, c=float(c))
    return y[0, :, 0] if np.ndim(r) == 0 else y[0]


# ----------------------------------------------------------------------------- plot_gates


def _fmt(value: float) -> str:
    """A number for a label: 3 significant digits, or 'inf'."""
    return "∞" if not math.isfinite(value) else f"{value:.3g}"


def _draw(fig: Figure, a: float, c: float, r: float, i: float, steps: int) -> None:
    """Draw the four panels into an empty ``fig``."""
    ax_decay, ax_hor, ax_imp, ax_var = fig.subplots(1, 4)
    a_t = float(decay(a, c, r))
    hor = float(horizon(a, c, r))
    chosen = dict(color="C3", zorder=5)

    # (1) a_t against r.
    ax_decay.plot(R_GRID_DECAY, decay(a, c, R_GRID_DECAY), color="C0", label="$a_t = a^{c\\,r}$", gid="decay")
    if 1.0 / c <= 1.0:
        ax_decay.axhline(a, color="0.5", lw=0.8, ls=":", label=f"a = {a:g} (at r = 1/c)")
    ax_decay.plot([r], [a_t], "o", label=f"r = {r:g}: $a_t$ = {a_t:.4g}", gid="decay-chosen", **chosen)
    ax_decay.set_xlim(0.0, 1.0)
    ax_decay.set_ylim(0.0, 1.03)
    ax_decay.set_xlabel("recurrence gate $r_t$")
    ax_decay.set_ylabel("decay per token $a_t$")
    ax_decay.set_title(f"(1) decay $a_t = a^{{c\\,r_t}}$ (a = {a:g}, c = {c:g})", fontsize=10)
    ax_decay.legend(fontsize=8, loc="lower left")
    ax_decay.grid(alpha=0.3)

    # (2) horizon against r, log y.
    ax_hor.plot(R_GRID, horizon(a, c, R_GRID), color="C0", label="$-1/\\log a_t$", gid="horizon")
    if r > 0.0:
        ax_hor.plot([r], [hor], "o", label=f"r = {r:g}: {hor:.3g} tokens", gid="horizon-chosen", **chosen)
    else:
        ax_hor.text(0.03, 0.04, "r = 0: $a_t$ = 1, nothing decays\n(horizon = ∞)", transform=ax_hor.transAxes,
                    fontsize=8, color="C3")
    ax_hor.set_yscale("log")
    ax_hor.set_xlim(0.0, 1.0)
    ax_hor.set_xlabel("recurrence gate $r_t$")
    ax_hor.set_ylabel("memory horizon (tokens, log scale)")
    ax_hor.set_title("(2) tokens until an impulse decays to 1/e", fontsize=10)
    ax_hor.legend(fontsize=8, loc="upper right")
    ax_hor.grid(alpha=0.3)

    # (3) impulse response, from the reference rg_lru.
    t = np.arange(steps)
    rs = [r, *COMPARE_R]
    h = impulse_response(a, c, rs, i, steps)
    for k, rk in enumerate(COMPARE_R, start=1):
        ax_imp.plot(t, h[:, k], color="0.45", alpha=0.45, lw=1.2, ls="--" if k == 1 else "-.",
                    label=f"r = {rk:g} (horizon {_fmt(float(horizon(a, c, rk)))})", gid=f"impulse-r={rk:g}")
    ax_imp.plot(t, h[:, 0], color="C3", lw=2.0, marker="o" if steps <= 40 else None, ms=3,
                label=f"r = {r:g} (horizon {_fmt(hor)})", gid="impulse-chosen")
    if r > 0.0 and hor <= steps - 1:
        ax_imp.axvline(hor, color="C3", lw=0.8, ls=":")
    ax_imp.set_xlabel("time since the impulse t (tokens)")
    ax_imp.set_ylabel("state $h_t$")
    ax_imp.set_title(f"(3) impulse response: $x_0$ = 1, i = {i:g}\n"
                     "$h_t = \\sqrt{1-a_t^2}\\; i\\; a_t^{\\,t}$ (reference rg_lru)", fontsize=10)
    ax_imp.set_xlim(0, max(steps - 1, 1))
    ax_imp.legend(fontsize=8, loc="upper right")
    ax_imp.grid(alpha=0.3)

    # (4) stationary variance of h with and without the normalization.
    one_minus = -np.expm1(2.0 * c * R_GRID * math.log(a))  # 1 - a_t^2, digits kept as a_t -> 1
    with_norm = np.full_like(R_GRID, i * i)
    without = i * i / one_minus
    ax_var.plot(R_GRID, without, color="C1", label="without: $i^2/(1-a_t^2)$", gid="variance-without")
    ax_var.plot(R_GRID, with_norm, color="C0", label="with $\\sqrt{1-a_t^2}$: $i^2$", gid="variance-with")
    if r > 0.0:
        ax_var.plot([r, r], [i * i / -math.expm1(2.0 * c * r * math.log(a)), i * i], "o", gid="variance-chosen", **chosen)
    else:
        ax_var.text(0.03, 0.14, "r = 0: the state is frozen (nothing is written)", transform=ax_var.transAxes,
                    fontsize=8, color="C3")
    if i > 0.0:
        ax_var.set_yscale("log")
        ax_var.grid(alpha=0.3)
        scale = "log scale"
    else:
        ax_var.text(0.03, 0.04, "i = 0: no input is written, Var[h] = 0", transform=ax_var.transAxes,
                    fontsize=8, color="C3")
        ax_var.grid(alpha=0.3)
        scale = "linear: both 0"
    ax_var.set_xlim(0.0, 1.0)
    ax_var.set_xlabel("recurrence gate $r_t$")
    ax_var.set_ylabel(f"stationary Var[$h$] ({scale})")
    ax_var.set_title("(4) variance of h for i.i.d. unit-variance x", fontsize=10)
    ax_var.legend(fontsize=8, loc="upper right")

    fig.suptitle(f"RG-LRU gates: a = {a:g}, c = {c:g}, r = {r:g}, i = {i:g}  →  $a_t$ = {a_t:.4g}, "
                 f"horizon {_fmt(hor)} tokens", fontsize=11)


def plot_gates(
    a: float = 0.95,
    c: float = 8.0,
    r: float = 0.5,
    i: float = 1.0,
    *,
    steps: int = 64,
    figsize: tuple[float, float] = (14.0, 4.2),
) -> Figure:
    """Draw the RG-LRU's decay, horizon, impulse response and variance for one state.

    Args:
        a: base decay ``a = sigma(Lambda)`` of the channel, in ``(0, 1)``.
        c: exponent scale (8 in the paper), ``> 0``.
        r: recurrence gate, constant over time, in ``[0, 1]``.
        i: input gate, constant over time, in ``[0, 1]``.
        steps: time steps of the impulse response (panel 3), ``>= 1``.
        figsize: size in inches.

    Returns:
        A :class:`matplotlib.figure.Figure` with four titled, labelled panels with legends,
        ``axes[0]`` .. ``axes[3]`` in the order (1) .. (4) of the module docstring. Panel (2) has
        a log y axis, panel (4) too unless ``i = 0``. The data lines carry gids: ``"decay"``,
        ``"horizon"``, ``"impulse-chosen"``, ``"impulse-r=0.1"``, ``"impulse-r=1"``,
        ``"variance-with"``, ``"variance-without"``, and the markers of the chosen ``r``
        ``"decay-chosen"``, ``"horizon-chosen"``, ``"variance-chosen"`` (the last two absent
        when ``r = 0``).

    Raises:
        ValueError: ``a`` outside ``(0, 1)``, ``c <= 0``, ``r`` or ``i`` outside ``[0, 1]``,
            ``steps < 1``, or a non-real/non-finite number; each message names the argument.
    """
    a, c, r, i, steps = _validate(a, c, r, i, steps)
    fig = Figure(figsize=figsize, layout="constrained")
    _draw(fig, a, c, r, i, steps)
    return fig


# ----------------------------------------------------------------------------- the widget


def _nines(a: float) -> float:
    """Slider coordinate of ``a``: ``-log10(1 - a)`` (1 -> 0.9, 2 -> 0.99, 3 -> 0.999)."""
    return -math.log10(1.0 - a)


def _a_text(a: float) -> str:
    digits = max(2, int(math.floor(_nines(a))) + 3)
    return f"a = {a:.{digits}f}".rstrip("0") + f"   (1 − a = {1.0 - a:.2g})"


class GatesExplorer(ipywidgets.VBox):
    """The widget :func:`gates_widget` returns: sliders above a rendered :func:`plot_gates` figure.

    The ``a`` slider is log-spaced in ``1 - a``: its value is ``-log10(1 - a)``, the "number of
    nines" (0.30 for a = 0.5, 1 for 0.9, 2 for 0.99, 4 for 0.9999), and the label beside it shows
    ``a`` itself. A linear slider over 0.5 .. 0.9999 would spend 80 % of its length on a < 0.9
    (horizons under ~1 token at c = 8, r = 1) and squeeze the paper's initialization range
    0.9 .. 0.999 (horizons 1 .. 125 tokens) into the last fifth; on this scale each decade of
    memory gets the same length.

    Attributes:
        a_slider: :class:`ipywidgets.FloatSlider` over ``-log10(1 - a)``, readout hidden.
        a_label: :class:`ipywidgets.Label` showing ``a``.
        c_slider, r_slider, i_slider: :class:`ipywidgets.FloatSlider` for ``c``, ``r``, ``i``.
        image: the :class:`ipywidgets.Image` showing the current figure (PNG).
        figure: the :class:`matplotlib.figure.Figure` last drawn (same layout as :func:`plot_gates`).
        redraws: how many times the figure has been drawn.
    """

    def __init__(self, a: float, c: float, r: float, i: float, *, steps: int, dpi: int) -> None:
        style = {"description_width": "150px"}
        layout = ipywidgets.Layout(width="480px")
        self.steps = steps
        self.dpi = dpi
        self.redraws = 0
        self.figure: Figure | None = None
        # The exact initial a, returned by ``state`` until the a slider moves (the slider stores
        # -log10(1 - a), which does not round-trip every decimal exactly).
        self._a_initial = (_nines(a), a)
        self.a_slider = ipywidgets.FloatSlider(
            value=_nines(a), min=_nines(A_MIN), max=_nines(A_MAX), step=0.01, readout=False,
            description="base decay a (log)", style=style, layout=layout, continuous_update=False,
            tooltip="log-spaced in 1 − a: each decade of memory gets the same length")
        self.a_label = ipywidgets.Label(value=_a_text(a))
        self.c_slider = ipywidgets.FloatSlider(
            value=c, min=C_MIN, max=C_MAX, step=0.5, description="scale c", style=style,
            layout=layout, continuous_update=False, readout_format=".1f")
        self.r_slider = ipywidgets.FloatSlider(
            value=r, min=0.0, max=1.0, step=0.01, description="recurrence gate r", style=style,
            layout=layout, continuous_update=False, readout_format=".2f")
        self.i_slider = ipywidgets.FloatSlider(
            value=i, min=0.0, max=1.0, step=0.01, description="input gate i", style=style,
            layout=layout, continuous_update=False, readout_format=".2f")
        self.image = ipywidgets.Image(format="png", layout=ipywidgets.Layout(width="100%"))
        self.a_slider.observe(self._on_a, names="value")
        for control in (self.c_slider, self.r_slider, self.i_slider):
            control.observe(self._on_change, names="value")
        controls = ipywidgets.VBox([
            ipywidgets.HBox([self.a_slider, self.a_label]), self.c_slider, self.r_slider, self.i_slider])
        super().__init__([controls, self.image])
        self.redraw()

    @property
    def a(self) -> float:
        """The base decay ``a`` the ``a`` slider stands for."""
        nines, a = self._a_initial
        value = self.a_slider.value
        return a if value == nines else 1.0 - 10.0 ** (-value)

    @property
    def state(self) -> dict[str, Any]:
        """The current ``plot_gates`` arguments."""
        return dict(a=self.a, c=self.c_slider.value, r=self.r_slider.value, i=self.i_slider.value,
                    steps=self.steps)

    def _on_a(self, change: dict[str, Any]) -> None:
        self.a_label.value = _a_text(self.a)
        self.redraw()

    def _on_change(self, change: dict[str, Any]) -> None:
        self.redraw()

    def redraw(self) -> None:
        """Draw the current state into a fresh figure and show it as a PNG."""
        fig = plot_gates(**self.state)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=self.dpi)
        self.figure = fig
        self.image.value = buffer.getvalue()
        self.redraws += 1


def gates_widget(
    a: float = 0.95,
    c: float = 8.0,
    r: float = 0.5,
    i: float = 1.0,
    *,
    steps: int = 64,
    dpi: int = 80,
) -> ipywidgets.Widget:
    """Sliders for ``a``, ``c``, ``r`` and ``i`` above the :func:`plot_gates` figure.

    Every change redraws the four panels. The ``a`` slider is log-spaced in ``1 - a`` (see
    :class:`GatesExplorer`). Callbacks need a running kernel: in a static HTML page the widget
    shows its first state only.

    Args:
        a, c, r, i, steps: the initial state, as in :func:`plot_gates`; ``a`` within the slider's
            ``[0.5, 0.9999]`` and ``c`` within ``[1, 16]``.
        dpi: resolution of the rendered figure.

    Returns:
        A :class:`GatesExplorer` (an :class:`ipywidgets.VBox`).

    Raises:
        ValueError: bad initial state (as :func:`plot_gates`), or ``a`` or ``c`` beyond the
            sliders' ranges, naming the argument.
    """
    a, c, r, i, steps = _validate(a, c, r, i, steps)
    dpi = _int(dpi, "dpi", 10)
    if not A_MIN <= a <= A_MAX:
        raise ValueError(f"a must be within the slider's range [{A_MIN}, {A_MAX}], got {a!r}")
    if not C_MIN <= c <= C_MAX:
        raise ValueError(f"c must be within the slider's range [{C_MIN:g}, {C_MAX:g}], got {c!r}")
    return GatesExplorer(a, c, r, i, steps=steps, dpi=dpi)


# ----------------------------------------------------------------------------- plot_token_gates

_SPECIAL = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


def token_label(ch: str) -> str:
    """How a byte-level token is written on the x axis: visible marks for blanks, hex otherwise."""
    if ch in _SPECIAL:
        return _SPECIAL[ch]
    if not ch.isprintable():
        return f"{ord(ch):02x}"
    return ch


def _array(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().float().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of real numbers: {err}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def _token_gates(text: Any, r: Any, i: Any, a: Any) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    if not isinstance(text, str) or not text:
        raise ValueError(f"text must be a non-empty str (one char per token), got {text!r}")
    t_len = len(text)
    gates = []
    for name, g in (("r", r), ("i", i)):
        g = _array(g, name)
        if g.ndim != 2 or g.shape[0] != t_len or g.shape[1] < 1:
            raise ValueError(f"{name} must have shape (T, C) with T = len(text) = {t_len}, got shape {g.shape}")
        if g.min() < 0.0 or g.max() > 1.0:
            raise ValueError(f"{name} must hold gate values in [0, 1], got range [{g.min():.3g}, {g.max():.3g}]")
        gates.append(g)
    r, i = gates
    if r.shape != i.shape:
        raise ValueError(f"i must have shape (T, C) = {r.shape}, the shape of r, got shape {i.shape}")
    if a is not None:
        a = _array(a, "a")
        if a.shape != (r.shape[1],):
            raise ValueError(f"a must have shape (C,) = {(r.shape[1],)}, got shape {a.shape}")
        if a.min() <= 0.0 or a.max() >= 1.0:
            raise ValueError("a must hold values in the open interval (0, 1)")
    return r, i, a


def plot_token_gates(
    text: str,
    r: Any,
    i: Any,
    *,
    a: Any = None,
    c: float = 8.0,
    max_tokens: int = 64,
    figsize: tuple[float, float] = (14.0, 7.0),
) -> Figure:
    """The gates a trained RG-LRU layer produced on ``text``: heatmaps of ``r_t``, ``i_t`` and ``a_t``.

    Tokens are byte-level, one character each; the x axes are labelled with the characters
    (``␣`` space, ``↵`` newline, ``⇥`` tab, two hex digits for other unprintable ones).

    Args:
        text: the snippet, ``T = len(text)`` tokens.
        r: ``(T, C)`` recurrence gates ``r_t`` in ``[0, 1]`` (array or tensor).
        i: ``(T, C)`` input gates ``i_t`` in ``[0, 1]``.
        a: optional ``(C,)`` base decays ``a = sigma(Lambda)`` in ``(0, 1)``.
        c: the exponent scale, 8 in the paper, ``> 0``.
        max_tokens: at most this many tokens (the first ones) are drawn.
        figsize: size in inches.

    Returns:
        A :class:`matplotlib.figure.Figure`: ``axes[0]`` the ``r_t`` heatmap and ``axes[1]`` the
        ``i_t`` heatmap (channels x tokens, channel 0 at the top, colors 0 .. 1), ``axes[2]`` the
        per-token mean over channels (line gid ``"token-mean"``) of ``a_t = a^(c r_t)`` with its 10-90 % band across channels
        (without ``a``: the mean of the exponent ``c r_t`` instead, since ``a_t = a^(c r_t)``);
        two colorbars follow.

    Raises:
        ValueError: ``text`` not a non-empty str, ``r``/``i`` not ``(T, C)`` with ``T = len(text)``
            or outside ``[0, 1]``, ``a`` not ``(C,)`` in ``(0, 1)``, ``c <= 0``,
            ``max_tokens < 1``; each message names the argument.
    """
    r, i, a = _token_gates(text, r, i, a)
    c = _scale(c)
    max_tokens = _int(max_tokens, "max_tokens", 1)
    t_len, channels = r.shape
    shown = min(t_len, max_tokens)
    r, i, chars = r[:shown], i[:shown], text[:shown]
    tokens = np.arange(shown)
    labels = [token_label(ch) for ch in chars]

    fig = Figure(figsize=figsize, layout="constrained")
    ax_r, ax_i, ax_a = fig.subplots(3, 1, height_ratios=[1.0, 1.0, 0.8])
    extent = (-0.5, shown - 0.5, channels - 0.5, -0.5)
    for ax, g, name, what in ((ax_r, r, "r_t", "recurrence gate"), (ax_i, i, "i_t", "input gate")):
        im = ax.imshow(g.T, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest",
                       extent=extent)
        ax.set_ylabel("channel")
        ax.set_title(f"{what} ${name}$ per channel and token", fontsize=10)
        fig.colorbar(im, ax=ax, pad=0.01, fraction=0.03, label=f"${name}$")
    ax_r.set_xlabel("token (one character each)")
    ax_i.set_xlabel("token (one character each)")

    if a is not None:
        values = np.exp(c * r * np.log(a)[None, :])  # a_t = a^(c r_t), (T, C)
        ylabel = "$a_t$ (mean over channels)"
        title = f"decay $a_t = a^{{c\\,r_t}}$ (c = {c:g}): mean over {channels} channels, 10–90 % band"
    else:
        values = c * r
        ylabel = "$c\\,r_t$ (mean over channels)"
        title = (f"exponent $c\\,r_t$ (c = {c:g}; $a_t = a^{{c\\,r_t}}$, larger = forgets faster; "
                 "pass a to see $a_t$): mean, 10–90 % band")
    lo, hi = np.percentile(values, [10, 90], axis=1)
    ax_a.fill_between(tokens, lo, hi, color="C0", alpha=0.2, step="mid", label="10–90 % of channels")
    ax_a.plot(tokens, values.mean(axis=1), color="C0", marker="o", ms=3, label="mean", gid="token-mean")
    if a is not None:
        ax_a.set_ylim(min(0.0, float(lo.min())), 1.02)
    ax_a.set_ylabel(ylabel)
    ax_a.set_xlabel("token (one character each)")
    ax_a.set_title(title, fontsize=10)
    ax_a.legend(fontsize=8, loc="lower right")
    ax_a.grid(alpha=0.3)

    for ax in (ax_r, ax_i, ax_a):
        ax.set_xlim(-0.5, shown - 0.5)
        ax.set_xticks(tokens, labels, fontsize=8 if shown <= 80 else 6, parse_math=False)
    snippet = text if len(text) <= 60 else text[:57] + "..."
    more = f", first {shown} of {t_len} tokens shown" if shown < t_len else ""
    fig.suptitle(f"RG-LRU gates on {snippet!r} ({t_len} tokens, {channels} channels{more})",
                 fontsize=11, parse_math=False)
    return fig
