"""Recall against state size: the Based paper's MQAR sweep at book scale.

Arora et al. (ICML 2024, arXiv:2402.18668) train small 2-layer models on multi-query associative
recall (MQAR, :mod:`linattn_edu.tasks.mqar`) and plot each model's accuracy against the size of
the state it keeps while decoding. Attention recalls everything but its KV cache grows with the
sequence; models with a fixed state trade recall for memory; Based (Taylor linear attention plus
a small sliding window) reaches the best recall for its state: it sits on the Pareto frontier.
:func:`run_mqar_sweep` repeats that experiment with five *families* of sequence mixers
(:data:`MODEL_FAMILIES`), several sizes each.

**The architecture: two stacks** (``stack=``, :data:`STACKS`). Every family except the recurrent
and linearized ones is ``build_model("based", ...)`` with a ``layer_pattern`` and no MLP, so the
families differ *only* in their sequence mixer.

``stack="zoology"``: Zoology's MQAR models, the code that ran the Based paper's MQAR sweeps
(``zoology/experiments/arxiv24_based_figure2/configs.py``). Zoology gives each layer **one**
mixer, layer ``i`` taking ``configs[i % len(configs)]`` of a ``Hybrid`` list
(:func:`~linattn_edu.models.linear.zoology_layer_pattern`); with ``configs = [BaseConv, X]`` and
2 layers, layer 0 is Zoology's BaseConv (``conv(u) ⊙ proj(u) + u``, 3 taps,
:class:`~linattn_edu.models.linear.ZoologyBaseConv`) and layer 1 the mixer ``X`` under test. No
MLP, LayerNorm, attention without position encoding (``window_pos="none"``), as there. (Zoology's
code runs ``state_mixer=Identity``, which adds ``Norm(x)`` after each layer; that is
``mlp="identity"``, not used here: at this book's CPU budget it kept the Taylor model on the
plateau, see :data:`~linattn_edu.models.linear.ZOOLOGY_COMMON`.) Options:
:func:`~linattn_edu.models.linear.zoology_mqar_options`.

===================  ============================================  ========================================
family               layers (2): configs cycled                    decode state
===================  ============================================  ========================================
``attention``        ``conv``, ``window`` (``window = seq_len``)   conv + KV cache of all ``T`` tokens
``sliding_window``   ``conv``, ``window`` (``window = w``)         conv + KV cache of the last ``w``
``linear_elu``       ``conv``, ``linear`` (``"elu"``)              conv + ``S (F×D)``, ``z (F)``, ``F = d``
``linear_taylor``    ``conv``, ``linear`` (``"taylor"``)           same, ``F = 1 + d + d²``
``based``            ``conv``, ``linear+window`` (``w``), or       Taylor state + window ``w`` cache;
                     with ``window=None``: ``conv``, ``linear``    the paper's model: Taylor state
===================  ============================================  ========================================

With ``window=None`` a ``based`` variant is **the Based paper's MQAR model** (BaseConv in layer 0,
Taylor linear attention in layer 1, no MLP, no window; by name:
``zoology_mqar_options("based")``), which is the same model as ``linear_taylor``. With a window
it is this book's variant: the paper's model with Based's sliding window added beside the linear
attention in layer 1 (one pre-norm residual sublayer each), so that the window's effect on recall
can be measured at 2 layers.

``stack="conv_prefixed"``: **this book's own variant** (an earlier version of the book, and the
stored result ``linattn_edu/results/mqar_sweep.json``): a short convolution *in front of the
mixer in every layer* (``layer_pattern = ["conv+X"] * n_layers``), this book's
:class:`~linattn_edu.models.linear.ShortConv` (``conv_form="book"``), ``mlp="none"``, RoPE in
attention; ``based`` is the 2-layer default pattern ``["conv+linear", "conv+window"]``. It is not
Zoology's architecture (Zoology never stacks a convolution and another mixer in one layer). It
stays the default of :func:`model_variants` and :func:`run_mqar_sweep` so the stored rows can be
rebuilt from their options; the presets choose their stack (:data:`MQAR_PRESETS`).

Two more families, :data:`RECURRENT_FAMILIES` (the Griffin chapter; not in the default sweep, so
the stored result stays what it is), are run by naming them in ``families=``:

===================  ==========================================  ==================================
family               model (2 layers)                            decode state per layer
===================  ==========================================  ==================================
``hawk``             ``build_model("hawk")``: recurrent blocks    conv inputs ``3 × W`` + RG-LRU
                     (conv width 4 + RG-LRU), defaults            ``h`` of ``W = d_model`` channels
``griffin``          ``build_model("griffin", window=w)``:        recurrent layer as in Hawk;
                     ``recurrent``, ``attention`` (local MQA)     ``K, V`` of the last ``w`` tokens
===================  ==========================================  ==================================

Two more, :data:`COMPARISON_FAMILIES` (Chapter 8 puts every mechanism of the book on one plot),
are also run only when named:

===================  ==========================================  ==================================
family               model (2 layers)                            decode state per layer
===================  ==========================================  ==================================
``alibi``            ``conv+window``, ``window = seq_len``,       KV cache of all ``T`` tokens
                     ``window_pos="alibi"``
``linearized``       ``build_model("linearized")``, defaults:     linear-attention state, the
                     grouped linear attention + causal DWConv     current group's keys/values and
                                                                  the conv's last taps
===================  ==========================================  ==================================

``alibi`` is the ``attention`` family with ALiBi's distance bias in place of RoPE. ``linearized``
is the zoo's linearized LLM block as built, with its gated MLP, like Hawk and Griffin below.

They are the zoo's Hawk and Griffin *as built*: each block keeps its gated MLP (Griffin's
residual block always has one; ``mlp_ratio`` must be positive), so unlike the other families they
carry an MLP: more parameters, no extra decode state. Their short convolution is part of the
recurrent block (width 4, in front of the RG-LRU), so ``conv=`` does not change them. The
attention layer of ``griffin`` has no convolution in front of it; the recurrent layer below it
already mixes neighbouring tokens. Griffin windows come from ``griffin_windows`` (a window
``>= seq_len`` is kept: it makes the attention layer full causal attention).

Every conv layer adds ``d_model · 2`` numbers of conv state (its last two inputs). A window as
long as the sequence *is* full causal softmax attention (query ``i`` sees every ``j <= i``).
**Windows:** ``window = w`` counts the current key; Zoology's ``SlidingAttn(block_size=b)`` is
``w = b + 1`` and the official Based LM's ``window_size: 256`` is ``w = 129``.
The short convolution matters at this scale: it lets the value token see its key, so recall only
needs one lookup. Without it (``conv=False``), a 2-layer softmax model must first learn a
previous-token head and compose it with a lookup head (an induction circuit); at our CPU budget
that circuit does not form (measured: 4000 steps of a plain 2-layer RoPE Transformer left it at
the 1/n_pairs "guess a value of the context" plateau).

**State size** is :func:`~linattn_edu.models.model_state_bytes` at ``seq_len`` tokens (batch 1),
counted with the same ``bytes_per_element`` (default 4: the float32 the models are trained in)
for every number: KV caches, linear-attention states and conv states alike.

**Accuracy** is :func:`~linattn_edu.tasks.mqar_accuracy` on ``n_test`` examples generated with a
different seed (``seed + 1``) than the ``n_train`` training examples (``seed``).

**Training** (:func:`train_mqar`, the same for every model of a setting): the model is built after
``torch.manual_seed(seed)``; AdamW (betas 0.9/0.98, weight decay 0.1 on matrices and embeddings),
linear warmup then cosine decay to 10% of ``lr``, gradient clipping at 1.0, batches drawn without
replacement from the training set (reshuffled every epoch) by a generator seeded with ``seed``.
Cross-entropy is taken only at the query positions (the other targets are ``-100``).

**Initialization.** The zoo initializes every matrix with std 0.02; at ``d_model = 64`` that
leaves ``q·k ≈ 0`` and the models sit for hundreds of steps on a plateau at accuracy
``1/n_pairs`` (they only learn "the answer is one of the values in the context"). By default
(``qk_init="lecun"``) the query/key projections are re-initialized with std ``1/√d_model``
(:func:`init_qk_`), the same for every family, which shortens that plateau enough for a CPU
budget. ``qk_init="zoo"`` keeps the zoo's initialization.

**Scale.** The vocabulary is much smaller than the paper's ``V = 8192`` on the CPU presets
(``V > L`` is the only requirement): fewer embeddings to learn makes training faster; the task's
logic is the same. The paper trains for dozens of epochs over 100k examples; the ``"cpu"`` preset
trains each model for 800 steps of 32 examples, so which models leave the plateau, and when, is
part of what is measured: read single points as one seed's outcome.

What the ``"cpu"`` sizes showed in the conv-prefixed stack (``(L, pairs) = (64, 8)``, measured on
a 2-core CPU before the presets moved to the Zoology stack; not re-measured since): attention
recalled ~98% with the largest state; windows of 8 and 16 tokens, shorter than most key-query
distances, failed; Taylor linear attention beat elu at equal or smaller state by a wide margin;
and Taylor-based models (``linear_taylor`` and ``based``) made up the frontier below attention.
Chapter 5 no longer runs this sweep: it loads the MQAR study (:mod:`~linattn_edu.experiments.mqar_study`:
per-family state dials, a learning-rate sweep per model, a 1,024-token vocabulary), which supersedes
the stored conv-prefixed sweep, and its live miniature retraces the study's first training steps
(:func:`train_mqar` with ``stop_after``).
"""

