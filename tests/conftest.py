"""Test set-up: tiny sizes, and the Triton interpreter on machines without a CUDA GPU.

``TRITON_INTERPRET=1`` must be in the environment before Triton decorates any kernel, so it is
set here, before any test module imports :mod:`linattn_edu.kernels`. On a CUDA machine the
kernels are compiled instead (set ``TRITON_INTERPRET=1`` yourself to force the interpreter).
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("LINATTN_FAST", "1")
# pytest -n 2 runs two workers on two cores: one BLAS/OpenMP thread each avoids oversubscription,
# which makes tiny torch ops ~100x slower (spinning threads). Inherited by executed notebooks.
os.environ.setdefault("OMP_NUM_THREADS", "1")
if "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from linattn_edu import runtime  # noqa: E402


@pytest.fixture(scope="session")
def device() -> torch.device:
    """Where kernel tests put their tensors: the GPU when kernels compile, else the CPU."""
    return torch.device("cuda") if runtime.triton_compiles() else torch.device("cpu")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A ``JUPYTER_PATH`` whose ``python3`` kernel runs ``sys.executable``.

    ``JUPYTER_PATH`` comes first in Jupyter's kernel search, ahead of any user-level ``python3``
    kernelspec that might point at another Python.
    """
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python 3 ({sys.prefix})",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    previous = os.environ.get("JUPYTER_PATH")
    return str(root) + (os.pathsep + previous if previous else "")
