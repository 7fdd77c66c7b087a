"""train_lm and evaluate_perplexity: learning, determinism, schedule, timing, perplexity, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from linattn_edu.models import build_model
from linattn_edu.train import cosine_lr, evaluate_perplexity, sample_batch, train_lm

PATTERN = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6]).repeat(100)  # period 8, vocab 10


def small_model(seed=0, **options):
    torch.manual_seed(seed)
    options.setdefault("attn_backend", "torch")
    return build_model("transformer", vocab_size=10, d_model=32, n_layers=1, n_heads=2, **options)


class ConstantLogits(nn.Module):
    """Ignores its input: the same logits everywhere (zeros = the uniform distribution)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits.clone())
        self.seen: list[tuple[int, ...]] = []

    def forward(self, tokens):
        self.seen.append(tuple(tokens.shape))
        return self.logits.expand(*tokens.shape, -1)


def test_cosine_schedule():
    lrs = [cosine_lr(s, steps=100, lr=1.0, warmup=10, min_lr_ratio=0.1) for s in range(100)]
    np.testing.assert_allclose(lrs[:10], np.arange(1, 11) / 10)  # linear warmup up to the peak
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1)
    assert lrs[55] == pytest.approx(0.55, abs=0.02)  # halfway through the decay: (1 + 0.1) / 2
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert cosine_lr(0, steps=5, lr=2.0, warmup=0) == pytest.approx(2.0)


