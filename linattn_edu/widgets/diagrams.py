"""Diagrams drawn by code: how the book's kernels and blocks move data (matplotlib).

Each function draws one figure for a chapter and returns the :class:`~matplotlib.figure.Figure`
(the chapter shows it; tests check it). Nothing here computes a result: the diagrams follow the
same index arithmetic as the kernels they explain, so a reader can check one against the other.

- :func:`draw_flash_schedule` (Chapter 2): which K/V tiles each FlashAttention program streams.
- :func:`draw_chunked_linear_attention` (Chapter 4): intra-chunk products vs the carried state.
- :func:`draw_scan_dependencies` (Chapter 6): Hillis–Steele rounds, and the chunked scan's carries.
- :func:`draw_griffin_blocks` (Chapter 6): the residual block and the recurrent block.
- :func:`draw_tree_conv_taps` (Chapter 7): a causal convolution's taps unfolded over a draft tree.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

__all__ = [
    "flash_tile_schedule",
    "draw_flash_schedule",
    "draw_chunked_linear_attention",
    "scan_dependencies",
    "draw_scan_dependencies",
    "draw_griffin_blocks",
    "tree_conv_taps",
    "draw_tree_conv_taps",
]


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------------------------
# Chapter 2: FlashAttention's tile schedule
# ----------------------------------------------------------------------------------------------


def flash_tile_schedule(n_tiles: int, *, causal: bool = True) -> np.ndarray:
    """``(n_tiles, n_tiles)`` int array: entry ``[i, j]`` is the step at which program ``i`` (query
    tile ``i``) loads K/V tile ``j`` (0, 1, …), or ``-1`` if it skips it (causal tile skipping:
    tiles strictly above the diagonal hold only future keys). Square tiles (``BLOCK_M == BLOCK_N``).
    """
    n = _positive_int(n_tiles, "n_tiles")
    sched = np.full((n, n), -1, dtype=np.int64)
    for i in range(n):
        last = i if causal else n - 1
        sched[i, : last + 1] = np.arange(last + 1)
    return sched


def draw_flash_schedule(n_tiles: int = 6, *, causal: bool = True, highlight: int | None = None) -> Figure:
    """Query tiles (rows, one program each) against K/V tiles (columns): the number in a cell is
    the order in which that program streams the tile; grey cells are skipped, hatched diagonal
    cells are loaded but partly masked (``j > i`` inside the tile). ``highlight`` outlines one
    program's row (default: the last)."""
    sched = flash_tile_schedule(n_tiles, causal=causal)
    n = sched.shape[0]
    row = n - 1 if highlight is None else int(highlight)
    if not 0 <= row < n:
        raise ValueError(f"highlight must be a query-tile index in [0, {n}), got {highlight!r}")
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for i in range(n):
        for j in range(n):
            step = sched[i, j]
            diag = causal and i == j
            color = "#d9d9d9" if step < 0 else ("#fdd49e" if diag else "#9ecae1")
            ax.add_patch(Rectangle((j, i), 1, 1, facecolor=color, edgecolor="white", hatch="//" if diag else None))
            if step >= 0:
                ax.text(j + 0.5, i + 0.5, str(step), ha="center", va="center", fontsize=9)
    ax.add_patch(Rectangle((0, row), n, 1, fill=False, edgecolor="crimson", lw=2.5))
    ax.set(xlim=(0, n), ylim=(n, 0), xlabel="K/V tile j (streamed through SRAM)",
           ylabel="query tile i (one program each)", title="FlashAttention forward: tile schedule")
    ax.set_xticks(np.arange(n) + 0.5, [str(j) for j in range(n)])
    ax.set_yticks(np.arange(n) + 0.5, [str(i) for i in range(n)])
    ax.text(n / 2, n + 0.9, f"program {row}: loads Q tile {row} once, streams K/V tiles 0…{row if causal else n - 1}, "
            "keeps m, ℓ, acc in registers", ha="center", fontsize=8, color="crimson")
    ax.set_aspect("equal")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# Chapter 4: chunked linear attention
# ----------------------------------------------------------------------------------------------


