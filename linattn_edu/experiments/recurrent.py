"""The Griffin chapter's experiments: decode cost, length generalization and recall of Hawk and Griffin.

De et al. (2024, arXiv:2402.19427) make three claims about Hawk (gated linear recurrences, the
RG-LRU) and Griffin (recurrences plus local multi-query attention) against a multi-query (MQA)
Transformer baseline; this module measures each at book scale:

1. **Decode latency and memory** (:func:`decode_latency`, the paper's Figure 4 / Section 5:
   "lower latency and higher throughput when sampling long sequences"). The Transformer's KV
   cache grows linearly with the context and every decode step reads all of it; Hawk's state is
   constant and Griffin's is bounded by its local-attention window, so their cost per generated
   token does not grow with the context.
2. **Train short, test long** (:func:`run_length_generalization`, the paper's Section 6.2 /
   Figure 5: "Griffin and Hawk extrapolate to sequences longer than seen in training"). Byte-level
   LMs trained on ``train_len`` tokens of the ``stdlib`` corpus, scored at longer lengths, with
   the training and evaluation plumbing of :mod:`.extrapolation`.
3. **Recall** (the MQAR study of :mod:`.mqar_study`, read by :func:`recurrent_study`; the
   paper's Section 6.3 on copying and retrieval): a fixed-size recurrent state must compress the context, so Hawk should recall
   less than attention on MQAR; Griffin's local attention helps only within its window.

The models are the zoo's: ``build_model("transformer", pos="rope", n_kv_heads=1)`` (MQA with
RoPE, the paper's baseline), ``build_model("hawk")`` and ``build_model("griffin")`` (see
:mod:`linattn_edu.models.griffin`), of equal width and depth. At these sizes they do not have equal
parameter counts: every row reports ``n_params``.

How the chapter shows them (stored reference runs plus live miniatures):

- :func:`decode_latency` is a timing benchmark of untrained models: it runs live, at the small
  ``"cpu"`` sizes of :data:`DECODE_PRESETS` (seconds).
- :func:`run_length_generalization` is the stored experiment ``griffin_length`` (one unit per
  model kind; ``python scripts/run_experiment.py griffin_length --preset cpu`` writes
  ``results/griffin_length_cpu.json``), loaded with
  :func:`~linattn_edu.experiments.stored.reference_run`; the chapter also runs the ``"mini"``
  preset live. :func:`length_findings` computes what the chapter says about it.
- MQAR recall comes from the stored MQAR study of Chapter 5 (:mod:`.mqar_study`,
  ``results/mqar_study_cpu.json``): :func:`recurrent_study` keeps its Hawk, Griffin, attention
  and Based rows and says which settings are complete; :func:`mqar_window_coverage` computes the
  fraction of queries a Griffin window covers, to set next to Griffin's accuracy.
  (:func:`mqar_recurrent_config` sizes a small sweep of Hawk and Griffin with
  :func:`~linattn_edu.experiments.mqar_sweep.run_mqar_sweep`, for readers who want one; the
  chapter does not run it.)
- The gates of a trained Hawk LM (:func:`run_hawk_gates`) are the stored experiment
  ``griffin_gates``; the chapter also trains the ``"mini"`` preset live.
"""

from __future__ import annotations

import math
import time
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .. import bench, runtime
from ._args import check_int as _int, check_positive as _positive, resolve_device as _device
from ..data import load_corpus
from ..models import build_model, cache_bytes, count_parameters, model_state_bytes
from ._common import (
    check_eval_lens,
    check_lens,
    eval_text,
    plot_perplexity_curves,
    sync,
    time_decode,
    limited_threads,
    loss_curve,
    train_timed,
    train_and_evaluate,
)

__all__ = [
    "RECURRENT_KINDS",
    "DECODE_PRESETS",
    "LENGTH_PRESETS",
    "MQAR_RECURRENT_PRESETS",
    "decode_latency_config",
    "decode_latency",
    "plot_decode_latency",
    "length_generalization_config",
    "run_length_generalization",
    "plot_length_generalization",
    "length_findings",
    "mqar_recurrent_config",
    "STUDY_FAMILIES_SHOWN",
    "recurrent_study",
    "mqar_window_coverage",
    "GATES_PRESETS",
    "GATES_SNIPPET",
    "gates_config",
    "run_hawk_gates",
    "plot_hawk_gates",
]

#: The kinds compared and the options each is built with besides the shared sizes: the paper's
#: MQA Transformer baseline with RoPE, Hawk, and Griffin (its window: the model's default, 64, in
#: :func:`decode_latency` unless a preset says otherwise, the ``"gpu"`` one the paper's 1025;
#: ``train_len // 2`` in :func:`run_length_generalization`). Windows count keys including the
#: current one: RecurrentGemma's ``window_size=w`` is ``window=w + 1`` (see
#: :class:`~linattn_edu.models.griffin.LocalAttention`).
RECURRENT_KINDS: dict[str, dict[str, Any]] = {
    "transformer": {"pos": "rope", "n_kv_heads": 1},
    "hawk": {},
    "griffin": {},
}

_COLORS = {"transformer": "tab:red", "hawk": "tab:blue", "griffin": "tab:purple"}


# ----------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------


def _check_kinds(kinds: Any) -> tuple[str, ...]:
    if isinstance(kinds, str):
        kinds = (kinds,)
    try:
        out = tuple(kinds)
    except TypeError:
        raise ValueError(f"kinds must be a sequence of model kinds, got {kinds!r}") from None
    if not out or len(set(out)) != len(out) or not all(isinstance(k, str) for k in out):
        raise ValueError(f"kinds must be distinct model kinds (e.g. {list(RECURRENT_KINDS)}), got {kinds!r}")
    from ..models import available_models

    unknown = [k for k in out if k not in available_models()]
    if unknown:
        raise ValueError(f"kinds must be registered model kinds {sorted(available_models())}, got {unknown}")
    return out


def _check_options(model_options: Any) -> dict[str, dict[str, Any]]:
    """``{kind: {option: value}}`` (copied), or ``{}`` for None."""
    if model_options is None:
        return {}
    if not isinstance(model_options, dict) or not all(isinstance(v, dict) for v in model_options.values()):
        raise ValueError(f"model_options must be a dict {{kind: {{option: value}}}}, got {model_options!r}")
    return {k: dict(v) for k, v in model_options.items()}


