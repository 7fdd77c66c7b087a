"""Train short, test long: the ALiBi paper's length-extrapolation experiment at book scale.

Press, Smith & Lewis (ICLR 2022, arXiv:2108.12409) train language models at a length ``L`` and
evaluate them at longer lengths. On WikiText-103 (``L = 512``) sinusoidal models explode past
``L``, rotary ones degrade, and ALiBi stays flat. :func:`run_extrapolation` repeats that
experiment with small byte-level models on the offline ``stdlib`` corpus
(:func:`linattn_edu.data.load_corpus`), one model per position scheme, everything else equal:

1. **Train** one Transformer per scheme (:data:`POSITION_SCHEMES`) on random windows of
   ``train_len`` tokens of the corpus's train split: same seed, sizes, steps, batch and learning
   rate (:func:`linattn_edu.train.train_lm`).
2. **Evaluate** each on the valid split at every length in ``eval_lens`` with non-overlapping
   windows (:func:`linattn_edu.train.evaluate_perplexity`). Every length scores the *same text*:
   the first ``N = n_windows · max(eval_lens)`` tokens of the valid split (``n_windows`` =
   ``eval_max_windows``, or as many whole windows of the longest length as the split holds),
   cut into ``N // L`` windows of length ``L``. So every length sees the same number of tokens
   (exactly ``N`` when ``L`` divides ``max(eval_lens)``); only the context available to each
   token changes.
3. **Cost**: the memory one training run needs at ``train_len`` (peak GPU memory on CUDA, peak
   resident memory on a Linux CPU, :func:`linattn_edu.bench.peak_rss_bytes`) and
   :func:`alibi_cost_comparison`, the paper's "train short" comparison: ALiBi trained at
   ``L/2`` against sinusoidal at ``L``, with the same number of tokens per step.

:func:`plot_extrapolation` draws perplexity against evaluation length, live and stored.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from .. import bench, runtime
from ._args import check_int as _int, check_positive as _positive, resolve_device as _device
from ._common import check_eval_lens, eval_text, plot_perplexity_curves, series_key, limited_threads, train_and_evaluate
from ..data import load_corpus
from ..models import build_model, count_parameters
from ..train import evaluate_perplexity, train_lm

__all__ = [
    "POSITION_SCHEMES",
    "PRESETS",
    "extrapolation_config",
    "run_extrapolation",
    "alibi_cost_comparison",
    "result_to_rows",
    "plot_extrapolation",
]

#: The position schemes compared, as ``pos=`` values of ``build_model("transformer", ...)``.
POSITION_SCHEMES = ("sinusoidal", "learned", "rope", "alibi", "none")

#: Sizes per preset. ``"fast"``, ``"cpu"`` and ``"gpu"`` follow :func:`linattn_edu.runtime.mode`;
#: ``"cpu"`` is the stored reference run (``linattn_edu/results/alibi_extrapolation_cpu.json``, made
#: with ``python scripts/run_experiment.py alibi_extrapolation --preset cpu``) and ``"mini"`` the live
#: miniature the chapter trains while it runs (``extrapolation_config(stored.live_preset())``).
#:
#: :meta hide-value:
PRESETS: dict[str, dict[str, Any]] = {
    # Tests: only checks that everything runs (a few seconds for all five schemes).
    "fast": dict(train_len=16, eval_lens=(16, 32), d_model=32, n_layers=1, n_heads=2, steps=5,
                 batch_size=4, lr=3e-3, eval_max_windows=2, max_bytes=200_000, seed=0),
    # The live miniature of the chapter: all five schemes in seconds on one core. Too small to be
    # the evidence; the chapter draws it next to the stored reference run.
    "mini": dict(train_len=32, eval_lens=(32, 64, 128, 256), d_model=64, n_layers=1, n_heads=4, steps=100,
                 batch_size=8, lr=3e-3, eval_max_windows=2, max_bytes=None, seed=0),
    # The stored reference run on a CPU, all five schemes (its wall time is in the stored file;
    # `scripts/run_experiment.py --list` prints it).
    "cpu": dict(train_len=128, eval_lens=(128, 256, 512, 1024, 2048), d_model=128, n_layers=4, n_heads=4,
                steps=800, batch_size=16, lr=3e-3, eval_max_windows=8, max_bytes=None, seed=0),
    # A CUDA GPU.
    "gpu": dict(train_len=256, eval_lens=(256, 512, 1024, 2048, 4096), d_model=256, n_layers=4, n_heads=8,
                steps=2000, batch_size=32, lr=1e-3, eval_max_windows=32, max_bytes=None, seed=0),
}


def extrapolation_config(preset: str | None = None) -> dict[str, Any]:
    """Sizes for :func:`run_extrapolation`: pass them as ``run_extrapolation(**extrapolation_config())``.

    Args:
        preset: None picks by :func:`linattn_edu.runtime.mode` through :func:`runtime.pick`
            (``"fast"`` under the tests, ``"cpu"`` without a GPU, ``"gpu"`` with one: the reference
            sizes); or name one of :data:`PRESETS` (``"fast"``, ``"mini"``, ``"cpu"``, ``"gpu"``).
            The chapter's live miniature is ``extrapolation_config(stored.live_preset())``.

    Returns:
        A new dict with keys ``train_len``, ``eval_lens`` (tuple), ``d_model``, ``n_layers``,
        ``n_heads``, ``steps``, ``batch_size``, ``lr``, ``eval_max_windows`` (windows of the
        longest eval length), ``max_bytes`` (corpus cap, None = whole corpus) and ``seed``.

    Raises:
        ValueError: unknown ``preset``.
    """
    if preset is None:
        cfg = runtime.pick(fast=PRESETS["fast"], cpu=PRESETS["cpu"], gpu=PRESETS["gpu"])
    elif preset in PRESETS:
        cfg = PRESETS[preset]
    else:
        raise ValueError(f"preset must be None or one of {list(PRESETS)}, got {preset!r}")
    return dict(cfg)


# ----------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------


def _check_schemes(schemes: Any) -> tuple[str, ...]:
    if isinstance(schemes, str):
        schemes = (schemes,)
    try:
        schemes = tuple(schemes)
    except TypeError:
        raise ValueError(f"schemes must be a sequence of names from {list(POSITION_SCHEMES)}, got {schemes!r}") from None
    if not schemes:
        raise ValueError("schemes must name at least one position scheme")
    for s in schemes:
        if s not in POSITION_SCHEMES:
            raise ValueError(f"schemes must be names from {list(POSITION_SCHEMES)}, got {s!r}")
    if len(set(schemes)) != len(schemes):
        raise ValueError(f"schemes must not repeat a name, got {list(schemes)}")
    return schemes


# ----------------------------------------------------------------------------------------------
# Measuring one training run's cost
# ----------------------------------------------------------------------------------------------


def _measure_memory(fn: Any, dev: torch.device) -> int | None:
    """Peak memory above the starting point while ``fn()`` runs: CUDA allocator or CPU RSS."""
    if dev.type == "cuda":
        return bench.peak_memory_bytes(fn, device=dev)
    return bench.peak_rss_bytes(fn)


def _model(pos: str, *, vocab_size: int, d_model: int, n_layers: int, n_heads: int, max_len: int,
           seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("transformer", vocab_size=vocab_size, d_model=d_model, n_layers=n_layers,
                       n_heads=n_heads, pos=pos, max_len=max_len)


def _train_step_cost(pos: str, tokens: torch.Tensor, *, seq_len: int, batch_size: int, d_model: int,
                     n_layers: int, n_heads: int, steps: int, seed: int, dev: torch.device) -> dict[str, Any]:
    """Median step time and peak memory of ``steps`` training steps of a fresh model.

    One untimed warm-up step comes first: the first training step of a process also pays one-time
    costs (thread pools, allocator arenas: ~170 MB of RSS on a 2-core CPU), which are no part of
    what a scheme needs.
    """
    model = _model(pos, vocab_size=256, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                   max_len=max(seq_len, 2), seed=seed)
    model.to(dev)
    common = dict(seq_len=seq_len, batch_size=batch_size, seed=seed, device=dev, progress=False)
    train_lm(model, tokens, steps=1, **common)  # warm-up
    out: dict[str, Any] = {}

    def run() -> None:
        out["history"] = train_lm(model, tokens, steps=steps, **common)

    memory = _measure_memory(run, dev)
    step_time = statistics.median(out["history"]["step_times_s"])
    return {"pos": pos, "seq_len": seq_len, "batch_size": batch_size, "tokens_per_step": seq_len * batch_size,
            "step_time_s": step_time, "tokens_per_s": seq_len * batch_size / step_time,
            "peak_memory_bytes": memory}


def alibi_cost_comparison(
    *,
    train_len: int,
    d_model: int,
    n_layers: int,
    n_heads: int,
    batch_size: int,
    steps: int = 8,
    seed: int = 0,
    device: torch.device | str | None = None,
    tokens: Any = None,
) -> dict[str, Any]:
    """The paper's "train short" cost: ALiBi at ``L/2`` against sinusoidal at ``L``, as ratios.

    Press et al. report that a 1.3B ALiBi model trained at ``L = 1024`` matches the perplexity at
    2048 of a sinusoidal model trained at 2048, while training 11% faster with 11% less memory.
    This measures the cost side at our sizes: a fresh sinusoidal model trained at
    ``seq_len = train_len`` with ``batch_size`` windows per step, and a fresh ALiBi model at
    ``seq_len = train_len // 2`` with ``2 · batch_size`` windows, so both see the same
    ``train_len · batch_size`` tokens per step (as in the paper: halving the length halves the
    attention cost per token, the rest of the model costs the same).

    Each is trained one untimed warm-up step, then ``steps`` steps (:func:`linattn_edu.train.train_lm`);
    the step time is the median over those ``steps``; memory is the peak above the starting point during the run
    (``torch.cuda`` allocator on CUDA; peak RSS on a Linux CPU, :func:`linattn_edu.bench.peak_rss_bytes`;
    None elsewhere). On a small CPU model these ratios are dominated by the non-attention layers
    and by timing noise: read them as an order of magnitude.

    Args:
        train_len: the sinusoidal model's training length ``L`` (>= 4, so ``L/2 >= 2``).
        d_model, n_layers, n_heads: model sizes (both models).
        batch_size: windows per step at length ``L``.
        steps: timed steps per model.
        seed: seeds both models and their batches.
        device: default :func:`linattn_edu.runtime.device`.
        tokens: 1-D token stream to train on; default the ``stdlib`` corpus's train split.

    Returns:
        ``{"alibi_short": {...}, "sinusoidal_full": {...}, "step_time_ratio", "memory_ratio",
        "tokens_per_s_ratio"}``; each inner dict has ``pos``, ``seq_len``, ``batch_size``,
        ``tokens_per_step``, ``step_time_s``, ``tokens_per_s``, ``peak_memory_bytes``. Ratios are
        ALiBi(L/2) / sinusoidal(L) (``memory_ratio`` None when memory is not measurable).

    Raises:
        ValueError: bad arguments, naming them.
    """
    train_len = _int(train_len, "train_len", 4)
    d_model, n_layers, n_heads = _int(d_model, "d_model"), _int(n_layers, "n_layers"), _int(n_heads, "n_heads")
    batch_size, steps, seed = _int(batch_size, "batch_size"), _int(steps, "steps"), _int(seed, "seed", 0)
    dev = _device(device)
    stream = load_corpus("stdlib").train if tokens is None else tokens
    common = dict(d_model=d_model, n_layers=n_layers, n_heads=n_heads, steps=steps, seed=seed, dev=dev)
    sin = _train_step_cost("sinusoidal", stream, seq_len=train_len, batch_size=batch_size, **common)
    ali = _train_step_cost("alibi", stream, seq_len=train_len // 2, batch_size=2 * batch_size, **common)
    mem_ratio = None
    if sin["peak_memory_bytes"] and ali["peak_memory_bytes"] is not None:
        mem_ratio = ali["peak_memory_bytes"] / sin["peak_memory_bytes"]
    return {
        "alibi_short": ali,
        "sinusoidal_full": sin,
        "step_time_ratio": ali["step_time_s"] / sin["step_time_s"],
        "tokens_per_s_ratio": ali["tokens_per_s"] / sin["tokens_per_s"],
        "memory_ratio": mem_ratio,
    }


# ----------------------------------------------------------------------------------------------
# The experiment
# ----------------------------------------------------------------------------------------------


def run_extrapolation(
    schemes: Sequence[str] = POSITION_SCHEMES,
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
    device: torch.device | str | None = None,
    progress: bool = True,
    cost_steps: int = 6,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Train one small byte-level LM per position scheme at ``train_len``; evaluate at ``eval_lens``.

    Every scheme gets a Transformer (``build_model("transformer", pos=scheme)``, vocabulary 256,
    pre-norm, tied embeddings) built after ``torch.manual_seed(seed)``, trained with
    :func:`~linattn_edu.train.train_lm` for ``steps`` AdamW steps of ``batch_size`` random windows
    of ``train_len`` tokens from the train split of the ``stdlib`` corpus (the same batches for
    every scheme), then scored with :func:`~linattn_edu.train.evaluate_perplexity`.

    Evaluation text: let ``L_max = max(eval_lens)`` and ``W = eval_max_windows`` (None: as many
    whole windows of ``L_max`` as the valid split holds). The first ``N = W · L_max`` predicted
    tokens of the valid split (``N + 1`` tokens of text) are cut into ``N // L`` non-overlapping
    windows for each length ``L``: every length and every scheme sees the same text and the same
    number of scored tokens (exactly ``N`` when ``L`` divides ``L_max``). The first token of each
    window is predicted from little context, as in the paper's non-overlapping evaluation.

    ``"learned"`` is built with a table of ``max_len = max(eval_lens)`` positions so that it can be
    evaluated past ``train_len``; its rows for positions ``>= train_len`` are never trained (they
    keep their random initialization, shrunk slightly by weight decay), exactly what happens to a
    learned table in the paper when it is evaluated beyond its training length.
    ``"sinusoidal"`` vectors exist for every position but were never seen past ``train_len``;
    ``"rope"`` and ``"alibi"`` depend only on relative positions; ``"none"`` (NoPE) has no
    position information besides the causal mask.

    Args:
        schemes: position schemes from :data:`POSITION_SCHEMES`, trained in this order.
        train_len: training context ``L`` (>= 2).
        eval_lens: evaluation lengths (positive ints; sorted in the result).
        d_model, n_layers, n_heads: model sizes (``d_model % n_heads == 0``, even head dim).
        steps, batch_size, lr: the optimization (cosine schedule with warmup, see ``train_lm``).
        seed: seeds the models, the batches and the cost runs (CPU runs are bit-for-bit repeatable).
        eval_max_windows: windows of the longest eval length (None: the whole valid split).
        max_bytes: keep only the first ``max_bytes`` bytes of the corpus (None: all ~4 MB).
        device: default :func:`linattn_edu.runtime.device`.
        progress: a tqdm bar over the schemes, and ``train_lm``'s bar per model.
        cost_steps: timed steps per model for the memory measurement and
            :func:`alibi_cost_comparison` (0: skip both; memory is then None). The comparison
            runs only when ``"alibi"`` is among ``schemes``.
        threads: on a CPU, the number of PyTorch threads during the run (restored afterwards);
            None keeps the current setting. The default 1 is deliberate: at these sizes a second
            thread gains at most ~1.5x on an idle machine, but on a machine whose cores are busy
            with other work, PyTorch's OpenMP threads spin-wait for each other and a training step
            became ~45x slower in our measurements (2-core CPU shared with one other process).
            One thread also makes the numbers independent of the machine's core count.

    Returns:
        A dict:

        - ``"rows"``: one ``{"pos", "train_len", "eval_len", "perplexity"}`` per (scheme, eval length),
          schemes in the given order, lengths ascending.
        - ``"train"``: ``{pos: {"n_params", "final_loss", "step_time_s", "tokens_per_s",
          "peak_memory_bytes", "train_seconds"}}``. ``final_loss`` is the mean training loss (nats
          per byte) of the last 10% of steps; ``step_time_s`` the median step time of the training
          run (forward, backward, optimizer), ``tokens_per_s = batch_size · train_len / step_time_s``;
          ``peak_memory_bytes`` the memory above the starting point of ``cost_steps`` steps of
          a fresh copy (after one warm-up step) at ``train_len`` (CUDA: allocator peak; Linux CPU: peak RSS; else None);
          ``train_seconds`` the wall time of the whole training run.
        - ``"cost"``: :func:`alibi_cost_comparison` at these sizes, measured once per run when
          ``"alibi"`` is among ``schemes`` (so a run of one scheme at a time, as
          :mod:`~linattn_edu.experiments.stored` makes it, measures it exactly once, with the ALiBi
          model); None without ``"alibi"``, if ``cost_steps == 0`` or ``train_len < 4``.
        - ``"config"``: the arguments, plus ``eval_tokens`` (``N``), ``eval_windows`` per length and
          ``learned_max_len``.
        - ``"device"``: :func:`linattn_edu.bench.device_name`; ``"corpus"``: the corpus description;
          ``"seconds"``: total wall time.

    Raises:
        ValueError: an unknown scheme (``schemes``), ``eval_lens`` empty or with a non-positive
            length, ``train_len < 2``, bad sizes, or a valid split too short for ``max(eval_lens)``.
    """
    start = time.perf_counter()
    schemes = _check_schemes(schemes)
    train_len = _int(train_len, "train_len", 2)
    lens = check_eval_lens(eval_lens)
    d_model, n_layers, n_heads = _int(d_model, "d_model"), _int(n_layers, "n_layers"), _int(n_heads, "n_heads")
    steps, batch_size, seed = _int(steps, "steps"), _int(batch_size, "batch_size"), _int(seed, "seed", 0)
    cost_steps = _int(cost_steps, "cost_steps", 0)
    if threads is not None:
        threads = _int(threads, "threads")
    lr = _positive(lr, "lr")
    if eval_max_windows is not None:
        eval_max_windows = _int(eval_max_windows, "eval_max_windows")
    if d_model % n_heads or (d_model // n_heads) % 2:
        raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads} with an even head dim")
    dev = _device(device)
    with limited_threads(dev, threads):
        return _run(schemes, lens, dev, start, train_len=train_len, d_model=d_model, n_layers=n_layers,
                    n_heads=n_heads, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                    eval_max_windows=eval_max_windows, max_bytes=max_bytes, progress=progress,
                    cost_steps=cost_steps)


