"""Greedy speculative decoding with draft trees: exact, and fewer passes of the big model.

A small *draft* model proposes a tree of candidate continuations; the *target* model scores the
whole tree in one forward pass (``target.tree_step``, under the tree attention mask of
:func:`~linattn_edu.reference.tree_attention_mask`); we keep the longest root path on which every
drafted token is the target's own greedy choice, plus one *bonus* token the target predicts after
it. The output is exactly what plain greedy decoding of the target would produce (You et al. 2024
§4; Medusa / SpecInfer for the tree drafts): the draft only decides how many tokens a pass yields.

One round, with the committed tokens in the target's cache and the target's next token ``g``
already known (the argmax of the last logits the target produced)::

    1. draft:   tokens, parents = draft_tree(draft, draft_cache, root=g, branching=(2, 2, 1))
                (node 0 is g; below it the draft's top-2, then top-2, then top-1 continuations)
    2. verify:  logits = target.tree_step(tokens[None], parents, cache)   # ONE target pass
    3. accept:  walk down from g while some child's token equals argmax(logits[node]);
                bonus = argmax(logits[last accepted node])
    4. commit:  logits, cache = target.prefill(accepted + [bonus], cache)  # second target pass
                g = argmax(logits[0, -1])        # the next round's root, known for free

Each round therefore costs two target passes (verify + commit, counted separately in
:class:`SpeculativeStats`) and yields ``2 + (accepted draft tokens)`` tokens: never fewer than
plain greedy decoding's one token per pass. ``tree_step`` leaves the cache untouched by contract
(it works for any model with ``prefill`` / ``step`` / ``tree_step``), which is why the accepted
tokens are re-run by ``prefill``; a model that could keep the keys/values (or states) of the
accepted path from the verification pass would fold the commit into it, one pass per round.

Batch size 1 only: in a batch, rows accept different numbers of tokens and their caches would
drift apart. :func:`greedy_generate` (the baseline) accepts any batch.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .reference.speculative import tree_attention_mask, tree_depths, tree_paths

__all__ = [
    "SpeculativeStats",
    "draft_tree",
    "draw_draft_tree",
    "greedy_generate",
    "speculative_generate",
    "tree_children",
]


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_branching(branching: Any) -> tuple[int, ...]:
    if isinstance(branching, (int, np.integer)) or not isinstance(branching, Sequence):
        raise ValueError(f"branching must be a sequence of positive ints (one per tree level), got {branching!r}")
    out = []
    for k in branching:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"branching must hold positive ints (children per node at each level), got {branching!r}")
        out.append(int(k))
    return tuple(out)


def _check_prompt(prompt: Any, name: str = "prompt") -> torch.Tensor:
    if not isinstance(prompt, torch.Tensor) or prompt.ndim != 2 or prompt.numel() == 0:
        shape = tuple(prompt.shape) if isinstance(prompt, torch.Tensor) else type(prompt).__name__
        raise ValueError(f"{name} must be a non-empty (B, T) tensor of token ids, got {shape}")
    return prompt


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _EvalMode:
    """Put models in eval mode for the duration of a ``with`` block, then restore them."""

    def __init__(self, *models: nn.Module) -> None:
        self.models = models
        self.modes = [m.training for m in models]

    def __enter__(self) -> None:
        for m in self.models:
            m.eval()

    def __exit__(self, *exc: Any) -> None:
        for m, mode in zip(self.models, self.modes):
            m.train(mode)


# ----------------------------------------------------------------------------------------------
# The baseline
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def greedy_generate(
    model: nn.Module, prompt: torch.Tensor, max_new_tokens: int, *, return_stats: bool = False
) -> torch.Tensor | tuple[torch.Tensor, dict[str, Any]]:
    """Plain greedy decoding with ``prefill`` then ``step``: the new tokens ``(B, max_new_tokens)``.

    Any batch size works (speculative decoding itself is batch 1). Target forward passes are
    counted: one ``prefill`` of the prompt, then ``max_new_tokens - 1`` calls of ``step`` (the
    last token needs no pass after it). With ``return_stats=True`` returns
    ``(tokens, {"target_passes", "prefill_passes", "step_passes", "wall_time_s"})``.

    Raises:
        ValueError: a bad ``prompt`` (not ``(B, T)``) or a negative ``max_new_tokens``.
    """
    prompt = _check_prompt(prompt)
    max_new_tokens = _check_int(max_new_tokens, "max_new_tokens", 0)
    device = prompt.device
    out: list[torch.Tensor] = []
    steps = prefills = 0
    with _EvalMode(model):
        _sync(device)
        t0 = time.perf_counter()
        if max_new_tokens > 0:
            logits, cache = model.prefill(prompt)
            prefills += 1
            last = logits[:, -1]
            for i in range(max_new_tokens):
                token = last.argmax(-1)
                out.append(token)
                if i + 1 < max_new_tokens:
                    last, cache = model.step(token, cache)
                    steps += 1
        _sync(device)
        wall = time.perf_counter() - t0
    tokens = torch.stack(out, dim=1) if out else prompt.new_zeros((prompt.shape[0], 0))
    if not return_stats:
        return tokens
    return tokens, {"target_passes": prefills + steps, "prefill_passes": prefills, "step_passes": steps, "wall_time_s": wall}


# ----------------------------------------------------------------------------------------------
# Draft trees
# ----------------------------------------------------------------------------------------------


def tree_children(parents: Any) -> list[list[int]]:
    """``children[i]``: the indices of node ``i``'s children, in order (roots are not listed)."""
    par = [int(p) for p in np.asarray(parents.cpu() if isinstance(parents, torch.Tensor) else parents)]
    children: list[list[int]] = [[] for _ in par]
    for i, p in enumerate(par):
        if p >= 0:
            children[p].append(i)
    return children