def _preset(presets: dict[str, dict[str, Any]], preset: str | None) -> dict[str, Any]:
    if preset is None:
        return runtime.pick(fast=presets["fast"], cpu=presets["cpu"], gpu=presets["gpu"])
    if isinstance(preset, str) and preset in presets:
        return presets[preset]
    raise ValueError(f"preset must be None or one of {list(presets)}, got {preset!r}")


# ----------------------------------------------------------------------------------------------
# 1. Decode latency and memory against the context length
# ----------------------------------------------------------------------------------------------

#: Sizes per preset for :func:`decode_latency` (``"fast"``, ``"cpu"``, ``"gpu"`` follow
#: :func:`linattn_edu.runtime.mode`).
#:
#: :meta hide-value:
DECODE_PRESETS: dict[str, dict[str, Any]] = {
    # Tests: a second or two. A window of 8 so that Griffin's cache visibly stops growing.
    "fast": dict(context_lens=(4, 8, 16, 32), d_model=32, n_layers=2, n_heads=2, batch_size=2, steps=2, repeat=1,
                 vocab_size=64, model_options={"griffin": {"window": 8}}),
    # The book on a 2-core CPU, live (a timing benchmark: it is measured on the reader's machine, not
    # stored). Griffin: 4 layers = recurrent, recurrent, attention, recurrent (the default pattern),
    # window 64. Sized to take seconds: d_model 128, contexts up to 2048, 8 timed steps, best of 2.
    "cpu": dict(context_lens=(128, 256, 512, 1024, 2048), d_model=128, n_layers=4, n_heads=4, batch_size=4,
                steps=8, repeat=2, vocab_size=256),
    # A CUDA GPU: the paper's Griffin window, official window_size=1024, i.e. 1025 keys including the
    # current one (this package's convention, window = window_size + 1); the contexts reach 32x beyond it.
    "gpu": dict(context_lens=(512, 1024, 2048, 4096, 8192, 16384, 32768), d_model=1024, n_layers=12, n_heads=16,
                batch_size=16, steps=32, repeat=3, vocab_size=8192, model_options={"griffin": {"window": 1025}}),
}


def decode_latency_config(preset: str | None = None) -> dict[str, Any]:
    """Sizes for :func:`decode_latency`: ``decode_latency(**decode_latency_config())``.

    Args:
        preset: None picks by :func:`linattn_edu.runtime.mode` (``"fast"`` under the tests,
            ``"cpu"`` without a GPU, ``"gpu"`` with one); or one of :data:`DECODE_PRESETS`.

    Returns:
        A new dict with ``context_lens``, ``d_model``, ``n_layers``, ``n_heads``, ``batch_size``,
        ``steps``, ``repeat``, ``vocab_size`` and, for some presets, ``model_options``.

    Raises:
        ValueError: unknown ``preset``.
    """
    cfg = dict(_preset(DECODE_PRESETS, preset))
    if "model_options" in cfg:
        cfg["model_options"] = {k: dict(v) for k, v in cfg["model_options"].items()}
    return cfg


