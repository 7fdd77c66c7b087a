"""Reference runs: heavy experiments run once by a script, stored with provenance, loaded by the book.

A chapter that trains models shows two things:

- the **reference run**: the experiment at the sizes that show the paper's result (hours on a
  2-core CPU, minutes on a GPU), run once by ``python scripts/run_experiment.py NAME --preset cpu``
  and stored in ``linattn_edu/results/NAME_PRESET.json``; and
- a **live miniature**: the same code at tiny sizes, run while the chapter executes (seconds).

:func:`reference_run` is what a chapter calls. It loads the stored run (the ``gpu`` one on a GPU
when there is one, else the ``cpu`` one), or, when ``LINATTN_RETRAIN=1`` is set
(:func:`retrain`), runs the whole experiment live at this machine's preset instead.

Every experiment is split into **units**, one per trained model (one position scheme, one
mechanism, one variant, ...): the script stores each unit's result as soon as it finishes
(:class:`linattn_edu.bench.ResumableResults`), so an interrupted run continues where it stopped,
and :func:`merge_results` puts the units back together into exactly the dict the experiment's
``run`` function returns for all units at once (rows concatenated, per-unit dicts merged,
seconds added).

Experiments register themselves with :func:`register` in their own module
(:data:`EXPERIMENTS` maps names to :class:`StoredExperiment`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import bench, runtime

__all__ = [
    "RETRAIN_ENV",
    "StoredExperiment",
    "EXPERIMENTS",
    "register",
    "experiment",
    "retrain",
    "units_of",
    "merge_results",
    "run_stored",
    "load_stored",
    "preferred_presets",
    "reference_run",
    "describe",
    "label",
    "live_preset",
]

#: The environment variable that makes :func:`reference_run` rerun every experiment live.
RETRAIN_ENV = "LINATTN_RETRAIN"


@dataclass(frozen=True)
class StoredExperiment:
    """An experiment whose reference run is stored.

    Attributes:
        name: the experiment's name; its results file is ``NAME_PRESET.json``.
        chapter: the notebook that shows it (e.g. ``"03_alibi"``).
        run: the function that runs it: ``run(**config)`` returns a dict with at least ``"rows"``
            (list), ``"config"`` (dict), ``"device"`` (str) and ``"seconds"`` (float).
        config: ``config(preset)`` returns the keyword arguments for ``run`` (``preset=None``:
            this machine's preset, :func:`linattn_edu.runtime.mode`).
        unit_arg: the argument of ``run`` that lists the models (e.g. ``"schemes"``); one unit is
            ``run(**dict(config, unit_arg=[unit]))``. None: the whole run is one unit.
        default_units: the units when ``config`` does not name ``unit_arg``.
        presets: the presets a stored run may be made with.
        description: one line for the script's ``--help`` and :func:`describe`.
    """

    name: str
    chapter: str
    run: Callable[..., dict[str, Any]]
    config: Callable[[str | None], dict[str, Any]]
    unit_arg: str | None = None
    default_units: tuple[Any, ...] = ()
    presets: tuple[str, ...] = ("cpu", "gpu")
    description: str = ""
    run_options: dict[str, Any] = field(default_factory=dict)


#: Every registered experiment, by name (filled by the experiment modules on import).
EXPERIMENTS: dict[str, StoredExperiment] = {}


def register(spec: StoredExperiment) -> StoredExperiment:
    """Add ``spec`` to :data:`EXPERIMENTS` (re-registering a name replaces it); returns ``spec``."""
    if not isinstance(spec, StoredExperiment):
        raise TypeError(f"spec must be a StoredExperiment, got {type(spec).__name__}")
    if not spec.name.replace("_", "").isalnum():
        raise ValueError(f"spec.name must be letters, digits and '_', got {spec.name!r}")
    EXPERIMENTS[spec.name] = spec
    return spec


def experiment(name: str) -> StoredExperiment:
    """The registered experiment ``name``.

    Raises:
        ValueError: no experiment of that name (the message lists the names).
    """
    from .. import experiments as _all  # noqa: F401  (importing the package registers every experiment)

    if name not in EXPERIMENTS:
        raise ValueError(f"name must be one of {sorted(EXPERIMENTS)}, got {name!r}")
    return EXPERIMENTS[name]


def retrain() -> bool:
    """True when ``LINATTN_RETRAIN=1`` (or true/yes/on): chapters rerun their experiments live."""
    return os.environ.get(RETRAIN_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def units_of(spec: StoredExperiment, config: dict[str, Any]) -> list[Any]:
    """The units of ``spec`` under ``config``: ``config[spec.unit_arg]`` (or the defaults); ``[None]``
    when the experiment is one unit."""
    if spec.unit_arg is None:
        return [None]
    units = config.get(spec.unit_arg, spec.default_units)
    if isinstance(units, (str, bytes)) or not isinstance(units, Sequence) and not isinstance(units, dict):
        units = [units]
    units = list(units)
    if not units:
        raise ValueError(f"config[{spec.unit_arg!r}] must list at least one unit, got {units!r}")
    return units


def _unit_config(spec: StoredExperiment, config: dict[str, Any], unit: Any) -> dict[str, Any]:
    if spec.unit_arg is None:
        return dict(config)
    units = config.get(spec.unit_arg, spec.default_units)
    if isinstance(units, dict):  # e.g. {variant name: options}: keep the unit's entry
        return dict(config, **{spec.unit_arg: {unit: units[unit]}})
    return dict(config, **{spec.unit_arg: [unit]})


def merge_results(parts: Sequence[dict[str, Any]], *, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Put per-unit results back together into one result, as if run at once.

    ``"rows"`` lists are concatenated in unit order; ``"seconds"`` are added; other dicts (e.g.
    ``"train"``, per model) are merged key by key; ``"config"`` is ``config`` when given (the full
    config), else the first part's; any other value is the first part's that is not None.

    Raises:
        ValueError: ``parts`` is empty or a part is not a dict with ``"rows"``.
    """
    parts = list(parts)
    if not parts:
        raise ValueError("parts must hold at least one result")
    for i, p in enumerate(parts):
        if not isinstance(p, dict) or not isinstance(p.get("rows"), list):
            raise ValueError(f"parts[{i}] must be a result dict with a 'rows' list")
    merged: dict[str, Any] = {}
    for p in parts:
        for key, value in p.items():
            if key == "rows":
                merged.setdefault("rows", []).extend(value)
            elif key == "seconds":
                merged["seconds"] = merged.get("seconds", 0.0) + float(value or 0.0)
            elif key == "config":
                merged.setdefault("config", value)
            elif isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            elif merged.get(key) is None:
                merged[key] = value
    if config is not None:
        merged["config"] = {**merged.get("config", {}), **config}
    return merged


def _file_name(name: str, preset: str) -> str:
    return f"{name}_{preset.replace('-', '_')}"


def run_stored(
    name: str,
    preset: str = "cpu",
    *,
    directory: Path | str | None = None,
    fresh: bool = False,
    command: str | None = None,
    on_unit: Callable[[Any, dict[str, Any], float], None] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Run experiment ``name`` at ``preset`` unit by unit into ``NAME_PRESET.json``, resumably.

    Units already in the file (same config, same device) are skipped; each finished unit is
    written at once with its seconds added to the file's ``wall_seconds``. ``overrides`` are
    passed to the run (e.g. ``progress=False``) without entering the stored config.

    Returns:
        The merged result of every unit (:func:`merge_results`).
    """
    spec = experiment(name)
    if preset not in spec.presets and preset != "fast":
        raise ValueError(f"preset must be one of {list(spec.presets) + ['fast']}, got {preset!r}")
    config = spec.config(preset)
    store = bench.ResumableResults(
        _file_name(name, preset), command=command or bench.command_line(), config=config,
        key_fields=("unit",), device=runtime.device(),
        directory=None if directory is None else Path(directory), fresh=fresh)
    for unit in units_of(spec, config):
        if store.done({"unit": unit}):
            continue
        start = time.perf_counter()
        result = spec.run(**_unit_config(spec, config, unit), **{**spec.run_options, **overrides})
        seconds = time.perf_counter() - start
        store.add({"unit": unit, "result": result}, seconds=seconds)
        if on_unit is not None:
            on_unit(unit, result, seconds)
    return _merged_record(spec, store.record)


def _merged_record(spec: StoredExperiment, record: dict[str, Any]) -> dict[str, Any]:
    config = record["config"]
    units = units_of(spec, config)
    by_unit = {repr(r["unit"]): r["result"] for r in record["rows"]}
    done = [u for u in units if repr(u) in by_unit]
    if not done:
        raise ValueError(f"stored run {record['name']} has no finished unit")
    merged = merge_results([by_unit[repr(u)] for u in done], config=None)
    if spec.unit_arg is not None:
        merged["config"] = dict(merged.get("config", {}), **{spec.unit_arg: done})
    merged["stored"] = {
        "name": record["name"], "device": record["device"], "date": record["date"],
        "git_commit": record.get("git_commit"), "command": record["command"],
        "wall_seconds": record.get("wall_seconds"), "torch": record.get("torch"),
        "units_done": len(done), "units_total": len(units), "complete": len(done) == len(units),
        "config": config,
    }
    return merged


def preferred_presets(available: Sequence[str] = ("cpu", "gpu")) -> list[str]:
    """The stored presets to look for on this machine, best first: ``gpu`` then ``cpu`` on a GPU
    of the ``gpu`` tier, else ``cpu`` only (kept to those in ``available``)."""
    order = ("gpu", "cpu") if runtime.mode() == "gpu" else ("cpu",)
    return [p for p in order if p in available]


def load_stored(name: str, preset: str | None = None, *, directory: Path | str | None = None) -> dict[str, Any] | None:
    """The stored reference run of ``name``, merged (:func:`merge_results`), or None if none is stored.

    ``preset=None`` looks for this machine's tier first (``gpu`` on a GPU), then ``cpu``. The
    result carries ``"stored"``: where, when and how it was made (device, date, git commit,
    command, wall seconds, units done / total, the stored config).
    """
    spec = experiment(name)
    order = [preset] if preset is not None else preferred_presets(spec.presets)
    for p in order:
        record = bench.load_results(_file_name(name, p), directory=None if directory is None else Path(directory))
        if record is not None and record["rows"]:
            merged = _merged_record(spec, record)
            merged["stored"]["preset"] = p
            return merged
    return None


def reference_run(name: str, *, directory: Path | str | None = None, **overrides: Any) -> dict[str, Any]:
    """What a chapter shows as the experiment's reference result.

    - ``LINATTN_RETRAIN=1``: run the whole experiment live at this machine's preset
      (``spec.config(None)``: the ``cpu`` sizes on a CPU, ``gpu`` on a GPU); nothing is written.
    - otherwise the stored run (:func:`load_stored`); if none is stored, the live run with a
      warning that names the command that stores one.

    The result has ``"stored"`` (provenance, see :func:`load_stored`) or ``"stored": None`` when it
    was computed live.
    """
    spec = experiment(name)
    if not retrain():
        stored = load_stored(name, directory=directory)
        if stored is not None:
            return stored
        runtime.warn_once(f"no stored reference run of {name!r}: running it live "
                          f"(store one with: python scripts/run_experiment.py {name} --preset cpu)")
    result = spec.run(**spec.config(None), **{**spec.run_options, **overrides})
    result["stored"] = None
    return result


def live_preset() -> str:
    """The preset of a chapter's live miniature: ``"fast"`` under ``LINATTN_FAST`` (the tests), else
    ``"mini"`` (seconds on a CPU; on a GPU too, where a stored ``gpu`` run is the reference)."""
    return runtime.pick(fast="fast", cpu="mini", gpu="mini")


def label(result: dict[str, Any]) -> str:
    """A short label for figures: ``"stored reference run"``, or ``"reference run, trained live now"``
    when ``result`` was computed live (``LINATTN_RETRAIN=1``, or nothing stored)."""
    return "stored reference run" if result.get("stored") else "reference run, trained live now"


def describe(result: dict[str, Any]) -> str:
    """One line saying where ``result`` comes from: stored (device, date, commit, training time,
    the command) or live; and how to rerun it."""
    info = result.get("stored")
    if not info:
        return (f"computed live now on {result.get('device', '?')} in {result.get('seconds', 0.0):.0f} s "
                f"({RETRAIN_ENV}=1 or no stored run)")
    minutes = (info.get("wall_seconds") or 0.0) / 60
    partial = "" if info["complete"] else f"; PARTIAL: {info['units_done']} of {info['units_total']} models"
    return (f"reference run precomputed on {info['device']}, {info['date'][:10]}, commit "
            f"{(info.get('git_commit') or '?')[:10]}, {minutes:.0f} min of wall time{partial}; "
            f"regenerate with `{info['command']}`, or set {RETRAIN_ENV}=1 to rerun it live")