from __future__ import annotations

import math
import time
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import bench, runtime
from ._args import check_int as _int, check_positive as _positive, resolve_device as _device
from ..models import FAMILY_INFO, build_model, count_parameters, model_state_bytes
from ..models.linear import ZOOLOGY_COMMON, zoology_layer_pattern
from ..reference.linear import feature_map_dim
from ..tasks.mqar import IGNORE_INDEX, make_mqar, mqar_accuracy
from ..train import cosine_lr

__all__ = [
    "MODEL_FAMILIES",
    "RECURRENT_FAMILIES",
    "COMPARISON_FAMILIES",
    "STACKS",
    "MQAR_PRESETS",
    "mqar_sweep_config",
    "model_variants",
    "QK_INITS",
    "init_qk_",
    "train_mqar",
    "evaluate_mqar",
    "run_mqar_sweep",
    "pareto_frontier",
    "plot_recall_vs_state",
]

#: The families of sequence mixers compared (see the module docstring).
MODEL_FAMILIES = ("attention", "sliding_window", "linear_elu", "linear_taylor", "based")
#: Recurrent families (the Griffin chapter), run only when named in ``families=``.
RECURRENT_FAMILIES = ("hawk", "griffin")
#: Chapter 8's two extra families (ALiBi attention, the linearized LLM block), run only when named.
COMPARISON_FAMILIES = ("alibi", "linearized")
_ALL_FAMILIES = MODEL_FAMILIES + RECURRENT_FAMILIES + COMPARISON_FAMILIES
#: Values of ``stack=``: Zoology's one-mixer-per-layer models, or this book's conv-prefixed variant.
STACKS = ("zoology", "conv_prefixed")

