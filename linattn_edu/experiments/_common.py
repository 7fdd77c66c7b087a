"""Helpers the experiment modules share: device threads, the evaluation text, one train-and-score
step, length checks, decode timing and the perplexity plot. Public names, so that no module imports
another's private helpers."""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from .. import bench, runtime
from ._args import check_int as _int, check_positive as _positive, resolve_device as _device
from ..data import load_corpus
from ..models import build_model, count_parameters
from ..train import evaluate_perplexity, train_lm


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def check_lens(values: Any, name: str) -> list[int]:
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    try:
        lens = [_int(v, name) for v in values]
    except TypeError:
        raise ValueError(f"{name} must be a sequence of positive ints, got {values!r}") from None
    if not lens:
        raise ValueError(f"{name} must hold at least one length")
    if len(set(lens)) != len(lens):
        raise ValueError(f"{name} must not repeat a length, got {lens}")
    return sorted(lens)


@torch.no_grad()
def time_decode(model: torch.nn.Module, logits: torch.Tensor, cache: Any, steps: int, repeat: int,
                 dev: torch.device) -> float:
    """Seconds of ``steps`` greedy decode steps from ``cache``: one untimed run, then the min of ``repeat``.

    Caches are not modified in place, so every run starts from the same one.
    """
    best = math.inf
    for run in range(repeat + 1):
        token, c = logits.argmax(-1), cache
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(steps):
            out, c = model.step(token, c)
            token = out.argmax(-1)
        sync(dev)
        if run:  # run 0 warms up (allocator, new shapes, kernel compilation on a GPU)
            best = min(best, time.perf_counter() - t0)
    return best


def check_eval_lens(eval_lens: Any) -> tuple[int, ...]:
    if isinstance(eval_lens, (int, np.integer)) and not isinstance(eval_lens, bool):
        eval_lens = (eval_lens,)
    try:
        lens = tuple(eval_lens)
    except TypeError:
        raise ValueError(f"eval_lens must be a sequence of positive ints, got {eval_lens!r}") from None
    if not lens:
        raise ValueError("eval_lens must hold at least one evaluation length")
    for length in lens:
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
            raise ValueError(f"eval_lens must hold positive ints, got {length!r} in {list(lens)}")
    if len(set(lens)) != len(lens):
        raise ValueError(f"eval_lens must not repeat a length, got {list(lens)}")
    return tuple(sorted(int(x) for x in lens))


@contextlib.contextmanager
def limited_threads(dev: torch.device, threads: int | None) -> Iterator[None]:
    """Run the body with ``threads`` PyTorch threads on a CPU (None: unchanged); restore afterwards."""
    saved = torch.get_num_threads()
    if dev.type == "cpu" and threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def eval_text(corpus: Any, lens: tuple[int, ...], eval_max_windows: int | None, max_bytes: int | None,
               train_len: int) -> tuple[torch.Tensor, int]:
    """The evaluation text shared by every length: ``(first N + 1 valid tokens, N)``.

    ``N = n_windows · max(lens)``, ``n_windows`` = ``eval_max_windows`` capped at the whole windows
    of ``max(lens)`` the valid split holds. Raises the ``ValueError`` naming ``max_bytes`` /
    ``eval_lens`` when the valid split is too short, and one naming ``train_len`` when the train
    split is.
    """
    l_max = lens[-1]
    available = (corpus.valid.numel() - 1) // l_max
    if available < 1:
        raise ValueError(
            f"the valid split has {corpus.valid.numel()} tokens, fewer than max(eval_lens) + 1 = {l_max + 1}: "
            f"raise max_bytes (now {max_bytes}) or shorten eval_lens"
        )
    if corpus.train.numel() < train_len + 1:
        raise ValueError(f"the train split has {corpus.train.numel()} tokens: train_len={train_len} is too long")
    n_windows = available if eval_max_windows is None else min(eval_max_windows, available)
    n_eval = n_windows * l_max
    return corpus.valid[: n_eval + 1], n_eval


