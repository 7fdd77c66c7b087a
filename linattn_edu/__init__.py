"""linattn_edu: the companion package of the *linattn* book on efficient attention.

Subpackages:

- :mod:`linattn_edu.reference` — NumPy float64 reference code (the source of truth).
- :mod:`linattn_edu.kernels` — Triton kernels with their launchers and PyTorch fallbacks.
  Import it *after* :func:`linattn_edu.runtime.setup` so the Triton interpreter can be enabled on
  CPU-only machines.
- :mod:`linattn_edu.runtime` — device, problem sizes and backend, decided in one place.
- :mod:`linattn_edu.checks` — small helpers the chapters use to compare results.

Importing this package does not import Triton.
"""

from . import reference, runtime

__version__ = "0.1.0"
__all__ = ["reference", "runtime", "__version__"]
