"""The Griffin chapter's experiments: decode latency, length generalization, MQAR with Hawk and Griffin."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from linattn_edu import bench  # noqa: E402
from linattn_edu.experiments import (  # noqa: E402
    DECODE_PRESETS,
    LENGTH_PRESETS,
    MQAR_RECURRENT_PRESETS,
    decode_latency,
    decode_latency_config,
    length_generalization_config,
    mqar_recurrent_config,
    plot_decode_latency,
    plot_extrapolation,
    plot_length_generalization,
    result_to_rows,
    run_length_generalization,
)
from linattn_edu.experiments.mqar_sweep import (  # noqa: E402
    MODEL_FAMILIES,
    MQAR_PRESETS,
    RECURRENT_FAMILIES,
    init_qk_,
    model_variants,
    plot_recall_vs_state,
    run_mqar_sweep,
)
from linattn_edu.models import build_model, model_state_bytes  # noqa: E402

KINDS = ("transformer", "hawk", "griffin")
DECODE_ROW_KEYS = {"kind", "context_len", "ms_per_token", "tokens_per_s", "cache_bytes", "state_bytes", "n_params"}


@pytest.fixture(scope="module")
def fast_decode():
    return decode_latency(**decode_latency_config(), device="cpu", progress=False)


@pytest.fixture(scope="module")
def fast_length():
    return run_length_generalization(**length_generalization_config(), device="cpu", progress=False)


@pytest.fixture(scope="module")
def fast_mqar():
    return run_mqar_sweep(**mqar_recurrent_config(), device="cpu", progress=False)


def _labels(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


# ----------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------


def test_configs_are_the_fast_presets_and_copies():
    cfg = decode_latency_config()
    assert cfg["context_lens"] == DECODE_PRESETS["fast"]["context_lens"]
    cfg["model_options"]["griffin"]["window"] = 999  # a copy: the preset is untouched
    assert DECODE_PRESETS["fast"]["model_options"]["griffin"]["window"] == 8
    assert length_generalization_config() == LENGTH_PRESETS["fast"]
    mq = mqar_recurrent_config()
    assert mq["families"] == ["attention", "linear_taylor", "based", "hawk", "griffin"]
    mq["families"].append("x")
    assert "x" not in MQAR_RECURRENT_PRESETS["fast"]["families"]
    for presets in (DECODE_PRESETS, LENGTH_PRESETS, MQAR_RECURRENT_PRESETS):
        assert set(presets) >= {"fast", "cpu", "gpu"}


def test_gpu_presets_use_the_papers_window_where_the_sequences_exceed_it():
    """The paper's Griffin window is window_size=1024 in the official code: 1025 keys, the current one
    included, which is window=1025 in this package's convention."""
    paper_window = 1024 + 1
    gpu = decode_latency_config("gpu")
    assert gpu["model_options"]["griffin"]["window"] == paper_window
    assert max(gpu["context_lens"]) > paper_window  # the cache visibly stops growing
    # shorter sequences keep smaller windows (a window longer than the sequence would be global attention)
    length = length_generalization_config("gpu")
    assert length["train_len"] < paper_window
    mq = mqar_recurrent_config("gpu")
    assert all(seq_len < paper_window for seq_len, _ in mq["settings"])
    assert all(w < seq_len for w in mq["griffin_windows"] for seq_len, _ in mq["settings"])
    # the recurrent MQAR run uses the sweep's "cpu" setting and recipe
    cpu, sweep = mqar_recurrent_config("cpu"), MQAR_PRESETS["cpu"]
    assert cpu["settings"] == [tuple(s) for s in sweep["settings"]] == [(64, 8)]
    for key in ("vocab_size", "d_model", "n_layers", "n_heads", "lr", "batch_size", "n_train", "n_test", "seed"):
        assert cpu[key] == sweep[key], key
    for fn in (decode_latency_config, length_generalization_config, mqar_recurrent_config):
        with pytest.raises(ValueError, match="preset"):
            fn("huge")


