"""Chapter 5's experiments: the MQAR recall-vs-state sweep and the generation-throughput benchmark."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from linattn_edu import bench  # noqa: E402
from linattn_edu.experiments.mqar_sweep import (  # noqa: E402
    MODEL_FAMILIES,
    MQAR_PRESETS,
    init_qk_,
    model_variants,
    mqar_sweep_config,
    pareto_frontier,
    plot_recall_vs_state,
    run_mqar_sweep,
    train_mqar,
)
from linattn_edu.experiments.throughput import (  # noqa: E402
    GENERATION_PRESETS,
    generation_benchmark,
    generation_config,
    plot_generation,
)
from linattn_edu.models import build_model, model_state_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ROW_KEYS = {"family", "label", "seq_len", "n_pairs", "state_bytes", "accuracy", "n_params", "train_seconds", "options"}
CONFIG_KEYS = {"settings", "vocab_size", "d_model", "n_layers", "n_heads", "steps", "batch_size", "lr", "n_train",
               "n_test", "seed", "windows", "feature_dims", "based", "stack"}


@pytest.fixture(scope="module")
def fast_sweep():
    """One run of the fast preset (the tests set LINATTN_FAST=1), shared below."""
    return run_mqar_sweep(**mqar_sweep_config(), device="cpu", progress=False)


@pytest.fixture(scope="module")
def fast_generation():
    return generation_benchmark(**generation_config(), device="cpu", progress=False)


def _labels(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


# ----------------------------------------------------------------------------------------------
# MQAR sweep
# ----------------------------------------------------------------------------------------------


def test_config_is_the_fast_preset_and_presets_are_complete():
    cfg = mqar_sweep_config()
    assert set(cfg) == CONFIG_KEYS
    assert cfg["settings"] == [tuple(s) for s in MQAR_PRESETS["fast"]["settings"]]
    cfg["windows"].append(99)  # a copy: editing it leaves the preset alone
    assert 99 not in MQAR_PRESETS["fast"]["windows"]
    for name, preset in MQAR_PRESETS.items():
        assert set(preset) == CONFIG_KEYS, name
        assert preset["n_layers"] == 2, name
        for seq_len, n_pairs in preset["settings"]:
            assert preset["vocab_size"] > seq_len and 4 * n_pairs <= seq_len, name
    assert MQAR_PRESETS["gpu"]["vocab_size"] == 8192
    with pytest.raises(ValueError, match="preset"):
        mqar_sweep_config("huge")


def test_fast_sweep_rows_cover_every_family(fast_sweep):
    rows = fast_sweep["rows"]
    assert {r["family"] for r in rows} == set(MODEL_FAMILIES)
    for r in rows:
        assert ROW_KEYS <= set(r)
        assert math.isfinite(r["accuracy"]) and 0.0 <= r["accuracy"] <= 1.0
        assert isinstance(r["state_bytes"], int) and r["state_bytes"] > 0
        assert r["n_params"] > 0 and r["train_seconds"] >= 0
        # the fast preset runs Zoology's stack: one mixer per layer, BaseConv first, no MLP
        assert r["options"]["kind"] == "based" and r["options"]["mlp"] == "none"
        assert r["options"]["conv_form"] == "zoology" and r["options"]["layer_pattern"][0] == "conv"
    assert fast_sweep["config"]["stack"] == "zoology"
    assert fast_sweep["config"]["bytes_per_element"] == 4
    assert isinstance(fast_sweep["device"], str)
    json.dumps(fast_sweep["rows"])  # storable as is


def test_sweep_is_deterministic_and_models_are_independent(fast_sweep):
    cfg = mqar_sweep_config()
    again = run_mqar_sweep(**cfg, families=("linear_taylor", "based"), device="cpu", progress=False)
    first = {r["label"]: r for r in fast_sweep["rows"]}
    assert again["rows"]
    for r in again["rows"]:  # same numbers whether or not the other families ran before
        ref = first[r["label"]]
        assert (r["accuracy"], r["final_loss"], r["state_bytes"]) == (ref["accuracy"], ref["final_loss"],
                                                                      ref["state_bytes"])


def test_sweep_argument_errors_name_the_argument():
    cfg = mqar_sweep_config()
    with pytest.raises(ValueError, match="vocab_size"):
        run_mqar_sweep(**{**cfg, "vocab_size": 16}, progress=False)
    with pytest.raises(ValueError, match="settings"):
        run_mqar_sweep(**{**cfg, "settings": [(15, 2)]}, progress=False)
    with pytest.raises(ValueError, match="families"):
        run_mqar_sweep(**cfg, families=("mamba",), progress=False)
    with pytest.raises(ValueError, match="based"):
        run_mqar_sweep(**{**cfg, "based": [{"feature_dim": 2}]}, progress=False)
    with pytest.raises(ValueError, match="qk_init"):
        run_mqar_sweep(**cfg, qk_init="xavier", progress=False)


def test_state_bytes_window_and_linear():
    variants = {v["label"]: v for v in model_variants(64, windows=[8, 16, 64], feature_dims=[4], based=[
        {"feature_dim": 2, "window": 8}])}
    assert "window 64" not in variants  # a window as long as the sequence is full attention

    def state(label, seq_len):
        v = variants[label]
        model = build_model(v["kind"], vocab_size=128, d_model=32, n_layers=2, n_heads=2, **v["options"])
        return model_state_bytes(model, seq_len=seq_len, bytes_per_element=4)

    for seq_len in (32, 64):
        assert state("window 8", seq_len) < state("window 16", seq_len) < state("attention", seq_len)
    assert state("attention", 64) > state("attention", 32)  # the KV cache grows with the sequence
    for label in ("elu d=4", "taylor d=4 (F=21)"):
        assert state(label, 16) == state(label, 64) == state(label, 1024)  # fixed-size state
    assert state("based d=2 w=8", 64) == state("based d=2 w=8", 1024)  # bounded once the window is full
    assert state("taylor d=4 (F=21)", 64) > state("elu d=4", 64)  # F = 1 + d + d² vs d


def test_zoology_stack_is_one_mixer_per_layer_and_the_book_stack_is_named():
    zoo = {v["label"]: v["options"] for v in model_variants(
        64, windows=[8], feature_dims=[4], based=[{"feature_dim": 2, "window": 8}, {"feature_dim": 2, "window": None}],
        stack="zoology")}
    # Zoology's Hybrid: configs [BaseConv, X] cycled over 2 layers; no layer holds a conv and another mixer
    assert zoo["attention"]["layer_pattern"] == ["conv", "window"] and zoo["attention"]["window"] == 64
    assert zoo["window 8"]["layer_pattern"] == ["conv", "window"] and zoo["window 8"]["window_pos"] == "none"
    assert zoo["elu d=4"]["layer_pattern"] == zoo["taylor d=4 (F=21)"]["layer_pattern"] == ["conv", "linear"]
    paper = zoo["based d=2 (paper MQAR)"]  # the Based paper's MQAR model: no MLP, no window
    assert paper["layer_pattern"] == ["conv", "linear"] and "window" not in paper and paper["feature_map"] == "taylor"
    assert zoo["based d=2 w=8"]["layer_pattern"] == ["conv", "linear+window"]  # the book's variant with a window
    for opts in zoo.values():
        assert opts["conv_form"] == "zoology" and opts["mlp"] == "none" and opts["norm"] == "layernorm"
    assert [v["options"]["layer_pattern"] for v in model_variants(32, families=("linear_elu",), feature_dims=[2],
                                                                  stack="zoology", n_layers=3)] == [
        ["conv", "linear", "conv"]]
    no_conv = model_variants(32, families=("attention",), stack="zoology", conv=False)[0]["options"]
    assert no_conv["layer_pattern"] == ["window", "window"]
    book = {v["label"]: v["options"] for v in model_variants(64, windows=[8], feature_dims=[4], based=[
        {"feature_dim": 2, "window": 8}], stack="conv_prefixed")}
    assert book["attention"]["layer_pattern"] == ["conv+window", "conv+window"]
    assert all(o["conv_form"] == "book" and o["mlp"] == "none" for o in book.values())
    with pytest.raises(ValueError, match="stack"):
        model_variants(64, stack="hybrid")
    with pytest.raises(ValueError, match="stack='zoology'"):
        model_variants(64, families=("based",), based=[{"feature_dim": 2, "window": None}], stack="conv_prefixed")
    # both stacks build, decode state counted with the conv state
    for opts in (*zoo.values(), *book.values()):
        model = build_model("based", vocab_size=80, d_model=16, n_layers=2, n_heads=2, **opts)
        assert model_state_bytes(model, seq_len=64, bytes_per_element=4) > 0


def test_init_qk_rescales_only_query_key_projections():
    model = build_model("based", vocab_size=64, d_model=32, n_layers=2, n_heads=2, mlp="none")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    init_qk_(model)
    changed = {n for n, p in model.named_parameters() if not (p == before[n]).all()}
    assert changed and all(n.split(".")[-2] in ("q_proj", "k_proj", "qkv_proj") for n in changed)
    std = model.blocks[0].mixers["linear"].q_proj.weight.std().item()
    assert 0.1 < std < 0.25  # 1/sqrt(32) = 0.177
    with pytest.raises(TypeError, match="model"):
        init_qk_("not a model")


def _tiny_mqar_run(steps: int = 12, **kwargs):
    import torch

    from linattn_edu.tasks import make_mqar

    x, y = make_mqar(64, seq_len=16, n_pairs=2, vocab_size=32, seed=0)
    torch.manual_seed(0)
    model = build_model("based", vocab_size=32, d_model=16, n_layers=2, n_heads=1,
                        **model_variants(16, families=("attention",), stack="zoology")[0]["options"])
    init_qk_(model)
    return train_mqar(model, x, y, steps=steps, batch_size=8, lr=3e-3, seed=0, device="cpu", **kwargs)


def test_train_mqar_stop_after_retraces_the_start_of_the_full_run():
    """The chapter's live miniature: stop_after=k runs the first k steps of the same run (schedule, batches)."""
    full = _tiny_mqar_run()
    part = _tiny_mqar_run(stop_after=5)
    assert len(full["loss"]) == 12 and len(part["loss"]) == 5
    assert part["loss"] == full["loss"][:5]            # same process, same threads: bit-identical
    # a 5-step run is a different run (its warmup and cosine schedule are shorter): not the same losses
    short = _tiny_mqar_run(steps=5)
    assert short["loss"][0] == full["loss"][0] and short["loss"][1:] != full["loss"][1:5]
    assert _tiny_mqar_run(stop_after=12)["loss"] == full["loss"]
    with pytest.raises(ValueError, match="stop_after"):
        _tiny_mqar_run(stop_after=13)
    with pytest.raises(ValueError, match="stop_after"):
        _tiny_mqar_run(stop_after=0)


