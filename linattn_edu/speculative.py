"""Greedy speculative decoding with draft trees: exact, one target pass per round.

A small *draft* model proposes a tree of candidate continuations; the *target* model scores the
whole tree in one forward pass (``target.tree_step``, under the tree attention mask of
:func:`~linattn_edu.reference.tree_attention_mask`); we keep the longest root path on which every
drafted token is the target's own greedy choice. The output is what plain greedy decoding of the
target produces (You et al. 2024 §4; Medusa / SpecInfer for the tree drafts), exactly up to float
ties in the argmax (the tree pass and single steps sum in different orders, so two logits equal
to within rounding may rank differently): the draft only decides how many tokens a pass yields.

One round, with the committed tokens in the target's cache and the target's next token ``g``
already known (the argmax of the last logits the target produced)::

    1. draft:   tokens, parents = the draft's tree below g, one batched draft call per level
                (node 0 is g; below it the draft's top-k at each level, branching=(2, 2, 1))
    2. verify:  logits, states = target.tree_step(tokens[None], parents, cache,
                                                  return_states=True)        # THE target pass
    3. accept:  walk down from g while some child's token equals argmax(logits[node]);
                emit the path; bonus = argmax(logits[last accepted node])
    4. commit:  cache = target.commit_tree(cache, states, path)   # no pass: the verification
                g = bonus                                          # kept the path's keys/values

So a round costs exactly one target pass (``SpeculativeStats.commit_passes`` is always 0 and
``target_passes == prefill_passes + verify_passes``) and emits ``1 + (accepted draft tokens)``
tokens, plus the next root for free. A draft that is always wrong yields one token per pass,
the same as plain greedy decoding, and the very last token never needs a pass.

The target needs ``prefill`` / ``tree_step(..., return_states=True)`` / ``commit_tree`` (the
zoo's ``"transformer"`` and ``"linearized"``). A draft with ``tree_step`` / ``commit_tree``
builds each level of its tree in one batched call and commits its own accepted path from its
last call's states; any other draft (``prefill`` / ``step``) goes node by node
(:func:`draft_tree`) and re-reads the accepted tokens with ``prefill``.

Generation stops after ``eos_token_id`` when given. Batch size 1 only for speculative decoding
(rows accept different numbers of tokens); :func:`greedy_generate` (the baseline) takes any batch.
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


def _vocab_size(model: nn.Module) -> int | None:
    """The model's vocabulary size (``config.vocab_size`` or the LM head's outputs), None if unknown."""
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    if size is None and isinstance(getattr(model, "lm_head", None), nn.Linear):
        size = model.lm_head.out_features
    return None if size is None else int(size)


def _check_eos(eos_token_id: Any, model: nn.Module) -> int | None:
    if eos_token_id is None:
        return None
    vocab = _vocab_size(model)
    if (isinstance(eos_token_id, bool) or not isinstance(eos_token_id, (int, np.integer)) or eos_token_id < 0
            or (vocab is not None and eos_token_id >= vocab)):
        bound = f"[0, {vocab})" if vocab is not None else ">= 0"
        raise ValueError(f"eos_token_id must be None or a token id in {bound}, got {eos_token_id!r}")
    return int(eos_token_id)


# ----------------------------------------------------------------------------------------------
# The baseline
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def greedy_generate(
    model: nn.Module,
    prompt: torch.Tensor,
    max_new_tokens: int,
    *,
    eos_token_id: int | None = None,
    return_stats: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, Any]]:
    """Plain greedy decoding with ``prefill`` then ``step``: the new tokens ``(B, n)``.

    Any batch size works (speculative decoding itself is batch 1). Without ``eos_token_id``,
    ``n = max_new_tokens``. With it, a row stops after its first ``eos_token_id`` (included); rows
    that finished are padded with ``eos_token_id`` while others go on, and decoding stops once
    every row has finished, so ``n <= max_new_tokens``.

    Target forward passes are counted: one ``prefill`` of the prompt, then one ``step`` per
    further token (the last token needs no pass after it). With ``return_stats=True`` returns
    ``(tokens, {"target_passes", "prefill_passes", "step_passes", "wall_time_s"})``.

    Raises:
        ValueError: a bad ``prompt`` (not ``(B, T)``), a negative ``max_new_tokens``, an
            ``eos_token_id`` outside the vocabulary.
    """
    prompt = _check_prompt(prompt)
    max_new_tokens = _check_int(max_new_tokens, "max_new_tokens", 0)
    eos = _check_eos(eos_token_id, model)
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
            finished = torch.zeros(prompt.shape[0], dtype=torch.bool, device=device)
            for i in range(max_new_tokens):
                token = last.argmax(-1)
                if eos is not None:
                    token = torch.where(finished, torch.full_like(token, eos), token)
                    finished = finished | (token == eos)
                out.append(token)
                if i + 1 < max_new_tokens and not (eos is not None and bool(finished.all())):
                    last, cache = model.step(token, cache)
                    steps += 1
                else:
                    break
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
        rounds: draft–verify rounds (the last may be a free one: the known root alone).
        accepted_lengths: tokens emitted per round (the known root + accepted draft tokens); each
            >= 1, and they sum to ``generated``.
        draft_accepted: drafted tokens (below the root) accepted per round.
        tree_sizes: nodes verified per round (0 when a round needed no verification).
        generated: new tokens returned.
        prefill_passes, verify_passes: target forward passes of each kind (the prompt's prefill;
            one ``tree_step`` per round).
        commit_passes: target passes spent committing accepted tokens: always 0, since
            ``commit_tree`` reuses the verification pass's keys/values and states (kept so that
            tables comparing with two-pass schemes have the column).
        draft_calls: draft-model forward calls (prefill, per-level tree calls, catch-up prefills).
        wall_time_s: wall-clock seconds, draft model included.
        draft_time_s, verify_time_s, commit_time_s, prefill_time_s: where that time went
            (building draft trees; the target's verification passes; committing the accepted
            paths to both caches; prefilling the prompt in both models); the rest (argmax, the
            walk down the tree, Python) is ``other_time_s``.
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
    draft_calls: int = 0
    wall_time_s: float = 0.0
    draft_time_s: float = 0.0
    verify_time_s: float = 0.0
    commit_time_s: float = 0.0
    prefill_time_s: float = 0.0
    greedy_passes: int | None = None
    greedy_wall_time_s: float | None = None
    matches_greedy: bool | None = None

    @property
    def target_passes(self) -> int:
        """All target forward passes: prefill + verify + commit (commit is 0)."""
        return self.prefill_passes + self.verify_passes + self.commit_passes

    @property
    def other_time_s(self) -> float:
        """Wall time not spent drafting, verifying, committing or prefilling."""
        return self.wall_time_s - self.draft_time_s - self.verify_time_s - self.commit_time_s - self.prefill_time_s

    @property
    def mean_accepted_length(self) -> float:
        """Tokens per round (``generated / rounds``)."""
        return self.generated / self.rounds if self.rounds else 0.0

    @property
    def passes_per_token(self) -> float:
        """Target passes per generated token (greedy decoding: 1)."""
        return self.target_passes / self.generated if self.generated else 0.0

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
            other_time_s=self.other_time_s,
            mean_accepted_length=self.mean_accepted_length,
            passes_per_token=self.passes_per_token,
            speedup_passes=self.speedup_passes,
            speedup_wall=self.speedup_wall,
        )
        return d


class _Clock:
    """Accumulates wall time into a :class:`SpeculativeStats` field (syncing CUDA around it)."""

    def __init__(self, stats: SpeculativeStats, device: torch.device) -> None:
        self.stats, self.device = stats, device

    def __call__(self, field: str) -> "_Clock":
        self.field = field
        return self

    def __enter__(self) -> None:
        _sync(self.device)
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        _sync(self.device)
        setattr(self.stats, self.field, getattr(self.stats, self.field) + time.perf_counter() - self.t0)


def _has_tree_commit(model: nn.Module) -> bool:
    return callable(getattr(model, "tree_step", None)) and callable(getattr(model, "commit_tree", None))


class _LevelDrafter:
    """Drafts with a model that has ``tree_step`` / ``commit_tree``: one batched call per tree level.

    ``pending`` holds committed tokens the draft has not consumed yet (an accepted leaf, which no
    draft call has seen); the next tree hangs them as a chain above its root, so they cost nothing
    extra. After verification the accepted path is committed from the last call's states.
    """

    def __init__(self, model: nn.Module, prompt: torch.Tensor, stats: SpeculativeStats) -> None:
        self.model, self.stats, self.device = model, stats, prompt.device
        _, self.cache = model.prefill(prompt)
        stats.draft_calls += 1
        self.pending: list[int] = []

    def build(self, root: int, levels: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        chain = self.pending + [root]
        tokens, parents = list(chain), [-1] + list(range(len(chain) - 1))
        frontier = [len(chain) - 1]
        self.states, self.n_seen = None, 0
        for k in levels:
            t = torch.tensor([tokens], dtype=torch.long, device=self.device)
            logits, self.states = self.model.tree_step(t, parents, self.cache, return_states=True)
            self.stats.draft_calls += 1
            self.n_seen = len(tokens)
            top = torch.topk(logits[0, frontier], min(k, logits.shape[-1]), dim=-1).indices.tolist()
            nxt = []
            for node, row in zip(frontier, top):
                for tok in row:
                    tokens.append(int(tok))
                    parents.append(node)
                    nxt.append(len(tokens) - 1)
            frontier = nxt
        self.tokens, self.offset = tokens, len(chain) - 1
        sub_parents = [-1] + [p - self.offset for p in parents[self.offset + 1 :]]
        return torch.tensor(tokens[self.offset :], dtype=torch.long), torch.tensor(sub_parents, dtype=torch.long)

    def commit(self, path: Sequence[int]) -> None:
        full = list(range(self.offset + 1)) + [p + self.offset for p in path[1:]]
        seen = [i for i in full if i < self.n_seen]  # a prefix of ``full``: depths increase along it
        if seen:
            self.cache = self.model.commit_tree(self.cache, self.states, seen)
        self.pending = [self.tokens[i] for i in full[len(seen) :]]


class _StepDrafter:
    """Drafts node by node with :func:`draft_tree` (any model with ``prefill`` / ``step``)."""

    def __init__(self, model: nn.Module, prompt: torch.Tensor, stats: SpeculativeStats) -> None:
        self.model, self.stats, self.device = model, stats, prompt.device
        _, self.cache = model.prefill(prompt)
        stats.draft_calls += 1

    def build(self, root: int, levels: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, parents = draft_tree(self.model, self.cache, branching=levels, root=root)
        self.stats.draft_calls += len(set(parents.tolist()) - {-1})  # one step per node with children
        self.tokens = tokens.tolist()
        return tokens, parents

    def commit(self, path: Sequence[int]) -> None:
        new = torch.tensor([[self.tokens[i] for i in path]], dtype=torch.long, device=self.device)
        _, self.cache = self.model.prefill(new, self.cache)
        self.stats.draft_calls += 1


@torch.no_grad()
def speculative_generate(
    target: nn.Module,
    draft: nn.Module,
    prompt: torch.Tensor,
    max_new_tokens: int,
    *,
    branching: Sequence[int] = (2, 2, 1),
    compare_greedy: bool = False,
    eos_token_id: int | None = None,
) -> tuple[torch.Tensor, SpeculativeStats]:
    """Greedy speculative decoding with top-k draft trees: ``(tokens (1, n), stats)``.

    The tokens are those of ``greedy_generate(target, prompt, max_new_tokens,
    eos_token_id=eos_token_id)``, exactly up to float ties in the argmax (the tree pass and single
    steps round differently); see the module docstring for one round. ``n = max_new_tokens``, or
    fewer when ``eos_token_id`` is given: decoding stops after the first one (included).
    ``target`` needs ``prefill`` / ``tree_step(..., return_states=True)`` / ``commit_tree``;
    ``draft`` needs ``prefill`` / ``step`` (and is faster with ``tree_step`` / ``commit_tree``);
    both share the vocabulary. ``branching[d]`` is the number of draft candidates per node at
    depth ``d + 1`` below the known root. Each round costs one target pass; with
    ``compare_greedy=True`` plain greedy decoding runs too, and the stats get its pass count,
    wall time and whether the tokens match.

    Raises:
        ValueError: a prompt that is not ``(1, T)``, a negative ``max_new_tokens``, bad
            ``branching``, a ``draft`` whose vocabulary differs from the target's, an
            ``eos_token_id`` outside the vocabulary.
        AttributeError: a target without ``tree_step`` / ``commit_tree``.
    """
    prompt = _check_prompt(prompt)
    if prompt.shape[0] != 1:
        raise ValueError(f"speculative_generate decodes one sequence: prompt must be (1, T), got {tuple(prompt.shape)}")
    max_new_tokens = _check_int(max_new_tokens, "max_new_tokens", 0)
    branching = _check_branching(branching)
    if not _has_tree_commit(target):
        raise AttributeError(f"the target model ({type(target).__name__}) needs tree_step(token_tree, parents, cache, "
                             f"return_states=True) and commit_tree(cache, states, path)")
    v_target, v_draft = _vocab_size(target), _vocab_size(draft)
    if v_target is not None and v_draft is not None and v_target != v_draft:
        raise ValueError(f"draft must share the target's vocabulary: the draft model has vocab_size={v_draft}, "
                         f"the target {v_target}")
    eos = _check_eos(eos_token_id, target)
    stats = SpeculativeStats()
    clock = _Clock(stats, prompt.device)
    device = prompt.device
    out: list[int] = []
    with _EvalMode(target, draft):
        _sync(device)
        t0 = time.perf_counter()
        if max_new_tokens > 0:
            with clock("prefill_time_s"):
                logits, cache = target.prefill(prompt)
                stats.prefill_passes += 1
                g = int(logits[0, -1].argmax())
                drafter = (_LevelDrafter if _has_tree_commit(draft) else _StepDrafter)(draft, prompt, stats)
        while len(out) < max_new_tokens:
            remaining = max_new_tokens - len(out)
            if remaining == 1 or g == eos:  # the root is already known: no pass needed
                new, n_draft, size = [g], 0, 0
            else:
                # A round emits at most 1 + depth tokens: keep the tree no deeper than needed.
                levels = branching[: remaining - 1]
                with clock("draft_time_s"):
                    tokens, parents = drafter.build(g, levels)
                with clock("verify_time_s"):
                    tree_logits, states = target.tree_step(tokens.to(device)[None], parents, cache, return_states=True)
                    stats.verify_passes += 1
                    choice = tree_logits[0].argmax(-1).tolist()  # (N,) the target's token after each node
                tok_list = tokens.tolist()
                children = tree_children(parents)
                node, path = 0, [0]
                while tok_list[node] != eos:
                    nxt = next((c for c in children[node] if tok_list[c] == choice[node]), None)
                    if nxt is None:
                        break
                    node = nxt
                    path.append(node)
                new = [tok_list[i] for i in path]
                n_draft, size = len(path) - 1, len(tok_list)
                g = choice[node]  # the bonus token: next round's root, free
            out.extend(new)
            stats.rounds += 1
            stats.accepted_lengths.append(len(new))
            stats.draft_accepted.append(n_draft)
            stats.tree_sizes.append(size)
            if new[-1] == eos:
                break
            if len(out) < max_new_tokens:
                with clock("commit_time_s"):
                    cache = target.commit_tree(cache, states, path)
                    drafter.commit(path)
        _sync(device)
        stats.wall_time_s = time.perf_counter() - t0
    stats.generated = len(out)
    result = torch.tensor([out], dtype=torch.long, device=device).reshape(1, len(out))
    if compare_greedy:
        ref, gstats = greedy_generate(target, prompt, max_new_tokens, eos_token_id=eos, return_stats=True)
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
