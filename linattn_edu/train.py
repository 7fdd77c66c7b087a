"""Training and evaluating the zoo's language models on a 1-D stream of token ids.

:func:`train_lm` is a deliberately plain loop: seeded random windows, AdamW, linear warmup then a
cosine decay, gradient clipping, and honest timing (median step time, tokens per second, peak
GPU memory). :func:`evaluate_perplexity` scores a model on non-overlapping windows, as the ALiBi
paper's extrapolation experiments do, so the evaluation length can differ from the training one.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import runtime
from .checks import check_float, check_int

__all__ = ["as_token_tensor", "cosine_lr", "sample_batch", "train_lm", "evaluate_perplexity"]


def as_token_tensor(tokens: Any, name: str = "tokens") -> torch.Tensor:
    """A 1-D int64 CPU tensor from a tensor, NumPy array or list of token ids.

    Raises:
        TypeError: not array-like, or not integers.
        ValueError: not 1-D, or negative ids; the message names ``name``.
    """
    if isinstance(tokens, np.ndarray):
        if not np.issubdtype(tokens.dtype, np.integer):
            raise TypeError(f"{name} must hold integer token ids, got dtype {tokens.dtype}")
        tokens = torch.from_numpy(np.ascontiguousarray(tokens).astype(np.int64, copy=False))
    elif isinstance(tokens, (list, tuple)):
        tokens = torch.as_tensor(tokens)
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"{name} must be a 1-D tensor or array of token ids, got {type(tokens).__name__}")
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got dtype {tokens.dtype}")
    if tokens.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one long stream of ids), got shape {tuple(tokens.shape)}")
    if tokens.numel() and int(tokens.min()) < 0:
        raise ValueError(f"{name} must hold non-negative ids, got min {int(tokens.min())}")
    return tokens.to("cpu", torch.int64)


def cosine_lr(step: int, *, steps: int, lr: float, warmup: int, min_lr_ratio: float = 0.1) -> float:
    """Learning rate at ``step`` (0-based): linear warmup to ``lr``, then cosine decay to ``min_lr_ratio·lr``.

    Warmup: ``lr · (step + 1) / warmup`` for ``step < warmup``. Then
    ``lr_min + (lr - lr_min) · (1 + cos(pi · progress)) / 2`` with ``progress`` going from 0 at
    ``step = warmup`` to 1 at the last step ``steps - 1``.

    Raises:
        ValueError: a negative ``step`` or ``warmup``, ``steps < 1``, ``lr`` not finite and > 0,
            ``min_lr_ratio`` outside ``[0, 1]``; each names the argument.
    """
    step = check_int(step, "step", minimum=0)
    steps = check_int(steps, "steps", minimum=1)
    warmup = check_int(warmup, "warmup", minimum=0)
    lr = check_float(lr, "lr", minimum=0.0, strict=True)
    min_lr_ratio = check_float(min_lr_ratio, "min_lr_ratio", minimum=0.0, maximum=1.0)
    if step < warmup:
        return lr * (step + 1) / warmup
    decay_steps = max(1, steps - 1 - warmup)
    progress = min(1.0, (step - warmup) / decay_steps)
    lr_min = lr * min_lr_ratio
    return lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))


def sample_batch(
    tokens: torch.Tensor, *, seq_len: int, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of a 1-D stream: inputs ``(B, seq_len)`` and targets shifted by one.

    Window starts are uniform over ``[0, N - seq_len - 1]`` drawn with ``generator`` (CPU).
    """
    n = tokens.numel()
    starts = torch.randint(0, n - seq_len, (batch_size,), generator=generator)
    idx = starts[:, None] + torch.arange(seq_len + 1)[None, :]
    window = tokens[idx]
    return window[:, :-1], window[:, 1:]


def _resolve_device(device: Any) -> torch.device:
    """``device`` as a ``torch.device`` that works here, or ``ValueError`` naming ``device``.

    ``"cuda"`` on a machine without CUDA (or a GPU index that does not exist) fails here, with a
    message saying so, rather than later inside ``model.to``.
    """
    if device is None:
        return runtime.device()
    try:
        dev = torch.device(device)
    except (TypeError, RuntimeError) as err:
        raise ValueError(f"device must be None, a torch.device or a string like 'cpu', got {device!r}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here (use 'cpu' or None)")
    try:
        torch.empty(0, device=dev)  # e.g. cuda:7 on a 1-GPU machine, or mps without Metal
    except (RuntimeError, AssertionError) as err:
        raise ValueError(f"device={device!r} cannot be used here: {err}") from err
    return dev


def _vocab_size(model: nn.Module) -> int | None:
    """The model's vocabulary size from ``model.config.vocab_size`` or ``model.vocab_size``, if any."""
    for owner in (getattr(model, "config", None), model):
        value = getattr(owner, "vocab_size", None)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
    return None


