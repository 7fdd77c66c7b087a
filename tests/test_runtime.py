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


# ----------------------------------------------------------------------------------------------
# Size tiers by GPU capability, the LINATTN_SIZE override, and native-bf16 autocast
# ----------------------------------------------------------------------------------------------


def _fake_gpu(monkeypatch, capability: tuple[int, int], name: str, bf16_native: bool) -> None:
    """Pretend a CUDA GPU of ``capability`` is present (no GPU needed)."""
    monkeypatch.delenv("LINATTN_FAST", raising=False)
    monkeypatch.delenv("LINATTN_SIZE", raising=False)
    monkeypatch.delenv("LINATTN_FORCE_CPU", raising=False)
    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: name)

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return bf16_native or including_emulation  # a T4 says True only through emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)


@pytest.mark.parametrize(
    "capability,name,expected",
    [((7, 5), "Tesla T4", "t4"), ((8, 0), "A100", "gpu"), ((8, 9), "L4", "gpu"), ((9, 0), "H100", "gpu")],
)
def test_mode_follows_the_gpu_capability(monkeypatch, capability, name, expected):
    _fake_gpu(monkeypatch, capability, name, bf16_native=capability >= (8, 0))
    assert runtime.mode() == expected
    assert runtime.pick(fast="f", cpu="c", gpu="g") == {"t4": "c", "gpu": "g"}[expected]
    assert runtime.pick(fast="f", cpu="c", gpu="g", t4="t") == {"t4": "t", "gpu": "g"}[expected]


def test_t4_gets_no_emulated_bf16_and_an_a100_gets_bf16(monkeypatch):
    _fake_gpu(monkeypatch, (7, 5), "Tesla T4", bf16_native=False)
    assert torch.cuda.is_bf16_supported()  # what the old code asked: True through emulation
    assert not runtime.native_bf16(torch.device("cuda"))
    assert runtime.amp_dtype(torch.device("cuda")) is None
    _fake_gpu(monkeypatch, (8, 0), "A100", bf16_native=True)
    assert runtime.amp_dtype(torch.device("cuda")) is torch.bfloat16
    assert runtime.amp_dtype(torch.device("cpu")) is None


def test_native_bf16_on_old_torch_uses_the_capability(monkeypatch):
    _fake_gpu(monkeypatch, (7, 5), "Tesla T4", bf16_native=False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)  # PyTorch < 2.3: no argument
    assert not runtime.native_bf16(torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    assert runtime.native_bf16(torch.device("cuda"))


def test_train_and_the_mqar_sweep_ask_the_runtime_for_autocast():
    """The bf16 decision lives in one function: no trainer calls is_bf16_supported itself."""
    import inspect

    from linattn_edu import train
    from linattn_edu.experiments import mqar_sweep

    for module in (train, mqar_sweep):
        source = inspect.getsource(module)
        assert "is_bf16_supported" not in source
        assert "runtime.amp_dtype(" in source


@pytest.mark.parametrize("tier", ["cpu", "t4", "gpu"])
def test_size_override(monkeypatch, tier):
    _fake_gpu(monkeypatch, (9, 0), "H100", bf16_native=True)
    monkeypatch.setenv("LINATTN_SIZE", tier.upper())
    assert runtime.mode() == tier
    assert runtime.pick(fast=0, cpu=1, gpu=3, t4=2) == {"cpu": 1, "t4": 2, "gpu": 3}[tier]
    monkeypatch.setenv("LINATTN_FAST", "1")  # the tests' tiny sizes still win
    assert runtime.mode() == "fast"


def test_bad_size_override_names_the_variable(monkeypatch):
    monkeypatch.delenv("LINATTN_FAST", raising=False)
    monkeypatch.setenv("LINATTN_SIZE", "huge")
    with pytest.raises(ValueError, match="LINATTN_SIZE"):
        runtime.mode()


def test_t4_falls_back_to_torch_with_one_warning(monkeypatch):
    _fake_gpu(monkeypatch, (7, 5), "Tesla T4", bf16_native=False)
    monkeypatch.setattr(runtime, "interpreter_requested", lambda: False)
    runtime._warned.clear()
    assert not runtime.triton_compiles()
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert runtime.backend_for(torch.device("cuda"), kernels_interpreted=False) == "torch"
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "Tesla T4" in messages[0] and "7.5 < 8.0" in messages[0]
    assert "PyTorch fallback" in runtime.describe() and "t4 mode" in runtime.describe()