def test_pareto_frontier_on_hand_made_points():
    pts = [
        {"label": "a", "state_bytes": 10, "accuracy": 0.2},
        {"label": "b", "state_bytes": 20, "accuracy": 0.6},
        {"label": "c", "state_bytes": 30, "accuracy": 0.5},  # dominated by b
        {"label": "d", "state_bytes": 40, "accuracy": 0.9},
        {"label": "e", "state_bytes": 40, "accuracy": 0.8},  # same state as d, less recall
        {"label": "f", "state_bytes": 50, "accuracy": 0.9},  # same recall as d, more state
        {"label": "g", "state_bytes": 5, "accuracy": 0.1},
        {"label": "h", "state_bytes": 100, "accuracy": 1.0},
    ]
    assert [r["label"] for r in pareto_frontier(pts)] == ["g", "a", "b", "d", "h"]
    # settings are never compared with each other
    two = [{**p, "seq_len": 64, "n_pairs": 4} for p in pts] + [
        {"label": "x", "state_bytes": 1, "accuracy": 1.0, "seq_len": 128, "n_pairs": 8}]
    assert [r["label"] for r in pareto_frontier(two, seq_len=64)] == ["g", "a", "b", "d", "h"]
    assert [r["label"] for r in pareto_frontier(two, seq_len=128)] == ["x"]
    assert [r["label"] for r in pareto_frontier(two)] == ["g", "a", "b", "d", "h", "x"]
    with pytest.raises(ValueError, match="rows"):
        pareto_frontier([{"accuracy": 1.0}])
    with pytest.raises(ValueError, match="seq_len"):
        pareto_frontier(two, seq_len=999)