def _check_vocab(tokens: torch.Tensor, vocab_size: int, name: str) -> None:
    """``ValueError`` naming ``name`` unless every id (inputs *and* targets) is below ``vocab_size``."""
    if tokens.numel() and int(tokens.max()) >= vocab_size:
        raise ValueError(
            f"{name} holds id {int(tokens.max())}, outside the model's vocabulary [0, vocab_size={vocab_size}) "
            "(ids that appear only as next-token targets must fit too)"
        )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices (and embeddings); leave biases and norm weights alone."""
    seen: set[int] = set()
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_lm(
    model: nn.Module,
    train_tokens: Any,
    *,
    seq_len: int,
    batch_size: int,
    steps: int,
    lr: float = 3e-3,
    weight_decay: float = 0.1,
    warmup: int | None = None,
    grad_clip: float | None = 1.0,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    eval_tokens: Any = None,
    eval_every: int | None = None,
    eval_max_windows: int | None = 32,
    min_lr_ratio: float = 0.1,
    amp: bool | None = None,
) -> dict[str, Any]:
    """Train ``model`` (in place) to predict the next token of random windows of ``train_tokens``.

    Args:
        model: maps ``(B, T)`` int64 tokens to ``(B, T, V)`` logits (any zoo model).
        train_tokens: 1-D int64 tensor / array of token ids (e.g. ``Corpus.train``).
        seq_len: window length ``T``; each step sees ``batch_size · seq_len`` predicted tokens.
        batch_size: windows per step.
        steps: optimizer steps.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW decay on matrices and embeddings (not on biases and norms).
        warmup: linear warmup steps; default ``min(100, steps // 10)``.
        grad_clip: clip the global gradient norm to this (None: no clipping).
        seed: seeds the window sampler and ``torch.manual_seed`` (dropout): two runs with the
            same seed and the same initial model give the same losses (on the CPU exactly).
        device: where to train; default :func:`linattn_edu.runtime.device`. The model is moved there.
        progress: show a tqdm progress bar with the current loss.
        eval_tokens: optional held-out stream; with ``eval_every``, the perplexity at context
            ``seq_len`` (:func:`evaluate_perplexity`, at most ``eval_max_windows`` windows) is
            recorded every ``eval_every`` steps and after the last step.
        min_lr_ratio: the cosine decays to ``min_lr_ratio · lr``.
        amp: compute the forward pass under bfloat16 autocast (weights and optimizer stay
            float32). None: on for a CUDA GPU with native bfloat16 (sm_80+, :func:`linattn_edu.runtime.amp_dtype`),
            off elsewhere (a T4 only emulates bf16, slowly).

    Returns:
        A history dict: ``loss`` and ``lr`` (one float per step), ``step_times_s`` (per step:
        forward, backward, clipping and optimizer update, not batch sampling or evaluation),
        ``step_time_s`` (median), ``tokens_per_s`` (``batch_size · seq_len / median``),
        ``total_time_s``, ``peak_memory_bytes`` (CUDA only, else None), ``eval`` (list of
        ``{"step", "perplexity"}``), ``device`` and ``config`` (the arguments).

    Raises:
        ValueError / TypeError: bad arguments, naming them (e.g. a stream shorter than ``seq_len + 1``,
            an id outside the model's vocabulary even if it only appears as a target, a
            non-finite ``lr``/``weight_decay``/``grad_clip``, or ``device="cuda"`` without CUDA).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    seq_len = check_int(seq_len, "seq_len", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    steps = check_int(steps, "steps", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    warmup = min(100, steps // 10) if warmup is None else check_int(warmup, "warmup", minimum=0)
    lr = check_float(lr, "lr", minimum=0.0, strict=True)
    weight_decay = check_float(weight_decay, "weight_decay", minimum=0.0)
    if grad_clip is not None:
        grad_clip = check_float(grad_clip, "grad_clip", minimum=0.0, strict=True)
    min_lr_ratio = check_float(min_lr_ratio, "min_lr_ratio", minimum=0.0, maximum=1.0)
    tokens = as_token_tensor(train_tokens, "train_tokens")
    if tokens.numel() < seq_len + 1:
        raise ValueError(
            f"train_tokens has {tokens.numel()} tokens: it needs at least seq_len + 1 = {seq_len + 1}"
        )
    if eval_every is not None:
        eval_every = check_int(eval_every, "eval_every", minimum=1)
        if eval_tokens is None:
            raise ValueError("eval_every needs eval_tokens")
    if eval_tokens is not None:
        eval_tokens = as_token_tensor(eval_tokens, "eval_tokens")
        if eval_tokens.numel() < seq_len + 1:
            raise ValueError(f"eval_tokens has {eval_tokens.numel()} tokens: it needs at least seq_len + 1 = {seq_len + 1}")
    vocab_size = _vocab_size(model)
    if vocab_size is not None:
        _check_vocab(tokens, vocab_size, "train_tokens")
        if eval_tokens is not None:
            _check_vocab(eval_tokens, vocab_size, "eval_tokens")
    dev = _resolve_device(device)
    if amp is None:
        amp = runtime.amp_dtype(dev) is not None  # bf16 only where it is native (not a T4's emulation)
    elif not isinstance(amp, bool):
        raise ValueError(f"amp must be None, True or False, got {amp!r}")

    config = dict(amp=amp, seq_len=seq_len, batch_size=batch_size, steps=steps, lr=lr, weight_decay=weight_decay,
                  warmup=warmup, grad_clip=grad_clip, seed=seed, min_lr_ratio=min_lr_ratio)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model.to(dev)
    model.train()
    optimizer = torch.optim.AdamW(_param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.95))
    history: dict[str, Any] = {"loss": [], "lr": [], "step_times_s": [], "eval": [], "device": str(dev), "config": config}
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    from tqdm.auto import tqdm

    bar = tqdm(range(steps), disable=not progress, desc="train", leave=True)
    start_all = time.perf_counter()
    for step in bar:
        step_lr = cosine_lr(step, steps=steps, lr=lr, warmup=warmup, min_lr_ratio=min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = step_lr
        x, y = sample_batch(tokens, seq_len=seq_len, batch_size=batch_size, generator=generator)
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)

        _sync(dev)
        t0 = time.perf_counter()
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        if vocab_size is None:  # a model without a vocab_size attribute: its logits say it
            vocab_size = int(logits.shape[-1])
            _check_vocab(tokens, vocab_size, "train_tokens")
            if eval_tokens is not None:
                _check_vocab(eval_tokens, vocab_size, "eval_tokens")
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        loss_value = loss.item()  # synchronizes
        _sync(dev)
        history["step_times_s"].append(time.perf_counter() - t0)
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"loss became {loss_value} at step {step}; lower lr (now {lr})")
        history["loss"].append(loss_value)
        history["lr"].append(step_lr)
        if progress:
            bar.set_postfix(loss=f"{loss_value:.3f}", refresh=False)
        last = step == steps - 1
        if eval_tokens is not None and eval_every is not None and ((step + 1) % eval_every == 0 or last):
            ppl = evaluate_perplexity(model, eval_tokens, context_len=seq_len, batch_size=batch_size,
                                      max_windows=eval_max_windows, device=dev)
            model.train()
            history["eval"].append({"step": step + 1, "perplexity": ppl})
    bar.close()
    model.eval()

    history["total_time_s"] = time.perf_counter() - start_all
    history["step_time_s"] = statistics.median(history["step_times_s"])
    history["tokens_per_s"] = batch_size * seq_len / history["step_time_s"]
    history["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(dev)) if dev.type == "cuda" else None
    return history


@torch.no_grad()
def evaluate_perplexity(
    model: nn.Module,
    tokens: Any,
    *,
    context_len: int,
    batch_size: int = 8,
    max_windows: int | None = None,
    device: torch.device | str | None = None,
) -> float:
    """Perplexity ``exp(mean NLL)`` on non-overlapping windows of ``context_len`` tokens.

    The stream is cut into ``n = (N - 1) // context_len`` windows; window ``w`` feeds tokens
    ``[w·L, (w+1)·L)`` and predicts ``[w·L + 1, (w+1)·L + 1)``, so every token after the first is
    predicted exactly once (early tokens of each window see little context: this is the ALiBi
    paper's *non-overlapping* evaluation; a sliding evaluation would score lower). The mean is
    over all predicted tokens. ``max_windows`` keeps that many windows evenly spread over the
    stream (deterministic). The model is put in eval mode and left in its original mode.

    Args:
        model: maps ``(B, T)`` int64 to ``(B, T, V)`` logits.
        tokens: 1-D stream of ids (e.g. ``Corpus.valid``).
        context_len: window length ``L`` (may differ from the training length: extrapolation).
        batch_size: windows per forward pass.
        max_windows: cap on the number of windows (None: all).
        device: default :func:`linattn_edu.runtime.device`; the model is moved there.

    Raises:
        ValueError / TypeError: bad arguments, naming them.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    context_len = check_int(context_len, "context_len", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if max_windows is not None:
        max_windows = check_int(max_windows, "max_windows", minimum=1)
    stream = as_token_tensor(tokens, "tokens")
    n_windows = (stream.numel() - 1) // context_len
    if n_windows < 1:
        raise ValueError(
            f"tokens has {stream.numel()} tokens: it needs at least context_len + 1 = {context_len + 1}"
        )
    starts = np.arange(n_windows) * context_len
    if max_windows is not None and max_windows < n_windows:
        starts = starts[np.unique(np.linspace(0, n_windows - 1, max_windows).round().astype(np.int64))]
    vocab_size = _vocab_size(model)
    if vocab_size is not None:
        _check_vocab(stream, vocab_size, "tokens")
    dev = _resolve_device(device)
    was_training = model.training
    model.to(dev)
    model.eval()
    total_nll, total_count = 0.0, 0
    offsets = torch.arange(context_len + 1)
    try:
        for i in range(0, len(starts), batch_size):
            idx = torch.as_tensor(starts[i : i + batch_size])[:, None] + offsets[None, :]
            window = stream[idx].to(dev)
            logits = model(window[:, :-1])
            if vocab_size is None:
                vocab_size = int(logits.shape[-1])
                _check_vocab(stream, vocab_size, "tokens")
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), window[:, 1:].reshape(-1),
                                  reduction="sum")
            total_nll += float(nll)
            total_count += window[:, 1:].numel()
    finally:
        model.train(was_training)
    return math.exp(total_nll / total_count)