# ----------------------------------------------------------------------------------------------
# 1. Decode latency
# ----------------------------------------------------------------------------------------------


def test_decode_rows_are_well_formed(fast_decode):
    cfg = decode_latency_config()
    rows = fast_decode["rows"]
    assert [(r["kind"], r["context_len"]) for r in rows] == [(k, t) for k in KINDS for t in cfg["context_lens"]]
    for r in rows:
        assert set(r) == DECODE_ROW_KEYS
        assert r["ms_per_token"] > 0 and r["tokens_per_s"] > 0 and r["n_params"] > 0
        assert r["tokens_per_s"] == pytest.approx(cfg["batch_size"] * 1e3 / r["ms_per_token"])
        assert r["cache_bytes"] == cfg["batch_size"] * r["state_bytes"]  # float32 everywhere
    assert fast_decode["config"]["model_options"]["transformer"] == {"kind": "transformer", "pos": "rope",
                                                                    "n_kv_heads": 1}
    assert fast_decode["device"] == bench.device_name("cpu")
    json.dumps(fast_decode)  # storable as is


def test_decode_cache_growth_per_kind(fast_decode):
    cfg = decode_latency_config()
    by = {k: {r["context_len"]: r["cache_bytes"] for r in fast_decode["rows"] if r["kind"] == k} for k in KINDS}
    # the Transformer's KV cache grows linearly: 2 (K, V) x layers x batch x T x 1 kv head x head_dim x 4 bytes
    head_dim = cfg["d_model"] // cfg["n_heads"]
    for t, nbytes in by["transformer"].items():
        assert nbytes == 2 * cfg["n_layers"] * cfg["batch_size"] * t * head_dim * 4
    assert len(set(by["hawk"].values())) == 1  # constant
    window = cfg["model_options"]["griffin"]["window"]
    g = by["griffin"]
    assert max(g.values()) == g[window] and all(g[t] == g[window] for t in g if t >= window)  # bounded
    assert min(g, key=g.get) < window and g[min(g)] < g[window]  # grows until the window is full
    assert by["transformer"][max(g)] > g[max(g)]


def test_decode_argument_errors_name_the_argument():
    cfg = decode_latency_config()
    for change, name in [({"context_lens": [0]}, "context_lens"), ({"context_lens": []}, "context_lens"),
                         ({"batch_size": 0}, "batch_size"), ({"steps": 0}, "steps"), ({"repeat": 0}, "repeat"),
                         ({"prefill_chunk": 0}, "prefill_chunk"), ({"model_options": ["x"]}, "model_options"),
                         ({"threads": 0}, "threads")]:
        with pytest.raises(ValueError, match=name):
            decode_latency(**{**cfg, **change}, device="cpu", progress=False)
    with pytest.raises(ValueError, match="kinds"):
        decode_latency(("mamba",), **cfg, progress=False)
    with pytest.raises(ValueError, match="kinds"):
        decode_latency(("hawk", "hawk"), **cfg, progress=False)


def test_plot_decode_latency_two_log_log_panels(fast_decode):
    ax_lat, ax_mem = plot_decode_latency(fast_decode)
    for ax in (ax_lat, ax_mem):
        assert sorted(_labels(ax)) == sorted(KINDS)
        assert ax.get_xscale() == ax.get_yscale() == "log"
        assert fast_decode["device"] in ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    plt.close(ax_lat.figure)
    fig, axes = plt.subplots(1, 2)
    assert plot_decode_latency(fast_decode, axes=axes) == tuple(axes)
    plt.close(fig)
    with pytest.raises(ValueError, match="res"):
        plot_decode_latency({"rows": []})
    with pytest.raises(ValueError, match="axes"):
        plot_decode_latency(fast_decode, axes=[1, 2, 3])


# ----------------------------------------------------------------------------------------------
# 2. Length generalization
# ----------------------------------------------------------------------------------------------


