"""Generation throughput: a growing KV cache against a fixed recurrent state.

The Based paper (Arora et al., ICML 2024, arXiv:2402.18668) reports **24× higher generation
throughput than FlashAttention-2** for a 1.3B-parameter model generating 1024 tokens. The reason
is the decode state: a softmax Transformer must read its whole KV cache, ``2 · layers · T · d``
numbers that grow with every token, to produce the next token, while Based reads a state of fixed
size (Taylor linear-attention states, a small window of keys and values, short conv buffers).

:func:`generation_benchmark` measures that shape at book scale: untrained (random-weight) models
of the same width and depth, a random prompt of ``prompt_len`` tokens, then greedy decoding
(``argmax``) through the zoo's ``prefill`` + ``step`` interface under ``torch.no_grad``. One run
of ``max(gen_lens)`` steps records the elapsed time after each length in ``gen_lens``; the run
is repeated and the minimum kept (on a shared CPU, other work can only add time). Weights are
random because throughput does not depend on what the weights are, only on the shapes.

What it is *not*: the paper's measurement. The paper uses 1.3B models on an H100 with custom
CUDA kernels for Based and FlashAttention-2 for the baseline, with large batches; here the
Transformer decodes through the book's ``flash_attention`` (PyTorch path on a CPU, the Triton
kernel on a GPU) and concatenates its cache each step, and small models on a CPU are dominated by
per-layer overheads. Compare the *trend* (Transformer tokens/s falling as the cache grows, Based
flat) rather than the ratio.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import torch

from .. import bench, runtime
from ._args import check_int as _int
from ..models import build_model, cache_bytes, count_parameters

__all__ = ["GENERATION_KINDS", "GENERATION_PRESETS", "generation_config", "generation_benchmark", "plot_generation"]

#: The model kinds compared, and the options each is built with (besides the shared sizes).
GENERATION_KINDS: dict[str, dict[str, Any]] = {
    "transformer": {"pos": "rope"},
    "based": {},  # the zoo's Based defaults: Taylor feature_dim 16, window 64, conv kernel 3, SwiGLU
}

#: Sizes per preset (``"fast"``, ``"cpu"``, ``"gpu"`` follow :func:`linattn_edu.runtime.mode`;
#: ``"mini"`` is the live miniature Chapter 5 runs on a CPU).
#:
#: :meta hide-value:
GENERATION_PRESETS: dict[str, dict[str, Any]] = {
    "fast": dict(gen_lens=(8, 16), prompt_len=16, d_model=32, n_layers=2, n_heads=2, batch_size=2,
                 vocab_size=64, repeat=1, model_options={"based": {"feature_dim": 4, "window": 16}}),
    "cpu": dict(gen_lens=(64, 128, 256, 512, 1024), prompt_len=64, d_model=256, n_layers=4, n_heads=4,
                batch_size=8, vocab_size=256, repeat=2),
    # Chapter 5's live cell on a CPU (~5-10 s on 2 cores; "cpu" above takes minutes): a small model
    # with a large batch, so that reading the KV cache still shows against the per-step overheads.
    "mini": dict(gen_lens=(32, 64, 128, 256), prompt_len=32, d_model=64, n_layers=2, n_heads=2, batch_size=32,
                 vocab_size=128, repeat=1, model_options={"based": {"feature_dim": 8, "window": 32}}),
    "gpu": dict(gen_lens=(128, 256, 512, 1024, 2048, 4096), prompt_len=512, d_model=1024, n_layers=12,
                n_heads=16, batch_size=32, vocab_size=8192, repeat=3),
}


def generation_config(preset: str | None = None) -> dict[str, Any]:
    """Sizes for :func:`generation_benchmark`: ``generation_benchmark(**generation_config())``.

    Args:
        preset: None picks by :func:`linattn_edu.runtime.mode`; or one of :data:`GENERATION_PRESETS`.

    Returns:
        A new dict with ``gen_lens``, ``prompt_len``, ``d_model``, ``n_layers``, ``n_heads``,
        ``batch_size``, ``vocab_size`` and ``repeat``.

    Raises:
        ValueError: unknown ``preset``.
    """
    if preset is None:
        cfg = runtime.pick(fast=GENERATION_PRESETS["fast"], cpu=GENERATION_PRESETS["cpu"],
                           gpu=GENERATION_PRESETS["gpu"])
    elif isinstance(preset, str) and preset in GENERATION_PRESETS:
        cfg = GENERATION_PRESETS[preset]
    else:
        raise ValueError(f"preset must be None or one of {list(GENERATION_PRESETS)}, got {preset!r}")
    return dict(cfg)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


@torch.no_grad()
def _decode_run(model: torch.nn.Module, prompt: torch.Tensor, lens: list[int], dev: torch.device) -> tuple[
        float, list[float], list[int]]:
    """One greedy generation of ``max(lens)`` tokens.

    Returns ``(prefill seconds, [decode seconds up to each length], [cache bytes at each length])``;
    the cache is measured after the clock is read, and takes microseconds.
    """
    _sync(dev)
    t0 = time.perf_counter()
    logits, cache = model.prefill(prompt)
    token = logits[:, -1].argmax(-1)
    _sync(dev)
    t1 = time.perf_counter()
    marks, nbytes, want = [], [], 0
    for i in range(1, lens[-1] + 1):
        logits, cache = model.step(token, cache)
        token = logits.argmax(-1)
        if i == lens[want]:
            _sync(dev)
            marks.append(time.perf_counter() - t1)
            nbytes.append(cache_bytes(cache))
            want += 1
    return t1 - t0, marks, nbytes


def generation_benchmark(
    kinds: Sequence[str] = ("transformer", "based"),
    *,
    gen_lens: Sequence[int],
    prompt_len: int,
    d_model: int,
    n_layers: int,
    n_heads: int,
    batch_size: int,
    vocab_size: int = 256,
    repeat: int = 2,
    seed: int = 0,
    model_options: dict[str, dict[str, Any]] | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Time greedy generation of ``gen_len`` tokens after a ``prompt_len`` prompt, per model kind.

    For each kind: ``build_model(kind, vocab_size, d_model, n_layers, n_heads, **options)`` after
    ``torch.manual_seed(seed)`` (options: :data:`GENERATION_KINDS` updated by ``model_options``),
    in float32 (a GPU run uses the same float32 weights), ``eval()`` mode, under ``no_grad``. The
    prompt is ``(batch_size, prompt_len)`` random tokens. A warm-up generation of a few tokens,
    then ``repeat`` generations of ``max(gen_lens)`` tokens; the time to the ``g``-th generated
    token is recorded for every ``g`` in ``gen_lens``, and the minimum over repeats kept.

    Args:
        kinds: registered model kinds with ``prefill``/``step`` (default the two compared).
        gen_lens: generated lengths to report (the decode steps after the prefill).
        prompt_len: prompt tokens (their prefill is timed separately, not in ``seconds``).
        d_model, n_layers, n_heads, vocab_size: sizes shared by all kinds.
        batch_size: sequences decoded together.
        repeat: timed generations per kind (minimum kept).
        seed: weights and prompt.
        model_options: ``{kind: {option: value}}`` overriding :data:`GENERATION_KINDS`.
        device: default :func:`linattn_edu.runtime.device`.
        progress: a tqdm bar over kinds and repeats.

    Returns:
        ``{"rows": [...], "config": {...}, "device": str}``. One row per kind and generated length:
        ``kind``, ``gen_len``, ``seconds`` (decode time of ``gen_len`` tokens for the whole batch),
        ``tokens_per_s`` (``batch_size · gen_len / seconds``), ``ms_per_token`` (per decode step),
        ``state_bytes`` (bytes of the decode cache of the *whole batch* after ``prompt_len +
        gen_len`` tokens, measured with :func:`~linattn_edu.models.cache_bytes`), plus
        ``prefill_seconds`` and ``n_params``.

    Raises:
        ValueError: bad arguments, naming them.
    """
    if isinstance(kinds, str):
        kinds = (kinds,)
    kinds = tuple(kinds)
    if not kinds or len(set(kinds)) != len(kinds):
        raise ValueError(f"kinds must be distinct model kinds, got {kinds!r}")
    try:
        lens = sorted({_int(g, "gen_lens") for g in gen_lens})
    except TypeError:
        raise ValueError(f"gen_lens must be a list of positive ints, got {gen_lens!r}") from None
    if not lens:
        raise ValueError("gen_lens must hold at least one length")
    prompt_len = _int(prompt_len, "prompt_len")
    d_model, n_layers, n_heads = _int(d_model, "d_model"), _int(n_layers, "n_layers"), _int(n_heads, "n_heads")
    batch_size, vocab_size = _int(batch_size, "batch_size"), _int(vocab_size, "vocab_size", 2)
    repeat, seed = _int(repeat, "repeat"), _int(seed, "seed", 0)
    if model_options is not None and not isinstance(model_options, dict):
        raise ValueError(f"model_options must be a dict {{kind: {{option: value}}}}, got {model_options!r}")
    if device is None:
        dev = runtime.device()
    else:
        try:
            dev = torch.device(device)
        except (TypeError, RuntimeError) as err:
            raise ValueError(f"device must be None, a torch.device or a string like 'cpu', got {device!r}") from err

    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, vocab_size, (batch_size, prompt_len), generator=gen).to(dev)
    rows: list[dict[str, Any]] = []
    options_used: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=len(kinds) * repeat, disable=not progress, desc="generation")
    for kind in kinds:
        opts = {**GENERATION_KINDS.get(kind, {}), **((model_options or {}).get(kind, {}))}
        torch.manual_seed(seed)
        model = build_model(kind, vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads, **opts)
        model.to(dev).eval()
        options_used[kind] = {"kind": kind, **opts}
        _decode_run(model, prompt, [min(4, lens[-1])], dev)  # warm-up: allocator, kernels, caches
        best_prefill, best = float("inf"), [float("inf")] * len(lens)
        nbytes: list[int] = []
        for _ in range(repeat):
            if progress:
                bar.set_postfix_str(kind, refresh=True)
            prefill_s, marks, nbytes = _decode_run(model, prompt, lens, dev)
            best_prefill = min(best_prefill, prefill_s)
            best = [min(b, m) for b, m in zip(best, marks)]
            bar.update(1)
        n_params = count_parameters(model)
        for g, seconds, state in zip(lens, best, nbytes):
            rows.append({"kind": kind, "gen_len": g, "seconds": seconds, "tokens_per_s": batch_size * g / seconds,
                         "ms_per_token": 1e3 * seconds / g, "state_bytes": int(state),
                         "prefill_seconds": best_prefill, "n_params": int(n_params)})
        del model
    bar.close()
    config = {
        "kinds": list(kinds), "gen_lens": lens, "prompt_len": prompt_len, "d_model": d_model, "n_layers": n_layers,
        "n_heads": n_heads, "batch_size": batch_size, "vocab_size": vocab_size, "repeat": repeat, "seed": seed,
        "model_options": options_used, "dtype": "float32", "decoding": "greedy (argmax), prefill + step, no_grad",
        "timing": "decode steps only (prefill separate), min over repeats", "weights": "random (untrained)",
        "state_bytes": "cache_bytes of the whole batch's decode cache after prompt_len + gen_len tokens",
        "torch_threads": torch.get_num_threads(),
        "paper_claim": "Based: 24x the generation throughput of FlashAttention-2 (1.3B models, 1024 generated "
                       "tokens, H100); Arora et al., ICML 2024, arXiv:2402.18668",
    }
    return {"rows": rows, "config": config, "device": bench.device_name(dev)}