# ----------------------------------------------------------------------------------------------
# Shared plumbing (also used by :func:`linattn_edu.experiments.recurrent.run_length_generalization`)
# ----------------------------------------------------------------------------------------------


def _run(schemes: tuple[str, ...], lens: tuple[int, ...], dev: torch.device, start: float, *, train_len: int,
         d_model: int, n_layers: int, n_heads: int, steps: int, batch_size: int, lr: float, seed: int,
         eval_max_windows: int | None, max_bytes: int | None, progress: bool, cost_steps: int) -> dict[str, Any]:
    """The body of :func:`run_extrapolation`, with validated arguments."""
    corpus = load_corpus("stdlib", max_bytes=max_bytes)
    eval_tokens, n_eval = eval_text(corpus, lens, eval_max_windows, max_bytes, train_len)
    learned_max_len = max(lens[-1], train_len)

    from tqdm.auto import tqdm

    rows: list[dict[str, Any]] = []
    train: dict[str, dict[str, Any]] = {}
    bar = tqdm(schemes, desc="schemes", disable=not progress, leave=True)
    for pos in bar:
        bar.set_postfix(pos=pos, refresh=True)
        model = _model(pos, vocab_size=corpus.vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                       max_len=learned_max_len, seed=seed)
        ppls, info = train_and_evaluate(model, corpus.train, eval_tokens, lens, train_len=train_len,
                                         batch_size=batch_size, steps=steps, lr=lr, seed=seed, dev=dev,
                                         progress=progress)
        for length, ppl in zip(lens, ppls):
            rows.append({"pos": pos, "train_len": train_len, "eval_len": length, "perplexity": ppl})
        memory = None
        if cost_steps:
            memory = _train_step_cost(pos, corpus.train, seq_len=train_len, batch_size=batch_size, d_model=d_model,
                                      n_layers=n_layers, n_heads=n_heads, steps=cost_steps, seed=seed,
                                      dev=dev)["peak_memory_bytes"]
        train[pos] = {k: info[k] for k in ("n_params", "final_loss", "step_time_s", "tokens_per_s")}
        train[pos].update(peak_memory_bytes=memory, train_seconds=info["train_seconds"])
        del model
    bar.close()

    cost = None
    if cost_steps and train_len >= 4 and "alibi" in schemes:
        cost = alibi_cost_comparison(train_len=train_len, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                                     batch_size=batch_size, steps=cost_steps, seed=seed, device=dev,
                                     tokens=corpus.train)

    config = {
        "schemes": list(schemes), "train_len": train_len, "eval_lens": list(lens), "d_model": d_model,
        "n_layers": n_layers, "n_heads": n_heads, "steps": steps, "batch_size": batch_size, "lr": lr,
        "seed": seed, "eval_max_windows": eval_max_windows, "max_bytes": max_bytes, "cost_steps": cost_steps,
        "eval_tokens": n_eval, "eval_windows": {str(length): n_eval // length for length in lens},
        "learned_max_len": learned_max_len, "vocab_size": corpus.vocab_size,
        "torch_threads": torch.get_num_threads(),
        "eval": "non-overlapping windows over the first eval_tokens + 1 tokens of the valid split, "
                "the same text for every length and scheme",
    }
    corpus_desc = {k: v for k, v in corpus.description.items() if k != "file_names"}
    return {"rows": rows, "train": train, "cost": cost, "config": config, "device": bench.device_name(dev),
            "corpus": corpus_desc, "seconds": time.perf_counter() - start}


def result_to_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten a :func:`run_extrapolation` result into results-file rows, each with a ``kind``.

    ``kind="perplexity"``: ``{pos, train_len, eval_len, perplexity}``; ``kind="train"``: one per
    scheme with the ``result["train"]`` numbers (a
    :func:`~linattn_edu.experiments.recurrent.run_length_generalization` result works too: its
    rows name a ``model`` instead of a ``pos``); ``kind="cost"``: the two runs of
    :func:`alibi_cost_comparison` (``role`` ``"alibi_short"`` / ``"sinusoidal_full"``) and a
    ``role="ratio"`` row with ``step_time_ratio``, ``tokens_per_s_ratio``, ``memory_ratio``.
    """
    rows = [{"kind": "perplexity", **r} for r in result["rows"]]
    train_len = result["config"]["train_len"]
    key = series_key(result["rows"])
    rows += [{"kind": "train", key: name, "train_len": train_len, **v} for name, v in result["train"].items()]
    cost = result.get("cost")
    if cost:
        rows += [{"kind": "cost", "role": role, **cost[role]} for role in ("alibi_short", "sinusoidal_full")]
        rows.append({"kind": "cost", "role": "ratio",
                     **{k: cost[k] for k in ("step_time_ratio", "tokens_per_s_ratio", "memory_ratio")}})
    return rows


# ----------------------------------------------------------------------------------------------
# Plot
# ----------------------------------------------------------------------------------------------

_COLORS = {"sinusoidal": "tab:blue", "learned": "tab:orange", "rope": "tab:green", "alibi": "tab:red",
           "none": "tab:gray"}


def plot_extrapolation(result: dict[str, Any] | None, *, ax: Any = None, stored: dict[str, Any] | None = None) -> Any:
    """Perplexity against evaluation length, one line per scheme, and the training length marked.

    Args:
        result: a :func:`run_extrapolation` result (solid lines, circles), or None to draw only
            ``stored``. (A :func:`~linattn_edu.experiments.recurrent.run_length_generalization`
            result also works, one line per model; its own plot is
            :func:`~linattn_edu.experiments.recurrent.plot_length_generalization`.)
        ax: a matplotlib Axes to draw on (default: a new figure).
        stored: a second result to compare with, e.g. a results record of
            :func:`linattn_edu.bench.load_results` holding :func:`result_to_rows` rows (only rows
            with ``kind="perplexity"`` or without a ``kind`` are drawn), or another
            :func:`run_extrapolation` result: drawn dashed with squares, labelled ``stored`` with
            its device and date.

    Returns:
        The Axes: log2 x axis (evaluation length), log y axis (perplexity), a dotted vertical line at
        each training length.

    Raises:
        ValueError: neither ``result`` nor ``stored`` has perplexity rows.
    """
    return plot_perplexity_curves(result, ax=ax, stored=stored, colors=_COLORS,
                                   title="Train short, test long: perplexity vs evaluation length")




# ----------------------------------------------------------------------------------------------
# The stored reference run (scripts/run_experiment.py alibi_extrapolation --preset cpu)
# ----------------------------------------------------------------------------------------------

from .stored import StoredExperiment, register  # noqa: E402

register(StoredExperiment(
    name="alibi_extrapolation", chapter="03_alibi", run=run_extrapolation, config=extrapolation_config,
    unit_arg="schemes", default_units=POSITION_SCHEMES, presets=("cpu", "gpu"),
    description="ALiBi train short, test long: one byte-level LM per position scheme (5 LMs)",
    run_options={"progress": False}))
