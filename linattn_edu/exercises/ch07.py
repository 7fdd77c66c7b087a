"""Checkers for Chapter 7's exercises (Linearized LLMs: causal augmentation, groups, speculative trees).

1. :func:`check_tree_attention_mask`: the attention mask of a draft tree given by its parent
   array: node ``i`` sees itself and its ancestors (and the committed prefix), nothing else.
2. :func:`check_causal_kernel_mask`: zero the future taps of a centered depthwise kernel; the
   checker then convolves with the reader's kernel and verifies that no future token leaks.
3. :func:`check_grouped_global_state`: the exclusive global state of grouped linear attention,
   ``S_excl[i] = Σ_{j < g·(i // g)} k_j v_jᵀ`` (completed earlier groups only).
4. :func:`check_accepted_length`: how many tokens one greedy verification step commits along a
   draft path: the leading run of matches plus the target's bonus token.

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
    "check_tree_attention_mask",
    "check_causal_kernel_mask",
    "check_grouped_global_state",
    "check_accepted_length",
]


# --------------------------------------------------------------------------------------------
# Exercise 1: the tree attention mask
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
# Exercise 2: masking the future taps of a centered kernel
# --------------------------------------------------------------------------------------------


def _centered_conv(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``y[t, c] = Σ_k w[c, k] · x[t - K//2 + k, c]``, zero-padded on both sides; ``x`` is ``(T, C)``."""
    t_len, k_len = x.shape[0], w.shape[1]
    half = k_len // 2
    padded = np.concatenate([np.zeros((half, x.shape[1])), x, np.zeros((half, x.shape[1]))], axis=0)
    return sum(w[:, k] * padded[k:k + t_len] for k in range(k_len))


def _leak(w: np.ndarray, rng: np.random.Generator) -> tuple[float, int, int]:
    """Convolve with ``w``, change the tokens from ``t0`` on, return (max change of outputs < t0, t0, first t)."""
    c, k = w.shape
    t_len = k + 6
    t0 = t_len // 2
    x = rng.standard_normal((t_len, c))
    x2 = x.copy()
    x2[t0:] = rng.standard_normal((t_len - t0, c))
    diff = np.abs(_centered_conv(x2, w) - _centered_conv(x, w))[:t0]
    changed = np.argwhere(diff > 1e-12)
    return float(diff.max(initial=0.0)), t0, int(changed[0, 0]) if len(changed) else -1


