"""The MQAR study: recall against decode-state size, the way Zoology and the Based paper measure it.

Arora et al. (ICML 2024, arXiv:2402.18668; the Zoology code, arXiv:2312.04927) train 2-layer
models on multi-query associative recall at growing numbers of key–value pairs, vary each model's
state size *within* its family, sweep the learning rate per model, and plot the best accuracy
against the bytes of state kept while decoding. Attention recalls everything with a state that
grows with the sequence; fixed-state models trade recall for memory, and the more pairs there are
to remember, the more state they need.

:func:`run_mqar_study` runs that grid here. Every model is trained with the same data, steps and
seeds (:func:`~linattn_edu.experiments.mqar_sweep.train_mqar`); each finished model appends its
row to a resumable results file (:class:`~linattn_edu.bench.ResumableResults`), so an
interrupted run continues where it stopped (``python scripts/mqar_study.py --preset cpu``).

**Families and their state dials** (:func:`study_points`; 3 points each in the presets):

==================  ====================================================  =========================
family              model (Zoology's stack: layer 0 BaseConv, layer 1 X)  dial
==================  ====================================================  =========================
``attention``       X = causal softmax attention (the whole sequence)      model width ``d_model``
``sliding_window``  X = sliding-window attention                          window ``w``
``linear_elu``      X = linear attention, elu + 1 feature map             feature dim ``d``
``based``           X = Taylor linear attention: the Based paper's        feature dim ``d``
                    MQAR model (also "linear attention, Taylor map")      (``F = 1 + d + d²``)
``based_window``    X = Taylor linear attention + a sliding window        window ``w``
                    (the Based LM's pairing; this book's variant)
``hawk``            ``build_model("hawk")``: 2 recurrent blocks            RG-LRU width
``griffin``         ``build_model("griffin")``: recurrent, local MQA       window ``w``
``linearized``      ``build_model("linearized")``: grouped linear         model width ``d_model``
                    attention (groups of 16) + causal DWConv
==================  ====================================================  =========================

Hawk, Griffin and the linearized model are built as their chapters build them (with their own
short convolutions and MLPs): more parameters, no extra state.

**Learning rates**: every point is trained at each of the config's ``lrs``; a point whose best
rate is the largest or smallest of them, and that left the chance plateau, is trained further
past that edge, one grid step at a time, until its best rate is bracketed or ``lr_extension``
steps were taken (:func:`extension_lrs`).

**What is reported** (:func:`best_rows`, :func:`study_findings`): for every (setting, family,
point), the accuracy at its best learning rate; the Pareto frontier of each setting; whether
attention reaches 0.95; for each family whether its best point leaves the chance plateau
(about ``1 / n_pairs``: "the answer is one of the values in the context") and whether its
accuracy grows with its state. Families that stay on the plateau are shown with their loss
curves and learning-rate sweeps (:func:`plot_lr_sweeps`), never silently.
"""

from __future__ import annotations

import math
import time
import zlib
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .. import bench, runtime
from ..models import build_model, count_parameters, model_state_bytes, zoology_mqar_options
from ..tasks import make_mqar
from ._args import check_int as _int
from .mqar_sweep import evaluate_mqar, init_qk_, train_mqar

__all__ = [
    "STUDY_FAMILIES",
    "FAMILY_STYLE",
    "STUDY_PRESETS",
    "study_config",
    "study_points",
    "study_jobs",
    "extension_lrs",
    "plateau_accuracy",
    "run_mqar_study",
    "reference_study",
    "study_coverage",
    "best_rows",
    "pareto_frontier",
    "study_findings",
    "best_lr_at_grid_edge",
    "study_table_markdown",
    "plot_study",
    "plot_lr_sweeps",
]

#: The families of the study, in the order they are run and plotted.
STUDY_FAMILIES = ("attention", "sliding_window", "linear_elu", "based", "based_window", "hawk", "griffin",
                  "linearized")

