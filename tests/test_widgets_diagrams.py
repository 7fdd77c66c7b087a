"""The code-drawn diagrams: their index arithmetic matches the computation they explain."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from numpy.testing import assert_allclose

from linattn_edu import reference as ref
from linattn_edu.widgets import diagrams as dg


def _run_rounds(a, b, rounds, *, in_place):
    """Apply the combine steps of ``scan_dependencies``: (a_s, b_s) then (a_t, b_t). Hillis–Steele
    reads the previous round's values; the chunked scan updates in place, in ascending ``t``
    (its carry round runs one chunk after another)."""
    A, Bv = a.copy(), b.copy()
    for pairs in rounds:
        src_A, src_B = (A, Bv) if in_place else (A.copy(), Bv.copy())
        for s, t in sorted(pairs, key=lambda p: p[1]):
            A[t], Bv[t] = src_A[t] * src_A[s], src_A[t] * src_B[s] + src_B[t]
    return Bv


@pytest.mark.parametrize("T", [1, 5, 8, 13])
@pytest.mark.parametrize("method", ["hillis_steele", "chunked"])
def test_scan_rounds_compute_the_scan(T, method):
    rng = np.random.default_rng(T)
    a, b = rng.uniform(0.5, 1.0, T), rng.standard_normal(T)
    rounds = dg.scan_dependencies(T, method, chunk=4)
    h, _ = ref.linear_scan(a[None, :, None], b[None, :, None])
    assert_allclose(_run_rounds(a, b, rounds, in_place=method == "chunked"), h[0, :, 0], rtol=1e-12)
    if method == "hillis_steele":
        assert len(rounds) == int(np.ceil(np.log2(T))) if T > 1 else rounds == []


def test_flash_schedule_skips_future_tiles():
    sched = dg.flash_tile_schedule(5)
    assert (sched >= 0).sum() == 15 and np.all(sched[np.triu_indices(5, 1)] == -1)
    assert np.all(dg.flash_tile_schedule(5, causal=False) >= 0)
    assert list(sched[4]) == [0, 1, 2, 3, 4]


def test_tree_taps_follow_the_path_then_the_prefix():
    parents = [-1, -1, 0, 0, 2, 4]
    assert dg.tree_conv_taps(parents, 4, 4, 3) == [("node", 4), ("node", 2), ("node", 0), ("prefix", 2)]
    assert dg.tree_conv_taps(parents, 1, 3, 3) == [("node", 1), ("prefix", 2), ("prefix", 1)]
    # a chain is ordinary causal convolution: the last k inputs
    chain = [-1, 0, 1, 2]
    assert dg.tree_conv_taps(chain, 3, 6, 5) == [("node", 3), ("node", 2), ("node", 1), ("node", 0),
                                                ("prefix", 4), ("prefix", 3)]
    # siblings never appear: every node tap is an ancestor-or-self (tree mask row)
    mask = ref.tree_attention_mask(parents)
    for node in range(len(parents)):
        for kind, i in dg.tree_conv_taps(parents, node, 6, 2):
            assert kind == "prefix" or mask[node, i]


@pytest.mark.parametrize(
    "draw",
    [dg.draw_flash_schedule, dg.draw_chunked_linear_attention, dg.draw_scan_dependencies, dg.draw_griffin_blocks,
     lambda: dg.draw_tree_conv_taps([-1, -1, 0, 0, 2], 4)],
)
def test_figures_have_titles(draw):
    import matplotlib.pyplot as plt

    fig = draw()
    assert all(ax.get_title() for ax in fig.axes)
    plt.close(fig)


def test_bad_input():
    with pytest.raises(ValueError, match="n_tiles"):
        dg.flash_tile_schedule(0)
    with pytest.raises(ValueError, match="highlight"):
        dg.draw_flash_schedule(3, highlight=5)
    with pytest.raises(ValueError, match="method"):
        dg.scan_dependencies(4, "blelloch")
    with pytest.raises(ValueError, match="node"):
        dg.tree_conv_taps([-1], 2, 3, 1)
    with pytest.raises(ValueError, match="prefix_len"):
        dg.tree_conv_taps([-1], 0, 3, -1)
