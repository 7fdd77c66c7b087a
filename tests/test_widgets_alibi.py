"""Chapter 3's ALiBi widget: it builds, every control redraws the figure, bad arguments fail."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import ipywidgets  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from linattn_edu.reference import alibi_bias, alibi_slopes, attention_mask  # noqa: E402
from linattn_edu.widgets import alibi_widget, plot_alibi  # noqa: E402
from linattn_edu.widgets.alibi import attention_weights  # noqa: E402


def _panels(fig: Figure):
    """The three main panels (the colorbars are extra axes after them)."""
    return fig.axes[0], fig.axes[1], fig.axes[2]


def _shown_bias(fig: Figure) -> np.ndarray:
    return np.ma.filled(np.ma.masked_invalid(_panels(fig)[0].images[0].get_array()), np.nan)


def _expected_bias(n_heads: int, head: int, seq_len: int) -> np.ndarray:
    return np.where(attention_mask(seq_len, seq_len), alibi_bias(n_heads, seq_len)[head], np.nan)


def _shown_weights(fig: Figure) -> np.ndarray:
    return np.ma.filled(np.ma.masked_invalid(_panels(fig)[2].images[0].get_array()), 0.0)


def test_plot_alibi_panels_are_titled_and_labelled() -> None:
    fig = plot_alibi(8, 2, 24)
    assert isinstance(fig, Figure)
    for ax in _panels(fig):
        assert ax.get_title(), "every panel has a title"
        assert ax.get_xlabel() and ax.get_ylabel(), f"panel {ax.get_title()!r} lacks axis labels"
    assert len(fig.axes) == 5, "three panels and two colorbars"
    assert all(cb.get_ylabel() for cb in fig.axes[3:]), "colorbars are labelled"
    np.testing.assert_array_equal(_shown_bias(fig), _expected_bias(8, 2, 24))
    heights = [p.get_height() for p in _panels(fig)[1].patches]
    np.testing.assert_allclose(heights, alibi_slopes(8))


def test_plot_alibi_attention_rows_sum_to_one_and_respect_causality() -> None:
    for alibi in (True, False):
        w = _shown_weights(plot_alibi(12, 9, 16, alibi=alibi))
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
        assert np.all(np.triu(w, 1) == 0)
        np.testing.assert_allclose(w, attention_weights(12, 9, 16, alibi=alibi))


def test_alibi_biases_attention_toward_recent_keys() -> None:
    """The steepest head puts more weight on the diagonal than no bias does (same q, k)."""
    with_bias = attention_weights(8, 0, 64, seed=1, alibi=True)
    without = attention_weights(8, 0, 64, seed=1, alibi=False)
    assert np.trace(with_bias) > np.trace(without)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_heads=8, head=8, seq_len=16), "head"),
        (dict(n_heads=0, head=0, seq_len=16), "n_heads"),
        (dict(n_heads=4, head=-1, seq_len=16), "head"),
        (dict(n_heads=4, head=0, seq_len=1), "seq_len"),
        (dict(n_heads=2.0, head=0, seq_len=16), "n_heads"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plot_alibi(**kwargs)
    with pytest.raises(ValueError, match=match):
        alibi_widget(**kwargs)


def test_widget_beyond_slider_range_raises() -> None:
    with pytest.raises(ValueError, match="max_heads"):
        alibi_widget(n_heads=40, max_heads=32)
    with pytest.raises(ValueError, match="max_seq_len"):
        alibi_widget(seq_len=300, max_seq_len=256)


def test_widget_builds_with_its_default_state() -> None:
    w = alibi_widget()
    assert isinstance(w, ipywidgets.Widget)
    assert w.redraws == 1 and w.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert (w.n_heads_slider.value, w.head_slider.value, w.seq_len_slider.value) == (8, 0, 32)
    assert w.head_slider.max == 7
    np.testing.assert_array_equal(_shown_bias(w.figure), _expected_bias(8, 0, 32))


def test_every_control_redraws_the_figure() -> None:
    w = alibi_widget(n_heads=8, head=0, seq_len=16)
    png, count = w.image.value, w.redraws

    def changed() -> None:
        nonlocal png, count
        assert w.redraws == count + 1, "one control change draws exactly once"
        assert w.image.value != png, "the rendered image changed"
        png, count = w.image.value, w.redraws

    w.head_slider.value = 5
    changed()
    np.testing.assert_array_equal(_shown_bias(w.figure), _expected_bias(8, 5, 16))

    w.seq_len_slider.value = 40
    changed()
    np.testing.assert_array_equal(_shown_bias(w.figure), _expected_bias(8, 5, 40))

    w.n_heads_slider.value = 12
    changed()
    assert w.head_slider.max == 11
    np.testing.assert_array_equal(_shown_bias(w.figure), _expected_bias(12, 5, 40))
    np.testing.assert_allclose([p.get_height() for p in _panels(w.figure)[1].patches], alibi_slopes(12))

    w.bias_toggle.value = "no bias"
    changed()
    np.testing.assert_allclose(_shown_weights(w.figure), attention_weights(12, 5, 40, alibi=False))
    assert "no bias" in _panels(w.figure)[2].get_title()

    w.bias_toggle.value = "ALiBi"
    changed()
    np.testing.assert_allclose(_shown_weights(w.figure), attention_weights(12, 5, 40, alibi=True))


def test_fewer_heads_clamps_the_head_and_redraws_once() -> None:
    w = alibi_widget(n_heads=16, head=13, seq_len=8)
    count = w.redraws
    w.n_heads_slider.value = 4
    assert w.redraws == count + 1
    assert w.head_slider.max == 3 and w.head_slider.value == 3
    np.testing.assert_array_equal(_shown_bias(w.figure), _expected_bias(4, 3, 8))
    assert w.state == dict(n_heads=4, head=3, seq_len=8, seed=0, alibi=True)
