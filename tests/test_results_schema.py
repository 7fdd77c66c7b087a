"""One schema for every results file, and results files that a long run can resume."""

from __future__ import annotations

import json

import pytest

from linattn_edu import bench


def test_every_stored_results_file_follows_the_schema():
    files = sorted(bench.RESULTS_DIR.glob("*.json"))
    assert files, "the package ships at least one results file"
    for path in files:
        record = json.loads(path.read_text())
        bench.validate_results(record, path=path)
        assert record["name"] == path.stem, f"{path.name}: name field {record['name']!r} differs from the file name"


def test_new_files_carry_commit_versions_and_wall_time(tmp_path):
    path = bench.save_results("demo", [{"x": 1}], command="python demo.py", config={"a": 1},
                              directory=tmp_path, wall_seconds=2.5)
    record = json.loads(path.read_text())
    bench.validate_results(record, strict=True)
    assert record["wall_seconds"] == 2.5 and record["python"] and record["numpy"]
    assert "git_commit" in record  # None outside a checkout, a sha (maybe +dirty) inside


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.pop("command"), "lacks provenance"),
        (lambda r: r.update(rows={"a": 1}), "'rows' has type"),
        (lambda r: r.update(date="yesterday"), "date must be UTC"),
        (lambda r: r.update(rows=[1, 2]), "not objects"),
        (lambda r: r.update(config="small"), "'config' has type"),
    ],
)
def test_validate_rejects_broken_records(change, message):
    record = bench.provenance("demo", command="c", config={})
    record["rows"] = []
    bench.validate_results(record, strict=True)
    change(record)
    with pytest.raises(ValueError, match=message):
        bench.validate_results(record)


def test_strict_requires_the_later_fields():
    record = {"name": "old", "device": "CPU (x)", "date": "2026-01-01T00:00:00Z", "torch": "2.5",
              "triton": None, "command": "c", "config": {}, "rows": []}
    bench.validate_results(record)
    with pytest.raises(ValueError, match="git_commit"):
        bench.validate_results(record, strict=True)


def test_resumable_results_continue_where_a_run_stopped(tmp_path):
    cfg = {"families": ["a", "b"], "lrs": (1e-3, 3e-3)}
    jobs = [{"family": f, "lr": lr} for f in cfg["families"] for lr in cfg["lrs"]]

    first = bench.ResumableResults("study", command="run", config=cfg, key_fields=("family", "lr"),
                                   directory=tmp_path)
    for job in jobs[:3]:  # interrupted after three of four jobs
        first.add({**job, "acc": 0.5}, seconds=1.0)

    again = bench.ResumableResults("study", command="run", config=cfg, key_fields=("family", "lr"),
                                   directory=tmp_path)
    todo = [job for job in jobs if not again.done(job)]
    assert todo == jobs[3:]
    again.add({**todo[0], "acc": 0.9}, seconds=2.0)
    record = bench.load_results("study", directory=tmp_path)
    bench.validate_results(record, strict=True)
    assert len(record["rows"]) == 4 and record["wall_seconds"] == pytest.approx(5.0)
    assert record["started"] <= record["date"]


def test_resumable_results_refuse_another_config_unless_fresh(tmp_path):
    store = bench.ResumableResults("s", command="c", config={"n": 1}, key_fields=("k",), directory=tmp_path)
    store.add({"k": 1, "v": 0})
    with pytest.raises(ValueError, match="another config"):
        bench.ResumableResults("s", command="c", config={"n": 2}, key_fields=("k",), directory=tmp_path)
    fresh = bench.ResumableResults("s", command="c", config={"n": 2}, key_fields=("k",), directory=tmp_path,
                                   fresh=True)
    assert fresh.rows == [] and not fresh.done({"k": 1})


def test_resumable_results_replace_a_row_with_the_same_key(tmp_path):
    store = bench.ResumableResults("s", command="c", config={}, key_fields=("k",), directory=tmp_path)
    store.add({"k": 1, "v": 0})
    store.add({"k": 1, "v": 1})
    assert store.rows == [{"k": 1, "v": 1}]
    with pytest.raises(ValueError, match="key fields"):
        store.add({"v": 2})
    with pytest.raises(ValueError, match="key_fields"):
        bench.ResumableResults("s", command="c", config={}, key_fields=(), directory=tmp_path)


def test_two_processes_can_fill_one_resumable_file(tmp_path):
    """Two stores on the same file (two shards of one run) keep each other's rows and wall time."""
    cfg = {"grid": [1, 2, 3, 4]}
    a = bench.ResumableResults("shared", command="a", config=cfg, key_fields=("x",), directory=tmp_path)
    b = bench.ResumableResults("shared", command="b", config=cfg, key_fields=("x",), directory=tmp_path)
    a.add({"x": 1}, seconds=1.0)
    b.add({"x": 2}, seconds=2.0)
    a.add({"x": 3}, seconds=3.0)
    b.add({"x": 4}, seconds=4.0)
    record = bench.load_results("shared", directory=tmp_path)
    assert sorted(r["x"] for r in record["rows"]) == [1, 2, 3, 4]
    assert record["wall_seconds"] == 10.0
    c = bench.ResumableResults("shared", command="c", config=cfg, key_fields=("x",), directory=tmp_path, fresh=True)
    c.add({"x": 9}, seconds=0.5)                      # fresh: the old rows are not merged back
    assert [r["x"] for r in bench.load_results("shared", directory=tmp_path)["rows"]] == [9]
