"""Chapter 8's comparison of every mechanism: the three experiments, the table, the verdicts, the plot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from linattn_edu.experiments import compare as C  # noqa: E402
from linattn_edu.experiments.mqar_sweep import COMPARISON_FAMILIES, model_variants  # noqa: E402
from linattn_edu.models import build_model, model_state_bytes  # noqa: E402

ALL = tuple(C.MECHANISMS)


@pytest.fixture(scope="module")
def fast_result():
    return C.run_comparison(**C.comparison_config("fast"), device="cpu", progress=False)


def test_presets_and_config_copy():
    assert set(C.COMPARISON_PRESETS) == {"fast", "mini", "cpu", "gpu"}
    cfg = C.comparison_config()  # the tests run in fast mode
    assert cfg == C.COMPARISON_PRESETS["fast"] == C.live_config()
    cfg["lm"]["steps"] = 10**6
    assert C.COMPARISON_PRESETS["fast"]["lm"]["steps"] != 10**6, "comparison_config must return a copy"
    for preset in C.COMPARISON_PRESETS.values():
        assert preset["lm"]["eval_factor"] == 4, "the issue asks for perplexity at 4x the training length"
    with pytest.raises(ValueError, match="preset"):
        C.comparison_config("tpu")


def test_every_mechanism_of_the_book_is_compared():
    assert ALL == ("softmax", "sliding window", "ALiBi", "linear (elu)", "linear (Taylor)", "Based", "Hawk",
                   "Griffin", "linearized")
    assert {m["mqar"] for m in C.MECHANISMS.values()} >= set(COMPARISON_FAMILIES)


def test_mechanism_models_fill_the_shared_budgets():
    specs = C.mechanism_models(window=7, feature_dim=3)
    assert specs["sliding window"] == {"kind": "transformer", "options": {"pos": "rope", "window": 7}}
    assert specs["Griffin"]["options"] == {"window": 7}
    assert specs["Based"]["options"] == {"feature_dim": 3, "window": 7}
    assert specs["linear (Taylor)"]["options"] == {"feature_map": "taylor", "feature_dim": 3}
    assert specs["ALiBi"]["options"] == {"pos": "alibi"}
    for name, spec in specs.items():  # every spec builds
        build_model(spec["kind"], vocab_size=16, d_model=16, n_layers=2, n_heads=2, **spec["options"])
    with pytest.raises(ValueError, match="mechanisms"):
        C.mechanism_models(["mamba"], window=4, feature_dim=2)
    with pytest.raises(ValueError, match="window"):
        C.mechanism_models(window=0, feature_dim=2)


def test_mqar_families_for_alibi_and_linearized():
    variants = {v["family"]: v for v in model_variants(32, families=COMPARISON_FAMILIES)}
    alibi = variants["alibi"]
    assert alibi["options"]["window_pos"] == "alibi" and alibi["options"]["window"] == 32
    assert variants["linearized"]["kind"] == "linearized"
    model = build_model(alibi["kind"], vocab_size=40, d_model=16, n_layers=2, n_heads=2, **alibi["options"])
    # full attention: its KV cache grows with the sequence
    assert model_state_bytes(model, seq_len=32) > model_state_bytes(model, seq_len=16)


def test_run_comparison_covers_every_mechanism(fast_result):
    for part in ("mqar", "lm", "speed"):
        assert {r["mechanism"] for r in fast_result[part]["rows"]} == set(ALL), part
    lens = C.COMPARISON_PRESETS["fast"]["speed"]["context_lens"]
    assert len(fast_result["speed"]["rows"]) == len(ALL) * len(lens)
    for r in fast_result["lm"]["rows"]:
        assert r["ppl_train_len"] > 1 and r["ppl_long"] > 1
        assert r["long_over_train"] == pytest.approx(r["ppl_long"] / r["ppl_train_len"])
    for r in fast_result["speed"]["rows"]:
        assert r["prefill_ms"] > 0 and r["decode_ms_per_token"] > 0
        assert r["state_bytes_per_token"] == pytest.approx(r["state_bytes"] / r["context_len"])
    for r in fast_result["mqar"]["rows"]:
        assert 0 <= r["accuracy"] <= 1 and r["state_bytes"] > 0
    assert fast_result["lm"]["config"]["eval_lens"] == [16, 64]


def test_table_state_growth_tells_caches_from_fixed_states(fast_result):
    table = {r["mechanism"]: r for r in C.comparison_table(fast_result)}
    assert list(table) == list(ALL)
    lens = C.COMPARISON_PRESETS["fast"]["speed"]["context_lens"]
    growth = lens[-1] / lens[0]
    # a KV cache grows with T; a window (8 tokens, both contexts >= 8) and a recurrent state do not
    for name in ("softmax", "ALiBi"):
        assert table[name]["state_growth"] == pytest.approx(growth)
    for name in ("sliding window", "linear (elu)", "linear (Taylor)", "Based", "Hawk", "Griffin"):
        assert table[name]["state_growth"] == pytest.approx(1.0), name
    for row in table.values():
        assert all(v is not None for v in row.values()), row


def test_recommend_reads_the_numbers():
    def row(name, **kw):
        base = dict(mechanism=name, chapter=1, mqar_accuracy=0.5, mqar_state_bytes=1000, ppl_train_len=5.0,
                    ppl_long=6.0, long_over_train=1.2, prefill_ms_short=1.0, prefill_ms_long=10.0,
                    decode_ms_per_token_short=1.0, decode_ms_per_token_long=2.0, state_bytes_long=5000,
                    state_bytes_per_token_long=1.0, state_growth=1.0, n_params=1)
        base.update(kw)
        return base

    table = [row("softmax", mqar_accuracy=0.99, mqar_state_bytes=60000, decode_ms_per_token_long=9.0),
             row("Based", mqar_accuracy=0.95, mqar_state_bytes=9000, ppl_long=4.0),
             row("Hawk", mqar_accuracy=0.1, mqar_state_bytes=500, state_bytes_long=100, prefill_ms_long=3.0)]
    verdicts = {v["job"]: v["mechanism"] for v in C.recommend(table)}
    assert verdicts["the highest recall"] == "softmax"
    assert verdicts["recall on a memory budget"] == "Based"
    assert verdicts["inputs longer than training"] == "Based"
    assert verdicts["many concurrent sequences"] == "Hawk"
    assert verdicts["long prompts"] == "Hawk"
    # nobody reaches the threshold: the best accuracy per byte
    verdicts = {v["job"]: v["mechanism"] for v in C.recommend(table, recall_threshold=0.999)}
    assert verdicts["recall on a memory budget"] == "Hawk"
    # close numbers are reported as a tie, best first
    table[1]["mqar_accuracy"] = 0.985
    table[2]["decode_ms_per_token_long"] = 2.1
    verdicts = {v["job"]: v for v in C.recommend(table)}
    assert verdicts["the highest recall"]["mechanism"] == "softmax ≈ Based"
    assert "0.990" in verdicts["the highest recall"]["evidence"] and "0.985" in verdicts["the highest recall"]["evidence"]
    assert verdicts["long generations"]["mechanism"] == "Based ≈ Hawk"
    with pytest.raises(ValueError, match="table"):
        C.recommend({"mechanism": "x"})


def test_plot_has_four_labelled_panels(fast_result):
    axes = C.plot_comparison(fast_result)
    assert len(axes) == 4
    for ax in axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert len(axes[0].lines) == len(ALL)  # one MQAR point per mechanism
    assert len(axes[2].lines) == len(ALL) and len(axes[3].lines) == len(ALL)
    plt.close("all")
    with pytest.raises(ValueError, match="4 matplotlib Axes"):
        C.plot_comparison(fast_result, axes=[None, None])


@pytest.mark.parametrize(
    "fn,kwargs,match",
    [
        (C.run_comparison_lm, dict(train_len=1), "train_len"),
        (C.run_comparison_lm, dict(eval_factor=1), "eval_factor"),
        (C.run_comparison_lm, dict(lr=-1.0), "lr"),
        (C.run_comparison_speed, dict(context_lens=[]), "context_lens"),
        (C.run_comparison_speed, dict(prefill_chunk=0), "prefill_chunk"),
        (C.run_comparison_mqar, dict(elu_dim=0), "elu_dim"),
    ],
)
def test_bad_arguments_are_named(fn, kwargs, match):
    part = {C.run_comparison_lm: "lm", C.run_comparison_speed: "speed", C.run_comparison_mqar: "mqar"}[fn]
    args = {**C.COMPARISON_PRESETS["fast"][part], **kwargs}
    with pytest.raises(ValueError, match=match):
        fn(**args, device="cpu", progress=False)


def test_bad_results_and_mechanisms_are_rejected():
    with pytest.raises(ValueError, match="run_comparison result"):
        C.comparison_table({"lm": {}})
    with pytest.raises(ValueError, match="mechanisms"):
        C.run_comparison(**C.comparison_config("fast"), mechanisms=["softmax", "softmax"], progress=False)
    with pytest.raises(ValueError, match="speed must be a dict"):
        C.run_comparison({}, {}, None)


def test_stored_experiments_are_registered_per_mechanism():
    from linattn_edu.experiments import stored

    for name, part, fn in (("compare_lm", "lm", C.run_comparison_lm), ("compare_speed", "speed",
                                                                        C.run_comparison_speed)):
        spec = stored.experiment(name)
        assert spec.run is fn and spec.unit_arg == "mechanisms" and spec.chapter == "08_putting_it_together"
        for preset in ("cpu", "gpu", "fast"):
            cfg = spec.config(preset)
            assert cfg == {"mechanisms": list(ALL), **C.COMPARISON_PRESETS[preset][part]}
    # the reference is at least the size the chapter used to train live (400 steps at 64 tokens)
    assert C.COMPARISON_PRESETS["cpu"]["lm"]["steps"] >= 400
    mini, ref = C.COMPARISON_PRESETS["mini"], C.COMPARISON_PRESETS["cpu"]
    assert mini["lm"]["steps"] < ref["lm"]["steps"] and max(mini["speed"]["context_lens"]) < max(
        ref["speed"]["context_lens"])


def test_one_mechanism_alone_gives_its_row_of_the_whole_run():
    """A stored unit (one mechanism) must equal that mechanism's row of a run of several."""
    cfg = C.compare_lm_config("fast")
    cfg.pop("mechanisms")
    both = C.run_comparison_lm(["softmax", "Hawk"], **cfg, device="cpu", progress=False)
    alone = C.run_comparison_lm(["Hawk"], **cfg, device="cpu", progress=False)
    assert both["rows"][1]["ppl_long"] == pytest.approx(alone["rows"][0]["ppl_long"], rel=1e-6)