def test_length_rows_cover_every_kind_and_length(fast_length):
    cfg = length_generalization_config()
    rows = fast_length["rows"]
    assert [(r["model"], r["eval_len"]) for r in rows] == [(k, n) for k in KINDS for n in sorted(cfg["eval_lens"])]
    for r in rows:
        assert set(r) == {"model", "train_len", "eval_len", "perplexity"}
        assert r["train_len"] == cfg["train_len"] and math.isfinite(r["perplexity"]) and r["perplexity"] > 1
    assert set(fast_length["train"]) == set(KINDS)
    for info in fast_length["train"].values():
        assert info["n_params"] > 0 and math.isfinite(info["final_loss"]) and info["step_time_s"] > 0
    opts = fast_length["config"]["model_options"]
    assert opts["griffin"]["window"] == cfg["train_len"] // 2  # local attention never sees an unseen distance
    assert opts["transformer"]["pos"] == "rope" and opts["transformer"]["n_kv_heads"] == 1
    c = fast_length["config"]
    for n in c["eval_lens"]:  # every length scores the same text, as in run_extrapolation
        assert c["eval_windows"][str(n)] * n == c["eval_tokens"]
    json.dumps(fast_length)


def test_length_result_works_with_the_extrapolation_tools(fast_length):
    rows = result_to_rows(fast_length)
    assert {r["kind"] for r in rows} == {"perplexity", "train"}
    assert {r["model"] for r in rows if r["kind"] == "train"} == set(KINDS)
    ax = plot_extrapolation(fast_length)
    assert [lbl for lbl in _labels(ax) if not lbl.startswith("train length")] == list(KINDS)
    plt.close(ax.figure)
    ax = plot_length_generalization(fast_length, stored={"device": "Test GPU", "date": "2026-01-01", "rows": rows})
    labels = _labels(ax)
    assert [lbl for lbl in labels if lbl in KINDS] == list(KINDS)
    assert sum("(stored: Test GPU" in lbl for lbl in labels) == len(KINDS)
    assert fast_length["device"] in ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert ax.get_xscale() == "log"
    plt.close(ax.figure)
    with pytest.raises(ValueError):
        plot_length_generalization({"rows": []})


def test_length_argument_errors_name_the_argument():
    cfg = length_generalization_config()
    for change, name in [({"train_len": 1}, "train_len"), ({"eval_lens": ()}, "eval_lens"),
                         ({"eval_lens": (16, 0)}, "eval_lens"), ({"steps": 0}, "steps"), ({"lr": 0.0}, "lr"),
                         ({"eval_lens": (16, 10**7)}, "max_bytes"), ({"threads": 0}, "threads"),
                         ({"model_options": {"griffin": 3}}, "model_options"),
                         ({"model_options": {"hawk": {"nope": 1}}}, "model_options")]:
        with pytest.raises(ValueError, match=name):
            run_length_generalization(**{**cfg, **change}, device="cpu", progress=False)
    with pytest.raises(ValueError, match="kinds"):
        run_length_generalization(("transformer", "rwkv"), **cfg, device="cpu", progress=False)


# ----------------------------------------------------------------------------------------------
# 3. MQAR with Hawk and Griffin
# ----------------------------------------------------------------------------------------------


def test_recurrent_families_are_extra_and_the_defaults_unchanged():
    assert RECURRENT_FAMILIES == ("hawk", "griffin")
    assert MODEL_FAMILIES == ("attention", "sliding_window", "linear_elu", "linear_taylor", "based")
    default = model_variants(64, windows=[8], feature_dims=[2], based=[{"feature_dim": 2, "window": 8}])
    assert {v["family"] for v in default} == set(MODEL_FAMILIES)
    rec = model_variants(64, families=RECURRENT_FAMILIES, griffin_windows=[8, 16])
    assert [(v["family"], v["kind"], v["label"]) for v in rec] == [
        ("hawk", "hawk", "hawk"), ("griffin", "griffin", "griffin w=8"), ("griffin", "griffin", "griffin w=16")]
    assert rec[1]["options"] == {"window": 8}
    with pytest.raises(ValueError, match="griffin_windows"):
        model_variants(64, families=("griffin",), griffin_windows=[0])