@torch.no_grad()
def draft_tree(
    draft_model: nn.Module,
    cache_or_prefix: Any,
    *,
    branching: Sequence[int] = (2, 2, 1),
    root: int | torch.Tensor | None = None,
    last_logits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Build a top-k draft tree with a small model: returns ``(tokens (N,), parents (N,))`` int64.

    Level ``d`` gives every node of level ``d - 1`` its ``branching[d]`` most likely next tokens
    under the draft model (each path is continued by the draft's own ``step``, one call per
    non-leaf node: fine at book scale). Nodes are listed level by level, so parents come first.

    Without ``root`` the tree hangs off the committed prefix: its depth is ``len(branching)`` and
    level ``d`` has ``k_1 · … · k_d`` nodes. With ``root`` (a token id the caller already knows
    comes next, e.g. the target's own prediction) node 0 is that token, with parent -1, and the
    levels hang below it: ``N = 1 + k_1 + k_1 k_2 + …``.

    ``cache_or_prefix`` is either a prefix ``(1, T)`` (or ``(T,)``) of token ids, which the draft
    prefills, or the draft's cache after the prefix; with a cache and no ``root``, pass the
    draft's logits after the prefix as ``last_logits`` ``(V,)`` or ``(1, V)``. Batch 1 only.

    Raises:
        ValueError: bad ``branching``; a cache without ``root`` or ``last_logits``.
    """
    branching = _check_branching(branching)
    if isinstance(cache_or_prefix, torch.Tensor):
        prefix = cache_or_prefix[None] if cache_or_prefix.ndim == 1 else cache_or_prefix
        prefix = _check_prompt(prefix, "cache_or_prefix")
        if prefix.shape[0] != 1:
            raise ValueError(f"draft_tree works on one sequence: cache_or_prefix must be (1, T), got {tuple(prefix.shape)}")
        logits, cache = draft_model.prefill(prefix)
        last = logits[0, -1]
        device = prefix.device
    else:
        cache = cache_or_prefix
        if root is None and last_logits is None:
            raise ValueError("draft_tree from a cache needs last_logits (the draft's logits after the prefix) or a root token")
        last = None if last_logits is None else last_logits.reshape(-1)
        device = None
    tokens: list[int] = []
    parents: list[int] = []
    if root is not None:
        tok = int(root)
        tokens.append(tok)
        parents.append(-1)
        if branching:
            dev = device if device is not None else _cache_device(cache)
            step_logits, cache = draft_model.step(torch.tensor([tok], device=dev), cache)
            last = step_logits[0]
        frontier = [(0, last, cache)]
    else:
        frontier = [(-1, last, cache)]
    for level, k in enumerate(branching):
        is_last = level == len(branching) - 1
        nxt = []
        for node, logits, node_cache in frontier:
            top = torch.topk(logits, min(k, logits.shape[-1])).indices
            for tok in top.tolist():
                tokens.append(tok)
                parents.append(node)
                if not is_last:
                    step_logits, child_cache = draft_model.step(top.new_tensor([tok]), node_cache)
                    nxt.append((len(tokens) - 1, step_logits[0], child_cache))
        frontier = nxt
    return torch.tensor(tokens, dtype=torch.long), torch.tensor(parents, dtype=torch.long)


def _cache_device(cache: Any) -> torch.device:
    """The device of the first tensor found in a cache (dataclass / list / dict of tensors)."""
    stack = [cache]
    while stack:
        obj = stack.pop()
        if isinstance(obj, torch.Tensor):
            return obj.device
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            stack.extend(getattr(obj, f.name) for f in dataclasses.fields(obj))
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple)):
            stack.extend(obj)
    return torch.device("cpu")


# ----------------------------------------------------------------------------------------------
# Speculative decoding
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SpeculativeStats:
    """What one :func:`speculative_generate` call did.

    Attributes:
        rounds: draft–verify–commit rounds.
        accepted_lengths: tokens emitted per round (the known root + accepted draft tokens + the
            bonus token); each >= 1, and they sum to ``generated``.
        draft_accepted: drafted tokens (below the root) accepted per round.
        tree_sizes: nodes verified per round (0 when a round needed no verification).
        generated: new tokens returned.
        prefill_passes, verify_passes, commit_passes: target forward passes of each kind
            (prompt prefill; one ``tree_step`` per round; one ``prefill`` of the accepted tokens
            per round but the last).
        wall_time_s: wall-clock seconds, draft model included.
        greedy_passes, greedy_wall_time_s: the same for plain greedy decoding of the same prompt
            (None unless ``compare_greedy=True``); ``matches_greedy`` says whether the tokens agree.
    """

    rounds: int = 0
    accepted_lengths: list[int] = dataclasses.field(default_factory=list)
    draft_accepted: list[int] = dataclasses.field(default_factory=list)
    tree_sizes: list[int] = dataclasses.field(default_factory=list)
    generated: int = 0
    prefill_passes: int = 0
    verify_passes: int = 0
    commit_passes: int = 0
    wall_time_s: float = 0.0
    greedy_passes: int | None = None
    greedy_wall_time_s: float | None = None
    matches_greedy: bool | None = None

    @property
    def target_passes(self) -> int:
        """All target forward passes: prefill + verify + commit."""
        return self.prefill_passes + self.verify_passes + self.commit_passes

    @property
    def mean_accepted_length(self) -> float:
        """Tokens per round (``generated / rounds``)."""
        return self.generated / self.rounds if self.rounds else 0.0

    @property
    def speedup_passes(self) -> float | None:
        """Greedy target passes / speculative target passes (None without the greedy run)."""
        if self.greedy_passes is None or self.target_passes == 0:
            return None
        return self.greedy_passes / self.target_passes

    @property
    def speedup_wall(self) -> float | None:
        """Greedy wall time / speculative wall time (None without the greedy run)."""
        if self.greedy_wall_time_s is None or self.wall_time_s <= 0:
            return None
        return self.greedy_wall_time_s / self.wall_time_s

    def as_dict(self) -> dict[str, Any]:
        """The fields and the derived numbers, for a table."""
        d = dataclasses.asdict(self)
        d.update(
            target_passes=self.target_passes,
            mean_accepted_length=self.mean_accepted_length,
            speedup_passes=self.speedup_passes,
            speedup_wall=self.speedup_wall,
        )
        return d


@torch.no_grad()
def speculative_generate(
    target: nn.Module,
    draft: nn.Module,
    prompt: torch.Tensor,
    max_new_tokens: int,
    *,
    branching: Sequence[int] = (2, 2, 1),
    compare_greedy: bool = False,
) -> tuple[torch.Tensor, SpeculativeStats]:
    """Greedy speculative decoding with top-k draft trees: ``(tokens (1, max_new_tokens), stats)``.

    The tokens are exactly those of ``greedy_generate(target, prompt, max_new_tokens)`` (up to
    float ties between the tree pass and single steps); see the module docstring for one round.
    ``target`` needs ``prefill`` / ``step`` / ``tree_step`` (any zoo model that implements tree
    verification), ``draft`` needs ``prefill`` / ``step``; both share the vocabulary.
    ``branching[d]`` is the number of draft candidates per node at depth ``d + 1`` below the
    known root. With ``compare_greedy=True`` plain greedy decoding runs too, and the stats get its
    pass count, wall time and whether the tokens match.

    Raises:
        ValueError: a prompt that is not ``(1, T)``, a negative ``max_new_tokens``, bad
            ``branching``.
        AttributeError: a target without ``tree_step``.
    """
    prompt = _check_prompt(prompt)
    if prompt.shape[0] != 1:
        raise ValueError(f"speculative_generate decodes one sequence: prompt must be (1, T), got {tuple(prompt.shape)}")
    max_new_tokens = _check_int(max_new_tokens, "max_new_tokens", 0)
    branching = _check_branching(branching)
    if not hasattr(target, "tree_step"):
        raise AttributeError(f"the target model ({type(target).__name__}) has no tree_step(token_tree, parents, cache)")
    stats = SpeculativeStats()
    device = prompt.device
    out: list[int] = []
    with _EvalMode(target, draft):
        _sync(device)
        t0 = time.perf_counter()
        if max_new_tokens > 0:
            logits, cache = target.prefill(prompt)
            stats.prefill_passes += 1
            g = int(logits[0, -1].argmax())
            _, dcache = draft.prefill(prompt)
        while len(out) < max_new_tokens:
            remaining = max_new_tokens - len(out)
            # A round emits at most 1 + depth + 1 tokens: keep the tree no deeper than needed.
            levels = branching[: max(0, remaining - 2)]
            if remaining == 1:  # the root is already known: no pass needed
                new, n_draft, size = [g], 0, 0
            else:
                tokens, parents = draft_tree(draft, dcache, branching=levels, root=g)
                tokens = tokens.to(device)
                tree_logits = target.tree_step(tokens[None], parents, cache)[0]  # (N, V)
                stats.verify_passes += 1
                children = tree_children(parents)
                node, path = 0, [0]
                while True:
                    want = int(tree_logits[node].argmax())
                    nxt = next((c for c in children[node] if int(tokens[c]) == want), None)
                    if nxt is None:
                        break
                    node = nxt
                    path.append(node)
                new = [int(tokens[i]) for i in path] + [want]
                n_draft, size = len(path) - 1, int(tokens.shape[0])
            out.extend(new)
            stats.rounds += 1
            stats.accepted_lengths.append(len(new))
            stats.draft_accepted.append(n_draft)
            stats.tree_sizes.append(size)
            if len(out) < max_new_tokens:
                new_t = torch.tensor([new], dtype=torch.long, device=device)
                logits, cache = target.prefill(new_t, cache)
                stats.commit_passes += 1
                g = int(logits[0, -1].argmax())
                _, dcache = draft.prefill(new_t, dcache)
        _sync(device)
        stats.wall_time_s = time.perf_counter() - t0
    stats.generated = len(out)
    result = torch.tensor([out], dtype=torch.long, device=device).reshape(1, len(out))
    if compare_greedy:
        ref, gstats = greedy_generate(target, prompt, max_new_tokens, return_stats=True)
        stats.greedy_passes = gstats["target_passes"]
        stats.greedy_wall_time_s = gstats["wall_time_s"]
        stats.matches_greedy = bool(torch.equal(ref, result))
    return result, stats


# ----------------------------------------------------------------------------------------------
# A figure for the chapter
# ----------------------------------------------------------------------------------------------


def draw_draft_tree(
    tokens: Any,
    parents: Any,
    ax: Any = None,
    labels: Sequence[str] | None = None,
    *,
    accepted: Sequence[int] | None = None,
) -> Any:
    """Draw a draft tree (left) and its tree attention mask (right); returns the figure.

    ``tokens`` / ``parents`` as returned by :func:`draft_tree`; ``labels`` (one string per node)
    replace the token ids in the picture (e.g. decoded characters). ``accepted`` (node indices)
    highlights the accepted path. ``ax``: a pair of matplotlib axes to draw into (a new figure
    otherwise). Node ``i`` is drawn at x = its depth, y spreading the leaves; the mask shows which
    nodes each node sees (the committed prefix, visible to all, is not drawn).

    Raises:
        ValueError: a bad parent array; ``tokens`` / ``labels`` of the wrong length; ``ax`` not a pair.
    """
    import matplotlib.pyplot as plt

    mask = tree_attention_mask(parents)
    n = mask.shape[0]
    depth = tree_depths(parents)
    toks = np.asarray(tokens.cpu() if isinstance(tokens, torch.Tensor) else tokens).reshape(-1)
    if toks.shape[0] != n:
        raise ValueError(f"tokens must have one entry per node ({n}), got {toks.shape[0]}")
    if labels is None:
        labels = [str(int(t)) for t in toks]
    labels = [str(s) for s in labels]
    if len(labels) != n:
        raise ValueError(f"labels must have one entry per node ({n}), got {len(labels)}")
    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1.3, 1]})
    else:
        axes = list(ax) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
        if len(axes) != 2:
            raise ValueError("ax must be a pair of axes (tree, mask)")
        fig = axes[0].figure
    ax_tree, ax_mask = axes
    on_path = set(accepted or [])

    # Layout: leaves get consecutive y; a parent sits at the mean y of its children.
    children = tree_children(parents)
    y = np.zeros(n)
    next_leaf = [0.0]

    def place(i: int) -> float:
        if children[i]:
            y[i] = float(np.mean([place(c) for c in children[i]]))
        else:
            y[i] = next_leaf[0]
            next_leaf[0] += 1.0
        return y[i]

    par = [path[-2] if len(path) > 1 else -1 for path in tree_paths(parents)]
    roots = [i for i in range(n) if par[i] < 0]
    for r in roots:
        place(r)
    y_prefix = float(np.mean(y[roots]))
    for i in range(n):
        px, py = (-1, y_prefix) if par[i] < 0 else (depth[par[i]], y[par[i]])
        hot = i in on_path and (par[i] < 0 or par[i] in on_path)
        ax_tree.plot([px, depth[i]], [py, y[i]], color="tab:green" if hot else "0.6", lw=2.5 if hot else 1.2, zorder=1)
    ax_tree.scatter([-1], [y_prefix], s=900, marker="s", color="0.85", edgecolor="k", zorder=2)
    ax_tree.text(-1, y_prefix, "prefix", ha="center", va="center", fontsize=8, zorder=3)
    colors = ["tab:green" if i in on_path else "white" for i in range(n)]
    ax_tree.scatter(depth, y, s=700, color=colors, edgecolor="k", zorder=2)
    for i in range(n):
        ax_tree.text(depth[i], y[i], labels[i], ha="center", va="center", fontsize=9, zorder=3)
        ax_tree.text(depth[i] + 0.18, y[i] + 0.28, f"#{i}", fontsize=7, color="0.4", zorder=3)
    ax_tree.set_xlim(-1.6, depth.max() + 0.7)
    ax_tree.set_ylim(y.max() + 0.8, -0.8)
    ax_tree.set_xticks(range(-1, int(depth.max()) + 1))
    ax_tree.set_xticklabels(["prefix"] + [f"depth {d}" for d in range(int(depth.max()) + 1)])
    ax_tree.set_yticks([])
    ax_tree.set_title(f"draft tree: {n} candidate tokens" + (" (green: accepted)" if on_path else ""))

    ax_mask.imshow(mask, cmap="Blues", vmin=0, vmax=1.3)
    ax_mask.set_xticks(range(n))
    ax_mask.set_yticks(range(n))
    ax_mask.set_xticklabels([f"#{j} {labels[j]}" for j in range(n)], rotation=90, fontsize=7)
    ax_mask.set_yticklabels([f"#{i} {labels[i]}" for i in range(n)], fontsize=7)
    ax_mask.set_xlabel("key node j (sees the prefix too)")
    ax_mask.set_ylabel("query node i")
    ax_mask.set_title("tree attention mask: i sees j iff j is i or an ancestor", fontsize=10)
    fig.tight_layout()
    return fig
