"""Chapter's RG-LRU gates widget: the figure's numbers are right, every slider redraws, bad arguments fail."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import ipywidgets  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from linattn_edu.widgets import gates_widget, plot_gates, plot_token_gates  # noqa: E402
from linattn_edu.widgets.gates import COMPARE_R, R_GRID, R_GRID_DECAY, impulse_response, token_label  # noqa: E402


def _line(ax, gid: str):
    """The one line of ``ax`` with this gid."""
    found = [ln for ln in ax.get_lines() if ln.get_gid() == gid]
    assert len(found) == 1, [ln.get_gid() for ln in ax.get_lines()]
    return found[0]


def _closed_form(a: float, c: float, r: float, i: float, steps: int) -> np.ndarray:
    a_t = a ** (c * r)
    return math.sqrt(1.0 - a_t**2) * i * a_t ** np.arange(steps)


def test_plot_gates_panels_are_titled_labelled_and_scaled() -> None:
    fig = plot_gates()
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4
    for ax in fig.axes:
        assert ax.get_title(), "every panel has a title"
        assert ax.get_xlabel() and ax.get_ylabel(), f"panel {ax.get_title()!r} lacks axis labels"
        assert ax.get_legend() is not None, f"panel {ax.get_title()!r} lacks a legend"
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "log", "linear", "log"]
    assert "tokens" in fig.axes[1].get_ylabel() and "tokens" in fig.axes[2].get_xlabel()
    assert "horizon" in fig.get_suptitle()


def test_decay_and_horizon_panels_draw_the_formulas() -> None:
    a, c, r = 0.97, 6.0, 0.3
    ax_decay, ax_hor = plot_gates(a, c, r).axes[:2]
    curve = _line(ax_decay, "decay")
    np.testing.assert_allclose(curve.get_xdata(), R_GRID_DECAY)
    np.testing.assert_allclose(curve.get_ydata(), a ** (c * R_GRID_DECAY), rtol=1e-12)
    np.testing.assert_allclose(_line(ax_decay, "decay-chosen").get_ydata(), [a ** (c * r)], rtol=1e-12)

    hor = _line(ax_hor, "horizon")
    np.testing.assert_allclose(hor.get_xdata(), R_GRID)
    np.testing.assert_allclose(hor.get_ydata(), -1.0 / np.log(a ** (c * R_GRID)), rtol=1e-10)
    np.testing.assert_allclose(_line(ax_hor, "horizon-chosen").get_ydata(), [-1.0 / (c * r * math.log(a))], rtol=1e-12)
    # After one horizon an impulse has decayed to 1/e.
    assert (a ** (c * r)) ** (-1.0 / (c * r * math.log(a))) == pytest.approx(math.exp(-1))


@pytest.mark.parametrize("a, c, r, i", [(0.95, 8.0, 0.5, 1.0), (0.999, 8.0, 0.05, 0.4), (0.6, 2.5, 1.0, 0.7)])
def test_impulse_response_matches_the_closed_form(a: float, c: float, r: float, i: float) -> None:
    steps = 40
    ax = plot_gates(a, c, r, i, steps=steps).axes[2]
    chosen = _line(ax, "impulse-chosen")
    np.testing.assert_allclose(chosen.get_xdata(), np.arange(steps))
    np.testing.assert_allclose(chosen.get_ydata(), _closed_form(a, c, r, i, steps), rtol=1e-10, atol=1e-15)
    assert chosen.get_label().startswith(f"r = {r:g} ")
    for rk in COMPARE_R:
        faint = _line(ax, f"impulse-r={rk:g}")
        assert faint.get_alpha() < 1 and faint.get_label().startswith(f"r = {rk:g} ")
        np.testing.assert_allclose(faint.get_ydata(), _closed_form(a, c, rk, i, steps), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(impulse_response(a, c, r, i, steps), _closed_form(a, c, r, i, steps), rtol=1e-10)


def test_normalization_panel_values() -> None:
    a, c, r, i = 0.99, 8.0, 0.25, 0.6
    ax = plot_gates(a, c, r, i).axes[3]
    a_t = a ** (c * R_GRID)
    np.testing.assert_allclose(_line(ax, "variance-with").get_ydata(), i**2)
    np.testing.assert_allclose(_line(ax, "variance-without").get_ydata(), i**2 / (1.0 - a_t**2), rtol=1e-10)
    np.testing.assert_allclose(_line(ax, "variance-chosen").get_ydata(), [i**2 / (1.0 - a ** (2 * c * r)), i**2], rtol=1e-10)
    # The normalized state really has variance i^2: simulate the recurrence with white noise.
    rng = np.random.default_rng(0)
    x = rng.standard_normal(200_000)
    a_r = a ** (c * r)
    h, hs = 0.0, np.empty_like(x)
    b = math.sqrt(1 - a_r**2) * i * x
    for t in range(x.size):
        h = a_r * h + b[t]
        hs[t] = h
    assert hs[1000:].var() == pytest.approx(i**2, rel=0.03)


def test_r_zero_and_i_zero_render() -> None:
    fig = plot_gates(r=0.0, i=0.0, steps=1)
    assert fig.axes[3].get_yscale() == "linear", "both variances are 0: no log axis"
    np.testing.assert_array_equal(_line(fig.axes[2], "impulse-chosen").get_ydata(), [0.0])
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "r = 0" in texts and "i = 0" in texts


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(a=1.0), "a"),
        (dict(a=0.0), "a"),
        (dict(a=-0.5), "a"),
        (dict(a=float("nan")), "a"),
        (dict(c=0.0), "c"),
        (dict(c=-1.0), "c"),
        (dict(r=-0.1), "r"),
        (dict(r=1.5), "r"),
        (dict(i=1.01), "i"),
        (dict(steps=0), "steps"),
        (dict(steps=2.0), "steps"),
        (dict(a="0.9"), "a"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=rf"^{match} must"):
        plot_gates(**kwargs)
    with pytest.raises(ValueError, match=rf"^{match} must"):
        gates_widget(**kwargs)


def test_widget_beyond_slider_range_raises() -> None:
    with pytest.raises(ValueError, match="^a must be within"):
        gates_widget(a=0.3)
    with pytest.raises(ValueError, match="^c must be within"):
        gates_widget(c=20.0)


def test_widget_builds_and_every_slider_redraws_the_figure() -> None:
    w = gates_widget()
    assert isinstance(w, ipywidgets.Widget)
    assert w.redraws == 1 and w.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert w.state == dict(a=0.95, c=8.0, r=0.5, i=1.0, steps=64)
    assert "0.95" in w.a_label.value
    np.testing.assert_allclose(_line(w.figure.axes[2], "impulse-chosen").get_ydata(),
                               _closed_form(0.95, 8.0, 0.5, 1.0, 64), rtol=1e-10)
    png, count = w.image.value, w.redraws

    def changed() -> None:
        nonlocal png, count
        assert w.redraws == count + 1, "one slider change draws exactly once"
        assert w.image.value != png, "the rendered image changed"
        png, count = w.image.value, w.redraws
        s = w.state
        np.testing.assert_allclose(_line(w.figure.axes[2], "impulse-chosen").get_ydata(),
                                   _closed_form(s["a"], s["c"], s["r"], s["i"], 64), rtol=1e-9, atol=1e-15)

    w.a_slider.value = 2.0  # log-spaced: -log10(1 - a) = 2 is a = 0.99
    changed()
    assert w.state["a"] == pytest.approx(0.99) and "0.99" in w.a_label.value
    w.c_slider.value = 4.0
    changed()
    w.r_slider.value = 0.2
    changed()
    w.i_slider.value = 0.5
    changed()
    assert w.state == pytest.approx(dict(a=0.99, c=4.0, r=0.2, i=0.5, steps=64))


def _random_gates(text: str, channels: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (len(text), channels)
    return rng.random(shape), rng.random(shape), rng.uniform(0.9, 0.999, channels)


def test_plot_token_gates_draws_the_gates() -> None:
    text = "the cat\nsat\ton $x"
    r, i, a = _random_gates(text, 12)
    fig = plot_token_gates(text, r, i, a=a)
    ax_r, ax_i, ax_a = fig.axes[:3]
    assert len(fig.axes) == 5, "three panels and two colorbars"
    for ax in (ax_r, ax_i, ax_a):
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        assert [t.get_text() for t in ax.get_xticklabels()] == [token_label(ch) for ch in text]
    assert token_label(" ") == "␣" and token_label("\n") == "↵" and token_label("\x01") == "01"
    np.testing.assert_array_equal(ax_r.images[0].get_array(), r.T)
    np.testing.assert_array_equal(ax_i.images[0].get_array(), i.T)
    mean = _line(ax_a, "token-mean")
    np.testing.assert_allclose(mean.get_ydata(), (a[None, :] ** (8.0 * r)).mean(axis=1), rtol=1e-12)
    assert all(cb.get_ylabel() for cb in fig.axes[3:])


def test_plot_token_gates_without_a_and_truncated() -> None:
    text = "abcdefghij" * 3
    r, i, _ = _random_gates(text, 4, seed=1)
    fig = plot_token_gates(text, r, i, c=5.0, max_tokens=10)
    ax_r, _, ax_a = fig.axes[:3]
    assert ax_r.images[0].get_array().shape == (4, 10)
    np.testing.assert_allclose(_line(ax_a, "token-mean").get_ydata(), (5.0 * r[:10]).mean(axis=1))
    assert "first 10 of 30" in fig.get_suptitle()


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(r=np.zeros((5, 3))), "^r must have shape"),
        (dict(i=np.zeros((6, 4))), "^i must have shape"),
        (dict(r=np.zeros(6)), "^r must have shape"),
        (dict(i=np.full((6, 3), 1.5)), "^i must hold"),
        (dict(r=np.full((6, 3), -0.1)), "^r must hold"),
        (dict(a=np.full(4, 0.9)), "^a must have shape"),
        (dict(a=np.full(3, 1.0)), "^a must hold"),
        (dict(text=""), "^text must"),
        (dict(text=b"abcdef"), "^text must"),
        (dict(c=0.0), "^c must"),
        (dict(max_tokens=0), "^max_tokens must"),
    ],
)
def test_plot_token_gates_validates(change: dict, match: str) -> None:
    kwargs = dict(text="abcdef", r=np.full((6, 3), 0.5), i=np.full((6, 3), 0.5), a=None)
    kwargs.update(change)
    with pytest.raises(ValueError, match=match):
        plot_token_gates(kwargs.pop("text"), kwargs.pop("r"), kwargs.pop("i"), **kwargs)