def _fake_study(tmp_path, *, drop=()):
    """A study file of the fast preset with made-up accuracies (no training): accuracy grows with
    state; every job of the first setting is done, the second setting lacks the families in ``drop``."""
    from linattn_edu import bench
    from linattn_edu.experiments.mqar_study import study_config, study_jobs

    cfg = study_config("fast")
    cfg["lrs"] = [1e-3, 3e-3]
    rows = []
    for i, job in enumerate(study_jobs(cfg)):
        if job["seq_len"] == cfg["settings"][1][0] and job["family"] in drop:
            continue
        acc = None if job["family"] == "hawk" else round(0.1 + 0.05 * (i % 7) + (job["lr"] > 2e-3) * 0.1, 4)
        rows.append({k: v for k, v in job.items() if k != "_spec"} | {
            "state_bytes": 1000 + 10 * i, "params": 5000, "accuracy": acc, "diverged": acc is None})
    bench.save_results("mqar_study_fast", rows, command="python scripts/mqar_study.py --preset fast",
                       config=cfg, device="cpu", directory=tmp_path)
    return cfg, rows


def test_mqar_column_is_read_from_the_study(tmp_path):
    cfg, rows = _fake_study(tmp_path, drop=("griffin",))
    study = C.load_study("fast", directory=tmp_path)
    assert study["stored"]["units_done"] == len(rows) < study["stored"]["units_total"]
    cov = {(c["seq_len"], c["n_pairs"]): c for c in C.study_coverage(study)}
    first, second = (tuple(s) for s in cfg["settings"])
    assert cov[first]["complete"] and not cov[second]["complete"]
    assert cov[second]["families"]["griffin"] == "0/2"
    mq = C.mqar_from_study(study)  # the complete setting with the most families off the plateau (the only one)
    assert mq["config"]["settings"] == [list(first)] and mq["config"]["source"] == "mqar_study"
    assert mq["config"]["mechanisms_missing"] == ["ALiBi"]
    assert {r["mechanism"] for r in mq["rows"]} == set(ALL) - {"ALiBi"}
    for r in mq["rows"]:  # best lr of each (family, point); hawk diverged at every lr
        group = [x for x in rows if (x["seq_len"], x["family"], x["point"]) == (first[0], r["family"], r["point"])]
        accs = [x["accuracy"] for x in group if x["accuracy"] is not None]
        assert r["accuracy"] == (max(accs) if accs else None)
        assert C.MECHANISMS[r["mechanism"]]["study"] == r["family"]
    mq2 = C.mqar_from_study(study, setting=second)  # partial: griffin missing too
    assert set(mq2["config"]["mechanisms_missing"]) == {"ALiBi", "Griffin"}
    assert "PARTIAL" in C.describe_study(mq2) and f"L={second[0]}" in C.describe_study(mq2)
    with pytest.raises(ValueError, match="setting"):
        C.mqar_from_study(study, setting=(999, 1))
    with pytest.raises(ValueError, match="study"):
        C.mqar_from_study({"rows": 3})
    assert C.load_study("fast", directory=tmp_path / "none") is None