def draw_chunked_linear_attention(n_chunks: int = 4, chunk: int = 4) -> Figure:
    """The causal ``T × T`` interaction pattern of linear attention, ``T = n_chunks · chunk``:
    diagonal blocks are computed in parallel inside the chunk (masked ``φ(Q)φ(K)ᵀ V``); everything
    below them reaches the queries only through the state ``S`` carried from chunk to chunk,
    drawn as arrows under the matrix."""
    nc, c = _positive_int(n_chunks, "n_chunks"), _positive_int(chunk, "chunk")
    T = nc * c
    fig, ax = plt.subplots(figsize=(5.6, 6.0))
    for i in range(T):
        for j in range(i + 1):
            same = i // c == j // c
            ax.add_patch(Rectangle((j, i), 1, 1, facecolor="#fdae6b" if same else "#c6dbef", edgecolor="white"))
    for b in range(1, nc):
        ax.axhline(b * c, color="k", lw=0.8)
        ax.axvline(b * c, color="k", lw=0.8)
    for b in range(nc):
        ax.text(b * c + c / 2, T + 1.0, f"S{b}" if b else "S0 = 0", ha="center", fontsize=9)
        if b + 1 < nc:
            ax.add_patch(FancyArrowPatch((b * c + c / 2 + 0.8, T + 0.85), ((b + 1) * c + c / 2 - 0.8, T + 0.85),
                                         arrowstyle="->", mutation_scale=12))
    ax.set(xlim=(0, T), ylim=(T + 1.8, 0), xlabel="key position j", ylabel="query position i",
           title=f"Chunked linear attention ({nc} chunks of {c} tokens)")
    ax.legend(handles=[Rectangle((0, 0), 1, 1, color="#fdae6b"), Rectangle((0, 0), 1, 1, color="#c6dbef")],
              labels=["intra-chunk: parallel, masked", "inter-chunk: via the carried state S"],
              loc="upper right", fontsize=8)
    ax.set_aspect("equal")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# Chapter 6: scans
# ----------------------------------------------------------------------------------------------


