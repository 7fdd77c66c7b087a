"""MQAR data: layout, labels bound to the context, power-law query slots, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from linattn_edu.tasks import IGNORE_INDEX, make_mqar, mqar_accuracy, mqar_query_slots


def test_shapes_dtypes_and_halves():
    inputs, targets = make_mqar(50, seq_len=64, n_pairs=8, vocab_size=128, seed=0)
    assert inputs.shape == targets.shape == (50, 64)
    assert inputs.dtype == targets.dtype == np.int64
    keys, values = inputs[:, 0:16:2], inputs[:, 1:16:2]
    assert keys.min() >= 1 and keys.max() < 64  # [1, V/2)
    assert values.min() >= 64 and values.max() < 128  # [V/2, V)
    for row in range(50):  # distinct within an example
        assert len(set(keys[row])) == 8 and len(set(values[row])) == 8
    assert (targets[:, :16] == IGNORE_INDEX).all()  # the context itself is never scored


def test_every_query_is_labelled_with_the_value_bound_in_its_context():
    n_pairs, seq_len = 6, 48
    inputs, targets = make_mqar(200, seq_len=seq_len, n_pairs=n_pairs, vocab_size=64, seed=3)
    context = 2 * n_pairs
    for x, y in zip(inputs, targets):
        bound = dict(zip(x[0:context:2].tolist(), x[1:context:2].tolist()))
        labelled = np.flatnonzero(y != IGNORE_INDEX)
        assert len(labelled) == n_pairs
        assert labelled.min() >= context and ((labelled - context) % 2 == 0).all()  # even slots
        assert sorted(x[labelled].tolist()) == sorted(bound)  # every key is asked exactly once
        for t in labelled:
            assert y[t] == bound[int(x[t])]
        filler = np.setdiff1d(np.arange(context, seq_len), labelled)
        assert (x[filler] == 0).all() and (y[filler] == IGNORE_INDEX).all()


def test_random_non_queries_fill_with_value_tokens_only():
    inputs, targets = make_mqar(40, seq_len=32, n_pairs=4, vocab_size=40, seed=1, random_non_queries=True)
    plain, plain_targets = make_mqar(40, seq_len=32, n_pairs=4, vocab_size=40, seed=1)
    query = targets != IGNORE_INDEX
    filler = ~query
    filler[:, :8] = False
    assert (inputs[filler] >= 20).all() and (inputs[filler] < 40).all()  # never a key (or 0)
    assert len(np.unique(inputs[filler])) > 5
    assert np.array_equal(targets, plain_targets) and np.array_equal(inputs[query], plain[query])  # same pairs
    for x, y in zip(inputs, targets):  # labels still match the context
        bound = dict(zip(x[0:8:2].tolist(), x[1:8:2].tolist()))
        for t in np.flatnonzero(y != IGNORE_INDEX):
            assert y[t] == bound[int(x[t])]


def test_deterministic_for_a_seed():
    a = make_mqar(20, seq_len=32, n_pairs=4, vocab_size=64, seed=7)
    b = make_mqar(20, seq_len=32, n_pairs=4, vocab_size=64, seed=7)
    c = make_mqar(20, seq_len=32, n_pairs=4, vocab_size=64, seed=8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_query_slots_follow_the_power_law():
    """One query per example: its slot g has P(g) ∝ (g+1)^(α-1) exactly; more queries skew short too."""
    n_slots, alpha = 15, 0.01
    p = np.arange(1, n_slots + 1) ** (alpha - 1.0)
    p /= p.sum()
    inputs, targets = make_mqar(20000, seq_len=32, n_pairs=1, vocab_size=40, seed=0, alpha=alpha)
    slots = (np.argmax(targets != IGNORE_INDEX, axis=1) - 2) // 2
    freq = np.bincount(slots, minlength=n_slots) / len(slots)
    np.testing.assert_allclose(freq, p, atol=0.012)
    assert freq[0] > 4 * freq[-1]  # short gaps dominate

    # Many queries: the first-drawn slot still follows p; all slots together are skewed short.
    rng = np.random.default_rng(1)
    draws = mqar_query_slots(20000, n_slots=n_slots, n_queries=4, alpha=alpha, rng=rng)
    assert draws.shape == (20000, 4) and (np.sort(draws, 1)[:, 1:] != np.sort(draws, 1)[:, :-1]).all()
    np.testing.assert_allclose(np.bincount(draws[:, 0], minlength=n_slots) / 20000, p, atol=0.012)
    assert draws.mean() < (n_slots - 1) / 2 - 1  # below the uniform mean
    uniform = mqar_query_slots(20000, n_slots=n_slots, n_queries=1, alpha=1.0, rng=rng)
    np.testing.assert_allclose(np.bincount(uniform[:, 0], minlength=n_slots) / 20000, 1 / n_slots, atol=0.012)


def test_works_with_cross_entropy_and_accuracy():
    inputs, targets = make_mqar(4, seq_len=16, n_pairs=2, vocab_size=20, seed=2)
    tgt = torch.from_numpy(targets)
    perfect = F.one_hot(tgt.clamp(min=0), 20).float() * 50.0  # logits that put the value first
    loss = F.cross_entropy(perfect.reshape(-1, 20), tgt.reshape(-1), ignore_index=IGNORE_INDEX)
    assert float(loss) < 1e-6
    assert mqar_accuracy(perfect, tgt) == 1.0
    assert mqar_accuracy(perfect.numpy(), targets) == 1.0
    preds = np.where(targets == IGNORE_INDEX, 0, targets)
    preds[0, np.flatnonzero(targets[0] != IGNORE_INDEX)[0]] = 1  # one of 8 queries wrong
    assert mqar_accuracy(preds, targets) == pytest.approx(7 / 8)
    assert mqar_accuracy(torch.from_numpy(preds), tgt) == pytest.approx(7 / 8)
    with pytest.raises(ValueError, match="logits_or_preds"):
        mqar_accuracy(preds[:, :3], targets)
    with pytest.raises(ValueError, match="-100"):
        mqar_accuracy(preds, np.full_like(targets, IGNORE_INDEX))
    with pytest.raises(TypeError, match="logits_or_preds"):
        mqar_accuracy(preds.tolist(), targets)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"seq_len": 33}, "seq_len must be even"),
        ({"vocab_size": 32}, "vocab_size must be > seq_len=32"),
        ({"n_pairs": 9}, "n_pairs must satisfy 4 \\* n_pairs <= seq_len=32"),
        ({"n_pairs": 0}, "n_pairs"),
        ({"n_examples": 0}, "n_examples"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"alpha": 0.0}, "alpha"),
        ({"random_non_queries": "yes"}, "random_non_queries"),
    ],
)
def test_invalid_arguments_raise_naming_them(kwargs, match):
    args = dict(n_examples=2, seq_len=32, n_pairs=4, vocab_size=64, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_mqar(args.pop("n_examples"), **args)


def test_slots_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n_queries=5 must be <= n_slots=4"):
        mqar_query_slots(3, n_slots=4, n_queries=5, rng=rng)
