"""What a search optimizes and what it must respect: objectives from the profile, constraints from its limits.

Objectives: accuracy (top-1 %, or agreement with the Keras model without labels) is maximized; the size that
matters on the target is minimized (`SIZE_FIGURES`: the gzip download on phones and Linux hosts, flash on
microcontrollers, the model file on accelerators); latency and RAM are minimized too when the profile
binds them. Every limit the profile (or `--limit`) sets is a hard constraint (Optuna's convention: a
value <= 0 holds), normalised by the limit so that constraints of different units compare.

Example:
    >>> from exporter.profile import load_profile
    >>> profile = load_profile("android-arm64-midrange")
    >>> [(o.name, o.figure, o.direction) for o in objectives_for(profile, has_labels=True)]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('accuracy', 'accuracy', 'maximize'), ('size', 'gzip_size', 'minimize'), ('latency', 'latency', 'minimize'),
     ('ram', 'ram', 'minimize')]
    >>> values, constraints, broken = score(report, objectives_for(profile, True), profile.limits)
    >>> len(values), len(constraints), all(c <= 0 for c in constraints), broken   # the demo's int8 export passes
    (4, 5, True, {})
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from exporter.limits import LIMITS

SIZE_FIGURES = {
    "android": ("gzip_size", "the compressed download an app ships (Play serves compressed APKs/AABs)"),
    "linux": ("gzip_size", "the compressed download to the host"),
    "microcontroller": ("model_flash", "flash the model takes in the firmware image"),
    "edgetpu": ("model_size", "the compiled model file the accelerator loads"),
    "ethos-u": ("model_size", "the Vela-compiled model file"),
}
"""target name -> (the size figure a search minimizes, why it is the one that matters there)"""
DEFAULT_SIZE_FIGURE = "model_size"
"""The size figure of a target not in SIZE_FIGURES."""

EXTRA_OBJECTIVES = {"latency": ("latency", "ms"), "ram": ("ram", "bytes")}
"""limit name -> (figure, unit): minimized as an objective too when the profile binds the limit."""


@dataclass(frozen=True)
class Objective:
    """One objective: its name, the report figure it reads, its direction and unit."""

    name: str
    figure: str
    direction: str
    unit: str

    def to_dict(self) -> dict:
        return asdict(self)


def objectives_for(profile, has_labels: bool) -> list[Objective]:
    """The objectives of a search on `profile`, in the order of a trial's values.

    Args:
        profile: the resolved DeviceProfile (its target picks the size figure; its limits add latency/RAM).
        has_labels: True when the eval data has labels (accuracy); False: agreement with the Keras model.

    Returns:
        [accuracy or agreement (maximize), size (minimize), then latency and ram (minimize) when limited].
    """
    quality = (Objective("accuracy", "accuracy", "maximize", "%") if has_labels
               else Objective("agreement", "top1_agreement", "maximize", "%"))
    figure = SIZE_FIGURES.get(profile.target, (DEFAULT_SIZE_FIGURE, ""))[0]
    out = [quality, Objective("size", figure, "minimize", "bytes")]
    for limit, (name, unit) in EXTRA_OBJECTIVES.items():
        if getattr(profile.limits, limit) is not None:
            out.append(Objective(name, name, "minimize", unit))
    return out


def constraint_value(limit: str, measured: float | None, bound: float) -> float:
    """One limit as an Optuna constraint: <= 0 holds; normalised by the limit.

    Args:
        limit: the limit's name (`exporter.limits.LIMITS`).
        measured: the figure it checks; None (not measured) counts as holding (0.0).
        bound: the limit's value.

    Returns:
        (measured - limit) / limit for a maximum, (limit - measured) / limit for a minimum
        (absolute difference when the limit is 0).
    """
    if measured is None:
        return 0.0
    spec = LIMITS[limit]
    diff = bound - measured if spec.minimum else measured - bound
    return diff / abs(bound) if bound else diff


def score(report, objectives: list[Objective], profile_limits) -> tuple[list[float], list[float], dict]:
    """A trial's objective values, constraints and broken limits from its export Report.

    Args:
        report: the exporter Report (or its `to_dict()`).
        objectives: from `objectives_for`.
        profile_limits: the resolved Limits (profile plus overrides): one constraint per limit set.

    Returns:
        (values in the order of `objectives`, constraints in the order of `LIMITS` (limits set only),
        broken: {limit: {"measured", "limit", "unit"}} of the report's failed checks).

    Raises:
        KeyError: an objective's figure is missing from the report (the trial fails with that message).
    """
    data = report if isinstance(report, dict) else report.to_dict()
    figures = report_figures(data)
    values = []
    for objective in objectives:
        if figures.get(objective.figure, {}).get("value") is None:
            raise KeyError(f"the export measured no {objective.figure!r} for objective {objective.name!r}")
        values.append(float(figures[objective.figure]["value"]))
    constraints = []
    for name, spec in LIMITS.items():
        bound = getattr(profile_limits, name, None)
        if bound is not None:
            constraints.append(constraint_value(name, figures.get(spec.figure, {}).get("value"), bound))
    broken = {c["name"]: {"measured": c["value"], "limit": c["limit"], "unit": c["unit"]}
              for c in data.get("checks", []) if c["status"] == "fail"}
    return values, constraints, broken


def report_figures(data: dict) -> dict:
    """The report's figures by name: {"value", "unit", "source"} (`accuracy` is the converted model's top-1 %).

    Args:
        data: `Report.to_dict()`.
    """
    return {name: {"value": m["value"], "unit": m["unit"], "source": m["source"]}
            for name, m in data.get("measurements", {}).items()}
