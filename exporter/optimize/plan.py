"""What one search trial runs and what it gives back: the contract between the search's parts.

`TrialPlan` is made on the driver from the sampled parameters (exporter/optimize/space.py), runs in-process
or in a Ray worker (exporter/optimize/trial.py), and comes back as a `TrialResult` that the study stores
(exporter/optimize/study.py) and the results read (exporter/optimize/pareto.py). Both are plain,
picklable and JSON-ready (`to_dict`/`from_dict`), so a Ray task can carry them and a trial's user
attributes in the Optuna study can hold them.

Example:
    >>> plan = TrialPlan(number=3, params={"prune": 0.8}, recipe={"stages": []}, quantize="int8")
    >>> TrialPlan.from_dict(plan.to_dict()) == plan
    True
    >>> result = TrialResult(number=3, state="complete", values=[97.5, 4100.0], constraints=[-0.1])
    >>> result.feasible, TrialResult.from_dict(result.to_dict()) == result
    (True, True)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

STATES = ("complete", "pruned", "failed")


@dataclass
class TrialPlan:
    """One trial to run: the sampled parameters and the export they mean.

    Attributes:
        number: the Optuna trial number.
        params: the sampled parameters by name (the study's record).
        recipe: the recipe dict (`exporter.recipe` format: stages, training, skip_layers) the trial exports with.
        quantize: the conversion mode.
        target_options: the target's options for this trial (e.g. {"compress": False}), or {}.
        prune_below: the early-stop rule: {step: minimum accuracy %} of the per-epoch accuracy curve; a
            trial whose curve falls below it at a step stops ("pruned"). Fixed on the driver when the trial
            is asked, so a Ray worker and an in-process run stop at the same place.
    """

    number: int
    params: dict
    recipe: dict
    quantize: str | None = None
    target_options: dict = field(default_factory=dict)
    prune_below: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrialPlan":
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class TrialResult:
    """What one trial measured.

    Attributes:
        number: the Optuna trial number.
        state: "complete", "pruned" (stopped early on its accuracy curve) or "failed" (an error; see `error`).
        values: the objective values in the order of `objectives.Objective`s (complete trials only).
        constraints: one value per profile limit, <= 0 when the limit holds (Optuna's constraints convention).
        broken: the limits the trial broke, by name, with the measured figure and the limit.
        figures: the report figures by name: {"value", "unit", "source"} (sizes, accuracy, latency, ram, ...).
        curve: the per-epoch accuracy curve, [accuracy %] in fine-tuning order.
        passed: True when the export's report passed every check.
        error: the error message of a failed trial.
        worker: where it ran: {"kind": "in-process" | "ray", "pid", "node", ...}.
        seconds: wall-clock seconds of the trial.
        cpu_seconds: CPU seconds its process used meanwhile, every thread (`time.process_time`); `seconds` less
            this is time the trial waited: for a core taken by another process, or for I/O.
    """

    number: int
    state: str
    values: list = field(default_factory=list)
    constraints: list = field(default_factory=list)
    broken: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    curve: list = field(default_factory=list)
    passed: bool = False
    error: str | None = None
    worker: dict = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def feasible(self) -> bool:
        """A complete trial within every limit."""
        return self.state == "complete" and all(c <= 0 for c in self.constraints)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrialResult":
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