def scan_dependencies(T: int, method: str = "hillis_steele", *, chunk: int = 4) -> list[list[tuple[int, int]]]:
    """The combine steps of a scan over ``T`` positions, round by round: each round is a list of
    ``(source, target)`` pairs meaning "position ``target`` combines the partial result of
    ``source`` into its own".

    - ``"hillis_steele"``: round ``r`` combines ``t - 2^r`` into every ``t >= 2^r``
      (``⌈log2 T⌉`` rounds, ``O(T log T)`` combines).
    - ``"chunked"``: a sequential scan inside every chunk of ``chunk`` positions, all chunks at
      once (``chunk - 1`` rounds), then one round that carries each chunk's last state into the
      next chunk's positions (done one chunk after another in the kernel).
    """
    T = _positive_int(T, "T")
    if method == "hillis_steele":
        rounds, d = [], 1
        while d < T:
            rounds.append([(t - d, t) for t in range(d, T)])
            d *= 2
        return rounds
    if method == "chunked":
        c = _positive_int(chunk, "chunk")
        rounds = [[(t - 1, t) for t in range(T) if t % c == s] for s in range(1, min(c, T))]
        carry = [((t // c) * c - 1, t) for t in range(c, T)]
        return [r for r in rounds if r] + ([carry] if carry else [])
    raise ValueError(f"method must be 'hillis_steele' or 'chunked', got {method!r}")


def draw_scan_dependencies(T: int = 8, *, chunk: int = 4) -> Figure:
    """Two panels: the Hillis–Steele parallel prefix over ``T`` positions, and the chunked scan
    (sequential inside chunks of ``chunk``, a carry between chunks). Each row is one round; a line
    from position ``s`` to ``t`` is one combine ``h_t ← a_t·h_s + b_t``-style step."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, method, title in ((axes[0], "hillis_steele", "Hillis–Steele: ⌈log2 T⌉ rounds"),
                              (axes[1], "chunked", f"chunked scan: chunks of {chunk}, then carries")):
        rounds = scan_dependencies(T, method, chunk=chunk)
        for r, pairs in enumerate(rounds):
            for s, t in pairs:
                carry = method == "chunked" and r == len(rounds) - 1 and T > chunk
                ax.annotate("", xy=(t, r + 1), xytext=(s, r), arrowprops=dict(
                    arrowstyle="->", color="crimson" if carry else "#3182bd", lw=1.0))
        for r in range(len(rounds) + 1):
            ax.scatter(np.arange(T), np.full(T, r), s=30, color="k", zorder=3)
        ax.set(title=title, xlabel="position t", ylabel="round", ylim=(len(rounds) + 0.5, -0.5))
        ax.set_xticks(range(T))
        ax.set_yticks(range(len(rounds) + 1))
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# Chapter 6: Griffin's blocks
# ----------------------------------------------------------------------------------------------


def _box(ax, x: float, y: float, text: str, color: str, w: float = 2.2, h: float = 0.6) -> tuple[float, float]:
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", facecolor=color,
                                edgecolor="k", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=8.5)
    return x, y


def _arrow(ax, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="->", mutation_scale=10, lw=0.9))


def draw_griffin_blocks() -> Figure:
    """Left: the residual block, ``x + Mix(RMSNorm(x))`` then ``+ MLP(RMSNorm(·))`` (the mixer is a
    recurrent block in Hawk; Griffin alternates two recurrent blocks and one local MQA block).
    Right: the recurrent block, ``Linear(GeLU(Linear x) ⊙ RG-LRU(Conv1D(Linear x)))``."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 5.2))
    for ax in (left, right):
        ax.set_xlim(-3, 3)
        ax.set_ylim(-0.5, 7.5)
        ax.axis("off")
    # residual block, bottom to top
    ys = [0.3, 1.3, 2.3, 3.3, 4.3, 5.3, 6.3]
    labels = ["x", "RMSNorm", "temporal mixer\n(recurrent block or local MQA)", "⊕", "RMSNorm",
              "gated MLP (GeLU, ×3)", "⊕"]
    colors = ["white", "#e5f5e0", "#fdd0a2", "white", "#e5f5e0", "#c6dbef", "white"]
    for y, label, color in zip(ys, labels, colors):
        _box(left, 0, y, label, color, w=0.6 if label in ("x", "⊕") else 3.0)
    for a, b in zip(ys[:-1], ys[1:]):
        _arrow(left, (0, a + 0.3), (0, b - 0.3))
    for start, end, x in ((ys[0], ys[3], -1.9), (ys[3], ys[6], -2.1)):  # the residual connections
        left.plot([-0.3, x, x], [start, start, end], color="gray", ls="--", lw=0.9)
        _arrow(left, (x, end), (-0.3, end))
    left.set_title("Residual block (Hawk: mixer = recurrent block)")
    # recurrent block
    _box(right, 0, 0.3, "x (d_model)", "white", w=1.6)
    _box(right, -1.5, 1.5, "Linear → d_rnn", "#e5f5e0", w=2.0)
    _box(right, 1.5, 1.5, "Linear → d_rnn", "#e5f5e0", w=2.0)
    _box(right, -1.5, 2.9, "GeLU", "#c6dbef", w=2.0)
    _box(right, 1.5, 2.9, "Conv1D (4 taps, causal)", "#fdd0a2", w=2.4)
    _box(right, 1.5, 4.2, "RG-LRU\n(gates, √(1−a²), fp32 scan)", "#fdae6b", w=2.6, h=0.8)
    _box(right, 0, 5.4, "⊙", "white", w=0.6)
    _box(right, 0, 6.5, "Linear → d_model", "#e5f5e0", w=2.2)
    for a, b in (((0, 0.6), (-1.5, 1.2)), ((0, 0.6), (1.5, 1.2)), ((-1.5, 1.8), (-1.5, 2.6)),
                 ((1.5, 1.8), (1.5, 2.6)), ((1.5, 3.2), (1.5, 3.8)), ((-1.5, 3.2), (-0.3, 5.2)),
                 ((1.5, 4.6), (0.3, 5.2)), ((0, 5.7), (0, 6.2))):
        _arrow(right, a, b)
    right.set_title("Recurrent block (branch 1: GeLU; branch 2: conv + RG-LRU)")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# Chapter 7: convolution taps unfolded over a draft tree
# ----------------------------------------------------------------------------------------------


def tree_conv_taps(parents: Sequence[int], node: int, kernel_size: int, prefix_len: int) -> list[tuple[str, int]]:
    """The inputs a causal convolution of ``kernel_size`` taps reads for draft-tree node ``node``:
    tap 0 is the node itself, tap ``s`` its ``s``-th ancestor; once the root is passed, the taps
    continue into the committed prefix (its last tokens). Returns ``[("node", i) | ("prefix", p)]``
    from the current input backwards, ``kernel_size`` entries at most (fewer near the start).

    This is why the convolution must be *unfolded* over the tree: a node's taps follow its own
    path, never a sibling's or cousin's, exactly the inputs it would see if its path were decoded
    one token at a time."""
    k = _positive_int(kernel_size, "kernel_size")
    if isinstance(prefix_len, bool) or not isinstance(prefix_len, (int, np.integer)) or prefix_len < 0:
        raise ValueError(f"prefix_len must be an int >= 0, got {prefix_len!r}")
    parents = [int(p) for p in parents]
    if not 0 <= node < len(parents):
        raise ValueError(f"node must be in [0, {len(parents)}), got {node!r}")
    taps: list[tuple[str, int]] = []
    cur = node
    while cur >= 0 and len(taps) < k:
        taps.append(("node", cur))
        cur = parents[cur]
    p = prefix_len - 1
    while len(taps) < k and p >= 0:
        taps.append(("prefix", p))
        p -= 1
    return taps


def draw_tree_conv_taps(parents: Sequence[int], node: int, *, kernel_size: int = 3, prefix_len: int = 4) -> Figure:
    """The committed prefix (left) and a draft tree (right, one column per depth); the taps of
    :func:`tree_conv_taps` for ``node`` are highlighted and numbered, the other candidates grey."""
    taps = tree_conv_taps(parents, node, kernel_size, prefix_len)
    parents = [int(p) for p in parents]
    depth = []
    for p in parents:
        depth.append(0 if p < 0 else depth[p] + 1)
    rows: dict[int, int] = {}
    y_of = {}
    for i, d in enumerate(depth):  # stack nodes of equal depth vertically
        y_of[i] = rows.get(d, 0)
        rows[d] = y_of[i] + 1
    tap_index = {t: s for s, t in enumerate(taps)}
    fig, ax = plt.subplots(figsize=(8.5, 3.4))
    for p in range(prefix_len):
        on = ("prefix", p) in tap_index
        ax.add_patch(Rectangle((p - prefix_len - 0.4, -0.4), 0.8, 0.8, facecolor="#fdae6b" if on else "#f0f0f0",
                               edgecolor="k"))
        ax.text(p - prefix_len, 0, f"x{p}", ha="center", va="center", fontsize=8)
        if on:
            ax.text(p - prefix_len, -0.65, f"tap {tap_index[('prefix', p)]}", ha="center", fontsize=7, color="crimson")
    for i, d in enumerate(depth):
        x, y = d + 0.6, -y_of[i] * 1.1
        on = ("node", i) in tap_index
        color = "#e6550d" if i == node else ("#fdae6b" if on else "#f0f0f0")
        ax.add_patch(Rectangle((x - 0.4, y - 0.4), 0.8, 0.8, facecolor=color, edgecolor="k"))
        ax.text(x, y, f"n{i}", ha="center", va="center", fontsize=8)
        if on:
            ax.text(x, y - 0.65, f"tap {tap_index[('node', i)]}", ha="center", fontsize=7, color="crimson")
        px, py = (-0.4, 0) if parents[i] < 0 else (depth[parents[i]] + 0.6, -y_of[parents[i]] * 1.1)
        ax.add_patch(FancyArrowPatch((px + 0.4, py), (x - 0.4, y), arrowstyle="->", mutation_scale=8, lw=0.8))
    ax.set(xlim=(-prefix_len - 0.8, max(depth) + 1.4), ylim=(-max(rows.values()) * 1.1 - 0.2, 0.9),
           title=f"Causal conv ({kernel_size} taps) unfolded over a draft tree: the taps of node n{node}")
    ax.set_xlabel("committed prefix (left) · draft tree by depth (right)")
    ax.set_yticks([])
    ax.set_aspect("equal")
    fig.tight_layout()
    return fig
