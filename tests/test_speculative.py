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
    # one target pass per round: committing reuses the verification pass
    assert stats.commit_passes == 0
    assert stats.target_passes == stats.prefill_passes + stats.verify_passes
    assert stats.mean_accepted_length == pytest.approx(n_new / stats.rounds)
    assert stats.matches_greedy is True
    assert stats.greedy_passes == n_new
    # a round yields >= 1 token per pass: never more target passes than greedy decoding
    assert stats.target_passes <= stats.greedy_passes
    assert stats.passes_per_token == pytest.approx(stats.target_passes / n_new)


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
    assert stats.accepted_lengths[0] == min(12, len(branching) + 1)  # the root and every drafted level


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


# ----------------------------------------------------------------------------------------------
# One target pass per round: commit_tree
# ----------------------------------------------------------------------------------------------


def linearized(dtype=torch.float64, **options):
    torch.manual_seed(5)
    model = build_model("linearized", vocab_size=V, d_model=16, n_layers=2, n_heads=2, **options).to(dtype).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)  # larger weights: greedy continuations that are not constant
    return model


TREE_MODELS = {
    "transformer-rope": lambda: tiny("rope"),
    "transformer-alibi-window": lambda: tiny("alibi", n_kv_heads=2, window=4),
    "linearized-official": lambda: linearized(group_size=4, conv_kernel_size=5),
    "linearized-book-variants": lambda: linearized(group_size=3, conv_filters="channel", alpha_per="head",
                                                   local_factor=True, alpha_init=0.5),
    "linearized-linear": lambda: linearized(attention="linear"),
}


def cache_tensors(cache):
    if hasattr(cache, "keys") and isinstance(cache.keys, list):
        return list(cache.keys) + list(cache.values)
    out = []
    for layer in cache.layers:
        out += [t for t in (layer.s, layer.z, layer.keys, layer.values, layer.conv) if t is not None]
    return out


@pytest.mark.parametrize("name", list(TREE_MODELS))
@torch.no_grad()
def test_commit_tree_equals_prefill_of_the_path(name):
    model = TREE_MODELS[name]()
    gen = torch.Generator().manual_seed(21)
    for t in (3, 5, 6):  # partial groups of every length: paths complete groups
        prompt = torch.randint(0, V, (2, t), generator=gen)
        _, cache = model.prefill(prompt)
        parents = random_parents(10, gen)
        tree = torch.randint(0, V, (2, 10), generator=gen)
        logits, states = model.tree_step(tree, parents, cache, return_states=True)
        torch.testing.assert_close(logits, model.tree_step(tree, parents, cache), rtol=0, atol=0)
        for path in tree_paths(parents) + [[]]:
            committed = model.commit_tree(cache, states, path)
            _, ref = model.prefill(tree[:, path], cache) if path else (None, cache)
            assert committed.position == ref.position == t + len(path)
            for a, b in zip(cache_tensors(committed), cache_tensors(ref), strict=True):
                assert a.shape == b.shape
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
            nxt = torch.randint(0, V, (2,), generator=gen)  # and decoding goes on identically
            torch.testing.assert_close(model.step(nxt, committed)[0], model.step(nxt, ref)[0], rtol=1e-10, atol=1e-10)


@torch.no_grad()
def test_commit_tree_validation():
    for name in ("transformer-rope", "linearized-official"):
        model = TREE_MODELS[name]()
        _, cache = model.prefill(torch.randint(0, V, (1, 4)))
        parents = [-1, 0, 0, 1]
        _, states = model.tree_step(torch.zeros(1, 4, dtype=torch.long), parents, cache, return_states=True)
        for bad in ([1], [0, 3], [0, 1, 2], [7]):
            with pytest.raises(ValueError, match="path"):
                model.commit_tree(cache, states, bad)
        later = model.commit_tree(cache, states, [0])
        with pytest.raises(ValueError, match="position"):
            model.commit_tree(later, states, [0])
        with pytest.raises(TypeError, match="states"):
            model.commit_tree(cache, None, [0])