def test_mqar_recurrent_rows(fast_mqar):
    cfg = mqar_recurrent_config()
    rows = fast_mqar["rows"]
    assert [r["family"] for r in rows] == cfg["families"]
    (seq_len, _), = cfg["settings"]
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["state_bytes"] > 0
        if r["family"] in RECURRENT_FAMILIES:
            opts = dict(r["options"])
            kind = opts.pop("kind")
            assert kind == r["family"]
            model = build_model(kind, vocab_size=cfg["vocab_size"], d_model=cfg["d_model"],
                                n_layers=cfg["n_layers"], n_heads=cfg["n_heads"], **opts)
            assert r["state_bytes"] == model_state_bytes(model, seq_len=seq_len, bytes_per_element=4)
            assert model.config.pattern == (["recurrent"] * 2 if kind == "hawk" else ["recurrent", "attention"])
    assert fast_mqar["config"]["griffin_windows"] == cfg["griffin_windows"]
    json.dumps(fast_mqar["rows"])


def test_mqar_plot_styles_the_recurrent_families(fast_mqar):
    ax = plot_recall_vs_state(fast_mqar)
    labels = _labels(ax)
    assert all(fam in labels for fam in mqar_recurrent_config()["families"])
    hawk = next(line for line in ax.get_lines() if line.get_label() == "hawk")
    griffin = next(line for line in ax.get_lines() if line.get_label() == "griffin")
    assert hawk.get_marker() != griffin.get_marker() and hawk.get_color() != griffin.get_color()
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    plt.close(ax.figure)


def test_mqar_bad_griffin_head_dim_names_it():
    cfg = mqar_recurrent_config()
    with pytest.raises(ValueError, match="griffin"):
        run_mqar_sweep(**{**cfg, "d_model": 12, "n_heads": 2}, progress=False)  # head dim 6
    with pytest.raises(ValueError, match="griffin_windows"):
        run_mqar_sweep(**{**cfg, "griffin_windows": [-1]}, progress=False)


def test_init_qk_touches_only_the_key_half_of_kv_proj():
    model = build_model("griffin", vocab_size=32, d_model=32, n_layers=2, n_heads=2, window=8)
    kv = model.blocks[1].mixer.kv_proj.weight
    before = kv.detach().clone()
    init_qk_(model)
    half = kv.shape[0] // 2
    assert not (kv[:half] == before[:half]).all()  # keys re-initialized
    assert (kv[half:] == before[half:]).all()  # values untouched
    assert 0.1 < kv[:half].std().item() < 0.25  # 1/sqrt(32) = 0.177


# ----------------------------------------------------------------------------------------------
# Stored reference runs, live miniatures, the stored MQAR study, the gates
# ----------------------------------------------------------------------------------------------

from linattn_edu.experiments import recurrent as rec  # noqa: E402
from linattn_edu.experiments import mqar_study, stored  # noqa: E402


def test_griffin_experiments_are_registered_with_their_presets():
    length = stored.experiment("griffin_length")
    assert length.chapter == "06_griffin_hawk" and length.unit_arg == "kinds"
    assert list(length.default_units) == list(KINDS)
    assert length.config is length_generalization_config     # the chapter's presets, not a copy
    gates = stored.experiment("griffin_gates")
    assert gates.unit_arg is None and gates.config is rec.gates_config
    # the reference run is at least the chapter's old live size (train_len 64, d_model 64, 400 steps) ...
    cpu = length_generalization_config("cpu")
    assert cpu["train_len"] >= 64 and cpu["d_model"] >= 64 and cpu["steps"] >= 400 and max(cpu["eval_lens"]) >= 512
    assert rec.gates_config("cpu")["steps"] >= 300
    # ... and the live miniatures are smaller
    mini = length_generalization_config("mini")
    assert mini["steps"] < cpu["steps"] and mini["d_model"] <= cpu["d_model"]
    assert rec.gates_config("mini")["steps"] < rec.gates_config("cpu")["steps"]
    for presets in (rec.LENGTH_PRESETS, rec.GATES_PRESETS):
        assert set(presets) >= {"fast", "mini", "cpu", "gpu"}
    with pytest.raises(ValueError, match="preset"):
        rec.gates_config("huge")


