"""An interactive look at recall against state size: where does *your* model sit on the frontier?

Two entry points:

- :func:`plot_recall_frontier` draws a stored MQAR run at one ``(seq_len, n_pairs)`` setting: by
  default the MQAR study (``linattn_edu/results/mqar_study_cpu.json``, written by
  ``scripts/mqar_study.py``, see :mod:`linattn_edu.experiments.mqar_study`), each model at its best
  learning rate (:func:`study_record`); any record of the older sweep format
  (``bench.load_results("mqar_sweep")``, :mod:`linattn_edu.experiments.mqar_sweep`) can be passed
  as ``stored=``. It marks the decode-state size of a *chosen* model with a
  vertical line. If the stored run trained exactly that model, its point is circled and its accuracy
  stated; otherwise the title says so (train it live). A live result can be added as a star.
  It returns a :class:`matplotlib.figure.Figure` (no pyplot state), so a static book shows it.
- :func:`recall_widget` wraps the same drawing in ipywidgets controls (family, feature dim,
  window, width, setting) and a "train live" button that trains the chosen model on MQAR with
  the sweep's recipe (:func:`~linattn_edu.experiments.mqar_sweep.train_mqar`, fewer steps) and adds
  its accuracy to the plot. It redraws into an :class:`ipywidgets.Image`, so the first state is
  embedded in a static HTML page too; the controls need a live kernel (Jupyter or Colab).

The chosen model is built exactly like the stored run built its models
(:func:`~linattn_edu.experiments.mqar_sweep.model_variants` with the record's ``stack``: the study
uses Zoology's stack, a BaseConv layer then the mixer, no MLP, one head; the older sweep this
book's conv-prefixed stack), and its state is
:func:`~linattn_edu.models.model_state_bytes` at ``seq_len`` tokens with 4 bytes per number, as in
:func:`~linattn_edu.experiments.mqar_sweep.run_mqar_sweep`. Which knobs matter depends on the family:

==================  =====================  =========================================
family              feature_dim ``d``      window ``w``
==================  =====================  =========================================
``attention``       ignored                ignored (the window is the whole sequence)
``sliding_window``  ignored                used
``linear_elu``      used (``F = d``)       ignored
``linear_taylor``   used (``F = 1+d+d²``)  ignored
``based``           used                   used
==================  =====================  =========================================

The widget's family names are the sweep's (:data:`~linattn_edu.experiments.mqar_sweep.MODEL_FAMILIES`);
the study names two of them differently (:data:`STUDY_FAMILY_NAMES`): the widget's
``linear_taylor`` is the study's ``based`` (the Based paper's MQAR model, Taylor linear attention
without a window) and the widget's ``based`` is the study's ``based_window`` (Taylor linear
attention plus a sliding window in the same layer). The study's Hawk, Griffin and linearized
points are drawn but cannot be chosen.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any, Sequence

import ipywidgets
import numpy as np
from matplotlib.figure import Figure

from .. import bench, runtime
from ..experiments.mqar_sweep import (
    MODEL_FAMILIES,
    FAMILY_STYLES,
    evaluate_mqar,
    init_qk_,
    model_variants,
    plot_recall_vs_state,
    train_mqar,
)

__all__ = [
    "STUDY_FAMILY_NAMES",
    "study_record",
    "default_record",
    "live_lr",
    "plot_recall_frontier",
    "recall_widget",
    "RecallExplorer",
    "chosen_state_bytes",
    "chosen_variant",
    "stored_settings",
    "find_stored_row",
    "FAMILY_KNOBS",
    "WIDTHS",
]

#: Which knobs each family uses: ``(feature_dim, window)``.
FAMILY_KNOBS: dict[str, tuple[bool, bool]] = {
    "attention": (False, False),
    "sliding_window": (False, True),
    "linear_elu": (True, False),
    "linear_taylor": (True, False),
    "based": (True, True),
}
#: Widths (``d_model``) the widget offers.
WIDTHS = (32, 64, 128)
#: The feature-dim slider's range.
MAX_FEATURE_DIM = 16
#: Sizes used when the stored record has no config (the sweep's defaults).
_DEFAULT_CONFIG: dict[str, Any] = {"vocab_size": 256, "d_model": 64, "n_layers": 2, "n_heads": 2, "lr": 3e-3,
                                   "batch_size": 32, "n_test": 1000, "seed": 0, "qk_init": "lecun",
                                   "bytes_per_element": 4, "steps": 1500, "stack": "conv_prefixed"}
#: The MQAR study's family -> the widget's (the sweep's) name for the same model.
STUDY_FAMILY_NAMES: dict[str, str] = {"attention": "attention", "sliding_window": "sliding_window",
                                      "linear_elu": "linear_elu", "based": "linear_taylor",
                                      "based_window": "based"}


def study_record(study: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stored MQAR study as a record the widget draws: one row per model at its best learning rate.

    Args:
        study: a results record of the study (``bench.load_results("mqar_study_cpu")``); None
            loads the packaged one. Partial studies are fine: the rows present are used.

    Returns:
        ``{"name", "device", "date", "command", "git_commit", "config", "rows"}``: ``config`` holds
        the study's sizes plus ``stack="zoology"``, ``n_layers=2``, ``qk_init="lecun"`` and
        ``bytes_per_element=4`` (how the study built and counted its models); each row is one
        :func:`~linattn_edu.experiments.mqar_study.best_rows` row with ``family`` renamed by
        :data:`STUDY_FAMILY_NAMES` (Hawk, Griffin, linearized keep theirs), a ``label``, its
        ``d_model``, best ``lr``, ``accuracy`` (0.0 when every learning rate diverged),
        ``state_bytes`` and ``options`` (``{"kind", **build options}``), plus ``study_family`` and
        ``point``.

    Raises:
        ValueError: no stored study, or ``study`` is not a results record with rows.
    """
    from ..experiments.mqar_study import best_rows

    if study is None:
        study = bench.load_results("mqar_study_cpu")
        if study is None:
            raise ValueError("study: no packaged results file mqar_study_cpu.json; pass study=<a results record>")
    if not isinstance(study, dict) or not isinstance(study.get("rows"), list) or not isinstance(
            study.get("config"), dict):
        raise ValueError(f"study must be a results record with 'rows' and 'config' "
                         f"(bench.load_results('mqar_study_cpu')), got {type(study).__name__}")
    cfg = study["config"]
    rows = []
    for r in sorted(best_rows(study["rows"]), key=lambda r: (r["seq_len"], r["n_pairs"], r["family"],
                                                               r["state_bytes"])):
        family = STUDY_FAMILY_NAMES.get(r["family"], r["family"])
        if family in MODEL_FAMILIES:
            opts = r["options"]
            var = chosen_variant(family, feature_dim=opts.get("feature_dim", 1), window=opts.get("window", 2),
                                 seq_len=r["seq_len"], stack="zoology")
            label = var["label"]
        else:
            label = f"{r['family']} {r['point']}"
        if r["d_model"] != cfg["d_model"] and not r["point"].startswith("d_model="):
            label += f", width {r['d_model']}"
        rows.append({"family": family, "label": label, "seq_len": r["seq_len"], "n_pairs": r["n_pairs"],
                     "state_bytes": int(r["state_bytes"]), "accuracy": float(r["accuracy"] or 0.0),
                     "d_model": int(r["d_model"]), "lr": r["lr"], "options": {"kind": r["kind"], **r["options"]},
                     "study_family": r["family"], "point": r["point"]})
    config = {**cfg, "n_layers": 2, "stack": "zoology", "qk_init": "lecun", "bytes_per_element": 4}
    return {"name": study.get("name", "mqar_study_cpu"), "device": study.get("device", "?"),
            "date": study.get("date", ""), "git_commit": study.get("git_commit"),
            "command": study.get("command", "?"), "config": config, "rows": rows}