def test_plot_recall_vs_state_one_series_per_family(fast_sweep):
    ax = plot_recall_vs_state(fast_sweep)
    labels = _labels(ax)
    assert sorted(label for label in labels if label in MODEL_FAMILIES) == sorted(MODEL_FAMILIES)
    assert labels.count("Pareto frontier") == 1
    assert ax.get_xscale() == "log"
    plt.close(ax.figure)

    stored = {"device": "Test GPU", "date": "2026-01-01T00:00:00Z", "rows": fast_sweep["rows"]}
    ax = plot_recall_vs_state(fast_sweep, stored=stored)
    labels = _labels(ax)
    assert sum("(stored: Test GPU" in label for label in labels) == len(MODEL_FAMILIES)
    assert "Pareto frontier (stored)" in labels
    plt.close(ax.figure)

    ax = plot_recall_vs_state(None, stored=stored)  # the stored record alone
    assert sum("stored" in label for label in _labels(ax)) == len(MODEL_FAMILIES) + 1
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="seq_len"):
        plot_recall_vs_state(fast_sweep, seq_len=12345)
    with pytest.raises(ValueError):
        plot_recall_vs_state(None)


# ----------------------------------------------------------------------------------------------
# Generation throughput
# ----------------------------------------------------------------------------------------------


