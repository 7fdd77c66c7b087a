"""The kernel catalogue: every Triton kernel of the package beside its PyTorch peer, checked and timed.

:data:`KERNELS` has one :class:`KernelEntry` per Triton entry point and direction (forward, or
forward + backward). Each entry names

- the **kernel** call (a public launcher of :mod:`linattn_edu.kernels`),
- its **peers**: what a PyTorch user would write instead (SDPA for attention, a Python loop for a
  recurrence, a ``torch.cumsum`` closed form, ``F.conv1d``, ``torch.softmax``, ``x + y``), and
  for memory-bound kernels a plain device-to-device **copy** of the same number of bytes, the
  bandwidth ceiling no kernel can beat,
- a **float64 reference**: the package's NumPy reference (:mod:`linattn_edu.reference`) for
  outputs, and float64 autograd through the kernel's PyTorch twin for gradients.

Two functions use the table:

:func:`check_kernels`
    correctness at small shapes: every kernel against the float64 reference and against each
    peer. It runs anywhere: compiled on a CUDA GPU, through the Triton interpreter on a CPU
    (``TRITON_INTERPRET=1`` set before :mod:`linattn_edu.kernels` was imported). Rows carry the
    max abs error and the tolerance it was held to.
:func:`bench_kernels`
    timings on a CUDA GPU only: kernel and peers at a few sizes, with the ratio
    ``peer ms / kernel ms`` (> 1: the kernel is faster), TFLOP/s or GB/s.

This module sits above the layers it compares (reference -> kernels -> models): it imports the
kernels, the references and one model helper (Based's feature map), so it lives beside
:mod:`linattn_edu.experiments`, not inside :mod:`linattn_edu.kernels`, where an import of
:mod:`linattn_edu.models` would run back up the layers.

``scripts/bench_kernels.py`` runs both and stores the GPU results in
``linattn_edu/results/kernels.json``; the book's kernel page shows them.

**Tolerances.** A result in dtype ``dt`` passes when ``max |result - reference| <= tol`` with
``tol = rel(dt) · max(1, max |reference|)``: ``rel`` is ``atol + rtol`` of
:data:`linattn_edu.checks.TOLERANCES` for outputs and :data:`GRAD_TOL` for gradients (sums over
more terms). Kernel and peer are compared with twice the tolerance (both round once).
"""

from __future__ import annotations

import ast
import html
import importlib
import inspect
import math
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import bench, checks, runtime
from . import reference as ref

__all__ = [
    "Peer",
    "KernelEntry",
    "KERNELS",
    "GRAD_TOL",
    "CHECK_SIZES",
    "BENCH_SIZES",
    "RESULTS_NAME",
    "entries",
    "discover_launchers",
    "catalog_rows",
    "check_kernels",
    "failed",
    "bench_kernels",
    "copy_ms",
    "alibi_causal_bias",
    "load_kernel_results",
    "format_table",
    "html_table",
    "plot_check",
    "plot_ratios",
]

#: Name of the results file :func:`bench_kernels` results are stored under (``results/kernels.json``).
RESULTS_NAME = "kernels"

#: Relative tolerance of gradients (as in the kernel tests): they sum over more terms than outputs.
GRAD_TOL: dict[torch.dtype, float] = {
    torch.float64: 1e-9,
    torch.float32: 1e-4,
    torch.float16: 1e-2,
    torch.bfloat16: 5e-2,
}

#: Size presets of :func:`check_kernels`: ``"tiny"`` (the tests), ``"small"`` (a CPU, the
#: interpreter), ``"gpu"`` (real sizes, compiled).
CHECK_SIZES = ("tiny", "small", "gpu")
#: Size presets of :func:`bench_kernels`: ``"live"`` (one size each, for a notebook), ``"quick"``
#: (two sizes, about two minutes in all), ``"full"``.
BENCH_SIZES = ("live", "quick", "full")

#: Default dtypes of :func:`check_kernels` per size preset.
_CHECK_DTYPES: dict[str, tuple[torch.dtype, ...]] = {
    "tiny": (torch.float32,),
    "small": (torch.float32, torch.float16),
    "gpu": (torch.float32, torch.float16, torch.bfloat16),
}

Inputs = dict[str, Any]
Shape = dict[str, int]


def _kernels() -> Any:
    """The :mod:`linattn_edu.kernels` package, looked up at call time (so tests can monkeypatch it)."""
    return importlib.import_module("linattn_edu.kernels")


# ----------------------------------------------------------------------------------------------
# The table's types
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """What a kernel is compared with.

    Attributes:
        name: short label, e.g. ``"SDPA"``, ``"PyTorch loop"``, ``"copy"``.
        call: the PyTorch code it runs, for the catalogue table.
        cost: its asymptotic cost in time and memory, in words.
        fn: ``fn(inputs) -> output`` computing the kernel's output (the same shape). None for the
            ``copy`` bandwidth ceiling, which is timed on a byte buffer and never compared.
        prepare: untimed set-up, ``prepare(inputs) -> inputs`` (e.g. materializing a mask or a
            padded copy); it must not depend on tensors that receive gradients.
        specialize: for the correctness check only: ``specialize(inputs) -> inputs`` on which the
            peer computes the kernel's function (e.g. ``a = 1`` for ``torch.cumsum``, milder
            decays for a closed form that overflows otherwise). The kernel is re-run on them.
        loop: a Python loop over time (``T`` launches per call): timed with few repetitions and
            only up to ``max_loop_len`` steps.
        max_elements: skip the timing when its largest temporary (``temp_elements(shape)``)
            holds more elements than this.
        temp_elements: elements of its largest temporary, from the shape.
        same_math: False for a timing reference that computes a different function (e.g. SDPA
            without the ALiBi bias): timed, never compared.
    """

    name: str
    call: str
    cost: str
    fn: Callable[[Inputs], torch.Tensor] | None
    prepare: Callable[[Inputs], Inputs] | None = None
    specialize: Callable[[Inputs], Inputs] | None = None
    loop: bool = False
    max_elements: int | None = None
    temp_elements: Callable[[Shape], int] | None = None
    same_math: bool = True

    @property
    def is_ceiling(self) -> bool:
        """True for the ``copy`` bandwidth ceiling (timed on a byte buffer, never compared)."""
        return self.fn is None

    @property
    def compared(self) -> bool:
        """True when :func:`check_kernels` compares the kernel with this peer (same function)."""
        return self.fn is not None and self.same_math