#: Sizes per preset. ``"fast"``, ``"cpu"`` and ``"gpu"`` follow :func:`linattn_edu.runtime.mode`;
#: ``"large-cpu"`` is the longer CPU run whose stored result ships with the package.
#:
#: :meta hide-value:
MQAR_PRESETS: dict[str, dict[str, Any]] = {
    # Tests: checks that everything runs (one tiny model per family, ~1-2 s in all).
    "fast": dict(
        settings=[(16, 2)], vocab_size=32, d_model=16, n_layers=2, n_heads=2, steps=6, batch_size=8, lr=3e-3,
        n_train=64, n_test=32, seed=0, windows=[4], feature_dims={"linear_elu": [4], "linear_taylor": [2]},
        based=[{"feature_dim": 2, "window": 4}], stack="zoology",
    ),
    # A 2-core CPU: 9 models, ~30 s each (measured 2026-12-01 in Chapter 5, conv-prefixed stack:
    # 305 s with 2 torch threads on an otherwise idle 2-core AMD EPYC; the Zoology stack has one conv
    # layer instead of two, so expect about the same; see the module docstring).
    "cpu": dict(
        settings=[(64, 8)], vocab_size=128, d_model=64, n_layers=2, n_heads=2, steps=800, batch_size=32,
        lr=3e-3, n_train=16_000, n_test=1000, seed=0, windows=[8, 16],
        feature_dims={"linear_elu": [16, 64], "linear_taylor": [2, 4]},
        based=[{"feature_dim": 2, "window": 8}, {"feature_dim": 4, "window": 8}], stack="zoology",
    ),
    # A longer CPU run (~15 min with 1 thread on 2 cores): scripts/mqar_sweep.py --preset large-cpu --threads 1.
    # The stored result was made with it, in this book's conv-prefixed stack (kept so it can be rebuilt).
    "large-cpu": dict(
        settings=[(64, 8), (128, 8)], vocab_size=256, d_model=64, n_layers=2, n_heads=2, steps=1500,
        batch_size=32, lr=3e-3, n_train=48_000, n_test=1000, seed=0, windows=[8, 32],
        feature_dims={"linear_elu": [16, 64], "linear_taylor": [2, 4]},
        based=[{"feature_dim": 2, "window": 8}, {"feature_dim": 4, "window": 16}], stack="conv_prefixed",
    ),
    # A CUDA GPU: the paper's settings and vocabulary, Zoology's models (one head; the Based paper's
    # MQAR model with feature dims 8, 16, 24; sliding windows of Zoology block sizes 8..128, i.e.
    # window = block + 1; and the book's Based variant with the official LM window 256 -> 129).
    # Not run yet: 67 small models, thousands of steps each (expect an hour or more on one GPU).
    "gpu": dict(
        settings=[(64, 4), (128, 8), (256, 16), (256, 32), (256, 64)], vocab_size=8192, d_model=128, n_layers=2,
        n_heads=1, steps=3000, batch_size=128, lr=3e-3, n_train=100_000, n_test=3000, seed=0,
        windows=[9, 17, 33, 65, 129], feature_dims={"linear_elu": [16, 64, 256], "linear_taylor": [4]},
        based=[{"feature_dim": 8, "window": None}, {"feature_dim": 16, "window": None},
               {"feature_dim": 24, "window": None}, {"feature_dim": 16, "window": 129}],
        stack="zoology",
    ),
}


def mqar_sweep_config(preset: str | None = None) -> dict[str, Any]:
    """Sizes for :func:`run_mqar_sweep`: ``run_mqar_sweep(**mqar_sweep_config())``.

    Args:
        preset: None picks by :func:`linattn_edu.runtime.mode` (``"fast"`` under the tests,
            ``"cpu"`` without a GPU, ``"gpu"`` with one); or one of :data:`MQAR_PRESETS`.

    Returns:
        A new dict (deep enough to edit freely) with keys ``settings`` (list of ``(seq_len,
        n_pairs)``), ``vocab_size``, ``d_model``, ``n_layers``, ``n_heads``, ``steps``,
        ``batch_size``, ``lr``, ``n_train``, ``n_test``, ``seed``, ``stack`` (one of
        :data:`STACKS`) and the variants: ``windows`` (list of ints), ``feature_dims``
        (``{"linear_elu": [...], "linear_taylor": [...]}``) and ``based`` (list of
        ``{"feature_dim", "window"}``, ``window`` None for the Based paper's MQAR model).

    Raises:
        ValueError: unknown ``preset``.
    """
    if preset is None:
        cfg = runtime.pick(fast=MQAR_PRESETS["fast"], cpu=MQAR_PRESETS["cpu"], gpu=MQAR_PRESETS["gpu"])
    elif isinstance(preset, str) and preset in MQAR_PRESETS:
        cfg = MQAR_PRESETS[preset]
    else:
        raise ValueError(f"preset must be None or one of {list(MQAR_PRESETS)}, got {preset!r}")
    out = dict(cfg)
    out["settings"] = [tuple(s) for s in cfg["settings"]]
    out["windows"] = list(cfg["windows"])
    out["feature_dims"] = {k: list(v) for k, v in cfg["feature_dims"].items()}
    out["based"] = [dict(b) for b in cfg["based"]]
    return out


# ----------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------


def _int_list(values: Any, name: str) -> list[int]:
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    try:
        out = [_int(v, name) for v in values]
    except TypeError:
        raise ValueError(f"{name} must be a list of positive ints, got {values!r}") from None
    return out


def _check_settings(settings: Any) -> list[tuple[int, int]]:
    try:
        pairs = [tuple(s) for s in settings]
    except TypeError:
        raise ValueError(f"settings must be a list of (seq_len, n_pairs) pairs, got {settings!r}") from None
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ValueError(f"settings must be a non-empty list of (seq_len, n_pairs) pairs, got {settings!r}")
    out = []
    for seq_len, n_pairs in pairs:
        seq_len, n_pairs = _int(seq_len, "settings seq_len", 2), _int(n_pairs, "settings n_pairs")
        if seq_len % 2 or 4 * n_pairs > seq_len:
            raise ValueError(f"settings: each (seq_len, n_pairs) needs an even seq_len and 4*n_pairs <= seq_len, "
                             f"got {(seq_len, n_pairs)}")
        out.append((seq_len, n_pairs))
    if len(set(out)) != len(out):
        raise ValueError(f"settings must not repeat a (seq_len, n_pairs) pair, got {out}")
    return out