def test_generation_rows_and_state_growth(fast_generation):
    cfg = generation_config()
    assert cfg["gen_lens"] == GENERATION_PRESETS["fast"]["gen_lens"]
    rows = fast_generation["rows"]
    assert {r["kind"] for r in rows} == {"transformer", "based"}
    for r in rows:
        assert {"kind", "gen_len", "seconds", "tokens_per_s", "state_bytes"} <= set(r)
        assert r["seconds"] > 0 and r["tokens_per_s"] > 0 and r["state_bytes"] > 0
        assert r["tokens_per_s"] == pytest.approx(cfg["batch_size"] * r["gen_len"] / r["seconds"])
    by_kind = {k: sorted((r["gen_len"], r["state_bytes"]) for r in rows if r["kind"] == k)
               for k in ("transformer", "based")}
    t_states = [s for _, s in by_kind["transformer"]]
    assert all(a < b for a, b in zip(t_states, t_states[1:]))  # the KV cache grows
    b_states = {s for _, s in by_kind["based"]}
    assert len(b_states) == 1  # Based's state does not
    assert "24x" in fast_generation["config"]["paper_claim"]


def test_generation_transformer_cache_matches_formula(fast_generation):
    cfg = generation_config()
    for r in fast_generation["rows"]:
        if r["kind"] == "transformer":
            tokens = cfg["prompt_len"] + r["gen_len"]
            # 2 (K and V) x layers x batch x (prompt + decode steps) x d_model x 4 bytes (float32)
            expected = 2 * cfg["n_layers"] * cfg["batch_size"] * tokens * cfg["d_model"] * 4
            assert r["state_bytes"] == expected


def test_generation_mini_preset_is_a_miniature_of_the_cpu_one():
    mini, cpu = generation_config("mini"), generation_config("cpu")
    assert set(mini) >= set(cpu) - {"model_options"}
    assert max(mini["gen_lens"]) < max(cpu["gen_lens"]) and mini["d_model"] < cpu["d_model"]
    assert mini["n_layers"] <= cpu["n_layers"] and mini["repeat"] <= cpu["repeat"]
    # the window of its Based model is shorter than the generation: its cache stops growing there
    assert mini["model_options"]["based"]["window"] < max(mini["gen_lens"])


