"""The MQAR study: its grid, a resumable run, and the findings computed from rows."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import pytest

from linattn_edu import bench
from linattn_edu.experiments import mqar_study as ms
from linattn_edu.models import build_model, model_state_bytes


def test_every_family_has_three_points_whose_state_grows():
    for family in ms.STUDY_FAMILIES:
        pts = ms.study_points(family, 128, d_model=64)
        assert len(pts) == 3, family
        sizes = []
        for p in pts:
            model = build_model(p["kind"], vocab_size=256, d_model=p["d_model"], n_layers=2, n_heads=1, **p["options"])
            sizes.append(model_state_bytes(model, seq_len=128, bytes_per_element=4))
        assert sizes == sorted(sizes) and len(set(sizes)) == 3, (family, sizes)


def test_presets_meet_the_study_design():
    for preset in ("cpu", "gpu"):
        cfg = ms.study_config(preset)
        assert len({L for L, _ in cfg["settings"]}) >= 2 and cfg["vocab_size"] >= 1024
        assert len(cfg["lrs"]) >= 3 and cfg["points"] >= 3 and set(cfg["families"]) == set(ms.STUDY_FAMILIES)
        assert all(4 * pairs <= L for L, pairs in cfg["settings"])
    with pytest.raises(ValueError, match="preset"):
        ms.study_config("huge")
    with pytest.raises(ValueError, match="family"):
        ms.study_points("mamba", 64, d_model=32)


def test_run_is_resumable(tmp_path):
    cfg = dict(ms.study_config("fast"), families=["hawk", "based"], settings=[[32, 4]])
    store = bench.ResumableResults("s", command="pytest", config=cfg, key_fields=("seq_len", "n_pairs", "family", "point", "lr"),
                                   directory=tmp_path)
    rows = ms.run_mqar_study(cfg, store=store, device="cpu", progress=False)
    assert len(rows) == 2 and all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    assert all(r["state_bytes"] > 0 and len(r["loss_curve"]) > 0 for r in rows)
    again = bench.ResumableResults("s", command="pytest", config=cfg, key_fields=("seq_len", "n_pairs", "family", "point", "lr"),
                                   directory=tmp_path)
    calls = []
    ms.run_mqar_study(cfg, store=again, device="cpu", progress=False, on_row=calls.append)
    assert calls == []  # nothing left to train
    bench.validate_results(bench.load_results("s", directory=tmp_path), strict=True)


def _row(family, point, state, acc, lr=1e-3, L=64, pairs=16):
    return {"seq_len": L, "n_pairs": pairs, "family": family, "point": point, "lr": lr, "accuracy": acc,
            "state_bytes": state, "loss_curve": [1.0, 0.5]}


def test_findings_are_computed_from_rows():
    rows = [
        _row("attention", "d=32", 10_000, 0.90, lr=1e-3), _row("attention", "d=32", 10_000, 0.97, lr=3e-3),
        _row("attention", "d=64", 20_000, 0.99),
        _row("based", "f=4", 1_000, 0.30), _row("based", "f=8", 3_000, 0.60),
        _row("hawk", "w=32", 500, 0.04), _row("hawk", "w=64", 900, 0.05), _row("hawk", "w=64", 900, None, lr=1e-2),
    ]
    best = {(r["family"], r["point"]): r for r in ms.best_rows(rows)}
    assert best[("attention", "d=32")]["lr"] == 3e-3 and best[("hawk", "w=64")]["accuracy"] == 0.05
    found = ms.study_findings(rows)["L=64, pairs=16"]
    assert found["attention_ok"]
    assert found["families"]["based"]["grows_with_state"] and not found["families"]["based"]["plateau"]
    assert found["families"]["hawk"]["plateau"]  # 0.05 < 2 / 16
    # best lr at the top (attention d=32: 3e-3 of {1e-3, 3e-3}) or bottom (hawk w=64: 3e-3 of {3e-3, 1e-2})
    # of what was tried; one lr tried (based) is no sweep, so no edge
    assert found["families"]["attention"]["lr_at_edge"] == ["d=32"]
    assert found["families"]["hawk"]["lr_at_edge"] == ["w=64"]
    assert found["families"]["based"]["lr_at_edge"] == []
    assert found["frontier_families"] == ["attention", "based", "hawk"]
    assert [r["point"] for r in ms.pareto_frontier(ms.best_rows(rows))] == ["w=32", "w=64", "f=4", "f=8", "d=32", "d=64"]
    fig = ms.plot_study(rows)
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_title()
    assert ms.plot_lr_sweeps(rows, "hawk").axes[1].get_xlabel() == "peak learning rate"


def test_study_table_markdown_lists_best_lr_per_point():
    rows = [
        {"seq_len": 64, "n_pairs": 16, "family": "based", "point": "feature_dim=4", "lr": lr, "accuracy": acc,
         "state_bytes": 1000}
        for lr, acc in ((1e-3, 0.2), (3e-3, 0.7), (1e-2, None))
    ] + [{"seq_len": 64, "n_pairs": 16, "family": "attention", "point": "d_model=32", "lr": 1e-3, "accuracy": 1.0,
          "state_bytes": 5000}]
    table = ms.study_table_markdown(rows).splitlines()
    assert len(table) == 4 and table[2].startswith("| 64 | 16 | attention")
    assert "| based | feature_dim=4 | 1,000 | 0.700 | 3e-03 | 1e-03: 0.200, 3e-03: 0.700, 1e-02: div |" in table[3]


def test_reference_study_loads_or_retrains(tmp_path, monkeypatch):
    from linattn_edu.experiments import stored

    monkeypatch.delenv(stored.RETRAIN_ENV, raising=False)
    monkeypatch.setattr(ms.runtime, "mode", lambda: "cpu")
    assert ms.reference_study(directory=tmp_path) is None
    cfg = ms.study_config("fast")
    store = bench.ResumableResults("mqar_study_cpu", command="python scripts/mqar_study.py", config=cfg,
                                   key_fields=("seq_len", "n_pairs", "family", "point", "lr"), directory=tmp_path)
    job = {k: v for k, v in ms.study_jobs(cfg)[0].items() if k != "_spec"}
    store.add({**job, "accuracy": 0.5, "state_bytes": 10})
    loaded = ms.reference_study(directory=tmp_path)
    assert loaded["stored"]["units_done"] == 1 and not loaded["stored"]["complete"]
    assert loaded["stored"]["preset"] == "cpu" and loaded["command"] == "python scripts/mqar_study.py"

    calls = []
    monkeypatch.setattr(ms, "run_mqar_study", lambda c, **kw: calls.append(c) or [{"accuracy": 1.0}])
    monkeypatch.setenv(stored.RETRAIN_ENV, "1")
    live = ms.reference_study(directory=tmp_path)
    assert live["stored"] is None and live["rows"] == [{"accuracy": 1.0}] and calls[0]["preset"] == "cpu"
    bench.validate_results(live, strict=True)


def test_plot_study_legend_names_every_family_of_every_panel():
    rows = [{"seq_len": 64, "n_pairs": 16, "family": "based", "point": "feature_dim=4", "lr": 1e-3, "accuracy": 0.5,
             "state_bytes": 1000},
            {"seq_len": 128, "n_pairs": 32, "family": "attention", "point": "d_model=32", "lr": 1e-3, "accuracy": 1.0,
             "state_bytes": 5000}]
    fig = ms.plot_study(rows)
    labels = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert ms.FAMILY_STYLE["based"][0] in labels and ms.FAMILY_STYLE["attention"][0] in labels
    assert "frontier" in labels


def test_shards_split_the_jobs_and_share_one_file(tmp_path, monkeypatch):
    cfg = ms.study_config("fast")
    monkeypatch.setattr(ms, "_train_one", lambda job, data, cfg, dev: {
        **{k: v for k, v in job.items() if k != "_spec"}, "accuracy": 0.5, "state_bytes": 1})
    stores = [bench.ResumableResults("mqar_study_fast", command="t", config=cfg, directory=tmp_path,
                                     key_fields=("seq_len", "n_pairs", "family", "point", "lr")) for _ in range(2)]
    ms.run_mqar_study(cfg, store=stores[0], progress=False, shard=(0, 2))
    ms.run_mqar_study(cfg, store=stores[1], progress=False, shard=(1, 2))
    record = bench.load_results("mqar_study_fast", directory=tmp_path)
    assert len(record["rows"]) == len(ms.study_jobs(cfg))      # both halves, nothing twice
    for bad in ((2, 2), (0, 0), "0/2"):
        with pytest.raises(ValueError, match="shard"):
            ms.run_mqar_study(cfg, store=None, progress=False, shard=bad)


def test_extension_lrs_continue_the_grid_by_decades_only_off_the_plateau():
    grid = [1e-3, 3e-3, 1e-2]
    assert ms.extension_lrs(grid, {1e-3: 0.1, 3e-3: 0.5, 1e-2: 0.9}, 16, 2) == [3e-2]        # best at the top
    assert ms.extension_lrs(grid, {1e-3: 0.1, 3e-3: 0.5, 1e-2: 0.8, 3e-2: 0.9}, 16, 2) == [1e-1]
    assert ms.extension_lrs(grid, {1e-3: 0.1, 3e-3: 0.5, 1e-2: 0.8, 3e-2: 0.9, 0.1: 0.95}, 16, 2) == []  # cap
    assert ms.extension_lrs(grid, {1e-3: 0.1, 3e-3: 0.5, 1e-2: 0.9, 3e-2: None}, 16, 2) == []  # bracketed
    assert ms.extension_lrs(grid, {1e-3: 0.9, 3e-3: 0.5, 1e-2: None}, 16, 2) == [3e-4]        # best at the bottom
    assert ms.extension_lrs(grid, {1e-3: 0.2, 3e-3: 0.5, 1e-2: 0.1}, 16, 2) == []             # interior optimum
    assert ms.extension_lrs(grid, {1e-3: 0.01, 3e-3: 0.02, 1e-2: 0.1}, 16, 2) == []           # 0.1 < 2/16: plateau
    assert ms.extension_lrs(grid, {1e-3: 0.1, 3e-3: 0.5}, 16, 2) == []                        # grid unfinished
    assert ms.extension_lrs(grid, {1e-3: 0.1, 3e-3: 0.5, 1e-2: 0.9}, 16, 0) == []             # switched off
    assert ms.extension_lrs([3e-4, 1e-3, 3e-3, 1e-2], {3e-4: 0, 1e-3: 0, 3e-3: 0.2, 1e-2: 0.9}, 16, 1) == [3e-2]


def test_study_runs_lr_extensions_until_the_optimum_is_bracketed(tmp_path, monkeypatch):
    cfg = dict(ms.study_config("fast"), lrs=[1e-3, 3e-3, 1e-2], lr_extension=2, families=["attention", "based"])
    peak = {"attention": 3e-2, "based": 1e-3}   # attention's accuracy peaks above the grid, based's at its bottom

    def fake_train(job, data, cfg, dev):
        acc = max(0.0, 1.0 - 0.2 * abs(math.log10(job["lr"] / peak[job["family"]])))
        return {**{k: v for k, v in job.items() if k != "_spec"}, "accuracy": acc, "state_bytes": 1}

    monkeypatch.setattr(ms, "_train_one", fake_train)
    stores = [bench.ResumableResults("mqar_study_fast", command="t", config=cfg, directory=tmp_path,
                                     key_fields=("seq_len", "n_pairs", "family", "point", "lr")) for _ in range(2)]
    for k in (0, 1, 0, 1):   # two shards, each run twice: extensions that fell due meanwhile are picked up
        ms.run_mqar_study(cfg, store=stores[k], progress=False, shard=(k, 2))
    rows = bench.load_results("mqar_study_fast", directory=tmp_path)["rows"]
    lrs = {}
    for r in rows:
        lrs.setdefault((r["seq_len"], r["family"]), []).append(r["lr"])
    for (seq_len, family), tried in lrs.items():
        expect = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1] if family == "attention" else [3e-4, 1e-3, 3e-3, 1e-2]
        assert sorted(tried) == pytest.approx(expect), (seq_len, family)   # each once, in one shared file
    best = {(r["seq_len"], r["family"]): r for r in ms.best_rows(rows)}
    assert all(b["lr"] == pytest.approx(peak[b["family"]]) for b in best.values())
    assert len(ms.study_jobs(cfg, rows)) == len(rows)               # nothing left to run


def test_the_packaged_cpu_study_is_complete_and_current():
    """The study the chapters load: made with today's cpu preset, every grid job and every
    learning-rate extension due stored (resume with ``scripts/mqar_study.py --preset cpu``)."""
    study = ms.reference_study("cpu")
    assert study is not None, "linattn_edu/results/mqar_study_cpu.json is missing"
    assert study["config"] == json.loads(json.dumps(ms.study_config("cpu"))), \
        "the stored study was made with another cpu preset: rerun scripts/mqar_study.py --preset cpu --fresh"
    info = study["stored"]
    assert info["complete"], f"only {info['units_done']} of {info['units_total']} models stored"
    bench.validate_results(study, strict=True)