def plot_generation(res: dict[str, Any], ax: Any = None) -> Any:
    """Tokens/s (left) and decode-state bytes (right) against the number of generated tokens.

    Args:
        res: a :func:`generation_benchmark` result or a stored record (``bench.load_results``).
        ax: None (a new figure with two Axes), or a pair of Axes ``(ax_speed, ax_state)``.

    Returns:
        The two Axes. Each has one line per kind, labelled with the kind; the title names the device.

    Raises:
        ValueError: ``res`` has no rows, or ``ax`` is not a pair of Axes.
    """
    import matplotlib.pyplot as plt

    rows = list(res.get("rows", [])) if isinstance(res, dict) else []
    if not rows:
        raise ValueError("res must be a generation_benchmark result with rows")
    if ax is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4))
    else:
        try:
            axes = tuple(ax)
        except TypeError:
            raise ValueError("ax must be None or a pair of matplotlib Axes (speed, state)") from None
        if len(axes) != 2:
            raise ValueError(f"ax must be a pair of matplotlib Axes (speed, state), got {len(axes)}")
    ax_speed, ax_state = axes
    colors = {"transformer": "tab:red", "based": "tab:purple"}
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    for kind in kinds:
        pts = sorted((r["gen_len"], r["tokens_per_s"], r["state_bytes"]) for r in rows if r["kind"] == kind)
        xs = [p[0] for p in pts]
        ax_speed.plot(xs, [p[1] for p in pts], marker="o", color=colors.get(kind), label=kind)
        ax_state.plot(xs, [p[2] / 2**20 for p in pts], marker="o", color=colors.get(kind), label=kind)
    cfg = res.get("config", {})
    where = f"{res.get('device', '?')}"
    sizes = (f"d_model={cfg.get('d_model')}, {cfg.get('n_layers')} layers, batch {cfg.get('batch_size')}, "
             f"prompt {cfg.get('prompt_len')}")
    for a in (ax_speed, ax_state):
        a.set_xscale("log", base=2)
        a.set_xlabel("generated tokens")
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=8)
        a.set_ylim(bottom=0)
    ax_speed.set_ylabel("generated tokens / s (whole batch)")
    ax_speed.set_title(f"Greedy decoding throughput\n{where}", fontsize=9)
    ax_state.set_ylabel("decode state (MiB, whole batch)")
    ax_state.set_title(f"KV cache vs fixed state\n{sizes}", fontsize=9)
    return ax_speed, ax_state