def test_mqar_column_uses_the_complete_setting_that_separates_the_mechanisms(tmp_path):
    cfg, rows = _fake_study(tmp_path, drop=())
    first, second = (tuple(s) for s in cfg["settings"])
    plateau = {first[1]: 2 / first[1], second[1]: 2 / second[1]}
    for r in rows:  # at the larger setting every family but attention is stuck on the chance plateau
        if r["seq_len"] == second[0] and r["family"] != "attention":
            r["accuracy"] = 0.5 * plateau[second[1]]
        elif r["accuracy"] is not None:
            r["accuracy"] = 0.9
    from linattn_edu import bench

    bench.save_results("mqar_study_fast", rows, command="c", config=cfg, device="cpu", directory=tmp_path)
    study = C.load_study("fast", directory=tmp_path)
    mq = C.mqar_from_study(study)
    assert mq["config"]["settings"] == [list(first)]
    assert mq["config"]["off_plateau"][f"L={second[0]}, pairs={second[1]}"] == 1
    assert "families off the chance plateau per setting" in C.describe_study(mq)
    for r in rows:  # now both separate equally: the larger setting wins the tie
        if r["seq_len"] == second[0] and r["accuracy"] is not None:
            r["accuracy"] = 0.9
    bench.save_results("mqar_study_fast", rows, command="c", config=cfg, device="cpu", directory=tmp_path)
    assert C.mqar_from_study(C.load_study("fast", directory=tmp_path))["config"]["settings"] == [list(second)]


