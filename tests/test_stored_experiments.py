"""Reference runs (linattn_edu.experiments.stored): resumable unit by unit, merged as if run at once,
loaded by the chapters, rerun live with LINATTN_RETRAIN=1; every registered experiment's stored
cpu run exists, is complete and was made with today's cpu preset."""

from __future__ import annotations

import json

import pytest

from linattn_edu import bench
from linattn_edu.experiments import stored

CALLS: list[str] = []


def fake_run(models=("a", "b", "c"), *, steps=2, fail_on=None, progress=True):
    """A stand-in experiment: one 'model' per name, rows and a per-model dict."""
    rows, train = [], {}
    for m in models:
        if m == fail_on:
            raise RuntimeError(f"interrupted at {m}")
        CALLS.append(m)
        rows += [{"model": m, "step": s, "loss": 1.0 / (s + 1) + len(m)} for s in range(steps)]
        train[m] = {"final": 1.0 / steps}
    return {"rows": rows, "train": train, "config": {"models": list(models), "steps": steps},
            "device": "cpu", "seconds": 0.5 * len(models)}


def fake_config(preset=None):
    return {"models": ["a", "b", "c"], "steps": 3 if preset == "cpu" else 2}


@pytest.fixture
def fake_spec():
    spec = stored.register(stored.StoredExperiment(
        name="fake_experiment", chapter="none", run=fake_run, config=fake_config, unit_arg="models",
        presets=("cpu",), description="test double"))
    CALLS.clear()
    yield spec
    stored.EXPERIMENTS.pop("fake_experiment", None)


def test_merge_equals_one_run(fake_spec):
    parts = [fake_run([m], steps=3) for m in "abc"]
    whole = fake_run("abc", steps=3)
    merged = stored.merge_results(parts, config=whole["config"])
    assert merged["rows"] == whole["rows"]
    assert merged["train"] == whole["train"]
    assert merged["config"] == whole["config"]
    assert merged["seconds"] == pytest.approx(whole["seconds"])
    with pytest.raises(ValueError, match="parts"):
        stored.merge_results([])
    with pytest.raises(ValueError, match="rows"):
        stored.merge_results([{"seconds": 1.0}])


def test_run_stored_resumes_unit_by_unit(fake_spec, tmp_path):
    with pytest.raises(RuntimeError, match="interrupted at b"):
        stored.run_stored("fake_experiment", "cpu", directory=tmp_path, command="test", fail_on="b")
    record = json.loads((tmp_path / "fake_experiment_cpu.json").read_text())
    bench.validate_results(record, strict=True)
    assert [r["unit"] for r in record["rows"]] == ["a"]
    partial = stored.load_stored("fake_experiment", "cpu", directory=tmp_path)
    assert partial["stored"]["complete"] is False and partial["stored"]["units_done"] == 1
    assert "PARTIAL: 1 of 3" in stored.describe(partial)

    CALLS.clear()
    result = stored.run_stored("fake_experiment", "cpu", directory=tmp_path, command="test")
    assert CALLS == ["b", "c"]                        # "a" was not trained again
    assert result["rows"] == fake_run("abc", steps=3)["rows"]
    assert result["stored"]["complete"] and result["stored"]["units_total"] == 3
    assert result["config"]["models"] == ["a", "b", "c"]
    CALLS.clear()
    stored.run_stored("fake_experiment", "cpu", directory=tmp_path, command="test")
    assert CALLS == []                                # a finished run does nothing


def test_run_stored_refuses_another_config(fake_spec, tmp_path):
    stored.run_stored("fake_experiment", "cpu", directory=tmp_path, command="test")
    spec2 = stored.register(stored.StoredExperiment(
        name="fake_experiment", chapter="none", run=fake_run,
        config=lambda preset=None: {"models": ["a"], "steps": 9}, unit_arg="models", presets=("cpu",)))
    with pytest.raises(ValueError, match="another config"):
        stored.run_stored(spec2.name, "cpu", directory=tmp_path, command="test")


def test_reference_run_loads_or_retrains(fake_spec, tmp_path, monkeypatch):
    monkeypatch.delenv(stored.RETRAIN_ENV, raising=False)
    monkeypatch.setattr(stored.runtime, "mode", lambda: "cpu")
    with pytest.warns(UserWarning, match="no stored reference run"):
        live = stored.reference_run("fake_experiment", directory=tmp_path)
    assert live["stored"] is None and "computed live" in stored.describe(live)
    stored.run_stored("fake_experiment", "cpu", directory=tmp_path, command="python make_it.py")
    loaded = stored.reference_run("fake_experiment", directory=tmp_path)
    assert loaded["stored"]["preset"] == "cpu" and "python make_it.py" in stored.describe(loaded)
    CALLS.clear()
    monkeypatch.setenv(stored.RETRAIN_ENV, "1")
    assert stored.retrain()
    again = stored.reference_run("fake_experiment", directory=tmp_path)
    assert again["stored"] is None and CALLS == ["a", "b", "c"]


def test_bad_names():
    with pytest.raises(ValueError, match="name must be one of"):
        stored.experiment("no_such_experiment")
    with pytest.raises(TypeError, match="spec"):
        stored.register({"name": "x"})


def _registered():
    import linattn_edu.experiments  # noqa: F401  (registers every experiment)

    return sorted(n for n in stored.EXPERIMENTS if n != "fake_experiment")


@pytest.mark.parametrize("name", _registered())
def test_every_stored_cpu_run_is_complete_and_current(name):
    """The chapters' reference runs exist, are complete, and were made with today's cpu preset
    (a changed preset makes this fail until the run is redone)."""
    spec = stored.experiment(name)
    record = bench.load_results(f"{name}_cpu")
    assert record is not None, f"no stored run: python scripts/run_experiment.py {name} --preset cpu"
    bench.validate_results(record, strict=True)
    assert record["config"] == json.loads(json.dumps(spec.config("cpu"))), \
        f"{name}_cpu.json was made with another config than today's cpu preset"
    result = stored.load_stored(name, "cpu")
    assert result["stored"]["complete"], stored.describe(result)


def test_label_says_stored_or_live():
    assert stored.label({"stored": {"device": "x"}}) == "stored reference run"
    assert stored.label({"stored": None}) == "reference run, trained live now"
