"""Launch configurations of every Triton kernel, chosen per GPU architecture in one place.

Each launcher in :mod:`linattn_edu.kernels` asks this module for its tile sizes, warps and
stages. The choice depends on the *target*: ``None`` for the Triton interpreter (CPU tensors),
or the CUDA compute capability as an int (``80`` for an A100, ``89`` for an L4 or RTX 40,
``90`` for an H100). What varies between GPUs is mainly the shared memory one program may use
(:data:`SHARED_MEMORY_LIMIT`): a tile that fits an H100 can fail on an L4 with Triton's
``OutOfResources``. So the tiles here are chosen from that limit, and
``scripts/aot_compile.py`` compiles every configuration these functions can return, for sm_80,
sm_89 and sm_90, and checks shared memory and register spills (``tests/test_aot_compile.py``
runs a representative subset on every CI run).

GPUs below :data:`linattn_edu.runtime.MIN_CAPABILITY` (sm_75, Colab's T4) never run the
kernels: the runtime takes the PyTorch fallback there.

This module imports nothing from Triton, so it is cheap to import and usable without it.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import torch

__all__ = [
    "AOT_TARGETS",
    "CUDA_GRID_LIMITS",
    "NOMINAL_SM_COUNT",
    "SHARED_MEMORY_LIMIT",
    "assume_target",
    "check_grid",
    "flash_blocks",
    "linear_blocks",
    "linear_max_chunk",
    "shared_memory_limit",
    "sm_count",
    "target_of",
]

#: Shared memory one thread block may use (opt-in maximum, bytes), per compute capability
#: (CUDA C Programming Guide, "Technical Specifications per Compute Capability").
SHARED_MEMORY_LIMIT: dict[int, int] = {
    75: 65_536,  # T4, RTX 20
    80: 166_912,  # A100, A30
    86: 101_376,  # RTX 30, A10, A40
    87: 166_912,  # Jetson Orin
    89: 101_376,  # L4, RTX 40, L40
    90: 232_448,  # H100, H200
}

#: The architectures the ahead-of-time compile test targets: one per shared-memory class of the
#: GPUs that run the kernels (sm_86 has sm_89's limit and the same configurations).
AOT_TARGETS = (80, 89, 90)

#: Streaming multiprocessors of a typical GPU of each architecture (A100, L4, H100 SXM, T4),
#: used only where no device is present (ahead-of-time compilation): launchers that size their
#: grid from the SM count ask the real device otherwise.
NOMINAL_SM_COUNT: dict[int, int] = {75: 40, 80: 108, 86: 84, 87: 16, 89: 58, 90: 132}

#: CUDA's limits on the launch grid: axis 0 up to 2**31 - 1 programs, axes 1 and 2 up to 65535.
CUDA_GRID_LIMITS = (2**31 - 1, 65_535, 65_535)

_ASSUMED: contextvars.ContextVar[int | None] = contextvars.ContextVar("linattn_assumed_target", default=None)


@contextlib.contextmanager
def assume_target(capability: int) -> Iterator[None]:
    """Within the block, launchers configure for compute capability ``capability`` (e.g. ``90``)
    whatever the tensors' device: used to compile every configuration ahead of time on a CPU."""
    token = _ASSUMED.set(int(capability))
    try:
        yield
    finally:
        _ASSUMED.reset(token)


def target_of(device: torch.device) -> int | None:
    """The compute capability (``major * 10 + minor``) the kernels run on for ``device``; None for
    the interpreter (a CPU device). :func:`assume_target` overrides it."""
    assumed = _ASSUMED.get()
    if assumed is not None:
        return assumed
    if device.type != "cuda":
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return 10 * major + minor


def shared_memory_limit(capability: int) -> int:
    """Bytes of shared memory per block on ``capability``; an unknown one gets the smallest limit
    of the GPUs that run the kernels (101,376 B), so its configuration fits everywhere."""
    return SHARED_MEMORY_LIMIT.get(capability, SHARED_MEMORY_LIMIT[89])