def decode_latency(
    kinds: Sequence[str] = ("transformer", "hawk", "griffin"),
    *,
    context_lens: Iterable[int],
    d_model: int,
    n_layers: int,
    n_heads: int,
    batch_size: int,
    steps: int = 16,
    repeat: int = 3,
    vocab_size: int = 256,
    seed: int = 0,
    prefill_chunk: int = 256,
    model_options: dict[str, dict[str, Any]] | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Milliseconds per generated token and decode-state bytes against the context length, per kind.

    For each kind: ``build_model(kind, vocab_size, d_model, n_layers, n_heads, **options)`` after
    ``torch.manual_seed(seed)`` (options: :data:`RECURRENT_KINDS` updated by ``model_options``;
    the Transformer is MQA with RoPE, Griffin keeps its default window of 64, unless
    ``model_options`` sets one (the ``"gpu"`` preset: 1025), and its default layer pattern),
    untrained, float32, ``eval()``, under ``no_grad``. One random prompt of ``max(context_lens)``
    tokens per sequence (``batch_size`` sequences, the same for every kind) is prefilled in
    chunks of ``prefill_chunk`` tokens (``model.prefill(chunk, cache)``, which bounds the memory of
    the attention scores). Whenever the prefilled length reaches a context ``T`` of
    ``context_lens``, the cache (the model's state after the first ``T`` prompt tokens) is
    measured and ``steps`` greedy decode steps (``model.step`` then ``argmax``) are timed from it:
    one untimed warm-up run, then the minimum of ``repeat`` runs (other work on a shared machine
    can only add time). Prefilling is not timed.

    What it shows: the Transformer's step reads (and, in the zoo's simple cache, copies) a KV
    cache of ``T`` keys and values per layer, so its cost grows with ``T``; Hawk's step reads a
    state of constant size and Griffin's a window of at most ``window`` keys, so theirs do not.
    On a small CPU model per-layer overheads dominate short contexts: compare the *trends*.

    Args:
        kinds: registered kinds with ``prefill``/``step`` (default the three compared).
        context_lens: context lengths ``T`` (tokens before the first timed step).
        d_model, n_layers, n_heads, vocab_size: sizes shared by all kinds.
        batch_size: sequences decoded together.
        steps: timed decode steps per context (the Transformer's cache grows by ``steps`` during
            them, small against ``T``).
        repeat: timed runs per context (minimum kept).
        seed: weights and prompt.
        prefill_chunk: prompt tokens per ``prefill`` call.
        model_options: ``{kind: {option: value}}`` overriding :data:`RECURRENT_KINDS`.
        device: default :func:`linattn_edu.runtime.device`.
        progress: a tqdm bar over kinds and contexts.
        threads: on a CPU, PyTorch threads during the run (restored afterwards); None keeps the
            current setting. 1 by default: on a machine whose cores are busy with other work,
            PyTorch's OpenMP threads spin-wait for each other (see
            :func:`~linattn_edu.experiments.extrapolation.run_extrapolation`); one run of the
            ``"cpu"`` preset with 2 threads on a 2-core CPU shared with other jobs (load average
            ~4) measured 270-600 ms per step for Griffin and the Transformer, against 7-54 ms for
            the same preset with one thread. One thread also makes the numbers independent of the
            machine's core count.

    Returns:
        ``{"rows": [...], "config": {...}, "device": str, "seconds": float}``. One row per kind and
        context: ``kind``, ``context_len``, ``ms_per_token`` (one decode step of the whole batch,
        i.e. the latency of one generated token per sequence), ``tokens_per_s`` (``batch_size ·
        steps / seconds``), ``cache_bytes`` (:func:`~linattn_edu.models.cache_bytes` of the cache
        after the prefill of ``T`` tokens, whole batch), ``state_bytes``
        (:func:`~linattn_edu.models.model_state_bytes` at ``T``, per sequence; equals
        ``cache_bytes / batch_size`` for these float32 models) and ``n_params``.

    Raises:
        ValueError: bad arguments, naming them.
    """
    start = time.perf_counter()
    kinds = _check_kinds(kinds)
    lens = check_lens(context_lens, "context_lens")
    d_model, n_layers, n_heads = _int(d_model, "d_model"), _int(n_layers, "n_layers"), _int(n_heads, "n_heads")
    batch_size, vocab_size = _int(batch_size, "batch_size"), _int(vocab_size, "vocab_size", 2)
    steps, repeat, seed = _int(steps, "steps"), _int(repeat, "repeat"), _int(seed, "seed", 0)
    prefill_chunk = _int(prefill_chunk, "prefill_chunk")
    options = _check_options(model_options)
    if threads is not None:
        threads = _int(threads, "threads")
    dev = _device(device)
    with limited_threads(dev, threads):
        rows, options_used, torch_threads = _decode_rows(
            kinds, lens, dev, d_model=d_model, n_layers=n_layers, n_heads=n_heads, batch_size=batch_size,
            steps=steps, repeat=repeat, vocab_size=vocab_size, seed=seed, prefill_chunk=prefill_chunk,
            options=options, progress=progress)
    config = {
        "kinds": list(kinds), "context_lens": lens, "d_model": d_model, "n_layers": n_layers, "n_heads": n_heads,
        "batch_size": batch_size, "steps": steps, "repeat": repeat, "vocab_size": vocab_size, "seed": seed,
        "prefill_chunk": prefill_chunk, "model_options": options_used, "dtype": "float32",
        "decoding": "greedy (argmax), model.step under no_grad, after a chunked prefill of context_len tokens",
        "timing": "steps decode steps, one warm-up run, min over repeat runs; prefill not timed",
        "weights": "random (untrained)", "torch_threads": torch_threads,
        "cache_bytes": "cache_bytes of the whole batch's cache after the prefill",
        "state_bytes": "model_state_bytes per sequence at context_len",
        "paper_claim": "Hawk and Griffin: lower decode latency and higher throughput than an MQA Transformer, "
                       "the gap growing with the context (De et al., 2024, arXiv:2402.19427, Section 5)",
    }
    return {"rows": rows, "config": config, "device": bench.device_name(dev), "seconds": time.perf_counter() - start}


def _decode_rows(kinds: tuple[str, ...], lens: list[int], dev: torch.device, *, d_model: int, n_layers: int,
                 n_heads: int, batch_size: int, steps: int, repeat: int, vocab_size: int, seed: int,
                 prefill_chunk: int, options: dict[str, dict[str, Any]],
                 progress: bool) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], int]:
    """The body of :func:`decode_latency`: ``(rows, options as built, torch threads)``."""
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, vocab_size, (batch_size, lens[-1]), generator=gen).to(dev)
    rows: list[dict[str, Any]] = []
    options_used: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=len(kinds) * len(lens), disable=not progress, desc="decode latency")
    for kind in kinds:
        opts = {**RECURRENT_KINDS.get(kind, {}), **options.get(kind, {})}
        torch.manual_seed(seed)
        model = build_model(kind, vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads, **opts)
        model.to(dev).eval()
        options_used[kind] = {"kind": kind, **opts}
        n_params = count_parameters(model)
        cache, logits, done = None, None, 0
        with torch.no_grad():
            for length in lens:
                if progress:
                    bar.set_postfix_str(f"{kind} T={length}", refresh=True)
                while done < length:  # chunked prefill up to exactly `length` tokens
                    end = min(done + prefill_chunk, length)
                    out, cache = model.prefill(prompt[:, done:end], cache)
                    logits, done = out[:, -1], end
                nbytes = cache_bytes(cache)
                seconds = time_decode(model, logits, cache, steps, repeat, dev)
                rows.append({
                    "kind": kind, "context_len": length, "ms_per_token": 1e3 * seconds / steps,
                    "tokens_per_s": batch_size * steps / seconds, "cache_bytes": int(nbytes),
                    "state_bytes": int(model_state_bytes(model, seq_len=length)), "n_params": int(n_params),
                })
                bar.update(1)
        del model, cache
    bar.close()
    return rows, options_used, torch.get_num_threads()


def _pair_of_axes(axes: Any, what: str) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    if axes is None:
        _, pair = plt.subplots(1, 2, figsize=(11, 4))
        return pair[0], pair[1]
    try:
        pair = tuple(axes)
    except TypeError:
        raise ValueError(f"axes must be None or a pair of matplotlib Axes ({what})") from None
    if len(pair) != 2:
        raise ValueError(f"axes must be a pair of matplotlib Axes ({what}), got {len(pair)}")
    return pair[0], pair[1]


def plot_decode_latency(res: dict[str, Any], axes: Any = None) -> tuple[Any, Any]:
    """Latency per token (left) and decode state per sequence (right) against the context, log-log.

    Args:
        res: a :func:`decode_latency` result or a stored record (``bench.load_results``).
        axes: None (a new figure with two Axes), or a pair of Axes ``(ax_latency, ax_memory)``.

    Returns:
        The two Axes, one line per kind (labelled with the kind) in each; both titles name the
        device.

    Raises:
        ValueError: ``res`` has no rows, or ``axes`` is not a pair of Axes.
    """
    rows = list(res.get("rows", [])) if isinstance(res, dict) else []
    if not rows:
        raise ValueError("res must be a decode_latency result with rows")
    ax_lat, ax_mem = _pair_of_axes(axes, "latency, memory")
    cfg = res.get("config", {})
    batch = cfg.get("batch_size")
    for kind in dict.fromkeys(r["kind"] for r in rows):
        pts = sorted((r["context_len"], r["ms_per_token"], r["state_bytes"]) for r in rows if r["kind"] == kind)
        xs = [p[0] for p in pts]
        ax_lat.plot(xs, [p[1] for p in pts], marker="o", color=_COLORS.get(kind), label=kind)
        ax_mem.plot(xs, [p[2] / 2**10 for p in pts], marker="o", color=_COLORS.get(kind), label=kind)
    where = res.get("device", "?")
    sizes = f"d_model={cfg.get('d_model')}, {cfg.get('n_layers')} layers, batch {batch}, float32"
    for a in (ax_lat, ax_mem):
        a.set_xscale("log", base=2)
        a.set_yscale("log")
        a.set_xlabel("context length (tokens before the step)")
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=8)
    ax_lat.set_ylabel("ms per generated token (whole batch)")
    ax_lat.set_title(f"Decode latency vs context\n{where}", fontsize=9)
    ax_mem.set_ylabel("decode state per sequence (KiB)")
    ax_mem.set_title(f"Decode state vs context ({where})\n{sizes}", fontsize=9)
    return ax_lat, ax_mem


# ----------------------------------------------------------------------------------------------
# 2. Train short, test long
# ----------------------------------------------------------------------------------------------

#: Sizes per preset for :func:`run_length_generalization`.
#:
#: :meta hide-value:
LENGTH_PRESETS: dict[str, dict[str, Any]] = {
    # Tests: checks that everything runs (a few seconds for the three kinds).
    "fast": dict(train_len=16, eval_lens=(16, 32, 64), d_model=32, n_layers=2, n_heads=2, steps=5, batch_size=4,
                 lr=3e-3, eval_max_windows=2, max_bytes=200_000, seed=0),
    # The chapter's live miniature (cpu mode; a few seconds per model on one core): a tiny model, few steps.
    # The chapter says it is a miniature and draws it next to the stored reference run.
    "mini": dict(train_len=32, eval_lens=(32, 64, 128, 256), d_model=32, n_layers=2, n_heads=4, steps=50,
                 batch_size=8, lr=3e-3, eval_max_windows=4, max_bytes=None, seed=0),
    # The stored reference run ("griffin_length", scripts/run_experiment.py): the book's old live cpu preset
    # (train_len 64, d_model 64, 2 layers) trained 3x longer (1200 steps instead of 400) and evaluated up to
    # 16x the training length (1024) instead of 8x. Minutes per model on one core.
    "cpu": dict(train_len=64, eval_lens=(64, 128, 256, 512, 1024), d_model=64, n_layers=2, n_heads=4, steps=1200,
                batch_size=16, lr=3e-3, eval_max_windows=8, max_bytes=None, seed=0),
    # A CUDA GPU (Griffin: 4 layers = recurrent, recurrent, attention, recurrent; window 128 = train_len // 2,
    # not the paper's 1025: a window longer than the 256 training tokens would show the attention distances
    # it never trained on, which is what this experiment must avoid; half the training length is the
    # paper's own ratio, 1024 for 2048).
    "gpu": dict(train_len=256, eval_lens=(256, 512, 1024, 2048, 4096), d_model=256, n_layers=4, n_heads=8,
                steps=2000, batch_size=32, lr=1e-3, eval_max_windows=32, max_bytes=None, seed=0),
}


def length_generalization_config(preset: str | None = None) -> dict[str, Any]:
    """Sizes for :func:`run_length_generalization`: ``run_length_generalization(**length_generalization_config())``.

    Args:
        preset: None picks by :func:`linattn_edu.runtime.mode` (``"fast"`` under the tests, ``"cpu"``
            without a GPU: the stored reference run's sizes, ``"gpu"`` with one); or one of
            :data:`LENGTH_PRESETS` (``"mini"``: the chapter's live miniature).

    Returns:
        A new dict with ``train_len``, ``eval_lens``, ``d_model``, ``n_layers``, ``n_heads``,
        ``steps``, ``batch_size``, ``lr``, ``eval_max_windows``, ``max_bytes`` and ``seed``.

    Raises:
        ValueError: unknown ``preset``.
    """
    return dict(_preset(LENGTH_PRESETS, preset))


def run_length_generalization(
    kinds: Sequence[str] = ("transformer", "hawk", "griffin"),
    *,
    train_len: int,
    eval_lens: Iterable[int],
    d_model: int,
    n_layers: int,
    n_heads: int,
    steps: int,
    batch_size: int,
    lr: float = 3e-3,
    seed: int = 0,
    eval_max_windows: int | None = None,
    max_bytes: int | None = None,
    model_options: dict[str, dict[str, Any]] | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Train one byte-level LM per kind at ``train_len``; evaluate its perplexity at ``eval_lens``.

    The recipe of :func:`~linattn_edu.experiments.extrapolation.run_extrapolation` (same corpus,
    training loop, evaluation text and windows; its helpers are shared), with model kinds in
    place of position schemes: each model is ``build_model(kind, vocab_size=256, ...)`` after
    ``torch.manual_seed(seed)`` with the options of :data:`RECURRENT_KINDS` updated by
    ``model_options``, trained with :func:`~linattn_edu.train.train_lm` on the same batches
    (``steps`` AdamW steps of ``batch_size`` random windows of ``train_len`` tokens of the
    ``stdlib`` train split), then scored with :func:`~linattn_edu.train.evaluate_perplexity` on
    non-overlapping windows of each length over the same valid text.

    - ``"transformer"``: MQA with RoPE (the paper's baseline). RoPE has no table, but relative
      distances past ``train_len`` were never seen in training.
    - ``"hawk"``: recurrences only; no position encoding, nothing that depends on the length.
    - ``"griffin"``: recurrences plus local attention whose window defaults here to
      ``max(1, train_len // 2)`` (the paper's ratio: ``window_size`` 1024, i.e. 1025 keys in this
      package's convention, for training sequences of 2048; the one key is immaterial here), so
      its attention never sees a distance it was not trained on, at any length.

    Args:
        kinds: registered model kinds, trained in this order.
        train_len: training context ``L`` (>= 2).
        eval_lens: evaluation lengths (positive ints; sorted in the result).
        d_model, n_layers, n_heads: model sizes (Griffin: ``d_model / n_heads`` divisible by 4).
        steps, batch_size, lr: the optimization (cosine schedule with warmup, see ``train_lm``).
        seed: models and batches.
        eval_max_windows: windows of the longest eval length (None: the whole valid split).
        max_bytes: keep only the first ``max_bytes`` bytes of the corpus (None: all).
        model_options: ``{kind: {option: value}}`` overriding the defaults above.
        device: default :func:`linattn_edu.runtime.device`.
        progress: a tqdm bar over the kinds, and ``train_lm``'s bar per model.
        threads: CPU threads during the run (restored afterwards), None: unchanged; 1 by default
            for the reasons given in :func:`~linattn_edu.experiments.extrapolation.run_extrapolation`.

    Returns:
        ``{"rows", "train", "config", "device", "corpus", "seconds"}``: ``rows`` one
        ``{"model", "train_len", "eval_len", "perplexity"}`` per (kind, eval length), kinds in the
        given order and lengths ascending; ``train`` ``{kind: {"n_params", "final_loss",
        "step_time_s", "tokens_per_s", "train_seconds"}}``; ``config`` the arguments plus
        ``eval_tokens``, ``eval_windows`` and ``model_options`` (as built). The format of
        :func:`~linattn_edu.experiments.extrapolation.run_extrapolation` with ``model`` for
        ``pos``: :func:`~linattn_edu.experiments.extrapolation.result_to_rows` and
        :func:`~linattn_edu.experiments.extrapolation.plot_extrapolation` accept it;
        :func:`plot_length_generalization` draws it.

    Raises:
        ValueError: bad arguments, naming them (``kinds``, ``eval_lens``, ``train_len``, sizes,
            ``lr``, ``model_options``; ``max_bytes`` when the valid split is too short).
    """
    start = time.perf_counter()
    kinds = _check_kinds(kinds)
    train_len = _int(train_len, "train_len", 2)
    lens = check_eval_lens(eval_lens)
    d_model, n_layers, n_heads = _int(d_model, "d_model"), _int(n_layers, "n_layers"), _int(n_heads, "n_heads")
    steps, batch_size, seed = _int(steps, "steps"), _int(batch_size, "batch_size"), _int(seed, "seed", 0)
    lr = _positive(lr, "lr")
    if eval_max_windows is not None:
        eval_max_windows = _int(eval_max_windows, "eval_max_windows")
    if threads is not None:
        threads = _int(threads, "threads")
    options = _check_options(model_options)
    dev = _device(device)
    built: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        opts = dict(RECURRENT_KINDS.get(kind, {}))
        if kind == "griffin":
            opts["window"] = max(1, train_len // 2)
        built[kind] = {**opts, **options.get(kind, {})}
    with limited_threads(dev, threads):
        corpus = load_corpus("stdlib", max_bytes=max_bytes)
        eval_tokens, n_eval = eval_text(corpus, lens, eval_max_windows, max_bytes, train_len)
        models = {}
        for kind in kinds:  # build all first: a bad size fails before any training
            torch.manual_seed(seed)
            try:
                models[kind] = build_model(kind, vocab_size=corpus.vocab_size, d_model=d_model, n_layers=n_layers,
                                           n_heads=n_heads, **built[kind])
            except ValueError as err:
                raise ValueError(f"model_options / sizes for kind {kind!r}: {err}") from err

        from tqdm.auto import tqdm

        rows: list[dict[str, Any]] = []
        train: dict[str, dict[str, Any]] = {}
        bar = tqdm(kinds, desc="models", disable=not progress, leave=True)
        for kind in bar:
            bar.set_postfix(model=kind, refresh=True)
            model = models.pop(kind)
            ppls, info = train_and_evaluate(model, corpus.train, eval_tokens, lens, train_len=train_len,
                                             batch_size=batch_size, steps=steps, lr=lr, seed=seed, dev=dev,
                                             progress=progress)
            rows += [{"model": kind, "train_len": train_len, "eval_len": n, "perplexity": p}
                     for n, p in zip(lens, ppls)]
            train[kind] = info
            del model
        bar.close()
        torch_threads = torch.get_num_threads()
    config = {
        "kinds": list(kinds), "train_len": train_len, "eval_lens": list(lens), "d_model": d_model,
        "n_layers": n_layers, "n_heads": n_heads, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
        "eval_max_windows": eval_max_windows, "max_bytes": max_bytes, "eval_tokens": n_eval,
        "eval_windows": {str(n): n_eval // n for n in lens}, "vocab_size": corpus.vocab_size,
        "model_options": {k: {"kind": k, **v} for k, v in built.items()}, "torch_threads": torch_threads,
        "eval": "non-overlapping windows over the first eval_tokens + 1 tokens of the valid split, "
                "the same text for every length and model",
        "paper_claim": "Hawk and Griffin extrapolate to sequences longer than seen in training better than "
                       "an MQA Transformer with RoPE (De et al., 2024, arXiv:2402.19427, Section 6.2)",
    }
    corpus_desc = {k: v for k, v in corpus.description.items() if k != "file_names"}
    return {"rows": rows, "train": train, "config": config, "device": bench.device_name(dev),
            "corpus": corpus_desc, "seconds": time.perf_counter() - start}


def plot_length_generalization(result: dict[str, Any] | None, *, ax: Any = None,
                               stored: dict[str, Any] | None = None) -> Any:
    """Perplexity against evaluation length, one line per model, the training length marked.

    Args:
        result: a :func:`run_length_generalization` result (solid lines), or None to draw only
            ``stored``.
        ax: a matplotlib Axes (default: a new figure).
        stored: a results record (rows with ``model``, ``eval_len``, ``perplexity``, e.g. from
            :func:`~linattn_edu.experiments.extrapolation.result_to_rows` and
            ``bench.save_results``): dashed, labelled with its device.

    Returns:
        The Axes: log2 x (evaluation length), log y (perplexity), lines labelled with the kind, a
        dotted vertical line at the training length; the title names the device.

    Raises:
        ValueError: neither ``result`` nor ``stored`` has perplexity rows.
    """
    source = result if result is not None else stored
    where = source.get("device", "?") if isinstance(source, dict) else "?"
    return plot_perplexity_curves(result, ax=ax, stored=stored, colors=_COLORS,
                                   title=f"Train short, test long: Transformer (MQA, RoPE), Hawk, Griffin\n{where}")


# ----------------------------------------------------------------------------------------------
# 3. MQAR recall with Hawk and Griffin
# ----------------------------------------------------------------------------------------------

#: Sizes per preset for :func:`mqar_recurrent_config`: the keys of
#: :data:`~linattn_edu.experiments.mqar_sweep.MQAR_PRESETS` plus ``families`` and ``griffin_windows``.
#:
#: :meta hide-value:
MQAR_RECURRENT_PRESETS: dict[str, dict[str, Any]] = {
    "fast": dict(
        settings=[(16, 2)], vocab_size=32, d_model=16, n_layers=2, n_heads=2, steps=6, batch_size=8, lr=3e-3,
        n_train=64, n_test=32, seed=0, windows=[], feature_dims={"linear_taylor": [2]},
        based=[{"feature_dim": 2, "window": 4}], griffin_windows=[4],
        families=["attention", "linear_taylor", "based", "hawk", "griffin"],
    ),
    # The sweep's "cpu" preset exactly (L=64, 8 pairs, 800 steps), only Hawk and Griffin (windows 16 and 32):
    # the other families are Chapter 5's, drawn from its stored sweep. ~2-3 min on 2 cores.
    "cpu": dict(
        settings=[(64, 8)], vocab_size=128, d_model=64, n_layers=2, n_heads=2, steps=800, batch_size=32, lr=3e-3,
        n_train=16_000, n_test=1000, seed=0, windows=[], feature_dims={}, based=[], griffin_windows=[16, 32],
        families=["hawk", "griffin"],
    ),
    # A CUDA GPU (not run yet). Griffin windows 16 and 64, not the paper's 1025: the sequences (128, 256)
    # are shorter than 1025, where local attention would be global attention and recall no longer
    # depends on the window, which is what these points show.
    "gpu": dict(
        settings=[(128, 8), (256, 16)], vocab_size=8192, d_model=128, n_layers=2, n_heads=2, steps=3000,
        batch_size=128, lr=3e-3, n_train=100_000, n_test=3000, seed=0, windows=[],
        feature_dims={"linear_taylor": [4, 8]}, based=[{"feature_dim": 8, "window": 32}], griffin_windows=[16, 64],
        families=["attention", "linear_taylor", "based", "hawk", "griffin"],
    ),
}


def mqar_recurrent_config(preset: str | None = None) -> dict[str, Any]:
    """Sizes for a small MQAR sweep with Hawk and Griffin: ``run_mqar_sweep(**mqar_recurrent_config())``.

    The ``"cpu"`` preset trains only ``hawk`` and ``griffin`` (windows 16 and 32) with exactly the
    sweep's ``"cpu"`` preset (``L = 64``, 8 key-value pairs, same data, sizes, batch, learning
    rate and 800 steps), so its points compare one for one with Chapter 5's live run; the other
    families come from the stored sweep. The ``"fast"`` and ``"gpu"`` presets also train
    ``attention``, ``linear_taylor`` and ``based`` for reference.

    Args:
        preset: None picks by :func:`linattn_edu.runtime.mode`; or one of :data:`MQAR_RECURRENT_PRESETS`.

    Returns:
        A new dict (edit freely) with the keys of
        :func:`~linattn_edu.experiments.mqar_sweep.mqar_sweep_config` plus ``families`` and
        ``griffin_windows``.

    Raises:
        ValueError: unknown ``preset``.
    """
    cfg = _preset(MQAR_RECURRENT_PRESETS, preset)
    out = dict(cfg)
    out["settings"] = [tuple(s) for s in cfg["settings"]]
    for key in ("windows", "griffin_windows", "families"):
        out[key] = list(cfg[key])
    out["feature_dims"] = {k: list(v) for k, v in cfg["feature_dims"].items()}
    out["based"] = [dict(b) for b in cfg["based"]]
    return out



def length_findings(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per model, the perplexity at the training length, at the longest length, and their ratio.

    Args:
        result: a :func:`run_length_generalization` result (or a stored reference run of it).

    Returns:
        ``{model: {"train_len", "longest", "ppl_train", "ppl_longest", "ratio"}}`` in row order;
        ``ratio = ppl_longest / ppl_train`` (above 1: worse beyond the training length). The
        training length's perplexity is the one at the shortest evaluated length ``>= train_len``.

    Raises:
        ValueError: ``result`` has no perplexity rows.
    """
    rows = result.get("rows", []) if isinstance(result, dict) else []
    curves: dict[str, dict[int, float]] = {}
    for r in rows:
        curves.setdefault(r["model"], {})[int(r["eval_len"])] = float(r["perplexity"])
    if not curves:
        raise ValueError("result must be a run_length_generalization result with rows")
    train_len = int(result.get("config", {}).get("train_len") or min(min(c) for c in curves.values()))
    out: dict[str, dict[str, float]] = {}
    for model, c in curves.items():
        at = min((n for n in c if n >= train_len), default=min(c))
        longest = max(c)
        out[model] = {"train_len": at, "longest": longest, "ppl_train": c[at], "ppl_longest": c[longest],
                      "ratio": c[longest] / c[at]}
    return out


# ----------------------------------------------------------------------------------------------
# 4. The gates of a trained Hawk LM
# ----------------------------------------------------------------------------------------------

#: The snippet whose gates the chapter draws (byte-level tokens, one per character).
GATES_SNIPPET = "def mean(values):\n    return sum(values) / len(values)\n"

#: Sizes per preset for :func:`run_hawk_gates` (``"mini"``: the chapter's live miniature).
#:
#: :meta hide-value:
GATES_PRESETS: dict[str, dict[str, Any]] = {
    "fast": dict(d_model=32, n_layers=1, n_heads=2, steps=5, seq_len=32, batch_size=4, lr=3e-3, seed=0, channels=16),
    # Live in the chapter: seconds on one core; the gates have barely moved from their initialization.
    "mini": dict(d_model=32, n_layers=1, n_heads=2, steps=60, seq_len=64, batch_size=8, lr=3e-3, seed=0, channels=32),
    # The stored reference run ("griffin_gates"): the chapter's old live cpu model (d_model 64, 2 layers,
    # sequences of 128) trained 1000 steps instead of 300.
    "cpu": dict(d_model=64, n_layers=2, n_heads=4, steps=1000, seq_len=128, batch_size=16, lr=3e-3, seed=0,
                channels=32),
    "gpu": dict(d_model=128, n_layers=2, n_heads=4, steps=2000, seq_len=256, batch_size=32, lr=3e-3, seed=0,
                channels=32),
}


def gates_config(preset: str | None = None) -> dict[str, Any]:
    """Sizes for :func:`run_hawk_gates`: ``run_hawk_gates(**gates_config())``.

    Args:
        preset: None picks by :func:`linattn_edu.runtime.mode` (``"fast"``, ``"cpu"``: the stored
            reference run's sizes, ``"gpu"``); or one of :data:`GATES_PRESETS` (``"mini"``: the
            chapter's live miniature).

    Returns:
        A new dict with ``d_model``, ``n_layers``, ``n_heads``, ``steps``, ``seq_len``,
        ``batch_size``, ``lr``, ``seed`` and ``channels``.

    Raises:
        ValueError: unknown ``preset``.
    """
    return dict(_preset(GATES_PRESETS, preset))


def run_hawk_gates(
    *,
    d_model: int,
    n_layers: int,
    n_heads: int,
    steps: int,
    seq_len: int,
    batch_size: int,
    lr: float = 3e-3,
    seed: int = 0,
    channels: int = 32,
    snippet: str = GATES_SNIPPET,
    device: torch.device | str | None = None,
    progress: bool = True,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Train a byte-level Hawk LM on the ``stdlib`` corpus; record its first RG-LRU layer's gates on ``snippet``.

    The model is ``build_model("hawk", vocab_size=256, d_model, n_layers, n_heads)`` after
    ``torch.manual_seed(seed)``, trained by :func:`~linattn_edu.train.train_lm` (``steps`` AdamW
    steps of ``batch_size`` random windows of ``seq_len`` bytes); then
    ``model.gate_values(snippet)`` gives the recurrence gate ``r_t``, the input gate ``i_t`` (both
    ``(T, C)``) and the base decay ``a = sigma(Lambda)`` ``(C,)`` of the first recurrent layer,
    of which the first ``channels`` channels are kept.

    Args:
        d_model, n_layers, n_heads: model sizes.
        steps, seq_len, batch_size, lr, seed: the training (cosine schedule with warmup).
        channels: channels kept (the first ones; at most the RG-LRU width).
        snippet: the text whose gates are recorded (``T = len(snippet)`` byte tokens).
        device: default :func:`linattn_edu.runtime.device`.
        progress: ``train_lm``'s bar.
        threads: CPU threads during the run (restored afterwards); None: unchanged.

    Returns:
        ``{"rows", "gates", "train", "config", "device", "seconds"}``: ``rows`` the training loss
        curve, ``{"step", "loss"}`` (mean over blocks of ``max(1, steps // 50)`` steps); ``gates``
        ``{"text", "r", "i", "a", "c", "mean_decay", "mean_decay_init"}`` (lists of floats;
        ``mean_decay`` the mean over tokens and channels of ``a_t = a^(c r_t)``, ``mean_decay_init``
        the same for the untrained model); ``train`` ``{"n_params", "final_loss", "train_seconds"}``
        (``final_loss``: mean of the last 10% of steps, nats per byte).

    Raises:
        ValueError: bad sizes (from the model) or an empty ``snippet``.
    """
    start = time.perf_counter()
    if not isinstance(snippet, str) or not snippet:
        raise ValueError(f"snippet must be a non-empty str, got {snippet!r}")
    d_model, n_layers, n_heads = _int(d_model, "d_model"), _int(n_layers, "n_layers"), _int(n_heads, "n_heads")
    steps, seq_len, batch_size = _int(steps, "steps"), _int(seq_len, "seq_len", 2), _int(batch_size, "batch_size")
    seed, channels, lr = _int(seed, "seed", 0), _int(channels, "channels"), _positive(lr, "lr")
    if threads is not None:
        threads = _int(threads, "threads")
    dev = _device(device)
    with limited_threads(dev, threads):
        corpus = load_corpus("stdlib")
        torch.manual_seed(seed)
        model = build_model("hawk", vocab_size=corpus.vocab_size, d_model=d_model, n_layers=n_layers,
                            n_heads=n_heads).to(dev)
        tokens = corpus.encode(snippet)[None].to(dev)

        def mean_decay(g: dict[str, torch.Tensor]) -> float:
            # the decay the gate chooses, a^(c r_t), at every token: not g["a_t"], which is 0 at
            # token 0 (the document-start reset), a fixed rule rather than something learned
            c = float(model.config.c)
            a_t = g["a"][None, :].double() ** (c * g["r"][0].double())
            return float(a_t.mean())

        decay_init = mean_decay(model.gate_values(tokens))  # no_grad, dropout off, mode restored
        info = train_timed(model, corpus.train, seq_len=seq_len, batch_size=batch_size, steps=steps, lr=lr,
                           seed=seed, dev=dev, progress=progress)
        g = model.gate_values(tokens)
        keep = min(channels, g["r"].shape[-1])
        torch_threads = torch.get_num_threads()
    rows = [{"step": s, "loss": m} for s, m in zip(*loss_curve(info["loss"], points=50))]
    out_gates = {
        "text": snippet, "layer": 0, "c": float(model.config.c),
        "r": g["r"][0, :, :keep].double().cpu().tolist(), "i": g["i"][0, :, :keep].double().cpu().tolist(),
        "a": g["a"][:keep].double().cpu().tolist(), "mean_decay": mean_decay(g), "mean_decay_init": decay_init,
    }
    train = {"n_params": int(count_parameters(model)), "final_loss": info["final_loss"],
             "train_seconds": info["train_seconds"]}
    config = {"d_model": d_model, "n_layers": n_layers, "n_heads": n_heads, "steps": steps, "seq_len": seq_len,
              "batch_size": batch_size, "lr": lr, "seed": seed, "channels": keep, "vocab_size": corpus.vocab_size,
              "corpus": "stdlib (train split)", "torch_threads": torch_threads}
    return {"rows": rows, "gates": out_gates, "train": train, "config": config, "device": bench.device_name(dev),
            "seconds": time.perf_counter() - start}


def plot_hawk_gates(result: dict[str, Any], *, title: str | None = None, max_tokens: int = 64,
                    figsize: tuple[float, float] = (14.0, 7.0)) -> Any:
    """Draw a :func:`run_hawk_gates` result with :func:`~linattn_edu.widgets.plot_token_gates`.

    Args:
        result: a :func:`run_hawk_gates` result or its stored reference run.
        title: the figure's suptitle (default: the model's size, steps and final loss).
        max_tokens: at most this many tokens are drawn.
        figsize: size in inches.

    Returns:
        The matplotlib Figure of :func:`~linattn_edu.widgets.plot_token_gates`.

    Raises:
        ValueError: ``result`` has no ``gates``.
    """
    from ..widgets import plot_token_gates

    g = result.get("gates") if isinstance(result, dict) else None
    if not isinstance(g, dict):
        raise ValueError("result must be a run_hawk_gates result with 'gates'")
    fig = plot_token_gates(g["text"], np.asarray(g["r"]), np.asarray(g["i"]), a=np.asarray(g["a"]), c=g["c"],
                           max_tokens=max_tokens, figsize=figsize)
    if title is None:
        cfg, train = result.get("config", {}), result.get("train", {})
        title = (f"Hawk d_model={cfg.get('d_model')}, {cfg.get('n_layers')} layers, {cfg.get('steps')} steps: "
                 f"final loss {train.get('final_loss', float('nan')):.2f} nats/byte ({result.get('device', '?')})")
    fig.suptitle(title, fontsize=10)
    return fig


# ----------------------------------------------------------------------------------------------
# 3b. Recall from the stored MQAR study (Chapter 5's study, read here)
# ----------------------------------------------------------------------------------------------

#: The families of :mod:`.mqar_study` the Griffin chapter shows: its two models and two references.
STUDY_FAMILIES_SHOWN = ("attention", "based", "hawk", "griffin")


def recurrent_study(record: dict[str, Any] | None,
                    families: Sequence[str] = STUDY_FAMILIES_SHOWN) -> dict[str, Any]:
    """The rows of the stored MQAR study (:mod:`.mqar_study`) for ``families``, with what is present.

    The study may still be running (it appends one model at a time): this says, per setting, how
    many of the models it will train for ``families`` are stored, so a chapter shows whatever is
    there and says so.

    Args:
        record: the study's results record (``bench.load_results("mqar_study_cpu")``), or None.
        families: the families kept (default :data:`STUDY_FAMILIES_SHOWN`).

    Returns:
        ``{"rows", "settings", "findings", "lr_at_edge"}``: ``rows`` the kept rows (every lr);
        ``settings`` one ``{"seq_len", "n_pairs", "done", "expected", "complete"}`` per setting of
        the study's config, in order (``done``: stored models of ``families`` at that setting,
        ``expected``: the models its config schedules for them); ``findings``
        :func:`~.mqar_study.study_findings` of the kept rows (settings with rows only);
        ``lr_at_edge`` ``{setting_key: {family: "low" | "high"}}`` for families whose best point's
        best lr is the smallest or largest of the lrs tried (the grid may not bracket its optimum;
        :func:`~.mqar_study.best_lr_at_grid_edge`).
        With ``record`` None: empty rows, settings and findings.

    Raises:
        ValueError: ``families`` names a family the study does not have.
    """
    from . import mqar_study

    families = tuple(families)
    unknown = [f for f in families if f not in mqar_study.STUDY_FAMILIES]
    if unknown or not families:
        raise ValueError(f"families must be families of the MQAR study {list(mqar_study.STUDY_FAMILIES)}, "
                         f"got {list(families)}")
    if record is None:
        return {"rows": [], "settings": [], "findings": {}, "lr_at_edge": {}}
    rows = [r for r in record.get("rows", []) if r.get("family") in families]
    cfg = dict(record.get("config", {}))
    settings = []
    if cfg.get("settings"):
        for c in mqar_study.study_coverage({"config": cfg, "rows": rows}, families):
            settings.append({"seq_len": c["seq_len"], "n_pairs": c["n_pairs"], "done": c["jobs_done"],
                             "expected": c["jobs_total"], "complete": c["complete"]})
    findings = mqar_study.study_findings(rows) if rows else {}
    edge: dict[str, dict[str, str]] = {}
    for b in mqar_study.best_rows(rows):
        key = f"L={b['seq_len']}, pairs={b['n_pairs']}"
        fam = findings.get(key, {}).get("families", {}).get(b["family"])
        side = mqar_study.best_lr_at_grid_edge(b)
        if fam is not None and fam["best_point"] == b["point"] and side is not None:
            edge.setdefault(key, {})[b["family"]] = side
    return {"rows": rows, "settings": settings, "findings": findings, "lr_at_edge": edge}


def mqar_window_coverage(seq_len: int, n_pairs: int, windows: Iterable[int], *, vocab_size: int,
                         n_examples: int = 1000, seed: int = 1) -> dict[int, float]:
    """The fraction of MQAR queries whose key-value pair lies inside a local-attention window.

    A query at position ``p`` asking for the pair stored at positions ``(2i, 2i + 1)`` (key, value;
    see :func:`~linattn_edu.tasks.make_mqar`) is *covered* by a window of ``w`` keys (counting the
    current token, this package's convention) when ``p - (2i + 1) < w``: the value token is among
    the last ``w`` positions the query's local attention sees. Griffin's attention can only look
    up covered pairs; everything else must come through the recurrence.

    Args:
        seq_len, n_pairs, vocab_size: the MQAR setting (as in ``make_mqar``).
        windows: window sizes ``w`` (positive ints).
        n_examples, seed: the sequences measured (the study's test set: ``seed + 1`` of its seed).

    Returns:
        ``{w: fraction of queries covered}`` in ``[0, 1]``, windows ascending.

    Raises:
        ValueError: a bad window (or a bad setting, from ``make_mqar``).
    """
    from ..tasks import make_mqar

    ws = check_lens(windows, "windows")
    inputs, targets = make_mqar(_int(n_examples, "n_examples"), seq_len=seq_len, n_pairs=n_pairs,
                                vocab_size=vocab_size, seed=_int(seed, "seed", 0))
    context = 2 * n_pairs
    distances = []
    for x, y in zip(inputs, targets):
        key_pos = {int(k): 2 * i for i, k in enumerate(x[:context:2])}
        for p in np.nonzero(y != -100)[0]:
            distances.append(int(p) - (key_pos[int(x[p])] + 1))
    d = np.asarray(distances)
    return {w: float(np.mean(d < w)) for w in ws}


# ----------------------------------------------------------------------------------------------
# Stored reference runs (scripts/run_experiment.py NAME --preset cpu; loaded by the chapter)
# ----------------------------------------------------------------------------------------------

from .stored import StoredExperiment, register  # noqa: E402

register(StoredExperiment(
    name="griffin_length", chapter="06_griffin_hawk", run=run_length_generalization,
    config=length_generalization_config, unit_arg="kinds", default_units=tuple(RECURRENT_KINDS),
    presets=("cpu", "gpu"), description="Griffin/Hawk/MQA Transformer: train short, test long (3 LMs)",
    run_options={"progress": False}))

register(StoredExperiment(
    name="griffin_gates", chapter="06_griffin_hawk", run=run_hawk_gates, config=gates_config, unit_arg=None,
    presets=("cpu", "gpu"), description="the RG-LRU gates of a trained byte-level Hawk LM (1 LM)",
    run_options={"progress": False}))
