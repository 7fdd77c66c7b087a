"""Chapter 7's exercise checkers: right solutions pass, typical mistakes fail with a useful hint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from linattn_edu.exercises import ch07

# --------------------------------------------------------------------------------------------
# Exercise 1: the tree attention mask
# --------------------------------------------------------------------------------------------


def tree_mask_right(parents):
    n = len(parents)
    mask = np.eye(n, dtype=bool)
    for i in range(n):
        if parents[i] >= 0:
            mask[i] |= mask[parents[i]]
    return mask


def tree_mask_walk(parents):  # walk up from every node
    n = len(parents)
    mask = np.zeros((n, n), dtype=bool)
    for i in range(n):
        j = i
        while j >= 0:
            mask[i, j] = True
            j = parents[j]
    return mask


def tree_mask_parent_only(parents):
    mask = np.eye(len(parents), dtype=bool)
    for i, p in enumerate(parents):
        if p >= 0:
            mask[i, p] = True
    return mask


def tree_mask_siblings(parents):
    parents = np.asarray(parents)
    return tree_mask_right(parents) | (parents[:, None] == parents[None, :])


def test_tree_mask_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch07.check_tree_attention_mask(tree_mask_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ tree_attention_mask") and "max |err| = 0" in out


@pytest.mark.parametrize(
    "fn",
    [tree_mask_walk,
     lambda p: tree_mask_right(p).astype(np.int64),
     lambda p: torch.from_numpy(tree_mask_right(p))],
)
def test_tree_mask_other_right_forms(fn) -> None:
    assert ch07.check_tree_attention_mask(fn, quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (lambda p: tree_mask_right(p).T, "transposed"),
        (lambda p: tree_mask_right(p) & ~np.eye(len(p), dtype=bool), "add the diagonal"),
        (tree_mask_parent_only, "not only the direct parent"),
        (lambda p: np.tril(np.ones((len(p), len(p)), dtype=bool)), "plain causal mask"),
        (tree_mask_siblings, "siblings are visible"),
        (lambda p: tree_mask_siblings(p) & np.tril(np.ones((len(p), len(p)), dtype=bool)), "sibling"),
        (lambda p: np.where(tree_mask_right(p), 0.0, -np.inf), "not an additive 0 / -inf bias"),
    ],
)
def test_tree_mask_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch07.check_tree_attention_mask(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ tree_attention_mask") and hint in out and "max |err|" in out


def test_tree_mask_stub_and_bad_return(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(parents):
        raise NotImplementedError

    assert ch07.check_tree_attention_mask(stub) is False
    assert "not solved yet" in capsys.readouterr().out
    assert ch07.check_tree_attention_mask(lambda p: None) is False
    assert "None" in capsys.readouterr().out
    assert ch07.check_tree_attention_mask(lambda p: tree_mask_right(p)[:-1]) is False
    out = capsys.readouterr().out
    assert "shape" in out and "one row per query node" in out
    assert ch07.check_tree_attention_mask(lambda p: p[len(p)]) is False
    assert "raised IndexError" in capsys.readouterr().out
    assert ch07.check_tree_attention_mask(stub, quiet=True) is False
    assert ch07.check_tree_attention_mask(tree_mask_right, quiet=True) is True
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------------------------
# Exercise 2: masking the future taps
# --------------------------------------------------------------------------------------------


def kernel_mask_right(weight):
    k = weight.shape[1]
    return weight * (np.arange(k) <= k // 2)


def _keep(cond):
    def fn(weight):
        taps = np.arange(weight.shape[1])
        return np.where(cond(taps, weight.shape[1] // 2), weight, 0.0)
    return fn


def test_kernel_mask_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch07.check_causal_kernel_mask(kernel_mask_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ causal_kernel_mask") and "leak test passed" in out and "max |err|" in out


def test_kernel_mask_in_place_and_torch_accepted() -> None:
    def in_place(weight):
        weight[:, weight.shape[1] // 2 + 1:] = 0.0
        return weight

    assert ch07.check_causal_kernel_mask(in_place, quiet=True) is True
    fn = lambda w: torch.from_numpy(w) * (torch.arange(w.shape[1]) <= w.shape[1] // 2)  # noqa: E731
    assert ch07.check_causal_kernel_mask(fn, quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint, leaks",
    [
        (lambda w: w, "nothing was zeroed", True),
        (_keep(lambda t, h: t >= h), "you zeroed the past", True),
        (_keep(lambda t, h: t > h), "you zeroed the past and kept the future", True),
        (_keep(lambda t, h: t < h), "keep the center tap", False),
        (_keep(lambda t, h: t == h), "keep the past taps too", False),
        (_keep(lambda t, h: t <= h + 1), "a future tap is left over", True),
        (lambda w: (np.arange(w.shape[1]) <= w.shape[1] // 2) * np.ones_like(w), "do not replace the kept taps", False),
    ],
)
def test_kernel_mask_wrong(fn, hint: str, leaks: bool, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch07.check_causal_kernel_mask(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ causal_kernel_mask") and hint in out and "max |err|" in out
    assert ("the future leaks into the past" in out) is leaks
    assert ("does not leak the future" in out) is not leaks


def test_kernel_mask_stub_and_bad_return(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(weight):
        raise NotImplementedError

    def in_place_no_return(weight):
        weight[:, weight.shape[1] // 2 + 1:] = 0.0

    assert ch07.check_causal_kernel_mask(stub) is False
    assert "not solved yet" in capsys.readouterr().out
    assert ch07.check_causal_kernel_mask(in_place_no_return) is False
    assert "None" in capsys.readouterr().out
    assert ch07.check_causal_kernel_mask(lambda w: w[:, : w.shape[1] // 2 + 1]) is False
    assert "zero the future taps in place of cutting them off" in capsys.readouterr().out
    assert ch07.check_causal_kernel_mask(stub, quiet=True) is False
    assert ch07.check_causal_kernel_mask(kernel_mask_right, quiet=True) is True
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------------------------
# Exercise 3: the exclusive global state
# --------------------------------------------------------------------------------------------


def global_state_right(k, v, group_size):
    outer = k[:, :, None] * v[:, None, :]
    prefix = np.concatenate([np.zeros((1,) + outer.shape[1:]), np.cumsum(outer, axis=0)])
    starts = group_size * (np.arange(len(k)) // group_size)
    return prefix[starts]


def global_state_loop(k, v, group_size):  # the recurrent form: add a group's KᵀV when it completes
    t, d = k.shape
    out, state = np.zeros((t, d, v.shape[1])), np.zeros((d, v.shape[1]))
    for start in range(0, t, group_size):
        out[start:start + group_size] = state
        state = state + k[start:start + group_size].T @ v[start:start + group_size]
    return out


def _prefix(k, v, end):
    outer = k[:, :, None] * v[:, None, :]
    prefix = np.concatenate([np.zeros((1,) + outer.shape[1:]), np.cumsum(outer, axis=0)])
    return lambda g: prefix[np.clip(end(np.arange(len(k)), g), 0, len(k))]


def _state(end):
    return lambda k, v, g: _prefix(k, v, end)(g)


def test_global_state_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch07.check_grouped_global_state(global_state_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ grouped_global_state") and "g >= T" in out and "max |err|" in out


@pytest.mark.parametrize(
    "fn",
    [global_state_loop, lambda k, v, g: torch.from_numpy(global_state_right(k, v, g))],
)
def test_global_state_other_right_forms(fn) -> None:
    assert ch07.check_grouped_global_state(fn, quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (_state(lambda i, g: i + 1), "inclusive"),
        (_state(lambda i, g: i), "token-level exclusive prefix"),
        (_state(lambda i, g: g * (i // g + 1)), "includes the whole current group"),
        (_state(lambda i, g: g * (i // g - 1)), "off by one group"),
        (lambda k, v, g: _state(lambda i, g: g * (i // g))(k, v, g) - _state(lambda i, g: g * (i // g - 1))(k, v, g),
         "not only the previous one"),
        (lambda k, v, g: _state(lambda i, g: i + 1)(k, v, g) - _state(lambda i, g: g * (i // g))(k, v, g),
         "the current group up to i"),
    ],
)
def test_global_state_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch07.check_grouped_global_state(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ grouped_global_state") and hint in out and "max |err|" in out


def test_global_state_stub_and_bad_return(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(k, v, group_size):
        raise NotImplementedError

    def per_group(k, v, g):
        return global_state_right(k, v, g)[::g]

    assert ch07.check_grouped_global_state(stub) is False
    assert "not solved yet" in capsys.readouterr().out
    assert ch07.check_grouped_global_state(lambda k, v, g: np.swapaxes(global_state_right(k, v, g), 1, 2)) is False
    assert "yours is v kᵀ" in capsys.readouterr().out
    assert ch07.check_grouped_global_state(per_group) is False
    assert "one state per position, not per group" in capsys.readouterr().out
    assert ch07.check_grouped_global_state(lambda k, v, g: (global_state_right(k, v, g), None)) is False
    assert "return S_excl alone" in capsys.readouterr().out
    assert ch07.check_grouped_global_state(lambda k, v, g: None) is False
    assert "None" in capsys.readouterr().out
    assert ch07.check_grouped_global_state(stub, quiet=True) is False
    assert ch07.check_grouped_global_state(global_state_right, quiet=True) is True
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------------------------
# Exercise 4: the accepted length
# --------------------------------------------------------------------------------------------


def accepted_right(draft_path, target_greedy):
    n = 0
    while n < len(draft_path) and draft_path[n] == target_greedy[n]:
        n += 1
    return n + 1


def accepted_cumprod(draft_path, target_greedy):
    return int(np.cumprod(draft_path == target_greedy[: len(draft_path)]).sum()) + 1


def test_accepted_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch07.check_accepted_length(accepted_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ accepted_length") and "max |err| = 0" in out


@pytest.mark.parametrize(
    "fn",
    [accepted_cumprod,
     lambda d, t: np.cumprod(d == t[: len(d)]).sum() + 1,  # a NumPy int
     lambda d, t: np.asarray(accepted_right(d, t))],  # a 0-d array
)
def test_accepted_other_right_forms(fn) -> None:
    assert ch07.check_accepted_length(fn, quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (lambda d, t: accepted_right(d, t) - 1, "add the bonus token"),
        (lambda d, t: int(np.sum(d == t[: len(d)])) + 1, "count only the leading run"),
        (lambda d, t: int(np.sum(d == t[: len(d)])), "count only the leading run of matches"),
        (lambda d, t: accepted_right(d, t[1:]) if len(d) else 1, "not t + 1"),
        (lambda d, t: len(d) + 1, "not every draft token is accepted"),
    ],
)
def test_accepted_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch07.check_accepted_length(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ accepted_length") and hint in out and "max |err|" in out


def test_accepted_stub_and_bad_return(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(draft_path, target_greedy):
        raise NotImplementedError

    assert ch07.check_accepted_length(stub) is False
    assert "not solved yet" in capsys.readouterr().out
    assert ch07.check_accepted_length(lambda d, t: t[: accepted_right(d, t)]) is False
    assert "not an array of shape" in capsys.readouterr().out
    assert ch07.check_accepted_length(lambda d, t: list(t[: accepted_right(d, t)])) is False
    assert "not a list" in capsys.readouterr().out
    assert ch07.check_accepted_length(lambda d, t: True) is False
    assert "got a bool" in capsys.readouterr().out
    assert ch07.check_accepted_length(lambda d, t: None) is False
    assert "None" in capsys.readouterr().out
    assert ch07.check_accepted_length(stub, quiet=True) is False
    assert ch07.check_accepted_length(accepted_right, quiet=True) is True
    assert capsys.readouterr().out == ""