def test_length_unit_alone_equals_the_unit_in_the_whole_run(fast_length):
    """scripts/run_experiment.py trains one kind per call: the result must not depend on the others."""
    alone = run_length_generalization(["hawk"], **length_generalization_config(), device="cpu", progress=False)
    together = [r for r in fast_length["rows"] if r["model"] == "hawk"]
    assert [r["eval_len"] for r in alone["rows"]] == [r["eval_len"] for r in together]
    for a, b in zip(alone["rows"], together):
        assert a["perplexity"] == pytest.approx(b["perplexity"], rel=1e-6)
    merged = stored.merge_results([
        run_length_generalization([k], **length_generalization_config(), device="cpu", progress=False)
        for k in ("transformer", "griffin")])
    assert [r["model"] for r in merged["rows"]][:1] == ["transformer"] and set(merged["train"]) == {"transformer",
                                                                                                    "griffin"}


def test_length_findings(fast_length):
    found = rec.length_findings(fast_length)
    assert list(found) == list(KINDS)
    lens = length_generalization_config()["eval_lens"]
    for kind, f in found.items():
        ppl = {r["eval_len"]: r["perplexity"] for r in fast_length["rows"] if r["model"] == kind}
        assert f["longest"] == max(lens) and f["train_len"] == min(lens)
        assert f["ratio"] == pytest.approx(ppl[max(lens)] / ppl[min(lens)])
    fake = {"rows": [{"model": "m", "eval_len": n, "perplexity": p} for n, p in ((8, 4.0), (16, 2.0), (32, 3.0))],
            "config": {"train_len": 16}}
    assert rec.length_findings(fake)["m"] == {"train_len": 16, "longest": 32, "ppl_train": 2.0, "ppl_longest": 3.0,
                                              "ratio": 1.5}
    with pytest.raises(ValueError, match="result"):
        rec.length_findings({"rows": []})


@pytest.fixture(scope="module")
def fast_gates():
    return rec.run_hawk_gates(**rec.gates_config(), device="cpu", progress=False)


def test_run_hawk_gates_records_the_first_layers_gates(fast_gates):
    g = fast_gates["gates"]
    cfg = rec.gates_config()
    t_len = len(rec.GATES_SNIPPET)
    assert g["text"] == rec.GATES_SNIPPET
    assert len(g["r"]) == len(g["i"]) == t_len and all(len(row) == cfg["channels"] for row in g["r"] + g["i"])
    assert len(g["a"]) == cfg["channels"] and all(0.0 < a < 1.0 for a in g["a"])
    assert all(0.0 <= x <= 1.0 for row in g["r"] + g["i"] for x in row)
    assert 0.0 < g["mean_decay"] < 1.0 and 0.0 < g["mean_decay_init"] < 1.0
    assert fast_gates["rows"] and fast_gates["rows"][-1]["step"] == cfg["steps"]
    assert fast_gates["train"]["n_params"] > 0 and math.isfinite(fast_gates["train"]["final_loss"])
    json.dumps(fast_gates)  # storable as is
    # the same seed gives the same gates (the stored run is reproducible)
    again = rec.run_hawk_gates(**cfg, device="cpu", progress=False)
    import numpy as np

    np.testing.assert_allclose(again["gates"]["r"], g["r"], rtol=1e-6)


def test_plot_hawk_gates_and_errors(fast_gates):
    fig = rec.plot_hawk_gates(fast_gates, title="x")
    assert fig._suptitle.get_text() == "x" and len(fig.axes) >= 3
    plt.close(fig)
    fig = rec.plot_hawk_gates(fast_gates)
    assert "Hawk" in fig._suptitle.get_text()
    plt.close(fig)
    with pytest.raises(ValueError, match="gates"):
        rec.plot_hawk_gates({"rows": []})
    with pytest.raises(ValueError, match="snippet"):
        rec.run_hawk_gates(**rec.gates_config(), snippet="", device="cpu", progress=False)


