"""The recall-vs-state widget: state sizes match the stored study and sweep, the figure, the controls, live training."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import copy  # noqa: E402

import ipywidgets  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from linattn_edu import bench  # noqa: E402
from linattn_edu.experiments.mqar_sweep import MODEL_FAMILIES, model_variants  # noqa: E402
from linattn_edu.widgets import RecallExplorer, chosen_state_bytes, plot_recall_frontier, recall_widget  # noqa: E402
from linattn_edu.widgets.recall import (  # noqa: E402
    FAMILY_KNOBS,
    STUDY_FAMILY_NAMES,
    _train_sizes,
    chosen_variant,
    default_record,
    find_stored_row,
    live_lr,
    stored_config,
    stored_settings,
    study_record,
)


@pytest.fixture(scope="module")
def stored() -> dict:
    record = bench.load_results("mqar_sweep")
    assert record is not None, "the package ships linattn_edu/results/mqar_sweep.json"
    return record


@pytest.fixture(scope="module")
def study() -> dict:
    record = bench.load_results("mqar_study_cpu")
    assert record is not None, "the package ships linattn_edu/results/mqar_study_cpu.json"
    return record


@pytest.fixture(scope="module")
def widget(stored: dict) -> RecallExplorer:
    """The widget on the older sweep (two settings with the same number of pairs)."""
    return recall_widget(dpi=40, train_steps=2, stored=stored)


def _row_knobs(row: dict) -> dict:
    """The widget's knobs that rebuild a stored row (ignored knobs get a dummy value)."""
    opts = row["options"]
    return {"feature_dim": opts.get("feature_dim", 1), "window": opts.get("window", 1)}


def _gids(fig: Figure) -> set:
    ax = fig.axes[0]
    return {artist.get_gid() for artist in [*ax.lines, *ax.texts]} - {None}


def test_state_bytes_match_every_stored_row(stored: dict) -> None:
    cfg = stored["config"]
    for row in stored["rows"]:
        got = chosen_state_bytes(row["family"], **_row_knobs(row), d_model=cfg["d_model"], seq_len=row["seq_len"],
                                 n_layers=cfg["n_layers"], n_heads=cfg["n_heads"])
        assert got == row["state_bytes"], row["label"]
        var = chosen_variant(row["family"], **_row_knobs(row), seq_len=row["seq_len"])
        assert {"kind": var["kind"], **var["options"]} == row["options"], row["label"]
        assert var["label"] == row["label"]


def test_chosen_variant_is_what_model_variants_builds() -> None:
    for var in model_variants(64, windows=[8], feature_dims={"linear_elu": [3], "linear_taylor": [5]},
                              based=[{"feature_dim": 3, "window": 8}]):
        knobs = {"feature_dim": var["options"].get("feature_dim", 7), "window": var["options"].get("window", 9)}
        assert chosen_variant(var["family"], **knobs, seq_len=64) == var
    # a window as long as the sequence: the sweep skips it, the widget builds it (= attention's state)
    long_window = chosen_state_bytes("sliding_window", feature_dim=1, window=64, d_model=64, seq_len=64)
    assert long_window == chosen_state_bytes("attention", feature_dim=1, window=3, d_model=64, seq_len=64)
    # the state grows with each knob the family uses, and ignores the others
    assert chosen_state_bytes("based", feature_dim=4, window=32, d_model=64, seq_len=64) > \
        chosen_state_bytes("based", feature_dim=4, window=16, d_model=64, seq_len=64)
    assert chosen_state_bytes("linear_elu", feature_dim=4, window=2, d_model=64, seq_len=64) == \
        chosen_state_bytes("linear_elu", feature_dim=4, window=40, d_model=64, seq_len=128)


def test_plot_is_titled_labelled_log_and_cites_the_stored_run(stored: dict) -> None:
    fig = plot_recall_frontier(stored=stored)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xscale() == "log"
    assert "bytes" in ax.get_xlabel() and ax.get_ylabel()
    footnote = fig._supxlabel.get_text()
    assert f"precomputed on {stored['device']}, {stored['date'][:10]}" in footnote
    state = chosen_state_bytes("based", feature_dim=4, window=16, d_model=64, seq_len=64)
    (vline,) = [line for line in ax.lines if line.get_gid() == "chosen-state"]
    assert list(vline.get_xdata()) == [state, state]
    assert any(f"{state:,} bytes" in t.get_text() for t in ax.texts)
    lo, hi = ax.get_xlim()
    assert lo < state < hi


