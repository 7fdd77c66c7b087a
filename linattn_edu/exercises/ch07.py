"""Checkers for Chapter 7's exercises (Linearized LLMs: groups, draft trees, exact speculative decoding).

1. :func:`check_grouped_global_state`: the exclusive global state of grouped linear attention,
   ``S_excl[i] = Σ_{j < g·(i // g)} k_j v_jᵀ`` (completed earlier groups only).
2. :func:`check_tree_attention_mask`: the attention mask of a draft tree given by its parent
   array: node ``i`` sees itself and its ancestors (and the committed prefix), nothing else.
3. :func:`check_unfold_conv_taps`: the causal convolution unfolded over a draft tree: which input
   each tap of each node reads (its ancestors, then the prefix's last tokens), checked index by
   index and by convolving through the reader's taps against step-by-step decoding.
4. :func:`check_accept_path`: one round's walk down a verified tree: the emitted path from the
   root (the previous round's bonus) and the new bonus token, the next round's root.

Each ``check_*`` function runs the reader's function on several cases, prints one line —
``✓ ...`` with the max error, or ``✗ ...`` naming the failing case, the max error and a hint —
and returns ``True`` or ``False``. Wrong answers never raise, so a notebook with unsolved
exercises still runs top to bottom; an exception raised by the reader's code is reported the
same way. Everything is float64 NumPy; torch tensors are accepted as results.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._common import report as _report, failure as _failure, as_array as _as_array
from ._common import compare as _compare, matches as _matches

__all__ = [
    "check_grouped_global_state",
    "check_tree_attention_mask",
    "check_unfold_conv_taps",
    "check_accept_path",
]


# --------------------------------------------------------------------------------------------
# Exercise 2: the tree attention mask
# --------------------------------------------------------------------------------------------


def _tree_mask(parents: np.ndarray) -> np.ndarray:
    """``mask[i, j]``: ``j == i`` or ``j`` an ancestor of ``i`` (row ``i`` = row ``parents[i]`` + diagonal)."""
    n = len(parents)
    mask = np.zeros((n, n), dtype=bool)
    for i in range(n):
        if parents[i] >= 0:
            mask[i] = mask[parents[i]]
        mask[i, i] = True
    return mask


def _tree_cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(70)
    random_tree = np.array([-1] + [int(rng.integers(-1, i)) for i in range(1, 15)], dtype=np.int64)
    binary = np.array([-1] + [(i - 1) // 2 for i in range(1, 15)], dtype=np.int64)
    return [
        ("a chain of 5 nodes, parents = [-1, 0, 1, 2, 3]", np.array([-1, 0, 1, 2, 3], dtype=np.int64)),
        ("a star of 4 roots, parents = [-1, -1, -1, -1]", np.array([-1, -1, -1, -1], dtype=np.int64)),
        ("a full binary tree of depth 3 (15 nodes, breadth-first)", binary),
        (f"a random tree of 15 nodes, parents = {random_tree.tolist()}", random_tree),
        ("a single node, parents = [-1]", np.array([-1], dtype=np.int64)),
    ]


def check_tree_attention_mask(fn: Callable[[np.ndarray], Any], *, quiet: bool = False) -> bool:
    """Check ``fn(parents) -> mask``: the attention mask of a draft tree, ``(N, N)`` bool.

    ``parents``: a 1-D int64 NumPy array; ``parents[i]`` is the parent of draft node ``i``, or
    ``-1`` when node ``i`` is a child of the committed prefix; parents come first
    (``parents[i] < i``). ``mask[i, j]`` (row = the query node, column = the key node) is True
    iff ``j == i`` or ``j`` is an ancestor of ``i``: each candidate attends to the prefix (not part
    of this mask), its own ancestors and itself — never to a sibling or another branch. Cases: a
    chain (the mask is lower-triangular), a star of roots (the identity), a full binary tree of
    depth 3, a random tree of 15 nodes and a single node. A 0/1 integer array is accepted too.
    Hints recognize the transposed mask, a missing diagonal, only the direct parent, the plain
    causal mask and siblings made visible.
    """
    name = "tree_attention_mask"
    cases = _tree_cases()
    for case, parents in cases:
        expected = _tree_mask(parents)
        try:
            got = fn(parents.copy())
        except Exception as err:  # noqa: BLE001 - report whatever the reader's code raised
            return _failure(name, err, quiet)
        problem, _ = _compare(got, expected.astype(np.float64), rtol=0.0)
        if problem is not None:
            return _report(False, name, f"{case}: {_mask_problem(got, expected, problem)}. "
                           f"Hint: {_tree_hint(parents, got, expected)}", quiet)
    return _report(True, name, f"{len(cases)} trees (chain, star, binary of depth 3, random N = 15, single node): "
                   "every node sees exactly itself and its ancestors, max |err| = 0", quiet)


def _mask_problem(got: Any, expected: np.ndarray, problem: str) -> str:
    """The compare message, or for a mask of the right shape: how many entries are wrong."""
    try:
        arr = _as_array(got)
    except (TypeError, ValueError):
        return problem
    if arr.shape != expected.shape or not np.all(np.isfinite(arr)):
        return problem
    wrong = np.argwhere((arr != 0) != expected)
    i, j = (int(v) for v in wrong[0]) if len(wrong) else (0, 0)
    first = f"; first at mask[{i}, {j}] = {bool(arr[i, j])}, expected {bool(expected[i, j])}" if len(wrong) else ""
    return f"{len(wrong)} of {arr.size} entries wrong{first}, max |err| = {1 if len(wrong) else 0}"


def _tree_hint(parents: np.ndarray, got: Any, expected: np.ndarray) -> str:
    try:
        arr = _as_array(got)
    except (TypeError, ValueError):
        return "return an (N, N) boolean array"
    n = len(parents)
    if arr.shape != (n, n):
        return f"one row per query node and one column per key node: shape ({n}, {n})"
    if np.any(np.isneginf(arr)) and np.array_equal(arr == 0, expected):
        return "return a boolean mask (True = may attend), not an additive 0 / -inf bias"
    eye = np.eye(n, dtype=bool)
    parent_only = eye.copy()
    for i in range(n):
        if parents[i] >= 0:
            parent_only[i, parents[i]] = True
    siblings = expected | (parents[:, None] == parents[None, :])
    siblings_before = siblings & np.tril(np.ones((n, n), dtype=bool))
    variants = {
        "transposed: mask[i, j] is row = the query node i, column = the key node j; yours has True where "
        "i is an ancestor of j (a node would see its descendants, the future)": expected.T,
        "add the diagonal: each node attends to itself (mask[i, i] = True)": expected & ~eye,
        "transposed and without the diagonal: mask[i, j] is True for j == i or j an ancestor of i": expected.T & ~eye,
        "all ancestors, not only the direct parent: follow parents[i], parents[parents[i]], … up to -1 "
        "(row i = row parents[i] plus the diagonal)": parent_only,
        "all ancestors, not only the direct parent, and the diagonal too": parent_only & ~eye,
        "that is the plain causal mask (j <= i): in a tree an earlier node may sit on another branch "
        "(a sibling or a cousin); only ancestors and the node itself are visible":
            np.tril(np.ones((n, n), dtype=bool)),
        "siblings are visible in yours: nodes with the same parent are alternative continuations, "
        "they must not see each other; only ancestors and the node itself": siblings,
        "siblings are visible in yours (earlier ones): nodes with the same parent are alternative "
        "continuations, they must not see each other": siblings_before,
    }
    for hint, wrong in variants.items():
        if not np.array_equal(wrong, expected) and _matches(arr, wrong.astype(np.float64)):
            return hint
    seen = arr != 0
    if np.any(seen & ~expected):
        extra = np.argwhere(seen & ~expected)
        i, j = (int(v) for v in extra[0])
        if expected[j, i]:
            what = "its descendant (the future of its branch)"
        elif parents[i] == parents[j]:
            what = "its sibling (an alternative continuation)"
        else:
            what = "on another branch (a cousin)"
        return f"node {i} sees node {j}, {what}; mask[i, j] is True only for j == i and the ancestors of i"
    missing = np.argwhere(expected & ~seen)
    i, j = (int(v) for v in missing[0])
    return (f"node {i} misses node {j}: mask[i, j] is True for j == i and every ancestor of i "
            "(row i = row parents[i] plus the diagonal, since parents come first)")


# --------------------------------------------------------------------------------------------
# Exercise 1: the exclusive global state over completed groups
# --------------------------------------------------------------------------------------------


def _prefix_states(k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``P[m] = Σ_{j < m} k_j v_jᵀ`` for ``m = 0 … T``: ``(T + 1, D, Dv)``."""
    outer = k[:, :, None] * v[:, None, :]
    return np.concatenate([np.zeros((1,) + outer.shape[1:]), np.cumsum(outer, axis=0)], axis=0)


