"""The helpers the chapters share (linattn_edu.notebook)."""

from __future__ import annotations

import pytest

from linattn_edu import notebook
from linattn_edu.kernels import basics


def test_show_source_of_a_kernel_and_a_function():
    assert "def best_time(" in notebook.show_source(notebook.best_time).data
    kernels = {n: getattr(basics, n) for n in dir(basics) if hasattr(getattr(basics, n), "fn")}
    assert kernels, "kernels/basics.py defines @triton.jit kernels"
    for name, kernel in kernels.items():
        assert f"def {kernel.fn.__name__}(" in notebook.show_source(kernel).data
    with pytest.raises(TypeError, match="obj must be"):
        notebook.show_source(3)


def test_best_time_is_the_minimum():
    calls = []
    t = notebook.best_time(lambda: calls.append(1), repeat=3)
    assert len(calls) == 4 and t >= 0.0
