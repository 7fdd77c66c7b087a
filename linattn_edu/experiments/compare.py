"""Chapter 8: every mechanism of the book on the same axes, from real runs.

Nine sequence mixers, each as built in its chapter (:data:`MECHANISMS`): softmax attention, a
sliding window, ALiBi, linear attention with the elu and the Taylor feature maps, Based, Hawk,
Griffin and the linearized-LLM block. Three experiments, each one function that returns a
results dict, measure them with the same sizes, data, seeds and budget:

1. **Recall against state** (:func:`run_comparison_mqar`): MQAR accuracy against the bytes of
   decode state, through :func:`~linattn_edu.experiments.mqar_sweep.run_mqar_sweep` with one
   family per mechanism, in Zoology's MQAR stack (``stack="zoology"``: a BaseConv layer, then a
   layer with the mechanism's mixer; Hawk, Griffin and the linearized block as built, with
   their own convolutions), as in Chapter 5.
2. **Language modelling** (:func:`run_comparison_lm`): byte-level LMs trained on the ``stdlib``
   corpus at ``train_len`` tokens and scored at ``train_len`` and ``eval_factor · train_len``
   (Chapter 3's recipe and helpers).
3. **Speed and memory** (:func:`run_comparison_speed`): time to prefill a prompt of ``T`` tokens
   and time per generated token after it, and the decode state in bytes (per sequence and per
   token of context), against ``T``, for untrained models of one size.

:func:`run_comparison` runs all three with the sizes of :data:`COMPARISON_PRESETS`;
:func:`comparison_table` condenses them into one row per mechanism, :func:`recommend` reads the
table (which mechanism wins which job, computed, not written by hand) and
:func:`plot_comparison` draws the four panels of the chapter.

**Stored reference runs.** Chapter 8 does not train its reference live. The language models and
the timings are the stored experiments ``compare_lm`` and ``compare_speed`` (one unit per
mechanism; ``python scripts/run_experiment.py compare_lm --preset cpu``, or
``scripts/compare_all.py`` for both), and the MQAR column is read from Chapter 5's stored MQAR
study (:func:`load_study`, :func:`mqar_from_study`: each mechanism's ``"study"`` family, best
learning rate per state point, at the complete setting where the most families leave the chance
plateau). :func:`stored_comparison`
assembles the three into :func:`run_comparison`'s schema, so the table, the verdicts and the
figure take live and stored results alike. The chapter's live cells are miniatures
(:func:`live_config`, the ``"mini"`` preset).

The numbers are book-scale: small models, one seed, a CPU budget. Read the *orderings* and the
*trends with T*, not the absolute values; the chapter discusses which of them match the papers.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .. import bench, runtime
from ..data import load_corpus
from ..models import build_model, count_parameters, family_info, model_state_bytes
from ._args import check_int as _int, check_positive as _positive, resolve_device as _device
from ._common import check_lens, eval_text, sync, time_decode, limited_threads, train_and_evaluate
from .mqar_sweep import run_mqar_sweep

__all__ = [
    "MECHANISMS",
    "COMPARISON_PRESETS",
    "COLORS",
    "MARKERS",
    "rows_by_mechanism",
    "comparison_config",
    "live_config",
    "compare_lm_config",
    "compare_speed_config",
    "mechanism_models",
    "run_comparison_mqar",
    "run_comparison_lm",
    "run_comparison_speed",
    "run_comparison",
    "comparison_table",
    "recommend",
    "comparison_markdown",
    "plot_comparison",
    "load_study",
    "study_coverage",
    "mqar_from_study",
    "describe_study",
    "comparison_provenance",
    "stored_comparison",
]

#: The mechanisms compared, in the book's order. For each: the chapter that builds it, the zoo
#: ``kind`` and options of its language model (``"{window}"`` and ``"{feature_dim}"`` are filled
#: from the experiment's ``window`` / ``feature_dim``), its MQAR family in
#: :func:`~linattn_edu.experiments.mqar_sweep.model_variants` (the live :func:`run_comparison_mqar`)
#: and its family in the stored MQAR study (``"study"``,
#: :data:`~linattn_edu.experiments.mqar_study.STUDY_FAMILIES`; None: the study has no such family).
#: The study's ``based`` family is Taylor linear attention alone (the Based paper's MQAR model, this
#: chapter's "linear (Taylor)"); its ``based_window`` adds a sliding window (the Based LM's pairing,
#: this chapter's "Based").
#:
#: :meta hide-value:
MECHANISMS: dict[str, dict[str, Any]] = {
    "softmax": {"chapter": 1, "kind": "transformer", "options": {"pos": "rope"}, "mqar": "attention",
                "study": "attention"},
    "sliding window": {"chapter": 2, "kind": "transformer", "options": {"pos": "rope", "window": "{window}"},
                       "mqar": "sliding_window", "study": "sliding_window"},
    "ALiBi": {"chapter": 3, "kind": "transformer", "options": {"pos": "alibi"}, "mqar": "alibi", "study": None},
    "linear (elu)": {"chapter": 4, "kind": "linear", "options": {"feature_map": "elu"}, "mqar": "linear_elu",
                     "study": "linear_elu"},
    "linear (Taylor)": {"chapter": 5, "kind": "linear",
                        "options": {"feature_map": "taylor", "feature_dim": "{feature_dim}"},
                        "mqar": "linear_taylor", "study": "based"},
    "Based": {"chapter": 5, "kind": "based", "options": {"feature_dim": "{feature_dim}", "window": "{window}"},
              "mqar": "based", "study": "based_window"},
    "Hawk": {"chapter": 6, "kind": "hawk", "options": {}, "mqar": "hawk", "study": "hawk"},
    "Griffin": {"chapter": 6, "kind": "griffin", "options": {"window": "{window}"}, "mqar": "griffin",
                "study": "griffin"},
    "linearized": {"chapter": 7, "kind": "linearized", "options": {}, "mqar": "linearized",
                   "study": "linearized"},
}

#: Sizes per preset (``"fast"``, ``"cpu"``, ``"gpu"`` follow :func:`linattn_edu.runtime.mode`).
#: ``mqar``: arguments of :func:`run_comparison_mqar`; ``lm``: of :func:`run_comparison_lm`;
#: ``speed``: of :func:`run_comparison_speed`.
#:
#: :meta hide-value:
COMPARISON_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Tests: every mechanism once, at toy sizes (seconds).
    "fast": {
        "mqar": dict(seq_len=16, n_pairs=2, vocab_size=32, d_model=16, n_heads=2, steps=4, batch_size=8,
                     lr=3e-3, n_train=64, n_test=32, window=4, feature_dim=2, elu_dim=4),
        "lm": dict(train_len=16, eval_factor=4, d_model=32, n_layers=2, n_heads=2, steps=4, batch_size=4,
                   lr=3e-3, window=8, feature_dim=2, eval_max_windows=2, max_bytes=200_000),
        "speed": dict(context_lens=(8, 32), d_model=32, n_layers=2, n_heads=2, batch_size=1, steps=2, repeat=1,
                      window=8, feature_dim=2, prefill_chunk=16),
    },
    # The book on a 2-core CPU (Chapter 8 measures and prints the time of each part).
    "cpu": {
        # Chapter 5's setting and budget: (L, pairs) = (64, 8), 800 steps of 32 examples.
        "mqar": dict(seq_len=64, n_pairs=8, vocab_size=128, d_model=64, n_heads=2, steps=800, batch_size=32,
                     lr=3e-3, n_train=16_000, n_test=1000, window=16, feature_dim=4, elu_dim=16),
        # The stored reference run (scripts/run_experiment.py compare_lm --preset cpu, ~15 min of one
        # core): Chapter 6's length-generalization setting (64 tokens, scored at 64 and 256) with
        # 2.5x its 400 steps and 4x its evaluation windows.
        "lm": dict(train_len=64, eval_factor=4, d_model=64, n_layers=2, n_heads=4, steps=1000, batch_size=16,
                   lr=3e-3, window=16, feature_dim=4, eval_max_windows=32, max_bytes=None),
        # The stored reference timings (scripts/run_experiment.py compare_speed --preset cpu, a few
        # minutes): the old live sizes plus a 16k-token context, where the caches' costs dominate.
        "speed": dict(context_lens=(256, 1024, 4096, 16384), d_model=128, n_layers=2, n_heads=4, batch_size=1, steps=16,
                      repeat=3, window=64, feature_dim=8, prefill_chunk=256),
    },
    # The chapter's live miniatures on a CPU or GPU (seconds): the same code at tiny sizes, shown
    # next to the stored reference runs and labelled as miniatures.
    "mini": {
        "mqar": dict(seq_len=32, n_pairs=4, vocab_size=64, d_model=32, n_heads=2, steps=100, batch_size=32,
                     lr=3e-3, n_train=2000, n_test=200, window=8, feature_dim=4, elu_dim=8),
        "lm": dict(train_len=32, eval_factor=4, d_model=32, n_layers=2, n_heads=2, steps=30, batch_size=8,
                   lr=3e-3, window=8, feature_dim=4, eval_max_windows=4, max_bytes=400_000),
        "speed": dict(context_lens=(32, 128, 512), d_model=64, n_layers=2, n_heads=2, batch_size=1, steps=6,
                      repeat=2, window=32, feature_dim=4, prefill_chunk=256),
    },
    # A CUDA GPU: bigger models, longer contexts (not run yet; expect tens of minutes). Windows follow
    # the papers where they fit: the official Based LM's window_size 256 (128 previous keys + the
    # current one) is window=129 here, for MQAR and the LM; the speed part keeps Griffin's 1024.
    "gpu": {
        "mqar": dict(seq_len=256, n_pairs=32, vocab_size=8192, d_model=128, n_heads=2, steps=3000, batch_size=128,
                     lr=3e-3, n_train=100_000, n_test=3000, window=129, feature_dim=16, elu_dim=64),
        "lm": dict(train_len=256, eval_factor=4, d_model=256, n_layers=4, n_heads=8, steps=2000, batch_size=32,
                   lr=1e-3, window=129, feature_dim=16, eval_max_windows=32, max_bytes=None),
        "speed": dict(context_lens=(1024, 4096, 16384), d_model=1024, n_layers=8, n_heads=16, batch_size=8,
                      steps=32, repeat=3, window=1024, feature_dim=16, prefill_chunk=2048),
    },
}

#: Colour of each mechanism in every plot of the chapter: its MQAR family's registered colour
#: (:func:`~linattn_edu.models.family_info`).
COLORS = {name: family_info(spec["mqar"]).color for name, spec in MECHANISMS.items()}
#: Marker of each mechanism in every plot of the chapter (its MQAR family's registered marker).
MARKERS = {name: family_info(spec["mqar"]).marker for name, spec in MECHANISMS.items()}


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------


def comparison_config(preset: str | None = None) -> dict[str, dict[str, Any]]:
    """Sizes for :func:`run_comparison`: ``run_comparison(**comparison_config())``.

    Args:
        preset: None picks by :func:`linattn_edu.runtime.mode` (``"fast"`` under the tests,
            ``"cpu"`` without a GPU, ``"gpu"`` with one); or one of :data:`COMPARISON_PRESETS`.

    Returns:
        A deep copy: ``{"mqar": {...}, "lm": {...}, "speed": {...}}``.

    Raises:
        ValueError: unknown ``preset``.
    """
    if preset is None:
        return copy.deepcopy(runtime.pick(fast=COMPARISON_PRESETS["fast"], cpu=COMPARISON_PRESETS["cpu"],
                                          gpu=COMPARISON_PRESETS["gpu"]))
    if isinstance(preset, str) and preset in COMPARISON_PRESETS:
        return copy.deepcopy(COMPARISON_PRESETS[preset])
    raise ValueError(f"preset must be None or one of {list(COMPARISON_PRESETS)}, got {preset!r}")


def live_config() -> dict[str, dict[str, Any]]:
    """Sizes of the chapter's live miniatures: ``"fast"`` under the tests, else ``"mini"`` (seconds
    on a CPU; also on a GPU, where the stored ``gpu`` run, if any, is the reference)."""
    from .stored import live_preset

    return comparison_config(live_preset())


def _part_config(part: str, preset: str | None) -> dict[str, Any]:
    """Keyword arguments of one stored part at ``preset`` (None: this machine's, as
    :func:`comparison_config`), with ``mechanisms`` listing every mechanism (the units)."""
    cfg = comparison_config(preset)[part]
    return {"mechanisms": list(MECHANISMS), **cfg}


def compare_lm_config(preset: str | None = None) -> dict[str, Any]:
    """``run_comparison_lm(**compare_lm_config(preset))``: the stored experiment ``"compare_lm"``."""
    return _part_config("lm", preset)


def compare_speed_config(preset: str | None = None) -> dict[str, Any]:
    """``run_comparison_speed(**compare_speed_config(preset))``: the stored experiment ``"compare_speed"``."""
    return _part_config("speed", preset)


def _check_mechanisms(mechanisms: Any) -> tuple[str, ...]:
    if mechanisms is None:
        return tuple(MECHANISMS)
    if isinstance(mechanisms, str):
        mechanisms = (mechanisms,)
    try:
        out = tuple(mechanisms)
    except TypeError:
        raise ValueError(f"mechanisms must be names from {list(MECHANISMS)}, got {mechanisms!r}") from None
    if not out or len(set(out)) != len(out) or any(m not in MECHANISMS for m in out):
        raise ValueError(f"mechanisms must be distinct names from {list(MECHANISMS)}, got {mechanisms!r}")
    return out


def mechanism_models(
    mechanisms: Sequence[str] | None = None, *, window: int, feature_dim: int
) -> dict[str, dict[str, Any]]:
    """``{mechanism: {"kind", "options"}}``: what :func:`build_model` gets for each mechanism's LM.

    ``"{window}"`` / ``"{feature_dim}"`` in :data:`MECHANISMS` become ``window`` / ``feature_dim``:
    the sliding window, Based's window and Griffin's local attention share one window, and the
    Taylor map of linear attention and of Based one feature dimension, so that the mechanisms
    differ in their mixer, not in a budget chosen per mechanism.

    Raises:
        ValueError: an unknown mechanism or a non-positive ``window`` / ``feature_dim``.
    """
    names = _check_mechanisms(mechanisms)
    fill = {"{window}": _int(window, "window"), "{feature_dim}": _int(feature_dim, "feature_dim")}
    return {m: {"kind": MECHANISMS[m]["kind"],
                "options": {k: fill.get(v, v) if isinstance(v, str) else v
                            for k, v in MECHANISMS[m]["options"].items()}}
            for m in names}


# ----------------------------------------------------------------------------------------------
# 1. Recall against state: MQAR
# ----------------------------------------------------------------------------------------------


def run_comparison_mqar(
    mechanisms: Sequence[str] | None = None,
    *,
    seq_len: int,
    n_pairs: int,
    vocab_size: int,
    d_model: int,
    n_heads: int,
    steps: int,
    batch_size: int,
    lr: float,
    n_train: int,
    n_test: int,
    window: int,
    feature_dim: int,
    elu_dim: int,
    seed: int = 0,
    stack: str = "zoology",
    device: torch.device | str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """MQAR accuracy and decode-state bytes of one 2-layer model per mechanism.

    One :func:`~linattn_edu.experiments.mqar_sweep.run_mqar_sweep` over the families of the
    mechanisms (Chapter 5's architecture, training and LeCun q/k initialization), one variant per
    family: a sliding window of ``window`` tokens, elu features of dimension ``elu_dim``, Taylor
    features of dimension ``feature_dim`` (``F = 1 + d + d²``), Based with ``feature_dim`` and
    ``window``, Griffin with ``window``. Full attention (RoPE or ALiBi) sees all ``seq_len`` tokens.

    Args:
        mechanisms: names from :data:`MECHANISMS` (default all).
        seq_len, n_pairs, vocab_size: the MQAR task (``4·n_pairs <= seq_len < vocab_size``).
        d_model, n_heads, steps, batch_size, lr, n_train, n_test, seed: as in ``run_mqar_sweep``.
        window, feature_dim, elu_dim: the state budgets above.
        stack: ``"zoology"`` (Zoology's MQAR models, default) or ``"conv_prefixed"`` (this book's
            variant); see :mod:`~linattn_edu.experiments.mqar_sweep`.
        device: default :func:`linattn_edu.runtime.device`.
        progress: a tqdm bar.

    Returns:
        The ``run_mqar_sweep`` result, each row with a ``mechanism`` key added.

    Raises:
        ValueError: bad arguments, naming them.
    """
    names = _check_mechanisms(mechanisms)
    window, feature_dim, elu_dim = _int(window, "window"), _int(feature_dim, "feature_dim"), _int(elu_dim, "elu_dim")
    families = [MECHANISMS[m]["mqar"] for m in names]
    res = run_mqar_sweep(
        settings=[(seq_len, n_pairs)], vocab_size=vocab_size, d_model=d_model, n_layers=2, n_heads=n_heads,
        steps=steps, batch_size=batch_size, lr=lr, n_train=n_train, n_test=n_test, seed=seed, windows=[window],
        feature_dims={"linear_elu": [elu_dim], "linear_taylor": [feature_dim]},
        based=[{"feature_dim": feature_dim, "window": window}], families=families,
        griffin_windows=[window], stack=stack, device=device, progress=progress)
    by_family = {MECHANISMS[m]["mqar"]: m for m in names}
    for row in res["rows"]:
        row["mechanism"] = by_family[row["family"]]
    res["config"]["mechanisms"] = list(names)
    return res


# ----------------------------------------------------------------------------------------------
# 2. Language modelling at the training length and beyond
# ----------------------------------------------------------------------------------------------


def run_comparison_lm(
    mechanisms: Sequence[str] | None = None,
    *,
    train_len: int,
    eval_factor: int = 4,
    d_model: int,
    n_layers: int,
    n_heads: int,
    steps: int,
    batch_size: int,
    lr: float = 3e-3,
    window: int,
    feature_dim: int,
    seed: int = 0,
    eval_max_windows: int | None = None,
    max_bytes: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Perplexity at ``train_len`` and ``eval_factor · train_len`` of one byte-level LM per mechanism.

    Chapter 3's recipe (:func:`~linattn_edu.experiments.extrapolation.run_extrapolation`'s
    helpers): every model is built by :func:`mechanism_models` after ``torch.manual_seed(seed)``,
    trained with :func:`~linattn_edu.train.train_lm` on the same batches (``steps`` AdamW steps of
    ``batch_size`` windows of ``train_len`` tokens of the ``stdlib`` train split), then scored with
    :func:`~linattn_edu.train.evaluate_perplexity` on non-overlapping windows of both lengths over
    the same valid text.

    Args:
        mechanisms: names from :data:`MECHANISMS` (default all), trained in this order.
        train_len: training context ``L`` (>= 2).
        eval_factor: the long evaluation length is ``eval_factor · L`` (>= 2).
        d_model, n_layers, n_heads: shared sizes (``d_model / n_heads`` divisible by 4 for Griffin).
        steps, batch_size, lr, seed: the optimization.
        window, feature_dim: see :func:`mechanism_models`.
        eval_max_windows: windows of the long length scored (None: the whole valid split).
        max_bytes: keep the first ``max_bytes`` bytes of the corpus (None: all).
        device: default :func:`linattn_edu.runtime.device`.
        progress: tqdm bars.
        threads: CPU threads during the run (restored afterwards); None: unchanged.

    Returns:
        ``{"rows", "config", "device", "corpus", "seconds"}``; one row per mechanism:
        ``mechanism``, ``kind``, ``ppl_train_len``, ``ppl_long``, ``long_over_train`` (their ratio),
        ``n_params``, ``final_loss``, ``tokens_per_s`` (training) and ``train_seconds``.

    Raises:
        ValueError: bad arguments, naming them.
    """
    start = time.perf_counter()
    names = _check_mechanisms(mechanisms)
    train_len, eval_factor = _int(train_len, "train_len", 2), _int(eval_factor, "eval_factor", 2)
    d_model, n_layers, n_heads = _int(d_model, "d_model"), _int(n_layers, "n_layers"), _int(n_heads, "n_heads")
    steps, batch_size, seed = _int(steps, "steps"), _int(batch_size, "batch_size"), _int(seed, "seed", 0)
    lr = _positive(lr, "lr")
    if eval_max_windows is not None:
        eval_max_windows = _int(eval_max_windows, "eval_max_windows")
    if threads is not None:
        threads = _int(threads, "threads")
    specs = mechanism_models(names, window=window, feature_dim=feature_dim)
    lens = (train_len, eval_factor * train_len)
    dev = _device(device)
    from tqdm.auto import tqdm

    rows: list[dict[str, Any]] = []
    with limited_threads(dev, threads):
        corpus = load_corpus("stdlib", max_bytes=max_bytes)
        eval_tokens, n_eval = eval_text(corpus, lens, eval_max_windows, max_bytes, train_len)
        bar = tqdm(names, desc="language models", disable=not progress)
        for name in bar:
            bar.set_postfix(model=name, refresh=True)
            spec = specs[name]
            torch.manual_seed(seed)
            try:
                model = build_model(spec["kind"], vocab_size=corpus.vocab_size, d_model=d_model, n_layers=n_layers,
                                    n_heads=n_heads, **spec["options"])
            except ValueError as err:
                raise ValueError(f"sizes for mechanism {name!r}: {err}") from err
            ppls, info = train_and_evaluate(model, corpus.train, eval_tokens, lens, train_len=train_len,
                                             batch_size=batch_size, steps=steps, lr=lr, seed=seed, dev=dev,
                                             progress=False)
            rows.append({"mechanism": name, "kind": spec["kind"], "ppl_train_len": ppls[0], "ppl_long": ppls[1],
                         "long_over_train": ppls[1] / ppls[0], **info})
        bar.close()
        torch_threads = torch.get_num_threads()
    config = {
        "mechanisms": list(names), "train_len": train_len, "eval_lens": list(lens), "d_model": d_model,
        "n_layers": n_layers, "n_heads": n_heads, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
        "window": window, "feature_dim": feature_dim, "eval_max_windows": eval_max_windows, "max_bytes": max_bytes,
        "eval_tokens": n_eval, "models": specs, "torch_threads": torch_threads,
        "eval": "non-overlapping windows of each length over the same valid text, for every model",
    }
    corpus_desc = {k: v for k, v in corpus.description.items() if k != "file_names"}
    return {"rows": rows, "config": config, "device": bench.device_name(dev), "corpus": corpus_desc,
            "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------------------------
# 3. Prefill and decode time, state bytes
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def _prefill(model: torch.nn.Module, prompt: torch.Tensor, chunk: int) -> tuple[torch.Tensor, Any]:
    """Chunked prefill of ``prompt (B, T)`` from an empty cache: ``(last logits (B, V), cache)``."""
    cache, logits = None, None
    for start in range(0, prompt.shape[1], chunk):
        out, cache = model.prefill(prompt[:, start:start + chunk], cache)
        logits = out[:, -1]
    return logits, cache


def _time_prefill(model: torch.nn.Module, prompt: torch.Tensor, chunk: int, repeat: int,
                  dev: torch.device) -> tuple[float, torch.Tensor, Any]:
    """``(min seconds over repeat runs after one warm-up, logits, cache)`` of :func:`_prefill`."""
    best = math.inf
    for run in range(repeat + 1):
        sync(dev)
        t0 = time.perf_counter()
        logits, cache = _prefill(model, prompt, chunk)
        sync(dev)
        if run:
            best = min(best, time.perf_counter() - t0)
    return best, logits, cache


def run_comparison_speed(
    mechanisms: Sequence[str] | None = None,
    *,
    context_lens: Iterable[int],
    d_model: int,
    n_layers: int,
    n_heads: int,
    batch_size: int = 1,
    steps: int = 8,
    repeat: int = 2,
    window: int,
    feature_dim: int,
    prefill_chunk: int = 256,
    vocab_size: int = 256,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Prefill time, decode time per token and decode-state bytes against the context ``T``.

    For each mechanism, one untrained float32 model (:func:`mechanism_models`, ``eval()``,
    ``no_grad``) and, for each ``T`` of ``context_lens``, the same random prompt of ``T`` tokens:

    - **prefill**: ``model.prefill`` over the prompt in chunks of ``prefill_chunk`` tokens, from an
      empty cache (chunked prefill, as inference servers do: it bounds the memory of the attention
      scores, and a windowed or recurrent model never holds more than its state plus one chunk).
      One warm-up run, then the minimum of ``repeat`` runs.
    - **decode**: ``steps`` greedy ``model.step`` calls from the prefilled cache, timed like the
      Griffin chapter's :func:`~linattn_edu.experiments.recurrent.decode_latency`.
    - **state**: :func:`~linattn_edu.models.model_state_bytes` at ``T`` (per sequence, float32),
      and that divided by ``T``: bytes per token of context. A KV cache costs the same for every
      token; a fixed-size state costs less per token the longer the context.

    Args:
        mechanisms: names from :data:`MECHANISMS` (default all).
        context_lens: prompt lengths ``T`` (distinct positive ints).
        d_model, n_layers, n_heads, vocab_size: model sizes shared by every mechanism.
        batch_size: sequences prefilled and decoded together.
        steps, repeat: timed decode steps, and timed runs (minimum kept).
        window, feature_dim: see :func:`mechanism_models`.
        prefill_chunk: tokens per ``prefill`` call.
        seed: weights and prompt.
        device: default :func:`linattn_edu.runtime.device`.
        progress: a tqdm bar.
        threads: CPU threads during the run (restored afterwards); None: unchanged. One thread by
            default: steadier timings on a shared machine (see ``decode_latency``).

    Returns:
        ``{"rows", "config", "device", "seconds"}``; one row per (mechanism, ``T``):
        ``mechanism``, ``context_len``, ``prefill_ms``, ``prefill_tokens_per_s``,
        ``decode_ms_per_token`` (one step of the whole batch), ``state_bytes`` (per sequence),
        ``state_bytes_per_token`` and ``n_params``.

    Raises:
        ValueError: bad arguments, naming them.
    """
    start = time.perf_counter()
    names = _check_mechanisms(mechanisms)
    lens = check_lens(context_lens, "context_lens")
    d_model, n_layers, n_heads = _int(d_model, "d_model"), _int(n_layers, "n_layers"), _int(n_heads, "n_heads")
    batch_size, steps, repeat = _int(batch_size, "batch_size"), _int(steps, "steps"), _int(repeat, "repeat")
    prefill_chunk, vocab_size = _int(prefill_chunk, "prefill_chunk"), _int(vocab_size, "vocab_size", 2)
    seed = _int(seed, "seed", 0)
    if threads is not None:
        threads = _int(threads, "threads")
    specs = mechanism_models(names, window=window, feature_dim=feature_dim)
    dev = _device(device)
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, vocab_size, (batch_size, lens[-1]), generator=gen).to(dev)
    rows: list[dict[str, Any]] = []
    with limited_threads(dev, threads):
        bar = tqdm(total=len(names) * len(lens), desc="prefill and decode", disable=not progress)
        for name in names:
            torch.manual_seed(seed)
            model = build_model(specs[name]["kind"], vocab_size=vocab_size, d_model=d_model, n_layers=n_layers,
                                n_heads=n_heads, **specs[name]["options"]).to(dev).eval()
            n_params = count_parameters(model)
            for length in lens:
                bar.set_postfix_str(f"{name} T={length}", refresh=True)
                seconds, logits, cache = _time_prefill(model, prompt[:, :length], prefill_chunk, repeat, dev)
                decode = time_decode(model, logits, cache, steps, repeat, dev)
                state = int(model_state_bytes(model, seq_len=length))
                rows.append({
                    "mechanism": name, "context_len": length, "prefill_ms": 1e3 * seconds,
                    "prefill_tokens_per_s": batch_size * length / seconds,
                    "decode_ms_per_token": 1e3 * decode / steps, "state_bytes": state,
                    "state_bytes_per_token": state / length, "n_params": int(n_params),
                })
                bar.update(1)
            del model
        bar.close()
        torch_threads = torch.get_num_threads()
    config = {
        "mechanisms": list(names), "context_lens": lens, "d_model": d_model, "n_layers": n_layers,
        "n_heads": n_heads, "batch_size": batch_size, "steps": steps, "repeat": repeat, "window": window,
        "feature_dim": feature_dim, "prefill_chunk": prefill_chunk, "vocab_size": vocab_size, "seed": seed,
        "models": specs, "dtype": "float32", "weights": "random (untrained)", "torch_threads": torch_threads,
        "timing": "one warm-up run, then the min over repeat runs; decode: greedy model.step after the prefill",
    }
    return {"rows": rows, "config": config, "device": bench.device_name(dev), "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------------------------
# All three, the table, the verdicts, the figure
# ----------------------------------------------------------------------------------------------


def run_comparison(
    mqar: dict[str, Any],
    lm: dict[str, Any],
    speed: dict[str, Any],
    *,
    mechanisms: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the three experiments: ``{"mqar", "lm", "speed", "device", "seconds"}`` (their results).

    Args:
        mqar, lm, speed: keyword arguments of :func:`run_comparison_mqar`,
            :func:`run_comparison_lm` and :func:`run_comparison_speed` (see :func:`comparison_config`).
        mechanisms: names from :data:`MECHANISMS` (default all), for all three.
        device, progress: passed to each.

    Raises:
        ValueError: bad arguments, naming them (``mqar``, ``lm``, ``speed`` must be dicts).
    """
    for value, name in ((mqar, "mqar"), (lm, "lm"), (speed, "speed")):
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be a dict of keyword arguments, got {type(value).__name__}")
    start = time.perf_counter()
    names = _check_mechanisms(mechanisms)
    out = {
        "mqar": run_comparison_mqar(names, **mqar, device=device, progress=progress),
        "lm": run_comparison_lm(names, **lm, device=device, progress=progress),
        "speed": run_comparison_speed(names, **speed, device=device, progress=progress),
    }
    out["device"] = out["speed"]["device"]
    out["seconds"] = time.perf_counter() - start
    return out


def rows_by_mechanism(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Group result rows by their ``mechanism`` key, keeping the order of first appearance."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["mechanism"], []).append(r)
    return out


def _check_result(result: Any) -> None:
    if not isinstance(result, dict) or not {"mqar", "lm", "speed"} <= set(result):
        raise ValueError("result must be a run_comparison result (a dict with 'mqar', 'lm' and 'speed')")
    for part in ("mqar", "lm", "speed"):
        if result[part] is not None and not isinstance(result[part].get("rows"), list):
            raise ValueError(f"result[{part!r}] must be None or a result dict with a 'rows' list")


def _rows(result: dict[str, Any], part: str) -> list[dict[str, Any]]:
    return [] if result[part] is None else result[part]["rows"]


def _acc(row: dict[str, Any]) -> float:
    return -1.0 if row.get("accuracy") is None else row["accuracy"]


def _best_mqar(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The row of highest accuracy, the smallest state among equals."""
    return min(rows, key=lambda r: (-_acc(r), r["state_bytes"])) if rows else {}


def comparison_table(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per mechanism that condenses a :func:`run_comparison` (or :func:`stored_comparison`) result.

    Keys: ``mechanism``, ``chapter``, ``mqar_accuracy`` and ``mqar_state_bytes`` (of the
    mechanism's best MQAR model: highest accuracy, then smallest state), ``mqar_model`` (which
    model and lr that was; "not in the MQAR study" for a mechanism the stored study lacks),
    ``ppl_train_len``, ``ppl_long``, ``long_over_train``, ``prefill_ms`` and
    ``decode_ms_per_token`` at the shortest and longest context (``..._short`` / ``..._long``),
    ``state_bytes_long`` and ``state_bytes_per_token_long`` at the longest context,
    ``state_growth`` (state at the longest over the shortest context: 1 for a fixed state,
    ``T_max / T_min`` for a KV cache), ``n_params`` (of the LM). A part missing for a mechanism
    (or missing altogether: None) gives None.

    Raises:
        ValueError: ``result`` is not a :func:`run_comparison` result.
    """
    _check_result(result)
    mq = rows_by_mechanism(_rows(result, "mqar"))
    lm = rows_by_mechanism(_rows(result, "lm"))
    sp = rows_by_mechanism(_rows(result, "speed"))
    from_study = result["mqar"] is not None and result["mqar"].get("config", {}).get("source") == "mqar_study"
    table = []
    for name in MECHANISMS:
        if name not in mq and name not in lm and name not in sp and not from_study:
            continue
        m = _best_mqar(mq.get(name, []))
        if m.get("point"):
            model = f"{m['family']}, {m['point']}, lr {m['lr']:g}"
        elif m:
            model = m.get("family")
        else:
            model = "not in the MQAR study" if from_study else None
        l_ = lm.get(name, [{}])[0]
        s = sorted(sp.get(name, []), key=lambda r: r["context_len"])
        short, long = (s[0], s[-1]) if s else ({}, {})
        table.append({
            "mechanism": name, "chapter": MECHANISMS[name]["chapter"],
            "mqar_accuracy": m.get("accuracy"), "mqar_state_bytes": m.get("state_bytes"), "mqar_model": model,
            "ppl_train_len": l_.get("ppl_train_len"), "ppl_long": l_.get("ppl_long"),
            "long_over_train": l_.get("long_over_train"),
            "prefill_ms_short": short.get("prefill_ms"), "prefill_ms_long": long.get("prefill_ms"),
            "decode_ms_per_token_short": short.get("decode_ms_per_token"),
            "decode_ms_per_token_long": long.get("decode_ms_per_token"),
            "state_bytes_long": long.get("state_bytes"),
            "state_bytes_per_token_long": long.get("state_bytes_per_token"),
            "state_growth": (long["state_bytes"] / short["state_bytes"]) if s and short["state_bytes"] else None,
            "n_params": l_.get("n_params"),
        })
    return table


def _winners(table: list[dict[str, Any]], key: Any, *, largest: bool = False, where: Any = None,
             abs_tie: float = 0.0, rel_tie: float = 0.0) -> list[dict[str, Any]]:
    """The best row by ``key`` and every row within ``abs_tie`` (absolute) or ``rel_tie``
    (relative) of it, best first: differences that small are noise at book scale."""
    cands = [r for r in table if (where is None or where(r)) and key(r) is not None]
    if not cands:
        return []
    cands.sort(key=key, reverse=largest)
    best = key(cands[0])
    margin = max(abs_tie, rel_tie * abs(best))
    return [r for r in cands if abs(key(r) - best) <= margin]


def recommend(table: list[dict[str, Any]], *, recall_threshold: float = 0.9, recall_tie: float = 0.02,
              time_tie: float = 0.1) -> list[dict[str, str]]:
    """Which mechanism wins which job, read off a :func:`comparison_table` (computed, not opinion).

    Jobs (each answered by the measured numbers of this run):

    - *the highest recall*: the highest MQAR accuracy;
    - *recall on a memory budget*: the smallest MQAR state among mechanisms with accuracy
      ``>= recall_threshold`` (if none reaches it, the best accuracy per byte);
    - *quality at the training length*: the lowest perplexity at ``train_len``;
    - *inputs longer than training*: the lowest perplexity at the long length;
    - *long generations*: the lowest decode time per token at the longest context;
    - *long prompts*: the lowest prefill time at the longest context;
    - *many concurrent sequences*: the smallest state per sequence at the longest context.

    One seed of small models cannot separate close numbers, so a job names every mechanism within
    ``recall_tie`` (absolute) of the best accuracy, within ``time_tie`` (relative) of the best
    time, and within 2% of the best perplexity, best first, joined with " ≈ ".

    Returns:
        ``[{"job", "mechanism", "evidence"}, ...]`` (``evidence``: the numbers that decided it).

    Raises:
        ValueError: ``table`` is not a list of :func:`comparison_table` rows.
    """
    if not isinstance(table, list) or not all(isinstance(r, dict) and "mechanism" in r for r in table):
        raise ValueError("table must be a list of comparison_table rows")
    out: list[dict[str, str]] = []

    def add(job: str, rows: list[dict[str, Any]], evidence: str) -> None:
        if rows:
            out.append({"job": job, "mechanism": " ≈ ".join(r["mechanism"] for r in rows),
                        "evidence": "; ".join(f"{r['mechanism']}: " + evidence.format(**r) for r in rows)})

    add("the highest recall", _winners(table, lambda r: r["mqar_accuracy"], largest=True, abs_tie=recall_tie),
        "MQAR accuracy {mqar_accuracy:.3f} with {mqar_state_bytes:,} B of state")
    good = _winners(table, lambda r: r["mqar_state_bytes"],
                    where=lambda r: (r["mqar_accuracy"] or 0) >= recall_threshold and r["mqar_state_bytes"])
    if good:
        add("recall on a memory budget", good[:1],
            "the smallest state ({mqar_state_bytes:,} B) with MQAR accuracy >= "
            f"{recall_threshold:g} ({{mqar_accuracy:.3f}})")
    else:
        add("recall on a memory budget",
            _winners(table, lambda r: (r["mqar_accuracy"] or 0) / r["mqar_state_bytes"], largest=True,
                     where=lambda r: r["mqar_state_bytes"])[:1],
            "the best accuracy per byte: {mqar_accuracy:.3f} with {mqar_state_bytes:,} B")
    add("quality at the training length", _winners(table, lambda r: r["ppl_train_len"], rel_tie=0.02),
        "perplexity {ppl_train_len:.2f}")
    add("inputs longer than training", _winners(table, lambda r: r["ppl_long"], rel_tie=0.02),
        "perplexity {ppl_long:.2f} ({long_over_train:.2f}x its value at the training length)")
    add("long generations", _winners(table, lambda r: r["decode_ms_per_token_long"], rel_tie=time_tie),
        "{decode_ms_per_token_long:.2f} ms per token")
    add("long prompts", _winners(table, lambda r: r["prefill_ms_long"], rel_tie=time_tie),
        "{prefill_ms_long:.0f} ms")
    add("many concurrent sequences", _winners(table, lambda r: r["state_bytes_long"]),
        "{state_bytes_long:,} B of state per sequence")
    return out


#: Columns of :func:`comparison_markdown`: (key, header, format).
_TABLE_COLUMNS = (
    ("mechanism", "mechanism", "{}"),
    ("chapter", "ch.", "{}"),
    ("mqar_accuracy", "MQAR acc.", "{:.2f}"),
    ("mqar_state_bytes", "MQAR state (B)", "{:,}"),
    ("mqar_model", "MQAR model (best)", "{}"),
    ("ppl_train_len", "ppl at L", "{:.2f}"),
    ("ppl_long", "ppl at 4L", "{:.2f}"),
    ("prefill_ms_long", "prefill at T_max (ms)", "{:,.0f}"),
    ("decode_ms_per_token_short", "decode at T_min (ms/token)", "{:.2f}"),
    ("decode_ms_per_token_long", "decode at T_max (ms/token)", "{:.2f}"),
    ("state_bytes_long", "state at T_max (B)", "{:,}"),
    ("state_bytes_per_token_long", "state per token at T_max (B)", "{:,.1f}"),
)


def comparison_markdown(table: list[dict[str, Any]]) -> str:
    """A :func:`comparison_table` as a Markdown table (missing values shown as "n/a").

    Raises:
        ValueError: ``table`` is not a list of :func:`comparison_table` rows.
    """
    if not isinstance(table, list) or not all(isinstance(r, dict) and "mechanism" in r for r in table):
        raise ValueError("table must be a list of comparison_table rows")
    lines = ["| " + " | ".join(h for _, h, _ in _TABLE_COLUMNS) + " |",
             "| " + " | ".join(":--" if k == "mechanism" else "--:" for k, _, _ in _TABLE_COLUMNS) + " |"]
    for row in table:
        cells = [("n/a" if row.get(k) is None else fmt.format(row[k])) for k, _, fmt in _TABLE_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _missing(ax: Any, part: str, title: str, xlabel: str, ylabel: str) -> None:
    ax.text(0.5, 0.5, f"no {part} result stored", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def _label_offsets(ax: Any, points: Sequence[tuple[float, float]], *, min_gap: float = 11.0,
                   near: float = 70.0) -> list[float]:
    """Vertical offsets (points) that keep labels at data ``points`` from overlapping: labels
    whose anchors lie within ``near`` points of each other horizontally are stacked at least
    ``min_gap`` points apart, lowest first. Call after the axes' scales and limits are set."""
    to_pt = 72.0 / ax.figure.dpi
    xy = [tuple(v * to_pt for v in ax.transData.transform(p)) for p in points]
    order = sorted(range(len(xy)), key=lambda i: xy[i][1])
    placed: list[tuple[float, float]] = []  # (x, label y) in points
    out = [0.0] * len(xy)
    for i in order:
        x, y = xy[i]
        label_y = y
        for px, py in sorted(placed, key=lambda p: p[1]):
            if abs(px - x) < near and abs(py - label_y) < min_gap:
                label_y = py + min_gap
        placed.append((x, label_y))
        out[i] = label_y - y
    return out


def _plot_mqar(mqar: dict[str, Any] | None, ax: Any) -> None:
    """Panel (a): MQAR accuracy against state, one curve (or point) per mechanism, its best point labelled."""
    from matplotlib.ticker import NullFormatter

    xlabel, ylabel = "decode state per sequence (bytes, log scale)", "MQAR accuracy (fraction of queries)"
    if mqar is None:
        _missing(ax, "MQAR", "(a) Recall against state", xlabel, ylabel)
        return
    labels = []  # (name, x, y) of each mechanism's best point
    for name, rows in rows_by_mechanism(mqar["rows"]).items():
        rows = sorted(rows, key=lambda r: r["state_bytes"])
        ax.plot([r["state_bytes"] for r in rows], [max(_acc(r), 0.0) for r in rows], marker=MARKERS[name],
                color=COLORS[name], markersize=8, linestyle="-" if len(rows) > 1 else "none", label=name)
        top = _best_mqar(rows)
        labels.append((name, top["state_bytes"], max(_acc(top), 0.0)))
    cfg = mqar["config"]
    seq_len, n_pairs = cfg["settings"][0]
    source = "stored study, best lr per model" if cfg.get("source") == "mqar_study" else "live"
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a log axis overlap
    ax.set_ylim(-0.03, 1.05)
    for (name, x, y), dy in zip(labels, _label_offsets(ax, [(x, y) for _, x, y in labels])):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 4 + dy), fontsize=8, color=COLORS[name],
                    arrowprops={"arrowstyle": "-", "color": COLORS[name], "lw": 0.5} if dy else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"(a) Recall against state\n(MQAR: {seq_len} tokens, {n_pairs} pairs; {source})")


def _plot_lm(lm: dict[str, Any] | None, ax: Any) -> None:
    """Panel (b): perplexity at the training length and at the long length, grouped bars."""
    if lm is None:
        _missing(ax, "language-model", "(b) Byte-level LM", "mechanism", "perplexity per byte (lower is better)")
        return
    lm_rows = lm["rows"]
    x = np.arange(len(lm_rows))
    short_len, long_len = lm["config"]["eval_lens"]
    colors = [COLORS[r["mechanism"]] for r in lm_rows]
    ax.bar(x - 0.2, [r["ppl_train_len"] for r in lm_rows], 0.4, color=colors,
           label=f"at the training length ({short_len} tokens)")
    ax.bar(x + 0.2, [r["ppl_long"] for r in lm_rows], 0.4, color=colors, alpha=0.45, hatch="//",
           label=f"at {long_len} tokens ({long_len // short_len}x)")
    ax.set_xticks(x, [r["mechanism"] for r in lm_rows], rotation=35, ha="right")
    ax.set_xlabel("mechanism")
    ax.set_ylabel("perplexity per byte (lower is better)")
    ax.set_title(f"(b) Byte-level LM, stdlib corpus\n(trained on {short_len} tokens, {lm['config']['steps']} steps)")
    ax.legend(fontsize=8)


def _plot_speed(speed: dict[str, Any] | None, ax_pre: Any, ax_dec: Any) -> None:
    """Panels (c) and (d): prefill time and decode time per token against the context (log-log)."""
    from matplotlib.ticker import NullFormatter

    if speed is None:
        _missing(ax_pre, "speed", "(c) Prefill", "context length T (tokens, log scale)", "prefill time (ms)")
        _missing(ax_dec, "speed", "(d) Decode after T tokens", "context length T (tokens, log scale)",
                 "decode time per token (ms)")
        return
    for name, rows in rows_by_mechanism(speed["rows"]).items():
        rows = sorted(rows, key=lambda r: r["context_len"])
        t = [r["context_len"] for r in rows]
        style = dict(marker=MARKERS[name], color=COLORS[name], markersize=6)
        ax_pre.plot(t, [r["prefill_ms"] for r in rows], label=name, **style)
        per_tok = rows[-1]["state_bytes_per_token"]
        ax_dec.plot(t, [r["decode_ms_per_token"] for r in rows], label=f"{name} ({per_tok:,.0f} B/token)", **style)
    scfg = speed["config"]
    for ax in (ax_pre, ax_dec):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context length T (tokens, log scale)")
        ax.grid(True, which="both", alpha=0.3)
    ax_pre.set_yscale("log")  # spans decades; decode times stay within one, a linear axis reads better
    ax_pre.yaxis.set_minor_formatter(NullFormatter())
    ax_pre.set_ylabel("prefill time (ms, log scale)")
    ax_dec.set_ylim(bottom=0)
    ax_dec.set_ylabel("decode time per token (ms)")
    ax_pre.set_title(f"(c) Prefill, chunks of {scfg['prefill_chunk']}\n(d_model {scfg['d_model']}, "
                     f"{scfg['n_layers']} layers; timed on {speed.get('device', '?')})")
    ax_dec.set_title("(d) Decode after T tokens\n(legend: state bytes per token at the longest T)")
    ax_pre.legend(fontsize=7, ncol=2)
    ax_dec.legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def plot_comparison(result: dict[str, Any], axes: Any = None, *, title: str | None = None) -> Any:
    """The chapter's figure: four panels that share one colour and marker per mechanism.

    (a) MQAR accuracy against decode-state bytes (log x); (b) perplexity at the training length
    and at the long length (grouped bars); (c) prefill time and (d) decode time per token against
    the context length (log-log), with the state bytes per token in the legend of (d). A part that
    is None (not stored) leaves its panel empty with a note; MQAR rows of several state points per
    mechanism (the stored study) draw one curve per mechanism.

    Args:
        result: a :func:`run_comparison` or :func:`stored_comparison` result.
        axes: four matplotlib Axes (default: a new 2×2 figure).
        title: the figure's title when ``axes`` is None (default: names the device).

    Returns:
        The four Axes.

    Raises:
        ValueError: ``result`` is not a :func:`run_comparison` result, or ``axes`` is not 4 Axes.
    """
    import matplotlib.pyplot as plt

    _check_result(result)
    if axes is None:
        fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
        fig.suptitle(title or f"Every mechanism on the same axes (device: {result.get('device', '?')})")
    axes = list(np.ravel(axes))
    if len(axes) != 4:
        raise ValueError(f"axes must be 4 matplotlib Axes, got {len(axes)}")
    ax_mq, ax_ppl, ax_pre, ax_dec = axes
    _plot_mqar(result["mqar"], ax_mq)
    _plot_lm(result["lm"], ax_ppl)
    _plot_speed(result["speed"], ax_pre, ax_dec)
    ax_mq.figure.tight_layout()
    return axes


# ----------------------------------------------------------------------------------------------
# Stored results: the MQAR study, the stored LM and speed runs, and the table built from them
# ----------------------------------------------------------------------------------------------


def load_study(preset: str | None = None, *, directory: Any = None) -> dict[str, Any] | None:
    """The MQAR study (:func:`~linattn_edu.experiments.mqar_study.reference_study`): the stored
    ``mqar_study_PRESET.json`` (written by ``scripts/mqar_study.py``), a live run with
    ``LINATTN_RETRAIN=1``, or None if none is stored.

    ``preset=None`` looks for ``gpu`` first on a GPU, then ``cpu``. The study may be partial (it
    is resumable and appends one model at a time): ``"stored"`` says how many of its models are done.

    Returns:
        ``{"rows", "config", "device", "stored"}``: the study's rows (one per trained model and
        learning rate, see :func:`~linattn_edu.experiments.mqar_study.run_mqar_study`), its config,
        and its provenance (``device``, ``date``, ``git_commit``, ``command``, ``wall_seconds``,
        ``units_done``, ``units_total``, ``complete``, ``preset``).
    """
    from .mqar_study import reference_study

    return reference_study(preset, directory=directory)


def study_coverage(study: dict[str, Any]) -> list[dict[str, Any]]:
    """Per setting of a :func:`load_study` result: how much of it is finished
    (:func:`linattn_edu.experiments.mqar_study.study_coverage`)."""
    from .mqar_study import study_coverage as coverage

    return coverage(study)


def _families_off_plateau(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Per setting (``"L=.., pairs=.."``): how many study families leave the chance plateau
    (:func:`~linattn_edu.experiments.mqar_study.study_findings`)."""
    from .mqar_study import study_findings

    return {key: sum(not f["plateau"] for f in found["families"].values())
            for key, found in study_findings(rows).items()}


def _pick_setting(coverage: list[dict[str, Any]], off_plateau: dict[str, int]) -> tuple[int, int]:
    """Among the complete settings, the one where the most families leave the chance plateau
    (``off_plateau``, by setting key: the setting that tells the mechanisms apart; then the
    larger); with none complete, the one with the most finished models (then the larger)."""
    complete = [c for c in coverage if c["complete"]]
    if complete:
        best = max(complete, key=lambda c: (off_plateau.get(f"L={c['seq_len']}, pairs={c['n_pairs']}", 0),
                                            c["seq_len"], c["n_pairs"]))
    else:
        pool = [c for c in coverage if c["jobs_done"]]
        if not pool:
            raise ValueError("study must hold at least one finished model")
        best = max(pool, key=lambda c: (c["jobs_done"], c["seq_len"], c["n_pairs"]))
    return best["seq_len"], best["n_pairs"]


def mqar_from_study(study: dict[str, Any], setting: Sequence[int] | None = None) -> dict[str, Any]:
    """The MQAR part of the comparison read from the stored study, in :func:`run_comparison_mqar`'s schema.

    For each mechanism whose ``"study"`` family (:data:`MECHANISMS`) the study holds at
    ``setting``: one row per state point of that family at its best learning rate
    (:func:`~linattn_edu.experiments.mqar_study.best_rows`), smallest state first. Mechanisms the
    study lacks (ALiBi) get no row and are listed in ``config["mechanisms_missing"]``.

    Args:
        study: a :func:`load_study` result (partial is fine).
        setting: ``(seq_len, n_pairs)``; None: among the settings whose models are all finished,
            the one where the most families leave the chance plateau (it separates the mechanisms
            best; ties: the larger), else the one with the most finished models
            (:func:`study_coverage`). The choice and the count are in ``config["off_plateau"]``.

    Returns:
        ``{"rows", "config", "device", "stored"}``; rows have ``mechanism``, ``family``, ``point``,
        ``lr``, ``accuracy`` (None if every lr diverged), ``state_bytes``, ``n_params``,
        ``seq_len``, ``n_pairs``, ``accuracy_by_lr``. ``config`` has ``settings`` (the one used),
        ``source`` (``"mqar_study"``), the study's sizes, ``coverage`` and ``mechanisms_missing``.

    Raises:
        ValueError: ``study`` is not a study result, or ``setting`` is not one of its settings.
    """
    from .mqar_study import best_rows

    if not isinstance(study, dict) or not isinstance(study.get("rows"), list) or "config" not in study:
        raise ValueError("study must be a load_study result (a dict with 'rows' and 'config')")
    coverage = study_coverage(study)
    off_plateau = _families_off_plateau(study["rows"])
    if setting is None:
        seq_len, n_pairs = _pick_setting(coverage, off_plateau)
    else:
        seq_len, n_pairs = (int(v) for v in setting)
        if [seq_len, n_pairs] not in [[c["seq_len"], c["n_pairs"]] for c in coverage]:
            raise ValueError(f"setting must be one of the study's settings "
                             f"{[[c['seq_len'], c['n_pairs']] for c in coverage]}, got {list(setting)!r}")
    best = [r for r in best_rows(study["rows"]) if (r["seq_len"], r["n_pairs"]) == (seq_len, n_pairs)]
    rows, missing = [], []
    for name, spec in MECHANISMS.items():
        fam = [r for r in best if spec["study"] is not None and r["family"] == spec["study"]]
        if not fam:
            missing.append(name)
        for r in sorted(fam, key=lambda r: r["state_bytes"]):
            rows.append({"mechanism": name, "family": r["family"], "point": r["point"], "lr": r["lr"],
                         "accuracy": r["accuracy"], "state_bytes": int(r["state_bytes"]), "n_params": r["params"],
                         "seq_len": seq_len, "n_pairs": n_pairs, "accuracy_by_lr": r["accuracy_by_lr"]})
    cfg = study["config"]
    config = {"settings": [[seq_len, n_pairs]], "source": "mqar_study",
              **{k: cfg.get(k) for k in ("preset", "vocab_size", "d_model", "n_heads", "steps", "batch_size", "lrs",
                                         "n_train", "n_test", "seed")},
              "coverage": coverage, "mechanisms_missing": missing, "off_plateau": off_plateau}
    return {"rows": rows, "config": config, "device": study.get("device"), "stored": study.get("stored")}


def describe_study(mqar: dict[str, Any]) -> str:
    """Where the MQAR part comes from: the study's provenance and the setting used
    (``mqar``: a :func:`mqar_from_study` result), or that it was computed live. A few short lines
    (the setting first), so a notebook shows them without scrolling."""
    cfg = mqar.get("config", {})
    info = mqar.get("stored")
    if cfg.get("source") != "mqar_study" or not info:
        return f"MQAR: computed live now on {mqar.get('device', '?')}"
    seq_len, n_pairs = cfg["settings"][0]
    cov = {(c["seq_len"], c["n_pairs"]): c for c in cfg["coverage"]}
    used = cov[(seq_len, n_pairs)]
    others = "; ".join(f"L={c['seq_len']}, {c['n_pairs']} pairs: {c['jobs_done']}/{c['jobs_total']} models"
                       for c in cfg["coverage"] if (c["seq_len"], c["n_pairs"]) != (seq_len, n_pairs))
    state = "complete" if used["complete"] else f"PARTIAL, {used['jobs_done']}/{used['jobs_total']} models"
    off = cfg.get("off_plateau") or {}
    lines = [
        f"MQAR: the stored study ({info.get('name')}, preset {info.get('preset')})",
        f"  made on {info['device']}, {str(info['date'])[:10]}, commit {(info.get('git_commit') or '?')[:10]}, "
        f"{(info.get('wall_seconds') or 0) / 3600:.1f} h of compute, {info['units_done']}/{info['units_total']} "
        f"models done",
        f"  setting used: L={seq_len}, {n_pairs} pairs ({state})",
    ]
    if off:
        lines.append("  families off the chance plateau per setting: " + ", ".join(f"{k}: {v}" for k, v in off.items()))
    if others:
        lines.append(f"  other settings: {others}")
    lines.append(f"  each family at its best lr (grid {cfg.get('lrs')}, extended at its edges)")
    lines.append(f"  regenerate with `{info['command']}`")
    return "\n".join(lines)


def comparison_provenance(result: dict[str, Any]) -> list[str]:
    """One entry per part of a comparison result (the MQAR one spans a few lines): where its numbers come from
    (:func:`describe_study` for MQAR, :func:`linattn_edu.experiments.stored.describe` for the others)."""
    from .stored import describe

    _check_result(result)
    lines = []
    for part in ("mqar", "lm", "speed"):
        value = result[part]
        if value is None:
            lines.append(f"{part}: not stored")
        elif part == "mqar":
            lines.append(describe_study(value))
        else:
            lines.append(f"{part}: {describe(value)}")
    return lines


def stored_comparison(preset: str | None = None, *, directory: Any = None,
                      setting: Sequence[int] | None = None) -> dict[str, Any] | None:
    """The comparison read from the stored runs, in :func:`run_comparison`'s schema.

    ``"mqar"``: :func:`mqar_from_study` of the stored MQAR study; ``"lm"`` and ``"speed"``: the
    stored runs ``compare_lm`` and ``compare_speed``
    (:func:`~linattn_edu.experiments.stored.load_stored`). A part with no stored file is None.

    Args:
        preset: ``"cpu"``, ``"gpu"`` (or ``"fast"`` for a smoke test); None: this machine's
            (``gpu`` first on a GPU, then ``cpu``).
        directory: where the results files are (default ``linattn_edu/results/``).
        setting: the MQAR study's ``(seq_len, n_pairs)`` (default: see :func:`mqar_from_study`).

    Returns:
        ``{"mqar", "lm", "speed", "device", "stored"}`` (``stored``: each part's provenance), or
        None when none of the three is stored.
    """
    from .stored import load_stored

    study = load_study(preset, directory=directory)
    lm = load_stored("compare_lm", preset, directory=directory)
    speed = load_stored("compare_speed", preset, directory=directory)
    if study is None and lm is None and speed is None:
        return None
    mqar = None if study is None else mqar_from_study(study, setting)
    parts = {"mqar": mqar, "lm": lm, "speed": speed}
    device = next((p["device"] for p in (speed, lm, mqar) if p is not None), "?")
    return {**parts, "device": device, "stored": {k: (v or {}).get("stored") for k, v in parts.items()}}


# ----------------------------------------------------------------------------------------------
# Stored reference runs (scripts/run_experiment.py compare_lm / compare_speed; one unit per mechanism)
# ----------------------------------------------------------------------------------------------

from .stored import StoredExperiment, register  # noqa: E402

register(StoredExperiment(
    name="compare_lm", chapter="08_putting_it_together", run=run_comparison_lm, config=compare_lm_config,
    unit_arg="mechanisms", default_units=tuple(MECHANISMS), presets=("cpu", "gpu"),
    description="9 byte-level LMs (one per mechanism), perplexity at L and 4L",
    run_options={"progress": False}))
register(StoredExperiment(
    name="compare_speed", chapter="08_putting_it_together", run=run_comparison_speed,
    config=compare_speed_config, unit_arg="mechanisms", default_units=tuple(MECHANISMS), presets=("cpu", "gpu"),
    description="prefill / decode time and state bytes against the context, 9 untrained models",
    run_options={"progress": False}))
