"""What `exporter.optimize` returns: the study, its trials, the Pareto front, the pick and its bundle.

`OptimizeResult` is filled in two passes: the search (exporter/optimize/api.py) sets the study, the trials
and what it searched; the results (exporter/optimize/results.py and pick.py) add the Pareto front, the pick
and the bundle. `to_dict()` is what `edgex optimize --json` prints and DIR/optimize.json holds.

Example:
    >>> from exporter.optimize.objectives import Objective
    >>> result = OptimizeResult(study="edgex-android-x", storage="sqlite:///opt.study.db",
    ...                         trials=[TrialResult(0, "complete", [97.0, 4000.0], [-0.5])], new_trials=1,
    ...                         objectives=[Objective("accuracy", "accuracy", "maximize", "%")])
    >>> data = result.to_dict()
    >>> data["study"], data["new_trials"], data["counts"], data["trials"][0]["state"]
    ('edgex-android-x', 1, {'complete': 1, 'pruned': 0, 'failed': 0}, 'complete')
    >>> OptimizeResult.from_dict(data).to_dict() == data
    True
"""
from __future__ import annotations

from dataclasses import dataclass, field

from exporter.optimize.plan import STATES, TrialPlan, TrialResult

__all__ = ["OptimizeResult"]


@dataclass
class OptimizeResult:
    """The outcome of one `exporter.optimize` call.

    Attributes:
        study: the Optuna study's name.
        storage: the study's storage URL (passwords are kept here, never in the JSON: see `to_dict`).
        trials: every finished trial of the study (old and new), by number.
        new_trials: how many of them this call ran.
        objectives: the study's objectives (exporter/optimize/objectives.py), in the order of each trial's values.
        sensitivity: the per-layer sensitivity rows (exporter/optimize/sensitivity.py), most sensitive first.
        plans: trial number -> the TrialPlan it ran (params, recipe, mode, target options).
        space: the search space searched (its `to_dict()`).
        target, profile: the target and the profile's name.
        out: the output folder.
        runner: where trials ran: {"kind": "in-process" | "ray", "address", "batch", "trial_cpus"}.
        seconds: wall-clock seconds of the search (this call).
        stopped: why asking stopped: "trials" (the budget was reached), "time" (--time ran out).
        pareto: the Pareto front (feasible, non-dominated trials), filled by the results.
        pick: the picked trial, filled by the results; None before, or when no trial passes.
        bundle: the picked trial's bundle folder, filled by the results.
    """

    study: str
    storage: str
    trials: list = field(default_factory=list)
    new_trials: int = 0
    objectives: list = field(default_factory=list)
    sensitivity: list = field(default_factory=list)
    plans: dict = field(default_factory=dict)
    space: dict = field(default_factory=dict)
    target: str | None = None
    profile: str | None = None
    out: str | None = None
    runner: dict = field(default_factory=dict)
    seconds: float = 0.0
    stopped: str | None = None
    pareto: list = field(default_factory=list)
    pick: TrialResult | None = None
    bundle: str | None = None

    def counts(self) -> dict:
        """Finished trials by state: {"complete", "pruned", "failed"}."""
        return {state: sum(t.state == state for t in self.trials) for state in STATES}

    def plan(self, number: int) -> TrialPlan | None:
        """The plan trial `number` ran, if known."""
        return self.plans.get(number)

    def to_dict(self) -> dict:
        """JSON-ready: the search, every trial (with its params), the Pareto front's numbers, the pick, the bundle."""
        from exporter.optimize.pick import safe_storage

        def trial(t: TrialResult) -> dict:
            plan = self.plans.get(t.number)
            return {**t.to_dict(), "feasible": t.feasible, "params": plan.params if plan else {},
                    "quantize": plan.quantize if plan else None, "plan": plan.to_dict() if plan else None}

        return {"study": self.study, "storage": safe_storage(self.storage), "target": self.target,
                "profile": self.profile, "out": self.out, "new_trials": self.new_trials, "counts": self.counts(),
                "stopped": self.stopped, "seconds": round(self.seconds, 3), "runner": dict(self.runner),
                "objectives": [o.to_dict() for o in self.objectives], "space": self.space,
                "sensitivity": list(self.sensitivity),
                "pareto": [trial(t) for t in self.pareto],
                "pick": trial(self.pick) if self.pick is not None else None, "bundle": self.bundle,
                "trials": [trial(t) for t in self.trials]}

    @classmethod
    def from_dict(cls, data: dict) -> "OptimizeResult":
        """The OptimizeResult back from `to_dict()` (or DIR/optimize.json); the storage URL as it was written."""
        from exporter.optimize.objectives import Objective

        trials = [TrialResult.from_dict(t) for t in data.get("trials", [])]
        by_number = {t.number: t for t in trials}
        plans = {t["number"]: TrialPlan.from_dict(t["plan"]) for t in data.get("trials", []) if t.get("plan")}
        pick = data.get("pick")
        return cls(study=data["study"], storage=data["storage"], trials=trials, new_trials=data.get("new_trials", 0),
                   objectives=[Objective(**o) for o in data.get("objectives", [])],
                   sensitivity=list(data.get("sensitivity", [])), plans=plans, space=dict(data.get("space", {})),
                   target=data.get("target"), profile=data.get("profile"), out=data.get("out"),
                   runner=dict(data.get("runner", {})), seconds=data.get("seconds", 0.0), stopped=data.get("stopped"),
                   pareto=[by_number[t["number"]] for t in data.get("pareto", []) if t["number"] in by_number],
                   pick=None if pick is None else by_number.get(pick["number"], TrialResult.from_dict(pick)),
                   bundle=data.get("bundle"))