def default_record() -> dict[str, Any]:
    """What the widget shows without ``stored=``: :func:`study_record` of the packaged study, or
    (when no study is stored) the packaged sweep ``bench.load_results("mqar_sweep")``."""
    study = bench.load_results("mqar_study_cpu")
    return study_record(study) if study is not None else stored_record(None)


# ----------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _family(family: Any) -> str:
    if not isinstance(family, str) or family not in MODEL_FAMILIES:
        raise ValueError(f"family must be one of {list(MODEL_FAMILIES)}, got {family!r}")
    return family


def _validate(
    family: Any, feature_dim: Any, window: Any, d_model: Any, seq_len: Any, n_heads: Any = 2
) -> tuple[str, int, int, int, int]:
    family = _family(family)
    feature_dim = _int(feature_dim, "feature_dim", 1)
    window = _int(window, "window", 1)
    n_heads = _int(n_heads, "n_heads", 1)
    d_model = _int(d_model, "d_model", 2)
    if d_model % n_heads or (d_model // n_heads) % 2:
        raise ValueError(f"d_model / n_heads must be an even int (RoPE), got d_model={d_model}, n_heads={n_heads}")
    seq_len = _int(seq_len, "seq_len", 2)
    return family, feature_dim, window, d_model, seq_len


def stored_config(stored: dict[str, Any]) -> dict[str, Any]:
    """The stored sweep's config, with the sweep's defaults for anything missing."""
    return {**_DEFAULT_CONFIG, **(stored.get("config") or {})}


def stored_record(stored: Any) -> dict[str, Any]:
    """``stored``, or the packaged sweep ``mqar_sweep.json`` when None (the widgets of
    :mod:`linattn_edu.widgets.static` use this default; :func:`recall_widget` and
    :func:`plot_recall_frontier` default to :func:`default_record`)."""
    if stored is None:
        stored = bench.load_results("mqar_sweep")
        if stored is None:
            raise ValueError("stored: no packaged results file mqar_sweep.json; pass stored=<a results record>")
    if not isinstance(stored, dict) or not isinstance(stored.get("rows"), list):
        raise ValueError(f"stored must be a results record with 'rows' (bench.load_results('mqar_sweep')), "
                         f"got {type(stored).__name__}")
    return stored


def stored_settings(stored: dict[str, Any] | None = None) -> list[tuple[int, int]]:
    """The ``(seq_len, n_pairs)`` settings present in a stored sweep (default: the packaged one), sorted."""
    stored = stored_record(stored)
    return sorted({(int(r["seq_len"]), int(r["n_pairs"])) for r in stored["rows"]})


def _check_setting(stored: dict[str, Any], seq_len: int, n_pairs: Any) -> int:
    settings = stored_settings(stored)
    if n_pairs is None:  # the first stored setting at this length
        n_pairs = next((p for L, p in settings if L == seq_len), None)
        if n_pairs is None:
            raise ValueError(f"(seq_len, n_pairs) must be a setting of the stored run, one of {settings}, "
                             f"got seq_len={seq_len}")
    n_pairs = _int(n_pairs, "n_pairs", 1)
    if (seq_len, n_pairs) not in settings:
        raise ValueError(f"(seq_len, n_pairs) must be a setting of the stored record, one of {settings}, "
                         f"got {(seq_len, n_pairs)}")
    return n_pairs


# ----------------------------------------------------------------------------------------------
# The chosen model
# ----------------------------------------------------------------------------------------------


def chosen_variant(family: str, *, feature_dim: int, window: int, seq_len: int, n_layers: int = 2,
                   stack: str | None = None) -> dict[str, Any]:
    """The chosen model as :func:`~linattn_edu.experiments.mqar_sweep.model_variants` describes it.

    ``stack``: ``"zoology"`` (the MQAR study's models) or ``"conv_prefixed"`` (the older sweep's;
    the default when None), as in ``model_variants``.

    Returns:
        ``{"family", "label", "kind", "options"}``: the one variant ``model_variants`` yields for
        this family with ``windows=[window]``, ``feature_dims={family: [feature_dim]}`` or
        ``based=[{"feature_dim", "window"}]`` (knobs the family does not use are ignored). A
        ``sliding_window`` with ``window >= seq_len``, which ``model_variants`` skips because it
        is full attention, is built the same way with that window.

    Raises:
        ValueError: unknown ``family``, ``feature_dim < 1``, ``window < 1``, ``seq_len < 2``.
    """
    family = _family(family)
    feature_dim = _int(feature_dim, "feature_dim", 1)
    window = _int(window, "window", 1)
    seq_len = _int(seq_len, "seq_len", 2)
    n_layers = _int(n_layers, "n_layers", 1)
    stack = "conv_prefixed" if stack is None else stack
    variants = model_variants(
        seq_len, n_layers=n_layers, windows=[window], feature_dims={family: [feature_dim]} if family in (
            "linear_elu", "linear_taylor") else (), based=[{"feature_dim": feature_dim, "window": window}],
        families=(family,), stack=stack)
    if variants:
        return variants[0]
    # sliding_window with window >= seq_len: what model_variants would build, were it not skipped
    (full,) = model_variants(seq_len, n_layers=n_layers, families=("attention",), stack=stack)
    return {"family": family, "label": f"window {window} (>= L: full attention)", "kind": "based",
            "options": {**full["options"], "window": window}}


@lru_cache(maxsize=256)
def _state_bytes_cached(family: str, feature_dim: int, window: int, d_model: int, seq_len: int, n_layers: int,
                        n_heads: int, bytes_per_element: int, stack: str | None = None) -> int:
    from ..models import build_model, model_state_bytes

    var = chosen_variant(family, feature_dim=feature_dim, window=window, seq_len=seq_len, n_layers=n_layers,
                         stack=stack)
    # The vocabulary does not enter the state: a small one keeps the build cheap.
    model = build_model(var["kind"], vocab_size=seq_len + 1, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                        **var["options"])
    return int(model_state_bytes(model, seq_len=seq_len, bytes_per_element=bytes_per_element))


def chosen_state_bytes(
    family: str,
    *,
    feature_dim: int,
    window: int,
    d_model: int,
    seq_len: int,
    n_layers: int = 2,
    n_heads: int = 2,
    bytes_per_element: int = 4,
    stack: str | None = None,
) -> int:
    """Decode-state bytes of the chosen model after ``seq_len`` tokens, as the MQAR sweep and study count them.

    ``stack``: as in :func:`chosen_variant` (None: ``"conv_prefixed"``; the study's rows need
    ``"zoology"`` and ``n_heads=1``, i.e. the values of ``stored_config(study_record())``).

    Builds the model of :func:`chosen_variant` with ``build_model`` and returns
    ``model_state_bytes(model, seq_len=seq_len, bytes_per_element=bytes_per_element)``: exactly the
    ``state_bytes`` of a :func:`~linattn_edu.experiments.mqar_sweep.run_mqar_sweep` row (which
    uses 4 bytes per number by default). Results are cached.

    Raises:
        ValueError: unknown ``family``, ``feature_dim < 1``, ``window < 1``, ``d_model`` not an
            even multiple of ``n_heads`` (RoPE), ``seq_len < 2``, each naming the argument.
    """
    family, feature_dim, window, d_model, seq_len = _validate(family, feature_dim, window, d_model, seq_len, n_heads)
    n_layers = _int(n_layers, "n_layers", 1)
    bpe = _int(bytes_per_element, "bytes_per_element", 1)
    return _state_bytes_cached(family, feature_dim, window, d_model, seq_len, n_layers, int(n_heads), bpe, stack)


def find_stored_row(
    stored: dict[str, Any], family: str, *, feature_dim: int, window: int, d_model: int, seq_len: int, n_pairs: int
) -> dict[str, Any] | None:
    """The stored row of exactly the chosen model at ``(seq_len, n_pairs)``, or None.

    A row matches when its family and ``options`` equal the chosen variant's (``{"kind",
    **options}``, see :func:`chosen_variant`, built with the record's ``stack``) and its width
    (the row's ``d_model``, else the record's) equals ``d_model``.
    """
    cfg = stored_config(stored)
    var = chosen_variant(family, feature_dim=feature_dim, window=window, seq_len=seq_len, n_layers=cfg["n_layers"],
                         stack=cfg["stack"])
    options = {"kind": var["kind"], **var["options"]}
    for row in stored["rows"]:
        if (row["family"] == family and row["seq_len"] == seq_len and row["n_pairs"] == n_pairs
                and row.get("d_model", cfg["d_model"]) == d_model and row.get("options") == options):
            return row
    return None


def _widths_stored(stored: dict[str, Any]) -> set[int]:
    cfg = stored_config(stored)
    return {int(r.get("d_model", cfg["d_model"])) for r in stored["rows"]}


# ----------------------------------------------------------------------------------------------
# The figure
# ----------------------------------------------------------------------------------------------


def _live_list(live: Any) -> list[dict[str, Any]]:
    if live is None:
        return []
    items = [live] if isinstance(live, dict) else live
    try:
        items = list(items)
    except TypeError:
        raise ValueError(f"live must be a dict with 'state_bytes', 'accuracy', 'label' (or a list of them), "
                         f"got {live!r}") from None
    for item in items:
        if not isinstance(item, dict) or not {"state_bytes", "accuracy", "label"} <= item.keys():
            raise ValueError(f"live must be a dict with 'state_bytes', 'accuracy', 'label' (or a list of them), "
                             f"got {item!r}")
        if not item["state_bytes"] > 0 or not 0.0 <= item["accuracy"] <= 1.0:
            raise ValueError(f"live needs state_bytes > 0 and accuracy in [0, 1], got {item!r}")
    return items


def _bytes_text(n: int) -> str:
    return f"{n:,} bytes ({n / 1024:.1f} KiB)"


def _draw(
    fig: Figure, stored: dict[str, Any], family: str, feature_dim: int, window: int, d_model: int, seq_len: int,
    n_pairs: int, live: list[dict[str, Any]],
) -> None:
    """Draw the stored points, the chosen model's state and any live points into an empty ``fig``."""
    cfg = stored_config(stored)
    ax = fig.subplots()
    plot_recall_vs_state(None, stored=stored, seq_len=seq_len, n_pairs=n_pairs, ax=ax)
    # The footnote cites the stored run once: drop the "(stored: device, date)" suffix of each family.
    date = str(stored.get("date", ""))[:10]
    suffix = f" (stored: {stored.get('device', '?')}, {date})"
    for line in ax.lines:
        label = str(line.get_label())
        if label.endswith(suffix):
            line.set_label(label[: -len(suffix)] + " (stored)")

    var = chosen_variant(family, feature_dim=feature_dim, window=window, seq_len=seq_len, n_layers=cfg["n_layers"],
                         stack=cfg["stack"])
    nbytes = chosen_state_bytes(family, feature_dim=feature_dim, window=window, d_model=d_model, seq_len=seq_len,
                                n_layers=cfg["n_layers"], n_heads=cfg["n_heads"],
                                bytes_per_element=cfg["bytes_per_element"], stack=cfg["stack"])
    color = FAMILY_STYLES.get(family, ("tab:gray", "x"))[0]
    chosen = f"{var['label']}, width {d_model}"
    ax.axvline(nbytes, color=color, linestyle=":", linewidth=2, gid="chosen-state",
               label=f"chosen: {chosen}\n  state {nbytes:,} B")
    ax.text(nbytes, 0.5, f" {_bytes_text(nbytes)} ", transform=ax.get_xaxis_transform(), rotation=90,
            ha="right", va="center", fontsize=8, color=color, gid="chosen-bytes")

    row = find_stored_row(stored, family, feature_dim=feature_dim, window=window, d_model=d_model, seq_len=seq_len,
                          n_pairs=n_pairs)
    if row is not None:
        ax.plot([row["state_bytes"]], [row["accuracy"]], linestyle="none", marker="o", markersize=16,
                markerfacecolor="none", markeredgecolor="black", markeredgewidth=2, gid="stored-match",
                label=f"chosen, stored: {row['accuracy']:.1%}")
        verdict = f"in the stored run: {row['accuracy']:.1%} recall" + (
            f" (best lr {row['lr']:g})" if row.get("lr") is not None else "")
    else:
        verdict = "not in the stored run: train it live"
        widths = _widths_stored(stored)
        if d_model not in widths:
            verdict = f"not in the stored run (width {', '.join(map(str, sorted(widths)))} there): train it live"

    xs = [nbytes]
    for i, item in enumerate(live):
        xs.append(item["state_bytes"])
        ax.plot([item["state_bytes"]], [item["accuracy"]], linestyle="none", marker="*", markersize=18,
                color="gold", markeredgecolor="black", markeredgewidth=1.2, zorder=5, gid="live",
                label=f"live: {item['label']}: {item['accuracy']:.1%}" if i >= len(live) - 4 else None)

    lo, hi = ax.get_xlim()
    if min(xs) < lo * 1.3 or max(xs) > hi / 1.3:
        lo, hi = min(lo, min(xs) / 1.5), max(hi, max(xs) * 1.5)
        ax.set_xlim(lo, hi)
    ax.set_xlabel("decode state (bytes per sequence, float32, log scale)")
    ax.set_ylabel("MQAR accuracy (held-out)")
    ax.set_title(f"Recall vs state size: MQAR, L = {seq_len}, {n_pairs} key-value pairs\n"
                 f"chosen: {chosen}, state {nbytes:,} B: {verdict}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.supxlabel(f"precomputed on {stored.get('device', '?')}, {date} "
                  f"({cfg['n_layers']} layers, d_model {cfg['d_model']}, {cfg['steps']} steps, {cfg['stack']} stack; "
                  f"rerun: {stored.get('command', '?')})", fontsize=7, x=0.01, ha="left", color="0.35")


def plot_recall_frontier(
    family: str = "based",
    *,
    feature_dim: int = 4,
    window: int = 16,
    d_model: int = 64,
    seq_len: int = 64,
    n_pairs: int | None = None,
    stored: dict[str, Any] | None = None,
    live: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
    figsize: tuple[float, float] = (10.0, 4.6),
) -> Figure:
    """A stored MQAR run at one setting, with the chosen model's state size marked; returns the Figure.

    Args:
        family: one of :data:`~linattn_edu.experiments.mqar_sweep.MODEL_FAMILIES`.
        feature_dim: projected q/k dim ``d`` of the linear-attention families and ``based``.
        window: sliding-window size of ``sliding_window`` and ``based``.
        d_model: the model's width (the study used 64, and 32/64/128 for attention).
        seq_len, n_pairs: the MQAR setting; must be one of the stored run's settings (``n_pairs``
            None: the first stored one at ``seq_len``).
        stored: a results record: :func:`study_record` or the sweep's
            (``bench.load_results("mqar_sweep")``); None: :func:`default_record` (the study).
        live: ``{"state_bytes", "accuracy", "label"}`` of a model trained live (or a list of
            them), drawn as gold stars.
        figsize: size in inches.

    Returns:
        A :class:`matplotlib.figure.Figure` with one Axes (log x in bytes, accuracy in y): the
        stored points and frontier as :func:`~linattn_edu.experiments.mqar_sweep.plot_recall_vs_state`
        draws them, a dotted vertical line (``gid="chosen-state"``) at the chosen model's state, a
        black ring (``gid="stored-match"``) around the stored point of exactly that model if there is
        one (the title then states its accuracy, else it says "not in the stored run: train it
        live"), live stars (``gid="live"``), and a footnote citing the stored run's device and date.

    Raises:
        ValueError: unknown ``family``, ``feature_dim < 1``, ``window < 1``, bad ``d_model``,
            ``(seq_len, n_pairs)`` not a stored setting, a malformed ``stored`` or ``live``, each
            message naming the argument.
    """
    family, feature_dim, window, d_model, seq_len = _validate(family, feature_dim, window, d_model, seq_len)
    stored = default_record() if stored is None else stored_record(stored)
    n_pairs = _check_setting(stored, seq_len, n_pairs)
    cfg = stored_config(stored)
    if d_model % cfg["n_heads"] or (d_model // cfg["n_heads"]) % 2:
        raise ValueError(f"d_model / n_heads must be an even int (RoPE), got d_model={d_model}, "
                         f"n_heads={cfg['n_heads']}")
    live_items = _live_list(live)
    fig = Figure(figsize=figsize, layout="constrained")
    _draw(fig, stored, family, feature_dim, window, d_model, seq_len, n_pairs, live_items)
    return fig


# ----------------------------------------------------------------------------------------------
# The widget
# ----------------------------------------------------------------------------------------------


def live_lr(stored: dict[str, Any], family: str, seq_len: int, n_pairs: int) -> float:
    """The learning rate of a live run of ``family`` at ``(seq_len, n_pairs)``.

    The older sweep used one ``lr`` for every model: that one. The study swept ``lrs``: the best
    learning rate of the family's stored points at that setting (the most frequent one; ties go
    to the smaller), else the middle value of ``lrs``.
    """
    cfg = stored_config(stored)
    if "lrs" not in cfg:
        return float(cfg["lr"])
    best = [r["lr"] for r in stored["rows"] if r["family"] == family and (r["seq_len"], r["n_pairs"]) == (
        seq_len, n_pairs) and r.get("lr") is not None]
    if best:
        return float(min(sorted(set(best)), key=lambda lr: -best.count(lr)))
    lrs = sorted(cfg["lrs"])
    return float(lrs[len(lrs) // 2])


def _train_sizes(steps: int | None, cfg: dict[str, Any]) -> dict[str, int]:
    """Steps, batch size and example counts of a live run (see :func:`recall_widget`)."""
    if steps is None:
        steps = runtime.pick(fast=3, cpu=300, gpu=int(cfg["steps"]))
    steps = _int(steps, "train_steps", 1)
    batch_size = runtime.pick(fast=8, cpu=int(cfg["batch_size"]), gpu=int(cfg["batch_size"]))
    n_test = runtime.pick(fast=32, cpu=500, gpu=int(cfg["n_test"]))
    # One pass over fresh examples, as in the stored sweep (n_train = steps * batch_size there).
    return {"steps": steps, "batch_size": batch_size, "n_train": steps * batch_size, "n_test": n_test}


class RecallExplorer(ipywidgets.VBox):
    """The widget :func:`recall_widget` returns: controls above a rendered :func:`plot_recall_frontier` figure.

    Attributes:
        family_dropdown: :class:`ipywidgets.Dropdown` over the model families.
        feature_dim_slider, window_slider: :class:`ipywidgets.IntSlider` controls, disabled when
            the family does not use them (:data:`FAMILY_KNOBS`).
        width_dropdown: :class:`ipywidgets.Dropdown` of ``d_model`` (:data:`WIDTHS`).
        setting_dropdown: :class:`ipywidgets.Dropdown` of the stored ``(seq_len, n_pairs)`` settings.
        train_button: :class:`ipywidgets.Button` "train live", which calls :meth:`train_live`.
        status: :class:`ipywidgets.HTML` line saying what the last live run did.
        image: the :class:`ipywidgets.Image` showing the current figure (PNG).
        figure: the :class:`matplotlib.figure.Figure` last drawn.
        redraws: how many times the figure has been drawn.
        live_runs: every live result so far (dicts, see :meth:`train_live`); those at the current
            setting are drawn as stars.
        last_live: the latest of them, or None.
        stored: the stored sweep's record.
    """

    def __init__(
        self, family: str, feature_dim: int, window: int, d_model: int, seq_len: int, n_pairs: int, *,
        stored: dict[str, Any], dpi: int, train_steps: int | None,
    ) -> None:
        style = {"description_width": "150px"}
        layout = ipywidgets.Layout(width="480px")
        self.stored = stored
        self.dpi = dpi
        self.train_steps = train_steps
        self.redraws = 0
        self.figure: Figure | None = None
        self.live_runs: list[dict[str, Any]] = []
        self.last_live: dict[str, Any] | None = None
        self._busy = False
        settings = stored_settings(stored)
        self.family_dropdown = ipywidgets.Dropdown(
            options=list(MODEL_FAMILIES), value=family, description="family", style=style, layout=layout)
        self.feature_dim_slider = ipywidgets.IntSlider(
            value=feature_dim, min=1, max=MAX_FEATURE_DIM, description="feature dim d", style=style, layout=layout,
            continuous_update=False)
        self.window_slider = ipywidgets.IntSlider(
            value=window, min=2, max=seq_len, description="window w", style=style, layout=layout,
            continuous_update=False)
        self.width_dropdown = ipywidgets.Dropdown(
            options=list(WIDTHS), value=d_model, description="width d_model", style=style, layout=layout)
        self.setting_dropdown = ipywidgets.Dropdown(
            options=[(f"L = {s[0]}, {s[1]} pairs", s) for s in settings], value=(seq_len, n_pairs),
            description="MQAR setting", style=style, layout=layout)
        self.train_button = ipywidgets.Button(
            description="train live", icon="play", tooltip="train the chosen model on MQAR now and add its point")
        self.status = ipywidgets.HTML(value="")
        self.image = ipywidgets.Image(format="png", layout=ipywidgets.Layout(width="100%"))
        self.setting_dropdown.observe(self._on_setting, names="value")
        self.family_dropdown.observe(self._on_family, names="value")
        for control in (self.feature_dim_slider, self.window_slider, self.width_dropdown):
            control.observe(self._on_change, names="value")
        self.train_button.on_click(lambda _: self.train_live())
        self._update_enabled()
        controls = ipywidgets.VBox([
            self.family_dropdown, self.feature_dim_slider, self.window_slider, self.width_dropdown,
            self.setting_dropdown, ipywidgets.HBox([self.train_button, self.status])])
        super().__init__([controls, self.image])
        self.redraw()

    @property
    def state(self) -> dict[str, Any]:
        """The current :func:`plot_recall_frontier` arguments (without ``stored`` and ``live``)."""
        seq_len, n_pairs = self.setting_dropdown.value
        return dict(family=self.family_dropdown.value, feature_dim=self.feature_dim_slider.value,
                    window=self.window_slider.value, d_model=self.width_dropdown.value, seq_len=seq_len,
                    n_pairs=n_pairs)

    def _update_enabled(self) -> None:
        uses_dim, uses_window = FAMILY_KNOBS[self.family_dropdown.value]
        self.feature_dim_slider.disabled = not uses_dim
        self.window_slider.disabled = not uses_window

    def _on_family(self, change: dict[str, Any]) -> None:
        self._update_enabled()
        self.redraw()

    def _on_setting(self, change: dict[str, Any]) -> None:
        # A shorter sequence may clamp the window slider, which fires its own event: redraw once, after.
        self._busy = True
        try:
            self.window_slider.max = change["new"][0]
        finally:
            self._busy = False
        self.redraw()

    def _on_change(self, change: dict[str, Any]) -> None:
        if not self._busy:
            self.redraw()

    def _live_here(self) -> list[dict[str, Any]]:
        seq_len, n_pairs = self.setting_dropdown.value
        return [r for r in self.live_runs if (r["seq_len"], r["n_pairs"]) == (seq_len, n_pairs)]

    def redraw(self) -> None:
        """Draw the current state (and the live points at its setting) into a fresh figure; show it as a PNG."""
        fig = plot_recall_frontier(**self.state, stored=self.stored, live=self._live_here() or None)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=self.dpi)
        self.figure = fig
        self.image.value = buffer.getvalue()
        self.redraws += 1

    def train_live(self) -> dict[str, Any]:
        """Train the chosen model on MQAR at the chosen setting, evaluate it, and redraw with its star.

        The stored run's recipe (:func:`~linattn_edu.experiments.mqar_sweep.run_mqar_sweep`, or the
        study's, :func:`~linattn_edu.experiments.mqar_study.run_mqar_study`): data from
        :func:`~linattn_edu.tasks.make_mqar` with the stored ``vocab_size`` (training ``seed``,
        test ``seed + 1``), the model built after ``torch.manual_seed(seed)``, query/key
        re-initialization (:func:`~linattn_edu.experiments.mqar_sweep.init_qk_`) when the sweep
        used it, :func:`~linattn_edu.experiments.mqar_sweep.train_mqar` with its batch size and
        learning rate (:func:`live_lr`: the study's best one for the family at that setting), :func:`~linattn_edu.experiments.mqar_sweep.evaluate_mqar`. Only the number of steps
        differs: ``train_steps`` if given, else ``runtime.pick(fast=3, cpu=300, gpu=<stored
        steps>)``, over ``steps · batch_size`` fresh examples. Fewer steps than the stored run
        usually mean lower accuracy: compare live points with each other.

        Returns:
            The live result, also appended to :attr:`live_runs` and kept in :attr:`last_live`:
            ``{"label", "state_bytes", "accuracy", "lr", "family", "options", "d_model", "seq_len",
            "n_pairs", "steps", "final_loss", "seconds"}``.
        """
        import torch

        from ..models import build_model
        from ..tasks import make_mqar

        st = self.state
        cfg = stored_config(self.stored)
        sizes = _train_sizes(self.train_steps, cfg)
        var = chosen_variant(st["family"], feature_dim=st["feature_dim"], window=st["window"],
                             seq_len=st["seq_len"], n_layers=cfg["n_layers"], stack=cfg["stack"])
        lr = live_lr(self.stored, st["family"], st["seq_len"], st["n_pairs"])
        label = f"{var['label']}, width {st['d_model']}, {sizes['steps']} steps"
        self.train_button.disabled = True
        self.status.value = f"training <b>{label}</b> on MQAR ..."
        try:
            seed, vocab = int(cfg["seed"]), int(cfg["vocab_size"])
            x_tr, y_tr = make_mqar(sizes["n_train"], seq_len=st["seq_len"], n_pairs=st["n_pairs"], vocab_size=vocab,
                                   seed=seed)
            x_te, y_te = make_mqar(sizes["n_test"], seq_len=st["seq_len"], n_pairs=st["n_pairs"], vocab_size=vocab,
                                   seed=seed + 1)
            torch.manual_seed(seed)
            model = build_model(var["kind"], vocab_size=vocab, d_model=st["d_model"], n_layers=cfg["n_layers"],
                                n_heads=cfg["n_heads"], **var["options"])
            if cfg["qk_init"] == "lecun":
                init_qk_(model)
            hist = train_mqar(model, x_tr, y_tr, steps=sizes["steps"], batch_size=sizes["batch_size"],
                              lr=lr, seed=seed)
            accuracy = float(evaluate_mqar(model, x_te, y_te))
        except Exception as err:
            self.status.value = f"live training failed: {type(err).__name__}: {err}"
            raise
        finally:
            self.train_button.disabled = False
        result = {
            "label": label,
            "state_bytes": chosen_state_bytes(st["family"], feature_dim=st["feature_dim"], window=st["window"],
                                              d_model=st["d_model"], seq_len=st["seq_len"],
                                              n_layers=cfg["n_layers"], n_heads=cfg["n_heads"],
                                              bytes_per_element=cfg["bytes_per_element"], stack=cfg["stack"]),
            "accuracy": accuracy, "lr": lr, "family": st["family"], "options": {"kind": var["kind"], **var["options"]},
            "d_model": st["d_model"], "seq_len": st["seq_len"], "n_pairs": st["n_pairs"], "steps": sizes["steps"],
            "final_loss": hist["final_loss"], "seconds": hist["seconds"],
        }
        self.live_runs.append(result)
        self.last_live = result
        self.status.value = (f"<b>{label}</b>: {accuracy:.1%} recall ({hist['seconds']:.0f} s of training, "
                             f"final loss {hist['final_loss']:.2f})")
        self.redraw()
        return result


def recall_widget(
    family: str = "based",
    *,
    feature_dim: int = 4,
    window: int = 16,
    d_model: int = 64,
    seq_len: int = 64,
    n_pairs: int | None = None,
    dpi: int = 80,
    train_steps: int | None = None,
    stored: dict[str, Any] | None = None,
) -> RecallExplorer:
    """Controls for the model family, its knobs, width and MQAR setting above :func:`plot_recall_frontier`.

    Every change redraws the figure: the stored run's points at the chosen setting and a
    vertical line at the chosen model's state size (its stored point circled when the run has
    it). "train live" trains the chosen model now (:meth:`RecallExplorer.train_live`; on a
    2-core CPU the default 300 steps take ~15 s at L = 64 and width 64, up to about a minute at
    L = 128 and width 128) and adds its accuracy as a star. Callbacks need a running kernel: in a
    static HTML page the widget shows its first state only.

    Args:
        family, feature_dim, window, d_model, seq_len, n_pairs: the initial state, as in
            :func:`plot_recall_frontier`; ``feature_dim`` in ``1..16``, ``window`` in
            ``2..seq_len``, ``d_model`` one of :data:`WIDTHS`.
        dpi: resolution of the rendered figure.
        train_steps: steps of a live run (None: ``runtime.pick(fast=3, cpu=300, gpu=<stored steps>)``).
        stored: the record to draw (None: :func:`default_record`, the MQAR study).

    Returns:
        A :class:`RecallExplorer` (an :class:`ipywidgets.VBox`).

    Raises:
        ValueError: bad initial state (as :func:`plot_recall_frontier`), a value beyond the
            controls' ranges, a setting not in the stored sweep, ``train_steps < 1``, naming the
            argument.
    """
    family, feature_dim, window, d_model, seq_len = _validate(family, feature_dim, window, d_model, seq_len)
    stored = default_record() if stored is None else stored_record(stored)
    n_pairs = _check_setting(stored, seq_len, n_pairs)
    if feature_dim > MAX_FEATURE_DIM:
        raise ValueError(f"feature_dim must be in 1..{MAX_FEATURE_DIM}, got {feature_dim}")
    if not 2 <= window <= seq_len:
        raise ValueError(f"window must be in 2..seq_len={seq_len}, got {window}")
    if d_model not in WIDTHS:
        raise ValueError(f"d_model must be one of {list(WIDTHS)}, got {d_model}")
    dpi = _int(dpi, "dpi", 10)
    if train_steps is not None:
        train_steps = _int(train_steps, "train_steps", 1)
    return RecallExplorer(family, feature_dim, window, d_model, seq_len, n_pairs, stored=stored, dpi=dpi,
                          train_steps=train_steps)