def test_a_stored_model_is_highlighted_with_its_accuracy(stored: dict) -> None:
    row = next(r for r in stored["rows"] if r["label"] == "taylor d=2 (F=7)" and r["seq_len"] == 128)
    fig = plot_recall_frontier("linear_taylor", feature_dim=2, window=5, seq_len=128, n_pairs=8, stored=stored)
    ax = fig.axes[0]
    (ring,) = [line for line in ax.lines if line.get_gid() == "stored-match"]
    assert (ring.get_xdata()[0], ring.get_ydata()[0]) == (row["state_bytes"], row["accuracy"])
    assert f"{row['accuracy']:.1%}" in ax.get_title()
    assert "not in the stored run" not in ax.get_title()


@pytest.mark.parametrize("kwargs", [
    {"family": "based", "feature_dim": 3, "window": 16},      # a knob value the sweep did not train
    {"family": "based", "feature_dim": 4, "window": 16, "d_model": 128},  # another width
    {"family": "sliding_window", "window": 16},
])
def test_other_models_are_not_in_the_sweep(stored: dict, kwargs: dict) -> None:
    fig = plot_recall_frontier(**kwargs, stored=stored)
    ax = fig.axes[0]
    assert "not in the stored run" in ax.get_title() and "train it live" in ax.get_title()
    assert "stored-match" not in _gids(fig) and "chosen-state" in _gids(fig)


def test_live_point_is_a_star(stored: dict) -> None:
    live = {"state_bytes": 3000, "accuracy": 0.25, "label": "mine"}
    fig = plot_recall_frontier("linear_elu", feature_dim=2, stored=stored, live=live)
    ax = fig.axes[0]
    (star,) = [line for line in ax.lines if line.get_gid() == "live"]
    assert star.get_marker() == "*" and (star.get_xdata()[0], star.get_ydata()[0]) == (3000, 0.25)
    assert ax.get_xlim()[0] < 3000
    assert any("mine" in t.get_text() for t in ax.get_legend().get_texts())


def test_bad_arguments_name_themselves(stored: dict) -> None:
    with pytest.raises(ValueError, match="family"):
        plot_recall_frontier("mamba", stored=stored)
    with pytest.raises(ValueError, match="feature_dim"):
        plot_recall_frontier(feature_dim=0, stored=stored)
    with pytest.raises(ValueError, match="window"):
        plot_recall_frontier(window=0, stored=stored)
    with pytest.raises(ValueError, match="seq_len, n_pairs"):
        plot_recall_frontier(seq_len=256, n_pairs=8, stored=stored)
    with pytest.raises(ValueError, match="seq_len, n_pairs"):
        plot_recall_frontier(seq_len=64, n_pairs=4, stored=stored)
    with pytest.raises(ValueError, match="d_model"):
        plot_recall_frontier(d_model=66, stored=stored)
    with pytest.raises(ValueError, match="live"):
        plot_recall_frontier(stored=stored, live={"state_bytes": 10, "accuracy": 2.0, "label": "x"})
    with pytest.raises(ValueError, match="stored"):
        plot_recall_frontier(stored={"device": "x"})
    with pytest.raises(ValueError, match="family"):
        chosen_state_bytes("rnn", feature_dim=1, window=1, d_model=64, seq_len=64)
    with pytest.raises(ValueError, match="feature_dim"):
        chosen_state_bytes("based", feature_dim=0, window=8, d_model=64, seq_len=64)
    with pytest.raises(ValueError, match="window"):
        chosen_state_bytes("based", feature_dim=2, window=-1, d_model=64, seq_len=64)
    with pytest.raises(ValueError, match="family"):
        recall_widget("mamba")
    with pytest.raises(ValueError, match="feature_dim"):
        recall_widget(feature_dim=0)
    with pytest.raises(ValueError, match="window"):
        recall_widget(window=0)
    with pytest.raises(ValueError, match="window"):
        recall_widget(window=65)
    with pytest.raises(ValueError, match="d_model"):
        recall_widget(d_model=48)
    with pytest.raises(ValueError, match="seq_len, n_pairs"):
        recall_widget(seq_len=32, n_pairs=8)
    with pytest.raises(ValueError, match="train_steps"):
        recall_widget(train_steps=0)


def test_plot_takes_another_stored_record(stored: dict) -> None:
    other = copy.deepcopy(stored)
    other["rows"] = [r for r in other["rows"] if r["seq_len"] == 128]
    other["device"], other["date"] = "NVIDIA H200", "2030-01-02T03:04:05Z"
    assert stored_settings(other) == [(128, 8)]
    fig = plot_recall_frontier(seq_len=128, stored=other)
    assert "precomputed on NVIDIA H200, 2030-01-02" in fig._supxlabel.get_text()
    with pytest.raises(ValueError, match="seq_len, n_pairs"):
        plot_recall_frontier(seq_len=64, stored=other)