#: ``family -> (label, colour)`` for every plot of the study.
FAMILY_STYLE: dict[str, tuple[str, str]] = {
    "attention": ("attention", "#1f77b4"),
    "sliding_window": ("sliding window", "#17becf"),
    "linear_elu": ("linear (elu)", "#7f7f7f"),
    "based": ("Based (Taylor linear attn.)", "#d62728"),
    "based_window": ("Based + window", "#ff7f0e"),
    "hawk": ("Hawk", "#2ca02c"),
    "griffin": ("Griffin", "#9467bd"),
    "linearized": ("linearized", "#8c564b"),
}

#: Sizes of the study. ``cpu`` is sized for a few hours of a 2-core machine (run in the
#: background: ``python scripts/mqar_study.py --preset cpu``); ``gpu`` follows the paper's
#: settings more closely; ``fast`` is a smoke test of the whole pipeline. ``lr_extension``: how many
#: learning rates beyond the grid a point may add when its best one sits at the grid's edge
#: (:func:`extension_lrs`).
STUDY_PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"settings": [[32, 4], [64, 8]], "vocab_size": 128, "d_model": 32, "n_heads": 1, "steps": 20,
             "batch_size": 16, "lrs": [3e-3], "n_train": 256, "n_test": 64, "seed": 0, "points": 1,
             "families": list(STUDY_FAMILIES), "lr_extension": 0},
    "cpu": {"settings": [[64, 16], [128, 32]], "vocab_size": 1024, "d_model": 64, "n_heads": 1, "steps": 1000,
            "batch_size": 32, "lrs": [1e-3, 3e-3, 1e-2], "n_train": 40000, "n_test": 1000, "seed": 0,
            "points": 3, "families": list(STUDY_FAMILIES), "lr_extension": 2},
    "gpu": {"settings": [[128, 16], [256, 32], [256, 64]], "vocab_size": 8192, "d_model": 128, "n_heads": 1,
            "steps": 6000, "batch_size": 64, "lrs": [3e-4, 1e-3, 3e-3, 1e-2], "n_train": 100000, "n_test": 3000,
            "seed": 0, "points": 3, "families": list(STUDY_FAMILIES), "lr_extension": 2},
}


def study_config(preset: str | None = None) -> dict[str, Any]:
    """A copy of a preset of :data:`STUDY_PRESETS`; None picks by the runtime's size mode
    (``fast`` under ``LINATTN_FAST=1``, ``gpu`` on a GPU the runtime sizes as ``gpu``, else ``cpu``)."""
    if preset is None:
        preset = runtime.pick(fast="fast", cpu="cpu", gpu="gpu")
    if preset not in STUDY_PRESETS:
        raise ValueError(f"preset must be one of {list(STUDY_PRESETS)}, got {preset!r}")
    import copy

    return {"preset": preset, **copy.deepcopy(STUDY_PRESETS[preset])}