@dataclass(frozen=True)
class KernelEntry:
    """One Triton entry point in one direction, with its peers, reference, sizes and work.

    Attributes:
        launcher: the public function of :mod:`linattn_edu.kernels` that launches the kernel.
        variant: ``"causal"``, ``"ALiBi"``, ``"window"`` or ``""``.
        direction: ``"fwd"`` or ``"fwd+bwd"``.
        family: ``"attention"``, ``"linear"``, ``"scan"``, ``"conv"``, ``"add"`` or ``"softmax"``.
        chapter: the book page that builds it (a ``{doc}`` target, e.g. ``"02_triton_flash_attention"``).
        computes: what it computes, one line.
        cost: the kernel's asymptotic cost.
        reference: the float64 reference it is checked against, in words.
        peers: what it is compared with (:class:`Peer` objects).
        make_inputs: ``make_inputs(shape, dtype, device, generator) -> inputs`` (a dict).
        kernel: ``kernel(inputs) -> output``: calls the launcher.
        reference_np: float64 NumPy reference, ``reference_np(numpy_inputs) -> output``.
        twin: the PyTorch twin, differentiable, run in float64 for the gradients' reference.
        grad_inputs: names of the inputs that receive gradients (``"fwd+bwd"``).
        work: ``work(shape, dtype) -> (unit, amount)``: ``("flops", n)`` or ``("bytes", n)``.
        shape_label: the shape key plotted on the x axis (``"T"``, ``"N"``, ...).
        check_shapes: one shape per :data:`CHECK_SIZES` preset.
        bench_shapes: a list of shapes per :data:`BENCH_SIZES` preset.
        bench_dtypes: dtypes timed in the ``"live"``/``"quick"`` and in the ``"full"`` presets.
        notes: extra remarks for the table (e.g. what the work counts).
    """

    launcher: str
    variant: str
    direction: str
    family: str
    chapter: str
    computes: str
    cost: str
    reference: str
    peers: tuple[Peer, ...]
    make_inputs: Callable[[Shape, torch.dtype, torch.device, torch.Generator], Inputs]
    kernel: Callable[[Inputs], torch.Tensor]
    reference_np: Callable[[dict[str, Any]], np.ndarray]
    twin: Callable[[Inputs], torch.Tensor]
    grad_inputs: tuple[str, ...]
    work: Callable[[Shape, torch.dtype], tuple[str, float]]
    shape_label: str
    check_shapes: dict[str, Shape]
    bench_shapes: dict[str, list[Shape]]
    bench_dtypes: dict[str, tuple[torch.dtype, ...]]
    notes: str = ""
    used_in: tuple[str, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        """``"flash_attention (causal) fwd+bwd"``: launcher, variant, direction."""
        variant = f" ({self.variant})" if self.variant else ""
        return f"{self.launcher}{variant} {self.direction}"

    @property
    def metric(self) -> str:
        """``"TFLOP/s"`` for compute-bound kernels, ``"GB/s"`` for memory-bound ones."""
        return "TFLOP/s" if self.work(self.check_shapes["tiny"], torch.float32)[0] == "flops" else "GB/s"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _shape_str(shape: Shape) -> str:
    return " ".join(f"{k}={v}" for k, v in shape.items())


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """What the PyTorch peers accumulate in: float64 for float64, else float32 (like the twins)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _elt(dtype: torch.dtype) -> int:
    return torch.empty(0, dtype=dtype).element_size()


# ----------------------------------------------------------------------------------------------
# Attention: flash_attention (causal, ALiBi, window) against SDPA
# ----------------------------------------------------------------------------------------------


def _attention_inputs(shape: Shape, dtype: torch.dtype, device: torch.device, gen: torch.Generator) -> Inputs:
    """``q, k, v``: ``(B, H, T, D)`` standard normal; ``slopes`` ``(H,)`` float32; ``window``."""
    b, h, t, d = shape["B"], shape["H"], shape["T"], shape["D"]
    q, k, v = (torch.randn(b, h, t, d, generator=gen, device=device).to(dtype) for _ in range(3))
    slopes = torch.tensor(ref.alibi_slopes(h), dtype=torch.float32, device=device)
    return {"q": q, "k": k, "v": v, "slopes": slopes, "window": shape.get("W")}


def _visible_pairs(t: int, window: int | None) -> int:
    """(query, key) pairs a causal (windowed) attention computes: ``Σ_i min(i + 1, w)``."""
    if window is None or window >= t:
        return t * (t + 1) // 2
    return window * (window + 1) // 2 + (t - window) * window


def _attention_work(bwd: bool) -> Callable[[Shape, torch.dtype], tuple[str, float]]:
    def work(shape: Shape, dtype: torch.dtype) -> tuple[str, float]:
        """``4·B·H·D·pairs`` (two matmuls over the visible pairs); the backward counts 2.5x."""
        fwd = 4.0 * shape["B"] * shape["H"] * shape["D"] * _visible_pairs(shape["T"], shape.get("W"))
        return "flops", fwd * (3.5 if bwd else 1.0)

    return work


def alibi_causal_bias(slopes: Any, seq_len: int, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """``(H, T, T)`` additive mask for SDPA: ``-m_h (i - j)`` for ``j <= i``, ``-inf`` above the diagonal.

    ``slopes``: ``(H,)`` ALiBi slopes (tensor or array). Built one head at a time (a float32
    ``(T, T)`` distance matrix, cast per head), so no float32 ``(H, T, T)`` temporary is needed.
    Also used by ``scripts/bench_alibi.py``.
    """
    pos = torch.arange(seq_len, device=device)
    dist = (pos[:, None] - pos[None, :]).to(torch.float32)  # i - j, (T, T)
    future = dist < 0
    bias = torch.empty(len(slopes), seq_len, seq_len, dtype=dtype, device=device)
    for h in range(len(slopes)):
        bias[h] = (-float(slopes[h]) * dist).masked_fill(future, float("-inf")).to(dtype)
    return bias


def _alibi_causal_mask(inp: Inputs) -> Inputs:
    """Add ``mask``: :func:`alibi_causal_bias` for the inputs' slopes, length, dtype and device."""
    q = inp["q"]
    return {**inp, "mask": alibi_causal_bias(inp["slopes"], q.shape[2], q.dtype, q.device)}


def _window_mask(inp: Inputs) -> Inputs:
    """Add ``mask``: ``(T, T)`` bool, True where query ``i`` sees key ``j``: ``i - w < j <= i``."""
    t, w = inp["q"].shape[2], inp["window"]
    pos = torch.arange(t, device=inp["q"].device)
    diff = pos[:, None] - pos[None, :]
    return {**inp, "mask": (diff >= 0) & (diff < w)}


def _attention_entries() -> list[KernelEntry]:
    check = {
        "tiny": dict(B=1, H=2, T=24, D=16),
        "small": dict(B=1, H=2, T=40, D=32),
        "gpu": dict(B=2, H=8, T=1024, D=64),
    }

    def sizes(ts: Iterable[int], w: int | None = None) -> list[Shape]:
        out = []
        for t in ts:  # B·T = 16384 tokens and H·D = 1024, as the chapter-2 benchmark keeps the work per call
            s = dict(B=max(1, 16384 // t), H=16, T=t, D=64)
            if w is not None:
                s["W"] = w
            out.append(s)
        return out

    def with_window(shapes: dict[str, Shape], w: dict[str, int]) -> dict[str, Shape]:
        return {k: {**v, "W": w[k]} for k, v in shapes.items()}

    sdpa_cost = "O(T²·D) FLOPs (causal: half), O(T·D) memory: a fused FlashAttention-2 or cuDNN kernel on recent GPUs"
    sdpa = Peer(
        "SDPA",
        "F.scaled_dot_product_attention(q, k, v, is_causal=True)",
        sdpa_cost,
        lambda i: F.scaled_dot_product_attention(i["q"], i["k"], i["v"], is_causal=True),
    )
    materialized = Peer(
        "PyTorch, scores materialized",
        "flash_attention_torch(q, k, v): softmax(q kᵀ·scale + mask) v",
        "O(T²·D) FLOPs, O(B·H·T²) memory for the scores",
        lambda i: _kernels().flash_attention_torch(i["q"], i["k"], i["v"], causal=True),
        max_elements=2**31,
        temp_elements=lambda s: s["B"] * s["H"] * s["T"] ** 2,
    )
    sdpa_plain = Peer(
        "SDPA, no mask",
        "F.scaled_dot_product_attention(q, k, v, is_causal=True): plain causal, a timing reference",
        "O(T²·D) FLOPs (causal: half), O(T·D) memory; a different function: what the fused kernel costs without the bias or band",
        lambda i: F.scaled_dot_product_attention(i["q"], i["k"], i["v"], is_causal=True),
        same_math=False,
    )
    sdpa_alibi = Peer(
        "SDPA + bias",
        "F.scaled_dot_product_attention(q, k, v, attn_mask=bias): bias (H, T, T) with ALiBi and -inf above the diagonal",
        "O(T²·D) FLOPs plus reading an (H, T, T) bias: O(H·T²) memory; an arbitrary float mask rules out the fastest fused backend",
        lambda i: F.scaled_dot_product_attention(i["q"], i["k"], i["v"], attn_mask=i["mask"]),
        prepare=_alibi_causal_mask,
        max_elements=2**32,
        temp_elements=lambda s: s["H"] * s["T"] ** 2,
    )
    sdpa_window = Peer(
        "SDPA + mask",
        "F.scaled_dot_product_attention(q, k, v, attn_mask=visible): visible (T, T) bool band",
        "O(T²·D) FLOPs: the mask hides entries but every tile is still computed, plus an O(T²) mask",
        lambda i: F.scaled_dot_product_attention(i["q"], i["k"], i["v"], attn_mask=i["mask"]),
        prepare=_window_mask,
        max_elements=2**32,
        temp_elements=lambda s: s["T"] ** 2,
    )

    def kernel(variant: str) -> Callable[[Inputs], torch.Tensor]:
        if variant == "ALiBi":
            return lambda i: _kernels().flash_attention(i["q"], i["k"], i["v"], causal=True, alibi_slopes=i["slopes"])
        if variant == "window":
            return lambda i: _kernels().flash_attention(i["q"], i["k"], i["v"], causal=True, window=i["window"])
        return lambda i: _kernels().flash_attention(i["q"], i["k"], i["v"], causal=True)

    def ref_np(variant: str) -> Callable[[dict[str, Any]], np.ndarray]:
        if variant == "ALiBi":
            return lambda i: ref.alibi_attention(i["q"], i["k"], i["v"], causal=True, slopes=i["slopes"])
        if variant == "window":
            return lambda i: ref.softmax_attention(i["q"], i["k"], i["v"], causal=True, window=i["window"])
        return lambda i: ref.softmax_attention(i["q"], i["k"], i["v"], causal=True)

    def twin(variant: str) -> Callable[[Inputs], torch.Tensor]:
        return lambda i: _kernels().flash_attention_torch(
            i["q"], i["k"], i["v"], causal=True,
            alibi_slopes=i["slopes"] if variant == "ALiBi" else None,
            window=i["window"] if variant == "window" else None,
        )

    specs = [
        ("causal", "02_triton_flash_attention", ("03_alibi",),
         "exact causal softmax attention, tile by tile with an online softmax (FlashAttention-2)",
         "O(T²·D) FLOPs (half the tiles), O(T·D) memory: the T x T scores are never stored",
         "reference.softmax_attention", (sdpa, materialized), check,
         {"live": sizes([2048]), "quick": sizes([1024, 4096]), "full": sizes([1024, 2048, 4096, 8192])}),
        ("ALiBi", "03_alibi", ("05_based",),
         "causal attention with the ALiBi bias -m_h (i - j) computed inside the kernel from positions",
         "O(T²·D) FLOPs, O(T·D) memory: no T x T bias tensor",
         "reference.alibi_attention", (sdpa_alibi, sdpa_plain), check,
         {"live": sizes([2048]), "quick": sizes([1024, 4096]), "full": sizes([1024, 2048, 4096, 8192])}),
        ("window", "02_triton_flash_attention", ("05_based",),
         "causal sliding-window attention: query i sees keys i - w < j <= i; tiles outside the band are skipped",
         "O(T·w·D) FLOPs: linear in T",
         "reference.softmax_attention(window=w)", (sdpa_window, sdpa_plain),
         with_window(check, {"tiny": 9, "small": 13, "gpu": 128}),
         {"live": sizes([4096], 256), "quick": sizes([1024, 4096], 256), "full": sizes([1024, 2048, 4096, 8192], 256)}),
    ]
    entries_: list[KernelEntry] = []
    for variant, chapter, used_in, computes, cost, ref_name, peers, check_shapes, bench_shapes in specs:
        for direction in ("fwd", "fwd+bwd"):
            bwd = direction == "fwd+bwd"
            entries_.append(KernelEntry(
                launcher="flash_attention", variant=variant, direction=direction, family="attention",
                chapter=chapter, used_in=used_in, computes=computes, cost=cost,
                reference=f"{ref_name} (NumPy, float64)" + ("; gradients: float64 autograd of flash_attention_torch" if bwd else ""),
                peers=peers, make_inputs=_attention_inputs, kernel=kernel(variant), reference_np=ref_np(variant),
                twin=twin(variant), grad_inputs=("q", "k", "v"), work=_attention_work(bwd), shape_label="T",
                check_shapes=check_shapes, bench_shapes=bench_shapes,
                bench_dtypes={"quick": (torch.float16,), "full": (torch.float16, torch.bfloat16)},
                notes="FLOPs 4·B·H·D·(visible pairs); the backward counts 2.5x the forward",
            ))
    return entries_


# ----------------------------------------------------------------------------------------------
# Linear attention: chunked_linear_attention against a loop, a cumsum and the parallel form
# ----------------------------------------------------------------------------------------------

_EPS = 1e-6


def _linear_inputs(shape: Shape, dtype: torch.dtype, device: torch.device, gen: torch.Generator) -> Inputs:
    """``q, k``: ``(B, H, T, F)`` Based Taylor features of ``d``-dim inputs (``F = 1 + d + d²``); ``v``: ``(B, H, T, Dv)``."""
    from .models.linear import feature_map_torch

    b, h, t, d, dv = shape["B"], shape["H"], shape["T"], shape["d"], shape["Dv"]
    q, k = (feature_map_torch(torch.randn(b, h, t, d, generator=gen, device=device), "taylor").to(dtype)
            for _ in range(2))
    v = torch.randn(b, h, t, dv, generator=gen, device=device).to(dtype)
    return {"q": q, "k": k, "v": v, "chunk": shape["C"]}


def _linear_work(bwd: bool) -> Callable[[Shape, torch.dtype], tuple[str, float]]:
    def work(shape: Shape, dtype: torch.dtype) -> tuple[str, float]:
        """Nominal FLOPs of the recurrent form: ``4·B·H·T·F·(Dv + 1)`` (state update and readout, normalizer included)."""
        f = 1 + shape["d"] + shape["d"] ** 2
        fwd = 4.0 * shape["B"] * shape["H"] * shape["T"] * f * (shape["Dv"] + 1)
        return "flops", fwd * (3.0 if bwd else 1.0)

    return work


def linear_attention_loop(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, eps: float = _EPS) -> torch.Tensor:
    """Causal normalized linear attention as a Python loop of :func:`~linattn_edu.kernels.linear_attention_step`.

    q, k: ``(B, H, T, F)`` feature-mapped; v: ``(B, H, T, Dv)``. Returns ``(B, H, T, Dv)`` in q's
    dtype. ``T`` sequential steps of a few small ops each: the recurrent form, as a decoder runs it.
    """
    step = _kernels().linear_attention_step
    state = None
    outs = []
    for t in range(q.shape[2]):
        o, state = step(q[:, :, t], k[:, :, t], v[:, :, t], state, eps=eps)
        outs.append(o)
    return torch.stack(outs, dim=2)


def linear_attention_cumsum(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, eps: float = _EPS) -> torch.Tensor:
    """Causal normalized linear attention through ``torch.cumsum`` of outer products.

    ``S_t = cumsum_t(k_t v_tᵀ)`` ``(B, H, T, F, Dv)``, ``z_t = cumsum_t(k_t)``, ``o_t = q_tᵀ S_t / (q_t·z_t + eps)``.
    Every state is materialized: ``O(T·F·Dv)`` memory. Computes in float32 (float64 stays float64).
    """
    c = _compute_dtype(q.dtype)
    q_, k_, v_ = q.to(c), k.to(c), v.to(c)
    s = torch.cumsum(k_[..., :, None] * v_[..., None, :], dim=2)
    z = torch.cumsum(k_, dim=2)
    num = torch.einsum("bhtf,bhtfd->bhtd", q_, s)
    return (num / ((q_ * z).sum(-1, keepdim=True) + eps)).to(q.dtype)


def linear_attention_parallel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, eps: float = _EPS) -> torch.Tensor:
    """Causal normalized linear attention in its parallel form: ``A = tril(q kᵀ)``, ``o = A v / rowsum(A)``.

    ``O(T²·(F + Dv))`` FLOPs and a ``(B, H, T, T)`` matrix, like softmax attention without the
    softmax. Computes in float32 (float64 stays float64).
    """
    c = _compute_dtype(q.dtype)
    q_, k_, v_ = q.to(c), k.to(c), v.to(c)
    a = torch.tril(q_ @ k_.transpose(-1, -2))
    return ((a @ v_) / (a.sum(-1, keepdim=True) + eps)).to(q.dtype)


def _linear_entries() -> list[KernelEntry]:
    loop = Peer(
        "PyTorch loop", "linear_attention_step(q_t, k_t, v_t, state) for t in range(T)",
        "O(T·F·Dv) FLOPs in T sequential steps of ~8 small ops each (launch-bound on a GPU)",
        lambda i: linear_attention_loop(i["q"], i["k"], i["v"]), loop=True,
    )
    cumsum = Peer(
        "cumsum of outer products", "S = torch.cumsum(k[..., :, None] * v[..., None, :], dim=2); o = q S / (q·z)",
        "O(T·F·Dv) FLOPs and O(T·F·Dv) memory: every state is stored",
        lambda i: linear_attention_cumsum(i["q"], i["k"], i["v"]),
        max_elements=2**31, temp_elements=lambda s: s["B"] * s["H"] * s["T"] * (1 + s["d"] + s["d"] ** 2) * s["Dv"],
    )
    parallel = Peer(
        "parallel form", "A = torch.tril(q @ k.transpose(-1, -2)); o = A @ v / A.sum(-1)",
        "O(T²·(F + Dv)) FLOPs, O(B·H·T²) memory: quadratic, like softmax attention",
        lambda i: linear_attention_parallel(i["q"], i["k"], i["v"]),
        max_elements=2**31, temp_elements=lambda s: s["B"] * s["H"] * s["T"] ** 2,
    )
    chunked = Peer(
        "PyTorch chunked", "chunked_linear_attention_torch(q, k, v, chunk_size=C)",
        "the kernel's FLOPs, O((T/C)·F·Dv) memory: all chunk states at once",
        lambda i: _kernels().chunked_linear_attention_torch(i["q"], i["k"], i["v"], chunk_size=i["chunk"]),
    )
    check = {
        "tiny": dict(B=1, H=2, T=24, d=4, Dv=16, C=16),
        "small": dict(B=1, H=2, T=40, d=8, Dv=24, C=16),
        "gpu": dict(B=2, H=4, T=1024, d=16, Dv=64, C=64),
    }

    def sizes(bt: Iterable[tuple[int, int]]) -> list[Shape]:
        return [dict(B=b, H=8, T=t, d=16, Dv=64, C=64) for b, t in bt]

    bench_shapes = {"live": sizes([(2, 2048)]), "quick": sizes([(4, 1024), (1, 4096)]),
                    "full": sizes([(8, 1024), (4, 2048), (2, 4096), (1, 8192)])}
    out = []
    for direction in ("fwd", "fwd+bwd"):
        bwd = direction == "fwd+bwd"
        out.append(KernelEntry(
            launcher="chunked_linear_attention", variant="", direction=direction, family="linear",
            chapter="04_linear_attention", used_in=("05_based",),
            computes="causal normalized linear attention on feature-mapped q, k (F = 273 for Based), chunk by chunk, state on chip",
            cost="O(T·C·(F + Dv) + T·F·Dv) FLOPs, O(F·Dv) state per program, T/C sequential steps",
            reference="reference.linear_attention(feature_map='identity') (NumPy, float64)"
                      + ("; gradients: float64 autograd of chunked_linear_attention_torch" if bwd else ""),
            peers=(loop, cumsum, parallel, chunked), make_inputs=_linear_inputs,
            kernel=lambda i: _kernels().chunked_linear_attention(i["q"], i["k"], i["v"], chunk_size=i["chunk"]),
            reference_np=lambda i: ref.linear_attention(i["q"], i["k"], i["v"], feature_map="identity", eps=_EPS),
            twin=lambda i: _kernels().chunked_linear_attention_torch(i["q"], i["k"], i["v"], chunk_size=i["chunk"]),
            grad_inputs=("q", "k", "v"), work=_linear_work(bwd), shape_label="T",
            check_shapes=check, bench_shapes=bench_shapes,
            bench_dtypes={"quick": (torch.float16,), "full": (torch.float16, torch.bfloat16)},
            notes="q, k: Based's Taylor features of d-dim inputs, F = 1 + d + d²; nominal FLOPs 4·B·H·T·F·(Dv + 1), backward 2x",
        ))
    return out


# ----------------------------------------------------------------------------------------------
# Scan and causal conv1d: memory-bound, judged against a copy
# ----------------------------------------------------------------------------------------------


def _scan_inputs(shape: Shape, dtype: torch.dtype, device: torch.device, gen: torch.Generator) -> Inputs:
    """``a``: ``(B, T, C)`` decays in [0.5, 1); ``b``: ``(B, T, C)`` standard normal."""
    b, t, c = shape["B"], shape["T"], shape["C"]
    a = (0.5 + 0.5 * torch.rand(b, t, c, generator=gen, device=device)).to(dtype)
    x = torch.randn(b, t, c, generator=gen, device=device).to(dtype)
    return {"a": a, "b": x}


def linear_scan_closed_form(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``h_t = a_t·h_{t-1} + b_t`` (``h_{-1} = 0``) by log-space cumulative sums, no loop.

    With ``L_t = Σ_{s≤t} log a_s``: ``h_t = exp(L_t) · Σ_{s≤t} exp(-L_s)·b_s``, two ``torch.cumsum``
    and a few elementwise passes. a, b: ``(B, T, C)`` with ``a > 0``; returns ``h`` in a's dtype,
    computed in float32. Exact in exact arithmetic, but ``exp(-L_s)`` overflows float32 once the
    decays multiply below ``e^-88``: fine for short or slowly decaying sequences only.
    """
    c = _compute_dtype(a.dtype)
    log_decay = torch.cumsum(torch.log(a.to(c)), dim=1)
    return (torch.exp(log_decay) * torch.cumsum(torch.exp(-log_decay) * b.to(c), dim=1)).to(a.dtype)


def _mild_decays(inp: Inputs) -> Inputs:
    """``a ← a^(32/T)`` when ``T > 32``: the decays multiply to at least ``0.5^32`` over the sequence,
    so the closed form's ``exp(-L)`` stays within float32 (the kernel is re-run on the same inputs)."""
    a = inp["a"]
    t = a.shape[1]
    if t <= 32:
        return inp
    return {**inp, "a": (a.to(_compute_dtype(a.dtype)) ** (32.0 / t)).to(a.dtype)}


def _scan_work(bwd: bool) -> Callable[[Shape, torch.dtype], tuple[str, float]]:
    def work(shape: Shape, dtype: torch.dtype) -> tuple[str, float]:
        """Bytes: read a, b and write h (3 arrays) plus h_last; the backward reads a, h, dh and writes da, db (5 more)."""
        n = shape["B"] * shape["T"] * shape["C"]
        return "bytes", float((8 if bwd else 3) * n * _elt(dtype) + 4 * shape["B"] * shape["C"])

    return work


def _conv_inputs(shape: Shape, dtype: torch.dtype, device: torch.device, gen: torch.Generator) -> Inputs:
    """``x``: ``(B, T, C)``; ``w``: ``(C, K)``; ``bias``: ``(C,)``."""
    b, t, c, k = shape["B"], shape["T"], shape["C"], shape["K"]
    x = torch.randn(b, t, c, generator=gen, device=device).to(dtype)
    w = (0.5 * torch.randn(c, k, generator=gen, device=device)).to(dtype)
    bias = torch.randn(c, generator=gen, device=device).to(dtype)
    return {"x": x, "w": w, "bias": bias}


def _conv_work(bwd: bool) -> Callable[[Shape, torch.dtype], tuple[str, float]]:
    def work(shape: Shape, dtype: torch.dtype) -> tuple[str, float]:
        """Bytes: read x, write y (2 arrays); the backward reads x, dy and writes dx (3 more). Taps not counted."""
        n = shape["B"] * shape["T"] * shape["C"]
        return "bytes", float((5 if bwd else 2) * n * _elt(dtype))

    return work


def _padded_channels_first(inp: Inputs) -> Inputs:
    """Add ``x_padded``: ``(B, C, K - 1 + T)``, the layout ``F.conv1d`` wants, and ``w3``: ``(C, 1, K)``."""
    k = inp["w"].shape[1]
    return {**inp, "x_padded": F.pad(inp["x"].transpose(1, 2), (k - 1, 0)).contiguous(),
            "w3": inp["w"][:, None, :].contiguous()}


_COPY = Peer(
    "copy", "dst.copy_(src) moving the same number of bytes",
    "the bytes the kernel must move, read once and written once: the bandwidth ceiling", None,
)


def _scan_conv_entries() -> list[KernelEntry]:
    loop = Peer(
        "PyTorch loop", "linear_scan_torch(a, b): h = a[:, t] * h + b[:, t] for t in range(T)",
        "O(T·C) work in T sequential steps of 2 small ops (launch-bound on a GPU)",
        lambda i: _kernels().linear_scan_torch(i["a"], i["b"])[0], loop=True,
    )
    closed = Peer(
        "log-space cumsum", "L = torch.cumsum(log(a), 1); h = exp(L) * torch.cumsum(exp(-L) * b, 1)",
        "O(T·C) in ~7 elementwise passes and 2 library scans; overflows float32 once the decays multiply below e^-88",
        lambda i: linear_scan_closed_form(i["a"], i["b"]), specialize=_mild_decays,
    )
    plain_cumsum = Peer(
        "torch.cumsum", "torch.cumsum(b, dim=1): the special case a = 1",
        "O(T·C), one fused library scan moving 2/3 of the bytes (no a)",
        lambda i: torch.cumsum(i["b"], dim=1), specialize=lambda i: {**i, "a": torch.ones_like(i["a"])},
    )
    conv_layer = Peer(
        "F.conv1d layer", "causal_conv1d_torch(x, w, bias): transpose, pad K - 1, F.conv1d(groups=C), transpose back",
        "O(T·C·K) FLOPs plus ~3 extra passes over the data (transposes and padding)",
        lambda i: _kernels().causal_conv1d_torch(i["x"], i["w"], i["bias"]),
    )
    conv_bare = Peer(
        "F.conv1d", "F.conv1d(x_padded, w[:, None, :], bias, groups=C) on a pre-padded (B, C, K-1+T) input",
        "O(T·C·K) FLOPs, one pass, in F.conv1d's own channels-first layout",
        lambda i: F.conv1d(i["x_padded"], i["w3"], i["bias"], groups=i["x"].shape[2]).transpose(1, 2),
        prepare=_padded_channels_first,
    )
    scan_check = {"tiny": dict(B=1, T=20, C=32), "small": dict(B=2, T=37, C=40), "gpu": dict(B=4, T=2048, C=1024)}
    conv_check = {k: {**v, "K": 4} for k, v in scan_check.items()}
    scan_bench = {"live": [dict(B=8, T=2048, C=2048)],
                  "quick": [dict(B=8, T=2048, C=2048), dict(B=2, T=8192, C=2048)],
                  "full": [dict(B=8, T=2048, C=2048), dict(B=16, T=4096, C=2048),
                           dict(B=4, T=8192, C=4096), dict(B=1, T=16384, C=2560)]}
    conv_bench = {k: [{**s, "K": 4} for s in v] for k, v in scan_bench.items()}
    dtypes = {"quick": (torch.float32,), "full": (torch.float32, torch.bfloat16)}
    out = []
    for direction in ("fwd", "fwd+bwd"):
        bwd = direction == "fwd+bwd"
        out.append(KernelEntry(
            launcher="linear_scan", variant="", direction=direction, family="scan",
            chapter="06_griffin_hawk", computes="the linear recurrence h_t = a_t·h_{t-1} + b_t per channel (Griffin's RG-LRU)",
            cost="O(T·C) work, one read of a and b and one write of h: memory-bound",
            reference="reference.linear_scan (NumPy loop, float64)"
                      + ("; gradients: float64 autograd of linear_scan_torch" if bwd else ""),
            peers=(loop, closed, _COPY) if bwd else (loop, closed, plain_cumsum, _COPY),
            make_inputs=_scan_inputs, kernel=lambda i: _kernels().linear_scan(i["a"], i["b"])[0],
            reference_np=lambda i: ref.linear_scan(i["a"], i["b"])[0],
            twin=lambda i: _kernels().linear_scan_torch(i["a"], i["b"])[0],
            grad_inputs=("a", "b"), work=_scan_work(bwd), shape_label="T",
            check_shapes=scan_check, bench_shapes=scan_bench, bench_dtypes=dtypes,
            notes="bytes: 3·B·T·C·elt forward (a, b, h), 8·B·T·C·elt forward + backward",
        ))
    for direction in ("fwd", "fwd+bwd"):
        bwd = direction == "fwd+bwd"
        out.append(KernelEntry(
            launcher="causal_conv1d", variant="", direction=direction, family="conv",
            chapter="06_griffin_hawk", used_in=("07_linearized_llms",),
            computes="causal depthwise convolution y_t = bias + Σ_k w[:, k]·x_{t-K+1+k} (K = 4)",
            cost="O(T·C·K) FLOPs, one read of x and one write of y: memory-bound",
            reference="reference.causal_conv1d (NumPy, float64)"
                      + ("; gradients: float64 autograd of causal_conv1d_torch" if bwd else ""),
            peers=(conv_layer, _COPY) if bwd else (conv_layer, conv_bare, _COPY),
            make_inputs=_conv_inputs, kernel=lambda i: _kernels().causal_conv1d(i["x"], i["w"], i["bias"]),
            reference_np=lambda i: ref.causal_conv1d(i["x"], i["w"], i["bias"]),
            twin=lambda i: _kernels().causal_conv1d_torch(i["x"], i["w"], i["bias"]),
            grad_inputs=("x", "w", "bias"), work=_conv_work(bwd), shape_label="T",
            check_shapes=conv_check, bench_shapes=conv_bench, bench_dtypes=dtypes,
            notes="bytes: 2·B·T·C·elt forward (x, y), 5·B·T·C·elt forward + backward; the K taps are re-read from cache",
        ))
    return out


# ----------------------------------------------------------------------------------------------
# The two warm-up kernels of Chapter 2
# ----------------------------------------------------------------------------------------------


def _basics_entries() -> list[KernelEntry]:
    def add_inputs(shape: Shape, dtype: torch.dtype, device: torch.device, gen: torch.Generator) -> Inputs:
        """``x``, ``y``: ``(N,)`` standard normal."""
        return {n: torch.randn(shape["N"], generator=gen, device=device).to(dtype) for n in ("x", "y")}

    def softmax_inputs(shape: Shape, dtype: torch.dtype, device: torch.device, gen: torch.Generator) -> Inputs:
        """``x``: ``(M, N)``, normal with standard deviation 3 (rows with a clear maximum)."""
        return {"x": (3 * torch.randn(shape["M"], shape["N"], generator=gen, device=device)).to(dtype)}

    add = KernelEntry(
        launcher="vector_add", variant="", direction="fwd", family="add", chapter="02_triton_flash_attention",
        computes="elementwise x + y, one program per block of 1024 elements",
        cost="O(N), 3·N elements moved: memory-bound",
        reference="x + y in float64 (NumPy)",
        peers=(Peer("torch x + y", "x + y", "O(N), the same 3·N elements", lambda i: i["x"] + i["y"]), _COPY),
        make_inputs=add_inputs, kernel=lambda i: _kernels().vector_add(i["x"], i["y"]),
        reference_np=lambda i: i["x"] + i["y"], twin=lambda i: i["x"] + i["y"], grad_inputs=(),
        work=lambda s, dt: ("bytes", float(3 * s["N"] * _elt(dt))), shape_label="N",
        check_shapes={"tiny": dict(N=1000), "small": dict(N=5003), "gpu": dict(N=2**22 + 3)},
        bench_shapes={"live": [dict(N=2**26)], "quick": [dict(N=2**22), dict(N=2**27)],
                      "full": [dict(N=2**18), dict(N=2**22), dict(N=2**26), dict(N=2**28)]},
        bench_dtypes={"quick": (torch.float32,), "full": (torch.float32, torch.float16)},
        notes="bytes: 3·N·elt (read x, y; write the sum)",
    )
    softmax = KernelEntry(
        launcher="row_softmax", variant="", direction="fwd", family="softmax", chapter="02_triton_flash_attention",
        computes="numerically stable softmax of each row, one program per row, in float32",
        cost="O(M·N), one read and one write: memory-bound",
        reference="reference.softmax (NumPy, float64)",
        peers=(Peer("torch.softmax", "torch.softmax(x, dim=-1)", "O(M·N), one read and one write (a fused CUDA kernel)",
                    lambda i: torch.softmax(i["x"], dim=-1)), _COPY),
        make_inputs=softmax_inputs, kernel=lambda i: _kernels().row_softmax(i["x"]),
        reference_np=lambda i: ref.softmax(i["x"], axis=-1), twin=lambda i: torch.softmax(i["x"], dim=-1), grad_inputs=(),
        work=lambda s, dt: ("bytes", float(2 * s["M"] * s["N"] * _elt(dt))), shape_label="N",
        check_shapes={"tiny": dict(M=8, N=50), "small": dict(M=16, N=300), "gpu": dict(M=1024, N=4000)},
        bench_shapes={"live": [dict(M=4096, N=4096)], "quick": [dict(M=8192, N=1024), dict(M=2048, N=16384)],
                      "full": [dict(M=16384, N=512), dict(M=8192, N=2048), dict(M=4096, N=8192), dict(M=2048, N=32768)]},
        bench_dtypes={"quick": (torch.float16,), "full": (torch.float32, torch.float16)},
        notes="bytes: 2·M·N·elt (read x, write the softmax)",
    )
    return [add, softmax]


#: The catalogue: one entry per Triton entry point and direction.
#:
#: :meta hide-value:
KERNELS: tuple[KernelEntry, ...] = tuple(
    _basics_entries() + _attention_entries() + _linear_entries() + _scan_conv_entries()
)


def entries(names: str | Sequence[str] | None = None) -> list[KernelEntry]:
    """Entries of :data:`KERNELS` selected by name (``"flash_attention (ALiBi) fwd"``) or launcher
    (``"flash_attention"``: all its entries); None selects every entry.

    Raises:
        ValueError: a name that matches no entry (the message lists the valid ones).
    """
    if names is None:
        return list(KERNELS)
    if isinstance(names, str):
        names = [names]
    picked: list[KernelEntry] = []
    for n in names:
        found = [e for e in KERNELS if n in (e.name, e.launcher)]
        if not found:
            valid = sorted({e.launcher for e in KERNELS} | {e.name for e in KERNELS})
            raise ValueError(f"names: {n!r} matches no catalogue entry; valid: {valid}")
        picked += [e for e in found if e not in picked]
    return picked


# ----------------------------------------------------------------------------------------------
# Discovering the Triton launchers, so a new kernel without an entry is noticed
# ----------------------------------------------------------------------------------------------


def _module_launches(tree: ast.Module) -> dict[str, set[str]]:
    """Per top-level name of a module: the ``@jit`` kernels it launches (``kernel[grid](...)``),
    directly or through other top-level names of the same module."""
    jit_kernels = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                dec_name = dec.attr if isinstance(dec, ast.Attribute) else getattr(dec, "id", None)
                if dec_name == "jit":
                    jit_kernels.add(node.name)
    refs: dict[str, set[str]] = {}
    launches: dict[str, set[str]] = {}
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            continue
        names, launched = set(), set()
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                names.add(sub.id)
            if (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Subscript)
                    and isinstance(sub.func.value, ast.Name) and sub.func.value.id in jit_kernels):
                launched.add(sub.func.value.id)
        refs[node.name] = names
        launches[node.name] = launched
    closure: dict[str, set[str]] = {}
    for start in refs:
        seen, todo, found = {start}, [start], set()
        while todo:
            cur = todo.pop()
            found |= launches.get(cur, set())
            for nxt in refs.get(cur, ()):
                if nxt in refs and nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        closure[start] = found
    return closure


def discover_launchers() -> dict[str, list[str]]:
    """The public Triton launchers of :mod:`linattn_edu.kernels`: ``{launcher: [kernels it launches]}``.

    Reads the source of every submodule: a *launcher* is a name in the
    submodule's ``__all__`` whose code, or the module-level code it refers to, launches a
    ``@jit`` kernel with ``kernel[grid](...)``. PyTorch twins, configs and decode steps launch
    nothing and are not listed.
    """
    pkg = _kernels()
    found: dict[str, list[str]] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("__"):
            continue
        module = __import__(f"{pkg.__name__}.{info.name}", fromlist=["__all__"])
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):  # pragma: no cover - source not shipped
            continue
        closure = _module_launches(ast.parse(source))
        for name in getattr(module, "__all__", []):
            if closure.get(name):
                found[name] = sorted(closure[name])
    return dict(sorted(found.items()))


# ----------------------------------------------------------------------------------------------
# The catalogue as a table
# ----------------------------------------------------------------------------------------------


def catalog_rows(selected: Sequence[KernelEntry] | None = None) -> list[dict[str, str]]:
    """One row per entry: kernel, chapter, what it computes, its cost, peers and what they cost.

    Returns a list of dicts with keys ``kernel``, ``chapter``, ``computes``, ``kernel cost``,
    ``peers`` (``name: call``, one per line), ``peer cost`` (one per line), ``reference``, ``metric``.
    """
    rows = []
    for e in selected if selected is not None else KERNELS:
        rows.append({
            "kernel": e.name,
            "chapter": e.chapter,
            "computes": e.computes,
            "kernel cost": e.cost,
            "peers": "\n".join(f"{p.name}: {p.call}" for p in e.peers),
            "peer cost": "\n".join(f"{p.name}: {p.cost}" for p in e.peers),
            "reference": e.reference,
            "metric": e.metric,
        })
    return rows


# ----------------------------------------------------------------------------------------------
# Correctness
# ----------------------------------------------------------------------------------------------


def _default_device() -> torch.device:
    return torch.device("cuda") if runtime.triton_compiles() else torch.device("cpu")


def _run(entry: KernelEntry, fn: Callable[[Inputs], torch.Tensor], inputs: Inputs,
         grad_out: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """``{"out": ...}`` for a forward entry; with the gradients ``{"d<name>": ...}`` for fwd+bwd."""
    if entry.direction == "fwd":
        with torch.no_grad():
            return {"out": fn(inputs)}
    leaves = {k: (v.detach().clone().requires_grad_(True) if k in entry.grad_inputs else v) for k, v in inputs.items()}
    out = fn(leaves)
    grads = torch.autograd.grad(out, [leaves[n] for n in entry.grad_inputs], grad_out.to(out.dtype))
    return {"out": out.detach(), **{f"d{n}": g for n, g in zip(entry.grad_inputs, grads)}}


def _as(inputs: Inputs, dtype: torch.dtype) -> Inputs:
    return {k: (v.detach().to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
            for k, v in inputs.items()}


def _numpy(inputs: Inputs) -> dict[str, Any]:
    return {k: (checks.to_numpy(v) if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}


def _worst(got: dict[str, torch.Tensor], want: dict[str, Any], rel: dict[str, float],
           factor: float = 1.0) -> tuple[float, float, str]:
    """``(max abs error, its tolerance, tensor name)`` of the tensor worst relative to its tolerance."""
    worst = (0.0, 1.0, "out")
    ratio = -1.0
    for key, expected in want.items():
        e = checks.to_numpy(expected)
        err = checks.max_abs_error(got[key], e)
        tol = factor * rel[key] * max(1.0, float(np.max(np.abs(e))) if e.size else 1.0)
        if not math.isfinite(err):
            err = math.inf
        if err / tol > ratio:
            ratio, worst = err / tol, (err, tol, key)
    return worst


def check_kernels(
    names: str | Sequence[str] | None = None,
    *,
    size: str | None = None,
    dtypes: Sequence[torch.dtype] | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
    echo: bool = False,
) -> list[dict[str, Any]]:
    """Check every kernel against its float64 reference and against each of its peers.

    For every selected entry and dtype: make inputs of the ``size`` preset's shape, run the
    kernel (forward, or forward + backward against a random output gradient), compare the output
    with the NumPy float64 reference and the gradients with float64 autograd through the PyTorch
    twin, then compare the kernel with every peer (on the peer's ``specialize`` inputs when it has
    them). Nothing is timed.

    Args:
        names: entries to check (see :func:`entries`); None checks the whole catalogue.
        size: one of :data:`CHECK_SIZES`; None picks by :func:`linattn_edu.runtime.mode`
            (``"tiny"`` with ``LINATTN_FAST=1``, ``"small"`` on a CPU, ``"gpu"`` on a GPU whose
            kernels compile).
        dtypes: dtypes to check (float32, float16, bfloat16); None: the preset's defaults.
        device: where the tensors live; None: the GPU when the kernels compile there, else the CPU.
        seed: seed of the random inputs.
        echo: print one ``✓``/``✗`` line per row as it is computed.

    Returns:
        One dict per (entry, dtype) with ``kernel``, ``launcher``, ``direction``, ``dtype``,
        ``shape``, ``backend``, ``reference``, ``max_abs_err`` and ``tol`` (vs the reference,
        for the tensor worst relative to its tolerance, named in ``worst``), ``peers``,
        ``max_abs_err_vs_peers``, ``peer_tol``, ``worst_peer``, ``err_over_tol`` (the largest
        error/tolerance ratio of the row) and ``ok``.

    Raises:
        ValueError: an unknown ``names`` entry, ``size`` or ``dtypes`` value.
        RuntimeError: CPU tensors while the Triton interpreter is off (the kernels would run as
            PyTorch fallbacks and the check would test nothing).
    """
    selected = entries(names)
    dev = _default_device() if device is None else torch.device(device)
    if size is None:
        size = "tiny" if runtime.fast_mode() else ("gpu" if dev.type == "cuda" and runtime.mode() == "gpu" else "small")
    if size not in CHECK_SIZES:
        raise ValueError(f"size must be one of {CHECK_SIZES}, got {size!r}")
    dts = tuple(_CHECK_DTYPES[size] if dtypes is None else dtypes)
    for dt in dts:
        if dt not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"dtypes must hold float32, float16 or bfloat16, got {dt}")
    backend = _kernels().kernel_backend(torch.zeros(1, device=dev))
    if backend == "torch":
        raise RuntimeError(
            f"the Triton kernels cannot run on {dev.type} tensors here (backend 'torch'): on a CPU set "
            "TRITON_INTERPRET=1 (or call linattn_edu.runtime.setup()) before importing linattn_edu.kernels"
        )
    rows = []
    for entry in selected:
        shape = entry.check_shapes[size]
        for dt in dts:
            gen = torch.Generator(device=dev).manual_seed(seed)
            inputs = entry.make_inputs(shape, dt, dev, gen)
            grad_out = None
            got = None
            if entry.direction == "fwd+bwd":
                with torch.no_grad():
                    probe = entry.twin(_as(inputs, torch.float64))
                grad_out = torch.randn(probe.shape, generator=gen, device=dev).to(dt)
            got = _run(entry, entry.kernel, inputs, grad_out)
            want: dict[str, Any] = {"out": entry.reference_np(_numpy(inputs))}
            rel = {"out": sum(checks.tolerance(dt))}
            if entry.direction == "fwd+bwd":
                twin64 = _run(entry, entry.twin, _as(inputs, torch.float64), grad_out.double())
                for n in entry.grad_inputs:
                    want[f"d{n}"] = twin64[f"d{n}"]
                    rel[f"d{n}"] = GRAD_TOL[dt]
            err, tol, worst = _worst(got, want, rel)
            peer_err, peer_tol, worst_peer, peer_ratio = 0.0, 0.0, "", 0.0
            for peer in entry.peers:
                if not peer.compared:
                    continue
                p_inputs = peer.specialize(inputs) if peer.specialize else inputs
                mine = got if peer.specialize is None else _run(entry, entry.kernel, p_inputs, grad_out)
                if peer.prepare is not None:
                    p_inputs = peer.prepare(p_inputs)
                theirs = _run(entry, peer.fn, p_inputs, grad_out)
                e, t, which = _worst(theirs, mine, rel, factor=2.0)
                if e / t >= peer_ratio:
                    peer_err, peer_tol, worst_peer, peer_ratio = e, t, f"{peer.name} ({which})", e / t
            row = {
                "kernel": entry.name, "launcher": entry.launcher, "direction": entry.direction,
                "dtype": _dtype_name(dt), "shape": _shape_str(shape), "backend": backend,
                "reference": entry.reference, "max_abs_err": err, "tol": tol, "worst": worst,
                "peers": ", ".join(p.name for p in entry.peers if p.compared),
                "max_abs_err_vs_peers": peer_err, "peer_tol": peer_tol, "worst_peer": worst_peer,
                "err_over_tol": max(err / tol, peer_ratio),
                "ok": bool(err <= tol and peer_ratio <= 1.0),
            }
            rows.append(row)
            if echo:
                mark = "✓" if row["ok"] else "✗"
                print(f"{mark} {entry.name:<38} {row['dtype']:<8} max|err| {err:.2e} (tol {tol:.1e}, {worst}); "
                      f"vs peers {peer_err:.2e} (tol {peer_tol:.1e}, {worst_peer})", flush=True)
    return rows


def failed(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of :func:`check_kernels` that did not pass."""
    return [r for r in rows if not r.get("ok", False)]


# ----------------------------------------------------------------------------------------------
# Timing (CUDA only)
# ----------------------------------------------------------------------------------------------


def copy_ms(nbytes: float, device: torch.device, timer: Callable[[Callable[[], Any]], float]) -> float:
    """Milliseconds of ``dst.copy_(src)`` that reads and writes ``nbytes`` bytes in all (half each way)."""
    n = max(1, int(nbytes) // 2)
    src = torch.empty(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    return timer(lambda: dst.copy_(src))


def _do_bench_timer(quick: bool) -> Callable[[Callable[[], Any]], float]:
    import triton.testing

    warmup, rep = (5, 25) if quick else (25, 100)

    def timer(fn: Callable[[], Any]) -> float:
        return float(triton.testing.do_bench(fn, warmup=warmup, rep=rep, return_mode="median"))

    timer.description = f"triton.testing.do_bench(warmup={warmup}, rep={rep}, return_mode='median'), ms"  # type: ignore[attr-defined]
    return timer


def _timed_call(entry: KernelEntry, fn: Callable[[Inputs], torch.Tensor], inputs: Inputs,
                grad_out: torch.Tensor | None) -> Callable[[], Any]:
    """A no-argument closure running ``fn`` once (forward under no_grad, or forward + backward)."""
    if entry.direction == "fwd":
        def run() -> Any:
            with torch.no_grad():
                return fn(inputs)
        return run
    leaves = {k: (v.detach().clone().requires_grad_(True) if k in entry.grad_inputs else v) for k, v in inputs.items()}
    wrt = [leaves[n] for n in entry.grad_inputs]

    def run_bwd() -> Any:
        out = fn(leaves)
        return torch.autograd.grad(out, wrt, grad_out)

    return run_bwd


def bench_kernels(
    names: str | Sequence[str] | None = None,
    *,
    size: str = "quick",
    dtypes: Sequence[torch.dtype] | None = None,
    timer: Callable[[Callable[[], Any]], float] | None = None,
    loop_timer: Callable[[Callable[[], Any]], float] | None = None,
    max_loop_len: int = 2048,
    seed: int = 0,
    echo: bool = False,
) -> list[dict[str, Any]]:
    """Time every kernel and its peers on a CUDA GPU; one row per (entry, shape, dtype, peer).

    Kernels and peers are timed with :func:`triton.testing.do_bench` (median ms after warm-up;
    it clears the L2 cache between runs); Python-loop peers with :func:`linattn_edu.bench.time_fn`
    (3 runs, median), and only up to ``max_loop_len`` time steps. A peer that needs more memory
    than its limit, or fails, is recorded as skipped with the reason. Correctness is not checked
    here: run :func:`check_kernels` first (``scripts/bench_kernels.py`` does).

    Args:
        names: entries (see :func:`entries`); None: all.
        size: one of :data:`BENCH_SIZES`: ``"live"`` one shape per entry, ``"quick"`` two,
            ``"full"`` four.
        dtypes: None: each entry's own (``bench_dtypes``; ``"full"`` adds bf16 or fp16).
        timer: ``timer(fn) -> ms``; None: ``do_bench`` (shorter runs for ``"live"``/``"quick"``).
        loop_timer: the timer of Python-loop peers; None: ``bench.time_fn(warmup=1, repeat=3)``.
        max_loop_len: longest sequence on which a loop peer is timed.
        seed: seed of the random inputs.
        echo: print each row as it is measured.

    Returns:
        Rows with ``kernel``, ``launcher``, ``direction``, ``family``, ``dtype``, ``shape``,
        ``x_name``/``x`` (the size plotted), ``ms`` (kernel), ``metric`` (``"TFLOP/s"`` or
        ``"GB/s"``), ``work`` (FLOPs or bytes), ``rate`` (kernel's TFLOP/s or GB/s), ``peer``,
        ``peer_call``, ``peer_ms``, ``peer_rate``, ``ratio`` (``peer_ms / ms``: > 1 means the
        kernel is faster; for ``copy`` the fraction of the bandwidth ceiling reached), ``skipped``
        (None or why the peer was not timed) and ``device``.

    Raises:
        RuntimeError: no CUDA GPU on which the Triton kernels compile (compute capability >= 8.0).
        ValueError: a bad ``names``, ``size``, ``dtypes`` or ``max_loop_len``.
    """
    if size not in BENCH_SIZES:
        raise ValueError(f"size must be one of {BENCH_SIZES}, got {size!r}")
    if isinstance(max_loop_len, bool) or not isinstance(max_loop_len, int) or max_loop_len < 0:
        raise ValueError(f"max_loop_len must be an int >= 0, got {max_loop_len!r}")
    if dtypes is not None:
        for dt in dtypes:
            if dt not in (torch.float32, torch.float16, torch.bfloat16):
                raise ValueError(f"dtypes must hold float32, float16 or bfloat16, got {dt}")
    selected = entries(names)
    if not runtime.triton_compiles():
        raise RuntimeError(
            "bench_kernels needs a CUDA GPU on which the Triton kernels compile (compute capability >= 8.0); "
            f"here: {runtime.describe()}. On a CPU, run check_kernels() (correctness through the interpreter) "
            "or load the stored GPU results with load_kernel_results()."
        )
    timer = timer or _do_bench_timer(quick=size != "full")
    return _bench(selected, size=size, dtypes=dtypes, device=torch.device("cuda"), timer=timer,
                  loop_timer=loop_timer, max_loop_len=max_loop_len, seed=seed, echo=echo)


def _bench(
    selected: Sequence[KernelEntry],
    *,
    size: str,
    dtypes: Sequence[torch.dtype] | None,
    device: torch.device,
    timer: Callable[[Callable[[], Any]], float],
    loop_timer: Callable[[Callable[[], Any]], float] | None,
    max_loop_len: int,
    seed: int,
    echo: bool,
) -> list[dict[str, Any]]:
    """The timing loop of :func:`bench_kernels`, on any ``device`` (the tests run it on a CPU with
    tiny shapes through the interpreter to exercise the code; only CUDA timings mean anything)."""
    dev = device
    if loop_timer is None:
        def loop_timer(fn: Callable[[], Any]) -> float:
            return 1e3 * bench.time_fn(fn, warmup=1, repeat=3, device=dev)
    device_name = bench.device_name(dev)
    rows: list[dict[str, Any]] = []
    for entry in selected:
        dts = tuple(dtypes) if dtypes is not None else entry.bench_dtypes["full" if size == "full" else "quick"]
        for shape in entry.bench_shapes[size]:
            for dt in dts:
                gen = torch.Generator(device=dev).manual_seed(seed)
                inputs = entry.make_inputs(shape, dt, dev, gen)
                grad_out = None
                if entry.direction == "fwd+bwd":
                    with torch.no_grad():
                        grad_out = torch.randn_like(entry.kernel(inputs))
                unit, amount = entry.work(shape, dt)
                scale = 1e12 if unit == "flops" else 1e9
                ms = timer(_timed_call(entry, entry.kernel, inputs, grad_out))
                for peer in entry.peers:
                    skipped = None
                    peer_ms = None
                    if peer.loop and shape.get("T", 0) > max_loop_len:
                        skipped = f"Python loop not timed above T = {max_loop_len}"
                    elif peer.max_elements and peer.temp_elements and peer.temp_elements(shape) > peer.max_elements:
                        skipped = f"needs a temporary of {peer.temp_elements(shape):.2e} elements (> {peer.max_elements:.1e})"
                    else:
                        try:
                            if peer.is_ceiling:
                                peer_ms = copy_ms(amount, dev, timer)
                            else:
                                p_inputs = peer.prepare(inputs) if peer.prepare else inputs
                                call = _timed_call(entry, peer.fn, p_inputs, grad_out)
                                peer_ms = (loop_timer if peer.loop else timer)(call)
                        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:  # noqa: PERF203
                            skipped = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
                        finally:
                            torch.cuda.empty_cache()
                    row = {
                        "kernel": entry.name, "launcher": entry.launcher, "direction": entry.direction,
                        "family": entry.family, "dtype": _dtype_name(dt), "shape": _shape_str(shape),
                        "x_name": entry.shape_label, "x": shape[entry.shape_label],
                        "ms": ms, "metric": entry.metric, "work": amount, "rate": amount / (ms * 1e-3) / scale,
                        "peer": peer.name, "peer_call": peer.call, "peer_ms": peer_ms,
                        "peer_rate": None if peer_ms is None else amount / (peer_ms * 1e-3) / scale,
                        "ratio": None if peer_ms is None else peer_ms / ms,
                        "skipped": skipped, "device": device_name,
                    }
                    rows.append(row)
                    if echo:
                        theirs = f"{peer_ms:9.3f} ms  ratio {row['ratio']:6.2f}" if peer_ms is not None else f"skipped: {skipped}"
                        print(f"{entry.name:<34} {row['dtype']:<8} {row['shape']:<32} ours {ms:9.3f} ms "
                              f"{row['rate']:8.1f} {entry.metric:<7} | {peer.name:<28} {theirs}", flush=True)
                del inputs, grad_out
                torch.cuda.empty_cache()
    return rows


def load_kernel_results(name: str = RESULTS_NAME, *, directory: Path | None = None) -> dict[str, Any] | None:
    """The stored GPU results (``results/<name>.json``, written by ``scripts/bench_kernels.py``), or None.

    The record holds ``device``, ``date``, ``torch``, ``triton``, ``command``, ``config`` (which
    includes the GPU correctness rows under ``"correctness"``) and the timing ``rows`` of
    :func:`bench_kernels`.
    """
    return bench.load_results(name, directory=directory)


# ----------------------------------------------------------------------------------------------
# Tables and plots
# ----------------------------------------------------------------------------------------------

#: Default columns of the check and timing tables.
CHECK_COLUMNS = ("kernel", "dtype", "shape", "backend", "max_abs_err", "tol", "worst",
                 "max_abs_err_vs_peers", "worst_peer", "ok")
#: Default columns of the timing tables.
BENCH_COLUMNS = ("kernel", "dtype", "shape", "ms", "peer", "peer_ms", "ratio", "metric", "rate", "peer_rate", "skipped")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if not math.isfinite(value):
            return str(value)
        mag = abs(value)
        return f"{value:.2e}" if mag < 1e-2 or mag >= 1e5 else f"{value:.3g}"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, *, header: bool = True) -> str:
    """A fixed-width text table of ``rows`` (dicts): the given ``columns``, or every key of the first row.

    Floats get 3 significant digits (scientific notation below 0.01), booleans ``✓``/``✗``,
    None ``-``. Multi-line cells are joined with ``"; "``.
    """
    if not rows:
        return "(no rows)"
    cols = list(columns) if columns is not None else list(rows[0].keys())
    cells = [[_fmt(r.get(c)).replace("\n", "; ") for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = []
    if header:
        lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
        lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def html_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, *, caption: str | None = None) -> str:
    """The same table as HTML (for ``IPython.display.HTML``); newlines in cells become line breaks."""
    if not rows:
        return "<p>(no rows)</p>"
    cols = list(columns) if columns is not None else list(rows[0].keys())
    out = ['<table class="table">']
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr></thead><tbody>")
    for r in rows:
        cells = (html.escape(_fmt(r.get(c))).replace("\n", "<br>") for c in cols)
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def plot_check(rows: Sequence[dict[str, Any]], *, ax: Any = None, title: str | None = None) -> Any:
    """Horizontal bars of ``max |error| / tolerance`` per check row (log scale; < 1 passes).

    Returns the matplotlib ``Axes``.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.28 * len(rows) + 1.2))
    labels = [f"{r['kernel']} · {r['dtype']}" for r in rows]
    vs_ref = [max(r["max_abs_err"] / r["tol"], 1e-6) for r in rows]
    vs_peer = [max(r["max_abs_err_vs_peers"] / r["peer_tol"], 1e-6) if r["peer_tol"] else 1e-6 for r in rows]
    y = np.arange(len(rows))
    ax.barh(y - 0.2, vs_ref, height=0.4, label="vs float64 reference", color="C0")
    ax.barh(y + 0.2, vs_peer, height=0.4, label="vs PyTorch peers (2x tolerance)", color="C1")
    ax.text(0.99, 0.01, "exact agreement is drawn at 1e-6", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=7, color="0.4")
    ax.axvline(1.0, color="k", lw=1, ls="--")
    ax.set_xscale("log")
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("max |error| / tolerance (dimensionless; left of the dashed line passes)")
    ax.set_title(title or "Kernel correctness: error relative to the stated tolerance", fontsize=10)
    ax.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 0.05))
    return ax


def plot_ratios(rows: Sequence[dict[str, Any]], *, ax: Any = None, title: str | None = None) -> Any:
    """Peer time / kernel time per entry at its largest timed size, one marker per peer (log scale).

    Right of 1: the kernel is faster than that peer. For ``copy`` the value is the fraction of the
    bandwidth ceiling the kernel reaches (at most about 1). Returns the matplotlib ``Axes``.
    """
    import matplotlib.pyplot as plt

    largest: dict[tuple[str, str], float] = {}
    for r in rows:
        key = (r["kernel"], r["dtype"])
        largest[key] = max(largest.get(key, 0), r["x"])
    picked = [r for r in rows if r["x"] == largest[(r["kernel"], r["dtype"])] and r["ratio"] is not None]
    kernels_ = list(dict.fromkeys(f"{r['kernel']} · {r['dtype']}" for r in picked))
    peers = list(dict.fromkeys(r["peer"] for r in picked))
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.3 * len(kernels_) + 1.5))
    markers = "osD^v<>pX*"
    for j, peer in enumerate(peers):
        ys, xs = [], []
        for r in picked:
            if r["peer"] == peer:
                ys.append(kernels_.index(f"{r['kernel']} · {r['dtype']}"))
                xs.append(r["ratio"])
        ax.scatter(xs, ys, marker=markers[j % len(markers)], label=peer, color=f"C{j}", zorder=3)
    ax.axvline(1.0, color="k", lw=1, ls="--")
    ax.set_xscale("log")
    ax.set_yticks(range(len(kernels_)), kernels_, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("peer time / kernel time (dimensionless; > 1: the Triton kernel is faster)")
    device = rows[0]["device"] if rows else "?"
    ax.set_title(title or f"Triton kernels vs PyTorch peers at the largest size, {device}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="peer", title_fontsize=7)
    return ax


__all__ += ["CHECK_COLUMNS", "BENCH_COLUMNS", "linear_attention_loop", "linear_attention_cumsum",
            "linear_attention_parallel", "linear_scan_closed_form"]