def test_widget_builds_with_a_control_per_knob(widget: RecallExplorer, stored: dict) -> None:
    assert isinstance(widget, ipywidgets.VBox)
    assert widget.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert isinstance(widget.figure, Figure) and widget.redraws >= 1
    assert list(widget.family_dropdown.options) == list(MODEL_FAMILIES)
    assert [v for _, v in widget.setting_dropdown.options] == stored_settings(stored) == [(64, 8), (128, 8)]
    assert list(widget.width_dropdown.options) == [32, 64, 128]
    assert (widget.feature_dim_slider.min, widget.feature_dim_slider.max) == (1, 16)
    assert (widget.window_slider.min, widget.window_slider.max) == (2, 64)
    assert widget.train_button.description == "train live"
    assert widget.last_live is None
    # without train_steps a live run takes runtime.pick's value: the tiny one under the tests
    sizes = _train_sizes(None, stored["config"])
    assert sizes["steps"] == 3 and sizes["n_train"] == 3 * sizes["batch_size"]


def test_every_control_redraws_and_knobs_follow_the_family(widget: RecallExplorer) -> None:
    for family in MODEL_FAMILIES:
        before, changed = widget.redraws, family != widget.family_dropdown.value
        widget.family_dropdown.value = family
        assert widget.redraws == before + changed, family
        uses_dim, uses_window = FAMILY_KNOBS[family]
        assert widget.feature_dim_slider.disabled is (not uses_dim), family
        assert widget.window_slider.disabled is (not uses_window), family
    widget.family_dropdown.value = "based"
    for control, value in ((widget.feature_dim_slider, 2), (widget.window_slider, 8), (widget.width_dropdown, 32)):
        before = widget.redraws
        control.value = value
        assert widget.redraws == before + 1, control.description
    # a shorter setting clamps the window slider and redraws once
    widget.setting_dropdown.value = (128, 8)
    widget.window_slider.value = 100
    before = widget.redraws
    widget.setting_dropdown.value = (64, 8)
    assert widget.redraws == before + 1
    assert widget.window_slider.max == 64 and widget.window_slider.value == 64
    assert "L = 64" in widget.figure.axes[0].get_title()


def test_train_live_adds_a_star_and_redraws(widget: RecallExplorer) -> None:
    widget.family_dropdown.value = "linear_taylor"
    widget.feature_dim_slider.value = 2
    widget.width_dropdown.value = 32
    widget.setting_dropdown.value = (64, 8)
    before = widget.redraws
    result = widget.train_live()
    assert widget.last_live is result and widget.live_runs[-1] is result
    assert 0.0 <= result["accuracy"] <= 1.0 and result["steps"] == 2
    assert result["state_bytes"] == chosen_state_bytes("linear_taylor", feature_dim=2, window=2, d_model=32,
                                                       seq_len=64)
    assert widget.redraws == before + 1
    assert "live" in _gids(widget.figure)
    assert "recall" in widget.status.value and not widget.train_button.disabled
    # live points belong to their setting: another setting does not show them
    widget.setting_dropdown.value = (128, 8)
    assert "live" not in _gids(widget.figure)
    widget.setting_dropdown.value = (64, 8)
    assert "live" in _gids(widget.figure)


# ----------------------------------------------------------------------------------------------
# The MQAR study: the widget's default record
# ----------------------------------------------------------------------------------------------


def test_study_record_is_the_best_lr_of_every_stored_model(study: dict) -> None:
    from linattn_edu.experiments.mqar_study import best_rows

    rec = study_record(study)
    best = best_rows(study["rows"])
    assert len(rec["rows"]) == len(best) > 0
    assert rec["device"] == study["device"] and rec["command"] == study["command"]
    cfg = stored_config(rec)
    assert cfg["stack"] == "zoology" and cfg["n_heads"] == study["config"]["n_heads"] and cfg["n_layers"] == 2
    by_key = {(r["seq_len"], r["n_pairs"], r["family"], r["point"]): r for r in best}
    for row in rec["rows"]:
        src = by_key[(row["seq_len"], row["n_pairs"], row["study_family"], row["point"])]
        assert row["family"] == STUDY_FAMILY_NAMES.get(src["family"], src["family"])
        assert (row["accuracy"], row["lr"], row["state_bytes"]) == (src["accuracy"] or 0.0, src["lr"],
                                                                     src["state_bytes"])
        # the best lr is the best of the stored lrs of that model
        key = (src["seq_len"], src["n_pairs"], src["family"], src["point"])
        tried = [r["accuracy"] or 0.0 for r in study["rows"]
                 if (r["seq_len"], r["n_pairs"], r["family"], r["point"]) == key]
        assert row["accuracy"] == max(tried)
    assert study_record(None)["rows"] == rec["rows"]         # None: the packaged study (the fixture)