def _dial(values: Sequence[int], points: int) -> list[int]:
    """The ``points`` middle-out values of a dial: 1 point -> the middle one."""
    values = list(values)
    if points >= len(values):
        return values
    mid = len(values) // 2
    return values[mid - points // 2: mid - points // 2 + points]


def study_points(family: str, seq_len: int, *, d_model: int, points: int = 3) -> list[dict[str, Any]]:
    """The models of ``family`` at sequence length ``seq_len``, smallest state first:
    ``[{"point", "dial", "kind", "d_model", "options"}]``; ``build_model(kind, d_model=..., **options)``.

    The dial of each family is in the module docstring. Windows follow this book's convention
    (``window=w`` counts the current token: Zoology's ``block_size=b`` is ``w = b + 1``).
    """
    seq_len, d_model, points = _int(seq_len, "seq_len", 4), _int(d_model, "d_model", 4), _int(points, "points")
    if family not in STUDY_FAMILIES:
        raise ValueError(f"family must be one of {list(STUDY_FAMILIES)}, got {family!r}")
    windows = _dial([seq_len // 16 + 1, seq_len // 8 + 1, seq_len // 4 + 1, seq_len // 2 + 1], points)
    out = []
    if family == "attention":
        for width in _dial([d_model // 2, d_model, 2 * d_model], points):
            out.append(("d_model", width, "based", width, zoology_mqar_options("attention", seq_len=seq_len)))
    elif family == "sliding_window":
        for w in windows:
            out.append(("window", w, "based", d_model, zoology_mqar_options("sliding_window", window=w)))
    elif family == "linear_elu":
        for d in _dial([d_model // 4, d_model // 2, d_model], points):
            out.append(("feature_dim", d, "based", d_model, zoology_mqar_options("linear_elu", feature_dim=d)))
    elif family == "based":
        for d in _dial([4, 8, 16], points):
            out.append(("feature_dim", d, "based", d_model, zoology_mqar_options("based", feature_dim=d)))
    elif family == "based_window":
        for w in windows:
            opts = zoology_mqar_options("based", feature_dim=8, window=w)
            opts["layer_pattern"] = ["conv", "linear+window"]
            out.append(("window", w, "based", d_model, opts))
    elif family == "hawk":
        for width in _dial([d_model // 2, d_model, 2 * d_model], points):
            out.append(("lru_width", width, "hawk", d_model, {"lru_width": width}))
    elif family == "griffin":
        for w in windows:
            out.append(("window", w, "griffin", d_model, {"window": w}))
    else:  # linearized: width (its state counts only the *partial* group, which is 0 at L % g == 0)
        for width in _dial([d_model // 2, d_model, 2 * d_model], points):
            out.append(("d_model", width, "linearized", width, {"group_size": 16}))
    return [{"point": f"{name}={value}", "dial": value, "kind": kind, "d_model": width, "options": opts}
            for name, value, kind, width, opts in out]


def plateau_accuracy(n_pairs: int) -> float:
    """The accuracy below which a model counts as on MQAR's chance plateau: ``2 / n_pairs``, twice
    the accuracy of guessing among the values in the context."""
    return 2.0 / n_pairs


def _lr_round(lr: float) -> float:
    return float(f"{lr:.6g}")


def extension_lrs(grid: Sequence[float], tried: dict[float, float | None], n_pairs: int,
                  max_extra: int) -> list[float]:
    """The learning rates beyond the grid that one point should try next (an adaptive sweep).

    The grid is continued by decades: with ``k`` grid values per decade (``[1e-3, 3e-3, 1e-2]``:
    ``k = 2``), the value after the top is the ``k``-th from the top times 10 (``3e-2``, then
    ``1e-1``) and the one below the bottom is the ``k``-th from the bottom over 10 (``3e-4``,
    ``1e-4``). A point extends on the side where its best learning rate is the largest (or
    smallest) one tried, one value at a time, only if it left the chance plateau
    (:func:`plateau_accuracy`: on the plateau every lr looks alike and there is no optimum to
    follow) and at most ``max_extra`` values per side.

    Args:
        grid: the config's learning rates (ascending or not).
        tried: ``{lr: accuracy}`` of every run of this point so far (None: diverged), grid and
            extension; extension runs happen only once every grid lr is in it.
        n_pairs: the setting's number of pairs (for the plateau).
        max_extra: the config's ``lr_extension``.

    Returns:
        ``[]`` (the optimum is bracketed, capped, on the plateau, or the grid is unfinished) or
        the one next learning rate to try.
    """
    grid = sorted(_lr_round(v) for v in grid)
    tried = {_lr_round(k): v for k, v in tried.items()}
    if max_extra <= 0 or len(grid) < 2 or not all(g in tried for g in grid):
        return []
    best_lr = max(sorted(tried), key=lambda lr: -1.0 if tried[lr] is None else tried[lr])
    if (tried[best_lr] or 0.0) < plateau_accuracy(n_pairs):
        return []
    per_decade = sum(1 for v in grid if v < grid[0] * 10 * (1 - 1e-9))
    lrs = sorted(tried)
    if best_lr == lrs[-1] and sum(lr > grid[-1] for lr in lrs) < max_extra:
        return [_lr_round(lrs[-per_decade] * 10)]
    if best_lr == lrs[0] and sum(lr < grid[0] for lr in lrs) < max_extra:
        return [_lr_round(lrs[per_decade - 1] / 10)]
    return []


def study_jobs(cfg: dict[str, Any], rows: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every (setting, family, point, lr) of ``cfg``: the units of work, in run order.

    Without ``rows``: the grid (``cfg["lrs"]`` for every point). With ``rows`` (the runs so far):
    the grid, then for each point the extension learning rates it has run and the next one it
    should run (:func:`extension_lrs`, at most ``cfg["lr_extension"]`` per side): the list grows
    as results arrive, and the study is complete when every job in it is done.
    """
    jobs = []
    for seq_len, n_pairs in cfg["settings"]:
        for family in cfg["families"]:
            for p in study_points(family, seq_len, d_model=cfg["d_model"], points=cfg["points"]):
                for lr in cfg["lrs"]:
                    jobs.append({"seq_len": seq_len, "n_pairs": n_pairs, "family": family, "point": p["point"],
                                 "lr": lr, "_spec": p})
    if rows is None or not cfg.get("lr_extension"):
        return jobs
    grid = {_lr_round(v) for v in cfg["lrs"]}
    runs: dict[tuple, dict[float, float | None]] = {}
    for r in rows:
        runs.setdefault((r["seq_len"], r["n_pairs"], r["family"], r["point"]), {})[_lr_round(r["lr"])] = r["accuracy"]
    extra, lowest = [], min(grid)
    for job in (j for j in jobs if _lr_round(j["lr"]) == lowest):  # one job per point
        key = (job["seq_len"], job["n_pairs"], job["family"], job["point"])
        tried = runs.get(key, {})
        done_extra = sorted(lr for lr in tried if lr not in grid)
        nxt = extension_lrs(cfg["lrs"], tried, job["n_pairs"], cfg["lr_extension"])
        extra += [{**job, "lr": lr} for lr in done_extra + nxt]
    return jobs + extra


def _curve(losses: list[float], n: int = 25) -> list[float]:
    """``n`` evenly spaced points of a loss curve (for the evidence plots; the file stays small)."""
    if not losses:
        return []
    idx = np.linspace(0, len(losses) - 1, min(n, len(losses))).round().astype(int)
    return [round(float(losses[i]), 4) for i in idx]


def _train_one(job: dict[str, Any], data: dict, cfg: dict[str, Any], device: torch.device) -> dict[str, Any]:
    spec = job["_spec"]
    torch.manual_seed(cfg["seed"])
    model = build_model(spec["kind"], vocab_size=cfg["vocab_size"], d_model=spec["d_model"], n_layers=2,
                        n_heads=cfg["n_heads"], **spec["options"])
    init_qk_(model)
    x_tr, y_tr, x_te, y_te = data[(job["seq_len"], job["n_pairs"])]
    row = {k: v for k, v in job.items() if k != "_spec"}
    row.update(dial=spec["dial"], kind=spec["kind"], d_model=spec["d_model"], options=spec["options"],
               params=count_parameters(model),
               state_bytes=model_state_bytes(model, seq_len=job["seq_len"], bytes_per_element=4))
    try:
        res = train_mqar(model, x_tr, y_tr, steps=cfg["steps"], batch_size=cfg["batch_size"], lr=job["lr"],
                         seed=cfg["seed"], device=device)
        row.update(accuracy=float(evaluate_mqar(model, x_te, y_te, device=device)), final_loss=res["final_loss"],
                   loss_curve=_curve(res["loss"]), diverged=False)
    except FloatingPointError as err:  # a too-large lr: recorded, never hidden
        row.update(accuracy=None, final_loss=None, loss_curve=[], diverged=True, error=str(err))
    return row


def run_mqar_study(
    cfg: dict[str, Any],
    *,
    store: bench.ResumableResults | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    shard: tuple[int, int] = (0, 1),
) -> list[dict[str, Any]]:
    """Train and evaluate every job of :func:`study_jobs`; returns all rows (stored ones included).

    First the grid (every point at every ``cfg["lrs"]``), then rounds of learning-rate extensions
    (:func:`extension_lrs`) for points whose best learning rate sits at the grid's edge, until
    every point's optimum is bracketed, on the chance plateau, or ``cfg["lr_extension"]`` values
    past the edge.

    Args:
        cfg: a :func:`study_config` dict (settings, vocab, sizes, steps, lrs, families, points).
        store: a results file that grows by one row per finished model; jobs it already holds are
            skipped (resume). None: nothing is written.
        device: where to train (default: the runtime's device).
        progress: show a tqdm bar.
        on_row: called with each new row (e.g. to print it).
        shard: ``(k, n)``: train only every n-th grid job starting at the k-th (of the jobs in
            :func:`study_jobs` order) and the extension jobs whose key hashes to ``k`` modulo ``n``,
            so that ``n`` processes can share one results file (the store locks it on each write
            and each round re-reads it); ``(0, 1)``: every job. A shard stops when it has nothing
            left to train; an extension that falls due later (when another shard finishes a
            point's grid) is trained by the next run with the same arguments.

    Returns:
        One dict per model: setting, family, point, lr, accuracy (None if the loss diverged),
        state bytes, parameters, final loss, a 25-point loss curve.
    """
    from tqdm.auto import tqdm

    dev = torch.device(device) if device is not None else runtime.device()
    if (not isinstance(shard, (tuple, list)) or len(shard) != 2 or not all(isinstance(v, int) for v in shard)
            or not 0 <= shard[0] < shard[1]):
        raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard!r}")
    data = {}
    for seq_len, n_pairs in cfg["settings"]:
        x_tr, y_tr = make_mqar(cfg["n_train"], seq_len=seq_len, n_pairs=n_pairs, vocab_size=cfg["vocab_size"],
                               seed=cfg["seed"])
        x_te, y_te = make_mqar(cfg["n_test"], seq_len=seq_len, n_pairs=n_pairs, vocab_size=cfg["vocab_size"],
                               seed=cfg["seed"] + 1)
        data[(seq_len, n_pairs)] = (x_tr, y_tr, x_te, y_te)
    rows = list(store.rows) if store is not None else []
    n_grid = len(study_jobs(cfg))
    while True:  # the grid, then rounds of learning-rate extensions until none is left
        if store is not None:
            store.refresh()  # rows other shards wrote: their points may now need extensions
            rows = list(store.rows)
        done = {_job_key(r) for r in rows}
        jobs = study_jobs(cfg, rows)
        mine = [j for i, j in enumerate(jobs) if _in_shard(i, j, n_grid, shard)]
        todo = [j for j in mine if _job_key(j) not in done]
        if not todo:
            return rows
        for job in tqdm(todo, desc="MQAR study", disable=not progress):
            start = time.perf_counter()
            row = _train_one(job, data, cfg, dev)
            row["seconds"] = round(time.perf_counter() - start, 2)
            rows.append(row)
            if store is not None:
                store.add(row, seconds=row["seconds"])
            if on_row is not None:
                on_row(row)


def _job_key(job: dict[str, Any]) -> tuple:
    return job["seq_len"], job["n_pairs"], job["family"], job["point"], _lr_round(job["lr"])


def _in_shard(index: int, job: dict[str, Any], n_grid: int, shard: tuple[int, int]) -> bool:
    """Grid jobs go to shards by position; extension jobs (whose positions shift as results
    arrive) by a hash of their key, so every process agrees on who trains which."""
    k, n = shard
    if index < n_grid:
        return index % n == k
    return zlib.crc32(repr(_job_key(job)).encode()) % n == k


def reference_study(preset: str | None = None, *, directory: Any = None) -> dict[str, Any] | None:
    """The study a chapter shows: the stored one, or a live run when ``LINATTN_RETRAIN=1``.

    Stored: ``mqar_study_PRESET.json`` (written by ``scripts/mqar_study.py``); ``preset=None``
    looks for ``gpu`` first on a GPU, then ``cpu``; None if none is stored. The study may be
    partial (it is resumable and appends one model at a time).

    ``LINATTN_RETRAIN=1`` (:func:`linattn_edu.experiments.stored.retrain`): the whole study is
    trained now at this machine's preset (:func:`study_config`; hours on a CPU) and nothing is
    written.

    Returns:
        The results record (``rows``, ``config``, ``device``, ``date``, ``git_commit``, ``command``,
        ``wall_seconds``, ...) plus ``"stored"``: its provenance with ``units_done``,
        ``units_total``, ``complete`` and ``preset`` (None for a live run).
    """
    from .stored import preferred_presets, retrain

    if retrain():
        cfg = study_config(None)
        start = time.perf_counter()
        rows = run_mqar_study(cfg)
        record = bench.provenance(f"mqar_study_{cfg['preset']}", command="LINATTN_RETRAIN=1 (trained live, not stored)",
                                  config=cfg, device=runtime.device(), wall_seconds=time.perf_counter() - start)
        return {**record, "rows": rows, "stored": None}
    for p in ([preset] if preset is not None else preferred_presets(list(STUDY_PRESETS))):
        record = bench.load_results(f"mqar_study_{p}", directory=directory)
        if record is None or not record["rows"]:
            continue
        coverage = study_coverage(record)
        info = {k: record.get(k) for k in ("name", "device", "date", "git_commit", "command", "wall_seconds", "torch")}
        info.update(units_done=len(record["rows"]), units_total=sum(c["jobs_total"] for c in coverage),
                    complete=all(c["complete"] for c in coverage), preset=p, config=record["config"])
        return {**record, "stored": info}
    return None


def study_coverage(record: dict[str, Any], families: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Per setting of a (possibly partial) study record: how much of it is finished.

    Args:
        record: a study results record (``rows`` and ``config``).
        families: count only these families (None: every family of the config).

    Returns:
        ``[{"seq_len", "n_pairs", "jobs_done", "jobs_total", "complete", "families": {family:
        "done/total"}}]``, one per setting of the study's config, in its order.
    """
    cfg = dict(record["config"])
    if families is not None:
        cfg["families"] = [f for f in cfg.get("families", families) if f in families]
    done = {_job_key(r) for r in record["rows"]}
    jobs = study_jobs(cfg, record["rows"])
    out = []
    for seq_len, n_pairs in cfg["settings"]:
        fams: dict[str, list[int]] = {}
        for j in (j for j in jobs if (j["seq_len"], j["n_pairs"]) == (seq_len, n_pairs)):
            counts = fams.setdefault(j["family"], [0, 0])
            counts[0] += _job_key(j) in done
            counts[1] += 1
        n_done, n_total = sum(c[0] for c in fams.values()), sum(c[1] for c in fams.values())
        out.append({"seq_len": seq_len, "n_pairs": n_pairs, "jobs_done": n_done, "jobs_total": n_total,
                    "complete": n_total > 0 and n_done == n_total,
                    "families": {f: f"{d}/{t}" for f, (d, t) in fams.items()}})
    return out


def best_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each (setting, family, point): the row of its best learning rate (diverged runs count
    as accuracy 0), with ``lrs_tried`` and ``accuracy_by_lr`` added."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["seq_len"], r["n_pairs"], r["family"], r["point"]), []).append(r)
    out = []
    for group in groups.values():
        best = max(group, key=lambda r: -1.0 if r["accuracy"] is None else r["accuracy"])
        out.append({**best, "lrs_tried": sorted(r["lr"] for r in group),
                    "accuracy_by_lr": {str(r["lr"]): r["accuracy"] for r in sorted(group, key=lambda r: r["lr"])}})
    return out


def pareto_frontier(best: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows no other row beats in both accuracy (higher) and state bytes (smaller), by state."""
    rows = sorted((r for r in best if r["accuracy"] is not None), key=lambda r: (r["state_bytes"], -r["accuracy"]))
    frontier, top = [], -1.0
    for r in rows:
        if r["accuracy"] > top:
            frontier.append(r)
            top = r["accuracy"]
    return frontier


def best_lr_at_grid_edge(best: dict[str, Any]) -> str | None:
    """Whether a :func:`best_rows` row's best learning rate is the largest (``"high"``) or the
    smallest (``"low"``) one tried, so the sweep may not have bracketed its optimum; None if it is
    inside, if only one was tried, or if the point learned nothing (accuracy 0 or diverged
    everywhere: there is no optimum to bracket)."""
    tried = best["lrs_tried"]
    if len(tried) < 2 or not best["accuracy"]:
        return None
    return "high" if best["lr"] == max(tried) else "low" if best["lr"] == min(tried) else None


def study_findings(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What the rows show, computed (the chapter prints these, never types them).

    Returns ``{setting_key: {"attention_ok", "frontier_families", "families": {family: {
    "best_accuracy", "best_point", "best_lr", "plateau", "grows_with_state", "lr_at_edge"}}}}`` with
    ``setting_key = "L=<seq_len>, pairs=<n_pairs>"``. ``plateau``: the best accuracy is below
    ``2 / n_pairs`` (twice the chance of guessing among the context's values).
    ``grows_with_state``: accuracy at the largest state exceeds the smallest by more than 0.02.
    ``lr_at_edge``: the family's points (by point name) whose best learning rate is the largest or
    smallest one tried, so the sweep may not have bracketed their optimum (ties at accuracy 0 or
    with a single learning rate tried are not counted).
    """
    best = best_rows(rows)
    out: dict[str, Any] = {}
    for seq_len, n_pairs in sorted({(r["seq_len"], r["n_pairs"]) for r in best}):
        here = [r for r in best if (r["seq_len"], r["n_pairs"]) == (seq_len, n_pairs)]
        fams: dict[str, Any] = {}
        for family in [f for f in STUDY_FAMILIES if any(r["family"] == f for r in here)]:
            pts = sorted((r for r in here if r["family"] == family), key=lambda r: r["state_bytes"])
            accs = [r["accuracy"] or 0.0 for r in pts]
            top = max(pts, key=lambda r: r["accuracy"] or 0.0)
            fams[family] = {"best_accuracy": top["accuracy"] or 0.0, "best_point": top["point"], "best_lr": top["lr"],
                            "plateau": (top["accuracy"] or 0.0) < plateau_accuracy(n_pairs),
                            "grows_with_state": len(pts) > 1 and accs[-1] - accs[0] > 0.02,
                            "lr_at_edge": [r["point"] for r in pts if best_lr_at_grid_edge(r)]}
        att = fams.get("attention")
        out[f"L={seq_len}, pairs={n_pairs}"] = {
            "attention_ok": bool(att and att["best_accuracy"] >= 0.95),
            "frontier_families": sorted({r["family"] for r in pareto_frontier(here)}),
            "families": fams,
        }
    return out


def study_table_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The study as a markdown table: one line per (setting, family, point), smallest state first
    within a family, with the state bytes, the best accuracy, its learning rate and the accuracy at
    every learning rate tried (``div`` where training diverged)."""
    best = sorted(best_rows(rows), key=lambda r: (r["seq_len"], r["n_pairs"], STUDY_FAMILIES.index(r["family"])
                                                  if r["family"] in STUDY_FAMILIES else 99, r["state_bytes"]))
    lines = ["| L | pairs | family | point | state bytes | best accuracy | best lr | accuracy by lr |",
             "| --: | --: | :-- | :-- | --: | --: | --: | :-- |"]
    for r in best:
        by_lr = ", ".join(f"{float(lr):.0e}: " + ("div" if acc is None else f"{acc:.3f}")
                          for lr, acc in r["accuracy_by_lr"].items())
        acc = "div" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        lines.append(f"| {r['seq_len']} | {r['n_pairs']} | {r['family']} | {r['point']} | {r['state_bytes']:,} "
                     f"| {acc} | {r['lr']:.0e} | {by_lr} |")
    return "\n".join(lines)


def plot_study(rows: Sequence[dict[str, Any]], *, title: str | None = None, axes: Any = None):
    """Best accuracy against decode-state bytes (log x), one curve per family, one panel per
    setting, the Pareto frontier dashed. Returns the figure."""
    import matplotlib.pyplot as plt

    best = best_rows(rows)
    settings = sorted({(r["seq_len"], r["n_pairs"]) for r in best})
    if not settings:
        raise ValueError("rows must hold at least one finished model")
    if axes is None:
        fig, axes = plt.subplots(1, len(settings), figsize=(5.2 * len(settings), 4.2), squeeze=False)
        axes = axes[0]
    else:
        axes = np.atleast_1d(axes)
        fig = axes[0].figure
    for ax, (seq_len, n_pairs) in zip(axes, settings):
        here = [r for r in best if (r["seq_len"], r["n_pairs"]) == (seq_len, n_pairs)]
        for family in STUDY_FAMILIES:
            pts = sorted((r for r in here if r["family"] == family), key=lambda r: r["state_bytes"])
            if pts:
                label, color = FAMILY_STYLE[family]
                ax.plot([r["state_bytes"] for r in pts], [r["accuracy"] or 0.0 for r in pts], "o-", color=color,
                        label=label, ms=5)
        front = pareto_frontier(here)
        ax.plot([r["state_bytes"] for r in front], [r["accuracy"] for r in front], "k--", lw=0.8, label="frontier")
        ax.axhline(1.0 / n_pairs, color="gray", lw=0.8, ls=":", label="chance (1/pairs)")
        ax.set(xscale="log", ylim=(-0.02, 1.02), xlabel="decode state (bytes, log scale)",
               ylabel="MQAR accuracy (best lr)", title=f"L = {seq_len}, {n_pairs} key-value pairs")
    legend: dict[str, Any] = {}  # one entry per family over every panel (a panel may lack some)
    for ax in axes[:len(settings)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    order = [FAMILY_STYLE[f][0] for f in STUDY_FAMILIES if FAMILY_STYLE[f][0] in legend]
    order += [label for label in legend if label not in order]
    axes[len(settings) - 1].legend([legend[k] for k in order], order, fontsize=7, loc="center left",
                                   bbox_to_anchor=(1.02, 0.5))
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_lr_sweeps(rows: Sequence[dict[str, Any]], family: str):
    """Evidence for one family: training-loss curves of every (setting, point, lr) run, and
    accuracy against learning rate. Returns the figure."""
    import matplotlib.pyplot as plt

    mine = [r for r in rows if r["family"] == family]
    if not mine:
        raise ValueError(f"no rows of family {family!r}")
    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in mine:
        if r["loss_curve"]:
            steps = np.linspace(0, 1, len(r["loss_curve"]))
            ax_loss.plot(steps, r["loss_curve"], lw=0.8, alpha=0.7)
    ax_loss.set(xlabel="fraction of training", ylabel="training loss (nats)",
                title=f"{FAMILY_STYLE[family][0]}: every run's loss")
    for key in sorted({(r["seq_len"], r["n_pairs"], r["point"]) for r in mine}):
        pts = sorted((r for r in mine if (r["seq_len"], r["n_pairs"], r["point"]) == key), key=lambda r: r["lr"])
        ax_lr.plot([r["lr"] for r in pts], [r["accuracy"] or 0.0 for r in pts], "o-", lw=1,
                   label=f"L={key[0]}, {key[1]} pairs, {key[2]}")
    ax_lr.set(xscale="log", xlabel="peak learning rate", ylabel="MQAR accuracy",
              title="accuracy against learning rate (diverged runs at 0)", ylim=(-0.02, 1.02))
    ax_lr.legend(fontsize=6)
    fig.tight_layout()
    return fig


def _finite(x: Any) -> bool:
    return x is not None and math.isfinite(float(x))