def _check_families(families: Any) -> tuple[str, ...]:
    if isinstance(families, str):
        families = (families,)
    try:
        fams = tuple(families)
    except TypeError:
        raise ValueError(f"families must be names from {list(_ALL_FAMILIES)}, got {families!r}") from None
    if not fams or any(f not in _ALL_FAMILIES for f in fams) or len(set(fams)) != len(fams):
        raise ValueError(f"families must be distinct names from {list(_ALL_FAMILIES)}, got {families!r}")
    return fams


def _check_feature_dims(feature_dims: Any) -> dict[str, list[int]]:
    if isinstance(feature_dims, dict):
        unknown = set(feature_dims) - {"linear_elu", "linear_taylor"}
        if unknown:
            raise ValueError(f"feature_dims keys must be 'linear_elu' and/or 'linear_taylor', got {sorted(unknown)}")
        return {fam: _int_list(feature_dims.get(fam, []), "feature_dims") for fam in ("linear_elu", "linear_taylor")}
    dims = _int_list(feature_dims, "feature_dims")
    return {"linear_elu": dims, "linear_taylor": list(dims)}


def _check_based(based: Any) -> list[dict[str, int]]:
    if isinstance(based, dict):
        based = [based]
    try:
        items = list(based)
    except TypeError:
        raise ValueError(f"based must be a list of {{'feature_dim', 'window'}} dicts (window: int or None), "
                         f"got {based!r}") from None
    out = []
    for item in items:
        if not isinstance(item, dict) or set(item) != {"feature_dim", "window"}:
            raise ValueError(f"based must be a list of {{'feature_dim', 'window'}} dicts, got {item!r}")
        window = item["window"]
        out.append({"feature_dim": _int(item["feature_dim"], "based feature_dim"),
                    "window": None if window is None else _int(window, "based window")})
    return out


def _check_stack(stack: Any) -> str:
    if not isinstance(stack, str) or stack not in STACKS:
        raise ValueError(f"stack must be one of {list(STACKS)}, got {stack!r}")
    return stack


# ----------------------------------------------------------------------------------------------
# The models
# ----------------------------------------------------------------------------------------------


def model_variants(
    seq_len: int,
    *,
    n_layers: int = 2,
    windows: Iterable[int] = (),
    feature_dims: Any = (),
    based: Any = (),
    families: Sequence[str] = MODEL_FAMILIES,
    conv: bool = True,
    griffin_windows: Iterable[int] = (16,),
    stack: str = "conv_prefixed",
) -> list[dict[str, Any]]:
    """The models of one setting: ``[{"family", "label", "kind", "options"}, ...]``.

    ``build_model(v["kind"], vocab_size=..., d_model=..., n_layers=..., n_heads=..., **v["options"])``
    builds each. See the module docstring for the families and the two stacks: ``stack="zoology"``
    (Zoology's MQAR models, one mixer per layer) or ``"conv_prefixed"`` (this book's variant, the
    default so that the stored sweep's rows can be rebuilt). ``conv=False`` drops the short
    convolution (``"zoology"``: the ``conv`` layer leaves the cycled configs; ``"conv_prefixed"``:
    the ``conv+`` prefix; ``based`` keeps its default pattern there, which has it; ``hawk`` and
    ``griffin`` have theirs inside the recurrent block). Windows ``>= seq_len`` are skipped for
    ``sliding_window`` (they would be full attention). ``families`` may also name
    :data:`RECURRENT_FAMILIES`: ``"hawk"`` is one model (``kind="hawk"``, default options),
    ``"griffin"`` one per window of ``griffin_windows`` (``kind="griffin"``, ``window=w``, the
    default layer pattern: ``recurrent, attention`` for 2 layers).

    Raises:
        ValueError: bad arguments, naming them.
    """
    seq_len = _int(seq_len, "seq_len", 2)
    n_layers = _int(n_layers, "n_layers")
    families = _check_families(families)
    wins = _int_list(windows, "windows")
    dims = _check_feature_dims(feature_dims)
    based_list = _check_based(based)
    g_wins = _int_list(griffin_windows, "griffin_windows")
    stack = _check_stack(stack)
    if not isinstance(conv, bool):
        raise ValueError(f"conv must be a bool, got {conv!r}")
    mixer_options = _zoology_options if stack == "zoology" else _conv_prefixed_options
    out: list[dict[str, Any]] = []
    for fam in families:
        if fam == "attention":
            out.append({"family": fam, "label": "attention", "kind": "based",
                        "options": mixer_options("window", n_layers, conv, window=seq_len)})
        elif fam == "sliding_window":
            for w in wins:
                if w < seq_len:
                    out.append({"family": fam, "label": f"window {w}", "kind": "based",
                                "options": mixer_options("window", n_layers, conv, window=w)})
        elif fam in ("linear_elu", "linear_taylor"):
            fmap = "elu" if fam == "linear_elu" else "taylor"
            for d in dims[fam]:
                f = feature_map_dim(fmap, d)
                label = f"{fmap} d={d}" + (f" (F={f})" if f != d else "")
                out.append({"family": fam, "label": label, "kind": "based",
                            "options": mixer_options("linear", n_layers, conv, feature_map=fmap, feature_dim=d)})
        elif fam == "alibi":
            out.append({"family": fam, "label": "alibi", "kind": "based",
                        "options": mixer_options("window", n_layers, conv, window=seq_len, window_pos="alibi")})
        elif fam == "linearized":
            out.append({"family": fam, "label": "linearized", "kind": "linearized", "options": {}})
        elif fam == "hawk":
            out.append({"family": fam, "label": "hawk", "kind": "hawk", "options": {}})
        elif fam == "griffin":
            for w in g_wins:
                out.append({"family": fam, "label": f"griffin w={w}", "kind": "griffin", "options": {"window": w}})
        else:  # based
            for b in based_list:
                d, w = b["feature_dim"], b["window"]
                if stack == "zoology":
                    entry = "linear" if w is None else "linear+window"
                    extra = {} if w is None else {"window": w}
                    options = _zoology_options(entry, n_layers, conv, feature_map="taylor", feature_dim=d, **extra)
                    label = f"based d={d} (paper MQAR)" if w is None else f"based d={d} w={w}"
                else:
                    if w is None:
                        raise ValueError("based: window=None (the Based paper's MQAR model) needs stack='zoology'")
                    options = {**_CONV_PREFIXED, "feature_map": "taylor", "feature_dim": d, "window": w}
                    label = f"based d={d} w={w}"
                out.append({"family": fam, "label": label, "kind": "based", "options": options})
    return out