def _group_state(k: np.ndarray, v: np.ndarray, g: int, shift: int = 0) -> np.ndarray:
    """``S[i] = P[clip(g·(i // g + shift), 0, T)]`` (``shift = 0``: the right answer)."""
    t_len = len(k)
    prefix = _prefix_states(k, v)
    idx = np.clip(g * (np.arange(t_len) // g + shift), 0, t_len)
    return prefix[idx]


def check_grouped_global_state(fn: Callable[..., Any], *, quiet: bool = False) -> bool:
    """Check ``fn(k, v, group_size) -> S_excl``: the global state of grouped linear attention.

    ``k``: ``(T, D)``, ``v``: ``(T, Dv)`` float64 (features already applied); ``group_size``: the
    int ``g``. ``S_excl``: ``(T, D, Dv)`` with ``S_excl[i] = Σ_{j < g·(i // g)} k_j v_jᵀ``: position
    ``i`` sees, through linear attention, every *completed* earlier group and nothing of its own
    group (that part is the local, quadratic branch). Cases: ``T`` a multiple of ``g`` and not,
    ``g = 1`` (the exclusive prefix ``Σ_{j<i}``) and ``g >= T`` (all zeros), with ``D != Dv``.
    Hints recognize the inclusive prefix ``Σ_{j<=i}``, the token-level exclusive prefix
    ``Σ_{j<i}``, the current group included, one group too few, only the previous group,
    ``v kᵀ`` in place of ``k vᵀ`` and one state per group in place of one per position.
    """
    name = "grouped_global_state"
    rng = np.random.default_rng(73)
    cases = [("T = 8, g = 4 (T a multiple of g), D = 3, Dv = 2", 8, 4, 3, 2),
             ("T = 10, g = 4 (the last group is partial), D = 2, Dv = 3", 10, 4, 2, 3),
             ("T = 5, g = 1 (every token its own group), D = 3, Dv = 2", 5, 1, 3, 2),
             ("T = 6, g = 8 (g >= T: no group completes before the end, all zeros), D = 2, Dv = 2", 6, 8, 2, 2),
             ("T = 12, g = 3, D = 4, Dv = 1", 12, 3, 4, 1)]
    worst = 0.0
    for case, t, g, d, dv in cases:
        k, v = rng.standard_normal((t, d)), rng.standard_normal((t, dv))
        expected = _group_state(k, v, g)
        try:
            got = fn(k.copy(), v.copy(), g)
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        if isinstance(got, (tuple, list)):
            return _report(False, name, f"{case}: return S_excl alone, an array (T, D, Dv), not a "
                           f"{type(got).__name__}", quiet)
        problem, err = _compare(got, expected)
        if problem is not None:
            return _report(False, name, f"{case}: {problem}. Hint: {_state_hint(k, v, g, got)}", quiet)
        worst = max(worst, err)
    return _report(True, name, f"{len(cases)} cases (T a multiple of g and not, g = 1, g >= T), "
                   f"max |err| = {worst:.3g}", quiet)


def _state_hint(k: np.ndarray, v: np.ndarray, g: int, got: Any) -> str:
    try:
        arr = _as_array(got)
    except (TypeError, ValueError):
        return "return an array of shape (T, D, Dv)"
    t, d = k.shape
    dv = v.shape[1]
    prefix = _prefix_states(k, v)
    expected = _group_state(k, v, g)
    if arr.shape != expected.shape:
        if arr.shape == (t, dv, d) and _matches(arr, np.swapaxes(expected, 1, 2)):
            return "the state is Σ k_j v_jᵀ, shape (D, Dv): k_j is the column, v_j the row (yours is v kᵀ)"
        n_groups = -(-t // g)
        if arr.ndim == 3 and arr.shape[1:] == (d, dv) and arr.shape[0] in (n_groups, t // g, n_groups + 1):
            return ("one state per position, not per group: position i reads the state of its group, "
                    "S_excl[i] = Σ_{j < g·(i // g)} k_j v_jᵀ (shape (T, D, Dv))")
        return f"one (D, Dv) state per position: shape ({t}, {d}, {dv})"
    prev_only = prefix[np.clip(g * (np.arange(t) // g), 0, t)] - prefix[np.clip(g * (np.arange(t) // g - 1), 0, t)]
    own_group_to_i = prefix[np.arange(t) + 1] - prefix[g * (np.arange(t) // g)]
    variants = {
        "inclusive: yours is Σ_{j<=i}, it counts the current group (and token i itself); only completed "
        "earlier groups count, j < g·(i // g)": prefix[1:],
        "yours is the token-level exclusive prefix Σ_{j<i}: it still counts the earlier tokens of the "
        "current group, which the local branch handles; stop at the group's start, j < g·(i // g)": prefix[:-1],
        "yours includes the whole current group (even its future tokens j > i!): only completed earlier "
        "groups count, j < g·(i // g)": _group_state(k, v, g, shift=1),
        "off by one group: the group that just completed counts too, j < g·(i // g), not j < g·(i // g - 1)":
            _group_state(k, v, g, shift=-1),
        "sum over all completed earlier groups, not only the previous one (an exclusive prefix sum of the "
        "per-group KᵀV)": prev_only,
        "that is the current group up to i (the local part): the global state is the other part, the "
        "completed earlier groups j < g·(i // g)": own_group_to_i,
    }
    for hint, wrong in variants.items():
        if not np.allclose(wrong, expected) and _matches(arr, wrong):
            return hint
    return ("S_excl[i] = Σ_{j < g·(i // g)} k_j v_jᵀ: a cumulative sum of the outer products k_j v_jᵀ, "
            "read at the start of position i's group")



# --------------------------------------------------------------------------------------------
# Exercise 3: the causal convolution unfolded over a draft tree
# --------------------------------------------------------------------------------------------


def _unfold(parents: np.ndarray, prefix_len: int, kernel_size: int) -> np.ndarray:
    """``idx[i, s]``: the input that tap ``s`` (``s`` steps back) of node ``i`` reads, in
    ``[prefix 0..P-1 | nodes P..P+N-1]``; ``-1`` before the start (zero padding)."""
    n = len(parents)
    idx = np.full((n, kernel_size), -1, dtype=np.int64)
    for i in range(n):
        path = []
        j = i
        while j >= 0:
            path.append(prefix_len + j)
            j = int(parents[j])
        seq = path + list(range(prefix_len - 1, -1, -1))
        take = seq[:kernel_size]
        idx[i, :len(take)] = take
    return idx


def _unfold_cases() -> list[tuple[str, np.ndarray, int, int]]:
    rng = np.random.default_rng(75)
    random_tree = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, 12)], dtype=np.int64)
    return [
        ("the chapter's tree, parents = [-1, 0, 0, 1, 1, 2, 3, 5], P = 5, K = 4",
         np.array([-1, 0, 0, 1, 1, 2, 3, 5], dtype=np.int64), 5, 4),
        ("a chain of 5 nodes, P = 3, K = 3 (a chain unfolds to a plain causal conv)",
         np.array([-1, 0, 1, 2, 3], dtype=np.int64), 3, 3),
        ("a full binary tree of 7 nodes, P = 1, K = 5 (taps run past the prefix: -1)",
         np.array([-1, 0, 0, 1, 1, 2, 2], dtype=np.int64), 1, 5),
        ("a star of 4 children of the prefix, parents = [-1, -1, -1, -1], P = 4, K = 3",
         np.array([-1, -1, -1, -1], dtype=np.int64), 4, 3),
        (f"a random tree of 12 nodes, parents = {random_tree.tolist()}, P = 6, K = 6", random_tree, 6, 6),
        ("a single node, P = 0 (an empty prefix), K = 3", np.array([-1], dtype=np.int64), 0, 3),
        ("K = 1 (the node alone), P = 2", np.array([-1, 0, 0], dtype=np.int64), 2, 1),
    ]


def _conv_with(idx: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``y[i] = Σ_s w[:, K-1-s] · x[idx[i, s]]`` (``x[-1]`` read as zeros): ``(N, C)``."""
    padded = np.concatenate([x, np.zeros((1, x.shape[1]))])  # index -1 -> the zero row
    k = idx.shape[1]
    return sum(w[:, k - 1 - s] * padded[idx[:, s]] for s in range(k))


def _step_conv(parents: np.ndarray, prefix_len: int, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The conv output of every node by decoding its root path alone (prefix + ancestors + node)."""
    k = w.shape[1]
    out = []
    for i in range(len(parents)):
        path, j = [], i
        while j >= 0:
            path.append(prefix_len + j)
            j = int(parents[j])
        seq = np.concatenate([np.zeros((k - 1, x.shape[1])), x[:prefix_len], x[path[::-1]]])
        out.append(sum(w[:, s] * seq[len(seq) - k + s] for s in range(k)))
    return np.array(out)


def check_unfold_conv_taps(fn: Callable[[np.ndarray, int, int], Any], *, quiet: bool = False) -> bool:
    """Check ``fn(parents, prefix_len, kernel_size) -> idx``: a causal conv's taps over a draft tree.

    ``parents``: ``(N,)`` int64, ``parents[i] < i`` or ``-1`` (a child of the committed prefix);
    ``prefix_len``: ``P`` committed tokens; ``kernel_size``: ``K`` causal taps. The inputs are
    numbered ``[prefix 0..P-1 | tree nodes P..P+N-1]``. Return ``idx`` ``(N, K)`` int:
    ``idx[i, s]`` is the input that node ``i``'s tap ``s`` steps back reads: ``s = 0`` the node
    itself (``P + i``), then its parent, grandparent, …, and once the root is passed the prefix's
    last tokens ``P-1, P-2, …``; ``-1`` where the path runs out before position 0 (zero padding).
    Node ``i``'s output is then ``y_i = Σ_s w[:, K-1-s] · x[idx[i, s]]``, exactly what decoding its
    root path token by token gives. Cases: the chapter's tree, a chain, a binary tree with a
    one-token prefix, a star, a random tree, an empty prefix and ``K = 1``.

    Beyond the indices, the checker convolves random inputs through *your* ``idx`` and compares
    each node with step-by-step decoding of its root path (the max difference is reported).
    Hints recognize the flat causal conv over the node order (siblings leak in), reversed taps,
    node numbers without the ``P`` offset, a prefix that is not continued, and a prefix read
    from its start instead of its end.
    """
    name = "unfold_conv_taps"
    rng = np.random.default_rng(76)
    cases = _unfold_cases()
    for case, parents, p, k in cases:
        expected = _unfold(parents, p, k)
        try:
            got = fn(parents.copy(), p, k)
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        problem, _ = _compare(got, expected.astype(np.float64), rtol=0.0)
        if problem is not None:
            extra = ""
            arr = _int_index(got, expected.shape, p + len(parents))
            if arr is not None:
                x = rng.standard_normal((p + len(parents), 3))
                w = rng.standard_normal((3, k))
                diff = np.abs(_conv_with(arr, x, w) - _step_conv(parents, p, x, w)).max(axis=1)
                bad = np.flatnonzero(diff > 1e-12)
                if len(bad):
                    extra = (f" Convolving through your taps, node {int(bad[0])}'s output differs from decoding "
                             f"its root path by {diff[bad[0]]:.3g}.")
            return _report(False, name, f"{case}: {_index_problem(got, expected, problem)}.{extra} "
                           f"Hint: {_unfold_hint(parents, p, k, got, expected)}", quiet)
    worst = 0.0
    for case, parents, p, k in cases:  # the convolution through the (right) taps, node by node
        x, w = rng.standard_normal((p + len(parents), 3)), rng.standard_normal((3, k))
        worst = max(worst, float(np.abs(_conv_with(expected := _unfold(parents, p, k), x, w)
                                        - _step_conv(parents, p, x, w)).max()))
    return _report(True, name, f"{len(cases)} trees (the chapter's, chain, binary, star, random, empty prefix, "
                   f"K = 1): every tap right; convolving through them equals decoding each root path, "
                   f"max |err| = {worst:.3g}", quiet)


def _int_index(got: Any, shape: tuple[int, int], n_inputs: int) -> np.ndarray | None:
    """The reader's taps as an int array if they have the right shape and valid entries, else None."""
    try:
        arr = _as_array(got)
    except (TypeError, ValueError):
        return None
    if arr.shape != shape or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        return None
    arr = arr.astype(np.int64)
    return arr if np.all((arr >= -1) & (arr < n_inputs)) else None


def _index_problem(got: Any, expected: np.ndarray, problem: str) -> str:
    try:
        arr = _as_array(got)
    except (TypeError, ValueError):
        return problem
    if arr.shape != expected.shape or not np.all(np.isfinite(arr)):
        return problem
    wrong = np.argwhere(arr != expected)
    i, s = (int(v) for v in wrong[0])
    return (f"{len(wrong)} of {arr.size} taps wrong; first at idx[{i}, {s}] = {arr[i, s]:g}, expected "
            f"{expected[i, s]}, max |err| = {np.abs(arr - expected).max():g}")


def _unfold_hint(parents: np.ndarray, p: int, k: int, got: Any, expected: np.ndarray) -> str:
    try:
        arr = _as_array(got)
    except (TypeError, ValueError):
        return "return an (N, K) integer array"
    n = len(parents)
    if arr.shape != (n, k):
        if arr.shape == (k, n):
            return f"one row per node, one column per tap: shape ({n}, {k}), yours is transposed"
        return f"one row per node and one column per tap: shape ({n}, {k})"
    flat = np.array([[p + i - s if p + i - s >= 0 else -1 for s in range(k)] for i in range(n)])
    no_offset = np.where(expected >= p, expected - p, expected)
    no_offset = np.where(expected >= p, no_offset, -1) if p else no_offset
    stop_at_root = np.where(expected >= p, expected, -1)
    from_start = expected.copy()
    for i in range(n):
        pre = [s for s in range(k) if 0 <= expected[i, s] < p]
        for r, s in enumerate(pre):
            from_start[i, s] = r
    variants = {
        "that is the plain causal conv over the node order (P + i - s): node i then reads earlier nodes "
        "that are its siblings or cousins; follow parents[i], parents[parents[i]], … instead": flat,
        "your taps are reversed: column s is the input s steps back, column 0 the node itself": expected[:, ::-1],
        f"tree nodes are inputs P + i (after the {p} prefix tokens), not i": no_offset,
        "after the root the taps continue into the committed prefix (its last tokens P-1, P-2, …), "
        "exactly as when the path is decoded after the prefix": stop_at_root,
        "the prefix is read backwards from its last token: P-1 right after the root, then P-2, …": from_start,
    }
    for hint, wrong in variants.items():
        if not np.array_equal(wrong, expected) and _matches(arr, wrong.astype(np.float64)):
            return hint
    return ("idx[i, s]: walk up from node i (P + i, then P + parents[i], …); when you pass the root "
            "continue with P-1, P-2, …; pad with -1")


# --------------------------------------------------------------------------------------------
# Exercise 4: walking the verified tree
# --------------------------------------------------------------------------------------------


def _walk(parents: np.ndarray, tokens: np.ndarray, choice: np.ndarray) -> tuple[list[int], int]:
    node, path = 0, [0]
    while True:
        kids = [c for c in range(len(parents)) if parents[c] == node and tokens[c] == choice[node]]
        if not kids:
            return path, int(choice[node])
        node = kids[0]
        path.append(node)


def _walk_cases() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    def arr(values):
        return np.array(values, dtype=np.int64)

    chapter = arr([-1, 0, 0, 1, 1, 2, 3, 5])
    cases = [
        ("the chapter's tree, the path 0 -> 1 -> 3 -> 6 accepted",
         chapter, arr([7, 4, 9, 2, 5, 1, 8, 3]), arr([4, 2, 6, 8, 0, 0, 11, 0])),
        ("the chapter's tree, the target takes the second child of the root: 0 -> 2 -> 5 -> 7",
         chapter, arr([7, 4, 9, 2, 5, 1, 8, 3]), arr([9, 2, 1, 8, 0, 3, 11, 12])),
        ("the chapter's tree, a later node matches but its parent was rejected (nothing below the root)",
         chapter, arr([7, 4, 9, 2, 5, 1, 8, 3]), arr([6, 2, 1, 8, 0, 3, 11, 12])),
        ("a root alone (N = 1)", arr([-1]), arr([5]), arr([3])),
        ("a chain of 4, all accepted", arr([-1, 0, 1, 2]), arr([1, 2, 3, 4]), arr([2, 3, 4, 9])),
        ("a chain of 4, the third rejected although the fourth would match",
         arr([-1, 0, 1, 2]), arr([1, 2, 3, 4]), arr([2, 5, 4, 9])),
    ]
    rng = np.random.default_rng(77)
    parents = arr([-1, 0, 0, 0, 1, 1, 2, 2, 3, 4, 6, 7])
    tokens = np.zeros(len(parents), dtype=np.int64)
    for node in range(len(parents)):  # siblings get distinct tokens (a draft's top-k)
        kids = [c for c in range(len(parents)) if parents[c] == node]
        tokens[kids] = rng.choice(20, size=len(kids), replace=False)
    tokens[0] = 3
    choice = rng.integers(0, 20, size=len(parents))
    choice[0], choice[2], choice[7] = tokens[2], tokens[7], tokens[11]  # accept 0 -> 2 -> 7 -> 11
    choice[1] = tokens[4]  # a match below a rejected node
    cases.append((f"a random tree of 12 nodes, parents = {parents.tolist()}", parents, tokens, choice))
    return cases


def _as_path(got: Any) -> tuple[list[int], int] | str:
    if got is None:
        return "your function returned None (a missing `return`?)"
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"return a pair (path, bonus), got {type(got).__name__}"
    path, bonus = got
    try:
        if hasattr(path, "detach"):
            path = path.detach().cpu().numpy()
        path_list = [int(v) for v in np.asarray(path).reshape(-1)]
        if hasattr(bonus, "detach"):
            bonus = bonus.detach().cpu().numpy()
        bonus_arr = np.asarray(bonus)
        if bonus_arr.size != 1:
            return f"bonus is one token id, an int; got shape {bonus_arr.shape}"
        bonus_int = int(bonus_arr.reshape(()))
    except (TypeError, ValueError) as err:
        return f"path must be a list of node indices and bonus an int ({err})"
    return path_list, bonus_int


def check_accept_path(fn: Callable[[np.ndarray, np.ndarray, np.ndarray], Any], *, quiet: bool = False) -> bool:
    """Check ``fn(parents, tokens, choice) -> (path, bonus)``: one round's walk down a verified tree.

    ``parents``: ``(N,)`` int64, ``parents[0] = -1``: node 0 is the root, the token the previous
    round already fixed (its bonus), and every other node has a parent ``< i``; ``tokens``:
    ``(N,)`` the tree's token ids (siblings distinct); ``choice``: ``(N,)`` the target's greedy
    token after each node's root path (the argmax of its tree-verification logits). Return
    ``path``, the node indices the round emits (``[0, ...]``: from the root, each next node the
    child of the previous whose token equals ``choice`` of the previous; stop when no child
    matches), and ``bonus = choice[path[-1]]``, the target's own token after the path. The
    round emits ``tokens[path]``, ``len(path)`` tokens; the bonus is *not* emitted now: it is the
    next round's root, known without another pass. Cases: the chapter's tree with three target
    behaviours, a lone root, chains accepted in full and cut short, and a random tree.
    Hints recognize the bonus appended to the path, the root left out, ``choice`` of the child
    compared instead of the parent's, matches below a rejected node accepted, and only the
    first child examined.
    """
    name = "accept_path"
    cases = _walk_cases()
    for case, parents, tokens, choice in cases:
        exp_path, exp_bonus = _walk(parents, tokens, choice)
        try:
            got = fn(parents.copy(), tokens.copy(), choice.copy())
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        value = _as_path(got)
        if isinstance(value, str):
            return _report(False, name, f"{case}: {value}", quiet)
        path, bonus = value
        if path != exp_path or bonus != exp_bonus:
            return _report(False, name, f"{case}: got path {path} and bonus {bonus}, expected path {exp_path} "
                           f"and bonus {exp_bonus}, max |err| = {1}. "
                           f"Hint: {_walk_hint(parents, tokens, choice, path, bonus)}", quiet)
    return _report(True, name, f"{len(cases)} trees (the chapter's three ways, a lone root, chains, random): "
                   "every path and bonus right, max |err| = 0", quiet)


def _walk_hint(parents: np.ndarray, tokens: np.ndarray, choice: np.ndarray, path: list[int], bonus: int) -> str:
    exp_path, exp_bonus = _walk(parents, tokens, choice)
    if path and path[0] != 0 and path == exp_path[1:]:
        return "the path starts at the root, node 0: it is emitted this round (the previous round's bonus)"
    if path == exp_path + [-1] or (len(path) == len(exp_path) + 1 and path[:-1] == exp_path):
        return "the bonus is not a node of the tree and is not part of the path: return it separately"
    if path == exp_path and bonus != exp_bonus:
        if bonus == int(tokens[path[-1]]):
            return "bonus = choice[path[-1]], the target's token *after* the last accepted node, not that node's token"
        return "bonus = choice[path[-1]]: the target's greedy token after the last accepted node"
    first_only, node = [0], 0
    while True:
        kids = [c for c in range(len(parents)) if parents[c] == node]
        if not kids or tokens[kids[0]] != choice[node]:
            break
        node = kids[0]
        first_only.append(node)
    if path == first_only and first_only != exp_path:
        return "look at every child of the current node, not only the first: any sibling may carry the target's token"
    # the child compared with its own choice, not its parent's
    node, wrong = 0, [0]
    while True:
        kids = [c for c in range(len(parents)) if parents[c] == node and tokens[c] == choice[c]]
        if not kids:
            break
        node = kids[0]
        wrong.append(node)
    if path == wrong and wrong != exp_path:
        return ("a child c is accepted when tokens[c] == choice[parents[c]]: the parent's logits predict the "
                "child's token; choice[c] predicts the token after c")
    matched = [0] + [c for c in range(1, len(parents)) if tokens[c] == choice[parents[c]]]
    if sorted(path) == matched and matched != exp_path:
        return ("only a path counts: a child that matches below a rejected node follows a prefix the target "
                "refused; walk down from the root and stop at the first node with no matching child")
    return ("start at node 0; while some child c of the current node has tokens[c] == choice[node], move to c; "
            "return the visited nodes and choice of the last one")
