"""The linearized-LLM chapter's experiments: which augmentation closes the gap, and converting a model.

You et al. (ICML 2024, arXiv:2406.07368) replace a decoder's softmax attention by linear attention
and recover its quality with two additions: a *causal* depthwise convolution over the values
(``out = attn(q, k, v) + DWConv(v)``) and *grouped* linear attention (exact local attention within
groups of ``g`` tokens, linear attention over the completed earlier groups, scaled by a learnable
``α``). They also *linearize* trained models: copy the weights, start the conv kernel and ``α`` at
zero, fine-tune briefly. This module measures both at book scale, with small byte-level LMs on the
offline ``stdlib`` corpus and the training and evaluation plumbing of :mod:`.extrapolation`:

1. **Ablation from scratch** (:func:`run_linearized_perplexity`): a softmax Transformer (RoPE),
   plain linear attention, linear + DWConv, grouped, grouped + DWConv (the zoo's
   ``"transformer"`` and ``"linearized"`` kinds, :data:`LINEARIZED_VARIANTS`), same sizes, seed,
   batches and steps; validation perplexity at the training length.
2. **Linearization** (:func:`run_linearization`): pretrain a softmax Transformer, convert it with
   :func:`~linattn_edu.models.linearize`, evaluate it before and after a short fine-tune, and
   against the same linearized architecture trained from scratch for as many steps in total.

A centered, non-causal convolution (``conv_causal=False``) leaks future tokens into the past: the
optional variant ``"linear + centered conv (leaks)"`` of :func:`run_linearized_perplexity` shows
its too-good training loss.

Reference runs: both experiments are registered as stored experiments
(:mod:`.stored`): ``python scripts/run_experiment.py linearized_perplexity --preset cpu`` (one unit
per variant, the leaky centered conv included, since the chapter draws its loss curve) and
``... linearization --preset cpu`` (one unit: the stages are sequential) store
``linattn_edu/results/linearized_perplexity_cpu.json`` and ``linearization_cpu.json`` with their
provenance; the chapter loads them with :func:`.stored.reference_run` and trains only the
``"mini"`` presets live. Their numbers are read from those files, not from this docstring.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .. import bench, runtime
from ._args import check_int as _int, check_positive as _positive, resolve_device as _device
from ..data import load_corpus
from ..models import build_model, count_parameters, linearize
from ..models.linearized import OFFICIAL_CONV_KERNEL_SIZE, OFFICIAL_GROUP_SIZE, official_causal_taps
from ..train import evaluate_perplexity
from ._common import eval_text, limited_threads, loss_curve, train_timed

__all__ = [
    "LINEARIZED_VARIANTS",
    "DEFAULT_LINEARIZED_VARIANTS",
    "LINEARIZATION_STAGES",
    "LINEARIZED_PERPLEXITY_PRESETS",
    "LINEARIZATION_PRESETS",
    "linearized_perplexity_config",
    "run_linearized_perplexity",
    "plot_linearized_perplexity",
    "linearization_config",
    "run_linearization",
    "plot_linearization",
]

#: The named variants of :func:`run_linearized_perplexity`: ``label -> {"kind": ..., **build options}``.
#: The shared sizes come from the call; ``model_options`` is added to every ``"linearized"`` variant.
#:
#: :meta hide-value:
LINEARIZED_VARIANTS: dict[str, dict[str, Any]] = {
    "softmax (RoPE)": {"kind": "transformer", "pos": "rope"},
    "linear": {"kind": "linearized", "attention": "linear", "conv": False},
    "linear + DWConv": {"kind": "linearized", "attention": "linear", "conv": True},
    # α = 0 at first, as in the paper (see run_linearized_perplexity for what α = 1 does)
    "grouped": {"kind": "linearized", "attention": "grouped", "conv": False, "alpha_init": 0.0},
    "grouped + DWConv": {"kind": "linearized", "attention": "grouped", "conv": True, "alpha_init": 0.0},
    # Not a default: a *centered* conv (taps t-2..t+2) reads two future tokens, in training and in
    # evaluation alike, so its loss and perplexity are too good to be true: the leak the paper masks.
    "linear + centered conv (leaks)": {"kind": "linearized", "attention": "linear", "conv": True,
                                       "conv_causal": False, "conv_kernel_size": 5},
}

#: The variants :func:`run_linearized_perplexity` trains by default: all of
#: :data:`LINEARIZED_VARIANTS` but the leaky centered conv.
DEFAULT_LINEARIZED_VARIANTS = tuple(v for v in LINEARIZED_VARIANTS if "leaks" not in v)

#: The stages of :func:`run_linearization`, in the order of its rows.
LINEARIZATION_STAGES = (
    "softmax transformer",
    "linearized, no fine-tuning",
    "linearized + fine-tuned",
    "linearized from scratch",
)

#: The official sizes (``modeling_llama_kv.py`` ``GROUP_SIZE = 64``; ``fine-tune.py`` a 63-tap kernel
#: with its future half masked, i.e. ``conv_kernel_size = official_causal_taps(63) = 32``).
_OFFICIAL_SIZES = {"group_size": OFFICIAL_GROUP_SIZE, "conv_kernel_size": official_causal_taps(OFFICIAL_CONV_KERNEL_SIZE)}

#: Sizes per preset for :func:`run_linearized_perplexity` (``"fast"``, ``"cpu"``, ``"gpu"`` follow
#: :func:`linattn_edu.runtime.mode`).
#:
#: :meta hide-value:
LINEARIZED_PERPLEXITY_PRESETS: dict[str, dict[str, Any]] = {
    # Tests: checks that everything runs (a few seconds for the five variants). Two groups of 16.
    "fast": dict(seq_len=32, d_model=32, n_layers=1, n_heads=2, steps=4, batch_size=4, lr=3e-3,
                 eval_max_windows=2, max_bytes=200_000, seed=0),
    # The chapter's live miniature on a CPU (a few seconds for two to five variants, 1 thread):
    # four groups of 16 per window, one layer, 60 steps at a high learning rate (enough for the
    # leaky centered conv to pull away). It shows the ordering only roughly; the stored reference
    # run ("cpu") is what the chapter reads its conclusions from.
    "mini": dict(seq_len=64, d_model=32, n_layers=1, n_heads=2, steps=60, batch_size=8, lr=1e-2,
                 eval_max_windows=16, max_bytes=None, seed=0),
    # The stored reference run (scripts/run_experiment.py linearized_perplexity --preset cpu):
    # eight groups of 16 per window, 600 steps (3x the book's former live run), the five variants
    # of the ablation plus the leaky centered conv (whose loss curve the chapter shows); its wall
    # time is in the stored file (`scripts/run_experiment.py --list` prints it). Smaller than the
    # official sizes: the model defaults, groups of 16 and 4 causal conv taps.
    "cpu": dict(variants=list(DEFAULT_LINEARIZED_VARIANTS) + ["linear + centered conv (leaks)"],
                seq_len=128, d_model=64, n_layers=2, n_heads=4, steps=600, batch_size=16, lr=3e-3,
                eval_max_windows=64, max_bytes=None, seed=0),
    # A CUDA GPU (not run yet): the official group size of 64 and kernel size 63 (future half
    # masked: 32 causal taps).
    "gpu": dict(variants=list(DEFAULT_LINEARIZED_VARIANTS) + ["linear + centered conv (leaks)"],
                seq_len=512, d_model=256, n_layers=4, n_heads=8, steps=2000, batch_size=32, lr=1e-3,
                eval_max_windows=64, max_bytes=None, seed=0, model_options=dict(_OFFICIAL_SIZES)),
}

#: Sizes per preset for :func:`run_linearization`.
#:
#: :meta hide-value:
LINEARIZATION_PRESETS: dict[str, dict[str, Any]] = {
    "fast": dict(seq_len=32, d_model=32, n_layers=1, n_heads=2, pretrain_steps=4, finetune_steps=2, batch_size=4,
                 lr=3e-3, finetune_lr=1e-3, eval_max_windows=2, max_bytes=200_000, seed=0),
    # The chapter's live miniature on a CPU (a few seconds, 1 thread): one layer, 60 + 20 steps.
    "mini": dict(seq_len=64, d_model=32, n_layers=1, n_heads=2, pretrain_steps=60, finetune_steps=20,
                 batch_size=8, lr=1e-2, finetune_lr=5e-3, eval_max_windows=16, max_bytes=None, seed=0),
    # The stored reference run (scripts/run_experiment.py linearization --preset cpu): 600
    # pretraining + 200 fine-tuning steps (2x the book's former live run), 1,600 training steps
    # in all; its wall time is in the stored file (`scripts/run_experiment.py --list`). Smaller than the official sizes: groups of 16 and 4
    # causal conv taps (the model defaults).
    "cpu": dict(seq_len=128, d_model=64, n_layers=2, n_heads=4, pretrain_steps=600, finetune_steps=200,
                batch_size=16, lr=3e-3, finetune_lr=2e-3, eval_max_windows=64, max_bytes=None, seed=0),
    # A CUDA GPU (not run yet): the official group size 64 and kernel size 63 (32 causal taps).
    "gpu": dict(seq_len=512, d_model=256, n_layers=4, n_heads=8, pretrain_steps=2000, finetune_steps=300,
                batch_size=32, lr=1e-3, finetune_lr=3e-4, eval_max_windows=64, max_bytes=None, seed=0,
                model_options=dict(_OFFICIAL_SIZES)),
}

_COLORS = {
    "softmax (RoPE)": "tab:red", "linear": "tab:gray", "linear + DWConv": "tab:olive", "grouped": "tab:blue",
    "grouped + DWConv": "tab:purple", "linear + centered conv (leaks)": "tab:pink",
    "softmax transformer": "tab:red", "linearized, no fine-tuning": "tab:gray",
    "linearized + fine-tuned": "tab:purple", "linearized from scratch": "tab:blue",
}


def _copy_preset(presets: dict[str, dict[str, Any]], preset: str | None) -> dict[str, Any]:
    if preset is None:
        cfg = runtime.pick(fast=presets["fast"], cpu=presets["cpu"], gpu=presets["gpu"])
    elif isinstance(preset, str) and preset in presets:
        cfg = presets[preset]
    else:
        raise ValueError(f"preset must be None or one of {list(presets)}, got {preset!r}")
    out = dict(cfg)
    if "model_options" in out:
        out["model_options"] = dict(out["model_options"])
    return out


def linearized_perplexity_config(preset: str | None = None) -> dict[str, Any]:
    """Sizes for :func:`run_linearized_perplexity`: ``run_linearized_perplexity(**linearized_perplexity_config())``.

    Args:
        preset: None picks by :func:`linattn_edu.runtime.mode` (``"fast"`` under the tests,
            ``"cpu"`` without a GPU, ``"gpu"`` with one); or one of :data:`LINEARIZED_PERPLEXITY_PRESETS`.

    Returns:
        A new dict (edit freely) with ``seq_len``, ``d_model``, ``n_layers``, ``n_heads``, ``steps``,
        ``batch_size``, ``lr``, ``eval_max_windows``, ``max_bytes``, ``seed`` and, for some presets,
        ``model_options``.

    Raises:
        ValueError: unknown ``preset``.
    """
    return _copy_preset(LINEARIZED_PERPLEXITY_PRESETS, preset)


def linearization_config(preset: str | None = None) -> dict[str, Any]:
    """Sizes for :func:`run_linearization`: ``run_linearization(**linearization_config())``.

    Args:
        preset: None picks by :func:`linattn_edu.runtime.mode`; or one of :data:`LINEARIZATION_PRESETS`.

    Returns:
        A new dict with ``seq_len``, ``d_model``, ``n_layers``, ``n_heads``, ``pretrain_steps``,
        ``finetune_steps``, ``batch_size``, ``lr``, ``finetune_lr``, ``eval_max_windows``,
        ``max_bytes``, ``seed`` and, for some presets, ``model_options``.

    Raises:
        ValueError: unknown ``preset``.
    """
    return _copy_preset(LINEARIZATION_PRESETS, preset)


# ----------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------


def _check_sizes(d_model: Any, n_layers: Any, n_heads: Any) -> tuple[int, int, int]:
    d_model, n_layers, n_heads = _int(d_model, "d_model"), _int(n_layers, "n_layers"), _int(n_heads, "n_heads")
    if d_model % n_heads or (d_model // n_heads) % 2:
        raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads} with an even head dim (RoPE)")
    return d_model, n_layers, n_heads


def _check_model_options(model_options: Any) -> dict[str, Any]:
    if model_options is None:
        return {}
    if not isinstance(model_options, Mapping) or not all(isinstance(k, str) for k in model_options):
        raise ValueError(f"model_options must be None or a dict {{option: value}}, got {model_options!r}")
    return dict(model_options)


def _check_variants(variants: Any) -> dict[str, dict[str, Any]]:
    """``{label: {"kind", **options}}`` from None (the defaults), names of :data:`LINEARIZED_VARIANTS` or a mapping."""
    if variants is None:
        return {k: dict(LINEARIZED_VARIANTS[k]) for k in DEFAULT_LINEARIZED_VARIANTS}
    if isinstance(variants, Mapping):
        out: dict[str, dict[str, Any]] = {}
        for label, opts in variants.items():
            if not isinstance(label, str) or not isinstance(opts, Mapping):
                raise ValueError(f"variants as a dict must map labels to option dicts, got {label!r}: {opts!r}")
            opts = dict(opts)
            opts.setdefault("kind", "linearized")
            out[label] = opts
        if not out:
            raise ValueError("variants must name at least one variant")
        return out
    if isinstance(variants, str):
        variants = (variants,)
    try:
        names = tuple(variants)
    except TypeError:
        raise ValueError(f"variants must be None, names from {list(LINEARIZED_VARIANTS)} or a dict, "
                         f"got {variants!r}") from None
    if not names:
        raise ValueError("variants must name at least one variant")
    unknown = [n for n in names if n not in LINEARIZED_VARIANTS]
    if unknown:
        raise ValueError(f"variants must be names from {list(LINEARIZED_VARIANTS)} (or a dict), got {unknown}")
    if len(set(names)) != len(names):
        raise ValueError(f"variants must not repeat a name, got {list(names)}")
    return {n: dict(LINEARIZED_VARIANTS[n]) for n in names}


# ----------------------------------------------------------------------------------------------
# Shared plumbing
# ----------------------------------------------------------------------------------------------


def _ppl(model: torch.nn.Module, eval_tokens: torch.Tensor, seq_len: int, batch_size: int, dev: torch.device) -> float:
    return evaluate_perplexity(model, eval_tokens, context_len=seq_len, batch_size=batch_size, device=dev)


def _build(label: str, opts: dict[str, Any], *, vocab_size: int, d_model: int, n_layers: int, n_heads: int,
           seed: int) -> torch.nn.Module:
    kind = opts["kind"]
    build_opts = {k: v for k, v in opts.items() if k != "kind"}
    torch.manual_seed(seed)
    try:
        return build_model(kind, vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                           **build_opts)
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"variants / model_options for variant {label!r} ({kind}): {err}") from err


# ----------------------------------------------------------------------------------------------
# 1. Ablation from scratch
# ----------------------------------------------------------------------------------------------


def run_linearized_perplexity(
    variants: Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
    *,
    seq_len: int,
    d_model: int,
    n_layers: int,
    n_heads: int,
    steps: int,
    batch_size: int,
    lr: float = 3e-3,
    seed: int = 0,
    eval_max_windows: int | None = 32,
    max_bytes: int | None = None,
    model_options: Mapping[str, Any] | None = None,
    curve_points: int = 100,
    device: torch.device | str | None = None,
    progress: bool = True,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Train one small byte-level LM per variant from scratch; compare validation perplexities.

    Every variant is ``build_model(kind, vocab_size=256, d_model, n_layers, n_heads, **options)``
    after ``torch.manual_seed(seed)`` and trained with :func:`~linattn_edu.train.train_lm` for
    ``steps`` AdamW steps of ``batch_size`` random windows of ``seq_len`` tokens of the ``stdlib``
    train split: the same batches, sizes, schedule and seed for all. Each is then scored with
    :func:`~linattn_edu.train.evaluate_perplexity` at context ``seq_len`` on the same
    non-overlapping windows of the valid split (the first ``eval_max_windows`` windows; None: the
    whole split).

    The default variants (:data:`DEFAULT_LINEARIZED_VARIANTS`) are the paper's ablation: the
    softmax Transformer with RoPE, plain linear attention (``elu + 1`` features with the usual
    denominator), linear + a causal DWConv over v, grouped linear attention (relu² local scores
    within groups, ``α``-scaled linear attention over completed groups, L2-normalized q, k) and
    grouped + DWConv. The linearized variants use the model's defaults (``group_size=16``,
    ``conv_kernel_size=4``, random conv kernel) updated by ``model_options``, except that the
    grouped ones start with ``α = 0`` as in the paper (the model's default is 1). That matters:
    the global branch sums ``φ(q)ᵀφ(k) v`` over *all* earlier groups without a denominator, so at
    ``α = 1`` it grows with the position and swamps the local branch early in training (pass
    ``model_options={"alpha_init": ...}`` to try it).

    ``"linear + centered conv (leaks)"`` (named explicitly, not a default) replaces the causal
    conv by a centered one (``conv_causal=False``, 5 taps: ``t-2 .. t+2``): every position reads
    two future tokens, the very tokens it must predict, in training and in evaluation (the model's
    ``forward``), so its training loss and perplexity are too good. It cannot decode.

    Args:
        variants: None (:data:`DEFAULT_LINEARIZED_VARIANTS`), names from :data:`LINEARIZED_VARIANTS`, or a dict
            ``{label: {"kind": ..., **options}}`` (``kind`` default ``"linearized"``).
        seq_len: training and evaluation context (>= 2).
        d_model, n_layers, n_heads: sizes shared by all variants (even head dim for RoPE).
        steps, batch_size, lr: the optimization (cosine schedule with warmup, see ``train_lm``).
        seed: initializations and batches.
        eval_max_windows: validation windows of ``seq_len`` tokens (None: all).
        max_bytes: keep only the first ``max_bytes`` bytes of the corpus (None: all).
        model_options: options added to every ``"linearized"`` variant (e.g. ``{"group_size": 32}``);
            a variant's own options win.
        curve_points: the loss curves are averaged into at most this many bins.
        device: default :func:`linattn_edu.runtime.device`.
        progress: tqdm bars over the variants and the training steps.
        threads: CPU threads during the run (restored afterwards), None: unchanged; 1 by default,
            as in :func:`~linattn_edu.experiments.extrapolation.run_extrapolation`.

    Returns:
        ``{"rows", "config", "device", "corpus", "seconds"}``. ``rows``: one per variant, in order,
        with ``variant`` (label), ``kind``, ``options`` (as built, without the sizes), ``seq_len``,
        ``perplexity``, ``n_params``, ``train_seconds`` (wall time of training), ``step_time_s``
        (median), ``final_loss`` (mean training loss of the last 10% of steps, nats per byte),
        ``curve_steps`` and ``curve_loss`` (the downsampled training loss: each bin's last step
        and mean loss). ``config``: the arguments plus ``eval_tokens`` and ``torch_threads``.

    Raises:
        ValueError: bad arguments, naming them (``variants``, ``seq_len``, sizes, ``steps``,
            ``lr``, ``model_options``, ...).
    """
    start = time.perf_counter()
    chosen = _check_variants(variants)
    seq_len = _int(seq_len, "seq_len", 2)
    d_model, n_layers, n_heads = _check_sizes(d_model, n_layers, n_heads)
    steps, batch_size, seed = _int(steps, "steps"), _int(batch_size, "batch_size"), _int(seed, "seed", 0)
    lr = _positive(lr, "lr")
    if eval_max_windows is not None:
        eval_max_windows = _int(eval_max_windows, "eval_max_windows")
    if max_bytes is not None:
        max_bytes = _int(max_bytes, "max_bytes")
    common = _check_model_options(model_options)
    curve_points = _int(curve_points, "curve_points")
    if threads is not None:
        threads = _int(threads, "threads")
    built = {label: ({**common, **opts} if opts["kind"] == "linearized" else opts) for label, opts in chosen.items()}
    dev = _device(device)
    with limited_threads(dev, threads):
        corpus = load_corpus("stdlib", max_bytes=max_bytes)
        eval_tokens, n_eval = eval_text(corpus, (seq_len,), eval_max_windows, max_bytes, seq_len)
        models = {label: _build(label, opts, vocab_size=corpus.vocab_size, d_model=d_model, n_layers=n_layers,
                                n_heads=n_heads, seed=seed)
                  for label, opts in built.items()}  # all first: a bad option fails before any training

        from tqdm.auto import tqdm

        rows: list[dict[str, Any]] = []
        bar = tqdm(list(built), desc="variants", disable=not progress, leave=True)
        for label in bar:
            bar.set_postfix(variant=label, refresh=True)
            model = models.pop(label)
            info = train_timed(model, corpus.train, seq_len=seq_len, batch_size=batch_size, steps=steps, lr=lr, seed=seed,
                          dev=dev, progress=progress)
            ppl = _ppl(model, eval_tokens, seq_len, batch_size, dev)
            curve_steps, curve_loss = loss_curve(info.pop("loss"), curve_points)
            opts = built[label]
            rows.append({
                "variant": label, "kind": opts["kind"], "options": {k: v for k, v in opts.items() if k != "kind"},
                "seq_len": seq_len, "perplexity": ppl, "n_params": count_parameters(model), **info,
                "curve_steps": curve_steps, "curve_loss": curve_loss,
            })
            del model
        bar.close()
        torch_threads = torch.get_num_threads()
    config = {
        "variants": list(built), "seq_len": seq_len, "d_model": d_model, "n_layers": n_layers, "n_heads": n_heads,
        "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "eval_max_windows": eval_max_windows,
        "max_bytes": max_bytes, "model_options": common, "eval_tokens": n_eval, "vocab_size": corpus.vocab_size,
        "torch_threads": torch_threads,
        "eval": "perplexity at context seq_len on non-overlapping windows of the valid split, the same for all",
        "paper_claim": "augmenting linear attention with a causal DWConv and grouping it closes most of the "
                       "perplexity gap to softmax attention (You et al., ICML 2024, arXiv:2406.07368)",
    }
    corpus_desc = {k: v for k, v in corpus.description.items() if k != "file_names"}
    return {"rows": rows, "config": config, "device": bench.device_name(dev), "corpus": corpus_desc,
            "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------------------------
# 2. Linearizing a trained Transformer
# ----------------------------------------------------------------------------------------------


def run_linearization(
    *,
    seq_len: int,
    d_model: int,
    n_layers: int,
    n_heads: int,
    pretrain_steps: int,
    finetune_steps: int,
    batch_size: int,
    lr: float = 3e-3,
    finetune_lr: float | None = None,
    seed: int = 0,
    attention: str = "grouped",
    conv: bool = True,
    model_options: Mapping[str, Any] | None = None,
    eval_max_windows: int | None = 32,
    max_bytes: int | None = None,
    curve_points: int = 100,
    device: torch.device | str | None = None,
    progress: bool = True,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Pretrain a softmax Transformer, linearize it, fine-tune briefly; compare with training from scratch.

    Four stages (:data:`LINEARIZATION_STAGES`), each scored with
    :func:`~linattn_edu.train.evaluate_perplexity` at context ``seq_len`` on the same validation
    windows:

    1. ``"softmax transformer"``: ``build_model("transformer", pos="rope")`` after
       ``torch.manual_seed(seed)``, trained ``pretrain_steps`` steps at ``lr`` (batches from ``seed``).
    2. ``"linearized, no fine-tuning"``: :func:`~linattn_edu.models.linearize` of it (weights
       copied; conv kernel and ``α`` zero, so a grouped model is the purely local attention at
       first), not trained.
    3. ``"linearized + fine-tuned"``: that model trained ``finetune_steps`` more steps at
       ``finetune_lr`` (default ``lr``) on batches from ``seed + 1`` (new windows: the seed-``seed``
       stream would replay the first pretraining batches), with a fresh warmup and cosine schedule.
    4. ``"linearized from scratch"``: ``build_model("linearized", attention, conv, pos="rope",
       alpha_init=0.0, **model_options)`` after ``torch.manual_seed(seed)`` (random conv kernel,
       ``α`` starting at 0 as in the paper, see :func:`run_linearized_perplexity`), trained
       ``pretrain_steps + finetune_steps`` steps at ``lr`` (batches from ``seed``): the same
       architecture and the same total number of steps as stage 3.

    Args:
        seq_len: training and evaluation context (>= 2).
        d_model, n_layers, n_heads: sizes (even head dim for RoPE).
        pretrain_steps, finetune_steps: steps of stages 1 and 3 (``finetune_steps >= 1``).
        batch_size: windows per step (all stages).
        lr, finetune_lr: peak learning rates of pretraining (and stage 4) and of fine-tuning.
        seed: initializations and batches.
        attention, conv: the linearized architecture (options of the ``"linearized"`` kind).
        model_options: further ``"linearized"`` options for stages 2-4 (e.g. ``group_size``,
            ``local``, ``conv_kernel_size``, ``alpha_init``); ``conv_init`` applies to stages 2-3
            only (:func:`~linattn_edu.models.linearize` zero-initializes the kernel; stage 4 keeps
            a random one).
        eval_max_windows, max_bytes, curve_points, device, progress, threads: as for
            :func:`run_linearized_perplexity`.

    Returns:
        ``{"rows", "config", "device", "corpus", "seconds"}``. ``rows``: one per stage, in the
        order above, with ``stage``, ``kind``, ``perplexity``, ``steps`` (training steps the
        weights have seen in total), ``pretrain_steps`` and ``finetune_steps`` (of those),
        ``n_params``, ``train_seconds`` (of that stage's own training; 0 for stage 2),
        ``final_loss`` (None for stage 2), ``curve_steps`` and ``curve_loss`` (the stage's own
        training loss, downsampled; fine-tuning steps numbered after ``pretrain_steps``; empty
        for stage 2). ``config``: the arguments plus ``eval_tokens``, ``linearized_options`` (the
        converted model's options as built), ``scratch_options`` (stage 4's options besides
        ``attention``, ``conv``, ``pos``) and ``torch_threads``.

    Raises:
        ValueError: bad arguments, naming them (sizes, steps, ``lr``, ``finetune_lr``,
            ``attention``, ``conv``, ``model_options``, ...).
    """
    start = time.perf_counter()
    seq_len = _int(seq_len, "seq_len", 2)
    d_model, n_layers, n_heads = _check_sizes(d_model, n_layers, n_heads)
    pretrain_steps, finetune_steps = _int(pretrain_steps, "pretrain_steps"), _int(finetune_steps, "finetune_steps")
    batch_size, seed = _int(batch_size, "batch_size"), _int(seed, "seed", 0)
    lr = _positive(lr, "lr")
    finetune_lr = lr if finetune_lr is None else _positive(finetune_lr, "finetune_lr")
    from ..models import LINEARIZED_ATTENTIONS

    if attention not in LINEARIZED_ATTENTIONS:
        raise ValueError(f"attention must be one of {list(LINEARIZED_ATTENTIONS)}, got {attention!r}")
    if not isinstance(conv, bool):
        raise ValueError(f"conv must be a bool, got {conv!r}")
    options = _check_model_options(model_options)
    for key in ("kind", "attention", "conv", "vocab_size", "d_model", "n_layers", "n_heads", "pos", "rope_base",
                "norm", "mlp_ratio", "tie_embeddings"):
        if key in options:
            raise ValueError(f"model_options must not set {key!r}: it is an argument or comes from the transformer")
    from ..models import LinearizedConfig

    try:  # fail now, not after pretraining
        LinearizedConfig(vocab_size=256, d_model=d_model, n_layers=n_layers, n_heads=n_heads, attention=attention,
                         conv=conv, **options)
    except (ValueError, TypeError) as err:
        raise ValueError(f"model_options: {err}") from err
    if eval_max_windows is not None:
        eval_max_windows = _int(eval_max_windows, "eval_max_windows")
    if max_bytes is not None:
        max_bytes = _int(max_bytes, "max_bytes")
    curve_points = _int(curve_points, "curve_points")
    if threads is not None:
        threads = _int(threads, "threads")
    dev = _device(device)
    scratch_options = {"alpha_init": 0.0, **{k: v for k, v in options.items() if k != "conv_init"}}
    with limited_threads(dev, threads):
        corpus = load_corpus("stdlib", max_bytes=max_bytes)
        eval_tokens, n_eval = eval_text(corpus, (seq_len,), eval_max_windows, max_bytes, seq_len)
        sizes = dict(vocab_size=corpus.vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads, seed=seed)
        transformer = _build("softmax transformer", {"kind": "transformer", "pos": "rope"}, **sizes)
        scratch = _build("linearized from scratch", {"kind": "linearized", "attention": attention, "conv": conv,
                                                     "pos": "rope", **scratch_options}, **sizes)
        train = dict(seq_len=seq_len, batch_size=batch_size, dev=dev, progress=progress)
        rows: list[dict[str, Any]] = []

        def row(stage: str, model: torch.nn.Module, info: dict[str, Any] | None, *, pre: int, fine: int,
                offset: int = 0) -> None:
            curve = loss_curve(info["loss"], curve_points, offset) if info else ([], [])
            rows.append({
                "stage": stage, "kind": model.kind, "perplexity": _ppl(model, eval_tokens, seq_len, batch_size, dev),
                "steps": pre + fine, "pretrain_steps": pre, "finetune_steps": fine,
                "n_params": count_parameters(model), "train_seconds": info["train_seconds"] if info else 0.0,
                "final_loss": info["final_loss"] if info else None, "curve_steps": curve[0], "curve_loss": curve[1],
            })

        info = train_timed(transformer, corpus.train, steps=pretrain_steps, lr=lr, seed=seed, **train)
        row(LINEARIZATION_STAGES[0], transformer, info, pre=pretrain_steps, fine=0)
        try:
            converted = linearize(transformer, attention=attention, conv=conv, **options)
        except (ValueError, TypeError) as err:
            raise ValueError(f"model_options for linearize: {err}") from err
        del transformer
        row(LINEARIZATION_STAGES[1], converted, None, pre=pretrain_steps, fine=0)
        info = train_timed(converted, corpus.train, steps=finetune_steps, lr=finetune_lr, seed=seed + 1, **train)
        row(LINEARIZATION_STAGES[2], converted, info, pre=pretrain_steps, fine=finetune_steps, offset=pretrain_steps)
        built_options = {k: v for k, v in vars(converted.config).items()
                         if k not in ("vocab_size", "d_model", "n_layers", "n_heads")}
        del converted
        info = train_timed(scratch, corpus.train, steps=pretrain_steps + finetune_steps, lr=lr, seed=seed, **train)
        row(LINEARIZATION_STAGES[3], scratch, info, pre=pretrain_steps + finetune_steps, fine=0)
        del scratch
        torch_threads = torch.get_num_threads()
    config = {
        "seq_len": seq_len, "d_model": d_model, "n_layers": n_layers, "n_heads": n_heads,
        "pretrain_steps": pretrain_steps, "finetune_steps": finetune_steps, "batch_size": batch_size, "lr": lr,
        "finetune_lr": finetune_lr, "seed": seed, "attention": attention, "conv": conv,
        "model_options": options, "linearized_options": built_options,
        "scratch_options": scratch_options, "eval_max_windows": eval_max_windows,
        "max_bytes": max_bytes, "eval_tokens": n_eval, "vocab_size": corpus.vocab_size,
        "torch_threads": torch_threads,
        "eval": "perplexity at context seq_len on non-overlapping windows of the valid split, the same for all",
        "paper_claim": "a pretrained LLM can be linearized (weights copied, conv kernel and alpha zero-initialized) "
                       "and recovered by brief fine-tuning (You et al., ICML 2024, arXiv:2406.07368)",
    }
    corpus_desc = {k: v for k, v in corpus.description.items() if k != "file_names"}
    return {"rows": rows, "config": config, "device": bench.device_name(dev), "corpus": corpus_desc,
            "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------


def _axes(ax: Any) -> tuple[Any, ...]:
    """``ax`` None: a new figure with two Axes; one Axes: ``(ax,)``; a pair: the pair."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, pair = plt.subplots(1, 2, figsize=(12, 4.2))
        return pair[0], pair[1]
    if hasattr(ax, "bar"):
        return (ax,)
    try:
        axes = tuple(ax)
    except TypeError:
        raise ValueError(f"ax must be None, a matplotlib Axes or a pair of Axes, got {ax!r}") from None
    if len(axes) != 2 or not all(hasattr(a, "bar") for a in axes):
        raise ValueError(f"ax must be None, a matplotlib Axes or a pair of Axes, got {len(axes)} items")
    return axes


def _rows(res: Any, key: str, what: str) -> list[dict[str, Any]]:
    rows = list(res.get("rows", [])) if isinstance(res, dict) else []
    rows = [r for r in rows if key in r and "perplexity" in r]
    if not rows:
        raise ValueError(f"res must be a {what} result with rows")
    return rows


def _bars(ax: Any, labels: list[str], ppls: list[float], title: str) -> None:
    xs = np.arange(len(labels))
    bars = ax.bar(xs, ppls, color=[_COLORS.get(label, "tab:cyan") for label in labels])
    for b, p in zip(bars, ppls):
        ax.annotate(f"{p:.2f}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                    fontsize=8)
    finite = [p for p in ppls if math.isfinite(p)]
    if finite:
        ax.set_ylim(0, 1.12 * max(finite))  # room for the annotations
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("validation perplexity (bytes)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)


def _curves(ax: Any, rows: list[dict[str, Any]], key: str, title: str) -> None:
    for r in rows:
        if r.get("curve_steps"):
            ax.plot(r["curve_steps"], r["curve_loss"], color=_COLORS.get(r[key]), label=r[key])
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (nats per byte, binned mean)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def plot_linearized_perplexity(res: dict[str, Any], ax: Any = None) -> tuple[Any, ...]:
    """Validation perplexity per variant (bars) and the training-loss curves of :func:`run_linearized_perplexity`.

    Args:
        res: a :func:`run_linearized_perplexity` result (or a stored record with the same rows).
        ax: None (a new figure: bars left, curves right), one matplotlib Axes (bars only) or a
            pair of Axes ``(ax_bars, ax_curves)``.

    Returns:
        The Axes drawn, as a tuple: ``(ax_bars, ax_curves)`` or ``(ax_bars,)``. The bars are
        labelled with the variants and annotated with their perplexity; each curve is labelled with
        its variant; titles name the device and sizes.

    Raises:
        ValueError: ``res`` has no rows, or ``ax`` is not None, an Axes or a pair of Axes.
    """
    rows = _rows(res, "variant", "run_linearized_perplexity")
    axes = _axes(ax)
    cfg = res.get("config", {})
    sizes = (f"seq_len {cfg.get('seq_len')}, d_model {cfg.get('d_model')}, {cfg.get('n_layers')} layers, "
             f"{cfg.get('steps')} steps")
    where = res.get("device", "?")
    _bars(axes[0], [r["variant"] for r in rows], [r["perplexity"] for r in rows],
          f"Linear attention, augmented: validation perplexity\n{sizes} ({where})")
    if len(axes) == 2:
        _curves(axes[1], rows, "variant", f"Training loss, same batches for every variant\n{where}")
    return axes


def plot_linearization(res: dict[str, Any], ax: Any = None) -> tuple[Any, ...]:
    """Perplexity per stage (bars) and the training-loss curves of :func:`run_linearization`.

    The fine-tuning curve starts at ``pretrain_steps``, after the Transformer's, so it can be read
    against the from-scratch curve, which covers the same total number of steps.

    Args:
        res: a :func:`run_linearization` result (or a stored record with the same rows).
        ax: None (a new figure: bars left, curves right), one Axes (bars only) or a pair of Axes.

    Returns:
        The Axes drawn, as a tuple (``(ax_bars, ax_curves)`` or ``(ax_bars,)``); bars labelled with
        the stage and its steps, annotated with the perplexity; titles name the architecture and
        the device.

    Raises:
        ValueError: ``res`` has no rows, or ``ax`` is not None, an Axes or a pair of Axes.
    """
    rows = _rows(res, "stage", "run_linearization")
    axes = _axes(ax)
    cfg = res.get("config", {})
    arch = f"{cfg.get('attention', '?')} attention" + (" + DWConv" if cfg.get("conv") else "")
    where = res.get("device", "?")
    labels = [f"{r['stage']}\n({r['steps']} steps)" for r in rows]
    _bars(axes[0], labels, [r["perplexity"] for r in rows],
          f"Linearizing a softmax Transformer into {arch}\nvalidation perplexity ({where})")
    for patch, r in zip(axes[0].patches, rows):
        patch.set_color(_COLORS.get(r["stage"], "tab:cyan"))
    if len(axes) == 2:
        _curves(axes[1], rows, "stage", f"Training loss: pretrain, then fine-tune vs from scratch\n{where}")
    return axes


# ----------------------------------------------------------------------------------------------
# Reference runs (stored by scripts/run_experiment.py, loaded by the chapter)
# ----------------------------------------------------------------------------------------------

from .stored import StoredExperiment, register  # noqa: E402

# One unit per variant: every variant is built after torch.manual_seed(seed) and trained on the
# batches of seed, so a variant's result is the same alone or with the others.
register(StoredExperiment(
    name="linearized_perplexity", chapter="07_linearized_llms", run=run_linearized_perplexity,
    config=linearized_perplexity_config, unit_arg="variants", default_units=DEFAULT_LINEARIZED_VARIANTS,
    presets=("cpu", "gpu"),
    description="linear attention + DWConv / grouping from scratch, and the leaky centered conv (6 LMs)",
    run_options={"progress": False}))

# One unit: the four stages are sequential (stage 2 converts stage 1's model, stage 3 fine-tunes it).
register(StoredExperiment(
    name="linearization", chapter="07_linearized_llms", run=run_linearization, config=linearization_config,
    unit_arg=None, presets=("cpu", "gpu"),
    description="pretrain a softmax Transformer, linearize it, fine-tune; vs the same from scratch",
    run_options={"progress": False}))
