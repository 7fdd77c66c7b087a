"""Multi-query associative recall (MQAR), the synthetic recall task of Zoology and Based.

A sequence first lists ``n_pairs`` key-value pairs, then asks for some of them again::

    position:  0   1   2   3   4   5 | 6  7  8  9  10 11 12 13 ...
    inputs:    k1  v1  k2  v2  k3  v3| 0  0  k2 0  0  0  k1 0  ...      (n_pairs = 3)
    targets:   -   -   -   -   -   - | -  -  v2 -  -  -  v1 -  ...      (- is IGNORE_INDEX = -100)

Keys come from ``[1, V/2)`` and values from ``[V/2, V)``, drawn without replacement within an
example, so a key never repeats inside one context and its value is unambiguous. After the
context of ``2·n_pairs`` tokens, every key re-appears exactly once as a *query*.

**Alignment (the Zoology convention).** ``inputs`` and ``targets`` have the same shape and the
loss at position ``t`` is ``cross_entropy(logits[t], targets[t])``, exactly as for language
modelling with already-shifted targets: ``targets[t]`` is the label for the prediction made *at*
position ``t``, i.e. for the token that follows. Where ``inputs[t]`` is a query key,
``targets[t]`` is the value bound to it in the context; everywhere else ``targets[t] = -100``
(ignored by ``torch.nn.functional.cross_entropy``). So the model is scored only on recall.

**Where queries go.** The query region (length ``L - 2·n_pairs``) has ``S = (L - 2·n_pairs)/2``
slots at its even offsets ``0, 2, 4, …``; the slot of each query is drawn without replacement with
``P(slot g) ∝ (g + 1)^(α - 1)``, ``g = 0..S-1``, a power law that, with the default ``α = 0.01``,
puts most queries close to the context (short gaps) and a few far away. A query's *gap* (in
slots) is ``g + 1``; its distance in tokens from the end of the context is ``2g + 1``. Which key
goes to which slot is random (the order of the queries is a random permutation of the keys).

**Filler.** Positions holding neither a pair nor a query (every odd offset of the query region,
and unused slots) hold token 0, which is never a key or a value. With
``random_non_queries=True`` they hold random *value-half* tokens ``[V/2, V)`` instead (Zoology
draws filler from the whole vocabulary, which can place an unlabeled copy of a key; drawing from
the value half never does).

**Constraints** (as in Zoology): ``L`` even, ``V > L``, ``4·n_pairs <= L``. Zoology's sweep uses
``V = 8192`` and ``(L, n_pairs) = (64, 4), (128, 8), (256, 16..64)``.

The generator is NumPy's PCG64 (``np.random.default_rng(seed)``): a seed gives the same arrays on
every machine. This is our own implementation of the construction, not a byte-for-byte copy of
Zoology's sampler (which draws from NumPy's legacy global generator).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import check_bool, check_float, check_int

__all__ = ["IGNORE_INDEX", "make_mqar", "mqar_accuracy", "mqar_query_slots"]

#: The target of every position that is not a query (``ignore_index`` of ``cross_entropy``).
IGNORE_INDEX = -100

# Rows of the (rows, slots) Gumbel matrix generated at once: bounds memory for huge datasets.
_MAX_BLOCK_ELEMENTS = 1 << 22


def _check_alpha(alpha: Any) -> float:
    """``alpha`` as a finite float > 0 (``inf`` would make every weight ``(g + 1)^inf``)."""
    return check_float(alpha, "alpha", minimum=0.0, strict=True)


def _distinct_rows(rng: np.random.Generator, n_rows: int, size: int, low: int, high: int) -> np.ndarray:
    """``(n_rows, size)`` ints from ``[low, high)``, distinct within each row, uniformly (ordered).

    Draws with replacement and redraws the rows that contain a repeat (rejection sampling: the
    accepted rows are uniform over ordered tuples of distinct values); rows still bad after a few
    rounds, or all rows when repeats are likely, use ``rng.choice(..., replace=False)``.
    """
    n_values = high - low
    out = np.empty((n_rows, size), dtype=np.int64)
    likely_repeats = size * (size - 1) / (2 * n_values) > 1.0
    todo = np.arange(n_rows)
    if not likely_repeats:
        for _ in range(4):
            if todo.size == 0:
                break
            draw = rng.integers(low, high, size=(todo.size, size))
            srt = np.sort(draw, axis=1)
            bad = (srt[:, 1:] == srt[:, :-1]).any(axis=1)
            out[todo[~bad]] = draw[~bad]
            todo = todo[bad]
    for row in todo:
        out[row] = low + rng.choice(n_values, size=size, replace=False)
    return out


def mqar_query_slots(
    n_examples: int, *, n_slots: int, n_queries: int, alpha: float = 0.01, rng: np.random.Generator
) -> np.ndarray:
    """Query slots ``(n_examples, n_queries)`` in ``[0, n_slots)``, distinct per row, power-law skewed.

    Equivalent to drawing ``n_queries`` times without replacement with ``P(g) ∝ (g + 1)^(α - 1)``
    (what ``np.random.choice(n_slots, n_queries, replace=False, p=p)`` does), computed for all rows
    at once with the Gumbel-top-k trick: the ``n_queries`` largest of ``log p_g + Gumbel noise``.

    Raises:
        ValueError: ``n_queries > n_slots``, non-positive sizes, ``alpha`` not finite and > 0.
        TypeError: ``rng`` is not a ``numpy.random.Generator``.
    """
    n_examples = check_int(n_examples, "n_examples", minimum=0)
    n_slots = check_int(n_slots, "n_slots", minimum=1)
    n_queries = check_int(n_queries, "n_queries", minimum=1)
    if n_queries > n_slots:
        raise ValueError(f"n_queries={n_queries} must be <= n_slots={n_slots}")
    alpha = _check_alpha(alpha)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    log_p = (alpha - 1.0) * np.log(np.arange(1, n_slots + 1, dtype=np.float64))  # unnormalized is fine
    out = np.empty((n_examples, n_queries), dtype=np.int64)
    block = max(1, _MAX_BLOCK_ELEMENTS // n_slots)
    for start in range(0, n_examples, block):
        rows = min(block, n_examples - start)
        scores = log_p + rng.gumbel(size=(rows, n_slots))
        top = np.argpartition(-scores, n_queries - 1, axis=1)[:, :n_queries]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)  # draw order
        out[start:start + rows] = np.take_along_axis(top, order, axis=1)
    return out


def make_mqar(
    n_examples: int,
    *,
    seq_len: int,
    n_pairs: int,
    vocab_size: int,
    seed: int,
    alpha: float = 0.01,
    random_non_queries: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate an MQAR dataset (see the module docstring for the layout).

    Args:
        n_examples: number of sequences ``N`` (>= 1).
        seq_len: ``L``, even, with ``4·n_pairs <= L < vocab_size``.
        n_pairs: key-value pairs per example (>= 1); every key is queried once.
        vocab_size: ``V``; keys from ``[1, V/2)``, values from ``[V/2, V)`` (``V/2`` is ``V // 2``).
        seed: seeds ``np.random.default_rng``; the same seed gives the same arrays.
        alpha: power-law exponent of the query slots, ``P(g) ∝ (g + 1)^(α - 1)`` (finite, > 0; 1 is uniform).
        random_non_queries: fill non-query positions with random value-half tokens instead of 0.

    Returns:
        ``(inputs, targets)``, both int64 NumPy arrays ``(N, L)``. ``targets[n, t]`` is the label
        for the prediction at position ``t``: the value bound to ``inputs[n, t]`` where that is a
        query, ``-100`` elsewhere. Train with ``cross_entropy(logits.reshape(-1, V),
        targets.reshape(-1), ignore_index=-100)``.

    Raises:
        ValueError: ``seq_len`` odd, ``vocab_size <= seq_len``, ``4·n_pairs > seq_len``,
            ``n_pairs < 1``, a non-int size or seed, ``alpha`` not finite and > 0, a non-bool
            ``random_non_queries``; each names the argument.
    """
    n_examples = check_int(n_examples, "n_examples", minimum=1)
    seq_len = check_int(seq_len, "seq_len", minimum=2)
    n_pairs = check_int(n_pairs, "n_pairs", minimum=1)
    vocab_size = check_int(vocab_size, "vocab_size", minimum=2)
    seed = check_int(seed, "seed", minimum=0)
    if seq_len % 2:
        raise ValueError(f"seq_len must be even, got {seq_len}")
    if vocab_size <= seq_len:
        raise ValueError(f"vocab_size must be > seq_len={seq_len}, got {vocab_size}")
    if 4 * n_pairs > seq_len:
        raise ValueError(f"n_pairs must satisfy 4 * n_pairs <= seq_len={seq_len}, got n_pairs={n_pairs}")
    alpha = _check_alpha(alpha)
    random_non_queries = check_bool(random_non_queries, "random_non_queries")

    rng = np.random.default_rng(seed)
    half = vocab_size // 2
    context = 2 * n_pairs
    keys = _distinct_rows(rng, n_examples, n_pairs, 1, half)  # (N, P) in [1, V/2)
    values = _distinct_rows(rng, n_examples, n_pairs, half, vocab_size)  # (N, P) in [V/2, V)

    inputs = np.zeros((n_examples, seq_len), dtype=np.int64)
    targets = np.full((n_examples, seq_len), IGNORE_INDEX, dtype=np.int64)
    inputs[:, 0:context:2] = keys
    inputs[:, 1:context:2] = values

    n_slots = (seq_len - context) // 2  # >= n_pairs because 4 * n_pairs <= seq_len
    slots = mqar_query_slots(n_examples, n_slots=n_slots, n_queries=n_pairs, alpha=alpha, rng=rng)
    positions = context + 2 * slots  # (N, P): query i asks for key i (slots are in random order)
    if random_non_queries:
        filler = rng.integers(half, vocab_size, size=(n_examples, seq_len - context))
        inputs[:, context:] = filler
    np.put_along_axis(inputs, positions, keys, axis=1)
    np.put_along_axis(targets, positions, values, axis=1)
    return inputs, targets


