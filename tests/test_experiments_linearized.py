"""The linearized-LLM chapter's experiments: the augmentation ablation and linearizing a Transformer."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from linattn_edu.models import build_model  # noqa: E402

from linattn_edu.experiments import (  # noqa: E402
    DEFAULT_LINEARIZED_VARIANTS,
    LINEARIZATION_PRESETS,
    LINEARIZATION_STAGES,
    LINEARIZED_PERPLEXITY_PRESETS,
    LINEARIZED_VARIANTS,
    linearization_config,
    linearized_perplexity_config,
    plot_linearization,
    plot_linearized_perplexity,
    run_linearization,
    run_linearized_perplexity,
)

PPL_ROW_KEYS = {"variant", "kind", "options", "seq_len", "perplexity", "n_params", "train_seconds", "step_time_s",
                "final_loss", "curve_steps", "curve_loss"}
STAGE_ROW_KEYS = {"stage", "kind", "perplexity", "steps", "pretrain_steps", "finetune_steps", "n_params",
                  "train_seconds", "final_loss", "curve_steps", "curve_loss"}


@pytest.fixture(scope="module")
def fast_ppl():
    return run_linearized_perplexity(**linearized_perplexity_config(), device="cpu", progress=False)


@pytest.fixture(scope="module")
def fast_lin():
    return run_linearization(**linearization_config(), device="cpu", progress=False)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------


def test_configs_are_the_fast_presets_and_copies():
    cfg = linearized_perplexity_config()
    assert cfg == LINEARIZED_PERPLEXITY_PRESETS["fast"]
    cfg["steps"] = 999
    assert LINEARIZED_PERPLEXITY_PRESETS["fast"]["steps"] != 999
    gpu = linearization_config("gpu")
    gpu["model_options"]["group_size"] = 1
    assert LINEARIZATION_PRESETS["gpu"]["model_options"]["group_size"] == 64
    for presets in (LINEARIZATION_PRESETS, LINEARIZED_PERPLEXITY_PRESETS):  # the official sizes on a GPU
        assert presets["gpu"]["model_options"] == {"group_size": 64, "conv_kernel_size": 32}  # 63 taps, 31 masked
    assert linearization_config() == LINEARIZATION_PRESETS["fast"]
    for presets in (LINEARIZED_PERPLEXITY_PRESETS, LINEARIZATION_PRESETS):
        assert set(presets) >= {"fast", "cpu", "gpu"}
    for fn in (linearized_perplexity_config, linearization_config):
        with pytest.raises(ValueError, match="preset"):
            fn("huge")


# ----------------------------------------------------------------------------------------------
# The ablation from scratch
# ----------------------------------------------------------------------------------------------


def test_perplexity_rows(fast_ppl):
    rows = fast_ppl["rows"]
    assert [r["variant"] for r in rows] == list(DEFAULT_LINEARIZED_VARIANTS)
    assert set(DEFAULT_LINEARIZED_VARIANTS) < set(LINEARIZED_VARIANTS) and len(DEFAULT_LINEARIZED_VARIANTS) == 5
    cfg = linearized_perplexity_config()
    for r in rows:
        assert set(r) == PPL_ROW_KEYS
        assert math.isfinite(r["perplexity"]) and 1.0 < r["perplexity"] < 1000
        assert r["seq_len"] == cfg["seq_len"] and r["n_params"] > 0 and r["train_seconds"] > 0
        assert len(r["curve_steps"]) == len(r["curve_loss"]) > 0 and r["curve_steps"][-1] == cfg["steps"]
        assert all(math.isfinite(x) for x in r["curve_loss"])
    by = {r["variant"]: r for r in rows}
    assert by["softmax (RoPE)"]["kind"] == "transformer"
    assert by["grouped + DWConv"]["options"] == {"attention": "grouped", "conv": True, "alpha_init": 0.0}
    # the conv adds H·K weights per layer (one filter per head, official), grouping one α per layer
    k = build_model("linearized", vocab_size=8, d_model=8, n_layers=1, n_heads=2).config.conv_kernel_size
    assert by["linear + DWConv"]["n_params"] == by["linear"]["n_params"] + cfg["n_layers"] * cfg["n_heads"] * k
    assert by["grouped"]["n_params"] == by["linear"]["n_params"] + cfg["n_layers"]
    assert fast_ppl["config"]["variants"] == list(DEFAULT_LINEARIZED_VARIANTS)
    assert isinstance(fast_ppl["device"], str)
    json.dumps(fast_ppl)  # storable as is


def test_perplexity_subset_and_custom_variants():
    cfg = linearized_perplexity_config()
    cfg.update(steps=2, model_options={"group_size": 8})
    res = run_linearized_perplexity(["grouped"], **cfg, device="cpu", progress=False)
    assert [r["variant"] for r in res["rows"]] == ["grouped"]
    assert res["rows"][0]["options"]["group_size"] == 8
    res = run_linearized_perplexity({"g4": {"attention": "grouped", "group_size": 4, "conv": False}}, **cfg,
                                    device="cpu", progress=False)
    (row,) = res["rows"]
    assert row["variant"] == "g4" and row["kind"] == "linearized" and row["options"]["group_size"] == 4
    assert math.isfinite(row["perplexity"])


def test_perplexity_leaky_variant_is_optional_and_centered():
    leak = "linear + centered conv (leaks)"
    assert leak in LINEARIZED_VARIANTS and leak not in DEFAULT_LINEARIZED_VARIANTS
    cfg = linearized_perplexity_config()
    cfg.update(steps=2)
    res = run_linearized_perplexity(["linear + DWConv", leak], **cfg, device="cpu", progress=False)
    causal, leaky = res["rows"]
    assert leaky["variant"] == leak and leaky["options"]["conv_causal"] is False
    assert leaky["options"]["conv_kernel_size"] % 2 == 1
    assert math.isfinite(leaky["perplexity"]) and leaky["n_params"] > causal["n_params"]  # 5 taps, not 4


@pytest.mark.parametrize(
    "change, name",
    [
        ({"variants": ["softmax", "quadratic"]}, "variants"),
        ({"variants": []}, "variants"),
        ({"variants": ["linear", "linear"]}, "variants"),
        ({"variants": {"x": {"attention": "cubic"}}}, "attention"),
        ({"seq_len": 1}, "seq_len"),
        ({"steps": 0}, "steps"),
        ({"n_heads": 3}, "d_model"),
        ({"lr": -1.0}, "lr"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"model_options": {"group_size": 0}}, "group_size"),
        ({"model_options": 3}, "model_options"),
        ({"eval_max_windows": 0}, "eval_max_windows"),
    ],
)
def test_perplexity_bad_args(change, name):
    cfg = linearized_perplexity_config()
    cfg.update(steps=1)
    cfg.update(change)
    with pytest.raises(ValueError, match=name):
        run_linearized_perplexity(**cfg, device="cpu", progress=False)


def test_plot_perplexity(fast_ppl):
    ax_bars, ax_curves = plot_linearized_perplexity(fast_ppl)
    assert "perplexity" in ax_bars.get_title() and ax_bars.get_ylabel()
    assert [t.get_text() for t in ax_bars.get_xticklabels()] == list(DEFAULT_LINEARIZED_VARIANTS)
    assert len(ax_bars.patches) == len(DEFAULT_LINEARIZED_VARIANTS)
    assert ax_curves.get_title() and ax_curves.get_xlabel() and ax_curves.get_ylabel()
    assert [line.get_label() for line in ax_curves.get_lines()] == list(DEFAULT_LINEARIZED_VARIANTS)
    _, ax = plt.subplots()
    (only,) = plot_linearized_perplexity(fast_ppl, ax=ax)
    assert only is ax and len(ax.patches) == len(DEFAULT_LINEARIZED_VARIANTS)
    with pytest.raises(ValueError, match="rows"):
        plot_linearized_perplexity({"rows": []})
    with pytest.raises(ValueError, match="ax"):
        plot_linearized_perplexity(fast_ppl, ax=(ax, ax, ax))


# ----------------------------------------------------------------------------------------------
# Linearizing a trained Transformer
# ----------------------------------------------------------------------------------------------


def test_linearization_rows(fast_lin):
    rows = fast_lin["rows"]
    cfg = linearization_config()
    pre, fine = cfg["pretrain_steps"], cfg["finetune_steps"]
    assert [r["stage"] for r in rows] == list(LINEARIZATION_STAGES)
    for r in rows:
        assert set(r) == STAGE_ROW_KEYS
        assert math.isfinite(r["perplexity"]) and r["perplexity"] > 1.0
    transformer, converted, tuned, scratch = rows
    assert transformer["kind"] == "transformer" and transformer["steps"] == pre
    assert converted["kind"] == "linearized" and converted["steps"] == pre and converted["curve_steps"] == []
    assert converted["final_loss"] is None and converted["train_seconds"] == 0.0
    assert tuned["steps"] == scratch["steps"] == pre + fine
    assert (tuned["pretrain_steps"], tuned["finetune_steps"]) == (pre, fine)
    assert tuned["curve_steps"][0] > pre and tuned["curve_steps"][-1] == pre + fine
    assert scratch["curve_steps"][-1] == pre + fine
    assert converted["n_params"] == tuned["n_params"] == scratch["n_params"]
    built = fast_lin["config"]["linearized_options"]
    assert built["conv_init"] == "zero" and built["alpha_init"] == 0.0
    assert (built["attention"], built["conv"]) == ("grouped", True)
    json.dumps(fast_lin)


def test_linearization_linear_without_conv():
    cfg = linearization_config()
    cfg.update(pretrain_steps=2, finetune_steps=1)
    res = run_linearization(**cfg, attention="linear", conv=False, device="cpu", progress=False)
    assert [r["stage"] for r in res["rows"]] == list(LINEARIZATION_STAGES)
    assert all(math.isfinite(r["perplexity"]) for r in res["rows"])
    assert res["config"]["linearized_options"]["attention"] == "linear"


@pytest.mark.parametrize(
    "change, name",
    [
        ({"attention": "softmax"}, "attention"),
        ({"conv": "yes"}, "conv"),
        ({"pretrain_steps": 0}, "pretrain_steps"),
        ({"finetune_steps": -1}, "finetune_steps"),
        ({"finetune_lr": 0.0}, "finetune_lr"),
        ({"lr": float("nan")}, "lr"),
        ({"model_options": {"pos": "none"}}, "pos"),
        ({"model_options": {"conv_init": "ones"}}, "conv_init"),
        ({"model_options": {"colour": 1}}, "colour"),
        ({"d_model": 30}, "d_model"),
        ({"seed": -1}, "seed"),
    ],
)
def test_linearization_bad_args(change, name):
    cfg = linearization_config()
    cfg.update(change)
    with pytest.raises(ValueError, match=name):
        run_linearization(**cfg, device="cpu", progress=False)


def test_plot_linearization(fast_lin):
    ax_bars, ax_curves = plot_linearization(fast_lin)
    assert "grouped" in ax_bars.get_title() and ax_bars.get_ylabel()
    ticks = [t.get_text() for t in ax_bars.get_xticklabels()]
    assert len(ticks) == len(LINEARIZATION_STAGES)
    assert all(t.startswith(stage) for t, stage in zip(ticks, LINEARIZATION_STAGES))
    assert ax_curves.get_title() and ax_curves.get_xlabel() and ax_curves.get_ylabel()
    # the converted model has no training curve of its own
    assert [line.get_label() for line in ax_curves.get_lines()] == [
        LINEARIZATION_STAGES[0], LINEARIZATION_STAGES[2], LINEARIZATION_STAGES[3]]
    with pytest.raises(ValueError, match="rows"):
        plot_linearization({"rows": [{"variant": "x", "perplexity": 1.0}]})


# ----------------------------------------------------------------------------------------------
# Reference runs (stored) and the chapter's live miniatures
# ----------------------------------------------------------------------------------------------


def test_stored_experiments_are_registered():
    from linattn_edu.experiments import stored

    ppl = stored.experiment("linearized_perplexity")
    assert ppl.chapter == "07_linearized_llms" and ppl.unit_arg == "variants"
    assert ppl.run is run_linearized_perplexity and ppl.config is linearized_perplexity_config
    assert tuple(ppl.default_units) == DEFAULT_LINEARIZED_VARIANTS
    lin = stored.experiment("linearization")
    assert lin.unit_arg is None and lin.run is run_linearization  # sequential stages: one unit
    assert stored.units_of(lin, linearization_config("cpu")) == [None]
    # the stored cpu run trains the five ablation variants and the leaky centered conv (the leak curves)
    units = stored.units_of(ppl, linearized_perplexity_config("cpu"))
    assert units == list(DEFAULT_LINEARIZED_VARIANTS) + ["linear + centered conv (leaks)"]
    for fn in (linearized_perplexity_config, linearization_config):
        for preset in ("cpu", "gpu"):
            json.dumps(fn(preset))  # stored with the results file, compared by the stored-run test


def test_mini_presets_are_miniatures_of_the_cpu_reference():
    for presets, steps in ((LINEARIZED_PERPLEXITY_PRESETS, ("steps",)),
                           (LINEARIZATION_PRESETS, ("pretrain_steps", "finetune_steps"))):
        mini, cpu = presets["mini"], presets["cpu"]
        for key in ("seq_len", "d_model", "n_layers", "batch_size") + steps:
            assert mini[key] <= cpu[key], key
        assert sum(mini[k] for k in steps) * 4 <= sum(cpu[k] for k in steps)
    assert linearized_perplexity_config("mini") == LINEARIZED_PERPLEXITY_PRESETS["mini"]
    assert linearization_config("mini") == LINEARIZATION_PRESETS["mini"]


def test_a_variant_gives_the_same_result_alone_or_with_others():
    """One stored unit per variant: each is seeded on its own, so training it alone (as
    scripts/run_experiment.py does) gives what one call with every variant gives, and merging the
    units gives the whole run's rows."""
    from linattn_edu.experiments import stored

    cfg = dict(linearized_perplexity_config(), steps=3)
    names = ["linear", "grouped + DWConv"]
    both = run_linearized_perplexity(names, **cfg, device="cpu", progress=False)
    alone = [run_linearized_perplexity([n], **cfg, device="cpu", progress=False) for n in names]
    merged = stored.merge_results(alone, config=both["config"])
    timing = {"train_seconds", "step_time_s"}
    assert len(both["rows"]) == len(merged["rows"]) == len(names)
    for whole, part in zip(both["rows"], merged["rows"]):
        assert {k: v for k, v in whole.items() if k not in timing} == {k: v for k, v in part.items() if k not in timing}
