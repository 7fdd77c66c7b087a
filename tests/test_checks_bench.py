"""The comparison and measurement helpers the chapters rely on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from linattn_edu import bench
from linattn_edu.checks import check, max_abs_error, tolerance


def test_check_passes_and_prints(capsys):
    err = check(torch.ones(3), np.ones(3) + 1e-7, name="ones")
    assert err == pytest.approx(1e-7, rel=1e-3)
    assert "✓ ones" in capsys.readouterr().out


def test_check_fails_with_worst_position():
    with pytest.raises(AssertionError, match=r"worst at \(1,\)"):
        check(np.array([0.0, 1.0, 0.0]), np.zeros(3))
    with pytest.raises(AssertionError, match="shape"):
        check(np.zeros(3), np.zeros(4))


def test_check_treats_nan_as_failure():
    with pytest.raises(AssertionError):
        check(np.array([np.nan]), np.array([0.0]))


def test_tolerance_per_dtype():
    assert tolerance(torch.float16)[0] > tolerance(torch.float32)[0] > tolerance(torch.float64)[0]
    assert tolerance(np.float64) == tolerance(torch.float64)
    with pytest.raises(ValueError, match="dtype must be one of"):
        tolerance(torch.int32)


def test_max_abs_error():
    assert max_abs_error([1.0, 2.0], [1.5, 2.0]) == 0.5


def test_loglog_slope_recovers_power():
    t = np.array([128, 256, 512, 1024])
    slope, _ = bench.loglog_slope(t, 3e-9 * t**2.0)
    assert slope == pytest.approx(2.0)
    with pytest.raises(ValueError, match="positive"):
        bench.loglog_slope([1, 2], [0, 1])


def test_time_fn_and_peak_memory():
    assert bench.time_fn(lambda: sum(range(1000)), repeat=3) > 0
    peak = bench.peak_memory_bytes(lambda: np.ones((1000, 1000)))
    assert peak >= 8 * 1000 * 1000
    with pytest.raises(ValueError, match="repeat"):
        bench.time_fn(lambda: None, repeat=0)


def test_results_round_trip_with_provenance(tmp_path):
    path = bench.save_results("demo", [{"T": 1, "ms": 2.0}], command="python x.py", config={"D": 64}, directory=tmp_path)
    record = bench.load_results("demo", directory=tmp_path)
    assert record["rows"] == [{"T": 1, "ms": 2.0}]
    assert record["command"] == "python x.py" and record["device"] and record["date"].endswith("Z")
    assert json.loads(path.read_text())["config"] == {"D": 64}
    assert bench.load_results("missing", directory=tmp_path) is None
    (tmp_path / "bad.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="provenance"):
        bench.load_results("bad", directory=tmp_path)
