"""The runtime helper: modes, size picking, backend choice, and the interpreter switch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from linattn_edu import runtime


def test_fast_mode_is_on_under_tests():
    assert runtime.mode() == "fast"
    assert runtime.pick(fast=1, cpu=2, gpu=3) == 1


@pytest.mark.parametrize("env,expected", [({"LINATTN_FAST": "0"}, None), ({"LINATTN_FAST": "1"}, "fast")])
def test_mode_follows_environment(monkeypatch, env, expected):
    for key, val in env.items():
        monkeypatch.setenv(key, val)
    want = expected or ("gpu" if torch.cuda.is_available() else "cpu")
    assert runtime.mode() == want
    assert runtime.pick(fast="f", cpu="cpu", gpu="gpu") == {"fast": "f", "cpu": "cpu", "gpu": "gpu"}[want]


def test_force_cpu_hides_the_gpu(monkeypatch):
    monkeypatch.setenv("LINATTN_FORCE_CPU", "1")
    assert runtime.device() == torch.device("cpu")
    assert runtime.cuda_capability() is None
    assert not runtime.triton_compiles()


def test_backend_for_cpu(monkeypatch):
    assert runtime.backend_for(torch.device("cpu"), kernels_interpreted=True) == "interpreter"
    with pytest.warns(UserWarning, match="PyTorch implementation"):
        runtime._warned.clear()
        assert runtime.backend_for(torch.device("cpu"), kernels_interpreted=False) == "torch"


def test_describe_mentions_device_and_mode():
    line = runtime.describe()
    assert "device:" in line and "fast mode" in line


def _run(code: str, **env: str) -> str:
    full_env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET",)}
    full_env.update(env)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU interpreter switch is for machines without a GPU")
def test_setup_turns_on_the_interpreter_before_kernels_are_imported():
    code = (
        "import linattn_edu, sys; from linattn_edu import runtime\n"
        "assert 'triton' not in sys.modules, 'importing linattn_edu must not import triton'\n"
        "runtime.setup()\n"
        "import torch; from linattn_edu.kernels import kernel_backend\n"
        "print('BACKEND', kernel_backend(torch.zeros(1)))\n"
    )
    out = _run(code, LINATTN_FAST="1")
    assert "Triton interpreter" in out and "BACKEND interpreter" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU-only behaviour")
def test_without_interpreter_kernels_fall_back_to_torch_with_one_warning():
    code = (
        "import warnings, torch; warnings.simplefilter('always')\n"
        "from linattn_edu.kernels import flash_attention\n"
        "q = torch.randn(1, 1, 5, 16)\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    flash_attention(q, q, q); flash_attention(q, q, q)\n"
        "print('WARNINGS', sum('PyTorch implementation' in str(x.message) for x in w))\n"
    )
    assert "WARNINGS 1" in _run(code)