def test_generation_argument_errors_name_the_argument():
    cfg = generation_config()
    with pytest.raises(ValueError, match="gen_lens"):
        generation_benchmark(**{**cfg, "gen_lens": [0]}, progress=False)
    with pytest.raises(ValueError, match="prompt_len"):
        generation_benchmark(**{**cfg, "prompt_len": 0}, progress=False)
    with pytest.raises(ValueError, match="kinds"):
        generation_benchmark((), **cfg, progress=False)
    with pytest.raises(ValueError, match="preset"):
        generation_config("huge")


def test_plot_generation_one_line_per_kind(fast_generation):
    ax_speed, ax_state = plot_generation(fast_generation)
    assert sorted(_labels(ax_speed)) == ["based", "transformer"]
    assert sorted(_labels(ax_state)) == ["based", "transformer"]
    plt.close(ax_speed.figure)
    with pytest.raises(ValueError, match="res"):
        plot_generation({"rows": []})


# ----------------------------------------------------------------------------------------------
# Scripts and the stored result
# ----------------------------------------------------------------------------------------------


def _run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LINATTN_FORCE_CPU": "1", "LINATTN_FAST": "1"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_bench_generation_script_cpu_behaviour(tmp_path):
    proc = _run_script("scripts/bench_generation.py", "--out-dir", str(tmp_path))
    assert proc.returncode == 2 and "--cpu" in proc.stderr
    proc = _run_script("scripts/bench_generation.py", "--cpu", "--no-progress", "--out-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "transformer" in proc.stdout and not list(tmp_path.iterdir())  # prints, writes nothing
    proc = _run_script("scripts/bench_generation.py", "--cpu", "--save", "--no-progress", "--out-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    record = bench.load_results("generation", directory=tmp_path)
    assert "--save" in record["command"] and record["config"]["preset"] == "fast"


def test_mqar_sweep_script(tmp_path):
    proc = _run_script("scripts/mqar_sweep.py", "--preset", "gpu", "--out-dir", str(tmp_path))
    assert proc.returncode == 2 and "CUDA" in proc.stderr
    proc = _run_script("scripts/mqar_sweep.py", "--preset", "fast", "--no-progress", "--out-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    record = bench.load_results("mqar_sweep", directory=tmp_path)
    assert "--preset fast" in record["command"] and record["config"]["preset"] == "fast"
    assert {r["family"] for r in record["rows"]} == set(MODEL_FAMILIES)


def test_stored_mqar_sweep_has_provenance_and_all_families():
    record = bench.load_results("mqar_sweep")
    if record is None:
        pytest.skip("no stored linattn_edu/results/mqar_sweep.json yet")
    assert record["device"] and record["date"] and "scripts/mqar_sweep.py" in record["command"]
    assert record["config"]["preset"] in MQAR_PRESETS
    assert {r["family"] for r in record["rows"]} == set(MODEL_FAMILIES)
    for r in record["rows"]:
        assert ROW_KEYS <= set(r) and 0.0 <= r["accuracy"] <= 1.0 and r["state_bytes"] > 0
    # its rows rebuild from their options the models it trained: the conv-prefixed stack, ShortConv
    stack = record["config"]["stack"]
    assert stack == MQAR_PRESETS[record["config"]["preset"]]["stack"] == "conv_prefixed"
    cfg = record["config"]
    for (seq_len, _) in cfg["settings"]:
        variants = model_variants(seq_len, windows=cfg["windows"], feature_dims=cfg["feature_dims"],
                                  based=cfg["based"], families=cfg["families"], stack=stack)
        rows = {r["label"]: r for r in record["rows"] if r["seq_len"] == seq_len}
        assert {v["label"] for v in variants} == set(rows)
        for v in variants:
            assert {"kind": v["kind"], **v["options"]} == rows[v["label"]]["options"], v["label"]
            model = build_model(v["kind"], vocab_size=cfg["vocab_size"], d_model=cfg["d_model"],
                                n_layers=cfg["n_layers"], n_heads=cfg["n_heads"], **v["options"])
            assert model_state_bytes(model, seq_len=seq_len, bytes_per_element=4) == rows[v["label"]]["state_bytes"]
    ax = plot_recall_vs_state(None, stored=record)
    plt.close(ax.figure)