#: Options every model of the ``"conv_prefixed"`` stack shares (this book's variant).
_CONV_PREFIXED: dict[str, Any] = {"mlp": "none", "conv_form": "book"}


def _conv_prefixed_options(mixer: str, n_layers: int, conv: bool, **options: Any) -> dict[str, Any]:
    """This book's variant: ``conv+<mixer>`` in every layer (``<mixer>`` alone without ``conv``)."""
    return {**_CONV_PREFIXED, "layer_pattern": [("conv+" if conv else "") + mixer] * n_layers, **options}


def _zoology_options(mixer: str, n_layers: int, conv: bool, **options: Any) -> dict[str, Any]:
    """Zoology's stack: the configs ``[conv, <mixer>]`` cycled over the layers (``[<mixer>]`` without ``conv``)."""
    configs = ["conv", mixer] if conv else [mixer]
    return {**ZOOLOGY_COMMON, "layer_pattern": zoology_layer_pattern(configs, n_layers), **options}


#: Values of ``run_mqar_sweep(qk_init=...)``.
QK_INITS = ("lecun", "zoo")


@torch.no_grad()
def init_qk_(model: torch.nn.Module) -> torch.nn.Module:
    """Re-initialize the query/key projections of a zoo model in place: normal, std ``1/√d_model``.

    Touches every ``nn.Linear`` named ``q_proj``, ``k_proj`` (linear attention, Transformer) or
    ``qkv_proj`` (the window mixer's fused projection, whose value third is included), and the key
    half (the first half of the output rows) of a ``kv_proj`` (the fused key/value projection of
    the Transformer and of Griffin's local attention; its value half is left alone). The zoo
    initializes every matrix with GPT-2's std 0.02, which makes ``q·k`` nearly 0 at the start: all
    attention weights are equal, and small MQAR models sit for hundreds of steps on the plateau
    where they only know "the answer is one of the values in the context" (accuracy
    ``1/n_pairs``). With std ``1/√d_model`` (LeCun's scale, close to PyTorch's default for
    ``nn.Linear``), each q and k coordinate starts with variance ~1 after the pre-norm, the
    feature maps see non-trivial dot products, and the same models leave the plateau within a few
    hundred steps (measured at d_model 64 in the conv-prefixed stack: Taylor d=4 from 26% to 97% accuracy
    in 500 steps).

    Returns:
        ``model``.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("q_proj", "k_proj", "qkv_proj"):
            torch.nn.init.normal_(module.weight, std=module.in_features ** -0.5)
        elif leaf == "kv_proj":  # rows (2, H_kv, D): keys first
            torch.nn.init.normal_(module.weight[: module.out_features // 2], std=module.in_features ** -0.5)
    return model


# ----------------------------------------------------------------------------------------------
# Training and evaluation
# ----------------------------------------------------------------------------------------------


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices and embeddings (ndim >= 2), none on biases, norms and conv taps' biases."""
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.dtype.is_floating_point:
        raise ValueError(f"{name} must be a 2-D integer array or tensor (N, L), got {getattr(x, 'shape', x)!r}")
    return x.to("cpu", torch.int64)