def mqar_accuracy(logits_or_preds: Any, targets: Any) -> float:
    """Fraction of query positions (``targets != -100``) predicted correctly.

    Args:
        logits_or_preds: logits ``(..., L, V)`` (argmax over the last dim is taken) or predicted
            ids ``(..., L)`` with the same shape as ``targets``; a torch tensor or NumPy array.
        targets: ``(..., L)`` int labels from :func:`make_mqar`.

    Returns:
        Accuracy in ``[0, 1]`` as a Python float.

    Raises:
        ValueError: shapes that do not fit together, or no position with a target.
        TypeError: inputs that are not arrays or tensors.
    """
    preds = _to_numpy(logits_or_preds, "logits_or_preds")
    tgt = _to_numpy(targets, "targets")
    if not np.issubdtype(tgt.dtype, np.integer):
        raise TypeError(f"targets must hold integer labels, got dtype {tgt.dtype}")
    if preds.ndim == tgt.ndim + 1 and preds.shape[:-1] == tgt.shape:
        preds = preds.argmax(axis=-1)
    elif preds.shape != tgt.shape:
        raise ValueError(
            f"logits_or_preds must have shape {tgt.shape} (ids) or {tgt.shape + ('V',)} (logits), "
            f"got {preds.shape}"
        )
    mask = tgt != IGNORE_INDEX
    if not mask.any():
        raise ValueError("targets has no position with a label (all are -100)")
    return float((preds[mask] == tgt[mask]).mean())


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None  # type: ignore[assignment]
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().cpu().float().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    raise TypeError(f"{name} must be a NumPy array or a torch tensor, got {type(x).__name__}")