def test_widget_rebuilds_every_study_model_and_its_state(study: dict) -> None:
    """Each study row of a widget family is found by the widget's knobs, with the same options and state bytes."""
    rec = study_record(study)
    cfg = stored_config(rec)
    n = 0
    for row in rec["rows"]:
        if row["family"] not in MODEL_FAMILIES:
            assert row["family"] in ("hawk", "griffin", "linearized")
            continue
        knobs = _row_knobs(row)
        var = chosen_variant(row["family"], **knobs, seq_len=row["seq_len"], stack="zoology")
        assert {"kind": var["kind"], **var["options"]} == row["options"], row["label"]
        assert chosen_state_bytes(row["family"], **knobs, d_model=row["d_model"], seq_len=row["seq_len"],
                                  n_heads=cfg["n_heads"], stack="zoology") == row["state_bytes"], row["label"]
        assert find_stored_row(rec, row["family"], **knobs, d_model=row["d_model"], seq_len=row["seq_len"],
                               n_pairs=row["n_pairs"]) is row
        n += 1
    assert n >= 5
    # the two stacks differ: the conv-prefixed build of the same knobs has another state
    row = next(r for r in rec["rows"] if r["family"] == "linear_taylor")
    assert chosen_state_bytes("linear_taylor", **_row_knobs(row), d_model=row["d_model"], seq_len=row["seq_len"],
                              n_heads=1) != row["state_bytes"]


def test_default_record_plot_and_widget_show_the_study(study: dict) -> None:
    rec = default_record()
    assert rec["rows"] == study_record(study)["rows"]
    L, P = study["config"]["settings"][0]
    fig = plot_recall_frontier("linear_taylor", feature_dim=8, seq_len=L)      # n_pairs: the stored one at L
    title = fig.axes[0].get_title()
    assert f"L = {L}, {P} key-value pairs" in title and "in the stored run" in title and "best lr" in title
    assert "zoology stack" in fig._supxlabel.get_text()
    assert f"precomputed on {study['device']}" in fig._supxlabel.get_text()
    w = recall_widget(dpi=30, train_steps=2)
    assert [v for _, v in w.setting_dropdown.options] == stored_settings(rec)
    assert w.setting_dropdown.value == (L, P)
    w.family_dropdown.value = "linear_elu"
    w.feature_dim_slider.value = 2
    w.width_dropdown.value = 32
    result = w.train_live()
    assert result["steps"] == 2 and result["lr"] == live_lr(rec, "linear_elu", L, P)
    assert result["lr"] in study["config"]["lrs"]
    assert result["state_bytes"] == chosen_state_bytes("linear_elu", feature_dim=2, window=2, d_model=32, seq_len=L,
                                                       n_heads=study["config"]["n_heads"], stack="zoology")
    assert "live" in _gids(w.figure)


def test_live_lr_is_the_family_s_most_frequent_best_lr(stored: dict) -> None:
    rows = [{"family": "based", "seq_len": 8, "n_pairs": 2, "lr": lr} for lr in (1e-2, 3e-3, 1e-2, 3e-3, 1e-3)]
    rec = {"rows": rows, "config": {"lrs": [1e-3, 3e-3, 1e-2]}}
    assert live_lr(rec, "based", 8, 2) == 3e-3          # a tie: the smaller one
    assert live_lr(rec, "attention", 8, 2) == 3e-3      # no stored point: the middle lr
    assert live_lr(stored, "based", 64, 8) == stored["config"]["lr"]   # the sweep's one lr


def test_static_widget_payload_from_the_study_counts_the_study_s_state(study: dict) -> None:
    from linattn_edu.widgets import static_recall_widget
    from linattn_edu.widgets.static import recall_key

    rec = study_record(study)
    L, P = study["config"]["settings"][0]
    payload = static_recall_widget("linear_taylor", feature_dim=8, window=16, seq_len=L, n_pairs=P, stored=rec).payload
    matched = 0
    for entry in payload["chosen"].values():
        if entry["row"] >= 0:
            assert entry["state_bytes"] == payload["rows"][entry["row"]]["state_bytes"]
            matched += 1
    assert matched >= 3
    # the window slider offers the study's windows (w = L/8 + 1, ...), so every stored point of a
    # family the widget builds can be ringed, at every setting
    from linattn_edu.experiments.mqar_sweep import MODEL_FAMILIES

    reached = {e["row"] for e in payload["chosen"].values()} - {-1}
    assert reached == {k for k, r in enumerate(payload["rows"]) if r["family"] in MODEL_FAMILIES}
    assert {17, 33} <= set(payload["windows"])
    entry = payload["chosen"][recall_key("linear_taylor", 8, 16, 64, L, P)]
    row = payload["rows"][entry["row"]]
    assert row["family"] == "linear_taylor" and row["label"].startswith("taylor d=8")


def test_study_record_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="study"):
        study_record({"rows": []})
    with pytest.raises(ValueError, match="study"):
        study_record([1, 2])