def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of ``device`` (nominal ones under :func:`assume_target`)."""
    assumed = _ASSUMED.get()
    if assumed is not None:
        return NOMINAL_SM_COUNT.get(assumed, 108)
    return torch.cuda.get_device_properties(device).multi_processor_count


def check_grid(grid: tuple[int, ...], what: tuple[str, ...]) -> tuple[int, ...]:
    """Return ``grid`` if every axis is within :data:`CUDA_GRID_LIMITS`; else raise ``ValueError``.

    ``what[i]`` says which input size axis ``i`` comes from (e.g. ``"B*H (batch x heads)"``), so
    that the message names the length to reduce.
    """
    for axis, (n, limit, name) in enumerate(zip(grid, CUDA_GRID_LIMITS, what)):
        if n > limit:
            raise ValueError(
                f"{name} needs {n} programs on launch-grid axis {axis}, over CUDA's limit of {limit}; "
                "split the input into smaller pieces"
            )
    return grid


# ----------------------------------------------------------------------------------------------
# Per-kernel choices
# ----------------------------------------------------------------------------------------------


def flash_blocks(capability: int, head_dim: int, dtype: torch.dtype) -> dict:
    """FlashAttention tiles on a GPU: ``{"fwd": {BLOCK_M, BLOCK_N}, "bwd": {...}, "launch": {...},
    "launch_bwd": {...}}``.

    Forward: 128 x 64 tiles for 16-bit inputs up to D = 64; float32 or D = 128 halve them (the
    q, k, v tiles of float32 take twice the bytes and the accumulator twice the registers).
    Backward: 32 x 64 for 16-bit inputs up to D = 64, else 32 x 32; float32 runs it with 8 warps
    instead of 4: its exact IEEE ``tl.dot`` runs on CUDA cores and, with 4 warps, the dK/dV
    kernel spilled 34 KB of registers per thread at D = 128 on sm_80 (4.5 KB with 8 warps;
    about 10 KB on sm_89, the best of the tiles tried). Every choice
    fits 101,376 B of shared memory, the smallest limit of a GPU that runs the kernels; the
    compile test checks sm_80, sm_89 and sm_90 (``capability`` does not change the tiles today).
    """
    wide = head_dim > 64 or dtype == torch.float32
    return {
        "fwd": dict(BLOCK_M=64 if wide else 128, BLOCK_N=32 if wide else 64),
        "bwd": dict(BLOCK_M=32, BLOCK_N=32 if wide else 64),
        "launch": dict(num_warps=4, num_stages=2),
        "launch_bwd": dict(num_warps=8 if dtype == torch.float32 else 4, num_stages=2),
    }


#: Largest kernel chunk size of the chunked linear attention per (element size, shared-memory
#: limit): ``(bytes needed, chunk)`` pairs, largest first. From ``scripts/aot_compile.py``: with
#: 64 x 64 feature/value tiles, chunk 128 of the 16-bit dQ kernel needs 180,224 B of shared memory
#: (over sm_80's 166,912 B and sm_89's 101,376 B) and the kernels spilled 1-41 KB of registers
#: per thread; with 32 x 32 tiles it fits every limit but its 128 x 128 score tile still spills
#: 1-2.7 KB on sm_90, over the budget. float32 at 128 needed 212,992 B (over an A100's limit).
#: So no GPU gets chunk 128 today: the table stays so that a smaller-register kernel can
#: offer it where it fits again.
_LINEAR_CHUNK_CAPS = {4: ((0, 64),), 2: ((0, 64),)}


def linear_max_chunk(capability: int, dtype: torch.dtype) -> int:
    """Largest ``chunk_size`` of the chunked linear-attention kernels on ``capability`` for ``dtype``.

    64 on every GPU today: chunk 128 does not fit the shared memory of sm_80/sm_89 at 64-wide
    tiles and spills registers beyond the budget on every target at 32-wide tiles
    (``linattn_edu/results/aot_compile.json``). The result does not depend on the chunk size.
    """
    size = 4 if dtype == torch.float32 else 2
    limit = shared_memory_limit(capability)
    return next(chunk for need, chunk in _LINEAR_CHUNK_CAPS[size] if limit >= need)


def linear_blocks(capability: int, feature_dim: int, value_dim: int, dtype: torch.dtype) -> dict:
    """Chunked linear attention tiles on a GPU: ``{"blocks": {BLOCK_F, BLOCK_V}, "launch": {...}}``.

    ``BLOCK_F`` and ``BLOCK_V`` are the smallest power of two covering ``F`` and ``Dv``, clamped to
    16..32 (F = 273 runs as 9 tiles of 32, the last one 17/32 used). 64 x 64 tiles spilled
    registers at chunk 64 on sm_80 (3.4 KB per thread in the 16-bit dK/dV kernel, 34 KB in
    float32 with 4 warps), so the state tile is at most 32 x 32. float32 runs with 8 warps: its
    exact IEEE ``tl.dot`` runs on CUDA cores and needs several times the registers of the
    tensor-core 16-bit path (``linattn_edu/results/aot_compile.json``).
    """
    blocks = dict(BLOCK_F=_tile(feature_dim, 32), BLOCK_V=_tile(value_dim, 32))
    return {"blocks": blocks, "launch": dict(num_warps=8 if dtype == torch.float32 else 4, num_stages=2)}


def _tile(n: int, cap: int) -> int:
    """Smallest power of two >= n, clamped to [16, cap] (``tl.dot`` wants sides >= 16)."""
    p = 1 << max(0, int(n) - 1).bit_length()
    return max(16, min(cap, p))
