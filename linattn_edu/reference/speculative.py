"""Draft trees for speculative decoding: the tree attention mask and its helpers (NumPy).

A *draft tree* of ``N`` candidate tokens is given by its parent array: ``parents[i]`` is the
index of node ``i``'s parent, or ``-1`` when node ``i`` is a child of the committed prefix (a
*root*). Nodes are listed parents-first (``parents[i] < i``), e.g. breadth-first::

    prefix ── 0 ─┬─ 2 ── 4          parents = [-1, -1, 0, 0, 2]
             │   └─ 3
             └─ 1

Verifying the whole tree in one forward pass (Medusa, SpecInfer; You et al. 2024 §4 for
linearized models) needs every node to see the committed prefix, its own ancestors and itself,
and nothing else: siblings and cousins are *other* candidate continuations. That is the tree
attention mask of :func:`tree_attention_mask`; a chain ``parents = [-1, 0, 1, ...]`` gives the
ordinary causal mask. A node at depth ``d`` (roots have depth 0) sits at absolute position
``prefix_len + d``, the position it would have if its root path were decoded one token at a time.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["tree_attention_mask", "tree_depths", "tree_paths", "check_root_path"]


def _check_parents(parents: ArrayLike) -> np.ndarray:
    """Validate a parent array and return it as a 1-D int64 array (see the module docstring).

    Raises:
        ValueError: not 1-D, empty, not integers, or some ``parents[i]`` is neither ``-1`` nor in
            ``[0, i)``; the message names ``parents``.
    """
    if hasattr(parents, "detach"):  # a torch tensor
        parents = parents.detach().cpu().numpy()
    arr = np.asarray(parents)
    if arr.ndim != 1:
        raise ValueError(f"parents must be a 1-D array of ints (one parent index per node), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("parents must not be empty: a draft tree needs at least one node")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"parents must hold integer node indices (or -1 for a root), got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    idx = np.arange(arr.size)
    bad = ~((arr == -1) | ((arr >= 0) & (arr < idx)))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"parents[{i}] = {int(arr[i])} is invalid: each parents[i] must be -1 (a child of the committed "
            f"prefix) or the index of an earlier node, 0 <= parents[i] < i (list parents before children)"
        )
    return arr


def tree_attention_mask(parents: ArrayLike) -> np.ndarray:
    """The ``(N, N)`` boolean tree attention mask: ``mask[i, j]`` is True iff ``j`` is ``i`` or an ancestor of ``i``.

    Together with the committed prefix (visible to every node) this is what node ``i`` may attend
    to during tree verification. Row ``i`` is row ``parents[i]`` plus the diagonal entry, built in
    one pass because parents come first. The mask is lower-triangular.

    Raises:
        ValueError: a bad parent array (see :func:`tree_depths`); the message names ``parents``.
    """
    par = _check_parents(parents)
    n = par.size
    mask = np.zeros((n, n), dtype=bool)
    for i in range(n):
        if par[i] >= 0:
            mask[i] = mask[par[i]]
        mask[i, i] = True
    return mask


def tree_depths(parents: ArrayLike) -> np.ndarray:
    """Depth of every node, ``(N,)`` int64: roots (``parents[i] == -1``) have depth 0.

    Node ``i`` sits at absolute position ``prefix_len + depths[i]``.

    Raises:
        ValueError: ``parents`` is not a 1-D, non-empty integer array with ``parents[i] == -1``
            or ``0 <= parents[i] < i``; the message names ``parents``.
    """
    par = _check_parents(parents)
    depth = np.zeros(par.size, dtype=np.int64)
    for i in range(par.size):
        depth[i] = 0 if par[i] < 0 else depth[par[i]] + 1
    return depth


def tree_paths(parents: ArrayLike) -> list[list[int]]:
    """For every node, its root path ``[root, ..., i]`` (node indices, ancestors first).

    ``tokens[tree_paths(parents)[i]]`` is the continuation of the prefix that node ``i`` stands for.

    Raises:
        ValueError: a bad parent array (see :func:`tree_depths`); the message names ``parents``.
    """
    par = _check_parents(parents)
    paths: list[list[int]] = []
    for i in range(par.size):
        paths.append((paths[par[i]] if par[i] >= 0 else []) + [i])
    return paths


def check_root_path(parents: ArrayLike, path: ArrayLike) -> list[int]:
    """Validate ``path`` as a root path of the tree ``parents``; return it as a list of ints.

    A root path ``[n_0, n_1, ..., n_L]`` starts at a root (``parents[n_0] == -1``) and each node is
    the parent of the next (``parents[n_{j+1}] == n_j``): the accepted tokens of one speculative
    round, in order. The empty path is allowed (nothing accepted).

    Raises:
        ValueError: a bad parent array (naming ``parents``), or a ``path`` that is not a root path
            of it (naming ``path``).
    """
    par = _check_parents(parents)
    if hasattr(path, "detach"):
        path = path.detach().cpu().numpy()
    arr = np.asarray(path)
    if arr.size and (arr.ndim != 1 or arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"path must be a 1-D sequence of node indices, got {path!r}")
    out = [int(i) for i in arr.reshape(-1)]
    prev = -1
    for j, node in enumerate(out):
        if not 0 <= node < par.size or int(par[node]) != prev:
            raise ValueError(
                f"path must be a root path of the tree (path[0] a root, each node the parent of the next): "
                f"path[{j}] = {node} does not hang off {prev if prev >= 0 else 'the committed prefix'}"
            )
        prev = node
    return out