class AlwaysWrongDraft(torch.nn.Module):
    """A draft whose top-k never holds the target's greedy token (its argmax is pushed to -inf)."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def _hide(self, logits):
        return logits.scatter(-1, logits.argmax(-1, keepdim=True), float("-inf"))

    def prefill(self, tokens, cache=None):
        logits, cache = self.target.prefill(tokens, cache)
        return self._hide(logits), cache

    def step(self, token, cache):
        logits, cache = self.target.step(token, cache)
        return self._hide(logits), cache


@pytest.mark.parametrize("name", ["transformer-rope", "linearized-official"])
@torch.no_grad()
def test_always_wrong_draft_costs_no_more_than_greedy(name):
    target = TREE_MODELS[name]()
    prompt = torch.randint(0, V, (1, 5), generator=torch.Generator().manual_seed(2))
    for n_new in (1, 2, 9):
        out, stats = speculative_generate(target, AlwaysWrongDraft(target), prompt, n_new, branching=(3, 2),
                                          compare_greedy=True)
        check_stats(stats, n_new)
        assert sum(stats.draft_accepted) == 0 and stats.accepted_lengths == [1] * n_new
        assert stats.target_passes == stats.greedy_passes == n_new


@pytest.mark.parametrize("target_name", list(TREE_MODELS))
@pytest.mark.parametrize("draft_kind", ["transformer", "linearized", "linear"])  # batched levels / node by node
@torch.no_grad()
def test_speculative_equals_greedy_every_tree_model(target_name, draft_kind):
    target = TREE_MODELS[target_name]()
    torch.manual_seed(9)
    draft = build_model(draft_kind, vocab_size=V, d_model=8, n_layers=1, n_heads=2).double().eval()
    gen = torch.Generator().manual_seed(31)
    for branching in ((2, 2, 1), (1, 1, 1, 1), ()):
        prompt = torch.randint(0, V, (1, int(torch.randint(1, 9, (), generator=gen))), generator=gen)
        out, stats = speculative_generate(target, draft, prompt, 11, branching=branching, compare_greedy=True)
        check_stats(stats, 11)
    out, stats = speculative_generate(target, target, prompt, 11, branching=(2, 2), compare_greedy=True)
    check_stats(stats, 11)
    assert stats.target_passes < stats.greedy_passes  # its own draft: every drafted token accepted
    assert stats.target_passes == 1 + 4  # prefill, then rounds of 3 tokens: 3 + 3 + 3 + 2 (the last free)


# ----------------------------------------------------------------------------------------------
# End of sequence
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def test_greedy_stops_at_eos_and_pads_finished_rows():
    model = TREE_MODELS["transformer-rope"]()
    prompt = torch.randint(0, V, (3, 4), generator=torch.Generator().manual_seed(3))
    full = greedy_generate(model, prompt, 12)
    eos = int(full[0, 2])  # row 0 ends at its first eos, within the first 3 tokens
    out, st = greedy_generate(model, prompt, 12, eos_token_id=eos, return_stats=True)
    n = out.shape[1]
    assert n <= 12
    for row in range(3):
        hits = (full[row] == eos).nonzero()
        end = int(hits[0]) + 1 if len(hits) else 12  # tokens up to and including the first eos
        assert torch.equal(out[row, : min(end, n)], full[row, : min(end, n)])
        assert (out[row, end:] == eos).all()  # padding after it
    ends = [int((full[r] == eos).nonzero()[0]) + 1 if (full[r] == eos).any() else 12 for r in range(3)]
    assert n == max(ends) and st["target_passes"] == n
    one, st1 = greedy_generate(model, prompt[:1], 12, eos_token_id=eos, return_stats=True)
    assert one.shape == (1, ends[0]) and int(one[0, -1]) == eos and st1["target_passes"] == ends[0]
    with pytest.raises(ValueError, match="eos_token_id"):
        greedy_generate(model, prompt, 3, eos_token_id=V)


@pytest.mark.parametrize("name", ["transformer-rope", "linearized-official", "linearized-linear"])
@torch.no_grad()
def test_speculative_stops_at_eos_like_greedy(name):
    target = TREE_MODELS[name]()
    draft = tiny("alibi", d_model=8, n_layers=1, n_heads=2)
    gen = torch.Generator().manual_seed(4)
    for trial in range(4):
        prompt = torch.randint(0, V, (1, 3 + trial), generator=gen)
        full = greedy_generate(target, prompt, 14)
        eos = int(full[0, [0, 3, 7, 13][trial]])
        ref = greedy_generate(target, prompt, 14, eos_token_id=eos)
        for d in (draft, target):  # wrong drafts and a perfect one (eos inside an accepted path)
            out, stats = speculative_generate(target, d, prompt, 14, eos_token_id=eos, compare_greedy=True)
            assert torch.equal(out, ref) and stats.matches_greedy
            assert out.shape[1] <= 14 and int(out[0, -1]) == eos and (out[0, :-1] != eos).all()
            assert stats.commit_passes == 0 and stats.target_passes <= stats.greedy_passes
    with pytest.raises(ValueError, match="eos_token_id"):
        speculative_generate(target, draft, prompt, 3, eos_token_id=-1)


@torch.no_grad()
def test_draft_with_another_vocabulary_is_refused():
    target = tiny("rope")
    other = build_model("transformer", vocab_size=V + 3, d_model=8, n_layers=1, n_heads=2)
    with pytest.raises(ValueError, match="draft"):
        speculative_generate(target, other, torch.zeros(1, 3, dtype=torch.long), 4)


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
    assert stats.accepted_lengths[0] == 4
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


@pytest.mark.parametrize("kind", ["transformer", "linearized"])
@torch.no_grad()
def test_level_drafter_builds_the_same_tree_as_draft_tree(kind):
    from linattn_edu.speculative import SpeculativeStats, _LevelDrafter

    torch.manual_seed(6)
    draft = build_model(kind, vocab_size=V, d_model=16, n_layers=1, n_heads=2).double().eval()
    with torch.no_grad():
        for p in draft.parameters():
            p.mul_(4.0)
    prompt = torch.randint(0, V, (1, 6))
    stats = SpeculativeStats()
    drafter = _LevelDrafter(draft, prompt, stats)
    _, cache = draft.prefill(prompt)
    for root, branching in ((3, (2, 2, 1)), (7, (3,)), (1, ())):
        tokens, parents = drafter.build(root, branching)
        ref_t, ref_p = draft_tree(draft, cache, branching=branching, root=root)
        assert torch.equal(tokens, ref_t) and torch.equal(parents, ref_p)
    assert stats.draft_calls == 1 + 3 + 1  # the prompt, then one call per level
    # committing a path leaves the never-seen leaf pending; the next tree hangs it above the root
    tokens, parents = drafter.build(3, (2, 2))
    leaf_path = tree_paths(parents)[-1]
    drafter.commit(leaf_path)
    assert drafter.pending == [int(tokens[leaf_path[-1]])]
    _, cache = draft.prefill(tokens[leaf_path[:-1]][None], cache)
    assert drafter.cache.position == cache.position
    t2, p2 = drafter.build(5, (2,))
    _, c2 = draft.prefill(tokens[leaf_path[-1:]][None], cache)
    ref_t, ref_p = draft_tree(draft, c2, branching=(2,), root=5)
    assert torch.equal(t2, ref_t) and torch.equal(p2, ref_p)
