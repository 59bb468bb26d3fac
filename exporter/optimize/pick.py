"""Which trial of the Pareto front becomes the bundle (`--pick`), and exporting it as a normal bundle.

`PICKS` is the registry of rules, each a sort key over the front (best first):

- `smallest` (the default): the smallest size objective; ties go to the more accurate.
- `fastest`: the lowest latency (the latency objective when the profile binds latency, else the
  trial's `latency` figure); ties go to the smaller.
- `most-accurate`: the highest accuracy (or agreement); ties go to the smaller.

The pick is exported again with `exporter.export(...)` into `DIR/bundle` (by the runner that ran the trials: on
Ray, in a worker), with its trial's recipe, mode, target options and the job's data, so the bundle is like any
other (`edgex verify` accepts it) and its manifest records where it came from: `{"optimize": {"study",
"storage", "trial", "params"}}`. With no feasible trial there is nothing to pick: `no_pass_error` is the
LimitError (exit 1) naming the closest trial and the limits that bind it.

Example:
    >>> from exporter.optimize.objectives import Objective
    >>> objectives = [Objective("accuracy", "accuracy", "maximize", "%"),
    ...               Objective("size", "gzip_size", "minimize", "bytes")]
    >>> front = [TrialResult(1, "complete", [97.5, 9000.0], figures={"latency": {"value": 2.0}}),
    ...          TrialResult(0, "complete", [98.0, 40000.0], figures={"latency": {"value": 1.5}})]
    >>> [choose(front, objectives, how).number for how in ("smallest", "fastest", "most-accurate")]
    [1, 0, 0]
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from exporter.errors import LimitError, UsageError
from exporter.option_names import option
from exporter.optimize.pareto import broken_text, closest, recipe_summary
from exporter.optimize.plan import TrialPlan, TrialResult

__all__ = ["DEFAULT_PICK", "PICKS", "Pick", "check_pick", "choose", "export_pick", "no_pass_error", "provenance",
           "safe_storage"]

DEFAULT_PICK = "smallest"


@dataclass(frozen=True)
class Pick:
    """One `--pick` rule: a sort key over Pareto trials (lowest first) and what it means."""

    name: str
    key: Callable[[TrialResult, list], tuple]
    help: str


PICKS: dict[str, Pick] = {}
"""`--pick` name -> its Pick rule."""


def register(name: str, help: str):  # noqa: A002
    """Add a `--pick` rule under `name` (a decorator); a second rule of the same name is refused."""
    def add(key):
        if name in PICKS:
            raise ValueError(f"pick rule {name!r} is registered twice")
        PICKS[name] = Pick(name, key, help)
        return key
    return add


def _value(trial: TrialResult, objectives: list, role: str) -> float:
    """The trial's value of the first objective in `role`: "quality" (maximized) or "size" (minimized first)."""
    for objective, value in zip(objectives, trial.values):
        if (objective.direction == "maximize") == (role == "quality"):
            return value
    return 0.0


def _latency(trial: TrialResult, objectives: list) -> float:
    for objective, value in zip(objectives, trial.values):
        if objective.name == "latency":
            return value
    value = (trial.figures.get("latency") or {}).get("value")
    return float("inf") if value is None else float(value)


@register("smallest", "the smallest size that passes (ties: the more accurate)")
def _smallest(trial: TrialResult, objectives: list) -> tuple:
    return _value(trial, objectives, "size"), -_value(trial, objectives, "quality")


@register("fastest", "the lowest latency that passes (ties: the smaller)")
def _fastest(trial: TrialResult, objectives: list) -> tuple:
    return _latency(trial, objectives), _value(trial, objectives, "size")


@register("most-accurate", "the highest accuracy (or agreement) that passes (ties: the smaller)")
def _most_accurate(trial: TrialResult, objectives: list) -> tuple:
    return -_value(trial, objectives, "quality"), _value(trial, objectives, "size")