def train_mqar(
    model: torch.nn.Module,
    inputs: Any,
    targets: Any,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    weight_decay: float = 0.1,
    warmup: int | None = None,
    grad_clip: float | None = 1.0,
    min_lr_ratio: float = 0.1,
    device: torch.device | str | None = None,
    amp: bool | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place on MQAR examples; loss only where ``targets != -100``.

    Args:
        model: maps ``(B, L)`` int64 tokens to ``(B, L, V)`` logits.
        inputs, targets: ``(N, L)`` int arrays from :func:`~linattn_edu.tasks.make_mqar`.
        steps: optimizer steps; each takes ``batch_size`` examples, drawn without replacement
            from a permutation of the ``N`` examples (a new permutation every epoch).
        lr: peak learning rate (AdamW, betas 0.9/0.98).
        seed: seeds the batch order (``torch.Generator``); the model's initialization is the
            caller's (build it after ``torch.manual_seed``).
        weight_decay: on parameters with ``ndim >= 2``.
        warmup: linear warmup steps (default ``steps // 10``), then cosine decay to
            ``min_lr_ratio · lr`` (:func:`linattn_edu.train.cosine_lr`).
        grad_clip: global gradient-norm clip (None: none).
        device: where to train (default :func:`linattn_edu.runtime.device`).
        amp: bfloat16 autocast; None: on for a CUDA GPU with bf16 support.
        stop_after: stop after this many steps (``1..steps``) of the *same* run: the schedule,
            batches and updates are those of a ``steps``-step run, so the losses are the first
            ``stop_after`` of that run's (a live miniature that retraces the start of a stored
            run). None: all ``steps``.

    Returns:
        ``{"loss": [float per step run], "final_loss" (mean of the last 10% of the steps run),
        "seconds"}``.

    Raises:
        ValueError: bad arguments, naming them.
        FloatingPointError: the loss became NaN or infinite.
    """
    x_all, y_all = _as_tensor(inputs, "inputs"), _as_tensor(targets, "targets")
    if x_all.shape != y_all.shape:
        raise ValueError(
            f"inputs and targets must have the same shape, got {tuple(x_all.shape)} and {tuple(y_all.shape)}")
    steps, batch_size, seed = _int(steps, "steps"), _int(batch_size, "batch_size"), _int(seed, "seed", 0)
    if batch_size > x_all.shape[0]:
        raise ValueError(f"batch_size={batch_size} must be <= the number of examples {x_all.shape[0]}")
    lr = _positive(lr, "lr")
    warmup = max(1, steps // 10) if warmup is None else _int(warmup, "warmup", 0)
    run_steps = steps if stop_after is None else _int(stop_after, "stop_after")
    if run_steps > steps:
        raise ValueError(f"stop_after must be <= steps={steps}, got {stop_after}")
    dev = _device(device)
    if amp is None:
        amp = runtime.amp_dtype(dev) is not None
    model.to(dev)
    model.train()
    optimizer = torch.optim.AdamW(_param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98))
    gen = torch.Generator().manual_seed(seed)
    n = x_all.shape[0]
    order, cursor = torch.randperm(n, generator=gen), 0
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(run_steps):
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=gen), 0
        idx = order[cursor:cursor + batch_size]
        cursor += batch_size
        x, y = x_all[idx].to(dev), y_all[idx].to(dev)
        step_lr = cosine_lr(step, steps=steps, lr=lr, warmup=warmup, min_lr_ratio=min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = step_lr
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                               ignore_index=IGNORE_INDEX)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"loss became {value} at step {step}; lower lr (now {lr})")
        losses.append(value)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    model.eval()
    tail = losses[-max(1, run_steps // 10):]
    return {"loss": losses, "final_loss": float(sum(tail) / len(tail)), "seconds": time.perf_counter() - start}


@torch.no_grad()
def evaluate_mqar(
    model: torch.nn.Module, inputs: Any, targets: Any, *, batch_size: int = 256,
    device: torch.device | str | None = None,
) -> float:
    """:func:`~linattn_edu.tasks.mqar_accuracy` of ``model`` on ``(N, L)`` examples, in batches.

    Raises:
        ValueError: bad arguments, naming them.
    """
    x_all, y_all = _as_tensor(inputs, "inputs"), _as_tensor(targets, "targets")
    if x_all.shape != y_all.shape:
        raise ValueError(
            f"inputs and targets must have the same shape, got {tuple(x_all.shape)} and {tuple(y_all.shape)}")
    batch_size = _int(batch_size, "batch_size")
    dev = _device(device)
    was_training = model.training
    model.eval()
    preds = []
    for i in range(0, x_all.shape[0], batch_size):
        preds.append(model(x_all[i:i + batch_size].to(dev)).argmax(-1).cpu())
    model.train(was_training)
    return mqar_accuracy(torch.cat(preds), y_all)


# ----------------------------------------------------------------------------------------------
# The sweep
# ----------------------------------------------------------------------------------------------


def run_mqar_sweep(
    *,
    settings: Sequence[tuple[int, int]],
    vocab_size: int,
    d_model: int,
    n_layers: int = 2,
    n_heads: int = 2,
    steps: int,
    batch_size: int,
    lr: float,
    n_train: int,
    n_test: int,
    seed: int = 0,
    windows: Iterable[int] = (),
    feature_dims: Any = (),
    based: Any = (),
    families: Sequence[str] = MODEL_FAMILIES,
    conv: bool = True,
    griffin_windows: Iterable[int] = (16,),
    stack: str = "conv_prefixed",
    qk_init: str = "lecun",
    bytes_per_element: int = 4,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train every variant of every family on each MQAR setting; record accuracy and state size.

    For each ``(seq_len, n_pairs)`` in ``settings``: ``n_train`` training examples
    (``make_mqar(seed=seed)``) and ``n_test`` test examples (``seed + 1``); then for each model of
    :func:`model_variants` (same seed, steps, schedule, batches for all): build it after
    ``torch.manual_seed(seed)``, :func:`train_mqar`, :func:`evaluate_mqar`, and
    :func:`~linattn_edu.models.model_state_bytes` at ``seq_len`` with ``bytes_per_element``.

    Args:
        settings: ``[(seq_len, n_pairs), ...]``; each needs ``seq_len`` even,
            ``4·n_pairs <= seq_len < vocab_size``.
        vocab_size, d_model, n_layers, n_heads: model and task sizes (``d_model / n_heads`` even).
        steps, batch_size, lr: training (see :func:`train_mqar`).
        n_train, n_test: examples per setting.
        seed: data, initialization and batch order.
        windows: ``sliding_window`` sizes (those ``>= seq_len`` are skipped).
        feature_dims: ``{"linear_elu": [...], "linear_taylor": [...]}`` projected q/k dims ``d``
            (or one list for both); Taylor has ``F = 1 + d + d²`` features, elu ``F = d``.
        based: ``[{"feature_dim": d, "window": w}, ...]`` Based variants (``w`` None: the Based
            paper's MQAR model, ``stack="zoology"`` only).
        families: which of :data:`MODEL_FAMILIES` (and :data:`RECURRENT_FAMILIES`) to run.
        conv: keep the short convolution (a BaseConv layer in the Zoology stack, a ``conv+``
            prefix in the conv-prefixed one); see the module docstring.
        stack: ``"zoology"`` (Zoology's MQAR models) or ``"conv_prefixed"`` (this book's variant,
            the default, which the stored sweep used); see the module docstring.
        griffin_windows: local-attention windows of the ``griffin`` family (one model each).
        qk_init: ``"lecun"`` re-initializes the query/key projections (:func:`init_qk_`);
            ``"zoo"`` keeps the zoo's GPT-2 initialization (std 0.02) everywhere.
        bytes_per_element: element size for every state number (4 = float32, 2 = 16-bit).
        device: default :func:`linattn_edu.runtime.device`.
        progress: a tqdm bar over the models.

    Returns:
        ``{"rows": [...], "config": {...}, "device": str, "seconds": float}``; one row per model
        and setting: ``family``, ``label``, ``seq_len``, ``n_pairs``, ``state_bytes``,
        ``accuracy`` (in [0, 1]), ``n_params``, ``train_seconds``, ``final_loss`` and ``options``
        (``{"kind", **build options}``).

    Raises:
        ValueError: bad arguments, naming them (e.g. ``vocab_size <= seq_len``).
    """
    settings_ = _check_settings(settings)
    vocab_size = _int(vocab_size, "vocab_size", 3)
    for seq_len, _ in settings_:
        if vocab_size <= seq_len:
            raise ValueError(f"vocab_size must be > every seq_len (MQAR needs V > L), got {vocab_size} <= {seq_len}")
    d_model, n_layers, n_heads = _int(d_model, "d_model"), _int(n_layers, "n_layers"), _int(n_heads, "n_heads")
    if d_model % n_heads or (d_model // n_heads) % 2:
        raise ValueError(f"d_model / n_heads must be an even int (RoPE), got d_model={d_model}, n_heads={n_heads}")
    steps, batch_size = _int(steps, "steps"), _int(batch_size, "batch_size")
    n_train, n_test, seed = _int(n_train, "n_train"), _int(n_test, "n_test"), _int(seed, "seed", 0)
    if batch_size > n_train:
        raise ValueError(f"batch_size={batch_size} must be <= n_train={n_train}")
    lr = _positive(lr, "lr")
    bpe = _int(bytes_per_element, "bytes_per_element")
    families = _check_families(families)
    if "griffin" in families and (d_model // n_heads) % 4:
        raise ValueError(f"the griffin family needs d_model / n_heads divisible by 4 (RoPE on half of each head), "
                         f"got d_model={d_model}, n_heads={n_heads}")
    if qk_init not in QK_INITS:
        raise ValueError(f"qk_init must be one of {list(QK_INITS)}, got {qk_init!r}")
    dev = _device(device)
    plan = [(s, v) for s in settings_ for v in model_variants(
        s[0], n_layers=n_layers, windows=windows, feature_dims=feature_dims, based=based, families=families,
        conv=conv, griffin_windows=griffin_windows, stack=stack)]

    from tqdm.auto import tqdm

    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    data: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
    bar = tqdm(plan, disable=not progress, desc="MQAR sweep")
    for (seq_len, n_pairs), var in bar:
        if (seq_len, n_pairs) not in data:
            data = {(seq_len, n_pairs): (
                *make_mqar(n_train, seq_len=seq_len, n_pairs=n_pairs, vocab_size=vocab_size, seed=seed),
                *make_mqar(n_test, seq_len=seq_len, n_pairs=n_pairs, vocab_size=vocab_size, seed=seed + 1))}
        x_tr, y_tr, x_te, y_te = data[(seq_len, n_pairs)]
        if progress:
            bar.set_postfix_str(f"L={seq_len} pairs={n_pairs} {var['label']}", refresh=True)
        torch.manual_seed(seed)
        model = build_model(var["kind"], vocab_size=vocab_size, d_model=d_model, n_layers=n_layers,
                            n_heads=n_heads, **var["options"])
        if qk_init == "lecun":
            init_qk_(model)
        hist = train_mqar(model, x_tr, y_tr, steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=dev)
        acc = evaluate_mqar(model, x_te, y_te, device=dev)
        rows.append({
            "family": var["family"], "label": var["label"], "seq_len": seq_len, "n_pairs": n_pairs,
            "state_bytes": int(model_state_bytes(model, seq_len=seq_len, bytes_per_element=bpe)),
            "accuracy": float(acc), "n_params": int(count_parameters(model)),
            "train_seconds": float(hist["seconds"]), "final_loss": hist["final_loss"],
            "options": {"kind": var["kind"], **var["options"]},
        })
    bar.close()
    config = {
        "settings": [list(s) for s in settings_], "vocab_size": vocab_size, "d_model": d_model, "n_layers": n_layers,
        "n_heads": n_heads, "steps": steps, "batch_size": batch_size, "lr": lr, "n_train": n_train, "n_test": n_test,
        "seed": seed, "windows": _int_list(windows, "windows"), "feature_dims": _check_feature_dims(feature_dims),
        "based": _check_based(based), "families": list(families), "conv": conv, "stack": stack, "qk_init": qk_init,
        "griffin_windows": _int_list(griffin_windows, "griffin_windows"),
        "bytes_per_element": bpe,
        "optimizer": "AdamW(betas=(0.9, 0.98), weight_decay=0.1), warmup steps//10 + cosine to 0.1*lr, clip 1.0",
        "test_seed": seed + 1, "torch_threads": torch.get_num_threads(),
    }
    return {"rows": rows, "config": config, "device": bench.device_name(dev), "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------------------------
# The frontier and the plot
# ----------------------------------------------------------------------------------------------


def _frontier_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows not dominated by another (no other has ``<=`` state and ``>=`` accuracy, one strictly)."""
    out = []
    for r in rows:
        s, a = r["state_bytes"], r["accuracy"]
        dominated = any(
            o is not r and o["state_bytes"] <= s and o["accuracy"] >= a and (o["state_bytes"] < s or o["accuracy"] > a)
            for o in rows
        )
        if not dominated:
            out.append(r)
    return sorted(out, key=lambda r: (r["state_bytes"], r["accuracy"]))


def pareto_frontier(
    rows: Sequence[dict[str, Any]], *, seq_len: int | None = None, n_pairs: int | None = None
) -> list[dict[str, Any]]:
    """The rows on the max-accuracy-for-state-size frontier, sorted by state size.

    A row is on the frontier when no other row has a state at most as large *and* an accuracy at
    least as high, with one of the two strictly better. Rows are first restricted to ``seq_len``
    and ``n_pairs`` when given; rows of different ``(seq_len, n_pairs)`` settings are never
    compared with each other: the result is the union of each setting's frontier, sorted by
    ``(seq_len, n_pairs, state_bytes)``.

    Args:
        rows: dicts with ``state_bytes`` and ``accuracy`` (and ``seq_len`` / ``n_pairs`` if
            filtering or if several settings are mixed), e.g. ``run_mqar_sweep(...)["rows"]``.

    Raises:
        ValueError: a row lacks ``state_bytes`` or ``accuracy``, or no row matches the filter.
    """
    try:
        rows = list(rows)
    except TypeError:
        raise ValueError(f"rows must be a list of dicts, got {type(rows).__name__}") from None
    for r in rows:
        if not isinstance(r, dict) or "state_bytes" not in r or "accuracy" not in r:
            raise ValueError(f"rows must be dicts with 'state_bytes' and 'accuracy', got {r!r}")
    if seq_len is not None:
        rows = [r for r in rows if r.get("seq_len") == seq_len]
    if n_pairs is not None:
        rows = [r for r in rows if r.get("n_pairs") == n_pairs]
    if not rows:
        raise ValueError(f"no rows match seq_len={seq_len!r}, n_pairs={n_pairs!r}")
    groups: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r.get("seq_len"), r.get("n_pairs")), []).append(r)
    out: list[dict[str, Any]] = []
    for key in sorted(groups, key=lambda k: tuple(-1 if v is None else v for v in k)):
        out += _frontier_of(groups[key])
    return out


#: family -> (colour, marker), from the families' registration (:data:`~linattn_edu.models.FAMILY_INFO`).
FAMILY_STYLES = {fam: (info.color, info.marker) for fam, info in FAMILY_INFO.items()}


def _pick_setting(rows: list[dict[str, Any]], seq_len: int | None, n_pairs: int | None) -> tuple[int, int] | None:
    """The ``(seq_len, n_pairs)`` to draw: the given ones, else the largest present."""
    cands = [(r["seq_len"], r["n_pairs"]) for r in rows
             if (seq_len is None or r["seq_len"] == seq_len) and (n_pairs is None or r["n_pairs"] == n_pairs)]
    return max(cands) if cands else None


def plot_recall_vs_state(
    result: dict[str, Any] | None,
    *,
    seq_len: int | None = None,
    n_pairs: int | None = None,
    ax: Any = None,
    stored: dict[str, Any] | None = None,
    annotate: bool = True,
) -> Any:
    """MQAR accuracy against decode-state bytes (log x): one marker and colour per family, the frontier.

    Args:
        result: a :func:`run_mqar_sweep` result (filled markers, solid frontier), or None to draw
            only ``stored``.
        seq_len, n_pairs: the setting to draw; default the largest ``seq_len`` present (and the
            largest ``n_pairs`` at it). States at different lengths are not comparable, so one
            plot shows one setting.
        ax: a matplotlib Axes (default: a new figure).
        stored: a results record from ``bench.load_results("mqar_sweep")``: hollow markers and a
            dashed frontier, labelled with its device and date; only its rows at the same
            setting are drawn.
        annotate: write each point's variant label (e.g. ``"window 8"``) beside it (the stored
            points only when there is no live ``result``).

    Returns:
        The Axes. Each family is one ``Line2D`` (markers only) labelled with the family name
        (``"<family> (stored: ...)"`` for stored ones); each frontier is a line labelled
        ``"Pareto frontier"`` (``"... (stored)"``), drawn as a staircase (the best accuracy reached
        with at most that many bytes). The legend sits outside, right of the Axes.

    Raises:
        ValueError: nothing to draw (no rows at the requested setting).
    """
    import matplotlib.pyplot as plt

    sources = [(src, live) for src, live in ((result, True), (stored, False)) if src is not None]
    if not sources:
        raise ValueError("result and stored are both None: nothing to plot")
    first_rows = list(sources[0][0].get("rows", []))
    setting = _pick_setting(first_rows, seq_len, n_pairs)
    if setting is None and len(sources) > 1:
        setting = _pick_setting(list(sources[1][0].get("rows", [])), seq_len, n_pairs)
    if setting is None:
        raise ValueError(f"no rows to plot at seq_len={seq_len!r}, n_pairs={n_pairs!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.5))
    drawn = 0
    for src, live in sources:
        rows = [r for r in src.get("rows", []) if (r["seq_len"], r["n_pairs"]) == setting]
        if not rows:
            continue
        suffix = "" if live else f" (stored: {src.get('device', '?')}, {str(src.get('date', ''))[:10]})"
        for fam in _ALL_FAMILIES + tuple(sorted({r["family"] for r in rows} - set(_ALL_FAMILIES))):
            fam_rows = sorted((r for r in rows if r["family"] == fam), key=lambda r: r["state_bytes"])
            if not fam_rows:
                continue
            color, marker = FAMILY_STYLES.get(fam, ("tab:gray", "x"))
            xs = [r["state_bytes"] for r in fam_rows]
            ys = [r["accuracy"] for r in fam_rows]
            ax.plot(xs, ys, linestyle="none", marker=marker, color=color, markersize=9 if live else 8,
                    markerfacecolor=color if live else "none", markeredgewidth=1.2, label=f"{fam}{suffix}",
                    alpha=1.0 if live else 0.8)
            if annotate and (live or result is None):  # stored points beside live ones: no labels
                for r in fam_rows:
                    ax.annotate(r["label"], (r["state_bytes"], r["accuracy"]), textcoords="offset points",
                                xytext=(5, 4 if live else -10), fontsize=7, color=color, alpha=0.9 if live else 0.6)
            drawn += 1
        front = pareto_frontier(rows)
        # a staircase: the best accuracy reached with at most x bytes of state
        xs = [r["state_bytes"] for r in front] + [max(r["state_bytes"] for r in rows)]
        ax.plot(xs, [r["accuracy"] for r in front] + [front[-1]["accuracy"]], color="black",
                drawstyle="steps-post", linestyle="-" if live else "--", linewidth=1, alpha=0.6 if live else 0.4,
                zorder=0, label="Pareto frontier" + ("" if live else " (stored)"))
    if not drawn:
        raise ValueError(f"no rows to plot at (seq_len, n_pairs)={setting}")
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ax.set_xlim(lo, hi * (hi / lo) ** 0.12)  # room for the labels of the largest states
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("decode state (bytes per sequence, log scale)")
    ax.set_ylabel("MQAR accuracy (held-out)")
    ax.set_title(f"Recall vs state size: MQAR, L={setting[0]}, {setting[1]} key-value pairs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return ax