def _fake_study(accuracy):
    cfg = {"settings": [[32, 4], [64, 8]], "vocab_size": 128, "d_model": 32, "n_heads": 1, "steps": 2,
           "batch_size": 4, "lrs": [1e-3, 1e-2], "n_train": 8, "n_test": 8, "seed": 0, "points": 2,
           "families": list(mqar_study.STUDY_FAMILIES)}
    rows = []
    for job in mqar_study.study_jobs(cfg):
        if job["seq_len"] != 32:  # the second setting is still "running": no rows yet
            continue
        spec = job["_spec"]
        rows.append({k: v for k, v in job.items() if k != "_spec"}
                    | {"dial": spec["dial"], "state_bytes": 100 * spec["dial"],
                       "accuracy": accuracy(job["family"], spec["dial"], job["lr"]), "loss_curve": [1.0, 0.5]})
    return {"config": cfg, "rows": rows}


def test_recurrent_study_keeps_the_shown_families_and_says_what_is_present():
    def accuracy(family, dial, lr):
        if family == "attention":
            return 1.0
        if family == "hawk":
            return 0.05 if lr == 1e-2 else 0.01  # best at the high edge, on the plateau
        return 0.1 * dial / 32 + (0.1 if lr == 1e-3 else 0.0)

    record = _fake_study(accuracy)
    out = rec.recurrent_study(record)
    assert {r["family"] for r in out["rows"]} == set(rec.STUDY_FAMILIES_SHOWN)
    per_setting = 4 * 2 * 2  # families x points x lrs
    assert out["settings"] == [
        {"seq_len": 32, "n_pairs": 4, "done": per_setting, "expected": per_setting, "complete": True},
        {"seq_len": 64, "n_pairs": 8, "done": 0, "expected": per_setting, "complete": False}]
    assert list(out["findings"]) == ["L=32, pairs=4"]
    fams = out["findings"]["L=32, pairs=4"]["families"]
    assert set(fams) == set(rec.STUDY_FAMILIES_SHOWN) and fams["hawk"]["plateau"] and not fams["attention"]["plateau"]
    edge = out["lr_at_edge"]["L=32, pairs=4"]
    assert edge["hawk"] == "high" and edge["griffin"] == "low" and edge["based"] == "low"
    assert rec.recurrent_study(None) == {"rows": [], "settings": [], "findings": {}, "lr_at_edge": {}}
    only = rec.recurrent_study(record, families=["hawk"])
    assert {r["family"] for r in only["rows"]} == {"hawk"} and only["settings"][0]["expected"] == 4
    with pytest.raises(ValueError, match="families"):
        rec.recurrent_study(record, families=["lstm"])


def test_mqar_window_coverage_counts_pairs_inside_the_window():
    from linattn_edu.tasks import make_mqar

    seq_len, n_pairs, vocab = 32, 4, 64
    cover = rec.mqar_window_coverage(seq_len, n_pairs, [1, 4, 9, 17, 32], vocab_size=vocab, n_examples=50, seed=3)
    assert list(cover) == [1, 4, 9, 17, 32]
    assert cover[1] == 0.0  # the value token is never the query itself
    assert cover[32] == 1.0  # a window of the whole sequence covers everything
    assert all(a <= b for a, b in zip(cover.values(), list(cover.values())[1:]))
    # brute force on the same data: the value of the queried key lies among the last w positions
    x, y = make_mqar(50, seq_len=seq_len, n_pairs=n_pairs, vocab_size=vocab, seed=3)
    hits = total = 0
    for row_x, row_y in zip(x, y):
        for p in range(seq_len):
            if row_y[p] == -100:
                continue
            total += 1
            hits += any(row_x[j] == row_y[p] for j in range(max(0, p - 9 + 1), p + 1))
    assert cover[9] == pytest.approx(hits / total)
    with pytest.raises(ValueError, match="windows"):
        rec.mqar_window_coverage(seq_len, n_pairs, [0], vocab_size=vocab)
