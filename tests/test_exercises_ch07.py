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
# Exercise 3: the convolution unfolded over a draft tree
# --------------------------------------------------------------------------------------------


def unfold_right(parents, prefix_len, kernel_size):
    idx = np.full((len(parents), kernel_size), -1, dtype=np.int64)
    for i in range(len(parents)):
        seq, j = [], i
        while j >= 0:
            seq.append(prefix_len + j)
            j = parents[j]
        seq = (seq + list(range(prefix_len - 1, -1, -1)))[:kernel_size]
        idx[i, :len(seq)] = seq
    return idx


def unfold_flat(parents, prefix_len, kernel_size):  # the plain causal conv over the node order
    n = len(parents)
    return np.array([[prefix_len + i - s if prefix_len + i - s >= 0 else -1 for s in range(kernel_size)]
                     for i in range(n)])


def unfold_stop_at_root(parents, prefix_len, kernel_size):
    idx = unfold_right(parents, prefix_len, kernel_size)
    return np.where(idx >= prefix_len, idx, -1)


def test_unfold_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch07.check_unfold_conv_taps(unfold_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ unfold_conv_taps") and "max |err|" in out


def test_unfold_matches_the_package_and_the_model() -> None:
    """The checker's answer agrees with the figure's helper and with the model's own tap index."""
    from linattn_edu.models.linearized import _make_tree
    from linattn_edu.widgets.diagrams import tree_conv_taps

    parents, p, k = [-1, 0, 0, 1, 1, 2, 3, 5], 5, 4
    idx = unfold_right(parents, p, k)
    for node in range(len(parents)):
        taps = tree_conv_taps(parents, node, k, p)
        assert [p + i if kind == "node" else i for kind, i in taps] == [int(t) for t in idx[node] if t >= 0]
    # the model reads [conv buffer (K-1 last prefix tokens) | nodes], tap K-1 = the node itself
    model_index = _make_tree(parents, len(parents), torch.device("cpu")).conv_index(k).numpy()
    as_inputs = np.where(model_index >= k - 1, model_index - (k - 1) + p, p - (k - 1) + model_index)
    assert np.array_equal(as_inputs[:, ::-1], idx)


@pytest.mark.parametrize(
    "fn",
    [lambda *a: unfold_right(*a).astype(np.float64), lambda *a: torch.from_numpy(unfold_right(*a)),
     lambda *a: unfold_right(*a).tolist()],
)
def test_unfold_other_right_forms(fn) -> None:
    assert ch07.check_unfold_conv_taps(fn, quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (unfold_flat, "siblings or cousins"),
        (lambda *a: unfold_right(*a)[:, ::-1], "reversed"),
        (unfold_stop_at_root, "continue into the committed prefix"),
        (lambda *a: unfold_right(*a).T, "transposed"),
        (lambda *a: unfold_right(*a)[:, :-1] if a[2] > 1 else unfold_right(*a)[:0], "one column per tap"),
    ],
)
def test_unfold_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch07.check_unfold_conv_taps(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ unfold_conv_taps") and hint in out


def test_unfold_wrong_taps_are_shown_to_change_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch07.check_unfold_conv_taps(unfold_flat) is False
    assert "differs from decoding its root path" in capsys.readouterr().out


def test_unfold_no_offset_and_prefix_from_start(capsys: pytest.CaptureFixture[str]) -> None:
    def no_offset(parents, p, k):
        idx = unfold_right(parents, p, k)
        return np.where(idx >= p, idx - p, -1)

    def from_start(parents, p, k):
        idx = unfold_right(parents, p, k)
        out = idx.copy()
        for i in range(len(idx)):
            pre = [s for s in range(k) if 0 <= idx[i, s] < p]
            for r, s in enumerate(pre):
                out[i, s] = r
        return out

    assert ch07.check_unfold_conv_taps(no_offset) is False
    assert "not i" in capsys.readouterr().out
    assert ch07.check_unfold_conv_taps(from_start) is False
    assert "read backwards from its last token" in capsys.readouterr().out


def test_unfold_stub_and_bad_return(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(parents, p, k):
        raise NotImplementedError

    assert ch07.check_unfold_conv_taps(stub) is False
    assert "not solved yet" in capsys.readouterr().out
    assert ch07.check_unfold_conv_taps(lambda *a: None) is False
    assert "None" in capsys.readouterr().out
    assert ch07.check_unfold_conv_taps(lambda p, P, K: p[len(p)]) is False
    assert "raised IndexError" in capsys.readouterr().out
    assert ch07.check_unfold_conv_taps(stub, quiet=True) is False
    assert ch07.check_unfold_conv_taps(unfold_right, quiet=True) is True
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------------------------
# Exercise 4: walking the verified tree
# --------------------------------------------------------------------------------------------


def walk_right(parents, tokens, choice):
    node, path = 0, [0]
    while True:
        nxt = [c for c in range(len(parents)) if parents[c] == node and tokens[c] == choice[node]]
        if not nxt:
            return path, int(choice[node])
        node = nxt[0]
        path.append(node)


def walk_child_choice(parents, tokens, choice):  # compares a child with its own choice
    node, path = 0, [0]
    while True:
        nxt = [c for c in range(len(parents)) if parents[c] == node and tokens[c] == choice[c]]
        if not nxt:
            return path, int(choice[node])
        node = nxt[0]
        path.append(node)


def walk_all_matches(parents, tokens, choice):  # every matching node, path or not
    path = [0] + [c for c in range(1, len(parents)) if tokens[c] == choice[parents[c]]]
    return path, int(choice[path[-1]])


def walk_first_child(parents, tokens, choice):
    node, path = 0, [0]
    while True:
        kids = [c for c in range(len(parents)) if parents[c] == node]
        if not kids or tokens[kids[0]] != choice[node]:
            return path, int(choice[node])
        node = kids[0]
        path.append(node)


def test_walk_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch07.check_accept_path(walk_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ accept_path") and "max |err| = 0" in out


def test_walk_agrees_with_speculative_generate() -> None:
    """The checker's rule is the package's: the same walk as speculative.speculative_generate's loop."""
    from linattn_edu.speculative import tree_children

    for case, parents, tokens, choice in ch07._walk_cases():
        children = tree_children(parents)
        node, path = 0, [0]
        while True:  # transcribed from speculative_generate
            nxt = next((c for c in children[node] if tokens[c] == choice[node]), None)
            if nxt is None:
                break
            node = nxt
            path.append(node)
        assert (path, int(choice[node])) == ch07._walk(parents, tokens, choice), case


@pytest.mark.parametrize(
    "fn",
    [lambda *a: (np.array(walk_right(*a)[0]), np.int64(walk_right(*a)[1])),
     lambda *a: [torch.tensor(walk_right(*a)[0]), torch.tensor(walk_right(*a)[1])]],
)
def test_walk_other_right_forms(fn) -> None:
    assert ch07.check_accept_path(fn, quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (lambda *a: (walk_right(*a)[0][1:], walk_right(*a)[1]), "starts at the root"),
        (lambda *a: (walk_right(*a)[0] + [walk_right(*a)[1]], walk_right(*a)[1]), "not part of the path"),
        (lambda p, t, c: (walk_right(p, t, c)[0], int(t[walk_right(p, t, c)[0][-1]])), "not that node's token"),
        (walk_child_choice, "the parent's logits predict the child's token"),
        (walk_all_matches, "only a path counts"),
        (walk_first_child, "not only the first"),
    ],
)
def test_walk_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch07.check_accept_path(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ accept_path") and hint in out


def test_walk_stub_and_bad_return(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(parents, tokens, choice):
        raise NotImplementedError

    assert ch07.check_accept_path(stub) is False
    assert "not solved yet" in capsys.readouterr().out
    assert ch07.check_accept_path(lambda *a: None) is False
    assert "None" in capsys.readouterr().out
    assert ch07.check_accept_path(lambda *a: walk_right(*a)[0]) is False
    assert "return a pair (path, bonus)" in capsys.readouterr().out
    assert ch07.check_accept_path(lambda *a: (walk_right(*a)[0], [1, 2])) is False
    assert "one token id" in capsys.readouterr().out
    assert ch07.check_accept_path(stub, quiet=True) is False
    assert ch07.check_accept_path(walk_right, quiet=True) is True
    assert capsys.readouterr().out == ""