def test_sample_batch_windows_are_shifted_by_one():
    tokens = torch.arange(1000)
    g = torch.Generator().manual_seed(0)
    x, y = sample_batch(tokens, seq_len=16, batch_size=4, generator=g)
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(y, x + 1)  # targets are the next tokens
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(4, 15, dtype=torch.long))  # contiguous windows
    x2, _ = sample_batch(tokens, seq_len=16, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    # every window fits: the last possible start is N - seq_len - 1
    x3, y3 = sample_batch(torch.arange(17), seq_len=16, batch_size=3, generator=g)
    assert torch.equal(x3[0], torch.arange(16)) and torch.equal(y3[0], torch.arange(1, 17))


def test_loss_decreases_on_a_repeating_pattern():
    model = small_model()
    hist = train_lm(model, PATTERN, seq_len=16, batch_size=8, steps=40, lr=1e-2, warmup=4, progress=False)
    assert len(hist["loss"]) == len(hist["lr"]) == len(hist["step_times_s"]) == 40
    first, last = np.mean(hist["loss"][:3]), np.mean(hist["loss"][-3:])
    assert first > 1.5  # starts near log(10) = 2.3
    assert last < 0.3 * first, (first, last)
    assert hist["step_time_s"] > 0 and hist["tokens_per_s"] == pytest.approx(8 * 16 / hist["step_time_s"])
    assert hist["peak_memory_bytes"] is None and hist["device"] == "cpu"
    assert max(hist["lr"]) == pytest.approx(1e-2) and hist["lr"][0] == pytest.approx(1e-2 / 4)
    assert not model.training
    # the trained model predicts the pattern: low perplexity on it
    assert evaluate_perplexity(model, PATTERN[:200], context_len=32, device="cpu") < 2.0


def test_training_is_deterministic_given_a_seed():
    runs = [train_lm(small_model(seed=0, dropout=0.1), PATTERN, seq_len=8, batch_size=4, steps=5, seed=s,
                     progress=False)["loss"] for s in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_eval_every_records_perplexity():
    hist = train_lm(small_model(), PATTERN, seq_len=8, batch_size=4, steps=6, eval_tokens=PATTERN[:100],
                    eval_every=4, eval_max_windows=4, progress=False)
    assert [e["step"] for e in hist["eval"]] == [4, 6]
    assert all(e["perplexity"] > 1.0 for e in hist["eval"])


def test_amp_on_cpu_and_numpy_input():
    hist = train_lm(small_model(), PATTERN.numpy().astype(np.int32), seq_len=8, batch_size=2, steps=2,
                    amp=True, progress=False)
    assert hist["config"]["amp"] is True and all(math.isfinite(x) for x in hist["loss"])


def test_uniform_model_has_perplexity_equal_to_vocab():
    model = ConstantLogits(torch.zeros(10))
    tokens = torch.randint(0, 10, (1001,))
    assert evaluate_perplexity(model, tokens, context_len=50, device="cpu") == pytest.approx(10.0, rel=1e-12)


def test_perplexity_uses_non_overlapping_windows():
    logits = torch.randn(10)
    model = ConstantLogits(logits)
    tokens = torch.randint(0, 10, (103,))
    ppl = evaluate_perplexity(model, tokens, context_len=10, batch_size=4, device="cpu")
    # 10 windows of 10 inputs: predicted tokens are tokens[1:101]; tokens[101:] are never scored
    assert model.seen == [(4, 10), (4, 10), (2, 10)]
    expected = math.exp(F.cross_entropy(logits.double().expand(100, -1), tokens[1:101]).item())
    assert ppl == pytest.approx(expected, rel=1e-9)
    model.seen.clear()
    evaluate_perplexity(model, tokens, context_len=10, batch_size=8, max_windows=3, device="cpu")
    assert model.seen == [(3, 10)]


def test_perplexity_matches_manual_computation_for_a_real_model():
    model = small_model(dropout=0.5).double()
    assert model.training
    tokens = torch.randint(0, 10, (49,))
    ppl = evaluate_perplexity(model, tokens, context_len=16, batch_size=2, device="cpu")
    assert model.training  # its mode is restored...
    model.eval()  # ...and it evaluated without dropout
    windows = tokens[:49].view(1, 49)
    nll = []
    for w in range(3):
        chunk = windows[:, w * 16 : w * 16 + 17]
        nll.append(F.cross_entropy(model(chunk[:, :-1])[0], chunk[0, 1:], reduction="none"))
    assert ppl == pytest.approx(math.exp(torch.cat(nll).mean().item()), rel=1e-9)


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"seq_len": 0}, ValueError, "seq_len"),
        ({"batch_size": -1}, ValueError, "batch_size"),
        ({"steps": 0}, ValueError, "steps"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"weight_decay": -1.0}, ValueError, "weight_decay"),
        ({"grad_clip": 0.0}, ValueError, "grad_clip"),
        ({"warmup": -1}, ValueError, "warmup"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seq_len": 900}, ValueError, "train_tokens has 800 tokens"),
        ({"train_tokens": PATTERN.view(8, 100)}, ValueError, "train_tokens must be 1-D"),
        ({"train_tokens": PATTERN.float()}, TypeError, "train_tokens must hold integer"),
        ({"train_tokens": "abc"}, TypeError, "train_tokens"),
        ({"eval_every": 2}, ValueError, "eval_every needs eval_tokens"),
        ({"eval_tokens": PATTERN[:4], "eval_every": 1}, ValueError, "eval_tokens has 4 tokens"),
        ({"device": 3.5}, ValueError, "device"),
        ({"amp": "yes"}, ValueError, "amp"),
        ({"model": "gpt"}, TypeError, "model"),
    ],
)
def test_train_errors_name_the_argument(kwargs, err, match):
    args = dict(model=small_model(), train_tokens=PATTERN, seq_len=8, batch_size=2, steps=1, progress=False)
    args.update(kwargs)
    model, tokens = args.pop("model"), args.pop("train_tokens")
    with pytest.raises(err, match=match):
        train_lm(model, tokens, **args)


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"context_len": 0}, ValueError, "context_len"),
        ({"context_len": 100}, ValueError, "context_len \\+ 1 = 101"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"max_windows": 0}, ValueError, "max_windows"),
        ({"tokens": torch.zeros(2, 50, dtype=torch.long)}, ValueError, "tokens must be 1-D"),
        ({"tokens": torch.full((50,), -1)}, ValueError, "non-negative"),
    ],
)
def test_perplexity_errors_name_the_argument(kwargs, err, match):
    args = dict(tokens=torch.randint(0, 10, (50,)), context_len=8)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        evaluate_perplexity(ConstantLogits(torch.zeros(10)), args.pop("tokens"), device="cpu", **args)
