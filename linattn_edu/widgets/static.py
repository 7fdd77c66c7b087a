"""The three signature widgets for the static web page: sliders that work without a Python kernel.

The ipywidgets versions (:func:`~linattn_edu.widgets.alibi_widget`,
:func:`~linattn_edu.widgets.gates_widget`, :func:`~linattn_edu.widgets.recall_widget`) redraw a
matplotlib figure in Python on every change, so they need a running kernel (Jupyter or Colab);
in the built HTML book they keep their first state only. The versions here run in the reader's
browser instead:

1. Python precomputes every state the sliders can reach, **with the same package functions the
   ipywidgets draw** (:func:`~linattn_edu.widgets.alibi.attention_weights` and
   :func:`~linattn_edu.reference.alibi_slopes`; :func:`~linattn_edu.widgets.gates.decay`,
   :func:`~linattn_edu.widgets.gates.horizon` and :func:`~linattn_edu.widgets.gates.impulse_response`;
   the stored MQAR sweep, :func:`~linattn_edu.experiments.mqar_sweep.pareto_frontier` and
   :func:`~linattn_edu.widgets.recall.chosen_state_bytes`), so there is one source of truth for
   the numbers. :func:`alibi_payload`, :func:`gates_payload` and :func:`recall_payload` return
   these precomputed states as plain dicts (the tests compare them with the package functions).
2. The payload is embedded in the page as JSON; large arrays are quantized and base64-encoded
   (:func:`encode_array`, mirrored by :func:`decode_array` here and by ``decode`` in the JS).
3. A small dependency-free renderer, ``static.js`` next to this file (one file for all three
   widgets), draws the charts as inline SVG and redraws them on every ``input`` event of the
   ``<input type="range">`` sliders. It loads nothing from the network.

Why plain SVG and JavaScript rather than a charting library (Vega-Lite/Altair, Plotly, Bokeh):
their runtime would have to come from a CDN, and the book must work offline, or be vendored as
about a megabyte of minified code; the web platform's own ``<svg>`` and ``<input type="range">``
need nothing, a student can read the whole renderer, and browsers keep old pages working.

Markup contract (checked by the site test): the root is ``<div class="linattn-static-widget"
data-widget="alibi|gates|recall" id="...">``; it holds labelled range sliders with ``<output>``
readouts, and after the script ran it carries ``data-rendered="1"`` and the charts are ``<svg>``
elements inside it. Every element id starts with the root's id, which is unique per instance.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import html
import json
import math
import uuid
from functools import lru_cache
from importlib import resources
from typing import Any, Sequence

import numpy as np

from ..reference import alibi_slopes
from .alibi import BIAS_FLOOR, HEAD_DIM, attention_weights
from .gates import decay, horizon, impulse_response

__all__ = [
    "StaticWidget",
    "static_alibi_widget",
    "static_gates_widget",
    "static_recall_widget",
    "alibi_payload",
    "gates_payload",
    "recall_payload",
    "encode_array",
    "decode_array",
    "static_js",
    "recall_key",
    "WIDGET_NAMES",
    "ALIBI_SEQ_LENS",
    "GATES_A_VALUES",
    "GATES_C_VALUES",
    "GATES_R_VALUES",
    "GATES_I_VALUES",
    "RECALL_FEATURE_DIMS",
    "RECALL_WINDOWS",
    "recall_windows",
]

#: The ``data-widget`` names of the three widgets.
WIDGET_NAMES = ("alibi", "gates", "recall")
#: Sequence lengths the static ALiBi widget offers (the ipywidget's slider goes to 256; the
#: static page stores every matrix, so it stops at 64 to stay small).
ALIBI_SEQ_LENS = (8, 16, 32, 64)
#: Largest number of heads of the static ALiBi widget (the ipywidget's ``MAX_HEADS``).
ALIBI_MAX_HEADS = 32
#: Base decays of the static gates widget: log-spaced in ``1 - a`` like the ipywidget's slider.
GATES_A_VALUES = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9999)
#: Exponent scales ``c`` (the paper's is 8).
GATES_C_VALUES = (1.0, 2.0, 4.0, 8.0, 16.0)
#: The ``r`` grid of the curves of panels (1), (2) and (4): step 0.025 (the slider's values are every other one).
_R_CURVE = np.linspace(0.0, 1.0, 41)
#: Recurrence gates ``r`` the static slider offers (step 0.05).
GATES_R_VALUES = tuple(float(r) for r in _R_CURVE[::2])
#: Input gates ``i`` the static slider offers (step 0.05).
GATES_I_VALUES = tuple(float(v) for v in np.linspace(0.0, 1.0, 21))
#: Feature dims of the static recall widget (powers of two; the stored sweep's are among them).
RECALL_FEATURE_DIMS = (1, 2, 4, 8, 16, 32, 64)
#: Windows of the static recall widget (those ``<= seq_len`` are offered; the stored sweep's are among them).
RECALL_WINDOWS = (2, 4, 8, 16, 32, 64, 128)
#: Matplotlib colormaps sampled for the JS (it interpolates linearly between the stops).
_CMAP_STOPS = 33
#: Payload arrays that are quantized when embedded, and how (see :func:`encode_array`).
_ENCODINGS = {"weights": "u8sqrt", "impulse": "u16"}
#: Significant digits of the other floats in the embedded JSON (curves; the slider values and slopes are exact).
_DIGITS = 5
#: Payload entries whose floats are embedded exactly (shortest repr).
_EXACT = {"slopes", "a_values", "c_values", "r_values", "i_values", "r_curve", "compare_r", "bias_floor"}


# ----------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _real(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _on_grid(value: Any, name: str, grid: Sequence[float]) -> int:
    """Index of ``value`` in ``grid`` (within 1e-9), else a ValueError naming ``name`` and the grid."""
    value = _real(value, name)
    for k, g in enumerate(grid):
        if abs(value - g) <= 1e-9 * max(1.0, abs(g)):
            return k
    shown = ", ".join(f"{g:g}" for g in grid)
    raise ValueError(f"{name} must be one of the static slider's values ({shown}), got {value!r}")


def _int_grid(values: Any, name: str, minimum: int, maximum: int) -> tuple[int, ...]:
    try:
        items = tuple(values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of ints, got {values!r}") from None
    if not items:
        raise ValueError(f"{name} must not be empty")
    out = tuple(_int(v, name, minimum) for v in items)
    if max(out) > maximum:
        raise ValueError(f"{name} must hold ints <= {maximum} (payload size), got {max(out)}")
    if list(out) != sorted(set(out)):
        raise ValueError(f"{name} must be strictly increasing, got {list(out)}")
    return out


# ----------------------------------------------------------------------------------------------
# Encoding: small JSON, large arrays quantized
# ----------------------------------------------------------------------------------------------


def encode_array(values: Any, encoding: str) -> dict[str, Any]:
    """Quantize a flat array of non-negative numbers and base64-encode it for the page.

    Encodings (``scale`` is the array's maximum, or 1 if all are 0):

    - ``"u8sqrt"``: one byte per value, ``q = round(255 sqrt(v / scale))``, decoded as
      ``scale (q / 255)^2``: fine steps near 0 (``scale / 65025``), where ALiBi's attention
      weights live and where a square-root color scale spends its colors.
    - ``"u16"``: two bytes (little-endian) per value, ``q = round(65535 v / scale)``: an absolute
      error of at most ``scale / 131070``.

    Returns:
        ``{"enc", "count", "scale", "b64"}``, which :func:`decode_array` (and the JS) reverse.

    Raises:
        ValueError: unknown ``encoding``; ``values`` not finite, not 1-D or negative.
    """
    if encoding not in ("u8sqrt", "u16"):
        raise ValueError(f"encoding must be 'u8sqrt' or 'u16', got {encoding!r}")
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or not np.all(np.isfinite(arr)) or (arr.size and arr.min() < 0.0):
        raise ValueError("values must be a 1-D array of finite numbers >= 0")
    scale = float(arr.max()) if arr.size and arr.max() > 0.0 else 1.0
    if encoding == "u8sqrt":
        data = np.rint(255.0 * np.sqrt(arr / scale)).astype(np.uint8).tobytes()
    else:
        data = np.rint(65535.0 * arr / scale).astype("<u2").tobytes()
    return {"enc": encoding, "count": int(arr.size), "scale": scale, "b64": base64.b64encode(data).decode("ascii")}


def decode_array(spec: dict[str, Any]) -> np.ndarray:
    """The float64 array an :func:`encode_array` spec stands for (what the page's JS decodes).

    Raises:
        ValueError: ``spec`` is not such a dict.
    """
    if not isinstance(spec, dict) or spec.get("enc") not in ("u8sqrt", "u16") or "b64" not in spec:
        raise ValueError(f"spec must be a dict from encode_array, got {type(spec).__name__}")
    raw = base64.b64decode(spec["b64"])
    if spec["enc"] == "u8sqrt":
        q = np.frombuffer(raw, dtype=np.uint8).astype(np.float64) / 255.0
        out = spec["scale"] * q * q
    else:
        out = spec["scale"] * np.frombuffer(raw, dtype="<u2").astype(np.float64) / 65535.0
    if out.size != spec["count"]:
        raise ValueError(f"spec: {out.size} values decoded, {spec['count']} announced")
    return out


def _round(x: float) -> float | None:
    """A float with :data:`_DIGITS` significant digits for the JSON (None for inf/nan)."""
    x = float(x)
    if not math.isfinite(x):
        return None
    return float(f"{x:.{_DIGITS}g}")


def _jsonable(value: Any, key: str = "") -> Any:
    """``value`` for ``json.dumps``: arrays named in :data:`_ENCODINGS` quantized, other floats rounded."""
    if key in _ENCODINGS:
        if isinstance(value, list):  # one array per item (ALiBi: one per sequence length)
            return [encode_array(np.ravel(v), _ENCODINGS[key]) for v in value]
        return encode_array(np.ravel(value), _ENCODINGS[key])
    if isinstance(value, dict):
        return {str(k): _jsonable(v, str(k)) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, key) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if key in _EXACT and math.isfinite(value) else _round(value)
    return value


def _cmap_stops(name: str) -> list[str]:
    import matplotlib
    from matplotlib.colors import to_hex

    cmap = matplotlib.colormaps[name]
    return [to_hex(cmap(t)) for t in np.linspace(0.0, 1.0, _CMAP_STOPS)]


# ----------------------------------------------------------------------------------------------
# The displayed object
# ----------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def static_js() -> str:
    """The renderer shared by the three widgets (``static.js`` in this package), as a string."""
    text = resources.files(__package__).joinpath("static.js").read_text(encoding="utf-8")
    if "</script" in text.lower() or "<!--" in text:
        raise RuntimeError("static.js must not contain '</script' or '<!--' (it is inlined in a script tag)")
    return text


_CSS = """
.linattn-static-widget{background:#fff;color:#1a1a1a;border:1px solid #d0d0d0;border-radius:6px;
 padding:10px 12px;margin:8px 0;font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
.linattn-static-widget .lsw-head{font-weight:600;margin:0 0 6px}
.linattn-static-widget .lsw-controls{display:grid;grid-template-columns:max-content minmax(140px,300px) auto;
 gap:3px 10px;align-items:center;margin:0 0 8px}
.linattn-static-widget .lsw-controls input[type=range]{width:100%;margin:0}
.linattn-static-widget .lsw-controls output{font-variant-numeric:tabular-nums;white-space:nowrap}
.linattn-static-widget .lsw-controls .lsw-off{opacity:.45}
.linattn-static-widget .lsw-chart{display:flex;flex-wrap:wrap;gap:4px;align-items:flex-start}
.linattn-static-widget .lsw-chart svg{max-width:100%;height:auto;background:#fff}
.linattn-static-widget .lsw-note{font-size:11.5px;color:#555;margin:6px 0 0}
"""


class StaticWidget:
    """A static (kernel-free) widget: HTML with sliders, its precomputed payload and the shared JS.

    Displays as HTML in Jupyter (``_repr_html_``) and in the built book.

    Attributes:
        name: ``"alibi"``, ``"gates"`` or ``"recall"`` (the root's ``data-widget``).
        element_id: the root's id, unique per instance; every other id in the HTML starts with it.
        payload: the precomputed states, as the ``*_payload`` function returned them (unencoded).
        json: the payload as embedded in the page (large arrays quantized, see :func:`encode_array`).
        html: the full HTML fragment (controls, payload JSON, script).
    """

    def __init__(self, name: str, payload: dict[str, Any], controls: list[str], heading: str, note: str) -> None:
        if name not in WIDGET_NAMES:
            raise ValueError(f"name must be one of {WIDGET_NAMES}, got {name!r}")
        self.name = name
        self.payload = payload
        self.element_id = f"linattn-{name}-{uuid.uuid4().hex[:12]}"
        self.json = json.dumps(_jsonable(payload), separators=(",", ":"), allow_nan=False)
        self.html = self._render(controls, heading, note)

    @property
    def payload_bytes(self) -> int:
        """Size of the embedded payload JSON in bytes."""
        return len(self.json.encode("utf-8"))

    def _render(self, controls: list[str], heading: str, note: str) -> str:
        rid = self.element_id
        rows = "".join(c.replace("{id}", rid) for c in controls)
        data = self.json.replace("</", "<\\/")
        return (
            f'<div class="linattn-static-widget tex2jax_ignore mathjax_ignore" data-widget="{self.name}" '
            f'id="{rid}">'
            f"<style>{_CSS}</style>"
            f'<p class="lsw-head">{html.escape(heading)}</p>'
            f'<div class="lsw-controls" role="group" aria-label="{html.escape(heading)}">{rows}</div>'
            f'<div class="lsw-chart" id="{rid}-chart" data-role="chart">'
            f'<p class="lsw-note">(The chart is drawn by JavaScript in your browser; it is disabled here.)</p></div>'
            f'<p class="lsw-note">{html.escape(note)}</p>'
            f'<script type="application/json" id="{rid}-data" data-role="payload">{data}</script>'
            f"<script>{static_js()}\nwindow.linattnStatic.init({json.dumps(rid)});</script>"
            f"</div>"
        )

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"<StaticWidget {self.name!r} id={self.element_id!r}, payload {self.payload_bytes / 1024:.0f} KiB>"


def _slider(key: str, label: str, n: int, index: int, text: str, *, low: int = 0, disabled: bool = False) -> str:
    """One row of the controls grid: label, range slider over ``low..n-1``, readout. ``{id}`` is the root's id."""
    off = ' class="lsw-off"' if disabled else ""
    dis = " disabled" if disabled else ""
    return (
        f'<label for="{{id}}-{key}"{off}>{html.escape(label)}</label>'
        f'<input type="range" id="{{id}}-{key}" data-key="{key}" min="{low}" max="{n - 1}" step="1" '
        f'value="{index}" aria-valuetext="{html.escape(text)}"{dis}>'
        f'<output id="{{id}}-{key}-out" for="{{id}}-{key}" data-out="{key}">{html.escape(text)}</output>'
    )


# ----------------------------------------------------------------------------------------------
# ALiBi
# ----------------------------------------------------------------------------------------------


def alibi_payload(
    *, seq_lens: Sequence[int] = ALIBI_SEQ_LENS, max_heads: int = ALIBI_MAX_HEADS, seed: int = 0
) -> dict[str, Any]:
    """Every state of the static ALiBi widget, computed by the functions the ipywidget draws.

    A head's bias and attention pattern depend on its slope only, and the slopes of all head
    counts ``1..max_heads`` form a short list (32 distinct slopes up to 32 heads: every one is
    a slope of the next power of two). So the payload stores each distinct slope's matrices once:

    Returns:
        A dict with

        - ``"slopes"``: the distinct slopes ``(S,)``, each an :func:`~linattn_edu.reference.alibi_slopes` value;
        - ``"slope_index"``: for ``n_heads = 1..max_heads`` the list of its heads' indices into
          ``"slopes"``, i.e. ``slopes[slope_index[n - 1][h]] == alibi_slopes(n)[h]``;
        - ``"weights"``: one array per ``seq_lens[t]`` of shape ``(S + 1, T (T + 1) / 2)``: the
          causal (lower-triangular, row-major) entries of
          :func:`~linattn_edu.widgets.alibi.attention_weights` ``(n, h, T, seed=seed)`` for a head
          with that slope; the last row is ``alibi=False`` (no bias);
        - ``"seq_lens"``, ``"max_heads"``, ``"seed"``, ``"head_dim"``, ``"bias_floor"`` (the
          color floor of the bias panel, as in :func:`~linattn_edu.widgets.plot_alibi`), and
          ``"cmaps"`` (matplotlib's ``magma`` and ``viridis`` sampled as hex colors).

        The bias of head ``h`` is ``-slope (i - j)`` (:func:`~linattn_edu.reference.alibi_bias`); the page
        draws it from the slope.

    Raises:
        ValueError: ``seq_lens`` not increasing ints in ``2..128``, ``max_heads`` outside
            ``1..64``, ``seed < 0``; each message names the argument.
    """
    seq_lens = _int_grid(seq_lens, "seq_lens", 2, 128)
    max_heads = _int(max_heads, "max_heads", 1)
    if max_heads > 64:
        raise ValueError(f"max_heads must be <= 64 (payload size), got {max_heads}")
    seed = _int(seed, "seed", 0)
    slopes: list[float] = []
    first: list[tuple[int, int]] = []  # a (n_heads, head) with each slope
    slope_index: list[list[int]] = []
    for n in range(1, max_heads + 1):
        row = []
        for h, m in enumerate(alibi_slopes(n)):
            k = next((k for k, s in enumerate(slopes) if math.isclose(s, m, rel_tol=1e-12)), None)
            if k is None:
                k = len(slopes)
                slopes.append(float(m))
                first.append((n, h))
            row.append(k)
        slope_index.append(row)
    weights = []
    for t_len in seq_lens:
        rows, cols = np.tril_indices(t_len)
        mats = [attention_weights(n, h, t_len, seed=seed) for n, h in first]
        mats.append(attention_weights(1, 0, t_len, seed=seed, alibi=False))
        weights.append(np.stack([w[rows, cols] for w in mats]))
    return {
        "widget": "alibi", "seq_lens": list(seq_lens), "max_heads": max_heads, "seed": seed, "head_dim": HEAD_DIM,
        "bias_floor": BIAS_FLOOR, "slopes": slopes, "slope_index": slope_index, "weights": weights,
        "cmaps": {"magma": _cmap_stops("magma"), "viridis": _cmap_stops("viridis")},
    }


_SUP = str.maketrans("-0123456789.", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u00b7")


def _slope_text(m: float) -> str:
    """``m`` as a power of two with a superscript exponent, e.g. ``2⁻¹``, as the page writes it."""
    e = math.log2(m)
    text = str(int(round(e))) if abs(e - round(e)) < 1e-9 else f"{e:.3g}"
    return "2" + text.translate(_SUP)


def static_alibi_widget(
    n_heads: int = 8,
    head: int = 0,
    seq_len: int = 32,
    *,
    seed: int = 0,
    alibi: bool = True,
    seq_lens: Sequence[int] = ALIBI_SEQ_LENS,
    max_heads: int = ALIBI_MAX_HEADS,
) -> StaticWidget:
    """:func:`~linattn_edu.widgets.alibi_widget` for the static page: sliders for ``H``, the head, ``T``; a toggle.

    Three SVG panels, as in :func:`~linattn_edu.widgets.plot_alibi`: (a) the bias of the head,
    (b) the slopes of all heads, (c) the causal attention weights with or without ALiBi.

    Args:
        n_heads, head, seq_len, seed, alibi: the initial state; ``seq_len`` one of ``seq_lens``.
        seq_lens: the sequence lengths offered (every matrix is stored: keep them small).
        max_heads: the heads slider's upper end.

    Returns:
        A :class:`StaticWidget` (``payload`` from :func:`alibi_payload`).

    Raises:
        ValueError: bad state or ranges (as :func:`alibi_payload`, and ``n_heads`` in
            ``1..max_heads``, ``head`` in ``0..n_heads-1``, ``seq_len`` in ``seq_lens``,
            ``alibi`` a bool), naming the argument.
    """
    seq_lens = _int_grid(seq_lens, "seq_lens", 2, 128)
    max_heads = _int(max_heads, "max_heads", 1)
    n_heads = _int(n_heads, "n_heads", 1)
    if n_heads > max_heads:
        raise ValueError(f"n_heads must be <= max_heads={max_heads}, got {n_heads}")
    head = _int(head, "head", 0)
    if head >= n_heads:
        raise ValueError(f"head must be in 0..n_heads-1 = 0..{n_heads - 1}, got {head}")
    seq_len = _int(seq_len, "seq_len", 2)
    if seq_len not in seq_lens:
        raise ValueError(f"seq_len must be one of the static slider's values {list(seq_lens)}, got {seq_len}")
    alibi = _bool(alibi, "alibi")
    payload = alibi_payload(seq_lens=seq_lens, max_heads=max_heads, seed=seed)
    m = float(alibi_slopes(n_heads)[head])
    checked = " checked" if alibi else ""
    controls = [
        _slider("n_heads", "number of heads H", max_heads + 1, n_heads, str(n_heads), low=1),
        _slider("head", "head h", n_heads, head, f"{head} (m = {_slope_text(m)})"),
        _slider("seq_len", "sequence length T (tokens)", len(seq_lens), seq_lens.index(seq_len), str(seq_len)),
        '<label for="{id}-alibi">panel (c) with the ALiBi bias</label>'
        f'<input type="checkbox" id="{{id}}-alibi" data-key="alibi"{checked} style="justify-self:start">'
        '<output id="{id}-alibi-out" for="{id}-alibi" data-out="alibi">'
        f'{"softmax(q·k/√D − m·(i−j))" if alibi else "softmax(q·k/√D), no bias"}</output>',
    ]
    note = (f"Precomputed in Python with linattn_edu.widgets.alibi.attention_weights (random q, k: seed {seed}, "
            f"D = {HEAD_DIM}) for every head count 1..{max_heads} and T in {', '.join(map(str, seq_lens))}; "
            "drawn in your browser. Hover over a matrix to read a value.")
    return StaticWidget("alibi", payload, controls, "ALiBi: bias, slopes and attention pattern (static version)", note)


# ----------------------------------------------------------------------------------------------
# RG-LRU gates
# ----------------------------------------------------------------------------------------------


def _float_grid(
    values: Any, name: str, low: float, high: float, *, open_low: bool, open_high: bool
) -> tuple[float, ...]:
    try:
        items = tuple(values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if not items:
        raise ValueError(f"{name} must not be empty")
    out = tuple(_real(v, name) for v in items)
    for v in out:
        if v < low or v > high or (open_low and v == low) or (open_high and v == high):
            raise ValueError(f"{name} must hold values in {'(' if open_low else '['}{low:g}, {high:g}"
                             f"{')' if open_high else ']'}, got {v!r}")
    if list(out) != sorted(set(out)):
        raise ValueError(f"{name} must be strictly increasing, got {list(out)}")
    return out


def gates_payload(
    *, a_values: Sequence[float] = GATES_A_VALUES, c_values: Sequence[float] = GATES_C_VALUES, steps: int = 64
) -> dict[str, Any]:
    """Every state of the static gates widget, computed by the functions the ipywidget draws.

    ``r`` runs over ``0, 0.05, ..., 1`` (:data:`GATES_R_VALUES`) and ``i`` over ``0, 0.05, ..., 1``.
    The curves against ``r`` use the finer grid ``r_curve = 0, 0.025, ..., 1``, which contains
    the slider's values (``r_values[k] == r_curve[2 k]``).

    Returns:
        A dict with ``"a_values"``, ``"c_values"``, ``"r_values"``, ``"i_values"``, ``"r_curve"``,
        ``"steps"`` and, for ``A = len(a_values)``, ``C = len(c_values)``:

        - ``"decay"`` ``(A, C, 41)``: :func:`~linattn_edu.widgets.gates.decay` ``(a, c, r_curve)``;
        - ``"horizon"`` ``(A, C, 40)``: :func:`~linattn_edu.widgets.gates.horizon` on ``r_curve[1:]``
          (``r = 0`` has an infinite horizon);
        - ``"variance_without"`` ``(A, C, 40)``: the stationary variance without the
          ``sqrt(1 - a_t^2)`` factor at ``i = 1``, ``1 / (1 - a_t^2)``, on ``r_curve[1:]``, computed
          as :func:`~linattn_edu.widgets.plot_gates` does (``-expm1(2 c r log a)``); with the
          factor it is ``i^2``;
        - ``"impulse"`` ``(N, steps)`` and ``"impulse_index"`` ``(A, C, 21)``: the impulse
          response at ``i = 1`` of each distinct decay ``a_t = a^(c r)`` on the slider grid,
          :func:`~linattn_edu.widgets.gates.impulse_response` ``(a, c, r, 1, steps)`` (the
          reference ``rg_lru``); state ``(a, c, r)`` uses row ``impulse_index[a][c][r]``. The
          response is linear in ``i`` (``impulse_response(a, c, r, i) = i ·
          impulse_response(a, c, r, 1)``), so the page scales the row by ``i``.

    Raises:
        ValueError: ``a_values`` not increasing in ``(0, 1)``, ``c_values`` not increasing and
            ``> 0``, ``steps`` outside ``1..256``; each message names the argument.
    """
    a_values = _float_grid(a_values, "a_values", 0.0, 1.0, open_low=True, open_high=True)
    c_values = _float_grid(c_values, "c_values", 0.0, math.inf, open_low=True, open_high=True)
    steps = _int(steps, "steps", 1)
    if steps > 256:
        raise ValueError(f"steps must be <= 256 (payload size), got {steps}")
    r_pos = _R_CURVE[1:]
    shape = (len(a_values), len(c_values))
    dec = np.empty(shape + (_R_CURVE.size,))
    hor = np.empty(shape + (r_pos.size,))
    var = np.empty(shape + (r_pos.size,))
    index = np.empty(shape + (len(GATES_R_VALUES),), dtype=np.int64)
    curves: list[np.ndarray] = []
    seen: dict[tuple[int, float], int] = {}
    for ia, a in enumerate(a_values):
        for ic, c in enumerate(c_values):
            dec[ia, ic] = decay(a, c, _R_CURVE)
            hor[ia, ic] = horizon(a, c, r_pos)
            var[ia, ic] = 1.0 / -np.expm1(2.0 * c * r_pos * math.log(a))
            for ir, r in enumerate(GATES_R_VALUES):
                key = (ia, round(c * r, 9))  # the response depends on a and c·r only
                if key not in seen:
                    seen[key] = len(curves)
                    curves.append(impulse_response(a, c, r, 1.0, steps))
                index[ia, ic, ir] = seen[key]
    return {
        "widget": "gates", "a_values": list(a_values), "c_values": list(c_values), "r_values": list(GATES_R_VALUES),
        "i_values": list(GATES_I_VALUES), "r_curve": _R_CURVE.tolist(), "steps": steps,
        "decay": dec, "horizon": hor, "variance_without": var, "impulse": np.stack(curves),
        "impulse_index": index, "compare_r": [0.1, 1.0],
    }


def _a_text(a: float) -> str:
    return f"{a:g} (1 − a = {1.0 - a:.2g})"


def static_gates_widget(
    a: float = 0.95,
    c: float = 8.0,
    r: float = 0.5,
    i: float = 1.0,
    *,
    steps: int = 64,
    a_values: Sequence[float] = GATES_A_VALUES,
    c_values: Sequence[float] = GATES_C_VALUES,
) -> StaticWidget:
    """:func:`~linattn_edu.widgets.gates_widget` for the static page: sliders for ``a``, ``c``, ``r`` and ``i``.

    Four SVG panels, as in :func:`~linattn_edu.widgets.plot_gates`: (1) the decay ``a_t`` against
    ``r``, (2) the memory horizon (log), (3) the impulse response (the chosen ``r`` bold,
    ``r = 0.1`` and ``r = 1`` faint), (4) the stationary variance with and without the
    ``sqrt(1 - a_t^2)`` factor (log). The ``a`` slider is log-spaced in ``1 - a``, like the
    ipywidget's.

    Args:
        a, c, r, i: the initial state: ``a`` one of ``a_values``, ``c`` one of ``c_values``,
            ``r`` and ``i`` multiples of 0.05 in ``[0, 1]``.
        steps: time steps of the impulse response.
        a_values, c_values: the values the ``a`` and ``c`` sliders offer.

    Returns:
        A :class:`StaticWidget` (``payload`` from :func:`gates_payload`).

    Raises:
        ValueError: a value not on its slider's grid, or bad grids (as :func:`gates_payload`),
            naming the argument.
    """
    a_grid = _float_grid(a_values, "a_values", 0.0, 1.0, open_low=True, open_high=True)
    c_grid = _float_grid(c_values, "c_values", 0.0, math.inf, open_low=True, open_high=True)
    ia = _on_grid(a, "a", a_grid)
    ic = _on_grid(c, "c", c_grid)
    ir = _on_grid(r, "r", GATES_R_VALUES)
    ii = _on_grid(i, "i", GATES_I_VALUES)
    payload = gates_payload(a_values=a_grid, c_values=c_grid, steps=steps)
    a_v, c_v = payload["a_values"][ia], payload["c_values"][ic]
    controls = [
        _slider("a", "base decay a (log-spaced)", len(payload["a_values"]), ia, _a_text(a_v)),
        _slider("c", "scale c", len(payload["c_values"]), ic, f"{c_v:g}"),
        _slider("r", "recurrence gate r", len(GATES_R_VALUES), ir, f"{GATES_R_VALUES[ir]:.2f}"),
        _slider("i", "input gate i", len(GATES_I_VALUES), ii, f"{GATES_I_VALUES[ii]:.2f}"),
    ]
    note = ("Precomputed in Python with linattn_edu.widgets.gates.decay, horizon and impulse_response (the "
            "reference rg_lru, Λ = logit(a)) for every slider position; drawn in your browser. Constant gates "
            "r_t = r and i_t = i over time.")
    return StaticWidget("gates", payload, controls, "RG-LRU gates: decay, horizon, impulse response (static version)",
                        note)


# ----------------------------------------------------------------------------------------------
# Recall against state size
# ----------------------------------------------------------------------------------------------


def _hex(color: str) -> str:
    from matplotlib.colors import to_hex

    return to_hex(color)


def recall_windows(stored: dict[str, Any]) -> list[int]:
    """The static recall widget's window values for a stored record: :data:`RECALL_WINDOWS` plus
    every window a stored row was trained with (the study's ``w = L/8 + 1, ...``), so that the
    slider can land on each stored point; ascending."""
    stored_wins = {int(r["options"]["window"]) for r in stored.get("rows", [])
                   if isinstance(r.get("options"), dict) and isinstance(r["options"].get("window"), (int, np.integer))}
    return sorted(set(RECALL_WINDOWS) | stored_wins)


def _knob_values(family: str, uses: tuple[bool, bool], seq_len: int, windows: Sequence[int]) -> list[tuple[int, int]]:
    """``(feature_dim, window)`` pairs to precompute; 0 for a knob the family ignores."""
    dims = RECALL_FEATURE_DIMS if uses[0] else (0,)
    wins = tuple(w for w in windows if w <= seq_len) if uses[1] else (0,)
    return [(d, w) for d in dims for w in wins]


def recall_key(family: str, feature_dim: int, window: int, d_model: int, seq_len: int, n_pairs: int) -> str:
    """The key of a chosen model in ``recall_payload()["chosen"]`` (knobs the family ignores count as 0)."""
    from .recall import FAMILY_KNOBS

    uses_dim, uses_window = FAMILY_KNOBS[family]
    return f"{family}|{feature_dim if uses_dim else 0}|{window if uses_window else 0}|{d_model}|{seq_len}|{n_pairs}"


#: recall_payload's results by a digest of the stored record (hundreds of model builds each, seconds on a CPU).
_RECALL_CACHE: dict[str, dict[str, Any]] = {}


def recall_payload(stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every state of the static recall widget: the stored sweep and the state of every model the sliders pick.

    Hundreds of small models (one per reachable slider state) are built to count their state (a few
    seconds); results are cached per stored record, and a fresh copy is returned each time.

    Returns:
        A dict with

        - ``"settings"``: the stored ``[seq_len, n_pairs]`` settings
          (:func:`~linattn_edu.widgets.recall.stored_settings`);
        - ``"rows"``: the stored rows (``family``, ``label``, ``seq_len``, ``n_pairs``,
          ``state_bytes``, ``accuracy``), in the record's order;
        - ``"frontier"``: per setting, the indices into ``"rows"`` of
          :func:`~linattn_edu.experiments.mqar_sweep.pareto_frontier`, sorted by state size;
        - ``"families"``: ``[{"name", "color", "marker", "uses_feature_dim", "uses_window"}]`` in
          the order of :data:`~linattn_edu.experiments.mqar_sweep.MODEL_FAMILIES` (the plot's style
          and :data:`~linattn_edu.widgets.recall.FAMILY_KNOBS`);
        - ``"chosen"``: for every reachable slider state, keyed by :func:`recall_key`, the chosen
          model's ``{"label", "state_bytes", "row"}``: its label
          (:func:`~linattn_edu.widgets.recall.chosen_variant`), decode-state bytes
          (:func:`~linattn_edu.widgets.recall.chosen_state_bytes`, as the sweep counts them) and
          the index of its stored row (:func:`~linattn_edu.widgets.recall.find_stored_row`), or -1;
        - ``"feature_dims"``, ``"windows"``, ``"widths"`` (the sliders' values) and ``"stored"``
          (device, date, command, d_model, n_layers, steps of the stored run).

    Raises:
        ValueError: ``stored`` is not a results record with rows (None loads the packaged one).
    """
    from .recall import stored_record

    stored = stored_record(stored)
    digest = hashlib.sha256(json.dumps(stored, sort_keys=True, default=str).encode()).hexdigest()
    if digest not in _RECALL_CACHE:
        _RECALL_CACHE[digest] = _recall_payload(stored)
    return copy.deepcopy(_RECALL_CACHE[digest])


def _recall_payload(stored: dict[str, Any]) -> dict[str, Any]:
    from ..experiments.mqar_sweep import FAMILY_STYLES, MODEL_FAMILIES, pareto_frontier
    from .recall import (
        FAMILY_KNOBS, WIDTHS, stored_config, chosen_state_bytes, chosen_variant, find_stored_row, stored_settings,
    )

    cfg = stored_config(stored)
    settings = stored_settings(stored)
    rows = stored["rows"]
    windows = recall_windows(stored)
    frontier = []
    for seq_len, n_pairs in settings:
        front = pareto_frontier(rows, seq_len=seq_len, n_pairs=n_pairs)
        frontier.append([next(k for k, r in enumerate(rows) if r is f) for f in front])
    families = []
    for fam in MODEL_FAMILIES:
        color, marker = FAMILY_STYLES.get(fam, ("tab:gray", "x"))
        uses = FAMILY_KNOBS[fam]
        families.append({"name": fam, "color": _hex(color), "marker": marker, "uses_feature_dim": uses[0],
                         "uses_window": uses[1]})
    chosen: dict[str, dict[str, Any]] = {}
    for seq_len, n_pairs in settings:
        for fam in MODEL_FAMILIES:
            for d, w in _knob_values(fam, FAMILY_KNOBS[fam], seq_len, windows):
                dim, win = d or 1, w or seq_len  # any valid value for an ignored knob
                var = chosen_variant(fam, feature_dim=dim, window=win, seq_len=seq_len, n_layers=cfg["n_layers"],
                                     stack=cfg["stack"])
                for width in WIDTHS:
                    nbytes = chosen_state_bytes(fam, feature_dim=dim, window=win, d_model=width, seq_len=seq_len,
                                                n_layers=cfg["n_layers"], n_heads=cfg["n_heads"],
                                                bytes_per_element=cfg["bytes_per_element"], stack=cfg["stack"])
                    row = find_stored_row(stored, fam, feature_dim=dim, window=win, d_model=width, seq_len=seq_len,
                                          n_pairs=n_pairs)
                    chosen[recall_key(fam, dim, win, width, seq_len, n_pairs)] = {
                        "label": var["label"], "state_bytes": int(nbytes),
                        "row": -1 if row is None else next(k for k, r in enumerate(rows) if r is row)}
    return {
        "widget": "recall", "settings": [list(s) for s in settings],
        "rows": [{k: r[k] for k in ("family", "label", "seq_len", "n_pairs", "state_bytes", "accuracy")} for r in rows],
        "frontier": frontier, "families": families, "chosen": chosen,
        "feature_dims": list(RECALL_FEATURE_DIMS), "windows": windows, "widths": list(WIDTHS),
        "stored": {"device": stored.get("device", "?"), "date": str(stored.get("date", ""))[:10],
                   "command": stored.get("command", "?"), "d_model": cfg["d_model"], "n_layers": cfg["n_layers"],
                   "steps": cfg["steps"]},
    }


def static_recall_widget(
    family: str = "based",
    *,
    feature_dim: int = 4,
    window: int = 16,
    d_model: int = 64,
    seq_len: int = 64,
    n_pairs: int = 8,
    stored: dict[str, Any] | None = None,
) -> StaticWidget:
    """:func:`~linattn_edu.widgets.recall_widget` for the static page: place a configuration on the stored frontier.

    A family menu and sliders for the feature dim, the window, the width and the MQAR setting;
    the SVG chart shows the stored sweep at that setting (one marker and color per family, the
    Pareto frontier as a staircase), a dotted line at the chosen model's decode state and a ring
    around its stored point when the sweep trained exactly that model. Training live needs the
    kernel (the ipywidget's button).

    Args:
        family, feature_dim, window, d_model, seq_len, n_pairs: the initial state:
            ``feature_dim`` in :data:`RECALL_FEATURE_DIMS`, ``window`` in
            :func:`recall_windows` of the record and ``<= seq_len``, ``d_model`` in
            :data:`~linattn_edu.widgets.recall.WIDTHS`, ``(seq_len, n_pairs)`` a stored setting.
        stored: a results record (None: the packaged ``mqar_sweep.json``).

    Returns:
        A :class:`StaticWidget` (``payload`` from :func:`recall_payload`).

    Raises:
        ValueError: an unknown family, a value not on its slider, a setting not in the stored
            sweep, a malformed ``stored``; each message names the argument.
    """
    from ..experiments.mqar_sweep import MODEL_FAMILIES
    from .recall import WIDTHS, FAMILY_KNOBS, stored_record, stored_settings

    if not isinstance(family, str) or family not in MODEL_FAMILIES:
        raise ValueError(f"family must be one of {list(MODEL_FAMILIES)}, got {family!r}")
    feature_dim = _int(feature_dim, "feature_dim", 1)
    if feature_dim not in RECALL_FEATURE_DIMS:
        raise ValueError(f"feature_dim must be one of the static slider's values {list(RECALL_FEATURE_DIMS)}, "
                         f"got {feature_dim}")
    window = _int(window, "window", 1)
    seq_len = _int(seq_len, "seq_len", 2)
    n_pairs = _int(n_pairs, "n_pairs", 1)
    d_model = _int(d_model, "d_model", 2)
    if d_model not in WIDTHS:
        raise ValueError(f"d_model must be one of {list(WIDTHS)}, got {d_model}")
    stored = stored_record(stored)
    wins = [w for w in recall_windows(stored) if w <= seq_len]
    if window not in wins:
        raise ValueError(f"window must be one of {wins} (<= seq_len), got {window}")
    settings = stored_settings(stored)
    if (seq_len, n_pairs) not in settings:
        raise ValueError(f"(seq_len, n_pairs) must be a setting of the stored sweep, one of {settings}, "
                         f"got {(seq_len, n_pairs)}")
    payload = recall_payload(stored)
    uses_dim, uses_window = FAMILY_KNOBS[family]
    options = "".join(f'<option value="{f}"{" selected" if f == family else ""}>{f}</option>' for f in MODEL_FAMILIES)
    controls = [
        '<label for="{id}-family">model family</label>'
        f'<select id="{{id}}-family" data-key="family" style="justify-self:start">{options}</select>'
        '<output id="{id}-family-out" for="{id}-family" data-out="family"></output>',
        _slider("feature_dim", "feature dim d", len(RECALL_FEATURE_DIMS), RECALL_FEATURE_DIMS.index(feature_dim),
                str(feature_dim), disabled=not uses_dim),
        _slider("window", "window w (tokens)", len(wins), wins.index(window), str(window), disabled=not uses_window),
        _slider("width", "width d_model", len(WIDTHS), list(WIDTHS).index(d_model), str(d_model)),
        _slider("setting", "MQAR setting", len(settings), settings.index((seq_len, n_pairs)),
                f"L = {seq_len}, {n_pairs} pairs"),
    ]
    s = payload["stored"]
    note = (f"Stored sweep precomputed on {s['device']}, {s['date']} ({s['n_layers']} layers, d_model {s['d_model']}, "
            f"{s['steps']} steps; rerun: {s['command']}). State sizes from linattn_edu.widgets.recall."
            "chosen_state_bytes for every slider position. Training a new point live needs the Python kernel.")
    return StaticWidget("recall", payload, controls, "Recall vs state size on MQAR (static version)", note)