def check_causal_kernel_mask(fn: Callable[[np.ndarray], Any], *, quiet: bool = False) -> bool:
    """Check ``fn(weight) -> weight_causal``: a centered depthwise kernel with its future taps zeroed.

    ``weight``: ``(C, K)`` float64 with ``K`` odd, the kernel of a *centered* convolution
    ``y[t, c] = Σ_k weight[c, k] · x[t - K//2 + k, c]``: tap ``K//2`` is the current token, taps
    ``< K//2`` the past, taps ``> K//2`` the future. Return the same shape with taps ``> K//2``
    set to 0 and every other tap unchanged (what the official code does to its 63-tap kernel; the
    result is a ``K//2 + 1``-tap causal convolution). Cases: ``K`` = 5, 3, 1 and 63.

    Then, for every case, the checker itself convolves random tokens with *your* kernel, changes
    the tokens from ``t0`` on and verifies that the outputs before ``t0`` do not move (no future
    token leaks into the past). Hints recognize the past zeroed instead of the future, the center
    tap zeroed too, only the center kept, a kernel returned unchanged and a future tap left over.
    """
    name = "causal_kernel_mask"
    rng = np.random.default_rng(71)
    cases = [("C = 4, K = 5", 4, 5), ("C = 3, K = 3", 3, 3), ("C = 2, K = 1 (no future tap)", 2, 1),
             ("C = 2, K = 63 (the official width)", 2, 63)]
    worst = 0.0
    for case, c, k in cases:
        w = rng.standard_normal((c, k))
        expected = w.copy()
        expected[:, k // 2 + 1:] = 0.0
        try:
            got = fn(w.copy())
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        problem, err = _compare(got, expected)
        leak = _leak(_as_array(got), np.random.default_rng(72)) if _finite_like(got, w) else None
        if problem is not None:
            leak_note = ""
            if leak is not None:
                size, t0, first = leak
                leak_note = (f" With your kernel, changing the tokens from t = {t0} on changes output t = {first} "
                             f"(by {size:.3g}): the future leaks into the past." if size > 1e-12 else
                             " (Your kernel does not leak the future, but it is not the masked kernel.)")
            return _report(False, name, f"{case}: {problem}.{leak_note} Hint: {_kernel_hint(w, got)}", quiet)
        worst = max(worst, err)
        if leak[0] > 1e-12:  # cannot happen for a right kernel; kept as the checker's own guard
            return _report(False, name, f"{case}: changing the tokens from t = {leak[1]} on changes output "
                           f"t = {leak[2]}: the future leaks", quiet)
    return _report(True, name, f"{len(cases)} kernels (K = 5, 3, 1, 63), max |err| = {worst:.3g}; leak test "
                   "passed: convolving with your kernel, changing the tokens from t0 on left every output "
                   "before t0 unchanged", quiet)


def _finite_like(got: Any, like: np.ndarray) -> bool:
    """Whether ``got`` is a finite array of ``like``'s shape (so the leak test can run on it)."""
    try:
        arr = _as_array(got)
    except (TypeError, ValueError):
        return False
    return arr.shape == like.shape and bool(np.all(np.isfinite(arr)))


def _kernel_hint(w: np.ndarray, got: Any) -> str:
    try:
        arr = _as_array(got)
    except (TypeError, ValueError):
        return "return an array of the kernel's shape (C, K)"
    c, k = w.shape
    h = k // 2
    if arr.shape != w.shape:
        if arr.shape == (c, h + 1):
            return (f"keep the shape (C, K) = {w.shape}: zero the future taps in place of cutting them off "
                    "(the centered convolution still needs K taps)")
        return f"return the kernel's shape (C, K) = {w.shape}: zero taps, do not drop them"
    taps = np.arange(k)

    def keep(cond: np.ndarray) -> np.ndarray:
        return np.where(cond, w, 0.0)

    variants = {
        "nothing was zeroed: taps > K//2 still read the future (y[t] uses x[t+1 … t+K//2])": w,
        "you zeroed the past (taps < K//2); the future taps are those > K//2, which multiply "
        "x[t+1 … t+K//2]": keep(taps >= h),
        "you zeroed the past and kept the future: tap index grows with time, so taps > K//2 are the "
        "future and must be zeroed": keep(taps > h),
        f"keep the center tap K//2 = {h}: it multiplies the current token x[t], which output t may read":
            keep(taps < h),
        "keep the past taps too (< K//2): only taps > K//2 read the future": keep(taps == h),
        "zero only the future taps and keep the values of the others (multiply by a 0/1 mask, do not "
        "replace the kept taps by the mask)": (taps <= h).astype(np.float64) * np.ones_like(w),
        "a future tap is left over: zero every tap k > K//2, from K//2 + 1 to K - 1 "
        "(w[:, K//2 + 1:] = 0)": keep(taps <= h + 1),
        "the kernel is flipped: do not reverse the taps, only zero those > K//2": keep(taps <= h)[:, ::-1],
        "zero the taps (columns, axis 1), not the channels (rows)": np.where(np.arange(c)[:, None] <= c // 2, w, 0.0),
    }
    for hint, wrong in variants.items():
        if not np.allclose(wrong, keep(taps <= h)) and _matches(arr, wrong):
            return hint
    return "weight_causal[:, k] = weight[:, k] for k <= K//2 and 0 for k > K//2 (the future taps)"


# --------------------------------------------------------------------------------------------
# Exercise 3: the exclusive global state over completed groups
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
# Exercise 4: the number of tokens one verification step commits
# --------------------------------------------------------------------------------------------


def _leading(draft: np.ndarray, target: np.ndarray) -> int:
    n = 0
    while n < len(draft) and draft[n] == target[n]:
        n += 1
    return n


def _accept_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    def arr(values):
        return np.array(values, dtype=np.int64)

    cases = [
        ("the first 2 of 6 accepted, later ones match again: draft [4, 3, 5, 6, 2, 9], "
         "target [4, 3, 1, 6, 2, 9, 8]", arr([4, 3, 5, 6, 2, 9]), arr([4, 3, 1, 6, 2, 9, 8])),
        ("all 4 accepted: draft [5, 9, 2, 7], target [5, 9, 2, 7, 3]", arr([5, 9, 2, 7]), arr([5, 9, 2, 7, 3])),
        ("none accepted: draft [4, 8, 1], target [6, 8, 1, 2]", arr([4, 8, 1]), arr([6, 8, 1, 2])),
        ("an empty draft (L = 0): draft [], target [7]", arr([]), arr([7])),
        ("L = 1, accepted: draft [2], target [2, 5]", arr([2]), arr([2, 5])),
    ]
    rng = np.random.default_rng(74)
    for run, length in ((5, 9), (0, 6)):
        target = rng.integers(0, 20, size=length + 1)
        draft = target[:length].copy()
        if run < length:
            draft[run] = (target[run] + 1 + rng.integers(0, 19)) % 20
        cases.append((f"random, L = {length}: draft {draft.tolist()}, target {target.tolist()}", draft, target))
    return cases


def _as_int(got: Any) -> int | str:
    """A reader's count as a Python int, or a message saying what is wrong with it."""
    if got is None:
        return "your function returned None (a missing `return`?)"
    if isinstance(got, (bool, np.bool_)):
        return f"return an int (the number of committed tokens), got a bool ({got})"
    if hasattr(got, "detach"):  # a torch tensor
        got = got.detach().cpu().numpy()
    if isinstance(got, np.ndarray):
        if got.size != 1:
            return (f"return the count, an int, not an array of shape {got.shape} (the committed tokens "
                    "themselves?)")
        got = got.reshape(()).item()
    if isinstance(got, (list, tuple)):
        return f"return the count, an int, not a {type(got).__name__} (the committed tokens themselves?)"
    if isinstance(got, (int, np.integer)) and not isinstance(got, (bool, np.bool_)):
        return int(got)
    if isinstance(got, (float, np.floating)) and float(got).is_integer():
        return int(got)
    return f"return an int (the number of committed tokens), got {type(got).__name__} ({got!r})"


def check_accepted_length(fn: Callable[[np.ndarray, np.ndarray], Any], *, quiet: bool = False) -> bool:
    """Check ``fn(draft_path, target_greedy) -> int``: the tokens one greedy verification step commits.

    ``draft_path``: ``(L,)`` int64 token ids drafted along one root-to-leaf path of the tree;
    ``target_greedy``: ``(L + 1,)`` int64, the target model's greedy next token after the prefix
    (``target_greedy[0]``, the target's choice for draft position 0) and after each draft token
    (``target_greedy[t]`` for position ``t``, ``target_greedy[L]`` after the whole path). Return
    the number of leading positions with ``draft_path[t] == target_greedy[t]`` plus 1: the
    target's own token at the first mismatch (or after the last draft token) is committed as a
    bonus, so a step always makes progress and the output equals plain greedy decoding. Cases:
    a partial run followed by later matches, all accepted (``L + 1``), none (1), ``L = 0`` and
    ``L = 1``, and two random paths. Hints recognize the missing bonus token, all matches counted
    rather than the leading run, and the target shifted by one position.
    """
    name = "accepted_length"
    cases = _accept_cases()
    for case, draft, target in cases:
        expected = _leading(draft, target) + 1
        try:
            got = fn(draft.copy(), target.copy())
        except Exception as err:  # noqa: BLE001
            return _failure(name, err, quiet)
        value = _as_int(got)
        if isinstance(value, str):
            return _report(False, name, f"{case}: {value}", quiet)
        if value != expected:
            return _report(False, name, f"{case}: got {value}, expected {expected}, max |err| = "
                           f"{abs(value - expected)}. Hint: {_accept_hint(draft, target, value)}", quiet)
    return _report(True, name, f"{len(cases)} cases (a partial run, all accepted, none, L = 0, L = 1, random), "
                   "max |err| = 0", quiet)


def _accept_hint(draft: np.ndarray, target: np.ndarray, got: int) -> str:
    lead = _leading(draft, target)
    all_matches = int(np.sum(draft == target[:len(draft)]))
    shifted = _leading(draft, target[1:]) if len(draft) else 0
    bonus = ("add the bonus token: the target's own prediction at the first mismatch (or after the last "
             "draft token) is committed too, so the count is leading matches + 1 (at least 1)")
    leading = ("count only the leading run of matches: after the first mismatch the later draft tokens "
               "follow a prefix the target rejected, so they are discarded even where they match")
    variants = [
        (lead, bonus),
        (all_matches + 1, leading),
        (all_matches, f"{leading}; and {bonus}"),
        (shifted + 1, "target_greedy[t] is the target's token for draft position t (target_greedy[0] "
                      "comes from the prefix alone): compare draft_path[t] with target_greedy[t], not t + 1"),
        (len(draft) + 1, "not every draft token is accepted: stop at the first t with "
                         "draft_path[t] != target_greedy[t]"),
        (lead + 2, "the bonus is one token: leading matches + 1"),
    ]
    for value, hint in variants:
        if value != lead + 1 and got == value:
            return hint
    return "the count is (leading t with draft_path[t] == target_greedy[t]) + 1 (the target's bonus token)"
