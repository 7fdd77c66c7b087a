"""Chapter 3's experiment: ALiBi length extrapolation, its cost measurements, plot, scripts and stored reference run."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from linattn_edu import bench  # noqa: E402
from linattn_edu.data import load_corpus  # noqa: E402
from linattn_edu.experiments import (  # noqa: E402
    POSITION_SCHEMES,
    PRESETS,
    extrapolation_config,
    plot_extrapolation,
    result_to_rows,
    run_extrapolation,
    stored,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG_KEYS = {"train_len", "eval_lens", "d_model", "n_layers", "n_heads", "steps", "batch_size", "lr",
               "eval_max_windows", "max_bytes", "seed"}
TRAIN_KEYS = {"n_params", "final_loss", "step_time_s", "tokens_per_s", "peak_memory_bytes", "train_seconds"}


@pytest.fixture(scope="module")
def fast_result():
    """One run of the fast preset (the tests set LINATTN_FAST=1), shared by the tests below."""
    cfg = extrapolation_config()
    return run_extrapolation(**cfg, device="cpu", progress=False)


def _plotted_lines(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("train length")]


# ----------------------------------------------------------------------------------------------
# Config and the experiment
# ----------------------------------------------------------------------------------------------


def test_config_is_the_fast_preset_and_presets_are_complete():
    cfg = extrapolation_config()
    assert set(cfg) == CONFIG_KEYS
    assert cfg == PRESETS["fast"]
    cfg["steps"] = -1  # a copy: editing it leaves the preset alone
    assert PRESETS["fast"]["steps"] > 0
    for name, preset in PRESETS.items():
        assert set(preset) == CONFIG_KEYS, name
        assert preset["eval_lens"][0] == preset["train_len"], name
    with pytest.raises(ValueError, match="preset"):
        extrapolation_config("huge")


def test_miniature_config(monkeypatch):
    from linattn_edu.experiments.stored import live_preset

    assert extrapolation_config(live_preset()) == PRESETS["fast"]  # the tests run in fast mode
    for mode, preset in (("cpu", "mini"), ("t4", "mini"), ("gpu", "mini")):
        monkeypatch.setattr("linattn_edu.runtime.mode", lambda mode=mode: mode)
        assert live_preset() == preset, mode
        assert extrapolation_config(live_preset()) == PRESETS[preset], mode
    monkeypatch.setattr("linattn_edu.runtime.mode", lambda: "cpu")
    assert extrapolation_config() == PRESETS["cpu"]
    # The miniature is smaller than the reference run in every dimension that costs time.
    mini, ref = PRESETS["mini"], PRESETS["cpu"]
    for key in ("train_len", "d_model", "n_layers", "steps"):
        assert mini[key] < ref[key], key


def test_presets_fit_the_valid_split():
    full = load_corpus("stdlib").valid.numel()
    for name, p in PRESETS.items():
        valid = full if p["max_bytes"] is None else load_corpus("stdlib", max_bytes=p["max_bytes"]).valid.numel()
        assert valid >= p["eval_max_windows"] * max(p["eval_lens"]) + 1, name


def test_one_finite_row_per_scheme_and_length(fast_result):
    cfg = extrapolation_config()
    rows = fast_result["rows"]
    assert [(r["pos"], r["eval_len"]) for r in rows] == [
        (pos, n) for pos in POSITION_SCHEMES for n in sorted(cfg["eval_lens"])
    ]
    for r in rows:
        assert set(r) == {"pos", "train_len", "eval_len", "perplexity"}
        assert r["train_len"] == cfg["train_len"]
        assert math.isfinite(r["perplexity"]) and 1.0 < r["perplexity"] < 1000.0
    assert set(fast_result["train"]) == set(POSITION_SCHEMES)
    for pos, t in fast_result["train"].items():
        assert set(t) == TRAIN_KEYS, pos
        assert t["n_params"] > 0 and math.isfinite(t["final_loss"]) and t["step_time_s"] > 0
        if sys.platform.startswith("linux"):
            assert isinstance(t["peak_memory_bytes"], int) and t["peak_memory_bytes"] >= 0
    # Only the learned table adds parameters (max(eval_lens) rows of d_model).
    n = {pos: t["n_params"] for pos, t in fast_result["train"].items()}
    assert n["learned"] - n["alibi"] == max(cfg["eval_lens"]) * cfg["d_model"]
    assert n["sinusoidal"] == n["rope"] == n["alibi"] == n["none"]
    assert fast_result["device"] == bench.device_name("cpu")
    assert fast_result["corpus"]["sha256"] and fast_result["corpus"]["name"] == "stdlib"


def test_every_length_scores_the_same_tokens(fast_result):
    c = fast_result["config"]
    assert c["eval_tokens"] == c["eval_max_windows"] * max(c["eval_lens"])
    for n in c["eval_lens"]:
        assert c["eval_windows"][str(n)] * n == c["eval_tokens"]


def test_learned_table_is_evaluated_past_train_len(fast_result):
    cfg = extrapolation_config()
    past = [r for r in fast_result["rows"] if r["pos"] == "learned" and r["eval_len"] > cfg["train_len"]]
    assert past and all(math.isfinite(r["perplexity"]) for r in past)
    assert fast_result["config"]["learned_max_len"] == max(cfg["eval_lens"])


def test_cost_comparison_uses_the_same_tokens_per_step(fast_result):
    cost = fast_result["cost"]
    a, s = cost["alibi_short"], cost["sinusoidal_full"]
    assert (a["pos"], s["pos"]) == ("alibi", "sinusoidal")
    assert a["seq_len"] * 2 == s["seq_len"] == extrapolation_config()["train_len"]
    assert a["tokens_per_step"] == s["tokens_per_step"]
    assert cost["step_time_ratio"] == pytest.approx(a["step_time_s"] / s["step_time_s"])
    assert cost["step_time_ratio"] > 0


def test_deterministic_with_a_seed(fast_result):
    cfg = extrapolation_config()
    again = run_extrapolation(**cfg, device="cpu", progress=False, cost_steps=0)
    assert again["rows"] == fast_result["rows"]
    assert {p: t["final_loss"] for p, t in again["train"].items()} == {
        p: t["final_loss"] for p, t in fast_result["train"].items()
    }
    assert again["cost"] is None and all(t["peak_memory_bytes"] is None for t in again["train"].values())


def test_cost_comparison_runs_once_with_the_alibi_unit():
    cfg = {**extrapolation_config(), "eval_lens": (16,)}
    without = run_extrapolation(("learned",), **cfg, device="cpu", progress=False, cost_steps=1)
    assert without["cost"] is None
    with_alibi = run_extrapolation(("alibi",), **cfg, device="cpu", progress=False, cost_steps=1)
    assert with_alibi["cost"]["alibi_short"]["pos"] == "alibi"


def test_a_subset_of_schemes_in_the_given_order():
    cfg = {**extrapolation_config(), "eval_lens": (8, 16, 32)}
    result = run_extrapolation(("alibi", "learned"), **cfg, device="cpu", progress=False, cost_steps=0)
    assert [r["pos"] for r in result["rows"]] == ["alibi"] * 3 + ["learned"] * 3
    assert [r["eval_len"] for r in result["rows"][:3]] == [8, 16, 32]


def test_threads_are_restored():
    before = torch.get_num_threads()
    result = run_extrapolation(("alibi",), **extrapolation_config(), device="cpu", progress=False, cost_steps=0,
                               threads=1)
    assert result["config"]["torch_threads"] == 1
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"schemes": ("alibi", "t5")}, "schemes"),
        ({"schemes": ()}, "schemes"),
        ({"schemes": ("alibi", "alibi")}, "schemes"),
        ({"eval_lens": ()}, "eval_lens"),
        ({"eval_lens": (16, 0)}, "eval_lens"),
        ({"eval_lens": (-32,)}, "eval_lens"),
        ({"eval_lens": (16.0,)}, "eval_lens"),
        ({"train_len": 1}, "train_len"),
        ({"train_len": 0}, "train_len"),
        ({"steps": 0}, "steps"),
        ({"lr": -1.0}, "lr"),
        ({"eval_max_windows": 0}, "eval_max_windows"),
        ({"eval_lens": (16, 10**7)}, "max_bytes"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_arguments_name_themselves(change, name):
    kwargs = {**extrapolation_config(), **change}
    schemes = kwargs.pop("schemes", POSITION_SCHEMES)
    with pytest.raises(ValueError, match=name):
        run_extrapolation(schemes, **kwargs, device="cpu", progress=False)


# ----------------------------------------------------------------------------------------------
# Plot, results records
# ----------------------------------------------------------------------------------------------


def test_plot_one_line_per_scheme(fast_result):
    ax = plot_extrapolation(fast_result)
    assert _plotted_lines(ax) == list(POSITION_SCHEMES)
    assert ax.get_xscale() == "log"
    assert any(line.get_label().startswith("train length") for line in ax.get_lines())
    plt.close(ax.figure)


def test_plot_draws_a_stored_record_dashed(fast_result, tmp_path):
    rows = result_to_rows(fast_result)
    assert {r["kind"] for r in rows} == {"perplexity", "train", "cost"}
    bench.save_results("alibi_extrapolation", rows, command="pytest", config=fast_result["config"],
                       device="cpu", directory=tmp_path)
    record = bench.load_results("alibi_extrapolation", directory=tmp_path)
    fig, ax = plt.subplots()
    assert plot_extrapolation(fast_result, ax=ax, stored=record) is ax
    labels = _plotted_lines(ax)
    assert len(labels) == 2 * len(POSITION_SCHEMES)
    stored = [line for line in ax.get_lines() if "stored" in line.get_label() and "train length" not in line.get_label()]
    assert len(stored) == len(POSITION_SCHEMES)
    assert all(line.get_linestyle() == "--" and record["device"] in line.get_label() for line in stored)
    plt.close(fig)
    ax = plot_extrapolation(None, stored=record)  # the stored record alone
    assert len(_plotted_lines(ax)) == len(POSITION_SCHEMES)
    plt.close(ax.figure)
    with pytest.raises(ValueError):
        plot_extrapolation({"rows": []})


# ----------------------------------------------------------------------------------------------
# Peak RSS
# ----------------------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_peak_rss_bytes_sees_a_200_mb_tensor():
    def allocate():
        x = torch.ones(50_000_000)  # 200 MB, written so its pages are resident
        del x

    idle = bench.peak_rss_bytes(lambda: None)
    big = bench.peak_rss_bytes(allocate)
    assert isinstance(idle, int) and isinstance(big, int)
    assert 0 <= idle < 50e6
    assert big - idle >= 150e6
    assert big < 400e6
    calls = []
    bench.peak_rss_bytes(lambda: calls.append(1))
    assert calls == [1]  # fn runs exactly once


# ----------------------------------------------------------------------------------------------
# Scripts
# ----------------------------------------------------------------------------------------------


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stored_run_unit_by_unit_equals_the_run_at_once(fast_result, tmp_path, capsys):
    """scripts/run_experiment.py trains one scheme at a time (one process, resumable); merged, the
    units give exactly the all-at-once result: same rows, same training, one cost comparison."""
    script = _load_script("run_experiment")
    assert script.main(["alibi_extrapolation", "--preset", "fast", "--out-dir", str(tmp_path), "--no-progress"]) == 0
    assert "unit 'alibi' done" in capsys.readouterr().out
    record = bench.load_results("alibi_extrapolation_fast", directory=tmp_path)
    bench.validate_results(record, strict=True)
    assert [r["unit"] for r in record["rows"]] == list(POSITION_SCHEMES)
    assert record["config"] == {k: list(v) if isinstance(v, tuple) else v for k, v in PRESETS["fast"].items()}
    merged = stored.load_stored("alibi_extrapolation", "fast", directory=tmp_path)
    assert merged["stored"]["complete"]
    assert merged["rows"] == fast_result["rows"]
    for pos, t in fast_result["train"].items():
        assert merged["train"][pos]["final_loss"] == t["final_loss"], pos
        assert merged["train"][pos]["n_params"] == t["n_params"], pos
    assert merged["config"]["schemes"] == list(POSITION_SCHEMES)
    assert merged["config"]["eval_tokens"] == fast_result["config"]["eval_tokens"]
    assert merged["cost"]["alibi_short"]["tokens_per_step"] == fast_result["cost"]["alibi_short"]["tokens_per_step"]
    assert sum(r["result"]["cost"] is not None for r in record["rows"]) == 1  # measured once, with alibi


def _script_env() -> dict[str, str]:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    env.pop("TRITON_INTERPRET", None)
    return env


def test_bench_alibi_needs_a_gpu():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_alibi.py")], capture_output=True,
                          text=True, env=_script_env(), cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert "CUDA" in proc.stderr and "--interpret-smoke" in proc.stderr


def test_bench_alibi_interpret_smoke(tmp_path):
    before = sorted(bench.RESULTS_DIR.glob("*.json"))
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_alibi.py"), "--interpret-smoke"],
                          capture_output=True, text=True, env=_script_env(), cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "interpret-smoke passed" in proc.stdout
    assert sorted(bench.RESULTS_DIR.glob("*.json")) == before  # writes nothing


# ----------------------------------------------------------------------------------------------
# The stored result
# ----------------------------------------------------------------------------------------------


def test_stored_reference_run_has_provenance_and_every_scheme():
    """linattn_edu/results/alibi_extrapolation_cpu.json, the run Chapter 3 loads (its presence,
    completeness and preset are also checked by tests/test_stored_experiments.py)."""
    result = stored.load_stored("alibi_extrapolation", "cpu")
    assert result is not None, "python scripts/run_experiment.py alibi_extrapolation --preset cpu"
    info = result["stored"]
    assert info["complete"] and info["device"] and info["date"] and info["torch"]
    assert "run_experiment.py alibi_extrapolation" in info["command"]
    cfg = result["config"]
    for key, value in PRESETS["cpu"].items():
        assert cfg[key] == (list(value) if isinstance(value, tuple) else value), key
    assert [(r["pos"], r["eval_len"]) for r in result["rows"]] == [
        (p, n) for p in POSITION_SCHEMES for n in PRESETS["cpu"]["eval_lens"]]
    assert all(math.isfinite(r["perplexity"]) and r["train_len"] == cfg["train_len"] for r in result["rows"])
    assert set(result["train"]) == set(POSITION_SCHEMES)
    assert all(set(t) == TRAIN_KEYS for t in result["train"].values())
    assert result["cost"]["alibi_short"]["seq_len"] * 2 == cfg["train_len"]
    assert result["corpus"]["sha256"]