def test_script_stores_runs_that_load_back(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from linattn_edu.experiments import stored

    _fake_study(tmp_path)
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "scripts" / "compare_all.py"), "--preset", "fast",
                           "--out-dir", str(tmp_path), "--no-progress"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "LINATTN_FAST": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| softmax |" in proc.stdout and "not in the MQAR study" in proc.stdout
    result = C.stored_comparison("fast", directory=tmp_path)
    for part in ("lm", "speed"):
        assert result["stored"][part]["complete"] and "compare_all.py" in result["stored"][part]["command"]
        assert {r["mechanism"] for r in result[part]["rows"]} == set(ALL)
    # the same files as scripts/run_experiment.py writes: one schema, one loader
    assert stored.load_stored("compare_lm", "fast", directory=tmp_path)["rows"] == result["lm"]["rows"]
    table = {r["mechanism"]: r for r in C.comparison_table(result)}
    assert list(table) == list(ALL)
    assert table["ALiBi"]["mqar_model"] == "not in the MQAR study" and table["ALiBi"]["mqar_accuracy"] is None
    assert table["ALiBi"]["ppl_long"] is not None and table["softmax"]["mqar_accuracy"] is not None
    assert len(C.comparison_provenance(result)) == 3
    C.plot_comparison(result)
    plt.close("all")
    assert C.stored_comparison("fast", directory=tmp_path / "none") is None


def test_missing_parts_give_empty_panels_and_na():
    part = {"rows": [], "config": {}}
    result = {"mqar": None, "lm": None, "speed": None}
    assert C.comparison_table(result) == []
    axes = C.plot_comparison(result)
    assert all(ax.get_title() for ax in axes)
    plt.close("all")
    with pytest.raises(ValueError, match="rows"):
        C.comparison_table({"mqar": {"config": {}}, "lm": part, "speed": None})


def test_markdown_table(fast_result):
    md = C.comparison_markdown(C.comparison_table(fast_result))
    lines = md.splitlines()
    assert len(lines) == 2 + len(ALL)
    assert lines[0].startswith("| mechanism |") and all(line.count("|") == lines[0].count("|") for line in lines)
    assert "n/a" in C.comparison_markdown([{"mechanism": "softmax", "chapter": 1}])
    with pytest.raises(ValueError, match="table"):
        C.comparison_markdown("softmax")


def test_panel_a_labels_of_nearby_points_are_stacked_apart():
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.set_xscale("log")
    ax.set_xlim(1e3, 1e5)
    ax.set_ylim(0, 1)
    points = [(17_408, 0.594), (17_920, 0.584), (17_152, 0.540), (1_024, 0.011), (66_560, 1.0)]
    dy = C._label_offsets(ax, points, min_gap=11.0)
    to_pt = 72.0 / fig.dpi
    label_y = [ax.transData.transform(p)[1] * to_pt + d for p, d in zip(points, dy)]
    near = label_y[:3]                                   # three anchors within a few points of each other
    assert min(abs(a - b) for i, a in enumerate(near) for b in near[i + 1:]) >= 11.0 - 1e-9
    assert dy[3] == 0.0 and dy[4] == 0.0                 # labels far from the others stay where they are
    assert all(d >= 0 for d in dy)                       # stacked upward, never onto the point below
    plt.close(fig)