def train_and_evaluate(model: torch.nn.Module, train_tokens: torch.Tensor, eval_tokens: torch.Tensor,
                        lens: tuple[int, ...], *, train_len: int, batch_size: int, steps: int, lr: float, seed: int,
                        dev: torch.device, progress: bool) -> tuple[list[float], dict[str, Any]]:
    """Train ``model`` at ``train_len`` (:func:`train_lm`), then score it at every length of ``lens``.

    Evaluation batches hold about as many tokens as a training batch
    (``max(1, batch_size · train_len // L)`` windows of length ``L``).

    Returns:
        ``(perplexities in the order of lens, {"n_params", "final_loss", "step_time_s",
        "tokens_per_s", "train_seconds"})``; ``final_loss`` is the mean loss of the last 10% of
        steps.
    """
    t0 = time.perf_counter()
    hist = train_lm(model, train_tokens, seq_len=train_len, batch_size=batch_size, steps=steps, lr=lr,
                    seed=seed, device=dev, progress=progress)
    train_seconds = time.perf_counter() - t0
    tail = hist["loss"][-max(1, steps // 10):]
    ppls = []
    for length in lens:
        eval_batch = max(1, (batch_size * train_len) // length)
        ppls.append(evaluate_perplexity(model, eval_tokens, context_len=length, batch_size=eval_batch, device=dev))
    info = {
        "n_params": count_parameters(model),
        "final_loss": float(np.mean(tail)),
        "step_time_s": hist["step_time_s"],
        "tokens_per_s": hist["tokens_per_s"],
        "train_seconds": train_seconds,
    }
    return ppls, info


def series_key(rows: Iterable[dict[str, Any]]) -> str:
    """The key naming each curve: ``"pos"`` (position schemes) unless the rows name a ``"model"``."""
    for r in rows:
        if "pos" in r:
            return "pos"
        if "model" in r:
            return "model"
    return "pos"


def perplexity_rows(rows: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """``{pos or model: [(eval_len, perplexity), ...]}`` from result rows or stored rows (``kind`` optional)."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        if r.get("kind", "perplexity") != "perplexity":
            continue
        name = r["pos"] if "pos" in r else r["model"]
        curves.setdefault(name, []).append((int(r["eval_len"]), float(r["perplexity"])))
    return {name: sorted(points) for name, points in curves.items()}


def plot_perplexity_curves(result: dict[str, Any] | None, *, ax: Any, stored: dict[str, Any] | None,
                            colors: dict[str, str], title: str) -> Any:
    """The body of :func:`plot_extrapolation`: one line per ``pos`` (or ``model``) of the rows."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.2))
    drawn = False
    train_lens = []
    for source, style, marker, suffix in ((result, "-", "o", ""), (stored, "--", "s", None)):
        if source is None:
            continue
        curves = perplexity_rows(source.get("rows", []))
        if suffix is None:
            suffix = f" (stored: {source.get('device', '?')}, {str(source.get('date', ''))[:10]})"
        for pos, points in curves.items():
            xs, ys = zip(*points)
            ax.plot(xs, ys, linestyle=style, marker=marker, color=colors.get(pos), label=f"{pos}{suffix}",
                    alpha=1.0 if style == "-" else 0.7, markersize=4)
            drawn = True
        t = source.get("config", {}).get("train_len")
        if t is None:
            t = next((r["train_len"] for r in source.get("rows", []) if "train_len" in r), None)
        if t is not None and t not in train_lens:
            train_lens.append(t)
            ax.axvline(t, color="black", linestyle=":" if style == "-" else "-.", linewidth=1,
                       label=f"train length {t}" + ("" if style == "-" else " (stored)"))
    if not drawn:
        raise ValueError("result and stored hold no perplexity rows to plot")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("evaluation length (tokens)")
    ax.set_ylabel("perplexity (bytes, valid split)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if stored is not None and result is not None else 1)
    return ax


def loss_curve(losses: Sequence[float], points: int = 100, offset: int = 0) -> tuple[list[int], list[float]]:
    """Loss curve downsampled to at most ``points`` bins: ``(last step of each bin, mean loss of the bin)``.

    Steps are 1-based and shifted by ``offset`` (steps trained before).
    """
    n = len(losses)
    if n == 0:
        return [], []
    edges = np.unique(np.linspace(0, n, min(points, n) + 1).round().astype(np.int64))
    steps = [int(offset + hi) for hi in edges[1:]]
    means = [float(np.mean(losses[lo:hi])) for lo, hi in zip(edges[:-1], edges[1:])]
    return steps, means


def train_timed(model: torch.nn.Module, tokens: torch.Tensor, *, seq_len: int, batch_size: int, steps: int,
                lr: float, seed: int, dev: torch.device, progress: bool) -> dict[str, Any]:
    """:func:`train_lm` plus the wall time, final loss (mean of the last 10% of steps) and a curve."""
    t0 = time.perf_counter()
    hist = train_lm(model, tokens, seq_len=seq_len, batch_size=batch_size, steps=steps, lr=lr, seed=seed,
                    device=dev, progress=progress)
    seconds = time.perf_counter() - t0
    return {"train_seconds": seconds, "step_time_s": hist["step_time_s"],
            "final_loss": float(np.mean(hist["loss"][-max(1, steps // 10):])), "loss": hist["loss"]}
