"""Speculative decoding with draft trees: the tree mask, tree verification, exactness vs greedy."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from linattn_edu.models import build_model
from linattn_edu.reference import tree_attention_mask, tree_depths, tree_paths
from linattn_edu.speculative import (
    SpeculativeStats,
    draft_tree,
    draw_draft_tree,
    greedy_generate,
    speculative_generate,
    tree_children,
)

V = 24


def random_parents(n: int, gen: torch.Generator) -> list[int]:
    """A random valid parent array: node i hangs off the prefix or any earlier node."""
    return [int(torch.randint(-1, i, (), generator=gen)) for i in range(n)]


# ----------------------------------------------------------------------------------------------
# The reference: mask, depths, paths
# ----------------------------------------------------------------------------------------------


def test_tree_attention_mask_hand_example():
    #  prefix ── 0 ─┬─ 2 ── 4
    #           │   └─ 3
    #           └─ 1
    parents = [-1, -1, 0, 0, 2]
    expected = np.array(
        [
            [1, 0, 0, 0, 0],
            [0, 1, 0, 0, 0],
            [1, 0, 1, 0, 0],
            [1, 0, 0, 1, 0],
            [1, 0, 1, 0, 1],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(tree_attention_mask(parents), expected)
    np.testing.assert_array_equal(tree_depths(parents), [0, 0, 1, 1, 2])
    assert tree_paths(parents) == [[0], [1], [0, 2], [0, 3], [0, 2, 4]]
    assert tree_children(parents) == [[2, 3], [], [4], [], []]


def test_tree_attention_mask_chain_is_causal_and_flat_is_identity():
    chain = [-1, 0, 1, 2, 3]
    np.testing.assert_array_equal(tree_attention_mask(chain), np.tril(np.ones((5, 5), dtype=bool)))
    np.testing.assert_array_equal(tree_depths(chain), np.arange(5))
    flat = np.full(4, -1)
    np.testing.assert_array_equal(tree_attention_mask(flat), np.eye(4, dtype=bool))
    # torch tensors and numpy ints are accepted
    np.testing.assert_array_equal(tree_attention_mask(torch.tensor(chain)), tree_attention_mask(chain))


def test_tree_attention_mask_matches_paths_on_random_trees():
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        parents = random_parents(12, gen)
        mask = tree_attention_mask(parents)
        paths = tree_paths(parents)
        depths = tree_depths(parents)
        for i, path in enumerate(paths):
            assert set(np.flatnonzero(mask[i])) == set(path)
            assert depths[i] == len(path) - 1


@pytest.mark.parametrize(
    "bad",
    [
        [[-1, 0], [0, 1]],  # 2-D
        [],  # empty
        [-1.0, 0.0],  # floats
        [True, False],  # bools
        [0],  # a node cannot be its own parent
        [-1, 1],  # nor point forward
        [-1, 0, 5],  # out of range
        [-2, 0],  # only -1 marks a root
    ],
)
def test_tree_attention_mask_validation(bad):
    for fn in (tree_attention_mask, tree_depths, tree_paths):
        with pytest.raises(ValueError, match="parents"):
            fn(bad)


# ----------------------------------------------------------------------------------------------
# Transformer tree verification
# ----------------------------------------------------------------------------------------------


def tiny(pos: str = "rope", dtype=torch.float64, **kw) -> torch.nn.Module:
    opts = dict(vocab_size=V, d_model=16, n_layers=2, n_heads=4, pos=pos)
    opts.update(kw)
    return build_model("transformer", **opts).to(dtype).eval()


@pytest.mark.parametrize(
    "pos,extra",
    [
        ("rope", {}),
        ("alibi", {}),
        ("learned", {"max_len": 64}),
        ("sinusoidal", {}),
        ("none", {}),
        ("rope", {"n_kv_heads": 2, "window": 4}),
        ("alibi", {"n_kv_heads": 1, "window": 3}),
    ],
)
@torch.no_grad()
def test_transformer_tree_step_equals_stepping_each_root_path(pos, extra):
    model = tiny(pos, **extra)
    gen = torch.Generator().manual_seed(7)
    for trial in range(3):
        prompt = torch.randint(0, V, (2, 3 + trial * 2), generator=gen)
        _, cache = model.prefill(prompt)
        parents = random_parents(9, gen)
        tree = torch.randint(0, V, (2, len(parents)), generator=gen)
        keys_before = [k.clone() for k in cache.keys]
        logits = model.tree_step(tree, parents, cache)
        assert logits.shape == (2, len(parents), V)
        for i, path in enumerate(tree_paths(parents)):
            c = cache
            for j in path:
                ref, c = model.step(tree[:, j], c)
            torch.testing.assert_close(logits[:, i], ref, rtol=1e-10, atol=1e-10)
        # the cache is not modified
        assert cache.position == prompt.shape[1]
        for k0, k1 in zip(keys_before, cache.keys):
            assert torch.equal(k0, k1)


@torch.no_grad()
def test_transformer_tree_step_validation():
    model = tiny("rope")
    _, cache = model.prefill(torch.randint(0, V, (1, 4)))
    with pytest.raises(ValueError, match="parents"):
        model.tree_step(torch.zeros(1, 3, dtype=torch.long), [-1, 0], cache)  # wrong length
    with pytest.raises(ValueError, match="parents"):
        model.tree_step(torch.zeros(1, 2, dtype=torch.long), [-1, 1], cache)
    with pytest.raises(ValueError, match="token_tree"):
        model.tree_step(torch.full((1, 2), V), [-1, 0], cache)
    with pytest.raises(TypeError, match="cache"):
        model.tree_step(torch.zeros(1, 2, dtype=torch.long), [-1, 0], None)
    learned = tiny("learned", max_len=6)
    _, c = learned.prefill(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="max_len"):
        learned.tree_step(torch.zeros(1, 2, dtype=torch.long), [-1, 0], c)


# ----------------------------------------------------------------------------------------------
# Draft trees
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def test_draft_tree_shape_and_topk():
    draft = tiny("alibi", d_model=8, n_layers=1, n_heads=2)
    prefix = torch.randint(0, V, (1, 5))
    tokens, parents = draft_tree(draft, prefix, branching=(3, 2, 1))
    assert tokens.shape == parents.shape == (3 + 6 + 6,)
    np.testing.assert_array_equal(np.bincount(tree_depths(parents)), [3, 6, 6])
    logits, cache = draft.prefill(prefix)
    roots = tokens[parents == -1]
    assert torch.equal(roots, torch.topk(logits[0, -1], 3).indices)
    # each node's children are the draft's top-k after its root path
    for i, kids in enumerate(tree_children(parents)):
        if kids:
            path = tokens[tree_paths(parents)[i]]
            nxt = draft(torch.cat([prefix, path[None]], dim=1))[0, -1]
            assert set(tokens[kids].tolist()) == set(torch.topk(nxt, len(kids)).indices.tolist())
    # with a known root, from the cache
    t2, p2 = draft_tree(draft, cache, branching=(2, 2), root=5)
    assert t2[0] == 5 and p2[0] == -1 and t2.shape == (1 + 2 + 4,)
    with pytest.raises(ValueError, match="last_logits"):
        draft_tree(draft, cache, branching=(2,))
    with pytest.raises(ValueError, match="branching"):
        draft_tree(draft, prefix, branching=(2, 0))


# ----------------------------------------------------------------------------------------------
# Speculative decoding == greedy decoding
# ----------------------------------------------------------------------------------------------


def check_stats(stats: SpeculativeStats, n_new: int) -> None:
    assert stats.generated == n_new
    assert stats.rounds == len(stats.accepted_lengths) == len(stats.draft_accepted)
    assert all(a >= 1 for a in stats.accepted_lengths)
    assert sum(stats.accepted_lengths) == n_new
    assert stats.prefill_passes == 1
    assert stats.verify_passes <= stats.rounds
    assert stats.commit_passes == stats.rounds - 1
    assert stats.mean_accepted_length == pytest.approx(n_new / stats.rounds)
    assert stats.matches_greedy is True
    assert stats.greedy_passes == n_new
    # a round yields >= 2 tokens per 2 passes: never more target passes than greedy decoding
    assert stats.target_passes <= stats.greedy_passes + 1


@pytest.mark.parametrize("branching", [(2, 2, 1), (1, 1, 1, 1), (3,), (2, 3)])
@torch.no_grad()
def test_speculative_equals_greedy_transformer(branching):
    torch.manual_seed(3)
    # a slightly trained-looking target: larger init so that greedy decoding is not constant
    target = tiny("rope", d_model=32)
    for p in target.parameters():
        p.mul_(4.0)
    draft = tiny("alibi", d_model=16, n_layers=1, n_heads=2)
    gen = torch.Generator().manual_seed(11)
    draft_hits = 0
    for _ in range(6):
        prompt = torch.randint(0, V, (1, int(torch.randint(1, 8, (), generator=gen))), generator=gen)
        n_new = int(torch.randint(1, 16, (), generator=gen))
        ref = greedy_generate(target, prompt, n_new)
        out, stats = speculative_generate(target, draft, prompt, n_new, branching=branching, compare_greedy=True)
        assert torch.equal(out, ref), (prompt, branching)
        check_stats(stats, n_new)
        draft_hits += sum(stats.draft_accepted)
    # the target as its own draft accepts every drafted token
    out, stats = speculative_generate(target, target, prompt, 12, branching=branching, compare_greedy=True)
    check_stats(stats, 12)
    assert stats.accepted_lengths[0] == min(12, len(branching) + 2)


@torch.no_grad()
def test_speculative_equals_greedy_many_prompts_float32():
    torch.manual_seed(4)
    target = tiny("alibi", dtype=torch.float32, d_model=32)
    for p in target.parameters():
        p.mul_(4.0)
    draft = tiny("rope", dtype=torch.float32, d_model=8, n_layers=1, n_heads=2)
    gen = torch.Generator().manual_seed(12)
    for _ in range(20):
        prompt = torch.randint(0, V, (1, int(torch.randint(1, 10, (), generator=gen))), generator=gen)
        out, stats = speculative_generate(target, draft, prompt, 10, branching=(2, 2, 1), compare_greedy=True)
        assert stats.matches_greedy, prompt
        check_stats(stats, 10)


@torch.no_grad()
def test_greedy_generate_matches_models_generate_and_counts_passes():
    from linattn_edu.models import generate

    model = tiny("rope")
    prompt = torch.randint(0, V, (3, 4))
    out, st = greedy_generate(model, prompt, 7, return_stats=True)
    assert torch.equal(out, generate(model, prompt, 7)[:, 4:])
    assert st["target_passes"] == 7 and st["prefill_passes"] == 1 and st["step_passes"] == 6
    assert greedy_generate(model, prompt, 0).shape == (3, 0)
    out, stats = speculative_generate(model, model, prompt[:1], 0)
    assert out.shape == (1, 0) and stats.rounds == 0
    with pytest.raises(ValueError, match="prompt"):
        speculative_generate(model, model, prompt, 3)
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy_generate(model, prompt, -1)


@torch.no_grad()
def test_speculative_needs_tree_step():
    target = build_model("transformer", vocab_size=V, d_model=16, n_layers=1, n_heads=2)

    class NoTree(torch.nn.Module):
        def prefill(self, tokens, cache=None):
            return target.prefill(tokens, cache)

        def step(self, token, cache):
            return target.step(token, cache)

    with pytest.raises(AttributeError, match="tree_step"):
        speculative_generate(NoTree(), target, torch.zeros(1, 2, dtype=torch.long), 3)


LINEARIZED = importlib.util.find_spec("linattn_edu.models.linearized") is not None


@pytest.mark.skipif(not LINEARIZED, reason="linattn_edu/models/linearized.py does not exist yet")
@pytest.mark.parametrize(
    "options",
    [
        {"attention": "grouped", "group_size": 4},  # trees cross group boundaries
        {"attention": "grouped", "group_size": 3, "local": "softmax", "conv_kernel_size": 3},
        {"attention": "linear"},
    ],
)
@torch.no_grad()
def test_speculative_equals_greedy_linearized_target(options):
    import linattn_edu.models.linearized  # noqa: F401  (registers the kind)

    torch.manual_seed(5)
    target = build_model("linearized", vocab_size=V, d_model=16, n_layers=2, n_heads=2, **options)
    assert hasattr(target, "tree_step"), "the 'linearized' model has no tree_step(token_tree, parents, cache)"
    target = target.double().eval()
    for p in target.parameters():
        p.mul_(4.0)  # larger weights: greedy continuations that are not constant
    draft = tiny("alibi", d_model=8, n_layers=1, n_heads=2)
    gen = torch.Generator().manual_seed(13)
    for i in range(6):
        prompt = torch.randint(0, V, (1, int(torch.randint(1, 12, (), generator=gen))), generator=gen)
        branching = [(2, 2, 1), (1, 1, 1), (3, 2)][i % 3]
        out, stats = speculative_generate(target, draft, prompt, 12, branching=branching, compare_greedy=True)
        assert stats.matches_greedy, (prompt, branching)
        check_stats(stats, 12)
    # as its own draft every drafted token is accepted (deep paths across group boundaries)
    out, stats = speculative_generate(target, target, prompt, 12, branching=(2, 2, 1), compare_greedy=True)
    check_stats(stats, 12)
    assert stats.accepted_lengths[0] == 5
    # and the target's tree_step agrees with stepping every root path
    for t in (5, 7, 8):
        prompt = torch.randint(0, V, (1, t), generator=gen)
        _, cache = target.prefill(prompt)
        parents = random_parents(8, gen)
        tree = torch.randint(0, V, (1, 8), generator=gen)
        logits = target.tree_step(tree, parents, cache)
        for i, path in enumerate(tree_paths(parents)):
            c = cache
            for j in path:
                ref, c = target.step(tree[:, j], c)
            torch.testing.assert_close(logits[:, i], ref, rtol=1e-8, atol=1e-8)


def test_draw_draft_tree():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tokens, parents = torch.tensor([5, 6, 7, 8, 9]), torch.tensor([-1, -1, 0, 0, 2])
    fig = draw_draft_tree(tokens, parents, labels=list("abcde"), accepted=[0, 2, 4])
    assert len(fig.axes) == 2 and "mask" in fig.axes[1].get_title()
    plt.close(fig)
    fig, axes = plt.subplots(1, 2)
    assert draw_draft_tree(tokens, parents, ax=axes) is fig
    plt.close(fig)
    with pytest.raises(ValueError, match="labels"):
        draw_draft_tree(tokens, parents, labels=["a"])