def choose(front: list[TrialResult], objectives: list, how: str = DEFAULT_PICK) -> TrialResult:
    """The trial of the Pareto `front` that rule `how` picks.

    Args:
        front: the Pareto front (exporter/optimize/pareto.py `pareto_front`); must not be empty.
        objectives: the study's objectives, in the order of each trial's values.
        how: a `PICKS` name. Default "smallest".

    Raises:
        UsageError: an unknown rule (naming the known ones).
        ValueError: an empty front (see `no_pass_error`).
    """
    check_pick(how)
    if not front:
        raise ValueError("nothing to pick from: the Pareto front is empty")
    rule = PICKS[how].key
    return min(front, key=lambda trial: (rule(trial, objectives), trial.number))


def check_pick(how: str) -> str:
    """`how` when it is a `PICKS` name; UsageError naming the known ones otherwise (before any work)."""
    if how not in PICKS:
        raise UsageError(f"{option('pick', how)} is not a pick rule; known: {', '.join(PICKS)}")
    return how


def no_pass_error(results: list[TrialResult], objectives: list, plans: dict | None = None) -> LimitError:
    """The error (exit 1) for a study in which no trial passes: the closest trial and what binds it.

    Args:
        results: every trial of the study.
        objectives: the study's objectives.
        plans: trial number -> TrialPlan, for the closest trial's recipe. Default: none.

    Example:
        >>> error = no_pass_error([TrialResult(4, "complete", [97.0, 9000.0], [0.2],
        ...       {"model_size": {"measured": 12000, "limit": 10000, "unit": "bytes"}})], [])
        >>> error.exit_code, str(error).split("; ")[1]
        (1, 'the closest is trial 4 (?), which breaks model_size 12,000 B > 10,000 B')
    """
    counts = {state: sum(r.state == state for r in results) for state in ("complete", "pruned", "failed")}
    tally = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    head = f"no trial passes every limit ({len(results)} trial{'s' if len(results) != 1 else ''}: {tally or 'none'})"
    trial, broken = closest(results, objectives)
    if trial is None:
        return LimitError(f"{head}; none completed, so none is close: see the trials' errors in report.html and "
                          f"widen the search ({option('trials')})")
    recipe = recipe_summary((plans or {}).get(trial.number))
    return LimitError(f"{head}; the closest is trial {trial.number} ({recipe}), which breaks {broken_text(broken)}; "
                      f"relax those limits ({option('limits')}) or search longer ({option('trials')})")


def provenance(study: str, storage: str, trial: TrialResult, plan: TrialPlan) -> dict:
    """What the picked bundle's manifest records: {"optimize": {"study", "storage", "trial", "params"}}."""
    return {"optimize": {"study": study, "storage": safe_storage(storage), "trial": trial.number,
                         "params": plan.params}}


def safe_storage(storage: str) -> str:
    """The storage URL without a password (`postgresql://user:***@host/db`): manifests get shared."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(storage)
    if parts.password is None:
        return storage
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))




def export_pick(out: Path, job, trial: TrialResult, plan: TrialPlan, *, study: str, storage: str,
                progress: bool = False):
    """Export the picked trial as a normal bundle at `out` (its manifest records the study and trial).

    Args:
        out: the bundle folder (DIR/bundle, or its temp twin while the results are written).
        job: the search's OptimizeJob (model, target, profile, data).
        trial: the picked trial.
        plan: its TrialPlan (recipe, mode, target options).
        study, storage: the study's name and storage URL, for the manifest.
        progress: progress bars on stderr. Default False.

    Returns:
        The export's Report. Training is seeded and the pick is exported with its trial's thread count (on Ray:
        in a worker, exporter/optimize/ray_runner.py), so it measures what the trial did; a trial run elsewhere
        (a study resumed on Ray that began in-process) can land on the other side of a limit: `report.passed`
        is then False, and the caller says so.

    Raises:
        ExporterError: as `exporter.export`.
    """
    import exporter

    return exporter.export(**job.export_kwargs(), recipe=plan.recipe, quantize=plan.quantize,
                           target_options=plan.target_options or None, out=out, progress=progress,
                           provenance=provenance(study, storage, trial, plan))
